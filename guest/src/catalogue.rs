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
    DgfipYear,
    Month,
    Provider,
}

/// How an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Document,
    JsonWithLinks,
    Collection,
    Health,
    Privileges,
}

/// Which typed record `data` is parsed into, besides the document of
/// document endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    None,
    UniteLegale,
    Etablissement,
}

/// A per-token rate-limit group. A limit of 0 means none applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub name: &'static str,
    pub limit: u32,
    pub period_seconds: u32,
}

/// Every per-token limit of API Entreprise is per minute.
const fn group(name: &'static str, limit: u32) -> Group {
    Group {
        name,
        limit,
        period_seconds: 60,
    }
}

/// The routes outside every throttle (`/privileges`, the health routes).
const UNLIMITED: Group = Group {
    name: "",
    limit: 0,
    period_seconds: 0,
};

/// An optional query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryParam {
    pub name: &'static str,
    pub description: &'static str,
    /// The accepted values, when it is an enumeration.
    pub values: &'static [&'static str],
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// One version of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub id: &'static str,
    pub version: u8,
    pub title: &'static str,
    pub provider: &'static str,
    pub path: &'static str,
    pub params: &'static [(&'static str, ParamKind)],
    pub query: &'static [QueryParam],
    pub kind: Kind,
    pub timeout_ms: u32,
    pub group: Group,
    pub scopes: &'static [&'static str],
    pub deprecated: bool,
    /// Another endpoint that replaces this one (a newer version of the same
    /// id is found by [`replacement`]).
    pub replaced_by: Option<&'static str>,
    pub maintenance: Option<&'static str>,
    pub needs_trace: bool,
    pub requires_user_id: bool,
    pub typed: Typed,
}

/// A data endpoint: it needs the trace and counts against its group.
#[expect(clippy::too_many_arguments, reason = "one table row")]
const fn data(
    id: &'static str,
    version: u8,
    title: &'static str,
    provider: &'static str,
    path: &'static str,
    params: &'static [(&'static str, ParamKind)],
    kind: Kind,
    timeout_ms: u32,
    group: Group,
    scopes: &'static [&'static str],
) -> Endpoint {
    Endpoint {
        id,
        version,
        title,
        provider,
        path,
        params,
        query: &[],
        kind,
        timeout_ms,
        group,
        scopes,
        deprecated: false,
        replaced_by: None,
        maintenance: None,
        needs_trace: true,
        requires_user_id: false,
        typed: Typed::None,
    }
}

/// A route that needs neither trace nor quota.
const fn free(id: &'static str, title: &'static str, path: &'static str, kind: Kind) -> Endpoint {
    let mut e = data(id, 0, title, "API Entreprise", path, &[], kind, 5_000, UNLIMITED, &[]);
    e.needs_trace = false;
    e
}

impl Endpoint {
    const fn query(mut self, query: &'static [QueryParam]) -> Self {
        self.query = query;
        self
    }

    const fn typed(mut self, typed: Typed) -> Self {
        self.typed = typed;
        self
    }

    /// DGFIP endpoints: the source document requires `user_id`.
    const fn user_id(mut self) -> Self {
        self.requires_user_id = true;
        self
    }

    const fn maintenance(mut self, window: &'static str) -> Self {
        self.maintenance = Some(window);
        self
    }

    const fn deprecated(mut self) -> Self {
        self.deprecated = true;
        self
    }

    const fn replaced_by(mut self, id: &'static str) -> Self {
        self.replaced_by = Some(id);
        self
    }
}

/// The health routes' provider parameter.
const PROVIDER: &[(&str, ParamKind)] = &[("provider", ParamKind::Provider)];

/// The routes that are not data endpoints: token introspection and health.
pub const FREE_ROUTES: &[Endpoint] = &[
    free("privileges", "Droits du jeton", "/privileges", Kind::Privileges),
    free("pings", "État de tous les fournisseurs", "/pings", Kind::Health),
    Endpoint {
        params: PROVIDER,
        ..free("ping", "État d'un fournisseur", "/ping/{provider}", Kind::Health)
    },
];

