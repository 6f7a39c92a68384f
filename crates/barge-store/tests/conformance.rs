//! One conformance suite, run against SQLite and against a real PostgreSQL server.

use barge_core::analysis::VerificationPhase;
use barge_core::model::ObjectMeta;
use barge_core::model::kargo::{Freight, FreightOrigin, Image};
use barge_core::promotion::Phase;
use barge_store::{Backend, Store};

mod support;
use std::collections::HashSet;
use support::url;

/// The kinds of a project's audit events, oldest first.
async fn audit_kinds(s: &Store) -> Vec<String> {
    s.list_audit(Some("demo"), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.kind)
        .collect()
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
    a_current_schema_is_trusted_only_while_it_matches,
    minting_is_idempotent,
    aliases_are_unique_per_project,
    lookup_by_name_or_alias_and_listing,
    freight_pages_follow_their_cursor_with_their_facts,
    a_warehouses_count_and_newest_freight,
    freight_heads_are_the_listing_without_bodies,
    discovery_status_upserts,
    image_memory_upserts_by_fingerprint,
    audit_is_append_only_and_ordered,
    concurrent_mints_create_once,
    promotions_are_one_per_stage_and_keep_their_state,
    metadata_merges_and_aliases_rename,
    freight_moves_through_stages,
    promotions_are_claimed_leased_and_aborted,
    promotions_running_elsewhere_are_others_under_a_live_lease,
    a_runner_lists_heads_and_reads_only_the_plans_it_claims,
    live_replicas_are_those_with_a_recent_heartbeat,
    a_promotions_saves_are_fenced_by_its_lease,
    history_filters_newest_first,
    definitions_are_recorded_when_they_change,
    racing_replicas_queue_one_promotion_per_stage,
    verifications_run_once_per_stage_and_record_their_outcome,
    verifications_are_leased_and_an_abort_wins,
    tokens_are_found_by_hash_listed_and_revoked,
    discovery_is_leased_once_per_due_time_by_the_databases_clock,
    replicas_heartbeat_and_show_what_they_hold,
    approvers_are_recorded_once_each_and_every_approval_is_audited,
    every_write_a_stages_status_reads_raises_its_projects_counter,
    a_kept_value_is_derived_again_after_a_write_by_another_handle,
);

/// Asserts that `write` raised project demo's change counter and left project other's alone;
/// returns the new count.
async fn raised(s: &Store, before: i64, what: &str) -> i64 {
    let now = s.project_version("demo").await.unwrap();
    assert!(now > before, "{what} left the counter at {now}");
    assert_eq!(
        s.project_version("other").await.unwrap(),
        0,
        "{what} raised another project's"
    );
    now
}

async fn every_write_a_stages_status_reads_raises_its_projects_counter(b: Backend) {
    use barge_store::HoldChange;
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    assert_eq!(s.project_version("demo").await.unwrap(), 0);
    let mut n = 0;
    let f1 = s
        .mint_freight("demo", "app", freight("app", "1.0.0"), 100)
        .await
        .unwrap();
    let f1 = f1.freight.freight.metadata.name;
    n = raised(&s, n, "minting").await;
    // Minting what exists changes nothing.
    s.mint_freight("demo", "app", freight("app", "1.0.0"), 200)
        .await
        .unwrap();
    assert_eq!(
        s.project_version("demo").await.unwrap(),
        n,
        "a mint of existing Freight"
    );
    s.set_freight_alias("demo", &f1, "first", "alice", 300).await.unwrap();
    n = raised(&s, n, "an alias").await;
    s.create_promotion(&promotion("dev.a", "dev", &f1, Phase::Pending, 400))
        .await
        .unwrap();
    n = raised(&s, n, "a new promotion").await;
    let now = s.now().await.unwrap();
    assert!(
        s.claim_promotion("demo", "dev.a", RUNNER, now + 60_000, now)
            .await
            .unwrap()
    );
    n = raised(&s, n, "a claim (Pending to Running)").await;
    // Leases are no part of a Stage's status.
    s.renew_leases(RUNNER, now + 120_000).await.unwrap();
    assert!(
        s.take_over_promotion("demo", "dev.a", RUNNER, "replica-b", now + 120_000)
            .await
            .unwrap()
    );
    assert_eq!(
        s.project_version("demo").await.unwrap(),
        n,
        "a lease renewed or taken over"
    );
    let entry = entry("dev", &f1, "dev.a", false, HoldChange::Set);
    let state = serde_json::json!({});
    s.save_promotion_state(
        "demo",
        "dev.a",
        "replica-b",
        &state,
        Phase::Running,
        "step 1",
        500,
        None,
    )
    .await
    .unwrap();
    n = raised(&s, n, "a promotion's progress").await;
    s.save_promotion_state(
        "demo",
        "dev.a",
        "replica-b",
        &state,
        Phase::Succeeded,
        "",
        600,
        Some(&entry),
    )
    .await
    .unwrap();
    n = raised(&s, n, "a promotion's success (the Freight entering, a hold)").await;
    s.release_stage("demo", "dev", "alice", 700).await.unwrap();
    n = raised(&s, n, "a release").await;
    s.hold_stage(&barge_store::StageHold {
        project: "demo".into(),
        stage: "dev".into(),
        warehouse: "app".into(),
        freight: f1.clone(),
        promotion: "dev.a".into(),
        actor: "alice".into(),
        created_at: 800,
    })
    .await
    .unwrap();
    n = raised(&s, n, "a hold").await;
    s.approve("demo", &f1, "prod", "app", "token:alice", "promoter", 900)
        .await
        .unwrap();
    n = raised(&s, n, "an approval").await;
    let v = s.create_verification("demo", "dev", &f1, "barge", 1_000).await.unwrap();
    n = raised(&s, n, "a new verification").await;
    let now = s.now().await.unwrap();
    assert!(
        s.claim_verification("demo", &v.id, RUNNER, now + 60_000, now)
            .await
            .unwrap()
    );
    n = raised(&s, n, "a verification's claim").await;
    s.save_verification_report("demo", &v.id, RUNNER, &serde_json::json!({"measured": 1}))
        .await
        .unwrap();
    n = raised(&s, n, "a verification's report").await;
    s.finish_verification(
        &v,
        RUNNER,
        VerificationPhase::Succeeded,
        "",
        &serde_json::json!({}),
        1_100,
    )
    .await
    .unwrap();
    n = raised(&s, n, "a verification's outcome").await;
    s.create_verification("demo", "dev", &f1, "alice", 1_200).await.unwrap();
    n = raised(&s, n, "another verification").await;
    s.abort_verification("demo", "dev", "alice", 1_300).await.unwrap();
    n = raised(&s, n, "a verification aborted").await;
    s.create_promotion(&promotion("dev.b", "dev", &f1, Phase::Pending, 1_400))
        .await
        .unwrap();
    n = raised(&s, n, "another promotion").await;
    s.abort_promotion("demo", "dev.b", "alice", 1_500).await.unwrap();
    raised(&s, n, "a promotion aborted").await;
}

