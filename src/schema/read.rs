//! Reading a schema back from the `CREATE` statements a live database keeps
//! in `sqlite_schema`: a pure parser (no I/O) from those rows to the schema
//! model.
//!
//! The canonical statements of [`super::sql`] parse back exactly, so a schema
//! survives `create_statement` → SQLite → [`parse_schema`] unchanged. SQL
//! written by hand or by other tools is read too, within what the model can
//! hold: see [`parse_schema`] for what is normalized, what is kept verbatim
//! and what is refused.
//!
//! The parser works on tokens (a small tokenizer) and takes every expression as
//! the exact source text between balanced parentheses, so it never needs to
//! understand SQL expressions, only the statement shapes around them.

use super::model::{
    Column, Entity, FkAction, ForeignKey, Generated, Index, IndexColumn, LengthLimit, Reference,
    Schema, Table, Trigger, View, VirtualTable,
};
use super::sql::quote_ident;
use crate::error::{Error, Result};
use crate::types::SqlType;

/// One row of `SELECT type, name, tbl_name, sql FROM sqlite_schema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRow {
    /// The object type: `"table"` (also for virtual tables), `"index"`,
    /// `"view"` or `"trigger"`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// The table the object belongs to (`tbl_name`): the indexed table of an
    /// index, the table a trigger fires on, the object itself otherwise.
    pub table: String,
    /// The `CREATE` statement; `None` for the automatic indexes behind
    /// `UNIQUE` and `PRIMARY KEY` constraints.
    pub sql: Option<String>,
}

/// Reads a schema from the rows of `sqlite_schema`.
///
/// # Contract with the caller
///
/// The caller runs `SELECT type, name, tbl_name, sql FROM sqlite_schema` in
/// its natural (rowid, that is creation) order and passes every row except
/// SQLite's internal objects (names starting with `sqlite_`, such as
/// `sqlite_sequence` and `sqlite_stat1`) and the shadow tables of virtual
/// tables (the rows whose name `PRAGMA table_list` reports with type
/// `'shadow'`, such as an FTS5 table's `…_data` and `…_content`). Rows named
/// `sqlite_…` are skipped here as well, as are rows without SQL (automatic
/// indexes); shadow tables cannot be recognised from their rows alone and
/// would come back as ordinary tables.
///
/// # What comes back
///
/// The statements produced by [`super::sql::create_statement`] parse back to
/// the entities they were made from, so the result equals (`==`) the schema
/// that created the database, put in order by [`Schema::new`]. Other SQL is
/// read as follows:
///
/// - **Type names are normalized** to [`SqlType`] by SQLite's affinity rules:
///   a name containing `INT` is `Integer`; `CHAR`, `CLOB` or `TEXT` is
///   `Text`; `BLOB` is `Blob` (SQLite gives it the same affinity as no type,
///   but the intent to store bytes is plain); `REAL`, `FLOA` or `DOUB` is
///   `Real`; no type (or `ANY`) is `Any`; anything else (`NUMERIC`, `DECIMAL`,
///   `BOOLEAN`, `DATE`) is `Numeric`, SQLite's NUMERIC affinity.
///   `varchar(20)` thus reads as `Text` and is written back as `TEXT`.
/// - `DEFAULT` keeps its expression's text: `DEFAULT (expr)` without the
///   parentheses, `DEFAULT 0`, `DEFAULT -1`, `DEFAULT 'x'` or
///   `DEFAULT CURRENT_TIMESTAMP` as written.
/// - `CHECK (length(col) BETWEEN a AND b)` (or `>= a`, `<= b`) on that same
///   column becomes [`Column::length`]; other checks keep their text.
/// - A column constraint the model has no field for (`COLLATE`, a named
///   `CONSTRAINT`, an `ON CONFLICT` clause, `PRIMARY KEY DESC`, a
///   `REFERENCES` without exactly one column or with `MATCH`/`DEFERRABLE`)
///   is kept verbatim in [`Column::custom`], so recreating the table keeps
///   its behaviour; several such constraints are joined by a space.
/// - Names of table constraints (`CONSTRAINT name PRIMARY KEY …`) are
///   dropped; they only appear in error messages. A table constraint whose
///   behaviour the model cannot hold (an `ON CONFLICT` other than `ABORT`,
///   `COLLATE` or `DESC` on a key column, a `FOREIGN KEY` without referenced
///   columns or with `MATCH`/`DEFERRABLE`) is an error rather than a silent
///   change.
/// - An index column that is not a bare column name becomes an
///   [`IndexColumn::Expression`] (`name COLLATE NOCASE` included).
/// - A trigger keeps its whole statement and takes its table from
///   `tbl_name`. SQLite stores every statement from `CREATE TRIGGER name` on,
///   dropping `TEMP` and `IF NOT EXISTS`, so trigger SQL written that way
///   round-trips exactly.
///
/// # Errors
///
/// [`Error::Schema`] naming the object and what could not be parsed, e.g.
/// `cannot read table "t": expected a column name, found `)``.
pub fn parse_schema(rows: impl IntoIterator<Item = SchemaRow>) -> Result<Schema> {
    let mut entities = Vec::new();
    for row in rows {
        let Some(sql) = &row.sql else { continue };
        if row
            .name
            .as_bytes()
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"sqlite_"))
        {
            continue;
        }
        let entity = parse_row(&row, sql).map_err(|message| {
            Error::schema(format!(
                "cannot read {} {}: {message}",
                row.kind,
                quote_ident(&row.name)
            ))
        })?;
        entities.push(entity);
    }
    Ok(Schema::new(entities))
}

/// What a `CREATE` statement creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    Table,
    VirtualTable,
    Index { unique: bool },
    View,
    Trigger,
}

impl Head {
    fn row_kind(self) -> &'static str {
        match self {
            Head::Table | Head::VirtualTable => "table",
            Head::Index { .. } => "index",
            Head::View => "view",
            Head::Trigger => "trigger",
        }
    }
}

/// Parses one row; the error is the message without the object's name.
fn parse_row(row: &SchemaRow, sql: &str) -> std::result::Result<Entity, String> {
    if !["table", "index", "view", "trigger"].contains(&row.kind.as_str()) {
        return Err(format!("unknown schema object type `{}`", row.kind));
    }
    let mut p = Parser::new(sql)?;
    let head = p.head()?;
    if head.row_kind() != row.kind {
        return Err(format!(
            "the statement creates {}, not {}",
            with_article(head.row_kind()),
            with_article(&row.kind)
        ));
    }
    let entity = match head {
        Head::Trigger => {
            let trigger = Trigger {
                name: row.name.clone(),
                table: row.table.clone(),
                sql: sql.to_owned(),
            };
            return Ok(Entity::Trigger(trigger));
        }
        Head::Table => {
            let name = p.qualified_name("a table name")?;
            Entity::Table(p.table(name)?)
        }
        Head::VirtualTable => {
            let name = p.qualified_name("a table name")?;
            Entity::VirtualTable(p.virtual_table(name)?)
        }
        Head::Index { unique } => {
            let name = p.qualified_name("an index name")?;
            Entity::Index(p.index(name, unique)?)
        }
        Head::View => {
            let name = p.qualified_name("a view name")?;
            Entity::View(p.view(name)?)
        }
    };
    if !p.at_end() {
        return Err(format!("unexpected {} after the statement", p.found()));
    }
    Ok(entity)
}

