//! The attribute belongs on the implementation's method, which has a body.
use tenant_core::{with_context, ContextError};

trait Answer {
    #[with_context(tenant)]
    async fn answer(&self) -> Result<String, ContextError>;
}

fn main() {}
