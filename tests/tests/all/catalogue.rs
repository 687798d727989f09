//! The whole catalogue: the component's endpoints against the official spec
//! (drift), every staging fixture through the component's parser, and every
//! endpoint called end to end against the sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use api_entreprise::{CallError, Runtime, types};
use api_entreprise_sandbox::fixtures;
use api_entreprise_tests::{reference_dir, runtime, sandbox, trace};
use serde_yaml::Value;

fn reference(dir: &Path, file: &str) -> Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap()
}

/// `api_entreprise_v4_insee_unites_legales` -> (`insee_unites_legales`, 4).
fn split_operation(op: &str) -> (String, u8) {
    let rest = op.strip_prefix("api_entreprise_v").unwrap();
    let (version, id) = rest.split_once('_').unwrap();
    (id.to_owned(), version.parse().unwrap())
}

#[tokio::test]
async fn the_catalogue_and_the_spec_do_not_drift_apart() {
    let Some(dir) = reference_dir() else { return };
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let spec = reference(&dir, "openapi-entreprise.yaml");
    let throttle = reference(&dir, "throttle.yml");
    let limits: BTreeMap<String, u64> = throttle["shared"]
        .as_mapping()
        .unwrap()
        .values()
        .flat_map(|group| {
            let limit = group["limit"].as_u64().unwrap();
            group["endpoints"].as_sequence().unwrap().iter().map(move |e| {
                let op = e.as_str().unwrap();
                let id = op.strip_prefix("api_entreprise_v3_").unwrap_or(op).to_owned();
                (id, limit)
            })
        })
        .collect();

    let mut in_spec = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        let path = path.as_str().unwrap();
        if path == "/privileges" {
            continue;
        }
        let get = &item["get"];
        let op = get["responses"]
            .as_mapping()
            .unwrap()
            .values()
            .find_map(|r| r["x-operationId"].as_str())
            .unwrap();
        let (id, version) = split_operation(op);
        let e = runtime
            .resolve(&id, Some(version))
            .unwrap_or_else(|| panic!("{op} ({path}) is missing from the catalogue"));
        assert_eq!(e.path, path, "{op}");
        let params: Vec<&str> = e.params.iter().map(|p| p.name.as_str()).collect();
        let spec_path_params: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(params, spec_path_params, "{op}");
        let spec_query: BTreeSet<&str> = get["parameters"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|p| {
                p["in"] == "query" && !["recipient", "context", "object"].contains(&p["name"].as_str().unwrap())
            })
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let query: BTreeSet<&str> = e.query.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(query, spec_query, "{op}");
        assert_eq!(e.deprecated, get["deprecated"].as_bool().unwrap_or(false), "{op}");
        assert!(e.needs_trace, "{op}");
        assert!(
            !e.scopes.is_empty() || id == "european_commission_vies",
            "{op} has scopes"
        );
        if let Some(limit) = limits.get(&id) {
            assert_eq!(u64::from(e.rate_limit.limit), *limit, "{op}: throttle.yml's limit");
        }
        assert!(in_spec.insert((id, version)), "{op} twice");
    }
    assert_eq!(in_spec.len(), 51, "the spec has 51 data operations");
    for e in runtime.endpoints().iter() {
        if e.needs_trace {
            assert!(
                in_spec.contains(&(e.id.clone(), e.version)),
                "{} v{} is not in the spec",
                e.id,
                e.version
            );
        } else {
            assert!(
                ["privileges", "pings", "ping"].contains(&e.id.as_str()),
                "{} invented",
                e.id
            );
        }
    }
}

#[test]
fn the_embedded_fixtures_are_the_official_ones() {
    let Some(dir) = reference_dir() else { return };
    let dir = dir.join("mocks-payloads");
    let mut count = 0;
    for (op, file, text) in fixtures::FIXTURES {
        let official = std::fs::read_to_string(dir.join(op).join(file)).unwrap_or_else(|e| panic!("{op}/{file}: {e}"));
        assert_eq!(*text, official, "{op}/{file} differs from the reference");
        count += 1;
    }
    assert_eq!(count, 185);
}

