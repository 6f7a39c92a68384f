//! Commits made in-process with libgit2 are the commits git makes, and what libgit2 cannot
//! make exactly is left to git.

use barge_git::local::{self, Declined};
use barge_git::repo::{Author, Workspace};
use std::path::{Path, PathBuf};
use std::process::Command;

use barge_testkit::git::{git, git_dated};

/// `git add --all` + `git commit -m` as `Bob <bob@example.com>` (author and committer), the
/// way barge ran them before committing in-process.
fn git_commit_all(dir: &Path, message: &str) {
    for args in [&["add", "--all"][..], &["commit", "-q", "-m", message]] {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "Bob")
            .env("GIT_AUTHOR_EMAIL", "bob@example.com")
            .env("GIT_COMMITTER_NAME", "Bob")
            .env("GIT_COMMITTER_EMAIL", "bob@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

fn write(dir: &Path, path: &str, text: &str) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

fn chmod_x(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Two clones of one repository (an overlay layout with an ignored `rendered/`).
fn two_clones(root: &Path) -> (PathBuf, PathBuf) {
    let seed = root.join("seed");
    write(&seed, ".gitignore", "rendered/\n");
    write(&seed, "app/values.yaml", "image:\n  tag: 1.0.0 # pinned\n");
    write(&seed, "old.yaml", "gone: soon\n");
    write(&seed, "tools/x.sh", "echo x\n");
    git(&seed, &["init", "-q", "-b", "main"]);
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-q", "-m", "seed"]);
    let clones = ["a", "b"].map(|name| {
        let clone = root.join(name);
        git(root, &["clone", "-q", seed.to_str().unwrap(), clone.to_str().unwrap()]);
        clone
    });
    let [a, b] = clones;
    (a, b)
}

/// Every kind of change a promotion's steps make: an edit, a deletion, new files in new
/// directories (a dotfile too), an executable, a mode change, a symlink, an ignored file, an
/// empty directory.
fn change(dir: &Path) {
    write(dir, "app/values.yaml", "image:\n  tag: 2.0.0 # pinned\n");
    std::fs::remove_file(dir.join("old.yaml")).unwrap();
    write(dir, "stages/prod/new.yaml", "kind: Kustomization\n");
    write(dir, ".barge/meta.json", "{}\n");
    write(dir, "bin/run.sh", "#!/bin/sh\n");
    chmod_x(&dir.join("bin/run.sh"));
    chmod_x(&dir.join("tools/x.sh"));
    std::os::unix::fs::symlink("stages/prod", dir.join("current")).unwrap();
    write(dir, "rendered/all.yaml", "kind: List\n");
    std::fs::create_dir_all(dir.join("empty")).unwrap();
}

#[test]
fn a_commit_made_in_process_is_the_commit_git_makes() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = two_clones(root.path());
    change(&a);
    change(&b);
    // git's clean-up of a -m message: blank lines around it and trailing spaces go, runs of
    // blank lines become one.
    let message = "\n\npromote prod   \n\n\n\nBarge-Promotion: p1  \n\n";
    let made = local::commit_all(&a, "Bob", "bob@example.com", message).expect("made in-process");
    git_commit_all(&b, message);

    assert_eq!(made, Some(git(&a, &["rev-parse", "HEAD"])), "HEAD is the new commit");
    for rev in ["HEAD^{tree}", "HEAD^"] {
        assert_eq!(git(&a, &["rev-parse", rev]), git(&b, &["rev-parse", rev]), "{rev}");
    }
    let described = "--format=%an <%ae>%n%cn <%ce>%n%B";
    assert_eq!(git(&a, &["log", "-1", described]), git(&b, &["log", "-1", described]));
    assert_eq!(
        git(&a, &["log", "-1", "--format=%B"]),
        "promote prod\n\nBarge-Promotion: p1"
    );
    // git sees the same checkout afterwards: nothing left to commit, the ignored file ignored.
    let status = ["status", "--porcelain", "--ignored"];
    assert_eq!(git(&a, &status), "!! rendered/");
    assert_eq!(git(&a, &status), git(&b, &status));
    assert_eq!(git(&a, &["diff", "HEAD", "--stat"]), "");
}

#[test]
fn no_change_but_ignored_files_is_no_commit() {
    let root = tempfile::tempdir().unwrap();
    let (a, _) = two_clones(root.path());
    let before = git(&a, &["rev-parse", "HEAD"]);
    write(&a, "rendered/all.yaml", "kind: List\n");
    assert_eq!(
        local::commit_all(&a, "Bob", "bob@example.com", "nothing").unwrap(),
        None
    );
    assert_eq!(git(&a, &["rev-parse", "HEAD"]), before);
}

#[test]
fn an_unborn_branch_gets_a_root_commit_once_it_has_files() {
    let root = tempfile::tempdir().unwrap();
    let fresh = root.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    git(&fresh, &["init", "-q", "-b", "rendered"]);
    assert_eq!(
        local::commit_all(&fresh, "Bob", "bob@example.com", "empty").unwrap(),
        None
    );
    write(&fresh, "manifests.yaml", "kind: List\n");
    let made = local::commit_all(&fresh, "Bob", "bob@example.com", "first").unwrap();
    assert_eq!(
        made,
        Some(git(&fresh, &["rev-parse", "rendered"])),
        "the branch is born"
    );
    assert_eq!(git(&fresh, &["log", "--format=%P"]), "", "no parent");
    assert_eq!(git(&fresh, &["show", "HEAD:manifests.yaml"]), "kind: List");
}

/// A filter driver (as LFS is) transforms what is committed, and libgit2 does not run it:
/// such commits are git's, and so are commits that add a `.gitattributes`.
#[tokio::test]
async fn attributes_leave_the_commit_to_git() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = two_clones(root.path());
    for dir in [&a, &b] {
        git(dir, &["config", "filter.upper.clean", "tr a-z A-Z"]);
    }
    write(&a, ".gitattributes", "*.txt filter=upper\n");
    git(&a, &["add", ".gitattributes"]);
    git(&a, &["commit", "-q", "-m", "attributes"]);
    write(&a, "notes.txt", "shout\n");
    assert!(matches!(
        local::commit_all(&a, "Bob", "bob@example.com", "m"),
        Err(Declined::Attributes)
    ));
    let ws = Workspace::open(&a, "file:///seed", None, None, Author::default());
    ws.commit_all("add notes", "p1").await.unwrap().expect("git committed");
    assert_eq!(git(&a, &["show", "HEAD:notes.txt"]), "SHOUT", "git ran the filter");

    write(&b, ".gitattributes", "*.txt filter=upper\n");
    write(&b, "notes.txt", "shout\n");
    assert!(matches!(
        local::commit_all(&b, "Bob", "bob@example.com", "m"),
        Err(Declined::Attributes)
    ));
}

/// A repository cloned inside the checkout (a step that clones next to the files it renders)
/// is one libgit2 refuses to add; git commits it (as a gitlink, not its files), and so the
/// workspace's commit is git's.
#[tokio::test]
async fn an_embedded_repository_is_left_to_git() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = two_clones(root.path());
    for dir in [&a, &b] {
        let nested = dir.join("vendor/chart");
        write(dir, "vendor/chart/Chart.yaml", "name: chart\n");
        git(&nested, &["init", "-q"]);
        git(&nested, &["add", "."]);
        // Dated, so both clones' nested repositories hold the same commit.
        git_dated(&nested, &["commit", "-q", "-m", "chart"], "1700000000 +0000");
    }
    assert!(matches!(
        local::commit_all(&a, "Bob", "bob@example.com", "m"),
        Err(Declined::Libgit2(_))
    ));
    let bob = Author {
        name: "Bob".into(),
        email: "bob@example.com".into(),
    };
    let ws = Workspace::open(&a, "file:///seed", None, None, bob);
    ws.commit_all("vendor", "p1").await.unwrap().expect("a commit");
    git_commit_all(&b, "vendor\n\nBarge-Promotion: p1\n");
    assert_eq!(
        git(&a, &["rev-parse", "HEAD^{tree}"]),
        git(&b, &["rev-parse", "HEAD^{tree}"])
    );
    let vendored = git(&a, &["ls-tree", "-r", "HEAD", "vendor"]);
    assert!(vendored.starts_with("160000 commit"), "{vendored}");
}
