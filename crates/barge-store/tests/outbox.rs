//! The notification outbox on SQLite and on a real PostgreSQL server: rows are claimed by one
//! replica at a time (racing replicas never share a row), held by a lease that a dead
//! replica's claim loses, and record every attempt.

use barge_store::{Attempt, Backend, NewNotification, Store};
use std::collections::HashSet;

mod support;
use support::url;

fn row_of(i: usize) -> NewNotification {
    NewNotification {
        id: format!("n{i:03}"),
        project: "demo".into(),
        stage: "dev".into(),
        event: "PromotionSucceeded".into(),
        router: "r".into(),
        channel_kind: "MessageChannel".into(),
        channel: "team".into(),
        message: serde_json::json!({"text": format!("message {i}")}),
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(barge_store::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(barge_store::Backend::Postgres).await })*
        }
    };
}

both!(
    racing_replicas_claim_each_notification_once,
    a_lease_that_ran_out_is_claimed_again_and_attempts_are_recorded,
    racing_routers_queue_each_audit_rows_notifications_once,
    a_router_killed_mid_batch_leaves_its_rows_to_the_next_process_which_routes_each_once,
    rows_without_routers_are_marked_in_batches_and_never_routed_later,
);

/// Appends an audit row of `kind` for promotion `p{i}`.
async fn audit(s: &Store, kind: &str, i: i64) {
    s.append_audit(barge_store::NewAudit {
        at: 1_000 + i,
        project: "demo",
        kind,
        subject: &format!("Promotion/p{i}"),
        actor: "barge",
        stage: "dev",
        freight: "f",
        body: &serde_json::json!({"phase": "Succeeded"}),
    })
    .await
    .unwrap();
}

/// A batch's marks and its notifications commit together: a process that dies while routing
/// a batch (its rows already marked in the transaction, nothing queued yet) leaves every row
/// unrouted, and the next process (a restart: another store) routes each exactly once, over
/// several batches. Rows of kinds no router can name are written routed: routing never sees
/// them.
async fn a_router_killed_mid_batch_leaves_its_rows_to_the_next_process_which_routes_each_once(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let u = url(b, &dir);
    let first = Store::open(&u).await.unwrap();
    for i in 0..10 {
        audit(&first, "promotion.finished", i).await;
        // A step's row: no EventRouter can name it.
        audit(&first, "promotion.step", 100 + i).await;
    }
    // One notification per row it is handed, named by the row: a row routed twice would
    // queue a duplicate id, which the outbox's primary key refuses.
    let route = |row: &barge_store::AuditEvent| {
        vec![NewNotification {
            id: format!("for-{}", row.subject),
            ..row_of(0)
        }]
    };
    // The process dies (here: panics) in the middle of routing its batch, after the statement
    // that took and marked the rows.
    let dying = tokio::spawn(async move {
        let seen = std::sync::atomic::AtomicUsize::new(0);
        first
            .route_audit(100, 2_000, |row| {
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 5 {
                    panic!("killed while routing");
                }
                route(row)
            })
            .await
    });
    assert!(dying.await.unwrap_err().is_panic());

    let restarted = Store::open(&u).await.unwrap();
    assert!(restarted.list_notifications(None, None, 100).await.unwrap().is_empty());
    // (On PostgreSQL the dead process's transaction may hold its rows a moment longer, and
    // routing skips locked rows: route until all are, or the deadline.)
    // A minute: the loop ends once all are routed; the deadline is for a loaded machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut batches = Vec::new();
    while batches.iter().sum::<usize>() < 10 {
        assert!(std::time::Instant::now() < deadline, "routed only {batches:?}");
        let (routed, queued) = restarted.route_audit(4, 3_000, route).await.unwrap();
        assert_eq!(routed, queued);
        if routed > 0 {
            batches.push(routed);
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert!(batches.iter().all(|&n| n <= 4) && batches.len() >= 3, "{batches:?}");
    let listed = restarted.list_notifications(None, None, 100).await.unwrap();
    let ids: HashSet<String> = listed.iter().map(|n| n.id.clone()).collect();
    assert_eq!((listed.len(), ids.len()), (10, 10));
    assert!((0..10).all(|i| ids.contains(&format!("for-Promotion/p{i}"))), "{ids:?}");
    assert_eq!(restarted.route_audit(100, 4_000, route).await.unwrap(), (0, 0));
}

/// Definitions without an EventRouter mark the rows routed a batch per statement and queue
/// nothing; a router added afterwards is not handed those old rows, only new ones.
async fn rows_without_routers_are_marked_in_batches_and_never_routed_later(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    for i in 0..5 {
        audit(&s, "promotion.created", i).await;
    }
    assert_eq!(s.mark_audit_routed(2).await.unwrap(), 2);
    assert_eq!(s.mark_audit_routed(2).await.unwrap(), 2);
    assert_eq!(s.mark_audit_routed(2).await.unwrap(), 1);
    assert_eq!(s.mark_audit_routed(2).await.unwrap(), 0);
    let route = |row: &barge_store::AuditEvent| {
        vec![NewNotification {
            id: format!("for-{}", row.subject),
            ..row_of(0)
        }]
    };
    assert_eq!(s.route_audit(100, 2_000, route).await.unwrap(), (0, 0));
    audit(&s, "promotion.created", 5).await;
    assert_eq!(s.route_audit(100, 2_000, route).await.unwrap(), (1, 1));
    let listed = s.list_notifications(None, None, 100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, "for-Promotion/p5");
}

/// Audit rows commit unrouted; routers racing over them (processes after a restart, replicas)
/// queue each row's notifications exactly once, together with its mark, and skip rows routed
/// already.
async fn racing_routers_queue_each_audit_rows_notifications_once(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let u = url(b, &dir);
    let first = Store::open(&u).await.unwrap();
    for i in 0..40 {
        first
            .append_audit(barge_store::NewAudit {
                at: 1_000 + i,
                project: "demo",
                kind: "promotion.finished",
                subject: &format!("Promotion/p{i}"),
                actor: "barge",
                stage: "dev",
                freight: "f",
                body: &serde_json::json!({"phase": "Succeeded"}),
            })
            .await
            .unwrap();
    }
    // One notification per row, named by the row: a row routed twice would queue a duplicate
    // id, which the outbox's primary key refuses.
    let route = |row: &barge_store::AuditEvent| {
        vec![NewNotification {
            id: format!("for-{}", row.subject),
            ..row_of(0)
        }]
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = Store::open(&u).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut queued = 0;
            loop {
                let (routed, q) = s.route_audit(3, 2_000, route).await.unwrap();
                queued += q;
                if routed == 0 {
                    return queued;
                }
            }
        }));
    }
    let mut queued = 0;
    for t in tasks {
        queued += t.await.unwrap();
    }
    assert_eq!(queued, 40);
    let listed = first.list_notifications(None, None, 100).await.unwrap();
    let ids: HashSet<String> = listed.iter().map(|n| n.id.clone()).collect();
    assert_eq!(ids.len(), 40);
    assert!(ids.contains("for-Promotion/p0") && ids.contains("for-Promotion/p39"));
    // Everything is routed: a later pass routes nothing.
    assert_eq!(first.route_audit(100, 3_000, route).await.unwrap(), (0, 0));
}

