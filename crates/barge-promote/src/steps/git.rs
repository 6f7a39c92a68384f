//! git-clone, git-clear, git-commit, git-push, git-tag (Kargo's `pkg/promotion/runner/builtin/git_*.go`);
//! github-push (`github.rs`) shares the checkouts and the dry run.
//!
//! Checkouts are worktrees of the engine's repository cache. Which repository and branch a
//! path belongs to is kept in `<work>.checkouts.json`, beside the work directory, so a resumed
//! promotion finds its checkouts again.

use super::{StepCtx, StepError, StepResult, config, done, required};
use crate::BoxFuture;
use barge_core::step_config::{GitClone, GitCommit, GitPush, GitTag, PathOnly};
use barge_git::GitError;
use barge_git::cache::{ChainLink, ChainTurn, Checkout, CheckoutOptions};
use barge_git::repo::{Author, PushFailure, PushPolicy, Workspace};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What barge remembers about a checkout between steps (and across restarts).
#[derive(Clone, Serialize, Deserialize)]
struct Recorded {
    /// Where git fetches and pushes (after rewrites).
    url: String,
    /// The URL as configured (for links and credentials).
    original_url: String,
    #[serde(default)]
    signing: Option<barge_git::repo::Signing>,
    /// The commit the checkout started from.
    #[serde(default)]
    base: Option<String>,
    branch: Option<String>,
    author: Option<(String, String)>,
    /// git-clone's `insecureSkipTLSVerify`: later git commands of the checkout (pushes) skip
    /// TLS verification too, as Kargo's clone remembers it.
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

/// `<work>.<suffix>`: promotion state kept beside the work directory, out of the checkouts.
fn sibling(ctx: &StepCtx<'_>, suffix: &str) -> PathBuf {
    sibling_of(ctx.work, suffix)
}

fn sibling_of(work: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = work.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    work.with_file_name(name)
}

fn checkouts_file(work: &std::path::Path) -> PathBuf {
    sibling_of(work, "checkouts.json")
}

/// The checkouts git-clone made in this promotion, by path relative to the work directory.
fn load_checkouts(work: &std::path::Path) -> BTreeMap<String, Recorded> {
    std::fs::read_to_string(checkouts_file(work))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Hands a finished promotion's checkouts back to the cache and deletes its work directory.
pub(crate) async fn release(engine: &crate::Engine, work: &std::path::Path) {
    for (rel, rec) in load_checkouts(work) {
        engine.cache.recycle(&rec.url, &work.join(rel)).await;
    }
    let _ = std::fs::remove_file(checkouts_file(work));
    let _ = std::fs::remove_dir_all(sibling_of(work, "gnupg"));
    let _ = std::fs::remove_dir_all(work);
}

pub(super) fn git_error(e: GitError) -> StepError {
    StepError::of_class(e.class(), e.to_string())
}

/// The innermost checkout (one git-clone made) holding `path`: its path in the work directory
/// and what was recorded of it.
fn checkout_at(ctx: &StepCtx<'_>, path: &str) -> Result<(String, Recorded), StepError> {
    let dir = ctx.path(path)?;
    let rel = dir.strip_prefix(ctx.work).unwrap_or(&dir).to_string_lossy().to_string();
    load_checkouts(ctx.work)
        .into_iter()
        .filter(|(p, _)| rel == *p || rel.starts_with(&format!("{p}/")))
        .max_by_key(|(p, _)| p.len())
        .ok_or_else(|| StepError::Invalid(format!("`{path}` is not a git checkout: clone it with git-clone first")))
}

/// Records that the checkout at `path` now starts from `commit` (its own commits are above it).
pub(super) fn record_base(ctx: &StepCtx<'_>, path: &str, commit: &str) -> Result<(), StepError> {
    let (prefix, _) = checkout_at(ctx, path)?;
    let mut all = load_checkouts(ctx.work);
    if let Some(rec) = all.get_mut(&prefix) {
        rec.base = Some(commit.to_string());
    }
    let text = serde_json::to_string(&all).map_err(|e| StepError::Invalid(e.to_string()))?;
    std::fs::write(checkouts_file(ctx.work), text)
        .map_err(|e| StepError::Invalid(format!("cannot record checkouts: {e}")))
}

/// The checkout at `path` (one git-clone made), as a workspace.
pub(super) fn workspace(ctx: &StepCtx<'_>, path: &str) -> Result<(Workspace, String), StepError> {
    let (prefix, rec) = checkout_at(ctx, path)?;
    let author = rec
        .author
        .map_or_else(|| ctx.engine.author.clone(), |(name, email)| Author { name, email });
    let root = ctx.work.join(prefix);
    let ws = Workspace::open(
        &root,
        &rec.url,
        rec.branch,
        (ctx.engine.credentials)(&rec.original_url),
        author,
    )
    .with_signing(rec.signing)
    .with_base(rec.base)
    .with_insecure_tls(rec.insecure_skip_tls_verify);
    Ok((ws, rec.original_url))
}

pub(super) fn clone<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitClone = config("git-clone", cfg)?;
        required("git-clone", "repoURL", &c.repo_url)?;
        if c.checkout.is_empty() {
            return Err(StepError::Invalid(
                "git-clone: `checkout` needs at least one checkout".into(),
            ));
        }
        let mut aliases = std::collections::BTreeSet::new();
        for (i, co) in c.checkout.iter().enumerate() {
            required("git-clone", &format!("checkout[{i}].path"), &co.path)?;
            if let Some(alias) = co.alias.as_deref().filter(|a| !a.is_empty())
                && !aliases.insert(alias)
            {
                return Err(StepError::Invalid(format!(
                    "git-clone: duplicate checkout alias {alias:?} at checkout[{i}]"
                )));
            }
        }
        if let Some(a) = &c.author {
            // Kargo's schema: an author has both.
            required("git-clone", "author.name", a.name.as_deref().unwrap_or_default())?;
            required("git-clone", "author.email", a.email.as_deref().unwrap_or_default())?;
        }
        // Commits in these checkouts are signed with this key, imported into a keyring of the
        // promotion's own (beside the work directory, removed with it).
        let signing = match c
            .author
            .as_ref()
            .and_then(|a| a.signing_key.as_deref())
            .filter(|k| !k.trim().is_empty())
        {
            Some(key) => Some(
                barge_git::repo::Signing::import(&sibling(ctx, "gnupg"), key)
                    .await
                    .map_err(git_error)?,
            ),
            None => None,
        };
        let author = c.author.as_ref().map(|a| {
            (
                a.name.clone().unwrap_or_else(|| ctx.engine.author.name.clone()),
                a.email.clone().unwrap_or_else(|| ctx.engine.author.email.clone()),
            )
        });
        // Credentials follow the URL as written; the fetch goes to its rewrite.
        let credentials = (ctx.engine.credentials)(&c.repo_url);
        let fetch_url = barge_core::rewrite::apply(&ctx.engine.rewrites, &c.repo_url);
        let mut recorded = load_checkouts(ctx.work);
        let mut commits = Map::new();
        for co in &c.checkout {
            check_sparse(&co.path, &co.sparse)?;
            // The deprecated fromFreight: the commit the Freight carries for this repository.
            let from_freight = if co.from_freight {
                let origin = co.from_origin.as_ref().and_then(|o| o["name"].as_str());
                let found = barge_core::eval::commit_from(&ctx.data.freight, &c.repo_url, origin)
                    .map_err(|e| StepError::Invalid(format!("git-clone checkout `{}`: {e}", co.path)))?;
                Some(
                    found
                        .ok_or_else(|| {
                            StepError::Invalid(format!(
                                "git-clone checkout `{}`: fromFreight, but the Freight has no commit of {}",
                                co.path,
                                barge_core::secret::redact_url(&c.repo_url)
                            ))
                        })?
                        .id,
                )
            } else {
                None
            };
            // An empty branch, tag or commit is not set (Kargo's schema treats them so).
            let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
            let (branch, tag) = (set(&co.branch), set(&co.tag));
            let commit = set(&co.commit).or(from_freight);
            let what = match (&branch, &tag, &commit) {
                (Some(b), None, None) => Checkout::Branch {
                    name: b.clone(),
                    create: co.create,
                },
                (None, Some(t), None) => Checkout::Tag(t.clone()),
                (None, None, Some(s)) => Checkout::Commit(s.clone()),
                (None, None, None) => Checkout::Branch {
                    name: "main".into(),
                    create: co.create,
                },
                _ => {
                    return Err(StepError::Invalid(format!(
                        "git-clone checkout `{}`: set only one of branch, tag, commit",
                        co.path
                    )));
                }
            };
            let dir = ctx.path(&co.path)?;
            let author_ = author
                .clone()
                .map_or_else(|| ctx.engine.author.clone(), |(name, email)| Author { name, email });
            // `blobless` asks for what barge's fetches always are (blobless where the server
            // allows it).
            let _ = c.blobless;
            let options = CheckoutOptions {
                sparse: co.sparse.clone(),
                insecure_skip_tls_verify: c.insecure_skip_tls_verify,
                recurse_submodules: c.recurse_submodules,
                rewrites: ctx.engine.rewrites.clone(),
            };
            let ws = ctx
                .engine
                .cache
                .checkout_with(&fetch_url, &what, &dir, credentials.clone(), author_, &options)
                .await
                .map_err(git_error)?;
            let rel = dir.strip_prefix(ctx.work).unwrap_or(&dir).to_string_lossy().to_string();
            recorded.insert(
                rel,
                Recorded {
                    url: fetch_url.clone(),
                    original_url: c.repo_url.clone(),
                    branch: branch
                        .clone()
                        .or_else(|| commit.is_none().then(|| "main".to_string()))
                        .filter(|_| tag.is_none()),
                    author: author.clone(),
                    signing: signing.clone(),
                    base: ws.base().map(str::to_string),
                    insecure_skip_tls_verify: c.insecure_skip_tls_verify,
                },
            );
            let head = match ws.base() {
                Some(sha) => sha.to_string(),
                None => ws.head().await.unwrap_or_default(),
            };
            commits.insert(co.alias.clone().unwrap_or_else(|| co.path.clone()), json!(head));
        }
        let text = serde_json::to_string(&recorded).map_err(|e| StepError::Invalid(e.to_string()))?;
        std::fs::write(checkouts_file(ctx.work), text)
            .map_err(|e| StepError::Invalid(format!("cannot record checkouts: {e}")))?;
        let mut out = Map::new();
        out.insert("commits".into(), Json::Object(commits));
        done(out)
    })
}

