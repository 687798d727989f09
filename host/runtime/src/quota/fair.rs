//! Work-conserving fair shares of one pool (a per-IP quota that several
//! applications share): weighted max-min fairness, decided at each request
//! by water-filling over the applications that want the pool now.
//!
//! Each application (a member) has a weight, its share. Those that want
//! more than they get (the asker, and every member refused within the last
//! [`hungry_for`]) are hungry; the others want what they used. The pool's
//! limit is filled level by level: a member that is not hungry and used
//! less than its weighted part keeps what it used, and what it leaves is
//! split again among the rest by weight, until the parts stop changing.
//! An idle member (nothing in the window, not hungry) takes no part: what
//! it does not use is lent to the busy ones in proportion to their
//! weights, and it is taken back as soon as it asks, since it is hungry
//! from its first refusal and the borrowers, then above their parts, are
//! refused until enough of their requests have left the window. A member
//! is admitted while it holds less than its part and the pool has room.
//!
//! Why this rule: it is the rule of hierarchical token buckets' borrowing
//! and of weighted fair queuing, said on a sliding window: each member
//! gets at least its weight's part of the pool whenever it asks (the
//! guarantee of a static share), and no capacity stays unused while
//! someone wants it (which a static share wastes). The lent part comes
//! back within one window, the time the borrowers' requests take to leave.
//!
//! A member under its guaranteed share (its weight's part of the limit)
//! is admitted while the per-IP window has room without reading any other
//! member ([`within_guarantee`]): only a member that borrows costs a look
//! at every member that wants the pool.
//!
//! The memory and SQLite stores decide with [`pool_wait`]; Redis runs the
//! same rule in `catalogue/quota/fair.lua`, and a test holds them alike.

use super::{Millis, QuotaKey};

/// One application's part of a pool, as the store decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct FairShare {
    /// The pool: the per-IP quota the applications share (its name and
    /// spec are the runtime's, so that the store also reads how full it
    /// is, whoever filled it).
    pub pool: QuotaKey,
    /// The application's own window of the pool (its name is the
    /// member's; its spec the pool's).
    pub member: QuotaKey,
    /// Its weight: its share of the pool (more than 0; the weights of a
    /// pool's members add up to at most 1, so that each one's share of the
    /// limit is guaranteed).
    pub weight: f64,
}

/// The window of every member's admissions together, in `pool`: read at
/// once to know whether the pool has room.
pub(super) fn pooled(pool: &QuotaKey) -> String {
    format!("{} shares", pool.name)
}

/// Whether a member holding `used` requests of `share`'s pool is within
/// its guaranteed share and the pool has room (`taken`: the most of what
/// the per-IP window and every member's admissions hold): then it is
/// admitted at once, whoever else wants the pool (its part is never
/// less), and the store reads no other member.
pub(super) fn within_guarantee(share: &FairShare, used: u32, taken: u32) -> bool {
    taken < share.pool.spec.limit && f64::from(used) < f64::from(share.pool.spec.limit) * share.weight
}

/// How long after its last refusal a member is still hungry: a tenth of
/// the window, at least a second. A member that stopped asking gives its
/// reserved part back after this long at most.
pub fn hungry_for(window_ms: Millis) -> Millis {
    (window_ms / 10).max(1000)
}

/// A member that wants part of the pool now, as the store read it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Candidate {
    pub(super) weight: f64,
    /// Its requests in the window.
    pub(super) used: u32,
    /// When its oldest request in the window left.
    pub(super) oldest: Option<Millis>,
    /// It wants more than it gets.
    pub(super) hungry: bool,
}

/// The candidates among a pool's `listed` members (name, weight, hungry),
/// each window read (and expired) by `window`, and where the member `me`
/// is among them: those holding requests, and the hungry.
pub(super) fn candidates<E>(
    listed: Vec<(String, f64, bool)>,
    me: &str,
    mut window: impl FnMut(&str) -> Result<(u32, Option<Millis>), E>,
) -> Result<(Vec<Candidate>, usize), E> {
    let (mut candidates, mut mine) = (Vec::new(), 0);
    for (name, weight, hungry) in listed {
        let hungry = hungry || name == me;
        let (used, oldest) = window(&name)?;
        if used == 0 && !hungry {
            continue;
        }
        if name == me {
            mine = candidates.len();
        }
        candidates.push(Candidate {
            weight,
            used,
            oldest,
            hungry,
        });
    }
    Ok((candidates, mine))
}

