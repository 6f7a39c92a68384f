//! A persistent cache of config repositories: one bare repository per URL, fetched
//! incrementally, and a `git worktree` per checkout a promotion asks for.
//!
//! Worktrees are detached (a branch may be checked out by many promotions at once); their
//! commits are pushed with `HEAD:refs/heads/<branch>`. Fetches are blobless where the server
//! allows it (`--filter=blob:none`; others ignore the filter): a checkout then fetches only
//! the blobs of the commit it needs, with the same credentials. Fetches and worktree bookkeeping of one
//! repository are serialised by a per-URL lock, in this process and (with a file lock beside the
//! repository) across the processes sharing the cache directory; object writes need none.
//!
//! A repository enters the cache whole: it is made in a temporary directory and renamed into
//! place, so a process killed half-way leaves no entry behind, and an entry found unsound (no
//! `remote.origin.url`, as older versions could leave one) is rebuilt.

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

/// How a checkout is made, besides what it checks out (git-clone's options).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckoutOptions {
    /// Only these directories (and the files at the top of the repository) in the worktree,
    /// when not empty: a cone-mode sparse checkout (`git sparse-checkout set --cone`), set
    /// before any file is written, so blobs outside the cone are not even fetched. Such a
    /// worktree never returns to the pool.
    pub sparse: Vec<String>,
    /// git's `http.sslVerify=false` on every git command of this checkout (see
    /// [`Workspace::with_insecure_tls`]).
    pub insecure_skip_tls_verify: bool,
    /// Initialise the submodules, recursively, once the files are checked out (`git submodule
    /// update --init --recursive`, with the checkout's credentials and TLS setting). Such a
    /// worktree never returns to the pool.
    pub recurse_submodules: bool,
    /// The URL rewrites the checkout's own URL went through: submodule URLs (from
    /// `.gitmodules`, which names the original servers) go through them too, as git's
    /// `insteadOf` (see [`insteadof_args`]).
    pub rewrites: Vec<barge_core::rewrite::Rewrite>,
}

/// How many checkouts of a repository are recycled between two runs of git's maintenance.
pub const MAINTENANCE_EVERY: u32 = 50;

/// How long a checkout waits, by default, while another process sharing the cache directory
/// holds the repository: longer than a fetch may take (git's time limit, 300 s), so only a
/// process that is stuck makes it run out.
pub const CACHE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Something of the cache held by one task (a repository, or the turn to push to a branch):
/// this process's mutex, and an exclusive `flock` of a lock file beside the repository for the
/// processes sharing the cache directory (the kernel releases it when the process dies, however
/// it dies). Released when dropped.
pub struct Held {
    _file: std::fs::File,
    _task: tokio::sync::OwnedMutexGuard<()>,
}

pub struct RepoCache {
    root: PathBuf,
    /// Per URL: fetches and worktree bookkeeping. Per `URL branch`: pushes.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Repositories this process has checked (or created) and pruned of stale worktrees.
    prepared: Mutex<std::collections::HashSet<String>>,
    /// How long to wait for another process's hold on a repository (see [`Self::with_lock_wait`]).
    lock_wait: std::time::Duration,
    /// Worktrees of finished promotions, per URL, for the next checkouts: moving one and
    /// checking out the new commit rewrites only the files that differ, where a fresh worktree
    /// writes the whole tree. Each is made clean at its HEAD in the background as it comes back
    /// (the task answers its path, or `None` when it could not be cleaned), so a checkout of the
    /// commit it already holds (the branch did not move since this process last pushed it)
    /// costs no git process at all.
    pool: Mutex<HashMap<String, Vec<tokio::task::JoinHandle<Option<PathBuf>>>>>,
    /// Where this process keeps its pool: `pool/<pid>-<start>` (a pid alone may be reused,
    /// as PID 1 is by every container).
    pool_dir: PathBuf,
    recycled: std::sync::atomic::AtomicU64,
    /// Checkouts recycled per URL since its last maintenance.
    since_maintenance: Mutex<HashMap<String, u32>>,
    /// When the last fetch of each `URL ref` started: a checkout asked for before that
    /// fetch started needs no fetch of its own (many promotions of one repository at once
    /// share one fetch).
    fetched: Mutex<HashMap<String, std::time::Instant>>,
    /// Per `URL branch`: the last commit this process pushed, and the commits waiting to be
    /// pushed, each replayed onto the one before.
    chains: Mutex<HashMap<String, Chain>>,
}

