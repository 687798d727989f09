//! The endpoints of API Entreprise: one entry per version of an endpoint,
//! and the look-ups that the client component, the host's policy and the
//! sandbox share.
//!
//! The data endpoints are generated from the official spec (`spec/`) by
//! `cargo xtask codegen` into `generated.rs`; only the routes the spec does
//! not list (the health routes) are written here. No dependencies: the
//! crate builds for every target, `wasm32` included.

mod generated;

pub use generated::{DATA_ENDPOINTS, USE_CASE_UNRESOLVED, USE_CASES};

/// What a path parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A SIREN (9 digits, Luhn).
    Siren,
    /// A SIRET (14 digits, Luhn, or La Poste's).
    Siret,
    /// An RNA number (`W` + 9 digits).
    Rna,
    /// A SIRET or an RNA number.
    SiretOrRna,
    /// A SIREN or an RNA number.
    SirenOrRna,
    /// A SIREN, a SIRET or an RNA number.
    SirenOrSiretOrRna,
    /// A SIRET or an EORI number.
    SiretOrEori,
    /// A year (4 digits, not in the future).
    Year,
    /// A DGFIP fiscal year (2006 to last year).
    DgfipYear,
    /// A month, `01` to `12`.
    Month,
    /// A provider's name (the health routes).
    Provider,
}

impl ParamKind {
    /// Its name in the WIT contract (`siren-or-rna`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Siren => "siren",
            Self::Siret => "siret",
            Self::Rna => "rna",
            Self::SiretOrRna => "siret-or-rna",
            Self::SirenOrRna => "siren-or-rna",
            Self::SirenOrSiretOrRna => "siren-or-siret-or-rna",
            Self::SiretOrEori => "siret-or-eori",
            Self::Year => "year",
            Self::DgfipYear => "dgfip-year",
            Self::Month => "month",
            Self::Provider => "provider",
        }
    }
}

/// How an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON record.
    Json,
    /// A link to a document (PDF) with its expiry.
    Document,
    /// A JSON record holding links to files.
    JsonWithLinks,
    /// A list of JSON records.
    Collection,
    /// A provider's health (free).
    Health,
    /// The token's privileges.
    Privileges,
}

impl Kind {
    /// Its name in the WIT contract (`json-with-links`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Document => "document",
            Self::JsonWithLinks => "json-with-links",
            Self::Collection => "collection",
            Self::Health => "health",
            Self::Privileges => "privileges",
        }
    }
}

/// Which typed record `data` is parsed into, besides the document of
/// document endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    /// None: `data` stays JSON text only.
    None,
    /// An INSEE unité légale.
    UniteLegale,
    /// An INSEE établissement.
    Etablissement,
}

/// A per-token rate-limit group (`throttle.yml`). A limit of 0 means none
/// applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// The group's name; a `group/endpoint` name counts one endpoint alone.
    pub name: &'static str,
    /// Requests allowed per period.
    pub limit: u32,
    /// The period, in seconds.
    pub period_seconds: u32,
}

/// The routes outside every throttle (`/privileges`, the health routes).
pub const UNLIMITED: Group = Group {
    name: "",
    limit: 0,
    period_seconds: 0,
};

/// What a request to a path the catalogue does not know counts against,
/// beside every per-IP quota: the tightest group of the catalogue, so that
/// a route nobody described can never spend more than a known one.
pub const UNKNOWN_ROUTE: Group = Group {
    name: "unknown-route",
    limit: 5,
    period_seconds: 60,
};

/// The per-IP quotas, as (requests, period in seconds): the source
/// document's 2000 in any 10 minutes and today's server's 1000 a minute.
/// Either one crossed bans the IP for hours, silently.
pub const IP_QUOTAS: [(u32, u32); 2] = [(2000, 600), (1000, 60)];

