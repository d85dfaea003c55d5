//! Comparing two schemas by meaning (no I/O): [`compare`] lists how a found
//! schema (a live database read back) differs from an expected one (what
//! create-all makes), as structured [`Difference`]s a validator reports and a
//! schema differ can act on.
//!
//! Spelling never counts: names match case-insensitively, SQL (checks,
//! defaults, index expressions and `WHERE` clauses, views, triggers, virtual
//! table arguments) compares as token sequences without whitespace,
//! comments, identifier quotes or identifier and keyword case, and literal
//! defaults compare as the values the column would store. Constraints that
//! mean the same wherever they are declared (a column's `UNIQUE` or
//! `REFERENCES`, a column's or the table's `CHECK`) are compared per table.

use std::fmt;

use super::model::{Column, Entity, FkAction, ForeignKey, IndexColumn, LengthLimit, Schema, Table};
use super::read::{Kind, tokenize};
use crate::types::SqlType;

/// Compares the `found` schema with the `expected` one. Entities match by
/// name, case-insensitively; differences come in the expected schema's
/// order, then the unexpected entities in the found schema's order.
pub fn compare(expected: &Schema, found: &Schema) -> SchemaDiff {
    let mut diff = SchemaDiff::default();
    for e in &expected.entities {
        let mut out = Out::new(&mut diff, e);
        match found.entity(e.name()) {
            None => out.change("missing", "", ""),
            Some(f) => compare_entity(e, f, &mut out),
        }
    }
    for f in &found.entities {
        if expected.entity(f.name()).is_none() {
            Out::new(&mut diff, f).change("unexpected", "", "");
        }
    }
    diff
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SchemaDiff {
    /// What differs in meaning; empty when the schemas are equivalent.
    pub differences: Vec<Difference>,
    /// Harmless observations, such as columns in another order.
    pub notes: Vec<String>,
}

impl SchemaDiff {
    /// Whether there are no differences (notes do not count).
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty()
    }
}

/// One line per difference, then one per note (`note: …`).
impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let differences = self.differences.iter().map(ToString::to_string);
        let notes = self.notes.iter().map(|n| format!("note: {n}"));
        f.write_str(&differences.chain(notes).collect::<Vec<_>>().join("\n"))
    }
}

/// One way the found schema differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The kind of the entity (the expected one's when both exist).
    pub kind: EntityKind,
    /// The entity's name, as the expected schema spells it when it has it.
    pub entity: String,
    /// What differs: `"missing"` or `"unexpected"` for a whole entity,
    /// otherwise the aspect, such as `"column due_date"` (the column is
    /// missing or unexpected), `"column due_date: type"`, `"primary key"`,
    /// `"check"`, `"unique key"`, `"foreign key"`, `"columns"`, `"where"`,
    /// `"select"`, `"sql"` or `"kind"`.
    pub what: String,
    /// The expected side, readable (`"INTEGER NULL"`, `"none"`); empty for a
    /// missing or unexpected entity.
    pub expected: String,
    /// The found side, readable (`"missing"`, `"none"`); empty for a missing
    /// or unexpected entity.
    pub found: String,
}

/// `table todos: column due_date: expected INTEGER NULL, found missing`.
impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.entity, self.what)?;
        if self.expected.is_empty() && self.found.is_empty() {
            return Ok(());
        }
        write!(f, ": expected {}, found {}", self.expected, self.found)
    }
}

/// The kind of a schema entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// An ordinary table.
    Table,
    /// A virtual table.
    VirtualTable,
    /// An index.
    Index,
    /// A view.
    View,
    /// A trigger.
    Trigger,
}

impl EntityKind {
    /// The kind of this entity.
    pub fn of(entity: &Entity) -> Self {
        match entity {
            Entity::Table(_) => EntityKind::Table,
            Entity::VirtualTable(_) => EntityKind::VirtualTable,
            Entity::Index(_) => EntityKind::Index,
            Entity::View(_) => EntityKind::View,
            Entity::Trigger(_) => EntityKind::Trigger,
        }
    }