async fn a_kept_value_is_derived_again_after_a_write_by_another_handle(b: Backend) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let db = url(b, &dir);
    // Two handles with their own connections and kept values: as two replicas, or a daemon
    // and a CLI call, see the one database.
    let daemon = Store::open(&db).await.unwrap();
    let other = Store::open(&db).await.unwrap();
    daemon
        .mint_freight("demo", "app", freight("app", "1.0.0"), 100)
        .await
        .unwrap();
    let derivations = AtomicUsize::new(0);
    let heads = |s: &Store| {
        let s = s.clone();
        let derivations = &derivations;
        async move {
            derivations.fetch_add(1, Ordering::SeqCst);
            s.freight_heads("demo").await
        }
    };
    let first = daemon.derived("demo", || heads(&daemon)).await.unwrap();
    let again = daemon.derived("demo", || heads(&daemon)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "nothing changed: the value is kept"
    );
    assert_eq!(derivations.load(Ordering::SeqCst), 1);
    // A write by the other handle, then at once a read by the first: it sees the write.
    other
        .mint_freight("demo", "app", freight("app", "1.1.0"), 200)
        .await
        .unwrap();
    let after = daemon.derived("demo", || heads(&daemon)).await.unwrap();
    assert_eq!(after.len(), 2, "the other handle's Freight");
    // And its own writes.
    daemon
        .set_freight_alias("demo", &after[0].name, "newest", "alice", 300)
        .await
        .unwrap();
    let renamed = daemon.derived("demo", || heads(&daemon)).await.unwrap();
    assert_eq!(renamed[0].alias, "newest");
    assert_eq!(derivations.load(Ordering::SeqCst), 3);
    // A write to another project keeps this one's value.
    other
        .mint_freight("other", "app", freight("app", "2.0.0"), 400)
        .await
        .unwrap();
    let kept = daemon.derived("demo", || heads(&daemon)).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&renamed, &kept));
    // A store opened for one call keeps nothing.
    let once = Store::open_for_one_call(&db).await.unwrap();
    let a = once.derived("demo", || heads(&once)).await.unwrap();
    let b = once.derived("demo", || heads(&once)).await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&a, &b));
}

async fn approvers_are_recorded_once_each_and_every_approval_is_audited(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let first = s
        .approve("demo", "f1", "prod", "app", "token:alice", "promoter", 1_000)
        .await
        .unwrap();
    let again = s
        .approve("demo", "f1", "prod", "app", "token:alice", "promoter", 2_000)
        .await
        .unwrap();
    let other = s
        .approve("demo", "f1", "prod", "app", "token:root", "admin", 3_000)
        .await
        .unwrap();
    // Another Stage and another Freight are counted apart.
    s.approve("demo", "f1", "staging", "app", "token:bob", "promoter", 4_000)
        .await
        .unwrap();
    s.approve("demo", "f2", "prod", "app", "token:bob", "promoter", 5_000)
        .await
        .unwrap();
    assert_eq!((first, again, other), (true, false, true));
    let prod: Vec<(String, String, i64)> = s
        .approvals_of("demo", "f1", "prod")
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.approver, a.role, a.approved_at))
        .collect();
    assert_eq!(
        prod,
        [
            ("token:alice".to_string(), "promoter".to_string(), 1_000),
            ("token:root".to_string(), "admin".to_string(), 3_000)
        ]
    );
    assert_eq!(s.list_approvals("demo").await.unwrap().len(), 4);
    assert!(s.list_approvals("other").await.unwrap().is_empty());
    let audited: Vec<(String, serde_json::Value)> = s
        .list_audit(Some("demo"), 0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "freight.approved")
        .map(|e| (e.actor, e.body["first"].clone()))
        .collect();
    assert_eq!(audited.len(), 5, "every approval is audited, repeats included");
    assert_eq!(
        audited[..3],
        [
            ("token:alice".to_string(), serde_json::json!(true)),
            ("token:alice".to_string(), serde_json::json!(false)),
            ("token:root".to_string(), serde_json::json!(true))
        ]
    );
}

async fn tokens_are_found_by_hash_listed_and_revoked(b: Backend) {
    use barge_core::authz::Role;
    use barge_store::NewToken;
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let stages = vec!["dev".to_string(), "staging".into()];
    let ci = NewToken {
        name: "ci",
        hash: "aa11",
        role: Role::Promoter,
        project: Some("demo"),
        stages: Some(&stages),
    };
    let created = s.create_token(ci, "alice", 10).await.unwrap();
    assert_eq!(created.stages.as_deref(), Some(&stages[..]));
    let ops = NewToken {
        name: "ops",
        hash: "bb22",
        role: Role::Admin,
        project: None,
        stages: None,
    };
    s.create_token(ops, "alice", 11).await.unwrap();
    // A name is taken once, also by another hash.
    let again = s
        .create_token(NewToken { hash: "cc33", ..ci }, "alice", 12)
        .await
        .unwrap_err();
    assert_eq!(again.class(), barge_core::ErrorClass::Conflict, "{again}");
    assert_eq!(s.token_by_hash("aa11").await.unwrap(), Some(created.clone()));
    assert_eq!(s.token_by_hash("cc33").await.unwrap(), None);
    s.token_used("ci", 20).await.unwrap();
    let listed = s.list_tokens().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["ci", "ops"]
    );
    assert_eq!(listed[0].last_used_at, Some(20));
    assert_eq!(listed[1].project, None);
    // Revoked once; the second revocation changes nothing.
    assert_eq!(s.revoke_token("ci", "bob", 30).await.unwrap().revoked_at, Some(30));
    assert_eq!(s.revoke_token("ci", "bob", 40).await.unwrap().revoked_at, Some(30));
    assert_eq!(s.token_by_hash("aa11").await.unwrap().unwrap().revoked_at, Some(30));
    let missing = s.revoke_token("nobody", "bob", 40).await.unwrap_err();
    assert_eq!(missing.class(), barge_core::ErrorClass::NotFound, "{missing}");
    let audit: Vec<(String, String, String)> = s
        .list_audit(None, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.kind, a.subject, a.actor))
        .collect();
    assert_eq!(
        audit,
        [
            ("token.created".to_string(), "Token/ci".to_string(), "alice".to_string()),
            ("token.created".into(), "Token/ops".into(), "alice".into()),
            ("token.revoked".into(), "Token/ci".into(), "bob".into()),
        ]
    );
}

