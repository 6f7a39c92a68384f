//! The repository cache: worktrees per checkout, recycled worktrees that come back clean.

use barge_git::cache::{Checkout, RepoCache};
use barge_git::repo::{Author, Workspace};

use barge_testkit::git::{bare_repo, git};

/// A repository whose `main` holds `a.yaml` (`v: 1`), its URL, an empty cache, and a checkout
/// of `main`.
fn seeded_cache(root: &std::path::Path) -> (std::path::PathBuf, String, RepoCache, Checkout) {
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::write(seed.join("a.yaml"), "v: 1\n").unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-q", "-m", "one"]);
    let url = format!("file://{}", seed.display());
    let cache = RepoCache::new(&root.join("cache"));
    let main = Checkout::Branch {
        name: "main".into(),
        create: false,
    };
    (seed, url, cache, main)
}

#[tokio::test]
async fn a_recycled_worktree_comes_back_clean_at_the_new_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (seed, url, cache, main) = seeded_cache(dir.path());
    let first = dir.path().join("p1/src");
    let ws = check_out(&cache, &url, &main, &first).await;
    // A promotion leaves a commit that was never pushed and an untracked file behind.
    std::fs::write(first.join("a.yaml"), "v: local\n").unwrap();
    std::fs::write(first.join("junk.txt"), "x").unwrap();
    ws.commit_all("local only", "p1").await.unwrap().unwrap();
    cache.recycle(&url, &first).await;
    assert!(!first.exists(), "the worktree moved to the pool");

    std::fs::write(seed.join("a.yaml"), "v: 2\n").unwrap();
    git(&seed, &["commit", "-q", "-am", "two"]);
    let second = dir.path().join("p2/src");
    let ws = check_out(&cache, &url, &main, &second).await;
    assert_eq!(ws.head().await.unwrap(), git(&seed, &["rev-parse", "main"]));
    assert_eq!(std::fs::read_to_string(second.join("a.yaml")).unwrap(), "v: 2\n");
    assert!(!second.join("junk.txt").exists(), "untracked files are cleaned");
    // It is the recycled worktree (the pool is empty again), and git agrees it is clean.
    assert_eq!(pooled(dir.path()), 0);
    assert_eq!(git(&second, &["status", "--porcelain"]), "");
}

/// A checkout of `what` at `dir`, as a promotion's git-clone asks for it.
async fn check_out(cache: &RepoCache, url: &str, what: &Checkout, dir: &std::path::Path) -> Workspace {
    cache.checkout(url, what, dir, None, Author::default()).await.unwrap()
}

/// How many worktrees wait in the pools under `root/cache`.
fn pooled(root: &std::path::Path) -> usize {
    std::fs::read_dir(root.join("cache/pool"))
        .unwrap()
        .flatten()
        .map(|pool| std::fs::read_dir(pool.path()).unwrap().count())
        .sum()
}

