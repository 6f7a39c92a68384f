//! `#[derive(Schema)]`: describes a serde struct's accepted field names to barge's validator.
//!
//! serde has no reflection, so the validator could not otherwise tell "unknown field" (a typo
//! that silently does nothing in Kargo) from a field serde consumed. The derive reads the same
//! `#[serde(...)]` attributes serde reads (`rename_all = "camelCase"`, `rename`, `alias`,
//! `flatten`, `skip`), so the table can never disagree with what deserialization accepts.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr, parse_macro_input};

#[proc_macro_derive(Schema)]
pub fn derive_schema(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

#[derive(Default)]
struct SerdeAttrs {
    rename_all_camel: bool,
    rename: Option<String>,
    aliases: Vec<String>,
    flatten: bool,
    skip: bool,
}

fn serde_attrs(attrs: &[syn::Attribute]) -> syn::Result<SerdeAttrs> {
    let mut out = SerdeAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            match key.as_str() {
                "rename_all" => {
                    let v: LitStr = meta.value()?.parse()?;
                    if v.value() != "camelCase" {
                        return Err(meta.error("Schema derive supports rename_all = \"camelCase\" only"));
                    }
                    out.rename_all_camel = true;
                }
                "rename" => out.rename = Some(meta.value()?.parse::<LitStr>()?.value()),
                "alias" => out.aliases.push(meta.value()?.parse::<LitStr>()?.value()),
                "flatten" => out.flatten = true,
                "skip" | "skip_deserializing" => out.skip = true,
                _ => {
                    // Attributes that do not change the accepted names (default, skip_serializing_if,
                    // deserialize_with, ...) may carry a value; consume it so parsing continues.
                    if meta.input.peek(syn::Token![=]) {
                        let _: syn::Expr = meta.value()?.parse()?;
                    } else if meta.input.peek(syn::token::Paren) {
                        let _content;
                        syn::parenthesized!(_content in meta.input);
                        let _: proc_macro2::TokenStream = _content.parse()?;
                    }
                }
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The field's `///` comment, joined into one paragraph (it becomes the reference docs).
fn doc_comment(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s), ..
            }) = &nv.value
        {
            lines.push(s.value().trim().to_string());
        }
    }
    lines.join(" ").trim().to_string()
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let container = serde_attrs(&input.attrs)?;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "Schema can be derived for structs only; keep enumerations as validated strings",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new_spanned(&input.ident, "Schema needs named fields"));
    };
    let mut fields = Vec::new();
    let mut open = false;
    for f in &named.named {
        let attrs = serde_attrs(&f.attrs)?;
        if attrs.skip {
            continue;
        }
        if attrs.flatten {
            // A flattened catch-all map accepts every other key: the struct is open.
            open = true;
            continue;
        }
        let ident = f.ident.as_ref().expect("named field");
        let raw = ident.to_string();
        let raw = raw.strip_prefix("r#").unwrap_or(&raw);
        let name = attrs.rename.clone().unwrap_or_else(|| {
            if container.rename_all_camel {
                camel_case(raw)
            } else {
                raw.to_string()
            }
        });
        let aliases = &attrs.aliases;
        let ty = &f.ty;
        let doc = doc_comment(&f.attrs);
        fields.push(quote! {
            ::barge_core::schema::FieldShape {
                name: #name,
                aliases: &[#(#aliases),*],
                doc: #doc,
                shape: <#ty as ::barge_core::schema::Schema>::shape,
            }
        });
    }
    let ident = &input.ident;
    let name = ident.to_string();
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::barge_core::schema::Schema for #ident #ty_generics #where_clause {
            fn shape() -> ::barge_core::schema::Shape {
                static FIELDS: &[::barge_core::schema::FieldShape] = &[#(#fields),*];
                static SHAPE: ::barge_core::schema::StructShape = ::barge_core::schema::StructShape {
                    name: #name,
                    fields: FIELDS,
                    open: #open,
                };
                ::barge_core::schema::Shape::Struct(&SHAPE)
            }
        }
    })
}
