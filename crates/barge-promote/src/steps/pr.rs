//! git-open-pr, git-wait-for-pr, git-merge-pr against GitHub, GitLab, Gitea, Azure DevOps
//! and Bitbucket Cloud.
//!
//! One flow for all providers; [`Provider`] only maps the four calls (find an open PR, open,
//! get, merge) onto each API. The token is the password of the repository's credentials
//! (as with Kargo's git credentials). Opening is idempotent: an open PR from the same source
//! to the same target is reused, so a replayed promotion never opens a second one.

use super::{StepCtx, StepDone, StepError, StepResult, config, done, not_empty, required};
use crate::BoxFuture;
use barge_core::step_config::{GitOpenPr, GitPr};
use serde_json::{Map, Value as Json, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    GitLab,
    Gitea,
    /// Azure DevOps Services (REST API 7.1).
    AzureDevOps,
    /// Bitbucket Cloud (REST API 2.0).
    Bitbucket,
}

/// The REST API version barge asks Azure DevOps for.
const AZURE_API_VERSION: &str = "7.1";

/// A repository on a hosting service, and how to call its API.
#[derive(Clone, Debug)]
pub struct Provider {
    pub kind: Kind,
    /// e.g. `https://api.github.com`, `https://gitlab.example.com/api/v4`,
    /// `https://dev.azure.com`, `https://api.bitbucket.org/2.0`.
    pub api: String,
    /// `owner/repo` (GitLab: the full project path; Azure DevOps: `org/project/repo`;
    /// Bitbucket: `workspace/repo`).
    pub repo: String,
    /// Bitbucket: the account a token is sent with (basic auth) when the credentials name one;
    /// without (or as `x-token-auth`), the token is an access token sent as a bearer token.
    pub user: Option<String>,
}

/// What barge knows of a PR.
#[derive(Clone, Debug, PartialEq)]
pub struct PullRequest {
    pub number: i64,
    pub url: String,
    pub open: bool,
    pub merged: bool,
    pub merge_commit: Option<String>,
    /// Azure DevOps: the source commit a completion must name (`lastMergeSourceCommit`).
    pub source_commit: Option<String>,
}

