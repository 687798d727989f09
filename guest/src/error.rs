//! The client's errors, as plain Rust; `lib.rs` converts them to the WIT
//! `error` variant at the export boundary.

use crate::response::RateLimitState;

/// One fault: a local validation failure or one entry of a JSON:API
/// `errors` array. Local faults carry the code the server would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorItem {
    pub code: String,
    pub title: String,
    pub detail: String,
    pub parameter: Option<String>,
    /// `meta` as JSON text.
    pub meta: Option<String>,
}

impl ErrorItem {
    /// A local validation fault with the server's code for it.
    pub fn local(code: &str, parameter: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            title: title.to_owned(),
            detail: detail.into(),
            parameter: Some(parameter.to_owned()),
            meta: None,
        }
    }
}

/// An error answer from the server, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiError {
    pub status: u16,
    pub errors: Vec<ErrorItem>,
    /// The body when it was not JSON:API, cut to [`TEXT_LIMIT`] bytes.
    pub text: Option<String>,
    /// `meta.provider` of the first error that names one.
    pub provider: Option<String>,
    pub retryable: bool,
    /// Never `Some(0)`: an unknown delay is `None`.
    pub retry_after_seconds: Option<u64>,
    pub rate_limit: RateLimitState,
    pub request_id: Option<String>,
}

/// How much of a non-JSON error body is kept.
pub const TEXT_LIMIT: usize = 1024;

/// Every way a call can fail; mirrors the WIT `error` variant case for case.
/// API errors are boxed to keep `Result`s small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    InvalidInput(Vec<ErrorItem>),
    UnknownEndpoint(String),
    BadRequest(Box<ApiError>),
    Unauthorized(Box<ApiError>),
    Forbidden(Box<ApiError>),
    NotFound(Box<ApiError>),
    Conflict(Box<ApiError>),
    Gone(Box<ApiError>),
    Unprocessable(Box<ApiError>),
    RateLimited(Box<ApiError>),
    UnavailableForLegalReasons(Box<ApiError>),
    ServerError(Box<ApiError>),
    BadGateway(Box<ApiError>),
    Maintenance(Box<ApiError>),
    GatewayTimeout(Box<ApiError>),
    Timeout(String),
    RefusedByHost(String),
    QuotaExceeded(String),
    Transport(String),
    Other(String),
}

impl Error {
    /// The error case for an HTTP error status, with its parsed body.
    pub fn from_status(api: ApiError) -> Self {
        let status = api.status;
        let text = api.text.clone();
        let api = Box::new(api);
        match status {
            400 => Self::BadRequest(api),
            401 => Self::Unauthorized(api),
            403 => Self::Forbidden(api),
            404 => Self::NotFound(api),
            409 => Self::Conflict(api),
            410 => Self::Gone(api),
            422 => Self::Unprocessable(api),
            429 => Self::RateLimited(api),
            451 => Self::UnavailableForLegalReasons(api),
            502 => Self::BadGateway(api),
            503 => Self::Maintenance(api),
            504 => Self::GatewayTimeout(api),
            500..=599 => Self::ServerError(api),
            _ => Self::Other(format!(
                "unexpected HTTP status {} from the API{}",
                status,
                text.map(|t| format!(": {t}")).unwrap_or_default()
            )),
        }
    }
}
