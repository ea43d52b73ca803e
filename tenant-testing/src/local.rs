//! A throwaway cluster started by this process: `initdb`, then `postgres`
//! under a [`Watchdog`], listening on a Unix socket in a private directory
//! (see the [module documentation](super)). Unix only: elsewhere
//! [`LocalServer::spawn`] fails with [`HarnessError::Unsupported`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::user::{run_as_postgres, RunAs, SETPRIV};
use super::watchdog::{logged_to, Script, Watchdog};
use super::{HarnessError, DEFAULT_BIN_DIR};

/// Starts the server in the background (its output to `server.log`, see
/// [`logged_to`]) and, on end-of-file, stops it with `SIGQUIT` (an
/// immediate shutdown).
const WATCHDOG: Script = Script {
    start: r#""$@" &
pg=$!
"#,
    stop: r#"kill -QUIT "$pg" 2>/dev/null
wait "$pg" 2>/dev/null
"#,
};

pub(super) struct LocalServer {
    /// Data, socket and log.
    pub(super) dir: PathBuf,
    /// Stops the server and removes `dir` when dropped.
    _watchdog: Watchdog,
}

impl LocalServer {
    /// `settings` go on the server's command line after the harness's own,
    /// so that they win for the same name.
    pub(super) fn spawn(
        bin_dir: Option<&Path>,
        settings: &[(String, String)],
    ) -> Result<LocalServer, HarnessError> {
        if !cfg!(unix) {
            return Err(HarnessError::Unsupported {
                what: "PostgreSQL cluster",
            });
        }
        let bin = find_bin_dir(bin_dir)?;
        let run_as = run_as_postgres()?;
        let dir = tempfile::Builder::new()
            .prefix("tenant-pg-")
            .tempdir()
            .map_err(HarnessError::io("create a temporary directory"))?
            .keep();
        match Self::spawn_in(&bin, run_as.as_ref(), &dir, settings) {
            Ok(server) => Ok(server),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn spawn_in(
        bin: &Path,
        run_as: Option<&RunAs>,
        dir: &Path,
        settings: &[(String, String)],
    ) -> Result<LocalServer, HarnessError> {
        if let Some(user) = run_as {
            user.chown(dir, "give the cluster directory to `postgres`")?;
        }
        let data = dir.join("data");
        let command = |program: &Path| -> Command {
            let mut c = match run_as {
                Some(_) => {
                    let mut c = Command::new(SETPRIV[0]);
                    c.args(&SETPRIV[1..]).arg(program);
                    c
                }
                None => Command::new(program),
            };
            // The server user may not be able to enter the caller's cwd.
            c.current_dir(dir);
            c
        };

        let out = command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(HarnessError::io("run initdb"))?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                program: "initdb".into(),
                status: out.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }

        let mut args: Vec<OsString> = Vec::new();
        if run_as.is_some() {
            args.extend(SETPRIV.map(OsString::from));
        }
        args.extend(logged_to(&dir.join("server.log")));
        args.push(bin.join("postgres").into_os_string());
        args.extend([
            "-D".into(),
            data.into_os_string(),
            "-k".into(),
            dir.as_os_str().to_owned(),
        ]);
        args.extend(
            [
                "-p",
                "5432",
                "-c",
                "listen_addresses=",
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ]
            .map(OsString::from),
        );
        for (name, value) in settings {
            args.push("-c".into());
            args.push(format!("{name}={value}").into());
        }
        let watchdog = Watchdog::spawn(
            "tenant-pg-watchdog",
            &WATCHDOG,
            dir,
            args,
            "start the server watchdog (sh)",
        )?;
        Ok(LocalServer {
            dir: dir.to_owned(),
            _watchdog: watchdog,
        })
    }
}

fn find_bin_dir(explicit: Option<&Path>) -> Result<PathBuf, HarnessError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = explicit {
        candidates.push(d.to_owned());
    } else {
        if let Some(d) = std::env::var_os("PG_BIN_DIR") {
            candidates.push(d.into());
        }
        candidates.push(DEFAULT_BIN_DIR.into());
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
    }
    candidates
        .iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .cloned()
        .ok_or_else(|| HarnessError::BinariesMissing {
            searched: candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
