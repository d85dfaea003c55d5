//! The seam between rusqlite's values and driftwood's: result rows read in
//! place as [`CellSource`]s, and arguments bound without copying.

use rusqlite::types::{ToSqlOutput, ValueRef as RValueRef};

use crate::row::CellSource;
use crate::types::{SqlValue, ValueRef};

/// A row of a statement that is still stepping.
pub(crate) struct StatementRow<'r, 's> {
    pub(crate) row: &'r rusqlite::Row<'s>,
    pub(crate) column_count: usize,
}

impl CellSource for StatementRow<'_, '_> {
    fn cell(&self, index: usize) -> Option<ValueRef<'_>> {
        if index >= self.column_count {
            return None;
        }
        Some(from_rusqlite(self.row.get_ref_unwrap(index)))
    }

    fn column_name(&self, index: usize) -> &str {
        self.row.as_ref().column_name(index).unwrap_or("?")
    }

    fn column_count(&self) -> usize {
        self.column_count
    }
}

/// Text that is not valid UTF-8 reads as a blob, so a `String` field reports
/// a type mismatch instead of garbling it.
pub(crate) fn from_rusqlite(value: RValueRef<'_>) -> ValueRef<'_> {
    match value {
        RValueRef::Null => ValueRef::Null,
        RValueRef::Integer(i) => ValueRef::Integer(i),
        RValueRef::Real(r) => ValueRef::Real(r),
        RValueRef::Text(t) => std::str::from_utf8(t).map_or(ValueRef::Blob(t), ValueRef::Text),
        RValueRef::Blob(b) => ValueRef::Blob(b),
    }
}

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
    from_rusqlite(value).to_owned()
}
