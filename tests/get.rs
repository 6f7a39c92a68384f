//! `barge get` and the verbs around it, as a new user meets them: against a SQLite store
//! (`--db`, with the definitions from `-f`), against the default store, and through a running
//! `barge serve`. Output contracts: kubectl's `-o wide|name`, one object for one name, exit
//! status 1 for a project that does not exist.

use barge_testkit::registry;
mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{barge, stderr, stdout};

/// One project: a Warehouse and a Stage `dev` that auto-promotes from it.
const SHOP: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: shop, namespace: shop}
spec:
  promotionPolicies:
    - stageSelector: {name: dev}
      autoPromotionEnabled: true
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  subscriptions:
    - image: {repoURL: ghcr.io/acme/app}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
"#;

struct Fixture {
    dir: tempfile::TempDir,
    defs: PathBuf,
    db: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let defs = dir.path().join("shop.yaml");
        std::fs::write(&defs, SHOP).unwrap();
        let db = format!("sqlite://{}/barge.db", dir.path().display());
        Fixture { dir, defs, db }
    }

    /// `barge ARGS -f DEFS --db DB`.
    fn run(&self, args: &[&str]) -> Output {
        barge()
            .args(args)
            .args(["-f", self.defs.to_str().unwrap(), "--db", &self.db])
            .env("USER", "alice")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "barge {args:?}: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    }
}

/// The row of a table whose first cells are `first`, split into cells by runs of spaces,
/// keyed by the header's column names.
fn row(table: &str, first: &str) -> std::collections::BTreeMap<String, String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    // Column starts, from the header (names may hold one space: "LAST DISCOVERY").
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && (i == 0 || header[..i].ends_with("  ")))
        .map(|(i, _)| i)
        .collect();
    let line = lines
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{table}"));
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let end = starts.get(n + 1).copied().unwrap_or(line.len()).min(line.len());
            let name = header[start..starts.get(n + 1).copied().unwrap_or(header.len())].trim();
            (name.to_string(), line.get(start..end).unwrap_or("").trim().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn warehouses_show_the_last_discovery_error() {
    // A registry without the repository: discovery fails with not-found, and is stored.
    let reg = registry::TestRegistry::start(None).await;
    let fx = Fixture::new();
    let out = barge()
        .args(["discover", fx.defs.to_str().unwrap(), "--db", &fx.db, "--rewrite"])
        .arg(format!("ghcr.io/acme/={}/acme/", reg.host))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let table = fx.ok(&["get", "warehouses"]);
    let error = &row(&table, "shop")["ERROR"];
    assert!(error.contains("not-found"), "the ERROR column is filled: {table}");
    let json: Value = serde_json::from_str(&fx.ok(&["get", "warehouses", "-o", "json"])).unwrap();
    let healthy = &json["items"][0]["status"]["conditions"][0];
    assert_eq!(
        (&healthy["type"], &healthy["status"]),
        (&json!("Healthy"), &json!("False")),
        "{json}"
    );
    assert!(healthy["message"].as_str().unwrap().contains("not-found"), "{json}");
}

#[test]
fn a_held_stage_says_so_in_the_auto_column() {
    let fx = Fixture::new();
    assert_eq!(row(&fx.ok(&["get", "stages"]), "shop")["AUTO"], "yes");
    fx.ok(&["hold", "stage", "dev"]);
    let table = fx.ok(&["get", "stages"]);
    assert_eq!(row(&table, "shop")["AUTO"], "held", "{table}");
    fx.ok(&["release", "stage", "dev"]);
    assert_eq!(row(&fx.ok(&["get", "stages"]), "shop")["AUTO"], "yes");
}

#[test]
fn one_stage_by_name_is_one_object_and_a_listing_a_list() {
    let fx = Fixture::new();
    let one: Value = serde_json::from_str(&fx.ok(&["get", "stage", "dev", "-o", "json"])).unwrap();
    assert_eq!(one["metadata"]["name"], "dev", "an object, not a list: {one}");
    let yaml = fx.ok(&["get", "stage", "dev", "-o", "yaml"]);
    assert!(
        yaml.starts_with("apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\n"),
        "{yaml}"
    );
    // A listing is the List kubectl and kargo print (pkg/cli/cmd/get's PrintObjects), also
    // of one object (Kargo's CLI would print the one Stage alone; barge keeps the List).
    let all: Value = serde_json::from_str(&fx.ok(&["get", "stages", "-o", "json"])).unwrap();
    let items = all["items"].clone();
    assert_eq!(
        all,
        json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
        "the list is a List"
    );
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{all}");
    assert_eq!(items[0], one, "its item is the Stage `get stage dev` prints");
    let yaml = fx.ok(&["get", "stages", "-o", "yaml"]);
    assert!(
        yaml.starts_with(
            "apiVersion: v1\nkind: List\nmetadata: {}\nitems:\n- apiVersion: kargo.akuity.io/v1alpha1\n  kind: Stage\n"
        ),
        "{yaml}"
    );
    // None is a List too, of no items.
    let none: Value = serde_json::from_str(&fx.ok(&["get", "promotions", "-o", "json"])).unwrap();
    assert_eq!(
        none,
        json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []})
    );
}

