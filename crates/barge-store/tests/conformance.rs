//! One conformance suite, run against SQLite and against a real PostgreSQL server.

use barge_core::model::ObjectMeta;
use barge_core::model::kargo::{Freight, FreightOrigin, Image};
use barge_store::{Backend, Store};
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A PostgreSQL server for this test binary: initdb in a temp dir, loopback port, stopped by a
/// watchdog when the test process exits.
struct Postgres {
    port: u16,
    _dir: tempfile::TempDir,
    /// Lives as long as the test process; it stops the server when the process is gone.
    _watchdog: std::process::Child,
}

fn as_postgres_user(script: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }
}

/// PostgreSQL's server binaries (Debian's location unless `PG_BIN` says otherwise).
fn pg_bin() -> String {
    std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into())
}

fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("barge-pg-").tempdir().unwrap();
        let path = dir.path().display().to_string();
        Command::new("chmod").args(["755", &path]).status().unwrap();
        let _ = Command::new("chown").args(["postgres", &path]).status();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = as_postgres_user(&format!("{bin}/initdb -D {path}/data -A trust -U barge >{path}/initdb.log 2>&1")).output().unwrap();
        assert!(out.status.success(), "initdb failed: {}", std::fs::read_to_string(format!("{path}/initdb.log")).unwrap_or_default());
        let watchdog = format!(
            "{bin}/postgres -D {path}/data -p {port} -k {path} -c listen_addresses=127.0.0.1 -c fsync=off >{path}/pg.log 2>&1 & pg=$!; \
             while [ -d /proc/{test} ]; do sleep 0.5; done; kill -INT $pg; wait $pg",
            test = std::process::id()
        );
        let watchdog = as_postgres_user(&watchdog).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while Command::new(format!("{bin}/pg_isready")).args(["-h", "127.0.0.1", "-p", &port.to_string()]).output().map(|o| !o.status.success()).unwrap_or(true) {
            assert!(std::time::Instant::now() < deadline, "postgres did not start: {}", std::fs::read_to_string(format!("{path}/pg.log")).unwrap_or_default());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Postgres { port, _dir: dir, _watchdog: watchdog }
    })
}

/// A fresh, empty database URL for each test.
fn url(backend: Backend, dir: &tempfile::TempDir) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    match backend {
        Backend::Sqlite => format!("sqlite://{}/state/barge.db", dir.path().display()),
        Backend::Postgres => {
            let pg = postgres();
            let db = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
            let out = Command::new(format!("{}/createdb", pg_bin()))
                .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "barge", &db])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            format!("postgres://barge:secret-pw@127.0.0.1:{}/{db}", pg.port)
        }
    }
}

fn freight(warehouse: &str, tag: &str) -> Freight {
    let origin = FreightOrigin {
        kind: "Warehouse".into(),
        name: warehouse.into(),
    };
    let images = vec![Image {
        repo_url: "ghcr.io/acme/app".into(),
        tag: tag.into(),
        digest: format!("sha256:{tag}"),
        ..Default::default()
    }];
    let mut f = barge_core::freight::mint(origin, Vec::new(), images, Vec::new(), &|_| false);
    f.alias = None;
    f.metadata = ObjectMeta {
        name: f.metadata.name.clone(),
        ..Default::default()
    };
    f
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(barge_store::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(barge_store::Backend::Postgres).await })*
        }
    };
}

conformance!(
    opens_creates_and_migrates_idempotently,
    minting_is_idempotent,
    aliases_are_unique_per_project,
    lookup_by_name_or_alias_and_listing,
    discovery_status_upserts,
    audit_is_append_only_and_ordered,
    concurrent_mints_create_once,
    promotions_are_one_per_stage_and_keep_their_state,
    metadata_merges_and_aliases_rename,
);

async fn metadata_merges_and_aliases_rename(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let values = |v: serde_json::Value| v.as_object().unwrap().clone();
    s.merge_metadata(
        "demo",
        "Stage",
        "dev",
        &values(serde_json::json!({"a": 1, "b": "x"})),
        "alice",
        10,
    )
    .await
    .unwrap();
    s.merge_metadata(
        "demo",
        "Stage",
        "dev",
        &values(serde_json::json!({"b": null, "c": [1]})),
        "bob",
        11,
    )
    .await
    .unwrap();
    let all = s.list_metadata("demo", "Stage").await.unwrap();
    assert_eq!(
        serde_json::Value::Object(all["dev"].clone()),
        serde_json::json!({"a": 1, "c": [1]})
    );
    assert!(s.list_metadata("demo", "Freight").await.unwrap().is_empty());

    let one = s
        .mint_freight("demo", "app", freight("app", "1.0.0"), 20)
        .await
        .unwrap()
        .freight
        .freight;
    let two = s
        .mint_freight("demo", "app", freight("app", "2.0.0"), 21)
        .await
        .unwrap()
        .freight
        .freight;
    s.set_freight_alias("demo", &one.metadata.name, "release-1", "alice", 30)
        .await
        .unwrap();
    let got = s.get_freight("demo", "release-1").await.unwrap().unwrap().freight;
    assert_eq!(
        (got.metadata.name.as_str(), got.alias.as_deref()),
        (one.metadata.name.as_str(), Some("release-1"))
    );
    let taken = s
        .set_freight_alias("demo", two.alias.as_deref().unwrap(), "release-1", "alice", 31)
        .await
        .unwrap_err();
    assert_eq!(taken.class(), barge_core::ErrorClass::Conflict, "{taken}");
    let kinds: Vec<String> = s
        .list_audit(Some("demo"), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "metadata.updated").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "freight.aliased").count(), 1);
}

