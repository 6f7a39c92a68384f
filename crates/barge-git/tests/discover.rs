//! Git subscription discovery against real bare repositories (file:// and `git daemon`).

use barge_core::model::kargo::GitSubscription;
use barge_core::rewrite::Rewrite;
use barge_git::discover::{GitConfig, discover_git};
use std::path::{Path, PathBuf};

use barge_testkit::git::{GitDaemon, free_port, git, git_dated, smart_http};

fn write(dir: &Path, file: &str, text: &str) {
    let p = dir.join(file);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A bare repository:
/// c1 (Jan 1) adds base/app.yaml       tags v1.0.0 (lightweight), v1.0 (lightweight)
/// c2 (Jan 2) adds docs/readme.md      tag release-b (lightweight)
/// c3 (Jan 3) "bump app" edits base/   tags v1.1.0 (annotated, Jan 4), v2.0.0-rc.1 (annotated, Jan 5)
fn repo(root: &Path) -> (PathBuf, [String; 3]) {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git_dated(&work, &["init", "-q", "-b", "main"], "2026-01-01T00:00:00Z");
    write(&work, "base/app.yaml", "v: 1\n");
    git_dated(&work, &["add", "."], "2026-01-01T00:00:00Z");
    git_dated(&work, &["commit", "-q", "-m", "add app"], "2026-01-01T00:00:00Z");
    git_dated(&work, &["tag", "v1.0.0"], "2026-01-01T00:00:00Z");
    git_dated(&work, &["tag", "v1.0"], "2026-01-01T00:00:00Z");
    write(&work, "docs/readme.md", "hi\n");
    git_dated(&work, &["add", "."], "2026-01-02T00:00:00Z");
    git_dated(&work, &["commit", "-q", "-m", "docs only"], "2026-01-02T00:00:00Z");
    git_dated(&work, &["tag", "release-b"], "2026-01-02T00:00:00Z");
    write(&work, "base/app.yaml", "v: 2\n");
    git_dated(&work, &["commit", "-q", "-am", "bump app"], "2026-01-03T00:00:00Z");
    git_dated(
        &work,
        &["tag", "-a", "v1.1.0", "-m", "release 1.1.0"],
        "2026-01-04T00:00:00Z",
    );
    git_dated(&work, &["tag", "-a", "v2.0.0-rc.1", "-m", "rc"], "2026-01-05T00:00:00Z");
    let ids = ["HEAD~2", "HEAD~1", "HEAD"].map(|r| git(&work, &["rev-parse", r]));
    let bare = root.join("config.git");
    git_dated(
        root,
        &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()],
        "2026-01-06T00:00:00Z",
    );
    (bare, ids)
}

async fn discover_git_fresh(
    s: &GitSubscription,
    cfg: &GitConfig,
) -> Result<barge_git::discover::GitDiscovery, barge_git::GitError> {
    discover_git(s, cfg, None).await
}

fn sub(url: &str, f: impl FnOnce(&mut GitSubscription)) -> GitSubscription {
    let mut s = GitSubscription {
        repo_url: url.to_string(),
        ..Default::default()
    };
    f(&mut s);
    s
}

