//! The promotion engine against real git repositories: the exact diffs edits make, rendered
//! (orphan) branches, retries, conditions, a crash at every step boundary, 50 promotions
//! racing into one branch, and credentials over smart HTTP.

use barge_testkit::git as git_kit;
mod support;

use barge_core::eval::StepStatus;
use barge_core::model::kargo::{Freight, GitCommit};
use barge_core::promotion::{Phase, State};
use barge_git::repo::Credentials;
use barge_promote::{Engine, Event, Events, Journal, Promotion};
use git_kit::git;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const KUSTOMIZATION: &str = "\
# The dev overlay. Comments survive edits.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: app   # the image the base references
    newName: ghcr.io/acme/app
    newTag: \"1.9\"
";

const VALUES: &str = "\
replicaCount: 2
image:
  repository: ghcr.io/acme/app
  tag: '1.9'   # set by barge
resources: {limits: {cpu: 200m}}
";

const CONFIG_JSON: &str = "{\n    \"release\": \"1.9\",\n    \"features\": {\n        \"beta\": false\n    }\n}\n";

const APP_TOML: &str = "# app settings\n[app]\nversion = \"1.9\"  # the running release\nreplicas = 2\n";

/// A bare repository whose main holds stages/dev with a kustomization, Helm values, JSON and TOML.
fn seed(root: &Path) -> PathBuf {
    git_kit::bare_repo(
        root,
        "config.git",
        &[
            ("stages/dev/kustomization.yaml", KUSTOMIZATION),
            ("stages/dev/values.yaml", VALUES),
            ("stages/dev/config.json", CONFIG_JSON),
            ("stages/dev/app.toml", APP_TOML),
            ("base/deploy.yaml", "kind: Deployment\n"),
        ],
    )
}

fn freight() -> Freight {
    let mut f = support::image_freight("ghcr.io/acme/app", "1.10");
    f.commits = vec![GitCommit {
        repo_url: "https://git.example.com/acme/config.git".into(),
        id: "0123456789abcdef0123456789abcdef01234567".into(),
        ..GitCommit::default()
    }];
    f
}

#[derive(Default)]
struct Recorder {
    saves: Mutex<Vec<(State, Phase)>>,
    events: Mutex<Vec<Event>>,
}

impl Journal for Recorder {
    fn save<'a>(
        &'a self,
        state: &'a State,
        phase: Phase,
        _m: &'a str,
    ) -> barge_promote::BoxFuture<'a, Result<(), String>> {
        self.saves.lock().unwrap().push((state.clone(), phase));
        Box::pin(async { Ok(()) })
    }
}

impl Events for Recorder {
    fn event<'a>(&'a self, e: &'a Event) -> barge_promote::BoxFuture<'a, ()> {
        self.events.lock().unwrap().push(e.clone());
        Box::pin(async {})
    }
}

fn engine(root: &Path, rewrite_to: &Path) -> Engine {
    support::engine(
        root,
        vec![support::rewrite_to_dir("https://git.example.com/acme/", rewrite_to)],
    )
}

fn promotion(stage_yaml: &str, stage: &str) -> Promotion {
    support::plan(stage_yaml, stage, freight())
}

