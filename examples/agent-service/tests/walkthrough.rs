//! The README's walkthrough, over real HTTP against the real service on a
//! throwaway PostgreSQL: two tenants, each with the bearer token the
//! service prints at start-up, using the same agent and conversation ids,
//! each read only their own messages; no token is 401 `TOKEN_MISSING`, a
//! tenant header that differs from the token 403 `TENANT_MISMATCH`, a token
//! scoped to one agent 403 `AGENT_MISMATCH` on another agent's path. The
//! gateway mode (`Auth::TrustedHeader`) keeps today's header behaviour.

mod common;

use agent_service::{start_with, Auth, Config};
use common::{call, contents, request};

/// The headers of a request in conversation `conv-1` with `authorization`.
fn conversation(authorization: &str) -> [(&'static str, &str); 2] {
    [
        ("Authorization", authorization),
        ("X-Conversation-ID", "conv-1"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_same_ids_each_see_only_their_own() {
    let service = agent_service::start("127.0.0.1:0")
        .await
        .expect("service starts");
    let addr = service.addr();
    let path = "/api/agents/agent-7/messages";
    let acme = format!("Bearer {}", service.token("acme", None).expect("a token"));
    let globex = format!("Bearer {}", service.token("globex", None).expect("a token"));

    for (tenant, auth, text) in [
        ("acme", &acme, "hello from acme"),
        ("globex", &globex, "hello from globex"),
    ] {
        let (status, body) = call(
            addr,
            "POST",
            path,
            &conversation(auth),
            Some(&format!(r#"{{"content":"{text}"}}"#)),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["tenant"], tenant);
        assert_eq!(body["agent"], "agent-7");
        assert_eq!(body["conversation"], "conv-1");
    }

    let acme_h = conversation(&acme);
    let globex_h = conversation(&globex);
    let (status, body) = call(addr, "GET", path, &acme_h, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body), ["hello from acme"]);
    assert_eq!(body["next_before"], serde_json::Value::Null, "one page");
    let (status, body) = call(addr, "GET", path, &globex_h, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body), ["hello from globex"]);

    // Collections are per tenant too.
    let cols = "/api/agents/agent-7/collections";
    let (status, _) = call(
        addr,
        "POST",
        cols,
        &acme_h,
        Some(r#"{"collection_id":"manuals"}"#),
    )
    .await;
    assert_eq!(status, 201);
    let (_, acme_cols) = call(addr, "GET", cols, &acme_h, None).await;
    assert_eq!(acme_cols["collections"], serde_json::json!(["manuals"]));
    let (_, globex_cols) = call(addr, "GET", cols, &globex_h, None).await;
    assert_eq!(globex_cols["collections"], serde_json::json!([]));

    // No token, even with a tenant header: 401 and a Bearer challenge; nothing written.
    let reply = request(
        addr,
        "POST",
        path,
        &[("X-Tenant-ID", "acme"), ("X-Conversation-ID", "conv-1")],
        Some(r#"{"content":"who am I?"}"#),
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "TOKEN_MISSING");
    assert!(
        reply.head.contains("www-authenticate: bearer"),
        "{}",
        reply.head
    );

    // acme's token with globex's header: 403, not globex's data.
    let mismatch = [
        ("Authorization", acme.as_str()),
        ("X-Tenant-ID", "globex"),
        ("X-Conversation-ID", "conv-1"),
    ];
    let (status, body) = call(addr, "GET", path, &mismatch, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "TENANT_MISMATCH");

    // A token signed with another key: 401 TOKEN_INVALID.
    let other = Auth::development().token("globex", None).expect("a token");
    let forged = format!("Bearer {other}");
    let reply = request(addr, "GET", path, &conversation(&forged), None).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "TOKEN_INVALID");
    assert!(
        reply
            .head
            .contains(r#"www-authenticate: bearer error="invalid_token""#),
        "{}",
        reply.head
    );

    // A required conversation that is missing.
    let (status, body) = call(addr, "GET", path, &[("Authorization", acme.as_str())], None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "CONVERSATION_REQUIRED");

    // An agent id from the URL is validated like a header.
    let (status, body) = call(addr, "GET", "/api/agents/a%3Bb/messages", &acme_h, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "AGENT_INVALID");

    // The public endpoint needs no tenant and no token.
    let (status, body) = call(addr, "GET", "/status", &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "online");

    // A token scoped to one agent reads and writes that agent only: the
    // agent in the path must agree with the token's claim.
    let agent_1 = format!(
        "Bearer {}",
        service.token("acme", Some("agent-1")).expect("a token")
    );
    let (status, body) = call(addr, "GET", path, &conversation(&agent_1), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "AGENT_MISMATCH");
    let (status, body) = call(
        addr,
        "POST",
        path,
        &conversation(&agent_1),
        Some(r#"{"content":"written as agent-1"}"#),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "AGENT_MISMATCH");
    let own = "/api/agents/agent-1/messages";
    let (status, body) = call(addr, "GET", own, &conversation(&agent_1), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body), Vec::<String>::new());

    // After all that, acme still sees exactly its one message.
    let (_, body) = call(addr, "GET", path, &acme_h, None).await;
    assert_eq!(contents(&body), ["hello from acme"]);

    // A flood from acme past its share: acme alone gets 429 with
    // Retry-After, globex is served.
    let mut flood = Vec::new();
    for _ in 0..300 {
        let auth = acme.clone();
        flood.push(tokio::spawn(async move {
            request(addr, "GET", path, &conversation(&auth), None).await
        }));
    }
    let mut limited = None;
    for call in flood {
        let reply = call.await.unwrap();
        match reply.status {
            200 => {}
            429 => limited = Some(reply),
            other => panic!("{other}: {}", reply.body),
        }
    }
    let limited = limited.expect("300 requests at once go past 50/s with bursts of 100");
    assert_eq!(limited.json()["error"]["code"], "RATE_LIMITED");
    assert!(limited.head.contains("retry-after: "), "{}", limited.head);
    let (status, body) = call(addr, "GET", path, &globex_h, None).await;
    assert_eq!(status, 200, "{body}");

    service.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_gateway_the_tenant_header_is_trusted() {
    let service = start_with(Config {
        auth: Auth::TrustedHeader,
        ..Config::new("127.0.0.1:0")
    })
    .await
    .expect("service starts");
    let addr = service.addr();
    assert!(service.token("acme", None).is_none());
    let path = "/api/agents/agent-7/messages";
    let headers = |t| [("X-Tenant-ID", t), ("X-Conversation-ID", "conv-1")];
    let (status, body) = call(
        addr,
        "POST",
        path,
        &headers("acme"),
        Some(r#"{"content":"via the gateway"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = call(addr, "GET", path, &headers("acme"), None).await;
    assert_eq!(contents(&body), ["via the gateway"]);
    let (_, body) = call(addr, "GET", path, &headers("globex"), None).await;
    assert_eq!(contents(&body), Vec::<String>::new());

    // No tenant: 400 TENANT_REQUIRED; `default` is not a tenant.
    let (status, body) = call(addr, "GET", path, &[("X-Conversation-ID", "conv-1")], None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "TENANT_REQUIRED");
    let (status, body) = call(addr, "GET", path, &headers("default"), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "TENANT_INVALID");
    service.stop().await.expect("clean stop");
}
