//! Hot swap: a running [`Runtime`] replaces its client version.
//!
//! A candidate is read and compiled off the serving path, then must pass,
//! in order: the contract check (as at start), a comparison of its catalogue
//! with the serving version's and the host's (reported; the host's own
//! catalogue still decides every policy), and the canary (`canary.rs`):
//! both versions on the same inputs, where a trap, a success turned into an
//! error or an error turned into a success refuses the swap unless the
//! caller accepts the differences. Then it is swapped in at once: a call in
//! flight ends on the version it started with, new calls get the new one,
//! and the one before is kept for [`Runtime::rollback`].
//!
//! After a swap the new version is on probation for its first
//! [`PROBATION_CALLS`] calls: as soon as at least [`MIN_FAILURES`] of them
//! have trapped or come back unparseable, and that share is more than twice
//! the previous version's (over its whole service) plus two points, the
//! runtime rolls back by itself, logs it, and sends a [`SwapEvent`] to
//! every receiver from [`Runtime::subscribe`].

mod canary;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

pub use canary::{CanaryReport, Difference};

use crate::error::{CallError, ClientError, ConfigError};
use crate::runtime::loaded::{LoadTimings, Loaded, load};
use crate::runtime::{ComponentSource, VersionInfo};
use crate::{Runtime, types};

/// How many of a new version's first calls are watched.
pub const PROBATION_CALLS: u64 = 200;

/// The fewest failures that can roll a version back.
pub const MIN_FAILURES: u64 = 5;

/// How many events a slow subscriber may fall behind by.
const EVENTS: usize = 64;

/// The versions of a runtime.
pub(crate) struct Versions {
    slots: RwLock<Slots>,
    /// One swap at a time: a second waits, then compares with the first's.
    swapping: tokio::sync::Mutex<()>,
    events: broadcast::Sender<SwapEvent>,
}

struct Slots {
    current: Arc<Loaded>,
    previous: Option<Arc<Loaded>>,
    /// The previous version's failure share, while the current one is on
    /// probation.
    probation: Option<f64>,
}

/// Something that happened to a runtime's version.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SwapEvent {
    /// A new version serves.
    Swapped {
        /// The one that served before.
        from: VersionInfo,
        /// The one that serves now.
        to: VersionInfo,
    },
    /// A candidate was refused; the serving version is untouched.
    Refused {
        /// What was refused (its file), and why.
        reason: String,
    },
    /// The previous version serves again.
    RolledBack {
        /// The one that was withdrawn.
        from: VersionInfo,
        /// The one that serves again.
        to: VersionInfo,
        /// Asked for, or automatic.
        reason: RollbackReason,
    },
}

/// Why a version was rolled back.
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackReason {
    /// [`Runtime::rollback`] was called.
    Asked,
    /// It failed clearly more than the version before it.
    Misbehaved {
        /// Its calls so far.
        calls: u64,
        /// How many of them trapped or could not be parsed.
        failures: u64,
        /// The previous version's failure share.
        baseline: f64,
    },
}

impl std::fmt::Display for RollbackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Asked => f.write_str("asked for"),
            Self::Misbehaved {
                calls,
                failures,
                baseline,
            } => write!(
                f,
                "{failures} of its first {calls} calls trapped or could not be parsed, against {:.1}% for the version before",
                baseline * 100.0
            ),
        }
    }
}

/// How the candidate's catalogue differs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogueChanges {
    /// Endpoints (`id vN`) it has and the serving version has not.
    pub added: Vec<String>,
    /// Endpoints the serving version has and it has not.
    pub removed: Vec<String>,
    /// Endpoints both have, described differently.
    pub changed: Vec<String>,
    /// Where it differs from the host's catalogue, whose quotas and
    /// timeouts apply whatever it says.
    pub unlike_host: Vec<String>,
}

