//! Local validation with the server's rules and codes (API-ENTREPRISE.md §1
//! and §7), so that a bad request is refused before it is sent and before it
//! spends any quota.

use crate::catalogue::{Endpoint, ParamKind};
use crate::error::ErrorItem;

/// The trace as the caller gave it (a field left out is blank, and refused
/// with its code like a blank one).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trace {
    pub context: String,
    pub recipient: String,
    pub object: String,
    pub user_id: Option<String>,
}

/// The length the API advises for `object` ("description courte, < 50
/// caractères"). The server does not enforce it, so neither do we: a longer
/// object is sent whole, and the command warns.
pub const OBJECT_ADVISED_MAX_CHARS: usize = 50;

/// Code for faults only a client can make: a wrong number of path values, an
/// unknown query parameter, a value outside an enumeration. The server never
/// sees such a request; no server error has this code.
pub const LOCAL_SHAPE_CODE: &str = "00000";

const UNPROCESSABLE: &str = "Entité non traitable";

/// The Luhn check used by INSEE for SIREN and SIRET: doubling every second
/// digit from the right.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn all_digits(value: &str, len: usize) -> bool {
    value.len() == len && value.bytes().all(|b| b.is_ascii_digit())
}

/// 9 digits passing Luhn. There is no La Poste exception for SIREN.
pub fn is_siren(value: &str) -> bool {
    all_digits(value, 9) && luhn(value)
}

/// La Poste's establishments share SIREN 356000000 and their SIRETs break Luhn.
const LA_POSTE_PREFIX: &str = "356000000";

/// 14 digits passing Luhn, or a La Poste SIRET.
pub fn is_siret(value: &str) -> bool {
    all_digits(value, 14) && (luhn(value) || value.starts_with(LA_POSTE_PREFIX))
}

/// `W` + a digit + a digit or capital + 7 digits, or the old Alsace-Moselle
/// form `0` + 3 digits + `00` + 4 digits.
pub fn is_rna(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() != 10 {
        return false;
    }
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let modern = b[0] == b'W'
        && b[1].is_ascii_digit()
        && (b[2].is_ascii_digit() || b[2].is_ascii_uppercase())
        && digits(&b[3..]);
    let alsace_moselle = b[0] == b'0' && digits(&b[1..4]) && &b[4..6] == b"00" && digits(&b[6..]);
    modern || alsace_moselle
}

/// A SIRET; `FR` + a SIRET; or a foreign EORI: two capitals other than `FR`
/// and anything after them (the server checks nothing more).
pub fn is_siret_or_eori(value: &str) -> bool {
    if is_siret(value) {
        return true;
    }
    match value.get(..2) {
        Some("FR") => is_siret(&value[2..]),
        Some(prefix) => prefix.bytes().all(|b| b.is_ascii_uppercase()),
        None => false,
    }
}

