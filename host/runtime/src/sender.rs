//! The host's own HTTP sender, used for every request the host lets out:
//! a pool of connections per authority (HTTP/1.1 keep-alive, HTTP/2 when the
//! server offers it) over rustls, trusting the usual web roots plus any extra
//! CA, behind a resolver that refuses loopback, private and link-local
//! addresses for a production API (DNS rebinding, a poisoned resolver).
//!
//! wasmtime-wasi-http's default sender opens a new connection, and over TLS
//! makes a new handshake, for every request; this one reuses them.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends requests over pooled connections.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, WasiBody>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// Why the sender did not get an answer.
#[derive(Debug)]
pub struct SendError {
    /// The `wasi:http` error code the guest sees.
    pub code: HttpError,
    /// Why the host refused to connect, when it did (a non-public address).
    pub refusal: Option<String>,
}

impl From<HttpError> for SendError {
    fn from(code: HttpError) -> Self {
        Self { code, refusal: None }
    }
}

impl Sender {
    /// A sender trusting the web's usual roots plus `extra_roots`; with
    /// `public_only`, host names that resolve to a non-public address are
    /// refused. Connections are given up after `connect_timeout`.
    pub fn new(
        extra_roots: &[CertificateDer<'static>],
        public_only: bool,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| format!("the extra CA certificate is not usable: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { public_only });
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { client })
    }

    /// Sends `req` (an absolute URI) and waits for the answer's head
    /// (connecting included) within the options' first-byte timeout; the
    /// body then fails if it stalls for longer than the between-bytes timeout.
    pub async fn send(&self, req: Request<WasiBody>, options: RequestOptions) -> Result<Response<WasiBody>, SendError> {
        // Connecting (bounded by the connector's own timeout) and waiting
        // for the head share the first-byte budget: the call's deadline is
        // only a little longer, and a silent server must show as a timeout.
        let first_byte = options.first_byte_timeout.unwrap_or(IDLE_TIMEOUT);
        let between_bytes = options
            .between_bytes_timeout
            .unwrap_or(IDLE_TIMEOUT)
            .max(Duration::from_millis(1));
        let response = tokio::time::timeout(first_byte, self.client.request(req))
            .await
            .map_err(|_| HttpError::ConnectionReadTimeout)?
            .map_err(classify)?;
        Ok(response.map(|body| BetweenBytes::new(body, between_bytes).boxed_unsync()))
    }
}

/// An empty request body, for the GETs the host sends itself.
pub fn empty_body() -> WasiBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Maps the client's error to the `wasi:http` code the guest sees, keeping
/// the host's reason for a refusal.
fn classify(error: hyper_util::client::legacy::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<NonPublic>() {
            return SendError {
                code: HttpError::DestinationIpProhibited,
                refusal: Some(refused.to_string()),
            };
        }
        if err.is::<Unresolved>() {
            return HttpError::DnsError {
                rcode: None,
                info_code: None,
            }
            .into();
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return tls_error(tls).into();
        }
        if err.is::<rustls::pki_types::InvalidDnsNameError>() {
            // An https host that is neither a DNS name nor an IP address
            // (such as `127.1`): no certificate can match it.
            return HttpError::HttpRequestUriInvalid.into();
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut => return HttpError::ConnectionTimeout.into(),
                std::io::ErrorKind::ConnectionRefused => return HttpError::ConnectionRefused.into(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                    return HttpError::ConnectionTerminated.into();
                }
                _ => {}
            }
        }
        if let Some(hyper) = err.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() {
                return HttpError::HttpResponseIncomplete.into();
            }
            if hyper.is_parse() || hyper.is_parse_status() {
                return HttpError::HttpProtocolError.into();
            }
            if hyper.is_timeout() {
                return HttpError::ConnectionReadTimeout.into();
            }
        }
        // An io::Error's `source()` skips the error it wraps: step into it.
        source = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    if error.is_connect() {
        HttpError::DestinationUnavailable.into()
    } else {
        HttpError::InternalError(Some(error.to_string())).into()
    }
}

fn tls_error(error: &rustls::Error) -> HttpError {
    match error {
        rustls::Error::InvalidCertificate(_) => HttpError::TlsCertificateError,
        rustls::Error::AlertReceived(_) => HttpError::TlsAlertReceived {
            alert_id: None,
            alert_message: Some(error.to_string()),
        },
        _ => HttpError::TlsProtocolError,
    }
}

/// A response body that fails when the server stops sending for too long.
struct BetweenBytes {
    inner: Incoming,
    gap: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl BetweenBytes {
    fn new(inner: Incoming, gap: Duration) -> Self {
        Self {
            inner,
            gap,
            timer: Box::pin(tokio::time::sleep(gap)),
        }
    }
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.gap;
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // A body cut short shows as an incomplete message or an
                // end of file before the announced length.
                let eof = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof);
                let error = if e.is_incomplete_message() || eof {
                    HttpError::HttpResponseIncomplete
                } else {
                    HttpError::Hyper(e)
                };
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A host name that resolved to an address a production API never has.
#[derive(Debug)]
struct NonPublic {
    name: String,
    ip: IpAddr,
}

impl std::fmt::Display for NonPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to {}, a loopback, private or link-local address, which a production API never has \
             (DNS rebinding or a wrong resolver?)",
            self.name, self.ip
        )
    }
}

impl std::error::Error for NonPublic {}

/// A host name the system resolver could not resolve.
#[derive(Debug)]
struct Unresolved {
    name: String,
    cause: std::io::Error,
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} could not be resolved: {}", self.name, self.cause)
    }
}

impl std::error::Error for Unresolved {}

/// Resolves host names through the system, refusing non-public addresses
/// when asked to.
#[derive(Clone, Debug)]
struct GuardedResolver {
    public_only: bool,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let public_only = self.public_only;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|cause| {
                    let kind = cause.kind();
                    let name = name.as_str().to_owned();
                    std::io::Error::new(kind, Unresolved { name, cause })
                })?
                .collect();
            if public_only && let Some(addr) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    NonPublic {
                        name: name.as_str().to_owned(),
                        ip: addr.ip(),
                    },
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Whether `ip` may be a public server's: not loopback, private, link-local,
/// shared (CGNAT), documentation, multicast, unspecified or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_guarded_resolver_refuses_a_name_resolving_to_loopback() {
        use tower_service::Service;
        let name: Name = "localhost".parse().unwrap();
        let error = GuardedResolver { public_only: true }
            .call(name.clone())
            .await
            .unwrap_err();
        let refused = error.get_ref().and_then(|e| e.downcast_ref::<NonPublic>()).unwrap();
        assert!(refused.to_string().starts_with("localhost resolves to "), "{refused}");
        assert!(!is_public(refused.ip));
        // The sandbox's mode lets it through.
        let addrs: Vec<_> = GuardedResolver { public_only: false }
            .call(name)
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.1.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["213.41.120.195", "8.8.8.8", "2a01:e0a::1", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
