//! `api-entreprise`: call API Entreprise through the sandboxed client
//! component, list its endpoints, or run the offline sandbox.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use api_entreprise::{CallError, ComponentSource, QuotaSpec, RetryPolicy, Runtime, RuntimeBuilder, Token, types};
use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};
use clap::{Args, Parser, Subcommand};

mod doctor;
mod summary;

/// Call API Entreprise (entreprise.api.gouv.fr) through a sandboxed
/// WebAssembly client. With no token, calls go to a built-in offline sandbox.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    host: HostArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct HostArgs {
    /// The client component (.wasm) to load instead of the built-in one.
    #[arg(long, global = true, env = "API_ENTREPRISE_COMPONENT", value_name = "PATH")]
    component: Option<PathBuf>,
    /// The API base URL [default: https://entreprise.api.gouv.fr with a token,
    /// the built-in sandbox without].
    #[arg(long, global = true, env = "API_ENTREPRISE_BASE_URL", value_name = "URL")]
    base_url: Option<String>,
    /// The API token (a JWT from the dashboard). Prefer the environment
    /// variable: a flag shows in the process list.
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_TOKEN",
        hide_env_values = true,
        value_name = "JWT"
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
        value_name = "N/DURATION"
    )]
    ip_quota: Vec<String>,
    /// Where the quota state is kept across runs [default:
    /// $XDG_STATE_HOME/api-entreprise, else ~/.local/state/api-entreprise;
    /// the built-in sandbox keeps none].
    #[arg(long, global = true, env = "API_ENTREPRISE_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Share the quotas with every host using this Redis server
    /// (redis://host:port/db), instead of keeping them in the state directory.
    #[arg(long, global = true, env = "API_ENTREPRISE_REDIS_URL", value_name = "URL")]
    redis_url: Option<String>,
    /// Where the compiled component is kept between runs [default:
    /// $XDG_CACHE_HOME/api-entreprise, else ~/.cache/api-entreprise].
    #[arg(long, global = true, env = "API_ENTREPRISE_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Retry transient failures up to N times, one after the other, with
    /// exponential backoff (each retry counts against the quotas).
    #[arg(
        long,
        global = true,
        env = "API_ENTREPRISE_RETRIES",
        default_value_t = 0,
        value_name = "N"
    )]
    retries: u32,
    /// Also trust the CA certificate(s) in this PEM file (a corporate
    /// proxy's, or `sandbox --tls-ca-out`'s), beside the web's usual roots.
    #[arg(long, global = true, env = "API_ENTREPRISE_CA_CERT", value_name = "PEM")]
    ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the endpoints the client component supports.
    Endpoints {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call one endpoint.
    Call(CallArgs),
    /// Download a document link from an answer (never with the token).
    Download {
        /// The link (`document_url`, or a file link).
        url: String,
        /// Where to write it [default: the link's last path segment].
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// The first end-to-end test: the token's expiry, its privileges, the
    /// providers' health and one test call, as a checklist.
    Doctor(DoctorArgs),
    /// Run the simulated API Entreprise on loopback until stopped.
    Sandbox {
        /// The port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The only token it accepts.
        #[arg(long, default_value = DEFAULT_TOKEN)]
        token: String,
        /// Serve HTTPS with a certificate generated at start, and write the
        /// CA that signed it to this file (give it to `--ca-cert`).
        #[arg(long, value_name = "PEM")]
        tls_ca_out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct DoctorArgs {
    /// The trace's context for the test call.
    #[arg(long, default_value = "test de bout en bout")]
    context: String,
    /// The SIRET of the public body the test call is for [default in the
    /// sandbox: 13002526500013].
    #[arg(long)]
    recipient: Option<String>,
    /// The trace's object for the test call.
    #[arg(long, default_value = "api-entreprise doctor")]
    object: String,
    /// The endpoint of the test call.
    #[arg(long, default_value = "insee_unites_legales")]
    endpoint: String,
    /// The path values of the test call.
    #[arg(long = "value", default_value = "552049447")]
    values: Vec<String>,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// The endpoint id, such as insee_unites_legales (see `endpoints`).
    endpoint: String,
    /// The path values, in the endpoint's order (a SIREN, a SIRET…).
    values: Vec<String>,
    /// The administrative frame of the request, such as "aides publiques"
    /// (every data endpoint needs the three trace fields).
    #[arg(long, default_value = "")]
    context: String,
    /// The SIRET of the public body that will use the data.
    #[arg(long, default_value = "")]
    recipient: String,
    /// The reason for the request or the case number (advised under 50 characters).
    #[arg(long, default_value = "")]
    object: String,
    /// Who is asking; required by the DGFIP endpoints.
    #[arg(long)]
    user_id: Option<String>,
    /// The endpoint version [default: the newest non-deprecated one].
    #[arg(long)]
    version: Option<u8>,
    /// An optional query parameter, as NAME=VALUE (repeatable).
    #[arg(long = "query", value_name = "NAME=VALUE")]
    query: Vec<String>,
    /// Print the whole answer as JSON.
    #[arg(long)]
    json: bool,
    /// Also download the answer's document to this file.
    #[arg(long, value_name = "PATH")]
    download: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("API_ENTREPRISE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sandbox {
            port,
            token,
            tls_ca_out,
        } => {
            let sandbox = Sandbox::start(SandboxConfig {
                addr: ([127, 0, 0, 1], port).into(),
                token,
                tls: tls_ca_out.is_some(),
            })
            .await
            .with_context(|| format!("starting the sandbox on 127.0.0.1:{port}"))?;
            if let (Some(path), Some(pem)) = (&tls_ca_out, sandbox.ca_pem()) {
                std::fs::write(path, pem).with_context(|| format!("writing the sandbox's CA to {}", path.display()))?;
                println!("its CA certificate: {} (pass it to --ca-cert)", path.display());
            }
            println!("sandbox listening on {}", sandbox.base_url());
            println!("requests it received: {}/__sandbox/requests", sandbox.base_url());
            std::io::stdout().flush()?;
            tokio::select! {
                () = sandbox.wait() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Endpoints { json } => {
            let (runtime, _sandbox) = connect(&cli.host, true).await?;
            print_endpoints(runtime.endpoints(), json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Call(args) => call(&cli.host, args).await,
        Command::Download { url, output } => {
            let (runtime, _sandbox) = connect(&cli.host, true).await?;
            let output = match output {
                Some(path) => path,
                None => PathBuf::from(
                    url.split('?')
                        .next()
                        .and_then(|u| u.rsplit('/').next())
                        .filter(|n| !n.is_empty())
                        .unwrap_or("document"),
                ),
            };
            let done = runtime.download(&url, &output).await?;
            println!("{}: {} bytes", done.path.display(), done.bytes);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(args) => {
            let (runtime, sandbox) = connect(&cli.host, false).await?;
            let recipient = match (args.recipient, &sandbox) {
                (Some(r), _) => r,
                (None, Some(_)) => "13002526500013".to_owned(),
                (None, None) => bail!("give --recipient: the SIRET of the public body the test call is for"),
            };
            let trace = types::Trace {
                context: args.context,
                recipient,
                object: args.object,
                user_id: None,
            };
            let ok = doctor::run(
                &runtime,
                &trace,
                &args.endpoint,
                args.values,
                &mut std::io::stdout().lock(),
            )
            .await?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Builds the runtime; with no token, against a built-in sandbox started
/// here (kept alive by the returned handle).
async fn connect(host: &HostArgs, quiet: bool) -> anyhow::Result<(Runtime, Option<Sandbox>)> {
    let quotas = host
        .ip_quota
        .iter()
        .map(|q| q.parse::<QuotaSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let (base_url, token, sandbox) = match (&host.token, &host.base_url) {
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
            let sandbox = Sandbox::start(SandboxConfig::default())
                .await
                .context("starting the built-in sandbox on loopback")?;
            if !quiet {
                eprintln!(
                    "no API_ENTREPRISE_TOKEN set: using the built-in sandbox at {} (fictional staging data)",
                    sandbox.base_url()
                );
            }
            (sandbox.base_url(), Token::new(DEFAULT_TOKEN)?, Some(sandbox))
        }
    };
    let component = match &host.component {
        Some(path) => ComponentSource::File(path.clone()),
        None => ComponentSource::BuiltIn,
    };
    let mut builder = RuntimeBuilder::new(base_url)
        .token(token)
        .ip_quotas(quotas)
        .component(component)
        .retry(RetryPolicy {
            max_attempts: host.retries.saturating_add(1),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        });
    if let Some(dir) = host.cache_dir.clone().or_else(|| xdg_dir("XDG_CACHE_HOME", ".cache")) {
        builder = builder.cache_dir(dir);
    }
    if let Some(url) = &host.redis_url {
        builder = builder.redis(url.clone());
    } else if sandbox.is_none() {
        let dir = state_dir(host)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating the state directory {}", dir.display()))?;
        builder = builder.state_file(dir.join("quotas.json"));
    }
    if let Some(path) = &host.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading the CA certificate {}", path.display()))?;
        builder = builder.extra_ca(pem);
    }
    let runtime = builder.build().await?;
    Ok((runtime, sandbox))
}

/// The quota state's directory: the flag, else the XDG state directory.
fn state_dir(host: &HostArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &host.state_dir {
        return Ok(dir.clone());
    }
    xdg_dir("XDG_STATE_HOME", ".local/state").context("no state directory: set --state-dir or API_ENTREPRISE_STATE_DIR")
}

/// `$VAR/api-entreprise`, else `~/HOME_RELATIVE/api-entreprise` (the XDG
/// base directories).
fn xdg_dir(var: &str, home_relative: &str) -> Option<PathBuf> {
    let base = std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(home_relative)))?;
    Some(base.join("api-entreprise"))
}

async fn call(host: &HostArgs, args: CallArgs) -> anyhow::Result<ExitCode> {
    let query = args
        .query
        .iter()
        .map(|q| {
            q.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--query {q:?} is not NAME=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.object.chars().count() > 50 {
        eprintln!("warning: --object is over the 50 characters API Entreprise advises; it is sent whole");
    }
    let (runtime, _sandbox) = connect(host, false).await?;
    let request = types::Request {
        endpoint: args.endpoint,
        version: args.version,
        params: args.values,
        query,
        trace: types::Trace {
            context: args.context,
            recipient: args.recipient,
            object: args.object,
            user_id: args.user_id,
        },
    };
    let started = std::time::Instant::now();
    match runtime.call(&request).await {
        Ok(response) => {
            let mut out = std::io::stdout().lock();
            if args.json {
                summary::write_json(&mut out, &response)?;
            } else {
                let endpoint = runtime.resolve(&request.endpoint, request.version);
                summary::write_summary(&mut out, endpoint, &response, started.elapsed())?;
            }
            if let Some(path) = &args.download {
                let Some(url) = response.document.as_ref().and_then(|d| d.url.as_deref()) else {
                    bail!("--download: this answer carries no document link");
                };
                let done = runtime.download(url, path).await?;
                eprintln!("document saved to {} ({} bytes)", done.path.display(), done.bytes);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let CallError::Client(client) = &e
                && matches!(client.0, types::Error::UnknownEndpoint(_))
                && std::io::stderr().is_terminal()
            {
                eprintln!("hint: `api-entreprise endpoints` lists the endpoint ids");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_endpoints(endpoints: &[types::Endpoint], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<_> = endpoints.iter().map(summary::endpoint_json).collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(());
    }
    for e in endpoints {
        let params: Vec<_> = e.params.iter().map(|p| format!("<{}>", p.name)).collect();
        writeln!(
            out,
            "{:<44} v{}{}  {:<8} {}  {}",
            e.id,
            e.version,
            if e.deprecated { " (deprecated)" } else { "             " },
            summary::kind_name(e.kind),
            params.join(" "),
            e.title
        )?;
    }
    Ok(())
}
