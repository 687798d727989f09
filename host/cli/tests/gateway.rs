//! `api-entreprise serve` as an operator runs it: a real process with a
//! configuration file, in front of the sandbox, called over real HTTP.

use std::process::{Command, Stdio};

use api_entreprise_catalogue as catalogue;
use api_entreprise_gateway::hash_key;
use api_entreprise_sandbox::{DEFAULT_TOKEN, fixtures};
use api_entreprise_tests::raw_request;
use serde_json::Value;
use sha2::Digest as _;

#[path = "common/browser.rs"]
mod browser;
#[path = "common/gateway.rs"]
mod harness;
use browser::tempfile_dir;
use harness::*;

/// The path and query of an endpoint's example fixture.
fn example(e: &catalogue::Endpoint) -> Option<String> {
    let op = format!("api_entreprise_v{}_{}", e.version, e.id);
    let list = fixtures::all().get(op.as_str())?;
    let fixture = list
        .iter()
        .find(|f| f.example && f.status == 200)
        .or_else(|| list.iter().find(|f| f.status == 200))?;
    let mut path = e.path.to_owned();
    for (name, _) in e.params {
        path = path.replace(&format!("{{{name}}}"), &fixture.param(name)?);
    }
    let query: String = e
        .query
        .iter()
        .filter_map(|q| Some(format!("&{}={}", q.name, fixture.param(q.name)?)))
        .collect();
    Some(format!("{path}?{TRACE}{query}"))
}