const EDITS: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata: {name: edit-all, namespace: shop}
spec:
  vars:
    - name: dir
    - name: image
      value: ghcr.io/acme/app
  steps:
    - uses: yaml-update
      as: values
      config:
        path: ${{ vars.dir }}/values.yaml
        updates:
          - key: image.tag
            value: ${{ quote(imageFrom(vars.image).Tag) }}
    - uses: json-update
      config:
        path: ${{ vars.dir }}/config.json
        updates:
          - {key: release, value: "${{ quote(imageFrom(vars.image).Tag) }}"}
          - {key: features.beta, value: true}
    - uses: toml-update
      config:
        path: ${{ vars.dir }}/app.toml
        updates:
          - {key: app.version, value: "${{ quote(imageFrom(vars.image).Tag) }}"}
    - uses: compose-output
      as: out
      config:
        summary: ${{ task.outputs.values.commitMessage }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  vars:
    - name: repo
      value: https://git.example.com/acme/config.git
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: ${{ vars.repo }}
            checkout:
              - branch: main
                path: ./repo
        - uses: kustomize-set-image
          as: images
          config:
            path: ./repo/stages/dev
            images:
              - image: ghcr.io/acme/app
                name: app
        - task: {name: edit-all}
          as: edits
          vars:
            - name: dir
              value: ./repo/stages/dev
        - uses: git-commit
          as: commit
          config:
            path: ./repo
            message: |
              ${{ outputs.images.commitMessage }}
              ${{ outputs.edits.summary }}
        - uses: git-push
          as: push
          config:
            path: ./repo
        - uses: fail
          if: ${{ failure() }}
          config: {message: never runs}
"#;

#[tokio::test]
async fn edits_change_exactly_the_intended_lines_and_land_with_a_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    let e = engine(dir.path(), dir.path());
    let p = promotion(EDITS, "dev");
    let rec = Recorder::default();
    let out = e.run(&p, State::new(&p.steps), &rec, &rec).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    // The last step's `if: failure()` was false: skipped.
    assert_eq!(out.state.steps.last().unwrap().status, StepStatus::Skipped);
    let pushed = out.state.outputs["push"]["commit"].as_str().unwrap().to_string();
    assert_eq!(git(&bare, &["rev-parse", "main"]), pushed);
    let body = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(body.contains(&format!("Barge-Promotion: {}", p.name)), "{body}");
    // Kargo's message names the image as the kustomization does (`name: app`).
    assert!(
        body.contains("Updated ./repo/stages/dev to use new image\n\n- app:1.10"),
        "{body}"
    );
    assert!(body.contains("Updated ./repo/stages/dev/values.yaml"), "{body}");
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "main"]),
        "barge <barge@example.com>"
    );
    let diff = git(&bare, &["diff", "-U0", "main~1", "main", "--", "stages/dev"]);
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---"))
        .collect();
    assert_eq!(
        changed,
        vec![
            "-version = \"1.9\"  # the running release",
            "+version = \"1.10\"  # the running release",
            "-    \"release\": \"1.9\",",
            "+    \"release\": \"1.10\",",
            "-        \"beta\": false",
            "+        \"beta\": true",
            "-    newTag: \"1.9\"",
            "+    newTag: \"1.10\"",
            "-  tag: '1.9'   # set by barge",
            "+  tag: '1.10'   # set by barge",
        ],
        "{diff}"
    );
    // Every step reported its start and end, in order.
    let events = rec.events.lock().unwrap();
    let finished: Vec<(String, StepStatus)> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepFinished { alias, status, .. } => Some((alias.clone(), *status)),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), p.steps.len());
    assert_eq!(finished[2], ("edits::values".to_string(), StepStatus::Succeeded));
}

/// Steps of Stage dev (support::dev_stage).
const RENDERED: &str = r#"
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout:
              - fromFreight: true
                path: ./src
              - branch: env/${{ ctx.stage }}
                create: true
                path: ./out
        - uses: git-clear
          config: {path: ./out}
        - uses: copy
          config: {inPath: ./src/stages/dev, outPath: ./out/manifests}
        - uses: delete
          config: {path: ./out/manifests/app.toml}
        - uses: file-write
          config:
            path: ./out/README.md
            contents: "Rendered from ${{ commitFrom('https://git.example.com/acme/config.git').ID }} for ${{ ctx.stage }}\n"
        - uses: yaml-parse
          as: parsed
          config:
            path: ./out/manifests/values.yaml
            outputs:
              - {name: replicas, fromExpression: "replicaCount * 2"}
        - uses: git-commit
          config: {path: ./out, message: "render ${{ outputs.parsed.replicas }}"}
        - uses: git-push
          as: push
          config: {path: ./out}
"#;

#[tokio::test]
async fn a_rendered_branch_is_created_as_an_orphan_from_a_pinned_commit() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    let seed_head = git(&bare, &["rev-parse", "main"]);
    let e = engine(dir.path(), dir.path());
    let mut p = promotion(&support::dev_stage(RENDERED), "dev");
    p.freight.commits[0].id = seed_head.clone();
    p.collection = vec![p.freight.clone()];
    let rec = Recorder::default();
    let out = e.run(&p, State::new(&p.steps), &rec, &rec).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(out.state.outputs["push"]["branch"], "env/dev");
    // One root commit on the new branch, holding exactly the rendered files.
    assert_eq!(git(&bare, &["rev-list", "--count", "env/dev"]), "1");
    let files = git(&bare, &["ls-tree", "-r", "--name-only", "env/dev"]);
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        vec![
            "README.md",
            "manifests/config.json",
            "manifests/kustomization.yaml",
            "manifests/values.yaml"
        ]
    );
    assert_eq!(git(&bare, &["log", "-1", "--format=%s", "env/dev"]), "render 4");
    let readme = git(&bare, &["show", "env/dev:README.md"]);
    assert_eq!(readme, format!("Rendered from {seed_head} for dev"));
}

