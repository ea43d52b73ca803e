//! A throwaway Redis server for tests and demos.
//!
//! [`TestRedis::start`] runs Debian's `redis-server` (`apt-get install
//! redis-server`; `REDIS_SERVER` names another binary) the way
//! [`TestCluster`](super::TestCluster) runs PostgreSQL:
//!
//! * it listens on a Unix socket inside a fresh private directory only
//!   (`port 0`, socket mode `0700`): no TCP port, nothing reachable from the
//!   network, no port races between test binaries;
//! * it keeps an append-only file fsynced on every write, so a crash and a
//!   [`restart`](TestRedis::restart) lose nothing that was acknowledged;
//! * the `sh` watchdog that supervises every throwaway server (see
//!   "Stopping the server" in the [`testing`](super) documentation) also
//!   restarts this one if it dies; on end-of-file (the `TestRedis` dropped,
//!   or this process ending in any way, `SIGKILL` included) it stops it and
//!   removes the directory.
//!
//! ```no_run
//! use tenant_testing::redis::TestRedis;
//!
//! # async fn demo() -> Result<(), tenant_testing::HarnessError> {
//! let redis = TestRedis::start().await?;
//! println!("{}", redis.url()); // redis+unix:///tmp/tenant-redis-…/redis.sock
//! redis.restart().await?; // kill -9, then the watchdog starts it again
//! # Ok(()) }
//! ```
//!
//! [`acl_setuser`](TestRedis::acl_setuser) adds Redis ACL users (kept in the
//! server's ACL file, so a restart keeps them) and
//! [`url_as`](TestRedis::url_as) gives the URL that logs in as one.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::watchdog::{Script, Watchdog};
use super::HarnessError;

/// The server binary used unless `REDIS_SERVER` names another.
pub const DEFAULT_REDIS_SERVER: &str = "redis-server";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the server in a loop that restarts it when it dies; on end-of-file,
/// ends the loop and kills the server.
const WATCHDOG: Script = Script {
    start: r#"(
  while [ ! -e "$dir/stopping" ]; do
    "$@" >>"$dir/server.log" 2>&1
    sleep 0.05
  done
) &
loop=$!
"#,
    stop: r#"touch "$dir/stopping"
[ -f "$dir/redis.pid" ] && kill -9 "$(cat "$dir/redis.pid")" 2>/dev/null
wait "$loop" 2>/dev/null
"#,
};

/// A throwaway Redis server; see the [module documentation](self).
pub struct TestRedis {
    dir: PathBuf,
    /// Stops the server and removes `dir` when dropped.
    _watchdog: Watchdog,
}

impl fmt::Debug for TestRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestRedis").field("dir", &self.dir).finish()
    }
}

impl TestRedis {
    /// Starts a throwaway server and waits until it answers `PING`.
    pub async fn start() -> Result<TestRedis, HarnessError> {
        let redis = tokio::task::spawn_blocking(Self::spawn)
            .await
            .map_err(|e| HarnessError::Io {
                action: "run the Redis start-up task",
                source: Arc::new(io::Error::other(e.to_string())),
            })??;
        redis.wait_ready(None).await?;
        Ok(redis)
    }

    /// The `redis+unix://` URL of the server, for `redis::Client::open`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// The directory holding the socket, the append-only file and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server with `SIGKILL` (a crash, not a clean shutdown) and
    /// waits until the watchdog has started it again from its append-only
    /// file. Clients see their connections drop.
    pub async fn restart(&self) -> Result<(), HarnessError> {
        let old = self.pid().ok_or_else(|| HarnessError::NotReady {
            log: "redis.pid missing: the server is not running".into(),
        })?;
        let status = Command::new("kill")
            .args(["-9", &old.to_string()])
            .status()
            .map_err(HarnessError::io("run kill"))?;
        if !status.success() {
            return Err(HarnessError::Command {
                program: "kill".into(),
                status: status.to_string(),
                output: String::new(),
            });
        }
        self.wait_ready(Some(old)).await
    }

