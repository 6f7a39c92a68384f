//! github-push (Kargo's `pkg/promotion/runner/builtin/github_pusher.go`): the checkout's own
//! commits are replayed through GitHub's REST "Git database" API
//! (<https://docs.github.com/en/rest/git>) instead of `git push`, so GitHub signs them.
//!
//! For each commit above the remote branch, oldest first: a blob for each file it adds or
//! changes, a tree over its parent's (`base_tree`; a deletion is an entry with `sha: null`), and
//! a commit with its message. Then the branch ref moves to the last one (`force: false`, so a
//! branch that moved meanwhile is refused with 422, integrated and retried as git-push does),
//! and the checkout is reset to the commits GitHub made (same trees, new SHAs).
//!
//! The commits are created without author or committer: GitHub then attributes them to the
//! token's identity (the GitHub App) and signs them ("Signature verification for bots",
//! <https://docs.github.com/en/authentication/managing-commit-signature-verification/about-commit-signature-verification>).
//! Only the promotion's own commits are replayed (integration rebases them onto the branch), so
//! no one else's work is vouched for; their author is kept as a `Co-authored-by:` trailer.
//! GitHub computes the same object IDs git does, so every blob and tree GitHub answers with is
//! checked against the local one: what lands is exactly what was committed.

use super::git::{git_error, record_base, workspace};
use super::pr::{Provider, Refusal, send};
use super::{StepCtx, StepError, StepResult, config, done};
use crate::BoxFuture;
use barge_core::step_config::GitHubPush;
use barge_git::repo::Workspace;
use base64::Engine as _;
use serde_json::{Map, Value as Json, json};
use std::collections::HashSet;

/// GitHub's limit for a blob through the Git database API (100 MB,
/// <https://docs.github.com/en/rest/git/blobs>).
const MAX_BLOB_BYTES: u64 = 100 * 1024 * 1024;
/// Commits replayed by one push (Kargo's `GITHUB_PUSH_MAX_REVISIONS` default): each costs a
/// few API calls against GitHub's rate limits.
const MAX_COMMITS: usize = 10;
/// Changed files in one replayed commit: one API call each; more is a job for git-push.
const MAX_FILES_PER_COMMIT: usize = 1000;

/// A push attempt that failed; only a branch that moved under it is tried again.
struct Attempt {
    error: StepError,
    branch_moved: bool,
}

impl From<StepError> for Attempt {
    fn from(error: StepError) -> Attempt {
        Attempt {
            error,
            branch_moved: false,
        }
    }
}

impl barge_core::retry::Failure for Attempt {
    fn class(&self) -> barge_core::ErrorClass {
        if self.branch_moved {
            barge_core::ErrorClass::Transient
        } else {
            barge_core::ErrorClass::Invalid
        }
    }
}

/// The repository's GitHub API and the token to call it with.
struct Api<'a> {
    ctx: &'a StepCtx<'a>,
    provider: Provider,
    token: String,
}

impl Api<'_> {
    fn url(&self, rest: &str) -> String {
        format!("{}/git/{rest}", self.provider.base())
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Json, Refusal> {
        send(&self.provider, req, Some(&self.token)).await
    }

    async fn post(&self, rest: &str, body: Json) -> Result<Json, StepError> {
        let req = self.ctx.engine.http.post(self.url(rest)).json(&body);
        self.call(req).await.map_err(|r| r.error)
    }

    /// The commit `branch` points at; `None` when GitHub has no such branch.
    async fn head_of(&self, branch: &str) -> Result<Option<String>, StepError> {
        let req = self.ctx.engine.http.get(self.url(&format!("ref/heads/{branch}")));
        match self.call(req).await {
            Ok(r) => Ok(r["object"]["sha"].as_str().map(str::to_string)),
            Err(Refusal { status: Some(404), .. }) => Ok(None),
            Err(r) => Err(r.error),
        }
    }

    /// Points `branch` at `commit`: creates it when `existed` is false, else moves it (only
    /// forwards, unless `force`). A refusal because the branch moved (or appeared) is retried.
    async fn set_branch(&self, branch: &str, commit: &str, existed: bool, force: bool) -> Result<(), Attempt> {
        let http = &self.ctx.engine.http;
        let req = if existed {
            http.patch(self.url(&format!("refs/heads/{branch}")))
                .json(&json!({"sha": commit, "force": force}))
        } else {
            http.post(self.url("refs"))
                .json(&json!({"ref": format!("refs/heads/{branch}"), "sha": commit}))
        };
        match self.call(req).await {
            Ok(_) => Ok(()),
            Err(Refusal {
                status: Some(422),
                error,
            }) => Err(Attempt {
                error: StepError::Retryable(format!(
                    "github-push: the branch {branch} moved while the commits were pushed (not a fast forward); \
                     the next attempt integrates it: {error}"
                )),
                branch_moved: true,
            }),
            Err(r) => Err(r.error.into()),
        }
    }
}

