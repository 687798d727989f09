//! Runs the rows through a runtime: in input order, a few at a time, each
//! waiting for its slot in the runtime's quotas (which pace the batch: a
//! call refused for want of a slot waits for it and goes again, so nothing
//! is sent over a quota and no row is lost to one), each answered by one
//! line of the output.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_entreprise::{CallError, Runtime, types};

use crate::dedupe::{Duplicates, fingerprint};
use crate::input::{Row, to_json_line};
use crate::output::{Output, OutputError};
use crate::window::Window;

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The API answered with data.
    Found,
    /// The API answered 404: no such entity, or outside the endpoint's scope.
    NotFound,
    /// Refused before anything was sent: a row that is not a request, or
    /// input the component refused with the server's codes.
    RefusedLocally,
    /// Anything else: an API error, a timeout, a failed connection. These
    /// rows go to the file of rows to retry.
    Failed,
}

impl Outcome {
    /// Its name in the output and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::NotFound => "not-found",
            Self::RefusedLocally => "refused-locally",
            Self::Failed => "failed",
        }
    }
}

/// Where a batch stands.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Rows answered in this run (duplicates included).
    pub done: u64,
    /// Rows an earlier run had answered, skipped.
    pub resumed: u64,
    /// Rows answered by another row's call (the same request).
    pub duplicates: u64,
    /// Rows by outcome.
    pub outcomes: BTreeMap<Outcome, u64>,
    /// Rows whose answer carries each error code.
    pub codes: BTreeMap<String, u64>,
    /// Calls waiting for a circuit to close (a possible ban, a provider down).
    pub waiting_for_circuit: u64,
    /// Calls waiting for the quota store to come back, and what it said.
    pub waiting_for_store: Option<(u64, String)>,
    /// Outside the time window: until when (in its time zone), if so.
    pub paused_until: Option<String>,
    /// Since the run began.
    pub elapsed: Duration,
}

/// How the batch runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Calls in flight at most.
    pub jobs: usize,
    /// When calls may be sent, if not always.
    pub window: Option<Window>,
    /// How often progress is reported.
    pub every: Duration,
    /// Where the rows to retry go (JSON lines, this command's input format).
    pub retry_file: PathBuf,
    /// The requests the input holds more than once, found by a first pass
    /// ([`Duplicates::find`]); `None` (an input read once, such as standard
    /// input) remembers every request instead.
    pub duplicates: Option<Duplicates>,
}

