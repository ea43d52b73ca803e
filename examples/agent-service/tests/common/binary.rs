//! The service binary, as a user runs it: started with some environment,
//! its start-up output read up to the line that says it is ready, then
//! stopped with SIGTERM.

use std::io::{BufRead, BufReader, Lines};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `agent-service` and what it printed while starting (its logs
/// and its instructions: both go to standard output).
pub struct Running {
    child: Child,
    rest: Lines<BufReader<ChildStdout>>,
    /// Every line printed up to and including the ready line.
    pub start_up: Vec<String>,
}

impl Running {
    /// Starts the binary on a free port with a throwaway PostgreSQL and
    /// Redis, plus `env`, and waits (at most two minutes) until it is
    /// ready.
    pub fn start(env: &[(&str, &str)]) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agent-service"));
        command
            .env("BIND", "127.0.0.1:0")
            .env_remove("DATABASE_URL")
            .env_remove("TRANSACTION_POOLER")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut start_up = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("utf-8 output");
            let ready = line.contains("stops it");
            start_up.push(line);
            if ready {
                return Running {
                    child,
                    rest: lines,
                    start_up,
                };
            }
            assert!(
                Instant::now() < deadline,
                "the service did not start in time: {start_up:#?}"
            );
        }
        let exit = child.wait();
        panic!("the service exited before it was ready ({exit:?}): {start_up:#?}");
    }

    /// The first start-up line containing `text`.
    pub fn line(&self, text: &str) -> &str {
        self.start_up
            .iter()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no start-up line contains {text:?}: {:#?}", self.start_up))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        let line = self.line("listening on http://");
        line.rsplit("http://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// The bearer token it printed as `export {NAME}=…`.
    pub fn token(&self, name: &str) -> String {
        let prefix = format!("export {name}=");
        let line = self.line(&prefix);
        line.trim()
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("no token in {line:?}"))
            .to_owned()
    }

    /// The start-up lines logged at `WARN` or `ERROR`, except sqlx's
    /// slow-statement warnings: whether a statement takes longer than a
    /// second depends on the machine's load, not on the service.
    pub fn warnings(&self) -> Vec<&String> {
        self.start_up
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .filter(|l| !l.contains("slow statement"))
            .collect()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status and
    /// what it printed after start-up.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let rest: Vec<String> = self.rest.by_ref().map_while(Result::ok).collect();
        let exit = self.child.wait().expect("the service exits");
        (exit, rest)
    }
}

impl Drop for Running {
    /// A test that failed half-way does not leave the service running; its
    /// throwaway servers stop with it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
