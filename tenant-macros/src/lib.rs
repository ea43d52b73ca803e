//! The `#[with_context(...)]` attribute. Use it through
//! [`tenant_core::with_context`](https://docs.rs/tenant-core), whose
//! documentation is the reference.
#![deny(missing_docs)]

mod ast;
mod attr;
mod ctxt;
mod expand;
mod fallback;
mod suggest;
mod valid;

use proc_macro::TokenStream;

/// DOCS
#[proc_macro_attribute]
pub fn with_context(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::with_context(args.into(), item.into()).into()
}
