//! Code generation: the function keeps its signature minus the context
//! parameter; its body resolves the context, then runs the original body
//! inside the context's task-local scope and a `tracing` span.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, ItemFn, ReturnType, Token, Type};

use crate::ast::{Function, MARKERS};
use crate::attr::{self, Field, Options};
use crate::ctxt::Ctxt;
use crate::{fallback, valid};

/// The attribute's entry point.
pub(crate) fn with_context(args: TokenStream, input: TokenStream) -> TokenStream {
    // The signature is parsed; the body is kept as tokens (as tokio-macros
    // and tracing-attributes do), so a syntax error in the body is reported
    // by the compiler as the body's error, not as a misplaced attribute.
    let LazyFn { item, body } = match syn::parse2(input.clone()) {
        Ok(lazy) => lazy,
        Err(_) => return fallback::not_a_function(input),
    };
    let cx = Ctxt::new();
    let opts = attr::parse(&cx, args);
    let func = Function::from_syn(&item, &body);
    // Checks that read the options would only report consequences of a
    // malformed option: the option's own error stands alone.
    let options_ok = !cx.has_errors();
    valid::check(&cx, &opts, &func, options_ok);
    match cx.check() {
        Ok(()) => expand(&opts, &func),
        Err(err) => fallback::item(err, &opts, &func, options_ok),
    }
}

/// `attrs vis sig { body }` with the body unparsed.
struct LazyFn {
    /// The function with an empty block: everything but the body.
    item: ItemFn,
    /// The body, braces included, as written.
    body: proc_macro2::Group,
}

impl syn::parse::Parse for LazyFn {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let vis: syn::Visibility = input.parse()?;
        let sig: syn::Signature = input.parse()?;
        let body: proc_macro2::Group = input.parse()?;
        if body.delimiter() != proc_macro2::Delimiter::Brace {
            return Err(syn::Error::new(body.span(), "expected the function's body"));
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the function's body"));
        }
        let block = Box::new(syn::Block {
            brace_token: syn::token::Brace {
                span: body.delim_span(),
            },
            stmts: Vec::new(),
        });
        Ok(LazyFn {
            item: ItemFn {
                attrs,
                vis,
                sig,
                block,
            },
            body,
        })
    }
}

/// The signature without the context parameter(s): what callers, an axum
/// router included, see.
pub(crate) fn outer_inputs(func: &Function<'_>) -> Punctuated<FnArg, Token![,]> {
    func.original
        .sig
        .inputs
        .iter()
        .enumerate()
        .filter(|(i, _)| !func.ctx_params.iter().any(|p| p.index == *i))
        .map(|(_, a)| a.clone())
        .collect()
}

