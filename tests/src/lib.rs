//! The test harness: a sandbox on `127.0.0.1:0`, the real component in the
//! real host pointed at it, and helpers to build requests.

use std::path::PathBuf;

mod redis_server;
pub use redis_server::RedisServer;

use api_entreprise::{CallPath, ComponentSource, Runtime, RuntimeBuilder, Token, types};

/// A valid trace as the command's flags.
pub const TRACE_ARGS: [&str; 6] = [
    "--context",
    "aides publiques",
    "--recipient",
    "13002526500013",
    "--object",
    "dossier 42",
];

/// Both ways a call reaches the network: the default codec path first.
pub const PATHS: [CallPath; 2] = [CallPath::Codec, CallPath::WasiHttp];
use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};
use http_body_util::{BodyExt, Full};

/// The official reference data (the OpenAPI spec, `throttle.yml`, the
/// staging fixtures): `$API_ENTREPRISE_REFERENCE`, else `shared/reference`
/// beside the checkout, as CI lays it out. `None` on a machine without it,
/// where the tests that compare against it say they are skipped; under CI
/// (`CI` set) a missing reference is a failure.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("API_ENTREPRISE_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference"));
    if dir.join("openapi-entreprise.yaml").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the reference data is missing from {}: CI lays shared/ beside the checkout",
        dir.display()
    );
    eprintln!(
        "skipped: no reference data at {} (set API_ENTREPRISE_REFERENCE to the folder holding openapi-entreprise.yaml)",
        dir.display()
    );
    None
}

/// The hostile probe component, as a file an administrator would give.
pub fn probe_component() -> ComponentSource {
    ComponentSource::File(PathBuf::from(api_entreprise_component::PROBE_PATH))
}

/// The client component built from `guest/`.
pub fn client_component() -> ComponentSource {
    ComponentSource::Bytes(api_entreprise_component::CLIENT.into())
}

/// A sandbox accepting [`DEFAULT_TOKEN`].
pub async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default())
        .await
        .expect("starting the sandbox")
}

/// A runtime builder for the real component against `sandbox`, with its token.
pub fn builder(sandbox: &Sandbox) -> RuntimeBuilder {
    RuntimeBuilder::new(sandbox.base_url())
        .component(client_component())
        .token(Token::new(DEFAULT_TOKEN).unwrap())
}

/// The real component in the real host against `sandbox`.
pub async fn runtime(sandbox: &Sandbox) -> Runtime {
    builder(sandbox).build().await.expect("building the runtime")
}

/// `command` without the `API_ENTREPRISE_*` variables of the shell that
/// runs the tests (a developer's token, quota or state directory must not
/// change what a test sees).
pub fn clean_env(mut command: std::process::Command) -> std::process::Command {
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("API_ENTREPRISE_") {
            command.env_remove(var);
        }
    }
    command
}

/// `command` (the `api-entreprise` command, or a shell that runs it)
/// against `sandbox` with its token, its state, cache and components
/// directories in `dir`.
pub fn against_sandbox(
    command: std::process::Command,
    sandbox: &Sandbox,
    dir: &std::path::Path,
) -> std::process::Command {
    let mut command = clean_env(command);
    command
        .env("API_ENTREPRISE_TOKEN", DEFAULT_TOKEN)
        .env("API_ENTREPRISE_BASE_URL", sandbox.base_url())
        .env("API_ENTREPRISE_STATE_DIR", dir.join("state"))
        .env("API_ENTREPRISE_CACHE_DIR", dir.join("cache"))
        .env("API_ENTREPRISE_COMPONENTS_DIR", dir.join("components"));
    command
}

/// The `User-Agent` of every request `sandbox` received, in order.
pub fn user_agents(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .requests()
        .iter()
        .filter_map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "user-agent")
                .map(|(_, v)| v.clone())
        })
        .collect()
}

/// The most of `times` (Unix ms, in any order) that fall in any window of
/// `window` ms: what a quota's judge at the sandbox reads.
pub fn worst_window(times: &[u64], window: u64) -> usize {
    let mut times = times.to_vec();
    times.sort_unstable();
    (0..times.len())
        .map(|i| times[i..].iter().take_while(|t| **t - times[i] < window).count())
        .max()
        .unwrap_or(0)
}

/// A valid trace: DINUM as the recipient, as in the spec's examples.
pub fn trace() -> types::Trace {
    types::Trace {
        context: "aides publiques".into(),
        recipient: "13002526500013".into(),
        object: "dossier 42".into(),
        user_id: None,
    }
}

/// A request for the newest version of `endpoint` with `params`.
pub fn request(endpoint: &str, params: &[&str]) -> types::Request {
    types::Request {
        endpoint: endpoint.into(),
        version: None,
        params: params.iter().map(|p| (*p).to_owned()).collect(),
        query: vec![],
        trace: trace(),
    }
}

/// A plain GET over real HTTP, with `bearer` as the token if given, for
/// what bypasses the component.
pub async fn raw_get(url: &str, bearer: Option<&str>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization.iter().map(|a| ("authorization", a.as_str())).collect();
    raw_request("GET", url, &headers).await
}

/// Any request over real HTTP with the given headers: status, headers (by
/// lower-case name) and body.
pub async fn raw_request(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    raw_send(method, url, headers, Vec::new()).await
}

/// [`raw_request`] with a body.
pub async fn raw_send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .expect("raw request");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}
