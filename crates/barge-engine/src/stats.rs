//! `barge stats` and `GET /api/v1/projects/{project}/stats`: each Stage's delivery (DORA)
//! figures over a window, read from the store's history (the audit rows the store writes with
//! each change) and computed by [`barge_core::delivery::figures`].

use crate::error::EngineError;
use barge_core::delivery::{DeliveryFigures, StageEvent, figures};
use barge_store::{AuditEvent, Store};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The window `barge stats` looks at without `--since`.
pub const DEFAULT_WINDOW_MS: i64 = 30 * 86_400_000;

/// One Stage's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageStats {
    pub project: String,
    pub stage: String,
    /// The window's start (Unix milliseconds).
    pub since: i64,
    #[serde(flatten)]
    pub figures: DeliveryFigures,
}

/// The figures of every Stage with history since `since` (of `project`, of `stage` when
/// given), by project and Stage name.
pub async fn stage_stats(
    store: &Store,
    project: Option<&str>,
    stage: Option<&str>,
    since: i64,
    now: i64,
) -> Result<Vec<StageStats>, EngineError> {
    let audit = store.list_audit(project, since).await?;
    // Lead time needs when each Freight was minted, which may be before the window.
    let minted: HashMap<(String, String), i64> = store
        .list_freight(project, None)
        .await?
        .into_iter()
        .map(|f| ((f.project, f.freight.metadata.name), f.created_at))
        .collect();
    let mut by_stage: BTreeMap<(String, String), Vec<StageEvent>> = BTreeMap::new();
    for row in &audit {
        if row.stage.is_empty() || stage.is_some_and(|s| s != row.stage) {
            continue;
        }
        if let Some(event) = stage_event(row, &minted) {
            by_stage
                .entry((row.project.clone(), row.stage.clone()))
                .or_default()
                .push(event);
        }
    }
    Ok(by_stage
        .into_iter()
        .map(|((project, stage), events)| StageStats {
            project,
            stage,
            since,
            figures: figures(&events, now - since),
        })
        .collect())
}

/// What an audit row means for the figures, if anything. The bodies are the store's own
/// (`stage.entered`, `promotion.finished` with `phase`, `verification.finished` with
/// `outcome`).
fn stage_event(row: &AuditEvent, minted: &HashMap<(String, String), i64>) -> Option<StageEvent> {
    let at = row.at;
    match row.kind.as_str() {
        "stage.entered" => {
            let minted_at = *minted.get(&(row.project.clone(), row.freight.clone()))?;
            Some(StageEvent::Entered { at, minted_at })
        }
        "promotion.finished" => Some(StageEvent::PromotionFinished {
            at,
            succeeded: row.body["phase"] == "Succeeded",
        }),
        "verification.finished" => match row.body["outcome"].as_str()? {
            "Succeeded" => Some(StageEvent::Verified { at, succeeded: true }),
            "Failed" | "Error" => Some(StageEvent::Verified { at, succeeded: false }),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(kind: &str, at: i64, freight: &str, body: serde_json::Value) -> AuditEvent {
        AuditEvent {
            id: at,
            at,
            project: "shop".into(),
            kind: kind.into(),
            subject: "Stage/prod".into(),
            actor: "barge".into(),
            stage: "prod".into(),
            freight: freight.into(),
            body,
        }
    }

    /// The store's own audit bodies, as it writes them, mean what the figures need.
    #[test]
    fn the_stores_audit_rows_become_stage_events() {
        let minted = HashMap::from([(("shop".to_string(), "f1".to_string()), 1_000)]);
        let events: Vec<Option<StageEvent>> = [
            row("stage.entered", 5_000, "f1", json!({"promotion": "p"})),
            // A Freight the store no longer has (deleted with its project): no lead time.
            row("stage.entered", 6_000, "gone", json!({})),
            row("promotion.finished", 5_000, "f1", json!({"phase": "Succeeded"})),
            row("promotion.finished", 7_000, "f1", json!({"phase": "Errored"})),
            row("verification.finished", 8_000, "f1", json!({"outcome": "Failed"})),
            row("verification.finished", 8_500, "f1", json!({"outcome": "Error"})),
            row("verification.finished", 9_000, "f1", json!({"outcome": "Succeeded"})),
            // Neither a success nor a failure of the change.
            row("verification.finished", 9_500, "f1", json!({"outcome": "Aborted"})),
            row("promotion.created", 4_000, "f1", json!({})),
        ]
        .iter()
        .map(|r| stage_event(r, &minted))
        .collect();
        assert_eq!(
            events,
            [
                Some(StageEvent::Entered {
                    at: 5_000,
                    minted_at: 1_000
                }),
                None,
                Some(StageEvent::PromotionFinished {
                    at: 5_000,
                    succeeded: true
                }),
                Some(StageEvent::PromotionFinished {
                    at: 7_000,
                    succeeded: false
                }),
                Some(StageEvent::Verified {
                    at: 8_000,
                    succeeded: false
                }),
                Some(StageEvent::Verified {
                    at: 8_500,
                    succeeded: false
                }),
                Some(StageEvent::Verified {
                    at: 9_000,
                    succeeded: true
                }),
                None,
                None,
            ]
        );
    }
}
