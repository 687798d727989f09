//! `api-entreprise serve`: the gateway (`host/gateway/`), from its
//! configuration file, or with none and no token, in front of the built-in
//! sandbox.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use api_entreprise::{ComponentSource, SwapError, Token, VersionInfo};
use api_entreprise_gateway::config::{Application, Profile};
use api_entreprise_gateway::{Config, Gateway, hash_key};
use api_entreprise_sandbox::DEFAULT_TOKEN;

use crate::settings::{self, HostArgs};

/// Serves the configuration given by the global `--config` (TOML:
/// `listen`, `base_url`, `metrics_listen`, [profiles.NAME] with `token_env`
/// or `token_file`, [applications.NAME] with `key_sha256`, `profile`, fixed
/// `recipient`/`context`/`object`, `endpoints`, `share`, `cors_origins`,
/// and [limits]; see host/gateway/gateway.example.toml). Without it and
/// without a token, the built-in sandbox is served, and its token is the one
/// application key.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen here instead of the configuration's `listen` (by default
    /// 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve the metrics (`/metrics`) and the dashboard (`/dashboard`) here
    /// instead of the configuration's `metrics_listen` (port 0 picks a
    /// free one). The dashboard asks for the administrator's key unless
    /// this is a loopback address.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Read an application key on standard input, print the SHA-256 that
    /// goes in its `key_sha256`, and exit.
    #[arg(long)]
    hash_key: bool,
}

