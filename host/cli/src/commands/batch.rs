//! `api-entreprise batch`: a CSV file or JSON lines through the API at the
//! quota's own pace, one JSON line per row in the output, resumable after a
//! crash by running the same command again (`host/batch/`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use api_entreprise_batch::{
    CsvMapping, Duplicates, Field, Format, Options, Outcome, Output, Progress, TraceDefaults, Window,
};
use api_entreprise_catalogue as catalogue;

use crate::settings::{HostArgs, connect};

/// Retries of transient failures when `--retries` is left at 0: a batch
/// should not give up a row on one 502.
const BATCH_RETRIES: u32 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The rows: a CSV file with a header line, or JSON lines (one request
    /// object a line: {"endpoint", "params": [...], "query"?: {...},
    /// "context"?, "recipient"?, "object"?, "user_id"?, "key"?}); `-` reads
    /// standard input.
    input: PathBuf,
    /// Where the answers go: one JSON line per row, in the order they come,
    /// each with its row number. If it exists, the batch resumes: the rows
    /// it holds are not sent again. With --dossier, the folder that holds
    /// a dossier per row.
    #[arg(short, long, value_name = "JSONL")]
    output: PathBuf,
    /// The input's format [default: CSV for a .csv file, else JSON lines].
    #[arg(long, value_enum)]
    format: Option<InputFormat>,
    /// CSV: the endpoint every row calls.
    #[arg(long)]
    endpoint: Option<String>,
    /// CSV: the endpoint version [default: the newest non-deprecated one].
    #[arg(long)]
    version: Option<u8>,
    /// CSV: the column of each path value, in the endpoint's order (repeat
    /// it) [default: the columns named as the endpoint's parameters, such as
    /// `siret`].
    #[arg(long = "column", value_name = "NAME")]
    columns: Vec<String>,
    /// The trace's context for every row (a profile's when left out).
    #[arg(long)]
    context: Option<String>,
    /// The recipient's SIRET for every row.
    #[arg(long)]
    recipient: Option<String>,
    /// The trace's object for every row.
    #[arg(long)]
    object: Option<String>,
    /// The user id for every row (DGFIP endpoints).
    #[arg(long)]
    user_id: Option<String>,
    /// CSV: take each row's context from this column instead.
    #[arg(long, value_name = "COLUMN")]
    context_column: Option<String>,
    /// CSV: take each row's recipient from this column instead.
    #[arg(long, value_name = "COLUMN")]
    recipient_column: Option<String>,
    /// CSV: take each row's object from this column instead.
    #[arg(long, value_name = "COLUMN")]
    object_column: Option<String>,
    /// CSV: take each row's user id from this column instead.
    #[arg(long, value_name = "COLUMN")]
    user_id_column: Option<String>,
    /// CSV: a query parameter for every row, NAME=VALUE (repeatable).
    #[arg(long = "query", value_name = "NAME=VALUE")]
    query: Vec<String>,
    /// CSV: a query parameter from a column, NAME=COLUMN (repeatable).
    #[arg(long = "query-column", value_name = "NAME=COLUMN")]
    query_columns: Vec<String>,
    /// Calls in flight at most [default: what the quota's pace needs].
    #[arg(long)]
    jobs: Option<usize>,
    /// Without a terminal, a progress line every this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    progress_every: u64,
    /// Send only between these hours, such as 20:00-07:00; outside them the
    /// batch pauses, says until when, and resumes by itself.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    between: Option<String>,
    /// The time zone of --between.
    #[arg(long, default_value = "Europe/Paris", value_name = "IANA")]
    time_zone: String,
    /// A dossier per row instead of one call (`dossier`): the CSV's
    /// identifiers (a SIREN, SIRET or RNA number, from --column, else the
    /// column siren, siret, rna or id, else the first) each gathered into
    /// OUTPUT/ID under --use-case, one JSON line per row on standard
    /// output; run again, complete dossiers cost no call and the others
    /// resume.
    #[arg(long, requires = "use_case")]
    dossier: bool,
    /// With --dossier: the official use case.
    #[arg(long, value_name = "ID", requires = "dossier")]
    use_case: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InputFormat {
    Csv,
    Jsonl,
}

pub async fn exec(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    if args.dossier {
        return dossiers(settings, args).await;
    }
    let profile = settings.profile()?.map(|(_, _, profile)| profile);
    let pick = |given: &Option<String>, default: Option<&String>| given.clone().or_else(|| default.cloned());
    let trace = [
        pick(&args.context, profile.as_ref().and_then(|p| p.context.as_ref())),
        pick(&args.recipient, profile.as_ref().and_then(|p| p.recipient.as_ref())),
        pick(&args.object, profile.as_ref().and_then(|p| p.object.as_ref())),
    ];
    let format = match args.format {
        Some(f) => f,
        None if args.input.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) => InputFormat::Csv,
        None => InputFormat::Jsonl,
    };
    let (format, endpoint) = match format {
        InputFormat::Jsonl => (
            Format::JsonLines(TraceDefaults {
                trace,
                user_id: args.user_id.clone(),
            }),
            None,
        ),
        InputFormat::Csv => {
            let mapping = csv_mapping(&args, trace)?;
            let endpoint = catalogue::find(&mapping.endpoint, mapping.version);
            (Format::Csv(mapping), endpoint)
        }
    };
    let window = args
        .between
        .as_deref()
        .map(|text| {
            let window = Window::parse(text, &args.time_zone).map_err(anyhow::Error::msg)?;
            // For tests: the window's clock starts at this instant.
            Ok::<_, anyhow::Error>(match std::env::var("API_ENTREPRISE_BATCH_CLOCK") {
                Ok(now) => window.starting_at(
                    now.parse()
                        .context("API_ENTREPRISE_BATCH_CLOCK is not an RFC 3339 instant")?,
                ),
                Err(_) => window,
            })
        })
        .transpose()?;
    if let Some(window) = &window {
        eprintln!("{}", window.describe());
    }
    // A file is read twice: first for its size and its repeated requests
    // (with little memory), then for the calls. Standard input, once.
    let open = || std::fs::File::open(&args.input).with_context(|| format!("reading {}", args.input.display()));
    let (reader, duplicates): (Box<dyn std::io::Read + Send>, _) = if args.input == Path::new("-") {
        (Box::new(std::io::stdin()), None)
    } else {
        let first = api_entreprise_batch::input::rows(open()?, format.clone())?;
        let duplicates = Duplicates::find(first).context("looking for repeated requests in the input")?;
        (Box::new(open()?), Some(duplicates))
    };
    let total = duplicates.as_ref().map(|d| d.rows);
    let rows = api_entreprise_batch::input::rows(reader, format)?;
    let (output, resumed) = Output::open(&args.output)?;
    if resumed.rows > 0 || resumed.cut_bytes > 0 {
        eprintln!(
            "resuming {}: {} row(s) already answered are not sent again{}",
            args.output.display(),
            resumed.rows,
            if resumed.cut_bytes > 0 {
                format!("; a last line cut short ({} bytes) was removed", resumed.cut_bytes)
            } else {
                String::new()
            }
        );
    }
    let retry_file = PathBuf::from(format!("{}.retry.jsonl", args.output.display()));
    // The pace: the tightest of the per-IP quotas and the endpoint's group
    // (the token's own limit when the profile has one).
    let mut quotas: Vec<(u32, Duration)> = settings.ip_quotas()?.iter().map(|q| (q.limit, q.window)).collect();
    let token_limit = profile.as_ref().and_then(|p| p.rate_limit_per_minute);
    match (token_limit, endpoint) {
        (Some(per_minute), _) => quotas.push((per_minute, Duration::from_secs(60))),
        (None, Some(e)) if !e.group.name.is_empty() && e.group.limit > 0 => {
            quotas.push((e.group.limit, Duration::from_secs(e.group.period_seconds.into())));
        }
        _ => {}
    }
    let rate = api_entreprise_batch::quota_rate(&quotas);
    let jobs = args
        .jobs
        .unwrap_or_else(|| rate.map_or(4, api_entreprise_batch::jobs_for));

    let settings = settings.clone().with_default_retries(BATCH_RETRIES);
    let (runtime, _sandbox) = connect(&settings, false).await?;
    let display = Display::new(total, resumed.rows, rate, Duration::from_secs(args.progress_every));
    let options = Options {
        jobs,
        window,
        every: display.every(),
        retry_file: retry_file.clone(),
        duplicates,
    };
    let progress = api_entreprise_batch::run(Arc::new(runtime), rows, output, options, |p| display.show(p)).await?;
    display.finish();
    Ok(summary(&progress, rate, &args.output, &retry_file))
}

