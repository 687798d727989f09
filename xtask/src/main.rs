//! The project's own tasks, as rust-analyzer's `xtask` does them:
//!
//! - `cargo xtask codegen`: writes `catalogue/src/generated.rs` from the
//!   official files in `spec/` and the hand-written `spec/overlay.yaml`;
//! - `cargo xtask codegen --check`: fails when that file is not what the
//!   generator would write (CI runs it);
//! - `cargo xtask vectors [--check]`: the same for the conformance vectors
//!   in `tests/conformance/` (see `vectors.rs`).

mod vectors;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde::Deserialize;
use serde_yaml::Value;

const GENERATED: &str = "catalogue/src/generated.rs";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["codegen"] => codegen(false),
        ["codegen", "--check"] => codegen(true),
        ["vectors"] => vectors::run(&root(), false),
        ["vectors", "--check"] => vectors::run(&root(), true),
        _ => Err(anyhow::anyhow!(
            "usage: cargo xtask codegen [--check] | cargo xtask vectors [--check]"
        )),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ is in the workspace")
        .to_owned()
}

fn codegen(check: bool) -> Result<()> {
    let root = root();
    let text = format(&root, &generate(&root.join("spec"))?)?;
    let path = root.join(GENERATED);
    if check {
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        ensure!(
            current == text,
            "{GENERATED} is stale: spec/ changed since it was generated; run `cargo xtask codegen` and commit the result"
        );
        eprintln!("{GENERATED} is up to date");
    } else {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {GENERATED}");
    }
    Ok(())
}

