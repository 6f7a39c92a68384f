//! Kargo's run tests of git-open-pr, git-wait-for-pr and git-merge-pr as a conformance suite
//! in forge mode: the cases of `tests/fixtures/kargo-cases/git-pr-run.yaml` (Kargo's tests
//! drive a fake provider written in Go) each run the step in a one-step Stage against the test
//! forge (barge_testkit::forge, GitHub's API) over a real bare repository. A case where barge
//! deliberately differs says so (`differs:`, listed in docs/migrating-from-kargo.md) and is
//! asserted like any other.

mod support;

use barge_core::eval::StepStatus;
use barge_core::promotion::State;
use barge_git::repo::Credentials;
use barge_testkit::forge::{Flavor, TestForge};
use barge_testkit::git::git;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "forge-token-42";
const REPO: &str = "acme/config";
const URL: &str = "https://forge.example.com/acme/config.git";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    #[allow(dead_code)]
    step: String,
    #[allow(dead_code)]
    upstream: Vec<String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[allow(dead_code)]
    source: String,
    /// Branch → `changed` (main plus a commit), `main`, or another branch made before it.
    #[serde(default)]
    branches: BTreeMap<String, String>,
    /// PR #1 from `feature` to `main`: `open`, `unmergeable`, `closed` or `merged`.
    #[serde(default)]
    pr: Option<String>,
    #[serde(default)]
    token: Option<String>,
    uses: String,
    config: serde_json::Map<String, Json>,
    #[serde(default)]
    differs: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    kargo: Option<Json>,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: String,
    #[serde(default)]
    error: Option<String>,
    /// The step's outputs, exactly (`null`: none).
    #[serde(default, deserialize_with = "present")]
    outputs: Option<Json>,
    /// Running: `repeated` (more than one call) or an exact count of the step's calls on
    /// the PR (merges for git-merge-pr, reads for git-wait-for-pr).
    #[serde(default)]
    attempts: Option<Json>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

/// A commit on a new branch `name` of the bare repository, on top of main.
fn changed_branch(bare: &Path, name: &str) {
    let tree = git(bare, &["rev-parse", "main^{tree}"]);
    let parent = git(bare, &["rev-parse", "main"]);
    let blob = {
        let mut child = std::process::Command::new("git")
            .args(["hash-object", "-w", "--stdin"])
            .current_dir(bare)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"some changes\n").unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    let index = bare.join(format!("index-{name}"));
    let with_index = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(bare)
            .env("GIT_INDEX_FILE", &index)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    with_index(&["read-tree", &tree]);
    with_index(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("100644,{blob},some-file.txt"),
    ]);
    let tree = with_index(&["write-tree"]);
    let commit = git(bare, &["commit-tree", &tree, "-p", &parent, "-m", "my commit msg"]);
    git(bare, &["update-ref", &format!("refs/heads/{name}"), commit.trim()]);
}

fn stage(uses: &str, config: &serde_json::Map<String, Json>) -> String {
    let mut config = config.clone();
    config.insert("repoURL".into(), json!(URL));
    config.insert("provider".into(), json!("github"));
    if uses != "git-open-pr" {
        config.entry("prNumber").or_insert(json!(1));
    }
    let step = json!({"uses": uses, "as": "step", "config": config});
    support::dev_stage(&format!("        - {step}\n"))
}

