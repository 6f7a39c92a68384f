//! A real PostgreSQL server for tests: initdb in a temp dir on a loopback port, one per test
//! binary, stopped by a watchdog when the test process exits; and a fresh database URL per
//! test for either of barge's store backends.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A PostgreSQL server for this test binary: initdb in a temp dir, loopback port, stopped by a
/// watchdog when the test process exits.
struct Postgres {
    port: u16,
    _dir: tempfile::TempDir,
    /// Lives as long as the test process; it stops the server when the process is gone.
    _watchdog: std::process::Child,
}

fn as_postgres_user(script: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }
}

/// PostgreSQL's server binaries: `PG_BIN`, else the newest of Debian's
/// `/usr/lib/postgresql/<major>/bin` (whichever major version the distribution ships).
pub fn pg_bin() -> String {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return bin;
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max();
    match newest {
        Some(major) => format!("/usr/lib/postgresql/{major}/bin"),
        None => panic!("PostgreSQL not found under /usr/lib/postgresql (install it, or set PG_BIN)"),
    }
}

fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("barge-pg-").tempdir().unwrap();
        let path = dir.path().display().to_string();
        Command::new("chmod").args(["755", &path]).status().unwrap();
        let _ = Command::new("chown").args(["postgres", &path]).status();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = as_postgres_user(&format!("{bin}/initdb -D {path}/data -A trust -U barge >{path}/initdb.log 2>&1")).output().unwrap();
        assert!(out.status.success(), "initdb failed: {}", std::fs::read_to_string(format!("{path}/initdb.log")).unwrap_or_default());
        let watchdog = format!(
            "{bin}/postgres -D {path}/data -p {port} -k {path} -c listen_addresses=127.0.0.1 -c fsync=off >{path}/pg.log 2>&1 & pg=$!; \
             while [ -d /proc/{test} ]; do sleep 0.5; done; kill -INT $pg; wait $pg; rm -rf {path}",
            test = std::process::id()
        );
        let watchdog = as_postgres_user(&watchdog).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while Command::new(format!("{bin}/pg_isready")).args(["-h", "127.0.0.1", "-p", &port.to_string()]).output().map(|o| !o.status.success()).unwrap_or(true) {
            assert!(std::time::Instant::now() < deadline, "postgres did not start: {}", std::fs::read_to_string(format!("{path}/pg.log")).unwrap_or_default());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Postgres { port, _dir: dir, _watchdog: watchdog }
    })
}

/// A fresh, empty SQLite database URL for each test (the file is created below `dir`).
pub fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/state/barge.db", dir.path().display())
}

/// A fresh, empty PostgreSQL database URL for each test, on this test binary's server.
pub fn postgres_url() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let pg = postgres();
    let db = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    let out = Command::new(format!("{}/createdb", pg_bin()))
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "barge", &db])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    format!("postgres://barge:secret-pw@127.0.0.1:{}/{db}", pg.port)
}

/// A PostgreSQL server of one test's own, which the test can stop and start again (a database
/// outage); stopped when dropped. The shared server above is never stopped.
pub struct OwnPostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    /// More `postgres` options (`-c name=value …`).
    options: String,
}

impl OwnPostgres {
    pub fn start() -> OwnPostgres {
        OwnPostgres::start_with("")
    }

    /// A server started with these `postgres` options too (`-c name=value …`), e.g. to load
    /// `pg_stat_statements`.
    pub fn start_with(options: &str) -> OwnPostgres {
        let dir = tempfile::Builder::new().prefix("barge-own-pg-").tempdir().unwrap();
        let path = dir.path().display().to_string();
        Command::new("chmod").args(["755", &path]).status().unwrap();
        let _ = Command::new("chown").args(["postgres", &path]).status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = pg_bin();
        let out = as_postgres_user(&format!(
            "{bin}/initdb -D {path}/data -A trust -U barge >{path}/initdb.log 2>&1"
        ))
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            std::fs::read_to_string(format!("{path}/initdb.log")).unwrap_or_default()
        );
        let pg = OwnPostgres {
            port,
            dir,
            options: options.to_string(),
        };
        pg.resume();
        let out = Command::new(format!("{bin}/createdb"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "barge", "barge"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://barge@127.0.0.1:{}/barge", self.port)
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        let path = self.dir.path().display();
        let out = as_postgres_user(&format!("{}/pg_ctl -D {path}/data -m fast -w stop", pg_bin()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again) and waits until it answers.
    pub fn resume(&self) {
        let path = self.dir.path().display();
        let out = as_postgres_user(&format!(
            "{}/pg_ctl -D {path}/data -l {path}/pg.log -w -o '-p {} -k {path} -c listen_addresses=127.0.0.1 -c fsync=off {}' start",
            pg_bin(),
            self.port,
            self.options
        ))
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(format!("{path}/pg.log")).unwrap_or_default()
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let path = self.dir.path().display();
        let _ = as_postgres_user(&format!("{}/pg_ctl -D {path}/data -m immediate stop", pg_bin())).output();
    }
}
