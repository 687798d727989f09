//! Whatever the caller passes, `prepare` refuses it with codes or builds a
//! request that keeps to its route; never a panic.
#![no_main]

use api_entreprise_guest::codec::{self, Call};
use api_entreprise_guest::{catalogue, error::Error, validate::Trace};
use libfuzzer_sys::fuzz_target;

type Input = (u8, Vec<String>, Vec<(String, String)>, (String, String, String, Option<String>));

fuzz_target!(|input: Input| {
    let (pick, params, query, (context, recipient, object, user_id)) = input;
    let endpoints: Vec<_> = catalogue::all().collect();
    let endpoint = endpoints[usize::from(pick) % endpoints.len()];
    let call = Call {
        endpoint: endpoint.id.to_string(),
        version: Some(endpoint.version),
        params,
        query,
        trace: Trace { context, recipient, object, user_id },
    };
    match codec::prepare("https://entreprise.api.gouv.fr", &call, 1_796_256_000) {
        Ok((_, request)) => {
            let pq = &request.path_and_query;
            assert!(!pq.chars().any(|c| c.is_whitespace() || c.is_control()), "{pq}");
            assert!(!pq.contains('#') && pq.matches('?').count() <= 1, "{pq}");
        }
        Err(Error::InvalidInput(items)) => assert!(!items.is_empty()),
        Err(other) => panic!("unexpected {other:?}"),
    }
});