/// How long each step of a swap took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwapTimings {
    /// Reading, checking and compiling the candidate.
    pub load: LoadTimings,
    /// Listing its endpoints and running the canary.
    pub canary: Duration,
    /// Putting it in place.
    pub switch: Duration,
}

/// What a check (and a swap) found.
#[derive(Debug, Clone)]
pub struct SwapReport {
    /// The version serving when the check began.
    pub serving: VersionInfo,
    /// The candidate.
    pub candidate: VersionInfo,
    /// How its catalogue differs.
    pub catalogue: CatalogueChanges,
    /// What the canary found.
    pub canary: CanaryReport,
    /// How long each step took.
    pub timings: SwapTimings,
    /// Whether it now serves.
    pub swapped: bool,
}

impl SwapReport {
    /// Whether a swap to the candidate is refused unless its differences are
    /// accepted.
    pub fn refused(&self) -> bool {
        !self.canary.refusing.is_empty()
    }
}

impl std::fmt::Display for SwapReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |items: &[String]| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(", ")
            }
        };
        writeln!(f, "serving    {}", self.serving)?;
        writeln!(
            f,
            "candidate  {} from {}",
            self.candidate,
            self.candidate.source.display()
        )?;
        writeln!(
            f,
            "contract   ok ({}@{})",
            crate::contract::PACKAGE,
            crate::contract::VERSION
        )?;
        let c = &self.catalogue;
        writeln!(
            f,
            "catalogue  added: {}; removed: {}; changed: {}",
            list(&c.added),
            list(&c.removed),
            list(&c.changed)
        )?;
        if !c.unlike_host.is_empty() {
            writeln!(
                f,
                "           unlike the host's catalogue (whose quotas and timeouts apply): {}",
                c.unlike_host.join("; ")
            )?;
        }
        let k = &self.canary;
        writeln!(
            f,
            "canary     {} cases: {} the same, {} changed, {} refusing",
            k.cases,
            k.same,
            k.changed.len(),
            k.refusing.len()
        )?;
        for d in k
            .refusing
            .iter()
            .map(|d| ("refusing", d))
            .chain(k.changed.iter().take(5).map(|d| ("changed", d)))
        {
            writeln!(f, "  {:<9} {}: {}", d.0, d.1.case, d.1.what)?;
        }
        if k.changed.len() > 5 {
            writeln!(f, "  … and {} more changed", k.changed.len() - 5)?;
        }
        let t = &self.timings;
        writeln!(
            f,
            "timings    read {:?}, compile {:?}, canary {:?}, switch {:?}",
            t.load.read, t.load.compile, t.canary, t.switch
        )?;
        let verdict = match (self.swapped, self.refused()) {
            (true, _) => "swapped: the candidate serves",
            (false, true) => "refused: the candidate traps, or turns successes into errors or errors into successes",
            (false, false) => "a swap would be accepted",
        };
        write!(f, "verdict    {verdict}")
    }
}

/// Why a swap or a rollback did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwapError {
    /// The candidate could not be read, was refused by the contract check,
    /// or did not compile or start.
    #[error(transparent)]
    Load(#[from] ConfigError),
    /// The canary found what refuses a swap (see the report).
    #[error(
        "the candidate {} was refused: {} canary case(s) trap or turn successes into errors or errors into \
         successes (first: {}); the serving version {} is untouched",
        .0.candidate,
        .0.canary.refusing.len(),
        .0.canary.refusing.first().map_or(String::new(), |d| format!("{}: {}", d.case, d.what)),
        .0.serving
    )]
    Refused(Box<SwapReport>),
    /// No previous version is kept.
    #[error("there is no previous version to roll back to")]
    NothingToRollBack,
}

