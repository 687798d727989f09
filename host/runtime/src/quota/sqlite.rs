//! Quotas in a SQLite file that every host of one machine shares, whatever
//! its language: the command, a batch, the gateway, the Node and Python
//! packages run the same statements (`catalogue/quota/sqlite.sql`) on the
//! same file.
//!
//! Each decision is one `BEGIN IMMEDIATE` transaction: the file's write lock
//! is taken before anything is read, so two processes never decide on the
//! same state, and the OS releases it when a process dies (`kill -9`
//! included). The file is in WAL mode with `synchronous = FULL`: an admitted
//! request is on disk before it leaves, and a crash or a power cut leaves
//! the state before a decision or after it, never half of one.
//!
//! Why SQLite rather than a JSON file under `flock`: Node has no file lock in
//! its standard library, while SQLite is in Python's (`sqlite3`), a
//! well-kept package on Node (`better-sqlite3`) and a crate here
//! (`rusqlite`); its transactions are atomic across processes and durable,
//! and a decision reads a few rows per quota (its count, kept beside its
//! fixed buckets), whatever the traffic, instead of the whole state.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use api_entreprise_catalogue::quota_scripts;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::fair::{FairShare, candidates, hungry_for, pool_wait, pooled, within_guarantee};
use super::windows::{ServerHint, hint_after, longest, usage_of, wait_in};
use super::{BoxFuture, Clock, Denied, Millis, QuotaKey, QuotaStore, QuotaStoreError, ServerWord, SystemClock};
use super::{Unavailable, Usage, Wait};

/// The store's file in the state directory.
pub const STATE_FILE: &str = "quotas.sqlite3";

/// How long a decision waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The statement `name` of the shared `sqlite.sql`.
fn sql(name: &str) -> &'static str {
    quota_scripts::sqlite(name).unwrap_or_else(|| panic!("no statement {name} in catalogue/quota/sqlite.sql"))
}

/// Which clock the store decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreClock {
    /// The file's own: anchored to the wall clock once a boot, then
    /// monotonic (every host of the machine reads the same).
    Anchored,
    /// The instant each call is given: for tests and the conformance
    /// scenarios.
    Given,
}

/// The windows in a SQLite file shared by every host of one machine.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    file: PathBuf,
    connection: Arc<Mutex<Connection>>,
    clock: StoreClock,
}

impl SqliteStore {
    /// The store in `file`, created now if missing. Fails now when the file
    /// exists and is not a quota state (rather than reset it), or cannot be
    /// written.
    pub fn open(file: PathBuf) -> Result<Self, QuotaStoreError> {
        Self::open_with(file, StoreClock::Anchored)
    }

    /// The store in `file`, deciding at the instant each call is given
    /// rather than on the file's clock: for tests.
    pub fn on_given_clock(file: PathBuf) -> Result<Self, QuotaStoreError> {
        Self::open_with(file, StoreClock::Given)
    }

