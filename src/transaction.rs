//! [`Transaction`]: an owned transaction handle usable across awaits, and
//! the scope that routes a database's calls into the transaction that
//! `Db::transaction(|| async { … })` runs.
//!
//! A transaction holds the writer for as long as it lives: its *lane* (see
//! `backend`) is the only one whose requests run; other users of the same
//! database wait for it, at most the busy timeout, and never see its
//! uncommitted writes. It commits only when told to: dropped without
//! `commit()` — on an error path, a panic, or a cancelled future — it rolls
//! back. Nested transactions are savepoints and borrow their parent
//! mutably, so the parent cannot be used until they end. Every operation
//! names the handle's own level, so a savepoint that never began, or a
//! child that was leaked, never touches its parent.
//!
//! **The rule for the owned handle:** while a task holds a `Transaction`,
//! it must run its statements through it. A call through the `Db` from the
//! same task waits for the transaction to end — which it cannot, since the
//! task is waiting — and fails with [`Error::Busy`] after the busy timeout.
//! Inside `db.transaction(|| async { … })` calls through the `Db` (and its
//! clones) are routed into the transaction instead.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use crate::Pending;
use crate::backend::{Backend, Lane, Route};
use crate::batch::Batch;
use crate::conn::{Conn, write_unit};
use crate::error::Result;
use crate::executor::{Async, Runner};
use crate::plan::Plan;
use crate::sqlite::{Execution, Level, TxKind};

/// An open transaction (or savepoint), owned: usable across awaits and
/// tasks, and a [`Runner`] for every query. It holds the writer while it
/// lives — other users of the database wait for it, at most the busy
/// timeout — and commits only on [`Transaction::commit`]; dropped otherwise
/// (an error path, a panic, a cancelled future) it rolls back. Savepoints
/// ([`Transaction::begin`]) borrow their parent until they end.
///
/// A task holding a `Transaction` must run its statements through it: a
/// call through the `Db` from the same task waits for a transaction that
/// cannot end, and fails with [`Error::Busy`](crate::Error::Busy). Inside
/// [`Db::transaction`](crate::Db::transaction) calls through the `Db` join
/// the transaction instead.
#[must_use = "a transaction rolls back when dropped without commit()"]
pub struct Transaction<'p> {
    backend: Backend,
    lane: Lane,
    level: Level,
    /// Whether commit or rollback was sent; if not, drop rolls back.
    finished: bool,
    /// A savepoint borrows its parent mutably for its whole life.
    parent: PhantomData<&'p mut ()>,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("backend", &self.backend.kind())
            .field("lane", &self.lane)
            .field("level", &self.level)
            .finish()
    }
}

impl Transaction<'static> {
    /// Begins a transaction on `backend` in a fresh lane: the outermost
    /// one, or — with the `scope` lane of a `Db` used inside
    /// `Db::transaction` — a savepoint of it that holds the turn alone
    /// while it lasts, so concurrent siblings in one scope never nest
    /// inside each other.
    pub(crate) async fn begin_on(backend: Backend, scope: Option<Lane>) -> Result<Self> {
        Transaction::open(backend, Lane::fresh(), scope).await
    }
}

