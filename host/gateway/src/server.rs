//! The gateway's HTTP face: API Entreprise's own routes, each request
//! authenticated by an application key, checked against the application's
//! rules, counted against its share of the per-IP quotas, then called
//! through the host runtime of the application's profile (the component
//! validates, the host counts, sends with the real token, and parses).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use api_entreprise::quota::{Denied, FairShare, QuotaKey, QuotaSpec};
use api_entreprise::{CallError, Quotas, Runtime, types};
use api_entreprise_catalogue as catalogue;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::answer;
use crate::audit::AuditLine;
use crate::config::{Config, Limits};

/// One application, as the gateway checks its calls.
pub(crate) struct App {
    pub(crate) name: String,
    pub(crate) profile: Arc<ProfileState>,
    key_sha256: [u8; 32],
    /// Its fixed `context`, `recipient` and `object`, in that order.
    fixed: [Option<String>; 3],
    endpoints: Option<BTreeSet<String>>,
    /// The official use case it works under, if one.
    use_case: Option<&'static catalogue::UseCase>,
    /// Its fair share of each per-IP quota (`FairShare`): at least its
    /// weight's part whenever it asks, more while others are idle.
    pub(crate) share: Vec<FairShare>,
    origins: Vec<String>,
}

/// A request's query parameters, other than the trace's.
pub(crate) type Query = Vec<(String, String)>;

impl App {
    /// The trace of a request's query (the application's fixed fields
    /// filling in, or refusing another value), and its other parameters.
    pub(crate) fn trace(
        &self,
        request: &http::request::Parts,
        audit: &mut AuditLine,
    ) -> Result<(types::Trace, Query), Box<Response>> {
        let app = self;
        let mut trace = empty_trace();
        let mut query = Vec::new();
        for (name, value) in form_urlencoded::parse(request.uri.query().unwrap_or_default().as_bytes()).into_owned() {
            match name.as_str() {
                "context" => trace.context = value,
                "recipient" => trace.recipient = value,
                "object" => trace.object = value,
                "user_id" => trace.user_id = Some(value),
                _ => query.push((name, value)),
            }
        }
        let fields = [
            ("context", &mut trace.context),
            ("recipient", &mut trace.recipient),
            ("object", &mut trace.object),
        ];
        for ((field, given), fixed) in fields.into_iter().zip(&app.fixed) {
            let Some(fixed) = fixed else { continue };
            if !given.is_empty() && given != fixed {
                let detail = format!(
                    "the application `{}` always calls with its own `{field}`: leave it out or give the same value",
                    app.name
                );
                audit.codes.push("00100".into());
                return Err(Box::new(answer::refusal(
                    StatusCode::FORBIDDEN,
                    "00100",
                    "Interdit",
                    &detail,
                    None,
                )));
            }
            fixed.clone_into(given);
        }
        audit.context = Some(trace.context.clone());
        audit.recipient = Some(trace.recipient.clone());
        audit.object = Some(trace.object.clone());
        audit.user_id.clone_from(&trace.user_id);
        Ok((trace, query))
    }

    /// The official use case it works under, if one.
    pub(crate) fn use_case(&self) -> Option<&'static catalogue::UseCase> {
        self.use_case
    }

    /// The endpoints it may call, when it has a list.
    pub(crate) fn endpoints(&self) -> Option<&BTreeSet<String>> {
        self.endpoints.as_ref()
    }
}

/// A profile: its runtime (one token) and the scopes `/privileges` gave it.
pub(crate) struct ProfileState {
    pub(crate) name: String,
    pub(crate) runtime: Arc<Runtime>,
    /// `None` until `/privileges` answered (the server then decides alone).
    scopes: RwLock<Option<BTreeSet<String>>>,
    /// The last day (Unix days) the token's coming expiry was said.
    pub(crate) expiry_said: std::sync::atomic::AtomicI64,
    /// Where its token is read from (its variable or file), when it has
    /// one: read again when the file changes or on SIGHUP.
    pub(crate) source: RwLock<crate::config::Profile>,
    /// One rotation of its token at a time.
    pub(crate) rotating: tokio::sync::Mutex<()>,
    /// When its privileges were last asked for, if ever.
    privileges_read: std::sync::Mutex<Option<Instant>>,
}

/// From how many days before its expiry a token's coming end is said, once
/// a day; from [`EXPIRY_URGENT_DAYS`] as an error.
const EXPIRY_WARNING_DAYS: i64 = 30;
const EXPIRY_URGENT_DAYS: i64 = 7;

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// How many applications there are now.
    pub applications: usize,
    /// The profiles it added.
    pub added: Vec<String>,
    /// The profiles it removed.
    pub removed: Vec<String>,
}

