//! [`Db`], the handle an application queries through.
//!
//! `Db` is a thin handle over a backend (see `backend`): cheap to clone and
//! `Send + Sync`. Opening it runs the [`Database`]'s open sequence
//! ([`crate::migration`]): create or migrate the schema in one transaction
//! together with `user_version`, so a failure leaves the file as it was. `Server::connect` (defined here,
//! so the server knows nothing of `Db`) runs that same open sequence on the
//! server's writer.

use std::future::Future;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::Pending;
use crate::backend::local::Local;
use crate::backend::server::{DEFAULT_READERS, Server};
use crate::backend::{Backend, Lane, Route};
use crate::batch::Batch;
use crate::conn::{Conn, read_unit, write_unit};
use crate::error::{Error, Result};
use crate::executor::{Async, Runner};
pub use crate::migration::{Database, create_all};
use crate::plan::Plan;
use crate::schema::Schema;
use crate::sqlite::{Connection, Execution, OpenOptions};
use crate::transaction::{Scoped, Transaction, scope_lane};
use crate::watch::{TableUpdatesStream, UpdateFilter, Watch, Watched};

/// A database with no declared schema, for raw SQL.
#[derive(Debug, Clone, Copy)]
pub struct NoSchema;

impl Database for NoSchema {
    const SCHEMA_VERSION: u32 = 0;
    fn schema() -> Schema {
        Schema::default()
    }
}

/// Builds a [`Schema`] from table types: `schema![Todo, Category]`.
#[macro_export]
macro_rules! schema {
    ($($table:ty),* $(,)?) => {
        $crate::schema::Schema::new([$($crate::schema::Entity::Table(<$table as $crate::table::Table>::definition())),*])
    };
}

/// A handle to a database of definition `D`: cheap to clone, `Send + Sync`,
/// the same API whether the connection lives on the calling thread
/// ([`Db::open`]), on a background server ([`Db::open_in_background`],
/// [`Server::connect`]) or is still to be made ([`Db::delayed`]). Queries
/// come from [`Runner`]; transactions from [`Db::begin`] and
/// [`Db::transaction`]; units of work from [`Db::write`] and [`Db::read`].
pub struct Db<D = NoSchema> {
    target: Target,
    marker: PhantomData<fn() -> D>,
    /// Shared by this handle's clones (and nothing else), so its count says
    /// how many there are: a restore needs the only one.
    handles: Arc<()>,
}

/// The backend a `Db` talks to, or the connection it is still waiting for.
#[derive(Clone)]
enum Target {
    Ready(Backend),
    /// Connects on first use (drift's `DatabaseConnection.delayed`); every
    /// clone shares the one attempt.
    Delayed(Shared<BoxFuture<'static, Result<Backend>>>),
}

impl<D> Clone for Db<D> {
    fn clone(&self) -> Self {
        Db {
            target: self.target.clone(),
            marker: PhantomData,
            handles: self.handles.clone(),
        }
    }
}

impl<D> std::fmt::Debug for Db<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.target {
            Target::Ready(backend) => backend.kind(),
            Target::Delayed(_) => "delayed",
        };
        f.debug_struct("Db").field("backend", &backend).finish()
    }
}

impl<D> Db<D> {
    pub(crate) fn from_backend(backend: Backend) -> Self {
        Db {
            target: Target::Ready(backend),
            marker: PhantomData,
            handles: Arc::default(),
        }
    }

    /// Runs `request` on the backend, in the lane of the transaction scope
    /// this call is made in (none outside `Db::transaction`); a delayed
    /// database connects first.
    #[inline]
    fn dispatch<T: Send + 'static>(
        &self,
        request: impl FnOnce(&Backend, Lane) -> Pending<T> + Send + 'static,
    ) -> Pending<T> {
        let pending = match &self.target {
            Target::Ready(backend) => return request(backend, lane_of(backend)),
            Target::Delayed(pending) => pending,
        };
        match pending.peek() {
            Some(Ok(backend)) => request(backend, lane_of(backend)),
            Some(Err(error)) => Pending::ready(Err(error.clone())),
            None => {
                let pending = pending.clone();
                Pending::boxed(async move {
                    let backend = pending.await?;
                    request(&backend, Lane::NONE).await
                })
            }
        }
    }

    /// The connected backend, connecting a delayed database first.
    pub(crate) async fn backend(&self) -> Result<Backend> {
        match &self.target {
            Target::Ready(backend) => Ok(backend.clone()),
            Target::Delayed(pending) => pending.clone().await,
        }
    }
}

