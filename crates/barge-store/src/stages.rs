//! Stage state: which Freight is (or was) in which Stage, verification, approvals, holds;
//! promotion claims, aborts and the final save that moves Freight into its Stage; the history
//! query; and the definitions `barge serve` runs. Times are Unix milliseconds.

use crate::{
    AuditEvent, NewAudit, PromotionHead, Store, StoreError, StoredPromotion, audit_row, insert_audit, promotion_row,
};
use barge_core::promotion::Phase;
use serde::Serialize;
use sqlx::Row;

/// One Freight's facts in one Stage (Kargo's currentlyIn / verifiedIn / approvedFor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FreightStage {
    pub project: String,
    pub freight: String,
    pub stage: String,
    pub warehouse: String,
    /// The latest time it entered the Stage.
    pub entered_at: Option<i64>,
    /// When it last left; `None` while it is there.
    pub left_at: Option<i64>,
    /// The longest stay that has ended (milliseconds).
    pub longest_soak: i64,
    pub verified_at: Option<i64>,
    /// The latest stay's verification: '', Running, Succeeded, Failed, Error.
    pub verification: String,
    pub approved_at: Option<i64>,
    pub approved_by: Option<String>,
}

impl FreightStage {
    /// Whether the Freight is in the Stage now.
    pub fn current(&self) -> bool {
        self.entered_at.is_some() && self.left_at.is_none()
    }
}

/// One approver's approval of a Freight for a Stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredApproval {
    pub freight: String,
    pub stage: String,
    /// The principal as the audit log names it (`token:alice`).
    pub approver: String,
    /// Its role when it approved: viewer, promoter or admin.
    pub role: String,
    pub approved_at: i64,
}

/// A hold on auto-promotion of one origin into one Stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageHold {
    pub project: String,
    pub stage: String,
    pub warehouse: String,
    pub freight: String,
    pub promotion: String,
    pub actor: String,
    pub created_at: i64,
}

/// What a promotion's success changes about a hold (Kargo v1.11): a person promoting other
/// Freight than the auto-promotion candidate holds the origin; promoting the candidate lifts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldChange {
    Keep,
    Set,
    Clear,
}

/// What a promotion's success does to its Stage, saved in the same transaction as the
/// promotion's final state, so a crash cannot leave one without the other.
#[derive(Clone, Debug)]
pub struct StageEntry<'a> {
    pub stage: &'a str,
    pub warehouse: &'a str,
    pub freight: &'a str,
    pub promotion: &'a str,
    pub actor: &'a str,
    /// The Stage has no verification: the Freight is verified on arrival.
    pub verified: bool,
    pub hold: HoldChange,
}

/// A filter over the audit log; newest events first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery<'a> {
    pub project: Option<&'a str>,
    pub stage: Option<&'a str>,
    /// A Freight's name (resolve aliases first).
    pub freight: Option<&'a str>,
    /// Of this kind only (`promotion.created`, ...).
    pub kind: Option<&'a str>,
    /// Events at or after this time.
    pub since: Option<i64>,
    /// Events at or before this time.
    pub until: Option<i64>,
    /// Events strictly after this one (its `at` and `id`) in the newest-first order: the next
    /// page. Both, because `at` comes from the writer and need not grow with `id`.
    pub before: Option<(i64, i64)>,
    pub limit: i64,
}

/// A set of definitions as loaded: each file's text by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Definitions {
    pub id: i64,
    pub loaded_at: i64,
    /// What was loaded (the paths or Git sources given to `barge serve`).
    pub source: String,
    pub texts: std::collections::BTreeMap<String, String>,
}

macro_rules! freight_stage_columns {
    () => {
        "project, freight, stage, warehouse, entered_at, left_at, longest_soak, verified_at, verification, approved_at, approved_by"
    };
}

