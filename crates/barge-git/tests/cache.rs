//! The repository cache: worktrees per checkout, recycled worktrees that come back clean.

use barge_git::cache::{Checkout, RepoCache};
use barge_git::repo::Author;

mod support;
use support::git;

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
    let ws = cache
        .checkout(&url, &main, &first, None, Author::default())
        .await
        .unwrap();
    // A promotion leaves a commit that was never pushed and an untracked file behind.
    std::fs::write(first.join("a.yaml"), "v: local\n").unwrap();
    std::fs::write(first.join("junk.txt"), "x").unwrap();
    ws.commit_all("local only", "p1").await.unwrap().unwrap();
    cache.recycle(&url, &first).await;
    assert!(!first.exists(), "the worktree moved to the pool");

    std::fs::write(seed.join("a.yaml"), "v: 2\n").unwrap();
    git(&seed, &["commit", "-q", "-am", "two"]);
    let second = dir.path().join("p2/src");
    let ws = cache
        .checkout(&url, &main, &second, None, Author::default())
        .await
        .unwrap();
    assert_eq!(ws.head().await.unwrap(), git(&seed, &["rev-parse", "main"]));
    assert_eq!(std::fs::read_to_string(second.join("a.yaml")).unwrap(), "v: 2\n");
    assert!(!second.join("junk.txt").exists(), "untracked files are cleaned");
    // It is the recycled worktree (the pool is empty again), and git agrees it is clean.
    assert!(
        std::fs::read_dir(dir.path().join("cache/pool"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(git(&second, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn fetches_are_blobless_where_the_server_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let bare = support::bare_repo(
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
    cache.checkout(&url, &main, &wt, None, Author::default()).await.unwrap();
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
        let ws = cache
            .checkout(&url, &main, &work, None, Author::default())
            .await
            .unwrap();
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !graphs.exists() {
        assert!(std::time::Instant::now() < deadline, "maintenance never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