/// Every data endpoint of the spec, sorted by id then version. Rows follow
/// `openapi-entreprise.yaml` (paths, titles, deprecation, query parameters),
/// `throttle.yml` (groups), `authorizations.yml` (scopes) and
/// API-ENTREPRISE.md §6 (timeout hints); `tests/` checks them against the spec.
pub const DATA_ENDPOINTS: &[Endpoint] = &[
    data(
        "acoss_attestations_sociales",
        3,
        "Attestation de vigilance",
        "URSSAF",
        "/v3/urssaf/unites_legales/{siren}/attestation_vigilance",
        &[("siren", ParamKind::Siren)],
        Kind::Document,
        30000,
        group("urssaf_attestation_sociales", 100),
        &["attestations_sociales", "attestation_sociale_urssaf"],
    )
    .deprecated(),
    data(
        "acoss_attestations_sociales",
        4,
        "Attestation de vigilance",
        "URSSAF",
        "/v4/urssaf/unites_legales/{siren}/attestation_vigilance",
        &[("siren", ParamKind::Siren)],
        Kind::Document,
        30000,
        group("urssaf_attestation_sociales", 100),
        &["attestations_sociales", "attestation_sociale_urssaf"],
    ),
    data(
        "ademe_certificats_rge",
        3,
        "Certification RGE",
        "ADEME",
        "/v3/ademe/etablissements/{siret}/certification_rge",
        &[("siret", ParamKind::Siret)],
        Kind::Collection,
        12000,
        group("json_resources_entreprise", 250),
        &["certificat_rge_ademe", "open_data"],
    )
    .query(&[QueryParam {
        name: "limit",
        description: "Maximum number of results, 1 to 1000 (default 1000)",
        values: &[],
        min: Some(1),
        max: Some(1000),
    }]),
    data(
        "banque_de_france_bilans_entreprise",
        3,
        "3 derniers bilans annuels",
        "Banque de France",
        "/v3/banque_de_france/unites_legales/{siren}/bilans",
        &[("siren", ParamKind::Siren)],
        Kind::Collection,
        12000,
        group("json_resources_entreprise", 250),
        &["bilans_entreprise_bdf", "bilans_bdf"],
    )
    .maintenance("22:04-22:08"),
    data(
        "carif_oref_certifications_qualiopi_france_competences",
        3,
        "Qualiopi & habilitations France compétences",
        "CARIF-OREF",
        "/v3/carif_oref/etablissements/{siret}/certifications_qualiopi_france_competences",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &["certifications_qualiopi_france_competences"],
    ),
    data(
        "cibtp_attestation_cotisations_conges_payes_chomage_intemperies",
        3,
        "Certificat cotisations CIBTP",
        "CIBTP",
        "/v3/cibtp/etablissements/{siret}/attestation_cotisations_conges_payes_chomage_intemperies",
        &[("siret", ParamKind::Siret)],
        Kind::Document,
        12000,
        group(
            "high_latency_documents/cibtp_attestation_cotisations_conges_payes_chomage_intemperies",
            5,
        ),
        &[
            "certificat_cnetp",
            "certification_cnetp",
            "attestation_cotisations_conges_payes_chomage_intemperies_cibtp_cnetp",
        ],
    ),
    data(
        "cnetp_attestation_cotisations_conges_payes_chomage_intemperies",
        3,
        "Certificat cotisations CNETP",
        "CNETP",
        "/v3/cnetp/unites_legales/{siren}/attestation_cotisations_conges_payes_chomage_intemperies",
        &[("siren", ParamKind::Siren)],
        Kind::Document,
        12000,
        group("low_latency_documents", 50),
        &[
            "certificat_cnetp",
            "certification_cnetp",
            "attestation_cotisations_conges_payes_chomage_intemperies_cibtp_cnetp",
        ],
    )
    .maintenance("06:00-06:30"),
    data(
        "data_subvention_subventions",
        3,
        "Subventions des associations",
        "Data Subvention",
        "/v3/data_subvention/associations/{siren_or_siret_or_rna}/subventions",
        &[("siren_or_siret_or_rna", ParamKind::SirenOrSiretOrRna)],
        Kind::Collection,
        12000,
        group("json_resources_entreprise", 250),
        &["data_subvention_subventions"],
    ),
    data(
        "dgddi_eori",
        3,
        "Immatriculation EORI",
        "DGDDI (Douanes)",
        "/v3/douanes/etablissements/{siret_or_eori}/immatriculations_eori",
        &[("siret_or_eori", ParamKind::SiretOrEori)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &["eori_douanes", "open_data"],
    ),
    data(
        "dgfip_attestations_fiscales",
        3,
        "Attestation fiscale",
        "DGFIP",
        "/v3/dgfip/unites_legales/{siren}/attestation_fiscale",
        &[("siren", ParamKind::Siren)],
        Kind::Document,
        20000,
        group("high_latency_documents/dgfip_attestations_fiscales", 5),
        &["attestations_fiscales", "attestation_fiscale_dgfip"],
    )
    .user_id()
    .maintenance("01:00-02:00")
    .deprecated(),
    data(
        "dgfip_attestations_fiscales",
        4,
        "Attestation fiscale",
        "DGFIP",
        "/v4/dgfip/unites_legales/{siren}/attestation_fiscale",
        &[("siren", ParamKind::Siren)],
        Kind::Document,
        20000,
        group("high_latency_documents/dgfip_attestations_fiscales", 5),
        &["attestations_fiscales", "attestation_fiscale_dgfip"],
    )
    .user_id()
    .maintenance("01:00-02:00"),
    data(
        "dgfip_chiffres_affaires",
        3,
        "Chiffre d'affaires",
        "DGFIP",
        "/v3/dgfip/etablissements/{siret}/chiffres_affaires",
        &[("siret", ParamKind::Siret)],
        Kind::Collection,
        12000,
        group("json_resources_entreprise", 250),
        &["exercices", "chiffre_affaires_dgfip"],
    )
    .user_id()
    .maintenance("01:00-02:00"),
    data(
        "dgfip_liasses_fiscales",
        3,
        "Liasses fiscales",
        "DGFIP",
        "/v3/dgfip/unites_legales/{siren}/liasses_fiscales/{year}",
        &[("siren", ParamKind::Siren), ("year", ParamKind::DgfipYear)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &["liasse_fiscale", "liasses_fiscales_dgfip"],
    )
    .user_id()
    .maintenance("01:00-02:00"),
    data(
        "dgfip_liens_capitalistiques",
        3,
        "Liens capitalistiques",
        "DGFIP",
        "/v3/dgfip/unites_legales/{siren}/liens_capitalistiques/{year}",
        &[("siren", ParamKind::Siren), ("year", ParamKind::DgfipYear)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &[
            "liasse_fiscale",
            "liasses_fiscales_dgfip",
            "liens_capitalistiques_dgfip",
        ],
    )
    .user_id()
    .maintenance("01:00-02:00"),
    data(
        "european_commission_vies",
        3,
        "N°TVA intracommunautaire français",
        "Commission européenne",
        "/v3/european_commission/unites_legales/{siren}/numero_tva",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &[],
    ),
    data(
        "fabrique_numerique_ministeres_sociaux_conventions_collectives",
        3,
        "Conventions collectives",
        "Fabrique numérique des ministères sociaux",
        "/v3/fabrique_numerique_ministeres_sociaux/etablissements/{siret}/conventions_collectives",
        &[("siret", ParamKind::Siret)],
        Kind::Collection,
        12000,
        group("json_resources_entreprise", 250),
        &["conventions_collectives", "open_data"],
    )
    .deprecated(),
    data(
        "fntp_carte_professionnelle_travaux_publics",
        3,
        "Carte professionnelle travaux publics",
        "FNTP",
        "/v3/fntp/unites_legales/{siren}/carte_professionnelle_travaux_publics",
        &[("siren", ParamKind::Siren)],
        Kind::Document,
        12000,
        group("low_latency_documents", 50),
        &["fntp_carte_pro", "open_data"],
    ),
    data(
        "gip_mds_effectifs_annuels_entreprise",
        3,
        "Effectifs annuels d'une unité légale",
        "GIP-MDS",
        "/v3/gip_mds/unites_legales/{siren}/effectifs_annuels/{year}",
        &[("siren", ParamKind::Siren), ("year", ParamKind::Year)],
        Kind::Json,
        12000,
        group("gip_mds", 50),
        &["effectifs_urssaf"],
    )
    .query(&[QueryParam {
        name: "nature_effectif",
        description: "Nature of the headcount (default moyen)",
        values: &["moyen", "boeth", "ecap", "assujettissement_oeth"],
        min: None,
        max: None,
    }]),
    data(
        "gip_mds_effectifs_mensuels_etablissement",
        3,
        "Effectifs mensuels d'un établissement",
        "GIP-MDS",
        "/v3/gip_mds/etablissements/{siret}/effectifs_mensuels/{month}/annee/{year}",
        &[
            ("siret", ParamKind::Siret),
            ("month", ParamKind::Month),
            ("year", ParamKind::Year),
        ],
        Kind::Json,
        12000,
        group("gip_mds", 50),
        &["effectifs_urssaf"],
    )
    .query(&[
        QueryParam {
            name: "profondeur",
            description: "Months returned before the requested one, 0 to 12 (default 0)",
            values: &[],
            min: Some(0),
            max: Some(12),
        },
        QueryParam {
            name: "nature_effectif",
            description: "Nature of the headcount (default moyen)",
            values: &["moyen", "boeth", "ecap", "assujettissement_oeth"],
            min: None,
            max: None,
        },
    ]),
    data(
        "infogreffe_extraits_rcs",
        3,
        "Extrait RCS",
        "Infogreffe",
        "/v3/infogreffe/rcs/unites_legales/{siren}/extrait_kbis",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &["extraits_rcs", "open_data"],
    ),
    data(
        "infogreffe_mandataires_sociaux",
        3,
        "Mandataires sociaux",
        "Infogreffe",
        "/v3/infogreffe/rcs/unites_legales/{siren}/mandataires_sociaux",
        &[("siren", ParamKind::Siren)],
        Kind::Collection,
        12000,
        group("json_resources_entreprise", 250),
        &["entreprises", "mandataires_sociaux_infogreffe"],
    ),
    data(
        "inpi_rne_actes_bilans",
        3,
        "Actes et bilans",
        "INPI - RNE",
        "/v3/inpi/rne/unites_legales/open_data/{siren}/actes_bilans",
        &[("siren", ParamKind::Siren)],
        Kind::JsonWithLinks,
        20000,
        group("inpi_rne/inpi_rne_actes_bilans", 15),
        &["open_data"],
    ),
    data(
        "inpi_rne_beneficiaires_effectifs",
        3,
        "Bénéficiaires effectifs",
        "INPI - RNE",
        "/v3/inpi/rne/unites_legales/{siren}/beneficiaires_effectifs",
        &[("siren", ParamKind::Siren)],
        Kind::Collection,
        20000,
        group("inpi_rne/inpi_rne_beneficiaires_effectifs", 15),
        &["beneficiaires_effectifs_inpi"],
    ),
    data(
        "inpi_rne_extrait_rne",
        3,
        "Attestation d'immatriculation RNE",
        "INPI - RNE",
        "/v3/inpi/rne/unites_legales/{siren}/extrait_rne",
        &[("siren", ParamKind::Siren)],
        Kind::Document,
        20000,
        group("inpi_rne/inpi_rne_extrait_rne", 15),
        &["unites_legales_etablissements_insee"],
    ),
    data(
        "insee_adresses_etablissements",
        3,
        "Adresse établissement",
        "INSEE",
        "/v3/insee/sirene/etablissements/{siret}/adresse",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "unites_legales_etablissements_insee"],
    ),
    data(
        "insee_adresses_etablissements_diffusables",
        3,
        "Adresse établissement en open data",
        "INSEE",
        "/v3/insee/sirene/etablissements/diffusibles/{siret}/adresse",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "open_data"],
    ),
    data(
        "insee_etablissements",
        3,
        "Données établissement",
        "INSEE",
        "/v3/insee/sirene/etablissements/{siret}",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "unites_legales_etablissements_insee"],
    )
    .typed(Typed::Etablissement)
    .deprecated(),
    data(
        "insee_etablissements",
        4,
        "Données établissement",
        "INSEE",
        "/v4/insee/sirene/etablissements/{siret}",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "unites_legales_etablissements_insee"],
    )
    .typed(Typed::Etablissement),
    data(
        "insee_etablissements_diffusables",
        3,
        "Données établissement en open data",
        "INSEE",
        "/v3/insee/sirene/etablissements/diffusibles/{siret}",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "open_data"],
    )
    .typed(Typed::Etablissement)
    .deprecated(),
    data(
        "insee_etablissements_diffusables",
        4,
        "Données établissement en open data",
        "INSEE",
        "/v4/insee/sirene/etablissements/diffusibles/{siret}",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "open_data"],
    )
    .typed(Typed::Etablissement),
    data(
        "insee_sieges_diffusables_unites_legales",
        3,
        "Données siège social en open data",
        "INSEE",
        "/v3/insee/sirene/unites_legales/diffusibles/{siren}/siege_social",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "open_data"],
    )
    .typed(Typed::Etablissement)
    .deprecated(),
    data(
        "insee_sieges_diffusables_unites_legales",
        4,
        "Données siège social en open data",
        "INSEE",
        "/v4/insee/sirene/unites_legales/diffusibles/{siren}/siege_social",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "open_data"],
    )
    .typed(Typed::Etablissement),
    data(
        "insee_sieges_unites_legales",
        3,
        "Données siège social",
        "INSEE",
        "/v3/insee/sirene/unites_legales/{siren}/siege_social",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "unites_legales_etablissements_insee"],
    )
    .typed(Typed::Etablissement)
    .deprecated(),
    data(
        "insee_sieges_unites_legales",
        4,
        "Données siège social",
        "INSEE",
        "/v4/insee/sirene/unites_legales/{siren}/siege_social",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "unites_legales_etablissements_insee"],
    )
    .typed(Typed::Etablissement),
    data(
        "insee_successions",
        3,
        "Liens de succession",
        "INSEE",
        "/v3/insee/sirene/etablissements/{siret}/successions",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["etablissements", "open_data"],
    ),
    data(
        "insee_unites_legales",
        3,
        "Données unité légale",
        "INSEE",
        "/v3/insee/sirene/unites_legales/{siren}",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["entreprises", "unites_legales_etablissements_insee"],
    )
    .typed(Typed::UniteLegale)
    .deprecated(),
    data(
        "insee_unites_legales",
        4,
        "Données unité légale",
        "INSEE",
        "/v4/insee/sirene/unites_legales/{siren}",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["entreprises", "unites_legales_etablissements_insee"],
    )
    .typed(Typed::UniteLegale),
    data(
        "insee_unites_legales_diffusables",
        3,
        "Données unité légale en open data",
        "INSEE",
        "/v3/insee/sirene/unites_legales/diffusibles/{siren}",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["entreprises", "open_data"],
    )
    .typed(Typed::UniteLegale)
    .deprecated(),
    data(
        "insee_unites_legales_diffusables",
        4,
        "Données unité légale en open data",
        "INSEE",
        "/v4/insee/sirene/unites_legales/diffusibles/{siren}",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        5000,
        group("json_resources_entreprise", 250),
        &["entreprises", "open_data"],
    )
    .typed(Typed::UniteLegale),
    data(
        "mi_associations",
        3,
        "Données du RNA d'une association",
        "Ministère de l'Intérieur",
        "/v3/ministere_interieur/rna/associations/{siret_or_rna}",
        &[("siret_or_rna", ParamKind::SiretOrRna)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &["associations", "open_data"],
    )
    .deprecated()
    .replaced_by("mi_unites_legales"),
    data(
        "mi_documents_associations",
        3,
        "Divers documents d'une association",
        "Ministère de l'Intérieur",
        "/v3/ministere_interieur/rna/associations/{siret_or_rna}/documents",
        &[("siret_or_rna", ParamKind::SiretOrRna)],
        Kind::Collection,
        12000,
        group("low_latency_documents", 50),
        &["associations", "open_data"],
    )
    .deprecated()
    .replaced_by("mi_unites_legales"),
    data(
        "mi_unites_legales",
        4,
        "Données association",
        "DJEPVA",
        "/v4/djepva/api-association/associations/{siren_or_rna}",
        &[("siren_or_rna", ParamKind::SirenOrRna)],
        Kind::JsonWithLinks,
        12000,
        group("json_resources_entreprise", 250),
        &["associations_donnees_protegees", "associations_djepva"],
    ),
    data(
        "mi_unites_legales_open_data",
        4,
        "Données association en open data",
        "DJEPVA",
        "/v4/djepva/api-association/associations/open_data/{siren_or_rna}",
        &[("siren_or_rna", ParamKind::SirenOrRna)],
        Kind::JsonWithLinks,
        12000,
        group("json_resources_entreprise", 250),
        &["associations", "open_data"],
    ),
    data(
        "msa_conformites_cotisations",
        3,
        "Conformité cotisations de sécurité sociale agricole",
        "MSA",
        "/v3/msa/etablissements/{siret}/conformite_cotisations",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &["msa_cotisations", "cotisations_msa"],
    )
    .maintenance("03:00-03:30"),
    data(
        "opqibi_certifications_ingenierie",
        3,
        "Certification d'ingénierie OPQIBI",
        "OPQIBI",
        "/v3/opqibi/unites_legales/{siren}/certification_ingenierie",
        &[("siren", ParamKind::Siren)],
        Kind::JsonWithLinks,
        12000,
        group("json_resources_entreprise", 250),
        &["certificat_opqibi", "certification_opqibi", "open_data"],
    ),
    data(
        "probtp_attestations_cotisation_retraite",
        3,
        "Conformité cotisations retraite bâtiment",
        "PRO BTP",
        "/v3/probtp/etablissements/{siret}/attestation_cotisations_retraite",
        &[("siret", ParamKind::Siret)],
        Kind::Document,
        12000,
        group("low_latency_documents", 50),
        &["probtp", "cotisations_probtp"],
    ),
    data(
        "probtp_conformites_cotisations_retraite",
        3,
        "Conformité cotisations retraite complémentaire",
        "PRO BTP",
        "/v3/probtp/etablissements/{siret}/conformite_cotisations_retraite",
        &[("siret", ParamKind::Siret)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &["probtp", "cotisations_probtp"],
    ),
    data(
        "qualibat_certifications_batiment",
        3,
        "Certification Qualibat (PDF seulement)",
        "Qualibat",
        "/v3/qualibat/etablissements/{siret}/certification_batiment",
        &[("siret", ParamKind::Siret)],
        Kind::Document,
        12000,
        group("low_latency_documents", 50),
        &["qualibat", "open_data"],
    )
    .deprecated(),
    data(
        "qualibat_certifications_batiment",
        4,
        "Certification Qualibat",
        "Qualibat",
        "/v4/qualibat/etablissements/{siret}/certification_batiment",
        &[("siret", ParamKind::Siret)],
        Kind::Document,
        12000,
        group("low_latency_documents", 50),
        &["qualibat", "open_data"],
    ),
    data(
        "qualifelec_certificats",
        3,
        "Certification Qualifelec",
        "Qualifelec",
        "/v3/qualifelec/etablissements/{siret}/certificats",
        &[("siret", ParamKind::Siret)],
        Kind::Collection,
        12000,
        group("json_resources_entreprise", 250),
        &["open_data"],
    ),
    data(
        "rnm_entreprises_artisanales",
        3,
        "Données du RNM d'une entreprise artisanale",
        "CMA France",
        "/v3/cma_france/rnm/unites_legales/{siren}",
        &[("siren", ParamKind::Siren)],
        Kind::Json,
        12000,
        group("json_resources_entreprise", 250),
        &["entreprises_artisanales", "open_data"],
    )
    .deprecated(),
];

/// Every route: the data endpoints, then the free ones.
pub fn all() -> impl Iterator<Item = &'static Endpoint> {
    DATA_ENDPOINTS.iter().chain(FREE_ROUTES)
}

