//! The server's identifier rules (siade's validators), written here apart
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

/// `/\A\d{9}\z/` and Luhn.
pub fn is_siren(s: &str) -> bool {
    s.len() == 9 && s.chars().all(|c| c.is_ascii_digit()) && luhn_ok(s)
}

/// `/\A\d{14}\z/` and (Luhn or La Poste's `356000000` prefix).
pub fn is_siret(s: &str) -> bool {
    s.len() == 14 && s.chars().all(|c| c.is_ascii_digit()) && (luhn_ok(s) || s.starts_with("356000000"))
}