#[test]
fn an_unknown_project_is_an_error_not_an_empty_list() {
    let fx = Fixture::new();
    for verb in ["stages", "warehouses"] {
        let out = fx.run(&["get", verb, "--project", "nope"]);
        assert_eq!(out.status.code(), Some(1), "get {verb}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("no project named \"nope\" in the definitions (projects: shop)"),
            "{}",
            stderr(&out)
        );
    }
    assert!(fx.run(&["get", "stages", "--project", "shop"]).status.success());
}

#[test]
fn name_and_wide_output_follow_kubectl() {
    let fx = Fixture::new();
    assert_eq!(fx.ok(&["get", "stages", "-o", "name"]), "stage.kargo.akuity.io/dev\n");
    assert_eq!(
        fx.ok(&["get", "warehouses", "-o", "name"]),
        "warehouse.kargo.akuity.io/app\n"
    );
    let wide = fx.ok(&["get", "stages", "-o", "wide"]);
    let dev = row(&wide, "shop");
    assert_eq!(dev["FREIGHT ID"], "-", "{wide}");
    assert_eq!(dev["VERIFICATION"], "-", "{wide}");
    let wide = fx.ok(&["get", "warehouses", "-o", "wide"]);
    assert_eq!(row(&wide, "shop")["SUBSCRIPTIONS"], "1", "{wide}");
    let narrow = fx.ok(&["get", "warehouses"]);
    assert!(!narrow.contains("SUBSCRIPTIONS"), "{narrow}");
}

