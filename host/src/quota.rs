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
#[derive(Debug)]
pub struct Quotas {
    clock: Box<dyn Clock>,
    state: Mutex<BTreeMap<String, Window>>,
    file: Option<PathBuf>,
}

impl Quotas {
    /// Empty quotas in memory, on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Box::new(SystemClock))
    }

    /// Empty quotas in memory, on `clock`.
    pub fn with_clock(clock: Box<dyn Clock>) -> Self {
        Self {
            clock,
            state: Mutex::default(),
            file: None,
        }
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
            state: Mutex::new(state),
            file: Some(file),
        })
    }

    /// The time on this quotas' clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Window>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a slot in every quota of `keys` now, or in none and says which
    /// quota is full and for how long.
    pub fn try_acquire(&self, keys: &[QuotaKey]) -> Result<(), Wait> {
        let now = self.clock.now();
        let mut state = self.lock();
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
                let oldest = *window.admitted.front().expect("limit is at least 1");
                wait = Some(oldest + length + 1 - now);
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
        self.save(&state);
        Ok(())
    }

    /// What the server said after a request of `name` (`RateLimit-Remaining`
    /// and `RateLimit-Reset`, in Unix seconds): it can only tighten the local
    /// state, never loosen it past the configured limit.
    pub fn observe(&self, name: &str, remaining: u32, reset_unix: u64) {
        let reset = reset_unix.saturating_mul(1000);
        let now = self.clock.now();
        if reset <= now {
            return;
        }
        let mut state = self.lock();
        let window = state.entry(name.to_owned()).or_default();
        let hint = match window.server.filter(|h| now < h.reset) {
            Some(h) if h.reset == reset => ServerHint {
                remaining: h.remaining.min(remaining),
                reset,
            },
            _ => ServerHint { remaining, reset },
        };
        window.server = Some(hint);
        self.save(&state);
    }

    /// Closes `name` for `retry_after` (a 429): nothing leaves before then.
    pub fn close(&self, name: &str, retry_after: Duration) {
        let now = self.clock.now();
        let mut state = self.lock();
        let window = state.entry(name.to_owned()).or_default();
        let until = now + retry_after.as_millis() as Millis;
        let reset = window.server.map_or(until, |h| h.reset.max(until));
        window.server = Some(ServerHint { remaining: 0, reset });
        self.save(&state);
    }

    /// Writes the state whole, beside the file then renamed over it, so that
    /// a crash leaves the old state or the new one, never half of one.
    fn save(&self, state: &BTreeMap<String, Window>) {
        let Some(file) = &self.file else { return };
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

    #[test]
    fn no_window_ever_admits_more_than_the_limit() {
        let (clock, quotas) = manual();
        let k = [key("ip", "3/10s")];
        let mut admitted = Vec::new();
        // One attempt every 700 ms for a minute: far more than allowed.
        for _ in 0..86 {
            if quotas.try_acquire(&k).is_ok() {
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

    #[test]
    fn a_refusal_says_when_the_oldest_slot_frees() {
        let (clock, quotas) = manual();
        let k = [key("ip", "2/10s")];
        quotas.try_acquire(&k).unwrap();
        clock.advance(Duration::from_secs(4));
        quotas.try_acquire(&k).unwrap();
        let wait = quotas.try_acquire(&k).unwrap_err();
        assert_eq!(wait.retry_after, Duration::from_millis(6001));
        assert_eq!(wait.quota, "ip");
        clock.advance(wait.retry_after - Duration::from_millis(1));
        assert!(quotas.try_acquire(&k).is_err());
        clock.advance(Duration::from_millis(1));
        assert!(quotas.try_acquire(&k).is_ok());
    }

    #[test]
    fn a_request_takes_a_slot_in_every_quota_or_in_none() {
        let (_, quotas) = manual();
        let ip = key("ip", "5/1m");
        let group = key("group", "2/1m");
        quotas.try_acquire(&[ip.clone(), group.clone()]).unwrap();
        quotas.try_acquire(&[ip.clone(), group.clone()]).unwrap();
        let wait = quotas.try_acquire(&[ip.clone(), group.clone()]).unwrap_err();
        assert!(wait.quota.starts_with("group"), "{wait:?}");
        // The refused request took no IP slot: three more fit.
        for _ in 0..3 {
            quotas.try_acquire(std::slice::from_ref(&ip)).unwrap();
        }
        assert!(quotas.try_acquire(&[ip]).is_err());
    }

    #[test]
    fn the_server_tightens_the_state_and_a_429_closes_the_group() {
        let (clock, quotas) = manual();
        let group = [key("group", "250/1m")];
        let reset = clock.now() / 1000 + 30;
        quotas.observe("group", 1, reset);
        quotas.try_acquire(&group).unwrap();
        let wait = quotas.try_acquire(&group).unwrap_err();
        assert!(wait.retry_after <= Duration::from_secs(30) && wait.retry_after > Duration::from_secs(28));
        // A looser word from the server in the same window does not loosen it.
        quotas.observe("group", 100, reset);
        assert!(quotas.try_acquire(&group).is_err());
        clock.advance(Duration::from_secs(31));
        quotas.try_acquire(&group).unwrap();
        quotas.close("group", Duration::from_secs(20));
        assert_eq!(
            quotas.try_acquire(&group).unwrap_err().retry_after,
            Duration::from_secs(20)
        );
        clock.advance(Duration::from_secs(20));
        assert!(quotas.try_acquire(&group).is_ok());
    }

    #[test]
    fn a_restarted_host_does_not_spend_the_window_again() {
        let dir = std::env::temp_dir().join(format!("api-entreprise-quota-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("quotas.json");
        let _ = std::fs::remove_file(&file);
        let k = [key("ip", "3/10m")];
        let first = Quotas::persistent(file.clone(), Box::new(SystemClock)).unwrap();
        for _ in 0..3 {
            first.try_acquire(&k).unwrap();
        }
        drop(first);
        let restarted = Quotas::persistent(file.clone(), Box::new(SystemClock)).unwrap();
        assert!(
            restarted.try_acquire(&k).is_err(),
            "the window's 3 requests were forgotten"
        );
        std::fs::write(&file, b"not json").unwrap();
        let err = Quotas::persistent(file.clone(), Box::new(SystemClock)).unwrap_err();
        assert!(err.to_string().contains("move it away"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_callers_never_share_the_last_slot() {
        let quotas = std::sync::Arc::new(Quotas::new());
        let k = [key("ip", "50/1h")];
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (quotas, k) = (quotas.clone(), k.clone());
                std::thread::spawn(move || (0..100).filter(|_| quotas.try_acquire(&k).is_ok()).count())
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 50);
    }
}
