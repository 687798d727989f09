//! The routes the sandbox serves: the data endpoints of the shared
//! catalogue (generated from the official spec). What the sandbox checks of
//! each request is its own (`validate.rs`), independent of the client's
//! validation, so that each checks the other.

use api_entreprise_catalogue as catalogue;

/// One data route: the spec's operation id, its path template, and its
/// per-token rate-limit group and limit per minute (`throttle.yml`; a group
/// named `group/endpoint` counts each endpoint on its own, as
/// `by_single_endpoint` throttles do, v3 and v4 together).
#[derive(Debug, Clone)]
pub struct Route {
    pub operation: String,
    pub template: &'static str,
    pub group: &'static str,
    pub limit: u32,
}

impl From<&'static catalogue::Endpoint> for Route {
    fn from(e: &'static catalogue::Endpoint) -> Self {
        Self {
            operation: format!("api_entreprise_v{}_{}", e.version, e.id),
            template: e.path,
            group: e.group.name,
            limit: e.group.limit,
        }
    }
}

/// Every data route of the spec.
pub fn all() -> impl Iterator<Item = Route> {
    catalogue::DATA_ENDPOINTS.iter().map(Route::from)
}

/// The data route whose template matches `path`, with the path values by
/// name. A literal segment beats a placeholder (`diffusibles` is not a SIREN).
pub fn matching(path: &str) -> Option<(Route, Vec<(String, String)>)> {
    let (endpoint, values) = catalogue::route(path).filter(|(e, _)| e.needs_trace)?;
    let values = values.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    Some((Route::from(endpoint), values))
}

impl Route {
    /// The provider's two-digit error prefix (siade's `errors_backend.rb`),
    /// from the path.
    pub fn provider_code(&self) -> &'static str {
        let segment = self.template.split('/').nth(2).unwrap_or("");
        match segment {
            "insee" => "01",
            "infogreffe" => "02",
            "dgfip" => "03",
            "urssaf" => "04",
            "qualibat" => "06",
            "ministere_interieur" => "07",
            "cnetp" => "08",
            "probtp" => "09",
            "msa" => "10",
            "opqibi" => "11",
            "fntp" => "12",
            "fabrique_numerique_ministeres_sociaux" => "14",
            "cma_france" => "15",
            "douanes" => "16",
            "banque_de_france" => "17",
            "ademe" => "19",
            "european_commission" => "28",
            "djepva" => "29",
            "gip_mds" => "31",
            "qualifelec" => "32",
            "carif_oref" => "33",
            "inpi" => "34",
            "cibtp" => "38",
            "data_subvention" => "52",
            _ => "00",
        }
    }

    /// The provider's name for the health routes: the path's first segment.
    pub fn provider(&self) -> &'static str {
        self.template.split('/').nth(2).unwrap_or("")
    }
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
        assert!(matching("/pings").is_none(), "the health routes are not data routes");
    }
}
