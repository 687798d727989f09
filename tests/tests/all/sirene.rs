//! The walking skeleton end to end: the real component in the real host
//! against the sandbox, for the INSEE Sirene endpoints.

use std::time::Duration;

use api_entreprise::{CallError, CallPath, RuntimeBuilder, Token, types};
use api_entreprise_sandbox::DEFAULT_TOKEN;
use api_entreprise_tests::{PATHS, builder, probe_component, raw_get, request, runtime, sandbox};

fn client_error(result: Result<types::Response, CallError>) -> types::Error {
    match result {
        Err(CallError::Client(e)) => e.0,
        other => panic!("expected an error from the client, got {other:?}"),
    }
}

fn codes(items: &[types::ErrorItem]) -> Vec<&str> {
    items.iter().map(|i| i.code.as_str()).collect()
}

#[tokio::test]
async fn a_unite_legale_comes_back_typed_with_its_raw_envelope() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let r = runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();
    let Some(types::TypedData::UniteLegale(u)) = &r.typed else {
        panic!("{r:?}")
    };
    assert_eq!(u.siren, "552049447");
    assert_eq!(u.denomination.as_deref(), Some("SOCIETE NATIONALE SNCF"));
    assert_eq!(u.siret_siege_social.as_deref(), Some("55204944776279"));
    assert!(
        r.data.contains("\"economie_sociale_et_solidaire\""),
        "raw data keeps every field"
    );
    assert!(r.links.contains("siege_social"));
    assert_eq!(r.rate_limit.limit, Some(250));
    assert!(r.request_id.as_deref().is_some_and(|id| id.starts_with("sandbox-")));
    let sent = sandbox.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v4/insee/sirene/unites_legales/552049447");
}

#[tokio::test]
async fn an_etablissement_comes_back_typed_with_its_address_and_unite_legale() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let r = runtime
        .call(&request("insee_etablissements", &["55204944776279"]))
        .await
        .unwrap();
    let Some(types::TypedData::Etablissement(e)) = &r.typed else {
        panic!("{r:?}")
    };
    assert_eq!(e.siret, "55204944776279");
    assert_eq!(e.siege_social, Some(true));
    let adresse = e.adresse.as_ref().unwrap();
    assert_eq!(adresse.code_postal.as_deref(), Some("93210"));
    assert!(adresse.lignes.contains(&"93210 SAINT-DENIS".to_owned()));
    assert_eq!(e.unite_legale.as_ref().unwrap().siren, "552049447");
}

#[tokio::test]
async fn the_v3_and_diffusible_and_siege_variants_reach_their_own_paths() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let cases = [
        (
            "insee_unites_legales",
            Some(3),
            "552049447",
            "/v3/insee/sirene/unites_legales/552049447",
        ),
        (
            "insee_unites_legales_diffusables",
            None,
            "552049447",
            "/v4/insee/sirene/unites_legales/diffusibles/552049447",
        ),
        (
            "insee_sieges_unites_legales",
            None,
            "552049447",
            "/v4/insee/sirene/unites_legales/552049447/siege_social",
        ),
        (
            "insee_sieges_diffusables_unites_legales",
            Some(3),
            "552049447",
            "/v3/insee/sirene/unites_legales/diffusibles/552049447/siege_social",
        ),
        (
            "insee_etablissements_diffusables",
            None,
            "55204944776279",
            "/v4/insee/sirene/etablissements/diffusibles/55204944776279",
        ),
    ];
    for (endpoint, version, id, path) in cases {
        let mut req = request(endpoint, &[id]);
        req.version = version;
        let r = runtime.call(&req).await.unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        assert!(r.typed.is_some(), "{endpoint} is typed");
        assert_eq!(sandbox.requests().last().unwrap().path, path);
    }
}

#[tokio::test]
async fn blank_trace_fields_give_one_local_error_listing_every_code_and_nothing_is_sent() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let mut req = request("insee_unites_legales", &["552049447"]);
    req.trace.context = "   ".into();
    req.trace.recipient = String::new();
    req.trace.object = "\n".into();
    let types::Error::InvalidInput(items) = client_error(runtime.call(&req).await) else {
        panic!()
    };
    assert_eq!(codes(&items), ["00201", "00203", "00202"]);
    assert!(
        sandbox.requests().is_empty(),
        "the sandbox saw {:?}",
        sandbox.requests()
    );
}

