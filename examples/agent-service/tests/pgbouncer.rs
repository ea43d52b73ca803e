//! `TRANSACTION_POOLER=1`, as a user runs it: the binary starts a
//! throwaway PgBouncer in transaction mode in front of its throwaway
//! PostgreSQL, says so in one `INFO` line, and warns about nothing. Two
//! tenants write and read through it, each seeing only its own messages,
//! and the summary worker (on the same pool) keeps its count.
//!
//! That the tenant traffic goes through PgBouncer, and not around it: once
//! that PgBouncer is stopped, the next tenant request fails with
//! `500 DATABASE_ERROR` while `/status`, which needs no database, is still
//! served. A pool connected to PostgreSQL directly would go on serving.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::Running;
use common::{call, contents};

/// The directory of the throwaway PgBouncer, from the start-up line that
/// names it (`pgbouncer=/tmp/tenant-pgb-…`).
fn pgbouncer_dir(service: &Running) -> PathBuf {
    let line = service.line("runs behind PgBouncer in transaction mode");
    assert!(line.contains(" INFO "), "{line}");
    let dir = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("pgbouncer="))
        .unwrap_or_else(|| panic!("no pgbouncer= field in {line:?}"));
    PathBuf::from(dir)
}

/// The process id of the `pgbouncer` running with the configuration in
/// `dir` (the watchdog shell that started it names the file too, but is
/// not `pgbouncer`).
fn pgbouncer_pid(dir: &Path) -> u32 {
    let config = dir.join("pgbouncer.ini").display().to_string();
    let entries = std::fs::read_dir("/proc").expect("/proc");
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_pgbouncer = args.first()?.ends_with("pgbouncer");
            (is_pgbouncer && args.contains(&config)).then_some(pid)
        })
        .next()
        .unwrap_or_else(|| panic!("no pgbouncer process runs {config}"))
}

fn conversation(authorization: &str) -> [(&'static str, &str); 2] {
    [
        ("Authorization", authorization),
        ("X-Conversation-ID", "conv-1"),
    ]
}

#[tokio::test]
async fn tenant_traffic_goes_through_a_throwaway_pgbouncer() {
    let service = Running::start(&[("TRANSACTION_POOLER", "1")]);
    assert_eq!(
        service.warnings(),
        Vec::<&String>::new(),
        "start-up: {:#?}",
        service.start_up
    );
    assert!(
        service
            .line("data:")
            .contains("PgBouncer in transaction mode"),
        "{:#?}",
        service.start_up
    );
    let dir = pgbouncer_dir(&service);
    let addr = service.addr();
    let acme = format!("Bearer {}", service.token("ACME"));
    let globex = format!("Bearer {}", service.token("GLOBEX"));
    let path = "/api/agents/agent-7/messages";

    let (status, body) = call(
        addr,
        "POST",
        path,
        &conversation(&acme),
        Some(r#"{"content":"hello through PgBouncer"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(addr, "GET", path, &conversation(&acme), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body), ["hello through PgBouncer"]);
    let (status, body) = call(addr, "GET", path, &conversation(&globex), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body), Vec::<String>::new());

    // The worker's transactions go through the pooler too.
    let summary = "/api/agents/agent-7/summary";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call(addr, "GET", summary, &conversation(&acme), None).await;
        if status == 200 {
            assert_eq!(body["message_count"], 1, "{body}");
            break;
        }
        assert_eq!(status, 404, "{body}");
        assert!(Instant::now() < deadline, "no summary: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stop that PgBouncer: the tenant pool has no other way in.
    let pid = pgbouncer_pid(&dir);
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let socket = dir.join(".s.PGSQL.6432");
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() {
        assert!(Instant::now() < deadline, "PgBouncer did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = call(addr, "GET", path, &conversation(&acme), None).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "DATABASE_ERROR");
    let (status, body) = call(addr, "GET", "/status", &[], None).await;
    assert_eq!(status, 200, "{body}");

    let (exit, rest) = service.terminate();
    assert!(exit.success(), "exit status {exit:?}; output: {rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("agent-service stopped")),
        "{rest:?}"
    );
}
