//! The promotion steps, one module per family, registered by name in [`REGISTRY`].
//!
//! A step gets its rendered config and a [`StepCtx`], and returns outputs, "still waiting",
//! or an error whose kind decides what the engine does: `Failed` ends the step as a business
//! failure, `Invalid` as an error without retry, `Retryable` counts towards `errorThreshold`.

mod approval;
mod archive;
mod chart;
mod cluster;
mod files;
mod git;
mod github;
mod hcl;
mod http;
mod message;
mod meta;
mod oci;
mod pr;
mod render;
mod update;

use crate::{BoxFuture, Engine, Promotion};
use barge_core::ErrorClass;
use barge_core::eval::{Data, Scope};
use barge_core::promotion::FlatStep;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json};
use std::path::{Component, Path, PathBuf};

pub struct StepCtx<'a> {
    pub engine: &'a Engine,
    pub promotion: &'a Promotion,
    pub step: &'a FlatStep,
    /// The promotion's work directory; step paths are relative to it.
    pub work: &'a Path,
    pub data: &'a Data,
    pub scope: &'a Scope,
    /// This step started before and did not finish (a crash): look for its earlier effects.
    pub replay: bool,
    /// The promotion's journal: its store's approvals and audit log.
    pub journal: &'a dyn crate::Journal,
}