impl ProfileState {
    /// The state of the profile `name` running on `runtime`, its token read
    /// from `config`'s source for it.
    fn new(name: &str, runtime: &Arc<Runtime>, config: &Config) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            runtime: runtime.clone(),
            scopes: RwLock::new(None),
            expiry_said: std::sync::atomic::AtomicI64::new(i64::MIN),
            source: RwLock::new(config.profiles.get(name).cloned().unwrap_or_default()),
            rotating: tokio::sync::Mutex::new(()),
            privileges_read: std::sync::Mutex::new(None),
        })
    }

    /// Says once a day, from 30 days before, that the token will expire (an
    /// error from 7 days before): a renewal through DataPass takes days,
    /// and an expired token stops every call of the profile.
    pub(crate) fn say_expiry(&self, now_unix: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(Ok(api_entreprise::Claims { exp: Some(exp), .. })) = self.runtime.token_claims() else {
            return;
        };
        let days = (exp - now_unix).div_euclid(86_400);
        let today = now_unix.div_euclid(86_400);
        if days > EXPIRY_WARNING_DAYS || self.expiry_said.swap(today, Relaxed) == today {
            return;
        }
        let date = time::OffsetDateTime::from_unix_timestamp(exp)
            .ok()
            .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let todo = "renew it through DataPass (https://datapass.api.gouv.fr), then replace the profile's token and send SIGHUP";
        match days {
            d if d < 0 => {
                tracing::error!(profile = %self.name, "its token expired on {date}: every call is refused; {todo}")
            }
            d if d <= EXPIRY_URGENT_DAYS => {
                tracing::error!(profile = %self.name, "its token expires on {date}, in {d} day(s): {todo}")
            }
            d => tracing::warn!(profile = %self.name, "its token expires on {date}, in {d} days: {todo}"),
        }
    }

    /// Reads the token's scopes from `/privileges` (free of any trace).
    async fn refresh_privileges(&self) {
        *self
            .privileges_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        match self.runtime.call(&free_request("privileges")).await {
            Ok(types::Response {
                typed: Some(types::TypedData::Privileges(scopes)),
                ..
            }) => {
                *self.scopes.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(scopes.into_iter().collect());
            }
            Ok(_) => tracing::warn!(profile = %self.name, "/privileges gave no list of scopes"),
            Err(e) => tracing::warn!(profile = %self.name, "reading the token's privileges failed: {e}"),
        }
    }

    /// What keeps this profile from being ready, from what is known now
    /// (`api` is what the API's `/pings` said, if it was no good).
    fn faults(&self, now_unix: u64, api: Option<&str>) -> Vec<String> {
        let mut faults = Vec::new();
        match self.runtime.token_claims() {
            None => faults.push(format!("profile {}: no token", self.name)),
            Some(Ok(claims))
                if claims
                    .exp
                    .is_some_and(|exp| u64::try_from(exp).unwrap_or(0) <= now_unix) =>
            {
                faults.push(format!("profile {}: its token has expired", self.name));
            }
            _ => {}
        }
        if let Some(fault) = self.runtime.token_fault() {
            faults.push(format!(
                "profile {}: the API refused its token ({} {})",
                self.name, fault.code, fault.title
            ));
        }
        if let Some(ban) = self.runtime.ban_suspected() {
            faults.push(format!("profile {}: {ban}", self.name));
        }
        if let Some(why) = api {
            faults.push(format!("profile {}: {why}", self.name));
        }
        for circuit in self.runtime.circuit_states() {
            if circuit.name == "api"
                && let Some(open_for) = circuit.open_for
            {
                faults.push(format!(
                    "profile {}: the API does not answer (its circuit is open for {} s more)",
                    self.name,
                    open_for.as_secs()
                ));
            }
        }
        faults
    }

    /// The token's scopes, once `/privileges` answered.
    pub(crate) fn scopes(&self) -> Option<BTreeSet<String>> {
        self.scopes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the token's scopes (a new token's `/privileges`).
    pub(crate) fn set_scopes(&self, scopes: BTreeSet<String>) {
        *self.scopes.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(scopes);
    }

    /// Whether the token may call `endpoint`, as far as the gateway knows.
    fn may_call(&self, endpoint: &catalogue::Endpoint) -> bool {
        let scopes = self.scopes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match scopes.as_ref() {
            Some(scopes) if !endpoint.scopes.is_empty() => endpoint.scopes.iter().any(|s| scopes.contains(*s)),
            _ => true,
        }
    }
}

/// How often the profiles' privileges are read again.
const PRIVILEGES_REFRESH: Duration = Duration::from_secs(600);

/// How many profiles' privileges are read before the gateway serves.
const PRIVILEGES_AT_START: usize = 10;

/// The most often the privileges of a profile are read after start: 40
/// requests in 10 minutes, 2 % of the per-IP quota, however many profiles.
const PRIVILEGES_PACE: Duration = Duration::from_secs(15);

/// Now, in Unix seconds.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The API's `/pings` is asked for `/readyz` at most this often.
pub const READINESS_REFRESH: Duration = Duration::from_secs(5);

/// What the API's `/pings` said when last asked, and when: `/readyz`
/// answers from it, never with an upstream call of its own. One for the
/// gateway: every profile calls the same API, and `/pings` needs no token.
#[derive(Default)]
struct Pings {
    said: std::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    /// A question is under way.
    asking: std::sync::atomic::AtomicBool,
}

