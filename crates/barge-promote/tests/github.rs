//! github-push against barge-testkit's API-faithful GitHub test server, whose blobs, trees,
//! commits and refs are written into a real bare repository: a clone afterwards shows what the
//! API calls made.

mod support;

use barge_core::eval::StepStatus;
use barge_core::promotion::{Phase, State};
use barge_git::repo::Credentials;
use barge_promote::{Engine, Outcome, Promotion};
use barge_testkit::git::{bare_repo, git};
use barge_testkit::github::{APP_NAME, GitHubApi};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TOKEN: &str = "ghs_test-token-0042";

/// The server over `root`, seeded with `acme/config.git`, and an engine that clones the
/// repository from disk and calls the server's API with the token.
async fn setup(root: &Path) -> (GitHubApi, Engine, PathBuf) {
    let bare = bare_repo(
        root,
        "acme/config.git",
        &[
            ("env/dev/values.yaml", "image:\n  tag: 1.0.0\n"),
            ("old/notes.txt", "obsolete\n"),
            ("README.md", "config\n"),
        ],
    );
    let server = GitHubApi::start(root, TOKEN).await;
    let mut engine = support::engine(root, vec![support::rewrite_to_dir("https://github.example.com/", root)]);
    engine.credentials = Arc::new(|_| {
        Some(Credentials {
            username: "x-access-token".into(),
            password: TOKEN.into(),
        })
    });
    engine.pr_apis = vec![("https://github.example.com/".into(), server.url.clone())];
    (server, engine, bare)
}

fn promotion(steps: &str) -> Promotion {
    support::plan(
        &support::dev_stage(steps),
        "dev",
        support::image_freight("ghcr.io/acme/app", "1.2.0"),
    )
}

async fn run(engine: &Engine, p: &Promotion) -> Outcome {
    engine
        .run(p, State::new(&p.steps), &support::Quiet, &support::Quiet)
        .await
}

fn record<'a>(out: &'a Outcome, alias: &str) -> &'a barge_core::promotion::StepRecord {
    out.state.steps.iter().find(|r| r.alias == alias).expect("the step ran")
}

/// A clone of `branch` of the bare repository, as anyone would see it.
fn clone_of(bare: &Path, branch: &str, into: &Path) -> PathBuf {
    git(
        bare.parent().unwrap(),
        &[
            "clone",
            "-q",
            "-b",
            branch,
            bare.to_str().unwrap(),
            into.to_str().unwrap(),
        ],
    );
    into.to_path_buf()
}

const EDIT_AND_PUSH: &str = r#"
        - uses: git-clone
          config:
            repoURL: https://github.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
            author: {name: Dana, email: dana@example.com}
        - uses: yaml-update
          config:
            path: ./src/env/dev/values.yaml
            updates: [{key: image.tag, value: "1.2.0"}]
        - uses: delete
          config: {path: ./src/old}
        - uses: untar
          config: {inPath: ./payload.tar, outPath: ./src/bin}
        - uses: git-commit
          config: {path: ./src, message: "Promote wise-otter to dev"}
        - uses: github-push
          as: push
          config: {path: ./src}
"#;

