//! `cargo run -p agent-service`: the example service on 127.0.0.1:3000 (or
//! `BIND`), with a throwaway PostgreSQL unless `DATABASE_URL` is set. It
//! prints a development signing key and two ready bearer tokens (acme,
//! globex); `TRUST_TENANT_HEADER=1` takes the tenant from `X-Tenant-ID`
//! instead, for a gateway deployment. A relay and a summary worker run as
//! tasks, on a throwaway Redis unless `REDIS_URL` is set (a throwaway
//! Redis needs `redis-server`).
//!
//! `TRANSACTION_POOLER=1` runs the tenant pool behind PgBouncer in
//! transaction mode, built with `transaction_pooler(true)`: without
//! `DATABASE_URL` the service also starts a throwaway PgBouncer (it needs
//! `pgbouncer`) in front of its throwaway PostgreSQL and connects through
//! it; with `DATABASE_URL` it says that this URL names the pooler (the
//! migrations and the relay use `DATABASE_OWNER_URL` and
//! `RELAY_DATABASE_URL` as given: URLs of PostgreSQL itself). One `INFO`
//! line at start-up says the pool runs behind PgBouncer.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .init();
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let service = match agent_service::start(&bind).await {
        Ok(service) => service,
        Err(e) => {
            eprintln!("agent-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = service.addr();
    println!("agent-service listening on http://{addr}");
    println!("data: {}", service.database());
    match service.events() {
        Some(events) => println!(
            "events: message.created through the outbox to {events}; a worker keeps each \
             conversation's summary (GET /api/agents/{{agent_id}}/summary)"
        ),
        None => println!(
            "events: no relay or worker (an external database without RELAY_DATABASE_URL): \
             message.created events wait in the outbox"
        ),
    }
    let limits = service.limits();
    println!(
        "limits: a request head within {:?}, the request within {:?}, a stalled response \
         {:?}; bodies up to {} bytes, message content up to {} bytes; pages of {} messages \
         (at most {}) and up to {} bytes",
        limits.header_read_timeout,
        limits.request_timeout,
        limits.send_timeout,
        limits.max_body_bytes,
        limits.max_content_bytes,
        limits.default_page,
        limits.max_page,
        limits.max_response_bytes,
    );
    println!(
        "per tenant: {} requests/s (bursts of {}), at most {} of the pool's {} connections \
         while others wait, then up to {:?} in line; beyond either, 429 with Retry-After",
        limits.tenant_rate_per_second,
        limits.tenant_burst,
        limits.tenant_connections,
        service.pool_size(),
        limits.tenant_wait,
    );
    match service.auth().signing_key_hex() {
        Some(key) => {
            let acme = service.token("acme", None).unwrap_or_default();
            let globex = service.token("globex", None).unwrap_or_default();
            println!(
                "auth: bearer tokens (HS256, iss {}, aud {}, claim `tenant`); \
                 signing key (hex; from JWT_SECRET, else made up for this run):",
                agent_service::ISSUER,
                agent_service::AUDIENCE,
            );
            println!("  {key}");
            println!("tokens, valid for a day:");
            println!("  export ACME={acme}");
            println!("  export GLOBEX={globex}");
            println!("try:");
            println!(
                "  curl -s -X POST http://{addr}/api/agents/agent-7/messages -H \"Authorization: Bearer $ACME\" \
                 -H 'X-Conversation-ID: conv-1' -H 'content-type: application/json' -d '{{\"content\":\"hello\"}}'"
            );
            println!(
                "  curl -s http://{addr}/api/agents/agent-7/messages -H \"Authorization: Bearer $ACME\" -H 'X-Conversation-ID: conv-1'"
            );
            println!(
                "  curl -s http://{addr}/api/agents/agent-7/messages -H \"Authorization: Bearer $GLOBEX\" -H 'X-Conversation-ID: conv-1'   # globex sees none of acme's"
            );
            println!(
                "  curl -s http://{addr}/api/agents/agent-7/summary -H \"Authorization: Bearer $ACME\" -H 'X-Conversation-ID: conv-1'   # the worker's count"
            );
            println!("  curl -s -i http://{addr}/api/agents/agent-7/messages -H 'X-Tenant-ID: acme' -H 'X-Conversation-ID: conv-1'   # 401 TOKEN_MISSING");
            println!("  curl -s -i http://{addr}/api/agents/agent-7/messages -H \"Authorization: Bearer $ACME\" -H 'X-Tenant-ID: globex' -H 'X-Conversation-ID: conv-1'   # 403 TENANT_MISMATCH");
        }
        None => {
            println!("auth: X-Tenant-ID as sent (TRUST_TENANT_HEADER=1): only behind a gateway that sets it");
            println!("try:");
            println!(
                "  curl -s -X POST http://{addr}/api/agents/agent-7/messages -H 'X-Tenant-ID: acme' \
                 -H 'X-Conversation-ID: conv-1' -H 'content-type: application/json' -d '{{\"content\":\"hello\"}}'"
            );
            println!(
                "  curl -s http://{addr}/api/agents/agent-7/messages -H 'X-Tenant-ID: acme' -H 'X-Conversation-ID: conv-1'"
            );
            println!(
                "  curl -s http://{addr}/api/agents/agent-7/summary -H 'X-Tenant-ID: acme' -H 'X-Conversation-ID: conv-1'"
            );
            println!("  curl -s -i http://{addr}/api/agents/agent-7/messages -H 'X-Conversation-ID: conv-1'   # 400 TENANT_REQUIRED");
        }
    }
    println!("Ctrl-C or SIGTERM stops it, after the requests in flight.");
    match service.run_until_ctrl_c().await {
        Ok(()) => {
            println!("agent-service stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agent-service: {e}");
            ExitCode::FAILURE
        }
    }
}
