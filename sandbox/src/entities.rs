//! The sandbox's known entities: a few companies and an association that
//! every endpoint of every use case answers for the way a real one would,
//! so that a first dossier works offline and the tests know what to expect.
//!
//! Any other valid identifier gets each endpoint's staging example, as
//! before; an identifier of the staging fixtures gets its fixture.

/// What kind of answers an entity gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A company up to date with everything: every attestation delivered.
    Company,
    /// An association: its registers answer (RNA, the associations'
    /// directory), the companies' registers (RCS, RNE, RNM) do not know it.
    Association,
    /// A company the providers refuse: URSSAF refuses to deliver its
    /// attestation (an answer, not an error), the DGFIP answers 502 `03501`.
    Refused,
    /// A company no provider knows: 404 everywhere.
    NotFound,
}

/// One known entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    /// What a person calls it.
    pub name: &'static str,
    /// Its SIREN.
    pub siren: &'static str,
    /// Its head office's SIRET.
    pub siret: &'static str,
    /// Its RNA number, for an association.
    pub rna: Option<&'static str>,
    /// How the providers treat it.
    pub profile: Profile,
}

/// The known entities.
pub const ENTITIES: &[Entity] = &[
    Entity {
        name: "OCTO Technology (every attestation delivered)",
        siren: "418166096",
        siret: "41816609600069",
        rna: None,
        profile: Profile::Company,
    },
    Entity {
        name: "Fondation des associations (an association)",
        siren: "775672272",
        siret: "77567227221138",
        rna: Some("W751004076"),
        profile: Profile::Association,
    },
    Entity {
        name: "Société refusée (URSSAF refuses its attestation, the DGFIP fails)",
        siren: "900000019",
        siret: "90000001900019",
        rna: None,
        profile: Profile::Refused,
    },
    Entity {
        name: "Société inconnue (no provider knows it)",
        siren: "900000027",
        siret: "90000002700012",
        rna: None,
        profile: Profile::NotFound,
    },
];

/// The known entity one of `values` names (by SIREN, by any SIRET of its
/// SIREN, or by RNA number).
pub fn of(values: &[(String, String)]) -> Option<&'static Entity> {
    values.iter().find_map(|(_, value)| {
        ENTITIES.iter().find(|e| {
            value == e.siren || e.rna == Some(value.as_str()) || (value.len() == 14 && value.starts_with(e.siren))
        })
    })
}

/// What the entity gets from the route of `provider` (the path's first
/// segment) named `operation`: a fixture of that route chosen by file name,
/// an error, or the route's staging example (`Default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The route's example, its links and dates made current.
    Default,
    /// The route's fixture of this file name.
    Fixture(&'static str),
    /// 404 with the provider's `XX003` (entity not found).
    NotFound,
    /// 502 with this code (a provider's error).
    ProviderError(&'static str),
}

impl Entity {
    /// How `operation` of `provider` answers for this entity.
    pub fn answer(&self, provider: &str, operation: &str) -> Answer {
        match self.profile {
            // INSEE's answers for a company: a company's (the example is an association's).
            Profile::Company | Profile::Refused if provider == "insee" && !operation.ends_with("successions") => {
                Answer::Fixture("personne_morale.yaml")
            }
            Profile::Company => Answer::Default,
            Profile::NotFound => Answer::NotFound,
            Profile::Association => match provider {
                "infogreffe" | "inpi" | "cma_france" => Answer::NotFound,
                "insee" if !operation.ends_with("successions") => Answer::Fixture("association.yaml"),
                _ => Answer::Default,
            },
            Profile::Refused => match operation {
                "api_entreprise_v4_acoss_attestations_sociales" => Answer::Fixture("attestation_non_delivree.yaml"),
                _ if provider == "dgfip" && operation.contains("attestations_fiscales") => {
                    Answer::ProviderError("03501")
                }
                _ => Answer::Default,
            },
        }
    }
}

/// `payload` speaking of `entity`: each `siren`, `siret`, `siret_siege`,
/// `siret_siege_social` and `rna` field of the fixture it was made from
/// holds the entity's own, so that a dossier that reads the head office's
/// SIRET from one answer asks the next ones about the same entity.
pub fn identified(payload: String, entity: &Entity) -> String {
    fn walk(value: &mut serde_json::Value, entity: &Entity) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    let own = match key.as_str() {
                        "siren" => Some(entity.siren),
                        "siret" | "siret_siege" | "siret_siege_social" => Some(entity.siret),
                        "rna" => entity.rna,
                        _ => None,
                    };
                    match own {
                        Some(own) if value.is_string() => *value = own.into(),
                        _ => walk(value, entity),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, entity)),
            _ => {}
        }
    }
    let Ok(mut body) = serde_json::from_str::<serde_json::Value>(&payload) else {
        return payload;
    };
    walk(&mut body, entity);
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_has_valid_identifiers_that_find_it() {
        for e in ENTITIES {
            assert!(
                crate::validate::is_siren(e.siren) && crate::validate::is_siret(e.siret),
                "{}",
                e.name
            );
            assert!(e.rna.is_none_or(crate::validate::is_rna), "{}", e.name);
            assert!(e.siret.starts_with(e.siren), "{}", e.name);
            let by = |v: &str| of(&[("siren".into(), v.into())]);
            assert_eq!(by(e.siren), Some(e));
            assert_eq!(by(e.siret), Some(e));
            if let Some(rna) = e.rna {
                assert_eq!(by(rna), Some(e));
            }
        }
        assert_eq!(of(&[("siren".into(), "552049447".into())]), None);
    }

    #[test]
    fn the_fixtures_an_entity_names_exist() {
        for e in ENTITIES {
            for route in crate::routes::all() {
                if let Answer::Fixture(file) = e.answer(route.provider(), &route.operation) {
                    let fixtures = crate::fixtures::all().get(route.operation.as_str());
                    assert!(
                        fixtures.is_some_and(|f| f.iter().any(|f| f.file == file)),
                        "{}: no fixture {file} for {}",
                        e.name,
                        route.operation
                    );
                }
            }
        }
    }
}
