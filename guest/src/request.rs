//! Builds the HTTP request for a validated call. No credentials here: the
//! host adds `Authorization` for the API's authority only.

use crate::catalogue::Endpoint;
use crate::error::Error;
use crate::validate::Trace;

/// What a path segment must encode: the URL standard's path-segment set
/// (controls, space, `"#<>?\`{}`, `/`, `%`).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%');

/// Names the product and its version to the API's operators.
pub const USER_AGENT: &str = concat!("api-entreprise-rs/", client_version!(), " (wasm component)");

/// This build's client version: the crate's (with `-next` in the
/// `testing-next` build the tests swap to).
pub const VERSION: &str = client_version!();

/// The parts of an `http` or `https` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    pub authority: String,
    /// A path prefix without its trailing slash (empty for most).
    pub prefix: String,
}

impl BaseUrl {
    /// Parses `https://host[:port][/prefix]`.
    pub fn parse(base: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::Other(format!(
                "base URL {base:?} {why}: give one like https://entreprise.api.gouv.fr"
            ))
        };
        let (https, rest) = if let Some(rest) = base.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = base.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("is not an http(s) URL"));
        };
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(bad("has no host"));
        }
        if authority.contains('@') {
            return Err(bad("carries credentials"));
        }
        if prefix.contains(['?', '#']) {
            return Err(bad("has a query or fragment"));
        }
        Ok(Self {
            https,
            authority: authority.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }
}

/// A ready-to-send GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub base: BaseUrl,
    /// Path and percent-encoded query.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u32,
}

impl HttpRequest {
    /// The absolute URL.
    pub fn url(&self) -> String {
        let scheme = if self.base.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.base.authority, self.path_and_query)
    }
}

/// Builds the request for `endpoint`; `params` and `query` are already valid.
pub fn build(
    base: &str,
    endpoint: &Endpoint,
    params: &[String],
    query: &[(String, String)],
    trace: &Trace,
) -> Result<HttpRequest, Error> {
    let base = BaseUrl::parse(base)?;
    let mut path = endpoint.path.to_owned();
    for ((name, _), value) in endpoint.params.iter().zip(params) {
        // Each segment is percent-encoded as a path segment (a space is
        // `%20`, not the form encoding's `+`); a provider name keeps its slashes.
        let encoded: Vec<String> = value
            .split('/')
            .map(|segment| percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT).to_string())
            .collect();
        path = path.replace(&format!("{{{name}}}"), &encoded.join("/"));
    }
    let mut q = form_urlencoded::Serializer::new(String::new());
    if endpoint.needs_trace {
        // Whitespace around a trace field is never meant (a pasted value).
        q.append_pair("context", trace.context.trim())
            .append_pair("recipient", trace.recipient.trim())
            .append_pair("object", trace.object.trim());
        if let Some(user_id) = &trace.user_id {
            q.append_pair("user_id", user_id.trim());
        }
    }
    for (name, value) in query {
        q.append_pair(name, value);
    }
    let query = q.finish();
    let separator = if query.is_empty() { "" } else { "?" };
    Ok(HttpRequest {
        path_and_query: format!("{}{path}{separator}{query}", base.prefix),
        base,
        headers: vec![
            ("accept".into(), "application/json".into()),
            ("user-agent".into(), USER_AGENT.into()),
        ],
        timeout_ms: endpoint.timeout_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::find;

    #[test]
    fn the_path_and_the_encoded_trace_make_the_url() {
        let e = find("insee_unites_legales", None).unwrap();
        let t = Trace {
            context: "aides publiques".into(),
            recipient: " 13002526500013 ".into(),
            object: "dossier n°42 & co".into(),
            user_id: Some("agent@example.fr".into()),
        };
        let r = build("https://entreprise.api.gouv.fr/", e, &["552049447".into()], &[], &t).unwrap();
        assert_eq!(
            r.url(),
            "https://entreprise.api.gouv.fr/v4/insee/sirene/unites_legales/552049447?context=aides+publiques&recipient=13002526500013&object=dossier+n%C2%B042+%26+co&user_id=agent%40example.fr"
        );
        assert_eq!(r.timeout_ms, 5_000);
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "user-agent" && v.starts_with("api-entreprise-rs/"))
        );
        assert!(!r.headers.iter().any(|(k, _)| k == "authorization"));
    }

    #[test]
    fn free_routes_carry_no_trace_and_provider_names_keep_their_slash() {
        let e = find("ping", None).unwrap();
        let r = build("https://x.fr", e, &["insee/sirene".into()], &[], &Trace::default()).unwrap();
        assert_eq!(r.url(), "https://x.fr/ping/insee/sirene");
    }

    #[test]
    fn path_values_are_percent_encoded_as_path_segments_not_as_a_form() {
        let e = find("ping", None).unwrap();
        let r = build("https://x.fr", e, &["a b+c?d#e%f".into()], &[], &Trace::default()).unwrap();
        assert_eq!(r.url(), "https://x.fr/ping/a%20b+c%3Fd%23e%25f");
    }

    #[test]
    fn base_urls_keep_port_and_prefix_and_refuse_the_rest() {
        let b = BaseUrl::parse("http://127.0.0.1:8080/api/").unwrap();
        assert_eq!(
            (b.https, b.authority.as_str(), b.prefix.as_str()),
            (false, "127.0.0.1:8080", "/api")
        );
        for bad in [
            "ftp://x",
            "https://",
            "https://u:p@host",
            "entreprise.api.gouv.fr",
            "https://h/?q",
        ] {
            assert!(matches!(BaseUrl::parse(bad), Err(Error::Other(_))), "{bad}");
        }
    }
}
