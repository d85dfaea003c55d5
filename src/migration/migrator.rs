//! [`Migrator`]: the operations a migration step runs, each one statement
//! or a table rebuild, against the schema of one version.
//!
//! Where SQLite's own `ALTER TABLE` does the job (`ADD COLUMN`, `DROP
//! COLUMN`, `RENAME COLUMN`, `RENAME TO`: schema-only or no copy), the
//! migrator uses it, and falls back to the 12-step rebuild exactly where
//! SQLite refuses; the `driftwood::migration` trace says which path ran.

use std::ops::Deref;

use super::checks::strings;
use super::rebuild::{self, TableMigration};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::executor::Runner;
use crate::schema::sql::{column_definition, create_statement, quote_ident};
use crate::schema::{Entity, Schema, Table, compare};
use crate::table::Column;
use crate::types::ColumnType;

/// Runs migration steps on the opening transaction's connection, against
/// a schema: the code's ([`Database::schema`](crate::Database::schema)) or
/// an older version's ([`Migrator::with_schema`], e.g. from a snapshot).
/// Dereferences to [`Conn`], so the whole typed query API is at hand.
pub struct Migrator<'c> {
    conn: Conn<'c>,
    schema: Schema,
}

/// A column named by its table and its own name: a typed [`Column`] handle
/// (`Todo::DUE_DATE`) or a pair of names (`("todos", "due_date")`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// The table's SQL name.
    pub table: String,
    /// The column's SQL name.
    pub column: String,
}

impl<T: crate::Table, V: ColumnType> From<Column<T, V>> for ColumnRef {
    fn from(column: Column<T, V>) -> Self {
        ColumnRef {
            table: column.table_name().to_owned(),
            column: column.name().to_owned(),
        }
    }
}

impl From<(&str, &str)> for ColumnRef {
    fn from((table, column): (&str, &str)) -> Self {
        ColumnRef {
            table: table.to_owned(),
            column: column.to_owned(),
        }
    }
}

impl<'c> Deref for Migrator<'c> {
    type Target = Conn<'c>;

    fn deref(&self) -> &Conn<'c> {
        &self.conn
    }
}

impl<'c> Migrator<'c> {
    /// A migrator working on `conn` against `schema`.
    pub fn new(conn: Conn<'c>, schema: Schema) -> Self {
        Migrator { conn, schema }
    }