#[tokio::test]
async fn newest_from_branch_with_paths_filters_and_since() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, [c1, c2, c3]) = repo(dir.path());
    let url = format!("file://{}", bare.display());
    let cfg = GitConfig::default();

    let d = discover_git_fresh(&sub(&url, |_| {}), &cfg).await.unwrap();
    let ids: Vec<&str> = d.candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [c3.as_str(), c2.as_str(), c1.as_str()],
        "newest first on the default branch"
    );
    assert_eq!(d.observed_refs, vec![("main".to_string(), c3.clone())]);
    let top = &d.candidates[0];
    assert_eq!(
        (top.branch.as_deref(), top.message.as_str(), top.author.as_str()),
        (Some("main"), "bump app", "Ada <ada@example.com>")
    );
    assert_eq!(top.committer, "Bob <bob@example.com>");

    let only_base = discover_git_fresh(&sub(&url, |s| s.include_paths = vec!["base".into()]), &cfg)
        .await
        .unwrap();
    assert_eq!(
        only_base.candidates.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [c3.as_str(), c1.as_str()]
    );
    let no_docs = discover_git_fresh(&sub(&url, |s| s.exclude_paths = vec!["glob:docs/**".into()]), &cfg)
        .await
        .unwrap();
    assert_eq!(no_docs.candidates.len(), 2);
    let regex = discover_git_fresh(
        &sub(&url, |s| s.include_paths = vec!["regex:^docs/.*\\.md$".into()]),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(
        regex.candidates.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [c2.as_str()]
    );

    let filtered = discover_git_fresh(
        &sub(&url, |s| {
            s.expression_filter = Some("subject contains 'bump' && author startsWith 'Ada'".into())
        }),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(
        filtered.candidates.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [c3.as_str()]
    );

    let since = discover_git_fresh(&sub(&url, |s| s.since = Some("2026-01-01T12:00:00Z".into())), &cfg)
        .await
        .unwrap();
    assert_eq!(since.candidates.len(), 2);
    let limited = discover_git_fresh(&sub(&url, |s| s.discovery_limit = Some(1)), &cfg)
        .await
        .unwrap();
    assert_eq!(limited.candidates.len(), 1);

    let err = discover_git_fresh(&sub(&url, |s| s.branch = Some("nope".into())), &cfg)
        .await
        .unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::NotFound, "{err}");
}

