//! Local validation with the server's rules and codes (API-ENTREPRISE.md §1
//! and §7), so that a bad request is refused before it is sent and before it
//! spends any quota.

use crate::catalogue::{Endpoint, ParamKind};
use crate::error::ErrorItem;

/// The trace as the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

/// Code for faults only a client can make: a wrong number of path values or
/// an unknown query parameter. The server never sees such a request.
pub const LOCAL_SHAPE_CODE: &str = "00400";

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

fn is_year(value: &str) -> bool {
    all_digits(value, 4)
}

fn is_month(value: &str) -> bool {
    all_digits(value, 2) && matches!(value.parse::<u8>(), Ok(1..=12))
}

impl ParamKind {
    /// The server's code for a bad value of this kind.
    pub fn code(self) -> &'static str {
        match self {
            ParamKind::Siren => "00301",
            ParamKind::Siret => "00302",
            ParamKind::Rna | ParamKind::SiretOrRna => "00303",
            ParamKind::SiretOrEori => "00304",
            ParamKind::Month => "00305",
            ParamKind::Year => "00307",
            ParamKind::SirenOrSiretOrRna => "00330",
            ParamKind::SirenOrRna => "00333",
        }
    }

    /// Whether `value` is acceptable for this kind.
    pub fn accepts(self, value: &str) -> bool {
        match self {
            ParamKind::Siren => is_siren(value),
            ParamKind::Siret => is_siret(value),
            ParamKind::Rna => is_rna(value),
            ParamKind::SiretOrRna => is_siret(value) || is_rna(value),
            ParamKind::SirenOrRna => is_siren(value) || is_rna(value),
            ParamKind::SirenOrSiretOrRna => is_siren(value) || is_siret(value) || is_rna(value),
            ParamKind::SiretOrEori => is_siret_or_eori(value),
            ParamKind::Year => is_year(value),
            ParamKind::Month => is_month(value),
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
            ParamKind::Year => "a year of 4 digits, such as 2024",
            ParamKind::Month => "a month from 01 to 12",
        }
    }
}

/// Checks a request against `endpoint`, returning every fault at once, in the
/// order the server checks them: missing trace fields (context, recipient,
/// object), then the recipient's format, then the path values.
pub fn check(
    endpoint: &Endpoint,
    params: &[String],
    query: &[(String, String)],
    trace: &Trace,
) -> Result<(), Vec<ErrorItem>> {
    let mut faults = Vec::new();
    // Rails' `blank?`: whitespace only counts as missing.
    let blank = |s: &str| s.trim().is_empty();
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
    for (i, (name, kind)) in endpoint.params.iter().enumerate() {
        match params.get(i) {
            None => faults.push(ErrorItem::local(
                kind.code(),
                name,
                UNPROCESSABLE,
                format!("the path value `{name}` is missing: give {}", kind.expected()),
            )),
            Some(value) if !kind.accepts(value) => faults.push(ErrorItem::local(
                kind.code(),
                name,
                UNPROCESSABLE,
                format!("`{name}` {value:?} is not valid: give {}", kind.expected()),
            )),
            Some(value) => {
                // The recipient is the public body using the data, never the
                // entity looked up (API Entreprise code 00211; the server does
                // not check it today, so we do). A SIRET of the looked-up
                // SIREN counts too.
                let same_entity = !value.is_empty()
                    && (recipient == value || (recipient.len() == 14 && recipient.starts_with(value.as_str())));
                if same_entity && matches!(kind, ParamKind::Siren | ParamKind::Siret) {
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
    for (name, _) in query {
        if !endpoint.query.iter().any(|(known, _)| known == name) {
            faults.push(ErrorItem::local(
                LOCAL_SHAPE_CODE,
                name,
                "Paramètre inconnu",
                format!("endpoint `{}` has no query parameter `{name}`", endpoint.id),
            ));
        }
    }
    if faults.is_empty() { Ok(()) } else { Err(faults) }
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
            codes(check(e, &["552049447".into()], &[], &t)),
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
        assert_eq!(codes(check(e, &["552049448".into()], &[], &t)), ["00210", "00301"]);
    }

    #[test]
    fn the_recipient_cannot_be_the_entity_looked_up() {
        let e = find("insee_unites_legales", None).unwrap();
        let t = Trace {
            recipient: "55204944776279".into(),
            ..trace()
        };
        assert_eq!(codes(check(e, &["552049447".into()], &[], &t)), ["00211"]);
        let e = find("insee_etablissements", None).unwrap();
        assert_eq!(codes(check(e, &["55204944776279".into()], &[], &t)), ["00211"]);
    }

    #[test]
    fn missing_extra_and_unknown_values_are_refused() {
        let e = find("insee_etablissements", None).unwrap();
        assert_eq!(codes(check(e, &[], &[], &trace())), ["00302"]);
        let two = ["55204944776279".to_string(), "x".to_string()];
        assert_eq!(codes(check(e, &two, &[], &trace())), [LOCAL_SHAPE_CODE]);
        let q = [("limit".to_string(), "3".to_string())];
        assert_eq!(codes(check(e, &two[..1], &q, &trace())), [LOCAL_SHAPE_CODE]);
    }

    #[test]
    fn a_valid_request_passes_and_a_long_object_is_not_refused() {
        let e = find("insee_etablissements", None).unwrap();
        let t = Trace {
            object: "x".repeat(OBJECT_ADVISED_MAX_CHARS * 3),
            ..trace()
        };
        assert_eq!(check(e, &["55204944776279".into()], &[], &t), Ok(()));
    }
}
