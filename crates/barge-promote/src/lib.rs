//! The promotion engine: runs a Stage's inflated steps in a work directory, with Kargo's step
//! semantics (barge_core::promotion) and durable progress.
//!
//! - Each step is a small unit in [`steps`], registered by name in one table
//!   ([`steps::REGISTRY`]).
//! - After every step the [`State`] (statuses, outputs) goes to a [`Journal`]; a restarted
//!   promotion resumes at the first unfinished step when its work directory survived, and at
//!   step 0 (keeping outputs) when it did not, as Kargo does. Git steps recognise their own
//!   commits by the `Barge-Promotion` trailer, so a replay never commits twice.
//! - Every step start and finish goes through one [`Events`] sink, where the caller logs,
//!   counts and audits it; outputs reach it with secret values already redacted.

#![forbid(unsafe_code)]

pub mod notify;
pub mod steps;
pub mod wakeups;

use barge_core::eval::{self, Data, Scope, StepStatus};
use barge_core::model::kargo::Freight;
use barge_core::promotion::{self, AfterError, FlatStep, Phase, State};
use barge_git::cache::RepoCache;
use barge_git::repo::{Author, PushPolicy};
use serde_json::{Map, Value as Json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One promotion to run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Promotion {
    /// `<stage>.<ULID>.<freight7>`; also the commit trailer.
    pub name: String,
    pub project: String,
    pub stage: String,
    /// The freight being promoted.
    pub freight: Freight,
    /// The freight collection (the promoted freight plus the stage's freight of other origins).
    pub collection: Vec<Freight>,
    pub actor: String,
    /// Stage vars, then template vars.
    pub vars: Vec<barge_core::model::Var>,
    pub steps: Vec<FlatStep>,
}

impl Promotion {
    /// Builds the promotion of `freight` into `stage` from loaded definitions: the Stage's
    /// template inflated with its tasks, Stage and template vars.
    pub fn plan(
        catalog: &barge_core::Catalog,
        project: &str,
        stage: &str,
        freight: Freight,
        collection: Vec<Freight>,
        actor: &str,
    ) -> Result<Promotion, String> {
        let spec = catalog
            .resources
            .iter()
            .find_map(|r| match &r.body {
                Some(barge_core::model::Body::Stage(s)) if r.project == project && r.name == stage => s.spec.clone(),
                _ => None,
            })
            .ok_or_else(|| format!("no Stage {stage} in project {project}"))?;
        let template = spec.promotion_template.clone().unwrap_or_default();
        let steps = promotion::inflate(&template.spec, &|name, kind| {
            promotion::find_task(catalog, project, name, kind).cloned()
        })
        .map_err(|e| format!("Stage {stage}: {e}"))?;
        let mut vars = spec.vars.clone();
        vars.extend(template.spec.vars.iter().cloned());
        let mut all = vec![freight.clone()];
        all.extend(collection.into_iter().filter(|f| f.origin != freight.origin));
        Ok(Promotion {
            name: promotion_name(stage, &freight.metadata.name),
            project: project.to_string(),
            stage: stage.to_string(),
            freight,
            collection: all,
            actor: actor.to_string(),
            vars,
            steps,
        })
    }
}

impl Promotion {
    /// The config repository a stored plan (a serialized [`Promotion`]) clones first, as its
    /// git-clone step spells `repoURL` (perhaps an expression, resolved only when it runs):
    /// where its git-push will most likely push, known before it runs.
    pub fn config_repo_of(plan: &serde_json::Value) -> Option<&str> {
        plan.get("steps")?
            .as_array()?
            .iter()
            .find(|step| step.get("uses").and_then(serde_json::Value::as_str) == Some("git-clone"))?
            .get("config")?
            .get("repoURL")?
            .as_str()
    }
}

/// An HTTP client for steps, on the workspace's one rustls provider (ring).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap_or_default()
}

