//! Step options against real git repositories and a loopback HTTP server: each test shows the
//! option's effect (sparse checkouts, force pushes, delete globs, http's error, content-type,
//! body-file, poll and proxy options).

use barge_testkit::git as git_kit;
mod support;

use barge_core::promotion::{Phase, State};
use barge_promote::{BoxFuture, Engine, Event, Events, Journal, Outcome, Promotion};
use git_kit::git;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A bare repository whose main holds two stages, a base and a README at the top.
fn seed(root: &Path) -> PathBuf {
    git_kit::bare_repo(
        root,
        "config.git",
        &[
            ("README.md", "config\n"),
            ("stages/dev/values.yaml", "tag: '1.9'\n"),
            ("stages/prod/values.yaml", "tag: '1.8'\n"),
            ("base/deploy.yaml", "kind: Deployment\n"),
        ],
    )
}

fn engine(root: &Path) -> Engine {
    support::engine(
        root,
        vec![support::rewrite_to_dir("https://git.example.com/acme/", root)],
    )
}

fn promotion(steps: &str) -> Promotion {
    support::plan(
        &support::dev_stage(steps),
        "dev",
        support::image_freight("ghcr.io/acme/app", "1.10"),
    )
}

/// Events that record, when a step finishes, the files then in the promotion's work directory
/// (relative paths, `.git` left out), by step alias.
struct Snapshots {
    work: PathBuf,
    files: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Snapshots {
    fn new(engine: &Engine, p: &Promotion) -> Snapshots {
        Snapshots {
            work: engine.work_dir(&p.name),
            files: Mutex::new(BTreeMap::new()),
        }
    }

    fn after(&self, alias: &str) -> Vec<String> {
        self.files.lock().unwrap().get(alias).cloned().unwrap_or_default()
    }
}

fn list(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        if path.is_dir() {
            list(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

impl Events for Snapshots {
    fn event<'a>(&'a self, e: &'a Event) -> BoxFuture<'a, ()> {
        if let Event::StepFinished { alias, .. } = e {
            let mut files = Vec::new();
            list(&self.work, &self.work, &mut files);
            files.sort();
            self.files.lock().unwrap().insert(alias.clone(), files);
        }
        Box::pin(async {})
    }
}

impl Journal for Snapshots {
    fn save<'a>(&'a self, _s: &'a State, _p: Phase, _m: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// Runs promotion `p` from its start on `e`, and what its steps left in the work directory.
async fn run(e: &Engine, p: &Promotion) -> (Outcome, Snapshots) {
    let seen = Snapshots::new(e, p);
    let out = e.run(p, State::new(&p.steps), &seen, &seen).await;
    (out, seen)
}

const SPARSE: &str = r#"
        - uses: git-clone
          as: clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout:
              - branch: main
                path: ./repo
                sparse: [stages/dev]
        - uses: yaml-update
          config:
            path: ./repo/stages/dev/values.yaml
            updates: [{key: tag, value: "1.10"}]
        - uses: git-commit
          config: {path: ./repo, message: bump dev}
        - uses: git-push
          as: push
          config: {path: ./repo}
"#;

const FULL: &str = r#"
        - uses: git-clone
          as: clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout: [{branch: main, path: ./repo}]
"#;

#[tokio::test]
async fn a_sparse_checkout_holds_only_its_cone_and_commits_keep_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    let e = engine(dir.path());
    let p = promotion(SPARSE);
    let (out, seen) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    // Cone mode: the listed directory and the files at the top; nothing else.
    assert_eq!(
        seen.after("clone"),
        vec!["repo/README.md", "repo/stages/dev/values.yaml"]
    );
    // The commit changed the one file: what the checkout left out is still in the branch.
    assert_eq!(
        git(&bare, &["diff", "--name-status", "main~1", "main"]),
        "M\tstages/dev/values.yaml"
    );
    assert_eq!(git(&bare, &["ls-tree", "-r", "--name-only", "main"]).lines().count(), 4);
    // The sparse worktree is not handed to the next checkout: that one is whole.
    let p = promotion(FULL);
    let (out, seen) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        seen.after("clone"),
        vec![
            "repo/README.md",
            "repo/base/deploy.yaml",
            "repo/stages/dev/values.yaml",
            "repo/stages/prod/values.yaml"
        ]
    );
}

#[tokio::test]
async fn sparse_paths_that_are_globs_or_leave_the_repository_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let e = engine(dir.path());
    for (bad, why) in [("stages/*", "is a glob"), ("../x", "leaves the repository")] {
        let p = promotion(&SPARSE.replace("[stages/dev]", &format!("[\"{bad}\"]")));
        let (out, _) = run(&e, &p).await;
        assert_eq!(out.phase, Phase::Errored);
        assert!(out.message.contains(why), "{}", out.message);
    }
}

const FORCE: &str = r#"
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout: [{branch: main, path: ./repo}]
        - uses: file-write
          config: {path: ./repo/rendered.yaml, contents: "kind: ConfigMap\n"}
        - uses: git-commit
          config: {path: ./repo, message: render}
        - uses: git-push
          as: push
          config: {path: ./repo, targetBranch: rendered, force: true}
"#;

#[tokio::test]
async fn a_forced_push_overwrites_a_diverged_branch() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    // Someone else's history on the target branch, unrelated to main.
    let other = dir.path().join("other");
    git(
        dir.path(),
        &["clone", "-q", bare.to_str().unwrap(), other.to_str().unwrap()],
    );
    git(&other, &["checkout", "-q", "--orphan", "rendered"]);
    std::fs::write(other.join("theirs.txt"), "theirs\n").unwrap();
    git(&other, &["add", "theirs.txt"]);
    git(&other, &["commit", "-q", "-m", "theirs"]);
    git(&other, &["push", "-q", "origin", "rendered"]);
    let theirs = git(&other, &["rev-parse", "HEAD"]);
    let e = engine(dir.path());
    let p = promotion(FORCE);
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let pushed = out.state.outputs["push"]["commit"].as_str().unwrap().to_string();
    assert_eq!(git(&bare, &["rev-parse", "rendered"]), pushed);
    // Their commit is gone from the branch: it was overwritten, not rebased onto.
    assert_eq!(
        git(&bare, &["rev-parse", "rendered~1"]),
        git(&bare, &["rev-parse", "main"])
    );
    let ancestors = git(&bare, &["rev-list", "rendered"]);
    assert!(!ancestors.contains(&theirs), "{ancestors}");
    assert!(git(&bare, &["ls-tree", "--name-only", "rendered"]).contains("rendered.yaml"));
}

const GLOBS: &str = r#"
        - uses: file-write
          config: {path: ./out/a.yaml, contents: a}
        - uses: file-write
          config: {path: ./out/keep.json, contents: k}
        - uses: file-write
          config: {path: ./out/nested/b.yaml, contents: b}
        - uses: file-write
          config: {path: ./out/nested/keep.txt, contents: k}
        - uses: file-write
          config: {path: ./out/old-1/x.txt, contents: x}
        - uses: delete
          as: top
          config: {path: ./out/*.yaml, pathsAreGlobs: true}
        - uses: delete
          as: deep
          config: {paths: ["out/**/*.yaml", "out/old-?"], pathsAreGlobs: true}
        - uses: delete
          as: strict
          continueOnError: true
          config: {path: "out/*.toml", pathsAreGlobs: true, strict: true}
"#;

#[tokio::test]
async fn deleting_globs_removes_the_matching_paths_only() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let p = promotion(GLOBS);
    let (out, seen) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    // `*` stays within its directory.
    assert_eq!(
        seen.after("top"),
        vec![
            "out/keep.json",
            "out/nested/b.yaml",
            "out/nested/keep.txt",
            "out/old-1/x.txt"
        ]
    );
    // `**/` crosses directories; a matching directory goes whole.
    assert_eq!(seen.after("deep"), vec!["out/keep.json", "out/nested/keep.txt"]);
    // strict: a glob that matches nothing is an error.
    let strict = out.state.steps.iter().position(|s| s.status.is_failure()).unwrap();
    assert_eq!(p.steps[strict].alias, "strict");
    assert!(
        out.state.steps[strict].message.contains("no path matches"),
        "{}",
        out.state.steps[strict].message
    );
}

/// A loopback HTTP server for the http step: `/echo` answers the request body inside JSON,
/// `/quota` a 200 whose JSON says what went wrong, `/yaml` YAML labelled as bytes, `/poll`
/// `{"ready": true}` from its third request on (the request times are kept).
async fn http_server() -> (String, std::sync::Arc<Mutex<Vec<std::time::Instant>>>) {
    use axum::routing::{get, post};
    let polls = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen = polls.clone();
    let app = axum::Router::new()
        .route(
            "/echo",
            post(|body: String| async move { axum::Json(serde_json::json!({"got": body})) }),
        )
        .route(
            "/quota",
            get(|| async { axum::Json(serde_json::json!({"error": "quota exceeded"})) }),
        )
        .route(
            "/yaml",
            get(|| async { ([("content-type", "application/octet-stream")], "n: 3\nlist: [a, b]\n") }),
        )
        .route(
            "/poll",
            get(move || {
                let seen = seen.clone();
                async move {
                    let mut times = seen.lock().unwrap();
                    times.push(std::time::Instant::now());
                    axum::Json(serde_json::json!({"ready": times.len() >= 3}))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, polls)
}

#[tokio::test]
async fn http_error_expression_says_why_a_response_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = http_server().await;
    let e = engine(dir.path());
    let p = promotion(&format!(
        r#"
        - uses: http
          config:
            url: {base}/quota
            successExpression: response.body.error == nil
            failureExpression: response.body.error != nil
            errorExpression: response.body.error
"#
    ));
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Failed, "{}", out.message);
    assert!(
        out.state.steps[0]
            .message
            .ends_with("failureExpression is true (status 200): quota exceeded"),
        "{}",
        out.state.steps[0].message
    );
}

#[tokio::test]
async fn http_reads_the_body_as_the_given_content_type_and_sends_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = http_server().await;
    let e = engine(dir.path());
    let p = promotion(&format!(
        r#"
        - uses: file-write
          config: {{path: ./payload.json, contents: "{{\"release\": \"1.10\"}}"}}
        - uses: http
          as: sent
          config:
            method: POST
            url: {base}/echo
            bodyFromFile: ./payload.json
            outputs: [{{name: got, fromExpression: response.body.got}}]
        - uses: http
          as: yaml
          config:
            url: {base}/yaml
            responseContentType: application/yaml
            outputs: [{{name: n, fromExpression: response.body.n}}, {{name: second, fromExpression: "response.body.list[1]"}}]
"#
    ));
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(out.state.outputs["sent"]["got"], "{\"release\": \"1.10\"}");
    assert_eq!(out.state.outputs["yaml"]["n"], 3);
    assert_eq!(out.state.outputs["yaml"]["second"], "b");
}

#[tokio::test]
async fn http_polls_no_sooner_than_its_poll_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (base, polls) = http_server().await;
    let e = engine(dir.path());
    let p = promotion(&format!(
        r#"
        - uses: http
          config:
            url: {base}/poll
            successExpression: response.body.ready
            pollInterval: 300ms
"#
    ));
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let times = polls.lock().unwrap();
    assert_eq!(times.len(), 3);
    // The engine alone would poll every 20 ms.
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= std::time::Duration::from_millis(300),
            "{:?}",
            pair[1] - pair[0]
        );
    }
}

