//! What to emit when the attribute is misused: the errors, plus an item as
//! close as possible to the real expansion, so that one mistake does not
//! cause follow-on errors in the body or at call sites (after tokio-macros
//! and thiserror's `fallback.rs`).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::Function;
use crate::attr::Options;
use crate::expand::outer_inputs;

/// The errors and a function with the outer signature whose body binds the
/// context parameter to a value of its declared type. It never runs: the
/// crate does not compile.
pub(crate) fn item(err: syn::Error, opts: &Options, func: &Function<'_>) -> TokenStream {
    let errors = err.to_compile_error();
    let original = func.original;
    if original.sig.asyncness.is_none() {
        return quote!(#errors #original);
    }
    let krate = &opts.krate;
    let binds = func.ctx_params.iter().map(|p| {
        let pat = p.pat;
        let ty = p.ty;
        let value = quote_spanned!(ty.span()=> #krate::__private::unreachable_ctx());
        quote!(let #pat: #ty = #value;)
    });
    let mut outer = original.clone();
    outer.sig.inputs = outer_inputs(func);
    let attrs = &outer.attrs;
    let vis = &outer.vis;
    let sig = &outer.sig;
    let block = &original.block;
    quote! {
        #errors
        #(#attrs)*
        #vis #sig {
            #(#binds)*
            #block
        }
    }
}

/// The attribute is not on a function with a body.
pub(crate) fn not_a_function(err: syn::Error, input: TokenStream) -> TokenStream {
    let msg = if syn::parse2::<syn::TraitItemFn>(input.clone()).is_ok() {
        syn::Error::new(
            err.span(),
            "`#[with_context]` goes on the method in the `impl` block, not on the trait's declaration, which has no body to wrap",
        )
    } else {
        syn::Error::new(
            proc_macro2::Span::call_site(),
            "`#[with_context]` goes on an `async fn` (a free function or a method)",
        )
    };
    let errors = msg.to_compile_error();
    quote!(#errors #input)
}
