//! The audit trail as JSON lines, one per call: what the gateway writes on
//! its standard output and what a runtime built with
//! [`crate::RuntimeBuilder::audit_file`] appends to a file (the command's
//! and batch's `--audit FILE`), so that one reader (`status`, a log
//! collector) reads both. Never a key or a token.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of the audit trail.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AuditLine {
    /// When it was answered (RFC 3339).
    pub time: String,
    /// The gateway's application whose key it carried (none: no valid key,
    /// or not through the gateway).
    pub application: Option<String>,
    /// The gateway's profile (its token) it was called with.
    pub profile: Option<String>,
    /// The endpoint.
    pub endpoint: Option<&'static str>,
    /// That endpoint's version.
    pub version: Option<u8>,
    /// The trace's `context`.
    pub context: Option<String>,
    /// The trace's `recipient`.
    pub recipient: Option<String>,
    /// The trace's `object`.
    pub object: Option<String>,
    /// The trace's `user_id`.
    pub user_id: Option<String>,
    /// The status answered (0: none came, such as a call refused by the
    /// host before it was sent).
    pub status: u16,
    /// The error codes answered (the server's, or the host's own).
    pub codes: Vec<String>,
    /// What the host made of it when no status says it: `quota`,
    /// `circuit`, `deadline`, `token 00103`… (none through the gateway,
    /// whose status says it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The API's `X-Request-ID`.
    pub request_id: Option<String>,
    /// How long the answer took.
    pub latency_ms: f64,
    /// The client component that served the call: version and digest.
    pub client: Option<String>,
    /// Whether the request reached the API (for the gateway's count of
    /// each token's calls; not written).
    #[serde(skip)]
    pub sent: bool,
}

/// A file the audit lines are appended to, one write per line: several
/// processes appending to one file (O_APPEND) never interleave a line.
#[derive(Debug)]
pub(crate) struct AuditFile {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AuditFile {
    /// Opens `path` for appending, creating it readable by its owner only.
    pub(crate) fn open(path: &Path) -> Result<Self, crate::ConfigError> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| crate::ConfigError::Audit(format!("{}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Appends `line`; a failure is said in the log, never fails the call.
    pub(crate) fn append(&self, line: &AuditLine) {
        let Ok(mut text) = serde_json::to_vec(line) else { return };
        text.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = file.write_all(&text) {
            tracing::error!("writing the audit trail to {}: {e}", self.path.display());
        }
    }
}