/// `run.sh` (executable) and `current` (a symlink to it), archived with tar into the
/// promotion's work directory.
fn write_payload(work: &Path) {
    let staging = work.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let script = staging.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho deploy\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("run.sh", staging.join("current")).unwrap();
    let status = std::process::Command::new("tar")
        .args(["-cf", "../payload.tar", "run.sh", "current"])
        .current_dir(&staging)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(&staging).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promotion_lands_through_the_api_with_its_files_modes_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let (server, engine, bare) = setup(dir.path()).await;
    let seed = git(&bare, &["rev-parse", "main"]);
    let p = promotion(EDIT_AND_PUSH);
    write_payload(&engine.work_dir(&p.name));
    let out = run(&engine, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);

    // The branch holds one new commit on the seed, and the step reports it.
    let main = git(&bare, &["rev-parse", "main"]);
    assert_eq!(git(&bare, &["rev-parse", "main^"]), seed);
    let push = &out.state.outputs["push"];
    assert_eq!(push["branch"], "main");
    assert_eq!(push["commit"], main.as_str());
    assert_eq!(
        push["commitURL"],
        format!("{}/acme/config/commit/{main}", server.url).as_str()
    );

    // The tree is the promotion's: edited, deleted, added, with modes.
    let clone = clone_of(&bare, "main", &dir.path().join("check"));
    assert_eq!(
        std::fs::read_to_string(clone.join("env/dev/values.yaml")).unwrap(),
        "image:\n  tag: 1.2.0\n"
    );
    assert!(!clone.join("old").exists(), "the deleted directory is gone");
    assert_eq!(std::fs::read_to_string(clone.join("README.md")).unwrap(), "config\n");
    let modes = git(&clone, &["ls-tree", "-r", "HEAD", "bin"]);
    assert!(
        modes.contains("100755 blob") && modes.contains("\tbin/run.sh"),
        "{modes}"
    );
    assert!(
        modes
            .lines()
            .any(|l| l.starts_with("120000 blob") && l.ends_with("\tbin/current")),
        "{modes}"
    );
    assert_eq!(
        std::fs::read_link(clone.join("bin/current")).unwrap(),
        Path::new("run.sh")
    );

    // GitHub made the commit: its identity, the message kept (with the promotion's trailer),
    // the checkout's author as co-author, and verified.
    assert_eq!(git(&clone, &["log", "-1", "--format=%an"]), APP_NAME);
    let message = git(&clone, &["log", "-1", "--format=%B"]);
    assert!(message.starts_with("Promote wise-otter to dev\n"), "{message}");
    assert_eq!(
        git(
            &clone,
            &["log", "-1", "--format=%(trailers:key=Barge-Promotion,valueonly)"]
        ),
        p.name
    );
    assert!(message.contains("Co-authored-by: Dana <dana@example.com>"), "{message}");
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/repos/acme/config/git/commits/{main}", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["verification"]["verified"], true, "{answer}");

    // Through the Git database API only: blobs for the two changed files and the two new
    // ones, one tree, one commit, the ref moved forward.
    let calls = server.calls();
    let count = |what: &str| calls.iter().filter(|c| c.starts_with(what)).count();
    assert_eq!(count("POST /repos/acme/config/git/blobs"), 3, "{calls:?}");
    assert_eq!(count("POST /repos/acme/config/git/trees"), 1, "{calls:?}");
    assert_eq!(count("POST /repos/acme/config/git/commits"), 1, "{calls:?}");
    assert_eq!(count("PATCH /repos/acme/config/git/refs/heads/main"), 1, "{calls:?}");
}

