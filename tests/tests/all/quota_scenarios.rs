//! The quota policy's conformance scenarios (`tests/conformance/quotas.json`):
//! sequences of requests and answers at given instants, with the decision a
//! host must take for each (which quotas a request counts against, admitted
//! or refused and for how long), as the Rust host takes them. This test
//! computes them with the Rust host's own policy, in memory and in the
//! machine's SQLite store, and fails when either disagrees with the
//! committed file; the Node and Python packages run the same file and must
//! agree exactly. The SQLite store counts in buckets a thousandth of a
//! window wide: it takes the same decisions, and where a refusal's wait is
//! longer (by less than one bucket: its latest request must leave), the
//! step says what it decides in `in_buckets`. `API_ENTREPRISE_WRITE_SCENARIOS=1` writes the file anew
//! after a deliberate change of policy.

use std::sync::Arc;

use api_entreprise::QUOTA_MARGIN;
use api_entreprise::Quotas;
use api_entreprise::Token;
use api_entreprise::policy::QuotaPolicy;
use api_entreprise::quota::{Denied, ManualClock, QuotaSpec, SqliteStore};
use serde_json::{Value, json};

const FILE: &str = "conformance/quotas.json";
/// 2026-12-04T09:00:00Z: every scenario starts there.
const T0: u64 = 1_796_374_800_000;

const SIRENE: &str = "/v3/insee/sirene/unites_legales/552049447";
const DGFIP: &str = "/v3/dgfip/unites_legales/552049447/attestation_fiscale";
const CIBTP: &str = "/v3/cibtp/etablissements/55204944700013/attestation_cotisations_conges_payes_chomage_intemperies";
const UNKNOWN: &str = "/v3/nothing/here/552049447";

/// A JWT whose payload is `{"jti": jti, ...}`: the per-token groups are
/// named after it. The signature is not checked by a host.
fn token_with_jti(jti: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&json!({ "alg": "HS256", "typ": "JWT" })),
        b64(
            &json!({ "uid": "u-1", "jti": jti, "scopes": ["unites_legales_etablissements_insee"], "iat": 1_780_000_000 })
        )
    )
}

fn acquire(at: u64, path: &str) -> Value {
    json!({ "at": T0 + at, "acquire": path })
}

fn answer(at: u64, path: &str, status: u16, headers: Value) -> Value {
    json!({ "at": T0 + at, "answer": { "path": path, "status": status, "headers": headers } })
}

