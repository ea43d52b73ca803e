//! The options of `#[with_context(...)]`, parsed into [`Options`] through a
//! builder that rejects repeats (after tokio-macros' `Configuration`).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, Token};

use crate::ctxt::Ctxt;
use crate::suggest;

/// The four fields, in the order of `Validated<A, C, L>` after the tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Tenant,
    Agent,
    Conversation,
    Collection,
}

impl Field {
    pub(crate) const ALL: [Field; 4] = [
        Field::Tenant,
        Field::Agent,
        Field::Conversation,
        Field::Collection,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Tenant => "tenant",
            Field::Agent => "agent",
            Field::Conversation => "conversation",
            Field::Collection => "collection",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The variant of `tenant_core::Field`.
    pub(crate) fn variant(self) -> Ident {
        let name = match self {
            Field::Tenant => "Tenant",
            Field::Agent => "Agent",
            Field::Conversation => "Conversation",
            Field::Collection => "Collection",
        };
        Ident::new(name, Span::call_site())
    }
}

/// Every key the attribute accepts, as listed in error messages.
pub(crate) const KEYS: [&str; 6] = [
    "tenant",
    "agent",
    "conversation",
    "collection",
    "validate_tenant",
    "crate",
];

/// Where a declared field comes from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// The enclosing or incoming context.
    Context,
    /// A parameter of the function (`agent = agent_id`).
    Param(Ident),
}

/// A field named in the attribute.
#[derive(Clone, Debug)]
pub(crate) struct Declared {
    /// The key as written, for spans.
    pub(crate) key: Ident,
    pub(crate) source: Source,
}

/// The parsed options.
pub(crate) struct Options {
    /// Indexed like [`Field::ALL`].
    pub(crate) fields: [Option<Declared>; 4],
    pub(crate) validate_tenant: bool,
    /// False when `validate_tenant` could not be read: the checks that
    /// depend on it are skipped rather than guessed.
    pub(crate) validate_known: bool,
    pub(crate) krate: TokenStream,
}

impl Options {
    pub(crate) fn declared(&self, field: Field) -> Option<&Declared> {
        self.fields[field as usize].as_ref()
    }

    /// The fields taken from parameters, with the parameter.
    pub(crate) fn bindings(&self) -> impl Iterator<Item = (Field, &Ident)> + '_ {
        Field::ALL
            .into_iter()
            .filter_map(|f| match self.declared(f) {
                Some(Declared {
                    source: Source::Param(p),
                    ..
                }) => Some((f, p)),
                _ => None,
            })
    }

    /// What the options give when nothing can be trusted: tenant only, the
    /// default crate path. Used by the fallback expansion.
    pub(crate) fn fallback() -> Self {
        Options {
            fields: [None, None, None, None],
            validate_tenant: true,
            validate_known: true,
            krate: quote!(::tenant_core),
        }
    }
}

/// One `key` or `key = value` as written.
struct RawOption {
    key: Ident,
    value: Option<Expr>,
}

impl Parse for RawOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `crate` is a keyword; `parse_any` accepts it as a key.
        let key = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(RawOption { key, value })
    }
}

/// Accumulates options; every setter refuses a second value.
struct Builder {
    fields: [Option<Declared>; 4],
    validate_tenant: Option<(Ident, bool)>,
    krate: Option<(Ident, TokenStream)>,
    /// `validate_tenant` had a value that is not a `bool`.
    validate_unknown: bool,
}

/// Stores `value` in `slot` unless the key was set before. The one place
/// that detects repeats, so no option can get it wrong.
fn set_once<T>(cx: &Ctxt, slot: &mut Option<T>, key: &Ident, value: T) {
    if slot.is_some() {
        cx.error_spanned_by(key, format!("`{key}` set multiple times"));
    } else {
        *slot = Some(value);
    }
}

impl Builder {
    fn new() -> Self {
        Builder {
            fields: [None, None, None, None],
            validate_tenant: None,
            krate: None,
            validate_unknown: false,
        }
    }

