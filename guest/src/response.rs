//! Parses answers: the `{data, links, meta}` envelope, the typed views, the
//! JSON:API errors (and the plain-text or empty ones), and the rate-limit and
//! request-id headers. A tolerant reader: unknown fields pass through in the
//! raw JSON and never break parsing.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::lenient::{self, Day, Flag, Obj, Seconds, Text};

use crate::catalogue::{Endpoint, Kind, Typed};
use crate::error::{ApiError, ApiErrorKind, Error, ErrorItem, TEXT_LIMIT};
use crate::instant;

/// The rate-limit headers of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RateLimitState {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// `RateLimit-Reset` (a Unix timestamp, not a delay) as an ISO 8601 instant.
    pub reset_at: Option<String>,
    pub retry_after_seconds: Option<u32>,
}

/// The document of a document endpoint; see the WIT `document-link`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DocumentLink {
    pub url: Option<String>,
    pub expires_in_seconds: Option<u32>,
    pub refused: bool,
    pub status: Option<String>,
    pub status_label: Option<String>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    pub issued_on: Option<String>,
}

/// A file link inside `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileLink {
    /// A JSON pointer into `data`.
    pub pointer: String,
    pub url: Option<String>,
    pub expires_in_seconds: Option<u32>,
}

/// A provider's health, from the ping routes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Health {
    pub status: String,
    pub last_update: Option<String>,
    pub last_ok_status: Option<String>,
    pub until: Option<String>,
}

/// A code and its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coded {
    pub code: Option<String>,
    pub libelle: Option<String>,
}

/// See the WIT `unite-legale` record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct UniteLegale {
    pub siren: String,
    pub siret_siege_social: Option<String>,
    pub kind: Option<String>,
    pub denomination: Option<String>,
    pub sigle: Option<String>,
    pub categorie_entreprise: Option<String>,
    pub forme_juridique: Option<Coded>,
    pub activite_principale: Option<Coded>,
    pub tranche_effectif: Option<String>,
    pub etat_administratif: Option<String>,
    pub status_diffusion: Option<String>,
    pub date_creation: Option<String>,
    pub date_cessation: Option<String>,
}

/// See the WIT `adresse` record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Adresse {
    pub numero_voie: Option<String>,
    pub type_voie: Option<String>,
    pub libelle_voie: Option<String>,
    pub complement: Option<String>,
    pub code_postal: Option<String>,
    pub commune: Option<String>,
    pub code_commune: Option<String>,
    pub lignes: Vec<String>,
}

/// See the WIT `etablissement` record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Etablissement {
    pub siret: String,
    pub siege_social: Option<bool>,
    pub enseigne: Option<String>,
    pub activite_principale: Option<Coded>,
    pub tranche_effectif: Option<String>,
    pub etat_administratif: Option<String>,
    pub status_diffusion: Option<String>,
    pub date_creation: Option<String>,
    pub date_fermeture: Option<String>,
    pub adresse: Option<Adresse>,
    pub unite_legale: Option<UniteLegale>,
}

