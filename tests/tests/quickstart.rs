//! The README's quick start, followed on an empty PostgreSQL.
//!
//! The roles and the database (its SQL block) and the migration (the table
//! in its Rust block, and `RlsPolicy`) are read from `README.md` and run as
//! written, statement by statement, as a superuser would with `psql`. The
//! handler and the error type are the README's own text: the files in
//! `quickstart/` are included here, and the test checks that the README's
//! block contains them verbatim. They are served behind the README's
//! `ContextLayer` and bearer tokens, on a `TenantPool::connect` that must
//! pass the audit, and the answers are the ones the README prints.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use sqlx::{Connection, PgConnection};
use tenant_core::edge::{BearerAuth, JwtKey, Resolver};
use tenant_core::layer::ContextLayer;
use tenant_core::{with_context, ContextError, Ctx};
use tenant_sqlx::rls::RlsPolicy;
use tenant_sqlx::TenantPool;
use tenant_testing::TestCluster;
use tower::ServiceExt;

include!("quickstart/handler.rs");
include!("quickstart/api_error.rs");

const README: &str = include_str!("../../README.md");
const HANDLER: &str = include_str!("quickstart/handler.rs");
const API_ERROR: &str = include_str!("quickstart/api_error.rs");
const ISSUER: &str = "https://auth.example.com";
/// As `openssl rand -hex 32` prints one: 64 bytes of hex.
const SECRET: &[u8] = b"5f0c3a9e1b7d4f2a8c6e0b9d3f1a7c5e2b8d4f6a0c9e3b1d7f5a2c8e6b0d4f9a";
const AUDIENCE: &str = "notes";

/// The README's code blocks of one language, in order, without rustdoc's
/// hidden (`# `) lines.
fn blocks(lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match &mut current {
            None if line.starts_with("```") => {
                let info = line.trim_start_matches('`');
                if info.split(',').next() == Some(lang) {
                    current = Some(String::new());
                }
            }
            None => {}
            Some(_) if line.starts_with("```") => out.push(current.take().unwrap()),
            Some(block) => {
                if lang == "rust" && (line == "#" || line.starts_with("# ")) {
                    continue;
                }
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    out
}

/// The README's block of `lang` that contains `marker`.
fn block_with(lang: &str, marker: &str) -> String {
    let found: Vec<String> = blocks(lang)
        .into_iter()
        .filter(|b| b.contains(marker))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "the README has one ```{lang} block with {marker:?}"
    );
    found.into_iter().next().unwrap()
}

/// SQL statements as `psql` sends them: one at a time, comments dropped.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `url` (the throwaway cluster's superuser URL) for another role and
/// database, with the README's password.
fn url_as(admin_url: &str, user: &str, password: &str, db: &str) -> String {
    let rest = admin_url
        .strip_prefix("postgres://postgres@")
        .expect("a throwaway cluster's URL");
    let (host, query) = rest.split_once("/postgres").expect("the postgres database");
    format!("postgres://{user}:{password}@{host}/{db}{query}")
}

fn token(tenant: &str, key: &[u8]) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "tenant": tenant, "iss": ISSUER, "aud": AUDIENCE, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(key).unwrap(),
    )
    .unwrap()
}

