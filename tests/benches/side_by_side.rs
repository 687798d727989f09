//! Side by side, in one run, against the loopback sandbox:
//!
//! (a) a native Rust client doing the same work: the client crate compiled
//!     natively (validation, request building, parsing into the same
//!     records), sending over the host's own pooled sender;
//! (b) the component through the host on the `wasi:http` path (a fresh
//!     instance per call sends through `wasi:http`, each request under the
//!     policy, the quotas);
//! (c) the component through the host on the codec path, the default (a
//!     fresh instance with nothing linked prepares and parses, the host
//!     sends under the same policy).
//!
//! At concurrency 1, 8, 32 and 128, over plain HTTP and over TLS:
//! throughput, p50 and p99 latency and the ratios b/a and c/a; then the
//! peak resident memory of a process running each path at concurrency 128
//! (the bench runs itself once per path). Then the cost of an
//! instantiation, a cold start compiling versus loading from the cache, and
//! the guest's size.
//!
//! `cargo bench -p api-entreprise-tests --bench side_by_side`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use api_entreprise::{CallPath, Runtime, RuntimeBuilder, Sender, Token, types};
use api_entreprise_guest::codec::{self, Call};
use api_entreprise_guest::validate::Trace;
use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};
use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::RequestOptions;

const LEVELS: [usize; 4] = [1, 8, 32, 128];
const SIREN: &str = "552049447";
const UNLIMITED: u32 = 100_000_000;

fn requests_at(concurrency: usize) -> usize {
    600 + 120 * concurrency
}

/// Each cell's calls are made in this many rounds, the three paths taking
/// turns, so that a slow moment of the machine falls on all of them.
const ROUNDS: usize = 3;

fn trace() -> Trace {
    Trace {
        context: "aides publiques".into(),
        recipient: "13002526500013".into(),
        object: "dossier 42".into(),
        user_id: None,
    }
}

/// The call both paths make, as the native client describes it.
fn sirene_call() -> Call {
    Call {
        endpoint: "insee_unites_legales".into(),
        version: None,
        params: vec![SIREN.into()],
        query: vec![],
        trace: trace(),
    }
}

/// The native client: the same crate the component is built from.
struct Native {
    sender: Sender,
    base: String,
}

impl Native {
    async fn call(&self) -> Result<(), String> {
        let call = sirene_call();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (endpoint, prepared) = codec::prepare(&self.base, &call, now).map_err(|e| format!("{e:?}"))?;
        let mut request = http::Request::get(prepared.url());
        for (name, value) in &prepared.headers {
            request = request.header(name, value);
        }
        let request = request
            .header(http::header::AUTHORIZATION, format!("Bearer {DEFAULT_TOKEN}"))
            .body(api_entreprise::sender::empty_body())
            .unwrap();
        let timeout = Some(Duration::from_millis(prepared.timeout_ms.into()));
        let options = RequestOptions {
            connect_timeout: timeout,
            first_byte_timeout: timeout,
            between_bytes_timeout: timeout,
        };
        let response = self
            .sender
            .send(request, options)
            .await
            .map_err(|e| format!("{:?}", e.code))?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = Limited::new(response.into_body(), 16 << 20)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let parsed = api_entreprise_guest::response::parse(endpoint, status, &headers, &body, now)
            .map_err(|e| format!("{e:?}"))?;
        std::hint::black_box(parsed);
        Ok(())
    }
}

fn component_request() -> types::Request {
    api_entreprise_tests::request("insee_unites_legales", &[SIREN])
}

#[derive(Clone, Copy)]
enum Path<'a> {
    Native(&'a Native),
    Component(&'a Runtime),
}

impl Path<'_> {
    async fn call(self) -> Result<(), String> {
        match self {
            Path::Native(native) => native.call().await,
            Path::Component(runtime) => runtime
                .call(&component_request())
                .await
                .map(|r| {
                    std::hint::black_box(r);
                })
                .map_err(|e| e.to_string()),
        }
    }
}

struct Figures {
    throughput: f64,
    p50: Duration,
    p99: Duration,
}

/// One round's throughput and latencies.
struct Round {
    throughput: f64,
    latencies: Vec<Duration>,
}