/// The quota scripts every host runs, one copy for all (the Rust host, the
/// Node and Python packages): the decision and the server's word in Redis
/// (Lua), and the statements of the machine's shared SQLite store.
pub mod quota_scripts {
    /// Takes a slot in every quota or in none, in Redis.
    pub const ACQUIRE_LUA: &str = include_str!("../quota/acquire.lua");
    /// Records the server's word on a quota, in Redis.
    pub const SERVER_SAID_LUA: &str = include_str!("../quota/server_said.lua");
    /// Takes a slot of every shared pool by the fair rule, in Redis.
    pub const FAIR_LUA: &str = include_str!("../quota/fair.lua");
    /// How full each quota's window is, in Redis.
    pub const USAGE_LUA: &str = include_str!("../quota/usage.lua");
    /// The SQLite store's statements, each after a `-- name: NAME` line.
    pub const SQLITE_SQL: &str = include_str!("../quota/sqlite.sql");

    /// The statement `name` of [`SQLITE_SQL`].
    pub fn sqlite(name: &str) -> Option<&'static str> {
        let marker = format!("-- name: {name}\n");
        let start = SQLITE_SQL.find(&marker)? + marker.len();
        let rest = &SQLITE_SQL[start..];
        let end = rest.find("\n-- name: ").unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

/// The longest a JSON call may take, in milliseconds (the API's advice).
pub const JSON_TIMEOUT_MS: u32 = 5_000;
/// The longest a document call may take, in milliseconds (the API's advice).
pub const DOCUMENT_TIMEOUT_MS: u32 = 12_000;

/// An optional query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryParam {
    /// Its name in the query string.
    pub name: &'static str,
    /// What it means and its default.
    pub description: &'static str,
    /// The accepted values, when it is an enumeration.
    pub values: &'static [&'static str],
    /// The smallest value, when it is a number.
    pub min: Option<i32>,
    /// The largest value, when it is a number.
    pub max: Option<i32>,
}

/// One of API Entreprise's official use cases ("cas d'usage"): the
/// endpoints its page recommends, allows and forbids, each by its id and
/// version in this catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UseCase {
    /// Its id (`marches_publics`).
    pub id: &'static str,
    /// Its name (`Marchés publics`).
    pub name: &'static str,
    /// What it recommends.
    pub recommended: &'static [(&'static str, u8)],
    /// What it allows besides.
    pub optional: &'static [(&'static str, u8)],
    /// What it forbids.
    pub forbidden: &'static [(&'static str, u8)],
}

impl UseCase {
    /// How the use case treats the endpoint `id` at `version`:
    /// `recommended`, `optional`, `forbidden`, or none of them.
    pub fn stance(&self, id: &str, version: u8) -> Option<&'static str> {
        let has = |list: &[(&str, u8)]| list.iter().any(|(i, v)| *i == id && *v == version);
        [
            ("recommended", self.recommended),
            ("optional", self.optional),
            ("forbidden", self.forbidden),
        ]
        .into_iter()
        .find(|(_, list)| has(list))
        .map(|(stance, _)| stance)
    }
}

impl UseCase {
    /// Whether it allows the endpoint `id` (any of its versions): it
    /// recommends or allows one of them. What it forbids, and what it does
    /// not name, it does not allow.
    pub fn allows(&self, id: &str) -> bool {
        self.recommended.iter().chain(self.optional).any(|(i, _)| *i == id)
    }
}

/// The use case `id`.
pub fn use_case(id: &str) -> Option<&'static UseCase> {
    USE_CASES.iter().find(|u| u.id == id)
}