pub(super) fn push<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: GitHubPush = config("github-push", cfg)?;
        let (ws, original_url) = workspace(ctx, &c.path)?;
        let (branch, force) = match (&c.target_branch, c.generate_target_branch) {
            (Some(_), true) => {
                return Err(StepError::Invalid(
                    "github-push: set targetBranch or generateTargetBranch, not both".into(),
                ));
            }
            (Some(b), false) => (b.clone(), c.force),
            // The branch is the promotion's own: one left by an earlier life of the promotion
            // is overwritten (Kargo does the same).
            (None, true) => (format!("kargo/promotion/{}", ctx.promotion.name), true),
            (None, false) => (ws.followed_branch().map_err(git_error)?.to_string(), c.force),
        };
        if ctx.engine.dry_run {
            return super::git::dry_run(&ws, &original_url, &branch).await;
        }
        let repo = barge_core::secret::redact_url(&original_url);
        let token = (ctx.engine.credentials)(&original_url)
            .map(|c| c.password)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                StepError::Invalid(format!(
                    "github-push: no token for {repo}: GitHub's API needs one (the password of the repository's credentials)"
                ))
            })?;
        let api = Api {
            ctx,
            provider: Provider::for_repo(
                &original_url,
                Some("github"),
                ctx.engine.pr_api_for(&original_url).as_deref(),
            )?,
            token,
        };
        let mut policy = ctx.engine.push_policy.clone();
        if let Some(n) = c.max_attempts {
            policy.max_attempts = n.max(1);
        }
        if force {
            policy.max_attempts = 1;
        }
        let pushed = barge_core::retry::retry(
            &policy.retry_policy(),
            tokio::time::sleep,
            // The jitter's seed: any varying number will do.
            ulid::Ulid::generate().random() as u64,
            |attempt| push_once(&api, &ws, &branch, force, attempt),
            |failure: &Attempt| failure.branch_moved,
            |_, attempt, wait| {
                tracing::info!(
                    branch,
                    attempt,
                    ?wait,
                    "github-push: the branch moved; integrating and retrying."
                );
            },
        )
        .await
        .map_err(|failure| failure.error)?;
        // GitHub's commits have new IDs (its author, its signature): the checkout moves to
        // them, so later steps (and a later push) build on what the branch holds.
        if ws.head().await.map_err(git_error)? != pushed {
            ws.run(&["fetch", "-q", "--no-tags", "origin", &format!("refs/heads/{branch}")])
                .await
                .map_err(|e| {
                    StepError::Retryable(format!(
                        "github-push: {pushed} is on {branch}, but fetching it failed: {}",
                        e.message()
                    ))
                })?;
            ws.reset_to(&pushed).await.map_err(git_error)?;
        }
        record_base(ctx, &c.path, &pushed)?;
        ctx.engine.cache.set_last_pushed(ws.url(), &branch, &pushed);
        let made = api
            .call(ctx.engine.http.get(api.url(&format!("commits/{pushed}"))))
            .await
            .map_err(|r| r.error)?;
        let mut out = Map::from_iter([("branch".into(), json!(branch)), ("commit".into(), json!(pushed))]);
        if let Some(url) = made["html_url"].as_str() {
            out.insert("commitURL".into(), json!(url));
        }
        done(out)
    })
}

