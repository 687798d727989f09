//! The cost of one quota decision (a slot taken in two quotas at once: the
//! per-IP one and an endpoint group), in process, in the SQLite file shared by
//! every host of one machine (one durable transaction), and through
//! a real Redis on loopback, side by side in one run. Then the SQLite
//! store's decision with an empty and a full 2000/10 min window, in its
//! fixed buckets and, beside it, in one row per departure (the statements
//! the store ran before its buckets, replayed here). Last, a fair-share
//! decision with 1 and 1,000 applications holding part of the pool: for
//! one under its guaranteed share, and for one that borrows.
//! `cargo bench -p api-entreprise --bench quota`

use std::time::{Duration, Instant};

use api_entreprise::Quotas;
use api_entreprise::quota::{FairShare, QuotaKey, QuotaSpec, QuotaStore, SqliteStore};

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

/// A per-IP quota of `limit` requests in 10 minutes, kept 500 ms wider.
fn ip_key(limit: u32) -> QuotaKey {
    QuotaKey {
        name: format!("ip {limit}/10m"),
        spec: QuotaSpec {
            limit,
            window: Duration::from_millis(600_500),
        },
    }
}

const T0: u64 = 1_800_000_000_000;

/// The instant of the `i`th of `prior` requests spread over the window.
fn spread(i: u32, prior: u32) -> i64 {
    (T0 + u64::from(i) * 590_000 / u64::from(prior.max(1))) as i64
}

