//! The `sh` watchdog that supervises every throwaway server (PostgreSQL,
//! PgBouncer, Redis); how it works is told once, in the
//! [module documentation](super#stopping-the-server).
//!
//! Each server gives its own [`Script`]: how to start it in the background
//! and how to stop it. The rest is the same for all three and lives here:
//! the server's directory is `$1` and its command line the remaining
//! arguments (`"$@"`); the watchdog reads its standard input, a pipe held by
//! this process, to end-of-file, runs the server's stop commands, then
//! removes the directory. It runs in a process group of its own, so that a
//! Ctrl-C aimed at `cargo test` does not kill it before it has cleaned up.

use super::HarnessError;

/// What is specific to one server in its watchdog script.
#[derive(Debug, Clone, Copy)]
pub(super) struct Script {
    /// Starts the server in the background: its command line is `"$@"` and
    /// its directory `$dir`; keeps whatever `stop` needs (a pid).
    pub(super) start: &'static str,
    /// Stops the server once the pipe is closed; the directory is removed
    /// after it.
    pub(super) stop: &'static str,
}

/// The start of a command line that sends the server's output to `log`,
/// opened by the server's own user: `sh -c 'exec "$@" >"$0" 2>&1' <log>`,
/// followed by the server's program and arguments (after `setpriv` when
/// the server runs as `postgres`). The watchdog's shell runs as the caller,
/// root included, and the server's directory belongs to the server's user:
/// a log the watchdog opened there could be a symlink that user planted,
/// and root would write the server's output into the file it points to.
pub(super) fn logged_to(log: &std::path::Path) -> [std::ffi::OsString; 4] {
    [
        "/bin/sh".into(),
        "-c".into(),
        r#"exec "$@" >"$0" 2>&1"#.into(),
        log.as_os_str().to_owned(),
    ]
}

impl Script {
    /// The whole `sh` script.
    fn text(&self) -> String {
        format!(
            "dir=$1; shift\n{start}cat >/dev/null\n{stop}rm -rf \"$dir\"\n",
            start = self.start,
            stop = self.stop
        )
    }
}

#[cfg(unix)]
pub(super) use unix::Watchdog;

#[cfg(unix)]
mod unix {
    use std::ffi::OsStr;
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::{Child, ChildStdin, Command, Stdio};

    use super::{HarnessError, Script};

    /// A running watchdog. Dropping it closes the pipe and waits until the
    /// watchdog has stopped the server and removed its directory.
    #[derive(Debug)]
    pub(crate) struct Watchdog {
        child: Child,
        /// Closing this pipe is what tells the watchdog to stop the server.
        lifeline: Option<ChildStdin>,
    }

    impl Watchdog {
        /// Starts `sh -c <script> <name> <dir> <command...>` in `dir`, in a
        /// process group of its own, with a pipe from this process as its
        /// standard input. `action` names the step in the error.
        pub(crate) fn spawn<I, S>(
            name: &str,
            script: &Script,
            dir: &Path,
            command: I,
            action: &'static str,
        ) -> Result<Watchdog, HarnessError>
        where
            I: IntoIterator<Item = S>,
            S: AsRef<OsStr>,
        {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(script.text())
                .arg(name)
                .arg(dir)
                .args(command)
                .current_dir(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(HarnessError::io(action))?;
            let lifeline = child.stdin.take();
            Ok(Watchdog { child, lifeline })
        }
    }

    impl Drop for Watchdog {
        fn drop(&mut self) {
            drop(self.lifeline.take());
            // Waiting makes drop mean "stopped and removed" for the caller;
            // the watchdog only has to stop the server and `rm -rf`.
            let _ = self.child.wait();
        }
    }
}

#[cfg(not(unix))]
pub(super) use other::Watchdog;

#[cfg(not(unix))]
mod other {
    use std::ffi::OsStr;
    use std::path::Path;

    use super::{HarnessError, Script};

    /// Elsewhere there is no watchdog: every throwaway server refuses to
    /// start with [`HarnessError::Unsupported`] before it gets here.
    #[derive(Debug)]
    pub(crate) enum Watchdog {}

    impl Watchdog {
        pub(crate) fn spawn<I, S>(
            name: &str,
            script: &Script,
            dir: &Path,
            command: I,
            action: &'static str,
        ) -> Result<Watchdog, HarnessError>
        where
            I: IntoIterator<Item = S>,
            S: AsRef<OsStr>,
        {
            let _ = (name, script.text(), dir, command, action);
            Err(HarnessError::Unsupported { what: "server" })
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_script_frames_the_server_specific_part() {
        let s = Script {
            start: "\"$@\" &\npid=$!\n",
            stop: "kill \"$pid\"\n",
        };
        assert_eq!(
            s.text(),
            "dir=$1; shift\n\"$@\" &\npid=$!\ncat >/dev/null\nkill \"$pid\"\nrm -rf \"$dir\"\n"
        );
    }

    #[test]
    fn dropping_the_watchdog_stops_the_server_and_removes_the_directory() {
        let dir = tempfile::Builder::new()
            .prefix("tenant-watchdog-test-")
            .tempdir()
            .unwrap()
            .keep();
        let script = Script {
            start: "\"$@\" &\npid=$!\n",
            stop: "kill \"$pid\" 2>/dev/null\nwait \"$pid\" 2>/dev/null\n",
        };
        let watchdog = Watchdog::spawn(
            "tenant-watchdog-test",
            &script,
            &dir,
            ["sleep", "600"],
            "start the test watchdog",
        )
        .unwrap();
        assert!(dir.is_dir());
        drop(watchdog);
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
}
