//! Automatic migrations: the steps from the live schema to a target
//! schema, found from their differences (`schema::compare`), checked
//! against the data before anything changes, then run through the
//! [`Migrator`] — native `ALTER TABLE` where it does the job, the 12-step
//! rebuild otherwise — and verified against the target at the end.
//!
//! Renames are ambiguous, so they come only from hints
//! ([`AutoMigration::rename_table`], [`AutoMigration::rename_column`]).
//! Steps that lose data (dropping a table or column that holds values, a
//! cast that changes values) are refused, listing what would be lost,
//! unless allowed; a `NOT NULL` column without a default is refused for a
//! table that has rows. Column order alone is never a reason to rebuild.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::Migrator;
use super::rebuild::{Progress, TableMigration};
use crate::error::{Error, Result};
use crate::executor::Runner;
use crate::schema::sql::{drop_statement, quote_ident};
use crate::schema::{Entity, Schema, Table, compare};

/// How to migrate automatically: rename hints, what may be lost, and who
/// hears the progress of long rebuilds.
#[derive(Clone, Default)]
pub struct AutoMigration {
    table_renames: Vec<(String, String)>,
    column_renames: Vec<(String, String, String)>,
    allow_destructive: bool,
    allow_lossy_casts: bool,
    progress: Option<SharedProgress>,
}

/// A progress callback shared by the rebuilds of one migration.
type SharedProgress = Arc<Mutex<dyn FnMut(&Progress) + Send>>;

impl fmt::Debug for AutoMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoMigration")
            .field("table_renames", &self.table_renames)
            .field("column_renames", &self.column_renames)
            .field("allow_destructive", &self.allow_destructive)
            .field("allow_lossy_casts", &self.allow_lossy_casts)
            .finish_non_exhaustive()
    }
}

/// What an automatic migration does (or, planned, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutoPlan {
    /// The steps, in order, each one line (`ALTER TABLE …`, `rebuild
    /// table t: …`).
    pub steps: Vec<String>,
    /// What the migration loses: rows of dropped tables, values of
    /// dropped columns, values a cast changes.
    pub losses: Vec<String>,
}

impl fmt::Display for AutoPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return writeln!(f, "nothing to migrate");
        }
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        for loss in &self.losses {
            writeln!(f, "loses: {loss}")?;
        }
        Ok(())
    }
}

impl AutoMigration {
    /// No hints; nothing may be lost.
    pub fn new() -> Self {
        AutoMigration::default()
    }

    /// Table `from` of the live schema is `to` of the target.
    pub fn rename_table(mut self, from: &str, to: &str) -> Self {
        self.table_renames.push((from.to_owned(), to.to_owned()));
        self
    }

    /// Column `from` of `table` (its target name) is `to` in the target.
    pub fn rename_column(mut self, table: &str, from: &str, to: &str) -> Self {
        self.column_renames
            .push((table.to_owned(), from.to_owned(), to.to_owned()));
        self
    }

    /// Lets the migration drop tables and columns that hold data.
    pub fn allow_destructive(mut self, allow: bool) -> Self {
        self.allow_destructive = allow;
        self
    }

    /// Calls `progress` during each table rebuild (see
    /// [`TableMigration::on_progress`]).
    pub fn on_progress(mut self, progress: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.progress = Some(Arc::new(Mutex::new(progress)));
        self
    }

    /// Lets a retyped column's cast change values (`CAST('abc' AS
    /// INTEGER)` is 0).
    pub fn allow_lossy_casts(mut self, allow: bool) -> Self {
        self.allow_lossy_casts = allow;
        self
    }

    /// The plan from `m`'s live schema to `m`'s schema, checked against the
    /// data, without changing anything.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] when a step would lose data that is not allowed to
    /// be lost (listing it), or cannot work (a `NOT NULL` column without a
    /// default for a table with rows).
    pub fn plan(&self, m: &Migrator<'_>) -> Result<AutoPlan> {
        // The renames run (the checks read the data under the target's
        // names) in a savepoint that is always rolled back.
        let conn = m.connection();
        let level = conn.begin(crate::sqlite::TxKind::Immediate)?;
        let mut plan = AutoPlan::default();
        let result = crate::error::catch(|| self.steps(m, &mut plan, false));
        conn.rollback(level)?;
        result.map(|()| plan)
    }

