//! The contract check: which components this host agrees to run.
//!
//! A component is untrusted code that may come from anywhere (a newer client,
//! a third party's build). Before it is linked, the host reads its imports
//! and exports and refuses, with a message that names what is wrong, one that
//! is not a component, implements another contract or another major version
//! of ours, or imports more than the host offers.

use api_entreprise_catalogue as catalogue;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::types;

/// The contract's package.
pub const PACKAGE: &str = "api-entreprise:client";

/// The contract's version this host was built against (`wit/`).
pub const VERSION: &str = "0.2.0";

/// What the host runs a component as, which decides what it must export and
/// what it may import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client, which sends through `wasi:http` (world `api-entreprise`).
    Client,
    /// The codec alone (world `sans-io`, or the client used only for its
    /// codec): no import at all is linked.
    Codec,
}

impl Role {
    /// The interfaces it must export.
    fn exports(self) -> &'static [&'static str] {
        match self {
            // `json` too: a swap's canary compares versions through it.
            Self::Client => &["catalogue", "codec", "json", "client"],
            Self::Codec => &["catalogue", "codec", "json"],
        }
    }

    /// The imports the host links for it, by `package/interface`.
    fn offered(self) -> &'static [&'static str] {
        match self {
            Self::Client => OFFERED_IMPORTS,
            Self::Codec => &[],
        }
    }
}

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

/// Why the host refuses to run a component: each case names what is wrong
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The file is not WebAssembly at all.
    #[error("it is not WebAssembly (no `\\0asm` header): give the path of the client's `.wasm` component")]
    NotWasm,
    /// A core module, not a component.
    #[error("it is a core WebAssembly module, not a component: build the client with `--target wasm32-wasip2`")]
    CoreModule,
    /// A component of another contract (its exports listed).
    #[error(
        "it is not an API Entreprise client: it exports {exports}, and none of the interfaces of {PACKAGE}@{VERSION}"
    )]
    NotAClient {
        /// What it exports instead, or `nothing`.
        exports: String,
    },
    /// A client of another version track of the contract.
    #[error(
        "it implements {PACKAGE}@{theirs}, and this host runs {PACKAGE}@{ours}.x components: use the client \
         built with this host (the default) or a host built for {theirs}"
    )]
    OtherVersion {
        /// Its version, or `with no version`.
        theirs: String,
        /// The host's track (`0.2`).
        ours: String,
    },
    /// Some of the interfaces the host calls are missing.
    #[error("it does not export the interface(s) {} of {PACKAGE}@{VERSION}", .0.join(", "))]
    MissingExports(Vec<String>),
    /// It imports what the host does not offer.
    #[error(
        "it imports {}, which this host does not offer: a client reaches the API through wasi:http only, \
         and the codec component imports nothing (no files, no sockets, no other host functions)",
        .0.join(", ")
    )]
    ExtraImports(Vec<String>),
}

/// The custom section in which a client says which version it is.
pub const VERSION_SECTION: &str = "api-entreprise-client-version";

/// The client version a component's bytes declare (its
/// [`VERSION_SECTION`], in any of its modules), if any.
pub fn client_version(bytes: &[u8]) -> Option<String> {
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .filter_map(Result::ok)
        .find_map(|payload| match payload {
            wasmparser::Payload::CustomSection(section) if section.name() == VERSION_SECTION => {
                std::str::from_utf8(section.data()).ok().map(|v| v.trim().to_owned())
            }
            _ => None,
        })
}

/// Explains why `bytes` are not a component at all, if that is the case:
/// a clearer message than the parser's.
pub fn not_a_component(bytes: &[u8]) -> Option<Refusal> {
    if bytes.starts_with(&CORE_MODULE_PREAMBLE) {
        return Some(Refusal::CoreModule);
    }
    (!bytes.starts_with(b"\0asm")).then_some(Refusal::NotWasm)
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

/// The versions compatible with `version` (semver: the same major, or for
/// `0.x` the same minor too), and the track's name (`0.2`, `1`).
fn track(version: &str) -> Option<(semver::VersionReq, String)> {
    let v = semver::Version::parse(version).ok()?;
    let name = if v.major == 0 {
        format!("0.{}", v.minor)
    } else {
        v.major.to_string()
    };
    Some((semver::VersionReq::parse(&format!("^{name}")).ok()?, name))
}

/// Whether `version` (absent, or not semver: no) is on the track `req`.
fn on_track(version: Option<&str>, req: &semver::VersionReq) -> bool {
    version
        .and_then(|v| semver::Version::parse(v).ok())
        .is_some_and(|v| req.matches(&v))
}

/// Checks a component's imports and exports against what this host offers
/// and calls, before anything of it runs.
pub fn check(engine: &Engine, component: &Component, role: Role) -> Result<(), Refusal> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let imports: Vec<&str> = ty.imports(engine).map(|(name, _)| name).collect();
    check_names(&imports, &exports, role)
}

