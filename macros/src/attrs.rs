//! Parsing of the helper attributes: `#[table(...)]` on a table struct,
//! `#[column(...)]` on its fields and `#[sql(...)]` on enum variants.
//!
//! Parsing only checks each attribute on its own (known keys, well-formed
//! values, no key given twice); rules that relate several attributes or
//! fields (one primary key, unique column names, …) live with the derive in
//! `table.rs`. Every error is spanned at the offending key or value.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, ExprRange, ExprUnary, Ident, Lit, LitStr, Path, RangeLimits, Token,
    UnOp,
};

/// The keys `#[table(...)]` accepts, for the unknown-key error.
const TABLE_KEYS: &str =
    "name, without_rowid, strict, primary_key(..), unique(..), check, foreign_key(..)";
/// The keys `#[column(...)]` accepts, for the unknown-key error.
const COLUMN_KEYS: &str = "name, primary_key, auto_increment, unique, length, default, sql_default, \
     client_default, check, references, on_delete, on_update, generated, stored, custom";

/// Everything `#[table(...)]` attributes say about a table.
#[derive(Default)]
pub struct TableAttrs {
    /// `name = "todos"`.
    pub name: Option<LitStr>,
    /// `without_rowid`, with the span of the key.
    pub without_rowid: Option<Span>,
    /// `strict`.
    pub strict: bool,
    /// `primary_key(a, b)`: the span of the key and the field names.
    pub primary_key: Option<(Span, Vec<Ident>)>,
    /// Each `unique(a, b)`: field names.
    pub unique: Vec<Vec<Ident>>,
    /// Each `check = "sql"`.
    pub checks: Vec<LitStr>,
    /// Each `foreign_key(...)`.
    pub foreign_keys: Vec<ForeignKeyAttr>,
}

/// `foreign_key(columns(a, b), references = "t", to(x, y), on_delete = "…", on_update = "…")`.
pub struct ForeignKeyAttr {
    /// The referencing fields of this struct.
    pub columns: Vec<Ident>,
    /// The referenced table.
    pub table: TableRef,
    /// The referenced SQL column names.
    pub to: Vec<String>,
    /// `ON DELETE`.
    pub on_delete: FkAction,
    /// `ON UPDATE`.
    pub on_update: FkAction,
}

/// A referenced table: by SQL name or by its Rust type.
pub enum TableRef {
    /// `references = "categories"`.
    Name(LitStr),
    /// `references = Category`: the name comes from `<Category as Table>::NAME`.
    Type(Path),
}

/// Everything `#[column(...)]` attributes say about one field.
#[derive(Default)]
pub struct ColumnAttrs {
    /// `name = "body"`.
    pub name: Option<LitStr>,
    /// `primary_key`, with the span of the key.
    pub primary_key: Option<Span>,
    /// `auto_increment`, with the span of the key.
    pub auto_increment: Option<Span>,
    /// `unique`.
    pub unique: bool,
    /// `length = 6..=10`.
    pub length: Option<Length>,
    /// `default = <literal>` or `sql_default = "expr"`: the SQL expression.
    pub default: Option<(String, Span)>,
    /// `client_default = path::to::function`.
    pub client_default: Option<Path>,
    /// Each `check = "sql"`.
    pub checks: Vec<LitStr>,
    /// `references(...)` or `references = …`.
    pub references: Option<ReferenceAttr>,
    /// `on_delete = "…"`, with the span of its value.
    pub on_delete: Option<(FkAction, Span)>,
    /// `on_update = "…"`, with the span of its value.
    pub on_update: Option<(FkAction, Span)>,
    /// `generated = "sql expr"`.
    pub generated: Option<LitStr>,
    /// `stored`, with the span of the key.
    pub stored: Option<Span>,
    /// `custom = "COLLATE NOCASE"`.
    pub custom: Option<LitStr>,
}

/// An inclusive text length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length {
    /// Inclusive minimum.
    pub min: Option<u32>,
    /// Inclusive maximum.
    pub max: Option<u32>,
}

/// A column-level foreign key target.
pub enum ReferenceAttr {
    /// `references(table = "categories", column = "id")` or `references = "categories(id)"`.
    Named {
        /// The referenced table's SQL name.
        table: String,
        /// The referenced column's SQL name.
        column: String,
    },
    /// `references = Category::ID`: a typed column handle.
    Handle(Path),
}

