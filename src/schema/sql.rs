//! `CREATE` statements from the schema model, with every identifier quoted.
//!
//! The text produced here is canonical: the reader in [`super::read`] parses
//! exactly this shape back, which is what makes a schema round-trip through
//! a live database.

use std::fmt::Write;

use super::model::{
    Column, Entity, Index, IndexColumn, LengthLimit, Reference, Table, View, VirtualTable,
};
use crate::types::SqlType;

/// Quotes an identifier for SQL: `todos` → `"todos"`, `a"b` → `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_ident(&mut out, name);
    out
}

/// Appends a quoted identifier to `out`.
pub fn push_ident(out: &mut String, name: &str) {
    if !name.contains('"') {
        out.reserve(name.len() + 2);
        out.push('"');
        out.push_str(name);
        out.push('"');
        return;
    }
    out.push('"');
    for ch in name.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
}

/// Quotes a text literal: `it's` → `'it''s'`.
pub fn quote_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The `CREATE` statement of an entity.
pub fn create_statement(entity: &Entity) -> String {
    match entity {
        Entity::Table(t) => create_table(t),
        Entity::VirtualTable(t) => create_virtual_table(t),
        Entity::Index(i) => create_index(i),
        Entity::View(v) => create_view(v),
        Entity::Trigger(t) => t.sql.clone(),
    }
}

/// The `DROP` statement of an entity.
pub fn drop_statement(entity: &Entity) -> String {
    let kind = match entity {
        Entity::Table(_) | Entity::VirtualTable(_) => "TABLE",
        Entity::Index(_) => "INDEX",
        Entity::View(_) => "VIEW",
        Entity::Trigger(_) => "TRIGGER",
    };
    format!("DROP {kind} IF EXISTS {}", quote_ident(entity.name()))
}

/// `CREATE TABLE` for an ordinary table.
pub fn create_table(table: &Table) -> String {
    let mut sql = String::from("CREATE TABLE ");
    push_ident(&mut sql, &table.name);
    sql.push_str(" (");
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .map(|c| column_definition(c, table.strict))
        .collect();
    if !table.primary_key.is_empty() {
        parts.push(format!("PRIMARY KEY ({})", ident_list(&table.primary_key)));
    }
    for key in &table.unique_keys {
        parts.push(format!("UNIQUE ({})", ident_list(key)));
    }
    for check in &table.checks {
        parts.push(format!("CHECK ({check})"));
    }
    for fk in &table.foreign_keys {
        let mut part = format!(
            "FOREIGN KEY ({}) REFERENCES {} ({})",
            ident_list(&fk.columns),
            quote_ident(&fk.table),
            ident_list(&fk.references)
        );
        push_actions(&mut part, fk.on_delete, fk.on_update);
        parts.push(part);
    }
    sql.push_str(&parts.join(", "));
    sql.push(')');
    let mut options = Vec::new();
    if table.without_rowid {
        options.push("WITHOUT ROWID");
    }
    if table.strict {
        options.push("STRICT");
    }
    if !options.is_empty() {
        sql.push(' ');
        sql.push_str(&options.join(", "));
    }
    sql
}