impl Versions {
    pub(crate) fn new(loaded: Loaded) -> Self {
        Self {
            slots: RwLock::new(Slots {
                current: Arc::new(loaded),
                previous: None,
                probation: None,
            }),
            swapping: tokio::sync::Mutex::new(()),
            events: broadcast::channel(EVENTS).0,
        }
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Slots> {
        self.slots.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn slots_mut(&self) -> std::sync::RwLockWriteGuard<'_, Slots> {
        self.slots.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version serving now.
    pub(crate) fn current(&self) -> Arc<Loaded> {
        self.slots().current.clone()
    }

    fn emit(&self, event: SwapEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// Counts a call's outcome for the version it ran on, and rolls that
    /// version back if it is on probation and failing (see the module).
    pub(crate) fn record<R>(&self, loaded: &Arc<Loaded>, result: &Result<R, CallError>) {
        let failed = matches!(
            result,
            Err(CallError::Trap(_) | CallError::Client(ClientError(types::Error::Other(_))))
        );
        let (calls, failures) = loaded.health.record(failed);
        let baseline = {
            let slots = self.slots();
            match slots.probation {
                Some(baseline) if Arc::ptr_eq(&slots.current, loaded) => baseline,
                _ => return,
            }
        };
        if calls > PROBATION_CALLS {
            let mut slots = self.slots_mut();
            if Arc::ptr_eq(&slots.current, loaded) {
                slots.probation = None;
                tracing::info!(target: "api_entreprise::swap", version = %loaded.info, calls, failures, "passed its probation");
            }
            return;
        }
        if failures >= MIN_FAILURES && (failures as f64 / calls as f64) > 2.0 * baseline + 0.02 {
            let reason = RollbackReason::Misbehaved {
                calls,
                failures,
                baseline,
            };
            // Another call may have rolled it back already.
            let _ = self.roll_back(Some(loaded), reason);
        }
    }

    /// Puts the previous version back, if `from` (when given) still serves.
    fn roll_back(&self, from: Option<&Arc<Loaded>>, reason: RollbackReason) -> Result<VersionInfo, SwapError> {
        let mut slots = self.slots_mut();
        if from.is_some_and(|from| !Arc::ptr_eq(&slots.current, from)) {
            return Err(SwapError::NothingToRollBack);
        }
        let previous = slots.previous.take().ok_or(SwapError::NothingToRollBack)?;
        let withdrawn = std::mem::replace(&mut slots.current, previous);
        slots.probation = None;
        let (to, from) = (slots.current.info.clone(), withdrawn.info.clone());
        drop(slots);
        match &reason {
            RollbackReason::Asked => {
                tracing::warn!(target: "api_entreprise::swap", %from, %to, "rolled back, as asked");
            }
            RollbackReason::Misbehaved { .. } => {
                tracing::error!(target: "api_entreprise::swap", %from, %to, "rolled back by itself: {reason}");
            }
        }
        self.emit(SwapEvent::RolledBack {
            from,
            to: to.clone(),
            reason,
        });
        Ok(to)
    }
}

impl Runtime {
    /// Checks `source` as a candidate for [`Self::swap`] without swapping:
    /// the contract, the catalogue, the canary. `Err` only when it cannot be
    /// loaded at all; a report whose [`SwapReport::refused`] is true says
    /// that a swap would be refused.
    pub async fn check_component(&self, source: &ComponentSource) -> Result<SwapReport, SwapError> {
        Ok(self.candidate(source).await?.1)
    }

    /// Replaces the serving version with `source` once it has passed every
    /// check (see the module). With `accept_differences`, what the canary
    /// found is reported but does not refuse the swap.
    pub async fn swap(&self, source: &ComponentSource, accept_differences: bool) -> Result<SwapReport, SwapError> {
        let _one_at_a_time = self.shared.versions.swapping.lock().await;
        let (candidate, mut report) = match self.candidate(source).await {
            Ok(checked) => checked,
            Err(e) => {
                self.shared.versions.emit(SwapEvent::Refused { reason: e.to_string() });
                return Err(e);
            }
        };
        if report.refused() && !accept_differences {
            let error = SwapError::Refused(Box::new(report));
            tracing::warn!(target: "api_entreprise::swap", "{error}");
            self.shared.versions.emit(SwapEvent::Refused {
                reason: error.to_string(),
            });
            return Err(error);
        }
        let started = Instant::now();
        let from = {
            let mut slots = self.shared.versions.slots_mut();
            let (calls, failures) = slots.current.health.counts();
            let baseline = if calls == 0 {
                0.0
            } else {
                failures as f64 / calls as f64
            };
            let old = std::mem::replace(&mut slots.current, candidate);
            slots.probation = Some(baseline);
            slots.previous = Some(old);
            slots.previous.as_ref().map(|old| old.info.clone())
        };
        report.timings.switch = started.elapsed();
        report.swapped = true;
        if let Some(from) = from {
            tracing::warn!(
                target: "api_entreprise::swap",
                %from,
                to = %report.candidate,
                canary_changed = report.canary.changed.len(),
                "swapped"
            );
            self.shared.versions.emit(SwapEvent::Swapped {
                from,
                to: report.candidate.clone(),
            });
        }
        Ok(report)
    }

    /// Puts the previous version back (the one before the last swap).
    /// Calls in flight finish on the version they started with.
    pub fn rollback(&self) -> Result<VersionInfo, SwapError> {
        self.shared.versions.roll_back(None, RollbackReason::Asked)
    }

    /// The version kept for a rollback, if any.
    pub fn previous_component(&self) -> Option<VersionInfo> {
        self.shared.versions.slots().previous.as_ref().map(|p| p.info.clone())
    }

    /// The version changes to come: swaps, refusals and rollbacks, the
    /// automatic ones included.
    pub fn subscribe(&self) -> broadcast::Receiver<SwapEvent> {
        self.shared.versions.events.subscribe()
    }

    /// Loads `source` and runs every check against the serving version.
    async fn candidate(&self, source: &ComponentSource) -> Result<(Arc<Loaded>, SwapReport), SwapError> {
        let serving = self.shared.versions.current();
        let engine = self.shared.engine.clone();
        let cache = self.shared.cache_dir.clone();
        let owned = source.clone();
        // Compiling takes a second or more of CPU: off the serving threads.
        let (loaded, load_timings) = tokio::task::spawn_blocking(move || load(&engine, &owned, cache.as_deref()))
            .await
            .map_err(|e| ConfigError::Engine(format!("the compiling thread failed: {e}")))??;
        let started = Instant::now();
        let endpoints = self.list_endpoints(&loaded).await?;
        let catalogue = CatalogueChanges::between(&serving.endpoints(), &endpoints);
        let canary = self.canary(&serving, &loaded).await;
        let report = SwapReport {
            serving: serving.info.clone(),
            candidate: loaded.info.clone(),
            catalogue,
            canary,
            timings: SwapTimings {
                load: load_timings,
                canary: started.elapsed(),
                switch: Duration::ZERO,
            },
            swapped: false,
        };
        Ok((Arc::new(loaded), report))
    }
}

impl CatalogueChanges {
    /// How `new` differs from `old`, and from the host's catalogue.
    fn between(old: &[types::Endpoint], new: &[types::Endpoint]) -> Self {
        let name = |e: &types::Endpoint| format!("{} v{}", e.id, e.version);
        let find = |list: &[types::Endpoint], e: &types::Endpoint| {
            list.iter()
                .find(|o| o.id == e.id && o.version == e.version)
                .map(|o| format!("{o:?}"))
        };
        let mut changes = Self::default();
        for e in new {
            match find(old, e) {
                None => changes.added.push(name(e)),
                Some(before) if before != format!("{e:?}") => changes.changed.push(name(e)),
                Some(_) => {}
            }
        }
        changes.removed = old.iter().filter(|e| find(new, e).is_none()).map(name).collect();
        changes.unlike_host = crate::contract::catalogue_differences(new);
        changes
    }
}