/// One version of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// The spec's operation id without its `api_entreprise_vN_` prefix.
    pub id: &'static str,
    /// The version in the path (`/v3/…`); 0 for unversioned routes.
    pub version: u8,
    /// The spec's title.
    pub title: &'static str,
    /// The data provider's name.
    pub provider: &'static str,
    /// The path template, `{name}` for each path parameter.
    pub path: &'static str,
    /// The path parameters in order, with their kinds.
    pub params: &'static [(&'static str, ParamKind)],
    /// The optional query parameters.
    pub query: &'static [QueryParam],
    /// How it answers.
    pub kind: Kind,
    /// The timeout a client asks for (the host clamps it).
    pub timeout_ms: u32,
    /// Its per-token rate-limit group.
    pub group: Group,
    /// The scopes that open it (any one is enough; none: any token).
    pub scopes: &'static [&'static str],
    /// Deprecated in the spec.
    pub deprecated: bool,
    /// Another endpoint that replaces this one (a newer version of the same
    /// id is found by [`replacement`]).
    pub replaced_by: Option<&'static str>,
    /// The provider's daily maintenance window, `HH:MM-HH:MM`.
    pub maintenance: Option<&'static str>,
    /// Needs the `context`/`recipient`/`object` trace.
    pub needs_trace: bool,
    /// Needs the DGFIP's `user_id`.
    pub requires_user_id: bool,
    /// The typed record `data` is parsed into.
    pub typed: Typed,
}

/// A route that needs neither trace nor per-token quota.
const fn unversioned(id: &'static str, title: &'static str, path: &'static str, kind: Kind) -> Endpoint {
    Endpoint {
        id,
        version: 0,
        title,
        provider: "API Entreprise",
        path,
        params: &[],
        query: &[],
        kind,
        timeout_ms: 5_000,
        group: UNLIMITED,
        scopes: &[],
        deprecated: false,
        replaced_by: None,
        maintenance: None,
        needs_trace: false,
        requires_user_id: false,
        typed: Typed::None,
    }
}

/// The routes that are not data endpoints: token introspection and health.
pub const FREE_ROUTES: &[Endpoint] = &[
    unversioned("privileges", "Droits du jeton", "/privileges", Kind::Privileges),
    unversioned("pings", "État de tous les fournisseurs", "/pings", Kind::Health),
    Endpoint {
        params: &[("provider", ParamKind::Provider)],
        ..unversioned("ping", "État d'un fournisseur", "/ping/{provider}", Kind::Health)
    },
];

/// Every route: the data endpoints, then the others.
pub fn all() -> impl Iterator<Item = &'static Endpoint> {
    DATA_ENDPOINTS.iter().chain(FREE_ROUTES)
}

/// Every version of `id`, oldest first.
pub fn versions(id: &str) -> impl Iterator<Item = &'static Endpoint> {
    all().filter(move |e| e.id == id)
}

/// `id` in `version`, or in the newest non-deprecated version when
/// `version` is `None` (the newest deprecated one if all are deprecated).
pub fn find(id: &str, version: Option<u8>) -> Option<&'static Endpoint> {
    find_among(all(), id, version)
}

/// [`find`] among `endpoints` (a client's own list, such as one with an
/// endpoint the catalogue does not have yet).
pub fn find_among<'a>(
    endpoints: impl Iterator<Item = &'a Endpoint>,
    id: &str,
    version: Option<u8>,
) -> Option<&'a Endpoint> {
    let mut versions = endpoints.filter(|e| e.id == id);
    match version {
        Some(v) => versions.find(|e| e.version == v),
        None => {
            let all: Vec<_> = versions.collect();
            all.iter().rev().find(|e| !e.deprecated).or(all.last()).copied()
        }
    }
}

/// What replaces a deprecated endpoint: its named successor, else its
/// newest non-deprecated version.
pub fn replacement(e: &Endpoint) -> Option<String> {
    if !e.deprecated {
        return None;
    }
    if let Some(id) = e.replaced_by {
        return Some(id.into());
    }
    all()
        .filter(|n| n.id == e.id && n.version > e.version && !n.deprecated)
        .last()
        .map(|n| format!("{} v{}", n.id, n.version))
}

