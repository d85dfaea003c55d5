//! Auto-updating queries: [`Watch`], a stream that yields a query's result
//! now and again after every committed change that can affect it, and
//! [`TableUpdatesStream`], the raw updates of every committed transaction.
//!
//! A watched query runs where the database lives, on a reader of the pool
//! when there is one (never queued behind a long write), recording what it
//! read ([`crate::sqlite`]'s change tracking: SQLite's authorizer, nothing
//! declared by the user). The database's change feed (`backend::feed`)
//! marks it after each commit that touches what it read — by table, and by
//! column for updates — and wakes its streams. A stream polled after a
//! mark runs the query again, once for any number of commits in between
//! (a burst of 10,000 writes costs one re-run), so a slow subscriber gets
//! the latest result, never a backlog. A stream registers before its first
//! run, and every run notes the last commit it is known to include, so a
//! change that commits while a stream starts is never missed. Streams of
//! the same query (same SQL, arguments and result type, on one handle)
//! share each run. A query that fails yields its error and goes on
//! watching; a closed database ends every stream with [`Error::Closed`].
//!
//! The builders' `watch` methods live here, on [`Watchable`] runners (a
//! `Db`), the way a feature module adds an `impl` block.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};

use futures::channel::mpsc::UnboundedReceiver;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{Stream, StreamExt};

use crate::backend::feed::{Feed, Interest};
use crate::backend::{Backend, Pending};
use crate::conn::{Conn, read_unit};
use crate::error::{Error, Result};
use crate::executor::Runner;
use crate::plan::{self, Plan};
use crate::queries::{ColumnsQuery, SelectQuery};
use crate::row::{FromRow, OwnedRow, Scalars};
use crate::sqlite::Connection;
use crate::sqlite::changes::{ReadSet, RowKeys};

pub use crate::backend::feed::{TableUpdates, UpdateFilter};
pub use crate::sqlite::{TableUpdate, UpdateKind};

/// What a watched query's result must be: cloned to every stream that
/// shares a run.
pub trait Watched: Clone + Send + Sync + 'static {}

impl<T: Clone + Send + Sync + 'static> Watched for T {}

/// A runner whose queries can be watched: a `Db` (a transaction's view is
/// private and ends, so it has none).
pub trait Watchable: sealed::Watches {}

pub(crate) mod sealed {
    use super::*;

    /// Only driftwood's handles watch.
    pub trait Watches {
        /// The backend to watch through, or the connection that gives it.
        #[doc(hidden)]
        fn watch_backend(&self) -> Target;
    }
}

impl<W: sealed::Watches> Watchable for W {}

/// A backend, or the connection still to give one (a delayed database).
pub(crate) type Connected = std::result::Result<Backend, BoxFuture<'static, Result<Backend>>>;

/// What a watched query runs on (opaque).
#[doc(hidden)]
pub struct Target(pub(crate) Connected);

/// A query's result, yielded now and again after every committed change
/// that can affect it. See the [module documentation](self).
///
/// A watch always reads committed data, outside any transaction: awaiting
/// one inside `Db::transaction` (or while holding a transaction) on an
/// in-thread database, or on a server without readers, waits for that
/// transaction and fails with [`Error::Busy`] after the busy timeout.
#[must_use = "a watch does nothing unless polled as a stream"]
pub struct Watch<T: Watched> {
    source: Source<T>,
    /// The version of the shared result yielded last.
    seen: u64,
    /// The commit the result yielded last is known to include.
    last_commit: Option<u64>,
    /// Set by [`Watch::distinct`]: yields only results unlike the last.
    same: Option<fn(&T, &T) -> bool>,
    /// This stream's handle on the query's run in flight.
    running: Option<Shared<Pending<Outcome<T>>>>,
    last_value: Option<T>,
    ended: bool,
}