impl Provider {
    /// Recognises the provider from `provider:` or the URL's host; `api` overrides the
    /// API address (for GitHub Enterprise, self-hosted GitLab/Gitea, or a test server).
    pub fn for_repo(repo_url: &str, kind: Option<&str>, api: Option<&str>) -> Result<Provider, StepError> {
        let rest = repo_url.split_once("://").map_or(repo_url, |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
        let (host, path) = rest
            .split_once(['/', ':'])
            .ok_or_else(|| bad(repo_url, "no repository path"))?;
        let path = path.trim_end_matches('/').trim_end_matches(".git").to_string();
        let kind = match kind.map(str::to_lowercase).as_deref() {
            Some("github") => Kind::GitHub,
            Some("gitlab") => Kind::GitLab,
            Some("gitea") => Kind::Gitea,
            Some("azure") => Kind::AzureDevOps,
            Some("bitbucket") => Kind::Bitbucket,
            Some(other) => {
                return Err(bad(
                    repo_url,
                    &format!("provider {other:?} is not supported (github, gitlab, gitea, azure, bitbucket)"),
                ));
            }
            None if host.contains("github") => Kind::GitHub,
            None if host.contains("gitlab") => Kind::GitLab,
            None if host.contains("gitea") => Kind::Gitea,
            None if host.ends_with("dev.azure.com") || host.ends_with(".visualstudio.com") => Kind::AzureDevOps,
            None if host.contains("bitbucket") => Kind::Bitbucket,
            None => {
                return Err(bad(
                    repo_url,
                    "cannot tell the provider from the host; set `provider: github|gitlab|gitea|azure|bitbucket`",
                ));
            }
        };
        let repo = match kind {
            Kind::AzureDevOps => azure_repo(host, &path).ok_or_else(|| {
                bad(
                    repo_url,
                    "not an Azure DevOps repository URL (https://dev.azure.com/ORG/PROJECT/_git/REPO)",
                )
            })?,
            Kind::Bitbucket if path.split('/').filter(|s| !s.is_empty()).count() != 2 => {
                return Err(bad(
                    repo_url,
                    "not a Bitbucket Cloud repository URL (https://bitbucket.org/WORKSPACE/REPO.git)",
                ));
            }
            _ => path,
        };
        let api = match (api, kind) {
            (Some(a), _) => a.trim_end_matches('/').to_string(),
            (None, Kind::GitHub) if host == "github.com" => "https://api.github.com".into(),
            (None, Kind::GitHub) => format!("https://{host}/api/v3"),
            (None, Kind::GitLab) => format!("https://{host}/api/v4"),
            (None, Kind::Gitea) => format!("https://{host}/api/v1"),
            (None, Kind::AzureDevOps) => "https://dev.azure.com".into(),
            (None, Kind::Bitbucket) => "https://api.bitbucket.org/2.0".into(),
        };
        Ok(Provider {
            kind,
            api,
            repo,
            user: None,
        })
    }

    pub(super) fn base(&self) -> String {
        match self.kind {
            Kind::GitHub | Kind::Gitea => format!("{}/repos/{}", self.api, self.repo),
            Kind::GitLab => format!("{}/projects/{}", self.api, self.repo.replace('/', "%2F")),
            Kind::AzureDevOps => {
                let mut parts = self.repo.splitn(3, '/');
                let (org, project, repo) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                format!("{}/{org}/{project}/_apis/git/repositories/{repo}", self.api)
            }
            Kind::Bitbucket => format!("{}/repositories/{}", self.api, self.repo),
        }
    }

    fn pulls(&self) -> String {
        match self.kind {
            Kind::GitHub | Kind::Gitea => format!("{}/pulls", self.base()),
            Kind::GitLab => format!("{}/merge_requests", self.base()),
            Kind::AzureDevOps => format!("{}/pullrequests", self.base()),
            Kind::Bitbucket => format!("{}/pullrequests", self.base()),
        }
    }

    /// `url` as the API wants it called: Azure DevOps requires its `api-version` on every call.
    fn call_url(&self, url: String) -> String {
        match self.kind {
            Kind::AzureDevOps => {
                let join = if url.contains('?') { '&' } else { '?' };
                format!("{url}{join}api-version={AZURE_API_VERSION}")
            }
            _ => url,
        }
    }

    fn authorize(&self, req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
        let req = req.header("Accept", "application/json");
        match (token, self.kind) {
            (None, _) => req,
            (Some(t), Kind::GitHub) => req.header("Authorization", format!("Bearer {t}")),
            (Some(t), Kind::GitLab) => req.header("PRIVATE-TOKEN", t),
            (Some(t), Kind::Gitea) => req.header("Authorization", format!("token {t}")),
            // A personal access token is the password of basic auth; the user name is ignored.
            (Some(t), Kind::AzureDevOps) => req.basic_auth("", Some(t)),
            (Some(t), Kind::Bitbucket) => match &self.user {
                Some(user) => req.basic_auth(user, Some(t)),
                None => req.header("Authorization", format!("Bearer {t}")),
            },
        }
    }

    fn parse(&self, v: &Json) -> PullRequest {
        match self.kind {
            Kind::AzureDevOps => return self.parse_azure(v),
            Kind::Bitbucket => return parse_bitbucket(v),
            _ => {}
        }
        let number = match self.kind {
            Kind::GitLab => v["iid"].as_i64(),
            _ => v["number"].as_i64(),
        }
        .unwrap_or_default();
        let url = v[if self.kind == Kind::GitLab {
            "web_url"
        } else {
            "html_url"
        }]
        .as_str()
        .unwrap_or_default()
        .to_string();
        let (open, merged) = match self.kind {
            Kind::GitLab => (v["state"] == "opened", v["state"] == "merged"),
            _ => (v["state"] == "open", v["merged"].as_bool().unwrap_or(false)),
        };
        PullRequest {
            number,
            url,
            open,
            merged,
            merge_commit: v["merge_commit_sha"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            source_commit: None,
        }
    }

    /// Azure DevOps' GitPullRequest: `status` active, completed (merged) or abandoned; the
    /// merge commit is `lastMergeCommit` once completed.
    fn parse_azure(&self, v: &Json) -> PullRequest {
        let number = v["pullRequestId"].as_i64().unwrap_or_default();
        let web = match v["repository"]["webUrl"].as_str() {
            Some(repo) => repo.trim_end_matches('/').to_string(),
            None => {
                let mut parts = self.repo.splitn(3, '/');
                let (org, project, repo) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                format!("https://dev.azure.com/{org}/{project}/_git/{repo}")
            }
        };
        let merged = v["status"] == "completed";
        let commit = |field: &str| {
            v[field]["commitId"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        PullRequest {
            number,
            url: format!("{web}/pullrequest/{number}"),
            open: v["status"] == "active",
            merged,
            merge_commit: if merged { commit("lastMergeCommit") } else { None },
            source_commit: commit("lastMergeSourceCommit"),
        }
    }

    /// The pull requests of a list answer: GitHub, GitLab and Gitea answer an array, Azure
    /// DevOps `{value: […]}`, Bitbucket a page `{values: […]}`.
    fn listed<'j>(&self, answer: &'j Json) -> impl Iterator<Item = &'j Json> {
        let list = match self.kind {
            Kind::AzureDevOps => &answer["value"],
            Kind::Bitbucket => &answer["values"],
            _ => answer,
        };
        list.as_array().into_iter().flatten()
    }

    /// Whether a listed pull request goes from `source` to `target`.
    fn joins(&self, v: &Json, source: &str, target: &str) -> bool {
        match self.kind {
            Kind::Gitea | Kind::GitHub => v["head"]["ref"] == source && v["base"]["ref"] == target,
            Kind::GitLab => v["source_branch"] == source && v["target_branch"] == target,
            Kind::AzureDevOps => {
                v["sourceRefName"] == format!("refs/heads/{source}").as_str()
                    && v["targetRefName"] == format!("refs/heads/{target}").as_str()
            }
            Kind::Bitbucket => v["source"]["branch"]["name"] == source && v["destination"]["branch"]["name"] == target,
        }
    }
}

/// Bitbucket Cloud's pull request: `state` OPEN, MERGED, DECLINED or SUPERSEDED; its
/// `merge_commit.hash` is abbreviated (see [`get_pr`]).
fn parse_bitbucket(v: &Json) -> PullRequest {
    PullRequest {
        number: v["id"].as_i64().unwrap_or_default(),
        url: v["links"]["html"]["href"].as_str().unwrap_or_default().to_string(),
        open: v["state"] == "OPEN",
        merged: v["state"] == "MERGED",
        merge_commit: v["merge_commit"]["hash"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        source_commit: None,
    }
}

/// `org/project/repo` of an Azure DevOps repository path: `ORG/PROJECT/_git/REPO` on
/// dev.azure.com, `PROJECT/_git/REPO` on `ORG.visualstudio.com` (optionally after
/// `DefaultCollection/`), `v3/ORG/PROJECT/REPO` on ssh.dev.azure.com.
fn azure_repo(host: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != "_git").collect();
    if parts.first() == Some(&"v3") {
        parts.remove(0);
    }
    if let Some(org) = host.strip_suffix(".visualstudio.com") {
        if parts.first() == Some(&"DefaultCollection") {
            parts.remove(0);
        }
        parts.insert(0, org);
    }
    (parts.len() == 3).then(|| parts.join("/"))
}

fn bad(repo: &str, why: &str) -> StepError {
    StepError::Invalid(format!("{}: {why}", barge_core::secret::redact_url(repo)))
}

/// A call the API refused or never answered: the status it answered with (`None`: no answer)
/// and what it means for the step.
pub(super) struct Refusal {
    pub status: Option<u16>,
    pub error: StepError,
}

/// Sends a request; 5xx, 429 and transport faults are retryable, other failures are not.
/// Neither the token nor the request's headers ever reach an error.
pub(super) async fn send(p: &Provider, req: reqwest::RequestBuilder, token: Option<&str>) -> Result<Json, Refusal> {
    let resp = p.authorize(req, token).send().await.map_err(|e| Refusal {
        status: None,
        error: StepError::Retryable(format!("{}: {e}", p.api)),
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let refusal = |error| Refusal {
        status: Some(status.as_u16()),
        error,
    };
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(refusal(StepError::Retryable(format!("{} answered {status}", p.api))));
    }
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => " (check the token in the repository's credentials)",
            404 => " (check the repository URL and that the token can see it)",
            _ => "",
        };
        let text: String = text.chars().take(300).collect();
        return Err(refusal(StepError::Invalid(format!(
            "{} answered {status}{hint}: {text}",
            p.api
        ))));
    }
    if text.trim().is_empty() {
        return Ok(Json::Null);
    }
    serde_json::from_str(&text).map_err(|e| refusal(StepError::Invalid(format!("{}: not JSON: {e}", p.api))))
}

async fn call(
    ctx: &StepCtx<'_>,
    p: &Provider,
    req: reqwest::RequestBuilder,
    token: Option<&str>,
) -> Result<Json, StepError> {
    let _ = ctx;
    send(p, req, token).await.map_err(|r| r.error)
}

/// `url` with `pairs` added to its query, encoded.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> Result<reqwest::Url, StepError> {
    let mut url = reqwest::Url::parse(url).map_err(|e| StepError::Invalid(format!("{url}: {e}")))?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
}

