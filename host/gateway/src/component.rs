//! The client component of a running gateway: swapped in every profile's
//! runtime together (when the command sees the component file change, on
//! SIGHUP, or through `/admin/component`), rolled back, and every change
//! counted in the metrics and said on standard error.
//!
//! The admin routes exist only when the configuration has an
//! `admin_key_sha256` (otherwise their paths are unknown paths, the API's
//! plain 404), and answer only to that key, which is checked before a byte
//! of the body is read; a body is at most [`MAX_COMPONENT_BYTES`] and must
//! arrive within [`BODY_DEADLINE`]:
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
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};

use crate::server::Gateway;

/// The largest component the admin route takes (the client is about 0.5 MB).
pub const MAX_COMPONENT_BYTES: usize = 8 << 20;

/// The longest an admin body may take to arrive.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

impl Gateway {
    /// Swaps every profile's runtime to `source`, all or none: if one
    /// refuses, those already swapped are rolled back. Returns the first
    /// profile's report (they run the same versions).
    pub async fn swap_component(
        &self,
        source: &ComponentSource,
        accept_differences: bool,
    ) -> Result<SwapReport, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
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
        self.profiles().first().map(|p| p.runtime.component())
    }

    /// Rolls every profile's runtime back to its previous version.
    pub async fn rollback_component(&self) -> Result<VersionInfo, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
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
            self.watch_component_of(&profile);
        }
    }

    /// Listens to `profile`'s version changes.
    pub(crate) fn watch_component_of(self: &Arc<Self>, profile: &crate::server::ProfileState) {
        {
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
                    let (outcome, said) = match &event {
                        SwapEvent::Swapped { from, to } => {
                            ("swapped", format!("the client component {to} replaces {from}"))
                        }
                        SwapEvent::Refused { reason } => ("refused", reason.to_string()),
                        SwapEvent::RolledBack { from, to, reason } => {
                            let outcome = match reason {
                                RollbackReason::Asked => "rolled_back",
                                _ => "rolled_back_automatically",
                            };
                            (
                                outcome,
                                format!("the client component {from} was rolled back to {to}: {reason}"),
                            )
                        }
                        _ => ("other", String::new()),
                    };
                    if !said.is_empty() {
                        eprintln!("profile {name}: {said}");
                    }
                    gateway.metrics().swap(outcome);
                    if let Some(books) = gateway.books() {
                        books.swap(&name, outcome, said);
                    }
                    gateway.show_components();
                }
            });
        }
    }

    /// Sets the component metric to what each profile runs now.
    pub(crate) fn show_components(&self) {
        let versions: Vec<(String, String)> = self
            .profiles()
            .iter()
            .map(|p| (p.name.clone(), p.runtime.component().to_string()))
            .collect();
        self.metrics().components(&versions);
    }
}

/// Answers `request` if it is for an admin route and an administrator's key
/// is configured; otherwise gives it back, untouched, for the API's routes.
pub(crate) async fn admin(gateway: &Arc<Gateway>, request: Request) -> Result<Response, Request> {
    let path = request.uri().path();
    let route = match path {
        "/admin/component" => Route::Component,
        "/admin/component/rollback" => Route::Rollback,
        _ => return Err(request),
    };
    if gateway.admin_key().is_none() {
        return Err(request);
    }
    if !gateway.is_admin(request.headers().get(header::AUTHORIZATION)) {
        let refusal = "the admin routes need the administrator's key as the bearer token\n";
        return Ok((StatusCode::UNAUTHORIZED, refusal).into_response());
    }
    Ok(match (route, request.method().clone()) {
        (Route::Component, Method::GET) => status(gateway),
        (Route::Component, Method::POST) => swap(gateway, request).await,
        (Route::Rollback, Method::POST) => rollback(gateway).await,
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "GET or POST /admin/component, POST /admin/component/rollback\n",
        )
            .into_response(),
    })
}

enum Route {
    Component,
    Rollback,
}

fn version_json(info: &VersionInfo) -> serde_json::Value {
    serde_json::json!({
        "version": info.version,
        "digest": info.digest,
        "source": info.source.display().to_string(),
    })
}

fn status(gateway: &Gateway) -> Response {
    let profiles: serde_json::Map<String, serde_json::Value> = gateway
        .profiles()
        .iter()
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

/// Reads the component from the body (capped, under its deadline), checks
/// it and swaps it in (`?accept_differences=true` past the canary).
async fn swap(gateway: &Gateway, request: Request) -> Response {
    let accept_differences = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "accept_differences" && v == "true"))
        .unwrap_or(false);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = format!(
        "a component is at most {} MiB: this one is larger\n",
        MAX_COMPONENT_BYTES >> 20
    );
    if declared.is_some_and(|n| n > MAX_COMPONENT_BYTES as u64) {
        return (StatusCode::PAYLOAD_TOO_LARGE, too_large).into_response();
    }
    let body = tokio::time::timeout(
        BODY_DEADLINE,
        axum::body::to_bytes(request.into_body(), MAX_COMPONENT_BYTES),
    )
    .await;
    let body = match body {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return (StatusCode::PAYLOAD_TOO_LARGE, too_large).into_response(),
        Err(_) => {
            let late = format!(
                "the component's bytes did not arrive within {} s\n",
                BODY_DEADLINE.as_secs()
            );
            return (StatusCode::REQUEST_TIMEOUT, late).into_response();
        }
    };
    if body.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "send the component's bytes as the body (curl --data-binary @client.wasm)\n",
        )
            .into_response();
    }
    let source = ComponentSource::Bytes(body.to_vec().into());
    match gateway.swap_component(&source, accept_differences).await {
        Ok(report) => (StatusCode::OK, format!("{report}\n")).into_response(),
        Err(SwapError::Refused(report)) => (StatusCode::CONFLICT, format!("{report}\n")).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn rollback(gateway: &Gateway) -> Response {
    match gateway.rollback_component().await {
        Ok(now) => (StatusCode::OK, format!("rolled back: {now} serves\n")).into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}