/// Steps of Stage dev (support::dev_stage).
const FAILING: &str = r#"
        - uses: copy
          as: flaky
          continueOnError: true
          config: {inPath: ./missing, outPath: ./x}
        - uses: fail
          as: boom
          config: {message: "stop here"}
        - uses: file-write
          as: skipped
          config: {path: a.txt, contents: x}
        - uses: file-write
          as: cleanup
          if: ${{ failure() && status('boom') == 'Failed' }}
          config: {path: cleanup.txt, contents: done}
"#;

#[tokio::test]
async fn failures_skip_later_steps_but_run_failure_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), dir.path());
    let p = promotion(&support::dev_stage(FAILING), "dev");
    let rec = Recorder::default();
    let out = e.run(&p, State::new(&p.steps), &rec, &rec).await;
    assert_eq!(out.phase, Phase::Failed, "{}", out.message);
    assert!(out.message.contains("step boom (fail): stop here"), "{}", out.message);
    let statuses: Vec<StepStatus> = out.state.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![
            StepStatus::Errored,
            StepStatus::Failed,
            StepStatus::Skipped,
            StepStatus::Succeeded
        ]
    );
    assert!(out.state.steps[0].message.contains("./missing does not exist"));
    // The work directory is gone once the promotion is over.
    assert!(!e.work_dir(&p.name).exists());
}

/// Steps of Stage dev (support::dev_stage).
const RETRIED: &str = r#"
        - uses: http
          as: probe
          retry: {errorThreshold: 3}
          config:
            url: http://127.0.0.1:PORT/
"#;

#[tokio::test]
async fn a_retryable_error_is_retried_up_to_the_error_threshold() {
    // Nothing listens on the port: three connection errors, then the step gives up.
    let port = git_kit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), dir.path());
    let p = promotion(&support::dev_stage(&RETRIED.replace("PORT", &port.to_string())), "dev");
    let rec = Recorder::default();
    let out = e.run(&p, State::new(&p.steps), &rec, &rec).await;
    assert_eq!(out.phase, Phase::Errored);
    assert_eq!(out.state.steps[0].error_count, 3);
    assert!(
        out.state.steps[0].message.contains("after 3 attempts"),
        "{}",
        out.state.steps[0].message
    );
}

/// A journal that stops the world at its `n`-th save: the engine's future is dropped there, as
/// if the process died right after the step's side effects and before its record.
struct CrashAt {
    n: usize,
    seen: Mutex<usize>,
    last_saved: Mutex<Option<State>>,
    crashed: tokio::sync::Notify,
}

impl Journal for CrashAt {
    fn save<'a>(
        &'a self,
        state: &'a State,
        _p: Phase,
        _m: &'a str,
    ) -> barge_promote::BoxFuture<'a, Result<(), String>> {
        let mut seen = self.seen.lock().unwrap();
        *seen += 1;
        if *seen >= self.n {
            self.crashed.notify_one();
            return Box::pin(std::future::pending());
        }
        *self.last_saved.lock().unwrap() = Some(state.clone());
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_crash_at_any_step_boundary_resumes_with_exactly_one_commit() {
    let p = promotion(EDITS, "dev");
    // Two saves per executed step (running, finished); try every one, with and without the
    // work directory surviving the crash.
    for lose_workdir in [false, true] {
        for n in 1..=(2 * p.steps.len()) {
            let dir = tempfile::tempdir().unwrap();
            let bare = seed(dir.path());
            let e = engine(dir.path(), dir.path());
            let journal = CrashAt {
                n,
                seen: Mutex::new(0),
                last_saved: Mutex::new(None),
                crashed: tokio::sync::Notify::new(),
            };
            let rec = Recorder::default();
            tokio::select! {
                out = e.run(&p, State::new(&p.steps), &journal, &rec) => panic!("no crash at save {n}: {:?}", out.phase),
                () = journal.crashed.notified() => {}
            }
            let state = journal
                .last_saved
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_else(|| State::new(&p.steps));
            if lose_workdir {
                std::fs::remove_dir_all(e.work_dir(&p.name)).ok();
            }
            // A new engine (a restarted process) resumes from what was stored.
            let e2 = engine(dir.path(), dir.path());
            let out = e2.run(&p, state, &rec, &rec).await;
            assert_eq!(out.phase, Phase::Succeeded, "crash at save {n}: {}", out.message);
            let trailers = git(&bare, &["log", "--format=%B", "main"])
                .lines()
                .filter(|l| l.starts_with("Barge-Promotion:"))
                .count();
            assert_eq!(
                trailers, 1,
                "crash at save {n} (work dir lost: {lose_workdir}): one commit"
            );
            assert_eq!(git(&bare, &["rev-list", "--count", "main"]), "2");
            assert!(git(&bare, &["show", "main:stages/dev/values.yaml"]).contains("tag: '1.10'"));
        }
    }
}

