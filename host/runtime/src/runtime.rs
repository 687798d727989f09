//! The runtime: loads the component, pre-instantiates it, and runs each call
//! in a fresh store under the outbound policy and the call's deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::{ApiEntreprise, ApiEntreprisePre};
use crate::error::{CallError, ClientError, ConfigError};
use crate::policy::{Authority, CallHooks, OutboundPolicy};
use crate::quota::{QuotaKey, QuotaSpec, Quotas, SystemClock};
use crate::token::Token;
use crate::types;
use api_entreprise_catalogue as catalogue;

/// The production API.
pub const PRODUCTION_BASE_URL: &str = "https://entreprise.api.gouv.fr";

/// The longest a JSON call may take (the API's advice).
pub const JSON_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a document call may take (the API's advice).
pub const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(12);

/// How long past its network ceiling a call may run (instantiation and
/// parsing) before it is abandoned.
const DEADLINE_SLACK: Duration = Duration::from_millis(500);

/// How often the engine's epoch advances; each tick lets a busy guest yield.
/// Short, because Tokio polls for I/O only every few dozen task polls: with
/// 10 ms slices a spinning guest held a one-thread runtime's I/O for over
/// half a second and made the other calls time out.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How much wider than configured each quota window is kept, so that the
/// server, counting on arrival, never sees more than the quota in a window.
pub const QUOTA_MARGIN: Duration = Duration::from_millis(500);

/// Where the quotas live in a shared Redis.
const REDIS_PREFIX: &str = "api-entreprise:quota:";

/// Memory a call's instance may use.
const MEMORY_LIMIT: usize = 64 << 20;

/// How much of a pooled slot's memory, table and stack stays mapped between
/// calls.
const KEEP_RESIDENT: usize = 64 << 10;

/// How many calls may hold an instance at once with the pooling allocator.
pub const POOL_SLOTS: u32 = 1000;

/// Where the component comes from.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// Its bytes, such as those the `api-entreprise-component` crate builds.
    Bytes(std::borrow::Cow<'static, [u8]>),
    /// A `.wasm` file, read at start-up (so the client can be upgraded
    /// without rebuilding the host).
    File(PathBuf),
}

/// Configures a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    component: Option<ComponentSource>,
    base_url: String,
    token: Option<Token>,
    ip_quotas: Vec<QuotaSpec>,
    quotas: Option<Arc<Quotas>>,
    state_file: Option<PathBuf>,
    redis_url: Option<String>,
    quota_margin: Duration,
    circuits: crate::CircuitConfig,
    retry: crate::RetryPolicy,
    cache_dir: Option<PathBuf>,
    json_timeout: Duration,
    document_timeout: Duration,
    document_hosts: Vec<String>,
    extra_ca: Vec<u8>,
    token_rate_limit: Option<u32>,
    pooling: bool,
}

