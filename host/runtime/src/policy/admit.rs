//! Step 1, admit: the request goes to the API's own authority, and a data
//! request carries its trace, whatever the component did.

use crate::ConfigError;
use http::uri::Scheme;

use super::Refusal;

/// A normalised `scheme://host:port`: host lower-cased, trailing dot dropped,
/// port made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    https: bool,
    host: String,
    port: u16,
}

impl Authority {
    /// Reads the authority of an API base URL. `https` only, except `http`
    /// to a loopback address (the sandbox).
    pub fn of_base_url(url: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::BaseUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
        let authority = Self::of_uri(&uri).map_err(|why| bad(&why))?;
        if uri.query().is_some() {
            return Err(bad("has a query string"));
        }
        if !matches!(uri.path(), "" | "/") {
            return Err(bad(
                "has a path: give a scheme and a host only, such as https://entreprise.api.gouv.fr \
                 (an API behind a path prefix is not supported: serve it at a host or port of its own)",
            ));
        }
        if !authority.https && !authority.is_loopback() {
            return Err(bad(
                "uses http: only https is allowed, except http to a loopback sandbox",
            ));
        }
        Ok(authority)
    }

    /// Reads and normalises the authority of a request's URI.
    pub fn of_uri(uri: &http::Uri) -> Result<Self, String> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) => return Err(format!("scheme `{s}` is not allowed")),
            None => return Err("has no scheme".into()),
        };
        let authority = uri.authority().ok_or("has no host")?;
        if authority.as_str().contains('@') {
            return Err("carries user credentials".into());
        }
        let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err("has no host".into());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Self { https, host, port })
    }

    /// Whether the API is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// Whether the host is a loopback name or address (the sandbox).
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// The trace fields every data call must carry, whatever the component did:
/// the host checks them again before a byte leaves (defence in depth).
const TRACE_FIELDS: [&str; 3] = ["context", "recipient", "object"];

/// The trace fields a request to a versioned data route (`/v3/…`, `/v4/…`)
/// lacks or leaves blank, if any. `/privileges` and the health routes need none.
fn missing_trace(uri: &http::Uri) -> Option<String> {
    let path = uri.path();
    let versioned = path
        .strip_prefix("/v")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    if !versioned || path.ends_with("/privileges") {
        return None;
    }
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let missing: Vec<&str> = TRACE_FIELDS
        .into_iter()
        .filter(|field| !query.iter().any(|(k, v)| k == field && !v.trim().is_empty()))
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Why `path` is not in its one canonical form, if it is not: an encoded
/// separator or dot (`%2F`, `%2E`, `%5C`, which a server may decode), a
/// backslash, or a `.` or `..` segment (which a server may resolve). The
/// host's classification (quotas, free routes, timeouts) holds only for the
/// path the API reads.
pub(super) fn uncanonical(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%2e", "%5c"].iter().any(|e| lower.contains(e)) {
        return Some("an encoded separator or dot (%2F, %2E, %5C)");
    }
    if path.contains('\\') {
        return Some("a backslash");
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Some("a . or .. segment");
    }
    None
}

/// Admits a request for `api`, or says why not.
pub(super) fn admit(api: &Authority, uri: &http::Uri) -> Result<(), Refusal> {
    if let Some(why) = uncanonical(uri.path()) {
        return Err(Refusal::Path(why.to_owned()));
    }
    let target = Authority::of_uri(uri).map_err(|why| Refusal::Authority(format!("the URL {why}")))?;
    if target != *api {
        return Err(Refusal::Authority(format!(
            "{target} is not the configured API ({api})"
        )));
    }
    if let Some(missing) = missing_trace(uri) {
        return Err(Refusal::Trace(missing));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn authorities_are_normalised_before_comparison() {
        let api = Authority::of_base_url("https://entreprise.api.gouv.fr").unwrap();
        for same in [
            "https://ENTREPRISE.api.gouv.fr/v3/x",
            "https://entreprise.api.gouv.fr.:443/x",
            "https://entreprise.api.gouv.fr:443",
        ] {
            assert_eq!(Authority::of_uri(&uri(same)).unwrap(), api, "{same}");
        }
        for other in [
            "http://entreprise.api.gouv.fr/x",
            "https://entreprise.api.gouv.fr:8443/x",
            "https://evil.example/x",
        ] {
            assert_ne!(Authority::of_uri(&uri(other)).unwrap(), api, "{other}");
        }
        assert!(Authority::of_uri(&uri("https://user:pw@entreprise.api.gouv.fr/")).is_err());
    }

    #[test]
    fn data_routes_need_their_trace_and_free_routes_do_not() {
        let trace = |u: &str| missing_trace(&uri(u));
        assert_eq!(
            trace("https://x/v4/insee/sirene/unites_legales/1?context=a&recipient=b&object=c"),
            None
        );
        assert_eq!(
            trace("https://x/v4/insee/sirene/unites_legales/1?context=+&recipient=b").as_deref(),
            Some("context, object")
        );
        assert_eq!(trace("https://x/privileges"), None);
        assert_eq!(trace("https://x/v2/privileges"), None);
        assert_eq!(trace("https://x/ping/insee"), None);
    }

    #[test]
    fn a_path_in_another_form_than_its_canonical_one_is_refused_before_it_is_classified() {
        let api = Authority::of_base_url("https://entreprise.api.gouv.fr").unwrap();
        for bad in [
            "https://entreprise.api.gouv.fr/v3/insee/sirene/unites_legales/1%2F..%2Fx?context=a&recipient=b&object=c",
            "https://entreprise.api.gouv.fr/v3/insee/%2e%2e/ping/x",
            "https://entreprise.api.gouv.fr/ping/%5Cinsee",
            "https://entreprise.api.gouv.fr/v3/insee/./sirene",
            "https://entreprise.api.gouv.fr/v3/../ping/insee",
        ] {
            assert!(matches!(admit(&api, &uri(bad)), Err(Refusal::Path(_))), "{bad}");
        }
        assert!(admit(&api, &uri("https://entreprise.api.gouv.fr/ping/insee/sirene")).is_ok());
        // %20 and the like are no separators.
        assert_eq!(uncanonical("/v3/a%20b"), None);
    }

    #[test]
    fn a_base_url_with_a_path_is_refused_with_what_to_do() {
        for ok in ["https://entreprise.api.gouv.fr", "https://entreprise.api.gouv.fr/"] {
            assert!(Authority::of_base_url(ok).is_ok(), "{ok}");
        }
        let err = Authority::of_base_url("https://proxy.example/api-entreprise").unwrap_err();
        assert!(err.to_string().contains("a host or port of its own"), "{err}");
    }

    #[test]
    fn http_is_allowed_only_to_loopback() {
        assert!(Authority::of_base_url("http://127.0.0.1:8080").is_ok());
        assert!(Authority::of_base_url("http://localhost:8080").is_ok());
        assert!(Authority::of_base_url("http://[::1]:8080").is_ok());
        assert!(Authority::of_base_url("http://entreprise.api.gouv.fr").is_err());
        assert!(Authority::of_base_url("ftp://entreprise.api.gouv.fr").is_err());
    }
}