#[derive(Debug)]
pub enum StepDone {
    Done {
        outputs: Map<String, Json>,
        effects: Vec<Effect>,
    },
    /// Not finished yet (a PR not merged, an app not healthy): poll again.
    Waiting(String),
    /// [`StepDone::Waiting`], polling again no sooner than `at_least` (a step's own
    /// `pollInterval`; the engine's interval stays the floor).
    WaitingFor { why: String, at_least: std::time::Duration },
    /// [`StepDone::Waiting`], polling again early when `wake` is announced
    /// ([`crate::wakeups`]).
    WaitingOn { why: String, wake: String },
    /// Nothing to do (git-open-pr with no changes between its branches): the step's status
    /// is Skipped, its message this reason, and it has no outputs.
    Skipped(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StepError {
    /// The step decided the promotion fails (`fail`, an http failureExpression).
    #[error("{0}")]
    Failed(String),
    /// [`StepError::Failed`] with the outputs the step still reports (git-wait-for-pr's
    /// `pr` of a PR closed without being merged, as Kargo's).
    #[error("{0}")]
    FailedWith(String, Map<String, Json>),
    /// Bad config or an unrecoverable condition: retrying cannot help.
    #[error("{0}")]
    Invalid(String),
    /// A fault that may pass (network, a busy remote, a write that lost a race).
    #[error("{0}")]
    Retryable(String),
}

impl StepError {
    /// The step error for an edge crate's failure of `class`: the one place a class decides
    /// whether a step tries again. A [`ErrorClass::Conflict`] (a stale read, e.g. Kubernetes'
    /// 409) passes once the step re-reads, so it is retried; a
    /// [`ErrorClass::MergeConflict`] (a git rebase conflict) would only replay itself.
    pub(crate) fn of_class(class: ErrorClass, message: String) -> StepError {
        match class {
            ErrorClass::Transient | ErrorClass::RateLimited | ErrorClass::Conflict => StepError::Retryable(message),
            ErrorClass::Auth
            | ErrorClass::Forbidden
            | ErrorClass::NotFound
            | ErrorClass::MergeConflict
            | ErrorClass::Invalid => StepError::Invalid(message),
        }
    }
}

/// A change outside the work tree that a step asks for; the caller applies it to the store.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Effect {
    StageMetadata { stage: String, values: Map<String, Json> },
    FreightMetadata { freight: String, values: Map<String, Json> },
    FreightAlias { freight: String, alias: String },
}

pub(crate) use git::release;

pub type StepResult = Result<StepDone, StepError>;
pub type StepFn = for<'a> fn(&'a StepCtx<'a>, Json) -> BoxFuture<'a, StepResult>;

/// Every step barge runs, by its Kargo name.
pub const REGISTRY: &[(&str, StepFn)] = &[
    ("argocd-update", cluster::argocd_update),
    ("argocd-wait", cluster::argocd_wait),
    ("compose-output", meta::compose_output),
    ("copy", files::copy),
    ("delete", files::delete),
    ("fail", meta::fail),
    ("file-write", files::file_write),
    ("git-clear", git::clear),
    ("git-clone", git::clone),
    ("git-commit", git::commit),
    ("git-merge-pr", pr::merge_pr),
    ("git-open-pr", pr::open_pr),
    ("git-push", git::push),
    ("git-tag", git::tag),
    ("git-wait-for-pr", pr::wait_for_pr),
    ("github-push", github::push),
    ("hcl-update", hcl::hcl_update),
    ("helm-template", render::helm_template),
    ("helm-update-chart", chart::helm_update_chart),
    ("http", http::http),
    ("http-download", http::http_download),
    ("json-parse", update::json_parse),
    ("json-update", update::json_update),
    ("kustomize-build", render::kustomize_build),
    ("kustomize-set-image", update::kustomize_set_image),
    ("oci-download", oci::oci_download),
    ("oci-push", oci::oci_push),
    ("record-audit-event", approval::record_audit_event),
    ("rollout-wait", cluster::rollout_wait),
    ("send-message", message::send_message),
    ("set-freight-alias", meta::set_freight_alias),
    ("set-metadata", meta::set_metadata),
    ("tar", archive::tar),
    ("toml-parse", update::toml_parse),
    ("toml-update", update::toml_update),
    ("untar", archive::untar),
    ("wait-for-approval", approval::wait_for_approval),
    ("yaml-merge", update::yaml_merge),
    ("yaml-parse", update::yaml_parse),
    ("yaml-update", update::yaml_update),
];

/// What a dry run does with a step whose effects reach beyond the promotion's work
/// directory (docs/reference/api.md lists them); every other step runs as it would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InDryRun {
    Runs,
    /// It runs without its effect (nothing pushed, opened or applied); why, for people.
    Simulated(&'static str),
    /// It does not run (its status is Skipped, its message this reason).
    Skipped(&'static str),
}

pub fn in_dry_run(uses: &str) -> InDryRun {
    match uses {
        "git-push" | "github-push" => {
            InDryRun::Simulated("nothing is pushed: the diff against the branch's current head is reported")
        }
        "git-open-pr" => InDryRun::Simulated("no pull request is opened: its output is PR 0"),
        "oci-push" => InDryRun::Simulated("nothing is pushed: the digest is the source's"),
        "set-metadata" | "set-freight-alias" => InDryRun::Simulated("the change is not applied"),
        "record-audit-event" => InDryRun::Simulated("nothing is recorded in the audit log"),
        "wait-for-approval" => InDryRun::Skipped("it waits for approvals a dry run does not ask for"),
        "git-tag" => InDryRun::Skipped("it would create a tag in barge's repository cache"),
        "git-wait-for-pr" => InDryRun::Skipped("it waits for a pull request a dry run does not open"),
        "git-merge-pr" => InDryRun::Skipped("it would merge a pull request"),
        "argocd-update" => InDryRun::Skipped("it would sync Argo CD Applications"),
        "argocd-wait" | "rollout-wait" => {
            InDryRun::Skipped("it waits for the cluster to take a change a dry run does not make")
        }
        "http" => InDryRun::Skipped("an HTTP request may change something outside barge"),
        _ => InDryRun::Runs,
    }
}

pub fn lookup(name: &str) -> Option<StepFn> {
    REGISTRY.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(n, _)| *n).collect()
}

/// A field Kargo's step schema requires, and requires not empty: refused before the step does
/// anything (without it, e.g. git-clear's `path` would be the whole work directory).
pub(crate) fn required(step: &str, field: &str, value: &str) -> Result<(), StepError> {
    match value.trim().is_empty() {
        true => Err(StepError::Invalid(format!(
            "{step}: `{field}` is required and must not be empty"
        ))),
        false => Ok(()),
    }
}

/// An optional field that, when given, must not be empty (Kargo's schemas' `minLength: 1`).
pub(crate) fn not_empty(step: &str, field: &str, value: Option<&str>) -> Result<(), StepError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(StepError::Invalid(format!("{step}: `{field}` must not be empty"))),
        _ => Ok(()),
    }
}

pub(crate) fn done(outputs: Map<String, Json>) -> StepResult {
    Ok(StepDone::Done {
        outputs,
        effects: Vec::new(),
    })
}

/// The step waits for `why`: it runs again no sooner than its `pollInterval` when it gives one
/// (Kargo's option; the engine's own interval stays the floor), else at the engine's interval.
pub(crate) fn waiting(step: &str, why: String, poll_interval: Option<&str>) -> StepResult {
    Ok(match poll_interval {
        Some(every) => StepDone::WaitingFor {
            why,
            at_least: barge_core::duration::parse_go_duration(every)
                .map_err(|e| StepError::Invalid(format!("{step}: pollInterval: {e}")))?,
        },
        None => StepDone::Waiting(why),
    })
}

/// A sibling of `path` for work in progress (`.name.partial`), emptied of any leftover.
pub(crate) fn partial_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    remove_any(&partial);
    partial
}

pub(crate) fn remove_any(path: &Path) {
    // Nothing there is the usual case; a leftover is removed whatever it is.
    let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
}

