//! Typed expressions and statements, built as plain values that produce SQL
//! and arguments for a [`Dialect`] — and nothing else: this module does no
//! I/O and knows nothing about connections, threads or backends.
//!
//! Values are always bound parameters, never interpolated into the text.

mod delete;
mod dialect;
mod expr;
mod insert;
mod select;
mod update;
mod writer;

use std::borrow::Cow;

pub use delete::Delete;
pub use dialect::Dialect;
pub use expr::{ColumnOf, Expr, IntoExpr, Ordering, count_all, custom};
pub use insert::{Insert, InsertMode, OnConflict};
pub use select::{Join, Select, SelectColumns, Selectable, SelectableItem};
pub use update::Update;

use crate::table::Table;
use crate::types::SqlValue;
use writer::SqlWriter;

/// One SQL statement with its arguments, ready for an executor.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text, with placeholders in the dialect's style.
    pub sql: Cow<'static, str>,
    /// The arguments, in placeholder order.
    pub args: Vec<SqlValue>,
}

impl Statement {
    /// A statement of this text and these arguments.
    pub fn new(sql: impl Into<Cow<'static, str>>, args: Vec<SqlValue>) -> Self {
        Statement {
            sql: sql.into(),
            args,
        }
    }
}

/// `INSERT INTO "t" ("a", "b") VALUES (?, ?)` over every writable column.
pub(crate) fn whole_row_insert_sql<T: Table>(dialect: Dialect) -> String {
    let columns: Vec<usize> = writable_columns::<T>().collect();
    insert_sql::<T>(dialect, &columns)
}

/// `INSERT INTO "t" (…) VALUES (…)` over the columns at these indexes.
pub(crate) fn insert_sql<T: Table>(dialect: Dialect, columns: &[usize]) -> String {
    let mut w = SqlWriter::new(dialect);
    if columns.is_empty() {
        w.push("INSERT INTO ");
        w.ident(T::NAME);
        w.push(" DEFAULT VALUES");
        return w.finish_sql();
    }
    let names: Vec<&str> = columns.iter().map(|&i| T::COLUMNS[i]).collect();
    w.insert_head(InsertMode::Insert, T::NAME, &names);
    w.placeholders(names.len());
    w.finish_sql()
}

/// `SELECT <all columns> FROM "t" WHERE "t"."key" = ?` over the first
/// primary-key column.
pub(crate) fn find_sql<T: Table>(dialect: Dialect) -> String {
    let mut w = SqlWriter::new(dialect);
    w.push("SELECT ");
    w.push(T::statement_cache().columns::<T>());
    w.push(" FROM ");
    w.ident(T::NAME);
    if let Some(&key) = T::PRIMARY_KEY.first() {
        w.push(" WHERE ");
        w.qualified(T::NAME, T::COLUMNS[key]);
        w.push(" = ");
        w.arg(SqlValue::Null);
    }
    w.finish_sql()
}

/// The statement loading the row of `T` whose one-column primary key is
/// `key`, or why there is none.
pub(crate) fn find_statement<T: Table>(
    dialect: Dialect,
    key: SqlValue,
) -> crate::Result<Statement> {
    if T::PRIMARY_KEY.len() != 1 {
        return Err(crate::Error::invalid_argument(format!(
            "find needs a one-column primary key; table `{}` has {}",
            T::NAME,
            T::PRIMARY_KEY.len()
        )));
    }
    Ok(Statement::new(
        T::statement_cache().find::<T>(dialect),
        vec![key],
    ))
}

/// Indexes of the columns a whole-row insert writes.
pub(crate) fn writable_columns<T: Table>() -> impl Iterator<Item = usize> {
    (0..T::COLUMNS.len()).filter(|i| !T::GENERATED.contains(i))
}

/// The qualified select list `"t"."a", "t"."b"`.
pub(crate) fn qualified_columns(table: &str, columns: &[&str]) -> String {
    let mut w = SqlWriter::new(Dialect::Sqlite);
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.qualified(table, column);
    }
    w.finish_sql()
}
