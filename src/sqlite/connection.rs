//! [`Connection`]: one SQLite connection with its statement cache,
//! transaction levels (see `levels.rs`), the authorizer guard (`guard.rs`)
//! and statement tracing.
//!
//! Every statement runs through one wrapper: it refuses to run inside a
//! transaction SQLite has already rolled back, checks afterwards whether
//! SQLite just left the transaction, and reports the statement to
//! `tracing`.

use std::cell::{Cell, OnceCell, RefCell};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;

use super::OpenOptions;
use super::cells::{Bind, owned};
use super::changes::{
    Changes, Footprint, ReadSet, ReportedRows, Switch, Tracking, Watching, report_row,
};
use super::clock::{Peers, TxClock};
use super::error::from_rusqlite;
use super::guard::Guard;
use super::levels::{Levels, TxKind};
use super::policy::Restriction;
use crate::error::{Error, Result};
use crate::plan::{self, Collect, Cursor, Plan};
use crate::query::Statement;
use crate::row::{FromRow, OwnedRow, Row};
use crate::schema::Schema;
use crate::schema::read::{SchemaRow, parse_schema};
use crate::table::{Insertable, Table};
use crate::types::{SqlArg, SqlValue, ValueRef};

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Execution {
    /// Rows inserted, updated or deleted.
    pub rows_affected: u64,
    /// The rowid of the last inserted row on this connection.
    pub last_insert_id: i64,
}

/// One SQLite connection. Not `Sync`: exactly one thread uses it at a time.
pub struct Connection {
    pub(super) raw: rusqlite::Connection,
    /// The encryption key it opened with (or re-keyed to), for the copies
    /// it makes (see `encryption.rs`).
    pub(super) key: RefCell<Option<super::EncryptionKey>>,
    /// The open transaction levels, outermost first.
    pub(super) levels: RefCell<Levels>,
    /// How many levels are open (mirrors `levels`; read on every statement).
    pub(super) open_levels: Cell<usize>,
    /// Whether SQLite rolled the open transaction back (mirrors `levels`).
    pub(super) poisoned: Cell<bool>,
    /// The authorizer's state (see `guard.rs`).
    pub(super) guard: Arc<Guard>,
    /// How long a request may wait for a lock, in SQLite and for driftwood's
    /// writer.
    busy_timeout: Duration,
    /// Whether `PRAGMA query_only` is on.
    query_only: Cell<bool>,
    /// What statements read and write, and what transactions changed (see
    /// `changes.rs`).
    pub(super) tracking: RefCell<Tracking>,
    /// Whether anyone watches this connection's writes: set on the writer,
    /// read once per statement.
    watched_writes: OnceCell<Arc<Switch>>,
    /// Whether a watched query is running and recording what it reads
    /// (mirrors `tracking`, read once per statement).
    recording: Cell<bool>,
    /// Where the update hook notes the rowids statements change, while it
    /// is installed (while anyone watches rows by rowid).
    reported_rows: Option<Arc<std::sync::Mutex<ReportedRows>>>,
    /// `PRAGMA optimize` runs when the connection is dropped.
    optimize_on_close: bool,
    /// See `OpenOptions::long_read_warning`.
    pub(super) long_read_warning: Duration,
    /// When its held transaction began (see `clock.rs`), for whoever
    /// watches for long ones on another thread.
    pub(super) clock: Arc<TxClock>,
    /// The clocks of the other connections of its database (a server's
    /// readers, named), once known: a checkpoint that cannot finish names
    /// the one holding it back.
    pub(super) peers: OnceCell<Peers>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.optimize_on_close {
            // Best effort: closing goes on whatever SQLite answers.
            let _ = self.raw.execute_batch("PRAGMA optimize");
        }
    }
}

/// Mutable access to a [`Connection`]'s rusqlite connection (see
/// [`Connection::raw_mut`]); driftwood's authorizer is installed again when
/// it drops.
pub struct RawMut<'c> {
    conn: &'c mut Connection,
}

impl std::ops::Deref for RawMut<'_> {
    type Target = rusqlite::Connection;

    fn deref(&self) -> &rusqlite::Connection {
        &self.conn.raw
    }
}

impl std::ops::DerefMut for RawMut<'_> {
    fn deref_mut(&mut self) -> &mut rusqlite::Connection {
        &mut self.conn.raw
    }
}

impl Drop for RawMut<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.conn.reinstall_guard() {
            tracing::warn!(target: "driftwood", %error, "installing driftwood's authorizer again failed");
        }
    }
}

impl std::fmt::Debug for RawMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMut").field("conn", &self.conn).finish()
    }
}

/// What the statement wrapper noted before a statement ran, for change
/// tracking after it.
struct Watched {
    /// Whether anyone watched this connection's writes, if they are tracked.
    watching: Option<Watching>,
    /// The statement's footprint, when anyone watches or a watched query
    /// records its reads (`None` if it could not be found).
    footprint: Option<Arc<Footprint>>,
    /// Whether a watched query is recording what it reads.
    recording: bool,
    /// `total_changes()` before the statement, if anyone watched.
    changes: u64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("path", &self.raw.path())
            .field("depth", &self.open_levels.get())
            .finish()
    }
}