async fn verifications_run_once_per_stage_and_record_their_outcome(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let f = freight("app", "1.0.0");
    s.mint_freight("demo", "app", f.clone(), 1).await.unwrap();
    let name = f.metadata.name.clone();
    let missing = s
        .create_verification("demo", "dev", &name, "barge", 5)
        .await
        .unwrap_err();
    assert_eq!(missing.class(), barge_core::ErrorClass::NotFound, "{missing}");
    promote_into_dev(&s, "dev.1", &name, 10, 20, false, barge_store::HoldChange::Keep).await;

    let v = s.create_verification("demo", "dev", &name, "barge", 30).await.unwrap();
    assert_eq!(v.phase, VerificationPhase::Pending);
    let again = s
        .create_verification("demo", "dev", &name, "alice", 31)
        .await
        .unwrap_err();
    assert_eq!(
        again.class(),
        barge_core::ErrorClass::Conflict,
        "one unfinished verification per Stage"
    );
    let stay = s.freight_stages("demo").await.unwrap();
    assert_eq!(stay[0].verification, "Running");

    // Saves are fenced by the lease, by the database's clock.
    let now = s.now().await.unwrap();
    assert!(
        s.claim_verification("demo", &v.id, "r1", now + 60_000, now)
            .await
            .unwrap()
    );
    assert!(
        !s.claim_verification("demo", &v.id, "r2", now + 60_000, now + 1)
            .await
            .unwrap(),
        "r1 holds the lease"
    );
    let report = serde_json::json!({"phase": "Running", "metrics": [{"name": "rate"}]});
    s.save_verification_report("demo", &v.id, "r1", &report).await.unwrap();
    // A measurement, as the engine's event sink audits it.
    s.append_audit(barge_store::NewAudit {
        at: 45,
        project: "demo",
        kind: "verification.measured",
        subject: "Stage/dev",
        actor: "barge",
        stage: "dev",
        freight: &v.freight,
        body: &serde_json::json!({"metric": "rate", "value": "[0.97]"}),
    })
    .await
    .unwrap();
    assert_eq!(s.verifications("demo", "dev", 10).await.unwrap()[0].report, report);

    s.finish_verification(&v, "r1", VerificationPhase::Succeeded, "", &report, 50)
        .await
        .unwrap();
    let stay = s.freight_stages("demo").await.unwrap();
    assert_eq!(
        (stay[0].verification.as_str(), stay[0].verified_at),
        ("Succeeded", Some(50))
    );
    let listed = s.verifications("demo", "dev", 10).await.unwrap();
    assert_eq!(
        (listed[0].phase.as_str(), listed[0].finished_at),
        ("Succeeded", Some(50))
    );
    assert!(s.runnable_verifications("r1", 60).await.unwrap().is_empty());
    let audited = s.list_audit(Some("demo"), 0).await.unwrap();
    let finished = audited.iter().rfind(|a| a.kind == "verification.finished").unwrap();
    assert_eq!(finished.body["outcome"], "Succeeded");
    let kinds = audit_kinds(&s).await;
    let tail: Vec<&str> = kinds.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        ["verification.started", "verification.measured", "verification.finished"]
    );

    // A second run may start once the first finished; a failure leaves the Freight unverified
    // in a new stay.
    let v2 = s.create_verification("demo", "dev", &name, "alice", 70).await.unwrap();
    assert!(
        s.claim_verification("demo", &v2.id, "r1", now + 60_000, now)
            .await
            .unwrap()
    );
    s.finish_verification(
        &v2,
        "r1",
        VerificationPhase::Failed,
        "Metric \"rate\" assessed Failed",
        &report,
        80,
    )
    .await
    .unwrap();
    let stay = s.freight_stages("demo").await.unwrap();
    assert_eq!(stay[0].verification, "Failed");
    let ids: Vec<String> = s
        .verifications("demo", "dev", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id)
        .collect();
    assert_eq!(ids, vec![v2.id.clone(), v.id.clone()], "newest first");
}

async fn verifications_are_leased_and_an_abort_wins(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let f = freight("app", "1.0.0");
    s.mint_freight("demo", "app", f.clone(), 1).await.unwrap();
    let name = f.metadata.name.clone();
    promote_into_dev(&s, "dev.1", &name, 10, 20, false, barge_store::HoldChange::Keep).await;
    let v = s.create_verification("demo", "dev", &name, "barge", 30).await.unwrap();
    assert!(s.claim_verification("demo", &v.id, "r1", 100, 40).await.unwrap());
    assert!(
        s.runnable_verifications("r2", 50).await.unwrap().is_empty(),
        "the lease holds"
    );
    assert_eq!(s.renew_leases("r1", 200).await.unwrap(), 1);
    assert!(s.runnable_verifications("r2", 150).await.unwrap().is_empty(), "renewed");
    // r1 dies: after its lease, r2 takes over.
    assert_eq!(s.runnable_verifications("r2", 250).await.unwrap().len(), 1);
    assert!(s.claim_verification("demo", &v.id, "r2", 1_000, 250).await.unwrap());
    // r1 was only stalled: waking, its report and its end are refused and change nothing.
    let stale = serde_json::json!({"phase": "Running", "by": "r1"});
    let refused = s
        .save_verification_report("demo", &v.id, "r1", &stale)
        .await
        .unwrap_err();
    assert!(matches!(refused, barge_store::StoreError::LeaseLost(_)), "{refused}");
    let refused = s
        .finish_verification(&v, "r1", VerificationPhase::Succeeded, "", &stale, 260)
        .await
        .unwrap_err();
    assert!(matches!(refused, barge_store::StoreError::LeaseLost(_)), "{refused}");
    let kept = &s.verifications("demo", "dev", 1).await.unwrap()[0];
    assert_eq!((kept.phase.as_str(), &kept.report), ("Running", &v.report));

    let aborted = s.abort_verification("demo", "dev", "alice", 300).await.unwrap();
    assert_eq!(
        (aborted.id.as_str(), aborted.phase.as_str()),
        (v.id.as_str(), "Aborted")
    );
    let late = s
        .save_verification_report("demo", &v.id, "r2", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(late, barge_store::StoreError::Aborted(_)), "{late}");
    let late = s
        .finish_verification(&v, "r2", VerificationPhase::Succeeded, "", &serde_json::json!({}), 310)
        .await
        .unwrap_err();
    assert!(
        matches!(late, barge_store::StoreError::Aborted(_)),
        "the abort wins: {late}"
    );
    let stay = s.freight_stages("demo").await.unwrap();
    assert_eq!((stay[0].verification.as_str(), stay[0].verified_at), ("Aborted", None));
    let none = s.abort_verification("demo", "dev", "alice", 320).await.unwrap_err();
    assert_eq!(none.class(), barge_core::ErrorClass::NotFound);
}

