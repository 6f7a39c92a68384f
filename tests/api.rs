//! `barge serve`'s HTTP API, through the real binary on loopback: its token is never empty
//! (on either side), the audit log records the token's identity rather than whatever actor
//! a client names, and slow, idle, numerous or oversized clients get a timely answer or a
//! closed connection instead of holding the daemon's connections forever.

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{stderr, stdout};

/// One Stage that takes Freight straight from its Warehouse and has no steps: a promotion
/// into it succeeds without a registry or a config repository.
const DEFINITIONS: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  interval: 1h
  subscriptions:
    - image: {repoURL: ghcr.io/acme/app, constraint: ^1.0.0}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: prod, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: qa, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [dev]}
"#;

const TOKEN: &str = "api-test-token";

struct Fixture {
    dir: tempfile::TempDir,
    defs: PathBuf,
    db: String,
    token_file: PathBuf,
    /// The alias of the one Freight in the store.
    alias: String,
}

/// The store a test runs on. The endpoint tests run on both of barge's backends
/// ([`on_both_stores`]).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each of these tests, `fn NAME(Backend)`, on SQLite and on PostgreSQL, as the tests
/// `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Backend::Sqlite)
            }

            #[test]
            fn postgres() {
                super::$name(super::Backend::Postgres)
            }
        }
    )*};
}

on_both_stores!(
    rest_resources_answer_typed_json_and_verbs_act_as_the_tokens_principal,
    rest_errors_are_one_json_shape_with_the_status_of_their_class,
    roles_decide_what_a_token_may_do_and_every_refusal_is_audited,
    anonymous_requests_read_when_allowed_and_never_write,
    the_audit_log_records_the_tokens_identity_not_the_actor_a_client_names,
    read_verbs_through_the_rest_api_print_as_in_process,
    a_stage_shows_a_write_made_just_before_it_by_another_process_or_the_api,
    the_kept_stage_list_changes_after_a_write_and_after_a_reload,
    a_kept_freight_page_changes_after_a_mint_an_alias_and_an_approval,
);

impl Fixture {
    fn new() -> Fixture {
        Fixture::on(Backend::Sqlite)
    }

