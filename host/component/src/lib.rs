//! The client component's bytes, built from `guest/` for `wasm32-wasip2` by
//! this crate's build script (in a target directory of its own, as
//! wasmtime's `wasi-preview1-component-adapter/provider` does).
//!
//! Whoever embeds the default component depends on this crate; the runtime
//! library does not, so embedding it needs neither the wasm32 target nor a
//! nested cargo build:
//!
//! ```ignore
//! let runtime = api_entreprise::RuntimeBuilder::new(api_entreprise::PRODUCTION_BASE_URL)
//!     .component(api_entreprise::ComponentSource::Bytes(api_entreprise_component::CLIENT.into()))
//!     .build()
//!     .await?;
//! ```

/// The client component (`guest/`), stripped, built in release mode.
pub static CLIENT: &[u8] = include_bytes!(env!("API_ENTREPRISE_CLIENT_COMPONENT"));

/// Where the client component was built, for tools that load it by path.
pub const CLIENT_PATH: &str = env!("API_ENTREPRISE_CLIENT_COMPONENT");

/// The hostile probe component (`tests/probe/`) the tests load through the
/// real host, as a file an administrator would give.
#[cfg(feature = "probe")]
pub const PROBE_PATH: &str = env!("API_ENTREPRISE_PROBE_COMPONENT");