impl Connection {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let flags = if options.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::default()
        };
        let raw = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| Error::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let label = path.display().to_string();
        super::encryption::unlock(&raw, options.encryption_key.as_ref(), &label)?;
        Self::configure(raw, options, false).map_err(|e| Error::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Opens a private in-memory database.
    pub fn open_in_memory(options: &OpenOptions) -> Result<Self> {
        let raw = rusqlite::Connection::open_in_memory().map_err(|e| Error::Open {
            path: ":memory:".into(),
            message: e.to_string(),
        })?;
        super::encryption::unlock(&raw, options.encryption_key.as_ref(), ":memory:")?;
        Self::configure(raw, options, true)
    }

    pub(super) fn configure(
        mut raw: rusqlite::Connection,
        options: &OpenOptions,
        in_memory: bool,
    ) -> Result<Self> {
        raw.set_prepared_statement_cache_capacity(options.statement_cache_capacity);
        raw.busy_timeout(options.busy_timeout)
            .map_err(|e| from_rusqlite(e, "busy_timeout"))?;
        let pragmas = options.pragmas(in_memory);
        raw.execute_batch(&pragmas)
            .map_err(|e| from_rusqlite(e, &pragmas))?;
        let guard = Arc::new(Guard::default());
        Guard::install(&guard, &mut raw).map_err(|e| from_rusqlite(e, "authorizer"))?;
        Ok(Connection {
            raw,
            levels: RefCell::new(Levels::default()),
            open_levels: Cell::new(0),
            poisoned: Cell::new(false),
            guard,
            busy_timeout: options.busy_timeout,
            query_only: Cell::new(false),
            tracking: RefCell::new(Tracking::default()),
            watched_writes: OnceCell::new(),
            recording: Cell::new(false),
            reported_rows: None,
            optimize_on_close: options.optimize_on_close && !options.read_only && !in_memory,
            long_read_warning: options.long_read_warning,
            key: RefCell::new(options.encryption_key.clone()),
            clock: Arc::default(),
            peers: OnceCell::new(),
        })
    }

    /// Tracks what this connection's statements read (and, if `writes`,
    /// what its transactions change) for the watchers behind `switch`.
    pub(crate) fn track_changes(&self, switch: Arc<Switch>, writes: bool) {
        if writes {
            let _ = self.watched_writes.set(switch.clone());
        }
        self.tracking.borrow_mut().attach(switch, writes);
    }

    /// Collects the rowids statements change (through SQLite's update
    /// hook) while some watcher reads rows by rowid; stops when none does.
    #[inline]
    pub(crate) fn collect_rowids(&mut self, on: bool) {
        if on != self.reported_rows.is_some() {
            self.switch_rowid_collection(on);
        }
    }

    #[cold]
    fn switch_rowid_collection(&mut self, on: bool) {
        self.reported_rows = None;
        if !on {
            let removed = self
                .raw
                .update_hook(None::<fn(rusqlite::hooks::Action, &str, &str, i64)>);
            if let Err(error) = removed {
                tracing::warn!(target: "driftwood", %error, "removing the update hook failed");
            }
            return;
        }
        let log = Arc::new(std::sync::Mutex::new(ReportedRows::new()));
        let noted = log.clone();
        let installed = self.raw.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, table: &str, rowid: i64| {
                let mut log = noted
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                report_row(&mut log, table, rowid);
            },
        ));
        match installed {
            // Without rowids, changes count for every row: still correct.
            Err(error) => {
                tracing::warn!(target: "driftwood", %error, "installing the update hook failed")
            }
            Ok(()) => self.reported_rows = Some(log),
        }
    }

    /// The rowids the update hook reported since the last call.
    fn take_reported_rows(&self) -> ReportedRows {
        match &self.reported_rows {
            Some(log) => std::mem::take(
                &mut *log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
            None => ReportedRows::new(),
        }
    }

    /// What committed since the last call (a transaction, or statements in
    /// autocommit), if anyone watched and anything changed.
    pub(crate) fn take_committed_changes(&self) -> Option<Changes> {
        self.tracking.borrow_mut().take_committed()
    }

    /// Fails if `sql` writes rows or changes the schema: a watched query
    /// must only read (a write would wake it again, forever).
    pub(crate) fn ensure_reads_only(&self, sql: &str) -> Result<()> {
        match self.footprint(sql) {
            Some(footprint) if footprint.writes_anything() => Err(Error::invalid_argument(
                format!("a watched query must only read; this one writes (statement: {sql})"),
            )),
            _ => Ok(()),
        }
    }

    /// Whether `column` of `table` is the rowid in the file (an `INTEGER
    /// PRIMARY KEY`: SQLite then names `rowid` after it). `false` if it
    /// cannot tell. Prepared afresh each time: a cached statement keeps the
    /// column names of the schema it was prepared for.
    pub(crate) fn is_rowid(&self, table: &str, column: &str) -> bool {
        let sql = format!("SELECT rowid FROM \"{}\"", table.replace('"', "\"\""));
        self.raw.prepare(&sql).is_ok_and(|stmt| {
            stmt.column_name(0)
                .is_ok_and(|name| name.eq_ignore_ascii_case(column))
        })
    }

    /// Runs `work`, recording what every statement it runs reads.
    pub(crate) fn recording_reads<R>(&self, work: impl FnOnce() -> R) -> (R, ReadSet) {
        let outer = self.tracking.borrow_mut().start_recording();
        self.recording.set(true);
        let value = work();
        let reads = self.tracking.borrow_mut().stop_recording(outer);
        self.recording.set(self.tracking.borrow().is_recording());
        (value, reads)
    }

    /// `sql`'s footprint: remembered, or found by preparing it apart while
    /// the authorizer records. `None` if it cannot be prepared.
    fn footprint(&self, sql: &str) -> Option<Arc<Footprint>> {
        if let Some(known) = self.tracking.borrow_mut().footprint(sql) {
            return Some(known);
        }
        // A prepare uses the schema this connection has in memory, which is
        // stale after another connection changed it (a reader after the
        // writer's DDL, the writer after another process's); a statement
        // that reads the schema table makes SQLite notice and reload it.
        let refreshed = self
            .raw
            .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()));
        if let Err(error) = refreshed {
            tracing::debug!(target: "driftwood", %error, "refreshing the schema before a footprint failed");
        }
        let (prepared, mut footprint) = self.guard.recording(|| self.raw.prepare(sql));
        if !prepared.ok()?.readonly() {
            footprint.not_read_only();
        }
        let replaces = self.may_replace(sql, &footprint);
        let coarse: Vec<String> = footprint
            .updated_tables()
            .filter(|table| self.has_derived_columns(table))
            .map(str::to_owned)
            .collect();
        for table in coarse {
            footprint.updates_every_column(&table);
        }
        if replaces && footprint.updated_tables().next().is_some() {
            footprint.updates_may_delete();
        }
        if !replaces && !self.may_change_rowids(&footprint) {
            footprint.trust_rows();
        }
        Some(self.tracking.borrow_mut().remember(sql, footprint))
    }

    /// Whether a write of `sql` may delete rows through a `REPLACE`
    /// conflict: it says `REPLACE`, or a table it writes (or any trigger)
    /// was declared with one. Errs on the side of yes.
    fn may_replace(&self, sql: &str, footprint: &Footprint) -> bool {
        if sql.to_ascii_lowercase().contains("replace") {
            return true;
        }
        let check = "SELECT count(*) FROM (SELECT type, name, sql FROM sqlite_schema UNION ALL SELECT type, name, sql FROM sqlite_temp_schema) WHERE (type = 'trigger' OR name = ?1 COLLATE NOCASE) AND lower(sql) LIKE '%replace%'";
        footprint.written_tables().any(|table| {
            self.raw
                .query_row(check, [table], |row| row.get::<_, i64>(0))
                .map_or(true, |found| found > 0)
        })
    }

    /// Whether `table`'s columns depend on each other or on a module, so an
    /// `UPDATE` of one may change what reads of another see: it has
    /// generated columns, or it is a virtual table. Errs on the side of
    /// yes.
    fn has_derived_columns(&self, table: &str) -> bool {
        let check = "SELECT (SELECT count(*) FROM pragma_table_xinfo(?1) WHERE hidden IN (2, 3)) \
                     + (SELECT count(*) FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE \
                        AND lower(sql) LIKE 'create virtual table%')";
        self.raw
            .query_row(check, [table], |row| row.get::<_, i64>(0))
            .map_or(true, |found| found > 0)
    }

    /// Whether an `UPDATE` of this footprint may change a rowid (it sets a
    /// primary-key column, or the rowid by one of its names): the update
    /// hook reports only the new one.
    fn may_change_rowids(&self, footprint: &Footprint) -> bool {
        let keys = "SELECT lower(name) FROM pragma_table_info(?1) WHERE pk > 0";
        footprint.updated_tables().any(|table| {
            let updated = footprint.updated_columns(table);
            if updated.is_empty() {
                return true;
            }
            let key_columns: rusqlite::Result<Vec<String>> = self
                .raw
                .prepare(keys)
                .and_then(|mut stmt| stmt.query_map([table], |row| row.get(0))?.collect());
            let Ok(key_columns) = key_columns else {
                return true;
            };
            updated.iter().any(|column| {
                key_columns.contains(column)
                    || ["rowid", "oid", "_rowid_"].contains(&column.as_str())
            })
        })
    }

    /// Whether anyone watches this connection's writes, if they are tracked
    /// (one atomic load).
    #[inline]
    fn writes_watched(&self) -> Option<Watching> {
        self.watched_writes.get().map(|switch| switch.watching())
    }

    /// Notes what change tracking needs before a statement runs, when
    /// anyone watches or a watched query records its reads.
    #[inline(never)]
    fn watch_before(&self, sql: &str, watching: Option<Watching>) -> Watched {
        let on = watching.is_some_and(Watching::is_on);
        Watched {
            watching,
            footprint: self.footprint(sql),
            recording: self.recording.get(),
            changes: if on { self.raw.total_changes() } else { 0 },
        }
    }

    /// Watching began while a statement ran untracked: whatever it did,
    /// anything may have changed.
    #[cold]
    fn watching_began(&self) {
        self.tracking.borrow_mut().wrote(None, &ReportedRows::new());
    }

    /// Records what a statement read (for a watched query) and wrote (for
    /// the transaction's changes). A failed statement may have changed rows
    /// (`OR FAIL` keeps them), so `total_changes` decides, not the outcome.
    #[inline(never)]
    fn watch_after(&self, watched: Watched, succeeded: bool) {
        let footprint = watched.footprint.as_deref();
        let reported = self.take_reported_rows();
        let mut tracking = self.tracking.borrow_mut();
        if watched.recording {
            tracking.read(footprint);
        }
        let Some(before) = watched.watching else {
            return;
        };
        if before.is_on() {
            let changed = self.raw.total_changes() != watched.changes;
            let reshaped = succeeded && footprint.is_some_and(Footprint::changes_schema);
            if changed || reshaped {
                tracking.wrote(footprint, &reported);
            }
        } else if before.began_by(tracking.watching().unwrap_or(before)) {
            // Watching began while it ran, untracked: whatever it did,
            // anything may have changed.
            tracking.wrote(None, &reported);
        }
    }

    /// Installs driftwood's authorizer again, after user setup that may
    /// have replaced it.
    pub(crate) fn reinstall_guard(&mut self) -> Result<()> {
        Guard::install(&self.guard, &mut self.raw).map_err(|e| from_rusqlite(e, "authorizer"))
    }

    /// Adds an authorizer of your own (`None` removes it). driftwood's
    /// authorizer stays installed — it refuses transaction control and
    /// records what statements touch for watched queries — and asks yours
    /// about everything it allows, except transaction control.
    pub fn set_authorizer<F>(&self, authorizer: Option<F>)
    where
        F: FnMut(rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization
            + Send
            + 'static,
    {
        self.guard
            .set_user(authorizer.map(|f| Box::new(f) as super::guard::UserAuthorizer));
    }

    /// How long a request may wait for a lock held by someone else (the
    /// `busy_timeout` it was opened with).
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The file this connection reads and writes; `None` for an in-memory
    /// or temporary database, which no other connection can share.
    pub fn file(&self) -> Option<&str> {
        self.raw.path().filter(|path| !path.is_empty())
    }

    /// SQLite's journal mode for the main database, lowercase (`wal`, …).
    pub fn journal_mode(&self) -> Result<String> {
        match self.query_value("PRAGMA journal_mode")? {
            SqlValue::Text(mode) => Ok(mode.to_ascii_lowercase()),
            other => Err(Error::invalid_argument(format!(
                "PRAGMA journal_mode returned {other:?}"
            ))),
        }
    }

    /// The underlying rusqlite connection, for what driftwood does not cover
    /// (custom functions, extensions, backups). Statements run through it
    /// bypass driftwood's tracing and transaction bookkeeping.
    pub fn raw(&self) -> &rusqlite::Connection {
        &self.raw
    }

    /// The underlying rusqlite connection, mutably, to install what
    /// driftwood does not cover (functions, collations, handlers).
    /// driftwood's authorizer is installed again when the returned guard
    /// drops, so an authorizer set through it does not last: add yours
    /// with [`Connection::set_authorizer`]. SQLite's update hook belongs to
    /// driftwood too: the writer installs its own while a watched query
    /// reads rows by rowid, replacing any set here — follow changes with
    /// `Db::table_updates` instead.
    pub fn raw_mut(&mut self) -> RawMut<'_> {
        RawMut { conn: self }
    }

    /// Runs a statement that returns no rows.
    pub fn execute(&self, statement: &Statement) -> Result<Execution> {
        self.execute_values(
            &statement.sql,
            statement.args.iter().map(SqlValue::as_ref),
            statement.args.len(),
        )
    }

    /// Runs a plan: its statement, folded into its value.
    #[inline]
    pub(crate) fn run<T>(&self, plan: &Plan<T>) -> Result<T> {
        if let Some(restriction) = plan.restriction {
            return self
                .guard
                .restricted(restriction, || self.run_unrestricted(plan));
        }
        self.run_unrestricted(plan)
    }

    /// Runs `work` as a remote client's request: every statement it runs
    /// is judged against `restriction` (see `policy`).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn restricted<R>(
        &self,
        restriction: Restriction,
        work: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        self.guard.take_remote_refusal();
        let result = self.guard.restricted(restriction, work);
        // A refusal while preparing outside the statement wrapper (a
        // batch prepares each text once, first) says why, too.
        match (result, self.guard.take_remote_refusal()) {
            (Err(Error::Sql { sql, .. }), Some(message)) => {
                Err(Error::NotPermitted { message, sql })
            }
            (result, _) => result,
        }
    }

    #[inline]
    fn run_unrestricted<T>(&self, plan: &Plan<T>) -> Result<T> {
        match plan.collect {
            Collect::Done(finish) => self.execute(&plan.statement).map(finish),
            Collect::Rows(fold) => self.query(&plan.statement, fold),
        }
    }

    /// Runs `sql` once per argument set, all in the current transaction (or
    /// its own when none is open), preparing it once.
    pub fn execute_many<'a>(
        &self,
        sql: &str,
        arg_sets: impl IntoIterator<Item = &'a [SqlValue]>,
    ) -> Result<Execution> {
        self.in_transaction_or_new(|| {
            let mut total = Execution::default();
            let mut stmt = self.prepare_for_many(sql)?;
            for args in arg_sets {
                let done = self.run_prepared(
                    &mut stmt,
                    sql,
                    args.iter().map(SqlValue::as_ref),
                    args.len(),
                )?;
                total.rows_affected += done.rows_affected;
                total.last_insert_id = done.last_insert_id;
            }
            Ok(total)
        })
    }

    /// Inserts many rows (or companions, or references to either) binding
    /// each value in place, with one prepared statement per distinct set of
    /// given columns: the fastest way to load data. Runs in the current
    /// transaction, or in its own when none is open.
    pub fn insert_many<I: Insertable>(
        &self,
        rows: impl IntoIterator<Item = I>,
    ) -> Result<Execution> {
        let column_count = <I::Table as Table>::COLUMNS.len();
        self.in_transaction_or_new(|| {
            let mut total = Execution::default();
            // The given columns of the rows the statement was prepared for.
            let mut columns: Vec<usize> = Vec::with_capacity(column_count);
            let mut sql = std::borrow::Cow::Borrowed("");
            let mut prepared = None;
            for row in rows {
                let in_place = match prepared.as_mut() {
                    Some(stmt) => bind_row_in_place(stmt, &sql, &row, &columns)?,
                    None => false,
                };
                let stmt = match prepared {
                    Some(ref mut stmt) if in_place => stmt,
                    _ => {
                        // A new set of given columns: its own statement.
                        let values: Vec<(usize, SqlArg<'_>)> = (0..column_count)
                            .filter_map(|i| row.insert_value(i).map(|value| (i, value)))
                            .collect();
                        columns.clear();
                        columns.extend(values.iter().map(|(i, _)| *i));
                        sql = <I::Table as Table>::statement_cache()
                            .partial_insert::<I::Table>(crate::query::Dialect::Sqlite, &columns);
                        let stmt = prepared.insert(self.prepare_for_many(&sql)?);
                        let args = values.iter().map(|(_, value)| value.as_value_ref());
                        bind(stmt, &sql, args, values.len())?;
                        stmt
                    }
                };
                let done = self.run_bound(stmt, &sql, columns.len())?;
                total.rows_affected += done.rows_affected;
                total.last_insert_id = done.last_insert_id;
            }
            Ok(total)
        })
    }

    /// Runs a query and maps every row to `R`.
    pub fn fetch<R: FromRow>(&self, statement: &Statement) -> Result<Vec<R>> {
        self.query(statement, plan::all::<R>)
    }

    /// Runs a query and maps its first row only, if any.
    pub fn fetch_first<R: FromRow>(&self, statement: &Statement) -> Result<Option<R>> {
        self.query(statement, plan::first::<R>)
    }

    /// Runs a query and copies every row out ([`OwnedRow`]), for raw SQL.
    pub fn fetch_rows(&self, statement: &Statement) -> Result<Vec<OwnedRow>> {
        self.query(statement, plan::owned_rows)
    }

    /// Runs a query and folds its rows with `fold`, which steps as far as it
    /// wants (a primary-key lookup never pays for the step that finds no
    /// second row).
    #[inline]
    fn query<T>(
        &self,
        statement: &Statement,
        fold: fn(&mut dyn Cursor, &str) -> Result<T>,
    ) -> Result<T> {
        let sql: &str = &statement.sql;
        self.statement(sql, statement.args.len(), || {
            let mut stmt = self.prepare(sql)?;
            bind(
                &mut stmt,
                sql,
                statement.args.iter().map(SqlValue::as_ref),
                statement.args.len(),
            )?;
            let mut cursor = StatementCursor {
                rows: stmt.raw_query(),
                column_count: None,
                sql,
            };
            fold(&mut cursor, sql)
        })
    }

    fn execute_values<'a>(
        &self,
        sql: &str,
        args: impl Iterator<Item = ValueRef<'a>>,
        count: usize,
    ) -> Result<Execution> {
        self.statement(sql, count, || {
            let mut stmt = self.prepare(sql)?;
            self.step(&mut stmt, sql, args, count)
        })
    }

    /// Prepares `sql` through the statement cache; raw transaction control
    /// is refused here, by the authorizer.
    #[inline]
    fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        let (prepared, refused) = self.guard.preparing(|| self.raw.prepare_cached(sql));
        prepared.map_err(|e| prepare_error(e, sql, refused, &self.guard))
    }

    /// Runs a statement prepared once for many executions.
    fn run_prepared<'a>(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
        sql: &str,
        args: impl Iterator<Item = ValueRef<'a>>,
        count: usize,
    ) -> Result<Execution> {
        bind(stmt, sql, args, count)?;
        self.run_bound(stmt, sql, count)
    }

    /// Runs a statement prepared once for many executions, its `count`
    /// arguments bound already.
    fn run_bound(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
        sql: &str,
        count: usize,
    ) -> Result<Execution> {
        if self.open_levels.get() > 0 {
            self.ensure_not_poisoned()?;
        }
        self.checked_statement(sql, count, || self.step_bound(stmt, sql))
    }

    /// Prepares `sql` for many executions, refusing a setup pragma once
    /// here rather than on every execution; a failure is reported to
    /// `tracing` like a failed statement.
    fn prepare_for_many(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        refuse_setup_pragma(sql)
            .and_then(|()| self.prepare(sql))
            .inspect_err(|error| report(sql, 0, None, Err(error)))
    }

    /// Binds `args` and steps `stmt` to completion (rows a `RETURNING`
    /// yields are dropped).
    fn step<'a>(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
        sql: &str,
        args: impl Iterator<Item = ValueRef<'a>>,
        count: usize,
    ) -> Result<Execution> {
        bind(stmt, sql, args, count)?;
        self.step_bound(stmt, sql)
    }

    /// Steps `stmt`, its arguments bound, to completion.
    fn step_bound(&self, stmt: &mut rusqlite::CachedStatement<'_>, sql: &str) -> Result<Execution> {
        let mut rows = stmt.raw_query();
        while rows.next().map_err(|e| from_rusqlite(e, sql))?.is_some() {}
        Ok(Execution {
            rows_affected: self.raw.changes(),
            last_insert_id: self.raw.last_insert_rowid(),
        })
    }

    /// Runs one statement: refused inside a transaction SQLite already
    /// rolled back; afterwards, notices whether SQLite just left the
    /// transaction; reported as a `tracing` event when anyone listens.
    #[inline]
    fn statement<R>(&self, sql: &str, args: usize, run: impl FnOnce() -> Result<R>) -> Result<R> {
        if self.open_levels.get() > 0 {
            self.ensure_not_poisoned()?;
            refuse_setup_pragma(sql)?;
        }
        self.checked_statement(sql, args, run)
    }

    /// Runs one statement whose text and transaction were checked already.
    #[inline]
    fn checked_statement<R>(
        &self,
        sql: &str,
        args: usize,
        run: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        if let Some(restriction) = self.guard.restriction() {
            return self
                .restricted_statement(sql, restriction, || self.tracked_statement(sql, args, run));
        }
        self.tracked_statement(sql, args, run)
    }

    /// Runs a remote client's statement: refused up front if its footprint
    /// shows what `restriction` forbids (a statement cached for another
    /// client is judged again here), and a refusal while it runs becomes
    /// [`Error::NotPermitted`] with its reason.
    #[cold]
    fn restricted_statement<R>(
        &self,
        sql: &str,
        restriction: Restriction,
        run: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let not_permitted = |message: String| Error::NotPermitted {
            message,
            sql: sql.to_owned(),
        };
        self.guard.take_remote_refusal();
        if let Some(footprint) = self.footprint(sql) {
            if let Some(reason) = footprint.remote_refusal() {
                return Err(not_permitted(reason.to_owned()));
            }
            if let Some(reason) = restriction.refuses_writes()
                && footprint.writes_anything()
            {
                return Err(not_permitted(reason.to_owned()));
            }
        }
        let result = run();
        match (result, self.guard.take_remote_refusal()) {
            (Err(_), Some(reason)) => Err(not_permitted(reason)),
            (result, _) => result,
        }
    }

    /// Runs one statement, tracking what it changed when anyone watches.
    #[inline]
    fn tracked_statement<R>(
        &self,
        sql: &str,
        args: usize,
        run: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        // While nobody watches: one atomic load before and after.
        let watching = self.writes_watched();
        let watched = (self.recording.get() || watching.is_some_and(Watching::is_on))
            .then(|| self.watch_before(sql, watching));
        let result = traced(sql, args, run);
        // Only a failure can end the transaction: the guard refuses
        // transaction control in user SQL, and whatever reaches past it
        // (`Connection::raw`) is noticed before the next statement.
        if let Err(error) = &result
            && self.open_levels.get() > 0
        {
            self.notice_implicit_rollback(|| error.to_string());
        }
        match watched {
            Some(watched) => self.watch_after(watched, result.is_ok()),
            None => {
                if let Some(before) = watching
                    && before.began_by(self.writes_watched().unwrap_or(before))
                {
                    self.watching_began();
                }
            }
        }
        result
    }

    /// Whether `sql` is a plain read a reader connection may run for the
    /// writer: SQLite says it only reads, and it needs nothing of this
    /// connection's own (no pragma, attach or detach, no schema but `main`,
    /// no `last_insert_rowid()`/`changes()`).
    pub(crate) fn is_plain_read(&self, sql: &str) -> Result<bool> {
        let (prepared, refused) = self.guard.preparing(|| self.raw.prepare(sql));
        let stmt = prepared.map_err(|e| prepare_error(e, sql, refused, &self.guard))?;
        Ok(stmt.readonly() && !self.guard.needs_this_connection())
    }

    /// Whether this connection created objects no other connection sees
    /// (`TEMP` tables, views, triggers, indexes; attached databases).
    pub(crate) fn has_private_state(&self) -> bool {
        self.guard.has_private_state()
    }

    /// Runs `work` as a read: in one read transaction (a savepoint of the
    /// open transaction, if there is one), so all its statements see one
    /// snapshot, with `PRAGMA query_only` on, so writes fail. The level is
    /// always rolled back, so whatever `work` wrote anyway (after turning
    /// `query_only` off) is undone, and reported as [`Error::WriteInRead`].
    pub(crate) fn read_only<R>(&self, work: impl FnOnce() -> Result<R>) -> Result<R> {
        // Timed (see `clock.rs`) unless a held transaction it runs in is.
        let timed = self.clock.start(true);
        let result = self.read_only_unlogged(work);
        if timed && let Some(ended) = self.clock.stop() {
            super::clock::warn_ended(
                ended,
                self.long_read_warning,
                self.file().unwrap_or(":memory:"),
            );
        }
        result
    }

    fn read_only_unlogged<R>(&self, work: impl FnOnce() -> Result<R>) -> Result<R> {
        let changes_before = self.raw.total_changes();
        let level = self.begin(TxKind::Deferred)?;
        let was_on = self.query_only.get();
        let guarded = if was_on {
            Ok(())
        } else {
            self.set_query_only(true)
        };
        let result = guarded.and_then(|()| work());
        let still_on = matches!(
            self.query_value("PRAGMA query_only"),
            Ok(SqlValue::Integer(1))
        );
        let wrote = !still_on || self.raw.total_changes() != changes_before;
        let restored = if was_on && still_on {
            Ok(())
        } else {
            self.set_query_only(was_on)
        };
        let ended = self.rollback(level);
        if wrote {
            return Err(Error::WriteInRead);
        }
        let value = result?;
        restored.and(ended).map(|()| value)
    }

    /// Turns `PRAGMA query_only` on or off.
    pub(crate) fn set_query_only(&self, on: bool) -> Result<()> {
        let sql = if on {
            "PRAGMA query_only = 1"
        } else {
            "PRAGMA query_only = 0"
        };
        self.raw
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([]))
            .map_err(|e| from_rusqlite(e, sql))?;
        self.query_only.set(on);
        Ok(())
    }

    /// `PRAGMA data_version`: a number that changes when another
    /// connection commits to the file.
    pub(crate) fn data_version(&self) -> Result<i64> {
        let sql = "PRAGMA data_version";
        self.raw
            .query_row(sql, [], |row| row.get(0))
            .map_err(|e| from_rusqlite(e, sql))
    }

    /// `PRAGMA user_version`: the schema version stored in the file.
    pub fn user_version(&self) -> Result<u32> {
        let value = self.query_value("PRAGMA user_version")?;
        match value {
            SqlValue::Integer(v) => Ok(v as u32),
            other => Err(Error::invalid_argument(format!(
                "PRAGMA user_version returned {other:?}"
            ))),
        }
    }

    /// Whether foreign keys are enforced (`PRAGMA foreign_keys`).
    pub fn foreign_keys(&self) -> Result<bool> {
        Ok(self.query_value("PRAGMA foreign_keys")? == SqlValue::Integer(1))
    }

    /// Turns foreign key enforcement on or off. Outside a transaction only:
    /// SQLite ignores it inside one.
    pub fn set_foreign_keys(&self, on: bool) -> Result<()> {
        if self.open_levels.get() > 0 {
            return Err(Error::SetupPragma {
                pragma: "foreign_keys".into(),
                sql: format!("PRAGMA foreign_keys = {}", if on { "ON" } else { "OFF" }),
            });
        }
        let sql = if on {
            "PRAGMA foreign_keys = ON"
        } else {
            "PRAGMA foreign_keys = OFF"
        };
        self.raw
            .execute_batch(sql)
            .map_err(|e| from_rusqlite(e, sql))
    }

    /// Sets `PRAGMA user_version` (inside the current transaction, if any).
    pub fn set_user_version(&self, version: u32) -> Result<()> {
        // SQLite keeps a signed 32-bit value; `user_version` reads it back
        // as the same bits.
        let sql = format!("PRAGMA user_version = {}", version as i32);
        self.statement(&sql, 0, || {
            self.raw
                .execute_batch(&sql)
                .map_err(|e| from_rusqlite(e, &sql))
        })
    }

    /// Reads the live schema back (see [`crate::schema::read`]): every table,
    /// index, view and trigger except SQLite's internal ones and virtual
    /// tables' shadow tables.
    pub fn read_schema(&self) -> Result<Schema> {
        let shadow_sql = "SELECT name FROM pragma_table_list WHERE type = 'shadow'";
        let shadow: Vec<String> = self.statement(shadow_sql, 0, || {
            self.raw
                .prepare(shadow_sql)
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(|e| from_rusqlite(e, shadow_sql))
        })?;
        let rows = self.schema_rows(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
            None,
        )?;
        parse_schema(
            rows.into_iter()
                .filter(|r| !shadow.iter().any(|s| s.eq_ignore_ascii_case(&r.name))),
        )
    }

    /// Reads one ordinary table's definition back, parsing only its own
    /// `CREATE TABLE` (so an object elsewhere that the reader cannot
    /// represent does not matter); `None` if there is no such table.
    pub fn read_table(&self, name: &str) -> Result<Option<crate::schema::Table>> {
        let rows = self.schema_rows(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            Some(name),
        )?;
        Ok(parse_schema(rows)?.tables().next().cloned())
    }

    /// The `sqlite_schema` rows `sql` selects (with `name` bound to `?1`).
    fn schema_rows(&self, sql: &str, name: Option<&str>) -> Result<Vec<SchemaRow>> {
        let read = || -> rusqlite::Result<Vec<SchemaRow>> {
            let mut stmt = self.raw.prepare(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(name), |r| {
                Ok(SchemaRow {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    table: r.get(2)?,
                    sql: r.get(3)?,
                })
            })?;
            rows.collect()
        };
        self.statement(sql, usize::from(name.is_some()), || {
            read().map_err(|e| from_rusqlite(e, sql))
        })
    }

    /// Copies one value out (used by reads of single cells in tests and tools).
    pub fn query_value(&self, sql: &str) -> Result<SqlValue> {
        self.statement(sql, 0, || {
            self.raw
                .query_row(sql, [], |row| row.get_ref(0).map(owned))
                .map_err(|e| from_rusqlite(e, sql))
        })
    }
}