impl Pings {
    /// Asks the API's `/pings` through `runtime` and keeps what it said.
    async fn ask(&self, runtime: &Runtime) {
        let said = match runtime.call(&free_request("pings")).await {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("the API's /pings answered {}", r.status)),
            Err(e) => Err(format!("the API's /pings failed: {e}")),
        };
        *self.said.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), said));
    }

    /// Asks again in the background when the last answer is older than
    /// [`READINESS_REFRESH`] and no question is under way: at most one
    /// upstream call every few seconds, however many ask.
    fn ask_if_stale(self: &Arc<Self>, runtime: &Arc<Runtime>) {
        use std::sync::atomic::Ordering;
        let stale = self
            .said
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= READINESS_REFRESH);
        if stale && !self.asking.swap(true, Ordering::SeqCst) {
            let (pings, runtime) = (self.clone(), runtime.clone());
            tokio::spawn(async move {
                pings.ask(&runtime).await;
                // The next question is not before READINESS_REFRESH from now.
                pings.asking.store(false, Ordering::SeqCst);
            });
        }
    }

    /// Why the API is not known to answer, if it is not.
    fn fault(&self) -> Option<String> {
        match &*self.said.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            None => Some("the API's /pings has not answered yet".to_owned()),
            Some((_, Err(why))) => Some(why.clone()),
            Some((_, Ok(()))) => None,
        }
    }
}

/// A request for a route that takes no value and no trace.
fn free_request(endpoint: &str) -> types::Request {
    types::Request {
        endpoint: endpoint.into(),
        version: None,
        params: vec![],
        query: vec![],
        trace: empty_trace(),
    }
}

fn empty_trace() -> types::Trace {
    types::Trace {
        context: String::new(),
        recipient: String::new(),
        object: String::new(),
        user_id: None,
    }
}

