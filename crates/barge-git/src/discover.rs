//! Git subscription discovery with Kargo's semantics (its `api/v1alpha1/warehouse_types.go`):
//! NewestFromBranch (the
//! default), SemVer, Lexical and NewestTag; allow/ignore tag regexes, include/exclude paths
//! (exact, `glob:`, `regex:`/`regexp:`), `expressionFilter`, `since`, `strictSemvers`,
//! `discoveryLimit`.

use crate::{GitError, git};
use barge_core::model::kargo::GitSubscription;
use barge_core::rewrite::{Rewrite, apply};
use barge_core::select::{PathFilter, TagFilter};
use barge_core::semver::Constraint;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone)]
pub struct GitConfig {
    pub rewrites: Vec<Rewrite>,
    /// HTTPS credentials by repository URL (as written in the subscription).
    pub credentials: Option<crate::CredentialLookup>,
    /// Time limit for each git command.
    pub timeout: Duration,
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            rewrites: Vec::new(),
            credentials: None,
            timeout: Duration::from_secs(300),
        }
    }
}

/// One candidate commit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredCommit {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The subject line.
    pub message: String,
    pub author: String,
    pub committer: String,
    /// Commit date (branch strategy) or the tag's creation date (tag strategies), RFC 3339.
    pub date: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitDiscovery {
    /// Not serialized: reports carry the subscription's `repoURL` beside this.
    #[serde(rename = "repoURL", skip_serializing, default)]
    pub repo_url: String,
    pub strategy: String,
    /// The subscription as configured when this was computed: a pass is reused only for the
    /// same subscription.
    #[serde(default)]
    pub fingerprint: String,
    /// True when the remote's refs had not moved and the previous candidates were reused
    /// without fetching.
    #[serde(default)]
    pub reused: bool,
    /// Branch heads or tags the remote advertised: compare with the last pass to skip work.
    pub observed_refs: Vec<(String, String)>,
    /// Best first.
    pub candidates: Vec<DiscoveredCommit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    NewestFromBranch,
    SemVer,
    Lexical,
    NewestTag,
}

struct Filters {
    tags: TagFilter,
    paths: PathFilter,
    expression: Option<String>,
}