impl RuntimeBuilder {
    /// A runtime for the API at `base_url`, with no token and the source
    /// document's per-IP quota. Give it a component with [`Self::component`].
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            component: None,
            base_url: base_url.into(),
            token: None,
            ip_quotas: QuotaSpec::DEFAULT_IP.to_vec(),
            quotas: None,
            state_file: None,
            redis_url: None,
            quota_margin: QUOTA_MARGIN,
            circuits: crate::CircuitConfig::default(),
            retry: crate::RetryPolicy::NONE,
            cache_dir: None,
            json_timeout: JSON_TIMEOUT,
            document_timeout: DOCUMENT_TIMEOUT,
            document_hosts: crate::download::DEFAULT_DOCUMENT_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            extra_ca: Vec::new(),
            token_rate_limit: None,
            pooling: true,
        }
    }

    /// Takes each call's instance from a pool reserved at start (the
    /// default) or maps it afresh (`false`: less memory reserved up front,
    /// slower calls). The pool serves [`POOL_SLOTS`] calls at once; more
    /// wait for a slot.
    pub fn pooling(mut self, pooling: bool) -> Self {
        self.pooling = pooling;
        self
    }

    /// The token's own limit per minute, for every endpoint group, when API
    /// Entreprise gave it one (`rate_limit_per_minute`), instead of the
    /// catalogue's group limits.
    pub fn token_rate_limit(mut self, per_minute: u32) -> Self {
        self.token_rate_limit = Some(per_minute);
        self
    }

    /// Also trusts the CA certificate(s) in `pem` (PEM text), beside the
    /// web's usual roots: a corporate proxy's, or the sandbox's with TLS.
    pub fn extra_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_ca = pem.into();
        self
    }

    /// The hosts document links may be downloaded from (`https://host[:port]`),
    /// instead of [`crate::download::DEFAULT_DOCUMENT_HOSTS`]. The API's own
    /// authority is always one of them.
    pub fn document_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.document_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Loads the component from `source`.
    pub fn component(mut self, source: ComponentSource) -> Self {
        self.component = Some(source);
        self
    }

    /// The token added to every request to the API (and to nothing else).
    pub fn token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }

    /// The per-IP quotas, all applied at once and never exceeded, instead of
    /// [`QuotaSpec::DEFAULT_IP`].
    pub fn ip_quotas(mut self, quotas: impl IntoIterator<Item = QuotaSpec>) -> Self {
        self.ip_quotas = quotas.into_iter().collect();
        self
    }

    /// Keeps the quota state in `file`, so that a restart does not spend a
    /// window's quota again.
    pub fn state_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.state_file = Some(file.into());
        self
    }

    /// Keeps the quotas in the Redis server at `url`, shared by every host
    /// that uses it (several hosts behind one egress IP), instead of in this
    /// process and its state file.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Keeps the compiled component in `dir`, keyed by the engine's
    /// configuration (wasmtime version included) and the component's bytes:
    /// the first start compiles, later ones load the compiled form.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Retries transient failures (off by default).
    pub fn retry(mut self, policy: crate::RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// When the API's and the providers' circuits open, and for how long.
    pub fn circuits(mut self, config: crate::CircuitConfig) -> Self {
        self.circuits = config;
        self
    }

    /// Widens every quota's window by `margin` (default [`QUOTA_MARGIN`]):
    /// the server counts a request when it arrives, a little after it
    /// leaves, and arrivals do not keep the order and spacing of departures.
    pub fn quota_margin(mut self, margin: Duration) -> Self {
        self.quota_margin = margin;
        self
    }

    /// Shares `quotas` (their clock and state) instead of making new ones:
    /// several runtimes in one process then count together.
    pub fn quotas(mut self, quotas: Arc<Quotas>) -> Self {
        self.quotas = Some(quotas);
        self
    }

    /// Lowers the JSON and document timeouts; they can never be raised past
    /// 5 s and 12 s.
    pub fn timeouts(mut self, json: Duration, document: Duration) -> Self {
        self.json_timeout = json.min(JSON_TIMEOUT);
        self.document_timeout = document.min(DOCUMENT_TIMEOUT);
        self
    }

    /// The pooled sender: the web's roots plus the extra CA; for a
    /// production API, host names resolving to non-public addresses refused.
    fn sender(&self, api: &Authority) -> Result<crate::sender::Sender, ConfigError> {
        use rustls_pki_types::pem::PemObject;
        let ca_err = |why: String| ConfigError::Ca(why);
        let roots = rustls_pki_types::CertificateDer::pem_slice_iter(&self.extra_ca)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(format!("it is not PEM: {e}")))?;
        if !self.extra_ca.is_empty() && roots.is_empty() {
            return Err(ca_err("it holds no CERTIFICATE block".into()));
        }
        let connect_timeout = self.json_timeout.max(self.document_timeout);
        crate::sender::Sender::new(&roots, !api.is_loopback(), connect_timeout).map_err(ca_err)
    }

    /// Compiles the component and prepares it for calls.
    pub async fn build(self) -> Result<Runtime, ConfigError> {
        let api = Authority::of_base_url(&self.base_url)?;
        let mut document_hosts = vec![api.clone()];
        for host in &self.document_hosts {
            document_hosts.push(Authority::of_base_url(host)?);
        }
        let sender = self.sender(&api)?;
        let engine_err = |e: wasmtime::Error| ConfigError::Engine(format!("{e:#}"));
        let engine = match Engine::new(&engine_config(self.pooling)) {
            Ok(engine) => engine,
            // A host whose address space is capped cannot reserve the pool:
            // it still runs, mapping each instance afresh.
            Err(e) if self.pooling => {
                tracing::warn!(target: "api_entreprise::runtime", "no instance pool ({e:#}); instances are mapped per call");
                Engine::new(&engine_config(false)).map_err(engine_err)?
            }
            Err(e) => return Err(engine_err(e)),
        };

        let (path, bytes) = match &self.component {
            None => return Err(ConfigError::NoComponent),
            Some(ComponentSource::Bytes(bytes)) => (PathBuf::from("<bytes>"), Ok(bytes.clone())),
            Some(ComponentSource::File(path)) => (path.clone(), std::fs::read(path).map(std::borrow::Cow::Owned)),
        };
        let component_err = |e: wasmtime::Error| ConfigError::Component {
            path: path.clone(),
            reason: format!("{e:#}"),
        };
        let bytes = bytes.map_err(|e| component_err(e.into()))?;
        let refused = |reason: String| ConfigError::Component {
            path: path.clone(),
            reason,
        };
        if let Some(reason) = crate::contract::not_a_component(&bytes) {
            return Err(refused(reason));
        }
        let (component, origin) = load_component(&engine, &bytes, self.cache_dir.as_deref()).map_err(component_err)?;
        crate::contract::check(&engine, &component).map_err(refused)?;
        let mut linker = Linker::<CallState>::new(&engine);
        add_wasi_to_linker(&mut linker).map_err(engine_err)?;
        let pre = linker.instantiate_pre(&component).map_err(component_err)?;
        let pre = ApiEntreprisePre::new(pre).map_err(component_err)?;
        spawn_epoch_ticker(&engine);

        let quotas = match (self.quotas, &self.state_file) {
            (Some(quotas), _) => quotas,
            (None, _) if self.redis_url.is_some() => {
                let url = self.redis_url.as_deref().unwrap_or_default();
                Arc::new(Quotas::redis(url, REDIS_PREFIX).await?)
            }
            (None, Some(file)) => Arc::new(Quotas::persistent(file.clone(), Box::new(SystemClock))?),
            (None, None) => Arc::new(Quotas::new()),
        };
        let token_scope = match self.token.as_ref().map(Token::claims) {
            Some(Ok(crate::Claims { jti: Some(jti), .. })) => format!(" (token {jti})"),
            _ => String::new(),
        };
        let policy = Arc::new(OutboundPolicy {
            api,
            token: self.token,
            json_timeout: self.json_timeout,
            document_timeout: self.document_timeout,
            quota_margin: self.quota_margin,
            token_scope,
            token_rate_limit: self.token_rate_limit,
            ip_quotas: self
                .ip_quotas
                .iter()
                .map(|spec| QuotaKey {
                    name: format!("ip {spec}"),
                    spec: QuotaSpec {
                        limit: spec.limit,
                        window: spec.window + self.quota_margin,
                    },
                })
                .collect(),
            quotas,
            circuits: Arc::new(crate::circuit::Circuits::new(self.circuits)),
            sender,
        });
        let mut runtime = Runtime {
            engine,
            pre,
            policy,
            base_url: self.base_url.trim_end_matches('/').to_owned(),
            endpoints: Vec::new(),
            document_hosts,
            json_timeout: self.json_timeout,
            document_timeout: self.document_timeout,
            retry: self.retry,
            origin,
            slots: tokio::sync::Semaphore::new(POOL_SLOTS as usize),
        };
        // The component's catalogue is a description (for `endpoints`),
        // compared with the host's own, never trusted for a policy.
        runtime.endpoints = runtime
            .with_instance(CallLimits::local(runtime.json_timeout), async |store, client| {
                let endpoints = client.api_entreprise_client_catalogue().call_endpoints(store).await?;
                Ok(Ok(endpoints))
            })
            .await
            .map_err(|e| ConfigError::Component {
                path,
                reason: format!("listing its endpoints failed: {e}"),
            })?;
        compare_catalogues(&runtime.endpoints);
        Ok(runtime)
    }
}