/// The provider of `repo_url` and the token to call it with.
fn provider(ctx: &StepCtx<'_>, repo_url: &str, kind: Option<&str>) -> Result<(Provider, Option<String>), StepError> {
    let mut p = Provider::for_repo(repo_url, kind, ctx.engine.pr_api_for(repo_url).as_deref())?;
    let credentials = (ctx.engine.credentials)(repo_url);
    if p.kind == Kind::Bitbucket {
        // An account's API token or app password goes with the account; an access token
        // (git's user `x-token-auth`) alone.
        p.user = credentials
            .as_ref()
            .map(|c| c.username.clone())
            .filter(|u| !u.is_empty() && u != "x-token-auth");
    }
    Ok((p, credentials.map(|c| c.password)))
}

pub(super) fn open_pr<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitOpenPr = config("git-open-pr", cfg)?;
        required("git-open-pr", "repoURL", &c.repo_url)?;
        for (field, value) in [
            ("sourceBranch", &c.source_branch),
            ("targetBranch", &c.target_branch),
            ("title", &c.title),
            ("description", &c.description),
        ] {
            not_empty("git-open-pr", field, value.as_deref())?;
        }
        let _ = (c.create_target_branch, c.insecure_skip_tls_verify);
        let source = match (&c.source_branch, &c.source_branch_from_step) {
            (Some(b), _) => b.clone(),
            (None, Some(step)) => ctx
                .scope
                .outputs
                .get(step)
                .and_then(|o| o["branch"].as_str())
                .map(str::to_string)
                .ok_or_else(|| StepError::Invalid(format!("git-open-pr: step {step:?} has no `branch` output")))?,
            (None, None) => return Err(StepError::Invalid("git-open-pr: set sourceBranch".into())),
        };
        let target = c.target_branch.clone().unwrap_or_else(|| "main".into());
        if ctx.engine.dry_run {
            return done(Map::from_iter([
                ("pr".into(), json!({"id": 0, "url": ""})),
                ("dryRun".into(), json!(true)),
            ]));
        }
        let (p, token) = provider(ctx, &c.repo_url, c.provider.as_deref())?;
        if p.kind == Kind::Bitbucket && !c.labels.is_empty() {
            return Err(StepError::Invalid(
                "git-open-pr: Bitbucket Cloud pull requests have no labels; remove `labels`".into(),
            ));
        }
        let http = &ctx.engine.http;
        // An identical open PR (a replay, or a human opened it) is reused.
        let list = match p.kind {
            Kind::GitHub => {
                let owner = p.repo.split('/').next().unwrap_or_default();
                http.get(format!("{}?state=open&head={owner}:{source}&base={target}", p.pulls()))
            }
            Kind::GitLab => http.get(format!(
                "{}?state=opened&source_branch={source}&target_branch={target}",
                p.pulls()
            )),
            Kind::Gitea => http.get(format!("{}?state=open", p.pulls())),
            Kind::AzureDevOps => http.get(with_query(
                &p.call_url(p.pulls()),
                &[
                    ("searchCriteria.status", "active"),
                    ("searchCriteria.sourceRefName", &format!("refs/heads/{source}")),
                    ("searchCriteria.targetRefName", &format!("refs/heads/{target}")),
                ],
            )?),
            Kind::Bitbucket => http.get(with_query(
                &p.pulls(),
                &[
                    ("state", "OPEN"),
                    (
                        "q",
                        &format!("source.branch.name = \"{source}\" AND destination.branch.name = \"{target}\""),
                    ),
                ],
            )?),
        };
        let existing = call(ctx, &p, list, token.as_deref()).await?;
        let found = p.listed(&existing).find(|v| p.joins(v, &source, &target));
        let pr = match found {
            Some(v) => p.parse(v),
            None => {
                // As Kargo's: the target branch must exist (`createTargetBranch` is a no-op
                // in Kargo and here), and a source with no changes against it opens nothing
                // (a forge refuses a PR without commits): the step is Skipped.
                let fetch_url = barge_core::rewrite::apply(&ctx.engine.rewrites, &c.repo_url);
                let credentials = (ctx.engine.credentials)(&c.repo_url);
                let compared = barge_git::compare_branches(
                    &fetch_url,
                    credentials.as_ref(),
                    &source,
                    &target,
                    std::time::Duration::from_secs(120),
                )
                .await
                .map_err(|e| StepError::of_class(e.class(), format!("git-open-pr: {e}")))?;
                match compared {
                    barge_git::BranchDiff::TargetMissing => {
                        return Err(StepError::Invalid(format!(
                            "git-open-pr: target branch {target:?} does not exist"
                        )));
                    }
                    barge_git::BranchDiff::SourceMissing => {
                        return Err(StepError::Invalid(format!(
                            "git-open-pr: source branch {source:?} does not exist"
                        )));
                    }
                    barge_git::BranchDiff::NoChanges => {
                        return Ok(StepDone::Skipped(format!(
                            "no changes between {source:?} and {target:?}: no pull request to open"
                        )));
                    }
                    barge_git::BranchDiff::Changes => {}
                }
                let title = c.title.clone().unwrap_or_else(|| {
                    format!(
                        "Promote {} to {}",
                        ctx.promotion
                            .freight
                            .alias
                            .as_deref()
                            .unwrap_or(&ctx.promotion.freight.metadata.name),
                        ctx.promotion.stage
                    )
                });
                let body = c.description.clone().unwrap_or_default();
                let req = match p.kind {
                    Kind::GitHub | Kind::Gitea => http
                        .post(p.pulls())
                        .json(&json!({"title": title, "head": source, "base": target, "body": body})),
                    Kind::GitLab => http.post(p.pulls()).json(&json!({
                        "title": title, "source_branch": source, "target_branch": target,
                        "description": body, "labels": c.labels.join(","),
                    })),
                    Kind::AzureDevOps => http.post(p.call_url(p.pulls())).json(&json!({
                        "sourceRefName": format!("refs/heads/{source}"),
                        "targetRefName": format!("refs/heads/{target}"),
                        "title": title, "description": body,
                        "labels": c.labels.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
                    })),
                    Kind::Bitbucket => http.post(p.pulls()).json(&json!({
                        "title": title, "description": body,
                        "source": {"branch": {"name": source}},
                        "destination": {"branch": {"name": target}},
                    })),
                };
                let pr = p.parse(&call(ctx, &p, req, token.as_deref()).await?);
                if !c.labels.is_empty() && p.kind == Kind::GitHub {
                    let req = http
                        .post(format!("{}/issues/{}/labels", p.base(), pr.number))
                        .json(&json!({"labels": c.labels}));
                    call(ctx, &p, req, token.as_deref()).await?;
                }
                pr
            }
        };
        done(Map::from_iter([
            ("pr".into(), json!({"id": pr.number, "url": pr.url})),
            // The pre-v1.2 output name, still read by many templates.
            ("prNumber".into(), json!(pr.number)),
        ]))
    })
}

