//! Several `barge serve` replicas on one PostgreSQL (issue #19), with a real registry behind a
//! counting proxy and real git remotes: every promotion lands exactly one commit, every
//! Warehouse is discovered once per due time, replicas killed with -9 hand their promotions to
//! the others, and `barge get replicas` shows who is alive and what each holds. A second
//! `barge serve` on one SQLite file is refused.

use barge_testkit::{postgres, registry};
mod support;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{GitDaemon, git, stderr, stdout};

/// Config repositories, each watched by its own Warehouse.
const REPOS: usize = 3;
/// Stages per config repository, each auto-promoted straight from its Warehouse.
const STAGES_PER_REPO: usize = 4;
/// Every Warehouse's discovery interval.
const INTERVAL: Duration = Duration::from_secs(2);

/// A project of REPOS Warehouses (`app0`…), each with STAGES_PER_REPO Stages (`a0s0`…) that
/// pin its image in their overlay of its config repository (`config0`…).
fn definitions() -> String {
    let mut out = String::from(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: shop}\n---\n\
         apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {name: shop, namespace: shop}\n\
         spec:\n  promotionPolicies:\n    - stageSelector: {name: \"regex:.*\"}\n      autoPromotionEnabled: true\n",
    );
    for r in 0..REPOS {
        out.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app{r}, namespace: shop}}\n\
             spec:\n  interval: {}s\n  subscriptions:\n    - image: {{repoURL: ghcr.io/acme/app{r}, constraint: ^1.0.0}}\n",
            INTERVAL.as_secs()
        ));
        for s in 0..STAGES_PER_REPO {
            out.push_str(&format!(
                r#"---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: a{r}s{s}, namespace: shop}}
spec:
  requestedFreight:
    - origin: {{kind: Warehouse, name: app{r}}}
      sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config{r}.git
            checkout: [{{branch: main, path: ./src}}]
        - uses: kustomize-set-image
          config:
            path: ./src/env/s{s}
            images: [{{image: ghcr.io/acme/app{r}}}]
        - uses: git-commit
          config: {{path: ./src, message: "a{r}s{s}: ${{{{ imageFrom('ghcr.io/acme/app{r}').Tag }}}}"}}
        - uses: git-push
          config: {{path: ./src}}
"#
            ));
        }
    }
    out
}