/// The engine's configuration: epochs for deadlines, and the pooling
/// allocator unless `pooling` is off.
fn engine_config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // `perf` names the component's functions when asked (BENCHMARKS.md).
    if std::env::var_os("API_ENTREPRISE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        // Instances come from a pool of slots reserved once, instead of
        // fresh mappings for every call's store. A client has one linear
        // memory; each slot reserves address space (wasmtime's 4 GiB
        // guard region), not RAM.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 4)
            .total_memories(POOL_SLOTS)
            .total_tables(POOL_SLOTS * 4)
            .max_memory_size(MEMORY_LIMIT)
            // A freed slot keeps its first pages mapped (zeroed in place)
            // rather than returned to the kernel: the next call's instance
            // then takes no page faults on them.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .async_stack_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Where a runtime's compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentOrigin {
    /// Compiled at start.
    Compiled,
    /// Loaded, already compiled, from the cache directory.
    Cached,
}

/// Compiles `bytes`, or loads their compiled form from `cache` when an
/// earlier start left it there for this very engine configuration.
fn load_component(
    engine: &Engine,
    bytes: &[u8],
    cache: Option<&Path>,
) -> wasmtime::Result<(Component, ComponentOrigin)> {
    use std::hash::{Hash, Hasher};
    let Some(dir) = cache else {
        return Ok((Component::new(engine, bytes)?, ComponentOrigin::Compiled));
    };
    let mut key = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut key);
    bytes.hash(&mut key);
    let file = dir.join(format!("client-{:016x}.cwasm", key.finish()));
    // Read into memory rather than mapped: a file truncated by someone else
    // while mapped would crash the process (SIGBUS).
    if let Ok(compiled) = std::fs::read(&file) {
        // SAFETY: the file is one this host wrote (below) for this engine's
        // configuration; wasmtime also checks its header, version and settings
        // and refuses a mismatch or a damaged file, which is then compiled anew.
        match unsafe { Component::deserialize(engine, &compiled) } {
            Ok(component) => return Ok((component, ComponentOrigin::Cached)),
            Err(e) => tracing::warn!(target: "api_entreprise::cache", file = %file.display(), "recompiling: {e:#}"),
        }
    }
    let component = Component::new(engine, bytes)?;
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        let partial = file.with_extension("partial");
        std::fs::write(&partial, component.serialize().map_err(std::io::Error::other)?)?;
        std::fs::rename(&partial, &file)
    });
    if let Err(e) = written {
        tracing::warn!(target: "api_entreprise::cache", dir = %dir.display(), "the compiled component was not cached: {e}");
    }
    Ok((component, ComponentOrigin::Compiled))
}