/// A loopback server whose `/private` answers `{"ok": true}` only to basic auth as
/// `user`/`password`, and 401 to anything else.
async fn private_server(user: &str, password: &str) -> String {
    let expected = barge_promote::http_client()
        .get("http://127.0.0.1/")
        .basic_auth(user, Some(password))
        .build()
        .unwrap()
        .headers()[reqwest::header::AUTHORIZATION]
        .clone();
    let app = axum::Router::new().route(
        "/private",
        axum::routing::get(move |headers: axum::http::HeaderMap| async move {
            if headers.get(reqwest::header::AUTHORIZATION) == Some(&expected) {
                (axum::http::StatusCode::OK, axum::Json(serde_json::json!({"ok": true})))
            } else {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"ok": false})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Loads `stage` as barge loads definitions (a URL in it written with `password`), and an
/// engine under `root` that sends the credentials the definitions wrote, with the dev Stage's
/// promotion planned from them. The password has left the loaded text and the plan.
fn loaded(root: &Path, stage: &str, password: &str) -> (Engine, Promotion) {
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text("test.yaml", stage);
    assert_eq!(catalog.errors(), 0, "{:?}", catalog.diagnostics);
    assert!(!catalog.texts["test.yaml"].contains(password));
    let freight = support::image_freight("ghcr.io/acme/app", "1.10");
    let p = Promotion::plan(&catalog, "shop", "dev", freight, Vec::new(), "alice").unwrap();
    assert!(!serde_json::to_string(&p.steps).unwrap().contains(password));
    let mut e = engine(root);
    let defined = catalog.url_credentials;
    e.request_credentials = std::sync::Arc::new(move |url| defined.for_request(url).cloned());
    (e, p)
}

#[tokio::test]
async fn http_and_http_download_send_the_credentials_their_url_was_written_with() {
    let dir = tempfile::tempdir().unwrap();
    let base = private_server("deployer", "d3ploy-pw").await;
    let written = base.replace("http://", "http://deployer:d3ploy-pw@");
    let stage = support::dev_stage(&format!(
        r#"
        - uses: http
          as: private
          config:
            url: {written}/private
            successExpression: response.status == 200
            failureExpression: response.status == 401
            outputs: [{{name: ok, fromExpression: response.body.ok}}]
        - uses: http-download
          config: {{url: "{written}/private", outPath: ./private.json}}
"#
    ));
    // Loaded as barge loads definitions: the password leaves the text and the plan.
    let (e, p) = loaded(dir.path(), &stage, "d3ploy-pw");
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(out.state.outputs["private"]["ok"], true);
    // http-download got its 200 too (a 401 fails it).
    assert_eq!(out.state.steps[1].status, barge_core::eval::StepStatus::Succeeded);

    // Without the loaded credentials (a promotion from stored definitions) the server refuses.
    let e = engine(&dir.path().join("again"));
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Failed, "{}", out.message);
    assert!(
        out.state.steps[0].message.contains("status 401"),
        "{}",
        out.state.steps[0].message
    );
}

/// Issue #20: http's `proxy`. The request goes through a real forward proxy (tinyproxy, which
/// logs what it forwards) with the proxy credentials the definitions wrote in its URL (taken
/// out of the text when loaded, as every URL's); without them the proxy refuses (407).
#[tokio::test]
async fn http_sends_its_request_through_the_proxy_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = http_server().await;
    let proxy = barge_testkit::proxy::ForwardProxy::start(dir.path(), Some(("pxuser", "px-secret-7")));
    let written = proxy.url().replace("http://", "http://pxuser:px-secret-7@");
    let stage = support::dev_stage(&format!(
        r#"
        - uses: http
          as: proxied
          config:
            url: {base}/quota
            proxy: {written}
            outputs: [{{name: got, fromExpression: response.body.error}}]
"#
    ));
    let (e, p) = loaded(dir.path(), &stage, "px-secret-7");
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(out.state.outputs["proxied"]["got"], "quota exceeded");
    assert_eq!(proxy.requests(), vec![format!("GET {base}/quota HTTP/1.1")]);

    // Without the proxy's credentials tinyproxy answers 407, and the step fails on it.
    let e = engine(&dir.path().join("again"));
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Errored, "{}", out.message);
    assert!(
        out.state.steps[0].message.contains("status 407"),
        "{}",
        out.state.steps[0].message
    );
    assert_eq!(proxy.requests().len(), 2, "the second request reached the proxy too");
}

