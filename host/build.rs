//! Builds the guest component and embeds it as the command's default.

#[path = "build_guest.rs"]
mod build_guest;

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap();
    let wasm = build_guest::build_guest(workspace, "guest", "api_entreprise_guest.wasm");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("api_entreprise_guest.wasm");
    std::fs::copy(&wasm, &out).expect("copying the guest component");
    println!("cargo:rustc-env=API_ENTREPRISE_DEFAULT_COMPONENT={}", out.display());
}
