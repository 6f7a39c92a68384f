//! PR steps against the kit's test forge (barge_testkit::forge), which speaks the GitHub,
//! GitLab, Gitea, Azure DevOps (REST 7.1) and Bitbucket Cloud (REST 2.0) calls barge uses and
//! merges for real in a bare repository (git CLI).

use barge_testkit::forge::{ACCOUNT, Flavor, TestForge};
use barge_testkit::git as git_kit;
mod support;

use barge_core::promotion::{Phase, State};
use barge_git::repo::Credentials;
use barge_promote::{Engine, Promotion};
use git_kit::git;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "forge-token-42";
const REPO: &str = "acme/config";
/// An Azure DevOps repository: `org/project/_git/repo`, its path on the forge.
const AZURE_REPO: &str = "acme/shop/_git/config";

async fn start(root: &Path) -> TestForge {
    start_with(root, REPO).await
}

/// The forge holding `repo` (its path under the URL https://forge.example.com/).
async fn start_with(root: &Path, repo: &str) -> TestForge {
    let forge = TestForge::start(root, TOKEN).await;
    forge.create_repo(
        repo,
        &[(
            "env/dev/kustomization.yaml",
            "images:\n  - name: ghcr.io/acme/app\n    newTag: 1.0.0\n",
        )],
    );
    forge
}

fn engine(root: &Path, forge: &TestForge, flavor: Flavor) -> Engine {
    let mut e = support::engine(root, vec![support::rewrite_to_dir("https://forge.example.com/", root)]);
    e.credentials = Arc::new(|_| {
        Some(Credentials {
            username: ACCOUNT.into(),
            password: TOKEN.into(),
        })
    });
    e.pr_apis = vec![("https://forge.example.com/".into(), forge.api(flavor))];
    e
}

fn promotion(yaml: &str) -> Promotion {
    support::plan(yaml, "dev", support::image_freight("ghcr.io/acme/app", "1.2.0"))
}

const PR_FLOW: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  vars:
    - {name: repo, value: "https://forge.example.com/acme/config.git"}
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config:
            repoURL: ${{ vars.repo }}
            checkout: [{branch: main, path: ./src}]
        - uses: kustomize-set-image
          config: {path: ./src/env/dev, images: [{image: ghcr.io/acme/app}]}
        - uses: git-commit
          config: {path: ./src, message: "Promote ${{ ctx.targetFreight.alias }}"}
        - uses: git-push
          as: push
          config: {path: ./src, generateTargetBranch: true}
        - uses: git-open-pr
          as: open-pr
          config:
            repoURL: ${{ vars.repo }}
            provider: PROVIDER
            sourceBranch: ${{ outputs.push.branch }}
            targetBranch: main
            labels: [kargo, dev]
        - uses: git-open-pr
          as: open-again
          config:
            repoURL: ${{ vars.repo }}
            provider: PROVIDER
            sourceBranch: ${{ outputs.push.branch }}
            targetBranch: main
        - uses: git-merge-pr
          config: {repoURL: "${{ vars.repo }}", provider: PROVIDER, prNumber: "${{ outputs['open-pr'].pr.id }}"}
        - uses: git-wait-for-pr
          as: wait
          config: {repoURL: "${{ vars.repo }}", provider: PROVIDER, prNumber: "${{ outputs['open-pr'].pr.id }}"}
"#;