fn pr_number(ctx: &StepCtx<'_>, c: &GitPr, step: &str) -> Result<i64, StepError> {
    let from_step = c
        .pr_number_from_step
        .as_ref()
        .and_then(|s| ctx.scope.outputs.get(s))
        .map(|o| {
            o["pr"]["id"]
                .as_i64()
                .or_else(|| o["prNumber"].as_i64())
                .unwrap_or_default()
        });
    let given = match &c.pr_number {
        Some(Json::Number(n)) => n.as_i64(),
        Some(Json::String(s)) => s.parse().ok(),
        _ => None,
    };
    given.or(from_step).filter(|n| *n > 0).ok_or_else(|| {
        StepError::Invalid(format!(
            "{step}: set prNumber (e.g. ${{{{ outputs['open-pr'].pr.id }}}})"
        ))
    })
}

async fn get_pr(ctx: &StepCtx<'_>, p: &Provider, number: i64, token: Option<&str>) -> Result<PullRequest, StepError> {
    let url = p.call_url(format!("{}/{number}", p.pulls()));
    let mut pr = p.parse(&call(ctx, p, ctx.engine.http.get(url), token).await?);
    // Bitbucket abbreviates the merge commit's hash (12 characters); its commit resource
    // answers the whole one, which the `commit` output must be.
    if p.kind == Kind::Bitbucket
        && let Some(short) = pr.merge_commit.as_deref().filter(|h| h.len() < 40)
    {
        let commit = call(
            ctx,
            p,
            ctx.engine.http.get(format!("{}/commit/{short}", p.base())),
            token,
        )
        .await?;
        pr.merge_commit = commit["hash"].as_str().map(str::to_string);
    }
    Ok(pr)
}