/// [`check`] on the names alone.
pub fn check_names(imports: &[&str], exports: &[&str], role: Role) -> Result<(), Refusal> {
    // Both are this crate's own constants, checked by the tests below.
    let (Some((ours_req, ours)), Some((wasi_req, _))) = (track(VERSION), track("0.2.0")) else {
        return Err(Refusal::OtherVersion {
            theirs: "any version".into(),
            ours: VERSION.into(),
        });
    };
    let exported: Vec<(&str, Option<&str>)> = exports
        .iter()
        .filter_map(|name| split(name))
        .filter(|(package, _, _)| *package == PACKAGE)
        .map(|(_, interface, version)| (interface, version))
        .collect();
    if exported.is_empty() {
        let exports = if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        };
        return Err(Refusal::NotAClient { exports });
    }
    if let Some((_, version)) = exported.iter().find(|(_, v)| !on_track(*v, &ours_req)) {
        return Err(Refusal::OtherVersion {
            theirs: version.unwrap_or("with no version").to_owned(),
            ours,
        });
    }
    let missing: Vec<String> = role
        .exports()
        .iter()
        .filter(|want| !exported.iter().any(|(interface, _)| interface == *want))
        .map(|want| (*want).to_owned())
        .collect();
    if !missing.is_empty() {
        return Err(Refusal::MissingExports(missing));
    }
    let extra: Vec<String> = imports
        .iter()
        .copied()
        .filter(|name| match split(name) {
            // Its own contract's types (any compatible version).
            Some((PACKAGE, _, version)) => !on_track(version, &ours_req),
            Some((package, interface, version)) => {
                let offered = role.offered().contains(&format!("{package}/{interface}").as_str());
                !offered || !on_track(version, &wasi_req)
            }
            None => true,
        })
        .map(str::to_owned)
        .collect();
    if !extra.is_empty() {
        return Err(Refusal::ExtraImports(extra));
    }
    Ok(())
}

/// Logs where the component's description of its endpoints differs from
/// the host's catalogue (a newer or a hostile component): the host's is
/// the one every policy uses.
pub(crate) fn compare_catalogues(described: &[types::Endpoint]) {
    let differences = catalogue_differences(described);
    if !differences.is_empty() {
        tracing::warn!(
            target: "api_entreprise::contract",
            count = differences.len(),
            "the component describes {} endpoint(s) differently from the host's catalogue, whose quotas and timeouts apply: {}",
            differences.len(),
            differences.join("; ")
        );
    }
}

/// Where the component's description of its endpoints differs from the
/// host's catalogue, one line per endpoint.
pub(crate) fn catalogue_differences(described: &[types::Endpoint]) -> Vec<String> {
    described
        .iter()
        .filter_map(|e| {
            let why = match catalogue::find(&e.id, Some(e.version)) {
                None => "unknown to the host".to_owned(),
                Some(ours) => {
                    let mut why = Vec::new();
                    if ours.path != e.path {
                        why.push(format!("path {} for {}", e.path, ours.path));
                    }
                    if !same_kind(ours.kind, e.kind) {
                        why.push(format!("kind {:?} for {:?}", e.kind, ours.kind));
                    }
                    if (ours.group.name, ours.group.limit, ours.group.period_seconds)
                        != (
                            e.rate_limit.name.as_str(),
                            e.rate_limit.limit,
                            e.rate_limit.period_seconds,
                        )
                    {
                        why.push(format!(
                            "group {} {}/{}s for {} {}/{}s",
                            e.rate_limit.name,
                            e.rate_limit.limit,
                            e.rate_limit.period_seconds,
                            ours.group.name,
                            ours.group.limit,
                            ours.group.period_seconds
                        ));
                    }
                    if why.is_empty() {
                        return None;
                    }
                    why.join(", ")
                }
            };
            Some(format!("{} v{}: {why}", e.id, e.version))
        })
        .collect()
}

