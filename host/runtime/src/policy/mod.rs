//! The outbound policy: what the component's requests may reach and what is
//! added to them on the way out, applied before any connection is made by
//! one function, `send`, whether the request comes from the component's
//! `wasi:http` (the send hook) or from what its `codec.prepare` described
//! (the codec path, where the host sends). Every decision is taken from the
//! request the host sees leave (its authority, its path) and the host's own
//! catalogue, never from what the component says of its endpoints.
//!
//! One request goes through these steps, in this order, each in its file:
//!
//! 1. `admit`: the API's own authority, a path in its one canonical form,
//!    and the trace on a data request;
//! 2. `circuit`: the token is not refused by the API, and the API and the
//!    path's provider are not known to be down;
//! 3. `auth` and `clamp`: the token, and timeouts no longer than the call's
//!    ceiling and the path's class;
//! 4. `quota`: a slot in every quota of the path, waited for up to the
//!    call's deadline; then the sending window, if one is set, is open;
//! 5. send, through the pooled [`Sender`];
//! 6. `learn`: what the answer says of the API, the provider and the group;
//! 7. hand the answer over, credentials scrubbed, its body bounded.

mod admit;
mod auth;
mod circuit;
mod clamp;
mod learn;
mod quota;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Scheme;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::{Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks};

pub use admit::Authority;
pub(crate) use auth::forbidden_headers;
pub use quota::QuotaPolicy;

use crate::circuit::Circuits;
use crate::quota::Quotas;
use crate::sender::{SendError, Sender};
use crate::token::Token;

/// The largest answer body the host lets through to the guest.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// What every outgoing request of every call is held to.
#[derive(Debug)]
pub struct OutboundPolicy {
    pub(crate) api: Authority,
    /// The token and the quotas named after it: replaced whole when the
    /// token rotates; a request reads them once, as it leaves.
    pub(crate) credentials: std::sync::RwLock<Arc<Credentials>>,
    /// When requests may leave at all (a batch's `--between`), if set.
    pub(crate) send_window: std::sync::OnceLock<SendWindow>,
    pub(crate) quotas: Arc<Quotas>,
    pub(crate) circuits: Arc<Circuits>,
    /// The pooled connections every request goes through.
    pub(crate) sender: Sender,
    /// The longest any phase of a JSON request may wait.
    pub(crate) json_timeout: Duration,
    /// The longest any phase of a document request may wait.
    pub(crate) document_timeout: Duration,
}

/// The token, and which quotas each request counts against (the per-token
/// groups are named after the token's `jti`).
#[derive(Debug)]
pub(crate) struct Credentials {
    pub(crate) token: Option<Token>,
    pub(crate) quota: QuotaPolicy,
}

impl OutboundPolicy {
    /// The credentials now.
    pub(crate) fn credentials(&self) -> Arc<Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Uses `token` from the next request on (a request already under way
    /// keeps the one it left with).
    pub(crate) fn set_token(&self, token: Token) {
        let quota = self.credentials().quota.for_token(Some(&token));
        *self
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Credentials {
            token: Some(token),
            quota,
        });
    }
}

/// Why a new token was not taken: the old one stays in use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The API's `/privileges` refused it.
    #[error("the API's /privileges refused the new token (HTTP {status}{})", codes_text(codes))]
    Refused {
        /// The status it answered.
        status: u16,
        /// The error codes and titles it gave.
        codes: Vec<String>,
    },
    /// It could not be checked (no slot in the quota, no answer).
    #[error("the new token could not be checked with /privileges: {0}")]
    Unchecked(String),
}

fn codes_text(codes: &[String]) -> String {
    if codes.is_empty() {
        String::new()
    } else {
        format!(": {}", codes.join("; "))
    }
}

