//! The gateway under load, side by side with the sandbox called directly,
//! in one run: a fixed number of Sirene calls at concurrency 1, 16 and 64
//! from this program's own client (hyper, pooled keep-alive connections),
//! throughput, p50, p99 and errors for each, and the gateway's resident
//! memory. The gateway is the real `api-entreprise serve` process, in front
//! of the sandbox in this process, with its quotas in a real Redis (as a
//! fleet keeps them); they are opened wide (a profile with
//! `rate_limit_per_minute`, a wide `--ip-quota`) so that the figures measure
//! the path, not the quota. Then the dashboard's cost: two gateways, its
//! bookkeeping off and on, taking turns under the same load.
//!
//! `cargo bench -p api-entreprise-cli --bench gateway`

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};
use common::{load, memory, ms};

const KEY: &str = "bench-key-0000000000";
const TRACE: &str = "context=bench&recipient=13002526500013&object=bench";
const UNLIMITED: u32 = 100_000_000;

/// A gateway process in front of `sandbox`, its quotas in `redis`, with
/// its dashboard on (sampling the quota store every second, as it does
/// when its metrics listener is set) or off; and its URL.
fn start_gateway(
    sandbox: &Sandbox,
    redis: &api_entreprise_tests::RedisServer,
    dashboard: bool,
) -> (std::process::Child, String) {
    let dir = std::env::temp_dir().join(format!(
        "api-entreprise-gateway-bench-{}-{dashboard}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "base_url = \"{}\"\nmetrics_listen = \"127.0.0.1:0\"\n[dashboard]\nenabled = {dashboard}\n\
             [profiles.bench]\ntoken_env = \"BENCH_TOKEN\"\nrate_limit_per_minute = {UNLIMITED}\n\
             [applications.bench]\nkey_sha256 = \"{}\"\nprofile = \"bench\"\n",
            sandbox.base_url(),
            api_entreprise_gateway::hash_key(KEY)
        ),
    )
    .unwrap();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_api-entreprise"))
        .args(["--ip-quota", &format!("{UNLIMITED}/1m"), "--redis-url", &redis.url()])
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("BENCH_TOKEN", DEFAULT_TOKEN)
        .env("API_ENTREPRISE_STATE_DIR", dir.join("state"))
        // One compiled-component cache for all: the first gateway compiles,
        // the others load (their memory is then compared like for like).
        .env(
            "API_ENTREPRISE_CACHE_DIR",
            std::env::temp_dir().join(format!("api-entreprise-gateway-bench-{}-cache", std::process::id())),
        )
        .env_remove("API_ENTREPRISE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(gateway.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("gateway listening on ").unwrap().to_owned();
    // The audit trail: read and dropped, as a log collector would.
    std::thread::spawn(move || for _ in stdout.lines() {});
    (gateway, url)
}

#[tokio::main]
async fn main() {
    let redis = api_entreprise_tests::RedisServer::start();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sandbox.set_rate_limit(Some(UNLIMITED));
    let (mut gateway, gateway_url) = start_gateway(&sandbox, &redis, true);
    let path = format!("/v3/insee/sirene/unites_legales/552049447?{TRACE}");
    let direct = format!("{}{path}", sandbox.base_url());
    let through = format!("{gateway_url}{path}");
    let (rss, _) = memory(gateway.id());
    println!("gateway resident memory at start: {rss:.1} MiB\n");
    println!(
        "| concurrency | requests | sandbox directly: req/s, p50, p99, errors | through the gateway: req/s, p50, p99, errors | throughput ratio | gateway RSS (peak) |"
    );
    println!("|---|---|---|---|---|---|");
    for concurrency in [1, 16, 64] {
        let total = 2_000 + 100 * concurrency;
        load(&through, &[KEY], concurrency, 200).await;
        let a = load(&direct, &[DEFAULT_TOKEN], concurrency, total).await;
        let b = load(&through, &[KEY], concurrency, total).await;
        let (rss, peak) = memory(gateway.id());
        println!(
            "| {concurrency} | {total} | {:.0}, {}, {}, {} | {:.0}, {}, {}, {} | {:.2}× | {rss:.1} MiB ({peak:.1}) |",
            a.throughput,
            ms(a.p50),
            ms(a.p99),
            a.errors,
            b.throughput,
            ms(b.p50),
            ms(b.p99),
            b.errors,
            b.throughput / a.throughput
        );
    }
    let _ = gateway.kill();
    let _ = gateway.wait();

    // The dashboard's cost: two gateways, its bookkeeping off and on, taking
    // turns (off, on, off, on) at concurrency 16.
    let (off, off_url) = start_gateway(&sandbox, &redis, false);
    let (on, on_url) = start_gateway(&sandbox, &redis, true);
    let (off_url, on_url) = (format!("{off_url}{path}"), format!("{on_url}{path}"));
    load(&off_url, &[KEY], 16, 500).await;
    load(&on_url, &[KEY], 16, 500).await;
    println!("\n| dashboard | requests | req/s | p50 | p99 | errors | RSS (peak) |");
    println!("|---|---|---|---|---|---|---|");
    let (mut sum_off, mut sum_on) = (0.0, 0.0);
    for round in 1..=2 {
        for (name, url, child) in [("off", &off_url, &off), ("on", &on_url, &on)] {
            let f = load(url, &[KEY], 16, 5_000).await;
            let (rss, peak) = memory(child.id());
            println!(
                "| {name} (round {round}) | 5000 | {:.0} | {} | {} | {} | {rss:.1} MiB ({peak:.1}) |",
                f.throughput,
                ms(f.p50),
                ms(f.p99),
                f.errors
            );
            if name == "off" {
                sum_off += f.throughput
            } else {
                sum_on += f.throughput
            }
        }
    }
    println!("\nthroughput with the dashboard on / off: {:.3}×", sum_on / sum_off);
    for mut child in [off, on] {
        let _ = child.kill();
        let _ = child.wait();
    }
}
