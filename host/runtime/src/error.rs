//! The host library's errors.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::types;

/// A configuration value the host cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The API base URL.
    #[error("the API base URL {url:?} {why}")]
    BaseUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The token.
    #[error("the API token is empty or holds spaces or control characters; paste it whole from the dashboard")]
    Token,
    /// The quota.
    #[error("the quota {0:?} is not of the form N/DURATION, such as 2000/10m, 1000/1m or 5/30s")]
    Quota(String),
    /// No component was given to the builder.
    #[error(
        "no client component given: pass RuntimeBuilder::component the bytes of api-entreprise-component or a .wasm file"
    )]
    NoComponent,
    /// The component could not be read, compiled or linked (see
    /// [`ConfigError::Contract`] for one the host refuses to run).
    #[error("loading the component {path}: {reason}")]
    Component {
        /// Where it was loaded from.
        path: PathBuf,
        /// What failed.
        reason: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The component's contract is not one this host runs: nothing of it ran.
    #[error("loading the component {path}: {refusal}")]
    Contract {
        /// Where it was loaded from.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        refusal: crate::contract::Refusal,
    },
    /// The quota store (state file or Redis) could not be opened.
    #[error(transparent)]
    QuotaStore(#[from] crate::quota::QuotaStoreError),
    /// The extra CA certificate.
    #[error("the extra CA certificate: {0}; give a PEM file with one or more CERTIFICATE blocks")]
    Ca(String),
    /// The runtime could not be set up.
    #[error("setting up the WebAssembly runtime: {0}")]
    Engine(String),
    /// The audit file could not be opened.
    #[error("the audit file {0}: give a file this user can create or append to")]
    Audit(String),
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The client or the API said no: invalid input, an HTTP error, a
    /// transport failure or a host refusal. Actionable by the caller.
    #[error("{0}")]
    Client(ClientError),
    /// The call did not finish within its deadline (the endpoint kind's
    /// timeout); it was abandoned and nothing more will be read.
    #[error("no answer within {0:?}: the API or the provider is slow, try again later")]
    Deadline(Duration),
    /// No slot in a quota before the call's deadline: nothing was sent.
    /// Try again after `retry_after`.
    #[error("the quota {quota} has no slot before the call's deadline; nothing was sent, retry in {:.1} s", retry_after.as_secs_f64())]
    RateLimited {
        /// The quota that is full, or closed by a 429.
        quota: String,
        /// When it has a slot again.
        retry_after: Duration,
    },
    /// The quota store (Redis, the state file) cannot decide now: nothing
    /// was sent, since nothing may leave uncounted. Not a full quota: it
    /// ends when the store is back (a Redis reconnects by itself).
    #[error("{0}; nothing was sent, try again once it is back")]
    QuotaStoreUnavailable(crate::quota::Unavailable),
    /// A circuit is open: the API has stopped answering (the IP may be
    /// banned) or the endpoint's provider keeps failing. Nothing was sent.
    #[error("{what}; nothing was sent, try again in {} s", retry_after.as_secs_f64().ceil())]
    CircuitOpen {
        /// What does not answer, and what it may mean.
        what: String,
        /// When the next attempt may go.
        retry_after: Duration,
    },
    /// The API refused the token itself (`00101`, `00103`, `00105`,
    /// `00106`): its calls are refused locally until `/privileges` takes it
    /// again (asked every few minutes). Nothing was sent.
    #[error(
        "{}; nothing was sent, the token is tried again with /privileges in {} min",
        token_fault_message(fault),
        retry_after.as_secs().div_ceil(60)
    )]
    TokenRefused {
        /// What the API said of the token.
        fault: crate::TokenFault,
        /// When `/privileges` is asked again.
        retry_after: Duration,
    },
    /// The sending window is closed (a batch's `--between`): nothing was
    /// sent.
    #[error("{what}; nothing was sent, it opens in {} s", retry_after.as_secs_f64().ceil())]
    Closed {
        /// What is closed, and until when.
        what: String,
        /// When it opens.
        retry_after: Duration,
    },
    /// The component itself failed (a trap, a memory limit): a bug or a
    /// hostile component, not something the caller did.
    #[error("the client component failed: {0}")]
    Trap(String),
}

/// An error reported by the client component, with a message that says what
/// was wrong and what to do.
#[derive(Debug, Clone)]
pub struct ClientError(pub types::Error);

impl ClientError {
    /// The codes of the faults, local or from the API.
    pub fn codes(&self) -> Vec<&str> {
        use types::Error as E;
        match &self.0 {
            E::InvalidInput(items) => items.iter().map(|i| i.code.as_str()).collect(),
            other => api_error(other)
                .map(|a| a.errors.iter().map(|i| i.code.as_str()).collect())
                .unwrap_or_default(),
        }
    }

