//! The routes the sandbox serves, written from the OpenAPI spec
//! independently of the client's catalogue, so that each checks the other.

/// One route: the spec's operation id, its path template, and its per-token
/// rate-limit group and limit per minute (`throttle.yml`).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub operation: &'static str,
    pub template: &'static str,
    pub group: &'static str,
    pub limit: u32,
}

const fn json(operation: &'static str, template: &'static str) -> Route {
    Route {
        operation,
        template,
        group: "json_resources_entreprise",
        limit: 250,
    }
}

/// Every route, v3 and v4.
pub static ROUTES: &[Route] = &[
    json(
        "api_entreprise_v3_insee_unites_legales",
        "/v3/insee/sirene/unites_legales/{siren}",
    ),
    json(
        "api_entreprise_v4_insee_unites_legales",
        "/v4/insee/sirene/unites_legales/{siren}",
    ),
    json(
        "api_entreprise_v3_insee_unites_legales_diffusables",
        "/v3/insee/sirene/unites_legales/diffusibles/{siren}",
    ),
    json(
        "api_entreprise_v4_insee_unites_legales_diffusables",
        "/v4/insee/sirene/unites_legales/diffusibles/{siren}",
    ),
    json(
        "api_entreprise_v3_insee_sieges_unites_legales",
        "/v3/insee/sirene/unites_legales/{siren}/siege_social",
    ),
    json(
        "api_entreprise_v4_insee_sieges_unites_legales",
        "/v4/insee/sirene/unites_legales/{siren}/siege_social",
    ),
    json(
        "api_entreprise_v3_insee_sieges_diffusables_unites_legales",
        "/v3/insee/sirene/unites_legales/diffusibles/{siren}/siege_social",
    ),
    json(
        "api_entreprise_v4_insee_sieges_diffusables_unites_legales",
        "/v4/insee/sirene/unites_legales/diffusibles/{siren}/siege_social",
    ),
    json(
        "api_entreprise_v3_insee_etablissements",
        "/v3/insee/sirene/etablissements/{siret}",
    ),
    json(
        "api_entreprise_v4_insee_etablissements",
        "/v4/insee/sirene/etablissements/{siret}",
    ),
    json(
        "api_entreprise_v3_insee_etablissements_diffusables",
        "/v3/insee/sirene/etablissements/diffusibles/{siret}",
    ),
    json(
        "api_entreprise_v4_insee_etablissements_diffusables",
        "/v4/insee/sirene/etablissements/diffusibles/{siret}",
    ),
    json(
        "api_entreprise_v3_insee_adresses_etablissements",
        "/v3/insee/sirene/etablissements/{siret}/adresse",
    ),
    json(
        "api_entreprise_v3_insee_adresses_etablissements_diffusables",
        "/v3/insee/sirene/etablissements/diffusibles/{siret}/adresse",
    ),
    json(
        "api_entreprise_v3_insee_successions",
        "/v3/insee/sirene/etablissements/{siret}/successions",
    ),
];

/// The route whose template matches `path`, with the path values by name.
/// A literal segment beats a placeholder (`diffusibles` is not a SIREN).
pub fn matching(path: &str) -> Option<(&'static Route, Vec<(String, String)>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES
        .iter()
        .filter_map(|route| {
            let template: Vec<&str> = route.template.split('/').collect();
            if template.len() != segments.len() {
                return None;
            }
            let mut values = Vec::new();
            let mut literals = 0;
            for (t, s) in template.iter().zip(&segments) {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    values.push((name.to_owned(), (*s).to_owned()));
                } else if t == s {
                    literals += 1;
                } else {
                    return None;
                }
            }
            Some((literals, route, values))
        })
        .max_by_key(|(literals, _, _)| *literals)
        .map(|(_, route, values)| (route, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_placeholders() {
        let (route, values) = matching("/v3/insee/sirene/unites_legales/diffusibles/552049447").unwrap();
        assert_eq!(route.operation, "api_entreprise_v3_insee_unites_legales_diffusables");
        assert_eq!(values, [("siren".to_owned(), "552049447".to_owned())]);
        assert!(matching("/v3/insee/nothing").is_none());
    }
}