enum Source<T: Watched> {
    Connecting(BoxFuture<'static, Result<Arc<Query<T>>>>),
    Ready(Arc<Query<T>>),
}

/// A watched query shared by its streams.
struct Query<T: Watched> {
    feed: Arc<Feed>,
    interest: Arc<Interest>,
    backend: Backend,
    run: Run<T>,
    /// The statement and fold, for a query of a plan: what a remote
    /// backend sends instead of running `run` (a closure cannot cross a
    /// socket).
    plan: Option<(crate::query::Statement, crate::plan::Collect<T>)>,
    /// Runs started.
    runs: AtomicU64,
    /// The table and column a keyed query takes for the rowid.
    rowid: Option<(String, String)>,
    state: Mutex<State<T>>,
    /// Its key among the shared queries, if it is shared.
    key: Option<Key>,
}

/// What a watched query runs where the connection lives.
type Run<T> = Arc<dyn Fn(&Connection) -> Result<T> + Send + Sync>;

/// What one run found: the result, what it read, the last commit it is
/// known to include, and whether the column the code calls the rowid is the
/// rowid in the file (true when the query is not keyed by rowid).
type Outcome<T> = crate::backend::WatchedRun<T>;

struct State<T: Watched> {
    latest: Option<Latest<T>>,
    running: Option<Shared<Pending<Outcome<T>>>>,
}

struct Latest<T> {
    version: u64,
    /// The last commit this result is known to include.
    commit: u64,
    result: Result<T>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The key under which streams of one query on one handle share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    handle: usize,
    result: TypeId,
    fold: usize,
    sql: String,
    args: String,
}

/// Every shared query of the process, by key.
fn shared_queries() -> &'static Mutex<HashMap<Key, Weak<dyn Any + Send + Sync>>> {
    static QUERIES: std::sync::OnceLock<Mutex<HashMap<Key, Weak<dyn Any + Send + Sync>>>> =
        std::sync::OnceLock::new();
    QUERIES.get_or_init(Default::default)
}

impl<T: Watched> Query<T> {
    fn new(backend: Backend, run: Run<T>, keys: Option<RowKeys>) -> Self {
        let feed = backend.feed().clone();
        let rowid = keys.as_ref().map(|k| (k.table.clone(), k.column.clone()));
        Query {
            rowid,
            interest: feed.subscribe(keys),
            feed,
            backend,
            run,
            plan: None,
            runs: AtomicU64::new(0),
            state: Mutex::new(State {
                latest: None,
                running: None,
            }),
            key: None,
        }
    }

    /// The query of `plan` on `backend`, shared with the streams already
    /// watching the same one.
    fn of_plan(backend: Backend, plan: Plan<T>, keys: Option<RowKeys>) -> Arc<Query<T>> {
        let key = Key {
            handle: backend.handle_id(),
            result: TypeId::of::<T>(),
            fold: plan.collect.address(),
            sql: plan.statement.sql.to_string(),
            args: format!("{:?}", plan.statement.args),
        };
        let mut queries = locked(shared_queries());
        let found = queries.get(&key).and_then(Weak::upgrade);
        if let Some(Ok(query)) = found.map(|query| query.downcast::<Query<T>>()) {
            return query;
        }
        // A remote backend's feed learns what commits changed by table and
        // column; rowids of keyed queries are not checked there.
        #[cfg(feature = "remote")]
        let keys = keys.filter(|_| !matches!(backend, Backend::Remote(_)));
        let remote_plan = (plan.statement.clone(), plan.collect);
        let mut query = Query::new(
            backend,
            // A watched statement that writes fails instead of waking itself
            // forever (a read unit refuses writes on its own).
            Arc::new(move |conn: &Connection| {
                conn.ensure_reads_only(&plan.statement.sql)?;
                conn.run(&plan)
            }),
            keys,
        );
        query.key = Some(key.clone());
        query.plan = Some(remote_plan);
        let query = Arc::new(query);
        let shared: Arc<dyn Any + Send + Sync> = query.clone();
        queries.insert(key, Arc::downgrade(&shared));
        query
    }

