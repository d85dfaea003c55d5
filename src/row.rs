//! Result rows and their mapping to Rust values.
//!
//! A [`Row`] reads cells from wherever the result lives — a statement still
//! stepping on the connection, or values that crossed a thread or the wire
//! ([`OwnedRow`]) — through one small trait, so the same mapping code serves
//! every backend. [`FromRow`] turns a row into a value; tables implement it
//! through `#[derive(Table)]`, tuples of tables implement it for joins.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::types::{FromSql, SqlValue, ValueRef};

/// Where a row's cells come from. Backends implement it; users read rows
/// through [`Row`].
pub trait CellSource {
    /// The cell at `index` (0-based, within the whole result row), `None`
    /// past the last column.
    fn cell(&self, index: usize) -> Option<ValueRef<'_>>;
    /// The result column's name at `index`.
    fn column_name(&self, index: usize) -> &str;
    /// The number of result columns.
    fn column_count(&self) -> usize;
}

/// One result row, possibly a window into a wider row (the second table of a
/// join reads from an offset).
#[derive(Clone, Copy)]
pub struct Row<'a> {
    cells: Cells<'a>,
    offset: usize,
    sql: &'a str,
}

/// Where a row's cells are: a SQLite statement still stepping — read
/// directly, so mapping a row costs what it costs in plain rusqlite — or
/// any other [`CellSource`].
#[derive(Clone, Copy)]
enum Cells<'a> {
    Stepping {
        row: &'a rusqlite::Row<'a>,
        count: usize,
    },
    Source(&'a dyn CellSource),
}

impl<'a> Cells<'a> {
    #[inline]
    fn cell(self, index: usize) -> Option<ValueRef<'a>> {
        match self {
            Cells::Stepping { row, count } if index < count => {
                row.get_ref(index).ok().map(ValueRef::from)
            }
            Cells::Stepping { .. } => None,
            Cells::Source(source) => source.cell(index),
        }
    }

    fn column_name(self, index: usize) -> &'a str {
        match self {
            Cells::Stepping { row, .. } => row.as_ref().column_name(index).unwrap_or("?"),
            Cells::Source(source) => source.column_name(index),
        }
    }

    fn column_count(self) -> usize {
        match self {
            Cells::Stepping { count, .. } => count,
            Cells::Source(source) => source.column_count(),
        }
    }
}

impl<'a> Row<'a> {
    /// A row over `source`, produced by the statement `sql` (named in errors).
    pub fn new(source: &'a dyn CellSource, sql: &'a str) -> Self {
        Row {
            cells: Cells::Source(source),
            offset: 0,
            sql,
        }
    }

    /// A row of a SQLite statement that is stepping, with `count` columns.
    pub(crate) fn stepping(row: &'a rusqlite::Row<'a>, count: usize, sql: &'a str) -> Self {
        Row {
            cells: Cells::Stepping { row, count },
            offset: 0,
            sql,
        }
    }

    /// The same row, with column 0 moved to `offset`.
    pub fn shifted(&self, offset: usize) -> Row<'a> {
        Row {
            offset: self.offset + offset,
            ..*self
        }
    }

    /// The number of columns from this row's offset to the end.
    pub fn len(&self) -> usize {
        self.cells.column_count().saturating_sub(self.offset)
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw cell at `index`.
    #[inline]
    pub fn get_ref(&self, index: usize) -> Result<ValueRef<'a>> {
        match self.cells.cell(self.offset + index) {
            Some(value) => Ok(value),
            None => Err(self.out_of_range(index)),
        }
    }

    #[cold]
    fn out_of_range(&self, index: usize) -> Error {
        Error::invalid_argument(format!(
            "column index {index} is out of range: the row has {} columns (statement: {})",
            self.len(),
            self.sql
        ))
    }

    /// The cell at `index` as `T`.
    #[inline]
    pub fn get<T: FromSql>(&self, index: usize) -> Result<T> {
        let value = self.get_ref(index)?;
        T::from_sql(value).map_err(|e| self.mismatch(index, e))
    }

    #[cold]
    fn mismatch(&self, index: usize, e: crate::types::FromSqlError) -> Error {
        Error::TypeMismatch {
            column: self.cells.column_name(self.offset + index).to_owned(),
            expected: e.expected,
            found: e.found,
            sql: self.sql.to_owned(),
        }
    }

    /// The cell of the column called `name` as `T`.
    pub fn get_named<T: FromSql>(&self, name: &str) -> Result<T> {
        let index = (0..self.len())
            .find(|&i| self.column_name(i).eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::invalid_argument(format!("no column `{name}` in the result of {}", self.sql))
            })?;
        self.get(index)
    }

    /// The name of the result column at `index`.
    pub fn column_name(&self, index: usize) -> &'a str {
        self.cells.column_name(self.offset + index)
    }

    /// The statement this row came from.
    pub fn sql(&self) -> &'a str {
        self.sql
    }
}

