//! `barge promote` end to end: the real binary, a real store, a real git remote (`git
//! daemon`), and `kill -9` in the middle of a promotion.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use support::{barge, git, health_server, stderr, stdout};

const STAGES: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
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
          config: {path: ./src}
        - uses: set-metadata
          if: ${{ vars.record ?? false }}
          config:
            updates:
              - kind: Stage
                name: ${{ ctx.stage }}
                values: {lastTag: "${{ quote(imageFrom('ghcr.io/acme/app').Tag) }}"}
              - kind: Freight
                name: ${{ ctx.targetFreight.name }}
                values: {change: CHG-7}
        - uses: set-freight-alias
          if: ${{ vars.record ?? false }}
          config: {alias: dev-approved}
        - uses: compose-output
          as: seen
          if: ${{ vars.record ?? false }}
          config:
            previous: ${{ stageMetadata(ctx.stage)?.lastTag ?? 'none' }}
            region: ${{ configMap('settings').region }}
            auth: Bearer ${{ secret('deploy').token }}
            status: ${{ freightStatus(ctx.targetFreight.name) }}
        - uses: http
          as: smoke
          config:
            url: http://127.0.0.1:HEALTH_PORT/healthz
            successExpression: response.status == 200
"#;

struct Fixture {
    dir: tempfile::TempDir,
    bare: PathBuf,
    db: String,
    alias: String,
    _daemon: support::GitDaemon,
    git_port: u16,
    health_port: u16,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_stages(STAGES, &["dev"])
    }

    /// The config repository with `env/<stage>` for each of `stages`, served by `git daemon`;
    /// `stages_yaml` as the definitions; the Freight minted in the store.
    fn with_stages(stages_yaml: &str, stages: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        for stage in stages {
            std::fs::create_dir_all(seed.join("env").join(stage)).unwrap();
            std::fs::write(
                seed.join("env").join(stage).join("kustomization.yaml"),
                format!("# {stage}\nresources: [../../base]\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 1.0.0 # pinned by barge\n"),
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
        let daemon = support::GitDaemon::start(&root);
        let health_port = support::free_port();
        std::fs::write(
            dir.path().join("stages.yaml"),
            stages_yaml.replace("HEALTH_PORT", &health_port.to_string()),
        )
        .unwrap();
        let db = format!("sqlite://{}/barge.db", dir.path().display());
        let alias = support::mint_freight(&db, "1.4.0");
        let git_port = daemon.port;
        Fixture {
            dir,
            bare,
            db,
            alias,
            _daemon: daemon,
            git_port,
            health_port,
        }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        self.args_for("dev", &self.db, extra)
    }

    /// `barge promote` of `stage` with the store `db`, this fixture's Freight and work dir.
    fn args_for(&self, stage: &str, db: &str, extra: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "promote".into(),
            self.dir.path().join("stages.yaml").display().to_string(),
            "--stage".into(),
            stage.into(),
            "--freight".into(),
            self.alias.clone(),
            "--db".into(),
            db.into(),
            "--work-dir".into(),
            self.dir.path().join("cache").display().to_string(),
            "--rewrite".into(),
            format!("https://git.example.com/acme/=git://127.0.0.1:{}/", self.git_port),
            "--actor".into(),
            "alice".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    fn trailers(&self) -> usize {
        git(&self.bare, &["log", "--format=%B", "main"])
            .lines()
            .filter(|l| l.starts_with("Barge-Promotion:"))
            .count()
    }
}

#[test]
fn dry_run_prints_the_diff_and_pushes_nothing() {
    let fx = Fixture::new();
    let before = git(&fx.bare, &["rev-parse", "main"]);
    // No server answers the `http` step's URL: the dry run skips that step.
    let out = barge().args(fx.args(&["--dry-run"])).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("-    newTag: 1.0.0 # pinned by barge"), "{text}");
    assert!(text.contains("+    newTag: 1.4.0 # pinned by barge"), "{text}");
    assert!(
        text.contains("would change 1 file(s): env/dev/kustomization.yaml"),
        "{text}"
    );
    assert!(text.contains("# smoke (http): "), "{text}");
    assert_eq!(
        git(&fx.bare, &["rev-parse", "main"]),
        before,
        "a dry run pushes nothing"
    );
    // A dry run stores no promotion, so it names none.
    assert!(
        text.contains(&format!("Dry run of {} into dev: Succeeded", fx.alias)),
        "{text}"
    );
    assert!(!text.contains("Promotion "), "{text}");
    let listed = barge()
        .args(["get", "promotions", "--db", &fx.db, "-o", "json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");
    let out = barge().args(fx.args(&["--dry-run", "-o", "json"])).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(plan["name"].is_null(), "{plan}");
    assert_eq!(
        plan["pushes"][0]["files"],
        serde_json::json!(["env/dev/kustomization.yaml"]),
        "{plan}"
    );
}

/// An RFC 3339 time in UTC to the second, as Kubernetes writes metav1.Time.
fn assert_rfc3339(v: &serde_json::Value) {
    let t = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    assert!(
        chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.len() == 20 && t.ends_with('Z'),
        "{t} is not like 2024-05-01T12:00:00Z"
    );
}

#[test]
fn freight_and_promotions_use_kargos_formats_and_the_text_shows_step_outputs() {
    let fx = Fixture::new();
    let web = fx.dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("healthz"), "ok").unwrap();
    let server = health_server(&web, fx.health_port);
    let out = barge().args(fx.args(&[])).output().unwrap();
    drop(server);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let get = |args: &[&str]| {
        let out = barge().args(args).args(["--db", &fx.db]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };

    // Freight: metav1.Time and metav1.Duration, as its apiVersion promises.
    let freight: serde_json::Value = serde_json::from_str(&get(&["get", "freight", &fx.alias, "-o", "json"])).unwrap();
    assert_rfc3339(&freight["metadata"]["creationTimestamp"]);
    assert!(freight.get("createdAt").is_none(), "{freight}");
    let status = &freight["status"];
    assert_rfc3339(&status["currentlyIn"]["dev"]["since"]);
    assert_rfc3339(&status["verifiedIn"]["dev"]["verifiedAt"]);
    let soak = status["verifiedIn"]["dev"]["longestSoak"].as_str().unwrap();
    assert!(
        barge_core::duration::parse_go_duration(soak).is_ok() && soak.ends_with('s'),
        "{soak} is a Go duration"
    );
    let yaml = get(&["get", "freight", &fx.alias, "-o", "yaml"]);
    assert!(yaml.contains("creationTimestamp: "), "{yaml}");
    let table = get(&["get", "freight"]);
    // The fixture minted it at Unix millisecond 1.
    assert!(
        table.contains("  1970-01-01 00:00:00  "),
        "the table reads the time back: {table}"
    );

    // Promotions: the same times; one promotion's text shows what its steps produced.
    let list = support::listed(serde_json::from_str(&get(&["get", "promotions", "-o", "json"])).unwrap());
    let name = list[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert_rfc3339(&list[0]["metadata"]["creationTimestamp"]);
    assert_rfc3339(&list[0]["status"]["finishedAt"]);
    let pushed = git(&fx.bare, &["rev-parse", "main"]);
    let text = get(&["get", "promotion", &name]);
    let push_line = text
        .lines()
        // The fourth step, git-push (Kargo's default aliases count from 1).
        .find(|l| l.trim_start().starts_with("step-4 "))
        .unwrap_or_else(|| {
            panic!(
                "no git-push step in
{text}"
            )
        });
    assert!(
        push_line.contains(&format!("commit={}", pushed.trim())),
        "the pushed commit in the text view:
{text}"
    );
    assert_eq!(
        get(&["get", "promotion", &name, "-o", "name"]),
        format!("promotion.kargo.akuity.io/{name}\n")
    );
}

#[test]
fn kill_dash_nine_mid_promotion_then_rerun_resumes_with_one_commit() {
    let fx = Fixture::new();
    let web = fx.dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    let server = health_server(&web, fx.health_port);
    // The smoke check waits (404) after the push; kill barge there.
    let mut child = barge()
        .args(fx.args(&[]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("barge stopped early: {seen}"))
            .unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("http (smoke) …") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(fx.trailers(), 1, "the push landed before the kill: {seen}");

    // The health check passes now; the same command resumes at the smoke step.
    std::fs::write(web.join("healthz"), "ok").unwrap();
    let out = barge().args(fx.args(&["-o", "json"])).output().unwrap();
    drop(server);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Resuming promotion dev."), "{}", stderr(&out));
    assert!(stderr(&out).contains("at step 8/8"), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["phase"], "Succeeded");
    assert_eq!(fx.trailers(), 1, "exactly one commit for the promotion");
    let k = git(&fx.bare, &["show", "main:env/dev/kustomization.yaml"]);
    assert!(k.contains("newTag: 1.4.0 # pinned by barge"), "{k}");

    // The audit log has the push with its commit, and no secret-bearing URL.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let audit = runtime.block_on(async {
        let store = barge_store::Store::open(&fx.db).await.unwrap();
        store.list_audit(Some("shop"), 0).await.unwrap()
    });
    let kinds: Vec<&str> = audit.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "promotion.created").count(),
        1,
        "{kinds:?}"
    );
    let pushed = audit
        .iter()
        .find(|a| a.kind == "promotion.pushed")
        .expect("a push event");
    assert_eq!(pushed.body["outputs"]["commit"], git(&fx.bare, &["rev-parse", "main"]));
    assert_eq!(pushed.actor, "alice");

    // Promoting again makes a new promotion; nothing changes, so no new commit.
    std::fs::write(web.join("healthz"), "ok").unwrap();
    let server = health_server(&web, fx.health_port);
    let again = barge().args(fx.args(&[])).output().unwrap();
    drop(server);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(git(&fx.bare, &["rev-list", "--count", "main"]), "2");
}

