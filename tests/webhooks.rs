//! Inbound webhooks through the real binary (`barge serve --listen`) on loopback: the URL
//! path `barge get webhooks` lists is Kargo's, a delivery signed or authenticated as each
//! provider does wakes exactly the Warehouses subscribed to what was pushed (202), a bad one
//! is refused (401, audited) and wakes nothing; replays, unknown receivers, oversized and
//! malformed bodies are answered without refreshing. The distribution registry's own
//! notifications drive a real discovery end to end. A merged pull request announced by each
//! forge (GitHub, GitLab, Gitea, Bitbucket Cloud, Azure DevOps) wakes the promotion waiting
//! on it in git-wait-for-pr.
//!
//! Payloads are the providers' documented examples, cut to the fields barge reads, with the
//! repositories of this test.

mod support;

use barge_core::webhook::{Provider, receiver_path, sign};
use barge_testkit::forge::{Flavor, TestForge};
use barge_testkit::git as git_kit;
use barge_testkit::registry::TestRegistry;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

const TOKEN: &str = "webhook-test-token";

/// Every provider's receiver in project `demo`, each with its own secret.
fn project_config() -> String {
    let receivers: String = Provider::ALL
        .iter()
        .filter(|p| **p != Provider::Generic)
        .map(|p| format!("    - {{name: {p}-hook, {p}: {{secretRef: {{name: {p}}}}}}}\n"))
        .collect();
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {{name: demo}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {{name: demo, namespace: demo}}\nspec:\n  webhookReceivers:\n{receivers}"
    )
}

/// Each provider's secret value (its key is the provider's `secret_key`).
fn secret_of(p: Provider) -> String {
    format!("{p}-s3cret")
}

fn config(dir: &Path, plain_http: &str) -> PathBuf {
    let secrets: String = Provider::ALL
        .iter()
        .map(|p| {
            format!(
                "  {p}:\n    {}: {{env: HOOK_{}}}\n",
                p.secret_key(),
                p.key().to_uppercase()
            )
        })
        .collect();
    let path = dir.join("barge.yaml");
    std::fs::write(
        &path,
        format!("registries: {{plainHTTP: [{plain_http}]}}\nsecrets:\n{secrets}"),
    )
    .unwrap();
    path
}

type Daemon = support::Serve;

fn command(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = support::barge();
    c.args(args)
        .env("BARGE_DB", format!("sqlite://{}/barge.db", dir.display()))
        .env("BARGE_WORK_DIR", dir.join("work"))
        .env("BARGE_TOKEN", TOKEN)
        .env_remove("BARGE_SERVER")
        .env_remove("BARGE_TOKEN_FILE");
    for p in Provider::ALL {
        c.env(format!("HOOK_{}", p.key().to_uppercase()), secret_of(p));
    }
    c
}

async fn start(dir: &Path, defs: &Path, config: &Path, port: u16) -> Daemon {
    start_with(dir, defs, config, port, &[]).await
}