/// The scenarios' inputs: every case a host's quota policy must decide alike.
fn inputs() -> Vec<Value> {
    let reset_in = |s: u64| ((T0 / 1000) + s).to_string();
    vec![
        json!({ "name": "a full per-IP quota refuses until its oldest request leaves the window (kept 500 ms wider)",
            "ip_quotas": ["3/10s"],
            "steps": [acquire(0, SIRENE), acquire(1000, SIRENE), acquire(2000, SIRENE), acquire(3000, SIRENE),
                      acquire(10_500, SIRENE), acquire(10_501, SIRENE), acquire(10_502, SIRENE)] }),
        json!({ "name": "the health routes (/pings, /ping/{provider}) count against nothing, /privileges against the IP only; /ping is no health route",
            "ip_quotas": ["2/1m"],
            "steps": [acquire(0, "/pings"), acquire(1, "/ping/insee/sirene"), acquire(2, "/privileges"),
                      acquire(3, "/pings/"), acquire(4, "/ping/qualibat"), acquire(5, SIRENE), acquire(6, "/ping"),
                      acquire(7, "/privileges")] }),
        json!({ "name": "a request takes a slot in every quota or in none: a full group spends no IP slot",
            "ip_quotas": ["7/1m"],
            "steps": [acquire(0, DGFIP), acquire(1, DGFIP), acquire(2, DGFIP), acquire(3, DGFIP), acquire(4, DGFIP),
                      acquire(5, DGFIP), acquire(6, DGFIP), acquire(7, SIRENE), acquire(8, CIBTP), acquire(9, SIRENE)] }),
        json!({ "name": "several per-IP quotas at once: the longest wait is the one named",
            "ip_quotas": ["2/10s", "3/1m"],
            "steps": [acquire(0, SIRENE), acquire(100, SIRENE), acquire(200, SIRENE), acquire(10_601, SIRENE),
                      acquire(20_000, SIRENE), acquire(60_501, SIRENE), acquire(60_601, SIRENE)] }),
        json!({ "name": "a path the catalogue does not know counts in a small group of its own",
            "ip_quotas": ["100/1m"],
            "steps": [acquire(0, UNKNOWN), acquire(1, UNKNOWN), acquire(2, "/v3/nothing/else"), acquire(3, UNKNOWN),
                      acquire(4, UNKNOWN), acquire(5, UNKNOWN), acquire(6, SIRENE)] }),
        json!({ "name": "RateLimit-Remaining: 0 closes the group until RateLimit-Reset, not the IP",
            "ip_quotas": ["100/1m"],
            "steps": [acquire(0, SIRENE),
                      answer(100, SIRENE, 200, json!({ "ratelimit-limit": "250", "ratelimit-remaining": "0", "ratelimit-reset": reset_in(30) })),
                      acquire(200, SIRENE), acquire(300, DGFIP), acquire(29_999, SIRENE), acquire(30_000, SIRENE)] }),
        json!({ "name": "the server's word tightens within one reset and never loosens it",
            "ip_quotas": ["100/1m"],
            "steps": [answer(0, SIRENE, 200, json!({ "ratelimit-remaining": "2", "ratelimit-reset": reset_in(40) })),
                      acquire(10, SIRENE), acquire(20, SIRENE), acquire(30, SIRENE),
                      answer(40, SIRENE, 200, json!({ "ratelimit-remaining": "50", "ratelimit-reset": reset_in(40) })),
                      acquire(50, SIRENE),
                      answer(60, SIRENE, 200, json!({ "ratelimit-remaining": "5", "ratelimit-reset": reset_in(100) })),
                      acquire(70, SIRENE), acquire(40_001, SIRENE)] }),
        json!({ "name": "a 429 closes the group for Retry-After",
            "ip_quotas": ["100/1m"],
            "steps": [acquire(0, DGFIP), answer(10, DGFIP, 429, json!({ "retry-after": "20" })),
                      acquire(20, DGFIP), acquire(30, SIRENE), acquire(20_009, DGFIP), acquire(20_010, DGFIP)] }),
        json!({ "name": "a 429 without Retry-After closes until RateLimit-Reset, else for 60 s, at least 1 s",
            "ip_quotas": ["100/1m"],
            "steps": [answer(0, DGFIP, 429, json!({ "ratelimit-remaining": "0", "ratelimit-reset": reset_in(12) })),
                      acquire(1, DGFIP), answer(2, SIRENE, 429, json!({})), acquire(3, SIRENE),
                      answer(4, CIBTP, 429, json!({ "retry-after": "0" })), acquire(5, CIBTP), acquire(1004, CIBTP)] }),
        json!({ "name": "headers that are not whole numbers teach nothing",
            "ip_quotas": ["100/1m"],
            "steps": [answer(0, SIRENE, 200, json!({ "ratelimit-remaining": "zero", "ratelimit-reset": reset_in(30) })),
                      acquire(1, SIRENE),
                      answer(2, SIRENE, 200, json!({ "ratelimit-remaining": "0", "ratelimit-reset": "-5" })),
                      acquire(3, SIRENE),
                      answer(4, SIRENE, 200, json!({ "ratelimit-remaining": " 0 ", "ratelimit-reset": reset_in(10) })),
                      acquire(5, SIRENE)] }),
        json!({ "name": "in the SQLite store, a bucket (a thousandth of the window) counts until its latest request leaves: never more, at most one bucket later",
            "ip_quotas": ["3/10s"],
            "steps": [acquire(0, SIRENE), acquire(3, SIRENE), acquire(1000, SIRENE), acquire(2000, SIRENE),
                      acquire(10_501, SIRENE), acquire(10_503, SIRENE), acquire(10_504, SIRENE), acquire(10_505, SIRENE)] }),
        json!({ "name": "the per-token groups are named after the token's jti: two tokens count apart",
            "ip_quotas": ["100/1m"], "token": token_with_jti("0b8c5e3a-1f"),
            "steps": [acquire(0, DGFIP), acquire(1, DGFIP), acquire(2, DGFIP), acquire(3, DGFIP), acquire(4, DGFIP), acquire(5, DGFIP)] }),
    ]
}