fn with_article(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

/// The kinds of tokens [`tokenize`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare identifier or keyword.
    Word,
    /// A quoted identifier: `"x"`, `` `x` `` or `[x]`.
    Quoted,
    /// A string literal `'x'`.
    Str,
    /// A blob literal `x'00'`.
    Blob,
    /// A numeric literal.
    Number,
    LParen,
    RParen,
    Comma,
    Semicolon,
    Dot,
    /// Any other operator or punctuation.
    Op,
}

/// One token: its kind, its byte span in the source, and for identifiers
/// and strings the unescaped value.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) value: String,
}

/// Splits SQL into tokens, skipping whitespace and comments.
pub(crate) fn tokenize(src: &str) -> std::result::Result<Vec<Token>, String> {
    let b = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let next = b.get(i + 1).copied();
        let (kind, end, value) = match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                i += 1;
                continue;
            }
            b'-' if next == Some(b'-') => {
                i = src[i..].find('\n').map_or(b.len(), |n| i + n + 1);
                continue;
            }
            b'/' if next == Some(b'*') => {
                i = src[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                continue;
            }
            b'\'' => {
                let (value, end) = quoted(src, i, b'\'', "string literal")?;
                (Kind::Str, end, value)
            }
            b'"' => {
                let (value, end) = quoted(src, i, b'"', "quoted identifier")?;
                (Kind::Quoted, end, value)
            }
            b'`' => {
                let (value, end) = quoted(src, i, b'`', "quoted identifier")?;
                (Kind::Quoted, end, value)
            }
            b'[' => {
                let Some(n) = src[i + 1..].find(']') else {
                    return Err(format!("unterminated quoted identifier at byte {i}"));
                };
                (
                    Kind::Quoted,
                    i + 1 + n + 1,
                    src[i + 1..i + 1 + n].to_owned(),
                )
            }
            b'x' | b'X' if next == Some(b'\'') => {
                let (_, end) = quoted(src, i + 1, b'\'', "blob literal")?;
                (Kind::Blob, end, String::new())
            }
            b'0'..=b'9' => (Kind::Number, number_end(b, i), String::new()),
            b'.' if next.is_some_and(|c| c.is_ascii_digit()) => {
                (Kind::Number, number_end(b, i), String::new())
            }
            b'(' => (Kind::LParen, i + 1, String::new()),
            b')' => (Kind::RParen, i + 1, String::new()),
            b',' => (Kind::Comma, i + 1, String::new()),
            b';' => (Kind::Semicolon, i + 1, String::new()),
            b'.' => (Kind::Dot, i + 1, String::new()),
            c if is_ident_start(c) => {
                let mut end = i + 1;
                while end < b.len() && is_ident_continue(b[end]) {
                    end += 1;
                }
                (Kind::Word, end, src[i..end].to_owned())
            }
            _ => (Kind::Op, operator_end(b, i), String::new()),
        };
        tokens.push(Token {
            kind,
            start,
            end,
            value,
        });
        i = end;
    }
    Ok(tokens)
}

/// Reads a quoted run starting at `open` (the opening quote), where a
/// doubled quote stands for one: the unescaped content and the end offset.
fn quoted(
    src: &str,
    open: usize,
    quote: u8,
    what: &str,
) -> std::result::Result<(String, usize), String> {
    let b = src.as_bytes();
    let mut value = String::new();
    let mut from = open + 1;
    let mut i = open + 1;
    while i < b.len() {
        if b[i] != quote {
            i += 1;
            continue;
        }
        value.push_str(&src[from..i]);
        if b.get(i + 1) == Some(&quote) {
            value.push(quote as char);
            i += 2;
            from = i;
            continue;
        }
        return Ok((value, i + 1));
    }
    Err(format!("unterminated {what} at byte {open}"))
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_continue(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The end of a numeric literal starting at `i`: decimal with optional
/// fraction and exponent (and `_` digit separators), or hexadecimal.
fn number_end(b: &[u8], i: usize) -> usize {
    let digits = |mut j: usize, hex: bool| {
        while j < b.len()
            && (b[j] == b'_'
                || if hex {
                    b[j].is_ascii_hexdigit()
                } else {
                    b[j].is_ascii_digit()
                })
        {
            j += 1;
        }
        j
    };
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        return digits(i + 2, true);
    }
    let mut j = digits(i, false);
    if b.get(j) == Some(&b'.') {
        j = digits(j + 1, false);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(j + 1), Some(b'+' | b'-')));
        if b.get(j + 1 + sign).is_some_and(u8::is_ascii_digit) {
            j = digits(j + 1 + sign, false);
        }
    }
    j
}

/// The end of an operator starting at `i` (the longest of SQLite's
/// operators that matches, else one character).
fn operator_end(b: &[u8], i: usize) -> usize {
    const LONG: [&[u8]; 10] = [
        b"->>", b"||", b"<=", b">=", b"==", b"!=", b"<>", b"<<", b">>", b"->",
    ];
    let rest = &b[i..];
    if let Some(op) = LONG.iter().find(|op| rest.starts_with(op)) {
        return i + op.len();
    }
    // One character, which may be a multi-byte one.
    let mut end = i + 1;
    while end < b.len() && (b[end] & 0xC0) == 0x80 {
        end += 1;
    }
    end
}

/// Keywords that end a column's type name and start a column constraint.
const COLUMN_CONSTRAINT_STARTS: [&str; 11] = [
    "CONSTRAINT",
    "PRIMARY",
    "NOT",
    "NULL",
    "UNIQUE",
    "CHECK",
    "DEFAULT",
    "COLLATE",
    "REFERENCES",
    "GENERATED",
    "AS",
];

/// Keywords that start a table constraint inside `CREATE TABLE (…)`.
const TABLE_CONSTRAINT_STARTS: [&str; 5] = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"];

/// The declared type of a column, normalized by SQLite's affinity rules (see
/// [`parse_schema`]).
fn sql_type(declared: &str) -> SqlType {
    let upper = declared.to_ascii_uppercase();
    match upper.as_str() {
        "INTEGER" => return SqlType::Integer,
        "REAL" => return SqlType::Real,
        "TEXT" => return SqlType::Text,
        "BLOB" => return SqlType::Blob,
        "ANY" | "" => return SqlType::Any,
        _ => {}
    }
    let has = |part: &str| upper.contains(part);
    if has("INT") {
        return SqlType::Integer;
    }
    if has("CHAR") || has("CLOB") || has("TEXT") {
        return SqlType::Text;
    }
    if has("BLOB") {
        return SqlType::Blob;
    }
    if has("REAL") || has("FLOA") || has("DOUB") {
        return SqlType::Real;
    }
    SqlType::Numeric
}

/// A cursor over the tokens of one statement, limited to `end` while a
/// parenthesized part (a column definition, a list item) is parsed.
struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
}

