//! The outbound policy: what the guest's requests may reach and what is added
//! to them on the way out. Applied in the `wasi:http` send hook, before any
//! connection is made.

use std::sync::Arc;
use std::time::Duration;

use api_entreprise_catalogue as catalogue;
use http::uri::Scheme;
use http::{HeaderName, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks,
};

use crate::ConfigError;
use crate::circuit::{Circuits, Verdict};
use crate::quota::{QuotaKey, QuotaSpec, Quotas};
use crate::sender::{SendError, Sender};
use crate::token::Token;

/// The largest answer body the host lets through to the guest.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// A normalised `scheme://host:port`: host lower-cased, trailing dot dropped,
/// port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    https: bool,
    host: String,
    port: u16,
}

impl Authority {
    /// Reads the authority of an API base URL. `https` only, except `http`
    /// to a loopback address (the sandbox).
    pub fn of_base_url(url: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::BaseUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
        let authority = Self::of_uri(&uri).map_err(|why| bad(&why))?;
        if uri.query().is_some() {
            return Err(bad("has a query string"));
        }
        if !authority.https && !authority.is_loopback() {
            return Err(bad(
                "uses http: only https is allowed, except http to a loopback sandbox",
            ));
        }
        Ok(authority)
    }

    /// Reads and normalises the authority of a request's URI.
    pub fn of_uri(uri: &http::Uri) -> Result<Self, String> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) => return Err(format!("scheme `{s}` is not allowed")),
            None => return Err("has no scheme".into()),
        };
        let authority = uri.authority().ok_or("has no host")?;
        if authority.as_str().contains('@') {
            return Err("carries user credentials".into());
        }
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err("has no host".into());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Self { https, host, port })
    }

    /// Whether the host is a loopback name or address (the sandbox).
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// What every outgoing request of every call is held to. Every decision is
/// taken from the request the host sees leave (its path) and the host's own
/// catalogue, never from what the component says of its endpoints.
#[derive(Debug)]
pub struct OutboundPolicy {
    pub(crate) api: Authority,
    pub(crate) token: Option<Token>,
    /// The per-IP quotas, applied to every request but the health routes'.
    pub(crate) ip_quotas: Vec<QuotaKey>,
    pub(crate) quotas: Arc<Quotas>,
    pub(crate) circuits: Arc<Circuits>,
    /// The pooled connections every request goes through.
    pub(crate) sender: Sender,
    /// The longest any phase of a JSON request may wait.
    pub(crate) json_timeout: Duration,
    /// The longest any phase of a document request may wait.
    pub(crate) document_timeout: Duration,
    /// How much wider than its period each group's window is kept.
    pub(crate) quota_margin: Duration,
    /// The per-token groups are per token: hosts sharing a Redis with other
    /// tokens count apart. The token's `jti` (an id, not a secret) names it.
    pub(crate) token_scope: String,
    /// The token's own limit per minute, for every known group, when it has one.
    pub(crate) token_rate_limit: Option<u32>,
}

impl OutboundPolicy {
    /// Every quota a request to `path` counts against: none for the health
    /// routes; otherwise every per-IP quota, and the per-token group of the
    /// path's route in the host's catalogue (a conservative one for a path
    /// the catalogue does not know). Also the group's name, if any.
    fn quota_keys(&self, path: &str) -> (Vec<QuotaKey>, Option<String>) {
        if catalogue::is_free(path) {
            return (Vec::new(), None);
        }
        let mut keys = self.ip_quotas.clone();
        let group = catalogue::group_of(path).map(|group| {
            let (limit, period) = match self.token_rate_limit {
                Some(per_minute) if group != catalogue::UNKNOWN_ROUTE => (per_minute, 60),
                _ => (group.limit, group.period_seconds),
            };
            QuotaKey {
                name: format!("group {}{}", group.name, self.token_scope),
                spec: QuotaSpec {
                    limit,
                    window: Duration::from_secs(period.into()) + self.quota_margin,
                },
            }
        });
        let name = group.as_ref().map(|g| g.name.clone());
        keys.extend(group);
        (keys, name)
    }

    /// The longest any phase of a request to `path` may wait: the
    /// documents' timeout only for a document route of the host's catalogue.
    fn timeout_of(&self, path: &str) -> Duration {
        if catalogue::is_document(path) {
            self.document_timeout
        } else {
            self.json_timeout
        }
    }
}

