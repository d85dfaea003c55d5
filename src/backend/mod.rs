//! The one backend layer: where a database's connection lives, and the
//! operations every kind of connection offers — run a [`Plan`] (statements
//! in, rows out), begin, commit and roll back a named transaction level —
//! plus, on the in-process backends, running a closure where the
//! connection lives (`write`/`read` units of work).
//!
//! [`Backend`] is that layer: the in-thread database ([`local`]) or a
//! client of a background server ([`server`]); a remote client and
//! PostgreSQL will be more variants. `Db` and `Transaction` are thin handles
//! above it; nothing here knows them.
//!
//! Requests carry a [`Lane`]: the transaction they belong to, or
//! [`Lane::NONE`]. Whoever holds the writer's transaction owns a lane; a
//! request of another lane waits its turn (at most the busy timeout, then
//! [`Error::Busy`]), so no client's write can land inside another's
//! transaction and nobody sees uncommitted work. The rules that decide what
//! a transaction is and when it ends live in [`host`], shared by every
//! backend that owns a SQLite connection.

pub(crate) mod feed;
pub(crate) mod host;
pub(crate) mod local;
mod pending;
pub mod server;

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use pending::Pending;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::plan::{Collect, Plan};
use crate::query::Statement;
use crate::sqlite::{Connection, Execution, Level, TxKind};
use local::Local;
use server::Client;

/// Who a request belongs to: a transaction's lane, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Lane(u64);

impl Lane {
    /// Requests that belong to no transaction.
    pub(crate) const NONE: Lane = Lane(0);

    /// A lane never used before in this process.
    pub(crate) fn fresh() -> Lane {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Lane(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// Its number (0 for [`Lane::NONE`]), as the wire protocol sends it.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn id(self) -> u64 {
        self.0
    }
}

/// What one run of a watched query found: its result, what it read, the
/// last commit it is known to include, and whether the column its code
/// calls the rowid is the rowid in the file.
pub(crate) type WatchedRun<T> = (Result<T>, crate::sqlite::changes::ReadSet, u64, bool);

/// A closure run where the connection lives: the one bound every unit of
/// work, migration step and internal job shares.
pub(crate) trait Work<R>: FnOnce(&Connection) -> Result<R> + Send + 'static {}

impl<R, F: FnOnce(&Connection) -> Result<R> + Send + 'static> Work<R> for F {}

/// Which connection a closure needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The writer.
    Writer,
    /// A reader of the pool, when there is one and the request belongs to
    /// no transaction; the writer otherwise.
    Reader,
}

/// Where a connected database's connection lives.
#[derive(Clone)]
pub(crate) enum Backend {
    /// On the caller's thread.
    Local(Arc<Local>),
    /// On a background server's threads.
    Server(Arc<Client>),
    /// On a server in another process, over a byte stream.
    #[cfg(feature = "remote")]
    Remote(Arc<crate::remote::client::Remote>),
    /// A file several processes share: served here or by another process,
    /// whichever holds its lock now (`Db::open_shared`).
    #[cfg(all(feature = "remote", unix))]
    Shared(Arc<crate::remote::shared::Failover>),
}

impl Backend {
    /// Identifies the database behind this backend (the server, not the
    /// client): transaction scopes and reentrancy checks compare it.
    pub(crate) fn id(&self) -> usize {
        match self {
            Backend::Local(local) => local.id(),
            Backend::Server(client) => client.server_id(),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => Arc::as_ptr(remote) as usize,
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => Arc::as_ptr(shared) as usize,
        }
    }

    /// Identifies this handle (the in-thread database, or one client of a
    /// server): streams of the same watched query on it share their runs.
    pub(crate) fn handle_id(&self) -> usize {
        match self {
            Backend::Local(local) => Arc::as_ptr(local) as usize,
            Backend::Server(client) => Arc::as_ptr(client) as usize,
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => Arc::as_ptr(remote) as usize,
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => Arc::as_ptr(shared) as usize,
        }
    }

