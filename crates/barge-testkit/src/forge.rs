//! A test forge: the pull-request calls barge's PR steps make to GitHub, GitLab and Gitea,
//! answered as their documented REST APIs answer them, over real bare repositories. A merge
//! (through the API or by a "reviewer", [`TestForge::merge`]) merges for real with the git CLI,
//! so a `git clone` afterwards sees it. It is not a forge: it answers the requests barge makes,
//! no others.
//!
//! - GitHub under `/gh` (<https://docs.github.com/en/rest/pulls/pulls>): list open PRs
//!   (`head=owner:branch`, `base`), create, get, merge (`PUT …/merge`), labels (issues API).
//!   Authorization `Bearer <token>`.
//! - GitLab under `/gl` (<https://docs.gitlab.com/api/merge_requests/>): merge requests by
//!   `iid` of the URL-encoded project path. `PRIVATE-TOKEN: <token>`.
//! - Gitea under `/gt` (<https://docs.gitea.com/api/>): GitHub's paths, merge by `POST`.
//!   Authorization `token <token>`.
//!
//! A request without the token is answered 401, one for a repository the forge does not hold
//! 404. The web URLs (`html_url`, `web_url`) are the forge's own address, in each forge's
//! form: `…/acme/config/pull/1` (GitHub), `…/acme/config/-/merge_requests/1` (GitLab),
//! `…/acme/config/pulls/1` (Gitea). [`TestForge::pull_request_event`] is GitHub's
//! `pull_request` webhook payload for a PR as it stands
//! (<https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request>).

use crate::git::git;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Which forge's API a request speaks: the first segment of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    GitHub,
    GitLab,
    Gitea,
}

impl Flavor {
    /// The path prefix the forge serves this API under.
    pub fn prefix(self) -> &'static str {
        match self {
            Flavor::GitHub => "gh",
            Flavor::GitLab => "gl",
            Flavor::Gitea => "gt",
        }
    }
}

/// A pull (merge) request.
#[derive(Clone, Debug, PartialEq)]
pub struct Pr {
    pub number: i64,
    pub source: String,
    pub target: String,
    pub title: String,
    pub labels: Vec<String>,
    /// `open` or `closed`.
    pub state: &'static str,
    pub merged: bool,
    pub merge_sha: Option<String>,
}

/// A running test forge; it stops with the test's runtime.
#[derive(Clone)]
pub struct TestForge {
    /// e.g. `http://127.0.0.1:41234`: web URLs start with it, and each API is below it
    /// ([`TestForge::api`]).
    pub url: String,
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    token: String,
    /// Per repository (`owner/name`): its PRs, numbered from 1.
    repos: Mutex<BTreeMap<String, Vec<Pr>>>,
    /// `METHOD /path` of every request, in order.
    calls: Mutex<Vec<String>>,
}

