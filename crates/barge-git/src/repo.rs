//! Writing to config repositories: a working copy of one branch, commits that name their
//! promotion, and pushes that land even when others push to the same branch.
//!
//! - Every commit carries a `Barge-Promotion: <id>` trailer, so a promotion replayed after a
//!   crash finds its own commit on the remote ([`Workspace::find_promotion_commit`]) and never
//!   commits twice.
//! - A push rejected because the branch moved is integrated (`fetch` + `rebase`) and retried
//!   with backoff, like Kargo's git-push (up to 10 attempts, 1 s × 1.5, jitter, at most 30 s).
//!   A rebase conflict is terminal.
//! - HTTPS credentials reach git through `GIT_ASKPASS` and the environment of the git process,
//!   never a command line, a URL in a log, or an error.

use crate::{GitError, git_env};
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

#[derive(Clone, Debug)]
pub struct PushPolicy {
    pub max_attempts: u32,
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
        let ws = Workspace {
            dir: dir.to_path_buf(),
            url: url.to_string(),
            branch: Some(branch.to_string()),
            credentials,
            author,
            timeout: Duration::from_secs(300),
            signing: None,
            base: None,
        };
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
        }
    }

    /// The same checkout, knowing the commit it started from.
    pub fn with_base(mut self, base: Option<String>) -> Workspace {
        self.base = base;
        self
    }

    /// The commit this checkout started from, when known (no git process needed).
    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
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
        let mut env: Vec<(&str, String)> = vec![
            ("GIT_AUTHOR_NAME", self.author.name.clone()),
            ("GIT_AUTHOR_EMAIL", self.author.email.clone()),
            ("GIT_COMMITTER_NAME", self.author.name.clone()),
            ("GIT_COMMITTER_EMAIL", self.author.email.clone()),
        ];
        env.extend(crate::credential_env(self.credentials.as_ref())?);
        let secret = self.credentials.as_ref().map(|c| c.password.as_str());
        let Some(signing) = &self.signing else {
            return git_env(Some(&self.dir), args, &self.url, self.timeout, &env, secret).await;
        };
        env.push(("GNUPGHOME", signing.gnupg_home.display().to_string()));
        let key = format!("user.signingkey={}", signing.key);
        let mut signed: Vec<&str> = vec!["-c", "commit.gpgsign=true", "-c", &key, "-c", "gpg.program=gpg"];
        signed.extend_from_slice(args);
        git_env(Some(&self.dir), &signed, &self.url, self.timeout, &env, secret).await
    }

    /// Commits every change in the working copy with `message` and the promotion trailer.
    /// `None` when there is nothing to commit (as Kargo's git-commit skips empty commits).
    pub async fn commit_all(&self, message: &str, promotion: &str) -> Result<Option<String>, GitError> {
        self.git(&["add", "--all"]).await?;
        let body = format!("{}\n\n{TRAILER}: {promotion}\n", message.trim_end());
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

    /// Pushes HEAD to `branch` (created if missing), with the same integrate-and-retry loop.
    pub async fn push_to(&self, branch: &str, policy: &PushPolicy) -> Result<String, GitError> {
        let refspec = format!("HEAD:refs/heads/{branch}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.git(&["push", "-q", "origin", &refspec]).await {
                Ok(_) => return self.head().await,
                Err(e) if attempt < policy.max_attempts.max(1) && rejected_because_moved(&e) => {
                    tracing::info!(
                        branch,
                        attempt,
                        "Push rejected: the branch moved; rebasing and retrying."
                    );
                    // The first rejection just means the branch moved since the checkout:
                    // integrate at once. Repeated ones mean a race with other writers: back off.
                    if attempt > 1 {
                        let backoff = policy
                            .base_backoff
                            .mul_f64(1.5f64.powi(attempt as i32 - 2))
                            .min(policy.max_backoff);
                        tokio::time::sleep(backoff.mul_f64(0.5 + fastrand_half())).await;
                    }
                    self.integrate(branch).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Rebases the local commits onto the remote `branch` as it is now; a conflict is
    /// terminal (the rebase is undone).
    pub async fn integrate(&self, branch: &str) -> Result<(), GitError> {
        self.git(&["fetch", "-q", "--no-tags", "origin", &format!("refs/heads/{branch}")])
            .await?;
        if let Err(conflict) = self.git(&["rebase", "-q", "FETCH_HEAD"]).await {
            let _ = self.git(&["rebase", "--abort"]).await;
            return Err(GitError::Conflict {
                url: crate::redact(&self.url),
                message: format!("the promotion's changes conflict with the branch {branch} ({conflict})"),
            });
        }
        Ok(())
    }

    /// Whether `commit` is already part of HEAD's history.
    pub async fn contains(&self, commit: &str) -> bool {
        self.git(&["merge-base", "--is-ancestor", commit, "HEAD"]).await.is_ok()
    }
}

/// Kargo's rule: retry only rejections that mean "someone pushed first".
fn rejected_because_moved(e: &GitError) -> bool {
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

/// A jitter factor in [0, 0.5) without a random-number dependency (the clock's nanoseconds).
fn fastrand_half() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 2000.0
}
