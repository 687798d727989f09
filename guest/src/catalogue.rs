//! The endpoints this client knows: one entry per version of an endpoint.
//!
//! Ids are the spec's operation ids (`x-operationId`) without their
//! `api_entreprise_vN_` prefix. Rate-limit groups come from `throttle.yml`,
//! timeout hints from API-ENTREPRISE.md §6.

use crate::error::Error;

/// What a path parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Siren,
    Siret,
    Rna,
    SiretOrRna,
    SirenOrRna,
    SirenOrSiretOrRna,
    SiretOrEori,
    Year,
    Month,
}

/// How an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Document,
    JsonWithLinks,
    Collection,
}

/// Which typed record `data` is parsed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    None,
    UniteLegale,
    Etablissement,
}

/// A per-token rate-limit group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub name: &'static str,
    pub limit: u32,
    pub period_seconds: u32,
}

/// `json_resources_entreprise`: one counter shared by the JSON endpoints.
pub const JSON_RESOURCES: Group = Group {
    name: "json_resources_entreprise",
    limit: 250,
    period_seconds: 60,
};

/// One version of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub id: &'static str,
    pub version: u8,
    pub title: &'static str,
    pub provider: &'static str,
    pub path: &'static str,
    pub params: &'static [(&'static str, ParamKind)],
    pub query: &'static [(&'static str, &'static str)],
    pub kind: Kind,
    pub timeout_ms: u32,
    pub group: Group,
    pub deprecated: bool,
    pub requires_user_id: bool,
    pub typed: Typed,
}

/// INSEE answers within 2 s + 2 s upstream; 5 s is the doc's JSON advice.
const INSEE_TIMEOUT_MS: u32 = 5_000;

const SIREN: &[(&str, ParamKind)] = &[("siren", ParamKind::Siren)];
const SIRET: &[(&str, ParamKind)] = &[("siret", ParamKind::Siret)];

const fn insee(
    id: &'static str,
    version: u8,
    title: &'static str,
    path: &'static str,
    params: &'static [(&'static str, ParamKind)],
    typed: Typed,
    deprecated: bool,
) -> Endpoint {
    Endpoint {
        id,
        version,
        title,
        provider: "INSEE",
        path,
        params,
        query: &[],
        kind: Kind::Json,
        timeout_ms: INSEE_TIMEOUT_MS,
        group: JSON_RESOURCES,
        deprecated,
        requires_user_id: false,
        typed,
    }
}

