//! The gateway's listener: HTTP/1.1, every connection held to deadlines and
//! to a cap that hold before any key is looked at, so that no caller can
//! outwait them.
//!
//! - **The cap** (`max_connections`). At the cap, a new connection takes
//!   the place of the open one that has gone longest without a request in
//!   flight (a caller that sends nothing, sends its head slowly, idles
//!   between requests, or stopped reading an answer already written to it);
//!   only when every connection has a request in flight is the new one
//!   closed at once. An evicted connection closes at once when idle; a
//!   request that began on it in the meantime is answered first. A flood of silent connections thus delays a real
//!   caller by nothing: it evicts the flood, and its own request is in
//!   flight before the next one arrives.
//! - **The request head** must arrive within `header_read_timeout_seconds`
//!   of the connection's start or of the previous answer (hyper's header
//!   deadline, and the first byte waited for here): this is also the idle
//!   deadline of a kept-alive connection. The API's routes never read a
//!   body; the admin routes read theirs under a cap and a deadline of their
//!   own (`component.rs`).
//! - **Writing the answer**: a write that makes no progress for
//!   `write_timeout_seconds` (a caller that stopped reading) closes the
//!   connection.
//!
//! HTTP/2 is not served: the gateway sits on loopback or behind a TLS
//! reverse proxy, which speaks HTTP/2 to callers and HTTP/1.1 to its
//! upstreams (nginx, HAProxy, Apache, Caddy do by default); cleartext
//! HTTP/2 (h2c) would add a second protocol whose streams, pings and flow
//! control each need their own deadlines, for no caller that needs it. An
//! HTTP/2 preface is refused as a malformed HTTP/1.1 request head.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The open connections, for the cap and for eviction.
pub(crate) struct Connections {
    cap: usize,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next: AtomicU64,
}

/// One open connection.
pub(crate) struct Connection {
    id: u64,
    /// Requests in flight on it (hyper serves one at a time; a count keeps
    /// the bookkeeping simple).
    in_flight: AtomicUsize,
    /// When it last had no request in flight: its start, or its last answer.
    idle_since: Mutex<Instant>,
    /// Told when it must close to make room.
    evicted: tokio::sync::Notify,
}

/// What the cap says of a new connection.
pub(crate) enum Admission {
    /// Room for it.
    Admitted(Open),
    /// Room made for it by evicting the connection idle the longest.
    Evicted(Open),
    /// Every connection has a request in flight: it is closed at once.
    Refused,
}

/// A connection's place under the cap, given back when dropped.
pub(crate) struct Open {
    connections: Arc<Connections>,
    connection: Arc<Connection>,
}

impl Connections {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            open: Mutex::default(),
            next: AtomicU64::new(0),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Finds room for a new connection.
    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        let mut open = self.open();
        let mut evicted = false;
        if open.len() >= self.cap {
            let idlest = open
                .values()
                .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0)
                .min_by_key(|c| *c.idle_since.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
                .cloned();
            let Some(idlest) = idlest else {
                return Admission::Refused;
            };
            open.remove(&idlest.id);
            idlest.evicted.notify_one();
            evicted = true;
        }
        let connection = Arc::new(Connection {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            evicted: tokio::sync::Notify::new(),
        });
        open.insert(connection.id, connection.clone());
        let open = Open {
            connections: self.clone(),
            connection,
        };
        if evicted {
            Admission::Evicted(open)
        } else {
            Admission::Admitted(open)
        }
    }
}

impl Open {
    /// Resolves when the connection must close to make room.
    pub(crate) async fn evicted(&self) {
        self.connection.evicted.notified().await;
    }

    /// A handle that marks requests in flight, for the connection's service.
    pub(crate) fn tracker(&self) -> Tracker {
        Tracker(self.connection.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.connections.open().remove(&self.connection.id);
    }
}

/// Marks requests in flight on one connection.
#[derive(Clone)]
pub(crate) struct Tracker(Arc<Connection>);

impl Tracker {
    /// Marks a request in flight until the guard is dropped.
    pub(crate) fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.0.clone())
    }
}

/// A request in flight; its end makes the connection idle again.
pub(crate) struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A stream whose writes fail once they make no progress for `limit`: a
/// caller that stops reading cannot hold its connection.
pub(crate) struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: prometheus::IntCounter,
}

impl<S> WriteDeadline<S> {
    /// `inner`, whose stalled writes fail after `limit`, each counted in
    /// `timed_out`.
    pub(crate) fn new(inner: S, limit: Duration, timed_out: prometheus::IntCounter) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
            timed_out,
        }
    }

    /// `Pending` until the stall passes the limit, then the error.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let limit = self.limit;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(sleep.as_mut().poll(cx));
        self.timed_out.inc();
        Poll::Ready(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the caller read nothing of the answer for {} s", limit.as_secs()),
        ))
    }

    /// Passes a write's outcome on, keeping the time of a stall.
    fn progress<T>(&mut self, cx: &mut Context<'_>, poll: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.stall(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn at_the_cap_the_connection_idle_the_longest_makes_room_and_busy_ones_never_do() {
        let connections = Connections::new(2);
        let Admission::Admitted(first) = connections.admit() else {
            panic!()
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let Admission::Admitted(second) = connections.admit() else {
            panic!()
        };
        let busy = second.tracker().begin();
        // At the cap: the idle first connection is told to go.
        let Admission::Evicted(third) = connections.admit() else {
            panic!()
        };
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .unwrap();
        let _busy_too = third.tracker().begin();
        // Both open ones have a request in flight: nothing to evict.
        assert!(matches!(connections.admit(), Admission::Refused));
        drop(busy);
        // Its request ended: the second is idle now, and makes room.
        assert!(matches!(connections.admit(), Admission::Evicted(_)));
        drop(first);
        assert!(connections.open().len() <= 2);
    }
}