pub async fn exec(host: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    // Caught from the first instant: a SIGHUP while the runtimes are being
    // built (compiling the component takes seconds) is a reload asked
    // early, never the default action, which ends the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    if args.hash_key {
        let mut key = String::new();
        std::io::stdin().lock().read_line(&mut key)?;
        if key.trim().is_empty() {
            bail!(
                "no key on standard input: pipe the application's key, such as `printf %s \"$KEY\" | api-entreprise serve --hash-key`"
            );
        }
        println!("{}", hash_key(&key));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = host.audit() {
        bail!(
            "--audit {} (or API_ENTREPRISE_AUDIT) is for call, batch and doctor: the gateway writes its audit trail \
             on standard output, one JSON line per request (redirect it: `serve >> {}`)",
            path.display(),
            path.display()
        );
    }
    let (config, sandbox) = match (host.config(), host.token()) {
        (Some(path), _) => (Config::load(path)?, None),
        (None, Some(_)) => bail!(
            "no configuration: the gateway serves applications by their keys, each bound to a profile's token; \
             give --config (see gateway.example.toml), or unset API_ENTREPRISE_TOKEN to serve the built-in sandbox"
        ),
        (None, None) => {
            let sandbox =
                settings::start_sandbox(false, &format!("; the application key is `{DEFAULT_TOKEN}`")).await?;
            let mut config = Config::default();
            config.profiles.insert("sandbox".into(), Profile::default());
            config.applications.insert(
                "sandbox".into(),
                Application {
                    key_sha256: hash_key(DEFAULT_TOKEN),
                    profile: "sandbox".into(),
                    ..Application::default()
                },
            );
            (config, Some(sandbox))
        }
    };
    let quotas = settings::quota_store(host, sandbox.is_some()).await?;
    // One engine, instance pool and compiled client for every profile:
    // the first profile's runtime is built, the others are its tokens.
    let mut runtimes: BTreeMap<String, Arc<api_entreprise::Runtime>> = BTreeMap::new();
    for (name, profile) in &config.profiles {
        let first = runtimes.values().next().cloned();
        let runtime = profile_runtime(
            host,
            &config,
            name,
            profile,
            sandbox.as_ref(),
            &quotas,
            first.as_deref(),
        )
        .await?;
        runtimes.insert(name.clone(), runtime);
    }
    let gateway = Arc::new(Gateway::new(&config, &runtimes, &host.ip_quotas()?, quotas)?);
    gateway.watch_privileges().await;
    gateway.watch_components();
    match hangup {
        Ok(hangup) => reload_on_sighup(gateway.clone(), host.clone(), hangup),
        Err(e) => eprintln!("warning: SIGHUP cannot be caught here ({e}): reloading needs a restart"),
    }
    if let Some(watched) = host.component_watched() {
        let (gateway, host) = (gateway.clone(), host.clone());
        tokio::spawn(watch_file(watched.clone(), move || {
            let (gateway, host, watched) = (gateway.clone(), host.clone(), watched.clone());
            async move {
                eprintln!("{} changed", watched.display());
                swap_if_changed(&gateway, &host).await;
                true
            }
        }));
    }
    for (name, profile) in &config.profiles {
        watch_token_file(&gateway, name, profile);
    }
    if let Some(addr) = args.metrics_listen.or(config.metrics_listen) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for the metrics on {addr}"))?;
        let at = listener.local_addr()?;
        eprintln!("metrics on http://{at}/metrics");
        if config.dashboard.enabled {
            eprintln!("dashboard on http://{at}/dashboard");
            gateway.sample_quotas();
        }
        tokio::spawn(gateway.clone().serve_metrics(listener));
    }
    let listen = args.listen.unwrap_or(config.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    // The first line says where; every later one is the audit trail (JSON).
    println!("gateway listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    gateway.serve(listener, shutdown()).await?;
    drop(sandbox);
    Ok(ExitCode::SUCCESS)
}

/// The runtime of the profile `name` of `config`: its token, the API (the
/// sandbox's when serving it), the process's quota store; on the engine,
/// pool and client of `running` (another profile's runtime) when there is
/// one, so that a profile costs its token's state only.
async fn profile_runtime(
    host: &HostArgs,
    config: &Config,
    name: &str,
    profile: &Profile,
    sandbox: Option<&api_entreprise_sandbox::Sandbox>,
    quotas: &Arc<api_entreprise::Quotas>,
    running: Option<&api_entreprise::Runtime>,
) -> anyhow::Result<Arc<api_entreprise::Runtime>> {
    let (base_url, token) = match sandbox {
        Some(sandbox) => (sandbox.base_url(), DEFAULT_TOKEN.to_owned()),
        None => (
            config
                .base_url
                .clone()
                .or_else(|| host.base_url().map(str::to_owned))
                .unwrap_or_else(|| api_entreprise::PRODUCTION_BASE_URL.to_owned()),
            profile.token(name)?,
        ),
    };
    let token = Token::new(token).with_context(|| format!("profile `{name}`: its token"))?;
    if let Some(running) = running {
        return Ok(Arc::new(running.for_token(Some(token), profile.rate_limit_per_minute)));
    }
    let runtime = settings::runtime(host, base_url, token, quotas.clone(), profile.rate_limit_per_minute)
        .await
        .with_context(|| format!("profile `{name}`"))?;
    Ok(Arc::new(runtime))
}

/// Reads the profile's token again whenever its token file changes (a
/// renewal written by hand, by a secret manager or a configuration tool),
/// while the gateway runs that profile.
fn watch_token_file(gateway: &Arc<Gateway>, name: &str, profile: &Profile) {
    let Some(file) = profile.token_file.clone() else { return };
    let (gateway, name) = (Arc::downgrade(gateway), name.to_owned());
    tokio::spawn(watch_file(file, move || {
        let (gateway, name) = (gateway.clone(), name.clone());
        async move {
            match gateway.upgrade() {
                Some(gateway) => gateway.rotate_token_of(&name).await.is_some(),
                None => false,
            }
        }
    }));
}

/// Reads the configuration again (SIGHUP): the profiles it adds get their
/// runtime (their token read like at start), those it drops stop, the
/// applications and keys are replaced, and every profile's token is read
/// again. A fault anywhere leaves the running configuration whole.
async fn reload(gateway: &Arc<Gateway>, host: &HostArgs, path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let mut added = BTreeMap::new();
    for (name, profile) in &config.profiles {
        if !gateway.has_profile(name) {
            let running = gateway.any_runtime();
            let runtime = profile_runtime(
                host,
                &config,
                name,
                profile,
                None,
                &gateway.quota_store(),
                running.as_deref(),
            )
            .await?;
            added.insert(name.clone(), runtime);
        }
    }
    let reloaded = gateway.reload(&config, &added)?;
    let mut said = format!("reloaded {}: {} application(s)", path.display(), reloaded.applications);
    if !reloaded.added.is_empty() {
        said += &format!("; profile(s) added: {}", reloaded.added.join(", "));
    }
    if !reloaded.removed.is_empty() {
        said += &format!(
            "; profile(s) removed: {} (their applications' keys are refused from now on)",
            reloaded.removed.join(", ")
        );
    }
    eprintln!("{said}");
    gateway.start_profiles(&reloaded.added).await;
    for name in &reloaded.added {
        watch_token_file(gateway, name, &config.profiles[name]);
    }
    gateway.rotate_tokens(&config).await;
    Ok(())
}

/// SIGHUP: read the configuration again and replace the applications and
/// their keys (a configuration with a fault leaves the running one as it
/// is), read each profile's token again (a changed one is checked, then
/// used), and swap to the client component if it changed.
fn reload_on_sighup(gateway: Arc<Gateway>, host: HostArgs, mut hangup: tokio::signal::unix::Signal) {
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if let Some(path) = host.config()
                && let Err(e) = reload(&gateway, &host, path).await
            {
                eprintln!("error: {e:#}; the configuration in use stays as it was");
            }
            swap_if_changed(&gateway, &host).await;
        }
    });
}

