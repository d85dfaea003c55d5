//! What `#[derive(Table)]` implements: the [`Table`] trait tying a row struct
//! to its table definition, typed [`Column`] handles for expressions, and the
//! companion type of [`Value`]s for partial inserts and updates (drift's
//! `TodosCompanion` with `Value.absent()`).

use std::marker::PhantomData;

use crate::query::StatementCache;
use crate::row::{FixedWidth, FromRow, Row};
use crate::schema;
use crate::types::{ColumnType, SqlArg};

/// A Rust struct mapped to an SQL table. Implemented by `#[derive(Table)]`;
/// implementing it by hand is possible but rarely useful.
pub trait Table: FromRow + FixedWidth + Send + Sync + 'static {
    /// The table's SQL name.
    const NAME: &'static str;
    /// The columns' SQL names, in declaration order.
    const COLUMNS: &'static [&'static str];
    /// Indexes into [`Table::COLUMNS`] of the primary key's columns.
    const PRIMARY_KEY: &'static [usize];
    /// Indexes into [`Table::COLUMNS`] of generated columns, which are read
    /// but never written.
    const GENERATED: &'static [usize] = &[];
    /// Per column of [`Table::COLUMNS`], whether its Rust type accepts `NULL`.
    /// A stored row has a value in every non-nullable column, which is how a
    /// left join's missing row is told apart cheaply.
    const NULLABLE: &'static [bool];
    /// The index into [`Table::COLUMNS`] of the column that is the rowid (a
    /// one-column `INTEGER` primary key of a rowid table), if there is one:
    /// watched queries filtered on it re-run only for changes of their rows.
    const ROWID_ALIAS: Option<usize> = None;
    /// The companion type: one [`Value`] per column.
    type Companion: Companion<Table = Self>;

    /// The table's definition in the schema model.
    fn definition() -> schema::Table;

    /// The value of the column at `index` (into [`Table::COLUMNS`]).
    fn value(&self, index: usize) -> SqlArg<'_>;

    /// Statement texts generated once per table and dialect.
    fn statement_cache() -> &'static StatementCache;
}

/// A present-or-absent column value in a companion: drift's `Value`.
/// Absent columns are left out of inserts (the database default applies)
/// and out of updates (the stored value stays).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Value<T> {
    /// Not given.
    #[default]
    Absent,
    /// Given.
    Set(T),
}

impl<T> Value<T> {
    /// Whether a value is given.
    pub fn is_set(&self) -> bool {
        matches!(self, Value::Set(_))
    }

    /// The value, if given.
    pub fn as_option(&self) -> Option<&T> {
        match self {
            Value::Set(v) => Some(v),
            Value::Absent => None,
        }
    }
}

/// A given column value: `set("Groceries")` in a companion literal. It
/// takes the column's own type and the obvious conversions ([`IntoSet`]):
/// `set("x")` and `set(Some("x"))` for `String` and `Option<String>`
/// columns, `set(5)` for an `Option<i64>`, `set(1_i32)` for an `i64`.
pub fn set<T>(value: impl IntoSet<T>) -> Value<T> {
    Value::Set(value.into_set())
}

/// A value [`set`] accepts for a column holding `T`.
pub trait IntoSet<T> {
    /// The column value.
    fn into_set(self) -> T;
}

impl<T> IntoSet<T> for T {
    fn into_set(self) -> T {
        self
    }
}

/// A value of a nullable column, given.
impl<T> IntoSet<Option<T>> for T {
    fn into_set(self) -> Option<T> {
        Some(self)
    }
}

/// Implements [`IntoSet`] for conversions that lose nothing, in both the
/// plain and the nullable form.
macro_rules! lossless {
    ($($from:ty => $to:ty),* $(,)?) => {$(
        impl IntoSet<$to> for $from {
            fn into_set(self) -> $to {
                self.into()
            }
        }
        impl IntoSet<Option<$to>> for Option<$from> {
            fn into_set(self) -> Option<$to> {
                self.map(Into::into)
            }
        }
    )*};
}

lossless!(
    &str => String,
    &String => String,
    &[u8] => Vec<u8>,
    i8 => i64, i16 => i64, i32 => i64, u8 => i64, u16 => i64, u32 => i64,
    f32 => f64,
);

