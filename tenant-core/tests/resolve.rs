//! `tenant_core::resolve`, now public, tried as a hostile caller would: it
//! must not turn an authorized scope into an authorized context for another
//! tenant, nor invent a tenant.

use tenant_core::{Ctx, Field, Incoming, Provenance, Validated, WithAgent};

async fn allow_all(_: Ctx<Validated>) -> Result<(), tenant_core::ContextError> {
    Ok(())
}

async fn authorized(tenant: &str) -> Ctx<Validated> {
    let raw = Ctx::unvalidated().with_tenant(tenant);
    let caller: Ctx = raw
        .validate()
        .unwrap()
        .trust("test: the caller authenticated");
    Incoming::on_behalf_of(&caller)
        .scope(raw.validate_with(&allow_all))
        .await
        .unwrap()
}

#[tokio::test]
async fn binding_another_tenant_inside_an_authorized_scope_is_refused() {
    let a = authorized("tenant-a").await;
    assert!(a.is_authorized());
    let err = a
        .scope(tenant_core::resolve::<Validated>(&[(
            Field::Tenant,
            "tenant-b",
        )]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TENANT_MISMATCH");
    assert_eq!(err.http_status(), 403);
}

#[tokio::test]
async fn adding_an_agent_keeps_the_tenant_and_its_mark() {
    let a = authorized("tenant-a").await;
    let with_agent: Ctx<Validated<WithAgent>> = a
        .scope(tenant_core::resolve(&[(Field::Agent, "agent-1")]))
        .await
        .unwrap();
    assert_eq!(with_agent.tenant_id().as_str(), "tenant-a");
    assert_eq!(with_agent.agent_id().as_str(), "agent-1");
    assert_eq!(with_agent.provenance(), Provenance::Authorized);
}

#[tokio::test]
async fn an_incoming_context_for_another_tenant_lends_nothing_to_the_scope() {
    // A request for tenant B whose handler runs inside a scope for A: the
    // agent is not taken from B's request.
    let a = authorized("tenant-a").await;
    let incoming = Incoming::new(
        Ctx::unvalidated()
            .with_tenant("tenant-b")
            .with_agent("agent-of-b"),
    );
    let err = incoming
        .scope(a.scope(tenant_core::resolve::<Validated<WithAgent>>(&[])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AGENT_REQUIRED");
}

#[tokio::test]
async fn bad_bound_values_are_refused_with_their_codes() {
    for (bindings, code) in [
        (&[][..], "TENANT_REQUIRED"),
        (&[(Field::Tenant, "default")][..], "TENANT_INVALID"),
        (&[(Field::Tenant, "")][..], "TENANT_INVALID"),
        (&[(Field::Tenant, "a'b")][..], "TENANT_INVALID"),
    ] {
        let err = tenant_core::resolve::<Validated>(bindings)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{bindings:?}");
    }
}