/// http's `proxy` with a POST: the method, its body (rendered from an expression) and its
/// headers go through the forward proxy (tinyproxy) to the server, which answers the body back.
#[tokio::test]
async fn http_posts_its_body_through_the_proxy_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = http_server().await;
    let proxy = barge_testkit::proxy::ForwardProxy::start(dir.path(), None);
    let e = engine(dir.path());
    let p = promotion(&format!(
        r#"
        - uses: http
          as: posted
          config:
            method: POST
            url: {base}/echo
            proxy: {}
            headers: [{{name: Content-Type, value: application/json}}]
            body: '{{"tag": "${{{{ imageFrom("ghcr.io/acme/app").Tag }}}}"}}'
            outputs: [{{name: got, fromExpression: response.body.got}}]
"#,
        proxy.url()
    ));
    let (out, _) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    // The rendered body is JSON text, sent compact.
    assert_eq!(out.state.outputs["posted"]["got"], r#"{"tag":"1.10"}"#);
    assert_eq!(proxy.requests(), vec![format!("POST {base}/echo HTTP/1.1")]);
}

/// A proxy URL barge cannot use is a config error that says how to write it; a proxy that
/// does not answer is named in the error, never with its password.
#[tokio::test]
async fn http_refuses_a_bad_proxy_url_and_names_a_proxy_that_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = http_server().await;
    let down = barge_testkit::free_port();
    for (proxy, phase, want) in [
        (
            "not a proxy".to_string(),
            Phase::Errored,
            "http: proxy \"not a proxy\" is not a URL (relative URL without a base); write it as http://host:port".to_string(),
        ),
        (
            "socks5://127.0.0.1:1080".to_string(),
            Phase::Errored,
            "http: proxy \"socks5://127.0.0.1:1080\" is not an http:// or https:// proxy URL with a host (e.g. http://proxy.corp:3128)".to_string(),
        ),
        (
            format!("http://127.0.0.1:{down}"),
            Phase::Errored,
            format!("(through the proxy http://127.0.0.1:{down})"),
        ),
    ] {
        let e = engine(&dir.path().join(down.to_string()));
        let p = promotion(&format!(
            r#"
        - uses: http
          config: {{url: "{base}/quota", proxy: "{proxy}"}}
"#
        ));
        let (out, _) = run(&e, &p).await;
        assert_eq!(out.phase, phase, "{proxy}: {}", out.message);
        let message = &out.state.steps[0].message;
        assert!(message.contains(&want), "{proxy}: {message}");
    }
}

