//! Queries bound to where they run: a pure builder from [`crate::query`]
//! plus the executor (async) or [`Conn`] (sync, inside a unit of work) it
//! will run on. Builder methods are shared; finishing methods (`get`,
//! `get_single`, …) return futures on executors and results on `Conn`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use futures::FutureExt;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::query::{
    Delete, Insert, InsertMode, IntoExpr, OnConflict, Ordering, Select, SelectColumns, Selectable,
    Update,
};
use crate::row::{FromRow, Scalars};
use crate::sqlite::Execution;
use crate::table::{Insertable, Table};

/// The one row of a result that must have exactly one.
fn single<R>(rows: Vec<R>, sql: &str) -> Result<R> {
    let mut rows = rows.into_iter();
    let Some(first) = rows.next() else {
        return Err(Error::NoRows {
            sql: sql.to_owned(),
        });
    };
    if rows.next().is_some() {
        return Err(Error::TooManyRows {
            sql: sql.to_owned(),
        });
    }
    Ok(first)
}

/// The row of a result that may have none.
fn optional<R>(rows: Vec<R>, sql: &str) -> Result<Option<R>> {
    if rows.len() > 1 {
        return Err(Error::TooManyRows {
            sql: sql.to_owned(),
        });
    }
    Ok(rows.into_iter().next())
}

/// A `SELECT` bound to where it runs.
#[must_use = "a query does nothing until it is run with get(), get_single() or get_optional()"]
pub struct SelectQuery<'e, E, R> {
    exec: &'e E,
    select: Select<R>,
}

impl<'e, E, R: FromRow> SelectQuery<'e, E, R> {
    pub(crate) fn new(exec: &'e E, select: Select<R>) -> Self {
        SelectQuery { exec, select }
    }

    /// Keeps the rows where `condition` holds; several filters are `AND`ed.
    pub fn filter(self, condition: impl IntoExpr<bool>) -> Self {
        SelectQuery {
            select: self.select.filter(condition),
            ..self
        }
    }

    /// Adds a sort key.
    pub fn order_by(self, ordering: Ordering) -> Self {
        SelectQuery {
            select: self.select.order_by(ordering),
            ..self
        }
    }

    /// At most `limit` rows.
    pub fn limit(self, limit: u64) -> Self {
        SelectQuery {
            select: self.select.limit(limit),
            ..self
        }
    }

    /// Skips the first `offset` rows.
    pub fn offset(self, offset: u64) -> Self {
        SelectQuery {
            select: self.select.offset(offset),
            ..self
        }
    }

    /// `SELECT DISTINCT`.
    pub fn distinct(self) -> Self {
        SelectQuery {
            select: self.select.distinct(),
            ..self
        }
    }

    /// `INNER JOIN` table `J`: rows become `(R, J)`.
    pub fn inner_join<J: Table>(self, on: impl IntoExpr<bool>) -> SelectQuery<'e, E, (R, J)>
    where
        R: crate::row::FixedWidth,
    {
        SelectQuery {
            exec: self.exec,
            select: self.select.inner_join(on),
        }
    }

    /// `LEFT JOIN` table `J`: rows become `(R, Option<J>)`.
    pub fn left_join<J: Table>(self, on: impl IntoExpr<bool>) -> SelectQuery<'e, E, (R, Option<J>)>
    where
        R: crate::row::FixedWidth,
    {
        SelectQuery {
            exec: self.exec,
            select: self.select.left_join(on),
        }
    }

    /// Selects columns or aggregates instead of whole rows.
    pub fn columns<C: Selectable>(self, columns: C) -> ColumnsQuery<'e, E, C::Output>
    where
        Scalars<C::Output>: FromRow,
    {
        ColumnsQuery {
            exec: self.exec,
            select: self.select.columns(columns),
        }
    }

    /// The pure statement builder.
    pub fn into_select(self) -> Select<R> {
        self.select
    }
}

