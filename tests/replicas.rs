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
use support::replica_pipeline::{Pipeline, repo_of};
use support::{GitDaemon, git, stderr, stdout};

/// Config repositories, each watched by its own Warehouse.
const REPOS: usize = 3;
/// Stages per config repository, each auto-promoted straight from its Warehouse: 30 Stages
/// in all, as issue #19 asks.
const STAGES_PER_REPO: usize = 10;
/// New tags of every image pushed over each run (issue #19: 20).
const TAGS: usize = 20;
/// Every Warehouse's discovery interval: short, so that 20 tags, each minted before the next
/// is pushed, take about 20 s.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long a pipeline may take to settle after the last tag: 600 promotions on a loaded
/// 2-core CI machine, in a debug build.
const SETTLE: Duration = Duration::from_secs(180);

/// The pipeline every test runs: issue #19's 30 Stages on 3 config repositories.
const PIPELINE: Pipeline = Pipeline {
    repos: REPOS,
    stages_per_repo: STAGES_PER_REPO,
    interval: INTERVAL,
};

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
        PIPELINE.seed_repos(&git_root);
        let git_daemon = GitDaemon::start(&git_root);
        let defs = dir.path().join("defs");
        std::fs::create_dir_all(&defs).unwrap();
        std::fs::write(defs.join("shop.yaml"), PIPELINE.definitions()).unwrap();
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
        support::listed(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Starts replica `id` (its own work directory, a lease of `lease`).
    fn replica(&self, id: &str, lease: &str) -> Replica {
        self.replica_with(id, lease, &[])
    }

    /// [`Fixture::replica`] with more `barge serve` flags.
    fn replica_with(&self, id: &str, lease: &str, flags: &[&str]) -> Replica {
        let log = self.dir.path().join(format!("{id}.log"));
        let child = self
            .command(&[
                "serve",
                self.defs.to_str().unwrap(),
                "--replica-id",
                id,
                "--lease",
                lease,
            ])
            .args(Pipeline::rewrites(&self.proxy.host, self._git.port))
            .args(flags)
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
        // Blocking is fine here (see `push_each`).
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
            if !busy && succeeded == PIPELINE.stages() {
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
            let r = repo_of(stage);
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
        let limit = 100_000;
        let history = self.json(&["history", "--limit", &limit.to_string()]);
        assert!(
            history.as_array().unwrap().len() < limit,
            "the whole audit log was read"
        );
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
        // The CLI calls and sleeps below block this thread, which is the one `block_on` runs
        // the test on, not a worker of its runtime; the registry proxy the replicas list tags
        // through serves from a runtime of its own (barge_testkit::runtime) in any case.
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

/// The ids of the replicas `barge get replicas -o json` listed, sorted.
fn replica_ids(listed: &Value) -> Vec<String> {
    let mut ids: Vec<String> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

async fn replicas_promote_once_and_discover_once_per_due_time(n: usize) {
    let fx = Fixture::new().await;
    let started = Instant::now();
    let mut replicas: Vec<Replica> = (0..n).map(|i| fx.replica(&format!("r{i}"), "30s")).collect();
    // Every replica has written its heartbeat before the first tag: the bound on refused
    // auto-promotions below counts a start that overlaps that tag's promotions, not a replica
    // that a loaded machine started so late that it joined during a later tag.
    let want: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    support::wait_for("every replica's heartbeat", Duration::from_secs(60), || {
        let out = fx.command(&["get", "replicas", "-o", "json"]).output().unwrap();
        replica_ids(&support::listed(
            serde_json::from_slice(&out.stdout).unwrap_or_default(),
        )) == want
    });
    let tags = tags(TAGS);
    push_each(&fx, &tags, &mut replicas, |_| {}).await;
    fx.wait_settled(tags.last().unwrap(), &mut replicas, SETTLE);
    let elapsed = started.elapsed();
    fx.assert_exactly_once(&tags);

    // Each Stage is decided by one replica, its share among the live ones: the others do not
    // try its auto-promotions again only to have the database refuse them (every replica
    // deciding every Stage: 268 refused in one run of 3 replicas). Only while the replicas
    // start, before each has seen the others' heartbeats, may several decide one Stage: at most
    // the first tag's Stages, once per other replica.
    let logs: Vec<String> = replicas.iter_mut().map(|r| r.log_text()).collect();
    let refused: Vec<&str> = logs
        .iter()
        .flat_map(|log| log.lines())
        .filter(|l| l.contains("no auto-promotion") || l.starts_with("---"))
        .collect();
    let count = refused.iter().filter(|l| !l.starts_with("---")).count();
    assert!(
        count <= PIPELINE.stages() * (n - 1),
        "{count} auto-promotions were tried by a replica after another had created them:\n{}",
        refused.join("\n")
    );

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
    assert_eq!(replica_ids(&listed), want, "{listed}");
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

/// A replica claims no more promotions than it runs at once (`--workers`): a burst of 30
/// queued promotions is shared by both replicas instead of going to whichever looked first
/// (which then ran them `--workers` at a time while the other stood idle).
#[tokio::test(flavor = "multi_thread")]
async fn replicas_claim_no_more_promotions_than_their_workers() {
    let fx = Fixture::new().await;
    let workers = 2;
    let mut replicas: Vec<Replica> = (0..2)
        .map(|i| fx.replica_with(&format!("r{i}"), "30s", &["--workers", &workers.to_string()]))
        .collect();
    let tags = tags(1);
    let mut most_held = 0;
    push_each(&fx, &tags, &mut replicas, |_| {}).await;
    let deadline = Instant::now() + SETTLE;
    loop {
        let listed = fx.json(&["get", "replicas"]);
        for r in listed.as_array().unwrap() {
            let held = r["promotions"].as_array().unwrap().len();
            assert!(held <= workers, "a replica holds more promotions than it runs: {r}");
            most_held = most_held.max(held);
        }
        let promotions = fx.json(&["get", "promotions"]);
        let promotions = promotions.as_array().unwrap();
        if promotions.len() == PIPELINE.stages() && promotions.iter().all(|p| p["status"]["phase"] == "Succeeded") {
            break;
        }
        if Instant::now() > deadline {
            let logs: String = replicas.iter_mut().map(|r| r.log_text()).collect();
            panic!("the burst did not end: {promotions:?}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(most_held > 0, "the replicas were seen holding promotions");
    fx.assert_exactly_once(&tags);
    // Both ran a share of them.
    for r in &mut replicas {
        let log = r.log_text();
        let ran = log
            .lines()
            .filter(|l| l.starts_with("barge: promotion ") && l.ends_with(": Succeeded"))
            .count();
        assert!(ran > 0, "every replica ran promotions:\n{log}");
    }
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
    let tags = tags(TAGS);
    let mut kills = 0;
    let mut next_id = 3;
    let mut holding_kills = 0;
    let mut next_kill = Instant::now() + Duration::from_millis(1000 + random_below(&mut seed, 5000));
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
        next_kill = Instant::now() + Duration::from_millis(1000 + random_below(&mut seed, 5000));
    })
    .await;
    assert_eq!(kills, 3, "three replicas were killed");
    fx.wait_settled(tags.last().unwrap(), &mut replicas, SETTLE);
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
    fx.wait_settled(&tags[0], &mut replicas, SETTLE);
    pg.stop();
    fx.push(&tags[1]).await;
    std::thread::sleep(Duration::from_secs(10));
    pg.resume();
    fx.wait_settled(&tags[1], &mut replicas, SETTLE);
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
            && serde_json::from_slice::<Value>(&out.stdout)
                .is_ok_and(|v| v["items"].as_array().is_some_and(|a| !a.is_empty()))
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