    fn open_with(file: PathBuf, clock: StoreClock) -> Result<Self, QuotaStoreError> {
        let error = |reason: String, source: Option<std::io::Error>| QuotaStoreError::File {
            path: file.clone(),
            reason,
            source,
        };
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| {
            error(
                format!(
                    "creating its folder {} (give a directory to --state-dir)",
                    dir.display()
                ),
                Some(e),
            )
        })?;
        let connection = Connection::open(&file)
            .and_then(|c| {
                c.busy_timeout(BUSY_TIMEOUT)?;
                c.pragma_update(None, "journal_mode", "WAL")?;
                c.pragma_update(None, "synchronous", "FULL")?;
                c.execute_batch(sql("schema"))?;
                Ok(c)
            })
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase) => error(
                    format!("it is not a quota state ({e}); move it away to start afresh"),
                    None,
                ),
                _ => error(format!("opening it: {e}"), None),
            })?;
        let store = Self {
            file,
            connection: Arc::new(Mutex::new(connection)),
            clock,
        };
        store.import_json_state();
        Ok(store)
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Takes over the windows of the JSON state file that hosts before this
    /// one kept beside it (`quotas.json`), once: an upgrade in the middle of
    /// a window does not spend it again. The old file is renamed away.
    fn import_json_state(&self) {
        let old = self.file.with_file_name("quotas.json");
        let Ok(bytes) = std::fs::read(&old) else { return };
        let windows: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).unwrap_or_default();
        let imported = self.locked(|tx, _| {
            for (quota, window) in &windows {
                for at in window["admitted"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_i64())
                {
                    tx.execute(sql("admit"), (quota, at, 0))?;
                }
            }
            Ok(())
        });
        match imported {
            Ok(()) => {
                let _ = std::fs::rename(&old, old.with_extension("json.imported"));
            }
            Err(e) => {
                tracing::warn!(target: "api_entreprise::quota", "the old state {} was not taken over: {e}", old.display())
            }
        }
    }

    /// Runs `decide` in one `BEGIN IMMEDIATE` transaction, at the store's
    /// now (or `given`), and commits it.
    fn locked<R>(&self, decide: impl FnOnce(&Transaction<'_>, Millis) -> rusqlite::Result<R>) -> rusqlite::Result<R> {
        self.locked_at(0, decide)
    }

    fn locked_at<R>(
        &self,
        given: Millis,
        decide: impl FnOnce(&Transaction<'_>, Millis) -> rusqlite::Result<R>,
    ) -> rusqlite::Result<R> {
        let mut connection = self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = match self.clock {
            StoreClock::Given => given,
            StoreClock::Anchored => anchored_now(&tx)?,
        };
        let result = decide(&tx, now)?;
        tx.commit()?;
        Ok(result)
    }

    /// Runs [`Self::locked_at`] off the async executor: the lock may wait.
    async fn blocking<R: Send + 'static>(
        &self,
        given: Millis,
        decide: impl FnOnce(&Transaction<'_>, Millis) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, String> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.locked_at(given, decide)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the decision did not finish: {e}")),
        }
    }

    fn unavailable(&self, reason: String) -> Unavailable {
        Unavailable {
            store: format!("the state file {}", self.file.display()),
            reason,
            since: SystemClock.now(),
        }
    }
}

/// Creates `dir` (and its parents) readable and writable by this user only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// This boot's id (Linux), or `None` where the OS does not say: then the
/// store decides on the wall clock.
fn boot_id() -> Option<&'static str> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// `CLOCK_MONOTONIC` in milliseconds: the same for every process of the
/// machine (Python's `time.monotonic_ns`, Node's `process.hrtime`).
fn monotonic_ms() -> Millis {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as Millis * 1000 + t.tv_nsec as Millis / 1_000_000
}

