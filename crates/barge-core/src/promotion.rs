//! A promotion's steps as Kargo runs them (Kargo's `api/v1alpha1/promotion_types.go` and
//! `promotion_task_types.go`, `pkg/promotion/local_orchestrator.go`), without the IO:
//! inflating a template and its tasks into a flat list, layering vars, deciding whether a
//! step runs, counting retries against `errorThreshold` / `timeout`, and rolling the step
//! statuses up into the promotion's phase. The promotion engine (crate barge-promote) drives
//! this with real steps and a store.

use crate::eval::{self, Data, EvalError, Scope, StepStatus};
use crate::load::Catalog;
use crate::model::kargo::{PromotionTaskSpec, PromotionTemplateSpec, Step};
use crate::model::{Body, Var};
use serde_json::{Map, Value as Json};
use std::time::Duration;

/// One step after inflation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlatStep {
    /// The alias outputs are stored under: `step-3`, `update`, or `task-1::step-2` in a task.
    pub alias: String,
    /// The alias inside its task (equal to `alias` outside tasks).
    pub local_alias: String,
    /// The task step's alias when this step came from a task.
    pub task_alias: Option<String>,
    pub uses: String,
    pub if_: Option<String>,
    pub continue_on_error: bool,
    /// Consecutive errors tolerated before the step is abandoned (Kargo's default 1).
    pub error_threshold: u32,
    /// Soft limit for steps that keep running (None: wait forever).
    pub timeout: Option<Duration>,
    /// The task's inputs (defaults overridden by the calling step's vars), for task steps.
    pub task_vars: Vec<Var>,
    pub vars: Vec<Var>,
    pub config: Json,
}