/// What the Rust host decides at each step of `scenario`, in `quotas` (on a
/// manual `clock`).
async fn run(scenario: &Value, quotas: &Quotas, clock: &ManualClock) -> Vec<Value> {
    let specs: Vec<QuotaSpec> = scenario["ip_quotas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_str().unwrap().parse().unwrap())
        .collect();
    let token = scenario["token"].as_str().map(|t| Token::new(t).unwrap());
    let policy = QuotaPolicy::new(&specs, QUOTA_MARGIN, token.as_ref(), None);
    let mut decisions = Vec::new();
    for step in scenario["steps"].as_array().unwrap() {
        clock.set(step["at"].as_u64().unwrap());
        if let Some(path) = step["acquire"].as_str() {
            let (keys, _) = policy.keys(path);
            let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
            decisions.push(match quotas.try_acquire(&keys).await {
                Ok(()) => json!({ "keys": names, "admitted": true }),
                Err(Denied::Full(wait)) => json!({
                    "keys": names, "admitted": false,
                    "refused_by": wait.quota, "retry_after_ms": wait.retry_after.as_millis() as u64,
                }),
                Err(Denied::Unavailable(down)) => panic!("{down}"),
            });
        } else {
            let answer = &step["answer"];
            let (_, group) = policy.keys(answer["path"].as_str().unwrap());
            let mut headers = http::HeaderMap::new();
            for (name, value) in answer["headers"].as_object().unwrap() {
                headers.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
                );
            }
            if let Some(group) = group {
                let status = answer["status"].as_u64().unwrap() as u16;
                policy.learn(quotas, &group, status, &headers).await;
            }
            decisions.push(Value::Null);
        }
    }
    decisions
}

/// The scenarios with the decisions of the Rust host in `store`.
async fn scenarios(store: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for (i, input) in inputs().into_iter().enumerate() {
        let clock = Arc::new(ManualClock::at(T0));
        let quotas = match store {
            "memory" => Quotas::with_clock(Box::new(clock.clone())),
            _ => {
                let file = dir.path().join(format!("quotas-{i}.sqlite3"));
                Quotas::with_store(
                    Box::new(SqliteStore::on_given_clock(file).unwrap()),
                    Box::new(clock.clone()),
                )
            }
        };
        let decisions = run(&input, &quotas, &clock).await;
        let mut scenario = input;
        for (step, decision) in scenario["steps"].as_array_mut().unwrap().iter_mut().zip(decisions) {
            if !decision.is_null() {
                step["expect"] = decision;
            }
        }
        out.push(scenario);
    }
    json!({
        "about": "The quota policy every host must decide alike: for each step at its instant (ms since the Unix epoch, \
                  on the store's clock and the wall clock both), an `acquire` of a request's path (`expect`: the quotas it \
                  counts against, admitted or refused, by which quota and for how long) or an `answer` of the server \
                  (what it teaches the group). Each host runs every scenario on a fresh store. The SQLite store counts \
                  in buckets a thousandth of a window wide: where it decides otherwise (a longer wait, by less than one \
                  bucket), `in_buckets` says what it decides. Written by tests/tests/all/quota_scenarios.rs from the Rust host's policy.",
        "margin_ms": QUOTA_MARGIN.as_millis() as u64,
        "scenarios": out,
    })
}

/// The bucket width of the quota `name` in `scenario`: a thousandth of its
/// window, kept [`QUOTA_MARGIN`] wider (the groups' windows are a minute).
fn bucket_ms(name: &str) -> u64 {
    let window = match name.strip_prefix("ip ") {
        Some(spec) => spec.parse::<QuotaSpec>().unwrap().window,
        None => std::time::Duration::from_secs(60),
    };
    ((window + QUOTA_MARGIN).as_millis() as u64 / 1000).max(1)
}