    /// The `redis+unix://` URL that logs in as ACL user `user` with
    /// `password` (see [`acl_setuser`](Self::acl_setuser)).
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "{}?user={}&pass={}",
            self.url(),
            percent_encode(user),
            percent_encode(password)
        )
    }

    /// Creates or changes ACL user `user` with `rules` (`ACL SETUSER user
    /// rules…`, e.g. `["on", ">secret", "resetkeys", "~app:*", "+get"]`),
    /// then saves the ACL file so a [`restart`](Self::restart) keeps it.
    /// The default user is left as it is (the socket is private to this
    /// process's user).
    ///
    /// A rule the server refuses is [`HarnessError::Command`] with the
    /// server's error.
    pub async fn acl_setuser(&self, user: &str, rules: &[&str]) -> Result<(), HarnessError> {
        let mut setuser = vec!["ACL", "SETUSER", user];
        setuser.extend_from_slice(rules);
        command(&self.socket(), &setuser)?;
        command(&self.socket(), &["ACL", "SAVE"])?;
        Ok(())
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("redis.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Waits for `PONG` from a server whose pid is not `not_pid`.
    async fn wait_ready(&self, not_pid: Option<u32>) -> Result<(), HarnessError> {
        let started = Instant::now();
        loop {
            let fresh = not_pid.is_none() || self.pid().is_some_and(|p| Some(p) != not_pid);
            if fresh && ping(&self.socket()) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(HarnessError::NotReady {
                    log: super::tail(&self.dir.join("server.log")),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn spawn() -> Result<TestRedis, HarnessError> {
        if !cfg!(unix) {
            return Err(HarnessError::Unsupported {
                what: "Redis server",
            });
        }
        let server =
            std::env::var("REDIS_SERVER").unwrap_or_else(|_| DEFAULT_REDIS_SERVER.to_owned());
        let found = Command::new(&server)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Err(HarnessError::BinariesMissing {
                searched: format!(
                    "{server} (install it with `apt-get install redis-server`, \
                     or name the binary in REDIS_SERVER)"
                ),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("tenant-redis-")
            .tempdir()
            .map_err(HarnessError::io("create a temporary directory"))?
            .keep();
        let acl = dir.join("users.acl");
        if let Err(e) = std::fs::write(&acl, "") {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(HarnessError::io("create the Redis ACL file")(e));
        }
        let mut command: Vec<OsString> = vec![server.into(), "--port".into(), "0".into()];
        command.extend([
            "--aclfile".into(),
            acl.into(),
            "--unixsocket".into(),
            dir.join("redis.sock").into(),
            "--unixsocketperm".into(),
            "700".into(),
            "--dir".into(),
            dir.clone().into(),
            "--pidfile".into(),
            dir.join("redis.pid").into(),
        ]);
        command.extend(
            [
                "--daemonize",
                "no",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--loglevel",
                "warning",
            ]
            .map(OsString::from),
        );
        let watchdog = match Watchdog::spawn(
            "tenant-redis-watchdog",
            &WATCHDOG,
            &dir,
            command,
            "start the Redis watchdog (sh)",
        ) {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        Ok(TestRedis {
            dir,
            _watchdog: watchdog,
        })
    }
}

/// Whether a Redis server answers `PING` on `socket`.
#[cfg(unix)]
fn ping(socket: &Path) -> bool {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    let Ok(mut s) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// Sends one command (as a RESP array) and reads a one-line reply; an
/// error reply is [`HarnessError::Command`].
#[cfg(unix)]
fn command(socket: &Path, args: &[&str]) -> Result<String, HarnessError> {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    let mut s = UnixStream::connect(socket).map_err(HarnessError::io("connect to Redis"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(HarnessError::io("set a Redis read timeout"))?;
    s.write_all(&request)
        .map_err(HarnessError::io("send a Redis command"))?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            Ok(_) => break,
            Err(e) => return Err(HarnessError::io("read a Redis reply")(e)),
        }
    }
    let reply = String::from_utf8_lossy(&reply).trim_end().to_owned();
    if reply.starts_with('-') || reply.is_empty() {
        return Err(HarnessError::Command {
            program: format!("redis {}", args[..2.min(args.len())].join(" ")),
            status: reply,
            output: String::new(),
        });
    }
    Ok(reply)
}

#[cfg(not(unix))]
fn command(_socket: &Path, _args: &[&str]) -> Result<String, HarnessError> {
    Err(HarnessError::Unsupported {
        what: "Redis server",
    })
}

/// `%XX` for every byte but unreserved ones (RFC 3986), for URL queries.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// No Unix sockets: never reached, [`TestRedis::start`] refuses first.
#[cfg(not(unix))]
fn ping(_socket: &Path) -> bool {
    false
}
