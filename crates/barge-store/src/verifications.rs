//! Verification runs of Freight in a Stage: created after a successful promotion (or by
//! `barge verify stage`), claimed with a lease like promotions, their report saved as
//! measurements land, finished (which records the outcome on the Freight's stay and audits it)
//! or aborted. An abort wins over a runner's later save. Times are Unix milliseconds.

use crate::{NewAudit, Store, StoreError, insert_audit};
use barge_core::analysis::VerificationPhase;
use serde::Serialize;
use sqlx::Row;

/// One verification run.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub project: String,
    pub id: String,
    pub stage: String,
    pub freight: String,
    pub phase: VerificationPhase,
    pub message: String,
    /// The analysis report (metrics, counters, measurements) as JSON.
    pub report: serde_json::Value,
    pub actor: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

impl Verification {
    pub fn is_finished(&self) -> bool {
        self.phase.is_finished()
    }
}

macro_rules! columns {
    () => {
        "project, id, stage, freight, phase, message, report, actor, created_at, finished_at"
    };
}

fn row(r: &sqlx::any::AnyRow) -> Result<Verification, StoreError> {
    let report: String = r.try_get("report")?;
    Ok(Verification {
        project: r.try_get("project")?,
        id: r.try_get("id")?,
        stage: r.try_get("stage")?,
        freight: r.try_get("freight")?,
        phase: {
            let text: String = r.try_get("phase")?;
            VerificationPhase::parse(&text)
                .ok_or_else(|| StoreError::Corrupt(format!("verification phase {text:?}")))?
        },
        message: r.try_get("message")?,
        report: serde_json::from_str(&report).map_err(|e| StoreError::Corrupt(format!("verification report: {e}")))?,
        actor: r.try_get("actor")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

impl Store {
    /// Queues a verification of the Freight the Stage has and marks its stay `Running`.
    /// One unfinished verification per Stage: a second is a conflict.
    pub async fn create_verification(
        &self,
        project: &str,
        stage: &str,
        freight: &str,
        actor: &str,
        now: i64,
    ) -> Result<Verification, StoreError> {
        let id = format!("{stage}.{}.{now:x}", &freight[..freight.len().min(7)]);
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query(
            "INSERT INTO verifications (project, id, stage, freight, phase, actor, created_at) VALUES ($1, $2, $3, $4, 'Pending', $5, $6)",
        )
        .bind(project)
        .bind(&id)
        .bind(stage)
        .bind(freight)
        .bind(actor)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Conflict(format!(
                    "Stage {stage} already has a verification running; abort it first (barge verify stage {stage} --abort)"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let moved = sqlx::query(
            "UPDATE freight_stages SET verification = 'Running' \
             WHERE project = $1 AND stage = $2 AND freight = $3 AND entered_at IS NOT NULL AND left_at IS NULL",
        )
        .bind(project)
        .bind(stage)
        .bind(freight)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "Freight {freight} is not in Stage {stage}"
            )));
        }
        insert_audit(
            &mut tx,
            NewAudit {
                at: now,
                project,
                kind: "verification.started",
                subject: &format!("Stage/{stage}"),
                actor,
                stage,
                freight,
                body: &serde_json::json!({"verification": id}),
            },
        )
        .await?;
        crate::changed(&mut tx, project).await?;
        tx.commit().await?;
        Ok(Verification {
            project: project.into(),
            id,
            stage: stage.into(),
            freight: freight.into(),
            phase: VerificationPhase::Pending,
            message: String::new(),
            report: serde_json::json!({}),
            actor: actor.into(),
            created_at: now,
            finished_at: None,
        })
    }

    /// Verifications a runner may take: Pending ones, and Running ones whose runner stopped
    /// renewing its lease (or that `owner` itself ran before a restart).
    pub async fn runnable_verifications(&self, owner: &str, now: i64) -> Result<Vec<Verification>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", columns!(), " FROM verifications WHERE phase = 'Pending' OR (phase = 'Running' AND (lease_until < $1 OR owner = $2)) ORDER BY created_at, id"))
        .bind(now)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }

    /// Takes a runnable verification for `owner` until `lease_until`; false when another
    /// runner has it, or it finished.
    pub async fn claim_verification(
        &self,
        project: &str,
        id: &str,
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE verifications SET phase = 'Running', owner = $1, lease_until = $2 \
             WHERE project = $4 AND id = $5 AND (phase = 'Pending' OR (phase = 'Running' AND (lease_until < $3 OR owner = $1)))",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(project)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let claimed = done.rows_affected() == 1;
        if claimed {
            crate::changed(&mut tx, project).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Saves a running verification's report so far; `Aborted` when someone aborted it,
    /// `LeaseLost` when `owner` no longer holds its lease by the database's clock (fenced as
    /// a promotion's saves are: a runner that stalled past its lease and was taken over
    /// writes nothing).
    pub async fn save_verification_report(
        &self,
        project: &str,
        id: &str,
        owner: &str,
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(self.at_db_time(
            "UPDATE verifications SET report = $1 WHERE project = $2 AND id = $3 AND phase = 'Running' \
             AND owner = $4 AND lease_until >= {now}",
        ))
        .bind(report.to_string())
        .bind(project)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(self.refused_verification(project, id).await?);
        }
        // The report is part of a Stage's status (its last verification's measurements).
        crate::changed(&mut tx, project).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Finishes a running verification with `phase` (Succeeded marks the Freight verified in
    /// the Stage) and audits the outcome with the report. `Aborted` when it was aborted first;
    /// `LeaseLost` when `owner` no longer holds its lease (see `save_verification_report`).
    pub async fn finish_verification(
        &self,
        v: &Verification,
        owner: &str,
        phase: VerificationPhase,
        message: &str,
        report: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(self.at_db_time(
            "UPDATE verifications SET phase = $1, message = $2, report = $3, finished_at = $4, lease_until = 0 \
             WHERE project = $5 AND id = $6 AND phase = 'Running' AND owner = $7 AND lease_until >= {now}",
        ))
        .bind(phase.as_str())
        .bind(message)
        .bind(report.to_string())
        .bind(now)
        .bind(&v.project)
        .bind(&v.id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(self.refused_verification(&v.project, &v.id).await?);
        }
        record_outcome(&mut tx, v, phase, message, "barge", now).await?;
        crate::changed(&mut tx, &v.project).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Why a verification's runner could not save: still Running, so another runner holds
    /// it (`LeaseLost`); otherwise it was aborted or superseded (`Aborted`).
    async fn refused_verification(&self, project: &str, id: &str) -> Result<StoreError, StoreError> {
        let running = sqlx::query("SELECT id FROM verifications WHERE project = $1 AND id = $2 AND phase = 'Running'")
            .bind(project)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        Ok(if running {
            StoreError::LeaseLost(format!("verification {id}"))
        } else {
            StoreError::Aborted(id.to_string())
        })
    }

    /// Aborts the Stage's unfinished verification (`barge verify stage S --abort`); the
    /// Freight stays unverified. NotFound when none is running.
    pub async fn abort_verification(
        &self,
        project: &str,
        stage: &str,
        actor: &str,
        now: i64,
    ) -> Result<Verification, StoreError> {
        let mut tx = self.write_tx().await?;
        let found = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM verifications WHERE project = $1 AND stage = $2 AND phase IN ('Pending', 'Running')"
        ))
        .bind(project)
        .bind(stage)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(found) = found else {
            return Err(StoreError::NotFound(format!(
                "Stage {stage} has no verification running"
            )));
        };
        let mut v = row(&found)?;
        let message = format!("aborted by {actor}");
        sqlx::query(
            "UPDATE verifications SET phase = 'Aborted', message = $1, finished_at = $2, lease_until = 0 WHERE project = $3 AND id = $4",
        )
        .bind(&message)
        .bind(now)
        .bind(project)
        .bind(&v.id)
        .execute(&mut *tx)
        .await?;
        record_outcome(&mut tx, &v, VerificationPhase::Aborted, &message, actor, now).await?;
        crate::changed(&mut tx, project).await?;
        tx.commit().await?;
        v.phase = VerificationPhase::Aborted;
        v.message = message;
        v.finished_at = Some(now);
        Ok(v)
    }

    /// A Stage's verifications, newest first.
    pub async fn verifications(&self, project: &str, stage: &str, limit: i64) -> Result<Vec<Verification>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM verifications WHERE project = $1 AND stage = $2 ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(project)
        .bind(stage)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }

    /// Each Stage's newest verification in a project.
    pub async fn latest_verifications(&self, project: &str) -> Result<Vec<Verification>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM verifications v WHERE project = $1 AND created_at = \
             (SELECT MAX(created_at) FROM verifications w WHERE w.project = v.project AND w.stage = v.stage)"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }
}

/// The outcome on the Freight's stay in the Stage (only while it is still there), audited.
async fn record_outcome(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    v: &Verification,
    phase: VerificationPhase,
    message: &str,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE freight_stages SET verification = $1, verified_at = CASE WHEN $1 = 'Succeeded' THEN $2 ELSE verified_at END \
         WHERE project = $3 AND stage = $4 AND freight = $5 AND entered_at IS NOT NULL AND left_at IS NULL",
    )
    .bind(phase.as_str())
    .bind(now)
    .bind(&v.project)
    .bind(&v.stage)
    .bind(&v.freight)
    .execute(&mut **tx)
    .await?;
    insert_audit(
        tx,
        NewAudit {
            at: now,
            project: &v.project,
            kind: "verification.finished",
            subject: &format!("Stage/{}", v.stage),
            actor,
            stage: &v.stage,
            freight: &v.freight,
            body: &serde_json::json!({"verification": v.id, "outcome": phase, "message": message}),
        },
    )
    .await
}
