//! `api-entreprise batch`: thousands of calls at the quota's own pace,
//! resumable, each input row answered exactly once.
//!
//! - [`input`]: the rows (CSV with a column mapping, or JSON lines);
//! - [`dedupe`]: the requests an input holds more than once, found with
//!   little memory;
//! - [`output`]: one JSON line per row, and the journal that resumes;
//! - [`mod@run`]: the rows through a runtime, a few in flight, paced by its
//!   quotas, waiting out open circuits;
//! - [`window`]: the hours a batch may send in.

pub mod dedupe;
pub mod input;
pub mod output;
pub mod run;
pub mod window;

pub use dedupe::Duplicates;
pub use input::{CsvMapping, Field, Format, Row, TraceDefaults};
pub use output::{Output, OutputError, Resumed};
pub use run::{BatchError, Options, Outcome, Progress, jobs_for, quota_rate, run};
pub use window::Window;
