//! The examples modelled on real systems, run end to end as written (only their addresses
//! pointed at local components and long intervals shortened): `barge serve --once` discovers a
//! new tag in a real registry, promotes it with git commits pushed to a real `git daemon`, syncs
//! Argo CD and follows the Argo Rollouts canary on the test Kubernetes API server (its test
//! controllers stand in for Argo CD, Argo Rollouts, an ApplicationSet and Jobs), and verifies
//! against a real Prometheus (backfilled with promtool) or the cluster.
//!
//! - examples/lumen: tag → yaml-update of the Rollout manifest → argocd-update → rollout-wait →
//!   the success-rate analysis (five measurements, failureLimit 3: three failures tolerated,
//!   the fourth fails the verification).
//! - examples/homelab: a per-Freight staging environment written to git, created by an
//!   ApplicationSet, verified by a functional-test Job, then removed by prod's promotion.
//! - examples/kargo-demo: the Kargo demo's kustomize-build (the real kustomize engine,
//!   `scripts/test-env`) into a branch per Stage, then argocd-update.

use barge_testkit::kube::apiserver::ApiServer;
use barge_testkit::kube::controllers::{self, ArgoCdOptions};
use barge_testkit::prometheus::{Counter, Prometheus};
use barge_testkit::registry::TestRegistry;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{GitDaemon, copy_dir, git, root, stderr, stdout};

mod support;

/// One example, running: its definitions (copied, with the test's edits), its config
/// repository seeded from the example's files on a git daemon, a registry, a store, and a test
/// API server whose kubeconfig barge uses.
struct Example {
    dir: tempfile::TempDir,
    defs: PathBuf,
    bare: PathBuf,
    reg: TestRegistry,
    api: ApiServer,
    rewrites: Vec<String>,
    _git: GitDaemon,
}

