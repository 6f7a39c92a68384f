//! The events sink: a real promotion (a config repository served by `git daemon`, a SQLite
//! store) emits its events in order with Kargo's reasons, each logged, audited and counted
//! once; secrets never reach the log or the audit trail.

use barge_core::Catalog;
use barge_core::promotion::{Phase, State};
use barge_engine::events::{Event, EventSink, MetricsHook, PromotionRef};
use barge_engine::{pipeline, promote};
use barge_store::Store;
use barge_testkit::fixtures::{dev_stage, freight_from_warehouse};
use barge_testkit::git::{GitDaemon, bare_repo};
use barge_testkit::notify::HookReceiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "s3cr3t-deploy-token";

/// Every event a metrics hook saw: (barge's name, Kargo's reason).
#[derive(Default)]
struct Counter(Mutex<Vec<(&'static str, Option<&'static str>)>>);

impl MetricsHook for Counter {
    fn record(&self, event: &Event) {
        self.0.lock().unwrap().push((event.name(), event.kargo_reason()));
    }
}

impl Counter {
    fn seen(&self) -> Vec<(&'static str, Option<&'static str>)> {
        self.0.lock().unwrap().clone()
    }
}

/// The JSON log lines of everything logged on this thread while it lives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Logs of the current thread go to the capture until the guard drops (the tests run
    /// on a current-thread runtime, so every event of theirs is emitted on this thread).
    fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The logged domain events: each line's `event` field, in order.
    fn events(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|l| l["fields"]["event"].as_str().map(str::to_string))
            .collect()
    }
}

async fn store(dir: &std::path::Path) -> Store {
    Store::open(&format!("sqlite://{}/barge.db", dir.display()))
        .await
        .unwrap()
}

fn engine(dir: &std::path::Path, git_port: u16) -> barge_promote::Engine {
    let deploy = [("token".to_string(), SECRET.to_string())].into();
    barge_promote::Engine {
        cache: Arc::new(barge_git::cache::RepoCache::new(&dir.join("cache"))),
        work_root: dir.join("work"),
        credentials: Arc::new(|_| None),
        request_credentials: Arc::new(|_| None),
        author: barge_git::repo::Author {
            name: "barge".into(),
            email: "barge@example.com".into(),
        },
        rewrites: vec![barge_core::rewrite::Rewrite {
            from: "https://git.example.com/".into(),
            to: format!("git://127.0.0.1:{git_port}/"),
        }],
        registry: barge_registry::Registry::new(barge_registry::RegistryConfig::default()).unwrap(),
        push_policy: barge_git::repo::PushPolicy::default(),
        http: barge_promote::http_client(),
        pr_apis: Vec::new(),
        data: barge_core::eval::Data {
            secrets: [("deploy".to_string(), deploy)].into(),
            ..Default::default()
        },
        dry_run: false,
        poll_interval: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(10),
        slots: Arc::new(tokio::sync::Semaphore::new(barge_promote::DEFAULT_SLOTS)),
        wakeups: Default::default(),
        kube: Arc::new(barge_kube::Clusters::new(None)),
        definitions: barge_promote::definitions(Default::default()),
    }
}

const PROJECT: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  subscriptions:
    - image: {repoURL: ghcr.io/acme/app}
---
"#;

const STEPS: &str = r#"
        - uses: git-clone
          config:
            repoURL: https://git.example.com/acme/config.git
            checkout: [{branch: main, path: ./src}]
        - uses: yaml-update
          config:
            path: ./src/env/dev/values.yaml
            updates:
              - key: image.tag
                value: ${{ quote(imageFrom('ghcr.io/acme/app').Tag) }}
        - uses: git-commit
          config: {path: ./src, message: "Promote ${{ ctx.targetFreight.alias }}"}
        - uses: git-push
          config: {path: ./src}
        - uses: compose-output
          as: seen
          config:
            auth: Bearer ${{ secret('deploy').token }}
"#;

