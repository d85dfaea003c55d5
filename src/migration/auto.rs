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
    /// Foreign keys SQLite cannot check, with what driftwood's own check
    /// of them found.
    pub warnings: Vec<String>,
}

impl fmt::Display for AutoPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            writeln!(f, "nothing to migrate")?;
        }
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        for loss in &self.losses {
            writeln!(f, "loses: {loss}")?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
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

    /// What the migration from `m`'s live schema to `m`'s schema would do
    /// and lose: it runs, whole, in a savepoint that is always rolled back,
    /// so a plan that would fail fails here too (a check or a key the data
    /// breaks) and nothing changes.
    ///
    /// # Errors
    ///
    /// As [`AutoMigration::run`].
    pub fn plan(&self, m: &Migrator<'_>) -> Result<AutoPlan> {
        super::rolled_back(m.connection(), || self.apply(m, &Counts::default()))
    }

    /// Runs the migration (in the caller's transaction: the opening one, for
    /// a migration step) and checks that the live schema then means the
    /// target; returns what it did.
    ///
    /// # Errors
    ///
    /// [`Error::Schema`] before anything changes when a step would lose
    /// data that is not allowed to be lost (listing it) or cannot work (a
    /// `NOT NULL` column without a default for a table with rows, a column
    /// becoming `UNIQUE` over repeated values); a failed step's error;
    /// foreign-key violations; [`Error::Schema`] if the result is not the
    /// target.
    pub fn run(&self, m: &Migrator<'_>) -> Result<AutoPlan> {
        // The data checks first, cheaply (no step runs but the renames, in
        // a savepoint rolled back), so a refusal comes before any work.
        // The applying pass reuses the checking pass's counts: each is taken
        // just before its table changes, where both passes see the same rows.
        let counts = Counts::default();
        super::rolled_back(m.connection(), || {
            self.steps(m, &counts, &mut AutoPlan::default(), false)
        })?;
        self.apply(m, &counts)
    }

    /// Runs the steps, then checks the result: the target, and foreign keys.
    fn apply(&self, m: &Migrator<'_>, counts: &Counts) -> Result<AutoPlan> {
        let mut plan = AutoPlan::default();
        self.steps(m, counts, &mut plan, true)?;
        let diff = compare::compare(
            &super::read_back(m.schema())?,
            &m.connection().read_schema()?,
        );
        if !diff.is_empty() {
            return Err(Error::schema(format!(
                "the automatic migration did not reach the target schema:\n{diff}"
            )));
        }
        plan.warnings = super::checks::foreign_keys(m)?;
        Ok(plan)
    }

    /// Finds the steps (checking the data), and runs them if `apply`.
    fn steps(
        &self,
        m: &Migrator<'_>,
        counts: &Counts,
        plan: &mut AutoPlan,
        apply: bool,
    ) -> Result<()> {
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
            if live_schema.table(from).is_none() {
                return Err(Error::schema(format!(
                    "the rename hint {from} -> {to} names no table of the database"
                )));
            }
            // Names compare without case: a rename of case alone changes
            // nothing SQLite or the comparison would see.
            if from.eq_ignore_ascii_case(to) {
                continue;
            }
            if live_schema.table(to).is_some() {
                return Err(Error::schema(format!(
                    "the rename hint {from} -> {to}: the database already has a table {to}"
                )));
            }
            rename(
                plan,
                format!(
                    "ALTER TABLE {} RENAME TO {}",
                    quote_ident(from),
                    quote_ident(to)
                ),
            )?;
        }
        let renamed = m.connection().read_schema()?;
        for (table, from, to) in &self.column_renames {
            // The hint may name the table as the target does or as it was.
            let table = self
                .table_renames
                .iter()
                .find(|(old, _)| old.eq_ignore_ascii_case(table))
                .map_or(table.as_str(), |(_, new)| new.as_str());
            let found = renamed
                .table(table)
                .is_some_and(|t| t.column(from).is_some());
            if !found {
                return Err(Error::schema(format!(
                    "the rename hint {table}.{from} -> {to} names no column of the database"
                )));
            }
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
        let live = m.connection().read_schema()?;

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
            let wanted = target
                .entity(entity.name())
                .filter(|wanted| same_kind(wanted, entity));
            let changed = wanted.is_none_or(|wanted| differs(wanted, entity));
            if !changed {
                continue;
            }
            // An external-content FTS index is rebuilt from its table, so
            // dropping it loses nothing.
            if let Entity::VirtualTable(virtual_table) = entity
                && external_content(virtual_table).is_none()
            {
                let rows = counts.get(
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
                Some(found) => {
                    self.change_table(m, counts, plan, &mut refusals, wanted, found, apply)?
                }
            }
        }
        for gone in live.tables().filter(|t| target.table(&t.name).is_none()) {
            let rows = counts.get(
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
            // New, or replacing something else of that name (a table
            // that became a view).
            let new = live
                .entity(entity.name())
                .is_none_or(|found| !same_kind(found, entity));
            if new
                || recreate
                    .iter()
                    .any(|r| r.name().eq_ignore_ascii_case(entity.name()))
            {
                let sql = crate::schema::sql::create_statement(entity);
                run(plan, sql)?;
                if let Entity::VirtualTable(virtual_table) = entity
                    && external_content(virtual_table).is_some()
                {
                    let name = quote_ident(&virtual_table.name);
                    run(
                        plan,
                        format!("INSERT INTO {name} ({name}) VALUES ('rebuild')"),
                    )?;
                }
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
    #[allow(clippy::too_many_arguments)]
    fn change_table(
        &self,
        m: &Migrator<'_>,
        counts: &Counts,
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
        let rows = counts.get(m, &format!("SELECT count(*) FROM {name}"))?;
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
            let duplicates = counts.get(
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
            let values = counts.get(
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
            // A column of no declared affinity keeps whatever it holds; a
            // generated one is computed, never copied.
            if to.sql_type == crate::types::SqlType::Any || to.generated.is_some() {
                continue;
            }
            let quoted = quote_ident(column);
            let cast = format!("CAST({quoted} AS {})", to.sql_type.sql_name());
            // A value changes if the cast's value differs, or if text no
            // longer reads the same as a number: '007' becomes 7; '15'
            // becoming 15.0 keeps its value.
            let text_check = match to.sql_type {
                crate::types::SqlType::Integer => {
                    format!("CAST(CAST({quoted} AS INTEGER) AS TEXT) IS NOT {quoted}")
                }
                crate::types::SqlType::Real | crate::types::SqlType::Numeric => format!(
                    "(CAST(CAST({quoted} AS REAL) AS TEXT) IS NOT {quoted} AND \
                     CAST(CAST({quoted} AS INTEGER) AS TEXT) IS NOT {quoted})"
                ),
                _ => "0".to_owned(),
            };
            let changed = counts.get(
                m,
                &format!(
                    "SELECT count(*) FROM {name} WHERE {quoted} IS NOT NULL AND ({cast} IS NOT \
                     {quoted} OR (typeof({quoted}) = 'text' AND {text_check}))"
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
            // A nullable column made NOT NULL with a default keeps its
            // rows' NULLs out, as a plain copy would through IFNULL.
            let was_nullable = found.column(column).is_some_and(|c| c.nullable);
            let source = match &to.default {
                Some(default) if was_nullable && !to.nullable => {
                    format!("IFNULL({cast}, {default})")
                }
                _ => cast,
            };
            migration = migration.transform((wanted.name.as_str(), column.as_str()), source);
        }
        for column in wanted.columns.iter().filter(|c| c.generated.is_some()) {
            let Some(old) = found.column(&column.name).filter(|c| c.generated.is_none()) else {
                continue;
            };
            // Its stored values give way to computed ones.
            let values = counts.get(
                m,
                &format!("SELECT count({}) FROM {name}", quote_ident(&old.name)),
            )?;
            if values > 0 {
                let loss = format!(
                    "column {}.{}: {values} values (it becomes generated)",
                    wanted.name, column.name
                );
                self.lose(plan, refusals, loss);
            }
        }
        // SQLite's ADD COLUMN cannot add a NOT NULL column without a
        // default, even to an empty table: a rebuild can.
        let needs_rebuild = added.iter().any(|column| {
            wanted
                .column(column)
                .is_some_and(|c| !c.nullable && c.default.is_none() && c.generated.is_none())
        });
        let native = only_columns && !needs_rebuild;
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

/// Whether two entities are the same kind of thing.
fn same_kind(a: &Entity, b: &Entity) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// The content table of an FTS5 table that indexes another table's rows
/// (`content='docs'`), if it is one.
fn external_content(table: &crate::schema::VirtualTable) -> Option<String> {
    if !table.module.eq_ignore_ascii_case("fts5") {
        return None;
    }
    table.arguments.iter().find_map(|argument| {
        let (key, value) = argument.split_once('=')?;
        let value = value.trim().trim_matches(['\'', '"']);
        (key.trim().eq_ignore_ascii_case("content") && !value.is_empty()).then(|| value.to_owned())
    })
}

fn single(entity: Entity) -> Schema {
    Schema {
        entities: vec![entity],
    }
}

/// Counts taken by the data checks, by query, so the pass that applies a
/// migration does not scan the tables again.
#[derive(Default)]
struct Counts(std::cell::RefCell<std::collections::HashMap<String, i64>>);

impl Counts {
    fn get(&self, m: &Migrator<'_>, sql: &str) -> Result<i64> {
        if let Some(&known) = self.0.borrow().get(sql) {
            return Ok(known);
        }
        let found: i64 = m.custom_select(sql, [])?[0].get(0)?;
        self.0.borrow_mut().insert(sql.to_owned(), found);
        Ok(found)
    }
}

impl Migrator<'_> {
    /// Migrates the live schema to this migrator's schema automatically
    /// (see [`AutoMigration`]): "migrate to the schema of version N" as a
    /// step is `m.with_schema(snapshot.schema).migrate_automatically(&hints)`.
    pub fn migrate_automatically(&self, auto: &AutoMigration) -> Result<AutoPlan> {
        auto.run(self)
    }

    /// What [`Migrator::migrate_automatically`] would do, changing nothing
    /// (see [`AutoMigration::plan`]).
    pub fn plan_automatically(&self, auto: &AutoMigration) -> Result<AutoPlan> {
        auto.plan(self)
    }
}
