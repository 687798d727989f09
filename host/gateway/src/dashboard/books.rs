//! The dashboard's bookkeeping: what the gateway answered, kept in memory in
//! fixed-size structures (counts by application and endpoint, a latency
//! histogram, time series of fixed buckets, the last requests), so that
//! its cost per request is one short lock and its memory does not grow
//! with the traffic.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use api_entreprise::quota::Usage;

use crate::audit::AuditLine;

/// How many of the last requests are kept.
pub const RECENT: usize = 50;
/// How many of the last changes of the client component are kept.
const SWAPS: usize = 20;
/// The most distinct error codes kept per endpoint (the rest are counted
/// under `other`): a server cannot grow the books without end.
const CODES: usize = 64;
/// The longest text kept of what the upstream or a caller gave (a request
/// id, a code, an object): 50 requests never hold more than a few KiB each.
const TEXT: usize = 128;

/// `text`, cut to [`TEXT`] characters.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Requests, and how many of them ended in each class of error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Answered.
    pub requests: u64,
    /// Answered 400–499 (429 included).
    pub client_errors: u64,
    /// Answered 500–599.
    pub server_errors: u64,
    /// Answered 429.
    pub too_many: u64,
}

impl Counts {
    fn add(&mut self, status: u16) {
        self.requests += 1;
        match status {
            429 => {
                self.client_errors += 1;
                self.too_many += 1;
            }
            400..=499 => self.client_errors += 1,
            500..=599 => self.server_errors += 1,
            _ => {}
        }
    }

    /// Answered with an error (4xx or 5xx).
    pub fn errors(&self) -> u64 {
        self.client_errors + self.server_errors
    }
}

/// Latencies in a fixed histogram: bucket `i` holds those up to
/// `100 µs × 2^(i/4)` (each bucket 19 % wider than the one before), from
/// 100 µs to about 100 s.
#[derive(Debug, Clone)]
pub struct Latency {
    buckets: [u32; LATENCY_BUCKETS],
    count: u64,
}

const LATENCY_BUCKETS: usize = 80;

impl Default for Latency {
    fn default() -> Self {
        Self {
            buckets: [0; LATENCY_BUCKETS],
            count: 0,
        }
    }
}

impl Latency {
    fn upper_bound(i: usize) -> f64 {
        0.1 * 2f64.powf(i as f64 / 4.0)
    }

    fn add(&mut self, ms: f64) {
        let i = if ms <= 0.1 {
            0
        } else {
            ((ms / 0.1).log2() * 4.0).ceil() as usize
        };
        self.buckets[i.min(LATENCY_BUCKETS - 1)] += 1;
        self.count += 1;
    }

    /// The latency under which a fraction `q` of the requests were answered,
    /// in milliseconds (the upper bound of its bucket: at most 19 % over);
    /// `None` before any request.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return Some(Self::upper_bound(i));
            }
        }
        Some(Self::upper_bound(LATENCY_BUCKETS - 1))
    }
}

/// One bucket of a time series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Slot {
    /// Which bucket of time it holds (its start divided by the width).
    tag: u64,
    /// Requests answered in it.
    pub calls: u32,
    /// The fullest per-IP window seen in it, as a fraction of its limit
    /// (sampled from the quota store).
    pub peak: f32,
    /// That window's requests then.
    pub peak_used: u32,
}

/// A time series of fixed buckets in a ring: recording overwrites the
/// bucket of the same position from one turn before.
#[derive(Debug, Clone)]
pub struct Series {
    width_ms: u64,
    slots: Vec<Slot>,
}

impl Series {
    fn new(width: Duration, count: usize) -> Self {
        Self {
            width_ms: width.as_millis() as u64,
            slots: vec![
                Slot {
                    tag: u64::MAX,
                    ..Slot::default()
                };
                count
            ],
        }
    }

    fn slot(&mut self, now_ms: u64) -> &mut Slot {
        let tag = now_ms / self.width_ms;
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[(tag % len) as usize];
        if slot.tag != tag {
            *slot = Slot { tag, ..Slot::default() };
        }
        slot
    }

    /// Every bucket from the oldest to the one `now_ms` falls in, with its
    /// start (Unix ms); a bucket nothing was recorded in is empty.
    pub fn recent(&self, now_ms: u64) -> Vec<(u64, Slot)> {
        let current = now_ms / self.width_ms;
        let len = self.slots.len() as u64;
        (current.saturating_sub(len - 1)..=current)
            .map(|tag| {
                let slot = self.slots[(tag % len) as usize];
                let slot = if slot.tag == tag { slot } else { Slot::default() };
                (tag * self.width_ms, slot)
            })
            .collect()
    }

