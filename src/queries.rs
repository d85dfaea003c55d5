//! Queries bound to where they run: a pure builder from [`crate::query`]
//! plus the [`Runner`] it will run on. Every builder has one set of
//! finishing methods (`get`, `execute`, …), written over the runner's mode:
//! they give a [`Pending`](crate::Pending) future on an executor (`Db`,
//! `Transaction`) and the `Result` at once on a `Conn`.

use std::future::IntoFuture;

use crate::Pending;
use crate::executor::{Executor, Output, Runner};
use crate::plan::{self, Plan};
use crate::query::{
    Delete, Insert, InsertMode, IntoExpr, OnConflict, Ordering, Select, SelectColumns, Selectable,
    Update,
};
use crate::row::{FromRow, Scalars};
use crate::sqlite::Execution;
use crate::table::{Insertable, Table};

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

    /// Where it runs, and the pure statement builder.
    pub(crate) fn into_parts(self) -> (&'e E, Select<R>) {
        (self.exec, self.select)
    }
}

impl<E: Runner, R: FromRow + Send + 'static> SelectQuery<'_, E, R> {
    /// Every matching row.
    pub fn get(self) -> Output<E, Vec<R>> {
        let statement = self.select.build(self.exec.dialect());
        self.exec.run_plan(Plan::rows(statement, plan::all::<R>))
    }

    /// The one matching row; [`Error::NoRows`](crate::Error::NoRows) or
    /// [`Error::TooManyRows`](crate::Error::TooManyRows) otherwise.
    pub fn get_single(self) -> Output<E, R> {
        let statement = self.select.build(self.exec.dialect());
        self.exec.run_plan(Plan::rows(statement, plan::single::<R>))
    }

    /// The matching row if there is one;
    /// [`Error::TooManyRows`](crate::Error::TooManyRows) if there are more.
    pub fn get_optional(self) -> Output<E, Option<R>> {
        let statement = self.select.build(self.exec.dialect());
        self.exec
            .run_plan(Plan::rows(statement, plan::optional::<R>))
    }

    /// The number of matching rows.
    pub fn count(self) -> Output<E, i64> {
        let statement = self.select.count().build(self.exec.dialect());
        self.exec.run_plan(Plan::rows(statement, plan::count))
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
    /// Where it runs, and the pure statement builder.
    pub(crate) fn into_parts(self) -> (&'e E, SelectColumns<O>) {
        (self.exec, self.select)
    }

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

impl<E: Runner, O: Send + 'static> ColumnsQuery<'_, E, O>
where
    Scalars<O>: FromRow,
{
    /// Every result row.
    pub fn get(self) -> Output<E, Vec<O>> {
        let statement = self.select.build(self.exec.dialect());
        self.exec
            .run_plan(Plan::rows(statement, plan::scalars::<O>))
    }

    /// The one result row.
    pub fn get_single(self) -> Output<E, O> {
        let statement = self.select.build(self.exec.dialect());
        self.exec
            .run_plan(Plan::rows(statement, plan::single_scalar::<O>))
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

impl<E: Runner, I: Insertable> InsertQuery<'_, E, I> {
    /// Runs the insert; gives what it did.
    pub fn execute(self) -> Output<E, Execution> {
        self.exec
            .run_plan(Plan::execute(self.insert.build(self.exec.dialect())))
    }

    /// Runs the insert; gives the new row's id.
    pub fn id(self) -> Output<E, i64> {
        let statement = self.insert.build(self.exec.dialect());
        self.exec
            .run_plan(Plan::done(statement, |done| done.last_insert_id))
    }

    /// Runs the insert with `RETURNING`; gives the row as stored (defaults
    /// and generated id filled in). [`Error::NoRows`](crate::Error::NoRows)
    /// if a conflict mode skipped it.
    pub fn returning(self) -> Output<E, I::Table> {
        let statement = self.insert.build_returning(self.exec.dialect());
        self.exec
            .run_plan(Plan::rows(statement, plan::single::<I::Table>))
    }
}

impl<E: Executor, I: Insertable> IntoFuture for InsertQuery<'_, E, I> {
    type Output = crate::Result<i64>;
    type IntoFuture = Pending<i64>;
    fn into_future(self) -> Pending<i64> {
        self.id()
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

impl<E: Runner, T: Table> UpdateQuery<'_, E, T> {
    /// Runs the update; gives what it did.
    pub fn execute(self) -> Output<E, Execution> {
        self.exec
            .run_built(self.update.build(self.exec.dialect()), Plan::execute)
    }
}

impl<E: Executor, T: Table> IntoFuture for UpdateQuery<'_, E, T> {
    type Output = crate::Result<u64>;
    type IntoFuture = Pending<u64>;
    /// Runs the update; gives the rows changed.
    fn into_future(self) -> Pending<u64> {
        self.exec
            .run_built(self.update.build(self.exec.dialect()), |statement| {
                Plan::done(statement, |done| done.rows_affected)
            })
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

impl<E: Runner, T: Table> DeleteQuery<'_, E, T> {
    /// Runs the delete; gives what it did.
    pub fn execute(self) -> Output<E, Execution> {
        self.exec
            .run_plan(Plan::execute(self.delete.build(self.exec.dialect())))
    }
}

impl<E: Executor, T: Table> IntoFuture for DeleteQuery<'_, E, T> {
    type Output = crate::Result<u64>;
    type IntoFuture = Pending<u64>;
    /// Runs the delete; gives the rows deleted.
    fn into_future(self) -> Pending<u64> {
        let statement = self.delete.build(self.exec.dialect());
        self.exec
            .run_plan(Plan::done(statement, |done| done.rows_affected))
    }
}
