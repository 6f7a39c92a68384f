//! A test forge: the pull-request calls barge's PR steps make to GitHub, GitLab, Gitea,
//! Azure DevOps and Bitbucket Cloud, answered as their documented REST APIs answer them, over
//! real bare repositories. A merge (through the API or by a "reviewer", [`TestForge::merge`])
//! merges for real with the git CLI, so a `git clone` afterwards sees it. It is not a forge:
//! it answers the requests barge makes, no others.
//!
//! - GitHub under `/gh` (<https://docs.github.com/en/rest/pulls/pulls>): list open PRs
//!   (`head=owner:branch`, `base`), create, get, merge (`PUT …/merge`), labels (issues API).
//!   Authorization `Bearer <token>`.
//! - GitLab under `/gl` (<https://docs.gitlab.com/api/merge_requests/>): merge requests by
//!   `iid` of the URL-encoded project path, labels a comma-separated string.
//!   `PRIVATE-TOKEN: <token>`.
//! - Gitea under `/gt` (<https://docs.gitea.com/api/>): GitHub's paths, merge by `POST`.
//!   Authorization `token <token>`.
//! - Azure DevOps under `/az` (REST 7.1,
//!   <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests>):
//!   `{org}/{project}/_apis/git/repositories/{repo}/pullrequests`, every call with
//!   `api-version=7.1` (else 400); a list is `{count, value}` filtered by
//!   `searchCriteria.{status,sourceRefName,targetRefName}`; labels `[{name}]` at creation;
//!   completing is a `PATCH` to `status: completed` naming the reviewed source commit
//!   (`lastMergeSourceCommit`; another is 409, a merge strategy but `noFastForward` 400).
//!   `status` is `active`, `completed` (merged) or `abandoned` (closed). Basic auth with the
//!   token as password and an empty user name.
//! - Bitbucket Cloud under `/bb` (REST 2.0,
//!   <https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/>):
//!   `repositories/{workspace}/{repo}/pullrequests`, a list is a page `{values}` filtered by
//!   `state` and a `q` of `field = "value"` terms joined by ` AND `; no labels; merge by
//!   `POST …/merge` (`merge_strategy` but `merge_commit` is 400); `state` is `OPEN`, `MERGED`
//!   or `DECLINED` (closed), and `merge_commit.hash` is abbreviated to 12 characters, which
//!   `commit/{rev}` answers whole. Basic auth `<ACCOUNT>:<token>` ([`ACCOUNT`]).
//!
//! A request without the token is answered 401, one for a repository the forge does not hold
//! 404. A repository is named by its path on the forge: `owner/name`, and for Azure DevOps
//! `org/project/_git/repo` (its bare repository is that path plus `.git`, which git finds for
//! a clone URL without the suffix). The web URLs are the forge's own address, in each
//! forge's form: `…/acme/config/pull/1` (GitHub), `…/acme/config/-/merge_requests/1`
//! (GitLab), `…/acme/config/pulls/1` (Gitea), `…/acme/shop/_git/config/pullrequest/1`
//! (Azure DevOps), `…/acme/config/pull-requests/1` (Bitbucket).
//! [`TestForge::pull_request_event`] is each forge's webhook payload about a PR as it stands
//! (merged, closed or open), and [`TestForge::pull_request_delivery`] that payload with the
//! headers and signature the forge sends it with.

use crate::git::git;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{MethodRouter, get, patch, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The account Bitbucket Cloud's basic auth must name beside the token.
pub const ACCOUNT: &str = "bot";

/// Which forge's API a request speaks: the first segment of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    GitHub,
    GitLab,
    Gitea,
    /// Azure DevOps Services, REST 7.1.
    AzureDevOps,
    /// Bitbucket Cloud, REST 2.0.
    Bitbucket,
}

impl Flavor {
    /// Every flavor the forge serves.
    pub const ALL: [Flavor; 5] = [
        Flavor::GitHub,
        Flavor::GitLab,
        Flavor::Gitea,
        Flavor::AzureDevOps,
        Flavor::Bitbucket,
    ];