impl Figures {
    /// The median round's throughput, and the percentiles of every call.
    fn of(mut rounds: Vec<Round>) -> Self {
        rounds.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
        let throughput = rounds[rounds.len() / 2].throughput;
        let mut latencies: Vec<Duration> = rounds.into_iter().flat_map(|r| r.latencies).collect();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Figures {
            throughput,
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// `total` calls from `concurrency` tasks; every call must succeed.
async fn run(path: Path<'static>, concurrency: usize, total: usize) -> Round {
    // Warm the pool and the caches first.
    for _ in 0..concurrency.min(16) {
        path.call().await.expect("warm-up call");
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                path.call().await.expect("benchmark call");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Round {
        throughput: total as f64 / started.elapsed().as_secs_f64(),
        latencies,
    }
}

async fn runtime_for(sandbox: &Sandbox, cache: Option<&std::path::Path>) -> Runtime {
    runtime_builder(sandbox, cache).build().await.expect("runtime")
}

fn runtime_builder(sandbox: &Sandbox, cache: Option<&std::path::Path>) -> RuntimeBuilder {
    let mut builder = RuntimeBuilder::new(sandbox.base_url())
        .component(api_entreprise_tests::client_component())
        .token(Token::new(DEFAULT_TOKEN).unwrap())
        .ip_quotas([format!("{UNLIMITED}/1m").parse().unwrap()])
        .token_rate_limit(UNLIMITED);
    if let Some(pem) = sandbox.ca_pem() {
        builder = builder.extra_ca(pem.as_bytes().to_vec());
    }
    if let Some(dir) = cache {
        builder = builder.cache_dir(dir);
    }
    builder
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// The peak resident memory of this process so far (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The three ways to make the call, by name.
const PATH_NAMES: [&str; 3] = ["native", "wasi:http", "codec"];

/// Run by the bench in a process of its own (`SIDE_BY_SIDE_RSS=NAME`): the
/// path `name` at concurrency 128 over plain HTTP, then its peak memory.
async fn rss_child(name: &str) {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    sandbox.set_rate_limit(Some(UNLIMITED));
    let call_path = if name == "wasi:http" {
        CallPath::WasiHttp
    } else {
        CallPath::Codec
    };
    let runtime: &'static Runtime = Box::leak(Box::new(
        runtime_builder(&sandbox, None)
            .call_path(call_path)
            .build()
            .await
            .expect("runtime"),
    ));
    let native: &'static Native = Box::leak(Box::new(Native {
        sender: runtime.sender().clone(),
        base: sandbox.base_url(),
    }));
    let path = if name == "native" {
        Path::Native(native)
    } else {
        Path::Component(runtime)
    };
    run(path, 128, requests_at(128)).await;
    println!("{:.1}", peak_rss_mib());
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a filter is not supported.
    if let Ok(name) = std::env::var("SIDE_BY_SIDE_RSS") {
        return rss_child(&name).await;
    }
    let cache = std::env::temp_dir().join(format!("api-entreprise-bench-{}", std::process::id()));
    println!(
        "| transport | concurrency | (a) native req/s | (b) wasi:http req/s | b/a | (c) codec req/s | c/a | \
         native p50 | wasi:http p50 (Δ) | codec p50 (Δ) | native p99 | wasi:http p99 | codec p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // SIDE_BY_SIDE_QUICK=1 skips the throughput table (for profiling the rest).
    // SIDE_BY_SIDE_QUICK=latency: the concurrency-1 row over HTTP only
    // (with TOKIO_WORKER_THREADS=1, the latency without handing each call
    // between two worker threads).
    let quick = std::env::var_os("SIDE_BY_SIDE_QUICK").is_some();
    let latency_only = std::env::var("SIDE_BY_SIDE_QUICK").as_deref() == Ok("latency");
    let transports: &[bool] = match (quick, latency_only) {
        (_, true) => &[false],
        (true, false) => &[],
        (false, false) => &[false, true],
    };
    let levels: &[usize] = if latency_only { &[1] } else { &LEVELS };
    for &tls in transports {
        let sandbox = Sandbox::start(SandboxConfig {
            tls,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox");
        sandbox.set_rate_limit(Some(UNLIMITED));
        let wasi: &'static Runtime = Box::leak(Box::new(
            runtime_builder(&sandbox, Some(&cache))
                .call_path(CallPath::WasiHttp)
                .build()
                .await
                .expect("runtime"),
        ));
        let codec: &'static Runtime = Box::leak(Box::new(runtime_for(&sandbox, Some(&cache)).await));
        assert_eq!(codec.call_path(), CallPath::Codec, "the default");
        let native: &'static Native = Box::leak(Box::new(Native {
            sender: codec.sender().clone(),
            base: sandbox.base_url(),
        }));
        for &concurrency in levels {
            let per_round = requests_at(concurrency) / ROUNDS;
            let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                a.push(run(Path::Native(native), concurrency, per_round).await);
                b.push(run(Path::Component(wasi), concurrency, per_round).await);
                c.push(run(Path::Component(codec), concurrency, per_round).await);
            }
            let (a, b, c) = (Figures::of(a), Figures::of(b), Figures::of(c));
            println!(
                "| {} | {concurrency} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {} | {} (+{}) | {} (+{}) | {} | {} | {} |",
                if tls { "TLS" } else { "HTTP" },
                a.throughput,
                b.throughput,
                b.throughput / a.throughput,
                c.throughput,
                c.throughput / a.throughput,
                micros(a.p50),
                micros(b.p50),
                micros(b.p50.saturating_sub(a.p50)),
                micros(c.p50),
                micros(c.p50.saturating_sub(a.p50)),
                micros(a.p99),
                micros(b.p99),
                micros(c.p99),
            );
        }
        if tls {
            println!(
                "\nTLS: {} connections accepted and {} handshakes for all of the above ({} calls)",
                sandbox.connections(),
                sandbox.handshakes(),
                sandbox.received()
            );
        }
    }
    if latency_only {
        return;
    }
    if !quick {
        let me = std::env::current_exe().expect("the bench's own path");
        let peaks: Vec<String> = PATH_NAMES
            .iter()
            .map(|name| {
                let out = std::process::Command::new(&me)
                    .env("SIDE_BY_SIDE_RSS", name)
                    .output()
                    .expect("running the bench again");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                format!("{name} {} MiB", String::from_utf8_lossy(&out.stdout).trim())
            })
            .collect();
        println!(
            "\npeak resident memory, a process of its own running {} calls at concurrency 128 over HTTP (sandbox included): {}",
            requests_at(128),
            peaks.join(", ")
        );
    }

    // SIDE_BY_SIDE_QUICK=call (or =prepare, =native): only calls (or
    // prepares) through the component, or native calls, in a loop, for a
    // profiler.
    let only = std::env::var("SIDE_BY_SIDE_QUICK");
    if matches!(only.as_deref(), Ok("call" | "prepare" | "native")) {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
        sandbox.set_rate_limit(Some(UNLIMITED));
        let runtime: &'static Runtime = Box::leak(Box::new(runtime_for(&sandbox, None).await));
        if only.as_deref() == Ok("prepare") {
            let request = component_request();
            for _ in 0..20_000 {
                std::hint::black_box(runtime.prepare(&request).await.unwrap());
            }
            return;
        }
        let native: &'static Native = Box::leak(Box::new(Native {
            sender: runtime.sender().clone(),
            base: sandbox.base_url(),
        }));
        let path = if only.as_deref() == Ok("call") {
            Path::Component(runtime)
        } else {
            Path::Native(native)
        };
        // As the throughput table runs them: 32 tasks.
        run(path, 32, 40_000).await;
        return;
    }

    // Instantiation: a fresh instance in a fresh store, as every call makes,
    // from the pooling allocator (the default) and mapped afresh.
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let on_demand = runtime_builder(&sandbox, Some(&cache))
        .pooling(false)
        .build()
        .await
        .unwrap();
    let runtime = runtime_for(&sandbox, Some(&cache)).await;
    let wasi = runtime_builder(&sandbox, Some(&cache))
        .call_path(CallPath::WasiHttp)
        .build()
        .await
        .unwrap();
    for (name, runtime) in [
        ("codec path (nothing linked), pooling allocator", &runtime),
        ("codec path, on-demand allocator", &on_demand),
        ("wasi:http path (WASI context and linker), pooling allocator", &wasi),
    ] {
        let mut costs = Vec::new();
        for _ in 0..2000 {
            costs.push(runtime.instantiation_cost().await.unwrap());
        }
        costs.sort();
        println!(
            "instantiation (fresh store + instance + drop), {name}: p50 {}, p99 {}",
            micros(costs[costs.len() / 2]),
            micros(costs[costs.len() * 99 / 100])
        );
    }

    // Where the component's time goes: its two pure phases, each in a fresh
    // instance, next to the same code compiled natively.
    let call = sirene_call();
    let base = sandbox.base_url();
    let (status, headers, body) = {
        let prepared = codec::prepare(&base, &call, 0).unwrap().1;
        let (status, headers, body) = api_entreprise_tests::raw_get(&prepared.url(), Some(DEFAULT_TOKEN)).await;
        (status, headers, body)
    };
    let request = component_request();
    let prepared = runtime.prepare(&request).await.unwrap();
    let text = String::from_utf8_lossy(&body).into_owned();
    let n = 2000u32;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed() / n
    };
    let native_prepare = time(&mut || {
        std::hint::black_box(codec::prepare(&base, &call, 0).unwrap());
    });
    let native_parse = time(&mut || {
        std::hint::black_box(codec::parse("insee_unites_legales", 4, status, &headers, &body, 0).unwrap());
    });
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(runtime.prepare(&request).await.unwrap());
    }
    let component_prepare = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(runtime.parse(&prepared, status, &headers, &text).await.unwrap());
    }
    let component_parse = t.elapsed() / n;
    println!(
        "prepare (validate + build): native {}, component {} (instantiation included)",
        micros(native_prepare),
        micros(component_prepare)
    );
    println!(
        "parse ({} bytes of answer): native {}, component {} (instantiation included)",
        body.len(),
        micros(native_parse),
        micros(component_parse)
    );

    // Start: compiling versus loading the compiled form from the cache.
    let mut compiled = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&cache);
        let t = Instant::now();
        let r = runtime_for(&sandbox, Some(&cache)).await;
        compiled.push(t.elapsed());
        assert_eq!(r.component_origin(), api_entreprise::ComponentOrigin::Compiled);
        let t = Instant::now();
        let r = runtime_for(&sandbox, Some(&cache)).await;
        cached.push(t.elapsed());
        assert_eq!(r.component_origin(), api_entreprise::ComponentOrigin::Cached);
    }
    compiled.sort();
    cached.sort();
    println!(
        "start (RuntimeBuilder::build, median of 3): compiling {:.1} ms, from the cache {:.1} ms ({:.0}× faster)",
        compiled[1].as_secs_f64() * 1e3,
        cached[1].as_secs_f64() * 1e3,
        compiled[1].as_secs_f64() / cached[1].as_secs_f64()
    );

    // A hot swap (to the testing-next build, not in the cache) beside a
    // start that compiles: what replacing the client costs a running host.
    let mut swaps = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&cache);
        let r = runtime_for(&sandbox, Some(&cache)).await;
        let next = api_entreprise::ComponentSource::File(api_entreprise_component::CLIENT_NEXT_PATH.into());
        let t = Instant::now();
        let report = r.swap(&next, false).await.expect("the testing-next build swaps in");
        swaps.push((t.elapsed(), report.timings));
    }
    swaps.sort_by_key(|(total, _)| *total);
    let (total, timings) = swaps[1];
    println!(
        "swap (Runtime::swap, median of 3): {:.1} ms (read {:.2} ms, compile {:.1} ms, canary of 376 cases {:.1} ms, \
         switch {:.1} µs), {:.2}× a start that compiles; the serving version answers throughout",
        total.as_secs_f64() * 1e3,
        timings.load.read.as_secs_f64() * 1e3,
        timings.load.compile.as_secs_f64() * 1e3,
        timings.canary.as_secs_f64() * 1e3,
        timings.switch.as_secs_f64() * 1e6,
        total.as_secs_f64() / compiled[1].as_secs_f64()
    );
    println!("guest component: {} bytes", api_entreprise_component::CLIENT.len());
    let _ = std::fs::remove_dir_all(&cache);
}