const TLS_TOKEN: &str = "tls-tok-81d2";

/// A config repository on git smart HTTPS (self-signed certificate, basic auth) whose main has a
/// submodule `vendor/lib`, itself a repository on the same server, and the server's base URL.
fn https_config_with_submodule(root: &Path) -> (PathBuf, String, git_kit::SmartHttp) {
    let git_root = root.join("git");
    std::fs::create_dir_all(&git_root).unwrap();
    let (server, port) = git_kit::smart_https(&git_root, "bot", TLS_TOKEN);
    let base = format!("https://127.0.0.1:{port}");
    let config = config_with_submodules(&git_root, &[("vendor/lib", &format!("{base}/lib.git"))]);
    git(&config, &["config", "http.receivepack", "true"]);
    // The server runs as root; git refuses repositories owned by others unless told.
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rwX", git_root.to_str().unwrap()])
        .status();
    (config, base, server)
}

/// git-clone's `insecureSkipTLSVerify` and `recurseSubmodules`, against a server whose
/// certificate git cannot verify: without the option the clone fails on the certificate; with
/// it the checkout, its submodule (fetched with the same credentials, as Kargo's) and the later
/// push all go through, while no git configuration file (the cache's, the user's) says so.
#[tokio::test]
async fn git_clone_skips_tls_verification_for_its_repository_and_initialises_submodules() {
    let dir = tempfile::tempdir().unwrap();
    let (config, base, _server) = https_config_with_submodule(dir.path());
    let steps = |options: &str| {
        format!(
            r#"
        - uses: git-clone
          as: clone
          config:
            repoURL: {base}/config.git
            checkout: [{{branch: main, path: ./repo}}]{options}
        - uses: yaml-update
          config: {{path: ./repo/values.yaml, updates: [{{key: tag, value: "1.10"}}]}}
        - uses: git-commit
          config: {{path: ./repo, message: promote}}
        - uses: git-push
          config: {{path: ./repo}}
"#
        )
    };
    let mut e = support::engine(dir.path(), Vec::new());
    let server = base.clone();
    e.credentials = std::sync::Arc::new(move |url| {
        url.starts_with(&server).then(|| barge_core::secret::Credentials {
            username: "bot".into(),
            password: TLS_TOKEN.into(),
        })
    });

    let p = promotion(&steps(""));
    let (out, _) = run(&e, &p).await;
    assert_ne!(out.phase, Phase::Succeeded);
    let said = &out.state.steps[0].message;
    assert!(said.to_lowercase().contains("certificate"), "{said}");

    let p = promotion(&steps(
        "\n            insecureSkipTLSVerify: true\n            recurseSubmodules: true",
    ));
    let (out, seen) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert!(
        seen.after("clone").contains(&"repo/vendor/lib/lib.txt".to_string()),
        "{:?}",
        seen.after("clone")
    );
    assert_eq!(git(&config, &["show", "main:values.yaml"]), "tag: '1.10'");
    // Only the commands said so: the setting is in no configuration file.
    let cache = dir.path().join("cache");
    let mut configs = git_kit::files_containing(&cache, "sslVerify");
    configs.extend(git_kit::files_containing(&cache, "sslverify"));
    assert!(configs.is_empty(), "{configs:?}");
    if let Some(home) = std::env::var_os("HOME") {
        let global = std::fs::read_to_string(Path::new(&home).join(".gitconfig")).unwrap_or_default();
        assert!(!global.to_lowercase().contains("sslverify"), "{global}");
    }
}

