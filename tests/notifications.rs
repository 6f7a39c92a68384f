//! Outbound notifications end to end: `barge serve` with a real registry, a real git remote
//! (`git daemon`) and a real store; channels that are real servers on loopback (barge-testkit's
//! HTTP receiver playing a Slack incoming webhook and a generic receiver, aiosmtpd for mail).
//! A promotion's PromotionSucceeded reaches exactly the channels its EventRouters name, with
//! the rendered message, a verifiable signature, and no secret; a failing channel is retried
//! with backoff and delays no promotion; a daemon killed before delivery delivers after its
//! restart, once; bad definitions are reported at file:line:col.

#[macro_use]
mod support;

use barge_store::{Backend, Store};
use barge_testkit::notify::{DownPort, HookReceiver, SmtpServer};
use barge_testkit::{postgres, registry};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{GitDaemon, git, stderr};

const SIGNING_KEY: &str = "sign-k3y-0f-the-generic-hook";
/// The Slack webhook URL's secret part (a real Slack URL is all secret).
const SLACK_TOKEN: &str = "T000-B000-slack-s3cret";
const API_TOKEN: &str = "api-t0ken-never-sent";
/// `barge serve --listen`'s bootstrap admin token.
const ADMIN_TOKEN: &str = "admin-t0ken-of-the-api";

/// dev and staging promote automatically; dev also says so itself with send-message (its
/// message reads a secret, which must not leave). Routers: dev's success to Slack, staging's to
/// the generic hook and mail, failures to the hook (none happen).
const DEFINITIONS: &str = shop_definitions!(
    r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {direct: true}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
        - uses: send-message
          config:
            channel: {kind: MessageChannel, name: hooks}
            message: "dev pinned ${{ imageFrom('ghcr.io/acme/app').Tag }} (token ${{ secret('api').token }})"
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: staging, namespace: shop}
spec:
  requestedFreight:
    - origin: {kind: Warehouse, name: app}
      sources: {stages: [dev]}
  promotionTemplate:
    spec:
      steps:
        - task: {name: update-overlay}
---
apiVersion: ee.kargo.akuity.io/v1alpha1
kind: MessageChannel
metadata: {name: team-slack, namespace: shop}
spec:
  slack: {secretRef: {name: slack}}
---
apiVersion: ee.kargo.akuity.io/v1alpha1
kind: MessageChannel
metadata: {name: hooks, namespace: shop}
spec:
  webhook: {url: "http://127.0.0.1:HOOK_PORT/generic", secretRef: {name: signing}}
---
apiVersion: ee.kargo.akuity.io/v1alpha1
kind: ClusterMessageChannel
metadata: {name: mail}
spec:
  smtp: {host: 127.0.0.1, port: SMTP_PORT, tls: none, from: barge@example.com, to: [ops@example.com]}
---
apiVersion: ee.kargo.akuity.io/v1alpha1
kind: EventRouter
metadata: {name: dev-to-slack, namespace: shop}
spec:
  types: [PromotionSucceeded]
  stageSelector: {name: dev}
  channels: [{kind: MessageChannel, name: team-slack}]
  message: "${{ ctx.stage }} now runs ${{ ctx.freight }}"
---
apiVersion: ee.kargo.akuity.io/v1alpha1
kind: EventRouter
metadata: {name: staging-to-hook-and-mail, namespace: shop}
spec:
  types: [PromotionSucceeded]
  stageSelector: {name: staging}
  channels: [{kind: MessageChannel, name: hooks}, {kind: ClusterMessageChannel, name: mail}]
  subject: "${{ ctx.type }}: ${{ ctx.project }}/${{ ctx.stage }}"
  message: "Promotion ${{ ctx.promotion }} moved ${{ ctx.freight }} into ${{ ctx.stage }}."
---
apiVersion: ee.kargo.akuity.io/v1alpha1
kind: EventRouter
metadata: {name: failures, namespace: shop}
spec:
  types: [PromotionFailed, PromotionErrored]
  channels: [{name: hooks}]
