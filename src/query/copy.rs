//! `INSERT INTO … SELECT …`: the statement a table rebuild copies rows with,
//! each target column taking an expression over the old table's row.

use super::expr::Node;
use super::writer::SqlWriter;
use super::{Dialect, Statement};
use crate::types::SqlValue;

/// A range of rows by rowid: after `after` (from the first row when
/// `None`) up to and including `up_to`; `rowid` is the name the rowid goes
/// by in the table (`rowid`, `_rowid_` or `oid`, whichever no column
/// takes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowRange<'a> {
    pub(crate) rowid: &'a str,
    pub(crate) after: Option<i64>,
    pub(crate) up_to: i64,
}

/// Copies rows of `from` into `into`: each of `columns` takes the matching
/// expression of `sources`, evaluated over the old row; with `rows`, only
/// the rows of that range.
pub(crate) fn copy_rows(
    dialect: Dialect,
    into: &str,
    columns: &[&str],
    sources: &[&Node],
    from: &str,
    rows: Option<RowRange<'_>>,
) -> Statement {
    let mut w = SqlWriter::new(dialect);
    w.push("INSERT INTO ");
    w.ident(into);
    w.push(" (");
    w.idents(columns.iter().copied());
    w.push(") SELECT ");
    for (i, source) in sources.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.node(source);
    }
    w.push(" FROM ");
    w.ident(from);
    if let Some(range) = rows {
        w.push(" WHERE ");
        if let Some(after) = range.after {
            w.push(range.rowid);
            w.push(" > ");
            w.arg(SqlValue::Integer(after));
            w.push(" AND ");
        }
        w.push(range.rowid);
        w.push(" <= ");
        w.arg(SqlValue::Integer(range.up_to));
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_columns_through_their_expressions_and_ranges_bind_values() {
        let id = Node::Column {
            table: "t",
            name: "id",
        };
        let cast = Node::Custom {
            sql: "CAST(\"c\" AS INTEGER)".into(),
            args: vec![],
        };
        let statement = copy_rows(
            Dialect::Sqlite,
            "new_t",
            &["id", "c"],
            &[&id, &cast],
            "t",
            Some(RowRange {
                rowid: "rowid",
                after: Some(10),
                up_to: 20,
            }),
        );
        assert_eq!(
            statement.sql,
            "INSERT INTO \"new_t\" (\"id\", \"c\") SELECT \"t\".\"id\", CAST(\"c\" AS INTEGER) FROM \"t\" WHERE rowid > ? AND rowid <= ?"
        );
        assert_eq!(
            statement.args,
            [SqlValue::Integer(10), SqlValue::Integer(20)]
        );
    }
}
