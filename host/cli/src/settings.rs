//! The settings every command shares, from flags and the environment, and
//! the runtime they build: with no token, against a built-in sandbox.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use api_entreprise::{ComponentSource, QuotaSpec, Quotas, RetryPolicy, Runtime, RuntimeBuilder, Token};
use api_entreprise_gateway::Config;
use api_entreprise_gateway::config::Profile;
use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};

use crate::components::Components;

#[derive(Debug, Clone, clap::Args)]
pub struct HostArgs {
    /// The configuration file (TOML) that `serve` reads and in which
    /// `--profile` names a profile (see host/gateway/gateway.example.toml).
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_CONFIG",
        value_name = "TOML",
        help_heading = "Connection"
    )]
    config: Option<PathBuf>,
    /// Call as this profile of the configuration: its token, its base URL,
    /// its limit, and its default --context, --recipient and --object.
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_PROFILE",
        value_name = "NAME",
        help_heading = "Connection"
    )]
    profile: Option<String>,
    /// The client component (.wasm) to load instead of the installed one
    /// (`component install`) or the built-in one.
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_COMPONENT",
        value_name = "PATH",
        help_heading = "Client component"
    )]
    component: Option<PathBuf>,
    /// Where `component install` keeps client versions [default:
    /// $XDG_DATA_HOME/api-entreprise/components, else
    /// ~/.local/share/api-entreprise/components].
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_COMPONENTS_DIR",
        value_name = "DIR",
        help_heading = "Client component"
    )]
    components_dir: Option<PathBuf>,
    /// The API base URL [default: https://entreprise.api.gouv.fr with a token,
    /// the built-in sandbox without].
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_BASE_URL",
        value_name = "URL",
        help_heading = "Connection"
    )]
    base_url: Option<String>,
    /// The API token (a JWT from the dashboard). Prefer the environment
    /// variable: a flag shows in the process list.
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_TOKEN",
        hide_env_values = true,
        value_name = "JWT",
        help_heading = "Connection"
    )]
    token: Option<String>,
    /// A per-IP quota, never exceeded: N requests in any DURATION. Repeat it
    /// (or separate with commas) to apply several at once.
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_IP_QUOTA",
        value_delimiter = ',',
        default_value = "2000/10m,1000/1m",
        value_name = "N/DURATION",
        help_heading = "Quotas"
    )]
    ip_quota: Vec<String>,
    /// Where the quota state is kept across runs, shared by every process
    /// that uses the same directory [default: $XDG_STATE_HOME/api-entreprise,
    /// else ~/.local/state/api-entreprise; the built-in sandbox keeps none].
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_STATE_DIR",
        value_name = "DIR",
        help_heading = "Quotas"
    )]
    state_dir: Option<PathBuf>,
    /// Share the quotas with every host using this Redis server
    /// (redis://[:PASSWORD@]HOST:PORT/DB, or behind Sentinel
    /// redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]),
    /// instead of keeping them in the state directory.
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_REDIS_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Quotas"
    )]
    redis_url: Option<String>,
    /// Where the compiled component is kept between runs [default:
    /// $XDG_CACHE_HOME/api-entreprise, else ~/.cache/api-entreprise].
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_CACHE_DIR",
        value_name = "DIR",
        help_heading = "Client component"
    )]
    cache_dir: Option<PathBuf>,
    /// Retry transient failures up to N times, one after the other, with
    /// exponential backoff (each retry counts against the quotas).
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_RETRIES",
        default_value_t = 0,
        value_name = "N",
        help_heading = "Quotas"
    )]
    retries: u32,
    /// Also trust the CA certificate(s) in this PEM file (a corporate
    /// proxy's, or `sandbox --tls-ca-out`'s), beside the web's usual roots.
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_CA_CERT",
        value_name = "PEM",
        help_heading = "Connection"
    )]
    ca_cert: Option<PathBuf>,
    /// Append each call's audit line (JSON, as the gateway writes them:
    /// time, endpoint, trace, status, codes, request id, latency, client;
    /// never the token) to this file, which `status` reads for the last
    /// requests. For `call`, `batch` and `doctor`; `serve` writes its own
    /// trail on standard output.
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_AUDIT",
        value_name = "FILE",
        help_heading = "Audit trail"
    )]
    audit: Option<PathBuf>,
}

