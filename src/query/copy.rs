//! `INSERT INTO … SELECT …`: the statement a table rebuild copies rows with,
//! each target column taking an expression over the old table's row.

use super::expr::Node;
use super::writer::SqlWriter;
use super::{Dialect, Statement};
use crate::types::SqlValue;

/// Copies rows of `from` into `into`: each of `columns` takes the matching
/// expression of `sources`, evaluated over the old row; with `rowids`, only
/// rows whose rowid lies in `(after, up_to]`.
pub(crate) fn copy_rows(
    dialect: Dialect,
    into: &str,
    columns: &[&str],
    sources: &[&Node],
    from: &str,
    rowids: Option<(i64, i64)>,
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
    if let Some((after, up_to)) = rowids {
        w.push(" WHERE rowid > ");
        w.arg(SqlValue::Integer(after));
        w.push(" AND rowid <= ");
        w.arg(SqlValue::Integer(up_to));
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
            Some((10, 20)),
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
