//! Outbound notifications: what EventRouters ask for an audit row ([`notifications_for`],
//! which the events sink's routing writes into the store's outbox), and one delivery round
//! over the outbox ([`Delivery::deliver_due`]) that `barge serve`'s delivery task runs.
//!
//! Delivery is at least once: a row is marked after its send, so a process that dies between
//! the two sends it again once its lease runs out (receivers can drop repeats by the
//! notification's id: the `X-Barge-Delivery` header, the `id` field, the email's Message-ID).
//! A channel that fails is tried again with the one retry policy's backoff, stored in the row
//! (`next_attempt_at`), so waiting costs no task; sends run concurrently and each within
//! `barge_promote::notify::SEND_TIMEOUT`, so a dead channel delays only its own messages and
//! never a promotion (the sink only writes rows).

use crate::events::{Event, promotion_reason, verification_reason};
use barge_core::load::Catalog;
use barge_core::notify::{EventData, Message};
use barge_core::retry::RetryPolicy;
use barge_core::webhook::Secrets;
use barge_store::{Attempt, AuditEvent, NewNotification, Notification, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// The event type routers name for `event`: Kargo's reason, or barge's for holds and window
/// overrides (`barge_core::notify::EVENT_TYPES`).
pub fn event_type(event: &Event) -> Option<&'static str> {
    event.kargo_reason().or(match event {
        Event::StageHeld { .. } => Some("StageHeld"),
        Event::StageReleased { .. } => Some("StageReleased"),
        Event::WindowOverridden { .. } => Some("PromotionWindowOverridden"),
        _ => None,
    })
}

/// What routers and templates see of an audit row (already redacted by the sink); none for a
/// row of an event no EventRouter can name. The audit row is what routing reads, not the
/// in-memory event: the row commits with the change it records, so the notification cannot
/// be lost between the two (`Store::route_audit`).
pub fn event_data(row: &AuditEvent) -> Option<EventData> {
    // The store writes rows of other kinds routed already (`barge_store::ROUTABLE_KINDS`):
    // a kind named below must be listed there, or routing never sees its rows.
    if !barge_store::ROUTABLE_KINDS.contains(&row.kind.as_str()) {
        return None;
    }
    let kind = match row.kind.as_str() {
        "freight.minted" => "FreightCreated",
        "freight.approved" => "FreightApproved",
        "promotion.created" => "PromotionCreated",
        "promotion.finished" => promotion_reason(serde_json::from_value(row.body["phase"].clone()).ok()?)?,
        "promotion.aborted" => "PromotionAborted",
        "verification.finished" => verification_reason(serde_json::from_value(row.body["outcome"].clone()).ok()?),
        "stage.held" => "StageHeld",
        "stage.released" => "StageReleased",
        "window.overridden" => "PromotionWindowOverridden",
        _ => return None,
    };
    let text = |key: &str| row.body[key].as_str().unwrap_or_default().to_string();
    Some(EventData {
        kind: kind.to_string(),
        project: row.project.clone(),
        stage: row.stage.clone(),
        freight: row.freight.clone(),
        promotion: row.subject.strip_prefix("Promotion/").unwrap_or_default().to_string(),
        // Discovery mints Freight: no one to name.
        actor: if row.kind == "freight.minted" {
            String::new()
        } else {
            row.actor.clone()
        },
        message: match row.kind.as_str() {
            "window.overridden" => text("reason"),
            _ => text("message"),
        },
    })
}

/// The notifications the definitions' EventRouters ask for an audit row.
/// Whether the definitions have any EventRouter: without one, routing queues nothing, and
/// the audit rows are only marked routed (`Store::mark_audit_routed`).
pub fn routes_anything(catalog: &Catalog) -> bool {
    catalog
        .resources
        .iter()
        .any(|r| matches!(r.body, Some(barge_core::model::Body::EventRouter(_))))
}

pub fn notifications_for(catalog: &Catalog, row: &AuditEvent) -> Vec<NewNotification> {
    let Some(data) = event_data(row) else { return Vec::new() };
    let at = chrono::DateTime::from_timestamp_millis(row.at).unwrap_or_else(chrono::Utc::now);
    barge_core::notify::route(catalog, &data, &at.to_rfc3339())
        .into_iter()
        .map(|r| NewNotification {
            id: ulid::Ulid::generate().to_string().to_lowercase(),
            project: data.project.clone(),
            stage: data.stage.clone(),
            event: data.kind.clone(),
            router: r.router,
            channel_kind: r.channel_kind,
            channel: r.channel,
            message: serde_json::to_value(&r.message).unwrap_or_default(),
        })
        .collect()
}

/// How the outbox is delivered.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The replica's id: its claims' owner.
    pub owner: String,
    /// Attempts and the waits between them (stored as each row's next due time).
    pub policy: RetryPolicy,
    /// How long a claim holds a row (longer than a send's timeout).
    pub lease: Duration,
    /// Rows claimed per round.
    pub batch: i64,
}

