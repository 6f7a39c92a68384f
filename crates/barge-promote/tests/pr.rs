//! PR steps against a test forge that speaks the GitHub, GitLab, Gitea, Azure DevOps (REST
//! 7.1) and Bitbucket Cloud (REST 2.0) calls barge uses, as those APIs answer them, and
//! merges for real in a bare repository (git CLI).

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
    use base64::Engine as _;
    let basic = |user: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{TOKEN}"))
        )
    };
    let want = match kind {
        "gh" => format!("Bearer {TOKEN}"),
        "gt" => format!("token {TOKEN}"),
        // Azure DevOps: a personal access token as basic auth's password, any user name.
        "az" => basic(""),
        // Bitbucket: the account's token with the account (the credentials' user, `bot`).
        "bb" => basic("bot"),
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

/// Azure DevOps' GitPullRequest (the fields barge reads, and the ones beside them it ignores).
fn az_json(f: &Forge, pr: &Pr) -> Value {
    let status = if pr.merged {
        "completed"
    } else if pr.state == "open" {
        "active"
    } else {
        "abandoned"
    };
    let source_head = git(&f.bare, &["rev-parse", &format!("refs/heads/{}", pr.source)]);
    json!({"pullRequestId": pr.number, "status": status, "title": pr.title,
           "sourceRefName": format!("refs/heads/{}", pr.source), "targetRefName": format!("refs/heads/{}", pr.target),
           "labels": pr.labels.iter().map(|l| json!({"name": l, "active": true})).collect::<Vec<_>>(),
           "lastMergeSourceCommit": {"commitId": source_head},
           "lastMergeCommit": pr.merge_sha.as_ref().map(|sha| json!({"commitId": sha})),
           "url": format!("http://forge/_apis/git/repositories/config/pullRequests/{}", pr.number),
           "repository": {"name": "config", "webUrl": "http://forge/acme/shop/_git/config"}})
}

/// Bitbucket Cloud's pull request: its merge commit's hash abbreviated to 12 characters, as
/// Bitbucket answers it.
fn bb_json(pr: &Pr) -> Value {
    let state = if pr.merged {
        "MERGED"
    } else if pr.state == "open" {
        "OPEN"
    } else {
        "DECLINED"
    };
    json!({"id": pr.number, "state": state, "title": pr.title,
           "source": {"branch": {"name": pr.source}}, "destination": {"branch": {"name": pr.target}},
           "merge_commit": pr.merge_sha.as_ref().map(|sha| json!({"hash": &sha[..12]})),
           "links": {"html": {"href": format!("http://forge/acme/config/pull-requests/{}", pr.number)}}})
}

/// A pull request as `kind`'s API answers it.
fn pr_json(kind: &str, f: &Forge, pr: &Pr) -> Value {
    match kind {
        "gl" => lab_json(pr),
        "az" => az_json(f, pr),
        "bb" => bb_json(pr),
        _ => hub_json(pr),
    }
}

/// Bitbucket's `q` filter as barge writes it: `field = "value"` terms joined by ` AND `.
fn bb_query(q: &str) -> HashMap<String, String> {
    q.split(" AND ")
        .filter_map(|term| term.split_once(" = "))
        .map(|(field, value)| (field.trim().to_string(), value.trim().trim_matches('"').to_string()))
        .collect()
}

type Reply = Result<Json<Value>, StatusCode>;

async fn list(kind: &'static str, f: Forge, h: HeaderMap, q: HashMap<String, String>) -> Reply {
    if !authorized(&h, kind) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    if kind == "az" && q.get("api-version").map(String::as_str) != Some("7.1") {
        return Err(StatusCode::BAD_REQUEST);
    }
    let bb = bb_query(q.get("q").map_or("", String::as_str));
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
            "az" => {
                (q.get("searchCriteria.status").map(String::as_str) != Some("active") || p.state == "open")
                    && q.get("searchCriteria.sourceRefName")
                        .is_none_or(|s| *s == format!("refs/heads/{}", p.source))
                    && q.get("searchCriteria.targetRefName")
                        .is_none_or(|t| *t == format!("refs/heads/{}", p.target))
            }
            "bb" => {
                (q.get("state").map(String::as_str) != Some("OPEN") || p.state == "open")
                    && bb.get("source.branch.name").is_none_or(|s| *s == p.source)
                    && bb.get("destination.branch.name").is_none_or(|t| *t == p.target)
            }
            _ => p.state == "open",
        })
        .map(|p| pr_json(kind, &f, p))
        .collect();
    Ok(Json(match kind {
        "az" => json!({"count": out.len(), "value": out}),
        "bb" => json!({"pagelen": 50, "size": out.len(), "page": 1, "values": out}),
        _ => Value::Array(out),
    }))
}