/// `memory`'s scenarios with the SQLite store's decisions written in where
/// they differ (`in_buckets`), after checking that they never admit what
/// the exact window refuses, wait less than one bucket longer and never
/// shorter, and take the very same decisions in every scenario but the
/// one about buckets: only the waits differ there.
fn with_buckets(memory: &Value, sqlite: &Value) -> Value {
    let mut merged = memory.clone();
    let scenarios = merged["scenarios"].as_array_mut().unwrap();
    for (scenario, theirs) in scenarios.iter_mut().zip(sqlite["scenarios"].as_array().unwrap()) {
        let name = scenario["name"].as_str().unwrap().to_owned();
        let about_buckets = name.starts_with("in the SQLite store");
        let steps = scenario["steps"].as_array_mut().unwrap();
        let mut admitted_at = Vec::new();
        for (n, (step, bucketed)) in steps.iter_mut().zip(theirs["steps"].as_array().unwrap()).enumerate() {
            let (exact, bucketed) = (step["expect"].clone(), bucketed["expect"].clone());
            if bucketed["admitted"] == true {
                admitted_at.push(step["at"].as_u64().unwrap());
            }
            if exact == bucketed {
                continue;
            }
            let width = bucket_ms(bucketed["refused_by"].as_str().unwrap_or("group"));
            if about_buckets {
                // Its history differs from the exact one's: only what it
                // admitted is checked, below.
                step["expect"]["in_buckets"] = bucketed;
                continue;
            }
            assert!(
                exact["admitted"] == false && exact["refused_by"] == bucketed["refused_by"],
                "{name}, step {n}: another decision in SQLite: {bucketed} against {exact}"
            );
            let (exact_ms, bucketed_ms) = (
                exact["retry_after_ms"].as_u64().unwrap(),
                bucketed["retry_after_ms"].as_u64().unwrap(),
            );
            assert!(
                bucketed_ms >= exact_ms && bucketed_ms < exact_ms + width,
                "{name}, step {n}: SQLite waits {bucketed_ms} ms, exactly {exact_ms} ms, buckets {width} ms wide"
            );
            step["expect"]["in_buckets"] = bucketed;
        }
        // Whatever it decided, no window of the per-IP quota (3 in 10.5 s)
        // ever held more than it allows.
        if about_buckets {
            for (i, first) in admitted_at.iter().enumerate() {
                let inside = admitted_at[i..].iter().filter(|t| **t - first <= 10_500).count();
                assert!(inside <= 3, "{name}: the window from {first} holds {inside}");
            }
            assert!(admitted_at.len() >= 4, "{name}: {admitted_at:?}");
        }
    }
    merged
}

fn committed() -> (std::path::PathBuf, Option<Value>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FILE);
    let text = std::fs::read_to_string(&path).ok();
    (path, text.map(|t| serde_json::from_str(&t).unwrap()))
}

#[tokio::test]
async fn the_rust_host_decides_as_every_quota_scenario_says_in_memory_and_in_sqlite() {
    let memory = with_buckets(&scenarios("memory").await, &scenarios("sqlite").await);
    let (path, committed) = committed();
    if std::env::var_os("API_ENTREPRISE_WRITE_SCENARIOS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&memory).unwrap() + "\n").unwrap();
        return;
    }
    let committed = committed.unwrap_or_else(|| {
        panic!(
            "no {}: run this test with API_ENTREPRISE_WRITE_SCENARIOS=1",
            path.display()
        )
    });
    let steps = |v: &Value| {
        v["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["steps"].as_array().unwrap().len())
            .sum::<usize>()
    };
    assert!(steps(&committed) >= 60, "{} steps", steps(&committed));
    for (ours, theirs) in memory["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .zip(committed["scenarios"].as_array().unwrap())
    {
        assert_eq!(
            ours,
            theirs,
            "scenario {:?} differs from {}",
            ours["name"],
            path.display()
        );
    }
    assert_eq!(
        memory,
        committed,
        "the scenarios differ from {}: a deliberate change is written with API_ENTREPRISE_WRITE_SCENARIOS=1",
        path.display()
    );
}