impl<'p> Transaction<'p> {
    /// Opens a level in `lane` (see `Host::begin`). If this future is
    /// dropped before the level
    /// is known to be open, the guard rolls back exactly that level — a
    /// no-op if it never began — so an abandoned begin never keeps the
    /// writer and never touches a parent.
    async fn open(backend: Backend, lane: Lane, parent: Option<Lane>) -> Result<Transaction<'p>> {
        let level = Level::fresh();
        let mut abandoned = Transaction {
            backend,
            lane,
            level,
            finished: false,
            parent: PhantomData,
        };
        let begun = abandoned
            .backend
            .begin(lane, level, TxKind::Immediate, parent)
            .await;
        if let Err(error) = begun {
            abandoned.finished = true;
            return Err(error);
        }
        Ok(abandoned)
    }

    /// Commits. For a savepoint, its changes become part of the parent.
    /// Fails with [`Error::RolledBack`](crate::Error::RolledBack) if SQLite already rolled the
    /// transaction back; a commit that fails leaves nothing open.
    pub fn commit(mut self) -> Pending<()> {
        self.finished = true;
        self.backend.commit(self.lane, self.level)
    }

    /// Rolls back (this level and everything inside it).
    pub fn rollback(mut self) -> Pending<()> {
        self.finished = true;
        self.backend.rollback(self.lane, self.level)
    }

    /// Begins a nested transaction (a savepoint) that borrows this one until
    /// it ends.
    pub fn begin(&mut self) -> impl Future<Output = Result<Transaction<'_>>> + Send + '_ {
        Transaction::open(self.backend.clone(), self.lane, Some(self.lane))
    }

    /// Runs a synchronous unit of work inside this transaction, in one call
    /// (on the server thread for a background database). An error or panic
    /// from `work` leaves the transaction open for the caller to decide (the
    /// panic becomes [`Error::Panic`](crate::Error::Panic)).
    pub fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> Pending<R> {
        self.backend
            .run_work(self.lane, Route::Writer, move |conn| work(&Conn::new(conn)))
    }

    /// Runs `work` in a savepoint: committed on `Ok`, rolled back on `Err`
    /// or panic.
    pub fn savepoint<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> Pending<R> {
        self.backend
            .run_work(self.lane, Route::Writer, move |conn| write_unit(conn, work))
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.backend.rollback_detached(self.lane, self.level);
        }
    }
}

impl Runner for Transaction<'_> {
    type Mode = Async;

    fn run_plan<T: Send + 'static>(&self, plan: Plan<T>) -> Pending<T> {
        self.backend.run(self.lane, plan)
    }

    fn run_batch(&self, batch: Batch) -> Pending<Execution> {
        self.backend.run_batch(self.lane, batch)
    }
}

thread_local! {
    /// The transactions whose futures this thread is polling right now, as
    /// (database id, lane): calls through a `Db` of that database join the
    /// innermost one.
    static SCOPES: RefCell<Vec<(usize, Lane)>> = const { RefCell::new(Vec::new()) };
}

/// How many scopes all threads are polling right now: while none is, a
/// call skips looking for one. (A thread's own scope is counted before it
/// polls, so a relaxed load on that thread sees it.)
static SCOPES_ENTERED: AtomicUsize = AtomicUsize::new(0);

/// The lane of the innermost transaction scope of `backend`'s database
/// that this thread is polling, if any.
#[inline]
pub(crate) fn scope_lane(backend: &Backend) -> Option<Lane> {
    if SCOPES_ENTERED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let id = backend.id();
    SCOPES.with(|scopes| {
        scopes
            .borrow()
            .iter()
            .rev()
            .find(|(scope, _)| *scope == id)
            .map(|(_, lane)| *lane)
    })
}

/// A transaction's body, polled with its scope set, so calls made through
/// the database inside it join the transaction.
pub(crate) struct Scoped<Fut> {
    scope: (usize, Lane),
    body: Pin<Box<Fut>>,
}

impl<Fut: Future> Scoped<Fut> {
    /// Builds the body with `start` inside `tx`'s scope.
    pub(crate) fn new(tx: &Transaction<'_>, start: impl FnOnce() -> Fut) -> Self {
        let scope = (tx.backend.id(), tx.lane);
        let body = {
            let _entered = Entered::enter(scope);
            Box::pin(start())
        };
        Scoped { scope, body }
    }
}

/// Pops a scope when dropped, even if the body panics while polled.
struct Entered;

impl Entered {
    fn enter(scope: (usize, Lane)) -> Entered {
        SCOPES_ENTERED.fetch_add(1, Ordering::SeqCst);
        SCOPES.with(|scopes| scopes.borrow_mut().push(scope));
        Entered
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        SCOPES.with(|scopes| scopes.borrow_mut().pop());
        SCOPES_ENTERED.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<Fut: Future> Future for Scoped<Fut> {
    type Output = Fut::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let _entered = Entered::enter(self.scope);
        self.body.as_mut().poll(cx)
    }
}
