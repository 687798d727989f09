//! The API Entreprise client as a WebAssembly component.
//!
//! The logic lives in plain modules that compile and are tested natively;
//! this file holds only the bindings and the conversions between the WIT
//! types and plain Rust. `transport` sends through `wasi:http`.
//!
//! Two features build the test harness's other versions of this client:
//! `testing-next` (version `-next`, one more endpoint) and `testing-broken`
//! (traps when parsing `insee_unites_legales` answers). Never ship them.

/// The client version, as a literal for `concat!`.
#[cfg(not(feature = "testing-next"))]
macro_rules! client_version {
    () => {
        env!("CARGO_PKG_VERSION")
    };
}
#[cfg(feature = "testing-next")]
macro_rules! client_version {
    () => {
        concat!(env!("CARGO_PKG_VERSION"), "-next")
    };
}

pub mod catalogue;
pub mod codec;
pub mod error;
pub mod instant;
pub mod json;
pub mod lenient;
pub mod request;
pub mod response;
#[cfg(not(target_os = "unknown"))]
mod transport;
pub mod validate;

// One source, two worlds: the client (which sends through wasi:http) for
// wasm32-wasip2 and native builds, and the codec component, which imports
// nothing, for wasm32-unknown-unknown (`target_os = "unknown"`).
#[cfg(not(target_os = "unknown"))]
wit_bindgen::generate!({
    world: "api-entreprise",
    path: "../wit",
    generate_all,
});
#[cfg(target_os = "unknown")]
wit_bindgen::generate!({
    world: "sans-io",
    path: "../wit",
});

#[cfg(not(target_os = "unknown"))]
use api_entreprise::client::types as wit;
#[cfg(target_os = "unknown")]
use exports::api_entreprise::client::types as wit;
use exports::api_entreprise::client::{catalogue as wit_catalogue, codec as wit_codec, json as wit_json};

struct Component;

/// This build's version (the crate's), in a custom section a host reads from
/// the component's bytes without calling it: which client version runs is
/// visible with no change of the contract.
#[cfg(target_arch = "wasm32")]
#[used]
#[unsafe(link_section = "api-entreprise-client-version")]
static CLIENT_VERSION: [u8; request::VERSION.len()] = {
    let text = request::VERSION.as_bytes();
    let mut out = [0u8; request::VERSION.len()];
    let mut i = 0;
    while i < text.len() {
        out[i] = text[i];
        i += 1;
    }
    out
};

impl wit_catalogue::Guest for Component {
    fn endpoints() -> Vec<wit::Endpoint> {
        catalogue::all().map(Into::into).collect()
    }
}

impl wit_codec::Guest for Component {
    fn prepare(base_url: String, req: wit::Request, now: String) -> Result<wit::Prepared, wit::Error> {
        let now = instant::parse_now(&now)?;
        let (endpoint, http) = codec::prepare(&base_url, &req.into(), now)?;
        Ok(codec::Prepared::new(endpoint, &http).into())
    }

    fn parse(
        call: wit::Prepared,
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
        now: String,
    ) -> Result<wit::Response, wit::Error> {
        let now = instant::parse_now(&now)?;
        Ok(codec::parse(&call.endpoint, call.version, status, &headers, body.as_bytes(), now)?.into())
    }
}

impl wit_json::Guest for Component {
    fn endpoints() -> String {
        json::endpoints()
    }

    fn prepare(base_url: String, req: String, now: String) -> Result<String, String> {
        json::prepare(&base_url, &req, &now)
    }

    fn parse(call: String, status: u16, headers: String, body: String, now: String) -> Result<String, String> {
        json::parse(&call, status, &headers, &body, &now)
    }
}

#[cfg(not(target_os = "unknown"))]
impl exports::api_entreprise::client::client::Guest for Component {
    fn call(base_url: String, req: wit::Request) -> Result<wit::Response, wit::Error> {
        let (endpoint, http) = codec::prepare(&base_url, &req.into(), transport::now_unix())?;
        let (status, headers, body) = transport::send(&http)?;
        Ok(response::parse(endpoint, status, &headers, &body, transport::now_unix())?.into())
    }
}

// Native builds (unit tests, clippy) compile the bindings but export nothing:
// the export names (`api-entreprise:client/...`) are not native symbols.
#[cfg(target_arch = "wasm32")]
export!(Component);

impl From<codec::Prepared> for wit::Prepared {
    fn from(p: codec::Prepared) -> Self {
        Self {
            endpoint: p.endpoint,
            version: p.version,
            method: p.method,
            url: p.url,
            headers: p.headers,
            timeout_ms: p.timeout_ms,
        }
    }
}

