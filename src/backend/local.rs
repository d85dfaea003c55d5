//! [`Local`]: the in-thread backend. The connection lives with the
//! database handle and requests run on the calling thread, at once, when
//! their lane may run; a request of another lane than the one holding the
//! transaction waits (without blocking its thread) until the transaction
//! ends, at most the busy timeout.
//!
//! The connection sits behind a `std::sync::Mutex` held only while a
//! request runs synchronously — never across an await, never by a thread
//! twice (a request from inside a unit of work of the same database fails
//! with [`Error::Reentrant`] before it locks).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures::future::select;

use super::host::{Host, busy, warn_waiting};
use super::{Inside, Lane, Pending, Work, ensure_outside, is_inside};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::sqlite::{Connection, Level, TxKind};

/// The in-thread backend. See the [module documentation](self).
pub(crate) struct Local {
    /// The connection and who holds its transaction; `None` once closed.
    host: Mutex<Option<Host>>,
    /// Set once closed (readable without the lock, from inside a unit of work).
    closed: AtomicBool,
    /// Rollbacks of transactions dropped while this thread ran a unit of
    /// work of this database (so the lock was taken); run when it ends.
    detached: Mutex<Vec<(Lane, Level)>>,
    /// Notified when the transaction ends or the database closes: wakes the
    /// requests of other lanes waiting for it.
    released: Event,
    busy_timeout: Duration,
}

/// What became of an attempt to run an operation now.
enum Attempt<R, F> {
    Done(Result<R>),
    /// Another lane holds the transaction; the operation comes back.
    Blocked(F),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Local {
    pub(crate) fn new(conn: Connection) -> Arc<Local> {
        Arc::new(Local {
            busy_timeout: conn.busy_timeout(),
            host: Mutex::new(Some(Host::new(conn))),
            closed: AtomicBool::new(false),
            detached: Mutex::new(Vec::new()),
            released: Event::new(),
        })
    }

    pub(crate) fn id(&self) -> usize {
        self as *const Local as usize
    }

    pub(crate) fn run<T: Send + 'static>(
        self: &Arc<Self>,
        lane: Lane,
        plan: Plan<T>,
    ) -> Pending<T> {
        self.request(lane, true, move |host| {
            host.run_in(lane, |conn| conn.run(&plan))
        })
    }

    pub(crate) fn run_work<R: Send + 'static>(
        self: &Arc<Self>,
        lane: Lane,
        work: impl Work<R>,
    ) -> Pending<R> {
        self.request(lane, true, move |host| host.run_in(lane, work))
    }

    pub(crate) fn begin(
        self: &Arc<Self>,
        lane: Lane,
        level: Level,
        kind: TxKind,
        nested: bool,
    ) -> Pending<()> {
        self.request(lane, true, move |host| {
            host.begin(lane, level, kind, nested)
        })
    }

    pub(crate) fn commit(self: &Arc<Self>, lane: Lane, level: Level) -> Pending<()> {
        self.request(lane, false, move |host| host.commit(lane, level))
    }

    pub(crate) fn rollback(self: &Arc<Self>, lane: Lane, level: Level) -> Pending<()> {
        self.request(lane, false, move |host| host.rollback(lane, level))
    }

    /// Rolls back at once, or — when this thread is inside a unit of work
    /// of this database — as soon as that unit ends.
    pub(crate) fn rollback_detached(&self, lane: Lane, level: Level) {
        if is_inside(self.id()) {
            lock(&self.detached).push((lane, level));
            return;
        }
        let mut slot = lock(&self.host);
        let Some(host) = slot.as_mut() else { return };
        let held = !host.is_free();
        if let Err(error) = host.rollback(lane, level) {
            tracing::warn!(target: "driftwood", %error, "rolling back a dropped transaction failed");
        }
        let released = held && host.is_free();
        drop(slot);
        if released {
            self.released.notify(usize::MAX);
        }
    }

    /// Closes the connection; an open transaction rolls back with it.
    pub(crate) fn close(&self) -> Pending<()> {
        if let Err(error) = ensure_outside(self.id()) {
            return Pending::ready(Err(error));
        }
        self.closed.store(true, Ordering::Release);
        let host = lock(&self.host).take();
        drop(host);
        self.released.notify(usize::MAX);
        Pending::ready(Ok(()))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs `operation` now if `lane` may run (or if it does not `wait` for
    /// its turn); otherwise waits for the transaction to end, at most the
    /// busy timeout.
    fn request<R, F>(self: &Arc<Self>, lane: Lane, wait: bool, operation: F) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Host) -> Result<R> + Send + 'static,
    {
        match self.attempt(lane, wait, operation) {
            Attempt::Done(result) => Pending::ready(result),
            Attempt::Blocked(operation) => Pending::boxed(self.clone().wait_turn(lane, operation)),
        }
    }

    fn attempt<R, F>(&self, lane: Lane, wait: bool, operation: F) -> Attempt<R, F>
    where
        F: FnOnce(&mut Host) -> Result<R>,
    {
        if let Err(error) = ensure_outside(self.id()) {
            return Attempt::Done(Err(error));
        }
        let mut slot = lock(&self.host);
        let Some(host) = slot.as_mut() else {
            return Attempt::Done(Err(Error::Closed));
        };
        let held = !host.is_free();
        self.run_detached(host);
        if wait && !host.admits(lane) {
            return Attempt::Blocked(operation);
        }
        let result = {
            let _inside = Inside::enter(self.id());
            operation(host)
        };
        self.run_detached(host);
        let released = held && host.is_free();
        drop(slot);
        if released {
            self.released.notify(usize::MAX);
        }
        Attempt::Done(result)
    }

    fn run_detached(&self, host: &mut Host) {
        for (lane, level) in std::mem::take(&mut *lock(&self.detached)) {
            if let Err(error) = host.rollback(lane, level) {
                tracing::warn!(target: "driftwood", %error, "rolling back a dropped transaction failed");
            }
        }
    }

    async fn wait_turn<R, F>(self: Arc<Self>, lane: Lane, mut operation: F) -> Result<R>
    where
        F: FnOnce(&mut Host) -> Result<R>,
    {
        let started = Instant::now();
        let warn_at = self.busy_timeout / 2;
        let mut warned = false;
        loop {
            let released = self.released.listen();
            operation = match self.attempt(lane, true, operation) {
                Attempt::Done(result) => return result,
                Attempt::Blocked(operation) => operation,
            };
            let waited = started.elapsed();
            let held = lock(&self.host).as_ref().and_then(Host::held_for);
            if waited >= self.busy_timeout {
                return Err(busy(waited, held));
            }
            if !warned && waited >= warn_at {
                warned = true;
                warn_waiting(waited, held);
            }
            let next = if warned { self.busy_timeout } else { warn_at };
            let timer = futures_timer::Delay::new(next.saturating_sub(waited));
            // Woken by the end of the transaction or by the clock: try again.
            let _ = select(released, timer).await;
        }
    }
}
