//! The 12-step table rebuild (SQLite's "making other kinds of table schema
//! changes"; drift's `alterTable`): create the new definition under a
//! temporary name, copy the rows through per-column expressions, drop what
//! depends on the old table, swap the tables, recreate indexes, triggers
//! and views, keep the AUTOINCREMENT counter, check foreign keys.
//!
//! Rows are copied inside SQLite with `INSERT … SELECT`, never through
//! Rust values; with a progress callback the copy runs in rowid ranges so
//! the callback hears how far it got. Everything is checked before any
//! data is touched: a new `NOT NULL` column without a default or
//! transformer, a transformer for a column the table does not have.

use super::checks;
use super::migrator::{ColumnRef, Migrator, trace};
use crate::error::{Error, Result};
use crate::executor::Runner;
use crate::query::{Dialect, Expr, Node, RowRange, copy_rows};
use crate::schema::Table;
use crate::schema::sql::{create_table, quote_ident};
use crate::types::SqlValue;

/// Rows copied per statement when a progress callback listens.
const CHUNK_ROWS: i64 = 50_000;

/// How to rebuild one table (drift's `TableMigration`): which expression
/// fills each column from the old row (`column_transformer`; by default a
/// column of the same name) and which columns are new (they take their
/// default, `NULL`, or a transformer).
///
/// ```
/// # use driftwood::migration::TableMigration;
/// // category was text; it becomes a nullable integer.
/// let migration = TableMigration::new("todos")
///     .transform(("todos", "category"), "CAST(category AS INTEGER)");
/// ```
pub struct TableMigration {
    pub(crate) table: String,
    transforms: Vec<(String, Transform)>,
    new_columns: Vec<String>,
    progress: Option<ProgressCallback>,
}

/// What [`TableMigration::on_progress`] calls.
type ProgressCallback = Box<dyn FnMut(&Progress) + Send>;

/// The expression a rebuilt column takes, over the old table's row: a
/// typed [`Expr`] (`Todo::CATEGORY.cast::<i64>()`) or raw SQL (an old
/// column's name, for a rename).
#[derive(Debug, Clone)]
pub struct Transform(Node);

impl<V> From<Expr<V>> for Transform {
    fn from(expr: Expr<V>) -> Self {
        Transform(expr.node)
    }
}

impl From<&str> for Transform {
    fn from(sql: &str) -> Self {
        Transform(Node::Custom {
            sql: sql.to_owned(),
            args: Vec::new(),
        })
    }
}

impl From<String> for Transform {
    fn from(sql: String) -> Self {
        Transform(Node::Custom {
            sql,
            args: Vec::new(),
        })
    }
}

/// How far a rebuild got, for [`TableMigration::on_progress`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The table being rebuilt.
    pub table: String,
    /// The step running.
    pub step: Step,
    /// Rows copied so far.
    pub rows_copied: u64,
    /// Rows the old table holds.
    pub rows_total: u64,
}

/// A step of the rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Creating the new table under a temporary name.
    Creating,
    /// Copying rows (reported after every range).
    Copying,
    /// Dropping the old table and what depends on it, renaming the new one.
    Swapping,
    /// Recreating indexes, triggers and views.
    Recreating,
    /// Checking foreign keys.
    Checking,
    /// Done.
    Done,
}

impl TableMigration {
    /// A rebuild of `table` into the migrator's definition of it.
    pub fn new(table: &str) -> Self {
        TableMigration {
            table: table.to_owned(),
            transforms: Vec::new(),
            new_columns: Vec::new(),
            progress: None,
        }
    }

    /// A rebuild of table `T`.
    pub fn of<T: crate::Table>() -> Self {
        TableMigration::new(T::NAME)
    }

    /// Fills `column` from `source`, an expression over the old row.
    pub fn transform(mut self, column: impl Into<ColumnRef>, source: impl Into<Transform>) -> Self {
        self.transforms.push((column.into().column, source.into()));
        self
    }

    /// Declares `column` new: it is not copied from the old table and takes
    /// its default (or `NULL`, or a transformer).
    pub fn new_column(mut self, column: &str) -> Self {
        self.new_columns.push(column.to_owned());
        self
    }