/// A bare repository `config.git` under `root` whose main has a submodule at each of
/// `modules` (path, URL as `.gitmodules` names it), each a gitlink to the head of `lib.git`
/// (also made under `root`, holding `lib.txt`).
fn config_with_submodules(root: &Path, modules: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(root).unwrap();
    let lib = git_kit::bare_repo(root, "lib.git", &[("lib.txt", "from the submodule\n")]);
    let lib_head = git(&lib, &["rev-parse", "main"]);
    let gitmodules: String = modules
        .iter()
        .map(|(path, url)| format!("[submodule \"{path}\"]\n\tpath = {path}\n\turl = {url}\n"))
        .collect();
    let config = git_kit::bare_repo(
        root,
        "config.git",
        &[("values.yaml", "tag: '1.0'\n"), (".gitmodules", &gitmodules)],
    );
    let seed = root.join("seed-config.git");
    for (path, _) in modules {
        git(
            &seed,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{lib_head},{path}"),
            ],
        );
    }
    git(&seed, &["commit", "-q", "-m", "add the submodules"]);
    git(&seed, &["push", "-q", config.to_str().unwrap(), "main"]);
    config
}

const CLONE_WITH_SUBMODULES: &str = r#"
        - uses: git-clone
          as: clone
          config:
            repoURL: https://git.example.invalid/acme/config.git
            checkout: [{branch: main, path: ./repo}]
            recurseSubmodules: true
