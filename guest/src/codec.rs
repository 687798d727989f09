//! The sans-IO client: `prepare` (a call to an HTTP request) and `parse` (an
//! HTTP answer to a result). The wasi:http `call` is these two around a send.

use serde::{Deserialize, Serialize};

use crate::catalogue::{self, Endpoint};
use crate::error::Error;
use crate::request::{self, HttpRequest};
use crate::response::{self, Response};
use crate::validate::{self, Trace};

/// A call as the caller describes it (the WIT `request`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Call {
    pub endpoint: String,
    pub version: Option<u8>,
    pub params: Vec<String>,
    pub query: Vec<(String, String)>,
    pub trace: Trace,
}

/// A call made ready: the endpoint and version resolved, and the request
/// (the WIT `prepared`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub endpoint: String,
    pub version: u8,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u32,
}

impl Prepared {
    pub fn new(endpoint: &Endpoint, http: &HttpRequest) -> Self {
        Self {
            endpoint: endpoint.id.to_owned(),
            version: endpoint.version,
            method: "GET".to_owned(),
            url: http.url(),
            headers: http.headers.clone(),
            timeout_ms: http.timeout_ms,
        }
    }
}

/// Looks the endpoint up, validates everything locally, builds the request.
/// `now_unix` dates the year checks.
pub fn prepare(base_url: &str, call: &Call, now_unix: u64) -> Result<(&'static Endpoint, HttpRequest), Error> {
    let endpoint = catalogue::find(&call.endpoint, call.version)?;
    let year = validate::year_of(now_unix);
    validate::check(endpoint, &call.params, &call.query, &call.trace, year).map_err(Error::InvalidInput)?;
    let request = request::build(base_url, endpoint, &call.params, &call.query, &call.trace)?;
    Ok((endpoint, request))
}

/// Parses the answer of `endpoint` in `version` (the `prepared` call's).
pub fn parse(
    endpoint: &str,
    version: u8,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    now_unix: u64,
) -> Result<Response, Error> {
    let endpoint = catalogue::find(endpoint, Some(version))?;
    response::parse(endpoint, status, headers, body, now_unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_call_is_refused_with_every_code_before_any_request_exists() {
        let call = Call {
            endpoint: "insee_unites_legales".into(),
            params: vec!["123".into()],
            ..Call::default()
        };
        let Err(Error::InvalidInput(items)) = prepare("https://entreprise.api.gouv.fr", &call, 0) else {
            panic!()
        };
        let codes: Vec<_> = items.iter().map(|i| i.code.as_str()).collect();
        assert_eq!(codes, ["00201", "00203", "00202", "00301"]);
    }

    #[test]
    fn parse_uses_the_pinned_version_of_the_endpoint() {
        let err = parse("insee_unites_legales", 9, 200, &[], b"{}", 0).unwrap_err();
        assert!(matches!(err, Error::UnknownEndpoint(_)));
    }
}