    /// The path prefix the forge serves this API under.
    pub fn prefix(self) -> &'static str {
        match self {
            Flavor::GitHub => "gh",
            Flavor::GitLab => "gl",
            Flavor::Gitea => "gt",
            Flavor::AzureDevOps => "az",
            Flavor::Bitbucket => "bb",
        }
    }

    /// The route of a repository's pull requests.
    fn pulls_route(self) -> &'static str {
        match self {
            Flavor::GitHub => "/gh/repos/{o}/{r}/pulls",
            Flavor::GitLab => "/gl/projects/{id}/merge_requests",
            Flavor::Gitea => "/gt/repos/{o}/{r}/pulls",
            Flavor::AzureDevOps => "/az/{org}/{project}/_apis/git/repositories/{repo}/pullrequests",
            Flavor::Bitbucket => "/bb/repositories/{o}/{r}/pullrequests",
        }
    }

    /// The repository a route's parameters name.
    fn repo(self, p: &HashMap<String, String>) -> String {
        match self {
            Flavor::GitLab => p["id"].clone(),
            Flavor::AzureDevOps => format!("{}/{}/_git/{}", p["org"], p["project"], p["repo"]),
            _ => format!("{}/{}", p["o"], p["r"]),
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
    /// False while the forge would refuse to merge it (checks pending, a conflict):
    /// [`TestForge::block`].
    pub mergeable: bool,
}

/// A running test forge; it stops when the test's runtime shuts down.
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
        let (listener, addr) = crate::runtime::loopback_listener();
        let forge = TestForge {
            url: format!("http://{addr}"),
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                token: token.to_string(),
                repos: Mutex::new(BTreeMap::new()),
                calls: Mutex::new(Vec::new()),
            }),
        };
        // On a runtime of its own (its handlers run git synchronously, and a test may block),
        // stopped when the test's runtime shuts down.
        crate::runtime::serve("test-forge", listener, router(forge.clone()));
        forge
    }

    /// Makes the repository `owner/name` (Azure DevOps: `org/project/_git/repo`), a bare
    /// repository at `root/<that>.git` whose `main` holds `files`, and returns its path.
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
            Flavor::AzureDevOps => format!("{}/{repo}/pullrequest/{number}", self.url),
            Flavor::Bitbucket => format!("{}/{repo}/pull-requests/{number}", self.url),
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
            mergeable: true,
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

    /// Closes a PR without merging it (Azure DevOps: abandons it; Bitbucket: declines it).
    pub fn close(&self, repo: &str, number: i64) {
        let mut repos = self.inner.repos.lock().unwrap();
        let pr = repos
            .get_mut(repo)
            .and_then(|prs| prs.iter_mut().find(|p| p.number == number))
            .expect("a PR");
        pr.state = "closed";
    }

    /// Makes an open PR unmergeable (its checks pending, or a conflict): a merge through the
    /// API is refused as each forge refuses one, 405 on GitHub ("Pull Request is not
    /// mergeable"), GitLab and Gitea; Azure DevOps and Bitbucket answer 409 here (their exact
    /// answers are not modelled). [`TestForge::unblock`] undoes it.
    pub fn block(&self, repo: &str, number: i64) {
        self.set_mergeable(repo, number, false);
    }

    /// Makes a PR [`TestForge::block`] made unmergeable mergeable again.
    pub fn unblock(&self, repo: &str, number: i64) {
        self.set_mergeable(repo, number, true);
    }

    fn set_mergeable(&self, repo: &str, number: i64, mergeable: bool) {
        let mut repos = self.inner.repos.lock().unwrap();
        let pr = repos
            .get_mut(repo)
            .and_then(|prs| prs.iter_mut().find(|p| p.number == number))
            .expect("a PR");
        pr.mergeable = mergeable;
    }

    /// `METHOD /path` of every request so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// The path of the API call that reads PR `number` of `repo` in `flavor`'s API (what
    /// git-wait-for-pr's check asks), as [`TestForge::calls`] records it.
    pub fn pr_path(&self, flavor: Flavor, repo: &str, number: i64) -> String {
        let pulls = match flavor {
            Flavor::GitLab => format!("/gl/projects/{}/merge_requests", repo.replace('/', "%2F")),
            Flavor::AzureDevOps => {
                let (project_path, name) = repo.rsplit_once("/_git/").expect("org/project/_git/repo");
                format!("/az/{project_path}/_apis/git/repositories/{name}/pullrequests")
            }
            Flavor::Bitbucket => format!("/bb/repositories/{repo}/pullrequests"),
            Flavor::GitHub | Flavor::Gitea => format!("/{}/repos/{repo}/pulls", flavor.prefix()),
        };
        format!("{pulls}/{number}")
    }

    /// The body `flavor` sends when a PR changes, about the PR as it stands (merged, closed
    /// unmerged, or open), each forge's documented payload cut to the fields a receiver reads
    /// and a few beside them:
    ///
    /// - GitHub: the `pull_request` event, `action` `closed` (merged or not) or `opened`
    ///   (<https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request>).
    /// - GitLab: the merge request event, `object_kind: merge_request`,
    ///   `object_attributes.action` `merge`, `close` or `open`, its `url` the MR's web URL
    ///   (<https://docs.gitlab.com/user/project/integrations/webhook_events/#merge-request-events>).
    /// - Gitea: GitHub's shape, `action` `closed` (merged or not) or `opened`
    ///   (<https://docs.gitea.com/usage/webhooks>).
    /// - Azure DevOps: the service hook `git.pullrequest.merged` once merged, else
    ///   `git.pullrequest.updated` with the PR's `status`; `resource.repository.remoteUrl`
    ///   names the organisation as its user, as dev.azure.com's do
    ///   (<https://learn.microsoft.com/azure/devops/service-hooks/events>).
    /// - Bitbucket Cloud: `{pullrequest, repository, actor}`, the event key
    ///   ([`TestForge::pull_request_delivery`]) saying what happened
    ///   (<https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/#Pull-request-events>).
    pub fn pull_request_event(&self, flavor: Flavor, repo: &str, number: i64) -> Value {
        let pr = self
            .prs(repo)
            .into_iter()
            .find(|p| p.number == number)
            .expect("a PR of the repository");
        let closed = pr.state == "closed";
        let web = format!("{}/{repo}", self.url);
        match flavor {
            Flavor::GitHub | Flavor::Gitea => {
                let (owner, name) = repo.split_once('/').expect("owner/name");
                json!({
                    "action": if closed { "closed" } else { "opened" },
                    "number": pr.number,
                    "pull_request": hub_json(self, flavor, repo, &pr),
                    "repository": {
                        "name": name,
                        "full_name": repo,
                        "owner": {"login": owner},
                        "private": false,
                        "html_url": web,
                        "clone_url": format!("{web}.git"),
                        "default_branch": "main",
                    },
                    "sender": {"login": "reviewer"},
                })
            }
            Flavor::GitLab => {
                let mut attributes = lab_json(self, repo, &pr);
                attributes["url"] = attributes["web_url"].take();
                attributes["action"] = json!(state_word(&pr, ["open", "merge", "close"]));
                json!({
                    "object_kind": "merge_request",
                    "event_type": "merge_request",
                    "user": {"username": "reviewer"},
                    "project": {
                        "path_with_namespace": repo,
                        "web_url": web,
                        "git_http_url": format!("{web}.git"),
                        "default_branch": "main",
                    },
                    "object_attributes": attributes,
                })
            }
            Flavor::AzureDevOps => {
                let (project_path, name) = repo.rsplit_once("/_git/").expect("org/project/_git/repo");
                let org = project_path.split('/').next().expect("org");
                let (scheme, host) = self.url.split_once("://").expect("a URL");
                json!({
                    "id": format!("{}-{}-{}", repo.replace('/', "-"), pr.number, state_word(&pr, AZURE_STATES)),
                    "eventType": if pr.merged { "git.pullrequest.merged" } else { "git.pullrequest.updated" },
                    "publisherId": "tfs",
                    "resource": {
                        "repository": {
                            "name": name,
                            "remoteUrl": format!("{scheme}://{org}@{host}/{repo}"),
                        },
                        "pullRequestId": pr.number,
                        "status": state_word(&pr, AZURE_STATES),
                        "mergeStatus": if pr.merged { "succeeded" } else { "notSet" },
                        "sourceRefName": format!("refs/heads/{}", pr.source),
                        "targetRefName": format!("refs/heads/{}", pr.target),
                        "lastMergeCommit": pr.merge_sha.as_ref().map(|sha| json!({"commitId": sha})),
                    },
                })
            }
            Flavor::Bitbucket => json!({
                "pullrequest": bitbucket_json(self, repo, &pr),
                "repository": {"full_name": repo, "links": {"html": {"href": web}}},
                "actor": {"nickname": "reviewer"},
            }),
        }
    }

    /// A delivery of [`TestForge::pull_request_event`] as `flavor` sends it: the headers
    /// (event type, delivery `id`, and the proof made with `secret` as that forge makes it)
    /// and the body. `secret: None` sends no proof.
    ///
    /// GitHub signs `X-Hub-Signature-256: sha256=<HMAC-SHA256 hex>`; GitLab sends the secret
    /// itself in `X-Gitlab-Token`; Gitea signs the one HMAC-SHA256 as `X-Gitea-Signature`,
    /// `X-Gogs-Signature` (bare hex) and `X-Hub-Signature-256` (services/webhook/deliver.go;
    /// its SHA-1 `X-Hub-Signature` is left out); Bitbucket Cloud signs `X-Hub-Signature:
    /// sha256=<hex>`; Azure DevOps service hooks sign nothing (the secret is in the URL), so
    /// `secret` is not used, and `id` is the body's `id`.
    pub fn pull_request_delivery(
        &self,
        flavor: Flavor,
        repo: &str,
        number: i64,
        id: &str,
        secret: Option<&str>,
    ) -> (Vec<(&'static str, String)>, Vec<u8>) {
        let mut event = self.pull_request_event(flavor, repo, number);
        if flavor == Flavor::AzureDevOps {
            // Azure DevOps identifies the event in the body.
            event["id"] = json!(id);
        }
        let body = serde_json::to_vec(&event).expect("JSON");
        let pr = self
            .prs(repo)
            .into_iter()
            .find(|p| p.number == number)
            .expect("a PR of the repository");
        let hmac = secret.map(|s| barge_core::webhook::sign(s, &body));
        let mut headers = vec![("Content-Type", "application/json".to_string())];
        match flavor {
            Flavor::GitHub => {
                headers.push(("X-GitHub-Event", "pull_request".into()));
                headers.push(("X-GitHub-Delivery", id.into()));
                headers.extend(hmac.map(|h| ("X-Hub-Signature-256", format!("sha256={h}"))));
            }
            Flavor::GitLab => {
                headers.push(("X-Gitlab-Event", "Merge Request Hook".into()));
                headers.push(("X-Gitlab-Event-UUID", id.into()));
                headers.extend(secret.map(|s| ("X-Gitlab-Token", s.to_string())));
            }
            Flavor::Gitea => {
                for (event, delivery) in [
                    ("X-Gitea-Event", "X-Gitea-Delivery"),
                    ("X-Gogs-Event", "X-Gogs-Delivery"),
                    ("X-GitHub-Event", "X-GitHub-Delivery"),
                ] {
                    headers.push((event, "pull_request".into()));
                    headers.push((delivery, id.into()));
                }
                if let Some(h) = hmac {
                    headers.push(("X-Gitea-Signature", h.clone()));
                    headers.push(("X-Gogs-Signature", h.clone()));
                    headers.push(("X-Hub-Signature-256", format!("sha256={h}")));
                }
            }
            Flavor::Bitbucket => {
                let key = state_word(
                    &pr,
                    ["pullrequest:created", "pullrequest:fulfilled", "pullrequest:rejected"],
                );
                headers.push(("X-Event-Key", key.into()));
                headers.push(("X-Request-UUID", id.into()));
                headers.extend(hmac.map(|h| ("X-Hub-Signature", format!("sha256={h}"))));
            }
            Flavor::AzureDevOps => {}
        }
        (headers, body)
    }

    fn call(&self, method: &str, path: &str) {
        self.inner.calls.lock().unwrap().push(format!("{method} {path}"));
    }

    fn authorized(&self, h: &HeaderMap, flavor: Flavor) -> bool {
        let token = &self.inner.token;
        let basic = |user: &str| {
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
            format!("Basic {pair}")
        };
        let (header, want) = match flavor {
            Flavor::GitHub => ("Authorization", format!("Bearer {token}")),
            Flavor::GitLab => ("PRIVATE-TOKEN", token.clone()),
            Flavor::Gitea => ("Authorization", format!("token {token}")),
            // A personal access token is basic auth's password; the user name is empty.
            Flavor::AzureDevOps => ("Authorization", basic("")),
            Flavor::Bitbucket => ("Authorization", basic(ACCOUNT)),
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

/// A PR's state in a forge's words: open, merged, closed unmerged.
fn state_word(pr: &Pr, [open, merged, closed]: [&'static str; 3]) -> &'static str {
    if pr.merged {
        merged
    } else if pr.state == "open" {
        open
    } else {
        closed
    }
}

/// A merge request as GitLab's API answers it.
fn lab_json(forge: &TestForge, repo: &str, pr: &Pr) -> Value {
    json!({
        "iid": pr.number,
        "web_url": forge.web_url(Flavor::GitLab, repo, pr.number),
        "state": state_word(pr, ["opened", "merged", "closed"]),
        "merge_commit_sha": pr.merge_sha,
        "source_branch": pr.source,
        "target_branch": pr.target,
        "title": pr.title,
        "labels": pr.labels,
    })
}

const AZURE_STATES: [&str; 3] = ["active", "completed", "abandoned"];
const BITBUCKET_STATES: [&str; 3] = ["OPEN", "MERGED", "DECLINED"];

/// The commit a branch of `repo` points at.
fn head_of(forge: &TestForge, repo: &str, branch: &str) -> String {
    git(&forge.bare(repo), &["rev-parse", &format!("refs/heads/{branch}")])
}

/// Azure DevOps' GitPullRequest: the fields barge reads, and some beside them it ignores.
fn azure_json(forge: &TestForge, repo: &str, pr: &Pr) -> Value {
    let (project_path, name) = repo.rsplit_once("/_git/").expect("org/project/_git/repo");
    json!({
        "pullRequestId": pr.number,
        "status": state_word(pr, AZURE_STATES),
        "title": pr.title,
        "sourceRefName": format!("refs/heads/{}", pr.source),
        "targetRefName": format!("refs/heads/{}", pr.target),
        "labels": pr.labels.iter().map(|l| json!({"name": l, "active": true})).collect::<Vec<_>>(),
        "lastMergeSourceCommit": {"commitId": head_of(forge, repo, &pr.source)},
        "lastMergeCommit": pr.merge_sha.as_ref().map(|sha| json!({"commitId": sha})),
        "url": format!(
            "{}/{project_path}/_apis/git/repositories/{name}/pullRequests/{}",
            forge.api(Flavor::AzureDevOps),
            pr.number
        ),
        "repository": {"name": name, "webUrl": format!("{}/{repo}", forge.url)},
    })
}

/// Bitbucket Cloud's pull request, its merge commit's hash abbreviated to 12 characters as
/// Bitbucket answers it.
fn bitbucket_json(forge: &TestForge, repo: &str, pr: &Pr) -> Value {
    json!({
        "id": pr.number,
        "state": state_word(pr, BITBUCKET_STATES),
        "title": pr.title,
        "source": {"branch": {"name": pr.source}},
        "destination": {"branch": {"name": pr.target}},
        "merge_commit": pr.merge_sha.as_ref().map(|sha| json!({"hash": &sha[..12]})),
        "links": {"html": {"href": forge.web_url(Flavor::Bitbucket, repo, pr.number)}},
    })
}

fn pr_json(forge: &TestForge, flavor: Flavor, repo: &str, pr: &Pr) -> Value {
    match flavor {
        Flavor::GitLab => lab_json(forge, repo, pr),
        Flavor::AzureDevOps => azure_json(forge, repo, pr),
        Flavor::Bitbucket => bitbucket_json(forge, repo, pr),
        Flavor::GitHub | Flavor::Gitea => hub_json(forge, flavor, repo, pr),
    }
}

/// Bitbucket's `q` filter as barge writes it: `field = "value"` terms joined by ` AND `.
fn bitbucket_query(q: &str) -> HashMap<String, String> {
    q.split(" AND ")
        .filter_map(|term| term.split_once(" = "))
        .map(|(field, value)| (field.trim().to_string(), value.trim().trim_matches('"').to_string()))
        .collect()
}

/// What a route does.
#[derive(Clone, Copy)]
enum Op {
    List,
    Create,
    Show,
    Merge,
    Labels,
    Commit,
}

/// A request as the routes hand it on.
struct Request {
    flavor: Flavor,
    method: Method,
    uri: Uri,
    params: HashMap<String, String>,
    headers: HeaderMap,
    query: HashMap<String, String>,
    body: Bytes,
}

impl Request {
    fn number(&self) -> i64 {
        self.params.get("n").and_then(|n| n.parse().ok()).unwrap_or(-1)
    }

    fn body(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Reply = Result<(StatusCode, Json<Value>), StatusCode>;

/// A request's common part: recorded, authorized, Azure DevOps' `api-version`, and for a
/// repository the forge holds; then `op`.
fn answer(f: &TestForge, op: Op, r: Request) -> Reply {
    f.call(r.method.as_str(), r.uri.path());
    if !f.authorized(&r.headers, r.flavor) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    if r.flavor == Flavor::AzureDevOps && r.query.get("api-version").map(String::as_str) != Some("7.1") {
        return Err(StatusCode::BAD_REQUEST);
    }
    let repo = r.flavor.repo(&r.params);
    if !f.inner.repos.lock().unwrap().contains_key(&repo) {
        return Err(StatusCode::NOT_FOUND);
    }
    let ok = |v: Value| Ok((StatusCode::OK, Json(v)));
    match op {
        Op::List => ok(list(f, r.flavor, &repo, &r.query)),
        Op::Create => Ok((StatusCode::CREATED, Json(create(f, r.flavor, &repo, &r.body())?))),
        Op::Show => ok(show(f, r.flavor, &repo, r.number())?),
        Op::Merge => ok(merge(f, r.flavor, &repo, r.number(), &r.body())?),
        Op::Labels => ok(label(f, &repo, r.number(), &r.body())?),
        Op::Commit => {
            let rev = format!("{}^{{commit}}", r.params["rev"]);
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--verify", "--quiet", &rev])
                .current_dir(f.bare(&repo))
                .output()
                .expect("git runs");
            if !out.status.success() {
                return Err(StatusCode::NOT_FOUND);
            }
            let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
            ok(json!({"hash": hash, "type": "commit"}))
        }
    }
}

fn list(f: &TestForge, flavor: Flavor, repo: &str, q: &HashMap<String, String>) -> Value {
    let bb = bitbucket_query(q.get("q").map_or("", String::as_str));
    let query = |k: &str| q.get(k).map(String::as_str);
    let repos = f.inner.repos.lock().unwrap();
    let out: Vec<Value> = repos[repo]
        .iter()
        .filter(|p| match flavor {
            Flavor::GitHub => {
                p.state == "open"
                    && query("head").is_none_or(|h| h.ends_with(&format!(":{}", p.source)))
                    && query("base").is_none_or(|b| b == p.target)
            }
            Flavor::GitLab => {
                p.state == "open"
                    && query("source_branch").is_none_or(|s| s == p.source)
                    && query("target_branch").is_none_or(|t| t == p.target)
            }
            Flavor::Gitea => p.state == "open",
            // Active PRs unless another status (or `all`) is asked for.
            Flavor::AzureDevOps => {
                let status = query("searchCriteria.status").unwrap_or("active");
                (status == "all" || status == state_word(p, AZURE_STATES))
                    && query("searchCriteria.sourceRefName").is_none_or(|s| s == format!("refs/heads/{}", p.source))
                    && query("searchCriteria.targetRefName").is_none_or(|t| t == format!("refs/heads/{}", p.target))
            }
            // Open PRs unless another state is asked for.
            Flavor::Bitbucket => {
                query("state").unwrap_or("OPEN") == state_word(p, BITBUCKET_STATES)
                    && bb.get("source.branch.name").is_none_or(|s| *s == p.source)
                    && bb.get("destination.branch.name").is_none_or(|t| *t == p.target)
            }
        })
        .map(|p| pr_json(f, flavor, repo, p))
        .collect();
    match flavor {
        Flavor::AzureDevOps => json!({"count": out.len(), "value": out}),
        Flavor::Bitbucket => json!({"pagelen": 50, "size": out.len(), "page": 1, "values": out}),
        _ => Value::Array(out),
    }
}

fn create(f: &TestForge, flavor: Flavor, repo: &str, body: &Value) -> Result<Value, StatusCode> {
    let (source, target) = match flavor {
        Flavor::GitLab => ("/source_branch", "/target_branch"),
        Flavor::AzureDevOps => ("/sourceRefName", "/targetRefName"),
        Flavor::Bitbucket => ("/source/branch/name", "/destination/branch/name"),
        Flavor::GitHub | Flavor::Gitea => ("/head", "/base"),
    };
    let branch = |pointer: &str| {
        let name = body
            .pointer(pointer)
            .and_then(Value::as_str)
            .ok_or(StatusCode::BAD_REQUEST)?;
        Ok::<_, StatusCode>(name.strip_prefix("refs/heads/").unwrap_or(name).to_string())
    };
    // GitLab: a comma-separated string; Azure DevOps: `[{name}]`; GitHub sets them apart.
    let labels = match &body["labels"] {
        Value::String(l) => l.split(',').filter(|l| !l.is_empty()).map(str::to_string).collect(),
        Value::Array(l) => l
            .iter()
            .filter_map(|l| l["name"].as_str())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let mut repos = f.inner.repos.lock().unwrap();
    let prs = repos.get_mut(repo).expect("admitted");
    let pr = Pr {
        number: prs.len() as i64 + 1,
        source: branch(source)?,
        target: branch(target)?,
        title: body["title"].as_str().unwrap_or_default().to_string(),
        labels,
        state: "open",
        merged: false,
        merge_sha: None,
        mergeable: true,
    };
    prs.push(pr.clone());
    Ok(pr_json(f, flavor, repo, &pr))
}

fn show(f: &TestForge, flavor: Flavor, repo: &str, n: i64) -> Result<Value, StatusCode> {
    let repos = f.inner.repos.lock().unwrap();
    let pr = repos[repo]
        .iter()
        .find(|p| p.number == n)
        .ok_or(StatusCode::NOT_FOUND)?;
    Ok(pr_json(f, flavor, repo, pr))
}

/// A merge: GitHub's and GitLab's `PUT`, Gitea's and Bitbucket's `POST` (`merge_strategy`),
/// Azure DevOps' `PATCH` to `status: completed` naming the source commit it merges.
fn merge(f: &TestForge, flavor: Flavor, repo: &str, n: i64, body: &Value) -> Result<Value, StatusCode> {
    let mut repos = f.inner.repos.lock().unwrap();
    let pr = repos
        .get_mut(repo)
        .and_then(|prs| prs.iter_mut().find(|p| p.number == n))
        .ok_or(StatusCode::NOT_FOUND)?;
    match flavor {
        Flavor::AzureDevOps
            if body["status"] != "completed"
                || !matches!(
                    body["completionOptions"]["mergeStrategy"].as_str(),
                    None | Some("noFastForward")
                ) =>
        {
            return Err(StatusCode::BAD_REQUEST);
        }
        // A push since the review: Azure DevOps refuses to complete.
        Flavor::AzureDevOps
            if body["lastMergeSourceCommit"]["commitId"].as_str() != Some(head_of(f, repo, &pr.source).as_str()) =>
        {
            return Err(StatusCode::CONFLICT);
        }
        Flavor::Bitbucket if !matches!(body["merge_strategy"].as_str(), None | Some("merge_commit")) => {
            return Err(StatusCode::BAD_REQUEST);
        }
        _ => {}
    }
    if pr.state != "open" {
        // GitHub: 405 "Pull Request is not mergeable".
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    if !pr.mergeable {
        return Err(match flavor {
            Flavor::GitHub | Flavor::GitLab | Flavor::Gitea => StatusCode::METHOD_NOT_ALLOWED,
            Flavor::AzureDevOps | Flavor::Bitbucket => StatusCode::CONFLICT,
        });
    }
    merge_for_real(&f.inner.root, &f.bare(repo), pr);
    Ok(match flavor {
        Flavor::GitHub => json!({"sha": pr.merge_sha, "merged": true, "message": "Pull Request successfully merged"}),
        Flavor::Gitea => Value::Null,
        _ => pr_json(f, flavor, repo, pr),
    })
}

/// GitHub's issues API: a PR's labels replaced.
fn label(f: &TestForge, repo: &str, n: i64, body: &Value) -> Result<Value, StatusCode> {
    let mut repos = f.inner.repos.lock().unwrap();
    let pr = repos
        .get_mut(repo)
        .and_then(|prs| prs.iter_mut().find(|p| p.number == n))
        .ok_or(StatusCode::NOT_FOUND)?;
    pr.labels = body["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_string))
        .collect();
    Ok(json!(pr.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>()))
}

/// The handler of `op` in `flavor`'s API.
fn handler(flavor: Flavor, op: Op) -> MethodRouter<TestForge> {
    type Params = UrlPath<HashMap<String, String>>;
    type Q = Query<HashMap<String, String>>;
    let handle = move |State(f): State<TestForge>,
                       method: Method,
                       uri: Uri,
                       UrlPath(params): Params,
                       headers: HeaderMap,
                       Query(query): Q,
                       body: Bytes| async move {
        let r = Request {
            flavor,
            method,
            uri,
            params,
            headers,
            query,
            body,
        };
        answer(&f, op, r)
    };
    let (method, _) = route_of(flavor, op);
    match method {
        Method::GET => get(handle),
        Method::POST => post(handle),
        Method::PUT => put(handle),
        _ => patch(handle),
    }
}

/// The method and route of `op` in `flavor`'s API.
fn route_of(flavor: Flavor, op: Op) -> (Method, String) {
    let pulls = flavor.pulls_route();
    let one = format!("{pulls}/{{n}}");
    let repo = pulls.rsplit_once('/').expect("a route").0;
    match (op, flavor) {
        (Op::List, _) => (Method::GET, pulls.into()),
        (Op::Create, _) => (Method::POST, pulls.into()),
        (Op::Show, _) => (Method::GET, one),
        (Op::Merge, Flavor::AzureDevOps) => (Method::PATCH, one),
        (Op::Merge, Flavor::GitHub | Flavor::GitLab) => (Method::PUT, format!("{one}/merge")),
        (Op::Merge, _) => (Method::POST, format!("{one}/merge")),
        (Op::Labels, _) => (Method::POST, format!("{repo}/issues/{{n}}/labels")),
        (Op::Commit, _) => (Method::GET, format!("{repo}/commit/{{rev}}")),
    }
}

fn router(forge: TestForge) -> Router {
    let mut app = Router::new();
    for flavor in Flavor::ALL {
        let mut ops = vec![Op::List, Op::Create, Op::Show, Op::Merge];
        match flavor {
            Flavor::GitHub => ops.push(Op::Labels),
            // Bitbucket's commit resource: the whole hash of an abbreviated one.
            Flavor::Bitbucket => ops.push(Op::Commit),
            _ => {}
        }
        for op in ops {
            let (_, route) = route_of(flavor, op);
            app = app.route(&route, handler(flavor, op));
        }
    }
    app.with_state(forge)
}