/// A foreign key action, as written in an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FkAction {
    /// `"no action"`.
    #[default]
    NoAction,
    /// `"restrict"`.
    Restrict,
    /// `"set null"`.
    SetNull,
    /// `"set default"`.
    SetDefault,
    /// `"cascade"`.
    Cascade,
}

impl FkAction {
    /// Parses `"cascade"`, `"set null"`, … (case-insensitive, `_` for space).
    fn parse(lit: &LitStr) -> syn::Result<Self> {
        let text = lit.value().to_ascii_lowercase().replace('_', " ");
        Ok(
            match text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .as_str()
            {
                "no action" => FkAction::NoAction,
                "restrict" => FkAction::Restrict,
                "set null" => FkAction::SetNull,
                "set default" => FkAction::SetDefault,
                "cascade" => FkAction::Cascade,
                _ => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "unknown foreign key action `{}`; expected one of \"cascade\", \"set null\", \"set default\", \
                         \"restrict\", \"no action\"",
                            lit.value()
                        ),
                    ));
                }
            },
        )
    }
}

impl ToTokens for FkAction {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let variant = match self {
            FkAction::NoAction => quote!(NoAction),
            FkAction::Restrict => quote!(Restrict),
            FkAction::SetNull => quote!(SetNull),
            FkAction::SetDefault => quote!(SetDefault),
            FkAction::Cascade => quote!(Cascade),
        };
        tokens.extend(quote!(::driftwood::schema::FkAction::#variant));
    }
}

/// Stores a single-valued key, failing when it was already given.
fn set_once<T>(slot: &mut Option<T>, value: T, key: &Path) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            key,
            format!("`{}` is given more than once", path_name(key)),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// A flag key: fails when it was already given or carries a value.
fn set_flag(slot: &mut Option<Span>, meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    no_value(meta)?;
    set_once(slot, meta.path.span(), &meta.path)
}

/// Fails when a flag key is followed by `= …` or `(…)`.
fn no_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!("`{}` is a flag and takes no value", path_name(&meta.path)),
        ));
    }
    Ok(())
}

/// The key as written, for messages.
fn path_name(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Parses every `#[table(...)]` attribute among `attrs`.
pub fn table_attrs(attrs: &[Attribute]) -> syn::Result<TableAttrs> {
    let mut out = TableAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("table")) {
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_default();
            match key.as_str() {
                "name" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    non_empty(&lit, "table name")?;
                    set_once(&mut out.name, lit, &meta.path)
                }
                "without_rowid" => set_flag(&mut out.without_rowid, &meta),
                "strict" => {
                    no_value(&meta)?;
                    out.strict = true;
                    Ok(())
                }
                "primary_key" => {
                    let fields = ident_list(&meta)?;
                    set_once(&mut out.primary_key, (meta.path.span(), fields), &meta.path)
                }
                "unique" => {
                    out.unique.push(ident_list(&meta)?);
                    Ok(())
                }
                "check" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    non_empty(&lit, "check")?;
                    out.checks.push(lit);
                    Ok(())
                }
                "foreign_key" => {
                    out.foreign_keys.push(foreign_key(&meta)?);
                    Ok(())
                }
                _ => Err(syn::Error::new_spanned(
                    &meta.path,
                    format!(
                        "unknown table attribute `{}`; expected one of: {TABLE_KEYS}",
                        path_name(&meta.path)
                    ),
                )),
            }
        })?;
    }
    Ok(out)
}

