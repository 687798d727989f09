//! The routes the sandbox serves, written from the OpenAPI spec
//! independently of the client's catalogue, so that each checks the other.

/// One route: the spec's operation id, its path template, and its per-token
/// rate-limit group and limit per minute (`throttle.yml`; a group named
/// `group/endpoint` counts each endpoint on its own, as `by_single_endpoint`
/// throttles do, v3 and v4 together).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub operation: &'static str,
    pub template: &'static str,
    pub group: &'static str,
    pub limit: u32,
}

const fn route(operation: &'static str, template: &'static str, group: &'static str, limit: u32) -> Route {
    Route {
        operation,
        template,
        group,
        limit,
    }
}

/// Every data route of the spec.
pub static ROUTES: &[Route] = &[
    route(
        "api_entreprise_v3_acoss_attestations_sociales",
        "/v3/urssaf/unites_legales/{siren}/attestation_vigilance",
        "urssaf_attestation_sociales",
        100,
    ),
    route(
        "api_entreprise_v3_ademe_certificats_rge",
        "/v3/ademe/etablissements/{siret}/certification_rge",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_banque_de_france_bilans_entreprise",
        "/v3/banque_de_france/unites_legales/{siren}/bilans",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_carif_oref_certifications_qualiopi_france_competences",
        "/v3/carif_oref/etablissements/{siret}/certifications_qualiopi_france_competences",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_cibtp_attestation_cotisations_conges_payes_chomage_intemperies",
        "/v3/cibtp/etablissements/{siret}/attestation_cotisations_conges_payes_chomage_intemperies",
        "high_latency_documents/cibtp_attestation_cotisations_conges_payes_chomage_intemperies",
        5,
    ),
    route(
        "api_entreprise_v3_cnetp_attestation_cotisations_conges_payes_chomage_intemperies",
        "/v3/cnetp/unites_legales/{siren}/attestation_cotisations_conges_payes_chomage_intemperies",
        "low_latency_documents",
        50,
    ),
    route(
        "api_entreprise_v3_data_subvention_subventions",
        "/v3/data_subvention/associations/{siren_or_siret_or_rna}/subventions",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_dgddi_eori",
        "/v3/douanes/etablissements/{siret_or_eori}/immatriculations_eori",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_dgfip_attestations_fiscales",
        "/v3/dgfip/unites_legales/{siren}/attestation_fiscale",
        "high_latency_documents/dgfip_attestations_fiscales",
        5,
    ),
    route(
        "api_entreprise_v4_dgfip_attestations_fiscales",
        "/v4/dgfip/unites_legales/{siren}/attestation_fiscale",
        "high_latency_documents/dgfip_attestations_fiscales",
        5,
    ),
    route(
        "api_entreprise_v3_dgfip_chiffres_affaires",
        "/v3/dgfip/etablissements/{siret}/chiffres_affaires",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_dgfip_liasses_fiscales",
        "/v3/dgfip/unites_legales/{siren}/liasses_fiscales/{year}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_dgfip_liens_capitalistiques",
        "/v3/dgfip/unites_legales/{siren}/liens_capitalistiques/{year}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_mi_unites_legales",
        "/v4/djepva/api-association/associations/{siren_or_rna}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_mi_unites_legales_open_data",
        "/v4/djepva/api-association/associations/open_data/{siren_or_rna}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_european_commission_vies",
        "/v3/european_commission/unites_legales/{siren}/numero_tva",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_fabrique_numerique_ministeres_sociaux_conventions_collectives",
        "/v3/fabrique_numerique_ministeres_sociaux/etablissements/{siret}/conventions_collectives",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_fntp_carte_professionnelle_travaux_publics",
        "/v3/fntp/unites_legales/{siren}/carte_professionnelle_travaux_publics",
        "low_latency_documents",
        50,
    ),
    route(
        "api_entreprise_v3_gip_mds_effectifs_annuels_entreprise",
        "/v3/gip_mds/unites_legales/{siren}/effectifs_annuels/{year}",
        "gip_mds",
        50,
    ),
    route(
        "api_entreprise_v3_gip_mds_effectifs_mensuels_etablissement",
        "/v3/gip_mds/etablissements/{siret}/effectifs_mensuels/{month}/annee/{year}",
        "gip_mds",
        50,
    ),
    route(
        "api_entreprise_v3_infogreffe_extraits_rcs",
        "/v3/infogreffe/rcs/unites_legales/{siren}/extrait_kbis",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_infogreffe_mandataires_sociaux",
        "/v3/infogreffe/rcs/unites_legales/{siren}/mandataires_sociaux",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_inpi_rne_actes_bilans",
        "/v3/inpi/rne/unites_legales/open_data/{siren}/actes_bilans",
        "inpi_rne/inpi_rne_actes_bilans",
        15,
    ),
    route(
        "api_entreprise_v3_inpi_rne_beneficiaires_effectifs",
        "/v3/inpi/rne/unites_legales/{siren}/beneficiaires_effectifs",
        "inpi_rne/inpi_rne_beneficiaires_effectifs",
        15,
    ),
    route(
        "api_entreprise_v3_inpi_rne_extrait_rne",
        "/v3/inpi/rne/unites_legales/{siren}/extrait_rne",
        "inpi_rne/inpi_rne_extrait_rne",
        15,
    ),
    route(
        "api_entreprise_v3_insee_adresses_etablissements",
        "/v3/insee/sirene/etablissements/{siret}/adresse",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_insee_adresses_etablissements_diffusables",
        "/v3/insee/sirene/etablissements/diffusibles/{siret}/adresse",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_insee_etablissements",
        "/v3/insee/sirene/etablissements/{siret}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_insee_etablissements",
        "/v4/insee/sirene/etablissements/{siret}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_insee_etablissements_diffusables",
        "/v3/insee/sirene/etablissements/diffusibles/{siret}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_insee_etablissements_diffusables",
        "/v4/insee/sirene/etablissements/diffusibles/{siret}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_insee_sieges_diffusables_unites_legales",
        "/v3/insee/sirene/unites_legales/diffusibles/{siren}/siege_social",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_insee_sieges_diffusables_unites_legales",
        "/v4/insee/sirene/unites_legales/diffusibles/{siren}/siege_social",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_insee_sieges_unites_legales",
        "/v3/insee/sirene/unites_legales/{siren}/siege_social",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_insee_sieges_unites_legales",
        "/v4/insee/sirene/unites_legales/{siren}/siege_social",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_insee_successions",
        "/v3/insee/sirene/etablissements/{siret}/successions",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_insee_unites_legales",
        "/v3/insee/sirene/unites_legales/{siren}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_insee_unites_legales",
        "/v4/insee/sirene/unites_legales/{siren}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_insee_unites_legales_diffusables",
        "/v3/insee/sirene/unites_legales/diffusibles/{siren}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_insee_unites_legales_diffusables",
        "/v4/insee/sirene/unites_legales/diffusibles/{siren}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_mi_documents_associations",
        "/v3/ministere_interieur/rna/associations/{siret_or_rna}/documents",
        "low_latency_documents",
        50,
    ),
    route(
        "api_entreprise_v3_mi_associations",
        "/v3/ministere_interieur/rna/associations/{siret_or_rna}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_msa_conformites_cotisations",
        "/v3/msa/etablissements/{siret}/conformite_cotisations",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_opqibi_certifications_ingenierie",
        "/v3/opqibi/unites_legales/{siren}/certification_ingenierie",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_probtp_attestations_cotisation_retraite",
        "/v3/probtp/etablissements/{siret}/attestation_cotisations_retraite",
        "low_latency_documents",
        50,
    ),
    route(
        "api_entreprise_v3_probtp_conformites_cotisations_retraite",
        "/v3/probtp/etablissements/{siret}/conformite_cotisations_retraite",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_qualibat_certifications_batiment",
        "/v3/qualibat/etablissements/{siret}/certification_batiment",
        "low_latency_documents",
        50,
    ),
    route(
        "api_entreprise_v4_qualibat_certifications_batiment",
        "/v4/qualibat/etablissements/{siret}/certification_batiment",
        "low_latency_documents",
        50,
    ),
    route(
        "api_entreprise_v3_qualifelec_certificats",
        "/v3/qualifelec/etablissements/{siret}/certificats",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v3_rnm_entreprises_artisanales",
        "/v3/cma_france/rnm/unites_legales/{siren}",
        "json_resources_entreprise",
        250,
    ),
    route(
        "api_entreprise_v4_acoss_attestations_sociales",
        "/v4/urssaf/unites_legales/{siren}/attestation_vigilance",
        "urssaf_attestation_sociales",
        100,
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
    }
}
