//! One client version, loaded: read, contract-checked, compiled (or taken
//! from the cache), pre-instantiated, with its own count of calls and
//! failures. A runtime serves one and keeps the one before it for a
//! rollback; a call holds the version it started with until it ends.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::Digest;
use wasmtime::component::{InstancePre, Linker};
use wasmtime::{Engine, Store};

use super::builder::ComponentSource;
use super::cache::{ComponentOrigin, load_component};
use super::exports::Exports;
use super::linker::{CallState, CodecState, add_wasi_to_linker};
use crate::error::ConfigError;
use crate::types;

/// A loaded client version.
pub(crate) struct Loaded {
    /// Pre-instantiated with what the client may import (`wasi:http` under
    /// the host's policy): the `wasi:http` path.
    pub(crate) pre: InstancePre<CallState>,
    /// Pre-instantiated with nothing linked (every import traps): the codec
    /// path, where the host sends.
    pub(crate) codec: InstancePre<CodecState>,
    /// The functions a call enters, found and type-checked once.
    pub(crate) exports: Exports,
    /// What the component says of its endpoints (a description only),
    /// listed once it is loaded.
    pub(crate) endpoints: std::sync::OnceLock<std::sync::Arc<Vec<types::Endpoint>>>,
    pub(crate) info: VersionInfo,
    pub(crate) health: Health,
}

/// Which client version a component is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version it declares in its version section, if any.
    pub version: Option<String>,
    /// The first 12 hex digits of the SHA-256 of its bytes.
    pub digest: String,
    /// Where it was read from (`<bytes>` for embedded bytes).
    pub source: PathBuf,
    /// Compiled now, or taken from the cache.
    pub origin: ComponentOrigin,
}

impl VersionInfo {
    /// The digest [`VersionInfo::digest`] holds for a component's `bytes`.
    pub fn digest_of(bytes: &[u8]) -> String {
        sha2::Sha256::digest(bytes)[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Display for VersionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({})",
            self.version.as_deref().unwrap_or("unversioned"),
            self.digest
        )
    }
}

/// How long each step of loading took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTimings {
    /// Reading the file.
    pub read: Duration,
    /// The contract check, compiling (or loading from the cache) and linking.
    pub compile: Duration,
}

/// A version's calls and failures (traps, and answers it could not parse).
#[derive(Debug, Default)]
pub(crate) struct Health {
    calls: AtomicU64,
    failures: AtomicU64,
}

impl Health {
    /// Counts one call, failed or not; returns the counts after it.
    pub(crate) fn record(&self, failed: bool) -> (u64, u64) {
        let calls = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let failures = self.failures.fetch_add(u64::from(failed), Ordering::Relaxed) + u64::from(failed);
        (calls, failures)
    }

    /// Calls and failures so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// The bytes of `source`, and the path to name it by.
pub(crate) fn read_source(source: &ComponentSource) -> Result<(PathBuf, Cow<'static, [u8]>), ConfigError> {
    match source {
        ComponentSource::Bytes(bytes) => Ok((PathBuf::from("<bytes>"), bytes.clone())),
        ComponentSource::File(path) => std::fs::read(path)
            .map(|bytes| (path.clone(), Cow::Owned(bytes)))
            .map_err(|e| ConfigError::Component {
                path: path.clone(),
                reason: "reading it".into(),
                source: Box::new(e),
            }),
    }
}

/// Reads the component, checks its contract before anything of it runs,
/// compiles it (or loads it from `cache`) and pre-instantiates it. Its
/// endpoints are listed by the caller, which can run it.
pub(crate) fn load(
    engine: &Engine,
    source: &ComponentSource,
    cache: Option<&Path>,
) -> Result<(Loaded, LoadTimings), ConfigError> {
    let started = Instant::now();
    let (path, bytes) = read_source(source)?;
    let read = started.elapsed();
    let failed = |reason: &str, e: wasmtime::Error| ConfigError::Component {
        path: path.clone(),
        reason: reason.to_owned(),
        source: e.into_boxed_dyn_error(),
    };
    let refused = |refusal| ConfigError::Contract {
        path: path.clone(),
        refusal,
    };
    if let Some(refusal) = crate::contract::not_a_component(&bytes) {
        return Err(refused(refusal));
    }
    let (component, origin) = load_component(engine, &bytes, cache).map_err(|e| failed("compiling it", e))?;
    crate::contract::check(engine, &component, crate::contract::Role::Client).map_err(refused)?;
    let mut linker = Linker::<CallState>::new(engine);
    add_wasi_to_linker(&mut linker).map_err(|e| ConfigError::Engine(format!("{e:#}")))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| failed("linking it", e))?;
    let (codec, exports) = codec_path(engine, &component).map_err(|e| failed("linking it with nothing", e))?;
    let info = VersionInfo {
        version: crate::contract::client_version(&bytes),
        digest: VersionInfo::digest_of(&bytes),
        source: path,
        origin,
    };
    let timings = LoadTimings {
        read,
        compile: started.elapsed() - read,
    };
    let loaded = Loaded {
        pre,
        codec,
        exports,
        endpoints: std::sync::OnceLock::new(),
        info,
        health: Health::default(),
    };
    Ok((loaded, timings))
}

/// The component pre-instantiated with nothing linked, and its call
/// functions, type-checked on one instance.
fn codec_path(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<(InstancePre<CodecState>, Exports)> {
    let codec = super::linker::link_nothing(engine, component)?.instantiate_pre(component)?;
    let exports = Exports::find(engine, component)?;
    let mut store = Store::new(engine, CodecState::default());
    store.set_epoch_deadline(super::LOAD_TICKS);
    let instance = codec.instantiate(&mut store)?;
    exports.check(&mut store, &instance)?;
    Ok((codec, exports))
}

impl Loaded {
    /// Its endpoints, as it described them when loaded.
    pub(crate) fn endpoints(&self) -> std::sync::Arc<Vec<types::Endpoint>> {
        self.endpoints.get().cloned().unwrap_or_default()
    }
}
