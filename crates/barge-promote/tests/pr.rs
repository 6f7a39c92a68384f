//! PR steps against a test forge that speaks the GitHub, GitLab and Gitea calls barge uses,
//! and merges for real in a bare repository (git CLI).

use barge_testkit::git as git_kit;
mod support;

use axum::extract::{Path as UrlPath, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use barge_core::promotion::{Phase, State};
use barge_git::repo::Credentials;
use barge_promote::{Engine, Promotion};
use git_kit::git;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "forge-token-42";

#[derive(Clone, Debug)]
struct Pr {
    number: i64,
    source: String,
    target: String,
    title: String,
    labels: Vec<String>,
    state: &'static str, // open | closed
    merged: bool,
    merge_sha: Option<String>,
}

#[derive(Clone)]
struct Forge {
    prs: Arc<Mutex<Vec<Pr>>>,
    bare: PathBuf,
    scratch: PathBuf,
}

impl Forge {
    /// Merges `source` into `target` in the bare repository, as the forge's merge button does.
    fn merge(&self, pr: &mut Pr) {
        let work = self.scratch.join(format!("merge-{}", pr.number));
        git(
            &self.scratch,
            &["clone", "-q", self.bare.to_str().unwrap(), work.to_str().unwrap()],
        );
        git(&work, &["checkout", "-q", &pr.target]);
        git(
            &work,
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                &format!("Merge PR #{}", pr.number),
                &format!("origin/{}", pr.source),
            ],
        );
        git(&work, &["push", "-q", "origin", &pr.target]);
        pr.merged = true;
        pr.state = "closed";
        pr.merge_sha = Some(git(&work, &["rev-parse", "HEAD"]));
    }
}

