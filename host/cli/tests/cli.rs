//! The `api-entreprise` command as a user runs it: a real process, with the
//! built-in sandbox when no token is configured.

use std::process::{Command, Output};

/// The command, in an environment without any `API_ENTREPRISE_*` variable
/// of the shell that runs the tests (a developer's token, quota or state
/// directory must not change what a test sees).
fn command() -> Command {
    let mut command = clean(Command::new(env!("CARGO_BIN_EXE_api-entreprise")));
    // No client installed by `component install`: the built-in one.
    command.env(
        "API_ENTREPRISE_COMPONENTS_DIR",
        std::env::temp_dir().join(format!("api-entreprise-cli-no-components-{}", std::process::id())),
    );
    command
}

use api_entreprise_tests::clean_env as clean;

/// Runs the command with `args`, with `token` when given.
fn run_with(args: &[&str], token: Option<&str>) -> Output {
    let mut command = command();
    command.args(args);
    if let Some(token) = token {
        command.env("API_ENTREPRISE_TOKEN", token);
    }
    command.env(
        "API_ENTREPRISE_STATE_DIR",
        std::env::temp_dir().join("api-entreprise-cli-state"),
    );
    command.output().expect("running api-entreprise")
}

fn run(args: &[&str]) -> Output {
    run_with(args, None)
}

/// A valid trace for `call`.
use api_entreprise_tests::TRACE_ARGS as TRACE;

/// `[global…] call [args…]` with a valid trace.
fn call(global: &[&str], args: &[&str], token: Option<&str>) -> Output {
    run_with(&[global, &["call"], args, &TRACE].concat(), token)
}

