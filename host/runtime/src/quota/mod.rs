//! Sliding-window quotas: in no window of a quota's length do more requests
//! leave than it allows.
//!
//! Each admitted request's time is kept; a request is admitted only while
//! fewer than `limit` times fall in the last `window`, in every quota that
//! applies to it at once. Where the windows live is a [`QuotaStore`]: in
//! this process ([`MemoryStore`]), in a SQLite file shared by every host of
//! one machine, whatever its language ([`SqliteStore`], one `BEGIN
//! IMMEDIATE` transaction per decision), or in Redis, shared by every host
//! behind one egress IP ([`RedisStore`], one Lua script per decision). Each
//! decides atomically: concurrent callers never share the last slot. The
//! local stores decide on a monotonic clock, so that a jump of the wall
//! clock empties no window. Several applications share a pool (a per-IP
//! quota) by the fair rule of `fair.rs`, decided in the same store.

mod fair;
mod memory;
mod redis;
mod sqlite;
mod windows;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use fair::{FairShare, hungry_for};
pub use memory::MemoryStore;
pub use redis::{RedisStore, redact_url};
pub use sqlite::{STATE_FILE, SqliteStore};

/// Where the quotas live in a shared Redis: every host uses this prefix, so
/// that they count together.
pub const REDIS_PREFIX: &str = "api-entreprise:quota:";

/// `N` requests per `window`, as written `N/DURATION` (`2000/10m`, `1000/1m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Requests allowed in any window.
    pub limit: u32,
    /// The window's length.
    pub window: Duration,
}

impl QuotaSpec {
    /// The source document's per-IP quota: 2000 requests in any 10 minutes.
    pub const SOURCE_DOCUMENT_IP: QuotaSpec = QuotaSpec {
        limit: api_entreprise_catalogue::IP_QUOTAS[0].0,
        window: Duration::from_secs(api_entreprise_catalogue::IP_QUOTAS[0].1 as u64),
    };

    /// Today's server's per-IP quota: 1000 requests a minute.
    pub const SERVER_IP: QuotaSpec = QuotaSpec {
        limit: api_entreprise_catalogue::IP_QUOTAS[1].0,
        window: Duration::from_secs(api_entreprise_catalogue::IP_QUOTAS[1].1 as u64),
    };

    /// Both per-IP quotas, the default: either one crossed bans the IP.
    pub const DEFAULT_IP: [QuotaSpec; 2] = [Self::SOURCE_DOCUMENT_IP, Self::SERVER_IP];
}

impl fmt::Display for QuotaSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.window.as_secs();
        match s {
            s if s % 3600 == 0 => write!(f, "{}/{}h", self.limit, s / 3600),
            s if s % 60 == 0 => write!(f, "{}/{}m", self.limit, s / 60),
            s => write!(f, "{}/{}s", self.limit, s),
        }
    }
}

impl FromStr for QuotaSpec {
    type Err = crate::ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || crate::ConfigError::Quota(s.to_owned());
        let (limit, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let limit: u32 = limit.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let split = window.find(|c: char| !c.is_ascii_digit()).unwrap_or(window.len());
        let (count, unit) = window.split_at(split);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| bad())?
        };
        let seconds = match unit {
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        if limit == 0 || count == 0 {
            return Err(bad());
        }
        Ok(Self {
            limit,
            window: Duration::from_secs(count * seconds),
        })
    }
}

/// Milliseconds since the Unix epoch, on a store's clock: the wall clock,
/// or a monotonic clock anchored to it (see [`MonotonicClock`]).
pub type Millis = u64;

/// Where the quotas read the time; tests inject their own.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// A clock shared with whoever else holds it (a test that moves it).
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Millis {
        (**self).now()
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}

/// The wall clock when it was made, then the monotonic clock: a jump of the
/// wall clock (a step by NTP, a mistaken setting) moves no window of the
/// quotas of this process.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    wall: Millis,
    since: std::time::Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self {
            wall: SystemClock.now(),
            since: std::time::Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Millis {
        self.wall + self.since.elapsed().as_millis() as Millis
    }
}

