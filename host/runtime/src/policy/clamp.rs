//! Step 3, timeouts: whatever the component asks, no phase of a request
//! waits longer than the call's ceiling or its path's class (5 s JSON, 12 s
//! documents, from the host's catalogue).

use std::time::Duration;

use api_entreprise_catalogue as catalogue;
use wasmtime_wasi_http::RequestOptions;

use super::OutboundPolicy;

/// The timeouts for a request of `class`, from those the component asked for.
pub(super) fn clamp(
    policy: &OutboundPolicy,
    ceiling: Duration,
    asked: Option<RequestOptions>,
    class: &catalogue::PathPolicy,
) -> RequestOptions {
    let class = if class.document {
        policy.document_timeout
    } else {
        policy.json_timeout
    };
    let ceiling = ceiling.min(class);
    let asked = asked.unwrap_or_default();
    let clamp = |d: Option<Duration>| Some(d.map_or(ceiling, |d| d.min(ceiling)));
    RequestOptions {
        connect_timeout: clamp(asked.connect_timeout),
        first_byte_timeout: clamp(asked.first_byte_timeout),
        between_bytes_timeout: clamp(asked.between_bytes_timeout),
    }
}
