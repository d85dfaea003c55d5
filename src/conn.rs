//! [`Conn`]: the synchronous, typed handle to a connection that a unit of
//! work gets (`db.write(|conn| …)`, `db.read(|conn| …)`). The closure runs
//! where the connection lives — on the caller's thread for an in-thread
//! database, on the server thread for a background one — so a whole unit of
//! work costs one round trip, and each statement costs what it costs in
//! plain rusqlite.

use crate::batch::Batch;
use crate::error::Result;
use crate::queries::{DeleteQuery, InsertQuery, SelectQuery, UpdateQuery};
use crate::query::{Delete, Dialect, Insert, Select, Statement, Update};
use crate::row::{FromRow, OwnedRow};
use crate::sqlite::{Connection, Execution, TxKind};
use crate::table::{Insertable, Table};
use crate::types::{SqlValue, ToSql};

/// A synchronous handle to a connection inside a unit of work.
#[derive(Debug, Clone, Copy)]
pub struct Conn<'c> {
    conn: &'c Connection,
}

impl<'c> Conn<'c> {
    /// Wraps a connection.
    pub fn new(conn: &'c Connection) -> Self {
        Conn { conn }
    }

    /// The dialect statements are built for.
    pub fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// The connection, for what the typed API does not cover.
    pub fn connection(&self) -> &'c Connection {
        self.conn
    }

    /// Runs a statement that returns no rows.
    pub fn execute(&self, statement: &Statement) -> Result<Execution> {
        self.conn.execute(statement)
    }

    /// Runs a query and maps its rows.
    pub fn fetch<R: FromRow>(&self, statement: &Statement) -> Result<Vec<R>> {
        self.conn.fetch(statement)
    }

    /// Starts a `SELECT` of table `T`'s rows.
    pub fn select<T: Table>(&self) -> SelectQuery<'_, Self, T> {
        SelectQuery::new(self, Select::from_table())
    }

    /// The row of `T` whose primary key is `key`, if any.
    pub fn find<T: Table>(&self, key: impl ToSql) -> Result<Option<T>> {
        let statement =
            crate::query::find_statement::<T>(self.dialect(), key.to_sql().into_owned())?;
        self.conn.fetch_first(&statement)
    }

    /// Starts an `INSERT`.
    pub fn insert<I: Insertable>(&self, row: I) -> InsertQuery<'_, Self, I> {
        InsertQuery::new(self, Insert::new(row))
    }

    /// Inserts many rows with one prepared statement, binding values in place.
    pub fn insert_all<'a, I: Insertable + 'a>(
        &self,
        rows: impl IntoIterator<Item = &'a I>,
    ) -> Result<Execution> {
        self.conn.insert_many(rows)
    }

    /// Starts an `UPDATE`.
    pub fn update<T: Table>(&self) -> UpdateQuery<'_, Self, T> {
        UpdateQuery::new(self, Update::new())
    }

    /// Replaces the row with `row`'s primary key; gives the rows changed.
    pub fn replace<T: Table>(&self, row: &T) -> Result<u64> {
        Ok(self
            .execute(&Update::replace(row)?.build(self.dialect())?)?
            .rows_affected)
    }

    /// Starts a `DELETE`.
    pub fn delete<T: Table>(&self) -> DeleteQuery<'_, Self, T> {
        DeleteQuery::new(self, Delete::new())
    }

    /// Runs raw SQL returning rows.
    pub fn custom_select(
        &self,
        sql: &str,
        args: impl IntoIterator<Item = SqlValue>,
    ) -> Result<Vec<OwnedRow>> {
        self.conn
            .fetch_rows(&Statement::new(sql.to_owned(), args.into_iter().collect()))
    }

    /// Runs raw SQL returning no rows.
    pub fn custom_statement(
        &self,
        sql: &str,
        args: impl IntoIterator<Item = SqlValue>,
    ) -> Result<Execution> {
        self.conn
            .execute(&Statement::new(sql.to_owned(), args.into_iter().collect()))
    }

    /// Runs a batch.
    pub fn run_batch(&self, batch: &Batch) -> Result<Execution> {
        batch.run_on(self.conn)
    }

    /// Runs `work` in a nested transaction (a savepoint inside a transaction,
    /// a transaction otherwise): committed if it returns `Ok`, rolled back if
    /// it returns `Err` or panics.
    pub fn transaction<R>(&self, work: impl FnOnce(&Conn<'c>) -> Result<R>) -> Result<R> {
        self.conn.begin(TxKind::Immediate)?;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(self)));
        finish(self.conn, outcome)
    }
}

/// Commits on `Ok`, rolls back on `Err` or panic (turned into an error).
pub(crate) fn finish<R>(conn: &Connection, outcome: std::thread::Result<Result<R>>) -> Result<R> {
    match outcome {
        Ok(Ok(value)) => match conn.commit() {
            Ok(()) => Ok(value),
            Err(error) => {
                let _ = conn.rollback();
                Err(error)
            }
        },
        Ok(Err(error)) => {
            let _ = conn.rollback();
            Err(error)
        }
        Err(panic) => {
            let _ = conn.rollback();
            Err(crate::Error::from_panic(panic))
        }
    }
}