async fn racing_replicas_queue_one_promotion_per_stage(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let u = url(b, &dir);
    // Separate stores, as separate replicas would have.
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(Store::open(&u).await.unwrap());
    }
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = replicas[i % 4].clone();
        tasks.push(tokio::spawn(async move {
            s.create_promotion(&promotion(&format!("dev.{i}.f1"), "dev", "f1", Phase::Pending, 100))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => created += 1,
            Err(e) => assert_eq!(e.class(), barge_core::ErrorClass::Conflict, "{e}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(replicas[0].stage_promotions("demo").await.unwrap().len(), 1);
}

fn promotion(name: &str, stage: &str, freight: &str, phase: Phase, at: i64) -> barge_store::StoredPromotion {
    barge_store::StoredPromotion {
        project: "demo".into(),
        name: name.into(),
        stage: stage.into(),
        freight: freight.into(),
        actor: "alice".into(),
        phase,
        message: String::new(),
        plan: serde_json::json!({}),
        state: serde_json::json!({}),
        created_at: at,
        updated_at: at,
    }
}

fn entry<'a>(
    stage: &'a str,
    freight: &'a str,
    promotion: &'a str,
    verified: bool,
    hold: barge_store::HoldChange,
) -> barge_store::StageEntry<'a> {
    barge_store::StageEntry {
        stage,
        warehouse: "app",
        freight,
        promotion,
        actor: "alice",
        verified,
        hold,
    }
}

/// The runner that holds the lease of the promotions the tests save.
const RUNNER: &str = "replica-a";

/// Claims promotion `name` for [`RUNNER`], for a minute of the database's clock.
async fn hold_lease(s: &Store, name: &str) {
    let now = s.now().await.unwrap();
    assert!(
        s.claim_promotion("demo", name, RUNNER, now + 60_000, now)
            .await
            .unwrap()
    );
}

/// A promotion into dev, created at `created` and succeeded at `finished`.
async fn promote_into_dev(
    s: &Store,
    name: &str,
    freight: &str,
    created: i64,
    finished: i64,
    verified: bool,
    hold: barge_store::HoldChange,
) {
    s.create_promotion(&promotion(name, "dev", freight, Phase::Running, created))
        .await
        .unwrap();
    hold_lease(s, name).await;
    let entry = entry("dev", freight, name, verified, hold);
    s.save_promotion_state(
        "demo",
        name,
        RUNNER,
        &serde_json::json!({}),
        Phase::Succeeded,
        "",
        finished,
        Some(&entry),
    )
    .await
    .unwrap();
}

async fn freight_moves_through_stages(b: Backend) {
    use barge_store::HoldChange;
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    promote_into_dev(&s, "dev.a.f1", "f1", 100, 1_000, true, HoldChange::Keep).await;
    // f2 replaces f1 in dev three seconds later; a person chose it, so auto-promotion is held.
    promote_into_dev(&s, "dev.b.f2", "f2", 3_500, 4_000, false, HoldChange::Set).await;
    let facts = s.freight_stages("demo").await.unwrap();
    let f1 = facts.iter().find(|f| f.freight == "f1").unwrap();
    assert_eq!(
        (f1.entered_at, f1.left_at, f1.longest_soak, f1.verified_at),
        (Some(1_000), Some(4_000), 3_000, Some(1_000))
    );
    assert!(!f1.current());
    let f2 = facts.iter().find(|f| f.freight == "f2").unwrap();
    assert!(f2.current());
    assert_eq!((f2.verified_at, f2.verification.as_str()), (None, ""));
    let holds = s.holds("demo").await.unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(
        (
            holds[0].freight.as_str(),
            holds[0].actor.as_str(),
            holds[0].promotion.as_str()
        ),
        ("f2", "alice", "dev.b.f2")
    );
    // Verification of f2's stay, through the path the daemon takes.
    let v = s
        .create_verification("demo", "dev", "f2", "barge", 4_500)
        .await
        .unwrap();
    let now = s.now().await.unwrap();
    assert!(
        s.claim_verification("demo", &v.id, "r1", now + 60_000, now)
            .await
            .unwrap()
    );
    s.finish_verification(
        &v,
        "r1",
        VerificationPhase::Succeeded,
        "",
        &serde_json::json!({}),
        5_000,
    )
    .await
    .unwrap();
    let f2 = s
        .freight_stages("demo")
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.freight == "f2")
        .unwrap();
    assert_eq!((f2.verified_at, f2.verification.as_str()), (Some(5_000), "Succeeded"));
    // f1 left dev: there is no stay of it to verify.
    let not_there = s
        .create_verification("demo", "dev", "f1", "barge", 5_000)
        .await
        .unwrap_err();
    assert_eq!(not_there.class(), barge_core::ErrorClass::NotFound);
    // Approval makes a row for a stage the Freight never entered.
    s.approve("demo", "f1", "prod", "app", "bob", "promoter", 6_000)
        .await
        .unwrap();
    let approved = s
        .freight_stages("demo")
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.stage == "prod")
        .unwrap();
    assert_eq!(
        (
            approved.approved_by.as_deref(),
            approved.approved_at,
            approved.entered_at
        ),
        (Some("bob"), Some(6_000), None)
    );
    // Promoting the candidate again clears the hold; f1 comes back, its soak so far kept.
    promote_into_dev(&s, "dev.c.f1", "f1", 7_000, 8_000, true, HoldChange::Clear).await;
    assert!(s.holds("demo").await.unwrap().is_empty());
    let facts = s.freight_stages("demo").await.unwrap();
    let f1 = facts.iter().find(|f| f.freight == "f1" && f.stage == "dev").unwrap();
    assert_eq!((f1.entered_at, f1.left_at, f1.longest_soak), (Some(8_000), None, 3_000));
    let f2 = facts.iter().find(|f| f.freight == "f2").unwrap();
    assert_eq!((f2.left_at, f2.longest_soak), (Some(8_000), 4_000));
    // Hold and release by hand.
    s.hold_stage(&barge_store::StageHold {
        project: "demo".into(),
        stage: "dev".into(),
        warehouse: "app".into(),
        freight: "f1".into(),
        promotion: String::new(),
        actor: "carol".into(),
        created_at: 9_000,
    })
    .await
    .unwrap();
    assert_eq!(s.holds("demo").await.unwrap()[0].actor, "carol");
    assert_eq!(s.release_stage("demo", "dev", "dave", 9_500).await.unwrap(), 1);
    assert_eq!(s.release_stage("demo", "dev", "dave", 9_600).await.unwrap(), 0);
    let kinds = audit_kinds(&s).await;
    assert_eq!(
        kinds,
        [
            "promotion.created",
            "promotion.finished",
            "stage.entered",
            "promotion.created",
            "promotion.finished",
            "stage.entered",
            "stage.held",
            "verification.started",
            "verification.finished",
            "freight.approved",
            "promotion.created",
            "promotion.finished",
            "stage.entered",
            "stage.released",
            "stage.held",
            "stage.released",
        ]
    );
}

