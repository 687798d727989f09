//! The compiled component, kept on disk between starts.

use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a runtime's compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentOrigin {
    /// Compiled at start.
    Compiled,
    /// Loaded, already compiled, from the cache directory.
    Cached,
}

/// Compiles `bytes`, or loads their compiled form from `cache` when an
/// earlier start left it there for this very engine configuration.
pub(super) fn load_component(
    engine: &Engine,
    bytes: &[u8],
    cache: Option<&Path>,
) -> wasmtime::Result<(Component, ComponentOrigin)> {
    use std::hash::{Hash, Hasher};
    let Some(dir) = cache else {
        return Ok((Component::new(engine, bytes)?, ComponentOrigin::Compiled));
    };
    let mut key = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut key);
    bytes.hash(&mut key);
    let file = dir.join(format!("client-{:016x}.cwasm", key.finish()));
    // Read into memory rather than mapped: a file truncated by someone else
    // while mapped would crash the process (SIGBUS).
    if let Ok(compiled) = std::fs::read(&file) {
        // SAFETY: the file is one this host wrote (below) for this engine's
        // configuration; wasmtime also checks its header, version and settings
        // and refuses a mismatch or a damaged file, which is then compiled anew.
        match unsafe { Component::deserialize(engine, &compiled) } {
            Ok(component) => return Ok((component, ComponentOrigin::Cached)),
            Err(e) => tracing::warn!(target: "api_entreprise::cache", file = %file.display(), "recompiling: {e:#}"),
        }
    }
    let component = Component::new(engine, bytes)?;
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| crate::atomic::write(&file, &component.serialize().map_err(std::io::Error::other)?));
    if let Err(e) = written {
        tracing::warn!(target: "api_entreprise::cache", dir = %dir.display(), "the compiled component was not cached: {e}");
    }
    Ok((component, ComponentOrigin::Compiled))
}
