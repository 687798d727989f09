//! A hostile component for the tests: it implements the `api-entreprise`
//! world, and each of its endpoints misbehaves in one way:
//!
//! - `probe` tries to get at the token and reports everything it saw: it
//!   sends a GET to `req.params[0]` (an absolute URL, any host), first trying
//!   to set `Authorization` itself, and returns a JSON report in
//!   `response.data`: whether the header was accepted, the status, headers
//!   and body it received, and its environment and arguments;
//! - `spin` loops forever without waiting on anything;
//! - `hog` allocates memory without end;
//! - `garbage` returns a well-typed but absurd answer (status 0, data that is
//!   not JSON, a 4 MiB request id, extreme rate-limit numbers);
//! - `garbage-maintenance` sends like `probe`, then claims a maintenance
//!   that ends in `u32::MAX` seconds;
//! - `panic` panics;
//! - any other endpoint id (`pings`, say) sends like `probe`: the component
//!   asks for one endpoint and sends another's path.
//!
//! Its catalogue lies: every endpoint is a free health route with a
//! rate-limit of 0, to try to dodge the host's quotas.
//!
//! Its codec (`codec.prepare` and `codec.parse`, the host's codec path) is
//! as hostile: `spin`, `hog` and `panic` misbehave in `prepare`; `forge`
//! asks the host to send an `Authorization` of its own; any other endpoint
//! asks for a GET of `req.params[0]` whatever the endpoint, and `parse`
//! reports what it was handed (status, headers, body) in `data`, or, for
//! `garbage`, an absurd answer.

wit_bindgen::generate!({
    world: "api-entreprise",
    path: "../../wit",
    generate_all,
});

use api_entreprise::client::types::{
    Endpoint, EndpointKind, Error, Prepared, RateLimitGroup, RateLimitState, Request, Response,
};
use exports::api_entreprise::client::{catalogue, client, codec, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

struct Probe;

impl catalogue::Guest for Probe {
    fn endpoints() -> Vec<Endpoint> {
        let mut all = vec![endpoint("probe", "/probe")];
        for id in ["spin", "hog", "garbage", "panic", "forge"] {
            all.push(endpoint(id, "/probe"));
        }
        // A path whose provider is `insee`, and absurd numbers.
        let mut maintenance = endpoint("garbage-maintenance", "/v3/insee/garbage");
        maintenance.timeout_ms = u32::MAX;
        maintenance.rate_limit.period_seconds = 0;
        all.push(maintenance);
        all
    }
}

fn endpoint(id: &str, path: &str) -> Endpoint {
    Endpoint {
        id: id.into(),
        version: 1,
        title: "hostile probe".into(),
        provider: "tests".into(),
        path: path.into(),
        params: vec![],
        query: vec![],
        kind: EndpointKind::Health,
        timeout_ms: 60_000,
        rate_limit: RateLimitGroup {
            name: "probe".into(),
            limit: 0,
            period_seconds: 60,
        },
        scopes: vec![],
        deprecated: false,
        replaced_by: None,
        maintenance_window: None,
        needs_trace: false,
        requires_user_id: false,
    }
}

impl codec::Guest for Probe {
    fn prepare(_: String, req: Request, _: String) -> Result<Prepared, Error> {
        let mut headers = vec![("user-agent".to_owned(), "hostile-probe".to_owned())];
        match req.endpoint.as_str() {
            "spin" | "hog" | "panic" => misbehave(&req.endpoint),
            "forge" => headers.push(("authorization".into(), "Bearer forged-by-the-guest".into())),
            _ => {}
        }
        Ok(Prepared {
            endpoint: req.endpoint,
            version: 1,
            method: "GET".into(),
            url: req.params.first().cloned().unwrap_or_default(),
            headers,
            timeout_ms: u32::MAX,
        })
    }

    fn parse(
        call: Prepared,
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
        _: String,
    ) -> Result<Response, Error> {
        if call.endpoint == "garbage" {
            return Ok(garbage());
        }
        let report = serde_json::json!({ "status": status, "headers": headers, "body": body });
        Ok(reporting(status, report))
    }
}

/// What `spin`, `hog` and `panic` do, wherever they are asked.
fn misbehave(endpoint: &str) -> ! {
    match endpoint {
        "spin" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "hog" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        _ => panic!("the probe panics on purpose"),
    }
}

/// A well-typed but absurd answer.
fn garbage() -> Response {
    Response {
        status: 0,
        data: "\u{0}{not json".into(),
        links: String::new(),
        meta: "[".into(),
        document: None,
        files: vec![],
        typed: None,
        rate_limit: RateLimitState {
            limit: Some(u32::MAX),
            remaining: Some(u32::MAX),
            reset_at: Some("\u{0}".repeat(1 << 10)),
            retry_after_seconds: Some(u32::MAX),
        },
        request_id: Some("x".repeat(4 << 20)),
    }
}

impl json::Guest for Probe {
    fn endpoints() -> String {
        "[]".into()
    }

    fn prepare(_: String, _: String, _: String) -> Result<String, String> {
        Err("the probe has no codec".into())
    }

    fn parse(_: String, _: u16, _: String, _: String, _: String) -> Result<String, String> {
        Err("the probe has no codec".into())
    }
}

fn from_code(code: ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => Error::RefusedByHost("denied".into()),
        ErrorCode::ConnectionLimitReached => Error::QuotaExceeded("quota".into()),
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout => Error::Timeout("timeout".into()),
        other => Error::Transport(format!("{other:?}")),
    }
}

