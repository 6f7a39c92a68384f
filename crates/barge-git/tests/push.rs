//! Writing to config repositories: commits with promotion trailers, pushes that integrate
//! concurrent changes, conflicts, replays, and HTTPS credentials (git smart HTTP behind nginx
//! with basic auth).

use barge_git::GitError;
use barge_git::repo::{Author, Credentials, PushPolicy, Workspace};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use barge_testkit::git::{bare_repo, empty_commits, files_containing, git, smart_http};

/// A bare repository whose `main` holds stages/dev/kustomization.yaml.
fn seed(root: &Path) -> PathBuf {
    let k = "images:\n  - name: app\n    newTag: 1.0.0\n";
    bare_repo(
        root,
        "config.git",
        &[
            ("stages/dev/kustomization.yaml", k),
            ("stages/prod/kustomization.yaml", k),
        ],
    )
}

fn fast() -> PushPolicy {
    PushPolicy {
        max_attempts: 10,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
    }
}

fn edit(ws: &Workspace, file: &str, tag: &str) {
    let path = ws.path().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let out = barge_core::yamlmut::set_kustomize_image(
        &text,
        &barge_core::yamlmut::ImageEdit {
            name: "app".into(),
            new_tag: Some(tag.into()),
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::write(path, out).unwrap();
}

/// The seeded bare repository and two clones of its `main`, `a` and `b`, racing to push.
async fn two_writers(root: &Path) -> (PathBuf, Workspace, Workspace) {
    let bare = seed(root);
    let url = format!("file://{}", bare.display());
    let a = Workspace::clone(&url, "main", &root.join("a"), None, Author::default())
        .await
        .unwrap();
    let b = Workspace::clone(&url, "main", &root.join("b"), None, Author::default())
        .await
        .unwrap();
    (bare, a, b)
}

#[tokio::test]
async fn commit_push_and_recognise_the_promotions_commit_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    let url = format!("file://{}", bare.display());
    let ws = Workspace::clone(&url, "main", &dir.path().join("w1"), None, Author::default())
        .await
        .unwrap();
    assert_eq!(
        ws.commit_all("nothing", "dev.01J.abc1234").await.unwrap(),
        None,
        "no changes, no commit"
    );
    edit(&ws, "stages/dev/kustomization.yaml", "1.2.0");
    let sha = ws
        .commit_all("promote app 1.2.0 to dev", "dev.01J.abc1234")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ws.push(&fast()).await.unwrap(), sha);
    assert_eq!(git(&bare, &["rev-parse", "main"]), sha);
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains("promote app 1.2.0 to dev") && message.contains("Barge-Promotion: dev.01J.abc1234"),
        "{message}"
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae>", "main"]),
        "barge <barge@localhost>"
    );

    // After a crash, a fresh workspace finds the promotion's commit instead of committing again.
    let replay = Workspace::clone(&url, "main", &dir.path().join("w2"), None, Author::default())
        .await
        .unwrap();
    assert_eq!(
        replay.find_promotion_commit("dev.01J.abc1234").await.unwrap(),
        Some(sha)
    );
    assert_eq!(replay.find_promotion_commit("dev.01J.other").await.unwrap(), None);
}

#[tokio::test]
async fn a_push_that_lost_the_race_rebases_and_lands() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, a, b) = two_writers(dir.path()).await;
    edit(&a, "stages/dev/kustomization.yaml", "1.2.0");
    edit(&b, "stages/prod/kustomization.yaml", "1.1.0");
    a.commit_all("dev", "dev.1").await.unwrap();
    let b_local = b.commit_all("prod", "prod.1").await.unwrap().unwrap();
    a.push(&fast()).await.unwrap();
    let pushed = b.push(&fast()).await.unwrap();
    assert_ne!(pushed, b_local, "b's commit was rebased onto a's");
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(log.lines().collect::<Vec<_>>(), ["prod", "dev", "seed"]);
    assert_eq!(
        git(&bare, &["show", "main:stages/dev/kustomization.yaml"]),
        "images:\n  - name: app\n    newTag: 1.2.0"
    );
    // The replayed commit is b's: same message and trailer, author and date; and b's working
    // copy now holds a's change too, as after a rebase.
    let show = |rev: &str| git(b.path(), &["log", "-1", "--format=%an|%ae|%ad|%B", rev]);
    assert_eq!(show(&pushed), show(&b_local));
    assert!(show(&pushed).contains("Barge-Promotion: prod.1"));
    assert_eq!(
        git(b.path(), &["rev-parse", "HEAD^"]),
        git(&bare, &["rev-parse", "main^"])
    );
    assert!(
        std::fs::read_to_string(b.path().join("stages/dev/kustomization.yaml"))
            .unwrap()
            .contains("1.2.0")
    );
    assert_eq!(git(b.path(), &["status", "--porcelain"]), "");
    // A single commit is replayed without git's rebase machinery (twice as fast).
    assert!(
        git(b.path(), &["reflog", "-1", "--format=%gs", "HEAD"]).starts_with("reset: moving to"),
        "{}",
        git(b.path(), &["reflog", "-3", "--format=%gs", "HEAD"])
    );
}

