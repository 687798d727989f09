//! The runtime: loads the component, pre-instantiates it, and runs each call
//! in a fresh store under the outbound policy and the call's deadline.
//!
//! `builder.rs` configures and builds it; `engine.rs` holds the engine, its
//! instance pool, the epoch ticker and the memory cap; `loaded.rs` loads one
//! client version; `exports.rs` finds and type-checks its call functions
//! once; `cache.rs` keeps the compiled component between starts;
//! `linker.rs` links what a component may import (everything a client may,
//! or nothing) and holds one call's store; `codec_path.rs` is the default
//! call path, where the host sends what the component prepared. Replacing
//! the version while serving is `crate::swap`'s.

mod builder;
mod cache;
mod codec_path;
mod engine;
mod exports;
mod linker;
pub(crate) mod loaded;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_entreprise_catalogue as catalogue;
use wasmtime::component::{Instance, InstancePre, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

pub use builder::{CallPath, ComponentSource, RuntimeBuilder};
pub use cache::ComponentOrigin;
pub use engine::POOL_SLOTS;
pub(crate) use engine::{EPOCH_TICK, spawn_epoch_ticker};
pub use loaded::{LoadTimings, VersionInfo};

use crate::bindings::ApiEntreprise;
use crate::error::{CallError, ClientError, ConfigError};
use crate::policy::{Authority, CallHooks, OutboundPolicy, Refusal};
use crate::token::Token;
use crate::types;
use engine::{MEMORY_LIMIT, MemoryCap};
use linker::{CallState, CallStore, CodecState};
use loaded::Loaded;

/// The production API.
pub const PRODUCTION_BASE_URL: &str = "https://entreprise.api.gouv.fr";

/// The longest a JSON call may take (the API's advice).
pub const JSON_TIMEOUT: Duration = Duration::from_millis(catalogue::JSON_TIMEOUT_MS as u64);
/// The longest a document call may take (the API's advice).
pub const DOCUMENT_TIMEOUT: Duration = Duration::from_millis(catalogue::DOCUMENT_TIMEOUT_MS as u64);

/// How long past its network ceiling a call may run (instantiation and
/// parsing) before it is abandoned.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

/// Epoch ticks a component may run while it loads (its type check).
const LOAD_TICKS: u64 = 1000;

/// How much wider than configured each quota window is kept, so that the
/// server, counting on arrival, never sees more than the quota in a window.
pub const QUOTA_MARGIN: Duration = Duration::from_millis(500);

/// Runs calls to API Entreprise through the client component, for one
/// token.
///
/// What is per token (the token, its quota groups, its circuits, its send
/// window) is the runtime's own; what is per process (the engine and its
/// instance pool, the compiled client and its versions, the epoch ticker,
/// the sender's connection pool, the quota store, the audit file) is
/// shared with every runtime made from it by [`Runtime::for_token`]: a
/// vendor's hundreds of tokens cost one engine, one pool and one compiled
/// client, and a swap switches them all at once.
///
/// Cheap to share: wrap it in an `Arc` and call from many tasks.
pub struct Runtime {
    /// What every token's runtime of this process shares.
    pub(crate) shared: Arc<Shared>,
    /// This token's: its credentials, quota groups and circuits.
    policy: Arc<OutboundPolicy>,
}

/// What every token's runtime of one process shares.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    base_url: String,
    document_hosts: Vec<Authority>,
    pub(crate) json_timeout: Duration,
    document_timeout: Duration,
    retry: crate::RetryPolicy,
    /// Where compiled components are kept, for a swap's too.
    pub(crate) cache_dir: Option<std::path::PathBuf>,
    /// The version serving, the one before it, and what a swap needs.
    pub(crate) versions: crate::swap::Versions,
    /// One permit per pool slot: a call past the pool's size waits.
    slots: tokio::sync::Semaphore,
    /// How calls reach the network.
    path: CallPath,
    /// Where each call's audit line is appended, if anywhere.
    audit_file: Option<crate::audit::AuditFile>,
    /// What a new token's policy is made of.
    template: PolicyTemplate,
}

