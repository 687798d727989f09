//! Circuit breakers: stop calling what is not answering.
//!
//! A banned IP gets no HTTP answer at all, for hours: consecutive connect or
//! first-byte timeouts against the API open the API's circuit, and calls
//! then fail at once instead of making the ban worse. After a cool-down the
//! next call first probes a free health route (`/pings`: no quota, no
//! token needed); an answer closes the circuit, silence reopens it for twice
//! as long. A provider that keeps failing (502, 503, 504) is broken on its
//! own, without blocking the others. A token the API refuses as such
//! (`00101`, `00103`, `00105`, `00106`) stops its calls: each is refused
//! locally, and `/privileges` is asked again rarely, in case it works again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use std::time::Instant;

/// When circuits open and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Consecutive timeouts against the API that open its circuit.
    pub ban_threshold: u32,
    /// How long the API's circuit first stays open (doubled at each failed
    /// probe, up to 12 hours, the length of a ban).
    pub ban_cooldown: Duration,
    /// Consecutive 502/503/504 from one provider that open its circuit.
    pub provider_threshold: u32,
    /// How long a provider's circuit stays open, unless the API said when to
    /// come back (`Retry-After`).
    pub provider_cooldown: Duration,
    /// How often a token the API refused is tried again, with `/privileges`.
    pub token_probe_every: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            ban_threshold: 3,
            ban_cooldown: Duration::from_secs(60),
            provider_threshold: 5,
            provider_cooldown: Duration::from_secs(30),
            token_probe_every: Duration::from_secs(600),
        }
    }
}

/// The longest a circuit stays open: a ban lasts 12 hours.
const MAX_COOLDOWN: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
}

/// One circuit as it stands: the API's (`api`) or a provider's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitState {
    /// `api`, or the provider's name (`insee`, `dgfip`…).
    pub name: String,
    /// How long it stays open, when it is open (zero: a probe may go).
    pub open_for: Option<Duration>,
}

/// What a request may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go.
    Closed,
    /// The cool-down is over: probe first.
    Probe,
    /// Fail now; try again after this long.
    Open(Duration),
}

/// The error codes by which the API refuses a token itself.
pub const TOKEN_CODES: [&str; 4] = ["00101", "00103", "00105", "00106"];

/// The API refused the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFault {
    /// Its code: `00101` (not valid), `00103` (expired), `00105`
    /// (blacklisted), `00106` (not found).
    pub code: String,
    /// The server's title for it.
    pub title: String,
    /// When the API said so.
    pub since: std::time::SystemTime,
    /// When `/privileges` may be asked again.
    probe_at: Instant,
}

/// What a request carrying the token may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenVerdict {
    /// Go.
    Accepted,
    /// Refused locally; `/privileges` is asked again after this long.
    Refused(TokenFault, Duration),
    /// Ask `/privileges` first (this request only: the next ones wait for
    /// the next probe).
    Probe(TokenFault),
}

#[derive(Debug, Default)]
struct State {
    api: Breaker,
    providers: HashMap<String, Breaker>,
    token: Option<TokenFault>,
}

/// The API's circuit and one per provider.
#[derive(Debug, Default)]
pub(crate) struct Circuits {
    config: CircuitConfig,
    state: Mutex<State>,
}