const TWO_COMMITS: &str = r#"
        - uses: git-clone
          config:
            repoURL: https://github.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
        - uses: yaml-update
          config:
            path: ./src/env/dev/values.yaml
            updates: [{key: image.tag, value: "1.1.0"}]
        - uses: git-commit
          config: {path: ./src, message: first}
        - uses: yaml-update
          config:
            path: ./src/env/dev/values.yaml
            updates: [{key: image.tag, value: "1.2.0"}]
        - uses: git-commit
          config: {path: ./src, message: second}
        - uses: github-push
          as: push
          config: {path: ./src, generateTargetBranch: true}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn two_commits_land_in_order_on_a_new_branch() {
    let dir = tempfile::tempdir().unwrap();
    let (server, engine, bare) = setup(dir.path()).await;
    let seed = git(&bare, &["rev-parse", "main"]);
    let p = promotion(TWO_COMMITS);
    let out = run(&engine, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let branch = format!("kargo/promotion/{}", p.name);
    assert_eq!(out.state.outputs["push"]["branch"], branch.as_str());
    assert_eq!(
        out.state.outputs["push"]["commit"],
        git(&bare, &["rev-parse", &branch]).as_str()
    );
    // The branch was created (POST refs), main left alone.
    assert_eq!(git(&bare, &["rev-parse", "main"]), seed);
    assert!(server.calls().contains(&"POST /repos/acme/config/git/refs".to_string()));
    let log = git(&bare, &["log", "--format=%s", &format!("{seed}..{branch}")]);
    assert_eq!(log, "second\nfirst");
    let at = |rev: &str| git(&bare, &["show", &format!("{rev}:env/dev/values.yaml")]);
    assert_eq!(at(&format!("{branch}~1")), "image:\n  tag: 1.1.0");
    assert_eq!(at(&branch), "image:\n  tag: 1.2.0");
    // Both were made by GitHub (its identity) and signed by it.
    for rev in [format!("{branch}~1"), branch.clone()] {
        assert!(server.is_verified(&git(&bare, &["rev-parse", &rev])), "{rev}");
    }
}

const PUSH_MAIN: &str = r#"
        - uses: git-clone
          config:
            repoURL: https://github.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
        - uses: yaml-update
          config:
            path: ./src/env/dev/values.yaml
            updates: [{key: image.tag, value: "1.2.0"}]
        - uses: git-commit
          config: {path: ./src, message: promote}
        - uses: github-push
          as: push
          config: {path: ./src, maxAttempts: MAX}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_branch_that_moves_during_the_push_is_a_retryable_error_naming_it_then_integrated() {
    let dir = tempfile::tempdir().unwrap();
    let (server, engine, bare) = setup(dir.path()).await;
    let seed = git(&bare, &["rev-parse", "main"]);

    // One attempt: another writer commits between the step's commits and its ref update.
    server.race_next_update("main", "concurrent.txt", "theirs\n");
    let p = promotion(&PUSH_MAIN.replace("MAX", "1"));
    let out = run(&engine, &p).await;
    assert_eq!(out.phase, Phase::Errored, "{}", out.message);
    let push = record(&out, "push");
    assert_eq!(push.status, StepStatus::Errored);
    assert_eq!(push.error_count, 1, "a retryable error counts towards errorThreshold");
    assert!(
        push.message.contains("the branch main moved") && push.message.contains("not a fast forward"),
        "{}",
        push.message
    );
    // Only the other writer's commit is on main.
    assert_eq!(git(&bare, &["rev-parse", "main^"]), seed);
    assert_eq!(git(&bare, &["log", "-1", "--format=%an", "main"]), "Carol");

    // With attempts left, the step rebases onto the moved branch and lands on top of it.
    let theirs = git(&bare, &["rev-parse", "main"]);
    server.race_next_update("main", "concurrent-2.txt", "theirs again\n");
    let p = promotion(&PUSH_MAIN.replace("MAX", "3"));
    let out = run(&engine, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let main = git(&bare, &["rev-parse", "main"]);
    assert_eq!(out.state.outputs["push"]["commit"], main.as_str());
    assert_eq!(git(&bare, &["log", "-1", "--format=%s", "main"]), "promote");
    assert_eq!(git(&bare, &["rev-parse", "main~2"]), theirs);
    for file in ["concurrent.txt", "concurrent-2.txt"] {
        assert!(
            git(&bare, &["ls-tree", "--name-only", "main", file]) == file,
            "{file} kept"
        );
    }
    assert!(git(&bare, &["show", "main:env/dev/values.yaml"]).contains("1.2.0"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_wrong_token_is_a_clear_error_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut engine, bare) = setup(dir.path()).await;
    let seed = git(&bare, &["rev-parse", "main"]);
    let steps = PUSH_MAIN.replace("MAX", "1");

    engine.credentials = Arc::new(|_| {
        Some(Credentials {
            username: "x-access-token".into(),
            password: "ghs_wrong-token-77".into(),
        })
    });
    let out = run(&engine, &promotion(&steps)).await;
    assert_eq!(out.phase, Phase::Errored);
    let push = record(&out, "push");
    assert!(
        push.message.contains("401") && push.message.contains("check the token"),
        "{}",
        push.message
    );
    assert!(!push.message.contains("wrong-token"), "{}", push.message);
    assert!(!push.message.contains(TOKEN));
    assert_eq!(push.error_count, 0, "retrying cannot fix a token");

    // No credentials at all: refused before any call.
    engine.credentials = Arc::new(|_| None);
    let calls = server.calls().len();
    let out = run(&engine, &promotion(&steps)).await;
    let push = record(&out, "push");
    assert_eq!(push.status, StepStatus::Errored);
    assert!(
        push.message
            .contains("no token for https://github.example.com/acme/config.git"),
        "{}",
        push.message
    );
    assert_eq!(server.calls().len(), calls);
    assert_eq!(git(&bare, &["rev-parse", "main"]), seed);
}

#[tokio::test(flavor = "multi_thread")]
async fn more_commits_than_a_push_replays_is_a_clear_error_and_nothing_moves() {
    let dir = tempfile::tempdir().unwrap();
    let (server, engine, bare) = setup(dir.path()).await;
    let seed = git(&bare, &["rev-parse", "main"]);
    let mut steps = String::from(
        "
        - uses: git-clone
          config:
            repoURL: https://github.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
",
    );
    for n in 1..=11 {
        steps.push_str(&format!(
            "        - uses: yaml-update
          config:
            path: ./src/env/dev/values.yaml
            updates: [{{key: image.tag, value: \"1.0.{n}\"}}]
        - uses: git-commit
          config: {{path: ./src, message: \"commit {n}\"}}
"
        ));
    }
    steps.push_str("        - uses: github-push\n          as: push\n          config: {path: ./src}\n");
    let out = run(&engine, &promotion(&steps)).await;
    let push = record(&out, "push");
    assert_eq!(push.status, StepStatus::Errored);
    assert!(push.message.contains("more than 10 commits"), "{}", push.message);
    assert_eq!(push.error_count, 0, "retrying cannot shrink the history");
    assert_eq!(git(&bare, &["rev-parse", "main"]), seed);
    assert!(
        !server.calls().iter().any(|c| c.starts_with("POST")),
        "nothing was sent"
    );
}
