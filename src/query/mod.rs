//! Typed expressions and statements, built as plain values that produce SQL
//! and arguments for a [`Dialect`] — and nothing else: this module does no
//! I/O and knows nothing about connections, threads or backends.
//!
//! Values are always bound parameters, never interpolated into the text.

mod cache;
mod copy;
mod delete;
mod dialect;
mod expr;
mod insert;
mod select;
mod update;
mod writer;

use std::borrow::Cow;

pub use cache::StatementCache;
pub use delete::Delete;
pub use dialect::Dialect;
pub use expr::{ColumnOf, Expr, IntoExpr, Ordering, count_all, custom};
pub use insert::{Insert, InsertMode, OnConflict};
pub use select::{Join, Select, SelectColumns, Selectable, SelectableItem};
pub use update::Update;

pub(crate) use copy::{RowRange, copy_rows};
pub(crate) use expr::Node;

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
    /// What the statement does, as far as its builder knows: decides which
    /// connection may run it.
    pub access: Access,
}

/// What a statement does to the database, as far as driftwood knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It may write: it runs on the writer.
    Write,
    /// It only reads (a built `SELECT`): outside a transaction it may run on
    /// a reader connection.
    Read,
    /// Raw SQL that returns rows: the backend asks SQLite whether it is a
    /// plain read before it sends it to a reader.
    Unknown,
}

impl Statement {
    /// A statement of this text and these arguments, treated as a write.
    pub fn new(sql: impl Into<Cow<'static, str>>, args: Vec<SqlValue>) -> Self {
        Statement {
            sql: sql.into(),
            args,
            access: Access::Write,
        }
    }

    /// The same statement, marked as only reading.
    pub(crate) fn reading(self) -> Self {
        self.with_access(Access::Read)
    }

