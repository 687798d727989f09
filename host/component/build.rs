//! Builds the guest crates of this workspace for `wasm32-wasip2`, the way
//! wasmtime builds its test programs: in a target directory of its own, so
//! the inner cargo never waits on the outer build's lock. The only crate
//! that runs a nested cargo.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host/component/ is two levels down");
    let client = build(workspace, "guest", "api_entreprise_guest.wasm");
    println!("cargo:rustc-env=API_ENTREPRISE_CLIENT_COMPONENT={}", client.display());
    if std::env::var_os("CARGO_FEATURE_PROBE").is_some() {
        let probe = build(workspace, "tests/probe", "api_entreprise_probe.wasm");
        println!("cargo:rustc-env=API_ENTREPRISE_PROBE_COMPONENT={}", probe.display());
    }
}

/// Builds the crate at `manifest_dir` (relative to the workspace root) and
/// returns the path of its `.wasm`, named `artifact`.
fn build(workspace: &Path, manifest_dir: &str, artifact: &str) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-guests");
    let manifest = workspace.join(manifest_dir).join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", "wasm32-wasip2", "--release", "--locked"])
        // Small and self-contained: the name section is dropped (traps then
        // show function indices; build the guest by hand for names).
        .args(["--config", "profile.release.strip=true"])
        .args(["--config", "profile.release.lto=true"])
        .args(["--config", "profile.release.debug=false"])
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags and target are for the host, not the guest.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_MAKEFLAGS")
        .status()
        .expect("cargo could not be started to build the guest");
    assert!(
        status.success(),
        "building {manifest_dir} for wasm32-wasip2 failed (see the errors above); if the target is missing, run `scripts/setup`"
    );
    // The root manifest holds the guest's profile (opt-level) and the lock;
    // the catalogue and the contract are the guest's too.
    for watched in [manifest_dir, "catalogue", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    target_dir.join("wasm32-wasip2/release").join(artifact)
}
