//! Retries: off by default; when on, transient errors are tried again one
//! after the other, and every attempt is charged to the quota.

use std::time::Duration;

use api_entreprise::{CallError, QuotaSpec, RetryPolicy};
use api_entreprise_tests::{builder, request, sandbox};

/// A staging fixture whose provider always times out (504).
fn timing_out() -> api_entreprise::types::Request {
    request("insee_successions", &["39197770100914"])
}

const THREE_QUICK: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(20),
    max_delay: Duration::from_secs(2),
};

#[tokio::test]
async fn there_is_no_retry_by_default() {
    let sandbox = sandbox().await;
    let runtime = builder(&sandbox).build().await.unwrap();
    let err = runtime.call(&timing_out()).await.unwrap_err();
    let CallError::Client(e) = &err else { panic!("{err}") };
    assert_eq!(e.status(), Some(504));
    assert_eq!(sandbox.received(), 1);
}

#[tokio::test]
async fn a_transient_error_is_retried_up_to_the_attempts_and_a_permanent_one_never() {
    let sandbox = sandbox().await;
    let runtime = builder(&sandbox).retry(THREE_QUICK).build().await.unwrap();
    let err = runtime.call(&timing_out()).await.unwrap_err();
    assert!(matches!(&err, CallError::Client(e) if e.status() == Some(504)), "{err}");
    assert_eq!(sandbox.received(), 3);
    // A 404 is an answer: no retry.
    let _ = runtime
        .call(&request("insee_etablissements", &["00000000000000"]))
        .await
        .unwrap_err();
    assert_eq!(sandbox.received(), 4);
    // Attempts were sequential: never two in flight at once.
    let times: Vec<u64> = sandbox.requests().iter().map(|r| r.at_unix_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn every_retry_is_charged_to_the_quota() {
    let sandbox = sandbox().await;
    let quota = QuotaSpec {
        limit: 2,
        window: Duration::from_secs(60),
    };
    let runtime = builder(&sandbox)
        .ip_quotas([quota])
        .retry(THREE_QUICK)
        .build()
        .await
        .unwrap();
    let err = runtime.call(&timing_out()).await.unwrap_err();
    assert!(
        matches!(err, CallError::RateLimited { .. }),
        "the third attempt found no slot: {err}"
    );
    assert_eq!(sandbox.received(), 2);
}
