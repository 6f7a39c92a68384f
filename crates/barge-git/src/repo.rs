//! Writing to config repositories: a working copy of one branch, commits that name their
//! promotion, and pushes that land even when others push to the same branch.
//!
//! - Every commit carries a `Barge-Promotion: <id>` trailer, so a promotion replayed after a
//!   crash finds its own commit on the remote ([`Workspace::find_promotion_commit`]) and never
//!   commits twice.
//! - A push rejected because the branch moved is integrated (`fetch` + `rebase`) and retried
//!   under the one retry policy (`barge_core::retry`) with Kargo's git-push numbers (up to 10
//!   attempts, 1 s × 1.5, jitter, at most 30 s).
//!   A rebase conflict is terminal. Integrating first looks for the promotion's trailer on the
//!   branch (an earlier life of the promotion, killed while its `git push` ran on, may have
//!   landed it), and a commit whose changes the branch already has is dropped, never pushed
//!   empty.
//! - HTTPS credentials reach git through `GIT_ASKPASS` and the environment of the git process,
//!   never a command line, a URL in a log, or an error. Credentials written in the URL
//!   (`https://bot:TOKEN@host/x.git`) are taken out of it and handed over the same way, so a
//!   clone's or a cache's `remote.origin.url` never holds them.

use crate::{GitError, git_env};
use barge_core::retry::RetryPolicy;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use barge_core::secret::Credentials;

/// The committer identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Default for Author {
    fn default() -> Self {
        Author {
            name: "barge".into(),
            email: "barge@localhost".into(),
        }
    }
}

/// How pushes retry: the tunables of `barge_core::retry::RetryPolicy` for pushes.
#[derive(Clone, Debug)]
pub struct PushPolicy {
    pub max_attempts: u32,
    /// The wait before the second retry; × 1.5 (with jitter) for each next one.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for PushPolicy {
    fn default() -> Self {
        PushPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl PushPolicy {
    /// The retry policy with these numbers. The first rejection just means the branch moved
    /// since the checkout: it is integrated at once. Repeated ones mean a race with other
    /// writers: back off.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: self.base_backoff,
            max_delay: self.max_backoff,
            factor: 1.5,
            jitter: true,
            first_retry_at_once: true,
        }
    }

    /// Runs push attempts (given their number, from 1) under this policy: only a push the
    /// remote refused because `branch` moved is tried again ([`PushFailure`]).
    pub async fn run<T, Fut>(&self, branch: &str, attempt: impl FnMut(u32) -> Fut) -> Result<T, GitError>
    where
        Fut: Future<Output = Result<T, PushFailure>>,
    {
        barge_core::retry::retry(
            &self.retry_policy(),
            tokio::time::sleep,
            fastrand::u64(..),
            attempt,
            |failure: &PushFailure| failure.branch_moved,
            |_, attempt, wait| {
                tracing::info!(
                    branch,
                    attempt,
                    ?wait,
                    "Push rejected: the branch moved; rebasing and retrying."
                );
            },
        )
        .await
        .map_err(|failure| failure.error)
    }
}

/// A failed push attempt. Only a push the remote refused because the branch moved (Kargo's
/// rule, [`rejected_because_moved`]) is retried; what integrating with the branch runs into
/// (a conflict, an unreachable remote) ends the push.
#[derive(Debug)]
pub struct PushFailure {
    pub error: GitError,
    pub branch_moved: bool,
}

impl PushFailure {
    /// The failure of `git push` itself.
    pub fn of_push(error: GitError) -> PushFailure {
        let branch_moved = rejected_because_moved(&error);
        PushFailure { error, branch_moved }
    }

    /// Others kept winning the race (the refusal reached this push through another's).
    pub fn branch_moved(error: GitError) -> PushFailure {
        PushFailure {
            error,
            branch_moved: true,
        }
    }
}

impl From<GitError> for PushFailure {
    fn from(error: GitError) -> PushFailure {
        PushFailure {
            error,
            branch_moved: false,
        }
    }
}

impl barge_core::retry::Failure for PushFailure {
    fn class(&self) -> barge_core::ErrorClass {
        self.error.class()
    }
}