/// Asks the API's `/privileges` with `token` (its per-IP quota slots taken
/// like any request's, within `timeout`), and returns the scopes it lists:
/// the check a new token passes before any call uses it.
pub(crate) async fn check_token(
    policy: &OutboundPolicy,
    base_url: &str,
    token: &Token,
    timeout: Duration,
) -> Result<Vec<String>, RotationError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (keys, _) = policy.credentials().quota.for_token(Some(token)).keys("/privileges");
    quota::take(&policy.quotas, &keys, deadline, &policy.circuits)
        .await
        .map_err(|refusal| RotationError::Unchecked(refusal.to_string()))?;
    let request = Request::get(format!("{base_url}/privileges"))
        .header(http::header::AUTHORIZATION, token.bearer())
        .body(crate::sender::empty_body())
        .map_err(|e| RotationError::Unchecked(e.to_string()))?;
    let options = RequestOptions {
        connect_timeout: Some(timeout),
        first_byte_timeout: Some(timeout),
        between_bytes_timeout: Some(timeout),
    };
    let unchecked = |e: &dyn std::fmt::Display| RotationError::Unchecked(e.to_string());
    let response = tokio::time::timeout(timeout, policy.sender.send(request, options))
        .await
        .map_err(|_| unchecked(&format!("no answer within {} s", timeout.as_secs())))?
        .map_err(|e| unchecked(&e.code))?;
    let status = response.status().as_u16();
    let body = tokio::time::timeout_at(deadline, Limited::new(response.into_body(), 1 << 20).collect())
        .await
        .map_err(|_| unchecked(&"the answer's body did not arrive in time"))?
        .map_err(|e| unchecked(&e))?
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status != 200 {
        let codes = json["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["code"].as_str().unwrap_or_default(),
                            e["title"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Err(RotationError::Refused { status, codes });
    }
    // Today's `{"data":{"privileges":[…]}}` and the older flat `{"privileges":[…]}`.
    let list = json["data"]["privileges"]
        .as_array()
        .or_else(|| json["privileges"].as_array())
        .ok_or_else(|| unchecked(&"the /privileges answer holds no `privileges` list"))?;
    Ok(list.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
}

/// When requests may leave: `None` while they may, else what is closed and
/// for how long. Asked as each request is about to leave, after its quota
/// slot: a request that waited for a slot or a circuit leaves only inside
/// the window.
#[derive(Clone)]
pub struct SendWindow(pub Arc<dyn Fn() -> Option<(String, Duration)> + Send + Sync>);

impl std::fmt::Debug for SendWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendWindow")
    }
}

/// Why the host refused a request, for the caller's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request went to an authority other than the API's.
    Authority(String),
    /// A data request without its trace fields (named).
    Trace(String),
    /// A path that is not in one canonical form (an encoded separator or
    /// dot, a backslash, a dot segment): a server or a proxy could read it
    /// as another path than the one the host classified.
    Path(String),
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
    /// The quota store cannot decide (Redis away, the state file unusable):
    /// nothing leaves uncounted.
    QuotaStore(crate::quota::Unavailable),
    /// The API refused the token itself: its calls stop until `/privileges`
    /// takes it again.
    Token {
        /// What the API said.
        fault: crate::circuit::TokenFault,
        /// When `/privileges` is asked again.
        retry_after: Duration,
    },
    /// The sending window is closed (a batch's `--between`).
    Closed {
        /// What is closed, and until when.
        what: String,
        /// When it opens.
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
            Refusal::Path(why) => write!(
                f,
                "the request's path has {why}, which the API could read as another path than the one the host checked; nothing was sent"
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
            Refusal::QuotaStore(down) => write!(f, "{down}; nothing was sent"),
            Refusal::Closed { what, .. } => write!(f, "{what}; nothing was sent"),
            Refusal::Token { fault, retry_after } => write!(
                f,
                "{}; nothing was sent, the token is tried again with /privileges in {} min",
                crate::error::token_fault_message(fault),
                retry_after.as_secs().div_ceil(60)
            ),
        }
    }
}

impl Refusal {
    /// The `wasi:http` error code the component sees for it.
    fn code(&self) -> HttpError {
        match self {
            Refusal::Authority(_) | Refusal::Trace(_) | Refusal::Path(_) => HttpError::HttpRequestDenied,
            Refusal::Quota { .. } | Refusal::QuotaStore(_) | Refusal::Closed { .. } => {
                HttpError::ConnectionLimitReached
            }
            Refusal::Circuit { .. } | Refusal::Token { .. } => HttpError::DestinationUnavailable,
        }
    }
}

/// Where a call's hooks and its send futures record a refusal, so that the
/// caller is told why (the component only sees "denied").
pub(crate) type RefusalSlot = Arc<Mutex<Option<Refusal>>>;