/// A sparse checkout's directories must be paths inside the repository, without globs: git's
/// cone mode takes directories only (Kargo refuses the same).
fn check_sparse(checkout: &str, dirs: &[String]) -> Result<(), StepError> {
    for dir in dirs {
        let bad = if dir.trim().is_empty() {
            Some("is empty")
        } else if dir.starts_with('/') {
            Some("is absolute; use a path relative to the repository's root")
        } else if dir.split('/').any(|part| part == "..") {
            Some("leaves the repository")
        } else if dir.contains(['*', '?', '[']) {
            Some("is a glob; sparse checkouts take directories (e.g. `stages/prod`)")
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(StepError::Invalid(format!(
                "git-clone checkout `{checkout}`: sparse path {dir:?} {why}"
            )));
        }
    }
    Ok(())
}

pub(super) fn clear<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: PathOnly = config("git-clear", cfg)?;
        required("git-clear", "path", &c.path)?;
        let dir = ctx.path(&c.path)?;
        let entries = std::fs::read_dir(&dir).map_err(|e| StepError::Invalid(format!("git-clear {}: {e}", c.path)))?;
        for entry in entries.flatten() {
            // `.git` of a worktree is a file pointing at the cache: it stays.
            if entry.file_name() == ".git" {
                continue;
            }
            let p = entry.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| StepError::Invalid(format!("git-clear {}: {e}", p.display())))?;
        }
        done(Map::new())
    })
}

