//! The client component of a running gateway: swapped in every profile's
//! runtime together (when the command sees the component file change, on
//! SIGHUP, or through `/admin/component`), rolled back, and every change
//! counted in the metrics and said on standard error.
//!
//! The admin routes exist only when the configuration has an
//! `admin_key_sha256`, and answer only to that key:
//!
//! - `GET /admin/component`: the version each profile runs, and the one
//!   kept for a rollback;
//! - `POST /admin/component` with a component's bytes as the body: checks
//!   and swaps (`?accept_differences=true` to swap past the canary's
//!   refusals), answering the report (200 swapped, 409 refused, 400 not
//!   loadable);
//! - `POST /admin/component/rollback`: the previous version again.

use std::sync::Arc;

use api_entreprise::swap::{RollbackReason, SwapError, SwapEvent, SwapReport};
use api_entreprise::{ComponentSource, VersionInfo};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::server::Gateway;

/// The largest component the admin route takes (the client is about 0.5 MB).
const MAX_COMPONENT_BYTES: usize = 32 << 20;

impl Gateway {
    /// Swaps every profile's runtime to `source`, all or none: if one
    /// refuses, those already swapped are rolled back. Returns the first
    /// profile's report (they run the same versions).
    pub async fn swap_component(
        &self,
        source: &ComponentSource,
        accept_differences: bool,
    ) -> Result<SwapReport, SwapError> {
        let mut swapped = Vec::new();
        let mut first = None;
        for profile in self.profiles() {
            match profile.runtime.swap(source, accept_differences).await {
                Ok(report) => {
                    swapped.push(profile);
                    first.get_or_insert(report);
                }
                Err(e) => {
                    for profile in swapped {
                        let _ = profile.runtime.rollback();
                    }
                    return Err(e);
                }
            }
        }
        first.ok_or(SwapError::NothingToRollBack)
    }

    /// The version the first profile runs (all run the same but after an
    /// automatic rollback).
    pub fn component(&self) -> Option<VersionInfo> {
        self.profiles().next().map(|p| p.runtime.component())
    }

    /// Rolls every profile's runtime back to its previous version.
    pub fn rollback_component(&self) -> Result<VersionInfo, SwapError> {
        let mut now = Err(SwapError::NothingToRollBack);
        for profile in self.profiles() {
            let rolled = profile.runtime.rollback();
            if now.is_err() {
                now = rolled;
            }
        }
        now
    }

    /// Listens to every profile's version changes: each is counted in the
    /// metrics and said on standard error.
    pub fn watch_components(self: &Arc<Self>) {
        self.show_components();
        for profile in self.profiles() {
            let mut events = profile.runtime.subscribe();
            let (gateway, name) = (Arc::downgrade(self), profile.name.clone());
            tokio::spawn(async move {
                loop {
                    let event = match events.recv().await {
                        Ok(event) => event,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    };
                    let Some(gateway) = gateway.upgrade() else { return };
                    let outcome = match &event {
                        SwapEvent::Swapped { from, to } => {
                            eprintln!("profile {name}: the client component {to} replaces {from}");
                            "swapped"
                        }
                        SwapEvent::Refused { reason } => {
                            eprintln!("profile {name}: {reason}");
                            "refused"
                        }
                        SwapEvent::RolledBack { from, to, reason } => {
                            eprintln!("profile {name}: the client component {from} was rolled back to {to}: {reason}");
                            match reason {
                                RollbackReason::Asked => "rolled_back",
                                _ => "rolled_back_automatically",
                            }
                        }
                        _ => "other",
                    };
                    gateway.metrics().swap(outcome);
                    gateway.show_components();
                }
            });
        }
    }

    /// Sets the component metric to what each profile runs now.
    fn show_components(&self) {
        let versions: Vec<(String, String)> = self
            .profiles()
            .map(|p| (p.name.clone(), p.runtime.component().to_string()))
            .collect();
        self.metrics().components(&versions);
    }

    /// The admin routes, when the configuration has an administrator key.
    pub(crate) fn admin_router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/admin/component", get(status).post(swap))
            .route("/admin/component/rollback", post(rollback))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_COMPONENT_BYTES))
            .with_state(self)
    }

    /// The answer to a request without the administrator's key: the API's
    /// own 404 when no key is configured (the routes do not exist), else a
    /// 401. `None` when `headers` carry the key.
    fn admin_refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let Some(expected) = self.admin_key() else {
            return Some(crate::answer::not_found());
        };
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let hash = crate::config::hash_key(key);
        if bool::from(hash.as_bytes().ct_eq(expected.as_bytes())) {
            return None;
        }
        let refusal = "the admin routes need the administrator's key as the bearer token\n";
        Some((StatusCode::UNAUTHORIZED, refusal).into_response())
    }
}

fn version_json(info: &VersionInfo) -> serde_json::Value {
    serde_json::json!({
        "version": info.version,
        "digest": info.digest,
        "source": info.source.display().to_string(),
    })
}

async fn status(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = gateway.admin_refusal(&headers) {
        return refusal;
    }
    let profiles: serde_json::Map<String, serde_json::Value> = gateway
        .profiles()
        .map(|p| {
            let value = serde_json::json!({
                "current": version_json(&p.runtime.component()),
                "previous": p.runtime.previous_component().as_ref().map(version_json),
            });
            (p.name.clone(), value)
        })
        .collect();
    let body = serde_json::json!({ "profiles": profiles }).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(serde::Deserialize)]
struct SwapQuery {
    #[serde(default)]
    accept_differences: bool,
}

async fn swap(
    State(gateway): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(query): Query<SwapQuery>,
    body: Bytes,
) -> Response {
    if let Some(refusal) = gateway.admin_refusal(&headers) {
        return refusal;
    }
    if body.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "send the component's bytes as the body (curl --data-binary @client.wasm)\n",
        )
            .into_response();
    }
    let source = ComponentSource::Bytes(body.to_vec().into());
    match gateway.swap_component(&source, query.accept_differences).await {
        Ok(report) => (StatusCode::OK, format!("{report}\n")).into_response(),
        Err(SwapError::Refused(report)) => (StatusCode::CONFLICT, format!("{report}\n")).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn rollback(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = gateway.admin_refusal(&headers) {
        return refusal;
    }
    match gateway.rollback_component() {
        Ok(now) => (StatusCode::OK, format!("rolled back: {now} serves\n")).into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}
