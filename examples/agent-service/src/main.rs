//! `cargo run -p agent-service`: the example service on 127.0.0.1:3000 (or
//! `BIND`), with a throwaway PostgreSQL unless `DATABASE_URL` is set.

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
    println!("try:");
    println!(
        "  curl -s -X POST http://{addr}/api/agents/agent-7/messages -H 'X-Tenant-ID: acme' \
         -H 'X-Conversation-ID: conv-1' -H 'content-type: application/json' -d '{{\"content\":\"hello\"}}'"
    );
    println!(
        "  curl -s http://{addr}/api/agents/agent-7/messages -H 'X-Tenant-ID: acme' -H 'X-Conversation-ID: conv-1'"
    );
    println!("  curl -s -i http://{addr}/api/agents/agent-7/messages -H 'X-Conversation-ID: conv-1'   # 400 TENANT_REQUIRED");
    println!("Ctrl-C stops it.");
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