async fn racing_replicas_claim_each_notification_once(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let u = url(b, &dir);
    let first = Store::open(&u).await.unwrap();
    let rows: Vec<NewNotification> = (0..40).map(row_of).collect();
    first.enqueue_notifications(&rows, 1_000).await.unwrap();
    let mut tasks = Vec::new();
    for r in 0..4 {
        let s = Store::open(&u).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = s
                    .claim_notifications(&format!("replica-{r}"), 60_000, 2_000, 3)
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|n| n.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!((total, seen.len()), (40, 40));
}

async fn a_lease_that_ran_out_is_claimed_again_and_attempts_are_recorded(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&url(b, &dir)).await.unwrap();
    s.enqueue_notifications(&[row_of(1)], 1_000).await.unwrap();
    // Not due before it was queued.
    assert!(s.claim_notifications("a", 5_000, 999, 10).await.unwrap().is_empty());
    let claimed = s.claim_notifications("a", 5_000, 1_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message["text"], "message 1");
    // Leased to "a": nobody else gets it until the lease runs out.
    assert!(s.claim_notifications("b", 9_000, 4_000, 10).await.unwrap().is_empty());
    // "a" died; "b" takes it after the lease, and "a"'s late record changes nothing.
    assert_eq!(s.claim_notifications("b", 9_000, 5_001, 10).await.unwrap().len(), 1);
    let late = Attempt::Delivered;
    assert!(!s.record_notification_attempt("n001", "a", late, 5_100).await.unwrap());
    let retry = Attempt::RetryAt {
        error: "slack channel answered 503",
        at: 7_000,
    };
    assert!(s.record_notification_attempt("n001", "b", retry, 5_200).await.unwrap());
    assert_eq!(s.next_notification_due().await.unwrap(), Some(7_000));
    assert!(s.claim_notifications("b", 20_000, 6_999, 10).await.unwrap().is_empty());
    assert_eq!(s.claim_notifications("b", 20_000, 7_000, 10).await.unwrap().len(), 1);
    assert!(
        s.record_notification_attempt("n001", "b", Attempt::Delivered, 7_100)
            .await
            .unwrap()
    );
    let listed = s.list_notifications(Some("demo"), None, 10).await.unwrap();
    assert_eq!(
        s.list_notifications(Some("demo"), Some("delivered"), 10).await.unwrap(),
        listed
    );
    assert!(
        s.list_notifications(Some("demo"), Some("failed"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(listed.len(), 1);
    let n = &listed[0];
    assert_eq!(
        (n.state.as_str(), n.attempts, n.last_error.as_str(), n.delivered_at),
        ("delivered", 2, "", Some(7_100))
    );
    assert_eq!(s.next_notification_due().await.unwrap(), None);
    assert!(s.claim_notifications("c", 90_000, 80_000, 10).await.unwrap().is_empty());
}
