//! Quotas in Redis, shared by every host that uses the same server and
//! prefix: one sorted set of departure times per quota, changed only by the
//! Lua scripts beside this file (each runs atomically), on the Redis
//! server's clock.
//!
//! Redis comes and goes (a restart, a failover, a partition): every wait on
//! it has a deadline (connecting, and each answer), a connection that
//! failed is dropped and made again by the next decision (at most one
//! attempt at a time, and not more often than [`RECONNECT_EVERY`]), and
//! while it is away every decision is [`Denied::Unavailable`]: nothing
//! leaves uncounted. Behind Sentinel (`redis+sentinel://`), each new
//! connection asks the sentinels where the master is now.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};

use super::{BoxFuture, Clock, Denied, Millis, QuotaKey, QuotaStore, QuotaStoreError, ServerWord, SystemClock};
use super::{FairShare, Unavailable, Usage, Wait, hungry_for};

use api_entreprise_catalogue::quota_scripts::{
    ACQUIRE_LUA as ACQUIRE, FAIR_LUA as FAIR, SERVER_SAID_LUA as SERVER_SAID, USAGE_LUA as USAGE,
};

/// The longest a connection to Redis (or to the sentinels, then the
/// master) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest one answer of Redis may take: a partitioned Redis costs a
/// decision this much, not the call's whole deadline.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// After a failed connection, the next attempt waits this long: decisions
/// in between fail at once instead of piling connections onto a Redis that
/// is coming back.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(250);

