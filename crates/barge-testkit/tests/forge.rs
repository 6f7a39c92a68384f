//! The test forge's Azure DevOps and Bitbucket Cloud rules that barge's PR tests lean on
//! without hitting them: what it refuses (401, 400, 409, 404) and how it names a closed PR.

use barge_testkit::forge::{ACCOUNT, Flavor, TestForge};
use barge_testkit::git::git;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "kit-token-7";

/// `method url` with basic auth `user:TOKEN` (and `body`): the status and the JSON answered
/// (null when none).
async fn ask(method: reqwest::Method, url: &str, user: &str, body: Option<Value>) -> (StatusCode, Value) {
    // reqwest is built without a crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut req = reqwest::Client::new()
        .request(method, url)
        .basic_auth(user, Some(TOKEN));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let answer = req.send().await.expect("the forge answers");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str, user: &str) -> (StatusCode, Value) {
    ask(reqwest::Method::GET, url, user, None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_devops_wants_its_api_version_its_token_and_the_reviewed_source_commit() {
    let dir = tempfile::tempdir().unwrap();
    let forge = TestForge::start(dir.path(), TOKEN).await;
    let repo = "acme/shop/_git/config";
    let bare = forge.create_repo(repo, &[("a.txt", "a\n")]);
    git(&bare, &["branch", "feature", "main"]);
    let n = forge.open_pr(repo, "feature", "main", "t");
    let pulls = format!(
        "{}/acme/shop/_apis/git/repositories/config/pullrequests",
        forge.api(Flavor::AzureDevOps)
    );
    let one = format!("{pulls}/{n}?api-version=7.1");

    assert_eq!(get(&format!("{pulls}/{n}"), "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(get(&one, "someone").await.0, StatusCode::UNAUTHORIZED);
    let (_, pr) = get(&one, "").await;
    assert_eq!(pr["status"], "active");
    let source = git(&bare, &["rev-parse", "feature"]);
    assert_eq!(pr["lastMergeSourceCommit"]["commitId"], source.as_str());

    let complete = |body: Value| ask(reqwest::Method::PATCH, &one, "", Some(body));
    let stale = json!({"status": "completed", "lastMergeSourceCommit": {"commitId": "0".repeat(40)}});
    assert_eq!(complete(stale).await.0, StatusCode::CONFLICT);
    let squash = json!({"status": "completed", "lastMergeSourceCommit": {"commitId": source},
                        "completionOptions": {"mergeStrategy": "squash"}});
    assert_eq!(complete(squash).await.0, StatusCode::BAD_REQUEST);
    assert!(!forge.prs(repo)[0].merged);

    // Abandoned: closed unmerged, and no longer in the list of active PRs.
    forge.close(repo, n);
    assert_eq!(get(&one, "").await.1["status"], "abandoned");
    assert_eq!(get(&format!("{pulls}?api-version=7.1"), "").await.1["count"], 0);
    assert_eq!(
        forge.calls()[0],
        "GET /az/acme/shop/_apis/git/repositories/config/pullrequests/1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bitbucket_wants_the_account_and_answers_a_declined_pr_and_whole_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let forge = TestForge::start(dir.path(), TOKEN).await;
    let bare = forge.create_repo("acme/config", &[("a.txt", "a\n")]);
    git(&bare, &["branch", "feature", "main"]);
    let n = forge.open_pr("acme/config", "feature", "main", "t");
    let base = format!("{}/repositories/acme/config", forge.api(Flavor::Bitbucket));
    let one = format!("{base}/pullrequests/{n}");

    assert_eq!(get(&one, "").await.0, StatusCode::UNAUTHORIZED);
    forge.close("acme/config", n);
    let (_, pr) = get(&one, ACCOUNT).await;
    assert_eq!(pr["state"], "DECLINED");
    let web = forge.web_url(Flavor::Bitbucket, "acme/config", n);
    assert_eq!(pr["links"]["html"]["href"], web.as_str());

    let main = git(&bare, &["rev-parse", "main"]);
    let (_, commit) = get(&format!("{base}/commit/{}", &main[..12]), ACCOUNT).await;
    assert_eq!(commit["hash"], main.as_str());
    let (status, _) = get(&format!("{base}/commit/{}", "f".repeat(12)), ACCOUNT).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