/// A value built from one result row.
pub trait FromRow: Sized {
    /// Maps the row.
    fn from_row(row: &Row<'_>) -> Result<Self>;
}

/// A row value that always reads the same number of columns, so another
/// value can follow it in a wider row (joins).
pub trait FixedWidth {
    /// How many columns it reads.
    const WIDTH: usize;
}

impl<A: FromRow + FixedWidth, B: FromRow> FromRow for (A, B) {
    fn from_row(row: &Row<'_>) -> Result<Self> {
        Ok((A::from_row(row)?, B::from_row(&row.shifted(A::WIDTH))?))
    }
}

impl<A: FixedWidth, B: FixedWidth> FixedWidth for (A, B) {
    const WIDTH: usize = A::WIDTH + B::WIDTH;
}

/// A row read in full: every cell owned, with the column names (and the
/// statement) shared by all rows of the same result. What `custom_select`
/// returns.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedRow {
    columns: Arc<[String]>,
    values: Vec<SqlValue>,
    /// The statement the row came from, named in errors.
    sql: Option<Arc<str>>,
}

impl OwnedRow {
    /// A row of these values under these column names.
    pub fn new(columns: Arc<[String]>, values: Vec<SqlValue>) -> Self {
        OwnedRow {
            columns,
            values,
            sql: None,
        }
    }

    /// The same row, produced by the statement `sql` (named in errors).
    pub fn from_statement(self, sql: Arc<str>) -> Self {
        OwnedRow {
            sql: Some(sql),
            ..self
        }
    }

    /// The statement this row came from, if known.
    pub fn sql(&self) -> Option<&str> {
        self.sql.as_deref()
    }

    fn row(&self) -> Row<'_> {
        Row::new(self, self.sql.as_deref().unwrap_or("a row built by hand"))
    }

    /// The cell at `index` as `T`.
    pub fn get<T: FromSql>(&self, index: usize) -> Result<T> {
        self.row().get(index)
    }

    /// The cell of the column called `name` as `T`.
    pub fn get_named<T: FromSql>(&self, name: &str) -> Result<T> {
        self.row().get_named(name)
    }

    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The cells.
    pub fn values(&self) -> &[SqlValue] {
        &self.values
    }
}

impl CellSource for OwnedRow {
    fn cell(&self, index: usize) -> Option<ValueRef<'_>> {
        self.values.get(index).map(SqlValue::as_ref)
    }

    fn column_name(&self, index: usize) -> &str {
        self.columns.get(index).map_or("?", String::as_str)
    }

    fn column_count(&self) -> usize {
        self.values.len()
    }
}

/// A tuple of plain values read from the first columns of a row, as a
/// selection of columns or aggregates produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalars<T>(pub T);

macro_rules! scalar_tuples {
    ($(($($name:ident $idx:tt),+)),+) => {$(
        impl<$($name: FromSql),+> FromRow for Scalars<($($name,)+)> {
            fn from_row(row: &Row<'_>) -> Result<Self> {
                Ok(Scalars(($(row.get::<$name>($idx)?,)+)))
            }
        }
    )+};
}

scalar_tuples!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5)
);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<SqlValue>) -> OwnedRow {
        let names: Vec<String> = (0..values.len()).map(|i| format!("c{i}")).collect();
        OwnedRow::new(names.into(), values).from_statement("SELECT 1, NULL".into())
    }

    #[test]
    fn mismatches_name_the_column_and_statement() {
        let r = row(vec![SqlValue::Integer(1), SqlValue::Null]);
        assert_eq!(r.get::<i64>(0).unwrap(), 1);
        let err = r.get::<String>(1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `c1` holds NULL, expected TEXT (statement: SELECT 1, NULL)"
        );
        let err = r.get::<i64>(5).unwrap_err();
        assert!(
            err.to_string().contains("column index 5 is out of range"),
            "{err}"
        );
    }

    #[test]
    fn scalars_read_leading_columns() {
        let r = row(vec![SqlValue::Integer(3), SqlValue::Text("x".into())]);
        let Scalars((n, s)) = Scalars::<(i64, String)>::from_row(&Row::new(&r, "q")).unwrap();
        assert_eq!((n, s.as_str()), (3, "x"));
        assert_eq!(r.get_named::<String>("C1").unwrap(), "x");
    }
}
