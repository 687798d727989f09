//! Fair shares of one pool in every store: three members of weights 0.5,
//! 0.25 and 0.25 that always want more. While the third is idle, the two
//! busy ones split its part in proportion (2/3 and 1/3); once it asks, it
//! has its quarter within one window; and no window ever holds more than
//! the pool allows. In this process's memory, in the machine's SQLite
//! file and in a real Redis, on their own clocks (real time).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_entreprise::Quotas;
use api_entreprise::quota::{FairShare, QuotaKey, QuotaSpec};
use api_entreprise_tests::RedisServer;

const LIMIT: u32 = 30;
const WINDOW: Duration = Duration::from_secs(3);
/// How often each member asks while it is refused.
const EVERY: Duration = Duration::from_millis(15);

fn share(member: &str, weight: f64) -> FairShare {
    let spec = QuotaSpec {
        limit: LIMIT,
        window: WINDOW,
    };
    FairShare {
        pool: QuotaKey {
            name: format!("ip fair {}", std::process::id()),
            spec,
        },
        member: QuotaKey {
            name: format!("application {member} fair"),
            spec,
        },
        weight,
    }
}

/// Each admission since the start: the member, when it asked, when the
/// answer came (the store decided in between).
type Admitted = Arc<Mutex<Vec<(usize, Duration, Duration)>>>;

/// Member `which` asks without pause from `from` until `until`.
fn hungry(
    quotas: Arc<Quotas>,
    which: usize,
    weight: f64,
    start: Instant,
    from: Duration,
    until: Duration,
    log: Admitted,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shares = [share(&format!("m{which}"), weight)];
        tokio::time::sleep_until((start + from).into()).await;
        while start.elapsed() < until {
            let asked = start.elapsed();
            if quotas.try_acquire_fair(&shares).await.is_ok() {
                log.lock().unwrap().push((which, asked, start.elapsed()));
            } else {
                tokio::time::sleep(EVERY).await;
            }
        }
    })
}

/// Each member's admissions in `[from, from + WINDOW)`. Members that always
/// want more take the slots as they free: the admissions come in a burst
/// each window, and a count spans one window around one burst.
fn counts(log: &[(usize, Duration, Duration)], from: Duration) -> [usize; 3] {
    let mut counts = [0; 3];
    for (which, at, _) in log {
        if *at >= from && *at < from + WINDOW {
            counts[*which] += 1;
        }
    }
    counts
}

async fn holds_in(quotas: Quotas, store: &str) {
    let quotas = Arc::new(quotas);
    let log: Admitted = Arc::default();
    let start = Instant::now();
    let w = WINDOW;
    let end = w * 5;
    let tasks = [
        hungry(quotas.clone(), 0, 0.5, start, Duration::ZERO, end, log.clone()),
        hungry(quotas.clone(), 1, 0.25, start, Duration::ZERO, end, log.clone()),
        // The third comes back after two windows.
        hungry(quotas.clone(), 2, 0.25, start, w * 2, end, log.clone()),
    ];
    for task in tasks {
        task.await.unwrap();
    }
    let mut log = log.lock().unwrap().clone();
    // No window ever held more than the pool allows: admissions whose
    // decisions certainly fell within one window (from the first's asking
    // to the last's answer) are never more than the limit.
    log.sort_by_key(|(_, asked, _)| *asked);
    for (i, (_, asked, _)) in log.iter().enumerate() {
        let inside = log[i..]
            .iter()
            .filter(|(_, _, answered)| *answered - *asked < WINDOW)
            .count();
        assert!(
            inside <= LIMIT as usize,
            "{store}: {inside} in the window from {asked:?}"
        );
    }
    // The second window, the third idle: 20 and 10 (within 2).
    let [a, b, c] = counts(&log, w / 2);
    assert_eq!(c, 0, "{store}");
    assert!(
        a.abs_diff(20) <= 2 && b.abs_diff(10) <= 2,
        "{store}: {a} and {b} while the third was idle"
    );
    // The two windows after it came back: 15, 7.5, 7.5 (within 2).
    for from in [w * 3 / 2, w * 5 / 2] {
        let [a, b, c] = counts(&log, from);
        assert!(
            a.abs_diff(15) <= 2 && (6..=10).contains(&b) && (6..=10).contains(&c),
            "{store}: {a}, {b} and {c} from {from:?}, after the third came back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_members_part_is_lent_in_proportion_and_comes_back_within_a_window_in_every_store() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = Quotas::persistent(dir.path().join("quotas.sqlite3")).unwrap();
    let shared = Quotas::redis(&redis.url(), "fair:").await.unwrap();
    tokio::join!(
        holds_in(Quotas::new(), "memory"),
        holds_in(file, "SQLite"),
        holds_in(shared, "Redis"),
    );
}