    /// A fixture whose store is a fresh database of this backend.
    fn on(backend: Backend) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let defs = dir.path().join("shop.yaml");
        std::fs::write(&defs, DEFINITIONS).unwrap();
        let token_file = dir.path().join("barge.token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let db = match backend {
            Backend::Sqlite => format!("sqlite://{}/barge.db", dir.path().display()),
            Backend::Postgres => barge_testkit::postgres::postgres_url(),
        };
        // Freight as discovery would have stored it.
        let alias = support::mint_freight(&db, "1.0.0");
        Fixture {
            dir,
            defs,
            db,
            token_file,
            alias,
        }
    }

    /// `barge ARGS` on this fixture's store, as local user alice.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = support::barge();
        c.args(args)
            .env("BARGE_DB", &self.db)
            .env("BARGE_WORK_DIR", self.dir.path().join("work"))
            .env_remove("BARGE_TOKEN")
            .env_remove("BARGE_TOKEN_FILE")
            .env_remove("BARGE_SERVER")
            .env("BARGE_CLI_CONFIG", self.dir.path().join("contexts.yaml"))
            .env("USER", "alice");
        c
    }

    /// `barge ARGS` told no store and no server: the current context of this fixture's
    /// contexts file decides.
    fn contextual(&self, args: &[&str]) -> Command {
        let mut c = self.command(args);
        c.env_remove("BARGE_DB");
        c
    }

    /// `barge ARGS --server` the daemon, with this fixture's admin token.
    fn through(&self, daemon: &Daemon, args: &[&str]) -> Command {
        let mut c = self.command(args);
        c.args(["--server", &daemon.url, "--token-file"]).arg(&self.token_file);
        c
    }

    /// `barge serve --listen` with the token file and these extra flags and variables;
    /// nothing is registry-bound (discovery finds a closed port at once).
    fn serve_command(&self, port: u16, extra: &[&str], vars: &[(&str, &str)]) -> Command {
        let listen = format!("127.0.0.1:{port}");
        let rewrite = format!("ghcr.io/acme/=127.0.0.1:{}/acme/", support::free_port());
        let mut args = vec![
            "serve",
            self.defs.to_str().unwrap(),
            "--listen",
            &listen,
            "--rewrite",
            &rewrite,
        ];
        args.extend(extra);
        let mut c = self.command(&args);
        c.envs(vars.iter().copied());
        c
    }

    /// Starts the daemon with the token file and waits (bounded) until its API answers.
    fn daemon(&self, extra: &[&str], vars: &[(&str, &str)]) -> Daemon {
        let port = support::free_port();
        let token_file = self.token_file.to_str().unwrap();
        let mut args = vec!["--token-file", token_file];
        args.extend(extra);
        let log = self.dir.path().join(format!("serve-{port}.log"));
        let mut daemon = Daemon::spawn(&mut self.serve_command(port, &args, vars), port, log);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: barge\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return daemon;
                }
            }
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("barge serve exited ({status}):\n{}", daemon.log());
            }
            assert!(Instant::now() < deadline, "the API never answered:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `barge token create --name NAME ARGS -o json` in-process: the token.
    fn create_token(&self, name: &str, args: &[&str]) -> String {
        let out = self
            .command(&["token", "create", "--name", name, "-o", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    /// Everything the store holds, as bytes to search: the SQLite files, or a dump of the
    /// PostgreSQL database.
    fn store_contents(&self) -> Vec<(String, Vec<u8>)> {
        if self.db.starts_with("postgres://") {
            let out = Command::new(format!("{}/pg_dump", barge_testkit::postgres::pg_bin()))
                .args(["--data-only", "-d", &self.db])
                .output()
                .unwrap();
            assert!(out.status.success(), "pg_dump: {}", stderr(&out));
            assert!(!out.stdout.is_empty(), "an empty dump");
            return vec![("the database".into(), out.stdout)];
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("barge.db") {
                files.push((name, std::fs::read(&path).unwrap()));
            }
        }
        assert!(files.iter().any(|(n, _)| n == "barge.db"), "no database file");
        files
    }

    /// `barge history -o json` on the store.
    fn history(&self) -> Vec<Value> {
        let out = self
            .command(&["history", "--limit", "1000", "-o", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

/// `barge serve` in the background, killed when dropped.
type Daemon = support::Serve;

impl Daemon {
    /// A connection to the API with reads bounded by `timeout`.
    fn connect(&self, timeout: Duration) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(timeout)).unwrap();
        s
    }

    /// `GET /api/v1/projects/shop/stages` with this bearer token (none: no Authorization
    /// header): the status and body.
    fn stages_as(&self, token: Option<&str>) -> (u16, Value) {
        self.request("GET", "/api/v1/projects/shop/stages", token, None)
    }

    /// `POST /api/v1/projects/shop/stages/STAGE/promotions` of `freight` with this bearer
    /// token (none: no Authorization header).
    fn promote_as(&self, token: Option<&str>, stage: &str, freight: &str) -> (u16, Value) {
        let path = format!("/api/v1/projects/shop/stages/{stage}/promotions");
        self.request("POST", &path, token, Some(&json!({ "freight": freight }).to_string()))
    }

    /// `METHOD PATH` with this bearer token (none: no Authorization header) and body over a
    /// fresh connection: the status and JSON body.
    fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, Value) {
        let authorization = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let content = body
            .map(|b| format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()))
            .unwrap_or_default();
        let mut s = self.connect(Duration::from_secs(30));
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: barge\r\n{authorization}{content}Connection: close\r\n\r\n{}",
            body.unwrap_or_default()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        parse_response(&answer)
    }
}

impl Daemon {
    /// `GET path` without a token over a fresh connection: the status and body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut s = self.connect(Duration::from_secs(30));
        write!(s, "GET {path} HTTP/1.1\r\nHost: barge\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
        (status, body.to_string())
    }
}

/// A whole HTTP/1.1 response (the connection closed after it): its status and JSON body.
fn parse_response(answer: &str) -> (u16, Value) {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {answer:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"));
    (status, body)
}

/// Waits for a child to exit within `timeout` (killing it if it does not) and returns its
/// output.
fn exits_within(mut child: Child, timeout: Duration, what: &str) -> Output {
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("{what} is still running after {timeout:?}:\n{}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Reads until the server closes the connection (end of file or reset); fails if it is
/// still open after `within`. Returns what was read and when the close was seen.
fn closed_by_server(mut s: TcpStream, within: Duration) -> (String, Instant) {
    let start = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection is still open after {:?} ({e}); read so far: {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
        assert!(start.elapsed() < within, "the server kept the connection open");
    }
    (String::from_utf8_lossy(&got).into_owned(), Instant::now())
}

#[test]
fn an_empty_token_is_refused_by_the_daemon_naming_its_file() {
    let fx = Fixture::new();
    for (name, contents) in [("empty.token", ""), ("blank.token", " \n\t\n")] {
        let file = fx.dir.path().join(name);
        std::fs::write(&file, contents).unwrap();
        let child = fx
            .serve_command(support::free_port(), &["--token-file", file.to_str().unwrap()], &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = exits_within(child, Duration::from_secs(30), "barge serve with an empty token file");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&file.display().to_string()) && stderr(&out).contains("empty"),
            "{}",
            stderr(&out)
        );
    }
    // A missing file is named too.
    let missing = fx.dir.path().join("no-such.token");
    let child = fx
        .serve_command(support::free_port(), &["--token-file", missing.to_str().unwrap()], &[])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exits_within(child, Duration::from_secs(30), "barge serve with a missing token file");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&missing.display().to_string()),
        "{}",
        stderr(&out)
    );
    // An empty BARGE_TOKEN, and no token at all, say how to make one.
    for vars in [&[("BARGE_TOKEN", "  ")][..], &[]] {
        let child = fx
            .serve_command(support::free_port(), &[], vars)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = exits_within(child, Duration::from_secs(30), "barge serve without a token");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("openssl rand"), "{}", stderr(&out));
    }
}

#[test]
fn an_empty_token_is_refused_by_the_client_naming_its_file() {
    let fx = Fixture::new();
    let daemon = fx.daemon(&[], &[]);
    let empty = fx.dir.path().join("empty.token");
    std::fs::write(&empty, "\n").unwrap();
    let out = fx
        .command(&[
            "get",
            "stages",
            "--server",
            &daemon.url,
            "--token-file",
            empty.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains(&empty.display().to_string()) && stderr(&out).contains("empty"),
        "{}",
        stderr(&out)
    );
    let out = fx
        .command(&["get", "stages", "--server", &daemon.url])
        .env("BARGE_TOKEN", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("BARGE_TOKEN is empty"), "{}", stderr(&out));
    // The token from the file works.
    let out = fx
        .command(&["get", "stages", "--server", &daemon.url, "--token-file"])
        .arg(&fx.token_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

fn the_audit_log_records_the_tokens_identity_not_the_actor_a_client_names(backend: Backend) {
    let fx = Fixture::on(backend);
    // The default identity.
    {
        let daemon = fx.daemon(&[], &[]);
        let path = format!("/api/v1/projects/shop/freight/{}/approve", fx.alias);
        // A body cannot name the actor: the field is refused, not taken.
        let naming = json!({"stage": "prod", "actor": "mallory"}).to_string();
        let message = assert_problem(
            daemon.request("POST", &path, Some(TOKEN), Some(&naming)),
            400,
            "invalid",
        );
        assert!(message.contains("unknown field `actor`"), "{message}");
        let approve = json!({"stage": "prod"}).to_string();
        let (status, body) = daemon.request("POST", &path, Some(TOKEN), Some(&approve));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["approvedBy"], "token:api-token", "{body}");
        // The CLI through the API: its local user is not the actor either.
        let out = fx
            .command(&[
                "update",
                "freight",
                &fx.alias,
                "--alias",
                "through-api",
                "--server",
                &daemon.url,
            ])
            .arg("--token-file")
            .arg(&fx.token_file)
            .env("USER", "mallory")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // A named token; the client may leave the actor out.
    let daemon = fx.daemon(&["--token-name", "ci-bot"], &[]);
    let (status, body) = daemon.promote_as(Some(TOKEN), "prod", "through-api");
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fx.history().iter().any(|e| e["kind"] == "promotion.finished") {
        assert!(
            Instant::now() < deadline,
            "the promotion never finished:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A call in-process (--db) records the local user, as before.
    let out = fx
        .command(&["update", "freight", "through-api", "--alias", "local"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let history = fx.history();
    let actor_of = |kind: &str| -> Vec<&str> {
        history
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["actor"].as_str().unwrap())
            .collect()
    };
    assert_eq!(actor_of("freight.approved"), ["token:api-token"], "{history:#?}");
    assert_eq!(
        actor_of("freight.aliased"),
        ["alice", "token:api-token"],
        "{history:#?}"
    );
    assert_eq!(actor_of("promotion.created"), ["token:ci-bot"], "{history:#?}");
    assert!(
        !history.iter().any(|e| e.to_string().contains("mallory")),
        "{history:#?}"
    );
}

#[test]
fn partial_headers_slow_bodies_and_idle_connections_are_closed_after_the_client_timeout() {
    let fx = Fixture::new();
    // Each connection's first bytes below must reach the daemon before the timeout, which
    // starts when it accepts: 3 s leave a loaded machine room to write them (with 1 s, a
    // stalled test thread had the slow body or the kept-alive request timed out first, and
    // the wrong answer). `within` is how long the test waits for a close that is due then.
    let timeout = Duration::from_secs(3);
    let daemon = fx.daemon(&[], &[("BARGE_API_CLIENT_TIMEOUT", "3s")]);
    let within = Duration::from_secs(30);
    let opened = Instant::now();
    let silent = daemon.connect(within);
    let mut partial = daemon.connect(within);
    partial
        .write_all(
            b"POST /api/v1/projects/shop/stages/prod/promotions HTTP/1.1\r\nHost: barge\r\nAuthorization: Bearer ",
        )
        .unwrap();
    let mut slow_body = daemon.connect(within);
    write!(
        slow_body,
        "POST /api/v1/projects/shop/stages/prod/promotions HTTP/1.1\r\nHost: barge\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 100\r\n\r\n{{\"op\":"
    )
    .unwrap();
    // A kept-alive connection that goes quiet after one request.
    let mut kept_alive = daemon.connect(within);
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: barge\r\n\r\n")
        .unwrap();
    let (answer, closed) = closed_by_server(silent, within);
    assert_eq!(answer, "");
    // Closed by the timeout, not at once.
    assert!(
        closed >= opened + timeout - Duration::from_millis(100),
        "{:?}",
        closed - opened
    );
    let (answer, _) = closed_by_server(partial, within);
    assert_eq!(answer, "", "a partial request gets no answer");
    let (answer, _) = closed_by_server(slow_body, within);
    let (status, body) = parse_response(&answer);
    assert_eq!(status, 408, "{answer}");
    assert_eq!(body["code"], "timeout", "{body}");
    assert!(body["message"].as_str().unwrap().contains("did not arrive"), "{body}");
    let (answer, _) = closed_by_server(kept_alive, within);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The API still answers.
    let (status, body) = daemon.stages_as(Some(TOKEN));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn connections_beyond_the_limit_get_503_and_the_api_serves_again_once_idle_ones_time_out() {
    let fx = Fixture::new();
    let limit = 8;
    // Everything up to the wait for the idle connections (100 refusals, a CLI run, the silent
    // connections) must happen before they time out, and "at once" must stay well apart from
    // that timeout: 10 s and 5 s leave a loaded machine room for both (with 4 s and 3 s, the
    // 100 refusals and the CLI had under 4 s, and a refusal 1 s).
    let timeout = Duration::from_secs(10);
    let at_once = Duration::from_secs(5);
    let daemon = fx.daemon(
        &[],
        &[
            ("BARGE_API_CLIENT_TIMEOUT", "10s"),
            ("BARGE_API_MAX_CONNECTIONS", &limit.to_string()),
        ],
    );
    // Idle connections take every slot (the daemon takes connections in order).
    let idle: Vec<TcpStream> = (0..limit).map(|_| daemon.connect(Duration::from_secs(10))).collect();
    // More are refused at once with a JSON 503.
    for _ in 0..100 {
        let mut s = daemon.connect(Duration::from_secs(10));
        let asked = Instant::now();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: barge\r\n\r\n").unwrap();
        let (answer, closed) = closed_by_server(s, timeout * 2);
        assert!(
            closed - asked < at_once,
            "refused only after {:?}: {answer:?}",
            closed - asked
        );
        let (status, body) = parse_response(&answer);
        assert_eq!(status, 503, "{answer}");
        assert_eq!(body["code"], "transient", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("too many connections"),
            "{body}"
        );
    }
    // The CLI says so too.
    let out = fx
        .command(&["get", "stages", "--server", &daemon.url, "--token-file"])
        .arg(&fx.token_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("too many connections"), "{}", stderr(&out));
    // As many silent ones wait for their request to be refused; beyond that, they are
    // closed at once. (A permit of the refusals above may still be on its way back, so
    // this counts rather than picks the ones closed at once.)
    let extra = 4;
    let silent: Vec<_> = (0..limit + extra)
        .map(|_| {
            let s = daemon.connect(Duration::from_secs(10));
            let opened = Instant::now();
            std::thread::spawn(move || {
                let (answer, closed) = closed_by_server(s, timeout * 2);
                (answer, closed - opened)
            })
        })
        .collect();
    let silent: Vec<(String, Duration)> = silent.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(silent.iter().all(|(answer, _)| answer.is_empty()), "{silent:?}");
    let closed_at_once = silent.iter().filter(|(_, waited)| *waited < at_once).count();
    assert!(closed_at_once >= extra, "{silent:?}");
    // Once the idle connections time out, an authenticated request is served (refused
    // with 503 while a slot is on its way back).
    for s in idle {
        let (answer, _) = closed_by_server(s, timeout * 2);
        assert_eq!(answer, "");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = daemon.stages_as(Some(TOKEN));
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "still refused: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_64_mb_body_gets_413_with_a_json_error() {
    let fx = Fixture::new();
    let daemon = fx.daemon(&[], &[]);
    let url = format!("{}/api/v1/projects/shop/stages/prod/promotions", daemon.url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = barge_promote::http_client();
    for (token, want) in [(TOKEN, 413), ("wrong", 401)] {
        let (status, body) = runtime.block_on(async {
            let response = client
                .post(&url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(vec![b' '; 64 << 20])
                .send()
                .await
                .unwrap_or_else(|e| panic!("no answer to a 64 MB body: {e:?}"));
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
        assert_eq!(status, want, "{body}");
        assert!(body["message"].is_string(), "{body}");
        if want == 413 {
            assert_eq!(body["code"], "too-large", "{body}");
            assert!(body["message"].as_str().unwrap().contains("1048576 bytes"), "{body}");
        }
    }
    // A body without a length, sent in chunks, is cut off at the limit too.
    let mut s = daemon.connect(Duration::from_secs(30));
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(
            format!("POST /api/v1/projects/shop/stages/prod/promotions HTTP/1.1\r\nHost: barge\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
        )?;
        let chunk = [b' '; 1 << 20];
        for _ in 0..64 {
            writer.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            writer.write_all(&chunk)?;
            writer.write_all(b"\r\n")?;
        }
        writer.write_all(b"0\r\n\r\n")
    });
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    // The server stops reading once it refused: the sender may or may not get it all out.
    let _ = sender.join().unwrap();
    let (status, body) = parse_response(&String::from_utf8_lossy(&answer));
    assert_eq!(status, 413, "{body}");
    assert!(body["message"].as_str().unwrap().contains("1048576 bytes"), "{body}");
}

fn roles_decide_what_a_token_may_do_and_every_refusal_is_audited(backend: Backend) {
    let fx = Fixture::on(backend);
    let wall = fx.create_token("wall", &["--role", "viewer"]);
    let ci = fx.create_token("ci", &["--role", "promoter", "--stages", "dev", "--project", "shop"]);
    let daemon = fx.daemon(&[], &[]);
    let daemon_log = daemon.log.clone();
    let alias = fx.alias.as_str();

    // A viewer reads, and may not promote.
    let (status, body) = daemon.stages_as(Some(&wall));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(3), "{body}");
    let message = assert_problem(daemon.promote_as(Some(&wall), "prod", alias), 403, "forbidden");
    assert!(message.contains("may not promote"), "{message}");
    // A promoter limited to dev promotes into dev, not prod.
    let (status, body) = daemon.promote_as(Some(&ci), "dev", alias);
    assert_eq!(status, 202, "{body}");
    let message = assert_problem(daemon.promote_as(Some(&ci), "prod", alias), 403, "forbidden");
    assert!(message.contains("only on Stages dev"), "{message}");
    // Promoting downstream of dev promotes into qa, which the token may not.
    let downstream = json!({ "freight": alias }).to_string();
    let path = "/api/v1/projects/shop/stages/dev/promotions/downstream";
    let message = assert_problem(
        daemon.request("POST", path, Some(&ci), Some(&downstream)),
        403,
        "forbidden",
    );
    assert!(message.contains("not \"qa\""), "{message}");
    // Tokens are an admin's: not a viewer's, and the bootstrap admin's through the CLI.
    let out = fx
        .command(&["token", "list", "--server", &daemon.url])
        .env("BARGE_TOKEN", &wall)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("may not manage tokens"), "{}", stderr(&out));
    let out = fx
        .command(&["token", "revoke", "ci", "--server", &daemon.url, "--token-file"])
        .arg(&fx.token_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // A revoked token is no token (401); so is one never issued.
    let message = assert_problem(daemon.promote_as(Some(&ci), "dev", alias), 401, "auth");
    assert!(message.contains("revoked"), "{message}");
    assert_problem(daemon.stages_as(Some("barge_0000")), 401, "auth");

    let history = fx.history();
    let promotions: Vec<(&str, &str)> = history
        .iter()
        .filter(|e| e["kind"] == "promotion.created")
        .map(|e| (e["stage"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(promotions, [("dev", "token:ci")], "{history:#?}");
    let mut denials: Vec<(&str, &str, u64)> = history
        .iter()
        .filter(|e| e["kind"] == "access.denied")
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["stage"].as_str().unwrap(),
                e["body"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    denials.reverse();
    assert_eq!(
        denials,
        [
            ("token:wall", "prod", 403),
            ("token:ci", "prod", 403),
            ("token:ci", "qa", 403),
            ("token:wall", "", 403),
            ("anonymous", "", 401),
            ("anonymous", "", 401),
        ],
        "{history:#?}"
    );
    // A refused call is named with what it needed and the Freight it named (Call is no
    // wire format: the audit records these, not the call serialized).
    let refused = history
        .iter()
        .rev()
        .find(|e| e["kind"] == "access.denied" && e["actor"] == "token:wall" && e["stage"] == "prod")
        .unwrap();
    assert_eq!(refused["subject"], "Call/promote", "{refused}");
    assert_eq!(
        (
            &refused["body"]["call"],
            &refused["body"]["action"],
            &refused["body"]["freight"]
        ),
        (&json!("promote"), &json!("promote"), &json!(alias)),
        "{refused}"
    );
    assert_eq!(
        history
            .iter()
            .find(|e| e["body"]["token"] == "ci")
            .map(|e| &e["body"]["reason"]),
        Some(&json!("the bearer token \"ci\" was revoked")),
        "{history:#?}"
    );
    assert_eq!(
        history
            .iter()
            .find(|e| e["kind"] == "token.revoked")
            .map(|e| &e["actor"]),
        Some(&json!("token:api-token")),
        "{history:#?}"
    );
    // The tokens themselves are nowhere: not in the history, the log or the database.
    drop(daemon);
    let mut places = vec![("history".to_string(), serde_json::to_vec(&history).unwrap())];
    places.push(("the daemon's log".into(), std::fs::read(&daemon_log).unwrap()));
    places.extend(fx.store_contents());
    for (place, bytes) in &places {
        for token in [&wall, &ci] {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{place} holds a token"
            );
        }
    }
}

fn anonymous_requests_read_when_allowed_and_never_write(backend: Backend) {
    let fx = Fixture::on(backend);
    // Off by default.
    {
        let daemon = fx.daemon(&[], &[]);
        assert_problem(daemon.stages_as(None), 401, "auth");
    }
    let daemon = fx.daemon(&["--anonymous-role", "viewer"], &[]);
    let (status, body) = daemon.stages_as(None);
    assert_eq!(status, 200, "{body}");
    let message = assert_problem(daemon.promote_as(None, "dev", &fx.alias), 401, "auth");
    assert!(message.contains("send a token"), "{message}");
    // A wrong token is refused, not taken for anonymous.
    assert_problem(daemon.stages_as(Some("wrong")), 401, "auth");
    assert!(
        fx.history()
            .iter()
            .any(|e| e["kind"] == "access.denied" && e["actor"] == "anonymous" && e["stage"] == "dev"),
        "{:#?}",
        fx.history()
    );
    // Never more than viewer.
    for role in ["promoter", "admin"] {
        let child = fx
            .serve_command(
                support::free_port(),
                &[
                    "--token-file",
                    fx.token_file.to_str().unwrap(),
                    "--anonymous-role",
                    role,
                ],
                &[],
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = exits_within(child, Duration::from_secs(30), "barge serve --anonymous-role");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("anonymous access is at most viewer, not {role}")),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn history_filters_by_kind_and_until_a_time_written_as_for_since() {
    let fx = Fixture::new();
    // Three audited changes, one after the other: two tokens made, the first revoked.
    fx.create_token("first", &["--role", "viewer"]);
    fx.create_token("second", &["--role", "viewer"]);
    let revoked = fx.command(&["token", "revoke", "first"]).output().unwrap();
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let events = |args: &[&str]| -> Vec<String> {
        let out = fx.command(&["history", "-o", "json"]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let events: Value = serde_json::from_slice(&out.stdout).unwrap();
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e["kind"].as_str().unwrap(), e["subject"].as_str().unwrap()))
            .collect()
    };
    assert_eq!(
        events(&["--kind", "token.created"]),
        ["token.created Token/second", "token.created Token/first"]
    );
    // Until the second token's creation, as an RFC 3339 time to the millisecond: it and
    // what came before, not the revocation after.
    let minted = format!(
        "freight.minted {}",
        fx.history().last().unwrap()["subject"].as_str().unwrap()
    );
    let second = fx
        .history()
        .into_iter()
        .find(|e| e["subject"] == "Token/second")
        .unwrap();
    let at = chrono::DateTime::from_timestamp_millis(second["at"].as_i64().unwrap()).unwrap();
    let until = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(
        events(&["--until", &until]),
        ["token.created Token/second", "token.created Token/first", &minted]
    );
    assert_eq!(
        events(&["--kind", "token.revoked", "--since", "1h", "--until", &until]),
        Vec::<String>::new()
    );
    // A duration means that long ago, as for --since: the tokens came within the hour (the
    // fixture minted its Freight at the epoch's first millisecond).
    assert_eq!(events(&["--until", "1h"]), [minted]);
    assert_eq!(events(&["--since", "1h", "--until", "0s"]).len(), 3);
    let bad = fx.command(&["history", "--until", "yesterday"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("--until: \"yesterday\" is neither"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn a_token_is_printed_once_and_never_listed() {
    let fx = Fixture::new();
    let out = fx
        .command(&[
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "promoter",
            "--stages",
            "dev,staging",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The token alone on stdout, so `> file` keeps it; what it is on stderr.
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("barge_") && token.len() == 6 + 64, "{token:?}");
    assert!(stderr(&out).contains("shown this once"), "{}", stderr(&out));
    let daemon = fx.daemon(&[], &[]);
    for (how, output) in [
        ("in-process", "text"),
        ("in-process", "json"),
        ("in-process", "yaml"),
        ("server", "json"),
    ] {
        let mut c = fx.command(&["token", "list", "-o", output]);
        if how == "server" {
            c.args(["--server", &daemon.url, "--token-file"]).arg(&fx.token_file);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("ci") && stdout(&out).contains("promoter"),
            "{}",
            stdout(&out)
        );
        assert!(!stdout(&out).contains(&token), "{how} -o {output} shows the token");
        assert!(!stdout(&out).contains(&token[6..]), "{how} -o {output} shows the token");
    }
    // The token works, and `token list` tells when it was last used.
    let (status, body) = daemon.stages_as(Some(&token));
    assert_eq!(status, 200, "{body}");
    let out = fx.command(&["token", "list", "-o", "json"]).output().unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List", "a listing prints as a List: {list}");
    let list = &list["items"];
    assert!(list[0]["lastUsedAt"].is_string(), "{list}");
    let mut fields: Vec<&str> = list[0].as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "createdAt",
            "lastUsedAt",
            "name",
            "project",
            "revokedAt",
            "role",
            "stages"
        ],
        "{list}"
    );
    // `-o name` names tokens in barge's own API group, through the server as in-process.
    let mut c = fx.command(&["token", "list", "-o", "name", "--server", &daemon.url, "--token-file"]);
    let out = c.arg(&fx.token_file).output().unwrap();
    assert_eq!(stdout(&out), "token.barge.dev/ci\n", "{}", stderr(&out));
    // A second token of that name is refused.
    let out = fx
        .command(&["token", "create", "--name", "ci", "--role", "viewer"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exists already"), "{}", stderr(&out));
}

/// psql as the test server's superuser on its maintenance database (not on the database the
/// daemon uses, which the test closes).
fn psql(db_url: &str, sql: &str) {
    let port = db_url.rsplit_once(':').unwrap().1.split('/').next().unwrap();
    let out = Command::new(format!("{}/psql", barge_testkit::postgres::pg_bin()))
        .args(["-h", "127.0.0.1", "-p", port, "-U", "barge", "-d", "postgres"])
        .args(["-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
}

#[test]
fn readyz_is_503_while_postgresql_refuses_connections_and_200_again_after_healthz_always_200() {
    let mut fx = Fixture::new();
    fx.db = barge_testkit::postgres::postgres_url();
    let db = fx.db.rsplit('/').next().unwrap().to_string();
    let daemon = fx.daemon(&[], &[]);
    let ok = (200, "ok".to_string());
    assert_eq!(daemon.get("/readyz"), ok);

    // The database goes away: no new connections (superusers' neither), the daemon's closed.
    psql(&fx.db, &format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false"));
    psql(
        &fx.db,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"),
    );
    let (status, reason) = daemon.get("/readyz");
    assert_eq!(status, 503, "{reason}");
    assert!(reason.starts_with("not ready: the store"), "{reason}");
    for secret in ["127.0.0.1", "secret-pw", "barge:", db.as_str()] {
        assert!(!reason.contains(secret), "{secret} in {reason}");
    }
    assert_eq!(daemon.get("/healthz"), ok);

    // Back: the pool connects again for the next probe.
    psql(&fx.db, &format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true"));
    assert_eq!(daemon.get("/readyz"), ok, "{}", daemon.log());
    assert_eq!(daemon.get("/healthz"), ok);
}

/// The REST tests' pipeline beyond [`DEFINITIONS`]: a Stage with auto-promotion to hold
/// (its Warehouse never mints, so nothing is promoted there), one whose verification waits
/// an hour before measuring (so it runs until aborted), and one whose promotion's `http` step
/// waits on a server that never answers (so it runs until aborted). `{HANG}` is that server.
const REST_DEFINITIONS: &str = r#"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: shop, namespace: shop}
spec:
  promotionPolicies:
    - stageSelector: {name: canary}
      autoPromotionEnabled: true
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: other, namespace: shop}
spec:
  interval: 1h
  subscriptions:
    - image: {repoURL: ghcr.io/acme/other}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: canary, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: other}
      sources: {direct: true}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: later, namespace: shop}
spec:
  metrics:
    - name: later
      initialDelay: 1h
      successCondition: result.ok == true
      provider:
        web: {url: "{HANG}"}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: staging, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  verification:
    analysisTemplates: [{name: later}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: slow, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: http
          config: {url: "{HANG}", timeout: 10m}
"#;

impl Daemon {
    /// `METHOD /api/v1/projects/shop{path}` with the admin token and this JSON body.
    fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!("/api/v1/projects/shop{path}");
        self.request(method, &path, Some(TOKEN), body.map(|b| b.to_string()).as_deref())
    }

    /// Polls `GET …/promotions/NAME` (bounded) until the promotion is in `phase`.
    fn await_promotion(&self, name: &str, phase: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.rest("GET", &format!("/promotions/{name}"), None);
            assert_eq!(status, 200, "{body}");
            if body["status"]["phase"] == phase {
                return;
            }
            assert!(Instant::now() < deadline, "{name} is still {body}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The fixture with [`REST_DEFINITIONS`] added, and the server that never answers (kept
/// open: connections queue in its backlog and wait).
fn rest_fixture() -> (Fixture, std::net::TcpListener) {
    rest_fixture_on(Backend::Sqlite)
}

/// [`rest_fixture`] on a store of this backend.
fn rest_fixture_on(backend: Backend) -> (Fixture, std::net::TcpListener) {
    let fx = Fixture::on(backend);
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/", hang.local_addr().unwrap().port());
    std::fs::write(
        &fx.defs,
        format!("{DEFINITIONS}{}", REST_DEFINITIONS.replace("{HANG}", &url)),
    )
    .unwrap();
    (fx, hang)
}

/// Asserts an error is the REST API's one shape, with this status and code.
fn assert_problem((status, body): (u16, Value), want_status: u16, code: &str) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["details"].is_object(), "{body}");
    body["message"].as_str().unwrap().to_string()
}

fn rest_resources_answer_typed_json_and_verbs_act_as_the_tokens_principal(backend: Backend) {
    let (fx, _hang) = rest_fixture_on(backend);
    let daemon = fx.daemon(&[], &[]);
    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {body}"))
            .iter()
            .map(|i| {
                // Every item is a Kargo resource.
                assert_eq!(i["apiVersion"], "kargo.akuity.io/v1alpha1", "{i}");
                i["metadata"]["name"].as_str().unwrap().to_string()
            })
            .collect()
    };

    // Projects.
    let (status, body) = daemon.request("GET", "/api/v1/projects", Some(TOKEN), None);
    assert_eq!((status, names(&body)), (200, vec!["shop".to_string()]), "{body}");
    let (status, body) = daemon.rest("GET", "", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["kind"], &body["metadata"]["name"]),
        (&json!("Project"), &json!("shop")),
        "{body}"
    );
    assert_eq!(body["status"]["stats"]["stages"]["count"], 6, "{body}");
    assert_eq!(body["status"]["barge"]["warehouses"], json!(["app", "other"]), "{body}");
    assert_eq!(
        body["status"]["barge"]["stages"].as_array().map(Vec::len),
        Some(6),
        "{body}"
    );
    let nope = daemon.request("GET", "/api/v1/projects/nope", Some(TOKEN), None);
    assert!(assert_problem(nope, 404, "not-found").contains("no project named \"nope\""));

    // Warehouses.
    let (status, body) = daemon.rest("GET", "/warehouses", None);
    assert_eq!(
        (status, names(&body)),
        (200, vec!["app".into(), "other".into()]),
        "{body}"
    );
    let (status, body) = daemon.rest("GET", "/warehouses/app", None);
    assert_eq!((status, &body["kind"]), (200, &json!("Warehouse")), "{body}");
    assert_eq!(body["status"]["barge"]["freight"], 1, "{body}");
    assert_eq!(body["spec"]["interval"], "1h", "{body}");
    assert_eq!(
        body["spec"]["subscriptions"][0]["image"]["repoURL"], "ghcr.io/acme/app",
        "{body}"
    );
    assert_eq!(
        body["status"]["lastFreightID"].as_str().map(str::len),
        Some(40),
        "{body}"
    );
    assert_problem(daemon.rest("GET", "/warehouses/nope", None), 404, "not-found");
    let (status, body) = daemon.rest("POST", "/warehouses/app/refresh", None);
    assert_eq!(
        (status, body),
        (202, json!({"warehouse": "app", "refresh": "requested"}))
    );

    // Stages.
    let (status, body) = daemon.rest("GET", "/stages", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        names(&body),
        ["canary", "dev", "prod", "qa", "slow", "staging"],
        "{body}"
    );
    let (status, body) = daemon.rest("GET", "/stages/qa", None);
    assert_eq!((status, &body["kind"]), (200, &json!("Stage")), "{body}");
    assert_eq!(body["metadata"], json!({"name": "qa", "namespace": "shop"}), "{body}");
    assert_eq!(
        body["spec"]["requestedFreight"][0]["origin"]["kind"], "Warehouse",
        "{body}"
    );
    assert!(body["status"]["barge"]["requests"].is_array(), "{body}");
    let message = assert_problem(daemon.rest("GET", "/stages/nope", None), 404, "not-found");
    assert!(message.contains("no Stage named \"nope\""), "{message}");

    // Freight: listed, filtered, one by alias, renamed, approved; bodies take only their fields.
    let (status, body) = daemon.rest("GET", "/freight", None);
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );
    let name = body["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    let (_, body) = daemon.rest("GET", &format!("/freight?alias={}", fx.alias), None);
    assert_eq!(names(&body), [name.as_str()], "{body}");
    let (_, body) = daemon.rest("GET", "/freight?alias=other&warehouse=app", None);
    assert_eq!(body, json!({"items": []}));
    let (status, body) = daemon.rest("GET", &format!("/freight/{}", fx.alias), None);
    assert_eq!((status, &body["metadata"]["name"]), (200, &json!(name)), "{body}");
    assert_eq!(
        (&body["kind"], &body["alias"]),
        (&json!("Freight"), &json!(fx.alias)),
        "{body}"
    );
    assert_eq!(body["origin"], json!({"kind": "Warehouse", "name": "app"}), "{body}");
    assert!(body["images"].is_array() && body.get("warehouse").is_none(), "{body}");
    assert_problem(daemon.rest("GET", "/freight/nope", None), 404, "not-found");
    let path = format!("/freight/{}", fx.alias);
    let message = assert_problem(
        daemon.rest("PATCH", &path, Some(json!({"alias": "rest-1", "actor": "mallory"}))),
        400,
        "invalid",
    );
    assert!(message.contains("unknown field `actor`"), "{message}");
    let (status, body) = daemon.request("PATCH", &format!("/api/v1/projects/shop{path}"), Some(TOKEN), Some("{"));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"], json!({"line": 1, "column": 1}), "{body}");
    let (status, body) = daemon.rest("PATCH", &path, Some(json!({"alias": "rest-1"})));
    assert_eq!((status, body), (200, json!({"freight": name, "alias": "rest-1"})));
    let (status, body) = daemon.rest("POST", "/freight/rest-1/approve", Some(json!({"stage": "prod"})));
    assert_eq!(
        (status, &body["approvedBy"]),
        (200, &json!("token:api-token")),
        "{body}"
    );

    // Promotions: queued (202), listed and filtered, one by name; the Freight is then in prod.
    // The queued promotion is answered as GET …/promotions/{name} serves it: Kargo's
    // Promotion resource, not barge's own summary.
    let (status, body) = daemon.rest("POST", "/stages/prod/promotions", Some(json!({"freight": "rest-1"})));
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (&body["apiVersion"], &body["kind"], &body["spec"]["stage"]),
        (&json!("kargo.akuity.io/v1alpha1"), &json!("Promotion"), &json!("prod")),
        "{body}"
    );
    assert_eq!(
        body["metadata"]["annotations"]["kargo.akuity.io/create-actor"], "token:api-token",
        "{body}"
    );
    assert!(body.get("name").is_none(), "not barge's PromotionInfo: {body}");
    let promotion = body["metadata"]["name"].as_str().unwrap().to_string();
    let (_, served) = daemon.rest("GET", &format!("/promotions/{promotion}"), None);
    for field in ["apiVersion", "kind", "metadata", "spec"] {
        assert_eq!(body[field], served[field], "{field}: {body} against {served}");
    }
    daemon.await_promotion(&promotion, "Succeeded");
    let (_, body) = daemon.rest("GET", "/promotions?stage=prod&phase=Succeeded", None);
    assert_eq!(names(&body), [promotion.as_str()], "{body}");
    let (_, body) = daemon.rest("GET", "/promotions?stage=prod&phase=Running", None);
    assert_eq!(body, json!({"items": []}));
    let message = assert_problem(daemon.rest("GET", "/promotions?phase=Bogus", None), 400, "invalid");
    assert!(message.contains("Bogus"), "{message}");
    let (_, body) = daemon.rest("GET", "/freight?stage=prod", None);
    assert_eq!(names(&body), [name.as_str()], "{body}");
    assert!(body["items"][0]["status"]["currentlyIn"]["prod"].is_object(), "{body}");
    let (_, body) = daemon.rest("GET", &format!("/promotions/{promotion}"), None);
    assert_eq!(
        (&body["kind"], &body["spec"]),
        (&json!("Promotion"), &json!({"stage": "prod", "freight": name})),
        "{body}"
    );
    assert_eq!(
        body["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "token:api-token"
    );
    assert_eq!(body["status"]["freight"], json!({"name": name}), "{body}");
    assert!(body["status"]["finishedAt"].is_string(), "{body}");
    let (_, body) = daemon.rest("GET", "/stages/prod", None);
    assert_eq!(
        body["status"]["freightHistory"][0]["items"]["Warehouse/app"]["name"],
        json!(name),
        "{body}"
    );
    assert_eq!(body["status"]["lastPromotion"]["name"], json!(promotion), "{body}");
    assert_eq!(
        body["status"]["lastPromotion"]["status"]["phase"], "Succeeded",
        "{body}"
    );
    assert_problem(daemon.rest("GET", "/promotions/nope", None), 404, "not-found");

    // Downstream of dev is qa.
    let (status, body) = daemon.rest("POST", "/stages/dev/promotions", Some(json!({"freight": name})));
    assert_eq!(status, 202, "{body}");
    daemon.await_promotion(body["metadata"]["name"].as_str().unwrap(), "Succeeded");
    let (status, body) = daemon.rest(
        "POST",
        "/stages/dev/promotions/downstream",
        Some(json!({"freight": name})),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(
        (&body["items"][0]["kind"], &body["items"][0]["spec"]["stage"]),
        (&json!("Promotion"), &json!("qa")),
        "{body}"
    );

    // A promotion that runs: a second into its Stage conflicts (409) until it is aborted;
    // aborting it again conflicts too.
    let promote_slow = || daemon.rest("POST", "/stages/slow/promotions", Some(json!({"freight": name})));
    let (status, body) = promote_slow();
    assert_eq!(status, 202, "{body}");
    let slow = body["metadata"]["name"].as_str().unwrap().to_string();
    let message = assert_problem(promote_slow(), 409, "conflict");
    assert!(message.contains("still promoting"), "{message}");
    let (status, body) = daemon.rest("POST", &format!("/promotions/{slow}/abort"), None);
    assert_eq!(
        (status, &body["kind"], &body["status"]["phase"]),
        (200, &json!("Promotion"), &json!("Aborted")),
        "{body}"
    );
    assert_problem(
        daemon.rest("POST", &format!("/promotions/{slow}/abort"), None),
        409,
        "conflict",
    );

    // Verification: the one the promotion into staging started runs until aborted; a new
    // one is queued (202).
    let (status, body) = daemon.rest("POST", "/stages/staging/promotions", Some(json!({"freight": name})));
    assert_eq!(status, 202, "{body}");
    daemon.await_promotion(body["metadata"]["name"].as_str().unwrap(), "Succeeded");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = daemon.rest("GET", "/stages/staging", None);
        if body["status"]["barge"]["lastVerification"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "no verification started: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = daemon.rest("POST", "/stages/staging/verification/abort", None);
    assert_eq!((status, &body["phase"]), (200, &json!("Aborted")), "{body}");
    let (status, body) = daemon.rest("POST", "/stages/staging/verification", None);
    assert_eq!((status, &body["actor"]), (202, &json!("token:api-token")), "{body}");

    // Hold and release.
    let (status, body) = daemon.rest("POST", "/stages/canary/hold", None);
    assert_eq!(
        (status, body["holds"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );
    let (status, body) = daemon.rest("POST", "/stages/canary/release", None);
    assert_eq!((status, body), (200, json!({"stage": "canary", "released": 1})));

    // History pages back with its cursor; every change above was the token's.
    let (status, first) = daemon.rest("GET", "/history?limit=3", None);
    assert_eq!(
        (status, first["items"].as_array().map(Vec::len)),
        (200, Some(3)),
        "{first}"
    );
    let cursor = first["continue"].as_str().unwrap();
    let last = &first["items"][2];
    assert_eq!(cursor, format!("{}.{}", last["at"], last["id"]));
    let (_, second) = daemon.rest("GET", &format!("/history?limit=3&continue={cursor}"), None);
    let (_, six) = daemon.rest("GET", "/history?limit=6", None);
    let paged: Vec<&Value> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .collect();
    assert_eq!(paged, six["items"].as_array().unwrap().iter().collect::<Vec<_>>());
    let (_, all) = daemon.rest("GET", "/history?limit=1000", None);
    assert!(all.get("continue").is_none(), "{all}");
    let (_, body) = daemon.rest("GET", "/history?stage=canary", None);
    let kinds: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["stage.released", "stage.held"], "{body}");
    for kind in [
        "freight.aliased",
        "freight.approved",
        "promotion.created",
        "stage.held",
        "promotion.aborted",
    ] {
        let actors: Vec<&Value> = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| &e["actor"])
            .collect();
        assert!(!actors.is_empty(), "no {kind} in {all}");
        assert!(actors.iter().all(|a| *a == "token:api-token"), "{kind}: {actors:?}");
    }
    let message = assert_problem(daemon.rest("GET", "/history?actor=x", None), 400, "invalid");
    assert!(message.contains("unknown field `actor`"), "{message}");
    assert_problem(daemon.rest("GET", "/history?limit=0", None), 400, "invalid");
    assert_problem(daemon.rest("GET", "/history?continue=x", None), 400, "invalid");
}

fn rest_errors_are_one_json_shape_with_the_status_of_their_class(backend: Backend) {
    let (fx, _hang) = rest_fixture_on(backend);
    let wall = fx.create_token("wall", &["--role", "viewer"]);
    let daemon = fx.daemon(&[], &[]);
    let promote = json!({"freight": fx.alias}).to_string();
    let path = "/api/v1/projects/shop/stages/prod/promotions";

    let message = assert_problem(daemon.request("POST", path, None, Some(&promote)), 401, "auth");
    assert!(message.contains("no bearer token"), "{message}");
    assert_problem(
        daemon.request("GET", "/api/v1/projects", Some("barge_0000"), None),
        401,
        "auth",
    );
    // A viewer reads, and may not promote.
    let (status, body) = daemon.request("GET", "/api/v1/projects/shop/stages", Some(&wall), None);
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(6)),
        "{body}"
    );
    let message = assert_problem(
        daemon.request("POST", path, Some(&wall), Some(&promote)),
        403,
        "forbidden",
    );
    assert!(message.contains("may not promote"), "{message}");
    // A Stage or Freight the definitions do not have, or a body that is not what the route takes.
    let nope = "/api/v1/projects/shop/stages/nope/promotions";
    assert_problem(
        daemon.request("POST", nope, Some(TOKEN), Some(&promote)),
        404,
        "not-found",
    );
    let unknown = json!({"freight": "nope"}).to_string();
    assert_problem(
        daemon.request("POST", path, Some(TOKEN), Some(&unknown)),
        404,
        "not-found",
    );
    let message = assert_problem(daemon.request("POST", path, Some(TOKEN), Some("{}")), 400, "invalid");
    assert!(message.contains("missing field `freight`"), "{message}");
    // A route or method the API does not have.
    let message = assert_problem(
        daemon.request("GET", "/api/v1/projects/shop/nothing", Some(TOKEN), None),
        404,
        "no-route",
    );
    assert!(message.contains("GET /api/v1/projects/shop/nothing"), "{message}");
    let stages = "/api/v1/projects/shop/stages";
    assert_problem(
        daemon.request("DELETE", stages, Some(TOKEN), None),
        405,
        "method-not-allowed",
    );
    // The body limit applies to every route.
    let big = format!("{{\"freight\": \"{}\"}}", "x".repeat(2 << 20));
    assert_problem(daemon.request("POST", path, Some(TOKEN), Some(&big)), 413, "too-large");
    // Nothing was promoted, and the refusals are audited.
    let history = fx.history();
    assert!(
        !history.iter().any(|e| e["kind"] == "promotion.created"),
        "{history:#?}"
    );
    assert!(
        history
            .iter()
            .any(|e| e["kind"] == "access.denied" && e["actor"] == "token:wall"),
        "{history:#?}"
    );
}

/// The resource routes docs/reference/api.md lists, as `(METHOD, /api/v1/projects...)` (its `…` stands for
/// `/api/v1/projects/{project}`).
fn routes_in_the_reference() -> std::collections::BTreeSet<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reference = std::fs::read_to_string(root.join("docs/reference/api.md")).unwrap();
    reference
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| {
            let (method, path) = code.split_once(' ')?;
            let path = path.replace('…', "/api/v1/projects/{project}");
            // The document itself is not a REST route.
            let rest = path.starts_with("/api/v1/") && path != "/api/v1/openapi.json";
            (["GET", "POST", "PATCH"].contains(&method) && rest && !path.contains(' '))
                .then(|| (method.to_string(), path))
        })
        .collect()
}

#[test]
fn the_openapi_document_validates_and_lists_every_route_the_server_answers_and_the_reference_documents() {
    let (fx, _hang) = rest_fixture();
    let daemon = fx.daemon(&[], &[]);
    // Served without a token, as OpenAPI 3.1.
    let (status, document) = daemon.request("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200, "{document}");
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."), "{document}");

    // A real validator (scripts/install-deploy-tools installs it).
    let file = fx.dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let out = Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openapi-spec-validator ({e}): run ./scripts/test, or `. scripts/test-env` first, which installs it")
        });
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let documented: std::collections::BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "patch", "put", "delete"].contains(&k.as_str()))
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    assert_eq!(documented, routes_in_the_reference());
    assert_eq!(documented.len(), 30);
    // The resources' GETs answer Kargo's shapes, and the document describes them (issue #16).
    let schemas = &document["components"]["schemas"];
    for (path, kind) in [
        ("/api/v1/projects/{project}", "Project"),
        ("/api/v1/projects/{project}/stages/{name}", "Stage"),
        ("/api/v1/projects/{project}/freight/{name}", "Freight"),
        ("/api/v1/projects/{project}/promotions/{name}", "Promotion"),
        ("/api/v1/projects/{project}/warehouses/{name}", "Warehouse"),
    ] {
        let answer = &document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(
            answer["$ref"],
            format!("#/components/schemas/{kind}"),
            "{path}: {answer}"
        );
        let properties = schemas[kind]["properties"].as_object().unwrap();
        for field in ["apiVersion", "kind", "metadata", "status"] {
            assert!(properties.contains_key(field), "{kind} has no {field}: {properties:?}");
        }
    }
    // The routes that queue or abort a promotion answer that same Promotion resource.
    for (path, status) in [
        ("/api/v1/projects/{project}/stages/{name}/promotions", "202"),
        ("/api/v1/projects/{project}/promotions/{name}/abort", "200"),
    ] {
        let answer = &document["paths"][path]["post"]["responses"][status]["content"]["application/json"]["schema"];
        assert_eq!(answer["$ref"], "#/components/schemas/Promotion", "{path}: {answer}");
    }
    let downstream = &document["paths"]["/api/v1/projects/{project}/stages/{name}/promotions/downstream"]["post"]["responses"]
        ["202"]["content"]["application/json"]["schema"];
    let items = downstream["properties"]["items"]["items"]["$ref"]
        .as_str()
        .or(downstream["$ref"].as_str())
        .unwrap_or_default();
    assert!(items.ends_with("Promotion"), "downstream: {downstream}");
    let stage_status = schemas["StageStatus"]["properties"].as_object().unwrap();
    for field in [
        "conditions",
        "freightHistory",
        "health",
        "lastPromotion",
        "autoPromotionHolds",
        "barge",
    ] {
        assert!(stage_status.contains_key(field), "StageStatus has no {field}");
    }
    // Each is served: the server's router answers it (its own 404 and 405 are not JSON), with
    // the REST API's answer or error.
    for (method, path) in &documented {
        let path = path.replace("{project}", "shop").replace("{name}", "nope");
        let body = (method != "GET").then_some("{}");
        let (status, answer) = daemon.request(method, &path, Some(TOKEN), body);
        assert!(
            (200..300).contains(&status) || answer["code"].is_string(),
            "{method} {path}: {status} {answer}"
        );
        assert!(
            !["no-route", "method-not-allowed"].contains(&answer["code"].as_str().unwrap_or_default()),
            "{method} {path}: {answer}"
        );
    }
}

/// A dry run's Stage `{STAGE}`: it edits its overlay in the config repository at
/// `https://git.example.com/acme/config.git`, then calls `{HOOK}`.
const DRY_RUN_STAGE: &str = r#"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: {STAGE}, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {SOURCES}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
        - uses: kustomize-set-image
          config:
            path: ./src/env/${{ ctx.stage }}
            images: [{image: ghcr.io/acme/app}]
        - uses: git-commit
          config: {path: ./src, message: "Promote ${{ ctx.targetFreight.alias }}"}
        - uses: git-push
          as: push
          config: {path: ./src}
        - uses: http
          as: notify
          config: {url: "{HOOK}", method: POST}
"#;

/// Issue #16: `POST …/promotions?dryRun=true` answers the diff the push would land (the image
/// tag change in the overlay) without pushing, storing a promotion or sending the `http`
/// step's request; it refuses what a promotion refuses, alike; it takes the promote right
/// (a viewer gets 403); and `barge promote --dry-run --server` prints it.
#[test]
fn a_dry_run_answers_the_diff_each_push_would_land_and_changes_nothing() {
    let fx = Fixture::new();
    let root = fx.dir.path().join("git");
    let overlay = |stage: &str| {
        format!("# {stage}\nresources: [../../base]\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 0.9.0\n")
    };
    let bare = support::bare_repo(
        &root,
        "config.git",
        &[
            ("env/web/kustomization.yaml", &overlay("web")),
            ("env/web-prod/kustomization.yaml", &overlay("web-prod")),
        ],
    );
    let git_daemon = support::GitDaemon::start(&root);
    // The `http` step's receiver: a request to it would be queued in its backlog.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    hook.set_nonblocking(true).unwrap();
    let hook_url = format!("http://127.0.0.1:{}/deployed", hook.local_addr().unwrap().port());
    // `web` takes Freight straight from the Warehouse, `web-prod` only Freight verified in web.
    let stage = |name: &str, sources: &str| {
        DRY_RUN_STAGE
            .replace("{STAGE}", name)
            .replace("{SOURCES}", sources)
            .replace("{HOOK}", &hook_url)
    };
    let stages = stage("web", "{direct: true}") + &stage("web-prod", "{stages: [web]}");
    std::fs::write(&fx.defs, format!("{DEFINITIONS}{stages}")).unwrap();
    let rewrite = format!("https://git.example.com/acme/=git://127.0.0.1:{}/", git_daemon.port);
    let daemon = fx.daemon(&["--rewrite", &rewrite], &[]);
    let head = support::git(&bare, &["rev-parse", "main"]);
    let freight = json!({"freight": fx.alias});

    let (status, plan) = daemon.rest("POST", "/stages/web/promotions?dryRun=true", Some(freight.clone()));
    assert_eq!(status, 200, "{plan}\n{}", daemon.log());
    assert_eq!(
        (&plan["stage"], &plan["phase"]),
        (&json!("web"), &json!("Succeeded")),
        "{plan}"
    );
    assert_eq!(plan["alias"], json!(fx.alias), "{plan}");
    let pushes = plan["pushes"].as_array().unwrap();
    assert_eq!(pushes.len(), 1, "{plan}");
    assert_eq!(
        pushes[0]["repoURL"], "https://git.example.com/acme/config.git",
        "{plan}"
    );
    assert_eq!(pushes[0]["branch"], "main", "{plan}");
    assert_eq!(pushes[0]["files"], json!(["env/web/kustomization.yaml"]), "{plan}");
    let diff = pushes[0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    newTag: 0.9.0\n+    newTag: 1.0.0\n"),
        "the image tag change in the overlay: {diff}"
    );
    let skipped: Vec<(&str, &str)> = plan["skippedSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["uses"].as_str().unwrap()))
        .collect();
    assert_eq!(skipped, [("push", "git-push"), ("notify", "http")], "{plan}");
    assert_eq!(support::git(&bare, &["rev-parse", "main"]), head, "nothing pushed");
    let (status, promotions) = daemon.rest("GET", "/promotions", None);
    assert_eq!((status, &promotions["items"]), (200, &json!([])), "no promotion stored");
    assert_eq!(
        hook.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the http step sent nothing"
    );

    // Freight not verified in web: refused as the promotion itself is refused.
    let dry = daemon.rest("POST", "/stages/web-prod/promotions?dryRun=true", Some(freight.clone()));
    let real = daemon.rest("POST", "/stages/web-prod/promotions", Some(freight.clone()));
    let code = real.1["code"].as_str().unwrap().to_string();
    let status = real.0;
    assert!((400..500).contains(&status), "{real:?}");
    assert_eq!(assert_problem(dry, status, &code), real.1["message"].as_str().unwrap());

    // It takes the right to promote into the Stage, which a viewer has not.
    let wall = fx.create_token("wall", &["--role", "viewer"]);
    let path = "/api/v1/projects/shop/stages/web/promotions?dryRun=true";
    let viewer = daemon.request("POST", path, Some(&wall), Some(&freight.to_string()));
    assert_problem(viewer, 403, "forbidden");

    // The CLI through the server: the same plan, and the diff for people.
    let cli = |extra: &[&str]| {
        let out = fx
            .command(&["promote", "--stage", "web", "--freight", &fx.alias, "--dry-run"])
            .args(["--server", &daemon.url, "--token-file", fx.token_file.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    let json_plan: Value = serde_json::from_str(&cli(&["-o", "json"])).unwrap();
    assert_eq!(json_plan["pushes"], plan["pushes"]);
    let text = cli(&[]);
    assert!(text.contains("+    newTag: 1.0.0"), "{text}");
    assert!(text.contains("# notify (http): "), "{text}");
    assert!(
        text.contains(&format!("Dry run of {} into web: Succeeded", fx.alias)),
        "{text}"
    );
    assert_eq!(support::git(&bare, &["rev-parse", "main"]), head, "nothing pushed");
}

/// `/metrics` is refused without a token (and audited as any 401), and read anonymously
/// when `--anonymous-role viewer` allows reading without one.
#[test]
fn metrics_need_a_token_unless_anonymous_viewers_may_read() {
    let fx = Fixture::new();
    let closed = fx.daemon(&[], &[]);
    let (status, body) = closed.get("/metrics");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("barge_"), "{body}");
    drop(closed);
    assert!(
        fx.history()
            .iter()
            .any(|e| e["kind"] == "access.denied" && e["subject"] == "Call/unauthenticated")
    );
    let open = fx.daemon(&["--anonymous-role", "viewer"], &[]);
    let (status, body) = open.get("/metrics");
    assert_eq!(status, 200, "{body}");
    // Counters appear with their first event; the work in the store is always there.
    let metrics = barge_testkit::metrics::Metrics::parse(body.as_str());
    assert!(metrics.has("# TYPE barge_work gauge"), "{body}");
    assert!(
        metrics.has("barge_work{kind=\"promotion\",state=\"queued\"} 0"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF: {body}");
}

/// One Server-Sent Events message of a watch.
#[derive(Debug)]
struct Sse {
    /// `ADDED`, `MODIFIED` or `DELETED`; none for an id alone.
    event: Option<String>,
    id: Option<i64>,
    data: Value,
}

/// A watch (`?watch=true`) read as it streams, message by message.
struct Watcher {
    stream: std::io::BufReader<TcpStream>,
    /// Decoded body not yet parsed into messages.
    pending: String,
}

impl Daemon {
    /// `GET …PATH` as a watch with the token, resuming after `last_id`: its response head
    /// must be a 200 event stream.
    fn watch(&self, path: &str, last_id: Option<i64>) -> Watcher {
        let mut s = self.connect(Duration::from_secs(30));
        let resume = last_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
        write!(
            s,
            "GET /api/v1/projects/shop{path} HTTP/1.1\r\nHost: barge\r\nAuthorization: Bearer {TOKEN}\r\n{resume}\r\n"
        )
        .unwrap();
        let mut stream = std::io::BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut stream, &mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        Watcher {
            stream,
            pending: String::new(),
        }
    }
}

impl Watcher {
    /// The next message: an event, or none for a heartbeat (reads bounded by the
    /// connection's timeout).
    fn message(&mut self) -> Option<Sse> {
        use std::io::BufRead;
        loop {
            if let Some((message, rest)) = self.pending.split_once("\n\n") {
                let (message, rest) = (message.to_string(), rest.to_string());
                self.pending = rest;
                if message.starts_with(':') {
                    return None;
                }
                let mut sse = Sse {
                    event: None,
                    id: None,
                    data: Value::Null,
                };
                for line in message.lines() {
                    match line.split_once(": ") {
                        Some(("event", e)) => sse.event = Some(e.to_string()),
                        Some(("id", id)) => sse.id = Some(id.parse().unwrap()),
                        Some(("data", d)) => sse.data = serde_json::from_str(d).unwrap(),
                        _ => panic!("not an SSE line: {line:?}"),
                    }
                }
                return Some(sse);
            }
            // One chunk of the chunked body.
            let mut size = String::new();
            self.stream.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("not a chunk: {size:?}"));
            assert!(size > 0, "the watch ended");
            let mut chunk = vec![0; size + 2];
            self.stream.read_exact(&mut chunk).unwrap();
            self.pending.push_str(std::str::from_utf8(&chunk[..size]).unwrap());
        }
    }

    /// The next event, past heartbeats.
    fn next(&mut self) -> Sse {
        loop {
            if let Some(m) = self.message() {
                return m;
            }
        }
    }

    /// The next message is a heartbeat.
    fn heartbeat(&mut self) {
        let m = self.message();
        assert!(m.is_none(), "an event instead of a heartbeat: {m:?}");
    }

    /// The first objects (ADDED, without ids) and the id after them.
    fn first(&mut self) -> (Vec<Value>, i64) {
        let mut objects = Vec::new();
        loop {
            let m = self.next();
            match (m.event.as_deref(), m.id) {
                (Some("ADDED"), None) => objects.push(m.data["object"].clone()),
                (None, Some(id)) => return (objects, id),
                _ => panic!("not a first object: {m:?}"),
            }
        }
    }
}

/// The ids of the audit rows about these promotions, oldest first.
fn promotion_rows(daemon: &Daemon, names: &[&str]) -> Vec<i64> {
    let (status, body) = daemon.rest("GET", "/history?limit=1000", None);
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<i64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            names
                .iter()
                .any(|n| e["subject"].as_str() == Some(&format!("Promotion/{n}")))
        })
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// Promotes `freight` into `stage` through the REST API: the promotion's name.
fn promote_rest(daemon: &Daemon, stage: &str, freight: &str) -> String {
    let (status, body) = daemon.rest(
        "POST",
        &format!("/stages/{stage}/promotions"),
        Some(json!({"freight": freight})),
    );
    assert_eq!(status, 202, "{body}");
    body["metadata"]["name"].as_str().unwrap().to_string()
}

/// A watch's events, read until `done` says the last one ends what the test waits for.
fn read_until(w: &mut Watcher, done: impl Fn(&Sse) -> bool) -> Vec<Sse> {
    let mut got = Vec::new();
    loop {
        let m = w.next();
        let end = done(&m);
        got.push(m);
        if end {
            return got;
        }
    }
}

#[test]
fn a_watch_shows_a_promotions_events_in_order_and_resumes_after_its_last_id_missing_none() {
    let (fx, _hang) = rest_fixture();
    let daemon = fx.daemon(&[], &[("BARGE_WATCH_HEARTBEAT", "100ms")]);

    // Without a token: 401, as every route.
    let refused = daemon.request("GET", "/api/v1/projects/shop/promotions?watch=true", None, None);
    assert_problem(refused, 401, "auth");
    // A watch follows the whole list.
    let filtered = daemon.rest("GET", "/promotions?watch=true&stage=dev", None);
    assert_problem(filtered, 400, "invalid");

    // The Stages first: every one ADDED, as the list answers them.
    let mut stages = daemon.watch("/stages?watch=true", None);
    let (objects, _) = stages.first();
    let (_, list) = daemon.rest("GET", "/stages", None);
    assert_eq!(Value::Array(objects), list["items"]);

    let mut w = daemon.watch("/promotions?watch=true", None);
    let (objects, start) = w.first();
    assert_eq!(objects, Vec::<Value>::new());
    let dev = promote_rest(&daemon, "dev", &fx.alias);
    let succeeded = |m: &Sse| {
        m.data["object"]["metadata"]["name"] == dev.as_str() && m.data["object"]["status"]["phase"] == "Succeeded"
    };
    let mut events = read_until(&mut w, succeeded);
    // Its last rows (the Freight entering the Stage) may follow the phase.
    let rows = promotion_rows(&daemon, &[&dev]);
    while events.len() < rows.len() {
        events.push(w.next());
    }
    // ADDED first, then MODIFIED; each message's type is its event's; every id is one of
    // the promotion's audit rows, in order.
    assert_eq!(events[0].event.as_deref(), Some("ADDED"), "{events:?}");
    assert!(
        events[1..].iter().all(|m| m.event.as_deref() == Some("MODIFIED")),
        "{events:?}"
    );
    assert!(
        events.iter().all(|m| m.data["type"].as_str() == m.event.as_deref()),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|m| m.data["object"]["metadata"]["name"] == dev.as_str()),
        "{events:?}"
    );
    let ids: Vec<i64> = events.iter().map(|m| m.id.unwrap()).collect();
    assert!(ids[0] > start, "{ids:?} after {start}");
    assert_eq!(ids, rows);
    // The object is what GET answers for it.
    let (_, one) = daemon.rest("GET", &format!("/promotions/{dev}"), None);
    assert_eq!(events.last().unwrap().data["object"], one);
    // Heartbeats arrive while nothing happens (every 100 ms here).
    drop(stages);
    w.heartbeat();
    w.heartbeat();

    // Reconnect: a watch cut after the first event of a promotion into qa ...
    let mut cut = daemon.watch("/promotions?watch=true", Some(*ids.last().unwrap()));
    let qa = promote_rest(&daemon, "qa", &fx.alias);
    let before = cut.next();
    assert_eq!(
        (before.event.as_deref(), &before.data["object"]["metadata"]["name"]),
        (Some("ADDED"), &json!(qa)),
        "{before:?}"
    );
    drop(cut);
    // ... misses none of it when it resumes after its last id, while another promotion
    // ran unseen, and shows none twice.
    daemon.await_promotion(&qa, "Succeeded");
    let prod = promote_rest(&daemon, "prod", &fx.alias);
    daemon.await_promotion(&prod, "Succeeded");
    let mut resumed = daemon.watch("/promotions?watch=true", before.id);
    let rows = promotion_rows(&daemon, &[&qa, &prod]);
    let mut after = Vec::new();
    while after.len() + 1 < rows.len() {
        after.push(resumed.next());
    }
    // Exactly the rows, each once, in order: the resumed watch starts after the cut one's id.
    let seen: Vec<i64> = std::iter::once(&before).chain(&after).map(|m| m.id.unwrap()).collect();
    assert_eq!(seen, rows);
    let last = &after.last().unwrap().data["object"];
    assert_eq!(
        (&last["metadata"]["name"], &last["status"]["phase"]),
        (&json!(prod), &json!("Succeeded"))
    );
}

#[test]
fn watchers_that_do_not_read_never_hold_up_a_promotion() {
    let (fx, _hang) = rest_fixture();
    let daemon = fx.daemon(&[], &[("BARGE_WATCH_HEARTBEAT", "10ms")]);
    // Watches that never read past their response head while heartbeats and events pile up.
    let stalled: Vec<Watcher> = ["/promotions", "/stages", "/freight", "/warehouses"]
        .iter()
        .map(|list| daemon.watch(&format!("{list}?watch=true"), None))
        .collect();
    let dev = promote_rest(&daemon, "dev", &fx.alias);
    daemon.await_promotion(&dev, "Succeeded");
    let qa = promote_rest(&daemon, "qa", &fx.alias);
    daemon.await_promotion(&qa, "Succeeded");
    drop(stalled);
}

#[test]
fn a_watch_that_stops_reading_loses_its_connection_and_one_that_reads_keeps_it() {
    let (fx, _hang) = rest_fixture();
    // Freight larger than what loopback sockets buffer both ways (a few MiB): the freight
    // watch's first object fills them while its client reads nothing.
    let size = 16 << 20;
    let padding = [("org.example.padding".to_string(), "x".repeat(size))].into();
    support::mint_annotated_freight(&fx.db, "1.0.1", padding);
    let bound = Duration::from_secs(1);
    let daemon = fx.daemon(
        &[],
        &[("BARGE_API_WRITE_TIMEOUT", "1s"), ("BARGE_WATCH_HEARTBEAT", "100ms")],
    );
    let mut reading = daemon.watch("/stages?watch=true", None);
    reading.first();
    let stalled = daemon.watch("/freight?watch=true", None);
    // The stalled client reads nothing for three bounds; the other reads its heartbeats
    // all along, and they are progress: its watch goes on.
    let until = Instant::now() + 3 * bound;
    while Instant::now() < until {
        reading.heartbeat();
    }
    // When the stalled client reads again, the server has closed its connection: what the
    // sockets held, then the end (or a reset), short of the whole first object. Before the
    // write timeout it got all of it, then heartbeats for as long as it read.
    let mut stream = stalled.stream;
    let mut buf = vec![0; 1 << 16];
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let end = loop {
        assert!(
            Instant::now() < deadline,
            "the connection of a client that stopped reading is still open ({read} bytes read)"
        );
        match stream.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => read += n,
            Err(e) => break Some(e),
        }
    };
    assert!(
        end.as_ref()
            .is_none_or(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{end:?} after {read} bytes"
    );
    assert!(read < size, "the whole first object arrived ({read} bytes)");
    reading.heartbeat();
}

/// The web UI's Freight timeline at `path` (anonymous viewer): the names of its rows, and
/// its "Older" link.
fn timeline_page(daemon: &Daemon, path: &str) -> (Vec<String>, Option<String>) {
    let (status, html) = daemon.get(path);
    assert_eq!(status, 200, "{html}");
    let rows = html
        .split(r#"<a class="alias" href="/projects/shop/freight/"#)
        .skip(1)
        .map(|r| r.split('"').next().unwrap().to_string())
        .collect();
    let next = html
        .split(r#"<a href=""#)
        .skip(1)
        .find(|a| a.contains(r#"" rel="next""#))
        .map(|a| a.split('"').next().unwrap().replace("&amp;", "&"));
    (rows, next)
}

/// `POST /sign-in` of `token` (no Origin, as a same-site form from a client that sends none),
/// with these extra header lines: the status and the `Set-Cookie` values.
fn sign_in(daemon: &Daemon, token: &str, headers: &str) -> (u16, Vec<String>) {
    let body = format!("token={token}&next=%2F");
    let mut s = daemon.connect(Duration::from_secs(30));
    write!(
        s,
        "POST /sign-in HTTP/1.1\r\nHost: barge\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let head = answer.split_once("\r\n\r\n").map_or(answer.as_str(), |(h, _)| h);
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let cookies = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.trim().to_string())
        .collect();
    (status, cookies)
}

/// The UI's session cookie from a running `barge serve`: HttpOnly and SameSite=Strict always,
/// Secure when the request came over TLS to the proxy in front of barge (`X-Forwarded-Proto:
/// https`), and never the token itself.
#[test]
fn the_session_cookie_is_httponly_strict_and_secure_behind_tls() {
    let fx = Fixture::new();
    let daemon = fx.daemon(&[], &[]);
    let (status, cookies) = sign_in(&daemon, TOKEN, "");
    assert_eq!(status, 303, "{cookies:?}\n{}", daemon.log());
    let [cookie] = cookies.as_slice() else {
        panic!("one cookie expected: {cookies:?}")
    };
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"HttpOnly"), "{cookie}");
    assert!(attributes.contains(&"SameSite=Strict"), "{cookie}");
    assert!(!attributes.contains(&"Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(TOKEN), "{cookie}");

    let (status, cookies) = sign_in(&daemon, TOKEN, "X-Forwarded-Proto: https\r\n");
    assert_eq!(status, 303, "{cookies:?}");
    let [cookie] = cookies.as_slice() else {
        panic!("one cookie expected: {cookies:?}")
    };
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"Secure"), "over TLS: {cookie}");
    assert!(
        attributes.contains(&"HttpOnly") && attributes.contains(&"SameSite=Strict"),
        "{cookie}"
    );

    // A wrong token gets the sign-in page again and no session.
    let (status, cookies) = sign_in(&daemon, "not-the-token", "");
    assert_eq!((status, cookies.len()), (401, 0), "{cookies:?}");
}

#[test]
fn the_freight_timeline_reads_a_page_at_a_time_by_cursor_so_freight_minted_meanwhile_shifts_nothing() {
    let fx = Fixture::new();
    // 1,050 Freight (with the fixture's one): 21 pages of 50.
    let tags: Vec<String> = (0..1049).map(|i| format!("2.0.{i}")).collect();
    support::mint_many_freight(&fx.db, &tags, 1);
    let daemon = fx.daemon(&["--anonymous-role", "viewer"], &[]);
    let (first, mut next) = timeline_page(&daemon, "/projects/shop/freight");
    assert_eq!(first.len(), 50, "{first:?}");
    assert!(next.is_some(), "the first page links no older one");
    let (status, html) = daemon.get("/projects/shop/freight");
    assert_eq!(status, 200);
    assert!(html.contains("1050 Freight, newest first"), "{html}");
    // Freight minted after the first page was shown is on no older page, and the older pages
    // neither repeat nor skip any (an offset page would shift by one and repeat the last row).
    // Two seconds later (the others are at the epoch's first millisecond): cursors are to the
    // second, as Kargo's times, and within one second the name orders.
    let newer = support::mint_many_freight(&fx.db, &["3.0.0".to_string()], 2000).remove(0);
    let mut seen = first.clone();
    while let Some(path) = next {
        let (rows, more) = timeline_page(&daemon, &path);
        assert!(rows.len() <= 50 && !rows.is_empty(), "{path}: {rows:?}");
        seen.extend(rows);
        next = more;
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a Freight was on two pages");
    assert_eq!(seen.len(), 1050, "the pages miss Freight");
    let (now, _) = timeline_page(&daemon, "/projects/shop/freight");
    assert_eq!(now.len(), 50);
    assert!(!seen.contains(&now[0]), "{newer} was not new: {now:?}");
    // A cursor this server did not give is refused, not taken for the first page.
    let (status, html) = daemon.get("/projects/shop/freight?continue=nope");
    assert_eq!(status, 400, "{html}");
}

#[test]
fn freight_and_promotions_lists_page_with_limit_and_continue_and_freight_filters_by_verified_stage() {
    let (fx, _hang) = rest_fixture();
    let newer: Vec<String> = ["1.0.1", "1.0.2"]
        .iter()
        .map(|tag| support::mint_freight(&fx.db, tag))
        .collect();
    let daemon = fx.daemon(&[], &[]);
    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {body}"))
            .iter()
            .map(|i| {
                i["metadata"]["name"]
                    .as_str()
                    .or(i["name"].as_str())
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    // Pages of a list, `limit` at a time, following `continue` to the end.
    let pages = |list: &str, limit: usize| -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut path = format!("{list}?limit={limit}");
        loop {
            let (status, body) = daemon.rest("GET", &path, None);
            assert_eq!(status, 200, "{body}");
            pages.push(names(&body));
            match body["continue"].as_str() {
                Some(next) => path = format!("{list}?limit={limit}&continue={next}"),
                None => return pages,
            }
        }
    };

    let (_, all) = daemon.rest("GET", "/freight", None);
    assert_eq!(all.get("continue"), None, "{all}");
    let all = names(&all);
    assert_eq!(all.len(), 3);
    let paged = pages("/freight", 2);
    assert_eq!(paged.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(paged.concat(), all);
    assert_problem(daemon.rest("GET", "/freight?limit=0", None), 400, "invalid");
    assert_problem(
        daemon.rest("GET", "/freight?limit=2&continue=nope", None),
        400,
        "invalid",
    );

    // verifiedIn: the Freight a promotion into dev (no verification) left verified there.
    let dev = promote_rest(&daemon, "dev", &newer[1]);
    daemon.await_promotion(&dev, "Succeeded");
    let deadline = Instant::now() + Duration::from_secs(30);
    let verified = loop {
        let (status, body) = daemon.rest("GET", "/freight?verifiedIn=dev", None);
        assert_eq!(status, 200, "{body}");
        if !names(&body).is_empty() || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(verified["items"].as_array().map(Vec::len), Some(1), "{verified}");
    assert_eq!(verified["items"][0]["alias"], json!(newer[1]), "{verified}");
    let (_, none) = daemon.rest("GET", "/freight?verifiedIn=prod", None);
    assert_eq!(none, json!({"items": []}));

    // Promotions page the same way.
    let prod = promote_rest(&daemon, "prod", &fx.alias);
    daemon.await_promotion(&prod, "Succeeded");
    let (_, all) = daemon.rest("GET", "/promotions", None);
    let all = names(&all);
    assert_eq!(all.len(), 2);
    let paged = pages("/promotions", 1);
    assert_eq!(paged, [vec![all[0].clone()], vec![all[1].clone()]]);
    let (_, filtered) = daemon.rest("GET", "/promotions?stage=prod&limit=1", None);
    assert_eq!((names(&filtered), filtered.get("continue")), (vec![prod.clone()], None));

    // History by kind, and until a time: the prod promotion's creation, not dev's.
    let (status, created) = daemon.rest("GET", "/history?kind=promotion.created", None);
    assert_eq!(status, 200, "{created}");
    let created = created["items"].as_array().unwrap().clone();
    let subjects: Vec<&str> = created.iter().map(|e| e["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, [format!("Promotion/{prod}"), format!("Promotion/{dev}")]);
    assert!(created.iter().all(|e| e["kind"] == "promotion.created"), "{created:?}");
    let dev_at = created[1]["at"].as_i64().unwrap();
    let (_, until) = daemon.rest("GET", &format!("/history?kind=promotion.created&until={dev_at}"), None);
    let until: Vec<&Value> = until["items"].as_array().unwrap().iter().collect();
    assert_eq!(until, [&created[1]]);
}

/// `barge serve --oidc-*` through the REST API with an issuer's real keys: RS256 and ES256
/// tokens call with the role the first matching rule gives (audited as `oidc:SUBJECT`);
/// expired, wrong-audience, wrong-issuer, wrong-key, `alg: none` and HS256-with-the-public-key
/// tokens are refused 401; a token no rule maps, 403; a rotated key works once published,
/// the dropped one no longer; made-up `kid`s fetch the keys at most once per cooldown.
#[test]
fn oidc_tokens_are_verified_with_the_issuers_keys_and_mapped_to_roles_by_the_rules() {
    use barge_testkit::oidc::{SigningKey, TestIssuer, now, unsigned};
    let fx = Fixture::new();
    let issuer = TestIssuer::start("barge", "alice", json!({}));
    let rules = fx.dir.path().join("oidc-rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - match: {groups: platform}\n    role: admin\n  - match: {groups: [shop-devs]}\n    role: promoter\n    project: shop\n    stages: [dev]\n",
    )
    .unwrap();
    let cooldown = Duration::from_secs(1);
    let daemon = fx.daemon(
        &[
            "--oidc-issuer",
            &issuer.url,
            "--oidc-audience",
            "barge",
            "--oidc-rules",
            rules.to_str().unwrap(),
        ],
        &[("BARGE_OIDC_JWKS_COOLDOWN", "1s")],
    );
    let stages = |token: &str| daemon.request("GET", "/api/v1/projects/shop/stages", Some(token), None);
    let promote = |token: &str, stage: &str| {
        let body = json!({"freight": fx.alias}).to_string();
        daemon.request(
            "POST",
            &format!("/api/v1/projects/shop/stages/{stage}/promotions"),
            Some(token),
            Some(&body),
        )
    };
    let claims = |sub: &str, groups: &[&str]| issuer.claims("barge", sub, json!({"groups": groups}));

    // An admin by RS256, a promoter limited to dev by ES256.
    let admin = issuer.rsa.sign(&claims("alice", &["platform", "other"]));
    let (status, body) = stages(&admin);
    assert_eq!(status, 200, "{body}");
    let dev = issuer.ec.sign(&claims("bob", &["shop-devs"]));
    let (status, body) = promote(&dev, "dev");
    assert_eq!(status, 202, "{body}");
    let (status, body) = promote(&dev, "prod");
    assert_eq!(status, 403, "{body}");

    // Tokens that prove nothing are refused 401.
    let mut expired = claims("alice", &["platform"]);
    (expired["iat"], expired["exp"]) = (json!(now() - 7200), json!(now() - 3600));
    let mut not_yet = claims("alice", &["platform"]);
    not_yet["nbf"] = json!(now() + 3600);
    let mut other_audience = claims("alice", &["platform"]);
    other_audience["aud"] = json!("someone-else");
    let mut other_issuer = claims("alice", &["platform"]);
    other_issuer["iss"] = json!("http://127.0.0.1:1");
    let mut string_times = claims("alice", &["platform"]);
    string_times["nbf"] = json!((now() + 3600).to_string());
    let impostor = SigningKey::rsa("rsa-1");
    let refused = [
        ("expired", issuer.rsa.sign(&expired), "ExpiredSignature"),
        ("not yet valid", issuer.rsa.sign(&not_yet), "ImmatureSignature"),
        ("another audience", issuer.rsa.sign(&other_audience), "InvalidAudience"),
        ("another issuer", issuer.rsa.sign(&other_issuer), "InvalidIssuer"),
        ("a string nbf", issuer.rsa.sign(&string_times), "expected u64"),
        (
            "another key, the issuer's kid",
            impostor.sign(&claims("alice", &["platform"])),
            "InvalidSignature",
        ),
        (
            "alg none",
            unsigned(&claims("alice", &["platform"])),
            "unknown variant `none`",
        ),
        (
            "HS256, public key",
            issuer.rsa.forge_hs256(&claims("alice", &["platform"])),
            "HS256 is not",
        ),
        (
            "no JWT at all",
            "eyJhbGciOiJSUzI1NiJ9.bm9wZQ.bm9wZQ".to_string(),
            "InvalidSignature",
        ),
    ];
    for (what, token, why) in &refused {
        let (status, body) = stages(token);
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body["message"].as_str().unwrap().contains(why), "{what}: {body}");
    }

    // A valid token whose claims match no rule: 403.
    let nobody = issuer.rsa.sign(&claims("carol", &["marketing"]));
    let (status, body) = stages(&nobody);
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("no --oidc-rules rule matches"), "{body}");

    // Tokens with made-up kids fetch the keys at most once per cooldown.
    let before = issuer.jwks_fetches();
    let storm = Instant::now();
    let stranger = SigningKey::rsa("made-up");
    let made_up = stranger.sign(&claims("alice", &["platform"]));
    for _ in 0..20 {
        assert_eq!(stages(&made_up).0, 401);
    }
    let fetched = issuer.jwks_fetches() - before;
    let allowed = (storm.elapsed().as_secs_f64() / cooldown.as_secs_f64()).ceil() as usize + 1;
    assert!(
        fetched <= allowed,
        "{fetched} JWKS fetches for 20 tokens in {:?}",
        storm.elapsed()
    );

    // Rotation: a new key works once the issuer publishes it, the dropped one no longer.
    let rotated = SigningKey::rsa("rsa-2");
    issuer.publish(&[&rotated]);
    let fresh = rotated.sign(&claims("alice", &["platform"]));
    // Once the cooldown (1 s) is over; the loop ends as soon as it works, the deadline is for a
    // loaded machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = stages(&fresh);
        if status == 200 {
            break;
        }
        assert_eq!(status, 401, "{body}");
        assert!(Instant::now() < deadline, "the rotated key never worked: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(stages(&admin).0, 401, "the dropped key still works");

    // The audit names the subjects, never a token.
    let history = fx.history();
    let actors = |kind: &str| -> Vec<(String, u64)> {
        history
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_string(),
                    e["body"]["status"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    assert_eq!(
        actors("promotion.created"),
        [("oidc:bob".to_string(), 0)],
        "{history:#?}"
    );
    let denied = actors("access.denied");
    assert!(denied.contains(&("oidc:bob".into(), 403)), "{denied:?}");
    assert!(denied.contains(&("oidc:carol".into(), 403)), "{denied:?}");
    assert!(
        denied.iter().filter(|d| d.0 == "anonymous" && d.1 == 401).count() >= refused.len(),
        "{denied:?}"
    );
    let all = serde_json::to_string(&history).unwrap();
    assert!(
        !all.contains(&admin) && !all.contains(&nobody),
        "a token in the audit log"
    );
}

/// A rule file that is not one stops `barge serve` at start, naming file, line and column.
#[test]
fn a_bad_oidc_rule_file_stops_serve_naming_file_line_and_column() {
    let fx = Fixture::new();
    let rules = fx.dir.path().join("rules.yaml");
    std::fs::write(&rules, "rules:\n  - match: {groups: [a]}\n    role: owner\n").unwrap();
    let token_file = fx.token_file.to_str().unwrap();
    let args = [
        "--token-file",
        token_file,
        "--oidc-issuer",
        "http://127.0.0.1:1",
        "--oidc-audience",
        "barge",
        "--oidc-rules",
        rules.to_str().unwrap(),
    ];
    let child = fx
        .serve_command(support::free_port(), &args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = exits_within(child, Duration::from_secs(30), "barge serve with a bad rule file");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let expected = format!("{}:3:11: ", rules.display());
    assert!(
        stderr(&out).contains(&expected) && stderr(&out).contains("owner"),
        "{}",
        stderr(&out)
    );
}

/// What a CLI run shows: its exit status, stdout and stderr.
fn shown(c: &mut Command) -> (Option<i32>, String, String) {
    let out = c.output().unwrap();
    (out.status.code(), stdout(&out), stderr(&out))
}

/// Every verb that changes something, with `--server`, goes through its REST route and
/// prints what it prints in-process on a store of the same definitions and Freight, with the
/// same exit status: its answers and its errors (`{"code", "message"}` becomes the engine's
/// message, as in-process).
#[test]
fn write_verbs_through_the_rest_api_print_and_exit_as_in_process() {
    // qa auto-promotes (from dev, which has no Freight: nothing does), so it can be held.
    let policy = "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {name: shop, namespace: shop}\nspec:\n  promotionPolicies:\n    - stageSelector: {name: qa}\n      autoPromotionEnabled: true\n";
    let here = Fixture::new();
    let there = Fixture::new();
    for fx in [&here, &there] {
        std::fs::write(&fx.defs, format!("{DEFINITIONS}{policy}")).unwrap();
    }
    assert_eq!(here.alias, there.alias, "the same Freight in both stores");
    let daemon = there.daemon(&[], &[]);
    let alias = here.alias.as_str();
    let verbs: &[&[&str]] = &[
        &["hold", "stage", "qa"],
        &["release", "stage", "qa"],
        &["hold", "stage", "prod"],
        &["approve", "--freight", alias, "--stage", "qa"],
        &["update", "freight", alias, "--alias", "renamed", "-o", "json"],
        &["promote", "--stage", "prod", "--freight", "renamed", "--dry-run"],
        &[
            "promote",
            "--stage",
            "qa",
            "--freight",
            "renamed",
            "--dry-run",
            "-o",
            "yaml",
        ],
        &["promote", "--stage", "dev", "--freight", "nope", "--dry-run"],
        &["hold", "stage", "nope"],
        &["release", "stage", "dev", "--project", "elsewhere"],
        &["abort", "promotion", "nope"],
        &["verify", "stage", "dev"],
        &["verify", "stage", "dev", "--abort"],
        &["update", "freight", "nope", "--alias", "other"],
        &["approve", "--freight", "renamed", "--stage", "nope"],
        &["token", "revoke", "nope"],
        &["token", "create", "--name", "bad name!", "--role", "viewer"],
        &["token", "create", "--name", "ci", "--role", "viewer", "--stages", "dev"],
    ];
    let mut answers = Vec::new();
    for args in verbs {
        let in_process = shown(here.command(args).arg("-f").arg(&here.defs));
        let served = shown(&mut there.through(&daemon, args));
        assert_eq!(served, in_process, "barge {}", args.join(" "));
        answers.push(served);
    }
    // Answers and errors alike were compared.
    assert_eq!(answers[0].1, "auto-promotion into qa is held\n");
    assert_eq!(answers[1].1, "auto-promotion into qa released (1 hold(s) lifted)\n");
    assert_eq!(answers[3].1, format!("{alias} approved for qa\n"));
    assert!(
        answers[5].1.contains("Dry run of renamed into prod: Succeeded"),
        "{:?}",
        answers[5]
    );
    let errors = answers.iter().filter(|(code, _, _)| *code != Some(0)).count();
    assert_eq!(errors, verbs.len() - 6, "{answers:#?}");
}

/// The routes the CLI takes: `--server` sends each verb to its REST route, with `-` for
/// the project when none is given (the server finds it, or a list reads every project), and
/// the call endpoint the CLI used before is gone.
#[test]
fn every_verb_with_server_takes_its_rest_route_and_the_call_endpoint_is_gone() {
    let fx = Fixture::new();
    let daemon = fx.daemon(&[], &[]);
    let alias = fx.alias.as_str();
    // `POST /api/v1/call` is no route (404, in the REST API's error shape), whatever it names.
    for body in [json!({"op": "getStages"}), json!({"op": "version"})] {
        let refused = daemon.request("POST", "/api/v1/call", Some(TOKEN), Some(&body.to_string()));
        assert_problem(refused, 404, "no-route");
    }
    let cases: &[(&[&str], &str)] = &[
        (&["version"], "GET /api/v1/version"),
        (&["get", "replicas"], "GET /api/v1/replicas"),
        (&["get", "webhooks"], "GET /api/v1/webhooks"),
        (
            &["get", "webhooks", "--project", "shop"],
            "GET /api/v1/webhooks?project=shop",
        ),
        (
            &["get", "notifications"],
            "GET /api/v1/projects/-/notifications?limit=100",
        ),
        (
            &["get", "notifications", "--project", "shop", "--state", "failed"],
            "GET /api/v1/projects/shop/notifications?state=failed&limit=100",
        ),
        (&["history"], "GET /api/v1/projects/-/history?limit=100"),
        (
            &[
                "history",
                "--project",
                "shop",
                "--stage",
                "prod",
                "--kind",
                "stage.held",
                "--limit",
                "5",
            ],
            "GET /api/v1/projects/shop/history?stage=prod&kind=stage.held&limit=5",
        ),
        (&["stats"], "GET /api/v1/projects/-/stats"),
        (
            &["stats", "--project", "shop", "--stage", "prod"],
            "GET /api/v1/projects/shop/stats?stage=prod",
        ),
        (&["hold", "stage", "prod"], "POST /api/v1/projects/-/stages/prod/hold"),
        (
            &["release", "stage", "prod", "--project", "shop"],
            "POST /api/v1/projects/shop/stages/prod/release",
        ),
        (
            &["approve", "--freight", alias, "--stage", "qa"],
            &format!("POST /api/v1/projects/-/freight/{alias}/approve"),
        ),
        (
            &["update", "freight", alias, "--alias", "renamed"],
            &format!("PATCH /api/v1/projects/-/freight/{alias}"),
        ),
        (
            &["promote", "--stage", "prod", "--freight", "renamed", "--dry-run"],
            "POST /api/v1/projects/-/stages/prod/promotions?dryRun=true",
        ),
        (
            &["promote", "--stage", "prod", "--freight", "renamed"],
            "POST /api/v1/projects/-/stages/prod/promotions",
        ),
        (
            &["promote", "--downstream-from", "dev", "--freight", "renamed"],
            "POST /api/v1/projects/-/stages/dev/promotions/downstream",
        ),
        (
            &["verify", "stage", "prod"],
            "POST /api/v1/projects/-/stages/prod/verification",
        ),
        (
            &["verify", "stage", "prod", "--abort"],
            "POST /api/v1/projects/-/stages/prod/verification/abort",
        ),
        (
            &["abort", "promotion", "nope"],
            "POST /api/v1/projects/-/promotions/nope/abort",
        ),
        (
            &["refresh", "warehouse", "app"],
            "POST /api/v1/projects/-/warehouses/app/refresh",
        ),
        (
            &["token", "create", "--name", "ci", "--role", "viewer"],
            "POST /api/v1/tokens",
        ),
        (&["token", "list"], "GET /api/v1/tokens"),
        (&["token", "revoke", "ci"], "POST /api/v1/tokens/ci/revoke"),
        // `--wait` follows the queued promotion by name.
        (
            &["promote", "--stage", "dev", "--freight", "renamed", "--wait"],
            "GET /api/v1/projects/-/promotions/",
        ),
    ];
    for (args, route) in cases {
        let (method, path) = route.split_once(' ').unwrap();
        let (code, _, err) = shown(fx.through(&daemon, args).env("BARGE_LOG", "barge=debug"));
        let asked = format!("method={method} url={}{path}", daemon.url);
        assert!(err.contains(&asked), "barge {}: no {asked}:\n{err}", args.join(" "));
        assert!(!err.contains("/api/v1/call"), "barge {}:\n{err}", args.join(" "));
        // The reads (which went to the call endpoint before) and the wait succeed.
        if ["version", "get", "history", "stats"].contains(&args[0]) || args.contains(&"--wait") {
            assert_eq!(code, Some(0), "barge {}:\n{err}", args.join(" "));
        }
    }
    // What they did, through the routes: the promotion queued (its name printed as before),
    // the token created and revoked.
    let (code, out, err) = shown(&mut fx.command(&["get", "promotions", "-o", "name"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("promotion.kargo.akuity.io/"), "{out}");
    let (_, out, _) = shown(&mut fx.command(&["token", "list", "-o", "json"]));
    let tokens: Value = serde_json::from_str(&out).unwrap();
    assert!(tokens["items"][0]["revokedAt"].is_string(), "{tokens}");
}

/// `GET /api/v1/whoami` answers the token's principal and role; the token routes are an
/// admin's, and a created token is printed once and works.
#[test]
fn whoami_names_the_tokens_principal_and_tokens_are_an_admins_through_rest() {
    let fx = Fixture::new();
    let daemon = fx.daemon(&[], &[]);
    let (status, me) = daemon.request("GET", "/api/v1/whoami", Some(TOKEN), None);
    assert_eq!(
        (status, &me["actor"], &me["role"]),
        (200, &json!("token:api-token"), &json!("admin")),
        "{me}"
    );
    let body = r#"{"name": "ci", "role": "promoter", "project": "shop", "stages": ["dev"]}"#;
    let (status, created) = daemon.request("POST", "/api/v1/tokens", Some(TOKEN), Some(body));
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap();
    let (status, me) = daemon.request("GET", "/api/v1/whoami", Some(token), None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me,
        json!({"name": "ci", "actor": "token:ci", "role": "promoter", "project": "shop", "stages": ["dev"]})
    );
    // A promoter may not list, create or revoke tokens.
    for (method, path, body) in [
        ("GET", "/api/v1/tokens", None),
        ("POST", "/api/v1/tokens", Some(r#"{"name": "x", "role": "admin"}"#)),
        ("POST", "/api/v1/tokens/ci/revoke", None),
    ] {
        let answer = daemon.request(method, path, Some(token), body);
        assert_problem(answer, 403, "forbidden");
    }
    let (status, list) = daemon.request("GET", "/api/v1/tokens", Some(TOKEN), None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["name"], "ci", "{list}");
    assert!(!list.to_string().contains(token), "the list shows the token");
    let (status, revoked) = daemon.request("POST", "/api/v1/tokens/ci/revoke", Some(TOKEN), None);
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    assert_problem(daemon.request("GET", "/api/v1/whoami", Some(token), None), 401, "auth");
    assert_problem(daemon.request("GET", "/api/v1/whoami", None, None), 401, "auth");
}

/// `barge login` checks the token against the server before it saves anything; the saved
/// context holds the token file's path, never the token, and is current: verbs told no
/// server and no store ask its server with its token and project.
#[test]
fn login_checks_the_token_and_saves_a_current_context_that_verbs_use() {
    let fx = Fixture::new();
    let daemon = fx.daemon(&[], &[]);
    let contexts = fx.dir.path().join("contexts.yaml");
    let wrong = fx.dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    let (code, _, err) = shown(&mut fx.command(&[
        "login",
        "--server",
        &daemon.url,
        "--token-file",
        wrong.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("refused the token in") && err.contains("wrong.token"),
        "{err}"
    );
    assert!(!contexts.exists(), "a refused login saved a context");
    let token_file = fx.token_file.to_str().unwrap();
    let login = [
        "login",
        "--server",
        &daemon.url,
        "--token-file",
        token_file,
        "--context",
        "dev",
        "--project",
        "shop",
    ];
    let (code, out, err) = shown(&mut fx.command(&login));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("as token:api-token (admin)") && out.contains("\"dev\" is now current"),
        "{out}"
    );
    let saved = std::fs::read_to_string(&contexts).unwrap();
    assert!(!saved.contains(TOKEN), "the token itself was saved:\n{saved}");
    assert!(saved.contains(&format!("tokenFile: {token_file}")), "{saved}");
    let (_, out, _) = shown(&mut fx.command(&["config", "current-context"]));
    assert_eq!(out, "dev\n");
    // A verb with neither --server nor --db asks the context's server, in its project.
    let approve = ["approve", "--freight", &fx.alias, "--stage", "qa"];
    let (code, out, err) = shown(fx.contextual(&approve).env("BARGE_LOG", "barge=debug"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("/api/v1/projects/shop/freight/{}/approve", fx.alias)),
        "{err}"
    );
    assert_eq!(out, format!("{} approved for qa\n", fx.alias));
    // --project wins over the context's.
    let (_, _, err) = shown(
        fx.contextual(&["release", "stage", "prod", "--project", "other"])
            .env("BARGE_LOG", "barge=debug"),
    );
    assert!(err.contains("/api/v1/projects/other/stages/prod/release"), "{err}");
}

/// Flags win over the environment, which wins over the context; a store (--db, BARGE_DB)
/// means no context; the context's token never goes to another server.
#[test]
fn flags_and_environment_win_over_the_current_context() {
    let fx = Fixture::new();
    let daemon = fx.daemon(&[], &[]);
    let token_file = fx.token_file.to_str().unwrap();
    let set = [
        "config",
        "set-context",
        "ctx",
        "--server",
        &daemon.url,
        "--token-file",
        token_file,
    ];
    assert_eq!(shown(&mut fx.command(&set)).0, Some(0));
    assert_eq!(shown(&mut fx.command(&["config", "use-context", "ctx"])).0, Some(0));
    let debug = |c: &mut Command| {
        c.env("BARGE_LOG", "barge=debug");
        shown(c)
    };
    // BARGE_DB: in-process, whatever the context says (no request is logged).
    let (code, out, err) = debug(&mut fx.command(&["release", "stage", "prod"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("released") && !err.contains("asking barge serve"), "{err}");
    // BARGE_SERVER elsewhere: the context's token is not sent there; the error says so.
    let elsewhere = format!("http://127.0.0.1:{}", support::free_port());
    let (code, _, err) = debug(
        fx.contextual(&["release", "stage", "prod"])
            .env("BARGE_SERVER", &elsewhere),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("--server needs the server's token"), "{err}");
    // BARGE_TOKEN wins over the context's token file: a wrong one is refused.
    let (code, _, err) = debug(fx.contextual(&["release", "stage", "prod"]).env("BARGE_TOKEN", "wrong"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("url={}/api/v1/projects/-/stages/prod/release", daemon.url)),
        "{err}"
    );
    assert!(err.contains("token"), "{err}");
    // The context alone: its server and token.
    let (code, out, err) = debug(&mut fx.contextual(&["release", "stage", "prod"]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "auto-promotion into prod released (0 hold(s) lifted)\n");
}

/// `barge config`: set-context adds and changes, use-context refuses an unknown context
/// naming those there are, get-contexts marks the current one, and a broken file is named
/// with its line and column.
#[test]
fn config_verbs_edit_contexts_and_name_what_is_wrong() {
    let fx = Fixture::new();
    let file = fx.dir.path().join("contexts.yaml");
    let run = |args: &[&str]| shown(&mut fx.command(args));
    let (code, out, _) = run(&["config", "get-contexts"]);
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "no contexts (`barge login` or `barge config set-context` adds one)\n"
        )
    );
    let (code, _, err) = run(&["config", "current-context"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no current context in") && err.contains("use-context"),
        "{err}"
    );
    assert_eq!(
        run(&[
            "config",
            "set-context",
            "a",
            "--server",
            "http://a.example",
            "--project",
            "shop"
        ])
        .0,
        Some(0)
    );
    assert_eq!(
        run(&["config", "set-context", "b", "--server", "http://b.example"]).0,
        Some(0)
    );
    // Changing one field keeps the others.
    let (_, out, _) = run(&["config", "set-context", "a", "--token-file", "rel.token"]);
    assert_eq!(out, "Context \"a\" modified.\n");
    let (code, _, err) = run(&["config", "use-context", "c"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no context named \"c\"") && err.contains("(contexts: a, b)"),
        "{err}"
    );
    assert_eq!(run(&["config", "use-context", "a"]).0, Some(0));
    let (_, out, _) = run(&["config", "get-contexts"]);
    // Stored as an absolute path: the CLI runs in the test's directory.
    let rel = std::env::current_dir().unwrap().join("rel.token");
    assert_eq!(
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        [
            "CURRENT NAME SERVER TOKEN FILE PROJECT".to_string(),
            format!("* a http://a.example {} shop", rel.display()),
            "b http://b.example".to_string(),
        ]
    );
    let (_, out, _) = run(&["config", "get-contexts", "-o", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["currentContext"], "a", "{v}");
    // A misspelt field: the file, line and column.
    std::fs::write(
        &file,
        "currentContext: a\ncontexts:\n  - name: a\n    sever: http://a.example\n",
    )
    .unwrap();
    let (code, _, err) = run(&["config", "get-contexts"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("{}:4:5: contexts[0]: unknown field `sever`", file.display())),
        "{err}"
    );
    // A current context that is not there: verbs without a server or store say so.
    std::fs::write(&file, "currentContext: gone\ncontexts: []\n").unwrap();
    let (code, _, err) = shown(&mut fx.contextual(&["release", "stage", "prod"]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("current context") && err.contains("no context named \"gone\""),
        "{err}"
    );
}

/// A Stage that takes Freight only once two of alice, bob or an admin approved it, and one
/// whose promotion waits for two promoters' approvals and then records who approved in the
/// audit log (Kargo Enterprise's wait-for-approval and record-audit-event).
const APPROVAL_DEFINITIONS: &str = r#"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: release, namespace: shop}
spec:
  approvalPolicy:
    minApprovals: 2
    approvers: [{subject: alice}, {subject: bob}, {role: admin}]
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: gate, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: wait-for-approval
          as: approve
          config:
            minApprovals: 2
            approvers: [{role: promoter}]
        - uses: record-audit-event
          as: audit
          config:
            type: approved
            message: "released by ${{ outputs.approve.responses[0].user }} and ${{ outputs.approve.responses[1].user }}"
            actor: ${{ outputs.approve.responses[0].user }}
            data: {environment: gate}
"#;

/// Issues #16 and #20: approvals are counted per authenticated principal (the same one twice
/// counts once), a viewer's and a non-approver's are refused (403, audited), why-pending says
/// how far the policy is, and the Freight enters only once the policy is met; a
/// wait-for-approval step is woken by the approval that completes it (the poll is an hour) and
/// record-audit-event records the approvers under the promotion's actor.
#[test]
fn approvals_count_distinct_principals_before_freight_enters_or_a_promotion_carries_on() {
    let fx = Fixture::new();
    std::fs::write(&fx.defs, format!("{DEFINITIONS}{APPROVAL_DEFINITIONS}")).unwrap();
    let alice = fx.create_token("alice", &["--role", "promoter"]);
    let bob = fx.create_token("bob", &["--role", "promoter"]);
    let carol = fx.create_token("carol", &["--role", "promoter"]);
    let wall = fx.create_token("wall", &["--role", "viewer"]);
    let daemon = fx.daemon(&[], &[("BARGE_POLL_INTERVAL", "1h")]);
    let as_ = |token: &str, method: &str, path: &str, body: Value| {
        let path = format!("/api/v1/projects/shop{path}");
        daemon.request(method, &path, Some(token), Some(&body.to_string()))
    };
    let approve = |token: &str, stage: &str| {
        as_(
            token,
            "POST",
            &format!("/freight/{}/approve", fx.alias),
            json!({"stage": stage}),
        )
    };
    let promote = |token: &str, stage: &str| {
        as_(
            token,
            "POST",
            &format!("/stages/{stage}/promotions"),
            json!({"freight": fx.alias}),
        )
    };
    let waiting = || {
        let (status, body) = daemon.rest("GET", "/stages/release", None);
        assert_eq!(status, 200, "{body}");
        let request = body["status"]["barge"]["requests"][0].clone();
        (request["reason"].clone(), request["message"].clone(), body)
    };

    // Nobody approved yet: no promotion into release.
    let (reason, message, _) = waiting();
    assert_eq!(reason, "WaitingForApprovals");
    assert_eq!(
        message,
        format!(
            "{} is waiting for approvals: 0 of 2 (needs subject alice or subject bob or role admin)",
            fx.alias
        )
    );
    let message = assert_problem(promote(&alice, "release"), 400, "invalid");
    assert!(message.contains("waiting for approvals: 0 of 2"), "{message}");

    // alice approves twice: one approval.
    for _ in 0..2 {
        let (status, body) = approve(&alice, "release");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["approvedBy"], "token:alice", "{body}");
        assert_eq!(body["approvers"].as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(
            body["policy"], "1 of 2 (needs subject alice or subject bob or role admin)",
            "{body}"
        );
    }
    let (reason, message, stage) = waiting();
    assert_eq!(reason, "WaitingForApprovals");
    assert!(message.as_str().unwrap().contains(": 1 of 2 "), "{message}");
    assert_eq!(stage["spec"]["approvalPolicy"]["minApprovals"], 2, "{stage}");
    let (_, freight) = daemon.rest("GET", &format!("/freight/{}", fx.alias), None);
    let name = freight["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        stage["status"]["barge"]["approvals"][name][0]["approver"], "token:alice",
        "{stage}"
    );
    assert!(promote(&alice, "release").0 == 400);

    // A viewer may not approve; nor may a promoter the policy does not name.
    let (status, body) = approve(&wall, "release");
    assert_eq!(status, 403, "{body}");
    let message = assert_problem(approve(&carol, "release"), 403, "forbidden");
    assert!(
        message.contains("its approvalPolicy takes subject alice or subject bob or role admin"),
        "{message}"
    );

    // bob's approval completes the policy: the Freight enters.
    let (status, body) = approve(&bob, "release");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["policy"], "2 of 2 (needs subject alice or subject bob or role admin)",
        "{body}"
    );
    let (status, body) = promote(&alice, "release");
    assert_eq!(status, 202, "{body}");
    daemon.await_promotion(body["metadata"]["name"].as_str().unwrap(), "Succeeded");
    let (_, freight) = daemon.rest("GET", &format!("/freight/{}", fx.alias), None);
    assert!(freight["status"]["currentlyIn"]["release"].is_object(), "{freight}");
    let approvers: Vec<&Value> = freight["status"]["approvedFor"]["release"]["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["approver"])
        .collect();
    assert_eq!(approvers, [&json!("token:alice"), &json!("token:bob")], "{freight}");

    // A promotion into gate waits for two promoters; alice's approval alone does not do.
    let (status, body) = promote(&carol, "gate");
    assert_eq!(status, 202, "{body}");
    let gate = body["metadata"]["name"].as_str().unwrap().to_string();
    daemon.await_promotion(&gate, "Running");
    assert_eq!(approve(&alice, "gate").0, 200);
    assert_eq!(approve(&alice, "gate").0, 200);
    // bob's approval wakes the step at once (its poll is an hour away).
    assert_eq!(approve(&bob, "gate").0, 200);
    daemon.await_promotion(&gate, "Succeeded");
    let (_, promotion) = daemon.rest("GET", &format!("/promotions/{gate}"), None);
    let users: Vec<&Value> = promotion["status"]["state"]["approve"]["responses"]
        .as_array()
        .unwrap_or_else(|| panic!("{promotion}"))
        .iter()
        .map(|r| &r["user"])
        .collect();
    assert_eq!(users, [&json!("token:alice"), &json!("token:bob")], "{promotion}");

    let history = fx.history();
    let of_kind = |kind: &str| -> Vec<&Value> { history.iter().filter(|e| e["kind"] == kind).collect() };
    let mut approvals: Vec<(&str, &str)> = of_kind("freight.approved")
        .iter()
        .map(|e| (e["stage"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    approvals.reverse();
    assert_eq!(
        approvals,
        [
            ("release", "token:alice"),
            ("release", "token:alice"),
            ("release", "token:bob"),
            ("gate", "token:alice"),
            ("gate", "token:alice"),
            ("gate", "token:bob"),
        ],
        "{history:#?}"
    );
    let mut denied: Vec<&str> = of_kind("access.denied")
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    denied.sort_unstable();
    assert_eq!(denied, ["token:carol", "token:wall"], "{history:#?}");
    let audit = of_kind("promotion.audit");
    assert_eq!(audit.len(), 1, "{history:#?}");
    assert_eq!(audit[0]["actor"], "token:carol", "the promotion's actor: {history:#?}");
    assert_eq!(
        audit[0]["body"],
        json!({
            "type": "approved",
            "message": "released by token:alice and token:bob",
            "attributedTo": "token:alice",
            "data": {"environment": "gate"},
            "step": "audit",
        }),
        "{history:#?}"
    );
}

/// The verbs that reached the server through the call endpoint before the REST API had their
/// routes (version, history, stats, get replicas|notifications|webhooks, promote --wait)
/// print through the REST API what they print in-process (`--db`) on the same store.
fn read_verbs_through_the_rest_api_print_as_in_process(backend: Backend) {
    let fx = Fixture::on(backend);
    let daemon = fx.daemon(&[], &[]);
    // Something to show: a promotion followed to its end through the server (`--wait` is
    // the server's: in-process, promote runs the promotion itself). It prints the engine's
    // promotion, as the store has it.
    let args = [
        "promote",
        "--stage",
        "prod",
        "--freight",
        &fx.alias,
        "--wait",
        "-o",
        "json",
    ];
    let (code, served, err) = shown(&mut fx.through(&daemon, &args));
    assert_eq!(code, Some(0), "{err}");
    let served: Value = serde_json::from_str(&served).unwrap();
    let p = &served[0];
    assert_eq!(
        (&p["stage"], &p["phase"]),
        (&json!("prod"), &json!("Succeeded")),
        "{served:#}"
    );
    let name = p["name"].as_str().unwrap();
    let (code, stored, err) = shown(&mut fx.command(&["get", "promotions", name, "-o", "json"]));
    assert_eq!(code, Some(0), "{err}");
    let stored: Value = serde_json::from_str(&stored).unwrap();
    let want = json!({
        "project": stored["metadata"]["namespace"],
        "name": name,
        "stage": stored["spec"]["stage"],
        "freight": stored["spec"]["freight"],
        "actor": "token:api-token",
        "phase": stored["status"]["phase"],
        "message": stored["status"].get("message").cloned().unwrap_or(json!("")),
        "createdAt": stored["metadata"]["creationTimestamp"],
        "updatedAt": stored["status"]["barge"]["updatedAt"],
        "steps": stored["status"]["stepExecutionMetadata"],
        "outputs": stored["status"]["state"],
    });
    assert_eq!(p, &want);

    // Replicas change their heartbeat from one read to the next: compared by name.
    let verbs: &[&[&str]] = &[
        &["history"],
        &["history", "-o", "json", "--limit", "1000"],
        &[
            "history",
            "--stage",
            "prod",
            "--kind",
            "promotion.created",
            "-o",
            "yaml",
        ],
        &["history", "--freight", &fx.alias, "--limit", "2"],
        &["history", "--project", "nope"],
        &["stats"],
        &["stats", "-o", "json", "--project", "shop", "--stage", "prod"],
        &["get", "replicas", "-o", "name"],
        &["get", "notifications"],
        &[
            "get",
            "notifications",
            "-o",
            "json",
            "--state",
            "failed",
            "--project",
            "shop",
        ],
        &["get", "notifications", "--state", "lost"],
    ];
    // A window's start is the time of the read (30 days back): the one figure two reads
    // differ in.
    let windowless = |(code, out, err): (Option<i32>, String, String)| {
        let Ok(Value::Array(mut figures)) = serde_json::from_str::<Value>(&out) else {
            return (code, out, err);
        };
        for f in &mut figures {
            if let Some(f) = f.as_object_mut() {
                f.remove("since");
            }
        }
        (code, Value::Array(figures).to_string(), err)
    };
    for args in verbs {
        let read = |c: &mut Command| {
            let out = shown(c);
            if args[0] == "stats" { windowless(out) } else { out }
        };
        // The daemon may write between two reads (an event, a heartbeat): the reads are
        // compared once two in-process ones around the server's agree.
        let mut tries = 0;
        loop {
            let before = read(&mut fx.command(args));
            let served = read(&mut fx.through(&daemon, args));
            let after = read(&mut fx.command(args));
            if before == after || tries == 5 {
                assert_eq!(served, after, "barge {}", args.join(" "));
                break;
            }
            tries += 1;
        }
    }
    // Webhook receivers: read from the definitions here, the ones served there (none).
    let here = shown(fx.command(&["get", "webhooks", "-o", "json"]).arg(&fx.defs));
    let there = shown(&mut fx.through(&daemon, &["get", "webhooks", "-o", "json"]));
    assert_eq!(there, here);
    // The server's version is this barge's.
    let (code, out, err) = shown(&mut fx.through(&daemon, &["version", "-o", "json"]));
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"], v["clientVersion"], "{v}");
}

/// `barge history --limit N` beyond the REST API's page (1000 events) reads the pages it
/// needs through the server, as in-process reads them at once.
#[test]
fn history_beyond_a_page_reads_every_page_through_the_server() {
    let fx = Fixture::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = barge_store::Store::open(&fx.db).await.unwrap();
        for i in 0..1200 {
            let subject = format!("Stage/s{i}");
            store
                .append_audit(barge_store::NewAudit {
                    at: 1_700_000_000_000 + i,
                    project: "shop",
                    kind: "stage.held",
                    subject: &subject,
                    actor: "alice",
                    stage: "prod",
                    freight: "",
                    body: &json!({"i": i}),
                })
                .await
                .unwrap();
        }
    });
    let daemon = fx.daemon(&[], &[]);
    for limit in ["1100", "5000"] {
        let args = ["history", "--kind", "stage.held", "--limit", limit, "-o", "json"];
        let in_process = shown(&mut fx.command(&args));
        let served = shown(&mut fx.through(&daemon, &args));
        assert_eq!(served, in_process, "--limit {limit}");
        let events: Value = serde_json::from_str(&served.1).unwrap();
        let want = if limit == "1100" { 1100 } else { 1200 };
        assert_eq!(events.as_array().unwrap().len(), want);
    }
}

/// The daemon keeps each project's decided state between requests while nothing changed it
/// (`Store::derived`, keyed by the project's change counter): a write made just before a
/// request, by another process on the store or through the API, is in that request's answer.
/// On SQLite and on PostgreSQL.
fn a_stage_shows_a_write_made_just_before_it_by_another_process_or_the_api(backend: Backend) {
    let fx = Fixture::on(backend);
    let daemon = fx.daemon(&[], &[]);
    let prod = || {
        let (status, body) = daemon.rest("GET", "/stages/prod", None);
        assert_eq!(status, 200, "{body}");
        body["status"]["barge"].clone()
    };
    let approvers = |stage: &Value| -> Vec<String> {
        let mut all: Vec<String> = stage["approvals"]
            .as_object()
            .into_iter()
            .flat_map(|by_freight| by_freight.values())
            .flat_map(|a| a.as_array().unwrap().iter())
            .map(|a| a["approver"].as_str().unwrap().to_string())
            .collect();
        all.sort();
        all
    };
    let before = prod();
    assert_eq!(prod(), before, "nothing changed in between");
    assert!(approvers(&before).is_empty(), "{before}");
    let candidate = before["requests"][0]["candidate"].clone();
    assert!(candidate.is_string(), "{before}");

    // Another process approves, on the store.
    let out = fx
        .command(&["approve", "--freight", &fx.alias, "--stage", "prod"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(approvers(&prod()), ["alice"]);

    // Another mints newer Freight: the Stage's candidate is it at once.
    support::mint_freight(&fx.db, "1.1.0");
    let minted = prod();
    assert!(minted["requests"][0]["candidate"].is_string(), "{minted}");
    assert_ne!(minted["requests"][0]["candidate"], candidate, "{minted}");

    // The daemon's own write, through the API.
    let approve = json!({"stage": "prod"});
    let (status, body) = daemon.rest("POST", &format!("/freight/{}/approve", fx.alias), Some(approve));
    assert_eq!(status, 200, "{body}");
    assert_eq!(approvers(&prod()), ["alice", "token:api-token"]);
}

/// The daemon keeps the Stage list's JSON between requests (each Stage's, reused while its
/// decided status is the same): a repeated GET answers the same bytes, and a write (by another
/// process on the store or through the API) or a definitions reload is in the next list at
/// once. On SQLite and on PostgreSQL.
fn the_kept_stage_list_changes_after_a_write_and_after_a_reload(backend: Backend) {
    let fx = Fixture::on(backend);
    let daemon = fx.daemon(&["--reload-interval", "200ms"], &[]);
    let list = || {
        let (status, body) = daemon.rest("GET", "/stages", None);
        assert_eq!(status, 200, "{body}");
        body
    };
    let stage = |list: &Value, name: &str| -> Value {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .clone()
    };
    let approvers = |list: &Value| -> Vec<String> {
        let mut all: Vec<String> = stage(list, "prod")["status"]["barge"]["approvals"]
            .as_object()
            .into_iter()
            .flat_map(|by_freight| by_freight.values())
            .flat_map(|a| a.as_array().unwrap().iter())
            .map(|a| a["approver"].as_str().unwrap().to_string())
            .collect();
        all.sort();
        all
    };
    let first = list();
    assert_eq!(first["items"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(list(), first, "nothing changed in between");
    assert!(approvers(&first).is_empty(), "{first}");

    // Another process approves, on the store: the next list shows it.
    let out = fx
        .command(&["approve", "--freight", &fx.alias, "--stage", "prod"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let approved = list();
    assert_eq!(approvers(&approved), ["alice"], "{approved}");
    // The Stages nothing changed are as they were.
    assert_eq!(stage(&approved, "dev"), stage(&first, "dev"));

    // The daemon's own write, through the API.
    let (status, body) = daemon.rest(
        "POST",
        &format!("/freight/{}/approve", fx.alias),
        Some(json!({"stage": "prod"})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(approvers(&list()), ["alice", "token:api-token"]);

    // A definitions reload: qa's sources change, and a fourth Stage appears.
    let sources = |list: &Value| stage(list, "qa")["spec"]["requestedFreight"][0]["sources"].clone();
    assert_eq!(sources(&list()), json!({"stages": ["dev"]}));
    let changed = DEFINITIONS.replace("sources: {stages: [dev]}", "sources: {direct: true}")
        + "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {name: hotfix, namespace: shop}\nspec:\n  requestedFreight:\n    - origin: {kind: Warehouse, name: app}\n      sources: {direct: true}\n";
    std::fs::write(&fx.defs, changed).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let reloaded = loop {
        let now = list();
        if now["items"].as_array().unwrap().len() == 4 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the reload never showed: {now}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sources(&reloaded), json!({"direct": true}), "{reloaded}");
    assert_eq!(approvers(&reloaded), ["alice", "token:api-token"]);
}

/// The daemon keeps each Freight page it answered until the project changes: a repeated GET
/// answers the same page, and Freight minted by another process, an alias set through the API
/// and an approval recorded by another process are each in the next page at once. On SQLite
/// and on PostgreSQL.
fn a_kept_freight_page_changes_after_a_mint_an_alias_and_an_approval(backend: Backend) {
    let fx = Fixture::on(backend);
    let daemon = fx.daemon(&[], &[]);
    let page = || {
        let (status, body) = daemon.rest("GET", "/freight?limit=10", None);
        assert_eq!(status, 200, "{body}");
        body
    };
    let aliases = |page: &Value| -> Vec<String> {
        let mut all: Vec<String> = page["items"]
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {page}"))
            .iter()
            .map(|f| f["alias"].as_str().unwrap().to_string())
            .collect();
        all.sort();
        all
    };
    let first = page();
    assert_eq!(aliases(&first), std::slice::from_ref(&fx.alias), "{first}");
    assert_eq!(page(), first, "nothing changed in between");

    // Another process mints on the store.
    let minted = support::mint_freight(&fx.db, "1.0.1");
    let mut want = vec![fx.alias.clone(), minted.clone()];
    want.sort();
    assert_eq!(aliases(&page()), want, "the minted Freight is on the next page");

    // The daemon's own write, through the API.
    let (status, body) = daemon.rest(
        "PATCH",
        &format!("/freight/{minted}"),
        Some(json!({"alias": "renamed"})),
    );
    assert_eq!(status, 200, "{body}");
    let mut want = vec![fx.alias.clone(), "renamed".to_string()];
    want.sort();
    assert_eq!(aliases(&page()), want, "the new alias is on the next page");

    // Another process approves: the page shows the Freight approved for prod.
    let approved_for = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["alias"] == json!(fx.alias))
            .flat_map(|f| {
                f["status"]["approvedFor"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys())
            })
            .cloned()
            .collect()
    };
    assert!(approved_for(&page()).is_empty(), "{}", page());
    let out = fx
        .command(&["approve", "--freight", &fx.alias, "--stage", "prod"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let approved = page();
    assert_eq!(approved_for(&approved), ["prod"], "{approved}");
}

/// Every `curl` recipe in docs/reference/api.md runs against a real server as written, with
/// the recipes' example names (`bright-eagle`, `prod-1a2b3c`) replaced by this store's: each
/// request reaches a route and is answered 2xx, or, where the store's state refuses it, with
/// the error shape and the refusal listed here (so a recipe whose route, method or body is
/// wrong fails the test).
#[test]
fn the_curl_recipes_in_the_api_reference_run_against_a_server() {
    let fx = Fixture::new();
    let daemon = fx.daemon(&[], &[]);
    let doc =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/api.md"))
            .unwrap();
    let mut recipes = Vec::new();
    let mut in_sh = false;
    for line in doc.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && (l.starts_with("bcurl ") || l.starts_with("curl ")) => recipes.push(l.to_string()),
            _ => {}
        }
    }
    assert!(recipes.len() >= 25, "{recipes:#?}");
    // A promotion of this store, for the recipes that name one.
    let (status, queued) = daemon.rest("POST", "/stages/dev/promotions", Some(json!({"freight": fx.alias})));
    assert_eq!(status, 202, "{queued}");
    let promotion = queued["metadata"]["name"].as_str().unwrap().to_string();
    // Refusals this store's state explains, by recipe: this prod has no
    // verification and no auto-promotion to hold, and the promotion has finished.
    let refused_by_state: &[(&str, u16, &str)] = &[
        (
            "bcurl -X POST $BARGE/api/v1/projects/shop/stages/prod/verification",
            400,
            "invalid",
        ),
        (
            "bcurl -X POST $BARGE/api/v1/projects/shop/stages/prod/verification/abort",
            404,
            "not-found",
        ),
        (
            "bcurl -X POST $BARGE/api/v1/projects/shop/stages/prod/hold",
            400,
            "invalid",
        ),
        (
            "bcurl -X POST $BARGE/api/v1/projects/shop/promotions/prod-1a2b3c/abort",
            409,
            "conflict",
        ),
    ];
    let mut answers = Vec::new();
    for recipe in &recipes {
        // The watch streams until stopped; its route is the list's, run without -N.
        let mut command = recipe.replace(" -N", "");
        if let Some(cut) = command.find(" | jq") {
            command.truncate(cut);
        }
        let command = command
            .replace("bright-eagle", &fx.alias)
            .replace("prod-1a2b3c", &promotion)
            .replace("?watch=true", "");
        let script = format!(
            "bcurl() {{ curl -sS -H \"Authorization: Bearer $BARGE_TOKEN\" -H \"Content-Type: application/json\" \"$@\"; }}\n\
             curl() {{ command curl -w '\\n%{{http_code}}' \"$@\"; }}\n{command}"
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .env("BARGE", &daemon.url)
            .env("BARGE_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(out.status.success(), "{recipe}: {}", stderr(&out));
        let text = stdout(&out);
        let (body, code) = text.trim_end().rsplit_once('\n').unwrap_or(("", text.trim()));
        let code: u16 = code.parse().unwrap_or_else(|_| panic!("{recipe}: {text}"));
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{recipe}: {e}: {body}"));
        answers.push((recipe.clone(), code, body));
    }
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(recipe, code, body)| {
            let explained = refused_by_state
                .iter()
                .any(|(line, want, class)| recipe == line && want == code && body["code"] == *class);
            !(200..300).contains(code) && !explained
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}
