//! Debian's headless Chromium for the tests that judge a page by what a
//! browser shows: its DOM once the page's script ran, and a screenshot.

#![allow(dead_code, reason = "each test binary uses its own part of the harness")]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh folder of this test process (a browser profile, say).
pub fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("api-entreprise-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Debian's chromium, which `scripts/setup-tests` installs.
pub fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "Debian's chromium is needed for the browser tests: run scripts/setup-tests (apt-get install chromium)"
    );
    path
}

/// Chromium headless with the flags this machine needs (no sandbox as root,
/// no background traffic to the outside).
pub fn browser(profile: &Path) -> Command {
    let mut command = Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The DOM of `url` once its script ran for `budget_ms` of virtual time.
pub fn dom(url: &str, budget_ms: u32, profile: &Path) -> String {
    let out = browser(profile)
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(["--dump-dom", url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("</html>"),
        "chromium showed no page for {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

pub fn screenshot(url: &str, file: &Path, profile: &Path) {
    let out = browser(profile)
        .args(["--window-size=1366,900", "--virtual-time-budget=1000"])
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        file.metadata().is_ok_and(|m| m.len() > 10_000),
        "no screenshot of {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