/// Each candidate's part of `limit` (weighted max-min fairness).
pub(super) fn parts(limit: u32, candidates: &[Candidate]) -> Vec<f64> {
    let mut parts = vec![0.0; candidates.len()];
    let mut open: Vec<usize> = (0..candidates.len()).collect();
    let mut left = f64::from(limit);
    loop {
        let weights: f64 = open.iter().map(|&i| candidates[i].weight).sum();
        if weights <= 0.0 {
            break;
        }
        let (settled, still): (Vec<usize>, Vec<usize>) = open.iter().partition(|&&i| {
            let c = &candidates[i];
            !c.hungry && f64::from(c.used) <= left * c.weight / weights
        });
        if settled.is_empty() {
            for &i in &open {
                parts[i] = left * candidates[i].weight / weights;
            }
            break;
        }
        for &i in &settled {
            parts[i] = f64::from(candidates[i].used);
            left -= parts[i];
        }
        open = still;
        if open.is_empty() {
            break;
        }
    }
    parts
}

/// How long the candidate `me` must wait for a slot of the pool `pool`,
/// if it must: the pool is full (its members' requests, or the per-IP
/// window itself, `ip_used` with its oldest at `ip_oldest`), or `me` holds
/// its part already. `None`: admitted.
pub(super) fn pool_wait(
    pool: &QuotaKey,
    candidates: &[Candidate],
    me: usize,
    ip: (u32, Option<Millis>),
    now: Millis,
) -> Option<Millis> {
    let length = pool.spec.window.as_millis() as Millis;
    let leaves = |oldest: Option<Millis>| oldest.map_or(length, |t| (t + length + 1).saturating_sub(now));
    let used: u32 = candidates.iter().map(|c| c.used).sum();
    if used.max(ip.0) >= pool.spec.limit {
        let oldest = candidates.iter().filter_map(|c| c.oldest).chain(ip.1).min();
        return Some(leaves(oldest).max(1));
    }
    let part = parts(pool.spec.limit, candidates)[me];
    (f64::from(candidates[me].used) >= part).then(|| leaves(candidates[me].oldest).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(weight: f64, used: u32, hungry: bool) -> Candidate {
        Candidate {
            weight,
            used,
            oldest: None,
            hungry,
        }
    }

    #[test]
    fn the_busy_split_the_idle_ones_part_in_proportion_and_give_it_back() {
        // Shares 0.5 / 0.25 / 0.25, the third idle: 2/3 and 1/3 of 30.
        let busy = [member(0.5, 0, true), member(0.25, 0, true)];
        let p = parts(30, &busy);
        assert!((p[0] - 20.0).abs() < 1e-9 && (p[1] - 10.0).abs() < 1e-9, "{p:?}");
        // It asks: back to 15 / 7.5 / 7.5, whatever the others hold.
        let all = [member(0.5, 20, true), member(0.25, 10, true), member(0.25, 0, true)];
        let p = parts(30, &all);
        assert!((p[0] - 15.0).abs() < 1e-9 && (p[2] - 7.5).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn a_light_member_keeps_what_it_uses_and_leaves_the_rest_to_the_hungry() {
        // Equal weights; the second used 2 and wants no more.
        let p = parts(30, &[member(1.0, 5, true), member(1.0, 2, false), member(1.0, 0, true)]);
        assert!((p[1] - 2.0).abs() < 1e-9 && (p[0] - 14.0).abs() < 1e-9, "{p:?}");
        // A member above its part that stopped asking keeps its part only.
        let p = parts(30, &[member(1.0, 25, false), member(1.0, 0, true)]);
        assert!((p[0] - 15.0).abs() < 1e-9 && (p[1] - 15.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn a_member_under_its_part_waits_only_for_a_full_pool() {
        let pool = QuotaKey {
            name: "ip 30/3s".into(),
            spec: "30/3s".parse().unwrap(),
        };
        let mut all = vec![member(0.5, 20, true), member(0.25, 10, true), member(0.25, 0, true)];
        all[0].oldest = Some(1_000);
        // Full: the oldest request of the pool frees the next slot.
        assert_eq!(pool_wait(&pool, &all, 2, (30, Some(900)), 2_000), Some(1_901));
        all[1].used = 5;
        // Room now: the newcomer is admitted, the borrower is not.
        assert_eq!(pool_wait(&pool, &all, 2, (25, Some(900)), 2_000), None);
        assert_eq!(pool_wait(&pool, &all, 0, (25, Some(900)), 2_000), Some(2_001));
    }
}
