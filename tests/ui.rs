//! The web UI in a real browser (chromium over WebDriver) on a real pipeline: a registry, a
//! git daemon with the config repository, a web endpoint staging's verification measures,
//! `barge serve` with dev → staging → prod. A person signs in with a token, sees the projects'
//! health and the pipeline in promotion order (a layered graph, each Stage saying why it
//! waits), sees a new tag reach dev live, walks the graph with the keyboard, reads a
//! promotion's steps and outputs and staging's charted measurements with their condition,
//! promotes to prod through the confirmation with the dry run's diff, reads the Freight's
//! page, re-verifies, holds and releases staging, is offered approval for a Freight prod may
//! not take yet, and finds their token as the actor in the history; a viewer's buttons are
//! disabled with the reason; a POST without the CSRF token is refused. Every page passes the
//! accessibility basics (headings, names, statuses in words, contrast), fits a phone-sized
//! window, and follows a dark `prefers-color-scheme`. The run leaves screenshots in docs/ui/.

#[macro_use]
mod support;

use barge_testkit::browser::Browser;
use barge_testkit::browser::{Client, Key, Locator};
use barge_testkit::registry::TestRegistry;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{GitDaemon, HealthServer, bare_repo, health_server, stderr};

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
  verification:
    analysisTemplates: [{name: success-rate}]
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate, namespace: shop}
spec:
  metrics:
    - name: success-rate
      count: 2
      interval: 1s
      successCondition: result >= 0.95
      provider:
        web: {url: "WEB/rate.json", jsonPath: "{$.rate}"}
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
    /// What staging's verification measures: `rate.json`, a success rate of 0.99.
    _web: Option<HealthServer>,
    /// The owner in the definitions' image and git URLs, which `serve` rewrites to the local
    /// registry and git daemon.
    owner: &'static str,
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
        let web_dir = dir.path().join("web");
        std::fs::create_dir_all(&web_dir).unwrap();
        std::fs::write(web_dir.join("rate.json"), r#"{"rate": 0.99}"#).unwrap();
        let web_port = support::free_port();
        let web = health_server(&web_dir, web_port);
        let defs = dir.path().join("shop.yaml");
        std::fs::write(
            &defs,
            DEFINITIONS.replace("WEB/", &format!("http://127.0.0.1:{web_port}/")),
        )
        .unwrap();
        Pipeline {
            db: format!("sqlite://{}/barge.db", dir.path().display()),
            git_port: git.port,
            reg: TestRegistry::start(None).await,
            defs,
            dir,
            _git: git,
            _web: Some(web),
            owner: "acme",
        }
    }

    /// The bundled example: pipelines/, with its config repository laid out as stages/.
    async fn bundled() -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for stage in ["base", "dev", "staging", "prod"] {
            for entry in std::fs::read_dir(support::root().join("stages").join(stage)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                files.push((
                    format!("stages/{stage}/{name}"),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let root = dir.path().join("git");
        bare_repo(&root, "config.git", &files);
        let git = GitDaemon::start(&root);
        Pipeline {
            db: format!("sqlite://{}/barge.db", dir.path().display()),
            git_port: git.port,
            reg: TestRegistry::start(None).await,
            defs: support::root().join("pipelines"),
            dir,
            _git: git,
            _web: None,
            owner: "barge-demo",
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
                &format!("ghcr.io/{o}/={}/{o}/", self.reg.host, o = self.owner),
                "--rewrite",
                &format!(
                    "https://git.example.com/{}/=git://127.0.0.1:{}/",
                    self.owner, self.git_port
                ),
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

/// The rendered text of every element `css` matches, read in one script so that the page's
/// live update cannot replace an element between finding it and reading it.
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let all = c
        .execute(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => (e.innerText ?? e.textContent).trim());",
            vec![Value::String(css.into())],
        )
        .await
        .unwrap();
    serde_json::from_value(all).unwrap()
}

async fn text(c: &Client, css: &str) -> String {
    match texts(c, css).await.into_iter().next() {
        Some(t) => t,
        None => panic!("no {css} on {}", c.current_url().await.unwrap()),
    }
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
        let shown = text(c, "main").await;
        if shown.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "the page never showed {needle:?}: {shown}");
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
            // Status colours and the other coloured text keep WCAG AA contrast (4.5:1) against
            // what is behind them, in the colour scheme shown.
            const rgb = c => c.match(/[\d.]+/g).map(Number);
            const lum = c => c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
              .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
            const behind = e => {
              for (; e; e = e.parentElement) {
                const c = rgb(getComputedStyle(e).backgroundColor);
                if (c.length < 4 || c[3] > 0) return c;
              }
              return [255, 255, 255];
            };
            for (const s of document.querySelectorAll('.status, .why-pending, .why, .error, .muted, .badge')) {
              const a = lum(rgb(getComputedStyle(s).color)), b = lum(behind(s));
              const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
              if (ratio < 4.5) problems.push('"' + s.textContent + '" has contrast ' + ratio.toFixed(2));
            }
            return problems;
            "#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(report, Value::Array(vec![]), "on {}", c.current_url().await.unwrap());
}

/// Presses `key` on whatever has the focus, as a keyboard would.
async fn press(c: &Client, key: Key) {
    use barge_testkit::browser::actions::{InputSource, KeyAction, KeyActions};
    let k: char = key.into();
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: k })
        .then(KeyAction::Up { value: k });
    c.perform_actions(keys).await.unwrap();
}

