//! Where queries run, and the typed query API written once for all of them.
//!
//! A [`Runner`] runs plans (a statement and how its rows become a value).
//! Its [`Mode`] says what a finished query gives: [`Async`] handles — `Db`
//! and `Transaction`, the [`Executor`]s — return a [`Pending`] future;
//! [`Blocking`] ones — the `Conn` a unit of work gets — return the
//! `Result` at once. The typed methods (`select`, `find`, `insert`, …) and
//! the builders' finishing methods (`get`, `execute`, …) are written once,
//! over the mode, so they have the same names, arguments and values
//! everywhere.

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::plan::{self, Plan};
use crate::queries::{DeleteQuery, InsertQuery, SelectQuery, UpdateQuery};
use crate::query::{Access, Delete, Dialect, Insert, Select, Statement, Update};
use crate::row::{FromRow, OwnedRow};
use crate::sqlite::Execution;
use crate::table::{Insertable, Table};
use crate::types::{SqlValue, ToSql};

pub use crate::backend::Pending;

mod sealed {
    /// Only driftwood's modes exist.
    pub trait Sealed {}
    /// Only driftwood's handles run queries.
    pub trait Runs {}
}

/// What a finished query gives on a [`Runner`]: see [`Async`] and
/// [`Blocking`].
pub trait Mode: sealed::Sealed {
    /// The value of a query producing a `T`.
    type Output<T: Send + 'static>;

    /// A query whose outcome is already known (a query that could not be
    /// built, say).
    #[doc(hidden)]
    fn ready<T: Send + 'static>(result: Result<T>) -> Self::Output<T>;
}

/// Queries give [`Pending`] futures: the mode of [`Executor`]s.
#[derive(Debug)]
pub enum Async {}

/// Queries give their `Result` at once: the mode of the `Conn` a unit of
/// work gets.
#[derive(Debug)]
pub enum Blocking {}

impl sealed::Sealed for Async {}
impl sealed::Sealed for Blocking {}

impl Mode for Async {
    type Output<T: Send + 'static> = Pending<T>;

    fn ready<T: Send + 'static>(result: Result<T>) -> Pending<T> {
        Pending::ready(result)
    }
}

impl Mode for Blocking {
    type Output<T: Send + 'static> = Result<T>;

    fn ready<T: Send + 'static>(result: Result<T>) -> Result<T> {
        result
    }
}

/// The value of a query producing `T` on runner `E`: a [`Pending`] future
/// on an executor, a `Result` on a `Conn`.
pub type Output<E, T> = <<E as Runner>::Mode as Mode>::Output<T>;

/// Runs queries: a database handle, a transaction, or the `Conn` of a unit
/// of work. See the [module documentation](self).
pub trait Runner: sealed::Runs {
    /// Whether queries give futures or results.
    type Mode: Mode;

    /// The SQL dialect statements must be built for.
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// Runs a plan (the typed API's building block).
    #[doc(hidden)]
    fn run_plan<T: Send + 'static>(&self, plan: Plan<T>) -> Output<Self, T>;

    /// Runs every statement of a batch in one transaction (the current one,
    /// if any) and one round trip.
    fn run_batch(&self, batch: Batch) -> Output<Self, Execution>;

    /// Inserts every row (rows, companions or references to either) in one
    /// transaction (the current one, if any) and one round trip.
    fn insert_all<I: Insertable>(
        &self,
        rows: impl IntoIterator<Item = I>,
    ) -> Output<Self, Execution>
    where
        Self: Sized,
    {
        let mut batch = Batch::new();
        for row in rows {
            batch.insert(row);
        }
        self.run_batch(batch)
    }

    /// Runs a statement that returns no rows.
    fn execute(&self, statement: Statement) -> Output<Self, Execution>
    where
        Self: Sized,
    {
        self.run_plan(Plan::execute(statement))
    }

