//! `api-entreprise dossier`: what a procedure needs about one company or
//! association under an official use case, gathered into a folder with its
//! manifest (`host/dossier/`), and a table for a person at the end.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use api_entreprise::types;
use api_entreprise_catalogue as catalogue;
use api_entreprise_dossier::{Identifier, Manifest, Options, Outcome, Selection};

use crate::settings::{HostArgs, connect};

/// The exit status of a dossier gathered but incomplete.
pub const INCOMPLETE: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The entity: a SIREN (9 digits), a SIRET (14 digits) or an RNA
    /// number (W and 9 characters).
    id: String,
    /// The official use case the dossier is for (`endpoints --use-case`
    /// lists its endpoints): socle_de_base, marches_publics,
    /// aides_publiques, subventions_associations, fraude, editeur.
    #[arg(long, value_name = "ID")]
    use_case: String,
    /// The dossier's folder; if it holds the same dossier, only what is
    /// missing, failed or expiring is asked again [default:
    /// dossier-ID-USE_CASE].
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// The use case's optional endpoints too.
    #[arg(long)]
    with_optional: bool,
    /// Only these endpoints of the use case (ids, comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    only: Vec<String>,
    /// Leave these endpoints out (ids, comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    except: Vec<String>,
    /// Ask again for what stops being valid within DAYS (an attestation
    /// that a contract running longer needs renewed).
    #[arg(long, value_name = "DAYS", default_value_t = 0)]
    renew_within: u32,
    /// Also pack the folder into DIR.zip once gathered.
    #[arg(long)]
    zip: bool,
    /// Print the manifest (JSON) instead of the table.
    #[arg(long)]
    json: bool,
    /// The administrative frame of the calls, such as "marché 2026-042"
    /// (a profile's when left out).
    #[arg(long)]
    context: Option<String>,
    /// The SIRET of the public body that will use the data.
    #[arg(long)]
    recipient: Option<String>,
    /// The reason or the case number.
    #[arg(long)]
    object: Option<String>,
    /// Who asks; the DGFIP endpoints require it.
    #[arg(long)]
    user_id: Option<String>,
    /// Calls in flight at most (the quotas pace them whatever this says).
    #[arg(long, default_value_t = 16)]
    jobs: usize,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    let Some(use_case) = catalogue::use_case(&args.use_case) else {
        let known: Vec<&str> = catalogue::USE_CASES.iter().map(|u| u.id).collect();
        bail!(
            "--use-case {}: no such use case; the official ones are {}",
            args.use_case,
            known.join(", ")
        );
    };
    let identifier: Identifier = args.id.parse().map_err(anyhow::Error::msg)?;
    let profile = settings.profile()?.map(|(_, _, p)| p);
    let from_profile = |given: &Option<String>, default: Option<&String>| {
        given.clone().or_else(|| default.cloned()).unwrap_or_default()
    };
    let trace = types::Trace {
        context: from_profile(&args.context, profile.as_ref().and_then(|p| p.context.as_ref())),
        recipient: from_profile(&args.recipient, profile.as_ref().and_then(|p| p.recipient.as_ref())),
        object: from_profile(&args.object, profile.as_ref().and_then(|p| p.object.as_ref())),
        user_id: args.user_id.clone(),
    };
    let dir = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("dossier-{}-{}", identifier.value, use_case.id)));
    let options = Options {
        use_case,
        selection: Selection {
            with_optional: args.with_optional,
            only: args.only.clone(),
            except: args.except.clone(),
        },
        trace,
        renew_within_days: args.renew_within,
        jobs: args.jobs,
    };
    // What is wrong with the selection or the trace is said before the
    // runtime (and the built-in sandbox) starts: nothing is sent.
    api_entreprise_dossier::prepare(&options)?;
    let settings = settings.clone().with_default_retries(2);
    let (runtime, _sandbox) = connect(&settings, args.json).await?;
    let started = Instant::now();
    let verbose = !args.json;
    if verbose {
        eprintln!(
            "dossier of {identifier} under {} ({}) in {}",
            use_case.name,
            use_case.id,
            dir.display()
        );
    }
    let report = api_entreprise_dossier::gather(Arc::new(runtime), &identifier, &dir, &options, |item| {
        if verbose {
            let why = item
                .error
                .as_ref()
                .map(|e| format!(": {}", e.message))
                .unwrap_or_default();
            eprintln!("  {} v{}: {}{why}", item.endpoint, item.version, item.outcome.name());
        }
    })
    .await?;
    let elapsed = started.elapsed();
    if args.zip {
        let zip = PathBuf::from(format!("{}.zip", dir.display()));
        let bytes = api_entreprise_dossier::pack(&dir, &zip).with_context(|| format!("writing {}", zip.display()))?;
        if verbose {
            eprintln!("packed into {} ({bytes} bytes)", zip.display());
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report.manifest)?;
        writeln!(out)?;
    } else {
        eprintln!(
            "{} item(s) asked with {} call(s), {} kept from before, in {:.2} s",
            report.asked.len(),
            report.calls,
            report.kept.len(),
            elapsed.as_secs_f64()
        );
        table(&mut out, &report.manifest, &dir)?;
    }
    Ok(if report.manifest.summary.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INCOMPLETE)
    })
}

/// The dossier for a person: each item, until when it is valid, its file
/// or why it holds none; then whether it is complete.
fn table(out: &mut impl std::io::Write, manifest: &Manifest, dir: &std::path::Path) -> std::io::Result<()> {
    let rows: Vec<[String; 4]> = manifest
        .items
        .iter()
        .map(|i| {
            let what = match (&i.error, i.documents.first(), &i.data_file) {
                (Some(e), _, _) => e.message.lines().next().unwrap_or_default().to_owned(),
                (None, Some(doc), _) if i.documents.len() > 1 => {
                    format!("{} (+{} more)", doc.file, i.documents.len() - 1)
                }
                (None, Some(doc), _) => doc.file.clone(),
                (None, None, Some(data)) => data.clone(),
                (None, None, None) => String::new(),
            };
            [
                format!("{} v{}", i.endpoint, i.version),
                i.outcome.name().to_owned(),
                i.valid_until.clone().unwrap_or_else(|| "-".to_owned()),
                what,
            ]
        })
        .collect();
    let headers = ["ENDPOINT", "OUTCOME", "VALID UNTIL", "FILE, OR WHY NOT"];
    let width = |col: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .chain([headers[col].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    writeln!(
        out,
        "{:w0$}  {:w1$}  {:w2$}  {}",
        headers[0], headers[1], headers[2], headers[3]
    )?;
    for r in &rows {
        writeln!(out, "{:w0$}  {:w1$}  {:w2$}  {}", r[0], r[1], r[2], r[3])?;
    }
    let s = &manifest.summary;
    let held = manifest.items.iter().filter(|i| i.outcome.holds()).count();
    let documents = manifest.items.iter().filter(|i| i.outcome == Outcome::Document).count();
    writeln!(out)?;
    if s.complete {
        write!(out, "complete: {held} item(s), {documents} document(s)")?;
    } else {
        write!(
            out,
            "incomplete: {held} of {} item(s) held, {documents} document(s); missing: {}",
            manifest.items.len(),
            s.missing
                .iter()
                .map(|m| m.endpoint.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    if let Some(until) = &s.valid_until {
        write!(out, "; valid until {until} (the earliest attestation's end)")?;
    }
    writeln!(
        out,
        "\nmanifest: {}",
        dir.join(api_entreprise_dossier::manifest::FILE).display()
    )?;
    Ok(())
}
