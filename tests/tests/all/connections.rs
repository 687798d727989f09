//! The host's own sender: connections are reused (one TLS handshake for many
//! calls), only trusted certificates are accepted, and a production API name
//! that resolves to a non-public address is refused before any connection.

use api_entreprise::{CallError, RuntimeBuilder, Token, types};
use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};
use api_entreprise_tests::request;

async fn tls_sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        tls: true,
        ..SandboxConfig::default()
    })
    .await
    .expect("TLS sandbox")
}

fn builder(sandbox: &Sandbox) -> RuntimeBuilder {
    RuntimeBuilder::new(sandbox.base_url())
        .component(api_entreprise_tests::client_component())
        .token(Token::new(DEFAULT_TOKEN).unwrap())
}

#[tokio::test]
async fn many_calls_over_tls_use_one_connection_and_one_handshake() {
    let sandbox = tls_sandbox().await;
    assert!(sandbox.base_url().starts_with("https://127.0.0.1:"));
    let runtime = builder(&sandbox)
        .extra_ca(sandbox.ca_pem().unwrap().as_bytes().to_vec())
        .build()
        .await
        .unwrap();
    for _ in 0..20 {
        let r = runtime
            .call(&request("insee_unites_legales", &["552049447"]))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert_eq!(sandbox.received(), 20);
    assert_eq!((sandbox.connections(), sandbox.handshakes()), (1, 1));
    // The sandbox offers HTTP/2 by ALPN, as the real API's front does.
    assert!(
        sandbox.requests().iter().all(|r| r.version == "HTTP/2.0"),
        "{:?}",
        sandbox.requests()[0]
    );
}

#[tokio::test]
async fn many_calls_over_http_use_one_connection() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let runtime = builder(&sandbox).build().await.unwrap();
    for _ in 0..20 {
        runtime
            .call(&request("insee_unites_legales", &["552049447"]))
            .await
            .unwrap();
    }
    assert_eq!((sandbox.received(), sandbox.connections()), (20, 1));
    assert!(sandbox.requests().iter().all(|r| r.version == "HTTP/1.1"));
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let sandbox = tls_sandbox().await;
    // Without the sandbox's CA, its certificate is trusted by nothing.
    let runtime = builder(&sandbox).build().await.unwrap();
    let error = runtime
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap_err();
    let CallError::Client(e) = &error else {
        panic!("{error:?}")
    };
    assert!(matches!(e.0, types::Error::Transport(_)), "{error:?}");
    assert!(error.to_string().to_lowercase().contains("certificate"), "{error}");
    assert_eq!(sandbox.received(), 0);
}

#[tokio::test]
async fn a_bad_extra_ca_is_a_configuration_error() {
    let sandbox = tls_sandbox().await;
    let error = builder(&sandbox)
        .extra_ca(b"not a certificate".to_vec())
        .build()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("CERTIFICATE"), "{error}");
}

/// One Sirene call to `base_url`, trusting the sandbox's CA; it must fail.
async fn failed_call(base_url: &str, sandbox: &Sandbox) -> CallError {
    RuntimeBuilder::new(base_url)
        .component(api_entreprise_tests::client_component())
        .token(Token::new(DEFAULT_TOKEN).unwrap())
        .extra_ca(sandbox.ca_pem().unwrap().as_bytes().to_vec())
        .build()
        .await
        .unwrap()
        .call(&request("insee_unites_legales", &["552049447"]))
        .await
        .unwrap_err()
}

/// The machine's host name, when the system resolves it to a loopback or
/// private address (Debian lists it in /etc/hosts as 127.0.x.1).
fn local_host_name() -> Option<String> {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()?
        .trim()
        .to_owned();
    let addrs: Vec<_> = (name.as_str(), 443).to_socket_addrs().ok()?.collect();
    let private = !addrs.is_empty() && addrs.iter().all(|a| !api_entreprise::sender::is_public(a.ip()));
    (private && name != "localhost").then_some(name)
}

#[tokio::test]
async fn a_production_name_resolving_to_a_private_address_is_refused_before_connecting() {
    let sandbox = tls_sandbox().await;
    let port = sandbox.addr().port();
    let Some(name) = local_host_name() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI's machines resolve their host name to loopback"
        );
        eprintln!("skipped: this machine's host name does not resolve to a private address");
        return;
    };
    let error = failed_call(&format!("https://{name}:{port}"), &sandbox).await;
    let CallError::Client(e) = &error else {
        panic!("{error:?}")
    };
    let types::Error::RefusedByHost(why) = &e.0 else {
        panic!("{error:?}")
    };
    assert!(
        why.contains(&format!("{name} resolves to ")) && why.contains("DNS rebinding"),
        "{why}"
    );
    assert_eq!(sandbox.connections(), 0, "nothing connected");
}

#[tokio::test]
async fn numeric_host_tricks_are_refused_before_connecting() {
    let sandbox = tls_sandbox().await;
    let port = sandbox.addr().port();
    // Shorthand and decimal forms of 127.0.0.1: not IP literals to the URL
    // parser, not DNS names to TLS.
    for name in ["127.1", "2130706433", "0x7f000001"] {
        let error = failed_call(&format!("https://{name}:{port}"), &sandbox).await;
        assert!(matches!(&error, CallError::Client(_)), "{name}: {error:?}");
    }
    assert_eq!(sandbox.connections(), 0, "nothing connected");
}
