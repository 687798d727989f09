//! `cargo xtask vectors [--check]`: the conformance vectors every host of the
//! component must agree with, exactly (the Rust host, the Node and Python
//! packages). Each case is what the client code, compiled natively, returns
//! for one input: every staging fixture in `sandbox/fixtures/` (the request
//! that selects it, then its answer), and hand-written cases for what the
//! fixtures do not show (local refusals, quota and maintenance headers,
//! bodies that are not JSON, arguments that are not the contract).
//!
//! The files are JSON, in the contract's JSON form (the WIT `json`
//! interface): `prepare.json` and `parse.json` under `tests/conformance/`,
//! with `policy.json`: what a host's policy decides for a request's path.
//!
//! It also writes `catalogue/routes.json`: the host catalogue's policy table
//! (every route's template, group and timeout class, the free routes, the
//! per-IP quotas) for the hosts that are not written in Rust, so that they
//! decide from the host's catalogue, not from what the component says.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde::Deserialize;
use serde_json::{Value, json};

use api_entreprise_guest::json as codec;

/// Where the vectors are, from the workspace root.
pub const DIR: &str = "tests/conformance";
/// The policy table for the hosts outside Rust.
pub const ROUTES: &str = "catalogue/routes.json";

/// The instant every case is computed at (the DGFIP year rule and the
/// `RateLimit-Reset` delays depend on it).
const NOW: &str = "2026-11-30T10:15:00Z";
/// `NOW` as Unix seconds, and the end of its rate-limit window.
const NOW_UNIX: u64 = 1_796_033_700;
const RESET: u64 = NOW_UNIX + 45;

const BASE_URL: &str = "https://entreprise.api.gouv.fr";

/// One staging fixture, as far as the vectors need it.
#[derive(Deserialize)]
struct Fixture {
    #[serde(default)]
    params: BTreeMap<String, serde_yaml::Value>,
    status: u16,
    payload: String,
}

/// Writes the vectors, or with `check` fails when the committed ones are not
/// what the client code gives today.
pub fn run(root: &Path, check: bool) -> Result<()> {
    let (prepare, parse) = generate(root)?;
    let files = [
        (format!("{DIR}/prepare.json"), one_case_a_line(&prepare)?),
        (format!("{DIR}/parse.json"), one_case_a_line(&parse)?),
        (format!("{DIR}/policy.json"), one_case_a_line(&policy_cases())?),
        (ROUTES.to_owned(), serde_json::to_string_pretty(&routes())? + "\n"),
    ];
    for (name, text) in files {
        let path = root.join(&name);
        if check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            ensure!(
                current == text,
                "{name} is stale: the client's code, the catalogue or the fixtures changed since it was \
                 generated; run `cargo xtask vectors`, review the difference and commit it"
            );
            eprintln!("{name} is up to date");
        } else {
            std::fs::create_dir_all(path.parent().expect("a folder"))?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {name}");
        }
    }
    Ok(())
}

/// The file's text: its header fields, then one case a line, so that a
/// change shows as the cases it changes.
fn one_case_a_line(file: &Value) -> Result<String> {
    let mut text = String::from("{\n");
    let object = file.as_object().context("a vectors file is an object")?;
    for (key, value) in object.iter().filter(|(k, _)| *k != "cases") {
        text += &format!("  {}: {},\n", Value::from(key.as_str()), value);
    }
    text += "  \"cases\": [\n";
    let cases = object["cases"].as_array().context("cases")?;
    for (i, case) in cases.iter().enumerate() {
        // The name first, `expect` last, whatever the map's order.
        let case = case.as_object().context("a case is an object")?;
        let fields: Vec<String> = ["name", "request", "path", "call", "status", "headers", "body", "expect"]
            .iter()
            .filter_map(|k| Some(format!("{}:{}", Value::from(*k), case.get(*k)?)))
            .collect();
        ensure!(
            fields.len() == case.len(),
            "a case has a field the writer does not know"
        );
        let comma = if i + 1 < cases.len() { "," } else { "" };
        text += &format!("    {{{}}}{comma}\n", fields.join(","));
    }
    text += "  ]\n}\n";
    Ok(text)
}

/// What a function of the `json` interface returned, as a case's `expect`.
fn expect(outcome: Result<String, String>) -> Value {
    let (key, text) = match outcome {
        Ok(text) => ("ok", text),
        Err(text) => ("err", text),
    };
    let value: Value = serde_json::from_str(&text).expect("the codec always answers JSON");
    json!({ key: value })
}

fn trace() -> Value {
    json!({
        "context": "aides publiques",
        // Not DINUM, which many fixtures are about (00211: recipient = target).
        "recipient": "10000001700010",
        "object": "dossier 2026-42",
        "user_id": "agent-42",
    })
}