/// The store's now: the anchor of this boot plus the monotonic time since
/// it; a new boot (or none yet) anchors at the wall clock, never before the
/// latest admitted request.
fn anchored_now(tx: &Transaction<'_>) -> rusqlite::Result<Millis> {
    let wall = SystemClock.now() as i64;
    let Some(boot) = boot_id() else {
        return Ok(wall as Millis);
    };
    let mono = monotonic_ms() as i64;
    let anchor: Option<(i64, i64)> = tx
        .query_row(sql("anchor"), [boot], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((at_wall, at_mono)) = anchor.filter(|(_, m)| mono >= *m) {
        return Ok((at_wall + (mono - at_mono)) as Millis);
    }
    let latest: i64 = tx.query_row(sql("latest"), [], |r| r.get(0))?;
    let at_wall = wall.max(latest);
    tx.execute(sql("forget_anchors"), [])?;
    tx.execute(sql("set_anchor"), (boot, at_wall, mono))?;
    Ok(at_wall as Millis)
}

/// The server's hint on `quota`, if any.
fn hint(tx: &Transaction<'_>, quota: &str) -> rusqlite::Result<Option<ServerHint>> {
    tx.query_row(sql("hint"), [quota], |r| {
        Ok(ServerHint {
            remaining: r.get::<_, i64>(0)?.clamp(0, u32::MAX.into()) as u32,
            reset: r.get::<_, i64>(1)?.max(0) as Millis,
        })
    })
    .optional()
}

/// Forgets what left `name`'s window (`length` ms) by `now`; its count and
/// the latest request of its oldest bucket then.
fn window(tx: &Transaction<'_>, name: &str, length: Millis, now: Millis) -> rusqlite::Result<(u32, Option<Millis>)> {
    tx.execute(sql("expire"), (name, now as i64 - length as i64))?;
    let (count, oldest): (i64, Option<i64>) = tx.query_row(sql("count"), [name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((
        u32::try_from(count.max(0)).unwrap_or(u32::MAX),
        oldest.map(|t| t.max(0) as Millis),
    ))
}

/// Takes a slot in every quota of `keys` at `now`, or in none.
fn acquire(tx: &Transaction<'_>, keys: &[QuotaKey], now: Millis) -> rusqlite::Result<Result<(), Wait>> {
    let mut waits = Vec::new();
    for key in keys {
        let length = key.spec.window.as_millis() as Millis;
        let (count, oldest) = window(tx, &key.name, length, now)?;
        if let Some(ms) = wait_in(
            key.spec.limit,
            length,
            count as usize,
            oldest,
            hint(tx, &key.name)?,
            now,
        ) {
            waits.push((key.name.clone(), ms));
        }
    }
    if let Some(wait) = longest(waits) {
        return Ok(Err(wait));
    }
    for key in keys {
        let length = key.spec.window.as_millis() as i64;
        tx.execute(sql("admit"), (&key.name, now as i64, length))?;
        tx.execute(sql("spend"), (&key.name, now as i64))?;
    }
    Ok(Ok(()))
}

/// Takes a slot of every pool of `shares` for its member at `now`, by the
/// fair rule (`fair.rs`), or in none: then the member is hungry in each.
fn acquire_fair(tx: &Transaction<'_>, shares: &[FairShare], now: Millis) -> rusqlite::Result<Result<(), Wait>> {
    let mut waits = Vec::new();
    for share in shares {
        let (pool, member) = (&share.pool.name, &share.member.name);
        let length = share.pool.spec.window.as_millis() as Millis;
        tx.execute(sql("member"), (pool, member, share.weight))?;
        let ip = window(tx, pool, length, now)?;
        let taken = window(tx, &pooled(&share.pool), length, now)?.0.max(ip.0);
        if within_guarantee(share, window(tx, member, length, now)?.0, taken) {
            continue;
        }
        // Every member's window expired at once, then read in one query.
        tx.execute(sql("expire_pool"), (pool, now as i64 - length as i64))?;
        type Listed = (String, f64, i64, i64, Option<i64>);
        let listed: Vec<Listed> = tx
            .prepare_cached(sql("candidates"))?
            .query_map((pool, now as i64, member), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let windows: std::collections::HashMap<String, (u32, Option<Millis>)> = listed
            .iter()
            .map(|(name, _, _, used, oldest)| {
                let used = u32::try_from((*used).max(0)).unwrap_or(u32::MAX);
                (name.clone(), (used, oldest.map(|t| t.max(0) as Millis)))
            })
            .collect();
        let listed = listed
            .into_iter()
            .map(|(name, weight, until, ..)| (name, weight, until > now as i64))
            .collect();
        let (candidates, me) = candidates(listed, member, |name| {
            Ok::<_, rusqlite::Error>(windows.get(name).copied().unwrap_or((0, None)))
        })?;
        if let Some(ms) = pool_wait(&share.pool, &candidates, me, ip, now) {
            waits.push((member.clone(), ms));
        }
    }
    if let Some(wait) = longest(waits) {
        for share in shares {
            let length = share.pool.spec.window.as_millis() as Millis;
            let until = (now + hungry_for(length)) as i64;
            tx.execute(sql("hungry"), (until, &share.pool.name, &share.member.name))?;
        }
        return Ok(Err(wait));
    }
    for share in shares {
        let length = share.member.spec.window.as_millis() as i64;
        tx.execute(sql("admit"), (&share.member.name, now as i64, length))?;
        tx.execute(sql("admit"), (pooled(&share.pool), now as i64, length))?;
    }
    Ok(Ok(()))
}

impl SqliteStore {
    /// Runs a decision off the executor; a store that cannot decide
    /// refuses: nothing leaves that was not counted.
    async fn decide(
        &self,
        now: Millis,
        decide: impl FnOnce(&Transaction<'_>, Millis) -> rusqlite::Result<Result<(), Wait>> + Send + 'static,
    ) -> Result<(), Denied> {
        match self.blocking(now, decide).await {
            Ok(decision) => decision.map_err(Denied::Full),
            Err(reason) => {
                let down = self.unavailable(reason);
                tracing::error!(target: "api_entreprise::quota", "{down}");
                Err(Denied::Unavailable(down))
            }
        }
    }
}

impl QuotaStore for SqliteStore {
    fn try_acquire<'a>(&'a self, keys: &'a [QuotaKey], now: Millis) -> BoxFuture<'a, Result<(), Denied>> {
        let owned = keys.to_vec();
        Box::pin(self.decide(now, move |tx, now| acquire(tx, &owned, now)))
    }

    fn try_acquire_fair<'a>(&'a self, shares: &'a [FairShare], now: Millis) -> BoxFuture<'a, Result<(), Denied>> {
        let owned = shares.to_vec();
        Box::pin(self.decide(now, move |tx, now| acquire_fair(tx, &owned, now)))
    }

    fn server_said<'a>(&'a self, name: &'a str, word: ServerWord, now: Millis) -> BoxFuture<'a, ()> {
        let name = name.to_owned();
        Box::pin(async move {
            let said = move |tx: &Transaction<'_>, now: Millis| {
                if let Some(h) = hint_after(hint(tx, &name)?, word, now) {
                    tx.execute(sql("set_hint"), (&name, i64::from(h.remaining), h.reset as i64))?;
                }
                Ok(())
            };
            if let Err(reason) = self.blocking(now, said).await {
                tracing::error!(target: "api_entreprise::quota", "the server's word was not saved: {}", self.unavailable(reason));
            }
        })
    }

    fn describe(&self) -> String {
        format!("the state file {}", self.file.display())
    }

    fn usage<'a>(&'a self, keys: &'a [QuotaKey], now: Millis) -> BoxFuture<'a, Result<Vec<Usage>, Unavailable>> {
        let owned = keys.to_vec();
        Box::pin(async move {
            let read = move |tx: &Transaction<'_>, now: Millis| {
                owned
                    .iter()
                    .map(|key| {
                        let since = now as i64 - key.spec.window.as_millis() as i64;
                        let (count, oldest): (i64, Option<i64>) =
                            tx.query_row(sql("usage"), (&key.name, since), |r| Ok((r.get(0)?, r.get(1)?)))?;
                        let oldest = oldest.map(|t| t.max(0) as Millis);
                        Ok(usage_of(key, count.max(0) as usize, oldest, hint(tx, &key.name)?, now))
                    })
                    .collect::<rusqlite::Result<Vec<Usage>>>()
            };
            self.blocking(now, read)
                .await
                .map_err(|reason| self.unavailable(reason))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_statement_the_store_runs_is_in_the_shared_file() {
        for name in [
            "schema",
            "anchor",
            "latest",
            "forget_anchors",
            "set_anchor",
            "expire",
            "count",
            "hint",
            "admit",
            "spend",
            "set_hint",
            "usage",
            "member",
            "expire_pool",
            "candidates",
            "hungry",
        ] {
            assert!(!sql(name).is_empty(), "{name}");
        }
        assert!(quota_scripts::sqlite("nothing").is_none());
    }

    #[tokio::test]
    async fn the_store_clock_stays_put_when_the_wall_clock_jumps() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join(STATE_FILE)).unwrap();
        let first = store.locked(|_, now| Ok(now)).unwrap();
        // Another boot's anchor, far in the future: this boot anchors anew,
        // not before the latest admitted request.
        store
            .locked(|tx, now| {
                tx.execute(sql("admit"), ("ip", now as i64 + 3_600_000, 600_000))?;
                tx.execute(sql("forget_anchors"), [])?;
                tx.execute(sql("set_anchor"), ("another boot", 0, 0))?;
                Ok(())
            })
            .unwrap();
        let after_reboot = store.locked(|_, now| Ok(now)).unwrap();
        assert!(after_reboot >= first + 3_600_000, "{first} then {after_reboot}");
        // Within a boot, the wall clock is read only once: the anchor's.
        let next = store.locked(|_, now| Ok(now)).unwrap();
        assert!(next >= after_reboot && next < after_reboot + 1_000);
    }

    /// A file of the hosts before the buckets (one row per departure):
    /// its window is carried over, and such a host, still running on it,
    /// can no longer count apart: its insert is refused, so it fails closed.
    #[tokio::test]
    async fn a_state_of_one_row_per_departure_is_carried_over_and_its_old_hosts_fail_closed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STATE_FILE);
        let now = SystemClock.now() as i64;
        {
            let old = Connection::open(&file).unwrap();
            old.execute_batch("CREATE TABLE admitted (quota TEXT NOT NULL, at INTEGER NOT NULL);")
                .unwrap();
            for at in [now - 2000, now - 1000, now - 1000] {
                old.execute("INSERT INTO admitted (quota, at) VALUES ('ip 3/10m', ?)", [at])
                    .unwrap();
            }
        }
        let store = SqliteStore::on_given_clock(file.clone()).unwrap();
        let key = QuotaKey {
            name: "ip 3/10m".into(),
            spec: "3/10m".parse().unwrap(),
        };
        let now = now as Millis;
        assert!(
            matches!(
                store.try_acquire(std::slice::from_ref(&key), now).await,
                Err(Denied::Full(_))
            ),
            "the old window's 3 requests were forgotten"
        );
        let usage = store.usage(std::slice::from_ref(&key), now).await.unwrap();
        assert_eq!(usage[0].used, 3);
        let old_host = Connection::open(&file).unwrap();
        let refused = old_host
            .execute("INSERT INTO admitted (quota, at) VALUES ('ip 3/10m', ?)", [now as i64])
            .unwrap_err();
        assert!(refused.to_string().contains("upgrade this host"), "{refused}");
        // Opened again (another host starting), nothing is counted twice.
        drop(store);
        let again = SqliteStore::on_given_clock(file).unwrap();
        assert_eq!(again.usage(std::slice::from_ref(&key), now).await.unwrap()[0].used, 3);
    }

    /// Whatever the traffic, a quota holds at most a thousand buckets (and
    /// one more, the window's edge), and its count is theirs.
    #[tokio::test]
    async fn a_quota_holds_a_bounded_number_of_buckets_whatever_the_traffic() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::on_given_clock(dir.path().join(STATE_FILE)).unwrap();
        let key = QuotaKey {
            name: "ip wide".into(),
            spec: "100000/5s".parse().unwrap(),
        };
        let start: Millis = 1_800_000_000_000;
        // 12,000 requests over 12 s, one a millisecond: more than two windows.
        for i in 0..12_000 {
            store.try_acquire(std::slice::from_ref(&key), start + i).await.unwrap();
        }
        let now = start + 11_999;
        let (buckets, count, total): (i64, i64, i64) = store
            .locked(|tx, _| {
                tx.query_row(
                    "SELECT count(*), coalesce(sum(count), 0), (SELECT count FROM totals WHERE quota = 'ip wide') \
                     FROM buckets WHERE quota = 'ip wide'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
            })
            .unwrap();
        assert!(buckets <= 1001, "{buckets} buckets");
        assert_eq!(count, total, "the total is not the buckets' sum");
        // The window (5 s, a request each ms) holds 5,001 instants; the
        // buckets keep at most one bucket (5 ms) more.
        let used = store.usage(std::slice::from_ref(&key), now).await.unwrap()[0].used;
        assert!((5_001..=5_006).contains(&used), "{used}");
    }

    #[tokio::test]
    async fn the_old_json_state_is_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemClock.now();
        std::fs::write(
            dir.path().join("quotas.json"),
            serde_json::json!({ "ip 3/10m": { "admitted": [now - 1000, now - 500, now - 100] } }).to_string(),
        )
        .unwrap();
        let store = SqliteStore::open(dir.path().join(STATE_FILE)).unwrap();
        let key = QuotaKey {
            name: "ip 3/10m".into(),
            spec: "3/10m".parse().unwrap(),
        };
        assert!(matches!(
            store.try_acquire(std::slice::from_ref(&key), now).await,
            Err(Denied::Full(_))
        ));
        assert!(!dir.path().join("quotas.json").exists());
        assert!(dir.path().join("quotas.json.imported").exists());
    }
}