/// What each token's outbound policy is made of, beside its token.
pub(crate) struct PolicyTemplate {
    pub(crate) api: Authority,
    pub(crate) ip_quotas: Vec<crate::QuotaSpec>,
    pub(crate) quota_margin: Duration,
    pub(crate) circuits: crate::CircuitConfig,
    pub(crate) quotas: Arc<crate::Quotas>,
    pub(crate) sender: crate::Sender,
}

impl PolicyTemplate {
    /// The outbound policy of `token` (with its own per-minute limit, if
    /// API Entreprise gave it one): its own quota groups and circuits, the
    /// process's quota store and sender.
    pub(crate) fn policy(
        &self,
        token: Option<Token>,
        rate_limit: Option<u32>,
        json_timeout: Duration,
        document_timeout: Duration,
    ) -> OutboundPolicy {
        let quota = crate::policy::QuotaPolicy::new(&self.ip_quotas, self.quota_margin, token.as_ref(), rate_limit);
        OutboundPolicy {
            api: self.api.clone(),
            credentials: std::sync::RwLock::new(Arc::new(crate::policy::Credentials { token, quota })),
            json_timeout,
            document_timeout,
            send_window: std::sync::OnceLock::new(),
            quotas: self.quotas.clone(),
            circuits: Arc::new(crate::circuit::Circuits::new(self.circuits)),
            sender: self.sender.clone(),
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("base_url", &self.shared.base_url)
            .field("policy", &self.policy)
            .field("version", &self.shared.versions.current().info)
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A runtime for `token` (with its own per-minute limit, if API
    /// Entreprise gave it one) on this one's engine, instance pool, client
    /// versions, sender, quota store and audit file: it costs the token's
    /// own state (its quota groups, its circuits), kilobytes, and a swap
    /// of either switches both. Each call still runs in a fresh store,
    /// and only this runtime's token is ever added to its requests.
    pub fn for_token(&self, token: Option<Token>, rate_limit: Option<u32>) -> Runtime {
        let shared = &self.shared;
        let policy = shared
            .template
            .policy(token, rate_limit, shared.json_timeout, shared.document_timeout);
        Runtime {
            shared: shared.clone(),
            policy: Arc::new(policy),
        }
    }

    /// Whether `other` runs on the same engine, pool and client versions
    /// (made from this one by [`Self::for_token`], or this one from it).
    pub fn shares_engine_with(&self, other: &Runtime) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Every version of every endpoint the serving component supports.
    pub fn endpoints(&self) -> Arc<Vec<types::Endpoint>> {
        self.shared.versions.current().endpoints()
    }

    /// The endpoint a request would call: the given version, or the newest
    /// non-deprecated one.
    pub fn resolve(&self, id: &str, version: Option<u8>) -> Option<types::Endpoint> {
        let endpoints = self.endpoints();
        let mut versions = endpoints.iter().filter(|e| e.id == id);
        match version {
            Some(v) => versions.find(|e| e.version == v).cloned(),
            None => {
                let all: Vec<_> = versions.collect();
                all.iter()
                    .rev()
                    .find(|e| !e.deprecated)
                    .or(all.last())
                    .copied()
                    .cloned()
            }
        }
    }

    /// Whether the serving component was compiled or loaded from the cache.
    pub fn component_origin(&self) -> ComponentOrigin {
        self.shared.versions.current().info.origin
    }

    /// The client version the serving component declares in its version
    /// section (`None` for a component that does not say).
    pub fn component_version(&self) -> Option<String> {
        self.shared.versions.current().info.version.clone()
    }

    /// Which component serves: its declared version, digest and source.
    pub fn component(&self) -> VersionInfo {
        self.shared.versions.current().info.clone()
    }

    /// The token's claims, when a token is set and is a JWT.
    pub fn token_claims(&self) -> Option<Result<crate::Claims, String>> {
        self.policy.credentials().token.as_ref().map(Token::claims)
    }

    /// Whether `token` is the one the calls use now.
    pub fn uses_token(&self, token: &Token) -> bool {
        self.policy.credentials().token.as_ref() == Some(token)
    }

    /// Replaces the token without stopping: `token` is first checked with
    /// the API's `/privileges` (counted like any request), and only if it
    /// answers 200 do the calls that start from then on use it (those under
    /// way finish with the old one); otherwise the old one stays and the
    /// error says why. A token the API had refused is taken again at once.
    /// Returns the scopes the new token has.
    pub async fn rotate_token(&self, token: Token) -> Result<Vec<String>, crate::policy::RotationError> {
        let scopes =
            crate::policy::check_token(&self.policy, &self.shared.base_url, &token, self.shared.json_timeout).await?;
        self.policy.set_token(token);
        self.policy.circuits.token_accepted();
        Ok(scopes)
    }

    /// What the API said of the token when it refused it, while its calls
    /// stop.
    pub fn token_fault(&self) -> Option<crate::TokenFault> {
        self.policy.circuits.token_fault()
    }

    /// The ban the API's silence suggests: it stopped answering right after
    /// a per-IP window was full or a 429 (said with its probable end).
    pub fn ban_suspected(&self) -> Option<crate::BanSuspicion> {
        self.policy.circuits.ban()
    }

    /// A sign, as the quota store holds it for every host sharing it, that
    /// the IP has reached its quota: a per-IP window full now. An API that
    /// does not answer right after it is probably banning the IP.
    pub async fn limit_sign(&self) -> Option<String> {
        let credentials = self.policy.credentials();
        crate::policy::sign_in_store(&self.policy.quotas, credentials.quota.ip_keys()).await
    }

    /// The circuits as they stand: the API's, and each provider's that has
    /// failed.
    pub fn circuit_states(&self) -> Vec<crate::CircuitState> {
        self.policy.circuits.states()
    }

    /// Lets requests leave only while `window` says so: asked as each one is
    /// about to leave, so that a call that waited (for a slot, a circuit)
    /// does not leave outside it; a closed window refuses with
    /// [`CallError::Closed`]. Set once; false if it already was.
    pub fn set_send_window(&self, window: crate::policy::SendWindow) -> bool {
        self.policy.send_window.set(window).is_ok()
    }

    /// The API base URL calls go to.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// Validates, sends and parses one call, retrying transient failures
    /// one after the other when the runtime's [`crate::RetryPolicy`] says so.
    pub async fn call(&self, request: &types::Request) -> Result<types::Response, CallError> {
        let mut attempt = 1;
        loop {
            let result = self.call_once(request).await;
            attempt += 1;
            match result.as_ref().err().and_then(|e| self.shared.retry.delay(attempt, e)) {
                Some(delay) => {
                    tracing::info!(target: "api_entreprise::retry", attempt, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                None => return result,
            }
        }
    }

    async fn call_once(&self, request: &types::Request) -> Result<types::Response, CallError> {
        let started = Instant::now();
        // The call's ceiling comes from the host's own catalogue; each
        // request it sends is clamped again by its path (policy.rs).
        let endpoint = catalogue::find(&request.endpoint, request.version);
        let ceiling = match endpoint.map(|e| e.kind) {
            Some(catalogue::Kind::Document) => self.shared.document_timeout,
            _ => self.shared.json_timeout,
        };
        let loaded = self.shared.versions.current();
        let result = match self.shared.path {
            CallPath::Codec => self.call_via_codec(&loaded, request, ceiling).await,
            CallPath::WasiHttp => {
                self.run_on(&loaded, ceiling, async |store, instance| {
                    let call = loaded.exports.call(&mut *store, instance)?;
                    Ok(call.call_async(&mut *store, (&self.shared.base_url, request)).await?.0)
                })
                .await
            }
        };
        let line = audit(request, endpoint, &loaded.info, &result, started.elapsed());
        if let Some(file) = &self.shared.audit_file {
            file.append(&line);
        }
        self.shared.versions.record(&loaded, &result);
        result
    }

    /// Downloads a document link from an answer into `dest` (written whole or
    /// not at all): never with the token, only from the document hosts,
    /// within the document timeout, up to [`crate::download::MAX_DOCUMENT_BYTES`].
    pub async fn download(&self, url: &str, dest: &Path) -> Result<crate::Downloaded, crate::DownloadError> {
        crate::download::download(
            &self.policy.sender,
            &self.shared.document_hosts,
            url,
            dest,
            self.shared.document_timeout,
        )
        .await
    }

    /// The sans-IO face: validates `request` and builds the HTTP request a
    /// host with its own HTTP stack would send (it carries no token), with
    /// the endpoint and version it resolved to.
    pub async fn prepare(&self, request: &types::Request) -> Result<types::Prepared, CallError> {
        let now = crate::now_rfc3339();
        self.with_codec(async |store, instance, exports| {
            let prepare = exports.prepare(&mut *store, instance)?;
            Ok(prepare
                .call_async(&mut *store, (&self.shared.base_url, request, &now))
                .await?
                .0)
        })
        .await
    }

    /// The sans-IO face: parses an answer to `call` (what [`Self::prepare`]
    /// returned) received by the caller's own HTTP stack.
    pub async fn parse(
        &self,
        call: &types::Prepared,
        status: u16,
        headers: &[(String, String)],
        body: &str,
    ) -> Result<types::Response, CallError> {
        let now = crate::now_rfc3339();
        self.with_codec(async |store, instance, exports| {
            let parse = exports.parse(&mut *store, instance)?;
            Ok(parse
                .call_async(&mut *store, (call, status, headers, body, &now))
                .await?
                .0)
        })
        .await
    }

    /// Runs `f` on the serving version with nothing linked (see
    /// [`Self::run_codec`]), and counts how it went for that version's health.
    async fn with_codec<R>(
        &self,
        f: impl AsyncFnOnce(
            &mut Store<CodecState>,
            &Instance,
            &exports::Exports,
        ) -> wasmtime::Result<Result<R, types::Error>>,
    ) -> Result<R, CallError> {
        let loaded = self.shared.versions.current();
        let result = self
            .run_codec(&loaded, self.shared.json_timeout, async |store, instance| {
                f(store, instance, &loaded.exports).await
            })
            .await;
        self.shared.versions.record(&loaded, &result);
        result
    }

    /// Lists the endpoints `loaded` describes (once; later calls give the
    /// same list).
    pub(crate) async fn list_endpoints(&self, loaded: &Loaded) -> Result<Arc<Vec<types::Endpoint>>, ConfigError> {
        if let Some(listed) = loaded.endpoints.get() {
            return Ok(listed.clone());
        }
        let endpoints = self
            .run_codec(loaded, self.shared.json_timeout, async |store, instance| {
                let client = ApiEntreprise::new(&mut *store, instance)?;
                let endpoints = client.api_entreprise_client_catalogue().call_endpoints(store).await?;
                Ok(Ok(endpoints))
            })
            .await
            .map_err(|e| ConfigError::Component {
                path: loaded.info.source.clone(),
                reason: "listing its endpoints failed".into(),
                source: Box::new(e),
            })?;
        Ok(loaded.endpoints.get_or_init(|| Arc::new(endpoints)).clone())
    }

    /// Instantiates the component in a fresh store and drops it, on this
    /// runtime's path: what every call pays before its own work. Returns
    /// how long that took.
    pub async fn instantiation_cost(&self) -> Result<Duration, CallError> {
        let loaded = self.shared.versions.current();
        let started = Instant::now();
        match self.shared.path {
            CallPath::Codec => {
                self.run_codec(&loaded, self.shared.json_timeout, async |_, _| Ok(Ok(())))
                    .await?
            }
            CallPath::WasiHttp => {
                self.run_on(&loaded, self.shared.json_timeout, async |_, _| Ok(Ok(())))
                    .await?
            }
        }
        Ok(started.elapsed())
    }

    /// How this runtime's calls reach the network.
    pub fn call_path(&self) -> CallPath {
        self.shared.path
    }

    /// The sender every request of this runtime goes through (pooled
    /// connections, the extra CA, the DNS guard), for a caller's own
    /// requests beside the component's, such as the sans-IO face's.
    pub fn sender(&self) -> &crate::Sender {
        &self.policy.sender
    }

    /// Runs `f` against a fresh instance of `loaded` in a fresh store that
    /// links what a client may import (`wasi:http` under the policy), under
    /// the call's `ceiling`: the `wasi:http` path.
    async fn run_on<R>(
        &self,
        loaded: &Loaded,
        ceiling: Duration,
        f: impl AsyncFnOnce(&mut Store<CallState>, &Instance) -> wasmtime::Result<Result<R, types::Error>>,
    ) -> Result<R, CallError> {
        let state = CallState {
            // An empty environment, no arguments, no preopens, no network but
            // through wasi:http.
            wasi: WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: CallHooks {
                policy: Arc::clone(&self.policy),
                ceiling,
                deadline: tokio::time::Instant::now() + ceiling,
                refusal: Arc::default(),
                sent_path: None,
            },
            memory: MemoryCap::default(),
        };
        self.run(&loaded.pre, state, ceiling, f).await
    }

    /// Runs `f` against a fresh instance of `loaded` with nothing linked:
    /// whatever import the component calls traps, so it cannot send, read
    /// a clock or see anything of the host.
    pub(crate) async fn run_codec<R>(
        &self,
        loaded: &Loaded,
        ceiling: Duration,
        f: impl AsyncFnOnce(&mut Store<CodecState>, &Instance) -> wasmtime::Result<Result<R, types::Error>>,
    ) -> Result<R, CallError> {
        self.run(&loaded.codec, CodecState::default(), ceiling, f).await
    }

    /// A pool slot (held until the store is gone), a fresh store of
    /// `state`, an instance of `pre`, then `f`, all under the call's
    /// `ceiling`; the outcome said in the caller's terms. A refusal by the
    /// policy replaces the guest's generic message.
    async fn run<S: CallStore, R>(
        &self,
        pre: &InstancePre<S>,
        state: S,
        ceiling: Duration,
        f: impl AsyncFnOnce(&mut Store<S>, &Instance) -> wasmtime::Result<Result<R, types::Error>>,
    ) -> Result<R, CallError> {
        // A free slot at once (the usual case) costs no timer.
        let _slot = match self.shared.slots.try_acquire() {
            Ok(permit) => permit,
            Err(_) => match tokio::time::timeout(ceiling, self.shared.slots.acquire()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_closed)) => return Err(CallError::Trap("the runtime is shutting down".into())),
                Err(_) => return Err(CallError::Deadline(ceiling)),
            },
        };
        let mut store = Store::new(&self.shared.engine, state);
        store.limiter(|s| s.memory());
        // Yield to the executor at every epoch tick, so that the deadline
        // below also interrupts a guest that never waits on I/O.
        store.epoch_deadline_async_yield_and_update(1);
        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            f(&mut store, &instance).await
        };
        let outcome = tokio::time::timeout(ceiling + DEADLINE_SLACK, run).await;
        let memory_exhausted = store.data_mut().memory().exhausted;
        let called = store.data_mut().called();
        let (refusal, sent_path) = store.data_mut().outcome();
        match (outcome, refusal) {
            (Err(_), _) => Err(CallError::Deadline(ceiling)),
            (Ok(Err(trap)), _) if memory_exhausted => Err(CallError::Trap(format!(
                "it used more than its {} MiB of memory ({trap:#})",
                MEMORY_LIMIT >> 20
            ))),
            (Ok(Err(_)), _) if let Some(import) = called => Err(CallError::Trap(format!(
                "it trapped calling `{import}`, which is not linked on the codec path (a Rust panic ends so)"
            ))),
            (Ok(Err(trap)), _) => Err(CallError::Trap(format!("{trap:#}"))),
            (Ok(Ok(_)), Some(Refusal::Quota { quota, retry_after })) => {
                Err(CallError::RateLimited { quota, retry_after })
            }
            (Ok(Ok(_)), Some(Refusal::QuotaStore(down))) => Err(CallError::QuotaStoreUnavailable(down)),
            (Ok(Ok(_)), Some(Refusal::Circuit { what, retry_after })) => {
                Err(CallError::CircuitOpen { what, retry_after })
            }
            (Ok(Ok(_)), Some(Refusal::Closed { what, retry_after })) => Err(CallError::Closed { what, retry_after }),
            (Ok(Ok(_)), Some(Refusal::Token { fault, retry_after })) => {
                Err(CallError::TokenRefused { fault, retry_after })
            }
            (Ok(Ok(Ok(value))), _) => Ok(value),
            // The component only knows "denied": say why.
            (Ok(Ok(Err(types::Error::RefusedByHost(_)))), Some(refusal)) => Err(CallError::Client(ClientError(
                types::Error::RefusedByHost(refusal.to_string()),
            ))),
            (Ok(Ok(Err(error))), _) => {
                // A maintenance window says when it ends (`meta.retry_in`,
                // parsed by the component): the circuit of the provider whose
                // path the host saw leave stays open until then (at most the
                // longest cool-down).
                if let types::Error::Api(api) = &error
                    && api.kind == types::ApiErrorKind::Maintenance
                    && let (Some(provider), Some(seconds)) = (
                        sent_path.as_deref().and_then(catalogue::provider_of),
                        api.retry_after_seconds,
                    )
                {
                    self.policy.circuits.provider_answered(
                        provider,
                        true,
                        Some(Duration::from_secs(u64::from(seconds))),
                    );
                }
                // The token itself refused: its calls stop here, not at the API.
                if let types::Error::Api(api) = &error
                    && api.status == 401
                    && self.policy.credentials().token.is_some()
                    && let Some(item) = api
                        .errors
                        .iter()
                        .find(|e| crate::TOKEN_CODES.contains(&e.code.as_str()))
                {
                    self.policy.circuits.token_refused(&item.code, &item.title);
                }
                Err(CallError::Client(ClientError(error)))
            }
        }
    }
}

/// One line per call in the audit trail: who asked what, for what, and what
/// came back, said in the log (`api_entreprise::audit`) and returned for
/// the audit file. Never the token.
fn audit(
    request: &types::Request,
    endpoint: Option<&catalogue::Endpoint>,
    client: &VersionInfo,
    result: &Result<types::Response, CallError>,
    latency: Duration,
) -> crate::audit::AuditLine {
    let (status, outcome, request_id) = match result {
        Ok(r) => (Some(r.status), "ok".to_owned(), r.request_id.clone()),
        Err(CallError::Client(e)) if e.codes().is_empty() => (
            e.status(),
            e.case().to_owned(),
            match &e.0 {
                types::Error::Api(api) => api.request_id.clone(),
                _ => None,
            },
        ),
        Err(CallError::Client(e)) => (
            e.status(),
            e.codes().join(","),
            match &e.0 {
                types::Error::Api(api) => api.request_id.clone(),
                _ => None,
            },
        ),
        Err(CallError::Deadline(_)) => (None, "deadline".to_owned(), None),
        Err(CallError::RateLimited { .. }) => (None, "quota".to_owned(), None),
        Err(CallError::QuotaStoreUnavailable(_)) => (None, "quota-store".to_owned(), None),
        Err(CallError::CircuitOpen { .. }) => (None, "circuit".to_owned(), None),
        Err(CallError::Closed { .. }) => (None, "closed".to_owned(), None),
        Err(CallError::TokenRefused { fault, .. }) => (None, format!("token {}", fault.code), None),
        Err(CallError::Trap(_)) => (None, "trap".to_owned(), None),
    };
    let latency_ms = latency.as_secs_f64() * 1e3;
    tracing::info!(
        target: "api_entreprise::audit",
        // What the caller gave is quoted and escaped (`?`): a newline in a
        // trace field cannot forge a line of the trail.
        endpoint = ?request.endpoint,
        version = endpoint.map(|e| e.version),
        context = ?request.trace.context,
        recipient = ?request.trace.recipient,
        object = ?request.trace.object,
        user_id = ?request.trace.user_id.as_deref(),
        status,
        outcome = %outcome,
        request_id = request_id.as_deref(),
        latency_ms = latency.as_millis() as u64,
        client_version = client.version.as_deref(),
        client_digest = %client.digest,
        "call"
    );
    let codes = match result {
        Err(CallError::Client(e)) => e.codes().into_iter().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    crate::audit::AuditLine {
        time: crate::now_rfc3339(),
        endpoint: endpoint.map(|e| e.id),
        version: endpoint.map(|e| e.version),
        context: Some(request.trace.context.clone()),
        recipient: Some(request.trace.recipient.clone()),
        object: Some(request.trace.object.clone()),
        user_id: request.trace.user_id.clone(),
        status: status.unwrap_or(0),
        outcome: (codes.is_empty() && outcome != "ok").then_some(outcome),
        codes,
        request_id,
        latency_ms: (latency_ms * 10.0).round() / 10.0,
        client: Some(client.to_string()),
        sent: false,
        ..crate::audit::AuditLine::default()
    }
}
