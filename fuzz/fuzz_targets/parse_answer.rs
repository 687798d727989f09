//! Whatever the server answers, `parse` returns: a result only for a 2xx
//! status, else a typed error; never a panic.
#![no_main]

use api_entreprise_guest::{catalogue, error::Error, response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, u16, Vec<(String, String)>, &[u8])| {
    let (pick, status, headers, body) = input;
    let endpoints: Vec<_> = catalogue::all().collect();
    let endpoint = endpoints[usize::from(pick) % endpoints.len()];
    match response::parse(endpoint, status, &headers, body, 1_796_256_000) {
        Ok(r) => assert!((200..300).contains(&status) && r.status == status),
        Err(Error::InvalidInput(_) | Error::UnknownEndpoint(_)) => panic!("a local fault from an answer"),
        Err(_) => {}
    }
});
