//! The tenant registry on the real PostgreSQL: its table passes the audit
//! and shows a tenant its own row only, its validator refuses unknown and
//! suspended tenants (also through an axum router on a pool that requires
//! authorized contexts), its cache answers without the database, and typed
//! settings are read under Row-Level Security.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use common::{as_caller, ctx, fixture_with, AppError, Fixture};
use http::{Request, StatusCode};
use serde::Deserialize;
use sqlx::{Connection, PgConnection};
use tenant_core::edge::Resolver;
use tenant_core::layer::ContextLayer;
use tenant_core::{with_context, ContextError, Ctx, Provenance, Validator};
use tenant_sqlx::guard::GuardSecret;
use tenant_sqlx::registry::{CacheOptions, RegistrySchema, TenantRegistry, TenantSettings};
use tenant_sqlx::{Error, TenantPool};
use tenant_testing::APP_ROLE;
use tower::ServiceExt;

const SECRET: &[u8] = b"registry-test-guard-secret-0123456789abcdef";

/// The notes fixture plus the registry: `tenant-a` active with settings,
/// `tenant-b` suspended, `tenant-c` not registered.
async fn registry_fixture(hardened: bool) -> Fixture {
    let mut fx = fixture_with(hardened.then_some(SECRET), hardened).await;
    let mut owner = PgConnection::connect(fx.db.owner_url()).await.unwrap();
    let schema = RegistrySchema::new()
        .hardened(hardened)
        .grant_to(APP_ROLE)
        .sql();
    sqlx::raw_sql(&schema).execute(&mut owner).await.unwrap();
    owner.close().await.unwrap();
    sqlx::raw_sql(
        r#"INSERT INTO tenants (tenant_id, status, settings) VALUES
             ('tenant-a', 'active', '{"max_agents": 3, "model": "small"}'),
             ('tenant-b', 'suspended', '{"max_agents": 1, "model": "large"}')"#,
    )
    .execute(&mut fx.admin)
    .await
    .unwrap();
    fx
}

async fn strict_pool(fx: &Fixture) -> TenantPool {
    TenantPool::builder()
        .max_connections(2)
        .require_authorized(true)
        .connect(fx.db.app_url())
        .await
        .expect("the registry table passes the audit")
}

async fn set_status(fx: &mut Fixture, tenant: &str, status: &str) {
    sqlx::query("UPDATE tenants SET status = $2 WHERE tenant_id = $1")
        .bind(tenant)
        .bind(status)
        .execute(&mut fx.admin)
        .await
        .unwrap();
}

/// The registry's verdict on `tenant`, asked where a caller authenticated
/// for that tenant is in scope (as inside its own request).
async fn check(registry: &TenantRegistry, tenant: &str) -> Result<Ctx, ContextError> {
    let raw = Ctx::unvalidated().with_tenant(tenant);
    as_caller(tenant, raw.validate_with(registry)).await
}

fn code(r: Result<Ctx, ContextError>) -> &'static str {
    match r {
        Ok(_) => "OK",
        Err(e) => e.code(),
    }
}

