//! The server's parameter rules (siade's validators), written here apart
//! from the client's on purpose: the sandbox is the independent oracle the
//! client is tested against.

fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let mut d = c.to_digit(10).unwrap_or(0);
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.chars().all(|c| c.is_ascii_digit())
}

/// `/\A\d{9}\z/` and Luhn.
pub fn is_siren(s: &str) -> bool {
    digits(s, 9) && luhn_ok(s)
}

/// `/\A\d{14}\z/` and (Luhn or La Poste's `356000000` prefix).
pub fn is_siret(s: &str) -> bool {
    digits(s, 14) && (luhn_ok(s) || s.starts_with("356000000"))
}

/// `^W\d[A-Z0-9]\d{7}$` or `^0\d{3}0{2}\d{4}$`.
pub fn is_rna(s: &str) -> bool {
    let c: Vec<char> = s.chars().collect();
    if c.len() != 10 {
        return false;
    }
    let all = |r: &[char]| r.iter().all(char::is_ascii_digit);
    (c[0] == 'W' && c[1].is_ascii_digit() && (c[2].is_ascii_digit() || c[2].is_ascii_uppercase()) && all(&c[3..]))
        || (c[0] == '0' && all(&c[1..4]) && c[4] == '0' && c[5] == '0' && all(&c[6..]))
}

fn is_siret_or_eori(s: &str) -> bool {
    if is_siret(s) {
        return true;
    }
    match s.strip_prefix("FR") {
        Some(rest) => is_siret(rest),
        None => s.len() > 2 && s.chars().take(2).all(|c| c.is_ascii_uppercase()),
    }
}

/// The code a bad path value gets, by placeholder name; `dgfip` selects the
/// DGFIP year rule (2006 to last year). `None` when the value is fine.
pub fn path_fault(name: &str, value: &str, dgfip: bool, this_year: i32) -> Option<&'static str> {
    let year = value.parse::<i32>().unwrap_or(0);
    let (ok, code) = match name {
        "siren" => (is_siren(value), "00301"),
        "siret" => (is_siret(value), "00302"),
        "siret_or_rna" => (is_siret(value) || is_rna(value), "00303"),
        "siret_or_eori" => (is_siret_or_eori(value), "00304"),
        "month" => (digits(value, 2) && (1..=12).contains(&year), "00305"),
        "year" if !digits(value, 4) => (false, "00307"),
        "year" if dgfip => ((2006..this_year).contains(&year), "00315"),
        "year" => ((1900..=this_year).contains(&year), "00307"),
        "siren_or_siret_or_rna" => (is_siren(value) || is_siret(value) || is_rna(value), "00330"),
        "siren_or_rna" => (is_siren(value) || is_rna(value), "00333"),
        _ => (true, ""),
    };
    (!ok).then_some(code)
}

/// The code a bad optional query value gets.
pub fn query_fault(name: &str, value: &str) -> Option<&'static str> {
    let n = value.parse::<i64>().ok();
    match name {
        "limit" if !n.is_some_and(|n| (1..=1000).contains(&n)) => Some("00313"),
        "profondeur" if !n.is_some_and(|n| (0..=12).contains(&n)) => Some("00390"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_applies_the_servers_codes() {
        assert_eq!(path_fault("siren", "552049447", false, 2026), None);
        assert_eq!(path_fault("siren", "552049448", false, 2026), Some("00301"));
        assert_eq!(path_fault("year", "2026", true, 2026), Some("00315"));
        assert_eq!(path_fault("year", "2025", true, 2026), None);
        assert_eq!(path_fault("year", "20x5", true, 2026), Some("00307"));
        assert_eq!(path_fault("siret_or_eori", "FR55204944776279", false, 2026), None);
        assert_eq!(path_fault("siren_or_rna", "W751004076", false, 2026), None);
        assert_eq!(query_fault("limit", "0"), Some("00313"));
    }
}