impl Delivery {
    /// Eight attempts over about four minutes (1 s doubling to at most 2 min, with jitter);
    /// `BARGE_NOTIFY_RETRY_BASE` (a Go duration) changes the first wait.
    pub fn new(owner: String) -> Delivery {
        let base = std::env::var("BARGE_NOTIFY_RETRY_BASE")
            .ok()
            .and_then(|d| barge_core::duration::parse_go_duration(&d).ok())
            .unwrap_or(Duration::from_secs(1));
        Delivery {
            owner,
            policy: RetryPolicy {
                max_attempts: 8,
                base_delay: base,
                max_delay: Duration::from_secs(120),
                ..RetryPolicy::default()
            },
            lease: barge_promote::notify::SEND_TIMEOUT * 3,
            batch: 32,
        }
    }

    /// Claims the due notifications, sends them concurrently and records each attempt;
    /// returns how many it claimed.
    pub async fn deliver_due(
        &self,
        store: &Store,
        http: &reqwest::Client,
        catalog: &Arc<Catalog>,
        secrets: &Arc<Secrets>,
    ) -> Result<usize, StoreError> {
        let now = crate::discover::now_millis();
        let claimed = store
            .claim_notifications(&self.owner, now + self.lease.as_millis() as i64, now, self.batch)
            .await?;
        let count = claimed.len();
        let mut sends = tokio::task::JoinSet::new();
        for n in claimed {
            let (store, http, catalog, secrets, this) = (
                store.clone(),
                http.clone(),
                catalog.clone(),
                secrets.clone(),
                self.clone(),
            );
            sends.spawn(async move { this.deliver_one(&store, &http, &catalog, &secrets, n).await });
        }
        while let Some(done) = sends.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::warn!("notification outbox: cannot record a delivery: {e}");
            }
        }
        Ok(count)
    }

    async fn deliver_one(
        &self,
        store: &Store,
        http: &reqwest::Client,
        catalog: &Catalog,
        secrets: &Secrets,
        n: Notification,
    ) -> Result<(), StoreError> {
        let channel = barge_core::model::notify::ChannelRef {
            kind: n.channel_kind.clone(),
            name: n.channel.clone(),
        };
        let sent = match (
            barge_core::notify::resolve(catalog, &n.project, &channel, secrets),
            serde_json::from_value::<Message>(n.message.clone()),
        ) {
            // A channel missing or without its secret may be fixed by a reload: retried.
            (Err(e), _) => Err((true, e.to_string(), None)),
            (_, Err(e)) => Err((false, format!("the stored message cannot be read: {e}"), None)),
            (Ok(to), Ok(message)) => barge_promote::notify::send(http, &to, &n.id, &message)
                .await
                .map_err(|e| (RetryPolicy::retries(e.class), e.message, e.retry_after)),
        };
        let now = crate::discover::now_millis();
        let attempt = n.attempts as usize + 1;
        let outcome = match &sent {
            Ok(()) => Attempt::Delivered,
            Err((retryable, error, retry_after)) => {
                // The wait before attempt `attempt + 1` (a server's Retry-After replaces it),
                // seeded by the row so replicas agree.
                let seed =
                    n.id.bytes()
                        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                match self
                    .policy
                    .wait(self.policy.delays(seed).nth(attempt - 1), *retry_after)
                {
                    Some(wait) if *retryable => Attempt::RetryAt {
                        error,
                        at: now + wait.as_millis() as i64,
                    },
                    _ => Attempt::Failed { error },
                }
            }
        };
        match &outcome {
            Attempt::Delivered => tracing::info!(
                notification = n.id,
                project = n.project,
                channel = n.channel,
                event = n.event,
                attempt,
                "notification delivered"
            ),
            Attempt::RetryAt { error, at } => tracing::warn!(
                notification = n.id,
                project = n.project,
                channel = n.channel,
                attempt,
                retry_in_ms = at - now,
                "notification not delivered, retrying: {error}"
            ),
            Attempt::Failed { error } => tracing::error!(
                notification = n.id,
                project = n.project,
                channel = n.channel,
                attempt,
                "notification failed for good: {error}"
            ),
        }
        store
            .record_notification_attempt(&n.id, &self.owner, outcome, now)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str) -> AuditEvent {
        AuditEvent {
            id: 1,
            at: 1_000,
            project: "shop".into(),
            kind: kind.into(),
            subject: "Promotion/dev.p1".into(),
            actor: "barge".into(),
            stage: "dev".into(),
            freight: "f1".into(),
            body: serde_json::json!({"phase": "Succeeded", "outcome": "Succeeded", "reason": "r"}),
        }
    }

    /// The store writes rows of the kinds it does not list routed already: every kind it
    /// lists must be one routing can notify of, and one it does not list is never routed.
    #[test]
    fn the_store_leaves_unrouted_exactly_the_kinds_routing_can_notify_of() {
        for kind in barge_store::ROUTABLE_KINDS {
            assert!(
                event_data(&row(kind)).is_some(),
                "{kind} is listed but routes to nothing"
            );
        }
        for kind in [
            "promotion.step",
            "promotion.pushed",
            "stage.entered",
            "config.reloaded",
            "verification.started",
        ] {
            assert!(event_data(&row(kind)).is_none(), "{kind}");
        }
    }
}
