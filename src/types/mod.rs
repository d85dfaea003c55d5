//! Rust ⇄ SQLite value mapping: the value model ([`SqlValue`], [`ValueRef`]),
//! the declared column types ([`SqlType`]) and the traits that convert Rust
//! values to arguments ([`ToSql`]) and back from result cells ([`FromSql`]).
//!
//! Every type that can be a column implements [`ColumnType`], which adds what
//! the schema needs to know: the SQL type, nullability and an optional check
//! constraint (booleans are `INTEGER` with `CHECK (col IN (0, 1))`, as drift
//! stores them).

mod converter;
mod enums;
#[cfg(feature = "json")]
mod json;
mod primitives;
#[cfg(feature = "time")]
mod time;
#[cfg(feature = "uuid")]
mod uuid;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use converter::{Converted, TypeConverter};
pub use enums::{IntEnum, TextEnum};
#[cfg(feature = "json")]
pub use json::Json;
#[cfg(feature = "time")]
pub use time::IsoDateTime;

/// The storage classes SQLite values can have, used as the declared type of a
/// column (`INTEGER`, `REAL`, `TEXT`, `BLOB`) and to describe values in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlType {
    /// A signed 64-bit integer (`INTEGER`).
    Integer,
    /// An IEEE 754 double (`REAL`).
    Real,
    /// UTF-8 text (`TEXT`).
    Text,
    /// Raw bytes (`BLOB`).
    Blob,
    /// No declared type affinity (`ANY` in STRICT tables, empty type otherwise).
    Any,
    /// `NUMERIC` affinity: text that looks like a number is stored as one
    /// (`NUMERIC`, `DECIMAL(10, 2)`, `BOOLEAN`, `DATETIME`, … in files made by
    /// other tools).
    Numeric,
}