fn no_rate_limit() -> RateLimitState {
    RateLimitState {
        limit: None,
        remaining: None,
        reset_at: None,
        retry_after_seconds: None,
    }
}

impl client::Guest for Probe {
    fn call(_: String, req: Request) -> Result<Response, Error> {
        match req.endpoint.as_str() {
            "spin" | "hog" | "panic" => misbehave(&req.endpoint),
            "garbage" => Ok(garbage()),
            "garbage-maintenance" => Err(probe(req).map_or_else(|e| e, |_| maintenance_forever())),
            _ => probe(req),
        }
    }
}

/// A maintenance that "ends" in `u32::MAX` seconds.
fn maintenance_forever() -> Error {
    Error::Api(api_entreprise::client::types::ApiError {
        status: 503,
        kind: api_entreprise::client::types::ApiErrorKind::Maintenance,
        errors: vec![],
        text: None,
        provider: Some("insee".into()),
        retryable: true,
        retry_after_seconds: Some(u32::MAX),
        rate_limit: no_rate_limit(),
        request_id: None,
    })
}

/// The generated `Error` is large; this mirrors the exported `call`'s type.
#[allow(clippy::result_large_err)]
fn probe(req: Request) -> Result<Response, Error> {
    let url = req.params.first().cloned().unwrap_or_default();
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", &url));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));

    let headers = Fields::new();
    let set_authorization = match headers.append("authorization", b"Bearer forged-by-the-guest") {
        Ok(()) => "accepted".to_owned(),
        Err(e) => format!("{e:?}"),
    };
    let from_list = match Fields::from_list(&[("Authorization".into(), b"Bearer forged".to_vec())]) {
        Ok(_) => "accepted".to_owned(),
        Err(e) => format!("{e:?}"),
    };
    let request = OutgoingRequest::new(headers);
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(if path.is_empty() { "/" } else { path }));
    let pending = outgoing_handler::handle(request, None).map_err(from_code)?;
    pending.subscribe().block();
    let response = pending.get().unwrap().unwrap().map_err(from_code)?;
    let status = response.status();
    let seen_headers: Vec<(String, String)> = response
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = response.consume().unwrap();
    let stream = body.stream().unwrap();
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(65536) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Error::Transport(e.to_debug_string()));
            }
        }
    }
    let report = serde_json::json!({
        "set_authorization": set_authorization,
        "authorization_from_list": from_list,
        "status": status,
        "headers": seen_headers,
        "body": String::from_utf8_lossy(&bytes),
        "env": std::env::vars().collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
    });
    Ok(reporting(status, report))
}

/// An answer whose `data` is what the probe reports.
fn reporting(status: u16, report: serde_json::Value) -> Response {
    Response {
        status,
        data: report.to_string(),
        links: "{}".into(),
        meta: "{}".into(),
        document: None,
        files: vec![],
        typed: None,
        rate_limit: no_rate_limit(),
        request_id: None,
    }
}

// Native builds (clippy) export nothing: WIT export names are not native symbols.
#[cfg(target_arch = "wasm32")]
export!(Probe);
