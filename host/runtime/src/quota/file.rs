//! Quotas in a file that every process of one machine shares.
//!
//! Each decision takes an exclusive OS lock (`flock`) on a lock file beside
//! the state, reads the state afresh, decides, writes the new state to a
//! temporary file of its own and renames it over the old one, then lets the
//! lock go: two processes never decide on the same state, and a crash
//! leaves the old state or the new one, never half of one.

use super::windows::Windows;
use super::{BoxFuture, Denied, Millis, QuotaKey, QuotaStore, QuotaStoreError, ServerWord, Unavailable};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The windows in a file shared by the processes of one machine.
#[derive(Debug, Clone)]
pub struct FileStore {
    file: PathBuf,
}

impl FileStore {
    /// The store in `file`, created now. Fails now when the file exists and
    /// is not a quota state (rather than reset it), or cannot be written.
    pub fn open(file: PathBuf) -> Result<Self, QuotaStoreError> {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|source| QuotaStoreError::File {
            path: file.clone(),
            reason: format!(
                "creating its folder {} (give a directory to --state-dir)",
                dir.display()
            ),
            source: Some(source),
        })?;
        let store = Self { file };
        store.locked(|_| ((), true))?;
        Ok(store)
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Runs `decide` on the current state under the lock, then saves the
    /// state if `decide` says it changed.
    fn locked<R>(&self, decide: impl FnOnce(&mut Windows) -> (R, bool)) -> Result<R, QuotaStoreError> {
        // The I/O error is the source: a report shows it after the reason.
        let error = |reason: &str, source: std::io::Error| QuotaStoreError::File {
            path: self.file.clone(),
            reason: reason.to_owned(),
            source: Some(source),
        };
        let lock = lock_file(&self.file).map_err(|e| error("opening its lock file", e))?;
        lock.lock().map_err(|e| error("locking it", e))?;
        let mut windows = match std::fs::read(&self.file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| QuotaStoreError::File {
                path: self.file.clone(),
                reason: format!("it is not a quota state ({e}); move it away to start afresh"),
                source: None,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Windows::default(),
            Err(e) => return Err(error("reading it", e)),
        };
        let (result, changed) = decide(&mut windows);
        if changed {
            let bytes = serde_json::to_vec(&windows).map_err(|e| error("encoding it", std::io::Error::other(e)))?;
            // Written whole under the lock; the rename keeps a crash from
            // leaving half a state.
            crate::atomic::write(&self.file, &bytes).map_err(|e| error("writing it", e))?;
        }
        drop(lock);
        Ok(result)
    }

    /// Runs [`Self::locked`] off the async executor: the lock may wait.
    async fn blocking<R: Send + 'static>(
        &self,
        decide: impl FnOnce(&mut Windows) -> (R, bool) + Send + 'static,
    ) -> Result<R, QuotaStoreError> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.locked(decide)).await {
            Ok(result) => result,
            Err(e) => Err(QuotaStoreError::File {
                path: self.file.clone(),
                reason: format!("the decision did not finish: {e}"),
                source: None,
            }),
        }
    }
}

/// The lock file beside `state` (`quotas.json.lock`): locked, never renamed,
/// so that every process locks the same file.
fn lock_file(state: &Path) -> std::io::Result<File> {
    let mut name = state.as_os_str().to_owned();
    name.push(".lock");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(name))
}

impl QuotaStore for FileStore {
    fn try_acquire<'a>(&'a self, keys: &'a [QuotaKey], now: Millis) -> BoxFuture<'a, Result<(), Denied>> {
        let owned = keys.to_vec();
        Box::pin(async move {
            // A refusal takes no slot: nothing to write.
            let acquire = move |windows: &mut Windows| {
                let decision = windows.acquire(&owned, now);
                let taken = decision.is_ok();
                (decision, taken)
            };
            match self.blocking(acquire).await {
                Ok(decision) => decision.map_err(Denied::Full),
                // Nothing leaves that was not counted.
                Err(e) => {
                    tracing::error!(target: "api_entreprise::quota", "{}", with_causes(&e));
                    Err(Denied::Unavailable(Unavailable {
                        store: format!("the state file {}", self.file.display()),
                        reason: with_causes(&e),
                        since: now,
                    }))
                }
            }
        })
    }

    fn server_said<'a>(&'a self, name: &'a str, word: ServerWord, now: Millis) -> BoxFuture<'a, ()> {
        let name = name.to_owned();
        Box::pin(async move {
            if let Err(e) = self
                .blocking(move |windows| (windows.server_said(&name, word, now), true))
                .await
            {
                tracing::error!(target: "api_entreprise::quota", "the server's word was not saved: {}", with_causes(&e));
            }
        })
    }
}

/// An error and its causes on one line, for a message that is not a report.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
