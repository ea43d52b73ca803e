//! The README's walkthrough, over real HTTP against the real service on a
//! throwaway PostgreSQL: two tenants using the same agent and conversation
//! ids each read only their own messages; a missing tenant is 400
//! `TENANT_REQUIRED`; `default` is 400 `TENANT_INVALID`.

mod common;

use common::{call, contents};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_same_ids_each_see_only_their_own() {
    let service = agent_service::start("127.0.0.1:0")
        .await
        .expect("service starts");
    let addr = service.addr();
    let path = "/api/agents/agent-7/messages";

    for (tenant, text) in [("acme", "hello from acme"), ("globex", "hello from globex")] {
        let (status, body) = call(
            addr,
            "POST",
            path,
            &[("X-Tenant-ID", tenant), ("X-Conversation-ID", "conv-1")],
            Some(&format!(r#"{{"content":"{text}"}}"#)),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["tenant"], tenant);
        assert_eq!(body["agent"], "agent-7");
        assert_eq!(body["conversation"], "conv-1");
    }

    let headers = |t| [("X-Tenant-ID", t), ("X-Conversation-ID", "conv-1")];
    let (status, acme) = call(addr, "GET", path, &headers("acme"), None).await;
    assert_eq!(status, 200, "{acme}");
    assert_eq!(contents(&acme), ["hello from acme"]);
    assert_eq!(acme["next_before"], serde_json::Value::Null, "one page");
    let (status, globex) = call(addr, "GET", path, &headers("globex"), None).await;
    assert_eq!(status, 200, "{globex}");
    assert_eq!(contents(&globex), ["hello from globex"]);

    // Collections are per tenant too.
    let (status, _) = call(
        addr,
        "POST",
        "/api/agents/agent-7/collections",
        &headers("acme"),
        Some(r#"{"collection_id":"manuals"}"#),
    )
    .await;
    assert_eq!(status, 201);
    let (_, acme_cols) = call(
        addr,
        "GET",
        "/api/agents/agent-7/collections",
        &headers("acme"),
        None,
    )
    .await;
    assert_eq!(acme_cols["collections"], serde_json::json!(["manuals"]));
    let (_, globex_cols) = call(
        addr,
        "GET",
        "/api/agents/agent-7/collections",
        &headers("globex"),
        None,
    )
    .await;
    assert_eq!(globex_cols["collections"], serde_json::json!([]));

    // No tenant: 400 TENANT_REQUIRED, and nothing was written.
    let (status, body) = call(
        addr,
        "POST",
        path,
        &[("X-Conversation-ID", "conv-1")],
        Some(r#"{"content":"who am I?"}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "TENANT_REQUIRED");

    // `default` is not a tenant.
    let (status, body) = call(addr, "GET", path, &headers("default"), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "TENANT_INVALID");

    // A required conversation that is missing.
    let (status, body) = call(addr, "GET", path, &[("X-Tenant-ID", "acme")], None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "CONVERSATION_REQUIRED");

    // An agent id from the URL is validated like a header.
    let (status, body) = call(
        addr,
        "GET",
        "/api/agents/a%3Bb/messages",
        &headers("acme"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "AGENT_INVALID");

    // The public endpoint needs no tenant.
    let (status, body) = call(addr, "GET", "/status", &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "online");

    // After all that, acme still sees exactly its one message.
    let (_, acme) = call(addr, "GET", path, &headers("acme"), None).await;
    assert_eq!(contents(&acme), ["hello from acme"]);

    service.stop().await.expect("clean stop");
}
