//! Authorization of every call, in one place: [`crate::ops::handle`] calls [`authorize`]
//! before anything runs. It works out what the call does and where (its project, and the
//! Stage it acts on: named in the call, the Stages downstream of `--downstream-from`, or the
//! aborted promotion's), asks `barge_core::authz`, and audits a refusal (`access.denied`).
//!
//! It also settles who the audit log says acted: a principal from the API acts as itself
//! (`token:NAME`, `anonymous`), whatever actor the call names; only the in-process CLI
//! (`--db`) records the `--actor` it was given.

use crate::EngineError;
use crate::ops::{Call, Context};
use crate::pipeline;
use barge_core::authz::{self, Action, Denied, Principal};
use serde_json::json;

/// Refuses the call ([`EngineError::Unauthenticated`] for an anonymous caller,
/// [`EngineError::Forbidden`] otherwise, audited) unless its principal may make it. A
/// principal limited to one project acts in that project when the call names none.
pub async fn authorize(cx: &Context<'_>, call: &mut Call) -> Result<(), EngineError> {
    let principal = cx.principal;
    if !principal.is_local()
        && let Some(actor) = call.actor_mut()
    {
        *actor = principal.actor();
    }
    if let (Some(mine), Some(project @ None)) = (&principal.project, call.project_mut()) {
        *project = Some(mine.clone());
    }
    let (action, project, stages) = target(cx, call).await?;
    for stage in &stages {
        if let Err(denied) = authz::authorize(principal, action, project.as_deref(), stage.as_deref()) {
            audit_denial(
                cx,
                call,
                action,
                principal,
                project.as_deref(),
                stage.as_deref(),
                &denied,
            )
            .await;
            return Err(denied.into());
        }
    }
    Ok(())
}

/// What the call does, in which project, and on which Stages (one `None` when it acts on
/// no particular Stage, or on one that cannot be found: the call itself then says so).
async fn target(cx: &Context<'_>, call: &Call) -> Result<(Action, Option<String>, Vec<Option<String>>), EngineError> {
    let one =
        |action, project: &Option<String>, stage: Option<&String>| (action, project.clone(), vec![stage.cloned()]);
    Ok(match call {
        Call::GetStages { project, .. }
        | Call::GetWarehouses { project }
        | Call::GetFreight { project, .. }
        | Call::GetPromotions { project, .. }
        | Call::History { project, .. }
        | Call::Stats { project, .. }
        | Call::GetNotifications { project, .. } => one(Action::Read, project, None),
        // A receiver's path is derived from its secret but is not the secret: as Kargo shows
        // it in ProjectConfig's status to the project's readers, a viewer may list it.
        Call::GetWebhooks { project } => one(Action::Read, project, None),
        Call::Version => (Action::ServerInfo, None, vec![None]),
        // Replicas hold promotions of every project: a reader of every project sees them.
        Call::GetReplicas => (Action::Read, None, vec![None]),
        // A dry run runs the Stage's steps with its credentials and secrets, and costs a
        // checkout and a render: it takes the right to promote there, not to read
        // (docs/reference/api.md).
        Call::Promote { project, stage, .. } | Call::PromoteDryRun { project, stage, .. } => {
            one(Action::Promote, project, Some(stage))
        }
        Call::Approve { project, stage, .. } => one(Action::Approve, project, Some(stage)),
        Call::Hold { project, stage, .. } => one(Action::Hold, project, Some(stage)),
        Call::Release { project, stage, .. } => one(Action::Release, project, Some(stage)),
        Call::Verify { project, stage, .. } => one(Action::Verify, project, Some(stage)),
        Call::Alias { project, .. } => one(Action::Alias, project, None),
        Call::Refresh { project, .. } => one(Action::Refresh, project, None),
        Call::Token(_) => (Action::ManageTokens, None, vec![None]),
        Call::PromoteDownstream { project, from, .. } => {
            let all = pipeline::stages(cx.catalog);
            let stages: Vec<Option<String>> = match pipeline::find_stage(&all, from, project.as_deref()) {
                Ok(upstream) => pipeline::downstream(&all, upstream)
                    .iter()
                    .map(|d| Some(d.name.to_string()))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let stages = if stages.is_empty() { vec![None] } else { stages };
            (Action::Promote, project.clone(), stages)
        }
        Call::Abort { project, name, .. } => {
            let promotion = cx
                .store
                .promotions_named(name)
                .await?
                .into_iter()
                .find(|p| project.as_deref().is_none_or(|want| want == p.project));
            match promotion {
                Some(p) => (Action::Abort, Some(p.project), vec![Some(p.stage)]),
                None => one(Action::Abort, project, None),
            }
        }
    })
}

/// Records a refusal; a failure to record it is logged and the call refused all the same.
/// The event names the call ([`Call::name`], also its subject `Call/NAME`), the action it
/// needed and the Freight it named; its project and Stage are the event's own columns.
async fn audit_denial(
    cx: &Context<'_>,
    call: &Call,
    action: Action,
    principal: &Principal,
    project: Option<&str>,
    stage: Option<&str>,
    denied: &Denied,
) {
    let status = if denied.unauthenticated { 401 } else { 403 };
    let mut body = json!({"status": status, "reason": denied.reason, "call": call.name(), "action": action});
    if let Some(freight) = call.freight() {
        body["freight"] = json!(freight);
    }
    let denied = crate::events::Event::AccessDenied {
        project: project.unwrap_or("").into(),
        stage: stage.unwrap_or("").into(),
        subject: format!("Call/{}", call.name()),
        actor: principal.actor(),
        body,
    };
    // The sink logs a failure to audit; the call is refused all the same.
    let _ = cx.events.emit(denied).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenCall;

    #[test]
    fn ops_are_named_as_the_api_spells_them() {
        let promote = Call::Promote {
            project: None,
            stage: "dev".into(),
            freight: "f".into(),
            actor: String::new(),
            override_reason: None,
        };
        assert_eq!(promote.name(), "promote");
        assert_eq!(Call::Token(TokenCall::List).name(), "token.list");
    }
}