#[tokio::test]
async fn tag_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, [c1, c2, c3]) = repo(dir.path());
    let url = format!("file://{}", bare.display());
    let cfg = GitConfig::default();
    let tags =
        |d: &barge_git::discover::GitDiscovery| d.candidates.iter().map(|c| c.tag.clone().unwrap()).collect::<Vec<_>>();

    let semver = discover_git_fresh(
        &sub(&url, |s| {
            s.commit_selection_strategy = Some("SemVer".into());
            s.semver_constraint = Some("^1.0.0".into());
        }),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(
        tags(&semver),
        ["v1.1.0", "v1.0.0"],
        "strict semver skips v1.0; ^1 skips the rc"
    );
    assert_eq!(semver.candidates[0].id, c3, "an annotated tag resolves to its commit");
    assert_eq!(semver.candidates[1].id, c1);
    let loose = discover_git_fresh(
        &sub(&url, |s| {
            s.commit_selection_strategy = Some("SemVer".into());
            s.strict_semvers = Some(false);
        }),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(tags(&loose), ["v2.0.0-rc.1", "v1.1.0", "v1.0.0", "v1.0"]);

    let lexical = discover_git_fresh(
        &sub(&url, |s| {
            s.commit_selection_strategy = Some("Lexical".into());
            s.allow_tags_regexes = vec!["^release-".into()];
        }),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(tags(&lexical), ["release-b"]);
    assert_eq!(lexical.candidates[0].id, c2);

    let newest = discover_git_fresh(
        &sub(&url, |s| {
            s.commit_selection_strategy = Some("NewestTag".into());
            s.ignore_tags_regexes = vec!["-rc".into()];
        }),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(
        tags(&newest)[0],
        "v1.1.0",
        "the newest tag by creation date, rc ignored"
    );
    assert!(
        newest.candidates[0].date.starts_with("2026-01-04"),
        "{}",
        newest.candidates[0].date
    );
    assert_eq!(newest.observed_refs.len(), 5);
    assert!(
        newest.observed_refs.iter().any(|(t, id)| t == "v1.1.0" && *id == c3),
        "peeled ids: {:?}",
        newest.observed_refs
    );

    let deprecated_ignore = discover_git_fresh(
        &sub(&url, |s| {
            s.commit_selection_strategy = Some("NewestTag".into());
            s.ignore_tags = vec!["v2.0.0-rc.1".into(), "v1.1.0".into()];
        }),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(
        tags(&deprecated_ignore)[0],
        "release-b",
        "the deprecated exact-name ignoreTags applies to git tags as to image tags"
    );

    let annotated = discover_git_fresh(
        &sub(&url, |s| {
            s.commit_selection_strategy = Some("NewestTag".into());
            s.expression_filter = Some("annotation == 'release 1.1.0'".into());
        }),
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(tags(&annotated), ["v1.1.0"]);
}

#[tokio::test]
async fn through_git_daemon_with_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, [_, _, c3]) = repo(dir.path());
    let daemon = GitDaemon::start(dir.path());
    let port = daemon.port;
    let cfg = GitConfig {
        rewrites: vec![Rewrite::parse(&format!("https://git.example.com/acme/=git://127.0.0.1:{port}/")).unwrap()],
        ..Default::default()
    };
    let d = discover_git_fresh(&sub("https://git.example.com/acme/config.git", |_| {}), &cfg).await;
    drop(daemon);
    let d = d.unwrap();
    assert_eq!(
        d.repo_url, "https://git.example.com/acme/config.git",
        "the original URL is kept"
    );
    assert_eq!(d.candidates[0].id, c3);
    assert!(bare.exists());
}

#[tokio::test]
async fn unreachable_remotes_fail_with_a_class_and_no_credentials_in_the_message() {
    let port = free_port();
    let err = discover_git_fresh(
        &sub(&format!("http://bot:s3cret-token@127.0.0.1:{port}/x.git"), |_| {}),
        &GitConfig::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::Transient, "{err}");
    assert!(!err.to_string().contains("s3cret-token"), "{err}");
    let bad = discover_git_fresh(
        &sub("file:///nonexistent/repo.git", |s| {
            s.expression_filter = Some("id ==".into())
        }),
        &GitConfig::default(),
    )
    .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn unchanged_refs_reuse_the_previous_pass_without_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let (bare, [_, _, c3]) = repo(dir.path());
    let url = format!("file://{}", bare.display());
    let cfg = GitConfig::default();
    for s in [
        sub(&url, |_| {}),
        sub(&url, |s| s.commit_selection_strategy = Some("NewestTag".into())),
    ] {
        let first = discover_git(&s, &cfg, None).await.unwrap();
        assert!(!first.reused);
        // A doctored previous pass proves the candidates come from it, not from a new walk.
        let mut previous = first.clone();
        previous.candidates[0].message = "from the previous pass".into();
        let again = discover_git(&s, &cfg, Some(&previous)).await.unwrap();
        assert!(again.reused);
        assert_eq!(again.candidates[0].message, "from the previous pass");
        // Another subscription (a changed config) never reuses it.
        let mut other = s.clone();
        other.discovery_limit = Some(1);
        assert!(!discover_git(&other, &cfg, Some(&previous)).await.unwrap().reused);
    }
    // A new commit moves the branch: a real pass again.
    let work = dir.path().join("work");
    write(&work, "base/app.yaml", "v: 3\n");
    git_dated(&work, &["commit", "-q", "-am", "bump again"], "2026-01-07T00:00:00Z");
    git_dated(
        &work,
        &["push", "-q", bare.to_str().unwrap(), "main"],
        "2026-01-07T00:00:00Z",
    );
    let s = sub(&url, |_| {});
    let stale = discover_git(&s, &cfg, None).await.unwrap();
    let mut previous = stale.clone();
    previous.observed_refs = vec![("main".into(), c3.clone())];
    let fresh = discover_git(&s, &cfg, Some(&previous)).await.unwrap();
    assert!(!fresh.reused);
    assert_eq!(fresh.candidates[0].message, "bump again");
}

#[tokio::test]
async fn over_smart_http_with_credentials_from_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let (_bare, [_, _, c3]) = repo(dir.path());
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rwX", dir.path().to_str().unwrap()])
        .status();
    let (_server, port) = smart_http(dir.path(), "reader", "open-sesame-42");
    let url = "https://git.example.com/acme/config.git";
    let config = |password: &'static str| GitConfig {
        rewrites: vec![Rewrite::parse(&format!("https://git.example.com/acme/=http://127.0.0.1:{port}/")).unwrap()],
        credentials: Some(std::sync::Arc::new(move |u: &str| {
            // Looked up by the URL as the subscription writes it, not the rewrite.
            (u == url).then(|| barge_core::secret::Credentials {
                username: "reader".into(),
                password: password.into(),
            })
        })),
        ..Default::default()
    };
    let d = discover_git_fresh(&sub(url, |_| {}), &config("open-sesame-42"))
        .await
        .unwrap();
    assert_eq!(d.candidates[0].id, c3);
    let err = discover_git_fresh(&sub(url, |_| {}), &config("wrong-password-7"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), barge_core::ErrorClass::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-password-7"), "{err}");
}