/// What ends a batch early.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The output or the file of rows to retry could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The file of rows to retry could not be written.
    #[error("writing {path}: {error}")]
    Retry {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// What a call task hands back.
struct Answered {
    number: u64,
    key: String,
    request: types::Request,
    result: Result<types::Response, CallError>,
}

/// Runs `rows` through `runtime` into `output`, calling `report` with the
/// progress every `options.every` and at the end.
pub async fn run(
    runtime: Arc<Runtime>,
    rows: Box<dyn Iterator<Item = Row> + Send>,
    mut output: Output,
    options: Options,
    mut report: impl FnMut(&Progress),
) -> Result<Progress, BatchError> {
    let started = Instant::now();
    let jobs = options.jobs.max(1);
    // The window holds when a request leaves, not only when its row is
    // taken: a call that waited for a slot or a circuit may not leave past
    // the window's end.
    if let Some(window) = options.window.clone() {
        runtime.set_send_window(api_entreprise::policy::SendWindow(Arc::new(move || {
            window.wait().map(|until| {
                (
                    format!("the batch's window (--between) is closed until {}", until.label),
                    until.after,
                )
            })
        })));
    }
    // The input is read on a thread of its own, a few rows ahead.
    let (row_tx, mut row_rx) = tokio::sync::mpsc::channel::<Row>(jobs * 4);
    std::thread::spawn(move || {
        for row in rows {
            if row_tx.blocking_send(row).is_err() {
                return;
            }
        }
    });
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Answered>(jobs);
    let waiting = Arc::new(api_entreprise::paced::Waiting::default());
    let mut retry = RetryFile::new(options.retry_file.clone());
    let mut progress = Progress::default();
    // The first row sent for each repeated request: the others name it.
    let mut sent: HashMap<u64, u64> = HashMap::new();
    let remember = |fingerprint: u64| options.duplicates.as_ref().is_none_or(|d| d.is_repeated(fingerprint));
    let mut in_flight = 0usize;
    let mut input_done = false;
    let mut ticker = tokio::time::interval(options.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !(input_done && in_flight == 0) {
        tokio::select! {
            row = row_rx.recv(), if !input_done && in_flight < jobs => {
                let Some(row) = row else {
                    input_done = true;
                    continue;
                };
                let request = match row.request {
                    Ok(request) => request,
                    Err(why) => {
                        if output.is_done(row.number) {
                            progress.resumed += 1;
                        } else {
                            let line = [
                                ("row", row.number.into()),
                                ("key", row.key.into()),
                                ("outcome", Outcome::RefusedLocally.name().into()),
                                ("error", serde_json::json!({ "kind": "input", "codes": [], "message": why })),
                            ];
                            output.write(row.number, &line)?;
                            count(&mut progress, Outcome::RefusedLocally, &[]);
                        }
                        continue;
                    }
                };
                let fingerprint = fingerprint(&request);
                if output.is_done(row.number) {
                    // The retry file is made anew each run, from the
                    // journal: a row that failed before a crash is listed
                    // again, whatever the moment of the crash.
                    if output.failed_before(row.number) {
                        retry.push(&row.key, &request)?;
                    }
                    if remember(fingerprint) {
                        sent.entry(fingerprint).or_insert(row.number);
                    }
                    progress.resumed += 1;
                    continue;
                }
                if let Some(first) = sent.get(&fingerprint) {
                    let line = [("row", row.number.into()), ("key", row.key.into()), ("same_as", (*first).into())];
                    output.write(row.number, &line)?;
                    progress.duplicates += 1;
                    progress.done += 1;
                    continue;
                }
                if remember(fingerprint) {
                    sent.insert(fingerprint, row.number);
                }
                if let Some(window) = &options.window {
                    while let Some(until) = window.wait() {
                        progress.paused_until = Some(until.label.clone());
                        progress.elapsed = started.elapsed();
                        report(&progress);
                        output.sync()?;
                        tokio::time::sleep(until.after).await;
                    }
                    progress.paused_until = None;
                }
                in_flight += 1;
                let (runtime, done_tx, waiting) = (runtime.clone(), done_tx.clone(), waiting.clone());
                tokio::spawn(async move {
                    let result = api_entreprise::paced::call(&runtime, &request, &waiting).await;
                    let _ = done_tx
                        .send(Answered { number: row.number, key: row.key, request, result })
                        .await;
                });
            }
            Some(answered) = done_rx.recv(), if in_flight > 0 => {
                in_flight -= 1;
                let (outcome, line, codes) = answer_line(&answered);
                output.write(answered.number, &line)?;
                count(&mut progress, outcome, &codes);
                if outcome == Outcome::Failed {
                    retry.push(&answered.key, &answered.request)?;
                }
            }
            _ = ticker.tick() => {
                (progress.waiting_for_circuit, progress.waiting_for_store) = waiting.now();
                progress.elapsed = started.elapsed();
                report(&progress);
            }
        }
    }
    output.sync()?;
    retry.finish()?;
    progress.waiting_for_circuit = 0;
    progress.waiting_for_store = None;
    progress.elapsed = started.elapsed();
    report(&progress);
    Ok(progress)
}

fn count(progress: &mut Progress, outcome: Outcome, codes: &[String]) {
    progress.done += 1;
    *progress.outcomes.entry(outcome).or_default() += 1;
    for code in codes {
        *progress.codes.entry(code.clone()).or_default() += 1;
    }
}

/// The output line of an answered row, its outcome and its codes.
fn answer_line(a: &Answered) -> (Outcome, Vec<(&'static str, serde_json::Value)>, Vec<String>) {
    let raw = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap_or(serde_json::Value::Null);
    match &a.result {
        Ok(r) => {
            let line = vec![
                ("row", a.number.into()),
                ("key", a.key.clone().into()),
                ("outcome", Outcome::Found.name().into()),
                ("endpoint", a.request.endpoint.clone().into()),
                ("status", r.status.into()),
                ("request_id", r.request_id.clone().into()),
                ("data", raw(&r.data)),
                ("links", raw(&r.links)),
                ("meta", raw(&r.meta)),
            ];
            (Outcome::Found, line, Vec::new())
        }
        Err(e) => {
            let (outcome, kind, status, codes) = match e {
                CallError::Client(c) => {
                    let codes: Vec<String> = c.codes().into_iter().map(str::to_owned).collect();
                    let (outcome, kind) = match &c.0 {
                        types::Error::InvalidInput(_) => (Outcome::RefusedLocally, "invalid-input"),
                        types::Error::UnknownEndpoint(_) => (Outcome::RefusedLocally, "unknown-endpoint"),
                        types::Error::RefusedByHost(_) => (Outcome::RefusedLocally, "refused-by-host"),
                        types::Error::Api(api) if api.status == 404 => (Outcome::NotFound, "api"),
                        types::Error::Api(_) => (Outcome::Failed, "api"),
                        types::Error::Timeout(_) => (Outcome::Failed, "timeout"),
                        types::Error::QuotaExceeded(_) => (Outcome::Failed, "quota-exceeded"),
                        types::Error::Transport(_) => (Outcome::Failed, "transport"),
                        types::Error::Other(_) => (Outcome::Failed, "other"),
                    };
                    (outcome, kind, c.status(), codes)
                }
                CallError::Deadline(_) => (Outcome::Failed, "deadline", None, Vec::new()),
                CallError::Trap(_) => (Outcome::Failed, "trap", None, Vec::new()),
                CallError::RateLimited { .. } => (Outcome::Failed, "quota", None, Vec::new()),
                CallError::CircuitOpen { .. } => (Outcome::Failed, "circuit", None, Vec::new()),
                CallError::QuotaStoreUnavailable(_) => (Outcome::Failed, "quota-store", None, Vec::new()),
                CallError::TokenRefused { fault, .. } => {
                    (Outcome::Failed, "token", Some(401), vec![fault.code.clone()])
                }
                _ => (Outcome::Failed, "other", None, Vec::new()),
            };
            let line = vec![
                ("row", a.number.into()),
                ("key", a.key.clone().into()),
                ("outcome", outcome.name().into()),
                ("endpoint", a.request.endpoint.clone().into()),
                (
                    "error",
                    serde_json::json!({ "kind": kind, "status": status, "codes": codes, "message": e.to_string() }),
                ),
            ];
            (outcome, line, codes)
        }
    }
}

/// The rows to retry, as JSON lines this command reads back: made anew by
/// each run (created at the first row to list, the rows that failed in
/// earlier runs of the same output included), flushed to disk at the end;
/// a file left by an earlier run that has nothing to list is removed.
struct RetryFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl RetryFile {
    fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    fn failed(&self, error: std::io::Error) -> BatchError {
        BatchError::Retry {
            path: self.path.clone(),
            error,
        }
    }

    fn push(&mut self, key: &str, request: &types::Request) -> Result<(), BatchError> {
        if self.file.is_none() {
            let file = std::fs::File::create(&self.path).map_err(|e| self.failed(e))?;
            self.file = Some(file);
        }
        let mut line = serde_json::to_vec(&to_json_line(key, request)).unwrap_or_default();
        line.push(b'\n');
        match self.file.as_mut() {
            Some(file) => file.write_all(&line).map_err(|error| BatchError::Retry {
                path: self.path.clone(),
                error,
            }),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), BatchError> {
        match self.file.as_mut() {
            Some(file) => file.sync_data().map_err(|error| BatchError::Retry {
                path: self.path.clone(),
                error,
            }),
            None => match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.failed(e)),
                _ => Ok(()),
            },
        }
    }
}

/// The fastest pace `quotas` (each `(limit, window)`) allow, in calls a
/// second: the tightest of them.
pub fn quota_rate(quotas: &[(u32, Duration)]) -> Option<f64> {
    quotas
        .iter()
        .filter(|(_, window)| !window.is_zero())
        .map(|(limit, window)| f64::from(*limit) / window.as_secs_f64())
        .min_by(f64::total_cmp)
}

/// Calls in flight that keep up with `rate` calls a second when a call takes
/// up to a second, and no more: a few more than the rate, at least 2, at
/// most 16.
pub fn jobs_for(rate: f64) -> usize {
    (rate.ceil() as usize + 1).clamp(2, 16)
}
