//! Step 4, quotas: a slot in every quota that applies to the path, taken
//! together, waited for up to the call's deadline.

use std::time::Duration;

use api_entreprise_catalogue as catalogue;

use super::{OutboundPolicy, Refusal};
use crate::quota::{Denied, QuotaKey, QuotaSpec, Quotas};

/// Every quota a request of `class` counts against: none for the health
/// routes; otherwise every per-IP quota, and the per-token group of the
/// path's route in the host's catalogue (a conservative one for a path the
/// catalogue does not know). Also the group's name, if any.
pub(super) fn keys(policy: &OutboundPolicy, class: &catalogue::PathPolicy) -> (Vec<QuotaKey>, Option<String>) {
    if class.free {
        return (Vec::new(), None);
    }
    let mut keys = policy.ip_quotas.clone();
    let group = class.group.map(|group| {
        let (limit, period) = match policy.token_rate_limit {
            Some(per_minute) if group != catalogue::UNKNOWN_ROUTE => (per_minute, 60),
            _ => (group.limit, group.period_seconds),
        };
        QuotaKey {
            name: format!("group {}{}", group.name, policy.token_scope),
            spec: QuotaSpec {
                limit,
                window: Duration::from_secs(period.into()) + policy.quota_margin,
            },
        }
    });
    let name = group.as_ref().map(|g| g.name.clone());
    keys.extend(group);
    (keys, name)
}

/// Takes a slot in every quota of `keys`, waiting for one up to `deadline`;
/// a wait that would pass it fails now rather than later. A store that
/// cannot decide fails the request at once: waiting would hold the call for
/// a peer that may be away for long.
pub(super) async fn take(quotas: &Quotas, keys: &[QuotaKey], deadline: tokio::time::Instant) -> Result<(), Refusal> {
    loop {
        match quotas.try_acquire(keys).await {
            Ok(()) => return Ok(()),
            Err(Denied::Unavailable(down)) => return Err(Refusal::QuotaStore(down)),
            Err(Denied::Full(wait)) if tokio::time::Instant::now() + wait.retry_after < deadline => {
                tokio::time::sleep(wait.retry_after).await;
            }
            Err(Denied::Full(wait)) => {
                return Err(Refusal::Quota {
                    quota: wait.quota,
                    retry_after: wait.retry_after,
                });
            }
        }
    }
}