    fn field(&mut self, cx: &Ctxt, field: Field, key: &Ident, value: Option<&Expr>) {
        let source = match value {
            None => Source::Context,
            Some(Expr::Path(p)) if p.qself.is_none() && p.path.get_ident().is_some() => {
                Source::Param(p.path.get_ident().cloned().unwrap_or_else(|| key.clone()))
            }
            Some(Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            })) => {
                if b.value {
                    cx.error_spanned_by(
                        value,
                        format!("write `{key}`, not `{key} = true`: naming a field requires it"),
                    );
                    // Read as meant, so the rest of the checks add no noise.
                    Source::Context
                } else {
                    if field == Field::Tenant {
                        cx.error_spanned_by(
                            value,
                            "the tenant is always required; for a public endpoint write `validate_tenant = false`",
                        );
                    } else {
                        cx.error_spanned_by(
                            value,
                            format!("leave `{key}` out instead of `{key} = false`: a field not named is not required"),
                        );
                    }
                    return;
                }
            }
            Some(other) => {
                cx.error_spanned_by(
                    other,
                    format!("`{key} = ...` takes the {key} from a parameter: write `{key} = <parameter name>`, or just `{key}` to take it from the incoming context"),
                );
                return;
            }
        };
        set_once(
            cx,
            &mut self.fields[field as usize],
            key,
            Declared {
                key: key.clone(),
                source,
            },
        );
    }

    fn validate_tenant(&mut self, cx: &Ctxt, key: &Ident, value: Option<&Expr>) {
        match value {
            Some(Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            })) => set_once(cx, &mut self.validate_tenant, key, (key.clone(), b.value)),
            Some(Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            })) if s.value() == "true" || s.value() == "false" => {
                let v = s.value() == "true";
                cx.error_spanned_by(
                    s,
                    format!("`validate_tenant` takes a `bool`, not a string: write `validate_tenant = {v}`"),
                );
                // Read as meant, so the rest of the checks add no noise.
                set_once(cx, &mut self.validate_tenant, key, (key.clone(), v));
            }
            Some(other) => {
                cx.error_spanned_by(other, "`validate_tenant` takes `true` or `false`");
                self.validate_unknown = true;
            }
            None => cx.error_spanned_by(
                key,
                "`validate_tenant` takes a value: `validate_tenant = false` for a public endpoint (the tenant is validated by default)",
            ),
        }
    }

    fn krate(&mut self, cx: &Ctxt, key: &Ident, value: Option<&Expr>) {
        match value {
            Some(Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            })) => match s.parse_with(syn::Path::parse_mod_style) {
                Ok(path) => set_once(cx, &mut self.krate, key, (key.clone(), quote!(#path))),
                Err(_) => cx.error_spanned_by(
                    s,
                    format!(
                        "`{}` is not a path to a crate, such as `\"my_runtime::tenant\"`",
                        s.value()
                    ),
                ),
            },
            _ => cx.error_spanned_by(
                value.map_or_else(|| quote!(#key), |v| quote!(#v)),
                "`crate` takes a path in a string: `crate = \"my_runtime::tenant\"`",
            ),
        }
    }

    fn build(self) -> Options {
        let validate_tenant = self.validate_tenant.is_none_or(|(_, v)| v);
        Options {
            fields: self.fields,
            validate_tenant,
            validate_known: !self.validate_unknown,
            krate: self.krate.map_or_else(|| quote!(::tenant_core), |(_, p)| p),
        }
    }
}

/// Parses the attribute's arguments. Errors go to `cx`; the options are
/// always returned, as good as they could be read, so the fallback item is
/// as close as possible to the real one.
pub(crate) fn parse(cx: &Ctxt, args: TokenStream) -> Options {
    let raw = match Punctuated::<RawOption, Token![,]>::parse_terminated.parse2(args) {
        Ok(raw) => raw,
        Err(err) => {
            cx.syn_error(err);
            return Options::fallback();
        }
    };
    let mut builder = Builder::new();
    for opt in &raw {
        let key = &opt.key;
        let name = key.to_string();
        if let Some(field) = Field::from_name(&name) {
            builder.field(cx, field, key, opt.value.as_ref());
        } else if name == "validate_tenant" {
            builder.validate_tenant(cx, key, opt.value.as_ref());
        } else if name == "crate" {
            builder.krate(cx, key, opt.value.as_ref());
        } else {
            cx.error_spanned_by(key, unknown_option(&name));
        }
    }
    builder.build()
}

fn unknown_option(name: &str) -> String {
    let valid = KEYS.map(|k| format!("`{k}`")).join(", ");
    match suggest::closest(name, KEYS) {
        Some(hint) => {
            format!("unknown option `{name}`: did you mean `{hint}`? The options are {valid}")
        }
        None => format!("unknown option `{name}`. The options are {valid}"),
    }
}
