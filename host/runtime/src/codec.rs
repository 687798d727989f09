//! The codec component in a Rust host: the client's validation, request
//! building and parsing with no capability at all (nothing is linked, so it
//! can neither send, read a clock nor see a file), for a caller that does
//! its own HTTP. Every call runs under a deadline (epoch interruption, far
//! cheaper than fuel here) and a memory budget; a trap costs a fresh
//! instance, never the caller's process.
//!
//! It speaks the contract's JSON form (the WIT `json` interface), the one
//! the conformance vectors and the Node and Python packages use.

use std::sync::Mutex;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

use crate::contract::{self, Role};
use crate::error::ConfigError;

mod bindings {
    wasmtime::component::bindgen!({ world: "sans-io", path: "../../wit" });
}

use bindings::{SansIo, SansIoPre};

/// How long a call may run: parsing a 30 KB answer takes well under 1 ms.
const CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);
/// Memory an instance may hold.
const MEMORY_BYTES: usize = 64 << 20;

/// A store with its instance, made again after a trap.
struct Live {
    store: Store<StoreLimits>,
    codec: SansIo,
}

/// The codec component, loaded and checked: it exports the codec and imports
/// nothing.
pub struct Codec {
    engine: Engine,
    pre: SansIoPre<StoreLimits>,
    live: Mutex<Option<Live>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

impl Codec {
    /// Compiles `bytes` (a codec component, or any component of the contract
    /// that exports `json` and imports nothing), after checking its contract.
    pub fn new(bytes: &[u8]) -> Result<Self, ConfigError> {
        let path = std::path::PathBuf::from("<codec bytes>");
        let failed = |reason: &str, e: wasmtime::Error| ConfigError::Component {
            path: path.clone(),
            reason: reason.to_owned(),
            source: e.into_boxed_dyn_error(),
        };
        if let Some(refusal) = contract::not_a_component(bytes) {
            return Err(ConfigError::Contract { path, refusal });
        }
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| ConfigError::Engine(format!("{e:#}")))?;
        let component = Component::new(&engine, bytes).map_err(|e| failed("compiling it", e))?;
        contract::check(&engine, &component, Role::Codec).map_err(|refusal| ConfigError::Contract {
            path: path.clone(),
            refusal,
        })?;
        let pre = Linker::new(&engine)
            .instantiate_pre(&component)
            .and_then(SansIoPre::new)
            .map_err(|e| failed("linking it", e))?;
        crate::runtime::spawn_epoch_ticker(&engine);
        Ok(Self {
            engine,
            pre,
            live: Mutex::new(None),
        })
    }

    /// Runs `f` on the live instance (made first if there is none), with a
    /// fresh deadline; a trap drops the instance.
    fn with<T>(&self, f: impl FnOnce(&mut Store<StoreLimits>, &SansIo) -> wasmtime::Result<T>) -> Result<T, String> {
        let mut live = self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if live.is_none() {
            let limits = StoreLimitsBuilder::new().memory_size(MEMORY_BYTES).build();
            let mut store = Store::new(&self.engine, limits);
            store.limiter(|limits| limits);
            let codec = self
                .pre
                .instantiate(&mut store)
                .map_err(|e| format!("the codec component could not start: {e:#}"))?;
            *live = Some(Live { store, codec });
        }
        let Some(Live { store, codec }) = live.as_mut() else {
            unreachable!("made above")
        };
        let ticks = CALL_DEADLINE.as_millis() / crate::runtime::EPOCH_TICK.as_millis();
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        let result = f(store, codec);
        if result.is_err() {
            *live = None;
        }
        result.map_err(|trap| format!("the codec component failed: {trap:#}"))
    }

    /// `json.endpoints`: the component's catalogue as a JSON array.
    pub fn endpoints_json(&self) -> Result<String, String> {
        self.with(|store, codec| codec.api_entreprise_client_json().call_endpoints(store))
    }

    /// `json.prepare`: `Ok` the `prepared` call, `Err` the `error`, in JSON;
    /// the outer `Err` is a trap, as text.
    pub fn prepare_json(&self, base_url: &str, request: &str, now: &str) -> Result<Result<String, String>, String> {
        self.with(|store, codec| {
            codec
                .api_entreprise_client_json()
                .call_prepare(store, base_url, request, now)
        })
    }

    /// `json.parse`, likewise.
    pub fn parse_json(
        &self,
        call: &str,
        status: u16,
        headers: &str,
        body: &str,
        now: &str,
    ) -> Result<Result<String, String>, String> {
        self.with(|store, codec| {
            codec
                .api_entreprise_client_json()
                .call_parse(store, call, status, headers, body, now)
        })
    }
}
