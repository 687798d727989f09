//! Step 3, credentials: the host's token on the way out, only to the API
//! (the requests reaching this step were admitted for its authority); the
//! component may neither set credentials nor read them back.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, header};
use wasmtime_wasi_http::{DEFAULT_FORBIDDEN_HEADERS, ForbiddenHeaderFilter};

use crate::token::Token;

/// The headers the component may not set: WASI's, plus credentials and cookies.
pub(crate) fn forbidden_headers() -> ForbiddenHeaderFilter {
    Arc::new(|name: &HeaderName| {
        DEFAULT_FORBIDDEN_HEADERS.contains(name) || *name == header::AUTHORIZATION || *name == header::COOKIE
    })
}

/// Puts the token (if any) on an admitted request, replacing whatever was there.
pub(super) fn authorize(headers: &mut HeaderMap, token: Option<&Token>) {
    headers.remove(header::AUTHORIZATION);
    if let Some(token) = token {
        headers.insert(header::AUTHORIZATION, token.bearer());
    }
}

/// A server that echoes credentials back must not hand them to the component.
pub(super) fn scrub(headers: &mut HeaderMap) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::PROXY_AUTHORIZATION);
}
