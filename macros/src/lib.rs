//! Derive macros for driftwood: `#[derive(Table)]` maps a struct to an SQL
//! table, `#[derive(IntEnum)]` and `#[derive(TextEnum)]` store a fieldless
//! enum in one column.
//!
//! Each entry point here only hands its input to the `expand` function of its
//! module and turns an error into a `compile_error!` at the offending span.
//! Generated code names the runtime only by absolute paths
//! (`::driftwood::table::…`, `::driftwood::schema::…`, …), so it works in any
//! crate that depends on `driftwood` and, through `extern crate self as
//! driftwood`, inside the library itself.
//!
//! # `#[derive(Table)]` attributes
//!
//! On the struct, `#[table(...)]` (repeatable, keys comma-separated):
//!
//! - `name = "todos"`: the table's SQL name (default: the struct's name in
//!   snake_case, `TodoItem` → `todo_item`);
//! - `without_rowid`, `strict`: table options;
//! - `primary_key(a, b)`: a composite primary key over these fields;
//! - `unique(a, b)` (repeatable): a table-level unique key over these fields;
//! - `check = "sql"` (repeatable): a table-level check constraint;
//! - `foreign_key(columns(a, b), references = "table" | TableType, to(x, y),
//!   on_delete = "…", on_update = "…")` (repeatable): a table-level foreign key
//!   from these fields to the referenced table's SQL columns (`to` takes
//!   identifiers or string literals).
//!
//! On a field, `#[column(...)]` (repeatable):
//!
//! - `name = "body"`: the column's SQL name (default: the field's name);
//! - `primary_key`, `auto_increment` (needs `primary_key` and an integer
//!   type), `unique`;
//! - `length = 6..=10` | `..=10` | `6..`: an inclusive text length limit;
//! - `default = <literal>`: an integer, float, `true`/`false` (stored `1`/`0`),
//!   string (`'…'`) or byte string (`X'…'`) `DEFAULT`;
//! - `sql_default = "CURRENT_TIMESTAMP"`: a raw SQL `DEFAULT` expression;
//! - `client_default = path::to::function`: a `fn() -> FieldType` called when
//!   a companion inserted without this column;
//! - `check = "sql"` (repeatable): a column check constraint;
//! - `references = "table(column)"` | `references(table = "t", column = "c")` |
//!   `references = OtherTable::COLUMN`: a column foreign key, with
//!   `on_delete = "…"` and `on_update = "…"` taking `"cascade"`, `"set null"`,
//!   `"set default"`, `"restrict"` or `"no action"`;
//! - `generated = "sql expr"` and optionally `stored`: a generated column;
//! - `custom = "COLLATE NOCASE"`: constraint text appended verbatim.
//!
//! Nullability comes from the field type (`Option<T>`), through
//! `ColumnType::NULLABLE`.
//!
//! # `#[derive(IntEnum)]` / `#[derive(TextEnum)]`
//!
//! On a fieldless enum without explicit discriminants. `IntEnum` stores the
//! variant's position (0, 1, …); `TextEnum` stores its name, which
//! `#[sql(rename = "…")]` on a variant overrides.

mod attrs;
mod enums;
mod table;

use proc_macro::TokenStream;

/// Maps a struct with named fields to an SQL table: implements
/// `driftwood::table::Table`, `driftwood::row::FromRow` and `FixedWidth`,
/// adds a typed column handle per field (`Todo::TITLE`) and generates the
/// `TodoCompanion` partial-row type. See the crate docs for the attributes.
#[proc_macro_derive(Table, attributes(table, column))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    table::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Stores a fieldless enum as its variant's position (`INTEGER`):
/// implements `IntEnum`, `ToSql`, `FromSql` and `ColumnType`.
#[proc_macro_derive(IntEnum, attributes(sql))]
pub fn derive_int_enum(input: TokenStream) -> TokenStream {
    enums::expand_int(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Stores a fieldless enum as its variant's name (`TEXT`), renamed with
/// `#[sql(rename = "…")]`: implements `TextEnum`, `ToSql`, `FromSql` and
/// `ColumnType`.
#[proc_macro_derive(TextEnum, attributes(sql))]
pub fn derive_text_enum(input: TokenStream) -> TokenStream {
    enums::expand_text(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
