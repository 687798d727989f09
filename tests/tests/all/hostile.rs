//! The sandbox holds: hostile components, a hostile server and foreign
//! components are each contained, and each gives the caller a clear error;
//! the next call works.

use std::time::Duration;

use api_entreprise::{CallError, CallPath, ComponentSource, ConfigError, Runtime, RuntimeBuilder, types};
use api_entreprise_tests::{PATHS, builder, probe_component, request, sandbox};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The host's ceiling for the calls below (its deadline adds 0.5 s).
const CEILING: Duration = Duration::from_millis(800);

/// Past this a call has hung: a guard that turns a hang into a failure, not
/// a timing measurement (the host's own deadline ends every call long before).
const NO_HANG: Duration = Duration::from_secs(10);

/// `call`, failing the test if it hangs.
async fn unhung<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(NO_HANG, call)
        .await
        .expect("the call hung past the host's deadline")
}

/// The hostile probe on `path`: on the codec path it misbehaves in its
/// `prepare`, on the `wasi:http` path in its `call`.
async fn probe_runtime(sandbox: &api_entreprise_sandbox::Sandbox, path: CallPath) -> Runtime {
    builder(sandbox)
        .component(probe_component())
        .call_path(path)
        .timeouts(CEILING, CEILING)
        .build()
        .await
        .expect("the probe loads")
}

