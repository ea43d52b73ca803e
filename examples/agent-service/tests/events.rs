//! The events of the example, end to end on a real PostgreSQL and a real
//! Redis: a posted message publishes `message.created` through the outbox,
//! the service's own relay and worker turn it into the conversation's
//! summary, each tenant sees only its own summary (with the same agent and
//! conversation ids), a redelivered event counts once, a forged but
//! consistent entry counts nothing, a message and its event commit together
//! or not at all, and on its own Redis the relay and the worker log in as
//! ACL users of their own.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use agent_service::{start_with, Config, DatabaseConfig};
use common::call;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tenant_testing::redis::TestRedis;
use tenant_testing::{TestCluster, APP_ROLE};
use tokio::time::{sleep, timeout, Instant};

/// The whole test gives up after this long.
const TEST_BOUND: Duration = Duration::from_secs(25);

/// How long the worker may take to reflect a message in a summary.
const SUMMARY_WAIT: Duration = Duration::from_secs(10);

const MESSAGES: &str = "/api/agents/agent-7/messages";
const SUMMARY: &str = "/api/agents/agent-7/summary";

fn headers<'a>(auth: &'a str, conversation: &'a str) -> [(&'a str, &'a str); 2] {
    [("Authorization", auth), ("X-Conversation-ID", conversation)]
}

