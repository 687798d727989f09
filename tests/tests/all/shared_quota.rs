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
