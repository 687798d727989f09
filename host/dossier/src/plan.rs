//! Which endpoints a dossier asks, and with what: the use case's
//! recommended endpoints (its optional ones on demand, adjusted by
//! `--only` and `--except`), one version each, and for each the path
//! values the entity gives, or why it does not apply.

use api_entreprise_catalogue::{self as catalogue, Endpoint, ParamKind, UseCase};

/// What to take from the use case.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Its optional endpoints too.
    pub with_optional: bool,
    /// These endpoints only (ids), each allowed by the use case.
    pub only: Vec<String>,
    /// Not these (ids).
    pub except: Vec<String>,
}

/// One endpoint of the dossier.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// The endpoint, in the version the use case lists (the newest one
    /// that is not deprecated when it lists several).
    pub endpoint: &'static Endpoint,
    /// `recommended` or `optional`.
    pub stance: &'static str,
}

/// The endpoints of `use_case` a dossier asks under `selection`, in the
/// use case's order; an error says what in the selection is wrong.
pub fn plan(use_case: &'static UseCase, selection: &Selection) -> Result<Vec<Planned>, String> {
    let listed = |list: &'static [(&'static str, u8)], stance: &'static str| {
        list.iter().filter_map(move |(id, version)| {
            Some(Planned {
                endpoint: catalogue::find(id, Some(*version))?,
                stance,
            })
        })
    };
    let all: Vec<Planned> = listed(use_case.recommended, "recommended")
        .chain(listed(use_case.optional, "optional"))
        .collect();
    for id in selection.only.iter().chain(&selection.except) {
        if !all.iter().any(|p| p.endpoint.id == id) {
            let why = if use_case.forbidden.iter().any(|(f, _)| f == id) {
                "forbids it"
            } else if catalogue::find(id, None).is_some() {
                "does not name it"
            } else {
                "does not name it, and no endpoint has that id (see `api-entreprise endpoints`)"
            };
            return Err(format!(
                "{id}: the use case `{}` {why}; `api-entreprise endpoints --use-case {}` lists what it allows",
                use_case.id, use_case.id
            ));
        }
    }
    let wanted = |p: &Planned| {
        let id = p.endpoint.id;
        let chosen = if selection.only.is_empty() {
            p.stance == "recommended" || selection.with_optional
        } else {
            selection.only.iter().any(|o| o == id)
        };
        chosen && !selection.except.iter().any(|e| e == id)
    };
    let mut planned: Vec<Planned> = Vec::new();
    for p in all.into_iter().filter(wanted) {
        match planned.iter_mut().find(|q| q.endpoint.id == p.endpoint.id) {
            // One version per endpoint: the newest that is not deprecated.
            Some(q) => {
                let better =
                    (!p.endpoint.deprecated, p.endpoint.version) > (!q.endpoint.deprecated, q.endpoint.version);
                if better {
                    q.endpoint = p.endpoint;
                }
            }
            None => planned.push(p),
        }
    }
    if planned.is_empty() {
        return Err(format!(
            "nothing to ask: the selection leaves none of the use case `{}`'s endpoints",
            use_case.id
        ));
    }
    Ok(planned)
}

/// What is known of the entity: from its identifier, then from the first
/// answers (INSEE's legal form and head office).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Known {
    /// Its SIREN.
    pub siren: Option<String>,
    /// An establishment's SIRET: the one given, else the head office's.
    pub siret: Option<String>,
    /// Its RNA number.
    pub rna: Option<String>,
    /// Whether it is an association: an RNA number, or an INSEE legal
    /// form of category 92; `None` until known.
    pub association: Option<bool>,
}

impl Known {
    /// What `identifier` alone tells.
    pub fn of(identifier: &crate::Identifier) -> Self {
        use crate::identifier::Kind;
        let value = Some(identifier.value.clone());
        match identifier.kind {
            Kind::Siren => Self {
                siren: value,
                ..Self::default()
            },
            Kind::Siret => Self {
                siren: identifier.siren().map(str::to_owned),
                siret: value,
                ..Self::default()
            },
            Kind::Rna => Self {
                rna: value,
                association: Some(true),
                ..Self::default()
            },
        }
    }