pub(super) fn commit<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitCommit = config("git-commit", cfg)?;
        required("git-commit", "path", &c.path)?;
        if let Some(a) = &c.author {
            // Kargo's schema: an author has both.
            required("git-commit", "author.name", a.name.as_deref().unwrap_or_default())?;
            required("git-commit", "author.email", a.email.as_deref().unwrap_or_default())?;
        }
        let mut message = c.message.clone().unwrap_or_default();
        // The deprecated messageFromSteps: the commitMessage outputs of the named steps.
        for alias in &c.message_from_steps {
            if let Some(m) = ctx
                .scope
                .outputs
                .get(alias)
                .and_then(|o| o.get("commitMessage"))
                .and_then(Json::as_str)
            {
                if !message.is_empty() {
                    message.push('\n');
                }
                message.push_str(m);
            }
        }
        if message.trim().is_empty() {
            // e.g. messageFromSteps naming a step that has no such alias: git refuses an
            // empty message, so barge writes a descriptive one instead of failing.
            let p = ctx.promotion;
            message = format!(
                "Promote {} to {}",
                p.freight.alias.as_deref().unwrap_or(&p.freight.metadata.name),
                p.stage
            );
            tracing::warn!(step = %ctx.step.alias, "git-commit: the message is empty; using {message:?}");
        }
        let (mut ws, _) = workspace(ctx, &c.path)?;
        if let Some(a) = &c.author {
            // The deprecated per-commit author.
            ws = ws.with_author(Author {
                name: a.name.clone().unwrap_or_else(|| ctx.engine.author.name.clone()),
                email: a.email.clone().unwrap_or_else(|| ctx.engine.author.email.clone()),
            });
        }
        let promotion = &ctx.promotion.name;
        // A replay after a crash: this promotion's commit may already be on the branch.
        // (Only then: looking costs a fetch.)
        if ctx.replay
            && let Ok(branch) = ws.followed_branch()
            && let Some(landed) = ws
                .find_promotion_commit_on(branch, promotion)
                .await
                .map_err(git_error)?
        {
            ws.reset_to(&landed).await.map_err(git_error)?;
            // It is on the branch already: nothing of this promotion's is left to push.
            record_base(ctx, &c.path, &landed)?;
            tracing::info!(commit = %landed, "git-commit: the promotion's commit is already on the branch; adopting it");
            return done(commit_outputs(&landed));
        }
        let sha = match ws.commit_all(&message, promotion).await.map_err(git_error)? {
            Some(sha) => sha,
            // Nothing changed: Kargo skips the commit and reports HEAD.
            None => ws.head().await.unwrap_or_default(),
        };
        done(commit_outputs(&sha))
    })
}

