//! [`Plan`]: one statement and how its results become a value — the
//! contract between the typed API and every backend: statements in, rows
//! out.
//!
//! A backend runs the statement and feeds what it produced to the plan's
//! [`Collect`]: the [`Execution`] of a statement that returns no rows, or
//! the result rows one by one through a [`Cursor`]. The folds are plain
//! `fn` items, so a plan is `Send + 'static`, costs no allocation, and maps
//! rows in place wherever the connection lives: on the caller's thread, on
//! a server thread, or (later) on the client side of a socket over rows
//! that crossed it.

use crate::error::{Error, Result};
use crate::query::Statement;
use crate::row::{FromRow, OwnedRow, Row, Scalars};
use crate::sqlite::Execution;
use crate::sqlite::policy::Restriction;

/// A statement and how its results become a `T`. Built by the typed API;
/// run by a backend.
pub struct Plan<T> {
    pub(crate) statement: Statement,
    pub(crate) collect: Collect<T>,
    /// Set for a remote client's statement: what the connection must refuse.
    pub(crate) restriction: Option<Restriction>,
    /// What must live as long as the plan: a remote request's share of the
    /// server's memory budget, given back when the job holding the plan is
    /// done with it (run, skipped or dropped), not when its caller gave up.
    pub(crate) held: Option<Box<dyn Send + Sync>>,
}

/// How a plan turns what its statement produced into its value.
pub(crate) enum Collect<T> {
    /// Run the statement to completion; the value comes from what it did.
    Done(fn(Execution) -> T),
    /// Step the result rows and fold them into the value.
    Rows(fn(&mut dyn Cursor, &str) -> Result<T>),
}

impl<T> Collect<T> {
    /// The address of the fold: plans with the same statement and fold
    /// give the same value.
    pub(crate) fn address(&self) -> usize {
        match self {
            Collect::Done(finish) => *finish as usize,
            Collect::Rows(fold) => *fold as usize,
        }
    }
}

impl<T> Clone for Plan<T> {
    /// The same statement and fold; what the plan holds stays with it.
    fn clone(&self) -> Self {
        Plan {
            statement: self.statement.clone(),
            collect: self.collect,
            restriction: self.restriction,
            held: None,
        }
    }
}

impl<T> Clone for Collect<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Collect<T> {}

/// Result rows, handed out one at a time.
pub(crate) trait Cursor {
    /// Calls `visit` with the next row; `false` once there are none.
    fn next_row(&mut self, visit: &mut dyn FnMut(&Row<'_>) -> Result<()>) -> Result<bool>;
}

impl<T> Plan<T> {
    /// A plan folding `statement`'s rows with `fold`.
    pub(crate) fn rows(statement: Statement, fold: fn(&mut dyn Cursor, &str) -> Result<T>) -> Self {
        Plan {
            statement,
            collect: Collect::Rows(fold),
            restriction: None,
            held: None,
        }
    }

    /// A plan reading `statement`'s [`Execution`] with `finish`.
    pub(crate) fn done(statement: Statement, finish: fn(Execution) -> T) -> Self {
        Plan {
            statement,
            collect: Collect::Done(finish),
            restriction: None,
            held: None,
        }
    }
}

impl Plan<Execution> {
    /// Runs `statement` for what it does.
    pub(crate) fn execute(statement: Statement) -> Self {
        Plan::done(statement, |done| done)
    }
}

/// Every row, mapped.
pub(crate) fn all<R: FromRow>(rows: &mut dyn Cursor, _sql: &str) -> Result<Vec<R>> {
    let mut out = Vec::new();
    while rows.next_row(&mut |row| {
        out.push(R::from_row(row)?);
        Ok(())
    })? {}
    Ok(out)
}

/// The first row, mapped; later rows are never stepped.
pub(crate) fn first<R: FromRow>(rows: &mut dyn Cursor, _sql: &str) -> Result<Option<R>> {
    let mut out = None;
    rows.next_row(&mut |row| {
        out = Some(R::from_row(row)?);
        Ok(())
    })?;
    Ok(out)
}

/// The first row if there is at most one; [`Error::TooManyRows`] otherwise.
pub(crate) fn optional<R: FromRow>(rows: &mut dyn Cursor, sql: &str) -> Result<Option<R>> {
    let found = first(rows, sql)?;
    if found.is_some() && rows.next_row(&mut |_| Ok(()))? {
        return Err(Error::TooManyRows {
            sql: sql.to_owned(),
        });
    }
    Ok(found)
}

/// The one row; [`Error::NoRows`] or [`Error::TooManyRows`] otherwise.
pub(crate) fn single<R: FromRow>(rows: &mut dyn Cursor, sql: &str) -> Result<R> {
    optional(rows, sql)?.ok_or_else(|| Error::NoRows {
        sql: sql.to_owned(),
    })
}

/// Every row of a column selection, unwrapped from its [`Scalars`].
pub(crate) fn scalars<O>(rows: &mut dyn Cursor, sql: &str) -> Result<Vec<O>>
where
    Scalars<O>: FromRow,
{
    Ok(all::<Scalars<O>>(rows, sql)?
        .into_iter()
        .map(|Scalars(o)| o)
        .collect())
}

/// The one row of a column selection.
pub(crate) fn single_scalar<O>(rows: &mut dyn Cursor, sql: &str) -> Result<O>
where
    Scalars<O>: FromRow,
{
    single::<Scalars<O>>(rows, sql).map(|Scalars(o)| o)
}

/// The one number a `count(*)` returns.
pub(crate) fn count(rows: &mut dyn Cursor, sql: &str) -> Result<i64> {
    single_scalar::<(i64,)>(rows, sql).map(|(n,)| n)
}

/// Every row copied out with its column names, for raw SQL.
pub(crate) fn owned_rows(rows: &mut dyn Cursor, sql: &str) -> Result<Vec<OwnedRow>> {
    let sql: std::sync::Arc<str> = sql.into();
    let mut names: Option<std::sync::Arc<[String]>> = None;
    let mut out = Vec::new();
    while rows.next_row(&mut |row| {
        let names = names.get_or_insert_with(|| {
            (0..row.len())
                .map(|i| row.column_name(i).to_owned())
                .collect()
        });
        let values = (0..row.len())
            .map(|i| row.get_ref(i).map(|v| v.to_owned()))
            .collect::<Result<_>>()?;
        out.push(OwnedRow::new(names.clone(), values).from_statement(sql.clone()));
        Ok(())
    })? {}
    Ok(out)
}