/// Records `refusal` for the caller and gives the component its error code.
fn refuse(slot: &RefusalSlot, refusal: Refusal) -> HttpError {
    tracing::info!(target: "api_entreprise::policy", %refusal, "request refused");
    let code = refusal.code();
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
    code
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
    pub refusal: RefusalSlot,
    /// The path of the last request the call sent, as the host saw it.
    pub sent_path: Option<String>,
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

/// The answer to one request that the policy let out, or the `wasi:http`
/// code of why there is none (a refusal is also recorded in the call's slot).
pub(crate) type Outbound = std::pin::Pin<Box<dyn Future<Output = Result<Response<WasiBody>, HttpError>> + Send>>;

impl WasiHttpHooks for CallHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        auth::forbidden_headers()
    }

    fn is_supported_scheme(&mut self, scheme: &Scheme) -> bool {
        *scheme == Scheme::HTTPS || (*scheme == Scheme::HTTP && !self.policy.api.is_https())
    }

    fn send_request(
        &mut self,
        req: Request<WasiBody>,
        options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        self.sent_path = Some(req.uri().path().to_owned());
        let answer = send(&self.policy, req, options, self.ceiling, self.deadline, &self.refusal);
        Box::new(async move {
            // The pool drives the connection: nothing is left for the guest to wait on.
            let io = async { Ok(()) };
            Ok((
                answer.await?,
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

/// A sign, as the quota store holds it for every host that shares it,
/// that the IP reached its quota: one of `keys`' per-IP windows full, or
/// its group closed by a 429.
pub(crate) async fn sign_in_store(quotas: &Quotas, keys: &[crate::quota::QuotaKey]) -> Option<String> {
    let usage = quotas.usage(keys).await.ok()?;
    usage.iter().find_map(|u| match (u.name.strip_prefix("ip "), u.server) {
        (Some(quota), _) if u.used >= u.spec.limit => {
            Some(format!("the per-IP quota {quota} full (as the quota store holds it)"))
        }
        (None, Some((0, _))) => Some(format!("a 429 from the API closing the {}", u.name)),
        _ => None,
    })
}

/// Steps 1 to 7 for one request, wherever it comes from (the component's
/// `wasi:http` request, or the one the host sends for the codec path): no
/// phase waits past `ceiling`, no quota slot is waited for past `deadline`,
/// and a refusal is recorded in `slot` for the caller.
pub(crate) fn send(
    policy: &Arc<OutboundPolicy>,
    mut req: Request<WasiBody>,
    asked: Option<RequestOptions>,
    ceiling: Duration,
    deadline: tokio::time::Instant,
    slot: &RefusalSlot,
) -> Outbound {
    let slot = Arc::clone(slot);
    if let Err(refusal) = admit::admit(&policy.api, req.uri()) {
        let code = refuse(&slot, refusal);
        return Box::pin(async move { Err(code) });
    }
    let credentials = policy.credentials();
    let passage = match circuit::check(&policy.circuits, &req, credentials.token.is_some()) {
        Ok(passage) => passage,
        Err(refusal) => {
            let code = refuse(&slot, refusal);
            return Box::pin(async move { Err(code) });
        }
    };
    auth::authorize(req.headers_mut(), credentials.token.as_ref());
    // One look-up of the path in the host's catalogue decides the rest.
    let path = req.uri().path().to_owned();
    let class = api_entreprise_catalogue::policy_of(&path);
    let options = clamp::clamp(policy, ceiling, asked, &class);
    let (keys, group) = credentials.quota.keys_of(&class);
    let policy = Arc::clone(policy);
    Box::pin(async move {
        match passage {
            circuit::Passage::ProbeFirst(url) => {
                circuit::probe(&policy.circuits, &policy.sender, &url, options)
                    .await
                    .map_err(|r| refuse(&slot, r))?;
            }
            circuit::Passage::ProbeToken(url, fault) => {
                // `/privileges` counts against the per-IP quotas like any request.
                let (probe_keys, _) = credentials.quota.keys("/privileges");
                quota::take(&policy.quotas, &probe_keys, deadline, &policy.circuits)
                    .await
                    .map_err(|r| refuse(&slot, r))?;
                let bearer = credentials.token.as_ref().map(crate::token::Token::bearer);
                if let Some(bearer) = bearer {
                    circuit::probe_token(&policy.circuits, &policy.sender, &url, bearer, options, fault)
                        .await
                        .map_err(|r| refuse(&slot, r))?;
                }
            }
            circuit::Passage::Closed => {}
        }
        quota::take(&policy.quotas, &keys, deadline, &policy.circuits)
            .await
            .map_err(|r| refuse(&slot, r))?;
        if let Some((what, retry_after)) = policy.send_window.get().and_then(|window| (window.0)()) {
            return Err(refuse(&slot, Refusal::Closed { what, retry_after }));
        }
        let response = match policy.sender.send(req, options).await {
            Ok(response) => response,
            Err(SendError { refusal: Some(why), .. }) => return Err(refuse(&slot, Refusal::Authority(why))),
            Err(SendError { code, .. }) => {
                if matches!(
                    code,
                    HttpError::ConnectionTimeout | HttpError::ConnectionReadTimeout | HttpError::HttpResponseTimeout
                ) {
                    // Another host of the machine (or the fleet) may have
                    // filled a window or met a 429: the shared store says so.
                    if let Some(sign) = sign_in_store(&policy.quotas, &keys).await {
                        policy.circuits.limit_reached(sign);
                    }
                    policy.circuits.api_silent();
                }
                return Err(code);
            }
        };
        let status = response.status().as_u16();
        learn::circuits(&policy.circuits, &path, status, response.headers());
        if let Some(group) = &group {
            learn::quotas(&policy.quotas, group, status, response.headers()).await;
        }
        let (mut parts, body) = response.into_parts();
        auth::scrub(&mut parts.headers);
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .map_err(|e| match e.downcast::<HttpError>() {
                Ok(e) => *e,
                Err(_) => HttpError::HttpResponseBodySize(Some(MAX_RESPONSE_BYTES as u64)),
            })
            .boxed_unsync();
        Ok(Response::from_parts(parts, body))
    })
}
