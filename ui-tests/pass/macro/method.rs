//! An inherent method with `&self`: the context parameter may sit anywhere
//! in the list (here between two others) and have any name.
use tenant_core::{with_context, ContextError, Ctx, Incoming, Validated, WithConversation};

struct History {
    limit: usize,
}

impl History {
    #[with_context(tenant, conversation)]
    async fn last(
        &self,
        query: &str,
        conv: Ctx<Validated<tenant_core::NoAgent, WithConversation>>,
        page: usize,
    ) -> Result<String, ContextError> {
        Ok(format!(
            "{query} in {} page {page} limit {}",
            conv.conversation_id(),
            self.limit
        ))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let history = History { limit: 10 };
    let raw = Ctx::unvalidated()
        .with_tenant("acme")
        .with_conversation("conv-1");
    let out = rt.block_on(Incoming::new(raw).scope(history.last("hi", 2)));
    assert_eq!(out.unwrap(), "hi in conv-1 page 2 limit 10");
}
