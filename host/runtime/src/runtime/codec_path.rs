//! The codec path, the default: the component validates and builds the
//! request (`codec.prepare`) in an instance with nothing linked, the host
//! sends it through its policy with its own pooled sender, and the same
//! instance parses the whole answer at once (`codec.parse`). The component
//! never touches the network: whatever import it calls traps. Against the
//! `wasi:http` path it saves the WASI context of every call, and the tasks,
//! streams and wake-ups of `wasi:http`.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions};

use super::Runtime;
use super::loaded::Loaded;
use crate::error::CallError;
use crate::types;

impl Runtime {
    /// One call on the codec path (see the module's docs).
    pub(super) async fn call_via_codec(
        &self,
        loaded: &Loaded,
        request: &types::Request,
        ceiling: Duration,
    ) -> Result<types::Response, CallError> {
        let now = crate::now_rfc3339();
        let deadline = tokio::time::Instant::now() + ceiling;
        self.run_codec(loaded, ceiling, async |store, instance| {
            let prepare = loaded.exports.prepare(&mut *store, instance)?;
            let prepared = match prepare
                .call_async(&mut *store, (&self.shared.base_url, request, &now))
                .await?
                .0
            {
                Ok(prepared) => prepared,
                Err(refused) => return Ok(Err(refused)),
            };
            let http = match http_request(&prepared) {
                Ok(http) => http,
                Err(why) => return Ok(Err(types::Error::RefusedByHost(why))),
            };
            store.data_mut().sent_path = Some(http.uri().path().to_owned());
            let refusal = store.data().refusal.clone();
            let asked = Duration::from_millis(u64::from(prepared.timeout_ms));
            let asked = RequestOptions {
                connect_timeout: Some(asked),
                first_byte_timeout: Some(asked),
                between_bytes_timeout: Some(asked),
            };
            let answer = crate::policy::send(&self.policy, http, Some(asked), ceiling, deadline, &refusal);
            let (status, headers, body) = match read(answer).await {
                Ok(answer) => answer,
                Err(code) => return Ok(Err(transport_error(code))),
            };
            // JSON is UTF-8: a success that is not cannot be the envelope
            // (an error's text is kept, its invalid bytes replaced).
            let body = match body {
                Ok(text) => text,
                Err(_) if (200..300).contains(&status) => {
                    let id = headers
                        .iter()
                        .find(|(name, _)| name == "x-request-id")
                        .map(|(_, v)| v.as_str());
                    return Ok(Err(types::Error::Other(format!(
                        "the API answered {status} with a body that is not UTF-8 text, so not JSON; request id {}",
                        id.unwrap_or("unknown")
                    ))));
                }
                Err(lossy) => lossy,
            };
            let parse = loaded.exports.parse(&mut *store, instance)?;
            Ok(parse
                .call_async(&mut *store, (&prepared, status, &headers, &body, &now))
                .await?
                .0)
        })
        .await
    }
}

/// The HTTP request the component described, if the host will send it: a
/// `GET` (API Entreprise is read-only) to an absolute URL, with no header
/// that only the host may set. Its authority and trace are the policy's.
fn http_request(prepared: &types::Prepared) -> Result<http::Request<wasmtime_wasi_http::WasiBody>, String> {
    let nothing = "; nothing was sent";
    if !prepared.method.eq_ignore_ascii_case("GET") {
        return Err(format!(
            "the component asked for a {} request: API Entreprise is read-only{nothing}",
            prepared.method
        ));
    }
    let uri: http::Uri = prepared
        .url
        .parse()
        .map_err(|_| format!("the component's URL {:?} is not a URL{nothing}", prepared.url))?;
    let forbidden = crate::policy::forbidden_headers();
    let mut builder = http::Request::get(uri);
    for (name, value) in &prepared.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) else {
            return Err(format!(
                "the component's header `{name}` is not a valid header{nothing}"
            ));
        };
        if forbidden(&name) {
            return Err(format!("the component may not set the header `{name}`{nothing}"));
        }
        builder = builder.header(name, value);
    }
    builder
        .body(crate::sender::empty_body())
        .map_err(|e| format!("the component's request is not valid HTTP ({e}){nothing}"))
}

/// The status, the headers and the whole body of an answer, as the
/// component's `parse` takes them: the body as text, or, when it is not
/// UTF-8, as text with its invalid bytes replaced.
type Answer = (u16, Vec<(String, String)>, Result<String, String>);

/// Reads the whole answer.
async fn read(answer: crate::policy::Outbound) -> Result<Answer, HttpError> {
    let (parts, body) = answer.await?.into_parts();
    let body = body.collect().await?.to_bytes();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = String::from_utf8(body.into()).map_err(|bytes| String::from_utf8_lossy(bytes.as_bytes()).into_owned());
    Ok((parts.status.as_u16(), headers, body))
}

/// Why a request sent by the host got no answer, in the contract's terms
/// and the words the component uses on the `wasi:http` path (a refusal by
/// the policy is said by the runner, with its reason).
fn transport_error(code: HttpError) -> types::Error {
    use types::Error as E;
    let transport = |what: &str| E::Transport(what.to_owned());
    match code {
        HttpError::HttpRequestDenied => {
            E::RefusedByHost("the host's policy refused the request before any connection".into())
        }
        HttpError::DestinationIpProhibited => {
            E::RefusedByHost("the host refused the API's address before any connection".into())
        }
        HttpError::ConnectionLimitReached => {
            E::QuotaExceeded("the host's quota has no slot for this request; nothing was sent".into())
        }
        HttpError::ConnectionTimeout => E::Timeout("connecting to the API timed out".into()),
        HttpError::ConnectionReadTimeout | HttpError::HttpResponseTimeout => {
            E::Timeout("the API did not answer in time".into())
        }
        HttpError::ConnectionWriteTimeout => E::Timeout("sending the request timed out".into()),
        HttpError::TlsCertificateError => transport(
            "the server's TLS certificate is not trusted: check the base URL, or give its CA to the host (--ca-cert)",
        ),
        HttpError::TlsProtocolError | HttpError::TlsAlertReceived { .. } => {
            transport("the TLS handshake with the API failed: check that the base URL speaks https")
        }
        HttpError::ConnectionRefused => transport("the connection was refused: nothing listens at the base URL"),
        HttpError::DnsError { .. } | HttpError::DnsTimeout | HttpError::DestinationNotFound => {
            transport("the API's host name could not be resolved: check the base URL and the network")
        }
        HttpError::HttpResponseIncomplete | HttpError::ConnectionTerminated => {
            transport("the answer was cut short: the connection closed before its end")
        }
        HttpError::HttpProtocolError => transport("the server did not answer in HTTP"),
        HttpError::HttpResponseHeaderSectionSize(_) | HttpError::HttpResponseHeaderSize { .. } => {
            transport("the answer's headers are too large")
        }
        HttpError::HttpResponseBodySize(_) => transport("the answer is larger than the host accepts"),
        HttpError::InternalError(Some(m)) => E::Other(m),
        other => E::Transport(format!("{other:?}: check the base URL and the network")),
    }
}