async fn create(kind: &'static str, f: Forge, h: HeaderMap, q: HashMap<String, String>, body: Value) -> Reply {
    if !authorized(&h, kind) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    if kind == "az" && q.get("api-version").map(String::as_str) != Some("7.1") {
        return Err(StatusCode::BAD_REQUEST);
    }
    let mut prs = f.prs.lock().unwrap();
    let branch = |pointer: &str| {
        let name = body
            .pointer(pointer)
            .and_then(Value::as_str)
            .ok_or(StatusCode::BAD_REQUEST)?;
        Ok::<_, StatusCode>(name.strip_prefix("refs/heads/").unwrap_or(name).to_string())
    };
    let (source, target) = match kind {
        "gl" => (branch("/source_branch")?, branch("/target_branch")?),
        "az" => (branch("/sourceRefName")?, branch("/targetRefName")?),
        "bb" => (branch("/source/branch/name")?, branch("/destination/branch/name")?),
        _ => (branch("/head")?, branch("/base")?),
    };
    let labels = match &body["labels"] {
        Value::String(l) => l.split(',').map(str::to_string).collect(),
        Value::Array(l) => l
            .iter()
            .filter_map(|l| l["name"].as_str())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let pr = Pr {
        number: prs.len() as i64 + 1,
        source,
        target,
        title: body["title"].as_str().unwrap().to_string(),
        labels,
        state: "open",
        merged: false,
        merge_sha: None,
    };
    prs.push(pr.clone());
    Ok(Json(pr_json(kind, &f, &pr)))
}

async fn show(kind: &'static str, f: Forge, h: HeaderMap, q: HashMap<String, String>, n: i64) -> Reply {
    if !authorized(&h, kind) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    if kind == "az" && q.get("api-version").map(String::as_str) != Some("7.1") {
        return Err(StatusCode::BAD_REQUEST);
    }
    let prs = f.prs.lock().unwrap();
    let pr = prs.iter().find(|p| p.number == n).ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(pr_json(kind, &f, pr)))
}

