//! The entity a dossier is about: a SIREN, a SIRET or an RNA number,
//! checked before anything is sent.

use std::fmt;
use std::str::FromStr;

/// What kind of identifier it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A company or an association's SIREN (9 digits).
    Siren,
    /// An establishment's SIRET (14 digits).
    Siret,
    /// An association's RNA number (`W` and 9 characters).
    Rna,
}

/// A checked identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    /// Its kind.
    pub kind: Kind,
    /// Its value, without spaces, upper case.
    pub value: String,
}

impl Identifier {
    /// The SIREN it gives: itself, or a SIRET's first nine digits.
    pub fn siren(&self) -> Option<&str> {
        match self.kind {
            Kind::Siren => Some(&self.value),
            Kind::Siret => Some(&self.value[..9]),
            Kind::Rna => None,
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// Luhn's check, as INSEE numbers use it.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2, d * 2) {
                (0, _) => d,
                (_, twice) if twice > 9 => twice - 9,
                (_, twice) => twice,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl FromStr for Identifier {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let value: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_uppercase();
        let digits = value.bytes().all(|b| b.is_ascii_digit());
        let kind = match value.len() {
            9 if digits && luhn(&value) => Kind::Siren,
            9 if digits => return Err(format!("{text:?} is not a valid SIREN: its check digit is wrong")),
            // La Poste's establishments share one SIREN and are checked on the sum of their digits.
            14 if digits
                && (luhn(&value)
                    || (value.starts_with("356000000")
                        && value
                            .bytes()
                            .map(|b| u32::from(b - b'0'))
                            .sum::<u32>()
                            .is_multiple_of(5))) =>
            {
                Kind::Siret
            }
            14 if digits => return Err(format!("{text:?} is not a valid SIRET: its check digit is wrong")),
            10 if value.starts_with('W') && value[1..].bytes().all(|b| b.is_ascii_alphanumeric()) => Kind::Rna,
            _ => {
                return Err(format!(
                    "{text:?} is neither a SIREN (9 digits), a SIRET (14 digits) nor an RNA number (W and 9 characters)"
                ));
            }
        };
        Ok(Self { kind, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_recognised_and_checked() {
        let id = |s: &str| s.parse::<Identifier>();
        assert_eq!(id("418 166 096").unwrap().kind, Kind::Siren);
        assert_eq!(id("41816609600069").unwrap().siren(), Some("418166096"));
        assert_eq!(id("w751004076").unwrap().value, "W751004076");
        assert_eq!(id("35600000000001").unwrap().kind, Kind::Siret);
        assert!(id("418166097").unwrap_err().contains("check digit"));
        assert!(id("4181660960006").unwrap_err().contains("neither"));
        assert!(id("").is_err());
    }
}