impl TestForge {
    /// Starts the forge on a loopback port; its repositories are `root/<owner>/<name>.git`
    /// ([`TestForge::create_repo`]) and requests must carry `token`.
    pub async fn start(root: &Path, token: &str) -> TestForge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let forge = TestForge {
            url: format!("http://{}", listener.local_addr().expect("an address")),
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                token: token.to_string(),
                repos: Mutex::new(BTreeMap::new()),
                calls: Mutex::new(Vec::new()),
            }),
        };
        let app = router(forge.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the forge serves") });
        forge
    }

    /// Makes the repository `owner/name` (a bare repository at `root/owner/name.git` whose
    /// `main` holds `files`), and returns its path.
    pub fn create_repo(&self, repo: &str, files: &[(&str, &str)]) -> PathBuf {
        let bare = crate::git::bare_repo(&self.inner.root, &format!("{repo}.git"), files);
        self.inner.repos.lock().unwrap().insert(repo.to_string(), Vec::new());
        bare
    }

    /// The bare repository of `owner/name`.
    pub fn bare(&self, repo: &str) -> PathBuf {
        self.inner.root.join(format!("{repo}.git"))
    }

    /// The API base of a flavor, barge's `git.prAPIs` URL: e.g. `http://127.0.0.1:41234/gh`.
    pub fn api(&self, flavor: Flavor) -> String {
        format!("{}/{}", self.url, flavor.prefix())
    }

    /// The web URL of a PR, as `flavor`'s API answers it.
    pub fn web_url(&self, flavor: Flavor, repo: &str, number: i64) -> String {
        match flavor {
            Flavor::GitHub => format!("{}/{repo}/pull/{number}", self.url),
            Flavor::GitLab => format!("{}/{repo}/-/merge_requests/{number}", self.url),
            Flavor::Gitea => format!("{}/{repo}/pulls/{number}", self.url),
        }
    }

    /// The PRs of `repo`, oldest first.
    pub fn prs(&self, repo: &str) -> Vec<Pr> {
        self.inner.repos.lock().unwrap().get(repo).cloned().unwrap_or_default()
    }

    /// Opens a PR from `source` to `target` as a person would in the forge's UI; its number.
    pub fn open_pr(&self, repo: &str, source: &str, target: &str, title: &str) -> i64 {
        let mut repos = self.inner.repos.lock().unwrap();
        let prs = repos.get_mut(repo).expect("a repository of the forge");
        let number = prs.len() as i64 + 1;
        prs.push(Pr {
            number,
            source: source.into(),
            target: target.into(),
            title: title.into(),
            labels: Vec::new(),
            state: "open",
            merged: false,
            merge_sha: None,
        });
        number
    }

    /// Merges an open PR as the forge's merge button does: `source` merged into `target`
    /// (`--no-ff`) in the bare repository; the PR is then closed and merged.
    pub fn merge(&self, repo: &str, number: i64) {
        let mut repos = self.inner.repos.lock().unwrap();
        let pr = repos
            .get_mut(repo)
            .and_then(|prs| prs.iter_mut().find(|p| p.number == number))
            .expect("an open PR");
        merge_for_real(&self.inner.root, &self.bare(repo), pr);
    }

    /// Closes a PR without merging it.
    pub fn close(&self, repo: &str, number: i64) {
        let mut repos = self.inner.repos.lock().unwrap();
        let pr = repos
            .get_mut(repo)
            .and_then(|prs| prs.iter_mut().find(|p| p.number == number))
            .expect("a PR");
        pr.state = "closed";
    }

    /// `METHOD /path` of every request so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// The body GitHub sends with a `pull_request` event (header `X-GitHub-Event:
    /// pull_request`) about the PR as it stands: action `closed` once it is closed (merged
    /// or not), else `opened`. The documented payload, cut to the PR, repository and sender
    /// fields a receiver reads.
    pub fn pull_request_event(&self, repo: &str, number: i64) -> Value {
        let pr = self
            .prs(repo)
            .into_iter()
            .find(|p| p.number == number)
            .expect("a PR of the repository");
        let (owner, name) = repo.split_once('/').expect("owner/name");
        json!({
            "action": if pr.state == "closed" { "closed" } else { "opened" },
            "number": pr.number,
            "pull_request": hub_json(self, Flavor::GitHub, repo, &pr),
            "repository": {
                "name": name,
                "full_name": repo,
                "owner": {"login": owner, "type": "Organization"},
                "private": false,
                "html_url": format!("{}/{repo}", self.url),
                "url": format!("{}/repos/{repo}", self.api(Flavor::GitHub)),
                "clone_url": format!("{}/{repo}.git", self.url),
                "default_branch": "main",
            },
            "sender": {"login": "reviewer", "type": "User"},
        })
    }

    fn call(&self, method: &str, path: &str) {
        self.inner.calls.lock().unwrap().push(format!("{method} {path}"));
    }

    fn authorized(&self, h: &HeaderMap, flavor: Flavor) -> bool {
        let token = &self.inner.token;
        let (header, want) = match flavor {
            Flavor::GitHub => ("Authorization", format!("Bearer {token}")),
            Flavor::GitLab => ("PRIVATE-TOKEN", token.clone()),
            Flavor::Gitea => ("Authorization", format!("token {token}")),
        };
        h.get(header).and_then(|v| v.to_str().ok()) == Some(want.as_str())
    }
}

fn merge_for_real(scratch: &Path, bare: &Path, pr: &mut Pr) {
    assert_eq!(pr.state, "open", "only an open PR can be merged");
    let dir = tempfile::Builder::new()
        .prefix("forge-merge-")
        .tempdir_in(scratch)
        .expect("a scratch directory");
    let work = dir.path().join("w");
    git(
        scratch,
        &["clone", "-q", bare.to_str().unwrap(), work.to_str().unwrap()],
    );
    git(&work, &["checkout", "-q", &pr.target]);
    git(
        &work,
        &[
            "merge",
            "-q",
            "--no-ff",
            "-m",
            &format!("Merge pull request #{}", pr.number),
            &format!("origin/{}", pr.source),
        ],
    );
    git(&work, &["push", "-q", "origin", &pr.target]);
    pr.merged = true;
    pr.state = "closed";
    pr.merge_sha = Some(git(&work, &["rev-parse", "HEAD"]));
}

