//! The gateway's configuration file (TOML): where it listens, the profiles
//! (one API Entreprise token each, never written in the file) and the
//! applications (a hashed key each, bound to one profile). Every fault is
//! found at load and named with what to do; see `gateway.example.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What is wrong with a configuration, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading the configuration {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not the TOML this gateway reads.
    #[error("the configuration {path} is not valid: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// A setting that reads but cannot be right.
    #[error("the configuration {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A profile's token could not be read.
    #[error("profile `{profile}`: {message}")]
    Token {
        /// The profile.
        profile: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen; loopback by default.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The API, by default production.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Where to serve the Prometheus metrics (`/metrics`) and the dashboard
    /// (`/dashboard`), apart from the API's listener; none by default.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// The dashboard on the metrics listener.
    #[serde(default)]
    pub dashboard: Dashboard,
    /// The profiles, by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// The applications, by name.
    #[serde(default)]
    pub applications: BTreeMap<String, Application>,
    /// What one caller may hold of the gateway.
    #[serde(default)]
    pub limits: Limits,
    /// The SHA-256 of the administrator's key (`serve --hash-key`), which
    /// opens `/admin/component` (swap or roll back the client component);
    /// without it that route does not exist.
    #[serde(default)]
    pub admin_key_sha256: Option<String>,
    /// Where `GET /dossiers/{id}` keeps the dossiers it gathers (one folder
    /// per application, one per entity and use case inside); without it
    /// that route answers 404.
    #[serde(default)]
    pub dossiers_dir: Option<std::path::PathBuf>,
}

/// Inbound limits, so that a slow or hostile caller cannot hold the gateway.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections open at once; past it a new one is closed at once.
    pub max_connections: usize,
    /// Seconds a caller has to send a request's headers, from its
    /// connection or from the previous answer (so also how long a
    /// kept-alive connection may stay idle).
    pub header_read_timeout_seconds: u64,
    /// The largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Seconds a write of an answer may make no progress (a caller that
    /// stopped reading) before the connection is closed.
    pub write_timeout_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_seconds: 10,
            max_header_bytes: 16 * 1024,
            write_timeout_seconds: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            base_url: None,
            metrics_listen: None,
            dashboard: Dashboard::default(),
            profiles: BTreeMap::new(),
            applications: BTreeMap::new(),
            limits: Limits::default(),
            admin_key_sha256: None,
            dossiers_dir: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// The dashboard: read-only pages on the metrics listener (`/dashboard`),
/// open on loopback, behind the administrator's key on any other address.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dashboard {
    /// Keep its figures and serve it (on by default; off, no request pays
    /// for its bookkeeping).
    pub enabled: bool,
    /// List the trace's `object` with the last requests (off by default: it
    /// may name a person's file).
    pub show_object: bool,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self {
            enabled: true,
            show_object: false,
        }
    }
}

/// One access request to API Entreprise, hence one token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The environment variable that holds the token.
    pub token_env: Option<String>,
    /// Or the file that holds it (its first line).
    pub token_file: Option<PathBuf>,
    /// The token's own limit per minute for every group, when API
    /// Entreprise gave it one (`rate_limit_per_minute`), instead of the
    /// catalogue's group limits.
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// The default trace fields of `call --profile` for a person.
    #[serde(default)]
    pub context: Option<String>,
    /// The default recipient (a SIRET) of `call --profile`.
    #[serde(default)]
    pub recipient: Option<String>,
    /// The default object of `call --profile`.
    #[serde(default)]
    pub object: Option<String>,
}

/// One application calling the gateway with its own key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// SHA-256 of its key, in hexadecimal (`api-entreprise serve --hash-key`).
    pub key_sha256: String,
    /// The profile whose token its calls use.
    pub profile: String,
    /// The recipient its calls always carry; a different one is refused.
    #[serde(default)]
    pub recipient: Option<String>,
    /// The context its calls always carry; a different one is refused.
    #[serde(default)]
    pub context: Option<String>,
    /// The object its calls always carry; a different one is refused.
    #[serde(default)]
    pub object: Option<String>,
    /// The endpoint ids it may call; all when absent.
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    /// Its share of each per-IP quota, from 0 to 1 (by default an equal part
    /// of what the other applications leave).
    #[serde(default)]
    pub share: Option<f64>,
    /// The browser origins (`https://portail.example.fr`) allowed to call it.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// The official use case it works under (`marches_publics`…): it may
    /// call only what that use case recommends or allows.
    #[serde(default)]
    pub use_case: Option<String>,
}

