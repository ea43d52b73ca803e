//! An applied event is one the outbox holds, for its own tenant: the
//! attacks of a neighbour with write access to Redis (or SQL in its own
//! tenant's transaction), each on a real Redis and a real PostgreSQL.
//!
//! * a forged but consistent envelope in another tenant's stream is
//!   dead-lettered `EVENT_NOT_IN_OUTBOX` and counts nothing, with the check
//!   before the handler and with `Job::begin`'s proof alone;
//! * one tenant's SQL and a forged entry cannot pre-claim another tenant's
//!   next event id: that event is applied exactly once;
//! * an outbox row that one tenant's SQL writes under another tenant's
//!   next id hides nothing from the relay;
//! * ids outside `1..=i64::MAX` are dead-lettered `EVENT_ID_INVALID`;
//! * pruning removes old rows without letting a pruned event, or a forgery
//!   naming an old id, be applied;
//! * the consumer's Redis user cannot write into the tenant streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use sqlx::{Connection, PgConnection};
use tenant_core::{Ctx, Validated};
use tenant_sqlx::{AdminPool, TenantPool};
use tenant_testing::redis::TestRedis;
use tenant_testing::{TestCluster, TestDatabase};
use tenant_tests::worker_fixture::{self, audit_effects, install, produce, Handlers, GROUP};
use tenant_worker::{
    self as worker, consumer_acl, relay_acl, Pruned, Relay, Worker, WorkerStats, DEFAULT_PREFIX,
};

struct Setup {
    db: TestDatabase,
    redis: TestRedis,
    client: redis::Client,
    pool: TenantPool,
    admin: PgConnection,
    conn: ConnectionManager,
}

async fn setup() -> Setup {
    let cluster = TestCluster::shared().await.expect("cluster");
    let db = cluster.create_database().await.expect("database");
    install(&db).await;
    let redis = TestRedis::start().await.expect("redis");
    let client = redis::Client::open(redis.url()).unwrap();
    let pool = TenantPool::builder()
        .max_connections(8)
        .connect(db.app_url())
        .await
        .expect("the worker tables pass the audit");
    let admin = PgConnection::connect(db.admin_url()).await.unwrap();
    let conn = client.get_connection_manager().await.unwrap();
    Setup {
        db,
        redis,
        client,
        pool,
        admin,
        conn,
    }
}

fn ctx(tenant: &str) -> Ctx<Validated> {
    Ctx::unvalidated()
        .with_tenant(tenant)
        .with_agent("producer")
        .validate()
        .unwrap()
}

/// A consistent envelope, as the producer writes it, for `tenant`.
fn envelope(tenant: &str, seq: i64) -> String {
    format!(
        r#"{{"context":{{"tenant":"{tenant}","agent":"producer"}},"payload":{{"tenant":"{tenant}","seq":{seq}}}}}"#
    )
}

impl Setup {
    async fn relay_all(&self) {
        let admin = AdminPool::connect(self.db.admin_url()).await.unwrap();
        let mut relay = Relay::builder().start(&admin, &self.client).await.unwrap();
        while relay.run_once().await.unwrap() > 0 {}
    }

    fn handlers(&self) -> Handlers {
        Handlers {
            pool: self.pool.clone(),
            redis: self.conn.clone(),
            crash: Arc::new(|_| None),
            handled: Arc::new(AtomicU64::new(0)),
            on_crash: Arc::new(|_| {}),
        }
    }

    async fn xadd(&self, tenant: &str, event: &str, topic: &str, envelope: &str) {
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("XADD")
            .arg(format!("tenant:events:t:{tenant}"))
            .arg("*")
            .arg("event")
            .arg(event)
            .arg("topic")
            .arg(topic)
            .arg("envelope")
            .arg(envelope)
            .ignore()
            .cmd("SADD")
            .arg("tenant:events:tenants")
            .arg(tenant)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }

