//! The pipeline end to end: `barge serve` (and `--once`) with a real registry, a real git
//! remote (`git daemon`) and a real store, SQLite and PostgreSQL. A new tag is auto-promoted
//! to dev, then to staging once verified there; prod waits for a person; soak time, holds and
//! promotion windows defer auto-promotion with the reason `barge get stage` gives; abort
//! stops a running promotion; `kill -9` of the daemon mid-promotion loses nothing; a slow
//! registry delays neither a promotion nor another Warehouse's refresh.

use barge_testkit::kube as kube_support;
use barge_testkit::{postgres, registry};
mod support;

use barge_store::Backend;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{GitDaemon, git, health_server, stderr, stdout, wait_for};

/// The project, its Warehouse and the PromotionTask every Stage below runs.
const COMMON: &str = r#"
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
kind: PromotionTask
metadata: {name: update-overlay, namespace: shop}
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
      config: {path: ./src, message: "${{ ctx.stage }}: ${{ imageFrom('ghcr.io/acme/app').Tag }}"}
    - uses: git-push
      config: {path: ./src}
"#;

/// Auto-promotion into dev, staging and gate; prod by hand (SOAK and WINDOWS are filled in).
const DEFINITIONS: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: shop, namespace: shop}
spec:
  promotionPolicies:
    - stageSelector: {name: "regex:^(dev|staging|gate)$"}
      autoPromotionEnabled: true
  promotionWindows: WINDOWS
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: staging, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [dev], requiredSoakTime: SOAK}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
        - uses: http
          as: healthy
          config:
            url: http://127.0.0.1:HEALTH_PORT/healthz
            successExpression: response.status == 200
---
# A control-flow Stage: no steps, it only records that Freight passed dev.
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: gate, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [dev]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: prod, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [staging]}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
"#;

struct Fixture {
    dir: tempfile::TempDir,
    reg: registry::TestRegistry,
    bare: PathBuf,
    db: String,
    git_port: u16,
    defs: PathBuf,
    web: PathBuf,
    _health: support::HealthServer,
    _git: GitDaemon,
}

impl Fixture {
    async fn new(backend: Backend, soak: &str, windows: &str) -> Fixture {
        let stages = DEFINITIONS.replace("SOAK", soak).replace("WINDOWS", windows);
        Fixture::with(backend, &format!("{COMMON}---{stages}")).await
    }

    /// A fixture running `definitions` (HEALTH_PORT is replaced by the health server's port);
    /// they start with COMMON.
    async fn with(backend: Backend, definitions: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        for stage in ["dev", "staging", "prod"] {
            std::fs::create_dir_all(seed.join("env").join(stage)).unwrap();
            std::fs::write(
                seed.join(format!("env/{stage}/kustomization.yaml")),
                format!("# {stage}\nresources: [../../base]\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 0.9.0\n"),
            )
            .unwrap();
        }
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "-q", "-m", "seed"]);
        let root = dir.path().join("git");
        std::fs::create_dir_all(&root).unwrap();
        let bare = root.join("config.git");
        git(
            dir.path(),
            &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()],
        );
        let git_daemon = GitDaemon::start(&root);
        let web = dir.path().join("web");
        std::fs::create_dir_all(&web).unwrap();
        std::fs::write(web.join("healthz"), "ok").unwrap();
        let health_port = support::free_port();
        let health = health_server(&web, health_port);
        let defs = dir.path().join("defs");
        std::fs::create_dir_all(&defs).unwrap();
        std::fs::write(
            defs.join("shop.yaml"),
            definitions.replace("HEALTH_PORT", &health_port.to_string()),
        )
        .unwrap();
        let db = match backend {
            Backend::Sqlite => postgres::sqlite_url(&dir),
            Backend::Postgres => postgres::postgres_url(),
        };
        let reg = registry::TestRegistry::start(None).await;
        Fixture {
            git_port: git_daemon.port,
            dir,
            reg,
            bare,
            db,
            defs,
            web,
            _health: health,
            _git: git_daemon,
        }
    }

    async fn push(&self, tag: &str) {
        self.reg
            .push_image("acme/app", tag, "2026-01-01T00:00:00Z", "amd64")
            .await;
    }

    /// `barge ARGS` with the store, rewrites and work directory of this fixture where the
    /// verb takes them.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = support::barge();
        c.args(args)
            .env("BARGE_DB", &self.db)
            .env("BARGE_WORK_DIR", self.dir.path().join("work"))
            .env("BARGE_POLL_INTERVAL", "200ms")
            .env("USER", "alice");
        // A test API server's kubeconfig, when the test started one.
        let kubeconfig = self.dir.path().join("kubeconfig");
        if kubeconfig.exists() {
            c.env("KUBECONFIG", kubeconfig);
        }
        if matches!(args[0], "serve" | "promote") {
            c.args([
                "--rewrite",
                &format!("ghcr.io/acme/={}/acme/", self.reg.host),
                "--rewrite",
                &format!("https://git.example.com/acme/=git://127.0.0.1:{}/", self.git_port),
            ]);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
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
        support::listed(serde_json::from_str(&self.ok(&a)).unwrap())
    }

    /// `barge serve --once`, which must reach idle within two minutes.
    fn once(&self) -> Output {
        self.once_with(&[])
    }

    /// `barge serve --once EXTRA…`.
    fn once_with(&self, extra: &[&str]) -> Output {
        let mut args = vec!["serve", self.defs.to_str().unwrap(), "--once"];
        args.extend(extra);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
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

    fn once_ok(&self) {
        let out = self.once();
        assert!(out.status.success(), "serve --once failed:\n{}", stderr(&out));
    }

    /// The audit events of one kind that `barge history ARGS` shows, newest first.
    fn events(&self, args: &[&str], kind: &str) -> Vec<Value> {
        let mut a = vec!["history", "--limit", "1000"];
        a.extend(args);
        let all = self.json(&a);
        all.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .cloned()
            .collect()
    }

    /// The stage's one freight request, as `barge get stage` reports it.
    fn request(&self, stage: &str) -> Value {
        let v = self.json(&["get", "stage", stage]);
        v["status"]["barge"]["requests"][0].clone()
    }

    /// The tag each overlay pins in the config repository now.
    fn pinned(&self, stage: &str) -> String {
        let text = git(&self.bare, &["show", &format!("main:env/{stage}/kustomization.yaml")]);
        text.lines()
            .find_map(|l| l.trim().strip_prefix("newTag: "))
            .unwrap()
            .to_string()
    }

    fn commits(&self, prefix: &str) -> usize {
        git(&self.bare, &["log", "--format=%s", "main"])
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    fn alias_of(&self, tag: &str) -> String {
        let list = self.json(&["get", "freight"]);
        list.as_array()
            .unwrap()
            .iter()
            .find(|f| f["images"][0]["tag"] == tag)
            .unwrap_or_else(|| panic!("no freight for {tag}: {list}"))["alias"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(barge_store::Backend::Sqlite).await })*
        }
        mod postgresql {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(barge_store::Backend::Postgres).await })*
        }
    };
}

both_stores!(
    a_new_tag_flows_to_dev_and_staging_and_prod_waits_for_a_person,
    soak_time_delays_staging_until_it_passes_or_is_approved,
    a_manual_promotion_holds_auto_promotion_until_released,
    a_closed_window_defers_auto_promotion_and_manual_promotion_needs_a_reason,
    abort_stops_a_running_promotion_through_the_api,
    once_exits_non_zero_when_a_promotion_fails,
    kill_9_of_serve_mid_promotion_resumes_with_one_commit,
    the_daemon_reloads_good_definitions_keeps_them_on_bad_ones_and_refreshes_on_request,
    verification_gates_staging_and_a_failed_one_rolls_dev_back,
    argo_cd_and_the_rollout_gate_verification_and_staging,
    verification_by_analysis_runs_in_the_cluster,
    urls_written_with_credentials_authenticate_steps_and_verification_and_are_stored_without,
    prometheus_scrapes_the_pipelines_metrics_with_a_viewer_token,
);

