//! The client component of a running gateway: one compiled client for
//! every profile (they share one engine), swapped for all together (when the command sees the component file change, on
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
    /// One runtime per engine the profiles run on, with what to call its
    /// profiles in a message: every profile of a gateway the command built
    /// shares one engine, whose swap switches them all; an embedder may
    /// give runtimes of several.
    pub(crate) fn engines(&self) -> Vec<(String, Arc<api_entreprise::Runtime>)> {
        let profiles = self.profiles();
        let mut engines: Vec<(Vec<&str>, Arc<api_entreprise::Runtime>)> = Vec::new();
        for profile in &profiles {
            match engines.iter_mut().find(|(_, r)| r.shares_engine_with(&profile.runtime)) {
                Some((names, _)) => names.push(&profile.name),
                None => engines.push((vec![&profile.name], profile.runtime.clone())),
            }
        }
        let single = engines.len() == 1;
        engines
            .into_iter()
            .map(|(names, runtime)| {
                let label = match names.as_slice() {
                    [one] => format!("profile {one}"),
                    _ if single => format!("every profile ({})", names.len()),
                    [first, rest @ ..] => format!("profile {first} and {} other(s)", rest.len()),
                    [] => String::new(),
                };
                (label, runtime)
            })
            .collect()
    }

    /// Swaps every profile to `source`, all or none: the profiles share an
    /// engine, compiled once and switched together; where an embedder gave
    /// several engines and one refuses, those already swapped are rolled
    /// back. Returns the first engine's report.
    pub async fn swap_component(
        &self,
        source: &ComponentSource,
        accept_differences: bool,
    ) -> Result<SwapReport, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let mut swapped = Vec::new();
        let mut first = None;
        for (_, runtime) in self.engines() {
            match runtime.swap(source, accept_differences).await {
                Ok(report) => {
                    swapped.push(runtime);
                    first.get_or_insert(report);
                }
                Err(e) => {
                    for runtime in swapped {
                        let _ = runtime.rollback();
                    }
                    return Err(e);
                }
            }
        }
        first.ok_or(SwapError::NothingToRollBack)
    }

    /// The version the first profile runs (all run the same but after an
    /// automatic rollback on an embedder's second engine).
    pub fn component(&self) -> Option<VersionInfo> {
        self.profiles().first().map(|p| p.runtime.component())
    }

    /// Rolls every profile back to its previous version.
    pub async fn rollback_component(&self) -> Result<VersionInfo, SwapError> {
        let _one_at_a_time = self.swapping.lock().await;
        let mut now = Err(SwapError::NothingToRollBack);
        for (_, runtime) in self.engines() {
            let rolled = runtime.rollback();
            if now.is_err() {
                now = rolled;
            }
        }
        now
    }

    /// Listens to the version changes of every engine the profiles run on
    /// (one, unless an embedder gave several): each is counted in the
    /// metrics and said on standard error. A profile added later on the
    /// same engine is heard already.
    pub fn watch_components(self: &Arc<Self>) {
        self.show_components();
        for (label, runtime) in self.engines() {
            self.watch_engine(label, &runtime);
        }
    }

    /// Listens to `profile`'s version changes, unless its engine is heard.
    pub(crate) fn watch_component_of(self: &Arc<Self>, profile: &crate::server::ProfileState) {
        let heard = self
            .profiles()
            .iter()
            .any(|p| p.name != profile.name && p.runtime.shares_engine_with(&profile.runtime));
        if !heard {
            self.watch_engine(format!("profile {}", profile.name), &profile.runtime);
        }
    }

    /// Listens to the version changes of `runtime`'s engine (`label` says
    /// whose profiles).
    fn watch_engine(self: &Arc<Self>, label: String, runtime: &api_entreprise::Runtime) {
        let mut events = runtime.subscribe();
        let gateway = Arc::downgrade(self);
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
                    eprintln!("{label}: {said}");
                }
                gateway.metrics().swap(outcome);
                if let Some(books) = gateway.books() {
                    books.swap(&label, outcome, said);
                }
                gateway.show_components();
            }
        });
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