#[tokio::test]
async fn fifty_promotions_racing_into_one_branch_with_an_outside_writer_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("seed");
    std::fs::create_dir_all(&work).unwrap();
    let mut stages = String::from("apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: shop}\n");
    for i in 0..50 {
        std::fs::create_dir_all(work.join(format!("stages/s{i}"))).unwrap();
        std::fs::write(work.join(format!("stages/s{i}/kustomization.yaml")), KUSTOMIZATION).unwrap();
        stages.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: s{i}, namespace: shop}}\nspec:\n  requestedFreight:\n    - origin: {{kind: Warehouse, name: app}}\n      sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n        - uses: git-clone\n          config: {{repoURL: https://git.example.com/acme/config.git, checkout: [{{branch: main, path: ./r}}]}}\n        - uses: kustomize-set-image\n          config: {{path: \"./r/stages/${{{{ ctx.stage }}}}\", images: [{{image: ghcr.io/acme/app, name: app}}]}}\n        - uses: git-commit\n          config: {{path: ./r, message: \"${{{{ ctx.stage }}}}\"}}\n        - uses: git-push\n          config: {{path: ./r}}\n"
        ));
    }
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "seed"]);
    let bare = dir.path().join("config.git");
    git(
        dir.path(),
        &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()],
    );
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text("stages.yaml", &stages);
    assert_eq!(catalog.errors(), 0, "{:?}", catalog.diagnostics);
    let mut e = engine(dir.path(), dir.path());
    e.push_policy.max_attempts = 60;
    let e = Arc::new(e);
    // Someone else pushes to the same branch meanwhile: the batched pushes must notice the
    // branch moved, integrate, and lose nothing (theirs or ours).
    let outsider = {
        let (bare, dir) = (bare.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let clone = dir.join("outsider");
            git(&dir, &["clone", "-q", bare.to_str().unwrap(), clone.to_str().unwrap()]);
            for n in 0..10 {
                std::fs::write(clone.join("outsider.txt"), format!("{n}\n")).unwrap();
                git(&clone, &["add", "outsider.txt"]);
                git(&clone, &["commit", "-q", "-m", &format!("outsider {n}")]);
                while !std::process::Command::new("git")
                    .args(["push", "-q", "origin", "HEAD:main"])
                    .current_dir(&clone)
                    .stderr(std::process::Stdio::null())
                    .status()
                    .unwrap()
                    .success()
                {
                    git(&clone, &["pull", "-q", "--rebase", "origin", "main"]);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let p = Promotion::plan(&catalog, "shop", &format!("s{i}"), freight(), Vec::new(), "alice").unwrap();
        let e = e.clone();
        tasks.spawn(async move {
            let rec = Recorder::default();
            (i, e.run(&p, State::new(&p.steps), &rec, &rec).await)
        });
    }
    let mut reported = Vec::new();
    while let Some(out) = tasks.join_next().await {
        let (i, out) = out.unwrap();
        assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
        let pushed = out
            .state
            .outputs
            .values()
            .find_map(|o| o.get("branch").and(o.get("commit")).and_then(|c| c.as_str()))
            .expect("git-push reports its commit")
            .to_string();
        reported.push((i, pushed));
    }
    outsider.join().unwrap();
    assert_eq!(
        git(&bare, &["rev-list", "--count", "main"]),
        "61",
        "50 promotions' and 10 outside commits on top of the seed"
    );
    // Each promotion reports its own commit, which is on the branch (a commit landed by a
    // later promotion's push included).
    for (i, commit) in reported {
        assert_eq!(git(&bare, &["log", "-1", "--format=%s", &commit]), format!("s{i}"));
        assert_eq!(
            git(&bare, &["diff", "--name-only", &format!("{commit}^"), &commit]),
            format!("stages/s{i}/kustomization.yaml"),
            "the commit holds the stage's change (replays never empty it)"
        );
        git(&bare, &["merge-base", "--is-ancestor", &commit, "main"]);
    }
    for i in 0..50 {
        let k = git(&bare, &["show", &format!("main:stages/s{i}/kustomization.yaml")]);
        assert!(k.contains("newTag: \"1.10\""), "stage s{i} landed: {k}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_auth_error_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    git(&bare, &["config", "http.receivepack", "true"]);
    // Blobless fetches: the checkout's blobs come in a second, authenticated request.
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rwX", dir.path().to_str().unwrap()])
        .status();
    let (_server, port) = git_kit::smart_http(dir.path(), "deploy", "correct-horse-battery");
    for (password, ok) in [("correct-horse-battery", true), ("wrong-password-123", false)] {
        let mut e = engine(dir.path(), dir.path());
        e.rewrites[0].to = format!("http://127.0.0.1:{port}/");
        let pw = password.to_string();
        e.credentials = Arc::new(move |_| {
            Some(Credentials {
                username: "deploy".into(),
                password: pw.clone(),
            })
        });
        let p = promotion(EDITS, "dev");
        let rec = Recorder::default();
        let out = e.run(&p, State::new(&p.steps), &rec, &rec).await;
        if ok {
            assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
            continue;
        }
        assert_eq!(out.phase, Phase::Errored);
        assert!(out.message.contains("authentication failed"), "{}", out.message);
        let everything = format!("{out:?}{:?}{:?}", rec.events.lock().unwrap(), rec.saves.lock().unwrap());
        assert!(!everything.contains(password), "the password leaked: {}", out.message);
    }
}

/// Steps of Stage dev (support::dev_stage).
const SIGNED: &str = r#"
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
            author:
              name: Release Bot
              email: release@acme.example
              signingKey: ${{ secret('git').signingKey }}
        - uses: kustomize-set-image
          config: {path: ./src/stages/dev, images: [{image: ghcr.io/acme/app, name: app}]}
        - uses: git-commit
          config: {path: ./src, message: signed}
        - uses: git-push
          config: {path: ./src}
"#;

#[tokio::test]
async fn commits_are_signed_with_the_configured_gpg_key() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    // A throw-away key, made with gpg in a keyring of the test's own.
    let home = dir.path().join("gnupg-test");
    std::fs::create_dir_all(&home).unwrap();
    let gpg = |args: &[&str]| {
        let out = std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--passphrase", ""])
            .args(args)
            .output()
            .expect("gpg (Debian package gnupg)");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    gpg(&[
        "--quick-gen-key",
        "Release Bot <release@acme.example>",
        "ed25519",
        "sign",
        "never",
    ]);
    let armored = gpg(&["--armor", "--export-secret-keys"]);
    let mut e = engine(dir.path(), dir.path());
    e.data
        .secrets
        .insert("git".into(), [("signingKey".to_string(), armored.clone())].into());
    let p = promotion(&support::dev_stage(SIGNED), "dev");
    let rec = Recorder::default();
    let out = e.run(&p, State::new(&p.steps), &rec, &rec).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    // git checks the signature against the key's public half.
    let verify = std::process::Command::new("git")
        .args(["verify-commit", "main"])
        .current_dir(&bare)
        .env("GNUPGHOME", &home)
        .output()
        .unwrap();
    let raw = std::process::Command::new("git")
        .args(["cat-file", "commit", "main"])
        .current_dir(&bare)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stderr),
        String::from_utf8_lossy(&raw.stdout)
    );
    assert!(String::from_utf8_lossy(&verify.stderr).contains("Release Bot"));
    // The key never reaches what is stored or reported, and its keyring is gone.
    let everything = format!("{out:?}{:?}{:?}", rec.events.lock().unwrap(), rec.saves.lock().unwrap());
    assert!(!everything.contains("PRIVATE KEY BLOCK"));
    assert!(!dir.path().join("work").join(format!("{}.gnupg", p.name)).exists());
}

/// Steps of Stage dev (support::dev_stage).
const RENDER_TOOLS: &str = r#"
        - uses: file-write
          config: {path: ./src/kustomization.yaml, contents: "resources: []\n"}
        - uses: kustomize-build
          as: kustomize
          continueOnError: true
          config: {path: ./src, outPath: ./out/manifests.yaml}
        - uses: helm-template
          as: helm
          continueOnError: true
          config: {path: ./src, outPath: ./out/chart.yaml}
"#;

/// kustomize and helm are programs barge runs, not libraries it embeds: without them the
/// step says so and where to get them. (`scripts/test` installs both from PyPI, see
/// scripts/install-kustomize and scripts/install-helm, so there this test checks that they ran.)
#[tokio::test]
async fn render_steps_say_when_their_tool_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), dir.path());
    let p = promotion(&support::dev_stage(RENDER_TOOLS), "dev");
    let rec = Recorder::default();
    let out = e.run(&p, State::new(&p.steps), &rec, &rec).await;
    for (i, tool, site) in [(1, "kustomize", "kubectl.docs.kubernetes.io"), (2, "helm", "helm.sh")] {
        let installed = std::process::Command::new(tool).arg("version").output().is_ok();
        let r = &out.state.steps[i];
        if installed {
            assert!(!r.message.contains("not installed"), "{tool}: {}", r.message);
        } else {
            assert_eq!(r.status, StepStatus::Errored);
            assert!(
                r.message.contains(&format!("`{tool}` is not installed or not on PATH")),
                "{}",
                r.message
            );
            assert!(r.message.contains(site), "{}", r.message);
        }
    }
    // continueOnError: the promotion itself succeeded.
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
}

