//! The endpoints this client knows: the shared catalogue (generated from the
//! official spec), with the look-up that says what to do when it fails.

pub use api_entreprise_catalogue::{Endpoint, Kind, ParamKind, Typed, replacement};

use crate::error::Error;

/// Endpoints this build has beyond the shared catalogue: none, but in the
/// `testing-next` build the tests swap to (a newer client with one more).
#[cfg(not(feature = "testing-next"))]
const EXTRA: &[Endpoint] = &[];
#[cfg(feature = "testing-next")]
const EXTRA: &[Endpoint] = &[Endpoint {
    id: "insee_unites_legales_diffusion",
    version: 4,
    title: "Statut de diffusion d'une unité légale (build d'essai)",
    provider: "INSEE",
    path: "/v4/insee/sirene/unites_legales/{siren}/diffusion",
    params: &[("siren", ParamKind::Siren)],
    query: &[],
    kind: Kind::Json,
    timeout_ms: 5000,
    group: api_entreprise_catalogue::Group {
        name: "json_resources_entreprise",
        limit: 250,
        period_seconds: 60,
    },
    scopes: &["unites_legales_etablissements_insee"],
    deprecated: false,
    replaced_by: None,
    maintenance: None,
    needs_trace: true,
    requires_user_id: false,
    typed: Typed::None,
}];

/// Every route this client knows.
pub fn all() -> impl Iterator<Item = &'static Endpoint> {
    api_entreprise_catalogue::all().chain(EXTRA)
}

/// Finds `id` in `version`, or in the newest non-deprecated version when
/// `version` is `None` (the newest deprecated one if all are deprecated).
pub fn find(id: &str, version: Option<u8>) -> Result<&'static Endpoint, Error> {
    if let Some(endpoint) = api_entreprise_catalogue::find_among(all(), id, version) {
        return Ok(endpoint);
    }
    let known: Vec<String> = all().filter(|e| e.id == id).map(|e| e.version.to_string()).collect();
    // Without a pinned version, an id that has versions always resolves.
    Err(Error::UnknownEndpoint(match version {
        Some(v) if !known.is_empty() => format!(
            "endpoint `{id}` has no version {v} (code 00402); it has version {}",
            known.join(", ")
        ),
        _ => format!("no endpoint `{id}` in the catalogue; list them with `api-entreprise endpoints`"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_version_is_honoured_and_an_unknown_one_refused() {
        assert_eq!(find("insee_etablissements", Some(3)).unwrap().version, 3);
        let err = find("insee_etablissements", Some(2)).unwrap_err();
        assert!(matches!(err, Error::UnknownEndpoint(m) if m.contains("00402") && m.contains("3, 4")));
    }

    #[test]
    fn an_unknown_id_is_refused() {
        assert!(matches!(find("nope", None), Err(Error::UnknownEndpoint(_))));
    }
}