/// A clock that moves only when told: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock showing `now`.
    pub fn at(now: Millis) -> Self {
        Self(std::sync::atomic::AtomicU64::new(now))
    }

    /// Sets the clock to `now`.
    pub fn set(&self, now: Millis) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One quota a request counts against: a name (`ip 2000/10m`,
/// `group json_resources_entreprise`) and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaKey {
    /// The name; quotas with the same name share their state.
    pub name: String,
    /// What it allows.
    pub spec: QuotaSpec,
}

/// Why a request has no slot yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// The quota that is full (or closed by the server).
    pub quota: String,
    /// How long until it has a slot again.
    pub retry_after: Duration,
}

/// What the server said of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerWord {
    /// `RateLimit-Remaining` requests left until `RateLimit-Reset`: it can
    /// only tighten the state, never loosen it.
    Remaining {
        /// Requests left in the server's window.
        remaining: u32,
        /// How long until the server's window ends: each store counts it
        /// from its own clock (Redis's, a monotonic one).
        reset_in: Duration,
    },
    /// A 429: nothing leaves for this long.
    Closed(Duration),
}

/// A store that cannot decide now (Redis unreachable, the state file
/// unusable): nothing leaves until it can, since nothing may leave
/// uncounted. Not a full quota: waiting for a slot does not help, the store
/// must come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The store, as it can be shown (a Redis URL without its password).
    pub store: String,
    /// Why it cannot decide.
    pub reason: String,
    /// Since when (Unix milliseconds) it has not answered.
    pub since: Millis,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = SystemClock.now().saturating_sub(self.since) / 1000;
        write!(
            f,
            "the quota store ({}) is unavailable since {seconds} s ago ({})",
            self.store, self.reason
        )
    }
}

/// Why a request has no slot now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// A quota is full (or closed by the server): a slot frees later.
    Full(Wait),
    /// The store cannot decide: fail closed until it is back.
    Unavailable(Unavailable),
}

impl From<Wait> for Denied {
    fn from(wait: Wait) -> Self {
        Denied::Full(wait)
    }
}

/// How full one quota's window is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The quota's name (`ip 2000/10m`, `group …`).
    pub name: String,
    /// What it allows, its window widened by the host's margin.
    pub spec: QuotaSpec,
    /// Requests in the window now.
    pub used: u32,
    /// When the oldest of them leaves the window.
    pub frees_in: Option<Duration>,
    /// What the server said that still holds: requests remaining, and for
    /// how long (a 429 says 0).
    pub server: Option<(u32, Duration)>,
}

/// A boxed future, so that the store trait can be used as `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the quota windows live. Each call decides atomically for every
/// process that shares the store.
pub trait QuotaStore: Send + Sync + fmt::Debug {
    /// Takes a slot in every quota of `keys` at `now`, or in none and says
    /// which quota is full and for how long. A store that cannot decide
    /// (unreachable, unreadable) refuses with [`Denied::Unavailable`]:
    /// nothing leaves uncounted.
    fn try_acquire<'a>(&'a self, keys: &'a [QuotaKey], now: Millis) -> BoxFuture<'a, Result<(), Denied>>;

    /// Takes a slot of every pool of `shares` for its member, by the fair
    /// rule (`fair.rs`: weighted max-min fairness over the members that
    /// want the pool now), or in none and says which member's share is
    /// full and for how long; the member is then hungry. Decided at once
    /// for every process that shares the store.
    fn try_acquire_fair<'a>(&'a self, shares: &'a [FairShare], now: Millis) -> BoxFuture<'a, Result<(), Denied>>;

    /// Records what the server said of the quota `name`.
    fn server_said<'a>(&'a self, name: &'a str, word: ServerWord, now: Millis) -> BoxFuture<'a, ()>;

