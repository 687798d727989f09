//! The decision every local store takes (in memory, in the machine's SQLite
//! file), and the same in Redis's Lua script and the Node and Python
//! packages: the conformance scenarios (`tests/conformance/quotas.json`)
//! hold them to it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::fair::{FairShare, candidates, hungry_for, pool_wait, pooled, within_guarantee};
use super::{Millis, QuotaKey, ServerWord, Usage, Wait};

/// The server's last word on a quota: `remaining` requests until `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ServerHint {
    pub(super) remaining: u32,
    pub(super) reset: Millis,
}

/// How long a request must wait for a slot in one quota, if it must: the
/// window (`length` ms, a request exactly `length` ago still inside it)
/// holds `count` requests, the oldest at `oldest`, and the server said
/// `hint` of it.
pub(super) fn wait_in(
    limit: u32,
    length: Millis,
    count: usize,
    oldest: Option<Millis>,
    hint: Option<ServerHint>,
    now: Millis,
) -> Option<Millis> {
    let mut wait = None;
    if count >= limit as usize {
        // A quota of 0 (built by hand: the parser refuses it) admits nothing.
        wait = Some(oldest.map_or(length, |oldest| (oldest + length + 1).saturating_sub(now)));
    }
    if let Some(hint) = hint.filter(|h| now < h.reset && h.remaining == 0) {
        wait = Some(wait.unwrap_or(0).max(hint.reset - now));
    }
    wait
}

/// The usage of `key` from what a store holds: `used` requests in the
/// window, the oldest at `oldest`, and the server's `hint`.
pub(super) fn usage_of(
    key: &QuotaKey,
    used: usize,
    oldest: Option<Millis>,
    hint: Option<ServerHint>,
    now: Millis,
) -> Usage {
    let length = key.spec.window.as_millis() as Millis;
    Usage {
        name: key.name.clone(),
        spec: key.spec,
        used: u32::try_from(used).unwrap_or(u32::MAX),
        frees_in: oldest.map(|t| Duration::from_millis((t + length + 1).saturating_sub(now))),
        server: hint
            .filter(|h| now < h.reset)
            .map(|h| (h.remaining, Duration::from_millis(h.reset - now))),
    }
}

/// The longest of the waits, with its quota's name: the one a refusal names.
pub(super) fn longest(waits: impl IntoIterator<Item = (String, Millis)>) -> Option<Wait> {
    let mut longest: Option<Wait> = None;
    for (quota, ms) in waits {
        if longest
            .as_ref()
            .is_none_or(|w| w.retry_after < Duration::from_millis(ms))
        {
            longest = Some(Wait {
                quota,
                retry_after: Duration::from_millis(ms),
            });
        }
    }
    longest
}

