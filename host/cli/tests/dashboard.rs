//! The gateway's dashboard as a person sees it: a real `serve` process,
//! known traffic through it to the sandbox, then each view loaded in a real
//! headless Chromium (Debian's `chromium`, which `scripts/setup` installs).
//! The figures read from the DOM the browser built are compared with the
//! sandbox's request log, the gateway's metrics and what was sent; a
//! screenshot of each view is written under the test's target folder
//! (`target/tmp/dashboard-screenshots/`) for a person to look at.

use std::collections::BTreeMap;
use std::path::PathBuf;

use api_entreprise_tests::raw_request;

#[path = "common/browser.rs"]
mod browser;
#[path = "common/gateway.rs"]
mod harness;
use browser::{dom, screenshot, tempfile_dir};
use harness::*;

/// Every view, by its path under `/dashboard`.
const VIEWS: [&str; 7] = ["", "quota", "tokens", "applications", "endpoints", "health", "requests"];

/// The figures a page shows, by the `data-k` name of the element that
/// shows each (a name that occurs more than once keeps every value).
fn figures(dom: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rest = dom;
    while let Some(at) = rest.find("data-k=\"") {
        rest = &rest[at + 8..];
        let Some(end) = rest.find('"') else { break };
        let key = rest[..end].replace("&amp;", "&");
        let Some(open) = rest.find('>') else { break };
        // The element's text, up to its first child element or its end.
        let text = &rest[open + 1..];
        let text = &text[..text.find('<').unwrap_or(text.len())];
        out.entry(key).or_default().push(text.trim().to_owned());
        rest = &rest[open..];
    }
    out
}

fn one(figures: &BTreeMap<String, Vec<String>>, key: &str) -> String {
    match figures.get(key).map(Vec::as_slice) {
        Some([value]) => value.clone(),
        other => panic!("{key}: {other:?} in {figures:#?}"),
    }
}

fn number(figures: &BTreeMap<String, Vec<String>>, key: &str) -> u64 {
    let value = one(figures, key);
    value.parse().unwrap_or_else(|_| panic!("{key} = {value:?}"))
}

