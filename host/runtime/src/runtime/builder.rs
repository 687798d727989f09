//! Configures a [`Runtime`] and builds it: the policy, the engine, the
//! checked and pre-instantiated component.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::engine::{POOL_SLOTS, new_engine, spawn_epoch_ticker};
use super::{DOCUMENT_TIMEOUT, JSON_TIMEOUT, QUOTA_MARGIN, Runtime};
use crate::error::ConfigError;
use crate::policy::Authority;
use crate::quota::{QuotaSpec, Quotas, REDIS_PREFIX};
use crate::token::Token;

/// Where the component comes from.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// Its bytes, such as those the `api-entreprise-component` crate builds.
    Bytes(std::borrow::Cow<'static, [u8]>),
    /// A `.wasm` file, read at start-up (so the client can be upgraded
    /// without rebuilding the host).
    File(PathBuf),
}

/// How a runtime's calls reach the network. Both keep every guarantee of
/// the policy (the API's authority only, the token added by the host, every
/// quota counted from the path that leaves, clamped timeouts); they differ
/// in who sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CallPath {
    /// The component prepares the request and parses the answer, in one
    /// instance with nothing linked (every import traps); the host sends.
    /// The faster (BENCHMARKS.md), hence the default.
    #[default]
    Codec,
    /// The component's `client.call` sends through `wasi:http`, each
    /// request going through the host's policy hook.
    WasiHttp,
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
    path: CallPath,
    audit_file: Option<PathBuf>,
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
            path: CallPath::default(),
            audit_file: None,
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

    /// Appends one JSON line per call to `path` (the audit trail's lines,
    /// as the gateway writes them): never a key or a token.
    pub fn audit_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.audit_file = Some(path.into());
        self
    }

    /// How calls reach the network ([`CallPath::Codec`] unless told).
    pub fn call_path(mut self, path: CallPath) -> Self {
        self.path = path;
        self
    }

    /// Compiles the component and prepares it for calls.
    pub async fn build(self) -> Result<Runtime, ConfigError> {
        let api = Authority::of_base_url(&self.base_url)?;
        let audit_file = self
            .audit_file
            .as_deref()
            .map(crate::audit::AuditFile::open)
            .transpose()?;
        let mut document_hosts = vec![api.clone()];
        for host in &self.document_hosts {
            document_hosts.push(Authority::of_base_url(host)?);
        }
        let sender = self.sender(&api)?;
        let engine = new_engine(self.pooling).map_err(|e| ConfigError::Engine(format!("{e:#}")))?;
        let source = self.component.as_ref().ok_or(ConfigError::NoComponent)?;
        let (loaded, _) = super::loaded::load(&engine, source, self.cache_dir.as_deref())?;
        spawn_epoch_ticker(&engine);
        let quotas = match (self.quotas, &self.state_file) {
            (Some(quotas), _) => quotas,
            (None, _) if self.redis_url.is_some() => {
                let url = self.redis_url.as_deref().unwrap_or_default();
                Arc::new(Quotas::redis(url, REDIS_PREFIX).await?)
            }
            (None, Some(file)) => Arc::new(Quotas::persistent(file.clone())?),
            (None, None) => Arc::new(Quotas::new()),
        };
        let template = super::PolicyTemplate {
            api,
            ip_quotas: self.ip_quotas,
            quota_margin: self.quota_margin,
            circuits: self.circuits,
            quotas,
            sender,
        };
        let policy = template.policy(
            self.token,
            self.token_rate_limit,
            self.json_timeout,
            self.document_timeout,
        );
        let runtime = Runtime {
            shared: Arc::new(super::Shared {
                engine,
                base_url: self.base_url.trim_end_matches('/').to_owned(),
                document_hosts,
                json_timeout: self.json_timeout,
                document_timeout: self.document_timeout,
                retry: self.retry,
                cache_dir: self.cache_dir,
                versions: crate::swap::Versions::new(loaded),
                slots: tokio::sync::Semaphore::new(POOL_SLOTS as usize),
                path: self.path,
                audit_file,
                template,
            }),
            policy: Arc::new(policy),
        };
        // The component's catalogue is a description (for `endpoints`),
        // compared with the host's own, never trusted for a policy.
        let endpoints = runtime.list_endpoints(&runtime.shared.versions.current()).await?;
        crate::contract::compare_catalogues(&endpoints);
        Ok(runtime)
    }
}
