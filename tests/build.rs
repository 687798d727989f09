//! Builds the hostile probe component the tests load through the real host.

#[path = "../host/build_guest.rs"]
mod build_guest;

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap();
    let wasm = build_guest::build_guest(workspace, "tests/probe", "api_entreprise_probe.wasm");
    println!("cargo:rustc-env=PROBE_COMPONENT={}", wasm.display());
}