/// The typed view of `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "tag", content = "val", rename_all = "kebab-case")]
pub enum TypedData {
    UniteLegale(Box<UniteLegale>),
    Etablissement(Box<Etablissement>),
    Privileges(Vec<String>),
    Health(Health),
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    pub status: u16,
    /// `data`, `links` and `meta` as JSON text (the JSON form embeds them).
    #[serde(serialize_with = "crate::json::raw")]
    pub data: String,
    #[serde(serialize_with = "crate::json::raw")]
    pub links: String,
    #[serde(serialize_with = "crate::json::raw")]
    pub meta: String,
    pub document: Option<DocumentLink>,
    pub files: Vec<FileLink>,
    pub typed: Option<TypedData>,
    pub rate_limit: RateLimitState,
    pub request_id: Option<String>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn header_num<T: std::str::FromStr>(headers: &[(String, String)], name: &str) -> Option<T> {
    header(headers, name).and_then(|v| v.parse().ok())
}

/// Reads `RateLimit-*` and `Retry-After` (in seconds; the HTTP-date form is
/// not used by API Entreprise and is ignored).
pub fn rate_limit(headers: &[(String, String)]) -> RateLimitState {
    RateLimitState {
        limit: header_num(headers, "ratelimit-limit"),
        remaining: header_num(headers, "ratelimit-remaining"),
        reset_at: header_num(headers, "ratelimit-reset").map(instant::iso),
        retry_after_seconds: header_num(headers, "retry-after"),
    }
}

/// Parses an answer to `endpoint`. `now_unix` turns `RateLimit-Reset` into a
/// delay for errors.
pub fn parse(
    endpoint: &Endpoint,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    now_unix: u64,
) -> Result<Response, Error> {
    #[cfg(feature = "testing-broken")]
    if endpoint.id == "insee_unites_legales" {
        panic!("the testing-broken build traps on insee_unites_legales answers, on purpose");
    }
    let rate_limit = rate_limit(headers);
    let request_id = header(headers, "x-request-id").map(str::to_owned);
    let not_json = |e: &dyn std::fmt::Display| {
        Error::Other(format!(
            "the API answered {status} with a body that is not JSON ({e}); request id {}",
            request_id.as_deref().unwrap_or("unknown")
        ))
    };
    // A health route answers its status even when the provider is down (502).
    if endpoint.kind == Kind::Health {
        if let Some(health) = serde_json::from_slice::<Value>(body).ok().as_ref().and_then(health) {
            let data = String::from_utf8_lossy(body).trim().to_owned();
            return Ok(Response {
                typed: Some(TypedData::Health(health)),
                ..answer(status, data, rate_limit, request_id)
            });
        }
        if endpoint.params.is_empty() && (200..300).contains(&status) {
            let list: Value = serde_json::from_slice(body).map_err(|e| not_json(&e))?;
            return Ok(answer(status, list.to_string(), rate_limit, request_id));
        }
    }
    if !(200..300).contains(&status) {
        return Err(Error::Api(Box::new(api_error(
            status, headers, body, rate_limit, request_id, now_unix,
        ))));
    }
    if endpoint.kind == Kind::Privileges {
        let envelope: Value = serde_json::from_slice(body).map_err(|e| not_json(&e))?;
        // Today's `{"data":{"privileges":[…]}}` and the older flat `{"privileges":[…]}`.
        let list = envelope
            .get("data")
            .unwrap_or(&envelope)
            .get("privileges")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Other("the /privileges answer holds no `privileges` list".into()))?;
        let scopes = list.iter().filter_map(Value::as_str).map(str::to_owned).collect();
        return Ok(Response {
            typed: Some(TypedData::Privileges(scopes)),
            ..answer(
                status,
                envelope.get("data").unwrap_or(&envelope).to_string(),
                rate_limit,
                request_id,
            )
        });
    }
    // The envelope's parts are kept as the server wrote them (key order,
    // numbers); only `data` is read into a tree, for the typed view and links.
    let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(|e| not_json(&e))?;
    let Some(raw) = envelope.data else {
        return Err(Error::Other(format!(
            "the API answered {status} without the `data` of the {{data, links, meta}} envelope; request id {}",
            request_id.as_deref().unwrap_or("unknown")
        )));
    };
    // `data` is read again from its text, never into a tree: once for the
    // file links, once more for the typed view or the document.
    let data = raw.get();
    let files = lenient::file_links(data).map_err(|e| not_json(&e))?;
    let part = |raw: Option<&RawValue>| raw.map_or_else(|| "{}".to_owned(), |r| r.get().to_owned());
    let typed = match endpoint.typed {
        Typed::None => None,
        Typed::UniteLegale => read::<RawUniteLegale>(data)
            .and_then(RawUniteLegale::typed)
            .map(|u| TypedData::UniteLegale(Box::new(u))),
        Typed::Etablissement => read::<RawEtablissement>(data)
            .and_then(RawEtablissement::typed)
            .map(|e| TypedData::Etablissement(Box::new(e))),
    };
    Ok(Response {
        links: part(envelope.links),
        meta: part(envelope.meta),
        document: (endpoint.kind == Kind::Document).then(|| read::<RawDocument>(data).unwrap_or_default().typed()),
        files,
        typed,
        ..answer(status, data.to_owned(), rate_limit, request_id)
    })
}