#[tokio::test]
async fn an_invalid_siren_or_siret_is_refused_locally_and_nothing_is_sent() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let types::Error::InvalidInput(items) =
        client_error(runtime.call(&request("insee_unites_legales", &["552049448"])).await)
    else {
        panic!()
    };
    assert_eq!(codes(&items), ["00301"]);
    let types::Error::InvalidInput(items) =
        client_error(runtime.call(&request("insee_etablissements", &["5520494477627"])).await)
    else {
        panic!()
    };
    assert_eq!(codes(&items), ["00302"]);
    let mut req = request("insee_etablissements", &["55204944776279"]);
    req.trace.recipient = "13002526500001".into();
    let types::Error::InvalidInput(items) = client_error(runtime.call(&req).await) else {
        panic!()
    };
    assert_eq!(codes(&items), ["00210"]);
    assert!(sandbox.requests().is_empty());
}

#[tokio::test]
async fn the_sandbox_received_the_token_from_the_host() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();
    let sent = &sandbox.requests()[0];
    assert!(sent.authorized, "the sandbox accepted the token");
    assert!(
        sent.headers
            .contains(&("authorization".into(), "Bearer <redacted>".into()))
    );
    assert!(
        sent.headers
            .iter()
            .any(|(k, v)| k == "user-agent" && v.starts_with("api-entreprise-rs/"))
    );
    let query: Vec<&str> = sent.query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(query, ["context", "recipient", "object"]);
}

#[tokio::test]
async fn the_guest_can_neither_set_nor_read_the_token() {
    let sandbox = sandbox().await;
    let runtime = probe_on(&sandbox, CallPath::WasiHttp).await;
    // The probe sets its own Authorization, then asks a server that echoes it.
    let url = format!("{}/__sandbox/echo-authorization", sandbox.base_url());
    let report = echoed_without_the_token(&runtime, &url).await;
    assert_eq!(report["set_authorization"], "HeaderError::Forbidden", "{report}");
    assert_eq!(report["authorization_from_list"], "HeaderError::Forbidden", "{report}");
    assert_eq!(report["env"], serde_json::json!([]), "an empty environment");
    assert_eq!(report["args"], serde_json::json!([]), "no arguments");
}

/// On the codec path the host sends: a component that asks for an
/// `Authorization` of its own is refused before any connection, and its
/// `parse` is handed the answer with the echoed token scrubbed.
#[tokio::test]
async fn on_the_codec_path_the_guest_can_neither_set_nor_read_the_token() {
    let sandbox = sandbox().await;
    let runtime = probe_on(&sandbox, CallPath::Codec).await;
    let url = format!("{}/__sandbox/echo-authorization", sandbox.base_url());
    let error = client_error(runtime.call(&request("forge", &[&url])).await);
    let types::Error::RefusedByHost(why) = error else {
        panic!("{error:?}")
    };
    assert!(why.contains("may not set the header `authorization`"), "{why}");
    assert!(sandbox.requests().is_empty(), "nothing was sent");
    echoed_without_the_token(&runtime, &url).await;
}

/// The hostile probe in the host, on `path`, against `sandbox`.
async fn probe_on(sandbox: &api_entreprise_sandbox::Sandbox, path: CallPath) -> api_entreprise::Runtime {
    builder(sandbox)
        .component(probe_component())
        .call_path(path)
        .build()
        .await
        .expect("the probe loads")
}

/// Why the host refused the probe's request for `url` on `path`.
async fn probe_refused(sandbox: &api_entreprise_sandbox::Sandbox, path: CallPath, url: &str) -> String {
    let runtime = probe_on(sandbox, path).await;
    match client_error(runtime.call(&request("probe", &[url])).await) {
        types::Error::RefusedByHost(why) => why,
        error => panic!("{path:?}: {error:?}"),
    }
}

