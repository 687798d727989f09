//! Sliding-window quotas: in no window of the quota's length do more
//! requests leave than it allows.
//!
//! Each admitted request's time is kept; a request is admitted only while
//! fewer than `limit` times fall in the last `window`. The log lives under a
//! mutex, so concurrent callers cannot both take the last slot.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

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
}

impl Default for QuotaSpec {
    fn default() -> Self {
        Self::SOURCE_DOCUMENT_IP
    }
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

/// A quota counting admitted requests in a sliding window.
#[derive(Debug)]
pub struct Quota {
    spec: QuotaSpec,
    admitted: Mutex<VecDeque<Instant>>,
}

impl Quota {
    /// An empty quota.
    pub fn new(spec: QuotaSpec) -> Self {
        Self {
            spec,
            admitted: Mutex::new(VecDeque::with_capacity(spec.limit.min(4096) as usize)),
        }
    }

    /// What it allows.
    pub fn spec(&self) -> QuotaSpec {
        self.spec
    }

    /// Takes a slot now, or says how long until one frees up.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> Result<(), Duration> {
        let mut admitted = self.admitted.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A time exactly `window` ago is still inside the window: keep it.
        while admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.spec.window)
        {
            admitted.pop_front();
        }
        if admitted.len() < self.spec.limit as usize {
            admitted.push_back(now);
            Ok(())
        } else {
            let oldest = *admitted.front().expect("limit is at least 1");
            Err(self.spec.window - now.duration_since(oldest) + Duration::from_millis(1))
        }
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

    /// The clock is injected: each attempt says when it happens.
    #[test]
    fn no_window_ever_admits_more_than_the_limit() {
        let spec = QuotaSpec {
            limit: 3,
            window: Duration::from_secs(10),
        };
        let quota = Quota::new(spec);
        let start = Instant::now();
        // One attempt every 700 ms for a minute: far more than allowed.
        let admitted: Vec<Instant> = (0..86)
            .map(|i| start + Duration::from_millis(700 * i))
            .filter(|t| quota.try_acquire_at(*t).is_ok())
            .collect();
        assert!(admitted.len() >= 3 * 5, "{}", admitted.len());
        for (i, first) in admitted.iter().enumerate() {
            let in_window = admitted[i..]
                .iter()
                .filter(|t| t.duration_since(*first) <= spec.window)
                .count();
            assert!(in_window <= 3, "window from #{i} holds {in_window}");
        }
    }

    #[test]
    fn a_refusal_says_when_the_oldest_slot_frees() {
        let quota = Quota::new("2/10s".parse().unwrap());
        let t0 = Instant::now();
        quota.try_acquire_at(t0).unwrap();
        quota.try_acquire_at(t0 + Duration::from_secs(4)).unwrap();
        let wait = quota.try_acquire_at(t0 + Duration::from_secs(4)).unwrap_err();
        assert!(
            wait > Duration::from_secs(6) && wait <= Duration::from_millis(6001),
            "{wait:?}"
        );
        assert!(
            quota
                .try_acquire_at(t0 + Duration::from_secs(4) + wait - Duration::from_millis(2))
                .is_err()
        );
        assert!(quota.try_acquire_at(t0 + Duration::from_secs(4) + wait).is_ok());
    }

    #[test]
    fn concurrent_callers_never_share_the_last_slot() {
        let quota = std::sync::Arc::new(Quota::new("50/1h".parse().unwrap()));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let quota = quota.clone();
                std::thread::spawn(move || (0..100).filter(|_| quota.try_acquire().is_ok()).count())
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 50);
    }
}
