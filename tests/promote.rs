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
        - uses: set-freight-alias
          if: ${{ vars.record ?? false }}
          config: {alias: dev-approved}
        - uses: compose-output
          as: seen
          if: ${{ vars.record ?? false }}
          config:
            previous: ${{ stageMetadata(ctx.stage).lastTag ?? 'none' }}
            region: ${{ configMap('settings').region }}
            auth: Bearer ${{ secret('deploy').token }}
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
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(seed.join("env/dev")).unwrap();
        std::fs::write(
            seed.join("env/dev/kustomization.yaml"),
            "# dev\nresources: [../../base]\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 1.0.0 # pinned by barge\n",
        )
        .unwrap();
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
            STAGES.replace("HEALTH_PORT", &health_port.to_string()),
        )
        .unwrap();
        let db = format!("sqlite://{}/barge.db", dir.path().display());
        // Freight as discovery would have stored it.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let alias = runtime.block_on(async {
            let store = barge_store::Store::open(&db).await.unwrap();
            let mut f = barge_core::model::kargo::Freight {
                origin: Some(barge_core::model::kargo::FreightOrigin {
                    kind: "Warehouse".into(),
                    name: "app".into(),
                }),
                images: vec![barge_core::model::kargo::Image {
                    repo_url: "ghcr.io/acme/app".into(),
                    tag: "1.4.0".into(),
                    digest: "sha256:aaaa".into(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            f.metadata.name = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00".into();
            store
                .mint_freight("shop", "app", f, 1)
                .await
                .unwrap()
                .freight
                .freight
                .alias
                .unwrap()
        });
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
        let mut a: Vec<String> = vec![
            "promote".into(),
            self.dir.path().join("stages.yaml").display().to_string(),
            "--stage".into(),
            "dev".into(),
            "--freight".into(),
            self.alias.clone(),
            "--db".into(),
            self.db.clone(),
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
    let web = fx.dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("healthz"), "ok").unwrap();
    let server = health_server(&web, fx.health_port);
    let out = barge().args(fx.args(&["--dry-run"])).output().unwrap();
    drop(server);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("-    newTag: 1.0.0 # pinned by barge"), "{text}");
    assert!(text.contains("+    newTag: 1.4.0 # pinned by barge"), "{text}");
    assert!(text.contains("Succeeded"), "{text}");
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
    assert_eq!(stdout(&listed).trim(), "[]");
    let server = health_server(&web, fx.health_port);
    let out = barge().args(fx.args(&["--dry-run", "-o", "json"])).output().unwrap();
    drop(server);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["name"].is_null(), "{report}");
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
    let list: serde_json::Value = serde_json::from_str(&get(&["get", "promotions", "-o", "json"])).unwrap();
    let name = list[0]["name"].as_str().unwrap().to_string();
    assert_rfc3339(&list[0]["createdAt"]);
    assert_rfc3339(&list[0]["updatedAt"]);
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