struct Fixture {
    dir: tempfile::TempDir,
    reg: registry::TestRegistry,
    proxy: registry::Proxy,
    /// The tag listings the proxy answered (their request numbers), by image repository
    /// (`acme/app0`…).
    listings: Arc<Vec<Mutex<HashSet<u64>>>>,
    db: String,
    defs: PathBuf,
    git_root: PathBuf,
    _git: GitDaemon,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::on(postgres::postgres_url()).await
    }

    /// A fixture on the database at `db`.
    async fn on(db: String) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let git_root = dir.path().join("git");
        std::fs::create_dir_all(&git_root).unwrap();
        for r in 0..REPOS {
            let seed = dir.path().join(format!("seed{r}"));
            for s in 0..STAGES_PER_REPO {
                let env = seed.join(format!("env/s{s}"));
                std::fs::create_dir_all(&env).unwrap();
                std::fs::write(
                    env.join("kustomization.yaml"),
                    format!("resources: [../../base]\nimages:\n  - name: ghcr.io/acme/app{r}\n    newTag: 0.9.0\n"),
                )
                .unwrap();
            }
            git(&seed, &["init", "-q", "-b", "main"]);
            git(&seed, &["add", "."]);
            git(&seed, &["commit", "-q", "-m", "seed"]);
            let bare = git_root.join(format!("config{r}.git"));
            git(
                dir.path(),
                &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()],
            );
        }
        let git_daemon = GitDaemon::start(&git_root);
        let defs = dir.path().join("defs");
        std::fs::create_dir_all(&defs).unwrap();
        std::fs::write(defs.join("shop.yaml"), definitions()).unwrap();
        let reg = registry::TestRegistry::start(None).await;
        let listings: Arc<Vec<Mutex<HashSet<u64>>>> = Arc::new((0..REPOS).map(|_| Mutex::default()).collect());
        let counted = listings.clone();
        // The proxy asks its plan several times about one request (its number `n`).
        let plan: registry::Plan = Arc::new(move |n, path: &str| {
            for (r, seen) in counted.iter().enumerate() {
                if path.contains(&format!("/acme/app{r}/tags/list")) {
                    seen.lock().unwrap().insert(n);
                }
            }
            registry::Fault::Pass
        });
        let proxy = registry::Proxy::start(&reg.host, None, plan).await;
        Fixture {
            db,
            dir,
            reg,
            proxy,
            listings,
            defs,
            git_root,
            _git: git_daemon,
        }
    }

    /// Pushes `tag` of every Warehouse's image.
    async fn push(&self, tag: &str) {
        for r in 0..REPOS {
            self.reg
                .push_image(&format!("acme/app{r}"), tag, "2026-01-01T00:00:00Z", "amd64")
                .await;
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = support::barge();
        c.args(args).env("BARGE_DB", &self.db).env("USER", "alice");
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.command(&a).output().unwrap();
        assert!(out.status.success(), "barge {a:?}: {}{}", stdout(&out), stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Starts replica `id` (its own work directory, a lease of `lease`).
    fn replica(&self, id: &str, lease: &str) -> Replica {
        let log = self.dir.path().join(format!("{id}.log"));
        let git_port = self._git.port;
        let child = self
            .command(&[
                "serve",
                self.defs.to_str().unwrap(),
                "--replica-id",
                id,
                "--lease",
                lease,
                "--rewrite",
                &format!("ghcr.io/acme/={}/acme/", self.proxy.host),
                "--rewrite",
                &format!("https://git.example.com/acme/=git://127.0.0.1:{git_port}/"),
            ])
            .env("BARGE_WORK_DIR", self.dir.path().join(format!("work-{id}")))
            .env("BARGE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica { child, log }
    }

    /// Commit subjects of a config repository's main branch, the seed left out.
    fn commits(&self, r: usize) -> Vec<String> {
        let bare = self.git_root.join(format!("config{r}.git"));
        git(&bare, &["log", "--format=%s", "main"])
            .lines()
            .filter(|l| *l != "seed")
            .map(str::to_string)
            .collect()
    }

    /// Each Freight's tag, by Freight name.
    fn tags_by_freight(&self) -> HashMap<String, String> {
        let freight = self.json(&["get", "freight"]);
        freight
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["metadata"]["name"].as_str().unwrap().to_string(),
                    f["images"][0]["tag"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Waits until no promotion is Pending or Running and every Stage runs `tag`.
    fn wait_settled(&self, tag: &str, replicas: &mut [Replica], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let promotions = self.json(&["get", "promotions"]);
            let busy = promotions
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["status"]["phase"] == "Pending" || p["status"]["phase"] == "Running");
            let tags = self.tags_by_freight();
            let succeeded = promotions
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| {
                    p["status"]["phase"] == "Succeeded"
                        && tags.get(p["spec"]["freight"].as_str().unwrap()).map(String::as_str) == Some(tag)
                })
                .count();
            if !busy && succeeded == REPOS * STAGES_PER_REPO {
                return;
            }
            if Instant::now() > deadline {
                let logs: String = replicas.iter_mut().map(|r| r.log_text()).collect();
                panic!("the pipeline did not settle on {tag}: {promotions}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The invariants every run keeps: each Succeeded promotion landed exactly one commit
    /// (and no commit is without one), nothing is left Running, each tag pushed was minted
    /// once per Warehouse, and the audit log has each promotion's creation, end and arrival.
    fn assert_exactly_once(&self, tags: &[String]) {
        let promotions = self.json(&["get", "promotions"]);
        let promotions = promotions.as_array().unwrap();
        let tag_of = self.tags_by_freight();
        let mut expected: HashMap<usize, Vec<String>> = HashMap::new();
        for p in promotions {
            assert_eq!(p["status"]["phase"], "Succeeded", "every promotion succeeded: {p}");
            let stage = p["spec"]["stage"].as_str().unwrap();
            let r: usize = stage[1..2].parse().unwrap();
            let tag = &tag_of[p["spec"]["freight"].as_str().unwrap()];
            expected.entry(r).or_default().push(format!("{stage}: {tag}"));
        }
        for r in 0..REPOS {
            let mut landed = self.commits(r);
            landed.sort();
            let mut wanted = expected.remove(&r).unwrap_or_default();
            wanted.sort();
            assert_eq!(landed, wanted, "config{r}: one commit per promotion, none more");
        }
        let freight = self.json(&["get", "freight"]);
        assert_eq!(
            freight.as_array().unwrap().len(),
            tags.len() * REPOS,
            "every tag of every Warehouse minted, once: {freight}"
        );
        let history = self.json(&["history", "--limit", "1000"]);
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for e in history.as_array().unwrap() {
            *kinds.entry(e["kind"].as_str().unwrap().to_string()).or_default() += 1;
        }
        let n = promotions.len();
        assert_eq!(kinds.get("freight.minted"), Some(&(tags.len() * REPOS)), "{kinds:?}");
        assert_eq!(kinds.get("promotion.created"), Some(&n), "{kinds:?}");
        assert_eq!(kinds.get("promotion.finished"), Some(&n), "{kinds:?}");
        assert_eq!(kinds.get("stage.entered"), Some(&n), "{kinds:?}");
    }
}

/// A `barge serve` replica, killed when dropped.
struct Replica {
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn log_text(&mut self) -> String {
        format!(
            "--- {} ---\n{}",
            self.log.display(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// `kill -9`: no shutdown, leases left as they were.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tags(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("1.0.{i}")).collect()
}

/// Waits for each tag to be minted before pushing the next (a Warehouse mints the newest tag
/// it sees, so tags pushed within one interval would be one Freight).
async fn push_each(fx: &Fixture, tags: &[String], replicas: &mut [Replica], mut between: impl FnMut(&mut [Replica])) {
    for tag in tags {
        fx.push(tag).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let freight = fx.json(&["get", "freight"]);
            let minted = freight
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["images"][0]["tag"] == tag.as_str())
                .count();
            if minted == REPOS {
                break;
            }
            if Instant::now() > deadline {
                let logs: String = replicas.iter_mut().map(|r| r.log_text()).collect();
                panic!("{tag} was not minted: {freight}\n{logs}");
            }
            between(replicas);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn replicas_promote_once_and_discover_once_per_due_time(n: usize) {
    let fx = Fixture::new().await;
    let started = Instant::now();
    let mut replicas: Vec<Replica> = (0..n).map(|i| fx.replica(&format!("r{i}"), "30s")).collect();
    let tags = tags(4);
    push_each(&fx, &tags, &mut replicas, |_| {}).await;
    fx.wait_settled(tags.last().unwrap(), &mut replicas, Duration::from_secs(60));
    let elapsed = started.elapsed();
    fx.assert_exactly_once(&tags);

    // Each Warehouse was listed once per due time, whatever the number of replicas: at most
    // one pass at start and one per interval since (uncoordinated, each replica would list
    // it: n times as often).
    let most = (elapsed.as_millis() / INTERVAL.as_millis()) as u64 + 2;
    for (r, listed) in fx.listings.iter().enumerate() {
        let listed = listed.lock().unwrap().len() as u64;
        assert!(
            listed <= most,
            "app{r} was listed {listed} times in {elapsed:?}: more than once per {INTERVAL:?}"
        );
    }

    // Every replica is alive, by its heartbeat.
    let listed = fx.json(&["get", "replicas"]);
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let want: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    assert_eq!(ids, want.iter().map(String::as_str).collect::<Vec<_>>(), "{listed}");
    for r in listed.as_array().unwrap() {
        assert_eq!(r["alive"], true, "{r}");
        assert!(r["heartbeatAgeMs"].as_i64().unwrap() < 30_000, "{r}");
    }
    let text = fx.command(&["get", "replicas", "-o", "wide"]).output().unwrap();
    let text = stdout(&text);
    assert!(
        text.starts_with("REPLICA") && text.contains("HEARTBEAT") && text.contains("HOST") && text.contains("r0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_promote_once_and_discover_once_per_due_time() {
    replicas_promote_once_and_discover_once_per_due_time(2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_promote_once_and_discover_once_per_due_time() {
    replicas_promote_once_and_discover_once_per_due_time(3).await;
}

/// A pseudo-random number below `n`, seeded from the clock: each run kills at other points
/// (the seed is printed, to replay a failure).
fn random_below(state: &mut u64, n: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % n
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_killed_with_9_hand_their_promotions_to_the_others() {
    let fx = Fixture::new().await;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill points seeded with {seed}");
    // A short lease, so that a dead replica's promotions move on within seconds.
    let lease = "3s";
    let mut replicas: Vec<Replica> = (0..3).map(|i| fx.replica(&format!("r{i}"), lease)).collect();
    let tags = tags(5);
    let mut kills = 0;
    let mut next_id = 3;
    let mut holding_kills = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(500 + random_below(&mut seed, 2000));
    push_each(&fx, &tags, &mut replicas, |replicas| {
        if kills == 3 || Instant::now() < next_kill {
            return;
        }
        // Kill a replica that holds a promotion when one does (mid-promotion), else any.
        let listed = fx.json(&["get", "replicas"]);
        let holders: Vec<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["alive"] == true && !r["promotions"].as_array().unwrap().is_empty())
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let victim = if holders.is_empty() {
            random_below(&mut seed, replicas.len() as u64) as usize
        } else {
            holding_kills += 1;
            let id = &holders[random_below(&mut seed, holders.len() as u64) as usize];
            replicas
                .iter()
                .position(|r| r.log.file_stem().unwrap().to_str() == Some(id))
                .unwrap_or(0)
        };
        replicas[victim].kill_9();
        kills += 1;
        // A replacement joins under a new id; the dead one's leases run out.
        replicas[victim] = fx.replica(&format!("r{next_id}"), lease);
        next_id += 1;
        next_kill = Instant::now() + Duration::from_millis(500 + random_below(&mut seed, 2000));
    })
    .await;
    assert_eq!(kills, 3, "three replicas were killed");
    fx.wait_settled(tags.last().unwrap(), &mut replicas, Duration::from_secs(60));
    fx.assert_exactly_once(&tags);
    eprintln!("{holding_kills} of the 3 kills hit a replica holding a promotion");
    // The dead replicas are listed, gone, holding nothing.
    let listed = fx.json(&["get", "replicas"]);
    assert_eq!(listed.as_array().unwrap().len(), 6, "{listed}");
    for r in listed.as_array().unwrap() {
        assert!(r["promotions"].as_array().unwrap().is_empty(), "{r}");
    }
}

/// A replica that loses the database for 10 s (PostgreSQL stopped, started again) carries on
/// without a restart: nothing is done twice, and what was pushed meanwhile flows on.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_ride_out_ten_seconds_without_the_database() {
    let pg = postgres::OwnPostgres::start();
    let fx = Fixture::on(pg.url()).await;
    let started = Instant::now();
    let mut replicas: Vec<Replica> = (0..2).map(|i| fx.replica(&format!("r{i}"), "30s")).collect();
    let tags = tags(2);
    push_each(&fx, &tags[..1], &mut replicas, |_| {}).await;
    fx.wait_settled(&tags[0], &mut replicas, Duration::from_secs(60));
    pg.stop();
    fx.push(&tags[1]).await;
    std::thread::sleep(Duration::from_secs(10));
    pg.resume();
    fx.wait_settled(&tags[1], &mut replicas, Duration::from_secs(60));
    for r in &mut replicas {
        assert!(
            r.child.try_wait().unwrap().is_none(),
            "the replica kept running:\n{}",
            r.log_text()
        );
    }
    fx.assert_exactly_once(&tags);
    let elapsed = started.elapsed();
    let most = (elapsed.as_millis() / INTERVAL.as_millis()) as u64 + 2;
    for (r, listed) in fx.listings.iter().enumerate() {
        let listed = listed.lock().unwrap().len() as u64;
        assert!(listed <= most, "app{r} was listed {listed} times in {elapsed:?}");
    }
    let listed = fx.json(&["get", "replicas"]);
    assert!(
        listed.as_array().unwrap().iter().all(|r| r["alive"] == true),
        "both replicas write heartbeats again: {listed}"
    );
}

/// Issue #19: SQLite serves one replica; a second `barge serve` on the same file is refused
/// with a message that says why and what to do, and the first keeps running.
#[test]
fn a_second_serve_on_one_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = postgres::sqlite_url(&dir);
    let defs = dir.path().join("defs.yaml");
    std::fs::write(
        &defs,
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: shop}\n",
    )
    .unwrap();
    let serve = |extra: &[&str]| {
        let mut c = support::barge();
        c.args(["serve", defs.to_str().unwrap()])
            .args(extra)
            .env("BARGE_DB", &db)
            .env("BARGE_WORK_DIR", dir.path().join("work"));
        c
    };
    let mut first = Replica {
        child: serve(&[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
        log: dir.path().join("first.log"),
    };
    // It is up once it wrote its heartbeat.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = support::barge()
            .args(["get", "replicas", "-o", "json", "--db", &db])
            .output()
            .unwrap();
        if out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the first serve never wrote its heartbeat");
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = serve(&["--once"]).output().unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let pid = first.child.id().to_string();
    assert!(
        stderr(&second).contains(&format!(
            "another `barge serve` (pid {pid}) is running on the SQLite database"
        )) && stderr(&second).contains("PostgreSQL"),
        "{}",
        stderr(&second)
    );
    assert!(first.child.try_wait().unwrap().is_none(), "the first serve still runs");
    // Once it is gone, the file is free.
    first.kill_9();
    let after = serve(&["--once"]).output().unwrap();
    assert!(after.status.success(), "{}", stderr(&after));
}
