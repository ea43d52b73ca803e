//! What to emit when the attribute is misused: the errors, plus an item as
//! close as possible to the real expansion, so that one mistake does not
//! cause follow-on errors in the body or at call sites (after tokio-macros
//! and thiserror's `fallback.rs`).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use syn::punctuated::Punctuated;
use syn::{GenericArgument, PathArguments, Token, Type};

use crate::ast::{Declared, Function, Marker, MARKERS};
use crate::attr::Options;
use crate::expand::outer_inputs;

/// The errors and a function with the outer signature whose body binds the
/// context parameter to a value of its declared type. It never runs: the
/// crate does not compile.
/// With `options_ok` false (a malformed option), the context parameter
/// keeps its written type: the options say nothing reliable.
pub(crate) fn item(
    err: syn::Error,
    opts: &Options,
    func: &Function<'_>,
    options_ok: bool,
) -> TokenStream {
    let errors = err.to_compile_error();
    let original = func.original;
    let block = func.body;
    if original.sig.asyncness.is_none() {
        // As written, minus the `#[ctx]` markers only this macro understands.
        let mut item = original.clone();
        for arg in &mut item.sig.inputs {
            if let syn::FnArg::Typed(pt) = arg {
                pt.attrs.retain(|a| !crate::ast::is_ctx_attr(a));
            }
        }
        let attrs = &item.attrs;
        let vis = &item.vis;
        let sig = &item.sig;
        return quote!(#errors #(#attrs)* #vis #sig #block);
    }
    let binds = func.ctx_params.iter().map(|p| {
        let pat = p.pat;
        let ty_written = p.ty;
        let corrected = if options_ok {
            corrected_type(opts, &p.declared, ty_written)
        } else {
            None
        };
        let ty = corrected.unwrap_or_else(|| quote!(#ty_written));
        // A closure that diverges has the written type without making the
        // statements after it unreachable (no extra warnings), and no
        // public function exists that a user could call to conjure a
        // context of any type.
        let value = quote_spanned!(ty_written.span()=> (|| -> #ty {
            ::core::unreachable!("`#[with_context]` emitted this item next to a compile error")
        })());
        quote!(let #pat: #ty = #value;)
    });
    let mut outer = original.clone();
    outer.sig.inputs = outer_inputs(func);
    let attrs = &outer.attrs;
    let vis = &outer.vis;
    let sig = &outer.sig;
    quote! {
        #errors
        #(#attrs)*
        #vis #sig {
            #(#binds)*
            #block
        }
    }
}

/// The attribute is not on a function with a body, or the signature does
/// not parse.
pub(crate) fn not_a_function(input: TokenStream) -> TokenStream {
    let msg = if let Ok(decl) = syn::parse2::<syn::TraitItemFn>(input.clone()) {
        syn::Error::new(
            decl.sig.fn_token.span,
            "`#[with_context]` goes on the method in the `impl` block, not on the trait's declaration, which has no body to wrap",
        )
    } else {
        let (span, what) = match syn::parse2::<syn::Item>(input.clone()) {
            Ok(syn::Item::Struct(i)) => (i.struct_token.span, "a struct"),
            Ok(syn::Item::Enum(i)) => (i.enum_token.span, "an enum"),
            Ok(syn::Item::Trait(i)) => (i.trait_token.span, "a trait"),
            Ok(syn::Item::Impl(i)) => (
                i.impl_token.span,
                "an `impl` block (put it on each `async fn` inside)",
            ),
            Ok(_) => (proc_macro2::Span::call_site(), "this item"),
            // Not an item at all (a syntax error in the signature, say):
            // the compiler's parser reports it where it is, in its own
            // words; syn's copy of the same error would only repeat it in
            // worse ones, and "goes on an `async fn`" would be wrong.
            Err(_) => return input,
        };
        syn::Error::new(
            span,
            format!("`#[with_context]` goes on an `async fn` (a free function or a method), not on {what}"),
        )
    };
    let errors = msg.to_compile_error();
    quote!(#errors #input)
}

/// For a context type with a marker in the wrong position, the type that
/// was meant (the user's own tokens, moved), so the body type-checks and
/// the macro's error stands alone.
fn corrected_type(opts: &Options, declared: &Declared, written: &Type) -> Option<TokenStream> {
    let Declared::Validated(markers) = declared else {
        return None;
    };
    if !markers.iter().any(|m| matches!(m, Marker::Misplaced(..))) {
        return None;
    }
    let mut ty = written.clone();
    let state_args = validated_args(&mut ty)?;
    let mut placed: [Option<Type>; 3] = [None, None, None];
    for (arg, marker) in state_args.iter().zip(markers.iter()) {
        let GenericArgument::Type(t) = arg else {
            continue;
        };
        match marker {
            Marker::Misplaced(_, _, right) => placed[*right] = Some(t.clone()),
            Marker::With(_) | Marker::Without | Marker::Opaque => {}
        }
    }
    for (pos, arg) in state_args.iter().enumerate().take(3) {
        if let (GenericArgument::Type(t), None) = (arg, &placed[pos]) {
            if !matches!(markers[pos], Marker::Misplaced(..)) {
                placed[pos] = Some(t.clone());
            }
        }
    }
    let krate = &opts.krate;
    let args = placed.into_iter().enumerate().map(|(pos, t)| match t {
        Some(t) => quote!(#t),
        None => {
            let ident = syn::Ident::new(MARKERS[pos].1, proc_macro2::Span::call_site());
            quote!(#krate::#ident)
        }
    });
    *state_args = syn::parse_quote!(#(#args),*);
    Some(quote!(#ty))
}

/// The arguments of `Validated<..>` inside `Ctx<Validated<..>>`.
fn validated_args(ty: &mut Type) -> Option<&mut Punctuated<GenericArgument, Token![,]>> {
    let Type::Path(p) = ty else { return None };
    let PathArguments::AngleBracketed(ctx_args) = &mut p.path.segments.last_mut()?.arguments else {
        return None;
    };
    let GenericArgument::Type(Type::Path(state)) = ctx_args.args.first_mut()? else {
        return None;
    };
    match &mut state.path.segments.last_mut()?.arguments {
        PathArguments::AngleBracketed(a) => Some(&mut a.args),
        _ => None,
    }
}