    /// Learns from an answer's `data`: the legal form's code
    /// (`forme_juridique.code`, an association when it starts with 92) and,
    /// with no SIRET yet, the head office's (`siret_siege_social`).
    pub fn learn(&mut self, data: &serde_json::Value) {
        // An association known by its RNA number: its directory gives its
        // SIREN and its head office, if it has them.
        if self.siren.is_none()
            && let Some(siren) = find(data, "siren").and_then(|s| s.as_str())
            && siren
                .parse::<crate::Identifier>()
                .is_ok_and(|i| i.kind == crate::identifier::Kind::Siren)
        {
            self.siren = Some(siren.to_owned());
        }
        if self.siret.is_none()
            && let Some(siret) = find(data, "siret_siege").and_then(|s| s.as_str())
            && self
                .siren
                .as_deref()
                .is_some_and(|siren| siret.len() == 14 && siret.starts_with(siren))
        {
            self.siret = Some(siret.to_owned());
        }
        if self.association.is_none()
            && let Some(code) = find(data, "forme_juridique")
                .and_then(|f| f.get("code"))
                .and_then(|c| c.as_str())
        {
            self.association = Some(code.starts_with("92"));
        }
        if self.siret.is_none()
            && let Some(siret) = find(data, "siret_siege_social").and_then(|s| s.as_str())
            && siret.len() == 14
            && self.siren.as_deref().is_none_or(|siren| siret.starts_with(siren))
        {
            self.siret = Some(siret.to_owned());
        }
    }
}

/// The first value under `key`, at any depth.
fn find<'a>(value: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map
            .get(key)
            .filter(|v| !v.is_null())
            .or_else(|| map.values().find_map(|v| find(v, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

/// The endpoints that tell who the entity is (its legal form, its head
/// office; an association's SIREN): asked first, so that the others know it.
pub fn tells_identity(e: &Endpoint) -> bool {
    (e.provider == "INSEE" && !e.id.contains("adresses") && !e.id.contains("successions"))
        || e.id == "mi_unites_legales"
}

/// Whether `e` is for associations only: it takes an RNA number, and not
/// for every entity (the subsidies' record takes any identifier).
pub fn for_associations_only(e: &Endpoint) -> bool {
    e.params
        .iter()
        .any(|(_, k)| matches!(k, ParamKind::SiretOrRna | ParamKind::SirenOrRna))
}

/// Why an endpoint is not asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unasked {
    /// It is not for this kind of entity: nothing is missing.
    NotApplicable(String),
    /// It needs what the identifier does not give: it is missing.
    NeedsInput(String),
}

impl std::fmt::Display for Unasked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotApplicable(why) | Self::NeedsInput(why) => f.write_str(why),
        }
    }
}

/// Whether `e` is a register of companies only (the trade register, the
/// INPI's, the craftsmen's), which an association is never in.
pub fn for_companies_only(e: &Endpoint) -> bool {
    ["infogreffe_", "inpi_", "rnm_"].iter().any(|p| e.id.starts_with(p))
}

/// The path values of `e` for the entity `known` describes, on `today`
/// (year and month parameters take the last complete year or month), or
/// why it is not asked.
pub fn values(e: &Endpoint, known: &Known, today: time::Date) -> Result<Vec<String>, Unasked> {
    if for_associations_only(e) && known.association == Some(false) {
        return Err(Unasked::NotApplicable(
            "for associations only, and this entity is not one".to_owned(),
        ));
    }
    if for_companies_only(e) && known.association == Some(true) {
        return Err(Unasked::NotApplicable(
            "a register of companies, and this entity is an association".to_owned(),
        ));
    }
    let last_month = today
        .replace_day(1)
        .ok()
        .and_then(|d| d.previous_day())
        .unwrap_or(today);
    let mut values = Vec::with_capacity(e.params.len());
    for (name, kind) in e.params {
        let value = match kind {
            ParamKind::Siren => known.siren.clone().ok_or_else(|| needs("a SIREN", known))?,
            ParamKind::Siret | ParamKind::SiretOrEori => known.siret.clone().ok_or_else(|| needs("a SIRET", known))?,
            ParamKind::Rna => known.rna.clone().ok_or_else(|| needs("an RNA number", known))?,
            ParamKind::SiretOrRna => known
                .siret
                .clone()
                .or_else(|| known.rna.clone())
                .ok_or_else(|| needs("a SIRET or an RNA number", known))?,
            ParamKind::SirenOrRna => known
                .siren
                .clone()
                .or_else(|| known.rna.clone())
                .ok_or_else(|| needs("a SIREN or an RNA number", known))?,
            ParamKind::SirenOrSiretOrRna => known
                .siret
                .clone()
                .or_else(|| known.siren.clone())
                .or_else(|| known.rna.clone())
                .ok_or_else(|| needs("an identifier", known))?,
            ParamKind::Year | ParamKind::DgfipYear => (today.year() - 1).to_string(),
            ParamKind::Month => format!("{:02}", u8::from(last_month.month())),
            ParamKind::Provider => {
                return Err(Unasked::NotApplicable(format!(
                    "its parameter {name} is not an entity's"
                )));
            }
        };
        values.push(value);
    }
    // A month goes with its own year: the last complete month's.
    if e.params.iter().any(|(_, k)| *k == ParamKind::Month) {
        for (value, (_, kind)) in values.iter_mut().zip(e.params) {
            if *kind == ParamKind::Year {
                *value = last_month.year().to_string();
            }
        }
    }
    Ok(values)
}