#[test]
fn unknown_freight_and_unrelated_stages_are_clear_errors() {
    let fx = Fixture::new();
    let mut args = fx.args(&[]);
    let i = args.iter().position(|a| a == &fx.alias).unwrap();
    args[i] = "no-such-freight".into();
    let out = barge().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no Freight \"no-such-freight\" in project \"shop\""),
        "{}",
        stderr(&out)
    );
    let mut args = fx.args(&[]);
    let i = args.iter().position(|a| a == "dev").unwrap();
    args[i] = "qa".into();
    let out = barge().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no Stage named \"qa\""), "{}", stderr(&out));
}

#[test]
fn the_commit_author_comes_from_the_config_file() {
    let fx = Fixture::new();
    let web = fx.dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("healthz"), "ok").unwrap();
    let server = health_server(&web, fx.health_port);
    let config = fx.dir.path().join("barge.yaml");
    std::fs::write(
        &config,
        "git:\n  author: {name: Release Bot, email: release@acme.example}\n",
    )
    .unwrap();
    let out = barge()
        .args(fx.args(&["--config", config.to_str().unwrap()]))
        .output()
        .unwrap();
    drop(server);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        git(&fx.bare, &["log", "-1", "--format=%an <%ae> / %cn <%ce>", "main"]),
        "Release Bot <release@acme.example> / Release Bot <release@acme.example>"
    );
}

