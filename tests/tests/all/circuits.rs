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
    assert!(what.contains("may be banned"), "{what}");
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