impl SqlType {
    /// The type name as written in a `CREATE TABLE` column definition.
    pub fn sql_name(self) -> &'static str {
        match self {
            SqlType::Integer => "INTEGER",
            SqlType::Real => "REAL",
            SqlType::Text => "TEXT",
            SqlType::Blob => "BLOB",
            SqlType::Any => "ANY",
            SqlType::Numeric => "NUMERIC",
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// An owned SQLite value: what an argument or a result cell holds once it has
/// left the connection.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum SqlValue {
    /// SQL `NULL`.
    #[default]
    Null,
    /// An integer.
    Integer(i64),
    /// A floating point number.
    Real(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// Borrows this value as a [`ValueRef`].
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(r) => ValueRef::Real(*r),
            SqlValue::Text(t) => ValueRef::Text(t),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// A borrowed SQLite value: a result cell read in place, or an argument that
/// borrows from the Rust value it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating point number.
    Real(f64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

/// A cell read in place from SQLite. Text that is not valid UTF-8 reads as
/// a blob, so a `String` field reports a type mismatch instead of garbling.
impl<'a> From<rusqlite::types::ValueRef<'a>> for ValueRef<'a> {
    #[inline]
    fn from(value: rusqlite::types::ValueRef<'a>) -> Self {
        use rusqlite::types::ValueRef as Cell;
        match value {
            Cell::Null => ValueRef::Null,
            Cell::Integer(i) => ValueRef::Integer(i),
            Cell::Real(r) => ValueRef::Real(r),
            Cell::Text(t) => std::str::from_utf8(t).map_or(ValueRef::Blob(t), ValueRef::Text),
            Cell::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl ValueRef<'_> {
    /// The storage class of this value, `None` for `NULL`.
    pub fn sql_type(&self) -> Option<SqlType> {
        match self {
            ValueRef::Null => None,
            ValueRef::Integer(_) => Some(SqlType::Integer),
            ValueRef::Real(_) => Some(SqlType::Real),
            ValueRef::Text(_) => Some(SqlType::Text),
            ValueRef::Blob(_) => Some(SqlType::Blob),
        }
    }

    /// Copies this value into an owned [`SqlValue`].
    pub fn to_owned(&self) -> SqlValue {
        match *self {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Integer(i),
            ValueRef::Real(r) => SqlValue::Real(r),
            ValueRef::Text(t) => SqlValue::Text(t.to_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }
    }

    /// A short name of the value's kind for error messages (`"NULL"`, `"TEXT"`, …).
    pub fn kind_name(&self) -> &'static str {
        self.sql_type().map_or("NULL", SqlType::sql_name)
    }
}

/// Why a result cell could not become the requested Rust type. The row
/// mapping layer adds the column name and turns it into
/// [`Error::TypeMismatch`](crate::Error::TypeMismatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromSqlError {
    /// What the Rust side expected, e.g. `"INTEGER"` or `"TEXT (ISO-8601 date)"`.
    pub expected: String,
    /// What the cell held, e.g. `"NULL"` or `"TEXT 'abc'"`.
    pub found: String,
}

impl FromSqlError {
    /// A mismatch between the expected type and the value found.
    #[cold]
    pub fn mismatch(expected: impl Into<String>, found: ValueRef<'_>) -> Self {
        let found = match found {
            ValueRef::Null => "NULL".to_owned(),
            ValueRef::Integer(i) => format!("INTEGER {i}"),
            ValueRef::Real(r) => format!("REAL {r}"),
            ValueRef::Text(t) if t.len() <= 40 => format!("TEXT '{t}'"),
            ValueRef::Text(t) => format!("TEXT of {} bytes", t.len()),
            ValueRef::Blob(b) => format!("BLOB of {} bytes", b.len()),
        };
        FromSqlError {
            expected: expected.into(),
            found,
        }
    }
}

/// Converts a Rust value into an SQL argument.
///
/// Implementations borrow where they can ([`ValueRef`] inside
/// [`SqlArg::Borrowed`]) so binding a `String` field does not copy it.
pub trait ToSql {
    /// This value as an SQL argument.
    fn to_sql(&self) -> SqlArg<'_>;
}

/// An SQL argument: borrowed from a Rust value, or owned when a conversion had
/// to produce a new value (a date formatted as text, say).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlArg<'a> {
    /// A value borrowed from its source.
    Borrowed(ValueRef<'a>),
    /// A value made by the conversion.
    Owned(SqlValue),
}

impl SqlArg<'_> {
    /// The argument as a borrowed value.
    pub fn as_value_ref(&self) -> ValueRef<'_> {
        match self {
            SqlArg::Borrowed(v) => *v,
            SqlArg::Owned(v) => v.as_ref(),
        }
    }

    /// The argument as an owned value (copies borrowed text and bytes).
    pub fn into_owned(self) -> SqlValue {
        match self {
            SqlArg::Borrowed(v) => v.to_owned(),
            SqlArg::Owned(v) => v,
        }
    }
}

/// Reads a Rust value from a result cell.
pub trait FromSql: Sized {
    /// Converts the cell, or says why it cannot.
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError>;
}

/// A Rust type that can be the type of a column: it converts both ways and
/// tells the schema how the column is declared.
pub trait ColumnType: ToSql + FromSql {
    /// The type expressions over this column compare with: the type itself,
    /// or `T` for `Option<T>` (SQL comparisons treat `NULL` on their own).
    type Base;
    /// The declared SQL type of the column.
    const SQL_TYPE: SqlType;
    /// Whether the column accepts `NULL` (true for `Option<T>`).
    const NULLABLE: bool = false;
    /// A check constraint every value of this type satisfies, written for the
    /// column `column` (already quoted), e.g. `"done" IN (0, 1)` for `bool`.
    fn check_constraint(_column: &str) -> Option<String> {
        None
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> SqlArg<'_> {
        (**self).to_sql()
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(self.as_ref())
    }
}

impl FromSql for SqlValue {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        Ok(value.to_owned())
    }
}

/// A value of a `NUMERIC`-affinity column (a file made by another tool may
/// declare `NUMERIC`, `DECIMAL`, `BOOLEAN`, `DATETIME`, …): whatever
/// SQLite stored, after it turned number-like text into a number.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Numeric(pub SqlValue);

impl ToSql for Numeric {
    fn to_sql(&self) -> SqlArg<'_> {
        self.0.to_sql()
    }
}

impl FromSql for Numeric {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        SqlValue::from_sql(value).map(Numeric)
    }
}

impl ColumnType for Numeric {
    type Base = Numeric;
    const SQL_TYPE: SqlType = SqlType::Numeric;
}

/// A column of no declared affinity (`ANY`) holds whatever is stored.
impl ColumnType for SqlValue {
    type Base = SqlValue;
    const SQL_TYPE: SqlType = SqlType::Any;
}

impl ToSql for ValueRef<'_> {
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Borrowed(*self)
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> SqlArg<'_> {
        match self {
            Some(v) => v.to_sql(),
            None => SqlArg::Borrowed(ValueRef::Null),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Null => Ok(None),
            v => T::from_sql(v).map(Some),
        }
    }
}

impl<T: ColumnType> ColumnType for Option<T> {
    type Base = T::Base;
    const SQL_TYPE: SqlType = T::SQL_TYPE;
    const NULLABLE: bool = true;
    fn check_constraint(column: &str) -> Option<String> {
        T::check_constraint(column)
    }
}