#[test]
fn metadata_aliases_config_values_and_secrets_reach_the_store_redacted() {
    let fx = Fixture::new();
    let web = fx.dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("healthz"), "ok").unwrap();
    let server = health_server(&web, fx.health_port);
    // This Stage records metadata and renames the Freight (vars.record).
    let stages = std::fs::read_to_string(fx.dir.path().join("stages.yaml"))
        .unwrap()
        .replace(
            "  promotionTemplate:\n    spec:\n      steps:",
            "  promotionTemplate:\n    spec:\n      vars: [{name: record, value: true}]\n      steps:",
        );
    std::fs::write(fx.dir.path().join("stages.yaml"), stages).unwrap();
    let config = fx.dir.path().join("barge.yaml");
    std::fs::write(
        &config,
        "configMaps:\n  settings: {region: eu-west-1}\nsecrets:\n  deploy:\n    token: {env: DEPLOY_TOKEN}\n",
    )
    .unwrap();
    let run = |freight: &str| {
        let mut args = fx.args(&["--config", config.to_str().unwrap(), "-o", "json"]);
        let i = args.iter().position(|a| a == &fx.alias).unwrap();
        args[i] = freight.to_string();
        let out = barge()
            .args(&args)
            .env("DEPLOY_TOKEN", "s3cr3t-deploy-token")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stdout(&out).contains("s3cr3t-deploy-token") && !stderr(&out).contains("s3cr3t-deploy-token"));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run(&fx.alias);
    assert_eq!(first["outputs"]["seen"]["previous"], "none");
    assert_eq!(first["outputs"]["seen"]["region"], "eu-west-1");
    assert_eq!(first["outputs"]["seen"]["auth"], "Bearer ***", "the secret is redacted");
    // The Freight was renamed; the next promotion finds it by its new alias and reads the
    // metadata the first one recorded.
    let second = run("dev-approved");
    drop(server);
    assert_eq!(second["outputs"]["seen"]["previous"], "1.4.0");
    // freightStatus(): Kargo's Freight status from the store, as the promotion started: none
    // before the first promotion ended; then in dev, verified there (no verification asked),
    // and the metadata the first one recorded.
    assert_eq!(first["outputs"]["seen"]["status"], serde_json::json!({}));
    let status = &second["outputs"]["seen"]["status"];
    assert!(status["currentlyIn"]["dev"]["since"].is_string(), "{status}");
    assert!(status["verifiedIn"]["dev"]["verifiedAt"].is_string(), "{status}");
    assert_eq!(status["metadata"], serde_json::json!({"change": "CHG-7"}), "{status}");
    assert!(
        status.get("approvedFor").is_none(),
        "empty fields are left out: {status}"
    );
    // Nothing in the store holds the secret.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (audit, promotions) = runtime.block_on(async {
        let store = barge_store::Store::open(&fx.db).await.unwrap();
        (
            store.list_audit(Some("shop"), 0).await.unwrap(),
            store.list_promotions(Some("shop"), None).await.unwrap(),
        )
    });
    let everything = format!("{audit:?}{promotions:?}");
    assert!(everything.contains("Bearer ***"));
    assert!(!everything.contains("s3cr3t-deploy-token"));
    let kinds: Vec<&str> = audit.iter().map(|a| a.kind.as_str()).collect();
    assert!(
        kinds.contains(&"metadata.updated") && kinds.contains(&"freight.aliased"),
        "{kinds:?}"
    );
}

