//! Quotas in Redis, shared by every host that uses the same server and
//! prefix: one sorted set of departure times per quota, changed only by the
//! Lua scripts beside this file (each runs atomically), on the Redis
//! server's clock.

use std::time::Duration;

use super::{BoxFuture, Millis, QuotaKey, QuotaStore, QuotaStoreError, ServerWord, Wait};

/// Takes a slot in every quota or none.
const ACQUIRE: &str = include_str!("acquire.lua");

/// Records the server's word on a quota.
const SERVER_SAID: &str = include_str!("server_said.lua");

/// The windows in a Redis server.
pub struct RedisStore {
    connection: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://host:port/db`); the
    /// quotas live under keys starting with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, QuotaStoreError> {
        let client =
            redis::Client::open(url).map_err(|e| QuotaStoreError::Redis(format!("the Redis URL {url:?}: {e}")))?;
        let connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| QuotaStoreError::Redis(format!("connecting to Redis at {url}: {e}")))?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
        })
    }
}

/// A member id no other request anywhere shares: process, counter, time.
fn unique_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{n}-{nanos}", std::process::id())
}

impl QuotaStore for RedisStore {
    fn try_acquire<'a>(&'a self, keys: &'a [QuotaKey], _now: Millis) -> BoxFuture<'a, Result<(), Wait>> {
        let mut connection = self.connection.clone();
        Box::pin(async move {
            let script = redis::Script::new(ACQUIRE);
            let mut invocation = script.prepare_invoke();
            for key in keys {
                invocation
                    .key(format!("{}{}", self.prefix, key.name))
                    .arg(key.spec.window.as_millis() as u64)
                    .arg(key.spec.limit);
            }
            invocation.arg(unique_id());
            match invocation.invoke_async::<(usize, u64)>(&mut connection).await {
                Ok((0, _)) => Ok(()),
                Ok((which, ms)) => Err(Wait {
                    quota: keys
                        .get(which - 1)
                        .map_or_else(|| "shared in Redis".to_owned(), |k| k.name.clone()),
                    retry_after: Duration::from_millis(ms),
                }),
                // An unreachable Redis is a full quota: nothing leaves that
                // was not counted.
                Err(e) => {
                    tracing::error!(target: "api_entreprise::quota", "Redis did not answer: {e}");
                    Err(Wait {
                        quota: format!("shared in Redis, which did not answer ({e})"),
                        retry_after: Duration::from_secs(1),
                    })
                }
            }
        })
    }

    fn server_said<'a>(&'a self, name: &'a str, word: ServerWord, _now: Millis) -> BoxFuture<'a, ()> {
        let mut connection = self.connection.clone();
        let (remaining, reset_or_wait_ms, close) = match word {
            ServerWord::Remaining { remaining, reset } => (remaining, reset, false),
            ServerWord::Closed(wait) => (0, wait.as_millis() as u64, true),
        };
        Box::pin(async move {
            let result = redis::Script::new(SERVER_SAID)
                .key(format!("{}{name}", self.prefix))
                .arg(remaining)
                .arg(reset_or_wait_ms)
                .arg(u8::from(close))
                .invoke_async::<i64>(&mut connection)
                .await;
            if let Err(e) = result {
                tracing::error!(target: "api_entreprise::quota", "Redis did not take the server's word: {e}");
            }
        })
    }
}
