//! The seam between rusqlite's values and driftwood's: arguments bound
//! without copying, and cells copied out. (Result rows are read in place
//! through `Row::stepping`.)

use rusqlite::types::{ToSqlOutput, ValueRef as RValueRef};

use crate::types::{SqlValue, ValueRef};

/// An argument bound by reference.
pub(crate) struct Bind<'a>(pub(crate) ValueRef<'a>);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            ValueRef::Null => RValueRef::Null,
            ValueRef::Integer(i) => RValueRef::Integer(i),
            ValueRef::Real(r) => RValueRef::Real(r),
            ValueRef::Text(t) => RValueRef::Text(t.as_bytes()),
            ValueRef::Blob(b) => RValueRef::Blob(b),
        }))
    }
}

/// Copies a cell out of the connection.
pub(crate) fn owned(value: RValueRef<'_>) -> SqlValue {
    ValueRef::from(value).to_owned()
}