/// The current year, from the host's clock.
pub fn year_of(now_unix: u64) -> i32 {
    i64::try_from(now_unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or(1970, |d| d.year())
}

fn is_month(value: &str) -> bool {
    all_digits(value, 2) && matches!(value.parse::<u8>(), Ok(1..=12))
}

/// The server's rules for each kind of path value.
pub trait ParamRule: Copy {
    /// The server's code for a bad value of this kind.
    fn code(self) -> &'static str;
    /// Checks `value`, giving the server's code when it is wrong. Years are
    /// checked against `year`, the current one.
    fn check(self, value: &str, year: i32) -> Result<(), &'static str>;
    /// Whether `value` has the form of this kind (years: 4 digits).
    fn accepts(self, value: &str) -> bool;
    /// What a value of this kind looks like, for messages.
    fn expected(self) -> &'static str;
}

impl ParamRule for ParamKind {
    fn code(self) -> &'static str {
        match self {
            ParamKind::Siren => "00301",
            ParamKind::Siret => "00302",
            ParamKind::Rna | ParamKind::SiretOrRna => "00303",
            ParamKind::SiretOrEori => "00304",
            ParamKind::Month => "00305",
            ParamKind::Year | ParamKind::DgfipYear => "00307",
            ParamKind::Provider => LOCAL_SHAPE_CODE,
            ParamKind::SirenOrSiretOrRna => "00330",
            ParamKind::SirenOrRna => "00333",
        }
    }

    fn check(self, value: &str, year: i32) -> Result<(), &'static str> {
        let year_in = |range: std::ops::RangeInclusive<i32>| value.parse::<i32>().is_ok_and(|y| range.contains(&y));
        match self {
            ParamKind::Year if all_digits(value, 4) && !year_in(1900..=year) => Err("00307"),
            // DGFIP: a malformed year is 00307, one outside 2006..last year 00315.
            ParamKind::DgfipYear if all_digits(value, 4) && !year_in(2006..=year - 1) => Err("00315"),
            _ if self.accepts(value) => Ok(()),
            _ => Err(self.code()),
        }
    }

    fn accepts(self, value: &str) -> bool {
        match self {
            ParamKind::Siren => is_siren(value),
            ParamKind::Siret => is_siret(value),
            ParamKind::Rna => is_rna(value),
            ParamKind::SiretOrRna => is_siret(value) || is_rna(value),
            ParamKind::SirenOrRna => is_siren(value) || is_rna(value),
            ParamKind::SirenOrSiretOrRna => is_siren(value) || is_siret(value) || is_rna(value),
            ParamKind::SiretOrEori => is_siret_or_eori(value),
            ParamKind::Year | ParamKind::DgfipYear => all_digits(value, 4),
            ParamKind::Month => is_month(value),
            ParamKind::Provider => api_entreprise_catalogue::is_provider(value),
        }
    }

    /// What a valid value looks like, for error messages.
    fn expected(self) -> &'static str {
        match self {
            ParamKind::Siren => "a SIREN: 9 digits passing the Luhn check",
            ParamKind::Siret => "a SIRET: 14 digits passing the Luhn check",
            ParamKind::Rna => "an RNA number such as W751004076",
            ParamKind::SiretOrRna => "a SIRET or an RNA number",
            ParamKind::SirenOrRna => "a SIREN or an RNA number",
            ParamKind::SirenOrSiretOrRna => "a SIREN, a SIRET or an RNA number",
            ParamKind::SiretOrEori => "a SIRET, FR + a SIRET, or a foreign EORI number",
            ParamKind::Year => "a year of 4 digits, up to this year",
            ParamKind::DgfipYear => "a fiscal year of 4 digits, from 2006 to last year",
            ParamKind::Month => "a month from 01 to 12",
            ParamKind::Provider => "a provider name such as insee/sirene",
        }
    }
}

/// Checks a request against `endpoint`, returning every fault at once, in the
/// order the server checks them: missing trace fields (context, recipient,
/// object), then the recipient's format, then the path values, then the
/// query parameters. `year` is the current year. Routes that need no trace
/// (`/privileges`, health) ignore it.
pub fn check(
    endpoint: &Endpoint,
    params: &[String],
    query: &[(String, String)],
    trace: &Trace,
    year: i32,
) -> Result<(), Vec<ErrorItem>> {
    let mut faults = Vec::new();
    if endpoint.needs_trace {
        check_trace(endpoint, trace, &mut faults);
    }
    let recipient = trace.recipient.trim();
    check_params(endpoint, params, recipient, year, &mut faults);
    check_query(endpoint, query, &mut faults);
    if faults.is_empty() { Ok(()) } else { Err(faults) }
}

/// Rails' `blank?`: whitespace only counts as missing.
fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn check_trace(endpoint: &Endpoint, trace: &Trace, faults: &mut Vec<ErrorItem>) {
    if blank(&trace.context) {
        faults.push(ErrorItem::local(
            "00201",
            "context",
            UNPROCESSABLE,
            "the trace field `context` is mandatory: give the administrative frame of the request, such as \"aides publiques\"",
        ));
    }
    if blank(&trace.recipient) {
        faults.push(ErrorItem::local(
            "00203",
            "recipient",
            UNPROCESSABLE,
            "the trace field `recipient` is mandatory: give the SIRET of the public body that will use the data",
        ));
    }
    if blank(&trace.object) {
        faults.push(ErrorItem::local(
            "00202",
            "object",
            UNPROCESSABLE,
            "the trace field `object` is mandatory: give the reason for the request or the case number",
        ));
    }
    let recipient = trace.recipient.trim();
    if !blank(recipient) && !is_siret(recipient) {
        faults.push(ErrorItem::local(
            "00210",
            "recipient",
            UNPROCESSABLE,
            format!(
                "`recipient` {recipient:?} is not a valid SIRET: give the 14-digit SIRET of the public body that will use the data"
            ),
        ));
    }
    if endpoint.requires_user_id && trace.user_id.as_deref().is_none_or(blank) {
        faults.push(ErrorItem::local(
            "00308",
            "user_id",
            UNPROCESSABLE,
            format!(
                "endpoint `{}` is a DGFIP endpoint: the trace must carry a `user-id`",
                endpoint.id
            ),
        ));
    }
}