fn commit_outputs(sha: &str) -> Map<String, Json> {
    let mut out = Map::new();
    out.insert("commit".into(), json!(sha));
    out
}

pub(super) fn push<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitPush = config("git-push", cfg)?;
        let _ = &c.provider;
        required("git-push", "path", &c.path)?;
        // The config's own conflicts first, before the checkout is looked at.
        let tag_set = c.tag.as_deref().is_some_and(|t| !t.is_empty());
        let branch_set = c.target_branch.as_deref().is_some_and(|b| !b.is_empty());
        if tag_set && (branch_set || c.generate_target_branch) {
            return Err(StepError::Invalid(
                "git-push: set tag, targetBranch or generateTargetBranch, only one".into(),
            ));
        }
        if branch_set && c.generate_target_branch {
            return Err(StepError::Invalid(
                "git-push: set targetBranch or generateTargetBranch, not both".into(),
            ));
        }
        if let Some(n) = c.max_attempts
            && !(1..=i32::MAX as u32).contains(&n)
        {
            return Err(StepError::Invalid(format!(
                "git-push: maxAttempts must be between 1 and {}, not {n}",
                i32::MAX
            )));
        }
        let (ws, original_url) = workspace(ctx, &c.path)?;
        if c.force && c.tag.is_some() {
            return Err(StepError::Invalid("git-push: set tag or force, not both".into()));
        }
        if let Some(tag) = &c.tag {
            if ctx.engine.dry_run {
                return done(Map::from_iter([("tag".into(), json!(tag))]));
            }
            // Tag pushes are never retried (Kargo's `pkg/promotion/runner/builtin/git_pusher.go`).
            ws.run(&["push", "-q", "origin", &format!("refs/tags/{tag}")])
                .await
                .map_err(git_error)?;
            // The tagged commit (not the checkout's head) and its link, as Kargo's outputs.
            let sha = ws
                .run(&["rev-parse", &format!("refs/tags/{tag}^{{commit}}")])
                .await
                .map_err(git_error)?
                .trim()
                .to_string();
            let mut out = Map::from_iter([("tag".into(), json!(tag)), ("commit".into(), json!(sha))]);
            if let Some(url) = commit_url(&original_url, &sha) {
                out.insert("commitURL".into(), json!(url));
            }
            return done(out);
        }
        let branch = match (&c.target_branch, c.generate_target_branch) {
            (Some(_), true) => {
                return Err(StepError::Invalid(
                    "git-push: set targetBranch or generateTargetBranch, not both".into(),
                ));
            }
            (Some(b), false) => b.clone(),
            (None, true) => format!("kargo/promotion/{}", ctx.promotion.name),
            (None, false) => ws.followed_branch().map_err(git_error)?.to_string(),
        };
        let mut out = Map::new();
        out.insert("branch".into(), json!(branch));
        if ctx.engine.dry_run {
            return dry_run(&ws, &original_url, &branch).await;
        }
        if c.force {
            let sha = force_push(ctx, &ws, &branch).await.map_err(git_error)?;
            out.insert("commit".into(), json!(sha));
            if let Some(url) = commit_url(&original_url, &sha) {
                out.insert("commitURL".into(), json!(url));
            }
            return done(out);
        }
        let mut policy = ctx.engine.push_policy.clone();
        if let Some(n) = c.max_attempts {
            policy.max_attempts = n.max(1);
        }
        // A merge conflict is terminal (its class says so); transient faults may pass.
        let sha = push_in_chain(ctx, &ws, &branch, &policy).await.map_err(git_error)?;
        out.insert("commit".into(), json!(sha));
        if let Some(url) = commit_url(&original_url, &sha) {
            out.insert("commitURL".into(), json!(url));
        }
        done(out)
    })
}