type Parsed<T> = std::result::Result<T, String>;

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Parsed<Self> {
        let mut tokens = tokenize(src)?;
        while tokens.last().is_some_and(|t| t.kind == Kind::Semicolon) {
            tokens.pop();
        }
        let end = tokens.len();
        Ok(Parser {
            src,
            tokens,
            pos: 0,
            end,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        let i = self.pos + ahead;
        if i < self.end {
            self.tokens.get(i)
        } else {
            None
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    fn peek_kind(&self) -> Option<Kind> {
        self.peek().map(|t| t.kind)
    }

    fn is_kw_at(&self, ahead: usize, keyword: &str) -> bool {
        self.peek_at(ahead)
            .is_some_and(|t| t.kind == Kind::Word && t.value.eq_ignore_ascii_case(keyword))
    }

    fn is_kw(&self, keyword: &str) -> bool {
        self.is_kw_at(0, keyword)
    }

    fn eat_kw(&mut self, keyword: &str) -> bool {
        let found = self.is_kw(keyword);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect_kw(&mut self, keyword: &str) -> Parsed<()> {
        if self.eat_kw(keyword) {
            return Ok(());
        }
        Err(format!("expected {keyword}, found {}", self.found()))
    }

    fn eat_kind(&mut self, kind: Kind) -> bool {
        let found = self.peek_kind() == Some(kind);
        if found {
            self.pos += 1;
        }
        found
    }

    /// The next token for an error message; past the current limit it names
    /// the token that ends the part being parsed.
    fn found(&self) -> String {
        match self.tokens.get(self.pos) {
            Some(t) => format!("`{}`", &self.src[t.start..t.end]),
            None => "end of statement".to_owned(),
        }
    }

    /// The source text from token `from` up to (not including) token `to`.
    fn slice(&self, from: usize, to: usize) -> &'s str {
        if from >= to {
            return "";
        }
        &self.src[self.tokens[from].start..self.tokens[to - 1].end]
    }

    /// The text of everything left, consumed.
    fn rest(&mut self) -> &'s str {
        let text = self.slice(self.pos, self.end);
        self.pos = self.end;
        text
    }

    /// A name: a bare or quoted identifier (or a string, which SQLite also
    /// accepts as a name).
    fn name(&mut self, what: &str) -> Parsed<String> {
        match self.peek() {
            Some(t) if matches!(t.kind, Kind::Word | Kind::Quoted | Kind::Str) => {
                let value = t.value.clone();
                self.pos += 1;
                Ok(value)
            }
            _ => Err(format!("expected {what}, found {}", self.found())),
        }
    }

    /// A name that may be qualified by a schema (`main.t`); the schema is dropped.
    fn qualified_name(&mut self, what: &str) -> Parsed<String> {
        let name = self.name(what)?;
        if self.eat_kind(Kind::Dot) {
            return self.name(what);
        }
        Ok(name)
    }

    /// The index of the `)` matching the `(` at token `open`.
    fn matching(&self, open: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (i, t) in self.tokens.iter().enumerate().take(self.end).skip(open) {
            match t.kind {
                Kind::LParen => depth += 1,
                Kind::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// A parenthesized group: the token range inside it; the cursor moves
    /// past the closing parenthesis.
    fn group(&mut self, what: &str) -> Parsed<(usize, usize)> {
        if self.peek_kind() != Some(Kind::LParen) {
            return Err(format!("expected `(` {what}, found {}", self.found()));
        }
        let Some(close) = self.matching(self.pos) else {
            return Err(format!("unbalanced parentheses {what}"));
        };
        let inner = (self.pos + 1, close);
        self.pos = close + 1;
        Ok(inner)
    }

    /// The exact source text between balanced parentheses.
    fn paren_text(&mut self, what: &str) -> Parsed<String> {
        let (from, to) = self.group(what)?;
        if from == to {
            return Err(format!("empty parentheses {what}"));
        }
        Ok(self.slice(from, to).to_owned())
    }

    /// Splits the token range at its top-level commas.
    fn split_commas(&self, from: usize, to: usize) -> Vec<(usize, usize)> {
        if from == to {
            return Vec::new();
        }
        let mut parts = Vec::new();
        let mut depth = 0usize;
        let mut start = from;
        for i in from..to {
            match self.tokens[i].kind {
                Kind::LParen => depth += 1,
                Kind::RParen => depth = depth.saturating_sub(1),
                Kind::Comma if depth == 0 => {
                    parts.push((start, i));
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push((start, to));
        parts
    }

    /// Runs `parse` over the token range `from..to` as if it were the whole
    /// input, requiring it to consume everything, then restores the cursor.
    fn within<T>(
        &mut self,
        (from, to): (usize, usize),
        parse: impl FnOnce(&mut Self) -> Parsed<T>,
    ) -> Parsed<T> {
        let (saved_pos, saved_end) = (self.pos, self.end);
        self.pos = from;
        self.end = to;
        let result = parse(self).and_then(|value| {
            if self.at_end() {
                return Ok(value);
            }
            Err(format!("unexpected {}", self.found()))
        });
        self.pos = saved_pos;
        self.end = saved_end;
        result
    }

    /// A list of names in parentheses, `(a, b)`.
    fn name_list(&mut self, what: &str) -> Parsed<Vec<String>> {
        let (from, to) = self.group(what)?;
        let parts = self.split_commas(from, to);
        if parts.is_empty() {
            return Err(format!("empty column list {what}"));
        }
        parts
            .into_iter()
            .map(|part| self.within(part, |p| p.name("a column name")))
            .collect()
    }

    /// `CREATE [TEMP] [UNIQUE|VIRTUAL] TABLE|INDEX|VIEW|TRIGGER [IF NOT EXISTS]`.
    fn head(&mut self) -> Parsed<Head> {
        self.expect_kw("CREATE")?;
        let _ = self.eat_kw("TEMP") || self.eat_kw("TEMPORARY");
        let head = if self.eat_kw("UNIQUE") {
            self.expect_kw("INDEX")?;
            Head::Index { unique: true }
        } else if self.eat_kw("VIRTUAL") {
            self.expect_kw("TABLE")?;
            Head::VirtualTable
        } else if self.eat_kw("TABLE") {
            Head::Table
        } else if self.eat_kw("INDEX") {
            Head::Index { unique: false }
        } else if self.eat_kw("VIEW") {
            Head::View
        } else if self.eat_kw("TRIGGER") {
            Head::Trigger
        } else {
            return Err(format!(
                "expected TABLE, INDEX, VIEW or TRIGGER after CREATE, found {}",
                self.found()
            ));
        };
        if self.eat_kw("IF") {
            self.expect_kw("NOT")?;
            self.expect_kw("EXISTS")?;
        }
        Ok(head)
    }

    /// The rest of `CREATE TABLE name …`.
    fn table(&mut self, name: String) -> Parsed<Table> {
        if self.is_kw("AS") {
            return Err("CREATE TABLE … AS SELECT is not supported".to_owned());
        }
        let (from, to) = self.group("after the table name")?;
        let mut table = Table {
            name,
            ..Default::default()
        };
        let parts = self.split_commas(from, to);
        if parts.is_empty() {
            return Err("the table has no columns".to_owned());
        }
        for part in parts {
            if part.0 == part.1 {
                return Err("empty definition between commas".to_owned());
            }
            self.within(part, |p| p.table_element(&mut table))?;
        }
        while !self.at_end() {
            if self.eat_kw("WITHOUT") {
                self.expect_kw("ROWID")?;
                table.without_rowid = true;
            } else if self.eat_kw("STRICT") {
                table.strict = true;
            } else {
                return Err(format!(
                    "expected WITHOUT ROWID or STRICT after the column list, found {}",
                    self.found()
                ));
            }
            if !self.at_end() && !self.eat_kind(Kind::Comma) {
                return Err(format!(
                    "expected `,` between table options, found {}",
                    self.found()
                ));
            }
        }
        Ok(table)
    }

    /// One column definition or table constraint.
    fn table_element(&mut self, table: &mut Table) -> Parsed<()> {
        let is_constraint = TABLE_CONSTRAINT_STARTS.iter().any(|k| self.is_kw(k));
        if is_constraint {
            return self.table_constraint(table);
        }
        let column = self.column()?;
        table.columns.push(column);
        Ok(())
    }

    /// A column definition: name, type name, constraints.
    fn column(&mut self) -> Parsed<Column> {
        let name = self.name("a column name")?;
        self.column_body(name.clone())
            .map_err(|message| format!("column {}: {message}", quote_ident(&name)))
    }

    fn column_body(&mut self, name: String) -> Parsed<Column> {
        let declared = self.type_name()?;
        let mut column = Column::new(name, sql_type(&declared));
        column.nullable = true;
        let mut custom: Vec<&str> = Vec::new();
        while !self.at_end() {
            let start = self.pos;
            let mut draft = column.clone();
            if self.column_constraint(&mut draft)? {
                column = draft;
            } else {
                custom.push(self.slice(start, self.pos));
            }
        }
        if !custom.is_empty() {
            column.custom = Some(custom.join(" "));
        }
        Ok(column)
    }

    /// A type name: words up to the first constraint keyword, with an
    /// optional size in parentheses (`varchar(20)`, `DECIMAL(10, 2)`), which
    /// is dropped.
    fn type_name(&mut self) -> Parsed<String> {
        let mut words = Vec::new();
        while let Some(t) = self.peek() {
            if t.kind != Kind::Word
                || COLUMN_CONSTRAINT_STARTS
                    .iter()
                    .any(|k| t.value.eq_ignore_ascii_case(k))
            {
                break;
            }
            words.push(t.value.to_ascii_uppercase());
            self.pos += 1;
        }
        if !words.is_empty() && self.peek_kind() == Some(Kind::LParen) {
            self.group("after the type name")?;
        }
        Ok(words.join(" "))
    }

    /// One column constraint, applied to `column`. Returns whether the model
    /// holds it faithfully; if not, the caller keeps its text as custom.
    fn column_constraint(&mut self, column: &mut Column) -> Parsed<bool> {
        if self.eat_kw("CONSTRAINT") {
            self.name("a constraint name")?;
            self.column_constraint(column)?;
            return Ok(false);
        }
        if self.eat_kw("PRIMARY") {
            self.expect_kw("KEY")?;
            let ascending = !self.eat_kw("DESC");
            if ascending {
                self.eat_kw("ASC");
            }
            let default_conflict = self.conflict_clause()?;
            column.primary_key = true;
            column.auto_increment = self.eat_kw("AUTOINCREMENT");
            return Ok(ascending && default_conflict);
        }
        if self.eat_kw("NOT") {
            self.expect_kw("NULL")?;
            column.nullable = false;
            return self.conflict_clause();
        }
        if self.eat_kw("NULL") {
            return self.conflict_clause();
        }
        if self.eat_kw("UNIQUE") {
            column.unique = true;
            return self.conflict_clause();
        }
        if self.eat_kw("CHECK") {
            let (from, to) = self.group("after CHECK")?;
            if from == to {
                return Err("empty parentheses after CHECK".to_owned());
            }
            match self.length_limit(from, to, &column.name) {
                Some(limit) if column.length.is_none() => column.length = Some(limit),
                _ => column.checks.push(self.slice(from, to).to_owned()),
            }
            return Ok(true);
        }
        if self.eat_kw("DEFAULT") {
            column.default = Some(self.default_value()?);
            return Ok(true);
        }
        if self.eat_kw("COLLATE") {
            self.name("a collation name")?;
            return Ok(false);
        }
        if self.eat_kw("REFERENCES") {
            let table = self.name("the referenced table")?;
            let columns = if self.peek_kind() == Some(Kind::LParen) {
                self.name_list("after REFERENCES")?
            } else {
                Vec::new()
            };
            let actions = self.fk_actions()?;
            let [referenced] = columns.as_slice() else {
                return Ok(false);
            };
            column.references = Some(Reference {
                table,
                column: referenced.clone(),
                on_delete: actions.on_delete,
                on_update: actions.on_update,
            });
            return Ok(!actions.other);
        }
        if self.eat_kw("GENERATED") {
            self.expect_kw("ALWAYS")?;
            self.expect_kw("AS")?;
            return self.generated(column);
        }
        if self.eat_kw("AS") {
            return self.generated(column);
        }
        Err(format!(
            "expected a column constraint, found {}",
            self.found()
        ))
    }

    /// `(expr) [STORED | VIRTUAL]` after `GENERATED ALWAYS AS` or `AS`.
    fn generated(&mut self, column: &mut Column) -> Parsed<bool> {
        let expression = self.paren_text("after AS")?;
        let stored = self.eat_kw("STORED");
        if !stored {
            self.eat_kw("VIRTUAL");
        }
        column.generated = Some(Generated { expression, stored });
        Ok(true)
    }

    /// An optional `ON CONFLICT action`; true when absent or `ABORT` (the
    /// default behaviour), which the model holds.
    fn conflict_clause(&mut self) -> Parsed<bool> {
        if !(self.is_kw("ON") && self.is_kw_at(1, "CONFLICT")) {
            return Ok(true);
        }
        self.pos += 2;
        for action in ["ROLLBACK", "ABORT", "FAIL", "IGNORE", "REPLACE"] {
            if self.eat_kw(action) {
                return Ok(action == "ABORT");
            }
        }
        Err(format!(
            "expected a conflict resolution after ON CONFLICT, found {}",
            self.found()
        ))
    }

    /// A `DEFAULT` value: `(expr)` without its parentheses, or a literal,
    /// signed number or keyword as written.
    fn default_value(&mut self) -> Parsed<String> {
        let start = self.pos;
        match self.peek_kind() {
            Some(Kind::LParen) => self.paren_text("after DEFAULT"),
            Some(Kind::Op) if matches!(self.slice(start, start + 1), "+" | "-") => {
                if self.peek_at(1).map(|t| t.kind) != Some(Kind::Number) {
                    self.pos += 1;
                    return Err(format!(
                        "expected a number after the sign in DEFAULT, found {}",
                        self.found()
                    ));
                }
                self.pos += 2;
                Ok(self.slice(start, self.pos).to_owned())
            }
            Some(Kind::Number | Kind::Str | Kind::Blob | Kind::Word | Kind::Quoted) => {
                self.pos += 1;
                Ok(self.slice(start, self.pos).to_owned())
            }
            _ => Err(format!(
                "expected a value after DEFAULT, found {}",
                self.found()
            )),
        }
    }

    /// Recognises `length(col) BETWEEN a AND b`, `length(col) >= a` and
    /// `length(col) <= b` for this column in the token range of a check.
    fn length_limit(&self, from: usize, to: usize, column: &str) -> Option<LengthLimit> {
        let t = &self.tokens[from..to];
        let is_word =
            |i: usize, word: &str| t[i].kind == Kind::Word && t[i].value.eq_ignore_ascii_case(word);
        let number = |i: usize| -> Option<u32> {
            if t[i].kind != Kind::Number {
                return None;
            }
            let text = self.slice(from + i, from + i + 1);
            if !text.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            text.parse().ok()
        };
        let op =
            |i: usize, op: &str| t[i].kind == Kind::Op && self.slice(from + i, from + i + 1) == op;
        if t.len() < 6
            || !is_word(0, "length")
            || t[1].kind != Kind::LParen
            || t[3].kind != Kind::RParen
        {
            return None;
        }
        let names_column = matches!(t[2].kind, Kind::Word | Kind::Quoted)
            && t[2].value.eq_ignore_ascii_case(column);
        if !names_column {
            return None;
        }
        match t.len() {
            8 if is_word(4, "BETWEEN") && is_word(6, "AND") => Some(LengthLimit {
                min: Some(number(5)?),
                max: Some(number(7)?),
            }),
            6 if op(4, ">=") => Some(LengthLimit {
                min: Some(number(5)?),
                max: None,
            }),
            6 if op(4, "<=") => Some(LengthLimit {
                min: None,
                max: Some(number(5)?),
            }),
            _ => None,
        }
    }

    /// The clauses after a foreign key's referenced columns.
    fn fk_actions(&mut self) -> Parsed<FkClauses> {
        let mut clauses = FkClauses {
            on_delete: FkAction::NoAction,
            on_update: FkAction::NoAction,
            other: false,
        };
        loop {
            if self.is_kw("ON") && (self.is_kw_at(1, "DELETE") || self.is_kw_at(1, "UPDATE")) {
                let on_delete = self.is_kw_at(1, "DELETE");
                self.pos += 2;
                let action = self.fk_action()?;
                if on_delete {
                    clauses.on_delete = action;
                } else {
                    clauses.on_update = action;
                }
            } else if self.eat_kw("MATCH") {
                self.name("a match type")?;
                clauses.other = true;
            } else if self.is_kw("DEFERRABLE")
                || (self.is_kw("NOT") && self.is_kw_at(1, "DEFERRABLE"))
            {
                let _ = self.eat_kw("NOT");
                self.pos += 1;
                if self.eat_kw("INITIALLY") && !self.eat_kw("DEFERRED") {
                    self.expect_kw("IMMEDIATE")?;
                }
                clauses.other = true;
            } else {
                return Ok(clauses);
            }
        }
    }

    fn fk_action(&mut self) -> Parsed<FkAction> {
        if self.eat_kw("SET") {
            if self.eat_kw("NULL") {
                return Ok(FkAction::SetNull);
            }
            self.expect_kw("DEFAULT")?;
            return Ok(FkAction::SetDefault);
        }
        if self.eat_kw("NO") {
            self.expect_kw("ACTION")?;
            return Ok(FkAction::NoAction);
        }
        if self.eat_kw("CASCADE") {
            return Ok(FkAction::Cascade);
        }
        if self.eat_kw("RESTRICT") {
            return Ok(FkAction::Restrict);
        }
        Err(format!(
            "expected a foreign key action, found {}",
            self.found()
        ))
    }

    /// A table constraint; its name, if any, is dropped.
    fn table_constraint(&mut self, table: &mut Table) -> Parsed<()> {
        if self.eat_kw("CONSTRAINT") {
            self.name("a constraint name")?;
        }
        if self.eat_kw("PRIMARY") {
            self.expect_kw("KEY")?;
            table.primary_key = self.key_columns("PRIMARY KEY")?;
            return Ok(());
        }
        if self.eat_kw("UNIQUE") {
            let key = self.key_columns("UNIQUE")?;
            table.unique_keys.push(key);
            return Ok(());
        }
        if self.eat_kw("CHECK") {
            let check = self.paren_text("after CHECK")?;
            table.checks.push(check);
            return Ok(());
        }
        if self.eat_kw("FOREIGN") {
            self.expect_kw("KEY")?;
            let columns = self.name_list("after FOREIGN KEY")?;
            self.expect_kw("REFERENCES")?;
            let target = self.name("the referenced table")?;
            if self.peek_kind() != Some(Kind::LParen) {
                return Err(format!(
                    "FOREIGN KEY referencing {} without naming its columns cannot be represented",
                    quote_ident(&target)
                ));
            }
            let references = self.name_list("after REFERENCES")?;
            let clauses = self.fk_actions()?;
            if clauses.other {
                return Err("FOREIGN KEY with MATCH or DEFERRABLE cannot be represented".to_owned());
            }
            table.foreign_keys.push(ForeignKey {
                columns,
                table: target,
                references,
                on_delete: clauses.on_delete,
                on_update: clauses.on_update,
            });
            return Ok(());
        }
        Err(format!(
            "expected a table constraint, found {}",
            self.found()
        ))
    }

    /// The columns of a table-level `PRIMARY KEY` or `UNIQUE`, refusing what
    /// the model cannot hold.
    fn key_columns(&mut self, what: &str) -> Parsed<Vec<String>> {
        let (from, to) = self.group(&format!("after {what}"))?;
        let parts = self.split_commas(from, to);
        if parts.is_empty() {
            return Err(format!("empty column list after {what}"));
        }
        let mut columns = Vec::with_capacity(parts.len());
        for part in parts {
            let column = self.within(part, |p| {
                let name = p.name("a column name")?;
                p.eat_kw("ASC");
                if p.is_kw("DESC") || p.is_kw("COLLATE") || p.is_kw("AUTOINCREMENT") {
                    return Err(format!(
                        "{what} column with {} cannot be represented",
                        p.found()
                    ));
                }
                Ok(name)
            })?;
            columns.push(column);
        }
        if !self.conflict_clause()? {
            return Err(format!(
                "{what} with an ON CONFLICT clause cannot be represented"
            ));
        }
        Ok(columns)
    }

    /// The rest of `CREATE VIRTUAL TABLE name …`.
    fn virtual_table(&mut self, name: String) -> Parsed<VirtualTable> {
        self.expect_kw("USING")?;
        let module = self.name("a module name")?;
        let mut arguments = Vec::new();
        if self.peek_kind() == Some(Kind::LParen) {
            let (from, to) = self.group("after the module name")?;
            for (a, b) in self.split_commas(from, to) {
                arguments.push(self.slice(a, b).to_owned());
            }
        }
        Ok(VirtualTable {
            name,
            module,
            arguments,
        })
    }

    /// The rest of `CREATE [UNIQUE] INDEX name …`.
    fn index(&mut self, name: String, unique: bool) -> Parsed<Index> {
        self.expect_kw("ON")?;
        let table = self.name("the indexed table")?;
        let (from, to) = self.group("after the indexed table")?;
        let parts = self.split_commas(from, to);
        if parts.is_empty() {
            return Err("the index has no columns".to_owned());
        }
        let columns = parts
            .into_iter()
            .map(|part| self.index_column(part))
            .collect::<Parsed<Vec<_>>>()?;
        let mut where_clause = None;
        if self.eat_kw("WHERE") {
            let condition = self.rest();
            if condition.is_empty() {
                return Err("expected a condition after WHERE, found end of statement".to_owned());
            }
            where_clause = Some(condition.to_owned());
        }
        Ok(Index {
            name,
            table,
            unique,
            columns,
            where_clause,
        })
    }

    /// One indexed column: a bare name is a column, anything else an
    /// expression (outer parentheses removed); a trailing `ASC`/`DESC` sets
    /// the direction.
    fn index_column(&self, (from, mut to): (usize, usize)) -> Parsed<IndexColumn> {
        if from == to {
            return Err("empty index column".to_owned());
        }
        let last = &self.tokens[to - 1];
        let direction = last.kind == Kind::Word
            && ["ASC", "DESC"]
                .iter()
                .any(|d| last.value.eq_ignore_ascii_case(d));
        let descending = direction && last.value.eq_ignore_ascii_case("DESC");
        if direction {
            to -= 1;
        }
        if from == to {
            return Err("expected an index column before ASC or DESC".to_owned());
        }
        let first = &self.tokens[from];
        if to - from == 1 && matches!(first.kind, Kind::Word | Kind::Quoted) {
            return Ok(IndexColumn::Column {
                name: first.value.clone(),
                descending,
            });
        }
        let wrapped =
            first.kind == Kind::LParen && self.matching(from) == Some(to - 1) && to - from > 2;
        let sql = if wrapped {
            self.slice(from + 1, to - 1)
        } else {
            self.slice(from, to)
        };
        Ok(IndexColumn::Expression {
            sql: sql.to_owned(),
            descending,
        })
    }

    /// The rest of `CREATE VIEW name …`.
    fn view(&mut self, name: String) -> Parsed<View> {
        if self.peek_kind() == Some(Kind::LParen) {
            return Err("a view with a column list cannot be represented".to_owned());
        }
        self.expect_kw("AS")?;
        let select = self.rest();
        if select.is_empty() {
            return Err("expected a SELECT after AS, found end of statement".to_owned());
        }
        Ok(View {
            name,
            select: select.to_owned(),
        })
    }
}

/// The clauses of a foreign key after its referenced columns.
struct FkClauses {
    on_delete: FkAction,
    on_update: FkAction,
    /// `MATCH` or `DEFERRABLE`, which the model does not hold.
    other: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::sql::create_statement;

    fn row(kind: &str, name: &str, table: &str, sql: &str) -> SchemaRow {
        SchemaRow {
            kind: kind.into(),
            name: name.into(),
            table: table.into(),
            sql: Some(sql.into()),
        }
    }

    /// Parses one statement of the given kind.
    fn read(kind: &str, sql: &str) -> Result<Entity> {
        let schema = parse_schema([row(kind, "x", "x", sql)])?;
        Ok(schema.entities.into_iter().next().expect("one entity"))
    }

    fn read_table(sql: &str) -> Result<Table> {
        match read("table", sql)? {
            Entity::Table(t) => Ok(t),
            other => panic!("not a table: {other:?}"),
        }
    }

    fn read_index(sql: &str) -> Result<Index> {
        match read("index", sql)? {
            Entity::Index(i) => Ok(i),
            other => panic!("not an index: {other:?}"),
        }
    }

    fn error(kind: &str, sql: &str) -> String {
        match read(kind, sql) {
            Ok(entity) => panic!("expected an error, read {entity:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Creates the entities' canonical SQL and reads it back.
    fn round_trip(entities: Vec<Entity>) -> Result<()> {
        let schema = Schema::new(entities);
        let rows = schema.entities.iter().map(|e| {
            let (kind, table) = match e {
                Entity::Table(_) | Entity::VirtualTable(_) => ("table", e.name().to_owned()),
                Entity::Index(i) => ("index", i.table.clone()),
                Entity::View(_) => ("view", e.name().to_owned()),
                Entity::Trigger(t) => ("trigger", t.table.clone()),
            };
            row(kind, e.name(), &table, &create_statement(e))
        });
        assert_eq!(parse_schema(rows.collect::<Vec<_>>())?, schema);
        Ok(())
    }

    fn rich_table() -> Table {
        let mut id = Column::new("id", SqlType::Integer);
        id.primary_key = true;
        id.auto_increment = true;
        let mut title = Column::new("ti\"tle", SqlType::Text);
        title.length = Some(LengthLimit {
            min: Some(6),
            max: Some(10),
        });
        title.unique = true;
        title.custom = Some("COLLATE NOCASE".into());
        let mut short = Column::new("short", SqlType::Text);
        short.nullable = true;
        short.length = Some(LengthLimit {
            min: None,
            max: Some(3),
        });
        short.checks.push("length(\"short\") <= 2".into());
        short
            .checks
            .push("\"short\" <> 'it''s (not) ok, really'".into());
        let mut long = Column::new("long", SqlType::Text);
        long.length = Some(LengthLimit {
            min: Some(1),
            max: None,
        });
        long.default = Some("'x'".into());
        let mut score = Column::new("score", SqlType::Real);
        score.default = Some("-1.5e3".into());
        let mut data = Column::new("data", SqlType::Blob);
        data.nullable = true;
        data.default = Some("x'00ff'".into());
        let mut any = Column::new("any thing", SqlType::Any);
        any.nullable = true;
        let mut parent = Column::new("parent", SqlType::Integer);
        parent.nullable = true;
        parent.references = Some(Reference {
            table: "parents".into(),
            column: "id".into(),
            on_delete: FkAction::SetNull,
            on_update: FkAction::Cascade,
        });
        let mut twice = Column::new("twice", SqlType::Integer);
        twice.generated = Some(Generated {
            expression: "\"id\" * (2 + 0)".into(),
            stored: true,
        });
        let mut lower = Column::new("lower", SqlType::Text);
        lower.nullable = true;
        lower.generated = Some(Generated {
            expression: "lower(\"ti\"\"tle\")".into(),
            stored: false,
        });
        Table {
            name: "items".into(),
            columns: vec![
                id, title, short, long, score, data, any, parent, twice, lower,
            ],
            primary_key: Vec::new(),
            unique_keys: vec![vec!["short".into(), "long".into()]],
            checks: vec!["\"score\" > 0 OR \"score\" = -1500".into()],
            foreign_keys: vec![ForeignKey {
                columns: vec!["parent".into(), "short".into()],
                table: "parents".into(),
                references: vec!["id".into(), "code".into()],
                on_delete: FkAction::Restrict,
                on_update: FkAction::SetDefault,
            }],
            without_rowid: false,
            strict: false,
        }
    }

    fn parents() -> Table {
        let mut id = Column::new("id", SqlType::Integer);
        id.nullable = true;
        let mut code = Column::new("code", SqlType::Any);
        code.nullable = true;
        Table {
            name: "parents".into(),
            columns: vec![id, code],
            primary_key: vec!["id".into(), "code".into()],
            without_rowid: true,
            strict: true,
            ..Default::default()
        }
    }

    #[test]
    fn canonical_sql_reads_back_exactly() -> Result<()> {
        let index = Index {
            name: "by title".into(),
            table: "items".into(),
            unique: true,
            columns: vec![
                IndexColumn::Column {
                    name: "ti\"tle".into(),
                    descending: true,
                },
                IndexColumn::Expression {
                    sql: "lower(\"long\")".into(),
                    descending: false,
                },
                IndexColumn::Expression {
                    sql: "(\"score\") + (1)".into(),
                    descending: true,
                },
                IndexColumn::Expression {
                    sql: "\"short\"".into(),
                    descending: false,
                },
            ],
            where_clause: Some("\"parent\" IS NOT NULL".into()),
        };
        let view = View {
            name: "v".into(),
            select: "SELECT \"id\" FROM \"items\" WHERE \"score\" > (1)".into(),
        };
        let search = VirtualTable {
            name: "search".into(),
            module: "fts5".into(),
            arguments: vec![
                "title".into(),
                "body".into(),
                "tokenize = 'porter unicode61'".into(),
            ],
        };
        let trigger = Trigger {
            name: "t".into(),
            table: "items".into(),
            sql: "CREATE TRIGGER \"t\" AFTER INSERT ON \"items\" BEGIN SELECT 1; END".into(),
        };
        round_trip(vec![
            Entity::Trigger(trigger),
            Entity::View(view),
            Entity::Index(index),
            Entity::VirtualTable(search),
            Entity::Table(rich_table()),
            Entity::Table(parents()),
        ])
    }

    #[test]
    fn hand_written_sql_is_normalized() -> Result<()> {
        let table = read_table(
            "create table if not exists Foo ( -- a comment\n\
             id integer primary key, name varchar(20) not null default 'x', price DOUBLE PRECISION,\n\
             data, flag BOOLEAN DEFAULT 0, n INT DEFAULT -1, /* block */ at DEFAULT CURRENT_TIMESTAMP,\n\
             [weird col] text collate nocase, `b``q` blob, big UNSIGNED BIG INT, c CLOB, \
             amount DECIMAL(10, 2), bin longblob, f FLOAT, d DATE)",
        )?;
        assert_eq!(table.name, "Foo");
        let summary: Vec<(&str, SqlType, bool)> = table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.sql_type, c.nullable))
            .collect();
        assert_eq!(
            summary,
            [
                ("id", SqlType::Integer, true),
                ("name", SqlType::Text, false),
                ("price", SqlType::Real, true),
                ("data", SqlType::Any, true),
                ("flag", SqlType::Numeric, true),
                ("n", SqlType::Integer, true),
                ("at", SqlType::Any, true),
                ("weird col", SqlType::Text, true),
                ("b`q", SqlType::Blob, true),
                ("big", SqlType::Integer, true),
                ("c", SqlType::Text, true),
                ("amount", SqlType::Numeric, true),
                ("bin", SqlType::Blob, true),
                ("f", SqlType::Real, true),
                ("d", SqlType::Numeric, true),
            ]
        );
        assert!(table.columns[0].primary_key);
        assert_eq!(table.primary_key_columns(), ["id"]);
        let defaults: Vec<Option<&str>> =
            table.columns.iter().map(|c| c.default.as_deref()).collect();
        assert_eq!(defaults[1], Some("'x'"));
        assert_eq!(defaults[4], Some("0"));
        assert_eq!(defaults[5], Some("-1"));
        assert_eq!(defaults[6], Some("CURRENT_TIMESTAMP"));
        assert_eq!(table.columns[7].custom.as_deref(), Some("collate nocase"));
        Ok(())
    }

    #[test]
    fn length_checks_only_in_their_exact_shape() -> Result<()> {
        let table = read_table(
            "CREATE TABLE t (a TEXT CHECK (length(a) BETWEEN 1 AND 5), b TEXT CHECK (LENGTH(\"B\") >= 2), \
             c TEXT CHECK (length(c) <= 9), d TEXT CHECK (length(a) <= 9), e TEXT CHECK (length(e) < 9), \
             f TEXT CHECK (length(f) <= 9 AND f <> ''), g TEXT CHECK (length(g) <= -1))",
        )?;
        let lengths: Vec<Option<LengthLimit>> = table.columns.iter().map(|c| c.length).collect();
        let limit = |min, max| Some(LengthLimit { min, max });
        assert_eq!(
            lengths,
            [
                limit(Some(1), Some(5)),
                limit(Some(2), None),
                limit(None, Some(9)),
                None,
                None,
                None,
                None
            ]
        );
        let checks: Vec<&[String]> = table.columns.iter().map(|c| c.checks.as_slice()).collect();
        assert_eq!(checks[3], ["length(a) <= 9"]);
        assert_eq!(checks[4], ["length(e) < 9"]);
        assert_eq!(checks[5], ["length(f) <= 9 AND f <> ''"]);
        assert_eq!(checks[6], ["length(g) <= -1"]);
        Ok(())
    }

    #[test]
    fn unrepresentable_column_constraints_stay_verbatim() -> Result<()> {
        let table = read_table(
            "CREATE TABLE t (a INTEGER CONSTRAINT pk PRIMARY KEY, b REFERENCES p, \
             c INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED NOT NULL, \
             d TEXT NOT NULL ON CONFLICT REPLACE UNIQUE ON CONFLICT ABORT, e INTEGER PRIMARY KEY DESC)",
        )?;
        let customs: Vec<Option<&str>> =
            table.columns.iter().map(|c| c.custom.as_deref()).collect();
        assert_eq!(
            customs,
            [
                Some("CONSTRAINT pk PRIMARY KEY"),
                Some("REFERENCES p"),
                Some("REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED"),
                Some("NOT NULL ON CONFLICT REPLACE"),
                Some("PRIMARY KEY DESC"),
            ]
        );
        assert!(!table.columns[0].primary_key);
        assert!(table.columns[1].references.is_none());
        assert!(!table.columns[2].nullable);
        assert!(table.columns[3].unique && table.columns[3].nullable);
        Ok(())
    }

    #[test]
    fn table_options_in_any_order_and_named_table_constraints() -> Result<()> {
        let table = read_table(
            "CREATE TABLE main.[t] (a INT, b TEXT, CONSTRAINT pk PRIMARY KEY (a ASC, b), \
             CONSTRAINT u UNIQUE (b) ON CONFLICT ABORT, CONSTRAINT c CHECK (a > 0)) STRICT, WITHOUT ROWID;",
        )?;
        assert_eq!(table.name, "t");
        assert_eq!(table.primary_key, ["a", "b"]);
        assert_eq!(table.unique_keys, [vec!["b".to_owned()]]);
        assert_eq!(table.checks, ["a > 0"]);
        assert!(table.strict && table.without_rowid);
        Ok(())
    }

    #[test]
    fn generated_columns_without_generated_always() -> Result<()> {
        let table = read_table(
            "CREATE TABLE t (a INT, b INT AS (a + 1), c INT AS ((a)) STORED, d GENERATED ALWAYS AS (a))",
        )?;
        let generated: Vec<Option<Generated>> =
            table.columns.iter().map(|c| c.generated.clone()).collect();
        let g = |expression: &str, stored| {
            Some(Generated {
                expression: expression.into(),
                stored,
            })
        };
        assert_eq!(
            generated,
            [None, g("a + 1", false), g("(a)", true), g("a", false)]
        );
        Ok(())
    }

    #[test]
    fn indexes_in_any_spelling() -> Result<()> {
        let index = read_index(
            "create unique index if not exists \"i\" on t (a, b desc, lower(c) ASC, d collate nocase, (e), (f) + 1) \
             where a is not null",
        )?;
        assert!(index.unique);
        assert_eq!(index.table, "t");
        let column = |name: &str, descending| IndexColumn::Column {
            name: name.into(),
            descending,
        };
        let expr = |sql: &str| IndexColumn::Expression {
            sql: sql.into(),
            descending: false,
        };
        assert_eq!(
            index.columns,
            [
                column("a", false),
                column("b", true),
                expr("lower(c)"),
                expr("d collate nocase"),
                expr("e"),
                expr("(f) + 1")
            ]
        );
        assert_eq!(index.where_clause.as_deref(), Some("a is not null"));
        Ok(())
    }

    #[test]
    fn virtual_table_arguments_split_at_top_level_commas() -> Result<()> {
        let Entity::VirtualTable(table) = read(
            "table",
            "CREATE VIRTUAL TABLE s USING fts5(a, b UNINDEXED, tokenize = 'a, b', prefix=\"2 (3)\" )",
        )?
        else {
            panic!("not a virtual table");
        };
        assert_eq!(table.module, "fts5");
        assert_eq!(
            table.arguments,
            ["a", "b UNINDEXED", "tokenize = 'a, b'", "prefix=\"2 (3)\""]
        );
        let Entity::VirtualTable(bare) = read("table", "CREATE VIRTUAL TABLE s USING m")? else {
            panic!("not a virtual table");
        };
        assert!(bare.arguments.is_empty());
        Ok(())
    }

    #[test]
    fn views_and_triggers() -> Result<()> {
        let view = read("view", "CREATE VIEW IF NOT EXISTS v AS select 1 -- one\n")?;
        assert_eq!(
            view,
            Entity::View(View {
                name: "v".into(),
                select: "select 1".into()
            })
        );
        let sql = "CREATE TRIGGER g AFTER DELETE ON t BEGIN DELETE FROM u; END";
        let trigger = parse_schema([row("trigger", "g", "t", sql)])?;
        assert_eq!(
            trigger.entities,
            [Entity::Trigger(Trigger {
                name: "g".into(),
                table: "t".into(),
                sql: sql.into()
            })]
        );
        Ok(())
    }

    #[test]
    fn internal_rows_and_rows_without_sql_are_skipped() -> Result<()> {
        let rows = [
            SchemaRow {
                kind: "index".into(),
                name: "sqlite_autoindex_t_1".into(),
                table: "t".into(),
                sql: None,
            },
            row(
                "table",
                "sqlite_sequence",
                "sqlite_sequence",
                "CREATE TABLE sqlite_sequence(name,seq)",
            ),
            row("table", "t", "t", "CREATE TABLE t (a)"),
        ];
        let schema = parse_schema(rows)?;
        assert_eq!(schema.entities.len(), 1);
        assert_eq!(schema.entities[0].name(), "t");
        Ok(())
    }

    #[test]
    fn errors_name_the_object_and_the_problem() {
        let cases = [
            (
                "table",
                "CREATE TABLE t (a TEXT DEFAULT 'x)",
                "cannot read table \"x\": unterminated string literal at byte 31",
            ),
            (
                "table",
                "CREATE TABLE t (a, )",
                "cannot read table \"x\": empty definition between commas",
            ),
            (
                "table",
                "CREATE TABLE t (a INT PRIMARY KEY FOO)",
                "cannot read table \"x\": column \"a\": expected a column constraint, found `FOO`",
            ),
            (
                "table",
                "CREATE TABLE t (a INT CHECK a > 0)",
                "cannot read table \"x\": column \"a\": expected `(` after CHECK, found `a`",
            ),
            (
                "table",
                "CREATE TABLE t (a INT, FOREIGN KEY (a) REFERENCES p)",
                "cannot read table \"x\": FOREIGN KEY referencing \"p\" without naming its columns cannot be represented",
            ),
            (
                "table",
                "CREATE TABLE t (a INT, FOREIGN KEY (a) REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)",
                "cannot read table \"x\": FOREIGN KEY with MATCH or DEFERRABLE cannot be represented",
            ),
            (
                "table",
                "CREATE TABLE t (a INT, PRIMARY KEY (a DESC))",
                "cannot read table \"x\": PRIMARY KEY column with `DESC` cannot be represented",
            ),
            (
                "table",
                "CREATE TABLE t (a INT, UNIQUE (a) ON CONFLICT REPLACE)",
                "cannot read table \"x\": UNIQUE with an ON CONFLICT clause cannot be represented",
            ),
            (
                "table",
                "CREATE TABLE t (a INT) WITHOUT",
                "cannot read table \"x\": expected ROWID, found end of statement",
            ),
            (
                "table",
                "CREATE TABLE t (a INT) STRICT FOO",
                "cannot read table \"x\": expected `,` between table options, found `FOO`",
            ),
            (
                "table",
                "CREATE TABLE t AS SELECT 1",
                "cannot read table \"x\": CREATE TABLE … AS SELECT is not supported",
            ),
            (
                "table",
                "CREATE TABLE t (a INT",
                "cannot read table \"x\": unbalanced parentheses after the table name",
            ),
            (
                "table",
                "CREATE INDEX i ON t (a)",
                "cannot read table \"x\": the statement creates an index, not a table",
            ),
            (
                "view",
                "CREATE VIEW v (a) AS SELECT 1",
                "cannot read view \"x\": a view with a column list cannot be represented",
            ),
            (
                "index",
                "CREATE INDEX i ON t (a) WHERE",
                "cannot read index \"x\": expected a condition after WHERE, found end of statement",
            ),
            (
                "index",
                "CREATE INDEX i ON t (a, DESC)",
                "cannot read index \"x\": expected an index column before ASC or DESC",
            ),
            (
                "table",
                "DROP TABLE t",
                "cannot read table \"x\": expected CREATE, found `DROP`",
            ),
            (
                "shadow",
                "CREATE TABLE t (a)",
                "cannot read shadow \"x\": unknown schema object type `shadow`",
            ),
        ];
        for (kind, sql, expected) in cases {
            assert_eq!(
                error(kind, sql),
                format!("schema error: {expected}"),
                "{sql}"
            );
        }
    }
}