/// The checkout of a branch that has not moved since the worktree came back (the usual case
/// for a process that pushed it last) gets the worktree as the background cleaning left it:
/// no checkout at all, yet every trace of the last promotion is gone.
#[tokio::test]
async fn a_worktree_already_at_the_branch_head_needs_no_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let (seed, url, cache, main) = seeded_cache(dir.path());
    std::fs::write(seed.join(".gitignore"), "rendered/\n").unwrap();
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-q", "-m", "ignore rendered"]);
    let first = dir.path().join("p1/src");
    check_out(&cache, &url, &main, &first).await;
    // The promotion failed half-way: an edit, a new file, an ignored directory, a nested repository.
    std::fs::write(first.join("a.yaml"), "v: half-done\n").unwrap();
    std::fs::write(first.join("new.yaml"), "x: 1\n").unwrap();
    std::fs::create_dir_all(first.join("rendered")).unwrap();
    std::fs::write(first.join("rendered/all.yaml"), "kind: List\n").unwrap();
    git(&first, &["init", "-q", "nested"]);
    cache.recycle(&url, &first).await;
    // Wait for the background cleaning to finish, and note the worktree's index file then
    // (git rewrites it, under a new inode, on any checkout).
    let pooled_dir = std::fs::read_dir(dir.path().join("cache/pool"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("0");
    let index = std::path::PathBuf::from(git(
        &pooled_dir,
        &["rev-parse", "--path-format=absolute", "--git-path", "index"],
    ));
    // The wait ends once the cleaning did; a minute is for a loaded machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ["new.yaml", "rendered", "nested"]
        .iter()
        .any(|f| pooled_dir.join(f).exists())
        || index.with_extension("lock").exists()
    {
        assert!(std::time::Instant::now() < deadline, "the cleaning never finished");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    use std::os::unix::fs::MetadataExt;
    let cleaned_index = std::fs::metadata(&index).unwrap().ino();

    let second = dir.path().join("p2/src");
    let ws = check_out(&cache, &url, &main, &second).await;
    assert_eq!(ws.head().await.unwrap(), git(&seed, &["rev-parse", "main"]));
    assert_eq!(std::fs::read_to_string(second.join("a.yaml")).unwrap(), "v: 1\n");
    for gone in ["new.yaml", "rendered", "nested"] {
        assert!(!second.join(gone).exists(), "{gone} is cleaned");
    }
    assert_eq!(pooled(dir.path()), 0, "it is the recycled worktree");
    assert_eq!(
        std::fs::metadata(&index).unwrap().ino(),
        cleaned_index,
        "no checkout ran after the cleaning"
    );
    // (git status may rewrite the index: asked last.)
    assert_eq!(git(&second, &["status", "--porcelain", "--ignored"]), "");
}

/// A cache directory may be shared by a daemon and CLI calls: a process deletes the pools of
/// processes that ended (the pid is gone, or it is its own pid from an earlier life), never one
/// of a live process.
#[tokio::test]
async fn only_the_pools_of_ended_processes_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url, cache, main) = seeded_cache(dir.path());
    let first = dir.path().join("p1/src");
    check_out(&cache, &url, &main, &first).await;
    cache.recycle(&url, &first).await;
    let pools = dir.path().join("cache/pool");
    // The parent of this test process is alive; pid 4194305 is above Linux's maximum.
    let live = pools.join(format!("{}-1", std::os::unix::process::parent_id()));
    let ended = pools.join("4194305-1");
    for pool in [&live, &ended] {
        std::fs::create_dir_all(pool.join("0")).unwrap();
    }
    // A new cache over the same directory, as a process started later would open it.
    let later = RepoCache::new(&dir.path().join("cache"));
    let second = dir.path().join("p2/src");
    check_out(&later, &url, &main, &second).await;
    assert!(live.join("0").exists(), "a live process keeps its pool");
    assert!(!ended.exists());
    let left: Vec<_> = std::fs::read_dir(&pools).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(
        left,
        vec![live],
        "the first cache's pool went with it (same pid, earlier start)"
    );
}

#[tokio::test]
async fn fetches_are_blobless_where_the_server_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let bare = bare_repo(
        dir.path(),
        "config.git",
        &[
            ("big/a.yaml", "a: 1\n"),
            ("big/b.yaml", "b: 2\n"),
            ("env/dev/k.yaml", "tag: 1.0.0\n"),
        ],
    );
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    let url = format!("file://{}", bare.display());
    let cache = RepoCache::new(&dir.path().join("cache"));
    let main = Checkout::Branch {
        name: "main".into(),
        create: false,
    };
    let wt = dir.path().join("p1/src");
    check_out(&cache, &url, &main, &wt).await;
    // The cache is a partial clone of the remote, and the checkout still has every file.
    let cached = cache.bare_path(&url);
    assert_eq!(git(&cached, &["config", "remote.origin.promisor"]), "true");
    assert_eq!(
        git(&cached, &["config", "remote.origin.partialclonefilter"]),
        "blob:none"
    );
    assert_eq!(
        std::fs::read_to_string(wt.join("env/dev/k.yaml")).unwrap(),
        "tag: 1.0.0\n"
    );
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");
}

