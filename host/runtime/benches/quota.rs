//! The cost of one quota decision (a slot taken in two quotas at once: the
//! per-IP one and an endpoint group), in process, in the SQLite file shared by
//! every host of one machine (one durable transaction), and through
//! a real Redis on loopback, side by side in one run.
//! `cargo bench -p api-entreprise --bench quota`

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
    let dir = tempfile::tempdir().unwrap();
    println!("one quota decision (2 quotas taken at once), sequential:");
    let mut rounds = Vec::new();
    for round in 1..=3 {
        // A fresh file each round: the state holds every departure of the
        // window, so a long run would measure an ever larger file.
        let state = dir.path().join(format!("quotas-{round}.sqlite3"));
        let file = Quotas::persistent(state).unwrap();
        let in_process = per_decision(&local, 200_000).await;
        let in_a_file = per_decision(&file, 1_000).await;
        let through_redis = per_decision(&shared, 5_000).await;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "  round {round}: in process {:>7.2} µs, state file {:>7.2} µs ({:>4.0}x), through Redis {:>7.2} µs ({:>4.0}x)",
            us(in_process),
            us(in_a_file),
            us(in_a_file) / us(in_process),
            us(through_redis),
            us(through_redis) / us(in_process)
        );
        rounds.push([us(in_process), us(in_a_file), us(through_redis)]);
    }
    // The median round, for scripts/quota-speed.
    rounds.sort_by(|a, b| a[1].total_cmp(&b[1]));
    let [memory, sqlite, redis] = rounds[1];
    println!(
        "RESULT {}",
        serde_json::json!({ "language": "Rust", "memory_us": memory, "sqlite_us": sqlite, "redis_us": redis })
    );
}