"#
);

struct Fixture {
    dir: tempfile::TempDir,
    reg: registry::TestRegistry,
    db: String,
    git_port: u16,
    defs: PathBuf,
    config: PathBuf,
    bare: PathBuf,
    _git: GitDaemon,
}

impl Fixture {
    async fn new(backend: Backend, hook_port: u16, smtp_port: u16) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed");
        for stage in ["dev", "staging"] {
            std::fs::create_dir_all(seed.join("env").join(stage)).unwrap();
            std::fs::write(
                seed.join(format!("env/{stage}/kustomization.yaml")),
                "resources: [../../base]\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 0.9.0\n",
            )
            .unwrap();
        }
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "-q", "-m", "seed"]);
        let root = dir.path().join("git");
        std::fs::create_dir_all(&root).unwrap();
        let bare = root.join("config.git");
        git(
            dir.path(),
            &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()],
        );
        let git_daemon = GitDaemon::start(&root);
        let defs = dir.path().join("shop.yaml");
        std::fs::write(
            &defs,
            DEFINITIONS
                .replace("HOOK_PORT", &hook_port.to_string())
                .replace("SMTP_PORT", &smtp_port.to_string()),
        )
        .unwrap();
        let config = dir.path().join("barge.yaml");
        std::fs::write(
            &config,
            "secrets:\n  slack:\n    webhookURL: {env: SLACK_URL}\n  signing:\n    signingKey: {env: SIGNING_KEY}\n  api:\n    token: {env: API_TOKEN}\n",
        )
        .unwrap();
        let db = match backend {
            Backend::Sqlite => postgres::sqlite_url(&dir),
            Backend::Postgres => postgres::postgres_url(),
        };
        Fixture {
            git_port: git_daemon.port,
            reg: registry::TestRegistry::start(None).await,
            dir,
            db,
            defs,
            config,
            bare,
            _git: git_daemon,
        }
    }

    fn command(&self, args: &[&str], slack_port: u16) -> Command {
        let mut c = support::barge();
        c.args(args)
            .env("BARGE_DB", &self.db)
            .env("BARGE_WORK_DIR", self.dir.path().join("work"))
            .env("BARGE_CONFIG", &self.config)
            .env("BARGE_POLL_INTERVAL", "200ms")
            .env("BARGE_NOTIFY_RETRY_BASE", "200ms")
            .env(
                "SLACK_URL",
                format!("http://127.0.0.1:{slack_port}/services/{SLACK_TOKEN}"),
            )
            .env("SIGNING_KEY", SIGNING_KEY)
            .env("API_TOKEN", API_TOKEN)
            .env("USER", "alice");
        if args[0] == "serve" {
            c.args([
                "--rewrite",
                &format!("ghcr.io/acme/={}/acme/", self.reg.host),
                "--rewrite",
                &format!("https://git.example.com/acme/=git://127.0.0.1:{}/", self.git_port),
            ]);
        }
        c
    }

    fn serve(&self, slack_port: u16) -> Daemon {
        let log = self.dir.path().join(format!("serve-{}.log", ulid_like()));
        let api_port = support::free_port();
        let listen = format!("127.0.0.1:{api_port}");
        Daemon::spawn(
            self.command(&["serve", self.defs.to_str().unwrap(), "--listen", &listen], slack_port)
                .env("BARGE_ADMIN_TOKEN", ADMIN_TOKEN),
            api_port,
            log,
        )
    }

    /// `barge get notifications ARGS -o json` on the store.
    fn get_notifications(&self, args: &[&str], slack_port: u16) -> serde_json::Value {
        let out = self
            .command(&["get", "notifications", "-o", "json"], slack_port)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!String::from_utf8_lossy(&out.stdout).contains(SLACK_TOKEN));
        support::listed(serde_json::from_slice(&out.stdout).unwrap())
    }

    /// A token of `role` in `project` (`barge token create`).
    fn token(&self, name: &str, role: &str, project: &str) -> String {
        let out = self
            .command(
                &[
                    "token",
                    "create",
                    "--name",
                    name,
                    "--role",
                    role,
                    "--project",
                    project,
                    "-o",
                    "json",
                ],
                0,
            )
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        created["token"].as_str().unwrap().to_string()
    }

    async fn push(&self, tag: &str) {
        self.reg
            .push_image("acme/app", tag, "2026-01-01T00:00:00Z", "amd64")
            .await;
    }

    fn commits(&self, prefix: &str) -> usize {
        git(&self.bare, &["log", "--format=%s", "main"])
            .lines()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    async fn outbox(&self) -> Vec<barge_store::Notification> {
        let store = Store::open(&self.db).await.unwrap();
        store.list_notifications(None, None, 100).await.unwrap()
    }
}

