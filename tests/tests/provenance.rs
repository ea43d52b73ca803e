//! Provenance on the real PostgreSQL: a pool built with
//! `require_authorized(true)` opens transactions only for contexts that a
//! `Validator` accepted or that code marked with `trust(reason)`. Each way
//! around it that we could think of is kept here as a test.

mod common;

use std::sync::{Arc, Mutex};

use common::{as_caller, ctx, fixture, notes, AppError, Fixture};
use tenant_core::envelope::Envelope;
use tenant_core::{
    current, with_context, ContextError, Ctx, Incoming, Provenance, Validated, Validator, WithAgent,
};
use tenant_sqlx::{Error, TenantPool};
use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

async fn strict_pool(fx: &Fixture) -> TenantPool {
    TenantPool::builder()
        .max_connections(2)
        .require_authorized(true)
        .connect(fx.db.app_url())
        .await
        .expect("the fixture passes the audit")
}

/// The application's check: only the two seeded tenants.
fn seeded_tenants() -> Arc<dyn Validator> {
    Arc::new(|ctx: Ctx<Validated>| async move {
        match ctx.tenant_id().as_str() {
            "tenant-a" | "tenant-b" => Ok(()),
            _ => Err(ContextError::TenantUnknown),
        }
    })
}

fn refused(result: Result<i64, Error>) -> bool {
    matches!(result, Err(Error::ContextNotAuthorized { .. }))
}

#[tokio::test]
async fn a_bare_validated_context_is_refused_before_any_connection() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let (size, idle) = (pool.size(), pool.num_idle());
    let err = notes(&pool, &ctx("tenant-a")).await.unwrap_err();
    assert_eq!(err.code(), "CONTEXT_NOT_AUTHORIZED");
    assert!(err.to_string().contains("tenant-a"), "{err}");
    // Refused up front: no connection was opened or taken for it.
    assert_eq!((pool.size(), pool.num_idle()), (size, idle));
}

#[tokio::test]
async fn validate_with_and_authorize_open_transactions() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let v = seeded_tenants();
    let raw = Ctx::unvalidated().with_tenant("tenant-b");
    let by_validate_with: Ctx = as_caller("tenant-b", raw.validate_with(&*v)).await.unwrap();
    assert_eq!(by_validate_with.provenance(), Provenance::Authorized);
    assert_eq!(notes(&pool, &by_validate_with).await.unwrap(), 5);
    let by_authorize = as_caller("tenant-a", ctx("tenant-a").authorize(&*v))
        .await
        .unwrap();
    assert_eq!(notes(&pool, &by_authorize).await.unwrap(), 3);
    // The validator's refusal gives no context at all.
    let err = as_caller("tenant-c", ctx("tenant-c").authorize(&*v))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TENANT_UNKNOWN");
    // Nor does a caller authenticated for another tenant, whatever the
    // validator says, nor no caller at all.
    let err = as_caller("tenant-a", ctx("tenant-b").authorize(&*v))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("TENANT_MISMATCH", 403));
    let err = ctx("tenant-a").authorize(&*v).await.unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("PRINCIPAL_REQUIRED", 401));
}

#[tokio::test]
async fn the_default_pool_still_accepts_a_bare_context() {
    let fx = fixture().await;
    let pool = fx.pool(1).await;
    assert_eq!(notes(&pool, &ctx("tenant-a")).await.unwrap(), 3);
}

#[tokio::test]
async fn erase_require_and_clone_keep_the_mark_and_cannot_add_one() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let v = seeded_tenants();
    let raw = Ctx::unvalidated()
        .with_tenant("tenant-a")
        .with_agent("agent-1");
    let authorized: Ctx<Validated<WithAgent>> =
        as_caller("tenant-a", raw.validate_with(&*v)).await.unwrap();
    assert_eq!(notes(&pool, &authorized.erase()).await.unwrap(), 3);
    assert_eq!(notes(&pool, &authorized.clone()).await.unwrap(), 3);
    let narrowed: Ctx<Validated<WithAgent>> = authorized.erase().require().unwrap();
    assert_eq!(notes(&pool, &narrowed).await.unwrap(), 3);

    let bare: Ctx<Validated<WithAgent>> = raw.validate().unwrap();
    assert!(refused(notes(&pool, &bare.erase()).await));
    assert!(refused(notes(&pool, &bare.clone()).await));
    let required: Ctx<Validated<WithAgent>> = bare.erase().require().unwrap();
    assert!(refused(notes(&pool, &required).await));
    // An authorized context equals a bare one with the same values, but
    // equality hands over nothing.
    assert_eq!(bare, authorized);
    assert!(refused(notes(&pool, &bare).await));
}