/// Parses `foreign_key(columns(a, b), references = "t" | Type, to(x, y), on_delete = "…", on_update = "…")`.
fn foreign_key(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<ForeignKeyAttr> {
    let span = meta.path.span();
    let mut columns = None;
    let mut table = None;
    let mut to = None;
    let mut on_delete = None;
    let mut on_update = None;
    meta.parse_nested_meta(|inner| {
        let key = inner.path.get_ident().map(Ident::to_string).unwrap_or_default();
        match key.as_str() {
            "columns" => set_once(&mut columns, ident_list(&inner)?, &inner.path),
            "references" => {
                let input = inner.value()?;
                let target = if input.peek(LitStr) {
                    let lit: LitStr = input.parse()?;
                    non_empty(&lit, "table name")?;
                    TableRef::Name(lit)
                } else {
                    TableRef::Type(input.parse()?)
                };
                set_once(&mut table, target, &inner.path)
            }
            "to" => set_once(&mut to, name_list(&inner)?, &inner.path),
            "on_delete" => set_once(&mut on_delete, FkAction::parse(&inner.value()?.parse()?)?, &inner.path),
            "on_update" => set_once(&mut on_update, FkAction::parse(&inner.value()?.parse()?)?, &inner.path),
            _ => Err(syn::Error::new_spanned(
                &inner.path,
                format!(
                    "unknown foreign_key attribute `{}`; expected one of: columns(..), references, to(..), on_delete, \
                     on_update",
                    path_name(&inner.path)
                ),
            )),
        }
    })?;
    let missing = |what: &str| syn::Error::new(span, format!("`foreign_key` needs {what}"));
    let columns = columns
        .ok_or_else(|| missing("`columns(..)`: the fields of this struct that reference"))?;
    let table =
        table.ok_or_else(|| missing("`references = \"table\"` or `references = TableType`"))?;
    let to = to.ok_or_else(|| missing("`to(..)`: the referenced columns"))?;
    if columns.len() != to.len() {
        return Err(syn::Error::new(
            span,
            format!(
                "`foreign_key` has {} column(s) in `columns(..)` but {} in `to(..)`",
                columns.len(),
                to.len()
            ),
        ));
    }
    Ok(ForeignKeyAttr {
        columns,
        table,
        to,
        on_delete: on_delete.unwrap_or_default(),
        on_update: on_update.unwrap_or_default(),
    })
}

/// Parses every `#[column(...)]` attribute among a field's `attrs`.
pub fn column_attrs(attrs: &[Attribute]) -> syn::Result<ColumnAttrs> {
    let mut out = ColumnAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("column")) {
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_default();
            match key.as_str() {
                "name" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    non_empty(&lit, "column name")?;
                    set_once(&mut out.name, lit, &meta.path)
                }
                "primary_key" => set_flag(&mut out.primary_key, &meta),
                "auto_increment" => set_flag(&mut out.auto_increment, &meta),
                "unique" => {
                    no_value(&meta)?;
                    out.unique = true;
                    Ok(())
                }
                "length" => {
                    let expr: Expr = meta.value()?.parse()?;
                    set_once(&mut out.length, length(&expr)?, &meta.path)
                }
                "default" => {
                    let expr: Expr = meta.value()?.parse()?;
                    let sql = default_literal(&expr)?;
                    set_default(&mut out.default, (sql, expr.span()), &meta.path)
                }
                "sql_default" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    non_empty(&lit, "sql_default")?;
                    set_default(&mut out.default, (lit.value(), lit.span()), &meta.path)
                }
                "client_default" => {
                    let path: Path = meta.value()?.parse()?;
                    set_once(&mut out.client_default, path, &meta.path)
                }
                "check" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    non_empty(&lit, "check")?;
                    out.checks.push(lit);
                    Ok(())
                }
                "references" => {
                    let target = reference(&meta)?;
                    set_once(&mut out.references, target, &meta.path)
                }
                "on_delete" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    set_once(
                        &mut out.on_delete,
                        (FkAction::parse(&lit)?, lit.span()),
                        &meta.path,
                    )
                }
                "on_update" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    set_once(
                        &mut out.on_update,
                        (FkAction::parse(&lit)?, lit.span()),
                        &meta.path,
                    )
                }
                "generated" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    non_empty(&lit, "generated")?;
                    set_once(&mut out.generated, lit, &meta.path)
                }
                "stored" => set_flag(&mut out.stored, &meta),
                "custom" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    non_empty(&lit, "custom")?;
                    set_once(&mut out.custom, lit, &meta.path)
                }
                "nullable" | "not_null" => Err(syn::Error::new_spanned(
                    &meta.path,
                    format!(
                        "unknown column attribute `{key}`: nullability comes from the field's type, \
                         `Option<T>` for a nullable column"
                    ),
                )),
                _ => Err(syn::Error::new_spanned(
                    &meta.path,
                    format!(
                        "unknown column attribute `{}`; expected one of: {COLUMN_KEYS}",
                        path_name(&meta.path)
                    ),
                )),
            }
        })?;
    }
    Ok(out)
}