/// Whether `hex` reads as a SHA-256 (64 hexadecimal digits).
fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The SHA-256 of an application key, as the configuration holds it.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text` (read from `path`, for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Every fault a setting can have that reading does not catch.
    fn check(&self) -> Result<(), String> {
        for (name, profile) in &self.profiles {
            if profile.token_env.is_some() == profile.token_file.is_some() {
                return Err(format!(
                    "profile `{name}` needs exactly one of `token_env` (a variable's name) or `token_file` \
                     (a file's path): the token itself never goes in this file"
                ));
            }
        }
        let mut keys = BTreeMap::new();
        if let Some(hash) = &self.admin_key_sha256 {
            if !is_sha256(hash) {
                return Err(
                    "`admin_key_sha256` must be 64 hexadecimal digits (the SHA-256 of the administrator's key, \
                     from `api-entreprise serve --hash-key`), never the key itself"
                        .into(),
                );
            }
            keys.insert(hash.to_ascii_lowercase(), "the administrator".to_owned());
        }
        let mut shares = 0.0;
        for (name, app) in &self.applications {
            if !self.profiles.contains_key(&app.profile) {
                return Err(format!(
                    "application `{name}` uses the profile `{}`, which is not defined: add [profiles.{}]",
                    app.profile, app.profile
                ));
            }
            let hash = app.key_sha256.to_ascii_lowercase();
            if !is_sha256(&hash) {
                return Err(format!(
                    "application `{name}`: `key_sha256` must be 64 hexadecimal digits (the SHA-256 of the key, \
                     from `api-entreprise serve --hash-key`), never the key itself"
                ));
            }
            if let Some(other) = keys.insert(hash, format!("the application `{name}`")) {
                return Err(format!(
                    "{other} and the application `{name}` have the same key: give each its own"
                ));
            }
            let use_case = match &app.use_case {
                Some(id) => Some(api_entreprise_catalogue::use_case(id).ok_or_else(|| {
                    let known: Vec<&str> = api_entreprise_catalogue::USE_CASES.iter().map(|u| u.id).collect();
                    format!(
                        "application `{name}`: there is no use case `{id}`; API Entreprise's are {}",
                        known.join(", ")
                    )
                })?),
                None => None,
            };
            if let Some(endpoints) = &app.endpoints {
                for id in endpoints {
                    if let Some(case) = use_case.filter(|case| !case.allows(id)) {
                        return Err(format!(
                            "application `{name}` allows the endpoint `{id}`, which its use case `{}` does not allow \
                             (list what it does with `api-entreprise endpoints --use-case {}`)",
                            case.id, case.id
                        ));
                    }
                    if api_entreprise_catalogue::versions(id).next().is_none() {
                        return Err(format!(
                            "application `{name}` allows the endpoint `{id}`, which the catalogue does not have \
                             (list them with `api-entreprise endpoints`)"
                        ));
                    }
                }
            }
            if let Some(share) = app.share {
                if !(share > 0.0 && share <= 1.0) {
                    return Err(format!("application `{name}`: `share` must be above 0 and at most 1"));
                }
                shares += share;
            }
            for origin in &app.cors_origins {
                if !is_origin(origin) {
                    return Err(format!(
                        "application `{name}`: the CORS origin `{origin}` must be a scheme and a host, such as \
                         https://portail.example.fr (no path, no wildcard)"
                    ));
                }
            }
        }
        if self.limits.max_connections == 0
            || self.limits.header_read_timeout_seconds == 0
            || self.limits.write_timeout_seconds == 0
        {
            return Err(
                "[limits]: `max_connections`, `header_read_timeout_seconds` and `write_timeout_seconds` must be above 0"
                    .into(),
            );
        }
        if self.limits.max_header_bytes < 8192 {
            return Err("[limits]: `max_header_bytes` must be at least 8192".into());
        }
        if shares > 1.0 + 1e-9 {
            return Err(format!(
                "the applications' shares of the per-IP quota add up to {shares:.2}: together they must not pass 1"
            ));
        }
        Ok(())
    }

    /// Each application's share of the per-IP quotas: its own, else an equal
    /// part of what the applications with a share leave.
    pub fn shares(&self) -> BTreeMap<String, f64> {
        let fixed: f64 = self.applications.values().filter_map(|a| a.share).sum();
        let rest = self.applications.values().filter(|a| a.share.is_none()).count();
        let each = if rest == 0 {
            0.0
        } else {
            (1.0 - fixed).max(0.0) / rest as f64
        };
        self.applications
            .iter()
            .map(|(name, a)| (name.clone(), a.share.unwrap_or(each)))
            .collect()
    }
}

/// `scheme://host[:port]`, nothing more.
fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '*', '?', '#', '@', ' '])
        && origin.to_ascii_lowercase() == origin
}

