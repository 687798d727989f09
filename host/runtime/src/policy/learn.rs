//! Step 6, learn: what an answer says about the API (it answers), its
//! provider (failing, or in maintenance until `Retry-After`) and the
//! token's group (`RateLimit-*` tighten it; a 429 closes it).

use std::time::Duration;

use api_entreprise_catalogue as catalogue;

use crate::circuit::Circuits;
use crate::quota::Quotas;

/// A header holding a whole number (`Retry-After` in seconds, `RateLimit-*`).
fn header_number(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The API and the path's provider answered with `status`.
pub(super) fn circuits(circuits: &Circuits, path: &str, status: u16, headers: &http::HeaderMap) {
    circuits.api_answered();
    if status == 429 {
        // What the API says before it bans: a silence right after is one.
        circuits.limit_reached(format!("a 429 from the API on {path}"));
    }
    if let Some(provider) = catalogue::provider_of(path) {
        let retry_after = header_number(headers, "retry-after").map(Duration::from_secs);
        circuits.provider_answered(
            provider,
            matches!(status, 502..=504),
            retry_after.filter(|_| status == 503),
        );
    }
}

/// Tightens the group's state from the server's `RateLimit-*` headers, and
/// closes it until `Retry-After` on a 429 (never retried before then).
pub(super) async fn quotas(quotas: &Quotas, group: &str, status: u16, headers: &http::HeaderMap) {
    let number = |name: &str| header_number(headers, name);
    if let (Some(remaining), Some(reset)) = (number("ratelimit-remaining"), number("ratelimit-reset")) {
        quotas
            .observe(group, u32::try_from(remaining).unwrap_or(u32::MAX), reset)
            .await;
    }
    if status == 429 {
        let now_s = quotas.wall_now() / 1000;
        // Retry-After, else the window's reset; at least a second.
        let wait = number("retry-after")
            .or_else(|| number("ratelimit-reset").map(|r| r.saturating_sub(now_s)))
            .unwrap_or(60)
            .max(1);
        quotas.close(group, Duration::from_secs(wait)).await;
    }
}