/// One attempt: integrates the branch if it moved since the checkout, replays the commits
/// above it and moves it. Returns the commit the branch now holds for this checkout.
async fn push_once(api: &Api<'_>, ws: &Workspace, branch: &str, force: bool, attempt: u32) -> Result<String, Attempt> {
    let cache = &api.ctx.engine.cache;
    // One push to a branch at a time in this process (and the processes sharing the cache).
    let _turn = cache.push_turn(ws.url(), branch).await.map_err(git_error)?;
    let remote = api.head_of(branch).await?;
    let base = match &remote {
        // Overwriting: the commits above what the branch and the checkout share.
        Some(_) if force => {
            ws.run(&["fetch", "-q", "--no-tags", "origin", &format!("refs/heads/{branch}")])
                .await
                .map_err(git_error)?;
            ws.run(&["merge-base", "HEAD", "FETCH_HEAD"])
                .await
                .ok()
                .map(|b| b.trim().to_string())
        }
        Some(head) if ws.contains(head).await => Some(head.clone()),
        // The branch moved since the checkout: the checkout's own commits are rebased onto it
        // (a conflict ends the step), as git-push does.
        Some(_) => {
            tracing::debug!(branch, attempt, "github-push: integrating the branch");
            if let Some(landed) = ws.integrate(branch).await.map_err(git_error)? {
                // An earlier life of this promotion landed its commit already.
                return Ok(landed);
            }
            ws.own_base()
        }
        // A new branch starts where the checkout started (a commit GitHub has: it was cloned).
        None => ws.own_base(),
    };
    let commits = commits_above(ws, base.as_deref()).await?;
    let mut parent = base.clone();
    let mut uploaded = HashSet::new();
    for (i, commit) in commits.iter().enumerate() {
        let made = replay(api, ws, commit, parent.as_deref(), &mut uploaded).await?;
        tracing::debug!(commit, made, n = i + 1, of = commits.len(), "github-push: replayed");
        parent = Some(made);
    }
    let Some(new_head) = parent else {
        return Err(StepError::Invalid(format!("github-push: nothing to push to {branch}")).into());
    };
    if remote.as_deref() != Some(new_head.as_str()) {
        api.set_branch(branch, &new_head, remote.is_some(), force).await?;
    }
    Ok(new_head)
}

/// The commits of HEAD above `base` (all of HEAD's without one), oldest first; merges are
/// refused (integration rebases, so a merge here is not barge's).
async fn commits_above(ws: &Workspace, base: Option<&str>) -> Result<Vec<String>, StepError> {
    let range = base.map_or_else(|| "HEAD".to_string(), |b| format!("{b}..HEAD"));
    let listed = ws
        .run(&["rev-list", "--reverse", "--parents", &range])
        .await
        .map_err(git_error)?;
    let mut commits = Vec::new();
    for line in listed.lines() {
        let mut ids = line.split(' ');
        let commit = ids.next().unwrap_or_default().to_string();
        if ids.count() > 1 {
            return Err(StepError::Invalid(format!(
                "github-push: {commit} is a merge commit; github-push replays a linear history (use git-push)"
            )));
        }
        commits.push(commit);
        if commits.len() > MAX_COMMITS {
            return Err(StepError::Invalid(format!(
                "github-push: more than {MAX_COMMITS} commits to push ({range}); each is replayed through \
                 GitHub's API: commit less often, or use git-push"
            )));
        }
    }
    Ok(commits)
}

/// One changed path of a commit: its new mode and object, `None` when deleted.
struct Change {
    path: String,
    mode: String,
    object: Option<String>,
}