/// The gateway: its applications (replaced whole by a reload) and the
/// quotas of their shares.
pub struct Gateway {
    apps: RwLock<Arc<Vec<Arc<App>>>>,
    /// The profiles, by name (replaced whole by a reload).
    profiles: RwLock<Arc<BTreeMap<String, Arc<ProfileState>>>>,
    ip_quotas: Vec<QuotaSpec>,
    /// The applications' shares, counted in the same store as the per-IP
    /// quotas: with Redis, every gateway of the fleet counts them together.
    shares: Arc<Quotas>,
    limits: Limits,
    metrics: crate::metrics::Metrics,
    audit: crate::audit::AuditTrail,
    /// The dashboard's figures, unless it is off.
    books: Option<crate::dashboard::books::Books>,
    pings: Arc<Pings>,
    /// The SHA-256 of the administrator's key, in lowercase hex.
    admin_key: RwLock<Option<String>>,
    /// One change of the client component at a time, whatever asks for it
    /// (the file watch, SIGHUP, the admin route): all profiles or none.
    pub(crate) swapping: tokio::sync::Mutex<()>,
    /// Where the dossiers are kept, if the route is on.
    pub(crate) dossiers_dir: Option<std::path::PathBuf>,
    /// One gathering at a time per dossier folder.
    pub(crate) dossiers_busy: std::sync::Mutex<BTreeMap<std::path::PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why the gateway cannot start from a configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GatewayError(String);

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Gateway {
    /// The gateway for `config`, calling through `runtimes` (one per
    /// profile, by name), with each application's share of `ip_quotas`
    /// counted in `shares` (the store the runtimes count the per-IP quotas
    /// in, so that a fleet of gateways holds each share together).
    pub fn new(
        config: &Config,
        runtimes: &BTreeMap<String, Arc<Runtime>>,
        ip_quotas: &[QuotaSpec],
        shares: Arc<Quotas>,
    ) -> Result<Self, GatewayError> {
        let profiles = runtimes
            .iter()
            .map(|(name, runtime)| (name.clone(), ProfileState::new(name, runtime, config)))
            .collect();
        let metrics = crate::metrics::Metrics::new();
        let audit = crate::audit::AuditTrail::stdout(crate::audit::QUEUE_LINES, metrics.audit_dropped());
        let mut gateway = Self {
            apps: RwLock::new(Arc::new(Vec::new())),
            profiles: RwLock::new(Arc::new(profiles)),
            ip_quotas: ip_quotas.to_vec(),
            shares,
            limits: config.limits,
            metrics,
            audit,
            books: config
                .dashboard
                .enabled
                .then(|| crate::dashboard::books::Books::new(config.dashboard.show_object)),
            pings: Arc::default(),
            admin_key: RwLock::new(None),
            swapping: tokio::sync::Mutex::new(()),
            dossiers_dir: config.dossiers_dir.clone(),
            dossiers_busy: std::sync::Mutex::default(),
        };
        gateway.set_admin_key(config);
        let apps = gateway.applications(config, &gateway.profile_map())?;
        gateway.apps = RwLock::new(Arc::new(apps));
        Ok(gateway)
    }

    /// Replaces the profiles, the applications and their keys with
    /// `config`'s, at once: a request in flight finishes with the
    /// application and profile it started with. A profile of `config` that
    /// this gateway does not run yet needs its runtime in `added` (the
    /// command builds it, with its token); a profile `config` no longer has
    /// is dropped, with its applications (the configuration's check has
    /// refused any application left on it). The limits are read at start
    /// only. Says what changed.
    pub fn reload(&self, config: &Config, added: &BTreeMap<String, Arc<Runtime>>) -> Result<Reloaded, GatewayError> {
        let running = self.profile_map();
        let mut profiles = BTreeMap::new();
        for name in config.profiles.keys() {
            let state = match (running.get(name), added.get(name)) {
                (Some(state), _) => state.clone(),
                (None, Some(runtime)) => ProfileState::new(name, runtime, config),
                (None, None) => {
                    return Err(GatewayError(format!(
                        "the profile `{name}` is new and has no runtime: its token could not be read"
                    )));
                }
            };
            profiles.insert(name.clone(), state);
        }
        let apps = self.applications(config, &profiles)?;
        let reloaded = Reloaded {
            applications: apps.len(),
            added: profiles.keys().filter(|p| !running.contains_key(*p)).cloned().collect(),
            removed: running.keys().filter(|p| !profiles.contains_key(*p)).cloned().collect(),
        };
        *self.profiles.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(profiles);
        *self.apps.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(apps);
        self.set_admin_key(config);
        if !reloaded.removed.is_empty() {
            self.show_components();
        }
        Ok(reloaded)
    }

    fn set_admin_key(&self, config: &Config) {
        *self
            .admin_key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            config.admin_key_sha256.as_deref().map(str::to_ascii_lowercase);
    }

    /// The SHA-256 of the administrator's key, if one is configured.
    pub(crate) fn admin_key(&self) -> Option<String> {
        self.admin_key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The profiles now, by name.
    fn profile_map(&self) -> Arc<BTreeMap<String, Arc<ProfileState>>> {
        self.profiles
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The profile named `name`.
    pub(crate) fn profile(&self, name: &str) -> Option<Arc<ProfileState>> {
        self.profile_map().get(name).cloned()
    }

    /// Whether the gateway runs a profile named `name`.
    pub fn has_profile(&self, name: &str) -> bool {
        self.profile_map().contains_key(name)
    }

    /// The profiles now, in the order of their names.
    pub(crate) fn profiles(&self) -> Vec<Arc<ProfileState>> {
        self.profile_map().values().cloned().collect()
    }

    /// A runtime the gateway calls through, for a profile added by a reload
    /// to share its engine, pool and client (the one serving now, uploaded
    /// or not).
    pub fn any_runtime(&self) -> Option<Arc<Runtime>> {
        self.profiles().first().map(|p| p.runtime.clone())
    }

    /// The store the quotas and shares are counted in (for the runtime of
    /// a profile added by a reload).
    pub fn quota_store(&self) -> Arc<Quotas> {
        self.shares.clone()
    }

    /// The metrics.
    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The applications of `config`, on `profiles`.
    fn applications(
        &self,
        config: &Config,
        profiles: &BTreeMap<String, Arc<ProfileState>>,
    ) -> Result<Vec<Arc<App>>, GatewayError> {
        let shares = config.shares();
        let mut apps = Vec::new();
        for (name, app) in &config.applications {
            let profile = profiles
                .get(&app.profile)
                .ok_or_else(|| GatewayError(format!("no runtime for the profile `{}`", app.profile)))?;
            let key_sha256 = decode_hash(&app.key_sha256.to_ascii_lowercase())
                .ok_or_else(|| GatewayError(format!("application `{name}`: `key_sha256` is not 64 hex digits")))?;
            let share = shares.get(name).copied().unwrap_or(0.0);
            apps.push(Arc::new(App {
                name: name.clone(),
                profile: profile.clone(),
                key_sha256,
                fixed: [app.context.clone(), app.recipient.clone(), app.object.clone()],
                endpoints: app.endpoints.as_ref().map(|e| e.iter().cloned().collect()),
                use_case: app.use_case.as_deref().and_then(catalogue::use_case),
                share: self.fair_shares(name, share),
                origins: app.cors_origins.clone(),
            }));
        }
        Ok(apps)
    }

    /// The fair shares of the application `name` of weight `share`: one
    /// per per-IP quota (the pool, named and widened as the runtime counts
    /// it, so that the store also reads how full the IP's window is), its
    /// own window named after it and the quota.
    fn fair_shares(&self, name: &str, share: f64) -> Vec<FairShare> {
        let policy =
            api_entreprise::policy::QuotaPolicy::new(&self.ip_quotas, api_entreprise::QUOTA_MARGIN, None, None);
        self.ip_quotas
            .iter()
            .zip(policy.ip_keys())
            .map(|(q, pool)| FairShare {
                pool: pool.clone(),
                member: QuotaKey {
                    name: format!("application {name} {q}"),
                    spec: pool.spec,
                },
                // An application with no share left still borrows what is idle.
                weight: share.max(1e-6),
            })
            .collect()
    }

    /// The dashboard's figures, unless it is off.
    pub(crate) fn books(&self) -> Option<&crate::dashboard::books::Books> {
        self.books.as_ref()
    }

    /// How full the per-IP windows are, as the quota store holds them.
    pub(crate) async fn ip_usage(&self) -> Result<Vec<api_entreprise::quota::Usage>, String> {
        let policy =
            api_entreprise::policy::QuotaPolicy::new(&self.ip_quotas, api_entreprise::QUOTA_MARGIN, None, None);
        self.shares
            .usage(policy.ip_keys())
            .await
            .map_err(|down| down.to_string())
    }

    /// What each of `apps` holds now of each per-IP quota, asked of the
    /// store at once (one round trip, however many applications).
    pub(crate) async fn share_usage(
        &self,
        apps: &[Arc<App>],
    ) -> Result<Vec<Vec<api_entreprise::quota::Usage>>, String> {
        let windows: Vec<QuotaKey> = apps
            .iter()
            .flat_map(|app| app.share.iter().map(|s| s.member.clone()))
            .collect();
        let mut usage = self
            .shares
            .usage(&windows)
            .await
            .map_err(|down| down.to_string())?
            .into_iter();
        Ok(apps
            .iter()
            .map(|app| usage.by_ref().take(app.share.len()).collect())
            .collect())
    }

    /// Why the API is not known to answer, if it is not (its `/pings`).
    pub(crate) fn pings_fault(&self) -> Option<String> {
        self.pings.fault()
    }

    /// The applications now.
    pub(crate) fn apps(&self) -> Arc<Vec<Arc<App>>> {
        self.apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether an application lists `origin` (for CORS).
    fn origin_listed(&self, origin: &HeaderValue) -> bool {
        self.apps()
            .iter()
            .any(|a| a.origins.iter().any(|o| o.as_bytes() == origin.as_bytes()))
    }

    /// Reads the privileges of the first `PRIVILEGES_AT_START` (10) profiles
    /// and the API's `/pings` now, then every profile's again in the
    /// background, one at a time, the longest unread first: each every ten
    /// minutes, but never more often than one every `PRIVILEGES_PACE` (15 s), so
    /// that a vendor's thousand tokens spend about 2 % of the per-IP quota
    /// on `/privileges` (the API counts it), not the whole of it. A profile
    /// whose privileges are not read yet is left to the API to refuse. Each
    /// token's coming expiry is said every ten minutes (no call).
    pub async fn watch_privileges(self: &Arc<Self>) {
        let profiles = self.profiles();
        for profile in &profiles {
            profile.say_expiry(now_unix());
        }
        for profile in profiles.iter().take(PRIVILEGES_AT_START) {
            profile.refresh_privileges().await;
        }
        if let Some(profile) = profiles.first() {
            self.pings.ask(&profile.runtime).await;
        }
        let gateway = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut expiry_said = Instant::now();
            loop {
                let Some(count) = gateway.upgrade().map(|g| g.profile_map().len()) else {
                    return;
                };
                let pace = (PRIVILEGES_REFRESH / u32::try_from(count.max(1)).unwrap_or(u32::MAX)).max(PRIVILEGES_PACE);
                tokio::time::sleep(pace).await;
                let Some(gateway) = gateway.upgrade() else { return };
                let profiles = gateway.profiles();
                if expiry_said.elapsed() >= PRIVILEGES_REFRESH {
                    expiry_said = Instant::now();
                    for profile in &profiles {
                        profile.say_expiry(now_unix());
                    }
                }
                let stalest = profiles.iter().min_by_key(|p| {
                    *p.privileges_read
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                });
                if let Some(profile) = stalest
                    && profile
                        .privileges_read
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .is_none_or(|at| at.elapsed() >= PRIVILEGES_REFRESH)
                {
                    profile.refresh_privileges().await;
                }
            }
        });
    }

    /// Starts what a profile added by a reload needs, as [`Self::watch_privileges`]
    /// and [`Self::watch_components`] did at start for the others: its
    /// privileges read, its token's expiry said, its component's changes
    /// listened to.
    pub async fn start_profiles(self: &Arc<Self>, names: &[String]) {
        for name in names {
            let Some(profile) = self.profile(name) else { continue };
            self.watch_component_of(&profile);
            profile.say_expiry(now_unix());
            profile.refresh_privileges().await;
        }
        self.show_components();
    }

    /// Ready when every profile's token is there and not expired, the
    /// API's `/pings` answered 200 when last asked, and the API's circuit
    /// is closed: 200, else 503. Only a caller with a key (an
    /// application's or the administrator's) is told the reasons. Answered
    /// from what is known now: the pings are asked again in the background
    /// when older than [`READINESS_REFRESH`], never once per request.
    fn readiness(&self, headers: &http::HeaderMap) -> (StatusCode, String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let profiles = self.profiles();
        if let Some(profile) = profiles.first() {
            self.pings.ask_if_stale(&profile.runtime);
        }
        let api = self.pings.fault();
        let faults: Vec<String> = profiles
            .iter()
            .flat_map(|profile| profile.faults(now, api.as_deref()))
            .collect();
        let authorization = headers.get(header::AUTHORIZATION);
        let keyed = self.authenticate(authorization).is_some() || self.is_admin(authorization);
        match (faults.is_empty(), keyed) {
            (true, _) => (StatusCode::OK, "ready\n".to_owned()),
            (false, true) => (StatusCode::SERVICE_UNAVAILABLE, faults.join("\n") + "\n"),
            (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned()),
        }
    }

    /// Whether `authorization` carries the administrator's key.
    pub(crate) fn is_admin(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(expected) = self.admin_key() else { return false };
        let key = bearer(authorization).unwrap_or_default();
        bool::from(crate::config::hash_key(key).as_bytes().ct_eq(expected.as_bytes()))
    }

    /// Serves the metrics and the dashboard on `listener` (a listener of
    /// their own); the dashboard asks for the administrator's key unless
    /// `listener` is on loopback.
    pub async fn serve_metrics(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let keyed = !listener.local_addr()?.ip().is_loopback();
        axum::serve(listener, self.metrics_router(keyed)).await
    }

    /// The metrics' own routes: `/metrics`, in Prometheus' text format, and
    /// the dashboard's (`keyed`: behind the administrator's key).
    pub fn metrics_router(self: Arc<Self>, keyed: bool) -> Router {
        let dashboard = self.clone().dashboard_router(keyed);
        Router::new()
            .route(
                "/metrics",
                get(|State(gateway): State<Arc<Gateway>>| async move {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    for profile in gateway.profiles() {
                        for circuit in profile.runtime.circuit_states() {
                            let open_for = circuit.open_for.unwrap_or_default();
                            gateway.metrics.circuit(&profile.name, &circuit.name, open_for);
                        }
                        let banned_for = profile
                            .runtime
                            .ban_suspected()
                            .and_then(|ban| ban.until.duration_since(std::time::SystemTime::now()).ok())
                            .unwrap_or_default();
                        gateway.metrics.ban(&profile.name, banned_for);
                        if let Some(Ok(claims)) = profile.runtime.token_claims()
                            && let Some(exp) = claims.exp
                        {
                            let days = (exp - i64::try_from(now).unwrap_or(i64::MAX)) as f64 / 86_400.0;
                            gateway.metrics.token_expiry(&profile.name, days);
                        }
                    }
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        gateway.metrics.render(),
                    )
                }),
            )
            .with_state(self)
            .merge(dashboard)
    }

    /// The routes: `/healthz`, `/readyz`, and every other path answered as
    /// API Entreprise would.
    pub fn router(self: Arc<Self>) -> Router {
        // Asked at each request, so that a reload's origins apply at once.
        let gateway = self.clone();
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| gateway.origin_listed(origin)))
            .allow_methods([Method::GET])
            .allow_headers([header::AUTHORIZATION, header::ACCEPT])
            .expose_headers(
                [
                    "ratelimit-limit",
                    "ratelimit-remaining",
                    "ratelimit-reset",
                    "retry-after",
                    "x-request-id",
                ]
                .map(HeaderName::from_static),
            )
            .max_age(Duration::from_secs(600));
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(
                    |State(gateway): State<Arc<Gateway>>, headers: http::HeaderMap| async move {
                        gateway.readiness(&headers)
                    },
                ),
            )
            .fallback(api)
            .layer(cors)
            .with_state(self)
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting
    /// and lets the calls in flight finish (each within its own deadline).
    /// Inbound limits hold for every connection before any key is looked
    /// at (`listener.rs`): the cap, with eviction of the connection idle
    /// the longest; a deadline for each request head (also the idle
    /// deadline between requests), a cap on its size; a deadline on
    /// writing each answer. HTTP/1.1 only.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use crate::listener::{Admission, Connections, WriteDeadline};
        use hyper_util::rt::{TokioIo, TokioTimer};
        use tower::ServiceExt;

        let limits = self.limits;
        let head_deadline = Duration::from_secs(limits.header_read_timeout_seconds);
        let write_deadline = Duration::from_secs(limits.write_timeout_seconds);
        let router = self.clone().router();
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(head_deadline)
            .max_buf_size(limits.max_header_bytes);
        let connections = Connections::new(limits.max_connections);
        let write_timeouts = self.metrics.closed_counter("write_timeout");
        // Every connection's task, and the signal that they must drain.
        let tasks = tokio_util::task::TaskTracker::new();
        let draining = tokio_util::sync::CancellationToken::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let open = match connections.admit() {
                Admission::Admitted(open) => open,
                Admission::Evicted(open) => {
                    self.metrics.connection_closed("evicted");
                    open
                }
                Admission::Refused => {
                    self.metrics.connection_closed("refused");
                    tracing::warn!(
                        "{} connections are open, each with a request in flight: a new one is closed",
                        limits.max_connections
                    );
                    continue;
                }
            };
            let tracker = open.tracker();
            let router = router.clone();
            let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let in_flight = tracker.begin();
                let router = router.clone();
                async move {
                    let response = router.oneshot(request).await;
                    drop(in_flight);
                    response
                }
            });
            let (http, draining, write_timeouts) = (http.clone(), draining.clone(), write_timeouts.clone());
            tasks.spawn(async move {
                // hyper's head deadline starts when it first reads; a caller
                // that sends nothing at all gets the same deadline here.
                let mut byte = [0u8; 1];
                tokio::select! {
                    peeked = tokio::time::timeout(head_deadline, stream.peek(&mut byte)) => {
                        if !matches!(peeked, Ok(Ok(1..))) {
                            return;
                        }
                    }
                    () = open.evicted() => return,
                    () = draining.cancelled() => return,
                }
                let io = TokioIo::new(WriteDeadline::new(stream, write_deadline, write_timeouts));
                let connection = http.serve_connection(io, service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => return,
                    () = open.evicted() => {}
                    () = draining.cancelled() => {}
                }
                // Evicted or draining: an idle connection closes at once; a
                // request that began meanwhile is answered first (within
                // its own deadlines), then the connection closes.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
                drop(open);
            });
        }
        drop(listener);
        draining.cancel();
        tasks.close();
        tasks.wait().await;
        Ok(())
    }

    /// The application whose key `authorization` carries, comparing with
    /// every key in constant time.
    /// The application a request comes from, by its key, from an origin
    /// it allows; or the refusal to answer.
    pub(crate) fn caller(
        &self,
        request: &http::request::Parts,
        audit: &mut AuditLine,
    ) -> Result<Arc<App>, Box<Response>> {
        let Some(app) = self.authenticate(request.headers.get(header::AUTHORIZATION)) else {
            audit.codes.push("00101".into());
            return Err(Box::new(answer::unauthorized()));
        };
        audit.application = Some(app.name.clone());
        audit.profile = Some(app.profile.name.clone());
        if let Some(origin) = request.headers.get(header::ORIGIN)
            && !app.origins.iter().any(|o| o.as_bytes() == origin.as_bytes())
        {
            let detail = format!("the application `{}` does not allow this browser origin", app.name);
            audit.codes.push("00100".into());
            return Err(Box::new(answer::refusal(
                StatusCode::FORBIDDEN,
                "00100",
                "Interdit",
                &detail,
                None,
            )));
        }
        Ok(app)
    }

    /// Takes one slot of `share` for each of `calls` calls, by the fair
    /// rule, or says why not.
    pub(crate) async fn take_share(&self, share: &[FairShare], calls: usize) -> Result<(), Denied> {
        for _ in 0..calls {
            self.shares.try_acquire_fair(share).await?;
        }
        Ok(())
    }

    fn authenticate(&self, authorization: Option<&HeaderValue>) -> Option<Arc<App>> {
        let key = bearer(authorization)?;
        let hash = crate::config::hash_key(key);
        let hash = decode_hash(&hash)?;
        let mut found = None;
        for app in self.apps().iter() {
            if bool::from(app.key_sha256.ct_eq(&hash)) {
                found = Some(app.clone());
            }
        }
        found
    }
}