impl From<wit::Request> for codec::Call {
    fn from(r: wit::Request) -> Self {
        Self {
            endpoint: r.endpoint,
            version: r.version,
            params: r.params,
            query: r.query,
            trace: validate::Trace {
                context: r.trace.context,
                recipient: r.trace.recipient,
                object: r.trace.object,
                user_id: r.trace.user_id,
            },
        }
    }
}

impl From<&catalogue::Endpoint> for wit::Endpoint {
    fn from(e: &catalogue::Endpoint) -> Self {
        use catalogue::{Kind, ParamKind as P};
        Self {
            id: e.id.into(),
            version: e.version,
            title: e.title.into(),
            provider: e.provider.into(),
            path: e.path.into(),
            params: e
                .params
                .iter()
                .map(|(name, kind)| wit::PathParam {
                    name: (*name).into(),
                    kind: match kind {
                        P::Siren => wit::ParamKind::Siren,
                        P::Siret => wit::ParamKind::Siret,
                        P::Rna => wit::ParamKind::Rna,
                        P::SiretOrRna => wit::ParamKind::SiretOrRna,
                        P::SirenOrRna => wit::ParamKind::SirenOrRna,
                        P::SirenOrSiretOrRna => wit::ParamKind::SirenOrSiretOrRna,
                        P::SiretOrEori => wit::ParamKind::SiretOrEori,
                        P::Year => wit::ParamKind::Year,
                        P::DgfipYear => wit::ParamKind::DgfipYear,
                        P::Month => wit::ParamKind::Month,
                        P::Provider => wit::ParamKind::Provider,
                    },
                })
                .collect(),
            query: e
                .query
                .iter()
                .map(|q| wit::QueryParam {
                    name: q.name.into(),
                    description: q.description.into(),
                    values: q.values.iter().map(|v| (*v).into()).collect(),
                    min: q.min,
                    max: q.max,
                })
                .collect(),
            kind: match e.kind {
                Kind::Json => wit::EndpointKind::Json,
                Kind::Document => wit::EndpointKind::Document,
                Kind::JsonWithLinks => wit::EndpointKind::JsonWithLinks,
                Kind::Collection => wit::EndpointKind::Collection,
                Kind::Health => wit::EndpointKind::Health,
                Kind::Privileges => wit::EndpointKind::Privileges,
            },
            timeout_ms: e.timeout_ms,
            rate_limit: wit::RateLimitGroup {
                name: e.group.name.into(),
                limit: e.group.limit,
                period_seconds: e.group.period_seconds,
            },
            scopes: e.scopes.iter().map(|s| (*s).into()).collect(),
            deprecated: e.deprecated,
            replaced_by: catalogue::replacement(e),
            maintenance_window: e.maintenance.map(Into::into),
            needs_trace: e.needs_trace,
            requires_user_id: e.requires_user_id,
        }
    }
}

impl From<response::RateLimitState> for wit::RateLimitState {
    fn from(r: response::RateLimitState) -> Self {
        Self {
            limit: r.limit,
            remaining: r.remaining,
            reset_at: r.reset_at,
            retry_after_seconds: r.retry_after_seconds,
        }
    }
}

impl From<response::Coded> for wit::Coded {
    fn from(c: response::Coded) -> Self {
        Self {
            code: c.code,
            libelle: c.libelle,
        }
    }
}

impl From<response::UniteLegale> for wit::UniteLegale {
    fn from(u: response::UniteLegale) -> Self {
        Self {
            siren: u.siren,
            siret_siege_social: u.siret_siege_social,
            kind: u.kind,
            denomination: u.denomination,
            sigle: u.sigle,
            categorie_entreprise: u.categorie_entreprise,
            forme_juridique: u.forme_juridique.map(Into::into),
            activite_principale: u.activite_principale.map(Into::into),
            tranche_effectif: u.tranche_effectif,
            etat_administratif: u.etat_administratif,
            status_diffusion: u.status_diffusion,
            date_creation: u.date_creation,
            date_cessation: u.date_cessation,
        }
    }
}