/// One column's definition inside `CREATE TABLE` (also used by `ALTER TABLE
/// … ADD COLUMN`).
pub fn column_definition(column: &Column, strict: bool) -> String {
    let mut sql = quote_ident(&column.name);
    let type_name = match column.sql_type {
        SqlType::Any if !strict => "",
        other => other.sql_name(),
    };
    if !type_name.is_empty() {
        sql.push(' ');
        sql.push_str(type_name);
    }
    if !column.nullable {
        sql.push_str(" NOT NULL");
    }
    if column.primary_key {
        sql.push_str(" PRIMARY KEY");
        if column.auto_increment {
            sql.push_str(" AUTOINCREMENT");
        }
    }
    if column.unique {
        sql.push_str(" UNIQUE");
    }
    if let Some(default) = &column.default {
        let _ = write!(sql, " DEFAULT ({default})");
    }
    if let Some(check) = column
        .length
        .and_then(|limit| length_check(&column.name, limit))
    {
        let _ = write!(sql, " CHECK ({check})");
    }
    for check in &column.checks {
        let _ = write!(sql, " CHECK ({check})");
    }
    if let Some(reference) = &column.references {
        push_reference(&mut sql, reference);
    }
    if let Some(generated) = &column.generated {
        let storage = if generated.stored {
            "STORED"
        } else {
            "VIRTUAL"
        };
        let _ = write!(
            sql,
            " GENERATED ALWAYS AS ({}) {storage}",
            generated.expression
        );
    }
    if let Some(custom) = &column.custom {
        sql.push(' ');
        sql.push_str(custom);
    }
    sql
}

/// The check expression enforcing a length limit on a column; `None` for a
/// limit with neither bound, which constrains nothing (and so reads back
/// from a database as no limit).
pub fn length_check(column: &str, limit: LengthLimit) -> Option<String> {
    let len = format!("length({})", quote_ident(column));
    match (limit.min, limit.max) {
        (Some(min), Some(max)) => Some(format!("{len} BETWEEN {min} AND {max}")),
        (Some(min), None) => Some(format!("{len} >= {min}")),
        (None, Some(max)) => Some(format!("{len} <= {max}")),
        (None, None) => None,
    }
}

fn push_reference(sql: &mut String, reference: &Reference) {
    let _ = write!(
        sql,
        " REFERENCES {} ({})",
        quote_ident(&reference.table),
        quote_ident(&reference.column)
    );
    push_actions(sql, reference.on_delete, reference.on_update);
}

fn push_actions(sql: &mut String, on_delete: super::FkAction, on_update: super::FkAction) {
    if on_delete != super::FkAction::NoAction {
        let _ = write!(sql, " ON DELETE {}", on_delete.sql());
    }
    if on_update != super::FkAction::NoAction {
        let _ = write!(sql, " ON UPDATE {}", on_update.sql());
    }
}

