//! Builds the guest crates of this workspace, the way wasmtime builds its
//! test programs: in a target directory of its own, so the inner cargo never
//! waits on the outer build's lock. The only crate that runs a nested cargo.
//!
//! Two components come from the one `guest/` source: the client
//! (`wasm32-wasip2`, world `api-entreprise`) and the codec component
//! (`wasm32-unknown-unknown`, world `sans-io`), a core module that
//! `wit-component` wraps with no adapter. The codec component must import
//! nothing: the build fails if it does.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host/component/ is two levels down");
    if std::env::var_os("CARGO_FEATURE_PROBE").is_some() {
        let probe = build(
            workspace,
            "tests/probe",
            "wasm32-wasip2",
            "api_entreprise_probe.wasm",
            "",
        );
        println!("cargo:rustc-env=API_ENTREPRISE_PROBE_COMPONENT={}", probe.display());
        // The client's other versions, for the hot-swap tests. Each build of
        // the guest overwrites its artifact: each is copied aside at once.
        for (feature, name) in [("testing-next", "NEXT"), ("testing-broken", "BROKEN")] {
            let built = build(
                workspace,
                "guest",
                "wasm32-wasip2",
                "api_entreprise_guest.wasm",
                feature,
            );
            let kept = built.with_file_name(format!("api_entreprise_client_{feature}.wasm"));
            std::fs::copy(&built, &kept).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
            println!("cargo:rustc-env=API_ENTREPRISE_CLIENT_{name}={}", kept.display());
        }
    }
    let built = build(workspace, "guest", "wasm32-wasip2", "api_entreprise_guest.wasm", "");
    let client = built.with_file_name("api_entreprise_client.wasm");
    std::fs::copy(&built, &client).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    println!("cargo:rustc-env=API_ENTREPRISE_CLIENT_COMPONENT={}", client.display());
    let core = build(
        workspace,
        "guest",
        "wasm32-unknown-unknown",
        "api_entreprise_guest.wasm",
        "",
    );
    let codec = core.with_file_name("api_entreprise_codec.wasm");
    encode(&core, &codec);
    println!("cargo:rustc-env=API_ENTREPRISE_CODEC_COMPONENT={}", codec.display());
}

/// Wraps the core module at `core` (built for `wasm32-unknown-unknown`, its
/// WIT world embedded by wit-bindgen) into a component at `out`, and checks
/// that it imports nothing.
fn encode(core: &Path, out: &Path) {
    let module = std::fs::read(core).unwrap_or_else(|e| panic!("reading {}: {e}", core.display()));
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("wrapping {} into the codec component: {e:#}", core.display()));
    let imports = imports(&component);
    assert!(
        imports.is_empty(),
        "the codec component must import nothing, and it imports {}: keep `std::time`, `std::env` and I/O \
         out of the code the `sans-io` world compiles",
        imports.join(", ")
    );
    std::fs::write(out, component).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// The names a component imports, read with the parser wit-component uses.
fn imports(component: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.expect("wit-component produced a component the parser reads") {
            wasmparser::Payload::ModuleSection { .. } | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            // Only the outer component's imports are the host's business.
            wasmparser::Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    names.push(import.expect("a readable import").name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    names
}

/// Builds the crate at `manifest_dir` (relative to the workspace root) for
/// `target`, with `features` (comma-separated, or none), and returns the
/// path of its `.wasm`, named `artifact`.
fn build(workspace: &Path, manifest_dir: &str, target: &str, artifact: &str, features: &str) -> PathBuf {
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
        .args(["--target", target, "--release", "--locked"])
        .args(["--features", features])
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
        "building {manifest_dir} for {target} failed (see the errors above); if the target is missing, run `scripts/setup`"
    );
    // The root manifest holds the guest's profile (opt-level) and the lock;
    // the catalogue and the contract are the guest's too.
    for watched in [manifest_dir, "catalogue", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    target_dir.join(target).join("release").join(artifact)
}
