//! The components directory: the client versions `component install` keeps
//! (`client-<version>-<digest>.wasm`), and `history`, their names in the
//! order they were installed, the last one current. Every command that
//! runs the client uses the current one unless `--component` names
//! another; with none installed, the client built into the command. A
//! running `serve` watches `history` and swaps when it changes.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use api_entreprise::VersionInfo;

/// The components directory.
#[derive(Debug, Clone)]
pub struct Components {
    dir: PathBuf,
}

impl Components {
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The file whose last line names the current version.
    pub fn history_file(&self) -> PathBuf {
        self.dir.join("history")
    }

    /// The installed versions' file names, oldest first.
    pub fn history(&self) -> anyhow::Result<Vec<String>> {
        match std::fs::read_to_string(self.history_file()) {
            Ok(text) => Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.history_file().display())),
        }
    }

    /// The current version's file, if one is installed.
    pub fn current(&self) -> anyhow::Result<Option<PathBuf>> {
        let Some(name) = self.history()?.pop() else {
            return Ok(None);
        };
        let path = self.dir.join(&name);
        if !path.is_file() {
            bail!(
                "the current client component {} is missing: run `api-entreprise component rollback`, or install it again",
                path.display()
            );
        }
        Ok(Some(path))
    }

    /// Copies `file` (already checked, described by `info`) into the
    /// directory and makes it current. Returns where it is kept.
    pub fn install(&self, file: &Path, info: &VersionInfo) -> anyhow::Result<PathBuf> {
        let _locked = self.lock()?;
        let version: String = info
            .version
            .as_deref()
            .unwrap_or("unversioned")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-+".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("client-{version}-{}.wasm", info.digest);
        let kept = self.dir.join(&name);
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        self.write(&name, &bytes)?;
        let mut history = self.history()?;
        history.push(name);
        self.write_history(&history)?;
        Ok(kept)
    }

    /// Makes the version installed before the current one current again;
    /// returns the one withdrawn and the one now current (`None`: the
    /// built-in client).
    pub fn rollback(&self) -> anyhow::Result<(String, Option<String>)> {
        let _locked = self.lock()?;
        let mut history = self.history()?;
        let Some(withdrawn) = history.pop() else {
            bail!(
                "no client component is installed in {}: the built-in one is in use, there is nothing to roll back",
                self.dir.display()
            );
        };
        self.write_history(&history)?;
        Ok((withdrawn, history.last().cloned()))
    }

    /// Holds the directory's lock (an OS lock on `.lock`, released with
    /// the process): two installs or rollbacks at once each read `history`,
    /// change it and write it, and one would undo the other.
    fn lock(&self) -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock().with_context(|| format!("locking {}", path.display()))?;
        Ok(file)
    }

    fn write_history(&self, history: &[String]) -> anyhow::Result<()> {
        let text: String = history.iter().map(|name| format!("{name}\n")).collect();
        self.write("history", text.as_bytes())
    }

    /// Writes `name` whole or not at all: a reader never sees half a file,
    /// a crash leaves the old one or the new.
    fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        api_entreprise::atomic::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    }
}
