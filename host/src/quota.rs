//! Sliding-window quotas: in no window of a quota's length do more requests
//! leave than it allows.
//!
//! Each admitted request's time is kept; a request is admitted only while
//! fewer than `limit` times fall in the last `window`, in every quota that
//! applies to it at once. The log lives under a mutex, so concurrent callers
//! cannot both take the last slot.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

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
        limit: 2000,
        window: Duration::from_secs(600),
    };

    /// Today's server's per-IP quota: 1000 requests a minute.
    pub const SERVER_IP: QuotaSpec = QuotaSpec {
        limit: 1000,
        window: Duration::from_secs(60),
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

/// Milliseconds since the Unix epoch: wall-clock time, so that the state
/// survives a restart.
pub type Millis = u64;

/// Where the quotas read the time; tests inject their own.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
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

/// A clock that moves only when told: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock showing `now`.
    pub fn at(now: Millis) -> Self {
        Self(std::sync::atomic::AtomicU64::new(now))
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

/// The server's last word on a group: `remaining` requests until `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct ServerHint {
    remaining: u32,
    reset: Millis,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Window {
    /// When each admitted request left, oldest first.
    admitted: VecDeque<Millis>,
    /// What the server said of this quota, when it said something.
    #[serde(default)]
    server: Option<ServerHint>,
}

/// Sliding-window quotas, checked and taken together: a request leaves only
/// with a slot in every quota that applies to it, or takes none.
///
/// The state can live in a file (written whole after each change, through a
/// rename), so that a restarted host does not spend again what the window
/// already used.
pub struct Quotas {
    clock: Box<dyn Clock>,
    store: Store,
}

/// Where the windows live.
enum Store {
    /// In this process, optionally mirrored to a file.
    Local {
        state: Mutex<BTreeMap<String, Window>>,
        file: Option<PathBuf>,
    },
    /// In Redis, shared by every host that uses the same server and prefix:
    /// one sorted set of departure times per quota, changed only by Lua
    /// scripts (atomic), on the Redis server's clock.
    Redis {
        connection: redis::aio::MultiplexedConnection,
        prefix: String,
    },
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.store {
            Store::Local { file, .. } => f.debug_struct("Quotas").field("file", file).finish_non_exhaustive(),
            Store::Redis { prefix, .. } => f
                .debug_struct("Quotas")
                .field("redis_prefix", prefix)
                .finish_non_exhaustive(),
        }
    }
}

/// Takes a slot in every quota or none. KEYS: one sorted set per quota.
/// ARGV: window (ms) and limit for each key, then a unique member id.
/// Returns `{0, 0}`, or the 1-based index of the quota that is full and the
/// milliseconds until it has a slot.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local worst, which = -1, 0
for i = 1, #KEYS do
  local key, window, limit = KEYS[i], tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window - 1)
  local wait = -1
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = tonumber(oldest[2]) + window + 1 - now
  end
  local hint = redis.call('HMGET', key .. ':server', 'remaining', 'reset')
  if hint[2] and tonumber(hint[2]) > now and tonumber(hint[1]) <= 0 then
    wait = math.max(wait, tonumber(hint[2]) - now)
  end
  if wait > worst then worst, which = wait, i end
end
if worst >= 0 then return {which, worst} end
local id = ARGV[2 * #KEYS + 1]
for i = 1, #KEYS do
  local key = KEYS[i]
  redis.call('ZADD', key, now, id)
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i - 1]) + 1000)
  local hint = redis.call('HMGET', key .. ':server', 'remaining', 'reset')
  if hint[2] and tonumber(hint[2]) > now then redis.call('HINCRBY', key .. ':server', 'remaining', -1) end
end
return {0, 0}
";

/// The server's word on a quota: KEYS[1] the quota; ARGV: remaining, reset
/// (ms), and 1 to close it (a 429) or 0 to tighten it.
const SERVER_SAID: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1] .. ':server'
local remaining, reset, close = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'
if close then reset = now + reset end
if reset <= now then return 0 end
local h = redis.call('HMGET', key, 'remaining', 'reset')
if h[2] and tonumber(h[2]) > now then
  if close then reset = math.max(reset, tonumber(h[2]))
  elseif tonumber(h[2]) == reset then remaining = math.min(remaining, tonumber(h[1])) end
end
redis.call('HSET', key, 'remaining', remaining, 'reset', reset)
redis.call('PEXPIREAT', key, reset + 1000)
return 1
";