/// The route whose template matches `path` (no query string), with the
/// path values by name. A literal segment beats a placeholder
/// (`diffusibles` is not a SIREN); a trailing slash is ignored. A
/// `{provider}` last in its template takes the rest of the path
/// (`/ping/insee/sirene`): one or more segments of lowercase letters,
/// digits and `_`.
pub fn route(path: &str) -> Option<(&'static Endpoint, Vec<(&'static str, &str)>)> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    all()
        .filter_map(|e| {
            let template: Vec<&str> = e.path.split('/').collect();
            let (template, takes_rest) = match template.split_last() {
                Some((&"{provider}", init)) => (init, true),
                _ => (&template[..], false),
            };
            let fits = if takes_rest {
                segments.len() > template.len()
            } else {
                segments.len() == template.len()
            };
            if !fits {
                return None;
            }
            let mut values = Vec::new();
            let mut literals = 0;
            for (t, segment) in template.iter().zip(&segments) {
                match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(name) if !segment.is_empty() => values.push((name, *segment)),
                    None if t == segment => literals += 1,
                    _ => return None,
                }
            }
            if takes_rest {
                let offset: usize = segments[..template.len()].iter().map(|s| s.len() + 1).sum();
                let rest = &path[offset..];
                if !is_provider(rest) {
                    return None;
                }
                values.push(("provider", rest));
            }
            Some((literals, e, values))
        })
        .max_by_key(|(literals, _, _)| *literals)
        .map(|(_, e, values)| (e, values))
}