/// `body` as text, each sandbox link's `EXPIRY-N` segment left out.
fn unnumbered(body: &Value) -> String {
    let text = body.to_string();
    let marker = "/__sandbox/files/";
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        rest = rest.find('/').map_or("", |slash| &rest[slash..]);
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_through_the_gateway_answers_as_the_sandbox_does() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let gateway = start("every", &two_applications(&sandbox, ""), &[]);
    let mut compared = 0;
    for e in catalogue::DATA_ENDPOINTS {
        let Some(path) = example(e) else { continue };
        let direct = get(&format!("{}{path}", sandbox.base_url()), Some(DEFAULT_TOKEN), None).await;
        let through = get(&format!("{}{path}", gateway.url), Some(BATCH_KEY), None).await;
        assert_eq!(direct.0, through.0, "{path}: {}", through.2);
        if direct.0 == 422 {
            // Refused locally, with the server's codes and parameters; the
            // details are the client's own (they say what to do).
            let faults = |body: &Value| -> Vec<(Value, Value)> {
                body["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (e["code"].clone(), e["source"].clone()))
                    .collect()
            };
            assert_eq!(faults(&direct.2), faults(&through.2), "{path}");
        } else {
            // Each answer's document links are links of their own (their
            // number and expiry differ); the rest is the same.
            assert_eq!(unnumbered(&direct.2), unnumbered(&through.2), "{path}");
        }
        // What the API sent with an answer, the gateway passes on (a local
        // refusal never reached it).
        for name in [
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "x-request-id",
        ] {
            if direct.0 != 422 && header(&direct.1, name).is_some() {
                assert!(header(&through.1, name).is_some(), "{path}: no {name}");
            }
        }
        compared += 1;
    }
    assert!(compared >= 45, "{compared} endpoints compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_allow_lists_and_fixed_fields_are_refused_in_the_apis_shape_and_nothing_leaves() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let fixed = r#"recipient = "13002526500013""#;
    let gateway = start("refusals", &two_applications(&sandbox, fixed), &[]);
    let sirene = |query: &str| format!("{}/v3/insee/sirene/unites_legales/552049447?{query}", gateway.url);
    let etablissement = format!("{}/v3/insee/sirene/etablissements/55204944776279?{TRACE}", gateway.url);

    let (status, _, body) = get(&sirene(TRACE), None, None).await;
    assert_eq!((status, codes(&body)), (401, vec!["00101"]), "no key");
    let (status, _, body) = get(&sirene(TRACE), Some("not-a-key"), None).await;
    assert_eq!((status, codes(&body)), (401, vec!["00101"]), "unknown key");
    let (status, _, body) = get(&etablissement, Some(PORTAIL_KEY), None).await;
    assert_eq!((status, codes(&body)), (403, vec!["00100"]), "outside the allow-list");
    assert!(
        body.to_string().contains("may not call `insee_etablissements`"),
        "{body}"
    );
    let (status, _, body) = get(&sirene(TRACE), Some(PORTAIL_KEY), None).await;
    assert_eq!(
        (status, codes(&body)),
        (403, vec!["00100"]),
        "another recipient than the fixed one"
    );
    let (status, _, body) = get(&sirene("context=x&object=y&recipient=1"), Some(BATCH_KEY), None).await;
    assert_eq!(status, 422, "invalid input, refused locally: {body}");
    assert!(codes(&body).contains(&"00210"), "{body}");
    let (status, _, body) = get(
        &format!("{}/v3/nothing/here?{TRACE}", gateway.url),
        Some(BATCH_KEY),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (404, Value::String("Not Found".into())),
        "the API's own 404"
    );
    let authorization = format!("Bearer {BATCH_KEY}");
    let (status, _, body) = raw_request("POST", &sirene(TRACE), &[("authorization", authorization.as_str())]).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, codes(&body)), (405, vec!["00405"]), "GET only");
    assert_eq!(data_requests(&sandbox).len(), 0, "nothing left the gateway");

    // The fixed recipient is sent when the caller leaves it out.
    let (status, _, body) = get(&sirene("context=aides&object=dossier"), Some(PORTAIL_KEY), None).await;
    assert_eq!(status, 200, "{body}");
    let sent = data_requests(&sandbox);
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].query.contains(&("recipient".into(), "13002526500013".into())),
        "{:?}",
        sent[0].query
    );
    assert!(sent[0].authorized, "the profile's token was sent");

    // One audit line per call, refusals included; never a key or a token.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let audit = gateway.audit();
    assert_eq!(audit.len(), 8, "{audit:?}");
    assert_eq!(audit[0]["status"], 401);
    assert_eq!(audit[0]["application"], Value::Null);
    assert_eq!(
        (audit[2]["application"].as_str(), audit[2]["codes"][0].as_str()),
        (Some("portail"), Some("00100"))
    );
    let last = &audit[7];
    assert_eq!(
        (last["status"].as_u64(), last["endpoint"].as_str()),
        (Some(200), Some("insee_unites_legales"))
    );
    assert_eq!(
        (last["profile"].as_str(), last["recipient"].as_str()),
        (Some("aides"), Some("13002526500013"))
    );
    assert!(last["request_id"].is_string() && last["latency_ms"].is_number());
    let trail = format!("{audit:?}");
    assert!(!trail.contains(DEFAULT_TOKEN) && !trail.contains(PORTAIL_KEY) && !trail.contains(BATCH_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_outside_the_tokens_privileges_is_refused_locally_in_the_apis_shape() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_scopes(Some(vec![
        "entreprises".into(),
        "unites_legales_etablissements_insee".into(),
    ]));
    let gateway = start("privileges", &two_applications(&sandbox, ""), &[]);
    let dgfip = format!(
        "{}/v3/dgfip/etablissements/55204944776279/chiffres_affaires?{TRACE}",
        gateway.url
    );
    let (status, _, body) = get(&dgfip, Some(BATCH_KEY), None).await;
    assert_eq!(
        (status, codes(&body)),
        (403, vec!["00100"]),
        "{body}: {}",
        std::fs::read_to_string(&gateway.stderr).unwrap()
    );
    assert!(body.to_string().contains("chiffre_affaires_dgfip"), "{body}");
    let sirene = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    assert_eq!(get(&sirene, Some(BATCH_KEY), None).await.0, 200);
    let paths: Vec<String> = sandbox.requests().into_iter().map(|r| r.path).collect();
    assert!(!paths.iter().any(|p| p.contains("dgfip")), "{paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_calls_in_flight_finish_then_exits() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_latency(std::time::Duration::from_millis(1500));
    let mut gateway = start("drain", &two_applications(&sandbox, ""), &[]);
    let url = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    let in_flight = tokio::spawn(async move { get(&url, Some(BATCH_KEY), None).await.0 });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &gateway.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(in_flight.await.unwrap(), 200, "the call in flight finished");
    let status = gateway.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit");
}

/// Three applications of shares 0.5, 0.25 and 0.25 that always want more,
/// through `gateways` (each application's calls go to each in turn).
/// While the third is idle the busy two split its part in proportion
/// (2/3 and 1/3 of the per-IP quota); once it asks, it has its quarter
/// within one window; and the sandbox never sees more in a window than the
/// per-IP quota.
async fn fair_shares_hold(gateways: &[&Gateway], sandbox: &api_entreprise_sandbox::Sandbox) {
    use std::time::{Duration, Instant};
    const LIMIT: usize = 30;
    // The host's window: 3 s, kept 500 ms wider.
    let window = Duration::from_millis(3500);
    let keys = [
        "fair-key-a-0123456789",
        "fair-key-b-0123456789",
        "fair-key-c-0123456789",
    ];
    let start = Instant::now();
    let end = window * 4;
    let mut loops = Vec::new();
    for (which, key) in keys.into_iter().enumerate() {
        // The third comes back after two windows.
        let from = if which == 2 { window * 2 } else { Duration::ZERO };
        for task in 0..3 {
            let urls: Vec<String> = gateways
                .iter()
                .map(|g| {
                    format!(
                        "{}/v3/insee/sirene/unites_legales/418166096?{TRACE}&object=app-{which}",
                        g.url
                    )
                })
                .map(|u| u.replace("object=dossier%2042&", ""))
                .collect();
            loops.push(tokio::spawn(async move {
                tokio::time::sleep_until((start + from).into()).await;
                let mut i = task;
                while start.elapsed() < end {
                    let (status, ..) = get(&urls[i % urls.len()], Some(key), None).await;
                    i += 1;
                    assert!(status == 200 || status == 429, "{status}");
                    if status == 429 {
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                }
            }));
        }
    }
    for task in loops {
        task.await.unwrap();
    }
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - start.elapsed().as_millis() as u64;
    let arrivals: Vec<(usize, u64)> = data_requests(sandbox)
        .iter()
        .map(|r| {
            let object = &r.query.iter().find(|(k, _)| k == "object").unwrap().1;
            (
                object.trim_start_matches("app-").parse().unwrap(),
                r.at_unix_ms - started_ms,
            )
        })
        .collect();
    never_more_than(sandbox, LIMIT, 3000);
    let counts = |from: Duration| {
        let (from, to) = (from.as_millis() as u64, (from + window).as_millis() as u64);
        let mut counts = [0usize; 3];
        for (which, at) in &arrivals {
            if (from..to).contains(at) {
                counts[*which] += 1;
            }
        }
        counts
    };
    // Greedy callers take the slots as they free: the traffic comes in a
    // burst each window. Each count spans one window around one burst.
    let idle = counts(window / 2);
    let back = [counts(window * 3 / 2), counts(window * 5 / 2)];
    eprintln!("the third idle: {idle:?}; the two windows after it came back: {back:?}");
    assert!(
        idle[2] == 0 && idle[0].abs_diff(20) <= 3 && idle[1].abs_diff(10) <= 3,
        "the busy two did not split the idle one's part in proportion: {idle:?}"
    );
    for back in back {
        assert!(
            (6..=10).contains(&back[2]) && back[0].abs_diff(15) <= 3 && (5..=10).contains(&back[1]),
            "the third did not get its quarter back within a window: {back:?}"
        );
    }
}

/// The configuration of the three applications of [`fair_shares_hold`].
fn three_fair_applications(sandbox: &api_entreprise_sandbox::Sandbox) -> String {
    let mut config = format!(
        "base_url = \"{}\"\n[profiles.aides]\ntoken_env = \"GATEWAY_TEST_TOKEN\"\nrate_limit_per_minute = 100000\n",
        sandbox.base_url()
    );
    for (name, share) in [("a", 0.5), ("b", 0.25), ("c", 0.25)] {
        config += &format!(
            "[applications.{name}]\nkey_sha256 = \"{}\"\nprofile = \"aides\"\nshare = {share}\n",
            hash_key(&format!("fair-key-{name}-0123456789"))
        );
    }
    config
}

/// The shares lend what is idle and take it back (`fair_shares_hold`), in
/// one gateway on the machine's state file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_applications_share_is_lent_in_proportion_and_comes_back_within_a_window() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let gateway = start("fair", &three_fair_applications(&sandbox), &["--ip-quota", "30/3s"]);
    fair_shares_hold(&[&gateway], &sandbox).await;
}

/// The same across two gateways sharing one Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_redis_lend_and_take_back_the_shares_together() {
    let redis = api_entreprise_tests::RedisServer::start();
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let config = three_fair_applications(&sandbox);
    let global = ["--ip-quota", "30/3s", "--redis-url", &redis.url()];
    let fleet = [start("fair-a", &config, &global), start("fair-b", &config, &global)];
    fair_shares_hold(&[&fleet[0], &fleet[1]], &sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_an_applications_own_origins_and_no_token_leaks() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let gateway = start("cors", &two_applications(&sandbox, ""), &[]);
    let url = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    let preflight = |origin: &'static str| {
        let url = url.clone();
        async move {
            raw_request(
                "OPTIONS",
                &url,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "authorization"),
                ],
            )
            .await
        }
    };
    let (_, headers, _) = preflight(ORIGIN).await;
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(ORIGIN));
    let (_, headers, _) = preflight("https://elsewhere.example").await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        None,
        "another origin gets no CORS grant"
    );

    let (status, headers, body) = get(&url, Some(PORTAIL_KEY), Some(ORIGIN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(ORIGIN));
    // The batch application lists no origin: a browser page cannot use its key.
    let (status, _, body) = get(&url, Some(BATCH_KEY), Some(ORIGIN)).await;
    assert_eq!((status, codes(&body)), (403, vec!["00100"]));

    // The token is in no answer and no line the gateway wrote.
    let everything = format!("{body}{headers:?}{}", std::fs::read_to_string(&gateway.stderr).unwrap());
    assert!(!everything.contains(DEFAULT_TOKEN) && !everything.contains(PORTAIL_KEY));
}