/// Links what the world may import: `wasi:http` and the harmless parts of
/// WASI that Rust's std uses (clocks, random, stdio, environment, exit). No
/// filesystem, no sockets: a component that imports them is refused at load.
fn add_wasi_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::p2::bindings::cli;
    use wasmtime_wasi::random::WasiRandom;

    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(linker)?;
    let l = linker;
    cli::environment::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::exit::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_input::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_output::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_stdin::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_stdout::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    cli::terminal_stderr::add_to_linker::<CallState, WasiCli>(l, WasiCliView::cli)?;
    wasmtime_wasi::p2::bindings::random::insecure::add_to_linker::<CallState, WasiRandom>(l, |t| t.wasi.random())?;
    wasmtime_wasi::p2::bindings::random::insecure_seed::add_to_linker::<CallState, WasiRandom>(l, |t| t.wasi.random())?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)
}

/// Advances the engine's epoch until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("api-entreprise-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// What one call's store holds.
pub(crate) struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: CallHooks,
    memory: MemoryCap,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Runs calls to API Entreprise through the client component.
///
/// Cheap to share: wrap it in an `Arc` and call from many tasks.
pub struct Runtime {
    engine: Engine,
    pre: ApiEntreprisePre<CallState>,
    policy: Arc<OutboundPolicy>,
    base_url: String,
    endpoints: Vec<types::Endpoint>,
    document_hosts: Vec<Authority>,
    json_timeout: Duration,
    document_timeout: Duration,
    retry: crate::RetryPolicy,
    origin: ComponentOrigin,
    /// One permit per pool slot: a call past the pool's size waits.
    slots: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("base_url", &self.base_url)
            .field("policy", &self.policy)
            .field("endpoints", &self.endpoints.len())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Every version of every endpoint the component supports.
    pub fn endpoints(&self) -> &[types::Endpoint] {
        &self.endpoints
    }