/// A PR as GitHub's (and Gitea's) API answers it.
fn hub_json(forge: &TestForge, flavor: Flavor, repo: &str, pr: &Pr) -> Value {
    json!({
        "url": format!("{}/repos/{repo}/pulls/{}", forge.api(flavor), pr.number),
        "html_url": forge.web_url(flavor, repo, pr.number),
        "number": pr.number,
        "state": pr.state,
        "title": pr.title,
        "merged": pr.merged,
        "merge_commit_sha": pr.merge_sha,
        "head": {"ref": pr.source},
        "base": {"ref": pr.target},
        "labels": pr.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
    })
}

/// A merge request as GitLab's API answers it.
fn lab_json(forge: &TestForge, repo: &str, pr: &Pr) -> Value {
    let state = if pr.merged {
        "merged"
    } else if pr.state == "open" {
        "opened"
    } else {
        "closed"
    };
    json!({
        "iid": pr.number,
        "web_url": forge.web_url(Flavor::GitLab, repo, pr.number),
        "state": state,
        "merge_commit_sha": pr.merge_sha,
        "source_branch": pr.source,
        "target_branch": pr.target,
        "title": pr.title,
        "labels": pr.labels,
    })
}

fn pr_json(forge: &TestForge, flavor: Flavor, repo: &str, pr: &Pr) -> Value {
    match flavor {
        Flavor::GitLab => lab_json(forge, repo, pr),
        _ => hub_json(forge, flavor, repo, pr),
    }
}

type Reply = Result<Json<Value>, StatusCode>;

