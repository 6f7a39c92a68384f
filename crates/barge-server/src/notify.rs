//! The daemon's notification delivery task: it routes the audit rows not routed yet into the
//! outbox (those a process killed before routing left behind) and sends what the outbox holds
//! (barge_engine::notify) with the running definitions' channels: at start, right after a
//! round that found work, when the event sink queued notifications, when the next retry falls
//! due, and every [`IDLE`] (rows other processes and replicas queued), until the daemon
//! stops. It shares nothing with the other tasks but the store and the sink's wake-up, so a
//! dead channel slows no promotion, and an idle daemon does not poll the store.

use crate::serve::Shared;
use barge_engine::notify::Delivery;
use barge_promote::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the outbox is looked at when nothing woke the task: for rows other processes
/// and replicas queued (this process's sink wakes it).
const IDLE: Duration = Duration::from_secs(30);

pub(crate) async fn deliver_notifications(
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    owner: String,
    mut stop: watch::Receiver<bool>,
) {
    let delivery = Delivery::new(owner);
    let secrets = Arc::new(engine.data.secrets.clone());
    loop {
        if let Err(e) = shared.events.route_pending().await {
            tracing::warn!("notification outbox: cannot route the audit log: {e}");
        }
        let catalog = shared.catalog();
        let claimed = delivery
            .deliver_due(&shared.store, &engine.http, &catalog, &secrets)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("notification outbox: {e}");
                0
            });
        if claimed > 0 && !*stop.borrow() {
            continue;
        }
        // A retry falls due at the time its backoff set, not at the next idle look.
        let now = barge_engine::discover::now_millis();
        let wait = match shared.store.next_notification_due().await {
            Ok(Some(due)) => Duration::from_millis(due.saturating_sub(now).max(0) as u64).min(IDLE),
            _ => IDLE,
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.events.notifications_queued() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}