/// The case for `prepare` of `request`.
fn prepare_case(name: &str, request: &Value) -> Value {
    json!({
        "name": name,
        "request": request,
        "expect": expect(codec::prepare(BASE_URL, &request.to_string(), NOW)),
    })
}

/// The case for `parse` of an answer to `call`.
fn parse_case(name: &str, call: &Value, status: u16, headers: &[(&str, String)], body: &str) -> Value {
    let headers: Vec<[&str; 2]> = headers.iter().map(|(k, v)| [*k, v.as_str()]).collect();
    let headers = serde_json::to_string(&headers).expect("strings");
    json!({
        "name": name,
        "call": call,
        "status": status,
        "headers": serde_json::from_str::<Value>(&headers).expect("just written"),
        "body": body,
        "expect": expect(codec::parse(&call.to_string(), status, &headers, body, NOW)),
    })
}

/// The headers API Entreprise sends with a JSON answer.
fn answer_headers(request_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json; charset=utf-8".into()),
        ("RateLimit-Limit", "250".into()),
        ("RateLimit-Remaining", "249".into()),
        ("RateLimit-Reset", RESET.to_string()),
        ("X-Request-ID", request_id.into()),
    ]
}

/// A call as `prepare` would give it, for answers whose request it refuses
/// (the fixtures of the server's own 422s).
fn call_for(endpoint: &api_entreprise_catalogue::Endpoint) -> Value {
    json!({
        "endpoint": endpoint.id,
        "version": endpoint.version,
        "method": "GET",
        "url": format!("{BASE_URL}{}", endpoint.path),
        "headers": [["accept", "application/json"]],
        "timeout_ms": endpoint.timeout_ms,
    })
}

fn generate(root: &Path) -> Result<(Value, Value)> {
    let (mut prepares, mut parses) = (Vec::new(), Vec::new());
    let dir = root.join("sandbox/fixtures");
    let mut operations: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    operations.sort();
    for folder in operations {
        let op = folder
            .file_name()
            .and_then(|n| n.to_str())
            .context("a fixture folder's name")?;
        let (version, id) = op
            .strip_prefix("api_entreprise_v")
            .and_then(|rest| rest.split_once('_'))
            .with_context(|| format!("{op}: not api_entreprise_vN_<id>"))?;
        let endpoint = api_entreprise_catalogue::find(id, Some(version.parse()?))
            .with_context(|| format!("{op}: not in the catalogue"))?;
        let mut files: Vec<_> = std::fs::read_dir(&folder)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
            let stem = file.file_stem().and_then(|s| s.to_str()).context("a fixture's name")?;
            let name = format!("v{version}/{id}/{stem}");
            let fixture: Fixture = serde_yaml::from_str(&std::fs::read_to_string(file)?)
                .with_context(|| format!("reading {}", file.display()))?;
            let param = |name: &str| {
                fixture.params.get(name).map(|v| match v {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap_or_default().trim().to_owned(),
                })
            };
            let params: Vec<String> = endpoint
                .params
                .iter()
                .map(|(p, _)| param(p).unwrap_or_default())
                .collect();
            // Staging keys some fixtures by parameters the endpoint does not
            // take (`year` on chiffres d'affaires): those are left out.
            let query: Vec<[String; 2]> = endpoint
                .query
                .iter()
                .filter_map(|q| Some([q.name.to_owned(), param(q.name)?]))
                .collect();
            let request = json!({
                "endpoint": id,
                "version": endpoint.version,
                "params": params,
                "query": query,
                "trace": trace(),
            });
            let case = prepare_case(&name, &request);
            let call = case["expect"].get("ok").cloned().unwrap_or_else(|| call_for(endpoint));
            prepares.push(case);
            let headers = answer_headers(&format!("fixture-{}", parses.len() + 1));
            parses.push(parse_case(&name, &call, fixture.status, &headers, &fixture.payload));
        }
    }
    prepares.extend(hand_written_prepares());
    parses.extend(hand_written_parses()?);
    let about = |what: &str| {
        format!(
            "Conformance vectors for `{what}` of the WIT `json` interface, generated by `cargo xtask vectors` \
             from the client's code: every host of the component must return `expect` exactly (as JSON values)."
        )
    };
    Ok((
        json!({ "about": about("prepare"), "now": NOW, "base_url": BASE_URL, "cases": prepares }),
        json!({ "about": about("parse"), "now": NOW, "cases": parses }),
    ))
}

