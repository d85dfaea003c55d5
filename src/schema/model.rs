//! The schema data types. Every field is public plain data so schemas can be
//! built by the derive macro, by hand, by the reader and by the snapshot
//! loader alike, and compared with `==`.

use serde::{Deserialize, Serialize};

use crate::types::SqlType;

/// A whole database schema: every entity, in dependency order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// The entities, tables first (referenced tables before referencing
    /// ones), then virtual tables, indexes, views and triggers.
    pub entities: Vec<Entity>,
}

/// One named thing in a schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entity {
    /// An ordinary table.
    Table(Table),
    /// A virtual table (`CREATE VIRTUAL TABLE … USING module(…)`).
    VirtualTable(VirtualTable),
    /// An index.
    Index(Index),
    /// A view.
    View(View),
    /// A trigger.
    Trigger(Trigger),
}

impl Entity {
    /// The entity's name.
    pub fn name(&self) -> &str {
        match self {
            Entity::Table(t) => &t.name,
            Entity::VirtualTable(t) => &t.name,
            Entity::Index(i) => &i.name,
            Entity::View(v) => &v.name,
            Entity::Trigger(t) => &t.name,
        }
    }

    /// Creation order rank: tables, virtual tables, indexes, views, triggers.
    fn rank(&self) -> u8 {
        match self {
            Entity::Table(_) => 0,
            Entity::VirtualTable(_) => 1,
            Entity::Index(_) => 2,
            Entity::View(_) => 3,
            Entity::Trigger(_) => 4,
        }
    }
}

impl Schema {
    /// A schema of these entities, put in dependency order: tables sorted so
    /// that a referenced table comes before the tables referencing it (the
    /// given order is kept otherwise), then virtual tables, indexes, views and
    /// triggers in the order given.
    pub fn new(entities: impl IntoIterator<Item = Entity>) -> Self {
        let mut entities: Vec<Entity> = entities.into_iter().collect();
        entities.sort_by_key(Entity::rank);
        let table_count = entities
            .iter()
            .take_while(|e| matches!(e, Entity::Table(_)))
            .count();
        let tables: Vec<Entity> = entities.drain(..table_count).collect();
        let mut ordered = order_tables(tables);
        ordered.append(&mut entities);
        Schema { entities: ordered }
    }

    /// The entity with this name (names compare case-insensitively, as in SQLite).
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities
            .iter()
            .find(|e| e.name().eq_ignore_ascii_case(name))
    }

    /// The ordinary table with this name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The ordinary tables, in creation order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.entities.iter().filter_map(|e| match e {
            Entity::Table(t) => Some(t),
            _ => None,
        })
    }
}

/// Orders tables so referenced tables come first: a stable topological sort
/// over the foreign-key graph. References inside a cycle (including a table
/// referencing itself) are ignored, so cyclic tables keep their given order
/// and ordering an ordered list changes nothing.
fn order_tables(tables: Vec<Entity>) -> Vec<Entity> {
    let names: Vec<String> = tables
        .iter()
        .map(|t| t.name().to_ascii_lowercase())
        .collect();
    let n = tables.len();
    let mut reaches = vec![vec![false; n]; n];
    for (i, entity) in tables.iter().enumerate() {
        let Entity::Table(table) = entity else {
            continue;
        };
        for target in table.referenced_tables() {
            if let Some(j) = names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(target))
            {
                reaches[i][j] = true;
            }
        }
    }
    let direct = reaches.clone();
    for k in 0..n {
        let via = reaches[k].clone();
        for row in reaches.iter_mut().filter(|row| row[k]) {
            for (reach, &through) in row.iter_mut().zip(&via) {
                *reach |= through;
            }
        }
    }
    // i must come after j when i references j and j does not lead back to i.
    let must_follow = |i: usize, j: usize| direct[i][j] && !reaches[j][i];
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    fn place(
        i: usize,
        placed: &mut [bool],
        order: &mut Vec<usize>,
        must_follow: &dyn Fn(usize, usize) -> bool,
    ) {
        if placed[i] {
            return;
        }
        placed[i] = true;
        for j in 0..placed.len() {
            if must_follow(i, j) {
                place(j, placed, order, must_follow);
            }
        }
        order.push(i);
    }
    for i in 0..n {
        place(i, &mut placed, &mut order, &must_follow);
    }
    let mut slots: Vec<Option<Entity>> = tables.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// An ordinary table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Table {
    /// The table's name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// A table-level (possibly composite) primary key; empty when the key is
    /// declared on a column or there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<String>,
    /// Table-level unique keys, each a list of columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique_keys: Vec<Vec<String>>,
    /// Table-level check constraints, as SQL expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Table-level foreign keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
    /// `WITHOUT ROWID`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub without_rowid: bool,
    /// `STRICT`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict: bool,
}

impl Table {
    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Names of the tables this table's foreign keys point at.
    pub fn referenced_tables(&self) -> impl Iterator<Item = &str> {
        let from_columns = self
            .columns
            .iter()
            .filter_map(|c| c.references.as_ref())
            .map(|r| r.table.as_str());
        let from_keys = self.foreign_keys.iter().map(|fk| fk.table.as_str());
        from_columns.chain(from_keys)
    }

