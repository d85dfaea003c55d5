//! The [`Database`] trait (a schema and its version) and [`Db`], the handle
//! an application queries through.
//!
//! `Db` is cheap to clone and `Send + Sync`. Opening it checks the file's
//! schema version and creates or upgrades the schema in one transaction
//! together with `user_version`, so a failure leaves the file as it was.

use std::future::Future;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use futures::future::{BoxFuture, Either, FutureExt, Shared};
use futures::lock::Mutex;

use crate::batch::Batch;
use crate::conn::{Conn, finish};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::query::Statement;
use crate::row::{FromRow, OwnedRow};
use crate::schema::{Schema, sql::create_statement};
use crate::server::{Client, DEFAULT_READERS, Server};
use crate::sqlite::{Connection, Execution, OpenOptions, TxKind};
use crate::transaction::Transaction;

/// A database definition: its schema and the schema's version.
pub trait Database: Send + Sync + 'static {
    /// The schema version this code expects (`PRAGMA user_version`). Bump it
    /// whenever the schema changes. `0` means "unversioned": opening never
    /// creates, checks or upgrades anything.
    const SCHEMA_VERSION: u32;

    /// Every table, index, view and trigger (see [`schema!`](crate::schema!)).
    fn schema() -> Schema;

    /// Brings a database at version `from` up to [`Database::SCHEMA_VERSION`].
    /// Runs inside the opening transaction, before `user_version` is
    /// written: if it fails, nothing changes. The default refuses.
    fn upgrade(conn: &Conn<'_>, from: u32, to: u32) -> Result<()> {
        let _ = conn;
        Err(Error::Migration {
            from,
            to,
            message: "the database defines no upgrade from this version".into(),
        })
    }
}

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

/// Creates every entity of `schema` on `conn` (drift's `createAll`).
pub fn create_all(conn: &Conn<'_>, schema: &Schema) -> Result<()> {
    for entity in &schema.entities {
        conn.custom_statement(&create_statement(entity), [])?;
    }
    Ok(())
}

/// A handle to a database of definition `D`. See the [module documentation](self).
pub struct Db<D = NoSchema> {
    backend: Backend,
    marker: PhantomData<fn() -> D>,
}

/// Where a database's connection lives.
#[derive(Clone)]
enum Backend {
    /// On the calling thread, behind an async lock so a transaction can hold
    /// it across awaits while other tasks wait without blocking their thread.
    /// `None` once closed.
    Local(Arc<Mutex<Option<Connection>>>),
    /// On a background server thread.
    Server(Arc<Client>),
    /// Not connected yet: connects on first use (drift's
    /// `DatabaseConnection.delayed`); every clone shares the one attempt.
    Delayed(Shared<BoxFuture<'static, Result<Backend>>>),
}

/// Runs `work` on `conn`, waiting for its lock.
async fn run_local<R>(
    conn: &Mutex<Option<Connection>>,
    work: impl FnOnce(&Connection) -> Result<R>,
) -> Result<R> {
    let guard = conn.lock().await;
    let conn = guard.as_ref().ok_or(Error::Closed)?;
    work(conn)
}

impl Backend {
    /// Runs `work` with the connection (a reader of a server's pool if
    /// `read`), connecting a delayed backend first.
    fn run<R, F>(&self, read: bool, work: F) -> impl Future<Output = Result<R>> + Send + '_
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        match self {
            Backend::Local(conn) => Either::Left(Either::Left(run_local(conn, work))),
            Backend::Server(client) => Either::Left(Either::Right(client.run(read, work))),
            Backend::Delayed(pending) => Either::Right(async move {
                match pending.clone().await? {
                    Backend::Local(conn) => run_local(&conn, work).await,
                    Backend::Server(client) => client.run(read, work).await,
                    Backend::Delayed(_) => Err(Error::invalid_argument(
                        "a delayed database resolved to another delayed one",
                    )),
                }
            }),
        }
    }

    /// The connected backend: itself, or what a delayed one connects to.
    async fn connected(&self) -> Result<Backend> {
        match self {
            Backend::Delayed(pending) => pending.clone().await,
            ready => Ok(ready.clone()),
        }
    }
}

impl<D> Clone for Db<D> {
    fn clone(&self) -> Self {
        Db {
            backend: self.backend.clone(),
            marker: PhantomData,
        }
    }
}

