//! SQL dialects: what differs between the databases driftwood can speak to
//! (placeholders, for now). SQLite is the one backend today; PostgreSQL is
//! planned, and every statement is already built through this type.

/// An SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite: `?` placeholders.
    #[default]
    Sqlite = 0,
    /// PostgreSQL: `$1`, `$2`, … placeholders.
    Postgres = 1,
}

impl Dialect {
    /// How many dialects there are (sizes per-dialect caches).
    pub const COUNT: usize = 2;

    /// Appends the placeholder of the `number`th argument (1-based).
    pub fn push_placeholder(self, sql: &mut String, number: usize) {
        match self {
            Dialect::Sqlite => sql.push('?'),
            Dialect::Postgres => {
                sql.push('$');
                sql.push_str(&number.to_string());
            }
        }
    }
}