/// Stores `default` or `sql_default`, which exclude each other.
fn set_default(
    slot: &mut Option<(String, Span)>,
    value: (String, Span),
    key: &Path,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            key,
            "a column has at most one `default = <literal>` or `sql_default = \"expr\"`",
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses `references(table = "t", column = "c")`, `references = "t(c)"` or `references = Type::COLUMN`.
fn reference(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<ReferenceAttr> {
    if meta.input.peek(syn::token::Paren) {
        let mut table: Option<LitStr> = None;
        let mut column: Option<LitStr> = None;
        meta.parse_nested_meta(|inner| {
            let key = inner
                .path
                .get_ident()
                .map(Ident::to_string)
                .unwrap_or_default();
            match key.as_str() {
                "table" => set_once(&mut table, inner.value()?.parse()?, &inner.path),
                "column" => set_once(&mut column, inner.value()?.parse()?, &inner.path),
                _ => Err(syn::Error::new_spanned(
                    &inner.path,
                    format!(
                        "unknown references attribute `{}`; expected `table` or `column`",
                        path_name(&inner.path)
                    ),
                )),
            }
        })?;
        let (Some(table), Some(column)) = (table, column) else {
            return Err(syn::Error::new_spanned(
                &meta.path,
                "`references(..)` needs both `table = \"…\"` and `column = \"…\"`",
            ));
        };
        non_empty(&table, "referenced table")?;
        non_empty(&column, "referenced column")?;
        return Ok(ReferenceAttr::Named {
            table: table.value(),
            column: column.value(),
        });
    }
    let input = meta.value()?;
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        return parse_table_column(&lit);
    }
    Ok(ReferenceAttr::Handle(input.parse()?))
}

/// Parses `"table(column)"`.
fn parse_table_column(lit: &LitStr) -> syn::Result<ReferenceAttr> {
    let text = lit.value();
    let bad = || {
        syn::Error::new(
            lit.span(),
            format!(
                "expected `\"table(column)\"`, found `{text:?}`; or write `references(table = \"…\", column = \"…\")`"
            ),
        )
    };
    let (table, rest) = text.split_once('(').ok_or_else(bad)?;
    let column = rest.strip_suffix(')').ok_or_else(bad)?;
    let (table, column) = (table.trim(), column.trim());
    if table.is_empty() || column.is_empty() || column.contains(['(', ')', ',']) {
        return Err(bad());
    }
    Ok(ReferenceAttr::Named {
        table: table.to_owned(),
        column: column.to_owned(),
    })
}

/// Parses a parenthesized list of field names: `(a, b)`.
fn ident_list(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Vec<Ident>> {
    let mut out = Vec::new();
    meta.parse_nested_meta(|inner| {
        let ident = inner
            .path
            .get_ident()
            .ok_or_else(|| syn::Error::new_spanned(&inner.path, "expected a field name"))?;
        no_value(&inner)?;
        out.push(ident.clone());
        Ok(())
    })?;
    if out.is_empty() {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!(
                "`{}(..)` needs at least one field name",
                path_name(&meta.path)
            ),
        ));
    }
    Ok(out)
}

/// Parses a parenthesized list of SQL names, each an identifier or a string: `(x, "y z")`.
fn name_list(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Vec<String>> {
    let content;
    syn::parenthesized!(content in meta.input);
    let items = Punctuated::<SqlName, Token![,]>::parse_terminated(&content)?;
    if items.is_empty() {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!(
                "`{}(..)` needs at least one column name",
                path_name(&meta.path)
            ),
        ));
    }
    Ok(items.into_iter().map(|n| n.0).collect())
}

/// An SQL name written as an identifier or a string literal.
struct SqlName(String);

impl syn::parse::Parse for SqlName {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            non_empty(&lit, "column name")?;
            return Ok(SqlName(lit.value()));
        }
        let ident: Ident = syn::ext::IdentExt::parse_any(input)?;
        Ok(SqlName(unraw(&ident)))
    }
}

/// Parses `min..=max`, `..=max` or `min..` into a [`Length`].
fn length(expr: &Expr) -> syn::Result<Length> {
    let shape = "expected an inclusive range of lengths: `6..=10`, `..=10` or `6..`";
    let Expr::Range(ExprRange {
        start, limits, end, ..
    }) = expr
    else {
        return Err(syn::Error::new_spanned(expr, shape));
    };
    let bound = |e: &Option<Box<Expr>>| -> syn::Result<Option<u32>> {
        match e.as_deref() {
            None => Ok(None),
            Some(Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            })) => int.base10_parse::<u32>().map(Some),
            Some(other) => Err(syn::Error::new_spanned(
                other,
                "a length bound must be an integer literal",
            )),
        }
    };
    let (min, max) = (bound(start)?, bound(end)?);
    if let RangeLimits::HalfOpen(_) = limits
        && end.is_some()
    {
        let hint = match (min, max) {
            (Some(min), Some(max)) if max > 0 => format!("; write `{min}..={}`", max - 1),
            (None, Some(max)) if max > 0 => format!("; write `..={}`", max - 1),
            _ => String::new(),
        };
        return Err(syn::Error::new_spanned(
            expr,
            format!("length bounds are inclusive{hint}"),
        ));
    }
    match (min, max) {
        (None, None) => Err(syn::Error::new_spanned(expr, shape)),
        (Some(min), Some(max)) if min > max => Err(syn::Error::new_spanned(
            expr,
            format!("the minimum length {min} is above the maximum {max}"),
        )),
        _ => Ok(Length { min, max }),
    }
}

