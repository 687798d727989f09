//! Quotas end to end: many callers against the sandbox never put more
//! requests in a window than the quota allows, the server's word tightens
//! the local state, and a 429 closes the group.

use std::sync::Arc;
use std::time::Duration;

use api_entreprise::{CallError, CallPath, QuotaSpec};
use api_entreprise_tests::{builder, request, sandbox, worst_window};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_callers_never_exceed_the_quota_in_any_window() {
    let sandbox = sandbox().await;
    let quota = QuotaSpec {
        limit: 10,
        window: Duration::from_secs(2),
    };
    let runtime = Arc::new(builder(&sandbox).ip_quotas([quota]).build().await.unwrap());
    let callers: Vec<_> = (0..40)
        .map(|_| {
            let runtime = Arc::clone(&runtime);
            tokio::spawn(async move { runtime.call(&request("insee_unites_legales", &["552049447"])).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for caller in callers {
        match caller.await.unwrap() {
            Ok(_) => ok += 1,
            Err(CallError::RateLimited { quota, retry_after }) => {
                assert!(quota.starts_with("ip 10/2s"), "{quota}");
                assert!(retry_after > Duration::ZERO);
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    let mut times: Vec<u64> = sandbox.requests().iter().map(|r| r.at_unix_ms).collect();
    times.sort_unstable();
    let worst = worst_window(&times, 2_000);
    println!("{ok} answered, {refused} refused by the quota; worst 2 s window at the sandbox: {worst} of 10");
    assert_eq!(
        times.len(),
        ok,
        "every admitted call reached the sandbox, no refused one did"
    );
    assert!(worst <= 10, "a 2 s window held {worst} requests");
    // The deadline is 5 s: callers waited for slots (more than one window's
    // worth got through) and the rest failed rather than wait past it.
    assert!(ok > 10 && refused > 0, "{ok} ok, {refused} refused");
}

/// Waits out the end of the sandbox's minute when less than 20 s of it are
/// left, so a test's requests share one of its fixed windows even on a loaded
/// machine (CI runs the tests in parallel on two cores: a first call there
/// has taken more than 5 s).
async fn same_server_minute() {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second >= 40 {
        tokio::time::sleep(Duration::from_secs(61 - second)).await;
    }
}

#[tokio::test]
async fn the_servers_remaining_count_tightens_the_local_quota() {
    let sandbox = sandbox().await;
    sandbox.set_rate_limit(Some(3));
    let runtime = builder(&sandbox).build().await.unwrap();
    same_server_minute().await;
    for _ in 0..3 {
        runtime
            .call(&request("insee_unites_legales", &["552049447"]))
            .await
            .unwrap();
    }
    // The catalogue allows 250 a minute, but the server said 0 remain.
    let err = runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap_err();
    let CallError::RateLimited { quota, retry_after } = err else {
        panic!("{err}")
    };
    assert!(quota.starts_with("group json_resources_entreprise"), "{quota}");
    assert!(retry_after <= Duration::from_secs(61));
    assert_eq!(sandbox.requests().len(), 3, "the fourth request never left");
    // Another group is not affected.
    runtime
        .call(&request("gip_mds_effectifs_annuels_entreprise", &["552049447", "2024"]))
        .await
        .ok();
    assert_eq!(sandbox.requests().len(), 4);
}

#[tokio::test]
async fn a_429_closes_the_group_until_retry_after() {
    let sandbox = sandbox().await;
    sandbox.set_rate_limit(Some(1));
    same_server_minute().await;
    // Another host spent the token's minute.
    let other = builder(&sandbox).build().await.unwrap();
    other
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();

    let runtime = builder(&sandbox).build().await.unwrap();
    let err = runtime
        .call(&request("insee_etablissements", &["55204944776279"]))
        .await
        .unwrap_err();
    let CallError::Client(e) = &err else { panic!("{err}") };
    assert_eq!(e.status(), Some(429));
    let err = runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::RateLimited { .. }), "{err}");
    assert_eq!(sandbox.requests().len(), 2, "the request after the 429 never left");
}

/// The hostile probe (its catalogue calls every endpoint a free health
/// route with a limit of 0) asks `calls` times for its `probe` endpoint
/// while it sends `path` of the sandbox, under the per-IP quota `ip_quota`.
/// Returns the quotas that refused, and how many requests arrived.
async fn probe_sends(path: &str, ip_quota: &str, calls: usize, call_path: CallPath) -> (Vec<String>, usize) {
    let sandbox = sandbox().await;
    let runtime = builder(&sandbox)
        .component(api_entreprise_tests::probe_component())
        .call_path(call_path)
        .ip_quotas([ip_quota.parse().unwrap()])
        .build()
        .await
        .expect("the probe loads");
    let url = format!("{}{path}", sandbox.base_url());
    let mut refused = Vec::new();
    for _ in 0..calls {
        match runtime.call(&request("probe", &[&url])).await {
            Ok(_) => {}
            Err(CallError::RateLimited { quota, .. }) => refused.push(quota),
            Err(other) => panic!("{other}"),
        }
    }
    (refused, sandbox.requests().len())
}

/// A component that calls its endpoints free cannot dodge the per-IP quota:
/// the host counts from the path it sees leave, with its own catalogue.
#[tokio::test]
async fn a_component_cannot_dodge_the_quota_by_describing_its_endpoints_as_free() {
    let sirene = "/v3/insee/sirene/unites_legales/552049447?context=a&recipient=13002526500013&object=b";
    for call_path in api_entreprise_tests::PATHS {
        let (refused, arrived) = probe_sends(sirene, "3/1m", 5, call_path).await;
        assert_eq!(arrived, 3, "{call_path:?}: past the per-IP quota nothing left");
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused.iter().all(|q| q.starts_with("ip 3/1m")), "{refused:?}");
    }
}

/// A DGFIP attestation's path counts against that endpoint's own group (5 a
/// minute in `throttle.yml`), not the component's made-up one.
#[tokio::test]
async fn the_host_counts_a_request_against_the_group_of_its_path() {
    let attestation =
        "/v4/dgfip/unites_legales/552049447/attestation_fiscale?context=a&recipient=13002526500013&object=b&user_id=u";
    for call_path in api_entreprise_tests::PATHS {
        let (refused, arrived) = probe_sends(attestation, "100/1m", 7, call_path).await;
        assert_eq!(arrived, 5, "{call_path:?}: past the group's 5 nothing left");
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused
                .iter()
                .all(|q| q.starts_with("group high_latency_documents/dgfip_attestations_fiscales")),
            "{refused:?}"
        );
    }
}