/// The settings of [`http_client`], for a step that needs a client of its own (http's `proxy`).
pub(crate) fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().user_agent(concat!("barge/", env!("CARGO_PKG_VERSION")))
}

impl Promotion {
    /// What its expressions see: `base` (secrets, config values, metadata, the time) with this
    /// promotion's Freight collection and `ctx`.
    pub fn expression_data(&self, base: &Data) -> Data {
        let mut data = base.clone();
        data.freight = self.collection.clone();
        data.ctx = serde_json::json!({
            "project": self.project,
            "stage": self.stage,
            "promotion": self.name,
            "targetFreight": {
                "name": self.freight.metadata.name,
                "alias": self.freight.alias,
                "origin": self.freight.origin,
            },
            "meta": {"promotion": {"actor": self.actor}},
        });
        data
    }
}

/// Kargo's promotion name: `<stage>.<ULID>.<first 7 characters of the freight>`, lowercase
/// (Kargo lowercases the joined parts). The ULIDs of one process are monotonic, as Kargo's
/// `ulid.Make()` (oklog/ulid's monotonic entropy): names made in the same millisecond still
/// sort in the order they were made, and never repeat.
pub fn promotion_name(stage: &str, freight: &str) -> String {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let ulid = {
        // The generator is a timestamp and a counter: a panic elsewhere cannot leave it unsound.
        let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // 2^80 names in one millisecond: carry into the next one, still in order.
        generator
            .generate()
            .unwrap_or_else(ulid::Overflow::commit_overflow_increment)
    };
    let short: String = freight.chars().take(7).collect();
    format!("{stage}.{}.{short}", ulid.to_string().to_lowercase())
}

/// Where step progress is stored between steps, and the store the steps that read or write
/// barge's own records use (wait-for-approval, record-audit-event).
pub trait Journal: Send + Sync {
    fn save<'a>(&'a self, state: &'a State, phase: Phase, message: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// The approvals recorded so far for the promotion's Freight and Stage.
    fn approvals(&self) -> BoxFuture<'_, Result<Vec<barge_core::approval::Approval>, String>> {
        Box::pin(async { Err(NO_RECORDS.to_string()) })
    }

    /// Records a record-audit-event step's event in the audit log.
    fn audit<'a>(&'a self, note: &'a AuditNote) -> BoxFuture<'a, Result<(), String>> {
        let _ = note;
        Box::pin(async { Err(NO_RECORDS.to_string()) })
    }
}

/// Why a journal without a store refuses approvals and audit events.
const NO_RECORDS: &str =
    "approvals and audit events are kept by a store: run the promotion with `barge serve` or `barge promote --db`";

/// What a record-audit-event step records (its config, rendered).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditNote {
    /// The step's alias.
    pub step: String,
    /// The step's `type` (default `recorded`).
    pub kind: String,
    pub message: String,
    /// Who the step attributes the event to, when it names someone.
    pub attributed_to: Option<String>,
    pub data: std::collections::BTreeMap<String, String>,
}

/// What the engine reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    StepStarted {
        index: usize,
        alias: String,
        uses: String,
    },
    StepFinished {
        index: usize,
        alias: String,
        uses: String,
        status: StepStatus,
        message: String,
        /// Outputs with secret values redacted.
        outputs: Json,
        elapsed: Duration,
    },
}

/// The one place a caller sees every step event (to log, count, show and audit it).
pub trait Events: Send + Sync {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()>;
}

pub use barge_git::CredentialLookup;