/// Every endpoint, grouped by id, oldest version first.
pub const ENDPOINTS: &[Endpoint] = &[
    insee(
        "insee_unites_legales",
        3,
        "Données de référence d'une unité légale",
        "/v3/insee/sirene/unites_legales/{siren}",
        SIREN,
        Typed::UniteLegale,
        true,
    ),
    insee(
        "insee_unites_legales",
        4,
        "Données de référence d'une unité légale",
        "/v4/insee/sirene/unites_legales/{siren}",
        SIREN,
        Typed::UniteLegale,
        false,
    ),
    insee(
        "insee_unites_legales_diffusables",
        3,
        "Données de référence d'une unité légale diffusible",
        "/v3/insee/sirene/unites_legales/diffusibles/{siren}",
        SIREN,
        Typed::UniteLegale,
        true,
    ),
    insee(
        "insee_unites_legales_diffusables",
        4,
        "Données de référence d'une unité légale diffusible",
        "/v4/insee/sirene/unites_legales/diffusibles/{siren}",
        SIREN,
        Typed::UniteLegale,
        false,
    ),
    insee(
        "insee_sieges_unites_legales",
        3,
        "Siège social d'une unité légale",
        "/v3/insee/sirene/unites_legales/{siren}/siege_social",
        SIREN,
        Typed::Etablissement,
        true,
    ),
    insee(
        "insee_sieges_unites_legales",
        4,
        "Siège social d'une unité légale",
        "/v4/insee/sirene/unites_legales/{siren}/siege_social",
        SIREN,
        Typed::Etablissement,
        false,
    ),
    insee(
        "insee_sieges_diffusables_unites_legales",
        3,
        "Siège social diffusible d'une unité légale",
        "/v3/insee/sirene/unites_legales/diffusibles/{siren}/siege_social",
        SIREN,
        Typed::Etablissement,
        true,
    ),
    insee(
        "insee_sieges_diffusables_unites_legales",
        4,
        "Siège social diffusible d'une unité légale",
        "/v4/insee/sirene/unites_legales/diffusibles/{siren}/siege_social",
        SIREN,
        Typed::Etablissement,
        false,
    ),
    insee(
        "insee_etablissements",
        3,
        "Données de référence d'un établissement",
        "/v3/insee/sirene/etablissements/{siret}",
        SIRET,
        Typed::Etablissement,
        true,
    ),
    insee(
        "insee_etablissements",
        4,
        "Données de référence d'un établissement",
        "/v4/insee/sirene/etablissements/{siret}",
        SIRET,
        Typed::Etablissement,
        false,
    ),
    insee(
        "insee_etablissements_diffusables",
        3,
        "Données de référence d'un établissement diffusible",
        "/v3/insee/sirene/etablissements/diffusibles/{siret}",
        SIRET,
        Typed::Etablissement,
        true,
    ),
    insee(
        "insee_etablissements_diffusables",
        4,
        "Données de référence d'un établissement diffusible",
        "/v4/insee/sirene/etablissements/diffusibles/{siret}",
        SIRET,
        Typed::Etablissement,
        false,
    ),
    insee(
        "insee_adresses_etablissements",
        3,
        "Adresse d'un établissement",
        "/v3/insee/sirene/etablissements/{siret}/adresse",
        SIRET,
        Typed::None,
        false,
    ),
    insee(
        "insee_adresses_etablissements_diffusables",
        3,
        "Adresse d'un établissement diffusible",
        "/v3/insee/sirene/etablissements/diffusibles/{siret}/adresse",
        SIRET,
        Typed::None,
        false,
    ),
    insee(
        "insee_successions",
        3,
        "Prédécesseurs et successeurs d'un établissement",
        "/v3/insee/sirene/etablissements/{siret}/successions",
        SIRET,
        Typed::None,
        false,
    ),
];

/// Finds `id` in `version`, or in the newest non-deprecated version when
/// `version` is `None` (the newest deprecated one if all are deprecated).
pub fn find(id: &str, version: Option<u8>) -> Result<&'static Endpoint, Error> {
    let mut versions = ENDPOINTS.iter().filter(|e| e.id == id).peekable();
    if versions.peek().is_none() {
        return Err(Error::UnknownEndpoint(format!(
            "no endpoint `{id}` in the catalogue; list them with `api-entreprise endpoints`"
        )));
    }
    let versions: Vec<_> = versions.collect();
    match version {
        Some(v) => versions.iter().find(|e| e.version == v).copied().ok_or_else(|| {
            let known: Vec<String> = versions.iter().map(|e| e.version.to_string()).collect();
            Error::UnknownEndpoint(format!(
                "endpoint `{id}` has no version {v} (code 00402); it has version {}",
                known.join(", ")
            ))
        }),
        None => Ok(versions
            .iter()
            .rev()
            .find(|e| !e.deprecated)
            .or(versions.last())
            .copied()
            .expect("at least one version was found above")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_non_deprecated_version_is_the_default() {
        assert_eq!(find("insee_unites_legales", None).unwrap().version, 4);
        assert_eq!(find("insee_successions", None).unwrap().version, 3);
    }

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

    #[test]
    fn every_path_names_its_params_in_order_and_its_version() {
        for e in ENDPOINTS {
            assert!(e.path.starts_with(&format!("/v{}/", e.version)), "{}", e.path);
            let mut rest = e.path;
            for (name, _) in e.params {
                let at = rest
                    .find(&format!("{{{name}}}"))
                    .unwrap_or_else(|| panic!("{} lacks {name}", e.path));
                rest = &rest[at..];
            }
            assert_eq!(e.path.matches('{').count(), e.params.len(), "{}", e.path);
        }
    }
}
