//! `api-entreprise sandbox`: the simulated API on loopback until stopped.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};

#[derive(Debug, clap::Args)]
pub struct Args {
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
    /// Behave as the real API past its per-IP quota: past this many
    /// requests in any window (`N/DURATION`, such as `1000/1m`; the free
    /// health routes apart) the IP is banned, and gets no HTTP answer at
    /// all for `--ban-seconds`. Off by default.
    #[arg(long, value_name = "N/DURATION")]
    ban: Option<api_entreprise::QuotaSpec>,
    /// How long a ban lasts (the real API's: 12 hours).
    #[arg(long, value_name = "SECONDS", default_value_t = 12 * 3600)]
    ban_seconds: u64,
    /// How long a document link lives before it answers 404 (the real
    /// API's: about 24 hours).
    #[arg(long, value_name = "SECONDS", default_value_t = api_entreprise_sandbox::DEFAULT_LINK_LIFETIME.as_secs())]
    link_lifetime: u64,
    /// Delay every API answer by this many milliseconds (a provider's
    /// latency; 0 by default).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
}

pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        port,
        token,
        tls_ca_out,
        ban,
        ban_seconds,
        link_lifetime,
        latency_ms,
    } = args;
    let sandbox = Sandbox::start(SandboxConfig {
        addr: ([127, 0, 0, 1], port).into(),
        token,
        tls: tls_ca_out.is_some(),
    })
    .await
    .with_context(|| format!("starting the sandbox on 127.0.0.1:{port}"))?;
    if let Some(quota) = ban {
        sandbox.set_ban(Some(api_entreprise_sandbox::Ban {
            limit: quota.limit,
            window: quota.window,
            length: std::time::Duration::from_secs(ban_seconds),
        }));
        println!("past {quota} it bans the IP for {ban_seconds} s: no answer at all");
    }
    sandbox.set_latency(std::time::Duration::from_millis(latency_ms));
    sandbox.set_link_lifetime(std::time::Duration::from_secs(link_lifetime));
    if let (Some(path), Some(pem)) = (&tls_ca_out, sandbox.ca_pem()) {
        std::fs::write(path, pem).with_context(|| format!("writing the sandbox's CA to {}", path.display()))?;
        println!("its CA certificate: {} (pass it to --ca-cert)", path.display());
    }
    println!("sandbox listening on {}", sandbox.base_url());
    println!("requests it received: {}/__sandbox/requests", sandbox.base_url());
    println!("known entities (every endpoint answers for them):");
    for e in api_entreprise_sandbox::entities::ENTITIES {
        let rna = e.rna.map(|r| format!(", RNA {r}")).unwrap_or_default();
        println!("  SIREN {} / SIRET {}{rna}: {}", e.siren, e.siret, e.name);
    }
    std::io::stdout().flush()?;
    tokio::select! {
        () = sandbox.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(ExitCode::SUCCESS)
}
