//! A simulated API Entreprise on loopback.
//!
//! It behaves like the real server for what a client can observe: it checks
//! the bearer token, then the traceability parameters (all missing ones in
//! one 422), then the recipient, then the path values, in the server's order
//! (API-ENTREPRISE.md §1); it serves the staging fixtures; it sends
//! `RateLimit-*` and `X-Request-ID` on every answer and counts per-token
//! quotas in fixed one-minute windows like the server.
//!
//! It also records every request it receives (the token's value left out)
//! and shows them at `GET /__sandbox/requests`, so tests can prove what was
//! and was not sent. `GET /__sandbox/echo-authorization` plays a careless
//! server that sends the `Authorization` header back.
//!
//! Beyond the data routes it serves `/privileges` (today's body shape) and
//! `/v2/privileges` (the older flat one), the free health routes (`/pings`,
//! `/ping/<provider>`), the plain-text 410 of the removed `/v2/*` routes,
//! and a maintenance window switched on with [`Sandbox::set_maintenance`].
//! Document links in the fixtures (GitHub, object storage, the file proxy,
//! the INPI) are rewritten to `/__sandbox/files/EXPIRY-N/…` on the sandbox
//! itself, which serves a small real PDF (one page naming the link) for any
//! such path until the link expires (24 hours unless
//! [`Sandbox::set_link_lifetime`] says otherwise), then 404 as an expired
//! link; it logs the SHA-256 of every file it serves
//! ([`Sandbox::files_served`], `GET /__sandbox/files-served`). The validity
//! dates of the attestations are made current: delivered today, valid six
//! months. A few known entities ([`entities::ENTITIES`]) answer every
//! endpoint as a company, an association, a refused and an unknown company
//! would, so that a whole dossier works offline.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = api_entreprise_sandbox::Sandbox::start(Default::default()).await?;
//! println!("serving on {}", sandbox.base_url());
//! # Ok(()) }
//! ```