/// After any hostile call, the same runtime still serves a normal one.
async fn still_serves(runtime: &Runtime, sandbox: &api_entreprise_sandbox::Sandbox) {
    let url = format!("{}/pings", sandbox.base_url());
    let r = runtime
        .call(&request("probe", &[&url]))
        .await
        .expect("the next call works");
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_component_that_loops_forever_is_interrupted_at_the_deadline() {
    let sandbox = sandbox().await;
    for path in PATHS {
        let runtime = probe_runtime(&sandbox, path).await;
        let error = unhung(runtime.call(&request("spin", &[]))).await.unwrap_err();
        assert!(
            matches!(error, CallError::Deadline(d) if d == CEILING),
            "{path:?}: {error:?}"
        );
        assert!(error.to_string().contains("no answer within"), "{error}");
        still_serves(&runtime, &sandbox).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_spinning_call_does_not_hold_up_the_others() {
    let sandbox = sandbox().await;
    for path in PATHS {
        a_spinning_call_does_not_hold_up_the_others_on(&sandbox, path).await;
    }
}

async fn a_spinning_call_does_not_hold_up_the_others_on(sandbox: &api_entreprise_sandbox::Sandbox, path: CallPath) {
    let runtime = std::sync::Arc::new(probe_runtime(sandbox, path).await);
    let spinning = {
        let runtime = std::sync::Arc::clone(&runtime);
        tokio::spawn(async move { runtime.call(&request("spin", &[])).await })
    };
    // Even on one worker thread, the epoch makes the spinning guest yield
    // every millisecond, so the other call and the sandbox get their turns:
    // the normal call succeeds (within its own ceiling) while the spinning
    // one is still running.
    tokio::time::sleep(Duration::from_millis(50)).await;
    still_serves(&runtime, sandbox).await;
    assert!(!spinning.is_finished(), "{path:?}: the spinning call was still running");
    assert!(matches!(spinning.await.unwrap(), Err(CallError::Deadline(_))));
}

#[tokio::test]
async fn a_component_that_allocates_without_end_hits_the_memory_cap() {
    let sandbox = sandbox().await;
    for path in PATHS {
        let runtime = probe_runtime(&sandbox, path).await;
        let error = runtime.call(&request("hog", &[])).await.unwrap_err();
        let CallError::Trap(why) = &error else {
            panic!("{path:?}: {error:?}")
        };
        assert!(why.contains("memory"), "{why}");
        assert!(error.to_string().starts_with("the client component failed"), "{error}");
        still_serves(&runtime, &sandbox).await;
    }
}

#[tokio::test]
async fn a_component_that_panics_is_a_trap_and_nothing_else() {
    let sandbox = sandbox().await;
    for path in PATHS {
        let runtime = probe_runtime(&sandbox, path).await;
        let error = runtime.call(&request("panic", &[])).await.unwrap_err();
        assert!(matches!(error, CallError::Trap(_)), "{path:?}: {error:?}");
        still_serves(&runtime, &sandbox).await;
    }
}

/// On the codec path nothing is linked: an import the component calls
/// (here Rust's panic handler reading the environment) traps, and the
/// caller is told which.
#[tokio::test]
async fn on_the_codec_path_a_component_reaches_no_import() {
    let sandbox = sandbox().await;
    let runtime = probe_runtime(&sandbox, CallPath::Codec).await;
    let error = runtime.call(&request("panic", &[])).await.unwrap_err();
    let CallError::Trap(why) = &error else {
        panic!("{error:?}")
    };
    assert!(
        why.contains("wasi:cli/environment") && why.contains("not linked on the codec path"),
        "{why}"
    );
}

#[tokio::test]
async fn absurd_results_reach_the_caller_without_harming_the_host() {
    let sandbox = sandbox().await;
    let runtime = probe_runtime(&sandbox, CallPath::WasiHttp).await;
    // Well-typed nonsense is the caller's to judge; the host neither panics
    // nor trusts it for its own policies.
    let r = runtime.call(&request("garbage", &[])).await.unwrap();
    assert_eq!((r.status, r.request_id.map(|id| id.len())), (0, Some(4 << 20)));
    // The same from the codec's parse (after a request the host sent).
    let codec = probe_runtime(&sandbox, CallPath::Codec).await;
    let pings = format!("{}/pings", sandbox.base_url());
    let r = codec.call(&request("garbage", &[&pings])).await.unwrap();
    assert_eq!((r.status, r.request_id.map(|id| id.len())), (0, Some(4 << 20)));
    // A maintenance "ending" in u64::MAX seconds, claimed after a request to
    // an `insee` path: nothing overflows, and the provider's circuit (named
    // by the path the host saw) opens for the longest cool-down (12 h) at most.
    let insee = format!(
        "{}/v3/insee/sirene/unites_legales/552049447?context=a&recipient=13002526500013&object=b",
        sandbox.base_url()
    );
    let error = runtime
        .call(&request("garbage-maintenance", &[&insee]))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Client(_)), "{error:?}");
    let error = runtime.call(&request("probe", &[&insee])).await.unwrap_err();
    let CallError::CircuitOpen { retry_after, .. } = error else {
        panic!("{error:?}")
    };
    assert!(retry_after <= Duration::from_secs(12 * 3600), "{retry_after:?}");
    still_serves(&runtime, &sandbox).await;
}

/// A component from `wat` text, written to a file as an administrator would
/// install one.
fn component_file(name: &str, wat: &str) -> ComponentSource {
    let bytes = wat::parse_str(wat).expect("valid WAT");
    let path = std::env::temp_dir().join(format!("api-entreprise-{name}-{}.wasm", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    ComponentSource::File(path)
}

async fn refused(source: ComponentSource) -> String {
    let sandbox = sandbox().await;
    match builder(&sandbox).component(source).build().await {
        Err(e @ ConfigError::Contract { .. }) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn foreign_components_are_refused_with_what_is_wrong() {
    let why = refused(component_file("core", "(module)")).await;
    assert!(why.contains("core WebAssembly module, not a component"), "{why}");

    let path = std::env::temp_dir().join(format!("api-entreprise-html-{}.wasm", std::process::id()));
    std::fs::write(&path, "<html>404</html>").unwrap();
    let why = refused(ComponentSource::File(path)).await;
    assert!(why.contains("not WebAssembly"), "{why}");

    let why = refused(component_file("empty", "(component)")).await;
    assert!(
        why.contains("not an API Entreprise client: it exports nothing"),
        "{why}"
    );

    let why = refused(component_file(
        "v1",
        r#"(component
            (instance $i)
            (export "api-entreprise:client/catalogue@1.0.0" (instance $i))
            (export "api-entreprise:client/codec@1.0.0" (instance $i))
            (export "api-entreprise:client/client@1.0.0" (instance $i)))"#,
    ))
    .await;
    assert!(
        why.contains("implements api-entreprise:client@1.0.0") && why.contains("@0.2.x"),
        "{why}"
    );

    // A component that would read files: refused before it runs.
    let why = refused(component_file(
        "files",
        r#"(component
            (import "wasi:filesystem/preopens@0.2.0" (instance))
            (instance $i)
            (export "api-entreprise:client/catalogue@0.2.0" (instance $i))
            (export "api-entreprise:client/codec@0.2.0" (instance $i))
            (export "api-entreprise:client/json@0.2.0" (instance $i))
            (export "api-entreprise:client/client@0.2.0" (instance $i)))"#,
    ))
    .await;
    assert!(
        why.contains("imports wasi:filesystem/preopens@0.2.0, which this host does not offer"),
        "{why}"
    );
}

/// A server that answers every request with `answer`, which writes raw bytes.
async fn hostile_server<F, Fut>(answer: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = std::sync::Arc::clone(&answer);
            tokio::spawn(async move {
                // Read the request head, then misbehave.
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                answer(stream).await;
            });
        }
    });
    base
}