    /// The primary key's columns, wherever it is declared.
    pub fn primary_key_columns(&self) -> Vec<&str> {
        if !self.primary_key.is_empty() {
            return self.primary_key.iter().map(String::as_str).collect();
        }
        self.columns
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.as_str())
            .collect()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name in SQL.
    pub name: String,
    /// The declared type.
    pub sql_type: SqlType,
    /// Whether it accepts `NULL` (otherwise `NOT NULL` is declared).
    pub nullable: bool,
    /// Column-level `PRIMARY KEY`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub primary_key: bool,
    /// `AUTOINCREMENT` (only with an `INTEGER PRIMARY KEY`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_increment: bool,
    /// Column-level `UNIQUE`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// The `DEFAULT` as an SQL expression (`0`, `'text'`, `CURRENT_TIMESTAMP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A text length limit, enforced by a check constraint (drift's `withLength`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<LengthLimit>,
    /// Column-level check constraints, as SQL expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// A column-level foreign key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Reference>,
    /// `GENERATED ALWAYS AS (…)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
    /// Constraint text appended verbatim to the column definition
    /// (drift's `customConstraint`), e.g. `COLLATE NOCASE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<String>,
}

impl Column {
    /// A column of this name and type, `NOT NULL`, without constraints.
    pub fn new(name: impl Into<String>, sql_type: SqlType) -> Self {
        Column {
            name: name.into(),
            sql_type,
            nullable: false,
            primary_key: false,
            auto_increment: false,
            unique: false,
            default: None,
            length: None,
            checks: Vec::new(),
            references: None,
            generated: None,
            custom: None,
        }
    }
}

/// Minimum and maximum length (in characters) of a text column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LengthLimit {
    /// Inclusive minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Inclusive maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// A generated column's expression and storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// The SQL expression.
    pub expression: String,
    /// `STORED` (true) or `VIRTUAL` (false).
    pub stored: bool,
}

/// What a foreign key does when the referenced row changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    /// `NO ACTION` (the default).
    #[default]
    NoAction,
    /// `RESTRICT`.
    Restrict,
    /// `SET NULL`.
    SetNull,
    /// `SET DEFAULT`.
    SetDefault,
    /// `CASCADE`.
    Cascade,
}

impl FkAction {
    /// The action as SQL.
    pub fn sql(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
            FkAction::Cascade => "CASCADE",
        }
    }

    fn is_default(&self) -> bool {
        *self == FkAction::NoAction
    }
}

/// A column-level foreign key: `REFERENCES table (column)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The referenced table.
    pub table: String,
    /// The referenced column.
    pub column: String,
    /// `ON DELETE`.
    #[serde(default, skip_serializing_if = "FkAction::is_default")]
    pub on_delete: FkAction,
    /// `ON UPDATE`.
    #[serde(default, skip_serializing_if = "FkAction::is_default")]
    pub on_update: FkAction,
}

/// A table-level foreign key over one or more columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The referencing columns of this table.
    pub columns: Vec<String>,
    /// The referenced table.
    pub table: String,
    /// The referenced columns, in the same order.
    pub references: Vec<String>,
    /// `ON DELETE`.
    #[serde(default, skip_serializing_if = "FkAction::is_default")]
    pub on_delete: FkAction,
    /// `ON UPDATE`.
    #[serde(default, skip_serializing_if = "FkAction::is_default")]
    pub on_update: FkAction,
}

/// A virtual table, such as an FTS5 index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualTable {
    /// The table's name.
    pub name: String,
    /// The module (`fts5`, `rtree`, …).
    pub module: String,
    /// The module arguments, verbatim.
    pub arguments: Vec<String>,
}

/// An index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The index's name.
    pub name: String,
    /// The indexed table.
    pub table: String,
    /// `UNIQUE`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// The indexed columns or expressions.
    pub columns: Vec<IndexColumn>,
    /// A partial index's `WHERE` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub where_clause: Option<String>,
}

/// One indexed column or expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexColumn {
    /// A column, by name.
    Column {
        /// The column's name.
        name: String,
        /// `DESC`.
        #[serde(default, skip_serializing_if = "is_false")]
        descending: bool,
    },
    /// An SQL expression.
    Expression {
        /// The expression.
        sql: String,
        /// `DESC`.
        #[serde(default, skip_serializing_if = "is_false")]
        descending: bool,
    },
}

/// A view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The view's name.
    pub name: String,
    /// The `SELECT` statement defining it.
    pub select: String,
}

/// A trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// The trigger's name.
    pub name: String,
    /// The table it fires on.
    pub table: String,
    /// The whole `CREATE TRIGGER` statement.
    pub sql: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, refs: &[&str]) -> Entity {
        let mut t = Table {
            name: name.into(),
            ..Default::default()
        };
        for r in refs {
            let mut c = Column::new(format!("{r}_id"), SqlType::Integer);
            c.references = Some(Reference {
                table: (*r).into(),
                column: "id".into(),
                on_delete: FkAction::NoAction,
                on_update: FkAction::NoAction,
            });
            t.columns.push(c);
        }
        Entity::Table(t)
    }

    #[test]
    fn cycles_keep_their_order_and_ordering_is_idempotent() {
        let schema = Schema::new([table("a", &["b"]), table("b", &["a"]), table("c", &["c"])]);
        let names: Vec<&str> = schema.entities.iter().map(Entity::name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let again = Schema::new(schema.entities.clone());
        assert_eq!(again, schema);
        let reversed = Schema::new([table("b", &["a"]), table("a", &["b"])]);
        let names: Vec<&str> = reversed.entities.iter().map(Entity::name).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn referenced_tables_come_first() {
        let view = Entity::View(View {
            name: "v".into(),
            select: "SELECT 1".into(),
        });
        let schema = Schema::new([
            view,
            table("a", &["b", "a"]),
            table("b", &["c"]),
            table("c", &[]),
        ]);
        let names: Vec<&str> = schema.entities.iter().map(Entity::name).collect();
        assert_eq!(names, ["c", "b", "a", "v"]);
    }
}
