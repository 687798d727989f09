//! The JSON form of the contract (the WIT `json` interface): the same codec,
//! every value as JSON text, for hosts whose bindings make records slow to
//! cross. The shape is the WIT's: records as objects with snake_case fields,
//! options as `null`, enum cases by their WIT name, variants as
//! `{"tag": case, "val": payload}`, and the server's own JSON embedded as
//! JSON.

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::catalogue::{self, Endpoint};
use crate::codec::{self, Call, Prepared};
use crate::error::Error;
use crate::instant;

/// Serializes JSON text as the JSON it holds (text that is not JSON, which
/// the parser never produces, as a string).
pub fn raw<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    match serde_json::value::RawValue::from_string(text.to_owned()) {
        Ok(raw) => raw.serialize(serializer),
        Err(_) => serializer.serialize_str(text),
    }
}

/// [`raw`] for an optional field.
pub fn raw_option<S: Serializer>(text: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(text) => raw(text, serializer),
        None => serializer.serialize_none(),
    }
}

/// The JSON text of a value that always serializes.
fn to_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("\"unserializable: {e}\""))
}

/// An outcome as the WIT `result<string, string>`: the value or the error,
/// each in JSON.
fn outcome<T: Serialize>(result: Result<T, Error>) -> Result<String, String> {
    result.map(|v| to_text(&v)).map_err(|e| to_text(&e))
}

/// Reads an argument that must be JSON of a given shape (a record must be
/// an object: serde would also take an array of its fields in order).
fn argument<T: serde::de::DeserializeOwned>(name: &str, shape: &str, text: &str) -> Result<T, Error> {
    let wrong = |e: &dyn std::fmt::Display| Error::Other(format!("`{name}` is not {shape} in JSON: {e}"));
    let value: Value = serde_json::from_str(text).map_err(|e| wrong(&e))?;
    let record = !shape.contains("array");
    if record && !value.is_object() {
        return Err(wrong(&"it is not an object"));
    }
    serde_json::from_value(value).map_err(|e| wrong(&e))
}

/// One endpoint as the WIT `endpoint` record in JSON.
pub fn endpoint(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "version": e.version,
        "title": e.title,
        "provider": e.provider,
        "path": e.path,
        "params": e.params.iter().map(|(name, kind)| json!({"name": name, "kind": kind.name()})).collect::<Vec<_>>(),
        "query": e.query.iter().map(|q| json!({
            "name": q.name,
            "description": q.description,
            "values": q.values,
            "min": q.min,
            "max": q.max,
        })).collect::<Vec<_>>(),
        "kind": e.kind.name(),
        "timeout_ms": e.timeout_ms,
        "rate_limit": {
            "name": e.group.name,
            "limit": e.group.limit,
            "period_seconds": e.group.period_seconds,
        },
        "scopes": e.scopes,
        "deprecated": e.deprecated,
        "replaced_by": catalogue::replacement(e),
        "maintenance_window": e.maintenance,
        "needs_trace": e.needs_trace,
        "requires_user_id": e.requires_user_id,
    })
}

/// `json.endpoints`.
pub fn endpoints() -> String {
    Value::Array(catalogue::all().map(endpoint).collect()).to_string()
}

/// `json.prepare`.
pub fn prepare(base_url: &str, request: &str, now: &str) -> Result<String, String> {
    outcome((|| {
        let call: Call = argument("req", "a `request`", request)?;
        let now = instant::parse_now(now)?;
        let (endpoint, http) = codec::prepare(base_url, &call, now)?;
        Ok(Prepared::new(endpoint, &http))
    })())
}

/// `json.parse`.
pub fn parse(call: &str, status: u16, headers: &str, body: &str, now: &str) -> Result<String, String> {
    outcome((|| {
        let call: Prepared = argument("call", "the `prepared` that `prepare` gave", call)?;
        let headers: Vec<(String, String)> = argument("headers", "an array of [name, value] pairs", headers)?;
        let now = instant::parse_now(now)?;
        codec::parse(&call.endpoint, call.version, status, &headers, body.as_bytes(), now)
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-30T10:15:00Z";

    #[test]
    fn prepare_gives_the_resolved_endpoint_and_parse_takes_it_back() {
        let request = r#"{"endpoint":"insee_unites_legales","params":["552049447"],
            "trace":{"context":"aides","recipient":"13002526500013","object":"dossier 1"}}"#;
        let prepared = prepare("https://entreprise.api.gouv.fr", request, NOW).unwrap();
        let value: Value = serde_json::from_str(&prepared).unwrap();
        assert_eq!(value["endpoint"], "insee_unites_legales");
        assert_eq!(value["version"], 4, "the newest version that is not deprecated");
        assert!(
            value["url"]
                .as_str()
                .unwrap()
                .contains("/v4/insee/sirene/unites_legales/552049447?")
        );
        let body = r#"{"data":{"siren":"552049447","date_creation":-473389200},"links":{},"meta":{}}"#;
        let headers = r#"[["RateLimit-Reset","1796005740"],["X-Request-ID","r1"]]"#;
        let answer: Value = serde_json::from_str(&parse(&prepared, 200, headers, body, NOW).unwrap()).unwrap();
        assert_eq!(answer["data"]["siren"], "552049447", "data is JSON, not text");
        assert_eq!(answer["typed"]["tag"], "unite-legale");
        assert_eq!(answer["typed"]["val"]["date_creation"], "1955-01-01");
        assert_eq!(answer["rate_limit"]["reset_at"], "2026-11-30T02:29:00Z");
        assert_eq!(answer["request_id"], "r1");
    }

    #[test]
    fn errors_have_one_shape_with_their_tag() {
        let err = prepare(
            "https://entreprise.api.gouv.fr",
            r#"{"endpoint":"insee_unites_legales"}"#,
            NOW,
        )
        .unwrap_err();
        let err: Value = serde_json::from_str(&err).unwrap();
        assert_eq!(err["tag"], "invalid-input");
        assert!(err["val"].as_array().unwrap().iter().any(|i| i["code"] == "00301"));
        let call = r#"{"endpoint":"insee_unites_legales","version":3,"method":"GET","url":"u","headers":[],"timeout_ms":5000}"#;
        let body = r#"{"errors":[{"code":"01003","title":"t","detail":"d","meta":{"provider":"INSEE"}}]}"#;
        let err: Value = serde_json::from_str(&parse(call, 404, "[]", body, NOW).unwrap_err()).unwrap();
        assert_eq!(err["tag"], "api");
        assert_eq!(err["val"]["kind"], "not-found");
        assert_eq!(err["val"]["errors"][0]["meta"]["provider"], "INSEE");
        assert_eq!(err["val"]["provider"], "INSEE");
    }

    #[test]
    fn arguments_that_are_not_the_contract_say_which_and_why() {
        for (request, now, what) in [("{", NOW, "`req`"), (r#"{"endpoint":"x"}"#, "yesterday", "`now`")] {
            let err: Value = serde_json::from_str(&prepare("https://x", request, now).unwrap_err()).unwrap();
            assert_eq!(err["tag"], "other");
            assert!(err["val"].as_str().unwrap().contains(what), "{err}");
        }
    }
}