/// Issue #20: Azure DevOps (`ORG/PROJECT/_git/REPO`) and Bitbucket Cloud too. Bitbucket has
/// no labels (the flow sets none there) and abbreviates the merge commit's hash, which the
/// `commit` output still gives whole.
#[tokio::test(flavor = "multi_thread")]
async fn open_merge_and_wait_on_github_gitlab_gitea_azure_devops_and_bitbucket() {
    for (provider, flavor, repo, url_path) in [
        ("github", Flavor::GitHub, REPO, "acme/config.git"),
        ("gitlab", Flavor::GitLab, REPO, "acme/config.git"),
        ("gitea", Flavor::Gitea, REPO, "acme/config.git"),
        ("azure", Flavor::AzureDevOps, AZURE_REPO, AZURE_REPO),
        ("bitbucket", Flavor::Bitbucket, REPO, "acme/config.git"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let forge = start_with(dir.path(), repo).await;
        let e = engine(dir.path(), &forge, flavor);
        let mut flow = PR_FLOW
            .replace("PROVIDER", provider)
            .replace("acme/config.git", url_path);
        if flavor == Flavor::Bitbucket {
            flow = flow.replace("            labels: [kargo, dev]\n", "");
        }
        let p = promotion(&flow);
        let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
        assert_eq!(out.phase, Phase::Succeeded, "{provider}: {}", out.message);
        let prs = forge.prs(repo);
        assert_eq!(prs.len(), 1, "{provider}: the second git-open-pr reused the open PR");
        assert_eq!(out.state.outputs["open-again"]["pr"]["id"], 1);
        let web = forge.web_url(flavor, repo, 1);
        assert_eq!(out.state.outputs["open-pr"]["pr"]["url"], web.as_str(), "{provider}");
        assert_eq!(out.state.outputs["wait"]["pr"]["url"], web.as_str(), "{provider}");
        assert_eq!(prs[0].source, format!("kargo/promotion/{}", p.name));
        if !matches!(flavor, Flavor::Gitea | Flavor::Bitbucket) {
            assert_eq!(prs[0].labels, vec!["kargo", "dev"], "{provider}");
        }
        assert!(prs[0].merged);
        // The merge landed on main for real, and the wait step reports its commit.
        let bare = forge.bare(repo);
        let main = git(&bare, &["rev-parse", "main"]);
        assert_eq!(out.state.outputs["wait"]["commit"], main.as_str(), "{provider}");
        assert!(git(&bare, &["show", "main:env/dev/kustomization.yaml"]).contains("newTag: 1.2.0"));
    }
}

/// Steps of Stage dev (support::dev_stage).
const WAIT_ONLY: &str = r#"
        - uses: git-wait-for-pr
          as: wait
          retry: {timeout: 30s}
          config: {repoURL: "https://forge.example.com/acme/config.git", provider: github, prNumber: 1}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_a_human_merge_and_a_closed_pr() {
    let dir = tempfile::tempdir().unwrap();
    let forge = start(dir.path()).await;
    let bare = forge.bare(REPO);
    git(&bare, &["branch", "feature", "main"]);
    assert_eq!(forge.open_pr(REPO, "feature", "main", "t"), 1);
    // A reviewer merges it a little later.
    let f2 = forge.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::task::spawn_blocking(move || f2.merge(REPO, 1)).await.unwrap();
    });
    let e = engine(dir.path(), &forge, Flavor::GitHub);
    let p = promotion(&support::dev_stage(WAIT_ONLY));
    let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        out.state.outputs["wait"]["commit"],
        git(&bare, &["rev-parse", "main"]).as_str()
    );

    // Closed without merging: a business failure.
    git(&bare, &["branch", "other", "main"]);
    let closed = forge.open_pr(REPO, "other", "main", "t");
    forge.close(REPO, closed);
    let step = WAIT_ONLY.replace("prNumber: 1", &format!("prNumber: {closed}"));
    let out = e
        .run(
            &promotion(&support::dev_stage(&step)),
            State::new(&p.steps),
            &support::Quiet,
            &support::Quiet,
        )
        .await;
    assert_eq!(out.phase, Phase::Failed);
    assert!(out.message.contains("closed without being merged"), "{}", out.message);

    // A wrong token: a clear error naming the fix, without the token.
    let mut bad = engine(dir.path(), &forge, Flavor::GitHub);
    bad.credentials = Arc::new(|_| {
        Some(Credentials {
            username: "bot".into(),
            password: "wrong-token-9".into(),
        })
    });
    let out = bad
        .run(
            &promotion(&support::dev_stage(WAIT_ONLY)),
            State::new(&p.steps),
            &support::Quiet,
            &support::Quiet,
        )
        .await;
    assert_eq!(out.phase, Phase::Errored);
    assert!(
        out.message.contains("401") && out.message.contains("check the token"),
        "{}",
        out.message
    );
    assert!(!out.message.contains("wrong-token-9"));
}