#[tokio::test]
async fn a_promotion_emits_its_events_in_order_each_logged_audited_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let git_root = dir.path().join("git");
    bare_repo(
        &git_root,
        "acme/config.git",
        &[("env/dev/values.yaml", "image:\n  tag: 1.0.0\n")],
    );
    let daemon = GitDaemon::start(&git_root);
    let catalog = catalog();
    let store = store(dir.path()).await;
    let minted = store
        .mint_freight("shop", "app", freight_from_warehouse(&catalog, "shop", "app"), 1)
        .await
        .unwrap();
    let engine = engine(dir.path(), daemon.port);
    let counter = Arc::new(Counter::default());
    let events = EventSink::for_engine(store.clone(), &engine).with_metrics(counter.clone());
    let all = pipeline::stages(&catalog);
    let def = pipeline::find_stage(&all, "dev", Some("shop")).unwrap();
    let (captured, _logging) = Captured::start();

    let p = promote::create(
        &catalog,
        &store,
        &events,
        def,
        &minted.freight,
        "alice",
        Phase::Running,
        false,
    )
    .await
    .unwrap();
    let state = State::new(&p.steps);
    let now = store.now().await.unwrap();
    assert!(
        store
            .claim_promotion("shop", &p.name, "replica-a", now + 60_000, now)
            .await
            .unwrap()
    );
    let outcome = promote::execute(&catalog, &store, &events, &engine, "replica-a", &p, state, false, false)
        .await
        .unwrap();
    assert_eq!(outcome.phase, Phase::Succeeded, "{}", outcome.message);

    let step = |name| [("promotion.step.started", None), (name, None)];
    let expected: Vec<(&str, Option<&str>)> = [("promotion.created", Some("PromotionCreated"))]
        .into_iter()
        .chain(step("promotion.step"))
        .chain(step("promotion.step"))
        .chain(step("promotion.step"))
        .chain(step("promotion.pushed"))
        .chain(step("promotion.step"))
        .chain([
            ("promotion.finished", Some("PromotionSucceeded")),
            ("stage.entered", None),
        ])
        .collect();
    // The metrics hook saw each event once, in order, and so did the log.
    assert_eq!(counter.seen(), expected);
    let names: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    assert_eq!(captured.events(), names, "{}", captured.text());
    // Each audited event has exactly one row, whether the store or the sink wrote it.
    let audited: Vec<String> = store
        .list_audit(Some("shop"), 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.kind != "freight.minted")
        .map(|a| a.kind)
        .collect();
    let expected_rows: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| *n != "promotion.step.started")
        .collect();
    assert_eq!(audited, expected_rows);
    // The step output that held the secret reached neither the log nor the audit trail.
    let rows = store.list_audit(Some("shop"), 0).await.unwrap();
    let seen = rows
        .iter()
        .find(|a| a.body["step"] == "seen")
        .expect("the compose-output step's row");
    assert_eq!(seen.body["outputs"]["auth"], "Bearer ***");
    assert!(!serde_json::to_string(&rows).unwrap().contains(SECRET));
    assert!(captured.text().contains("Bearer ***"), "{}", captured.text());
    assert!(!captured.text().contains(SECRET));
}

#[tokio::test]
async fn the_sink_redacts_secrets_and_url_userinfo_in_the_log_and_the_audit_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let counter = Arc::new(Counter::default());
    let events = EventSink::new(Some(store.clone()), vec![SECRET.to_string()]).with_metrics(counter.clone());
    let (captured, _logging) = Captured::start();
    // A step's output as a step wrote it, not redacted before (the sink is the last line).
    let finished = Event::StepFinished {
        promotion: PromotionRef {
            project: "shop".into(),
            stage: "dev".into(),
            freight: "f".repeat(40),
            name: "dev.01.fff".into(),
            actor: "alice".into(),
        },
        step: "notify".into(),
        uses: "http".into(),
        status: barge_core::eval::StepStatus::Failed,
        message: format!("POST https://bot:{SECRET}@hooks.example.com/x answered 500"),
        outputs: serde_json::json!({"headers": {"authorization": format!("Bearer {SECRET}")}, "url": "https://bot:tok3n-in-url@hooks.example.com/x"}),
    };
    events.emit(finished).await.unwrap();

    let rows = store.list_audit(Some("shop"), 0).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kind, "promotion.step");
    assert_eq!(rows[0].body["message"], "POST https://hooks.example.com/x answered 500");
    assert_eq!(rows[0].body["outputs"]["headers"]["authorization"], "Bearer ***");
    assert_eq!(rows[0].body["outputs"]["url"], "https://hooks.example.com/x");
    let log = captured.text();
    assert_eq!(captured.events(), ["promotion.step"], "{log}");
    for secret in [SECRET, "tok3n-in-url"] {
        assert!(!log.contains(secret), "{log}");
        assert!(!serde_json::to_string(&rows).unwrap().contains(secret));
    }
    assert!(log.contains("Bearer ***"), "{log}");
    assert_eq!(counter.seen(), [("promotion.step", None)]);
}

fn catalog() -> Catalog {
    catalog_with(STEPS)
}