/// examples/rendered-branches as written: the test Stage renders its overlay with a real
/// kustomize (`scripts/install-kustomize`, which `scripts/test` runs) into branch stage/test.
#[tokio::test]
async fn the_rendered_branches_example_renders_with_a_real_kustomize() {
    let dir = tempfile::tempdir().unwrap();
    let bare = git_kit::bare_repo(
        dir.path(),
        "example/guestbook-config.git",
        &[
            (
                "base/deployment.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: guestbook}\nspec:\n  template:\n    spec:\n      containers:\n        - {name: guestbook, image: ghcr.io/example/guestbook:1.0.0}\n",
            ),
            ("base/kustomization.yaml", "resources: [deployment.yaml]\n"),
            (
                "overlays/test/kustomization.yaml",
                "resources: [../../base]\nnamePrefix: test-\nimages:\n  - name: ghcr.io/example/guestbook\n    newTag: 1.0.0\n",
            ),
        ],
    );
    let head = git(&bare, &["rev-parse", "main"]).trim().to_string();
    let e = engine(dir.path(), dir.path());
    let e = barge_promote::Engine {
        rewrites: vec![support::rewrite_to_dir("https://git.example.com/", dir.path())],
        ..e
    };
    let mut freight = support::image_freight("ghcr.io/example/guestbook", "1.4.2");
    freight.commits = vec![GitCommit {
        repo_url: "https://git.example.com/example/guestbook-config.git".into(),
        id: head,
        branch: Some("main".into()),
        ..GitCommit::default()
    }];
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/rendered-branches/kargo.yaml"
    ))
    .unwrap();
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text("kargo.yaml", &text);
    let p =
        barge_promote::Promotion::plan(&catalog, "guestbook-rendered", "test", freight, Vec::new(), "alice").unwrap();
    let rec = Recorder::default();
    let out = e.run(&p, State::new(&p.steps), &rec, &rec).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let rendered = git(&bare, &["show", "stage/test:manifests.yaml"]);
    assert!(
        rendered.contains("name: test-guestbook"),
        "kustomize applied the overlay:\n{rendered}"
    );
    assert!(
        rendered.contains("image: ghcr.io/example/guestbook:1.4.2"),
        "{rendered}"
    );
    assert_eq!(
        git(&bare, &["ls-tree", "--name-only", "stage/test"]).trim(),
        "manifests.yaml",
        "the branch holds only the render"
    );
}
