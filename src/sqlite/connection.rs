//! [`Connection`]: one SQLite connection with its statement cache,
//! transaction depth and statement tracing.

use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rusqlite::OpenFlags;

use super::OpenOptions;
use super::cells::{Bind, StatementRow, owned};
use super::error::from_rusqlite;
use crate::error::{Error, Result};
use crate::query::Statement;
use crate::row::{FromRow, OwnedRow, Row};
use crate::schema::Schema;
use crate::schema::read::{SchemaRow, parse_schema};
use crate::table::{Insertable, Table};
use crate::types::{SqlValue, ValueRef};

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Execution {
    /// Rows inserted, updated or deleted.
    pub rows_affected: u64,
    /// The rowid of the last inserted row on this connection.
    pub last_insert_id: i64,
}

/// How a transaction takes its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// `BEGIN DEFERRED`: locks on first use; for reads.
    Deferred,
    /// `BEGIN IMMEDIATE`: takes the write lock at once, so a write
    /// transaction never fails half-way with "database is locked".
    Immediate,
}

/// One SQLite connection. Not `Sync`: exactly one thread uses it at a time.
pub struct Connection {
    raw: rusqlite::Connection,
    /// Open transaction levels: 0 outside a transaction, 1 inside `BEGIN`,
    /// one more per savepoint.
    depth: Cell<u32>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("path", &self.raw.path())
            .field("depth", &self.depth.get())
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
        Self::configure(raw, options, true)
    }

    fn configure(
        raw: rusqlite::Connection,
        options: &OpenOptions,
        in_memory: bool,
    ) -> Result<Self> {
        raw.set_prepared_statement_cache_capacity(options.statement_cache_capacity);
        let conn = Connection {
            raw,
            depth: Cell::new(0),
        };
        conn.raw
            .busy_timeout(options.busy_timeout)
            .map_err(|e| from_rusqlite(e, "busy_timeout"))?;
        let pragmas = options.pragmas(in_memory);
        conn.raw
            .execute_batch(&pragmas)
            .map_err(|e| from_rusqlite(e, &pragmas))?;
        Ok(conn)
    }

    /// The underlying rusqlite connection, for what driftwood does not cover
    /// (custom functions, extensions, backups). Statements run through it
    /// bypass driftwood's tracing and transaction bookkeeping.
    pub fn raw(&self) -> &rusqlite::Connection {
        &self.raw
    }

    /// The underlying rusqlite connection, mutably (to install handlers).
    pub fn raw_mut(&mut self) -> &mut rusqlite::Connection {
        &mut self.raw
    }

    /// The open transaction depth: 0 outside a transaction.
    pub fn depth(&self) -> u32 {
        self.depth.get()
    }

    /// Runs a statement that returns no rows.
    pub fn execute(&self, statement: &Statement) -> Result<Execution> {
        self.execute_values(
            &statement.sql,
            statement.args.iter().map(SqlValue::as_ref),
            statement.args.len(),
        )
    }

    /// Runs `sql` once per argument set, all in the current transaction (or
    /// its own when none is open), preparing it once.
    pub fn execute_many<'a>(
        &self,
        sql: &str,
        arg_sets: impl IntoIterator<Item = &'a [SqlValue]>,
    ) -> Result<Execution> {
        self.in_transaction(|| {
            let mut total = Execution::default();
            let mut stmt = self.prepare(sql)?;
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

    /// Inserts many rows (or companions) binding each value in place, with
    /// one prepared statement per distinct set of given columns: the fastest
    /// way to load data. Runs in the current transaction, or in its own when
    /// none is open.
    pub fn insert_many<'a, I: Insertable + 'a>(
        &self,
        rows: impl IntoIterator<Item = &'a I>,
    ) -> Result<Execution> {
        let column_count = <I::Table as Table>::COLUMNS.len();
        self.in_transaction(|| {
            let mut total = Execution::default();
            let mut columns: Vec<usize> = Vec::with_capacity(column_count);
            let mut values = Vec::with_capacity(column_count);
            let mut current_columns: Option<Vec<usize>> = None;
            let mut sql = String::new();
            let mut stmt = None;
            for row in rows {
                columns.clear();
                values.clear();
                for i in 0..column_count {
                    if let Some(value) = row.insert_value(i) {
                        columns.push(i);
                        values.push(value);
                    }
                }
                if current_columns.as_ref() != Some(&columns) {
                    sql = crate::query::insert_sql::<I::Table>(
                        crate::query::Dialect::Sqlite,
                        &columns,
                    );
                    stmt = Some(self.prepare(&sql)?);
                    current_columns = Some(columns.clone());
                }
                let Some(stmt) = stmt.as_mut() else { continue };
                let done = self.run_prepared(
                    stmt,
                    &sql,
                    values.iter().map(|v| v.as_value_ref()),
                    values.len(),
                )?;
                total.rows_affected += done.rows_affected;
                total.last_insert_id = done.last_insert_id;
            }
            Ok(total)
        })
    }

    /// Runs a query and maps every row to `R`.
    pub fn fetch<R: FromRow>(&self, statement: &Statement) -> Result<Vec<R>> {
        self.query(statement, usize::MAX, |row| R::from_row(row))
    }

    /// Runs a query and maps its first row only, if any.
    pub fn fetch_first<R: FromRow>(&self, statement: &Statement) -> Result<Option<R>> {
        Ok(self.query(statement, 1, |row| R::from_row(row))?.pop())
    }

    /// Runs a query and copies every row out ([`OwnedRow`]), for raw SQL.
    pub fn fetch_rows(&self, statement: &Statement) -> Result<Vec<OwnedRow>> {
        let mut names: Option<Arc<[String]>> = None;
        self.query(statement, usize::MAX, |row| {
            let names = names.get_or_insert_with(|| {
                (0..row.len())
                    .map(|i| row.column_name(i).to_owned())
                    .collect()
            });
            let values = (0..row.len())
                .map(|i| row.get_ref(i).map(|v| v.to_owned()))
                .collect::<Result<_>>()?;
            Ok(OwnedRow::new(names.clone(), values))
        })
    }

    /// Runs a query and maps at most `max_rows` rows; stepping stops there
    /// (a primary-key lookup never pays for the step that finds no second row).
    fn query<R>(
        &self,
        statement: &Statement,
        max_rows: usize,
        mut map: impl FnMut(&Row<'_>) -> Result<R>,
    ) -> Result<Vec<R>> {
        let sql: &str = &statement.sql;
        self.traced(sql, statement.args.len(), || {
            let mut stmt = self.prepare(sql)?;
            bind(
                &mut stmt,
                sql,
                statement.args.iter().map(SqlValue::as_ref),
                statement.args.len(),
            )?;
            let column_count = stmt.column_count();
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while out.len() < max_rows {
                let Some(row) = rows.next().map_err(|e| from_rusqlite(e, sql))? else {
                    break;
                };
                let cells = StatementRow { row, column_count };
                out.push(map(&Row::new(&cells, sql))?);
            }
            Ok(out)
        })
    }

    fn execute_values<'a>(
        &self,
        sql: &str,
        args: impl Iterator<Item = ValueRef<'a>>,
        count: usize,
    ) -> Result<Execution> {
        let mut stmt = self.prepare(sql)?;
        self.run_prepared(&mut stmt, sql, args, count)
    }

    fn prepare(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>> {
        self.raw
            .prepare_cached(sql)
            .map_err(|e| from_rusqlite(e, sql))
    }

    fn run_prepared<'a>(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
        sql: &str,
        args: impl Iterator<Item = ValueRef<'a>>,
        count: usize,
    ) -> Result<Execution> {
        self.traced(sql, count, || {
            bind(stmt, sql, args, count)?;
            let mut rows = stmt.raw_query();
            // Step to completion; a statement with RETURNING yields rows we drop.
            while rows.next().map_err(|e| from_rusqlite(e, sql))?.is_some() {}
            Ok(Execution {
                rows_affected: self.raw.changes(),
                last_insert_id: self.raw.last_insert_rowid(),
            })
        })
    }

    /// Times `run` and reports it as a `tracing` event when anyone listens.
    fn traced<R>(&self, sql: &str, args: usize, run: impl FnOnce() -> Result<R>) -> Result<R> {
        if !tracing::enabled!(target: "driftwood::sql", tracing::Level::DEBUG) {
            return run();
        }
        let start = Instant::now();
        let result = run();
        let elapsed_us = start.elapsed().as_micros() as u64;
        match &result {
            Ok(_) => tracing::debug!(target: "driftwood::sql", sql, args, elapsed_us, "statement"),
            Err(error) => {
                tracing::debug!(target: "driftwood::sql", sql, args, elapsed_us, %error, "statement failed")
            }
        }
        result
    }

    /// Runs `work` inside the current transaction, or inside a new immediate
    /// one that commits on success and rolls back on error.
    pub fn in_transaction<R>(&self, work: impl FnOnce() -> Result<R>) -> Result<R> {
        if self.depth() > 0 {
            return work();
        }
        self.begin(TxKind::Immediate)?;
        match work() {
            Ok(value) => self.commit().map(|()| value),
            Err(error) => {
                // The work's error matters more than a failed rollback's.
                let _ = self.rollback();
                Err(error)
            }
        }
    }

    /// Opens a transaction, or a savepoint inside one.
    pub fn begin(&self, kind: TxKind) -> Result<()> {
        let depth = self.depth();
        let sql = match (depth, kind) {
            (0, TxKind::Deferred) => "BEGIN DEFERRED".to_owned(),
            (0, TxKind::Immediate) => "BEGIN IMMEDIATE".to_owned(),
            (d, _) => format!("SAVEPOINT dw_{d}"),
        };
        self.raw
            .execute_batch(&sql)
            .map_err(|e| from_rusqlite(e, &sql))?;
        self.depth.set(depth + 1);
        Ok(())
    }

    /// Commits the innermost transaction level (`COMMIT` or `RELEASE`).
    pub fn commit(&self) -> Result<()> {
        let depth = self.depth();
        if depth == 0 {
            return Err(Error::invalid_argument(
                "commit without an open transaction",
            ));
        }
        if self.raw.is_autocommit() {
            self.depth.set(0);
            return Err(Error::Sql {
                code: None,
                message: "the transaction was already rolled back by SQLite (interrupt or ON CONFLICT ROLLBACK)".into(),
                sql: "COMMIT".into(),
            });
        }
        let sql = if depth == 1 {
            "COMMIT".to_owned()
        } else {
            format!("RELEASE dw_{}", depth - 1)
        };
        self.raw
            .execute_batch(&sql)
            .map_err(|e| from_rusqlite(e, &sql))?;
        self.depth.set(depth - 1);
        Ok(())
    }

    /// Rolls back the innermost transaction level (`ROLLBACK` or
    /// `ROLLBACK TO` + `RELEASE`).
    pub fn rollback(&self) -> Result<()> {
        let depth = self.depth();
        if depth == 0 {
            return Err(Error::invalid_argument(
                "rollback without an open transaction",
            ));
        }
        if self.raw.is_autocommit() {
            self.depth.set(0);
            return Ok(());
        }
        let sql = if depth == 1 {
            "ROLLBACK".to_owned()
        } else {
            let name = format!("dw_{}", depth - 1);
            format!("ROLLBACK TO {name}; RELEASE {name}")
        };
        self.depth.set(depth - 1);
        self.raw
            .execute_batch(&sql)
            .map_err(|e| from_rusqlite(e, &sql))
    }

    /// Rolls back every open level; used when a transaction's owner is gone.
    pub fn rollback_all(&self) -> Result<()> {
        if self.depth() == 0 {
            return Ok(());
        }
        self.depth.set(0);
        if self.raw.is_autocommit() {
            return Ok(());
        }
        self.raw
            .execute_batch("ROLLBACK")
            .map_err(|e| from_rusqlite(e, "ROLLBACK"))
    }

    /// `PRAGMA user_version`: the schema version stored in the file.
    pub fn user_version(&self) -> Result<u32> {
        let sql = "PRAGMA user_version";
        self.raw
            .query_row(sql, [], |row| row.get::<_, i64>(0))
            .map(|v| v as u32)
            .map_err(|e| from_rusqlite(e, sql))
    }

    /// Sets `PRAGMA user_version` (inside the current transaction, if any).
    pub fn set_user_version(&self, version: u32) -> Result<()> {
        let sql = format!("PRAGMA user_version = {version}");
        self.raw
            .execute_batch(&sql)
            .map_err(|e| from_rusqlite(e, &sql))
    }

    /// Reads the live schema back (see [`crate::schema::read`]): every table,
    /// index, view and trigger except SQLite's internal ones and virtual
    /// tables' shadow tables.
    pub fn read_schema(&self) -> Result<Schema> {
        let shadow_sql = "SELECT name FROM pragma_table_list WHERE type = 'shadow'";
        let shadow: Vec<String> = self
            .raw
            .prepare(shadow_sql)
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| from_rusqlite(e, shadow_sql))?;
        let sql = "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid";
        let rows: Vec<SchemaRow> = self
            .raw
            .prepare(sql)
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(SchemaRow {
                        kind: r.get(0)?,
                        name: r.get(1)?,
                        table: r.get(2)?,
                        sql: r.get(3)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| from_rusqlite(e, sql))?;
        parse_schema(
            rows.into_iter()
                .filter(|r| !shadow.iter().any(|s| s.eq_ignore_ascii_case(&r.name))),
        )
    }

    /// Copies one value out (used by reads of single cells in tests and tools).
    pub fn query_value(&self, sql: &str) -> Result<SqlValue> {
        self.raw
            .query_row(sql, [], |row| row.get_ref(0).map(owned))
            .map_err(|e| from_rusqlite(e, sql))
    }
}

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