    /// The kind in lowercase words, as messages name it (`"virtual table"`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Table => "table",
            EntityKind::VirtualTable => "virtual table",
            EntityKind::Index => "index",
            EntityKind::View => "view",
            EntityKind::Trigger => "trigger",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the differences of one entity go.
struct Out<'d> {
    diff: &'d mut SchemaDiff,
    kind: EntityKind,
    name: String,
}

impl<'d> Out<'d> {
    fn new(diff: &'d mut SchemaDiff, entity: &Entity) -> Self {
        let (kind, name) = (EntityKind::of(entity), entity.name().to_owned());
        Out { diff, kind, name }
    }

    fn change(&mut self, what: impl Into<String>, expected: &str, found: &str) {
        self.diff.differences.push(Difference {
            kind: self.kind,
            entity: self.name.clone(),
            what: what.into(),
            expected: expected.to_owned(),
            found: found.to_owned(),
        });
    }

    /// Records the aspects whose keys differ, their names after `prefix`.
    fn aspects(&mut self, prefix: &str, expected: Vec<Aspect>, found: Vec<Aspect>) {
        for (e, f) in expected.into_iter().zip(found) {
            if e.key != f.key {
                self.change(format!("{prefix}{}", e.what), &e.shown, &f.shown);
            }
        }
    }

    /// Records the constraints (`(key, shown)`) of a set without a match on
    /// the other side: the expected ones, then the found ones.
    fn set(&mut self, what: &str, expected: Vec<(String, String)>, found: Vec<(String, String)>) {
        let mut found: Vec<Option<(String, String)>> = found.into_iter().map(Some).collect();
        for (key, shown) in expected {
            let slot = found
                .iter_mut()
                .find(|f| f.as_ref().is_some_and(|f| f.0 == key));
            match slot {
                Some(slot) => *slot = None,
                None => self.change(what, &shown, "none"),
            }
        }
        for (_, shown) in found.into_iter().flatten() {
            self.change(what, "none", &shown);
        }
    }
}

/// One comparable aspect of an entity: what it is, a key that is equal on
/// both sides when they mean the same, and the text a message shows.
struct Aspect {
    what: &'static str,
    key: String,
    shown: String,
}

fn aspect(what: &'static str, key: String, shown: String) -> Aspect {
    Aspect { what, key, shown }
}

/// An aspect compared as its text, ignoring ASCII case.
fn plain(what: &'static str, text: &str) -> Aspect {
    aspect(what, text.to_ascii_lowercase(), text.to_owned())
}

/// An optional piece of SQL, compared normalized.
fn sql(what: &'static str, sql: Option<&str>) -> Aspect {
    aspect(what, format!("{:?}", sql.map(canonical)), or_none(sql))
}

/// `yes` or `no`.
fn pick(flag: bool, yes: &'static str, no: &'static str) -> &'static str {
    if flag { yes } else { no }
}

fn compare_entity(e: &Entity, f: &Entity, out: &mut Out<'_>) {
    let (e_kind, f_kind) = (EntityKind::of(e), EntityKind::of(f));
    if e_kind != f_kind {
        return out.change("kind", e_kind.as_str(), f_kind.as_str());
    }
    if let (Entity::Table(e), Entity::Table(f)) = (e, f) {
        return compare_table(e, f, out);
    }
    out.aspects("", aspects(e), aspects(f));
}

