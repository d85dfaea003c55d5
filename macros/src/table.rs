//! `#[derive(Table)]`: checks a struct and its `#[table]`/`#[column]`
//! attributes into a [`TableModel`], then generates the runtime trait
//! impls (`Table`, `FromRow`, `FixedWidth`), the typed column handles and
//! the `…Companion` type.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, Type, Visibility};

use crate::attrs::{self, ColumnAttrs, FkAction, ReferenceAttr, TableRef};

/// Expands `#[derive(Table)]` on `input`.
pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let model = TableModel::new(&input)?;
    Ok(model.generate())
}

/// A checked table struct: everything the generated code needs.
struct TableModel<'a> {
    /// The struct.
    ident: &'a Ident,
    /// The struct's visibility, shared by the companion and the handles.
    vis: &'a Visibility,
    /// The table's SQL name.
    name: String,
    /// The columns, in declaration order.
    columns: Vec<ColumnModel<'a>>,
    /// Indexes of the primary key's columns.
    primary_key: Vec<usize>,
    /// Whether the primary key was declared at table level (`#[table(primary_key(..))]`).
    table_level_key: bool,
    /// Table-level unique keys, as column indexes.
    unique_keys: Vec<Vec<usize>>,
    /// Table-level checks.
    checks: Vec<String>,
    /// Table-level foreign keys.
    foreign_keys: Vec<ForeignKeyModel>,
    /// `WITHOUT ROWID`.
    without_rowid: bool,
    /// `STRICT`.
    strict: bool,
}

/// One field, as a column.
struct ColumnModel<'a> {
    /// The field.
    field: &'a Ident,
    /// The field's visibility, shared by its companion field.
    vis: &'a Visibility,
    /// The field's type, which is the column type.
    ty: &'a Type,
    /// The column's SQL name.
    name: String,
    /// Its attributes.
    attrs: ColumnAttrs,
}

/// A table-level foreign key with its columns resolved to SQL names.
struct ForeignKeyModel {
    /// Referencing SQL column names.
    columns: Vec<String>,
    /// The referenced table.
    table: TableRef,
    /// Referenced SQL column names.
    to: Vec<String>,
    /// `ON DELETE`.
    on_delete: FkAction,
    /// `ON UPDATE`.
    on_update: FkAction,
}