fn hand_written_prepares() -> Vec<Value> {
    let sirene =
        |params: Value, trace: Value| json!({"endpoint": "insee_unites_legales", "params": params, "trace": trace});
    let mut blank = trace();
    blank["context"] = json!("  ");
    blank["object"] = json!("");
    let mut target = trace();
    target["recipient"] = json!("55204944776279");
    let mut long = trace();
    long["object"] = json!("Dossier n°42 & suivants / « aides » = 100 % ? oui#non ".repeat(3));
    let mut no_user = trace();
    no_user["user_id"] = Value::Null;
    vec![
        prepare_case(
            "local/newest-version-when-none-is-named",
            &sirene(json!(["552049447"]), trace()),
        ),
        prepare_case("local/invalid-siren", &sirene(json!(["552049448"]), trace())),
        prepare_case(
            "local/blank-trace-lists-every-code",
            &sirene(json!(["55204944"]), blank),
        ),
        prepare_case("local/recipient-is-the-target", &sirene(json!(["552049447"]), target)),
        prepare_case(
            "local/long-object-sent-whole-and-encoded",
            &sirene(json!(["552049447"]), long),
        ),
        prepare_case(
            "local/wrong-number-of-values",
            &sirene(json!(["552049447", "x"]), trace()),
        ),
        prepare_case(
            "local/unknown-endpoint",
            &json!({"endpoint": "insee_nothing", "params": [], "trace": trace()}),
        ),
        prepare_case(
            "local/unknown-version",
            &json!({"endpoint": "insee_unites_legales", "version": 9, "params": ["552049447"], "trace": trace()}),
        ),
        prepare_case(
            "local/dgfip-needs-a-user-id",
            &json!({"endpoint": "dgfip_attestations_fiscales", "params": ["552049447"], "trace": no_user}),
        ),
        prepare_case(
            "local/a-year-in-the-future",
            &json!({"endpoint": "gip_mds_effectifs_annuels_entreprise", "params": ["552049447", "2027"], "trace": trace()}),
        ),
        prepare_case(
            "local/a-query-value-out-of-range",
            &json!({"endpoint": "insee_unites_legales", "params": ["552049447"], "query": [["nope", "1"]], "trace": trace()}),
        ),
        prepare_case("free/pings", &json!({"endpoint": "pings"})),
        prepare_case(
            "free/ping-of-a-provider",
            &json!({"endpoint": "ping", "params": ["insee/sirene"]}),
        ),
        prepare_case("free/privileges", &json!({"endpoint": "privileges"})),
        prepare_case(
            "contract/a-request-that-is-not-one",
            &json!({"endpoint": "insee_unites_legales", "siren": "1"}),
        ),
        prepare_case("contract/not-an-object", &json!(["insee_unites_legales"])),
    ]
}