/// A runner that stalled past its lease (a GC pause, a partition, SIGSTOP) and was taken over
/// can save nothing: neither progress nor an end, and the new holder's state stays as it is.
async fn a_promotions_saves_are_fenced_by_its_lease(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let name = "dev.a.f1";
    s.create_promotion(&promotion(name, "dev", "f1", Phase::Pending, 100))
        .await
        .unwrap();
    let now = s.now().await.unwrap();
    let a_lease = now + 60_000;
    assert!(
        s.claim_promotion("demo", name, "replica-a", a_lease, now)
            .await
            .unwrap()
    );
    let step =
        |n: u32| serde_json::json!({"steps": [{"alias": "step-1", "status": "Succeeded", "n": n}], "outputs": {}});
    s.save_promotion_state("demo", name, "replica-a", &step(1), Phase::Running, "", now, None)
        .await
        .unwrap();
    // A's lease runs out by the database's clock and B takes the promotion over.
    assert!(
        s.claim_promotion("demo", name, "replica-b", a_lease + 60_000, a_lease + 1)
            .await
            .unwrap()
    );
    s.save_promotion_state("demo", name, "replica-b", &step(2), Phase::Running, "", now + 2, None)
        .await
        .unwrap();
    // A wakes: its progress and its end are refused, and leave B's state untouched.
    for phase in [Phase::Running, Phase::Succeeded, Phase::Errored] {
        let refused = s
            .save_promotion_state("demo", name, "replica-a", &step(9), phase, "stale", now + 3, None)
            .await
            .unwrap_err();
        assert!(matches!(refused, barge_store::StoreError::LeaseLost(_)), "{refused}");
        assert_eq!(refused.class(), barge_core::ErrorClass::Conflict);
    }
    let kept = s.get_promotion("demo", name).await.unwrap().unwrap();
    assert_eq!(
        (kept.phase, kept.state, kept.message, kept.updated_at),
        (Phase::Running, step(2), String::new(), now + 2)
    );
    assert_eq!(
        s.promotion_lease("demo", name).await.unwrap(),
        Some(("replica-b".to_string(), a_lease + 60_000))
    );
    assert!(!audit_kinds(&s).await.contains(&"promotion.finished".to_string()));
    // A lease that ran out by the database's clock fences its holder's saves too, before
    // anyone takes it over (the holder claims it again to go on).
    let now = s.now().await.unwrap();
    assert!(
        s.claim_promotion("demo", name, "replica-b", now - 1, now)
            .await
            .unwrap()
    );
    let expired = s
        .save_promotion_state("demo", name, "replica-b", &step(3), Phase::Running, "", now, None)
        .await
        .unwrap_err();
    assert!(matches!(expired, barge_store::StoreError::LeaseLost(_)), "{expired}");
    assert_eq!(s.get_promotion("demo", name).await.unwrap().unwrap().state, step(2));
}

async fn promotions_are_claimed_leased_and_aborted(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    s.create_promotion(&promotion("dev.a.f1", "dev", "f1", Phase::Pending, 100))
        .await
        .unwrap();
    s.create_promotion(&promotion("qa.a.f1", "qa", "f1", Phase::Pending, 200))
        .await
        .unwrap();
    let runnable: Vec<String> = s
        .runnable_promotions("replica-1", 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(runnable, ["dev.a.f1", "qa.a.f1"]);
    // Only one runner gets a promotion.
    assert!(
        s.claim_promotion("demo", "dev.a.f1", "replica-1", 10_000, 1_000)
            .await
            .unwrap()
    );
    assert!(
        !s.claim_promotion("demo", "dev.a.f1", "replica-2", 10_000, 1_000)
            .await
            .unwrap()
    );
    let runnable: Vec<String> = s
        .runnable_promotions("replica-2", 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(runnable, ["qa.a.f1"]);
    // The replica that held it, restarted, takes it back at once.
    let mine: Vec<String> = s
        .runnable_promotions("replica-1", 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(mine, ["dev.a.f1", "qa.a.f1"]);
    // Renewed leases hold; a lease that ended lets another runner resume.
    assert_eq!(s.renew_leases("replica-1", 20_000).await.unwrap(), 1);
    assert!(
        !s.claim_promotion("demo", "dev.a.f1", "replica-2", 30_000, 15_000)
            .await
            .unwrap()
    );
    assert!(
        s.claim_promotion("demo", "dev.a.f1", "replica-2", 30_000, 25_000)
            .await
            .unwrap()
    );
    // Abort: the runner's next save is refused; finished promotions cannot be aborted.
    let aborted = s.abort_promotion("demo", "dev.a.f1", "bob", 26_000).await.unwrap();
    assert_eq!(
        (aborted.phase.as_str(), aborted.message.as_str()),
        ("Aborted", "aborted by bob")
    );
    // The phases keep their text in the audit trail (and the database: rows read back above).
    let audited = s.list_audit(Some("demo"), 0).await.unwrap();
    let abort = audited.iter().rfind(|a| a.kind == "promotion.aborted").unwrap();
    assert_eq!(
        (&abort.body["phase"], &abort.body["previousPhase"]),
        (&serde_json::json!("Aborted"), &serde_json::json!("Running"))
    );
    let refused = s
        .save_promotion_state(
            "demo",
            "dev.a.f1",
            RUNNER,
            &serde_json::json!({}),
            Phase::Running,
            "",
            27_000,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, barge_store::StoreError::Aborted(_)), "{refused}");
    assert_eq!(
        s.get_promotion("demo", "dev.a.f1").await.unwrap().unwrap().phase,
        Phase::Aborted
    );
    let named: Vec<Phase> = s
        .promotions_named("dev.a.f1")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.phase)
        .collect();
    assert_eq!(named, [Phase::Aborted]);
    assert!(s.promotions_named("nope").await.unwrap().is_empty());
    let again = s.abort_promotion("demo", "dev.a.f1", "bob", 28_000).await.unwrap_err();
    assert_eq!(again.class(), barge_core::ErrorClass::Conflict);
    // The stage is free for a new promotion.
    s.create_promotion(&promotion("dev.b.f2", "dev", "f2", Phase::Pending, 29_000))
        .await
        .unwrap();
    let aborts = s
        .history(&barge_store::AuditQuery {
            project: Some("demo"),
            stage: Some("dev"),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(aborts[1].kind, "promotion.aborted");
    assert_eq!(aborts[1].actor, "bob");
}

async fn promotions_running_elsewhere_are_others_under_a_live_lease(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    for (name, stage, at) in [
        ("dev.a.f1", "dev", 100),
        ("qa.a.f1", "qa", 200),
        ("prod.a.f1", "prod", 300),
        ("uat.a.f1", "uat", 400),
    ] {
        s.create_promotion(&promotion(name, stage, "f1", Phase::Pending, at))
            .await
            .unwrap();
    }
    // replica-2 runs qa and dev (lease until 10 s), replica-3 prod (until 5 s); uat waits.
    for (name, owner, lease) in [
        ("qa.a.f1", "replica-2", 10_000),
        ("dev.a.f1", "replica-2", 10_000),
        ("prod.a.f1", "replica-3", 5_000),
    ] {
        assert!(s.claim_promotion("demo", name, owner, lease, 1_000).await.unwrap());
    }
    let elsewhere = |owner: &'static str, now: i64| {
        let s = s.clone();
        async move {
            s.promotions_running_elsewhere(owner, now)
                .await
                .unwrap()
                .into_iter()
                .map(|(owner, p)| (owner, p.name))
                .collect::<Vec<_>>()
        }
    };
    let pair = |o: &str, n: &str| (o.to_string(), n.to_string());
    // Oldest first, with who runs each; a Pending promotion runs nowhere.
    assert_eq!(
        elsewhere("replica-1", 2_000).await,
        [
            pair("replica-2", "dev.a.f1"),
            pair("replica-2", "qa.a.f1"),
            pair("replica-3", "prod.a.f1")
        ]
    );
    // A replica's own promotions are not elsewhere.
    assert_eq!(elsewhere("replica-2", 2_000).await, [pair("replica-3", "prod.a.f1")]);
    // A lease that ran out (its replica died) no longer counts: its work is anyone's.
    assert_eq!(
        elsewhere("replica-1", 6_000).await,
        [pair("replica-2", "dev.a.f1"), pair("replica-2", "qa.a.f1")]
    );
}

/// Issue #19: a runner's pass read every queued promotion's plan; it now lists names and
/// config repositories, and a claim returns the one promotion it took, plan included.
async fn a_runner_lists_heads_and_reads_only_the_plans_it_claims(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let mut dev = promotion("dev.a.f1", "dev", "f1", Phase::Pending, 100);
    dev.plan = serde_json::json!({"steps": [{"uses": "git-clone", "config": {"repoURL": "https://git.example.com/config.git"}}]});
    s.create_promotion_with_repo(&dev, Some("https://git.example.com/config.git"))
        .await
        .unwrap();
    // Created without one (a caller that does not know it): listed with none.
    s.create_promotion(&promotion("qa.a.f1", "qa", "f1", Phase::Pending, 200))
        .await
        .unwrap();
    let heads = s.runnable_promotions("replica-1", 1_000).await.unwrap();
    let listed: Vec<(&str, &str, &str)> = heads
        .iter()
        .map(|h| (h.name.as_str(), h.stage.as_str(), h.config_repo.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("dev.a.f1", "dev", "https://git.example.com/config.git"),
            ("qa.a.f1", "qa", "")
        ]
    );
    let claimed = s
        .claim_promotion_returning("demo", "dev.a.f1", "replica-1", 10_000, 1_000)
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!((claimed.phase, &claimed.plan), (Phase::Running, &dev.plan));
    // The claim raised the project's counter, as claim_promotion's does.
    assert!(s.project_version("demo").await.unwrap() > 0);
    assert_eq!(
        s.claim_promotion_returning("demo", "dev.a.f1", "replica-2", 10_000, 1_000)
            .await
            .unwrap(),
        None
    );
    let elsewhere = s.promotions_running_elsewhere("replica-2", 2_000).await.unwrap();
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(
        (elsewhere[0].0.as_str(), elsewhere[0].1.config_repo.as_str()),
        ("replica-1", "https://git.example.com/config.git")
    );
}

async fn live_replicas_are_those_with_a_recent_heartbeat(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    assert!(s.live_replicas(60_000).await.unwrap().is_empty());
    s.heartbeat("pod-b", "host-b", "1.0", true).await.unwrap();
    s.heartbeat("pod-a", "host-a", "1.0", true).await.unwrap();
    assert_eq!(s.live_replicas(60_000).await.unwrap(), ["pod-a", "pod-b"]);
    // A heartbeat older than the window: not live (by the database's clock). pod-b's is at
    // least 3 s old, past the 2 s window whatever the load; pod-a's fresh one stays inside it
    // unless this thread stalls 2 s between the two calls (a 300 ms window did not leave a
    // loaded machine that margin).
    tokio::time::sleep(std::time::Duration::from_millis(3_000)).await;
    s.heartbeat("pod-a", "host-a", "1.0", false).await.unwrap();
    assert_eq!(s.live_replicas(2_000).await.unwrap(), ["pod-a"]);
    // The change counters, every project's in one read.
    assert!(s.project_versions().await.unwrap().is_empty());
    s.create_promotion(&promotion("dev.a.f1", "dev", "f1", Phase::Pending, 100))
        .await
        .unwrap();
    let versions = s.project_versions().await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].0, "demo");
    assert_eq!(versions[0].1, s.project_version("demo").await.unwrap());
}

