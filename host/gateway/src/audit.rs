//! The audit trail: one JSON line per request on standard output, written
//! off the request path. A request hands its line to a bounded queue and
//! goes on; a thread of its own writes the queue out. When the reader of
//! standard output stalls (a full pipe, a blocking log driver) the queue
//! fills, and further lines are dropped and counted rather than waited for:
//! the requests keep their latency, the metric
//! `api_entreprise_audit_lines_dropped_total` shows the loss, and the next
//! line written says how many were dropped before it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use prometheus::IntCounter;

/// Lines waiting to be written, at most (about a second of a busy gateway).
pub const QUEUE_LINES: usize = 1024;

/// The writer of the audit trail.
pub struct AuditTrail {
    queue: SyncSender<String>,
    /// Dropped since the last notice in the trail.
    pending_drops: Arc<AtomicU64>,
    dropped: IntCounter,
}

impl AuditTrail {
    /// A trail written to standard output by a thread of its own, through
    /// a queue of `capacity` lines; drops are counted in `dropped`.
    pub fn stdout(capacity: usize, dropped: IntCounter) -> Self {
        let (queue, lines) = std::sync::mpsc::sync_channel(capacity);
        let pending_drops = Arc::new(AtomicU64::new(0));
        let pending = pending_drops.clone();
        std::thread::Builder::new()
            .name("audit-trail".into())
            .spawn(move || write_out(&lines, &pending, std::io::stdout()))
            .expect("a thread for the audit trail");
        Self {
            queue,
            pending_drops,
            dropped,
        }
    }

    /// Queues `line`, or drops it (and counts it) when the queue is full:
    /// never waits.
    pub fn record(&self, line: String) {
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending_drops.fetch_add(1, Ordering::Relaxed);
                self.dropped.inc();
            }
        }
    }
}

/// Writes each queued line to `out`, preceded by a notice when lines were
/// dropped since the last one; flushes when the queue is empty. Ends when
/// the trail is dropped, or when `out` is closed (a closed standard output
/// loses the trail, never an answer).
fn write_out(lines: &Receiver<String>, pending: &AtomicU64, out: impl Write) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(mut line) = lines.recv() {
        loop {
            let dropped = pending.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                let notice = serde_json::json!({
                    "time": now(),
                    "event": "audit_lines_dropped",
                    "dropped": dropped,
                    "why": "the reader of standard output did not keep up; the requests were served",
                });
                if writeln!(out, "{notice}").is_err() {
                    return;
                }
            }
            if writeln!(out, "{line}").is_err() {
                return;
            }
            match lines.try_recv() {
                Ok(next) => line = next,
                Err(_) => break,
            }
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// One line of the audit trail: the runtime's, which the command's
/// `--audit FILE` writes too, so that one reader reads both.
pub use api_entreprise::audit::AuditLine;

/// Now, in RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_a_full_queue_are_counted_and_the_next_line_written_says_how_many() {
        let (queue, lines) = std::sync::mpsc::sync_channel(2);
        let pending = Arc::new(AtomicU64::new(0));
        let trail = AuditTrail {
            queue,
            pending_drops: pending.clone(),
            dropped: IntCounter::new("dropped", "test").unwrap(),
        };
        // Nobody writes yet (the reader stalls): two fit, three are dropped.
        for n in 0..5 {
            trail.record(format!("{{\"n\":{n}}}"));
        }
        assert_eq!(trail.dropped.get(), 3);
        drop(trail);
        let mut out = Vec::new();
        write_out(&lines, &pending, &mut out);
        let out = String::from_utf8(out).unwrap();
        let written: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(written.len(), 3, "{out}");
        assert_eq!(written[0]["event"], "audit_lines_dropped");
        assert_eq!(written[0]["dropped"], 3);
        assert_eq!((written[1]["n"].as_u64(), written[2]["n"].as_u64()), (Some(0), Some(1)));
    }
}