impl<D> std::fmt::Debug for Db<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match self.backend {
            Backend::Local(_) => "in-thread",
            Backend::Server(_) => "background server",
            Backend::Delayed(_) => "delayed",
        };
        f.debug_struct("Db").field("backend", &backend).finish()
    }
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
    /// [`DEFAULT_READERS`](crate::server::DEFAULT_READERS) reader threads: the
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
        Ok(Db {
            backend: Backend::Local(Arc::new(Mutex::new(Some(conn)))),
            marker: PhantomData,
        })
    }

    pub(crate) fn from_client(client: Arc<Client>) -> Self {
        Db {
            backend: Backend::Server(client),
            marker: PhantomData,
        }
    }

    /// Builds a database value synchronously that connects on first use
    /// (drift's `DatabaseConnection.delayed`): `connect` runs when the first
    /// query is awaited, once for all clones; if it fails, every call reports
    /// its error.
    ///
    /// ```
    /// # use driftwood::prelude::*;
    /// let db: Db = Db::delayed(Db::open_in_memory());
    /// let rows = futures::executor::block_on(db.custom_select("SELECT 1", [])).unwrap();
    /// assert_eq!(rows[0].get::<i64>(0).unwrap(), 1);
    /// ```
    pub fn delayed(connect: impl Future<Output = Result<Db<D>>> + Send + 'static) -> Self {
        let pending = async move { connect.await.map(|db| db.backend) }
            .boxed()
            .shared();
        Db {
            backend: Backend::Delayed(pending),
            marker: PhantomData,
        }
    }

    /// Runs `work` with the connection, wherever it lives.
    fn run<R, F>(&self, work: F) -> impl Future<Output = Result<R>> + Send + '_
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.backend.run(false, work)
    }

    /// Runs `work`, which only reads: on a reader connection of a server's
    /// pool when there is one, like [`Db::run`] otherwise.
    fn run_read<R, F>(&self, work: F) -> impl Future<Output = Result<R>> + Send + '_
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        self.backend.run(true, work)
    }

    /// Runs a query where it belongs: reads on a reader, the rest on the writer.
    fn run_statement<R, F>(
        &self,
        statement: Statement,
        work: F,
    ) -> impl Future<Output = Result<R>> + Send + '_
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &Statement) -> Result<R> + Send + 'static,
    {
        if statement.read_only {
            Either::Left(self.run_read(move |conn| work(conn, &statement)))
        } else {
            Either::Right(self.run(move |conn| work(conn, &statement)))
        }
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`), held across awaits
    /// until committed, rolled back or dropped (which rolls back).
    pub async fn transaction(&self) -> Result<Transaction<'static>> {
        match self.backend.connected().await? {
            Backend::Local(conn) => Transaction::begin(conn.lock_owned().await),
            Backend::Server(client) => Transaction::begin_on_server(&client).await,
            Backend::Delayed(_) => Err(Error::Closed),
        }
    }

    /// Runs a synchronous unit of work in a write transaction, in one call
    /// (on the server thread for a background database): committed if `work`
    /// returns `Ok`, rolled back on `Err` or panic (the panic becomes
    /// [`Error::Panic`]).
    pub fn write<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send + '_ {
        self.run(move |conn| write_unit(conn, work))
    }

    /// Runs a synchronous unit of work that only reads, in one call, without
    /// a transaction (each statement sees the latest commit). On a server
    /// with a reader pool it runs on a read-only reader connection.
    pub fn read<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Conn<'_>) -> Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send + '_ {
        self.run_read(move |conn| {
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&Conn::new(conn))));
            outcome.unwrap_or_else(|panic| Err(Error::from_panic(panic)))
        })
    }

    /// Closes this database: every later call on it or its clones returns
    /// [`Error::Closed`]. In-thread, the connection closes once its current
    /// user is done. On a shared server, only this client closes; a
    /// single-client server ([`Db::open_in_background`]) stops.
    pub async fn close(&self) -> Result<()> {
        match self.backend.connected().await? {
            Backend::Local(conn) => drop(conn.lock().await.take()),
            Backend::Server(client) => client.close(),
            Backend::Delayed(_) => {}
        }
        Ok(())
    }

    /// Whether this database was closed (or its server stopped).
    pub fn is_closed(&self) -> bool {
        fn closed(backend: &Backend) -> bool {
            match backend {
                Backend::Local(conn) => conn.try_lock().is_some_and(|c| c.is_none()),
                Backend::Server(client) => client.is_closed(),
                Backend::Delayed(pending) => match pending.peek() {
                    Some(Ok(connected)) => closed(connected),
                    Some(Err(_)) => true,
                    None => false,
                },
            }
        }
        closed(&self.backend)
    }

    /// Reads the live schema back from the database.
    pub fn read_schema(&self) -> impl Future<Output = Result<Schema>> + Send + '_ {
        self.run(|conn| conn.read_schema())
    }
}

/// Runs a unit of work in a write transaction (a savepoint inside one).
pub(crate) fn write_unit<R>(
    conn: &Connection,
    work: impl FnOnce(&Conn<'_>) -> Result<R>,
) -> Result<R> {
    conn.begin(TxKind::Immediate)?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&Conn::new(conn))));
    finish(conn, outcome)
}

/// Creates the schema in a new file, or checks and upgrades an existing
/// one, all in one immediate transaction with `user_version`.
pub(crate) fn prepare_schema<D: Database>(conn: &Connection) -> Result<()> {
    let target = D::SCHEMA_VERSION;
    if target == 0 {
        return Ok(());
    }
    conn.begin(TxKind::Immediate)?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let found = conn.user_version()?;
        if found == target {
            return Ok(());
        }
        if found > target {
            return Err(Error::Migration {
                from: found,
                to: target,
                message: "the file was written by a newer schema version; downgrades are refused"
                    .into(),
            });
        }
        let conn_handle = Conn::new(conn);
        if found == 0 {
            let existing = conn.query_value(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            )?;
            if existing != crate::types::SqlValue::Integer(0) {
                return Err(Error::Migration {
                    from: found,
                    to: target,
                    message: "the file has tables but no schema version; refusing to guess".into(),
                });
            }
            create_all(&conn_handle, &D::schema())?;
        } else {
            D::upgrade(&conn_handle, found, target)?;
        }
        conn.set_user_version(target)
    }));
    finish(conn, outcome)
}

impl<D: Database> Executor for Db<D> {
    fn execute(&self, statement: Statement) -> impl Future<Output = Result<Execution>> + Send {
        self.run(move |conn| conn.execute(&statement))
    }

    fn fetch<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<R>>> + Send {
        self.run_statement(statement, |conn, statement| conn.fetch(statement))
    }

    fn fetch_first<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Option<R>>> + Send {
        self.run_statement(statement, |conn, statement| conn.fetch_first(statement))
    }

    fn fetch_rows(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<OwnedRow>>> + Send {
        self.run(move |conn| conn.fetch_rows(&statement))
    }

    fn run_batch(&self, batch: Batch) -> impl Future<Output = Result<Execution>> + Send {
        self.run(move |conn| batch.run_on(conn))
    }
}