    /// The endpoint a request would call: the given version, or the newest
    /// non-deprecated one.
    pub fn resolve(&self, id: &str, version: Option<u8>) -> Option<&types::Endpoint> {
        let mut versions = self.endpoints.iter().filter(|e| e.id == id);
        match version {
            Some(v) => versions.find(|e| e.version == v),
            None => {
                let all: Vec<_> = versions.collect();
                all.iter().rev().find(|e| !e.deprecated).or(all.last()).copied()
            }
        }
    }

    /// Whether the component was compiled at start or loaded from the cache.
    pub fn component_origin(&self) -> ComponentOrigin {
        self.origin
    }

    /// The token's claims, when a token is set and is a JWT.
    pub fn token_claims(&self) -> Option<Result<crate::Claims, String>> {
        self.policy.token.as_ref().map(Token::claims)
    }

    /// The API base URL calls go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Validates, sends and parses one call, retrying transient failures
    /// one after the other when the runtime's [`crate::RetryPolicy`] says so.
    pub async fn call(&self, request: &types::Request) -> Result<types::Response, CallError> {
        let mut attempt = 1;
        loop {
            let result = self.call_once(request).await;
            attempt += 1;
            match result.as_ref().err().and_then(|e| self.retry.delay(attempt, e)) {
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
            Some(catalogue::Kind::Document) => self.document_timeout,
            _ => self.json_timeout,
        };
        let limits = CallLimits::new(ceiling);
        let sent_path = Arc::clone(&limits.sent_path);
        let base_url = self.base_url.clone();
        let result = self
            .with_instance(limits, async |store, client| {
                client
                    .api_entreprise_client_client()
                    .call_call(store, &base_url, request)
                    .await
            })
            .await;
        // A maintenance window says when it ends (`meta.retry_in`, parsed by
        // the component): the circuit of the provider whose path the host
        // saw leave stays open until then (at most the longest cool-down).
        let sent_path = sent_path.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Err(CallError::Client(ClientError(types::Error::Maintenance(api)))) = &result
            && let (Some(provider), Some(seconds)) = (
                sent_path.as_deref().and_then(catalogue::provider_of),
                api.retry_after_seconds,
            )
        {
            self.policy
                .circuits
                .provider_answered(provider, true, Some(Duration::from_secs(seconds)));
        }
        audit(request, endpoint, &result, started.elapsed());
        result
    }

    /// Downloads a document link from an answer into `dest` (written whole or
    /// not at all): never with the token, only from the document hosts,
    /// within the document timeout, up to [`crate::download::MAX_DOCUMENT_BYTES`].
    pub async fn download(&self, url: &str, dest: &Path) -> Result<crate::Downloaded, crate::DownloadError> {
        crate::download::download(
            &self.policy.sender,
            &self.document_hosts,
            url,
            dest,
            self.document_timeout,
        )
        .await
    }

    /// The sans-IO face: validates `request` and builds the HTTP request a
    /// host with its own HTTP stack would send (it carries no token).
    pub async fn prepare(&self, request: &types::Request) -> Result<types::HttpRequest, CallError> {
        let base_url = self.base_url.clone();
        self.with_instance(CallLimits::local(self.json_timeout), async |store, client| {
            client
                .api_entreprise_client_codec()
                .call_prepare(store, &base_url, request)
                .await
        })
        .await
    }

    /// The sans-IO face: parses an answer received by the caller's own HTTP
    /// stack for `endpoint` in `version`.
    pub async fn parse(
        &self,
        endpoint: &str,
        version: u8,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<types::Response, CallError> {
        self.with_instance(CallLimits::local(self.json_timeout), async |store, client| {
            client
                .api_entreprise_client_codec()
                .call_parse(store, endpoint, version, status, headers, body)
                .await
        })
        .await
    }

    /// Instantiates the component in a fresh store and drops it: what every
    /// call pays before its own work. Returns how long that took.
    pub async fn instantiation_cost(&self) -> Result<Duration, CallError> {
        let started = Instant::now();
        self.with_instance(CallLimits::local(self.json_timeout), async |_, _| Ok(Ok(())))
            .await?;
        Ok(started.elapsed())
    }

    /// The sender every request of this runtime goes through (pooled
    /// connections, the extra CA, the DNS guard), for a caller's own
    /// requests beside the component's, such as the sans-IO face's.
    pub fn sender(&self) -> &crate::Sender {
        &self.policy.sender
    }

    /// Runs `f` against a fresh instance in a fresh store, under the call's
    /// ceiling. A refusal by the policy replaces the guest's generic message.
    async fn with_instance<R>(
        &self,
        limits: CallLimits,
        f: impl AsyncFnOnce(&mut Store<CallState>, &ApiEntreprise) -> wasmtime::Result<Result<R, types::Error>>,
    ) -> Result<R, CallError> {
        // A pool slot first (held until the store is gone, below), within
        // the call's time.
        let _slot = match tokio::time::timeout(limits.ceiling, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(CallError::Trap("the runtime is shutting down".into())),
            Err(_) => return Err(CallError::Deadline(limits.ceiling)),
        };
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
                ceiling: limits.ceiling,
                deadline: tokio::time::Instant::now() + limits.ceiling,
                refusal: Arc::default(),
                sent_path: None,
            },
            memory: MemoryCap::default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        // Yield to the executor at every epoch tick, so that the deadline
        // below also interrupts a guest that never waits on I/O.
        store.epoch_deadline_async_yield_and_update(1);
        let run = async {
            let client = self.pre.instantiate_async(&mut store).await?;
            f(&mut store, &client).await
        };
        let outcome = tokio::time::timeout(limits.ceiling + DEADLINE_SLACK, run).await;
        let memory_exhausted = store.data().memory.exhausted;
        *limits.sent_path.lock().unwrap_or_else(|p| p.into_inner()) = store.data().hooks.sent_path.clone();
        let refusal = store
            .data()
            .hooks
            .refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match (outcome, refusal) {
            (Err(_), _) => Err(CallError::Deadline(limits.ceiling)),
            (Ok(Err(trap)), _) if memory_exhausted => Err(CallError::Trap(format!(
                "it used more than its {} MiB of memory ({trap:#})",
                MEMORY_LIMIT >> 20
            ))),
            (Ok(Err(trap)), _) => Err(CallError::Trap(format!("{trap:#}"))),
            (Ok(Ok(_)), Some(crate::policy::Refusal::Quota { quota, retry_after })) => {
                Err(CallError::RateLimited { quota, retry_after })
            }
            (Ok(Ok(_)), Some(crate::policy::Refusal::Circuit { what, retry_after })) => {
                Err(CallError::CircuitOpen { what, retry_after })
            }
            (Ok(Ok(Ok(value))), _) => Ok(value),
            // The component only knows "denied": say why.
            (Ok(Ok(Err(types::Error::RefusedByHost(_)))), Some(refusal)) => Err(CallError::Client(ClientError(
                types::Error::RefusedByHost(refusal.to_string()),
            ))),
            (Ok(Ok(Err(error))), _) => Err(CallError::Client(ClientError(error))),
        }
    }
}

/// Caps a call's memory at [`MEMORY_LIMIT`]. Past it the guest traps
/// (rather than seeing an allocation fail), and the host remembers why.
#[derive(Default)]
struct MemoryCap {
    exhausted: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MEMORY_LIMIT {
            self.exhausted = true;
            wasmtime::bail!("the component asked for {desired} bytes of memory");
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// What bounds one call, and what the host saw it send.
struct CallLimits {
    /// The call's time ceiling.
    ceiling: Duration,
    /// The path of the last request the call sent, filled in after it.
    sent_path: Arc<std::sync::Mutex<Option<String>>>,
}

impl CallLimits {
    fn new(ceiling: Duration) -> Self {
        Self {
            ceiling,
            sent_path: Arc::default(),
        }
    }

    /// For calls that should send nothing (the catalogue, the sans-IO
    /// codec); a request they send anyway is held to the same policy.
    fn local(ceiling: Duration) -> Self {
        Self::new(ceiling)
    }
}

/// Logs where the component's description of its endpoints differs from
/// the host's catalogue (a newer or a hostile component): the host's is
/// the one every policy uses.
fn compare_catalogues(described: &[types::Endpoint]) {
    let differences: Vec<String> = described
        .iter()
        .filter_map(|e| {
            let why = match catalogue::find(&e.id, Some(e.version)) {
                None => "unknown to the host".to_owned(),
                Some(ours) => {
                    let mut why = Vec::new();
                    if ours.path != e.path {
                        why.push(format!("path {} for {}", e.path, ours.path));
                    }
                    if !same_kind(ours.kind, e.kind) {
                        why.push(format!("kind {:?} for {:?}", e.kind, ours.kind));
                    }
                    if (ours.group.name, ours.group.limit, ours.group.period_seconds)
                        != (
                            e.rate_limit.name.as_str(),
                            e.rate_limit.limit,
                            e.rate_limit.period_seconds,
                        )
                    {
                        why.push(format!(
                            "group {} {}/{}s for {} {}/{}s",
                            e.rate_limit.name,
                            e.rate_limit.limit,
                            e.rate_limit.period_seconds,
                            ours.group.name,
                            ours.group.limit,
                            ours.group.period_seconds
                        ));
                    }
                    if why.is_empty() {
                        return None;
                    }
                    why.join(", ")
                }
            };
            Some(format!("{} v{}: {why}", e.id, e.version))
        })
        .collect();
    if !differences.is_empty() {
        tracing::warn!(
            target: "api_entreprise::contract",
            count = differences.len(),
            "the component describes {} endpoint(s) differently from the host's catalogue, whose quotas and timeouts apply: {}",
            differences.len(),
            differences.join("; ")
        );
    }
}

/// Whether the catalogue's kind and the component's are the same.
fn same_kind(ours: catalogue::Kind, theirs: types::EndpointKind) -> bool {
    use catalogue::Kind;
    use types::EndpointKind as Wit;
    matches!(
        (ours, theirs),
        (Kind::Json, Wit::Json)
            | (Kind::Document, Wit::Document)
            | (Kind::JsonWithLinks, Wit::JsonWithLinks)
            | (Kind::Collection, Wit::Collection)
            | (Kind::Health, Wit::Health)
            | (Kind::Privileges, Wit::Privileges)
    )
}

/// One line per call in the audit trail: who asked what, for what, and what
/// came back. Never the token.
fn audit(
    request: &types::Request,
    endpoint: Option<&catalogue::Endpoint>,
    result: &Result<types::Response, CallError>,
    latency: Duration,
) {
    let (status, outcome, request_id) = match result {
        Ok(r) => (Some(r.status), "ok".to_owned(), r.request_id.clone()),
        Err(CallError::Client(e)) => (e.status(), e.codes().join(","), None),
        Err(CallError::Deadline(_)) => (None, "deadline".to_owned(), None),
        Err(CallError::RateLimited { .. }) => (None, "quota".to_owned(), None),
        Err(CallError::CircuitOpen { .. }) => (None, "circuit".to_owned(), None),
        Err(CallError::Trap(_)) => (None, "trap".to_owned(), None),
    };
    tracing::info!(
        target: "api_entreprise::audit",
        endpoint = %request.endpoint,
        version = endpoint.map(|e| e.version),
        context = %request.trace.context,
        recipient = %request.trace.recipient,
        object = %request.trace.object,
        user_id = request.trace.user_id.as_deref(),
        status,
        outcome = %outcome,
        request_id = request_id.as_deref(),
        latency_ms = latency.as_millis() as u64,
        "call"
    );
}