/// Everything steps share: git cache, credentials, identity, HTTP client, config values.
/// Cloning it is cheap and shares the cache, clients and slots (a dry run clones it with its
/// own work directory, [`Engine::for_dry_run`]).
#[derive(Clone)]
pub struct Engine {
    pub cache: Arc<RepoCache>,
    /// Promotions' work directories live under here (`<root>/<promotion>`).
    pub work_root: PathBuf,
    pub credentials: CredentialLookup,
    /// The credentials the definitions wrote in their URLs (taken out when they were loaded),
    /// sent as basic auth by `http` and `http-download` requests to a URL that is or extends
    /// one of them (`barge_core::secret::UrlCredentials::for_request`).
    pub request_credentials: CredentialLookup,
    pub author: Author,
    /// URL rewrites (mirrors, local substitutes) applied to every repository a step fetches.
    pub rewrites: Vec<barge_core::rewrite::Rewrite>,
    pub push_policy: PushPolicy,
    pub http: reqwest::Client,
    /// The registry client of the oci-download and oci-push steps: barge's registry
    /// credentials, rewrites and rate limits (the ones image discovery uses).
    pub registry: barge_registry::Registry,
    /// API addresses for PR steps by repository URL prefix (self-hosted or test servers);
    /// without one, the provider's public API address is used.
    pub pr_apis: Vec<(String, String)>,
    /// Secrets and config values for `secret()`, `configMap()` …
    pub data: Data,
    /// Do everything but push, open PRs or change metadata; git-push reports the diff. The
    /// steps with effects outside the work directory are skipped or simulated
    /// ([`steps::in_dry_run`]).
    pub dry_run: bool,
    /// How long a step that keeps running waits between polls (Kargo: ≥10 s).
    pub poll_interval: Duration,
    /// The backoff between retries of an errored step.
    pub retry_backoff: Duration,
    /// Kubernetes clusters, for the argocd-* and rollout-wait steps (connected on first use).
    pub kube: Arc<barge_kube::Clusters>,
    /// Steps waiting on something a webhook may announce before their next poll (a pull
    /// request merged); the daemon's webhook receiver wakes them.
    pub wakeups: Arc<wakeups::Wakeups>,
    /// Bounds the promotions running at once (Kargo: 4 per controller). More would only
    /// thrash the CPU with checkouts; fewer lets finished promotions' worktrees be reused.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// The definitions send-message finds its channels in: `barge serve` hands in its
    /// reloaded ones, a CLI run the ones it loaded ([`definitions`]).
    pub definitions: tokio::sync::watch::Receiver<Arc<barge_core::load::Catalog>>,
}

/// `definitions` fixed to `catalog` (a process that does not reload).
pub fn definitions(catalog: barge_core::load::Catalog) -> tokio::sync::watch::Receiver<Arc<barge_core::load::Catalog>> {
    tokio::sync::watch::channel(Arc::new(catalog)).1
}

/// The default number of promotions an engine runs at once.
pub const DEFAULT_SLOTS: usize = 4;

/// The result of running a promotion to the end (or to an abort).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub phase: Phase,
    pub message: String,
    pub state: State,
    /// Metadata and alias changes the steps asked for (applied by the caller).
    pub effects: Vec<steps::Effect>,
}