impl IntoSet<Option<String>> for &str {
    fn into_set(self) -> Option<String> {
        Some(self.to_owned())
    }
}

/// Nothing given: `..absent()` fills the rest of a companion literal, and
/// `absent()` is an absent [`Value`].
pub fn absent<T: Default>() -> T {
    T::default()
}

/// A partial row: the companion type `#[derive(Table)]` generates.
pub trait Companion: Default + Send + Sync + 'static {
    /// The table this companion belongs to.
    type Table: Table;

    /// The given value of the column at `index`, or `None` when absent.
    fn value(&self, index: usize) -> Option<SqlArg<'_>>;

    /// The value to insert for the column at `index`: the given value, else
    /// the column's client-side default, else `None` (database default).
    fn insert_value(&self, index: usize) -> Option<SqlArg<'_>> {
        self.value(index)
    }
}

/// Something that can be inserted into a table: a whole row or a companion,
/// owned or borrowed. `#[derive(Table)]` implements it for the row struct,
/// its companion, and references to both.
pub trait Insertable: Send + Sync {
    /// The table it goes into.
    type Table: Table;
    /// Whether every column always has a value (a whole row), which lets the
    /// statement text be cached.
    const WHOLE_ROW: bool;
    /// The value to insert for the column at `index`, `None` to leave it out.
    fn insert_value(&self, index: usize) -> Option<SqlArg<'_>>;
}

/// A typed handle to a column of table `T` holding values of type `V`:
/// `Todo::TITLE` is a `Column<Todo, String>`. Use it in expressions
/// (`Todo::TITLE.eq("x")`), orderings and migrations.
pub struct Column<T, V> {
    name: &'static str,
    index: usize,
    marker: PhantomData<fn() -> (T, V)>,
}

impl<T, V> Clone for Column<T, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, V> Copy for Column<T, V> {}

impl<T, V> std::fmt::Debug for Column<T, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Column({})", self.name)
    }
}

impl<T: Table, V: ColumnType> Column<T, V> {
    /// The handle of the column `name`, at `index` in [`Table::COLUMNS`].
    pub const fn new(name: &'static str, index: usize) -> Self {
        Column {
            name,
            index,
            marker: PhantomData,
        }
    }

    /// The column's SQL name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The column's table's SQL name.
    pub fn table_name(&self) -> &'static str {
        T::NAME
    }

    /// The column's position in the table.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The column's definition in the schema model.
    pub fn definition(&self) -> schema::Column {
        T::definition().columns.swap_remove(self.index)
    }
}

impl<T: Table> FromRow for Option<T> {
    /// A left join's missing row (every column `NULL`) maps to `None`.
    fn from_row(row: &Row<'_>) -> crate::Result<Self> {
        let is_null = |i: usize| matches!(row.get_ref(i), Ok(crate::types::ValueRef::Null));
        // One non-nullable column decides; without one, every column must be NULL.
        let missing = match T::NULLABLE.iter().position(|nullable| !nullable) {
            Some(i) => is_null(i),
            None => (0..T::WIDTH).all(is_null),
        };
        if missing {
            return Ok(None);
        }
        T::from_row(row).map(Some)
    }
}

impl<T: Table> FixedWidth for Option<T> {
    const WIDTH: usize = T::WIDTH;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_takes_the_obvious_conversions_for_plain_and_nullable_columns() {
        let text: Value<String> = set("x");
        let nullable_text: Value<Option<String>> = set("x");
        let some_text: Value<Option<String>> = set(Some("x"));
        let no_text: Value<Option<String>> = set(None::<&str>);
        let widened: Value<Option<i64>> = set(Some(5_i32));
        assert_eq!(text.as_option().map(String::as_str), Some("x"));
        assert_eq!(nullable_text.as_option(), Some(&Some("x".to_owned())));
        assert_eq!(some_text.as_option(), Some(&Some("x".to_owned())));
        assert_eq!(no_text.as_option(), Some(&None));
        assert_eq!(widened.as_option(), Some(&Some(5)));
        assert_eq!(absent::<Value<String>>().as_option(), None);
    }
}
