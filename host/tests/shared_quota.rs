//! Several `api-entreprise` processes share one quota through a real Redis:
//! what one spent, the others cannot spend again.

use std::process::Command;

use api_entreprise_sandbox::{DEFAULT_TOKEN, Sandbox, SandboxConfig};

#[path = "../../tests/src/redis_server.rs"]
mod redis_server;

#[tokio::test]
async fn processes_share_one_quota_through_redis() {
    let redis = redis_server::RedisServer::start();
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let processes: Vec<_> = (0..6)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_api-entreprise"))
                .args([
                    "--ip-quota",
                    "3/1m",
                    "--redis-url",
                    &redis.url(),
                    "call",
                    "insee_unites_legales",
                    "552049447",
                ])
                .args([
                    "--context",
                    "aides publiques",
                    "--recipient",
                    "13002526500013",
                    "--object",
                    "dossier 42",
                ])
                .env("API_ENTREPRISE_TOKEN", DEFAULT_TOKEN)
                .env("API_ENTREPRISE_BASE_URL", sandbox.base_url())
                .env_remove("API_ENTREPRISE_IP_QUOTA")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut succeeded = 0;
    for mut process in processes {
        let status = tokio::task::spawn_blocking(move || process.wait().unwrap())
            .await
            .unwrap();
        succeeded += usize::from(status.success());
    }
    assert_eq!(succeeded, 3, "three processes had a slot, the others were refused");
    assert_eq!(sandbox.requests().len(), 3, "the refused ones sent nothing");
}
