//! Step 2, circuits: nothing goes to an API that has stopped answering (a
//! ban shows as silence) or to a provider that keeps failing; after a
//! cool-down, the free health route says first whether the API is back.

use std::time::Duration;

use api_entreprise_catalogue as catalogue;
use http::Request;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use super::Refusal;
use crate::circuit::{Circuits, Verdict};
use crate::sender::Sender;

/// What the circuits let through.
pub(super) enum Passage {
    /// Send.
    Closed,
    /// Send after the API answers its health route at this URL.
    ProbeFirst(String),
}

/// Checks the API's circuit and, for a data path, its provider's.
pub(super) fn check(circuits: &Circuits, req: &Request<WasiBody>) -> Result<Passage, Refusal> {
    let verdict = circuits.api();
    if let Verdict::Open(retry_after) = verdict {
        return Err(Refusal::Circuit {
            what: "the API has not answered several calls in a row: the IP may be banned (a ban lasts up to 12 hours)"
                .into(),
            retry_after,
        });
    }
    if let Some(provider) = catalogue::provider_of(req.uri().path())
        && let Err(retry_after) = circuits.provider(provider)
    {
        return Err(Refusal::Circuit {
            what: format!("the provider `{provider}` keeps failing"),
            retry_after,
        });
    }
    // Only after a cool-down: the free health route of the same authority.
    Ok(match verdict {
        Verdict::Probe => Passage::ProbeFirst(format!(
            "{}://{}/pings",
            req.uri().scheme_str().unwrap_or("https"),
            req.uri().authority().map(|a| a.as_str()).unwrap_or_default()
        )),
        _ => Passage::Closed,
    })
}

/// Whether the API answers its free health route at `url` at all (any
/// status); if not, the API's circuit opens again, for longer.
pub(super) async fn probe(
    circuits: &Circuits,
    sender: &Sender,
    url: &str,
    options: RequestOptions,
) -> Result<(), Refusal> {
    let answered = match Request::get(url).body(crate::sender::empty_body()) {
        Ok(request) => sender.send(request, options).await.is_ok(),
        Err(_) => false,
    };
    if answered {
        return Ok(());
    }
    circuits.api_silent();
    let retry_after = match circuits.api() {
        Verdict::Open(d) => d,
        _ => Duration::ZERO,
    };
    Err(Refusal::Circuit {
        what: "the API still does not answer its health route: the IP may be banned".into(),
        retry_after,
    })
}
