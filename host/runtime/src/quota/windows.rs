//! The windows themselves: what every local store (memory, file) decides
//! with, as plain data that serialises to the state file.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::{Millis, QuotaKey, ServerWord, Wait};

/// The server's last word on a quota: `remaining` requests until `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct ServerHint {
    remaining: u32,
    reset: Millis,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Window {
    /// When each admitted request left, oldest first.
    admitted: VecDeque<Millis>,
    /// What the server said of this quota, when it said something.
    #[serde(default)]
    server: Option<ServerHint>,
}

/// Every quota's window, by name.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub(super) struct Windows(BTreeMap<String, Window>);

impl Windows {
    /// Takes a slot in every quota of `keys` at `now`, or in none.
    pub(super) fn acquire(&mut self, keys: &[QuotaKey], now: Millis) -> Result<(), Wait> {
        let mut longest: Option<Wait> = None;
        for key in keys {
            let window = self.0.entry(key.name.clone()).or_default();
            let length = key.spec.window.as_millis() as Millis;
            // A request exactly `window` ago is still inside it.
            while window.admitted.front().is_some_and(|t| now.saturating_sub(*t) > length) {
                window.admitted.pop_front();
            }
            let mut wait = None;
            if window.admitted.len() >= key.spec.limit as usize {
                // A quota of 0 (built by hand: the parser refuses it) admits nothing.
                wait = Some(
                    window
                        .admitted
                        .front()
                        .map_or(length, |oldest| (oldest + length + 1).saturating_sub(now)),
                );
            }
            if let Some(hint) = window.server.filter(|h| now < h.reset && h.remaining == 0) {
                wait = Some(wait.unwrap_or(0).max(hint.reset - now));
            }
            if let Some(ms) = wait
                && longest
                    .as_ref()
                    .is_none_or(|w| w.retry_after < Duration::from_millis(ms))
            {
                longest = Some(Wait {
                    quota: key.name.clone(),
                    retry_after: Duration::from_millis(ms),
                });
            }
        }
        if let Some(wait) = longest {
            return Err(wait);
        }
        for key in keys {
            let window = self.0.entry(key.name.clone()).or_default();
            window.admitted.push_back(now);
            if let Some(hint) = window.server.as_mut().filter(|h| now < h.reset) {
                hint.remaining = hint.remaining.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Records the server's word on `name`: it tightens, never loosens.
    pub(super) fn server_said(&mut self, name: &str, word: ServerWord, now: Millis) {
        let window = self.0.entry(name.to_owned()).or_default();
        let current = window.server.filter(|h| now < h.reset);
        window.server = match word {
            ServerWord::Remaining { reset, .. } if reset <= now => return,
            ServerWord::Remaining { remaining, reset } => Some(match current {
                Some(h) if h.reset == reset => ServerHint {
                    remaining: h.remaining.min(remaining),
                    reset,
                },
                _ => ServerHint { remaining, reset },
            }),
            ServerWord::Closed(retry_after) => {
                let until = now.saturating_add(retry_after.as_millis() as Millis);
                Some(ServerHint {
                    remaining: 0,
                    reset: current.map_or(until, |h| h.reset.max(until)),
                })
            }
        };
    }
}
