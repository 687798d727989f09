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

/// What a token says of itself: its JWT claims, read without verifying the
/// signature (only the API can). Nothing secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct Claims {
    /// `exp`: when it expires (Unix seconds); old tokens have none.
    pub exp: Option<i64>,
    /// `iat`: when it was issued (Unix seconds).
    pub iat: Option<i64>,
    /// `uid`: the owner's id.
    pub uid: Option<String>,
    /// `jti`: the token's id, the key of the API's rate-limit counters.
    pub jti: Option<String>,
    /// `scopes`: what it may call.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A token lives 18 months.
pub const TOKEN_LIFETIME_DAYS: i64 = 548;

impl Token {
    /// Decodes the token's JWT claims, without verifying them. Fails when the
    /// token is not a JWT (the sandbox's is not).
    pub fn claims(&self) -> Result<Claims, String> {
        use base64::Engine as _;
        let mut parts = self.0.split('.');
        let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("not a JWT (three dot-separated parts)".into());
        };
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| format!("its payload is not base64url: {e}"))?;
        serde_json::from_slice(&json).map_err(|e| format!("its payload is not JSON claims: {e}"))
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
    fn claims_are_read_without_verification() {
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"uid":"u","jti":"j","scopes":["entreprises"],"iat":1700000000,"exp":1747000000}"#);
        let t = Token::new(format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln")).unwrap();
        let c = t.claims().unwrap();
        assert_eq!((c.exp, c.iat, c.scopes.len()), (Some(1747000000), Some(1700000000), 1));
        assert!(Token::new("sandbox-token").unwrap().claims().is_err());
        let no_exp = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"uid":"u"}"#);
        assert_eq!(Token::new(format!("a.{no_exp}.b")).unwrap().claims().unwrap().exp, None);
    }

    #[test]
    fn a_blank_or_multiline_token_is_refused() {
        assert!(Token::new("  ").is_err());
        assert!(Token::new("a\nb").is_err());
        assert!(Token::new("a b").is_err());
    }
}