/// The text of the element that has the focus.
async fn focused(c: &Client) -> String {
    c.active_element().await.unwrap().text().await.unwrap_or_default()
}

/// The page shown fits its window's width: nothing makes the whole page scroll sideways
/// (the pipeline graph scrolls inside its own box).
async fn fits(c: &Client) {
    let widths = c
        .execute(
            "const d = document.documentElement;
             const over = Array.from(document.querySelectorAll('main *'))
               .filter(e => e.getBoundingClientRect().right > d.clientWidth && !e.closest('.graph-scroll'))
               .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 40));
             return [d.scrollWidth, d.clientWidth, over];",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "{} is {widths} wide (page, window, what sticks out)",
        c.current_url().await.unwrap()
    );
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
    // The session cookie is out of the page's scripts' reach (HttpOnly).
    let cookies = c.execute("return document.cookie;", vec![]).await.unwrap();
    assert!(!cookies.as_str().unwrap().contains("barge_session"), "{cookies}");
    // The projects list: shop's three Stages, none unhealthy, failed or promoting now.
    let summary = texts(c, "table.list tbody tr td").await;
    assert_eq!(summary[..5], ["3", "0", "0", "0", "0"], "{summary:?}");
    accessible(c).await;

    // The pipeline graph, in promotion order, each Stage with its Freight.
    c.find(Locator::LinkText("shop")).await.unwrap().click().await.unwrap();
    arrive(c, "Project shop").await;
    assert_eq!(texts(c, "article.node.stage h3").await, ["dev", "staging", "prod"]);
    assert_eq!(texts(c, "article.node.warehouse h3").await, ["WAREHOUSE app"]);
    let dev_node = text(c, "article.node.stage[aria-label='Stage dev']").await;
    assert!(dev_node.contains(&first), "{dev_node}");
    let prod_node = text(c, "article.node.stage[aria-label='Stage prod']").await;
    let why = text(c, "article.node.stage[aria-label='Stage prod'] .why-pending").await;
    assert!(
        prod_node.contains("manual") && why.starts_with("app: ") && why.len() > "app: ".len() + 10,
        "prod says why it waits: {prod_node}"
    );
    // Warehouse -> dev -> staging -> prod: one arrow each, each node a layer further right.
    assert_eq!(texts(c, "svg.edges > path").await.len(), 3);
    let lefts = c
        .execute(
            "return ['Warehouse app', 'Stage dev', 'Stage staging', 'Stage prod'].map(n => document.querySelector(`article.node[aria-label='${n}']`).offsetLeft);",
            vec![],
        )
        .await
        .unwrap();
    let lefts: Vec<u64> = lefts.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(lefts.windows(2).all(|w| w[0] < w[1]), "{lefts:?}");
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

    // Keyboard only: the first Tab reaches "Skip to content", Enter on it skips the header,
    // and Tab walks the graph in promotion order to dev, which Enter opens.
    press(c, Key::Tab).await;
    assert_eq!(focused(c).await, "Skip to content");
    press(c, Key::Enter).await;
    let mut walked = Vec::new();
    while focused(c).await != "dev" {
        assert!(walked.len() < 10, "Tab never reached dev: {walked:?}");
        press(c, Key::Tab).await;
        walked.push(focused(c).await);
    }
    assert!(
        !walked.contains(&"Sign out".to_string()),
        "skipped the header: {walked:?}"
    );
    press(c, Key::Enter).await;
    arrive(c, "Stage dev").await;

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
    // Each step's outputs in its row: the commit git-commit made.
    assert!(steps.iter().any(|s| s.contains("commit=")), "{steps:?}");
    // A finished promotion has nothing to abort: its confirmation says so, with no button.
    let promotion = c.current_url().await.unwrap();
    c.goto(&format!("{promotion}/abort")).await.unwrap();
    arrive(c, "Abort promotion dev.").await;
    assert!(text(c, "main").await.contains("nothing to abort"));
    assert!(c.find(Locator::Css("main button")).await.is_err());
    c.goto(promotion.as_str()).await.unwrap();
    accessible(c).await;

    // staging's verification: each measurement of its metric charted, with its condition.
    c.goto(&format!("{base}/projects/shop/stages/staging")).await.unwrap();
    reload_until(c, &format!("✔ Succeeded for Freight {second}"), Duration::from_secs(30)).await;
    let metric = text(c, "article.metric").await;
    assert!(
        metric.contains("success-rate") && metric.contains("Succeeds when") && metric.contains("result >= 0.95"),
        "{metric}"
    );
    let chart = c
        .find(Locator::Css("article.metric svg.spark"))
        .await
        .unwrap()
        .attr("aria-label")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(chart, "success-rate measurements: 0.99, 0.99");
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

    // The Freight's own page: its image with digest and a link to its registry, where it is
    // and was verified.
    c.goto(&format!("{base}/projects/shop/freight/{prod_freight}"))
        .await
        .unwrap();
    arrive(c, &format!("Freight {second}")).await;
    let freight_page = text(c, "main").await;
    for needle in ["1.1.0", "sha256:", "In prod", "✔ Verified in staging"] {
        assert!(freight_page.contains(needle), "no {needle:?}: {freight_page}");
    }
    c.find(Locator::Css("a[href='https://ghcr.io/acme/app']"))
        .await
        .unwrap();
    accessible(c).await;

    // Promoting downstream says where it goes.
    c.goto(&format!(
        "{base}/projects/shop/stages/dev/promote-downstream?freight={prod_freight}"
    ))
    .await
    .unwrap();
    arrive(c, &format!("Promote {second} downstream of dev?")).await;
    assert_eq!(texts(c, "main strong.into").await, ["staging"]);
    accessible(c).await;

    // Re-verifying staging, through its confirmation, starts a run recorded as alice's.
    c.goto(&format!("{base}/projects/shop/stages/staging")).await.unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Re-verify…']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Verify staging again?").await;
    c.find(Locator::XPath("//button[normalize-space()='Confirm']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Stage staging").await;
    let rows = texts(c, "table.history tbody tr").await;
    assert!(
        rows.iter()
            .filter(|r| r.contains("verification.started"))
            .any(|r| r.contains("token:alice")),
        "{rows:?}"
    );

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

    // Releasing staging, through its confirmation.
    c.goto(&format!("{base}/projects/shop/stages/staging")).await.unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Release…']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Release staging?").await;
    c.find(Locator::XPath("//button[normalize-space()='Confirm']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "Stage staging").await;
    c.find(Locator::XPath("//button[normalize-space()='Hold…']"))
        .await
        .unwrap();
    // Released, staging takes 1.2.0 and verifies it: the open page follows the promotion and
    // then the verification to its end, without a reload.
    wait_live(c).await;
    c.execute("window.notReloaded = true; return null;", vec![])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let verified = format!("✔ Succeeded for Freight {third}");
    loop {
        let shown = text(c, "#verification + *").await;
        if shown.contains(&verified) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "staging's page never showed {verified:?} live: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let same_page = c.execute("return window.notReloaded === true;", vec![]).await.unwrap();
    assert_eq!(same_page, Value::Bool(true), "updated without a reload");

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
    // So are the Freight page's.
    c.goto(&format!("{base}/projects/shop/freight/{prod_freight}"))
        .await
        .unwrap();
    let promote = c
        .find(Locator::XPath("//button[normalize-space()='Promote to prod…']"))
        .await
        .unwrap();
    assert_eq!(promote.attr("disabled").await.unwrap().as_deref(), Some("true"));
    let why = promote.attr("aria-describedby").await.unwrap().unwrap();
    assert!(text(c, &format!("#{why}")).await.contains("viewer"));
    accessible(c).await;

    // In a phone-sized window every page still fits its width.
    c.set_window_size(390, 844).await.unwrap();
    for path in [
        "/".to_string(),
        "/projects/shop".into(),
        "/projects/shop/stages/staging".into(),
        "/projects/shop/freight".into(),
        format!("/projects/shop/freight/{prod_freight}"),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        fits(c).await;
    }
    c.set_window_size(1280, 900).await.unwrap();

    // A reader who prefers dark gets the dark scheme, with every status still readable.
    browser.prefer_color_scheme("dark").await;
    for path in ["/projects/shop", "/projects/shop/stages/staging"] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let background = c
            .execute("return getComputedStyle(document.body).backgroundColor;", vec![])
            .await
            .unwrap();
        assert_eq!(background, "rgb(13, 17, 23)", "{path}");
        accessible(c).await;
    }
    browser.prefer_color_scheme("light").await;
    c.refresh().await.unwrap();
    let background = c
        .execute("return getComputedStyle(document.body).backgroundColor;", vec![])
        .await
        .unwrap();
    assert_eq!(background, "rgb(255, 255, 255)");

    browser.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}

/// The bundled example (pipelines/ with the repository layout of stages/) as a person meets
/// it: dev, staging and prod in order; the first tag reaches dev, staging says it waits for
/// its soak time, and promoting that Freight to prod by hand asks for approval instead of
/// failing.
#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_example_says_why_staging_waits() {
    let fx = Pipeline::bundled().await;
    let admin = fx.token("admin", "admin");
    fx.reg
        .push_image("barge-demo/guestbook", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let serve = fx.serve();
    wait_for("1.0.0 discovered", Duration::from_secs(30), || {
        fx.alias_of("1.0.0").is_some()
    });
    let first = fx.alias_of("1.0.0").unwrap();
    wait_for("1.0.0 in dev", Duration::from_secs(30), || {
        fx.current("dev").as_deref() == Some(&first)
    });
    let browser = Browser::start(1280, 900).await;
    let c = &browser.client;
    let base = &serve.url;
    sign_in(c, base, &admin).await;
    c.goto(&format!("{base}/projects/demo")).await.unwrap();
    arrive(c, "Project demo").await;
    assert_eq!(texts(c, "article.node.stage h3").await, ["dev", "staging", "prod"]);
    assert_eq!(texts(c, "article.node.warehouse h3").await, ["WAREHOUSE guestbook"]);
    assert!(
        text(c, "article.node.stage[aria-label='Stage dev']")
            .await
            .contains(&format!("Freight: {first}"))
    );
    let staging = text(c, "article.node.stage[aria-label='Stage staging'] .why-pending").await;
    assert!(
        staging.contains("must soak in dev") && staging.contains("more"),
        "staging says why it waits: {staging}"
    );
    accessible(c).await;
    c.goto(&format!("{base}/projects/demo/stages/prod/promote?freight={first}"))
        .await
        .unwrap();
    let notice = text(c, ".notice").await;
    assert!(notice.contains("needs approval first"), "{notice}");
    c.find(Locator::XPath(&format!(
        "//button[normalize-space()='Approve {first} for prod']"
    )))
    .await
    .unwrap();
    accessible(c).await;
    browser.close().await;
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
