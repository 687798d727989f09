//! The one send through `wasi:http/outgoing-handler`: a bodiless GET (no
//! `.body()` on it: a client that opens and writes a body it does not need
//! saw intermittent "connection reset" on plain GETs, as wstd 0.6's did), the
//! timeouts of the endpoint's kind, and a bounded read of the answer.

use crate::error::Error;
use crate::request::HttpRequest;
use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{ErrorCode, Fields, IncomingBody, Method, OutgoingRequest, RequestOptions, Scheme};
use crate::wasi::io::streams::StreamError;

/// The largest answer the client reads; API Entreprise's JSON is far smaller.
const MAX_BODY_BYTES: usize = 16 << 20;

/// Seconds since the Unix epoch, from the host's wall clock.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Status, headers and body of an answer.
pub type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// Sends `req` and reads the whole answer.
pub fn send(req: &HttpRequest) -> Result<Answer, Error> {
    let headers = Fields::new();
    for (name, value) in &req.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| Error::Other(format!("the host refused the header `{name}`: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let scheme = if req.base.https { Scheme::Https } else { Scheme::Http };
    let set = [
        outgoing.set_method(&Method::Get),
        outgoing.set_scheme(Some(&scheme)),
        outgoing.set_authority(Some(&req.base.authority)),
        outgoing.set_path_with_query(Some(&req.path_and_query)),
    ];
    if set.iter().any(Result::is_err) {
        return Err(Error::Other(format!("the host refused the URL {}", req.url())));
    }
    let options = RequestOptions::new();
    let timeout_ns = u64::from(req.timeout_ms) * 1_000_000;
    // The host clamps these whatever we ask; asking keeps us honest on hosts
    // without a policy of their own.
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));

    let pending = outgoing_handler::handle(outgoing, Some(options)).map_err(from_code)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| Error::Other("the host gave no response after signalling one".into()))?
        .map_err(|()| Error::Other("the host gave the response twice".into()))?
        .map_err(from_code)?;

    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = response
        .consume()
        .map_err(|()| Error::Other("the response body was already taken".into()))?;
    let bytes = read_body(&body)?;
    drop(response);
    let trailers = IncomingBody::finish(body);
    drop(trailers);
    Ok((status, headers, bytes))
}

fn read_body(body: &IncomingBody) -> Result<Vec<u8>, Error> {
    let stream = body
        .stream()
        .map_err(|()| Error::Other("the response body stream was already taken".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_BODY_BYTES {
                    return Err(Error::Other(format!(
                        "the answer is larger than {} MiB; refusing to read it",
                        MAX_BODY_BYTES >> 20
                    )));
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match crate::wasi::http::types::http_error_code(&e) {
                    Some(code) => from_code(code),
                    None => Error::Transport(format!("reading the answer failed: {}", e.to_debug_string())),
                });
            }
        }
    }
}

/// Maps the transport's error codes to the client's cases. The host reports
/// its own refusals as `HTTP-request-denied` (policy) and
/// `connection-limit-reached` (quota).
fn from_code(code: ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => {
            Error::RefusedByHost("the host's policy refused the request before any connection".into())
        }
        ErrorCode::ConnectionLimitReached => {
            Error::QuotaExceeded("the host's quota has no slot for this request; nothing was sent".into())
        }
        ErrorCode::ConnectionTimeout => Error::Timeout("connecting to the API timed out".into()),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            Error::Timeout("the API did not answer in time".into())
        }
        ErrorCode::ConnectionWriteTimeout => Error::Timeout("sending the request timed out".into()),
        ErrorCode::DestinationIpProhibited => {
            Error::RefusedByHost("the host refused the API's address before any connection".into())
        }
        ErrorCode::TlsCertificateError => Error::Transport(
            "the server's TLS certificate is not trusted: check the base URL, or give its CA to the host (--ca-cert)"
                .into(),
        ),
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            Error::Transport("the TLS handshake with the API failed: check that the base URL speaks https".into())
        }
        ErrorCode::ConnectionRefused => {
            Error::Transport("the connection was refused: nothing listens at the base URL".into())
        }
        ErrorCode::DnsError(_) | ErrorCode::DnsTimeout | ErrorCode::DestinationNotFound => {
            Error::Transport("the API's host name could not be resolved: check the base URL and the network".into())
        }
        ErrorCode::HttpResponseIncomplete | ErrorCode::ConnectionTerminated => {
            Error::Transport("the answer was cut short: the connection closed before its end".into())
        }
        ErrorCode::HttpProtocolError => Error::Transport("the server did not answer in HTTP".into()),
        ErrorCode::HttpResponseHeaderSectionSize(_) | ErrorCode::HttpResponseHeaderSize(_) => {
            Error::Transport("the answer's headers are too large".into())
        }
        ErrorCode::HttpResponseBodySize(_) => Error::Transport("the answer is larger than the host accepts".into()),
        ErrorCode::InternalError(Some(m)) => Error::Other(m),
        other => Error::Transport(format!("{other:?}: check the base URL and the network")),
    }
}