fn ulid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

type Daemon = support::Serve;

impl Daemon {
    /// `GET PATH` of its API with `token`: the status and the JSON body.
    async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let answer = barge_promote::http_client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, serde_json::from_str(&answer.text().await.unwrap()).unwrap())
    }
}

/// Polls `f` until it holds (returning at once then); fails after `timeout`, which only a
/// failing or a very loaded run reaches (so a minute or more for anything the daemon does).
fn wait_for(what: &str, timeout: Duration, daemon: &Daemon, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; barge serve said:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(barge_store::Backend::Sqlite).await })*
        }
        mod postgresql {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(barge_store::Backend::Postgres).await })*
        }
    };
}

both_stores!(
    a_promotion_notifies_exactly_the_routed_channels_signed_and_without_secrets,
    a_failing_channel_is_retried_with_backoff_and_delays_no_promotion,
    a_daemon_killed_before_delivery_delivers_after_restart_once,
    an_event_committed_by_a_process_killed_before_routing_is_notified_once,
);

async fn a_promotion_notifies_exactly_the_routed_channels_signed_and_without_secrets(b: Backend) {
    let hooks = HookReceiver::start();
    let slack = HookReceiver::start();
    let smtp = SmtpServer::start();
    let fx = Fixture::new(b, hooks.port, smtp.port).await;
    fx.push("1.0.0").await;
    let daemon = fx.serve(slack.port);
    wait_for("staging to push", Duration::from_secs(90), &daemon, || {
        fx.commits("staging:") == 1
    });

    // Slack: dev's success only, as the router's template renders it.
    let to_slack = slack.wait_for(1, Duration::from_secs(30));
    let outbox = fx.outbox().await;
    let freight = &outbox
        .iter()
        .find(|n| n.stage == "dev")
        .expect("dev's notification")
        .message["event"]["freight"];
    assert_eq!(to_slack[0].path, format!("/services/{SLACK_TOKEN}"));
    assert_eq!(
        to_slack[0].json(),
        serde_json::json!({"text": format!("dev now runs {}", freight.as_str().unwrap())})
    );

    // The generic hook: dev's send-message step and staging's success, each signed.
    let to_hook = hooks.wait_for(2, Duration::from_secs(30));
    for r in &to_hook {
        let signature = r.header("x-barge-signature-256").expect("signed");
        assert!(
            barge_core::notify::verify_signature(SIGNING_KEY, &r.body, signature),
            "the signature verifies"
        );
        assert!(!barge_core::notify::verify_signature("another key", &r.body, signature));
        assert_eq!(r.header("x-barge-delivery"), r.json()["id"].as_str());
    }
    let bodies: Vec<serde_json::Value> = to_hook.iter().map(|r| r.json()).collect();
    let step = bodies
        .iter()
        .find(|b| b.get("event").is_none())
        .expect("send-message's body");
    assert_eq!(step["text"], "dev pinned 1.0.0 (token ***)");
    let staging = bodies
        .iter()
        .find(|b| b["event"]["stage"] == "staging")
        .expect("staging's body");
    assert_eq!(staging["event"]["type"], "PromotionSucceeded");
    assert_eq!(staging["subject"], "PromotionSucceeded: shop/staging");
    let promotion = staging["event"]["promotion"].as_str().unwrap();
    assert!(
        staging["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Promotion {promotion} moved "))
    );

    // Mail: staging's success, with the templated subject and text.
    let mails = smtp.wait_for(1, Duration::from_secs(30));
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("PromotionSucceeded: shop/staging")
    );
    assert_eq!(mails[0].header("X-RcptTo").as_deref(), Some("ops@example.com"));
    assert_eq!(mails[0].body().trim_end(), staging["text"].as_str().unwrap());

    // Nothing else: no failure was routed, dev went to Slack alone, staging not to Slack.
    wait_for(
        "the outbox to record the deliveries",
        Duration::from_secs(60),
        &daemon,
        || block_on(fx.outbox()).iter().all(|n| n.state == "delivered"),
    );
    let outbox = fx.outbox().await;
    let routed: Vec<(&str, &str, &str)> = {
        let mut v: Vec<_> = outbox
            .iter()
            .map(|n| (n.stage.as_str(), n.event.as_str(), n.channel.as_str()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        routed,
        [
            ("dev", "PromotionSucceeded", "team-slack"),
            ("staging", "PromotionSucceeded", "hooks"),
            ("staging", "PromotionSucceeded", "mail"),
        ]
    );
    assert!(
        outbox.iter().all(|n| n.state == "delivered" && n.attempts == 1),
        "{outbox:?}"
    );
    assert_eq!(slack.received().len(), 1);
    assert_eq!(hooks.received().len(), 2);

    // No secret in what was sent, stored or logged.
    for secret in [SIGNING_KEY, SLACK_TOKEN, API_TOKEN] {
        for r in slack.received().iter().chain(hooks.received().iter()) {
            assert!(!String::from_utf8_lossy(&r.body).contains(secret));
        }
        for m in smtp.mails() {
            assert!(!m.raw.contains(secret));
        }
        assert!(!daemon.log().contains(secret));
        if b == Backend::Sqlite {
            assert_eq!(support::files_containing(fx.dir.path(), secret), Vec::<PathBuf>::new());
        }
    }
}

async fn a_failing_channel_is_retried_with_backoff_and_delays_no_promotion(b: Backend) {
    let hooks = HookReceiver::start();
    let slack = HookReceiver::start();
    slack.answer(503);
    let smtp = SmtpServer::start();
    let fx = Fixture::new(b, hooks.port, smtp.port).await;
    fx.push("1.0.0").await;
    let daemon = fx.serve(slack.port);
    // Promotions go on while Slack refuses: staging, which follows dev, lands.
    wait_for("staging to push", Duration::from_secs(90), &daemon, || {
        fx.commits("staging:") == 1
    });
    wait_for("three refused attempts", Duration::from_secs(30), &daemon, || {
        slack.received().len() >= 3
    });
    let refused = slack.received();
    assert!(refused.iter().all(|r| r.status == 503));
    // The waits grow: the retry policy's 200 ms doubling (jitter only adds), never sooner.
    let gaps: Vec<Duration> = refused.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (i, gap) in gaps.iter().take(2).enumerate() {
        let floor = Duration::from_millis(200 << i);
        assert!(*gap >= floor, "wait {} was {gap:?}, under {floor:?}", i + 1);
    }
    let pending = fx
        .outbox()
        .await
        .into_iter()
        .find(|n| n.channel == "team-slack")
        .unwrap();
    assert_eq!(pending.state, "pending");
    assert!(pending.attempts >= 3, "{pending:?}");
    assert!(pending.last_error.contains("503"), "{}", pending.last_error);
    // `barge get notifications` shows it: pending, its attempts, why the last failed, when
    // it is tried next; never the channel's secret (the helper checks).
    let listed = fx.get_notifications(&["--project", "shop", "--state", "pending"], slack.port);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == "team-slack")
        .unwrap_or_else(|| panic!("Slack's notification: {listed}"));
    assert_eq!(
        (&row["channelKind"], &row["event"], &row["state"], &row["stage"]),
        (
            &serde_json::json!("MessageChannel"),
            &serde_json::json!("PromotionSucceeded"),
            &serde_json::json!("pending"),
            &serde_json::json!("dev")
        ),
        "{row}"
    );
    assert!(row["attempts"].as_i64().unwrap() >= 3, "{row}");
    assert!(row["lastError"].as_str().unwrap().contains("503"), "{row}");
    assert!(row["nextAttemptAt"].is_string(), "{row}");
    assert!(row.get("deliveredAt").is_none(), "{row}");
    assert_eq!(
        fx.get_notifications(&["--state", "failed"], slack.port),
        serde_json::json!([])
    );
    let out = fx.command(&["get", "notifications"], slack.port).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("CHANNEL "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("MessageChannel/team-slack") && l.contains("pending") && l.contains("503")),
        "{table}"
    );
    assert!(!table.contains(SLACK_TOKEN));
    // The REST API answers the same to a reader of the project, and refuses one of another.
    let reader = fx.token("shop-reader", "viewer", "shop");
    let (status, body) = daemon
        .get("/api/v1/projects/shop/notifications?state=pending", &reader)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["items"].as_array().unwrap().iter().any(|n| n["id"] == row["id"]),
        "{body}"
    );
    assert!(!body.to_string().contains(SLACK_TOKEN));
    let outsider = fx.token("outsider", "viewer", "elsewhere");
    let (status, body) = daemon.get("/api/v1/projects/shop/notifications", &outsider).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &serde_json::json!("forbidden")),
        "{body}"
    );
    let (status, body) = daemon
        .get("/api/v1/projects/shop/notifications?state=lost", ADMIN_TOKEN)
        .await;
    assert_eq!((status, &body["code"]), (400, &serde_json::json!("invalid")), "{body}");

    slack.answer(200);
    let delivered = slack.wait_for(1, Duration::from_secs(30));
    assert_eq!(delivered.len(), 1);
    wait_for(
        "the outbox to record the delivery",
        Duration::from_secs(60),
        &daemon,
        || {
            block_on(fx.outbox())
                .iter()
                .any(|n| n.channel == "team-slack" && n.state == "delivered")
        },
    );
    let delivered = fx.get_notifications(&["--state", "delivered"], slack.port);
    let row = delivered
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["channel"] == "team-slack")
        .unwrap_or_else(|| panic!("Slack's notification: {delivered}"));
    assert!(
        row["deliveredAt"].is_string() && row.get("nextAttemptAt").is_none(),
        "{row}"
    );
    // Every attempt carried the same delivery id.
    let ids: std::collections::BTreeSet<_> = slack
        .received()
        .iter()
        .map(|r| r.header("x-barge-delivery").unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

async fn a_daemon_killed_before_delivery_delivers_after_restart_once(b: Backend) {
    // The Slack channel is down (nothing listens) while the daemon runs.
    let slack_down = DownPort::reserve();
    let slack_port = slack_down.port;
    let hooks = HookReceiver::start();
    let smtp = SmtpServer::start();
    let fx = Fixture::new(b, hooks.port, smtp.port).await;
    fx.push("1.0.0").await;
    let mut daemon = fx.serve(slack_port);
    wait_for("staging to push", Duration::from_secs(90), &daemon, || {
        fx.commits("staging:") == 1
    });
    // The other channels have their messages, Slack has been tried: only Slack's is queued.
    // (Staging's push comes before its promotion ends: wait for its two notifications too.)
    wait_for("an attempt at Slack", Duration::from_secs(30), &daemon, || {
        let outbox = block_on(fx.outbox());
        outbox.len() == 3
            && outbox.iter().all(|n| {
                if n.channel == "team-slack" {
                    n.attempts >= 1
                } else {
                    n.state == "delivered"
                }
            })
    });
    daemon.kill();
    let waiting = fx
        .outbox()
        .await
        .into_iter()
        .find(|n| n.channel == "team-slack")
        .unwrap();
    assert_eq!(waiting.state, "pending");

    let slack = HookReceiver::start_on(slack_down);
    let daemon = fx.serve(slack_port);
    // Within a lease (60 s), should the daemon have been killed mid-send.
    slack.wait_for(1, Duration::from_secs(90));
    let delivered = |outbox: &[barge_store::Notification]| outbox.iter().all(|n| n.state == "delivered");
    // The record follows the delivery at once; a minute is for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !delivered(&fx.outbox().await) {
        assert!(
            Instant::now() < deadline,
            "undelivered: {:#?}\n{}",
            fx.outbox().await,
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing was sent twice: one Slack message, and the other channels once each.
    let bodies = |r: &HookReceiver| r.received().iter().map(|r| r.json()).collect::<Vec<_>>();
    assert_eq!(slack.received().len(), 1, "{:?}", bodies(&slack));
    assert_eq!(hooks.received().len(), 2, "{:?}\n{}", bodies(&hooks), daemon.log());
    assert_eq!(smtp.mails().len(), 1);
}

/// A process killed right after the store committed a promotion's end (its audit row) and
/// before its event sink ran: the notification is not lost. The row commits unrouted; the
/// next `barge serve` routes it at start, queuing its notifications and marking it in one
/// transaction.
async fn an_event_committed_by_a_process_killed_before_routing_is_notified_once(b: Backend) {
    let hooks = HookReceiver::start();
    let smtp = SmtpServer::start();
    let fx = Fixture::new(b, hooks.port, smtp.port).await;
    // What `Store::finish_promotion` writes in the promotion's transaction, without the event
    // that followed it.
    let store = Store::open(&fx.db).await.unwrap();
    store
        .append_audit(barge_store::NewAudit {
            at: 1_000,
            project: "shop",
            kind: "promotion.finished",
            subject: "Promotion/staging.p1",
            actor: "barge",
            stage: "staging",
            freight: "f1",
            body: &serde_json::json!({"phase": "Succeeded", "message": ""}),
        })
        .await
        .unwrap();
    drop(store);

    let daemon = fx.serve(0);
    let received = hooks.wait_for(1, Duration::from_secs(30));
    assert_eq!(
        received[0].json()["text"],
        "Promotion staging.p1 moved f1 into staging.",
        "{}",
        daemon.log()
    );
    smtp.wait_for(1, Duration::from_secs(30));
    // Routed once: one notification per routed channel (the store test races routers).
    let outbox = fx.outbox().await;
    assert_eq!(outbox.len(), 2, "{outbox:#?}");
    assert!(
        outbox
            .iter()
            .all(|n| n.event == "PromotionSucceeded" && n.stage == "staging")
    );
    assert_eq!((hooks.received().len(), smtp.mails().len()), (1, 1));
}

/// Runs a store read from a sync closure inside the multi-threaded test runtime.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[test]
fn bad_notification_definitions_are_reported_at_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("bad.yaml");
    std::fs::write(
        &defs,
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: shop}\n---\n\
         apiVersion: ee.kargo.akuity.io/v1alpha1\nkind: MessageChannel\nmetadata: {name: both, namespace: shop}\nspec:\n  slack: {secretRef: {name: s}}\n  webhook: {url: \"http://h/\"}\n---\n\
         apiVersion: ee.kargo.akuity.io/v1alpha1\nkind: EventRouter\nmetadata: {name: r, namespace: shop}\nspec:\n  types: [PromotionSucceded]\n  channels: [{kind: MessageChannel, name: nowhere}]\n",
    )
    .unwrap();
    let out = support::run(&["validate", defs.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = stderr(&out) + &support::stdout(&out);
    let file = defs.display().to_string();
    for (line_col, message) in [
        ("10:12", "the channel sets more than one provider"),
        ("16:11", "unknown event type \"PromotionSucceded\""),
        ("17:43", "no MessageChannel named \"nowhere\""),
    ] {
        assert!(
            text.contains(&format!("{file}:{line_col}")) && text.contains(message),
            "expected {message:?} at {file}:{line_col}:\n{text}"
        );
    }
    assert!(text.contains("did you mean PromotionSucceeded"), "{text}");
}
