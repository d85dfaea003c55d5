//! `#[derive(IntEnum)]` and `#[derive(TextEnum)]`: a fieldless enum stored in
//! one column, as its variant index (`INTEGER`) or its variant name (`TEXT`).
//! Both implement the enum trait, `ToSql`, `FromSql` and `ColumnType` (with a
//! check constraint listing the valid stored values).

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident};

use crate::attrs;

/// How the enum is stored.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// The variant's index in declaration order.
    Index,
    /// The variant's name, or its `#[sql(rename = "…")]`.
    Name,
}

/// Expands `#[derive(IntEnum)]` on `input`.
pub fn expand_int(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let variants = variants(&input, Storage::Index)?;
    let ident = &input.ident;
    let count = variants.len();
    let max = count as i64 - 1;
    let to_arms = variants.iter().enumerate().map(|(i, (v, _))| {
        let i = i as i64;
        quote!(#ident::#v => #i,)
    });
    let from_arms = variants.iter().enumerate().map(|(i, (v, _))| {
        let i = i as i64;
        quote!(#i => ::std::option::Option::Some(#ident::#v),)
    });
    let expected = format!("INTEGER 0 to {max} (one of the variants of {ident})");
    let check = format!(" BETWEEN 0 AND {max}");
    Ok(quote! {
        impl ::driftwood::types::IntEnum for #ident {
            fn to_index(&self) -> i64 {
                match self {
                    #(#to_arms)*
                }
            }

            fn from_index(index: i64) -> ::std::option::Option<Self> {
                match index {
                    #(#from_arms)*
                    _ => ::std::option::Option::None,
                }
            }
        }

        impl ::driftwood::types::ToSql for #ident {
            fn to_sql(&self) -> ::driftwood::types::SqlArg<'_> {
                ::driftwood::types::SqlArg::Borrowed(::driftwood::types::ValueRef::Integer(
                    <Self as ::driftwood::types::IntEnum>::to_index(self),
                ))
            }
        }

        impl ::driftwood::types::FromSql for #ident {
            fn from_sql(
                value: ::driftwood::types::ValueRef<'_>,
            ) -> ::std::result::Result<Self, ::driftwood::types::FromSqlError> {
                if let ::driftwood::types::ValueRef::Integer(index) = value {
                    if let ::std::option::Option::Some(variant) = <Self as ::driftwood::types::IntEnum>::from_index(index) {
                        return ::std::result::Result::Ok(variant);
                    }
                }
                ::std::result::Result::Err(::driftwood::types::FromSqlError::mismatch(#expected, value))
            }
        }

        impl ::driftwood::types::ColumnType for #ident {
            type Base = Self;
            const SQL_TYPE: ::driftwood::types::SqlType = ::driftwood::types::SqlType::Integer;

            fn check_constraint(column: &str) -> ::std::option::Option<::std::string::String> {
                ::std::option::Option::Some(::std::format!("{}{}", column, #check))
            }
        }
    })
}

/// Expands `#[derive(TextEnum)]` on `input`.
pub fn expand_text(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let variants = variants(&input, Storage::Name)?;
    let ident = &input.ident;
    let to_arms = variants
        .iter()
        .map(|(v, name)| quote!(#ident::#v => #name,));
    let from_arms = variants
        .iter()
        .map(|(v, name)| quote!(#name => ::std::option::Option::Some(#ident::#v),));
    let quoted: Vec<String> = variants
        .iter()
        .map(|(_, name)| format!("'{}'", name.replace('\'', "''")))
        .collect();
    let listed = match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    let expected = format!("TEXT {listed} (one of the variants of {ident})");
    let check = format!(" IN ({})", quoted.join(", "));
    Ok(quote! {
        impl ::driftwood::types::TextEnum for #ident {
            fn to_name(&self) -> &'static str {
                match self {
                    #(#to_arms)*
                }
            }

            fn from_name(name: &str) -> ::std::option::Option<Self> {
                match name {
                    #(#from_arms)*
                    _ => ::std::option::Option::None,
                }
            }
        }

        impl ::driftwood::types::ToSql for #ident {
            fn to_sql(&self) -> ::driftwood::types::SqlArg<'_> {
                ::driftwood::types::SqlArg::Borrowed(::driftwood::types::ValueRef::Text(
                    <Self as ::driftwood::types::TextEnum>::to_name(self),
                ))
            }
        }

        impl ::driftwood::types::FromSql for #ident {
            fn from_sql(
                value: ::driftwood::types::ValueRef<'_>,
            ) -> ::std::result::Result<Self, ::driftwood::types::FromSqlError> {
                if let ::driftwood::types::ValueRef::Text(name) = value {
                    if let ::std::option::Option::Some(variant) = <Self as ::driftwood::types::TextEnum>::from_name(name) {
                        return ::std::result::Result::Ok(variant);
                    }
                }
                ::std::result::Result::Err(::driftwood::types::FromSqlError::mismatch(#expected, value))
            }
        }

        impl ::driftwood::types::ColumnType for #ident {
            type Base = Self;
            const SQL_TYPE: ::driftwood::types::SqlType = ::driftwood::types::SqlType::Text;

            fn check_constraint(column: &str) -> ::std::option::Option<::std::string::String> {
                ::std::option::Option::Some(::std::format!("{}{}", column, #check))
            }
        }
    })
}

/// The variants of a fieldless, non-generic enum with their stored names
/// (only meaningful for [`Storage::Name`]).
fn variants(input: &DeriveInput, storage: Storage) -> syn::Result<Vec<(&Ident, String)>> {
    let derive = match storage {
        Storage::Index => "IntEnum",
        Storage::Name => "TextEnum",
    };
    let data = match &input.data {
        Data::Enum(data) => data,
        Data::Struct(data) => {
            return Err(syn::Error::new(
                data.struct_token.span,
                format!("`#[derive({derive})]` only works on enums whose variants have no fields"),
            ));
        }
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span,
                format!("`#[derive({derive})]` only works on enums whose variants have no fields"),
            ));
        }
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            format!("`#[derive({derive})]` does not support generic enums"),
        ));
    }
    if data.variants.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            format!(
                "`#[derive({derive})]` needs at least one variant: an empty enum has no value to store"
            ),
        ));
    }
    let mut out: Vec<(&Ident, String)> = Vec::with_capacity(data.variants.len());
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            return Err(syn::Error::new(
                variant.span(),
                format!(
                    "`#[derive({derive})]` needs variants without fields: `{}` has fields, so it cannot be stored in \
                     one column",
                    variant.ident
                ),
            ));
        }
        let rename = attrs::variant_rename(&variant.attrs)?;
        if storage == Storage::Index {
            if let Some((_, discriminant)) = &variant.discriminant {
                return Err(syn::Error::new_spanned(
                    discriminant,
                    "`#[derive(IntEnum)]` stores each variant's position (0, 1, 2, …); \
                     an explicit discriminant would be ignored, so remove it",
                ));
            }
            if let Some(lit) = rename {
                return Err(syn::Error::new(
                    lit.span(),
                    "`#[sql(rename = \"…\")]` applies to `#[derive(TextEnum)]`; an `IntEnum` stores positions",
                ));
            }
            out.push((&variant.ident, String::new()));
            continue;
        }
        let (name, span) = match rename {
            Some(lit) => (lit.value(), lit.span()),
            None => (attrs::unraw(&variant.ident), variant.ident.span()),
        };
        if let Some((previous, _)) = out.iter().find(|(_, n)| *n == name) {
            return Err(syn::Error::new(
                span,
                format!("variant `{previous}` is already stored as \"{name}\""),
            ));
        }
        out.push((&variant.ident, name));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pretty(tokens: syn::Result<TokenStream>) -> String {
        let tokens = tokens.unwrap_or_else(|e| panic!("expansion failed: {e}"));
        prettyplease::unparse(&syn::parse2(tokens).expect("the expansion parses as a file"))
    }

    fn error(tokens: syn::Result<TokenStream>) -> String {
        match tokens {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn int_enum_expansion() {
        insta::assert_snapshot!(pretty(expand_int(quote! {
            pub enum Priority { Low, Medium, High }
        })));
    }

    #[test]
    fn text_enum_expansion() {
        insta::assert_snapshot!(pretty(expand_text(quote! {
            pub enum Status { Open, #[sql(rename = "in progress")] InProgress, Done }
        })));
    }

    #[test]
    fn errors() {
        assert_eq!(
            error(expand_int(quote!(
                enum E {
                    A,
                    B(i64),
                }
            ))),
            "`#[derive(IntEnum)]` needs variants without fields: `B` has fields, so it cannot be stored in one column"
        );
        assert_eq!(
            error(expand_text(quote!(
                struct S;
            ))),
            "`#[derive(TextEnum)]` only works on enums whose variants have no fields"
        );
        assert!(
            error(expand_int(quote!(
                enum E {
                    A = 1,
                }
            )))
            .starts_with("`#[derive(IntEnum)]` stores each variant's")
        );
        assert!(
            error(expand_int(quote!(
                enum E {
                    #[sql(rename = "a")]
                    A,
                }
            )))
            .starts_with("`#[sql(rename")
        );
        assert_eq!(
            error(expand_text(quote!(
                enum E {
                    A,
                    #[sql(rename = "A")]
                    B,
                }
            ))),
            "variant `A` is already stored as \"A\""
        );
        assert_eq!(
            error(expand_text(quote!(
                enum E {}
            ))),
            "`#[derive(TextEnum)]` needs at least one variant: an empty enum has no value to store"
        );
        assert_eq!(
            error(expand_int(quote!(
                enum E<T> {
                    A(T),
                }
            ))),
            "`#[derive(IntEnum)]` does not support generic enums"
        );
    }
}