impl From<response::Etablissement> for wit::Etablissement {
    fn from(e: response::Etablissement) -> Self {
        Self {
            siret: e.siret,
            siege_social: e.siege_social,
            enseigne: e.enseigne,
            activite_principale: e.activite_principale.map(Into::into),
            tranche_effectif: e.tranche_effectif,
            etat_administratif: e.etat_administratif,
            status_diffusion: e.status_diffusion,
            date_creation: e.date_creation,
            date_fermeture: e.date_fermeture,
            adresse: e.adresse.map(|a| wit::Adresse {
                numero_voie: a.numero_voie,
                type_voie: a.type_voie,
                libelle_voie: a.libelle_voie,
                complement: a.complement,
                code_postal: a.code_postal,
                commune: a.commune,
                code_commune: a.code_commune,
                lignes: a.lignes,
            }),
            unite_legale: e.unite_legale.map(Into::into),
        }
    }
}

impl From<response::Response> for wit::Response {
    fn from(r: response::Response) -> Self {
        Self {
            status: r.status,
            data: r.data,
            links: r.links,
            meta: r.meta,
            document: r.document.map(|d| wit::DocumentLink {
                url: d.url,
                expires_in_seconds: d.expires_in_seconds,
                refused: d.refused,
                status: d.status,
                status_label: d.status_label,
                valid_from: d.valid_from,
                valid_until: d.valid_until,
                issued_on: d.issued_on,
            }),
            files: r
                .files
                .into_iter()
                .map(|f| wit::FileLink {
                    pointer: f.pointer,
                    url: f.url,
                    expires_in_seconds: f.expires_in_seconds,
                })
                .collect(),
            typed: r.typed.map(|t| match t {
                response::TypedData::UniteLegale(u) => wit::TypedData::UniteLegale((*u).into()),
                response::TypedData::Etablissement(e) => wit::TypedData::Etablissement((*e).into()),
                response::TypedData::Privileges(p) => wit::TypedData::Privileges(p),
                response::TypedData::Health(h) => wit::TypedData::Health(wit::Health {
                    status: h.status,
                    last_update: h.last_update,
                    last_ok_status: h.last_ok_status,
                    until: h.until,
                }),
            }),
            rate_limit: r.rate_limit.into(),
            request_id: r.request_id,
        }
    }
}

impl From<error::ErrorItem> for wit::ErrorItem {
    fn from(i: error::ErrorItem) -> Self {
        Self {
            code: i.code,
            title: i.title,
            detail: i.detail,
            parameter: i.parameter,
            meta: i.meta,
        }
    }
}

impl From<error::ApiError> for wit::ApiError {
    fn from(a: error::ApiError) -> Self {
        use error::ApiErrorKind as K;
        Self {
            status: a.status,
            kind: match a.kind {
                K::BadRequest => wit::ApiErrorKind::BadRequest,
                K::Unauthorized => wit::ApiErrorKind::Unauthorized,
                K::Forbidden => wit::ApiErrorKind::Forbidden,
                K::NotFound => wit::ApiErrorKind::NotFound,
                K::Conflict => wit::ApiErrorKind::Conflict,
                K::Gone => wit::ApiErrorKind::Gone,
                K::Unprocessable => wit::ApiErrorKind::Unprocessable,
                K::RateLimited => wit::ApiErrorKind::RateLimited,
                K::UnavailableForLegalReasons => wit::ApiErrorKind::UnavailableForLegalReasons,
                K::ServerError => wit::ApiErrorKind::ServerError,
                K::BadGateway => wit::ApiErrorKind::BadGateway,
                K::Maintenance => wit::ApiErrorKind::Maintenance,
                K::GatewayTimeout => wit::ApiErrorKind::GatewayTimeout,
                K::Unexpected => wit::ApiErrorKind::Unexpected,
            },
            errors: a.errors.into_iter().map(Into::into).collect(),
            text: a.text,
            provider: a.provider,
            retryable: a.retryable,
            retry_after_seconds: a.retry_after_seconds,
            rate_limit: a.rate_limit.into(),
            request_id: a.request_id,
        }
    }
}

impl From<error::Error> for wit::Error {
    fn from(e: error::Error) -> Self {
        use error::Error as E;
        match e {
            E::InvalidInput(items) => Self::InvalidInput(items.into_iter().map(Into::into).collect()),
            E::UnknownEndpoint(m) => Self::UnknownEndpoint(m),
            E::Api(a) => Self::Api((*a).into()),
            E::Timeout(m) => Self::Timeout(m),
            E::RefusedByHost(m) => Self::RefusedByHost(m),
            E::QuotaExceeded(m) => Self::QuotaExceeded(m),
            E::Transport(m) => Self::Transport(m),
            E::Other(m) => Self::Other(m),
        }
    }
}