/// Issue #18: a merge a webhook announces (the daemon's GitHub receiver wakes the PR's web
/// URL) is seen at once, not at the next poll an hour away.
#[tokio::test(flavor = "multi_thread")]
async fn a_wake_up_rechecks_a_waiting_pr_before_its_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let forge = start(dir.path()).await;
    git(&forge.bare(REPO), &["branch", "feature", "main"]);
    forge.open_pr(REPO, "feature", "main", "t");
    let mut e = engine(dir.path(), &forge, Flavor::GitHub);
    e.poll_interval = Duration::from_secs(3600);
    let p = promotion(&support::dev_stage(WAIT_ONLY));
    // The PR's web URL as the forge answers it, which GitHub's webhook sends, spelt as the
    // daemon's receivers wake it.
    let url = barge_core::webhook::pull_request_key(&forge.web_url(Flavor::GitHub, REPO, 1));
    let merge_and_announce = async {
        while !e.wakeups.is_waited_on(&url) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let f = forge.clone();
        tokio::task::spawn_blocking(move || f.merge(REPO, 1)).await.unwrap();
        assert_eq!(e.wakeups.wake(&url), 1, "the step waits on the PR's URL");
    };
    let run = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet);
    let (out, ()) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(run, merge_and_announce) })
        .await
        .expect("the wake-up ended the wait long before the hour's poll");
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        out.state.outputs["wait"]["commit"],
        git(&forge.bare(REPO), &["rev-parse", "main"]).as_str()
    );
}

/// An Azure DevOps pull request abandoned (closed unmerged) fails the wait; labels on
/// Bitbucket Cloud, which has none, fail git-open-pr before anything is opened (validation
/// reports them too when the provider is written; here it comes from an expression).
#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_azure_pr_fails_the_wait_and_bitbucket_labels_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let forge = start_with(dir.path(), AZURE_REPO).await;
    git(&forge.bare(AZURE_REPO), &["branch", "feature", "main"]);
    let number = forge.open_pr(AZURE_REPO, "feature", "main", "t");
    forge.close(AZURE_REPO, number);
    let e = engine(dir.path(), &forge, Flavor::AzureDevOps);
    let p = promotion(&support::dev_stage(
        r#"
        - uses: git-wait-for-pr
          config: {repoURL: "https://forge.example.com/acme/shop/_git/config", provider: azure, prNumber: 1}
"#,
    ));
    let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
    assert_eq!(out.phase, Phase::Failed, "{}", out.message);
    let web = forge.web_url(Flavor::AzureDevOps, AZURE_REPO, 1);
    assert!(
        out.message
            .contains(&format!("PR #1 ({web}) was closed without being merged")),
        "{}",
        out.message
    );

    let root = dir.path().join("bitbucket");
    std::fs::create_dir_all(&root).unwrap();
    let forge = start(&root).await;
    let e = engine(&root, &forge, Flavor::Bitbucket);
    let p = promotion(&support::dev_stage(
        r#"
        - uses: git-open-pr
          config:
            repoURL: https://forge.example.com/acme/config.git
            provider: "${{ 'bitbucket' }}"
            sourceBranch: feature
            labels: [kargo]
"#,
    ));
    let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
    assert_eq!(out.phase, Phase::Errored, "{}", out.message);
    assert!(
        out.message
            .contains("Bitbucket Cloud pull requests have no labels; remove `labels`"),
        "{}",
        out.message
    );
    assert!(forge.prs(REPO).is_empty());
    assert!(
        forge.calls().is_empty(),
        "nothing was asked of the forge: {:?}",
        forge.calls()
    );
}
