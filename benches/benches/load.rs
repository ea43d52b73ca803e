//! The example service under HTTP load, next to a baseline service that does
//! the same queries with plain sqlx and no tenant checks.
//!
//! * `agent_service`: the example (`agent_service::start_with`, ordinary
//!   mode, its throwaway PostgreSQL, release build), the tenant in the plain
//!   `X-Tenant-ID` header taken as sent (`Auth::TrustedHeader`, as behind a
//!   gateway), with no relay or worker running (each POST still writes its
//!   event's outbox row, which the baseline does not);
//! * `baseline`: an axum service on a `PgPool` (10 connections, as the
//!   `TenantPool`'s default) over an identical messages table without RLS,
//!   its own throwaway PostgreSQL; it reads `X-Tenant-ID` and puts it in
//!   the query, with no validation.
//!
//! The load generator is written here on tokio's TCP (keep-alive HTTP/1.1,
//! one request in flight per connection), bound to 127.0.0.1 only. Each
//! request is a GET of the latest 20 messages or a POST of one (half each),
//! for one of 100 tenants, conversation `c-1` of agent `agent-1`. Every
//! response is checked: its status, the `tenant` it names, and for a GET
//! that every message's content names that tenant (a POST writes
//! `from <tenant>`). A mismatch fails the run.
//!
//! For each number of connections (1, 16, 64) the two services run one
//! after the other for `LOAD_SECS` seconds each (default 30); printed:
//! requests/s, p50, p99, and `RATIO agent_service/baseline` of requests/s.
//!
//! Run: `cargo bench -p tenant-benches --bench load`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tenant_testing::{TestCluster, APP_ROLE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TENANTS: usize = 100;
const CONNECTIONS: [usize; 3] = [1, 16, 64];

fn tenant(i: usize) -> String {
    format!("tenant-{i:03}")
}

#[derive(Clone)]
struct Baseline {
    pool: PgPool,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn baseline_post(
    State(app): State<Baseline>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    let tenant = header(&headers, "x-tenant-id");
    let conversation = header(&headers, "x-conversation-id");
    let content = body["content"].as_str().unwrap_or("").to_owned();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tenant_memory_messages (tenant_id, agent_id, conversation_id, role, content)
         VALUES ($1, $2, $3, 'user', $4) RETURNING id",
    )
    .bind(&tenant)
    .bind(&agent)
    .bind(&conversation)
    .bind(&content)
    .fetch_one(&app.pool)
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant": tenant, "agent": agent, "conversation": conversation, "id": id})),
    ))
}

async fn baseline_get(
    State(app): State<Baseline>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, StatusCode> {
    let tenant = header(&headers, "x-tenant-id");
    let conversation = header(&headers, "x-conversation-id");
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, role, content FROM tenant_memory_messages
         WHERE tenant_id = $1 AND agent_id = $2 AND conversation_id = $3
         ORDER BY id DESC LIMIT 21",
    )
    .bind(&tenant)
    .bind(&agent)
    .bind(&conversation)
    .fetch_all(&app.pool)
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let messages: Vec<Value> = rows
        .into_iter()
        .take(20)
        .map(|(id, role, content)| json!({"id": id, "role": role, "content": content}))
        .collect();
    Ok(Json(
        json!({"tenant": tenant, "agent": agent, "conversation": conversation, "messages": messages}),
    ))
}

async fn start_baseline(cluster: &TestCluster) -> Result<SocketAddr, BoxError> {
    let db = cluster.create_database().await?;
    let mut owner = PgConnection::connect(db.owner_url()).await?;
    sqlx::raw_sql(&format!(
        "CREATE TABLE tenant_memory_messages (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             tenant_id text NOT NULL,
             agent_id text NOT NULL,
             conversation_id text NOT NULL,
             role text NOT NULL,
             content text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT clock_timestamp()
         );
         CREATE INDEX tenant_memory_messages_conversation
             ON tenant_memory_messages (tenant_id, agent_id, conversation_id, id);
         GRANT SELECT, INSERT, DELETE ON tenant_memory_messages TO {APP_ROLE};"
    ))
    .execute(&mut owner)
    .await?;
    owner.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(db.app_url())
        .await?;
    let app = Router::new()
        .route(
            "/api/agents/{agent_id}/messages",
            get(baseline_get).post(baseline_post),
        )
        .with_state(Baseline { pool });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    mismatches: u64,
    failures: Vec<String>,
}