    /// Runs the migration (in the caller's transaction: the opening one, for
    /// a migration step) and checks that the live schema then means the
    /// target; returns what it did.
    ///
    /// # Errors
    ///
    /// As [`AutoMigration::plan`], before anything changes; a failed step's
    /// error; [`Error::Schema`] if the result is not the target.
    pub fn run(&self, m: &Migrator<'_>) -> Result<AutoPlan> {
        self.plan(m)?;
        let mut plan = AutoPlan::default();
        self.steps(m, &mut plan, true)?;
        let diff = compare::compare(
            &super::read_back(m.schema())?,
            &m.connection().read_schema()?,
        );
        if !diff.is_empty() {
            return Err(Error::schema(format!(
                "the automatic migration did not reach the target schema:\n{diff}"
            )));
        }
        Ok(plan)
    }

    /// Finds the steps (checking the data), and runs them if `apply`.
    fn steps(&self, m: &Migrator<'_>, plan: &mut AutoPlan, apply: bool) -> Result<()> {
        let target = super::read_back(m.schema())?;
        let mut refusals = Vec::new();
        let live_schema = m.connection().read_schema()?;
        let run = |plan: &mut AutoPlan, sql: String| -> Result<()> {
            plan.steps.push(sql.clone());
            if apply {
                m.custom_statement(sql, [])?;
            }
            Ok(())
        };
        let rename = |plan: &mut AutoPlan, sql: String| -> Result<()> {
            plan.steps.push(sql.clone());
            m.custom_statement(sql, []).map(drop)
        };

        // Renames first: everything after compares under the new names.
        for (from, to) in &self.table_renames {
            if live_schema.table(from).is_some() && live_schema.table(to).is_none() {
                rename(
                    plan,
                    format!(
                        "ALTER TABLE {} RENAME TO {}",
                        quote_ident(from),
                        quote_ident(to)
                    ),
                )?;
            }
        }
        let renamed_table = |name: &str| -> String {
            self.table_renames
                .iter()
                .find(|(from, _)| from.eq_ignore_ascii_case(name))
                .map_or_else(|| name.to_owned(), |(_, to)| to.clone())
        };
        let mut live = Schema {
            entities: live_schema
                .entities
                .iter()
                .cloned()
                .map(|mut entity| {
                    if let Entity::Table(table) = &mut entity {
                        table.name = renamed_table(&table.name);
                    }
                    entity
                })
                .collect(),
        };
        for (table, from, to) in &self.column_renames {
            let Some(Entity::Table(live_table)) = live
                .entities
                .iter_mut()
                .find(|e| matches!(e, Entity::Table(t) if t.name.eq_ignore_ascii_case(table)))
            else {
                continue;
            };
            let Some(column) = live_table
                .columns
                .iter_mut()
                .find(|c| c.name.eq_ignore_ascii_case(from))
            else {
                continue;
            };
            column.name = to.clone();
            rename(
                plan,
                format!(
                    "ALTER TABLE {} RENAME COLUMN {} TO {}",
                    quote_ident(table),
                    quote_ident(from),
                    quote_ident(to)
                ),
            )?;
        }

        // Indexes, views, triggers and virtual tables that go or change
        // are dropped before the tables change, and created at the end.
        let differs = |a: &Entity, b: &Entity| {
            !compare::compare(&single(a.clone()), &single(b.clone())).is_empty()
        };
        let mut recreate = Vec::new();
        for entity in live
            .entities
            .iter()
            .filter(|e| !matches!(e, Entity::Table(_)))
        {
            let wanted = target.entity(entity.name());
            let changed = wanted.is_none_or(|wanted| differs(wanted, entity));
            if !changed {
                continue;
            }
            if let Entity::VirtualTable(virtual_table) = entity {
                let rows = count(
                    m,
                    &format!("SELECT count(*) FROM {}", quote_ident(&virtual_table.name)),
                )?;
                if rows > 0 {
                    let loss = format!("virtual table {}: {rows} rows", virtual_table.name);
                    self.lose(plan, &mut refusals, loss);
                }
            }
            let sql = drop_statement(entity);
            run(plan, sql)?;
            if let Some(wanted) = wanted {
                recreate.push(wanted.clone());
            }
        }

        // Tables.
        for wanted in target.tables() {
            match live.table(&wanted.name) {
                None => {
                    let sql = crate::schema::sql::create_statement(&Entity::Table(wanted.clone()));
                    run(plan, sql)?;
                }
                Some(found) => self.change_table(m, plan, &mut refusals, wanted, found, apply)?,
            }
        }
        for gone in live.tables().filter(|t| target.table(&t.name).is_none()) {
            let rows = count(
                m,
                &format!("SELECT count(*) FROM {}", quote_ident(&gone.name)),
            )?;
            if rows > 0 {
                self.lose(
                    plan,
                    &mut refusals,
                    format!("table {}: {rows} rows", gone.name),
                );
            }
            let sql = format!("DROP TABLE {}", quote_ident(&gone.name));
            run(plan, sql)?;
        }

        // New and changed indexes, views, triggers and virtual tables, in
        // the target's order.
        for entity in target
            .entities
            .iter()
            .filter(|e| !matches!(e, Entity::Table(_)))
        {
            let new = live.entity(entity.name()).is_none();
            if new
                || recreate
                    .iter()
                    .any(|r| r.name().eq_ignore_ascii_case(entity.name()))
            {
                let sql = crate::schema::sql::create_statement(entity);
                run(plan, sql)?;
            }
        }
        if refusals.is_empty() {
            return Ok(());
        }
        Err(Error::schema(format!(
            "the automatic migration is refused:\n{}",
            refusals.join("\n")
        )))
    }