    /// Starts a run on a reader (the writer without one).
    fn start(&self) -> Shared<Pending<Outcome<T>>> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let run = self.run.clone();
        let feed = self.feed.clone();
        let rowid = self.rowid.clone();
        self.backend
            .run_watched(
                self.plan.clone(),
                self.feed.seq(),
                move |conn: &Connection| {
                    let commit = feed.seq();
                    let (result, reads) = conn.recording_reads(|| run(conn));
                    // What a failed run would have read is unknown.
                    let reads = if result.is_ok() {
                        reads
                    } else {
                        ReadSet::anything()
                    };
                    let keys_hold = rowid
                        .as_ref()
                        .is_none_or(|(table, column)| conn.is_rowid(table, column));
                    Ok((result, reads, commit, keys_hold))
                },
            )
            .shared()
    }

    /// Takes a finished run's outcome as the latest result.
    fn adopt(&self, state: &mut State<T>, (result, reads, commit, keys_hold): Outcome<T>) {
        let version = state.latest.as_ref().map_or(1, |l| l.version + 1);
        self.feed
            .set_reads(&self.interest, reads, commit, keys_hold);
        state.latest = Some(Latest {
            version,
            commit,
            result,
        });
    }
}

impl<T: Watched> Drop for Query<T> {
    fn drop(&mut self) {
        self.feed.unsubscribe(&self.interest);
        if let Some(key) = &self.key {
            let mut queries = locked(shared_queries());
            // A query made since under the same key stays.
            if queries
                .get(key)
                .is_some_and(|query| query.strong_count() == 0)
            {
                queries.remove(key);
            }
        }
    }
}

impl<T: Watched> Watch<T> {
    /// A watch of the query `make` builds on the backend: at once if the
    /// backend is connected, so no change that commits from now on is
    /// missed.
    fn connecting(
        backend: Connected,
        make: impl FnOnce(Backend) -> Arc<Query<T>> + Send + 'static,
    ) -> Self {
        let source = match backend {
            Ok(backend) => Source::Ready(make(backend)),
            Err(connecting) => {
                Source::Connecting(async move { connecting.await.map(make) }.boxed())
            }
        };
        Watch {
            source,
            seen: 0,
            last_commit: None,
            same: None,
            running: None,
            last_value: None,
            ended: false,
        }
    }

    /// Watches `plan` through `runner`; a query that reads only the rows
    /// with rowids `keys` of a table re-runs only for changes of those.
    pub(crate) fn plan(
        runner: &impl sealed::Watches,
        plan: Plan<T>,
        keys: Option<(&'static str, &'static str, Vec<i64>)>,
    ) -> Self {
        let keys = keys.map(|(table, column, keys)| RowKeys {
            table: table.to_ascii_lowercase(),
            column: column.to_owned(),
            keys,
        });
        Watch::connecting(runner.watch_backend().0, move |backend| {
            Query::of_plan(backend, plan, keys)
        })
    }