impl Example {
    /// examples/`name`, with `edits` (text replacements) applied to its definitions; the
    /// config repository `repo` (its path under https://git.example.com/) holds the files of
    /// examples/`name`/`config` (`""`: the whole directory), on branch main.
    async fn start(name: &str, config: &str, repo: &str, edits: &[(&str, &str)]) -> Example {
        let dir = tempfile::tempdir().unwrap();
        let example = root().join("examples").join(name);
        let defs = dir.path().join("defs");
        copy_dir(&example, &defs);
        edit_yaml(&defs, edits);
        let seed = dir.path().join("seed");
        copy_dir(&example.join(config), &seed);
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "-q", "-m", "seed"]);
        let git_root = dir.path().join("git");
        let bare = git_root.join(repo);
        std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
        git(
            dir.path(),
            &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()],
        );
        let daemon = GitDaemon::start(&git_root);
        let reg = TestRegistry::start(None).await;
        let api = ApiServer::start(Some("examples")).await;
        api.kubeconfig(dir.path());
        let rewrites = vec![
            format!("registry.example.com/={}/", reg.host),
            format!("https://git.example.com/=git://127.0.0.1:{}/", daemon.port),
        ];
        Example {
            dir,
            defs,
            bare,
            reg,
            api,
            rewrites,
            _git: daemon,
        }
    }

    /// Requests for `from…` go to `to…` (a cluster address to a local server).
    fn rewrite(&mut self, from: &str, to: &str) {
        self.rewrites.push(format!("{from}={to}"));
    }

    async fn push(&self, repo: &str, tag: &str) {
        self.reg.push_image(repo, tag, "2026-01-01T00:00:00Z", "amd64").await;
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = support::barge();
        c.args(args)
            .env("BARGE_DB", barge_testkit::postgres::sqlite_url(&self.dir))
            .env("BARGE_WORK_DIR", self.dir.path().join("work"))
            .env("BARGE_POLL_INTERVAL", "200ms")
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("USER", "alice");
        if matches!(args[0], "serve" | "promote") {
            for r in &self.rewrites {
                c.args(["--rewrite", r]);
            }
        }
        c
    }

    /// `barge serve --once` on the definitions, which must reach idle within three minutes.
    fn once(&self) -> Output {
        let mut child = self
            .command(&["serve", self.defs.to_str().unwrap(), "--once"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(180);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!("serve --once never became idle:\n{}", stderr(&out));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    /// [`Example::once`], which must succeed; otherwise the failure shows the history.
    fn once_ok(&self) {
        let out = self.once();
        if !out.status.success() {
            let history = self.ok(&["history", "--limit", "40"]);
            panic!("serve --once failed:\n{}\n{history}", stderr(&out));
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "barge {args:?} failed:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// `git ARGS` in the config repository.
    fn git(&self, args: &[&str]) -> String {
        git(&self.bare, args)
    }

    /// The commits on `branch`, oldest first: (sha, subject).
    fn commits(&self, branch: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .git(&["log", "--format=%H %s", branch])
            .lines()
            .map(|l| {
                let (sha, subject) = l.split_once(' ').unwrap();
                (sha.to_string(), subject.to_string())
            })
            .collect();
        v.reverse();
        v
    }

    /// The stage's last verification, as `barge get stage` reports it.
    fn verification(&self, stage: &str) -> Value {
        self.json(&["get", "stage", stage])["status"]["barge"]["lastVerification"].clone()
    }

    /// The alias of the Freight whose first image has `tag`.
    fn alias_of(&self, tag: &str) -> String {
        let list = self.json(&["get", "freight"]);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["images"][0]["tag"] == tag)
            .unwrap_or_else(|| panic!("no freight for {tag}: {list:#}"))["alias"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn rollout(&self, ns: &str, name: &str) -> Value {
        self.api
            .get("argoproj.io", "rollouts", ns, name)
            .unwrap_or_else(|| panic!("no Rollout {ns}/{name}"))
    }
}

/// Replaces text in every YAML file below `dir`.
fn edit_yaml(dir: &Path, edits: &[(&str, &str)]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            edit_yaml(&path, edits);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let mut text = std::fs::read_to_string(&path).unwrap();
            for (from, to) in edits {
                text = text.replace(from, to);
            }
            std::fs::write(&path, text).unwrap();
        }
    }
}

/// The YAML documents of `text`, as JSON.
fn documents(text: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The documents of `kind` in `text`, each with `namespace` unless it names its own.
fn of_kind(text: &str, kind: &str, namespace: &str) -> Vec<Value> {
    documents(text)
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .map(|mut d| {
            if d["metadata"]["namespace"].is_null() {
                d["metadata"]["namespace"] = json!(namespace);
            }
            d
        })
        .collect()
}

/// Creates an Argo CD Application as the cluster has it: synced and healthy at `revision`
/// long ago.
fn put_app(api: &ApiServer, mut app: Value, revision: &str) {
    app["status"] = json!({"sync": {"status": "Synced", "revision": revision}, "health": {"status": "Healthy"},
        "operationState": {"phase": "Succeeded", "finishedAt": "2026-01-01T00:00:00Z"},
        "reconciledAt": "2026-01-01T00:00:01Z"});
    api.put("argoproj.io", "applications", app);
}

/// `kubectl apply` of a Rollout: created, or its spec replaced (the Rollouts stand-in then
/// rolls a changed pod template out).
fn apply_rollout(api: &ApiServer, ro: Value) {
    let ns = ro["metadata"]["namespace"].as_str().unwrap().to_string();
    let name = ro["metadata"]["name"].as_str().unwrap().to_string();
    if !api.update("argoproj.io", "rollouts", &ns, &name, |r| {
        let changed = r["spec"] != ro["spec"];
        r["spec"] = ro["spec"].clone();
        changed
    }) && api.get("argoproj.io", "rollouts", &ns, &name).is_none()
    {
        api.put("argoproj.io", "rollouts", ro);
    }
}

/// The health Argo CD reports for an app: the worst of its destination namespace's Rollouts.
fn app_health(api: &ApiServer, app: &Value) -> (String, String) {
    use barge_core::health::{Readiness, rollout};
    let ns = app["spec"]["destination"]["namespace"].as_str().unwrap_or("");
    for ro in api.list("argoproj.io", "rollouts") {
        if ro["metadata"]["namespace"] != ns {
            continue;
        }
        match rollout(&ro) {
            Readiness::Ready(_) => {}
            Readiness::Failed(f) => return ("Degraded".into(), f),
            Readiness::Waiting(w) => return ("Progressing".into(), w),
        }
    }
    ("Healthy".into(), String::new())
}

/// Starts the Argo CD stand-in (a sync of a revision applies the Rollouts `rollouts_at(app,
/// revision)` returns; health is the Rollouts') and the Argo Rollouts one (every canary step
/// takes 100 ms; these examples' canaries have no analysis steps of their own).
fn argo(
    api: &ApiServer,
    rollouts_at: impl Fn(&Value, &str) -> Vec<Value> + Send + Sync + 'static,
) -> Vec<tokio::task::JoinHandle<()>> {
    let opts = ArgoCdOptions {
        resolve: Arc::new(|_, target| target.to_string()),
        apply: Arc::new(move |server, app, revision| {
            for ro in rollouts_at(app, revision) {
                apply_rollout(server, ro);
            }
        }),
        health: Arc::new(app_health),
        stale_for: Duration::from_millis(300),
        sync_takes: Duration::from_millis(100),
    };
    vec![
        controllers::argocd(api.clone(), opts),
        controllers::rollouts(
            api.clone(),
            Arc::new(|_, _| (false, "the example's canary has no analysis step".into())),
            Duration::from_millis(100),
        ),
    ]
}

/// The canary weights a Rollout went through, in order (changes only).
fn weights(api: &ApiServer, ns: &str, name: &str) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for r in api.history("argoproj.io", "rollouts", ns, name) {
        if let Some(w) = r["status"]["canary"]["weights"]["canary"]["weight"].as_i64()
            && out.last() != Some(&w)
        {
            out.push(w);
        }
    }
    out
}

fn image(ro: &Value) -> &str {
    ro["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
}

fn healthy_at_its_template(ro: &Value) -> bool {
    ro["status"]["phase"] == "Healthy" && ro["status"]["stableRS"] == ro["status"]["currentPodHash"]
}

/// lumen's requests: `ok` and `failing` (5xx) per second, labelled as its app exports them.
fn lumen_requests(ok: f64, failing: f64) -> Vec<Counter> {
    vec![
        Counter {
            family: "http_requests_total",
            labels: r#"app="lumen-api",status="200""#,
            per_second: ok,
        },
        Counter {
            family: "http_requests_total",
            labels: r#"app="lumen-api",status="503""#,
            per_second: failing,
        },
    ]
}

const LUMEN_APP: &str = "03-airgap-zone/manifests/app/03-lumen-api.yaml";
const LUMEN_PROMETHEUS: &str = "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090";

/// examples/lumen: v1.5.3 goes out and passes its five measurements; v1.5.4, with one request
/// in five failing, goes out too and fails its verification at the fourth failed measurement
/// (failureLimit 3), so it is not verified.
#[tokio::test(flavor = "multi_thread")]
async fn lumen_tag_yaml_edit_rollout_and_analysis_with_failure_limit_3() {
    // One measurement a second instead of a minute; nothing else changes.
    let mut ex = Example::start(
        "lumen",
        "config",
        "lumen/lumen.git",
        &[("interval: 1m", "interval: 1s")],
    )
    .await;
    let seed_text = ex.git(&["show", &format!("main:{LUMEN_APP}")]);
    let app_text = ex.git(&[
        "show",
        "main:03-airgap-zone/manifests/argocd/16-application-lumen-app.yaml",
    ]);
    put_app(&ex.api, documents(&app_text).remove(0), "seed");
    for ro in of_kind(&seed_text, "Rollout", "lumen") {
        apply_rollout(&ex.api, ro);
    }
    let bare = ex.bare.clone();
    let _argo = argo(&ex.api, move |app, revision| {
        let path = app["spec"]["source"]["path"].as_str().unwrap();
        let text = git(&bare, &["show", &format!("{revision}:{path}/03-lumen-api.yaml")]);
        of_kind(&text, "Rollout", "lumen")
    });
    ex.api
        .wait_for(
            "argoproj.io",
            "rollouts",
            "lumen",
            "lumen-api",
            Duration::from_secs(5),
            healthy_at_its_template,
        )
        .await;

    // A healthy release: 99% of requests succeed.
    let healthy = Prometheus::start(&lumen_requests(99.0, 1.0));
    ex.rewrite(LUMEN_PROMETHEUS, &healthy.url);
    // CI pushes the release tag with its short-sha and latest tags; only v* is a release.
    for tag in ["v1.5.3", "3f2a1bc", "latest"] {
        ex.push("lumen/lumen-api", tag).await;
    }
    ex.once_ok();
    let freight = ex.json(&["get", "freight"]);
    assert_eq!(
        freight["items"].as_array().unwrap().len(),
        1,
        "one release: {freight:#}"
    );

    // The yaml edit: one commit changing only the image, the file's comments kept.
    let commits = ex.commits("main");
    let (bump, subject) = commits.last().unwrap().clone();
    assert_eq!(subject, "chore: bump lumen-api to v1.5.3");
    let diff = ex.git(&["show", "--format=", "-U0", &bump]);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---"))
        .collect();
    assert_eq!(
        changed,
        [
            "-          image: registry.example.com/lumen/lumen-api:v1.0.0  # set by barge",
            "+          image: registry.example.com/lumen/lumen-api:v1.5.3  # set by barge",
        ],
        "{diff}"
    );

    // Argo CD synced that very commit (the app still tracks main); the canary went 20 → 80 →
    // 100 and the new ReplicaSet is stable.
    let app = ex
        .api
        .get("argoproj.io", "applications", "argocd", "lumen-app")
        .unwrap();
    assert_eq!(app["status"]["sync"]["revision"], bump.as_str());
    assert_eq!(app["spec"]["source"]["targetRevision"], "main");
    let ro = ex.rollout("lumen", "lumen-api");
    assert_eq!(image(&ro), "registry.example.com/lumen/lumen-api:v1.5.3");
    assert!(healthy_at_its_template(&ro), "{ro:#}");
    assert_eq!(weights(&ex.api, "lumen", "lumen-api"), [0, 20, 80, 100]);

    // Then the analysis: five measurements of the real Prometheus, all successful.
    let v = ex.verification("lumen");
    assert_eq!(v["phase"], "Succeeded", "{v:#}");
    let measured: Vec<(&str, &str)> = v["report"]["metrics"][0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["phase"].as_str().unwrap(), m["value"].as_str().unwrap()))
        .collect();
    assert_eq!(measured, [("Successful", "[0.99]"); 5], "{v:#}");

    // A bad release: one request in five fails. It is rolled out, then its verification fails
    // at the fourth failed measurement: three were tolerated.
    let degraded = Prometheus::start(&lumen_requests(80.0, 20.0));
    ex.rewrites.pop();
    ex.rewrite(LUMEN_PROMETHEUS, &degraded.url);
    ex.push("lumen/lumen-api", "v1.5.4").await;
    let out = ex.once();
    assert!(!out.status.success(), "a failed verification fails the run");
    assert!(stderr(&out).contains("of lumen Failed"), "{}", stderr(&out));
    assert_eq!(ex.commits("main").last().unwrap().1, "chore: bump lumen-api to v1.5.4");
    assert_eq!(
        image(&ex.rollout("lumen", "lumen-api")),
        "registry.example.com/lumen/lumen-api:v1.5.4"
    );
    let v = ex.verification("lumen");
    assert_eq!(v["phase"], "Failed", "{v:#}");
    assert_eq!(v["alias"].as_str(), Some(ex.alias_of("v1.5.4").as_str()));
    let report = &v["report"];
    assert_eq!(
        report["message"], "Metric \"success-rate\" assessed Failed due to failed (4) > failureLimit (3)",
        "{v:#}"
    );
    let measured: Vec<(&str, &str)> = report["metrics"][0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["phase"].as_str().unwrap(), m["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        measured,
        [("Failed", "[0.8]"); 4],
        "three failures tolerated, the fourth ends it before the fifth: {v:#}"
    );
    let freight = ex.json(&["get", "freight", &ex.alias_of("v1.5.4")]);
    assert!(freight["status"]["verifiedIn"].get("lumen").is_none(), "{freight:#}");
}

/// failureLimit 3 from the other side: lumen's template (its interval shortened to 10s) whose
/// first three measurements fail and last two pass ends Successful, since three failures are
/// tolerated. Prometheus holds one burst of 5xx errors timed so that every `[2m]` window
/// evaluated before an instant T holds it (success rate about 0.55) and none after T does
/// (1.0); the run starts 25s before T, so measurements at 0s, 10s and 20s fail and those at
/// 30s and 40s pass (5s of slack either side, for the run's start and the measurements'
/// own time, which delay the next one on a loaded machine).
#[test]
fn lumen_analysis_tolerates_three_failed_measurements() {
    use barge_testkit::prometheus::{Series, now_secs};
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("examples/lumen/kargo.yaml")).unwrap();
    let template = dir.path().join("lumen.yaml");
    std::fs::write(&template, text.replace("interval: 1m", "interval: 10s")).unwrap();
    // T leaves Prometheus time to start; the burst is at T - 119 s, so a window (e - 120, e]
    // still holds the sample before it exactly while e < T. Measurements 10 s apart from
    // T - 25 s: three before T, two after, each 5 s from T (margin for a loaded machine).
    let t = now_secs() + 60;
    let burst = t - 119;
    let range = (t - 400)..(t + 400);
    let prometheus = Prometheus::start_series(&[
        Series {
            family: "http_requests_total",
            labels: r#"app="lumen-api",status="200""#,
            samples: range.clone().map(|s| (s, 10.0 * (s - range.start) as f64)).collect(),
        },
        Series {
            family: "http_requests_total",
            labels: r#"app="lumen-api",status="503""#,
            samples: range.map(|s| (s, if s < burst { 0.0 } else { 1000.0 })).collect(),
        },
    ]);
    let start = std::time::UNIX_EPOCH + Duration::from_millis((t * 1000 - 25_000) as u64);
    let wait = start
        .duration_since(std::time::SystemTime::now())
        .expect("Prometheus took more than 35 s to start");
    std::thread::sleep(wait);
    let out = support::barge()
        .args([
            "analysis",
            "run",
            template.to_str().unwrap(),
            "--template",
            "success-rate",
        ])
        .args(["--prometheus", &prometheus.url, "-o", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let phases: Vec<&str> = report["metrics"][0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["Failed", "Failed", "Failed", "Successful", "Successful"],
        "{report:#}"
    );
    assert_eq!(report["phase"], "Successful", "{report:#}");
    assert!(out.status.success());
}

const HOMELAB_PROMETHEUS: &str = "http://prometheus.monitoring.svc:9090";

/// The environments the ApplicationSet stand-in made and removed, in order.
type Events = Arc<Mutex<Vec<String>>>;

/// The ApplicationSet of examples/homelab/config/apps/argocd/staging-environments.yaml: each
/// apps/staging/manifests/<version>.json on main becomes an Application `<version>-apps` and
/// the environment's homelabping Rollout in namespace `<version>` (after 500 ms, as an
/// ApplicationSet takes a while); a file deleted deletes both.
fn application_set(api: ApiServer, bare: PathBuf, events: Events) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut live: std::collections::BTreeSet<String> = Default::default();
        // git blocks: off the runtime's worker, where a task it woke would wait for it.
        let read = |args: &[&str]| tokio::task::block_in_place(|| git(&bare, args));
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let listing = read(&["ls-tree", "--name-only", "main", "apps/staging/manifests/"]);
            let files: std::collections::BTreeSet<String> = listing
                .lines()
                .filter_map(|l| l.strip_prefix("apps/staging/manifests/")?.strip_suffix(".json"))
                .map(str::to_string)
                .collect();
            for v in files.difference(&live) {
                let manifest: Value =
                    serde_json::from_str(&read(&["show", &format!("main:apps/staging/manifests/{v}.json")])).unwrap();
                let version = manifest["homelabping"]["version"].as_str().unwrap();
                api.put(
                    "argoproj.io",
                    "applications",
                    json!({"metadata": {"name": format!("{v}-apps"), "namespace": "argocd"},
                    "spec": {"destination": {"namespace": v}}}),
                );
                apply_rollout(&api, homelabping(v, version));
                events.lock().unwrap().push(format!("created {v}"));
            }
            for v in live.difference(&files) {
                api.delete("argoproj.io", "applications", "argocd", &format!("{v}-apps"));
                api.delete("argoproj.io", "rollouts", v, "homelabping");
                events.lock().unwrap().push(format!("deleted {v}"));
            }
            live = files;
        }
    })
}

/// The homelabping Rollout of an environment, running `version`.
fn homelabping(namespace: &str, version: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "homelabping", "namespace": namespace},
        "spec": {"strategy": {"canary": {"steps": [{"setWeight": 25}, {"setWeight": 50}, {"setWeight": 100}]}},
            "template": {"spec": {"containers": [{"name": "homelabping",
                "image": format!("registry.example.com/apps/homelabping:{version}")}]}}}})
}