    /// Declares every one of `columns` new (see [`TableMigration::new_column`]).
    pub fn new_columns<'a>(mut self, columns: impl IntoIterator<Item = &'a str>) -> Self {
        self.new_columns
            .extend(columns.into_iter().map(str::to_owned));
        self
    }

    /// Calls `progress` after each step and each range of copied rows.
    /// Copying in ranges costs a little more than one statement; without a
    /// callback the copy is one statement.
    pub fn on_progress(mut self, progress: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Whether it only copies columns of the same name (no transformer,
    /// no new column): then SQLite's own `ALTER` may do the job.
    pub(crate) fn copies_plainly(&self) -> bool {
        self.transforms.is_empty() && self.new_columns.is_empty()
    }

    fn transform_of(&self, column: &str) -> Option<&Transform> {
        self.transforms
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(column))
            .map(|(_, transform)| transform)
    }

    fn is_new(&self, column: &str) -> bool {
        self.new_columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(column))
    }
}

/// A `sqlite_schema` row that depends on the table being rebuilt.
struct Dependent {
    kind: String,
    name: String,
    sql: String,
}

/// Rebuilds `migration.table` into `target` (whose name it keeps), in a
/// savepoint of its own: if it fails, the table is as it was, whatever the
/// caller does with the error.
pub(crate) fn run(m: &Migrator<'_>, target: &Table, migration: TableMigration) -> Result<()> {
    m.transaction(|_| rebuild(m, target, migration))
}