/// The SQL text of a `default = <literal>`: numbers as written, booleans as
/// `1`/`0`, strings quoted with `'…'`, byte strings as `X'…'`.
fn default_literal(expr: &Expr) -> syn::Result<String> {
    let unsupported = || {
        syn::Error::new_spanned(
            expr,
            "`default` takes a literal (integer, float, bool, string or byte string); \
             use `sql_default = \"…\"` for an SQL expression",
        )
    };
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Int(int) => Ok(int.base10_digits().to_owned()),
            Lit::Float(float) => Ok(float.base10_digits().to_owned()),
            Lit::Bool(b) => Ok(if b.value { "1" } else { "0" }.to_owned()),
            Lit::Str(s) => Ok(format!("'{}'", s.value().replace('\'', "''"))),
            Lit::ByteStr(b) => Ok(format!(
                "X'{}'",
                b.value()
                    .iter()
                    .map(|x| format!("{x:02X}"))
                    .collect::<String>()
            )),
            _ => Err(unsupported()),
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match inner.as_ref() {
            Expr::Lit(ExprLit {
                lit: Lit::Int(int), ..
            }) => Ok(format!("-{}", int.base10_digits())),
            Expr::Lit(ExprLit {
                lit: Lit::Float(float),
                ..
            }) => Ok(format!("-{}", float.base10_digits())),
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
}

/// Fails on an empty string where a name or SQL text is needed.
fn non_empty(lit: &LitStr, what: &str) -> syn::Result<()> {
    if lit.value().trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            format!("the {what} cannot be empty"),
        ));
    }
    Ok(())
}

/// An identifier's text without the `r#` of a raw identifier.
pub fn unraw(ident: &Ident) -> String {
    let text = ident.to_string();
    text.strip_prefix("r#").map(str::to_owned).unwrap_or(text)
}