impl<'e, E: Executor, R: FromRow + Send + 'static> SelectQuery<'e, E, R> {
    /// Every matching row.
    pub fn get(self) -> impl Future<Output = Result<Vec<R>>> + Send + 'e {
        self.exec.fetch(self.select.build(self.exec.dialect()))
    }

    /// The one matching row; [`Error::NoRows`] or [`Error::TooManyRows`] otherwise.
    pub fn get_single(self) -> impl Future<Output = Result<R>> + Send + 'e {
        let statement = self.select.build(self.exec.dialect());
        let sql = statement.sql.clone();
        self.exec
            .fetch(statement)
            .map(move |rows| single(rows?, &sql))
    }

    /// The matching row if there is one; [`Error::TooManyRows`] if there are more.
    pub fn get_optional(self) -> impl Future<Output = Result<Option<R>>> + Send + 'e {
        let statement = self.select.build(self.exec.dialect());
        let sql = statement.sql.clone();
        self.exec
            .fetch(statement)
            .map(move |rows| optional(rows?, &sql))
    }

    /// The number of matching rows.
    pub fn count(self) -> impl Future<Output = Result<i64>> + Send + 'e {
        let statement = self.select.count().build(self.exec.dialect());
        let sql = statement.sql.clone();
        self.exec
            .fetch::<Scalars<(i64,)>>(statement)
            .map(move |rows| single(rows?, &sql).map(|Scalars((n,))| n))
    }
}

impl<R: FromRow> SelectQuery<'_, Conn<'_>, R> {
    /// Every matching row.
    pub fn get(self) -> Result<Vec<R>> {
        self.exec.fetch(&self.select.build(self.exec.dialect()))
    }

    /// The one matching row; [`Error::NoRows`] or [`Error::TooManyRows`] otherwise.
    pub fn get_single(self) -> Result<R> {
        let statement = self.select.build(self.exec.dialect());
        single(self.exec.fetch(&statement)?, &statement.sql)
    }

    /// The matching row if there is one.
    pub fn get_optional(self) -> Result<Option<R>> {
        let statement = self.select.build(self.exec.dialect());
        optional(self.exec.fetch(&statement)?, &statement.sql)
    }

    /// The number of matching rows.
    pub fn count(self) -> Result<i64> {
        let statement = self.select.count().build(self.exec.dialect());
        single(
            self.exec.fetch::<Scalars<(i64,)>>(&statement)?,
            &statement.sql,
        )
        .map(|Scalars((n,))| n)
    }
}

/// A `SELECT` of columns and aggregates bound to where it runs.
#[must_use = "a query does nothing until it is run with get(), get_single() or get_optional()"]
pub struct ColumnsQuery<'e, E, O> {
    exec: &'e E,
    select: SelectColumns<O>,
}

impl<'e, E, O> ColumnsQuery<'e, E, O>
where
    Scalars<O>: FromRow,
{
    /// Keeps the rows where `condition` holds.
    pub fn filter(self, condition: impl IntoExpr<bool>) -> Self {
        ColumnsQuery {
            select: self.select.filter(condition),
            ..self
        }
    }

    /// `GROUP BY key`.
    pub fn group_by<V>(self, key: impl IntoExpr<V>) -> Self {
        ColumnsQuery {
            select: self.select.group_by(key),
            ..self
        }
    }

    /// `HAVING condition`.
    pub fn having(self, condition: impl IntoExpr<bool>) -> Self {
        ColumnsQuery {
            select: self.select.having(condition),
            ..self
        }
    }

    /// Adds a sort key.
    pub fn order_by(self, ordering: Ordering) -> Self {
        ColumnsQuery {
            select: self.select.order_by(ordering),
            ..self
        }
    }

    /// At most `limit` rows.
    pub fn limit(self, limit: u64) -> Self {
        ColumnsQuery {
            select: self.select.limit(limit),
            ..self
        }
    }

    /// Skips the first `offset` rows.
    pub fn offset(self, offset: u64) -> Self {
        ColumnsQuery {
            select: self.select.offset(offset),
            ..self
        }
    }
}