fn rebuild(m: &Migrator<'_>, target: &Table, mut migration: TableMigration) -> Result<()> {
    let table = migration.table.clone();
    let fail = |message: String| Error::Schema {
        message: format!("cannot rebuild table {table}: {message}"),
    };
    let old_columns: Vec<OldColumn> = m
        .custom_select(
            "SELECT name, \"notnull\" FROM pragma_table_xinfo(?1)",
            [SqlValue::Text(table.clone())],
        )?
        .iter()
        .map(|row| {
            Ok(OldColumn {
                name: row.get(0)?,
                nullable: !row.get::<bool>(1)?,
            })
        })
        .collect::<Result<_>>()?;
    if old_columns.is_empty() {
        return Err(fail("the database has no such table".into()));
    }
    // Check everything before touching data.
    let total: i64 =
        m.custom_select(format!("SELECT count(*) FROM {}", quote_ident(&table)), [])?[0].get(0)?;
    let plan = plan_copy(&migration, target, &old_columns, total == 0).map_err(fail)?;
    for column in &plan.must_hold_values {
        let nulls: i64 = m.custom_select(
            format!(
                "SELECT count(*) FROM {} WHERE {} IS NULL",
                quote_ident(&table),
                quote_ident(column)
            ),
            [],
        )?[0]
            .get(0)?;
        if nulls > 0 {
            return Err(fail(format!(
                "column {column} holds {nulls} NULL value(s) but is NOT NULL without a default in \
                 the new definition: give it a transformer (e.g. IFNULL({column}, …))"
            )));
        }
    }
    let CopyPlan {
        columns, sources, ..
    } = plan;
    let mut progress = Progress {
        table: table.clone(),
        step: Step::Creating,
        rows_copied: 0,
        rows_total: total as u64,
    };
    let mut callback = migration.progress.take();
    let listened = callback.is_some();
    let mut report = |progress: &Progress| {
        tracing::debug!(target: "driftwood::migration", table = progress.table, step = ?progress.step, rows_copied = progress.rows_copied, rows_total = progress.rows_total);
        if let Some(callback) = callback.as_mut() {
            callback(progress);
        }
    };
    trace(&table, "rebuild", "12-step rebuild");
    let sequence = saved_sequence(m, &table)?;
    let temporary = format!("_driftwood_new_{table}");
    let mut new_table = target.clone();
    new_table.name = temporary.clone();
    report(&progress);
    m.custom_statement(create_table(&new_table), [])?;

    progress.step = Step::Copying;
    // Implicit rowids are kept too (an FTS index or a reference may name
    // them); a rowid alias column is copied like any column.
    let rowid = rowid_name(m, &table, target, &old_columns)?;
    let mut columns = columns;
    let mut sources = sources;
    if let Some(name) = rowid.filter(|_| !target.without_rowid && rowid_alias(target).is_none()) {
        columns.insert(0, name.to_owned());
        sources.insert(
            0,
            Node::Custom {
                sql: name.to_owned(),
                args: Vec::new(),
            },
        );
    }
    let column_names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let source_nodes: Vec<&Node> = sources.iter().collect();
    let copy = |rows| {
        let statement = copy_rows(
            Dialect::Sqlite,
            &temporary,
            &column_names,
            &source_nodes,
            &table,
            rows,
        );
        m.connection()
            .execute(&statement)
            .map(|done| done.rows_affected)
            .map_err(|error| {
                // Name the user's table, not the temporary one.
                let message = error
                    .to_string()
                    .replace(&temporary, &format!("{table} (new definition)"));
                fail(format!(
                    "copying its rows into the new definition failed: {message}"
                ))
            })
    };
    match rowid.filter(|_| listened) {
        Some(rowid) => {
            // Ranges of CHUNK_ROWS rows (not of rowid values, which may be
            // sparse), each ending at the rowid found CHUNK_ROWS rows on.
            let mut after = None;
            loop {
                let (filter, args) = match after {
                    Some(after) => (
                        format!("WHERE {rowid} > ?1"),
                        vec![SqlValue::Integer(after)],
                    ),
                    None => (String::new(), Vec::new()),
                };
                let end = m.custom_select(
                    format!(
                        "SELECT coalesce((SELECT {rowid} FROM {0} {filter} ORDER BY {rowid} \
                         LIMIT 1 OFFSET {1}), (SELECT max({rowid}) FROM {0} {filter}))",
                        quote_ident(&table),
                        CHUNK_ROWS - 1
                    ),
                    args,
                )?;
                let Some(up_to) = end[0].get::<Option<i64>>(0)? else {
                    break;
                };
                progress.rows_copied += copy(Some(RowRange {
                    rowid,
                    after,
                    up_to,
                }))?;
                report(&progress);
                if up_to == i64::MAX {
                    break;
                }
                after = Some(up_to);
            }
        }
        None => {
            progress.rows_copied = copy(None)?;
            report(&progress);
        }
    }

    progress.step = Step::Swapping;
    report(&progress);
    let dependents = dependents(m, &table)?;
    for dependent in dependents.iter().rev() {
        let sql = format!(
            "DROP {} IF EXISTS {}",
            dependent.kind.to_ascii_uppercase(),
            quote_ident(&dependent.name)
        );
        m.custom_statement(sql, [])?;
    }
    m.custom_statement(format!("DROP TABLE {}", quote_ident(&table)), [])?;
    m.custom_statement(
        format!(
            "ALTER TABLE {} RENAME TO {}",
            quote_ident(&temporary),
            quote_ident(&table)
        ),
        [],
    )?;

    progress.step = Step::Recreating;
    report(&progress);
    for dependent in &dependents {
        // As it was; where that no longer works (it used a column the new
        // definition lacks), as the migrator's schema defines it.
        let Err(error) = m.custom_statement(dependent.sql.clone(), []) else {
            continue;
        };
        let defined = m
            .schema()
            .entity(&dependent.name)
            .filter(|entity| !matches!(entity, crate::schema::Entity::Table(_)))
            .map(crate::schema::sql::create_statement);
        let recreated = match defined {
            Some(sql) => m.custom_statement(sql, []).map(drop),
            None => Err(error),
        };
        recreated.map_err(|error| {
            fail(format!(
                "recreating {} {} after the rebuild failed: {error}; drop or change it before \
                 the rebuild",
                dependent.kind, dependent.name
            ))
        })?;
    }
    if let Some(sequence) = sequence {
        restore_sequence(m, &table, sequence)?;
    }

    progress.step = Step::Checking;
    report(&progress);
    let mut checked = vec![table.clone()];
    checked.extend(referencing_tables(m, &table)?);
    checks::foreign_keys_of(m, &checked).map_err(|error| match error {
        Error::Schema { message } => fail(message),
        other => other,
    })?;
    progress.step = Step::Done;
    report(&progress);
    Ok(())
}