    /// Where the windows are, as a message says it (never a password).
    fn describe(&self) -> String;

    /// How full each quota of `keys` is at `now`; changes nothing.
    fn usage<'a>(&'a self, keys: &'a [QuotaKey], now: Millis) -> BoxFuture<'a, Result<Vec<Usage>, Unavailable>>;
}

/// Sliding-window quotas, checked and taken together: a request leaves only
/// with a slot in every quota that applies to it, or takes none.
#[derive(Debug)]
pub struct Quotas {
    /// What the store decides on (a SQLite or Redis store keeps its own).
    clock: Arc<dyn Clock>,
    /// The wall clock, to read the server's `RateLimit-Reset` (an instant).
    wall: Arc<dyn Clock>,
    store: Box<dyn QuotaStore>,
}

impl Quotas {
    /// Empty quotas in this process only, on a [`MonotonicClock`].
    pub fn new() -> Self {
        Self {
            clock: Arc::new(MonotonicClock::default()),
            wall: Arc::new(SystemClock),
            store: Box::new(MemoryStore::default()),
        }
    }

    /// Empty quotas in memory, on `clock` (also read as the wall clock).
    pub fn with_clock(clock: Box<dyn Clock>) -> Self {
        Self::with_store(Box::new(MemoryStore::default()), clock)
    }

    /// Quotas kept in `store`, on `clock` (also read as the wall clock; a
    /// SQLite or Redis store keeps its own).
    pub fn with_store(store: Box<dyn QuotaStore>, clock: Box<dyn Clock>) -> Self {
        let clock: Arc<dyn Clock> = Arc::from(clock);
        Self {
            wall: clock.clone(),
            clock,
            store,
        }
    }

    /// Quotas kept in the Redis server at `url` (`redis://host:port/db`),
    /// under keys starting with `prefix`: every host using them shares them.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, QuotaStoreError> {
        let store = RedisStore::connect(url, prefix).await?;
        Ok(Self::with_store(Box::new(store), Box::new(SystemClock)))
    }

    /// Quotas kept in the SQLite file `file` ([`STATE_FILE`] in the state
    /// directory), shared with every host of this machine that uses the
    /// same file, whatever its language. A missing file is an empty state;
    /// one that is not a quota state is an error, never silently reset.
    pub fn persistent(file: PathBuf) -> Result<Self, QuotaStoreError> {
        let store = SqliteStore::open(file)?;
        Ok(Self::with_store(Box::new(store), Box::new(SystemClock)))
    }

    /// The time on the wall clock these quotas read the server's instants
    /// with.
    pub fn wall_now(&self) -> Millis {
        self.wall.now()
    }

    /// Takes a slot in every quota of `keys` now, or in none and says which
    /// quota is full and for how long, or that the store cannot decide.
    pub async fn try_acquire(&self, keys: &[QuotaKey]) -> Result<(), Denied> {
        if keys.is_empty() {
            return Ok(());
        }
        self.store.try_acquire(keys, self.clock.now()).await
    }

    /// Takes a slot of every pool of `shares` for its member now, by the
    /// fair rule: each member gets at least its weight's part of a pool
    /// whenever it asks, and what idle members leave is lent to the busy
    /// ones ([`QuotaStore::try_acquire_fair`]).
    pub async fn try_acquire_fair(&self, shares: &[FairShare]) -> Result<(), Denied> {
        if shares.is_empty() {
            return Ok(());
        }
        self.store.try_acquire_fair(shares, self.clock.now()).await
    }

    /// What the server said after a request of `name` (`RateLimit-Remaining`
    /// and `RateLimit-Reset`, in Unix seconds): it can only tighten the local
    /// state, never loosen it past the configured limit.
    pub async fn observe(&self, name: &str, remaining: u32, reset_unix: u64) {
        let word = ServerWord::Remaining {
            remaining,
            reset_in: Duration::from_millis(reset_unix.saturating_mul(1000).saturating_sub(self.wall.now())),
        };
        self.store.server_said(name, word, self.clock.now()).await;
    }

    /// Where the windows are, as a message says it (never a password).
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// How full each quota of `keys` is now, as the store holds it.
    pub async fn usage(&self, keys: &[QuotaKey]) -> Result<Vec<Usage>, Unavailable> {
        self.store.usage(keys, self.clock.now()).await
    }

    /// Closes `name` for `retry_after` (a 429): nothing leaves before then.
    pub async fn close(&self, name: &str, retry_after: Duration) {
        self.store
            .server_said(name, ServerWord::Closed(retry_after), self.clock.now())
            .await;
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self::new()
    }
}

