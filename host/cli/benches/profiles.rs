//! A software vendor's gateway: 1, 10, 100 and 1,000 profiles (one token
//! each) and as many applications, side by side in one run. For each: the
//! real `api-entreprise serve` process's start (from its spawn to its
//! listening line), its resident memory idle and after traffic, and p50 and
//! p99 at concurrency 16 with the calls spread across every application;
//! whether any profile ran without the instance pool (its warning on
//! standard error). In front of the sandbox in this process, the quotas and
//! the applications' fair shares in a real Redis (as a fleet keeps them),
//! then in the machine's state file, opened wide; the compiled client in one
//! cache filled before the first start (so that every start loads it, like
//! for like).
//!
//! `cargo bench -p api-entreprise-cli --bench profiles`

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use api_entreprise_sandbox::{Sandbox, SandboxConfig};
use common::{load, memory, ms};

const TRACE: &str = "context=bench&recipient=13002526500013&object=bench";
const UNLIMITED: u32 = 100_000_000;
const CALLS: usize = 4_000;

fn token(i: usize) -> String {
    format!("bench-token-{i:04}-not-a-secret")
}

fn key(i: usize) -> String {
    format!("bench-key-{i:04}-0000000000")
}

/// A gateway with `profiles` profiles and as many applications, one on
/// each; its URL, how long it took to listen, and where its standard error
/// went.
fn start(
    sandbox: &Sandbox,
    redis: Option<&api_entreprise_tests::RedisServer>,
    dir: &std::path::Path,
    profiles: usize,
) -> (std::process::Child, String, Duration, std::path::PathBuf) {
    let run = dir.join(format!("{profiles}-{}", redis.is_some()));
    std::fs::create_dir_all(&run).unwrap();
    let mut config = format!("base_url = \"{}\"\n", sandbox.base_url());
    for i in 0..profiles {
        config += &format!(
            "[profiles.p{i:04}]\ntoken_env = \"BENCH_TOKEN_{i}\"\nrate_limit_per_minute = {UNLIMITED}\n\
             [applications.a{i:04}]\nkey_sha256 = \"{}\"\nprofile = \"p{i:04}\"\n",
            api_entreprise_gateway::hash_key(&key(i))
        );
    }
    std::fs::write(run.join("gateway.toml"), config).unwrap();
    let stderr = run.join("stderr.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_api-entreprise"));
    command
        .args(["--ip-quota", &format!("{UNLIMITED}/1m")])
        .args(redis.map(|r| ["--redis-url".to_owned(), r.url()]).into_iter().flatten())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(run.join("gateway.toml"))
        .env("API_ENTREPRISE_STATE_DIR", run.join("state"))
        .env("API_ENTREPRISE_CACHE_DIR", dir.join("cache"))
        .env_remove("API_ENTREPRISE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    for i in 0..profiles {
        command.env(format!("BENCH_TOKEN_{i}"), token(i));
    }
    let started = Instant::now();
    let mut gateway = command.spawn().unwrap();
    let mut stdout = BufReader::new(gateway.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let took = started.elapsed();
    let url = line
        .trim()
        .strip_prefix("gateway listening on ")
        .unwrap_or_else(|| panic!("{line}: {}", std::fs::read_to_string(&stderr).unwrap_or_default()))
        .to_owned();
    // The audit trail: read and dropped, as a log collector would.
    std::thread::spawn(move || for _ in stdout.lines() {});
    (gateway, url, took, stderr)
}

#[tokio::main]
async fn main() {
    let redis = api_entreprise_tests::RedisServer::start();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sandbox.set_rate_limit(Some(UNLIMITED));
    for i in 0..1000 {
        sandbox.accept_token(&token(i));
    }
    let dir = tempfile::tempdir().unwrap();
    // Fills the compiled client's cache.
    let (mut first, ..) = start(&sandbox, Some(&redis), dir.path(), 1);
    let _ = first.kill();
    let _ = first.wait();
    let path = format!("/v3/insee/sirene/unites_legales/418166096?{TRACE}");
    println!(
        "| quotas in | profiles | start | RSS idle | RSS after {CALLS} calls (peak) | req/s | p50 | p99 | errors | profiles without the pool |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut base = None;
    for (store, redis) in [("Redis", Some(&redis)), ("the state file", None)] {
        for profiles in [1, 10, 100, 1000] {
            let (mut gateway, url, took, stderr) = start(&sandbox, redis, dir.path(), profiles);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (idle, _) = memory(gateway.id());
            let keys: Vec<String> = (0..profiles).map(key).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let url = format!("{url}{path}");
            load(&url, &keys, 16, 400).await;
            let f = load(&url, &keys, 16, CALLS).await;
            let (after, peak) = memory(gateway.id());
            let unpooled = std::fs::read_to_string(&stderr)
                .unwrap_or_default()
                .matches("no instance pool")
                .count();
            let base = *base.get_or_insert(idle);
            println!(
                "| {store} | {profiles} | {:.2} s | {idle:.1} MiB (+{:.1}) | {after:.1} MiB ({peak:.1}) | {:.0} | {} | {} | {} | {unpooled} |",
                took.as_secs_f64(),
                idle - base,
                f.throughput,
                ms(f.p50),
                ms(f.p99),
                f.errors
            );
            let _ = gateway.kill();
            let _ = gateway.wait();
        }
    }
}