fn hand_written_parses() -> Result<Vec<Value>> {
    let find = |id: &str, version: u8| {
        api_entreprise_catalogue::find(id, Some(version)).with_context(|| format!("{id} v{version}"))
    };
    let sirene = call_for(find("insee_unites_legales", 3)?);
    let dgfip = call_for(find("dgfip_chiffres_affaires", 3)?);
    let privileges = call_for(find("privileges", 0)?);
    let ping = call_for(find("ping", 0)?);
    let error = |code: &str, meta: Value| {
        json!({"errors": [{"code": code, "title": "Titre", "detail": "Détail", "source": null, "meta": meta}]})
            .to_string()
    };
    let h = |pairs: &[(&'static str, String)]| pairs.to_vec();
    let reset = RESET.to_string();
    Ok(vec![
        parse_case(
            "status/429-retry-after-wins",
            &sirene,
            429,
            &h(&[("Retry-After", "7".into()), ("RateLimit-Reset", reset.clone())]),
            &error("00429", json!({})),
        ),
        parse_case(
            "status/429-waits-for-the-reset",
            &sirene,
            429,
            &h(&[
                ("RateLimit-Limit", "250".into()),
                ("RateLimit-Remaining", "0".into()),
                ("RateLimit-Reset", reset),
            ]),
            &error("00429", json!({})),
        ),
        parse_case(
            "status/503-maintenance-ends-with-retry-in",
            &sirene,
            503,
            &[],
            &error("01020", json!({"provider": "INSEE", "retry_in": 600})),
        ),
        parse_case("status/404-plain-text", &sirene, 404, &[], "Not Found\n"),
        parse_case("status/410-empty", &sirene, 410, &[], ""),
        parse_case(
            "status/409-in-flight-is-retryable",
            &dgfip,
            409,
            &[],
            &error("00015", json!({})),
        ),
        parse_case(
            "status/502-dgfip-03001-is-permanent",
            &dgfip,
            502,
            &[],
            &error("03001", json!({"provider": "DGFIP - Adélie"})),
        ),
        parse_case("status/302-is-unexpected", &sirene, 302, &[], ""),
        parse_case(
            "body/200-html-is-not-the-envelope",
            &sirene,
            200,
            &[],
            "<html>maintenance</html>",
        ),
        parse_case("body/200-without-data", &sirene, 200, &[], r#"{"links":{},"meta":{}}"#),
        parse_case(
            "body/unknown-fields-pass-through",
            &sirene,
            200,
            &[],
            r#"{"data":{"siren":"552049447","new_field":{"x":[1,2.5,null]}},"links":{},"meta":{"n":1}}"#,
        ),
        parse_case(
            "privileges/older-flat-shape",
            &privileges,
            200,
            &[],
            r#"{"privileges":["entreprises","attestations_fiscales"]}"#,
        ),
        parse_case(
            "health/502-a-provider-down",
            &ping,
            502,
            &[],
            r#"{"status":"bad_gateway","last_update":"2026-11-30T10:14:00Z","last_ok_status":"2026-11-30T09:00:00Z"}"#,
        ),
        // Headers that are not the contract's pairs: refused, not guessed.
        json!({
            "name": "contract/headers-not-pairs",
            "call": sirene,
            "status": 200,
            "headers": {"X": ""},
            "body": "{}",
            "expect": expect(codec::parse(&sirene.to_string(), 200, r#"{"X":""}"#, "{}", NOW)),
        }),
    ])
}

fn group(g: Option<api_entreprise_catalogue::Group>) -> Value {
    g.map_or(
        Value::Null,
        |g| json!({"name": g.name, "limit": g.limit, "period_seconds": g.period_seconds}),
    )
}

/// The policy table: what `catalogue::policy_of` decides, as data.
fn routes() -> Value {
    use api_entreprise_catalogue as catalogue;
    let routes: Vec<Value> = catalogue::all()
        .map(|e| {
            let policy = catalogue::policy_of_route(e);
            json!({
                "path": e.path,
                "free": policy.free,
                "document": policy.document,
                "group": group(policy.group),
            })
        })
        .collect();
    json!({
        "about": "The host catalogue's policy table, generated by `cargo xtask vectors` from catalogue/ (the \
                  official spec and throttle.yml): for each route template (`{name}` is one non-empty path \
                  segment, but a `{provider}` last in a template takes the rest of the path: one or more \
                  segments of lowercase letters, digits and `_`; a literal segment beats a placeholder), whether it is free of every quota, whether \
                  it gets the documents' timeout, and its per-token group. A path no template matches counts \
                  against `unknown_route` and every per-IP quota.",
        "timeouts_ms": {"json": catalogue::JSON_TIMEOUT_MS, "document": catalogue::DOCUMENT_TIMEOUT_MS},
        "ip_quotas": catalogue::IP_QUOTAS
            .map(|(limit, period_seconds)| json!({"limit": limit, "period_seconds": period_seconds})),
        "unknown_route": group(Some(catalogue::UNKNOWN_ROUTE)),
        "routes": routes,
    })
}

/// What a host decides for request paths: every route (with its template's
/// placeholders filled), and the paths a hostile component might send.
fn policy_cases() -> Value {
    use api_entreprise_catalogue as catalogue;
    let mut paths: Vec<String> = catalogue::all()
        .map(|e| {
            e.path
                .split('/')
                .map(|s| if s.starts_with('{') { "552049447" } else { s })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    paths.extend(
        [
            "/pings",
            "/ping/insee",
            "/ping/insee/sirene",
            "/ping/dgfip/attestation_fiscale",
            "/ping/insee/../../v3/insee/sirene/unites_legales/552049447",
            "/ping/insee//sirene",
            "/ping/Insee",
            "/ping",
            "/pings/../v3/insee",
            "/privileges",
            "/v3/insee/sirene/unites_legales/diffusibles/552049447",
            "/v3/insee/sirene/unites_legales/552049447/",
            "/v3/insee/sirene/unites_legales//",
            "/v9/nothing/here",
            "/",
            "",
        ]
        .map(str::to_owned),
    );
    let cases: Vec<Value> = paths
        .iter()
        .map(|path| {
            let p = catalogue::policy_of(path);
            json!({
                "name": path,
                "path": path,
                "expect": {"free": p.free, "document": p.document, "group": group(p.group)},
            })
        })
        .collect();
    json!({
        "about": "What a host's policy decides for a request's path, from the host's catalogue \
                  (catalogue/routes.json), generated by `cargo xtask vectors`: every host must decide `expect`.",
        "cases": cases,
    })
}
