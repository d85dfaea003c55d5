//! The one executor abstraction every backend implements — the in-thread
//! database and its transactions today, the background server, remote
//! clients and PostgreSQL later — and the typed query API built on it.
//!
//! An executor runs [`Statement`]s and returns results as futures that are
//! `Send`. In-thread backends compute the result when the method is called
//! and return a future that is ready at once; threaded backends return a
//! future that waits for the reply. The typed methods (`select`, `insert`,
//! …) are provided on the trait, so they work the same on every backend.

use std::future::Future;

use crate::batch::Batch;
use crate::error::Result;
use crate::queries::{DeleteQuery, InsertQuery, SelectQuery, UpdateQuery};
use crate::query::{Delete, Dialect, Insert, Select, Statement, Update};
use crate::row::{FromRow, OwnedRow};
use crate::sqlite::Execution;
use crate::table::{Insertable, Table};
use crate::types::{SqlValue, ToSql};

/// Runs statements. See the [module documentation](self).
pub trait Executor: Send {
    /// The SQL dialect statements must be built for.
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// Runs a statement that returns no rows.
    fn execute(&self, statement: Statement) -> impl Future<Output = Result<Execution>> + Send;

    /// Runs a query and maps its rows to `R` where the database lives, so
    /// results cross threads in bulk.
    fn fetch<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<R>>> + Send;

    /// Runs a query and maps its first row, if any, without stepping further.
    fn fetch_first<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Option<R>>> + Send;

    /// Runs a query and returns its rows as owned values (for raw SQL).
    fn fetch_rows(
        &self,
        statement: Statement,
    ) -> impl Future<Output = Result<Vec<OwnedRow>>> + Send;

    /// Runs every statement of a batch in one transaction (the current one,
    /// if any) and one round trip.
    fn run_batch(&self, batch: Batch) -> impl Future<Output = Result<Execution>> + Send;

    /// Starts a `SELECT` of table `T`'s rows.
    fn select<T: Table>(&self) -> SelectQuery<'_, Self, T>
    where
        Self: Sized,
    {
        SelectQuery::new(self, Select::from_table())
    }

    /// The row of `T` whose primary key is `key`, if any (`T` must have a
    /// one-column primary key). The fastest way to load one row.
    fn find<T: Table>(&self, key: impl ToSql) -> impl Future<Output = Result<Option<T>>> + Send
    where
        Self: Sized,
    {
        let statement =
            crate::query::find_statement::<T>(self.dialect(), key.to_sql().into_owned());
        let row = statement.map(|s| self.fetch_first::<T>(s));
        async move { row?.await }
    }

    /// Starts an `INSERT` of a row or companion; awaiting it gives the new
    /// row's id.
    fn insert<I: Insertable>(&self, row: I) -> InsertQuery<'_, Self, I>
    where
        Self: Sized,
    {
        InsertQuery::new(self, Insert::new(row))
    }

    /// Starts an `UPDATE` of table `T`.
    fn update<T: Table>(&self) -> UpdateQuery<'_, Self, T>
    where
        Self: Sized,
    {
        UpdateQuery::new(self, Update::new())
    }

    /// Starts a `DELETE` from table `T`.
    fn delete<T: Table>(&self) -> DeleteQuery<'_, Self, T>
    where
        Self: Sized,
    {
        DeleteQuery::new(self, Delete::new())
    }

    /// Replaces the row with `row`'s primary key; gives the rows changed (0 or 1).
    fn replace<T: Table>(&self, row: &T) -> impl Future<Output = Result<u64>> + Send
    where
        Self: Sized,
    {
        let statement = Update::replace(row).and_then(|u| u.build(self.dialect()));
        let run = statement.map(|s| self.execute(s));
        async move { Ok(run?.await?.rows_affected) }
    }

    /// Runs raw SQL returning rows (drift's `customSelect`); `?` placeholders
    /// take `args` in order.
    fn custom_select(
        &self,
        sql: impl Into<String>,
        args: impl IntoIterator<Item = SqlValue>,
    ) -> impl Future<Output = Result<Vec<OwnedRow>>> + Send
    where
        Self: Sized,
    {
        self.fetch_rows(Statement::new(sql.into(), args.into_iter().collect()))
    }

    /// Runs raw SQL returning no rows (drift's `customStatement`).
    fn custom_statement(
        &self,
        sql: impl Into<String>,
        args: impl IntoIterator<Item = SqlValue>,
    ) -> impl Future<Output = Result<Execution>> + Send
    where
        Self: Sized,
    {
        self.execute(Statement::new(sql.into(), args.into_iter().collect()))
    }

    /// Inserts every row in one transaction and one round trip.
    fn insert_all<I: Insertable>(
        &self,
        rows: impl IntoIterator<Item = I>,
    ) -> impl Future<Output = Result<Execution>> + Send
    where
        Self: Sized,
    {
        let mut batch = Batch::new();
        for row in rows {
            batch.insert(row);
        }
        self.run_batch(batch)
    }
}

/// Builds argument lists for raw SQL: `args![1, "x", None::<i64>]`.
#[macro_export]
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        ::std::vec![$($crate::types::ToSql::to_sql(&$value).into_owned()),*]
    };
}