/// The trace fields every data call must carry, whatever the component did:
/// the host checks them again before a byte leaves (defence in depth).
const TRACE_FIELDS: [&str; 3] = ["context", "recipient", "object"];

/// The trace fields a request to a versioned data route (`/v3/…`, `/v4/…`)
/// lacks or leaves blank, if any. `/privileges` and the health routes need none.
fn missing_trace(uri: &http::Uri) -> Option<String> {
    let path = uri.path();
    let versioned = path
        .strip_prefix("/v")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    if !versioned || path.ends_with("/privileges") {
        return None;
    }
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let missing: Vec<&str> = TRACE_FIELDS
        .into_iter()
        .filter(|field| !query.iter().any(|(k, v)| k == field && !v.trim().is_empty()))
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Why the host refused a request, for the caller's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request went to an authority other than the API's.
    Authority(String),
    /// A data request without its trace fields (named).
    Trace(String),
    /// A circuit is open: the API is silent (maybe a ban) or a provider
    /// keeps failing.
    Circuit {
        /// What does not answer.
        what: String,
        /// When the next attempt may go.
        retry_after: Duration,
    },
    /// The quota had no slot; one frees up after this long.
    Quota {
        /// The quota, as `N/DURATION`.
        quota: String,
        /// When the oldest request in the window leaves it.
        retry_after: Duration,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Authority(why) => write!(f, "{why}; nothing was sent"),
            Refusal::Circuit { what, retry_after } => write!(
                f,
                "{what}; nothing was sent, try again in {:.0} s",
                retry_after.as_secs_f64().ceil()
            ),
            Refusal::Trace(missing) => write!(
                f,
                "the component sent a data request without {missing}, which API Entreprise requires; nothing was sent"
            ),
            Refusal::Quota { quota, retry_after } => write!(
                f,
                "the quota {quota} has no slot before the call's deadline; nothing was sent (a slot frees in {:.1} s)",
                retry_after.as_secs_f64()
            ),
        }
    }
}

/// The hooks of one call: the shared policy plus the call's own limits.
pub(crate) struct CallHooks {
    pub policy: Arc<OutboundPolicy>,
    /// No phase of a request may wait longer than this, whatever the guest asks.
    pub ceiling: Duration,
    /// When the whole call must be over, waiting for a quota slot included.
    pub deadline: tokio::time::Instant,
    /// Set when the policy refused a request of this call (also from the
    /// send future, hence shared).
    pub refusal: Arc<std::sync::Mutex<Option<Refusal>>>,
    /// The path of the last request the call sent, as the host saw it.
    pub sent_path: Option<String>,
}

impl CallHooks {
    fn admit(&self, req: &Request<WasiBody>) -> Result<(), Refusal> {
        let target = Authority::of_uri(req.uri()).map_err(|why| Refusal::Authority(format!("the URL {why}")))?;
        if target != self.policy.api {
            return Err(Refusal::Authority(format!(
                "{target} is not the configured API ({})",
                self.policy.api
            )));
        }
        if let Some(missing) = missing_trace(req.uri()) {
            return Err(Refusal::Trace(missing));
        }
        Ok(())
    }