impl<'a> TableModel<'a> {
    /// Checks the struct and its attributes.
    fn new(input: &'a DeriveInput) -> syn::Result<Self> {
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => &named.named,
                Fields::Unnamed(unnamed) => {
                    return Err(syn::Error::new(
                        unnamed.span(),
                        "`#[derive(Table)]` needs a struct with named fields: each field is a column named after it",
                    ));
                }
                Fields::Unit => {
                    return Err(syn::Error::new(
                        input.ident.span(),
                        "`#[derive(Table)]` needs a struct with named fields; a unit struct has no columns",
                    ));
                }
            },
            Data::Enum(data) => {
                return Err(syn::Error::new(
                    data.enum_token.span,
                    "`#[derive(Table)]` only works on structs; for an enum stored in one column use \
                     `#[derive(IntEnum)]` or `#[derive(TextEnum)]`",
                ));
            }
            Data::Union(data) => {
                return Err(syn::Error::new(
                    data.union_token.span,
                    "`#[derive(Table)]` only works on structs",
                ));
            }
        };
        if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
            return Err(syn::Error::new_spanned(
                &input.generics,
                "`#[derive(Table)]` does not support generic structs: a table has one fixed set of column types",
            ));
        }
        if fields.is_empty() {
            return Err(syn::Error::new(
                input.ident.span(),
                "a table needs at least one column",
            ));
        }
        misplaced(
            &input.attrs,
            "column",
            "`#[column(..)]` goes on a field; the struct takes `#[table(..)]`",
        )?;
        let table_attrs = attrs::table_attrs(&input.attrs)?;
        let name = match &table_attrs.name {
            Some(lit) => lit.value(),
            None => snake_case(&attrs::unraw(&input.ident)),
        };

        let mut columns: Vec<ColumnModel<'a>> = Vec::with_capacity(fields.len());
        for field in fields {
            let ident = field.ident.as_ref().expect("named fields have names");
            misplaced(
                &field.attrs,
                "table",
                "`#[table(..)]` goes on the struct; a field takes `#[column(..)]`",
            )?;
            let column_attrs = attrs::column_attrs(&field.attrs)?;
            let column_name = match &column_attrs.name {
                Some(lit) => lit.value(),
                None => attrs::unraw(ident),
            };
            if let Some(previous) = columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&column_name))
            {
                let span = column_attrs
                    .name
                    .as_ref()
                    .map_or(ident.span(), |lit| lit.span());
                return Err(syn::Error::new(
                    span,
                    format!(
                        "duplicate column name `{column_name}`: field `{}` already maps to `{}` \
                         (SQLite compares names case-insensitively)",
                        previous.field, previous.name
                    ),
                ));
            }
            check_column(&column_attrs, &field.ty)?;
            columns.push(ColumnModel {
                field: ident,
                vis: &field.vis,
                ty: &field.ty,
                name: column_name,
                attrs: column_attrs,
            });
        }

        let resolve = |ident: &Ident| -> syn::Result<usize> {
            let wanted = attrs::unraw(ident);
            columns
                .iter()
                .position(|c| attrs::unraw(c.field) == wanted)
                .ok_or_else(|| {
                    syn::Error::new(
                        ident.span(),
                        format!("no field `{wanted}` in `{}`", input.ident),
                    )
                })
        };
        let resolve_all =
            |idents: &[Ident]| -> syn::Result<Vec<usize>> { idents.iter().map(resolve).collect() };

        let mut column_keys = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.attrs.primary_key.map(|s| (i, s)));
        let first_key = column_keys.next();
        if let Some((_, span)) = column_keys.next() {
            return Err(syn::Error::new(
                span,
                "only one column can be `primary_key`; declare a composite key with `#[table(primary_key(a, b))]`",
            ));
        }
        let (primary_key, table_level_key) = match (&table_attrs.primary_key, first_key) {
            (Some(_), Some((_, span))) => {
                return Err(syn::Error::new(
                    span,
                    "the table already declares `#[table(primary_key(..))]`; \
                     a column cannot be `primary_key` as well",
                ));
            }
            (Some((_, fields)), None) => {
                let indexes = resolve_all(fields)?;
                if let Some(dup) = first_duplicate(&indexes) {
                    return Err(syn::Error::new(
                        fields[dup].span(),
                        "this field is already part of the primary key",
                    ));
                }
                (indexes, true)
            }
            (None, Some((i, _))) => (vec![i], false),
            (None, None) => (Vec::new(), false),
        };
        if table_level_key {
            for column in &columns {
                if let Some(span) = column.attrs.auto_increment {
                    return Err(syn::Error::new(
                        span,
                        "`auto_increment` needs `primary_key` on this column; \
                         a table-level composite key cannot auto-increment",
                    ));
                }
            }
        }
        if let Some(span) = table_attrs.without_rowid {
            if primary_key.is_empty() {
                return Err(syn::Error::new(
                    span,
                    "a `without_rowid` table needs a primary key",
                ));
            }
            if let Some(column) = columns.iter().find(|c| c.attrs.auto_increment.is_some()) {
                return Err(syn::Error::new(
                    column.attrs.auto_increment.unwrap_or(span),
                    "SQLite does not allow `auto_increment` in a `without_rowid` table",
                ));
            }
        }

        let unique_keys = table_attrs
            .unique
            .iter()
            .map(|key| resolve_all(key))
            .collect::<syn::Result<Vec<_>>>()?;
        let mut foreign_keys = Vec::with_capacity(table_attrs.foreign_keys.len());
        for fk in table_attrs.foreign_keys {
            let indexes = resolve_all(&fk.columns)?;
            foreign_keys.push(ForeignKeyModel {
                columns: indexes.iter().map(|&i| columns[i].name.clone()).collect(),
                table: fk.table,
                to: fk.to,
                on_delete: fk.on_delete,
                on_update: fk.on_update,
            });
        }

        Ok(TableModel {
            ident: &input.ident,
            vis: &input.vis,
            name,
            columns,
            primary_key,
            table_level_key,
            unique_keys,
            checks: table_attrs.checks.iter().map(|c| c.value()).collect(),
            foreign_keys,
            without_rowid: table_attrs.without_rowid.is_some(),
            strict: table_attrs.strict,
        })
    }

    /// All generated items.
    fn generate(&self) -> TokenStream {
        let table_impl = self.table_impl();
        let from_row = self.row_impls();
        let handles = self.handles();
        let companion = self.companion();
        let insertable = self.insertable();
        let assertions = self.assertions();
        quote! {
            #table_impl
            #from_row
            #handles
            #companion
            #insertable
            #assertions
        }
    }

    /// `impl Table`.
    fn table_impl(&self) -> TokenStream {
        let ident = self.ident;
        let companion = self.companion_ident();
        let name = &self.name;
        let column_names = self.columns.iter().map(|c| &c.name);
        let primary_key = self.primary_key.iter().map(|&i| index(i));
        let generated = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.attrs.generated.is_some())
            .map(|(i, _)| index(i));
        let nullable = self.columns.iter().map(|c| {
            let ty = c.ty;
            quote!(<#ty as ::driftwood::types::ColumnType>::NULLABLE)
        });
        let definition = self.definition();
        // A one-column INTEGER primary key of a rowid table is the rowid.
        let rowid_alias = match self.primary_key.as_slice() {
            [key] if !self.without_rowid => {
                let ty = self.columns[*key].ty;
                let i = index(*key);
                quote! {
                    if matches!(<#ty as ::driftwood::types::ColumnType>::SQL_TYPE, ::driftwood::types::SqlType::Integer) {
                        ::core::option::Option::Some(#i)
                    } else {
                        ::core::option::Option::None
                    }
                }
            }
            _ => quote!(::core::option::Option::None),
        };
        let value_arms = self.columns.iter().enumerate().map(|(i, c)| {
            let (field, ty, i) = (c.field, c.ty, index(i));
            quote!(#i => <#ty as ::driftwood::types::ToSql>::to_sql(&self.#field),)
        });
        quote! {
            impl ::driftwood::table::Table for #ident {
                const NAME: &'static str = #name;
                const COLUMNS: &'static [&'static str] = &[#(#column_names),*];
                const PRIMARY_KEY: &'static [usize] = &[#(#primary_key),*];
                const GENERATED: &'static [usize] = &[#(#generated),*];
                const NULLABLE: &'static [bool] = &[#(#nullable),*];
                const ROWID_ALIAS: ::core::option::Option<usize> = #rowid_alias;
                type Companion = #companion;

                fn definition() -> ::driftwood::schema::Table {
                    #definition
                }

                fn value(&self, index: usize) -> ::driftwood::types::SqlArg<'_> {
                    match index {
                        #(#value_arms)*
                        _ => ::driftwood::types::SqlArg::Borrowed(::driftwood::types::ValueRef::Null),
                    }
                }

                fn statement_cache() -> &'static ::driftwood::query::StatementCache {
                    static CACHE: ::driftwood::query::StatementCache = ::driftwood::query::StatementCache::new();
                    &CACHE
                }
            }
        }
    }

    /// The body of `Table::definition`.
    fn definition(&self) -> TokenStream {
        let name = &self.name;
        let columns = self.columns.iter().map(ColumnModel::definition);
        let mut fields = Vec::new();
        if self.table_level_key {
            let names = self.primary_key.iter().map(|&i| &self.columns[i].name);
            fields.push(quote!(primary_key: ::std::vec::Vec::from([#(::std::string::String::from(#names)),*]),));
        }
        if !self.unique_keys.is_empty() {
            let keys = self.unique_keys.iter().map(|key| {
                let names = key.iter().map(|&i| &self.columns[i].name);
                quote!(::std::vec::Vec::from([#(::std::string::String::from(#names)),*]))
            });
            fields.push(quote!(unique_keys: ::std::vec::Vec::from([#(#keys),*]),));
        }
        if !self.checks.is_empty() {
            let checks = &self.checks;
            fields.push(
                quote!(checks: ::std::vec::Vec::from([#(::std::string::String::from(#checks)),*]),),
            );
        }
        if !self.foreign_keys.is_empty() {
            let keys = self.foreign_keys.iter().map(|fk| {
                let columns = &fk.columns;
                let to = &fk.to;
                let table = match &fk.table {
                    TableRef::Name(lit) => quote!(::std::string::String::from(#lit)),
                    TableRef::Type(path) => {
                        quote!(::std::string::String::from(<#path as ::driftwood::table::Table>::NAME))
                    }
                };
                let (on_delete, on_update) = (fk.on_delete, fk.on_update);
                quote! {
                    ::driftwood::schema::ForeignKey {
                        columns: ::std::vec::Vec::from([#(::std::string::String::from(#columns)),*]),
                        table: #table,
                        references: ::std::vec::Vec::from([#(::std::string::String::from(#to)),*]),
                        on_delete: #on_delete,
                        on_update: #on_update,
                    }
                }
            });
            fields.push(quote!(foreign_keys: ::std::vec::Vec::from([#(#keys),*]),));
        }
        if self.without_rowid {
            fields.push(quote!(without_rowid: true,));
        }
        if self.strict {
            fields.push(quote!(strict: true,));
        }
        quote! {
            ::driftwood::schema::Table {
                name: ::std::string::String::from(#name),
                columns: ::std::vec::Vec::from([#(#columns),*]),
                #(#fields)*
                ..::std::default::Default::default()
            }
        }
    }

    /// `impl FromRow` and `impl FixedWidth`.
    fn row_impls(&self) -> TokenStream {
        let ident = self.ident;
        let width = index(self.columns.len());
        let reads = self.columns.iter().enumerate().map(|(i, c)| {
            let (field, ty, i) = (c.field, c.ty, index(i));
            quote!(#field: row.get::<#ty>(#i)?,)
        });
        quote! {
            impl ::driftwood::row::FromRow for #ident {
                fn from_row(row: &::driftwood::row::Row<'_>) -> ::driftwood::Result<Self> {
                    ::std::result::Result::Ok(#ident {
                        #(#reads)*
                    })
                }
            }

            impl ::driftwood::row::FixedWidth for #ident {
                const WIDTH: usize = #width;
            }
        }
    }

    /// The typed column handles: `impl Todo { pub const ID: Column<Todo, i64> = …; }`.
    fn handles(&self) -> TokenStream {
        let ident = self.ident;
        let vis = self.vis;
        let consts = self.columns.iter().enumerate().map(|(i, c)| {
            let const_ident = format_ident!(
                "{}",
                attrs::unraw(c.field).to_uppercase(),
                span = c.field.span()
            );
            let ty = c.ty;
            let name = &c.name;
            let doc = format!(
                " The `{name}` column of `{}` (column {i}), as a typed handle for queries.",
                self.name
            );
            let i = index(i);
            quote! {
                #[doc = #doc]
                #vis const #const_ident: ::driftwood::table::Column<#ident, #ty> =
                    ::driftwood::table::Column::new(#name, #i);
            }
        });
        quote! {
            #[allow(dead_code)]
            impl #ident {
                #(#consts)*
            }
        }
    }

    /// The companion struct and its impls.
    fn companion(&self) -> TokenStream {
        let ident = self.ident;
        let vis = self.vis;
        let companion = self.companion_ident();
        let doc = format!(
            " A partial row of [`{ident}`] (table `{}`): each column is `Value::Set` or `Value::Absent`. \
             Absent columns are left out of inserts (the default applies) and of updates (the stored value stays).\n\n\
             It is `Clone`, `Debug` and `PartialEq` when every column type is.",
            self.name
        );
        let fields = self.columns.iter().map(|c| {
            let (field, fvis, ty) = (c.field, c.vis, c.ty);
            let doc = format!(" The `{}` column.", c.name);
            quote! {
                #[doc = #doc]
                #fvis #field: ::driftwood::table::Value<#ty>,
            }
        });
        let field_idents: Vec<&Ident> = self.columns.iter().map(|c| c.field).collect();
        let bounds = |trait_path: TokenStream| {
            let tys = self.columns.iter().map(|c| c.ty);
            quote!(#(for<'__driftwood> ::driftwood::table::Value<#tys>: #trait_path,)*)
        };
        let clone_bounds = bounds(quote!(::std::clone::Clone));
        let debug_bounds = bounds(quote!(::std::fmt::Debug));
        let eq_bounds = bounds(quote!(::std::cmp::PartialEq));
        let companion_name = companion.to_string();
        let value_arms = self.columns.iter().enumerate().filter(|(_, c)| c.attrs.generated.is_none()).map(|(i, c)| {
            let (field, ty, i) = (c.field, c.ty, index(i));
            quote! {
                #i => match &self.#field {
                    ::driftwood::table::Value::Set(value) => {
                        ::std::option::Option::Some(<#ty as ::driftwood::types::ToSql>::to_sql(value))
                    }
                    ::driftwood::table::Value::Absent => ::std::option::Option::None,
                },
            }
        });
        let client_defaults: Vec<TokenStream> = self
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c, c.attrs.client_default.as_ref()?)))
            .map(|(i, c, function)| {
                let (field, ty, i) = (c.field, c.ty, index(i));
                let call = quote_spanned!(function.span()=> #function());
                quote! {
                    #i => match &self.#field {
                        ::driftwood::table::Value::Set(value) => {
                            ::std::option::Option::Some(<#ty as ::driftwood::types::ToSql>::to_sql(value))
                        }
                        ::driftwood::table::Value::Absent => {
                            let value: #ty = #call;
                            ::std::option::Option::Some(::driftwood::types::SqlArg::Owned(
                                <#ty as ::driftwood::types::ToSql>::to_sql(&value).into_owned(),
                            ))
                        }
                    },
                }
            })
            .collect();
        let insert_value = (!client_defaults.is_empty()).then(|| {
            quote! {
                fn insert_value(&self, index: usize) -> ::std::option::Option<::driftwood::types::SqlArg<'_>> {
                    match index {
                        #(#client_defaults)*
                        _ => ::driftwood::table::Companion::value(self, index),
                    }
                }
            }
        });
        let from_doc = " Every column of the row, as `Value::Set`.";
        quote! {
            #[doc = #doc]
            #[derive(Default)]
            #vis struct #companion {
                #(#fields)*
            }

            impl ::std::clone::Clone for #companion where #clone_bounds {
                fn clone(&self) -> Self {
                    #companion {
                        #(#field_idents: ::std::clone::Clone::clone(&self.#field_idents),)*
                    }
                }
            }

            impl ::std::fmt::Debug for #companion where #debug_bounds {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    f.debug_struct(#companion_name)
                        #(.field(::std::stringify!(#field_idents), &self.#field_idents))*
                        .finish()
                }
            }

            impl ::std::cmp::PartialEq for #companion where #eq_bounds {
                fn eq(&self, other: &Self) -> bool {
                    #(self.#field_idents == other.#field_idents)&&*
                }
            }

            impl ::driftwood::table::Companion for #companion {
                type Table = #ident;

                fn value(&self, index: usize) -> ::std::option::Option<::driftwood::types::SqlArg<'_>> {
                    match index {
                        #(#value_arms)*
                        _ => ::std::option::Option::None,
                    }
                }

                #insert_value
            }

            impl ::std::convert::From<#ident> for #companion {
                #[doc = #from_doc]
                fn from(row: #ident) -> Self {
                    #companion {
                        #(#field_idents: ::driftwood::table::Value::Set(row.#field_idents),)*
                    }
                }
            }
        }
    }

    /// `impl Insertable` for the row, its companion and references to both:
    /// a row inserts every column but the generated ones, a companion its
    /// given values and client defaults.
    fn insertable(&self) -> TokenStream {
        let ident = self.ident;
        let companion = self.companion_ident();
        quote! {
            impl ::driftwood::table::Insertable for #ident {
                type Table = #ident;
                const WHOLE_ROW: bool = true;

                fn insert_value(&self, index: usize) -> ::std::option::Option<::driftwood::types::SqlArg<'_>> {
                    if <#ident as ::driftwood::table::Table>::GENERATED.contains(&index) {
                        return ::std::option::Option::None;
                    }
                    ::std::option::Option::Some(<#ident as ::driftwood::table::Table>::value(self, index))
                }
            }

            impl ::driftwood::table::Insertable for &#ident {
                type Table = #ident;
                const WHOLE_ROW: bool = true;

                fn insert_value(&self, index: usize) -> ::std::option::Option<::driftwood::types::SqlArg<'_>> {
                    <#ident as ::driftwood::table::Insertable>::insert_value(*self, index)
                }
            }

            impl ::driftwood::table::Insertable for #companion {
                type Table = #ident;
                const WHOLE_ROW: bool = false;

                fn insert_value(&self, index: usize) -> ::std::option::Option<::driftwood::types::SqlArg<'_>> {
                    <#companion as ::driftwood::table::Companion>::insert_value(self, index)
                }
            }

            impl ::driftwood::table::Insertable for &#companion {
                type Table = #ident;
                const WHOLE_ROW: bool = false;

                fn insert_value(&self, index: usize) -> ::std::option::Option<::driftwood::types::SqlArg<'_>> {
                    <#companion as ::driftwood::table::Companion>::insert_value(*self, index)
                }
            }
        }
    }

    /// Compile-time checks that need the column types: `auto_increment`
    /// columns must be `INTEGER`.
    fn assertions(&self) -> TokenStream {
        let checks = self
            .columns
            .iter()
            .filter(|c| c.attrs.auto_increment.is_some())
            .map(|c| {
                let ty = c.ty;
                let message = format!(
                    "`auto_increment` needs an INTEGER column, and `{}` is not one",
                    c.field
                );
                quote_spanned! {ty.span()=>
                    const _: () = ::std::assert!(
                        ::std::matches!(
                            <#ty as ::driftwood::types::ColumnType>::SQL_TYPE,
                            ::driftwood::types::SqlType::Integer
                        ),
                        #message
                    );
                }
            });
        quote!(#(#checks)*)
    }

    /// `TodoCompanion` for `Todo`.
    fn companion_ident(&self) -> Ident {
        format_ident!("{}Companion", self.ident)
    }
}

impl ColumnModel<'_> {
    /// The `schema::Column` expression of this column.
    fn definition(&self) -> TokenStream {
        let ty = self.ty;
        let name = &self.name;
        let column_type = quote!(<#ty as ::driftwood::types::ColumnType>);
        let attrs = &self.attrs;
        let mut fields = Vec::new();
        if attrs.primary_key.is_some() {
            fields.push(quote!(primary_key: true,));
        }
        if attrs.auto_increment.is_some() {
            fields.push(quote!(auto_increment: true,));
        }
        if attrs.unique {
            fields.push(quote!(unique: true,));
        }
        if let Some((default, _)) = &attrs.default {
            fields.push(quote!(default: ::std::option::Option::Some(::std::string::String::from(#default)),));
        }
        if let Some(length) = attrs.length {
            let bound = |b: Option<u32>| match b {
                Some(n) => quote!(::std::option::Option::Some(#n)),
                None => quote!(::std::option::Option::None),
            };
            let (min, max) = (bound(length.min), bound(length.max));
            fields.push(quote!(length: ::std::option::Option::Some(::driftwood::schema::LengthLimit { min: #min, max: #max }),));
        }
        if let Some(reference) = &attrs.references {
            let on_delete = attrs.on_delete.map(|(a, _)| a).unwrap_or_default();
            let on_update = attrs.on_update.map(|(a, _)| a).unwrap_or_default();
            let (table, column) = match reference {
                ReferenceAttr::Named { table, column } => (
                    quote!(::std::string::String::from(#table)),
                    quote!(::std::string::String::from(#column)),
                ),
                ReferenceAttr::Handle(path) => (
                    quote!(::std::string::String::from(#path.table_name())),
                    quote!(::std::string::String::from(#path.name())),
                ),
            };
            fields.push(quote! {
                references: ::std::option::Option::Some(::driftwood::schema::Reference {
                    table: #table,
                    column: #column,
                    on_delete: #on_delete,
                    on_update: #on_update,
                }),
            });
        }
        if let Some(expression) = &attrs.generated {
            let stored = attrs.stored.is_some();
            fields.push(quote! {
                generated: ::std::option::Option::Some(::driftwood::schema::Generated {
                    expression: ::std::string::String::from(#expression),
                    stored: #stored,
                }),
            });
        }
        if let Some(custom) = &attrs.custom {
            fields.push(
                quote!(custom: ::std::option::Option::Some(::std::string::String::from(#custom)),),
            );
        }
        let user_checks = attrs
            .checks
            .iter()
            .map(|c| quote!(checks.push(::std::string::String::from(#c));));
        quote! {
            {
                let mut checks = ::std::vec::Vec::new();
                if let ::std::option::Option::Some(check) =
                    #column_type::check_constraint(&::driftwood::schema::sql::quote_ident(#name))
                {
                    checks.push(check);
                }
                #(#user_checks)*
                ::driftwood::schema::Column {
                    nullable: #column_type::NULLABLE,
                    #(#fields)*
                    checks,
                    ..::driftwood::schema::Column::new(#name, #column_type::SQL_TYPE)
                }
            }
        }
    }
}

/// Fails on an attribute called `name` among `attrs`: a helper attribute
/// in the wrong place would otherwise be ignored.
fn misplaced(attrs: &[syn::Attribute], name: &str, message: &str) -> syn::Result<()> {
    match attrs.iter().find(|a| a.path().is_ident(name)) {
        Some(attr) => Err(syn::Error::new_spanned(attr, message)),
        None => Ok(()),
    }
}

/// Checks the rules within one column's attributes.
fn check_column(attrs: &ColumnAttrs, ty: &Type) -> syn::Result<()> {
    if let (Some(span), None) = (attrs.auto_increment, attrs.primary_key) {
        return Err(syn::Error::new(
            span,
            "`auto_increment` needs `primary_key` on the same column",
        ));
    }
    if attrs.auto_increment.is_some()
        && let Some(kind) = non_integer_type(ty)
    {
        return Err(syn::Error::new(
            ty.span(),
            format!("`auto_increment` needs an integer column (`i64`), not {kind}"),
        ));
    }
    if let (Some(span), None) = (attrs.stored, &attrs.generated) {
        return Err(syn::Error::new(
            span,
            "`stored` only applies to a `generated = \"…\"` column",
        ));
    }
    if attrs.references.is_none()
        && let Some((_, span)) = attrs.on_delete.or(attrs.on_update)
    {
        return Err(syn::Error::new(
            span,
            "`on_delete`/`on_update` need `references` on the same column",
        ));
    }
    if let Some(generated) = &attrs.generated {
        let conflict = if attrs.default.is_some() {
            Some("a default")
        } else if attrs.client_default.is_some() {
            Some("a `client_default`")
        } else if attrs.primary_key.is_some() {
            Some("`primary_key`")
        } else {
            None
        };
        if let Some(conflict) = conflict {
            return Err(syn::Error::new(
                generated.span(),
                format!("a generated column cannot have {conflict}"),
            ));
        }
    }
    Ok(())
}

/// Describes `ty` when it is recognisably not an integer type (syntax only;
/// other types are checked by a const assertion on their `SQL_TYPE`).
fn non_integer_type(ty: &Type) -> Option<String> {
    let Type::Path(path) = ty else {
        return Some(format!("`{}`", quote!(#ty).to_string().replace(' ', "")));
    };
    let last = path.path.segments.last()?;
    let name = last.ident.to_string();
    if name == "Option"
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
    {
        return non_integer_type(inner);
    }
    const NOT_INTEGERS: &[&str] = &[
        "String",
        "str",
        "f32",
        "f64",
        "bool",
        "Vec",
        "OffsetDateTime",
        "Date",
        "IsoDateTime",
        "Uuid",
        "Json",
    ];
    NOT_INTEGERS
        .contains(&name.as_str())
        .then(|| format!("`{}`", quote!(#ty).to_string().replace(' ', "")))
}

/// An unsuffixed `usize` literal: `3`, not `3usize`.
fn index(i: usize) -> proc_macro2::Literal {
    proc_macro2::Literal::usize_unsuffixed(i)
}

/// The index of the first entry that repeats an earlier one.
fn first_duplicate(indexes: &[usize]) -> Option<usize> {
    (0..indexes.len()).find(|&i| indexes[..i].contains(&indexes[i]))
}

/// `TodoItem` → `todo_item`, `HTTPLog` → `http_log`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &ch) in chars.iter().enumerate() {
        if ch.is_uppercase() {
            let after_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let before_lower = i > 0
                && chars[i - 1].is_uppercase()
                && chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            if (after_lower || before_lower) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion of `input`, pretty-printed.
    fn expand_pretty(input: TokenStream) -> String {
        let tokens = expand(input).unwrap_or_else(|e| panic!("expansion failed: {e}"));
        prettyplease::unparse(&syn::parse2(tokens).expect("the expansion parses as a file"))
    }

    /// The error message of expanding `input`.
    fn expand_error(input: TokenStream) -> String {
        match expand(input) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("Todo"), "todo");
        assert_eq!(snake_case("TodoItem"), "todo_item");
        assert_eq!(snake_case("HTTPLog"), "http_log");
        assert_eq!(snake_case("Item2Tag"), "item2_tag");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }

    #[test]
    fn todos_expansion() {
        insta::assert_snapshot!(expand_pretty(quote! {
            #[table(name = "todos")]
            pub struct Todo {
                #[column(primary_key, auto_increment)]
                pub id: i64,
                #[column(length = 6..=10)]
                pub title: String,
                #[column(name = "body")]
                pub content: String,
                pub category: Option<i64>,
                pub due_date: Option<OffsetDateTime>,
                pub priority: Option<i32>,
            }
        }));
    }

    #[test]
    fn constraints_expansion() {
        insta::assert_snapshot!(expand_pretty(quote! {
            #[table(primary_key(list, position), unique(list, title), check = "position >= 0", strict, without_rowid)]
            #[table(foreign_key(columns(list), references = TodoList, to(id), on_delete = "cascade"))]
            pub(crate) struct ListEntry {
                #[column(references = "todo_lists(id)", on_update = "cascade")]
                list: i64,
                #[column(check = "position < 1000")]
                position: i64,
                #[column(unique, default = "untitled", custom = "COLLATE NOCASE")]
                title: String,
                #[column(sql_default = "CURRENT_TIMESTAMP")]
                created: String,
                #[column(client_default = crate::ids::fresh)]
                token: i64,
                #[column(generated = "length(title)", stored)]
                title_length: i64,
                #[column(references = Category::ID, on_delete = "set null")]
                category: Option<i64>,
            }
        }));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(
            expand_error(quote!(
                struct Pair(i64, String);
            )),
            "`#[derive(Table)]` needs a struct with named fields: each field is a column named after it"
        );
        assert_eq!(
            expand_error(quote!(
                struct Todo<T> {
                    id: T,
                }
            )),
            "`#[derive(Table)]` does not support generic structs: a table has one fixed set of column types"
        );
        assert!(
            expand_error(quote!(
                enum Todo {
                    A,
                }
            ))
            .starts_with("`#[derive(Table)]` only works on structs")
        );
        assert_eq!(
            expand_error(quote!(
                struct Empty {}
            )),
            "a table needs at least one column"
        );
    }

    #[test]
    fn column_rule_errors() {
        assert_eq!(
            expand_error(quote!(
                struct T {
                    #[column(auto_increment)]
                    id: i64,
                }
            )),
            "`auto_increment` needs `primary_key` on the same column"
        );
        assert_eq!(
            expand_error(quote!(
                struct T {
                    #[column(primary_key, auto_increment)]
                    id: String,
                }
            )),
            "`auto_increment` needs an integer column (`i64`), not `String`"
        );
        assert_eq!(
            expand_error(quote!(
                struct T {
                    a: i64,
                    #[column(name = "A")]
                    b: i64,
                }
            )),
            "duplicate column name `A`: field `a` already maps to `a` (SQLite compares names case-insensitively)"
        );
        assert_eq!(
            expand_error(quote!(
                struct T {
                    #[column(primary_key)]
                    a: i64,
                    #[column(primary_key)]
                    b: i64,
                }
            )),
            "only one column can be `primary_key`; declare a composite key with `#[table(primary_key(a, b))]`"
        );
        assert_eq!(
            expand_error(quote!(
                #[table(primary_key(a))]
                struct T {
                    #[column(primary_key)]
                    a: i64,
                }
            )),
            "the table already declares `#[table(primary_key(..))]`; a column cannot be `primary_key` as well"
        );
        assert_eq!(
            expand_error(quote!(
                #[table(unique(a, c))]
                struct T {
                    a: i64,
                    b: i64,
                }
            )),
            "no field `c` in `T`"
        );
        assert_eq!(
            expand_error(quote!(
                struct T {
                    #[column(stored)]
                    a: i64,
                }
            )),
            "`stored` only applies to a `generated = \"…\"` column"
        );
        assert_eq!(
            expand_error(quote!(
                struct T {
                    #[column(on_delete = "cascade")]
                    a: i64,
                }
            )),
            "`on_delete`/`on_update` need `references` on the same column"
        );
        assert_eq!(
            expand_error(quote!(
                struct T {
                    #[column(generated = "1", default = 2)]
                    a: i64,
                }
            )),
            "a generated column cannot have a default"
        );
        assert_eq!(
            expand_error(quote!(
                #[table(without_rowid)]
                struct T {
                    a: i64,
                }
            )),
            "a `without_rowid` table needs a primary key"
        );
        assert_eq!(
            expand_error(quote!(
                #[table(without_rowid)]
                struct T {
                    #[column(primary_key, auto_increment)]
                    a: i64,
                }
            )),
            "SQLite does not allow `auto_increment` in a `without_rowid` table"
        );
    }
}