/// The `pr` output of git-wait-for-pr and git-merge-pr: Kargo's waiter's `{id, url, open,
/// merged}`.
fn pr_output(pr: &PullRequest) -> Json {
    json!({"id": pr.number, "url": pr.url, "open": pr.open, "merged": pr.merged})
}

fn merged_outputs(pr: &PullRequest) -> StepResult {
    done(Map::from_iter([
        ("commit".into(), json!(pr.merge_commit.clone().unwrap_or_default())),
        ("pr".into(), pr_output(pr)),
    ]))
}

pub(super) fn wait_for_pr<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitPr = config("git-wait-for-pr", cfg)?;
        check_pr_config("git-wait-for-pr", &c)?;
        let _ = (&c.poll_interval, c.insecure_skip_tls_verify);
        let number = pr_number(ctx, &c, "git-wait-for-pr")?;
        let (p, token) = provider(ctx, &c.repo_url, c.provider.as_deref())?;
        let pr = get_pr(ctx, &p, number, token.as_deref()).await?;
        if pr.merged {
            merged_outputs(&pr)
        } else if pr.open {
            // A webhook announcing the PR merged or closed (each forge's event, by the PR's
            // web URL) has it checked again at once.
            Ok(StepDone::WaitingOn {
                why: format!("waiting for PR #{number} ({}) to be merged", pr.url),
                wake: barge_core::webhook::pull_request_key(&pr.url),
            })
        } else {
            // Failed, with the PR's outputs, as Kargo's waiter reports it.
            Err(StepError::FailedWith(
                format!("PR #{number} ({}) was closed without being merged", pr.url),
                Map::from_iter([("pr".into(), pr_output(&pr))]),
            ))
        }
    })
}

