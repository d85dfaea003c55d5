//! The buffer statements are written into: SQL text, arguments and the
//! dialect's placeholder numbering in one place.

use super::Dialect;
use super::expr::Node;
use super::insert::InsertMode;
use crate::schema::sql::push_ident;
use crate::types::SqlValue;

pub(crate) struct SqlWriter {
    sql: String,
    args: Vec<SqlValue>,
    dialect: Dialect,
}

impl SqlWriter {
    pub(crate) fn new(dialect: Dialect) -> Self {
        SqlWriter {
            sql: String::with_capacity(128),
            args: Vec::new(),
            dialect,
        }
    }

    pub(crate) fn push(&mut self, text: &str) {
        self.sql.push_str(text);
    }

    pub(crate) fn ident(&mut self, name: &str) {
        push_ident(&mut self.sql, name);
    }

    pub(crate) fn qualified(&mut self, table: &str, column: &str) {
        push_ident(&mut self.sql, table);
        self.sql.push('.');
        push_ident(&mut self.sql, column);
    }

    pub(crate) fn arg(&mut self, value: SqlValue) {
        self.args.push(value);
        self.dialect
            .push_placeholder(&mut self.sql, self.args.len());
    }

    /// Writes `items` separated by `, `, each with `write`.
    pub(crate) fn list<I>(
        &mut self,
        items: impl IntoIterator<Item = I>,
        mut write: impl FnMut(&mut Self, I),
    ) {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            write(self, item);
        }
    }

    /// Writes the identifiers `names` separated by `, `.
    pub(crate) fn idents<'n>(&mut self, names: impl IntoIterator<Item = &'n str>) {
        self.list(names, |w, name| w.ident(name));
    }

    /// `(?, ?, …)` for `count` arguments that the caller binds itself.
    pub(crate) fn placeholders(&mut self, count: usize) {
        self.push("(");
        self.list(1..=count, |w, n| w.dialect.push_placeholder(&mut w.sql, n));
        self.push(")");
    }

    pub(crate) fn insert_head(&mut self, mode: InsertMode, table: &str, columns: &[&str]) {
        self.push(mode.sql());
        self.push(" INTO ");
        self.ident(table);
        self.push(" (");
        self.idents(columns.iter().copied());
        self.push(") VALUES ");
    }

    pub(crate) fn node(&mut self, node: &Node) {
        node.write(self);
    }

    pub(crate) fn finish(self) -> super::Statement {
        super::Statement::new(self.sql, self.args)
    }

    pub(crate) fn finish_sql(self) -> String {
        self.sql
    }

    pub(crate) fn extend_args(&mut self, args: impl IntoIterator<Item = SqlValue>) {
        self.args.extend(args);
    }
}