/// What pushing the checkout to `branch` would do, for `--dry-run`: the `repoURL` (without
/// credentials), `branch`, `commit`, the changed `files` and the `diff` outputs, against the
/// branch as it is now on the remote (all of it for a branch the remote does not have yet).
pub(super) async fn dry_run(ws: &Workspace, original_url: &str, branch: &str) -> StepResult {
    let base = match ws
        .run(&["fetch", "-q", "--no-tags", "origin", &format!("refs/heads/{branch}")])
        .await
    {
        Ok(_) => "FETCH_HEAD".to_string(),
        Err(GitError::NotFound { .. }) => "4b825dc642cb6eb9a060e54bf8d69288fbee4904".to_string(), // the empty tree
        Err(e) => return Err(git_error(e)),
    };
    let diff = ws.run(&["diff", &base, "HEAD"]).await.map_err(git_error)?;
    let files = ws
        .run(&["diff", "--name-only", "-z", &base, "HEAD"])
        .await
        .map_err(git_error)?;
    let files: Vec<&str> = files.split('\0').filter(|f| !f.is_empty()).collect();
    done(Map::from_iter([
        ("repoURL".into(), json!(barge_core::secret::redact_url(original_url))),
        ("branch".into(), json!(branch)),
        ("commit".into(), json!(ws.head().await.unwrap_or_default())),
        ("files".into(), json!(files)),
        ("diff".into(), json!(diff)),
    ]))
}

