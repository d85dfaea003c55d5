//! [`Local`]: the in-thread backend. The connection lives with the
//! database handle and a request runs on the calling thread, at once, when
//! its lane may run and nobody else is using the connection. Otherwise —
//! another lane holds the transaction, or another thread is running a
//! statement — it waits without blocking its thread, at most the busy
//! timeout.
//!
//! The connection sits behind a `std::sync::Mutex` taken only with
//! `try_lock` and held only while a request runs synchronously: never
//! across an await. A request from the thread already holding it (a call
//! back into the database from inside its own unit of work) fails with
//! [`Error::Reentrant`] instead of waiting for itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures::future::select;

use super::feed::Feed;
use super::host::{Host, busy, warn_waiting};
use super::{Lane, Pending, Work};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::sqlite::{BackupProgress, Connection, Level, RestoreSteps, TxKind};

/// The in-thread backend. See the [module documentation](self).
pub(crate) struct Local {
    /// The connection and who holds its transaction; `None` once closed.
    host: Mutex<Option<Host>>,
    /// The thread running a request now (see [`thread_mark`]), 0 for none:
    /// tells a reentrant call from another thread's contention.
    holder: AtomicUsize,
    /// Set once closed (readable without the lock).
    closed: AtomicBool,
    /// Rollbacks of dropped transactions that found the connection in use;
    /// whoever uses it next runs them first. `has_detached` says whether
    /// there are any, so requests need not lock the list.
    detached: Mutex<Vec<(Lane, Level)>>,
    has_detached: AtomicBool,
    /// Notified whenever a request ends while someone waits: wakes
    /// requests waiting for the connection or for the transaction's lane to
    /// give up its turn. `waiters` counts them, so nobody pays for a
    /// notification when nobody waits.
    released: Event,
    waiters: AtomicUsize,
    busy_timeout: Duration,
    /// The change feed its watched queries follow.
    feed: Arc<Feed>,
}

/// What became of an attempt to run an operation now.
enum Attempt<R, F> {
    Done(Result<R>),
    /// Not now (another lane's turn, or the connection in use); the
    /// operation comes back.
    Blocked(F),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A number unique to the calling thread while it lives: the address of a
/// thread-local.
fn thread_mark() -> usize {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(|mark| mark as *const u8 as usize)
}

impl Local {
    pub(crate) fn new(conn: Connection) -> Arc<Local> {
        let feed = Feed::new();
        Arc::new(Local {
            busy_timeout: conn.busy_timeout(),
            host: Mutex::new(Some(Host::new(conn, Some(feed.clone())))),
            feed,
            holder: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            detached: Mutex::new(Vec::new()),
            has_detached: AtomicBool::new(false),
            released: Event::new(),
            waiters: AtomicUsize::new(0),
        })
    }

    pub(crate) fn id(&self) -> usize {
        self as *const Local as usize
    }

    pub(crate) fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    pub(crate) fn run<T: Send + 'static>(
        self: &Arc<Self>,
        lane: Lane,
        plan: Plan<T>,
    ) -> Pending<T> {
        self.request(Some(lane), move |host| host.run_plan_in(lane, &plan))
    }