/// What replaces a deprecated endpoint: its named successor, else its
/// newest non-deprecated version.
pub fn replacement(e: &Endpoint) -> Option<String> {
    if !e.deprecated {
        return None;
    }
    if let Some(id) = e.replaced_by {
        return Some(id.to_owned());
    }
    all()
        .filter(|n| n.id == e.id && n.version > e.version && !n.deprecated)
        .last()
        .map(|n| format!("{} v{}", n.id, n.version))
}

/// Finds `id` in `version`, or in the newest non-deprecated version when
/// `version` is `None` (the newest deprecated one if all are deprecated).
pub fn find(id: &str, version: Option<u8>) -> Result<&'static Endpoint, Error> {
    let mut versions = all().filter(|e| e.id == id).peekable();
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
    fn deprecated_endpoints_name_their_replacement() {
        let v3 = find("insee_unites_legales", Some(3)).unwrap();
        assert_eq!(replacement(v3).as_deref(), Some("insee_unites_legales v4"));
        assert_eq!(
            replacement(find("mi_associations", None).unwrap()).as_deref(),
            Some("mi_unites_legales")
        );
        assert_eq!(replacement(find("insee_unites_legales", None).unwrap()), None);
    }

    #[test]
    fn every_path_names_its_params_in_order_and_its_version() {
        for e in all() {
            if e.version > 0 {
                assert!(e.path.starts_with(&format!("/v{}/", e.version)), "{}", e.path);
            }
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