    /// The calls of the buckets that cover the last `span` before `now_ms`.
    pub fn calls_within(&self, now_ms: u64, span: Duration) -> u64 {
        let buckets = (span.as_millis() as u64).div_ceil(self.width_ms) as usize;
        let recent = self.recent(now_ms);
        recent.iter().rev().take(buckets).map(|(_, s)| u64::from(s.calls)).sum()
    }
}

/// The three spans the per-IP quota is charted over.
#[derive(Debug, Clone)]
pub struct QuotaHistory {
    /// The last 10 minutes, in 10 s buckets.
    pub minutes: Series,
    /// The last 30 hours, in 30 min buckets.
    pub hours: Series,
    /// The last 8 days, in 3 h buckets.
    pub days: Series,
}

impl Default for QuotaHistory {
    fn default() -> Self {
        Self {
            minutes: Series::new(Duration::from_secs(10), 60),
            hours: Series::new(Duration::from_secs(1800), 60),
            days: Series::new(Duration::from_secs(3 * 3600), 64),
        }
    }
}

impl QuotaHistory {
    fn each(&mut self, now_ms: u64, f: impl Fn(&mut Slot)) {
        for series in [&mut self.minutes, &mut self.hours, &mut self.days] {
            f(series.slot(now_ms));
        }
    }
}

/// One endpoint's figures.
#[derive(Debug, Clone, Default)]
pub struct EndpointBooks {
    /// Its requests and errors.
    pub counts: Counts,
    /// Its errors by the code answered (the server's, or the gateway's own).
    pub codes: BTreeMap<String, u64>,
    /// Its latencies.
    pub latency: Latency,
}

/// One request as the dashboard lists it: never a key or a token, and the
/// trace's `object` only when the configuration allows.
#[derive(Debug, Clone)]
pub struct Recent {
    /// When it was answered (RFC 3339).
    pub time: String,
    /// Its application (none: no valid key).
    pub application: Option<String>,
    /// The endpoint it asked for.
    pub endpoint: Option<&'static str>,
    /// The status answered.
    pub status: u16,
    /// The error codes answered.
    pub codes: Vec<String>,
    /// The API's `X-Request-ID`.
    pub request_id: Option<String>,
    /// How long it took.
    pub latency_ms: f64,
    /// The trace's `object`, when shown.
    pub object: Option<String>,
    /// The client component that served it.
    pub client: Option<String>,
}

/// One change of the client component.
#[derive(Debug, Clone)]
pub struct SwapSeen {
    /// When (RFC 3339).
    pub time: String,
    /// The profile.
    pub profile: String,
    /// `swapped`, `refused`, `rolled_back`, `rolled_back_automatically`.
    pub outcome: &'static str,
    /// What was said of it.
    pub detail: String,
}

/// Everything the dashboard keeps.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Every request answered.
    pub total: Counts,
    /// Their latencies.
    pub latency: Latency,
    /// By application (`-` for requests without a valid key).
    pub applications: BTreeMap<String, Counts>,
    /// By endpoint.
    pub endpoints: BTreeMap<&'static str, EndpointBooks>,
    /// Each profile's calls that reached the API, by hour, over the last 7
    /// days.
    pub profile_calls: BTreeMap<String, Series>,
    /// Calls and the per-IP quota's fullness over time.
    pub quota: QuotaHistory,
    /// The per-IP windows when last sampled, and when (Unix ms).
    pub ip_windows: Option<(u64, Result<Vec<Usage>, String>)>,
    /// The last requests, the newest last.
    pub recent: VecDeque<Recent>,
    /// The last changes of the client component, the newest last.
    pub swaps: VecDeque<SwapSeen>,
}