pub(super) fn merge_pr<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitPr = config("git-merge-pr", cfg)?;
        check_pr_config("git-merge-pr", &c)?;
        let number = pr_number(ctx, &c, "git-merge-pr")?;
        let (p, token) = provider(ctx, &c.repo_url, c.provider.as_deref())?;
        let pr = get_pr(ctx, &p, number, token.as_deref()).await?;
        if pr.merged {
            return merged_outputs(&pr);
        }
        if !pr.open {
            return Err(StepError::Failed(format!(
                "PR #{number} ({}) is closed; it cannot be merged",
                pr.url
            )));
        }
        if ctx.engine.dry_run {
            return done(Map::from_iter([("dryRun".into(), json!(true))]));
        }
        let method = c.merge_method.clone().unwrap_or_else(|| "merge".into());
        let url = format!("{}/{number}/merge", p.pulls());
        let http = &ctx.engine.http;
        let req = match p.kind {
            Kind::GitHub => http.put(url).json(&json!({"merge_method": method})),
            Kind::GitLab => http.put(url).json(&json!({"squash": method == "squash"})),
            Kind::Gitea => http.post(url).json(&json!({"Do": method})),
            // Completing a pull request is a PATCH of its status, naming the source commit
            // reviewed (a newer push makes Azure DevOps refuse it).
            Kind::AzureDevOps => {
                let strategy = match method.as_str() {
                    "merge" => "noFastForward",
                    other => other,
                };
                http.patch(p.call_url(format!("{}/{number}", p.pulls()))).json(&json!({
                    "status": "completed",
                    "lastMergeSourceCommit": {"commitId": pr.source_commit},
                    "completionOptions": {"mergeStrategy": strategy},
                }))
            }
            Kind::Bitbucket => {
                let strategy = match method.as_str() {
                    "merge" => "merge_commit",
                    other => other,
                };
                http.post(url).json(&json!({"merge_strategy": strategy}))
            }
        };
        match send(&p, req, token.as_deref()).await {
            Ok(_) => {}
            // Not mergeable yet (checks running, 405/406/409/422, by the answer's status):
            // wait when asked to.
            Err(Refusal {
                status: Some(405 | 406 | 409 | 422),
                error: StepError::Invalid(m),
            }) => {
                let why = format!("PR #{number} is not mergeable yet: {m}");
                if !c.wait {
                    return Err(StepError::Failed(format!(
                        "PR #{number} is not ready to merge and wait is disabled ({m})"
                    )));
                }
                // Kargo's pollInterval: tried again no sooner than that.
                return super::waiting("git-merge-pr", why, c.poll_interval.as_deref());
            }
            Err(refused) => return Err(refused.error),
        }
        let pr = get_pr(ctx, &p, number, token.as_deref()).await?;
        if !pr.merged {
            // Azure DevOps completes a pull request in the background: look again.
            return Ok(StepDone::Waiting(format!("PR #{number} ({}) is being merged", pr.url)));
        }
        merged_outputs(&pr)
    })
}

