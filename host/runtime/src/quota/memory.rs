//! Quotas in this process only.

use std::sync::Mutex;

use super::windows::Windows;
use super::{BoxFuture, Denied, FairShare, Millis, QuotaKey, QuotaStore, ServerWord, Unavailable, Usage};

/// The windows in this process, under a mutex: what one host alone needs.
#[derive(Debug, Default)]
pub struct MemoryStore {
    windows: Mutex<Windows>,
}

impl MemoryStore {
    fn windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl QuotaStore for MemoryStore {
    fn try_acquire<'a>(&'a self, keys: &'a [QuotaKey], now: Millis) -> BoxFuture<'a, Result<(), Denied>> {
        let decision = self.windows().acquire(keys, now).map_err(Denied::Full);
        Box::pin(std::future::ready(decision))
    }

    fn try_acquire_fair<'a>(&'a self, shares: &'a [FairShare], now: Millis) -> BoxFuture<'a, Result<(), Denied>> {
        let decision = self.windows().acquire_fair(shares, now).map_err(Denied::Full);
        Box::pin(std::future::ready(decision))
    }

    fn server_said<'a>(&'a self, name: &'a str, word: ServerWord, now: Millis) -> BoxFuture<'a, ()> {
        self.windows().server_said(name, word, now);
        Box::pin(std::future::ready(()))
    }

    fn describe(&self) -> String {
        "this process's memory".into()
    }

    fn usage<'a>(&'a self, keys: &'a [QuotaKey], now: Millis) -> BoxFuture<'a, Result<Vec<Usage>, Unavailable>> {
        Box::pin(std::future::ready(Ok(self.windows().usage(keys, now))))
    }
}