async fn a_new_tag_flows_to_dev_and_staging_and_prod_waits_for_a_person(b: Backend) {
    let fx = Fixture::new(b, "0s", "[]").await;
    fx.push("1.0.0").await;
    fx.once_ok();
    let alias = fx.alias_of("1.0.0");
    assert_eq!(
        (fx.pinned("dev"), fx.pinned("staging"), fx.pinned("prod")),
        ("1.0.0".into(), "1.0.0".into(), "0.9.0".into())
    );
    let dev = fx.request("dev");
    assert_eq!(
        (dev["state"].as_str(), dev["current"]["alias"].as_str()),
        (Some("UpToDate"), Some(alias.as_str()))
    );
    assert_eq!(
        dev["current"]["verification"], "Succeeded",
        "no verification: verified on arrival"
    );
    let gate = fx.request("gate");
    assert_eq!(
        (gate["state"].as_str(), gate["current"]["alias"].as_str()),
        (Some("UpToDate"), Some(alias.as_str())),
        "control-flow stages take Freight without steps"
    );
    let prod = fx.request("prod");
    assert_eq!(prod["state"], "Waiting");
    assert_eq!(prod["reason"], "NoAutoPromotionPolicy");
    assert_eq!(
        prod["candidate"],
        fx.json(&["get", "freight", &alias])["metadata"]["name"]
    );
    let table = fx.ok(&["get", "stages"]);
    assert!(table.contains("promote it by hand"), "{table}");

    // Idle means idle: another pass promotes nothing.
    fx.once_ok();
    assert_eq!(fx.commits("dev:"), 1);

    // A person promotes prod, with the definitions `barge serve` recorded in the store.
    fx.ok(&["promote", "--stage", "prod", "--freight-alias", &alias]);
    assert_eq!(fx.pinned("prod"), "1.0.0");
    assert_eq!(fx.request("prod")["state"], "UpToDate");

    // A newer tag goes to dev and staging on its own; prod keeps 1.0.0.
    fx.push("1.1.0").await;
    fx.once_ok();
    assert_eq!(
        (fx.pinned("dev"), fx.pinned("staging"), fx.pinned("prod")),
        ("1.1.0".into(), "1.1.0".into(), "1.0.0".into())
    );
    let freight = fx.json(&["get", "freight", &fx.alias_of("1.1.0")]);
    let currently: Vec<&String> = freight["status"]["currentlyIn"].as_object().unwrap().keys().collect();
    assert_eq!(currently, ["dev", "gate", "staging"]);

    // The history says what ran where, when and by whom.
    let history = fx.json(&["history", "--stage", "prod"]);
    let kinds: Vec<(&str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !matches!(e["kind"].as_str(), Some("promotion.step")))
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("stage.entered", "alice"),
            ("promotion.finished", "alice"),
            ("promotion.pushed", "alice"),
            ("promotion.created", "alice")
        ]
    );
    let created = fx.events(&["--freight", &alias], "promotion.created");
    let auto: Vec<&str> = created.iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(
        auto,
        [
            "alice",
            "barge (auto-promotion)",
            "barge (auto-promotion)",
            "barge (auto-promotion)"
        ]
    );
    assert_eq!(fx.events(&["--freight", &alias], "freight.minted").len(), 1);
    let promotions = fx.json(&["get", "promotions"]);
    assert_eq!(promotions.as_array().unwrap().len(), 7);
    assert!(
        promotions
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"]["phase"] == "Succeeded")
    );
    let name = promotions[0]["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("staging.") || name.starts_with("dev."),
        "Kargo-style names: {name}"
    );
}