/// [`start`] with these further environment variables.
async fn start_with(dir: &Path, defs: &Path, config: &Path, port: u16, env: &[(&str, &str)]) -> Daemon {
    // The test's reqwest client is built without a TLS provider, as barge's is.
    barge_registry::install_crypto_provider();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::spawn(
        command(dir, &["serve", defs.to_str().unwrap(), "--listen", &listen])
            .env("BARGE_CONFIG", config)
            .envs(env.iter().copied()),
        port,
        dir.join("serve.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{}/healthz", daemon.url)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "barge serve did not start:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon
}

fn get_json(dir: &Path, args: &[&str]) -> Value {
    let out = command(dir, args).args(["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    support::listed(serde_json::from_slice(&out.stdout).unwrap())
}

/// The path `barge get webhooks` lists for a provider's receiver.
fn listed_path(dir: &Path, defs: &Path, config: &Path, p: Provider) -> String {
    let list = get_json(
        dir,
        &[
            "get",
            "webhooks",
            defs.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["provider"] == p.key())
        .unwrap_or_else(|| panic!("{p} is not listed: {list}"))
        .clone();
    assert_eq!(entry["project"], "demo");
    assert_eq!(entry["name"], format!("{p}-hook"));
    entry["url"].as_str().unwrap().to_string()
}

async fn wait_for_freight(dir: &Path, daemon: &Daemon, tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let freight = get_json(dir, &["get", "freight"]);
        if freight.to_string().contains(&format!("\"{tag}\"")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no Freight with {tag}: {freight}\n{}",
            std::fs::read_to_string(&daemon.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registrys_notifications_make_the_warehouse_discover_the_pushed_image() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    // The path is known before the registry starts: it does not depend on the Warehouses.
    let secret = secret_of(Provider::Distribution);
    let path = receiver_path("demo", Provider::Distribution, "distribution-hook", &[&secret]);
    let reg = TestRegistry::start_notifying(&format!("http://127.0.0.1:{port}{path}"), &secret).await;
    let defs = dir.path().join("defs.yaml");
    std::fs::write(
        &defs,
        format!(
            "{}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app, namespace: demo}}\nspec:\n  interval: 24h\n  subscriptions:\n    - image: {{repoURL: {}/demo/app, constraint: ^1.0.0}}\n",
            project_config(),
            reg.host
        ),
    )
    .unwrap();
    let config = config(dir.path(), &reg.host);
    assert_eq!(listed_path(dir.path(), &defs, &config, Provider::Distribution), path);

    reg.push_image("demo/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let daemon = start(dir.path(), &defs, &config, port).await;
    wait_for_freight(dir.path(), &daemon, "1.0.0").await;
    // The Warehouse is next due in a day: only the registry's notification makes it look now.
    reg.push_image("demo/app", "1.1.0", "2026-01-02T00:00:00Z", "amd64")
        .await;
    wait_for_freight(dir.path(), &daemon, "1.1.0").await;
}

/// A provider's documented delivery: headers (before signing) and body.
struct Fixture {
    provider: Provider,
    headers: Vec<(&'static str, String)>,
    body: Value,
    /// How the provider authenticates: `None` when the secret is in the URL only.
    auth: Option<Auth>,
    /// The Warehouses it wakes.
    wakes: Vec<&'static str>,
}

enum Auth {
    /// `header: <prefix><hex HMAC-SHA256 of the body>`.
    Hmac(&'static str, &'static str),
    /// `header: <the secret>`.
    Token(&'static str),
}

fn fixtures() -> Vec<Fixture> {
    let git = "http://127.0.0.1:1/acme/configs.git";
    vec![
        // https://docs.github.com/en/webhooks/webhook-events-and-payloads#push
        Fixture {
            provider: Provider::GitHub,
            headers: vec![
                ("X-GitHub-Event", "push".into()),
                ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
            ],
            body: json!({
                "ref": "refs/heads/main",
                "repository": {"full_name": "acme/configs", "clone_url": git, "ssh_url": "git@127.0.0.1:acme/configs.git"},
                "commits": [{"id": "6dcb09b5", "added": [], "modified": ["apps/guestbook/values.yaml"], "removed": []}],
                "head_commit": {"id": "6dcb09b5", "added": [], "modified": ["apps/guestbook/values.yaml"], "removed": []}
            }),
            auth: Some(Auth::Hmac("X-Hub-Signature-256", "sha256=")),
            wakes: vec!["configs-apps"],
        },
        // https://docs.github.com/en/webhooks/webhook-events-and-payloads#registry_package
        // (a GitHub App's delivery; a repository's is `package` with `package` for
        // `registry_package`).
        Fixture {
            provider: Provider::GitHub,
            headers: vec![
                ("X-GitHub-Event", "registry_package".into()),
                ("X-GitHub-Delivery", "9a0c4e1e-0f4f-11ee-8d8a-2f0f1b0e6a11".into()),
            ],
            body: json!({
                "action": "published",
                "registry_package": {
                    "name": "hello-world", "namespace": "octo-org", "ecosystem": "CONTAINER", "package_type": "CONTAINER",
                    "package_version": {
                        "version": "sha256:0b21a3e1",
                        "package_url": "ghcr.io/octo-org/hello-world:1.0.0",
                        "container_metadata": {"tag": {"name": "1.0.0", "digest": "sha256:0b21a3e1"}, "manifest": {"config": {"media_type": "application/vnd.oci.image.config.v1+json"}}}
                    }
                }
            }),
            auth: Some(Auth::Hmac("X-Hub-Signature-256", "sha256=")),
            wakes: vec!["ghcr-image"],
        },
        // https://docs.gitlab.com/user/project/integrations/webhook_events/#push-events
        Fixture {
            provider: Provider::GitLab,
            headers: vec![
                ("X-Gitlab-Event", "Push Hook".into()),
                ("X-Gitlab-Event-UUID", "a1b2".into()),
            ],
            body: json!({
                "object_kind": "push", "ref": "refs/heads/main",
                "project": {"git_http_url": git, "git_ssh_url": "git@127.0.0.1:acme/configs.git"},
                "commits": [{"id": "b6568db1", "added": ["docs/README.md"], "modified": [], "removed": []}]
            }),
            auth: Some(Auth::Token("X-Gitlab-Token")),
            wakes: vec!["configs-docs"],
        },
        // https://docs.gitea.com/usage/webhooks (GitHub's push shape)
        Fixture {
            provider: Provider::Gitea,
            headers: vec![
                ("X-Gitea-Event", "push".into()),
                ("X-Gitea-Delivery", "f6266f16".into()),
            ],
            body: json!({
                "ref": "refs/heads/main",
                "repository": {"clone_url": git, "ssh_url": "git@127.0.0.1:acme/configs.git"},
                "commits": [{"id": "28e1879d", "added": ["apps/x.yaml"], "modified": [], "removed": []}]
            }),
            auth: Some(Auth::Hmac("X-Hub-Signature-256", "sha256=")),
            wakes: vec!["configs-apps"],
        },
        // https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/#Push
        Fixture {
            provider: Provider::Bitbucket,
            headers: vec![("X-Event-Key", "repo:push".into()), ("X-Request-UUID", "c1d2".into())],
            body: json!({
                "push": {"changes": [{"new": {"type": "branch", "name": "main"}}]},
                "repository": {"full_name": "acme/configs", "links": {"html": {"href": "http://127.0.0.1:1/acme/configs"}}}
            }),
            auth: Some(Auth::Hmac("X-Hub-Signature", "sha256=")),
            // No changed paths in Bitbucket's payload: every Warehouse following main.
            wakes: vec!["configs-apps", "configs-docs"],
        },
        // https://docs.docker.com/docker-hub/repos/manage/webhooks/
        Fixture {
            provider: Provider::DockerHub,
            headers: vec![],
            body: json!({
                "callback_url": "https://registry.hub.docker.com/u/svendowideit/testhook/hook/2141b5bi5i5b02bec211i4eeih0242eg11000a/",
                "push_data": {"pushed_at": 1417566161, "pusher": "trustedbuilder", "tag": "latest"},
                "repository": {"name": "testhook", "namespace": "svendowideit", "repo_name": "svendowideit/testhook", "repo_url": "https://registry.hub.docker.com/u/svendowideit/testhook/"}
            }),
            auth: None,
            wakes: vec!["dockerhub-image"],
        },
        // https://docs.quay.io/guides/notifications.html (Repository Push)
        Fixture {
            provider: Provider::Quay,
            headers: vec![],
            body: json!({
                "name": "repository", "repository": "mynamespace/repository", "namespace": "mynamespace",
                "docker_url": "quay.io/mynamespace/repository", "homepage": "https://quay.io/repository/mynamespace/repository",
                "updated_tags": ["latest"]
            }),
            auth: None,
            wakes: vec!["quay-image"],
        },
        // https://goharbor.io/docs/main/working-with-projects/project-configuration/configure-webhooks/
        Fixture {
            provider: Provider::Harbor,
            headers: vec![],
            body: json!({
                "type": "PUSH_ARTIFACT", "occur_at": 1680501893, "operator": "harbor-jobservice",
                "event_data": {
                    "resources": [{"digest": "sha256:954b378c", "tag": "latest", "resource_url": "harbor.example.com/library/nginx:latest"}],
                    "repository": {"name": "nginx", "namespace": "library", "repo_full_name": "library/nginx", "repo_type": "public"}
                }
            }),
            auth: Some(Auth::Token("Authorization")),
            wakes: vec!["harbor-image"],
        },
        // https://learn.microsoft.com/azure/container-registry/container-registry-webhook-reference#push-event
        Fixture {
            provider: Provider::Azure,
            headers: vec![],
            body: json!({
                "id": "cb8c3971-9adc-488b-bdd8-43cbb4974ff5", "timestamp": "2017-11-17T16:52:01.343145347Z", "action": "push",
                "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 524, "digest": "sha256:80f0d5c8", "length": 524, "repository": "hello-world", "tag": "v1"},
                "request": {"id": "3cbb6949-7549-4fa1-86cd-a6d5451dffc7", "host": "myregistry.azurecr.io", "method": "PUT", "useragent": "docker/17.09.0-ce"}
            }),
            auth: None,
            wakes: vec!["azure-image"],
        },
        // https://learn.microsoft.com/azure/devops/service-hooks/events#git.push
        Fixture {
            provider: Provider::Azure,
            headers: vec![],
            body: json!({
                "id": "03c164c2-8912-4d5e-8009-3707d5f83734", "eventType": "git.push", "publisherId": "tfs",
                "resource": {
                    "refUpdates": [{"name": "refs/heads/main", "oldObjectId": "aad331d8", "newObjectId": "33b55f7c"}],
                    "repository": {"id": "278d5cd2", "name": "configs", "remoteUrl": "http://127.0.0.1:1/acme/configs"}
                }
            }),
            auth: None,
            wakes: vec!["configs-apps", "configs-docs"],
        },
        // https://jfrog.com/help/r/jfrog-platform-administration-documentation/event-payloads (docker, pushed)
        Fixture {
            provider: Provider::Artifactory,
            headers: vec![("X-JFrog-Origin", "https://acme.jfrog.io".into())],
            body: json!({
                "domain": "docker", "event_type": "pushed",
                "data": {"repo_key": "docker-local", "path": "hello-world/latest/manifest.json", "name": "manifest.json", "sha256": "a10ed7a1", "size": 524, "image_name": "hello-world", "tag": "latest"},
                "subscription_key": "test", "jpd_origin": "https://acme.jfrog.io", "source": "jfrog/user"
            }),
            auth: Some(Auth::Hmac("X-JFrog-Event-Auth", "")),
            wakes: vec!["artifactory-image"],
        },
        // https://distribution.github.io/distribution/about/notifications/#events
        Fixture {
            provider: Provider::Distribution,
            headers: vec![],
            body: json!({"events": [{
                "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7", "timestamp": "2016-03-09T14:44:26.402973972-08:00", "action": "push",
                "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 708, "digest": "sha256:fea8895f", "length": 708, "repository": "hello-world", "url": "http://registry.example.com/v2/hello-world/manifests/sha256:fea8895f", "tag": "latest"},
                "request": {"id": "6df24a34-0959-4923-81ca-14f09767db19", "addr": "192.168.64.11:42961", "host": "registry.example.com", "method": "PUT", "useragent": "curl/7.38.0"}
            }]}),
            auth: Some(Auth::Token("Authorization")),
            wakes: vec!["distribution-image"],
        },
    ]
}

/// Warehouses for the fixtures: the config repository's main branch watched for two
/// directories and its release branch, one Warehouse per image (Lexical: the examples push
/// `latest`), one whose SemVer constraint no pushed tag meets, and one no delivery names.
const WAREHOUSES: &str = r#"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: configs-apps, namespace: demo}
spec:
  interval: 24h
  subscriptions:
    - git: {repoURL: http://127.0.0.1:1/acme/configs, includePaths: [apps/]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: configs-docs, namespace: demo}
spec:
  interval: 24h
  subscriptions:
    - git: {repoURL: http://127.0.0.1:1/acme/configs.git, includePaths: ["glob:docs/*"]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: dockerhub-image, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: docker.io/svendowideit/testhook, imageSelectionStrategy: Lexical}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: quay-image, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: quay.io/mynamespace/repository, imageSelectionStrategy: Lexical}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: harbor-image, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: harbor.example.com/library/nginx, imageSelectionStrategy: Lexical}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: azure-image, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: myregistry.azurecr.io/hello-world, imageSelectionStrategy: Lexical}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: artifactory-image, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: acme.jfrog.io/docker-local/hello-world, imageSelectionStrategy: Lexical}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: distribution-image, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: registry.example.com/hello-world, imageSelectionStrategy: Lexical}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: ghcr-image, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: ghcr.io/octo-org/hello-world}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: quay-semver, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: quay.io/mynamespace/repository, constraint: ^1.0.0}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: configs-release, namespace: demo}
spec: {interval: 24h, subscriptions: [{git: {repoURL: http://127.0.0.1:1/acme/configs, branch: release}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: unrelated, namespace: demo}
spec: {interval: 24h, subscriptions: [{image: {repoURL: registry.example.com/other}}]}
"#;

async fn post(url: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let mut r = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The headers that authenticate `body` for `f`, with `secret`.
fn signed(f: &Fixture, secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let mut headers = f.headers.clone();
    match f.auth {
        Some(Auth::Hmac(name, prefix)) => headers.push((name, format!("{prefix}{}", sign(secret, body)))),
        Some(Auth::Token(name)) => headers.push((name, secret.to_string())),
        None => {}
    }
    headers
}

fn woken(answer: &Value) -> Vec<String> {
    let mut names: Vec<String> = answer["warehouses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn each_providers_delivery_wakes_the_subscribed_warehouses_and_a_forged_one_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs.yaml");
    std::fs::write(&defs, format!("{}{WAREHOUSES}", project_config())).unwrap();
    let config = config(dir.path(), "127.0.0.1:1");
    let daemon = start(dir.path(), &defs, &config, support::free_port()).await;

    let mut refused = 0;
    for f in fixtures() {
        let url = format!("{}{}", daemon.url, listed_path(dir.path(), &defs, &config, f.provider));
        let body = serde_json::to_vec(&f.body).unwrap();
        if f.auth.is_some() {
            // A signature or token made with another secret: refused, nothing woken.
            let (status, answer) = post(&url, &signed(&f, "not-the-secret", &body), body.clone()).await;
            assert_eq!(status, 401, "{}: {answer}", f.provider);
            assert_eq!(woken(&answer), Vec::<String>::new());
            // None at all.
            let (status, _) = post(&url, &f.headers, body.clone()).await;
            assert_eq!(status, 401, "{}", f.provider);
            refused += 2;
        }
        let (status, answer) = post(&url, &signed(&f, &secret_of(f.provider), &body), body.clone()).await;
        assert_eq!(status, 202, "{}: {answer}", f.provider);
        assert_eq!(woken(&answer), f.wakes, "{}", f.provider);
    }

    // Every refusal is in the audit trail, and no secret is.
    let history = get_json(dir.path(), &["history", "--server", &daemon.url]);
    let events: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "webhook.unauthorized")
        .collect();
    assert_eq!(events.len(), refused, "{history}");
    for p in Provider::ALL {
        assert!(!history.to_string().contains(&secret_of(p)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replays_unknown_receivers_large_malformed_and_too_many_bodies_refresh_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs.yaml");
    std::fs::write(&defs, format!("{}{WAREHOUSES}", project_config())).unwrap();
    let config = config(dir.path(), "127.0.0.1:1");
    let daemon = start(dir.path(), &defs, &config, support::free_port()).await;
    let path = listed_path(dir.path(), &defs, &config, Provider::GitHub);
    let url = format!("{}{path}", daemon.url);
    let github = fixtures().into_iter().find(|f| f.provider == Provider::GitHub).unwrap();
    let secret = secret_of(Provider::GitHub);
    let body = serde_json::to_vec(&github.body).unwrap();

    // The same delivery twice: the second refreshes nothing.
    let (status, _) = post(&url, &signed(&github, &secret, &body), body.clone()).await;
    assert_eq!(status, 202);
    let (status, answer) = post(&url, &signed(&github, &secret, &body), body.clone()).await;
    assert_eq!((status, woken(&answer)), (200, vec![]), "{answer}");
    assert_eq!(answer["msg"], "delivery already received");

    // An unknown hash, a known hash under another provider: the same 404.
    let unknown = format!("{}/webhook/github/{}", daemon.url, "0".repeat(64));
    let elsewhere = format!("{}{}", daemon.url, path.replace("/github/", "/gitlab/"));
    for u in [&unknown, &elsewhere] {
        let (status, answer) = post(u, &signed(&github, &secret, &body), body.clone()).await;
        assert_eq!(status, 404, "{u}");
        assert_eq!(answer, json!({"error": "no such webhook receiver"}));
    }

    // More than 2 MiB: 413 before it is read whole.
    let large = vec![b' '; (2 << 20) + 1];
    let (status, _) = post(&url, &signed(&github, &secret, &large), large.clone()).await;
    assert_eq!(status, 413);

    // Signed, but not JSON.
    let malformed = b"{\"ref\": ".to_vec();
    let mut headers = signed(&github, &secret, &malformed);
    headers.retain(|(k, _)| *k != "X-GitHub-Delivery");
    let (status, answer) = post(&url, &headers, malformed).await;
    assert_eq!(status, 400, "{answer}");

    // A ping is answered and refreshes nothing.
    let ping = serde_json::to_vec(&json!({"zen": "Keep it logically awesome.", "hook_id": 1})).unwrap();
    let mut headers = signed(&github, &secret, &ping);
    headers.retain(|(k, _)| *k != "X-GitHub-Delivery");
    headers.iter_mut().for_each(|(k, v)| {
        if *k == "X-GitHub-Event" {
            *v = "ping".into();
        }
    });
    let (status, answer) = post(&url, &headers, ping).await;
    assert_eq!((status, woken(&answer)), (200, vec![]), "{answer}");

    // One receiver takes a burst of 100 deliveries, then 10 a second: the rest are told to
    // come back (another receiver is not affected).
    let quay = fixtures().into_iter().find(|f| f.provider == Provider::Quay).unwrap();
    let quay_url = format!(
        "{}{}",
        daemon.url,
        listed_path(dir.path(), &defs, &config, Provider::Quay)
    );
    let body = serde_json::to_vec(&quay.body).unwrap();
    // Until the bucket is empty (faster than it refills, so within a few hundred).
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    while retry_after.is_none() && statuses.len() < 1000 {
        let r = client.post(&quay_url).body(body.clone()).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        }
    }
    assert!(statuses[..100].iter().all(|s| *s == 202), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let (status, _) = post(&url, &[("X-GitHub-Event", "ping".into())], b"{}".to_vec()).await;
    assert_eq!(
        status, 401,
        "the GitHub receiver still answers (unsigned: 401, not 429)"
    );

    // /metrics counts each delivery by provider and outcome; a path naming no receiver
    // counts as provider `unknown`, whatever provider it wrote.
    let metrics = barge_testkit::metrics::scrape(&daemon.url, TOKEN).await;
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    for line in [
        r#"barge_webhook_deliveries_total{provider="github",outcome="accepted"} 1"#.to_string(),
        r#"barge_webhook_deliveries_total{provider="github",outcome="ignored"} 2"#.into(),
        r#"barge_webhook_deliveries_total{provider="github",outcome="too_large"} 1"#.into(),
        r#"barge_webhook_deliveries_total{provider="github",outcome="bad_request"} 1"#.into(),
        r#"barge_webhook_deliveries_total{provider="github",outcome="unauthorized"} 1"#.into(),
        r#"barge_webhook_deliveries_total{provider="unknown",outcome="unknown_receiver"} 2"#.into(),
        format!(r#"barge_webhook_deliveries_total{{provider="quay",outcome="accepted"}} {accepted}"#),
        r#"barge_webhook_deliveries_total{provider="quay",outcome="rate_limited"} 1"#.into(),
    ] {
        assert!(metrics.has(&line), "no {line} in:\n{}", metrics.text);
    }

    // Authenticated deliveries that refresh nothing (a registry reports every pull and blob)
    // do not use up the receiver's budget: after twice the burst of them, a push is accepted.
    let ping = serde_json::to_vec(&json!({"zen": "Design for failure.", "hook_id": 1})).unwrap();
    let mut headers = signed(&github, &secret, &ping);
    headers.retain(|(k, _)| *k != "X-GitHub-Delivery");
    headers.iter_mut().for_each(|(k, v)| {
        if *k == "X-GitHub-Event" {
            *v = "ping".into();
        }
    });
    for n in 0..200 {
        let (status, answer) = post(&url, &headers, ping.clone()).await;
        assert_eq!(status, 200, "ping {n}: {answer}");
    }
    let push = serde_json::to_vec(&github.body).unwrap();
    let mut headers = signed(&github, &secret, &push);
    headers.retain(|(k, _)| *k != "X-GitHub-Delivery");
    let (status, answer) = post(&url, &headers, push).await;
    assert_eq!(status, 202, "{answer}");
    drop(daemon);
}

#[test]
fn receivers_without_a_provider_or_secret_are_reported_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("bad.yaml");
    std::fs::write(
        &defs,
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {name: demo, namespace: demo}\nspec:\n  webhookReceivers:\n    - name: forge\n      githib: {secretRef: {name: hook}}\n    - name: registry\n      distribution: {}\n",
    )
    .unwrap();
    let report = support::validate_json(&[&defs]);
    let found: Vec<(String, u64, u64)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("missing-field".to_string(), 6, 7),
            ("unknown-field".to_string(), 7, 7),
            ("missing-field".to_string(), 9, 21)
        ],
        "{report}"
    );
}

#[test]
fn a_receiver_whose_secret_is_not_in_the_store_is_an_error_that_shows_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs.yaml");
    std::fs::write(&defs, project_config()).unwrap();
    // The store has every secret but GitHub's.
    let config = dir.path().join("barge.yaml");
    std::fs::write(
        &config,
        "secrets:\n  gitlab:\n    secret-token: {env: HOOK_GITLAB}\n  github:\n    wrong-key: {env: HOOK_GITHUB}\n",
    )
    .unwrap();
    let out = command(
        dir.path(),
        &[
            "get",
            "webhooks",
            defs.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--project",
            "demo",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (support::stdout(&out), support::stderr(&out));
    assert!(
        stderr.contains(r#"ProjectConfig "demo" webhook receiver "github-hook": secret "github" has no key "secret""#),
        "{stderr}"
    );
    let gitlab = receiver_path("demo", Provider::GitLab, "gitlab-hook", &[&secret_of(Provider::GitLab)]);
    assert!(stdout.starts_with("PROJECT  NAME         PROVIDER  URL\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("demo     gitlab-hook  gitlab    {gitlab}\n")),
        "{stdout}"
    );
    assert!(!stdout.contains("github-hook") && !stderr.contains(&secret_of(Provider::GitHub)));
}

/// A daemon whose one Warehouse subscribes to `demo/app` through a proxy that records when
/// each tag listing (one per discovery pass) was asked for; its first pass has run. `burst`
/// is the daemon's burst window (`--webhook-quiet-period`, `--webhook-max-wait`).
struct Listed {
    reg: TestRegistry,
    proxy: barge_testkit::registry::Proxy,
    listings: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
    daemon: Daemon,
    /// The distribution receiver's URL.
    url: String,
}

impl Listed {
    async fn start(dir: &Path, burst: [(&str, &str); 2]) -> Listed {
        let reg = TestRegistry::start(None).await;
        let listings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = listings.clone();
        let plan: barge_testkit::registry::Plan = std::sync::Arc::new(move |_, path: &str| {
            if path.contains("/tags/list") {
                recorded.lock().unwrap().push(Instant::now());
            }
            barge_testkit::registry::Fault::Pass
        });
        let proxy = barge_testkit::registry::Proxy::start(&reg.host, None, plan).await;
        let defs = dir.join("defs.yaml");
        std::fs::write(
            &defs,
            format!(
                "{}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app, namespace: demo}}\nspec:\n  interval: 24h\n  subscriptions:\n    - image: {{repoURL: {}/demo/app, constraint: ^1.0.0}}\n",
                project_config(),
                proxy.host
            ),
        )
        .unwrap();
        let config = config(dir, &format!("{}, {}", proxy.host, reg.host));
        reg.push_image("demo/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
            .await;
        let daemon = start_with(dir, &defs, &config, support::free_port(), &burst).await;
        let url = format!(
            "{}{}",
            daemon.url,
            listed_path(dir, &defs, &config, Provider::Distribution)
        );
        wait_for_freight(dir, &daemon, "1.0.0").await;
        Listed {
            reg,
            proxy,
            listings,
            daemon,
            url,
        }
    }

    fn listed(&self) -> usize {
        self.listings.lock().unwrap().len()
    }

    /// The registry's notification of `tag` pushed to `demo/app`; its answer.
    async fn notify(&self, id: &str, tag: &str) -> (u16, Value) {
        let body = serde_json::to_vec(&json!({"events": [{
            "id": id, "action": "push",
            "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "demo/app", "tag": tag},
            "request": {"host": self.proxy.host, "method": "PUT"}
        }]}))
        .unwrap();
        post(&self.url, &[("Authorization", secret_of(Provider::Distribution))], body).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_tags_pushed_at_once_cost_one_discovery() {
    let dir = tempfile::tempdir().unwrap();
    // A quiet period far longer than the deliveries' spread on a loaded machine, so that they
    // are one burst however the 50 requests are scheduled; the default 300 ms is shorter than
    // a busy CI machine's scheduling gaps between them.
    let burst = [("BARGE_WEBHOOK_QUIET_PERIOD", "3s"), ("BARGE_WEBHOOK_MAX_WAIT", "60s")];
    let listed = std::sync::Arc::new(Listed::start(dir.path(), burst).await);
    let before = listed.listed();

    // 50 tags pushed, and the registry's 50 notifications (one push event each) all at once.
    listed
        .reg
        .push_tags("demo/app", &barge_testkit::registry::tags("1.1.", 50))
        .await;
    let deliveries = (0..50).map(|i| {
        let listed = listed.clone();
        tokio::spawn(async move { listed.notify(&format!("event-{i}"), &format!("1.1.{i}")).await })
    });
    for d in deliveries.collect::<Vec<_>>() {
        let (status, answer) = d.await.unwrap();
        assert_eq!((status, woken(&answer)), (202, vec!["app".to_string()]), "{answer}");
    }
    wait_for_freight(dir.path(), &listed.daemon, "1.1.49").await;
    // The proxy sees the same requests in every pass of this Warehouse: the one pass at
    // start is the unit. The deliveries, sent at once, arrive well within one another's
    // quiet period (3 s), so they are one burst window. Without burst windows, a pass ran again
    // each time one ended during the burst.
    let after = listed.listed() - before;
    assert_eq!(
        after, before,
        "{after} tag listing requests for 50 deliveries, {before} per pass"
    );
}

/// A lone push is discovered once the burst window's quiet period has passed, not at the
/// window's cap: with the default 300 ms quiet period and a 60 s cap, the pass starts after
/// 300 ms and long before 60 s (the bound leaves a loaded machine 30 s of scheduling).
#[tokio::test(flavor = "multi_thread")]
async fn a_lone_deliverys_discovery_starts_within_the_quiet_period() {
    let dir = tempfile::tempdir().unwrap();
    let listed = Listed::start(
        dir.path(),
        [
            ("BARGE_WEBHOOK_QUIET_PERIOD", "300ms"),
            ("BARGE_WEBHOOK_MAX_WAIT", "60s"),
        ],
    )
    .await;
    let before = listed.listed();
    listed
        .reg
        .push_image("demo/app", "1.0.1", "2026-01-02T00:00:00Z", "amd64")
        .await;
    let sent = Instant::now();
    let (status, answer) = listed.notify("lone", "1.0.1").await;
    assert_eq!((status, woken(&answer)), (202, vec!["app".to_string()]), "{answer}");
    wait_for_freight(dir.path(), &listed.daemon, "1.0.1").await;
    let listings = listed.listings.lock().unwrap().clone();
    assert_eq!(listings.len(), before * 2, "one pass for the lone delivery");
    let waited = listings[before] - sent;
    assert!(
        (Duration::from_millis(300)..Duration::from_secs(30)).contains(&waited),
        "the pass started {waited:?} after the delivery"
    );
}

/// Issue #18: `GET /api/v1/webhooks` lists the receivers the daemon serves, as `barge get
/// webhooks` lists them from the definitions; a viewer may read it (the path does not reveal
/// the secret), a token of another project sees none of this one's, and without a token it
/// is refused. `barge get webhooks --server` prints it.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_lists_the_receivers_it_serves_to_readers() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs.yaml");
    std::fs::write(&defs, format!("{}{WAREHOUSES}", project_config())).unwrap();
    let config = config(dir.path(), "127.0.0.1:1");
    let daemon = start(dir.path(), &defs, &config, support::free_port()).await;
    let local = get_json(
        dir.path(),
        &[
            "get",
            "webhooks",
            defs.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(local.as_array().map(Vec::len), Some(Provider::ALL.len() - 1), "{local}");

    let served = get_json(dir.path(), &["get", "webhooks", "--server", &daemon.url]);
    assert_eq!(served, local);

    let token = |name: &str, args: &[&str]| {
        let created = get_json(dir.path(), &[&["token", "create", "--name", name][..], args].concat());
        created["token"].as_str().unwrap().to_string()
    };
    let get = |token: Option<String>, query: &'static str| {
        let mut r = reqwest::Client::new().get(format!("{}/api/v1/webhooks{query}", daemon.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let response = r.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let viewer = token("wall", &["--role", "viewer"]);
    let (status, body) = get(Some(viewer.clone()), "").await;
    assert_eq!((status, &body["items"]), (200, &local), "{body}");
    let (status, body) = get(Some(viewer), "?project=demo").await;
    assert_eq!((status, &body["items"]), (200, &local), "{body}");
    let elsewhere = token("other", &["--role", "viewer", "--project", "other"]);
    let (status, body) = get(Some(elsewhere), "?project=demo").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = get(None, "").await;
    assert_eq!(status, 401, "{body}");
    for p in Provider::ALL {
        assert!(!served.to_string().contains(&secret_of(p)), "no secret listed");
    }
}

/// A generic receiver (Kargo's `generic`) in project `demo` whose one action refreshes the
/// Warehouse the body names, and the Warehouses labelled with the query's `team` that
/// subscribe to the body's repository; only for a push to the action's `branch` parameter.
const GENERIC: &str = r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: demo}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: demo, namespace: demo}
spec:
  webhookReceivers:
    - name: generic-hook
      generic:
        secretRef: {name: generic}
        actions:
          - action: Refresh
            whenExpression: "request.header('x-event-type') == 'push' && request.body.ref == params.branch"
            parameters: {branch: refs/heads/main}
            targetSelectionCriteria:
              - kind: Warehouse
                name: "${{ request.body.warehouse }}"
              - kind: Warehouse
                labelSelector:
                  matchLabels: {team: "${{ request.params('team') }}"}
                indexSelector:
                  matchIndices:
                    - key: subscribedURLs
                      operator: Equals
                      value: "${{ normalizeGit(request.body.repository.url) }}"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: by-name, namespace: demo}
spec: {interval: 24h, subscriptions: [{git: {repoURL: http://127.0.0.1:1/acme/other}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: ui-configs, namespace: demo, labels: {team: ui}}
spec: {interval: 24h, subscriptions: [{git: {repoURL: http://127.0.0.1:1/acme/configs}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: ui-elsewhere, namespace: demo, labels: {team: ui}}
spec: {interval: 24h, subscriptions: [{git: {repoURL: http://127.0.0.1:1/acme/elsewhere}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: api-configs, namespace: demo, labels: {team: api}}
spec: {interval: 24h, subscriptions: [{git: {repoURL: http://127.0.0.1:1/acme/configs}}]}
"#;

/// Discovery passes per Warehouse of project `demo`, from `/metrics`.
async fn discoveries(daemon: &Daemon) -> std::collections::BTreeMap<String, u64> {
    let metrics = barge_testkit::metrics::scrape(&daemon.url, TOKEN).await;
    let mut passes = std::collections::BTreeMap::new();
    for sample in metrics.samples("barge_discoveries_total") {
        let warehouse = sample.label("warehouse").unwrap();
        *passes.entry(warehouse.to_string()).or_insert(0) += sample.value as u64;
    }
    passes
}

/// Polls `/metrics` until `done` holds for the discovery passes (30 s at most).
async fn discoveries_until(
    daemon: &Daemon,
    done: impl Fn(&std::collections::BTreeMap<String, u64>) -> bool,
) -> std::collections::BTreeMap<String, u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let passes = discoveries(daemon).await;
        if done(&passes) {
            return passes;
        }
        assert!(Instant::now() < deadline, "discoveries stayed at {passes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generic_receivers_action_refreshes_exactly_the_warehouses_it_selects_when_its_expression_holds() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("defs.yaml");
    std::fs::write(&defs, GENERIC).unwrap();
    let config = config(dir.path(), "127.0.0.1:1");
    let daemon = start(dir.path(), &defs, &config, support::free_port()).await;
    let path = listed_path(dir.path(), &defs, &config, Provider::Generic);
    // The URL is the authentication: Kargo's hash of project, name and secret.
    assert_eq!(
        path,
        receiver_path(
            "demo",
            Provider::Generic,
            "generic-hook",
            &[&secret_of(Provider::Generic)]
        )
    );
    let url = format!("{}{path}?team=ui", daemon.url);
    let all = ["api-configs", "by-name", "ui-configs", "ui-elsewhere"];
    // Each Warehouse's first pass, at start.
    let before = discoveries_until(&daemon, |p| all.iter().all(|w| p.get(*w).is_some_and(|n| *n >= 1))).await;

    let push = json!({
        "ref": "refs/heads/main",
        "warehouse": "by-name",
        "repository": {"url": "http://127.0.0.1:1/acme/configs.git"},
    });
    let push = serde_json::to_vec(&push).unwrap();
    let event = |kind: &str| vec![("X-Event-Type", kind.to_string())];

    // The expression does not hold (another event): 200, nothing selected.
    let (status, answer) = post(&url, &event("ping"), push.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let result = &answer["results"][0];
    assert_eq!(result["result"], "NotApplicable", "{answer}");
    assert_eq!(result["matchedWhenExpression"], false);
    assert_eq!(result["summary"], "Request did not match whenExpression");
    assert!(result.get("selectedTargets").is_none(), "{answer}");

    // Malformed JSON: 400, nothing run.
    let (status, answer) = post(&url, &event("push"), b"{\"ref\": ".to_vec()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().starts_with("invalid request body"),
        "{answer}"
    );

    // The URL made with another secret names no receiver: 404, as Kargo answers.
    let forged = receiver_path("demo", Provider::Generic, "generic-hook", &["not-the-secret"]);
    let (status, _) = post(&format!("{}{forged}", daemon.url), &event("push"), push.clone()).await;
    assert_eq!(status, 404);

    // The expression holds: the Warehouse named in the body, and the `ui` one subscribed to
    // the pushed repository (not the `ui` one elsewhere, nor the `api` one subscribed to it).
    let (status, answer) = post(&url, &event("push"), push.clone()).await;
    assert_eq!(status, 202, "{answer}");
    let result = &answer["results"][0];
    assert_eq!(result["result"], "Success", "{answer}");
    assert_eq!(result["matchedWhenExpression"], true);
    assert_eq!(result["summary"], "Refreshed 2 of 2 selected resources");
    assert_eq!(
        result["selectedTargets"],
        json!([
            {"namespace": "demo", "name": "by-name", "success": true},
            {"namespace": "demo", "name": "ui-configs", "success": true},
        ])
    );
    // They are discovered again; the others are not.
    let after = discoveries_until(&daemon, |p| {
        ["by-name", "ui-configs"].iter().all(|w| p[*w] > before[*w])
    })
    .await;
    for w in ["api-configs", "ui-elsewhere"] {
        assert_eq!(after[w], before[w], "{w} was refreshed: {after:?}");
    }
    drop(daemon);
}

#[test]
fn generic_actions_barge_cannot_run_are_reported_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("bad.yaml");
    std::fs::write(
        &defs,
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: demo, namespace: demo}
spec:
  webhookReceivers:
    - name: none
      generic: {secretRef: {name: hook}}
    - name: hook
      generic:
        secretRef: {name: hook}
        actions:
          - action: Restart
            whenExpression: "request.body.x =="
            targetSelectionCriteria:
              - kind: Promotion
                name: "${{ request.body.promotion }}"
              - kind: Warehouse
              - kind: Warehouse
                labelSelector:
                  matchExpressions: [{key: team, operator: Like, values: [ui]}]
                indexSelector:
                  matchIndices:
                    - {key: receiverPaths, operator: Equal, value: x}
          - action: Refresh
"#,
    )
    .unwrap();
    let report = support::validate_json(&[&defs]);
    let found: Vec<(String, u64, u64, String)> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let at: Vec<(&str, u64, u64)> = found.iter().map(|(c, l, col, _)| (c.as_str(), *l, *col)).collect();
    assert_eq!(
        at,
        [
            ("missing-field", 7, 16),  // no actions
            ("invalid-value", 12, 21), // action Restart
            ("invalid-expression", 13, 29),
            ("invalid-value", 15, 23), // kind Promotion
            ("missing-field", 17, 17), // selects by nothing
            ("invalid-value", 20, 60), // label operator Like
            ("invalid-value", 23, 29), // index receiverPaths
            ("invalid-value", 23, 54), // index operator Equal
            ("missing-field", 24, 13), // no targetSelectionCriteria
        ],
        "{report}"
    );
    let messages: Vec<&str> = found.iter().map(|(.., m)| m.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("barge cannot refresh Promotions")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("barge cannot select Warehouses by the receiverPaths index")),
        "{messages:?}"
    );
}

/// The test forge's token.
const FORGE_TOKEN: &str = "forge-t0ken";

/// Project `demo`: a receiver `forge` of the forge's provider (RECEIVER_KEY), a Warehouse on
/// the test registry's `demo/app` and a Stage `dev`, auto-promoted, whose promotion pushes a
/// branch, opens a PR on the forge (PR_PROVIDER, the repository CONFIG_REPO on it) and waits
/// for it to be merged. REGISTRY is the registry's host.
const PR_PIPELINE: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: demo}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {name: demo, namespace: demo}
spec:
  promotionPolicies:
    - stageSelector: {name: dev}
      autoPromotionEnabled: true
  webhookReceivers:
    - name: forge
      RECEIVER_KEY: {secretRef: {name: RECEIVER_KEY}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: demo}
spec:
  interval: 24h
  subscriptions:
    - image: {repoURL: REGISTRY/demo/app, constraint: ^1.0.0}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: demo}
spec:
  vars:
    - {name: repo, value: "https://forge.example.com/CONFIG_REPO.git"}
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
          config: {path: ./src/env/dev, images: [{image: REGISTRY/demo/app}]}
        - uses: git-commit
          config: {path: ./src, message: "dev: ${{ imageFrom('REGISTRY/demo/app').Tag }}"}
        - uses: git-push
          as: push
          config: {path: ./src, generateTargetBranch: true}
        - uses: git-open-pr
          as: open-pr
          config:
            repoURL: ${{ vars.repo }}
            provider: PR_PROVIDER
            sourceBranch: ${{ outputs.push.branch }}
            targetBranch: main
        - uses: git-wait-for-pr
          as: wait
          config: {repoURL: "${{ vars.repo }}", provider: PR_PROVIDER, prNumber: "${{ outputs['open-pr'].pr.id }}"}
"#;

/// The dev promotion, as `barge get promotions` reports it (None before there is one).
fn dev_promotion(dir: &Path) -> Option<Value> {
    get_json(dir, &["get", "promotions", "--stage", "dev"])
        .as_array()
        .and_then(|l| l.first().cloned())
}

/// For a forge flavor: the webhook receiver's provider, the PR steps' `provider:`, and the
/// path on the forge of its repository `name` (Azure DevOps: `org/project/_git/name`).
fn forge_flavor(flavor: Flavor, name: &str) -> (Provider, &'static str, String) {
    match flavor {
        Flavor::GitHub => (Provider::GitHub, "github", format!("acme/{name}")),
        Flavor::GitLab => (Provider::GitLab, "gitlab", format!("acme/{name}")),
        Flavor::Gitea => (Provider::Gitea, "gitea", format!("acme/{name}")),
        Flavor::AzureDevOps => (Provider::Azure, "azure", format!("acme/shop/_git/{name}")),
        Flavor::Bitbucket => (Provider::Bitbucket, "bitbucket", format!("acme/{name}")),
    }
}

/// Issue #18: a promotion waiting in git-wait-for-pr (its poll an hour away) goes on as soon
/// as the GitHub receiver of `barge serve` gets the signed `pull_request` closed delivery for
/// its PR; deliveries about another PR or another repository, and unsigned or forged ones,
/// leave it waiting.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_pull_request_closed_delivery_wakes_the_promotion_waiting_for_that_pr() {
    a_merged_pr_delivery_wakes_the_waiting_promotion(Flavor::GitHub).await;
}

/// GitLab's merge request hook (`object_kind: merge_request`, action `merge`), with the
/// receiver's secret in `X-Gitlab-Token`.
#[tokio::test(flavor = "multi_thread")]
async fn a_gitlab_merge_request_merge_delivery_wakes_the_promotion_waiting_for_that_mr() {
    a_merged_pr_delivery_wakes_the_waiting_promotion(Flavor::GitLab).await;
}

/// Gitea's `pull_request` event (action `closed`), signed as Gitea signs
/// (`X-Gitea-Signature`, `X-Gogs-Signature`, `X-Hub-Signature-256`).
#[tokio::test(flavor = "multi_thread")]
async fn a_gitea_pull_request_closed_delivery_wakes_the_promotion_waiting_for_that_pr() {
    a_merged_pr_delivery_wakes_the_waiting_promotion(Flavor::Gitea).await;
}

/// Bitbucket Cloud's `pullrequest:fulfilled`, signed in `X-Hub-Signature`.
#[tokio::test(flavor = "multi_thread")]
async fn a_bitbucket_pullrequest_fulfilled_delivery_wakes_the_promotion_waiting_for_that_pr() {
    a_merged_pr_delivery_wakes_the_waiting_promotion(Flavor::Bitbucket).await;
}

/// Azure DevOps' `git.pullrequest.merged` service hook to an `azure` receiver (the secret in
/// its URL; `remoteUrl` names the organisation as its user, the API's web URL does not).
#[tokio::test(flavor = "multi_thread")]
async fn an_azure_devops_pullrequest_merged_delivery_wakes_the_promotion_waiting_for_that_pr() {
    a_merged_pr_delivery_wakes_the_waiting_promotion(Flavor::AzureDevOps).await;
}

/// The scaffold of the tests above, for one forge flavor: the promotion opens PR #1 on the
/// test forge and waits; a reviewer merges it, and another PR of the repository and one of
/// another repository; deliveries about those two wake nothing, unsigned and forged ones are
/// refused, and the authentic one about PR #1 makes the step check again at once, so the
/// promotion succeeds long before the hour's poll.
async fn a_merged_pr_delivery_wakes_the_waiting_promotion(flavor: Flavor) {
    let (provider, pr_provider, repo) = forge_flavor(flavor, "config");
    let (_, _, other_repo) = forge_flavor(flavor, "other");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("forge");
    std::fs::create_dir_all(&root).unwrap();
    let forge = TestForge::start(&root, FORGE_TOKEN).await;
    let overlay = "images:\n  - name: app\n    newTag: 0.9.0\n";
    let bare = forge.create_repo(&repo, &[("env/dev/kustomization.yaml", overlay)]);
    let other_bare = forge.create_repo(&other_repo, &[("README.md", "other\n")]);
    let git = support::GitDaemon::start(&root);
    let reg = TestRegistry::start(None).await;
    reg.push_image("demo/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;

    let defs = dir.path().join("defs.yaml");
    std::fs::write(
        &defs,
        PR_PIPELINE
            .replace("REGISTRY", &reg.host)
            .replace("RECEIVER_KEY", provider.key())
            .replace("PR_PROVIDER", pr_provider)
            .replace("CONFIG_REPO", &repo),
    )
    .unwrap();
    let config = dir.path().join("barge.yaml");
    // Bitbucket's API wants the account beside the token; the others ignore the user name.
    std::fs::write(
        &config,
        format!(
            "registries: {{plainHTTP: [{reg}]}}\n\
             rewrites:\n  - {{from: https://forge.example.com/, to: git://127.0.0.1:{git}/}}\n\
             git:\n  credentials:\n    - {{prefix: https://forge.example.com/, username: {account}, passwordFrom: {{env: FORGE_TOKEN}}}}\n  \
             prAPIs:\n    - {{prefix: https://forge.example.com/, url: {api}}}\n\
             secrets:\n  {p}:\n    {key}: {{env: HOOK_{upper}}}\n",
            reg = reg.host,
            git = git.port,
            account = barge_testkit::forge::ACCOUNT,
            api = forge.api(flavor),
            p = provider.key(),
            key = provider.secret_key(),
            upper = provider.key().to_uppercase(),
        ),
    )
    .unwrap();
    // Steps poll once an hour: only the delivery can explain a prompt re-check.
    let daemon = start_with(
        dir.path(),
        &defs,
        &config,
        support::free_port(),
        &[("BARGE_POLL_INTERVAL", "1h"), ("FORGE_TOKEN", FORGE_TOKEN)],
    )
    .await;
    let log = || std::fs::read_to_string(&daemon.log).unwrap_or_default();
    // How often the forge was asked for PR #1 (git-wait-for-pr's check).
    let checks = || {
        let call = format!("GET {}", forge.pr_path(flavor, &repo, 1));
        forge.calls().iter().filter(|c| **c == call).count()
    };

    // The promotion opened PR #1 and git-wait-for-pr found it open.
    let deadline = Instant::now() + Duration::from_secs(120);
    while checks() == 0 {
        assert!(
            Instant::now() < deadline,
            "the promotion never checked its PR; forge calls {:?}\n{}",
            forge.calls(),
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pr = &forge.prs(&repo)[0];
    assert_eq!((pr.number, pr.state, &pr.target[..]), (1, "open", "main"));
    let waiting = dev_promotion(dir.path()).expect("a dev promotion");
    assert_eq!(waiting["status"]["phase"], "Running", "{waiting}");

    // A reviewer merges it on the forge: only a re-check can see that now.
    let merger = forge.clone();
    let merged_repo = repo.clone();
    tokio::task::spawn_blocking(move || merger.merge(&merged_repo, 1))
        .await
        .unwrap();
    // The same number in another repository, and another PR of this one, merged too.
    git_kit::git(&other_bare, &["branch", "fix", "main"]);
    let other_repo_pr = forge.open_pr(&other_repo, "fix", "main", "fix");
    git_kit::git(&bare, &["branch", "docs", "main"]);
    let other_pr = forge.open_pr(&repo, "docs", "main", "docs");
    assert_eq!((other_repo_pr, other_pr), (1, 2));
    let merger = forge.clone();
    let (a, b) = (other_repo.clone(), repo.clone());
    tokio::task::spawn_blocking(move || {
        merger.merge(&a, 1);
        merger.merge(&b, 2);
    })
    .await
    .unwrap();

    let secret = secret_of(provider);
    let url = format!("{}{}", daemon.url, receiver_path("demo", provider, "forge", &[&secret]));

    // Authentic deliveries about another repository's PR #1 and this repository's PR #2.
    for (r, number, id) in [(&other_repo, 1, "d-other-repo"), (&repo, 2, "d-other-pr")] {
        assert!(forge.prs(r)[number as usize - 1].merged);
        let (headers, body) = forge.pull_request_delivery(flavor, r, number, id, Some(&secret));
        let (status, answer) = post(&url, &headers, body).await;
        assert_eq!(status, 200, "{r}#{number}: {answer}");
        assert_eq!(answer["woken"], 0, "{r}#{number}: {answer}");
    }
    // The right PR's delivery, unauthenticated: refused.
    if flavor == Flavor::AzureDevOps {
        // Azure DevOps signs nothing: the secret is in the URL, and one made with another
        // secret is no receiver's.
        let forged = format!(
            "{}{}",
            daemon.url,
            receiver_path("demo", provider, "forge", &["not-the-secret"])
        );
        let (headers, body) = forge.pull_request_delivery(flavor, &repo, 1, "d-forged", None);
        let (status, answer) = post(&forged, &headers, body).await;
        assert_eq!(status, 404, "{answer}");
    } else {
        for (id, secret) in [("d-unsigned", None), ("d-forged", Some("not-the-secret"))] {
            let (headers, body) = forge.pull_request_delivery(flavor, &repo, 1, id, secret);
            let (status, answer) = post(&url, &headers, body).await;
            assert_eq!(status, 401, "{id}: {answer}");
        }
    }
    // None of them made the step look again: it still waits, having checked once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(checks(), 1, "{:?}", forge.calls());
    let still = dev_promotion(dir.path()).unwrap();
    assert_eq!(still["status"]["phase"], "Running", "{still}");

    // The authentic delivery for its PR (merged): the step checks again at once and the
    // promotion succeeds, long before the hour's poll.
    let (headers, body) = forge.pull_request_delivery(flavor, &repo, 1, "d-merged", Some(&secret));
    let sent = Instant::now();
    let (status, answer) = post(&url, &headers, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["woken"], 1, "{answer}");
    let done = loop {
        let p = dev_promotion(dir.path()).unwrap();
        if p["status"]["phase"] != "Running" {
            break p;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(60),
            "the woken promotion did not finish: {p}\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["status"]["phase"], "Succeeded", "{done}\n{}", log());
    assert_eq!(checks(), 2, "one check more, the woken one");
    // The PR's merge put the tag on main, and the Freight is in dev.
    let merged = git_kit::git(&bare, &["show", "main:env/dev/kustomization.yaml"]);
    assert!(merged.contains("newTag: 1.0.0"), "{merged}");
    let stage = get_json(dir.path(), &["get", "stage", "dev"]);
    assert_eq!(
        stage["status"]["lastPromotion"]["name"], done["metadata"]["name"],
        "{stage}"
    );
    assert_eq!(stage["status"]["barge"]["requests"][0]["state"], "UpToDate", "{stage}");
}