/// The lane a call on `backend` made right here belongs to.
fn lane_of(backend: &Backend) -> Lane {
    scope_lane(backend).unwrap_or(Lane::NONE)
}

impl<D: Database> Db<D> {
    /// Opens (creating if needed) the database file at `path` on the calling
    /// thread, with default options (WAL, `synchronous=NORMAL`, foreign keys).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, OpenOptions::default()).await
    }

    /// Opens the file at `path` with these options.
    pub async fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self> {
        Self::from_connection(Connection::open(path, &options)?)
    }

    /// Opens a private in-memory database.
    pub async fn open_in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory(&OpenOptions::default())?)
    }

    /// Opens the file at `path` on its own background thread (drift's
    /// `NativeDatabase.createInBackground`), with a pool of
    /// [`DEFAULT_READERS`](crate::server::DEFAULT_READERS) reader threads
    /// (none for `":memory:"`, whose readers could not see its data): the
    /// same API, and the caller's thread never runs SQLite. The server stops
    /// when this database (all its clones) is closed or dropped.
    pub async fn open_in_background(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_in_background_with(path, OpenOptions::default()).await
    }

    /// [`Db::open_in_background`] with these options.
    pub async fn open_in_background_with(
        path: impl AsRef<Path>,
        options: OpenOptions,
    ) -> Result<Self> {
        let server = Server::open_with(path, options, DEFAULT_READERS).await?;
        server.connect_single_client::<D>().await
    }

    /// Wraps an open connection, creating or upgrading its schema.
    pub fn from_connection(conn: Connection) -> Result<Self> {
        prepare_schema::<D>(&conn)?;
        Ok(Self::from_backend(Backend::Local(Local::new(conn))))
    }

    /// Builds a database value synchronously that connects on first use
    /// (drift's `DatabaseConnection.delayed`): `connect` runs when the first
    /// query is awaited, once for all clones; if it fails (or panics), every
    /// call reports its error.
    ///
    /// ```
    /// # use driftwood::prelude::*;
    /// let db: Db = Db::delayed(Db::open_in_memory());
    /// let rows = futures::executor::block_on(db.custom_select("SELECT 1", [])).unwrap();
    /// assert_eq!(rows[0].get::<i64>(0).unwrap(), 1);
    /// ```
    pub fn delayed(connect: impl Future<Output = Result<Db<D>>> + Send + 'static) -> Self {
        let connected = async move {
            let db = std::panic::AssertUnwindSafe(connect)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(Error::from_panic(panic)))?;
            db.backend().await
        };
        Db {
            target: Target::Delayed(connected.boxed().shared()),
            marker: PhantomData,
            handles: Arc::default(),
        }
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`), held across awaits
    /// until committed, rolled back or dropped (which rolls back). Inside
    /// [`Db::transaction`] it begins a savepoint of that transaction.
    pub async fn begin(&self) -> Result<Transaction<'static>> {
        let backend = self.backend().await?;
        let scope = scope_lane(&backend);
        Transaction::begin_on(backend, scope).await
    }

    /// Runs `body` in a write transaction (drift's `transaction(() async
    /// {…})`): committed if it returns `Ok`, rolled back if it returns
    /// `Err` or panics. Calls made through this database (and its clones)
    /// while `body` runs join the transaction, including from helper
    /// functions that take `&impl Executor`; nested calls to `transaction`
    /// become savepoints. Work spawned onto other tasks does not join it:
    /// it waits for the transaction to end.
    ///
    /// ```
    /// # use driftwood::prelude::*;
    /// # futures::executor::block_on(async {
    /// let db: Db = Db::open_in_memory().await?;
    /// db.custom_statement("CREATE TABLE t (x INTEGER)", []).await?;
    /// db.transaction(|| async {
    ///     db.custom_statement("INSERT INTO t VALUES (1)", []).await?;
    ///     db.custom_statement("INSERT INTO t VALUES (2)", []).await?;
    ///     Ok(())
    /// })
    /// .await?;
    /// let rows = db.custom_select("SELECT count(*) FROM t", []).await?;
    /// assert_eq!(rows[0].get::<i64>(0)?, 2);
    /// # Ok::<(), driftwood::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn transaction<R, Fut>(&self, body: impl FnOnce() -> Fut) -> Result<R>
    where
        Fut: Future<Output = Result<R>>,
    {
        let tx = self.begin().await?;
        let outcome = Scoped::new(&tx, body).await;
        match outcome {
            Ok(value) => tx.commit().await.map(|()| value),
            Err(error) => {
                // The body's error matters more than how the rollback went.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }

    /// Runs a synchronous unit of work in a write transaction, in one call
    /// (on the server thread for a background database): committed if `work`
    /// returns `Ok`, rolled back on `Err` or panic (the panic becomes
    /// [`Error::Panic`]).
    pub fn write<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> Pending<R> {
        self.dispatch(move |backend, lane| {
            backend.run_work(lane, Route::Writer, move |conn| write_unit(conn, work))
        })
    }

    /// Runs a synchronous unit of work that only reads, in one call: in one
    /// read transaction, so all its queries see the same snapshot, with
    /// every write refused (on a background server it runs on a reader).
    pub fn read<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> Pending<R> {
        self.dispatch(move |backend, lane| {
            backend.run_work(lane, Route::Reader, move |conn| read_unit(conn, work))
        })
    }

    /// Closes this database: every later call on it or its clones returns
    /// [`Error::Closed`]. In-thread, the connection closes at once (an open
    /// transaction rolls back). On a shared server, only this client
    /// closes; a single-client server ([`Db::open_in_background`]) stops.
    pub fn close(&self) -> Pending<()> {
        self.dispatch(|backend, _| backend.close())
    }

    /// Whether this database was closed (or its server stopped).
    pub fn is_closed(&self) -> bool {
        match &self.target {
            Target::Ready(backend) => backend.is_closed(),
            Target::Delayed(pending) => match pending.peek() {
                Some(Ok(backend)) => backend.is_closed(),
                Some(Err(_)) => true,
                None => false,
            },
        }
    }

    /// Watches a read unit of work: runs `work` now and again after every
    /// committed change to anything it read, each time in one read
    /// transaction, so every value is one consistent snapshot of all its
    /// queries — two tables written in one transaction are never seen half
    /// applied. See [`crate::watch`].
    ///
    /// ```
    /// # use driftwood::prelude::*;
    /// # use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let db: Db = Db::open_in_memory().await?;
    /// db.custom_statement("CREATE TABLE t (x INTEGER)", []).await?;
    /// let mut counts = db.watch_read(|conn| {
    ///     let rows = conn.custom_select("SELECT count(*) FROM t", [])?;
    ///     rows[0].get::<i64>(0)
    /// });
    /// assert_eq!(counts.next().await.unwrap()?, 0);
    /// db.custom_statement("INSERT INTO t VALUES (1)", []).await?;
    /// assert_eq!(counts.next().await.unwrap()?, 1);
    /// # Ok::<(), driftwood::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn watch_read<T: Watched>(
        &self,
        work: impl Fn(&Conn<'_>) -> Result<T> + Send + Sync + 'static,
    ) -> Watch<T> {
        Watch::read_unit(self, work)
    }

    /// Watches raw SQL returning rows (drift's `customSelect(..).watch()`):
    /// its rows now and after every committed change to what it reads.
    pub fn watch_custom_select(
        &self,
        sql: impl Into<String>,
        args: impl IntoIterator<Item = crate::types::SqlValue>,
    ) -> Watch<Vec<crate::row::OwnedRow>> {
        crate::watch::custom_select(self, sql.into(), args.into_iter().collect())
    }

    /// The tables every committed transaction changed, as `filter` wants
    /// them (drift's `tableUpdates`): one item per transaction, in commit
    /// order, with its sequence number; from the moment of this call (or,
    /// for a delayed database, of its connection) until the database
    /// closes. Items queue until taken.
    pub fn table_updates(&self, filter: UpdateFilter) -> TableUpdatesStream {
        TableUpdatesStream::new(self, filter)
    }

    /// Tells every watcher of `tables` that they changed, for changes
    /// driftwood could not see (made through [`Connection::raw`], say).
    /// Publishes them as one commit.
    pub async fn notify_updates(&self, tables: &[&str]) -> Result<()> {
        let backend = self.backend().await?;
        backend
            .feed()
            .publish(crate::sqlite::changes::Changes::of_tables(
                tables.iter().copied(),
            ));
        Ok(())
    }

    /// Reads the live schema back from the database.
    pub fn read_schema(&self) -> Pending<Schema> {
        self.dispatch(|backend, lane| {
            backend.run_work(lane, Route::Writer, |conn| conn.read_schema())
        })
    }

    /// Copies the live database to `target` while clients keep reading and
    /// writing (SQLite's backup API, on a reader where there is one): one
    /// consistent snapshot, never part of a transaction, written beside
    /// `target` and renamed into place. `progress` hears each step.
    pub fn backup_to(
        &self,
        target: impl AsRef<Path>,
        progress: impl FnMut(crate::sqlite::BackupProgress) + Send + 'static,
    ) -> Pending<()> {
        let target = target.as_ref().to_path_buf();
        self.dispatch(move |backend, lane| {
            backend.run_work(lane, Route::Reader, move |conn| {
                conn.backup_to(&target, progress)
            })
        })
    }

    /// Writes a compacted copy to `target` (`VACUUM INTO`), one snapshot.
    pub fn vacuum_into(&self, target: impl AsRef<Path>) -> Pending<()> {
        let target = target.as_ref().to_path_buf();
        self.dispatch(move |backend, lane| {
            backend.run_work(lane, Route::Writer, move |conn| conn.vacuum_into(&target))
        })
    }

    /// Runs a WAL checkpoint in `mode` and says how many frames it wrote
    /// and how many the WAL holds (see [`crate::sqlite::CheckpointMode`]).
    pub fn checkpoint(
        &self,
        mode: crate::sqlite::CheckpointMode,
    ) -> Pending<crate::sqlite::Checkpoint> {
        self.dispatch(move |backend, lane| {
            backend.run_work(lane, Route::Writer, move |conn| conn.checkpoint(mode))
        })
    }

    /// `PRAGMA integrity_check` (`quick`: `quick_check`), its findings as
    /// data: empty when the file is sound.
    pub fn integrity_check(&self, quick: bool) -> Pending<Vec<String>> {
        self.dispatch(move |backend, lane| {
            backend.run_work(lane, Route::Reader, move |conn| conn.integrity_check(quick))
        })
    }

    /// Pages, free pages and the WAL's size.
    pub fn stats(&self) -> Pending<crate::sqlite::Stats> {
        self.dispatch(|backend, lane| backend.run_work(lane, Route::Writer, |conn| conn.stats()))
    }

    /// Returns up to `pages` free pages (all with `None`) to the system, in
    /// a file opened with `OpenOptions::auto_vacuum(AutoVacuum::Incremental)`.
    pub fn incremental_vacuum(&self, pages: Option<u32>) -> Pending<()> {
        self.dispatch(move |backend, lane| {
            backend.run_work(lane, Route::Writer, move |conn| {
                conn.incremental_vacuum(pages)
            })
        })
    }

    /// `PRAGMA optimize` (SQLite recommends it before closing and now and
    /// then on long-lived connections).
    pub fn optimize(&self) -> Pending<()> {
        self.dispatch(|backend, lane| backend.run_work(lane, Route::Writer, |conn| conn.optimize()))
    }

    /// Re-encrypts the database with `key` (see [`Connection::rekey`]):
    /// from then on the file opens only with the new key. Outside a
    /// transaction only.
    ///
    /// On a background server, the readers hold the old key, so first every
    /// request is kept on the writer (for the server's lifetime; reopen it
    /// with the new key to get readers back), then the writer re-keys. A
    /// read a reader was handed before that and starts only after the
    /// re-key committed fails ("file is not a database").
    pub fn rekey(&self, key: impl Into<crate::sqlite::EncryptionKey>) -> Pending<()> {
        let key = key.into();
        let alone = self.dispatch(|backend, lane| {
            backend.run_work(lane, Route::Writer, |conn| conn.stand_alone_for_rekey())
        });
        let db = self.clone();
        Pending::boxed(async move {
            alone.await?;
            db.dispatch(move |backend, lane| {
                backend.run_work(lane, Route::Writer, move |conn| conn.rekey(key))
            })
            .await
        })
    }

    /// Replaces the database with the backup at `source` (one
    /// [`Db::backup_to`] or any SQLite tool wrote), `progress` hearing each
    /// step of the copy.
    ///
    /// The backup is copied aside and checked before anything is touched: a
    /// file that is missing, not a SQLite database, or that `quick_check`
    /// finds damaged is refused ([`Error::BadBackup`]). A backup of another
    /// schema version is brought to `D`'s first, on that copy, as opening
    /// it would (its migrations run; a newer version is refused as opening
    /// would refuse it), so the restored database is always at `D`'s
    /// version. The copy replaces the database in one write transaction: a
    /// failure, a dropped future or a kill half-way leaves it as it was,
    /// and watched queries then run again on the restored data.
    ///
    /// It needs the database to itself ([`Error::InUse`] otherwise): no
    /// clone of this handle, no open transaction, no other client of its
    /// server, no other connection to its file (see
    /// [`Connection::restore_from`] for what can be detected of those).
    /// Watched queries may stay. On a server the reader threads close their
    /// connections while it runs (reads wait for it, at most the busy
    /// timeout). The staged copy is migrated on a connection of its own,
    /// opened with default options: migrations that need custom functions
    /// a server's opener installs cannot run there.
    pub fn restore_from(
        &self,
        source: impl AsRef<Path>,
        progress: impl FnMut(crate::sqlite::BackupProgress) + Send + 'static,
    ) -> Pending<()> {
        let others = Arc::strong_count(&self.handles) - 1;
        if others > 0 {
            return Pending::ready(Err(Error::InUse {
                message: format!(
                    "{others} other handle(s) of it are open (clones of this Db): drop them first"
                ),
            }));
        }
        let source = source.as_ref().to_path_buf();
        let progress = Box::new(progress);
        self.dispatch(move |backend, lane| {
            backend.restore(lane, source, progress, migrate_restored::<D>)
        })
    }
}

impl<D: Database> crate::watch::sealed::Watches for Db<D> {
    fn watch_backend(&self) -> crate::watch::Target {
        crate::watch::Target(match &self.target {
            Target::Ready(backend) => Ok(backend.clone()),
            Target::Delayed(pending) => match pending.peek() {
                Some(Ok(backend)) => Ok(backend.clone()),
                _ => Err(pending.clone().boxed()),
            },
        })
    }
}

impl<D: Database> Runner for Db<D> {
    type Mode = Async;

    #[inline]
    fn run_plan<T: Send + 'static>(&self, plan: Plan<T>) -> Pending<T> {
        self.dispatch(move |backend, lane| backend.run(lane, plan))
    }

    fn run_batch(&self, batch: Batch) -> Pending<Execution> {
        self.dispatch(move |backend, lane| backend.run_batch(lane, batch))
    }
}

/// Brings a staged backup to `D`'s schema version, if it is at another
/// (see [`Db::restore_from`]).
fn migrate_restored<D: Database>(staged: &Connection) -> Result<()> {
    if D::SCHEMA_VERSION == 0 || staged.user_version()? == D::SCHEMA_VERSION {
        return Ok(());
    }
    prepare_schema::<D>(staged)
}

/// Creates the schema in a new file, or checks and migrates an existing
/// one, all in one immediate transaction with `user_version`, then
/// `before_open` (see [`crate::migration::open`]).
pub(crate) fn prepare_schema<D: Database>(conn: &Connection) -> Result<()> {
    crate::migration::open::<D>(conn, D::SCHEMA_VERSION).map(drop)
}

impl Server {
    /// Connects a new client. The first client of `D` to reach the writer
    /// runs the open sequence there once for the whole server (create or
    /// migrate, then [`Database::before_open`]); clients connecting
    /// meanwhile wait for it, and if it fails or gives up (its future is
    /// dropped) the next one does the work. Later clients do not wait for
    /// the writer.
    pub fn connect<D: Database>(&self) -> impl Future<Output = Result<Db<D>>> + Send + use<D> {
        self.connect_with::<D>(false)
    }

    /// Connects the one client of this server: closing or dropping it shuts
    /// the server down (drift's `singleClientMode`).
    pub fn connect_single_client<D: Database>(
        &self,
    ) -> impl Future<Output = Result<Db<D>>> + Send + use<D> {
        self.connect_with::<D>(true)
    }

    fn connect_with<D: Database>(
        &self,
        single_client: bool,
    ) -> impl Future<Output = Result<Db<D>>> + Send + use<D> {
        let backend = Backend::Server(self.client(single_client));
        let opened = self.opened();
        async move {
            if backend.is_closed() {
                return Err(Error::Closed);
            }
            let id = std::any::TypeId::of::<D>();
            let ran = move |opened: &std::sync::Mutex<Vec<std::any::TypeId>>| {
                opened
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .contains(&id)
            };
            if D::SCHEMA_VERSION != 0 && !ran(&opened) {
                // Once per server: the first client to reach the writer
                // runs the open sequence; clients queued behind it find it
                // done. If it fails, or its future is dropped, the next
                // client tries again.
                backend
                    .run_work(Lane::NONE, Route::Writer, move |conn| {
                        if ran(&opened) {
                            return Ok(());
                        }
                        prepare_schema::<D>(conn)?;
                        opened
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(id);
                        Ok(())
                    })
                    .await?;
            }
            Ok(Db::from_backend(backend))
        }
    }
}