/// A process of `[global…] call insee_unites_legales 552049447` against the
/// sandbox at `base_url`, with its token and no configuration of its own.
fn unite_legale_against(base_url: &str, global: &[&str]) -> Command {
    let mut command = command();
    command
        .args(global)
        .args(["call", "insee_unites_legales", "552049447"])
        .args(TRACE)
        .env("API_ENTREPRISE_TOKEN", api_entreprise_sandbox::DEFAULT_TOKEN)
        .env("API_ENTREPRISE_BASE_URL", base_url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_call_without_a_token_uses_the_built_in_sandbox_and_says_so_in_one_line() {
    let out = call(&[], &["insee_unites_legales", "552049447"], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("SOCIETE NATIONALE SNCF"), "{stdout}");
    assert!(stdout.contains("HTTP 200"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("built-in sandbox at http://127.0.0.1:"), "{stderr}");
}

#[test]
fn json_output_is_the_envelope() {
    let out = call(&[], &["insee_etablissements", "55204944776279", "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let envelope: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["data"]["siret"], "55204944776279");
    assert!(envelope["links"].is_object() && envelope["meta"].is_object());
}

#[test]
fn invalid_input_fails_with_every_code_and_what_to_do() {
    let out = run(&[
        "call",
        "insee_unites_legales",
        "552049448",
        "--context",
        "",
        "--recipient",
        "123",
        "--object",
        "x",
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    for expected in ["nothing was sent", "00201", "00210", "00301", "give a SIREN"] {
        assert!(stderr.contains(expected), "{expected} missing from {stderr}");
    }
}

#[test]
fn an_unknown_endpoint_and_a_bad_quota_are_explained() {
    let out = call(&[], &["insee_nope", "552049447"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no endpoint `insee_nope`"),
        "{}",
        text(&out.stderr)
    );

    let out = call(&["--ip-quota", "lots"], &["insee_unites_legales", "552049447"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("N/DURATION"), "{}", text(&out.stderr));
}

#[test]
fn a_base_url_without_a_token_or_over_plain_http_is_refused() {
    let production = ["--base-url", "https://entreprise.api.gouv.fr"];
    let out = call(&production, &["insee_unites_legales", "552049447"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("API_ENTREPRISE_TOKEN"),
        "{}",
        text(&out.stderr)
    );

    let plain = ["--base-url", "http://entreprise.api.gouv.fr"];
    let out = call(&plain, &["insee_unites_legales", "552049447"], Some("a-token"));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("only https is allowed"), "{stderr}");
    assert!(!stderr.contains("a-token"), "the token leaked: {stderr}");
}

#[test]
fn endpoints_of_a_use_case_are_marked_and_an_unknown_use_case_is_named_with_the_known_ones() {
    let out = run(&["endpoints", "--use-case", "marches_publics"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.starts_with("Marchés publics (marches_publics): "), "{shown}");
    let line = |id: &str, version: &str| {
        shown
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(id) && l.split_whitespace().nth(2) == Some(version))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
    };
    assert_eq!(
        line("acoss_attestations_sociales", "v4").as_deref(),
        Some("recommended")
    );
    assert_eq!(
        line("inpi_rne_beneficiaires_effectifs", "v3").as_deref(),
        Some("forbidden")
    );
    // Only what the use case names: 44 of the 51 data endpoints' versions.
    assert_eq!(shown.lines().count(), 45, "{shown}");
    assert_eq!(line("privileges", "v0"), None);
    let out = run(&["endpoints", "--use-case", "marches_public"]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("no use case `marches_public`") && said.contains("marches_publics"),
        "{said}"
    );
}

#[test]
fn endpoints_lists_the_catalogue_as_json() {
    let out = run(&["endpoints", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        list.iter()
            .any(|e| e["id"] == "insee_unites_legales" && e["version"] == 4)
    );
    assert_eq!(list.len(), 54, "51 data endpoints, /privileges and two health routes");
    assert!(list.iter().all(|e| e["path"].as_str().unwrap().starts_with('/')));
}

#[test]
fn doctor_runs_green_against_the_sandbox() {
    let out = run(&["doctor"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    for line in [
        "[ok]   privileges: ",
        "of 51 endpoint versions callable",
        "[ok]   providers: all",
        "[ok]   test call insee_unites_legales 552049447: HTTP 200",
    ] {
        assert!(stdout.contains(line), "{line} missing from {stdout}");
    }
}

#[test]
fn doctor_fails_a_test_call_that_fails_and_says_why() {
    let out = run(&["doctor", "--value", "552049448"]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("[FAIL] test call insee_unites_legales 552049448: invalid request"),
        "{stdout}"
    );
}

#[test]
fn a_document_is_saved_with_the_call() {
    let dir = std::env::temp_dir().join(format!("api-entreprise-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("attestation.pdf");
    let out = call(
        &[],
        &[
            "acoss_attestations_sociales",
            "418166096",
            "--download",
            dest.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::read(&dest).unwrap().starts_with(b"%PDF"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_restarted_command_does_not_spend_the_window_again() {
    use api_entreprise_sandbox::{Sandbox, SandboxConfig};
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let state = std::env::temp_dir().join(format!("api-entreprise-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let global = ["--ip-quota", "1/10m", "--state-dir", state.to_str().unwrap()];
    let mut first = unite_legale_against(&sandbox.base_url(), &global);
    let first = tokio::task::spawn_blocking(move || first.output().unwrap())
        .await
        .unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let mut second = unite_legale_against(&sandbox.base_url(), &global);
    let second = tokio::task::spawn_blocking(move || second.output().unwrap())
        .await
        .unwrap();
    assert!(
        !second.status.success(),
        "the second process spent the window's only request again"
    );
    assert!(
        text(&second.stderr).contains("the quota ip 1/10m has no slot"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(sandbox.received(), 1);
    std::fs::remove_dir_all(&state).unwrap();
}

#[path = "../../../tests/src/redis_server.rs"]
mod redis_server;

/// Several processes share one quota through a real Redis: what one spent,
/// the others cannot spend again.
#[tokio::test]
async fn processes_share_one_quota_through_redis() {
    use api_entreprise_sandbox::{Sandbox, SandboxConfig};
    let redis = redis_server::RedisServer::start();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let global = ["--ip-quota", "3/1m", "--redis-url", &redis.url()];
    let processes: Vec<_> = (0..6)
        .map(|_| unite_legale_against(&sandbox.base_url(), &global).spawn().unwrap())
        .collect();
    let mut succeeded = 0;
    for process in processes {
        let out = tokio::task::spawn_blocking(move || process.wait_with_output().unwrap())
            .await
            .unwrap();
        succeeded += usize::from(out.status.success());
    }
    assert_eq!(succeeded, 3, "three processes had a slot, the others were refused");
    assert_eq!(sandbox.received(), 3, "the refused ones sent nothing");
}

#[test]
fn a_host_that_cannot_reserve_the_instance_pool_still_runs() {
    // 32 GiB of address space: far too little for the pool's reservation
    // (a 4 GiB region per slot), enough for instances mapped one by one.
    let bin = env!("CARGO_BIN_EXE_api-entreprise");
    let out = clean(Command::new("bash"))
        .args(["-c", "ulimit -v 33554432 && exec \"$0\" \"$@\"", bin, "call"])
        .args(["insee_unites_legales", "552049447"])
        .args(TRACE)
        .env(
            "API_ENTREPRISE_CACHE_DIR",
            std::env::temp_dir().join("api-entreprise-cli-ulimit-cache"),
        )
        .output()
        .expect("running api-entreprise under ulimit");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("SOCIETE NATIONALE SNCF"), "{stdout}");
    assert!(stderr.contains("no instance pool"), "{stderr}");
}

/// Eight processes with one state directory share its quota: the state file
/// is read, decided and written under one lock, so no process counts alone
/// and none overwrites another's decision.
#[tokio::test]
async fn processes_on_one_machine_share_the_quota_file() {
    use api_entreprise_sandbox::{Sandbox, SandboxConfig};
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let state = std::env::temp_dir().join(format!("api-entreprise-shared-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let base_url = sandbox.base_url();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (base_url, state) = (base_url.clone(), state.clone());
            std::thread::spawn(move || {
                let global = ["--ip-quota", "10/5s", "--state-dir", state.to_str().unwrap()];
                // Calls for 12 s, a little apart after a refusal: more than
                // two windows' worth, from every process at once. A refusal
                // by the quota sends nothing; any other failure (a deadline
                // on a loaded machine) may have sent its request.
                let (started, mut succeeded, mut other) = (std::time::Instant::now(), 0, Vec::new());
                while started.elapsed() < std::time::Duration::from_secs(12) {
                    let out = unite_legale_against(&base_url, &global).output().unwrap();
                    if out.status.success() {
                        succeeded += 1;
                        continue;
                    }
                    let stderr = text(&out.stderr);
                    if !stderr.contains("nothing was sent") {
                        other.push(stderr);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(250));
                }
                (succeeded, other)
            })
        })
        .collect();
    let (mut succeeded, mut other) = (0, Vec::new());
    for worker in workers {
        let (ok, failed) = tokio::task::spawn_blocking(move || worker.join().unwrap())
            .await
            .unwrap();
        succeeded += ok;
        other.extend(failed);
    }
    let times: Vec<u64> = sandbox.requests().iter().map(|r| r.at_unix_ms).collect();
    let worst = api_entreprise_tests::worst_window(&times, 5_000);
    println!("{succeeded} calls from 8 processes; the worst 5 s window at the sandbox held {worst} of 10");
    assert!(
        (succeeded..=succeeded + other.len()).contains(&times.len()),
        "{} requests arrived for {succeeded} successes: a refused process sent one; other failures: {other:?}",
        times.len()
    );
    assert!(
        worst <= 10,
        "a 5 s window held {worst} arrivals: the processes counted apart"
    );
    assert!(
        succeeded > 10,
        "only {succeeded} calls: no process took a slot past the first window"
    );
    let file = std::fs::read(state.join("quotas.sqlite3")).expect("the state file is there");
    assert!(file.starts_with(b"SQLite format 3\0"), "the state is a SQLite database");
    std::fs::remove_dir_all(&state).unwrap();
}

/// A state directory that is a file: the command says so and what to do,
/// and sends nothing.
#[tokio::test]
async fn a_state_directory_that_is_a_file_is_refused_with_what_to_do() {
    use api_entreprise_sandbox::{Sandbox, SandboxConfig};
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let file = std::env::temp_dir().join(format!("api-entreprise-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, b"").unwrap();
    let mut process = unite_legale_against(&sandbox.base_url(), &["--state-dir", file.to_str().unwrap()]);
    let out = tokio::task::spawn_blocking(move || process.output().unwrap())
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("give a directory to --state-dir"), "{stderr}");
    assert_eq!(stderr.matches("File exists").count(), 1, "the cause once: {stderr}");
    assert_eq!(sandbox.received(), 0, "nothing was sent");
    std::fs::remove_file(&file).unwrap();
}

/// `component …` with its own components and cache directories.
fn component(dir: &std::path::Path, args: &[&str]) -> Output {
    command()
        .env("API_ENTREPRISE_COMPONENTS_DIR", dir.join("components"))
        .env("API_ENTREPRISE_CACHE_DIR", dir.join("cache"))
        .args(args)
        .output()
        .expect("running api-entreprise")
}

#[test]
fn component_check_install_rollback_and_list_ship_a_new_client_version() {
    let dir = std::env::temp_dir().join(format!("api-entreprise-cli-component-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let next = api_entreprise_component::CLIENT_NEXT_PATH;
    let broken = api_entreprise_component::CLIENT_BROKEN_PATH;
    let text = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let endpoints = |dir: &std::path::Path| {
        let out = command()
            .env("API_ENTREPRISE_COMPONENTS_DIR", dir.join("components"))
            .args(["endpoints", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).contains("insee_unites_legales_diffusion")
    };

    // `check` reports and installs nothing.
    let out = component(&dir, &["component", "check", next]);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    for expected in [
        "added: insee_unites_legales_diffusion v4",
        "0 refusing",
        "a swap would be accepted",
        "-next",
    ] {
        assert!(report.contains(expected), "{expected} missing from:\n{report}");
    }
    let out = component(&dir, &["component", "check", broken]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("it traps"), "{}", text(&out));
    assert!(text(&component(&dir, &["component", "list"])).contains("none installed"));

    // A broken one is not installed; a good one is, and every later command
    // uses it.
    let out = component(&dir, &["component", "install", broken]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not installed"), "{}", text(&out));
    assert!(!endpoints(&dir));
    let out = component(&dir, &["component", "install", next]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(endpoints(&dir), "the installed version is used");
    let list = text(&component(&dir, &["component", "list"]));
    assert!(list.starts_with("* client-0.1.0-next-"), "{list}");

    // A broken one forced in is installed too (its report still shows why).
    let out = component(&dir, &["component", "install", "--accept-differences", broken]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!endpoints(&dir));
    assert_eq!(text(&component(&dir, &["component", "list"])).lines().count(), 2);

    // Each rollback returns to the version before, down to the built-in one.
    let out = component(&dir, &["component", "rollback"]);
    assert!(text(&out).contains("is current"), "{}", text(&out));
    assert!(endpoints(&dir));
    let out = component(&dir, &["component", "rollback"]);
    assert!(text(&out).contains("the built-in client is current"), "{}", text(&out));
    assert!(!endpoints(&dir));
    let out = component(&dir, &["component", "rollback"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("nothing to roll back"), "{}", text(&out));

    // What is not a client is refused with a reason, and nothing changes.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"<html>").unwrap();
    let out = component(&dir, &["component", "install", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not WebAssembly"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_redis_password_shows_neither_in_help_nor_in_an_error() {
    const SECRET: &str = "s3cret-redis-password";
    let mut help = command();
    let out = help
        .args(["call", "--help"])
        .env("API_ENTREPRISE_REDIS_URL", format!("redis://:{SECRET}@127.0.0.1:1/0"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--redis-url"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    // A Redis that does not answer: the error names it, without the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = call(
        &["--redis-url", &format!("redis://:{SECRET}@127.0.0.1:{port}/0")],
        &["insee_unites_legales", "552049447"],
        Some(api_entreprise_sandbox::DEFAULT_TOKEN),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("redis://:***@127.0.0.1:{port}/0")), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_field_with_a_newline_cannot_forge_a_log_line_and_a_pipe_gets_no_colour() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let forged = "dossier 42\nINFO api_entreprise::audit: call endpoint=forged";
    let out = command()
        .args(["call", "insee_unites_legales", "552049447"])
        .args([
            "--context",
            "aides publiques",
            "--recipient",
            "13002526500013",
            "--object",
            forged,
        ])
        .env("API_ENTREPRISE_TOKEN", api_entreprise_sandbox::DEFAULT_TOKEN)
        .env("API_ENTREPRISE_BASE_URL", sandbox.base_url())
        .env("API_ENTREPRISE_LOG", "api_entreprise::audit=info")
        .env(
            "API_ENTREPRISE_STATE_DIR",
            std::env::temp_dir().join("api-entreprise-cli-forge"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("api_entreprise::audit"), "{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("INFO api_entreprise::audit: call endpoint=forged")),
        "{stderr}"
    );
    assert!(stderr.contains(r"dossier 42\nINFO"), "escaped: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes in a pipe: {stderr}");
}

/// A cache folder other users can write is not used, and the command says
/// why once, with what to do; the call itself goes on.
#[cfg(unix)]
#[test]
fn a_world_writable_cache_folder_is_refused_once_with_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("api-entreprise-open-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = command()
        .args(["endpoints", "--cache-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("can be written by other users").count(), 1, "{stderr}");
    assert!(stderr.contains("chmod go-w"), "{stderr}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing was cached there");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `status` answers "am I close to a ban?" from the state directory that
/// calls of other processes filled, and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_window_as_the_state_directory_holds_it() {
    let state = std::env::temp_dir().join(format!("api-entreprise-status-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    status_after_three_calls(&["--state-dir", state.to_str().unwrap()], "quotas.sqlite3").await;
    std::fs::remove_dir_all(&state).unwrap();
}

/// The same from a Redis that the calls of other processes filled (as a
/// fleet behind one IP shares it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_window_as_redis_holds_it() {
    let redis = api_entreprise_tests::RedisServer::start();
    let url = redis.url();
    status_after_three_calls(&["--redis-url", &url], "Redis at redis://").await;
}

/// Three `call` processes with `store` (the flags that name it), then
/// `status` with the same: the per-IP window and the group hold the three,
/// with the server's word, and `status` sent nothing.
async fn status_after_three_calls(store: &[&str], described: &str) {
    let sandbox = api_entreprise_tests::sandbox().await;
    let global = [store, &["--ip-quota", "10/1m"]].concat();
    for _ in 0..3 {
        let mut call = unite_legale_against(&sandbox.base_url(), &global);
        let out = tokio::task::spawn_blocking(move || call.output().unwrap())
            .await
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let sent = sandbox.received();
    let out = command()
        .args(&global)
        .args(["status", "--json"])
        .env("API_ENTREPRISE_TOKEN", api_entreprise_sandbox::DEFAULT_TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let quota = |name: &str| {
        body["quotas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .cloned()
    };
    let ip = quota("ip 10/1m").expect("the per-IP quota is listed");
    assert_eq!(
        (ip["used"].as_u64(), ip["limit"].as_u64()),
        (Some(3), Some(10)),
        "{body}"
    );
    let group = quota("group json_resources_entreprise").expect("the group is listed");
    assert_eq!(group["used"].as_u64(), Some(3), "{body}");
    assert!(
        group["server_remaining"].as_u64().is_some(),
        "the server's word is shown: {body}"
    );
    assert!(body["store"].as_str().unwrap().contains(described), "{body}");
    let out = command().args(&global).arg("status").output().unwrap();
    let shown = text(&out.stdout);
    assert!(shown.contains("3 of 10/1m"), "{shown}");
    assert_eq!(sandbox.received(), sent, "status sends nothing");
}

/// Four `call` processes fill a per-IP window of 4 a minute that the
/// sandbox, banning past 3, does not allow (another machine behind the IP,
/// or a quota set too high): the fourth gets no answer at all. `doctor`
/// then finds the free `/pings` unanswered right after that full window,
/// as the state directory holds it, and says the IP is probably banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_the_ip_is_probably_banned_when_pings_go_unanswered_right_after_a_full_window() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_ban(Some(api_entreprise_sandbox::Ban {
        limit: 3,
        window: std::time::Duration::from_secs(60),
        length: std::time::Duration::from_secs(3600),
    }));
    let state = std::env::temp_dir().join(format!("api-entreprise-cli-ban-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let state = state.to_str().unwrap().to_owned();
    let base_url = sandbox.base_url();
    let audit = format!("{state}.audit.jsonl");
    let global = [
        "--ip-quota",
        "4/1m",
        "--state-dir",
        state.as_str(),
        "--audit",
        audit.as_str(),
    ];
    let mut answered = Vec::new();
    for _ in 0..4 {
        let mut process = unite_legale_against(&base_url, &global);
        let out = tokio::task::spawn_blocking(move || process.output().unwrap())
            .await
            .unwrap();
        answered.push(out.status.success());
    }
    assert_eq!(answered, [true, true, true, false]);
    assert!(sandbox.banned_for().is_some());
    let mut doctor = command();
    doctor
        .args(global)
        .args(["doctor", "--recipient", "13002526500013"])
        .env("API_ENTREPRISE_TOKEN", api_entreprise_sandbox::DEFAULT_TOKEN)
        .env("API_ENTREPRISE_BASE_URL", &base_url);
    let out = tokio::task::spawn_blocking(move || doctor.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "[FAIL] ban: the API's /pings gets no answer right after the per-IP quota 4/1m full (as the quota store holds it): the IP is probably banned"
        ),
        "{stdout}"
    );
    // `status` sends nothing: it judges from the audit trail's last line (a
    // call that got no answer) and the full window the store holds.
    let out = command().args(global).arg("status").output().unwrap();
    let shown = text(&out.stdout);
    assert!(
        shown.contains("got no answer at all right after the per-IP quota 4/1m full: the IP is probably banned until"),
        "{shown}"
    );
}