#[tokio::test]
async fn raw_values_lose_the_mark() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let authorized = as_caller("tenant-a", ctx("tenant-a").authorize(&*seeded_tenants()))
        .await
        .unwrap();
    let again: Ctx = authorized.to_unvalidated().validate().unwrap();
    assert_eq!(again.provenance(), Provenance::Unchecked);
    assert!(refused(notes(&pool, &again).await));
    // Re-validated with the validator, it is authorized again.
    let again: Ctx = as_caller(
        "tenant-a",
        authorized
            .to_unvalidated()
            .validate_with(&*seeded_tenants()),
    )
    .await
    .unwrap();
    assert_eq!(notes(&pool, &again).await.unwrap(), 3);
}

/// Code that holds only a transaction (a helper, an outbox) reads its
/// context's values, never the authorized context itself: validated again,
/// they are `Unchecked`, and the strict pool refuses them, in or out of the
/// transaction's lifetime.
#[tokio::test]
async fn a_transaction_hands_out_values_not_its_authorized_context() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let authorized = as_caller("tenant-a", ctx("tenant-a").authorize(&*seeded_tenants()))
        .await
        .unwrap();
    let tx = pool.begin(&authorized).await.unwrap();
    let values = tx.to_unvalidated();
    assert_eq!(values.raw_tenant(), Some("tenant-a"));
    tx.commit().await.unwrap();
    drop(authorized);
    let taken: Ctx = values.validate().unwrap();
    assert_eq!(taken.provenance(), Provenance::Unchecked);
    assert!(refused(notes(&pool, &taken).await));
}

#[tokio::test]
async fn an_envelope_round_trip_needs_a_validator_or_trust() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let authorized = as_caller("tenant-b", ctx("tenant-b").authorize(&*seeded_tenants()))
        .await
        .unwrap();
    let wire = serde_json::to_string(&Envelope::new(&authorized, "job")).unwrap();

    let envelope: Envelope<String> = serde_json::from_str(&wire).unwrap();
    let (opened, _): (Ctx, String) = envelope.open().unwrap();
    assert!(refused(notes(&pool, &opened).await));

    // The validator alone vouches for no sender: outside a caller's scope
    // the opened context stays unchecked...
    let envelope: Envelope<String> = serde_json::from_str(&wire).unwrap();
    let (opened, _): (Ctx, String) = envelope.open_with(&*seeded_tenants()).await.unwrap();
    assert!(refused(notes(&pool, &opened).await));
    // ...inside the scope of the tenant's own caller it is authorized...
    let envelope: Envelope<String> = serde_json::from_str(&wire).unwrap();
    let (opened, _): (Ctx, String) = as_caller("tenant-b", envelope.open_with(&*seeded_tenants()))
        .await
        .unwrap();
    assert_eq!(notes(&pool, &opened).await.unwrap(), 5);
    // ...and inside another tenant's caller it is refused.
    let envelope: Envelope<String> = serde_json::from_str(&wire).unwrap();
    let err = as_caller(
        "tenant-a",
        envelope.open_with::<Validated>(&*seeded_tenants()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "TENANT_MISMATCH");

    let envelope: Envelope<String> = serde_json::from_str(&wire).unwrap();
    let (opened, _): (Ctx, String) = envelope.open().unwrap();
    let trusted = opened.trust("test worker: messages come from our own API");
    assert_eq!(notes(&pool, &trusted).await.unwrap(), 5);
}

#[tokio::test]
async fn scope_and_current_carry_the_mark_and_nothing_more() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let authorized = as_caller("tenant-a", ctx("tenant-a").authorize(&*seeded_tenants()))
        .await
        .unwrap();
    let seen = authorized
        .scope(async { notes(&pool, &current().unwrap()).await })
        .await;
    assert_eq!(seen.unwrap(), 3);
    let bare = ctx("tenant-a");
    let seen = bare
        .scope(async { notes(&pool, &current().unwrap()).await })
        .await;
    assert!(refused(seen));
}

#[tokio::test]
async fn a_context_a_validator_kept_is_not_authorized() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let kept: Arc<Mutex<Option<Ctx>>> = Arc::default();
    let keeper = {
        let kept = Arc::clone(&kept);
        move |ctx: Ctx| {
            *kept.lock().unwrap() = Some(ctx);
            async { Ok(()) }
        }
    };
    let authorized: Ctx = as_caller(
        "tenant-a",
        Ctx::unvalidated()
            .with_tenant("tenant-a")
            .validate_with(&keeper),
    )
    .await
    .unwrap();
    assert_eq!(notes(&pool, &authorized).await.unwrap(), 3);
    // What the validator was handed was checked, not yet accepted.
    let stolen = kept.lock().unwrap().take().unwrap();
    assert!(refused(notes(&pool, &stolen).await));
}

#[with_context(tenant)]
async fn handler(pool: &TenantPool, ctx: Ctx) -> Result<i64, AppError> {
    Ok(notes(pool, &ctx).await?)
}