impl<'e, E: Executor, O: Send + 'static> ColumnsQuery<'e, E, O>
where
    Scalars<O>: FromRow,
{
    /// Every result row.
    pub fn get(self) -> impl Future<Output = Result<Vec<O>>> + Send + 'e {
        let statement = self.select.build(self.exec.dialect());
        self.exec
            .fetch::<Scalars<O>>(statement)
            .map(|rows| Ok(rows?.into_iter().map(|Scalars(o)| o).collect()))
    }

    /// The one result row.
    pub fn get_single(self) -> impl Future<Output = Result<O>> + Send + 'e {
        let statement = self.select.build(self.exec.dialect());
        let sql = statement.sql.clone();
        self.exec
            .fetch::<Scalars<O>>(statement)
            .map(move |rows| single(rows?, &sql).map(|Scalars(o)| o))
    }
}

impl<O> ColumnsQuery<'_, Conn<'_>, O>
where
    Scalars<O>: FromRow,
{
    /// Every result row.
    pub fn get(self) -> Result<Vec<O>> {
        let statement = self.select.build(self.exec.dialect());
        Ok(self
            .exec
            .fetch::<Scalars<O>>(&statement)?
            .into_iter()
            .map(|Scalars(o)| o)
            .collect())
    }

    /// The one result row.
    pub fn get_single(self) -> Result<O> {
        let statement = self.select.build(self.exec.dialect());
        single(self.exec.fetch::<Scalars<O>>(&statement)?, &statement.sql).map(|Scalars(o)| o)
    }
}

/// An `INSERT` bound to where it runs. Awaiting it (on an executor) gives the
/// new row's id.
#[must_use = "an insert does nothing until it is run"]
pub struct InsertQuery<'e, E, I> {
    exec: &'e E,
    insert: Insert<I>,
}

impl<'e, E, I: Insertable> InsertQuery<'e, E, I> {
    pub(crate) fn new(exec: &'e E, insert: Insert<I>) -> Self {
        InsertQuery { exec, insert }
    }

    /// `INSERT OR IGNORE`.
    pub fn or_ignore(self) -> Self {
        self.mode(InsertMode::OrIgnore)
    }

    /// `INSERT OR REPLACE`.
    pub fn or_replace(self) -> Self {
        self.mode(InsertMode::OrReplace)
    }

    /// Sets the conflict mode.
    pub fn mode(self, mode: InsertMode) -> Self {
        InsertQuery {
            insert: self.insert.mode(mode),
            ..self
        }
    }

    /// Adds an upsert clause.
    pub fn on_conflict(self, clause: OnConflict) -> Self {
        InsertQuery {
            insert: self.insert.on_conflict(clause),
            ..self
        }
    }
}

impl<'e, E: Executor, I: Insertable> InsertQuery<'e, E, I> {
    /// Runs the insert; gives what it did.
    pub fn execute(self) -> impl Future<Output = Result<Execution>> + Send + 'e {
        self.exec
            .execute(self.insert.build(self.exec.dialect(), false))
    }

    /// Runs the insert; gives the new row's id.
    pub fn id(self) -> impl Future<Output = Result<i64>> + Send + 'e {
        self.execute().map(|done| done.map(|d| d.last_insert_id))
    }

    /// Runs the insert with `RETURNING`; gives the row as stored (defaults
    /// and generated id filled in). [`Error::NoRows`] if a conflict mode
    /// skipped it.
    pub fn returning(self) -> impl Future<Output = Result<I::Table>> + Send + 'e {
        let statement = self.insert.build(self.exec.dialect(), true);
        let sql = statement.sql.clone();
        self.exec
            .fetch(statement)
            .map(move |rows| single(rows?, &sql))
    }
}

impl<'e, E: Executor, I: Insertable + 'e> IntoFuture for InsertQuery<'e, E, I> {
    type Output = Result<i64>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<i64>> + Send + 'e>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.id())
    }
}

