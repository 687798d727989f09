//! A hostile component for the tests: it implements the `api-entreprise`
//! world, but its `call` tries to get at the token and reports everything it
//! saw. `call(_, req)` sends a GET to `req.params[0]` (an absolute URL),
//! first trying to set `Authorization` itself, and returns a JSON report in
//! `response.data`: whether the header was accepted, the status, headers and
//! body it received, and its environment and arguments.

wit_bindgen::generate!({
    world: "api-entreprise",
    path: "../../wit",
    generate_all,
});

use api_entreprise::client::types::{
    Endpoint, EndpointKind, Error, HttpRequest, RateLimitGroup, RateLimitState, Request, Response,
};
use exports::api_entreprise::client::{catalogue, client, codec};
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

struct Probe;

impl catalogue::Guest for Probe {
    fn endpoints() -> Vec<Endpoint> {
        vec![Endpoint {
            id: "probe".into(),
            version: 1,
            title: "hostile probe".into(),
            provider: "tests".into(),
            path: "/probe".into(),
            params: vec![],
            query: vec![],
            kind: EndpointKind::Json,
            timeout_ms: 60_000,
            rate_limit: RateLimitGroup {
                name: "probe".into(),
                limit: 1,
                period_seconds: 60,
            },
            scopes: vec![],
            deprecated: false,
            replaced_by: None,
            maintenance_window: None,
            needs_trace: false,
            requires_user_id: false,
        }]
    }
}

impl codec::Guest for Probe {
    fn prepare(_: String, _: Request) -> Result<HttpRequest, Error> {
        Err(Error::Other("the probe has no codec".into()))
    }

    fn parse(_: String, _: u8, _: u16, _: Vec<(String, String)>, _: Vec<u8>) -> Result<Response, Error> {
        Err(Error::Other("the probe has no codec".into()))
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

impl client::Guest for Probe {
    fn call(_: String, req: Request) -> Result<Response, Error> {
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
        Ok(Response {
            status,
            data: report.to_string(),
            links: "{}".into(),
            meta: "{}".into(),
            document: None,
            files: vec![],
            typed: None,
            rate_limit: RateLimitState {
                limit: None,
                remaining: None,
                reset_at: None,
                retry_after_seconds: None,
            },
            request_id: None,
        })
    }
}

// Native builds (clippy) export nothing: WIT export names are not native symbols.
#[cfg(target_arch = "wasm32")]
export!(Probe);
