//! Property tests of the client's two faces against hostile input: whatever
//! the caller passes, `prepare` refuses it or builds a request that keeps to
//! its route; whatever the server answers, `parse` gives a result or a typed
//! error, never a panic, and never a success for an error status; and the
//! JSON face answers JSON whatever text it is given.

use api_entreprise_guest::catalogue;
use api_entreprise_guest::codec::{self, Call};
use api_entreprise_guest::error::Error;
use api_entreprise_guest::validate::{self, Trace};
use api_entreprise_guest::{json, response};
use proptest::prelude::*;

/// 2026-11-29, so that year checks are stable.
const NOW: u64 = 1_796_256_000;

fn endpoint_ids() -> impl Strategy<Value = (String, u8)> {
    let all: Vec<(String, u8)> = catalogue::all().map(|e| (e.id.to_string(), e.version)).collect();
    proptest::sample::select(all)
}

/// Strings a caller may paste: digits, letters, spaces, URL syntax,
/// control characters, non-ASCII.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,16}",
        "[0-9A-Za-z ]{0,20}",
        "[/?#&=%.\\\\ \t\r\n\u{0}-\u{1f}]{0,12}",
        ".{0,40}",
        Just("../../privileges".to_owned()),
        Just("552049447/../../v2".to_owned()),
        Just("552049447?context=x".to_owned()),
    ]
}

fn trace() -> impl Strategy<Value = Trace> {
    (
        hostile_text(),
        prop_oneof![Just("13002526500013".to_owned()), hostile_text()],
        hostile_text(),
        proptest::option::of(hostile_text()),
    )
        .prop_map(|(context, recipient, object, user_id)| Trace {
            context,
            recipient,
            object,
            user_id,
        })
}

