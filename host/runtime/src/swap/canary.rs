//! The canary: a candidate version and the serving one, side by side, on
//! the same inputs before the candidate serves anything. The inputs are the
//! conformance vectors built into this crate: `prepare` on requests to every
//! endpoint (valid and invalid, free routes, contract misuse) and `parse`
//! on the recorded answers of the sandbox fixtures (successes, every error
//! status, bodies that are not the API's). Nothing is sent: the codec
//! functions never reach the network, and the host's policy would hold them
//! if they tried.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::runtime::loaded::Loaded;
use crate::{CallError, Runtime};

/// The `prepare` vectors (`tests/conformance/prepare.json`).
const PREPARE: &str = include_str!("../../../../tests/conformance/prepare.json");
/// The `parse` vectors (`tests/conformance/parse.json`).
const PARSE: &str = include_str!("../../../../tests/conformance/parse.json");

/// How long one canary case may run: parsing a 30 KB answer takes well
/// under a millisecond.
const CASE_DEADLINE: Duration = Duration::from_secs(1);

/// After this many findings that refuse a swap, the rest is not run.
const ENOUGH_FINDINGS: usize = 20;

/// One input of the canary.
struct Case {
    name: String,
    input: Input,
}

enum Input {
    Prepare {
        base_url: String,
        request: String,
        now: String,
    },
    Parse {
        call: String,
        status: u16,
        headers: String,
        body: String,
        now: String,
    },
}

/// The canary's inputs, read once from the built-in vectors.
fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut cases = Vec::new();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        if let Ok(prepare) = serde_json::from_str::<Value>(PREPARE) {
            for case in prepare["cases"].as_array().into_iter().flatten() {
                cases.push(Case {
                    name: format!("prepare {}", text(&case["name"])),
                    input: Input::Prepare {
                        base_url: text(&prepare["base_url"]),
                        request: case["request"].to_string(),
                        now: text(&prepare["now"]),
                    },
                });
            }
        }
        if let Ok(parse) = serde_json::from_str::<Value>(PARSE) {
            for case in parse["cases"].as_array().into_iter().flatten() {
                cases.push(Case {
                    name: format!("parse {}", text(&case["name"])),
                    input: Input::Parse {
                        call: case["call"].to_string(),
                        status: case["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
                        headers: case["headers"].to_string(),
                        body: text(&case["body"]),
                        now: text(&parse["now"]),
                    },
                });
            }
        }
        cases
    })
}

/// What a version gave for one case.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ok(Value),
    Err(Value),
    Trap(String),
}

/// One case where the two versions differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The case (`prepare v3/insee_unites_legales/200`, `parse …`).
    pub case: String,
    /// How they differ, in words.
    pub what: String,
}

/// What the canary found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryReport {
    /// Cases run.
    pub cases: usize,
    /// Cases where both versions gave the same.
    pub same: usize,
    /// Differences that do not refuse a swap (another value, another error).
    pub changed: Vec<Difference>,
    /// Differences that refuse a swap unless accepted: the candidate trapped
    /// or panicked, turned a success into an error, or an error into a success.
    pub refusing: Vec<Difference>,
}

