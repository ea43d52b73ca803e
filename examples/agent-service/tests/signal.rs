//! The service binary stops cleanly on SIGTERM, as on Ctrl-C: it prints
//! that it stopped and exits 0 (a service manager's stop, not a crash).
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_the_service_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agent-service"))
        .env("BIND", "127.0.0.1:0")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ready = false;
    for line in lines.by_ref() {
        let line = line.expect("utf-8 output");
        if line.contains("stops it") {
            ready = true;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not start in time"
        );
    }
    assert!(ready, "the service exited before it was ready");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().expect("the service exits");
    assert!(
        exit.success(),
        "exit status {exit:?}; output after SIGTERM: {rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("agent-service stopped")),
        "{rest:?}"
    );
}