#[tokio::test]
async fn the_validator_refuses_unknown_and_suspended_tenants() {
    let fx = registry_fixture(false).await;
    let pool = strict_pool(&fx).await;
    let registry = TenantRegistry::new(pool.clone());
    let a = check(&registry, "tenant-a").await.unwrap();
    assert_eq!(a.provenance(), Provenance::Authorized);
    let err = check(&registry, "tenant-b").await.unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("TENANT_SUSPENDED", 403));
    let err = check(&registry, "tenant-c").await.unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("TENANT_UNKNOWN", 403));
    // What it accepted opens a transaction on the strict pool.
    let mut tx = pool.begin(&a).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .unwrap();
    assert_eq!(n, 3);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_tenant_reads_its_own_registry_row_and_writes_none() {
    let fx = registry_fixture(false).await;
    let pool = fx.pool(1).await;
    for tenant in ["tenant-a", "tenant-b", "tenant-c"] {
        let c = ctx(tenant);
        let mut tx = pool.begin(&c).await.unwrap();
        let seen: Vec<String> = sqlx::query_scalar("SELECT tenant_id FROM tenants")
            .fetch_all(&mut tx)
            .await
            .unwrap();
        let expected: Vec<String> = if tenant == "tenant-c" {
            vec![]
        } else {
            vec![tenant.to_owned()]
        };
        assert_eq!(seen, expected);
        tx.rollback().await.unwrap();
    }
    // The application role cannot reactivate itself, register itself, or
    // rewrite its own settings.
    let b = ctx("tenant-b");
    for sql in [
        "UPDATE tenants SET status = 'active'",
        "INSERT INTO tenants (tenant_id) VALUES ('tenant-b')",
        "DELETE FROM tenants",
        "UPDATE tenants SET settings = '{}'",
    ] {
        let mut tx = pool.begin(&b).await.unwrap();
        let err = sqlx::query(sql).execute(&mut tx).await.unwrap_err();
        let state = err.as_database_error().and_then(|d| d.code());
        assert_eq!(state.as_deref(), Some("42501"), "{sql}: {err}");
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn a_cache_hit_costs_no_database_round_trip() {
    let fx = registry_fixture(false).await;
    let pool = strict_pool(&fx).await;
    let registry = TenantRegistry::new(pool.clone());
    assert_eq!(code(check(&registry, "tenant-a").await), "OK");
    assert_eq!(code(check(&registry, "tenant-b").await), "TENANT_SUSPENDED");
    assert_eq!(code(check(&registry, "tenant-c").await), "TENANT_UNKNOWN");
    assert_eq!(registry.lookups(), 3);
    // No database at all from here on.
    pool.close().await;
    for _ in 0..100 {
        assert_eq!(code(check(&registry, "tenant-a").await), "OK");
        assert_eq!(code(check(&registry, "tenant-b").await), "TENANT_SUSPENDED");
        assert_eq!(code(check(&registry, "tenant-c").await), "TENANT_UNKNOWN");
    }
    assert_eq!(registry.lookups(), 3);
    // A tenant not cached needs the database, which is gone: refused, and
    // never let in.
    let err = check(&registry, "tenant-d").await.unwrap_err();
    assert_eq!(err.code(), "TENANT_FORBIDDEN");
    assert_eq!(registry.lookups(), 3);
}

#[tokio::test]
async fn invalidation_and_ttl_see_a_suspension() {
    let mut fx = registry_fixture(false).await;
    let pool = strict_pool(&fx).await;
    let registry = TenantRegistry::new(pool.clone());
    let short = TenantRegistry::with_options(
        pool.clone(),
        CacheOptions::new().time_to_live(Duration::from_millis(300)),
    );
    let a = tenant_core::TenantId::parse("tenant-a").unwrap();
    assert_eq!(code(check(&registry, "tenant-a").await), "OK");
    assert_eq!(code(check(&short, "tenant-a").await), "OK");
    set_status(&mut fx, "tenant-a", "suspended").await;
    // Cached: still active until invalidated or expired.
    assert_eq!(code(check(&registry, "tenant-a").await), "OK");
    registry.invalidate(&a).await;
    assert_eq!(code(check(&registry, "tenant-a").await), "TENANT_SUSPENDED");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(code(check(&short, "tenant-a").await), "TENANT_SUSPENDED");
    // Unknown is cached too; registering the tenant and invalidating lets
    // it in.
    assert_eq!(code(check(&registry, "tenant-c").await), "TENANT_UNKNOWN");
    sqlx::query("INSERT INTO tenants (tenant_id) VALUES ('tenant-c')")
        .execute(&mut fx.admin)
        .await
        .unwrap();
    assert_eq!(code(check(&registry, "tenant-c").await), "TENANT_UNKNOWN");
    registry.invalidate_all();
    assert_eq!(code(check(&registry, "tenant-c").await), "OK");
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let fx = registry_fixture(false).await;
    let pool = strict_pool(&fx).await;
    let registry = TenantRegistry::with_options(pool.clone(), CacheOptions::new().capacity(8));
    for i in 0..64 {
        assert_eq!(
            code(check(&registry, &format!("flood-{i}")).await),
            "TENANT_UNKNOWN"
        );
    }
    assert!(registry.cached_entries().await <= 8);
}

#[tokio::test]
async fn the_registry_works_in_hardened_mode() {
    let fx = registry_fixture(true).await;
    let pool = TenantPool::builder()
        .max_connections(1)
        .require_authorized(true)
        .hardened(GuardSecret::new(SECRET).unwrap())
        .connect(fx.db.app_url())
        .await
        .expect("a hardened registry passes the hardened audit");
    let registry = TenantRegistry::new(pool.clone());
    assert_eq!(code(check(&registry, "tenant-a").await), "OK");
    assert_eq!(code(check(&registry, "tenant-b").await), "TENANT_SUSPENDED");
    assert_eq!(code(check(&registry, "tenant-c").await), "TENANT_UNKNOWN");
}

#[derive(Debug, Deserialize, PartialEq)]
struct Limits {
    max_agents: u32,
    model: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Wrong {
    max_agents: String,
}

#[tokio::test]
async fn typed_settings_are_read_under_rls_and_cached() {
    let mut fx = registry_fixture(false).await;
    let pool = strict_pool(&fx).await;
    let registry = TenantRegistry::new(pool.clone());
    let limits: TenantSettings<Limits> = TenantSettings::new(pool.clone());
    let a = check(&registry, "tenant-a").await.unwrap();
    let got = limits.get(&a).await.unwrap();
    assert_eq!(
        *got,
        Limits {
            max_agents: 3,
            model: "small".into()
        }
    );
    // A bare context cannot read them on a strict pool.
    let err = limits.get(&ctx("tenant-b")).await.unwrap_err();
    assert_eq!(err.code(), "CONTEXT_NOT_AUTHORIZED");
    // A trusted context of an unregistered tenant: no row under RLS.
    let c = ctx("tenant-c").trust("test: settings of an unregistered tenant");
    let err = limits.get(&c).await.unwrap_err();
    assert!(matches!(err, Error::TenantUnknown { .. }), "{err}");
    // The wrong type is a clear error, not a panic.
    let wrong: TenantSettings<Wrong> = TenantSettings::new(pool.clone());
    let err = wrong.get(&a).await.unwrap_err();
    assert_eq!(err.code(), "TENANT_SETTINGS_INVALID");
    // Cached: a change is seen after invalidation only; no database needed
    // for a hit.
    sqlx::query(
        r#"UPDATE tenants SET settings = '{"max_agents": 9, "model": "x"}' WHERE tenant_id = 'tenant-a'"#,
    )
    .execute(&mut fx.admin)
    .await
    .unwrap();
    assert_eq!(limits.get(&a).await.unwrap().max_agents, 3);
    limits.invalidate(a.tenant_id()).await;
    assert_eq!(limits.get(&a).await.unwrap().max_agents, 9);
    assert_eq!(limits.lookups(), 3);
    pool.close().await;
    assert_eq!(limits.get(&a).await.unwrap().max_agents, 9);
    assert_eq!(limits.lookups(), 3);
}

#[with_context(tenant)]
async fn count_notes(State(pool): State<TenantPool>, ctx: Ctx) -> Result<String, AppError> {
    let mut tx = pool.begin(&ctx).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut tx)
        .await
        .map_err(Error::from)?;
    tx.commit().await?;
    Ok(n.to_string())
}

async fn call(app: Router, tenant: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .uri("/notes")
        .header("X-Tenant-ID", tenant)
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn through_an_axum_router_on_a_strict_pool() {
    let fx = registry_fixture(false).await;
    let pool = strict_pool(&fx).await;
    let registry: Arc<dyn Validator> = Arc::new(TenantRegistry::new(pool.clone()));
    let app = |layer: ContextLayer| {
        Router::new()
            .route("/notes", get(count_notes))
            .with_state(pool.clone())
            .layer(layer)
    };
    let with_registry = || {
        app(ContextLayer::new()
            .resolver(Resolver::new().trusted_header())
            .with_validator_arc(Arc::clone(&registry)))
    };
    assert_eq!(
        call(with_registry(), "tenant-a").await,
        (StatusCode::OK, "3".to_owned())
    );
    for (tenant, code) in [
        ("tenant-b", "TENANT_SUSPENDED"),
        ("tenant-c", "TENANT_UNKNOWN"),
    ] {
        let (status, body) = call(with_registry(), tenant).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains(code), "{body}");
    }
    // The same router without the registry: the header alone does not open
    // a transaction on this pool.
    let (status, body) = call(app(ContextLayer::new()), "tenant-a").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("CONTEXT_NOT_AUTHORIZED"), "{body}");
    // Nor does the registry behind a layer that authenticates nobody (no
    // resolver): it says a tenant exists, not who the caller is.
    let header_mode = app(ContextLayer::new().with_validator_arc(Arc::clone(&registry)));
    let (status, body) = call(header_mode, "tenant-a").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("CONTEXT_NOT_AUTHORIZED"), "{body}");
}
