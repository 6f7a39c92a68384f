//! The notification outbox: messages for channels, written durably when their event is
//! emitted and sent by a delivery task. A row is claimed with a lease (several replicas on
//! PostgreSQL each take different rows: `FOR UPDATE SKIP LOCKED`; SQLite's writer lock
//! serialises claims), sent, then marked delivered, due again later, or failed. A replica that
//! dies after sending and before marking leaves the row to be claimed again when its lease
//! runs out: delivery is at least once. Rows name their channel; URLs and secrets are never
//! stored. Times are Unix milliseconds.

use crate::{Backend, Store, StoreError};
use serde::Serialize;

/// The audit kinds routing can make a notification of (an EventRouter's event types name
/// them; `barge_engine::notify::event_data` reads only these). A row of one of these kinds is
/// written unrouted, for the outbox's routing to take; a row of any other kind is written
/// routed already, as routing would queue nothing for it, so it costs routing nothing.
pub const ROUTABLE_KINDS: &[&str] = &[
    "freight.minted",
    "freight.approved",
    "promotion.created",
    "promotion.finished",
    "promotion.aborted",
    "verification.finished",
    "stage.held",
    "stage.released",
    "window.overridden",
];
use sqlx::Row;

/// A notification to queue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewNotification {
    /// Unique (a ULID); receivers see it as the delivery id.
    pub id: String,
    pub project: String,
    pub stage: String,
    /// The event type, or `send-message`.
    pub event: String,
    pub router: String,
    pub channel_kind: String,
    pub channel: String,
    /// `barge_core::notify::Message` as JSON.
    pub message: serde_json::Value,
}

/// A queued notification and how its delivery went.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: String,
    pub project: String,
    pub stage: String,
    pub event: String,
    pub router: String,
    pub channel_kind: String,
    pub channel: String,
    pub message: serde_json::Value,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: String,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

macro_rules! columns {
    () => {
        "id, project, stage, event, router, channel_kind, channel, message, state, attempts, last_error, \
         next_attempt_at, created_at, delivered_at"
    };
}