/// Pushes the workspace's commits to `branch` with the other promotions of this process
/// pushing there. Pushes to one branch are serialised (as in Kargo; across the processes
/// sharing the cache too), and batched: each
/// promotion replays its own commits onto the newest commit waiting to be pushed (no fetch:
/// the object store is shared), and whoever's turn it is pushes the newest, landing every
/// commit below it at once. Should the branch have moved under someone else's push, git
/// refuses the push, the chain breaks, and each member integrates with the remote branch and
/// pushes alone.
///
/// A promotion aborted after joining a chain may still see its commit land through a later
/// member's push, as it would have had its own push been a moment quicker.
async fn push_in_chain(
    ctx: &StepCtx<'_>,
    ws: &Workspace,
    branch: &str,
    policy: &PushPolicy,
) -> Result<String, GitError> {
    let cache = &ctx.engine.cache;
    let url = ws.url().to_string();
    let head = ws.head().await?;
    if ws.own_base().as_deref() == Some(head.as_str()) {
        // Nothing of its own to push (git-commit found nothing to commit).
        let _turn = cache.push_turn(&url, branch).await?;
        let sha = ws.push_to(branch, policy).await?;
        cache.set_last_pushed(&url, branch, &sha);
        return Ok(sha);
    }
    let max_attempts = policy.max_attempts.max(1);
    policy
        .run(branch, |attempt| {
            let url = url.as_str();
            async move {
                // After a rejection, the first to join the next chain integrates with the
                // remote branch.
                let mut fetch_first = attempt > 1;
                // After a rejection the turn comes first: integrating with the branch during
                // it, no process sharing the cache can move the branch before this push.
                let early_turn = if fetch_first {
                    Some(cache.push_turn(url, branch).await?)
                } else {
                    None
                };
                let link = match join_chain(ctx, ws, branch, &mut fetch_first).await? {
                    Joined::Link(link) => link,
                    Joined::Landed(commit) => return Ok(commit),
                };
                let _turn = match early_turn {
                    Some(turn) => turn,
                    None => cache.push_turn(url, branch).await?,
                };
                match cache.chain_turn(&link) {
                    ChainTurn::Landed => Ok(link.commit),
                    ChainTurn::Push(newest) => match ws.push_commit(&newest, branch).await {
                        Ok(()) => {
                            cache.chain_pushed(&link, &newest);
                            Ok(link.commit)
                        }
                        Err(e) => {
                            // Whatever failed, the commits stacked on this one must not land
                            // through it.
                            cache.chain_break(&link);
                            Err(PushFailure::of_push(e))
                        }
                    },
                    // Another member's push was rejected: join the next chain.
                    ChainTurn::Broken => Err(PushFailure::branch_moved(GitError::Transient {
                        url: barge_core::secret::redact_url(url),
                        message: format!("the branch {branch} kept moving: not pushed after {max_attempts} attempts"),
                    })),
                }
            }
        })
        .await
}

