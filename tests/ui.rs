//! The web UI in a real browser (chromium over WebDriver) on a real pipeline: a registry, a
//! git daemon with the config repository, `barge serve` with dev → staging → prod. A person
//! signs in with a token, sees the pipeline in promotion order, sees a new tag reach dev,
//! reads a promotion's steps, promotes to prod through the confirmation and finds their token
//! as the actor in the history; a viewer's promote button is disabled with the reason; a
//! POST without the CSRF token is refused. The run leaves screenshots in docs/ui/.

#[macro_use]
mod support;

use barge_testkit::browser::Browser;
use barge_testkit::browser::{Client, Locator};
use barge_testkit::registry::TestRegistry;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{GitDaemon, bare_repo, stderr};

const DEFINITIONS: &str = shop_definitions!(
    r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: prod, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [staging]}
  promotionTemplate: {spec: {steps: [{task: {name: update-overlay}}]}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: staging, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [dev]}
  promotionTemplate: {spec: {steps: [{task: {name: update-overlay}}]}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate: {spec: {steps: [{task: {name: update-overlay}}]}}
"#
);

const ADMIN: &str = "ui-test-admin-token";

struct Pipeline {
    dir: tempfile::TempDir,
    reg: TestRegistry,
    db: String,
    git_port: u16,
    defs: PathBuf,
    _git: GitDaemon,
}

