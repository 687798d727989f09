//! Step 4, quotas: a slot in every quota that applies to the path, taken
//! together, waited for up to the call's deadline.

use std::time::Duration;

use api_entreprise_catalogue as catalogue;

use super::Refusal;
use crate::circuit::Circuits;
use crate::quota::{Denied, QuotaKey, QuotaSpec, Quotas};
use crate::token::Token;

/// Which quotas a request counts against, and what an answer teaches them:
/// the quota side of the outbound policy, decided from the path the host
/// sees and its own catalogue. Usable alone: the conformance scenarios
/// (`tests/conformance/quotas.json`) hold every host to it.
#[derive(Debug, Clone)]
pub struct QuotaPolicy {
    /// The per-IP quotas, applied to every request but the health routes'.
    ip_quotas: Vec<QuotaKey>,
    /// How much wider than its period each window is kept.
    margin: Duration,
    /// The per-token groups are per token: hosts sharing a store with other
    /// tokens count apart. The token's `jti` (an id, not a secret) names it.
    token_scope: String,
    /// The token's own limit per minute, for every known group, when it has one.
    token_rate_limit: Option<u32>,
}

impl QuotaPolicy {
    /// The policy for `ip_quotas`, each window kept `margin` wider, for the
    /// groups of `token` (limited to `token_rate_limit` a minute, if given).
    pub fn new(
        ip_quotas: &[QuotaSpec],
        margin: Duration,
        token: Option<&Token>,
        token_rate_limit: Option<u32>,
    ) -> Self {
        Self {
            ip_quotas: ip_quotas
                .iter()
                .map(|spec| QuotaKey {
                    name: format!("ip {spec}"),
                    spec: QuotaSpec {
                        limit: spec.limit,
                        window: spec.window + margin,
                    },
                })
                .collect(),
            margin,
            token_scope: token_scope(token),
            token_rate_limit,
        }
    }

    /// The same policy for another token (after a rotation): its groups
    /// are named after the new token's `jti`.
    pub fn for_token(&self, token: Option<&Token>) -> Self {
        Self {
            token_scope: token_scope(token),
            ..self.clone()
        }
    }

    /// The per-IP quotas, with their margin, as the store names them.
    pub fn ip_keys(&self) -> &[QuotaKey] {
        &self.ip_quotas
    }

    /// Every quota a request to `path` counts against, and its group's name.
    pub fn keys(&self, path: &str) -> (Vec<QuotaKey>, Option<String>) {
        self.keys_of(&catalogue::policy_of(path))
    }

    /// Every quota a request of `class` counts against: none for the health
    /// routes; otherwise every per-IP quota, and the per-token group of the
    /// path's route in the host's catalogue (a conservative one for a path
    /// the catalogue does not know). Also the group's name, if any.
    pub(super) fn keys_of(&self, class: &catalogue::PathPolicy) -> (Vec<QuotaKey>, Option<String>) {
        if class.free {
            return (Vec::new(), None);
        }
        let mut keys = self.ip_quotas.clone();
        let group = class.group.map(|group| {
            let (limit, period) = match self.token_rate_limit {
                Some(per_minute) if group != catalogue::UNKNOWN_ROUTE => (per_minute, 60),
                _ => (group.limit, group.period_seconds),
            };
            QuotaKey {
                name: format!("group {}{}", group.name, self.token_scope),
                spec: QuotaSpec {
                    limit,
                    window: Duration::from_secs(period.into()) + self.margin,
                },
            }
        });
        let name = group.as_ref().map(|g| g.name.clone());
        keys.extend(group);
        (keys, name)
    }

    /// Every quota a request may count against: the per-IP ones, then each
    /// group of the catalogue (and the unknown route's) for this token, once.
    pub fn all_keys(&self) -> Vec<QuotaKey> {
        let mut keys = self.ip_quotas.clone();
        let classes = catalogue::all()
            .map(catalogue::policy_of_route)
            .chain(std::iter::once(catalogue::policy_of("/an/unknown/route")));
        for class in classes {
            // A group's key is the last of its class's keys.
            let (mut class_keys, group) = self.keys_of(&class);
            if group.is_some_and(|g| !keys.iter().any(|k| k.name == g)) {
                keys.extend(class_keys.pop());
            }
        }
        keys
    }

    /// What an answer of `status` with `headers` says of the group `group`,
    /// kept in `quotas`.
    pub async fn learn(&self, quotas: &Quotas, group: &str, status: u16, headers: &http::HeaderMap) {
        super::learn::quotas(quotas, group, status, headers).await;
    }
}

/// How the groups of `token` are told apart in a shared store: by its `jti`.
fn token_scope(token: Option<&Token>) -> String {
    match token.map(Token::claims) {
        Some(Ok(crate::Claims { jti: Some(jti), .. })) => format!(" (token {jti})"),
        _ => String::new(),
    }
}

/// Takes a slot in every quota of `keys`, waiting for one up to `deadline`;
/// a wait that would pass it fails now rather than later. A store that
/// cannot decide fails the request at once: waiting would hold the call for
/// a peer that may be away for long. A per-IP window found full is recorded
/// in `circuits`: a silence of the API right after it is a probable ban.
pub(super) async fn take(
    quotas: &Quotas,
    keys: &[QuotaKey],
    deadline: tokio::time::Instant,
    circuits: &Circuits,
) -> Result<(), Refusal> {
    loop {
        let wait = match quotas.try_acquire(keys).await {
            Ok(()) => return Ok(()),
            Err(Denied::Unavailable(down)) => return Err(Refusal::QuotaStore(down)),
            Err(Denied::Full(wait)) => wait,
        };
        if let Some(quota) = wait.quota.strip_prefix("ip ") {
            circuits.limit_reached(format!("the per-IP quota {quota} full"));
        }
        if tokio::time::Instant::now() + wait.retry_after >= deadline {
            return Err(Refusal::Quota {
                quota: wait.quota,
                retry_after: wait.retry_after,
            });
        }
        tokio::time::sleep(wait.retry_after).await;
    }
}