    /// Watches a read unit of work through `runner`.
    pub(crate) fn read_unit(
        runner: &impl sealed::Watches,
        work: impl Fn(&Conn<'_>) -> Result<T> + Send + Sync + 'static,
    ) -> Self {
        Watch::connecting(runner.watch_backend().0, move |backend| {
            let run = move |conn: &Connection| read_unit(conn, &work);
            Arc::new(Query::new(backend, Arc::new(run), None))
        })
    }

    /// Yields a result only when it differs from the one yielded before
    /// (drift's `distinct`, Rx's `distinctUntilChanged`).
    pub fn distinct(mut self) -> Self
    where
        T: PartialEq,
    {
        self.same = Some(|a, b| a == b);
        self
    }

    /// The sequence number of the last commit the result yielded last is
    /// known to include ([`TableUpdates::seq`] numbers the same commits);
    /// `None` before the first result.
    pub fn last_commit(&self) -> Option<u64> {
        self.last_commit
    }

    /// How many times the query ran (streams of the same query share the
    /// count, as they share runs): one for the first result, one per
    /// re-run after changes. For diagnostics and benchmarks.
    pub fn runs(&self) -> u64 {
        match &self.source {
            Source::Ready(query) => query.runs.load(Ordering::Relaxed),
            Source::Connecting(_) => 0,
        }
    }

    /// Whether `result` repeats the value yielded last and should be
    /// skipped; remembers it otherwise.
    fn repeats(&mut self, result: &Result<T>) -> bool {
        let Some(same) = self.same else {
            return false;
        };
        let Ok(value) = result else {
            self.last_value = None;
            return false;
        };
        if self
            .last_value
            .as_ref()
            .is_some_and(|last| same(last, value))
        {
            return true;
        }
        self.last_value = Some(value.clone());
        false
    }

    fn poll_query(&mut self, query: &Query<T>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let mut state = locked(&query.state);
        loop {
            // Each stream polls a clone of the shared run of its own, so
            // every one of them is woken when it finishes.
            if self.running.is_none() {
                self.running = state.running.clone();
            }
            if let Some(running) = self.running.as_mut() {
                // Asked before polling: a finished `Shared` equals nothing.
                let current = state
                    .running
                    .as_ref()
                    .is_some_and(|shared| shared.ptr_eq(running));
                let outcome = std::task::ready!(running.poll_unpin(cx));
                self.running = None;
                // The first stream to see a run finish takes its outcome;
                // the others find it in `latest`.
                if current {
                    state.running = None;
                    match outcome {
                        Ok(outcome) => query.adopt(&mut state, outcome),
                        // The run never happened (busy, closed): this
                        // stream hears why; nothing is kept, so the next
                        // poll (of any stream) tries again.
                        Err(error) => {
                            self.ended = error == Error::Closed;
                            return Poll::Ready(Some(Err(error)));
                        }
                    }
                }
            }
            let closed = query.feed.is_closed() || query.backend.is_closed();
            if closed {
                self.ended = true;
                return Poll::Ready(Some(Err(Error::Closed)));
            }
            let stale = state
                .latest
                .as_ref()
                .is_none_or(|latest| query.interest.dirty() > latest.commit);
            if stale {
                if state.running.is_none() {
                    state.running = Some(query.start());
                }
                continue;
            }
            if let Some(latest) = state.latest.as_ref().filter(|l| l.version > self.seen) {
                self.seen = latest.version;
                self.last_commit = Some(latest.commit);
                let result = latest.result.clone();
                if self.repeats(&result) {
                    continue;
                }
                return Poll::Ready(Some(result));
            }
            query.interest.register(cx.waker());
            let fresh = state
                .latest
                .as_ref()
                .is_some_and(|latest| query.interest.dirty() <= latest.commit);
            if fresh && !query.feed.is_closed() && !query.backend.is_closed() {
                return Poll::Pending;
            }
        }
    }
}

// Nothing of a `Watch` is pinned: `T` values are only cloned out.
impl<T: Watched> Unpin for Watch<T> {}

impl<T: Watched> Stream for Watch<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let query = match &mut this.source {
            Source::Ready(query) => query.clone(),
            Source::Connecting(connecting) => match std::task::ready!(connecting.poll_unpin(cx)) {
                Ok(query) => {
                    this.source = Source::Ready(query.clone());
                    query
                }
                Err(error) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
            },
        };
        this.poll_query(&query, cx)
    }
}

impl<T: Watched> std::fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("last_commit", &self.last_commit)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The updates of every committed transaction a filter wants, one item per
/// transaction, in commit order (see [`crate::Db::table_updates`]). Ends
/// when the database closes.
#[must_use = "a stream does nothing unless polled"]
pub struct TableUpdatesStream {
    feed: Option<(Arc<Feed>, u64)>,
    updates: Option<UnboundedReceiver<TableUpdates>>,
    connecting: Option<BoxFuture<'static, Result<Backend>>>,
    filter: UpdateFilter,
}

impl TableUpdatesStream {
    pub(crate) fn new(runner: &impl sealed::Watches, filter: UpdateFilter) -> Self {
        let mut stream = TableUpdatesStream {
            feed: None,
            updates: None,
            connecting: None,
            filter,
        };
        match runner.watch_backend().0 {
            Ok(backend) => stream.listen(&backend),
            Err(connecting) => stream.connecting = Some(connecting),
        }
        stream
    }