/// examples/homelab: a new build gets its own staging environment (a file written to git,
/// made into an environment by the ApplicationSet), passes its functional tests there (a Job
/// of its pipeline image), goes to prod, and prod's commit removes the staging file, so the
/// environment is torn down.
#[tokio::test(flavor = "multi_thread")]
async fn homelab_per_freight_environment_written_verified_and_removed() {
    const BUILD: &str = "v202601211170844";
    let mut ex = Example::start(
        "homelab",
        "config",
        "homelab/homelab-apps.git",
        &[("interval: 30s", "interval: 1s")],
    )
    .await;
    let prod_app = ex.git(&["show", "main:apps/argocd/homelab-prod.yaml"]);
    put_app(&ex.api, documents(&prod_app).remove(0), "seed");
    let seed: Value = serde_json::from_str(&ex.git(&["show", "main:apps/prod/manifest.json"])).unwrap();
    let baseline = seed["homelabping"]["version"].as_str().unwrap().to_string();
    apply_rollout(&ex.api, homelabping("prod", &baseline));
    let bare = ex.bare.clone();
    let _argo = argo(&ex.api, move |_, revision| {
        let manifest: Value =
            serde_json::from_str(&git(&bare, &["show", &format!("{revision}:apps/prod/manifest.json")])).unwrap();
        vec![homelabping(
            "prod",
            manifest["homelabping"]["version"].as_str().unwrap(),
        )]
    });
    let events = Events::default();
    let _appset = application_set(ex.api.clone(), ex.bare.clone(), events.clone());
    let _jobs = controllers::jobs(ex.api.clone(), Duration::from_millis(300));
    let prometheus = Prometheus::start(&[
        Counter {
            family: "http_requests_total",
            labels: r#"app="homelabping",namespace="prod",code="200""#,
            per_second: 50.0,
        },
        Counter {
            family: "http_requests_total",
            labels: r#"app="homelabping",namespace="prod",code="500""#,
            per_second: 0.5,
        },
    ]);
    ex.rewrite(HOMELAB_PROMETHEUS, &prometheus.url);

    // CI built the app (and its pipeline image, which the Job runs) with a timestamp tag.
    ex.push("apps/homelabping", BUILD).await;
    ex.once_ok();

    // Two commits: the environment's file added, then prod updated and the file deleted.
    let commits = ex.commits("main");
    let [_, (create, create_subject), (prod, prod_subject)] = commits.as_slice() else {
        panic!("{commits:#?}")
    };
    assert_eq!(create_subject, &format!("staging: create environment {BUILD}"));
    let file = format!("apps/staging/manifests/{BUILD}.json");
    assert_eq!(
        ex.git(&["show", "--format=", "--name-status", create]),
        format!("A\t{file}")
    );
    let env: Value = serde_json::from_str(&ex.git(&["show", &format!("{create}:{file}")])).unwrap();
    assert_eq!(env["homelabping"]["version"], BUILD);
    assert_eq!(
        env["homelabmaindbcluster"], seed["homelabmaindbcluster"],
        "a copy of prod's manifest with the new build"
    );
    assert_eq!(
        prod_subject,
        &format!("prod: homelabping {BUILD}, remove staging environment {BUILD}")
    );
    assert_eq!(
        ex.git(&["show", "--format=", "--name-status", prod]),
        format!("M\tapps/prod/manifest.json\nD\t{file}")
    );
    let prod_manifest: Value = serde_json::from_str(&ex.git(&["show", "main:apps/prod/manifest.json"])).unwrap();
    assert_eq!(prod_manifest["homelabping"]["version"], BUILD);

    // The environment existed while it was tested, and is gone.
    assert_eq!(
        *events.lock().unwrap(),
        [format!("created {BUILD}"), format!("deleted {BUILD}")]
    );
    assert!(ex.api.get("argoproj.io", "rollouts", BUILD, "homelabping").is_none());
    assert!(
        ex.api
            .get("argoproj.io", "applications", "argocd", &format!("{BUILD}-apps"))
            .is_none()
    );

    // The functional tests ran as a Job of the build's pipeline image against its
    // environment, the version read from the environment's Rollout.
    let jobs = ex.api.list("batch", "jobs");
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0]["metadata"]["namespace"], "homelab");
    let container = &jobs[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        format!("registry.example.com/pipeline/homelabping:{BUILD}")
    );
    assert_eq!(
        container["args"],
        json!(["migrations", "functional-tests", "--environment", BUILD])
    );
    let alias = ex.alias_of(BUILD);
    let staging = ex.verification("staging");
    assert_eq!(
        (staging["phase"].as_str(), staging["alias"].as_str()),
        (Some("Succeeded"), Some(alias.as_str())),
        "{staging:#}"
    );

    // Prod: synced to its commit, the canary rolled out, the success rate held.
    let app = ex
        .api
        .get("argoproj.io", "applications", "argocd", "homelab-prod")
        .unwrap();
    assert_eq!(app["status"]["sync"]["revision"], prod.as_str());
    let ro = ex.rollout("prod", "homelabping");
    assert_eq!(image(&ro), format!("registry.example.com/apps/homelabping:{BUILD}"));
    assert!(healthy_at_its_template(&ro), "{ro:#}");
    let prod_v = ex.verification("prod");
    assert_eq!(prod_v["phase"], "Succeeded", "{prod_v:#}");
    assert_eq!(
        prod_v["report"]["metrics"][0]["measurements"].as_array().unwrap().len(),
        3
    );
}

