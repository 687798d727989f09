//! `api-entreprise batch` as an operator runs it: real processes against
//! the sandbox (in this process), over real HTTP: the quota's pace and
//! never over it, `kill -9` then resume with every row exactly once, bad
//! rows answered without stopping the batch, the time window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use api_entreprise_sandbox::Sandbox;
use serde_json::Value;

/// A SIRET that passes the Luhn check, from a 13-digit stem.
fn siret(stem: u64) -> String {
    let digits = format!("{stem:013}");
    for check in 0..10 {
        let candidate = format!("{digits}{check}");
        let sum: u32 = candidate
            .chars()
            .rev()
            .enumerate()
            .map(|(i, c)| {
                let d = c.to_digit(10).unwrap();
                if i % 2 == 1 {
                    let d = d * 2;
                    if d > 9 { d - 9 } else { d }
                } else {
                    d
                }
            })
            .sum();
        if sum.is_multiple_of(10) {
            return candidate;
        }
    }
    unreachable!("one check digit fits")
}

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("api-entreprise-batch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `batch` against `sandbox`, with its token, the state in `dir`.
fn batch(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Command {
    let mut command = host(sandbox, dir);
    command.arg("batch").args(args).args(api_entreprise_tests::TRACE_ARGS);
    command
}

/// `batch INPUT -o OUTPUT --endpoint insee_etablissements EXTRA…`, as
/// [`batch`] runs it.
fn etablissements(sandbox: &Sandbox, dir: &Path, input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut args = vec![
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--endpoint",
        "insee_etablissements",
    ];
    args.extend_from_slice(extra);
    batch(sandbox, dir, &args)
}

/// The command against `sandbox`, with its token, the state in `dir`.
fn host(sandbox: &Sandbox, dir: &Path) -> Command {
    api_entreprise_tests::against_sandbox(Command::new(env!("CARGO_BIN_EXE_api-entreprise")), sandbox, dir)
}

fn sirets_csv(dir: &Path, count: u64) -> PathBuf {
    let path = dir.join("in.csv");
    let mut text = "siret,nom\n".to_owned();
    for i in 0..count {
        text += &format!("{},entreprise {i}\n", siret(1_000_000 + i));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// How many lines each row has.
fn per_row(lines: &[Value]) -> BTreeMap<u64, usize> {
    let mut rows = BTreeMap::new();
    for line in lines {
        *rows.entry(line["row"].as_u64().unwrap()).or_default() += 1;
    }
    rows
}

/// Puts the compiled component in `dir`'s cache: a test whose injected
/// clock starts when the command does must not spend its seconds compiling.
async fn warm_cache(sandbox: &Sandbox, dir: &Path) {
    let mut warm = host(sandbox, dir);
    let warmed = tokio::task::spawn_blocking(move || warm.arg("endpoints").output().unwrap())
        .await
        .unwrap();
    assert!(warmed.status.success(), "{}", text(&warmed));
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_at_the_quotas_pace_and_never_over_it() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000));
    let dir = dir("pace");
    let input = sirets_csv(&dir, 200);
    let output = dir.join("out.jsonl");
    let mut command = etablissements(&sandbox, &dir, &input, &output, &["--ip-quota", "50/5s"]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let report = text(&out);
    eprintln!("{report}");
    // The sandbox answers an unknown SIRET with its example: found.
    assert!(out.status.success(), "{report}");
    let lines = lines(&output);
    assert_eq!(per_row(&lines), (1..=200).map(|r| (r, 1)).collect());
    assert!(lines.iter().all(|l| l["outcome"] == "found"), "not all found");

    // At the sandbox: every row once, no 429, never more than 50 in 5 s.
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 200);
    assert!(requests.iter().all(|r| r.status != 429));
    let times: Vec<u64> = requests.iter().map(|r| r.at_unix_ms).collect();
    let worst = api_entreprise_tests::worst_window(&times, 5_000);
    assert!(worst <= 50, "a 5 s window held {worst}");
    // The pace: at least 95 % of the quota's (10 calls a second).
    let effective: f64 = report
        .split("calls/s against")
        .next()
        .and_then(|s| s.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rate in:\n{report}"));
    assert!(effective >= 9.5, "{effective} calls/s for a quota of 10/s");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_then_resume_answers_every_row_exactly_once() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000));
    let dir = dir("resume");
    const ROWS: u64 = 150;
    let input = sirets_csv(&dir, ROWS);
    // One row in ten fails at the API, each time: the retry file must list
    // each of them once at the end, whatever the kills did.
    let failing: std::collections::BTreeSet<String> = (0..ROWS)
        .filter(|i| i % 10 == 3)
        .map(|i| siret(1_000_000 + i))
        .collect();
    sandbox.set_failing(failing.iter().cloned().collect());
    let output = dir.join("out.jsonl");
    let args = [
        input.to_str().unwrap().to_owned(),
        "-o".into(),
        output.to_str().unwrap().to_owned(),
        "--endpoint".into(),
        "insee_etablissements".into(),
        "--ip-quota".into(),
        "40/1s".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Kill points from a seed that the failure message shows.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        300 + (state >> 33) % 1200
    };
    let mut kills = 0;
    for _ in 0..4 {
        let mut child = batch(&sandbox, &dir, &args)
            .env("API_ENTREPRISE_RETRIES", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(next())).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    let mut last = batch(&sandbox, &dir, &args);
    last.env("API_ENTREPRISE_RETRIES", "1");
    let out = tokio::task::spawn_blocking(move || last.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "seed {seed}: rows failed: {}", text(&out));
    let retry: Vec<String> = self::lines(&dir.join("out.jsonl.retry.jsonl"))
        .iter()
        .map(|l| l["params"][0].as_str().unwrap_or_default().to_owned())
        .collect();
    let listed: std::collections::BTreeSet<String> = retry.iter().cloned().collect();
    assert_eq!(
        retry.len(),
        failing.len(),
        "seed {seed}: each failed row once in the retry file: {retry:?}"
    );
    assert_eq!(
        listed, failing,
        "seed {seed}: the retry file lists the rows that failed"
    );
    let lines = lines(&output);
    let rows = per_row(&lines);
    let duplicates = rows.values().filter(|n| **n > 1).count();
    let lost = (1..=ROWS).filter(|r| !rows.contains_key(r)).count();
    let sent = sandbox.requests().len();
    eprintln!(
        "{ROWS} rows, {kills} kill -9, {duplicates} duplicate lines, {lost} lost, {sent} requests sent (seed {seed})"
    );
    assert_eq!((duplicates, lost), (0, 0), "seed {seed}");
    assert_eq!(lines.len() as u64, ROWS, "seed {seed}");
    // A row is sent again only if it was in flight when killed (a failing
    // row twice each time: one retry).
    assert!(
        sent <= ROWS as usize + failing.len() + kills * 32,
        "seed {seed}: {sent} requests for {ROWS} rows and {kills} kills"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_answered_with_their_errors_and_the_batch_goes_on() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = dir("bad");
    let input = dir.join("in.csv");
    let mut bytes = b"siret,recipient\n".to_vec();
    bytes.extend(b"55204944776279,13002526500013\n"); // 1: found
    bytes.extend(b"12345678901234,13002526500013\n"); // 2: not a SIRET (00302)
    bytes.extend(b"55204944776279\n"); // 3: no recipient column
    bytes.extend(b"55204944776279, \n"); // 4: a blank recipient (00203)
    bytes.extend(b"5520494477\xff6279,13002526500013\n"); // 5: not UTF-8
    bytes.extend(b"55204944776279,13002526500013\n"); // 6: the same as row 1
    bytes.extend(format!("{},13002526500013\n", siret(42)).as_bytes()); // 7: the sandbox's example
    std::fs::write(&input, bytes).unwrap();
    let output = dir.join("out.jsonl");
    let mut command = etablissements(&sandbox, &dir, &input, &output, &["--recipient-column", "recipient"]);
    let out = command.output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("found 2 · not found 0 · refused locally 4"), "{report}");
    let by_row: BTreeMap<u64, Value> = lines(&output)
        .into_iter()
        .map(|l| (l["row"].as_u64().unwrap(), l))
        .collect();
    assert_eq!(by_row.keys().copied().collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    assert_eq!(by_row[&1]["outcome"], "found");
    assert_eq!(by_row[&1]["data"]["siret"], "55204944776279");
    assert_eq!(by_row[&2]["error"]["codes"], serde_json::json!(["00302"]));
    assert_eq!(by_row[&3]["error"]["kind"], "input");
    assert!(
        by_row[&3]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no column `recipient`")
    );
    assert_eq!(by_row[&4]["error"]["codes"], serde_json::json!(["00203"]));
    assert_eq!(by_row[&5]["error"]["kind"], "input");
    assert_eq!(by_row[&6]["same_as"], 1);
    assert_eq!(by_row[&7]["outcome"], "found");
    // Only rows 1 and 7 were sent.
    assert_eq!(sandbox.requests().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_window_a_batch_pauses_says_until_when_and_resumes_by_itself() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = dir("window");
    let input = sirets_csv(&dir, 5);
    let output = dir.join("out.jsonl");
    warm_cache(&sandbox, &dir).await;
    // The injected clock: 19:59:55 in Paris (UTC+1 in winter), 5 s before
    // the window opens.
    let mut command = etablissements(&sandbox, &dir, &input, &output, &["--between", "20:00-07:00"]);
    command.env("API_ENTREPRISE_BATCH_CLOCK", "2026-11-30T18:59:55Z");
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let waited = started.elapsed();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("paused until 20:00 Europe/Paris"), "{report}");
    assert!(waited >= std::time::Duration::from_secs(2), "{waited:?}");
    assert_eq!(lines(&output).len(), 5);
    assert_eq!(sandbox.requests().len(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A call that waits for its quota slot past the window's end does not
/// leave: `--between` holds when a request leaves, not only when its row
/// is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_waited_past_the_end_of_its_window_does_not_leave() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = dir("window-end");
    let input = sirets_csv(&dir, 3);
    let output = dir.join("out.jsonl");
    warm_cache(&sandbox, &dir).await;
    // 06:59:55 in Paris, 5 s before the window closes (room for a slow
    // start); one call every 6 s: the second row's slot frees after 07:00.
    let mut command = etablissements(
        &sandbox,
        &dir,
        &input,
        &output,
        &["--between", "20:00-07:00", "--ip-quota", "1/6s", "--jobs", "2"],
    );
    command
        .env("API_ENTREPRISE_BATCH_CLOCK", "2026-11-30T05:59:55Z")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(still_running, "the batch waits for its window to open again");
    assert_eq!(
        sandbox.requests().len(),
        1,
        "only the request that left before 07:00 arrived: {:?}",
        sandbox.requests().iter().map(|r| r.path.clone()).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_in_maintenance_pauses_the_batch_instead_of_burning_its_rows() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000));
    let dir = dir("maintenance");
    let input = sirets_csv(&dir, 40);
    let output = dir.join("out.jsonl");
    let mut warm = host(&sandbox, &dir);
    let warmed = tokio::task::spawn_blocking(move || warm.arg("endpoints").output().unwrap())
        .await
        .unwrap();
    assert!(warmed.status.success(), "{}", text(&warmed));
    // The provider answers 503 with `retry_in` for the next 3 s: its
    // circuit opens until then, and the rows wait rather than fail.
    sandbox.set_maintenance(Some(std::time::Duration::from_secs(3)));
    let mut command = etablissements(&sandbox, &dir, &input, &output, &["--ip-quota", "100000/1m"]);
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "{report}");
    let lines = lines(&output);
    assert_eq!(per_row(&lines), (1..=40).map(|r| (r, 1)).collect());
    assert!(lines.iter().all(|l| l["outcome"] == "found"), "{report}");
    // Few requests met the maintenance: the circuit held the rest back.
    let refused = sandbox.requests().iter().filter(|r| r.status == 503).count();
    assert!(refused <= 16, "{refused} requests met the maintenance:\n{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_cannot_start_says_why_and_sends_nothing() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = dir("cannot");
    let input = sirets_csv(&dir, 3);
    let input = input.to_str().unwrap();
    let output = dir.join("out.jsonl");
    let output = output.to_str().unwrap();
    for (args, expected) in [
        (vec![input, "-o", output], "a CSV input needs --endpoint"),
        (vec![input, "-o", output, "--endpoint", "nope"], "no endpoint `nope`"),
        (
            vec![
                input,
                "-o",
                output,
                "--endpoint",
                "insee_etablissements",
                "--column",
                "numero",
            ],
            "the CSV has no column `numero` (its columns: siret, nom)",
        ),
        (
            vec![
                input,
                "-o",
                "/nonexistent/folder/out.jsonl",
                "--endpoint",
                "insee_etablissements",
            ],
            "check that its folder exists",
        ),
        (
            vec![
                input,
                "-o",
                output,
                "--endpoint",
                "insee_etablissements",
                "--between",
                "8h-9h",
            ],
            "is not HH:MM-HH:MM",
        ),
        (
            vec![input, "-o", input, "--endpoint", "insee_etablissements"],
            "is not a batch answer",
        ),
    ] {
        let out = batch(&sandbox, &dir, &args).output().unwrap();
        let report = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {report}");
        assert!(
            report.contains(expected),
            "{args:?}: {expected} missing from:\n{report}"
        );
        assert_eq!(
            report.matches("os error").count(),
            report.contains("os error") as usize,
            "{report}"
        );
    }
    assert_eq!(sandbox.requests().len(), 0);
    assert!(
        std::fs::read_to_string(input).unwrap().starts_with("siret,nom\n"),
        "the input is untouched"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_fail_go_to_the_retry_file_which_batch_reads_back() {
    // An API that fails every call with a 500 (after the runtime's retries).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let body = r#"{"errors":[{"code":"00500","title":"Erreur interne","detail":"boom"}]}"#;
                    let answer = format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = dir("retry");
    let input = sirets_csv(&dir, 3);
    let output = dir.join("out.jsonl");
    let mut command = etablissements(&sandbox, &dir, &input, &output, &[]);
    command
        .env("API_ENTREPRISE_BASE_URL", &base_url)
        .env("API_ENTREPRISE_RETRIES", "1");
    let out = command.output().unwrap();
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("failed 3") && report.contains("00500 ×3"), "{report}");
    let retry = dir.join("out.jsonl.retry.jsonl");
    assert!(report.contains(retry.to_str().unwrap()), "{report}");
    let retry_lines = lines(&retry);
    assert_eq!(retry_lines.len(), 3);
    assert!(
        retry_lines
            .iter()
            .all(|l| l["endpoint"] == "insee_etablissements" && l["recipient"] == "13002526500013")
    );

    // The retry file is an input: against an API that answers, every row
    // is found.
    let again = dir.join("again.jsonl");
    let out = batch(
        &sandbox,
        &dir,
        &[retry.to_str().unwrap(), "-o", again.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let found = lines(&again);
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|l| l["outcome"] == "found"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[path = "../../../tests/src/redis_server.rs"]
mod redis_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waits_out_a_redis_restart_and_answers_every_row_once() {
    let mut redis = redis_server::RedisServer::start_durable();
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_rate_limit(Some(100_000));
    let dir = dir("redis-restart");
    const ROWS: u64 = 40;
    let input = sirets_csv(&dir, ROWS);
    let output = dir.join("out.jsonl");
    let url = redis.url();
    let extra = ["--ip-quota", "10/1s", "--redis-url", &url, "--progress-every", "1"];
    let mut command = etablissements(&sandbox, &dir, &input, &output, &extra);
    let run = tokio::task::spawn_blocking(move || command.output().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    redis.kill();
    let killed = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    redis.restart();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the batch never finished after Redis came back")
        .unwrap();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("wait: the quota store (Redis at"),
        "the progress line says what it waits for:\n{report}"
    );
    let lines = lines(&output);
    let rows = per_row(&lines);
    assert_eq!(rows, (1..=ROWS).map(|r| (r, 1)).collect(), "every row once");
    let requests = sandbox.requests();
    assert_eq!(requests.len() as u64, ROWS, "nothing sent twice");
    let times: Vec<u64> = requests.iter().map(|r| r.at_unix_ms).collect();
    let worst = api_entreprise_tests::worst_window(&times, 1_000);
    println!(
        "batch of {ROWS} rows through a Redis kill -9 of 3 s: finished {:?} after the kill, worst 1 s window {worst}/10",
        killed.elapsed()
    );
    assert!(worst <= 10, "a 1 s window held {worst}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A batch and a `call` with `--audit FILE` append one audit line per
/// request sent or refused (the gateway's own fields), each request id the
/// API gave; `status --audit FILE` lists the last ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_and_a_call_write_the_audit_trail_that_status_lists() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = dir("audit");
    let input = sirets_csv(&dir, 5);
    let output = dir.join("out.jsonl");
    let audit = dir.join("audit.jsonl");
    let audit_arg = audit.to_str().unwrap().to_owned();
    let mut run = etablissements(&sandbox, &dir, &input, &output, &[]);
    run.args(["--audit", &audit_arg]);
    let out = tokio::task::spawn_blocking(move || run.output().unwrap())
        .await
        .unwrap();
    let mut call = host(&sandbox, &dir);
    call.args(["--audit", &audit_arg, "call", "insee_unites_legales", "552049447"])
        .args(api_entreprise_tests::TRACE_ARGS);
    let called = tokio::task::spawn_blocking(move || call.output().unwrap())
        .await
        .unwrap();
    assert!(called.status.success(), "{}", text(&called));
    let rows = lines(&output);
    let trail = lines(&audit);
    assert_eq!(trail.len(), rows.len() + 1, "{} {}", text(&out), text(&called));
    // Every request the sandbox answered is in the trail with its id.
    let sent = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path != "/privileges")
        .count();
    let with_id: Vec<&str> = trail.iter().filter_map(|l| l["request_id"].as_str()).collect();
    assert_eq!(with_id.len(), sent);
    assert!(
        trail
            .iter()
            .all(|l| l["client"].is_string() && l["endpoint"].is_string())
    );
    let text_of = std::fs::read_to_string(&audit).unwrap();
    assert!(
        !text_of.contains(api_entreprise_sandbox::DEFAULT_TOKEN),
        "never the token"
    );
    // `status` lists the last ones, the call last.
    let mut status = host(&sandbox, &dir);
    status.args(["--audit", &audit_arg, "status", "--last", "3"]);
    let listed = tokio::task::spawn_blocking(move || status.output().unwrap())
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("the last 3 request(s)"), "{listed}");
    assert!(!listed.contains("ban:"), "every request was answered: {listed}");
    let last_line = listed.lines().last().unwrap();
    assert!(
        last_line.contains("insee_unites_legales") && last_line.contains(" 200 "),
        "{listed}"
    );
}