/// The request a fixture stands for: its params in the endpoint's order,
/// the rest as query parameters.
fn fixture_request(e: &types::Endpoint, fixture: &fixtures::Fixture) -> types::Request {
    let params = e
        .params
        .iter()
        .map(|p| fixture.param(&p.name).unwrap_or_default())
        .collect();
    // Staging keys some fixtures by parameters the endpoint does not take
    // (`year` on chiffres d'affaires): those are left out.
    let query = fixture
        .params
        .keys()
        .filter(|k| e.query.iter().any(|q| &q.name == *k))
        .map(|k| (k.clone(), fixture.param(k).unwrap()))
        .collect();
    let mut trace = trace();
    // Many fixtures are about DINUM, the usual recipient: use the mocks'
    // other public body so that 00211 (recipient = target) does not apply.
    trace.recipient = "10000001700010".into();
    trace.user_id = Some("agent-42".into());
    types::Request {
        endpoint: e.id.clone(),
        version: Some(e.version),
        params,
        query,
        trace,
    }
}

fn error_status(e: &types::Error) -> Option<u16> {
    api_entreprise::ClientError(e.clone()).status()
}

#[tokio::test]
async fn every_fixture_parses_or_is_refused_locally_by_name() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let (mut parsed, mut refused, mut server_422) = (0, BTreeMap::new(), 0);
    for (op, list) in fixtures::all() {
        let (id, version) = split_operation(op);
        let e = runtime.resolve(&id, Some(version)).unwrap_or_else(|| panic!("{op}"));
        for fixture in list {
            let name = format!("{op}/{}", fixture.file);
            let prepared = match runtime.prepare(&fixture_request(&e, fixture)).await {
                Err(CallError::Client(c)) => {
                    let types::Error::InvalidInput(items) = &c.0 else {
                        panic!("{name}: {c}")
                    };
                    let values: Vec<String> = items
                        .iter()
                        .map(|i| fixture.param(i.parameter.as_deref().unwrap_or("")).unwrap_or_default())
                        .collect();
                    if fixture.status == 422 {
                        // The server's own 422 for a malformed value: refused here first.
                        server_422 += 1;
                    } else {
                        refused.insert(name, (c.codes().join(","), values.join(",")));
                    }
                    continue;
                }
                Err(other) => panic!("{name}: {other}"),
                Ok(prepared) => prepared,
            };
            assert_eq!((prepared.endpoint.as_str(), prepared.version), (id.as_str(), version));
            let headers = [("X-Request-ID".to_owned(), "fixture".to_owned())];
            let result = runtime
                .parse(&prepared, fixture.status, &headers, &fixture.payload)
                .await;
            match (fixture.status, result) {
                (200, Ok(r)) => {
                    assert_eq!(r.status, 200);
                    if e.kind == types::EndpointKind::Document {
                        assert!(r.document.is_some(), "{name}: a document endpoint gives a document");
                    }
                }
                (status, Err(CallError::Client(c))) => {
                    assert_eq!(error_status(&c.0), Some(status), "{name}: {c}");
                    assert!(!c.codes().is_empty(), "{name}: the JSON:API codes are kept");
                }
                (status, other) => panic!("{name} ({status}): {other:?}"),
            }
            parsed += 1;
        }
    }
    for (name, (codes, values)) in &refused {
        println!("refused locally: {name}: {codes} for {values}");
    }
    println!(
        "{parsed} fixtures parsed; {} refused locally for a Luhn-invalid identifier; {server_422} server 422 refused locally with its code",
        refused.len()
    );
    // Only the identifiers API-ENTREPRISE.md §8 lists as failing Luhn.
    let luhn_invalid = [
        "000000001",
        "000000002",
        "204594462",
        "844451564",
        "13002526500001",
        "55203253400001",
    ];
    for (name, (codes, values)) in &refused {
        assert!(
            values.split(',').all(|v| luhn_invalid.contains(&v)),
            "{name} was refused ({codes}) for {values}, which is not a known Luhn-invalid identifier"
        );
    }
    assert_eq!(parsed + refused.len() + server_422, 185);
    assert!(parsed >= 165, "{parsed}");
}