/// Kargo's `force`: the branch becomes this checkout's HEAD, whatever it held (commits only
/// the remote had are dropped from it). Nothing is integrated or retried: a forced push is not
/// refused because the branch moved. It waits for its turn like any push to the branch.
async fn force_push(ctx: &StepCtx<'_>, ws: &Workspace, branch: &str) -> Result<String, GitError> {
    let cache = &ctx.engine.cache;
    let _turn = cache.push_turn(ws.url(), branch).await?;
    let sha = ws.head().await?;
    ws.run(&["push", "-q", "origin", &format!("+{sha}:refs/heads/{branch}")])
        .await?;
    cache.set_last_pushed(ws.url(), branch, &sha);
    Ok(sha)
}

/// What joining a branch's chain came to.
enum Joined {
    Link(ChainLink),
    /// The remote branch already holds the promotion's commit (an earlier life of the
    /// promotion pushed it): nothing to push.
    Landed(String),
}

/// Replays the workspace's own commits onto the branch's chain (its newest waiting commit,
/// else this process's last push, else, with `fetch_first`, the remote branch as fetched) and
/// joins it, one promotion at a time.
async fn join_chain(
    ctx: &StepCtx<'_>,
    ws: &Workspace,
    branch: &str,
    fetch_first: &mut bool,
) -> Result<Joined, GitError> {
    let cache = &ctx.engine.cache;
    let url = ws.url();
    let chain = cache.chain_lock(url, branch);
    let _replaying = chain.lock().await;
    loop {
        let (generation, newest) = cache.chain_newest(url, branch);
        let onto = match newest {
            Some(newest) => Some(newest),
            None if *fetch_first => {
                if let Some(landed) = ws.integrate(branch).await? {
                    return Ok(Joined::Landed(landed));
                }
                None
            }
            None => cache.last_pushed(url, branch),
        };
        if let Some(onto) = onto
            && ws.own_base().as_deref() != Some(onto.as_str())
            && !ws.contains(&onto).await
        {
            ws.rebase_onto(&onto, branch).await?;
        }
        match cache.chain_join(url, branch, &ws.head().await?, generation) {
            Some(link) => return Ok(Joined::Link(link)),
            // A push failed while this replayed onto the chain: start again from the remote
            // branch.
            None => *fetch_first = true,
        }
    }
}

/// A browsable link to a commit on the hosting services Kargo knows.
fn commit_url(repo: &str, sha: &str) -> Option<String> {
    let base = repo.trim_end_matches('/').trim_end_matches(".git");
    let host = base.split("://").nth(1)?.split('/').next()?;
    if host.contains("github") || host.contains("gitea") {
        Some(format!("{base}/commit/{sha}"))
    } else if host.contains("gitlab") {
        Some(format!("{base}/-/commit/{sha}"))
    } else {
        None
    }
}

pub(super) fn tag<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitTag = config("git-tag", cfg)?;
        required("git-tag", "path", &c.path)?;
        required("git-tag", "tag", &c.tag)?;
        let (ws, _) = workspace(ctx, &c.path)?;
        let message = c.message.clone().unwrap_or_else(|| c.tag.clone());
        let mut args = vec!["tag", "-a", "-m", message.as_str()];
        if c.force {
            args.push("-f");
        }
        args.push(&c.tag);
        ws.run(&args).await.map_err(git_error)?;
        // Kargo's output is the tagged commit (`commit`); barge's `tag` stays beside it.
        let commit = ws
            .run(&["rev-parse", &format!("refs/tags/{}^{{commit}}", c.tag)])
            .await
            .map_err(git_error)?;
        done(Map::from_iter([
            ("tag".into(), json!(c.tag)),
            ("commit".into(), json!(commit.trim())),
        ]))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn commit_urls_for_known_hosts() {
        assert_eq!(
            super::commit_url("https://github.com/o/r.git", "abc").as_deref(),
            Some("https://github.com/o/r/commit/abc")
        );
        assert_eq!(
            super::commit_url("https://gitlab.com/o/r", "abc").as_deref(),
            Some("https://gitlab.com/o/r/-/commit/abc")
        );
        assert_eq!(super::commit_url("file:///tmp/r.git", "abc"), None);
    }
}
