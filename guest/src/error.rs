//! The client's errors, as plain Rust in the contract's shape; `lib.rs`
//! converts them to the WIT `error` variant, and serde to its JSON form.

use serde::Serialize;

use crate::response::RateLimitState;

/// One fault: a local validation failure or one entry of a JSON:API
/// `errors` array. Local faults carry the code the server would give.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorItem {
    pub code: String,
    pub title: String,
    pub detail: String,
    pub parameter: Option<String>,
    /// `meta` as JSON text (the JSON form embeds it as JSON).
    #[serde(serialize_with = "crate::json::raw_option")]
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

/// What kind of error answer the server gave; see the WIT `api-error-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    Unprocessable,
    RateLimited,
    UnavailableForLegalReasons,
    ServerError,
    BadGateway,
    Maintenance,
    GatewayTimeout,
    #[default]
    Unexpected,
}

impl ApiErrorKind {
    /// The kind of an error status.
    pub fn of(status: u16) -> Self {
        match status {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            409 => Self::Conflict,
            410 => Self::Gone,
            422 => Self::Unprocessable,
            429 => Self::RateLimited,
            451 => Self::UnavailableForLegalReasons,
            502 => Self::BadGateway,
            503 => Self::Maintenance,
            504 => Self::GatewayTimeout,
            500..=599 => Self::ServerError,
            _ => Self::Unexpected,
        }
    }
}

/// An error answer from the server, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ApiError {
    pub status: u16,
    pub kind: ApiErrorKind,
    pub errors: Vec<ErrorItem>,
    /// The body when it was not JSON:API, cut to [`TEXT_LIMIT`] bytes.
    pub text: Option<String>,
    /// `meta.provider` of the first error that names one.
    pub provider: Option<String>,
    pub retryable: bool,
    /// Never `Some(0)`: an unknown delay is `None`.
    pub retry_after_seconds: Option<u32>,
    pub rate_limit: RateLimitState,
    pub request_id: Option<String>,
}

/// How much of a non-JSON error body is kept.
pub const TEXT_LIMIT: usize = 1024;

/// Every way a call can fail; mirrors the WIT `error` variant case for case.
/// The API error is boxed to keep `Result`s small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "tag", content = "val", rename_all = "kebab-case")]
pub enum Error {
    InvalidInput(Vec<ErrorItem>),
    UnknownEndpoint(String),
    Api(Box<ApiError>),
    Timeout(String),
    RefusedByHost(String),
    QuotaExceeded(String),
    Transport(String),
    Other(String),
}

impl Error {
    /// The API error, when the server answered one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            _ => None,
        }
    }
}
