//! A persistent cache of config repositories: one bare repository per URL, fetched
//! incrementally, and a `git worktree` per checkout a promotion asks for.
//!
//! Worktrees are detached (a branch may be checked out by many promotions at once); their
//! commits are pushed with `HEAD:refs/heads/<branch>`. Fetches are blobless where the server
//! allows it (`--filter=blob:none`; others ignore the filter): a checkout then fetches only
//! the blobs of the commit it needs, with the same credentials. Fetches and worktree bookkeeping of one
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
    /// Per URL: fetches and worktree bookkeeping. Per `URL branch`: pushes.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Repositories whose stale worktrees were pruned by this process.
    pruned: Mutex<std::collections::HashSet<String>>,
    /// Worktrees of finished promotions, per URL, ready for the next checkout: moving one
    /// and checking out the new commit rewrites only the files that differ, where a fresh
    /// worktree writes the whole tree.
    pool: Mutex<HashMap<String, Vec<PathBuf>>>,
    recycled: std::sync::atomic::AtomicU64,
    /// When the last fetch of each `URL ref` started: a checkout asked for before that
    /// fetch started needs no fetch of its own (many promotions of one repository at once
    /// share one fetch).
    fetched: Mutex<HashMap<String, std::time::Instant>>,
    /// The last commit this process pushed to each `URL branch`.
    pushed: Mutex<HashMap<String, String>>,
}

impl RepoCache {
    pub fn new(root: &Path) -> RepoCache {
        RepoCache {
            root: root.to_path_buf(),
            locks: Mutex::new(HashMap::new()),
            pruned: Mutex::new(std::collections::HashSet::new()),
            pool: Mutex::new(HashMap::new()),
            recycled: std::sync::atomic::AtomicU64::new(0),
            fetched: Mutex::new(HashMap::new()),
            pushed: Mutex::new(HashMap::new()),
        }
    }