impl Engine {
    /// The configured PR API address for a repository, if any (longest prefix wins).
    pub fn pr_api_for(&self, repo_url: &str) -> Option<String> {
        self.pr_apis
            .iter()
            .filter(|(prefix, _)| repo_url.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, api)| api.clone())
    }

    /// This engine for a dry run whose work directories are under `work_root` (a scratch
    /// directory): the same cache, credentials, clients and slots.
    pub fn for_dry_run(&self, work_root: PathBuf) -> Engine {
        Engine {
            work_root,
            dry_run: true,
            ..self.clone()
        }
    }

    pub fn work_dir(&self, promotion: &str) -> PathBuf {
        self.work_root.join(promotion)
    }

    /// Runs (or resumes) a promotion.
    pub async fn run(&self, p: &Promotion, state: State, journal: &dyn Journal, events: &dyn Events) -> Outcome {
        self.run_with_data(p, state, &self.data, journal, events).await
    }

    /// Runs (or resumes) a promotion with these expression values (the engine's own, plus
    /// what the caller read for this promotion, such as stage and freight metadata).
    pub async fn run_with_data(
        &self,
        p: &Promotion,
        mut state: State,
        base: &Data,
        journal: &dyn Journal,
        events: &dyn Events,
    ) -> Outcome {
        let _slot = self.slots.acquire().await;
        let work = self.work_dir(&p.name);
        let resumed = state.next_step().unwrap_or(0);
        if resumed > 0 && !work.exists() {
            // The work directory is gone (another machine, a wiped disk): start over with
            // the outputs kept, as Kargo does; git steps adopt their earlier commits.
            for r in &mut state.steps {
                r.status = StepStatus::Pending;
                r.error_count = 0;
            }
        }
        if let Err(e) = std::fs::create_dir_all(&work) {
            return self
                .finish(
                    state,
                    Phase::Errored,
                    format!("cannot create {}: {e}", work.display()),
                    Vec::new(),
                    journal,
                )
                .await;
        }
        let data = p.expression_data(base);
        let secrets = self.secret_values();
        let mut effects = Vec::new();
        let Some(mut i) = state.next_step() else {
            let phase = state.phase(&p.steps);
            return self.finish(state, phase, String::new(), effects, journal).await;
        };
        while i < p.steps.len() {
            let step = &p.steps[i];
            let mut scope = state.scope_for(&p.steps, i);
            let mut vars = Map::new();
            let layered = promotion::layer_vars(&mut vars, &p.vars, &data, &scope)
                .and_then(|()| promotion::layer_vars(&mut vars, &step.task_vars, &data, &scope))
                .and_then(|()| promotion::layer_vars(&mut vars, &step.vars, &data, &scope));
            scope.vars = vars;
            let run = layered.and_then(|()| promotion::should_run(step, &data, &scope));
            let started = Instant::now();
            // A step that started before (and did not finish) is a replay after a crash: its
            // side effects may already exist, and steps check for them.
            let replay = state.steps[i].started_at.is_some();
            state.steps[i].started_at.get_or_insert_with(now);
            let skipped_in_dry_run = match steps::in_dry_run(&step.uses) {
                steps::InDryRun::Skipped(why) if self.dry_run => Some(why),
                _ => None,
            };
            let (status, message, outputs) = match (run, skipped_in_dry_run) {
                (Err(e), _) => (StepStatus::Errored, e.to_string(), Map::new()),
                (Ok(false), _) => (StepStatus::Skipped, String::new(), Map::new()),
                // Skipped before its config is rendered: it may read outputs of steps the dry
                // run skipped too (a PR's number).
                (Ok(true), Some(why)) => (StepStatus::Skipped, why.to_string(), Map::new()),
                (Ok(true), None) => {
                    events
                        .event(&Event::StepStarted {
                            index: i,
                            alias: step.alias.clone(),
                            uses: step.uses.clone(),
                        })
                        .await;
                    state.steps[i].status = StepStatus::Running;
                    if let Err(e) = journal.save(&self.for_storage(&state), Phase::Running, "").await {
                        return self.progress_lost(state, &e, effects, journal).await;
                    }
                    self.attempt(
                        p,
                        step,
                        &work,
                        &data,
                        &scope,
                        replay,
                        journal,
                        &mut state.steps[i].error_count,
                        &mut effects,
                    )
                    .await
                }
            };
            let record = &mut state.steps[i];
            record.status = status;
            record.message = barge_core::secret::redact_values(&message, &secrets);
            record.finished_at = Some(now());
            // A failed step's outputs are kept too when it gives any (a PR closed unmerged).
            if status == StepStatus::Succeeded || (status == StepStatus::Failed && !outputs.is_empty()) {
                state.record_outputs(step, outputs);
            }
            let shown = state.outputs.get(&step.alias).cloned().unwrap_or(Json::Null);
            events
                .event(&Event::StepFinished {
                    index: i,
                    alias: step.alias.clone(),
                    uses: step.uses.clone(),
                    status,
                    message: state.steps[i].message.clone(),
                    outputs: barge_core::secret::redact_json(&shown, &secrets),
                    elapsed: started.elapsed(),
                })
                .await;
            if let Err(e) = journal.save(&self.for_storage(&state), Phase::Running, "").await {
                return self.progress_lost(state, &e, effects, journal).await;
            }
            i += 1;
        }
        let phase = state.phase(&p.steps);
        // The promotion is over: its checkouts go back to the cache for the next one.
        steps::release(self, &work).await;
        let message = state
            .steps
            .iter()
            .zip(&p.steps)
            .find(|(r, s)| r.status.is_failure() && !s.continue_on_error)
            .map(|(r, s)| format!("step {} ({}): {}", s.alias, s.uses, r.message))
            .unwrap_or_default();
        self.finish(state, phase, message, effects, journal).await
    }

    /// Runs one step until it succeeds, fails, or its retries / timeout run out.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        p: &Promotion,
        step: &FlatStep,
        work: &Path,
        data: &Data,
        scope: &Scope,
        replay: bool,
        journal: &dyn Journal,
        error_count: &mut u32,
        effects: &mut Vec<steps::Effect>,
    ) -> (StepStatus, String, Map<String, Json>) {
        let first_start = Instant::now();
        let Some(runner) = steps::lookup(&step.uses) else {
            return (
                StepStatus::Errored,
                format!(
                    "barge has no runner for step `{}`; known: {}",
                    step.uses,
                    steps::names().join(", ")
                ),
                Map::new(),
            );
        };
        loop {
            // A wake-up from now on is one this attempt's check may have missed.
            let checked = Instant::now();
            // Config is rendered per attempt: outputs and secrets may have changed.
            let result = match eval::render_value(&step.config, data, scope) {
                Err(e) => Err(steps::StepError::Invalid(e.to_string())),
                Ok(config) => {
                    let ctx = steps::StepCtx {
                        engine: self,
                        promotion: p,
                        step,
                        work,
                        data,
                        scope,
                        replay,
                        journal,
                    };
                    runner(&ctx, config).await
                }
            };
            match result {
                Ok(steps::StepDone::Done { outputs, effects: more }) => {
                    *error_count = 0;
                    effects.extend(more);
                    return (StepStatus::Succeeded, String::new(), outputs);
                }
                Ok(steps::StepDone::Waiting(why)) => {
                    if promotion::timed_out(step, first_start.elapsed()) {
                        return (StepStatus::Errored, format!("timed out while {why}"), Map::new());
                    }
                    tracing::info!(step = %step.alias, "{why}");
                    tokio::time::sleep(self.poll_interval).await;
                }
                Ok(steps::StepDone::WaitingFor { why, at_least }) => {
                    if promotion::timed_out(step, first_start.elapsed()) {
                        return (StepStatus::Errored, format!("timed out while {why}"), Map::new());
                    }
                    tracing::info!(step = %step.alias, "{why}");
                    tokio::time::sleep(at_least.max(self.poll_interval)).await;
                }
                Ok(steps::StepDone::WaitingOn { why, wake }) => {
                    if promotion::timed_out(step, first_start.elapsed()) {
                        return (StepStatus::Errored, format!("timed out while {why}"), Map::new());
                    }
                    tracing::info!(step = %step.alias, "{why}");
                    self.wakeups.wait(&wake, checked, self.poll_interval).await;
                }
                Ok(steps::StepDone::Skipped(why)) => return (StepStatus::Skipped, why, Map::new()),
                Err(steps::StepError::Failed(m)) => return (StepStatus::Failed, m, Map::new()),
                Err(steps::StepError::FailedWith(m, outputs)) => return (StepStatus::Failed, m, outputs),
                Err(steps::StepError::Invalid(m)) => return (StepStatus::Errored, m, Map::new()),
                Err(steps::StepError::Retryable(m)) => {
                    *error_count += 1;
                    if promotion::after_error(step, *error_count, first_start.elapsed()) == AfterError::GiveUp {
                        let tries = if *error_count > 1 {
                            format!(" (after {} attempts)", error_count)
                        } else {
                            String::new()
                        };
                        return (StepStatus::Errored, format!("{m}{tries}"), Map::new());
                    }
                    tracing::warn!(step = %step.alias, attempt = *error_count, "step errored, retrying: {m}");
                    tokio::time::sleep(self.retry_backoff).await;
                }
            }
        }
    }

    /// Every secret value steps can read (values under 3 characters would redact noise).
    pub fn secret_values(&self) -> Vec<String> {
        self.data
            .secrets
            .values()
            .chain(self.data.shared_secrets.values())
            .flat_map(|m| m.values().cloned())
            .filter(|v| v.len() >= 3)
            .collect()
    }

    /// The state as it may be stored or shown: secret values in outputs replaced by `***`.
    /// (A promotion resumed from it sees `***` where an output held a secret.)
    fn for_storage(&self, state: &State) -> State {
        let secrets = self.secret_values();
        if secrets.is_empty() {
            return state.clone();
        }
        let mut out = state.clone();
        out.outputs = state
            .outputs
            .iter()
            .map(|(k, v)| (k.clone(), barge_core::secret::redact_json(v, &secrets)))
            .collect();
        out
    }

    /// The store refused a save: stop here (the stored state stays resumable).
    async fn progress_lost(
        &self,
        state: State,
        e: &str,
        effects: Vec<steps::Effect>,
        journal: &dyn Journal,
    ) -> Outcome {
        let message = format!("cannot record progress: {e}");
        self.finish(state, Phase::Errored, message, effects, journal).await
    }

    async fn finish(
        &self,
        state: State,
        phase: Phase,
        message: String,
        effects: Vec<steps::Effect>,
        journal: &dyn Journal,
    ) -> Outcome {
        // Secrets never leave the engine: not in the store, not in the outcome.
        let state = self.for_storage(&state);
        if let Err(e) = journal.save(&state, phase, &message).await {
            tracing::error!("cannot record the promotion's end: {e}");
        }
        Outcome {
            phase,
            message,
            state,
            effects,
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::promotion_name;

    fn ulid_of(name: &str) -> &str {
        name.split('.').nth(1).unwrap()
    }

    #[test]
    fn promotion_names_are_stage_lowercase_ulid_and_short_freight() {
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
        };
        let before = now();
        let name = promotion_name("prod-eu", "3c5a1d7e9f0b2a4c6e8d0f1a3b5c7d9e1f2a4b6c");
        let after = now();
        let parts: Vec<&str> = name.split('.').collect();
        assert_eq!((parts.len(), parts[0], parts[2]), (3, "prod-eu", "3c5a1d7"), "{name}");
        let ulid = parts[1];
        assert_eq!(ulid.len(), 26, "{name}");
        assert!(
            ulid.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
            "lowercase Crockford base32: {name}"
        );
        let decoded = ulid::Ulid::from_string(&ulid.to_uppercase()).unwrap();
        assert!((before..=after).contains(&decoded.timestamp_ms()), "{name}");
        assert_eq!(
            promotion_name("dev", "abc").rsplit('.').next(),
            Some("abc"),
            "a short freight whole"
        );
    }

    #[test]
    fn promotion_names_of_one_process_sort_in_creation_order_and_never_repeat() {
        // Thousands within a few milliseconds: most share their millisecond with others.
        let names: Vec<String> = (0..10_000).map(|_| promotion_name("dev", "f")).collect();
        for pair in names.windows(2) {
            assert!(ulid_of(&pair[0]) < ulid_of(&pair[1]), "{} then {}", pair[0], pair[1]);
        }
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..2_000).map(|_| promotion_name("dev", "f")).collect::<Vec<_>>()))
            .collect();
        let mut all: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 8_000, "concurrent names are unique");
    }
}
