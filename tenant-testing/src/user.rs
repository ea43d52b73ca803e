//! The OS user the throwaway servers run as: PostgreSQL and PgBouncer refuse
//! to run as root, so a root process runs them as the `postgres` OS user
//! through `setpriv` (a fresh machine has no `sudo`).

use super::HarnessError;

/// The command line prefix that runs a program as the `postgres` OS user.
pub(super) const SETPRIV: [&str; 5] = [
    "setpriv",
    "--reuid=postgres",
    "--regid=postgres",
    "--init-groups",
    "--",
];

#[cfg(unix)]
pub(super) use unix::{run_as_postgres, RunAs};

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::process::Command;

    use super::HarnessError;

    /// The `postgres` OS user, to run the servers as when this process is
    /// root.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct RunAs {
        uid: u32,
        gid: u32,
    }

    impl RunAs {
        /// Gives `path` to the `postgres` user; `action` names the step in
        /// the error.
        pub(crate) fn chown(&self, path: &Path, action: &'static str) -> Result<(), HarnessError> {
            std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
                .map_err(HarnessError::io(action))
        }
    }

    /// The `postgres` OS user when this process is root, `None` otherwise.
    pub(crate) fn run_as_postgres() -> Result<Option<RunAs>, HarnessError> {
        // `/proc/self` belongs to the effective user: no `unsafe` geteuid needed.
        let euid = std::fs::metadata("/proc/self")
            .map_err(HarnessError::io("read /proc/self"))?
            .uid();
        if euid != 0 {
            return Ok(None);
        }
        let id = |flag: &str| -> Result<u32, HarnessError> {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .map_err(HarnessError::io("run `id postgres`"))?;
            if !out.status.success() {
                return Err(HarnessError::NoPostgresUser);
            }
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .map_err(|_| HarnessError::NoPostgresUser)
        };
        Ok(Some(RunAs {
            uid: id("-u")?,
            gid: id("-g")?,
        }))
    }
}

#[cfg(not(unix))]
pub(super) use other::{run_as_postgres, RunAs};

#[cfg(not(unix))]
mod other {
    use std::path::Path;

    use super::HarnessError;

    /// There is no root to step down from elsewhere: never a value.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum RunAs {}

    impl RunAs {
        pub(crate) fn chown(
            &self,
            _path: &Path,
            _action: &'static str,
        ) -> Result<(), HarnessError> {
            match *self {}
        }
    }

    pub(crate) fn run_as_postgres() -> Result<Option<RunAs>, HarnessError> {
        Ok(None)
    }
}
