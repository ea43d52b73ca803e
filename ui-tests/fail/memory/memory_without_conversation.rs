//! Conversation memory needs to know whose conversation it is: a context that
//! did not require the conversation cannot build one.
use tenant_core::{Ctx, Validated, WithAgent};
use tenant_sqlx::memory::ConversationMemory;
use tenant_sqlx::TenantPool;

fn remember(pool: &TenantPool, ctx: &Ctx<Validated<WithAgent>>) {
    let _memory = ConversationMemory::new(pool, ctx);
}

fn main() {
    let _ = remember;
}