/// A request's common part: recorded, authorized, and for a repository the forge holds.
fn admit(
    f: &TestForge,
    flavor: Flavor,
    h: &HeaderMap,
    method: &str,
    path: String,
    repo: &str,
) -> Result<(), StatusCode> {
    f.call(method, &path);
    if !f.authorized(h, flavor) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    if !f.inner.repos.lock().unwrap().contains_key(repo) {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(())
}

fn list(f: &TestForge, flavor: Flavor, repo: &str, q: &HashMap<String, String>) -> Value {
    let repos = f.inner.repos.lock().unwrap();
    let out: Vec<Value> = repos[repo]
        .iter()
        .filter(|p| p.state == "open")
        .filter(|p| match flavor {
            Flavor::GitHub => {
                q.get("head").is_none_or(|h| h.ends_with(&format!(":{}", p.source)))
                    && q.get("base").is_none_or(|b| *b == p.target)
            }
            Flavor::GitLab => {
                q.get("source_branch").is_none_or(|s| *s == p.source)
                    && q.get("target_branch").is_none_or(|t| *t == p.target)
            }
            Flavor::Gitea => true,
        })
        .map(|p| pr_json(f, flavor, repo, p))
        .collect();
    Value::Array(out)
}

fn create(f: &TestForge, flavor: Flavor, repo: &str, body: &Value) -> Value {
    let (source, target) = match flavor {
        Flavor::GitLab => ("source_branch", "target_branch"),
        _ => ("head", "base"),
    };
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    let mut repos = f.inner.repos.lock().unwrap();
    let prs = repos.get_mut(repo).expect("admitted");
    let pr = Pr {
        number: prs.len() as i64 + 1,
        source: text(source),
        target: text(target),
        title: text("title"),
        labels: body["labels"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(|l| l.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        state: "open",
        merged: false,
        merge_sha: None,
    };
    prs.push(pr.clone());
    pr_json(f, flavor, repo, &pr)
}

fn show(f: &TestForge, flavor: Flavor, repo: &str, n: i64) -> Reply {
    let repos = f.inner.repos.lock().unwrap();
    let pr = repos[repo]
        .iter()
        .find(|p| p.number == n)
        .ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(pr_json(f, flavor, repo, pr)))
}

fn merge(f: &TestForge, flavor: Flavor, repo: &str, n: i64) -> Reply {
    let mut repos = f.inner.repos.lock().unwrap();
    let pr = repos
        .get_mut(repo)
        .and_then(|prs| prs.iter_mut().find(|p| p.number == n))
        .ok_or(StatusCode::NOT_FOUND)?;
    if pr.state != "open" {
        // GitHub: 405 "Pull Request is not mergeable".
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    merge_for_real(&f.inner.root, &f.bare(repo), pr);
    Ok(Json(match flavor {
        Flavor::GitHub => json!({"sha": pr.merge_sha, "merged": true, "message": "Pull Request successfully merged"}),
        Flavor::GitLab => lab_json(f, repo, pr),
        Flavor::Gitea => Value::Null,
    }))
}

fn router(forge: TestForge) -> Router {
    type Repo = UrlPath<(String, String)>;
    type Numbered = UrlPath<(String, String, i64)>;
    type Q = Query<HashMap<String, String>>;
    let mut app = Router::new();
    for flavor in [Flavor::GitHub, Flavor::Gitea] {
        let p = flavor.prefix();
        app = app
            .route(
                &format!("/{p}/repos/{{o}}/{{r}}/pulls"),
                get(move |State(f): State<TestForge>, UrlPath((o, r)): Repo, h: HeaderMap, Query(q): Q| async move {
                    let repo = format!("{o}/{r}");
                    admit(&f, flavor, &h, "GET", format!("/{p}/repos/{repo}/pulls"), &repo)?;
                    Ok::<_, StatusCode>(Json(list(&f, flavor, &repo, &q)))
                })
                .post(
                    move |State(f): State<TestForge>, UrlPath((o, r)): Repo, h: HeaderMap, Json(b): Json<Value>| async move {
                        let repo = format!("{o}/{r}");
                        admit(&f, flavor, &h, "POST", format!("/{p}/repos/{repo}/pulls"), &repo)?;
                        Ok::<_, StatusCode>((StatusCode::CREATED, Json(create(&f, flavor, &repo, &b))))
                    },
                ),
            )
            .route(
                &format!("/{p}/repos/{{o}}/{{r}}/pulls/{{n}}"),
                get(move |State(f): State<TestForge>, UrlPath((o, r, n)): Numbered, h: HeaderMap| async move {
                    let repo = format!("{o}/{r}");
                    admit(&f, flavor, &h, "GET", format!("/{p}/repos/{repo}/pulls/{n}"), &repo)?;
                    show(&f, flavor, &repo, n)
                }),
            );
        let merge_route = move |State(f): State<TestForge>, UrlPath((o, r, n)): Numbered, h: HeaderMap| async move {
            let repo = format!("{o}/{r}");
            let method = if flavor == Flavor::GitHub { "PUT" } else { "POST" };
            admit(
                &f,
                flavor,
                &h,
                method,
                format!("/{p}/repos/{repo}/pulls/{n}/merge"),
                &repo,
            )?;
            merge(&f, flavor, &repo, n)
        };
        app = app.route(
            &format!("/{p}/repos/{{o}}/{{r}}/pulls/{{n}}/merge"),
            if flavor == Flavor::GitHub {
                put(merge_route)
            } else {
                post(merge_route)
            },
        );
    }
    app.route(
        "/gh/repos/{o}/{r}/issues/{n}/labels",
        post(
            |State(f): State<TestForge>, UrlPath((o, r, n)): Numbered, h: HeaderMap, Json(b): Json<Value>| async move {
                let repo = format!("{o}/{r}");
                admit(&f, Flavor::GitHub, &h, "POST", format!("/gh/repos/{repo}/issues/{n}/labels"), &repo)?;
                let mut repos = f.inner.repos.lock().unwrap();
                let pr = repos
                    .get_mut(&repo)
                    .and_then(|prs| prs.iter_mut().find(|p| p.number == n))
                    .ok_or(StatusCode::NOT_FOUND)?;
                pr.labels = b["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_string))
                    .collect();
                Ok::<_, StatusCode>(Json(json!(pr.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>())))
            },
        ),
    )
    .route(
        "/gl/projects/{id}/merge_requests",
        get(
            |State(f): State<TestForge>, UrlPath(repo): UrlPath<String>, h: HeaderMap, Query(q): Q| async move {
                admit(&f, Flavor::GitLab, &h, "GET", format!("/gl/projects/{repo}/merge_requests"), &repo)?;
                Ok::<_, StatusCode>(Json(list(&f, Flavor::GitLab, &repo, &q)))
            },
        )
        .post(
            |State(f): State<TestForge>, UrlPath(repo): UrlPath<String>, h: HeaderMap, Json(b): Json<Value>| async move {
                admit(&f, Flavor::GitLab, &h, "POST", format!("/gl/projects/{repo}/merge_requests"), &repo)?;
                Ok::<_, StatusCode>((StatusCode::CREATED, Json(create(&f, Flavor::GitLab, &repo, &b))))
            },
        ),
    )
    .route(
        "/gl/projects/{id}/merge_requests/{n}",
        get(
            |State(f): State<TestForge>, UrlPath((repo, n)): UrlPath<(String, i64)>, h: HeaderMap| async move {
                admit(&f, Flavor::GitLab, &h, "GET", format!("/gl/projects/{repo}/merge_requests/{n}"), &repo)?;
                show(&f, Flavor::GitLab, &repo, n)
            },
        ),
    )
    .route(
        "/gl/projects/{id}/merge_requests/{n}/merge",
        put(
            |State(f): State<TestForge>, UrlPath((repo, n)): UrlPath<(String, i64)>, h: HeaderMap| async move {
                admit(&f, Flavor::GitLab, &h, "PUT", format!("/gl/projects/{repo}/merge_requests/{n}/merge"), &repo)?;
                merge(&f, Flavor::GitLab, &repo, n)
            },
        ),
    )
    .with_state(forge)
}
