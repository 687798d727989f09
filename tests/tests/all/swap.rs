//! Hot swap in the library: a new client version goes live in a running
//! runtime under continuous traffic (concurrency 16 against the sandbox),
//! after the contract check, the catalogue comparison and the canary; a
//! broken one is refused; a broken one forced in is rolled back by itself.
//! The test harness builds the two other versions from `guest/` with its
//! `testing-next` and `testing-broken` features.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api_entreprise::swap::{MIN_FAILURES, RollbackReason};
use api_entreprise::{ComponentSource, Runtime, SwapError, SwapEvent, types};
use api_entreprise_sandbox::Sandbox;
use api_entreprise_tests::{builder, request, sandbox, user_agents};

const CONCURRENCY: usize = 16;
/// No quota of the host or of the sandbox gets in the way of the traffic.
const UNLIMITED: u32 = 100_000_000;

fn next() -> ComponentSource {
    ComponentSource::File(PathBuf::from(api_entreprise_component::CLIENT_NEXT_PATH))
}

fn broken() -> ComponentSource {
    ComponentSource::File(PathBuf::from(api_entreprise_component::CLIENT_BROKEN_PATH))
}

async fn unlimited_runtime(sandbox: &Sandbox) -> Arc<Runtime> {
    sandbox.set_rate_limit(Some(UNLIMITED));
    let runtime = builder(sandbox)
        .ip_quotas([format!("{UNLIMITED}/1m").parse().unwrap()])
        .token_rate_limit(UNLIMITED)
        .build()
        .await
        .unwrap();
    Arc::new(runtime)
}

/// What the traffic saw.
#[derive(Debug, Default)]
struct Seen {
    ok: usize,
    failed: Vec<String>,
}