/// A quota store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaStoreError {
    /// The state file could not be read, or holds something else.
    #[error("the quota state {}: {reason}", path.display())]
    File {
        /// The state file.
        path: PathBuf,
        /// What went wrong, and what to do.
        reason: String,
        /// The I/O error, when there was one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// Redis could not be reached or refused the URL (shown without its
    /// password).
    #[error("{0}; check --redis-url")]
    Redis(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_in_the_documented_form_and_bad_ones_are_refused() {
        let q: QuotaSpec = "2000/10m".parse().unwrap();
        assert_eq!(q, QuotaSpec::SOURCE_DOCUMENT_IP);
        assert_eq!("1000/min".parse::<QuotaSpec>().unwrap().window, Duration::from_secs(60));
        assert_eq!("5/30s".parse::<QuotaSpec>().unwrap().to_string(), "5/30s");
        assert_eq!(q.to_string(), "2000/10m");
        for bad in ["", "2000", "0/1m", "x/1m", "10/0m", "10/1d", "-1/1m"] {
            assert!(bad.parse::<QuotaSpec>().is_err(), "{bad}");
        }
    }

    /// The wait of a refusal for a full quota.
    fn full(decision: Result<(), Denied>) -> Wait {
        match decision {
            Err(Denied::Full(wait)) => wait,
            other => panic!("not a full quota: {other:?}"),
        }
    }

    fn key(name: &str, spec: &str) -> QuotaKey {
        QuotaKey {
            name: name.into(),
            spec: spec.parse().unwrap(),
        }
    }

    fn manual() -> (std::sync::Arc<ManualClock>, Quotas) {
        #[derive(Debug)]
        struct Shared(std::sync::Arc<ManualClock>);
        impl Clock for Shared {
            fn now(&self) -> Millis {
                self.0.now()
            }
        }
        let clock = std::sync::Arc::new(ManualClock::at(1_800_000_000_000));
        (clock.clone(), Quotas::with_clock(Box::new(Shared(clock))))
    }

    #[tokio::test]
    async fn no_window_ever_admits_more_than_the_limit() {
        let (clock, quotas) = manual();
        let k = [key("ip", "3/10s")];
        let mut admitted = Vec::new();
        // One attempt every 700 ms for a minute: far more than allowed.
        for _ in 0..86 {
            if quotas.try_acquire(&k).await.is_ok() {
                admitted.push(clock.now());
            }
            clock.advance(Duration::from_millis(700));
        }
        assert!(admitted.len() >= 3 * 5, "{}", admitted.len());
        for (i, first) in admitted.iter().enumerate() {
            let in_window = admitted[i..].iter().filter(|t| **t - first <= 10_000).count();
            assert!(in_window <= 3, "window from #{i} holds {in_window}");
        }
    }

    #[tokio::test]
    async fn a_refusal_says_when_the_oldest_slot_frees() {
        let (clock, quotas) = manual();
        let k = [key("ip", "2/10s")];
        quotas.try_acquire(&k).await.unwrap();
        clock.advance(Duration::from_secs(4));
        quotas.try_acquire(&k).await.unwrap();
        let wait = full(quotas.try_acquire(&k).await);
        assert_eq!(wait.retry_after, Duration::from_millis(6001));
        assert_eq!(wait.quota, "ip");
        clock.advance(wait.retry_after - Duration::from_millis(1));
        assert!(quotas.try_acquire(&k).await.is_err());
        clock.advance(Duration::from_millis(1));
        assert!(quotas.try_acquire(&k).await.is_ok());
    }

    #[tokio::test]
    async fn a_request_takes_a_slot_in_every_quota_or_in_none() {
        let (_, quotas) = manual();
        let ip = key("ip", "5/1m");
        let group = key("group", "2/1m");
        quotas.try_acquire(&[ip.clone(), group.clone()]).await.unwrap();
        quotas.try_acquire(&[ip.clone(), group.clone()]).await.unwrap();
        let wait = full(quotas.try_acquire(&[ip.clone(), group.clone()]).await);
        assert!(wait.quota.starts_with("group"), "{wait:?}");
        // The refused request took no IP slot: three more fit.
        for _ in 0..3 {
            quotas.try_acquire(std::slice::from_ref(&ip)).await.unwrap();
        }
        assert!(quotas.try_acquire(&[ip]).await.is_err());
        let none = QuotaKey {
            name: "closed".into(),
            spec: QuotaSpec {
                limit: 0,
                window: Duration::from_secs(1),
            },
        };
        assert!(
            quotas.try_acquire(&[none]).await.is_err(),
            "a zero quota admits nothing, and does not panic"
        );
    }

    #[tokio::test]
    async fn the_server_tightens_the_state_and_a_429_closes_the_group() {
        let (clock, quotas) = manual();
        let group = [key("group", "250/1m")];
        let reset = clock.now() / 1000 + 30;
        quotas.observe("group", 1, reset).await;
        quotas.try_acquire(&group).await.unwrap();
        let wait = full(quotas.try_acquire(&group).await);
        assert!(wait.retry_after <= Duration::from_secs(30) && wait.retry_after > Duration::from_secs(28));
        // A looser word from the server in the same window does not loosen it.
        quotas.observe("group", 100, reset).await;
        assert!(quotas.try_acquire(&group).await.is_err());
        clock.advance(Duration::from_secs(31));
        quotas.try_acquire(&group).await.unwrap();
        quotas.close("group", Duration::from_secs(20)).await;
        assert_eq!(
            full(quotas.try_acquire(&group).await).retry_after,
            Duration::from_secs(20)
        );
        clock.advance(Duration::from_secs(20));
        assert!(quotas.try_acquire(&group).await.is_ok());
    }

    #[tokio::test]
    async fn a_restarted_host_does_not_spend_the_window_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STATE_FILE);
        let k = [key("ip", "3/10m")];
        let first = Quotas::persistent(file.clone()).unwrap();
        for _ in 0..3 {
            first.try_acquire(&k).await.unwrap();
        }
        drop(first);
        let restarted = Quotas::persistent(file.clone()).unwrap();
        assert!(
            restarted.try_acquire(&k).await.is_err(),
            "the window's 3 requests were forgotten"
        );
        drop(restarted);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("{STATE_FILE}{suffix}")));
        }
        std::fs::write(&file, b"not a database, but long enough to have a header of one").unwrap();
        let err = Quotas::persistent(file.clone()).unwrap_err();
        assert!(err.to_string().contains("move it away"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_never_share_the_last_slot() {
        let quotas = std::sync::Arc::new(Quotas::new());
        let k = [key("ip", "50/1h")];
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (quotas, k) = (quotas.clone(), k.clone());
                tokio::spawn(async move {
                    let mut admitted = 0;
                    for _ in 0..100 {
                        admitted += usize::from(quotas.try_acquire(&k).await.is_ok());
                    }
                    admitted
                })
            })
            .collect();
        let mut admitted = 0;
        for task in tasks {
            admitted += task.await.unwrap();
        }
        assert_eq!(admitted, 50);
    }
}