/// Reads a step's config into its typed form; unknown fields are errors, as in Kargo's schemas,
/// and so are options barge cannot honour (validation reports them the same way).
pub(crate) fn config<T: DeserializeOwned>(step: &str, value: Json) -> Result<T, StepError> {
    for option in barge_core::step_config::unsupported_options(step) {
        if !barge_core::step_config::asks_nothing(value.get(option.field)) {
            return Err(StepError::Invalid(format!(
                "{step}: barge cannot honour `{}`: {}",
                option.field, option.why
            )));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." {
            String::new()
        } else {
            format!(" at `{at}`")
        };
        StepError::Invalid(format!("{step} config{at}: {}", e.inner()))
    })
}

impl StepCtx<'_> {
    /// A path inside the work directory; absolute paths and `..` that would leave it are refused.
    pub fn path(&self, rel: &str) -> Result<PathBuf, StepError> {
        let mut out = self.work.to_path_buf();
        for c in Path::new(rel).components() {
            match c {
                Component::Normal(p) => out.push(p),
                Component::CurDir => {}
                Component::ParentDir if out.starts_with(self.work) && out != self.work => {
                    out.pop();
                }
                _ => {
                    return Err(StepError::Invalid(format!(
                        "path `{rel}` leaves the promotion's work directory; use a relative path inside it"
                    )));
                }
            }
        }
        // A symbolic link in the work directory (a checked-out repository can hold any) must
        // not lead a step out of it: the part of the path that exists is resolved and must
        // stay inside, as Kargo's secure joins keep it.
        let mut existing = out.as_path();
        while std::fs::symlink_metadata(existing).is_err() {
            match existing.parent() {
                Some(p) => existing = p,
                None => return Ok(out),
            }
        }
        if let (Ok(real), Ok(work)) = (existing.canonicalize(), self.work.canonicalize())
            && !real.starts_with(&work)
        {
            return Err(StepError::Invalid(format!(
                "path `{rel}` attempts to traverse outside the working directory through a symbolic link"
            )));
        }
        Ok(out)
    }

    pub fn read(&self, rel: &str) -> Result<String, StepError> {
        let p = self.path(rel)?;
        std::fs::read_to_string(&p).map_err(|e| StepError::Invalid(format!("cannot read {rel}: {e}")))
    }

    pub fn write(&self, rel: &str, text: &str) -> Result<(), StepError> {
        let p = self.path(rel)?;
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StepError::Invalid(format!("cannot create {rel}: {e}")))?;
        }
        std::fs::write(&p, text).map_err(|e| StepError::Invalid(format!("cannot write {rel}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runners_are_kargo_steps_and_the_missing_ones_are_documented() {
        for n in names() {
            assert!(barge_core::steps::BUILTIN.contains(&n), "{n} is not a known step name");
        }
        let missing: Vec<&str> = barge_core::steps::BUILTIN
            .iter()
            .copied()
            .filter(|n| lookup(n).is_none())
            .collect();
        // Validation reports exactly these (barge_core::steps::NOT_RUNNABLE), and
        // docs/reference/steps.md lists them.
        let not_runnable: Vec<&str> = barge_core::steps::NOT_RUNNABLE.iter().map(|(n, _)| *n).collect();
        assert_eq!(missing, not_runnable);
        let doc = include_str!("../../../../docs/reference/steps.md");
        for m in missing {
            assert!(doc.contains(&format!("`{m}`")), "{m} is not documented");
        }
    }

    /// One meaning per class, whichever crate reports it: a write that lost a race (Kubernetes'
    /// 409) is tried again, a git merge conflict ends the step.
    #[test]
    fn a_stale_write_is_retried_and_a_merge_conflict_is_terminal() {
        let of = |class| StepError::of_class(class, "m".into());
        for retried in [ErrorClass::Transient, ErrorClass::RateLimited, ErrorClass::Conflict] {
            assert_eq!(of(retried), StepError::Retryable("m".into()), "{retried}");
        }
        for terminal in [
            ErrorClass::Auth,
            ErrorClass::Forbidden,
            ErrorClass::NotFound,
            ErrorClass::MergeConflict,
            ErrorClass::Invalid,
        ] {
            assert_eq!(of(terminal), StepError::Invalid("m".into()), "{terminal}");
        }
        let kube_409 = barge_kube::KubeError::Conflict("the object has been modified".into());
        assert_eq!(of(kube_409.class()), StepError::Retryable("m".into()));
        let rebase = barge_git::GitError::MergeConflict {
            url: "https://git.example/config.git".into(),
            message: "the promotion's changes conflict with the branch main".into(),
        };
        assert_eq!(of(rebase.class()), StepError::Invalid("m".into()));
    }
}
