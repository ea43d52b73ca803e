//! "The tenant is the caller's", attacked through the library's own
//! features on a real PostgreSQL: an axum router with bearer JWTs, a pool
//! that requires authorized contexts, and the tenant registry as the
//! application's validator. `tenant-a` and `tenant-b` are both registered
//! and active; every request carries `tenant-a`'s token unless it says
//! otherwise. Each attack asserts that nothing of `tenant-b` was read (its
//! 5 notes, its settings) and that the refusal has a stable code.

mod common;
mod jwt;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use common::{as_caller, ctx, fixture, notes, AppError, Fixture};
use http::{Request, StatusCode};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use sqlx::{Connection, PgConnection};
use tenant_core::edge::{HostSource, Resolver};
use tenant_core::envelope::Envelope;
use tenant_core::layer::ContextLayer;
use tenant_core::{
    current, resolve, resolve_unvalidated, with_context, Ctx, Field, Incoming, PrincipalSource,
    Provenance, Validated, Validator, WithAgent,
};
use tenant_sqlx::registry::{RegistrySchema, TenantRegistry, TenantSettings};
use tenant_sqlx::TenantPool;
use tenant_testing::APP_ROLE;
use tower::ServiceExt;

/// What a test router shares with its handlers.
#[derive(Clone)]
struct App {
    pool: TenantPool,
    registry: TenantRegistry,
    settings: TenantSettings<Limits>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Limits {
    plan: String,
}

/// The notes fixture plus a registry where both tenants are active, each
/// with its own plan in its settings.
async fn setup() -> (Fixture, App) {
    let mut fx = fixture().await;
    let mut owner = PgConnection::connect(fx.db.owner_url()).await.unwrap();
    let schema = RegistrySchema::new().grant_to(APP_ROLE).sql();
    sqlx::raw_sql(&schema).execute(&mut owner).await.unwrap();
    owner.close().await.unwrap();
    sqlx::raw_sql(
        r#"INSERT INTO tenants (tenant_id, status, settings) VALUES
             ('tenant-a', 'active', '{"plan": "a-small"}'),
             ('tenant-b', 'active', '{"plan": "b-secret"}')"#,
    )
    .execute(&mut fx.admin)
    .await
    .unwrap();
    let pool = TenantPool::builder()
        .max_connections(4)
        .require_authorized(true)
        .connect(fx.db.app_url())
        .await
        .expect("the fixture passes the audit");
    let registry = TenantRegistry::new(pool.clone());
    let settings = TenantSettings::new(pool.clone());
    (
        fx,
        App {
            pool,
            registry,
            settings,
        },
    )
}

// ---- handlers, written as an application developer would ----

#[with_context(tenant)]
async fn own_notes(State(app): State<App>, ctx: Ctx) -> Result<String, AppError> {
    Ok(notes(&app.pool, &ctx).await?.to_string())
}

/// `/t/{tenant}/notes`: the tenant from the path.
#[with_context(tenant = tenant)]
async fn notes_by_path(
    State(app): State<App>,
    Path(tenant): Path<String>,
    ctx: Ctx,
) -> Result<String, AppError> {
    let _ = tenant;
    Ok(notes(&app.pool, &ctx).await?.to_string())
}

/// `/agents/{agent}/notes`: the agent from the path.
#[with_context(tenant, agent = agent)]
async fn notes_by_agent(
    State(app): State<App>,
    Path(agent): Path<String>,
    ctx: Ctx<Validated<WithAgent>>,
) -> Result<String, AppError> {
    assert_eq!(ctx.agent_id().as_str(), agent);
    Ok(notes(&app.pool, &ctx).await?.to_string())
}

/// A helper that binds a field, called from other handlers.
#[with_context(tenant, agent = agent)]
async fn nested_helper(
    pool: &TenantPool,
    agent: &str,
    ctx: Ctx<Validated<WithAgent>>,
) -> Result<i64, AppError> {
    let _ = agent;
    Ok(notes(pool, &ctx).await?)
}

/// A helper that binds the tenant.
#[with_context(tenant = tenant)]
async fn nested_tenant(pool: &TenantPool, tenant: &str, ctx: Ctx) -> Result<i64, AppError> {
    let _ = tenant;
    Ok(notes(pool, &ctx).await?)
}

/// A public handler that validates a raw context by hand.
#[with_context(tenant = tenant, validate_tenant = false)]
async fn raw_by_path(
    State(app): State<App>,
    Path(tenant): Path<String>,
    ctx: Ctx<tenant_core::Unvalidated>,
) -> Result<String, AppError> {
    let _ = tenant;
    let ctx: Ctx = ctx.validate()?;
    Ok(notes(&app.pool, &ctx).await?.to_string())
}

/// Runs one named attack by hand, inside tenant-a's request, and answers
/// with what it read or the code it was refused with.
async fn attack(State(app): State<App>, Path(name): Path<String>) -> Result<String, AppError> {
    let pool = &app.pool;
    let forged = ctx("tenant-b");
    let n = match name.as_str() {
        // resolve() by hand, naming another tenant.
        "resolve_tenant" => {
            let ctx: Ctx = resolve(&[(Field::Tenant, "tenant-b")]).await?;
            notes(pool, &ctx).await?
        }
        // A forged bare context, scoped, then a nested helper that binds a
        // field (the validator in scope must not upgrade it).
        "nested_upgrade" => forged.scope(nested_helper(pool, "agent-1")).await?,
        // The same with no binding: the helper reuses the forged context.
        "nested_plain" => {
            #[with_context(tenant)]
            async fn plain(pool: &TenantPool, ctx: Ctx) -> Result<i64, AppError> {
                Ok(notes(pool, &ctx).await?)
            }
            forged.scope(plain(pool)).await?
        }
        // A nested helper that binds another tenant inside the request's
        // own authorized scope.
        "nested_tenant" => {
            let mine: Ctx = resolve(&[]).await?;
            mine.scope(nested_tenant(pool, "tenant-b")).await?
        }
        // The application's own registry, used by hand to authorize
        // another tenant.
        "registry_by_hand" => {
            let ctx: Ctx = Ctx::unvalidated()
                .with_tenant("tenant-b")
                .validate_with(&app.registry)
                .await?;
            notes(pool, &ctx).await?
        }
        "authorize_forged" => notes(pool, &forged.authorize(&app.registry).await?).await?,
        // A validator that accepts everything, supplied by the handler.
        "own_validator" => {
            let anything = |_: Ctx| async { Ok(()) };
            notes(pool, &forged.authorize(&anything).await?).await?
        }
        // A new incoming scope with raw values of the other tenant and the
        // registry as its validator.
        "incoming_new" => {
            let incoming = Incoming::new(Ctx::unvalidated().with_tenant("tenant-b"))
                .with_validator(Arc::new(app.registry.clone()));
            incoming.scope(nested_helper(pool, "agent-1")).await?
        }
        // The request's own incoming scope, with a validator that accepts
        // everything, around a resolve that binds another tenant.
        "incoming_current_rebound" => {
            let anything: Arc<dyn Validator> = Arc::new(|_: Ctx| async { Ok(()) });
            let mine = Incoming::current().expect("in a request");
            let ctx: Ctx = mine
                .with_validator(anything)
                .scope(resolve(&[(Field::Tenant, "tenant-b")]))
                .await?;
            notes(pool, &ctx).await?
        }
        // Work "on behalf of" a context the handler made itself.
        "on_behalf_of_forged" => {
            let incoming =
                Incoming::on_behalf_of(&forged).with_validator(Arc::new(app.registry.clone()));
            incoming.scope(nested_helper(pool, "agent-1")).await?
        }
        // The raw context of a public handler, bound and validated by hand.
        "resolve_unvalidated" => {
            let raw = resolve_unvalidated(&[(Field::Tenant, "tenant-b")]);
            notes(pool, &raw.validate::<Validated>()?).await?
        }
        // An envelope naming the other tenant, opened with the registry.
        "envelope" => {
            let wire = serde_json::to_string(&Envelope::new(&forged, 1u8)).unwrap();
            let envelope: Envelope<u8> = serde_json::from_str(&wire).unwrap();
            let (ctx, _): (Ctx, u8) = envelope.open_with(&app.registry).await?;
            notes(pool, &ctx).await?
        }
        // A spawned task carrying a forged context.
        "spawn" => forged
            .spawn({
                let pool = pool.clone();
                async move { notes(&pool, &current().unwrap()).await }
            })
            .await
            .unwrap()?,
        // The settings cache, warmed by tenant-b's own request, asked with
        // a forged context.
        "settings_forged" => {
            let limits = app.settings.get(&forged).await?;
            return Ok(limits.plan.clone());
        }
        // The request's own authorized context inside a forged scope of
        // the other tenant: neither the cache nor a transaction serves it.
        "settings_in_foreign_scope" => {
            let mine: Ctx = resolve(&[]).await?;
            let limits = forged.scope(app.settings.get(&mine)).await?;
            return Ok(limits.plan.clone());
        }
        "tx_in_foreign_scope" => {
            let mine: Ctx = resolve(&[]).await?;
            forged.scope(notes(pool, &mine)).await?
        }
        // The registry's cache, asked about the other tenant from inside a
        // forged scope of that tenant's neighbour.
        "registry_status_foreign_scope" => {
            let mine: Ctx = resolve(&[]).await?;
            let status = mine.scope(app.registry.status(forged.tenant_id())).await?;
            return Ok(format!("{status:?}"));
        }
        // An envelope for the other tenant, run as a new incoming message
        // from inside this request.
        "envelope_into_incoming" => {
            let wire = serde_json::to_string(&Envelope::new(&forged, 1u8)).unwrap();
            let envelope: Envelope<u8> = serde_json::from_str(&wire).unwrap();
            let (incoming, _) = envelope.into_incoming();
            incoming
                .with_validator(Arc::new(app.registry.clone()))
                .scope(nested_helper(pool, "agent-1"))
                .await?
        }
        // The other tenant's settings through an explicitly trusted
        // context, inside this request's own scope.
        "settings_trusted_in_my_scope" => {
            let mine: Ctx = resolve(&[]).await?;
            let trusted_b = forged.trust("test: a hostile handler's trust");
            let limits = mine.scope(app.settings.get(&trusted_b)).await?;
            return Ok(limits.plan.clone());
        }
        // The request's incoming context, validated by hand: only its own
        // tenant comes out, whatever the handler wanted.
        "incoming_validate" => {
            let ctx: Ctx = Incoming::current()
                .expect("in a request")
                .validate()
                .await?;
            assert_eq!(ctx.tenant_id().as_str(), "tenant-a");
            notes(pool, &ctx).await?
        }
        // resolve() by hand, naming another agent than the token's.
        "resolve_agent" => {
            let ctx: Ctx<Validated<WithAgent>> = resolve(&[(Field::Agent, "agent-7")]).await?;
            notes(pool, &ctx).await?
        }
        other => panic!("unknown attack {other}"),
    };
    Ok(n.to_string())
}

fn router(app: App, resolver: Resolver) -> Router {
    Router::new()
        .route("/notes", get(own_notes))
        .route("/t/{tenant}/notes", get(notes_by_path))
        .route("/t/{tenant}/raw", get(raw_by_path))
        .route("/agents/{agent}/notes", get(notes_by_agent))
        .route("/attack/{name}", get(attack))
        .with_state(app.clone())
        .layer(
            ContextLayer::new()
                .resolver(resolver)
                .with_validator(app.registry.clone()),
        )
}

fn bearer_router(app: &App) -> Router {
    router(app.clone(), Resolver::new().bearer(jwt::bearer()))
}

fn token_with_agent(tenant: &str, agent: &str) -> String {
    let mut claims = jwt::claims(tenant);
    claims["agent"] = agent.into();
    jwt::sign(Algorithm::HS256, &claims)
}

/// Sends `GET uri` with `headers`; answers (status, body).
async fn get_with(app: Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = Request::builder().uri(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// `GET uri` with tenant-a's bearer token.
async fn as_a(app: &App, uri: &str) -> (StatusCode, String) {
    let auth = format!("Bearer {}", jwt::token("tenant-a"));
    get_with(bearer_router(app), uri, &[("authorization", &auth)]).await
}

/// Asserts a refusal with `status` and `code`, and that nothing of
/// tenant-b (5 notes, its plan) is in the answer.
#[track_caller]
fn refused(answer: (StatusCode, String), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(got.as_u16(), status, "{body}");
    assert!(body.contains(code), "expected {code}: {body}");
    assert!(!body.contains("b-secret"), "{body}");
}

// ---- attacks through the edge, the scopes and the caches ----

#[tokio::test]
async fn a_tenant_in_the_path_cannot_replace_the_tokens() {
    let (_fx, app) = setup().await;
    assert_eq!(
        as_a(&app, "/t/tenant-a/notes").await,
        (StatusCode::OK, "3".into())
    );
    refused(
        as_a(&app, "/t/tenant-b/notes").await,
        403,
        "TENANT_MISMATCH",
    );
    // The same through a public handler that validates by hand: the
    // context is only checked against the identifier rules, and the strict
    // pool refuses it.
    refused(
        as_a(&app, "/t/tenant-b/raw").await,
        500,
        "CONTEXT_NOT_AUTHORIZED",
    );
}

#[tokio::test]
async fn resolve_by_hand_cannot_name_another_tenant() {
    let (_fx, app) = setup().await;
    refused(
        as_a(&app, "/attack/resolve_tenant").await,
        403,
        "TENANT_MISMATCH",
    );
}

#[tokio::test]
async fn a_nested_handler_does_not_upgrade_a_forged_context() {
    let (_fx, app) = setup().await;
    for attack in ["nested_upgrade", "nested_plain"] {
        refused(
            as_a(&app, &format!("/attack/{attack}")).await,
            500,
            "CONTEXT_NOT_AUTHORIZED",
        );
    }
    refused(
        as_a(&app, "/attack/nested_tenant").await,
        403,
        "TENANT_MISMATCH",
    );
}

#[tokio::test]
async fn the_settings_cache_checks_before_it_answers() {
    let (_fx, app) = setup().await;
    // tenant-b's own request warms the cache.
    let b: Ctx = as_caller("tenant-b", ctx("tenant-b").authorize(&app.registry))
        .await
        .unwrap();
    assert_eq!(app.settings.get(&b).await.unwrap().plan, "b-secret");
    let lookups = app.settings.lookups();
    refused(
        as_a(&app, "/attack/settings_forged").await,
        500,
        "CONTEXT_NOT_AUTHORIZED",
    );
    // A's own settings, asked from inside a forged scope of B, are refused
    // as a transaction would be.
    as_caller("tenant-a", async {
        let a: Ctx = Ctx::unvalidated()
            .with_tenant("tenant-a")
            .validate_with(&app.registry)
            .await
            .unwrap();
        assert_eq!(app.settings.get(&a).await.unwrap().plan, "a-small");
    })
    .await;
    refused(
        as_a(&app, "/attack/settings_in_foreign_scope").await,
        500,
        "TENANT_SCOPE_MISMATCH",
    );
    refused(
        as_a(&app, "/attack/tx_in_foreign_scope").await,
        500,
        "TENANT_SCOPE_MISMATCH",
    );
    // The refusals were answered before the cache: one more lookup only
    // (tenant-a's own first read).
    assert_eq!(app.settings.lookups(), lookups + 1);
}

#[tokio::test]
async fn the_application_validator_cannot_be_borrowed() {
    let (_fx, app) = setup().await;
    for attack in [
        "registry_by_hand",
        "authorize_forged",
        "own_validator",
        "envelope",
        "incoming_current_rebound",
    ] {
        refused(
            as_a(&app, &format!("/attack/{attack}")).await,
            403,
            "TENANT_MISMATCH",
        );
    }
    for attack in [
        "incoming_new",
        "on_behalf_of_forged",
        "resolve_unvalidated",
        "spawn",
    ] {
        refused(
            as_a(&app, &format!("/attack/{attack}")).await,
            500,
            "CONTEXT_NOT_AUTHORIZED",
        );
    }
    refused(
        as_a(&app, "/attack/registry_status_foreign_scope").await,
        500,
        "TENANT_SCOPE_MISMATCH",
    );
}

#[tokio::test]
async fn the_tokens_agent_claim_is_not_overridden() {
    let (_fx, app) = setup().await;
    let auth = format!("Bearer {}", token_with_agent("tenant-a", "agent-1"));
    let headers = [("authorization", auth.as_str())];
    assert_eq!(
        get_with(bearer_router(&app), "/agents/agent-1/notes", &headers).await,
        (StatusCode::OK, "3".into())
    );
    refused(
        get_with(bearer_router(&app), "/agents/agent-7/notes", &headers).await,
        403,
        "AGENT_MISMATCH",
    );
    // A token without an agent claim leaves the agent to the path.
    assert_eq!(
        as_a(&app, "/agents/agent-7/notes").await,
        (StatusCode::OK, "3".into())
    );
    // A nested helper binding another agent than the claim is refused too.
    let caller: Ctx<Validated<WithAgent>> = Ctx::unvalidated()
        .with_tenant("tenant-a")
        .with_agent("agent-1")
        .validate()
        .unwrap();
    let caller = caller.trust("test: a token for tenant-a, agent-1");
    let err = Incoming::on_behalf_of(&caller)
        .with_validator(Arc::new(app.registry.clone()))
        .scope(nested_helper(&app.pool, "agent-7"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AGENT_MISMATCH");
}

// ---- more attempts of our own ----

#[tokio::test]
async fn more_doors_around_the_principal() {
    let (_fx, app) = setup().await;
    refused(
        as_a(&app, "/attack/envelope_into_incoming").await,
        500,
        "CONTEXT_NOT_AUTHORIZED",
    );
    refused(
        as_a(&app, "/attack/settings_trusted_in_my_scope").await,
        500,
        "TENANT_SCOPE_MISMATCH",
    );
    // The request's own incoming context gives its own tenant, authorized.
    assert_eq!(
        as_a(&app, "/attack/incoming_validate").await,
        (StatusCode::OK, "3".into())
    );
    // An agent claim holds against `resolve` by hand, and against an
    // `X-Agent-ID` header.
    let auth = format!("Bearer {}", token_with_agent("tenant-a", "agent-1"));
    refused(
        get_with(
            bearer_router(&app),
            "/attack/resolve_agent",
            &[("authorization", &auth)],
        )
        .await,
        403,
        "AGENT_MISMATCH",
    );
    refused(
        get_with(
            bearer_router(&app),
            "/notes",
            &[("authorization", &auth), ("x-agent-id", "agent-7")],
        )
        .await,
        403,
        "AGENT_MISMATCH",
    );
    // A gateway trusted for the headers fixes the agent it sends.
    let gateway = router(app.clone(), Resolver::new().trusted_header());
    refused(
        get_with(
            gateway,
            "/agents/agent-7/notes",
            &[("x-tenant-id", "tenant-a"), ("x-agent-id", "agent-1")],
        )
        .await,
        403,
        "AGENT_MISMATCH",
    );
}

#[tokio::test]
async fn an_untrusted_header_or_host_cannot_name_another_tenant() {
    let (_fx, app) = setup().await;
    let auth = format!("Bearer {}", jwt::token("tenant-a"));
    refused(
        get_with(
            bearer_router(&app),
            "/notes",
            &[("authorization", &auth), ("x-tenant-id", "tenant-b")],
        )
        .await,
        403,
        "TENANT_MISMATCH",
    );
    // Behind a host source, the path cannot name another tenant either.
    let by_host = || {
        router(
            app.clone(),
            Resolver::new().host(HostSource::new("example.com")),
        )
    };
    assert_eq!(
        get_with(by_host(), "/notes", &[("host", "tenant-a.example.com")]).await,
        (StatusCode::OK, "3".into())
    );
    refused(
        get_with(
            by_host(),
            "/t/tenant-b/notes",
            &[("host", "tenant-a.example.com")],
        )
        .await,
        403,
        "TENANT_MISMATCH",
    );
    // Nor behind a trusted gateway header.
    let gateway = router(app.clone(), Resolver::new().trusted_header());
    refused(
        get_with(gateway, "/t/tenant-b/notes", &[("x-tenant-id", "tenant-a")]).await,
        403,
        "TENANT_MISMATCH",
    );
}

#[tokio::test]
async fn without_an_authenticated_source_nothing_is_authorized() {
    let (_fx, app) = setup().await;
    // A layer with no resolver reads `X-Tenant-ID` as sent: it
    // authenticates nobody, so the registry cannot authorize the context.
    let header_mode = Router::new()
        .route("/notes", get(own_notes))
        .route("/t/{tenant}/notes", get(notes_by_path))
        .with_state(app.clone())
        .layer(ContextLayer::new().with_validator(app.registry.clone()));
    let (status, body) = get_with(
        header_mode.clone(),
        "/notes",
        &[("x-tenant-id", "tenant-b")],
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("CONTEXT_NOT_AUTHORIZED"), "{body}");
    // The header's tenant still decides: a path naming another is refused,
    // and the message says nothing authenticated the header.
    refused(
        get_with(
            header_mode,
            "/t/tenant-b/notes",
            &[("x-tenant-id", "tenant-a")],
        )
        .await,
        403,
        "TENANT_MISMATCH",
    );
    let err = Incoming::new(Ctx::unvalidated().with_tenant("tenant-a"))
        .scope(resolve::<Validated>(&[(Field::Tenant, "tenant-b")]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no authenticated source is configured"),
        "{err}"
    );
    // A token for an unregistered tenant is authenticated but refused by
    // the registry.
    let auth = format!("Bearer {}", jwt::token("tenant-c"));
    refused(
        get_with(bearer_router(&app), "/notes", &[("authorization", &auth)]).await,
        403,
        "TENANT_UNKNOWN",
    );
}

#[tokio::test]
async fn explicit_calls_need_a_caller_and_only_authorize_its_tenant() {
    let (_fx, app) = setup().await;
    // No caller in scope: nothing to authorize for.
    let err = Ctx::unvalidated()
        .with_tenant("tenant-a")
        .validate_with::<Validated>(&app.registry)
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("PRINCIPAL_REQUIRED", 401));
    let err = ctx("tenant-a").authorize(&app.registry).await.unwrap_err();
    assert_eq!(err.code(), "PRINCIPAL_REQUIRED");
    // A caller for tenant-a: tenant-a yes, tenant-b no.
    let (a, b) = as_caller("tenant-a", async {
        (
            ctx("tenant-a").authorize(&app.registry).await,
            ctx("tenant-b").authorize(&app.registry).await,
        )
    })
    .await;
    assert_eq!(notes(&app.pool, &a.unwrap()).await.unwrap(), 3);
    assert_eq!(b.unwrap_err().code(), "TENANT_MISMATCH");
    // A bare context is no caller.
    let err = Incoming::on_behalf_of(&ctx("tenant-b"))
        .scope(ctx("tenant-b").authorize(&app.registry))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PRINCIPAL_REQUIRED");
}

#[tokio::test]
async fn a_principal_comes_from_an_authenticated_source_only() {
    let (_fx, app) = setup().await;
    let caller = ctx("tenant-a").trust("test: a job for tenant-a");
    let incoming = Incoming::on_behalf_of(&caller);
    let principal = incoming
        .principal()
        .expect("a trusted context is a principal");
    assert_eq!(principal.tenant(), "tenant-a");
    assert_eq!(principal.source(), PrincipalSource::Context);
    assert!(Incoming::on_behalf_of(&ctx("tenant-a"))
        .principal()
        .is_none());
    assert!(Incoming::new(ctx("tenant-a").to_unvalidated())
        .principal()
        .is_none());
    // The resolver's principal is the token's tenant, whatever the other
    // headers say.
    let req = Request::builder()
        .header(
            "authorization",
            format!("Bearer {}", jwt::token("tenant-a")),
        )
        .header("x-agent-id", "agent-9")
        .body(())
        .unwrap();
    let resolved = Resolver::new().bearer(jwt::bearer()).resolve(&req).unwrap();
    let p = resolved.principal().unwrap();
    assert_eq!(
        (p.tenant(), p.agent(), p.source()),
        ("tenant-a", None, PrincipalSource::BearerToken)
    );
    // An authorized context is a principal for its own tenant only; a
    // nested call for it keeps its mark.
    let a: Ctx = as_caller("tenant-a", ctx("tenant-a").authorize(&app.registry))
        .await
        .unwrap();
    assert_eq!(a.provenance(), Provenance::Authorized);
    let n = Incoming::on_behalf_of(&a)
        .with_validator(Arc::new(app.registry.clone()))
        .scope(nested_helper(&app.pool, "agent-2"))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let err = Incoming::on_behalf_of(&a)
        .scope(nested_tenant(&app.pool, "tenant-b"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TENANT_MISMATCH");
}

#[tokio::test]
async fn a_validators_refusal_still_refuses_inside_a_scope() {
    let (mut fx, app) = setup().await;
    // tenant-a's request is authorized, then tenant-a is suspended: a
    // nested helper that adds a field runs the validator again, which now
    // refuses (after the cache is told).
    sqlx::query("UPDATE tenants SET status = 'suspended' WHERE tenant_id = 'tenant-a'")
        .execute(&mut fx.admin)
        .await
        .unwrap();
    app.registry.invalidate(ctx("tenant-a").tenant_id()).await;
    let caller = ctx("tenant-a").trust("test: tenant-a's request");
    let err = Incoming::on_behalf_of(&caller)
        .with_validator(Arc::new(app.registry.clone()))
        .scope(caller.scope(nested_helper(&app.pool, "agent-1")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "TENANT_SUSPENDED");
    // Without the added field the enclosing context is reused as it is.
    #[with_context(tenant)]
    async fn plain(pool: &TenantPool, ctx: Ctx) -> Result<i64, AppError> {
        Ok(notes(pool, &ctx).await?)
    }
    let n = Incoming::on_behalf_of(&caller)
        .with_validator(Arc::new(app.registry.clone()))
        .scope(caller.scope(plain(&app.pool)))
        .await
        .unwrap();
    assert_eq!(n, 3);
}