/// The aspects of an entity other than a table.
fn aspects(entity: &Entity) -> Vec<Aspect> {
    match entity {
        Entity::Table(_) => Vec::new(),
        Entity::VirtualTable(t) => {
            let arguments: Vec<String> = t.arguments.iter().map(|a| canonical(a)).collect();
            let arguments = aspect(
                "arguments",
                format!("{arguments:?}"),
                t.arguments.join(", "),
            );
            vec![plain("module", &t.module), arguments]
        }
        Entity::Index(i) => {
            let keys: Vec<(String, bool)> = i.columns.iter().map(index_key).collect();
            vec![
                plain("table", &i.table),
                plain("unique", pick(i.unique, "UNIQUE", "not unique")),
                aspect("columns", format!("{keys:?}"), index_columns(&i.columns)),
                sql("where", i.where_clause.as_deref()),
            ]
        }
        Entity::View(v) => vec![sql("select", Some(&v.select))],
        Entity::Trigger(t) => vec![sql("sql", Some(&t.sql))],
    }
}

fn compare_table(e: &Table, f: &Table, out: &mut Out<'_>) {
    for ec in &e.columns {
        let what = format!("column {}", ec.name);
        let Some(fc) = f.column(&ec.name) else {
            out.change(what, &describe_column(e, ec), "missing");
            continue;
        };
        let affinity = ec.sql_type;
        let (e_aspects, f_aspects) = (column(e, ec, affinity), column(f, fc, affinity));
        out.aspects(&format!("{what}: "), e_aspects, f_aspects);
    }
    for fc in f.columns.iter().filter(|c| e.column(&c.name).is_none()) {
        let what = format!("column {}", fc.name);
        out.change(what, "none", &describe_column(f, fc));
    }
    let (e_order, f_order) = (shared_columns(e, f), shared_columns(f, e));
    if !e_order.eq_ignore_ascii_case(&f_order) {
        let name = &e.name;
        let note =
            format!("table {name}: column order differs: expected ({e_order}), found ({f_order})");
        out.diff.notes.push(note);
    }
    out.aspects("", table(e), table(f));
    for ((what, e_set), (_, f_set)) in constraints(e).into_iter().zip(constraints(f)) {
        out.set(what, e_set, f_set);
    }
}

/// The names of `a`'s columns that `b` has too, in `a`'s order.
fn shared_columns(a: &Table, b: &Table) -> String {
    let names = a.columns.iter().map(|c| c.name.as_str());
    let shared: Vec<&str> = names.filter(|name| b.column(name).is_some()).collect();
    shared.join(", ")
}

/// The aspects of a column itself; its keys, checks and references are
/// compared with the table's constraints. Defaults compare as a column of
/// type `affinity` stores them.
fn column(table: &Table, c: &Column, affinity: SqlType) -> Vec<Aspect> {
    let default = c.default.as_deref();
    let generated = c.generated.as_ref();
    let generated_key = generated.map(|g| (canonical(&g.expression), g.stored));
    let generated_shown = generated.map_or("none".to_owned(), |g| {
        let storage = pick(g.stored, "STORED", "VIRTUAL");
        format!("AS ({}) {storage}", g.expression)
    });
    let generated = aspect("generated", format!("{generated_key:?}"), generated_shown);
    vec![
        plain("type", c.sql_type.sql_name()),
        plain("nullability", nullability(table, c)),
        plain(
            "autoincrement",
            pick(c.auto_increment, "AUTOINCREMENT", "none"),
        ),
        aspect("default", default_key(default, affinity), or_none(default)),
        plain("length", &describe_length(c.length)),
        generated,
        sql("constraint", c.custom.as_deref()),
    ]
}

/// The table's own aspects besides its columns and constraint sets.
fn table(t: &Table) -> Vec<Aspect> {
    let rowid = pick(t.without_rowid, "WITHOUT ROWID", "rowid");
    let key = key_list(&t.primary_key_columns());
    let strict = plain("strict", pick(t.strict, "STRICT", "not STRICT"));
    vec![
        plain("primary key", &key),
        plain("without rowid", rowid),
        strict,
    ]
}