fn needs(what: &str, known: &Known) -> Unasked {
    let hint = if known.rna.is_some() && known.siren.is_none() {
        "; an RNA number gives none: ask again with the association's SIRET to include it"
    } else if known.siret.is_none() {
        "; give an establishment's SIRET (or keep an INSEE head-office endpoint in the selection) to include it"
    } else {
        ""
    };
    Unasked::NeedsInput(format!("needs {what}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> time::Date {
        time::Date::from_calendar_date(2026, time::Month::January, 15).unwrap()
    }

    #[test]
    fn a_use_case_gives_one_version_of_each_recommended_endpoint() {
        let mp = catalogue::use_case("marches_publics").unwrap();
        let planned = plan(mp, &Selection::default()).unwrap();
        let urssaf: Vec<_> = planned
            .iter()
            .filter(|p| p.endpoint.id == "acoss_attestations_sociales")
            .collect();
        assert_eq!(urssaf.len(), 1);
        assert_eq!(urssaf[0].endpoint.version, 4);
        assert!(planned.iter().all(|p| p.stance == "recommended"));
        let with_optional = plan(
            mp,
            &Selection {
                with_optional: true,
                ..Selection::default()
            },
        )
        .unwrap();
        assert!(with_optional.len() > planned.len());
    }

    #[test]
    fn only_and_except_must_name_what_the_use_case_allows() {
        let mp = catalogue::use_case("socle_de_base").unwrap();
        let only = |ids: &[&str]| Selection {
            only: ids.iter().map(|s| (*s).to_owned()).collect(),
            ..Selection::default()
        };
        let err = plan(mp, &only(&["acoss_attestations_sociales"])).unwrap_err();
        assert!(err.contains("forbids it"), "{err}");
        assert!(
            plan(mp, &only(&["nope"]))
                .unwrap_err()
                .contains("no endpoint has that id")
        );
        let two = plan(mp, &only(&["insee_unites_legales", "insee_etablissements"])).unwrap();
        assert_eq!(two.len(), 2);
        let except = Selection {
            except: vec!["insee_unites_legales".into()],
            ..Selection::default()
        };
        assert!(
            plan(mp, &except)
                .unwrap()
                .iter()
                .all(|p| p.endpoint.id != "insee_unites_legales")
        );
    }

    #[test]
    fn values_come_from_what_is_known_or_say_why_not() {
        let siren_only = Known::of(&"418166096".parse().unwrap());
        let etab = catalogue::find("insee_etablissements", None).unwrap();
        assert!(
            values(etab, &siren_only, today())
                .unwrap_err()
                .to_string()
                .contains("needs a SIRET")
        );
        let mut known = siren_only.clone();
        known.learn(&serde_json::json!({ "siret_siege_social": "41816609600069",
                                          "forme_juridique": { "code": "5710" } }));
        assert_eq!(values(etab, &known, today()).unwrap(), ["41816609600069"]);
        assert_eq!(known.association, Some(false));
        let asso = catalogue::find("mi_associations", None).unwrap();
        assert!(
            values(asso, &known, today())
                .unwrap_err()
                .to_string()
                .contains("associations only")
        );
        let monthly = catalogue::find("gip_mds_effectifs_mensuels_etablissement", None).unwrap();
        assert_eq!(
            values(monthly, &known, today()).unwrap(),
            ["41816609600069", "12", "2025"]
        );
        let rna = Known::of(&"W751004076".parse().unwrap());
        assert_eq!(values(asso, &rna, today()).unwrap(), ["W751004076"]);
        assert!(
            values(etab, &rna, today())
                .unwrap_err()
                .to_string()
                .contains("RNA number gives none")
        );
    }
}
