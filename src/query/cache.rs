//! [`StatementCache`]: the statement texts of one table that never change
//! (whole-row insert, primary-key lookup, select lists), generated on first
//! use per dialect by the functions beside it in this module.

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock};

use super::Dialect;
use crate::table::Table;

/// Statement texts for one table, generated on first use per dialect and
/// kept for the life of the process (whole-row inserts, select lists).
pub struct StatementCache {
    insert: [OnceLock<String>; Dialect::COUNT],
    find: [OnceLock<String>; Dialect::COUNT],
    columns: OnceLock<String>,
    select_all: OnceLock<String>,
    /// Inserts of some columns only (companions), by dialect and column
    /// set; at most [`MAX_PARTIAL_INSERTS`] texts, kept for the process.
    partial_inserts: Mutex<Vec<(Dialect, u64, &'static str)>>,
}

/// How many partial-insert texts one table keeps; past this, the text is
/// built for each statement.
const MAX_PARTIAL_INSERTS: usize = 32;

impl StatementCache {
    /// An empty cache, for a `static`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        StatementCache {
            insert: [const { OnceLock::new() }; Dialect::COUNT],
            find: [const { OnceLock::new() }; Dialect::COUNT],
            columns: OnceLock::new(),
            select_all: OnceLock::new(),
            partial_inserts: Mutex::new(Vec::new()),
        }
    }

    /// `INSERT INTO t (all columns) VALUES (…)` for this dialect.
    pub fn insert<T: Table>(&self, dialect: Dialect) -> &str {
        self.insert[dialect as usize].get_or_init(|| super::whole_row_insert_sql::<T>(dialect))
    }

    /// `SELECT … FROM t WHERE key = ?` for this dialect, for tables with a
    /// one-column primary key.
    pub fn find<T: Table>(&self, dialect: Dialect) -> &str {
        self.find[dialect as usize].get_or_init(|| super::find_sql::<T>(dialect))
    }

    /// `SELECT <every column> FROM "t"` (the same in every dialect).
    pub fn select_all<T: Table>(&self) -> &str {
        self.select_all.get_or_init(|| {
            format!(
                "SELECT {} FROM {}",
                self.columns::<T>(),
                crate::schema::sql::quote_ident(T::NAME)
            )
        })
    }

    /// The qualified select list `"t"."a", "t"."b", …`.
    pub fn columns<T: Table>(&self) -> &str {
        self.columns
            .get_or_init(|| super::qualified_columns(T::NAME, T::COLUMNS))
    }

    /// `INSERT INTO t (the columns at `columns`) VALUES (…)` (or `DEFAULT
    /// VALUES`) for this dialect: what an insert of a companion runs.
    pub fn partial_insert<T: Table>(
        &self,
        dialect: Dialect,
        columns: &[usize],
    ) -> Cow<'static, str> {
        if T::COLUMNS.len() > 64 {
            return Cow::Owned(super::insert_sql::<T>(dialect, columns));
        }
        let mask = columns.iter().fold(0u64, |mask, &i| mask | (1 << i));
        let mut known = self
            .partial_inserts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, sql)) = known.iter().find(|(d, m, _)| *d == dialect && *m == mask) {
            return Cow::Borrowed(sql);
        }
        let sql = super::insert_sql::<T>(dialect, columns);
        if known.len() >= MAX_PARTIAL_INSERTS {
            return Cow::Owned(sql);
        }
        // Bounded above, so this is a fixed amount per table for the process.
        let sql: &'static str = Box::leak(sql.into_boxed_str());
        known.push((dialect, mask, sql));
        Cow::Borrowed(sql)
    }
}
