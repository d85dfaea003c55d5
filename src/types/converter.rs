//! User type converters (drift's `TypeConverter`): store a Rust type that
//! SQLite does not know as one that it does.
//!
//! Implement [`TypeConverter`] on a marker type and use [`Converted<C>`] as
//! the field type, or implement [`ToSql`], [`FromSql`] and [`ColumnType`]
//! directly on a type of your own crate.

use std::fmt;
use std::marker::PhantomData;

use super::{ColumnType, FromSql, FromSqlError, SqlArg, SqlType, ToSql, ValueRef};

/// Converts between a Rust type and a column type SQLite can store.
///
/// ```
/// use driftwood::types::{Converted, TypeConverter};
///
/// /// Stores a list of tags as one comma-separated text column.
/// pub struct Tags;
///
/// impl TypeConverter for Tags {
///     type Rust = Vec<String>;
///     type Sql = String;
///     fn to_sql(value: &Vec<String>) -> String {
///         value.join(",")
///     }
///     fn from_sql(value: String) -> Result<Vec<String>, String> {
///         Ok(value.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
///     }
/// }
///
/// let tags: Converted<Tags> = Converted::new(vec!["a".into(), "b".into()]);
/// assert_eq!(tags.value(), &["a", "b"]);
/// ```
pub trait TypeConverter {
    /// The type the application works with.
    type Rust;
    /// The type stored in the column.
    type Sql: ColumnType;
    /// Converts an application value for storage.
    fn to_sql(value: &Self::Rust) -> Self::Sql;
    /// Converts a stored value back, or says why it cannot.
    fn from_sql(value: Self::Sql) -> Result<Self::Rust, String>;
}

/// A column value stored through the converter `C`.
pub struct Converted<C: TypeConverter> {
    value: C::Rust,
    converter: PhantomData<fn() -> C>,
}

impl<C: TypeConverter> Converted<C> {
    /// Wraps an application value.
    pub fn new(value: C::Rust) -> Self {
        Converted {
            value,
            converter: PhantomData,
        }
    }

    /// The application value.
    pub fn value(&self) -> &C::Rust {
        &self.value
    }

    /// Unwraps the application value.
    pub fn into_inner(self) -> C::Rust {
        self.value
    }
}

impl<C: TypeConverter> Clone for Converted<C>
where
    C::Rust: Clone,
{
    fn clone(&self) -> Self {
        Converted::new(self.value.clone())
    }
}

impl<C: TypeConverter> PartialEq for Converted<C>
where
    C::Rust: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<C: TypeConverter> fmt::Debug for Converted<C>
where
    C::Rust: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<C: TypeConverter> ToSql for Converted<C> {
    fn to_sql(&self) -> SqlArg<'_> {
        SqlArg::Owned(C::to_sql(&self.value).to_sql().into_owned())
    }
}

impl<C: TypeConverter> FromSql for Converted<C> {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        let stored = C::Sql::from_sql(value)?;
        C::from_sql(stored).map(Converted::new).map_err(|reason| {
            FromSqlError::mismatch(format!("a value its converter accepts ({reason})"), value)
        })
    }
}

impl<C: TypeConverter> ColumnType for Converted<C> {
    type Base = Self;
    const SQL_TYPE: SqlType = C::Sql::SQL_TYPE;
    const NULLABLE: bool = C::Sql::NULLABLE;
    fn check_constraint(column: &str) -> Option<String> {
        C::Sql::check_constraint(column)
    }
}