    pub(crate) fn run_work<R: Send + 'static>(
        self: &Arc<Self>,
        lane: Lane,
        work: impl Work<R>,
    ) -> Pending<R> {
        self.request(Some(lane), move |host| host.run_in(lane, work))
    }

    pub(crate) fn begin(
        self: &Arc<Self>,
        lane: Lane,
        level: Level,
        kind: TxKind,
        parent: Option<Lane>,
    ) -> Pending<()> {
        self.request(Some(parent.unwrap_or(lane)), move |host| {
            host.begin(lane, level, kind, parent)
        })
    }

    pub(crate) fn commit(self: &Arc<Self>, lane: Lane, level: Level) -> Pending<()> {
        self.request(None, move |host| host.commit(lane, level))
    }

    pub(crate) fn rollback(self: &Arc<Self>, lane: Lane, level: Level) -> Pending<()> {
        self.request(None, move |host| host.rollback(lane, level))
    }

    /// Rolls back at once if the connection is free, else as soon as its
    /// current user is done (never blocking, never lost).
    pub(crate) fn rollback_detached(&self, lane: Lane, level: Level) {
        lock(&self.detached).push((lane, level));
        self.has_detached.store(true, Ordering::SeqCst);
        self.run_detached_if_free();
    }

    /// Replaces the database with the backup at `source` (see
    /// `Host::restore`) once the connection is free; refused while a
    /// transaction is open.
    pub(crate) fn restore(
        self: &Arc<Self>,
        source: PathBuf,
        mut progress: Box<dyn FnMut(BackupProgress) + Send>,
        prepare: fn(&Connection) -> Result<()>,
    ) -> Pending<()> {
        self.request(None, move |host| {
            let steps = RestoreSteps {
                progress: &mut *progress,
                prepare: &prepare,
                interrupted: &|| false,
            };
            host.restore(&source, steps)
        })
    }

    /// Closes the connection; an open transaction rolls back with it.
    pub(crate) fn close(&self) -> Pending<()> {
        if self.holder.load(Ordering::Acquire) == thread_mark() {
            return Pending::ready(Err(Error::Reentrant));
        }
        self.closed.store(true, Ordering::Release);
        let host = lock(&self.host).take();
        drop(host);
        self.feed.close();
        self.released.notify(usize::MAX);
        Pending::ready(Ok(()))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs `operation` now if it may (when it waits for a `turn`, if that
    /// lane may run); otherwise waits, at most the busy timeout.
    fn request<R, F>(self: &Arc<Self>, turn: Option<Lane>, operation: F) -> Pending<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Host) -> Result<R> + Send + 'static,
    {
        match self.attempt(turn, operation) {
            Attempt::Done(result) => Pending::ready(result),
            Attempt::Blocked(operation) => Pending::boxed(self.clone().wait(turn, operation)),
        }
    }

    #[inline]
    fn attempt<R, F>(&self, turn: Option<Lane>, operation: F) -> Attempt<R, F>
    where
        F: FnOnce(&mut Host) -> Result<R>,
    {
        let mut slot = match self.host.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if self.holder.load(Ordering::Acquire) == thread_mark() {
                    return Attempt::Done(Err(Error::Reentrant));
                }
                return Attempt::Blocked(operation);
            }
        };
        let Some(host) = slot.as_mut() else {
            return Attempt::Done(Err(Error::Closed));
        };
        self.run_detached(host);
        if host.is_held() {
            // No thread watches an in-thread database: a transaction held
            // across awaits is noticed at the requests made meanwhile.
            host.notice_long_transaction("the in-thread connection");
        }
        if turn.is_some_and(|lane| !host.admits(lane)) {
            return Attempt::Blocked(operation);
        }
        self.holder.store(thread_mark(), Ordering::Release);
        let result = operation(host);
        self.holder.store(0, Ordering::Release);
        self.run_detached(host);
        drop(slot);
        // A rollback detached while the lock was held would wait for the
        // next request; run it now. Then wake whoever waits.
        self.run_detached_if_free();
        self.wake_waiters();
        Attempt::Done(result)
    }

    fn wake_waiters(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.released.notify(usize::MAX);
        }
    }

    fn run_detached_if_free(&self) {
        if !self.has_detached.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut slot) = self.host.try_lock() else {
            return;
        };
        if let Some(host) = slot.as_mut() {
            self.run_detached(host);
        }
        drop(slot);
        self.wake_waiters();
    }

    #[inline]
    fn run_detached(&self, host: &mut Host) {
        if !self.has_detached.load(Ordering::SeqCst) {
            return;
        }
        self.run_detached_now(host);
    }

    #[cold]
    fn run_detached_now(&self, host: &mut Host) {
        if !self.has_detached.swap(false, Ordering::SeqCst) {
            return;
        }
        for (lane, level) in std::mem::take(&mut *lock(&self.detached)) {
            if let Err(error) = host.rollback(lane, level) {
                tracing::warn!(target: "driftwood", %error, "rolling back a dropped transaction failed");
            }
        }
    }

    async fn wait<R, F>(self: Arc<Self>, turn: Option<Lane>, mut operation: F) -> Result<R>
    where
        F: FnOnce(&mut Host) -> Result<R>,
    {
        let started = Instant::now();
        let warn_at = self.busy_timeout / 2;
        let mut warned = false;
        let _waiting = Waiting::enter(&self.waiters);
        loop {
            let released = self.released.listen();
            operation = match self.attempt(turn, operation) {
                Attempt::Done(result) => return result,
                Attempt::Blocked(operation) => operation,
            };
            let waited = started.elapsed();
            let held = match self.host.try_lock() {
                Ok(slot) => slot.as_ref().and_then(Host::held_for),
                Err(_) => None,
            };
            if waited >= self.busy_timeout {
                return Err(busy(waited, held));
            }
            if !warned && waited >= warn_at {
                warned = true;
                warn_waiting(waited, held);
            }
            let next = if warned { self.busy_timeout } else { warn_at };
            let timer = futures_timer::Delay::new(next.saturating_sub(waited));
            // Woken by the end of a request or by the clock: try again.
            let _ = select(released, timer).await;
        }
    }
}

/// Counts a waiting request while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