"#;

/// A submodule named at its original server goes where the engine's rewrites send that
/// server, as the repository itself does (git's `insteadOf`): here everything under
/// `https://git.example.invalid/acme/` is on a local `git daemon`, and the config repository's
/// submodules name the original server, one by absolute URL, one relative to the repository.
/// Without the rewrite reaching the submodule update, git would look the original host up
/// (and fail: `.invalid` never resolves).
#[tokio::test]
async fn git_clone_fetches_submodules_through_the_engines_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("git");
    config_with_submodules(
        &served,
        &[
            ("vendor/abs", "https://git.example.invalid/acme/lib.git"),
            ("vendor/rel", "../lib.git"),
        ],
    );
    let daemon = git_kit::GitDaemon::start(&served);
    let rewrite = barge_core::rewrite::Rewrite {
        from: "https://git.example.invalid/acme/".into(),
        to: format!("git://127.0.0.1:{}/", daemon.port),
    };
    let e = support::engine(dir.path(), vec![rewrite]);
    let p = promotion(CLONE_WITH_SUBMODULES);
    let (out, seen) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let files = seen.after("clone");
    for sub in ["repo/vendor/abs/lib.txt", "repo/vendor/rel/lib.txt"] {
        assert!(files.contains(&sub.to_string()), "{sub} missing: {files:?}");
    }
}

/// A rewrite whose target begins with its own source (`git://HOST/` → `git://HOST/mirror/`): a
/// relative submodule URL resolves against the checkout's (already rewritten) remote, so the
/// rewrite must not apply to it a second time (`…/mirror/mirror/…`, which does not exist); an
/// absolute one naming the original server is rewritten once.
#[tokio::test]
async fn a_rewrite_into_its_own_prefix_is_applied_to_a_relative_submodule_once() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("git");
    std::fs::create_dir_all(&served).unwrap();
    let daemon = git_kit::GitDaemon::start(&served);
    let origin = format!("git://127.0.0.1:{}/", daemon.port);
    // Only the mirror exists: everything under the original prefix is served under mirror/.
    config_with_submodules(
        &served.join("mirror/acme"),
        &[
            ("vendor/rel", "../lib.git"),
            ("vendor/abs", &format!("{origin}acme/lib.git")),
        ],
    );
    let rewrite = barge_core::rewrite::Rewrite {
        from: origin.clone(),
        to: format!("{origin}mirror/"),
    };
    let e = support::engine(dir.path(), vec![rewrite]);
    let p = promotion(&CLONE_WITH_SUBMODULES.replace("https://git.example.invalid/", &origin));
    let seen = Snapshots::new(&e, &p);
    let out = e.run(&p, State::new(&p.steps), &seen, &seen).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let files = seen.after("clone");
    for sub in ["repo/vendor/rel/lib.txt", "repo/vendor/abs/lib.txt"] {
        assert!(files.contains(&sub.to_string()), "{sub} missing: {files:?}");
    }
}

