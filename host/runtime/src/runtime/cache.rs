//! The compiled component, kept on disk between starts, and run only when
//! this host wrote it.
//!
//! Loading a compiled component runs its machine code as it is, so a file
//! is loaded only when two things hold. The folder and the file can be
//! written by no other user (OpenSSH's strict modes: owned by this user or
//! root, no write for group or others, every folder above it likewise but
//! for a sticky one such as `/tmp`). And the file's keyed digest
//! (HMAC-SHA-256 under a key of this cache's own, `cache.key`, readable by
//! this user only) matches the one recorded when it was written: a file
//! copied in from elsewhere, or changed since, is compiled anew. Otherwise
//! the component is compiled, and the reason said once per process.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
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

/// The cache's key file, beside the compiled components.
const KEY_FILE: &str = "cache.key";

/// Compiles `bytes`, or loads their compiled form from `cache` when an
/// earlier start of this host left it there for this very engine
/// configuration (see the module's documentation).
pub(super) fn load_component(
    engine: &Engine,
    bytes: &[u8],
    cache: Option<&Path>,
) -> wasmtime::Result<(Component, ComponentOrigin)> {
    use std::hash::{Hash, Hasher};
    let Some(dir) = cache else {
        return Ok((Component::new(engine, bytes)?, ComponentOrigin::Compiled));
    };
    let key = match open(dir) {
        Ok(key) => key,
        Err(why) => {
            say_once(format!(
                "the compiled-component cache {} is not used: {why}",
                dir.display()
            ));
            return Ok((Component::new(engine, bytes)?, ComponentOrigin::Compiled));
        }
    };
    let mut id = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut id);
    bytes.hash(&mut id);
    let file = dir.join(format!("client-{:016x}.cwasm", id.finish()));
    match read_trusted(&file, &key) {
        Ok(Some(compiled)) => {
            // SAFETY: this host wrote the file for this engine's configuration
            // (its keyed digest says so) in a folder no other user can write;
            // wasmtime also checks its header, version and settings and
            // refuses a mismatch, which is then compiled anew.
            match unsafe { Component::deserialize(engine, &compiled) } {
                Ok(component) => return Ok((component, ComponentOrigin::Cached)),
                Err(e) => say_once(format!("recompiling {}: {e:#}", file.display())),
            }
        }
        Ok(None) => {}
        Err(why) => say_once(format!("recompiling the cached component {}: {why}", file.display())),
    }
    let component = Component::new(engine, bytes)?;
    let written = component
        .serialize()
        .map_err(std::io::Error::other)
        .and_then(|compiled| {
            crate::atomic::write(&file, &compiled)?;
            crate::atomic::write(&digest_file(&file), hex(&digest(&key, &compiled)).as_bytes())
        });
    if let Err(e) = written {
        say_once(format!(
            "the compiled component was not cached in {}: {e}",
            dir.display()
        ));
    }
    Ok((component, ComponentOrigin::Compiled))
}

/// Says `message` once in this process.
fn say_once(message: String) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if !said.contains(&message) {
        tracing::warn!(target: "api_entreprise::cache", "{message}");
        said.push(message);
    }
}

/// The cache folder, created for this user only if missing and checked,
/// and its key (made now if it has none, or a damaged one).
fn open(dir: &Path) -> Result<[u8; 32], String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| format!("it cannot be created ({e})"))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("it cannot be read ({e})"))?;
    let mut folder = Some(dir.as_path());
    let mut first = true;
    while let Some(d) = folder {
        strict(d, first)?;
        folder = d.parent();
        first = false;
    }
    let file = dir.join(KEY_FILE);
    let read = || -> Result<Option<[u8; 32]>, String> {
        match std::fs::read(&file) {
            Ok(text) => {
                strict(&file, true)?;
                Ok(<[u8; 32]>::try_from(text.as_slice()).ok())
            }
            Err(_) => Ok(None),
        }
    };
    let damaged = file.exists();
    if let Some(key) = read()? {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let mut partial = tempfile::NamedTempFile::new_in(&dir).map_err(|e| format!("its key cannot be made ({e})"))?;
    partial
        .write_all(&key)
        .and_then(|()| partial.as_file().sync_all())
        .map_err(|e| format!("its key cannot be written ({e})"))?;
    // Two processes making the first key: one rename wins, the other takes
    // its key. A damaged key is replaced.
    let persisted = if damaged {
        partial.persist(&file).map(drop)
    } else {
        partial.persist_noclobber(&file).map(drop)
    };
    match persisted {
        Ok(()) => {}
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            return read()?.ok_or_else(|| "its key was damaged by another process; try again".to_owned());
        }
        Err(e) => return Err(format!("its key cannot be written ({})", e.error)),
    }
    crate::atomic::sync_dir(&dir).map_err(|e| format!("its key cannot be written ({e})"))?;
    Ok(key)
}

/// OpenSSH's strict modes for `path`: owned by this user or root, and no
/// write for group or others (except, for a folder above the cache, a
/// sticky one, where no user can replace another's entries).
#[cfg(unix)]
fn strict(path: &Path, own: bool) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "{} belongs to another user (uid {}); give a cache directory of your own with --cache-dir",
            path.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode();
    let sticky = mode & 0o1000 != 0 && meta.is_dir();
    if mode & 0o022 != 0 && (own || !sticky) {
        return Err(format!(
            "{} can be written by other users (mode {:o}); fix it with chmod go-w {}",
            path.display(),
            mode & 0o7777,
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn strict(_: &Path, _: bool) -> Result<(), String> {
    Ok(())
}

/// The file beside `file` that holds its keyed digest.
fn digest_file(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".hmac");
    PathBuf::from(name)
}

fn digest(key: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(bytes);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The compiled component in `file` if this host wrote it: `Ok(None)` when
/// there is none, an error saying why when there is one it must not run.
fn read_trusted(file: &Path, key: &[u8; 32]) -> Result<Option<Vec<u8>>, String> {
    // Read into memory rather than mapped: a file truncated by someone else
    // while mapped would crash the process (SIGBUS).
    let compiled = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("it cannot be read ({e})")),
    };
    strict(file, true)?;
    let recorded = std::fs::read_to_string(digest_file(file)).unwrap_or_default();
    if recorded.trim() != hex(&digest(key, &compiled)) {
        return Err("its keyed digest does not match the one recorded when this host wrote it".into());
    }
    Ok(Some(compiled))
}