/// barge's git commands start no automatic maintenance (a process each time); the cache runs
/// git's own housekeeping itself, every MAINTENANCE_EVERY recycled checkouts. (The task seen
/// here is a commit-graph, set to be due after one new commit; git's default, gc, decides on
/// an estimate of loose objects that is not deterministic.)
#[tokio::test]
async fn the_cache_runs_git_maintenance_every_so_many_promotions() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url, cache, main) = seeded_cache(dir.path());
    let bare = cache.bare_path(&url);
    let graphs = bare.join("objects/info/commit-graphs");
    for n in 1..=barge_git::cache::MAINTENANCE_EVERY {
        let work = dir.path().join(format!("p{n}/src"));
        let ws = check_out(&cache, &url, &main, &work).await;
        if n == 1 {
            git(&bare, &["config", "maintenance.commit-graph.enabled", "true"]);
            git(&bare, &["config", "maintenance.commit-graph.auto", "1"]);
        }
        std::fs::write(work.join("a.yaml"), format!("v: {}\n", n + 1)).unwrap();
        ws.commit_all(&format!("local {n}"), &format!("p{n}"))
            .await
            .unwrap()
            .unwrap();
        cache.recycle(&url, &work).await;
        if n < barge_git::cache::MAINTENANCE_EVERY {
            assert!(!graphs.exists(), "maintenance ran after recycle {n}");
        }
    }
    // git may run it in the background (maintenance.autoDetach).
    // (a minute: a background git on a loaded machine)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !graphs.exists() {
        assert!(std::time::Instant::now() < deadline, "maintenance never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A daemon promoting through several repositories meets each for the first time at its own
/// moment; that first checkout sweeps ended processes' pools, never the daemon's own.
#[tokio::test]
async fn meeting_another_repository_keeps_the_pooled_worktrees_of_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (_, first_url, earlier, main) = seeded_cache(dir.path());
    let other = bare_repo(dir.path(), "other.git", &[("b.yaml", "v: 1\n")]);
    let other_url = format!("file://{}", other.display());
    // An earlier process cached both repositories.
    check_out(&earlier, &first_url, &main, &dir.path().join("p0/a")).await;
    check_out(&earlier, &other_url, &main, &dir.path().join("p0/b")).await;

    let cache = RepoCache::new(&dir.path().join("cache"));
    let p1 = dir.path().join("p1/src");
    check_out(&cache, &first_url, &main, &p1).await;
    cache.recycle(&first_url, &p1).await;
    check_out(&cache, &other_url, &main, &dir.path().join("p2/src")).await;
    assert_eq!(pooled(dir.path()), 1, "the first repository's worktree is still pooled");
    let p3 = dir.path().join("p3/src");
    let ws = check_out(&cache, &first_url, &main, &p3).await;
    assert_eq!(std::fs::read_to_string(p3.join("a.yaml")).unwrap(), "v: 1\n");
    assert_eq!(ws.head().await.unwrap(), git(&p3, &["rev-parse", "HEAD"]));
    assert_eq!(pooled(dir.path()), 0, "and it served the next checkout");
}

/// What a process killed in the first milliseconds of creating a cache entry left behind with
/// earlier versions: a bare repository without `remote.origin.url` (`init` done, `remote add`
/// not). The next checkout rebuilds it instead of failing with "branch main does not exist"
/// for ever; the temporary directory of a killed creation is no entry at all.
#[tokio::test]
async fn a_half_created_cache_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (seed, url, cache, main) = seeded_cache(dir.path());
    let bare = cache.bare_path(&url);
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare"]);
    let killed_creation = bare.with_extension("git.new");
    std::fs::create_dir_all(killed_creation.join("objects")).unwrap();

    let wt = dir.path().join("p1/src");
    let ws = check_out(&cache, &url, &main, &wt).await;
    assert_eq!(ws.head().await.unwrap(), git(&seed, &["rev-parse", "main"]));
    assert_eq!(git(&bare, &["config", "remote.origin.url"]), url);
    assert!(!killed_creation.exists(), "the killed creation's leftovers are gone");
}

/// Processes sharing a cache directory take turns on a repository through a file lock; one
/// that waits too long for it gets an error that says so, instead of hanging.
#[tokio::test]
async fn a_repository_held_by_another_process_is_waited_for_within_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url, cache, main) = seeded_cache(dir.path());
    let cache = cache.with_lock_wait(std::time::Duration::from_millis(300));
    let lock = cache.bare_path(&url).with_extension("lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    // Another open file description of the lock stands for another process.
    let other = std::fs::File::create(&lock).unwrap();
    other.lock().unwrap();
    let wt = dir.path().join("p1/src");
    let held = cache
        .checkout(&url, &main, &wt, None, Author::default())
        .await
        .err()
        .expect("the checkout waits for the lock, then gives up");
    assert!(held.to_string().contains("held by another process"), "{held}");
    assert_eq!(held.class(), barge_core::ErrorClass::Transient);
    other.unlock().unwrap();
    check_out(&cache, &url, &main, &wt).await;
}