fn call() -> impl Strategy<Value = Call> {
    (
        endpoint_ids(),
        proptest::collection::vec(hostile_text(), 0..4),
        proptest::collection::vec((hostile_text(), hostile_text()), 0..3),
        trace(),
    )
        .prop_map(|((endpoint, version), params, query, trace)| Call {
            endpoint,
            version: Some(version),
            params,
            query,
            trace,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prepare_refuses_or_keeps_to_the_route(call in call()) {
        match codec::prepare("https://entreprise.api.gouv.fr", &call, NOW) {
            Ok((endpoint, request)) => {
                let pq = &request.path_and_query;
                // Nothing the caller passed can leave the path template's
                // shape: no whitespace, no control characters, no fragment,
                // no dot segments, exactly one query.
                prop_assert!(!pq.chars().any(|c| c.is_whitespace() || c.is_control()), "{pq}");
                prop_assert!(!pq.contains('#') && !pq.contains("/../") && !pq.contains("/./"), "{pq}");
                prop_assert!(pq.matches('?').count() <= 1, "{pq}");
                let path = pq.split('?').next().unwrap();
                let literal = endpoint.path.split('{').next().unwrap();
                prop_assert!(path.starts_with(literal), "{path} vs {}", endpoint.path);
                prop_assert_eq!(path.split('/').count(), endpoint.path.split('/').count());
                // The trace arrives as given (trimmed) for data routes.
                if endpoint.needs_trace {
                    let query: Vec<(String, String)> =
                        form_urlencoded::parse(pq.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
                    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                    prop_assert_eq!(get("context"), Some(call.trace.context.trim().to_owned()));
                    prop_assert_eq!(get("recipient"), Some(call.trace.recipient.trim().to_owned()));
                    prop_assert_eq!(get("object"), Some(call.trace.object.trim().to_owned()));
                }
            }
            Err(Error::InvalidInput(items)) => {
                prop_assert!(!items.is_empty());
                for item in items {
                    prop_assert!(item.code.len() == 5 && item.code.bytes().all(|b| b.is_ascii_digit()), "{:?}", item);
                    prop_assert!(!item.detail.is_empty());
                }
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn a_single_wrong_digit_never_passes_the_luhn_check(siren in valid_siren(), at in 0usize..9, delta in 1u8..10) {
        let mut digits = siren.into_bytes();
        digits[at] = b'0' + (digits[at] - b'0' + delta) % 10;
        prop_assert!(!validate::is_siren(std::str::from_utf8(&digits).unwrap()));
    }

    #[test]
    fn parse_never_panics_and_never_turns_an_error_status_into_a_success(
        (id, version) in endpoint_ids(),
        status in prop_oneof![Just(200u16), Just(404u16), Just(422u16), Just(429u16), Just(503u16), 100u16..600],
        headers in proptest::collection::vec((hostile_text(), hostile_text()), 0..4),
        body in body(),
    ) {
        let endpoint = catalogue::find(&id, Some(version)).unwrap();
        match response::parse(endpoint, status, &headers, &body, NOW) {
            Ok(r) => prop_assert!((200..300).contains(&status) && r.status == status, "{status}"),
            Err(Error::InvalidInput(_)) | Err(Error::UnknownEndpoint(_)) => prop_assert!(false, "a local fault from an answer"),
            Err(_) => {}
        }
    }
}

/// Text a host of the `json` interface may pass by mistake: JSON of other
/// shapes, truncated JSON, anything.
fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(
            r#"{"endpoint":"insee_unites_legales","version":3,"method":"GET","url":"u","headers":[],"timeout_ms":1}"#
                .to_owned()
        ),
        Just(r#"{"endpoint":"insee_unites_legales","params":["552049447"]}"#.to_owned()),
        Just("[[\"x\",\"y\"]]".to_owned()),
        Just("null".to_owned()),
        "[\\[\\]{}\":,a-z0-9 ]{0,40}",
        ".{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_json_face_answers_json_whatever_it_is_given(
        base in prop_oneof![Just("https://entreprise.api.gouv.fr".to_owned()), hostile_text()],
        request in json_text(),
        call in json_text(),
        headers in json_text(),
        status in 100u16..600,
        body in ".{0,60}",
        now in prop_oneof![Just("2026-11-30T10:15:00Z".to_owned()), hostile_text()],
    ) {
        for answer in [json::prepare(&base, &request, &now), json::parse(&call, status, &headers, &body, &now)] {
            let (Ok(text) | Err(text)) = answer;
            prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{text}");
        }
    }
}

/// A valid SIREN (Luhn), from eight random digits and a check digit.
fn valid_siren() -> impl Strategy<Value = String> {
    "[0-9]{8}".prop_map(|stem| {
        (0..10)
            .map(|d| format!("{stem}{d}"))
            .find(|s| validate::is_siren(s))
            .expect("one check digit fits")
    })
}

/// Bodies a server may send: JSON of the right shape with wrong types,
/// JSON:API errors, truncated JSON, bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        Just(br#"{"data":{"siren":552049447},"links":{},"meta":{}}"#.to_vec()),
        Just(br#"{"data":[{"data":null}],"links":[],"meta":null}"#.to_vec()),
        Just(br#"{"errors":[{"code":7,"title":null}]}"#.to_vec()),
        Just(br#"{"errors":"nope"}"#.to_vec()),
        Just(br#"{"data":{"document_url":"javascript:alert(1)","expires_in":-5}}"#.to_vec()),
        Just(br#"{"data":{"privileges":[1,2,3]}}"#.to_vec()),
        Just(br#"{"data":"#.to_vec()),
        Just(b"\xff\xfe\x00".to_vec()),
        "\\PC{0,64}".prop_map(String::into_bytes),
    ]
}

/// The file-link walk as it was written over a `serde_json::Value` tree
/// (before `lenient::file_links` read the text in one pass): the reference
/// the streaming walk must agree with.
fn tree_file_links(v: &serde_json::Value, pointer: &mut String, out: &mut Vec<response::FileLink>) {
    use serde_json::Value;
    let seconds = |v: &Value| v.as_u64().map(|s| u32::try_from(s).unwrap_or(u32::MAX));
    let len = pointer.len();
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                let is_link = key == "url" || key.ends_with("_url");
                if is_link && (value.is_string() || value.is_null()) {
                    let expiry = [format!("{key}_expires_in"), "expires_in".to_owned()]
                        .iter()
                        .find_map(|k| map.get(k).and_then(seconds));
                    out.push(response::FileLink {
                        pointer: pointer.clone(),
                        url: value.as_str().map(str::to_owned),
                        expires_in_seconds: expiry,
                    });
                } else {
                    tree_file_links(value, pointer, out);
                }
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointer.push_str(&format!("/{i}"));
                tree_file_links(item, pointer, out);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// JSON made of the keys the walk cares about (links, expiries, keys to
/// escape, repeated keys) and values of every kind.
fn linky_json() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("url"),
        Just("document_url"),
        Just("document_url_expires_in"),
        Just("acte_url"),
        Just("acte_url_expires_in"),
        Just("expires_in"),
        Just("a/b~c_url"),
        Just("siren"),
        Just("data"),
    ];
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        (0u64..5_000_000_000).prop_map(|n| n.to_string()),
        Just("-3".to_owned()),
        Just("1.5".to_owned()),
        "[a-z:/.]{0,12}".prop_map(|s| format!("{s:?}")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec((key.clone(), inner), 0..6).prop_map(|entries| {
                let fields: Vec<String> = entries.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The streaming walk finds what the tree walk found, in the same order.
    #[test]
    fn the_streaming_file_link_walk_agrees_with_the_tree_walk(text in linky_json()) {
        let tree: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut expected = Vec::new();
        tree_file_links(&tree, &mut String::new(), &mut expected);
        let streamed = api_entreprise_guest::lenient::file_links(&text).unwrap();
        prop_assert_eq!(streamed, expected, "{}", text);
    }
}
