//! The PostgreSQL harness: it starts, its application role cannot bypass
//! RLS and owns nothing, and it cleans up after itself.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tenant_testing::{HarnessError, TestCluster, APP_ROLE, OWNER_ROLE};

#[tokio::test]
async fn app_role_is_neither_superuser_nor_bypassrls() {
    let cluster = TestCluster::shared().await.unwrap();
    let db = cluster.create_database().await.unwrap();
    let mut app = PgConnection::connect(db.app_url()).await.unwrap();
    let (user, bypass, sup): (String, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert_eq!(user, APP_ROLE);
    assert!(!bypass, "the application role must not bypass RLS");
    assert!(!sup, "the application role must not be a superuser");

    let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
    let (user, bypass, sup): (String, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!((user.as_str(), bypass, sup), (OWNER_ROLE, false, false));
}

#[tokio::test]
async fn app_role_owns_nothing_and_cannot_create_tables() {
    let cluster = TestCluster::shared().await.unwrap();
    let db = cluster.create_database().await.unwrap();
    let mut owner = PgConnection::connect(db.owner_url()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (tenant_id text NOT NULL)")
        .execute(&mut owner)
        .await
        .expect("the owner role creates tables");

    let mut app = PgConnection::connect(db.app_url()).await.unwrap();
    let owned: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid) \
              + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) \
              + (SELECT count(*) FROM pg_database WHERE datdba = r.oid) \
         FROM pg_roles r WHERE rolname = current_user",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert_eq!(
        owned, 0,
        "the application role owns no table, schema or database"
    );
    let err = sqlx::raw_sql("CREATE TABLE mine (x int)")
        .execute(&mut app)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501"),
        "insufficient_privilege: {err}"
    );
}

#[tokio::test]
async fn each_database_is_separate() {
    let cluster = TestCluster::shared().await.unwrap();
    let a = cluster.create_database().await.unwrap();
    let b = cluster.create_database().await.unwrap();
    assert_ne!(a.name(), b.name());
    let mut owner_a = PgConnection::connect(a.owner_url()).await.unwrap();
    sqlx::raw_sql("CREATE TABLE only_in_a (x int)")
        .execute(&mut owner_a)
        .await
        .unwrap();
    let mut owner_b = PgConnection::connect(b.owner_url()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'")
        .fetch_one(&mut owner_b)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn dropping_a_cluster_stops_the_server_and_removes_its_directory() {
    let cluster = TestCluster::start().await.unwrap();
    let dir = cluster
        .dir()
        .expect("a throwaway cluster has a directory")
        .to_owned();
    let url = cluster.admin_url();
    assert!(dir.join("data").join("PG_VERSION").is_file());
    PgConnection::connect(&url)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();

    drop(cluster);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "the server still accepts connections"
    );
}

#[tokio::test]
async fn missing_binaries_say_how_to_install_them() {
    let err = TestCluster::builder()
        .bin_dir("/nonexistent/postgresql/bin")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, HarnessError::BinariesMissing { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "HARNESS_BINARIES_MISSING");
    assert!(
        err.to_string().contains("apt-get install postgresql-15"),
        "{err}"
    );
}

const CHILD_ENV: &str = "TENANT_HARNESS_CHILD";

/// Run by `the_shared_cluster_is_removed_when_the_process_exits` in a child
/// process: starts the shared cluster, prints its directory and exits without
/// any destructor running for the `static`.
#[tokio::test]
#[ignore = "helper run in a child process"]
async fn child_starts_the_shared_cluster_and_exits() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = TestCluster::shared().await.unwrap();
    println!("CLUSTER_DIR={}", cluster.dir().unwrap().display());
}

#[test]
fn the_shared_cluster_is_removed_when_the_process_exits() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_starts_the_shared_cluster_and_exits",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env_remove("TENANT_TESTING_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut dir = None;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        // libtest prints the test name on the same line before the output.
        if let Some((_, d)) = line.unwrap().split_once("CLUSTER_DIR=") {
            dir = Some(PathBuf::from(d.trim()));
        }
    }
    assert!(child.wait().unwrap().success(), "the child test passed");
    let dir = dir.expect("the child printed its cluster directory");
    // The child has exited (its stdout closed); the watchdog now stops the
    // server and removes the directory. Give it a generous bound.
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// The uid of the OS user `postgres`, from `/etc/passwd`.
fn postgres_uid() -> Option<u32> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("postgres:"))
        .and_then(|rest| rest.split(':').nth(1)?.parse().ok())
}

/// The servers' logs are opened by the servers' own user. As root, the
/// cluster's and PgBouncer's directories belong to `postgres`: a log that
/// root's watchdog opened there could be a symlink `postgres` planted
/// during `initdb`, and root would truncate and write the file it points
/// to. A log created by the server's user is owned by that user.
#[tokio::test]
async fn server_logs_are_created_by_the_servers_user() {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap();
    let server_user = if me == 0 {
        postgres_uid().expect("a `postgres` OS user when run as root")
    } else {
        me
    };
    let cluster = TestCluster::start().await.unwrap();
    let dir = cluster.dir().expect("a throwaway cluster").to_owned();
    let log = std::fs::symlink_metadata(dir.join("server.log")).unwrap();
    assert!(log.file_type().is_file(), "server.log is a plain file");
    assert_eq!(log.uid(), server_user, "server.log's owner");

    let bouncer = tenant_testing::TestPgBouncer::start(&cluster)
        .await
        .unwrap();
    let log = std::fs::symlink_metadata(bouncer.dir().join("pgbouncer.log")).unwrap();
    assert!(log.file_type().is_file(), "pgbouncer.log is a plain file");
    assert_eq!(log.uid(), server_user, "pgbouncer.log's owner");
}