async fn soak_time_delays_staging_until_it_passes_or_is_approved(b: Backend) {
    let fx = Fixture::new(b, "1h", "[]").await;
    fx.push("1.0.0").await;
    fx.once_ok();
    assert_eq!(
        (fx.pinned("dev"), fx.pinned("staging")),
        ("1.0.0".into(), "0.9.0".into())
    );
    let staging = fx.request("staging");
    assert_eq!(staging["reason"], "SoakTimeLeft");
    let message = staging["message"].as_str().unwrap();
    assert!(
        message.contains("must soak in dev for 59m") || message.contains("must soak in dev for 1h"),
        "{message}"
    );
    // Prod is not even eligible: nothing is verified in staging.
    assert_eq!(fx.request("prod")["reason"], "NotVerifiedUpstream");
    // A manual promotion of unavailable Freight is refused, with what to do.
    let alias = fx.alias_of("1.0.0");
    let refused = fx.run(&["promote", "--stage", "staging", "--freight", &alias]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("not available to Stage staging") && stderr(&refused).contains("barge approve"),
        "{}",
        stderr(&refused)
    );
    // Approval skips the soak; auto-promotion takes it from there.
    fx.ok(&["approve", "--freight", &alias, "--stage", "staging"]);
    fx.once_ok();
    assert_eq!(fx.pinned("staging"), "1.0.0");
    // Newer Freight: staging is up to date with what is available, and says why the newer one
    // is not.
    fx.push("1.1.0").await;
    fx.once_ok();
    let staging = fx.request("staging");
    assert_eq!(
        (staging["state"].as_str(), staging["current"]["alias"].as_str()),
        (Some("UpToDate"), Some(alias.as_str()))
    );
    let newer = fx.alias_of("1.1.0");
    assert!(
        staging["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("newer: {newer} must soak in dev for")),
        "{staging}"
    );
    let approvals = fx.events(&["--stage", "staging"], "freight.approved");
    assert!(approvals.iter().any(|e| e["actor"] == "alice"));
}

async fn a_manual_promotion_holds_auto_promotion_until_released(b: Backend) {
    let fx = Fixture::new(b, "0s", "[]").await;
    fx.push("1.0.0").await;
    fx.once_ok();
    fx.push("1.1.0").await;
    fx.once_ok();
    assert_eq!(fx.pinned("dev"), "1.1.0");
    // Roll dev back by hand: auto-promotion must not undo it.
    let old = fx.alias_of("1.0.0");
    fx.ok(&["promote", "--stage", "dev", "--freight", &old]);
    assert_eq!(fx.pinned("dev"), "1.0.0");
    fx.push("1.2.0").await;
    fx.once_ok();
    assert_eq!(fx.pinned("dev"), "1.0.0", "held");
    let dev = fx.request("dev");
    assert_eq!(dev["reason"], "Held");
    assert!(dev["message"].as_str().unwrap().contains("alice promoted"), "{dev}");
    let text = fx.ok(&["get", "stage", "dev"]);
    assert!(text.contains("held by alice"), "{text}");
    fx.ok(&["release", "stage", "dev"]);
    fx.once_ok();
    assert_eq!(fx.pinned("dev"), "1.2.0");
    // `barge hold stage` holds by hand too.
    fx.ok(&["hold", "stage", "dev"]);
    fx.push("1.3.0").await;
    fx.once_ok();
    assert_eq!(fx.pinned("dev"), "1.2.0");
    assert_eq!(fx.request("dev")["reason"], "Held");
    let kinds: Vec<String> = fx
        .json(&["history", "--stage", "dev"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .filter(|k| k.starts_with("stage.held") || k.starts_with("stage.released"))
        .collect();
    assert_eq!(kinds, ["stage.held", "stage.released", "stage.held"]);
    // Prod has no auto-promotion: there is nothing to hold.
    let refused = fx.run(&["hold", "stage", "prod"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("no auto-promotion to hold"),
        "{}",
        stderr(&refused)
    );
    // A policy that stops enabling auto-promotion clears the holds (Kargo's rule).
    let file = fx.defs.join("shop.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("regex:^(dev|staging|gate)$", "regex:^(staging|gate)$"),
    )
    .unwrap();
    fx.once_ok();
    assert!(
        fx.json(&["get", "stage", "dev"])["status"]
            .get("autoPromotionHolds")
            .is_none()
    );
    let cleared = fx.json(&["history", "--stage", "dev", "--limit", "1"]);
    assert_eq!(
        (cleared[0]["kind"].as_str(), cleared[0]["actor"].as_str()),
        (Some("stage.released"), Some("barge (auto-promotion disabled)"))
    );
}

async fn a_closed_window_defers_auto_promotion_and_manual_promotion_needs_a_reason(b: Backend) {
    // Closed around the clock: a Deny window that opens every minute for two.
    let windows =
        r#"[{name: change-freeze, kind: Deny, schedule: "* * * * *", duration: 2m, stageSelector: {name: dev}}]"#;
    let fx = Fixture::new(b, "0s", windows).await;
    fx.push("1.0.0").await;
    fx.once_ok();
    assert_eq!(fx.pinned("dev"), "0.9.0");
    let dev = fx.request("dev");
    assert_eq!(dev["reason"], "WindowClosed");
    assert!(
        dev["message"].as_str().unwrap().contains("promotion window is closed"),
        "{dev}"
    );
    let alias = fx.alias_of("1.0.0");
    let refused = fx.run(&["promote", "--stage", "dev", "--freight", &alias]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("change-freeze") && stderr(&refused).contains("--override-window"),
        "{}",
        stderr(&refused)
    );
    fx.ok(&[
        "promote",
        "--stage",
        "dev",
        "--freight",
        &alias,
        "--override-window",
        "--reason",
        "hotfix INC-42",
    ]);
    assert_eq!(fx.pinned("dev"), "1.0.0");
    let overrides = fx.events(&["--stage", "dev"], "window.overridden");
    assert_eq!(overrides.len(), 1);
    assert_eq!(
        (overrides[0]["actor"].as_str(), overrides[0]["body"]["reason"].as_str()),
        (Some("alice"), Some("hotfix INC-42"))
    );
}

/// `barge serve` with its API in the background (log in `log`), killed when dropped.
type Daemon = support::Serve;

impl Daemon {
    /// Runs a verb through the daemon's API with this token.
    fn api(&self, fx: &Fixture, args: &[&str], token: &str) -> Output {
        fx.command(args)
            .env("BARGE_SERVER", &self.url)
            .env("BARGE_TOKEN", token)
            .output()
            .unwrap()
    }
}

impl Fixture {
    /// Starts `barge serve --listen` with these extra flags (and BARGE_TOKEN, when given).
    fn daemon(&self, extra: &[&str], token_env: Option<&str>) -> Daemon {
        let port = support::free_port();
        let log = self.dir.path().join("serve.log");
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", self.defs.to_str().unwrap(), "--listen", &listen];
        args.extend(extra);
        let mut c = self.command(&args);
        if let Some(t) = token_env {
            c.env("BARGE_TOKEN", t);
        }
        Daemon::spawn(c.env("BARGE_LOG", "info"), port, log)
    }
}

/// Never true: shows the daemon's log if it printed an error, to fail fast with the reason.
fn panic_if_gone(log: &std::path::Path) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(!text.contains("barge: error"), "barge serve failed:\n{text}");
    false
}

fn staging_promotion(fx: &Fixture) -> Option<Value> {
    let list = fx.json(&["get", "promotions", "--stage", "staging"]);
    list.as_array().unwrap().first().cloned()
}

async fn abort_stops_a_running_promotion_through_the_api(b: Backend) {
    let fx = Fixture::new(b, "0s", "[]").await;
    std::fs::remove_file(fx.web.join("healthz")).unwrap();
    fx.push("1.0.0").await;
    // The token comes from a file here (and from BARGE_TOKEN in the reload test).
    let token = fx.dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let daemon = fx.daemon(&["--token-file", token.to_str().unwrap()], None);
    let log = daemon.log.clone();
    let via_api = |args: &[&str]| daemon.api(&fx, args, "s3cret-token");
    // Staging waits on its health check forever.
    wait_for("staging to be promoting", Duration::from_secs(60), || {
        staging_promotion(&fx).is_some_and(|p| p["status"]["phase"] == "Running") || panic_if_gone(&log)
    });
    let name = staging_promotion(&fx).unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // The API refuses a wrong token, without echoing it.
    let denied = fx
        .command(&["get", "stages"])
        .env("BARGE_SERVER", &daemon.url)
        .env("BARGE_TOKEN", "guess")
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        stderr(&denied).contains("the bearer token is not one this server issued")
            && !stderr(&denied).contains("guess"),
        "{}",
        stderr(&denied)
    );
    let stages = via_api(&["get", "stage", "staging", "-o", "json"]);
    let stages: Value = serde_json::from_slice(&stages.stdout).unwrap();
    assert_eq!(stages["status"]["barge"]["requests"][0]["reason"], "PromotionRunning");
    let out = via_api(&["abort", "promotion", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("the abort to be recorded", Duration::from_secs(60), || {
        staging_promotion(&fx).is_some_and(|p| p["status"]["phase"] == "Aborted")
    });
    let again = via_api(&["abort", "promotion", &name]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already finished (Aborted)"),
        "{}",
        stderr(&again)
    );
    let p = staging_promotion(&fx).unwrap();
    // Through the API the actor is the token's identity, not the client's user (alice).
    assert_eq!(p["status"]["message"], "aborted by token:api-token");
    // A manual promotion queued through the API runs on the daemon; --wait follows it.
    std::fs::write(fx.web.join("healthz"), "ok").unwrap();
    let alias = fx.alias_of("1.0.0");
    let out = via_api(&[
        "promote",
        "--stage",
        "staging",
        "--freight",
        &alias,
        "--wait",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done[0]["phase"], "Succeeded");
    assert_eq!(fx.pinned("staging"), "1.0.0");
    assert_eq!(
        fx.commits("staging:"),
        1,
        "the aborted promotion's commit was adopted, not repeated"
    );
}

async fn once_exits_non_zero_when_a_promotion_fails(b: Backend) {
    let fx = Fixture::new(b, "0s", "[]").await;
    fx.push("1.0.0").await;
    // The config repository is gone: every promotion errors.
    std::fs::rename(&fx.bare, fx.bare.with_extension("moved")).unwrap();
    let out = fx.once();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("problem(s)") && stderr(&out).contains("Errored"),
        "{}",
        stderr(&out)
    );
    let dev = &fx.json(&["get", "stage", "dev"]);
    let last = &dev["status"]["lastPromotion"]["status"];
    assert_eq!(last["phase"], "Errored", "{last}");
    assert!(last["message"].as_str().unwrap().contains("git-clone"), "{last}");
    // Auto-promotion does not retry the same Freight in a loop; it says why it waits.
    assert_eq!(dev["status"]["barge"]["requests"][0]["reason"], "PromotionFailed");
    assert_eq!(fx.json(&["get", "promotions"]).as_array().unwrap().len(), 1);
}

async fn kill_9_of_serve_mid_promotion_resumes_with_one_commit(b: Backend) {
    let fx = Fixture::new(b, "0s", "[]").await;
    std::fs::remove_file(fx.web.join("healthz")).unwrap();
    fx.push("1.0.0").await;
    let mut daemon = fx
        .command(&["serve", fx.defs.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Staging has pushed its commit and now polls its health check.
    wait_for("staging to push", Duration::from_secs(60), || {
        fx.commits("staging:") == 1
    });
    wait_for("staging to be polling", Duration::from_secs(60), || {
        staging_promotion(&fx).is_some_and(|p| {
            p["status"]["stepExecutionMetadata"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["alias"] == "healthy" && s["status"] == "Running")
        })
    });
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert_eq!(
        staging_promotion(&fx).unwrap()["status"]["phase"],
        "Running",
        "killed mid-promotion"
    );
    std::fs::write(fx.web.join("healthz"), "ok").unwrap();
    fx.once_ok();
    let p = staging_promotion(&fx).unwrap();
    assert_eq!(p["status"]["phase"], "Succeeded", "{p}");
    assert_eq!(fx.commits("staging:"), 1, "one commit for the promotion");
    assert_eq!(fx.pinned("staging"), "1.0.0");
    assert_eq!(
        fx.json(&["get", "promotions", "--stage", "staging"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let history = fx.json(&["history", "--limit", "1000"]);
    // dev, the gate and staging: each promoted once.
    let count = |kind: &str| history.as_array().unwrap().iter().filter(|e| e["kind"] == kind).count();
    assert_eq!(
        (
            count("freight.minted"),
            count("promotion.created"),
            count("stage.entered")
        ),
        (1, 3, 3)
    );
}

/// Replaces `file` with `text` in one step (a write beside it, then a rename), as an editor
/// that saves atomically does. `std::fs::write` truncates the file before it writes: a reload
/// that polls between the two (the test thread preempted on a loaded machine) loads an empty
/// file, a change of its own, and the test's count of reloads is off by one.
fn replace_file(file: &Path, text: &str) {
    let beside = file.with_extension("yaml.tmp");
    std::fs::write(&beside, text).unwrap();
    std::fs::rename(&beside, file).unwrap();
}

async fn the_daemon_reloads_good_definitions_keeps_them_on_bad_ones_and_refreshes_on_request(b: Backend) {
    let fx = Fixture::new(b, "0s", "[]").await;
    fx.push("1.0.0").await;
    let daemon = fx.daemon(&["--reload-interval", "200ms"], Some("t0ken"));
    let log = daemon.log.clone();
    let api = |args: &[&str]| daemon.api(&fx, args, "t0ken");
    wait_for("dev to get 1.0.0", Duration::from_secs(60), || {
        panic_if_gone(&log) || fx.commits("dev:") == 1
    });
    // A new tag: the Warehouse polls hourly, so ask for a pass now.
    fx.push("1.1.0").await;
    let out = api(&["refresh", "warehouse", "app"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("dev to get 1.1.0", Duration::from_secs(30), || {
        fx.pinned("dev") == "1.1.0"
    });
    // A broken change is reported and ignored: the Stage stays.
    let file = fx.defs.join("shop.yaml");
    let good = std::fs::read_to_string(&file).unwrap();
    replace_file(
        &file,
        &good.replace("sources: {stages: [staging]}", "sources: {stages: [nowhere]}"),
    );
    wait_for("the rejection", Duration::from_secs(60), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("keeping the last good ones")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("shop.yaml:") && text.contains("nowhere"),
        "the diagnostics are shown: {text}"
    );
    assert!(!fx.events(&[], "config.rejected").is_empty());
    let stages: Value = serde_json::from_slice(&api(&["get", "stages", "-o", "json"]).stdout).unwrap();
    assert_eq!(stages["items"].as_array().unwrap().len(), 4);
    // A good change (a fifth Stage) is picked up.
    let qa = "\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {name: qa, namespace: shop}\nspec:\n  requestedFreight:\n    - origin: {kind: Warehouse, name: app}\n      sources: {stages: [dev]}\n";
    replace_file(&file, &format!("{good}{qa}"));
    wait_for("the reload", Duration::from_secs(60), || {
        let v: Value = serde_json::from_slice(&api(&["get", "stages", "-o", "json"]).stdout).unwrap_or_default();
        v["items"].as_array().is_some_and(|a| a.len() == 5)
    });
    let reloaded = fx.events(&[], "config.reloaded").len();
    assert_eq!(reloaded, 2, "the first load and the good change");
    // Verbs against the store alone read the definitions the daemon recorded.
    assert_eq!(fx.json(&["get", "stages"]).as_array().unwrap().len(), 5);
}

/// dev verifies each Freight with a smoke check of what is deployed there; a failed
/// verification rolls dev back (Kargo's `autoRollback`).
const VERIFIED_DEFINITIONS: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: shop, namespace: shop}
spec:
  promotionPolicies:
    - stageSelector: {name: dev}
      autoPromotionEnabled: true
      autoRollback: {enabled: true}
    - stageSelector: {name: staging}
      autoPromotionEnabled: true
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: smoke, namespace: shop}
spec:
  args: [{name: stage}, {name: base}]
  metrics:
    - name: smoke
      successCondition: result.ok == true
      provider:
        web: {url: "{{args.base}}/smoke/{{args.stage}}"}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
  verification:
    analysisTemplates: [{name: smoke}]
    args:
      - {name: stage, value: "${{ ctx.stage }}"}
      - {name: base, value: "http://127.0.0.1:SMOKE_PORT"}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: staging, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [dev]}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
"#;

/// The app's smoke endpoint: healthy unless the version deployed to the stage (the tag its
/// overlay pins in the config repository) is 1.1.0.
async fn smoke_server(port: u16, bare: PathBuf) {
    let app = axum::Router::new().route(
        "/smoke/{stage}",
        axum::routing::get(move |axum::extract::Path(stage): axum::extract::Path<String>| {
            let bare = bare.clone();
            async move {
                // git blocks: off the server's worker.
                let text = tokio::task::block_in_place(|| {
                    git(&bare, &["show", &format!("main:env/{stage}/kustomization.yaml")])
                });
                let tag = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("newTag: "))
                    .unwrap_or("")
                    .to_string();
                axum::Json(serde_json::json!({"ok": tag != "1.1.0", "version": tag}))
            }
        }),
    );
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    barge_testkit::runtime::serve("smoke-server", listener, app);
}

async fn verification_gates_staging_and_a_failed_one_rolls_dev_back(b: Backend) {
    let smoke_port = support::free_port();
    let stages = VERIFIED_DEFINITIONS.replace("SMOKE_PORT", &smoke_port.to_string());
    let fx = Fixture::with(b, &format!("{COMMON}---{stages}")).await;
    smoke_server(smoke_port, fx.bare.clone()).await;

    // 1.0.0: promoted to dev, verified there, then auto-promoted to staging.
    fx.push("1.0.0").await;
    fx.once_ok();
    assert_eq!(
        (fx.pinned("dev"), fx.pinned("staging")),
        ("1.0.0".into(), "1.0.0".into())
    );
    let dev = &fx.json(&["get", "stage", "dev"]);
    let v = &dev["status"]["barge"]["lastVerification"];
    assert_eq!(v["phase"], "Succeeded", "{dev:#}");
    let metric = &v["report"]["metrics"][0];
    assert_eq!(
        metric["resolved"],
        format!("GET http://127.0.0.1:{smoke_port}/smoke/dev")
    );
    assert_eq!(metric["measurements"][0]["value"], r#"{"ok":true,"version":"1.0.0"}"#);
    let measured = fx.events(&["--stage", "dev"], "verification.measured");
    assert_eq!(measured.len(), 1);
    assert_eq!(measured[0]["body"]["successCondition"], "result.ok == true");
    assert_eq!(measured[0]["body"]["phase"], "Successful");
    let text = fx.ok(&["get", "stage", "dev"]);
    assert!(
        text.contains("last verification: dev.") && text.contains(" Succeeded "),
        "{text}"
    );
    assert!(text.contains(r#"Successful   {"ok":true,"version":"1.0.0"}"#), "{text}");

    // 1.1.0 fails its smoke check in dev: staging keeps 1.0.0 and dev rolls back to it.
    fx.push("1.1.0").await;
    let out = fx.once();
    let log = stderr(&out);
    assert!(
        !out.status.success(),
        "a failed verification is a problem for --once:\n{log}"
    );
    let old = fx.alias_of("1.0.0");
    assert!(log.contains(&format!("rolling back to {old}")), "{log}");
    assert_eq!(
        (fx.pinned("dev"), fx.pinned("staging")),
        ("1.0.0".into(), "1.0.0".into())
    );
    assert_eq!(
        (
            fx.commits("dev: 1.1.0"),
            fx.commits("dev: 1.0.0"),
            fx.commits("staging: 1.1.0")
        ),
        (1, 2, 0)
    );
    let outcomes: Vec<String> = fx
        .events(&["--stage", "dev"], "verification.finished")
        .iter()
        .map(|e| e["body"]["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        outcomes,
        ["Succeeded", "Failed", "Succeeded"],
        "newest first: 1.0.0 is verified again after the rollback"
    );
    let failed = fx.events(&["--stage", "dev"], "verification.measured");
    assert_eq!(failed[1]["body"]["value"], r#"{"ok":false,"version":"1.1.0"}"#);
    let new = fx.alias_of("1.1.0");
    let freight = fx.json(&["get", "freight", &new]);
    assert!(freight["status"]["verifiedIn"].get("dev").is_none(), "{freight:#}");
    // The rollback holds dev, so auto-promotion does not bring 1.1.0 straight back.
    let dev = fx.request("dev");
    assert_eq!(
        (dev["state"].as_str(), dev["reason"].as_str()),
        (Some("Waiting"), Some("Held")),
        "{dev:#}"
    );
    assert!(dev["message"].as_str().unwrap().contains("barge (rollback)"), "{dev:#}");
    let staging = fx.request("staging");
    assert_eq!(staging["current"]["alias"].as_str(), Some(old.as_str()));

    // `verify stage` queues a new run; `--abort` stops it and leaves the Freight unverified.
    let queued = fx.json(&["verify", "stage", "dev"]);
    assert_eq!(queued["phase"], "Pending");
    let again = fx.run(&["verify", "stage", "dev"]);
    assert!(
        !again.status.success() && stderr(&again).contains("already has a verification running"),
        "{}",
        stderr(&again)
    );
    let aborted = fx.json(&["verify", "stage", "dev", "--abort"]);
    assert_eq!(
        (aborted["id"].clone(), aborted["phase"].as_str()),
        (queued["id"].clone(), Some("Aborted"))
    );
    assert_eq!(fx.request("dev")["current"]["verification"], "Aborted");
    fx.ok(&["verify", "stage", "dev"]);
    fx.once_ok();
    assert_eq!(fx.request("dev")["current"]["verification"], "Succeeded");
}

/// dev deploys through Argo CD and an Argo Rollouts canary before its verification; the test
/// API server's controllers play Argo CD (syncing a commit "applies" the overlay's tag to the
/// Rollout) and Argo Rollouts (its canary analysis fails for 1.1.0).
const CLUSTER_DEFINITIONS: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: shop, namespace: shop}
spec:
  promotionPolicies:
    - stageSelector: {name: "regex:^(dev|staging)$"}
      autoPromotionEnabled: true
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: smoke, namespace: shop}
spec:
  args:
    - {name: stage}
    - {name: base}
    # The canary's pod template, read from the Rollout dev's promotion waited for.
    - name: canary-hash
      valueFrom: {fieldRef: {fieldPath: status.currentPodHash}}
  metrics:
    - name: smoke
      successCondition: result.ok == true
      provider:
        web: {url: "{{args.base}}/smoke/{{args.stage}}?pods={{args.canary-hash}}"}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
        - uses: kustomize-set-image
          config: {path: ./src/env/dev, images: [{image: ghcr.io/acme/app}]}
        - uses: git-commit
          config: {path: ./src, message: "dev: ${{ imageFrom('ghcr.io/acme/app').Tag }}"}
        - uses: git-push
          as: push
          config: {path: ./src}
        - uses: argocd-update
          config:
            apps:
              - name: web-dev
                sources:
                  - repoURL: https://git.example.com/acme/config.git
                    desiredRevision: ${{ outputs.push.commit }}
                    updateTargetRevision: true
        - uses: rollout-wait
          config: {name: web, namespace: dev}
  verification:
    analysisTemplates: [{name: smoke}]
    args:
      - {name: stage, value: "${{ ctx.stage }}"}
      - {name: base, value: "http://127.0.0.1:SMOKE_PORT"}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: staging, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [dev]}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
"#;

async fn argo_cd_and_the_rollout_gate_verification_and_staging(b: Backend) {
    use kube_support::apiserver::ApiServer;
    use kube_support::controllers::{self, ArgoCdOptions};
    use std::sync::Arc;

    let smoke_port = support::free_port();
    let stages = CLUSTER_DEFINITIONS.replace("SMOKE_PORT", &smoke_port.to_string());
    let fx = Fixture::with(b, &format!("{COMMON}---{stages}")).await;
    smoke_server(smoke_port, fx.bare.clone()).await;
    let api = ApiServer::start(Some("e2e-token")).await;
    api.kubeconfig(fx.dir.path());
    api.put("argoproj.io", "applications", serde_json::json!({
        "metadata": {"name": "web-dev", "namespace": "argocd", "annotations": {"kargo.akuity.io/authorized-stage": "shop:dev"}},
        "spec": {"source": {"repoURL": "https://git.example.com/acme/config.git", "targetRevision": "main", "path": "env/dev"}},
        "status": {"sync": {"status": "Synced", "revision": "seed"}, "health": {"status": "Healthy"}, "reconciledAt": "2026-01-01T00:00:00Z"}}));
    api.put("argoproj.io", "rollouts", serde_json::json!({
        "metadata": {"name": "web", "namespace": "dev"},
        "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "success-rate"}]}}, {"setWeight": 80}]}},
            "template": {"spec": {"containers": [{"name": "web", "image": "ghcr.io/acme/app:0.9.0"}]}}}}));
    // Argo CD: a sync of a commit applies the dev overlay's tag to the Rollout; the app's
    // health is the Rollout's.
    let bare = fx.bare.clone();
    let argocd = ArgoCdOptions {
        resolve: Arc::new(|_, target| target.to_string()),
        apply: Arc::new(move |server, _, revision| {
            let text = git(&bare, &["show", &format!("{revision}:env/dev/kustomization.yaml")]);
            let tag = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("newTag: "))
                .unwrap_or("")
                .to_string();
            server.update("argoproj.io", "rollouts", "dev", "web", |r| {
                r["spec"]["template"]["spec"]["containers"][0]["image"] =
                    serde_json::json!(format!("ghcr.io/acme/app:{tag}"));
                true
            });
        }),
        health: Arc::new(|server, _| {
            let ro = server.get("argoproj.io", "rollouts", "dev", "web").unwrap();
            match barge_core::health::rollout(&ro) {
                barge_core::health::Readiness::Ready(_) => ("Healthy".into(), String::new()),
                barge_core::health::Readiness::Failed(f) => ("Degraded".into(), f),
                barge_core::health::Readiness::Waiting(w) => ("Progressing".into(), w),
            }
        }),
        stale_for: Duration::from_millis(300),
        sync_takes: Duration::from_millis(100),
    };
    let _argocd = controllers::argocd(api.clone(), argocd);
    let api_for_analysis = api.clone();
    let _rollouts = controllers::rollouts(
        api.clone(),
        Arc::new(move |_, _| {
            let ro = api_for_analysis.get("argoproj.io", "rollouts", "dev", "web").unwrap();
            let bad = ro["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/app:1.1.0";
            (
                !bad,
                "Metric \"success-rate\" assessed Failed due to failed (3) > failureLimit (2)".to_string(),
            )
        }),
        Duration::from_millis(100),
    );

    // 1.0.0: pushed, synced by Argo CD, rolled out by the canary, verified, then staging.
    fx.push("1.0.0").await;
    let out = fx.once();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        (fx.pinned("dev"), fx.pinned("staging")),
        ("1.0.0".into(), "1.0.0".into())
    );
    let app = api.get("argoproj.io", "applications", "argocd", "web-dev").unwrap();
    let pushed = git(&fx.bare, &["rev-parse", "main"]);
    let dev_commit = git(&fx.bare, &["log", "--format=%H", "--grep", "^dev: 1.0.0", "main"]);
    assert_eq!(
        app["spec"]["source"]["targetRevision"],
        dev_commit.trim(),
        "synced to the promotion's own commit"
    );
    assert_ne!(dev_commit.trim(), pushed.trim(), "staging pushed after it");
    let ro = api.get("argoproj.io", "rollouts", "dev", "web").unwrap();
    assert_eq!(
        ro["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/acme/app:1.0.0"
    );
    assert_eq!(
        (
            ro["status"]["phase"].as_str(),
            ro["status"]["stableRS"] == ro["status"]["currentPodHash"]
        ),
        (Some("Healthy"), true)
    );
    let steps = fx.events(&["--stage", "dev"], "promotion.step");
    assert!(
        steps
            .iter()
            .any(|e| e["body"]["uses"] == "rollout-wait" && e["body"]["status"] == "Succeeded"),
        "{steps:#?}"
    );
    let dev = &fx.json(&["get", "stage", "dev"]);
    assert_eq!(dev["status"]["barge"]["lastVerification"]["phase"], "Succeeded");
    assert_eq!(
        dev["status"]["barge"]["lastVerification"]["report"]["metrics"][0]["resolved"],
        format!(
            "GET http://127.0.0.1:{smoke_port}/smoke/dev?pods={}",
            ro["status"]["currentPodHash"].as_str().unwrap()
        ),
        "valueFrom.fieldRef read the Rollout"
    );

    // The daemon keeps checking the apps the last promotion synced: dev's health follows them.
    let daemon = fx.daemon(&[], Some("health-token"));
    let health = |fx: &Fixture| -> Value {
        let out = daemon.api(fx, &["get", "stage", "dev", "-o", "json"], "health-token");
        if !out.status.success() {
            return Value::Null;
        }
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()["status"]["health"].clone()
    };
    wait_for("dev to be Healthy", Duration::from_secs(30), || {
        health(&fx)["status"] == "Healthy" || panic_if_gone(&daemon.log)
    });
    assert_eq!(health(&fx)["output"]["applications"][0]["name"], "web-dev");
    // The running pods go bad: the Rollout degrades, so Argo CD reports the app Degraded.
    let healthy_status = api.get("argoproj.io", "rollouts", "dev", "web").unwrap()["status"].clone();
    api.update("argoproj.io", "rollouts", "dev", "web", |r| {
        r["status"]["phase"] = serde_json::json!("Degraded");
        r["status"]["message"] = serde_json::json!("ProgressDeadlineExceeded: 0/3 replicas ready");
        true
    });
    wait_for("dev to be Degraded", Duration::from_secs(30), || {
        health(&fx)["status"] == "Degraded"
    });
    assert_eq!(
        health(&fx)["issues"][0],
        "Application web-dev is Degraded: Rollout web is Degraded: ProgressDeadlineExceeded: 0/3 replicas ready"
    );
    let text = stdout(&daemon.api(&fx, &["get", "stage", "dev"], "health-token"));
    assert!(
        text.contains("health: Degraded: Application web-dev is Degraded"),
        "{text}"
    );
    drop(daemon);
    api.update("argoproj.io", "rollouts", "dev", "web", |r| {
        r["status"] = healthy_status.clone();
        true
    });

    // 1.1.0: the canary's analysis fails, the Rollout aborts, the promotion fails with its
    // message, nothing is verified and staging keeps 1.0.0.
    fx.push("1.1.0").await;
    let out = fx.once();
    assert!(!out.status.success());
    let promotions = fx.json(&["get", "promotions", "--stage", "dev"]);
    let failed = promotions
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["status"]["phase"] == "Failed")
        .unwrap_or_else(|| panic!("{promotions:#}"));
    assert!(
        failed["status"]["message"].as_str().unwrap().contains("Rollout web is Degraded: RolloutAborted: Rollout aborted update to revision 3: Metric \"success-rate\" assessed Failed"),
        "{failed:#}"
    );
    assert_eq!(fx.pinned("staging"), "1.0.0");
    let dev = fx.request("dev");
    assert_eq!(
        dev["current"]["alias"].as_str(),
        Some(fx.alias_of("1.0.0").as_str()),
        "dev still has 1.0.0: {dev:#}"
    );
    assert_eq!(dev["reason"], "PromotionFailed", "{dev:#}");
}

/// `--analysis-runs cluster`: each verification is an AnalysisRun in the project's namespace,
/// measured by the cluster's analysis controller (here a test controller that fails runs while
/// dev has 1.1.0); barge follows it, records the measurements and rolls back on failure.
async fn verification_by_analysis_runs_in_the_cluster(b: Backend) {
    use kube_support::apiserver::ApiServer;
    use kube_support::controllers;
    use std::sync::Arc;

    let stages = VERIFIED_DEFINITIONS.replace("SMOKE_PORT", "9");
    let fx = Fixture::with(b, &format!("{COMMON}---{stages}")).await;
    let api = ApiServer::start(Some("runs")).await;
    api.kubeconfig(fx.dir.path());
    let bare = fx.bare.clone();
    let verdict = move |_: &Value| {
        let text = git(&bare, &["show", "main:env/dev/kustomization.yaml"]);
        let bad = text.contains("newTag: 1.1.0");
        (
            if bad { "Failed" } else { "Successful" }.to_string(),
            format!("{{\"ok\":{}}}", !bad),
        )
    };
    let _runs = controllers::analysis_runs(api.clone(), Arc::new(verdict), Duration::from_millis(200));

    fx.push("1.0.0").await;
    let out = fx.once_with(&["--analysis-runs", "cluster"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        (fx.pinned("dev"), fx.pinned("staging")),
        ("1.0.0".into(), "1.0.0".into())
    );
    let runs = api.list("argoproj.io", "analysisruns");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["metadata"]["namespace"], "shop");
    assert_eq!(run["metadata"]["labels"]["kargo.akuity.io/stage"], "dev");
    assert_eq!(
        run["spec"]["args"][0],
        serde_json::json!({"name": "stage", "value": "dev"}),
        "Stage args rendered"
    );
    assert_eq!(
        run["spec"]["metrics"][0]["provider"]["web"]["url"],
        "{{args.base}}/smoke/{{args.stage}}"
    );
    let dev = &fx.json(&["get", "stage", "dev"]);
    assert_eq!(dev["status"]["barge"]["lastVerification"]["phase"], "Succeeded");
    assert_eq!(
        dev["status"]["barge"]["lastVerification"]["alias"].as_str(),
        Some(fx.alias_of("1.0.0").as_str())
    );
    assert_eq!(
        run["metadata"]["labels"]["kargo.akuity.io/freight-collection"],
        dev["status"]["barge"]["lastVerification"]["freight"]
    );
    assert_eq!(
        dev["status"]["barge"]["lastVerification"]["report"]["metrics"][0]["measurements"][0]["value"],
        r#"{"ok":true}"#
    );
    assert_eq!(fx.events(&["--stage", "dev"], "verification.measured").len(), 1);

    fx.push("1.1.0").await;
    let out = fx.once_with(&["--analysis-runs", "cluster"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("rolling back to {}", fx.alias_of("1.0.0"))),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        (fx.pinned("dev"), fx.pinned("staging")),
        ("1.0.0".into(), "1.0.0".into())
    );
    let outcomes: Vec<String> = fx
        .events(&["--stage", "dev"], "verification.finished")
        .iter()
        .map(|e| e["body"]["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["Succeeded", "Failed", "Succeeded"]);
    assert_eq!(
        api.list("argoproj.io", "analysisruns").len(),
        3,
        "one run per verification"
    );
}

/// dev calls a private endpoint in its promotion (an `http` step) and in its verification (a
/// web metric under a base URL given as an argument), both written with the credentials.
const PRIVATE_DEFINITIONS: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: shop, namespace: shop}
spec:
  promotionPolicies:
    - stageSelector: {name: dev}
      autoPromotionEnabled: true
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: private, namespace: shop}
spec:
  args: [{name: base}]
  metrics:
    - name: private
      successCondition: result.ok == true
      provider:
        web: {url: "{{args.base}}/private"}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: http
          config:
            url: http://deployer:D3PLOY-PW@127.0.0.1:PRIVATE_PORT/private
            successExpression: response.status == 200
            failureExpression: response.status != 200
  verification:
    analysisTemplates: [{name: private}]
    args:
      - {name: base, value: "http://deployer:D3PLOY-PW@127.0.0.1:PRIVATE_PORT"}
"#;

/// `/private` answers `{"ok": true}` to basic auth as deployer / D3PLOY-PW, 401 to anything else.
async fn private_server(port: u16) {
    let expected = barge_promote::http_client()
        .get("http://127.0.0.1/")
        .basic_auth("deployer", Some("D3PLOY-PW"))
        .build()
        .unwrap()
        .headers()[reqwest::header::AUTHORIZATION]
        .clone();
    let app = axum::Router::new().route(
        "/private",
        axum::routing::get(move |headers: axum::http::HeaderMap| async move {
            if headers.get(reqwest::header::AUTHORIZATION) == Some(&expected) {
                (axum::http::StatusCode::OK, axum::Json(serde_json::json!({"ok": true})))
            } else {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"ok": false})),
                )
            }
        }),
    );
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    barge_testkit::runtime::serve("private-server", listener, app);
}

/// Every file under `dir`, recursively, whose bytes contain `secret`.
fn files_containing(dir: &std::path::Path, secret: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, secret));
        } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(secret.len()).any(|w| w == secret)) {
            found.push(path);
        }
    }
    found
}

