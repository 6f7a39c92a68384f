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
//! window, and follows a dark `prefers-color-scheme`. A multi-region pipeline (a fan-out to a
//! staging Stage per region, a fan-in to prod) is drawn in layers with an arrow per
//! upstream, its Stages' badges in words (health from Argo CD, auto-promotion or manual,
//! promotion windows, holds), and promoting downstream reaches both regions. A failed step's
//! error shows inline, and a running promotion is aborted through its confirmation while a
//! page left open on it follows. The run leaves screenshots in docs/ui/.

#[macro_use]
mod support;

use barge_testkit::browser::Browser;
use barge_testkit::browser::{Client, Key, Locator};
use barge_testkit::registry::TestRegistry;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{GitDaemon, HealthServer, Serve, bare_repo, health_server, stderr, wait_for};

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
        Pipeline::with(DEFINITIONS, &["dev", "staging", "prod"]).await
    }

    /// The project of `definitions` (`WEB/` in them is the web endpoint's address), with an
    /// overlay `env/<stage>` in the config repository for each of `overlays`.
    async fn with(definitions: &str, overlays: &[&str]) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("git");
        let overlay = |stage: &str| format!("images:\n  - name: ghcr.io/acme/app\n    newTag: 0.9.0\n# {stage}\n");
        let files: Vec<(String, String)> = overlays
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
            definitions.replace("WEB/", &format!("http://127.0.0.1:{web_port}/")),
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
        // A test API server's kubeconfig, when the test started one.
        let kubeconfig = self.dir.path().join("kubeconfig");
        if kubeconfig.exists() {
            c.env("KUBECONFIG", kubeconfig);
        }
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
        let serve = Serve::spawn(
            self.command(&[
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
            .args(extra),
            port,
            self.dir.path().join("serve.log"),
        );
        wait_for("the daemon to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        serve
    }

    /// Waits until `stage` has the Freight `alias`.
    fn wait_in(&self, stage: &str, alias: &str) {
        wait_for(&format!("{alias} in {stage}"), Duration::from_secs(30), || {
            self.current(stage).as_deref() == Some(alias)
        });
    }

    /// The alias of the Freight `stage` has now, if any.
    fn current(&self, stage: &str) -> Option<String> {
        let v = self.json(&["get", "stage", stage]);
        v["status"]["barge"]["requests"][0]["current"]["alias"]
            .as_str()
            .map(str::to_string)
    }

    /// Pushes ghcr.io/acme/app:`tag`, created on 2026-01-`day`.
    async fn push(&self, tag: &str, day: u32) {
        let created = format!("2026-01-{day:02}T00:00:00Z");
        self.reg.push_image("acme/app", tag, &created, "amd64").await;
    }

    /// The alias of the Freight of `tag`, once discovery has minted it.
    fn discovered(&self, tag: &str) -> String {
        let mut alias = None;
        wait_for(&format!("{tag} to be discovered"), Duration::from_secs(60), || {
            alias = self.alias_of(tag);
            alias.is_some()
        });
        alias.unwrap()
    }

    /// Asks the daemon at `server` to look for new tags now.
    fn refresh(&self, server: &str) {
        let out = self
            .command(&["refresh", "warehouse", "app"])
            .env("BARGE_SERVER", server)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }

    fn alias_of(&self, tag: &str) -> Option<String> {
        let list = self.json(&["get", "freight"]);
        list.as_array()?
            .iter()
            .find(|f| f["images"][0]["tag"] == tag)
            .and_then(|f| f["alias"].as_str().map(str::to_string))
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

/// Waits for the page a click went to: its h1 starts with `want`. Like the other waits here,
/// it returns as soon as the page is there; the 30 s are for chromium and a debug `barge
/// serve` sharing a loaded 2-core machine with another test's.
async fn arrive(c: &Client, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
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

/// Clicks the button whose text is `label`.
async fn click(c: &Client, label: &str) {
    click_on(c, Locator::XPath(&format!("//button[normalize-space()='{label}']"))).await;
}

/// Clicks what `at` finds. The page's live update may replace the element between finding
/// and clicking it (the element is stale then): it is found again.
async fn click_on(c: &Client, at: Locator<'_>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = match c.find(at).await {
            Ok(e) => e,
            Err(_) => panic!("no {at:?} on {}", c.current_url().await.unwrap()),
        };
        match found.click().await {
            Ok(()) => return,
            Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {}
            Err(e) => panic!("clicking {at:?}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A PNG of the element `css` finds, found again if the live update replaced it meanwhile.
async fn screenshot_of(c: &Client, css: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = c.find(Locator::Css(css)).await.unwrap();
        match found.screenshot().await {
            Ok(png) => return png,
            Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {}
            Err(e) => panic!("a screenshot of {css}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the button `label` and waits for the page it goes to, whose h1 starts with `want`
/// (an action's confirmation, or where confirming it leads).
async fn click_to(c: &Client, label: &str, want: &str) {
    click(c, label).await;
    arrive(c, want).await;
}

/// Waits, without reloading, until the text of the first element `css` matches contains
/// `needle` (the page's live update brings it); that text.
async fn wait_text(c: &Client, css: &str, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let shown = texts(c, css).await.into_iter().next().unwrap_or_default();
        if shown.contains(needle) {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never showed {needle:?} on {}: {shown}",
            c.current_url().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Marks the page shown, so that [`not_reloaded`] can tell it was updated in place: the mark
/// on its window survives only if the page is not loaded again. Waits for its watch first.
async fn mark_page(c: &Client) {
    wait_live(c).await;
    c.execute("window.notReloaded = true; return null;", vec![])
        .await
        .unwrap();
}

/// Asserts the page marked by [`mark_page`] is still the same page.
async fn not_reloaded(c: &Client) {
    let same_page = c.execute("return window.notReloaded === true;", vec![]).await.unwrap();
    assert_eq!(same_page, Value::Bool(true), "updated without a reload");
}

/// Waits until the page's script has its watch open (`#live[data-watching]`).
async fn wait_live(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
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

/// A browser signed in at `base` with `token`.
async fn signed_in(base: &str, token: &str) -> Browser {
    let browser = Browser::start(1280, 900).await;
    sign_in(&browser.client, base, token).await;
    browser
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
    click_on(c, Locator::Css("form.signin button")).await;
    arrive(c, "Projects").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_watches_the_pipeline_and_promotes_to_prod() {
    let fx = Pipeline::new().await;
    let alice = fx.token("alice", "promoter");
    let bob = fx.token("bob", "viewer");
    fx.push("1.0.0", 1).await;
    let serve = fx.serve();
    let first = fx.discovered("1.0.0");
    fx.wait_in("staging", &first);

    let base = &serve.url;
    let browser = signed_in(base, &alice).await;
    let c = &browser.client;
    assert!(text(c, "header .who").await.contains("token:alice"));
    // The session cookie is out of the page's scripts' reach (HttpOnly).
    let cookies = c.execute("return document.cookie;", vec![]).await.unwrap();
    assert!(!cookies.as_str().unwrap().contains("barge_session"), "{cookies}");
    // The projects list: shop's three Stages, none unhealthy, failed or promoting now.
    let summary = texts(c, "table.list tbody tr td").await;
    assert_eq!(summary[..5], ["3", "0", "0", "0", "0"], "{summary:?}");
    accessible(c).await;

    // The pipeline graph, in promotion order, each Stage with its Freight.
    click_on(c, Locator::LinkText("shop")).await;
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
    mark_page(c).await;
    fx.push("1.1.0", 2).await;
    fx.refresh(base);
    let second = fx.discovered("1.1.0");
    let dev = "article.node.stage[aria-label='Stage dev']";
    wait_text(c, dev, &format!("Freight: {second}"), Duration::from_secs(60)).await;
    not_reloaded(c).await;
    fx.wait_in("staging", &second);
    c.refresh().await.unwrap();
    std::fs::write(docs_ui().join("pipeline.png"), screenshot_of(c, ".graph-scroll").await).unwrap();

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
    click_on(c, Locator::Css("article.promotion h3 a")).await;
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
    click_on(c, Locator::Css(&format!("#freight option[value='{prod_freight}']"))).await;
    click_to(c, "Promote…", &format!("Promote {second} to prod?")).await;
    let diff = text(c, ".preview pre.diff").await;
    assert!(diff.contains("+    newTag: 1.1.0"), "the dry run's diff: {diff}");
    accessible(c).await;
    click_to(c, "Confirm", "Promotion prod.").await;
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
    click_to(c, "Re-verify…", "Verify staging again?").await;
    click_to(c, "Confirm", "Stage staging").await;
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
    click_to(c, "Hold…", "Hold staging?").await;
    click_to(c, "Confirm", "Stage staging").await;
    assert!(text(c, "main").await.contains("⏸ by token:alice"));
    fx.push("1.2.0", 3).await;
    fx.refresh(base);
    let third = fx.discovered("1.2.0");
    c.goto(&format!("{base}/projects/shop/stages/prod/promote?freight={third}"))
        .await
        .unwrap();
    let notice = text(c, ".notice").await;
    assert!(
        notice.contains("needs approval first") && notice.contains("not available to Stage prod"),
        "{notice}"
    );
    accessible(c).await;
    click_to(c, &format!("Approve {third} for prod"), "Stage prod").await;
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
    click_to(c, "Release…", "Release staging?").await;
    click_to(c, "Confirm", "Stage staging").await;
    c.find(Locator::XPath("//button[normalize-space()='Hold…']"))
        .await
        .unwrap();
    // Released, staging takes 1.2.0 and verifies it: the open page follows the promotion and
    // then the verification to its end, without a reload.
    mark_page(c).await;
    let verified = format!("✔ Succeeded for Freight {third}");
    wait_text(c, "#verification + *", &verified, Duration::from_secs(30)).await;
    not_reloaded(c).await;

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
    click(c, "Sign out").await;
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
    let first = fx.discovered("1.0.0");
    fx.wait_in("dev", &first);
    let base = &serve.url;
    let browser = signed_in(base, &admin).await;
    let c = &browser.client;
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
    click_on(c, Locator::Css("a#oidc")).await;
    arrive(c, "Project shop").await;
    assert_eq!(issuer.issued(), 1, "one code exchanged for one ID token");
    let who = text(c, "header .who").await;
    assert!(who.contains("oidc:dana") && who.contains("promoter"), "{who}");

    // An action through its confirmation, as the subject.
    c.goto(&format!("{base}/projects/shop/stages/staging")).await.unwrap();
    click_to(c, "Hold…", "Hold staging?").await;
    click_to(c, "Confirm", "Stage staging").await;
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

/// A multi-region pipeline as Kargo users build them: dev fans out to a staging Stage per
/// region, and prod takes Freight from either region (a fan-in). dev syncs an Argo CD
/// Application (its health), staging-eu has an Allow window open; prod, auto-promoted, has
/// one that is closed but for a minute a year, and a hold.
const MULTI_REGION: &str = shop_definitions!(
    config: r#"    - stageSelector: {name: prod}
      autoPromotionEnabled: true
  promotionWindows:
    - {name: eu-office-hours, kind: Allow, schedule: "* * * * *", duration: 2h, stageSelector: {name: staging-eu}}
    - {name: yearly-release, kind: Allow, schedule: "0 0 1 1 *", duration: 1m, stageSelector: {name: prod}}
"#,
    r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {direct: true}}]
  promotionTemplate: {spec: {steps: [{task: {name: update-overlay}}, {uses: argocd-update, config: {apps: [{name: web-dev}]}}]}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: staging-eu, namespace: shop}
spec: {requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {stages: [dev]}}], promotionTemplate: {spec: {steps: [{task: {name: update-overlay}}]}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: staging-us, namespace: shop}
spec: {requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {stages: [dev]}}], promotionTemplate: {spec: {steps: [{task: {name: update-overlay}}]}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: prod, namespace: shop}
spec:
  requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {stages: [staging-eu, staging-us]}}]
  promotionTemplate: {spec: {steps: [{task: {name: update-overlay}}]}}
"#
);

/// The pipeline page draws a fan-out and a fan-in in layers of promotion order, with an arrow
/// from each upstream to each downstream Stage, and each Stage's badges in words (health,
/// auto-promotion or manual, window open or closed and by what, held); promoting downstream
/// of dev names both regions, and both get the Freight.
#[tokio::test(flavor = "multi_thread")]
async fn a_multi_region_pipeline_fans_out_and_in_with_its_badges_and_promotes_downstream() {
    use barge_testkit::kube::apiserver::ApiServer;
    use barge_testkit::kube::controllers::{self, ArgoCdOptions};
    let fx = Pipeline::with(MULTI_REGION, &["dev", "staging-eu", "staging-us", "prod"]).await;
    // Argo CD: the Application dev's promotion syncs, Healthy once synced.
    let kube = ApiServer::start(Some("ui-kube-token")).await;
    kube.kubeconfig(fx.dir.path());
    kube.put("argoproj.io", "applications", serde_json::json!({
        "metadata": {"name": "web-dev", "namespace": "argocd", "annotations": {"kargo.akuity.io/authorized-stage": "shop:dev"}},
        "spec": {"source": {"repoURL": "https://git.example.com/acme/config.git", "targetRevision": "main", "path": "env/dev"}},
        "status": {"sync": {"status": "Synced", "revision": "seed"}, "health": {"status": "Healthy"}, "reconciledAt": "2026-01-01T00:00:00Z"}}));
    let _argocd = controllers::argocd(
        kube.clone(),
        ArgoCdOptions {
            stale_for: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let admin = fx.token("admin", "admin");
    fx.push("1.0.0", 1).await;
    let serve = fx.serve();
    let base = &serve.url;
    let first = fx.discovered("1.0.0");
    fx.wait_in("dev", &first);
    let hold = fx
        .command(&["hold", "stage", "prod"])
        .env("BARGE_SERVER", base)
        .output()
        .unwrap();
    assert!(hold.status.success(), "{}", stderr(&hold));

    let browser = signed_in(base, &admin).await;
    let c = &browser.client;
    c.goto(&format!("{base}/projects/shop")).await.unwrap();
    arrive(c, "Project shop").await;
    // dev's health comes from the Application its promotion synced.
    reload_until(c, "Health: ✔ Healthy", Duration::from_secs(30)).await;

    // Layers in promotion order: the regions share a column right of dev, one above the
    // other; prod is right of both.
    let boxes = c
        .execute(
            "const box = n => { const e = document.querySelector(`article.node[aria-label='${n}']`);
                                return e ? [e.offsetLeft, e.offsetTop] : null; };
             return ['Warehouse app', 'Stage dev', 'Stage staging-eu', 'Stage staging-us', 'Stage prod'].map(box);",
            vec![],
        )
        .await
        .unwrap();
    let at: Vec<(u64, u64)> = serde_json::from_value(boxes.clone()).unwrap_or_else(|_| panic!("{boxes}"));
    let [warehouse, dev, eu, us, prod] = at[..] else {
        panic!("{at:?}")
    };
    assert!(warehouse.0 < dev.0 && dev.0 < eu.0, "{at:?}");
    assert_eq!(eu.0, us.0, "the fan-out's branches share a layer: {at:?}");
    assert_ne!(eu.1, us.1, "one above the other: {at:?}");
    assert!(prod.0 > eu.0, "the fan-in is right of all its upstreams: {at:?}");
    // An arrow for each upstream → downstream pair, from the right edge of the one to the
    // left edge of the other.
    let arrows = c
        .execute(
            "const node = n => document.querySelector(`article.node[aria-label='${n}']`);
             return Array.from(document.querySelectorAll('svg.edges > path')).map(p => {
               const [from, to] = [node(p.dataset.from), node(p.dataset.to)];
               const d = p.getAttribute('d').match(/-?[\\d.]+/g).map(Number);
               const joins = !!from && !!to
                 && d[0] === from.offsetLeft + from.offsetWidth && d[1] === from.offsetTop + from.offsetHeight / 2
                 && d[d.length - 2] === to.offsetLeft && d[d.length - 1] === to.offsetTop + to.offsetHeight / 2;
               return p.dataset.from + ' -> ' + p.dataset.to + (joins ? '' : ' (not joining them)');
             });",
            vec![],
        )
        .await
        .unwrap();
    let mut arrows: Vec<String> = serde_json::from_value(arrows).unwrap();
    arrows.sort();
    assert_eq!(
        arrows,
        [
            "Stage dev -> Stage staging-eu",
            "Stage dev -> Stage staging-us",
            "Stage staging-eu -> Stage prod",
            "Stage staging-us -> Stage prod",
            "Warehouse app -> Stage dev",
        ]
    );

    // Each Stage's badges, in words.
    let node = |name: &str| format!("article.node.stage[aria-label='Stage {name}']");
    let badges = |name: &str| {
        let css = format!("{} .badge", node(name));
        async move { texts(c, &css).await }
    };
    let dev_node = text(c, &node("dev")).await;
    assert!(dev_node.contains("Health: ✔ Healthy"), "{dev_node}");
    assert_eq!(badges("dev").await, ["auto-promotion"]);
    assert_eq!(badges("staging-eu").await, ["manual", "window open"]);
    assert_eq!(badges("staging-us").await, ["manual"]);
    assert_eq!(
        badges("prod").await,
        ["auto-promotion", "⏸ held", "window closed: yearly-release"]
    );
    let staging_node = text(c, &node("staging-us")).await;
    assert!(staging_node.contains("Health: not checked"), "{staging_node}");
    accessible(c).await;
    std::fs::write(
        docs_ui().join("pipeline-multi-region.png"),
        screenshot_of(c, ".graph-scroll").await,
    )
    .unwrap();

    // Promoting downstream of dev names both regions; confirmed, both get the Freight, and
    // the open graph shows it without a reload.
    c.goto(&format!("{base}/projects/shop/stages/dev")).await.unwrap();
    click_to(c, "Promote downstream…", &format!("Promote {first} downstream of dev?")).await;
    let mut into = texts(c, "main strong.into").await;
    into.sort();
    assert_eq!(into, ["staging-eu", "staging-us"]);
    assert!(
        text(c, "main")
            .await
            .contains("into every Stage that takes Freight from dev"),
        "says what will happen"
    );
    accessible(c).await;
    click_to(c, "Confirm", "Stage dev").await;
    c.goto(&format!("{base}/projects/shop")).await.unwrap();
    mark_page(c).await;
    for region in ["staging-eu", "staging-us"] {
        wait_text(c, &node(region), &format!("Freight: {first}"), Duration::from_secs(30)).await;
        assert_eq!(fx.current(region).as_deref(), Some(first.as_str()), "{region}");
    }
    not_reloaded(c).await;
    assert_eq!(fx.current("prod"), None, "held, and out of its window");
    browser.close().await;
}

/// `broken` promotes into an overlay its config repository does not have; `slow` waits on a
/// smoke test whose server never answers, so its promotion runs until aborted.
const FAILING_AND_SLOW: &str = shop_definitions!(
    r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: broken, namespace: shop}
spec: {requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {direct: true}}], promotionTemplate: {spec: {steps: [{task: {name: update-overlay}}]}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: slow, namespace: shop}
spec:
  requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {direct: true}}]
  promotionTemplate: {spec: {steps: [{uses: http, as: smoke-test, config: {url: "HANG/", timeout: 10m}}]}}
"#
);

/// A promotion whose step fails shows the step's error inline, on the promotion's page (live,
/// as it fails) and on the Stage's; a running promotion is aborted through a confirmation
/// that says what will happen, and a page left open on it shows Aborted without a reload.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_shows_its_error_and_a_running_promotion_is_aborted_live() {
    // A server that never answers: connections wait in its backlog.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("http://127.0.0.1:{}", hang.local_addr().unwrap().port());
    let fx = Pipeline::with(&FAILING_AND_SLOW.replace("HANG", &hang_url), &["slow"]).await;
    let carol = fx.token("carol", "promoter");
    fx.push("1.0.0", 1).await;
    let serve = fx.serve();
    let base = &serve.url;
    let first = fx.discovered("1.0.0");
    let browser = signed_in(base, &carol).await;
    let c = &browser.client;

    // The failing step's error, on the promotion's page as it fails.
    c.goto(&format!("{base}/projects/shop/stages/broken")).await.unwrap();
    click_to(c, "Promote…", &format!("Promote {first} to broken?")).await;
    click_to(c, "Confirm", "Promotion broken.").await;
    let error = "no kustomization.yaml in ./src/env/broken";
    wait_text(c, "table.steps .error", error, Duration::from_secs(30)).await;
    let steps = texts(c, "table.steps tbody tr").await;
    assert!(
        steps.iter().any(|s| s.contains("✖ Errored") || s.contains("✖ Failed")),
        "the step says it failed in words: {steps:?}"
    );
    assert!(text(c, "dl.facts").await.contains("✖"), "the phase too");
    accessible(c).await;
    // And on the Stage's page, under its promotion.
    c.goto(&format!("{base}/projects/shop/stages/broken")).await.unwrap();
    assert!(text(c, "article.promotion .error").await.contains(error));
    assert!(text(c, "article.promotion table.steps .error").await.contains(error));
    accessible(c).await;

    // A promotion that runs: its page, left open, follows the abort made from another tab.
    c.goto(&format!("{base}/projects/shop/stages/slow")).await.unwrap();
    click_to(c, "Promote…", &format!("Promote {first} to slow?")).await;
    click_to(c, "Confirm", "Promotion slow.").await;
    wait_text(c, "dl.facts", "◔ Running", Duration::from_secs(30)).await;
    let promotion = c.current_url().await.unwrap();
    let name = promotion.path().rsplit('/').next().unwrap().to_string();
    mark_page(c).await;
    let watching = c.window().await.unwrap();
    let other = c.new_window(true).await.unwrap();
    c.switch_to_window(other.handle).await.unwrap();
    c.goto(promotion.as_str()).await.unwrap();
    click_to(c, "Abort…", &format!("Abort promotion {name}?")).await;
    let says = text(c, "main").await;
    assert!(
        says.contains(&format!(
            "The promotion of Freight {first} into Stage slow stops within a second"
        )) && says.contains("steps not run yet are skipped"),
        "the confirmation says what will happen: {says}"
    );
    accessible(c).await;
    click_to(c, "Abort the promotion", &format!("Promotion {name}")).await;
    assert!(text(c, "dl.facts").await.contains("✖ Aborted"));
    c.close_window().await.unwrap();
    c.switch_to_window(watching).await.unwrap();
    wait_text(c, "dl.facts", "✖ Aborted", Duration::from_secs(60)).await;
    not_reloaded(c).await;
    assert!(
        c.find(Locator::XPath("//button[normalize-space()='Abort…']"))
            .await
            .is_err(),
        "nothing left to abort"
    );
    let list = fx.json(&["get", "promotions", "--stage", "slow"]);
    assert_eq!(list[0]["status"]["phase"], "Aborted", "{list}");
    browser.close().await;
    drop(hang);
}
