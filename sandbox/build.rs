//! Embeds every fixture under `fixtures/` so the sandbox needs no file at run time.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).expect("sandbox/fixtures") {
        let dir = dir.unwrap().path();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                files.push(file);
            }
        }
    }
    files.sort();
    let mut out = String::from(
        "/// (operation id, file name, YAML text) of every fixture.\npub static FIXTURES: &[(&str, &str, &str)] = &[\n",
    );
    for file in &files {
        let op = file.parent().unwrap().file_name().unwrap().to_str().unwrap();
        let name = file.file_name().unwrap().to_str().unwrap();
        writeln!(
            out,
            "    ({op:?}, {name:?}, include_str!({:?})),",
            file.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("fixtures.rs");
    std::fs::write(dest, out).unwrap();
}