/// The dashboard's bookkeeping, shared by every request.
#[derive(Debug, Default)]
pub struct Books {
    state: Mutex<State>,
    /// Whether the trace's `object` is listed with the last requests.
    show_object: bool,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Books {
    /// Empty books; `show_object` lists the trace's `object` with the last
    /// requests.
    pub fn new(show_object: bool) -> Self {
        Self {
            state: Mutex::default(),
            show_object,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One request answered, as its audit line says, at `now_ms`.
    pub fn record(&self, line: &AuditLine, now_ms: u64) {
        let recent = Recent {
            time: line.time.clone(),
            application: line.application.clone(),
            endpoint: line.endpoint,
            status: line.status,
            codes: line.codes.iter().take(8).map(|c| bounded(c)).collect(),
            request_id: line.request_id.as_deref().map(bounded),
            latency_ms: line.latency_ms,
            object: line.object.as_deref().filter(|_| self.show_object).map(bounded),
            client: line.client.as_deref().map(bounded),
        };
        let mut state = self.lock();
        state.total.add(line.status);
        state.latency.add(line.latency_ms);
        let application = line.application.as_deref().unwrap_or("-");
        match state.applications.get_mut(application) {
            Some(counts) => counts.add(line.status),
            None => {
                let mut counts = Counts::default();
                counts.add(line.status);
                state.applications.insert(application.to_owned(), counts);
            }
        }
        if let Some(endpoint) = line.endpoint {
            let books = state.endpoints.entry(endpoint).or_default();
            books.counts.add(line.status);
            books.latency.add(line.latency_ms);
            for code in &line.codes {
                let code = bounded(code);
                let room = books.codes.len() < CODES;
                match books.codes.get_mut(&code) {
                    Some(n) => *n += 1,
                    None if room => {
                        books.codes.insert(code, 1);
                    }
                    None => *books.codes.entry("other".to_owned()).or_default() += 1,
                }
            }
        }
        if let Some(profile) = line.profile.as_ref().filter(|_| line.sent) {
            if !state.profile_calls.contains_key(profile) {
                let week = Series::new(Duration::from_secs(3600), 7 * 24);
                state.profile_calls.insert(profile.clone(), week);
            }
            if let Some(series) = state.profile_calls.get_mut(profile) {
                series.slot(now_ms).calls += 1;
            }
        }
        state.quota.each(now_ms, |slot| slot.calls += 1);
        if state.recent.len() == RECENT {
            state.recent.pop_front();
        }
        state.recent.push_back(recent);
    }

    /// The per-IP windows as the quota store held them at `now_ms`.
    pub fn sampled(&self, usage: Result<Vec<Usage>, String>, now_ms: u64) {
        let fullest = usage.as_ref().ok().and_then(|u| fullest(u)).cloned();
        let mut state = self.lock();
        if let Some(fullest) = fullest {
            let ratio = fullest.used as f32 / fullest.spec.limit.max(1) as f32;
            state.quota.each(now_ms, |slot| {
                if ratio >= slot.peak {
                    slot.peak = ratio;
                    slot.peak_used = fullest.used;
                }
            });
        }
        state.ip_windows = Some((now_ms, usage));
    }

    /// One change of the client component.
    pub fn swap(&self, profile: &str, outcome: &'static str, detail: String) {
        let mut state = self.lock();
        if state.swaps.len() == SWAPS {
            state.swaps.pop_front();
        }
        state.swaps.push_back(SwapSeen {
            time: crate::audit::now(),
            profile: profile.to_owned(),
            outcome,
            detail,
        });
    }

    /// Whether the trace's `object` is listed with the last requests.
    pub fn show_object(&self) -> bool {
        self.show_object
    }

    /// A copy of everything, for a page.
    pub fn snapshot(&self) -> State {
        self.lock().clone()
    }
}

/// The per-IP window closest to its limit.
pub fn fullest(usage: &[Usage]) -> Option<&Usage> {
    usage.iter().filter(|u| u.name.starts_with("ip ")).max_by(|a, b| {
        let ratio = |u: &Usage| f64::from(u.used) / f64::from(u.spec.limit.max(1));
        ratio(a).total_cmp(&ratio(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(application: &str, endpoint: &'static str, status: u16, codes: &[&str], ms: f64) -> AuditLine {
        AuditLine {
            time: "2026-12-05T10:00:00Z".into(),
            application: Some(application.into()),
            profile: Some("aides".into()),
            endpoint: Some(endpoint),
            status,
            codes: codes.iter().map(|c| (*c).to_owned()).collect(),
            latency_ms: ms,
            object: Some("dossier 42".into()),
            sent: status != 429,
            ..AuditLine::default()
        }
    }

    #[test]
    fn requests_are_counted_by_application_endpoint_class_and_code() {
        let books = Books::new(false);
        let t = 1_000_000_000;
        books.record(&line("portail", "insee_unites_legales", 200, &[], 2.0), t);
        books.record(&line("portail", "insee_unites_legales", 404, &["00404"], 3.0), t);
        books.record(&line("batch", "insee_etablissements", 429, &["00429"], 1.0), t);
        books.record(&line("batch", "insee_etablissements", 502, &["03001"], 9.0), t);
        let s = books.snapshot();
        assert_eq!(
            s.total,
            Counts {
                requests: 4,
                client_errors: 2,
                server_errors: 1,
                too_many: 1
            }
        );
        assert_eq!(s.applications["portail"].requests, 2);
        assert_eq!(s.applications["batch"].too_many, 1);
        assert_eq!(s.endpoints["insee_unites_legales"].codes["00404"], 1);
        assert_eq!(s.endpoints["insee_etablissements"].counts.server_errors, 1);
        // The 429 was the gateway's own: it did not reach the API.
        assert_eq!(
            s.profile_calls["aides"].calls_within(t, Duration::from_secs(7 * 86_400)),
            3
        );
        assert_eq!(s.quota.minutes.recent(t).last().unwrap().1.calls, 4);
        // The object is kept only when configured.
        assert_eq!(s.recent.len(), 4);
        assert!(s.recent.iter().all(|r| r.object.is_none()));
        let shown = Books::new(true);
        shown.record(&line("portail", "insee_unites_legales", 200, &[], 2.0), t);
        assert_eq!(shown.snapshot().recent[0].object.as_deref(), Some("dossier 42"));
    }

    #[test]
    fn what_an_upstream_says_cannot_grow_the_books_without_end() {
        let books = Books::new(true);
        for n in 0..1000 {
            let code = format!("C{n:05}");
            let mut l = line("portail", "insee_unites_legales", 502, &[&code], 1.0);
            l.request_id = Some("x".repeat(4 << 20));
            books.record(&l, 0);
        }
        let s = books.snapshot();
        let codes = &s.endpoints["insee_unites_legales"].codes;
        assert_eq!(codes.len(), CODES + 1);
        assert_eq!(codes["other"], 1000 - CODES as u64);
        let kept: usize = s.recent.iter().map(|r| r.request_id.as_ref().unwrap().len()).sum();
        assert!(kept < RECENT * (TEXT + 4), "{kept} bytes of request ids kept");
    }

    #[test]
    fn only_the_last_requests_are_kept() {
        let books = Books::new(false);
        for n in 0..RECENT + 7 {
            let mut l = line("portail", "insee_unites_legales", 200, &[], 1.0);
            l.request_id = Some(n.to_string());
            books.record(&l, 0);
        }
        let s = books.snapshot();
        assert_eq!(s.recent.len(), RECENT);
        assert_eq!(s.recent.front().unwrap().request_id.as_deref(), Some("7"));
        assert_eq!(s.total.requests as usize, RECENT + 7);
    }

    #[test]
    fn a_series_forgets_a_bucket_one_turn_later() {
        let mut series = Series::new(Duration::from_secs(10), 6);
        series.slot(5_000).calls += 3;
        series.slot(15_000).calls += 1;
        assert_eq!(series.calls_within(15_000, Duration::from_secs(60)), 4);
        assert_eq!(series.calls_within(15_000, Duration::from_secs(10)), 1);
        // 60 s later the first bucket's place is taken by a new one.
        series.slot(65_000).calls += 2;
        let recent = series.recent(65_000);
        assert_eq!(recent.len(), 6);
        assert_eq!(recent.iter().map(|(_, s)| s.calls).sum::<u32>(), 3);
        assert_eq!(recent.last().unwrap(), &(60_000, recent.last().unwrap().1));
    }

    #[test]
    fn latency_quantiles_are_within_a_bucket() {
        let mut latency = Latency::default();
        assert_eq!(latency.quantile(0.5), None);
        for ms in 1..=100 {
            latency.add(f64::from(ms));
        }
        let p50 = latency.quantile(0.5).unwrap();
        let p95 = latency.quantile(0.95).unwrap();
        assert!((50.0..=50.0 * 1.19).contains(&p50), "{p50}");
        assert!((95.0..=95.0 * 1.19).contains(&p95), "{p95}");
        latency.add(1e9);
        assert!(latency.quantile(1.0).unwrap() > 10_000.0);
    }

    #[test]
    fn the_peak_of_the_fullest_ip_window_is_kept_per_bucket() {
        let books = Books::new(false);
        let usage = |used| {
            vec![
                Usage {
                    name: "ip 2000/10m".into(),
                    spec: api_entreprise::QuotaSpec {
                        limit: 2000,
                        window: Duration::from_secs(600),
                    },
                    used,
                    frees_in: None,
                    server: None,
                },
                Usage {
                    name: "ip 10/1m".into(),
                    spec: api_entreprise::QuotaSpec {
                        limit: 10,
                        window: Duration::from_secs(60),
                    },
                    used: used / 100,
                    frees_in: None,
                    server: None,
                },
            ]
        };
        books.sampled(Ok(usage(500)), 1_000);
        books.sampled(Ok(usage(900)), 2_000);
        books.sampled(Ok(usage(300)), 3_000);
        let s = books.snapshot();
        let slot = s.quota.minutes.recent(3_000).last().unwrap().1;
        // 900 of 2000 is 45 %, 9 of 10 is 90 %: the second is the fuller.
        assert!((slot.peak - 0.9).abs() < 1e-6, "{slot:?}");
        assert_eq!(slot.peak_used, 9);
    }
}