    /// The last commit this process pushed to `branch` of `url`.
    pub fn last_pushed(&self, url: &str, branch: &str) -> Option<String> {
        self.pushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&format!("{url} {branch}"))
            .cloned()
    }

    pub fn set_last_pushed(&self, url: &str, branch: &str, commit: &str) {
        self.pushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(format!("{url} {branch}"), commit.to_string());
    }

    /// Takes back a checkout of `url` that a finished promotion no longer needs (a worktree
    /// of this cache; anything else is just deleted).
    pub async fn recycle(&self, url: &str, dir: &Path) {
        let is_worktree = std::fs::metadata(dir.join(".git")).is_ok_and(|m| m.is_file());
        if is_worktree {
            let lock = self.lock_for(url);
            let _guard = lock.lock().await;
            let n = self.recycled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let target = self.root.join("pool").join(format!("{}-{n}", std::process::id()));
            let admin = Workspace::open(&self.bare_path(url), url, None, None, Author::default());
            let _ = std::fs::create_dir_all(self.root.join("pool"));
            let (d, t) = (dir.display().to_string(), target.display().to_string());
            if admin.run(&["worktree", "move", &d, &t]).await.is_ok() {
                self.pool
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(url.to_string())
                    .or_default()
                    .push(target);
                return;
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The lock that serialises this process's pushes to `branch` of `url`.
    pub fn push_lock(&self, url: &str, branch: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_for(&format!("{url} {branch}"))
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
        let asked = std::time::Instant::now();
        let lock = self.lock_for(url);
        let guard = lock.lock().await;
        let bare = self.bare_path(url);
        let admin = Workspace::open(&bare, url, None, credentials.clone(), author.clone());
        if !bare.join("HEAD").exists() {
            std::fs::create_dir_all(&bare).map_err(|e| io_error(url, &bare, &e))?;
            admin.run(&["init", "-q", "--bare"]).await?;
            admin.run(&["remote", "add", "origin", url]).await?;
            // No fetch refspec: fetches name their refs, and pushes from worktrees must not
            // update tracking refs behind the lock (concurrent pushes would fight over them).
            admin.run(&["config", "--unset-all", "remote.origin.fetch"]).await?;
            // A new cache has nothing stale to prune.
            self.pruned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(url.to_string());
        } else if self
            .pruned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(url.to_string())
        {
            // Worktrees of promotions that ended (or crashed) before this process started
            // are forgotten here, once, with the pool of an earlier process.
            let _ = std::fs::remove_dir_all(self.root.join("pool"));
            admin.run(&["worktree", "prune"]).await?;
        }
        let (start, branch) = match what {
            Checkout::Branch { name, create } => {
                let tracking = format!("refs/remotes/origin/{name}");
                let refspec = format!("+refs/heads/{name}:{tracking}");
                let key = format!("{url} {name}");
                let fresh = self
                    .fetched
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&key)
                    .is_some_and(|started| *started >= asked)
                    && admin.run(&["rev-parse", "-q", "--verify", &tracking]).await.is_ok();
                let fetched = if fresh {
                    Ok(())
                } else {
                    self.fetched
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(key, std::time::Instant::now());
                    admin
                        .run(&["fetch", "-q", "--no-tags", "--filter=blob:none", "origin", &refspec])
                        .await
                        .map(|_| ())
                };
                match fetched {
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
                admin
                    .run(&["fetch", "-q", "--no-tags", "--filter=blob:none", "origin", &refspec])
                    .await?;
                (Some(format!("refs/tags/{tag}")), None)
            }
            Checkout::Commit(sha) => {
                if admin
                    .run(&["cat-file", "-e", &format!("{sha}^{{commit}}")])
                    .await
                    .is_err()
                {
                    // Servers that refuse to serve a bare SHA still serve it with their branches.
                    if admin
                        .run(&["fetch", "-q", "--no-tags", "--filter=blob:none", "origin", sha])
                        .await
                        .is_err()
                    {
                        admin
                            .run(&[
                                "fetch",
                                "-q",
                                "--no-tags",
                                "--filter=blob:none",
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
        let pooled = match &start {
            Some(_) => self
                .pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_mut(url)
                .and_then(Vec::pop),
            None => None,
        };
        // Only the worktree bookkeeping needs the lock; writing the files does not.
        let mut base = None;
        match (&start, pooled) {
            (Some(start), Some(free)) => {
                let sha = admin.run(&["rev-parse", &format!("{start}^{{commit}}")]).await?;
                base = Some(sha.trim().to_string());
                admin
                    .run(&["worktree", "move", &free.display().to_string(), &dir_arg])
                    .await?;
                drop(guard);
                let ws = Workspace::open(dir, url, None, credentials.clone(), author.clone());
                ws.run(&["checkout", "-q", "--detach", "-f", sha.trim()]).await?;
                ws.run(&["clean", "-q", "-f", "-d", "-x"]).await?;
            }
            (Some(start), None) => {
                let sha = admin.run(&["rev-parse", &format!("{start}^{{commit}}")]).await?;
                base = Some(sha.trim().to_string());
                admin
                    .run(&[
                        "worktree",
                        "add",
                        "-q",
                        "--no-checkout",
                        "--detach",
                        "-f",
                        &dir_arg,
                        sha.trim(),
                    ])
                    .await?;
                drop(guard);
                let ws = Workspace::open(dir, url, None, credentials.clone(), author.clone());
                ws.run(&["reset", "-q", "--hard", sha.trim()]).await?;
            }
            (None, _) => {
                // An orphan branch: a fresh repository whose first commit has no parent (works
                // with any git; `worktree add --orphan` needs 2.42).
                std::fs::create_dir_all(dir).map_err(|e| io_error(url, dir, &e))?;
                let fresh = Workspace::open(dir, url, branch.clone(), credentials.clone(), author.clone());
                fresh.run(&["init", "-q"]).await?;
                fresh.run(&["remote", "add", "origin", url]).await?;
            }
        }
        Ok(Workspace::open(dir, url, branch, credentials, author).with_base(base))
    }
}

fn io_error(url: &str, path: &Path, e: &std::io::Error) -> GitError {
    GitError::Invalid {
        url: redact(url),
        message: format!("{}: {e}", path.display()),
    }
}
