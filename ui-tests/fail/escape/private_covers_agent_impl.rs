//! Implementing the hidden `tenant_core::__private::CoversAgent` marker so
//! that a context without an agent narrows into one that guarantees it
//! (what `#[with_context]` uses to accept a parameter type). The orphan
//! rules forbid it: the trait and both markers belong to `tenant_core`.
use tenant_core::__private::CoversAgent;
use tenant_core::{NoAgent, WithAgent};

impl CoversAgent<WithAgent> for NoAgent {}

fn main() {}