/// The key an `Authorization: Bearer <key>` header carries.
fn bearer(authorization: Option<&HeaderValue>) -> Option<&str> {
    authorization?.to_str().ok()?.strip_prefix("Bearer ")
}

/// Every API route: the answer, and its line in the audit trail; and the
/// admin routes, when an administrator's key is configured.
async fn api(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let request = match crate::component::admin(&gateway, request).await {
        Ok(answered) => return answered,
        Err(request) => request,
    };
    let started = Instant::now();
    let mut audit = AuditLine::default();
    // The API's routes take no body: it is never read.
    let (parts, _body) = request.into_parts();
    let response = decide(&gateway, &parts, &mut audit).await;
    audit.time = crate::audit::now();
    audit.status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    audit.latency_ms = (seconds * 1e4).round() / 10.0;
    gateway.metrics.answered(
        audit.application.as_deref().unwrap_or("-"),
        audit.endpoint.unwrap_or("-"),
        audit.status,
        seconds,
    );
    if let Some(books) = &gateway.books {
        books.record(&audit, crate::dashboard::books::now_ms());
    }
    if let Ok(line) = serde_json::to_string(&audit) {
        gateway.audit.record(line);
    }
    response
}

/// Whether a call's outcome means its request reached the API: an answer
/// (even an error or one that did not parse), or a wait for one that
/// failed; not a refusal by the component or the host.
fn reached_api(result: &Result<types::Response, CallError>) -> bool {
    match result {
        Ok(_) | Err(CallError::Deadline(_)) => true,
        Err(CallError::Client(c)) => matches!(
            c.0,
            types::Error::Api(_) | types::Error::Timeout(_) | types::Error::Transport(_) | types::Error::Other(_)
        ),
        Err(_) => false,
    }
}