impl<I: Insertable> InsertQuery<'_, Conn<'_>, I> {
    /// Runs the insert; gives what it did.
    pub fn execute(self) -> Result<Execution> {
        self.exec
            .execute(&self.insert.build(self.exec.dialect(), false))
    }

    /// Runs the insert; gives the new row's id.
    pub fn id(self) -> Result<i64> {
        self.execute().map(|d| d.last_insert_id)
    }

    /// Runs the insert with `RETURNING`; gives the row as stored.
    pub fn returning(self) -> Result<I::Table> {
        let statement = self.insert.build(self.exec.dialect(), true);
        single(self.exec.fetch(&statement)?, &statement.sql)
    }
}

/// An `UPDATE` bound to where it runs. Awaiting it gives the rows changed.
#[must_use = "an update does nothing until it is run"]
pub struct UpdateQuery<'e, E, T> {
    exec: &'e E,
    update: Update<T>,
}

impl<'e, E, T: Table> UpdateQuery<'e, E, T> {
    pub(crate) fn new(exec: &'e E, update: Update<T>) -> Self {
        UpdateQuery { exec, update }
    }

    /// Updates only the rows where `condition` holds.
    pub fn filter(self, condition: impl IntoExpr<bool>) -> Self {
        UpdateQuery {
            update: self.update.filter(condition),
            ..self
        }
    }

    /// Sets the columns `values` gives (drift's `write`).
    pub fn set(self, values: &T::Companion) -> Self {
        UpdateQuery {
            update: self.update.set(values),
            ..self
        }
    }
}

impl<'e, E: Executor, T: Table> UpdateQuery<'e, E, T> {
    /// Runs the update; gives the rows changed.
    pub fn execute(self) -> impl Future<Output = Result<u64>> + Send + 'e {
        let run = self
            .update
            .build(self.exec.dialect())
            .map(|s| self.exec.execute(s));
        async move { Ok(run?.await?.rows_affected) }
    }
}

impl<'e, E: Executor, T: Table> IntoFuture for UpdateQuery<'e, E, T> {
    type Output = Result<u64>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<u64>> + Send + 'e>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

impl<T: Table> UpdateQuery<'_, Conn<'_>, T> {
    /// Runs the update; gives the rows changed.
    pub fn execute(self) -> Result<u64> {
        Ok(self
            .exec
            .execute(&self.update.build(self.exec.dialect())?)?
            .rows_affected)
    }
}

/// A `DELETE` bound to where it runs. Awaiting it gives the rows deleted.
#[must_use = "a delete does nothing until it is run"]
pub struct DeleteQuery<'e, E, T> {
    exec: &'e E,
    delete: Delete<T>,
}

impl<'e, E, T: Table> DeleteQuery<'e, E, T> {
    pub(crate) fn new(exec: &'e E, delete: Delete<T>) -> Self {
        DeleteQuery { exec, delete }
    }

    /// Deletes only the rows where `condition` holds.
    pub fn filter(self, condition: impl IntoExpr<bool>) -> Self {
        DeleteQuery {
            delete: self.delete.filter(condition),
            ..self
        }
    }
}

impl<'e, E: Executor, T: Table> DeleteQuery<'e, E, T> {
    /// Runs the delete; gives the rows deleted.
    pub fn execute(self) -> impl Future<Output = Result<u64>> + Send + 'e {
        self.exec
            .execute(self.delete.build(self.exec.dialect()))
            .map(|d| d.map(|d| d.rows_affected))
    }
}

impl<'e, E: Executor, T: Table> IntoFuture for DeleteQuery<'e, E, T> {
    type Output = Result<u64>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<u64>> + Send + 'e>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.execute())
    }
}

impl<T: Table> DeleteQuery<'_, Conn<'_>, T> {
    /// Runs the delete; gives the rows deleted.
    pub fn execute(self) -> Result<u64> {
        Ok(self
            .exec
            .execute(&self.delete.build(self.exec.dialect()))?
            .rows_affected)
    }
}
