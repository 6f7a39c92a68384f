//! git-open-pr, git-wait-for-pr, git-merge-pr against GitHub, GitLab and Gitea.
//!
//! One flow for all providers; [`Provider`] only maps the four calls (find an open PR, open,
//! get, merge) onto each API. The token is the password of the repository's credentials
//! (as with Kargo's git credentials). Opening is idempotent: an open PR from the same source
//! to the same target is reused, so a replayed promotion never opens a second one.

use super::{StepCtx, StepDone, StepError, StepResult, config, done};
use crate::BoxFuture;
use barge_core::step_config::{GitOpenPr, GitPr};
use serde_json::{Map, Value as Json, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    GitLab,
    Gitea,
}

/// A repository on a hosting service, and how to call its API.
#[derive(Clone, Debug)]
pub struct Provider {
    pub kind: Kind,
    /// e.g. `https://api.github.com`, `https://gitlab.example.com/api/v4`.
    pub api: String,
    /// `owner/repo` (GitLab: the full project path).
    pub repo: String,
}

/// What barge knows of a PR.
#[derive(Clone, Debug, PartialEq)]
pub struct PullRequest {
    pub number: i64,
    pub url: String,
    pub open: bool,
    pub merged: bool,
    pub merge_commit: Option<String>,
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
            Some(other) => {
                return Err(bad(
                    repo_url,
                    &format!("provider {other:?} is not supported (github, gitlab, gitea)"),
                ));
            }
            None if host.contains("github") => Kind::GitHub,
            None if host.contains("gitlab") => Kind::GitLab,
            None if host.contains("gitea") => Kind::Gitea,
            None => {
                return Err(bad(
                    repo_url,
                    "cannot tell the provider from the host; set `provider: github|gitlab|gitea`",
                ));
            }
        };
        let api = match (api, kind) {
            (Some(a), _) => a.trim_end_matches('/').to_string(),
            (None, Kind::GitHub) if host == "github.com" => "https://api.github.com".into(),
            (None, Kind::GitHub) => format!("https://{host}/api/v3"),
            (None, Kind::GitLab) => format!("https://{host}/api/v4"),
            (None, Kind::Gitea) => format!("https://{host}/api/v1"),
        };
        Ok(Provider { kind, api, repo: path })
    }

    pub(super) fn base(&self) -> String {
        match self.kind {
            Kind::GitHub | Kind::Gitea => format!("{}/repos/{}", self.api, self.repo),
            Kind::GitLab => format!("{}/projects/{}", self.api, self.repo.replace('/', "%2F")),
        }
    }

    fn pulls(&self) -> String {
        match self.kind {
            Kind::GitHub | Kind::Gitea => format!("{}/pulls", self.base()),
            Kind::GitLab => format!("{}/merge_requests", self.base()),
        }
    }

    fn authorize(&self, req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
        let req = req.header("Accept", "application/json");
        match (token, self.kind) {
            (None, _) => req,
            (Some(t), Kind::GitHub) => req.header("Authorization", format!("Bearer {t}")),
            (Some(t), Kind::GitLab) => req.header("PRIVATE-TOKEN", t),
            (Some(t), Kind::Gitea) => req.header("Authorization", format!("token {t}")),
        }
    }

    fn parse(&self, v: &Json) -> PullRequest {
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
        }
    }
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

/// The provider of `repo_url` and the token to call it with.
fn provider(ctx: &StepCtx<'_>, repo_url: &str, kind: Option<&str>) -> Result<(Provider, Option<String>), StepError> {
    let p = Provider::for_repo(repo_url, kind, ctx.engine.pr_api_for(repo_url).as_deref())?;
    Ok((p, (ctx.engine.credentials)(repo_url).map(|c| c.password)))
}

pub(super) fn open_pr<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitOpenPr = config("git-open-pr", cfg)?;
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
        };
        let existing = call(ctx, &p, list, token.as_deref()).await?;
        let found = existing.as_array().into_iter().flatten().find(|v| match p.kind {
            Kind::Gitea | Kind::GitHub => v["head"]["ref"] == source.as_str() && v["base"]["ref"] == target.as_str(),
            Kind::GitLab => v["source_branch"] == source.as_str() && v["target_branch"] == target.as_str(),
        });
        let pr = match found {
            Some(v) => p.parse(v),
            None => {
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
    let v = call(ctx, p, ctx.engine.http.get(format!("{}/{number}", p.pulls())), token).await?;
    Ok(p.parse(&v))
}

fn merged_outputs(pr: &PullRequest) -> StepResult {
    done(Map::from_iter([
        ("commit".into(), json!(pr.merge_commit.clone().unwrap_or_default())),
        ("pr".into(), json!({"id": pr.number, "url": pr.url, "merged": true})),
    ]))
}

pub(super) fn wait_for_pr<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitPr = config("git-wait-for-pr", cfg)?;
        let _ = (&c.poll_interval, c.insecure_skip_tls_verify);
        let number = pr_number(ctx, &c, "git-wait-for-pr")?;
        let (p, token) = provider(ctx, &c.repo_url, c.provider.as_deref())?;
        let pr = get_pr(ctx, &p, number, token.as_deref()).await?;
        if pr.merged {
            merged_outputs(&pr)
        } else if pr.open {
            // A webhook announcing the PR closed (GitHub's `pull_request`, by its web URL)
            // has it checked again at once.
            Ok(StepDone::WaitingOn {
                why: format!("waiting for PR #{number} ({}) to be merged", pr.url),
                wake: pr.url.clone(),
            })
        } else {
            Err(StepError::Failed(format!(
                "PR #{number} ({}) was closed without being merged",
                pr.url
            )))
        }
    })
}

pub(super) fn merge_pr<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitPr = config("git-merge-pr", cfg)?;
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
        };
        match call(ctx, &p, req, token.as_deref()).await {
            Ok(_) => {}
            // Not mergeable yet (checks running, 405/409/422): wait when asked to.
            Err(StepError::Invalid(m))
                if c.wait && ["405", "406", "409", "422"].iter().any(|code| m.contains(code)) =>
            {
                return Ok(StepDone::Waiting(format!("PR #{number} is not mergeable yet: {m}")));
            }
            Err(e) => return Err(e),
        }
        merged_outputs(&get_pr(ctx, &p, number, token.as_deref()).await?)
    })
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
        assert!(Provider::for_repo("https://github.com/a/b", Some("azure"), None).is_err());
    }
}