/// The table's unique keys, checks and foreign keys as `(key, shown)`,
/// wherever they are declared (on a column or the table).
fn constraints(t: &Table) -> [(&'static str, Vec<(String, String)>); 3] {
    let unique_columns = t.columns.iter().filter(|c| c.unique);
    let column_keys = unique_columns.map(|c| vec![c.name.as_str()]);
    let table_keys = t
        .unique_keys
        .iter()
        .map(|k| k.iter().map(String::as_str).collect());
    let unique = column_keys.chain(table_keys).map(|key: Vec<&str>| {
        let mut sorted: Vec<String> = key.iter().map(|n| n.to_ascii_lowercase()).collect();
        sorted.sort();
        (format!("{sorted:?}"), key_list(&key))
    });
    let column_checks = t.columns.iter().flat_map(|c| &c.checks);
    let check = |c: &String| (canonical(c), c.trim().to_owned());
    let checks = column_checks.chain(&t.checks).map(check);
    let references = t.columns.iter().filter_map(|c| {
        let r = c.references.as_ref()?;
        Some(ForeignKey {
            columns: vec![c.name.clone()],
            table: r.table.clone(),
            references: vec![r.column.clone()],
            on_delete: r.on_delete,
            on_update: r.on_update,
        })
    });
    let foreign_keys = references.chain(t.foreign_keys.iter().cloned()).map(|fk| {
        let shown = describe_fk(&fk);
        (shown.to_ascii_lowercase(), shown)
    });
    [
        ("unique key", unique.collect()),
        ("check", checks.collect()),
        ("foreign key", foreign_keys.collect()),
    ]
}

/// `NULL` or `NOT NULL` as SQLite enforces it: an `INTEGER PRIMARY KEY`
/// (the rowid) and the key columns of a `WITHOUT ROWID` table never hold
/// `NULL`, whether or not `NOT NULL` is declared.
fn nullability(table: &Table, column: &Column) -> &'static str {
    let key = table.primary_key_columns();
    let in_key = key.iter().any(|k| k.eq_ignore_ascii_case(&column.name));
    let rowid = !table.without_rowid && key.len() == 1 && column.sql_type == SqlType::Integer;
    if !column.nullable || (in_key && (rowid || table.without_rowid)) {
        return "NOT NULL";
    }
    "NULL"
}

fn describe_column(table: &Table, column: &Column) -> String {
    let null = nullability(table, column);
    format!("{} {null}", column.sql_type.sql_name())
}

fn describe_length(limit: Option<LengthLimit>) -> String {
    match limit.map(|l| (l.min, l.max)) {
        Some((Some(min), Some(max))) => format!("{min} to {max} characters"),
        Some((Some(min), None)) => format!("at least {min} characters"),
        Some((None, Some(max))) => format!("at most {max} characters"),
        _ => "none".to_owned(),
    }
}

fn describe_fk(fk: &ForeignKey) -> String {
    let (columns, references) = (fk.columns.join(", "), fk.references.join(", "));
    let mut text = format!("({columns}) REFERENCES {} ({references})", fk.table);
    for (event, action) in [("DELETE", fk.on_delete), ("UPDATE", fk.on_update)] {
        if action != FkAction::NoAction {
            text.push_str(&format!(" ON {event} {}", action.sql()));
        }
    }
    text
}

fn or_none(sql: Option<&str>) -> String {
    sql.map_or("none", str::trim).to_owned()
}

fn key_list(names: &[&str]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    format!("({})", names.join(", "))
}

fn index_key(column: &IndexColumn) -> (String, bool) {
    match column {
        IndexColumn::Column { name, descending } => (identifier(name), *descending),
        IndexColumn::Expression { sql, descending } => (canonical(sql), *descending),
    }
}

fn index_columns(columns: &[IndexColumn]) -> String {
    let column = |c: &IndexColumn| {
        let (text, descending) = match c {
            IndexColumn::Column { name, descending } => (name, *descending),
            IndexColumn::Expression { sql, descending } => (sql, *descending),
        };
        let direction = if descending { " DESC" } else { "" };
        format!("{text}{direction}")
    };
    let columns: Vec<String> = columns.iter().map(column).collect();
    format!("({})", columns.join(", "))
}