/// recurseSubmodules with a config repository reached over `file://` (a rewrite to a local
/// directory): a submodule on a server is initialised; one at a `file://` URL (or a path, or
/// a relative URL that resolves to one) is refused as git refuses it by default since 2.38.1
/// (CVE-2022-39253: it could name another repository of barge's cache), and the error says so
/// and what to do instead of git's bare "transport 'file' not allowed".
#[tokio::test]
async fn recurse_submodules_from_a_file_url_repository_takes_served_submodules_and_refuses_local_ones() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let daemon = git_kit::GitDaemon::start(&served);
    let local = dir.path().join("local");
    let on_daemon = format!("git://127.0.0.1:{}/lib.git", daemon.port);
    config_with_submodules(&local, &[("vendor/lib", &on_daemon)]);
    // The daemon serves the submodule's repository; the local copy is not used.
    let lib = local.join("lib.git");
    git(&served, &["clone", "-q", "--bare", lib.to_str().unwrap(), "lib.git"]);
    std::fs::remove_dir_all(&lib).unwrap();
    let rewrite = support::rewrite_to_dir("https://git.example.invalid/acme/", &local);
    let e = support::engine(&dir.path().join("a"), vec![rewrite]);
    let p = promotion(CLONE_WITH_SUBMODULES);
    let (out, seen) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert!(
        seen.after("clone").contains(&"repo/vendor/lib/lib.txt".to_string()),
        "{:?}",
        seen.after("clone")
    );

    // Both name the repository beside the config repository, which exists.
    for (n, absolute) in [true, false].into_iter().enumerate() {
        let local = dir.path().join(format!("local-{n}"));
        let url = if absolute {
            format!("file://{}/lib.git", local.display())
        } else {
            "../lib.git".to_string()
        };
        config_with_submodules(&local, &[("vendor/lib", &url)]);
        let rewrite = support::rewrite_to_dir("https://git.example.invalid/acme/", &local);
        let e = support::engine(&dir.path().join(format!("b-{n}")), vec![rewrite]);
        let p = promotion(CLONE_WITH_SUBMODULES);
        let (out, _) = run(&e, &p).await;
        assert_eq!(out.phase, Phase::Errored, "{url}: {}", out.message);
        let said = &out.state.steps[0].message;
        assert!(
            said.contains("a submodule may not be a local path or file:// URL"),
            "{url}: {said}"
        );
    }
}

/// `blobless` asks for what barge's fetches are anyway: the cache is a partial clone (blobs are
/// fetched when a checkout needs them), and the checkout is whole.
#[tokio::test]
async fn a_blobless_clone_is_a_partial_clone_with_a_whole_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let bare = seed(dir.path());
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    let e = engine(dir.path());
    let p = promotion(&FULL.replace("checkout: [", "blobless: true\n            checkout: ["));
    let (out, seen) = run(&e, &p).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(seen.after("clone").len(), 4, "{:?}", seen.after("clone"));
    let cached = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "git"))
        .unwrap();
    assert_eq!(git(&cached, &["config", "remote.origin.promisor"]), "true");
    assert_eq!(
        git(&cached, &["config", "remote.origin.partialclonefilter"]),
        "blob:none"
    );
}

/// Issue #19: replicas keep their claims off the config repositories others push to, by the
/// repository a stored plan clones first (before it runs, so as the template spells it).
#[test]
fn a_stored_plan_names_the_config_repository_it_clones_first() {
    let p = promotion(
        r#"
        - uses: file-write
          config: {path: ./note, contents: "x"}
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/other.git
            checkout: [{branch: main, path: ./other}]
        - uses: git-push
          config: {path: ./src}
"#,
    );
    let stored = serde_json::to_value(&p).unwrap();
    assert_eq!(
        Promotion::config_repo_of(&stored),
        Some("https://git.example.com/acme/config.git")
    );
    let no_git = serde_json::to_value(promotion(
        r#"
        - uses: file-write
          config: {path: ./note, contents: "x"}
"#,
    ))
    .unwrap();
    assert_eq!(Promotion::config_repo_of(&no_git), None);
}