    /// The contract's case of this error: `invalid-input`, `api`,
    /// `timeout`, `transport`…
    pub fn case(&self) -> &'static str {
        use types::Error as E;
        match &self.0 {
            E::InvalidInput(_) => "invalid-input",
            E::UnknownEndpoint(_) => "unknown-endpoint",
            E::Api(_) => "api",
            E::Timeout(_) => "timeout",
            E::RefusedByHost(_) => "refused-by-host",
            E::QuotaExceeded(_) => "quota-exceeded",
            E::Transport(_) => "transport",
            E::Other(_) => "other",
        }
    }

    /// The HTTP status, when the API answered.
    pub fn status(&self) -> Option<u16> {
        api_error(&self.0).map(|a| a.status)
    }
}

fn api_error(e: &types::Error) -> Option<&types::ApiError> {
    match e {
        types::Error::Api(a) => Some(a),
        _ => None,
    }
}

fn items(f: &mut fmt::Formatter<'_>, items: &[types::ErrorItem]) -> fmt::Result {
    for item in items {
        write!(f, "\n  - {}", item.code)?;
        if let Some(p) = &item.parameter {
            write!(f, " ({p})")?;
        }
        write!(f, ": {}", item.detail)?;
        if item.detail.is_empty() {
            write!(f, "{}", item.title)?;
        }
    }
    Ok(())
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use types::Error as E;
        let api = match &self.0 {
            E::InvalidInput(faults) => {
                write!(f, "invalid request, nothing was sent:")?;
                return items(f, faults);
            }
            E::UnknownEndpoint(m) => return write!(f, "{m}"),
            E::Timeout(m) => {
                return write!(f, "timeout: {m}; nothing more will be read, try again later");
            }
            E::RefusedByHost(m) => return write!(f, "refused by the host's policy: {m}"),
            E::QuotaExceeded(m) => return write!(f, "{m}"),
            E::Transport(m) => {
                return write!(f, "the connection to the API failed: {m}");
            }
            E::Other(m) => return write!(f, "{m}"),
            E::Api(api) => api,
        };
        use types::ApiErrorKind as K;
        let (what, todo) = match api.kind {
            K::BadRequest => ("the API found the request malformed", "report it with the request id"),
            K::Unauthorized => (
                "the API refused the token",
                "check API_ENTREPRISE_TOKEN: it may be wrong, expired (tokens last 18 months) or revoked",
            ),
            K::Forbidden => (
                "the token may not call this endpoint",
                "list its rights with /privileges; ask for the scope on DataPass",
            ),
            K::NotFound => (
                "not found, or outside the endpoint's scope",
                "check the identifier; a 404 often means the entity is not covered by this provider",
            ),
            K::Conflict => (
                "the same request is still running at the API",
                "wait for the first one to finish before asking again",
            ),
            K::Gone => (
                "this link or route no longer exists",
                "call the endpoint again for a fresh link",
            ),
            K::Unprocessable => ("the API refused a parameter", "fix the parameter named below"),
            K::RateLimited => (
                "the token's quota for this endpoint is spent",
                "wait before calling again: ignoring 429s gets the IP banned for 12 hours",
            ),
            K::UnavailableForLegalReasons => (
                "this entity is not diffusible for legal reasons",
                "use the non-diffusible endpoint if your habilitation allows it",
            ),
            K::ServerError => ("API Entreprise failed", "try again later"),
            K::BadGateway => ("the data provider failed", "try again later"),
            K::Maintenance => ("the data provider is in maintenance", "try again after the window"),
            K::GatewayTimeout => ("the data provider did not answer in time", "try again later"),
            K::Unexpected => ("the API answered an unexpected status", "report it with the request id"),
        };
        write!(f, "{what} (HTTP {}", api.status)?;
        if let Some(id) = &api.request_id {
            write!(f, ", request id {id}")?;
        }
        write!(f, "): {todo}")?;
        if let Some(s) = api.retry_after_seconds {
            write!(f, "; retry in {s} s")?;
        }
        if let Some(text) = &api.text {
            write!(f, "\n  {text}")?;
        }
        items(f, &api.errors)
    }
}

/// What the API said of a token it refused, and what to do about it.
pub fn token_fault_message(fault: &crate::TokenFault) -> String {
    let todo = match fault.code.as_str() {
        "00103" => {
            "it has expired (a token lives 18 months): renew it through DataPass (https://datapass.api.gouv.fr), then replace it"
        }
        "00105" => {
            "it is blacklisted, most likely because it leaked: take the new one from your account (https://entreprise.api.gouv.fr/compte), replace it, and find where it leaked"
        }
        "00106" => "the API does not know it (a token without an authorisation): ask for access through DataPass",
        _ => "it is not valid: check that the whole token was given, else ask for one through DataPass",
    };
    let since = time::OffsetDateTime::from(fault.since)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!(
        "API Entreprise refused the token with {} ({}) at {since}: {todo} (--token, API_ENTREPRISE_TOKEN, or the profile's token file)",
        fault.code, fault.title
    )
}