async fn urls_written_with_credentials_authenticate_steps_and_verification_and_are_stored_without(b: Backend) {
    let port = support::free_port();
    let stages = PRIVATE_DEFINITIONS.replace("PRIVATE_PORT", &port.to_string());
    let fx = Fixture::with(b, &format!("{COMMON}---{stages}")).await;
    private_server(port).await;

    fx.push("1.0.0").await;
    fx.once_ok();
    let dev = fx.json(&["get", "stage", "dev"]);
    assert_eq!(
        dev["status"]["barge"]["lastVerification"]["phase"], "Succeeded",
        "{dev:#}"
    );
    let metric = &dev["status"]["barge"]["lastVerification"]["report"]["metrics"][0];
    assert_eq!(metric["resolved"], format!("GET http://127.0.0.1:{port}/private"));
    assert_eq!(metric["measurements"][0]["value"], r#"{"ok":true}"#);

    // Nothing barge stored or shows carries the password: not the recorded definitions, the
    // promotion, the report or the audit trail (nor, on SQLite, any byte of the database).
    for shown in [
        fx.ok(&["get", "stage", "dev", "-o", "json"]),
        fx.ok(&["get", "promotions", "-o", "json"]),
        fx.ok(&["history", "--limit", "1000", "-o", "json"]),
    ] {
        assert!(!shown.contains("D3PLOY-PW"), "{shown}");
    }
    let defs = fx.dir.path().join("defs");
    let leaked: Vec<PathBuf> = files_containing(fx.dir.path(), b"D3PLOY-PW")
        .into_iter()
        .filter(|p| !p.starts_with(&defs))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// A second Warehouse, `slow` (image quay.io/acme/slow), beside COMMON's `app`, and a Stage
/// `dev` that only people promote (no policy enables auto-promotion).
const SLOW_WAREHOUSE: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: slow, namespace: shop}
spec:
  interval: 1h
  subscriptions:
    - image: {repoURL: quay.io/acme/slow}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
"#;

/// How long the Warehouse `slow`'s registry takes to list tags once it turned slow. The
/// promotion or refresh under test (a clone, a commit and a push; a listing and a mint) must
/// end inside it, and on a loaded 2-core machine that has taken more than the 10 s this was:
/// a minute leaves a wide margin and costs nothing when the test passes (nothing waits for
/// the slow listing to end).
const SLOW_LISTING: Duration = Duration::from_secs(60);

/// A daemon in the middle of a pass of the Warehouse `slow`, whose registry (a proxy) lists
/// its tags only after SLOW_LISTING.
struct SlowDiscovery {
    daemon: Daemon,
    proxy: registry::Proxy,
    fx: Fixture,
}

impl SlowDiscovery {
    async fn start() -> SlowDiscovery {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let fx = Fixture::with(Backend::Sqlite, &format!("{COMMON}---{SLOW_WAREHOUSE}")).await;
        fx.push("1.0.0").await;
        fx.reg
            .push_image("acme/slow", "2.0.0", "2026-01-01T00:00:00Z", "amd64")
            .await;
        let (slow, listing) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let plan: registry::Plan = {
            let (slow, listing) = (slow.clone(), listing.clone());
            Arc::new(move |_, path| {
                if slow.load(Ordering::SeqCst) && path.contains("/tags/list") {
                    listing.store(true, Ordering::SeqCst);
                    registry::Fault::Delay(SLOW_LISTING)
                } else {
                    registry::Fault::Pass
                }
            })
        };
        let proxy = registry::Proxy::start(&fx.reg.host, None, plan).await;
        let rewrite = format!("quay.io/acme/={}/acme/", proxy.host);
        let daemon = fx.daemon(&["--rewrite", &rewrite], Some("t0ken"));
        wait_for("both Warehouses' first Freight", Duration::from_secs(60), || {
            panic_if_gone(&daemon.log) || fx.json(&["get", "freight"]).as_array().unwrap().len() == 2
        });
        slow.store(true, Ordering::SeqCst);
        let out = daemon.api(&fx, &["refresh", "warehouse", "slow"], "t0ken");
        assert!(out.status.success(), "{}", stderr(&out));
        wait_for("the slow listing to be asked for", Duration::from_secs(30), || {
            listing.load(Ordering::SeqCst)
        });
        SlowDiscovery { daemon, proxy, fx }
    }

    /// Fails when the slow registry has answered already: `what` waited for it.
    fn assert_still_listing(&self, what: &str) {
        assert_eq!(
            self.proxy.delayed.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{what} waited for the slow registry:\n{}",
            std::fs::read_to_string(&self.daemon.log).unwrap_or_default()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promotion_lands_while_another_warehouse_waits_on_a_slow_registry() {
    let s = SlowDiscovery::start().await;
    let alias = s.fx.alias_of("1.0.0");
    let out = s
        .daemon
        .api(&s.fx, &["promote", "--stage", "dev", "--freight", &alias], "t0ken");
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("dev's commit on the remote", SLOW_LISTING * 3, || {
        s.fx.commits("dev:") == 1
    });
    s.assert_still_listing("the promotion");
    assert_eq!(s.fx.pinned("dev"), "1.0.0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_is_served_while_another_warehouse_waits_on_a_slow_registry() {
    let s = SlowDiscovery::start().await;
    s.fx.push("1.1.0").await;
    let out = s.daemon.api(&s.fx, &["refresh", "warehouse", "app"], "t0ken");
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("Freight of app 1.1.0", SLOW_LISTING * 3, || {
        let list = s.fx.json(&["get", "freight"]);
        list.as_array()
            .unwrap()
            .iter()
            .any(|f| f["images"][0]["tag"] == "1.1.0")
    });
    s.assert_still_listing("the refresh");
}

/// `GET PATH` on the daemon with this bearer token (none: no Authorization header): the
/// status and body.
async fn get_with(daemon: &Daemon, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", daemon.url));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let answer = request.send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// A real Prometheus scrapes `barge serve` with a viewer token (from a credentials file, as
/// the chart's ServiceMonitor does) while a tag flows to dev, gate and staging: PromQL over
/// what it scraped counts each promotion, the one Freight, the pushes and the lead times,
/// and no series carries a Freight or promotion name. /metrics refuses a caller without a
/// token; `barge stats` and its REST route compute the same delivery figures from history.
async fn prometheus_scrapes_the_pipelines_metrics_with_a_viewer_token(b: Backend) {
    use barge_testkit::prometheus::Prometheus;
    let fx = Fixture::new(b, "0s", "[]").await;
    // Discovered when the daemon starts (the Warehouse's interval is an hour).
    fx.push("1.0.0").await;
    let admin = fx.dir.path().join("token");
    std::fs::write(&admin, "adm1n-token\n").unwrap();
    let viewer = fx.json(&["token", "create", "--name", "prometheus", "--role", "viewer"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let daemon = fx.daemon(&["--token-file", admin.to_str().unwrap()], None);
    let log = daemon.log.clone();
    wait_for("the API", Duration::from_secs(30), || {
        std::net::TcpStream::connect(daemon.url.trim_start_matches("http://")).is_ok() || panic_if_gone(&log)
    });
    let (status, body) = get_with(&daemon, "/metrics", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("no bearer token"), "{body}");
    assert_eq!(get_with(&daemon, "/metrics", Some("guess")).await.0, 401);
    let prometheus = Prometheus::scraping(daemon.url.trim_start_matches("http://"), Some(&viewer));
    wait_for("staging to pin 1.0.0", Duration::from_secs(90), || {
        fx.pinned("staging") == "1.0.0" || panic_if_gone(&log)
    });
    let expected: &[(&str, f64)] = &[
        (
            r#"barge_promotions_total{project="shop",stage="dev",phase="Succeeded"}"#,
            1.0,
        ),
        (
            r#"barge_promotions_total{project="shop",stage="staging",phase="Succeeded"}"#,
            1.0,
        ),
        (
            r#"barge_promotions_total{project="shop",stage="gate",phase="Succeeded"}"#,
            1.0,
        ),
        (r#"sum(barge_promotions_total{phase!="Succeeded"}) or vector(0)"#, 0.0),
        (r#"barge_freight_minted_total{project="shop",warehouse="app"}"#, 1.0),
        (
            r#"barge_step_duration_seconds_count{kind="git-push",status="Succeeded"}"#,
            2.0,
        ),
        (
            r#"barge_promotion_duration_seconds_count{project="shop",stage="dev"}"#,
            1.0,
        ),
        (r#"barge_lead_time_seconds_count{project="shop",stage="dev"}"#, 1.0),
        (r#"barge_lead_time_seconds_count{project="shop",stage="staging"}"#, 1.0),
        (
            r#"sum(barge_discoveries_total{project="shop",warehouse="app",outcome="minted"})"#,
            1.0,
        ),
        (r#"barge_config_reloads_total{outcome="applied"}"#, 1.0),
        (r#"barge_work{kind="promotion",state="queued"}"#, 0.0),
        (r#"count(barge_registry_requests_total{outcome="ok"} > 0)"#, 1.0),
        (r#"sum(barge_registry_requests_total{outcome!="ok"}) or vector(0)"#, 0.0),
        // The config repository's clones, fetches and pushes, by its host.
        (
            r#"count(barge_git_requests_total{operation="push",outcome="ok"} > 0)"#,
            1.0,
        ),
        (
            r#"count(barge_git_request_duration_seconds_count{operation="push"} > 0)"#,
            1.0,
        ),
        (
            r#"count({__name__=~"barge_.+",freight!=""} or {__name__=~"barge_.+",promotion!=""}) or vector(0)"#,
            0.0,
        ),
    ];
    let mut last = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        last.clear();
        for (promql, want) in expected {
            let got = prometheus.query(promql).await;
            if got.len() != 1 || got[0].1 != *want {
                last.push(format!("{promql} = {got:?}, want {want}"));
            }
        }
        if last.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scraped series never matched:\n{}\ntargets: {}",
            last.join("\n"),
            prometheus.targets().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Registry requests are counted by the registry's host.
    let registry = prometheus.query(r#"barge_registry_requests_total{outcome="ok"}"#).await;
    assert_eq!(registry[0].0["host"], fx.reg.host.as_str(), "{registry:?}");
    // git requests by the rewritten remote's host, never its path.
    let pushes = prometheus
        .query(r#"barge_git_requests_total{operation="push",outcome="ok"}"#)
        .await;
    assert_eq!(pushes[0].0["host"], format!("127.0.0.1:{}", fx.git_port), "{pushes:?}");

    // The same history as delivery figures, from the store and through the REST API.
    let stats = fx.json(&["stats", "--stage", "dev"]);
    let dev = &stats.as_array().unwrap()[0];
    assert_eq!(
        (dev["project"].as_str(), dev["stage"].as_str()),
        (Some("shop"), Some("dev"))
    );
    assert_eq!(
        (dev["promotions"].as_u64(), dev["deployments"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(dev["leadTime"]["count"], 1);
    assert_eq!(dev["changeFailureRate"], 0.0);
    assert_eq!(dev["unrestored"], false);
    let table = fx.ok(&["stats", "--since", "30d"]);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(4).collect::<Vec<_>>() == ["shop", "dev", "1/1", "0.03"]),
        "one deployment of dev in 30 days (1/30 a day): {table}"
    );
    let bad = fx.run(&["stats", "--since", "30x"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("neither a duration"), "{}", stderr(&bad));
    let (status, body) = get_with(&daemon, "/api/v1/projects/shop/stats", Some(&viewer)).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let stages: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["dev", "gate", "staging"]);
    assert_eq!(body["items"][0]["deployments"], 1);
}