/// A column of the table as the database has it.
struct OldColumn {
    name: String,
    nullable: bool,
}

/// What the copy fills and from what.
struct CopyPlan {
    /// The new table's columns that are filled, in order.
    columns: Vec<String>,
    /// The expression each takes over the old row.
    sources: Vec<Node>,
    /// Columns copied as they are from a nullable column into a `NOT
    /// NULL` one without a default: the old rows must hold no `NULL`.
    must_hold_values: Vec<String>,
}

/// The columns of the new table that are filled and the expression each
/// takes; refuses what cannot work, naming the column. A nullable column
/// that becomes `NOT NULL` with a default is copied through
/// `IFNULL(column, default)`.
fn plan_copy(
    migration: &TableMigration,
    target: &Table,
    old_columns: &[OldColumn],
    empty: bool,
) -> std::result::Result<CopyPlan, String> {
    for (column, _) in &migration.transforms {
        match target.column(column) {
            None => {
                return Err(format!(
                    "a transformer is given for column {column}, which the new definition does not have"
                ));
            }
            Some(c) if c.generated.is_some() => {
                return Err(format!(
                    "column {column} is generated: it is computed, never copied, so it takes no transformer"
                ));
            }
            Some(_) => {}
        }
    }
    let mut plan = CopyPlan {
        columns: Vec::new(),
        sources: Vec::new(),
        must_hold_values: Vec::new(),
    };
    for column in target.columns.iter().filter(|c| c.generated.is_none()) {
        let name = &column.name;
        let old = old_columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .filter(|_| !migration.is_new(name));
        let source = match (migration.transform_of(name), old) {
            (Some(Transform(node)), _) => node.clone(),
            (None, Some(old)) => {
                let plain = quote_ident(name);
                let sql = match (
                    &column.default,
                    old.nullable && !column.nullable && !column.primary_key,
                ) {
                    (Some(default), true) => format!("IFNULL({plain}, {default})"),
                    (None, true) => {
                        plan.must_hold_values.push(name.clone());
                        plain
                    }
                    (_, false) => plain,
                };
                Node::Custom {
                    sql,
                    args: Vec::new(),
                }
            }
            // An empty table has no rows that would lack a value.
            (None, None) if column.nullable || column.default.is_some() || empty => continue,
            (None, None) if migration.is_new(name) => {
                return Err(format!(
                    "new column {name} is NOT NULL without a default or a transformer: existing rows would have no value"
                ));
            }
            (None, None) => {
                return Err(format!(
                    "column {name} is not in the old table and is NOT NULL without a default: name \
                     it in new_columns with a default, or give it a transformer"
                ));
            }
        };
        plan.columns.push(name.clone());
        plan.sources.push(source);
    }
    Ok(plan)
}

/// Everything that must be dropped before the old table goes and created
/// again after the new one takes its name, in creation order: its indexes
/// and triggers, every view (a view may read the table through another),
/// the triggers on views, and the triggers of other tables that name it.
fn dependents(m: &Migrator<'_>, table: &str) -> Result<Vec<Dependent>> {
    let rows = m.custom_select(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL \
         AND type IN ('index', 'trigger', 'view') ORDER BY rowid",
        [],
    )?;
    let views: Vec<String> = rows
        .iter()
        .filter(|row| row.get::<String>(0).is_ok_and(|kind| kind == "view"))
        .map(|row| row.get::<String>(1))
        .collect::<Result<_>>()?;
    let mut dependents = Vec::new();
    for row in &rows {
        let kind: String = row.get(0)?;
        let name: String = row.get(1)?;
        let on: String = row.get(2)?;
        let sql: String = row.get(3)?;
        let own = on.eq_ignore_ascii_case(table);
        let keep = match kind.as_str() {
            "index" => own,
            "view" => true,
            _ => own || views.iter().any(|v| v.eq_ignore_ascii_case(&on)) || names(&sql, table),
        };
        if keep {
            dependents.push(Dependent { kind, name, sql });
        }
    }
    Ok(dependents)
}