impl Circuits {
    pub fn new(config: CircuitConfig) -> Self {
        Self {
            config,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn api(&self) -> Verdict {
        self.api_at(Instant::now())
    }

    fn api_at(&self, now: Instant) -> Verdict {
        match self.lock().api.open_until {
            Some(until) if now < until => Verdict::Open(until - now),
            Some(_) => Verdict::Probe,
            None => Verdict::Closed,
        }
    }

    /// Every circuit that has seen a failure, the API's first.
    pub fn states(&self) -> Vec<CircuitState> {
        let now = Instant::now();
        let state = self.lock();
        let open_for = |b: &Breaker| b.open_until.map(|until| until.saturating_duration_since(now));
        std::iter::once(("api".to_owned(), &state.api))
            .chain(state.providers.iter().map(|(name, b)| (name.clone(), b)))
            .map(|(name, b)| CircuitState {
                name,
                open_for: open_for(b),
            })
            .collect()
    }

    /// A connect or first-byte timeout, or a failed probe.
    pub fn api_silent(&self) {
        self.api_silent_at(Instant::now());
    }

    fn api_silent_at(&self, now: Instant) {
        let config = self.config;
        let api = &mut self.lock().api;
        api.failures += 1;
        if api.failures >= config.ban_threshold {
            api.cooldown = if api.open_until.is_some() {
                (api.cooldown * 2).min(MAX_COOLDOWN)
            } else {
                config.ban_cooldown.min(MAX_COOLDOWN)
            };
            api.open_until = Some(now + api.cooldown);
            tracing::warn!(target: "api_entreprise::circuit", cooldown = ?api.cooldown, "the API does not answer: circuit open");
        }
    }

    /// Any HTTP answer from the API.
    pub fn api_answered(&self) {
        self.lock().api = Breaker::default();
    }

    /// Whether a request carrying the token may go.
    pub fn token(&self) -> TokenVerdict {
        self.token_at(Instant::now())
    }

    fn token_at(&self, now: Instant) -> TokenVerdict {
        let every = self.config.token_probe_every;
        match self.lock().token.as_mut() {
            None => TokenVerdict::Accepted,
            Some(fault) if now < fault.probe_at => TokenVerdict::Refused(fault.clone(), fault.probe_at - now),
            Some(fault) => {
                // One probe at a time: the others wait for the next.
                fault.probe_at = now + every;
                TokenVerdict::Probe(fault.clone())
            }
        }
    }

    /// The token's fault, if the API refused it.
    pub fn token_fault(&self) -> Option<TokenFault> {
        self.lock().token.clone()
    }

    /// The API refused the token with `code` (one of [`TOKEN_CODES`]).
    pub fn token_refused(&self, code: &str, title: &str) {
        self.token_refused_at(code, title, Instant::now());
    }

    fn token_refused_at(&self, code: &str, title: &str, now: Instant) {
        let probe_at = now + self.config.token_probe_every;
        let mut state = self.lock();
        if state.token.as_ref().is_none_or(|f| f.code != code) {
            tracing::error!(target: "api_entreprise::circuit", code, title, "the API refused the token: its calls stop until it works again");
        }
        let since = state
            .token
            .as_ref()
            .filter(|f| f.code == code)
            .map_or_else(std::time::SystemTime::now, |f| f.since);
        state.token = Some(TokenFault {
            code: code.to_owned(),
            title: title.to_owned(),
            since,
            probe_at,
        });
    }

    /// The API took the token again (`/privileges` answered).
    pub fn token_accepted(&self) {
        if self.lock().token.take().is_some() {
            tracing::info!(target: "api_entreprise::circuit", "the API takes the token again: its calls go");
        }
    }

    pub fn provider(&self, provider: &str) -> Result<(), Duration> {
        self.provider_at(provider, Instant::now())
    }

    fn provider_at(&self, provider: &str, now: Instant) -> Result<(), Duration> {
        match self.lock().providers.get(provider).and_then(|b| b.open_until) {
            Some(until) if now < until => Err(until - now),
            _ => Ok(()),
        }
    }

    /// An answer from `provider`'s endpoint: `failed` for 502/503/504,
    /// with the API's `Retry-After` when it gave one.
    pub fn provider_answered(&self, provider: &str, failed: bool, retry_after: Option<Duration>) {
        self.provider_answered_at(provider, failed, retry_after, Instant::now());
    }

    fn provider_answered_at(&self, provider: &str, failed: bool, retry_after: Option<Duration>, now: Instant) {
        let config = self.config;
        let mut state = self.lock();
        let breaker = state.providers.entry(provider.to_owned()).or_default();
        if !failed {
            *breaker = Breaker::default();
            return;
        }
        breaker.failures += 1;
        if retry_after.is_some() || breaker.failures >= config.provider_threshold {
            let cooldown = retry_after.unwrap_or(config.provider_cooldown).min(MAX_COOLDOWN);
            breaker.open_until = Some(now + cooldown);
            tracing::warn!(target: "api_entreprise::circuit", provider, ?cooldown, "provider failing: circuit open");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock is injected: each event says when it happens.
    #[test]
    fn a_refused_token_stops_its_calls_and_is_probed_one_at_a_time() {
        let c = Circuits::new(CircuitConfig::default());
        let t0 = Instant::now();
        assert_eq!(c.token_at(t0), TokenVerdict::Accepted);
        c.token_refused_at("00103", "Jeton expiré", t0);
        assert!(
            matches!(c.token_at(t0), TokenVerdict::Refused(f, d) if f.code == "00103" && d == Duration::from_secs(600))
        );
        let t1 = t0 + Duration::from_secs(600);
        assert!(matches!(c.token_at(t1), TokenVerdict::Probe(_)));
        assert!(
            matches!(c.token_at(t1), TokenVerdict::Refused(..)),
            "a second request does not probe too"
        );
        c.token_accepted();
        assert_eq!(c.token_at(t1), TokenVerdict::Accepted);
    }

    #[test]
    fn silence_opens_the_api_circuit_and_a_failed_probe_doubles_it() {
        let c = Circuits::new(CircuitConfig::default());
        let t0 = Instant::now();
        c.api_silent_at(t0);
        c.api_silent_at(t0);
        assert_eq!(c.api_at(t0), Verdict::Closed);
        c.api_silent_at(t0);
        assert_eq!(c.api_at(t0), Verdict::Open(Duration::from_secs(60)));
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(c.api_at(t1), Verdict::Probe);
        c.api_silent_at(t1);
        assert_eq!(c.api_at(t1), Verdict::Open(Duration::from_secs(120)));
        c.api_answered();
        assert_eq!(c.api_at(t1), Verdict::Closed);
    }

    #[test]
    fn a_failing_provider_is_broken_alone() {
        let c = Circuits::new(CircuitConfig::default());
        let t0 = Instant::now();
        for _ in 0..4 {
            c.provider_answered_at("dgfip", true, None, t0);
        }
        assert!(c.provider_at("dgfip", t0).is_ok());
        c.provider_answered_at("dgfip", true, None, t0);
        assert_eq!(c.provider_at("dgfip", t0), Err(Duration::from_secs(30)));
        assert!(c.provider_at("insee", t0).is_ok());
        assert!(c.provider_at("dgfip", t0 + Duration::from_secs(30)).is_ok());
        c.provider_answered_at("urssaf", true, Some(Duration::from_secs(600)), t0);
        assert_eq!(c.provider_at("urssaf", t0), Err(Duration::from_secs(600)));
        c.provider_answered_at("urssaf", false, None, t0);
        assert!(c.provider_at("urssaf", t0).is_ok());
    }
}