async fn promotions_are_one_per_stage_and_keep_their_state(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let p = barge_store::StoredPromotion {
        project: "demo".into(),
        name: "dev.01jabc.1234567".into(),
        stage: "dev".into(),
        freight: "1234567890".into(),
        actor: "alice".into(),
        phase: "Running".into(),
        message: String::new(),
        plan: serde_json::json!({"steps": [{"uses": "git-clone"}]}),
        state: serde_json::json!({"steps": [], "outputs": {}}),
        created_at: 10,
        updated_at: 10,
    };
    s.create_promotion(&p).await.unwrap();
    // One promotion per stage at a time.
    let second = barge_store::StoredPromotion {
        name: "dev.01jdef.1234567".into(),
        ..p.clone()
    };
    let e = s.create_promotion(&second).await.unwrap_err();
    assert_eq!(e.class(), barge_core::ErrorClass::Conflict, "{e}");
    assert!(e.to_string().contains("dev.01jabc.1234567"), "{e}");
    // Another stage is independent.
    s.create_promotion(&barge_store::StoredPromotion {
        name: "prod.01jxyz.1234567".into(),
        stage: "prod".into(),
        created_at: 11,
        ..p.clone()
    })
    .await
    .unwrap();
    let state = serde_json::json!({"steps": [{"alias": "step-1", "status": "Succeeded"}], "outputs": {"step-1": {"commits": {}}}});
    s.save_promotion_state("demo", &p.name, &state, "Running", "", 20)
        .await
        .unwrap();
    let unfinished = s.unfinished_promotion("demo", "dev").await.unwrap().unwrap();
    assert_eq!(
        (unfinished.state, unfinished.updated_at, unfinished.plan),
        (state.clone(), 20, p.plan.clone())
    );
    s.save_promotion_state("demo", &p.name, &state, "Succeeded", "", 30)
        .await
        .unwrap();
    assert!(s.unfinished_promotion("demo", "dev").await.unwrap().is_none());
    let listed: Vec<String> = s
        .list_promotions(Some("demo"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(listed, vec!["prod.01jxyz.1234567", "dev.01jabc.1234567"]);
    let missing = s
        .save_promotion_state("demo", "nope", &state, "Running", "", 40)
        .await
        .unwrap_err();
    assert_eq!(missing.class(), barge_core::ErrorClass::NotFound);
    let kinds: Vec<String> = s
        .list_audit(Some("demo"), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, vec!["promotion.created", "promotion.created"]);
}

async fn opens_creates_and_migrates_idempotently(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let u = url(b, &dir);
    let s = Store::open(&u).await.unwrap();
    assert_eq!(s.backend(), b);
    s.mint_freight("demo", "app", freight("app", "1.0.0"), 1).await.unwrap();
    drop(s);
    let again = Store::open(&u).await.unwrap();
    assert_eq!(
        again.list_freight(None, None).await.unwrap().len(),
        1,
        "data survives a reopen"
    );
    if b == Backend::Sqlite {
        assert!(
            dir.path().join("state/barge.db").is_file(),
            "the file and its directory are created"
        );
    }
}

async fn minting_is_idempotent(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let first = s
        .mint_freight("demo", "app", freight("app", "1.0.0"), 100)
        .await
        .unwrap();
    let second = s
        .mint_freight("demo", "app", freight("app", "1.0.0"), 200)
        .await
        .unwrap();
    assert!(first.created && !second.created);
    assert_eq!(
        first.freight, second.freight,
        "the stored Freight is returned unchanged"
    );
    assert_eq!(second.freight.created_at, 100);
    assert!(first.freight.freight.alias.is_some());
    assert_eq!(s.list_freight(Some("demo"), None).await.unwrap().len(), 1);
    // The same artifacts in another project are another Freight.
    assert!(
        s.mint_freight("other", "app", freight("app", "1.0.0"), 300)
            .await
            .unwrap()
            .created
    );
}

async fn aliases_are_unique_per_project(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let mut aliases = HashSet::new();
    for i in 0..60 {
        let m = s
            .mint_freight("demo", "app", freight("app", &format!("1.0.{i}")), i)
            .await
            .unwrap();
        assert!(
            aliases.insert(m.freight.freight.alias.clone().unwrap()),
            "duplicate alias"
        );
    }
    // A Freight's alias is derived from its ID: another store mints the same alias for it.
    let dir2 = tempfile::tempdir().unwrap();
    let s2 = Store::open(&url(Backend::Sqlite, &dir2)).await.unwrap();
    let a = s
        .get_freight("demo", &freight("app", "1.0.0").metadata.name)
        .await
        .unwrap()
        .unwrap();
    let b2 = s2
        .mint_freight("demo", "app", freight("app", "1.0.0"), 0)
        .await
        .unwrap();
    assert_eq!(a.freight.alias, b2.freight.freight.alias);
}

async fn lookup_by_name_or_alias_and_listing(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let old = s
        .mint_freight("demo", "app", freight("app", "1.0.0"), 10)
        .await
        .unwrap()
        .freight;
    let new = s
        .mint_freight("demo", "app", freight("app", "1.1.0"), 20)
        .await
        .unwrap()
        .freight;
    s.mint_freight("demo", "db", freight("db", "5.0.0"), 30).await.unwrap();
    let by_name = s
        .get_freight("demo", &old.freight.metadata.name)
        .await
        .unwrap()
        .unwrap();
    let by_alias = s
        .get_freight("demo", old.freight.alias.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name, by_alias);
    assert_eq!(by_name.freight.metadata.namespace.as_deref(), Some("demo"));
    assert!(
        s.get_freight("other", &old.freight.metadata.name)
            .await
            .unwrap()
            .is_none()
    );
    let app: Vec<String> = s
        .list_freight(Some("demo"), Some("app"))
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.freight.metadata.name)
        .collect();
    assert_eq!(
        app,
        [new.freight.metadata.name.clone(), old.freight.metadata.name.clone()],
        "newest first"
    );
    assert_eq!(s.list_freight(None, None).await.unwrap().len(), 3);
}

async fn discovery_status_upserts(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    assert!(s.get_discovery_status("demo", "app").await.unwrap().is_none());
    s.put_discovery_status(
        "demo",
        "app",
        &serde_json::json!({"observedRefs": [["main", "abc"]]}),
        1,
    )
    .await
    .unwrap();
    s.put_discovery_status(
        "demo",
        "app",
        &serde_json::json!({"observedRefs": [["main", "def"]]}),
        2,
    )
    .await
    .unwrap();
    let (status, at) = s.get_discovery_status("demo", "app").await.unwrap().unwrap();
    assert_eq!((status["observedRefs"][0][1].as_str(), at), (Some("def"), 2));
}

async fn audit_is_append_only_and_ordered(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let m = s
        .mint_freight("demo", "app", freight("app", "1.0.0"), 50)
        .await
        .unwrap();
    s.append_audit(barge_store::NewAudit {
        at: 60,
        project: "demo",
        kind: "promotion.requested",
        subject: "Stage/dev",
        actor: "alice",
        body: &serde_json::json!({"freight": m.freight.freight.metadata.name}),
    })
    .await
    .unwrap();
    s.append_audit(barge_store::NewAudit {
        at: 40,
        project: "other",
        kind: "freight.minted",
        subject: "Freight/x",
        actor: "barge",
        body: &serde_json::json!({}),
    })
    .await
    .unwrap();
    let events = s.list_audit(Some("demo"), 0).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["freight.minted", "promotion.requested"]);
    assert_eq!(
        events[0].subject,
        format!("Freight/{}", m.freight.freight.metadata.name)
    );
    assert_eq!(events[0].body["warehouse"], "app");
    assert_eq!(events[1].actor, "alice");
    assert_eq!(s.list_audit(None, 45).await.unwrap().len(), 2, "since filters by time");
    assert_eq!(s.list_audit(None, 0).await.unwrap().len(), 3);
    // Minting again audits nothing.
    s.mint_freight("demo", "app", freight("app", "1.0.0"), 70)
        .await
        .unwrap();
    assert_eq!(s.list_audit(Some("demo"), 0).await.unwrap().len(), 2);
}

async fn concurrent_mints_create_once(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let s = s.clone();
        set.spawn(async move {
            s.mint_freight("demo", "app", freight("app", "9.9.9"), i)
                .await
                .unwrap()
                .created
        });
    }
    let mut created = 0;
    while let Some(r) = set.join_next().await {
        created += usize::from(r.unwrap());
    }
    assert_eq!(created, 1, "exactly one writer creates it");
    assert_eq!(s.list_audit(Some("demo"), 0).await.unwrap().len(), 1);
}

#[test]
fn database_urls_are_redacted() {
    assert_eq!(
        barge_store::redact_url("postgres://barge:secret-pw@db:5432/barge"),
        "postgres://barge:***@db:5432/barge"
    );
    assert_eq!(
        barge_store::redact_url("sqlite:///var/lib/barge.db"),
        "sqlite:///var/lib/barge.db"
    );
}