/// The `{data, links, meta}` envelope, each part as the server's text
/// (`null` included: only a missing part is absent).
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "kept")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "kept")]
    links: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "kept")]
    meta: Option<&'a RawValue>,
}

/// A part that is there, whatever its value.
fn kept<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// A bare answer: `data` only, nothing typed.
fn answer(status: u16, data: String, rate_limit: RateLimitState, request_id: Option<String>) -> Response {
    Response {
        status,
        data,
        links: "{}".to_owned(),
        meta: "{}".to_owned(),
        document: None,
        files: Vec::new(),
        typed: None,
        rate_limit,
        request_id,
    }
}

fn health(v: &Value) -> Option<Health> {
    Some(Health {
        status: str_at(v, "status")?,
        last_update: str_at(v, "last_update"),
        last_ok_status: str_at(v, "last_ok_status"),
        until: str_at(v, "until"),
    })
}

fn api_error(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    rate_limit: RateLimitState,
    request_id: Option<String>,
    now_unix: u64,
) -> ApiError {
    let errors: Option<Vec<ErrorItem>> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(Value::as_array).cloned())
        .map(|items| items.iter().map(error_item).collect());
    let text = match &errors {
        Some(_) => None,
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            (!text.is_empty()).then(|| truncate(text, TEXT_LIMIT))
        }
    };
    let errors = errors.unwrap_or_default();
    let retry_in = errors
        .iter()
        .filter_map(|e| e.meta.as_deref())
        .filter_map(|m| serde_json::from_str::<Value>(m).ok()?.get("retry_in")?.as_u64())
        .max();
    // Retry-After, else RateLimit-Reset (absolute), else meta.retry_in; an
    // unknown delay stays unknown rather than becoming zero. The reset is the
    // end of the quota's window: it dates the retry of a 429 only, not the
    // end of a provider's maintenance, which `meta.retry_in` gives.
    let reset = (status == 429)
        .then(|| header_num::<u64>(headers, "ratelimit-reset"))
        .flatten()
        .map(|reset| u32::try_from(reset.saturating_sub(now_unix)).unwrap_or(u32::MAX));
    let retry_in = retry_in.map(|s| u32::try_from(s).unwrap_or(u32::MAX));
    let retry_after_seconds = rate_limit.retry_after_seconds.or(reset).or(retry_in).map(|s| s.max(1));
    let retryable = retryable(status, &errors);
    let provider = errors.iter().filter_map(|e| e.meta.as_deref()).find_map(|m| {
        serde_json::from_str::<Value>(m)
            .ok()
            .and_then(|m| str_at(&m, "provider"))
    });
    ApiError {
        status,
        kind: ApiErrorKind::of(status),
        provider,
        errors,
        text,
        retryable,
        retry_after_seconds: retryable.then_some(retry_after_seconds).flatten(),
        rate_limit,
        request_id,
    }
}

/// Codes of a 502 that trying again will not change: the DGFIP's `03001`
/// for out-of-scope identifiers (seen by Démarches Simplifiées), URSSAF's
/// `04503` (the account's situation forbids delivery) and Infogreffe's
/// `02502` (order generation error).
const PERMANENT_502: &[&str] = &["03001", "04503", "02502"];

/// Whether trying again later may succeed (API-ENTREPRISE.md §4.2): status
/// first, then code.
fn retryable(status: u16, errors: &[ErrorItem]) -> bool {
    let has = |codes: &[&str]| errors.iter().any(|e| codes.contains(&e.code.as_str()));
    match status {
        // Only an in-flight duplicate ends; several matching entities do not.
        409 => has(&["00015"]),
        502 => !has(PERMANENT_502),
        429 | 500 | 503 | 504 => true,
        _ => false,
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn error_item(v: &Value) -> ErrorItem {
    let s = |k: &str| str_at(v, k).unwrap_or_default();
    ErrorItem {
        code: s("code"),
        title: s("title"),
        detail: s("detail"),
        parameter: v.get("source").and_then(|src| str_at(src, "parameter")),
        meta: v.get("meta").filter(|m| !m.is_null()).map(Value::to_string),
    }
}

fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `T` read from the JSON `text`, when it is an object.
fn read<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Option<T> {
    serde_json::from_str::<Obj<T>>(text).ok().and_then(|o| o.0)
}

/// A code and its label, as the server writes them.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCoded {
    code: Text,
    libelle: Text,
}

impl RawCoded {
    fn typed(self) -> Coded {
        Coded {
            code: self.code.0,
            libelle: self.libelle.0,
        }
    }
}

/// `tranche_effectif_salarie`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTranche {
    intitule: Text,
}