    /// The dead-letter stream as (reason, event) pairs, sorted by event.
    async fn dead_letters(&self) -> Vec<(String, String)> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg("tenant:events:dead")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut dead: Vec<(String, String)> = reply
            .ids
            .iter()
            .map(|e| {
                (
                    e.get::<String>("reason").unwrap(),
                    e.get::<String>("event").unwrap(),
                )
            })
            .collect();
        dead.sort_by(|x, y| x.1.cmp(&y.1));
        dead
    }

    async fn count(&mut self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&mut self.admin)
            .await
            .unwrap()
    }

    async fn envelope_of(&mut self, id: i64) -> String {
        sqlx::query_scalar("SELECT envelope FROM tenant_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&mut self.admin)
            .await
            .unwrap()
    }

    async fn outbox_ids(&mut self, tenant: &str) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM tenant_outbox WHERE tenant_id = $1 ORDER BY id")
            .bind(tenant)
            .fetch_all(&mut self.admin)
            .await
            .unwrap()
    }

    /// Runs a worker of [`GROUP`] (built by `build`) with the exactly-once
    /// handler until `effects` effect rows and `dead` dead letters exist
    /// and its streams are drained (bounded), then stops it.
    async fn run_worker(
        &mut self,
        build: impl FnOnce(worker::WorkerBuilder) -> worker::WorkerBuilder,
        client: &redis::Client,
        effects: i64,
        dead: usize,
    ) -> (WorkerStats, u64) {
        let worker = build(Worker::builder(GROUP))
            .start(self.pool.clone(), client)
            .await
            .unwrap();
        let h = self.handlers();
        let handled = h.handled.clone();
        let running = worker_fixture::spawn(worker, move |job| {
            let h = h.clone();
            async move { h.exactly_once(job).await }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = self.count("SELECT count(*) FROM effects").await;
            if n == effects && self.dead_letters().await.len() == dead && self.drained().await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not finish: {n} effects, {:?}",
                self.dead_letters().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stats = running.stop().await.unwrap();
        (stats, handled.load(Ordering::SeqCst))
    }

    /// Every entry of every tenant stream delivered to [`GROUP`] and
    /// acknowledged.
    async fn drained(&self) -> bool {
        let mut conn = self.conn.clone();
        let tenants: Vec<String> = redis::cmd("SMEMBERS")
            .arg("tenant:events:tenants")
            .query_async(&mut conn)
            .await
            .unwrap();
        for t in tenants {
            let groups: Vec<std::collections::HashMap<String, redis::Value>> =
                match redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(format!("tenant:events:t:{t}"))
                    .query_async(&mut conn)
                    .await
                {
                    Ok(g) => g,
                    Err(_) => return false,
                };
            let Some(group) = groups.first() else {
                return false;
            };
            let lag_zero = matches!(group.get("lag"), Some(redis::Value::Int(0)));
            let none_pending = matches!(group.get("pending"), Some(redis::Value::Int(0)));
            if !(lag_zero && none_pending) {
                return false;
            }
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_consistent_envelope_is_dead_lettered_and_counts_nothing() {
    for check_before_handler in [true, false] {
        let mut s = setup().await;
        let (acme, globex) = ("acme", "globex");
        produce(&s.pool, globex, 0, 3).await;
        produce(&s.pool, acme, 0, 1).await;
        s.relay_all().await;
        let globex_ids = s.outbox_ids(globex).await;
        let acme_ids = s.outbox_ids(acme).await;
        let missing = (globex_ids[2] + 1000).to_string();
        let real = globex_ids[0].to_string();
        let acmes = acme_ids[0].to_string();
        let real_envelope = s.envelope_of(globex_ids[0]).await;
        // Into globex's stream, each naming globex consistently:
        let forged = [
            // an id no transaction wrote;
            (missing.as_str(), "effect", envelope(globex, 7)),
            // a real globex id with another payload;
            (real.as_str(), "effect", envelope(globex, 99)),
            // a real globex id and payload under another topic;
            (real.as_str(), "other", real_envelope),
            // acme's real id, claimed for globex.
            (acmes.as_str(), "effect", envelope(globex, 0)),
        ];
        for (event, topic, env) in &forged {
            s.xadd(globex, event, topic, env).await;
        }
        let (stats, handled) = s
            .run_worker(
                |b| b.check_before_handler(check_before_handler),
                &s.client.clone(),
                4,
                4,
            )
            .await;
        assert_eq!(
            audit_effects(&mut s.admin).await,
            (4, 4, 0, 0),
            "the genuine events once each, each in its own tenant"
        );
        let mut expected: Vec<(String, String)> = forged
            .iter()
            .map(|(e, _, _)| ("EVENT_NOT_IN_OUTBOX".to_owned(), e.to_string()))
            .collect();
        expected.sort_by(|x, y| x.1.cmp(&y.1));
        assert_eq!(s.dead_letters().await, expected);
        let odd = s
            .count(
                "SELECT count(*) FROM effects
                  WHERE (tenant_id = 'globex' AND seq NOT IN (0, 1, 2))
                     OR (tenant_id = 'acme' AND seq <> 0)",
            )
            .await;
        assert_eq!(odd, 0, "no forged payload was applied");
        assert_eq!(
            s.count("SELECT count(*) FROM tenant_processed_messages")
                .await,
            4,
            "only the genuine events are recorded"
        );
        assert_eq!((stats.processed, stats.dead_lettered), (4, 4));
        // With the check before the handler, the handler never sees a
        // forgery; without it, `Job::begin` refuses each one.
        let expected_handled = if check_before_handler { 4 } else { 8 };
        assert_eq!(
            handled, expected_handled,
            "check_before_handler={check_before_handler}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_sql_cannot_pre_claim_another_tenants_next_event() {
    let mut s = setup().await;
    let (acme, globex) = ("acme", "globex");
    produce(&s.pool, globex, 0, 1).await;
    produce(&s.pool, acme, 0, 1).await;
    let last: i64 = s.count("SELECT last_value FROM tenant_outbox_id_seq").await;
    let next = last + 1;

    // Inside acme's transaction, SQL claims globex's next ids in the
    // processed table: it can only write acme's rows, which do not collide
    // with globex's.
    let acme_ctx = ctx(acme);
    let mut tx = s.pool.begin(&acme_ctx).await.unwrap();
    let claimed = sqlx::query(
        "INSERT INTO tenant_processed_messages (tenant_id, consumer_group, event_id)
         SELECT 'acme', $1, g FROM generate_series($2::bigint, $2 + 9) g",
    )
    .bind(GROUP)
    .bind(next)
    .execute(&mut tx)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(claimed, 10);
    tx.commit().await.unwrap();
    // Naming globex in the row is refused by the policy; erasing records
    // is not granted.
    let as_globex = format!(
        "INSERT INTO tenant_processed_messages (tenant_id, consumer_group, event_id)
         VALUES ('globex', '{GROUP}', {next})"
    );
    for (sql, refusal) in [
        (as_globex.as_str(), "violates row-level security policy"),
        ("DELETE FROM tenant_processed_messages", "permission denied"),
        (
            "UPDATE tenant_outbox SET envelope = envelope",
            "permission denied",
        ),
    ] {
        let mut tx = s.pool.begin(&acme_ctx).await.unwrap();
        let err = sqlx::query(sql).execute(&mut tx).await.unwrap_err();
        assert!(err.to_string().contains(refusal), "{sql}: {err}");
        tx.rollback().await.unwrap();
    }
    // And a forged entry claiming globex's next id, in globex's stream,
    // ahead of the real event.
    s.xadd(globex, &next.to_string(), "effect", &envelope(globex, 0))
        .await;
    s.relay_all().await;
    let client = s.client.clone();
    let (first, _) = s.run_worker(|b| b, &client, 2, 1).await;
    assert_eq!(
        s.dead_letters().await,
        vec![("EVENT_NOT_IN_OUTBOX".to_owned(), next.to_string())]
    );
    assert_eq!((first.processed, first.dead_lettered), (2, 1));

    // Globex's real event gets that id and is applied exactly once.
    produce(&s.pool, globex, 1, 1).await;
    assert_eq!(*s.outbox_ids(globex).await.last().unwrap(), next);
    s.relay_all().await;
    // A copy of it and the forgery again: neither applies a second time.
    let genuine = s.envelope_of(next).await;
    s.xadd(globex, &next.to_string(), "effect", &genuine).await;
    s.xadd(globex, &next.to_string(), "effect", &envelope(globex, 0))
        .await;
    let (second, _) = s.run_worker(|b| b, &client, 3, 2).await;
    assert_eq!(
        (second.processed, second.duplicates, second.dead_lettered),
        (1, 1, 1)
    );
    let applied: (i64, i64) = sqlx::query_as(
        "SELECT count(*), min(seq) FROM effects WHERE tenant_id = 'globex' AND event_id = $1",
    )
    .bind(next)
    .fetch_one(&mut s.admin)
    .await
    .unwrap();
    assert_eq!(
        applied,
        (1, 1),
        "globex's event applied once, with its payload"
    );
    assert_eq!(audit_effects(&mut s.admin).await.0, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_row_with_another_tenants_next_id_hides_nothing() {
    let mut s = setup().await;
    let next: i64 = s
        .count(
            "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
               FROM tenant_outbox_id_seq",
        )
        .await;
    // Acme's SQL writes an event of its own under globex's next id.
    let acme_ctx = ctx("acme");
    let mut tx = s.pool.begin(&acme_ctx).await.unwrap();
    sqlx::query(
        "INSERT INTO tenant_outbox (tenant_id, id, topic, envelope) VALUES ('acme', $1, 'effect', $2)",
    )
    .bind(next)
    .bind(envelope("acme", 0))
    .execute(&mut tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    produce(&s.pool, "globex", 0, 1).await;
    assert_eq!(s.outbox_ids("globex").await, vec![next]);
    // One row per round: acme's goes first; marking it published must not
    // mark globex's row of the same id.
    let admin = AdminPool::connect(s.db.admin_url()).await.unwrap();
    let mut relay = Relay::builder()
        .batch(1)
        .start(&admin, &s.client)
        .await
        .unwrap();
    while relay.run_once().await.unwrap() > 0 {}
    let client = s.client.clone();
    let (stats, _) = s.run_worker(|b| b, &client, 2, 0).await;
    assert_eq!(stats.processed, 2);
    let applied: Vec<(String, i64)> =
        sqlx::query_as("SELECT tenant_id, event_id FROM effects ORDER BY tenant_id")
            .fetch_all(&mut s.admin)
            .await
            .unwrap();
    assert_eq!(
        applied,
        vec![("acme".to_owned(), next), ("globex".to_owned(), next)],
        "each tenant's event applied once, in its own tenant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_ids_outside_the_outbox_range_are_dead_lettered() {
    let mut s = setup().await;
    produce(&s.pool, "globex", 0, 1).await;
    s.relay_all().await;
    let bad = [
        "0",
        "-1",
        "-9223372036854775808",
        "9223372036854775808",
        "18446744073709551616",
        "+1",
        "01",
        "1.0",
        " 1",
        "",
    ];
    for id in bad {
        s.xadd("globex", id, "effect", &envelope("globex", 0)).await;
    }
    let client = s.client.clone();
    let (stats, handled) = s.run_worker(|b| b, &client, 1, bad.len()).await;
    let mut expected: Vec<(String, String)> = bad
        .iter()
        .map(|id| ("EVENT_ID_INVALID".to_owned(), id.to_string()))
        .collect();
    expected.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(s.dead_letters().await, expected);
    assert_eq!(
        (stats.processed, stats.dead_lettered),
        (1, bad.len() as u64)
    );
    assert_eq!(handled, 1, "no invalid id reached the handler");
    assert_eq!(audit_effects(&mut s.admin).await, (1, 1, 0, 0));
}

/// Every entry of `tenant`'s stream, as (field, value) lists.
async fn entries(s: &Setup, tenant: &str) -> Vec<Vec<(String, String)>> {
    let mut conn = s.conn.clone();
    let all: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("tenant:events:t:{tenant}"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    all.into_iter().map(|(_, fields)| fields).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_old_rows_and_applies_no_pruned_event_again() {
    let mut s = setup().await;
    let t = "tenant-001";
    produce(&s.pool, t, 0, 10).await;
    s.relay_all().await;
    let client = s.client.clone();
    s.run_worker(|b| b, &client, 10, 0).await;
    let old = s.outbox_ids(t).await;
    let copies = entries(&s, t).await;
    assert_eq!(copies.len(), 10);
    // One event published recently and not yet processed, one not
    // published at all though written long ago.
    produce(&s.pool, t, 10, 1).await;
    s.relay_all().await;
    produce(&s.pool, t, 11, 1).await;
    sqlx::query(
        "UPDATE tenant_outbox SET created_at = now() - interval '3 days' WHERE published_at IS NULL",
    )
    .execute(&mut s.admin)
    .await
    .unwrap();
    // The ten processed events were published two days ago; five were
    // processed two days ago, five just now.
    sqlx::query(
        "UPDATE tenant_outbox SET published_at = now() - interval '2 days' WHERE id = ANY($1)",
    )
    .bind(&old)
    .execute(&mut s.admin)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE tenant_processed_messages SET processed_at = now() - interval '2 days'
          WHERE event_id = ANY($1)",
    )
    .bind(&old[..5])
    .execute(&mut s.admin)
    .await
    .unwrap();

    let admin = AdminPool::connect(s.db.admin_url()).await.unwrap();
    let day = Duration::from_secs(86_400);
    let pruned = worker::prune(&admin, day).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            outbox: 10,
            processed: 5
        },
        "the old published rows, and the old records whose row is gone"
    );
    assert_eq!(worker::prune(&admin, day).await.unwrap(), Pruned::default());
    assert_eq!(s.outbox_ids(t).await, vec![old[9] + 1, old[9] + 2]);
    let kept: Vec<i64> =
        sqlx::query_scalar("SELECT event_id FROM tenant_processed_messages ORDER BY event_id")
            .fetch_all(&mut s.admin)
            .await
            .unwrap();
    assert_eq!(kept, old[5..].to_vec(), "recent records are kept");

    // The stream still holds the ten old entries: deliver them all again,
    // plus forgeries naming a pruned id without a record and one with.
    for fields in &copies {
        let get = |k: &str| fields.iter().find(|f| f.0 == k).unwrap().1.clone();
        s.xadd(t, &get("event"), &get("topic"), &get("envelope"))
            .await;
    }
    s.xadd(t, &old[0].to_string(), "effect", &envelope(t, 99))
        .await;
    s.xadd(t, &old[6].to_string(), "effect", &envelope(t, 98))
        .await;
    s.relay_all().await; // the unpublished event
    let (stats, _) = s.run_worker(|b| b, &client, 12, 6).await;
    assert_eq!(
        (stats.processed, stats.duplicates, stats.dead_lettered),
        (2, 6, 6),
        "the two new events applied; pruned events with a record acknowledged; \
         the rest dead-lettered"
    );
    let mut expected: Vec<(String, String)> = old[..5]
        .iter()
        .chain(std::iter::once(&old[0]))
        .map(|id| ("EVENT_NOT_IN_OUTBOX".to_owned(), id.to_string()))
        .collect();
    expected.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(s.dead_letters().await, expected);
    assert_eq!(
        audit_effects(&mut s.admin).await,
        (12, 12, 0, 0),
        "every event once, none again"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM effects WHERE seq > 11").await,
        0,
        "no forged payload applied"
    );

    // A relay with a retention prunes as it runs.
    sqlx::raw_sql(
        "UPDATE tenant_outbox SET published_at = now() - interval '2 days';
         UPDATE tenant_processed_messages SET processed_at = now() - interval '2 days';",
    )
    .execute(&mut s.admin)
    .await
    .unwrap();
    let relay = Relay::builder()
        .retention(day)
        .start(&admin, &s.client)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    while s
        .count("SELECT (SELECT count(*) FROM tenant_outbox) + (SELECT count(*) FROM tenant_processed_messages)")
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "the relay did not prune");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_redis_user_cannot_write_into_the_tenant_streams() {
    let mut s = setup().await;
    let mut relay_rules = vec!["on".to_owned(), ">relay-secret".to_owned()];
    relay_rules.extend(relay_acl(DEFAULT_PREFIX));
    let mut consumer_rules = vec!["on".to_owned(), ">consumer-secret".to_owned()];
    consumer_rules.extend(consumer_acl(DEFAULT_PREFIX));
    s.redis
        .acl_setuser("relay", &refs(&relay_rules))
        .await
        .unwrap();
    s.redis
        .acl_setuser("consumer", &refs(&consumer_rules))
        .await
        .unwrap();
    let relay_client = redis::Client::open(s.redis.url_as("relay", "relay-secret")).unwrap();
    let consumer_client =
        redis::Client::open(s.redis.url_as("consumer", "consumer-secret")).unwrap();

    // The pipeline works end to end with these users: the relay publishes,
    // the consumer reads, acknowledges and dead-letters a forgery.
    produce(&s.pool, "acme", 0, 3).await;
    let admin = AdminPool::connect(s.db.admin_url()).await.unwrap();
    let mut relay = Relay::builder().start(&admin, &relay_client).await.unwrap();
    while relay.run_once().await.unwrap() > 0 {}
    s.xadd("acme", "999999", "effect", &envelope("acme", 5))
        .await;
    let (stats, _) = s.run_worker(|b| b, &consumer_client, 3, 1).await;
    assert_eq!((stats.processed, stats.dead_lettered), (3, 1));

    let stream = "tenant:events:t:acme";
    let mut consumer = consumer_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let refused = [
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("event")
            .arg("1")
            .arg("envelope")
            .arg(envelope("acme", 1))
            .clone(),
        redis::cmd("XADD")
            .arg("tenant:events:t:new-tenant")
            .arg("*")
            .arg("event")
            .arg("1")
            .clone(),
        redis::cmd("XDEL").arg(stream).arg("0-1").clone(),
        redis::cmd("XTRIM").arg(stream).arg("MAXLEN").arg(0).clone(),
        redis::cmd("DEL").arg(stream).clone(),
        redis::cmd("XGROUP")
            .arg("SETID")
            .arg(stream)
            .arg(GROUP)
            .arg("0")
            .clone(),
        redis::cmd("SADD")
            .arg("tenant:events:tenants")
            .arg("new-tenant")
            .clone(),
    ];
    for cmd in &refused {
        let err = cmd
            .query_async::<redis::Value>(&mut consumer)
            .await
            .expect_err("the consumer's user is refused");
        assert_eq!(err.code(), Some("NOPERM"), "{err}");
    }
    // What it needs is allowed: the dead-letter stream.
    let _: String = redis::cmd("XADD")
        .arg("tenant:events:dead")
        .arg("*")
        .arg("reason")
        .arg("TEST")
        .query_async(&mut consumer)
        .await
        .unwrap();

    // The relay's user writes the streams but reads no group, and touches
    // no other key.
    let mut relay_conn = relay_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let refused = [
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("x")
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .clone(),
        redis::cmd("XACK").arg(stream).arg(GROUP).arg("0-1").clone(),
        redis::cmd("XADD")
            .arg("tenant:events:dead")
            .arg("*")
            .arg("a")
            .arg("b")
            .clone(),
        redis::cmd("GET").arg("processed:1").clone(),
    ];
    for cmd in &refused {
        let err = cmd
            .query_async::<redis::Value>(&mut relay_conn)
            .await
            .expect_err("the relay's user is refused");
        assert_eq!(err.code(), Some("NOPERM"), "{err}");
    }
    assert_eq!(audit_effects(&mut s.admin).await, (3, 3, 0, 0));
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