/// Where the connections go.
enum Target {
    /// One server.
    Direct(redis::Client),
    /// The master that the sentinels name, asked again at each connection.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// The connection, or since when there has been none.
#[derive(Default)]
struct Link {
    connection: Option<MultiplexedConnection>,
    down: Option<Down>,
}

struct Down {
    since: Millis,
    reason: String,
    last_attempt: tokio::time::Instant,
}

/// The windows in a Redis server.
pub struct RedisStore {
    target: Target,
    /// The URL without its password, for every message.
    shown: String,
    prefix: String,
    acquire: redis::Script,
    fair: redis::Script,
    server_said: redis::Script,
    usage: redis::Script,
    link: Mutex<Link>,
    /// One connection attempt at a time.
    reconnecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// `url` with the password of its user information replaced by `***`, for
/// messages (`redis://:secret@host:6379/0` → `redis://:***@host:6379/0`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{scheme}://{user}{}", &rest[at..])
}

/// The sentinels, master name, database and credentials of
/// `redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER[/DB]`.
fn sentinel_client(url: &str) -> Result<SentinelClient, String> {
    let form = "write it redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]";
    let rest = url.strip_prefix("redis+sentinel://").ok_or(form)?;
    let (authority, path) = rest.split_once('/').ok_or_else(|| format!("no master name: {form}"))?;
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut sentinels = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => (
                name,
                port.parse::<u16>()
                    .map_err(|_| format!("the sentinel port in {host:?} is not a number: {form}"))?,
            ),
            None => (host, 26379),
        };
        sentinels.push(redis::ConnectionAddr::Tcp(name.to_owned(), port));
    }
    if sentinels.is_empty() {
        return Err(format!("no sentinel: {form}"));
    }
    let (master, db) = match path.split_once('/') {
        Some((master, db)) => (
            master,
            db.parse::<i64>()
                .map_err(|_| format!("the database {db:?} is not a number: {form}"))?,
        ),
        None => (path, 0),
    };
    if master.is_empty() {
        return Err(format!("no master name: {form}"));
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut builder = SentinelClientBuilder::new(sentinels, master.to_owned(), SentinelServerType::Master)
        .map_err(|e| e.to_string())?
        .set_client_to_redis_db(db);
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or(("", userinfo));
        if !user.is_empty() {
            builder = builder.set_client_to_redis_username(decode(user));
        }
        if !password.is_empty() {
            builder = builder.set_client_to_redis_password(decode(password));
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// Whether `error` means the connection is no good any more (rather than
/// one command failing on a good connection).
fn connection_lost(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        // A master demoted by a failover refuses writes: ask the sentinels again.
        || error.kind() == redis::ErrorKind::ReadOnly
}

impl RedisStore {
    /// Connects to the Redis server at `url` (`redis://[:PASSWORD@]HOST:PORT/DB`,
    /// `rediss://…`, or `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]`
    /// for the master that the sentinels name); the quotas live under keys
    /// starting with `prefix`. Fails when the first connection does; later
    /// outages are a state the store leaves by itself.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, QuotaStoreError> {
        let shown = redact_url(url);
        let bad = |e: String| QuotaStoreError::Redis(format!("the Redis URL {shown:?}: {e}"));
        let target = if url.starts_with("redis+sentinel://") {
            Target::Sentinel(tokio::sync::Mutex::new(sentinel_client(url).map_err(bad)?))
        } else {
            Target::Direct(redis::Client::open(url).map_err(|e| bad(e.to_string()))?)
        };
        let store = Self {
            target,
            shown: shown.clone(),
            prefix: prefix.to_owned(),
            acquire: redis::Script::new(ACQUIRE),
            fair: redis::Script::new(FAIR),
            server_said: redis::Script::new(SERVER_SAID),
            usage: redis::Script::new(USAGE),
            link: Mutex::default(),
            reconnecting: tokio::sync::Mutex::new(()),
        };
        store
            .connection()
            .await
            .map_err(|down| QuotaStoreError::Redis(format!("connecting to Redis at {shown}: {}", down.reason)))?;
        Ok(store)
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unavailable(&self, down: &Down) -> Unavailable {
        Unavailable {
            store: format!("Redis at {}", self.shown),
            reason: down.reason.clone(),
            since: down.since,
        }
    }

    /// A connection: the current one, else a new one (one attempt at a
    /// time, not more often than [`RECONNECT_EVERY`]), else why not.
    async fn connection(&self) -> Result<MultiplexedConnection, Unavailable> {
        if let Some(connection) = self.link().connection.clone() {
            return Ok(connection);
        }
        let _attempt = self.reconnecting.lock().await;
        {
            let link = self.link();
            if let Some(connection) = link.connection.clone() {
                return Ok(connection);
            }
            if let Some(down) = &link.down
                && down.last_attempt.elapsed() < RECONNECT_EVERY
            {
                return Err(self.unavailable(down));
            }
        }
        let opened = self.open().await;
        let mut link = self.link();
        match opened {
            Ok(connection) => {
                if let Some(down) = link.down.take() {
                    let seconds = SystemClock.now().saturating_sub(down.since) as f64 / 1000.0;
                    tracing::warn!(target: "api_entreprise::quota", "Redis at {} answers again, after {seconds:.1} s", self.shown);
                }
                link.connection = Some(connection.clone());
                Ok(connection)
            }
            Err(reason) => {
                let down = link.down.get_or_insert_with(|| Down {
                    since: SystemClock.now(),
                    reason: String::new(),
                    last_attempt: tokio::time::Instant::now(),
                });
                down.reason = reason;
                down.last_attempt = tokio::time::Instant::now();
                Err(self.unavailable(down))
            }
        }
    }

    /// Opens a connection, within [`CONNECT_TIMEOUT`] for each step.
    async fn open(&self) -> Result<MultiplexedConnection, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let attempt = async {
            let client = match &self.target {
                Target::Direct(client) => client.clone(),
                Target::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await?,
            };
            client.get_multiplexed_async_connection_with_config(&config).await
        };
        match tokio::time::timeout(2 * CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no connection within {} s", 2 * CONNECT_TIMEOUT.as_secs())),
        }
    }

    /// Records that `error` happened on the connection: a lost one is
    /// dropped (the next decision connects again).
    fn failed(&self, error: &redis::RedisError) -> Unavailable {
        let mut link = self.link();
        if connection_lost(error) {
            link.connection = None;
        }
        let down = Down {
            since: link.down.as_ref().map_or_else(|| SystemClock.now(), |d| d.since),
            reason: error.to_string(),
            last_attempt: tokio::time::Instant::now(),
        };
        let unavailable = self.unavailable(&down);
        if link.connection.is_none() {
            link.down = Some(down);
        }
        unavailable
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
    fn try_acquire<'a>(&'a self, keys: &'a [QuotaKey], _now: Millis) -> BoxFuture<'a, Result<(), Denied>> {
        Box::pin(async move {
            let mut connection = self.connection().await.map_err(Denied::Unavailable)?;
            let mut invocation = self.acquire.prepare_invoke();
            for key in keys {
                invocation
                    .key(format!("{}{}", self.prefix, key.name))
                    .arg(key.spec.window.as_millis() as u64)
                    .arg(key.spec.limit);
            }
            invocation.arg(unique_id());
            match invocation.invoke_async::<(usize, u64)>(&mut connection).await {
                Ok((0, _)) => Ok(()),
                Ok((which, ms)) => Err(Denied::Full(Wait {
                    quota: keys
                        .get(which - 1)
                        .map_or_else(|| "shared in Redis".to_owned(), |k| k.name.clone()),
                    retry_after: Duration::from_millis(ms),
                })),
                // Nothing leaves that was not counted.
                Err(e) => {
                    let unavailable = self.failed(&e);
                    tracing::error!(target: "api_entreprise::quota", "{unavailable}");
                    Err(Denied::Unavailable(unavailable))
                }
            }
        })
    }

    fn try_acquire_fair<'a>(&'a self, shares: &'a [FairShare], _now: Millis) -> BoxFuture<'a, Result<(), Denied>> {
        Box::pin(async move {
            let mut connection = self.connection().await.map_err(Denied::Unavailable)?;
            let mut invocation = self.fair.prepare_invoke();
            invocation.arg(&self.prefix).arg(unique_id());
            for share in shares {
                let pool = format!("{}pool:{}", self.prefix, share.pool.name);
                let length = share.pool.spec.window.as_millis() as u64;
                invocation
                    .key(format!("{}{}", self.prefix, share.pool.name))
                    .key(format!("{}{}", self.prefix, share.member.name))
                    .key(format!("{pool}:weights"))
                    .key(format!("{pool}:hungry"))
                    .key(format!("{pool}:active"))
                    .key(format!("{}{}", self.prefix, super::fair::pooled(&share.pool)))
                    .arg(share.pool.spec.limit)
                    .arg(length)
                    .arg(&share.member.name)
                    .arg(share.weight.to_string())
                    .arg(hungry_for(length));
            }
            match invocation.invoke_async::<(usize, u64)>(&mut connection).await {
                Ok((0, _)) => Ok(()),
                Ok((which, ms)) => Err(Denied::Full(Wait {
                    quota: shares
                        .get(which - 1)
                        .map_or_else(|| "shared in Redis".to_owned(), |s| s.member.name.clone()),
                    retry_after: Duration::from_millis(ms),
                })),
                // Nothing leaves that was not counted.
                Err(e) => {
                    let unavailable = self.failed(&e);
                    tracing::error!(target: "api_entreprise::quota", "{unavailable}");
                    Err(Denied::Unavailable(unavailable))
                }
            }
        })
    }

    fn server_said<'a>(&'a self, name: &'a str, word: ServerWord, _now: Millis) -> BoxFuture<'a, ()> {
        let (remaining, in_ms, close) = match word {
            ServerWord::Remaining { remaining, reset_in } => (remaining, reset_in.as_millis() as u64, false),
            ServerWord::Closed(wait) => (0, wait.as_millis() as u64, true),
        };
        Box::pin(async move {
            let mut connection = match self.connection().await {
                Ok(connection) => connection,
                Err(down) => {
                    tracing::error!(target: "api_entreprise::quota", "the server's word was not kept: {down}");
                    return;
                }
            };
            let result = self
                .server_said
                .key(format!("{}{name}", self.prefix))
                .arg(remaining)
                .arg(in_ms)
                .arg(u8::from(close))
                .invoke_async::<i64>(&mut connection)
                .await;
            if let Err(e) = result {
                let down = self.failed(&e);
                tracing::error!(target: "api_entreprise::quota", "the server's word was not kept: {down}");
            }
        })
    }

    fn describe(&self) -> String {
        format!("Redis at {}", self.shown)
    }

    fn usage<'a>(&'a self, keys: &'a [QuotaKey], _now: Millis) -> BoxFuture<'a, Result<Vec<Usage>, Unavailable>> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let mut invocation = self.usage.prepare_invoke();
            for key in keys {
                invocation
                    .key(format!("{}{}", self.prefix, key.name))
                    .arg(key.spec.window.as_millis() as u64);
            }
            let flat: Vec<i64> = invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|e| self.failed(&e))?;
            let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
            Ok(keys
                .iter()
                .zip(flat.chunks_exact(4))
                .map(|(key, v)| {
                    let (count, age, remaining, reset_in) = (v[0], v[1], v[2], v[3]);
                    let length = key.spec.window.as_millis() as i64;
                    Usage {
                        name: key.name.clone(),
                        spec: key.spec,
                        used: u32::try_from(count.max(0)).unwrap_or(u32::MAX),
                        frees_in: (age >= 0).then(|| ms(length + 1 - age)),
                        server: (reset_in >= 0)
                            .then(|| (u32::try_from(remaining.max(0)).unwrap_or(u32::MAX), ms(reset_in))),
                    }
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact_url("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:s3cret@redis.example:6380/2"),
            "rediss://app:***@redis.example:6380/2"
        );
        assert_eq!(
            redact_url("redis+sentinel://:p%40ss@127.0.0.1:26379,127.0.0.2:26379/mymaster/1"),
            "redis+sentinel://:***@127.0.0.1:26379,127.0.0.2:26379/mymaster/1"
        );
        assert_eq!(redact_url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        // An @ in the path is not user information.
        assert_eq!(redact_url("redis://host/0@x"), "redis://host/0@x");
    }

    #[test]
    fn sentinel_urls_are_read_and_bad_ones_say_the_form() {
        assert!(sentinel_client("redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/3").is_ok());
        assert!(sentinel_client("redis+sentinel://127.0.0.1/mymaster").is_ok());
        for bad in [
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel:///mymaster",
            "redis+sentinel://127.0.0.1:x/mymaster",
            "redis+sentinel://127.0.0.1:26379/mymaster/zero",
        ] {
            let err = sentinel_client(bad).err().unwrap_or_else(|| panic!("{bad} was taken"));
            assert!(err.contains("redis+sentinel://"), "{bad}: {err}");
        }
    }
}