/// `personne_morale_attributs`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPersonneMorale {
    raison_sociale: Text,
    sigle: Text,
}

/// `personne_physique_attributs`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPersonnePhysique {
    prenom_usuel: Text,
    prenom_1: Text,
    nom_usage: Text,
    nom_naissance: Text,
}

impl RawPersonnePhysique {
    /// The display name: usual first name (or first name) and usage name
    /// (or birth name).
    fn name(self) -> Option<String> {
        let first = self.prenom_usuel.0.or(self.prenom_1.0);
        let last = self.nom_usage.0.or(self.nom_naissance.0);
        let name: Vec<String> = first.into_iter().chain(last).collect();
        (!name.is_empty()).then(|| name.join(" "))
    }
}

/// An unité légale as the server writes it (the fields the typed view reads).
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawUniteLegale {
    siren: Text,
    siret_siege_social: Text,
    #[serde(rename = "type")]
    kind: Text,
    personne_morale_attributs: Obj<RawPersonneMorale>,
    personne_physique_attributs: Obj<RawPersonnePhysique>,
    categorie_entreprise: Text,
    forme_juridique: Obj<RawCoded>,
    activite_principale: Obj<RawCoded>,
    tranche_effectif_salarie: Obj<RawTranche>,
    etat_administratif: Text,
    status_diffusion: Text,
    date_creation: Day,
    date_cessation: Day,
}

impl RawUniteLegale {
    /// The typed view; none without a SIREN.
    fn typed(self) -> Option<UniteLegale> {
        let pm = self.personne_morale_attributs.0;
        let (raison_sociale, sigle) = pm.map_or((None, None), |p| (p.raison_sociale.0, p.sigle.0));
        Some(UniteLegale {
            siren: self.siren.0?,
            siret_siege_social: self.siret_siege_social.0,
            kind: self.kind.0,
            denomination: raison_sociale
                .or_else(|| self.personne_physique_attributs.0.and_then(RawPersonnePhysique::name)),
            sigle,
            categorie_entreprise: self.categorie_entreprise.0,
            forme_juridique: self.forme_juridique.0.map(RawCoded::typed),
            activite_principale: self.activite_principale.0.map(RawCoded::typed),
            tranche_effectif: self.tranche_effectif_salarie.0.and_then(|t| t.intitule.0),
            etat_administratif: self.etat_administratif.0,
            status_diffusion: self.status_diffusion.0,
            date_creation: self.date_creation.0,
            date_cessation: self.date_cessation.0,
        })
    }
}

/// `acheminement_postal`: the lines `l1` to `l7`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLignes {
    l1: Text,
    l2: Text,
    l3: Text,
    l4: Text,
    l5: Text,
    l6: Text,
    l7: Text,
}

/// An address as the server writes it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAdresse {
    numero_voie: Text,
    type_voie: Text,
    libelle_voie: Text,
    complement_adresse: Text,
    code_postal: Text,
    libelle_commune: Text,
    code_commune: Text,
    acheminement_postal: Obj<RawLignes>,
}