fn ident_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE VIRTUAL TABLE`.
pub fn create_virtual_table(table: &VirtualTable) -> String {
    format!(
        "CREATE VIRTUAL TABLE {} USING {}({})",
        quote_ident(&table.name),
        table.module,
        table.arguments.join(", ")
    )
}

/// `CREATE [UNIQUE] INDEX`.
pub fn create_index(index: &Index) -> String {
    let unique = if index.unique { "UNIQUE " } else { "" };
    let columns: Vec<String> = index
        .columns
        .iter()
        .map(|c| {
            let (mut part, descending) = match c {
                IndexColumn::Column { name, descending } => (quote_ident(name), *descending),
                IndexColumn::Expression { sql, descending } => (format!("({sql})"), *descending),
            };
            if descending {
                part.push_str(" DESC");
            }
            part
        })
        .collect();
    let mut sql = format!(
        "CREATE {unique}INDEX {} ON {} ({})",
        quote_ident(&index.name),
        quote_ident(&index.table),
        columns.join(", ")
    );
    if let Some(condition) = &index.where_clause {
        let _ = write!(sql, " WHERE {condition}");
    }
    sql
}

/// `CREATE VIEW`.
pub fn create_view(view: &View) -> String {
    format!("CREATE VIEW {} AS {}", quote_ident(&view.name), view.select)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FkAction, ForeignKey, Generated};

    fn todos() -> Table {
        let mut id = Column::new("id", SqlType::Integer);
        id.primary_key = true;
        id.auto_increment = true;
        let mut title = Column::new("title", SqlType::Text);
        title.length = Some(LengthLimit {
            min: Some(6),
            max: Some(10),
        });
        let body = Column::new("body", SqlType::Text);
        let mut category = Column::new("category", SqlType::Integer);
        category.nullable = true;
        category.references = Some(Reference {
            table: "categories".into(),
            column: "id".into(),
            on_delete: FkAction::SetNull,
            on_update: FkAction::NoAction,
        });
        let mut done = Column::new("done", SqlType::Integer);
        done.default = Some("0".into());
        done.checks.push("\"done\" IN (0, 1)".into());
        Table {
            name: "todos".into(),
            columns: vec![id, title, body, category, done],
            ..Default::default()
        }
    }

    #[test]
    fn create_table_quotes_and_orders_constraints() {
        assert_eq!(
            create_table(&todos()),
            "CREATE TABLE \"todos\" (\"id\" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \
             \"title\" TEXT NOT NULL CHECK (length(\"title\") BETWEEN 6 AND 10), \"body\" TEXT NOT NULL, \
             \"category\" INTEGER REFERENCES \"categories\" (\"id\") ON DELETE SET NULL, \
             \"done\" INTEGER NOT NULL DEFAULT (0) CHECK (\"done\" IN (0, 1)))"
        );
    }

    #[test]
    fn table_level_constraints_and_options() {
        let mut a = Column::new("a", SqlType::Integer);
        a.generated = None;
        let mut b = Column::new("b\"x", SqlType::Any);
        b.nullable = true;
        let mut c = Column::new("c", SqlType::Integer);
        c.generated = Some(Generated {
            expression: "\"a\" * 2".into(),
            stored: true,
        });
        let table = Table {
            name: "pairs".into(),
            columns: vec![a, b, c],
            primary_key: vec!["a".into(), "b\"x".into()],
            unique_keys: vec![vec!["c".into()]],
            checks: vec!["\"a\" > 0".into()],
            foreign_keys: vec![ForeignKey {
                columns: vec!["a".into()],
                table: "other".into(),
                references: vec!["id".into()],
                on_delete: FkAction::Cascade,
                on_update: FkAction::Restrict,
            }],
            without_rowid: true,
            strict: true,
        };
        assert_eq!(
            create_table(&table),
            "CREATE TABLE \"pairs\" (\"a\" INTEGER NOT NULL, \"b\"\"x\" ANY, \
             \"c\" INTEGER NOT NULL GENERATED ALWAYS AS (\"a\" * 2) STORED, PRIMARY KEY (\"a\", \"b\"\"x\"), \
             UNIQUE (\"c\"), CHECK (\"a\" > 0), FOREIGN KEY (\"a\") REFERENCES \"other\" (\"id\") \
             ON DELETE CASCADE ON UPDATE RESTRICT) WITHOUT ROWID, STRICT"
        );
    }

    #[test]
    fn indexes_views_and_virtual_tables() {
        let index = Index {
            name: "by_title".into(),
            table: "todos".into(),
            unique: true,
            columns: vec![
                IndexColumn::Column {
                    name: "title".into(),
                    descending: true,
                },
                IndexColumn::Expression {
                    sql: "lower(\"body\")".into(),
                    descending: false,
                },
            ],
            where_clause: Some("\"category\" IS NOT NULL".into()),
        };
        assert_eq!(
            create_index(&index),
            "CREATE UNIQUE INDEX \"by_title\" ON \"todos\" (\"title\" DESC, (lower(\"body\"))) \
             WHERE \"category\" IS NOT NULL"
        );
        let view = View {
            name: "open".into(),
            select: "SELECT * FROM \"todos\"".into(),
        };
        assert_eq!(
            create_view(&view),
            "CREATE VIEW \"open\" AS SELECT * FROM \"todos\""
        );
        let fts = VirtualTable {
            name: "search".into(),
            module: "fts5".into(),
            arguments: vec!["title".into(), "body".into()],
        };
        assert_eq!(
            create_virtual_table(&fts),
            "CREATE VIRTUAL TABLE \"search\" USING fts5(title, body)"
        );
        assert_eq!(
            drop_statement(&Entity::View(view)),
            "DROP VIEW IF EXISTS \"open\""
        );
    }
}
