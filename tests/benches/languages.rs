//! The Rust side of `scripts/speed` (the same figures as the Node and
//! Python packages', from the same vectors, printed as `RESULT {json}`):
//!
//! - prepare + parse of the 1.7 KB Sirene answer through the codec
//!   component ([`api_entreprise::Codec`], the contract's JSON form, the
//!   answer decoded), and the same through the client component's typed
//!   codec ([`api_entreprise::Runtime::prepare`] and `parse`, a fresh
//!   instance each);
//! - the whole call against the sandbox ([`api_entreprise::Runtime::call`]).
//!
//! `cargo bench -p api-entreprise-tests --bench languages`

use std::time::{Duration, Instant};

use api_entreprise::Codec;
use serde_json::{Value, json};

/// The vectors' case every language measures.
const CASE: &str = "v4/insee_unites_legales/personne_morale";

fn case(file: &str) -> (Value, Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conformance")
        .join(file);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == CASE)
        .unwrap()
        .clone();
    (v, case)
}

/// The median and the fastest of 10 batches, per call, in µs.
fn per_call(calls: u32, mut f: impl FnMut()) -> Value {
    for _ in 0..calls / 10 {
        f();
    }
    let mut batches: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls / 10 {
                f();
            }
            t.elapsed() / (calls / 10)
        })
        .collect();
    batches.sort();
    let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
    json!({"median_us": us(batches[5]), "min_us": us(batches[0])})
}

#[tokio::main]
async fn main() {
    let (pv, prepare) = case("prepare.json");
    let (_, parse) = case("parse.json");
    let base = pv["base_url"].as_str().unwrap().to_owned();
    let now = pv["now"].as_str().unwrap().to_owned();
    let request = prepare["request"].to_string();
    let headers = parse["headers"].to_string();
    let body = parse["body"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let codec = Codec::new(api_entreprise_component::CODEC).unwrap();
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let codec_json = per_call(20_000, || {
        let call = codec.prepare_json(&base, &request, &now).unwrap().unwrap();
        let answer = codec.parse_json(&call, 200, &headers, &body, &now).unwrap().unwrap();
        std::hint::black_box(serde_json::from_str::<Value>(&answer).unwrap());
    });

    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000_000));
    let runtime = api_entreprise_tests::runtime(&sandbox).await;
    let typed_request = api_entreprise_tests::request("insee_unites_legales", &["552049447"]);
    let typed_call = runtime.prepare(&typed_request).await.unwrap();
    let answer_headers: Vec<(String, String)> = serde_json::from_value(parse["headers"].clone()).unwrap();
    let n = 2_000u32;
    let t = Instant::now();
    for _ in 0..n {
        let call = runtime.prepare(&typed_request).await.unwrap();
        std::hint::black_box(runtime.parse(&call, 200, &answer_headers, &body).await.unwrap());
    }
    let typed_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    std::hint::black_box(typed_call);

    for _ in 0..20 {
        runtime.call(&typed_request).await.unwrap();
    }
    let calls = 200u32;
    let t = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(runtime.call(&typed_request).await.unwrap());
    }
    let call_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(calls);

    println!(
        "RESULT {}",
        json!({
            "language": "Rust (wasmtime 48)",
            "load_ms": (load_ms * 10.0).round() / 10.0,
            "prepare_parse": codec_json,
            "typed_prepare_parse_fresh_instance_us": typed_us.round(),
            "call_us": call_us.round(),
            "artifact": {"codec.wasm": api_entreprise_component::CODEC.len(), "client.wasm": api_entreprise_component::CLIENT.len()},
        })
    );
}