/// Sends one request and reads the response: status and JSON body.
async fn exchange(
    reader: &mut BufReader<TcpStream>,
    request: &[u8],
) -> Result<(u16, Value), BoxError> {
    reader.get_mut().write_all(request).await?;
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .ok_or("no status line")?
        .parse()?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok((status, serde_json::from_slice(&body)?))
}

async fn client(addr: SocketAddr, seed: u64, until: Instant) -> Result<Outcome, BoxError> {
    let mut reader = BufReader::new(TcpStream::connect(addr).await?);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = Outcome::default();
    while Instant::now() < until {
        let t = tenant(rng.random_range(0..TENANTS));
        let post = rng.random_bool(0.5);
        let request = if post {
            let body = format!("{{\"content\":\"from {t}\"}}");
            format!(
                "POST /api/agents/agent-1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 X-Tenant-ID: {t}\r\nX-Conversation-ID: c-1\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            format!(
                "GET /api/agents/agent-1/messages?limit=20 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 X-Tenant-ID: {t}\r\nX-Conversation-ID: c-1\r\n\r\n"
            )
        };
        let started = Instant::now();
        let (status, body) = exchange(&mut reader, request.as_bytes()).await?;
        out.latencies.push(started.elapsed());
        let expected = if post { 201 } else { 200 };
        if status != expected {
            out.failures.push(format!("{status}: {body}"));
            continue;
        }
        if body["tenant"].as_str() != Some(t.as_str()) {
            out.mismatches += 1;
        }
        if let Some(messages) = body["messages"].as_array() {
            let own = format!("from {t}");
            out.mismatches += messages
                .iter()
                .filter(|m| m["content"].as_str() != Some(own.as_str()))
                .count() as u64;
        }
    }
    Ok(out)
}

struct Point {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

async fn run_point(addr: SocketAddr, connections: usize, secs: f64) -> Result<Point, BoxError> {
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..connections {
        tasks.push(tokio::spawn(client(addr, c as u64 + 1, until)));
    }
    let mut all = Outcome::default();
    for task in tasks {
        let out = task.await??;
        all.latencies.extend(out.latencies);
        all.mismatches += out.mismatches;
        all.failures.extend(out.failures);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if all.mismatches > 0 {
        return Err(format!("{} responses named another tenant", all.mismatches).into());
    }
    if let Some(first) = all.failures.first() {
        return Err(format!("{} requests failed, first: {first}", all.failures.len()).into());
    }
    all.latencies.sort();
    let at = |p: f64| all.latencies[((all.latencies.len() - 1) as f64 * p).round() as usize];
    Ok(Point {
        rps: all.latencies.len() as f64 / elapsed,
        p50: at(0.5),
        p99: at(0.99),
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let secs: f64 = std::env::var("LOAD_SECS")
        .ok()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(30.0);
    let mut config = agent_service::Config::new("127.0.0.1:0");
    config.hardened = false;
    // The tenant as sent in `X-Tenant-ID`, as the baseline reads it: both
    // sides do the same work per request apart from the tenant checks.
    config.auth = agent_service::Auth::TrustedHeader;
    // No relay or worker in the process (each POST still writes its
    // outbox row in its transaction).
    config.events = false;
    // No per-tenant request rate: the load generator's 100 tenants would
    // each pass the example's 50 a second, and the baseline has no limit.
    config.limits.tenant_rate_per_second = 1_000_000;
    config.limits.tenant_burst = 1_000_000;
    let service = agent_service::start_with(config).await?;
    let baseline_cluster = TestCluster::start().await?;
    let baseline = start_baseline(&baseline_cluster).await?;
    println!(
        "load: {secs} s per point, GET (latest 20) and POST over {TENANTS} tenants, \
         every response's tenant checked"
    );
    println!(
        "{:>5} {:<14} {:>9} {:>9} {:>9}",
        "conns", "service", "req/s", "p50 ms", "p99 ms"
    );
    let mut ratios = Vec::new();
    for connections in CONNECTIONS {
        let mut rps = [0.0; 2];
        for (k, (name, addr)) in [("agent_service", service.addr()), ("baseline", baseline)]
            .into_iter()
            .enumerate()
        {
            let point = run_point(addr, connections, secs).await?;
            println!(
                "{connections:>5} {name:<14} {:>9.0} {:>9.2} {:>9.2}",
                point.rps,
                point.p50.as_secs_f64() * 1e3,
                point.p99.as_secs_f64() * 1e3
            );
            rps[k] = point.rps;
        }
        ratios.push((connections, rps[0] / rps[1]));
    }
    for (connections, ratio) in ratios {
        println!("RATIO agent_service/baseline conns={connections}: {ratio:.2}");
    }
    service.stop().await?;
    Ok(())
}
