//! Gathering a dossier: the entity's identity first, then every other
//! endpoint in parallel as far as the quotas allow, each document
//! downloaded as soon as its link comes back, checked and hashed, the
//! manifest written after each item.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use api_entreprise::{CallError, DownloadError, Runtime, types};
use api_entreprise_catalogue::{Endpoint, Kind as EndpointKind, UseCase};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::identifier::Identifier;
use crate::manifest::{self, Document, Item, ItemError, Manifest, Outcome, Trace};
use crate::plan::{self, Known, Planned, Selection};

/// How to gather a dossier.
#[derive(Debug, Clone)]
pub struct Options {
    /// The use case it is for.
    pub use_case: &'static UseCase,
    /// Which of its endpoints.
    pub selection: Selection,
    /// The trace of every call (the DGFIP's need `user_id`).
    pub trace: types::Trace,
    /// Ask again what stops being valid within this many days.
    pub renew_within_days: u32,
    /// Calls in flight at most.
    pub jobs: usize,
}

/// What stops a dossier before or while it is gathered. An item that
/// fails does not: it is recorded as failed, and asked again next time.
#[derive(Debug, thiserror::Error)]
pub enum DossierError {
    /// The input is wrong: nothing was sent.
    #[error("{0}")]
    Input(String),
    /// The folder cannot be read or written.
    #[error("{0}")]
    Folder(String),
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The manifest as written.
    pub manifest: Manifest,
    /// Items asked in this run.
    pub asked: Vec<String>,
    /// Items kept from an earlier run.
    pub kept: Vec<String>,
    /// Calls to the API in this run.
    pub calls: u32,
}