async fn call(app: &Router, headers: &[(&str, String)]) -> (StatusCode, String) {
    let mut request = Request::get("/notes");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn bearer(tenant: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {}", token(tenant, SECRET)))
}

#[tokio::test]
async fn the_quick_start_works_on_an_empty_postgresql() {
    // An empty server: no role or database of the README's yet.
    let cluster = TestCluster::start().await.expect("a throwaway PostgreSQL");
    let admin_url = cluster.admin_url();

    // 1. Two roles and the database, as the superuser.
    let roles = block_with("sql", "CREATE ROLE app ");
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    for statement in statements(&roles) {
        sqlx::raw_sql(&statement)
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("README SQL {statement:?}: {e}"));
    }
    admin.close().await.unwrap();

    // 2. The tenant table, as the owner, exactly as the README writes it.
    let migration = block_with("rust", "RlsPolicy::new(");
    assert!(
        migration.contains(r#"RlsPolicy::new("notes", "tenant_id").grant_to("app").sql()"#),
        "the README's policy:\n{migration}"
    );
    let start = migration.find("\"CREATE TABLE").expect("the table's SQL") + 1;
    let table = &migration[start..start + migration[start..].find('"').unwrap()];
    let owner_url = url_as(&admin_url, "app_owner", "owner-secret", "app");
    let mut owner = PgConnection::connect(&owner_url).await.unwrap();
    sqlx::raw_sql(table).execute(&mut owner).await.unwrap();
    let policy = RlsPolicy::new("notes", "tenant_id").grant_to("app").sql();
    sqlx::raw_sql(&policy).execute(&mut owner).await.unwrap();
    owner.close().await.unwrap();

    // 3. The service: the README's handler and error type, verbatim.
    let service = block_with("rust", "async fn count_notes");
    for chunk in [HANDLER, API_ERROR] {
        assert!(
            service.contains(chunk.trim_end()),
            "the README's service block no longer contains:\n{chunk}"
        );
    }
    for line in [
        r#"let url = "postgres://app:app-secret@localhost/app";"#,
        r#"let pool = TenantPool::connect(url).await.inspect_err(|e| eprintln!("{e}"))?;"#,
        r#"let key = JwtKey::hs256(secret.as_bytes())?;"#,
        r#"let tokens = BearerAuth::new(key).issuer("https://auth.example.com").audience("notes");"#,
        ".route(\"/notes\", get(count_notes))",
        ".layer(ContextLayer::new().resolver(Resolver::new().bearer(tokens)));",
    ] {
        assert!(service.contains(line), "the README's service: {line}");
    }
    // `TenantPool::connect` runs the start-up audit: the README's roles and
    // migration must pass it.
    let app_url = url_as(&admin_url, "app", "app-secret", "app");
    let pool = TenantPool::connect(&app_url)
        .await
        .unwrap_or_else(|e| panic!("the README's database fails the audit: {e}"));
    let tokens = BearerAuth::new(JwtKey::hs256(SECRET).unwrap())
        .issuer(ISSUER)
        .audience(AUDIENCE);
    let app = Router::new()
        .route("/notes", get(count_notes))
        .with_state(pool.clone())
        .layer(ContextLayer::new().resolver(Resolver::new().bearer(tokens)));

    // 4. The README's token, made with its shell lines (all but the
    // `curl`), and the answer it prints.
    let shell = block_with("sh", "openssl dgst");
    let (make, ask) = shell.rsplit_once("curl ").expect("the curl line");
    assert!(ask.contains("# 0 notes for acme"), "{ask}");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("{make}\nprintf %s \"$TOKEN\""))
        .env("JWT_SECRET", std::str::from_utf8(SECRET).unwrap())
        .output()
        .expect("bash and openssl");
    assert!(out.status.success(), "{out:?}");
    let readme_token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        call(&app, &[("authorization", format!("Bearer {readme_token}"))]).await,
        (StatusCode::OK, "0 notes for acme\n".to_owned())
    );
    // A note of acme's, written through a tenant transaction: acme counts
    // it, globex does not.
    let acme: Ctx = Ctx::unvalidated().with_tenant("acme").validate().unwrap();
    let mut tx = pool.begin(&acme).await.unwrap();
    sqlx::query("INSERT INTO notes (tenant_id, body) VALUES ($1, 'hello')")
        .bind("acme")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        call(&app, &[bearer("acme")]).await,
        (StatusCode::OK, "1 notes for acme\n".to_owned())
    );
    assert_eq!(
        call(&app, &[bearer("globex")]).await,
        (StatusCode::OK, "0 notes for globex\n".to_owned())
    );

    let code = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["error"]["code"].as_str().unwrap().to_owned()
    };
    let (status, body) = call(&app, &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "TOKEN_MISSING".into())
    );
    let forged = format!("Bearer {}", token("acme", b"another-secret"));
    let (status, body) = call(&app, &[("authorization", forged)]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "TOKEN_INVALID".into())
    );
    let (status, body) = call(&app, &[bearer("acme"), ("x-tenant-id", "globex".into())]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "TENANT_MISMATCH".into())
    );
    for answer in ["TOKEN_MISSING", "TOKEN_INVALID", "TENANT_MISMATCH"] {
        assert!(README.contains(answer), "the README names {answer}");
    }
    pool.close().await;
}
