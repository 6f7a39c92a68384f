//! wait-for-approval and record-audit-event (Kargo Enterprise's; docs.kargo.io, "Promotion
//! Steps": "wait-for-approval", "record-audit-event"), run against barge's own records: the
//! approvals `barge approve` stores, and the audit log.

use super::{StepCtx, StepDone, StepError, StepResult, config, done};
use crate::{AuditNote, BoxFuture};
use barge_core::step_config::{RecordAuditEvent, WaitForApproval};
use serde_json::{Map, Value as Json, json};

/// Waits, without a thread of its own, until enough distinct approvers matching the config
/// approved the promotion's Freight for its Stage; an approval recorded by this process wakes
/// it at once, one recorded elsewhere is seen at the next poll.
pub(super) fn wait_for_approval<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: WaitForApproval = config("wait-for-approval", cfg)?;
        if !c.poll_interval.is_empty() {
            barge_core::duration::parse_go_duration(&c.poll_interval)
                .map_err(|e| StepError::Invalid(format!("wait-for-approval: pollInterval: {e}")))?;
        }
        let policy = c.policy();
        if let Some(problem) = policy.problems().into_iter().next() {
            return Err(StepError::Invalid(format!("wait-for-approval: {}", problem.message)));
        }
        let approvals = ctx.journal.approvals().await.map_err(StepError::Retryable)?;
        let tally = policy.tally(&approvals);
        let p = ctx.promotion;
        let freight = &p.freight.metadata.name;
        if !tally.met() {
            return Ok(StepDone::WaitingOn {
                why: format!(
                    "waiting for approvals of {freight} for {}: {} (`barge approve --freight {freight} --stage {}`)",
                    p.stage,
                    tally.progress(&policy),
                    p.stage
                ),
                wake: crate::wakeups::approval_key(&p.project, &p.stage, freight),
            });
        }
        // Kargo's `responses`: the approvals, oldest first (barge has no rejections).
        let responses: Vec<Json> = approvals
            .iter()
            .filter(|a| tally.counted.contains(&a.approver))
            .map(|a| {
                let time = chrono::DateTime::from_timestamp_millis(a.at).map(|t| t.to_rfc3339());
                json!({"user": a.approver, "action": "approve", "time": time, "role": a.role.as_str()})
            })
            .collect();
        done(Map::from_iter([("responses".to_string(), Json::Array(responses))]))
    })
}

/// Records one event in barge's audit log (kind `promotion.audit`), attributed to the
/// promotion's actor; the config's `actor` is recorded beside it as `attributedTo`.
pub(super) fn record_audit_event<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: RecordAuditEvent = config("record-audit-event", cfg)?;
        if c.message.trim().is_empty() {
            return Err(StepError::Invalid("record-audit-event: `message` is required".into()));
        }
        let kind = if c.kind.is_empty() {
            "recorded".to_string()
        } else {
            c.kind
        };
        if !barge_core::approval::valid_event_type(&kind) {
            return Err(StepError::Invalid(format!(
                "record-audit-event: type {kind:?} is not 1 to 63 letters, digits, '-', '_' or '.'"
            )));
        }
        if ctx.engine.dry_run {
            return done(Map::new());
        }
        let note = AuditNote {
            step: ctx.step.alias.clone(),
            kind,
            message: c.message,
            attributed_to: Some(c.actor).filter(|a| !a.is_empty()),
            data: c.data,
        };
        ctx.journal.audit(&note).await.map_err(StepError::Retryable)?;
        done(Map::new())
    })
}