/// Gathers the dossier of `identifier` into `dir` (created if need be),
/// resuming what a manifest there already holds, and calls `on_item` as
/// each item ends.
pub async fn gather(
    runtime: Arc<Runtime>,
    identifier: &Identifier,
    dir: &Path,
    options: &Options,
    mut on_item: impl FnMut(&Item),
) -> Result<Report, DossierError> {
    let planned = prepare(options)?;
    let order: Vec<&str> = planned.iter().map(|p| p.endpoint.id).collect();
    let folder = |what: &str, e: &dyn std::fmt::Display| DossierError::Folder(format!("{what} {}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("documents")).map_err(|e| folder("creating", &e))?;
    std::fs::create_dir_all(dir.join("data")).map_err(|e| folder("creating", &e))?;
    // One gathering at a time per folder, across processes: the lock goes
    // with the process, crash included.
    let lock = std::fs::File::create(dir.join(".lock")).map_err(|e| folder("locking", &e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(DossierError::Input(format!(
                "another process is gathering the dossier in {}: wait for it to end, or give another folder",
                dir.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(folder("locking", &e)),
    }
    let today = time::OffsetDateTime::now_utc().date();
    let now = rfc3339(SystemTime::now());
    let mut manifest = match Manifest::read(dir).map_err(DossierError::Folder)? {
        Some(m) if m.identifier != identifier.value || m.use_case != options.use_case.id => {
            return Err(DossierError::Input(format!(
                "{} holds the dossier of {} under `{}`, not of {identifier} under `{}`: give another folder",
                dir.display(),
                m.identifier,
                m.use_case,
                options.use_case.id
            )));
        }
        Some(m) => m,
        None => Manifest {
            format: manifest::FORMAT,
            identifier: identifier.value.clone(),
            identifier_kind: identifier.kind,
            use_case: options.use_case.id.to_owned(),
            use_case_name: options.use_case.name.to_owned(),
            entity: Known::of(identifier),
            trace: Trace {
                context: options.trace.context.clone(),
                recipient: options.trace.recipient.clone(),
                object: options.trace.object.clone(),
            },
            created_at: now.clone(),
            updated_at: now,
            items: Vec::new(),
            summary: manifest::Summary::default(),
        },
    };
    let renew_by = today + time::Duration::days(i64::from(options.renew_within_days));
    let (mut kept, mut to_ask) = (Vec::new(), Vec::new());
    for p in &planned {
        let before = manifest.items.iter().find(|i| i.endpoint == p.endpoint.id);
        match before {
            Some(item) if still_good(item, p.endpoint, dir, renew_by) => kept.push(p.endpoint.id.to_owned()),
            _ => to_ask.push(*p),
        }
    }
    let mut report = Report {
        manifest: manifest.clone(),
        asked: Vec::new(),
        kept,
        calls: 0,
    };
    // The identity first: what it tells (an association? the head office?)
    // decides what the others are asked with.
    // Those that cannot be asked yet (a SIRET that a head office will give)
    // wait for the second round, and so does an associations' register
    // until INSEE says the entity is one (it goes first for an RNA number).
    let (first, rest): (Vec<Planned>, Vec<Planned>) = to_ask.into_iter().partition(|p| {
        plan::tells_identity(p.endpoint)
            && plan::values(p.endpoint, &manifest.entity, today).is_ok()
            && (!plan::for_associations_only(p.endpoint) || manifest.entity.association == Some(true))
    });
    let limit = Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1)));
    for phase in [first, rest] {
        let mut tasks = JoinSet::new();
        for p in phase {
            let values = match plan::values(p.endpoint, &manifest.entity, today) {
                Ok(values) => values,
                Err(why) => {
                    let mut item = blank(&p, Vec::new());
                    let (outcome, kind) = match why {
                        plan::Unasked::NotApplicable(_) => (Outcome::NotApplicable, "not-applicable"),
                        plan::Unasked::NeedsInput(_) => (Outcome::NeedsInput, "needs-input"),
                    };
                    item.outcome = outcome;
                    item.error = Some(ItemError {
                        kind: kind.into(),
                        codes: Vec::new(),
                        message: why.to_string(),
                        retryable: false,
                        retry_at: None,
                    });
                    record(&mut manifest, dir, item, &order, &mut on_item, &mut report)?;
                    continue;
                }
            };
            let calls_before = manifest
                .items
                .iter()
                .find(|i| i.endpoint == p.endpoint.id)
                .map_or(0, |i| i.calls);
            let (runtime, limit, dir, trace) = (runtime.clone(), limit.clone(), dir.to_owned(), options.trace.clone());
            tasks.spawn(async move {
                let _slot = limit.acquire_owned().await;
                let (mut item, data) = ask(&runtime, &p, values, trace, &dir).await;
                item.calls += calls_before;
                (item, data)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (item, data) = done.map_err(|e| DossierError::Folder(format!("an item's task failed: {e}")))?;
            if let Some(data) = &data {
                manifest.entity.learn(data);
            }
            record(&mut manifest, dir, item, &order, &mut on_item, &mut report)?;
        }
    }
    manifest.summarise();
    manifest.write(dir).map_err(|e| folder("writing the manifest in", &e))?;
    report.manifest = manifest;
    Ok(report)
}

/// The endpoints `options` asks for, or what is wrong with them or the
/// trace, before anything is sent.
pub fn prepare(options: &Options) -> Result<Vec<Planned>, DossierError> {
    let planned = plan::plan(options.use_case, &options.selection).map_err(DossierError::Input)?;
    check_trace(&options.trace, &planned)?;
    Ok(planned)
}

/// Refuses, before anything is sent, a trace the API would refuse on
/// every item.
fn check_trace(trace: &types::Trace, planned: &[Planned]) -> Result<(), DossierError> {
    let mut missing = Vec::new();
    for (name, value) in [
        ("--context", &trace.context),
        ("--recipient", &trace.recipient),
        ("--object", &trace.object),
    ] {
        if value.trim().is_empty() {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(DossierError::Input(format!(
            "every call of a dossier needs its trace: give {} (or a --profile that has them); nothing was sent",
            missing.join(", ")
        )));
    }
    let recipient: Result<Identifier, _> = trace.recipient.parse();
    if !recipient.is_ok_and(|r| r.kind == crate::identifier::Kind::Siret) {
        return Err(DossierError::Input(format!(
            "--recipient {:?} is not a SIRET: it is the SIRET of the public body that will use the data; nothing was sent",
            trace.recipient
        )));
    }
    let dgfip: Vec<&str> = planned
        .iter()
        .filter(|p| p.endpoint.requires_user_id)
        .map(|p| p.endpoint.id)
        .collect();
    if !dgfip.is_empty() && trace.user_id.as_deref().is_none_or(|u| u.trim().is_empty()) {
        return Err(DossierError::Input(format!(
            "{} need(s) --user-id (who asks, as the DGFIP requires); give it, or leave them out with --except; nothing was sent",
            dgfip.join(", ")
        )));
    }
    Ok(())
}

/// Whether an earlier run's item is kept: it holds its answer (or a
/// not-found), in the version planned now, its files are there with their
/// hashes, and it stays valid past `renew_by`.
fn still_good(item: &Item, e: &Endpoint, dir: &Path, renew_by: time::Date) -> bool {
    let answered = item.outcome.holds() || item.outcome == Outcome::NotFound;
    let files_intact = item
        .documents
        .iter()
        .all(|d| std::fs::read(dir.join(&d.file)).is_ok_and(|bytes| sha256_hex(&bytes) == d.sha256))
        && item.data_file.as_ref().is_none_or(|f| dir.join(f).is_file());
    let valid = item
        .valid_until
        .as_deref()
        .and_then(manifest::date)
        .is_none_or(|until| until > renew_by);
    answered && item.version == e.version && files_intact && valid
}

fn blank(p: &Planned, params: Vec<String>) -> Item {
    Item {
        endpoint: p.endpoint.id.to_owned(),
        version: p.endpoint.version,
        title: p.endpoint.title.to_owned(),
        provider: p.endpoint.provider.to_owned(),
        stance: p.stance.to_owned(),
        params,
        outcome: Outcome::Failed,
        at: None,
        status: None,
        request_id: None,
        data_file: None,
        documents: Vec::new(),
        valid_from: None,
        valid_until: None,
        issued_on: None,
        error: None,
        calls: 0,
    }
}

/// Puts `item` in the manifest in the plan's place, writes it, says it.
fn record(
    manifest: &mut Manifest,
    dir: &Path,
    item: Item,
    order: &[&str],
    on_item: &mut impl FnMut(&Item),
    report: &mut Report,
) -> Result<(), DossierError> {
    if item.calls > 0 {
        report.asked.push(item.endpoint.clone());
        report.calls += item.calls
            - manifest
                .items
                .iter()
                .find(|i| i.endpoint == item.endpoint)
                .map_or(0, |i| i.calls);
    }
    on_item(&item);
    match manifest.items.iter_mut().find(|i| i.endpoint == item.endpoint) {
        Some(old) => *old = item,
        None => manifest.items.push(item),
    }
    // In the use case's order, whatever order the answers came in.
    manifest
        .items
        .sort_by_key(|i| order.iter().position(|o| *o == i.endpoint).unwrap_or(usize::MAX));
    manifest.updated_at = rfc3339(SystemTime::now());
    manifest.summarise();
    manifest
        .write(dir)
        .map_err(|e| DossierError::Folder(format!("writing the manifest in {}: {e}", dir.display())))
}

/// One item: the call, then its documents; a link found expired is asked
/// for again, once. Gives the item and the answer's `data`.
async fn ask(
    runtime: &Runtime,
    p: &Planned,
    values: Vec<String>,
    trace: types::Trace,
    dir: &Path,
) -> (Item, Option<serde_json::Value>) {
    let mut item = blank(p, values.clone());
    let request = types::Request {
        endpoint: p.endpoint.id.to_owned(),
        version: Some(p.endpoint.version),
        params: values,
        query: Vec::new(),
        trace,
    };
    let waiting = api_entreprise::paced::Waiting::default();
    let mut fresh_link_asked = false;
    loop {
        item.calls += 1;
        let result = api_entreprise::paced::call(runtime, &request, &waiting).await;
        item.at = Some(rfc3339(SystemTime::now()));
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                failed(&mut item, &e);
                return (item, None);
            }
        };
        item.status = Some(response.status);
        item.request_id = response.request_id.clone();
        let data: serde_json::Value = serde_json::from_str(&response.data).unwrap_or_default();
        let envelope = serde_json::json!({
            "data": data,
            "links": serde_json::from_str::<serde_json::Value>(&response.links).unwrap_or_default(),
            "meta": serde_json::from_str::<serde_json::Value>(&response.meta).unwrap_or_default(),
            "request_id": response.request_id,
        });
        let data_file = format!("data/{}.json", p.endpoint.id);
        let text = serde_json::to_vec_pretty(&envelope).unwrap_or_default();
        if let Err(e) = api_entreprise::atomic::write(&dir.join(&data_file), &text) {
            item.error = Some(error("write", &format!("writing {data_file}: {e}"), false));
            return (item, Some(data));
        }
        item.data_file = Some(data_file);
        item.documents.clear();
        let mut links: Vec<(String, String)> = Vec::new();
        if let Some(doc) = &response.document {
            item.valid_from = doc.valid_from.clone();
            item.valid_until = doc.valid_until.clone();
            item.issued_on = doc.issued_on.clone();
            match &doc.url {
                Some(url) => links.push(("/document_url".to_owned(), url.clone())),
                None if p.endpoint.kind == EndpointKind::Document => {
                    item.outcome = Outcome::RefusedByProvider;
                    let label = doc.status_label.clone().or_else(|| doc.status.clone());
                    let why = label.unwrap_or_else(|| "the answer carries no document".to_owned());
                    item.error = Some(error("refused", &why, true));
                    return (item, Some(data));
                }
                None => {}
            }
        }
        // The document's link is also among the answer's files: once.
        for f in &response.files {
            if let Some(url) = &f.url
                && !links.iter().any(|(_, u)| u == url)
            {
                links.push((f.pointer.clone(), url.clone()));
            }
        }
        match download_all(runtime, p.endpoint.id, &links, dir).await {
            Ok(documents) => {
                item.outcome = if documents.is_empty() {
                    Outcome::Data
                } else if p.endpoint.kind == EndpointKind::Document {
                    Outcome::Document
                } else {
                    Outcome::Data
                };
                item.documents = documents;
                item.error = None;
                return (item, Some(data));
            }
            Err(Fetch::Expired(why)) if !fresh_link_asked => {
                tracing::info!(target: "api_entreprise::dossier", "{}: {why}; asking for a fresh link", p.endpoint.id);
                fresh_link_asked = true;
            }
            Err(Fetch::Expired(why)) => {
                let message = format!("{why}, and again with a fresh link: ask again later");
                item.error = Some(error("download", &message, true));
                return (item, Some(data));
            }
            Err(Fetch::Failed(why)) => {
                item.error = Some(error("download", &why, true));
                return (item, Some(data));
            }
        }
    }
}

enum Fetch {
    /// A link had expired before its download.
    Expired(String),
    /// Anything else.
    Failed(String),
}

/// Downloads each link (never with the token), checks what came (a PDF or
/// a ZIP, not empty), names it after the endpoint and hashes it.
async fn download_all(
    runtime: &Runtime,
    id: &str,
    links: &[(String, String)],
    dir: &Path,
) -> Result<Vec<Document>, Fetch> {
    let mut documents = Vec::with_capacity(links.len());
    for (n, (pointer, url)) in links.iter().enumerate() {
        let stem = if links.len() == 1 {
            id.to_owned()
        } else {
            format!("{id}-{}", n + 1)
        };
        let partial = dir.join("documents").join(format!("{stem}.download"));
        match runtime.download(url, &partial).await {
            Ok(_) => {}
            // A link to a web page (Légifrance, an association's account),
            // not to a document host: it stays a link in the data.
            Err(DownloadError::NotAllowed(host)) => {
                tracing::debug!(target: "api_entreprise::dossier", "{id}: {pointer} is on {host}, not a document host: kept as a link");
                continue;
            }
            Err(DownloadError::Status { status: 404 | 410, .. }) => {
                let _ = std::fs::remove_file(&partial);
                return Err(Fetch::Expired(format!(
                    "the link at {pointer} had expired before its download"
                )));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(Fetch::Failed(format!("downloading {pointer}: {e}")));
            }
        }
        let bytes =
            std::fs::read(&partial).map_err(|e| Fetch::Failed(format!("reading {}: {e}", partial.display())))?;
        let Some(kind) = signature(&bytes) else {
            let _ = std::fs::remove_file(&partial);
            let start = String::from_utf8_lossy(&bytes[..bytes.len().min(16)]).into_owned();
            return Err(Fetch::Failed(format!(
                "{pointer}: the file ({} bytes, starting {start:?}) is neither a PDF nor a ZIP",
                bytes.len()
            )));
        };
        let file = format!("documents/{stem}.{kind}");
        std::fs::rename(&partial, dir.join(&file)).map_err(|e| Fetch::Failed(format!("naming {file}: {e}")))?;
        documents.push(Document {
            file,
            kind: kind.to_owned(),
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            pointer: pointer.clone(),
        });
    }
    Ok(documents)
}

/// `pdf` or `zip` from a file's first bytes; `None` for anything else (an
/// HTML error page, an empty file).
pub fn signature(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") && bytes.len() > 64 {
        Some("pdf")
    } else if bytes.starts_with(b"PK\x03\x04") {
        Some("zip")
    } else {
        None
    }
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn error(kind: &str, message: &str, retryable: bool) -> ItemError {
    ItemError {
        kind: kind.to_owned(),
        codes: Vec::new(),
        message: message.to_owned(),
        retryable,
        retry_at: None,
    }
}

/// The item of a call that failed: not found, or failed with its codes
/// and when to ask again.
fn failed(item: &mut Item, e: &CallError) {
    let mut err = error("other", &e.to_string(), true);
    match e {
        CallError::Client(client) => {
            err.kind = client.case().to_owned();
            err.codes = client.codes().into_iter().map(str::to_owned).collect();
            item.status = client.status();
            if let types::Error::Api(api) = &client.0 {
                item.request_id = api.request_id.clone();
                err.retryable = api.retryable;
                err.retry_at = api
                    .retry_after_seconds
                    .map(|s| rfc3339(SystemTime::now() + Duration::from_secs(u64::from(s))));
                if api.status == 404 {
                    item.outcome = Outcome::NotFound;
                }
            } else {
                err.retryable = !matches!(
                    client.0,
                    types::Error::InvalidInput(_) | types::Error::UnknownEndpoint(_)
                );
            }
        }
        CallError::Deadline(_) => err.kind = "timeout".into(),
        CallError::TokenRefused { fault, .. } => {
            err.kind = "token".into();
            err.codes = vec![fault.code.clone()];
        }
        CallError::Trap(_) => err.kind = "trap".into(),
        _ => {}
    }
    item.error = Some(err);
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Packs the dossier in `dir` into the ZIP file `dest` (written whole or
/// not at all), its manifest first.
pub fn pack(dir: &Path, dest: &Path) -> std::io::Result<u64> {
    let mut files: Vec<PathBuf> = vec![PathBuf::from(manifest::FILE)];
    for sub in ["data", "documents"] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "download"))
            .filter_map(|p| p.strip_prefix(dir).ok().map(Path::to_path_buf))
            .collect();
        names.sort();
        files.extend(names);
    }
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for file in &files {
            let name = file.to_string_lossy().replace('\\', "/");
            zip.start_file(name, options).map_err(std::io::Error::other)?;
            std::io::copy(&mut std::fs::File::open(dir.join(file))?, &mut zip)?;
        }
        zip.finish().map_err(std::io::Error::other)?;
    }
    let bytes = buffer.into_inner();
    api_entreprise::atomic::write(dest, &bytes)?;
    Ok(bytes.len() as u64)
}