/// SQL as a sequence of tokens that keeps only its meaning: identifiers
/// (quoted or not) and keywords lowercased as [`Kind::Word`], string literals
/// verbatim, `==` as `=` and `!=` as `<>`, without trailing semicolons or
/// parentheses around the whole. SQL that cannot be tokenized is one token
/// of its text.
fn normalize(sql: &str) -> Vec<(Kind, String)> {
    let Ok(tokens) = tokenize(sql) else {
        return vec![(Kind::Op, sql.trim().to_owned())];
    };
    let token = |t: super::read::Token| {
        let text = &sql[t.start..t.end];
        match t.kind {
            Kind::Word | Kind::Quoted => (Kind::Word, t.value.to_ascii_lowercase()),
            Kind::Str => (Kind::Str, t.value),
            Kind::Op if text == "==" => (Kind::Op, "=".to_owned()),
            Kind::Op if text == "!=" => (Kind::Op, "<>".to_owned()),
            kind => (kind, text.to_ascii_lowercase().replace('_', "")),
        }
    };
    let mut out: Vec<(Kind, String)> = tokens.into_iter().map(token).collect();
    while out.last().is_some_and(|t| t.0 == Kind::Semicolon) {
        out.pop();
    }
    while wrapped(&out) {
        out.pop();
        out.remove(0);
    }
    out
}

/// Normalized SQL as one string, equal for SQL that means the same.
fn canonical(sql: &str) -> String {
    render(&normalize(sql))
}

fn render(tokens: &[(Kind, String)]) -> String {
    let token = |(kind, text): &(Kind, String)| match kind {
        Kind::Word => identifier(text),
        Kind::Str => format!("'{}'", text.replace('\'', "''")),
        _ => text.clone(),
    };
    tokens.iter().map(token).collect::<Vec<_>>().join(" ")
}

/// An identifier in the one spelling [`canonical`] gives it.
fn identifier(name: &str) -> String {
    format!("\"{}\"", name.to_ascii_lowercase().replace('"', "\"\""))
}

/// Whether the first token is a `(` matched by the last.
fn wrapped(tokens: &[(Kind, String)]) -> bool {
    if tokens.len() < 2 || tokens[0].0 != Kind::LParen {
        return false;
    }
    let mut depth = 0usize;
    for (i, (kind, _)) in tokens.iter().enumerate() {
        match kind {
            Kind::LParen => depth += 1,
            Kind::RParen => depth = depth.saturating_sub(1),
            _ => continue,
        }
        if depth == 0 {
            return i == tokens.len() - 1;
        }
    }
    false
}

/// A literal `DEFAULT` value.
enum Literal {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(String),
}

/// A key equal for defaults (no default is `NULL`) that give the same value
/// in a column of type `affinity`: a literal as the value the column stores
/// (`0` and `0.0` alike in a numeric column, `0` and `'0'` in a `TEXT` one,
/// `TRUE` as `1`), anything else as normalized SQL.
fn default_key(default: Option<&str>, affinity: SqlType) -> String {
    let tokens = normalize(default.unwrap_or("NULL"));
    let Some(value) = literal(&tokens) else {
        return render(&tokens);
    };
    let value = match (affinity, value) {
        (SqlType::Integer | SqlType::Real, Literal::Text(text)) => {
            let t = text.trim();
            let numeric = t
                .bytes()
                .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c));
            match number(t) {
                Some(number) if numeric => number,
                _ => Literal::Text(text),
            }
        }
        (SqlType::Text, Literal::Int(i)) => Literal::Text(i.to_string()),
        (_, value) => value,
    };
    let integral = |r: f64| affinity != SqlType::Text && r.fract() == 0.0 && r.abs() < 9e18;
    match value {
        Literal::Null => "NULL".to_owned(),
        Literal::Int(i) => format!("integer {i}"),
        Literal::Real(r) if integral(r) => format!("integer {}", r as i64),
        Literal::Real(r) => format!("real {r:?}"),
        Literal::Text(text) => format!("text {text:?}"),
        Literal::Blob(hex) => format!("blob {hex}"),
    }
}