/// A merge: GitHub's PUT, GitLab's PUT, Gitea's and Bitbucket's POST (`merge_strategy`), Azure
/// DevOps' PATCH to `status: completed` naming the source commit it merges (another is 409).
async fn merge(kind: &'static str, f: Forge, h: HeaderMap, n: i64, body: Value) -> Reply {
    if !authorized(&h, kind) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut prs = f.prs.lock().unwrap();
    let pr = prs.iter_mut().find(|p| p.number == n).ok_or(StatusCode::NOT_FOUND)?;
    match kind {
        "az" if body["status"] != "completed"
            || !matches!(
                body["completionOptions"]["mergeStrategy"].as_str(),
                None | Some("noFastForward")
            ) =>
        {
            return Err(StatusCode::BAD_REQUEST);
        }
        "az" if body["lastMergeSourceCommit"]["commitId"].as_str()
            != Some(git(&f.bare, &["rev-parse", &format!("refs/heads/{}", pr.source)]).as_str()) =>
        {
            return Err(StatusCode::CONFLICT);
        }
        "bb" if !matches!(body["merge_strategy"].as_str(), None | Some("merge_commit")) => {
            return Err(StatusCode::BAD_REQUEST);
        }
        _ => {}
    }
    if pr.state != "open" {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    f.merge(pr);
    Ok(Json(match kind {
        "gh" => json!({"sha": pr.merge_sha, "merged": true}),
        "gl" | "az" | "bb" => pr_json(kind, &f, pr),
        _ => Value::Null,
    }))
}

/// Each API's routes, under a prefix per kind (`gh`, `gl`, `gt`, `az`, `bb`).
fn forge_router(forge: Forge) -> Router {
    type Q = Query<HashMap<String, String>>;
    type Params = UrlPath<HashMap<String, String>>;
    fn number(p: &HashMap<String, String>) -> i64 {
        p["n"].parse().unwrap_or(-1)
    }
    let mut router = Router::new();
    for (kind, pulls) in [
        ("gh", "/gh/repos/{o}/{r}/pulls"),
        ("gl", "/gl/projects/{id}/merge_requests"),
        ("gt", "/gt/repos/{o}/{r}/pulls"),
        ("az", "/az/{org}/{project}/_apis/git/repositories/{repo}/pullrequests"),
        ("bb", "/bb/repositories/{ws}/{repo}/pullrequests"),
    ] {
        router = router.route(
            pulls,
            get(move |AxState(f): AxState<Forge>, h: HeaderMap, Query(q): Q| list(kind, f, h, q)).post(
                move |AxState(f): AxState<Forge>, h: HeaderMap, Query(q): Q, Json(b): Json<Value>| {
                    create(kind, f, h, q, b)
                },
            ),
        );
        let show_one = get(
            move |AxState(f): AxState<Forge>, UrlPath(p): Params, h: HeaderMap, Query(q): Q| {
                show(kind, f, h, q, number(&p))
            },
        );
        let merge_one = move |AxState(f): AxState<Forge>, UrlPath(p): Params, h: HeaderMap, Json(b): Json<Value>| {
            merge(kind, f, h, number(&p), b)
        };
        let one = format!("{pulls}/{{n}}");
        let merge_at = format!("{one}/merge");
        router = match kind {
            "az" => router.route(&one, show_one.patch(merge_one)),
            "gh" | "gl" => router.route(&one, show_one).route(&merge_at, put(merge_one)),
            _ => router.route(&one, show_one).route(&merge_at, post(merge_one)),
        };
    }
    router
        .route(
            "/gh/repos/{o}/{r}/issues/{n}/labels",
            post(
                |AxState(f): AxState<Forge>, UrlPath(p): Params, h: HeaderMap, Json(b): Json<Value>| async move {
                    if !authorized(&h, "gh") {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    let mut prs = f.prs.lock().unwrap();
                    let pr = prs
                        .iter_mut()
                        .find(|pr| pr.number == number(&p))
                        .ok_or(StatusCode::NOT_FOUND)?;
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
        // Bitbucket's commit resource: the whole hash of an abbreviated one.
        .route(
            "/bb/repositories/{ws}/{repo}/commit/{rev}",
            get(
                |AxState(f): AxState<Forge>, UrlPath(p): Params, h: HeaderMap| async move {
                    if !authorized(&h, "bb") {
                        return Err(StatusCode::UNAUTHORIZED);
                    }
                    let full = git(&f.bare, &["rev-parse", "--verify", &format!("{}^{{commit}}", p["rev"])]);
                    Ok::<_, StatusCode>(Json(json!({"hash": full, "type": "commit"})))
                },
            ),
        )
        .with_state(forge)
}

fn seed(root: &Path, repo: &str) -> PathBuf {
    git_kit::bare_repo(
        root,
        repo,
        &[(
            "env/dev/kustomization.yaml",
            "images:\n  - name: ghcr.io/acme/app\n    newTag: 1.0.0\n",
        )],
    )
}

async fn start(root: &Path) -> (Forge, u16) {
    start_at(root, "acme/config.git").await
}

/// The forge, its repository at `repo` (a path under the URL https://forge.example.com/).
async fn start_at(root: &Path, repo: &str) -> (Forge, u16) {
    let forge = Forge {
        prs: Arc::new(Mutex::new(Vec::new())),
        bare: seed(root, repo),
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

/// Issue #20: Azure DevOps (`ORG/PROJECT/_git/REPO`) and Bitbucket Cloud too. Bitbucket has
/// no labels (the flow sets none there) and abbreviates the merge commit's hash, which the
/// `commit` output still gives whole.
#[tokio::test(flavor = "multi_thread")]
async fn open_merge_and_wait_on_github_gitlab_gitea_azure_devops_and_bitbucket() {
    for (provider, prefix, repo) in [
        ("github", "gh", "acme/config.git"),
        ("gitlab", "gl", "acme/config.git"),
        ("gitea", "gt", "acme/config.git"),
        ("azure", "az", "acme/shop/_git/config"),
        ("bitbucket", "bb", "acme/config.git"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (forge, port) = start_at(dir.path(), repo).await;
        let e = engine(dir.path(), port, prefix);
        let mut flow = PR_FLOW.replace("PROVIDER", provider).replace("acme/config.git", repo);
        if provider == "bitbucket" {
            flow = flow.replace("            labels: [kargo, dev]\n", "");
        }
        let p = promotion(&flow);
        let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
        assert_eq!(out.phase, Phase::Succeeded, "{provider}: {}", out.message);
        let prs = forge.prs.lock().unwrap().clone();
        assert_eq!(prs.len(), 1, "{provider}: the second git-open-pr reused the open PR");
        assert_eq!(out.state.outputs["open-again"]["pr"]["id"], 1);
        assert_eq!(prs[0].source, format!("kargo/promotion/{}", p.name));
        if !matches!(provider, "gitea" | "bitbucket") {
            assert_eq!(prs[0].labels, vec!["kargo", "dev"], "{provider}");
        }
        let web = match provider {
            "azure" => "http://forge/acme/shop/_git/config/pullrequest/1",
            "bitbucket" => "http://forge/acme/config/pull-requests/1",
            _ => "",
        };
        if !web.is_empty() {
            assert_eq!(out.state.outputs["wait"]["pr"]["url"], web, "{provider}");
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

/// An Azure DevOps pull request abandoned (closed unmerged) fails the wait; labels on
/// Bitbucket Cloud, which has none, fail git-open-pr before anything is opened (validation
/// reports them too when the provider is written; here it comes from an expression).
#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_azure_pr_fails_the_wait_and_bitbucket_labels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (forge, port) = start_at(dir.path(), "acme/shop/_git/config").await;
    git(&forge.bare, &["branch", "feature", "main"]);
    forge.prs.lock().unwrap().push(Pr {
        number: 1,
        source: "feature".into(),
        target: "main".into(),
        title: "t".into(),
        labels: Vec::new(),
        state: "closed",
        merged: false,
        merge_sha: None,
    });
    let e = engine(dir.path(), port, "az");
    let p = promotion(&support::dev_stage(
        r#"
        - uses: git-wait-for-pr
          config: {repoURL: "https://forge.example.com/acme/shop/_git/config", provider: azure, prNumber: 1}
"#,
    ));
    let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
    assert_eq!(out.phase, Phase::Failed, "{}", out.message);
    assert!(
        out.message
            .contains("PR #1 (http://forge/acme/shop/_git/config/pullrequest/1) was closed without being merged"),
        "{}",
        out.message
    );

    let root = dir.path().join("bitbucket");
    let (forge, port) = start_at(&root, "acme/config.git").await;
    let e = engine(&root, port, "bb");
    let p = promotion(&support::dev_stage(
        r#"
        - uses: git-open-pr
          config:
            repoURL: https://forge.example.com/acme/config.git
            provider: "${{ 'bitbucket' }}"
            sourceBranch: feature
            labels: [kargo]
"#,
    ));
    let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
    assert_eq!(out.phase, Phase::Errored, "{}", out.message);
    assert!(
        out.message
            .contains("Bitbucket Cloud pull requests have no labels; remove `labels`"),
        "{}",
        out.message
    );
    assert!(forge.prs.lock().unwrap().is_empty());
}