/// Whether the catalogue's kind and the component's are the same.
fn same_kind(ours: catalogue::Kind, theirs: types::EndpointKind) -> bool {
    use catalogue::Kind;
    use types::EndpointKind as Wit;
    matches!(
        (ours, theirs),
        (Kind::Json, Wit::Json)
            | (Kind::Document, Wit::Document)
            | (Kind::JsonWithLinks, Wit::JsonWithLinks)
            | (Kind::Collection, Wit::Collection)
            | (Kind::Health, Wit::Health)
            | (Kind::Privileges, Wit::Privileges)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: [&str; 4] = [
        "api-entreprise:client/catalogue@0.2.0",
        "api-entreprise:client/codec@0.2.0",
        "api-entreprise:client/client@0.2.0",
        "api-entreprise:client/json@0.2.0",
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
            "api-entreprise:client/types@0.2.0",
            "wasi:http/types@0.2.12",
            "wasi:io/poll@0.2.0",
        ];
        assert_eq!(check_names(&imports, &CLIENT, Role::Client), Ok(()));
        // A patch release of the same 0.2 track is compatible.
        assert_eq!(
            check_names(
                &[],
                &["api-entreprise:client/catalogue@0.2.7", CLIENT[1], CLIENT[2], CLIENT[3]],
                Role::Client
            ),
            Ok(())
        );
    }

    #[test]
    fn each_mismatch_is_named() {
        let err = check_names(&[], &["wasi:http/incoming-handler@0.2.0"], Role::Client)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not an API Entreprise client") && err.contains("incoming-handler"),
            "{err}"
        );
        let err = check_names(&[], &["api-entreprise:client/client@1.0.0"], Role::Client)
            .unwrap_err()
            .to_string();
        assert!(err.contains("@1.0.0") && err.contains("@0.2.x"), "{err}");
        let err = check_names(&[], &["api-entreprise:client/client@0.1.0"], Role::Client)
            .unwrap_err()
            .to_string();
        assert!(err.contains("@0.1.0"), "{err}");
        let err = check_names(&[], &CLIENT[..2], Role::Client).unwrap_err().to_string();
        assert!(err.contains("interface(s) json, client "), "{err}");
        let err = check_names(&[], &CLIENT[..3], Role::Client).unwrap_err().to_string();
        assert!(err.contains("interface(s) json "), "{err}");
        let err = check_names(&[], &[CLIENT[0], CLIENT[1], CLIENT[3]], Role::Client)
            .unwrap_err()
            .to_string();
        assert!(err.contains("interface(s) client "), "{err}");
        let err = check_names(
            &["wasi:filesystem/preopens@0.2.0", "wasi:sockets/tcp@0.2.0"],
            &CLIENT,
            Role::Client,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("wasi:filesystem/preopens@0.2.0, wasi:sockets/tcp@0.2.0"),
            "{err}"
        );
        let err = check_names(&["wasi:http/types@0.3.0"], &CLIENT, Role::Client)
            .unwrap_err()
            .to_string();
        assert!(err.contains("wasi:http/types@0.3.0"), "{err}");
        let err = check_names(&["env"], &CLIENT, Role::Client).unwrap_err().to_string();
        assert!(err.contains("imports env,"), "{err}");
    }

    #[test]
    fn the_codec_role_wants_the_json_interface_and_grants_no_import() {
        let codec = [
            "api-entreprise:client/catalogue@0.2.0",
            "api-entreprise:client/codec@0.2.0",
            "api-entreprise:client/json@0.2.0",
        ];
        assert_eq!(check_names(&[], &codec, Role::Codec), Ok(()));
        let err = check_names(&["wasi:clocks/wall-clock@0.2.0"], &codec, Role::Codec).unwrap_err();
        assert_eq!(err, Refusal::ExtraImports(vec!["wasi:clocks/wall-clock@0.2.0".into()]));
        let err = check_names(&[], &CLIENT[..3], Role::Codec).unwrap_err();
        assert_eq!(err, Refusal::MissingExports(vec!["json".into()]));
    }

    #[test]
    fn a_client_version_is_read_from_its_custom_section() {
        let name = VERSION_SECTION.as_bytes();
        let payload = [&[u8::try_from(name.len()).unwrap()][..], name, b"9.9.9"].concat();
        let module = [
            &b"\0asm\x01\0\0\0"[..],
            &[0, u8::try_from(payload.len()).unwrap()],
            &payload,
        ]
        .concat();
        assert_eq!(client_version(&module).as_deref(), Some("9.9.9"));
        assert_eq!(client_version(b"\0asm\x01\0\0\0"), None);
        assert_eq!(client_version(b"not wasm"), None);
    }

    #[test]
    fn what_is_not_a_component_is_named() {
        assert!(
            not_a_component(b"\0asm\x01\0\0\0")
                .unwrap()
                .to_string()
                .contains("core WebAssembly module")
        );
        assert!(
            not_a_component(b"<html>")
                .unwrap()
                .to_string()
                .contains("not WebAssembly")
        );
        assert_eq!(not_a_component(b"\0asm\x0d\0\x01\0"), None);
    }
}