pub mod entities;
pub mod fixtures;
mod pdf;
pub mod routes;
mod tls;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The token the sandbox accepts unless told otherwise. Not a secret: it
/// only opens this local simulation.
pub const DEFAULT_TOKEN: &str = "sandbox-token-not-a-secret";

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// The only bearer token accepted.
    pub token: String,
    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost`,
    /// signed by a CA generated at start ([`Sandbox::ca_pem`]).
    pub tls: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: DEFAULT_TOKEN.to_owned(),
            tls: false,
        }
    }
}

/// The API's per-IP quota as the sandbox enforces it, off by default: past
/// `limit` requests in any `window` (the free health routes apart), the
/// IP is banned for `length`, during which every request gets no HTTP
/// answer at all (the connection stays open, silent), as a banned IP
/// experiences the real API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// Requests allowed in any window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
    /// How long a ban lasts (12 hours at the real API).
    pub length: Duration,
}

/// The sandbox's per-IP count, and its ban.
#[derive(Debug, Default)]
struct BanState {
    rule: Option<Ban>,
    /// Arrivals in the current window, the oldest first.
    arrivals: std::collections::VecDeque<std::time::Instant>,
    until: Option<std::time::Instant>,
}

/// How long a document link lives unless told otherwise: the API's 24 hours.
pub const DEFAULT_LINK_LIFETIME: Duration = Duration::from_secs(86_400);

/// A file the sandbox served at a document link.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ServedFile {
    /// The link's path.
    pub path: String,
    /// The SHA-256 of the bytes served, in lowercase hex.
    pub sha256: String,
    /// How many bytes.
    pub bytes: u64,
}

/// One request as the sandbox received it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RecordedRequest {
    /// When it arrived, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The headers; `authorization` shows only its scheme (`Bearer <redacted>`).
    pub headers: Vec<(String, String)>,
    /// Whether it carried the sandbox's token.
    pub authorized: bool,
    /// Which token it carried, never the token: the first 12 hex digits of
    /// its SHA-256 ([`token_fingerprint`]), so that a test can tell whose
    /// request it was.
    #[serde(default)]
    pub token: Option<String>,
    /// The HTTP version it came in (`HTTP/1.1`, `HTTP/2.0`).
    #[serde(default)]
    pub version: String,
    /// The status the sandbox answered (0: none, the IP being banned).
    pub status: u16,
}

/// What [`RecordedRequest::token`] holds for `token`.
pub fn token_fingerprint(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug)]
struct Shared {
    /// The tokens it takes: the configured one, and those a test added (a
    /// renewal: the old and the new one both work until one is revoked).
    tokens: Mutex<Vec<String>>,
    base_url: String,
    /// When the current maintenance window ends, if one is on.
    maintenance_until: Mutex<Option<SystemTime>>,
    /// The scopes `/privileges` lists, when a test set them.
    scopes: Mutex<Option<Vec<String>>>,
    /// Identifiers whose data requests fail with a 500, when a test set them.
    failing: Mutex<Vec<String>>,
    /// The code by which the token is refused (expired, blacklisted…), when
    /// a test set one.
    token_fault: Mutex<Option<&'static str>>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Requests per (group, window start) for the `RateLimit-*` headers.
    windows: Mutex<HashMap<(&'static str, u64), u32>>,
    latency_ms: AtomicU64,
    /// A per-token limit that replaces every group's (0: none).
    rate_limit: AtomicU64,
    /// Requests received, counted on arrival (before any latency).
    received: AtomicU64,
    /// How long a document link lives, in seconds.
    link_lifetime: AtomicU64,
    /// Links still to give out already expired.
    expired_links: AtomicU64,
    /// The number of the next link given out.
    next_link: AtomicU64,
    /// Every file served.
    served: Mutex<Vec<ServedFile>>,
    /// The per-IP quota past which it bans, and the ban.
    ban: Mutex<BanState>,
    next_id: AtomicU64,
    /// TCP connections accepted.
    connections: AtomicU64,
    /// TLS handshakes completed.
    handshakes: AtomicU64,
}

/// A running sandbox; stops when dropped.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    ca_pem: Option<String>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sandbox {
    /// Binds and starts serving in the background of the current Tokio runtime.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        let addr = listener.local_addr()?;
        let tls = if config.tls {
            Some(tls::generate().map_err(std::io::Error::other)?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            tokens: Mutex::new(vec![config.token]),
            ban: Mutex::default(),
            base_url: format!("{scheme}://{addr}"),
            maintenance_until: Mutex::default(),
            failing: Mutex::default(),
            token_fault: Mutex::default(),
            scopes: Mutex::default(),
            requests: Mutex::default(),
            windows: Mutex::default(),
            latency_ms: AtomicU64::new(0),
            rate_limit: AtomicU64::new(0),
            received: AtomicU64::new(0),
            link_lifetime: AtomicU64::new(DEFAULT_LINK_LIFETIME.as_secs()),
            expired_links: AtomicU64::new(0),
            next_link: AtomicU64::new(1),
            served: Mutex::default(),
            next_id: AtomicU64::new(1),
            connections: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
        });
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let acceptor = tls.map(|t| t.acceptor);
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                serving.connections.fetch_add(1, Ordering::Relaxed);
                let shared = Arc::clone(&serving);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let counters = Arc::clone(&shared);
                    let service = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match acceptor {
                        None => server.serve_connection(TokioIo::new(stream), service).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            counters.handshakes.fetch_add(1, Ordering::Relaxed);
                            server.serve_connection(TokioIo::new(stream), service).await
                        }
                    };
                });
            }
        });
        Ok(Self {
            addr,
            shared,
            task,
            ca_pem,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS), to use as the API
    /// base URL.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The PEM of the CA that signed the sandbox's certificate, with TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// How many TCP connections the sandbox accepted.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// How many TLS handshakes completed.
    pub fn handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::Relaxed)
    }

    /// How many requests arrived, answered or not yet (the log of
    /// [`Sandbox::requests`] holds the answered ones).
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Delays every API answer by `latency` (the health of a slow provider).
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_ms
            .store(latency.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Gives the token its own per-minute limit for every group, as the real
    /// API does for tokens with a custom `rate_limit_per_minute`; `None`
    /// restores `throttle.yml`'s.
    pub fn set_rate_limit(&self, limit: Option<u32>) {
        self.shared
            .rate_limit
            .store(limit.map_or(0, u64::from), Ordering::Relaxed);
    }

    /// The scopes `/privileges` lists for the token (by default every scope
    /// of the catalogue); `None` restores the default.
    pub fn set_scopes(&self, scopes: Option<Vec<String>>) {
        *self.shared.scopes.lock().unwrap() = scopes;
    }

    /// Makes every data request whose path holds one of `identifiers` fail
    /// with a 500 `00500` (each time it is sent), or none when empty.
    pub fn set_failing(&self, identifiers: Vec<String>) {
        *self.shared.failing.lock().unwrap() = identifiers;
    }

    /// Bans past `rule`'s per-IP quota from now on, or never (`None`, the
    /// default; it also lifts a ban under way).
    pub fn set_ban(&self, rule: Option<Ban>) {
        *self.shared.ban.lock().unwrap() = BanState {
            rule,
            ..BanState::default()
        };
    }

    /// How long the ban under way still lasts, if one is.
    pub fn banned_for(&self) -> Option<Duration> {
        let now = std::time::Instant::now();
        let until = self.shared.ban.lock().unwrap().until?;
        (now < until).then(|| until - now)
    }

    /// Takes `token` too, as the API takes a renewed token beside the old
    /// one until that one expires.
    pub fn accept_token(&self, token: &str) {
        self.shared.tokens.lock().unwrap().push(token.to_owned());
    }

    /// Stops taking `token` (its requests get the API's 401 `00101`).
    pub fn revoke_token(&self, token: &str) {
        self.shared.tokens.lock().unwrap().retain(|t| t != token);
    }

    /// Refuses the token on every request that needs one, as the API does
    /// an expired (`00103`), blacklisted (`00105`), unknown (`00106`) or
    /// invalid (`00101`) one; `None` takes it again.
    pub fn set_token_fault(&self, code: Option<&'static str>) {
        *self.shared.token_fault.lock().unwrap() = code;
    }

    /// Puts every provider in maintenance for `length` (data routes answer
    /// 503 `XX020` with `meta.retry_in`; pings say `maintenance`), or ends it.
    pub fn set_maintenance(&self, length: Option<Duration>) {
        *self.shared.maintenance_until.lock().unwrap() = length.map(|l| SystemTime::now() + l);
    }

    /// How long the document links given from now on live (24 hours by
    /// default); past it they answer 404, as an expired link does.
    pub fn set_link_lifetime(&self, lifetime: Duration) {
        self.shared.link_lifetime.store(lifetime.as_secs(), Ordering::Relaxed);
    }

    /// Gives the next `n` document links already expired (a link that
    /// lapsed before its download).
    pub fn expire_next_links(&self, n: u64) {
        self.shared.expired_links.store(n, Ordering::Relaxed);
    }

    /// Every file served at a document link so far, oldest first.
    pub fn files_served(&self) -> Vec<ServedFile> {
        self.shared.served.lock().unwrap().clone()
    }

    /// Runs until the process is stopped.
    pub async fn wait(self) {
        let task = &mut { self }.task;
        let _ = task.await;
    }
}

type Answer = Response<Full<Bytes>>;

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn json_answer(status: StatusCode, body: &serde_json::Value) -> Answer {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn error_answer(status: StatusCode, errors: Vec<serde_json::Value>) -> Answer {
    json_answer(status, &json!({ "errors": errors }))
}

fn error(code: &str, title: &str, detail: &str, parameter: Option<&str>) -> serde_json::Value {
    json!({
        "code": code,
        "title": title,
        "detail": detail,
        "source": parameter.map(|p| json!({ "parameter": p })),
        "meta": {},
    })
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_owned();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    if path == "/__sandbox/requests" {
        let requests = shared.requests.lock().unwrap().clone();
        return json_answer(StatusCode::OK, &json!(requests));
    }
    if path == "/__sandbox/files-served" {
        let served = shared.served.lock().unwrap().clone();
        return json_answer(StatusCode::OK, &json!(served));
    }
    if path == "/__sandbox/echo-authorization" {
        // A careless server that sends the credentials back: the host must
        // scrub them before the guest sees the answer.
        let mut res = json_answer(StatusCode::OK, &json!({}));
        if let Some(value) = req.headers().get(header::AUTHORIZATION) {
            res.headers_mut().insert(header::AUTHORIZATION, value.clone());
        }
        return res;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorized = bearer.is_some_and(|b| shared.tokens.lock().unwrap().iter().any(|t| t == b));
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = if name == header::AUTHORIZATION {
                let scheme = value.to_str().ok().and_then(|v| v.split(' ').next()).unwrap_or("");
                format!("{scheme} <redacted>")
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect();

    shared.received.fetch_add(1, Ordering::Relaxed);
    let record = RecordedRequest {
        at_unix_ms: 0,
        method: req.method().to_string(),
        path,
        query,
        headers,
        authorized,
        token: bearer.map(token_fingerprint),
        version: format!("{:?}", req.version()),
        status: 0,
    };
    let log = |mut record: RecordedRequest, status: u16| {
        record.at_unix_ms = now().as_millis().try_into().unwrap_or(u64::MAX);
        record.status = status;
        shared.requests.lock().unwrap().push(record);
    };
    if banned(shared, &record.path) {
        // Logged with no status (0): it gets no answer, ever.
        log(record, 0);
        return std::future::pending().await;
    }
    let latency = shared.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let mut answer = answer(shared, &record.path, &record.query, authorized);
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    answer.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_str(&format!("sandbox-{id:08}")).expect("ascii"),
    );
    log(record, answer.status().as_u16());
    answer
}

/// Whether a request to `path` arriving now gets no answer: a ban is under
/// way, or this request is past the per-IP quota and starts one. The free
/// health routes count against nothing (as the hosts count them), but a
/// banned IP gets no answer to them either.
fn banned(shared: &Shared, path: &str) -> bool {
    let now = std::time::Instant::now();
    let mut state = shared.ban.lock().unwrap();
    let Some(rule) = state.rule else { return false };
    if state.until.is_some_and(|until| now < until) {
        return true;
    }
    if api_entreprise_catalogue::policy_of(path).free {
        return false;
    }
    while state
        .arrivals
        .front()
        .is_some_and(|t| now.duration_since(*t) >= rule.window)
    {
        state.arrivals.pop_front();
    }
    if state.arrivals.len() >= rule.limit as usize {
        state.until = Some(now + rule.length);
        state.arrivals.clear();
        return true;
    }
    state.arrivals.push_back(now);
    false
}

/// Prefixes of the document links in the fixtures, served by the sandbox itself.
const FILE_HOSTS: &[&str] = &[
    "https://raw.githubusercontent.com/",
    "https://storage.entreprise.api.gouv.fr/",
    "https://entreprise.api.gouv.fr/proxy/",
    "https://entreprise.api.gouv.fr/files/",
    // The placeholders of the associations' fixtures.
    "https://entreprise.api.gouv.fr/url-",
    "https://data.inpi.fr/",
];

/// A document link's file: a one-page PDF naming it while the link lives
/// (its first segment is `EXPIRY-N`, the Unix second it expires at and its
/// number; a path without one never expires), else the 404 of an expired
/// link. Each file served is logged with its hash.
fn file(shared: &Shared, file: &str) -> Answer {
    let expiry = file
        .split('/')
        .next()
        .and_then(|first| first.split_once('-'))
        .and_then(|(expiry, _)| expiry.parse::<u64>().ok());
    if expiry.is_some_and(|expiry| now().as_secs() >= expiry) {
        let mut res = Response::new(Full::new(Bytes::from_static(b"Not Found: this link has expired")));
        *res.status_mut() = StatusCode::NOT_FOUND;
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return res;
    }
    let name = file.rsplit('/').next().unwrap_or(file);
    let body = pdf::document(&[
        "API Entreprise sandbox",
        &format!("Document: {name}"),
        &format!("Link: {file}"),
        &format!("Served at: {}", iso8601(now())),
        "Fictional data for tests: not a real attestation.",
    ]);
    shared.served.lock().unwrap().push(ServedFile {
        path: format!("/__sandbox/files/{file}"),
        sha256: pdf::sha256_hex(&body),
        bytes: body.len() as u64,
    });
    let mut res = Response::new(Full::new(Bytes::from(body)));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    res
}

/// `payload` with each document link moved to the sandbox, each with its
/// own number and expiry.
fn relink(shared: &Shared, payload: &str) -> String {
    let mut out = String::with_capacity(payload.len());
    let mut rest = payload;
    loop {
        let next = FILE_HOSTS
            .iter()
            .filter_map(|host| rest.find(host).map(|at| (at, host.len())))
            .min();
        let Some((at, len)) = next else {
            out.push_str(rest);
            return out;
        };
        let expired = shared
            .expired_links
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let lifetime = if expired {
            0
        } else {
            shared.link_lifetime.load(Ordering::Relaxed)
        };
        let n = shared.next_link.fetch_add(1, Ordering::Relaxed);
        out.push_str(&rest[..at]);
        out.push_str(&format!(
            "{}/__sandbox/files/{}-{n}/",
            shared.base_url,
            now().as_secs() + lifetime
        ));
        rest = &rest[at + len..];
    }
}

/// The attestations' dates made current: delivered today, valid from
/// today for six months (the URSSAF's), so that a dossier made today holds
/// attestations valid today. Other answers are left as they are.
fn current_dates(payload: String) -> String {
    let Ok(mut body) = serde_json::from_str::<serde_json::Value>(&payload) else {
        return payload;
    };
    let Some(data) = body.get_mut("data").and_then(|d| d.as_object_mut()) else {
        return payload;
    };
    let today = time::OffsetDateTime::now_utc().date();
    let in_six_months = today.checked_add(time::Duration::days(182)).unwrap_or(today);
    let mut changed = false;
    for (field, date) in [
        ("date_debut_validite", today),
        ("date_fin_validite", in_six_months),
        ("date_delivrance_attestation", today),
    ] {
        if let Some(value) = data.get_mut(field).filter(|v| v.is_string()) {
            *value = json!(date.to_string());
            changed = true;
        }
    }
    if changed { body.to_string() } else { payload }
}

/// The answer to an API request, in the real server's order of checks.
fn answer(shared: &Shared, path: &str, query: &[(String, String)], authorized: bool) -> Answer {
    if let Some(path) = path.strip_prefix("/__sandbox/files/") {
        return file(shared, path);
    }
    if path == "/pings" || path.starts_with("/ping/") || path == "/v2/ping" {
        return health(shared, path);
    }
    if let Some(code) = *shared.token_fault.lock().unwrap()
        && authorized
    {
        return token_refused(code);
    }
    if path == "/privileges" || path == "/v2/privileges" {
        if !authorized {
            return unauthorized();
        }
        let scopes: Vec<String> = shared
            .scopes
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| SCOPES.iter().map(|s| (*s).to_owned()).collect());
        // Today's server nests the list under `data`; the older shape is flat.
        let body = if path == "/privileges" {
            json!({ "data": { "privileges": scopes } })
        } else {
            json!({ "privileges": scopes })
        };
        return json_answer(StatusCode::OK, &body);
    }
    let Some((route, values)) = routes::matching(path) else {
        // Removed v2 routes answer a plain-text 410; unknown ones Rails'
        // plain-text 404, token or not.
        let (status, text) = if path.starts_with("/v2/") {
            (StatusCode::GONE, "Cette version de l'API n'est plus disponible")
        } else {
            (StatusCode::NOT_FOUND, "Not Found")
        };
        let mut res = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *res.status_mut() = status;
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return res;
    };
    if !authorized {
        return unauthorized();
    }
    let (limit, remaining, reset) = count(shared, &route);
    let mut res = checked_answer(shared, &route, &values, query, remaining);
    let h = res.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(limit));
    h.insert("ratelimit-remaining", HeaderValue::from(remaining.unwrap_or(0)));
    h.insert("ratelimit-reset", HeaderValue::from(reset));
    if remaining.is_none() {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(reset.saturating_sub(now().as_secs()).max(1)),
        );
    }
    res
}

/// The scopes of the sandbox's token: every scope that opens an endpoint of
/// the catalogue (`authorizations.yml`), like the staging token's.
const SCOPES: &[&str] = &[
    "associations",
    "associations_djepva",
    "associations_donnees_protegees",
    "attestation_cotisations_conges_payes_chomage_intemperies_cibtp_cnetp",
    "attestation_fiscale_dgfip",
    "attestation_sociale_urssaf",
    "attestations_fiscales",
    "attestations_sociales",
    "beneficiaires_effectifs_inpi",
    "bilans_bdf",
    "bilans_entreprise_bdf",
    "certificat_cnetp",
    "certificat_opqibi",
    "certificat_rge_ademe",
    "certification_cnetp",
    "certification_opqibi",
    "certifications_qualiopi_france_competences",
    "chiffre_affaires_dgfip",
    "conventions_collectives",
    "cotisations_msa",
    "cotisations_probtp",
    "data_subvention_subventions",
    "effectifs_urssaf",
    "entreprises",
    "entreprises_artisanales",
    "eori_douanes",
    "etablissements",
    "exercices",
    "extraits_rcs",
    "fntp_carte_pro",
    "liasse_fiscale",
    "liasses_fiscales_dgfip",
    "liens_capitalistiques_dgfip",
    "mandataires_sociaux_infogreffe",
    "msa_cotisations",
    "open_data",
    "probtp",
    "qualibat",
    "unites_legales_etablissements_insee",
];

fn unauthorized() -> Answer {
    error_answer(
        StatusCode::UNAUTHORIZED,
        vec![error(
            "00101",
            "Interdit",
            "Votre token n'est pas valide ou n'est pas renseigné",
            Some("token"),
        )],
    )
}

/// The API's answer to a token it refuses, by code (the error catalogue's).
fn token_refused(code: &str) -> Answer {
    let (title, detail) = match code {
        "00103" => ("Jeton expiré", "Votre token est expiré. Vous devez refaire une demande"),
        "00105" => (
            "Jeton sur liste noire",
            "Votre jeton est sur liste noire, celui-ci a certainement été divulgué sur un canal non-sécurisé. Vous pouvez trouver un jeton valide sur votre espace personnel: https://entreprise.api.gouv.fr/compte",
        ),
        "00106" => (
            "Jeton non trouvé",
            "Votre jeton n'a pas été trouvé dans la base de données. Il s'agit probablement d'un jeton sans habilitation.",
        ),
        _ => return unauthorized(),
    };
    error_answer(
        StatusCode::UNAUTHORIZED,
        vec![error(code, title, detail, Some("token"))],
    )
}

fn maintenance_left(shared: &Shared) -> Option<Duration> {
    let until = (*shared.maintenance_until.lock().unwrap())?;
    until.duration_since(SystemTime::now()).ok()
}

fn iso8601(t: Duration) -> String {
    let t = i64::try_from(t.as_secs()).unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The free health routes: no token, no quota.
fn health(shared: &Shared, path: &str) -> Answer {
    let now = iso8601(now());
    let status = |provider: &str| match maintenance_left(shared) {
        Some(left) => json!({ "provider": provider, "status": "maintenance", "last_update": now,
                              "last_ok_status": now, "until": iso8601(now_plus(left)) }),
        None => json!({ "provider": provider, "status": "ok", "last_update": now, "last_ok_status": now }),
    };
    if path == "/pings" {
        let mut providers: Vec<&str> = routes::all().map(|r| r.provider()).collect();
        providers.sort_unstable();
        providers.dedup();
        return json_answer(
            StatusCode::OK,
            &json!(providers.iter().map(|p| status(p)).collect::<Vec<_>>()),
        );
    }
    let provider = path.strip_prefix("/ping/").unwrap_or("api_entreprise");
    json_answer(StatusCode::OK, &status(provider))
}

fn now_plus(d: Duration) -> Duration {
    now() + d
}

/// Counts a request against its group's fixed one-minute window, as the
/// server does: `(limit, remaining or None when over, reset timestamp)`.
fn count(shared: &Shared, route: &routes::Route) -> (u32, Option<u32>, u64) {
    let now = now().as_secs();
    let start = now - now % 60;
    let mut windows = shared.windows.lock().unwrap();
    windows.retain(|(_, s), _| *s == start);
    let used = windows.entry((route.group, start)).or_default();
    *used += 1;
    let limit = match shared.rate_limit.load(Ordering::Relaxed) {
        0 => route.limit,
        custom => u32::try_from(custom).unwrap_or(u32::MAX),
    };
    let remaining = limit.checked_sub(*used);
    (limit, remaining, start + 60)
}

fn this_year() -> i32 {
    i64::try_from(now().as_secs())
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or(1970, |d| d.year())
}

fn checked_answer(
    shared: &Shared,
    route: &routes::Route,
    values: &[(String, String)],
    query: &[(String, String)],
    remaining: Option<u32>,
) -> Answer {
    if remaining.is_none() {
        return error_answer(
            StatusCode::TOO_MANY_REQUESTS,
            vec![error(
                "00429",
                "Trop de requêtes",
                "Vous avez effectué trop de requêtes",
                None,
            )],
        );
    }
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    let mut missing = Vec::new();
    for (name, code) in [("context", "00201"), ("recipient", "00203"), ("object", "00202")] {
        if get(name).is_none() {
            let detail = format!("Le paramètre {name} est obligatoire");
            missing.push(error(code, "Entité non traitable", &detail, Some(name)));
        }
    }
    if !missing.is_empty() {
        return error_answer(StatusCode::UNPROCESSABLE_ENTITY, missing);
    }
    if !get("recipient").is_some_and(validate::is_siret) {
        return error_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![error(
                "00210",
                "Entité non traitable",
                "Le paramètre recipient n'est pas un siret valide",
                Some("recipient"),
            )],
        );
    }
    let dgfip = route.provider() == "dgfip";
    let year = this_year();
    // The server stops at the first bad value.
    let fault = values
        .iter()
        .filter_map(|(name, value)| Some((name, validate::path_fault(name, value, dgfip, year)?)))
        .chain(
            query
                .iter()
                .filter_map(|(name, value)| Some((name, validate::query_fault(name, value)?))),
        )
        .next();
    if let Some((name, code)) = fault {
        let detail = format!("Le paramètre {name} n'est pas correctement formatté");
        return error_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![error(code, "Entité non traitable", &detail, Some(name))],
        );
    }
    if values.iter().any(|(_, v)| shared.failing.lock().unwrap().contains(v)) {
        return error_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec![error(
                "00500",
                "Erreur interne",
                "the sandbox was told to fail this identifier",
                None,
            )],
        );
    }
    if let Some(left) = maintenance_left(shared) {
        let code = format!("{}020", route.provider_code());
        let mut err = error(
            &code,
            "Maintenance du fournisseur de données",
            "Le fournisseur de données est en maintenance, réessayez après la fin de la fenêtre",
            None,
        );
        err["meta"] = json!({ "provider": route.provider(), "retry_in": left.as_secs().max(1) });
        return error_answer(StatusCode::SERVICE_UNAVAILABLE, vec![err]);
    }
    let by_name: BTreeMap<String, String> = values.iter().chain(query).cloned().collect();
    let mut fixture = fixtures::find(&route.operation, &by_name);
    if let Some(entity) = entities::of(values) {
        match entity.answer(route.provider(), &route.operation) {
            entities::Answer::Default => {
                fixture = fixtures::find(&route.operation, &BTreeMap::new());
            }
            entities::Answer::Fixture(file) => {
                fixture = fixtures::all()
                    .get(route.operation.as_str())
                    .and_then(|all| all.iter().find(|f| f.file == file))
                    .or(fixture);
            }
            entities::Answer::NotFound => {
                let code = format!("{}003", route.provider_code());
                let detail = "Le siret ou siren indiqué n'existe pas, n'est pas connu ou ne comporte aucune information pour cet appel";
                return error_answer(
                    StatusCode::NOT_FOUND,
                    vec![error(&code, "Entité non trouvée", detail, None)],
                );
            }
            entities::Answer::ProviderError(code) => {
                let mut err = error(
                    code,
                    "Potentielle ressource non trouvée",
                    "Le serveur a renvoyé une erreur interne, mais cela peut aussi indiquer que l'entité n'est pas en règle de ses obligations ou ne comporte aucune information pour cet appel.",
                    None,
                );
                err["meta"] = json!({ "provider": route.provider() });
                return error_answer(StatusCode::BAD_GATEWAY, vec![err]);
            }
        }
    }
    match fixture {
        Some(fixture) => {
            let mut payload = current_dates(relink(shared, &fixture.payload));
            if let Some(entity) = entities::of(values) {
                payload = entities::identified(payload, entity);
            }
            let mut res = Response::new(Full::new(Bytes::from(payload)));
            *res.status_mut() = StatusCode::from_u16(fixture.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let content_type = if fixture.status == 200 {
                "application/vnd.api+json"
            } else {
                "application/json"
            };
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            res
        }
        None => error_answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            vec![error(
                "00500",
                "Erreur interne",
                "the sandbox has no fixture for this endpoint",
                None,
            )],
        ),
    }
}