/// `#[sql(rename = "…")]` on an enum variant: the stored name, if renamed.
pub fn variant_rename(attrs: &[Attribute]) -> syn::Result<Option<LitStr>> {
    let mut rename = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("sql")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let lit: LitStr = meta.value()?.parse()?;
                non_empty(&lit, "stored name")?;
                return set_once(&mut rename, lit, &meta.path);
            }
            Err(syn::Error::new_spanned(
                &meta.path,
                format!(
                    "unknown sql attribute `{}`; expected `rename = \"…\"`",
                    path_name(&meta.path)
                ),
            ))
        })?;
    }
    Ok(rename)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(attr: TokenStream) -> syn::Result<ColumnAttrs> {
        let attrs: Vec<Attribute> = vec![syn::parse_quote!(#[column(#attr)])];
        column_attrs(&attrs)
    }

    fn error(attr: TokenStream) -> String {
        match column(attr) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn lengths() {
        assert_eq!(
            column(quote!(length = 6..=10)).unwrap().length,
            Some(Length {
                min: Some(6),
                max: Some(10)
            })
        );
        assert_eq!(
            column(quote!(length = ..=10)).unwrap().length,
            Some(Length {
                min: None,
                max: Some(10)
            })
        );
        assert_eq!(
            column(quote!(length = 6..)).unwrap().length,
            Some(Length {
                min: Some(6),
                max: None
            })
        );
        assert_eq!(
            error(quote!(length = 6..10)),
            "length bounds are inclusive; write `6..=9`"
        );
        assert_eq!(
            error(quote!(length = 10..=6)),
            "the minimum length 10 is above the maximum 6"
        );
        assert_eq!(
            error(quote!(length = 10)),
            "expected an inclusive range of lengths: `6..=10`, `..=10` or `6..`"
        );
        assert_eq!(
            error(quote!(length = ..)),
            "expected an inclusive range of lengths: `6..=10`, `..=10` or `6..`"
        );
        assert_eq!(
            error(quote!(length = 1.5..)),
            "a length bound must be an integer literal"
        );
    }

    #[test]
    fn defaults() {
        let sql = |attr| column(attr).unwrap().default.unwrap().0;
        assert_eq!(sql(quote!(default = 42)), "42");
        assert_eq!(sql(quote!(default = -7i64)), "-7");
        assert_eq!(sql(quote!(default = 1.5)), "1.5");
        assert_eq!(sql(quote!(default = true)), "1");
        assert_eq!(sql(quote!(default = false)), "0");
        assert_eq!(sql(quote!(default = "it's")), "'it''s'");
        assert_eq!(sql(quote!(default = b"\x01\xff")), "X'01FF'");
        assert_eq!(
            sql(quote!(sql_default = "CURRENT_TIMESTAMP")),
            "CURRENT_TIMESTAMP"
        );
        assert_eq!(
            error(quote!(default = 1, sql_default = "2")),
            "a column has at most one `default = <literal>` or `sql_default = \"expr\"`"
        );
        assert!(error(quote!(default = some_fn())).starts_with("`default` takes a literal"));
    }

    #[test]
    fn references() {
        let named = |attr| match column(attr).unwrap().references.unwrap() {
            ReferenceAttr::Named { table, column } => (table, column),
            ReferenceAttr::Handle(_) => panic!("expected a named reference"),
        };
        assert_eq!(
            named(quote!(references = "categories(id)")),
            ("categories".into(), "id".into())
        );
        assert_eq!(
            named(quote!(references(table = "categories", column = "id"))),
            ("categories".into(), "id".into())
        );
        assert!(matches!(
            column(quote!(references = Category::ID))
                .unwrap()
                .references,
            Some(ReferenceAttr::Handle(_))
        ));
        assert!(
            error(quote!(references = "categories")).starts_with("expected `\"table(column)\"`")
        );
        assert_eq!(
            error(quote!(references(table = "categories"))),
            "`references(..)` needs both `table = \"…\"` and `column = \"…\"`"
        );
    }

    #[test]
    fn actions() {
        let action = |attr| column(attr).unwrap().on_delete.unwrap().0;
        assert_eq!(action(quote!(on_delete = "cascade")), FkAction::Cascade);
        assert_eq!(action(quote!(on_delete = "SET NULL")), FkAction::SetNull);
        assert_eq!(
            action(quote!(on_delete = "set_default")),
            FkAction::SetDefault
        );
        assert_eq!(action(quote!(on_delete = "no action")), FkAction::NoAction);
        assert!(
            error(quote!(on_delete = "explode"))
                .starts_with("unknown foreign key action `explode`")
        );
    }

    #[test]
    fn keys() {
        assert!(
            error(quote!(unknown))
                .starts_with("unknown column attribute `unknown`; expected one of: name,")
        );
        assert_eq!(
            error(quote!(nullable)),
            "unknown column attribute `nullable`: nullability comes from the field's type, \
             `Option<T>` for a nullable column"
        );
        assert_eq!(
            error(quote!(unique = true)),
            "`unique` is a flag and takes no value"
        );
        assert_eq!(
            error(quote!(name = "a", name = "b")),
            "`name` is given more than once"
        );
        assert_eq!(error(quote!(name = "")), "the column name cannot be empty");
    }

    #[test]
    fn table_keys() {
        let attrs: Vec<Attribute> = vec![
            syn::parse_quote!(#[table(name = "t", strict, primary_key(a, b))]),
            syn::parse_quote!(#[table(unique(a), unique(b, c), check = "a > 0")]),
            syn::parse_quote!(#[table(foreign_key(columns(a), references = "u", to("x y"), on_delete = "cascade"))]),
        ];
        let t = table_attrs(&attrs).unwrap();
        assert_eq!(t.name.unwrap().value(), "t");
        assert!(t.strict && t.without_rowid.is_none());
        assert_eq!(t.primary_key.unwrap().1.len(), 2);
        assert_eq!(t.unique.len(), 2);
        assert_eq!(t.checks.len(), 1);
        assert_eq!(t.foreign_keys[0].to[0], "x y");
        assert_eq!(t.foreign_keys[0].on_delete, FkAction::Cascade);
        let bad: Vec<Attribute> =
            vec![syn::parse_quote!(#[table(foreign_key(columns(a, b), references = "u", to(x)))])];
        let err = table_attrs(&bad).err().unwrap().to_string();
        assert_eq!(
            err,
            "`foreign_key` has 2 column(s) in `columns(..)` but 1 in `to(..)`"
        );
    }
}