/// Every file below `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_default_store_lives_in_the_users_data_directory_and_reading_creates_nothing() {
    let fx = Fixture::new();
    let home = fx.dir.path().join("home");
    let repo = fx.dir.path().join("repo");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    let barge_in_repo = |args: &[&str], data_home: Option<&Path>| {
        let mut c = barge();
        c.args(args)
            .current_dir(&repo)
            .env("HOME", &home)
            .env_remove("XDG_DATA_HOME")
            .env_remove("BARGE_DB");
        if let Some(d) = data_home {
            c.env("XDG_DATA_HOME", d);
        }
        c.output().unwrap()
    };
    // Reading verbs, even failing ones, create nothing anywhere.
    let out = barge_in_repo(&["get", "freight"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "no freight stored\n");
    assert!(stderr(&out).contains("nothing stored yet"), "{}", stderr(&out));
    let out = barge_in_repo(&["get", "stages"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no definitions"), "{}", stderr(&out));
    assert_eq!(barge_in_repo(&["history"], None).status.code(), Some(0));
    assert!(
        files(&repo).is_empty() && files(&home).is_empty(),
        "{:?}",
        files(fx.dir.path())
    );

    // A verb that writes creates the store under ~/.local/share/barge, never in the repository.
    let defs = fx.defs.to_str().unwrap();
    let out = barge_in_repo(&["hold", "stage", "dev", "-f", defs], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(home.join(".local/share/barge/barge.db").is_file());
    assert!(files(&repo).is_empty(), "{:?}", files(&repo));
    let table = stdout(&barge_in_repo(&["get", "stages", "-f", defs], None));
    assert_eq!(
        row(&table, "shop")["AUTO"],
        "held",
        "the same store is read back: {table}"
    );

    // XDG_DATA_HOME moves it.
    let data = fx.dir.path().join("data");
    let out = barge_in_repo(&["hold", "stage", "dev", "-f", defs], Some(&data));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(data.join("barge/barge.db").is_file());
    assert!(files(&repo).is_empty(), "{:?}", files(&repo));
}

#[test]
fn version_names_the_client_and_with_server_the_server() {
    let out = barge().arg("version").output().unwrap();
    assert_eq!(stdout(&out), format!("Client Version: {}\n", env!("CARGO_PKG_VERSION")));

    let fx = Fixture::new();
    let daemon = Serve::start(&fx);
    let (server, token) = (&daemon.url, &daemon.token);
    let version = |token: &Path| {
        barge()
            .args(["version", "-o", "json", "--server", server, "--token-file"])
            .arg(token)
            .env_remove("BARGE_TOKEN")
            .output()
            .unwrap()
    };
    let out = version(token);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["clientVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["serverVersion"], env!("CARGO_PKG_VERSION"));
    // Authenticated like every other call.
    let wrong = fx.dir.path().join("wrong");
    std::fs::write(&wrong, "guess").unwrap();
    let out = version(&wrong);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bearer token"), "{}", stderr(&out));
}

/// `barge serve` on the fixture's store and definitions, with a token; killed when dropped.
struct Serve {
    child: std::process::Child,
    url: String,
    token: PathBuf,
}

impl Serve {
    fn start(fx: &Fixture) -> Serve {
        let token = fx.dir.path().join("token");
        std::fs::write(&token, "version-token\n").unwrap();
        let port = support::free_port();
        let log = std::fs::File::create(fx.dir.path().join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_barge"))
            .args(["serve", fx.defs.to_str().unwrap(), "--db", &fx.db, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--token-file")
            .arg(&token)
            .arg("--work-dir")
            .arg(fx.dir.path().join("work"))
            .stderr(log)
            .spawn()
            .unwrap();
        let mut serve = Serve {
            child,
            url: format!("http://127.0.0.1:{port}"),
            token,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(serve.child.try_wait().unwrap().is_none(), "barge serve exited");
            assert!(std::time::Instant::now() < deadline, "barge serve did not listen");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        serve
    }

    /// `barge ARGS --server URL --token-file TOKEN`.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = barge();
        c.args(args)
            .args(["--server", &self.url, "--token-file"])
            .arg(&self.token)
            .env_remove("BARGE_TOKEN")
            .env_remove("BARGE_DB");
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(out.status.success(), "barge {args:?}: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue #16: `barge get` prints Kargo's resources, the same through the REST API
/// (`--server`) as in-process (`--db`), in every output format.
#[test]
fn get_prints_the_same_kargo_resources_through_the_server_and_in_process() {
    let fx = Fixture::new();
    let alias = support::mint_freight(&fx.db, "1.0.0");
    let daemon = Serve::start(&fx);
    // Auto-promotion brings the Freight into dev.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let promotions: Value = serde_json::from_str(&daemon.ok(&["get", "promotions", "-o", "json"])).unwrap();
        if promotions["items"][0]["status"]["phase"] == "Succeeded" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no promotion into dev: {promotions}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let reads: [&[&str]; 9] = [
        &["get", "stages"],
        &["get", "stage", "dev"],
        &["get", "freight"],
        &["get", "freight", alias.as_str()],
        &["get", "freight", "--warehouse", "app"],
        &["get", "promotions", "--stage", "dev"],
        &["get", "warehouses"],
        &["get", "warehouse", "app"],
        &["get", "projects"],
    ];
    for read in reads {
        let with = |format| -> Vec<&str> { read.iter().copied().chain(["-o", format]).collect() };
        for format in ["json", "yaml", "wide", "name", "text"] {
            let args = with(format);
            assert_eq!(daemon.ok(&args), fx.ok(&args), "barge {args:?}");
        }
        let json: Value = serde_json::from_str(&daemon.ok(&with("json"))).unwrap();
        // A name (the second word after `get`) prints the object; a listing, a List.
        let named = read.get(2).is_some_and(|a| !a.starts_with("--"));
        let objects = if named {
            vec![json.clone()]
        } else {
            assert_eq!(
                (&json["apiVersion"], &json["kind"]),
                (&json!("v1"), &json!("List")),
                "{read:?}: {json}"
            );
            json["items"].as_array().cloned().unwrap_or_default()
        };
        assert!(!objects.is_empty(), "{read:?}");
        for o in objects {
            assert_eq!(o["apiVersion"], "kargo.akuity.io/v1alpha1", "{read:?}: {o}");
            assert!(o["metadata"]["name"].is_string(), "{read:?}: {o}");
        }
    }
    let dev: Value = serde_json::from_str(&fx.ok(&["get", "stage", "dev", "-o", "json"])).unwrap();
    let freight: Value = serde_json::from_str(&fx.ok(&["get", "freight", &alias, "-o", "json"])).unwrap();
    assert_eq!(
        dev["status"]["freightHistory"][0]["items"]["Warehouse/app"]["name"], freight["metadata"]["name"],
        "{dev}"
    );
    assert!(freight["status"]["currentlyIn"]["dev"].is_object(), "{freight}");
    let projects = daemon.ok(&["get", "projects"]);
    assert_eq!(row(&projects, "shop")["STAGES"], "1", "{projects}");
    // A name the server does not have is an error, as in-process.
    let out = daemon.command(&["get", "stage", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no Stage named \"nope\""), "{}", stderr(&out));
}

/// Issue #16: `barge get … -w` prints the list, then each changed object's rows as the REST
/// watch reports them (kubectl appends rows the same way).
#[test]
fn get_w_appends_a_row_for_each_change_the_watch_reports() {
    let fx = Fixture::new();
    let out = fx.run(&["get", "stages", "-w"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("add --server"), "{}", stderr(&out));

    let daemon = Serve::start(&fx);
    let mut watch = daemon
        .command(&["get", "stages", "-w", "--project", "shop"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(watch.stdout.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || {
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("a line from barge get -w within 30s")
    };
    let header = next();
    assert!(header.starts_with("PROJECT"), "{header}");
    let first = next();
    assert_eq!(row(&format!("{header}\n{first}\n"), "shop")["AUTO"], "yes", "{first}");
    daemon.ok(&["hold", "stage", "dev"]);
    // The hold's change: the Stage's row again, now held (no header again).
    let changed = next();
    assert_eq!(
        row(&format!("{header}\n{changed}\n"), "shop")["AUTO"],
        "held",
        "{changed}"
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // With -o json, as `kubectl get -w -o json`: each object alone, the listed ones too (not
    // a List, nor an array, before the changes' objects).
    let mut watch = daemon
        .command(&["get", "stages", "-w", "--project", "shop", "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(watch.stdout.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut first = String::new();
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no whole object from barge get -w -o json within 30s: {first}"));
        first.push_str(&line);
        first.push('\n');
        if line == "}" || line == "]" {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (&first["kind"], &first["metadata"]["name"]),
        (&json!("Stage"), &json!("dev")),
        "{first}"
    );
}