    /// Runs a query and maps its rows to `R` where the database lives, so
    /// results cross threads in bulk.
    fn fetch<R: FromRow + Send + 'static>(&self, statement: Statement) -> Output<Self, Vec<R>>
    where
        Self: Sized,
    {
        self.run_plan(Plan::rows(statement, plan::all::<R>))
    }

    /// Runs a query and maps its first row, if any, without stepping further.
    fn fetch_first<R: FromRow + Send + 'static>(
        &self,
        statement: Statement,
    ) -> Output<Self, Option<R>>
    where
        Self: Sized,
    {
        self.run_plan(Plan::rows(statement, plan::first::<R>))
    }

    /// Starts a `SELECT` of table `T`'s rows.
    fn select<T: Table>(&self) -> SelectQuery<'_, Self, T>
    where
        Self: Sized,
    {
        SelectQuery::new(self, Select::from_table())
    }

    /// The row of `T` whose primary key is `key`, if any (`T` must have a
    /// one-column primary key). The fastest way to load one row.
    fn find<T: Table>(&self, key: impl ToSql) -> Output<Self, Option<T>>
    where
        Self: Sized,
    {
        match crate::query::find_statement::<T>(self.dialect(), key.to_sql().into_owned()) {
            Ok(statement) => self.fetch_first(statement),
            Err(error) => Self::Mode::ready(Err(error)),
        }
    }

    /// Starts an `INSERT` of a row or companion; awaiting it (on an
    /// executor) gives the new row's id.
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
    fn replace<T: Table>(&self, row: &T) -> Output<Self, u64>
    where
        Self: Sized,
    {
        self.run_built(
            Update::replace(row).and_then(|u| u.build(self.dialect())),
            |statement| Plan::done(statement, |done| done.rows_affected),
        )
    }

    /// Runs raw SQL returning rows (drift's `customSelect`); `?` placeholders
    /// take `args` in order. Outside a transaction it runs on a reader
    /// connection when SQLite confirms it only reads.
    fn custom_select(
        &self,
        sql: impl Into<String>,
        args: impl IntoIterator<Item = SqlValue>,
    ) -> Output<Self, Vec<OwnedRow>>
    where
        Self: Sized,
    {
        let statement =
            Statement::new(sql.into(), args.into_iter().collect()).with_access(Access::Unknown);
        self.run_plan(Plan::rows(statement, plan::owned_rows))
    }

    /// Runs raw SQL returning no rows (drift's `customStatement`).
    /// Transaction control (`BEGIN`, `COMMIT`, …) is refused with
    /// [`Error::TransactionControl`]: use the transaction API.
    fn custom_statement(
        &self,
        sql: impl Into<String>,
        args: impl IntoIterator<Item = SqlValue>,
    ) -> Output<Self, Execution>
    where
        Self: Sized,
    {
        self.execute(Statement::new(sql.into(), args.into_iter().collect()))
    }

    /// Runs the plan `make` builds from `statement`, or reports why the
    /// statement could not be built.
    #[doc(hidden)]
    fn run_built<T: Send + 'static>(
        &self,
        statement: Result<Statement>,
        make: impl FnOnce(Statement) -> Plan<T>,
    ) -> Output<Self, T>
    where
        Self: Sized,
    {
        match statement {
            Ok(statement) => self.run_plan(make(statement)),
            Err(error) => Self::Mode::ready(Err::<T, Error>(error)),
        }
    }
}

impl sealed::Runs for crate::conn::Conn<'_> {}
impl<D> sealed::Runs for crate::database::Db<D> {}
impl sealed::Runs for crate::transaction::Transaction<'_> {}

/// A [`Runner`] whose queries give futures: `Db` and `Transaction`. Write
/// async code generic over where it runs against this trait.
pub trait Executor: Runner<Mode = Async> + Send + Sync {}

impl<E: Runner<Mode = Async> + Send + Sync> Executor for E {}

/// Builds argument lists for raw SQL: `args![1, "x", None::<i64>]`.
#[macro_export]
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        ::std::vec![$($crate::types::ToSql::to_sql(&$value).into_owned()),*]
    };
}