impl Profile {
    /// The profile's token, from its variable or file.
    pub fn token(&self, name: &str) -> Result<String, ConfigError> {
        let fail = |message: String| ConfigError::Token {
            profile: name.to_owned(),
            message,
        };
        let token = match (&self.token_env, &self.token_file) {
            (Some(var), _) => std::env::var(var)
                .map_err(|_| fail(format!("the variable {var} that should hold its token is not set")))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| fail(format!("reading its token from {}: {e}", path.display())))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            (None, None) => return Err(fail("it has no token_env or token_file".into())),
        };
        if token.trim().is_empty() {
            return Err(fail("its token is empty".into()));
        }
        Ok(token.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("gateway.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_commented_example_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.example.toml");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.applications.len(), 2);
        assert_eq!(config.shares()["instruction-marches"], 0.5);
    }

    #[test]
    fn a_key_is_stored_as_its_sha256() {
        assert_eq!(hash_key("test"), HASH);
    }

    #[test]
    fn a_complete_file_reads_and_shares_default_to_equal_parts() {
        let config = parse(&format!(
            r#"
            listen = "127.0.0.1:9000"
            [profiles.aides]
            token_env = "TOKEN_AIDES"
            [applications.portail]
            key_sha256 = "{HASH}"
            profile = "aides"
            recipient = "13002526500013"
            endpoints = ["insee_unites_legales"]
            share = 0.5
            cors_origins = ["https://portail.example.fr"]
            [applications.batch]
            key_sha256 = "{}"
            profile = "aides"
            "#,
            hash_key("other")
        ))
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.shares()["batch"], 0.5);
    }

    #[test]
    fn each_fault_is_named_with_what_to_do() {
        let app = |extra: &str| {
            format!(
                "[profiles.p]\ntoken_env = \"T\"\n[applications.a]\nkey_sha256 = \"{HASH}\"\nprofile = \"p\"\n{extra}"
            )
        };
        for (text, expected) in [
            ("[profiles.p]\ntoken = \"eyJ\"".to_owned(), "unknown field `token`"),
            ("[profiles.p]\n".to_owned(), "exactly one of `token_env`"),
            (app("").replace("profile = \"p\"", "profile = \"q\""), "not defined"),
            (app("").replace(HASH, "secret-key"), "64 hexadecimal digits"),
            (app("endpoints = [\"nope\"]"), "does not have"),
            (app("share = 1.5"), "at most 1"),
            (
                app("use_case = \"marches\""),
                "no use case `marches`; API Entreprise's are socle_de_base",
            ),
            (
                app("use_case = \"socle_de_base\"\nendpoints = [\"dgfip_attestations_fiscales\"]"),
                "its use case `socle_de_base` does not allow",
            ),
            (app("cors_origins = [\"*\"]"), "no wildcard"),
            (app("cors_origins = [\"https://x.fr/app\"]"), "no path"),
            ("listen = \"nowhere\"".to_owned(), "invalid socket address"),
            (
                format!("admin_key_sha256 = \"admin\"\n{}", app("")),
                "`admin_key_sha256` must be 64",
            ),
            (
                format!("admin_key_sha256 = \"{HASH}\"\n{}", app("")),
                "the administrator and the application `a` have the same key",
            ),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