/// Whether `name` reads as a provider's ping name (`insee/sirene`,
/// `dgfip/attestation_fiscale`): segments of lowercase letters, digits and
/// `_`, none empty.
pub fn is_provider(name: &str) -> bool {
    name.split('/').all(|segment| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// What the host's policy needs to know of a request's path, from one
/// look-up of its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPolicy {
    /// Free of every quota: only the health routes, `/pings` and
    /// `/ping/<provider>`, are.
    pub free: bool,
    /// The per-token group it counts against: its route's, [`UNKNOWN_ROUTE`]
    /// for a path the catalogue does not know, none for `/privileges` and the
    /// health routes.
    pub group: Option<Group>,
    /// Gets the documents' timeout (12 s) rather than the JSON one (5 s):
    /// only a known document route does.
    pub document: bool,
}

/// The policy of a request to `path` (no query string).
pub fn policy_of(path: &str) -> PathPolicy {
    match route(path) {
        Some((e, _)) => policy_of_route(e),
        None => PathPolicy {
            free: false,
            group: Some(UNKNOWN_ROUTE),
            document: false,
        },
    }
}

/// The policy of every request that `e`'s route matches.
pub fn policy_of_route(e: &Endpoint) -> PathPolicy {
    PathPolicy {
        free: e.kind == Kind::Health,
        group: (e.group.limit > 0).then_some(e.group),
        document: e.kind == Kind::Document,
    }
}

/// Whether a request to `path` is free of every quota ([`PathPolicy::free`]).
pub fn is_free(path: &str) -> bool {
    policy_of(path).free
}

/// The per-token group a request to `path` counts against ([`PathPolicy::group`]).
pub fn group_of(path: &str) -> Option<Group> {
    policy_of(path).group
}

/// Whether a request to `path` gets the documents' timeout ([`PathPolicy::document`]).
pub fn is_document(path: &str) -> bool {
    policy_of(path).document
}

/// The provider segment of a versioned data path (`/v3/insee/…` →
/// `insee`), which names it in the health routes and the circuits.
pub fn provider_of(path: &str) -> Option<&str> {
    let mut segments = path.split('/').skip(1);
    let version = segments.next()?;
    let is_version = version
        .strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    is_version.then(|| segments.next()).flatten().filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_use_cases_name_endpoints_of_this_catalogue() {
        let ids: Vec<&str> = USE_CASES.iter().map(|u| u.id).collect();
        assert_eq!(
            ids,
            [
                "socle_de_base",
                "marches_publics",
                "aides_publiques",
                "subventions_associations",
                "fraude",
                "editeur"
            ]
        );
        for case in USE_CASES {
            assert!(
                !case.recommended.is_empty() || !case.optional.is_empty(),
                "{} names nothing",
                case.id
            );
            for (id, version) in case.recommended.iter().chain(case.optional).chain(case.forbidden) {
                assert!(find(id, Some(*version)).is_some(), "{}: {id} v{version}", case.id);
            }
        }
        // The public procurement's attestations, and what the base forbids.
        let marches = use_case("marches_publics").unwrap();
        assert_eq!(marches.stance("acoss_attestations_sociales", 4), Some("recommended"));
        assert_eq!(marches.stance("dgfip_attestations_fiscales", 4), Some("recommended"));
        let socle = use_case("socle_de_base").unwrap();
        assert_eq!(socle.stance("dgfip_attestations_fiscales", 4), Some("forbidden"));
        assert_eq!(socle.stance("insee_unites_legales", 4), Some("recommended"));
        assert_eq!(socle.stance("nope", 3), None);
        assert!(socle.allows("insee_unites_legales") && !socle.allows("dgfip_attestations_fiscales"));
        assert!(!socle.allows("insee_successions"), "not named");
        assert!(use_case("nope").is_none());
        // What the site names that the spec has not (by its path) is said.
        assert_eq!(USE_CASE_UNRESOLVED, ["agence_bio/certifications_bio"]);
    }

    #[test]
    fn newest_non_deprecated_version_is_the_default() {
        assert_eq!(find("insee_unites_legales", None).unwrap().version, 4);
        assert_eq!(find("insee_successions", None).unwrap().version, 3);
        assert_eq!(find("insee_etablissements", Some(3)).unwrap().version, 3);
        assert!(find("insee_etablissements", Some(2)).is_none());
        assert!(find("nope", None).is_none());
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
                let at = rest.find(&format!("{{{name}}}")).expect("the path names its parameter");
                rest = &rest[at..];
            }
            assert_eq!(e.path.matches('{').count(), e.params.len(), "{}", e.path);
        }
    }

    #[test]
    fn literal_segments_win_over_placeholders() {
        let (e, values) = route("/v3/insee/sirene/unites_legales/diffusibles/552049447").unwrap();
        assert_eq!((e.id, e.version), ("insee_unites_legales_diffusables", 3));
        assert_eq!(values, [("siren", "552049447")]);
        assert!(route("/v3/insee/nothing").is_none());
        assert!(
            route("/v3/insee/sirene/unites_legales/").is_none(),
            "an empty value is no value"
        );
    }

    #[test]
    fn the_policy_look_ups_decide_from_the_path_alone() {
        assert!(is_free("/pings"));
        assert!(is_free("/ping/insee"));
        assert!(is_free("/ping/insee/sirene"));
        assert!(is_free("/ping/dgfip/attestation_fiscale"));
        assert_eq!(route("/ping/insee/sirene").unwrap().1, [("provider", "insee/sirene")]);
        assert!(!is_free("/ping/insee/../../v3/insee"));
        assert!(!is_free("/ping/insee//sirene"));
        assert!(!is_free("/ping/Insee"));
        assert!(!is_free("/privileges"));
        assert!(!is_free("/v3/insee/sirene/unites_legales/552049447"));
        assert!(!is_free("/pings/../v3/insee"));
        assert_eq!(group_of("/privileges"), None);
        assert_eq!(
            group_of("/v4/dgfip/unites_legales/552049447/attestation_fiscale")
                .unwrap()
                .limit,
            5
        );
        assert_eq!(group_of("/v9/made/up"), Some(UNKNOWN_ROUTE));
        assert!(is_document("/v4/dgfip/unites_legales/552049447/attestation_fiscale"));
        assert!(!is_document("/v4/insee/sirene/unites_legales/552049447"));
        assert_eq!(provider_of("/v3/insee/x"), Some("insee"));
        assert_eq!(provider_of("/pings"), None);
        assert_eq!(provider_of("/privileges"), None);
        assert_eq!(provider_of("/ping/insee"), None);
        assert_eq!(provider_of("/vx/insee"), None);
    }

    #[test]
    fn the_unknown_route_group_is_the_tightest_of_the_catalogue() {
        let tightest = DATA_ENDPOINTS.iter().map(|e| e.group.limit).min().unwrap();
        assert_eq!(UNKNOWN_ROUTE.limit, tightest);
    }
}
