//! Reading git's files instead of asking git: every answer is checked against git itself, on
//! real repositories (loose and packed refs, detached and symbolic HEADs, worktrees).

use barge_git::files;
use std::path::Path;

use barge_testkit::git::git;

fn repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("a.yaml"), "v: 1\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "one"]);
    std::fs::write(dir.join("a.yaml"), "v: 2\n").unwrap();
    git(dir, &["commit", "-q", "-am", "two"]);
}

#[test]
fn heads_and_refs_match_what_git_says() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    repo(&r);
    let main = git(&r, &["rev-parse", "main"]);
    let dot_git = r.join(".git");
    // A symbolic HEAD to a loose ref.
    assert_eq!(files::head(&r), Some(main.clone()));
    assert_eq!(files::read_ref(&dot_git, "refs/heads/main"), Some(main.clone()));
    // Packed refs (what `git gc` leaves).
    git(&r, &["pack-refs", "--all"]);
    assert!(!dot_git.join("refs/heads/main").exists());
    assert_eq!(files::read_ref(&dot_git, "refs/heads/main"), Some(main.clone()));
    assert_eq!(files::head(&r), Some(main.clone()));
    // A detached HEAD.
    let first = git(&r, &["rev-parse", "main^"]);
    git(&r, &["checkout", "-q", "--detach", &first]);
    assert_eq!(files::head(&r), Some(first));
    // Nothing, or not a ref: no answer (the caller asks git).
    assert_eq!(files::read_ref(&dot_git, "refs/heads/nope"), None);
    assert_eq!(files::read_ref(&dot_git, "HEAD"), None);
    assert_eq!(files::read_ref(&dot_git, "refs/../HEAD"), None);
    git(&r, &["checkout", "-q", "--orphan", "empty"]);
    assert_eq!(files::head(&r), None, "an unborn branch has no commit");
    assert_eq!(files::head(dir.path()), None, "not a repository");
}

#[test]
fn worktrees_are_read_and_moved_as_git_would() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    repo(&r);
    let bare = dir.path().join("cache.git");
    git(
        dir.path(),
        &["clone", "-q", "--bare", r.to_str().unwrap(), bare.to_str().unwrap()],
    );
    let wt = dir.path().join("p1/src");
    git(
        &bare,
        &["worktree", "add", "-q", "--detach", wt.to_str().unwrap(), "main^"],
    );
    assert_eq!(files::head(&wt), Some(git(&wt, &["rev-parse", "HEAD"])));
    // Refs live in the common directory, not the worktree's own.
    let admin = git(&wt, &["rev-parse", "--git-dir"]);
    assert_eq!(
        files::read_ref(Path::new(&admin), "refs/heads/main"),
        Some(git(&bare, &["rev-parse", "main"]))
    );

    let pooled = dir.path().join("pool/0");
    std::fs::create_dir_all(pooled.parent().unwrap()).unwrap();
    assert!(files::move_worktree(&wt, &pooled));
    assert!(!wt.exists() && pooled.join("a.yaml").is_file());
    // git knows the worktree at its new place, keeps it through a prune, and works in it.
    git(&bare, &["worktree", "prune"]);
    let listed = git(&bare, &["worktree", "list", "--porcelain"]);
    assert!(listed.contains(&format!("worktree {}", pooled.display())), "{listed}");
    assert!(!listed.contains("p1/src"), "{listed}");
    assert_eq!(git(&pooled, &["status", "--porcelain"]), "");
    git(&pooled, &["checkout", "-q", "--detach", "main"]);
    assert_eq!(files::head(&pooled), Some(git(&bare, &["rev-parse", "main"])));

    // A directory that is not a linked worktree is left where it is.
    let elsewhere = dir.path().join("moved-repo");
    assert!(!files::move_worktree(&r, &elsewhere));
    assert!(r.join(".git").is_dir() && !elsewhere.exists());
}