/// A working copy of one branch of a repository.
pub struct Workspace {
    dir: PathBuf,
    url: String,
    /// The branch this copy follows: where `push` goes and replays look (None for a tag or
    /// commit checkout, which pushes only with an explicit target).
    branch: Option<String>,
    credentials: Option<Credentials>,
    author: Author,
    timeout: Duration,
    signing: Option<Signing>,
    /// The commit this checkout started from, when known.
    base: Option<String>,
    /// git-clone's `insecureSkipTLSVerify`: `-c http.sslVerify=false` on each git command.
    insecure_tls: bool,
    /// The commit this workspace's own commits sit on: `base`, until they are replayed onto
    /// another. Only these commits are replayed when the branch moved, never commits they were
    /// stacked on (another promotion's, which may never land).
    own_base: std::sync::Mutex<Option<String>>,
}

/// Commit signing with a GPG key imported into a private keyring (never the user's).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signing {
    /// The GNUPGHOME holding the key.
    pub gnupg_home: PathBuf,
    /// The key's fingerprint.
    pub key: String,
}

impl Signing {
    /// Imports an ASCII-armoured private key into a new keyring at `home`.
    pub async fn import(home: &Path, armored_key: &str) -> Result<Signing, GitError> {
        use tokio::io::AsyncWriteExt;
        let invalid = |message: String| GitError::Invalid {
            url: String::new(),
            message,
        };
        std::fs::create_dir_all(home).map_err(|e| invalid(format!("cannot create {}: {e}", home.display())))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700));
        let mut child = tokio::process::Command::new("gpg")
            .args(["--batch", "--quiet", "--homedir"])
            .arg(home)
            .arg("--import")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| invalid(format!("cannot run gpg to import the signing key ({e}); install gnupg")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(armored_key.as_bytes())
                .await
                .map_err(|e| invalid(format!("gpg: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| invalid(format!("gpg: {e}")))?;
        if !out.status.success() {
            // gpg's message names the problem, never the key material.
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(invalid(format!(
                "the signing key could not be imported: {}",
                said.lines().find(|l| !l.trim().is_empty()).unwrap_or("gpg failed")
            )));
        }
        let list = tokio::process::Command::new("gpg")
            .args(["--batch", "--with-colons", "--homedir"])
            .arg(home)
            .arg("--list-secret-keys")
            .output()
            .await
            .map_err(|e| invalid(format!("gpg: {e}")))?;
        let key = String::from_utf8_lossy(&list.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("fpr:").map(|r| r.trim_matches(':').to_string()))
            .ok_or_else(|| invalid("the signing key is not a private key".into()))?;
        Ok(Signing {
            gnupg_home: home.to_path_buf(),
            key,
        })
    }
}

pub const TRAILER: &str = "Barge-Promotion";

impl Workspace {
    /// Clones `branch` of `url` into `dir` (which must not exist or be empty).
    pub async fn clone(
        url: &str,
        branch: &str,
        dir: &Path,
        credentials: Option<Credentials>,
        author: Author,
    ) -> Result<Workspace, GitError> {
        let ws = Workspace::open(dir, url, Some(branch.to_string()), credentials, author);
        std::fs::create_dir_all(dir).map_err(|e| GitError::Invalid {
            url: crate::redact(url),
            message: format!("cannot create {}: {e}", dir.display()),
        })?;
        ws.git(&[
            "clone",
            "-q",
            "--no-tags",
            "--single-branch",
            "--branch",
            branch,
            url,
            ".",
        ])
        .await?;
        Ok(ws)
    }

    /// A workspace over an existing checkout (a cache's bare repository or worktree).
    pub fn open(
        dir: &Path,
        url: &str,
        branch: Option<String>,
        credentials: Option<Credentials>,
        author: Author,
    ) -> Workspace {
        Workspace {
            dir: dir.to_path_buf(),
            url: url.to_string(),
            branch,
            credentials,
            author,
            timeout: Duration::from_secs(300),
            signing: None,
            base: None,
            insecure_tls: false,
            own_base: std::sync::Mutex::new(None),
        }
    }

    /// The same checkout, knowing the commit it started from.
    pub fn with_base(mut self, base: Option<String>) -> Workspace {
        self.own_base = std::sync::Mutex::new(base.clone());
        self.base = base;
        self
    }

    /// The commit this workspace's own commits sit on (see [`Self::rebase_onto`]).
    pub fn own_base(&self) -> Option<String> {
        self.own_base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_own_base(&self, commit: String) {
        *self.own_base.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(commit);
    }

    /// The commit this checkout started from, when known (no git process needed).
    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }

    /// The same checkout, its git commands not verifying the server's TLS certificate (git's
    /// `http.sslVerify=false` given on each command line, so it holds for this checkout only and
    /// reaches the git processes it starts, such as submodule clones, but no configuration file).
    pub fn with_insecure_tls(mut self, insecure: bool) -> Workspace {
        self.insecure_tls = insecure;
        self
    }

    /// The same checkout, signing its commits (rebased ones too).
    pub fn with_signing(mut self, signing: Option<Signing>) -> Workspace {
        self.signing = signing;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same checkout, committing as `author`.
    pub fn with_author(mut self, author: Author) -> Workspace {
        self.author = author;
        self
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    async fn git(&self, args: &[&str]) -> Result<std::process::Output, GitError> {
        self.git_as(args, (&self.author.name, &self.author.email, None)).await
    }

    /// [`Self::git`] with another author for the commits it makes (name, email, and the
    /// original date in git's `<seconds> <zone>` form); the committer stays this workspace's.
    async fn git_as(
        &self,
        args: &[&str],
        (name, email, date): (&str, &str, Option<&str>),
    ) -> Result<std::process::Output, GitError> {
        let mut env: Vec<(&str, String)> = vec![
            ("GIT_AUTHOR_NAME", name.to_string()),
            ("GIT_AUTHOR_EMAIL", email.to_string()),
            ("GIT_COMMITTER_NAME", self.author.name.clone()),
            ("GIT_COMMITTER_EMAIL", self.author.email.clone()),
        ];
        if let Some(date) = date {
            env.push(("GIT_AUTHOR_DATE", date.to_string()));
        }
        let credentials = self.credentials.as_ref();
        let mut all: Vec<&str> = Vec::with_capacity(args.len() + 8);
        if self.insecure_tls {
            all.extend(["-c", "http.sslVerify=false"]);
        }
        let key;
        if let Some(signing) = &self.signing {
            env.push(("GNUPGHOME", signing.gnupg_home.display().to_string()));
            key = format!("user.signingkey={}", signing.key);
            all.extend(["-c", "commit.gpgsign=true", "-c", &key, "-c", "gpg.program=gpg"]);
        }
        all.extend_from_slice(args);
        git_env(Some(&self.dir), &all, &self.url, self.timeout, &env, credentials).await
    }

    /// Commits every change in the working copy with `message` and the promotion trailer.
    /// `None` when there is nothing to commit (as Kargo's git-commit skips empty commits).
    pub async fn commit_all(&self, message: &str, promotion: &str) -> Result<Option<String>, GitError> {
        let body = format!("{}\n\n{TRAILER}: {promotion}\n", message.trim_end());
        // In this process where libgit2 makes exactly git's commit; signed commits are git's.
        if self.signing.is_none() {
            let (dir, author, in_process_body) = (self.dir.clone(), self.author.clone(), body.clone());
            let made = tokio::task::spawn_blocking(move || {
                crate::local::commit_all(&dir, &author.name, &author.email, &in_process_body)
            })
            .await;
            match made {
                Ok(Ok(commit)) => return Ok(commit),
                Ok(Err(declined)) => tracing::debug!(?declined, "git makes this commit"),
                Err(panicked) => tracing::warn!(error = %panicked, "the in-process commit failed; git makes it"),
            }
        }
        self.git(&["add", "--all"]).await?;
        match self.git(&["commit", "-q", "--no-verify", "-m", &body]).await {
            Ok(_) => Ok(Some(self.head().await?)),
            // git refuses an empty commit; only then is it worth asking whether that was why.
            Err(e) => match self.git(&["diff", "--cached", "--quiet"]).await {
                Ok(_) => Ok(None),
                Err(_) => Err(e),
            },
        }
    }

    pub async fn head(&self) -> Result<String, GitError> {
        if let Some(id) = crate::files::head(&self.dir) {
            return Ok(id);
        }
        let out = self.git(&["rev-parse", "HEAD"]).await?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The commit on the remote `branch` made by `promotion`, if any (after a crash, the
    /// replay recognises its own work).
    pub async fn find_promotion_commit_on(&self, branch: &str, promotion: &str) -> Result<Option<String>, GitError> {
        match self
            .git(&["fetch", "-q", "--no-tags", "origin", &format!("refs/heads/{branch}")])
            .await
        {
            Ok(_) => {}
            // A branch that does not exist yet holds no commit of ours.
            Err(GitError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let grep = format!("--grep=^{TRAILER}: {}$", regex_escape(promotion));
        let out = self.git(&["log", "--format=%H", &grep, "FETCH_HEAD"]).await?;
        Ok(String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string))
    }

    /// [`Self::find_promotion_commit_on`] the branch this copy follows.
    pub async fn find_promotion_commit(&self, promotion: &str) -> Result<Option<String>, GitError> {
        self.find_promotion_commit_on(self.followed_branch()?, promotion).await
    }

    /// The branch this copy follows, or an error for tag and commit checkouts.
    pub fn followed_branch(&self) -> Result<&str, GitError> {
        self.branch.as_deref().ok_or_else(|| GitError::Invalid {
            url: crate::redact(&self.url),
            message: "this checkout is a tag or commit, not a branch: name the branch to push to".into(),
        })
    }

    /// Moves the working copy to `commit` (a replay adopting the commit it made before).
    pub async fn reset_to(&self, commit: &str) -> Result<(), GitError> {
        self.git(&["reset", "-q", "--hard", commit]).await.map(|_| ())
    }

    /// Runs git in the working copy with this workspace's identity and credentials.
    pub async fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.git(args).await?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Pushes the branch, integrating remote changes and retrying while others win the race.
    /// Returns the pushed commit.
    pub async fn push(&self, policy: &PushPolicy) -> Result<String, GitError> {
        let branch = self.followed_branch()?.to_string();
        self.push_to(&branch, policy).await
    }

    /// Pushes HEAD to `branch` (created if missing); a push refused because the branch moved
    /// is integrated with it and retried.
    pub async fn push_to(&self, branch: &str, policy: &PushPolicy) -> Result<String, GitError> {
        let refspec = format!("HEAD:refs/heads/{branch}");
        let refspec = refspec.as_str();
        policy
            .run(branch, |attempt| async move {
                if attempt > 1
                    && let Some(landed) = self.integrate(branch).await?
                {
                    return Ok(landed);
                }
                self.git(&["push", "-q", "origin", refspec])
                    .await
                    .map_err(PushFailure::of_push)?;
                Ok(self.head().await?)
            })
            .await
    }

    /// Pushes `commit` (this workspace's HEAD or a commit stacked on it) to `branch`, once.
    pub async fn push_commit(&self, commit: &str, branch: &str) -> Result<(), GitError> {
        self.git(&["push", "-q", "origin", &format!("{commit}:refs/heads/{branch}")])
            .await
            .map(|_| ())
    }

    /// Rebases this workspace's own commits onto the remote `branch` as it is now; a conflict
    /// is terminal (the rebase is undone). `Some(commit)` when the branch already holds a
    /// commit of this workspace's promotion (by its trailer): it landed, nothing is rebased and
    /// nothing is left to push. Commits whose changes the branch already has are dropped (the
    /// workspace may end up at the branch itself, with nothing of its own).
    pub async fn integrate(&self, branch: &str) -> Result<Option<String>, GitError> {
        self.git(&["fetch", "-q", "--no-tags", "origin", &format!("refs/heads/{branch}")])
            .await?;
        let fetched = self.run(&["rev-parse", "FETCH_HEAD"]).await?;
        let fetched = fetched.trim();
        if let Some(landed) = self.promotion_commit_in(fetched).await? {
            tracing::info!(branch, commit = %landed, "The promotion's commit is already on the branch; not pushing it again.");
            return Ok(Some(landed));
        }
        self.replay(fetched, branch, true).await?;
        Ok(None)
    }

    /// The commit of `commit`'s history, above this workspace's own base, that carries the
    /// `Barge-Promotion` trailer of one of this workspace's own commits.
    async fn promotion_commit_in(&self, commit: &str) -> Result<Option<String>, GitError> {
        let format = format!("--format=%(trailers:key={TRAILER},valueonly)");
        let (own, theirs) = match self.own_base() {
            Some(base) => (vec![format!("{base}..HEAD")], vec![format!("{base}..{commit}")]),
            None => (vec!["-1".to_string(), "HEAD".to_string()], vec![commit.to_string()]),
        };
        let mut args = vec!["log", format.as_str()];
        args.extend(own.iter().map(String::as_str));
        let promotions: std::collections::BTreeSet<String> = self
            .run(&args)
            .await?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if promotions.is_empty() {
            return Ok(None);
        }
        let greps: Vec<String> = promotions
            .iter()
            .map(|p| format!("--grep=^{TRAILER}: {}$", regex_escape(p)))
            .collect();
        let mut args = vec!["log", "--max-count=1", "--format=%H"];
        args.extend(greps.iter().map(String::as_str));
        args.extend(theirs.iter().map(String::as_str));
        Ok(self.run(&args).await?.lines().next().map(str::to_string))
    }

    /// Rebases this workspace's own commits onto `commit`, which the repository already has
    /// (e.g. one this process pushed to `branch`: no fetch needed); a conflict is terminal (the
    /// rebase is undone).
    pub async fn rebase_onto(&self, commit: &str, branch: &str) -> Result<(), GitError> {
        self.replay(commit, branch, false).await
    }

    /// [`Self::rebase_onto`]; with `drop_empty` (`commit` is on the remote branch), a commit
    /// whose changes `commit` already has is dropped as `git rebase` drops it, where the quick
    /// replay would otherwise make it an empty commit. (Onto a commit that is not on the
    /// remote, such as another promotion's waiting in a chain, it is kept: that commit may never
    /// land.)
    async fn replay(&self, commit: &str, branch: &str, drop_empty: bool) -> Result<(), GitError> {
        let own_base = self.own_base();
        if self.signing.is_none() && self.replay_single_commit(commit, own_base.as_deref(), drop_empty).await {
            self.set_own_base(commit.to_string());
            return Ok(());
        }
        let rebased = match &own_base {
            Some(own) => self.git(&["rebase", "-q", "--onto", commit, own]).await,
            None => self.git(&["rebase", "-q", commit]).await,
        };
        if let Err(conflict) = rebased {
            let _ = self.git(&["rebase", "--abort"]).await;
            return Err(GitError::MergeConflict {
                url: crate::redact(&self.url),
                message: format!("the promotion's changes conflict with the branch {branch} ({conflict})"),
            });
        }
        self.set_own_base(commit.to_string());
        Ok(())
    }

    /// Replays HEAD, when it is a single commit on top of its parent, onto `onto` the way a
    /// rebase would (same tree merge, message, author and date; the committer is this
    /// workspace's), but without the rebase machinery, which costs twice as much: the merge is
    /// computed in memory (`merge-tree`), the commit written (`commit-tree`) and the checkout
    /// moved to it (`reset --keep` rewrites only the files others changed); with `drop_empty`,
    /// a commit that would change nothing is not written and the checkout moves to `onto`.
    /// `false`, with nothing changed, for anything else (a merge commit, a conflict, a git older than 2.40):
    /// the caller then rebases.
    async fn replay_single_commit(&self, onto: &str, own_base: Option<&str>, drop_empty: bool) -> bool {
        let Ok(raw) = self.run(&["cat-file", "commit", "HEAD"]).await else {
            return false;
        };
        let Some((headers, message)) = raw.split_once("\n\n") else {
            return false;
        };
        let parents: Vec<&str> = headers.lines().filter_map(|l| l.strip_prefix("parent ")).collect();
        let (Some(author), [parent]) = (
            headers.lines().find_map(|l| l.strip_prefix("author ")),
            parents.as_slice(),
        ) else {
            return false;
        };
        if own_base.is_some_and(|own| own != *parent) {
            return false;
        }
        // "Name <email> 1700000000 +0000"
        let Some((name, rest)) = author.split_once(" <") else {
            return false;
        };
        let Some((email, date)) = rest.split_once("> ") else {
            return false;
        };
        let merge_base = format!("--merge-base={parent}");
        let Ok(tree) = self
            .run(&["merge-tree", "--write-tree", &merge_base, onto, "HEAD"])
            .await
        else {
            return false;
        };
        let tree = tree.lines().next().unwrap_or_default().to_string();
        if drop_empty
            && self
                .run(&["rev-parse", &format!("{onto}^{{tree}}")])
                .await
                .is_ok_and(|onto_tree| onto_tree.trim() == tree)
        {
            return self.git(&["reset", "-q", "--keep", onto]).await.is_ok();
        }
        let Ok(out) = self
            .git_as(
                &["commit-tree", &tree, "-p", onto, "-m", message.trim_end()],
                (name, email, Some(date)),
            )
            .await
        else {
            return false;
        };
        let replayed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.git(&["reset", "-q", "--keep", &replayed]).await.is_ok()
    }

    /// Whether `commit` is already part of HEAD's history.
    pub async fn contains(&self, commit: &str) -> bool {
        self.git(&["merge-base", "--is-ancestor", commit, "HEAD"]).await.is_ok()
    }
}

/// Kargo's rule: retry only rejections that mean "someone pushed first".
pub fn rejected_because_moved(e: &GitError) -> bool {
    let text = e.to_string();
    [
        "non-fast-forward",
        "fetch first",
        "cannot lock ref",
        "incorrect old value provided",
        "rejected",
    ]
    .iter()
    .any(|m| text.contains(m))
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "\\.^$*+?()[]{}|".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}
