//! `api-entreprise component`: ship a new client version. `check` compares
//! it with the one in use (contract, catalogue, canary) and installs
//! nothing; `install` checks, then keeps it in the components directory as
//! the current version (every later command uses it, a running `serve`
//! swaps to it); `rollback` returns to the one before; `list` shows them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use api_entreprise::{ComponentSource, Runtime, RuntimeBuilder, SwapReport};

use crate::settings::HostArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Check a client component against the one in use, installing nothing:
    /// the contract, the catalogue, and the canary (both versions on the
    /// same sample requests and recorded answers). Exits with status 1 if a
    /// swap to it would be refused.
    Check {
        /// The new client component (.wasm).
        file: PathBuf,
    },
    /// Check a client component, then keep it in the components directory
    /// as the current version: later `call`, `serve`… use it, and a running
    /// `serve` swaps to it.
    Install {
        /// The new client component (.wasm).
        file: PathBuf,
        /// Install it even though the canary found traps or successes and
        /// errors that swap places (the report still shows them).
        #[arg(long)]
        accept_differences: bool,
    },
    /// Make the version installed before the current one current again (with
    /// only one installed, the built-in client).
    Rollback,
    /// List the installed versions, the current one marked.
    List,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let components = settings.components()?;
    match args.action {
        Action::Check { file } => {
            let report = check(settings, &file).await?;
            println!("{report}");
            Ok(if report.refused() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Action::Install {
            file,
            accept_differences,
        } => {
            let report = check(settings, &file).await?;
            println!("{report}");
            if report.refused() && !accept_differences {
                eprintln!(
                    "error: not installed: the canary refuses it (above); fix the component, or install it with \
                     --accept-differences if these differences are wanted"
                );
                return Ok(ExitCode::FAILURE);
            }
            let kept = components.install(&file, &report.candidate)?;
            println!(
                "installed  {} as {}: the current client version",
                report.candidate,
                kept.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Action::Rollback => {
            let (withdrawn, now) = components.rollback()?;
            match now {
                Some(name) => println!("rolled back: {withdrawn} withdrawn, {name} is current"),
                None => println!("rolled back: {withdrawn} withdrawn, the built-in client is current"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::List => {
            let history = components.history()?;
            if history.is_empty() {
                println!("none installed: the built-in client is current");
            }
            for (i, name) in history.iter().enumerate() {
                let mark = if i + 1 == history.len() { "* " } else { "  " };
                println!("{mark}{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The checks of a swap from the component in use to `file`. Nothing is
/// sent: no token, and the canary's functions reach no network.
async fn check(settings: &HostArgs, file: &std::path::Path) -> anyhow::Result<SwapReport> {
    let mut builder = RuntimeBuilder::new(api_entreprise::PRODUCTION_BASE_URL).component(settings.component_source()?);
    if let Some(dir) = settings.cache_dir() {
        builder = builder.cache_dir(dir);
    }
    let runtime: Runtime = builder.build().await.context("loading the client component in use")?;
    Ok(runtime.check_component(&ComponentSource::File(file.to_owned())).await?)
}
