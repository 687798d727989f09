//! Many tokens in one process: the runtimes [`Runtime::for_token`] makes
//! share one engine, one instance pool and one compiled client (a swap
//! switches them all), and keep everything of a token its own: its token
//! on its requests only, its circuits, its refusals.

use std::sync::Arc;

use api_entreprise::{CallError, CallPath, ComponentSource, Runtime, Token, types};
use api_entreprise_sandbox::{DEFAULT_TOKEN, token_fingerprint};
use api_entreprise_tests::{builder, request, sandbox};

/// No quota of the host or of the sandbox gets in the way.
const UNLIMITED: u32 = 100_000_000;
const PROFILES: usize = 12;
const CALLS_EACH: usize = 20;

/// The request of profile `profile`'s call `i`: its `object` names both.
fn call_of(profile: usize, i: usize) -> types::Request {
    let mut call = request("insee_unites_legales", &["418166096"]);
    call.trace.object = format!("profile {profile} call {i}");
    call
}

fn token_of(profile: usize) -> String {
    if profile == 0 {
        DEFAULT_TOKEN.to_owned()
    } else {
        format!("token-of-profile-{profile}-not-a-secret")
    }
}

/// Every profile's calls, all at once and interleaved on one engine, on
/// both call paths: each request that reached the sandbox carries the
/// token of the profile whose call sent it, never another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_profile_sends_its_own_token_only_though_all_share_one_engine() {
    for path in [CallPath::Codec, CallPath::WasiHttp] {
        let sandbox = sandbox().await;
        sandbox.set_rate_limit(Some(UNLIMITED));
        let first = builder(&sandbox)
            .call_path(path)
            .ip_quotas([format!("{UNLIMITED}/1m").parse().unwrap()])
            .token_rate_limit(UNLIMITED)
            .build()
            .await
            .unwrap();
        let first = Arc::new(first);
        let mut runtimes = vec![first.clone()];
        for profile in 1..PROFILES {
            sandbox.accept_token(&token_of(profile));
            let token = Token::new(token_of(profile)).unwrap();
            runtimes.push(Arc::new(first.for_token(Some(token), Some(UNLIMITED))));
        }
        assert!(runtimes.iter().all(|r| r.shares_engine_with(&first)));
        let tasks: Vec<_> = (0..CALLS_EACH)
            .flat_map(|i| runtimes.iter().enumerate().map(move |(p, r)| (p, i, r.clone())))
            .map(|(profile, i, runtime)| {
                tokio::spawn(async move { (profile, runtime.call(&call_of(profile, i)).await.map(|r| r.status)) })
            })
            .collect();
        for task in tasks {
            let (profile, outcome) = task.await.unwrap();
            assert_eq!(outcome.unwrap(), 200, "{path:?}: profile {profile}");
        }
        let arrived = sandbox.requests();
        assert_eq!(arrived.len(), PROFILES * CALLS_EACH, "{path:?}");
        for arrival in &arrived {
            let object = &arrival.query.iter().find(|(k, _)| k == "object").unwrap().1;
            let profile: usize = object.split(' ').nth(1).unwrap().parse().unwrap();
            assert_eq!(
                arrival.token.as_deref(),
                Some(token_fingerprint(&token_of(profile)).as_str()),
                "{path:?}: `{object}` left with another profile's token"
            );
        }
    }
}

/// A token the API refuses stops its own profile's calls only; the other
/// profiles on the same engine go on, and a swap through any of them
/// switches every one, compiled once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stops_its_profile_only_and_a_swap_switches_every_profile() {
    let sandbox = sandbox().await;
    sandbox.accept_token(&token_of(1));
    let first = Arc::new(builder(&sandbox).build().await.unwrap());
    let second = Arc::new(first.for_token(Some(Token::new(token_of(1)).unwrap()), None));
    sandbox.revoke_token(&token_of(1));
    let refused = second.call(&call_of(1, 0)).await.unwrap_err();
    assert!(
        matches!(&refused, CallError::Client(e) if e.status() == Some(401)),
        "{refused:?}"
    );
    // The profile's circuit holds its calls from now on, at the host.
    let before = sandbox.requests().len();
    assert!(matches!(
        second.call(&call_of(1, 1)).await,
        Err(CallError::TokenRefused { .. })
    ));
    assert_eq!(sandbox.requests().len(), before, "a refused token's call was sent");
    assert!(second.token_fault().is_some() && first.token_fault().is_none());
    assert_eq!(first.call(&call_of(0, 1)).await.unwrap().status, 200);

    let next = ComponentSource::File(api_entreprise_component::CLIENT_NEXT_PATH.into());
    let serving = first.component();
    let report = second.swap(&next, true).await.unwrap();
    assert!(report.swapped);
    assert_ne!(first.component(), serving);
    assert_eq!(first.component(), second.component());
    assert_eq!(first.component(), report.candidate);
    // A runtime made after the swap starts on the version serving now.
    let third = first.for_token(Some(Token::new(DEFAULT_TOKEN).unwrap()), None);
    assert_eq!(third.component(), report.candidate);
    first.rollback().unwrap();
    assert_eq!(second.component(), serving);
    assert_eq!(third.call(&call_of(2, 0)).await.unwrap().status, 200);
}

/// Runtimes built apart do not share: each has its own engine.
#[tokio::test]
async fn runtimes_built_apart_have_engines_of_their_own() {
    let sandbox = sandbox().await;
    let one: Runtime = builder(&sandbox).build().await.unwrap();
    let two: Runtime = builder(&sandbox).build().await.unwrap();
    assert!(!one.shares_engine_with(&two));
    assert!(one.shares_engine_with(&one.for_token(None, None)));
}