impl Quotas {
    /// Empty quotas in memory, on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Box::new(SystemClock))
    }

    /// Empty quotas in memory, on `clock`.
    pub fn with_clock(clock: Box<dyn Clock>) -> Self {
        Self {
            clock,
            store: Store::Local {
                state: Mutex::default(),
                file: None,
            },
        }
    }

    /// Quotas kept in the Redis server at `url` (`redis://host:port/db`),
    /// under keys starting with `prefix`: every host using them shares them.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("the Redis URL {url:?}: {e}"))?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("connecting to Redis at {url}: {e}"))?;
        Ok(Self {
            clock: Box::new(SystemClock),
            store: Store::Redis {
                connection,
                prefix: prefix.to_owned(),
            },
        })
    }

    /// Quotas kept in `file`, starting from what it holds (a missing file is
    /// an empty state; an unreadable one is an error, never silently reset).
    pub fn persistent(file: PathBuf, clock: Box<dyn Clock>) -> std::io::Result<Self> {
        let state = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a quota state ({e}); move it away to start afresh",
                        file.display()
                    ),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            clock,
            store: Store::Local {
                state: Mutex::new(state),
                file: Some(file),
            },
        })
    }

    /// The time on this quotas' clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Takes a slot in every quota of `keys` now, or in none and says which
    /// quota is full and for how long. An unreachable Redis is a full quota:
    /// nothing leaves that was not counted.
    pub async fn try_acquire(&self, keys: &[QuotaKey]) -> Result<(), Wait> {
        let (state, file) = match &self.store {
            Store::Local { state, file } => (state, file),
            Store::Redis { connection, prefix } => return redis_acquire(connection.clone(), prefix, keys).await,
        };
        let now = self.clock.now();
        let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut longest: Option<Wait> = None;
        for key in keys {
            let window = state.entry(key.name.clone()).or_default();
            let length = key.spec.window.as_millis() as Millis;
            // A request exactly `window` ago is still inside it.
            while window.admitted.front().is_some_and(|t| now.saturating_sub(*t) > length) {
                window.admitted.pop_front();
            }
            let mut wait = None;
            if window.admitted.len() >= key.spec.limit as usize {
                // A quota of 0 (built by hand: the parser refuses it) admits nothing.
                wait = Some(
                    window
                        .admitted
                        .front()
                        .map_or(length, |oldest| oldest + length + 1 - now),
                );
            }
            if let Some(hint) = window.server.filter(|h| now < h.reset && h.remaining == 0) {
                wait = Some(wait.unwrap_or(0).max(hint.reset - now));
            }
            if let Some(ms) = wait
                && longest
                    .as_ref()
                    .is_none_or(|w| w.retry_after < Duration::from_millis(ms))
            {
                longest = Some(Wait {
                    quota: key.name.clone(),
                    retry_after: Duration::from_millis(ms),
                });
            }
        }
        if let Some(wait) = longest {
            return Err(wait);
        }
        for key in keys {
            let window = state.get_mut(&key.name).expect("entered above");
            window.admitted.push_back(now);
            if let Some(hint) = window.server.as_mut().filter(|h| now < h.reset) {
                hint.remaining = hint.remaining.saturating_sub(1);
            }
        }
        save(file.as_deref(), &state);
        Ok(())
    }

    /// What the server said after a request of `name` (`RateLimit-Remaining`
    /// and `RateLimit-Reset`, in Unix seconds): it can only tighten the local
    /// state, never loosen it past the configured limit.
    pub async fn observe(&self, name: &str, remaining: u32, reset_unix: u64) {
        let reset = reset_unix.saturating_mul(1000);
        let (state, file) = match &self.store {
            Store::Local { state, file } => (state, file),
            Store::Redis { connection, prefix } => {
                return redis_server_said(connection.clone(), prefix, name, remaining, reset, false).await;
            }
        };
        let now = self.clock.now();
        if reset <= now {
            return;
        }
        let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let window = state.entry(name.to_owned()).or_default();
        let hint = match window.server.filter(|h| now < h.reset) {
            Some(h) if h.reset == reset => ServerHint {
                remaining: h.remaining.min(remaining),
                reset,
            },
            _ => ServerHint { remaining, reset },
        };
        window.server = Some(hint);
        save(file.as_deref(), &state);
    }

    /// Closes `name` for `retry_after` (a 429): nothing leaves before then.
    pub async fn close(&self, name: &str, retry_after: Duration) {
        let (state, file) = match &self.store {
            Store::Local { state, file } => (state, file),
            Store::Redis { connection, prefix } => {
                let ms = retry_after.as_millis() as u64;
                return redis_server_said(connection.clone(), prefix, name, 0, ms, true).await;
            }
        };
        let now = self.clock.now();
        let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let window = state.entry(name.to_owned()).or_default();
        let until = now + retry_after.as_millis() as Millis;
        let reset = window.server.map_or(until, |h| h.reset.max(until));
        window.server = Some(ServerHint { remaining: 0, reset });
        save(file.as_deref(), &state);
    }
}