async fn history_filters_newest_first(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    for (i, (stage, freight)) in [("dev", "f1"), ("dev", "f2"), ("prod", "f1"), ("", "f3")]
        .iter()
        .enumerate()
    {
        s.append_audit(barge_store::NewAudit {
            at: 100 * (i as i64 + 1),
            project: if i == 3 { "other" } else { "demo" },
            kind: "k",
            subject: "s",
            actor: "a",
            stage,
            freight,
            body: &serde_json::json!({"i": i}),
        })
        .await
        .unwrap();
    }
    let q = |stage: Option<&'static str>, freight: Option<&'static str>, since: Option<i64>| barge_store::AuditQuery {
        project: None,
        stage,
        freight,
        since,
        before: None,
        limit: 100,
        ..Default::default()
    };
    let is = |events: Vec<barge_store::AuditEvent>| -> Vec<i64> {
        events.iter().map(|e| e.body["i"].as_i64().unwrap()).collect()
    };
    assert_eq!(is(s.history(&q(None, None, None)).await.unwrap()), [3, 2, 1, 0]);
    assert_eq!(is(s.history(&q(Some("dev"), None, None)).await.unwrap()), [1, 0]);
    assert_eq!(is(s.history(&q(None, Some("f1"), None)).await.unwrap()), [2, 0]);
    assert_eq!(is(s.history(&q(Some("dev"), Some("f1"), None)).await.unwrap()), [0]);
    assert_eq!(is(s.history(&q(None, None, Some(250))).await.unwrap()), [3, 2]);
    let all = s.history(&q(None, None, None)).await.unwrap();
    let older = s
        .history(&barge_store::AuditQuery {
            before: Some((all[1].at, all[1].id)),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(is(older), [1], "pages backwards, limited");
    // A writer's clock need not follow the ids: an event with a later id and an earlier time
    // is on the next page after the one before it in time, not skipped.
    s.append_audit(barge_store::NewAudit {
        at: 150,
        project: "other",
        kind: "k",
        subject: "s",
        actor: "a",
        stage: "",
        freight: "",
        body: &serde_json::json!({"i": 4}),
    })
    .await
    .unwrap();
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .history(&barge_store::AuditQuery {
                before,
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        before = Some((last.at, last.id));
        paged.extend(is(page));
    }
    assert_eq!(paged, [3, 2, 1, 4, 0]);
    let demo = s
        .history(&barge_store::AuditQuery {
            project: Some("demo"),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(is(demo), [2, 1, 0]);
}

async fn definitions_are_recorded_when_they_change(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    assert!(s.latest_definitions().await.unwrap().is_none());
    let mut texts = std::collections::BTreeMap::new();
    texts.insert("a.yaml".to_string(), "kind: Stage\n".to_string());
    assert!(s.save_definitions("defs/", &texts, 10).await.unwrap());
    assert!(
        !s.save_definitions("defs/", &texts, 20).await.unwrap(),
        "unchanged definitions are not recorded again"
    );
    texts.insert("b.yaml".to_string(), "kind: Warehouse\n".to_string());
    texts.remove("a.yaml");
    assert!(s.save_definitions("defs/", &texts, 30).await.unwrap());
    let latest = s.latest_definitions().await.unwrap().unwrap();
    assert_eq!((latest.loaded_at, latest.texts), (30, texts));
    let reloads = s.list_audit(None, 0).await.unwrap();
    assert_eq!(reloads.len(), 2);
    assert_eq!(reloads[1].body["changed"], serde_json::json!(["b.yaml"]));
    assert_eq!(reloads[1].body["removed"], serde_json::json!(["a.yaml"]));
}

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
    let kinds = audit_kinds(&s).await;
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
        phase: Phase::Running,
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
    hold_lease(&s, &p.name).await;
    s.save_promotion_state("demo", &p.name, RUNNER, &state, Phase::Running, "", 20, None)
        .await
        .unwrap();
    let unfinished = s.unfinished_promotion("demo", "dev").await.unwrap().unwrap();
    assert_eq!(
        (unfinished.state, unfinished.updated_at, unfinished.plan),
        (state.clone(), 20, p.plan.clone())
    );
    s.save_promotion_state("demo", &p.name, RUNNER, &state, Phase::Succeeded, "", 30, None)
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
        .save_promotion_state("demo", "nope", RUNNER, &state, Phase::Running, "", 40, None)
        .await
        .unwrap_err();
    assert_eq!(missing.class(), barge_core::ErrorClass::NotFound);
    let kinds = audit_kinds(&s).await;
    assert_eq!(
        kinds,
        vec!["promotion.created", "promotion.created", "promotion.finished"]
    );
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

/// Reopening a current store skips the migrator (one query); anything else about the schema
/// (an edited migration, a migration this build does not know) still reaches the migrator,
/// which refuses it.
async fn a_current_schema_is_trusted_only_while_it_matches(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let u = url(b, &dir);
    let s = Store::open(&u).await.unwrap();
    s.mint_freight("demo", "app", freight("app", "1.0.0"), 1).await.unwrap();
    drop(s);
    let one_call = Store::open_for_one_call(&u).await.unwrap();
    assert_eq!(one_call.list_freight(None, None).await.unwrap().len(), 1);
    drop(one_call);

    let raw = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&u)
        .await
        .unwrap();
    let first: Vec<u8> = sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations ORDER BY version LIMIT 1")
        .fetch_one(&raw)
        .await
        .unwrap();
    let set_first = |checksum: Vec<u8>| {
        sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = $1 WHERE version = (SELECT min(version) FROM _sqlx_migrations)",
        )
        .bind(checksum)
        .execute(&raw)
    };
    set_first(vec![0u8; 48]).await.unwrap();
    let edited = Store::open_for_one_call(&u).await.unwrap_err().to_string();
    assert!(edited.contains("modified"), "an edited migration is reported: {edited}");
    set_first(first).await.unwrap();
    Store::open_for_one_call(&u)
        .await
        .expect("the restored schema is current again");

    sqlx::query("INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (99990101000000, 'from a newer barge', CURRENT_TIMESTAMP, TRUE, $1, 0)")
        .bind(vec![1u8; 48])
        .execute(&raw)
        .await
        .unwrap();
    let newer = Store::open(&u).await.unwrap_err().to_string();
    assert!(
        newer.contains("missing"),
        "a schema from a newer build is reported: {newer}"
    );
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

async fn freight_pages_follow_their_cursor_with_their_facts(b: Backend) {
    use barge_store::HoldChange;
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    // Two in one second (1.0 s and 1.5 s), minted in either order of their names.
    let mut minted = Vec::new();
    for (warehouse, tag, at) in [
        ("app", "1.0.0", 1_000),
        ("app", "1.0.1", 1_500),
        ("db", "5.0.0", 2_000),
        ("app", "1.1.0", 2_999),
        ("app", "2.0.0", 4_000),
    ] {
        minted.push(
            s.mint_freight("demo", warehouse, freight(warehouse, tag), at)
                .await
                .unwrap()
                .freight,
        );
    }
    s.mint_freight("other", "app", freight("app", "9.0.0"), 5_000)
        .await
        .unwrap();
    // The API's order: newest second first, then name, whatever the milliseconds.
    let mut expected: Vec<(i64, String)> = minted
        .iter()
        .map(|f| (f.created_at / 1000, f.freight.metadata.name.clone()))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    let in_dev = expected[1].1.clone();
    promote_into_dev(&s, "dev.a", &in_dev, 100, 6_000, true, HoldChange::Keep).await;

    let mut pages = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let cursor = after.as_ref().map(|(at, n)| (*at, n.as_str()));
        let (page, facts) = s.freight_page("demo", None, cursor, 2).await.unwrap();
        // The page alone is the same page.
        assert_eq!(s.freight_page_only("demo", None, cursor, 2).await.unwrap(), page);
        let names: Vec<String> = page.iter().map(|f| f.freight.metadata.name.clone()).collect();
        // The facts are the page's Freight's, and only theirs.
        let fact_freight: Vec<&str> = facts.iter().map(|f| f.freight.as_str()).collect();
        let want: Vec<&str> = if names.contains(&in_dev) { vec![&in_dev] } else { vec![] };
        assert_eq!(fact_freight, want, "page {names:?}");
        let Some(last) = page.last() else { break };
        after = Some((last.created_at / 1000, last.freight.metadata.name.clone()));
        pages.push(names);
        if pages.len() == 1 {
            // Freight minted after the first page does not shift the next ones.
            s.mint_freight("demo", "app", freight("app", "3.0.0"), 9_000)
                .await
                .unwrap();
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let names: Vec<String> = expected.into_iter().map(|(_, n)| n).collect();
    assert_eq!(pages.concat(), names);

    let (db, _) = s.freight_page("demo", Some("db"), None, 10).await.unwrap();
    assert_eq!(s.freight_page_only("demo", Some("db"), None, 10).await.unwrap(), db);
    assert_eq!(
        db.iter().map(|f| f.warehouse.as_str()).collect::<Vec<_>>(),
        ["db"],
        "one Warehouse's"
    );
}

async fn a_warehouses_count_and_newest_freight(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let none = s.warehouse_freight("demo", "app").await.unwrap();
    assert_eq!((none.minted, none.newest_name, none.newest_alias), (0, None, None));
    s.mint_freight("demo", "app", freight("app", "1.0.0"), 10)
        .await
        .unwrap();
    let newest = s
        .mint_freight("demo", "app", freight("app", "1.1.0"), 20)
        .await
        .unwrap()
        .freight;
    s.mint_freight("demo", "db", freight("db", "5.0.0"), 30).await.unwrap();
    let app = s.warehouse_freight("demo", "app").await.unwrap();
    assert_eq!(
        (app.minted, app.newest_name, app.newest_alias),
        (
            2,
            Some(newest.freight.metadata.name.clone()),
            newest.freight.alias.clone()
        )
    );
}

async fn freight_heads_are_the_listing_without_bodies(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    for (warehouse, tag, at) in [("app", "1.0.0", 10), ("db", "5.0.0", 20), ("app", "1.1.0", 20)] {
        s.mint_freight("demo", warehouse, freight(warehouse, tag), at)
            .await
            .unwrap();
    }
    s.mint_freight("other", "app", freight("app", "9.0.0"), 30)
        .await
        .unwrap();
    let listed: Vec<barge_store::FreightHead> = s
        .list_freight(Some("demo"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|f| barge_store::FreightHead {
            name: f.freight.metadata.name,
            alias: f.freight.alias.unwrap(),
            warehouse: f.warehouse,
            created_at: f.created_at,
        })
        .collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(s.freight_heads("demo").await.unwrap(), listed);
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

async fn image_memory_upserts_by_fingerprint(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    assert!(s.get_image_memory("sha256:aa").await.unwrap().is_none());
    s.put_image_memory("sha256:aa", &serde_json::json!({"listSha256": "1"}), 1)
        .await
        .unwrap();
    s.put_image_memory("sha256:bb", &serde_json::json!({"listSha256": "other"}), 1)
        .await
        .unwrap();
    s.put_image_memory("sha256:aa", &serde_json::json!({"listSha256": "2"}), 2)
        .await
        .unwrap();
    let memory = s.get_image_memory("sha256:aa").await.unwrap().unwrap();
    assert_eq!(memory["listSha256"], "2", "the latest pass wins");
    let other = s.get_image_memory("sha256:bb").await.unwrap().unwrap();
    assert_eq!(other["listSha256"], "other", "each subscription has its own");
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
        stage: "dev",
        freight: &m.freight.freight.metadata.name,
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
        stage: "",
        freight: "x",
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

/// Issue #19: replicas racing for a Warehouse's pass: one takes it per due time; a refresh goes
/// to whichever replica takes the lease next, also when asked during another's pass; a lease
/// that is not renewed runs out by the database's clock.
async fn discovery_is_leased_once_per_due_time_by_the_databases_clock(b: Backend) {
    use barge_store::DiscoveryClaim;
    let dir = tempfile::tempdir().unwrap();
    let u = url(b, &dir);
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(Store::open(&u).await.unwrap());
    }
    let mut racing = tokio::task::JoinSet::new();
    for (i, s) in replicas.iter().enumerate() {
        let s = s.clone();
        racing.spawn(async move {
            (
                i,
                s.claim_discovery("demo", "app", &format!("r{i}"), 60_000)
                    .await
                    .unwrap(),
            )
        });
    }
    let mut taken = Vec::new();
    while let Some(r) = racing.join_next().await {
        let (i, claim) = r.unwrap();
        match claim {
            DiscoveryClaim::Taken { .. } => taken.push(i),
            DiscoveryClaim::NotNow { retry_in_ms } => assert!(retry_in_ms > 0),
        }
    }
    assert_eq!(taken.len(), 1, "one replica discovers per due time");
    let holder = taken[0];
    let other = (holder + 1) % 4;
    let s = &replicas[0];
    // Its pass ends; the next is due in a minute: nobody takes it now.
    let now = s.now().await.unwrap();
    assert!(
        s.finish_discovery("demo", "app", &format!("r{holder}"), now + 60_000)
            .await
            .unwrap()
    );
    match s
        .claim_discovery("demo", "app", &format!("r{other}"), 60_000)
        .await
        .unwrap()
    {
        DiscoveryClaim::NotNow { retry_in_ms } => assert!((50_000..=60_000).contains(&retry_in_ms), "{retry_in_ms}"),
        taken => panic!("not due yet, but {taken:?}"),
    }
    // A refresh asked of any replica goes to whichever takes the lease.
    s.request_discovery("demo", "app").await.unwrap();
    assert!(matches!(
        s.claim_discovery("demo", "app", &format!("r{other}"), 60_000)
            .await
            .unwrap(),
        DiscoveryClaim::Taken { .. }
    ));
    // Asked again during that pass: held now (tried again within a second), due once it ends.
    s.request_discovery("demo", "app").await.unwrap();
    match s.claim_discovery("demo", "app", "r-late", 60_000).await.unwrap() {
        DiscoveryClaim::NotNow { retry_in_ms } => assert!(retry_in_ms <= 1_000, "{retry_in_ms}"),
        taken => panic!("held by r{other}, but {taken:?}"),
    }
    assert!(
        !s.finish_discovery("demo", "app", "r-late", 0).await.unwrap(),
        "only the holder ends a pass"
    );
    assert!(
        s.finish_discovery("demo", "app", &format!("r{other}"), now + 60_000)
            .await
            .unwrap()
    );
    // The clock starts before the claim: the lease's 300 ms then all lie after `started`, and
    // the 200 ms floor below holds however long this thread is held up after the claim (with
    // `started` taken after it, a stall of 100 ms on a loaded machine left less than 200 ms).
    let started = std::time::Instant::now();
    assert!(matches!(
        s.claim_discovery("demo", "app", "r-late", 300).await.unwrap(),
        DiscoveryClaim::Taken { .. }
    ));
    // r-late dies without ending its pass: its lease runs out after 300 ms of the database's
    // clock, and another replica repeats the pass.
    loop {
        match s.claim_discovery("demo", "app", "r-next", 60_000).await.unwrap() {
            DiscoveryClaim::Taken { .. } => break,
            DiscoveryClaim::NotNow { retry_in_ms } => {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(10),
                    "the lease never ran out"
                );
                tokio::time::sleep(std::time::Duration::from_millis(retry_in_ms.min(100) as u64)).await;
            }
        }
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

async fn replicas_heartbeat_and_show_what_they_hold(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    let first = s.heartbeat("pod-a", "host-a", "1.0", true).await.unwrap();
    s.heartbeat("pod-b", "host-b", "1.0", true).await.unwrap();
    let again = s.heartbeat("pod-a", "host-a", "1.0", false).await.unwrap();
    assert!(again >= first);
    assert!(matches!(
        s.claim_discovery("demo", "app", "pod-a", 60_000).await.unwrap(),
        barge_store::DiscoveryClaim::Taken { .. }
    ));
    s.create_promotion(&promotion("dev.1.f1", "dev", "f1", Phase::Pending, 1))
        .await
        .unwrap();
    let now = s.now().await.unwrap();
    assert!(
        s.claim_promotion("demo", "dev.1.f1", "pod-b", now + 60_000, now)
            .await
            .unwrap()
    );
    // A renewal extends the discovery lease too.
    assert_eq!(s.renew_leases("pod-a", now + 120_000).await.unwrap(), 1);
    let listed = s.list_replicas().await.unwrap();
    let ids: HashSet<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["pod-a", "pod-b"]));
    let a = listed.iter().find(|r| r.id == "pod-a").unwrap();
    let b = listed.iter().find(|r| r.id == "pod-b").unwrap();
    assert_eq!(a.warehouses, vec!["demo/app".to_string()]);
    assert!(a.promotions.is_empty());
    assert_eq!(b.promotions, vec!["dev.1.f1".to_string()]);
    assert_eq!(a.started_at, first, "a heartbeat does not restart it");
    assert!((0..10_000).contains(&a.heartbeat_age_ms), "{}", a.heartbeat_age_ms);
}