/// The hint after the server's `word` at `now`, given the `current` one: it
/// tightens within the same reset (to the second), never loosens. `None`
/// when the word changes nothing (a reset already past).
pub(super) fn hint_after(current: Option<ServerHint>, word: ServerWord, now: Millis) -> Option<ServerHint> {
    let current = current.filter(|h| now < h.reset);
    match word {
        ServerWord::Remaining { reset_in, .. } if reset_in.is_zero() => None,
        ServerWord::Remaining { remaining, reset_in } => {
            let reset = now.saturating_add(reset_in.as_millis() as Millis);
            Some(match current {
                Some(h) if h.reset.abs_diff(reset) < 1000 => ServerHint {
                    remaining: h.remaining.min(remaining),
                    reset: h.reset,
                },
                _ => ServerHint { remaining, reset },
            })
        }
        ServerWord::Closed(retry_after) => {
            let until = now.saturating_add(retry_after.as_millis() as Millis);
            Some(ServerHint {
                remaining: 0,
                reset: current.map_or(until, |h| h.reset.max(until)),
            })
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    /// When each admitted request left, oldest first.
    admitted: VecDeque<Millis>,
    /// What the server said of this quota, when it said something.
    server: Option<ServerHint>,
}

/// A member of a pool, as the in-memory store knows it.
#[derive(Debug, Default)]
struct Registered {
    weight: f64,
    /// Until when it wants more than it gets.
    hungry_until: Millis,
}

/// Every quota's window, by name, and the members of every shared pool:
/// the in-memory store's state.
#[derive(Debug, Default)]
pub(super) struct Windows {
    windows: BTreeMap<String, Window>,
    pools: BTreeMap<String, BTreeMap<String, Registered>>,
}

impl Windows {
    /// Takes a slot in every quota of `keys` at `now`, or in none.
    pub(super) fn acquire(&mut self, keys: &[QuotaKey], now: Millis) -> Result<(), Wait> {
        let mut waits = Vec::new();
        for key in keys {
            let length = key.spec.window.as_millis() as Millis;
            let (count, oldest) = self.expire(&key.name, length, now);
            let server = self.windows.get(&key.name).and_then(|w| w.server);
            if let Some(ms) = wait_in(key.spec.limit, length, count as usize, oldest, server, now) {
                waits.push((key.name.clone(), ms));
            }
        }
        if let Some(wait) = longest(waits) {
            return Err(wait);
        }
        for key in keys {
            let window = self.windows.entry(key.name.clone()).or_default();
            window.admitted.push_back(now);
            if let Some(hint) = window.server.as_mut().filter(|h| now < h.reset) {
                hint.remaining = hint.remaining.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// How full each quota of `keys` is at `now`.
    pub(super) fn usage(&self, keys: &[QuotaKey], now: Millis) -> Vec<Usage> {
        keys.iter()
            .map(|key| {
                let length = key.spec.window.as_millis() as Millis;
                let window = self.windows.get(&key.name);
                let inside: Vec<Millis> = window
                    .map(|w| {
                        w.admitted
                            .iter()
                            .copied()
                            .filter(|t| now.saturating_sub(*t) <= length)
                            .collect()
                    })
                    .unwrap_or_default();
                usage_of(
                    key,
                    inside.len(),
                    inside.first().copied(),
                    window.and_then(|w| w.server),
                    now,
                )
            })
            .collect()
    }

    /// Records the server's word on `name`.
    pub(super) fn server_said(&mut self, name: &str, word: ServerWord, now: Millis) {
        let window = self.windows.entry(name.to_owned()).or_default();
        if let Some(hint) = hint_after(window.server, word, now) {
            window.server = Some(hint);
        }
    }

    /// Forgets what left `name`'s window (`length` ms) by `now`; its count
    /// and oldest request then.
    fn expire(&mut self, name: &str, length: Millis, now: Millis) -> (u32, Option<Millis>) {
        let Some(window) = self.windows.get_mut(name) else {
            return (0, None);
        };
        while window.admitted.front().is_some_and(|t| now.saturating_sub(*t) > length) {
            window.admitted.pop_front();
        }
        (
            u32::try_from(window.admitted.len()).unwrap_or(u32::MAX),
            window.admitted.front().copied(),
        )
    }

    /// Takes a slot of every pool of `shares` for its member at `now`, by
    /// the fair rule (`fair.rs`), or in none: then the member is hungry in
    /// each.
    pub(super) fn acquire_fair(&mut self, shares: &[FairShare], now: Millis) -> Result<(), Wait> {
        let mut waits = Vec::new();
        for share in shares {
            let length = share.pool.spec.window.as_millis() as Millis;
            self.pools
                .entry(share.pool.name.clone())
                .or_default()
                .entry(share.member.name.clone())
                .or_default()
                .weight = share.weight;
            let (mine, ip) = (
                self.expire(&share.member.name, length, now).0,
                self.expire(&share.pool.name, length, now),
            );
            let taken = self.expire(&pooled(&share.pool), length, now).0.max(ip.0);
            if within_guarantee(share, mine, taken) {
                continue;
            }
            let members = &self.pools[&share.pool.name];
            let listed = members
                .iter()
                .map(|(name, m)| (name.clone(), m.weight, m.hungry_until > now))
                .collect();
            let (candidates, me) = candidates(listed, &share.member.name, |name| {
                Ok::<_, std::convert::Infallible>(self.expire(name, length, now))
            })
            .unwrap_or_else(|never| match never {});
            if let Some(ms) = pool_wait(&share.pool, &candidates, me, ip, now) {
                waits.push((share.member.name.clone(), ms));
            }
        }
        if let Some(wait) = longest(waits) {
            for share in shares {
                let length = share.pool.spec.window.as_millis() as Millis;
                if let Some(member) = self
                    .pools
                    .get_mut(&share.pool.name)
                    .and_then(|m| m.get_mut(&share.member.name))
                {
                    member.hungry_until = now + hungry_for(length);
                }
            }
            return Err(wait);
        }
        for share in shares {
            for name in [share.member.name.clone(), pooled(&share.pool)] {
                self.windows.entry(name).or_default().admitted.push_back(now);
            }
        }
        Ok(())
    }
}