async fn write_then_close(mut stream: TcpStream, bytes: Vec<u8>) {
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

fn answer_200(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The real component against `base`, one Sirene call, which must fail.
async fn call_against(base: &str) -> CallError {
    call_on(base, CallPath::default()).await
}

/// The same on `path`.
async fn call_on(base: &str, path: CallPath) -> CallError {
    let runtime = RuntimeBuilder::new(base)
        .component(api_entreprise_tests::client_component())
        .call_path(path)
        .timeouts(CEILING, CEILING)
        .build()
        .await
        .expect("runtime");
    unhung(runtime.call(&request("insee_unites_legales", &["552049447"])))
        .await
        .expect_err("a hostile answer is an error")
}

fn client(error: &CallError) -> &types::Error {
    match error {
        CallError::Client(e) => &e.0,
        other => panic!("expected the component's typed error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_loris_body_is_cut_at_the_deadline() {
    let base = hostile_server(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{")
            .await;
        // One byte every 100 ms: never slow enough for a between-bytes
        // timeout, always too slow for the call.
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b" ").await.is_err() {
                return;
            }
        }
    })
    .await;
    let error = call_against(&base).await;
    assert!(matches!(error, CallError::Deadline(_)), "{error:?}");
}

#[tokio::test]
async fn a_silent_body_hits_the_between_bytes_timeout() {
    let base = hostile_server(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    // The between-bytes timeout (the ceiling) fires before the call's
    // deadline (the ceiling + 0.5 s). On the codec path the host reads the
    // body and knows it for a timeout; wasmtime-wasi-http 48 hands body
    // errors to the guest as text only (`http-error-code` finds no code),
    // hence a transport error that says so.
    let error = call_on(&base, CallPath::Codec).await;
    assert!(matches!(client(&error), types::Error::Timeout(_)), "{error:?}");
    let error = call_on(&base, CallPath::WasiHttp).await;
    assert!(
        matches!(client(&error), types::Error::Transport(m) if m.contains("read timeout")),
        "{error:?}"
    );
}

#[tokio::test]
async fn each_malformed_answer_is_a_typed_error_in_time() {
    let huge_header = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-junk: {}\r\ncontent-length: 2\r\n\r\n{{}}",
        "a".repeat(1 << 20)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated body",
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"data\":".to_vec(),
        ),
        (
            "invalid JSON",
            answer_200("application/json", b"{\"data\": {\"siren\": "),
        ),
        (
            "invalid UTF-8",
            answer_200("application/json", b"{\"data\": \"\xff\xfe\"}"),
        ),
        (
            "wrong content type",
            answer_200("text/html", b"<html><body>Bienvenue</body></html>"),
        ),
        (
            "a 200 carrying an error body",
            answer_200(
                "application/json",
                br#"{"errors":[{"code":"01000","title":"Erreur","detail":"Something failed"}]}"#,
            ),
        ),
        ("huge headers", huge_header.into_bytes()),
        (
            "a body past the cap",
            answer_200("application/json", &vec![b' '; (16 << 20) + 1024]),
        ),
        ("not HTTP at all", b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()),
        (
            "a redirect to another authority",
            b"HTTP/1.1 302 Found\r\nlocation: http://198.51.100.7/steal\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ),
    ];
    let mut seen = Vec::new();
    for (name, bytes) in cases {
        let base = hostile_server(move |stream| write_then_close(stream, bytes.clone())).await;
        for path in PATHS {
            let error = call_on(&base, path).await;
            let typed = client(&error);
            assert!(
                !matches!(typed, types::Error::InvalidInput(_) | types::Error::UnknownEndpoint(_)),
                "{name} ({path:?}): {typed:?}"
            );
            let message = error.to_string();
            assert!(!message.is_empty() && message.len() < 2000, "{name}: {message}");
            seen.push(format!("{name} ({path:?}): {message}"));
        }
    }
    println!("{}", seen.join("\n"));
}