/// Project shop with Stage dev running `steps`.
fn catalog_with(steps: &str) -> Catalog {
    let mut catalog = Catalog::default();
    catalog.load_text("shop.yaml", &format!("{PROJECT}{}", dev_stage(steps)));
    barge_core::validate::validate(&mut catalog);
    assert_eq!(catalog.errors(), 0, "{:?}", catalog.diagnostics);
    catalog
}

#[tokio::test]
async fn an_approval_the_store_audits_is_announced_once_with_kargos_reason_and_not_audited_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let catalog = catalog();
    let minted = store
        .mint_freight("shop", "app", freight_from_warehouse(&catalog, "shop", "app"), 1)
        .await
        .unwrap();
    let counter = Arc::new(Counter::default());
    let events = EventSink::new(Some(store.clone()), Vec::new()).with_metrics(counter.clone());
    let cx = barge_engine::ops::Context {
        store: &store,
        events: &events,
        catalog: &catalog,
        refresh: None,
        health: None,
        principal: &barge_core::authz::Principal::local(),
        engine: None,
    };
    let approve = barge_engine::ops::Call::Approve {
        project: Some("shop".into()),
        stage: "dev".into(),
        freight: minted.freight.freight.metadata.name.clone(),
        actor: "bob".into(),
    };
    barge_engine::ops::handle(&cx, approve).await.unwrap();
    let kinds: Vec<String> = store
        .list_audit(Some("shop"), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, ["freight.minted", "freight.approved"]);
    assert_eq!(counter.seen(), [("freight.approved", Some("FreightApproved"))]);
}

/// Steps of Stage dev: a call that waits for its receiver to answer 200, then another.
const TWO_CALLS: &str = r#"
        - uses: http
          as: first
          config:
            url: http://127.0.0.1:PORT/first
            successExpression: response.status == 200
        - uses: http
          as: second
          config:
            url: http://127.0.0.1:PORT/second
"#;

#[tokio::test]
async fn a_runner_whose_lease_was_taken_over_stops_before_its_next_step_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = HookReceiver::start();
    // The first call waits (the runner stalls in it) until the receiver answers 200.
    receiver.answer(503);
    let catalog = catalog_with(&TWO_CALLS.replace("PORT", &receiver.port.to_string()));
    let store = store(dir.path()).await;
    let minted = store
        .mint_freight("shop", "app", freight_from_warehouse(&catalog, "shop", "app"), 1)
        .await
        .unwrap();
    let engine = engine(dir.path(), 0);
    let events = EventSink::for_engine(store.clone(), &engine);
    let all = pipeline::stages(&catalog);
    let def = pipeline::find_stage(&all, "dev", Some("shop")).unwrap();
    let p = promote::create(
        &catalog,
        &store,
        &events,
        def,
        &minted.freight,
        "alice",
        Phase::Running,
        false,
    )
    .await
    .unwrap();
    let now = store.now().await.unwrap();
    let a_lease = now + 60_000;
    assert!(
        store
            .claim_promotion("shop", &p.name, "replica-a", a_lease, now)
            .await
            .unwrap()
    );
    let (captured, _logging) = Captured::start();

    let run_a = promote::execute(
        &catalog,
        &store,
        &events,
        &engine,
        "replica-a",
        &p,
        State::new(&p.steps),
        false,
        false,
    );
    let take_over = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !receiver.received().iter().any(|r| r.path == "/first") {
            assert!(std::time::Instant::now() < deadline, "the first call never came");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A's lease runs out by the database's clock (A is stalled) and B takes over.
        assert!(
            store
                .claim_promotion("shop", &p.name, "replica-b", a_lease + 60_000, a_lease + 1)
                .await
                .unwrap()
        );
        receiver.answer(200);
    };
    let (outcome, ()) = tokio::join!(run_a, take_over);
    let outcome = outcome.unwrap();

    // A's save after its first step was refused: it stopped there, and left the promotion
    // Running, to B.
    assert_eq!(outcome.phase, Phase::Running, "{}", outcome.message);
    assert!(outcome.message.contains("lost the lease"), "{}", outcome.message);
    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().all(|p| p == "/first"), "{paths:?}");
    let stored = store.get_promotion("shop", &p.name).await.unwrap().unwrap();
    assert_eq!(stored.phase, Phase::Running);
    assert_ne!(stored.state["steps"][0]["status"], "Succeeded", "{}", stored.state);
    assert_eq!(
        store
            .promotion_lease("shop", &p.name)
            .await
            .unwrap()
            .map(|(owner, _)| owner),
        Some("replica-b".to_string())
    );
    let log = captured.text();
    assert!(log.contains("lost the promotion's lease"), "{log}");
    assert!(!captured.events().contains(&"promotion.finished".to_string()), "{log}");
}