/// Commits of promotions waiting to push to one branch, each replayed onto the one before:
/// whoever's turn it is pushes the newest, which lands all of them in one push.
///
/// A link is only ever pushed as part of the chain it joined. When a push fails (the branch
/// moved under someone else's push, or any error), the chain is broken: its waiting members
/// replay their own commits onto the remote branch and push them themselves, so a commit
/// whose push failed never lands through another's.
#[derive(Default)]
struct Chain {
    /// The last commit this process pushed to the branch.
    pushed: Option<String>,
    generation: u64,
    /// Not yet pushed, oldest first.
    commits: Vec<String>,
    /// Commits that landed in someone else's push and whose promotion has not looked yet.
    landed: std::collections::HashSet<String>,
}

/// A promotion's place in a branch's chain.
pub struct ChainLink {
    key: String,
    generation: u64,
    /// The promotion's own newest commit.
    pub commit: String,
}

/// What a chain member does when its turn to push comes.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainTurn {
    /// Its commit landed in an earlier push of the chain.
    Landed,
    /// Push this commit (the chain's newest: the member's own or one stacked on it).
    Push(String),
    /// The chain broke: integrate with the remote branch and push alone.
    Broken,
}

impl RepoCache {
    pub fn new(root: &Path) -> RepoCache {
        RepoCache {
            root: root.to_path_buf(),
            locks: Mutex::new(HashMap::new()),
            prepared: Mutex::new(std::collections::HashSet::new()),
            lock_wait: CACHE_LOCK_WAIT,
            pool: Mutex::new(HashMap::new()),
            pool_dir: root.join("pool").join(format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            )),
            recycled: std::sync::atomic::AtomicU64::new(0),
            since_maintenance: Mutex::new(HashMap::new()),
            fetched: Mutex::new(HashMap::new()),
            chains: Mutex::new(HashMap::new()),
        }
    }

    /// The same cache, waiting at most `wait` for a repository another process holds.
    pub fn with_lock_wait(mut self, wait: std::time::Duration) -> RepoCache {
        self.lock_wait = wait;
        self
    }

    /// The last commit this process pushed to `branch` of `url`.
    pub fn last_pushed(&self, url: &str, branch: &str) -> Option<String> {
        self.chains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&format!("{url} {branch}"))
            .and_then(|c| c.pushed.clone())
    }

    pub fn set_last_pushed(&self, url: &str, branch: &str, commit: &str) {
        self.chains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(format!("{url} {branch}"))
            .or_default()
            .pushed = Some(commit.to_string());
    }

    /// The generation of the chain of `branch` of `url` and its newest commit, if any.
    /// Called under [`Self::chain_lock`].
    pub fn chain_newest(&self, url: &str, branch: &str) -> (u64, Option<String>) {
        self.chains
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&format!("{url} {branch}"))
            .map_or((0, None), |c| (c.generation, c.commits.last().cloned()))
    }

    /// The lock under which promotions replay onto the chain's tip and join it, one at a time.
    pub fn chain_lock(&self, url: &str, branch: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_for(&format!("chain {url} {branch}"))
    }

    /// Adds `commit`, replayed onto what [`Self::chain_newest`] answered (or the last push),
    /// to the branch's chain; `None` when the chain broke since that answer (a push failed
    /// meanwhile): the commit may sit on one that will never land.
    pub fn chain_join(&self, url: &str, branch: &str, commit: &str, generation: u64) -> Option<ChainLink> {
        let key = format!("{url} {branch}");
        let mut chains = self.chains.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let chain = chains.entry(key.clone()).or_default();
        if chain.generation != generation {
            return None;
        }
        chain.commits.push(commit.to_string());
        Some(ChainLink {
            key,
            generation,
            commit: commit.to_string(),
        })
    }

    /// What the member does now that it may push. Called during [`Self::push_turn`].
    pub fn chain_turn(&self, link: &ChainLink) -> ChainTurn {
        let mut chains = self.chains.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let chain = chains.entry(link.key.clone()).or_default();
        if chain.landed.remove(&link.commit) {
            ChainTurn::Landed
        } else if chain.generation == link.generation
            && let Some(newest) = chain.commits.last()
        {
            ChainTurn::Push(newest.clone())
        } else {
            ChainTurn::Broken
        }
    }

    /// Records that `pushed` (a commit of the link's chain) is on the remote, and so is every
    /// commit of the chain below it; it is the last commit pushed.
    pub fn chain_pushed(&self, link: &ChainLink, pushed: &str) {
        let mut chains = self.chains.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let chain = chains.entry(link.key.clone()).or_default();
        chain.pushed = Some(pushed.to_string());
        if chain.generation == link.generation
            && let Some(at) = chain.commits.iter().position(|c| c == pushed)
        {
            for c in chain.commits.drain(..=at) {
                if c != link.commit {
                    chain.landed.insert(c);
                }
            }
        }
    }

    /// Breaks the link's chain (a push failed): its waiting members push alone.
    pub fn chain_break(&self, link: &ChainLink) {
        let mut chains = self.chains.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let chain = chains.entry(link.key.clone()).or_default();
        if chain.generation == link.generation {
            chain.generation += 1;
            chain.commits.clear();
        }
    }

    /// Takes back a checkout of `url` that a finished promotion no longer needs (a worktree
    /// of this cache; anything else is just deleted).
    pub async fn recycle(&self, url: &str, dir: &Path) {
        let is_worktree = std::fs::metadata(dir.join(".git")).is_ok_and(|m| m.is_file());
        // A sparse worktree would hand its cone to the next checkout, one with submodules their
        // checkouts (a fresh checkout has empty submodule directories): it is removed instead.
        let unpooled = is_worktree && (crate::files::is_sparse(dir) || crate::files::has_submodules(dir));
        if unpooled && let Ok(_guard) = self.lock_repo(url).await {
            let admin = Workspace::open(&self.bare_path(url), url, None, None, Author::default());
            let dir_arg = dir.display().to_string();
            if admin.run(&["worktree", "remove", "--force", &dir_arg]).await.is_ok() {
                return;
            }
        } else if is_worktree
            && !unpooled
            && let Ok(_guard) = self.lock_repo(url).await
        {
            let n = self.recycled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let target = self.pool_dir.join(n.to_string());
            let admin = Workspace::open(&self.bare_path(url), url, None, None, Author::default());
            let _ = std::fs::create_dir_all(&self.pool_dir);
            if move_worktree(&admin, dir, &target).await.is_ok() {
                self.maintain(url, &admin).await;
                let cleaning = tokio::spawn(clean_at_head(url.to_string(), target));
                self.pool
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(url.to_string())
                    .or_default()
                    .push(cleaning);
                return;
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Deletes the pools of processes that are gone (a cache may be shared by a daemon and CLI
    /// calls: live ones keep theirs).
    fn sweep_ended_pools(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("pool")) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path != self.pool_dir && !of_another_live_process(&entry.file_name()) {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    /// A clean worktree of `url` from the pool, if any: one already cleaned, else the one whose
    /// cleaning finishes first (a fresh worktree would write the whole tree, which costs more
    /// than waiting for a cleaning under way).
    async fn pooled_worktree(&self, url: &str) -> Option<PathBuf> {
        loop {
            let cleaning = {
                let mut pool = self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let waiting = pool.get_mut(url)?;
                let done = waiting.iter().rposition(tokio::task::JoinHandle::is_finished);
                let at = done.or_else(|| waiting.len().checked_sub(1))?;
                waiting.swap_remove(at)
            };
            if let Ok(Some(dir)) = cleaning.await {
                return Some(dir);
            }
        }
    }

    /// Every [`MAINTENANCE_EVERY`] promotions of a repository, git's own housekeeping (packing
    /// loose objects when there are enough of them), which barge's git commands do not start
    /// after each command. Called under the repository's lock.
    async fn maintain(&self, url: &str, admin: &Workspace) {
        let due = {
            let mut counts = self
                .since_maintenance
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = counts.entry(url.to_string()).or_default();
            *n += 1;
            *n >= MAINTENANCE_EVERY && {
                *n = 0;
                true
            }
        };
        if due && let Err(e) = admin.run(&["maintenance", "run", "--auto", "--quiet"]).await {
            tracing::warn!(repo = %redact(url), error = %e, "git maintenance of the repository cache failed");
        }
    }

    /// The turn to push to `branch` of `url`: pushes of this process, and of the others sharing
    /// the cache directory, go one at a time (one that integrated with the branch during its
    /// turn is not rejected because another process pushed meanwhile).
    pub async fn push_turn(&self, url: &str, branch: &str) -> Result<Held, GitError> {
        use sha1::Digest;
        let branch_hash = sha1::Sha1::digest(branch.as_bytes());
        let hex: String = branch_hash.iter().take(10).map(|b| format!("{b:02x}")).collect();
        let lock = self.bare_path(url).with_extension(format!("push-{hex}.lock"));
        self.hold(url, &format!("{url} {branch}"), &lock).await
    }

    /// Holds the repository of `url` for this task: first against the other tasks of this
    /// process, then against other processes. The file lock is waited for on a blocking thread,
    /// never the runtime's, for at most the cache's lock wait.
    async fn lock_repo(&self, url: &str) -> Result<Held, GitError> {
        self.hold(url, url, &self.bare_path(url).with_extension("lock")).await
    }

    /// Holds this process's mutex `key`, then the file lock at `path` (of `url`'s repository).
    async fn hold(&self, url: &str, key: &str, path: &Path) -> Result<Held, GitError> {
        let task = self.lock_for(key).lock_owned().await;
        let path = path.to_path_buf();
        std::fs::create_dir_all(&self.root).map_err(|e| io_error(url, &self.root, &e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(url, &path, &e))?;
        let file = match file.try_lock() {
            Ok(()) => file,
            Err(std::fs::TryLockError::WouldBlock) => {
                // Should the wait run out, the blocking thread still takes the lock in the end,
                // and releases it at once: the file is dropped with the unclaimed result.
                let waiting = tokio::task::spawn_blocking(move || file.lock().map(|()| file));
                match tokio::time::timeout(self.lock_wait, waiting).await {
                    Ok(Ok(Ok(file))) => file,
                    Ok(Ok(Err(e))) => return Err(io_error(url, &path, &e)),
                    Ok(Err(e)) => return Err(io_error(url, &path, &std::io::Error::other(e))),
                    Err(_) => {
                        return Err(GitError::Transient {
                            url: redact(url),
                            message: format!(
                                "the repository cache is held by another process (lock {}) for more than {}s; is a barge process stuck?",
                                path.display(),
                                self.lock_wait.as_secs()
                            ),
                        });
                    }
                }
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(url, &path, &e)),
        };
        Ok(Held {
            _file: file,
            _task: task,
        })
    }

    /// Makes sure the repository of `url` is in the cache and sound, once per process (and
    /// again should it disappear): an unsound one is rebuilt, a new one created whole; an
    /// existing one is pruned of the worktrees of promotions that ended (or crashed) before this
    /// process started, with the pools of processes that ended. Called under the repository's lock.
    async fn prepare(&self, url: &str, bare: &Path) -> Result<(), GitError> {
        let prepared = self
            .prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(url);
        if prepared && bare.join("HEAD").exists() {
            return Ok(());
        }
        if bare.exists() && is_sound(url, bare).await {
            self.sweep_ended_pools();
            let admin = Workspace::open(bare, url, None, None, Author::default());
            admin.run(&["worktree", "prune"]).await?;
        } else {
            if bare.exists() {
                tracing::warn!(repo = %redact(url), path = %bare.display(), "the cached repository is unsound (a process was killed while creating it?); rebuilding it");
                // Renamed first, so that a failure half-way through the deletion leaves no entry.
                let old = bare.with_extension("git.old");
                let _ = std::fs::remove_dir_all(&old);
                std::fs::rename(bare, &old).map_err(|e| io_error(url, bare, &e))?;
                let _ = std::fs::remove_dir_all(&old);
            }
            create_bare(url, bare).await?;
        }
        self.prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(url.to_string());
        Ok(())
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
        self.checkout_with(url, what, dir, credentials, author, &CheckoutOptions::default())
            .await
    }

    /// [`Self::checkout`] made as `options` say.
    pub async fn checkout_with(
        &self,
        url: &str,
        what: &Checkout,
        dir: &Path,
        credentials: Option<Credentials>,
        author: Author,
        options: &CheckoutOptions,
    ) -> Result<Workspace, GitError> {
        let asked = std::time::Instant::now();
        let guard = self.lock_repo(url).await?;
        let bare = self.bare_path(url);
        self.prepare(url, &bare).await?;
        let sparse = options.sparse.as_slice();
        // Every git process of this checkout (fetches, the lazy blob fetches of a checkout,
        // submodules, later pushes) gets the same TLS setting; nothing is written to a config.
        let open = |dir: &Path, branch: Option<String>| {
            Workspace::open(dir, url, branch, credentials.clone(), author.clone())
                .with_insecure_tls(options.insecure_skip_tls_verify)
        };
        let admin = open(&bare, None);
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
                    && commit_of(&admin, &tracking).await.is_ok();
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
            Some(_) => self.pooled_worktree(url).await,
            None => None,
        };
        // Only the worktree bookkeeping needs the lock; writing the files does not.
        let mut base = None;
        match (&start, pooled) {
            (Some(start), Some(free)) => {
                let sha = commit_of(&admin, start).await?;
                base = Some(sha.clone());
                move_worktree(&admin, &free, dir).await?;
                drop(guard);
                let ws = open(dir, None);
                set_sparse(&ws, sparse).await?;
                // Pooled worktrees are clean at their HEAD: one already at the commit is ready,
                // another needs only the files that differ rewritten.
                if crate::files::head(dir).as_deref() != Some(sha.as_str()) {
                    ws.run(&["checkout", "-q", "--detach", "-f", &sha]).await?;
                }
            }
            (Some(start), None) => {
                let sha = commit_of(&admin, start).await?;
                base = Some(sha.clone());
                admin
                    .run(&[
                        "worktree",
                        "add",
                        "-q",
                        "--no-checkout",
                        "--detach",
                        "-f",
                        &dir_arg,
                        &sha,
                    ])
                    .await?;
                drop(guard);
                let ws = open(dir, None);
                set_sparse(&ws, sparse).await?;
                ws.run(&["reset", "-q", "--hard", &sha]).await?;
            }
            (None, _) => {
                // An orphan branch: a fresh repository whose first commit has no parent (works
                // with any git; `worktree add --orphan` needs 2.42).
                std::fs::create_dir_all(dir).map_err(|e| io_error(url, dir, &e))?;
                let fresh = open(dir, branch.clone());
                fresh.run(&["init", "-q"]).await?;
                fresh.run(&["remote", "add", "origin", url]).await?;
                set_sparse(&fresh, sparse).await?;
            }
        }
        let ws = open(dir, branch).with_base(base);
        // An orphan branch has no files yet, so no submodules. A submodule may not be a local
        // path (git's default for submodules since 2.38.1, CVE-2022-39253): one could name
        // another repository of this cache.
        if options.recurse_submodules && start.is_some() {
            let rewrites = insteadof_args(&options.rewrites);
            let mut args: Vec<&str> = rewrites.iter().map(String::as_str).collect();
            args.extend([
                "-c",
                "protocol.file.allow=user",
                "submodule",
                "--quiet",
                "update",
                "--init",
                "--recursive",
            ]);
            ws.run(&args).await.map_err(submodule_error)?;
        }
        Ok(ws)
    }
}

/// `-c url.<to>.insteadOf=<from>` for each rewrite: what the git processes of a submodule
/// update (the nested ones too; git hands `-c` settings down) need so that a submodule named
/// at an original server is fetched from where barge's rewrites send that server. git, like
/// [`barge_core::rewrite::apply`], takes the longest matching prefix. A target's userinfo is
/// left out (the command line is visible to other users of the machine); the checkout's
/// credentials are given to its own server by the askpass helper, which a submodule rewritten
/// to that server reaches.
///
/// A relative submodule URL (`../lib.git`) resolves against the checkout's remote, which is
/// the rewritten URL already: each target is also rewritten to itself (`url.<to>.insteadOf=<to>`,
/// longer than the source whenever the target begins with it), so a URL already under a
/// target is not rewritten again (`https://github.com/` → `https://github.com/mirror/` would
/// otherwise send `../lib.git` to `…/mirror/mirror/…`). A `.gitmodules` URL that names a
/// target itself is taken as it is, too. A target that is another rewrite's source (chained
/// rewrites, X → Y and Y → Z) gets no such rule: git, finding two equally long matches, would
/// take the one that leaves Y as it is, where barge's own rewrites send Y on to Z.
fn insteadof_args(rewrites: &[barge_core::rewrite::Rewrite]) -> Vec<String> {
    let mut args = Vec::new();
    for r in rewrites {
        let (to, _) = barge_core::secret::split_userinfo(&r.to);
        args.extend(["-c".to_string(), format!("url.{to}.insteadOf={}", r.from)]);
        if !rewrites.iter().any(|other| other.from == to) {
            args.extend(["-c".to_string(), format!("url.{to}.insteadOf={to}")]);
        }
    }
    args
}

/// A failed submodule update, explained where git's own words do not say what to do: a
/// submodule at a local path or `file://` URL is refused (git's `protocol.file.allow=user`
/// for submodules since 2.38.1, CVE-2022-39253), which git reports as a transport not allowed.
fn submodule_error(e: GitError) -> GitError {
    let hint = "a submodule may not be a local path or file:// URL (git refuses them by default, \
                CVE-2022-39253): serve it over https, ssh or git (a `rewrites` entry may send its URL \
                to such a server)";
    match e {
        GitError::Transient { url, message } if message.contains("transport 'file' not allowed") => GitError::Invalid {
            url,
            message: format!("{message} ({hint})"),
        },
        other => other,
    }
}

/// Limits the worktree of `ws` to the directories `sparse` (cone mode: their files, and the
/// files at the top of the repository), before it is filled; nothing when `sparse` is empty.
/// git keeps the setting in the worktree's own configuration (`extensions.worktreeConfig`), so
/// other worktrees of the cache stay whole.
async fn set_sparse(ws: &Workspace, sparse: &[String]) -> Result<(), GitError> {
    if sparse.is_empty() {
        return Ok(());
    }
    let mut args = vec!["sparse-checkout", "set", "--cone", "--"];
    args.extend(sparse.iter().map(String::as_str));
    ws.run(&args).await.map(|_| ())
}

/// Creates the cache's bare repository of `url` at `bare` whole: made in a temporary directory
/// beside it and renamed into place. Called under the repository's lock, so a temporary
/// directory found there is a killed process's and is deleted.
async fn create_bare(url: &str, bare: &Path) -> Result<(), GitError> {
    let new = bare.with_extension("git.new");
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(|e| io_error(url, &new, &e))?;
    }
    std::fs::create_dir_all(&new).map_err(|e| io_error(url, &new, &e))?;
    let admin = Workspace::open(&new, url, None, None, Author::default());
    admin.run(&["init", "-q", "--bare"]).await?;
    admin.run(&["remote", "add", "origin", url]).await?;
    // No fetch refspec: fetches name their refs, and pushes from worktrees must not
    // update tracking refs behind the lock (concurrent pushes would fight over them).
    admin.run(&["config", "--unset-all", "remote.origin.fetch"]).await?;
    std::fs::rename(&new, bare).map_err(|e| io_error(url, bare, &e))
}

/// Whether the cached repository at `bare` is one [`create_bare`] finished for `url`: a bare
/// repository (asked of git with `--git-dir`, so that a broken one is not mistaken for a
/// repository above it) whose origin is `url` and which has no fetch refspec.
async fn is_sound(url: &str, bare: &Path) -> bool {
    let admin = Workspace::open(bare, url, None, None, Author::default());
    let Ok(config) = admin.run(&["--git-dir=.", "config", "--local", "--list"]).await else {
        return false;
    };
    // `create_bare`'s `remote add` stored the URL without its userinfo (git_env takes it off).
    let origin = format!("remote.origin.url={}", barge_core::secret::split_userinfo(url).0);
    config.lines().any(|l| l == origin) && !config.lines().any(|l| l.starts_with("remote.origin.fetch="))
}

/// Whether the pool directory `name` (`<pid>-<start>`) is another running process's: its pid
/// is not this process's (an earlier holder of this pid has ended) and /proc lists it.
fn of_another_live_process(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .and_then(|name| name.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists())
}

/// Makes a worktree a finished promotion left behind clean at its HEAD: uncommitted changes
/// undone, untracked and ignored files (nested repositories too) removed. Its path, or `None`
/// (and the worktree deleted; git forgets it at the next prune) when git could not.
async fn clean_at_head(url: String, dir: PathBuf) -> Option<PathBuf> {
    let ws = Workspace::open(&dir, &url, None, None, Author::default());
    let cleaned = ws.run(&["reset", "-q", "--hard", "HEAD"]).await.is_ok()
        && ws.run(&["clean", "-q", "-f", "-f", "-d", "-x"]).await.is_ok();
    if cleaned {
        return Some(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    None
}

/// The commit `rev` names in the cache: a tracking branch is read from its ref file, anything
/// else (a tag to peel, a commit) is asked of git.
async fn commit_of(admin: &Workspace, rev: &str) -> Result<String, GitError> {
    if rev.starts_with("refs/remotes/")
        && let Some(id) = crate::files::read_ref(admin.path(), rev)
    {
        return Ok(id);
    }
    let out = admin
        .run(&["rev-parse", "-q", "--verify", &format!("{rev}^{{commit}}")])
        .await?;
    Ok(out.trim().to_string())
}

/// Moves a worktree of the cache (see [`crate::files::move_worktree`]), asking git when the
/// worktree is not one the quick move understands.
async fn move_worktree(admin: &Workspace, from: &Path, to: &Path) -> Result<(), GitError> {
    if crate::files::move_worktree(from, to) {
        return Ok(());
    }
    admin
        .run(&[
            "worktree",
            "move",
            &from.display().to_string(),
            &to.display().to_string(),
        ])
        .await
        .map(|_| ())
}

fn io_error(url: &str, path: &Path, e: &std::io::Error) -> GitError {
    GitError::Invalid {
        url: redact(url),
        message: format!("{}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::{ChainTurn, RepoCache};

    /// A submodule's URL goes where barge's own rewrites send it: each target is kept from a
    /// second rewrite (a relative URL under it), except a target that a chained rewrite sends
    /// on (X → Y, Y → Z: Y must still reach Z).
    #[test]
    fn submodule_rewrites_keep_targets_but_follow_chains() {
        let rewrite = |from: &str, to: &str| barge_core::rewrite::Rewrite {
            from: from.into(),
            to: to.into(),
        };
        let args = super::insteadof_args(&[
            rewrite("https://x.example/", "https://y.example/"),
            rewrite("https://y.example/", "https://z.example/"),
            rewrite("https://github.com/", "https://github.com/mirror/"),
        ]);
        let rules: Vec<&str> = args.iter().filter(|a| *a != "-c").map(String::as_str).collect();
        assert_eq!(
            rules,
            [
                "url.https://y.example/.insteadOf=https://x.example/",
                "url.https://z.example/.insteadOf=https://y.example/",
                "url.https://z.example/.insteadOf=https://z.example/",
                "url.https://github.com/mirror/.insteadOf=https://github.com/",
                "url.https://github.com/mirror/.insteadOf=https://github.com/mirror/",
            ]
        );
    }

    const URL: &str = "file:///config.git";

    #[test]
    fn one_push_of_the_newest_lands_the_chain_below_it() {
        let cache = RepoCache::new(std::path::Path::new("/nonexistent"));
        assert_eq!(cache.chain_newest(URL, "main"), (0, None));
        let a = cache.chain_join(URL, "main", "aaa", 0).unwrap();
        let b = cache.chain_join(URL, "main", "bbb", 0).unwrap();
        assert_eq!(cache.chain_newest(URL, "main"), (0, Some("bbb".into())));
        // Other branches have chains of their own.
        assert_eq!(cache.chain_newest(URL, "prod"), (0, None));
        // a's turn comes first: it pushes b's commit, stacked on its own.
        assert_eq!(cache.chain_turn(&a), ChainTurn::Push("bbb".into()));
        cache.chain_pushed(&a, "bbb");
        assert_eq!(cache.chain_turn(&b), ChainTurn::Landed);
        assert_eq!(cache.last_pushed(URL, "main").as_deref(), Some("bbb"));
        assert_eq!(cache.chain_newest(URL, "main"), (0, None), "nothing waits any more");
        // A later member pushes its own.
        let c = cache.chain_join(URL, "main", "ccc", 0).unwrap();
        assert_eq!(cache.chain_turn(&c), ChainTurn::Push("ccc".into()));
    }

    #[test]
    fn a_failed_push_breaks_the_chain_for_everyone_in_it() {
        let cache = RepoCache::new(std::path::Path::new("/nonexistent"));
        let a = cache.chain_join(URL, "main", "aaa", 0).unwrap();
        let b = cache.chain_join(URL, "main", "bbb", 0).unwrap();
        assert_eq!(cache.chain_turn(&a), ChainTurn::Push("bbb".into()));
        cache.chain_break(&a);
        assert_eq!(
            cache.chain_turn(&b),
            ChainTurn::Broken,
            "b's commit sits on a's, which did not land"
        );
        assert_eq!(cache.chain_newest(URL, "main"), (1, None));
        // A replay onto the old chain's newest cannot join the new one.
        assert!(cache.chain_join(URL, "main", "bbb2", 0).is_none());
        let b2 = cache.chain_join(URL, "main", "bbb3", 1).unwrap();
        // The old generation's pushes and breaks no longer touch the new chain.
        cache.chain_pushed(&a, "bbb");
        cache.chain_break(&a);
        assert_eq!(cache.chain_turn(&b2), ChainTurn::Push("bbb3".into()));
    }
}
