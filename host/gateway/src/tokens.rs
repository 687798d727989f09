//! Tokens that change without a restart. A profile's token is read again
//! from its variable or file when the file changes (the command watches
//! it) or on SIGHUP; a token that differs from the one in use is checked
//! with the API's `/privileges` before any call uses it. If the API takes
//! it, the calls that start from then on use it (those under way finish
//! with the old one, so no request fails for the change) and the scopes
//! gained and lost are said; if not, the old token stays and the refusal
//! is said. Each outcome is counted in
//! `api_entreprise_token_rotations_total{profile, outcome}`.

use std::collections::BTreeSet;

use api_entreprise::Token;

use crate::config::Config;
use crate::server::{Gateway, ProfileState};

/// What reading a profile's token again did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The same token as the one in use, or a profile with no source to
    /// read again: nothing to do.
    Unchanged,
    /// The new token is in use.
    Rotated {
        /// Scopes it has that the old one did not.
        gained: Vec<String>,
        /// Scopes the old one had that it does not.
        lost: Vec<String>,
    },
    /// The new token could not be read or was refused: the old one stays.
    Kept(String),
}

impl Gateway {
    /// Reads every profile's token again from `config` (its variable or
    /// file, which may have moved), and rotates those that changed.
    pub async fn rotate_tokens(&self, config: &Config) -> Vec<(String, Rotation)> {
        let mut done = Vec::new();
        for (name, source) in &config.profiles {
            let Some(profile) = self.profile(name) else { continue };
            *profile
                .source
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = source.clone();
            done.push((name.clone(), self.rotate_token(&profile).await));
        }
        done
    }

    /// Reads the token of the profile `name` again (its file changed).
    pub async fn rotate_token_of(&self, name: &str) -> Option<Rotation> {
        let profile = self.profile(name)?;
        Some(self.rotate_token(&profile).await)
    }

    /// Reads `profile`'s token again, checks it if it changed, and uses it
    /// if the API takes it; says and counts what happened.
    async fn rotate_token(&self, profile: &ProfileState) -> Rotation {
        let _one_at_a_time = profile.rotating.lock().await;
        let name = &profile.name;
        let source = profile
            .source
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if source.token_env.is_none() && source.token_file.is_none() {
            return Rotation::Unchanged;
        }
        let read = source
            .token(name)
            .map_err(|e| e.to_string())
            .and_then(|t| Token::new(t).map_err(|e| format!("profile `{name}`: its new token: {e}")));
        let token = match read {
            Ok(token) if profile.runtime.uses_token(&token) => return Rotation::Unchanged,
            Ok(token) => token,
            Err(why) => {
                tracing::error!(profile = %name, "{why}; the token in use stays");
                self.metrics().token_rotation(name, "unreadable");
                return Rotation::Kept(why);
            }
        };
        match profile.runtime.rotate_token(token).await {
            Ok(scopes) => {
                let new: BTreeSet<String> = scopes.into_iter().collect();
                let old = profile.scopes().unwrap_or_default();
                let gained: Vec<String> = new.difference(&old).cloned().collect();
                let lost: Vec<String> = old.difference(&new).cloned().collect();
                profile.set_scopes(new);
                // The new token's expiry is said anew, from today.
                profile
                    .expiry_said
                    .store(i64::MIN, std::sync::atomic::Ordering::Relaxed);
                let expires = match profile.runtime.token_claims() {
                    Some(Ok(api_entreprise::Claims { exp: Some(exp), .. })) => {
                        time::OffsetDateTime::from_unix_timestamp(exp)
                            .ok()
                            .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
                            .map_or_else(String::new, |d| format!(" (it expires on {d})"))
                    }
                    _ => String::new(),
                };
                let list = |l: &[String]| if l.is_empty() { "none".to_owned() } else { l.join(", ") };
                tracing::warn!(
                    profile = %name,
                    "a new token is in use{expires}: scopes gained: {}; scopes lost: {}",
                    list(&gained),
                    list(&lost)
                );
                self.metrics().token_rotation(name, "rotated");
                Rotation::Rotated { gained, lost }
            }
            Err(e) => {
                let why = format!("profile `{name}`: {e}");
                tracing::error!(profile = %name, "{why}; the token in use stays");
                self.metrics().token_rotation(name, "refused");
                Rotation::Kept(why)
            }
        }
    }
}