pub(crate) fn freight_stage_row(r: &sqlx::any::AnyRow) -> Result<FreightStage, StoreError> {
    Ok(FreightStage {
        project: r.try_get("project")?,
        freight: r.try_get("freight")?,
        stage: r.try_get("stage")?,
        warehouse: r.try_get("warehouse")?,
        entered_at: r.try_get("entered_at")?,
        left_at: r.try_get("left_at")?,
        longest_soak: r.try_get("longest_soak")?,
        verified_at: r.try_get("verified_at")?,
        verification: r.try_get("verification")?,
        approved_at: r.try_get("approved_at")?,
        approved_by: r.try_get("approved_by")?,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// Saves a promotion's run state and phase (after every step). With `entry` (a success),
    /// the Freight enters the Stage in the same transaction. A promotion that was aborted
    /// refuses the save with [`StoreError::Aborted`], which tells its runner to stop.
    ///
    /// Fenced: the save only succeeds while `owner` holds the promotion's lease by the
    /// database's clock. A runner that stalled past its lease (a GC pause, a partition,
    /// SIGSTOP) and was taken over gets [`StoreError::LeaseLost`] and must stop, so it can
    /// neither run a step the new holder runs nor move the stored state backwards.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_promotion_state(
        &self,
        project: &str,
        name: &str,
        owner: &str,
        state: &serde_json::Value,
        phase: Phase,
        message: &str,
        now: i64,
        entry: Option<&StageEntry<'_>>,
    ) -> Result<(), StoreError> {
        let finishing = matches!(phase, Phase::Succeeded | Phase::Failed | Phase::Errored);
        // Conditional, so an abort that commits between a read and this write still wins, and
        // so does a runner that took the lease over.
        macro_rules! save {
            () => {
                "UPDATE promotions SET state = $1, phase = $2, message = $3, updated_at = $4 \
                 WHERE project = $5 AND name = $6 AND phase <> 'Aborted' AND owner = $7 AND lease_until >= {now}"
            };
        }
        // Both statements below are `save!()` and so bind the same parameters.
        let saving = |sql: &'static str| {
            sqlx::query(self.at_db_time(sql))
                .bind(state.to_string())
                .bind(phase.as_str())
                .bind(message)
                .bind(now)
                .bind(project)
                .bind(name)
                .bind(owner)
        };
        if self.backend == crate::Backend::Postgres && !finishing && entry.is_none() {
            // A step's save (the most frequent write of a promotion, one per step and more):
            // the save and the project's change counter in one statement, atomic on its own,
            // instead of BEGIN, UPDATE, counter, COMMIT: four round trips become one. The
            // promotion's row is locked before the counter's, as in the transaction below.
            let saved = saving(concat!(
                "WITH saved AS (",
                save!(),
                " RETURNING project) INSERT INTO project_changes (project, version) SELECT project, 1 FROM saved \
                 ON CONFLICT (project) DO UPDATE SET version = project_changes.version + 1"
            ))
            .execute(&self.pool)
            .await?;
            if saved.rows_affected() == 0 {
                return Err(self.why_not_saved(project, name).await?);
            }
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        let updated = saving(concat!(save!(), " RETURNING stage, freight, actor"))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(updated) = updated else {
            tx.rollback().await?;
            return Err(self.why_not_saved(project, name).await?);
        };
        if finishing {
            let body = serde_json::json!({"phase": phase, "message": message});
            let subject = format!("Promotion/{name}");
            let (stage, freight, actor): (String, String, String) = (
                updated.try_get("stage")?,
                updated.try_get("freight")?,
                updated.try_get("actor")?,
            );
            insert_audit(
                &mut tx,
                NewAudit {
                    at: now,
                    project,
                    kind: "promotion.finished",
                    subject: &subject,
                    actor: &actor,
                    stage: &stage,
                    freight: &freight,
                    body: &body,
                },
            )
            .await?;
        }
        if let Some(entry) = entry {
            enter_stage(&mut tx, project, entry, now).await?;
        }
        crate::changed(&mut tx, project).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Why a fenced save of a promotion changed nothing: it is gone, aborted, or its lease
    /// is lost (another runner holds it, or it ran out).
    async fn why_not_saved(&self, project: &str, name: &str) -> Result<StoreError, StoreError> {
        let phase: Option<String> = sqlx::query("SELECT phase FROM promotions WHERE project = $1 AND name = $2")
            .bind(project)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("phase"))
            .transpose()?;
        Ok(match phase.as_deref() {
            None => StoreError::NotFound(format!("promotion {name} in project {project}")),
            Some("Aborted") => StoreError::Aborted(name.to_string()),
            Some(_) => StoreError::LeaseLost(format!("promotion {name}")),
        })
    }

    /// One promotion by name.
    pub async fn get_promotion(&self, project: &str, name: &str) -> Result<Option<StoredPromotion>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            promotion_columns!(),
            " FROM promotions WHERE project = $1 AND name = $2"
        ))
        .bind(project)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(promotion_row).transpose()
    }

    /// The promotions with this name, in any project (names embed a ULID, so at most one in
    /// practice): what `barge get promotion NAME` and `barge abort promotion NAME` look up.
    pub async fn promotions_named(&self, name: &str) -> Result<Vec<StoredPromotion>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            promotion_columns!(),
            " FROM promotions WHERE name = $1 ORDER BY project"
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(promotion_row).collect()
    }

    /// Per Stage of a project: its newest promotion, and any that are Pending or Running;
    /// `plan` and `state` are left null. This is what deciding a Stage needs, read every
    /// reconcile without loading every promotion's plan.
    pub async fn stage_promotions(&self, project: &str) -> Result<Vec<StoredPromotion>, StoreError> {
        let rows = sqlx::query(
            "SELECT project, name, stage, freight, actor, phase, message, 'null' AS plan, 'null' AS state, created_at, updated_at \
             FROM promotions p WHERE project = $1 AND (phase IN ('Pending', 'Running') OR name = \
               (SELECT name FROM promotions q WHERE q.project = p.project AND q.stage = p.stage ORDER BY created_at DESC, name DESC LIMIT 1)) \
             ORDER BY created_at DESC, name DESC",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(promotion_row).collect()
    }

    /// Promotions `owner` may take, oldest first: Pending ones, Running ones whose runner's
    /// lease has ended (it died), and Running ones `owner` itself held before it restarted.
    /// Heads only: a runner's pass reads no plan but those it claims.
    pub async fn runnable_promotions(&self, owner: &str, now: i64) -> Result<Vec<PromotionHead>, StoreError> {
        let rows = sqlx::query(
            "SELECT project, name, stage, config_repo, created_at FROM promotions \
             WHERE phase = 'Pending' OR (phase = 'Running' AND (lease_until < $1 OR owner = $2)) ORDER BY created_at, name",
        )
        .bind(now)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(head_row).collect()
    }

    /// The promotions other runners than `owner` are running under a lease that has not run
    /// out at `now`, each with the runner that holds it, oldest first: what a replica looks at
    /// to keep its claims off the config repositories others are pushing to.
    pub async fn promotions_running_elsewhere(
        &self,
        owner: &str,
        now: i64,
    ) -> Result<Vec<(String, PromotionHead)>, StoreError> {
        let rows = sqlx::query(
            "SELECT owner, project, name, stage, config_repo, created_at FROM promotions \
             WHERE phase = 'Running' AND owner <> $1 AND lease_until >= $2 ORDER BY created_at, name",
        )
        .bind(owner)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("owner")?, head_row(r)?))).collect()
    }

    /// Takes a runnable promotion for `owner` until `lease_until`; false when another runner
    /// has it (or it finished).
    pub async fn claim_promotion(
        &self,
        project: &str,
        name: &str,
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .claim_promotion_returning(project, name, owner, lease_until, now)
            .await?
            .is_some())
    }

    /// [`Store::claim_promotion`], returning the promotion claimed (plan and run state as the
    /// claim left them) in the same statement: a runner reads the plans of the promotions it
    /// claims and of no other. `None` when another runner has it (or it finished).
    pub async fn claim_promotion_returning(
        &self,
        project: &str,
        name: &str,
        owner: &str,
        lease_until: i64,
        now: i64,
    ) -> Result<Option<StoredPromotion>, StoreError> {
        macro_rules! claim {
            () => {
                "UPDATE promotions SET phase = 'Running', owner = $1, lease_until = $2, updated_at = $3 \
                 WHERE project = $4 AND name = $5 AND (phase = 'Pending' OR (phase = 'Running' AND (lease_until < $3 OR owner = $1))) \
                 RETURNING "
            };
        }
        // Both statements below are `claim!()` and so bind the same parameters.
        let claiming = |sql: &'static str| {
            sqlx::query(sql)
                .bind(owner)
                .bind(lease_until)
                .bind(now)
                .bind(project)
                .bind(name)
        };
        if self.backend == crate::Backend::Postgres {
            // The claim and the project's change counter in one statement, atomic on its own
            // (one round trip instead of four); the counter moves only when the claim did (a
            // data-modifying CTE runs to its end whether or not the query reads it).
            let row = claiming(concat!(
                "WITH claimed AS (",
                claim!(),
                promotion_columns!(),
                "), counted AS (INSERT INTO project_changes (project, version) SELECT project, 1 FROM claimed \
                 ON CONFLICT (project) DO UPDATE SET version = project_changes.version + 1) SELECT ",
                promotion_columns!(),
                " FROM claimed"
            ))
            .fetch_optional(&self.pool)
            .await?;
            return row.as_ref().map(promotion_row).transpose();
        }
        let mut tx = self.write_tx().await?;
        let row = claiming(concat!(claim!(), promotion_columns!()))
            .fetch_optional(&mut *tx)
            .await?;
        let claimed = row.as_ref().map(promotion_row).transpose()?;
        if claimed.is_some() {
            crate::changed(&mut tx, project).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Who holds the lease of a Running promotion, and until when (Unix milliseconds).
    pub async fn promotion_lease(&self, project: &str, name: &str) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT owner, lease_until FROM promotions WHERE project = $1 AND name = $2 AND phase = 'Running'",
        )
        .bind(project)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("owner")?, r.try_get("lease_until")?)))
            .transpose()
    }

    /// Takes a Running promotion over from `from`, a runner known to have died before its
    /// lease ran out, for `owner` until `lease_until`; false when `from` no longer holds it
    /// (another runner took it over first, or it finished). Only the lease changes, which no
    /// Stage's status shows: the project's change counter stays.
    pub async fn take_over_promotion(
        &self,
        project: &str,
        name: &str,
        from: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE promotions SET owner = $1, lease_until = $2 \
             WHERE project = $3 AND name = $4 AND phase = 'Running' AND owner = $5",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(project)
        .bind(name)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Extends the leases of every promotion, verification and discovery pass `owner` is running.
    /// No Stage's status shows a lease, so no project's change counter moves.
    pub async fn renew_leases(&self, owner: &str, lease_until: i64) -> Result<u64, StoreError> {
        let mut renewed = 0;
        for sql in [
            "UPDATE promotions SET lease_until = $1 WHERE owner = $2 AND phase = 'Running'",
            "UPDATE verifications SET lease_until = $1 WHERE owner = $2 AND phase = 'Running'",
            "UPDATE discovery_leases SET lease_until = $1 WHERE owner = $2 AND lease_until > 0",
        ] {
            let done = sqlx::query(sql)
                .bind(lease_until)
                .bind(owner)
                .execute(&self.pool)
                .await?;
            renewed += done.rows_affected();
        }
        Ok(renewed)
    }

    /// Aborts a Pending or Running promotion (its runner stops at its next save) and audits
    /// it. Aborting a finished promotion is a conflict.
    pub async fn abort_promotion(
        &self,
        project: &str,
        name: &str,
        actor: &str,
        now: i64,
    ) -> Result<StoredPromotion, StoreError> {
        let mut tx = self.write_tx().await?;
        let p = sqlx::query(concat!(
            "SELECT ",
            promotion_columns!(),
            " FROM promotions WHERE project = $1 AND name = $2"
        ))
        .bind(project)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(promotion_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("promotion {name} in project {project}")))?;
        if p.phase.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "promotion {name} already finished ({}); only Pending or Running promotions can be aborted",
                p.phase
            )));
        }
        let message = format!("aborted by {actor}");
        sqlx::query(
            "UPDATE promotions SET phase = 'Aborted', message = $1, updated_at = $2 WHERE project = $3 AND name = $4",
        )
        .bind(&message)
        .bind(now)
        .bind(project)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let subject = format!("Promotion/{name}");
        let body = serde_json::json!({"phase": Phase::Aborted, "previousPhase": p.phase});
        insert_audit(
            &mut tx,
            NewAudit {
                at: now,
                project,
                kind: "promotion.aborted",
                subject: &subject,
                actor,
                stage: &p.stage,
                freight: &p.freight,
                body: &body,
            },
        )
        .await?;
        crate::changed(&mut tx, project).await?;
        tx.commit().await?;
        Ok(StoredPromotion {
            phase: Phase::Aborted,
            message,
            updated_at: now,
            ..p
        })
    }

    /// Every Freight/Stage fact of a project.
    pub async fn freight_stages(&self, project: &str) -> Result<Vec<FreightStage>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            freight_stage_columns!(),
            " FROM freight_stages WHERE project = $1 ORDER BY stage, freight"
        ))
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(freight_stage_row).collect()
    }

    /// Approves Freight for a Stage: it becomes available there without upstream
    /// verification or soak time (Kargo's `kargo approve`), and `actor` (with its `role`) is
    /// recorded among its approvers there, once however often it approves. Audited each time;
    /// returns whether this was the approver's first approval of it for the Stage.
    #[allow(clippy::too_many_arguments)]
    pub async fn approve(
        &self,
        project: &str,
        freight: &str,
        stage: &str,
        warehouse: &str,
        actor: &str,
        role: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let first = sqlx::query(
            "INSERT INTO freight_approvals (project, freight, stage, approver, role, approved_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (project, freight, stage, approver) DO NOTHING",
        )
        .bind(project)
        .bind(freight)
        .bind(stage)
        .bind(actor)
        .bind(role)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        sqlx::query(
            "INSERT INTO freight_stages (project, freight, stage, warehouse, approved_at, approved_by) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (project, freight, stage) DO UPDATE SET approved_at = excluded.approved_at, approved_by = excluded.approved_by",
        )
        .bind(project)
        .bind(freight)
        .bind(stage)
        .bind(warehouse)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let subject = format!("Freight/{freight}");
        insert_audit(
            &mut tx,
            NewAudit {
                at: now,
                project,
                kind: "freight.approved",
                subject: &subject,
                actor,
                stage,
                freight,
                body: &serde_json::json!({"stage": stage, "role": role, "first": first}),
            },
        )
        .await?;
        crate::changed(&mut tx, project).await?;
        tx.commit().await?;
        Ok(first)
    }

    /// Every approver of every Freight of a project, per Stage, oldest first.
    pub async fn list_approvals(&self, project: &str) -> Result<Vec<StoredApproval>, StoreError> {
        self.approvals_where(project, None).await
    }

    /// The approvers of one Freight for one Stage, oldest first.
    pub async fn approvals_of(
        &self,
        project: &str,
        freight: &str,
        stage: &str,
    ) -> Result<Vec<StoredApproval>, StoreError> {
        self.approvals_where(project, Some((freight, stage))).await
    }

    async fn approvals_where(
        &self,
        project: &str,
        of: Option<(&str, &str)>,
    ) -> Result<Vec<StoredApproval>, StoreError> {
        let (freight, stage) = of.unwrap_or_default();
        let rows = sqlx::query(
            "SELECT freight, stage, approver, role, approved_at FROM freight_approvals \
             WHERE project = $1 AND ($2 = '' OR (freight = $2 AND stage = $3)) ORDER BY approved_at, approver",
        )
        .bind(project)
        .bind(freight)
        .bind(stage)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredApproval {
                    freight: r.try_get("freight")?,
                    stage: r.try_get("stage")?,
                    approver: r.try_get("approver")?,
                    role: r.try_get("role")?,
                    approved_at: r.try_get("approved_at")?,
                })
            })
            .collect()
    }

    /// Holds auto-promotion of one origin into a Stage at its current Freight (`barge hold
    /// stage`), audited. A hold already there is kept.
    pub async fn hold_stage(&self, hold: &StageHold) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        put_hold(&mut tx, hold).await?;
        crate::changed(&mut tx, &hold.project).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lifts every hold of a Stage (`barge release stage`); returns how many there were.
    pub async fn release_stage(&self, project: &str, stage: &str, actor: &str, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = clear_holds(&mut tx, project, stage, None, actor, now).await?;
        crate::changed(&mut tx, project).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// The holds of a project.
    pub async fn holds(&self, project: &str) -> Result<Vec<StageHold>, StoreError> {
        let rows = sqlx::query(
            "SELECT project, stage, warehouse, freight, promotion, actor, created_at FROM stage_holds WHERE project = $1 ORDER BY stage, warehouse",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StageHold {
                    project: r.try_get("project")?,
                    stage: r.try_get("stage")?,
                    warehouse: r.try_get("warehouse")?,
                    freight: r.try_get("freight")?,
                    promotion: r.try_get("promotion")?,
                    actor: r.try_get("actor")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Audit events matching the query, newest first.
    pub async fn history(&self, q: &AuditQuery<'_>) -> Result<Vec<AuditEvent>, StoreError> {
        // Built per filter so each query can use its index (stage, freight or time).
        let mut sql = format!("SELECT {} FROM audit WHERE 1 = 1", audit_columns!());
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if q.project.is_some() {
            sql += &format!(" AND project = {}", next());
        }
        if q.stage.is_some() {
            sql += &format!(" AND stage = {}", next());
        }
        if q.freight.is_some() {
            sql += &format!(" AND freight = {}", next());
        }
        if q.kind.is_some() {
            sql += &format!(" AND kind = {}", next());
        }
        if q.since.is_some() {
            sql += &format!(" AND at >= {}", next());
        }
        if q.until.is_some() {
            sql += &format!(" AND at <= {}", next());
        }
        if q.before.is_some() {
            let (at, same_at, id) = (next(), next(), next());
            sql += &format!(" AND (at < {at} OR (at = {same_at} AND id < {id}))");
        }
        sql += &format!(" ORDER BY at DESC, id DESC LIMIT {}", next());
        // Only placeholders are spliced in; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        // In the order the placeholders were made above.
        for v in [q.project, q.stage, q.freight, q.kind].into_iter().flatten() {
            query = query.bind(v);
        }
        let before = q.before.map(|(at, id)| [at, at, id]);
        for v in q.since.into_iter().chain(q.until).chain(before.into_iter().flatten()) {
            query = query.bind(v);
        }
        let rows = query.bind(q.limit.max(1)).fetch_all(&self.pool).await?;
        rows.iter().map(audit_row).collect()
    }

    /// Retention: deletes audit events older than `before` (`barge serve --audit-retention`);
    /// returns how many. Nothing else ever deletes or changes an audit row.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records definitions `barge serve` loaded, unless they equal the latest; returns
    /// whether they were new. A change is audited (`config.reloaded`).
    pub async fn save_definitions(
        &self,
        source: &str,
        texts: &std::collections::BTreeMap<String, String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let latest = self.latest_definitions().await?;
        if latest.as_ref().is_some_and(|d| &d.texts == texts && d.source == source) {
            return Ok(false);
        }
        let mut tx = self.write_tx().await?;
        let body = serde_json::to_string(texts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("INSERT INTO definitions (loaded_at, source, texts) VALUES ($1, $2, $3)")
            .bind(now)
            .bind(source)
            .bind(&body)
            .execute(&mut *tx)
            .await?;
        let changed: Vec<&String> = texts
            .iter()
            .filter(|(f, t)| latest.as_ref().and_then(|d| d.texts.get(*f)) != Some(*t))
            .map(|(f, _)| f)
            .collect();
        let removed: Vec<&String> = latest
            .as_ref()
            .map(|d| d.texts.keys().filter(|f| !texts.contains_key(*f)).collect())
            .unwrap_or_default();
        insert_audit(
            &mut tx,
            NewAudit {
                at: now,
                project: "",
                kind: "config.reloaded",
                subject: "Definitions",
                actor: "barge",
                stage: "",
                freight: "",
                body: &serde_json::json!({"source": source, "changed": changed, "removed": removed}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The definitions `barge serve` loaded last.
    pub async fn latest_definitions(&self) -> Result<Option<Definitions>, StoreError> {
        let row = sqlx::query("SELECT id, loaded_at, source, texts FROM definitions ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let texts: String = r.try_get("texts")?;
            Ok(Definitions {
                id: r.try_get("id")?,
                loaded_at: r.try_get("loaded_at")?,
                source: r.try_get("source")?,
                texts: serde_json::from_str(&texts).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            })
        })
        .transpose()
    }
}

/// The Freight enters the Stage; whatever Freight of the same origin was there leaves (its
/// stay counts toward its longest soak). Holds change as the entry says. Audited.
async fn enter_stage(tx: &mut Tx, project: &str, e: &StageEntry<'_>, now: i64) -> Result<(), StoreError> {
    let previous = sqlx::query(
        "SELECT freight, entered_at, longest_soak FROM freight_stages \
         WHERE project = $1 AND stage = $2 AND warehouse = $3 AND entered_at IS NOT NULL AND left_at IS NULL AND freight <> $4",
    )
    .bind(project)
    .bind(e.stage)
    .bind(e.warehouse)
    .bind(e.freight)
    .fetch_all(&mut **tx)
    .await?;
    for row in &previous {
        let freight: String = row.try_get("freight")?;
        let entered: i64 = row.try_get("entered_at")?;
        let longest: i64 = row.try_get("longest_soak")?;
        sqlx::query("UPDATE freight_stages SET left_at = $1, longest_soak = $2 WHERE project = $3 AND stage = $4 AND freight = $5")
            .bind(now)
            .bind(longest.max(now - entered))
            .bind(project)
            .bind(e.stage)
            .bind(&freight)
            .execute(&mut **tx)
            .await?;
    }
    let verification = if e.verified { "Succeeded" } else { "" };
    let verified_at = e.verified.then_some(now);
    // A re-promotion of Freight already there keeps its stay (and its soak) going.
    sqlx::query(
        "INSERT INTO freight_stages (project, freight, stage, warehouse, entered_at, verified_at, verification) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (project, freight, stage) DO UPDATE SET \
           entered_at = CASE WHEN freight_stages.entered_at IS NOT NULL AND freight_stages.left_at IS NULL THEN freight_stages.entered_at ELSE excluded.entered_at END, \
           left_at = NULL, \
           verified_at = COALESCE(excluded.verified_at, freight_stages.verified_at), \
           verification = excluded.verification",
    )
    .bind(project)
    .bind(e.freight)
    .bind(e.stage)
    .bind(e.warehouse)
    .bind(now)
    .bind(verified_at)
    .bind(verification)
    .execute(&mut **tx)
    .await?;
    let subject = format!("Stage/{}", e.stage);
    let left: Vec<String> = previous
        .iter()
        .map(|r| r.try_get("freight"))
        .collect::<Result<_, _>>()?;
    insert_audit(
        tx,
        NewAudit {
            at: now,
            project,
            kind: "stage.entered",
            subject: &subject,
            actor: e.actor,
            stage: e.stage,
            freight: e.freight,
            body: &serde_json::json!({"promotion": e.promotion, "warehouse": e.warehouse, "replaced": left, "verified": e.verified}),
        },
    )
    .await?;
    match e.hold {
        HoldChange::Keep => {}
        HoldChange::Set => {
            put_hold(
                tx,
                &StageHold {
                    project: project.into(),
                    stage: e.stage.into(),
                    warehouse: e.warehouse.into(),
                    freight: e.freight.into(),
                    promotion: e.promotion.into(),
                    actor: e.actor.into(),
                    created_at: now,
                },
            )
            .await?;
        }
        HoldChange::Clear => {
            clear_holds(tx, project, e.stage, Some(e.warehouse), e.actor, now).await?;
        }
    }
    Ok(())
}

async fn put_hold(tx: &mut Tx, h: &StageHold) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO stage_holds (project, stage, warehouse, freight, promotion, actor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (project, stage, warehouse) DO UPDATE SET freight = excluded.freight, promotion = excluded.promotion, actor = excluded.actor, created_at = excluded.created_at",
    )
    .bind(&h.project)
    .bind(&h.stage)
    .bind(&h.warehouse)
    .bind(&h.freight)
    .bind(&h.promotion)
    .bind(&h.actor)
    .bind(h.created_at)
    .execute(&mut **tx)
    .await?;
    let subject = format!("Stage/{}", h.stage);
    insert_audit(
        tx,
        NewAudit {
            at: h.created_at,
            project: &h.project,
            kind: "stage.held",
            subject: &subject,
            actor: &h.actor,
            stage: &h.stage,
            freight: &h.freight,
            body: &serde_json::json!({"warehouse": h.warehouse, "promotion": h.promotion}),
        },
    )
    .await?;
    Ok(())
}

async fn clear_holds(
    tx: &mut Tx,
    project: &str,
    stage: &str,
    warehouse: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM stage_holds WHERE project = $1 AND stage = $2 AND ($3 = '' OR warehouse = $3)")
        .bind(project)
        .bind(stage)
        .bind(warehouse.unwrap_or(""))
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() > 0 {
        let subject = format!("Stage/{stage}");
        insert_audit(
            tx,
            NewAudit {
                at: now,
                project,
                kind: "stage.released",
                subject: &subject,
                actor,
                stage,
                freight: "",
                body: &serde_json::json!({"warehouse": warehouse}),
            },
        )
        .await?;
    }
    Ok(done.rows_affected())
}

fn head_row(r: &sqlx::any::AnyRow) -> Result<PromotionHead, StoreError> {
    Ok(PromotionHead {
        project: r.try_get("project")?,
        name: r.try_get("name")?,
        stage: r.try_get("stage")?,
        config_repo: r.try_get("config_repo")?,
        created_at: r.try_get("created_at")?,
    })
}
