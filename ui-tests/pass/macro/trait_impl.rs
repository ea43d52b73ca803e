//! A trait with an `async fn` whose callers never see a context: the
//! implementation puts `#[with_context]` on its method and still matches
//! the trait's signature.
use tenant_core::{with_context, ContextError, Ctx, Incoming, Validated, WithAgent};

trait Answer {
    async fn answer(&self, question: String) -> Result<String, ContextError>;
}

struct Bot;

impl Answer for Bot {
    #[with_context(tenant, agent)]
    async fn answer(
        &self,
        question: String,
        ctx: Ctx<Validated<WithAgent>>,
    ) -> Result<String, ContextError> {
        Ok(format!("{} answers {question}", ctx.agent_id()))
    }
}

async fn ask<A: Answer>(a: &A) -> Result<String, ContextError> {
    a.answer("why?".to_owned()).await
}

/// A trait whose futures must be `Send` (to be spawned): the annotated
/// `async fn` in the implementation satisfies it.
trait SendAnswer: Sync {
    fn answer(&self) -> impl std::future::Future<Output = Result<String, ContextError>> + Send;
}

impl SendAnswer for Bot {
    #[with_context(tenant)]
    async fn answer(&self, ctx: Ctx) -> Result<String, ContextError> {
        Ok(ctx.tenant_id().to_string())
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let raw = Ctx::unvalidated().with_tenant("acme").with_agent("bot-1");
    let out = rt.block_on(Incoming::new(raw).scope(ask(&Bot)));
    assert_eq!(out.unwrap(), "bot-1 answers why?");
    let raw = Ctx::unvalidated().with_tenant("acme");
    let spawned = rt
        .block_on(async { tokio::spawn(Incoming::new(raw).scope(SendAnswer::answer(&Bot))).await });
    assert_eq!(spawned.unwrap().unwrap(), "acme");
}
