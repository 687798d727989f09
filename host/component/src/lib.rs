//! The components' bytes, built from `guest/` (for `wasm32-wasip2`, and for
//! `wasm32-unknown-unknown` as the codec component) by this crate's build
//! script (in a target directory of its own, as
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

/// The codec component: the same client in the `sans-io` world (catalogue,
/// codec, json), importing nothing, for any component runtime.
pub static CODEC: &[u8] = include_bytes!(env!("API_ENTREPRISE_CODEC_COMPONENT"));

/// Where the codec component was built (the Node and Python packages copy it
/// from there).
pub const CODEC_PATH: &str = env!("API_ENTREPRISE_CODEC_COMPONENT");

/// The hostile probe component (`tests/probe/`) the tests load through the
/// real host, as a file an administrator would give.
#[cfg(feature = "probe")]
pub const PROBE_PATH: &str = env!("API_ENTREPRISE_PROBE_COMPONENT");

/// The client built with its `testing-next` feature: version `-next`, a
/// changed `User-Agent` and one more endpoint (the hot-swap tests' good
/// new version).
#[cfg(feature = "probe")]
pub const CLIENT_NEXT_PATH: &str = env!("API_ENTREPRISE_CLIENT_NEXT");

/// The client built with its `testing-broken` feature: it traps when
/// parsing `insee_unites_legales` answers (the hot-swap tests' bad version).
#[cfg(feature = "probe")]
pub const CLIENT_BROKEN_PATH: &str = env!("API_ENTREPRISE_CLIENT_BROKEN");