#[test]
fn a_configuration_fault_is_named_and_serve_with_a_token_but_no_configuration_says_what_to_do() {
    let dir = std::env::temp_dir().join(format!("api-entreprise-gateway-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, "[profiles.p]\ntoken = \"eyJhbGciOi\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_api-entreprise"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("API_ENTREPRISE_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("unknown field `token`"), "{stderr}");
    let output = Command::new(env!("CARGO_BIN_EXE_api-entreprise"))
        .arg("serve")
        .env("API_ENTREPRISE_TOKEN", "eyJ.x.y")
        .env_remove("API_ENTREPRISE_GATEWAY_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("give --config"), "{stderr}");
    let hashed = Command::new(env!("CARGO_BIN_EXE_api-entreprise"))
        .args(["serve", "--hash-key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"test\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&hashed.stdout).trim(), hash_key("test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_says_alive_and_readyz_says_whether_the_api_answers() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let gateway = start("ready", &two_applications(&sandbox, ""), &[]);
    let (status, _, body) = raw_request("GET", &format!("{}/healthz", gateway.url), &[]).await;
    assert_eq!((status, String::from_utf8_lossy(&body).trim()), (200, "ok"));
    let (status, _, body) = raw_request("GET", &format!("{}/readyz", gateway.url), &[]).await;
    assert_eq!((status, String::from_utf8_lossy(&body).trim()), (200, "ready"));
    // A gateway whose API does not answer starts, but is not ready.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = two_applications(&sandbox, "").replace(&sandbox.base_url(), &format!("http://{closed}"));
    let silent = start("unready", &config, &[]);
    let (status, _, body) = raw_request("GET", &format!("{}/readyz", silent.url), &[]).await;
    let body = String::from_utf8_lossy(&body);
    // Without a key, nothing about profiles or tokens.
    assert_eq!((status, body.trim()), (503, "not ready"), "{body}");
    let bearer = format!("Bearer {BATCH_KEY}");
    let (status, _, body) = raw_request("GET", &format!("{}/readyz", silent.url), &[("authorization", &bearer)]).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("profile aides: the API's /pings failed"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_greedy_caller_cannot_hold_the_gateway() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    let sandbox = api_entreprise_tests::sandbox().await;
    let config = two_applications(&sandbox, "")
        + "\n[limits]\nmax_connections = 3\nheader_read_timeout_seconds = 1\nmax_header_bytes = 8192\n";
    let gateway = start("limits", &config, &[]);
    let addr = gateway.url.trim_start_matches("http://").to_owned();
    // Three idle connections fill the cap: a fourth takes the place of the
    // oldest, which is closed at once, and is served.
    let mut idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = TcpStream::connect(&addr).unwrap();
    assert!(
        closed_within(&mut idle.remove(0), Duration::from_millis(800)),
        "past the cap, the oldest idle connection is closed at once"
    );
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    fourth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = fourth.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    idle.push(TcpStream::connect(&addr).unwrap());

    // A caller that never finishes its headers is cut off after 1 s.
    let started = Instant::now();
    idle[0].write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(closed_within(&mut idle[0], Duration::from_secs(5)));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    for stream in &mut idle[1..] {
        assert!(
            closed_within(stream, Duration::from_secs(5)),
            "idle connections are closed too"
        );
    }

    // Headers past the cap are refused; a normal request is served.
    let mut big = TcpStream::connect(&addr).unwrap();
    let header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = big.write_all(header.as_bytes());
    let mut answer = String::new();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    let (status, _, _) = raw_request("GET", &format!("{}/healthz", gateway.url), &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_applications_under_traffic_without_a_failed_request() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let config = two_applications(&sandbox, "");
    let gateway = start("reload", &config, &[]);
    let path = std::env::temp_dir()
        .join(format!("api-entreprise-gateway-reload-{}", std::process::id()))
        .join("gateway.toml");
    let url = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    let traffic = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..60 {
                statuses.push(get(&url, Some(BATCH_KEY), None).await.0);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            statuses
        })
    };
    const THIRD_KEY: &str = "third-key-5555555555";
    assert_eq!(get(&url, Some(THIRD_KEY), None).await.0, 401);
    let third = format!(
        "{config}\n[applications.third]\nkey_sha256 = \"{}\"\nprofile = \"aides\"\n",
        hash_key(THIRD_KEY)
    );
    std::fs::write(&path, third).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    hangup(gateway.child.id());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(get(&url, Some(THIRD_KEY), None).await.0, 200, "the new key is served");

    // A configuration with a fault leaves the running one as it was.
    std::fs::write(&path, "[applications.x]\nkey_sha256 = \"nope\"\n").unwrap();
    hangup(gateway.child.id());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(get(&url, Some(THIRD_KEY), None).await.0, 200);
    let stderr = std::fs::read_to_string(&gateway.stderr).unwrap();
    assert!(
        stderr.contains("reloaded") && stderr.contains("stays as it was"),
        "{stderr}"
    );

    let statuses = traffic.await.unwrap();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_one_redis_never_pass_the_per_ip_quota_together() {
    let redis = api_entreprise_tests::RedisServer::start();
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let config = format!(
        "base_url = \"{}\"\n[profiles.aides]\ntoken_env = \"GATEWAY_TEST_TOKEN\"\n\
         [applications.batch]\nkey_sha256 = \"{}\"\nprofile = \"aides\"\n",
        sandbox.base_url(),
        hash_key(BATCH_KEY)
    );
    let global = ["--ip-quota", "6/3s", "--redis-url", &redis.url()];
    let fleet = [start("fleet-a", &config, &global), start("fleet-b", &config, &global)];
    let mut calls = Vec::new();
    for round in 0..40 {
        let url = format!(
            "{}/v3/insee/sirene/unites_legales/552049447?{TRACE}",
            fleet[round % 2].url
        );
        calls.push(tokio::spawn(async move { get(&url, Some(BATCH_KEY), None).await.0 }));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert!(served >= 6, "{statuses:?}");
    // Every arrival, the gateways' own /privileges included (their free
    // /pings are not counted): never more than 6 in any 3 s.
    never_more_than(&sandbox, 6, 3000);
    let arrivals = sandbox.requests().iter().filter(|r| r.path != "/pings").count();
    assert_eq!(arrivals, served + 2, "the refused calls sent nothing");
}

/// A page server of the test's own: its origin, and the page it answers to
/// any request (set once the gateway's address is known).
fn page_server() -> (String, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let page = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let served = page.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let page = served.lock().unwrap().clone();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (origin, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_from_an_allowed_origin_calls_the_gateway_and_another_origin_is_blocked() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let (allowed, allowed_page) = page_server();
    let (other, other_page) = page_server();
    let gateway = start(
        "browser",
        &two_applications(&sandbox, "").replace(ORIGIN, &allowed),
        &[],
    );
    // The page calls the gateway with fetch and writes what it got.
    let page = format!(
        r#"<!doctype html><html><body><p id="out">waiting</p><script>
        fetch("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}",
              {{ headers: {{ Authorization: "Bearer {PORTAIL_KEY}" }} }})
          .then(r => r.json().then(j => [r.status, j, r.headers.get("ratelimit-remaining")]))
          .then(([status, j, remaining]) => {{
            document.getElementById("out").textContent =
              "answered " + status + " " + j.data.siren + " remaining " + remaining + " " + JSON.stringify(j);
          }})
          .catch(e => {{ document.getElementById("out").textContent = "blocked " + e; }});
        </script></body></html>"#,
        gateway.url
    );
    page.clone_into(&mut allowed_page.lock().unwrap());
    page.clone_into(&mut other_page.lock().unwrap());

    let dom = tokio::task::spawn_blocking(move || {
        browser::dom(&format!("{allowed}/page.html"), 5000, &tempfile_dir("chromium"))
    })
    .await
    .unwrap();
    assert!(dom.contains("answered 200 552049447 remaining "), "{dom}");
    assert!(
        !dom.contains("remaining null"),
        "the page reads the exposed RateLimit headers: {dom}"
    );
    let dom_elsewhere = tokio::task::spawn_blocking(move || {
        browser::dom(&format!("{other}/page.html"), 5000, &tempfile_dir("chromium"))
    })
    .await
    .unwrap();
    assert!(dom_elsewhere.contains("blocked TypeError"), "{dom_elsewhere}");
    // The API token is in nothing the pages received.
    assert!(!dom.contains(DEFAULT_TOKEN) && !dom_elsewhere.contains(DEFAULT_TOKEN));
    assert_eq!(
        data_requests(&sandbox).len(),
        1,
        "the blocked page's call was refused before the API"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_are_on_their_own_listener_and_hold_no_secret() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let config = format!("metrics_listen = \"127.0.0.1:0\"\n{}", two_applications(&sandbox, ""));
    let gateway = start("metrics", &config, &[]);
    let url = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    assert_eq!(get(&url, Some(BATCH_KEY), None).await.0, 200);
    assert_eq!(get(&url, Some("wrong"), None).await.0, 401);
    let stderr = std::fs::read_to_string(&gateway.stderr).unwrap();
    let metrics_url = stderr
        .lines()
        .find_map(|l| l.strip_prefix("metrics on "))
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_owned();
    let (status, _, body) = raw_request("GET", &metrics_url, &[]).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    for expected in [
        r#"api_entreprise_gateway_requests_total{application="batch",endpoint="insee_unites_legales",status="200"} 1"#,
        r#"api_entreprise_gateway_requests_total{application="-",endpoint="-",status="401"} 1"#,
        r#"api_entreprise_quota_remaining{endpoint="insee_unites_legales",profile="aides"}"#,
        concat!(
            r#"api_entreprise_component_info{contract="0.2.0",profile="aides",version=""#,
            env!("CARGO_PKG_VERSION"),
            " ("
        ),
        r#"api_entreprise_circuit_open_seconds{circuit="api",profile="aides"} 0"#,
        "api_entreprise_gateway_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(!text.contains(DEFAULT_TOKEN) && !text.contains(BATCH_KEY));
    // Not on the API's listener.
    let (status, _, _) = raw_request("GET", &format!("{}/metrics", gateway.url), &[]).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_with_a_profile_uses_its_token_and_its_trace_fields() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = tempfile_dir("profile");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "base_url = \"{}\"\n[profiles.aides]\ntoken_env = \"GATEWAY_TEST_TOKEN\"\n\
             context = \"aides publiques\"\nrecipient = \"13002526500013\"\nobject = \"dossier 42\"\n",
            sandbox.base_url()
        ),
    )
    .unwrap();
    let run = move |profile: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_api-entreprise"));
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("API_ENTREPRISE_") {
                command.env_remove(var);
            }
        }
        command
            .args(["--config", config.to_str().unwrap(), "--profile", profile])
            .args(["call", "insee_unites_legales", "552049447", "--object", "dossier 43"])
            .env("GATEWAY_TEST_TOKEN", DEFAULT_TOKEN)
            .env("API_ENTREPRISE_STATE_DIR", dir.join("state"))
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(move || (run("aides"), run("nope")))
        .await
        .unwrap();
    let (ok, unknown) = out;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let sent = data_requests(&sandbox);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].authorized, "the profile's token");
    let query = &sent[0].query;
    assert!(
        query.contains(&("recipient".into(), "13002526500013".into())),
        "{query:?}"
    );
    assert!(
        query.contains(&("context".into(), "aides publiques".into())),
        "{query:?}"
    );
    assert!(
        query.contains(&("object".into(), "dossier 43".into())),
        "a flag wins over the profile: {query:?}"
    );
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success() && stderr.contains("no profile `nope`") && stderr.contains("aides"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_swaps_its_client_under_traffic_and_the_admin_route_checks_and_rolls_back() {
    const ADMIN_KEY: &str = "admin-key-7777777777";
    const UNLIMITED: u32 = 100_000_000;
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(UNLIMITED));
    let dir = tempfile_dir("gateway-swap");
    let component = dir.join("client.wasm");
    std::fs::copy(api_entreprise_component::CLIENT_PATH, &component).unwrap();
    let config = format!(
        r#"
        admin_key_sha256 = "{admin}"
        base_url = "{base}"
        metrics_listen = "127.0.0.1:0"
        [profiles.aides]
        token_env = "GATEWAY_TEST_TOKEN"
        rate_limit_per_minute = {UNLIMITED}
        [applications.batch]
        key_sha256 = "{batch}"
        profile = "aides"
        "#,
        admin = hash_key(ADMIN_KEY),
        base = sandbox.base_url(),
        batch = hash_key(BATCH_KEY),
    );
    let gateway = start(
        "swap",
        &config,
        &[
            "--component",
            component.to_str().unwrap(),
            "--ip-quota",
            &format!("{UNLIMITED}/1m"),
        ],
    );
    let stderr = || std::fs::read_to_string(&gateway.stderr).unwrap();
    let url = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    let admin = format!("{}/admin/component", gateway.url);
    let bearer = format!("Bearer {ADMIN_KEY}");
    let as_admin = [("authorization", bearer.as_str())];
    let serving = |body: &[u8]| -> Value {
        let status: Value = serde_json::from_slice(body).unwrap();
        status["profiles"]["aides"].clone()
    };

    // Continuous traffic, concurrency 16, while the component file is
    // replaced (by a rename, as a deployment does) with the new version.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    statuses.push(get(&url, Some(BATCH_KEY), None).await.0);
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let staged = dir.join("client.wasm.new");
    std::fs::copy(api_entreprise_component::CLIENT_NEXT_PATH, &staged).unwrap();
    std::fs::rename(&staged, &component).unwrap();
    let started = std::time::Instant::now();
    while !stderr().contains("replaces") {
        assert!(started.elapsed().as_secs() < 120, "no swap:\n{}", stderr());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }
    let failed = statuses.iter().filter(|s| **s != 200).count();
    eprintln!("swap through the gateway: {} requests, {failed} failed", statuses.len());
    assert_eq!(failed, 0, "{statuses:?}");
    let agents = api_entreprise_tests::user_agents(&sandbox);
    assert!(agents.iter().any(|a| a.contains("-next")) && agents.iter().any(|a| !a.contains("-next")));
    let audit = gateway.audit();
    assert!(
        audit
            .iter()
            .any(|l| l["client"].as_str().is_some_and(|c| c.starts_with("0.1.0-next (")))
    );

    // The admin route: its own key only.
    assert_eq!(raw_request("GET", &admin, &[]).await.0, 401);
    let batch = format!("Bearer {BATCH_KEY}");
    assert_eq!(raw_request("GET", &admin, &[("authorization", &batch)]).await.0, 401);
    let (status, _, body) = raw_request("GET", &admin, &as_admin).await;
    assert_eq!(status, 200);
    let aides = serving(&body);
    assert_eq!(aides["current"]["version"], "0.1.0-next", "{aides}");
    assert_eq!(aides["previous"]["version"], "0.1.0", "{aides}");

    // A broken version is refused by the canary; the serving one stays.
    let broken = std::fs::read(api_entreprise_component::CLIENT_BROKEN_PATH).unwrap();
    let (status, _, body) = api_entreprise_tests::raw_send("POST", &admin, &as_admin, broken).await;
    let report = String::from_utf8_lossy(&body);
    assert_eq!(status, 409, "{report}");
    assert!(report.contains("refused") && report.contains("it traps"), "{report}");
    let (_, _, body) = raw_request("GET", &admin, &as_admin).await;
    assert_eq!(serving(&body)["current"]["version"], "0.1.0-next");

    // Rollback; then SIGHUP sees that the file holds another version, and
    // swaps to it again.
    let (status, _, body) = raw_request("POST", &format!("{admin}/rollback"), &as_admin).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (_, _, body) = raw_request("GET", &admin, &as_admin).await;
    assert_eq!(serving(&body)["current"]["version"], "0.1.0");
    assert!(
        Command::new("kill")
            .args(["-HUP", &gateway.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    loop {
        let (_, _, body) = raw_request("GET", &admin, &as_admin).await;
        if serving(&body)["current"]["version"] == "0.1.0-next" {
            break;
        }
        assert!(started.elapsed().as_secs() < 120, "SIGHUP did not swap:\n{}", stderr());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(get(&url, Some(BATCH_KEY), None).await.0, 200);

    // Every change is in the metrics.
    let metrics_url = stderr()
        .lines()
        .find_map(|l| l.strip_prefix("metrics on "))
        .unwrap()
        .to_owned();
    let text = String::from_utf8(raw_request("GET", &metrics_url, &[]).await.2).unwrap();
    for expected in [
        r#"api_entreprise_component_swaps_total{outcome="swapped"} 2"#,
        r#"api_entreprise_component_swaps_total{outcome="refused"} 1"#,
        r#"api_entreprise_component_swaps_total{outcome="rolled_back"} 1"#,
        r#"api_entreprise_component_info{contract="0.2.0",profile="aides",version="0.1.0-next ("#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apis_provider_health_routes_answer_as_the_api_does_free_of_the_share() {
    let sandbox = api_entreprise_tests::sandbox().await;
    // `portail` may call Sirene only and has the smallest share possible.
    let gateway = start(
        "pings",
        &two_applications(&sandbox, "share = 0.0001"),
        &["--ip-quota", "10/1m"],
    );
    for path in ["/ping/insee/sirene", "/ping/dgfip/attestation_fiscale", "/pings"] {
        for _ in 0..3 {
            let (status, _, body) = get(&format!("{}{path}", gateway.url), Some(PORTAIL_KEY), None).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert!(body.to_string().contains("\"status\":\"ok\""), "{path}: {body}");
        }
    }
    let (status, _, _) = get(&format!("{}/ping/insee/sirene", gateway.url), None, None).await;
    assert_eq!(status, 401, "keyed: nothing an unknown caller sends goes upstream");
    let pings = sandbox
        .requests()
        .iter()
        .filter(|r| r.path == "/ping/insee/sirene")
        .count();
    assert_eq!(pings, 3);
    // The share (1 of the per-IP quota) is still whole for a data call.
    let url = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    assert_eq!(get(&url, Some(PORTAIL_KEY), None).await.0, 200);
}

/// A profile whose token the API blacklists (`00105`): the first refusal is
/// the API's, the next ones the gateway's own, in the same shape, with
/// nothing sent; `/readyz` says why to a caller with a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_token_stops_its_profiles_calls_and_readyz_says_so() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let gateway = start("token-fault", &two_applications(&sandbox, ""), &[]);
    let sirene = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    sandbox.set_token_fault(Some("00105"));
    let (status, _, body) = get(&sirene, Some(BATCH_KEY), None).await;
    assert_eq!(
        (status, codes(&body)),
        (401, vec!["00105"]),
        "the API's own refusal: {body}"
    );
    for _ in 0..3 {
        let (status, headers, body) = get(&sirene, Some(BATCH_KEY), None).await;
        assert_eq!((status, codes(&body)), (401, vec!["00105"]), "{body}");
        let text = body.to_string();
        assert!(
            text.contains("nothing was sent") && text.contains("entreprise.api.gouv.fr/compte"),
            "{text}"
        );
        assert!(headers.iter().any(|(k, _)| k == "retry-after"), "{headers:?}");
    }
    assert_eq!(data_requests(&sandbox).len(), 1, "one request reached the API");
    let bearer = format!("Bearer {BATCH_KEY}");
    let (status, _, body) = raw_request("GET", &format!("{}/readyz", gateway.url), &[("authorization", &bearer)]).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("the API refused its token (00105 Jeton sur liste noire)"),
        "{body}"
    );
}

/// A token that expires within 30 days is said on stderr at start (and then
/// once a day), with the date and what to do; within 7 days, as an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_soon_is_said_once_with_its_date_and_what_to_do() {
    let jwt = jwt("expiring", 5 * 86_400 + 3_600);
    let sandbox = sandbox_taking(&jwt).await;
    let gateway = start_with(
        "expiring",
        &two_applications(&sandbox, ""),
        &[],
        &[("GATEWAY_TEST_TOKEN", &jwt)],
    );
    let sirene = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    assert_eq!(get(&sirene, Some(BATCH_KEY), None).await.0, 200, "the token works");
    let stderr = std::fs::read_to_string(&gateway.stderr).unwrap();
    assert_eq!(stderr.matches("its token expires on").count(), 1, "{stderr}");
    assert!(
        stderr.contains("in 5 day(s)") && stderr.contains("DataPass") && stderr.contains("ERROR"),
        "{stderr}"
    );
    assert!(!stderr.contains(&jwt), "the token itself is never written");
}

/// The metric `name{labels…}`'s value on a gateway's metrics listener.
async fn metric_value(metrics_url: &str, series: &str) -> Option<f64> {
    let (_, _, body) = raw_request("GET", metrics_url, &[]).await;
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Waits up to 10 s for the gateway's stderr to say `what` `times` times.
fn wait_for_stderr(gateway: &Gateway, what: &str, times: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stderr = std::fs::read_to_string(&gateway.stderr).unwrap();
        if stderr.matches(what).count() >= times {
            return stderr;
        }
        assert!(std::time::Instant::now() < deadline, "never said {what:?}: {stderr}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A renewed token written to the profile's token file is checked with
/// `/privileges`, then used, while calls go on: none of them fails, and once
/// the old token is revoked at the API the calls still work. A token the
/// API refuses is not taken: the one in use stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotates_under_traffic_with_no_failed_request_and_a_refused_one_is_not_taken() {
    const RENEWED: &str = "renewed-token-0123456789";
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = std::env::temp_dir().join(format!("api-entreprise-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("aides.token");
    // Written as a secret manager does: a new file renamed over the old one.
    let write_token = |token: &str| {
        let next = dir.join("aides.token.next");
        std::fs::write(&next, format!("{token}\n")).unwrap();
        std::fs::rename(&next, &token_file).unwrap();
    };
    write_token(DEFAULT_TOKEN);
    let config = format!(
        r#"
        base_url = "{}"
        metrics_listen = "127.0.0.1:0"
        [profiles.aides]
        token_file = "{}"
        [applications.batch]
        key_sha256 = "{}"
        profile = "aides"
        "#,
        sandbox.base_url(),
        token_file.display(),
        hash_key(BATCH_KEY)
    );
    let gateway = start("rotation", &config, &[]);
    let metrics = gateway.said("metrics on ");

    // Calls all along, one every 25 ms.
    let sirene = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (sirene, stop) = (sirene.clone(), stop.clone());
        async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                statuses.push(get(&sirene, Some(BATCH_KEY), None).await.0);
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            statuses
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // The renewal: the API takes both tokens, with other scopes for the new.
    sandbox.accept_token(RENEWED);
    sandbox.set_scopes(Some(vec![
        "unites_legales_etablissements_insee".into(),
        "nouveau_scope".into(),
    ]));
    write_token(RENEWED);
    let stderr = wait_for_stderr(&gateway, "a new token is in use", 1);
    assert!(stderr.contains("scopes gained: nouveau_scope"), "{stderr}");
    assert!(
        stderr.contains("scopes lost: ") && stderr.contains("associations"),
        "{stderr}"
    );
    assert!(!stderr.contains(RENEWED), "the token itself is never written");
    // The old token is no longer taken: the calls go on with the new one.
    sandbox.revoke_token(DEFAULT_TOKEN);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // A token the API refuses: checked, not taken, the one in use stays.
    write_token("a-token-the-api-does-not-know");
    let stderr = wait_for_stderr(&gateway, "the token in use stays", 1);
    assert!(
        stderr.contains("the API's /privileges refused the new token (HTTP 401: 00101"),
        "{stderr}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statuses = traffic.await.unwrap();
    let failed: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(statuses.len() >= 40, "{} calls", statuses.len());
    assert!(
        failed.is_empty(),
        "{} of {} calls failed: {failed:?}",
        failed.len(),
        statuses.len()
    );
    println!(
        "rotation under traffic: {} calls, none failed, across a rotation, a revocation of the old token and a refused token",
        statuses.len()
    );
    // Nothing was sent with a token the API did not take but the refused
    // one's single check.
    let unauthorized: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| !r.authorized && r.path != "/pings")
        .map(|r| r.path)
        .collect();
    assert_eq!(unauthorized, vec!["/privileges".to_owned()]);
    let rotated = r#"api_entreprise_token_rotations_total{outcome="rotated",profile="aides"}"#;
    let refused = r#"api_entreprise_token_rotations_total{outcome="refused",profile="aides"}"#;
    assert_eq!(metric_value(&metrics, rotated).await, Some(1.0));
    assert_eq!(metric_value(&metrics, refused).await, Some(1.0));
}

/// SIGHUP with a configuration that adds a profile (a new token) and an
/// application on it, then one that drops the first profile with its
/// application: the new key is served without a restart, through the new
/// profile's token (read and checked at reload), and the dropped
/// application's key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_added_and_removed_by_sighup_without_a_restart() {
    const MARCHES_KEY: &str = "marches-key-7777777777";
    let sandbox = api_entreprise_tests::sandbox().await;
    let first = format!(
        "base_url = \"{}\"\n[profiles.aides]\ntoken_env = \"GATEWAY_TEST_TOKEN\"\n\
         [applications.batch]\nkey_sha256 = \"{}\"\nprofile = \"aides\"\n",
        sandbox.base_url(),
        hash_key(BATCH_KEY)
    );
    let gateway = start("profiles", &first, &[]);
    let path = gateway.dir.join("gateway.toml");
    let token_file = gateway.dir.join("marches.token");
    std::fs::write(&token_file, DEFAULT_TOKEN).unwrap();
    let marches = format!(
        "[profiles.marches]\ntoken_file = \"{}\"\n[applications.marches]\nkey_sha256 = \"{}\"\nprofile = \"marches\"\n",
        token_file.display(),
        hash_key(MARCHES_KEY)
    );
    let sirene = format!("{}/v3/insee/sirene/unites_legales/552049447?{TRACE}", gateway.url);
    assert_eq!(get(&sirene, Some(MARCHES_KEY), None).await.0, 401);
    let said = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let stderr = std::fs::read_to_string(&gateway.stderr).unwrap();
            if stderr.matches("reloaded ").count() >= n {
                return stderr;
            }
            assert!(std::time::Instant::now() < deadline, "no reload said: {stderr}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };

    std::fs::write(&path, format!("{first}\n{marches}")).unwrap();
    hangup(gateway.child.id());
    let stderr = said(1);
    assert!(
        stderr.contains("2 application(s); profile(s) added: marches"),
        "{stderr}"
    );
    assert_eq!(
        get(&sirene, Some(MARCHES_KEY), None).await.0,
        200,
        "the new profile serves"
    );
    assert_eq!(get(&sirene, Some(BATCH_KEY), None).await.0, 200);

    let only_marches = format!("base_url = \"{}\"\n{marches}", sandbox.base_url());
    std::fs::write(&path, only_marches).unwrap();
    hangup(gateway.child.id());
    let stderr = said(2);
    assert!(
        stderr
            .contains("1 application(s); profile(s) removed: aides (their applications' keys are refused from now on)"),
        "{stderr}"
    );
    assert_eq!(
        get(&sirene, Some(BATCH_KEY), None).await.0,
        401,
        "the dropped application"
    );
    assert_eq!(get(&sirene, Some(MARCHES_KEY), None).await.0, 200);
    // Readiness is judged on the profiles now running.
    let bearer = format!("Bearer {MARCHES_KEY}");
    let (status, _, body) = raw_request("GET", &format!("{}/readyz", gateway.url), &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

/// An application that works under an official use case calls what it
/// recommends or allows; what it forbids, or does not name, is refused with
/// 403 in the API's shape, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_under_a_use_case_is_refused_what_the_use_case_does_not_allow() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let gateway = start(
        "use-case",
        &two_applications(&sandbox, "").replace(
            "[applications.batch]",
            "[applications.batch]\nuse_case = \"socle_de_base\"",
        ),
        &[],
    );
    let url = |path: &str| format!("{}{path}?{TRACE}", gateway.url);
    let allowed = get(&url("/v3/insee/sirene/unites_legales/552049447"), Some(BATCH_KEY), None).await;
    assert_eq!(allowed.0, 200, "{}", allowed.2);
    let sent = data_requests(&sandbox).len();
    for (path, why) in [
        ("/v4/dgfip/unites_legales/552049447/attestation_fiscale", "forbids"),
        (
            "/v3/insee/sirene/etablissements/55204944776279/successions",
            "does not name",
        ),
    ] {
        let (status, _, body) = get(&url(path), Some(BATCH_KEY), None).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(codes(&body), ["00100"]);
        assert!(
            body.to_string()
                .contains(&format!("works under the use case `socle_de_base`, which {why}")),
            "{body}"
        );
    }
    assert_eq!(data_requests(&sandbox).len(), sent, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_is_served_to_an_application_whose_use_case_allows_it() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dossiers = std::env::temp_dir().join(format!("api-entreprise-gateway-dossiers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dossiers);
    let config = format!(
        "dossiers_dir = {:?}\n{}",
        dossiers.display().to_string(),
        two_applications(&sandbox, "").replace(
            "[applications.batch]",
            "[applications.batch]\nuse_case = \"marches_publics\""
        )
    );
    let gateway = start("dossiers", &config, &[]);
    let url = |path: &str, use_case: &str| format!("{}{path}?use_case={use_case}&{TRACE}", gateway.url);
    let (status, _, manifest) = get(&url("/dossiers/418166096", "marches_publics"), Some(BATCH_KEY), None).await;
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(manifest["use_case"], "marches_publics");
    assert!(
        manifest["summary"]["complete"].as_bool().unwrap(),
        "{}",
        manifest["summary"]
    );
    let recommended: std::collections::BTreeSet<&str> = catalogue::use_case("marches_publics")
        .unwrap()
        .recommended
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(manifest["items"].as_array().unwrap().len(), recommended.len());
    let sent = data_requests(&sandbox).len();
    assert!(sent >= 10, "{sent}");
    // Its files, from the gateway, with the key only.
    let urssaf = manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["endpoint"] == "acoss_attestations_sociales")
        .unwrap();
    let file = urssaf["documents"][0]["file"].as_str().unwrap();
    let file_url = url(&format!("/dossiers/418166096/{file}"), "marches_publics");
    let key = format!("Bearer {BATCH_KEY}");
    let (status, headers, bytes) = raw_request("GET", &file_url, &[("authorization", key.as_str())]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/pdf"));
    let served = sandbox.files_served();
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(urssaf["documents"][0]["sha256"], sha);
    assert!(served.iter().any(|f| f.sha256 == sha));
    assert_eq!(get(&file_url, None, None).await.0, 401);
    let outside = url("/dossiers/418166096/../../gateway.toml", "marches_publics");
    assert_eq!(get(&outside, Some(BATCH_KEY), None).await.0, 404);
    // Asked again: kept, nothing sent.
    let (status, _, again) = get(&url("/dossiers/418166096", "marches_publics"), Some(BATCH_KEY), None).await;
    assert_eq!(status, 200);
    assert_eq!(again["items"], manifest["items"]);
    assert_eq!(data_requests(&sandbox).len(), sent, "a kept dossier was asked again");
    // Refused: another use case than the application's, an application
    // under none, a bad identifier; nothing sent.
    for (key, use_case, id, code, why) in [
        (BATCH_KEY, "aides_publiques", "418166096", 403, "not `aides_publiques`"),
        (
            PORTAIL_KEY,
            "marches_publics",
            "418166096",
            403,
            "works under no use case",
        ),
        (BATCH_KEY, "marches_publics", "418166097", 422, "not a valid SIREN"),
    ] {
        let (status, _, body) = get(&url(&format!("/dossiers/{id}"), use_case), Some(key), None).await;
        assert_eq!(status, code, "{body}");
        assert!(body.to_string().contains(why), "{body}");
    }
    assert_eq!(data_requests(&sandbox).len(), sent, "nothing was sent");
    let audit = gateway.audit();
    assert!(
        audit.iter().any(|l| l["endpoint"] == "dossier" && l["status"] == 200),
        "{audit:?}"
    );
    let _ = std::fs::remove_dir_all(&dossiers);
}

/// A vendor's gateway: 40 profiles, each with its own token and one
/// application. It starts having asked `/privileges` for 10 of them only
/// (the API counts each against the per-IP quota), every call leaves with
/// its own profile's token, and no profile runs without the instance pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendors_forty_profiles_share_one_client_and_each_call_carries_its_own_token() {
    const PROFILES: usize = 40;
    let sandbox = api_entreprise_tests::sandbox().await;
    let token = |i: usize| format!("vendor-token-{i:02}-not-a-secret");
    let key = |i: usize| format!("vendor-key-{i:02}-0123456789");
    let mut config = format!("base_url = \"{}\"\n", sandbox.base_url());
    let mut env = Vec::new();
    for i in 0..PROFILES {
        sandbox.accept_token(&token(i));
        config += &format!(
            "[profiles.p{i:02}]\ntoken_env = \"VENDOR_TOKEN_{i}\"\n\
             [applications.a{i:02}]\nkey_sha256 = \"{}\"\nprofile = \"p{i:02}\"\n",
            hash_key(&key(i))
        );
        env.push((format!("VENDOR_TOKEN_{i}"), token(i)));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let gateway = start_with("vendor", &config, &[], &env);
    let privileges = sandbox.requests().iter().filter(|r| r.path == "/privileges").count();
    assert_eq!(privileges, 10, "the privileges asked before serving");
    for i in (0..PROFILES).rev() {
        let url = format!(
            "{}/v3/insee/sirene/unites_legales/418166096?{TRACE}&object=call-{i}",
            gateway.url
        );
        let url = url.replace("object=dossier%2042&", "");
        assert_eq!(get(&url, Some(&key(i)), None).await.0, 200, "application a{i:02}");
    }
    let sent = data_requests(&sandbox);
    assert_eq!(sent.len(), PROFILES);
    for arrival in &sent {
        let object = &arrival.query.iter().find(|(k, _)| k == "object").unwrap().1;
        let i: usize = object.trim_start_matches("call-").parse().unwrap();
        assert_eq!(
            arrival.token.as_deref(),
            Some(api_entreprise_sandbox::token_fingerprint(&token(i)).as_str()),
            "{object} left with another profile's token"
        );
    }
    let stderr = std::fs::read_to_string(&gateway.stderr).unwrap();
    assert!(!stderr.contains("no instance pool"), "{stderr}");
}