/// What `commit` changes against `parent` (everything it holds without one).
async fn changes(ws: &Workspace, commit: &str, parent: Option<&str>) -> Result<Vec<Change>, StepError> {
    let mut out = Vec::new();
    match parent {
        Some(parent) => {
            // `:old new oldsha newsha status\0path\0` per changed path.
            let raw = git_bytes(ws, &["diff-tree", "-r", "-z", "--no-renames", "--raw", parent, commit]).await?;
            let mut fields = raw.split(|b| *b == 0);
            while let (Some(meta), Some(path)) = (fields.next(), fields.next()) {
                let meta = String::from_utf8_lossy(meta);
                let m: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
                let [old_mode, mode, _, object, status] = m.as_slice() else {
                    break;
                };
                let deleted = status.starts_with('D');
                out.push(Change {
                    path: path_text(path)?,
                    // A deletion names the path's old mode (its new one is 000000, which GitHub
                    // refuses).
                    mode: (*if deleted { old_mode } else { mode }).to_string(),
                    object: (!deleted).then(|| (*object).to_string()),
                });
            }
        }
        None => {
            // `mode type sha\tpath\0` per file.
            let raw = git_bytes(ws, &["ls-tree", "-r", "-z", "--full-tree", commit]).await?;
            for entry in raw.split(|b| *b == 0).filter(|e| !e.is_empty()) {
                let Some(tab) = entry.iter().position(|b| *b == b'\t') else {
                    continue;
                };
                let meta = String::from_utf8_lossy(&entry[..tab]);
                let m: Vec<&str> = meta.split(' ').collect();
                let [mode, _, object] = m.as_slice() else { continue };
                out.push(Change {
                    path: path_text(&entry[tab + 1..])?,
                    mode: (*mode).to_string(),
                    object: Some((*object).to_string()),
                });
            }
        }
    }
    Ok(out)
}

/// GitHub's API takes paths as JSON strings: UTF-8 only.
fn path_text(path: &[u8]) -> Result<String, StepError> {
    String::from_utf8(path.to_vec()).map_err(|_| {
        StepError::Invalid(format!(
            "github-push: the path {:?} is not UTF-8; GitHub's API cannot name it (use git-push)",
            String::from_utf8_lossy(path)
        ))
    })
}

/// Replays `commit` onto `parent` (a commit GitHub has, with the tree of `commit`'s parent):
/// returns the ID of the commit GitHub made.
async fn replay(
    api: &Api<'_>,
    ws: &Workspace,
    commit: &str,
    parent: Option<&str>,
    uploaded: &mut HashSet<String>,
) -> Result<String, StepError> {
    // The local parent has the tree of `parent` (GitHub's copy of it, or the branch's head).
    let local_parent = parent.map(|_| format!("{commit}^"));
    let changes = changes(ws, commit, local_parent.as_deref()).await?;
    if changes.len() > MAX_FILES_PER_COMMIT {
        return Err(StepError::Invalid(format!(
            "github-push: commit {commit} changes {} files, more than the {MAX_FILES_PER_COMMIT} one push \
             sends through GitHub's API (one request each); use git-push",
            changes.len()
        )));
    }
    let tree_of = |c: &str| format!("{c}^{{tree}}");
    let want_tree = ws.run(&["rev-parse", &tree_of(commit)]).await.map_err(git_error)?;
    let want_tree = want_tree.trim();
    let mut entries = Vec::with_capacity(changes.len());
    for change in &changes {
        let entry = match (&change.object, change.mode.as_str()) {
            (None, mode) => json!({"path": change.path, "mode": mode, "type": "blob", "sha": null}),
            // A submodule: GitHub records the commit ID as git does.
            (Some(id), "160000") => json!({"path": change.path, "mode": "160000", "type": "commit", "sha": id}),
            (Some(id), mode) => {
                if uploaded.insert(id.clone()) {
                    upload_blob(api, ws, id, &change.path).await?;
                }
                json!({"path": change.path, "mode": mode, "type": "blob", "sha": id})
            }
        };
        entries.push(entry);
    }
    let tree = if changes.is_empty() {
        want_tree.to_string()
    } else {
        let mut body = json!({"tree": entries});
        if let Some(p) = &local_parent {
            let base_tree = ws.run(&["rev-parse", &tree_of(p)]).await.map_err(git_error)?;
            body["base_tree"] = json!(base_tree.trim());
        }
        let made = api.post("trees", body).await?;
        made["sha"].as_str().unwrap_or_default().to_string()
    };
    if tree != want_tree {
        return Err(StepError::Invalid(format!(
            "github-push: GitHub made tree {tree} for commit {commit}, whose tree is {want_tree}; nothing was pushed"
        )));
    }
    let raw = ws.run(&["cat-file", "commit", commit]).await.map_err(git_error)?;
    let (headers, message) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let author = headers
        .lines()
        .find_map(|l| l.strip_prefix("author "))
        .and_then(|a| a.split_once('>'))
        .map(|(who, _)| format!("{who}>"));
    let own = format!("{} <{}>", api.ctx.engine.author.name, api.ctx.engine.author.email);
    let message = match author {
        Some(who) if who != own => with_trailer(message, &format!("Co-authored-by: {who}")),
        _ => message.to_string(),
    };
    let made = api
        .post(
            "commits",
            json!({"message": message, "tree": tree, "parents": parent.into_iter().collect::<Vec<_>>()}),
        )
        .await?;
    made["sha"].as_str().map(str::to_string).ok_or_else(|| {
        StepError::Invalid(format!(
            "github-push: {} answered a commit without a sha",
            api.provider.api
        ))
    })
}

