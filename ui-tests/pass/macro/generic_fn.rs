//! A generic function with a `where` clause and `?` in the body: the
//! generics stay on the function and `?` converts into its error type.
use std::fmt::Display;

use tenant_core::{with_context, ContextError, Ctx, Incoming};

#[derive(Debug)]
enum AppError {
    Context(ContextError),
    Parse(std::num::ParseIntError),
}

impl From<ContextError> for AppError {
    fn from(e: ContextError) -> Self {
        AppError::Context(e)
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError::Parse(e)
    }
}

#[with_context(tenant)]
async fn label<T>(ctx: Ctx, item: T, count: &str) -> Result<String, AppError>
where
    T: Display + Send,
{
    let count: u32 = count.parse()?;
    Ok(format!("{}:{item}x{count}", ctx.tenant_id()))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let raw = Ctx::unvalidated().with_tenant("acme");
    let out = rt.block_on(Incoming::new(raw.clone()).scope(label("apple", "3")));
    assert_eq!(out.unwrap(), "acme:applex3");
    let out = rt.block_on(Incoming::new(raw).scope(label(7, "three")));
    assert!(matches!(out, Err(AppError::Parse(_))));
}
