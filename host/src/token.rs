//! The API token: kept apart so that it cannot be printed by accident.

use std::fmt;

/// A bearer token for API Entreprise. Its `Debug` shows nothing of it and it
/// has no `Display`: the only way out is the `Authorization` header the host
/// adds for the API's authority.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps `token`, refusing a value that cannot be an HTTP header value.
    pub fn new(token: impl Into<String>) -> Result<Self, crate::ConfigError> {
        let token = token.into();
        let token = token.trim().to_owned();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(crate::ConfigError::Token);
        }
        Ok(Self(token))
    }

    pub(crate) fn bearer(&self) -> http::HeaderValue {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {}", self.0))
            .expect("checked to be visible ASCII in Token::new");
        value.set_sensitive(true);
        value
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let t = Token::new("eyJhbGciOiJIUzI1NiJ9.secret.sig").unwrap();
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert!(format!("{:?}", Some(&t)).find("secret").is_none());
    }

    #[test]
    fn a_blank_or_multiline_token_is_refused() {
        assert!(Token::new("  ").is_err());
        assert!(Token::new("a\nb").is_err());
        assert!(Token::new("a b").is_err());
    }
}
