//! Step 2, circuits: nothing goes to an API that has stopped answering (a
//! ban shows as silence) or to a provider that keeps failing; after a
//! cool-down, the free health route says first whether the API is back.

use std::time::Duration;

use api_entreprise_catalogue as catalogue;
use http::Request;
use wasmtime_wasi_http::{RequestOptions, WasiBody};

use super::Refusal;
use crate::circuit::{Circuits, TokenFault, TokenVerdict, Verdict};
use crate::sender::Sender;

/// What the circuits let through.
pub(super) enum Passage {
    /// Send.
    Closed,
    /// Send after the API answers its health route at this URL.
    ProbeFirst(String),
    /// Send after `/privileges`, at this URL, takes the token again.
    ProbeToken(String, TokenFault),
}

/// Checks the token's circuit (for a request that carries it), the API's
/// and, for a data path, its provider's.
pub(super) fn check(circuits: &Circuits, req: &Request<WasiBody>, with_token: bool) -> Result<Passage, Refusal> {
    let token = if with_token {
        circuits.token()
    } else {
        TokenVerdict::Accepted
    };
    if let TokenVerdict::Refused(fault, retry_after) = token {
        return Err(Refusal::Token { fault, retry_after });
    }
    let verdict = circuits.api();
    if let Verdict::Open(retry_after) = verdict {
        let what = match circuits.ban() {
            Some(ban) => ban.to_string(),
            None => "the API has not answered several calls in a row (an outage, or a ban: a ban lasts up to 12 hours)"
                .into(),
        };
        return Err(Refusal::Circuit { what, retry_after });
    }
    if let Some(provider) = catalogue::provider_of(req.uri().path())
        && let Err(retry_after) = circuits.provider(provider)
    {
        return Err(Refusal::Circuit {
            what: format!("the provider `{provider}` keeps failing"),
            retry_after,
        });
    }
    let url = |path: &str| {
        format!(
            "{}://{}{path}",
            req.uri().scheme_str().unwrap_or("https"),
            req.uri().authority().map(|a| a.as_str()).unwrap_or_default()
        )
    };
    // Only after a cool-down: the free health route of the same authority.
    Ok(match (verdict, token) {
        (Verdict::Probe, _) => Passage::ProbeFirst(url("/pings")),
        (_, TokenVerdict::Probe(fault)) => Passage::ProbeToken(url("/privileges"), fault),
        _ => Passage::Closed,
    })
}

/// Whether the API takes the token again: `/privileges` at `url`, sent with
/// `bearer` (its quota slots already taken), answers 200. Otherwise the
/// token stays refused until the next probe.
pub(super) async fn probe_token(
    circuits: &Circuits,
    sender: &Sender,
    url: &str,
    bearer: http::HeaderValue,
    options: RequestOptions,
    fault: TokenFault,
) -> Result<(), Refusal> {
    let status = match Request::get(url)
        .header(http::header::AUTHORIZATION, bearer)
        .body(crate::sender::empty_body())
    {
        Ok(request) => sender.send(request, options).await.ok().map(|r| r.status().as_u16()),
        Err(_) => None,
    };
    if status == Some(200) {
        circuits.token_accepted();
        return Ok(());
    }
    let retry_after = match circuits.token() {
        TokenVerdict::Refused(_, d) => d,
        _ => Duration::ZERO,
    };
    Err(Refusal::Token { fault, retry_after })
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