/// The global options' groups (`--help` headings), and which of them each
/// command ignores: its `--help` does not list those.
pub const HEADINGS: [&str; 4] = ["Connection", "Client component", "Quotas", "Audit trail"];

/// The groups of global options `command` has no use for.
pub fn ignored_by(command: &str) -> &'static [&'static str] {
    match command {
        "sandbox" => &HEADINGS,
        "endpoints" | "habilitation" | "component" => &["Quotas", "Audit trail"],
        "status" => &["Client component"],
        _ => &[],
    }
}

impl HostArgs {
    /// The per-IP quotas.
    pub fn ip_quotas(&self) -> anyhow::Result<Vec<QuotaSpec>> {
        Ok(self
            .ip_quota
            .iter()
            .map(|q| q.parse::<QuotaSpec>())
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// The audit file, if one is given.
    pub fn audit(&self) -> Option<&std::path::Path> {
        self.audit.as_deref()
    }

    /// The token given by flag or environment, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The base URL given by flag or environment, if any.
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// These settings, with `retries` retries of transient failures when
    /// `--retries` was left at 0.
    pub fn with_default_retries(mut self, retries: u32) -> Self {
        if self.retries == 0 {
            self.retries = retries;
        }
        self
    }

    /// The components directory.
    pub fn components(&self) -> anyhow::Result<Components> {
        self.components_dir
            .clone()
            .or_else(|| project_dir(dirs::data_dir()).map(|d| d.join("components")))
            .map(Components::at)
            .context("no components directory: set --components-dir or API_ENTREPRISE_COMPONENTS_DIR")
    }

    /// The client component to run: `--component`, else the installed
    /// current version, else the built-in client.
    pub fn component_source(&self) -> anyhow::Result<ComponentSource> {
        if let Some(path) = &self.component {
            return Ok(ComponentSource::File(path.clone()));
        }
        let installed = match self.components() {
            Ok(components) => components.current()?,
            Err(_) => None,
        };
        Ok(match installed {
            Some(path) => ComponentSource::File(path),
            None => ComponentSource::Bytes(api_entreprise_component::CLIENT.into()),
        })
    }

    /// The file whose change means a new client version: `--component`'s,
    /// else the components directory's history.
    pub fn component_watched(&self) -> Option<PathBuf> {
        match &self.component {
            Some(path) => Some(path.clone()),
            None => self.components().ok().map(|c| c.history_file()),
        }
    }

    /// Where the compiled component is kept between runs.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(|| project_dir(dirs::cache_dir()))
    }

    /// The configuration file given by flag or environment, if any.
    pub fn config(&self) -> Option<&PathBuf> {
        self.config.as_ref()
    }

    /// The configuration, and the profile `--profile` names in it, if one does.
    pub fn profile(&self) -> anyhow::Result<Option<(Config, String, Profile)>> {
        let Some(name) = &self.profile else {
            return Ok(None);
        };
        let Some(path) = &self.config else {
            bail!("--profile {name} needs the configuration that defines it: give --config (or API_ENTREPRISE_CONFIG)");
        };
        let config = Config::load(path)?;
        let Some(profile) = config.profiles.get(name).cloned() else {
            let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
            bail!(
                "no profile `{name}` in {}: it defines {}",
                path.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        };
        Ok(Some((config, name.clone(), profile)))
    }
}

/// Builds the runtime; with no token, against a built-in sandbox started
/// here (kept alive by the returned handle). `quiet` leaves out the line
/// that says the sandbox is used.
pub async fn connect(settings: &HostArgs, quiet: bool) -> anyhow::Result<(Runtime, Option<Sandbox>)> {
    if let Some((config, name, profile)) = settings.profile()? {
        let base_url = config
            .base_url
            .clone()
            .or_else(|| settings.base_url.clone())
            .unwrap_or_else(|| api_entreprise::PRODUCTION_BASE_URL.to_owned());
        let token = Token::new(profile.token(&name)?)?;
        let quotas = quota_store(settings, false).await?;
        let runtime = runtime(settings, base_url, token, quotas, profile.rate_limit_per_minute).await?;
        return Ok((runtime, None));
    }
    let (base_url, token, sandbox) = match (&settings.token, &settings.base_url) {
        (Some(token), base) => (
            base.clone()
                .unwrap_or_else(|| api_entreprise::PRODUCTION_BASE_URL.to_owned()),
            Token::new(token.as_str())?,
            None,
        ),
        (None, Some(base)) => bail!(
            "no token for {base}: set API_ENTREPRISE_TOKEN (or unset API_ENTREPRISE_BASE_URL to use the built-in sandbox)"
        ),
        (None, None) => {
            let sandbox = start_sandbox(quiet, "").await?;
            (sandbox.base_url(), Token::new(DEFAULT_TOKEN)?, Some(sandbox))
        }
    };
    let quotas = quota_store(settings, sandbox.is_some()).await?;
    let runtime = runtime(settings, base_url, token, quotas, None).await?;
    Ok((runtime, sandbox))
}

/// Starts the built-in sandbox, and unless `quiet` says so on stderr
/// (`extra` ends the line).
pub async fn start_sandbox(quiet: bool, extra: &str) -> anyhow::Result<Sandbox> {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .context("starting the built-in sandbox on loopback")?;
    if !quiet {
        eprintln!(
            "no API_ENTREPRISE_TOKEN set: using the built-in sandbox at {} (fictional staging data){extra}",
            sandbox.base_url()
        );
    }
    Ok(sandbox)
}

/// Where the quotas are counted, from the shared settings: Redis when
/// `--redis-url` names one, else the state directory's file (shared by
/// every process of this machine); against the built-in sandbox
/// (`sandbox`), in memory only. One per process: every runtime and the
/// gateway's shares count in it.
pub async fn quota_store(settings: &HostArgs, sandbox: bool) -> anyhow::Result<Arc<Quotas>> {
    let quotas = if let Some(url) = &settings.redis_url {
        Quotas::redis(url, api_entreprise::quota::REDIS_PREFIX).await?
    } else if sandbox {
        Quotas::new()
    } else {
        let dir = settings
            .state_dir
            .clone()
            .or_else(|| project_dir(dirs::state_dir()))
            .context("no state directory: set --state-dir or API_ENTREPRISE_STATE_DIR")?;
        Quotas::persistent(dir.join(api_entreprise::quota::STATE_FILE))?
    };
    Ok(Arc::new(quotas))
}

/// A runtime for `base_url` with `token` (and the token's own limit per
/// minute, if it has one), counting in `quotas`, from the shared settings.
pub async fn runtime(
    settings: &HostArgs,
    base_url: String,
    token: Token,
    quotas: Arc<Quotas>,
    token_rate_limit: Option<u32>,
) -> anyhow::Result<Runtime> {
    let component = settings.component_source()?;
    let mut builder = RuntimeBuilder::new(base_url)
        .token(token)
        .ip_quotas(settings.ip_quotas()?)
        .quotas(quotas)
        .component(component)
        .retry(RetryPolicy {
            max_attempts: settings.retries.saturating_add(1),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        });
    if let Some(per_minute) = token_rate_limit {
        builder = builder.token_rate_limit(per_minute);
    }
    if let Some(dir) = settings.cache_dir() {
        builder = builder.cache_dir(dir);
    }
    if let Some(path) = &settings.audit {
        builder = builder.audit_file(path);
    }
    if let Some(path) = &settings.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading the CA certificate {}", path.display()))?;
        builder = builder.extra_ca(pem);
    }
    Ok(builder.build().await?)
}

/// The official use case `id`, or an error that lists them.
pub fn use_case(id: &str) -> anyhow::Result<&'static api_entreprise_catalogue::UseCase> {
    use api_entreprise_catalogue as catalogue;
    catalogue::use_case(id).ok_or_else(|| {
        let known: Vec<&str> = catalogue::USE_CASES.iter().map(|u| u.id).collect();
        anyhow::anyhow!("no use case `{id}`: API Entreprise's are {}", known.join(", "))
    })
}

/// This program's folder inside an XDG base directory.
fn project_dir(base: Option<PathBuf>) -> Option<PathBuf> {
    base.map(|b| b.join("api-entreprise"))
}