impl RawAdresse {
    fn typed(self) -> Adresse {
        let lignes = self
            .acheminement_postal
            .0
            .map(|l| {
                [l.l1, l.l2, l.l3, l.l4, l.l5, l.l6, l.l7]
                    .into_iter()
                    .filter_map(|line| line.0)
                    .map(|line| line.trim().to_owned())
                    .filter(|line| !line.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Adresse {
            numero_voie: self.numero_voie.0,
            type_voie: self.type_voie.0,
            libelle_voie: self.libelle_voie.0,
            complement: self.complement_adresse.0,
            code_postal: self.code_postal.0,
            commune: self.libelle_commune.0,
            code_commune: self.code_commune.0,
            lignes,
        }
    }
}

/// An établissement as the server writes it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEtablissement {
    siret: Text,
    siege_social: Flag,
    enseigne: Text,
    activite_principale: Obj<RawCoded>,
    tranche_effectif_salarie: Obj<RawTranche>,
    etat_administratif: Text,
    status_diffusion: Text,
    date_creation: Day,
    date_fermeture: Day,
    adresse: Obj<RawAdresse>,
    unite_legale: Obj<RawUniteLegale>,
}

impl RawEtablissement {
    /// The typed view; none without a SIRET.
    fn typed(self) -> Option<Etablissement> {
        Some(Etablissement {
            siret: self.siret.0?,
            siege_social: self.siege_social.0,
            enseigne: self.enseigne.0,
            activite_principale: self.activite_principale.0.map(RawCoded::typed),
            tranche_effectif: self.tranche_effectif_salarie.0.and_then(|t| t.intitule.0),
            etat_administratif: self.etat_administratif.0,
            status_diffusion: self.status_diffusion.0,
            date_creation: self.date_creation.0,
            date_fermeture: self.date_fermeture.0,
            adresse: self.adresse.0.map(RawAdresse::typed),
            unite_legale: self.unite_legale.0.and_then(RawUniteLegale::typed),
        })
    }
}

/// `entity_status` of a document.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEntityStatus {
    code: Text,
    libelle: Text,
    description: Text,
}

/// The `data` of a document endpoint: v3 `expires_in`, v4
/// `document_url_expires_in` (which, when present even as null, is the
/// one read), or none.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDocument {
    document_url: Text,
    #[serde(deserialize_with = "lenient::present")]
    document_url_expires_in: Option<Seconds>,
    expires_in: Seconds,
    entity_status: Obj<RawEntityStatus>,
    date_debut_validite: Text,
    date_fin_validite: Text,
    date_delivrance_attestation: Text,
}

impl RawDocument {
    /// The document link; a null URL with `refus_de_delivrance` is an
    /// answer, not an error.
    fn typed(self) -> DocumentLink {
        let status = self.entity_status.0.unwrap_or_default();
        let code = status.code.0;
        let url = self.document_url.0;
        DocumentLink {
            refused: code.as_deref() == Some("refus_de_delivrance") || (url.is_none() && code.is_some()),
            url,
            expires_in_seconds: match self.document_url_expires_in {
                Some(seconds) => seconds.0,
                None => self.expires_in.0,
            },
            status: code,
            status_label: status.libelle.0.or(status.description.0),
            valid_from: self.date_debut_validite.0,
            valid_until: self.date_fin_validite.0,
            issued_on: self.date_delivrance_attestation.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::find;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn an_unite_legale_envelope_is_typed_and_kept_verbatim() {
        let e = find("insee_unites_legales", None).unwrap();
        let body = br#"{"data":{"siren":"552049447","type":"personne_morale","new_field":1,
            "personne_morale_attributs":{"raison_sociale":"SOCIETE NATIONALE SNCF","sigle":"SNCF"},
            "forme_juridique":{"code":"5599","libelle":"SA"},"date_creation":-473389200},
            "links":{"siege_social":"x"},"meta":{"redirect_from_siren":null}}"#;
        let headers = h(&[
            ("RateLimit-Limit", "250"),
            ("ratelimit-remaining", "249"),
            ("X-Request-ID", "abc"),
        ]);
        let r = parse(e, 200, &headers, body, 0).unwrap();
        let Some(TypedData::UniteLegale(u)) = &r.typed else {
            panic!("{r:?}")
        };
        assert_eq!(u.denomination.as_deref(), Some("SOCIETE NATIONALE SNCF"));
        assert_eq!(u.forme_juridique.as_ref().unwrap().code.as_deref(), Some("5599"));
        assert_eq!(u.date_creation.as_deref(), Some("1955-01-01"));
        assert!(r.data.contains("new_field"));
        assert_eq!(r.links, r#"{"siege_social":"x"}"#);
        assert_eq!((r.rate_limit.limit, r.rate_limit.remaining), (Some(250), Some(249)));
        assert_eq!(r.request_id.as_deref(), Some("abc"));
    }

    #[test]
    fn a_natural_person_gets_a_name_from_the_person_attributes() {
        let text = r#"{"siren":"1","personne_morale_attributs":{"raison_sociale":null},
               "personne_physique_attributs":{"prenom_1":"JEAN","nom_naissance":"DUPONT"}}"#;
        let u = read::<RawUniteLegale>(text).and_then(RawUniteLegale::typed).unwrap();
        assert_eq!(u.denomination.as_deref(), Some("JEAN DUPONT"));
    }