/// The sum of the metric `api_entreprise_gateway_requests_total` over the
/// series whose labels include every one of `labels`.
fn metric(metrics: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("api_entreprise_gateway_requests_total{"))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_view_shows_in_a_browser_the_figures_of_the_sandbox_log_and_the_metrics() {
    // A token that expires in 100 days (and an hour), which the sandbox takes.
    let jwt = jwt("dashboard", 100 * 86_400 + 3_600);
    let sandbox = sandbox_taking(&jwt).await;
    let config = format!("metrics_listen = \"127.0.0.1:0\"\n{}", two_applications(&sandbox, ""));
    let gateway = start_with("dashboard", &config, &[], &[("GATEWAY_TEST_TOKEN", &jwt)]);
    let dashboard = gateway.said("dashboard on ");
    let base = dashboard.trim_end_matches("/dashboard").to_owned();

    // The known run: 3 found and 1 refused locally (a SIREN that is not
    // one) for the portal, which may not call the establishments; 2 found
    // for the batch; 1 request without a valid key.
    let url = |path: &str| format!("{}{path}?{TRACE}", gateway.url);
    let mut request_ids = Vec::new();
    let mut sent = |status: u16, headers: Vec<(String, String)>| {
        if status == 200 {
            request_ids.push(header(&headers, "x-request-id").unwrap().to_owned());
        }
        status
    };
    for _ in 0..3 {
        let (status, headers, _) = get(
            &url("/v3/insee/sirene/unites_legales/552049447"),
            Some(PORTAIL_KEY),
            None,
        )
        .await;
        assert_eq!(sent(status, headers), 200);
    }
    let (status, _, refused) = get(
        &url("/v3/insee/sirene/unites_legales/552049448"),
        Some(PORTAIL_KEY),
        None,
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let invalid_code = codes(&refused)[0].to_owned();
    let etablissement = url("/v3/insee/sirene/etablissements/55204944776279");
    assert_eq!(get(&etablissement, Some(PORTAIL_KEY), None).await.0, 403);
    for _ in 0..2 {
        let (status, headers, _) = get(&etablissement, Some(BATCH_KEY), None).await;
        assert_eq!(sent(status, headers), 200);
    }
    assert_eq!(get(&etablissement, Some("not-a-key"), None).await.0, 401);
    // The quota store is sampled every second.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    let data = data_requests(&sandbox);
    assert_eq!(data.len(), 5, "what reached the API");
    // The per-IP quota counts every request but the free health routes
    // (the gateway's own /privileges included).
    let counted = sandbox
        .requests()
        .iter()
        .filter(|r| r.path != "/pings" && !r.path.starts_with("/ping/"))
        .count() as u64;
    let (_, _, metrics) = raw_request("GET", &format!("{base}/metrics"), &[]).await;
    let metrics = String::from_utf8(metrics).unwrap();

    let profile = tempfile_dir("chromium-profile");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut pages = BTreeMap::new();
    for view in VIEWS {
        let page = if view.is_empty() {
            dashboard.clone()
        } else {
            format!("{dashboard}/{view}")
        };
        let dom = dom(&page, 2000, &profile);
        let name = if view.is_empty() { "overview" } else { view };
        screenshot(&page, &shots.join(format!("{name}.png")), &profile);
        for secret in [PORTAIL_KEY, BATCH_KEY, jwt.as_str(), "dossier 42"] {
            assert!(!dom.contains(secret), "the {name} view shows {secret}");
        }
        pages.insert(name, figures(&dom));
    }

    // Overview: requests, errors and the per-IP window, as sent and as the
    // sandbox saw them.
    let overview = &pages["overview"];
    assert_eq!(number(overview, "total.requests"), 8);
    assert_eq!(number(overview, "total.4xx"), 3, "422, 403 and 401");
    assert_eq!(number(overview, "total.5xx"), 0);
    assert_eq!(number(overview, "total.requests"), metric(&metrics, &[]));
    assert!(one(overview, "latency.p50").ends_with(" ms"));
    assert_eq!(number(overview, "ip.2000/10m.used"), counted);
    assert_eq!(number(overview, "ip.1000/1m.used"), counted);
    assert_eq!(number(overview, "ip.headroom"), 1000 - counted);
    // Tokens: status, days left, calls that reached the API this week.
    for page in [overview, &pages["tokens"]] {
        assert_eq!(one(page, "token.aides.status"), "active");
        assert_eq!(number(page, "token.aides.days"), 100);
        assert_eq!(number(page, "token.aides.calls7d"), data.len() as u64);
    }
    let (_, _, privileges) = raw_request(
        "GET",
        &format!("{}/privileges", sandbox.base_url()),
        &[("authorization", &format!("Bearer {jwt}"))],
    )
    .await;
    let privileges: serde_json::Value = serde_json::from_slice(&privileges).unwrap();
    let scopes = privileges["data"]["privileges"].as_array().unwrap().len() as u64;
    assert_eq!(number(&pages["tokens"], "token.aides.scopes"), scopes);
    // Applications: as the metrics count them.
    let apps = &pages["applications"];
    for app in ["portail", "batch"] {
        let label = format!("application=\"{app}\"");
        assert_eq!(
            number(apps, &format!("app.{app}.requests")),
            metric(&metrics, &[&label]),
            "{app}"
        );
    }
    assert_eq!(number(apps, "app.portail.4xx"), 2);
    assert_eq!(number(apps, "app.-.requests"), 1);
    // What each application holds of each per-IP quota, and its share (half
    // of each, guaranteed): the portal took a slot for its 4 requests that
    // passed its checks.
    assert_eq!(one(apps, "app.portail.share.2000/10m"), "4 of 2000");
    assert_eq!(one(apps, "app.portail.guaranteed.2000/10m"), "1000");
    assert_eq!(one(apps, "app.batch.share.1000/1m"), "2 of 1000");
    assert_eq!(one(apps, "app.batch.guaranteed.1000/1m"), "500");
    // Endpoints: calls, errors by code, as the sandbox's log and the metrics.
    let endpoints = &pages["endpoints"];
    let reached = |path: &str| data.iter().filter(|r| r.path.starts_with(path)).count() as u64;
    assert_eq!(
        number(endpoints, "endpoint.insee_unites_legales.calls"),
        reached("/v3/insee/sirene/unites_legales") + 1
    );
    assert_eq!(
        number(endpoints, &format!("endpoint.insee_unites_legales.code.{invalid_code}")),
        1
    );
    assert_eq!(
        number(endpoints, "endpoint.insee_etablissements.calls"),
        metric(&metrics, &["endpoint=\"insee_etablissements\""])
    );
    // The portal's 403 (a request without a valid key is not routed).
    assert_eq!(
        number(endpoints, "endpoint.insee_etablissements.calls"),
        reached("/v3/insee/sirene/etablissements") + 1
    );
    // Health: the API answered its /pings; every circuit closed; the client.
    let health = &pages["health"];
    assert_eq!(one(health, "api.pings"), "/pings answered 200 when last asked");
    assert_eq!(one(health, "circuit.aides.api"), "closed");
    assert!(one(health, "client.aides").contains('('), "{health:?}");
    // Last requests: every one, the newest first, with the API's request ids.
    let requests = &pages["requests"];
    assert_eq!(requests["request.status"].len(), 8);
    assert_eq!(requests["request.status"][0], "401");
    for id in &request_ids {
        assert!(requests["request.id"].contains(id), "{id} not listed");
    }
    // The per-IP quota's charts: the requests answered in the last 10 minutes.
    assert_eq!(number(&pages["quota"], "calls.minutes"), 8);

    // The page refreshes itself in place: after its script has fetched it
    // again, the figures are still there.
    let refreshed = figures(&dom(&dashboard, 12_000, &profile));
    assert_eq!(number(&refreshed, "total.requests"), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_dashboard_asks_for_the_administrators_key() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let admin = "admin-key-for-the-dashboard";
    // Every address of the machine: not loopback.
    let config = format!(
        "metrics_listen = \"0.0.0.0:0\"\nadmin_key_sha256 = \"{}\"\n{}",
        api_entreprise_gateway::hash_key(admin),
        two_applications(&sandbox, "")
    );
    let gateway = start("dashboard-keyed", &config, &[]);
    let dashboard = gateway.said("dashboard on ").replace("0.0.0.0", "127.0.0.1");
    let (status, headers, _) = raw_request("GET", &dashboard, &[]).await;
    assert_eq!(status, 401);
    assert!(header(&headers, "www-authenticate").is_some_and(|v| v.starts_with("Basic")));
    let bearer = format!("Bearer {PORTAIL_KEY}");
    assert_eq!(
        raw_request("GET", &dashboard, &[("authorization", &bearer)]).await.0,
        401,
        "an application's key is not the administrator's"
    );
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{admin}"))
    );
    let (status, _, body) = raw_request("GET", &dashboard, &[("authorization", &basic)]).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("data-k=\"total.requests\""));
    let bearer = format!("Bearer {admin}");
    assert_eq!(
        raw_request("GET", &format!("{dashboard}/tokens"), &[("authorization", &bearer)])
            .await
            .0,
        200
    );
}