/// Values that pass local validation for each kind of path parameter.
fn sample(kind: types::ParamKind) -> &'static str {
    use types::ParamKind as P;
    match kind {
        P::Siren | P::SirenOrRna | P::SirenOrSiretOrRna => "552049447",
        P::Siret | P::SiretOrRna | P::SiretOrEori => "55204944776279",
        P::Rna => "W751004076",
        P::Year => "2024",
        P::DgfipYear => "2024",
        P::Month => "01",
        P::Provider => "insee",
    }
}

async fn call_every_endpoint(runtime: &Runtime) -> Vec<(String, Result<types::Response, CallError>)> {
    let mut results = Vec::new();
    for e in runtime.endpoints().iter() {
        let mut request = types::Request {
            endpoint: e.id.clone(),
            version: Some(e.version),
            params: e.params.iter().map(|p| sample(p.kind).to_owned()).collect(),
            query: vec![],
            trace: trace(),
        };
        request.trace.user_id = Some("agent-42".into());
        results.push((format!("{} v{}", e.id, e.version), runtime.call(&request).await));
    }
    results
}

#[tokio::test]
async fn every_endpoint_is_called_end_to_end() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let results = call_every_endpoint(&runtime).await;
    assert_eq!(results.len(), 54);
    for (name, result) in &results {
        match result {
            Ok(r) => assert!(r.status == 200, "{name}: {}", r.status),
            // A few endpoints' fixtures for these identifiers are not-found answers.
            Err(CallError::Client(c)) if c.status() == Some(404) => {}
            Err(e) => panic!("{name}: {e}"),
        }
    }
    let ok = results.iter().filter(|(_, r)| r.is_ok()).count();
    assert!(ok >= 50, "{ok} of 54 answered 200");
    let paths: BTreeSet<String> = sandbox.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), 54, "each endpoint reached the sandbox on its own path");
}

#[tokio::test]
async fn a_maintenance_window_gives_a_503_with_its_end_and_pings_say_so() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    sandbox.set_maintenance(Some(std::time::Duration::from_secs(600)));
    let mut request = api_entreprise_tests::request("insee_unites_legales", &["552049447"]);
    request.version = None;
    let Err(CallError::Client(c)) = runtime.call(&request).await else {
        panic!()
    };
    let types::Error::Api(api) = &c.0 else { panic!("{c}") };
    assert_eq!(api.kind, types::ApiErrorKind::Maintenance);
    assert_eq!(c.codes(), ["01020"]);
    assert!(api.retryable);
    assert!(
        api.retry_after_seconds.is_some_and(|s| (590..=600).contains(&s)),
        "{api:?}"
    );
    let ping = api_entreprise_tests::request("ping", &["insee"]);
    let r = runtime.call(&ping).await.unwrap();
    let Some(types::TypedData::Health(h)) = r.typed else {
        panic!()
    };
    assert_eq!(h.status, "maintenance");
    assert!(h.until.is_some());
}

#[tokio::test]
async fn privileges_parse_in_both_shapes_through_the_component() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let r = runtime
        .call(&api_entreprise_tests::request("privileges", &[]))
        .await
        .unwrap();
    let Some(types::TypedData::Privileges(scopes)) = &r.typed else {
        panic!("{r:?}")
    };
    assert!(scopes.contains(&"entreprises".to_owned()));
    let (status, headers, body) = api_entreprise_tests::raw_get(
        &format!("{}/v2/privileges", sandbox.base_url()),
        Some(api_entreprise_sandbox::DEFAULT_TOKEN),
    )
    .await;
    assert!(String::from_utf8_lossy(&body).starts_with("{\"privileges\""));
    let call = runtime
        .prepare(&api_entreprise_tests::request("privileges", &[]))
        .await
        .unwrap();
    let r = runtime
        .parse(&call, status, &headers, &String::from_utf8_lossy(&body))
        .await
        .unwrap();
    let Some(types::TypedData::Privileges(older)) = r.typed else {
        panic!()
    };
    assert_eq!(&older, scopes);
}