    #[test]
    fn a_field_of_another_type_is_absent_and_never_fails_the_answer() {
        let text = r#"{"siren":"1","sigle":7,"forme_juridique":"5599","date_creation":1.5,
               "activite_principale":{"code":["x"],"libelle":"L","new":{"deep":[1,{"a":null}]}},
               "personne_morale_attributs":[1,2],"etat_administratif":{"A":true}}"#;
        let u = read::<RawUniteLegale>(text).and_then(RawUniteLegale::typed).unwrap();
        assert_eq!(u.siren, "1");
        assert_eq!((u.forme_juridique, u.date_creation, u.denomination), (None, None, None));
        let coded = u.activite_principale.unwrap();
        assert_eq!((coded.code, coded.libelle.as_deref()), (None, Some("L")));
        assert_eq!(u.etat_administratif, None);
        assert!(read::<RawUniteLegale>("[1]").is_none() && read::<RawUniteLegale>("\"x\"").is_none());
    }

    #[test]
    fn a_json_api_error_maps_to_its_case_with_its_codes() {
        let e = find("insee_unites_legales", None).unwrap();
        let body = br#"{"errors":[{"code":"00201","title":"T","detail":"D","source":{"parameter":"context"}},
                                  {"code":"00202","title":"T","detail":"D","source":null,"meta":{}}]}"#;
        let Err(Error::Api(api)) = parse(e, 422, &[], body, 0) else {
            panic!()
        };
        assert_eq!(api.kind, ApiErrorKind::Unprocessable);
        let codes: Vec<_> = api.errors.iter().map(|i| i.code.as_str()).collect();
        assert_eq!(codes, ["00201", "00202"]);
        assert_eq!(api.errors[0].parameter.as_deref(), Some("context"));
        assert!(!api.retryable);
    }

    #[test]
    fn plain_text_and_empty_error_bodies_are_kept_as_text() {
        let e = find("insee_unites_legales", None).unwrap();
        let Err(Error::Api(api)) = parse(e, 404, &[], b"Not Found\n", 0) else {
            panic!()
        };
        assert_eq!(api.kind, ApiErrorKind::NotFound);
        assert_eq!(api.text.as_deref(), Some("Not Found"));
        let Err(Error::Api(api)) = parse(e, 410, &[], b"", 0) else {
            panic!()
        };
        assert_eq!(api.kind, ApiErrorKind::Gone);
        assert_eq!((api.text, api.errors.len()), (None, 0));
    }

    #[test]
    fn retry_after_comes_from_the_header_then_the_reset_then_meta_and_is_never_zero() {
        let e = find("insee_unites_legales", None).unwrap();
        let body = br#"{"errors":[{"code":"01020","title":"","detail":"","meta":{"retry_in":600}}]}"#;
        let retry = |status: u16, headers: &[(&str, &str)]| match parse(e, status, &h(headers), body, 1_000) {
            Err(Error::Api(api)) => api.retry_after_seconds,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            retry(429, &[("Retry-After", "7"), ("RateLimit-Reset", "1060")]),
            Some(7)
        );
        assert_eq!(retry(429, &[("RateLimit-Reset", "1060")]), Some(60));
        assert_eq!(retry(429, &[("RateLimit-Reset", "900")]), Some(1));
        assert_eq!(
            retry(503, &[("RateLimit-Reset", "1060")]),
            Some(600),
            "a maintenance ends with retry_in"
        );
        assert_eq!(retry(503, &[]), Some(600));
    }

    #[test]
    fn a_2xx_without_the_envelope_is_an_error_not_a_panic() {
        let e = find("insee_unites_legales", None).unwrap();
        assert!(matches!(parse(e, 200, &[], b"<html>", 0), Err(Error::Other(_))));
        assert!(matches!(parse(e, 200, &[], b"[]", 0), Err(Error::Other(_))));
    }

    #[test]
    fn documents_read_every_expiry_form_and_a_refusal_is_an_answer() {
        let v3 = find("acoss_attestations_sociales", Some(3)).unwrap();
        let v4 = find("acoss_attestations_sociales", Some(4)).unwrap();
        let body = br#"{"data":{"document_url":"https://storage/x.pdf","expires_in":7889238},"links":{},"meta":{}}"#;
        let d = parse(v3, 200, &[], body, 0).unwrap().document.unwrap();
        assert_eq!(
            (d.url.as_deref(), d.expires_in_seconds, d.refused),
            (Some("https://storage/x.pdf"), Some(7889238), false)
        );
        let body = br#"{"data":{"document_url":null,"document_url_expires_in":null,
            "entity_status":{"code":"refus_de_delivrance","libelle":"Refus"},"date_debut_validite":null},"links":{},"meta":{}}"#;
        let d = parse(v4, 200, &[], body, 0).unwrap().document.unwrap();
        assert!(d.refused && d.url.is_none());
        assert_eq!(d.status_label.as_deref(), Some("Refus"));
        let rne = find("inpi_rne_extrait_rne", None).unwrap();
        let body = br#"{"data":{"document_url":"https://x/rne.pdf"},"links":{},"meta":{}}"#;
        assert_eq!(
            parse(rne, 200, &[], body, 0)
                .unwrap()
                .document
                .unwrap()
                .expires_in_seconds,
            None
        );
    }

    #[test]
    fn file_links_are_found_in_collections_and_nested_json() {
        let e = find("mi_documents_associations", None).unwrap();
        let body =
            br#"{"data":[{"data":{"type":"statuts","url":"https://a/1.pdf","expires_in":3600},"links":{},"meta":{}},
                               {"data":{"type":"pv","url":null},"links":{},"meta":{}}],"links":{},"meta":{}}"#;
        let r = parse(e, 200, &[], body, 0).unwrap();
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.files[0].pointer, "/0/data/url");
        assert_eq!(
            (r.files[0].url.as_deref(), r.files[0].expires_in_seconds),
            (Some("https://a/1.pdf"), Some(3600))
        );
        assert_eq!(r.files[1].url, None);
    }

    #[test]
    fn errors_are_classified_on_status_then_code() {
        let e = find("dgfip_chiffres_affaires", None).unwrap();
        let classify = |status: u16, code: &str| {
            let body = format!(
                r#"{{"errors":[{{"code":"{code}","title":"","detail":"","meta":{{"provider":"DGFIP - Adélie"}}}}]}}"#
            );
            let err = parse(e, status, &[], body.as_bytes(), 0).unwrap_err();
            let Error::Api(api) = err else { panic!("{err:?}") };
            assert_eq!(api.kind, ApiErrorKind::of(status));
            (api.retryable, api.provider)
        };
        assert_eq!(classify(409, "00015"), (true, Some("DGFIP - Adélie".into())));
        assert!(!classify(409, "03015").0);
        assert!(!classify(502, "03001").0, "the DGFIP's 03001 is permanent");
        assert!(classify(502, "03000").0);
        assert!(classify(504, "03002").0);
        assert!(!classify(404, "03003").0);
    }

    #[test]
    fn privileges_read_both_shapes_and_health_reads_a_down_provider() {
        let p = find("privileges", None).unwrap();
        for body in [
            &br#"{"data":{"privileges":["a","b"]}}"#[..],
            br#"{"privileges":["a","b"]}"#,
        ] {
            let r = parse(p, 200, &[], body, 0).unwrap();
            assert_eq!(r.typed, Some(TypedData::Privileges(vec!["a".into(), "b".into()])));
        }
        let ping = find("ping", None).unwrap();
        let r = parse(
            ping,
            502,
            &[],
            br#"{"status":"bad_gateway","last_update":"2026-01-01T00:00:00Z"}"#,
            0,
        )
        .unwrap();
        let Some(TypedData::Health(h)) = r.typed else { panic!() };
        assert_eq!((r.status, h.status.as_str()), (502, "bad_gateway"));
    }
}
