//! `INSERT` statements: a whole row or a companion, with a conflict mode
//! (`OR IGNORE`, `OR REPLACE`, …), an upsert clause, and `RETURNING`.

use super::writer::SqlWriter;
use super::{Dialect, Statement};
use crate::table::{Companion, Insertable, Table};
use crate::types::SqlValue;

/// What `INSERT` does when the row breaks a uniqueness constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InsertMode {
    /// Plain `INSERT`: fail with a constraint error.
    #[default]
    Insert,
    /// `INSERT OR IGNORE`: skip the row.
    OrIgnore,
    /// `INSERT OR REPLACE`: delete the conflicting row, insert this one.
    OrReplace,
    /// `INSERT OR ABORT`.
    OrAbort,
    /// `INSERT OR FAIL`.
    OrFail,
    /// `INSERT OR ROLLBACK`.
    OrRollback,
}

impl InsertMode {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            InsertMode::Insert => "INSERT",
            InsertMode::OrIgnore => "INSERT OR IGNORE",
            InsertMode::OrReplace => "INSERT OR REPLACE",
            InsertMode::OrAbort => "INSERT OR ABORT",
            InsertMode::OrFail => "INSERT OR FAIL",
            InsertMode::OrRollback => "INSERT OR ROLLBACK",
        }
    }
}

/// An upsert clause: `ON CONFLICT (target) DO …`.
#[derive(Debug, Clone, PartialEq)]
pub struct OnConflict {
    target: Vec<&'static str>,
    action: ConflictAction,
}

#[derive(Debug, Clone, PartialEq)]
enum ConflictAction {
    Nothing,
    /// `SET col = excluded.col` for these columns.
    Excluded(Vec<&'static str>),
    /// `SET col = ?` with these values.
    Values(Vec<(&'static str, SqlValue)>),
}

impl OnConflict {
    /// `ON CONFLICT (target) DO NOTHING`.
    pub fn do_nothing<T: Table>(target: &[&dyn super::ColumnOf<T>]) -> Self {
        OnConflict {
            target: target.iter().map(|c| c.sql_name()).collect(),
            action: ConflictAction::Nothing,
        }
    }

    /// `ON CONFLICT (target) DO UPDATE SET c = excluded.c` for `columns`:
    /// the conflicting row takes the new row's values there.
    pub fn update_excluded<T: Table>(
        target: &[&dyn super::ColumnOf<T>],
        columns: &[&dyn super::ColumnOf<T>],
    ) -> Self {
        OnConflict {
            target: target.iter().map(|c| c.sql_name()).collect(),
            action: ConflictAction::Excluded(columns.iter().map(|c| c.sql_name()).collect()),
        }
    }

    /// `ON CONFLICT (target) DO UPDATE SET …` with the given columns of
    /// `values` (drift's `DoUpdate`).
    pub fn update<C: Companion>(target: &[&dyn super::ColumnOf<C::Table>], values: &C) -> Self {
        let set = (0..C::Table::COLUMNS.len())
            .filter_map(|i| {
                values
                    .value(i)
                    .map(|v| (C::Table::COLUMNS[i], v.into_owned()))
            })
            .collect();
        OnConflict {
            target: target.iter().map(|c| c.sql_name()).collect(),
            action: ConflictAction::Values(set),
        }
    }

    fn write(&self, w: &mut SqlWriter) {
        w.push(" ON CONFLICT");
        if !self.target.is_empty() {
            w.push(" (");
            w.idents(self.target.iter().copied());
            w.push(")");
        }
        match &self.action {
            ConflictAction::Nothing => w.push(" DO NOTHING"),
            ConflictAction::Excluded(columns) => {
                w.push(" DO UPDATE SET ");
                w.list(columns, |w, c| {
                    w.ident(c);
                    w.push(" = excluded.");
                    w.ident(c);
                });
            }
            ConflictAction::Values(values) => {
                w.push(" DO UPDATE SET ");
                w.list(values, |w, (c, v)| {
                    w.ident(c);
                    w.push(" = ");
                    w.arg(v.clone());
                });
            }
        }
    }
}

/// An `INSERT` of one row or companion.
#[derive(Debug, Clone)]
pub struct Insert<I> {
    row: I,
    mode: InsertMode,
    on_conflict: Option<OnConflict>,
}

impl<I: Insertable> Insert<I> {
    /// Inserts `row`.
    pub fn new(row: I) -> Self {
        Insert {
            row,
            mode: InsertMode::Insert,
            on_conflict: None,
        }
    }

    /// Sets the conflict mode.
    pub fn mode(mut self, mode: InsertMode) -> Self {
        self.mode = mode;
        self
    }

    /// Adds an upsert clause.
    pub fn on_conflict(mut self, clause: OnConflict) -> Self {
        self.on_conflict = Some(clause);
        self
    }

    /// The statement.
    pub fn build(&self, dialect: Dialect) -> Statement {
        build_insert(
            &self.row,
            self.mode,
            self.on_conflict.as_ref(),
            dialect,
            false,
        )
    }

    /// The statement, ending in `RETURNING` every column (the row as stored).
    pub fn build_returning(&self, dialect: Dialect) -> Statement {
        build_insert(
            &self.row,
            self.mode,
            self.on_conflict.as_ref(),
            dialect,
            true,
        )
    }
}

/// The statement inserting `row`.
fn build_insert<I: Insertable>(
    row: &I,
    mode: InsertMode,
    on_conflict: Option<&OnConflict>,
    dialect: Dialect,
    returning: bool,
) -> Statement {
    type T<I> = <I as Insertable>::Table;
    let columns = T::<I>::COLUMNS;
    let plain = mode == InsertMode::Insert && on_conflict.is_none() && !returning;
    if I::WHOLE_ROW && plain {
        let sql = T::<I>::statement_cache().insert::<T<I>>(dialect);
        let args = super::writable_columns::<T<I>>()
            .map(|i| {
                row.insert_value(i)
                    .map_or(SqlValue::Null, |v| v.into_owned())
            })
            .collect();
        return Statement::new(sql, args);
    }
    if plain {
        // A companion: the text depends only on which columns it gives.
        let mut given = Vec::with_capacity(columns.len());
        let mut args = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            if let Some(value) = row.insert_value(i) {
                given.push(i);
                args.push(value.into_owned());
            }
        }
        let sql = T::<I>::statement_cache().partial_insert::<T<I>>(dialect, &given);
        return Statement::new(sql, args);
    }
    let mut present = Vec::with_capacity(columns.len());
    let mut args = Vec::with_capacity(columns.len());
    for (i, name) in columns.iter().enumerate() {
        if let Some(value) = row.insert_value(i) {
            present.push(*name);
            args.push(value.into_owned());
        }
    }
    let mut w = SqlWriter::new(dialect);
    if present.is_empty() {
        w.push(mode.sql());
        w.push(" INTO ");
        w.ident(T::<I>::NAME);
        w.push(" DEFAULT VALUES");
    } else {
        w.insert_head(mode, T::<I>::NAME, &present);
        w.placeholders(present.len());
        w.extend_args(args);
    }
    if let Some(clause) = on_conflict {
        clause.write(&mut w);
    }
    if returning {
        w.push(" RETURNING ");
        w.idents(columns.iter().copied());
    }
    w.finish()
}