    /// The schema the operations take definitions from.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The same connection against another schema: a step that rebuilds a
    /// table at version N says which definition it means (drift #2497),
    /// e.g. `m.with_schema(Snapshot::from_json(include_str!(…))?.schema)`.
    pub fn with_schema(&self, schema: Schema) -> Migrator<'c> {
        Migrator {
            conn: self.conn,
            schema,
        }
    }

    /// Creates every entity of the schema (drift's `createAll`).
    pub fn create_all(&self) -> Result<()> {
        super::create_all(&self.conn, &self.schema)
    }

    /// Creates the schema's entity called `name`: a table, index, view or
    /// trigger.
    pub fn create(&self, name: &str) -> Result<()> {
        let entity = self.entity(name)?;
        self.create_entity(&entity)
    }

    /// Creates `entity`.
    pub fn create_entity(&self, entity: &Entity) -> Result<()> {
        trace(entity.name(), "create", "native");
        self.custom_statement(create_statement(entity), [])
            .map(drop)
    }

    /// Drops the table, index, view or trigger called `name` from the
    /// database, if it exists.
    pub fn drop_entity(&self, name: &str) -> Result<()> {
        let kinds = self.custom_select(
            "SELECT type FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE",
            [crate::types::SqlValue::Text(name.to_owned())],
        )?;
        let Some(kind) = strings(&kinds)?.into_iter().next() else {
            return Ok(());
        };
        trace(name, "drop", "native");
        let sql = format!(
            "DROP {} IF EXISTS {}",
            kind.to_ascii_uppercase(),
            quote_ident(name)
        );
        self.custom_statement(sql, []).map(drop)
    }

    /// Adds a column, defined as in the schema, to its table (`ALTER TABLE
    /// … ADD COLUMN`; a rebuild where SQLite refuses: a non-constant default,
    /// `PRIMARY KEY`, `UNIQUE`, a stored generated column).
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when the column is `NOT NULL` without a default:
    /// existing rows would have no value.
    pub fn add_column(&self, column: impl Into<ColumnRef>) -> Result<()> {
        let ColumnRef { table, column } = column.into();
        let definition = self
            .schema_table(&table)?
            .column(&column)
            .cloned()
            .ok_or_else(|| {
                schema_error(format!("the schema's table {table} has no column {column}"))
            })?;
        if !definition.nullable && definition.default.is_none() && definition.generated.is_none() {
            return Err(schema_error(format!(
                "cannot add column {column} to {table}: it is NOT NULL without a default, so \
                 existing rows would have no value (give it a default, or use alter_table with a \
                 transformer)"
            )));
        }
        let strict = self.custom_select(
            "SELECT 1 FROM pragma_table_list WHERE name = ?1 COLLATE NOCASE AND strict",
            [crate::types::SqlValue::Text(table.clone())],
        )?;
        let sql = format!(
            "ALTER TABLE {} ADD COLUMN {}",
            quote_ident(&table),
            column_definition(&definition, !strict.is_empty())
        );
        match self.custom_statement(sql, []) {
            Ok(_) => {
                trace(&table, "add column", "native");
                Ok(())
            }
            Err(error) if refused_by_sqlite(&error) => {
                tracing::info!(target: "driftwood::migration", table, column, %error, "ADD COLUMN refused by SQLite: rebuilding");
                let mut target = self.live_table(&table)?;
                target.columns.push(definition);
                rebuild::run(
                    self,
                    &target,
                    TableMigration::new(&table).new_column(&column),
                )
            }
            Err(error) => Err(error),
        }
    }

    /// Drops a column (`ALTER TABLE … DROP COLUMN`; a rebuild where SQLite
    /// refuses because the column is a key, unique or has a foreign key).
    /// An index, view or trigger that uses the column fails the rebuild
    /// with SQLite's message: drop or change it first.
    pub fn drop_column(&self, column: impl Into<ColumnRef>) -> Result<()> {
        let ColumnRef { table, column } = column.into();
        let found = self.custom_select(
            "SELECT 1 FROM pragma_table_xinfo(?1) WHERE name = ?2 COLLATE NOCASE",
            [
                crate::types::SqlValue::Text(table.clone()),
                crate::types::SqlValue::Text(column.clone()),
            ],
        )?;
        if found.is_empty() {
            return Err(schema_error(format!(
                "table {table} has no column {column}"
            )));
        }
        let sql = format!(
            "ALTER TABLE {} DROP COLUMN {}",
            quote_ident(&table),
            quote_ident(&column)
        );
        match self.custom_statement(sql, []) {
            Ok(_) => {
                trace(&table, "drop column", "native");
                Ok(())
            }
            Err(error) if refused_by_sqlite(&error) => {
                tracing::info!(target: "driftwood::migration", table, column, %error, "DROP COLUMN refused by SQLite: rebuilding");
                let target = without_column(self.live_table(&table)?, &column);
                rebuild::run(self, &target, TableMigration::new(&table))
            }
            Err(error) => Err(error),
        }
    }

    /// Renames a column (`ALTER TABLE … RENAME COLUMN`, which also rewrites
    /// the indexes, views and triggers that name it).
    pub fn rename_column(&self, table: &str, from: &str, to: &str) -> Result<()> {
        trace(table, "rename column", "native");
        let sql = format!(
            "ALTER TABLE {} RENAME COLUMN {} TO {}",
            quote_ident(table),
            quote_ident(from),
            quote_ident(to)
        );
        self.custom_statement(sql, []).map(drop)
    }

    /// Renames a table (`ALTER TABLE … RENAME TO`, which also rewrites the
    /// references to it).
    pub fn rename_table(&self, from: &str, to: &str) -> Result<()> {
        trace(from, "rename table", "native");
        let sql = format!(
            "ALTER TABLE {} RENAME TO {}",
            quote_ident(from),
            quote_ident(to)
        );
        self.custom_statement(sql, []).map(drop)
    }

    /// Drops and recreates every view of the schema, in order (drift's
    /// `recreateAllViews`): after a change to a table a view reads.
    pub fn recreate_all_views(&self) -> Result<()> {
        let views: Vec<&Entity> = self
            .schema
            .entities
            .iter()
            .filter(|e| matches!(e, Entity::View(_)))
            .collect();
        for view in &views {
            self.drop_entity(view.name())?;
        }
        for view in views {
            self.create_entity(view)?;
        }
        Ok(())
    }

    /// Rebuilds a table into its definition in the schema, copying its
    /// rows (SQLite's 12-step procedure; drift's `alterTable`): see
    /// [`TableMigration`].
    /// Where the live table differs from its definition only in which
    /// columns accept `NULL`, SQLite's `ALTER COLUMN … SET/DROP NOT NULL`
    /// does it without copying a row.
    pub fn alter_table(&self, migration: TableMigration) -> Result<()> {
        let target = self.schema_table(&migration.table)?.clone();
        if migration.copies_plainly() && self.only_nullability_differs(&target)? {
            return self.transaction(|_| self.change_nullability(&target));
        }
        rebuild::run(self, &target, migration)
    }

    /// Whether the live table means `target` once some columns' `NOT
    /// NULL` changes (compared as `validate_database_schema` compares).
    fn only_nullability_differs(&self, target: &Table) -> Result<bool> {
        let Ok(mut live) = self.live_table(&target.name) else {
            return Ok(false);
        };
        let mut changes = 0;
        for column in live.columns.iter_mut().filter(|c| !c.primary_key) {
            if let Some(wanted) = target.column(&column.name)
                && wanted.nullable != column.nullable
            {
                column.nullable = wanted.nullable;
                changes += 1;
            }
        }
        if changes == 0 {
            return Ok(false);
        }
        let expected = super::read_back(&Schema {
            entities: vec![Entity::Table(target.clone())],
        })?;
        let found = Schema {
            entities: vec![Entity::Table(live)],
        };
        Ok(compare(&expected, &found).is_empty())
    }

    fn change_nullability(&self, target: &Table) -> Result<()> {
        let live = self.live_table(&target.name)?;
        for column in live.columns.iter().filter(|c| !c.primary_key) {
            let Some(wanted) = target.column(&column.name) else {
                continue;
            };
            if wanted.nullable == column.nullable {
                continue;
            }
            if !wanted.nullable {
                let nulls: i64 = self.custom_select(
                    format!(
                        "SELECT count(*) FROM {} WHERE {} IS NULL",
                        quote_ident(&target.name),
                        quote_ident(&column.name)
                    ),
                    [],
                )?[0]
                    .get(0)?;
                if nulls > 0
                    && let Some(default) = &wanted.default
                {
                    // Rows without a value take the default, as a copy
                    // through IFNULL(column, default) would give them.
                    self.custom_statement(
                        format!(
                            "UPDATE {} SET {} = {default} WHERE {} IS NULL",
                            quote_ident(&target.name),
                            quote_ident(&column.name),
                            quote_ident(&column.name)
                        ),
                        [],
                    )?;
                } else if nulls > 0 {
                    return Err(schema_error(format!(
                        "cannot make column {} of {} NOT NULL: it holds {nulls} NULL value(s); \
                         give it a transformer (e.g. IFNULL({}, …)) in the TableMigration",
                        column.name, target.name, column.name
                    )));
                }
            }
            let sql = format!(
                "ALTER TABLE {} ALTER COLUMN {} {} NOT NULL",
                quote_ident(&target.name),
                quote_ident(&column.name),
                if wanted.nullable { "DROP" } else { "SET" }
            );
            self.custom_statement(sql, [])?;
        }
        trace(&target.name, "alter table (nullability)", "native");
        Ok(())
    }

    /// Drops every table, view, index and trigger (for
    /// [`Database::ERASE_ON_SCHEMA_CHANGE`](crate::Database::ERASE_ON_SCHEMA_CHANGE)).
    pub(crate) fn erase_all(&self) -> Result<()> {
        let rows = self.custom_select(
            "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND sql IS NOT NULL \
             AND name NOT IN (SELECT name FROM pragma_table_list WHERE type = 'shadow') \
             ORDER BY CASE type WHEN 'trigger' THEN 0 WHEN 'view' THEN 1 \
             WHEN 'index' THEN 2 ELSE 3 END, rowid DESC",
            [],
        )?;
        for row in rows {
            let kind: String = row.get(0)?;
            let name: String = row.get(1)?;
            let sql = format!(
                "DROP {} IF EXISTS {}",
                kind.to_ascii_uppercase(),
                quote_ident(&name)
            );
            self.custom_statement(sql, [])?;
        }
        Ok(())
    }

    /// The schema's entity called `name`.
    fn entity(&self, name: &str) -> Result<Entity> {
        self.schema.entity(name).cloned().ok_or_else(|| {
            schema_error(format!(
                "the schema has no table, index, view or trigger {name}"
            ))
        })
    }

    /// The schema's table called `name`.
    fn schema_table(&self, name: &str) -> Result<&Table> {
        self.schema
            .table(name)
            .ok_or_else(|| schema_error(format!("the schema has no table {name}")))
    }

    /// The table as the database has it now.
    pub(crate) fn live_table(&self, name: &str) -> Result<Table> {
        self.connection()
            .read_table(name)?
            .ok_or_else(|| schema_error(format!("the database has no table {name}")))
    }
}

/// `table` without `column`, and without the table constraints naming it.
fn without_column(mut table: Table, column: &str) -> Table {
    let named = |c: &String| c.eq_ignore_ascii_case(column);
    table
        .columns
        .retain(|c| !c.name.eq_ignore_ascii_case(column));
    table.primary_key.retain(|c| !named(c));
    table.unique_keys.retain(|key| !key.iter().any(named));
    table
        .foreign_keys
        .retain(|fk| !fk.columns.iter().any(named));
    table
}

/// Whether SQLite refused an `ALTER TABLE` it cannot do natively (rather
/// than failing for another reason).
fn refused_by_sqlite(error: &Error) -> bool {
    let message = error.to_string();
    [
        "Cannot add a",
        "cannot add a",
        "cannot drop",
        "Cannot drop",
        "in foreign key definition",
    ]
    .iter()
    .any(|refusal| message.contains(refusal))
}

fn schema_error(message: String) -> Error {
    Error::Schema { message }
}

/// Says in the trace what ran and which path it took.
pub(crate) fn trace(table: &str, operation: &str, path: &str) {
    tracing::info!(target: "driftwood::migration", table, operation, path);
}
