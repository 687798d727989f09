//! The cost of one quota decision (a slot taken in two quotas at once: the
//! per-IP one and an endpoint group), in process and through a real Redis on
//! loopback, side by side in one run. `cargo bench -p api-entreprise --bench quota`

use std::time::{Duration, Instant};

use api_entreprise::Quotas;
use api_entreprise::quota::{QuotaKey, QuotaSpec};

#[path = "../../../tests/src/redis_server.rs"]
mod redis_server;

fn keys() -> Vec<QuotaKey> {
    let huge = QuotaSpec {
        limit: u32::MAX,
        window: Duration::from_secs(1),
    };
    vec![
        QuotaKey {
            name: "bench ip".into(),
            spec: huge,
        },
        QuotaKey {
            name: "bench group".into(),
            spec: huge,
        },
    ]
}

async fn per_decision(quotas: &Quotas, n: u32) -> Duration {
    let keys = keys();
    for _ in 0..n / 10 {
        quotas.try_acquire(&keys).await.unwrap();
    }
    let started = Instant::now();
    for _ in 0..n {
        quotas.try_acquire(&keys).await.unwrap();
    }
    started.elapsed() / n
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let redis = redis_server::RedisServer::start();
    let local = Quotas::new();
    let shared = Quotas::redis(&redis.url(), "bench:").await.unwrap();
    println!("one quota decision (2 quotas taken at once), sequential:");
    for round in 1..=3 {
        let in_process = per_decision(&local, 200_000).await;
        let through_redis = per_decision(&shared, 5_000).await;
        println!(
            "  round {round}: in process {:>7.2} µs, through Redis {:>7.2} µs, ratio {:>5.0}x",
            in_process.as_secs_f64() * 1e6,
            through_redis.as_secs_f64() * 1e6,
            through_redis.as_secs_f64() / in_process.as_secs_f64()
        );
    }
}