impl FlatStep {
    /// Test support: a top-level step `alias` (or a task's step, `task::local`) that runs
    /// `compose-output` with no config, vars or conditions, Kargo's defaults otherwise. For
    /// tests of the state machine that need steps by alias only (barge-core's own and
    /// barge-promote's Kargo cases); not meant as API.
    #[doc(hidden)]
    pub fn named(alias: &str) -> FlatStep {
        let (task_alias, local_alias) = match alias.split_once("::") {
            Some((task, local)) => (Some(task.to_string()), local.to_string()),
            None => (None, alias.to_string()),
        };
        FlatStep {
            alias: alias.to_string(),
            local_alias,
            task_alias,
            uses: "compose-output".into(),
            if_: None,
            continue_on_error: false,
            error_threshold: 1,
            timeout: None,
            task_vars: Vec::new(),
            vars: Vec::new(),
            config: Json::Object(Map::new()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InflateError {
    #[error("step {alias}: {kind} \"{name}\" does not exist")]
    MissingTask { alias: String, kind: String, name: String },
    #[error("step {alias}: has neither `uses` nor `task`")]
    Empty { alias: String },
    #[error("step {alias}: bad retry.timeout: {message}")]
    BadTimeout { alias: String, message: String },
}

/// Finds a PromotionTask (in `project`) or ClusterPromotionTask by name.
pub fn find_task<'a>(
    catalog: &'a Catalog,
    project: &str,
    name: &str,
    kind: Option<&str>,
) -> Option<&'a PromotionTaskSpec> {
    let cluster = kind == Some("ClusterPromotionTask");
    catalog.resources.iter().find_map(|r| match &r.body {
        Some(Body::PromotionTask(t)) if !cluster && r.project == project && r.name == name => t.spec.as_ref(),
        Some(Body::ClusterPromotionTask(t)) if cluster && r.name == name => t.spec.as_ref(),
        _ => None,
    })
}

/// Inflates a template: task steps are replaced by the task's steps, aliased `<task>::<step>`.
pub fn inflate(
    template: &PromotionTemplateSpec,
    task: &dyn Fn(&str, Option<&str>) -> Option<PromotionTaskSpec>,
) -> Result<Vec<FlatStep>, InflateError> {
    let mut out = Vec::new();
    for (i, step) in template.steps.iter().enumerate() {
        let n = i + 1;
        if let Some(t) = &step.task {
            let alias = step.alias.clone().unwrap_or_else(|| format!("task-{n}"));
            let spec = task(&t.name, t.kind.as_deref()).ok_or_else(|| InflateError::MissingTask {
                alias: alias.clone(),
                kind: t.kind.clone().unwrap_or_else(|| "PromotionTask".into()),
                name: t.name.clone(),
            })?;
            let mut task_vars = Vec::new();
            for v in &spec.vars {
                let given = step.vars.iter().rev().find(|s| s.name == v.name);
                // A declared var without a value is an input: the calling step sets it, or it
                // comes from the template's or Stage's vars (checked when vars are layered).
                task_vars.push(given.unwrap_or(v).clone());
            }
            // Vars the caller sets beyond the task's declared ones are visible too.
            for v in &step.vars {
                if !spec.vars.iter().any(|d| d.name == v.name) {
                    task_vars.push(v.clone());
                }
            }
            for (j, inner) in spec.steps.iter().enumerate() {
                let local = inner.alias.clone().unwrap_or_else(|| format!("step-{}", j + 1));
                let mut flat = flat_step(inner, format!("{alias}::{local}"), local)?;
                flat.task_alias = Some(alias.clone());
                flat.task_vars = task_vars.clone();
                out.push(flat);
            }
        } else {
            let alias = step.alias.clone().unwrap_or_else(|| format!("step-{n}"));
            out.push(flat_step(step, alias.clone(), alias)?);
        }
    }
    Ok(out)
}

fn flat_step(step: &Step, alias: String, local_alias: String) -> Result<FlatStep, InflateError> {
    let uses = step
        .uses
        .clone()
        .ok_or_else(|| InflateError::Empty { alias: alias.clone() })?;
    let retry = step.retry.clone().unwrap_or_default();
    let timeout = match retry.timeout.as_deref() {
        None | Some("") => default_timeout(&uses),
        Some(t) => {
            let d = crate::duration::parse_go_duration(t).map_err(|e| InflateError::BadTimeout {
                alias: alias.clone(),
                message: e.to_string(),
            })?;
            (!d.is_zero()).then_some(d)
        }
    };
    Ok(FlatStep {
        alias,
        local_alias,
        task_alias: None,
        error_threshold: retry
            .error_threshold
            .filter(|n| *n > 0)
            .map_or(1, |n| n.min(i64::from(u32::MAX)) as u32),
        timeout,
        if_: step.if_.clone(),
        continue_on_error: step.continue_on_error.unwrap_or(false),
        task_vars: Vec::new(),
        vars: step.vars.clone(),
        config: step.config.clone().unwrap_or(Json::Object(Map::new())),
        uses,
    })
}

/// Kargo's step-specific default timeouts (its `pkg/promotion/registry.go`); a canary with
/// pauses and analyses takes longer than a sync, so barge's rollout-wait gets 30 minutes.
fn default_timeout(uses: &str) -> Option<Duration> {
    match uses {
        "argocd-update" | "argocd-wait" => Some(Duration::from_secs(300)),
        "rollout-wait" => Some(Duration::from_secs(1800)),
        _ => None,
    }
}

/// Evaluates vars in order, each seeing the ones before it.
pub fn layer_vars(into: &mut Map<String, Json>, vars: &[Var], data: &Data, scope: &Scope) -> Result<(), EvalError> {
    for v in vars {
        let mut s = scope.clone();
        s.vars = into.clone();
        let value = match &v.value {
            Some(value) => eval::render_value(value, data, &s)?,
            None if into.contains_key(&v.name) => continue,
            None => {
                return Err(EvalError {
                    expression: format!("vars.{}", v.name),
                    message: format!(
                        "var \"{}\" has no value: set it on the step that calls the task, or in the template's or Stage's vars",
                        v.name
                    ),
                });
            }
        };
        into.insert(v.name.clone(), value);
    }
    Ok(())
}

/// One step's execution record, stored after every change so a restart resumes here.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub alias: String,
    pub status: StepStatus,
    #[serde(default)]
    pub error_count: u32,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// The durable state of a running promotion: per-step records and outputs by alias.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub steps: Vec<StepRecord>,
    pub outputs: Map<String, Json>,
}

impl State {
    pub fn new(steps: &[FlatStep]) -> State {
        State {
            steps: steps
                .iter()
                .map(|s| StepRecord {
                    alias: s.alias.clone(),
                    status: StepStatus::Pending,
                    error_count: 0,
                    message: String::new(),
                    started_at: None,
                    finished_at: None,
                })
                .collect(),
            outputs: Map::new(),
        }
    }

    /// The first step that has not finished: where a resumed promotion continues.
    pub fn next_step(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|r| matches!(r.status, StepStatus::Pending | StepStatus::Running))
    }

