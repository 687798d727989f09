//! The conformance vectors (`tests/conformance/`, written by `cargo xtask
//! vectors` from the client's code compiled natively) through the codec
//! component in the Rust host: every answer must be the vectors' exactly,
//! as the Node and Python packages' must.

use api_entreprise::{Codec, ConfigError, contract::Refusal};
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conformance")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn codec() -> Codec {
    Codec::new(api_entreprise_component::CODEC).unwrap()
}

/// A `json` function's outcome as a vector's `expect`.
fn outcome(result: Result<String, String>) -> Value {
    let (key, text) = match result {
        Ok(text) => ("ok", text),
        Err(text) => ("err", text),
    };
    serde_json::json!({ key: serde_json::from_str::<Value>(&text).unwrap() })
}

/// Runs every case, and lists the ones that differ.
fn disagreements(file: &str, run: impl Fn(&Value, &Value) -> Value) -> (usize, Vec<String>) {
    let vectors = vectors(file);
    let cases = vectors["cases"].as_array().unwrap();
    let differ = cases
        .iter()
        .filter(|case| run(&vectors, case) != case["expect"])
        .map(|case| case["name"].as_str().unwrap().to_owned())
        .collect();
    (cases.len(), differ)
}

#[test]
fn the_codec_component_prepares_as_every_vector_says() {
    let codec = codec();
    let (count, differ) = disagreements("prepare.json", |v, case| {
        let base = v["base_url"].as_str().unwrap();
        let now = v["now"].as_str().unwrap();
        outcome(codec.prepare_json(base, &case["request"].to_string(), now).unwrap())
    });
    assert!(count > 150, "{count} cases");
    assert!(differ.is_empty(), "{} of {count} differ: {differ:?}", differ.len());
}

#[test]
fn the_codec_component_parses_as_every_vector_says() {
    let codec = codec();
    let (count, differ) = disagreements("parse.json", |v, case| {
        let result = codec.parse_json(
            &case["call"].to_string(),
            u16::try_from(case["status"].as_u64().unwrap()).unwrap(),
            &case["headers"].to_string(),
            case["body"].as_str().unwrap(),
            v["now"].as_str().unwrap(),
        );
        outcome(result.unwrap())
    });
    assert!(count > 150, "{count} cases");
    assert!(differ.is_empty(), "{} of {count} differ: {differ:?}", differ.len());
}

#[test]
fn a_vector_that_lies_is_caught() {
    // The comparison can fail: a vector edited by hand no longer agrees.
    let codec = codec();
    let v = vectors("parse.json");
    let mut case = v["cases"][0].clone();
    case["expect"]["ok"]["status"] = 201.into();
    let result = codec.parse_json(
        &case["call"].to_string(),
        200,
        &case["headers"].to_string(),
        case["body"].as_str().unwrap(),
        v["now"].as_str().unwrap(),
    );
    let answer = outcome(result.unwrap());
    assert_eq!(answer, v["cases"][0]["expect"]);
    assert_ne!(answer, case["expect"]);
}

#[test]
fn the_codec_host_links_nothing_so_the_client_component_is_refused() {
    // The codec component imports nothing (the build checks it too), and
    // this host grants nothing: a component that wants wasi:http is
    // refused before it runs.
    let err = Codec::new(api_entreprise_component::CLIENT).unwrap_err();
    let ConfigError::Contract {
        refusal: Refusal::ExtraImports(imports),
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(imports.iter().any(|i| i.starts_with("wasi:http/")), "{imports:?}");
    let endpoints: Value = serde_json::from_str(&codec().endpoints_json().unwrap()).unwrap();
    assert!(endpoints.as_array().unwrap().len() > 50);
}
