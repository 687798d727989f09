//! The gateway's HTTP face: API Entreprise's own routes, each request
//! authenticated by an application key, checked against the application's
//! rules, counted against its share of the per-IP quotas, then called
//! through the host runtime of the application's profile (the component
//! validates, the host counts, sends with the real token, and parses).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use api_entreprise::quota::{QuotaKey, QuotaSpec};
use api_entreprise::{Quotas, Runtime, types};
use api_entreprise_catalogue as catalogue;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::answer;
use crate::config::Config;

/// The trace fields an application may have fixed.
const TRACE_FIELDS: [&str; 3] = ["context", "recipient", "object"];

/// One application, as the gateway checks its calls.
struct App {
    name: String,
    key_sha256: [u8; 32],
    runtime: Arc<Runtime>,
    fixed: Vec<(&'static str, String)>,
    endpoints: Option<BTreeSet<String>>,
    share: Vec<QuotaKey>,
    origins: Vec<String>,
}

/// The gateway: its applications and the quotas of their shares.
pub struct Gateway {
    apps: Vec<App>,
    shares: Quotas,
}

/// Why the gateway cannot start from a configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GatewayError(String);

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Gateway {
    /// The gateway for `config`, calling through `runtimes` (one per
    /// profile, by name), with each application's share of `ip_quotas`.
    pub fn new(
        config: &Config,
        runtimes: &BTreeMap<String, Arc<Runtime>>,
        ip_quotas: &[QuotaSpec],
    ) -> Result<Self, GatewayError> {
        let shares = config.shares();
        let mut apps = Vec::new();
        for (name, app) in &config.applications {
            let runtime = runtimes
                .get(&app.profile)
                .ok_or_else(|| GatewayError(format!("no runtime for the profile `{}`", app.profile)))?;
            let key_sha256 = decode_hash(&app.key_sha256.to_ascii_lowercase())
                .ok_or_else(|| GatewayError(format!("application `{name}`: `key_sha256` is not 64 hex digits")))?;
            let share = shares.get(name).copied().unwrap_or(0.0);
            let fixed = TRACE_FIELDS
                .into_iter()
                .zip([&app.context, &app.recipient, &app.object])
                .filter_map(|(field, value)| Some((field, value.clone()?)))
                .collect();
            apps.push(App {
                name: name.clone(),
                key_sha256,
                runtime: runtime.clone(),
                fixed,
                endpoints: app.endpoints.as_ref().map(|e| e.iter().cloned().collect()),
                share: ip_quotas
                    .iter()
                    .map(|q| QuotaKey {
                        name: format!("application {name} {q}"),
                        spec: QuotaSpec {
                            // Its share, rounded down, but never nothing.
                            limit: ((f64::from(q.limit) * share).floor() as u32).max(1),
                            window: q.window,
                        },
                    })
                    .collect(),
                origins: app.cors_origins.clone(),
            });
        }
        Ok(Self {
            apps,
            shares: Quotas::new(),
        })
    }

    /// The routes: `/healthz`, `/readyz`, and every other path answered as
    /// API Entreprise would.
    pub fn router(self: Arc<Self>) -> Router {
        let origins: Vec<HeaderValue> = self
            .apps
            .iter()
            .flat_map(|a| a.origins.iter())
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET])
            .allow_headers([header::AUTHORIZATION, header::ACCEPT])
            .expose_headers(
                [
                    "ratelimit-limit",
                    "ratelimit-remaining",
                    "ratelimit-reset",
                    "retry-after",
                    "x-request-id",
                ]
                .map(HeaderName::from_static),
            )
            .max_age(Duration::from_secs(600));
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(|| async { "ready\n" }))
            .fallback(api)
            .layer(cors)
            .with_state(self)
    }

    /// Serves on `listener` until `shutdown` resolves, then lets the calls
    /// in flight finish (each within its own deadline).
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// The application whose key `authorization` carries, comparing with
    /// every key in constant time.
    fn authenticate(&self, authorization: Option<&HeaderValue>) -> Option<&App> {
        let key = authorization?.to_str().ok()?.strip_prefix("Bearer ")?;
        let hash = crate::config::hash_key(key);
        let hash = decode_hash(&hash)?;
        let mut found = None;
        for app in &self.apps {
            if bool::from(app.key_sha256.ct_eq(&hash)) {
                found = Some(app);
            }
        }
        found
    }
}

/// Every API route.
async fn api(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    if request.method() != Method::GET {
        return answer::refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "00405",
            "Méthode non autorisée",
            "API Entreprise answers GET only",
            None,
        );
    }
    let Some(app) = gateway.authenticate(request.headers().get(header::AUTHORIZATION)) else {
        return answer::unauthorized();
    };
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !app.origins.iter().any(|o| o.as_bytes() == origin.as_bytes())
    {
        let detail = format!("the application `{}` does not allow this browser origin", app.name);
        return answer::refusal(StatusCode::FORBIDDEN, "00100", "Interdit", &detail, None);
    }
    let path = request.uri().path().to_owned();
    let Some((endpoint, values)) = catalogue::route(&path) else {
        return answer::not_found();
    };
    if app
        .endpoints
        .as_ref()
        .is_some_and(|allowed| !allowed.contains(endpoint.id))
    {
        let detail = format!("the application `{}` may not call `{}`", app.name, endpoint.id);
        return answer::refusal(StatusCode::FORBIDDEN, "00100", "Interdit", &detail, None);
    }
    let mut trace = types::Trace {
        context: String::new(),
        recipient: String::new(),
        object: String::new(),
        user_id: None,
    };
    let mut query = Vec::new();
    for (name, value) in form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).into_owned() {
        match name.as_str() {
            "context" => trace.context = value,
            "recipient" => trace.recipient = value,
            "object" => trace.object = value,
            "user_id" => trace.user_id = Some(value),
            _ => query.push((name, value)),
        }
    }
    for (field, fixed) in &app.fixed {
        let given = match *field {
            "context" => &mut trace.context,
            "recipient" => &mut trace.recipient,
            _ => &mut trace.object,
        };
        if !given.is_empty() && given != fixed {
            let detail = format!(
                "the application `{}` always calls with its own `{field}`: leave it out or give the same value",
                app.name
            );
            return answer::refusal(StatusCode::FORBIDDEN, "00100", "Interdit", &detail, None);
        }
        fixed.clone_into(given);
    }
    if let Err(wait) = gateway.shares.try_acquire(&app.share).await {
        let detail = format!(
            "the application `{}` has spent its share of the per-IP quota ({}): nothing was sent",
            app.name, wait.quota
        );
        return answer::refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "00429",
            "Trop de requêtes",
            &detail,
            Some(wait.retry_after),
        );
    }
    let call = types::Request {
        endpoint: endpoint.id.to_owned(),
        version: Some(endpoint.version),
        params: values.iter().map(|(_, v)| (*v).to_owned()).collect(),
        query,
        trace,
    };
    let kind = match endpoint.kind {
        catalogue::Kind::Health => types::EndpointKind::Health,
        catalogue::Kind::Privileges => types::EndpointKind::Privileges,
        _ => types::EndpointKind::Json,
    };
    answer::from_call(kind, app.runtime.call(&call).await).into_response()
}