    /// The database's change feed.
    pub(crate) fn feed(&self) -> &Arc<feed::Feed> {
        match self {
            Backend::Local(local) => local.feed(),
            Backend::Server(client) => client.feed(),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.feed(),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.feed(),
        }
    }

    /// Runs `plan` for `lane`.
    #[inline]
    pub(crate) fn run<T: Send + 'static>(&self, lane: Lane, plan: Plan<T>) -> Pending<T> {
        match self {
            Backend::Local(local) => local.run(lane, plan),
            Backend::Server(client) => client.run(lane, plan),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.run(lane, plan),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.run(lane, plan),
        }
    }

    /// Runs `work` where the connection lives, on `route`'s connection.
    pub(crate) fn run_work<R: Send + 'static>(
        &self,
        lane: Lane,
        route: Route,
        work: impl Work<R>,
    ) -> Pending<R> {
        match self {
            Backend::Local(local) => local.run_work(lane, work),
            Backend::Server(client) => client.run_work(lane, route, work),
            #[cfg(feature = "remote")]
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.run_work(lane, route, work),
            #[cfg(feature = "remote")]
            Backend::Remote(_) => Pending::ready(Err(Error::Unsupported {
                message: "a closure-based unit of work (write, read, run, savepoint, watch_read) runs where the connection lives and cannot cross a socket: use statements, batches and transactions".into(),
            })),
        }
    }

    /// Runs a watched query: `work` on a reader where the connection
    /// lives; on a remote backend, which a closure cannot reach, `plan`
    /// (its statement and fold) on the server, as known to include the
    /// commits up to `seen` (the watcher's feed's number now: the server's
    /// changes reach that feed after the ones the run saw).
    pub(crate) fn run_watched<T: Send + 'static>(
        &self,
        plan: Option<(Statement, Collect<T>)>,
        #[cfg_attr(not(feature = "remote"), allow(unused_variables))] seen: u64,
        work: impl Work<WatchedRun<T>>,
    ) -> Pending<WatchedRun<T>> {
        match (self, plan) {
            #[cfg(feature = "remote")]
            (Backend::Remote(remote), Some((statement, collect))) => {
                remote.run_watched(statement, collect, seen)
            }
            #[cfg(all(feature = "remote", unix))]
            (Backend::Shared(shared), plan) => shared.run_watched(plan, seen, work),
            _ => self.run_work(Lane::NONE, Route::Reader, work),
        }
    }

    /// Runs `batch` for `lane` in one round trip, in one transaction (a
    /// savepoint of the lane's).
    pub(crate) fn run_batch(&self, lane: Lane, batch: Batch) -> Pending<Execution> {
        match self {
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.run_batch(lane, batch),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.run_batch(lane, batch),
            _ => self.run_work(lane, Route::Writer, move |conn| batch.run_on(conn)),
        }
    }

    /// Opens `level` in `lane`: its transaction without a `parent` lane; a
    /// savepoint inside the parent's innermost level with one (held by
    /// `lane` alone while it lasts, if `lane` is not the parent).
    pub(crate) fn begin(
        &self,
        lane: Lane,
        level: Level,
        kind: TxKind,
        parent: Option<Lane>,
    ) -> Pending<()> {
        match self {
            Backend::Local(local) => local.begin(lane, level, kind, parent),
            Backend::Server(client) => client.begin(lane, level, kind, parent),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.begin(lane, level, kind, parent),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.begin(lane, level, kind, parent),
        }
    }

    /// Commits `lane`'s `level` (and every level inside it).
    pub(crate) fn commit(&self, lane: Lane, level: Level) -> Pending<()> {
        match self {
            Backend::Local(local) => local.commit(lane, level),
            Backend::Server(client) => client.commit(lane, level),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.commit(lane, level),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.commit(lane, level),
        }
    }

    /// Rolls back `lane`'s `level` (and every level inside it).
    pub(crate) fn rollback(&self, lane: Lane, level: Level) -> Pending<()> {
        match self {
            Backend::Local(local) => local.rollback(lane, level),
            Backend::Server(client) => client.rollback(lane, level),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.rollback(lane, level),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.rollback(lane, level),
        }
    }

    /// Rolls back `lane`'s `level` without waiting for it (a handle
    /// dropped without commit): after the lane's earlier requests.
    pub(crate) fn rollback_detached(&self, lane: Lane, level: Level) {
        match self {
            Backend::Local(local) => local.rollback_detached(lane, level),
            Backend::Server(client) => client.rollback_detached(lane, level),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.rollback_detached(lane, level),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.rollback_detached(lane, level),
        }
    }

    /// Replaces the database with the backup at `source` (see
    /// `Db::restore_from`), `prepare` bringing the staged copy to the
    /// code's schema; refused inside a transaction (`lane`).
    pub(crate) fn restore(
        &self,
        lane: Lane,
        source: std::path::PathBuf,
        progress: Box<dyn FnMut(crate::sqlite::BackupProgress) + Send>,
        prepare: fn(&Connection) -> Result<()>,
    ) -> Pending<()> {
        if lane != Lane::NONE {
            return Pending::ready(Err(Error::InUse {
                message: "a restore cannot run inside a transaction".into(),
            }));
        }
        match self {
            Backend::Local(local) => local.restore(source, progress, prepare),
            Backend::Server(client) => client.restore(source, progress, prepare),
            #[cfg(feature = "remote")]
            Backend::Remote(_) => Pending::ready(Err(Error::Unsupported {
                message: "a restore from a file runs where the database lives: restore it in the \
                          serving process"
                    .into(),
            })),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(_) => Pending::ready(Err(Error::Unsupported {
                message: "a file shared between processes cannot be restored while they share \
                          it: restore it with Db::open and no other process running"
                    .into(),
            })),
        }
    }

    /// Closes this handle's access; see `Db::close`.
    pub(crate) fn close(&self) -> Pending<()> {
        match self {
            Backend::Local(local) => local.close(),
            Backend::Server(client) => client.close(),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.close(),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.close(),
        }
    }

    /// Whether requests are refused because the backend closed.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Backend::Local(local) => local.is_closed(),
            Backend::Server(client) => client.is_closed(),
            #[cfg(feature = "remote")]
            Backend::Remote(remote) => remote.is_closed(),
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(shared) => shared.is_closed(),
        }
    }

    /// What kind of backend this is, for `Debug`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Backend::Local(_) => "in-thread",
            Backend::Server(_) => "background server",
            #[cfg(feature = "remote")]
            Backend::Remote(_) => "remote",
            #[cfg(all(feature = "remote", unix))]
            Backend::Shared(_) => "shared between processes",
        }
    }
}

thread_local! {
    /// The databases this thread is running code for right now: an
    /// in-thread database while it runs a unit of work, a server for the
    /// whole life of its threads. A request to one of them from here would
    /// wait for this very thread.
    static INSIDE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as running code for database `id` until dropped.
pub(crate) struct Inside(usize);

impl Inside {
    pub(crate) fn enter(id: usize) -> Inside {
        INSIDE.with(|inside| inside.borrow_mut().push(id));
        Inside(id)
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.with(|inside| {
            let mut inside = inside.borrow_mut();
            if let Some(at) = inside.iter().rposition(|id| *id == self.0) {
                inside.remove(at);
            }
        });
    }
}

/// Fails with [`Error::Reentrant`] if this thread runs code for database
/// `id`: a request from here would wait for itself forever.
pub(crate) fn ensure_outside(id: usize) -> Result<()> {
    if INSIDE.with(|inside| inside.borrow().contains(&id)) {
        return Err(Error::Reentrant);
    }
    Ok(())
}

/// Whether this thread runs code for database `id`.
pub(crate) fn is_inside(id: usize) -> bool {
    INSIDE.with(|inside| inside.borrow().contains(&id))
}