fn literal(tokens: &[(Kind, String)]) -> Option<Literal> {
    match tokens {
        [(Kind::Word, word)] => match word.as_str() {
            "null" => Some(Literal::Null),
            "true" => Some(Literal::Int(1)),
            "false" => Some(Literal::Int(0)),
            _ => None,
        },
        [(Kind::Str, text)] => Some(Literal::Text(text.clone())),
        [(Kind::Blob, hex)] => Some(Literal::Blob(hex.clone())),
        [(Kind::Number, n)] => number(n),
        [(Kind::Op, sign), (Kind::Number, n)] if sign == "+" => number(n),
        [(Kind::Op, sign), (Kind::Number, n)] if sign == "-" => match number(n)? {
            Literal::Int(i) => Some(
                i.checked_neg()
                    .map_or(Literal::Real(-(i as f64)), Literal::Int),
            ),
            Literal::Real(r) => Some(Literal::Real(-r)),
            _ => None,
        },
        _ => None,
    }
}

/// A numeric literal's value (`text` lowercase, without `_` separators).
fn number(text: &str) -> Option<Literal> {
    if let Some(hex) = text.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16)
            .ok()
            .map(|v| Literal::Int(v as i64));
    }
    if !text.contains(['.', 'e'])
        && let Ok(i) = text.parse()
    {
        return Some(Literal::Int(i));
    }
    text.parse().ok().map(Literal::Real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use crate::schema::read::{SchemaRow, parse_schema};

    /// A schema from `CREATE` statements, each row named by the word after
    /// `TABLE`, `INDEX`, `VIEW` or `TRIGGER`.
    fn schema(statements: &[&str]) -> Result<Schema> {
        let kinds = ["table", "index", "view", "trigger"];
        let rows = statements.iter().map(|sql| {
            let tokens = tokenize(sql).expect("tokens");
            let words: Vec<String> = tokens.into_iter().map(|t| t.value).collect();
            let is_kind = |w: &String| kinds.iter().any(|k| w.eq_ignore_ascii_case(k));
            let at = words.iter().position(is_kind).expect("an object type");
            let name = words[at + 1].clone();
            let kind = words[at].to_ascii_lowercase();
            let (table, sql) = (name.clone(), Some((*sql).to_owned()));
            SchemaRow {
                kind,
                name,
                table,
                sql,
            }
        });
        parse_schema(rows.collect::<Vec<_>>())
    }

    /// The diff's text, `found` against `expected`.
    fn check(expected: &[&str], found: &[&str]) -> Result<String> {
        Ok(compare(&schema(expected)?, &schema(found)?).to_string())
    }

    const CANONICAL: [&str; 6] = [
        "CREATE TABLE \"todos\" (\"id\" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, \
         \"title\" TEXT NOT NULL CHECK (length(\"title\") BETWEEN 1 AND 50), \
         \"done\" INTEGER NOT NULL DEFAULT (0) CHECK (\"done\" IN (0, 1)), \
         \"note\" TEXT DEFAULT ('it''s') COLLATE NOCASE, \
         \"owner\" INTEGER REFERENCES \"users\" (\"id\") ON DELETE CASCADE, \
         UNIQUE (\"title\", \"owner\"))",
        "CREATE TABLE \"users\" (\"id\" INTEGER NOT NULL, \"name\" TEXT NOT NULL UNIQUE, \
         PRIMARY KEY (\"id\")) STRICT",
        "CREATE VIRTUAL TABLE \"search\" USING fts5(\"title\", tokenize = 'porter')",
        "CREATE INDEX \"by_owner\" ON \"todos\" (\"owner\" DESC, lower(\"title\")) \
         WHERE \"done\" = 0",
        "CREATE VIEW \"open\" AS SELECT \"id\", \"title\" FROM \"todos\" WHERE \"done\" = 0",
        "CREATE TRIGGER \"stamp\" AFTER INSERT ON \"todos\" BEGIN \
         UPDATE \"todos\" SET \"note\" = 'New' WHERE \"id\" = NEW.\"id\"; END",
    ];

    #[test]
    fn identical_schemas_have_no_differences() -> Result<()> {
        let diff = compare(&schema(&CANONICAL)?, &schema(&CANONICAL)?);
        assert!(diff.is_empty() && diff.notes.is_empty(), "{diff}");
        Ok(())
    }

    /// Quotes, case, whitespace, comments, redundant parentheses, `==`, a
    /// rowid key without `NOT NULL` and constraints declared on the table
    /// instead of the column mean the same.
    #[test]
    fn spelling_is_not_a_difference() -> Result<()> {
        let found = [
            "create table TODOS (ID integer primary key autoincrement, -- the key\n\
             [title] varchar(50) not null check(LENGTH(title) between 1 and 50), \
             `done` int not null default FALSE check ((done in (0,1))), \
             note text collate nocase default 'it''s', owner bigint, unique (OWNER, title), \
             foreign key (owner) references USERS (ID) on delete cascade)",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, UNIQUE (name)) STRICT",
            "create virtual table search using FTS5(title, tokenize='porter')",
            "create index BY_OWNER on todos(owner desc, LOWER(title)) where done == 0",
            "CREATE VIEW open AS\n  select id, title /* open ones */ from todos where done = 0",
            "create trigger stamp after insert on todos begin \
             update todos set note = 'New' where id = new.id; end;",
        ];
        assert_eq!(check(&CANONICAL, &found)?, "");
        Ok(())
    }

    #[test]
    fn column_order_is_only_a_note() -> Result<()> {
        let expected = schema(&["CREATE TABLE t (a INTEGER, b TEXT, c BLOB)"])?;
        let found = schema(&["CREATE TABLE t (b TEXT, c BLOB, a INTEGER)"])?;
        let diff = compare(&expected, &found);
        assert!(diff.is_empty());
        let note = "note: table t: column order differs: expected (a, b, c), found (b, c, a)";
        assert_eq!(diff.to_string(), note);
        Ok(())
    }

    #[test]
    fn defaults_compare_as_values() -> Result<()> {
        let table = |ty: &str, default: &str| match default {
            "" => format!("CREATE TABLE t (a {ty})"),
            default => format!("CREATE TABLE t (a {ty} DEFAULT {default})"),
        };
        let same = [
            ("INTEGER", "0", "(0)"),
            ("INTEGER", "0", "+0"),
            ("INTEGER", "-1", "(-1)"),
            ("INTEGER", "1", "TRUE"),
            ("INTEGER", "0", "'0'"),
            ("INTEGER", "NULL", ""),
            ("INTEGER", "0x10", "16"),
            ("REAL", "0.0", "0"),
            ("TEXT", "0", "'0'"),
            ("TEXT", "'abc'", "('abc')"),
            ("BLOB", "x'00FF'", "X'00ff'"),
            ("ANY", "CURRENT_TIMESTAMP", "(current_timestamp)"),
            (
                "TEXT",
                "(strftime('%s', 'now'))",
                "(STRFTIME ( '%s','now' ))",
            ),
        ];
        for (ty, a, b) in same {
            let diff = check(&[&table(ty, a)], &[&table(ty, b)])?;
            assert_eq!(diff, "", "{ty} {a} vs {b}");
        }
        let differ = [
            ("TEXT", "'abc'", "'ABC'", "'abc', found 'ABC'"),
            ("TEXT", "0", "0.0", "0, found 0.0"),
            ("INTEGER", "1", "", "1, found none"),
            (
                "TEXT",
                "(lower('A'))",
                "(upper('A'))",
                "lower('A'), found upper('A')",
            ),
        ];
        for (ty, a, b, shown) in differ {
            let diff = check(&[&table(ty, a)], &[&table(ty, b)])?;
            assert_eq!(
                diff,
                format!("table t: column a: default: expected {shown}")
            );
        }
        Ok(())
    }

    #[test]
    fn each_change_is_one_readable_difference() -> Result<()> {
        let expected = [
            "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, \
             done INTEGER NOT NULL, due_date INTEGER)",
            "CREATE INDEX by_title ON todos (title)",
            "CREATE VIEW v AS SELECT title FROM todos",
            "CREATE VIEW w AS SELECT 1",
        ];
        let found = [
            "CREATE TABLE todos (id INTEGER PRIMARY KEY, title INTEGER NOT NULL, done INTEGER, \
             x, CHECK (title <> ''))",
            "CREATE VIEW v AS SELECT title FROM todos WHERE done = 0",
            "CREATE TABLE w (a)",
            "CREATE TRIGGER g AFTER DELETE ON todos BEGIN SELECT 1; END",
        ];
        let expected_text = "\
table todos: column title: type: expected TEXT, found INTEGER
table todos: column done: nullability: expected NOT NULL, found NULL
table todos: column due_date: expected INTEGER NULL, found missing
table todos: column x: expected none, found ANY NULL
table todos: check: expected none, found title <> ''
index by_title: missing
view v: select: expected SELECT title FROM todos, found SELECT title FROM todos WHERE done = 0
view w: kind: expected view, found table
trigger g: unexpected";
        assert_eq!(check(&expected, &found)?, expected_text);
        Ok(())
    }

    #[test]
    fn keys_constraints_and_indexes_are_compared_by_meaning() -> Result<()> {
        let expected = [
            "CREATE TABLE p (a INTEGER, b TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID",
            "CREATE TABLE c (id INTEGER PRIMARY KEY AUTOINCREMENT, a INTEGER REFERENCES p (a), \
             b TEXT UNIQUE, v INT AS (a + 1) STORED)",
            "CREATE UNIQUE INDEX i ON c (a DESC, lower(b)) WHERE a > 0",
            "CREATE VIRTUAL TABLE s USING fts5(a, b)",
        ];
        let found = [
            "CREATE TABLE p (a INTEGER NOT NULL, b TEXT, PRIMARY KEY (b, a))",
            "CREATE TABLE c (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, v INT AS ((a + 1)) VIRTUAL, \
             FOREIGN KEY (a) REFERENCES p (a) ON DELETE CASCADE)",
            "CREATE INDEX i ON c (a, lower(b))",
            "CREATE VIRTUAL TABLE s USING fts5(b, a)",
        ];
        let expected_text = "\
table p: column b: nullability: expected NOT NULL, found NULL
table p: primary key: expected (a, b), found (b, a)
table p: without rowid: expected WITHOUT ROWID, found rowid
table c: column id: autoincrement: expected AUTOINCREMENT, found none
table c: column v: generated: expected AS (a + 1) STORED, found AS ((a + 1)) VIRTUAL
table c: unique key: expected (b), found none
table c: foreign key: expected (a) REFERENCES p (a), found none
table c: foreign key: expected none, found (a) REFERENCES p (a) ON DELETE CASCADE
virtual table s: arguments: expected a, b, found b, a
index i: unique: expected UNIQUE, found not unique
index i: columns: expected (a DESC, lower(b)), found (a, lower(b))
index i: where: expected a > 0, found none";
        assert_eq!(check(&expected, &found)?, expected_text);
        Ok(())
    }
}