/// Posts `text` and returns the message id.
async fn post(addr: SocketAddr, auth: &str, conversation: &str, text: &str) -> i64 {
    let body = serde_json::json!({ "content": text }).to_string();
    let (status, reply) = call(
        addr,
        "POST",
        MESSAGES,
        &headers(auth, conversation),
        Some(&body),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    reply["id"].as_i64().expect("a message id")
}

async fn summary(addr: SocketAddr, auth: &str, conversation: &str) -> (u16, Value) {
    call(addr, "GET", SUMMARY, &headers(auth, conversation), None).await
}

/// Polls the summary until its count is `count`; returns it.
async fn wait_for_count(addr: SocketAddr, auth: &str, conversation: &str, count: i64) -> Value {
    let deadline = Instant::now() + SUMMARY_WAIT;
    loop {
        let (status, body) = summary(addr, auth, conversation).await;
        if status == 200 && body["message_count"] == count {
            return body;
        }
        assert!(
            status == 200 || (status == 404 && body["error"]["code"] == "SUMMARY_NOT_FOUND"),
            "{status} {body}"
        );
        assert!(
            Instant::now() < deadline,
            "the summary of {conversation} did not reach {count} messages within \
             {SUMMARY_WAIT:?}: {status} {body}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// Has the summary worker's group delivered and acknowledged everything in
/// `stream`?
async fn drained(redis: &mut redis::aio::MultiplexedConnection, stream: &str) -> bool {
    let last: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(redis)
        .await
        .expect("XREVRANGE");
    let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(redis)
        .await
        .expect("XINFO GROUPS");
    let Some(group) = groups.iter().find(|g| {
        matches!(g.get("name"), Some(redis::Value::BulkString(n)) if n == agent_service::SUMMARY_GROUP.as_bytes())
    }) else {
        return false;
    };
    let delivered = match group.get("last-delivered-id") {
        Some(redis::Value::BulkString(id)) => String::from_utf8_lossy(id).into_owned(),
        _ => return false,
    };
    let pending = matches!(group.get("pending"), Some(redis::Value::Int(0)));
    pending && last.first().is_some_and(|(id, _)| *id == delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_keeps_each_tenants_summary_and_counts_a_redelivery_once() {
    // Our own throwaway Redis, so the test can look at the streams (the
    // service would otherwise start one of its own).
    let redis = TestRedis::start().await.expect("redis-server starts");
    // A database of the shared cluster, so the test can look as the
    // superuser; hardened mode, as `cargo run` has it.
    let cluster = TestCluster::shared().await.expect("PostgreSQL starts");
    let db = cluster.create_database().await.expect("a database");
    let secret = [0x5a_u8; 32];
    db.install_guard(&secret).await.expect("the guard installs");
    let service = start_with(Config {
        database: DatabaseConfig::External {
            app_url: db.app_url().to_owned(),
            owner_url: Some(db.owner_url().to_owned()),
        },
        hardened: true,
        guard_secret: Some(secret.to_vec()),
        redis_url: Some(redis.url()),
        relay_url: Some(db.admin_url().to_owned()),
        ..Config::new("127.0.0.1:0")
    })
    .await
    .expect("the service starts (its audit passes with the summary table)");
    let mut su = PgConnection::connect(db.admin_url()).await.unwrap();
    assert!(service.events().is_some(), "the relay and worker run");
    let addr = service.addr();
    let acme = format!("Bearer {}", service.token("acme", None).expect("a token"));
    let globex = format!("Bearer {}", service.token("globex", None).expect("a token"));

    timeout(TEST_BOUND, async {
        // Before any message: no summary, a clear 404.
        let (status, body) = summary(addr, &acme, "conv-1").await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "SUMMARY_NOT_FOUND");

        // Same agent and conversation ids for both tenants.
        let mut acme_ids = Vec::new();
        for i in 0..3 {
            acme_ids.push(post(addr, &acme, "conv-1", &format!("acme {i}")).await);
        }
        let mut globex_ids = Vec::new();
        for i in 0..2 {
            globex_ids.push(post(addr, &globex, "conv-1", &format!("globex {i}")).await);
        }
        // A conversation only acme has.
        let acme_only = post(addr, &acme, "conv-2", "acme alone").await;

        let body = wait_for_count(addr, &acme, "conv-1", 3).await;
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["last_message_id"], *acme_ids.last().unwrap());
        assert!(
            body["last_activity"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{body}"
        );
        let body = wait_for_count(addr, &globex, "conv-1", 2).await;
        assert_eq!(body["tenant"], "globex");
        assert_eq!(
            body["last_message_id"],
            *globex_ids.last().unwrap(),
            "globex's summary counts only globex's messages"
        );
        let body = wait_for_count(addr, &acme, "conv-2", 1).await;
        assert_eq!(body["last_message_id"], acme_only);

        // Globex cannot see acme's conversation-2 summary, though it exists.
        let (status, body) = summary(addr, &globex, "conv-2").await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "SUMMARY_NOT_FOUND");
        // Nor without a token, nor with the header of another tenant.
        let (status, body) = call(
            addr,
            "GET",
            SUMMARY,
            &[("X-Tenant-ID", "acme"), ("X-Conversation-ID", "conv-1")],
            None,
        )
        .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "TOKEN_MISSING");
        let (status, body) = call(
            addr,
            "GET",
            SUMMARY,
            &[
                ("Authorization", &globex),
                ("X-Tenant-ID", "acme"),
                ("X-Conversation-ID", "conv-1"),
            ],
            None,
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "TENANT_MISMATCH");

        // A redelivery: the first acme event again, as a new stream entry
        // (what a relay that died after its XADD publishes). The worker
        // takes it and acknowledges it without a second effect.
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let stream = "tenant:events:t:acme";
        let first: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let (_, fields) = first.first().expect("acme's stream has its events");
        let mut xadd = redis::cmd("XADD");
        xadd.arg(stream).arg("*");
        for (k, v) in fields {
            xadd.arg(k).arg(v);
        }
        let _copy: String = xadd.query_async(&mut conn).await.unwrap();
        let deadline = Instant::now() + SUMMARY_WAIT;
        while !drained(&mut conn, stream).await {
            assert!(
                Instant::now() < deadline,
                "the worker did not take the copy"
            );
            sleep(Duration::from_millis(50)).await;
        }
        let (status, body) = summary(addr, &acme, "conv-1").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message_count"], 3, "the copy counted once: {body}");

        // A forged but consistent entry: globex's own envelope (tenant,
        // agent, conversation) under an event id no transaction wrote,
        // written into globex's stream by anyone who can write to Redis.
        // The outbox does not hold it: dead-lettered, nothing counted.
        let globex_stream = "tenant:events:t:globex";
        let first: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg(globex_stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let (_, fields) = first.first().expect("globex's stream has its events");
        let mut forged = redis::cmd("XADD");
        forged.arg(globex_stream).arg("*");
        for (k, v) in fields {
            let v = if k == "event" {
                "999999999"
            } else {
                v.as_str()
            };
            forged.arg(k).arg(v);
        }
        let _forged: String = forged.query_async(&mut conn).await.unwrap();
        let deadline = Instant::now() + SUMMARY_WAIT;
        while !drained(&mut conn, globex_stream).await {
            assert!(
                Instant::now() < deadline,
                "the worker did not take the forgery"
            );
            sleep(Duration::from_millis(50)).await;
        }
        let dead: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg("tenant:events:dead")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let reasons: Vec<(String, String)> = dead
            .iter()
            .map(|(_, f)| {
                let get = |k: &str| {
                    f.iter()
                        .find(|x| x.0 == k)
                        .map(|x| x.1.clone())
                        .unwrap_or_default()
                };
                (get("reason"), get("event"))
            })
            .collect();
        assert_eq!(
            reasons,
            vec![("EVENT_NOT_IN_OUTBOX".to_owned(), "999999999".to_owned())]
        );
        let (status, body) = summary(addr, &globex, "conv-1").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["message_count"], 2,
            "the forgery counted nothing: {body}"
        );

        // One more message still counts.
        post(addr, &acme, "conv-1", "acme 3").await;
        wait_for_count(addr, &acme, "conv-1", 4).await;

        // Seven messages, seven events, each processed once.
        let (events, processed): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM tenant_outbox WHERE topic = 'message.created'), \
                    (SELECT count(*) FROM tenant_processed_messages)",
        )
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!((events, processed), (7, 7));

        // The application role with a forged tenant setting reads no
        // summary: the table's policy reads hardened mode's guard.
        let mut app = PgConnection::connect(db.app_url()).await.unwrap();
        let mut forged = app.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.current_tenant', 'acme', true)")
            .execute(&mut *forged)
            .await
            .unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM agent_conversation_summaries")
            .fetch_one(&mut *forged)
            .await
            .unwrap();
        assert_eq!(seen, 0, "a forged setting reads no summary");
        forged.rollback().await.unwrap();

        // The message and its event commit together: with the outbox
        // refused, the message is not stored either (500, nothing kept).
        sqlx::raw_sql(&format!(
            "REVOKE INSERT ON tenant_outbox FROM \"{APP_ROLE}\""
        ))
        .execute(&mut su)
        .await
        .unwrap();
        let body = serde_json::json!({ "content": "lost with its event" }).to_string();
        let (status, reply) = call(
            addr,
            "POST",
            MESSAGES,
            &headers(&acme, "conv-1"),
            Some(&body),
        )
        .await;
        assert_eq!(status, 500, "{reply}");
        assert_eq!(reply["error"]["code"], "DATABASE_ERROR");
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tenant_memory_messages WHERE content = 'lost with its event'",
        )
        .fetch_one(&mut su)
        .await
        .unwrap();
        assert_eq!(stored, 0, "no message without its event");
    })
    .await
    .expect("bounded");

    service.stop().await.expect("clean stop");
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_its_own_redis_the_relay_and_the_worker_run_as_acl_users_of_their_own() {
    let cluster = TestCluster::shared().await.expect("PostgreSQL starts");
    let db = cluster.create_database().await.expect("a database");
    let service = start_with(Config {
        database: DatabaseConfig::External {
            app_url: db.app_url().to_owned(),
            owner_url: Some(db.owner_url().to_owned()),
        },
        hardened: false,
        relay_url: Some(db.admin_url().to_owned()),
        ..Config::new("127.0.0.1:0")
    })
    .await
    .expect("the service starts with a throwaway Redis");
    let described = service.events().expect("the relay and worker run");
    let dir = described
        .strip_prefix("a throwaway Redis in ")
        .and_then(|d| d.strip_suffix(" (removed on exit)"))
        .expect("a throwaway Redis")
        .to_owned();
    let addr = service.addr();
    let acme = format!("Bearer {}", service.token("acme", None).expect("a token"));
    timeout(TEST_BOUND, async {
        // Published by the relay's user, applied by the worker's.
        post(addr, &acme, "conv-1", "hello").await;
        wait_for_count(addr, &acme, "conv-1", 1).await;
        let client = redis::Client::open(format!("redis+unix://{dir}/redis.sock")).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let users: Vec<String> = redis::cmd("ACL")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .unwrap();
        let rules = |name: &str| {
            users
                .iter()
                .find(|u| u.starts_with(&format!("user {name} on ")))
                .unwrap_or_else(|| panic!("no user {name} in {users:?}"))
                .clone()
        };
        let relay = rules("outbox-relay");
        let worker = rules("summary-worker");
        assert!(
            relay.contains("-@all") && relay.contains("+xadd"),
            "{relay}"
        );
        assert!(
            worker.contains("-@all") && worker.contains("+xreadgroup"),
            "{worker}"
        );
        // The worker's XADD is only in its selector, for the dead letters.
        let (root, selector) = worker.split_once('(').expect("a selector");
        assert!(!root.contains("+xadd"), "{worker}");
        assert!(
            selector.contains("+xadd") && selector.contains("~tenant:events:dead"),
            "{worker}"
        );
    })
    .await
    .expect("bounded");
    service.stop().await.expect("clean stop");
}