/// The probe asks `url`, a route of the sandbox that echoes the request's
/// `Authorization`; what the probe reports it saw holds no token, and no
/// `Authorization` header, although the server does echo it (checked by
/// calling it directly). Returns the report.
async fn echoed_without_the_token(runtime: &api_entreprise::Runtime, url: &str) -> serde_json::Value {
    let r = runtime.call(&request("probe", &[url])).await.unwrap();
    let report: serde_json::Value = serde_json::from_str(&r.data).unwrap();
    assert_eq!(report["status"], 200, "{report}");
    assert!(
        !report.to_string().contains(DEFAULT_TOKEN),
        "the guest saw the token: {report}"
    );
    assert!(
        !report["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "authorization"),
        "the echoed header was scrubbed: {report}"
    );
    let (_, direct, _) = raw_get(url, Some(DEFAULT_TOKEN)).await;
    assert!(
        direct
            .iter()
            .any(|(k, v)| k == "authorization" && v.contains(DEFAULT_TOKEN))
    );
    report
}

#[tokio::test]
async fn a_request_to_another_authority_is_refused_without_a_connection() {
    let sandbox = sandbox().await;
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_url = format!(
        "http://{}/v4/insee/sirene/unites_legales/552049447",
        elsewhere.local_addr().unwrap()
    );
    for path in PATHS {
        let why = probe_refused(&sandbox, path, &elsewhere_url).await;
        assert!(why.contains("is not the configured API"), "{why}");
    }
    // Nothing connected: accept() has nothing waiting.
    let accepted = tokio::time::timeout(Duration::from_millis(200), elsewhere.accept()).await;
    assert!(accepted.is_err(), "a connection reached the other authority");
    assert!(sandbox.requests().is_empty());
}

#[tokio::test]
async fn a_slow_answer_hits_the_clamped_timeout_whatever_the_guest_asks() {
    let sandbox = sandbox().await;
    // The guest asks 5 s for INSEE; the host's ceiling here is 300 ms and the
    // sandbox answers after 5 s: only the host's clamp can end the call.
    sandbox.set_latency(Duration::from_secs(5));
    let runtime = builder(&sandbox)
        .timeouts(Duration::from_millis(300), Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    match runtime.call(&request("insee_unites_legales", &["552049447"])).await {
        Err(CallError::Client(e)) => assert!(matches!(e.0, types::Error::Timeout(_)), "{e:?}"),
        Err(CallError::Deadline(d)) => assert_eq!(d, Duration::from_millis(300)),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_token_maps_to_unauthorized_with_its_code() {
    let sandbox = sandbox().await;
    let runtime = RuntimeBuilder::new(sandbox.base_url())
        .component(api_entreprise_tests::client_component())
        .token(Token::new("not-the-sandbox-token").unwrap())
        .build()
        .await
        .unwrap();
    let types::Error::Api(api) = client_error(runtime.call(&request("insee_unites_legales", &["552049447"])).await)
    else {
        panic!()
    };
    assert_eq!(api.kind, types::ApiErrorKind::Unauthorized);
    assert_eq!((api.status, codes(&api.errors)), (401, vec!["00101"]));
    assert!(!api.retryable);
    assert!(!sandbox.requests()[0].authorized);
}

#[tokio::test]
async fn an_unknown_identifier_maps_to_not_found() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    let types::Error::Api(api) = client_error(
        runtime
            .call(&request("insee_etablissements", &["00000000000000"]))
            .await,
    ) else {
        panic!()
    };
    assert_eq!(api.kind, types::ApiErrorKind::NotFound);
    assert_eq!(api.status, 404);
    assert!(!api.errors.is_empty(), "the fixture's JSON:API errors are kept");
    assert!(api.request_id.is_some());
}

#[tokio::test]
async fn a_401_and_a_422_received_by_hand_map_through_the_codec() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    // The sans-IO face: the request the component prepares carries no token...
    let prepared = runtime
        .prepare(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();
    assert!(
        !prepared
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    );
    assert!(prepared.url.starts_with(&sandbox.base_url()));
    let (status, headers, body) = raw_get(&prepared.url, None).await;
    assert_eq!(
        (prepared.endpoint.as_str(), prepared.version),
        ("insee_unites_legales", 4)
    );
    let body = String::from_utf8_lossy(&body);
    let parsed = runtime.parse(&prepared, status, &headers, &body).await;
    let types::Error::Api(api) = client_error(parsed) else {
        panic!()
    };
    assert_eq!(api.kind, types::ApiErrorKind::Unauthorized);
    assert_eq!(codes(&api.errors), ["00101"]);

    // ...and without its trace (which only a client skipping validation can
    // send) the server lists every missing field in one 422.
    let bare = prepared.url.split('?').next().unwrap();
    let (status, headers, body) = raw_get(bare, Some(DEFAULT_TOKEN)).await;
    let body = String::from_utf8_lossy(&body);
    let parsed = runtime.parse(&prepared, status, &headers, &body).await;
    let types::Error::Api(api) = client_error(parsed) else {
        panic!()
    };
    assert_eq!(api.kind, types::ApiErrorKind::Unprocessable);
    assert_eq!((api.status, codes(&api.errors)), (422, vec!["00201", "00203", "00202"]));
    assert!(api.request_id.is_some());
}

#[tokio::test]
async fn the_host_refuses_a_data_request_without_its_trace_whatever_the_component_does() {
    let sandbox = sandbox().await;
    let url = format!(
        "{}/v4/insee/sirene/unites_legales/552049447?context=x",
        sandbox.base_url()
    );
    for path in PATHS {
        let why = probe_refused(&sandbox, path, &url).await;
        assert!(why.contains("without recipient, object"), "{why}");
    }
    assert!(
        sandbox.requests().is_empty(),
        "the sandbox saw {:?}",
        sandbox.requests()
    );
}

#[tokio::test]
async fn a_second_start_loads_the_compiled_component_from_the_cache() {
    let sandbox = sandbox().await;
    let dir = std::env::temp_dir().join(format!("api-entreprise-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = builder(&sandbox).cache_dir(&dir).build().await.unwrap();
    assert_eq!(first.component_origin(), api_entreprise::ComponentOrigin::Compiled);
    let second = builder(&sandbox).cache_dir(&dir).build().await.unwrap();
    assert_eq!(second.component_origin(), api_entreprise::ComponentOrigin::Cached);
    second
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();
    // A damaged cache entry is compiled anew, not trusted.
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not a compiled component").unwrap();
    }
    let third = builder(&sandbox).cache_dir(&dir).build().await.unwrap();
    assert_eq!(third.component_origin(), api_entreprise::ComponentOrigin::Compiled);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The compiled component's machine code runs as it is: a file this host
/// did not write (changed since, its digest kept) or one in a folder other
/// users can write is compiled anew, never loaded.
#[cfg(unix)]
#[tokio::test]
async fn a_tampered_compiled_component_or_a_world_writable_cache_is_never_loaded() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let origin = |r: &api_entreprise::Runtime| r.component_origin();
    let first = builder(&sandbox).cache_dir(&cache).build().await.unwrap();
    assert_eq!(origin(&first), api_entreprise::ComponentOrigin::Compiled);
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700,
        "the cache folder is this user's only"
    );
    let compiled = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("a compiled component was cached");
    let second = builder(&sandbox).cache_dir(&cache).build().await.unwrap();
    assert_eq!(origin(&second), api_entreprise::ComponentOrigin::Cached);

    // One byte changed in the machine code, the recorded digest kept: the
    // file is not this host's any more.
    let mut bytes = std::fs::read(&compiled).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&compiled, &bytes).unwrap();
    let third = builder(&sandbox).cache_dir(&cache).build().await.unwrap();
    assert_eq!(
        origin(&third),
        api_entreprise::ComponentOrigin::Compiled,
        "a tampered file was loaded"
    );
    third
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();
    // Written anew by this host: loaded again.
    let fourth = builder(&sandbox).cache_dir(&cache).build().await.unwrap();
    assert_eq!(origin(&fourth), api_entreprise::ComponentOrigin::Cached);

    // A folder any user can write: nothing in it is loaded, even a file
    // whose digest matches.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let fifth = builder(&sandbox).cache_dir(&cache).build().await.unwrap();
    assert_eq!(
        origin(&fifth),
        api_entreprise::ComponentOrigin::Compiled,
        "a world-writable cache was used"
    );
    // A compiled file others may write, in a folder of this user's: not loaded either.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&compiled, std::fs::Permissions::from_mode(0o666)).unwrap();
    let sixth = builder(&sandbox).cache_dir(&cache).build().await.unwrap();
    assert_eq!(
        origin(&sixth),
        api_entreprise::ComponentOrigin::Compiled,
        "a world-writable file was loaded"
    );
}

#[tokio::test]
async fn the_client_component_says_which_version_it_is_and_the_probe_does_not() {
    let sandbox = sandbox().await;
    let runtime = runtime(&sandbox).await;
    assert_eq!(runtime.component_version().as_deref(), Some(env!("CARGO_PKG_VERSION")));
    let probe = api_entreprise_tests::builder(&sandbox)
        .component(api_entreprise_tests::probe_component())
        .build()
        .await
        .unwrap();
    assert_eq!(probe.component_version(), None);
}
