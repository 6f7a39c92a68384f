//! A persistent cache of config repositories: one bare repository per URL, fetched
//! incrementally, and a `git worktree` per checkout a promotion asks for.
//!
//! Worktrees are detached (a branch may be checked out by many promotions at once); their
//! commits are pushed with `HEAD:refs/heads/<branch>`. Fetches and worktree bookkeeping of one
//! repository are serialised by a per-URL lock; object writes need none.

use crate::repo::{Author, Credentials, Workspace};
use crate::{GitError, redact};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What to check out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checkout {
    /// A branch; with `create`, an empty (orphan) branch when the remote has none.
    Branch {
        name: String,
        create: bool,
    },
    Tag(String),
    Commit(String),
}

pub struct RepoCache {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RepoCache {
    pub fn new(root: &Path) -> RepoCache {
        RepoCache {
            root: root.to_path_buf(),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock_for(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(url.to_string()).or_default().clone()
    }

    /// The bare repository caching `url`.
    pub fn bare_path(&self, url: &str) -> PathBuf {
        use sha1::Digest;
        let hash = sha1::Sha1::digest(url.as_bytes());
        let hex: String = hash.iter().take(10).map(|b| format!("{b:02x}")).collect();
        self.root.join(format!("{hex}.git"))
    }

    /// Fetches what `what` needs into the cache and adds a worktree for it at `dir`.
    pub async fn checkout(
        &self,
        url: &str,
        what: &Checkout,
        dir: &Path,
        credentials: Option<Credentials>,
        author: Author,
    ) -> Result<Workspace, GitError> {
        let lock = self.lock_for(url);
        let _guard = lock.lock().await;
        let bare = self.bare_path(url);
        let admin = Workspace::open(&bare, url, None, credentials.clone(), author.clone());
        if !bare.join("HEAD").exists() {
            std::fs::create_dir_all(&bare).map_err(|e| io_error(url, &bare, &e))?;
            admin.run(&["init", "-q", "--bare"]).await?;
            admin.run(&["remote", "add", "origin", url]).await?;
            // No fetch refspec: fetches name their refs, and pushes from worktrees must not
            // update tracking refs behind the lock (concurrent pushes would fight over them).
            admin.run(&["config", "--unset-all", "remote.origin.fetch"]).await?;
        } else {
            // Worktrees of promotions that ended (or crashed) are forgotten here.
            admin.run(&["worktree", "prune"]).await?;
        }
        let (start, branch) = match what {
            Checkout::Branch { name, create } => {
                let tracking = format!("refs/remotes/origin/{name}");
                let refspec = format!("+refs/heads/{name}:{tracking}");
                match admin.run(&["fetch", "-q", "--no-tags", "origin", &refspec]).await {
                    Ok(_) => (Some(tracking), Some(name.clone())),
                    Err(GitError::NotFound { .. }) if *create => (None, Some(name.clone())),
                    Err(GitError::NotFound { .. }) => {
                        return Err(GitError::NotFound {
                            url: redact(url),
                            message: format!(
                                "branch {name} does not exist (set `create: true` to start it as an empty branch)"
                            ),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            Checkout::Tag(tag) => {
                let refspec = format!("+refs/tags/{tag}:refs/tags/{tag}");
                admin.run(&["fetch", "-q", "--no-tags", "origin", &refspec]).await?;
                (Some(format!("refs/tags/{tag}")), None)
            }
            Checkout::Commit(sha) => {
                if admin
                    .run(&["cat-file", "-e", &format!("{sha}^{{commit}}")])
                    .await
                    .is_err()
                {
                    // Servers that refuse to serve a bare SHA still serve it with their branches.
                    if admin.run(&["fetch", "-q", "--no-tags", "origin", sha]).await.is_err() {
                        admin
                            .run(&[
                                "fetch",
                                "-q",
                                "--no-tags",
                                "origin",
                                "+refs/heads/*:refs/remotes/origin/*",
                            ])
                            .await?;
                    }
                }
                (Some(sha.clone()), None)
            }
        };
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io_error(url, dir, &e))?;
        }
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(url, parent, &e))?;
        }
        let dir_arg = dir.display().to_string();
        match &start {
            Some(start) => {
                admin
                    .run(&["worktree", "add", "-q", "--detach", "-f", &dir_arg, start])
                    .await?;
            }
            None => {
                // An orphan branch: a fresh repository whose first commit has no parent (works
                // with any git; `worktree add --orphan` needs 2.42).
                std::fs::create_dir_all(dir).map_err(|e| io_error(url, dir, &e))?;
                let fresh = Workspace::open(dir, url, branch.clone(), credentials.clone(), author.clone());
                fresh.run(&["init", "-q"]).await?;
                fresh.run(&["remote", "add", "origin", url]).await?;
            }
        }
        Ok(Workspace::open(dir, url, branch, credentials, author))
    }
}

fn io_error(url: &str, path: &Path, e: &std::io::Error) -> GitError {
    GitError::Invalid {
        url: redact(url),
        message: format!("{}: {e}", path.display()),
    }
}