fn check_params(endpoint: &Endpoint, params: &[String], recipient: &str, year: i32, faults: &mut Vec<ErrorItem>) {
    for (i, (name, kind)) in endpoint.params.iter().enumerate() {
        match params.get(i) {
            None => faults.push(ErrorItem::local(
                kind.code(),
                name,
                UNPROCESSABLE,
                format!("the path value `{name}` is missing: give {}", kind.expected()),
            )),
            Some(value) => {
                if let Err(code) = kind.check(value, year) {
                    faults.push(ErrorItem::local(
                        code,
                        name,
                        UNPROCESSABLE,
                        format!("`{name}` {value:?} is not valid: give {}", kind.expected()),
                    ));
                    continue;
                }
                // The recipient is the public body using the data, never the
                // entity looked up (API Entreprise code 00211; the server does
                // not check it today, so we do). A SIRET of the looked-up
                // SIREN counts too.
                let same_entity = !value.is_empty()
                    && (recipient == value || (recipient.len() == 14 && recipient.starts_with(value.as_str())));
                if same_entity && endpoint.needs_trace && matches!(kind, ParamKind::Siren | ParamKind::Siret) {
                    faults.push(ErrorItem::local(
                        "00211",
                        "recipient",
                        "Le paramètre recipient est identique au SIRET/SIREN appelé.",
                        "`recipient` must be the SIRET of the public body that will use the data, not the entity looked up",
                    ));
                }
            }
        }
    }
    if params.len() > endpoint.params.len() {
        faults.push(ErrorItem::local(
            LOCAL_SHAPE_CODE,
            "path",
            "Trop de paramètres",
            format!(
                "endpoint `{}` takes {} path value(s) ({}), {} were given",
                endpoint.id,
                endpoint.params.len(),
                endpoint.params.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                params.len()
            ),
        ));
    }
}

/// The server's codes for the query parameters it checks; other values
/// outside their range or enumeration get [`LOCAL_SHAPE_CODE`].
fn query_code(name: &str) -> &'static str {
    match name {
        "limit" => "00313",
        "profondeur" => "00390",
        _ => LOCAL_SHAPE_CODE,
    }
}