/// Several local commits (two git-commit steps in one promotion) are all replayed, in order,
/// when the branch moved: git's rebase does it.
#[tokio::test]
async fn several_local_commits_are_replayed_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, a, b) = two_writers(dir.path()).await;
    edit(&a, "stages/dev/kustomization.yaml", "1.2.0");
    a.commit_all("dev", "dev.1").await.unwrap();
    a.push(&fast()).await.unwrap();
    edit(&b, "stages/prod/kustomization.yaml", "1.1.0");
    b.commit_all("prod first", "prod.1").await.unwrap();
    edit(&b, "stages/prod/kustomization.yaml", "1.1.1");
    b.commit_all("prod second", "prod.1").await.unwrap();
    b.push(&fast()).await.unwrap();
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["prod second", "prod first", "dev", "seed"]
    );
}

/// How many commits of `main` in `bare` carry the trailer of `promotion`.
fn commits_of(bare: &Path, promotion: &str) -> usize {
    git(bare, &["log", "--format=%B", "main"])
        .lines()
        .filter(|l| *l == format!("Barge-Promotion: {promotion}"))
        .count()
}

/// A promotion killed while its `git push` ran on: the push landed after all, and another
/// writer pushed on top of it. The resumed promotion's push is rejected (the branch moved);
/// integrating finds the promotion's trailer on the branch and pushes nothing (it used to
/// replay the commit onto the branch that already had it: a second, empty commit).
#[tokio::test]
async fn a_retried_push_whose_commit_already_landed_pushes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, a, b) = two_writers(dir.path()).await;
    edit(&a, "stages/dev/kustomization.yaml", "1.2.0");
    let landed = a.commit_all("dev", "dev.1").await.unwrap().unwrap();
    // The killed process's git push, which outlived it.
    git(a.path(), &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    edit(&b, "stages/prod/kustomization.yaml", "1.1.0");
    b.commit_all("prod", "prod.1").await.unwrap();
    let tip = b.push(&fast()).await.unwrap();

    assert_eq!(a.push(&fast()).await.unwrap(), landed, "it answers the landed commit");
    assert_eq!(git(&bare, &["rev-parse", "main"]), tip, "nothing was pushed");
    assert_eq!(commits_of(&bare, "dev.1"), 1);
    assert_eq!(empty_commits(&bare, "main"), Vec::<String>::new());
}

/// The branch already has the promotion's change (another writer made the same edit): the
/// retried push drops the commit that would change nothing, as `git rebase` does, instead of
/// pushing it empty.
#[tokio::test]
async fn a_commit_whose_change_the_branch_already_has_is_never_pushed_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, a, b) = two_writers(dir.path()).await;
    edit(&a, "stages/dev/kustomization.yaml", "1.2.0");
    edit(&b, "stages/dev/kustomization.yaml", "1.2.0");
    a.commit_all("a", "dev.a").await.unwrap().unwrap();
    b.commit_all("b", "dev.b").await.unwrap().unwrap();
    let tip = b.push(&fast()).await.unwrap();
    assert_eq!(a.push(&fast()).await.unwrap(), tip);
    let log = git(&bare, &["log", "--format=%s", "main"]);
    assert_eq!(log.lines().collect::<Vec<_>>(), ["b", "seed"]);
    assert_eq!(empty_commits(&bare, "main"), Vec::<String>::new());
    assert_eq!(git(a.path(), &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn conflicting_changes_are_a_merge_conflict_not_a_retry_loop() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, a, b) = two_writers(dir.path()).await;
    edit(&a, "stages/dev/kustomization.yaml", "1.2.0");
    edit(&b, "stages/dev/kustomization.yaml", "1.3.0");
    a.commit_all("a", "dev.a").await.unwrap();
    b.commit_all("b", "dev.b").await.unwrap();
    a.push(&fast()).await.unwrap();
    let err = b.push(&fast()).await.unwrap_err();
    assert!(matches!(err, GitError::MergeConflict { .. }), "{err}");
    assert_eq!(err.class(), barge_core::ErrorClass::MergeConflict);
    assert!(
        git(&bare, &["log", "--format=%s", "main"]).starts_with('a'),
        "the remote keeps a's change only"
    );
}