/// The CSV mapping from the flags: the endpoint, its value columns, the
/// trace and query fields.
fn csv_mapping(args: &Args, trace: [Option<String>; 3]) -> anyhow::Result<CsvMapping> {
    let Some(endpoint) = args.endpoint.clone() else {
        bail!("a CSV input needs --endpoint (the endpoint every row calls, such as insee_etablissements)");
    };
    let Some(found) = catalogue::find(&endpoint, args.version) else {
        bail!("no endpoint `{endpoint}` in the catalogue; list them with `api-entreprise endpoints`");
    };
    let columns = if args.columns.is_empty() {
        found.params.iter().map(|(name, _)| (*name).to_owned()).collect()
    } else {
        args.columns.clone()
    };
    let field = |column: &Option<String>, value: Option<String>, flag: &str| match (column, value) {
        (Some(c), _) => Ok(Field::Column(c.clone())),
        (None, Some(v)) => Ok(Field::Fixed(v)),
        (None, None) if !found.needs_trace => Ok(Field::Fixed(String::new())),
        (None, None) => bail!("every row needs its {flag}: give --{flag} (or --{flag}-column, or a profile's)"),
    };
    let [context, recipient, object] = trace;
    let pair = |text: &String, what: &str| {
        text.split_once('=')
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .with_context(|| format!("--{what} {text:?} is not NAME=VALUE"))
    };
    let mut query = Vec::new();
    for q in &args.query {
        let (name, value) = pair(q, "query")?;
        query.push((name, Field::Fixed(value)));
    }
    for q in &args.query_columns {
        let (name, column) = pair(q, "query-column")?;
        query.push((name, Field::Column(column)));
    }
    Ok(CsvMapping {
        endpoint,
        version: args.version,
        columns,
        trace: [
            field(&args.context_column, context, "context")?,
            field(&args.recipient_column, recipient, "recipient")?,
            field(&args.object_column, object, "object")?,
        ],
        user_id: match (&args.user_id_column, &args.user_id) {
            (Some(c), _) => Some(Field::Column(c.clone())),
            (None, Some(v)) => Some(Field::Fixed(v.clone())),
            (None, None) => None,
        },
        query,
    })
}