/// A member id no other request anywhere shares: process, counter, time.
fn unique_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{n}-{nanos}", std::process::id())
}

async fn redis_acquire(
    mut connection: redis::aio::MultiplexedConnection,
    prefix: &str,
    keys: &[QuotaKey],
) -> Result<(), Wait> {
    if keys.is_empty() {
        return Ok(());
    }
    let script = redis::Script::new(ACQUIRE);
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation
            .key(format!("{prefix}{}", key.name))
            .arg(key.spec.window.as_millis() as u64)
            .arg(key.spec.limit);
    }
    invocation.arg(unique_id());
    match invocation.invoke_async::<(usize, u64)>(&mut connection).await {
        Ok((0, _)) => Ok(()),
        Ok((which, ms)) => Err(Wait {
            quota: keys[which - 1].name.clone(),
            retry_after: Duration::from_millis(ms),
        }),
        Err(e) => {
            tracing::error!(target: "api_entreprise::quota", "Redis did not answer: {e}");
            Err(Wait {
                quota: format!("shared in Redis, which did not answer ({e})"),
                retry_after: Duration::from_secs(1),
            })
        }
    }
}

async fn redis_server_said(
    mut connection: redis::aio::MultiplexedConnection,
    prefix: &str,
    name: &str,
    remaining: u32,
    reset_or_wait_ms: u64,
    close: bool,
) {
    let result = redis::Script::new(SERVER_SAID)
        .key(format!("{prefix}{name}"))
        .arg(remaining)
        .arg(reset_or_wait_ms)
        .arg(u8::from(close))
        .invoke_async::<i64>(&mut connection)
        .await;
    if let Err(e) = result {
        tracing::error!(target: "api_entreprise::quota", "Redis did not take the server's word: {e}");
    }
}

/// Writes the state whole, beside the file then renamed over it, so that a
/// crash leaves the old state or the new one, never half of one.
fn save(file: Option<&std::path::Path>, state: &BTreeMap<String, Window>) {
    let Some(file) = file else { return };
    let result = serde_json::to_vec(state)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            let partial = file.with_extension("partial");
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, file)
        });
    if let Err(e) = result {
        tracing::error!(target: "api_entreprise::quota", file = %file.display(), "saving the quota state failed: {e}");
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self::new()
    }
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
        let wait = quotas.try_acquire(&k).await.unwrap_err();
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
        let wait = quotas.try_acquire(&[ip.clone(), group.clone()]).await.unwrap_err();
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
        let wait = quotas.try_acquire(&group).await.unwrap_err();
        assert!(wait.retry_after <= Duration::from_secs(30) && wait.retry_after > Duration::from_secs(28));
        // A looser word from the server in the same window does not loosen it.
        quotas.observe("group", 100, reset).await;
        assert!(quotas.try_acquire(&group).await.is_err());
        clock.advance(Duration::from_secs(31));
        quotas.try_acquire(&group).await.unwrap();
        quotas.close("group", Duration::from_secs(20)).await;
        assert_eq!(
            quotas.try_acquire(&group).await.unwrap_err().retry_after,
            Duration::from_secs(20)
        );
        clock.advance(Duration::from_secs(20));
        assert!(quotas.try_acquire(&group).await.is_ok());
    }

    #[tokio::test]
    async fn a_restarted_host_does_not_spend_the_window_again() {
        let dir = std::env::temp_dir().join(format!("api-entreprise-quota-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("quotas.json");
        let _ = std::fs::remove_file(&file);
        let k = [key("ip", "3/10m")];
        let first = Quotas::persistent(file.clone(), Box::new(SystemClock)).unwrap();
        for _ in 0..3 {
            first.try_acquire(&k).await.unwrap();
        }
        drop(first);
        let restarted = Quotas::persistent(file.clone(), Box::new(SystemClock)).unwrap();
        assert!(
            restarted.try_acquire(&k).await.is_err(),
            "the window's 3 requests were forgotten"
        );
        std::fs::write(&file, b"not json").unwrap();
        let err = Quotas::persistent(file.clone(), Box::new(SystemClock)).unwrap_err();
        assert!(err.to_string().contains("move it away"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
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