async fn run_case(case: &Case, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let forge = TestForge::start(root, TOKEN).await;
    let bare = forge.create_repo(REPO, &[("README.md", "config\n")]);
    for (name, from) in &case.branches {
        match from.as_str() {
            "changed" => changed_branch(&bare, name),
            other => {
                git(&bare, &["branch", name, other]);
            }
        }
    }
    if let Some(state) = &case.pr {
        changed_branch(&bare, "feature");
        let n = forge.open_pr(REPO, "feature", "main", "t");
        match state.as_str() {
            "open" => {}
            "unmergeable" => forge.block(REPO, n),
            "closed" => forge.close(REPO, n),
            "merged" => forge.merge(REPO, n),
            other => panic!("pr: {other}?"),
        }
    }
    let mut e = support::engine(root, vec![support::rewrite_to_dir("https://forge.example.com/", root)]);
    let token = if case.token.as_deref() == Some("wrong") {
        "wrong-token-9"
    } else {
        TOKEN
    };
    e.credentials = Arc::new(move |_| {
        Some(Credentials {
            username: "bot".into(),
            password: token.into(),
        })
    });
    e.pr_apis = vec![("https://forge.example.com/".into(), forge.api(Flavor::GitHub))];
    let p = support::plan(
        &stage(&case.uses, &case.config),
        "dev",
        support::image_freight("ghcr.io/acme/app", "1.2.0"),
    );
    let want = &case.expect;
    let url = forge.web_url(Flavor::GitHub, REPO, 1);
    let attempts = |forge: &TestForge| {
        let read = format!("GET {}", forge.pr_path(Flavor::GitHub, REPO, 1));
        forge
            .calls()
            .iter()
            .filter(|c| match case.uses.as_str() {
                "git-merge-pr" => c.ends_with("/pulls/1/merge"),
                _ => **c == read,
            })
            .count()
    };
    if want.status == "Running" {
        let run = tokio::spawn(async move {
            let p = p;
            e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await
        });
        // Waits for the calls, not a fixed time (a loaded machine may take seconds before the
        // first): `repeated` wants a second call, a count that many calls, a case that counts
        // nothing the first; a count (and a case that counts nothing) is then held for 2 s, a
        // hundred of the engine's 20 ms polls, so that a step that ignored its pollInterval
        // would be seen calling again (and one that ends would be seen ending).
        let (wanted, exact) = match &want.attempts {
            Some(Json::String(s)) if s == "repeated" => (2, false),
            Some(Json::Number(k)) => (k.as_u64().expect("a count of calls") as usize, true),
            // Every waiting step has called the forge once before it waits.
            _ => (1, false),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while attempts(&forge) < wanted && !run.is_finished() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if exact || want.attempts.is_none() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if run.is_finished() {
            let out = run.await.unwrap();
            problems.push(format!(
                "expected the step to be still waiting; the promotion {:?}: {}",
                out.phase, out.message
            ));
            return problems;
        }
        run.abort();
        let n = attempts(&forge);
        let ok = match &want.attempts {
            Some(Json::String(s)) if s == "repeated" => n >= 2,
            Some(Json::Number(k)) => Some(n as u64) == k.as_u64(),
            _ => true,
        };
        if !ok {
            problems.push(format!(
                "expected {:?} calls on the PR while it waits, got {n}",
                want.attempts
            ));
        }
        return problems;
    }
    let out = e.run(&p, State::new(&p.steps), &support::Quiet, &support::Quiet).await;
    let record = &out.state.steps[0];
    let status = match record.status {
        StepStatus::Succeeded => "Succeeded",
        StepStatus::Failed => "Failed",
        StepStatus::Errored => "Errored",
        StepStatus::Skipped => "Skipped",
        _ => "other",
    };
    if status != want.status {
        problems.push(format!(
            "expected status {}, got {:?} ({})",
            want.status, record.status, record.message
        ));
    }
    if let Some(text) = &want.error
        && !record.message.contains(text.as_str())
    {
        problems.push(format!(
            "expected a message containing {text:?}, got {:?}",
            record.message
        ));
    }
    if let Some(expected) = &want.outputs {
        let merge = git(&bare, &["rev-parse", "main"]);
        let text = serde_json::to_string(expected)
            .unwrap()
            .replace("<merge>", merge.trim())
            .replace("<url>", &url);
        let expected: Json = serde_json::from_str(&text).unwrap();
        let got = out.state.outputs.get("step").cloned().unwrap_or(Json::Null);
        if got != expected {
            problems.push(format!("outputs: expected {expected}, got {got}"));
        }
    }
    if let Some(pr) = forge.prs(REPO).first()
        && case.uses == "git-open-pr"
        && status == "Succeeded"
        && (pr.title != "kargo" || pr.source != "source" || pr.target != "target")
    {
        problems.push(format!("the PR opened: {pr:?}"));
    }
    problems
}

#[tokio::test(flavor = "multi_thread")]
async fn git_pr_steps_run_as_kargos_run_tests() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/kargo-cases/git-pr-run.yaml");
    let suite: Suite = yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (mut passed, mut differs, mut failures) = (0, 0, Vec::new());
    for (n, case) in suite.cases.iter().enumerate() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(n.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let problems = run_case(case, &dir).await;
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", case.name, problems.join("\n    ")));
        } else if case.differs.is_some() {
            differs += 1;
        } else {
            passed += 1;
        }
    }
    eprintln!(
        "git PR run cases: {} cases, {passed} as Kargo, {differs} deliberately different, {} failed",
        suite.cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