/// The hand-written part (`spec/overlay.yaml`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Overlay {
    param_kinds: BTreeMap<String, String>,
    query: BTreeMap<String, QueryRule>,
    endpoints: BTreeMap<String, Extra>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRule {
    description: String,
    #[serde(default)]
    values: Vec<String>,
    min: Option<i64>,
    max: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Extra {
    provider: String,
    kind: String,
    timeout_ms: u32,
    #[serde(default)]
    params: BTreeMap<String, String>,
    typed: Option<String>,
    #[serde(default)]
    user_id: bool,
    replaced_by: Option<String>,
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// `siret-or-rna` → `SiretOrRna`.
fn variant(kebab: &str) -> String {
    kebab
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The Rust source of the data endpoints, unformatted.
fn generate(spec: &Path) -> Result<String> {
    let openapi: Value = read_yaml(&spec.join("openapi-entreprise.yaml"))?;
    let throttle: Value = read_yaml(&spec.join("throttle.yml"))?;
    let authorizations: Value = read_yaml(&spec.join("authorizations.yml"))?;
    let overlay: Overlay = read_yaml(&spec.join("overlay.yaml"))?;

    // Operation (v3 name, for every version) -> (group name, limit, period).
    let mut groups: BTreeMap<String, (String, u64, u64)> = BTreeMap::new();
    for (name, group) in throttle["shared"].as_mapping().context("throttle.yml: no `shared`")? {
        let name = name.as_str().context("throttle.yml: a group name")?;
        let operations = group["endpoints"]
            .as_sequence()
            .context("throttle.yml: a group's endpoints")?;
        // A `by_single_endpoint` group counts each of its endpoints alone.
        let single = group["throttle_type"] == "by_single_endpoint" && operations.len() > 1;
        for op in operations {
            let op = op.as_str().context("throttle.yml: an endpoint")?;
            let id = op.strip_prefix("api_entreprise_v3_").unwrap_or(op);
            let group_name = if single {
                format!("{name}/{id}")
            } else {
                name.to_owned()
            };
            let limit = group["limit"].as_u64().context("throttle.yml: a limit")?;
            let period = group["period"].as_u64().context("throttle.yml: a period")?;
            groups.insert(id.to_owned(), (group_name, limit, period));
        }
    }
    let scopes_of = |id: &str| -> Result<Vec<String>> {
        let shared = authorizations["shared"]
            .as_mapping()
            .context("authorizations.yml: no `shared`")?;
        let found: Vec<&Value> = shared
            .iter()
            .filter(|(k, _)| {
                k.as_str()
                    .and_then(|k| k.strip_prefix("api_entreprise/v3_and_more/"))
                    .is_some_and(|k| k.replace('/', "_") == id)
            })
            .map(|(_, v)| v)
            .collect();
        ensure!(
            found.len() == 1,
            "authorizations.yml has {} entries for {id}",
            found.len()
        );
        Ok(found[0]
            .as_sequence()
            .map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    };

    let mut rows = Vec::new();
    // Each operation's path, its parameters' names left out, for the use cases.
    let mut by_path: BTreeMap<String, (String, u8)> = BTreeMap::new();
    for (path, item) in openapi["paths"].as_mapping().context("the spec has no paths")? {
        let path = path.as_str().context("a path")?;
        if path == "/privileges" {
            continue;
        }
        let get = &item["get"];
        let op = get["responses"]
            .as_mapping()
            .and_then(|r| r.values().find_map(|r| r["x-operationId"].as_str()))
            .with_context(|| format!("{path} has no x-operationId"))?;
        let (version, id) = op
            .strip_prefix("api_entreprise_v")
            .and_then(|rest| rest.split_once('_'))
            .with_context(|| format!("{op}: not api_entreprise_vN_…"))?;
        let version: u8 = version.parse().with_context(|| format!("{op}: its version"))?;
        ensure!(
            path.starts_with(&format!("/v{version}/")),
            "{op}: {path} is not in /v{version}/"
        );
        let extra = overlay.endpoints.get(id).with_context(|| {
            format!("{id} is in the spec but not in spec/overlay.yaml: add its provider, kind and timeout")
        })?;
        let (group, limit, period) = groups
            .get(id)
            .with_context(|| format!("{id} is in no group of throttle.yml"))?
            .clone();
        let params = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let kind = extra
                    .params
                    .get(name)
                    .or_else(|| overlay.param_kinds.get(name))
                    .with_context(|| format!("{op}: no kind for the path parameter `{name}` in spec/overlay.yaml"))?;
                Ok(format!("({name:?}, ParamKind::{})", variant(kind)))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut query = Vec::new();
        for p in get["parameters"].as_sequence().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default();
            if p["in"] != "query" || ["recipient", "context", "object"].contains(&name) {
                continue;
            }
            let rule = overlay
                .query
                .get(name)
                .with_context(|| format!("{op}: no rule for the query parameter `{name}` in spec/overlay.yaml"))?;
            query.push(format!(
                "QueryParam {{ name: {name:?}, description: {:?}, values: &{:?}, min: {:?}, max: {:?} }}",
                rule.description, rule.values, rule.min, rule.max
            ));
        }
        let maintenance = match &get["x-maintenances"] {
            Value::Null => "None".to_owned(),
            m => format!(
                "Some(\"{}-{}\")",
                m["from_hour"].as_str().context("x-maintenances.from_hour")?,
                m["to_hour"].as_str().context("x-maintenances.to_hour")?
            ),
        };
        let typed = extra.typed.as_deref().map_or("None".to_owned(), variant);
        let row = format!(
            "Endpoint {{ id: {id:?}, version: {version}, title: {title:?}, provider: {provider:?}, path: {path:?}, \
             params: &[{params}], query: &[{query}], kind: Kind::{kind}, timeout_ms: {timeout}, \
             group: Group {{ name: {group:?}, limit: {limit}, period_seconds: {period} }}, scopes: &{scopes:?}, \
             deprecated: {deprecated}, replaced_by: {replaced_by:?}, maintenance: {maintenance}, needs_trace: true, \
             requires_user_id: {user_id}, typed: Typed::{typed} }},",
            title = get["summary"]
                .as_str()
                .with_context(|| format!("{op} has no summary"))?,
            provider = extra.provider,
            params = params.join(", "),
            query = query.join(", "),
            kind = variant(&extra.kind),
            timeout = extra.timeout_ms,
            scopes = scopes_of(id)?,
            deprecated = get["deprecated"].as_bool().unwrap_or(false),
            replaced_by = extra.replaced_by,
            user_id = extra.user_id,
        );
        by_path.insert(template(path), (id.to_owned(), version));
        rows.push(((id.to_owned(), version), row));
    }
    for id in overlay.endpoints.keys() {
        ensure!(
            rows.iter().any(|((i, _), _)| i == id),
            "spec/overlay.yaml describes {id}, which the spec does not have"
        );
    }
    rows.sort();
    let mut out = String::from(
        "//! Generated by `cargo xtask codegen` from spec/ (the official spec, throttle.yml,\n\
         //! authorizations.yml) and spec/overlay.yaml. Do not edit: change those and\n\
         //! run the generator again.\n\n\
         use crate::{Endpoint, Group, Kind, ParamKind, QueryParam, Typed};\n\n\
         /// Every data endpoint of the spec, sorted by id then version.\n\
         pub const DATA_ENDPOINTS: &[Endpoint] = &[\n",
    );
    for (_, row) in rows {
        writeln!(out, "{row}")?;
    }
    out.push_str("];\n");
    out.push_str(&use_cases(&spec.join("use-cases.yml"), &by_path)?);
    Ok(out)
}

/// A path with its parameters' names left out (`/v3/x/{}/y`): the use
/// cases and the spec name them differently.
fn template(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The official use cases (`spec/use-cases.yml`) as Rust: each endpoint
/// the site names by its uid is mapped to an endpoint of the spec by its
/// path; an uid whose path the spec does not have is listed as unresolved.
fn use_cases(file: &Path, by_path: &BTreeMap<String, (String, u8)>) -> Result<String> {
    let cases: Value = read_yaml(file)?;
    let endpoints = cases["endpoints"]
        .as_mapping()
        .context("use-cases.yml: no `endpoints`")?;
    let resolve = |uid: &str| -> Option<(String, u8)> {
        let path = endpoints.get(uid)?["path"].as_str()?;
        by_path.get(&template(path)).cloned()
    };
    let mut out = String::from(
        "\n/// The official use cases (spec/use-cases.yml), each endpoint by its id and\n\
         /// version in this catalogue.\n\
         pub const USE_CASES: &[crate::UseCase] = &[\n",
    );
    let mut unresolved = std::collections::BTreeSet::new();
    for (id, case) in cases["use_cases"]
        .as_mapping()
        .context("use-cases.yml: no `use_cases`")?
    {
        let id = id.as_str().context("use-cases.yml: a use case's id")?;
        let mut lists = Vec::new();
        for list in ["recommended", "optional", "forbidden"] {
            let mut resolved = Vec::new();
            for uid in case[list].as_sequence().into_iter().flatten() {
                let uid = uid.as_str().context("use-cases.yml: an endpoint's uid")?;
                match resolve(uid) {
                    Some((endpoint, version)) => resolved.push(format!("({endpoint:?}, {version})")),
                    None => {
                        unresolved.insert(uid.to_owned());
                    }
                }
            }
            resolved.dedup();
            lists.push(resolved.join(", "));
        }
        writeln!(
            out,
            "crate::UseCase {{ id: {id:?}, name: {name:?}, recommended: &[{}], optional: &[{}], forbidden: &[{}] }},",
            lists[0],
            lists[1],
            lists[2],
            name = case["name"].as_str().context("use-cases.yml: a use case's name")?,
        )?;
    }
    out.push_str("];\n");
    let listed: Vec<String> = unresolved.iter().map(|u| format!("{u:?}")).collect();
    writeln!(
        out,
        "\n/// The endpoints the use cases name that this catalogue does not have (by\n\
         /// their path), by the site's uid.\n\
         pub const USE_CASE_UNRESOLVED: &[&str] = &[{}];",
        listed.join(", ")
    )?;
    if !unresolved.is_empty() {
        eprintln!(
            "use cases: {} endpoint(s) not in the spec by their path: {}",
            unresolved.len(),
            listed.join(", ")
        );
    }
    Ok(out)
}

/// Formats `source` with the workspace's rustfmt settings.
fn format(root: &Path, source: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting rustfmt (rustup component add rustfmt)")?;
    std::io::Write::write_all(&mut child.stdin.take().context("rustfmt's stdin")?, source.as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(output.status.success(), "rustfmt failed on the generated code");
    Ok(String::from_utf8(output.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_catalogue_is_what_spec_gives() {
        let root = root();
        let fresh = format(&root, &generate(&root.join("spec")).unwrap()).unwrap();
        let committed = std::fs::read_to_string(root.join(GENERATED)).unwrap();
        assert!(fresh == committed, "{GENERATED} is stale: run `cargo xtask codegen`");
    }

    /// A copy of `spec/` in a temporary folder, with `file` edited.
    fn spec_with(file: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
        let spec = root().join("spec");
        let copy = tempfile::tempdir().unwrap();
        for name in [
            "openapi-entreprise.yaml",
            "throttle.yml",
            "authorizations.yml",
            "overlay.yaml",
            "use-cases.yml",
        ] {
            let text = std::fs::read_to_string(spec.join(name)).unwrap();
            let text = if name == file { edit(text) } else { text };
            std::fs::write(copy.path().join(name), text).unwrap();
        }
        copy
    }

    #[test]
    fn a_limit_changed_in_throttle_yml_changes_the_generated_table() {
        let copy = spec_with("throttle.yml", |throttle| {
            let (head, tail) = throttle.split_once("  high_latency_documents:").unwrap();
            format!(
                "{head}  high_latency_documents:{}",
                tail.replacen("limit: 5", "limit: 4", 1)
            )
        });
        let row = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.contains("id: \"dgfip_attestations_fiscales\""))
                .map(str::to_owned)
                .collect()
        };
        let before = row(&generate(&root().join("spec")).unwrap());
        let after = row(&generate(copy.path()).unwrap());
        assert_eq!(before.len(), 2, "v3 and v4");
        for (before, after) in before.iter().zip(&after) {
            assert!(before.contains("limit: 5, period_seconds: 60"), "{before}");
            assert!(after.contains("limit: 4, period_seconds: 60"), "{after}");
        }
    }

    #[test]
    fn an_endpoint_missing_from_the_overlay_is_named() {
        let copy = spec_with("overlay.yaml", |overlay| {
            overlay
                .lines()
                .filter(|l| !l.trim_start().starts_with("dgddi_eori:"))
                .map(|l| format!("{l}\n"))
                .collect()
        });
        let error = generate(copy.path()).unwrap_err().to_string();
        assert!(
            error.contains("dgddi_eori") && error.contains("overlay.yaml"),
            "{error}"
        );
    }
}
