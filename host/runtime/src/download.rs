//! Downloading a document link. The link is a capability: the token is never
//! sent with it, and only the configured document hosts are reached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Request, header};
use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::RequestOptions;

use crate::policy::Authority;

/// The largest document the host downloads.
pub const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// The hosts API Entreprise serves documents from: object storage and the
/// INPI. The API's own authority (its `/proxy/files/` links) is always added.
pub const DEFAULT_DOCUMENT_HOSTS: &[&str] = &["https://storage.entreprise.api.gouv.fr", "https://data.inpi.fr"];

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The link's host is not a configured document host.
    #[error("{0}: not a configured document host; nothing was sent")]
    NotAllowed(String),
    /// The link is not a URL.
    #[error("{url:?} is not a document link: {why}")]
    BadUrl {
        /// The link.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The host answered with an error status.
    #[error("the document host answered HTTP {status}{hint}")]
    Status {
        /// The status.
        status: u16,
        /// What to do.
        hint: &'static str,
    },
    /// No complete answer within the document timeout.
    #[error("the download did not finish within {0:?}; try again")]
    Timeout(Duration),
    /// The document is larger than the cap.
    #[error("the document is larger than {} MiB; refusing it", MAX_DOCUMENT_BYTES >> 20)]
    TooLarge,
    /// The connection failed.
    #[error("the download failed: {0}")]
    Transport(String),
    /// Writing the file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What was downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where it was written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its `Content-Type`, when given.
    pub content_type: Option<String>,
}

/// `url` with the characters a URI may not hold as they are (the INPI's
/// links carry `["552049447"]` in their query) percent-encoded, as a
/// browser sends them; `%` and what a URI may hold stay.
fn escaped(url: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/?#@!$&'()*+,;=%".contains(&b);
    if url.bytes().all(allowed) {
        return url.into();
    }
    let mut out = String::with_capacity(url.len() + 16);
    for b in url.bytes() {
        if allowed(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.into()
}

/// Fetches `url` (a document link from an answer) into `dest`, written whole
/// or not at all, within `timeout`, from one of `hosts` only, without the token.
pub(crate) async fn download(
    sender: &crate::sender::Sender,
    hosts: &[Authority],
    url: &str,
    dest: &Path,
    timeout: Duration,
) -> Result<Downloaded, DownloadError> {
    let bad = |why: &str| DownloadError::BadUrl {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let uri: http::Uri = escaped(url).parse().map_err(|_| bad("it does not parse"))?;
    let authority = Authority::of_uri(&uri).map_err(|why| bad(&why))?;
    if !hosts.contains(&authority) {
        return Err(DownloadError::NotAllowed(authority.to_string()));
    }
    let request = Request::get(uri)
        .header(
            header::USER_AGENT,
            concat!("api-entreprise-rs/", env!("CARGO_PKG_VERSION")),
        )
        .body(crate::sender::empty_body())
        .map_err(|e| bad(&e.to_string()))?;
    let options = RequestOptions {
        connect_timeout: Some(timeout),
        first_byte_timeout: Some(timeout),
        between_bytes_timeout: Some(timeout),
    };
    let fetch = async {
        let response = sender
            .send(request, options)
            .await
            .map_err(|e| DownloadError::Transport(e.refusal.unwrap_or_else(|| e.code.to_string())))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let hint = match status {
                300..=399 => ": redirects are not followed",
                404 | 410 => ": the link expired; call the endpoint again for a fresh one",
                _ => "",
            };
            return Err(DownloadError::Status { status, hint });
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    DownloadError::TooLarge
                } else {
                    DownloadError::Transport(e.to_string())
                }
            })?
            .to_bytes();
        Ok((body, content_type))
    };
    let (body, content_type) = tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| DownloadError::Timeout(timeout))??;
    crate::atomic::write(dest, &body).map_err(|source| DownloadError::Write {
        path: dest.to_owned(),
        source,
    })?;
    Ok(Downloaded {
        path: dest.to_owned(),
        bytes: body.len() as u64,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_with_brackets_and_quotes_is_sent_escaped() {
        let url = r#"https://data.inpi.fr/export/companies?format=pdf&ids=["552049447"]"#;
        let escaped = super::escaped(url);
        assert_eq!(
            escaped,
            "https://data.inpi.fr/export/companies?format=pdf&ids=%5B%22552049447%22%5D"
        );
        assert!(escaped.parse::<http::Uri>().is_ok());
        let plain = "https://storage.entreprise.api.gouv.fr/siade/a%20b.pdf";
        assert!(matches!(super::escaped(plain), std::borrow::Cow::Borrowed(_)));
    }
}
