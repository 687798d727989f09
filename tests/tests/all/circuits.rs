//! Circuit breakers end to end: a silent API (as a banned IP sees it) opens
//! the API's circuit, a health probe closes it, and a failing provider is
//! broken alone.

use std::time::Duration;

use api_entreprise::{CallError, CircuitConfig};
use api_entreprise_tests::{builder, request, sandbox};

#[tokio::test]
async fn a_silent_api_opens_the_circuit_and_a_health_probe_closes_it() {
    let sandbox = sandbox().await;
    let runtime = builder(&sandbox)
        .timeouts(Duration::from_millis(300), Duration::from_millis(300))
        .circuits(CircuitConfig {
            ban_threshold: 3,
            ban_cooldown: Duration::from_millis(400),
            ..CircuitConfig::default()
        })
        .build()
        .await
        .unwrap();
    // The ban: connections are accepted, nothing ever answers.
    sandbox.set_latency(Duration::from_secs(3600));
    let insee = request("insee_unites_legales", &["552049447"]);
    let call = || runtime.call(&insee);
    for _ in 0..3 {
        let err = call().await.unwrap_err();
        assert!(
            matches!(&err, CallError::Client(_) | CallError::Deadline(_)),
            "a timeout, got {err}"
        );
    }
    assert_eq!(sandbox.received(), 3);
    let err = call().await.unwrap_err();
    let CallError::CircuitOpen { what, .. } = &err else {
        panic!("{err}")
    };
    // Silence with no sign of a full quota before it: an outage, or a ban.
    assert!(what.contains("an outage, or a ban"), "{what}");
    assert_eq!(runtime.ban_suspected(), None);
    assert_eq!(sandbox.received(), 3, "an open circuit sends nothing");

    // The ban ends: after the cool-down a probe of /pings closes the circuit.
    sandbox.set_latency(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(450)).await;
    call().await.unwrap();
    let paths: Vec<String> = sandbox.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths[paths.len() - 2], "/pings", "{paths:?}");
}

#[tokio::test]
async fn a_provider_in_maintenance_is_broken_alone() {
    let sandbox = sandbox().await;
    let runtime = builder(&sandbox).build().await.unwrap();
    sandbox.set_maintenance(Some(Duration::from_secs(600)));
    let err = runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap_err();
    let CallError::Client(e) = &err else { panic!("{err}") };
    assert_eq!(e.status(), Some(503));
    let received = sandbox.received();
    // INSEE again: refused here, nothing sent.
    let err = runtime
        .call(&request("insee_etablissements", &["55204944776279"]))
        .await
        .unwrap_err();
    let CallError::CircuitOpen { what, retry_after } = &err else {
        panic!("{err}")
    };
    assert!(what.contains("`insee`"), "{what}");
    assert!(*retry_after > Duration::from_secs(60), "{retry_after:?}");
    assert_eq!(sandbox.received(), received);
    // Another provider still goes out.
    let _ = runtime.call(&request("infogreffe_extraits_rcs", &["552049447"])).await;
    assert_eq!(sandbox.received(), received + 1);
}

/// A token the API refuses as such (here expired, `00103`) stops its calls:
/// the next ones are refused locally with what to do, `/privileges` is
/// asked again after the probe interval, and once it takes the token the
/// calls go again.
#[tokio::test]
async fn a_refused_token_stops_its_calls_until_privileges_takes_it_again() {
    let sandbox = sandbox().await;
    let runtime = builder(&sandbox)
        .circuits(CircuitConfig {
            token_probe_every: Duration::from_millis(400),
            ..CircuitConfig::default()
        })
        .build()
        .await
        .unwrap();
    let insee = request("insee_unites_legales", &["552049447"]);
    sandbox.set_token_fault(Some("00103"));
    let err = runtime.call(&insee).await.unwrap_err();
    assert!(matches!(&err, CallError::Client(c) if c.codes() == ["00103"]), "{err}");
    assert_eq!(sandbox.received(), 1);
    for _ in 0..5 {
        let err = runtime.call(&insee).await.unwrap_err();
        let CallError::TokenRefused { fault, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(fault.code, "00103");
        let message = err.to_string();
        assert!(
            message.contains("renew it through DataPass") && message.contains("nothing was sent"),
            "{message}"
        );
    }
    assert_eq!(sandbox.received(), 1, "refused locally: nothing more reached the API");
    assert_eq!(runtime.token_fault().map(|f| f.code), Some("00103".to_owned()));

    // Still refused at the probe: one /privileges, and the call is not sent.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(matches!(
        runtime.call(&insee).await,
        Err(CallError::TokenRefused { .. })
    ));
    let paths: Vec<String> = sandbox.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert_eq!(paths[1], "/privileges");

    // Renewed: the next probe takes it, and the call goes.
    sandbox.set_token_fault(None);
    tokio::time::sleep(Duration::from_millis(450)).await;
    runtime.call(&insee).await.unwrap();
    let paths: Vec<String> = sandbox.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.len(), 4, "{paths:?}");
    assert_eq!(paths[2], "/privileges");
    assert_eq!(runtime.token_fault(), None);
    runtime.call(&insee).await.unwrap();
    assert_eq!(sandbox.received(), 5, "no probe once the token is taken again");
}