fn check_query(endpoint: &Endpoint, query: &[(String, String)], faults: &mut Vec<ErrorItem>) {
    for (name, value) in query {
        let Some(known) = endpoint.query.iter().find(|q| q.name == name) else {
            let known: Vec<_> = endpoint.query.iter().map(|q| q.name).collect();
            faults.push(ErrorItem::local(
                LOCAL_SHAPE_CODE,
                name,
                "Paramètre inconnu",
                format!(
                    "endpoint `{}` has no query parameter `{name}`; it takes: {}",
                    endpoint.id,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
            continue;
        };
        let fault = if !known.values.is_empty() {
            (!known.values.contains(&value.as_str())).then(|| format!("one of {}", known.values.join(", ")))
        } else if known.min.is_some() || known.max.is_some() {
            let in_range = value.parse::<i64>().is_ok_and(|n| {
                known.min.is_none_or(|min| n >= i64::from(min)) && known.max.is_none_or(|max| n <= i64::from(max))
            });
            (!in_range).then(|| {
                format!(
                    "a whole number from {} to {}",
                    known.min.map_or("-".into(), |m| m.to_string()),
                    known.max.map_or("-".into(), |m| m.to_string())
                )
            })
        } else {
            None
        };
        if let Some(expected) = fault {
            faults.push(ErrorItem::local(
                query_code(name),
                name,
                UNPROCESSABLE,
                format!("`{name}` {value:?} is not valid: give {expected}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::find;

    fn trace() -> Trace {
        Trace {
            context: "aides publiques".into(),
            recipient: "13002526500013".into(),
            object: "dossier 42".into(),
            user_id: None,
        }
    }

    fn codes(r: Result<(), Vec<ErrorItem>>) -> Vec<String> {
        r.err().unwrap_or_default().into_iter().map(|i| i.code).collect()
    }

    #[test]
    fn siren_and_siret_follow_luhn() {
        assert!(is_siren("552049447"));
        assert!(is_siren("418166096"));
        assert!(!is_siren("552049448"));
        assert!(!is_siren("55204944"));
        assert!(!is_siren("55204944a"));
        assert!(is_siret("55204944776279"));
        assert!(is_siret("13002526500013"));
        assert!(!is_siret("13002526500001"));
        assert!(!is_siret("1300252650001"));
    }

    #[test]
    fn la_poste_sirets_pass_without_luhn_but_sirens_do_not_get_the_exception() {
        assert!(!luhn("35600000000049"));
        assert!(is_siret("35600000000049"));
        assert!(is_siren("356000000"));
    }

    #[test]
    fn rna_eori_year_and_month_forms() {
        assert!(is_rna("W751004076"));
        assert!(is_rna("W9Z2000123"));
        assert!(is_rna("0573002000"));
        assert!(!is_rna("X751004076"));
        assert!(is_siret_or_eori("FR55204944776279"));
        assert!(is_siret_or_eori("DE123456"));
        assert!(!is_siret_or_eori("FR123"));
        assert!(!is_siret_or_eori("de123"));
        assert!(ParamKind::Month.accepts("01") && ParamKind::Month.accepts("12"));
        assert!(!ParamKind::Month.accepts("13") && !ParamKind::Month.accepts("1"));
        assert!(ParamKind::Year.accepts("2024") && !ParamKind::Year.accepts("24"));
    }

    #[test]
    fn every_blank_trace_field_is_listed_in_the_servers_order() {
        let e = find("insee_unites_legales", None).unwrap();
        let t = Trace {
            context: " ".into(),
            recipient: String::new(),
            object: "\t".into(),
            user_id: None,
        };
        assert_eq!(
            codes(check(e, &["552049447".into()], &[], &t, 2026)),
            ["00201", "00203", "00202"]
        );
    }

    #[test]
    fn a_recipient_that_is_not_a_siret_and_a_bad_siren_are_both_listed() {
        let e = find("insee_unites_legales", None).unwrap();
        let t = Trace {
            recipient: "123".into(),
            ..trace()
        };
        assert_eq!(
            codes(check(e, &["552049448".into()], &[], &t, 2026)),
            ["00210", "00301"]
        );
    }

    #[test]
    fn the_recipient_cannot_be_the_entity_looked_up() {
        let e = find("insee_unites_legales", None).unwrap();
        let t = Trace {
            recipient: "55204944776279".into(),
            ..trace()
        };
        assert_eq!(codes(check(e, &["552049447".into()], &[], &t, 2026)), ["00211"]);
        let e = find("insee_etablissements", None).unwrap();
        assert_eq!(codes(check(e, &["55204944776279".into()], &[], &t, 2026)), ["00211"]);
    }

    #[test]
    fn missing_extra_and_unknown_values_are_refused() {
        let e = find("insee_etablissements", None).unwrap();
        assert_eq!(codes(check(e, &[], &[], &trace(), 2026)), ["00302"]);
        let two = ["55204944776279".to_string(), "x".to_string()];
        assert_eq!(codes(check(e, &two, &[], &trace(), 2026)), [LOCAL_SHAPE_CODE]);
        let q = [("limit".to_string(), "3".to_string())];
        assert_eq!(codes(check(e, &two[..1], &q, &trace(), 2026)), [LOCAL_SHAPE_CODE]);
    }

    #[test]
    fn a_valid_request_passes_and_a_long_object_is_not_refused() {
        let e = find("insee_etablissements", None).unwrap();
        let t = Trace {
            object: "x".repeat(OBJECT_ADVISED_MAX_CHARS * 3),
            ..trace()
        };
        assert_eq!(check(e, &["55204944776279".into()], &[], &t, 2026), Ok(()));
    }

    /// Every rule: an endpoint, a passing value and a failing one with the
    /// server's code. The year is 2026.
    #[test]
    fn every_rule_has_a_passing_and_a_failing_case_with_its_code() {
        let path_cases: &[(&str, &[&str], &[&str], &str)] = &[
            ("insee_unites_legales", &["552049447"], &["552049448"], "00301"),
            ("insee_etablissements", &["55204944776279"], &["5520494477627"], "00302"),
            ("mi_associations", &["W751004076"], &["W75100407"], "00303"),
            ("mi_associations", &["55204944776279"], &["552049447"], "00303"),
            ("dgddi_eori", &["FR55204944776279"], &["FR552049447"], "00304"),
            ("dgddi_eori", &["DE123456789"], &["de123"], "00304"),
            (
                "gip_mds_effectifs_mensuels_etablissement",
                &["55204944776279", "03", "2024"],
                &["55204944776279", "13", "2024"],
                "00305",
            ),
            (
                "gip_mds_effectifs_annuels_entreprise",
                &["552049447", "2026"],
                &["552049447", "2027"],
                "00307",
            ),
            (
                "gip_mds_effectifs_annuels_entreprise",
                &["552049447", "1900"],
                &["552049447", "24"],
                "00307",
            ),
            (
                "dgfip_liasses_fiscales",
                &["306138900", "2025"],
                &["306138900", "2026"],
                "00315",
            ),
            (
                "dgfip_liasses_fiscales",
                &["306138900", "2006"],
                &["306138900", "2005"],
                "00315",
            ),
            (
                "dgfip_liasses_fiscales",
                &["306138900", "2024"],
                &["306138900", "24"],
                "00307",
            ),
            ("data_subvention_subventions", &["552049447"], &["55204944"], "00330"),
            ("data_subvention_subventions", &["0573002000"], &["1573002000"], "00330"),
            ("mi_unites_legales", &["W751004076"], &["55204944776279"], "00333"),
            ("ping", &["insee/sirene"], &["insee//sirene"], LOCAL_SHAPE_CODE),
        ];
        let dgfip_trace = Trace {
            user_id: Some("agent-7".into()),
            ..trace()
        };
        for (id, good, bad, code) in path_cases {
            let e = find(id, None).unwrap();
            let t = if e.requires_user_id {
                dgfip_trace.clone()
            } else {
                trace()
            };
            let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
            assert_eq!(check(e, &own(good), &[], &t, 2026), Ok(()), "{id} {good:?}");
            assert_eq!(codes(check(e, &own(bad), &[], &t, 2026)), [*code], "{id} {bad:?}");
        }

        /// Endpoint, path values, a good and a bad query pair, the bad one's code.
        type QueryCase<'a> = (&'a str, &'a [&'a str], (&'a str, &'a str), (&'a str, &'a str), &'a str);
        let query_cases: &[QueryCase] = &[
            (
                "ademe_certificats_rge",
                &["55204944776279"],
                ("limit", "1000"),
                ("limit", "1001"),
                "00313",
            ),
            (
                "ademe_certificats_rge",
                &["55204944776279"],
                ("limit", "1"),
                ("limit", "0"),
                "00313",
            ),
            (
                "gip_mds_effectifs_mensuels_etablissement",
                &["55204944776279", "03", "2024"],
                ("profondeur", "12"),
                ("profondeur", "13"),
                "00390",
            ),
            (
                "gip_mds_effectifs_annuels_entreprise",
                &["552049447", "2024"],
                ("nature_effectif", "boeth"),
                ("nature_effectif", "tous"),
                LOCAL_SHAPE_CODE,
            ),
        ];
        for (id, params, good, bad, code) in query_cases {
            let e = find(id, None).unwrap();
            let params: Vec<String> = params.iter().map(|s| (*s).to_owned()).collect();
            let q = |(k, v): (&str, &str)| vec![(k.to_owned(), v.to_owned())];
            assert_eq!(check(e, &params, &q(*good), &trace(), 2026), Ok(()), "{id} {good:?}");
            assert_eq!(
                codes(check(e, &params, &q(*bad), &trace(), 2026)),
                [*code],
                "{id} {bad:?}"
            );
        }

        let dgfip = find("dgfip_chiffres_affaires", None).unwrap();
        let siret = ["55204944776279".to_owned()];
        assert_eq!(check(dgfip, &siret, &[], &dgfip_trace, 2026), Ok(()));
        assert_eq!(codes(check(dgfip, &siret, &[], &trace(), 2026)), ["00308"]);
    }

    #[test]
    fn routes_without_a_trace_ignore_it() {
        let e = find("privileges", None).unwrap();
        assert_eq!(check(e, &[], &[], &Trace::default(), 2026), Ok(()));
    }
}
