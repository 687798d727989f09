//! The gateway as an operator runs it, for the command's process tests
//! (`gateway.rs`, `faults.rs`): a real `serve` process with a configuration
//! file, in front of a sandbox, called over real HTTP.

#![allow(dead_code, reason = "each test binary uses its own part of the harness")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use api_entreprise_gateway::hash_key;
use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox};
use api_entreprise_tests::raw_request;
use serde_json::Value;

pub const PORTAIL_KEY: &str = "portail-key-0123456789";
pub const BATCH_KEY: &str = "batch-key-9876543210";
pub const ORIGIN: &str = "https://portail.example.fr";
pub const TRACE: &str = "context=aides%20publiques&recipient=10000001700010&object=dossier%2042&user_id=agent-42";

/// A gateway process; killed when dropped.
pub struct Gateway {
    pub child: Child,
    pub url: String,
    pub stderr: std::path::PathBuf,
    /// Its folder: configuration, state, cache.
    pub dir: std::path::PathBuf,
    /// Its standard output after the first line: the audit trail.
    pub audit: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// While set, nobody reads its standard output (a stalled reader).
    pub stall_stdout: Arc<AtomicBool>,
}

impl Gateway {
    /// What follows `prefix` on the first line of its stderr that starts
    /// with it (such as the address after `dashboard on `).
    pub fn said(&self, prefix: &str) -> String {
        let stderr = std::fs::read_to_string(&self.stderr).unwrap();
        stderr
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("never said {prefix:?}: {stderr}"))
            .to_owned()
    }

    /// The audit trail so far, one JSON value a line.
    pub fn audit(&self) -> Vec<Value> {
        self.audit
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two applications on one profile: `portail` (Sirene only, a fixed
/// recipient, one browser origin) and `batch` (everything).
pub fn two_applications(sandbox: &Sandbox, portail_extra: &str) -> String {
    format!(
        r#"
        base_url = "{base}"
        [profiles.aides]
        token_env = "GATEWAY_TEST_TOKEN"
        [applications.portail]
        key_sha256 = "{portail}"
        profile = "aides"
        endpoints = ["insee_unites_legales"]
        cors_origins = ["{ORIGIN}"]
        {portail_extra}
        [applications.batch]
        key_sha256 = "{batch}"
        profile = "aides"
        "#,
        base = sandbox.base_url(),
        portail = hash_key(PORTAIL_KEY),
        batch = hash_key(BATCH_KEY),
    )
}

/// Starts `serve` with `config` and the extra global flags. It blocks
/// until the gateway listens: the tests run on a multi-threaded runtime, so
/// that the sandbox in this process answers the gateway's `/privileges`
/// meanwhile.
pub fn start(name: &str, config: &str, global: &[&str]) -> Gateway {
    start_with(name, config, global, &[])
}

/// [`start`] with more environment variables.
pub fn start_with(name: &str, config: &str, global: &[&str], env: &[(&str, &str)]) -> Gateway {
    let dir = std::env::temp_dir().join(format!("api-entreprise-gateway-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let stderr = dir.join("stderr");
    let mut child = api_entreprise_tests::clean_env(Command::new(env!("CARGO_BIN_EXE_api-entreprise")))
        .args(global)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env("GATEWAY_TEST_TOKEN", DEFAULT_TOKEN)
        .env("API_ENTREPRISE_STATE_DIR", dir.join("state"))
        .env("API_ENTREPRISE_CACHE_DIR", dir.join("cache"))
        .env("API_ENTREPRISE_COMPONENTS_DIR", dir.join("components"))
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("gateway listening on ")
        .unwrap_or_else(|| panic!("{line}: {}", std::fs::read_to_string(&stderr).unwrap_or_default()))
        .to_owned();
    let audit = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stall_stdout = Arc::new(AtomicBool::new(false));
    let (lines, stalled) = (audit.clone(), stall_stdout.clone());
    std::thread::spawn(move || {
        loop {
            while stalled.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => lines.lock().unwrap().push(line.trim_end().to_owned()),
            }
        }
    });
    Gateway {
        child,
        url,
        stderr,
        dir,
        audit,
        stall_stdout,
    }
}

pub async fn get(url: &str, key: Option<&str>, origin: Option<&str>) -> (u16, Vec<(String, String)>, Value) {
    let authorization = key.map(|k| format!("Bearer {k}"));
    let mut headers: Vec<(&str, &str)> = authorization.iter().map(|a| ("authorization", a.as_str())).collect();
    headers.extend(origin.map(|o| ("origin", o)));
    let (status, headers, body) = raw_request("GET", url, &headers).await;
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (status, headers, body)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// What the sandbox received, but the gateway's own `/privileges` and
/// `/pings` (at start, and for `/readyz`).
pub fn data_requests(sandbox: &Sandbox) -> Vec<api_entreprise_sandbox::RecordedRequest> {
    sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path != "/privileges" && r.path != "/pings")
        .collect()
}

/// Whether the server closed `stream` within `within` (whatever it sent
/// before is read and left).
pub fn closed_within(stream: &mut std::net::TcpStream, within: std::time::Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

pub fn codes(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["code"].as_str()).collect())
        .unwrap_or_default()
}

/// A JWT the sandbox can be given as its token (signed by nobody: only the
/// API could verify it), named `jti`, issued a day ago, that expires in
/// `expires_in` seconds.
pub fn jwt(jti: &str, expires_in: u64) -> String {
    use base64::Engine as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(r#"{"alg":"HS256"}"#),
        b64(&format!(
            r#"{{"uid":"u-1","jti":"{jti}","iat":{},"exp":{}}}"#,
            now - 86_400,
            now + expires_in
        ))
    )
}

/// A sandbox that takes `token` (such as a [`jwt`]) instead of its own.
pub async fn sandbox_taking(token: &str) -> Sandbox {
    Sandbox::start(api_entreprise_sandbox::SandboxConfig {
        token: token.to_owned(),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Sends SIGHUP to the process `pid` (a reload).
pub fn hangup(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Asserts that the sandbox never saw more than `limit` requests (its free
/// `/pings` aside) within `window_ms` of each other.
pub fn never_more_than(sandbox: &Sandbox, limit: usize, window_ms: u64) {
    let arrivals: Vec<u64> = sandbox
        .requests()
        .iter()
        .filter(|r| r.path != "/pings")
        .map(|r| r.at_unix_ms)
        .collect();
    for (i, start) in arrivals.iter().enumerate() {
        let within = arrivals[i..].iter().filter(|t| **t < start + window_ms).count();
        assert!(
            within <= limit,
            "{within} arrivals within {window_ms} ms from {start}: {arrivals:?}"
        );
    }
}
