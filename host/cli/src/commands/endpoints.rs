//! `api-entreprise endpoints`: the catalogue as the component describes it.

use std::io::Write;
use std::process::ExitCode;

use api_entreprise::types;
use api_entreprise_catalogue as catalogue;

use crate::settings::{HostArgs, connect};
use crate::summary;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print them as JSON.
    #[arg(long)]
    json: bool,
    /// Only the endpoints one of API Entreprise's use cases names, each
    /// marked recommended, optional or forbidden (socle_de_base,
    /// marches_publics, aides_publiques, subventions_associations, fraude,
    /// editeur).
    #[arg(long, value_name = "ID")]
    use_case: Option<String>,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let use_case = args.use_case.as_deref().map(crate::settings::use_case).transpose()?;
    let (runtime, _sandbox) = connect(settings, true).await?;
    print(&runtime.endpoints(), use_case, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print(endpoints: &[types::Endpoint], use_case: Option<&catalogue::UseCase>, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    // With a use case: the endpoints it names, and how.
    let stance = |e: &types::Endpoint| use_case.and_then(|u| u.stance(&e.id, e.version));
    let shown: Vec<&types::Endpoint> = endpoints
        .iter()
        .filter(|e| use_case.is_none() || stance(e).is_some())
        .collect();
    if json {
        let list: Vec<_> = shown
            .iter()
            .map(|e| {
                let mut json = summary::endpoint_json(e);
                if let (Some(stance), Some(object)) = (stance(e), json.as_object_mut()) {
                    object.insert("use_case".into(), stance.into());
                }
                json
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(());
    }
    if let Some(u) = use_case {
        writeln!(
            out,
            "{} ({}): {} recommended, {} optional, {} forbidden",
            u.name,
            u.id,
            u.recommended.len(),
            u.optional.len(),
            u.forbidden.len()
        )?;
    }
    for e in shown {
        let params: Vec<_> = e.params.iter().map(|p| format!("<{}>", p.name)).collect();
        let marked = stance(e).map(|s| format!("{s:<12} ")).unwrap_or_default();
        writeln!(
            out,
            "{marked}{:<44} v{}{}  {:<8} {}  {}",
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
