//! `api-entreprise endpoints`: the catalogue as the component describes it.

use std::io::Write;
use std::process::ExitCode;

use api_entreprise::types;

use crate::settings::{HostArgs, connect};
use crate::summary;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print them as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let (runtime, _sandbox) = connect(settings, true).await?;
    print(&runtime.endpoints(), args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print(endpoints: &[types::Endpoint], json: bool) -> anyhow::Result<()> {
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
