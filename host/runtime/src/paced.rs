//! Calls at the quotas' own pace, for the commands that make many
//! (`batch`, `dossier`): a call the host holds back for want of a quota
//! slot, behind an open circuit, or while the quota store is away was not
//! sent, so it waits and goes again; every other outcome is its answer.

use std::time::Duration;

use crate::{CallError, Runtime, types};

/// The calls that wait for something other than a quota slot, for the
/// progress line.
#[derive(Debug, Default)]
pub struct Waiting {
    circuit: std::sync::atomic::AtomicU64,
    store: std::sync::atomic::AtomicU64,
    /// What the quota store said last.
    store_down: std::sync::Mutex<String>,
}

impl Waiting {
    /// Calls waiting for a circuit; calls waiting for the store, and why.
    pub fn now(&self) -> (u64, Option<(u64, String)>) {
        use std::sync::atomic::Ordering::Relaxed;
        let store = match self.store.load(Relaxed) {
            0 => None,
            n => Some((n, self.store_down.lock().unwrap_or_else(|p| p.into_inner()).clone())),
        };
        (self.circuit.load(Relaxed), store)
    }
}

/// How often a call that found the quota store away asks again.
const STORE_RETRY: Duration = Duration::from_millis(500);

/// One row's call: a quota without a slot, an open circuit, or a quota
/// store that is away is waited out (nothing was sent), then the call goes
/// again; every other outcome is the row's answer. Transient failures were
/// already retried by the runtime's policy.
pub async fn call(
    runtime: &Runtime,
    request: &types::Request,
    waiting: &Waiting,
) -> Result<types::Response, CallError> {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        match runtime.call(request).await {
            Err(CallError::RateLimited { retry_after, .. }) => {
                tokio::time::sleep(retry_after.max(Duration::from_millis(10))).await;
            }
            Err(CallError::CircuitOpen { retry_after, what }) => {
                tracing::warn!(target: "api_entreprise::paced", "{what} is open: waiting {retry_after:?}");
                waiting.circuit.fetch_add(1, Relaxed);
                tokio::time::sleep(retry_after.max(Duration::from_millis(100))).await;
                waiting.circuit.fetch_sub(1, Relaxed);
            }
            Err(CallError::Closed { retry_after, .. }) => {
                tokio::time::sleep(retry_after.max(Duration::from_millis(100))).await;
            }
            Err(CallError::QuotaStoreUnavailable(down)) => {
                *waiting.store_down.lock().unwrap_or_else(|p| p.into_inner()) = down.to_string();
                waiting.store.fetch_add(1, Relaxed);
                tokio::time::sleep(STORE_RETRY).await;
                waiting.store.fetch_sub(1, Relaxed);
            }
            result => return result,
        }
    }
}