/// µs per admitting decision of the bucketed store on a window of `limit`
/// already holding `prior` requests spread over it (written in one
/// transaction with the store's own statement).
async fn buckets_with(dir: &std::path::Path, limit: u32, prior: u32, n: u32) -> f64 {
    let file = dir.join(format!("buckets-{limit}-{prior}.sqlite3"));
    let store = SqliteStore::on_given_clock(file.clone()).unwrap();
    let key = [ip_key(limit)];
    let mut db = rusqlite::Connection::open(&file).unwrap();
    let tx = db.transaction().unwrap();
    let admit = api_entreprise_catalogue::quota_scripts::sqlite("admit").unwrap();
    for i in 0..prior {
        tx.execute(admit, (&key[0].name, spread(i, prior), 600_500)).unwrap();
    }
    tx.commit().unwrap();
    let now = T0 + 600_000;
    let started = Instant::now();
    for i in 0..n {
        store.try_acquire(&key, now + u64::from(i)).await.unwrap();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// µs per call of `decide`, at `n` instants a millisecond apart from the
/// window's end on.
fn per_decision_at(n: u32, decide: &mut impl FnMut(i64)) -> f64 {
    let now = (T0 + 600_000) as i64;
    let started = Instant::now();
    for i in 0..n {
        decide(now + i64::from(i));
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// The bucketed store's own statements replayed like [`rows_with`] (no
/// executor, no thread hop), so that the two schemes compare alike.
fn bucket_statements_with(dir: &std::path::Path, limit: u32, prior: u32, n: u32) -> f64 {
    let sql = |name| api_entreprise_catalogue::quota_scripts::sqlite(name).unwrap();
    let file = dir.join(format!("statements-{limit}-{prior}.sqlite3"));
    let mut db = rusqlite::Connection::open(file).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", "FULL").unwrap();
    db.execute_batch(sql("schema")).unwrap();
    let tx = db.transaction().unwrap();
    for i in 0..prior {
        tx.execute(sql("admit"), ("ip", spread(i, prior), 600_500)).unwrap();
    }
    tx.commit().unwrap();
    let mut decide = |at: i64| {
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute(sql("expire"), ("ip", at - 600_500)).unwrap();
        let (count, _oldest): (i64, Option<i64>) = tx
            .query_row(sql("count"), ["ip"], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert!(count < i64::from(limit));
        let _hint: Option<i64> = tx.query_row(sql("hint"), ["ip"], |r| r.get(0)).ok();
        tx.execute(sql("admit"), ("ip", at, 600_500)).unwrap();
        tx.execute(sql("spend"), ("ip", at)).unwrap();
        tx.commit().unwrap();
    };
    per_decision_at(n, &mut decide)
}

/// The same with one row per departure, as the store decided before its
/// buckets: expire, count the window's rows, read the server's word,
/// insert, spend, in one durable transaction.
fn rows_with(dir: &std::path::Path, limit: u32, prior: u32, n: u32) -> f64 {
    let mut db = rusqlite::Connection::open(dir.join(format!("rows-{limit}-{prior}.sqlite3"))).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", "FULL").unwrap();
    db.execute_batch(
        "CREATE TABLE admitted (quota TEXT NOT NULL, at INTEGER NOT NULL);\
         CREATE INDEX admitted_by_quota ON admitted (quota, at);\
         CREATE TABLE server (quota TEXT PRIMARY KEY, remaining INTEGER NOT NULL, reset INTEGER NOT NULL);",
    )
    .unwrap();
    let tx = db.transaction().unwrap();
    for i in 0..prior {
        tx.execute("INSERT INTO admitted (quota, at) VALUES ('ip', ?)", [spread(i, prior)])
            .unwrap();
    }
    tx.commit().unwrap();
    let mut decide = |at: i64| {
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("DELETE FROM admitted WHERE quota = ? AND at < ?", ("ip", at - 600_500))
            .unwrap();
        let (count, _oldest): (i64, Option<i64>) = tx
            .query_row("SELECT count(*), min(at) FROM admitted WHERE quota = ?", ["ip"], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert!(count < i64::from(limit));
        let _hint: Option<i64> = tx
            .query_row("SELECT remaining FROM server WHERE quota = ?", ["ip"], |r| r.get(0))
            .ok();
        tx.execute("INSERT INTO admitted (quota, at) VALUES (?, ?)", ("ip", at))
            .unwrap();
        tx.execute(
            "UPDATE server SET remaining = max(remaining - 1, 0) WHERE quota = ? AND reset > ?",
            ("ip", at),
        )
        .unwrap();
        tx.commit().unwrap();
    };
    per_decision_at(n, &mut decide)
}

/// µs per fair decision in `quotas` for a member of a pool that `members`
/// members hold part of, each of weight 1/`members`: one within its
/// guarantee (`borrowing` false), or one above it.
async fn fair_with(quotas: &Quotas, members: usize, borrowing: bool, n: u32) -> f64 {
    let spec = QuotaSpec {
        limit: 1_000_000,
        window: Duration::from_secs(600),
    };
    let pool = QuotaKey {
        name: format!("ip fair {members} {borrowing}"),
        spec,
    };
    let share = |i: usize, weight: f64| {
        [FairShare {
            pool: pool.clone(),
            member: QuotaKey {
                name: format!("application {i} of {members} {borrowing}"),
                spec,
            },
            weight,
        }]
    };
    let weight = 1.0 / members as f64;
    for i in 0..members {
        quotas.try_acquire_fair(&share(i, weight)).await.unwrap();
    }
    // The one measured: a tiny weight makes it borrow from the first call.
    let measured = share(members, if borrowing { 1e-9 } else { weight });
    let started = Instant::now();
    for _ in 0..n {
        quotas.try_acquire_fair(&measured).await.unwrap();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let redis_server = redis_server::RedisServer::start();
    let local = Quotas::new();
    let shared = Quotas::redis(&redis_server.url(), "bench:").await.unwrap();
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
    println!("\nthe SQLite store's decision, empty and full (200 decisions each, the median of 3 rounds):");
    println!("| window | store | empty | full | full / empty |");
    println!("|---|---|---:|---:|---:|");
    let dir = tempfile::tempdir().unwrap();
    for (limit, prior, what) in [
        (2000, 1_799, "2000/10 min, 1,799 in it"),
        (1_000_000, 100_000, "1,000,000/10 min (opened wide), 100,000 in it"),
    ] {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mut empty, mut full, mut rows_empty, mut rows_full) = (vec![], vec![], vec![], vec![]);
        let (mut statements_empty, mut statements_full) = (vec![], vec![]);
        for round in 0..3 {
            let d = dir.path().join(format!("{limit}-{round}"));
            std::fs::create_dir_all(&d).unwrap();
            empty.push(buckets_with(&d, limit, 0, 200).await);
            full.push(buckets_with(&d, limit, prior, 200).await);
            statements_empty.push(bucket_statements_with(&d, limit, 0, 200));
            statements_full.push(bucket_statements_with(&d, limit, prior, 200));
            rows_empty.push(rows_with(&d, limit, 0, 200));
            rows_full.push(rows_with(&d, limit, prior, 200));
        }
        let rows = [
            ("the store (fixed buckets)", empty, full),
            ("its statements replayed", statements_empty, statements_full),
            ("one row per departure (before), replayed", rows_empty, rows_full),
        ];
        for (store, empty, full) in rows {
            let (empty, full) = (median(empty), median(full));
            println!(
                "| {what} | {store} | {empty:.0} µs | {full:.0} µs | {:.2}× |",
                full / empty
            );
        }
    }
    println!("\na fair-share decision (200 each), by how many applications hold part of the pool:");
    println!("| store | applications | within its guarantee | borrowing | borrowing / within |");
    println!("|---|---:|---:|---:|---:|");
    for store in ["memory", "SQLite", "Redis"] {
        for members in [1, 1000] {
            let quotas = match store {
                "memory" => Quotas::new(),
                "SQLite" => Quotas::persistent(dir.path().join(format!("fair-{members}.sqlite3"))).unwrap(),
                _ => Quotas::redis(&redis_server.url(), "fair-bench:").await.unwrap(),
            };
            let within = fair_with(&quotas, members, false, 200).await;
            let borrowing = fair_with(&quotas, members, true, 200).await;
            println!(
                "| {store} | {members} | {within:.1} µs | {borrowing:.1} µs | {:.1}× |",
                borrowing / within
            );
        }
    }
    println!(
        "RESULT {}",
        serde_json::json!({ "language": "Rust", "memory_us": memory, "sqlite_us": sqlite, "redis_us": redis })
    );
}