impl Filters {
    fn expression_ok(&self, vars: &[(&str, &str)], url: &str) -> Result<bool, GitError> {
        let Some(code) = &self.expression else { return Ok(true) };
        let mut ctx = expr::Context::default();
        for (k, v) in vars {
            ctx.insert(*k, *v);
        }
        // barge_core's compile bounds the expression's depth before expr-lang recurses over it.
        let evaluated =
            barge_core::expr::compile(code).and_then(|program| expr::run(&program, &ctx).map_err(|e| e.to_string()));
        match evaluated {
            Ok(expr::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(GitError::Invalid {
                url: url.to_string(),
                message: format!("expressionFilter must return true or false, not {other:?}"),
            }),
            Err(e) => Err(GitError::Invalid {
                url: url.to_string(),
                message: format!("expressionFilter failed: {e}"),
            }),
        }
    }
}

/// Discovers one git subscription. With the `previous` pass of the same subscription, a single
/// `git ls-remote` decides: when no ref moved, its candidates are reused and nothing is fetched.
pub async fn discover_git(
    sub: &GitSubscription,
    cfg: &GitConfig,
    previous: Option<&GitDiscovery>,
) -> Result<GitDiscovery, GitError> {
    let fingerprint = serde_json::to_string(sub).unwrap_or_default();
    let previous = previous.filter(|p| p.fingerprint == fingerprint);
    let invalid = |message: String| GitError::Invalid {
        url: crate::redact(&sub.repo_url),
        message,
    };
    let strategy = match sub.commit_selection_strategy.as_deref().unwrap_or("") {
        "" | "NewestFromBranch" => Strategy::NewestFromBranch,
        "SemVer" => Strategy::SemVer,
        "Lexical" => Strategy::Lexical,
        "NewestTag" => Strategy::NewestTag,
        other => return Err(invalid(format!("unknown commitSelectionStrategy {other:?}"))),
    };
    let filters = Filters {
        tags: TagFilter::new(
            sub.allow_tags.as_deref(),
            &sub.allow_tags_regexes,
            &sub.ignore_tags,
            &sub.ignore_tags_regexes,
        )
        .map_err(&invalid)?,
        paths: PathFilter::new(&sub.include_paths, &sub.exclude_paths).map_err(&invalid)?,
        expression: sub.expression_filter.clone().filter(|e| !e.trim().is_empty()),
    };
    let constraint = match (
        strategy,
        sub.semver_constraint.as_deref().filter(|c| !c.trim().is_empty()),
    ) {
        (Strategy::SemVer, Some(c)) => Some(Constraint::parse(c).map_err(|e| invalid(e.to_string()))?),
        _ => None,
    };
    let limit = barge_core::select::discovery_limit(sub.discovery_limit);
    let url = apply(&cfg.rewrites, &sub.repo_url);
    let dir = tempfile::Builder::new()
        .prefix("barge-git-")
        .tempdir()
        .map_err(|e| invalid(format!("cannot create a work directory: {e}")))?;
    let credentials = cfg.credentials.as_ref().and_then(|lookup| lookup(&sub.repo_url));
    let run = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        let url = url.clone();
        let timeout = cfg.timeout;
        let credentials = credentials.clone();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::git_env(Some(&dir), &refs, &url, timeout, &[], credentials.as_ref()).await
        }
    };
    let text = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    git(Some(dir.path()), &["init", "-q", "--bare"], &url, cfg.timeout).await?;
    let filter: Vec<String> = if sub.blobless == Some(true) {
        vec!["--filter=blob:none".into()]
    } else {
        Vec::new()
    };
    // Nothing moved since the previous pass of this subscription: reuse it, fetch nothing.
    let reuse = |observed: &[(String, String)]| {
        previous.filter(|p| p.observed_refs == observed).map(|p| GitDiscovery {
            reused: true,
            ..p.clone()
        })
    };
    let fetch_args = |refspec: String| -> Vec<String> {
        let mut args: Vec<String> = vec!["fetch".into(), "-q".into(), "--no-tags".into()];
        args.extend(filter.iter().cloned());
        args.extend([url.clone(), refspec]);
        args
    };

    let (observed_refs, candidates) = if strategy == Strategy::NewestFromBranch {
        // Which branch: the subscription's, or the remote's default.
        let branch = match &sub.branch {
            Some(b) if !b.is_empty() => b.clone(),
            _ => {
                let out = text(run(vec!["ls-remote".into(), "--symref".into(), url.clone(), "HEAD".into()]).await?);
                out.lines()
                    .find_map(|l| {
                        l.strip_prefix("ref: refs/heads/")
                            .and_then(|r| r.split('\t').next())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "main".into())
            }
        };
        let heads = text(run(vec!["ls-remote".into(), url.clone(), format!("refs/heads/{branch}")]).await?);
        let head = heads
            .split_whitespace()
            .next()
            .ok_or_else(|| GitError::NotFound {
                url: crate::redact(&sub.repo_url),
                message: format!("branch {branch:?} does not exist"),
            })?
            .to_string();
        let observed = vec![(branch.clone(), head.clone())];
        if let Some(p) = reuse(&observed) {
            return Ok(p);
        }
        run(fetch_args(format!("+refs/heads/{branch}:refs/heads/{branch}"))).await?;
        let mut log = vec![
            "log".into(),
            "--format=%H%x1f%cI%x1f%an <%ae>%x1f%cn <%ce>%x1f%s".into(),
        ];
        if let Some(since) = sub.since.as_deref().filter(|s| !s.is_empty()) {
            log.push(format!("--since={since}"));
        }
        log.push(format!("refs/heads/{branch}"));
        let mut out = Vec::new();
        for line in text(run(log).await?).lines() {
            let f: Vec<&str> = line.splitn(5, '\u{1f}').collect();
            let [id, date, author, committer, subject] = f[..] else {
                continue;
            };
            if filters.paths.is_set() && !filters.paths.allows(&changed_paths(&run, id).await?) {
                continue;
            }
            if !filters.expression_ok(
                &[
                    ("id", id),
                    ("commitDate", date),
                    ("author", author),
                    ("committer", committer),
                    ("subject", subject),
                ],
                &sub.repo_url,
            )? {
                continue;
            }
            out.push(DiscoveredCommit {
                id: id.into(),
                branch: Some(branch.clone()),
                tag: None,
                message: subject.into(),
                author: author.into(),
                committer: committer.into(),
                date: date.into(),
            });
            if out.len() == limit {
                break;
            }
        }
        (observed, out)
    } else {
        let listed = text(run(vec!["ls-remote".into(), "--tags".into(), url.clone()]).await?);
        let mut observed: Vec<(String, String)> = Vec::new();
        for line in listed.lines() {
            let Some((sha, name)) = line.split_once('\t') else {
                continue;
            };
            let Some(tag) = name.strip_prefix("refs/tags/") else {
                continue;
            };
            match tag.strip_suffix("^{}") {
                // A peeled annotated tag: its commit replaces the tag object's id.
                Some(t) => {
                    if let Some(e) = observed.iter_mut().find(|(n, _)| n == t) {
                        e.1 = sha.to_string();
                    }
                }
                None => observed.push((tag.to_string(), sha.to_string())),
            }
        }
        observed.sort();
        if let Some(p) = reuse(&observed) {
            return Ok(p);
        }
        if !observed.is_empty() {
            run(fetch_args("+refs/tags/*:refs/tags/*".into())).await?;
        }
        let refs = text(run(vec![
            "for-each-ref".into(),
            "--format=%(refname:short)%1f%(creatordate:iso-strict)%1f%(taggername) %(taggeremail)%1f%(contents:subject)".into(),
            "refs/tags".into(),
        ])
        .await?);
        let mut tags: Vec<(String, String, String, String)> = refs
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.splitn(4, '\u{1f}').collect();
                (f.len() == 4).then(|| {
                    (
                        f[0].to_string(),
                        f[1].to_string(),
                        f[2].trim().to_string(),
                        f[3].to_string(),
                    )
                })
            })
            .filter(|(name, ..)| filters.tags.allows(name))
            .collect();
        let strict = sub.strict_semvers.unwrap_or(true);
        match strategy {
            // Every matching tag, in order: the path and expression filters below may skip some.
            Strategy::SemVer => {
                tags = barge_core::select::newest_versions(tags, |t| &t.0, strict, constraint.as_ref(), usize::MAX)
            }
            Strategy::Lexical => tags.sort_by(|a, b| b.0.cmp(&a.0)),
            _ => tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0))),
        }
        let mut out = Vec::new();
        for (tag, created, tagger, annotation) in tags {
            let info = text(
                run(vec![
                    "log".into(),
                    "-1".into(),
                    "--format=%H%x1f%an <%ae>%x1f%cn <%ce>%x1f%s".into(),
                    format!("refs/tags/{tag}^{{commit}}"),
                ])
                .await?,
            );
            let f: Vec<&str> = info.trim_end().splitn(4, '\u{1f}').collect();
            let [id, author, committer, subject] = f[..] else {
                continue;
            };
            if filters.paths.is_set() && !filters.paths.allows(&changed_paths(&run, id).await?) {
                continue;
            }
            let vars = [
                ("tag", tag.as_str()),
                ("id", id),
                ("creatorDate", created.as_str()),
                ("author", author),
                ("committer", committer),
                ("subject", subject),
                ("tagger", tagger.as_str()),
                ("annotation", annotation.as_str()),
            ];
            if !filters.expression_ok(&vars, &sub.repo_url)? {
                continue;
            }
            out.push(DiscoveredCommit {
                id: id.into(),
                branch: None,
                tag: Some(tag.clone()),
                message: subject.into(),
                author: author.into(),
                committer: committer.into(),
                date: created,
            });
            if out.len() == limit {
                break;
            }
        }
        (observed, out)
    };
    Ok(GitDiscovery {
        repo_url: sub.repo_url.clone(),
        strategy: format!("{strategy:?}"),
        fingerprint,
        reused: false,
        observed_refs,
        candidates,
    })
}

async fn changed_paths<F, Fut>(run: &F, commit: &str) -> Result<Vec<String>, GitError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<std::process::Output, GitError>>,
{
    let out = run(vec![
        "diff-tree".into(),
        "--no-commit-id".into(),
        "--name-only".into(),
        "-r".into(),
        "-m".into(),
        "--root".into(),
        commit.into(),
    ])
    .await?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}
