//! `barge discover` end to end: the bundled pipeline against a real registry, via rewrites.

use barge_testkit::registry;
mod support;

use serde_json::Value;
use std::process::Command;
use support::{root, run, stderr, stdout};

fn sha1sum(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn discovers_the_bundled_pipeline_on_a_local_registry() {
    let reg = registry::TestRegistry::start(None).await;
    for tag in ["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest"] {
        reg.push_image(
            "barge-demo/guestbook",
            tag,
            &format!("2026-01-0{}T00:00:00Z", tag.len() % 9),
            "amd64",
        )
        .await;
    }
    let rewrite = format!("ghcr.io/barge-demo/={}/barge-demo/", reg.host);
    let pipelines = root().join("pipelines");
    let out = run(&[
        "discover",
        pipelines.to_str().unwrap(),
        "--rewrite",
        &rewrite,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = &v[0];
    assert_eq!(
        (w["project"].as_str(), w["warehouse"].as_str()),
        (Some("demo"), Some("guestbook"))
    );
    let sub = &w["subscriptions"][0];
    assert_eq!(sub["repoURL"], "ghcr.io/barge-demo/guestbook");
    assert_eq!(sub["tagsListed"], 5);
    let tags: Vec<&str> = sub["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tag"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        ["1.1.0", "1.0.0"],
        "^1.0.0 excludes 2.0.0, the prerelease and latest"
    );
    let digest = sub["candidates"][0]["digest"].as_str().unwrap();
    let freight = &w["freight"];
    assert_eq!(freight["images"][0]["tag"], "1.1.0");
    assert_eq!(
        freight["images"][0]["repoURL"], "ghcr.io/barge-demo/guestbook",
        "Freight keeps the real name"
    );
    // The ID is Kargo's recipe, checked with an independent SHA-1.
    let expected = sha1sum(&format!(
        "Warehouse/guestbook:ghcr.io/barge-demo/guestbook:1.1.0@{digest}"
    ));
    assert_eq!(freight["metadata"]["name"].as_str(), Some(expected.as_str()));
    assert!(freight["alias"].as_str().unwrap().contains('-'));

    let text = stdout(&run(&["discover", pipelines.to_str().unwrap(), "--rewrite", &rewrite]));
    assert!(text.contains("warehouse demo/guestbook"), "{text}");
    assert!(text.contains("→ 1.1.0"), "{text}");
    assert!(text.contains(&format!("freight {expected}")), "{text}");

    // Same discovery twice: same Freight (minting is idempotent).
    let again: Value = serde_json::from_slice(
        &run(&[
            "discover",
            pipelines.to_str().unwrap(),
            "--rewrite",
            &rewrite,
            "-o",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(again[0]["freight"]["metadata"]["name"], freight["metadata"]["name"]);
}

#[test]
fn an_unreachable_registry_fails_with_a_classified_error_and_no_freight() {
    let port = support::free_port();
    let out = run(&[
        "discover",
        root().join("pipelines").to_str().unwrap(),
        "--rewrite",
        &format!("ghcr.io/barge-demo/=127.0.0.1:{port}/x/"),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v[0]["subscriptions"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("transient:"),
        "{v}"
    );
    assert_eq!(v[0]["freight"], Value::Null);
    assert!(v[0]["noFreightReason"].as_str().unwrap().contains("failed"));
}

/// examples/rendered-branches: an image and a git subscription (with include paths), both
/// rewritten to local components; the Freight carries both and has Kargo's ID.
#[tokio::test(flavor = "multi_thread")]
async fn image_and_git_subscriptions_mint_one_freight() {
    let reg = registry::TestRegistry::start(None).await;
    reg.push_image("example/guestbook", "1.4.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("base")).unwrap();
    std::fs::write(work.join("base/deployment.yaml"), "kind: Deployment\n").unwrap();
    support::git(&work, &["init", "-q", "-b", "main"]);
    support::git(&work, &["add", "."]);
    support::git(&work, &["commit", "-q", "-m", "base"]);
    std::fs::write(work.join("README.md"), "not a manifest\n").unwrap();
    support::git(&work, &["add", "."]);
    support::git(&work, &["commit", "-q", "-m", "readme"]);
    let base_commit = support::git(&work, &["rev-parse", "HEAD~1"]);
    let bare = dir.path().join("guestbook-config.git");
    support::git(
        dir.path(),
        &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()],
    );

    let out = run(&[
        "discover",
        root().join("examples/rendered-branches").to_str().unwrap(),
        "--rewrite",
        &format!("ghcr.io/example/={}/example/", reg.host),
        "--rewrite",
        &format!("https://git.example.com/example/=file://{}/", dir.path().display()),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let git = v[0]["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "git")
        .unwrap();
    // The README commit touches no included path: the base commit is the candidate.
    assert_eq!(git["candidates"][0]["id"].as_str(), Some(base_commit.as_str()), "{git}");
    let freight = &v[0]["freight"];
    assert_eq!(
        freight["commits"][0]["repoURL"],
        "https://git.example.com/example/guestbook-config.git"
    );
    let digest = v[0]["subscriptions"][0]["candidates"][0]["digest"].as_str().unwrap();
    let expected = sha1sum(&format!(
        "Warehouse/guestbook:ghcr.io/example/guestbook:1.4.0@{digest}|https://git.example.com/example/guestbook-config:{base_commit}"
    ));
    assert_eq!(freight["metadata"]["name"].as_str(), Some(expected.as_str()));
}

#[test]
fn discover_refuses_invalid_definitions_and_unknown_warehouses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.yaml"), "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w}\nspec:\n  subscriptions:\n    - image: {repoURL: ghcr.io/x/y, constraint: '^^1'}\n").unwrap();
    let out = run(&["discover", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid-semver-constraint"), "{}", stderr(&out));
    let out = run(&[
        "discover",
        root().join("pipelines").to_str().unwrap(),
        "--warehouse",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no Warehouse named \"nope\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn discovered_freight_is_stored_once_and_listed() {
    let reg = registry::TestRegistry::start(None).await;
    reg.push_image("barge-demo/guestbook", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/barge.db", dir.path().display());
    let rewrite = format!("ghcr.io/barge-demo/={}/barge-demo/", reg.host);
    let pipelines = root().join("pipelines");
    let discover = || {
        let out = run(&[
            "discover",
            pipelines.to_str().unwrap(),
            "--rewrite",
            &rewrite,
            "--db",
            &db,
            "-o",
            "json",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = discover();
    assert_eq!(first[0]["stored"], "created");
    let second = discover();
    assert_eq!(
        second[0]["stored"], "existing",
        "the same discovery twice mints nothing new"
    );
    assert_eq!(first[0]["freight"]["alias"], second[0]["freight"]["alias"]);

    // A new tag is new Freight; the listing is newest first.
    reg.push_image("barge-demo/guestbook", "1.0.1", "2026-01-02T00:00:00Z", "amd64")
        .await;
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(discover()[0]["stored"], "created");
    let list: Value = serde_json::from_slice(&run(&["get", "freight", "--db", &db, "-o", "json"]).stdout).unwrap();
    let tags: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["images"][0]["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["1.0.1", "1.0.0"]);

    let alias = first[0]["freight"]["alias"].as_str().unwrap();
    let one = Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(["get", "freight", alias, "--project", "demo", "-o", "json"])
        .env("BARGE_DB", &db)
        .output()
        .unwrap();
    let one: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(one["metadata"]["name"], first[0]["freight"]["metadata"]["name"]);
    assert_eq!(one["metadata"]["namespace"], "demo");

    let table = stdout(&run(&["get", "freight", "--db", &db]));
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains(alias) && table.contains("ghcr.io/barge-demo/guestbook:1.0.0"),
        "{table}"
    );
    let missing = run(&["get", "freight", "nope", "--db", &db]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no Freight named or aliased \"nope\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_runs_passes_as_warehouses_come_due_and_refresh_runs_one_now() {
    let reg = registry::TestRegistry::start(None).await;
    reg.push_image("acme/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("w.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: fast, namespace: demo}}\nspec:\n  interval: 1s\n  subscriptions:\n    - image: {{repoURL: {}/acme/app}}\n", reg.host),
    )
    .unwrap();
    let db = format!("sqlite://{}/barge.db", dir.path().display());
    let started = std::time::Instant::now();
    let out = run(&[
        "discover",
        defs.to_str().unwrap(),
        "--watch",
        "--passes",
        "2",
        "--db",
        &db,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let passes: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(passes.len(), 2);
    assert_eq!(passes[0][0]["stored"], "created");
    assert_eq!(passes[1][0]["stored"], "existing");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "the second pass waited for the interval"
    );

    reg.push_image("acme/app", "1.1.0", "2026-01-02T00:00:00Z", "amd64")
        .await;
    let out = run(&[
        "refresh",
        "warehouse",
        "fast",
        defs.to_str().unwrap(),
        "--db",
        &db,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["stored"], "created");
    assert_eq!(v[0]["freight"]["images"][0]["tag"], "1.1.0");
    let bad = run(&["refresh", "warehouse", "nope", defs.to_str().unwrap(), "--db", &db]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_from_the_config_file_with_secrets_from_the_environment() {
    let reg = registry::TestRegistry::start(Some(("barge", "pa55-from-env"))).await;
    reg.push_image("private/app", "2.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(defs.join("w.yaml"), format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: private, namespace: demo}}\nspec:\n  subscriptions:\n    - image: {{repoURL: {}/private/app}}\n", reg.host)).unwrap();
    let config = dir.path().join("barge.yaml");
    std::fs::write(&config, format!("registries:\n  credentials:\n    - prefix: {}/private/\n      username: barge\n      passwordFrom: {{env: REG_PASSWORD}}\n", reg.host)).unwrap();
    let discover = |password: &str| {
        Command::new(env!("CARGO_BIN_EXE_barge"))
            .args(["discover", defs.to_str().unwrap(), "-o", "json"])
            .env("BARGE_CONFIG", &config)
            .env("REG_PASSWORD", password)
            .output()
            .unwrap()
    };
    let ok = discover("pa55-from-env");
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let v: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v[0]["freight"]["images"][0]["tag"], "2.0.0");

    let wrong = discover("not-the-password");
    assert_eq!(wrong.status.code(), Some(1));
    let all = format!("{}{}", stdout(&wrong), stderr(&wrong));
    assert!(
        all.contains("auth:") && all.contains("rejected the credentials"),
        "{all}"
    );
    assert!(!all.contains("not-the-password"), "secrets never reach the output");

    std::fs::write(&config, "registries:\n  credentails: []\n").unwrap();
    let bad = discover("x");
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("barge.yaml is not a valid barge config") && stderr(&bad).contains("credentails"),
        "{}",
        stderr(&bad)
    );
    std::fs::write(
        &config,
        "registries:\n  credentials:\n    - {username: u, passwordFrom: {env: X}}\n",
    )
    .unwrap();
    assert!(stderr(&discover("x")).contains("set exactly one of `prefix` and `regex`"));
}

/// Kargo users' first pain point is registry rate limits: with `--db`, a second pass whose tag
/// list has not changed sends the listing and nothing else (cacheByTag), where it used to send
/// the listing and a HEAD per candidate every time.
#[tokio::test(flavor = "multi_thread")]
async fn a_steady_state_pass_with_a_store_sends_one_listing() {
    let reg = registry::TestRegistry::start(None).await;
    reg.push_tags("steady/app", &registry::tags("1.0.", 25)).await;
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("w.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: steady, namespace: demo}}\nspec:\n  subscriptions:\n    - image: {{repoURL: {}/steady/app, cacheByTag: true}}\n", reg.host),
    )
    .unwrap();
    let db = format!("sqlite://{}/barge.db", dir.path().display());
    let discover = || {
        let out = run(&["discover", defs.to_str().unwrap(), "--db", &db, "-o", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = discover();
    let sub = &first[0]["subscriptions"][0];
    assert_eq!(
        (sub["requests"].as_u64(), sub["reused"].as_bool()),
        (Some(21), Some(false))
    );
    let second = discover();
    let sub = &second[0]["subscriptions"][0];
    assert_eq!(
        (sub["requests"].as_u64(), sub["reused"].as_bool()),
        (Some(1), Some(true)),
        "one listing, no HEADs: {sub}"
    );
    assert_eq!(second[0]["stored"], "existing");
    assert_eq!(second[0]["freight"]["images"][0], first[0]["freight"]["images"][0]);
}

/// A registry whose `Docker-Content-Digest` is made up: the subscription fails with a clear
/// error and no Freight is minted at the false digest.
#[tokio::test(flavor = "multi_thread")]
async fn no_freight_is_minted_at_a_lying_registrys_digest() {
    let reg = registry::TestRegistry::start(None).await;
    reg.push_tags("lying/app", &["1.0.0".to_string()]).await;
    let proxy = registry::Proxy::start(
        &reg.host,
        None,
        std::sync::Arc::new(|_, path: &str| {
            if path.contains("/manifests/") {
                registry::Fault::Digest("sha256:0000000000000000000000000000000000000000000000000000000000000000")
            } else {
                registry::Fault::Pass
            }
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("w.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: lying, namespace: demo}}\nspec:\n  subscriptions:\n    - image: {{repoURL: {}/lying/app}}\n", proxy.host),
    )
    .unwrap();
    let db = format!("sqlite://{}/barge.db", dir.path().display());
    let out = run(&["discover", defs.to_str().unwrap(), "--db", &db, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = v[0]["subscriptions"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("invalid:") && error.contains("refusing"), "{error}");
    assert_eq!(v[0]["freight"], Value::Null);
    let list: Value = serde_json::from_slice(&run(&["get", "freight", "--db", &db, "-o", "json"]).stdout).unwrap();
    assert_eq!(list["items"], serde_json::json!([]), "nothing stored: {list}");
}

/// A Warehouse is its project and its name: two projects with an `app` Warehouse each are two
/// Warehouses, and one daemon pass discovers each of them once (not both of them once per
/// Warehouse of that name, the second time off schedule).
#[tokio::test(flavor = "multi_thread")]
async fn same_named_warehouses_in_two_projects_are_each_discovered_once_per_pass() {
    let reg = registry::TestRegistry::start(None).await;
    for repo in ["alpha/app", "beta/app"] {
        reg.push_tags(repo, &["1.0.0".to_string()]).await;
    }
    // The tag listings the daemon sends, by request number (the plan is asked more than once
    // per request).
    let listings = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let seen = listings.clone();
    let proxy = registry::Proxy::start(
        &reg.host,
        None,
        std::sync::Arc::new(move |n, path: &str| {
            if path.contains("/tags/list") {
                seen.lock()
                    .unwrap()
                    .insert((n, path.split('?').next().unwrap().to_string()));
            }
            registry::Fault::Pass
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs");
    std::fs::create_dir_all(&defs).unwrap();
    for project in ["alpha", "beta"] {
        std::fs::write(
            defs.join(format!("{project}.yaml")),
            format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app, namespace: {project}}}\nspec:\n  interval: 1h\n  subscriptions:\n    - image: {{repoURL: {}/{project}/app}}\n", proxy.host),
        )
        .unwrap();
    }
    let out = support::barge()
        .args(["serve", defs.to_str().unwrap(), "--once"])
        .env("BARGE_DB", format!("sqlite://{}/barge.db", dir.path().display()))
        .env("BARGE_WORK_DIR", dir.path().join("work"))
        .output()
        .unwrap();
    assert!(out.status.success(), "serve --once failed:\n{}", stderr(&out));
    let mut per_repo = std::collections::BTreeMap::new();
    for (_, path) in listings.lock().unwrap().iter() {
        *per_repo.entry(path.clone()).or_insert(0) += 1;
    }
    assert_eq!(
        per_repo,
        std::collections::BTreeMap::from([
            ("/v2/alpha/app/tags/list".to_string(), 1),
            ("/v2/beta/app/tags/list".to_string(), 1),
        ]),
        "one discovery per Warehouse per pass"
    );
    let minted = stderr(&out).matches("minted freight").count();
    assert_eq!(minted, 2, "each Warehouse mints its Freight once:\n{}", stderr(&out));
}