/// The smoke endpoints of the staging product-api (`/health`, `/products`), answering for the
/// image its Rollout runs.
async fn product_api(port: u16, api: ApiServer) {
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(|| async { axum::Json(json!({"status": "healthy"})) }),
        )
        .route(
            "/products",
            axum::routing::get(move || {
                let api = api.clone();
                async move {
                    let ro = api.get("argoproj.io", "rollouts", "kargo-demo-staging", "kargo-demo-rollout");
                    let count = ro.map_or(0, |r| if image(&r).ends_with(":1.0.0") { 3 } else { 0 });
                    axum::Json(json!({"count": count}))
                }
            }),
        );
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    barge_testkit::runtime::serve("product-api", listener, app);
}

/// `kustomize build DIR`, with the real engine.
fn kustomize_build(dir: &Path) -> String {
    let out = Command::new("kustomize")
        .args(["build", dir.to_str().unwrap()])
        .output()
        .expect("kustomize (scripts/test-env installs it)");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// examples/kargo-demo: 1.0.0 (the baseline is 0.9.0) is rendered with kustomize into
/// stage/dev and stage/staging, each synced by its Argo CD app and rolled out; staging passes
/// its smoke test; prod waits for a person, who promotes it.
#[tokio::test(flavor = "multi_thread")]
async fn kargo_demo_kustomize_build_and_argocd_update() {
    let mut ex = Example::start("kargo-demo", "", "kargo-demo/kargo-demo.git", &[]).await;
    let example = root().join("examples/kargo-demo");
    // The ApplicationSet's three apps, and the baseline Argo CD deployed from main.
    let appset = documents(&std::fs::read_to_string(example.join("appset.yml")).unwrap()).remove(0);
    let template = appset["spec"]["template"].to_string();
    for stage in ["dev", "staging", "prod"] {
        let mut app: Value = serde_json::from_str(&template.replace("{{stage}}", stage)).unwrap();
        // An ApplicationSet creates its Applications in its own namespace.
        app["metadata"]["namespace"] = appset["metadata"]["namespace"].clone();
        put_app(&ex.api, app, "seed");
        let baseline = kustomize_build(&example.join("stages").join(stage));
        for ro in of_kind(&baseline, "Rollout", "") {
            apply_rollout(&ex.api, ro);
        }
    }
    let bare = ex.bare.clone();
    let _argo = argo(&ex.api, move |_, revision| {
        of_kind(
            &git(&bare, &["show", &format!("{revision}:manifests.yaml")]),
            "Rollout",
            "",
        )
    });
    let smoke = support::free_port();
    product_api(smoke, ex.api.clone()).await;
    ex.rewrite(
        "http://kargo-demo-rollout.kargo-demo-staging.svc:3000/",
        &format!("http://127.0.0.1:{smoke}/"),
    );

    for tag in ["0.9.0", "1.0.0"] {
        ex.push("kargo-demo/product-api", tag).await;
    }
    ex.once_ok();
    let alias = ex.alias_of("1.0.0");
    for stage in ["dev", "staging"] {
        let branch = format!("stage/{stage}");
        // The branch holds only the render of the Stage's overlay, at the new image.
        assert_eq!(ex.git(&["ls-tree", "--name-only", &branch]), "manifests.yaml");
        let rendered = ex.git(&["show", &format!("{branch}:manifests.yaml")]);
        assert!(
            rendered.contains(&format!("namespace: kargo-demo-{stage}")),
            "{rendered}"
        );
        assert!(
            rendered.contains("image: registry.example.com/kargo-demo/product-api:1.0.0"),
            "{rendered}"
        );
        assert_eq!(
            ex.git(&["log", "-1", "--format=%s", &branch]),
            format!("Updated ./src/stages/{stage} to use new image")
        );
        // Its app synced that commit, and the Rollout rolled the image out.
        let head = ex.git(&["rev-parse", &branch]);
        let app = ex
            .api
            .get("argoproj.io", "applications", "argocd", &format!("kargo-demo-{stage}"))
            .unwrap();
        assert_eq!(app["status"]["sync"]["revision"], head.as_str(), "{app:#}");
        let ro = ex.rollout(&format!("kargo-demo-{stage}"), "kargo-demo-rollout");
        assert_eq!(image(&ro), "registry.example.com/kargo-demo/product-api:1.0.0");
        assert!(healthy_at_its_template(&ro), "{ro:#}");
    }
    let v = ex.verification("staging");
    assert_eq!(v["phase"], "Succeeded", "{v:#}");
    // Prod waits for a person; main is untouched (the render lives in the branches).
    assert_eq!(ex.commits("main").len(), 1);
    assert!(ex.git(&["branch", "--list", "stage/prod"]).is_empty());
    assert_eq!(
        image(&ex.rollout("kargo-demo-prod", "kargo-demo-rollout")),
        "registry.example.com/kargo-demo/product-api:0.9.0"
    );

    ex.ok(&["promote", "--stage", "prod", "--freight-alias", &alias]);
    let rendered = ex.git(&["show", "stage/prod:manifests.yaml"]);
    assert!(rendered.contains("namespace: kargo-demo-prod"), "{rendered}");
    let head = ex.git(&["rev-parse", "stage/prod"]);
    let app = ex
        .api
        .get("argoproj.io", "applications", "argocd", "kargo-demo-prod")
        .unwrap();
    assert_eq!(app["status"]["sync"]["revision"], head.as_str());
    let ro = ex.rollout("kargo-demo-prod", "kargo-demo-rollout");
    assert_eq!(image(&ro), "registry.example.com/kargo-demo/product-api:1.0.0");
    assert!(healthy_at_its_template(&ro), "{ro:#}");
}