/// The Project and Warehouse of STAGES, and Stages `s0`… that each clone, set the image in
/// `env/<stage>`, commit and push.
fn stages_named(names: &[String]) -> String {
    const STAGE: &str = "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\n";
    let (head, stage) = STAGES.split_once(STAGE).unwrap();
    let (stage, _) = stage.split_once("        - uses: set-metadata").unwrap();
    let mut text = head.to_string();
    for name in names {
        text.push_str(STAGE);
        text.push_str(&stage.replace("{name: dev,", &format!("{{name: {name},")));
    }
    text
}

/// Waits (bounded) for a child to exit; its status.
fn wait_bounded(child: &mut std::process::Child, deadline: std::time::Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("barge did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fifty `barge promote` processes, each promoting its own Stage of one config repository,
/// share the default work directory (its repository cache): every one lands. (Without a lock
/// across processes they raced on git's locks: "cannot lock ref", "could not lock config
/// file", "remote origin already exists".)
#[test]
fn fifty_processes_sharing_a_work_dir_all_land() {
    const N: usize = 50;
    let names: Vec<String> = (0..N).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fx = Fixture::with_stages(&stages_named(&names), &refs);
    // Over file:// (git daemon drops connections beyond 32 at once); a store per process, so
    // that only the work dir is shared.
    let remote = format!(
        "https://git.example.com/acme/=file://{}/",
        fx.bare.parent().unwrap().display()
    );
    let mut children: Vec<_> = names
        .iter()
        .map(|stage| {
            let db = format!("sqlite://{}/{stage}.db", fx.dir.path().display());
            assert_eq!(support::mint_freight(&db, "1.4.0"), fx.alias);
            let mut args = fx.args_for(stage, &db, &[]);
            let rewrite = args
                .iter()
                .position(|a| a.starts_with("https://git.example.com/"))
                .unwrap();
            args[rewrite] = remote.clone();
            let log = std::fs::File::create(fx.dir.path().join(format!("{stage}.log"))).unwrap();
            let child = barge().args(&args).stdout(Stdio::null()).stderr(log).spawn().unwrap();
            (stage.clone(), child)
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut failed = Vec::new();
    for (stage, child) in &mut children {
        if !wait_bounded(child, deadline).success() {
            let log = std::fs::read_to_string(fx.dir.path().join(format!("{stage}.log"))).unwrap();
            failed.push(format!("{stage}: {log}"));
        }
    }
    assert_eq!(failed, Vec::<String>::new(), "every promotion lands");
    assert_eq!(fx.trailers(), N, "one commit per promotion on the remote");
    assert_eq!(support::empty_commits(&fx.bare, "main"), Vec::<String>::new());
}

/// A promotion killed before its push, resumed by two `barge promote` at once: the promotion's
/// lease lets one run it (taken over at once: its holder is a process of this host that is
/// gone), and the other says that it runs elsewhere instead of running it too. One commit.
#[test]
fn two_reruns_of_a_killed_promotion_run_it_once() {
    let fx = Fixture::new();
    // A step that waits before the push: /ready answers 404 until the test writes it.
    let stages = std::fs::read_to_string(fx.dir.path().join("stages.yaml"))
        .unwrap()
        .replace(
            "        - uses: git-push\n",
            &format!(
                "        - uses: http\n          as: ready\n          config:\n            url: http://127.0.0.1:{}/ready\n            successExpression: response.status == 200\n        - uses: git-push\n",
                fx.health_port
            ),
        );
    std::fs::write(fx.dir.path().join("stages.yaml"), stages).unwrap();
    let web = fx.dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("healthz"), "ok").unwrap();
    let _server = health_server(&web, fx.health_port);
    let promote = |log: &str| {
        barge()
            .args(fx.args(&[]))
            .env("BARGE_POLL_INTERVAL", "200ms")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(fx.dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    let read = |log: &str| std::fs::read_to_string(fx.dir.path().join(log)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let waits_for_ready = |log: &str| {
        while !read(log).contains("http (ready) …") {
            assert!(
                std::time::Instant::now() < deadline,
                "never reached the ready step: {}",
                read(log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut first = promote("first.log");
    waits_for_ready("first.log");
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert_eq!(fx.trailers(), 0, "killed before its push");

    let mut reruns = [promote("a.log"), promote("b.log")];
    let logs = ["a.log", "b.log"];
    // One of them ends at once; both resuming the promotion is the failure.
    let (loser, status) = loop {
        if let Some((i, status)) = reruns
            .iter_mut()
            .enumerate()
            .find_map(|(i, c)| c.try_wait().unwrap().map(|s| (i, s)))
        {
            break (i, status);
        }
        assert!(
            !logs.iter().all(|l| read(l).contains("Resuming promotion")),
            "both reruns resumed the promotion:\n{}\n{}",
            read(logs[0]),
            read(logs[1])
        );
        assert!(std::time::Instant::now() < deadline, "neither rerun ended");
        std::thread::sleep(Duration::from_millis(50));
    };
    let winner = 1 - loser;
    let said = read(logs[loser]);
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("is running in another process"), "{said}");
    assert!(
        !said.contains("Resuming promotion") && !said.contains("git-push"),
        "{said}"
    );
    waits_for_ready(logs[winner]);
    assert!(
        read(logs[winner]).contains("Resuming promotion dev."),
        "{}",
        read(logs[winner])
    );

    std::fs::write(web.join("ready"), "ok").unwrap();
    let status = wait_bounded(&mut reruns[winner], deadline);
    assert!(status.success(), "{}", read(logs[winner]));
    assert_eq!(fx.trailers(), 1, "exactly one commit for the promotion");
    assert_eq!(support::empty_commits(&fx.bare, "main"), Vec::<String>::new());
}