    /// The evaluation scope for step `i`: earlier statuses, outputs, and the task's outputs.
    pub fn scope_for(&self, steps: &[FlatStep], i: usize) -> Scope {
        let step = &steps[i];
        let statuses = steps[..i]
            .iter()
            .zip(&self.steps)
            .map(|(s, r)| {
                // An alias names only the steps of the same scope: the same task's, or the
                // top level's from a top-level step (what `status()` sees, as in Kargo).
                let local = if s.task_alias == step.task_alias {
                    s.local_alias.clone()
                } else {
                    String::new()
                };
                (s.alias.clone(), local, r.status, s.continue_on_error)
            })
            .collect();
        let task_outputs: Option<Map<String, Json>> = step.task_alias.as_ref().map(|t| {
            let prefix = format!("{t}::");
            self.outputs
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|local| (local.to_string(), v.clone())))
                .collect()
        });
        // Inside a task, `outputs['x']` also finds the task's own step `x` (Kargo users write
        // both spellings; local aliases win over a same-named step outside the task).
        let mut outputs = self.outputs.clone();
        if let Some(local) = &task_outputs {
            outputs.extend(local.clone());
        }
        Scope {
            vars: Map::new(),
            outputs,
            task_outputs,
            statuses,
        }
    }

    /// Stores a step's outputs; `compose-output` inside a task also exports to the task alias,
    /// which is how a task hands values to the steps after it (Kargo's
    /// `api/v1alpha1/promotion_task_types.go`).
    pub fn record_outputs(&mut self, step: &FlatStep, outputs: Map<String, Json>) {
        if step.uses == "compose-output"
            && let Some(task) = &step.task_alias
        {
            let entry = self
                .outputs
                .entry(task.clone())
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(m) = entry {
                m.extend(outputs.clone());
            }
        }
        self.outputs.insert(step.alias.clone(), Json::Object(outputs));
    }

    /// The promotion's phase from its steps (Kargo's `pkg/promotion/local_orchestrator.go`): a
    /// failure of a step without
    /// `continueOnError` decides it; Errored outranks Failed; Aborted outranks both.
    pub fn phase(&self, steps: &[FlatStep]) -> Phase {
        let mut phase = Phase::Succeeded;
        for (s, r) in steps.iter().zip(&self.steps) {
            let p = match r.status {
                StepStatus::Pending | StepStatus::Running => return Phase::Running,
                StepStatus::Aborted => Phase::Aborted,
                StepStatus::Errored if !s.continue_on_error => Phase::Errored,
                StepStatus::Failed if !s.continue_on_error => Phase::Failed,
                _ => continue,
            };
            if p.severity() > phase.severity() {
                phase = p;
            }
        }
        phase
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Errored,
    Aborted,
}

impl Phase {
    fn severity(self) -> u8 {
        match self {
            Phase::Pending | Phase::Running | Phase::Succeeded => 0,
            Phase::Failed => 1,
            Phase::Errored => 2,
            Phase::Aborted => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Errored => "Errored",
            Phase::Aborted => "Aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Pending,
            Phase::Running,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Errored,
            Phase::Aborted,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Phase::Pending | Phase::Running)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a step runs: its `if`, or by default only while nothing has failed.
pub fn should_run(step: &FlatStep, data: &Data, scope: &Scope) -> Result<bool, EvalError> {
    match step.if_.as_deref() {
        Some(cond) => eval::condition(cond, data, scope),
        None => eval::condition("success()", data, scope),
    }
}

/// What happens after a step attempt errored (a retryable error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterError {
    /// Try again (after a backoff).
    Retry,
    /// Give up: the errors reached `errorThreshold` or the timeout passed.
    GiveUp,
}

/// Kargo's retry rule: `errorThreshold` consecutive errors abandon a step; so does running
/// past `timeout` since its first start.
pub fn after_error(step: &FlatStep, error_count: u32, elapsed: Duration) -> AfterError {
    if error_count >= step.error_threshold || step.timeout.is_some_and(|t| elapsed >= t) {
        AfterError::GiveUp
    } else {
        AfterError::Retry
    }
}

/// Whether a step that reported "still running" has outlived its timeout.
pub fn timed_out(step: &FlatStep, elapsed: Duration) -> bool {
    step.timeout.is_some_and(|t| elapsed >= t)
}

#[cfg(test)]
mod tests {
    use super::{FlatStep, State, StepStatus};

    /// `status()` names the steps of the evaluating step's own scope only, as Kargo's does:
    /// a task's step sees the task's earlier steps by their local aliases (not a top-level
    /// step of the same alias), a top-level step sees the top-level steps (not a task's).
    #[test]
    fn status_sees_the_steps_of_its_own_scope() {
        let steps: Vec<FlatStep> = ["a", "t::a", "t::b", "c"].into_iter().map(FlatStep::named).collect();
        let mut state = State::new(&steps);
        state.steps[0].status = StepStatus::Failed;
        state.steps[1].status = StepStatus::Succeeded;
        state.steps[2].status = StepStatus::Errored;
        let status = |i: usize, alias: &str| {
            let scope = state.scope_for(&steps, i);
            crate::eval::expression(
                &format!("status('{alias}')"),
                &crate::eval::Data::default(),
                &scope,
                &[],
            )
            .map_err(|e| e.message)
        };
        assert_eq!(status(2, "a"), Ok(serde_json::json!("Succeeded")), "the task's own a");
        assert_eq!(status(3, "a"), Ok(serde_json::json!("Failed")), "the top-level a");
        assert!(
            status(3, "t::b").is_err(),
            "a task's step is not seen from the top level"
        );
        assert!(status(3, "b").is_err());
        let steps2: Vec<FlatStep> = ["a", "u::x"].into_iter().map(FlatStep::named).collect();
        let state2 = State::new(&steps2);
        let scope = state2.scope_for(&steps2, 1);
        assert!(
            crate::eval::expression("status('a')", &crate::eval::Data::default(), &scope, &[]).is_err(),
            "a top-level step is not seen from a task"
        );
    }
}
