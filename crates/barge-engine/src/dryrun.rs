//! A promotion's dry run (issue #16; `POST …/stages/{name}/promotions?dryRun=true`, `barge
//! promote --dry-run`): the diff each push would land, without pushing.
//!
//! It makes the checks a real promotion makes (the Freight exists and is available to the
//! Stage: verified upstream, approved, inside the promotion window; refusals with the same
//! class and message), then runs the Stage's steps with a clone of the engine whose work
//! directory is a scratch directory removed afterwards, and whose `dry_run` has every step
//! with an effect beyond it skipped or simulated (`barge_promote::steps::in_dry_run`):
//! git-push and github-push fetch the branch and report the diff instead of pushing. Nothing
//! is stored (no promotion, no audit row, no metadata); the steps' events are only logged.
//!
//! The repository cache is the daemon's own: a dry run fetches into it as a promotion does
//! (objects only; its commit stays in the scratch checkout, which goes back to the cache's
//! pool and is reset there), so no branch of the cache or the remote moves.

use crate::answer::{PlannedPush, PromotionPlan, SkippedStep};
use crate::error::EngineError;
use crate::ops::{Context, check_promotable};
use crate::pipeline::StageDef;
use crate::promote::{create, execute};
use barge_core::eval::StepStatus;
use barge_core::promotion::{Phase, State};
use barge_promote::steps::{InDryRun, in_dry_run};
use serde_json::Value as Json;

/// Runs the dry run of `freight` (name or alias) into the Stage `def` on `engine`.
pub(crate) async fn plan(
    cx: &Context<'_>,
    engine: &barge_promote::Engine,
    def: &StageDef<'_>,
    freight: &str,
    actor: &str,
    override_reason: Option<&str>,
) -> Result<PromotionPlan, EngineError> {
    let f = check_promotable(cx, def, freight, override_reason).await?;
    std::fs::create_dir_all(&engine.work_root)
        .map_err(|e| EngineError::Internal(format!("cannot create {}: {e}", engine.work_root.display())))?;
    // Beside the promotions' work directories (the same filesystem as the cache, so the
    // checkouts go back to its pool by a rename).
    let scratch = tempfile::Builder::new()
        .prefix("dry-run-")
        .tempdir_in(&engine.work_root)
        .map_err(|e| EngineError::Internal(format!("no scratch directory for the dry run: {e}")))?;
    let engine = engine.for_dry_run(scratch.path().to_path_buf());
    let p = create(cx.catalog, cx.store, cx.events, def, &f, actor, Phase::Running, true).await?;
    let state = State::new(&p.steps);
    // A dry run saves nothing, so it holds no lease to fence its saves by.
    let outcome = execute(cx.catalog, cx.store, cx.events, &engine, "", &p, state, false, true).await?;
    let mut pushes = Vec::new();
    let mut skipped_steps = Vec::new();
    for (step, record) in p.steps.iter().zip(&outcome.state.steps) {
        let reason = match in_dry_run(&step.uses) {
            // A Skipped step without a message was skipped by its `if`, as a promotion would.
            InDryRun::Skipped(why) if record.status == StepStatus::Skipped && !record.message.is_empty() => why,
            InDryRun::Simulated(why) if record.status == StepStatus::Succeeded => why,
            _ => continue,
        };
        skipped_steps.push(SkippedStep {
            step: step.alias.clone(),
            uses: step.uses.clone(),
            reason: reason.to_string(),
        });
        if let Some(push) = outcome.state.outputs.get(&step.alias).and_then(planned_push) {
            pushes.push(push);
        }
    }
    Ok(PromotionPlan {
        project: p.project,
        stage: p.stage,
        freight: p.freight.metadata.name,
        alias: p.freight.alias,
        phase: outcome.phase,
        message: outcome.message,
        pushes,
        skipped_steps,
    })
}

/// The push a git-push or github-push step reported in a dry run (its outputs, secrets
/// already redacted by the promotion engine); a tag push has no diff and is none.
fn planned_push(outputs: &Json) -> Option<PlannedPush> {
    let text = |key: &str| outputs.get(key).and_then(Json::as_str).map(str::to_string);
    Some(PlannedPush {
        repo_url: text("repoURL")?,
        branch: text("branch")?,
        files: outputs
            .get("files")?
            .as_array()?
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect(),
        diff: text("diff")?,
    })
}

/// `barge promote --dry-run` without a server: the dry run in this process, on the store and
/// work directory of `here`, as the local user.
pub async fn plan_here(
    catalog: &barge_core::Catalog,
    here: crate::promote::Here<'_>,
    call: crate::ops::Call,
) -> Result<PromotionPlan, EngineError> {
    let store = barge_store::Store::open(here.db).await?;
    let defined = crate::config::DefinedCredentials::of(catalog);
    let engine = crate::promote::engine(here.work_dir, here.registry, here.file, true, &defined)?;
    let events = crate::events::EventSink::for_engine(store.clone(), &engine);
    let cx = Context {
        store: &store,
        events: &events,
        catalog,
        refresh: None,
        health: None,
        principal: &barge_core::authz::Principal::local(),
        engine: Some(&engine),
    };
    match crate::ops::handle(&cx, call).await? {
        crate::Answer::PromotionPlan(plan) => Ok(plan),
        _ => Err(EngineError::Internal(
            "a dry run answered something else than its plan".into(),
        )),
    }
}
