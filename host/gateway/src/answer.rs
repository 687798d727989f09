//! Answers in API Entreprise's own shapes: the `{data, links, meta}`
//! envelope with the `RateLimit-*` and `X-Request-ID` headers on success,
//! and the JSON:API `{"errors": [...]}` body (or the server's plain text)
//! with its status on failure, so that an existing client of the API reads
//! the gateway's answers unchanged.
//!
//! The gateway's own refusals use the API's codes where the API has one
//! (`00101` an unknown key, `00100` a route the application may not call,
//! `00429` a full quota, the `00xxx` of local validation); what only a
//! gateway can meet (the upstream's silence, a broken connection) gets
//! `00502`, `00503` or `00504`, which the API itself never sends.

use std::time::Duration;

use api_entreprise::{CallError, types};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

/// One JSON:API error object, as the API writes them.
pub fn item(code: &str, title: &str, detail: &str, parameter: Option<&str>) -> Value {
    json!({
        "code": code,
        "title": title,
        "detail": detail,
        "source": parameter.map(|p| json!({ "parameter": p })),
        "meta": {},
    })
}

/// A JSON answer.
fn json_answer(status: StatusCode, body: String) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res
}

/// A JSON:API error answer.
pub fn errors(status: StatusCode, items: Vec<Value>) -> Response {
    json_answer(status, json!({ "errors": items }).to_string())
}

/// The gateway's own refusal, with a `Retry-After` when it knows one.
pub fn refusal(status: StatusCode, code: &str, title: &str, detail: &str, retry_after: Option<Duration>) -> Response {
    let mut res = errors(status, vec![item(code, title, detail, None)]);
    if let Some(wait) = retry_after {
        let seconds = wait.as_secs_f64().ceil().max(1.0);
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds as u64));
    }
    res
}

/// 401 for a missing or unknown application key.
pub fn unauthorized() -> Response {
    errors(
        StatusCode::UNAUTHORIZED,
        vec![item(
            "00101",
            "Interdit",
            "Votre token n'est pas valide ou n'est pas renseigné: give this application's key as `Authorization: Bearer <key>`",
            Some("token"),
        )],
    )
}

/// The API's plain-text 404 for a route it does not have.
pub fn not_found() -> Response {
    let mut res = Response::new(Body::from("Not Found"));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// The `RateLimit-*`, `Retry-After` and `X-Request-ID` headers as the API
/// sent them.
fn upstream_headers(res: &mut Response, limits: &types::RateLimitState, request_id: Option<&str>) {
    let headers = res.headers_mut();
    let mut set = |name: &'static str, value: Option<String>| {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    };
    set("ratelimit-limit", limits.limit.map(|v| v.to_string()));
    set("ratelimit-remaining", limits.remaining.map(|v| v.to_string()));
    set("ratelimit-reset", limits.reset_at.as_deref().and_then(unix_seconds));
    set("retry-after", limits.retry_after_seconds.map(|v| v.to_string()));
    set("x-request-id", request_id.map(str::to_owned));
}

/// An ISO 8601 instant back to the Unix seconds the API's header carries.
fn unix_seconds(instant: &str) -> Option<String> {
    time::OffsetDateTime::parse(instant, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp().to_string())
}

/// A success, in the shape the API gave it.
fn success(kind: types::EndpointKind, r: &types::Response) -> Response {
    let body = match kind {
        // The health routes' body is the status itself.
        types::EndpointKind::Health => r.data.clone(),
        types::EndpointKind::Privileges => format!(r#"{{"data":{}}}"#, r.data),
        _ => format!(r#"{{"data":{},"links":{},"meta":{}}}"#, r.data, r.links, r.meta),
    };
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut res = json_answer(status, body);
    upstream_headers(&mut res, &r.rate_limit, r.request_id.as_deref());
    res
}

/// One error object of an answer, back in the API's shape.
fn api_item(i: &types::ErrorItem) -> Value {
    json!({
        "code": i.code,
        "title": i.title,
        "detail": i.detail,
        "source": i.parameter.as_ref().map(|p| json!({ "parameter": p })),
        "meta": i.meta.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()).unwrap_or(json!({})),
    })
}

/// What a call through the host gives, as the caller's answer.
pub fn from_call(kind: types::EndpointKind, result: Result<types::Response, CallError>) -> Response {
    use types::Error as E;
    let error = match result {
        Ok(r) => return success(kind, &r),
        Err(CallError::Client(c)) => c.0,
        Err(CallError::RateLimited { quota, retry_after }) => {
            let detail = format!("the gateway's quota {quota} is full: nothing was sent; retry later");
            return refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "00429",
                "Trop de requêtes",
                &detail,
                Some(retry_after),
            );
        }
        Err(e @ CallError::QuotaStoreUnavailable(_)) => {
            // Fail closed, and say it is the store, not a full quota.
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "00503",
                "Service indisponible",
                &e.to_string(),
                Some(std::time::Duration::from_secs(1)),
            );
        }
        Err(CallError::TokenRefused { fault, retry_after }) => {
            // The API's own answer to a refused token, without asking it again.
            let (code, title) = (fault.code.clone(), fault.title.clone());
            let detail = CallError::TokenRefused { fault, retry_after }.to_string();
            return refusal(StatusCode::UNAUTHORIZED, &code, &title, &detail, Some(retry_after));
        }
        Err(e @ CallError::CircuitOpen { retry_after, .. }) => {
            let detail = e.to_string();
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "00503",
                "Service indisponible",
                &detail,
                Some(retry_after),
            );
        }
        Err(e @ CallError::Deadline(_)) => {
            return refusal(
                StatusCode::GATEWAY_TIMEOUT,
                "00504",
                "Délai dépassé",
                &e.to_string(),
                None,
            );
        }
        Err(e) => {
            return refusal(
                StatusCode::BAD_GATEWAY,
                "00502",
                "Erreur du client",
                &e.to_string(),
                None,
            );
        }
    };
    match error {
        E::InvalidInput(items) => errors(StatusCode::UNPROCESSABLE_ENTITY, items.iter().map(api_item).collect()),
        E::Api(api) => {
            let status = StatusCode::from_u16(api.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut res = match (&api.text, api.errors.is_empty()) {
                (Some(text), true) => {
                    let mut res = Response::new(Body::from(text.clone()));
                    *res.status_mut() = status;
                    res
                }
                (None, true) => {
                    let mut res = Response::new(Body::empty());
                    *res.status_mut() = status;
                    res
                }
                _ => errors(status, api.errors.iter().map(api_item).collect()),
            };
            upstream_headers(&mut res, &api.rate_limit, api.request_id.as_deref());
            res
        }
        E::UnknownEndpoint(_) => not_found(),
        E::Timeout(m) => refusal(StatusCode::GATEWAY_TIMEOUT, "00504", "Délai dépassé", &m, None),
        E::QuotaExceeded(m) => refusal(StatusCode::TOO_MANY_REQUESTS, "00429", "Trop de requêtes", &m, None),
        E::RefusedByHost(m) => refusal(StatusCode::FORBIDDEN, "00100", "Interdit", &m, None),
        E::Transport(m) | E::Other(m) => refusal(StatusCode::BAD_GATEWAY, "00502", "Erreur de l'amont", &m, None),
    }
}
