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
//!
//! A ban is seen, not guessed: when the API stops answering right after a
//! per-IP window of this host's quota store was full or the API answered a
//! 429 (the signs the API gives before a ban), the silence is taken for a
//! probable ban, said with its probable end (12 hours after the first call
//! that got no answer), and the circuit holds calls for longer between its
//! probes. Any answer from the API ends it.

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

/// How long a ban lasts, from the first call that got no answer.
pub const BAN_LENGTH: Duration = Duration::from_secs(12 * 3600);

/// How recent a sign (a full per-IP window, a 429) must be for the API's
/// silence to be taken for a ban.
const BAN_SIGN_WITHIN: Duration = Duration::from_secs(600);

/// The least time between two probes of an API that is probably banning
/// this IP: a probe costs nothing (`/pings` counts against no quota), but
/// there is no hurry.
const BANNED_COOLDOWN: Duration = Duration::from_secs(600);

/// The API stopped answering right after a sign that the IP went past its
/// quota: probably banned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanSuspicion {
    /// When the first call of the silence was sent (about when the ban began).
    pub since: std::time::SystemTime,
    /// When the ban probably ends.
    pub until: std::time::SystemTime,
    /// The sign that came before the silence.
    pub sign: String,
}

impl std::fmt::Display for BanSuspicion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the API has not answered since {} right after {}: the IP is probably banned until {} \
             (a ban lasts 12 hours and cannot be lifted; nothing more is sent meanwhile but a rare free /pings; \
             write to support@entreprise.api.gouv.fr if you need it lifted)",
            crate::rfc3339(self.since),
            self.sign,
            crate::rfc3339(self.until)
        )
    }
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    /// When the first of the failures in a row was seen.
    first_failure: Option<std::time::SystemTime>,
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
    /// The last sign that the IP reached its quota, and when.
    limit_sign: Option<(Instant, String)>,
    /// A ban the API's silence suggests.
    ban: Option<BanSuspicion>,
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
        let mut state = self.lock();
        let state = &mut *state;
        let api = &mut state.api;
        api.failures += 1;
        let first_failure = *api.first_failure.get_or_insert_with(std::time::SystemTime::now);
        if api.failures < config.ban_threshold {
            return;
        }
        if state.ban.is_none()
            && let Some((_, sign)) = state
                .limit_sign
                .as_ref()
                .filter(|(at, _)| now.saturating_duration_since(*at) <= BAN_SIGN_WITHIN)
        {
            let ban = BanSuspicion {
                since: first_failure,
                until: first_failure + BAN_LENGTH,
                sign: sign.clone(),
            };
            tracing::error!(target: "api_entreprise::circuit", "{ban}");
            state.ban = Some(ban);
        }
        let least = if state.ban.is_some() {
            BANNED_COOLDOWN
        } else {
            config.ban_cooldown
        };
        api.cooldown = if api.open_until.is_some() {
            (api.cooldown * 2).max(least).min(MAX_COOLDOWN)
        } else {
            least.min(MAX_COOLDOWN)
        };
        api.open_until = Some(now + api.cooldown);
        tracing::warn!(target: "api_entreprise::circuit", cooldown = ?api.cooldown, "the API does not answer: circuit open");
    }

    /// Any HTTP answer from the API: it answers, so it does not ban.
    pub fn api_answered(&self) {
        let mut state = self.lock();
        state.api = Breaker::default();
        if state.ban.take().is_some() {
            tracing::warn!(target: "api_entreprise::circuit", "the API answers again: the IP is not banned (any more)");
        }
    }

    /// A sign that the IP reached its quota: one of this host's per-IP
    /// windows was full, or the API answered 429.
    pub fn limit_reached(&self, sign: String) {
        self.limit_reached_at(sign, Instant::now());
    }

    fn limit_reached_at(&self, sign: String, now: Instant) {
        self.lock().limit_sign = Some((now, sign));
    }

    /// The ban the API's silence suggests, if it does.
    pub fn ban(&self) -> Option<BanSuspicion> {
        self.lock().ban.clone()
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
    fn silence_right_after_a_full_window_is_a_probable_ban_until_an_answer() {
        let c = Circuits::new(CircuitConfig::default());
        let t0 = Instant::now();
        // Silence alone is an outage, not a ban.
        for _ in 0..3 {
            c.api_silent_at(t0);
        }
        assert_eq!(c.ban(), None);
        assert_eq!(c.api_at(t0), Verdict::Open(Duration::from_secs(60)));
        c.api_answered();
        // A sign older than 10 minutes does not count either.
        c.limit_reached_at("the per-IP quota 1000/1m full".into(), t0);
        let late = t0 + Duration::from_secs(601);
        for _ in 0..3 {
            c.api_silent_at(late);
        }
        assert_eq!(c.ban(), None);
        c.api_answered();
        // Right after the sign: a probable ban, for 12 hours from the first
        // call that got no answer, and probes 10 minutes apart at least.
        c.limit_reached_at("the per-IP quota 1000/1m full".into(), t0);
        for _ in 0..3 {
            c.api_silent_at(t0);
        }
        let ban = c.ban().expect("a probable ban");
        assert_eq!(ban.until.duration_since(ban.since).unwrap(), BAN_LENGTH);
        assert!(ban.to_string().contains("probably banned until"), "{ban}");
        assert_eq!(c.api_at(t0), Verdict::Open(BANNED_COOLDOWN));
        // Any answer ends it.
        c.api_answered();
        assert_eq!(c.ban(), None);
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