/// The answer to a request the application's share has no room for
/// (`what` says for what), or that the quota store could not decide.
pub(crate) fn share_refused(
    app: &App,
    denied: Denied,
    kind: types::EndpointKind,
    what: &str,
    audit: &mut AuditLine,
) -> Response {
    match denied {
        Denied::Full(wait) => {
            let detail = format!(
                "the application `{}` has spent {what} ({}): nothing was sent",
                app.name, wait.quota
            );
            audit.codes.push("00429".into());
            answer::refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "00429",
                "Trop de requêtes",
                &detail,
                Some(wait.retry_after),
            )
        }
        Denied::Unavailable(down) => {
            audit.codes.push("00503".into());
            answer::from_call(kind, Err(CallError::QuotaStoreUnavailable(down)))
        }
    }
}

/// The answer to one request, filling in what the audit trail records.
async fn decide(gateway: &Gateway, request: &http::request::Parts, audit: &mut AuditLine) -> Response {
    if request.method != Method::GET {
        return answer::refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "00405",
            "Méthode non autorisée",
            "API Entreprise answers GET only",
            None,
        );
    }
    let app = match gateway.caller(request, audit) {
        Ok(app) => app,
        Err(refused) => return *refused,
    };
    let path = request.uri.path().to_owned();
    if path.starts_with("/dossiers/") {
        return crate::dossier::answer(gateway, &app, request, audit).await;
    }
    let Some((endpoint, values)) = catalogue::route(&path) else {
        return answer::not_found();
    };
    audit.endpoint = Some(endpoint.id);
    audit.version = Some(endpoint.version);
    // The health routes (`/pings`, `/ping/<provider>`) carry no data and
    // cost no quota at the API: every application may ask them, outside
    // its allow-list and its share.
    let health = endpoint.kind == catalogue::Kind::Health;
    if !health
        && app
            .endpoints
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(endpoint.id))
    {
        let detail = format!("the application `{}` may not call `{}`", app.name, endpoint.id);
        audit.codes.push("00100".into());
        return answer::refusal(StatusCode::FORBIDDEN, "00100", "Interdit", &detail, None);
    }
    if let Some(case) = app.use_case
        && !health
        && endpoint.kind != catalogue::Kind::Privileges
        && !case.allows(endpoint.id)
    {
        let detail = format!(
            "the application `{}` works under the use case `{}`, which {} `{}`",
            app.name,
            case.id,
            if case.forbidden.iter().any(|(id, _)| *id == endpoint.id) {
                "forbids"
            } else {
                "does not name"
            },
            endpoint.id
        );
        audit.codes.push("00100".into());
        return answer::refusal(StatusCode::FORBIDDEN, "00100", "Interdit", &detail, None);
    }
    if !app.profile.may_call(endpoint) {
        let detail = format!(
            "the token of the profile `{}` has none of the scopes {} that `{}` needs (its /privileges)",
            app.profile.name,
            endpoint.scopes.join(", "),
            endpoint.id
        );
        audit.codes.push("00100".into());
        return answer::refusal(StatusCode::FORBIDDEN, "00100", "Interdit", &detail, None);
    }
    let (trace, query) = match app.trace(request, audit) {
        Ok(given) => given,
        Err(refused) => return *refused,
    };
    let kind = match endpoint.kind {
        catalogue::Kind::Health => types::EndpointKind::Health,
        catalogue::Kind::Privileges => types::EndpointKind::Privileges,
        _ => types::EndpointKind::Json,
    };
    let share = if health { &[][..] } else { &app.share[..] };
    if let Err(denied) = gateway.take_share(share, 1).await {
        return share_refused(&app, denied, kind, "its share of the per-IP quota", audit);
    }
    let call = types::Request {
        endpoint: endpoint.id.to_owned(),
        version: Some(endpoint.version),
        params: values.iter().map(|(_, v)| (*v).to_owned()).collect(),
        query,
        trace,
    };
    let result = app.profile.runtime.call(&call).await;
    audit.client = Some(app.profile.runtime.component().to_string());
    audit.sent = reached_api(&result);
    let limits = match &result {
        Ok(r) => Some(&r.rate_limit),
        Err(CallError::Client(c)) => match &c.0 {
            types::Error::Api(api) => Some(&api.rate_limit),
            _ => None,
        },
        Err(_) => None,
    };
    if let Some(remaining) = limits.and_then(|l| l.remaining) {
        gateway.metrics.remaining(&app.profile.name, endpoint.id, remaining);
    }
    match &result {
        Ok(r) => audit.request_id.clone_from(&r.request_id),
        Err(CallError::Client(c)) => {
            audit.codes = c.codes().into_iter().map(str::to_owned).collect();
            if let types::Error::Api(api) = &c.0 {
                audit.request_id.clone_from(&api.request_id);
            }
        }
        Err(_) => {}
    }
    answer::from_call(kind, result).into_response()
}
