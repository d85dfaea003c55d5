//! Batches: many statements run in one transaction and one round trip
//! (drift's `batch`). Repeated statements with the same text are prepared
//! once.

use std::borrow::Cow;

use crate::error::Result;
use crate::query::{Delete, Dialect, Insert, Statement, Update};
use crate::table::{Insertable, Table};
use crate::types::SqlValue;

/// Statements to run together. Build one, then pass it to
/// [`Runner::run_batch`](crate::Runner::run_batch).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Each entry: one statement text and the argument sets to run it with.
    pub(crate) entries: Vec<(Cow<'static, str>, Vec<Vec<SqlValue>>)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a statement.
    pub fn statement(&mut self, statement: Statement) -> &mut Self {
        match self.entries.last_mut() {
            Some((sql, arg_sets)) if *sql == statement.sql => arg_sets.push(statement.args),
            _ => self.entries.push((statement.sql, vec![statement.args])),
        }
        self
    }

    /// Adds raw SQL with arguments.
    pub fn custom_statement(&mut self, sql: impl Into<String>, args: Vec<SqlValue>) -> &mut Self {
        self.statement(Statement::new(sql.into(), args))
    }

    /// Adds an insert of a row or companion.
    pub fn insert<I: Insertable>(&mut self, row: I) -> &mut Self {
        self.statement(Insert::new(row).build(Dialect::Sqlite))
    }

    /// Adds an update.
    pub fn update<T: Table>(&mut self, update: &Update<T>) -> Result<&mut Self> {
        Ok(self.statement(update.build(Dialect::Sqlite)?))
    }

    /// Adds a replace of the row with `row`'s primary key.
    pub fn replace<T: Table>(&mut self, row: &T) -> Result<&mut Self> {
        Ok(self.statement(Update::replace(row)?.build(Dialect::Sqlite)?))
    }

    /// Adds a delete.
    pub fn delete<T: Table>(&mut self, delete: &Delete<T>) -> &mut Self {
        self.statement(delete.build(Dialect::Sqlite))
    }

    /// How many statements the batch runs.
    pub fn len(&self) -> usize {
        self.entries.iter().map(|(_, sets)| sets.len()).sum()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Runs the batch on a connection, in its current transaction or a new one.
    pub(crate) fn run_on(
        &self,
        conn: &crate::sqlite::Connection,
    ) -> Result<crate::sqlite::Execution> {
        conn.in_transaction_or_new(|| {
            let mut total = crate::sqlite::Execution::default();
            for (sql, arg_sets) in &self.entries {
                let done = conn.execute_many(sql, arg_sets.iter().map(Vec::as_slice))?;
                total.rows_affected += done.rows_affected;
                total.last_insert_id = done.last_insert_id;
            }
            Ok(total)
        })
    }
}