fn authorized(h: &HeaderMap, kind: &str) -> bool {
    let want = match kind {
        "gh" => format!("Bearer {TOKEN}"),
        "gt" => format!("token {TOKEN}"),
        _ => TOKEN.to_string(),
    };
    let header = if kind == "gl" { "PRIVATE-TOKEN" } else { "Authorization" };
    h.get(header).and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

fn hub_json(pr: &Pr) -> Value {
    json!({"number": pr.number, "html_url": format!("http://forge/pulls/{}", pr.number), "state": pr.state,
           "merged": pr.merged, "merge_commit_sha": pr.merge_sha, "head": {"ref": pr.source}, "base": {"ref": pr.target},
           "title": pr.title})
}

fn lab_json(pr: &Pr) -> Value {
    let state = if pr.merged {
        "merged"
    } else if pr.state == "open" {
        "opened"
    } else {
        "closed"
    };
    json!({"iid": pr.number, "web_url": format!("http://forge/-/merge_requests/{}", pr.number), "state": state,
           "merge_commit_sha": pr.merge_sha, "source_branch": pr.source, "target_branch": pr.target, "title": pr.title,
           "labels": pr.labels})
}

type Reply = Result<Json<Value>, StatusCode>;

async fn list(kind: &'static str, f: Forge, h: HeaderMap, q: HashMap<String, String>) -> Reply {
    if !authorized(&h, kind) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let prs = f.prs.lock().unwrap();
    let out: Vec<Value> = prs
        .iter()
        .filter(|p| match kind {
            "gh" => {
                p.state == "open"
                    && q.get("head").is_none_or(|h| h.ends_with(&format!(":{}", p.source)))
                    && q.get("base").is_none_or(|b| *b == p.target)
            }
            "gl" => {
                p.state == "open"
                    && q.get("source_branch").is_none_or(|s| *s == p.source)
                    && q.get("target_branch").is_none_or(|t| *t == p.target)
            }
            _ => p.state == "open",
        })
        .map(|p| if kind == "gl" { lab_json(p) } else { hub_json(p) })
        .collect();
    Ok(Json(Value::Array(out)))
}

async fn create(kind: &'static str, f: Forge, h: HeaderMap, body: Value) -> Reply {
    if !authorized(&h, kind) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut prs = f.prs.lock().unwrap();
    let (source, target) = if kind == "gl" {
        ("source_branch", "target_branch")
    } else {
        ("head", "base")
    };
    let pr = Pr {
        number: prs.len() as i64 + 1,
        source: body[source].as_str().unwrap().to_string(),
        target: body[target].as_str().unwrap().to_string(),
        title: body["title"].as_str().unwrap().to_string(),
        labels: body["labels"]
            .as_str()
            .map(|l| l.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        state: "open",
        merged: false,
        merge_sha: None,
    };
    prs.push(pr.clone());
    Ok(Json(if kind == "gl" { lab_json(&pr) } else { hub_json(&pr) }))
}

async fn show(kind: &'static str, f: Forge, h: HeaderMap, n: i64) -> Reply {
    if !authorized(&h, kind) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let prs = f.prs.lock().unwrap();
    let pr = prs.iter().find(|p| p.number == n).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(if kind == "gl" { lab_json(pr) } else { hub_json(pr) }))
}

async fn merge(kind: &'static str, f: Forge, h: HeaderMap, n: i64) -> Reply {
    if !authorized(&h, kind) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut prs = f.prs.lock().unwrap();
    let pr = prs.iter_mut().find(|p| p.number == n).ok_or(StatusCode::NOT_FOUND)?;
    if pr.state != "open" {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    f.merge(pr);
    Ok(Json(match kind {
        "gh" => json!({"sha": pr.merge_sha, "merged": true}),
        "gl" => lab_json(pr),
        _ => Value::Null,
    }))
}

fn forge_router(forge: Forge) -> Router {
    type P2 = UrlPath<(String, String)>;
    type P3 = UrlPath<(String, String, i64)>;
    type Q = Query<HashMap<String, String>>;
    Router::new()
        .route(
            "/gh/repos/{o}/{r}/pulls",
            get(|AxState(f): AxState<Forge>, _: P2, h: HeaderMap, Query(q): Q| list("gh", f, h, q))
                .post(|AxState(f): AxState<Forge>, _: P2, h: HeaderMap, Json(b): Json<Value>| create("gh", f, h, b)),
        )
        .route(
            "/gh/repos/{o}/{r}/pulls/{n}",
            get(|AxState(f): AxState<Forge>, UrlPath((_, _, n)): P3, h: HeaderMap| show("gh", f, h, n)),
        )
        .route(
            "/gh/repos/{o}/{r}/pulls/{n}/merge",
            put(|AxState(f): AxState<Forge>, UrlPath((_, _, n)): P3, h: HeaderMap| merge("gh", f, h, n)),
        )
        .route(
            "/gh/repos/{o}/{r}/issues/{n}/labels",
            post(
                |AxState(f): AxState<Forge>, UrlPath((_, _, n)): P3, h: HeaderMap, Json(b): Json<Value>| async move {
                    if !authorized(&h, "gh") {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    let mut prs = f.prs.lock().unwrap();
                    let pr = prs.iter_mut().find(|p| p.number == n).ok_or(StatusCode::NOT_FOUND)?;
                    pr.labels = b["labels"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| l.as_str().unwrap().to_string())
                        .collect();
                    Ok::<_, StatusCode>(Json(json!([])))
                },
            ),
        )
        .route(
            "/gl/projects/{id}/merge_requests",
            get(|AxState(f): AxState<Forge>, _: UrlPath<String>, h: HeaderMap, Query(q): Q| list("gl", f, h, q)).post(
                |AxState(f): AxState<Forge>, _: UrlPath<String>, h: HeaderMap, Json(b): Json<Value>| {
                    create("gl", f, h, b)
                },
            ),
        )
        .route(
            "/gl/projects/{id}/merge_requests/{n}",
            get(
                |AxState(f): AxState<Forge>, UrlPath((_, n)): UrlPath<(String, i64)>, h: HeaderMap| show("gl", f, h, n),
            ),
        )
        .route(
            "/gl/projects/{id}/merge_requests/{n}/merge",
            put(
                |AxState(f): AxState<Forge>, UrlPath((_, n)): UrlPath<(String, i64)>, h: HeaderMap| {
                    merge("gl", f, h, n)
                },
            ),
        )
        .route(
            "/gt/repos/{o}/{r}/pulls",
            get(|AxState(f): AxState<Forge>, _: P2, h: HeaderMap, Query(q): Q| list("gt", f, h, q))
                .post(|AxState(f): AxState<Forge>, _: P2, h: HeaderMap, Json(b): Json<Value>| create("gt", f, h, b)),
        )
        .route(
            "/gt/repos/{o}/{r}/pulls/{n}",
            get(|AxState(f): AxState<Forge>, UrlPath((_, _, n)): P3, h: HeaderMap| show("gt", f, h, n)),
        )
        .route(
            "/gt/repos/{o}/{r}/pulls/{n}/merge",
            post(|AxState(f): AxState<Forge>, UrlPath((_, _, n)): P3, h: HeaderMap| merge("gt", f, h, n)),
        )
        .with_state(forge)
}

fn seed(root: &Path) -> PathBuf {
    git_kit::bare_repo(
        root,
        "acme/config.git",
        &[(
            "env/dev/kustomization.yaml",
            "images:\n  - name: ghcr.io/acme/app\n    newTag: 1.0.0\n",
        )],
    )
}

async fn start(root: &Path) -> (Forge, u16) {
    let forge = Forge {
        prs: Arc::new(Mutex::new(Vec::new())),
        bare: seed(root),
        scratch: root.join("scratch"),
    };
    std::fs::create_dir_all(&forge.scratch).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = forge_router(forge.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (forge, port)
}

fn engine(root: &Path, port: u16, prefix: &str) -> Engine {
    let mut e = support::engine(root, vec![support::rewrite_to_dir("https://forge.example.com/", root)]);
    e.credentials = Arc::new(|_| {
        Some(Credentials {
            username: "bot".into(),
            password: TOKEN.into(),
        })
    });
    e.pr_apis = vec![(
        "https://forge.example.com/".into(),
        format!("http://127.0.0.1:{port}/{prefix}"),
    )];
    e
}

fn promotion(yaml: &str) -> Promotion {
    support::plan(yaml, "dev", support::image_freight("ghcr.io/acme/app", "1.2.0"))
}

const PR_FLOW: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  vars:
    - {name: repo, value: "https://forge.example.com/acme/config.git"}
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: ${{ vars.repo }}
            checkout: [{branch: main, path: ./src}]
        - uses: kustomize-set-image
          config: {path: ./src/env/dev, images: [{image: ghcr.io/acme/app}]}
        - uses: git-commit
          config: {path: ./src, message: "Promote ${{ ctx.targetFreight.alias }}"}
        - uses: git-push
          as: push
          config: {path: ./src, generateTargetBranch: true}
        - uses: git-open-pr
          as: open-pr
          config:
            repoURL: ${{ vars.repo }}
            provider: PROVIDER
            sourceBranch: ${{ outputs.push.branch }}
            targetBranch: main
            labels: [kargo, dev]
        - uses: git-open-pr
          as: open-again
          config:
            repoURL: ${{ vars.repo }}
            provider: PROVIDER
            sourceBranch: ${{ outputs.push.branch }}
            targetBranch: main
        - uses: git-merge-pr
          config: {repoURL: "${{ vars.repo }}", provider: PROVIDER, prNumber: "${{ outputs['open-pr'].pr.id }}"}
        - uses: git-wait-for-pr
          as: wait
          config: {repoURL: "${{ vars.repo }}", provider: PROVIDER, prNumber: "${{ outputs['open-pr'].pr.id }}"}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn open_merge_and_wait_on_github_gitlab_and_gitea() {
    for (provider, prefix) in [("github", "gh"), ("gitlab", "gl"), ("gitea", "gt")] {
        let dir = tempfile::tempdir().unwrap();
        let (forge, port) = start(dir.path()).await;
        let e = engine(dir.path(), port, prefix);
        let p = promotion(&PR_FLOW.replace("PROVIDER", provider));
        let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
        assert_eq!(out.phase, Phase::Succeeded, "{provider}: {}", out.message);
        let prs = forge.prs.lock().unwrap().clone();
        assert_eq!(prs.len(), 1, "{provider}: the second git-open-pr reused the open PR");
        assert_eq!(out.state.outputs["open-again"]["pr"]["id"], 1);
        assert_eq!(prs[0].source, format!("kargo/promotion/{}", p.name));
        if provider != "gitea" {
            assert_eq!(prs[0].labels, vec!["kargo", "dev"], "{provider}");
        }
        assert!(prs[0].merged);
        // The merge landed on main for real, and the wait step reports its commit.
        let main = git(&forge.bare, &["rev-parse", "main"]);
        assert_eq!(out.state.outputs["wait"]["commit"], main.as_str(), "{provider}");
        assert!(git(&forge.bare, &["show", "main:env/dev/kustomization.yaml"]).contains("newTag: 1.2.0"));
    }
}

/// Steps of Stage dev (support::dev_stage).
const WAIT_ONLY: &str = r#"
        - uses: git-wait-for-pr
          as: wait
          retry: {timeout: 30s}
          config: {repoURL: "https://forge.example.com/acme/config.git", provider: github, prNumber: 1}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_a_human_merge_and_a_closed_pr() {
    let dir = tempfile::tempdir().unwrap();
    let (forge, port) = start(dir.path()).await;
    git(&forge.bare, &["branch", "feature", "main"]);
    let pr = Pr {
        number: 1,
        source: "feature".into(),
        target: "main".into(),
        title: "t".into(),
        labels: Vec::new(),
        state: "open",
        merged: false,
        merge_sha: None,
    };
    forge.prs.lock().unwrap().push(pr);
    // A reviewer merges it a little later.
    let f2 = forge.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut prs = f2.prs.lock().unwrap();
        f2.merge(&mut prs[0]);
    });
    let e = engine(dir.path(), port, "gh");
    let p = promotion(&support::dev_stage(WAIT_ONLY));
    let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        out.state.outputs["wait"]["commit"],
        git(&forge.bare, &["rev-parse", "main"]).as_str()
    );

    // Closed without merging: a business failure.
    {
        let mut prs = forge.prs.lock().unwrap();
        prs[0].state = "closed";
        prs[0].merged = false;
    }
    let out = e
        .run(
            &promotion(&support::dev_stage(WAIT_ONLY)),
            State::new(&p.steps),
            &support::Quiet,
            &support::Quiet,
        )
        .await;
    assert_eq!(out.phase, Phase::Failed);
    assert!(out.message.contains("closed without being merged"), "{}", out.message);

    // A wrong token: a clear error naming the fix, without the token.
    let mut bad = engine(dir.path(), port, "gh");
    bad.credentials = Arc::new(|_| {
        Some(Credentials {
            username: "bot".into(),
            password: "wrong-token-9".into(),
        })
    });
    let out = bad
        .run(
            &promotion(&support::dev_stage(WAIT_ONLY)),
            State::new(&p.steps),
            &support::Quiet,
            &support::Quiet,
        )
        .await;
    assert_eq!(out.phase, Phase::Errored);
    assert!(
        out.message.contains("401") && out.message.contains("check the token"),
        "{}",
        out.message
    );
    assert!(!out.message.contains("wrong-token-9"));
}

/// Issue #18: a merge a webhook announces (the daemon's GitHub receiver wakes the PR's web
/// URL) is seen at once, not at the next poll an hour away.
#[tokio::test(flavor = "multi_thread")]
async fn a_wake_up_rechecks_a_waiting_pr_before_its_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let (forge, port) = start(dir.path()).await;
    git(&forge.bare, &["branch", "feature", "main"]);
    forge.prs.lock().unwrap().push(Pr {
        number: 1,
        source: "feature".into(),
        target: "main".into(),
        title: "t".into(),
        labels: Vec::new(),
        state: "open",
        merged: false,
        merge_sha: None,
    });
    let mut e = engine(dir.path(), port, "gh");
    e.poll_interval = Duration::from_secs(3600);
    let p = promotion(&support::dev_stage(WAIT_ONLY));
    // The PR's web URL as the forge answers it (hub_json), which GitHub's webhook sends.
    let url = "http://forge/pulls/1";
    let merge_and_announce = async {
        while !e.wakeups.is_waited_on(url) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        {
            let mut prs = forge.prs.lock().unwrap();
            forge.merge(&mut prs[0]);
        }
        assert_eq!(e.wakeups.wake(url), 1, "the step waits on the PR's URL");
    };
    let run = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet);
    let (out, ()) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(run, merge_and_announce) })
        .await
        .expect("the wake-up ended the wait long before the hour's poll");
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        out.state.outputs["wait"]["commit"],
        git(&forge.bare, &["rev-parse", "main"]).as_str()
    );
}