    /// Notes a loss: allowed, or a refusal.
    fn lose(&self, plan: &mut AutoPlan, refusals: &mut Vec<String>, loss: String) {
        if !self.allow_destructive {
            refusals.push(format!(
                "{loss} would be lost (allow_destructive to drop them)"
            ));
        }
        plan.losses.push(loss);
    }

    /// The steps that bring table `found` to `wanted`.
    fn change_table(
        &self,
        m: &Migrator<'_>,
        plan: &mut AutoPlan,
        refusals: &mut Vec<String>,
        wanted: &Table,
        found: &Table,
        apply: bool,
    ) -> Result<()> {
        let diff = compare::compare(
            &single(Entity::Table(wanted.clone())),
            &single(Entity::Table(found.clone())),
        );
        if diff.is_empty() {
            return Ok(());
        }
        let name = quote_ident(&wanted.name);
        let rows = count(m, &format!("SELECT count(*) FROM {name}"))?;
        let column_of = |what: &str| {
            what.strip_prefix("column ")
                .filter(|c| !c.contains(':'))
                .map(str::to_owned)
        };
        let mut added = Vec::new();
        let mut dropped = Vec::new();
        let mut retyped = Vec::new();
        let mut only_columns = true;
        for difference in &diff.differences {
            match column_of(&difference.what) {
                Some(column) if difference.found == "missing" => added.push(column),
                Some(column) if difference.expected == "none" => dropped.push(column),
                _ => {
                    only_columns = false;
                    if let Some(column) = difference
                        .what
                        .strip_prefix("column ")
                        .and_then(|rest| rest.strip_suffix(": type"))
                    {
                        retyped.push(column.to_owned());
                    }
                }
            }
        }
        for column in &added {
            let definition = wanted
                .column(column)
                .expect("an added column is in the target");
            let no_value = !definition.nullable
                && definition.default.is_none()
                && definition.generated.is_none();
            if no_value && rows > 0 {
                refusals.push(format!(
                    "table {}: new column {column} is NOT NULL without a default, and the table \
                     has {rows} rows that would have no value",
                    wanted.name
                ));
            }
        }
        for column in wanted.columns.iter().filter(|c| c.unique) {
            let was_unique = found.column(&column.name).is_none_or(|c| c.unique);
            if was_unique {
                continue;
            }
            let quoted = quote_ident(&column.name);
            let duplicates = count(
                m,
                &format!("SELECT count({quoted}) - count(DISTINCT {quoted}) FROM {name}"),
            )?;
            if duplicates > 0 {
                refusals.push(format!(
                    "table {}: column {} becomes UNIQUE, but {duplicates} of its values repeat \
                     an earlier one",
                    wanted.name, column.name
                ));
            }
        }
        for column in &dropped {
            let values = count(
                m,
                &format!("SELECT count({}) FROM {name}", quote_ident(column)),
            )?;
            if values > 0 {
                self.lose(
                    plan,
                    refusals,
                    format!("column {}.{column}: {values} values", wanted.name),
                );
            }
        }
        let mut migration =
            TableMigration::new(&wanted.name).new_columns(added.iter().map(String::as_str));
        for column in &retyped {
            let to = wanted
                .column(column)
                .expect("a retyped column is in the target");
            // A column of no declared affinity keeps whatever it holds.
            if to.sql_type == crate::types::SqlType::Any {
                continue;
            }
            let cast = format!(
                "CAST({} AS {})",
                quote_ident(column),
                to.sql_type.sql_name()
            );
            let changed = count(
                m,
                &format!(
                    "SELECT count(*) FROM {name} WHERE {0} IS NOT NULL AND {cast} IS NOT {0}",
                    quote_ident(column)
                ),
            )?;
            if changed > 0 {
                let loss = format!(
                    "column {}.{column}: {changed} values change under {cast}",
                    wanted.name
                );
                if !self.allow_lossy_casts {
                    refusals.push(format!("{loss} (allow_lossy_casts to migrate anyway)"));
                }
                plan.losses.push(loss);
            }
            migration = migration.transform((wanted.name.as_str(), column.as_str()), cast);
        }
        let native = only_columns;
        let step = if native {
            let mut parts: Vec<String> = added.iter().map(|c| format!("add column {c}")).collect();
            parts.extend(dropped.iter().map(|c| format!("drop column {c}")));
            format!("alter table {}: {}", wanted.name, parts.join(", "))
        } else {
            let reasons: Vec<String> = diff.differences.iter().map(|d| d.what.clone()).collect();
            format!("rebuild table {} ({})", wanted.name, reasons.join("; "))
        };
        plan.steps.push(step);
        if !apply {
            return Ok(());
        }
        if native {
            let m = m.with_schema(Schema {
                entities: vec![Entity::Table(wanted.clone())],
            });
            for column in &dropped {
                m.drop_column((wanted.name.as_str(), column.as_str()))?;
            }
            for column in &added {
                m.add_column((wanted.name.as_str(), column.as_str()))?;
            }
            return Ok(());
        }
        if let Some(progress) = &self.progress {
            let progress = progress.clone();
            migration = migration.on_progress(move |p| {
                (progress.lock().unwrap_or_else(PoisonError::into_inner))(p);
            });
        }
        let m = m.with_schema(Schema {
            entities: vec![Entity::Table(wanted.clone())],
        });
        m.alter_table(migration)
    }
}

fn single(entity: Entity) -> Schema {
    Schema {
        entities: vec![entity],
    }
}

fn count(m: &Migrator<'_>, sql: &str) -> Result<i64> {
    m.custom_select(sql, [])?[0].get(0)
}

impl Migrator<'_> {
    /// Migrates the live schema to this migrator's schema automatically
    /// (see [`AutoMigration`]): "migrate to the schema of version N" as a
    /// step is `m.with_schema(snapshot.schema).migrate_automatically(&hints)`.
    pub fn migrate_automatically(&self, auto: &AutoMigration) -> Result<AutoPlan> {
        auto.run(self)
    }
}
