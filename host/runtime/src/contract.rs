//! The contract check: which components this host agrees to run.
//!
//! A component is untrusted code that may come from anywhere (a newer client,
//! a third party's build). Before it is linked, the host reads its imports
//! and exports and refuses, with a message that names what is wrong, one that
//! is not a component, implements another contract or another major version
//! of ours, or imports more than the host offers.

use wasmtime::Engine;
use wasmtime::component::Component;

/// The contract's package.
pub const PACKAGE: &str = "api-entreprise:client";

/// The contract's version this host was built against (`wit/`).
pub const VERSION: &str = "0.1.0";

/// The interfaces a client must export.
const EXPORTS: [&str; 3] = ["catalogue", "codec", "client"];

/// What the host links, by `package/interface` (any version of WASI 0.2):
/// outgoing HTTP and the harmless parts of WASI that Rust's std uses. No
/// filesystem, no sockets.
pub const OFFERED_IMPORTS: &[&str] = &[
    "wasi:http/types",
    "wasi:http/outgoing-handler",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// The first bytes of a core WebAssembly module (magic and version 1), which
/// is not a component.
const CORE_MODULE_PREAMBLE: [u8; 8] = *b"\0asm\x01\0\0\0";

/// Explains why `bytes` are not a component at all, if that is the case:
/// a clearer message than the parser's.
pub fn not_a_component(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(&CORE_MODULE_PREAMBLE) {
        return Some(
            "it is a core WebAssembly module, not a component: build the client with `--target wasm32-wasip2`".into(),
        );
    }
    (!bytes.starts_with(b"\0asm"))
        .then(|| "it is not WebAssembly (no `\\0asm` header): give the path of the client's `.wasm` component".into())
}

/// A name split into `package`, `interface` and `version`, for names of the
/// form `ns:pkg/iface@version`.
fn split(name: &str) -> Option<(&str, &str, Option<&str>)> {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    let (package, interface) = path.split_once('/')?;
    Some((package, interface, version))
}

/// The part of a version that must match for two versions to be compatible
/// (semver: the major, or for `0.x` the minor too).
fn compatibility_track(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or_default();
    match major {
        "0" => format!("0.{}", parts.next().unwrap_or_default()),
        _ => major.to_owned(),
    }
}

/// Checks a component's imports and exports against what this host offers
/// and calls, before anything of it runs.
pub fn check(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let imports: Vec<&str> = ty.imports(engine).map(|(name, _)| name).collect();
    check_names(&imports, &exports)
}

/// [`check`] on the names alone.
pub fn check_names(imports: &[&str], exports: &[&str]) -> Result<(), String> {
    let ours = compatibility_track(VERSION);
    let exported: Vec<(&str, Option<&str>)> = exports
        .iter()
        .filter_map(|name| split(name))
        .filter(|(package, _, _)| *package == PACKAGE)
        .map(|(_, interface, version)| (interface, version))
        .collect();
    if exported.is_empty() {
        let listed = if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        };
        return Err(format!(
            "it is not an API Entreprise client: it exports {listed}, not the interfaces {} of {PACKAGE}@{VERSION}",
            EXPORTS.join(", ")
        ));
    }
    if let Some((_, version)) = exported
        .iter()
        .find(|(_, v)| v.is_none_or(|v| compatibility_track(v) != ours))
    {
        let theirs = version.unwrap_or("with no version");
        return Err(format!(
            "it implements {PACKAGE}@{theirs}, and this host runs {PACKAGE}@{ours}.x components: use the client \
             built with this host (the default) or a host built for {theirs}"
        ));
    }
    let missing: Vec<&str> = EXPORTS
        .into_iter()
        .filter(|want| !exported.iter().any(|(interface, _)| interface == want))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "it does not export the interface(s) {} of {PACKAGE}@{VERSION}",
            missing.join(", ")
        ));
    }
    let extra: Vec<&str> = imports
        .iter()
        .copied()
        .filter(|name| match split(name) {
            // Its own contract's types (any compatible version).
            Some((PACKAGE, _, version)) => version.is_none_or(|v| compatibility_track(v) != ours),
            Some((package, interface, version)) => {
                let offered = OFFERED_IMPORTS.contains(&format!("{package}/{interface}").as_str());
                !offered || version.is_none_or(|v| compatibility_track(v) != "0.2")
            }
            None => true,
        })
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "it imports {}, which this host does not offer: a client reaches the API through wasi:http only \
             (no files, no sockets, no other host functions)",
            extra.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: [&str; 3] = [
        "api-entreprise:client/catalogue@0.1.0",
        "api-entreprise:client/codec@0.1.0",
        "api-entreprise:client/client@0.1.0",
    ];

    #[test]
    fn the_contract_version_is_the_wit_packages() {
        let wit = include_str!("../../../wit/world.wit");
        assert!(
            wit.starts_with(&format!("package {PACKAGE}@{VERSION};")),
            "wit/world.wit"
        );
    }

    #[test]
    fn a_client_of_this_contract_passes() {
        let imports = [
            "api-entreprise:client/types@0.1.0",
            "wasi:http/types@0.2.12",
            "wasi:io/poll@0.2.0",
        ];
        assert_eq!(check_names(&imports, &CLIENT), Ok(()));
        // A patch or minor release of the same 0.1 track is compatible.
        assert_eq!(
            check_names(&[], &["api-entreprise:client/catalogue@0.1.7", CLIENT[1], CLIENT[2]]),
            Ok(())
        );
    }

    #[test]
    fn each_mismatch_is_named() {
        let err = check_names(&[], &["wasi:http/incoming-handler@0.2.0"]).unwrap_err();
        assert!(
            err.contains("not an API Entreprise client") && err.contains("incoming-handler"),
            "{err}"
        );
        let err = check_names(&[], &["api-entreprise:client/client@1.0.0"]).unwrap_err();
        assert!(err.contains("@1.0.0") && err.contains("@0.1.x"), "{err}");
        let err = check_names(&[], &["api-entreprise:client/client@0.2.0"]).unwrap_err();
        assert!(err.contains("@0.2.0"), "{err}");
        let err = check_names(&[], &CLIENT[..2]).unwrap_err();
        assert!(err.contains("interface(s) client "), "{err}");
        let err = check_names(&["wasi:filesystem/preopens@0.2.0", "wasi:sockets/tcp@0.2.0"], &CLIENT).unwrap_err();
        assert!(
            err.contains("wasi:filesystem/preopens@0.2.0, wasi:sockets/tcp@0.2.0"),
            "{err}"
        );
        let err = check_names(&["wasi:http/types@0.3.0"], &CLIENT).unwrap_err();
        assert!(err.contains("wasi:http/types@0.3.0"), "{err}");
        let err = check_names(&["env"], &CLIENT).unwrap_err();
        assert!(err.contains("imports env,"), "{err}");
    }

    #[test]
    fn what_is_not_a_component_is_named() {
        assert!(
            not_a_component(b"\0asm\x01\0\0\0")
                .unwrap()
                .contains("core WebAssembly module")
        );
        assert!(not_a_component(b"<html>").unwrap().contains("not WebAssembly"));
        assert_eq!(not_a_component(b"\0asm\x0d\0\x01\0"), None);
    }
}