/// What Kargo's schemas of git-wait-for-pr and git-merge-pr require: a repository, and a
/// pollInterval (barge's poll interval applies) that is a duration.
fn check_pr_config(step: &str, c: &GitPr) -> Result<(), StepError> {
    required(step, "repoURL", &c.repo_url)?;
    if let Some(i) = c.poll_interval.as_deref()
        && barge_core::duration::parse_go_duration(i).is_err()
    {
        return Err(StepError::Invalid(format!(
            "{step}: pollInterval {i:?} is not a duration (e.g. 30s, 1m)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_from_urls() {
        let p = Provider::for_repo("https://github.com/acme/config.git", None, None).unwrap();
        assert_eq!(
            (p.kind, p.api.as_str(), p.repo.as_str()),
            (Kind::GitHub, "https://api.github.com", "acme/config")
        );
        let p = Provider::for_repo("https://gitlab.example.com/group/sub/config", None, None).unwrap();
        assert_eq!(
            (p.kind, p.api.as_str()),
            (Kind::GitLab, "https://gitlab.example.com/api/v4")
        );
        assert_eq!(
            p.base(),
            "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fconfig"
        );
        let p = Provider::for_repo(
            "git@git.corp:acme/config.git",
            Some("gitea"),
            Some("http://127.0.0.1:3000/api/v1/"),
        )
        .unwrap();
        assert_eq!(
            (p.kind, p.api.as_str(), p.repo.as_str()),
            (Kind::Gitea, "http://127.0.0.1:3000/api/v1", "acme/config")
        );
        assert!(Provider::for_repo("https://git.corp/acme/config", None, None).is_err());
        assert!(Provider::for_repo("https://github.com/a/b", Some("codecommit"), None).is_err());
        for url in [
            "https://dev.azure.com/acme/shop/_git/config",
            "https://acme@dev.azure.com/acme/shop/_git/config",
            "https://acme.visualstudio.com/DefaultCollection/shop/_git/config",
            "git@ssh.dev.azure.com:v3/acme/shop/config",
        ] {
            let p = Provider::for_repo(url, None, None).unwrap();
            assert_eq!(
                (p.kind, p.base()),
                (
                    Kind::AzureDevOps,
                    "https://dev.azure.com/acme/shop/_apis/git/repositories/config".to_string()
                ),
                "{url}"
            );
        }
        assert!(Provider::for_repo("https://dev.azure.com/acme/config", None, None).is_err());
        let p = Provider::for_repo("git@bitbucket.org:acme/config.git", None, None).unwrap();
        assert_eq!(
            (p.kind, p.pulls()),
            (
                Kind::Bitbucket,
                "https://api.bitbucket.org/2.0/repositories/acme/config/pullrequests".to_string()
            )
        );
        assert!(Provider::for_repo("https://bitbucket.org/acme/team/config", None, None).is_err());
    }
}
