//! The quota shared through a real Redis: hosts behind one egress IP count
//! together.

use std::time::Duration;

use api_entreprise::{CallError, QuotaSpec};
use api_entreprise_tests::{RedisServer, builder, request, sandbox};

#[tokio::test]
async fn two_runtimes_share_one_quota_through_redis() {
    let redis = RedisServer::start();
    let sandbox = sandbox().await;
    let quota = QuotaSpec {
        limit: 4,
        window: Duration::from_secs(60),
    };
    let a = builder(&sandbox)
        .ip_quotas([quota])
        .redis(redis.url())
        .build()
        .await
        .unwrap();
    let b = builder(&sandbox)
        .ip_quotas([quota])
        .redis(redis.url())
        .build()
        .await
        .unwrap();
    let mut admitted = 0;
    for runtime in [&a, &b, &a, &b, &a, &b] {
        match runtime.call(&request("insee_unites_legales", &["552049447"])).await {
            Ok(_) => admitted += 1,
            Err(CallError::RateLimited { quota, .. }) => assert!(quota.starts_with("ip 4/1m"), "{quota}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(admitted, 4);
    assert_eq!(sandbox.requests().len(), 4);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_at_start() {
    let sandbox = sandbox().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = builder(&sandbox)
        .redis(format!("redis://127.0.0.1:{port}/0"))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connecting to Redis"), "{err}");
}

/// How full each window is, read back from Redis as from memory and the
/// SQLite file (what `status` and the dashboard show): the same figures.
#[tokio::test]
async fn every_store_says_how_full_each_window_is_alike() {
    use api_entreprise::Quotas;
    use api_entreprise::quota::{QuotaKey, STATE_FILE};
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        QuotaKey {
            name: "ip 5/1m".into(),
            spec: "5/1m".parse().unwrap(),
        },
        QuotaKey {
            name: "group g".into(),
            spec: "3/1m".parse().unwrap(),
        },
    ];
    let stores = [
        Quotas::new(),
        Quotas::persistent(dir.path().join(STATE_FILE)).unwrap(),
        Quotas::redis(&redis.url(), "usage:").await.unwrap(),
    ];
    for quotas in &stores {
        quotas.try_acquire(&keys).await.unwrap();
        quotas.try_acquire(&keys[..1]).await.unwrap();
        quotas.close("group g", Duration::from_secs(30)).await;
        let usage = quotas.usage(&keys).await.unwrap();
        let what = quotas.describe();
        assert_eq!((usage[0].used, usage[1].used), (2, 1), "{what}");
        let frees = usage[0].frees_in.unwrap();
        assert!(
            frees > Duration::from_secs(59) && frees <= Duration::from_secs(61),
            "{what}: {frees:?}"
        );
        let (remaining, for_) = usage[1].server.unwrap();
        assert!(
            remaining == 0 && for_ > Duration::from_secs(29),
            "{what}: {:?}",
            usage[1].server
        );
        assert_eq!(usage[0].server, None, "{what}");
    }
}