/// Sends blob `id` (the content of `path`) to GitHub, checking the ID GitHub gives it.
async fn upload_blob(api: &Api<'_>, ws: &Workspace, id: &str, path: &str) -> Result<(), StepError> {
    let size: u64 = ws
        .run(&["cat-file", "-s", id])
        .await
        .map_err(git_error)?
        .trim()
        .parse()
        .unwrap_or(u64::MAX);
    if size > MAX_BLOB_BYTES {
        return Err(StepError::Invalid(format!(
            "github-push: {path} has {size} bytes; GitHub's API takes blobs up to {MAX_BLOB_BYTES} bytes (use git-push)"
        )));
    }
    let content = git_bytes(ws, &["cat-file", "blob", id]).await?;
    let body = json!({
        "content": base64::engine::general_purpose::STANDARD.encode(&content),
        "encoding": "base64",
    });
    let made = api.post("blobs", body).await?;
    if made["sha"].as_str() != Some(id) {
        return Err(StepError::Invalid(format!(
            "github-push: GitHub stored {path} as blob {}, not {id}; nothing was pushed",
            made["sha"]
        )));
    }
    Ok(())
}

/// A local git command's raw stdout (file contents and paths are bytes, not text).
async fn git_bytes(ws: &Workspace, args: &[&str]) -> Result<Vec<u8>, StepError> {
    let out = tokio::process::Command::new("git")
        .args(args)
        .current_dir(ws.path())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| StepError::Invalid(format!("github-push: cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(StepError::Invalid(format!(
            "github-push: git {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// `message` with `trailer` added to its trailer block (a new one when its last paragraph is
/// not one), so `Barge-Promotion` stays a trailer git finds.
fn with_trailer(message: &str, trailer: &str) -> String {
    let message = message.trim_end();
    let last = message.rsplit("\n\n").next().unwrap_or_default();
    let is_trailers = message.contains("\n\n")
        && last.lines().all(|l| {
            l.split_once(": ")
                .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        });
    let gap = if is_trailers { "\n" } else { "\n\n" };
    format!("{message}{gap}{trailer}\n")
}

#[cfg(test)]
mod tests {
    use super::with_trailer;

    #[test]
    fn the_co_author_joins_the_trailer_block() {
        assert_eq!(
            with_trailer("Promote x\n\nBarge-Promotion: p1\n", "Co-authored-by: A <a@x>"),
            "Promote x\n\nBarge-Promotion: p1\nCo-authored-by: A <a@x>\n"
        );
        assert_eq!(
            with_trailer("Promote x: now", "Co-authored-by: A <a@x>"),
            "Promote x: now\n\nCo-authored-by: A <a@x>\n"
        );
        assert_eq!(
            with_trailer("Title\n\nSome body text.", "Co-authored-by: A <a@x>"),
            "Title\n\nSome body text.\n\nCo-authored-by: A <a@x>\n"
        );
    }
}