fn expand(opts: &Options, func: &Function<'_>) -> TokenStream {
    let body = if opts.validate_tenant {
        validated_body(opts, func)
    } else {
        raw_body(opts, func)
    };
    let mut outer = func.original.clone();
    outer.sig.inputs = outer_inputs(func);
    let attrs = &outer.attrs;
    let vis = &outer.vis;
    let sig = &outer.sig;
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// `Validated<WithAgent, NoConversation, NoCollection>` for the options.
fn state(opts: &Options) -> TokenStream {
    let krate = &opts.krate;
    let fields = [Field::Agent, Field::Conversation, Field::Collection];
    let markers = fields.iter().zip(MARKERS).map(|(f, (with, without))| {
        let name = if opts.declared(*f).is_some() {
            with
        } else {
            without
        };
        let ident = syn::Ident::new(name, Span::call_site());
        quote!(#krate::#ident)
    });
    quote!(#krate::Validated<#(#markers),*>)
}

/// `&[(Field::Agent, binding(&agent_id)), ..]`, each spanned at the
/// parameter so a parameter that is not text is reported there.
fn bindings(opts: &Options) -> TokenStream {
    let krate = &opts.krate;
    let items = opts.bindings().map(|(field, param)| {
        let variant = field.variant();
        let private = respan(quote!(#krate::__private), param.span());
        let value = quote_spanned!(param.span()=> #private::binding(&#param));
        quote!((#krate::Field::#variant, #value))
    });
    quote!(&[#(#items),*])
}

/// Makes `return`s and `?` in the body check against the declared return
/// type (tracing-attributes' trick). Skipped when the type cannot be named
/// in a `let` (`impl Trait`) or is `()`.
fn fake_return_edge(func: &Function<'_>) -> TokenStream {
    let ReturnType::Type(_, ty) = &func.original.sig.output else {
        return TokenStream::new();
    };
    if contains_impl_trait(ty) {
        return TokenStream::new();
    }
    quote_spanned! {ty.span()=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let __tenant_fake_return: #ty = loop {};
            return __tenant_fake_return;
        }
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    f.visit_type(ty);
    f.0
}

fn span_name(func: &Function<'_>) -> syn::LitStr {
    let name = func.name();
    syn::LitStr::new(&name.to_string(), name.span())
}

fn validated_body(opts: &Options, func: &Function<'_>) -> TokenStream {
    let krate = &opts.krate;
    let state = state(opts);
    let bindings = bindings(opts);
    let private = quote!(#krate::__private);
    let error_span = match &func.original.sig.output {
        ReturnType::Type(_, ty) => error_type_span(ty),
        ReturnType::Default => Span::call_site(),
    };
    let private_at_error = respan(private.clone(), error_span);
    let context_error =
        quote_spanned!(error_span=> #private_at_error::context_error(__tenant_error));
    let name = span_name(func);
    let bind_ctx = func.ctx_param().map(|p| {
        let pat = p.pat;
        let ty = p.ty;
        let private = respan(private.clone(), ty.span());
        let value = quote_spanned!(ty.span()=>
            #private::narrow::<_, <#ty as #private::CtxType>::State>(&__tenant_ctx)
        );
        quote!(let #pat: #ty = #value;)
    });
    let fake_return = fake_return_edge(func);
    let block = func.body;
    quote! {
        let __tenant_ctx = match #private::resolve::<#state>(#bindings).await {
            ::core::result::Result::Ok(__tenant_ctx) => __tenant_ctx,
            ::core::result::Result::Err(__tenant_error) => return #context_error,
        };
        let __tenant_span = if #private::spans_enabled() {
            #private::tracing::info_span!(
                #name,
                tenant_id = __tenant_ctx.tenant_id().as_str(),
                agent_id = __tenant_ctx.agent_id_opt().map(|__tenant_id| __tenant_id.as_str()),
                conversation_id = __tenant_ctx.conversation_id_opt().map(|__tenant_id| __tenant_id.as_str()),
                collection_id = __tenant_ctx.collection_id_opt().map(|__tenant_id| __tenant_id.as_str()),
            )
        } else {
            #private::tracing::Span::none()
        };
        #bind_ctx
        let __tenant_body = #private::scope(&__tenant_ctx, async move {
            #fake_return
            #block
        });
        ::core::mem::drop(__tenant_ctx);
        #private::tracing::Instrument::instrument(__tenant_body, __tenant_span).await
    }
}

/// `E` in `Result<T, E>`, else the whole return type: where a missing
/// `From<ContextError>` is reported.
fn error_type_span(ty: &Type) -> Span {
    if let Type::Path(p) = ty {
        if let Some(seg) = p.path.segments.last() {
            if let syn::PathArguments::AngleBracketed(args) = &seg.arguments {
                if args.args.len() == 2 {
                    if let Some(e) = args.args.last() {
                        return e.span();
                    }
                }
            }
        }
    }
    ty.span()
}

/// Gives every token `span`, so that an error about a generated call is
/// reported on the user's token it was generated for.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

fn raw_body(opts: &Options, func: &Function<'_>) -> TokenStream {
    let krate = &opts.krate;
    let private = quote!(#krate::__private);
    let bindings = bindings(opts);
    let name = span_name(func);
    let bind_ctx = func.ctx_param().map(|p| {
        let pat = p.pat;
        let ty = p.ty;
        let at_ty = respan(private.clone(), ty.span());
        let value = quote_spanned!(ty.span()=> #at_ty::resolve_unvalidated(#bindings));
        quote!(let #pat: #ty = #value;)
    });
    let fake_return = fake_return_edge(func);
    let block = func.body;
    quote! {
        #bind_ctx
        let __tenant_span = if #private::spans_enabled() {
            #private::tracing::info_span!(#name, validate_tenant = false)
        } else {
            #private::tracing::Span::none()
        };
        #private::tracing::Instrument::instrument(
            async move {
                #fake_return
                #block
            },
            __tenant_span,
        )
        .await
    }
}