/// Pragmas that configure the connection and do nothing (or fail) inside a
/// transaction: they belong to connection setup ([`OpenOptions`]).
const SETUP_PRAGMAS: [&str; 5] = [
    "foreign_keys",
    "journal_mode",
    "locking_mode",
    "page_size",
    "auto_vacuum",
];

/// Refuses `PRAGMA name = value` (or `name(value)`) for a setup pragma,
/// inside a transaction, where SQLite would silently ignore it. Leading
/// comments, a schema prefix and a quoted name count as SQLite reads them.
fn refuse_setup_pragma(sql: &str) -> Result<()> {
    let text = skip_space_and_comments(sql);
    let Some(head) = text.get(..6) else {
        return Ok(());
    };
    if !head.eq_ignore_ascii_case("pragma") {
        return Ok(());
    }
    let (mut name, after) = identifier(skip_space_and_comments(&text[6..]));
    let mut rest = skip_space_and_comments(after);
    // `schema.name`: the name is the last part.
    while let Some(after_dot) = rest.strip_prefix('.') {
        let (part, after) = identifier(skip_space_and_comments(after_dot));
        name = part;
        rest = skip_space_and_comments(after);
    }
    let sets = rest.starts_with(['=', '(']);
    match SETUP_PRAGMAS.iter().find(|p| p.eq_ignore_ascii_case(&name)) {
        Some(pragma) if sets => Err(Error::SetupPragma {
            pragma: (*pragma).to_owned(),
            sql: sql.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// `text` from its first character that is neither white space nor in a
/// comment.
fn skip_space_and_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.find('\n').map_or("", |end| &rest[end..]);
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.find("*/").map_or("", |end| &rest[end + 2..]);
        } else {
            return text;
        }
    }
}

/// The identifier `text` starts with (unquoted from `"…"`, `` `…` `` or
/// `[…]`), and what follows it.
fn identifier(text: &str) -> (String, &str) {
    let close = match text.chars().next() {
        Some('"') => Some('"'),
        Some('`') => Some('`'),
        Some('[') => Some(']'),
        _ => None,
    };
    let Some(close) = close else {
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        return (text[..end].to_owned(), &text[end..]);
    };
    let body = &text[1..];
    let end = body.find(close).unwrap_or(body.len());
    let rest = body.get(end + 1..).unwrap_or("");
    (body[..end].to_owned(), rest)
}

/// The error of a failed prepare: a refused transaction control statement
/// or key pragma is named as such (the latter without its text).
fn prepare_error(error: rusqlite::Error, sql: &str, refused_control: bool, guard: &Guard) -> Error {
    if refused_control {
        return Error::TransactionControl {
            sql: sql.to_owned(),
        };
    }
    if let Some(pragma) = guard.refused_key() {
        return Error::KeyPragma { pragma };
    }
    from_rusqlite(error, sql)
}

/// Binds the values `row` gives for `columns` to `stmt`, in place, if
/// `row` gives exactly those columns; `Ok(false)` (some bound, the rest
/// stale) if it gives others.
fn bind_row_in_place<I: Insertable>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    sql: &str,
    row: &I,
    columns: &[usize],
) -> Result<bool> {
    let mut expected = columns.iter().copied().peekable();
    let mut position = 0;
    for i in 0..<I::Table as Table>::COLUMNS.len() {
        let value = row.insert_value(i);
        let wanted = expected.next_if_eq(&i).is_some();
        match value {
            Some(value) if wanted => {
                position += 1;
                stmt.raw_bind_parameter(position, Bind(value.as_value_ref()))
                    .map_err(|e| from_rusqlite(e, sql))?;
            }
            None if !wanted => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

#[inline]
fn bind<'a>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    sql: &str,
    args: impl Iterator<Item = ValueRef<'a>>,
    count: usize,
) -> Result<()> {
    let expected = stmt.parameter_count();
    if expected != count {
        return Err(Error::invalid_argument(format!(
            "statement expects {expected} arguments, got {count} (statement: {sql})"
        )));
    }
    for (i, value) in args.enumerate() {
        stmt.raw_bind_parameter(i + 1, Bind(value))
            .map_err(|e| from_rusqlite(e, sql))?;
    }
    Ok(())
}

/// Times `run` and reports it as a `tracing` event when anyone listens.
#[inline]
fn traced<R>(sql: &str, args: usize, run: impl FnOnce() -> Result<R>) -> Result<R> {
    if !tracing::enabled!(target: "driftwood::sql", tracing::Level::DEBUG) {
        return run();
    }
    let start = Instant::now();
    let result = run();
    report(sql, args, Some(start), result.as_ref().map(|_| ()));
    result
}

/// Emits the `tracing` event of one statement (target `driftwood::sql`).
fn report(sql: &str, args: usize, start: Option<Instant>, outcome: Result<(), &Error>) {
    let elapsed_us = start.map_or(0, |start| start.elapsed().as_micros() as u64);
    // A refused key pragma holds a key: its text is never logged.
    let sql = match outcome {
        Err(Error::KeyPragma { .. }) => "PRAGMA <key> = <redacted>",
        _ => sql,
    };
    match outcome {
        Ok(()) => tracing::debug!(target: "driftwood::sql", sql, args, elapsed_us, "statement"),
        Err(error) => {
            tracing::debug!(target: "driftwood::sql", sql, args, elapsed_us, %error, "statement failed")
        }
    }
}

/// The rows of a statement that is stepping.
struct StatementCursor<'s, 'q> {
    rows: rusqlite::Rows<'s>,
    /// Known once the first row is there.
    column_count: Option<usize>,
    sql: &'q str,
}

impl Cursor for StatementCursor<'_, '_> {
    fn next_row(&mut self, visit: &mut dyn FnMut(&Row<'_>) -> Result<()>) -> Result<bool> {
        let Some(row) = self.rows.next().map_err(|e| from_rusqlite(e, self.sql))? else {
            return Ok(false);
        };
        // Asked at the first row, not before the first step: SQLite
        // re-prepares a cached statement after a schema change when it
        // steps, and a `SELECT *` then has the new columns.
        let column_count = *self
            .column_count
            .get_or_insert_with(|| row.as_ref().column_count());
        visit(&Row::stepping(row, column_count, self.sql))?;
        Ok(true)
    }
}
