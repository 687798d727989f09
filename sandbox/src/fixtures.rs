//! The staging fixtures of API Entreprise (`mocks/payloads`), embedded at
//! build time and looked up the way staging does: the fixture whose `params`
//! match the request, else the endpoint's default answer.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// One staging fixture.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    /// The path and query values that select it.
    #[serde(default)]
    pub params: BTreeMap<String, serde_yaml::Value>,
    /// The HTTP status it answers with.
    pub status: u16,
    /// The JSON body.
    pub payload: String,
    /// Whether staging uses it as the endpoint's example.
    #[serde(default)]
    pub example: bool,
    /// The fixture's file name, for error messages and tests.
    #[serde(skip)]
    pub file: &'static str,
}

impl Fixture {
    /// The value of a selecting parameter, as text.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params.get(name).map(|v| match v {
            serde_yaml::Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other).unwrap_or_default().trim().to_owned(),
        })
    }
}

/// Every fixture, by operation id (`api_entreprise_v4_insee_unites_legales`).
pub fn all() -> &'static BTreeMap<&'static str, Vec<Fixture>> {
    static ALL: OnceLock<BTreeMap<&'static str, Vec<Fixture>>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: BTreeMap<&str, Vec<Fixture>> = BTreeMap::new();
        for (op, file, yaml) in FIXTURES {
            let mut fixture: Fixture =
                serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("embedded fixture {op}/{file} is invalid: {e}"));
            fixture.file = file;
            all.entry(op).or_default().push(fixture);
        }
        all
    })
}

/// The fixture for `operation` whose every parameter matches `values`, else
/// the default: the example 200, else the first 200.
pub fn find(operation: &str, values: &BTreeMap<String, String>) -> Option<&'static Fixture> {
    let fixtures = all().get(operation)?;
    let matching = fixtures.iter().find(|f| {
        !f.params.is_empty()
            && f.params.keys().all(|name| {
                values
                    .get(name)
                    .is_some_and(|v| f.param(name).as_deref() == Some(v.as_str()))
            })
    });
    matching
        .or_else(|| fixtures.iter().find(|f| f.example && f.status == 200))
        .or_else(|| fixtures.iter().find(|f| f.status == 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_fixture_parses() {
        let count: usize = all().values().map(Vec::len).sum();
        assert_eq!(count, FIXTURES.len());
        assert!(count > 150, "{count}");
    }

    #[test]
    fn a_fixture_is_chosen_by_its_params_else_the_example() {
        let by = |siren: &str| BTreeMap::from([("siren".to_owned(), siren.to_owned())]);
        let op = "api_entreprise_v4_insee_unites_legales";
        assert_eq!(find(op, &by("552049447")).unwrap().file, "personne_morale.yaml");
        let default = find(op, &by("418166096")).unwrap();
        assert!(default.example && default.status == 200);
    }
}