/// Calls `requests` in turn from `CONCURRENCY` tasks until `stop` is set.
fn traffic(
    runtime: &Arc<Runtime>,
    requests: &[types::Request],
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Seen>> {
    (0..CONCURRENCY)
        .map(|task| {
            let (runtime, stop, requests) = (runtime.clone(), stop.clone(), requests.to_vec());
            tokio::spawn(async move {
                let mut seen = Seen::default();
                let mut i = task;
                while !stop.load(Ordering::Relaxed) {
                    let request = &requests[i % requests.len()];
                    match runtime.call(request).await {
                        Ok(_) => seen.ok += 1,
                        Err(e) => seen.failed.push(format!("{}: {e}", request.endpoint)),
                    }
                    i += 1;
                }
                seen
            })
        })
        .collect()
}

async fn total(tasks: Vec<tokio::task::JoinHandle<Seen>>) -> Seen {
    let mut all = Seen::default();
    for task in tasks {
        let seen = task.await.unwrap();
        all.ok += seen.ok;
        all.failed.extend(seen.failed);
    }
    all
}

fn mixed() -> Vec<types::Request> {
    vec![
        request("insee_unites_legales", &["552049447"]),
        request("insee_etablissements", &["55204944776279"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_swaps_in_under_traffic_and_no_request_is_lost() {
    let sandbox = sandbox().await;
    let runtime = unlimited_runtime(&sandbox).await;
    let mut events = runtime.subscribe();
    let before = runtime.component();
    assert_eq!(before.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert!(
        !runtime
            .endpoints()
            .iter()
            .any(|e| e.id == "insee_unites_legales_diffusion")
    );

    let stop = Arc::new(AtomicBool::new(false));
    let tasks = traffic(&runtime, &mixed(), &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = runtime.swap(&next(), false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = total(tasks).await;
    eprintln!(
        "{report}\ntraffic: {} calls answered, {} failed",
        seen.ok,
        seen.failed.len()
    );

    // Not one request failed, and traffic ran on both sides of the swap.
    assert!(seen.failed.is_empty(), "{:?}", seen.failed);
    assert!(seen.ok > 100, "{} calls", seen.ok);
    let agents = user_agents(&sandbox);
    let next_agent = format!("api-entreprise-rs/{}-next (wasm component)", env!("CARGO_PKG_VERSION"));
    assert!(agents.contains(&next_agent), "no request from the new version");
    assert!(
        agents.iter().any(|a| *a != next_agent),
        "no request from the old version"
    );

    // The report: swapped, the extra endpoint found, the changed User-Agent
    // seen by the canary but not refusing, every step timed.
    assert!(report.swapped && !report.refused(), "{report}");
    assert_eq!(report.catalogue.added, ["insee_unites_legales_diffusion v4"]);
    assert!(report.catalogue.removed.is_empty(), "{report}");
    assert!(
        report
            .catalogue
            .unlike_host
            .iter()
            .any(|d| d.contains("insee_unites_legales_diffusion v4: unknown to the host")),
        "{report}"
    );
    assert!(report.canary.cases > 300, "{report}");
    assert!(
        report
            .canary
            .changed
            .iter()
            .any(|d| d.what.contains("-next (wasm component)")),
        "{report}"
    );
    assert!(report.timings.load.compile > Duration::ZERO && report.timings.canary > Duration::ZERO);

    // The new version serves; the extra endpoint appears; the old is kept.
    assert_eq!(
        runtime.component_version(),
        Some(format!("{}-next", env!("CARGO_PKG_VERSION")))
    );
    assert!(
        runtime
            .endpoints()
            .iter()
            .any(|e| e.id == "insee_unites_legales_diffusion")
    );
    assert_eq!(runtime.previous_component(), Some(before.clone()));
    match events.try_recv() {
        Ok(SwapEvent::Swapped { from, to }) => assert_eq!((from, to), (before.clone(), report.candidate.clone())),
        other => panic!("expected the swap's event, got {other:?}"),
    }

    // A rollback returns to the version before, which answers again.
    assert_eq!(runtime.rollback().unwrap(), before);
    assert_eq!(runtime.component(), before);
    assert!(matches!(runtime.rollback(), Err(SwapError::NothingToRollBack)));
    runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();
    assert!(matches!(
        events.try_recv(),
        Ok(SwapEvent::RolledBack {
            reason: RollbackReason::Asked,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_version_is_refused_by_the_canary_and_nothing_changes() {
    let sandbox = sandbox().await;
    let runtime = unlimited_runtime(&sandbox).await;
    let mut events = runtime.subscribe();
    let before = runtime.component();

    // `check_component` reports without swapping.
    let report = runtime.check_component(&broken()).await.unwrap();
    assert!(report.refused() && !report.swapped, "{report}");
    assert!(
        report
            .canary
            .refusing
            .iter()
            .all(|d| d.case.starts_with("parse ") && d.what.starts_with("it traps: ")),
        "{report}"
    );
    assert_eq!(runtime.component(), before);

    let error = runtime.swap(&broken(), false).await.unwrap_err();
    let SwapError::Refused(report) = &error else {
        panic!("expected a refusal, got {error}");
    };
    assert!(!report.swapped);
    let message = error.to_string();
    assert!(
        message.contains("refused") && message.contains("untouched"),
        "{message}"
    );
    assert_eq!(runtime.component(), before);
    assert_eq!(runtime.previous_component(), None);
    assert!(matches!(events.try_recv(), Ok(SwapEvent::Refused { .. })));
    runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_version_forced_in_is_rolled_back_by_itself_after_few_failures() {
    let sandbox = sandbox().await;
    let runtime = unlimited_runtime(&sandbox).await;
    let mut events = runtime.subscribe();
    let before = runtime.component();

    let stop = Arc::new(AtomicBool::new(false));
    let tasks = traffic(&runtime, &mixed(), &stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = runtime.swap(&broken(), true).await.unwrap();
    assert!(report.swapped && report.refused(), "{report}");
    assert!(matches!(events.recv().await, Ok(SwapEvent::Swapped { .. })));
    let started = Instant::now();
    let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("no rollback within 20 s");
    let waited = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = total(tasks).await;
    eprintln!(
        "rolled back {waited:?} after the swap; traffic: {} answered, {} failed",
        seen.ok,
        seen.failed.len()
    );

    let Ok(SwapEvent::RolledBack { from, to, reason }) = event else {
        panic!("expected a rollback, got {event:?}");
    };
    assert_eq!((from, &to), (report.candidate.clone(), &before));
    let RollbackReason::Misbehaved {
        calls,
        failures,
        baseline,
    } = reason
    else {
        panic!("expected an automatic rollback, got {reason:?}");
    };
    assert!(
        failures >= MIN_FAILURES && calls >= failures && baseline == 0.0,
        "{reason}"
    );
    assert_eq!(runtime.component(), before);
    // Only the broken version's calls to the endpoint it breaks failed, and
    // few: the rule's threshold plus the calls already in flight.
    assert!(!seen.failed.is_empty());
    assert!(
        seen.failed.len() <= MIN_FAILURES as usize + CONCURRENCY,
        "{} failed: {:?}",
        seen.failed.len(),
        seen.failed
    );
    assert!(
        seen.failed
            .iter()
            .all(|f| f.starts_with("insee_unites_legales:") && f.contains("trap")),
        "{:?}",
        seen.failed
    );
    runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_is_not_a_client_is_refused_before_it_serves() {
    let sandbox = sandbox().await;
    let runtime = unlimited_runtime(&sandbox).await;
    let before = runtime.component();
    let missing = ComponentSource::File(PathBuf::from("/nonexistent/client.wasm"));
    let error = runtime.swap(&missing, true).await.unwrap_err();
    assert!(error.to_string().contains("reading it"), "{error}");
    let core = ComponentSource::Bytes(wat::parse_str("(module)").unwrap().into());
    let error = runtime.swap(&core, true).await.unwrap_err();
    assert!(error.to_string().contains("core WebAssembly module"), "{error}");
    let other = ComponentSource::Bytes(wat::parse_str("(component)").unwrap().into());
    let error = runtime.swap(&other, true).await.unwrap_err();
    assert!(
        matches!(error, SwapError::Load(api_entreprise::ConfigError::Contract { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("not an API Entreprise client"), "{error}");
    // The hostile probe passes the contract check (it implements the whole
    // world) but answers nothing like the client: the canary refuses it.
    let error = runtime
        .swap(&api_entreprise_tests::probe_component(), false)
        .await
        .unwrap_err();
    let SwapError::Refused(report) = &error else {
        panic!("expected the canary's refusal, got {error}");
    };
    assert!(
        report
            .canary
            .refusing
            .iter()
            .any(|d| d.what.contains("a success turned into an error")),
        "{report}"
    );
    assert!(
        report.catalogue.removed.iter().any(|e| e == "insee_unites_legales v4"),
        "{report}"
    );
    assert!(report.catalogue.added.iter().any(|e| e == "probe v1"), "{report}");
    assert_eq!(runtime.component(), before);
    assert!(matches!(runtime.rollback(), Err(SwapError::NothingToRollBack)));
}