#[tokio::test]
async fn https_style_credentials_over_smart_http_never_leak() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    git(&bare, &["config", "http.receivepack", "true"]);
    // The server runs as root here; git refuses repositories owned by others unless told.
    let _ = Command::new("chmod")
        .args(["-R", "a+rwX", dir.path().to_str().unwrap()])
        .status();
    let (_server, port) = smart_http(dir.path(), "deploy", "correct-horse-battery");
    let url = format!("http://127.0.0.1:{port}/config.git");
    let good = Credentials {
        username: "deploy".into(),
        password: "correct-horse-battery".into(),
    };
    let ws = Workspace::clone(&url, "main", &dir.path().join("w"), Some(good), Author::default())
        .await
        .unwrap();
    edit(&ws, "stages/dev/kustomization.yaml", "2.0.0");
    let sha = ws.commit_all("over http", "dev.http").await.unwrap().unwrap();
    assert_eq!(ws.push(&fast()).await.unwrap(), sha);
    assert_eq!(git(&bare, &["rev-parse", "main"]), sha);

    let bad = Credentials {
        username: "deploy".into(),
        password: "wrong-password-123".into(),
    };
    let err = match Workspace::clone(&url, "main", &dir.path().join("w2"), Some(bad), Author::default()).await {
        Err(e) => e,
        Ok(_) => panic!("a wrong password must fail"),
    };
    assert_eq!(err.class(), barge_core::ErrorClass::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-password-123"), "{err}");
    // The password never appears in any process's arguments: it travels in git's environment.
    assert!(
        !format!(
            "{:?}",
            Credentials {
                username: "u".into(),
                password: "p4ss".into()
            }
        )
        .contains("p4ss")
    );
}

#[tokio::test]
async fn a_token_written_in_the_url_authenticates_and_is_never_stored_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    git(&bare, &["config", "http.receivepack", "true"]);
    let _ = Command::new("chmod")
        .args(["-R", "a+rwX", dir.path().to_str().unwrap()])
        .status();
    let (_server, port) = smart_http(dir.path(), "bot", "tok-in-the-url-7");
    let url = format!("http://bot:tok-in-the-url-7@127.0.0.1:{port}/config.git");
    let cache_dir = dir.path().join("cache");
    let cache = barge_git::cache::RepoCache::new(&cache_dir);
    let what = barge_git::cache::Checkout::Branch {
        name: "main".into(),
        create: false,
    };
    // No configured credentials: the URL's own authenticate the fetch, the checkout and the push.
    let ws = cache
        .checkout(&url, &what, &dir.path().join("work/w"), None, Author::default())
        .await
        .unwrap();
    edit(&ws, "stages/dev/kustomization.yaml", "3.0.0");
    let sha = ws.commit_all("token in the url", "dev.url").await.unwrap().unwrap();
    assert_eq!(ws.push(&fast()).await.unwrap(), sha);
    assert_eq!(git(&bare, &["rev-parse", "main"]), sha);
    // An orphan branch's repository gets its remote written too.
    let orphan = barge_git::cache::Checkout::Branch {
        name: "fresh".into(),
        create: true,
    };
    let fresh = cache
        .checkout(&url, &orphan, &dir.path().join("work/o"), None, Author::default())
        .await
        .unwrap();
    std::fs::write(fresh.path().join("a.txt"), "a\n").unwrap();
    fresh.commit_all("orphan", "dev.orphan").await.unwrap().unwrap();
    fresh.push(&fast()).await.unwrap();
    let leaked = files_containing(dir.path(), "tok-in-the-url-7")
        .into_iter()
        .filter(|p| !p.starts_with(dir.path().join("htpasswd")))
        .collect::<Vec<_>>();
    assert!(leaked.is_empty(), "the token is stored in {leaked:?}");
    let remote = git(&cache.bare_path(&url), &["config", "remote.origin.url"]);
    assert_eq!(remote, format!("http://127.0.0.1:{port}/config.git"));
    // Another process's cache finds that entry sound (its origin is the URL without the
    // userinfo) and keeps it: a marker inside the entry survives the next checkout.
    let marker = cache.bare_path(&url).join("barge-test-marker");
    std::fs::write(&marker, "kept").unwrap();
    barge_git::cache::RepoCache::new(&cache_dir)
        .checkout(&url, &what, &dir.path().join("work/again"), None, Author::default())
        .await
        .unwrap();
    assert!(marker.exists(), "a sound cache entry was rebuilt");

    // A wrong token in the URL is an authentication error that does not show it.
    let wrong = format!("http://bot:wrong-tok-99@127.0.0.1:{port}/config.git");
    let err = match Workspace::clone(&wrong, "main", &dir.path().join("w3"), None, Author::default()).await {
        Err(e) => e,
        Ok(_) => panic!("a wrong token must fail"),
    };
    assert_eq!(err.class(), barge_core::ErrorClass::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-tok-99"), "{err}");
}