impl Pipeline {
    async fn new() -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("git");
        let overlay = |stage: &str| format!("images:\n  - name: ghcr.io/acme/app\n    newTag: 0.9.0\n# {stage}\n");
        let files: Vec<(String, String)> = ["dev", "staging", "prod"]
            .iter()
            .map(|s| (format!("env/{s}/kustomization.yaml"), overlay(s)))
            .collect();
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        bare_repo(&root, "config.git", &files);
        let git = GitDaemon::start(&root);
        let defs = dir.path().join("shop.yaml");
        std::fs::write(&defs, DEFINITIONS).unwrap();
        Pipeline {
            db: format!("sqlite://{}/barge.db", dir.path().display()),
            git_port: git.port,
            reg: TestRegistry::start(None).await,
            defs,
            dir,
            _git: git,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = support::barge();
        c.args(args)
            .env("BARGE_DB", &self.db)
            .env("BARGE_WORK_DIR", self.dir.path().join("work"))
            .env("BARGE_POLL_INTERVAL", "200ms")
            .env_remove("BARGE_SERVER")
            .env_remove("BARGE_TOKEN_FILE")
            .env("BARGE_TOKEN", ADMIN);
        c
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.command(args).args(["-o", "json"]).output().unwrap();
        assert!(out.status.success(), "barge {args:?}: {}", stderr(&out));
        support::listed(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// A token of this server with `role`: its secret.
    fn token(&self, name: &str, role: &str) -> String {
        self.json(&["token", "create", "--name", name, "--role", role])["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn serve(&self) -> Serve {
        self.serve_with(&[])
    }

    /// `barge serve` with these flags too.
    fn serve_with(&self, extra: &[&str]) -> Serve {
        let port = support::free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = self.dir.path().join("serve.log");
        let child = self
            .command(&[
                "serve",
                self.defs.to_str().unwrap(),
                "--listen",
                &listen,
                "--rewrite",
                &format!("ghcr.io/acme/={}/acme/", self.reg.host),
                "--rewrite",
                &format!("https://git.example.com/acme/=git://127.0.0.1:{}/", self.git_port),
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let serve = Serve {
            child,
            url: format!("http://{listen}"),
        };
        wait_for("the daemon to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        serve
    }

    /// The alias of the Freight `stage` has now, if any.
    fn current(&self, stage: &str) -> Option<String> {
        let v = self.json(&["get", "stage", stage]);
        v["status"]["barge"]["requests"][0]["current"]["alias"]
            .as_str()
            .map(str::to_string)
    }

    fn alias_of(&self, tag: &str) -> Option<String> {
        let list = self.json(&["get", "freight"]);
        list.as_array()?
            .iter()
            .find(|f| f["images"][0]["tag"] == tag)
            .and_then(|f| f["alias"].as_str().map(str::to_string))
    }
}

struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

/// Waits for the page a click went to: its h1 starts with `want`.
async fn arrive(c: &Client, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h1 = match c.find(Locator::Css("h1")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if h1.starts_with(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never arrived at {want:?}; the page says {h1:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the page's script has its watch open (`#live[data-watching]`).
async fn wait_live(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.find(Locator::Css("#live[data-watching='yes']")).await.is_err() {
        assert!(Instant::now() < deadline, "the page never opened its watch");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reloads until the page's text contains `needle` (the page has no live update then).
async fn reload_until(c: &Client, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if text(c, "main").await.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "the page never showed {needle:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.refresh().await.unwrap();
    }
}

/// The accessibility basics of the page shown: one h1, headings that skip no level, every
/// button and form field named, and no status shown by colour alone (each carries a word).
async fn accessible(c: &Client) {
    let report = c
        .execute(
            r#"
            const problems = [];
            const h1 = document.querySelectorAll('h1').length;
            if (h1 !== 1) problems.push(h1 + ' h1 elements');
            let last = 0;
            for (const h of document.querySelectorAll('main h1, main h2, main h3, main h4')) {
              const level = +h.tagName[1];
              if (level > last + 1) problems.push('heading ' + h.tagName + ' "' + h.textContent + '" skips a level');
              last = level;
            }
            for (const b of document.querySelectorAll('button')) {
              if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push('a button without a name');
              if (b.disabled && !b.getAttribute('aria-describedby')) problems.push('disabled button "' + b.textContent + '" without a reason');
            }
            for (const f of document.querySelectorAll('input:not([type=hidden]), select')) {
              if (!(f.id && document.querySelector('label[for="' + f.id + '"]')) && !f.getAttribute('aria-label')) problems.push('field ' + f.name + ' without a label');
            }
            for (const s of document.querySelectorAll('.status')) {
              if (!/[A-Za-z]/.test(s.textContent)) problems.push('a status without a word');
            }
            return problems;
            "#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(report, Value::Array(vec![]), "on {}", c.current_url().await.unwrap());
}

fn docs_ui() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/ui");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path().starts_with("/sign-in"),
        "signed out goes to sign-in"
    );
    accessible(c).await;
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Css("form.signin button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Projects").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_watches_the_pipeline_and_promotes_to_prod() {
    let started = Instant::now();
    let fx = Pipeline::new().await;
    let alice = fx.token("alice", "promoter");
    let bob = fx.token("bob", "viewer");
    fx.reg
        .push_image("acme/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let serve = fx.serve();
    let first = loop {
        if let Some(a) = fx.alias_of("1.0.0") {
            break a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "1.0.0 was never discovered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    wait_for("1.0.0 in staging", Duration::from_secs(30), || {
        fx.current("staging").as_deref() == Some(&first)
    });

    let browser = Browser::start(1280, 900).await;
    let c = &browser.client;
    let base = &serve.url;
    sign_in(c, base, &alice).await;
    arrive(c, "Projects").await;
    assert!(text(c, "header .who").await.contains("token:alice"));
    accessible(c).await;

    // The pipeline graph, in promotion order, each Stage with its Freight.
    c.find(Locator::LinkText("shop")).await.unwrap().click().await.unwrap();
    arrive(c, "Project shop").await;
    assert_eq!(texts(c, "article.node.stage h3").await, ["dev", "staging", "prod"]);
    assert_eq!(texts(c, "article.node.warehouse h3").await, ["WAREHOUSE app"]);
    let dev_node = text(c, "article.node.stage[aria-label='Stage dev']").await;
    assert!(dev_node.contains(&first), "{dev_node}");
    let prod_node = text(c, "article.node.stage[aria-label='Stage prod']").await;
    assert!(
        prod_node.contains("manual") && prod_node.contains("app:"),
        "prod says why it waits: {prod_node}"
    );
    accessible(c).await;

    // A new tag: dev's Freight changes live, through the API's watch, without a reload (the
    // marker set on this page's window survives only if the page is not loaded again).
    wait_live(c).await;
    c.execute("window.notReloaded = true; return null;", vec![])
        .await
        .unwrap();
    fx.reg
        .push_image("acme/app", "1.1.0", "2026-01-02T00:00:00Z", "amd64")
        .await;
    let refresh = fx
        .command(&["refresh", "warehouse", "app"])
        .env("BARGE_SERVER", base)
        .output()
        .unwrap();
    assert!(refresh.status.success(), "{}", stderr(&refresh));
    let second = loop {
        if let Some(a) = fx.alias_of("1.1.0") {
            break a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "1.1.0 was never discovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dev = "article.node.stage[aria-label='Stage dev']";
    let deadline = Instant::now() + Duration::from_secs(20);
    while !text(c, dev).await.contains(&format!("Freight: {second}")) {
        assert!(Instant::now() < deadline, "dev never showed {second} live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let same_page = c.execute("return window.notReloaded === true;", vec![]).await.unwrap();
    assert_eq!(same_page, Value::Bool(true), "updated without a reload");
    wait_for("1.1.0 in staging", Duration::from_secs(30), || {
        fx.current("staging").as_deref() == Some(&second)
    });
    c.refresh().await.unwrap();
    let graph = c.find(Locator::Css(".graph-scroll")).await.unwrap();
    std::fs::write(docs_ui().join("pipeline.png"), graph.screenshot().await.unwrap()).unwrap();

    // dev's newest promotion and its steps.
    c.goto(&format!("{base}/projects/shop/stages/dev")).await.unwrap();
    accessible(c).await;
    c.find(Locator::Css("article.promotion h3 a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Promotion dev.").await;
    let steps = texts(c, "table.steps tbody tr").await;
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(steps.iter().all(|s| s.contains("Succeeded")), "{steps:?}");
    assert!(text(c, "dl.facts").await.contains("Pushed commit"));
    accessible(c).await;

    // A POST without the session's CSRF token is refused, and changes nothing.
    let refused = c
        .execute(
            "return fetch('/projects/shop/stages/prod/hold', {method: 'POST', body: new URLSearchParams({csrf: 'forged'})})\
               .then(r => r.text().then(t => [r.status, t]))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused[0], 403, "{refused}");
    assert!(refused[1].as_str().unwrap().contains("CSRF"), "{refused}");
    assert!(
        fx.json(&["get", "stage", "prod"])["status"]["autoPromotionHolds"]
            .as_object()
            .is_none_or(|h| h.is_empty())
    );

    // The session cookie reads the REST API (the page's watch uses it) but changes nothing:
    // a change needs the bearer token.
    let api_get = c
        .execute(
            "return fetch('/api/v1/projects/shop/stages').then(r => r.status)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(api_get, 200);
    let api_post = c
        .execute(
            "return fetch('/api/v1/projects/shop/stages/prod/hold', {method: 'POST'}).then(r => r.status)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(api_post, 401);

    // Promote 1.1.0 to prod through the confirmation.
    c.goto(&format!("{base}/projects/shop/stages/prod")).await.unwrap();
    let prod_freight = fx.json(&["get", "freight", &second])["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.find(Locator::Css(&format!("#freight option[value='{prod_freight}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Promote…']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, &format!("Promote {second} to prod?")).await;
    let diff = text(c, ".preview pre.diff").await;
    assert!(diff.contains("+    newTag: 1.1.0"), "the dry run's diff: {diff}");
    accessible(c).await;
    c.find(Locator::XPath("//button[normalize-space()='Confirm']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Promotion prod.").await;
    reload_until(c, "✔ Succeeded", Duration::from_secs(30)).await;
    assert_eq!(fx.current("prod").as_deref(), Some(second.as_str()));

    // Holding staging (through its confirmation) keeps the next tag out of it; promoting
    // that tag to prod, where only what staging verified may go, asks for approval instead.
    c.goto(&format!("{base}/projects/shop/stages/staging")).await.unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Hold…']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Hold staging?").await;
    c.find(Locator::XPath("//button[normalize-space()='Confirm']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Stage staging").await;
    assert!(text(c, "main").await.contains("⏸ by token:alice"));
    fx.reg
        .push_image("acme/app", "1.2.0", "2026-01-03T00:00:00Z", "amd64")
        .await;
    let refresh = fx
        .command(&["refresh", "warehouse", "app"])
        .env("BARGE_SERVER", base)
        .output()
        .unwrap();
    assert!(refresh.status.success(), "{}", stderr(&refresh));
    let third = loop {
        if let Some(a) = fx.alias_of("1.2.0") {
            break a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "1.2.0 was never discovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    c.goto(&format!("{base}/projects/shop/stages/prod/promote?freight={third}"))
        .await
        .unwrap();
    let notice = text(c, ".notice").await;
    assert!(
        notice.contains("needs approval first") && notice.contains("not available to Stage prod"),
        "{notice}"
    );
    accessible(c).await;
    c.find(Locator::XPath(&format!(
        "//button[normalize-space()='Approve {third} for prod']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    arrive(c, "Stage prod").await;
    c.goto(&format!("{base}/projects/shop/stages/prod/promote?freight={third}"))
        .await
        .unwrap();
    assert!(
        c.find(Locator::Css(".notice")).await.is_err(),
        "approved: it may be promoted now"
    );
    c.find(Locator::XPath("//button[normalize-space()='Confirm']"))
        .await
        .unwrap();
    assert_eq!(fx.current("staging").as_deref(), Some(second.as_str()), "held");

    // The history names the signed-in token as the actor.
    c.goto(&format!("{base}/projects/shop/stages/prod")).await.unwrap();
    let actors = texts(c, "table.history td.actor").await;
    assert!(actors.iter().any(|a| a == "token:alice"), "{actors:?}");
    std::fs::write(docs_ui().join("stage.png"), c.screenshot().await.unwrap()).unwrap();
    c.goto(&format!("{base}/projects/shop/freight")).await.unwrap();
    assert_eq!(
        texts(c, "ol.timeline li a.alias").await,
        [third.as_str(), &second, &first]
    );
    let rows = texts(c, "ol.timeline li").await;
    assert!(
        rows[0].contains("in dev") && rows[0].contains("approved for prod"),
        "{rows:?}"
    );
    assert!(
        rows[1].contains("in prod") && rows[1].contains("verified in staging"),
        "{rows:?}"
    );
    accessible(c).await;
    std::fs::write(docs_ui().join("freight-timeline.png"), c.screenshot().await.unwrap()).unwrap();

    // A viewer sees the actions disabled, with the reason.
    c.find(Locator::XPath("//button[normalize-space()='Sign out']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sign_in(c, base, &bob).await;
    c.goto(&format!("{base}/projects/shop/stages/prod")).await.unwrap();
    let promote = c
        .find(Locator::XPath("//button[normalize-space()='Promote…']"))
        .await
        .unwrap();
    assert_eq!(promote.attr("disabled").await.unwrap().as_deref(), Some("true"));
    let why = promote.attr("aria-describedby").await.unwrap().unwrap();
    let reason = text(c, &format!("#{why}")).await;
    assert!(reason.contains("viewer"), "{reason}");
    accessible(c).await;

    browser.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}

/// With `--oidc-issuer`, the sign-in page offers OIDC: the authorization-code flow with PKCE
/// against the test issuer signs the person in (the rules' role, `oidc:SUBJECT` as the
/// actor) with the same session cookie, whose actions keep their CSRF token; a callback
/// that this browser did not start, or one used already, signs nobody in.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_with_oidc_and_acts_as_their_subject() {
    use barge_testkit::oidc::TestIssuer;
    let fx = Pipeline::new().await;
    let issuer = TestIssuer::start("barge-ui", "dana", serde_json::json!({"groups": ["shop-devs"]}));
    let rules = fx.dir.path().join("oidc-rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - match: {groups: shop-devs}\n    role: promoter\n    project: shop\n",
    )
    .unwrap();
    let serve = fx.serve_with(&[
        "--oidc-issuer",
        &issuer.url,
        "--oidc-audience",
        "barge-ui",
        "--oidc-rules",
        rules.to_str().unwrap(),
    ]);
    let browser = Browser::start(1280, 900).await;
    let c = &browser.client;
    let base = &serve.url;

    // A callback this browser did not start signs nobody in.
    c.goto(&format!("{base}/sign-in/oidc/callback?code=code-1&state=forged"))
        .await
        .unwrap();
    assert!(text(c, "main").await.contains("not started in this browser"));

    c.goto(&format!("{base}/projects/shop")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/sign-in"));
    accessible(c).await;
    c.find(Locator::Css("a#oidc")).await.unwrap().click().await.unwrap();
    arrive(c, "Project shop").await;
    assert_eq!(issuer.issued(), 1, "one code exchanged for one ID token");
    let who = text(c, "header .who").await;
    assert!(who.contains("oidc:dana") && who.contains("promoter"), "{who}");

    // An action through its confirmation, as the subject.
    c.goto(&format!("{base}/projects/shop/stages/staging")).await.unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Hold…']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Hold staging?").await;
    c.find(Locator::XPath("//button[normalize-space()='Confirm']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Stage staging").await;
    assert!(text(c, "main").await.contains("⏸ by oidc:dana"));

    // Coming back to the callback again (its state cookie gone with the sign-in) signs
    // nobody in, and exchanges no code.
    let replay = c
        .execute(
            "return fetch('/sign-in/oidc/callback?code=code-1&state=x').then(r => r.status)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(replay, 403);
    assert_eq!(issuer.issued(), 1);
    browser.close().await;
}
