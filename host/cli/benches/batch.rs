//! `api-entreprise batch` side by side with a shell loop around `call`, in
//! one run, against the sandbox in this process: under a per-IP quota that
//! decides the pace, then with none in the way; then the resident memory of
//! a batch of 10^5 and of 10^6 rows.
//!
//! `cargo bench -p api-entreprise-cli --bench batch` (about 2 minutes).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};

/// The quota both run under first: 40 calls in any 10 s, a ceiling of 4 a
/// second (the host keeps each window 0.5 s wider: 3.8 a second at length).
const QUOTA: &str = "40/10s";
const BURST: u64 = 40;
const CEILING: f64 = 4.0;
const ROWS: u64 = 120;

/// A 14-digit number from a 13-digit stem, valid (`true`) or not.
fn siret(stem: u64, valid: bool) -> String {
    let digits = format!("{stem:013}");
    let luhn = |s: &str| {
        s.chars()
            .rev()
            .enumerate()
            .map(|(i, c)| {
                let d = c.to_digit(10).unwrap_or(0) * if i % 2 == 1 { 2 } else { 1 };
                if d > 9 { d - 9 } else { d }
            })
            .sum::<u32>()
            .is_multiple_of(10)
    };
    (0..10)
        .map(|c| format!("{digits}{c}"))
        .find(|s| luhn(s) == valid)
        .unwrap_or_default()
}

fn command(sandbox: &Sandbox, dir: &Path) -> Command {
    in_env(Command::new(env!("CARGO_BIN_EXE_api-entreprise")), sandbox, dir)
}

use api_entreprise_tests::against_sandbox as in_env;

const TRACE: [&str; 6] = [
    "--context",
    "aides",
    "--recipient",
    "13002526500013",
    "--object",
    "bench",
];

/// The peak resident memory of `child` (VmHWM), read until it exits.
fn peak_rss(mut child: std::process::Child) -> f64 {
    let mut peak = 0.0;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        if let Some(kb) = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
        {
            peak = kb / 1024.0;
        }
        if child.try_wait().ok().flatten().is_some() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::main]
async fn main() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    sandbox.set_rate_limit(Some(100_000_000));
    let dir = std::env::temp_dir().join(format!("api-entreprise-batch-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("rows.csv");
    let sirets: Vec<String> = (0..300).map(|i| siret(5_000_000 + i, true)).collect();
    // The compiled component in the cache first, for both.
    command(&sandbox, &dir).arg("endpoints").output().unwrap();

    // The token's own limit out of the way (a profile with
    // `rate_limit_per_minute`), so that the per-IP quota given decides.
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "base_url = \"{}\"\n[profiles.bench]\ntoken_env = \"BENCH_TOKEN\"\nrate_limit_per_minute = 100000000\n",
            sandbox.base_url()
        ),
    )
    .unwrap();
    let profile = ["--config", config.to_str().unwrap(), "--profile", "bench"];
    let mut sent = 0;
    for (quota, ceiling, rows) in [(QUOTA, Some(CEILING), ROWS), ("100000000/1m", None, 300)] {
        let list = &sirets[..rows as usize];
        std::fs::write(&csv, format!("siret\n{}\n", list.join("\n"))).unwrap();
        std::fs::write(dir.join("sirets.txt"), list.join("\n") + "\n").unwrap();
        let run_dir = dir.join(format!("run-{sent}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let started = Instant::now();
        let out = command(&sandbox, &run_dir.join("batch"))
            .env("BENCH_TOKEN", DEFAULT_TOKEN)
            .args(profile)
            .args(["--ip-quota", quota, "batch"])
            .arg(&csv)
            .arg("-o")
            .arg(run_dir.join("out.jsonl"))
            .args(["--endpoint", "insee_etablissements"])
            .args(TRACE)
            .output()
            .unwrap();
        let batch = started.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // A careful loop: a call refused for want of a quota slot (nothing
        // sent) is tried again a second later.
        let script = format!(
            "while read -r siret; do until \"$0\" {} --ip-quota {quota} call insee_etablissements \"$siret\" {} \
             >/dev/null 2>&1; do sleep 1; done; done",
            profile.map(|t| format!("'{t}'")).join(" "),
            TRACE.map(|t| format!("'{t}'")).join(" ")
        );
        let started = Instant::now();
        let status = in_env(Command::new("bash"), &sandbox, &run_dir.join("loop"))
            .env("BENCH_TOKEN", DEFAULT_TOKEN)
            .arg("-c")
            .arg(&script)
            .arg(env!("CARGO_BIN_EXE_api-entreprise"))
            .stdin(std::fs::File::open(dir.join("sirets.txt")).unwrap())
            .status()
            .unwrap();
        let shell_loop = started.elapsed();
        assert!(status.success(), "the shell loop failed");
        sent += 2 * rows;
        assert_eq!(sandbox.requests().len() as u64, sent, "every row once from each");
        let rate = |d: Duration| rows as f64 / d.as_secs_f64();
        // A quota lets its first window's calls go at once: the pace
        // against the ceiling is that of the rows after the burst.
        let share = |d: Duration| {
            ceiling.map_or(String::new(), |c| {
                let steady = (rows - BURST) as f64 / d.as_secs_f64();
                format!(
                    "; after the first window's {BURST}, {steady:.2} rows/s = {:.0}% of the ceiling",
                    100.0 * steady / c
                )
            })
        };
        println!(
            "{rows} rows of insee_etablissements, per-IP quota {quota}{}:",
            ceiling.map_or(" (none in the way)".to_owned(), |c| format!(" (ceiling {c}/s)"))
        );
        println!(
            "  batch:                 {:.1} s, {:.2} rows/s{}",
            batch.as_secs_f64(),
            rate(batch),
            share(batch)
        );
        println!(
            "  shell loop of `call`:  {:.1} s, {:.2} rows/s{}",
            shell_loop.as_secs_f64(),
            rate(shell_loop),
            share(shell_loop)
        );
        println!("  batch / loop:          {:.2}×", rate(batch) / rate(shell_loop));
    }
    // The cache the first command filled: the peak is the batch's, not a
    // compilation's.
    let batch_dir = dir.clone();

    // Memory: rows the component refuses (a SIRET that fails the Luhn
    // check), so that a million go through in a minute; each still makes a
    // call into the component and a line of output.
    for count in [100_000u64, 1_000_000] {
        let input = dir.join(format!("invalid-{count}.csv"));
        let mut text = String::from("siret\n");
        for i in 0..count {
            text += &siret(6_000_000 + i, false);
            text.push('\n');
        }
        std::fs::write(&input, text).unwrap();
        let output = dir.join(format!("invalid-{count}.jsonl"));
        let started = Instant::now();
        let child = command(&sandbox, &batch_dir)
            .args(["--ip-quota", "100000000/1m", "batch"])
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .args(["--endpoint", "insee_etablissements"])
            .args(TRACE)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let peak = peak_rss(child);
        println!(
            "  {count:>9} rows refused by the component: {:.1} s, peak resident memory {peak:.1} MiB",
            started.elapsed().as_secs_f64()
        );
        let _ = std::fs::remove_file(&output);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