impl Runtime {
    /// Runs every canary case on `serving` and on `candidate`, and compares.
    pub(crate) async fn canary(&self, serving: &Loaded, candidate: &Loaded) -> CanaryReport {
        let mut report = CanaryReport::default();
        for case in cases() {
            if report.refusing.len() >= ENOUGH_FINDINGS {
                break;
            }
            report.cases += 1;
            let old = self.run_case(serving, &case.input).await;
            let new = self.run_case(candidate, &case.input).await;
            let refusing = match (&old, &new) {
                _ if old == new => {
                    report.same += 1;
                    continue;
                }
                (Outcome::Trap(_), Outcome::Trap(_)) => {
                    report.same += 1;
                    continue;
                }
                (_, Outcome::Trap(trap)) => Some(format!("it traps: {}", root_cause(trap))),
                (Outcome::Ok(_), Outcome::Err(err)) => Some(format!("a success turned into an error: {err}")),
                (Outcome::Err(err), Outcome::Ok(_)) => Some(format!("an error ({err}) turned into a success")),
                (Outcome::Trap(trap), _) => {
                    report.changed.push(Difference {
                        case: case.name.clone(),
                        what: format!(
                            "the serving version traps ({}), the candidate does not",
                            root_cause(trap)
                        ),
                    });
                    continue;
                }
                (Outcome::Ok(a), Outcome::Ok(b)) | (Outcome::Err(a), Outcome::Err(b)) => {
                    report.changed.push(Difference {
                        case: case.name.clone(),
                        what: first_difference("", a, b),
                    });
                    continue;
                }
            };
            if let Some(what) = refusing {
                report.refusing.push(Difference {
                    case: case.name.clone(),
                    what: shorten(&what),
                });
            }
        }
        report
    }

    /// One case on one version.
    async fn run_case(&self, version: &Loaded, input: &Input) -> Outcome {
        let result = self
            .run_codec(version, CASE_DEADLINE, async |store, instance| {
                let client = crate::bindings::ApiEntreprise::new(&mut *store, instance)?;
                let json = client.api_entreprise_client_json();
                let answer = match input {
                    Input::Prepare { base_url, request, now } => json.call_prepare(store, base_url, request, now).await,
                    Input::Parse {
                        call,
                        status,
                        headers,
                        body,
                        now,
                    } => json.call_parse(store, call, *status, headers, body, now).await,
                };
                answer.map(Ok)
            })
            .await;
        let value = |text: String| serde_json::from_str(&text).unwrap_or(Value::String(text));
        match result {
            Ok(Ok(text)) => Outcome::Ok(value(text)),
            Ok(Err(text)) => Outcome::Err(value(text)),
            Err(CallError::Trap(trap)) => Outcome::Trap(trap),
            Err(CallError::Deadline(_)) => Outcome::Trap(format!("it ran past {CASE_DEADLINE:?}")),
            Err(other) => Outcome::Trap(other.to_string()),
        }
    }
}

/// Where `a` and `b` first differ, as `path: a → b`.
fn first_difference(path: &str, a: &Value, b: &Value) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let (va, vb) = (x.get(key).unwrap_or(&Value::Null), y.get(key).unwrap_or(&Value::Null));
                if va != vb || x.contains_key(key) != y.contains_key(key) {
                    return first_difference(&format!("{path}/{key}"), va, vb);
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                if va != vb {
                    return first_difference(&format!("{path}/{i}"), va, vb);
                }
            }
        }
        _ => {}
    }
    let path = if path.is_empty() { "/" } else { path };
    shorten(&format!("{path}: {a} → {b}"))
}

/// A trap's last line, its root cause (`wasm trap: …`), rather than the
/// backtrace before it.
fn root_cause(trap: &str) -> &str {
    let last = trap.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or(trap);
    last.rfind("wasm trap:").map_or(last, |at| &last[at..])
}

/// `text` cut to a line's length.
fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_vectors_are_read() {
        let cases = cases();
        let prepare = cases
            .iter()
            .filter(|c| matches!(c.input, Input::Prepare { .. }))
            .count();
        assert!(prepare > 150, "{prepare} prepare cases");
        assert!(cases.len() - prepare > 150, "{} parse cases", cases.len() - prepare);
    }

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let a = serde_json::json!({"headers": [["user-agent", "x/1"]], "url": "u"});
        let b = serde_json::json!({"headers": [["user-agent", "x/2"]], "url": "u"});
        assert_eq!(first_difference("", &a, &b), r#"/headers/0/1: "x/1" → "x/2""#);
        let c = serde_json::json!({"url": "u", "extra": 1});
        assert_eq!(first_difference("", &b, &c), "/extra: null → 1");
        assert_eq!(first_difference("", &Value::Null, &Value::Bool(true)), "/: null → true");
    }
}