    /// The same statement with this access.
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
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

/// `SELECT "a", "b" FROM "t" WHERE "key" = ?` over the first primary-key
/// column: one table, so unqualified — the shorter text is cheaper to look
/// up in the statement cache on every call.
pub(crate) fn find_sql<T: Table>(dialect: Dialect) -> String {
    let mut w = SqlWriter::new(dialect);
    w.push("SELECT ");
    w.idents(T::COLUMNS.iter().copied());
    w.push(" FROM ");
    w.ident(T::NAME);
    if let Some(&key) = T::PRIMARY_KEY.first() {
        w.push(" WHERE ");
        w.ident(T::COLUMNS[key]);
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
    Ok(Statement::new(T::statement_cache().find::<T>(dialect), vec![key]).reading())
}

/// Indexes of the columns a whole-row insert writes.
pub(crate) fn writable_columns<T: Table>() -> impl Iterator<Item = usize> {
    (0..T::COLUMNS.len()).filter(|i| !T::GENERATED.contains(i))
}

/// The qualified select list `"t"."a", "t"."b"`.
pub(crate) fn qualified_columns(table: &str, columns: &[&str]) -> String {
    let mut w = SqlWriter::new(Dialect::Sqlite);
    w.list(columns, |w, column| w.qualified(table, column));
    w.finish_sql()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{absent, set};

    #[derive(crate::Table, Debug, Clone, PartialEq)]
    #[table(name = "items")]
    struct Item {
        #[column(primary_key)]
        id: i64,
        name: String,
        parent: Option<i64>,
    }

    #[derive(crate::Table, Debug, Clone, PartialEq)]
    #[table(name = "tags")]
    struct Tag {
        #[column(primary_key)]
        id: i64,
        item: i64,
    }

    fn check(statement: Statement, sql: &str, args: &[SqlValue]) {
        assert_eq!(statement.sql, sql);
        assert_eq!(statement.args, args);
    }

    const COLS: &str = "\"items\".\"id\", \"items\".\"name\", \"items\".\"parent\"";

    #[test]
    fn plain_select_uses_the_cached_text() {
        let statement = Select::<Item>::from_table().build(Dialect::Sqlite);
        assert!(matches!(statement.sql, Cow::Borrowed(_)));
        check(statement, &format!("SELECT {COLS} FROM \"items\""), &[]);
    }

    #[test]
    fn filters_sorting_and_paging() {
        let select = Select::<Item>::from_table()
            .filter(Item::NAME.like("a%").or(Item::PARENT.is_null()))
            .filter(!Item::ID.is_in([1, 2]))
            .order_by(Item::NAME.desc())
            .limit(10)
            .offset(20);
        check(
            select.build(Dialect::Sqlite),
            &format!(
                "SELECT {COLS} FROM \"items\" WHERE ((\"items\".\"name\" LIKE ?) OR (\"items\".\"parent\" IS NULL)) \
                 AND (NOT (\"items\".\"id\" IN (?, ?))) ORDER BY \"items\".\"name\" DESC LIMIT 10 OFFSET 20"
            ),
            &[
                SqlValue::Text("a%".into()),
                SqlValue::Integer(1),
                SqlValue::Integer(2),
            ],
        );
    }

    #[test]
    fn postgres_numbers_its_placeholders() {
        let select = Select::<Item>::from_table().filter(Item::ID.gt(1).and(Item::NAME.ne("x")));
        let sql = select.build(Dialect::Postgres).sql;
        assert!(
            sql.ends_with("WHERE (\"items\".\"id\" > $1) AND (\"items\".\"name\" <> $2)"),
            "{sql}"
        );
    }

    #[test]
    fn joins_aggregates_casts_and_custom_expressions() {
        let joined = Select::<Item>::from_table().left_join::<Tag>(Tag::ITEM.eq(Item::ID));
        check(
            joined.build(Dialect::Sqlite),
            &format!(
                "SELECT {COLS}, \"tags\".\"id\", \"tags\".\"item\" FROM \"items\" LEFT JOIN \"tags\" ON \"tags\".\"item\" = \"items\".\"id\""
            ),
            &[],
        );
        let grouped = Select::<Item>::from_table()
            .columns((Item::PARENT, count_all(), Item::ID.cast::<String>()))
            .group_by(Item::PARENT)
            .having(custom::<bool>("count(*) > ?", [SqlValue::Integer(1)]));
        check(
            grouped.build(Dialect::Sqlite),
            "SELECT \"items\".\"parent\", COUNT(*), CAST(\"items\".\"id\" AS TEXT) FROM \"items\" \
             GROUP BY \"items\".\"parent\" HAVING count(*) > ?",
            &[SqlValue::Integer(1)],
        );
        let arithmetic = Select::<Item>::from_table()
            .filter((Item::ID * 2 + 1).eq(5))
            .build(Dialect::Sqlite);
        assert!(
            arithmetic
                .sql
                .ends_with("WHERE ((\"items\".\"id\" * ?) + ?) = ?"),
            "{}",
            arithmetic.sql
        );
    }

    #[test]
    fn inserts_with_modes_upserts_and_returning() {
        let item = ItemCompanion {
            name: set("a"),
            ..absent()
        };
        check(
            Insert::new(&item).build(Dialect::Sqlite),
            "INSERT INTO \"items\" (\"name\") VALUES (?)",
            &[SqlValue::Text("a".into())],
        );
        check(
            Insert::new(&item)
                .mode(InsertMode::OrIgnore)
                .build_returning(Dialect::Sqlite),
            "INSERT OR IGNORE INTO \"items\" (\"name\") VALUES (?) RETURNING \"id\", \"name\", \"parent\"",
            &[SqlValue::Text("a".into())],
        );
        let upsert = OnConflict::update_excluded::<Item>(&[&Item::ID], &[&Item::NAME]);
        let row = Item {
            id: 1,
            name: "b".into(),
            parent: None,
        };
        check(
            Insert::new(&row).on_conflict(upsert).build(Dialect::Sqlite),
            "INSERT INTO \"items\" (\"id\", \"name\", \"parent\") VALUES (?, ?, ?) \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\"",
            &[
                SqlValue::Integer(1),
                SqlValue::Text("b".into()),
                SqlValue::Null,
            ],
        );
        let empty = ItemCompanion::default();
        check(
            Insert::new(&empty).build(Dialect::Sqlite),
            "INSERT INTO \"items\" DEFAULT VALUES",
            &[],
        );
    }

    #[test]
    fn updates_and_deletes() {
        let update = Update::<Item>::new()
            .filter(Item::PARENT.eq(3))
            .set(&ItemCompanion {
                name: set("z"),
                ..absent()
            });
        check(
            update.build(Dialect::Sqlite).unwrap(),
            "UPDATE \"items\" SET \"name\" = ? WHERE \"items\".\"parent\" = ?",
            &[SqlValue::Text("z".into()), SqlValue::Integer(3)],
        );
        let row = Item {
            id: 7,
            name: "n".into(),
            parent: Some(1),
        };
        check(
            Update::replace(&row)
                .unwrap()
                .build(Dialect::Sqlite)
                .unwrap(),
            "UPDATE \"items\" SET \"name\" = ?, \"parent\" = ? WHERE \"items\".\"id\" = ?",
            &[
                SqlValue::Text("n".into()),
                SqlValue::Integer(1),
                SqlValue::Integer(7),
            ],
        );
        check(
            Delete::<Item>::new()
                .filter(Item::ID.ge(2))
                .build(Dialect::Sqlite),
            "DELETE FROM \"items\" WHERE \"items\".\"id\" >= ?",
            &[SqlValue::Integer(2)],
        );
        check(
            find_statement::<Item>(Dialect::Sqlite, SqlValue::Integer(4)).unwrap(),
            "SELECT \"id\", \"name\", \"parent\" FROM \"items\" WHERE \"id\" = ?",
            &[SqlValue::Integer(4)],
        );
    }
}
