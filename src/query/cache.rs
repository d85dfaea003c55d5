//! [`StatementCache`]: the statement texts of one table that never change
//! (whole-row insert, primary-key lookup, select lists), generated on first
//! use per dialect by the functions beside it in this module.

use std::sync::OnceLock;

use super::Dialect;
use crate::table::Table;

/// Statement texts for one table, generated on first use per dialect and
/// kept for the life of the process (whole-row inserts, select lists).
pub struct StatementCache {
    insert: [OnceLock<String>; Dialect::COUNT],
    find: [OnceLock<String>; Dialect::COUNT],
    columns: OnceLock<String>,
    select_all: OnceLock<String>,
}

impl StatementCache {
    /// An empty cache, for a `static`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        StatementCache {
            insert: [const { OnceLock::new() }; Dialect::COUNT],
            find: [const { OnceLock::new() }; Dialect::COUNT],
            columns: OnceLock::new(),
            select_all: OnceLock::new(),
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
}