/// The progress: a bar at a terminal, a log line every `--progress-every`
/// otherwise.
struct Display {
    bar: Option<indicatif::ProgressBar>,
    rate: Option<f64>,
    total: Option<u64>,
    log_every: Duration,
}

impl Display {
    fn new(total: Option<u64>, resumed: u64, rate: Option<f64>, log_every: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(total) => indicatif::ProgressBar::new(total),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows {per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(resumed);
            bar
        });
        Self {
            bar,
            rate,
            total,
            log_every,
        }
    }

    fn every(&self) -> Duration {
        if self.bar.is_some() {
            Duration::from_millis(200)
        } else {
            self.log_every
        }
    }

    fn show(&self, p: &Progress) {
        let n = |o: Outcome| p.outcomes.get(&o).copied().unwrap_or(0);
        let counts = format!(
            "found {} · not found {} · refused {} · failed {}",
            n(Outcome::Found),
            n(Outcome::NotFound),
            n(Outcome::RefusedLocally),
            n(Outcome::Failed)
        );
        let left = self.total.map(|t| t.saturating_sub(p.done + p.resumed));
        let eta = match (left, self.rate) {
            (Some(left), Some(rate)) if rate > 0.0 => {
                format!(
                    " · ETA {} at the quota's pace",
                    human(Duration::from_secs_f64(left as f64 / rate))
                )
            }
            _ => String::new(),
        };
        let state = match (&p.paused_until, &p.waiting_for_store, p.waiting_for_circuit) {
            (Some(until), _, _) => format!(" · paused until {until}"),
            (None, Some((n, why)), _) => format!(" · {n} call(s) wait: {why}"),
            (None, None, n) if n > 0 => {
                format!(" · {n} call(s) wait for a circuit to close (the API or a provider is down)")
            }
            _ => String::new(),
        };
        match &self.bar {
            Some(bar) => {
                bar.set_position(p.done + p.resumed);
                bar.set_message(format!("{counts}{eta}{state}"));
            }
            None => eprintln!(
                "batch: {} row(s) answered{} in {} ({counts}){eta}{state}",
                p.done,
                if p.resumed > 0 {
                    format!(" (+{} resumed)", p.resumed)
                } else {
                    String::new()
                },
                human(p.elapsed)
            ),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The summary on stderr, and the exit status: non-zero when a row failed
/// or was refused.
fn summary(p: &Progress, rate: Option<f64>, output: &Path, retry: &Path) -> ExitCode {
    let n = |o: Outcome| p.outcomes.get(&o).copied().unwrap_or(0);
    eprintln!(
        "batch done in {}: {} row(s) answered in {}{}{}",
        human(p.elapsed),
        p.done,
        output.display(),
        if p.resumed > 0 {
            format!(", {} answered by an earlier run", p.resumed)
        } else {
            String::new()
        },
        if p.duplicates > 0 {
            format!(", {} the same request as an earlier row (\"same_as\")", p.duplicates)
        } else {
            String::new()
        }
    );
    eprintln!(
        "  found {} · not found {} · refused locally {} · failed {}",
        n(Outcome::Found),
        n(Outcome::NotFound),
        n(Outcome::RefusedLocally),
        n(Outcome::Failed)
    );
    if !p.codes.is_empty() {
        let codes: Vec<String> = p.codes.iter().map(|(c, k)| format!("{c} ×{k}")).collect();
        eprintln!("  error codes: {}", codes.join(", "));
    }
    let sent = n(Outcome::Found) + n(Outcome::NotFound) + n(Outcome::Failed);
    let seconds = p.elapsed.as_secs_f64();
    if sent > 0 && seconds > 0.0 {
        let effective = sent as f64 / seconds;
        match rate {
            // A batch smaller than a quota's window passes in a burst,
            // faster than the quota's average pace.
            Some(rate) => eprintln!(
                "  {effective:.2} calls/s against the quota's pace of {rate:.2}/s ({:.0}%{})",
                100.0 * effective / rate,
                if effective > rate {
                    ": within one window's burst"
                } else {
                    ""
                }
            ),
            None => eprintln!("  {effective:.2} calls/s"),
        }
    }
    let (refused, failed) = (n(Outcome::RefusedLocally), n(Outcome::Failed));
    if failed > 0 {
        eprintln!(
            "  rows to retry: {} (run `api-entreprise batch {} -o NEW.jsonl`)",
            retry.display(),
            retry.display()
        );
    }
    if refused + failed == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "error: {failed} row(s) failed (API errors, timeouts, connections) and {refused} were refused locally (bad input, with the server's codes)"
    );
    ExitCode::FAILURE
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `batch --dossier`: a dossier per row of a CSV file, one after the
/// other (each with its calls in parallel at the quotas' pace), into
/// `OUTPUT/ID`, one JSON line per row on standard output.
async fn dossiers(settings: &HostArgs, args: Args) -> anyhow::Result<ExitCode> {
    use api_entreprise_dossier::{Identifier, Options, Selection};
    let use_case = crate::settings::use_case(args.use_case.as_deref().unwrap_or_default())?;
    let profile = settings.profile()?.map(|(_, _, profile)| profile);
    let pick = |given: &Option<String>, default: Option<&String>| {
        given.clone().or_else(|| default.cloned()).unwrap_or_default()
    };
    let options = Options {
        use_case,
        selection: Selection::default(),
        trace: api_entreprise::types::Trace {
            context: pick(&args.context, profile.as_ref().and_then(|p| p.context.as_ref())),
            recipient: pick(&args.recipient, profile.as_ref().and_then(|p| p.recipient.as_ref())),
            object: pick(&args.object, profile.as_ref().and_then(|p| p.object.as_ref())),
            user_id: args.user_id.clone(),
        },
        renew_within_days: 0,
        jobs: args.jobs.unwrap_or(16),
    };
    api_entreprise_dossier::prepare(&options)?;
    let mut reader =
        csv::Reader::from_path(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let headers: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let column = match args.columns.first() {
        Some(name) => headers.iter().position(|h| h == name).with_context(|| {
            format!(
                "--column {name}: {} has no such column ({})",
                args.input.display(),
                headers.join(", ")
            )
        })?,
        None => headers
            .iter()
            .position(|h| ["siren", "siret", "rna", "id"].contains(&h.to_lowercase().as_str()))
            .unwrap_or(0),
    };
    // Every identifier is checked before anything is sent.
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: row {}", args.input.display(), n + 1))?;
        let text = record.get(column).unwrap_or_default();
        let id: Identifier = text
            .parse()
            .map_err(|why| anyhow::anyhow!("{}: row {}: {why}; nothing was sent", args.input.display(), n + 1))?;
        rows.push(id);
    }
    let (runtime, _sandbox) = connect(settings, false).await?;
    let runtime = Arc::new(runtime);
    let mut incomplete = 0;
    let mut out = std::io::stdout().lock();
    for (n, id) in rows.iter().enumerate() {
        let dir = args.output.join(&id.value);
        let report = api_entreprise_dossier::gather(runtime.clone(), id, &dir, &options, |_| {}).await?;
        let summary = &report.manifest.summary;
        if !summary.complete {
            incomplete += 1;
        }
        let line = serde_json::json!({
            "row": n + 1,
            "id": id.value,
            "folder": dir,
            "complete": summary.complete,
            "missing": summary.missing,
            "valid_until": summary.valid_until,
            "asked": report.asked.len(),
            "kept": report.kept.len(),
            "calls": report.calls,
        });
        use std::io::Write as _;
        writeln!(out, "{line}")?;
    }
    eprintln!(
        "{} dossier(s) under {} in {}: {} complete, {incomplete} incomplete",
        rows.len(),
        use_case.id,
        args.output.display(),
        rows.len() - incomplete
    );
    Ok(if incomplete == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::dossier::INCOMPLETE)
    })
}