/// Whether `sql` names `table` as a word (quoted or not; a quote inside
/// the name is doubled when quoted).
fn names(sql: &str, table: &str) -> bool {
    table.contains('"') && names_as_written(sql, &table.replace('"', "\"\""))
        || names_as_written(sql, table)
}

fn names_as_written(sql: &str, table: &str) -> bool {
    let sql = sql.to_ascii_lowercase();
    let table = table.to_ascii_lowercase();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    sql.match_indices(&table).any(|(at, _)| {
        let before = sql.as_bytes().get(at.wrapping_sub(1)).copied();
        let after = sql.as_bytes().get(at + table.len()).copied();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The tables with a foreign key pointing at `table`.
fn referencing_tables(m: &Migrator<'_>, table: &str) -> Result<Vec<String>> {
    let rows = m.custom_select(
        "SELECT DISTINCT s.name FROM sqlite_schema s, pragma_foreign_key_list(s.name) f \
         WHERE s.type = 'table' AND f.\"table\" = ?1 COLLATE NOCASE AND s.name <> ?1 COLLATE NOCASE",
        [SqlValue::Text(table.to_owned())],
    )?;
    checks::strings(&rows)
}

/// The name the old table's rowid goes by (`rowid`, `_rowid_` or `oid`,
/// the first that neither the old nor the new table uses as a column);
/// `None` for a `WITHOUT ROWID` table or when all three are columns.
fn rowid_name(
    m: &Migrator<'_>,
    table: &str,
    target: &Table,
    old_columns: &[OldColumn],
) -> Result<Option<&'static str>> {
    let taken = |name: &str| {
        old_columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
            || target.column(name).is_some()
    };
    let Some(name) = ["rowid", "_rowid_", "oid"].into_iter().find(|n| !taken(n)) else {
        return Ok(None);
    };
    let has_rowid = m
        .custom_select(
            format!("SELECT {name} FROM {} LIMIT 0", quote_ident(table)),
            [],
        )
        .is_ok();
    Ok(has_rowid.then_some(name))
}

/// The column that is the rowid of `table` (a one-column `INTEGER PRIMARY
/// KEY` of a rowid table).
fn rowid_alias(table: &Table) -> Option<&str> {
    let keys = table.primary_key_columns();
    let [key] = keys.as_slice() else {
        return None;
    };
    table
        .column(key)
        .filter(|c| c.sql_type == crate::types::SqlType::Integer && !table.without_rowid)
        .map(|c| c.name.as_str())
}

/// The AUTOINCREMENT counter of `table`, if it has one: dropping the table
/// forgets it, and a reset counter would hand out the ids of deleted rows
/// again.
fn saved_sequence(m: &Migrator<'_>, table: &str) -> Result<Option<i64>> {
    let exists = m.custom_select(
        "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'",
        [],
    )?;
    if exists.is_empty() {
        return Ok(None);
    }
    let rows = m.custom_select(
        "SELECT seq FROM sqlite_sequence WHERE name = ?1 COLLATE NOCASE",
        [SqlValue::Text(table.to_owned())],
    )?;
    rows.first().map(|row| row.get(0)).transpose()
}

fn restore_sequence(m: &Migrator<'_>, table: &str, sequence: i64) -> Result<()> {
    let updated = m.custom_statement(
        "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1 COLLATE NOCASE",
        [
            SqlValue::Text(table.to_owned()),
            SqlValue::Integer(sequence),
        ],
    )?;
    if updated.rows_affected == 0 {
        m.custom_statement(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, ?2 WHERE EXISTS \
             (SELECT 1 FROM sqlite_schema WHERE name = ?1 AND sql LIKE '%AUTOINCREMENT%')",
            [
                SqlValue::Text(table.to_owned()),
                SqlValue::Integer(sequence),
            ],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_name_counts_only_as_a_whole_word() {
        assert!(names(
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM \"Todos\"; END",
            "todos"
        ));
        assert!(!names(
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM todos_archive; END",
            "todos"
        ));
    }
}