#[with_context(tenant, agent = agent)]
async fn agent_handler(
    pool: &TenantPool,
    agent: &str,
    ctx: Ctx<Validated<WithAgent>>,
) -> Result<i64, AppError> {
    assert_eq!(ctx.agent_id().as_str(), agent);
    Ok(notes(pool, &ctx).await?)
}

/// What an authenticated request for `tenant` puts in scope: the caller
/// and the application's validator.
fn request_for(tenant: &str) -> Incoming {
    let caller = ctx(tenant).trust("test: the caller authenticated for this tenant");
    Incoming::on_behalf_of(&caller).with_validator(seeded_tenants())
}

#[tokio::test]
async fn the_macro_authorizes_only_the_callers_tenant_with_a_validator() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let n = request_for("tenant-b").scope(handler(&pool)).await.unwrap();
    assert_eq!(n, 5);
    // Raw values without an authenticated caller: the validator may accept
    // them, but that authorizes nothing.
    let raw = Ctx::unvalidated().with_tenant("tenant-b");
    let unauthenticated = Incoming::new(raw.clone()).with_validator(seeded_tenants());
    let err = unauthenticated.scope(handler(&pool)).await.unwrap_err();
    assert_eq!(err.code(), "CONTEXT_NOT_AUTHORIZED");
    let without = Incoming::new(raw.clone());
    let err = without.scope(handler(&pool)).await.unwrap_err();
    assert_eq!(err.code(), "CONTEXT_NOT_AUTHORIZED");
    // The validator's refusal reaches the caller as its own code.
    let err = request_for("tenant-c")
        .scope(handler(&pool))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TENANT_UNKNOWN");
    // A handler that binds a field validates with the same validator.
    let n = request_for("tenant-b")
        .scope(agent_handler(&pool, "agent-9"))
        .await
        .unwrap();
    assert_eq!(n, 5);
}

#[tokio::test]
async fn a_nested_handler_keeps_the_enclosing_mark_and_cannot_forge_one() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    // A worker's trusted context in scope: a nested handler that adds an
    // agent (no validator anywhere) keeps the trust, for the same tenant.
    let trusted = ctx("tenant-a").trust("test worker");
    let n = trusted
        .scope(agent_handler(&pool, "agent-1"))
        .await
        .unwrap();
    assert_eq!(n, 3);
    // A bare context in scope stays bare through the same path.
    let bare = ctx("tenant-a");
    let err = bare
        .scope(agent_handler(&pool, "agent-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CONTEXT_NOT_AUTHORIZED");
    // A trusted context in scope does not vouch for a tenant bound by a
    // handler's parameter: another tenant is refused outright.
    #[with_context(tenant = tenant)]
    async fn as_tenant(pool: &TenantPool, tenant: &str, ctx: Ctx) -> Result<i64, AppError> {
        let _ = tenant;
        Ok(notes(pool, &ctx).await?)
    }
    let err = trusted
        .scope(as_tenant(&pool, "tenant-b"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TENANT_MISMATCH");
    // A bare context in scope under an authenticated request with a
    // validator: the nested handler keeps it bare, the validator does not
    // upgrade it.
    let forged = ctx("tenant-b");
    let err = request_for("tenant-a")
        .scope(forged.scope(agent_handler(&pool, "agent-1")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CONTEXT_NOT_AUTHORIZED");
    let err = request_for("tenant-b")
        .scope(forged.scope(agent_handler(&pool, "agent-1")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CONTEXT_NOT_AUTHORIZED");
}

/// Records the `reason` of every event with target `tenant_core::trust`.
#[derive(Clone, Default)]
struct TrustLog(Arc<Mutex<Vec<(tracing::Level, String)>>>);

struct Reason(Option<String>);
impl Visit for Reason {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "reason" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "reason" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber> Layer<S> for TrustLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "tenant_core::trust" {
            let mut reason = Reason(None);
            event.record(&mut reason);
            self.0
                .lock()
                .unwrap()
                .push((*event.metadata().level(), reason.0.unwrap_or_default()));
        }
    }
}

#[tokio::test]
async fn trust_is_logged_at_info_with_its_reason() {
    let fx = fixture().await;
    let pool = strict_pool(&fx).await;
    let log = TrustLog::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(log.clone()));
    let trusted = ctx("tenant-b").trust("admin tool: re-index one tenant");
    assert_eq!(
        trusted.provenance(),
        Provenance::Trusted {
            reason: "admin tool: re-index one tenant"
        }
    );
    assert_eq!(notes(&pool, &trusted).await.unwrap(), 5);
    let seen = log.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            tracing::Level::INFO,
            "admin tool: re-index one tenant".to_owned()
        )]
    );
}