    fn listen(&mut self, backend: &Backend) {
        let feed = backend.feed().clone();
        let (id, updates) = feed.listen(std::mem::take(&mut self.filter), backend.handle_id());
        self.feed = Some((feed, id));
        self.updates = Some(updates);
    }
}

impl Stream for TableUpdatesStream {
    type Item = TableUpdates;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TableUpdates>> {
        let this = self.get_mut();
        if let Some(connecting) = this.connecting.as_mut() {
            let connected = std::task::ready!(connecting.poll_unpin(cx));
            this.connecting = None;
            let Ok(backend) = connected else {
                return Poll::Ready(None);
            };
            this.listen(&backend);
        }
        match this.updates.as_mut() {
            Some(updates) => updates.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for TableUpdatesStream {
    fn drop(&mut self) {
        if let Some((feed, id)) = &self.feed {
            feed.unlisten(*id);
        }
    }
}

impl std::fmt::Debug for TableUpdatesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableUpdatesStream").finish_non_exhaustive()
    }
}

impl<E: Runner + Watchable, R: FromRow + Watched> SelectQuery<'_, E, R> {
    /// Every matching row, now and after every change that can affect them.
    pub fn watch(self) -> Watch<Vec<R>> {
        let (exec, select) = self.into_parts();
        let keys = select.rowid_keys();
        Watch::plan(
            exec,
            Plan::rows(select.build(exec.dialect()), plan::all::<R>),
            keys,
        )
    }

    /// The one matching row, watched like [`SelectQuery::watch`]; a result
    /// without exactly one row yields [`Error::NoRows`] or
    /// [`Error::TooManyRows`] and the stream goes on.
    pub fn watch_single(self) -> Watch<R> {
        let (exec, select) = self.into_parts();
        let keys = select.rowid_keys();
        Watch::plan(
            exec,
            Plan::rows(select.build(exec.dialect()), plan::single::<R>),
            keys,
        )
    }

    /// The matching row if there is one, watched like [`SelectQuery::watch`].
    pub fn watch_optional(self) -> Watch<Option<R>> {
        let (exec, select) = self.into_parts();
        let keys = select.rowid_keys();
        Watch::plan(
            exec,
            Plan::rows(select.build(exec.dialect()), plan::optional::<R>),
            keys,
        )
    }

    /// The number of matching rows, watched like [`SelectQuery::watch`].
    pub fn watch_count(self) -> Watch<i64> {
        let (exec, select) = self.into_parts();
        let keys = select.rowid_keys();
        Watch::plan(
            exec,
            Plan::rows(select.count().build(exec.dialect()), plan::count),
            keys,
        )
    }
}

impl<E: Runner + Watchable, O: Watched> ColumnsQuery<'_, E, O>
where
    Scalars<O>: FromRow,
{
    /// Every selected row, watched like [`SelectQuery::watch`].
    pub fn watch(self) -> Watch<Vec<O>> {
        let (exec, select) = self.into_parts();
        let keys = select.rowid_keys();
        Watch::plan(
            exec,
            Plan::rows(select.build(exec.dialect()), plan::scalars::<O>),
            keys,
        )
    }

    /// The one selected row, watched like [`SelectQuery::watch_single`].
    pub fn watch_single(self) -> Watch<O> {
        let (exec, select) = self.into_parts();
        let keys = select.rowid_keys();
        Watch::plan(
            exec,
            Plan::rows(select.build(exec.dialect()), plan::single_scalar::<O>),
            keys,
        )
    }
}

/// Raw SQL, watched (`custom_select(..).watch()` in drift).
pub(crate) fn custom_select(
    runner: &impl sealed::Watches,
    sql: String,
    args: Vec<crate::types::SqlValue>,
) -> Watch<Vec<OwnedRow>> {
    let statement =
        crate::query::Statement::new(sql, args).with_access(crate::query::Access::Unknown);
    Watch::plan(runner, Plan::rows(statement, plan::owned_rows), None)
}