    /// The timeouts the guest asked for, never past the call's ceiling nor
    /// the timeout of the path's class.
    fn clamp(&self, asked: Option<RequestOptions>, path: &str) -> RequestOptions {
        let asked = asked.unwrap_or_default();
        let ceiling = self.ceiling.min(self.policy.timeout_of(path));
        let clamp = |d: Option<Duration>| Some(d.map_or(ceiling, |d| d.min(ceiling)));
        RequestOptions {
            connect_timeout: clamp(asked.connect_timeout),
            first_byte_timeout: clamp(asked.first_byte_timeout),
            between_bytes_timeout: clamp(asked.between_bytes_timeout),
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for CallHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        // The guest may neither set credentials nor cookies: the host owns them.
        Arc::new(|name: &HeaderName| {
            DEFAULT_FORBIDDEN_HEADERS.contains(name) || *name == header::AUTHORIZATION || *name == header::COOKIE
        })
    }

    fn is_supported_scheme(&mut self, scheme: &Scheme) -> bool {
        *scheme == Scheme::HTTPS || (*scheme == Scheme::HTTP && !self.policy.api.https)
    }

    fn send_request(
        &mut self,
        mut req: Request<WasiBody>,
        options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let refuse = |slot: &Arc<std::sync::Mutex<Option<Refusal>>>, refusal: Refusal| {
            let code = match refusal {
                Refusal::Authority(_) | Refusal::Trace(_) => HttpError::HttpRequestDenied,
                Refusal::Quota { .. } => HttpError::ConnectionLimitReached,
                Refusal::Circuit { .. } => HttpError::DestinationUnavailable,
            };
            tracing::info!(target: "api_entreprise::policy", %refusal, "request refused");
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
            code
        };
        if let Err(refusal) = self.admit(&req) {
            let code = refuse(&self.refusal, refusal);
            return Box::new(async move { Err(code) });
        }
        let path = req.uri().path().to_owned();
        self.sent_path = Some(path.clone());
        let circuits = Arc::clone(&self.policy.circuits);
        let provider = catalogue::provider_of(&path).map(str::to_owned);
        let api_verdict = circuits.api();
        let open = match (api_verdict, &provider) {
            (Verdict::Open(retry_after), _) => Some(Refusal::Circuit {
                what:
                    "the API has not answered several calls in a row: the IP may be banned (a ban lasts up to 12 hours)"
                        .into(),
                retry_after,
            }),
            (_, Some(p)) => circuits.provider(p).err().map(|retry_after| Refusal::Circuit {
                what: format!("the provider `{p}` keeps failing"),
                retry_after,
            }),
            _ => None,
        };
        if let Some(refusal) = open {
            let code = refuse(&self.refusal, refusal);
            return Box::new(async move { Err(code) });
        }
        // Only after a cool-down: the free health route of the same authority.
        let probe_url = (api_verdict == Verdict::Probe).then(|| {
            format!(
                "{}://{}/pings",
                req.uri().scheme_str().unwrap_or("https"),
                req.uri().authority().map(|a| a.as_str()).unwrap_or_default()
            )
        });
        let headers = req.headers_mut();
        headers.remove(header::AUTHORIZATION);
        if let Some(token) = &self.policy.token {
            headers.insert(header::AUTHORIZATION, token.bearer());
        }
        let options = self.clamp(options, &path);
        let (keys, group) = self.policy.quota_keys(&path);
        let quotas = Arc::clone(&self.policy.quotas);
        let deadline = self.deadline;
        let slot = Arc::clone(&self.refusal);
        let sender = self.policy.sender.clone();
        Box::new(async move {
            // After a cool-down, a free health route tells whether the API
            // answers again before a request that costs quota goes.
            if let Some(url) = &probe_url
                && !probe(&sender, url, options).await
            {
                circuits.api_silent();
                let retry_after = match circuits.api() {
                    Verdict::Open(d) => d,
                    _ => Duration::ZERO,
                };
                let refusal = Refusal::Circuit {
                    what: "the API still does not answer its health route: the IP may be banned".into(),
                    retry_after,
                };
                return Err(refuse(&slot, refusal));
            }
            // A slot in every quota, waited for up to the call's deadline;
            // a wait that would pass it fails now rather than later.
            loop {
                match quotas.try_acquire(&keys).await {
                    Ok(()) => break,
                    Err(wait) if tokio::time::Instant::now() + wait.retry_after < deadline => {
                        tokio::time::sleep(wait.retry_after).await;
                    }
                    Err(wait) => {
                        let refusal = Refusal::Quota {
                            quota: wait.quota,
                            retry_after: wait.retry_after,
                        };
                        return Err(refuse(&slot, refusal));
                    }
                }
            }
            let response = match sender.send(req, options).await {
                Ok(response) => response,
                Err(SendError { refusal: Some(why), .. }) => return Err(refuse(&slot, Refusal::Authority(why))),
                Err(SendError { code, .. }) => {
                    if matches!(
                        code,
                        HttpError::ConnectionTimeout
                            | HttpError::ConnectionReadTimeout
                            | HttpError::HttpResponseTimeout
                    ) {
                        circuits.api_silent();
                    }
                    return Err(code);
                }
            };
            circuits.api_answered();
            if let Some(provider) = &provider {
                let status = response.status().as_u16();
                let retry_after = header_number(response.headers(), "retry-after").map(Duration::from_secs);
                circuits.provider_answered(
                    provider,
                    matches!(status, 502..=504),
                    retry_after.filter(|_| status == 503),
                );
            }
            if let Some(group) = &group {
                learn(&quotas, group, response.status().as_u16(), response.headers()).await;
            }
            let (mut parts, body) = response.into_parts();
            // A server that echoes credentials back must not hand them to the guest.
            parts.headers.remove(header::AUTHORIZATION);
            parts.headers.remove(header::PROXY_AUTHORIZATION);
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .map_err(|e| match e.downcast::<HttpError>() {
                    Ok(e) => *e,
                    Err(_) => HttpError::HttpResponseBodySize(Some(MAX_RESPONSE_BYTES as u64)),
                })
                .boxed_unsync();
            // The pool drives the connection: nothing is left for the guest to wait on.
            let io = async { Ok(()) };
            Ok((
                Response::from_parts(parts, body),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

/// Whether the API answers its free health route at all (any status).
async fn probe(sender: &Sender, url: &str, options: RequestOptions) -> bool {
    let Ok(request) = Request::get(url).body(crate::sender::empty_body()) else {
        return false;
    };
    sender.send(request, options).await.is_ok()
}

/// A header holding a whole number (`Retry-After` in seconds, `RateLimit-*`).
fn header_number(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Tightens the group's state from the server's `RateLimit-*` headers, and
/// closes it until `Retry-After` on a 429 (never retried before then).
async fn learn(quotas: &Quotas, group: &str, status: u16, headers: &http::HeaderMap) {
    let number = |name: &str| header_number(headers, name);
    if let (Some(remaining), Some(reset)) = (number("ratelimit-remaining"), number("ratelimit-reset")) {
        quotas
            .observe(group, u32::try_from(remaining).unwrap_or(u32::MAX), reset)
            .await;
    }
    if status == 429 {
        let now_s = quotas.now() / 1000;
        // Retry-After, else the window's reset; at least a second.
        let wait = number("retry-after")
            .or_else(|| number("ratelimit-reset").map(|r| r.saturating_sub(now_s)))
            .unwrap_or(60)
            .max(1);
        quotas.close(group, Duration::from_secs(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn authorities_are_normalised_before_comparison() {
        let api = Authority::of_base_url("https://entreprise.api.gouv.fr").unwrap();
        for same in [
            "https://ENTREPRISE.api.gouv.fr/v3/x",
            "https://entreprise.api.gouv.fr.:443/x",
            "https://entreprise.api.gouv.fr:443",
        ] {
            assert_eq!(Authority::of_uri(&uri(same)).unwrap(), api, "{same}");
        }
        for other in [
            "http://entreprise.api.gouv.fr/x",
            "https://entreprise.api.gouv.fr:8443/x",
            "https://evil.example/x",
        ] {
            assert_ne!(Authority::of_uri(&uri(other)).unwrap(), api, "{other}");
        }
        assert!(Authority::of_uri(&uri("https://user:pw@entreprise.api.gouv.fr/")).is_err());
    }

    #[test]
    fn data_routes_need_their_trace_and_free_routes_do_not() {
        let trace = |u: &str| missing_trace(&uri(u));
        assert_eq!(
            trace("https://x/v4/insee/sirene/unites_legales/1?context=a&recipient=b&object=c"),
            None
        );
        assert_eq!(
            trace("https://x/v4/insee/sirene/unites_legales/1?context=+&recipient=b").as_deref(),
            Some("context, object")
        );
        assert_eq!(trace("https://x/privileges"), None);
        assert_eq!(trace("https://x/v2/privileges"), None);
        assert_eq!(trace("https://x/ping/insee"), None);
    }

    #[test]
    fn http_is_allowed_only_to_loopback() {
        assert!(Authority::of_base_url("http://127.0.0.1:8080").is_ok());
        assert!(Authority::of_base_url("http://localhost:8080").is_ok());
        assert!(Authority::of_base_url("http://[::1]:8080").is_ok());
        assert!(Authority::of_base_url("http://entreprise.api.gouv.fr").is_err());
        assert!(Authority::of_base_url("ftp://entreprise.api.gouv.fr").is_err());
    }
}
