//! `GET /dossiers/{id}?use_case=…`: the dossier of one company or
//! association (`api-entreprise-dossier`), gathered by the gateway with the
//! application's profile, for an application that works under that use
//! case; the answer is its manifest, and `GET /dossiers/{id}/{file}` serves
//! the files it lists. Each application's dossiers are kept apart, under
//! `dossiers_dir/APPLICATION/ID-USE_CASE`; asking again resumes (only what
//! is missing, failed or expiring within `renew_within` days is asked).

use std::sync::Arc;

use api_entreprise::types;
use api_entreprise_dossier::{DossierError, Identifier, Manifest, Options, Selection};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::answer;
use crate::audit::AuditLine;
use crate::server::{App, Gateway};

/// The answer to a request under `/dossiers/`.
pub(crate) async fn answer(
    gateway: &Gateway,
    app: &App,
    request: &http::request::Parts,
    audit: &mut AuditLine,
) -> Response {
    audit.endpoint = Some("dossier");
    let Some(root) = &gateway.dossiers_dir else {
        return answer::not_found();
    };
    let forbidden = |audit: &mut AuditLine, detail: &str| {
        audit.codes.push("00100".into());
        answer::refusal(StatusCode::FORBIDDEN, "00100", "Interdit", detail, None)
    };
    let (trace, query) = match app.trace(request, audit) {
        Ok(given) => given,
        Err(refused) => return *refused,
    };
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(case) = app.use_case() else {
        let detail = format!(
            "the application `{}` works under no use case: a dossier is gathered for one (set its use_case)",
            app.name
        );
        return forbidden(audit, &detail);
    };
    if let Some(asked) = param("use_case")
        && asked != case.id
    {
        let detail = format!(
            "the application `{}` works under the use case `{}`, not `{asked}`",
            app.name, case.id
        );
        return forbidden(audit, &detail);
    }
    let rest = request.uri.path().trim_start_matches("/dossiers/");
    let (id, file) = match rest.split_once('/') {
        Some((id, file)) => (id, Some(file)),
        None => (rest, None),
    };
    let identifier: Identifier = match id.parse() {
        Ok(identifier) => identifier,
        Err(why) => {
            audit.codes.push("00303".into());
            return answer::refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "00303",
                "Entité non traitable",
                &why,
                None,
            );
        }
    };
    let dir = root.join(&app.name).join(format!("{}-{}", identifier.value, case.id));
    if let Some(file) = file {
        return serve_file(&dir, file);
    }
    // What the application may call, within what the use case recommends.
    let planned = api_entreprise_dossier::plan::plan(
        case,
        &Selection {
            with_optional: param("with_optional") == Some("true"),
            ..Selection::default()
        },
    )
    .unwrap_or_default();
    let except = planned
        .iter()
        .map(|p| p.endpoint.id)
        .filter(|id| app.endpoints().is_some_and(|allowed| !allowed.contains(*id)))
        .map(str::to_owned)
        .collect();
    let options = Options {
        use_case: case,
        selection: Selection {
            with_optional: param("with_optional") == Some("true"),
            only: Vec::new(),
            except,
        },
        trace,
        renew_within_days: param("renew_within").and_then(|d| d.parse().ok()).unwrap_or(0),
        jobs: 16,
    };
    let planned = match api_entreprise_dossier::prepare(&options) {
        Ok(planned) => planned,
        Err(e) => {
            audit.codes.push("00422".into());
            return answer::refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "00422",
                "Entité non traitable",
                &e.to_string(),
                None,
            );
        }
    };
    // One gathering at a time per dossier; the next one resumes it.
    let busy = {
        let mut busy = gateway.dossiers_busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.entry(dir.clone()).or_default().clone()
    };
    let _one = busy.lock().await;
    // A slot of the application's share for each endpoint it may ask.
    if let Err(denied) = gateway.take_share(&app.share, planned.len()).await {
        let what = format!(
            "the share of the per-IP quota that the {} calls of this dossier need",
            planned.len()
        );
        return crate::server::share_refused(app, denied, types::EndpointKind::Json, &what, audit);
    }
    let runtime = Arc::clone(&app.profile.runtime);
    match api_entreprise_dossier::gather(runtime, &identifier, &dir, &options, |_| {}).await {
        Ok(report) => {
            audit.sent = report.calls > 0;
            for item in &report.manifest.items {
                if let Some(e) = &item.error {
                    audit.codes.extend(e.codes.iter().cloned());
                }
            }
            json(&report.manifest)
        }
        Err(DossierError::Input(why)) => {
            audit.codes.push("00422".into());
            answer::refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "00422",
                "Entité non traitable",
                &why,
                None,
            )
        }
        Err(DossierError::Folder(why)) => {
            tracing::error!(target: "api_entreprise::gateway", "dossier {}: {why}", dir.display());
            audit.codes.push("00500".into());
            answer::refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "00500",
                "Erreur interne",
                "the gateway could not keep the dossier; its log says why",
                None,
            )
        }
    }
}

fn json(manifest: &Manifest) -> Response {
    let mut response = serde_json::to_vec(manifest).unwrap_or_default().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A file the dossier's manifest lists, and only such a file.
fn serve_file(dir: &std::path::Path, file: &str) -> Response {
    let listed = Manifest::read(dir).ok().flatten().is_some_and(|m| {
        m.items
            .iter()
            .any(|i| i.data_file.as_deref() == Some(file) || i.documents.iter().any(|d| d.file == file))
    });
    let Some(bytes) = listed.then(|| std::fs::read(dir.join(file)).ok()).flatten() else {
        return answer::not_found();
    };
    let kind = match file.rsplit('.').next() {
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        _ => "application/json",
    };
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}