fn row(r: &sqlx::any::AnyRow) -> Result<Notification, StoreError> {
    let message: String = r.try_get("message")?;
    Ok(Notification {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        stage: r.try_get("stage")?,
        event: r.try_get("event")?,
        router: r.try_get("router")?,
        channel_kind: r.try_get("channel_kind")?,
        channel: r.try_get("channel")?,
        message: serde_json::from_str(&message)
            .map_err(|e| StoreError::Corrupt(format!("notification message: {e}")))?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

impl Store {
    /// Queues notifications, all or none, due now.
    pub async fn enqueue_notifications(&self, rows: &[NewNotification], now: i64) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        insert_notifications(&mut tx, rows, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Routes up to `limit` audit rows not routed yet, oldest first: marks them routed and
    /// queues the notifications `route` makes of each, in one transaction, so a row's
    /// notifications are queued exactly once even when the process that wrote the row died
    /// before routing it, and a process that dies mid-way leaves the rows unrouted for the
    /// next pass. The rows are taken and marked by one statement, whatever their number
    /// (PostgreSQL: rows another process is routing this instant are skipped). Returns how
    /// many rows it routed and how many notifications it queued.
    pub async fn route_audit(
        &self,
        limit: i64,
        now: i64,
        route: impl Fn(&crate::AuditEvent) -> Vec<NewNotification>,
    ) -> Result<(usize, usize), StoreError> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(self.take_unrouted(true))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut events = rows.iter().map(crate::audit_row).collect::<Result<Vec<_>, _>>()?;
        // RETURNING's order is the server's; routing goes oldest first.
        events.sort_by_key(|e| e.id);
        let notifications: Vec<NewNotification> = events.iter().flat_map(&route).collect();
        insert_notifications(&mut tx, &notifications, now).await?;
        tx.commit().await?;
        Ok((events.len(), notifications.len()))
    }

    /// Marks up to `limit` unrouted audit rows routed and queues nothing, in one statement:
    /// what [`Store::route_audit`] does for a process whose definitions have no EventRouter
    /// (every row routes to nothing), without its transaction. Returns how many rows it marked.
    pub async fn mark_audit_routed(&self, limit: i64) -> Result<usize, StoreError> {
        let done = sqlx::query(self.take_unrouted(false))
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() as usize)
    }

    /// The statement that marks up to `$1` unrouted audit rows routed, oldest first (with
    /// `returning`, answering them).
    fn take_unrouted(&self, returning: bool) -> &'static str {
        macro_rules! take {
            ($lock:literal) => {
                concat!(
                    "UPDATE audit SET routed = 1 WHERE id IN (SELECT id FROM audit WHERE routed = 0 ORDER BY id LIMIT $1",
                    $lock,
                    ")"
                )
            };
        }
        match (self.backend, returning) {
            (Backend::Postgres, true) => concat!(take!(" FOR UPDATE SKIP LOCKED"), " RETURNING ", audit_columns!()),
            (Backend::Postgres, false) => take!(" FOR UPDATE SKIP LOCKED"),
            (Backend::Sqlite, true) => concat!(take!(""), " RETURNING ", audit_columns!()),
            (Backend::Sqlite, false) => take!(""),
        }
    }

    /// Claims up to `limit` pending notifications that are due and not leased by a live
    /// replica, oldest first, for `owner` until `lease_until`.
    pub async fn claim_notifications(
        &self,
        owner: &str,
        lease_until: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        // PostgreSQL: rows another replica is claiming this instant are skipped, not waited
        // for. SQLite has no row locks: its write lock makes the claim one at a time.
        macro_rules! claim {
            ($lock:literal) => {
                concat!(
                    "UPDATE notifications SET owner = $1, lease_until = $2 WHERE id IN (",
                    "SELECT id FROM notifications WHERE state = 'pending' AND next_attempt_at <= $3 ",
                    "AND (lease_until IS NULL OR lease_until < $3) ORDER BY created_at, id LIMIT $4",
                    $lock,
                    ") RETURNING ",
                    columns!()
                )
            };
        }
        let sql = match self.backend {
            Backend::Postgres => claim!(" FOR UPDATE SKIP LOCKED"),
            Backend::Sqlite => claim!(""),
        };
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed = rows.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    /// Records one attempt of a claimed notification: `Delivered`, due again at a time, or
    /// failed for good. False when `owner` no longer holds it (its lease ran out and another
    /// replica took it).
    pub async fn record_notification_attempt(
        &self,
        id: &str,
        owner: &str,
        outcome: Attempt<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (state, error, next, delivered) = match outcome {
            Attempt::Delivered => ("delivered", "", now, Some(now)),
            Attempt::RetryAt { error, at } => ("pending", error, at, None),
            Attempt::Failed { error } => ("failed", error, now, None),
        };
        let done = sqlx::query(
            "UPDATE notifications SET state = $1, last_error = $2, next_attempt_at = $3, delivered_at = $4, \
             attempts = attempts + 1, owner = NULL, lease_until = NULL WHERE id = $5 AND owner = $6",
        )
        .bind(state)
        .bind(error)
        .bind(next)
        .bind(delivered)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// When the next pending notification is due (none pending: none).
    pub async fn next_notification_due(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) AS due FROM notifications WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("due")?)
    }

    /// Notifications of a project (all projects without one), in one state (`pending`,
    /// `delivered`, `failed`; all without one), newest first.
    pub async fn list_notifications(
        &self,
        project: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM notifications WHERE ($1 = '' OR project = $1) AND ($2 = '' OR state = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(project.unwrap_or(""))
        .bind(state.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }
}

async fn insert_notifications(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    rows: &[NewNotification],
    now: i64,
) -> Result<(), StoreError> {
    for n in rows {
        sqlx::query(
            "INSERT INTO notifications (id, project, stage, event, router, channel_kind, channel, message, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&n.id)
        .bind(&n.project)
        .bind(&n.stage)
        .bind(&n.event)
        .bind(&n.router)
        .bind(&n.channel_kind)
        .bind(&n.channel)
        .bind(n.message.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// How one delivery attempt went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt<'a> {
    Delivered,
    /// A fault that may pass: try again at `at`.
    RetryAt {
        error: &'a str,
        at: i64,
    },
    /// No more attempts (a permanent refusal, or the attempts ran out).
    Failed {
        error: &'a str,
    },
}