/// How often a watched file is looked at, and how long it must stay
/// unchanged before it is read (a copy in progress is not taken).
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Runs `changed` each time the file at `watched` (the `--component` file,
/// the components directory's history, a profile's token file) changes and
/// then holds still, until `changed` says the watch is over (false). Its size and modification time are polled: simple,
/// and it sees a file replaced by a rename (as editors, `cp` to a temporary
/// name, `component install` and secret managers do), which a watch on the
/// file itself misses.
async fn watch_file<F, Fut>(watched: PathBuf, mut changed: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let stamp = |path: &PathBuf| std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().ok()));
    let mut seen = stamp(&watched);
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let now = stamp(&watched);
        if now == seen {
            continue;
        }
        // Debounce: wait until it holds still for one interval.
        let mut settled = now;
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let again = stamp(&watched);
            if again == settled {
                break;
            }
            settled = again;
        }
        seen = settled;
        if seen.is_some() && !changed().await {
            return;
        }
    }
}

/// Swaps every profile to the client component the settings name now, if
/// its bytes differ from the serving one's; a refusal leaves the serving
/// version as it is, and says why.
async fn swap_if_changed(gateway: &Gateway, host: &HostArgs) {
    let source = match host.component_source() {
        Ok(source) => source,
        Err(e) => {
            eprintln!("error: {e:#}; the client component in use stays");
            return;
        }
    };
    let digest = match &source {
        ComponentSource::Bytes(bytes) => VersionInfo::digest_of(bytes),
        ComponentSource::File(path) => match std::fs::read(path) {
            Ok(bytes) => VersionInfo::digest_of(&bytes),
            Err(e) => {
                eprintln!(
                    "error: reading {}: {e}; the client component in use stays",
                    path.display()
                );
                return;
            }
        },
    };
    if gateway.component().is_some_and(|serving| serving.digest == digest) {
        return;
    }
    match gateway.swap_component(&source, false).await {
        Ok(report) => eprintln!("{report}"),
        Err(SwapError::Refused(report)) => eprintln!("{report}\nerror: the client component in use stays"),
        Err(e) => eprintln!("error: {e}; the client component in use stays"),
    }
}

/// Ctrl-C or SIGTERM: stop accepting, let the calls in flight finish.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
