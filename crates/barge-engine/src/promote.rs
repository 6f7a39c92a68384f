//! `barge promote`: one promotion run in-process, recorded in the store, resumable.
//!
//! The promotion (its inflated steps, vars and Freight) is stored when it is created and its
//! progress after every step; running the same command again after a crash resumes it. Step
//! events are shown here (`Progress`, for the CLI) and go to the events sink
//! ([`crate::events`]), which logs and audits them.
//!
//! A promotion runs under a lease, as the daemon's do (`serve.rs`): the command takes it before
//! running or resuming and renews it while it runs, so a promotion runs in one process at a
//! time. Another `barge promote` of the same Stage says where it runs instead of running it
//! again; when the holder was a `barge promote` of this host that is gone (killed), its lease
//! is taken over at once rather than when it runs out.

use crate::error::{EngineError, not_found};
use crate::events::{Event, EventSink, PromotionRef};
use crate::pipeline;
use barge_core::Catalog;
use barge_core::promotion::{Phase, State};
use barge_promote::{BoxFuture, Engine, Event as StepEvent, Events, Journal, Promotion};
use barge_store::{Store, StoredPromotion};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Request<'a> {
    pub stage: &'a str,
    pub project: Option<&'a str>,
    pub freight: &'a str,
    pub actor: &'a str,
    /// Promote although the promotion window is closed; the reason is audited.
    pub override_window: Option<&'a str>,
}

pub use crate::discover::now_millis;

/// How long a claim on a promotion lasts without renewal; its holder renews it every third of
/// it (the daemon for its promotions, `barge promote` for the one it runs).
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// Saves progress to the store (or nowhere, for a dry run). The final save of a success moves
/// the Freight into the Stage in the same transaction.
struct StoreJournal {
    store: Option<Store>,
    project: String,
    name: String,
    /// The lease holder the saves are fenced by.
    owner: String,
    entry: Entry,
    aborted: std::sync::atomic::AtomicBool,
    /// A save was refused because another runner holds the lease now.
    lease_lost: std::sync::atomic::AtomicBool,
    /// Where record-audit-event's events go (the one sink that audits).
    events: EventSink,
    promotion: PromotionRef,
}

/// The owned parts of a [`barge_store::StageEntry`].
struct Entry {
    stage: String,
    warehouse: String,
    freight: String,
    actor: String,
    verified: bool,
    hold: barge_store::HoldChange,
}

impl Journal for StoreJournal {
    fn save<'a>(&'a self, state: &'a State, phase: Phase, message: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(store) = &self.store else { return Ok(()) };
            let state = serde_json::to_value(state).map_err(|e| e.to_string())?;
            let e = &self.entry;
            let entry = barge_store::StageEntry {
                stage: &e.stage,
                warehouse: &e.warehouse,
                freight: &e.freight,
                promotion: &self.name,
                actor: &e.actor,
                verified: e.verified,
                hold: e.hold,
            };
            let entry = (phase == Phase::Succeeded).then_some(&entry);
            match store
                .save_promotion_state(
                    &self.project,
                    &self.name,
                    &self.owner,
                    &state,
                    phase,
                    message,
                    now_millis(),
                    entry,
                )
                .await
            {
                Err(barge_store::StoreError::Aborted(_)) => {
                    self.aborted.store(true, std::sync::atomic::Ordering::SeqCst);
                    Err("the promotion was aborted".into())
                }
                // The engine stops at a refused save, before its next step.
                Err(lost @ barge_store::StoreError::LeaseLost(_)) => {
                    self.lease_lost.store(true, std::sync::atomic::Ordering::SeqCst);
                    Err(lost.to_string())
                }
                other => other.map_err(|e| e.to_string()),
            }
        })
    }

    fn approvals(&self) -> BoxFuture<'_, Result<Vec<barge_core::approval::Approval>, String>> {
        Box::pin(async move {
            let Some(store) = &self.store else {
                return Ok(Vec::new());
            };
            let e = &self.entry;
            let stored = store
                .approvals_of(&self.project, &e.freight, &e.stage)
                .await
                .map_err(|e| e.to_string())?;
            Ok(stored.iter().map(pipeline::approval_of).collect())
        })
    }

    fn audit<'a>(&'a self, note: &'a barge_promote::AuditNote) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let event = Event::AuditRecorded {
                promotion: self.promotion.clone(),
                step: note.step.clone(),
                kind: note.kind.clone(),
                message: note.message.clone(),
                attributed_to: note.attributed_to.clone(),
                data: serde_json::to_value(&note.data).unwrap_or_default(),
            };
            self.events.emit(event).await.map_err(|e| e.to_string())
        })
    }
}

/// Shows progress on stderr (for the CLI); logging and auditing the steps is the events
/// sink's.
struct Progress {
    events: EventSink,
    promotion: PromotionRef,
    total: usize,
    /// Print step lines on stderr (the CLI); the daemon only logs.
    print: bool,
}

impl Events for Progress {
    fn event<'a>(&'a self, event: &'a StepEvent) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let promotion = self.promotion.clone();
            match event {
                StepEvent::StepStarted { index, alias, uses } => {
                    if self.print {
                        eprintln!("[{}/{}] {uses} ({alias}) …", index + 1, self.total);
                    }
                    let step = alias.clone();
                    let uses = uses.clone();
                    let _ = self.events.emit(Event::StepStarted { promotion, step, uses }).await;
                }
                StepEvent::StepFinished {
                    index,
                    alias,
                    uses,
                    status,
                    message,
                    outputs,
                    elapsed,
                } => {
                    if self.print {
                        let detail = if message.is_empty() {
                            String::new()
                        } else {
                            format!(": {message}")
                        };
                        eprintln!(
                            "[{}/{}] {uses} ({alias}) {} in {:.1}s{detail}",
                            index + 1,
                            self.total,
                            status.as_str(),
                            elapsed.as_secs_f64()
                        );
                    }
                    let finished = Event::StepFinished {
                        promotion,
                        step: alias.clone(),
                        uses: uses.clone(),
                        status: *status,
                        message: message.clone(),
                        outputs: outputs.clone(),
                    };
                    // A failed audit is logged by the sink; the promotion goes on.
                    let _ = self.events.emit(finished).await;
                }
            }
        })
    }
}

/// Creates a promotion of stored Freight into a Stage: the plan is inflated now (tasks,
/// vars, the Freight collection with the Stage's Freight from its other origins) and stored.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    catalog: &Catalog,
    store: &Store,
    events: &EventSink,
    def: &pipeline::StageDef<'_>,
    freight: &barge_store::StoredFreight,
    actor: &str,
    phase: Phase,
    dry_run: bool,
) -> Result<Promotion, EngineError> {
    let facts = store.freight_stages(def.project).await?;
    let mut collection = Vec::new();
    for fact in facts
        .iter()
        .filter(|f| f.stage == def.name && f.current() && f.warehouse != freight.warehouse)
    {
        if let Some(other) = store.get_freight(def.project, &fact.freight).await? {
            collection.push(other.freight);
        }
    }
    let p = Promotion::plan(
        catalog,
        def.project,
        def.name,
        freight.freight.clone(),
        collection,
        actor,
    )
    .map_err(EngineError::Invalid)?;
    if !dry_run {
        let now = now_millis();
        let plan = serde_json::to_value(&p)?;
        // Replicas' runners order their claims by it without reading the plan.
        let config_repo = Promotion::config_repo_of(&plan).map(str::to_string);
        store
            .create_promotion_with_repo(
                &StoredPromotion {
                    project: def.project.to_string(),
                    name: p.name.clone(),
                    stage: def.name.to_string(),
                    freight: freight.freight.metadata.name.clone(),
                    actor: actor.to_string(),
                    phase,
                    message: String::new(),
                    plan,
                    state: serde_json::to_value(State::new(&p.steps))?,
                    created_at: now,
                    updated_at: now,
                },
                config_repo.as_deref(),
            )
            .await?;
        let _ = events.emit(Event::PromotionCreated(PromotionRef::of(&p))).await;
    }
    Ok(p)
}

/// Runs (or resumes) a stored promotion to its end, moving the Freight into the Stage when
/// it succeeds and applying the metadata and alias changes its steps asked for. `owner` holds
/// the promotion's lease; every save is fenced by it, and a run whose lease another runner
/// took stops at once and ends with the promotion still Running (the new holder finishes it).
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    catalog: &Catalog,
    store: &Store,
    events: &EventSink,
    engine: &Engine,
    owner: &str,
    p: &Promotion,
    state: State,
    print: bool,
    dry_run: bool,
) -> Result<barge_promote::Outcome, EngineError> {
    let all = pipeline::stages(catalog);
    let def = pipeline::find_stage(&all, &p.stage, Some(&p.project))?;
    let warehouse = p.freight.origin.clone().unwrap_or_default().name;
    let snap = pipeline::Snapshot::read(store, &p.project).await?;
    let entry = Entry {
        stage: p.stage.clone(),
        warehouse: warehouse.clone(),
        freight: p.freight.metadata.name.clone(),
        actor: p.actor.clone(),
        verified: !def.has_verification(),
        hold: pipeline::hold_change(&snap, def, &warehouse, &p.freight.metadata.name, &p.actor, now_millis()),
    };
    // What stageMetadata() / freightMetadata() read: what earlier promotions recorded.
    let mut data = engine.data.clone();
    data.stage_metadata = store.list_metadata(&p.project, "Stage").await?;
    data.freight_metadata = store.list_metadata(&p.project, "Freight").await?;
    // What freightStatus() reads: each Freight's Stages, verifications, approvals, metadata.
    data.freight_status =
        crate::ops::freight_statuses(&snap.freight, &snap.facts, &snap.approvals, &data.freight_metadata);
    let journal = StoreJournal {
        store: (!dry_run).then(|| store.clone()),
        project: p.project.clone(),
        name: p.name.clone(),
        owner: owner.to_string(),
        entry,
        aborted: std::sync::atomic::AtomicBool::new(false),
        lease_lost: std::sync::atomic::AtomicBool::new(false),
        events: events.clone(),
        promotion: PromotionRef::of(p),
    };
    let progress = Progress {
        events: if dry_run { events.logging_only() } else { events.clone() },
        promotion: PromotionRef::of(p),
        total: p.steps.len(),
        print,
    };
    let initial = state.clone();
    let run = engine.run_with_data(p, state, &data, &journal, &progress);
    // An abort stops the promotion even in the middle of a long step (a PR wait, a health
    // poll): the run is dropped as a crash would drop it, which every step survives.
    let mut outcome = tokio::select! {
        outcome = run => outcome,
        () = aborted(store, &p.project, &p.name), if !dry_run => {
            journal.aborted.store(true, std::sync::atomic::Ordering::SeqCst);
            barge_promote::Outcome {
                phase: Phase::Aborted,
                message: String::new(),
                state: initial,
                effects: Vec::new(),
            }
        }
    };
    if journal.aborted.load(std::sync::atomic::Ordering::SeqCst) {
        outcome.phase = Phase::Aborted;
        outcome.message = "aborted".into();
        return Ok(outcome);
    }
    if journal.lease_lost.load(std::sync::atomic::Ordering::SeqCst) {
        tracing::warn!(
            promotion = %p.name,
            owner,
            "lost the promotion's lease to another runner (this one stalled past it); stopped without running further steps"
        );
        outcome.phase = Phase::Running;
        outcome.message = format!(
            "{owner} lost the lease of promotion {}; another runner carries it on",
            p.name
        );
        return Ok(outcome);
    }
    if dry_run {
        return Ok(outcome);
    }
    // The journal's last save recorded the end (and, on success, the Freight's entry) with
    // their audit rows; a promotion that stopped before its end (its progress could not be
    // saved) resumes and ends later.
    if matches!(outcome.phase, Phase::Succeeded | Phase::Failed | Phase::Errored) {
        let _ = events
            .emit(Event::PromotionFinished {
                promotion: PromotionRef::of(p),
                phase: outcome.phase,
                message: outcome.message.clone(),
            })
            .await;
    }
    if outcome.phase == Phase::Succeeded {
        let _ = events.emit(Event::FreightEntered(PromotionRef::of(p))).await;
        apply_effects(store, events, p, &outcome.effects).await?;
    }
    Ok(outcome)
}

/// Returns once the promotion is aborted (checked every second).
async fn aborted(store: &Store, project: &str, name: &str) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if let Ok(Some(p)) = store.get_promotion(project, name).await
            && p.phase == Phase::Aborted
        {
            return;
        }
    }
}

/// What a stored promotion runs and how far it got: its plan and its state.
pub fn stored_run(stored: &StoredPromotion) -> Result<(Promotion, State), EngineError> {
    use serde::Deserialize as _;
    let p = Promotion::deserialize(&stored.plan)
        .map_err(|e| EngineError::Internal(format!("the stored promotion is unreadable: {e}")))?;
    let state = State::deserialize(&stored.state)
        .map_err(|e| EngineError::Internal(format!("the stored promotion state is unreadable: {e}")))?;
    Ok((p, state))
}

/// `barge promote`: runs (or resumes) one promotion in this process.
pub async fn run(
    catalog: &Catalog,
    store: Store,
    events: &EventSink,
    engine: Engine,
    req: &Request<'_>,
) -> Result<(Promotion, barge_promote::Outcome), EngineError> {
    let all = pipeline::stages(catalog);
    let def = pipeline::find_stage(&all, req.stage, req.project)?;
    let project = def.project.to_string();
    let Some(freight) = store.get_freight(&project, req.freight).await? else {
        return not_found!(
            "no Freight {:?} in project {project:?}; list it with `barge get freight --project {project}` (discover it with `barge discover --db`)",
            req.freight
        );
    };
    // A promotion of this stage that did not finish (a crash) resumes.
    let unfinished = store.unfinished_promotion(&project, req.stage).await?;
    let owner = cli_owner();
    let (promotion, state) = match unfinished {
        Some(existing) if existing.freight == freight.freight.metadata.name => {
            take_lease(&store, &project, &existing.name, &owner).await?;
            let (p, state) = stored_run(&existing)?;
            eprintln!(
                "Resuming promotion {} at step {}/{}",
                p.name,
                state.next_step().unwrap_or(0) + 1,
                p.steps.len()
            );
            (p, state)
        }
        Some(existing) => {
            return Err(EngineError::Conflict(format!(
                "stage {} is still promoting {} ({}); wait for it to finish or abort it with `barge abort promotion {}`",
                req.stage, existing.freight, existing.name, existing.name
            )));
        }
        None => {
            let snap = pipeline::Snapshot::read(&store, &project).await?;
            pipeline::check_manual(catalog, &snap, def, &freight, req.override_window, now_millis())?;
            if let Some(reason) = req.override_window {
                audit_override(
                    events,
                    &project,
                    req.stage,
                    &freight.freight.metadata.name,
                    req.actor,
                    reason,
                )
                .await?;
            }
            let p = create(catalog, &store, events, def, &freight, req.actor, Phase::Running, false).await?;
            take_lease(&store, &project, &p.name, &owner).await?;
            let state = State::new(&p.steps);
            (p, state)
        }
    };
    let _renewing = Renewal::start(store.clone(), owner.clone());
    let outcome = execute(catalog, &store, events, &engine, &owner, &promotion, state, true, false).await?;
    Ok((promotion, outcome))
}

/// Who runs a promotion from this process: `barge promote@<host>:<pid>:<start>` (the process's
/// start time, since a pid alone is reused), so that another `barge promote` on this host can
/// tell when the holder is gone.
fn cli_owner() -> String {
    let pid = std::process::id();
    format!(
        "{CLI_OWNER}{}:{pid}:{}",
        host_name(),
        process_start(pid).unwrap_or_default()
    )
}

const CLI_OWNER: &str = "barge promote@";

/// This host's name (`/etc/hostname`), or `barge`.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "barge".into())
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/<pid>/stat`,
/// proc(5)); `None` when there is no such process (or no /proc).
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_string)
}

/// Whether the lease holder `owner` is a `barge promote` of this host that is gone: no process
/// with its pid, or one that started at another time. Never says so without /proc to ask.
fn holder_is_gone(owner: &str) -> bool {
    let Some(rest) = owner.strip_prefix(CLI_OWNER) else {
        return false;
    };
    let mut fields = rest.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (fields.next(), fields.next(), fields.next()) else {
        return false;
    };
    process_start(std::process::id()).is_some()
        && host == host_name()
        && pid
            .parse::<u32>()
            .is_ok_and(|pid| process_start(pid).as_deref() != Some(start))
}

/// Takes the promotion's lease for `owner`: free (or expired), or held by a `barge promote`
/// of this host that is gone. An error that says where it runs when another runner holds it.
async fn take_lease(store: &Store, project: &str, name: &str, owner: &str) -> Result<(), EngineError> {
    // Leases are measured by the database's clock, which every replica shares.
    let now = store.now().await?;
    let lease_until = now + LEASE.as_millis() as i64;
    if store.claim_promotion(project, name, owner, lease_until, now).await? {
        return Ok(());
    }
    let Some((holder, until)) = store.promotion_lease(project, name).await? else {
        return Err(EngineError::Conflict(format!(
            "promotion {name} finished meanwhile; see `barge get promotion {name}`"
        )));
    };
    if holder_is_gone(&holder)
        && store
            .take_over_promotion(project, name, &holder, owner, lease_until)
            .await?
    {
        tracing::info!(promotion = %name, previous = %holder, "the process that ran the promotion is gone; taking it over");
        return Ok(());
    }
    Err(EngineError::Conflict(format!(
        "promotion {name} is running in another process ({holder}; its lease runs for {}s more); wait for it to finish, or abort it with `barge abort promotion {name}`",
        ((until - now) / 1000).max(0)
    )))
}

/// Renews the leases `owner` holds while it lives (every third of a lease, as the daemon
/// does); dropping it stops the renewal.
struct Renewal(tokio::task::JoinHandle<()>);

impl Renewal {
    fn start(store: Store, owner: String) -> Renewal {
        Renewal(tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let renewed = async {
                    store
                        .renew_leases(&owner, store.now().await? + LEASE.as_millis() as i64)
                        .await
                };
                if let Err(e) = renewed.await {
                    tracing::warn!("cannot renew the promotion's lease: {e}");
                }
            }
        }))
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records that a person promoted through a closed promotion window, and why; the promotion
/// is not created unless this is audited.
pub async fn audit_override(
    events: &EventSink,
    project: &str,
    stage: &str,
    freight: &str,
    actor: &str,
    reason: &str,
) -> Result<(), EngineError> {
    events
        .emit(Event::WindowOverridden {
            project: project.into(),
            stage: stage.into(),
            freight: freight.into(),
            actor: actor.into(),
            reason: reason.into(),
        })
        .await?;
    Ok(())
}

/// Applies what set-metadata and set-freight-alias asked for (each change is audited).
async fn apply_effects(
    store: &Store,
    events: &EventSink,
    p: &Promotion,
    effects: &[barge_promote::steps::Effect],
) -> Result<(), EngineError> {
    use barge_promote::steps::Effect;
    let updated = |kind: &str, name: &str| Event::MetadataUpdated {
        project: p.project.clone(),
        kind: kind.into(),
        name: name.into(),
        actor: p.actor.clone(),
    };
    for e in effects {
        match e {
            Effect::StageMetadata { stage, values } => {
                store
                    .merge_metadata(&p.project, "Stage", stage, values, &p.actor, now_millis())
                    .await?;
                let _ = events.emit(updated("Stage", stage)).await;
            }
            Effect::FreightMetadata { freight, values } => {
                // A Freight named by alias is recorded under its name.
                let name = match store.get_freight(&p.project, freight).await? {
                    Some(f) => f.freight.metadata.name,
                    None => freight.clone(),
                };
                store
                    .merge_metadata(&p.project, "Freight", &name, values, &p.actor, now_millis())
                    .await?;
                let _ = events.emit(updated("Freight", &name)).await;
            }
            Effect::FreightAlias { freight, alias } => {
                store
                    .set_freight_alias(&p.project, freight, alias, &p.actor, now_millis())
                    .await
                    .map_err(|e| EngineError::from(e).within(format!("set-freight-alias of {freight}")))?;
                let _ = events
                    .emit(Event::FreightAliased {
                        project: p.project.clone(),
                        freight: freight.clone(),
                        alias: alias.clone(),
                        actor: p.actor.clone(),
                    })
                    .await;
            }
        }
    }
    Ok(())
}

/// The engine for the CLI: caches and work directories under `work_dir`; commit author, git
/// credentials and PR API addresses from the configuration file's `git` section (and git
/// credentials the definitions wrote in their URLs, `defined`).
pub fn engine(
    work_dir: PathBuf,
    config: &barge_registry::RegistryConfig,
    file: &crate::config::Config,
    dry_run: bool,
    defined: &crate::config::DefinedCredentials,
) -> Result<Engine, EngineError> {
    let secrets = file.read_secrets()?;
    let author = file
        .git
        .author
        .as_ref()
        .map_or_else(barge_git::repo::Author::default, |a| barge_git::repo::Author {
            name: a.name.clone(),
            email: a.email.clone(),
        });
    Ok(Engine {
        cache: Arc::new(barge_git::cache::RepoCache::new(&work_dir.join("repos"))),
        work_root: work_dir.join("promotions"),
        credentials: defined.lookup(file.git_credential_rules()),
        request_credentials: defined.for_requests(),
        author,
        rewrites: config.rewrites.clone(),
        registry: barge_registry::Registry::new(config.clone())?,
        push_policy: barge_git::repo::PushPolicy::default(),
        http: barge_promote::http_client(),
        pr_apis: file
            .git
            .pr_apis
            .iter()
            .map(|a| (a.prefix.clone(), a.url.clone()))
            .collect(),
        data: barge_core::eval::Data {
            now: chrono::Utc::now().to_rfc3339(),
            // barge has no namespaces: one set of values serves secret() and sharedSecret().
            secrets: secrets.clone(),
            shared_secrets: secrets,
            config_maps: file.config_maps.clone(),
            shared_config_maps: file.config_maps.clone(),
            ..Default::default()
        },
        dry_run,
        // Kargo polls running steps every 10 s; BARGE_POLL_INTERVAL (a Go duration) changes it.
        poll_interval: std::env::var("BARGE_POLL_INTERVAL")
            .ok()
            .and_then(|d| barge_core::duration::parse_go_duration(&d).ok())
            .unwrap_or(std::time::Duration::from_secs(10)),
        retry_backoff: std::time::Duration::from_secs(1),
        slots: std::sync::Arc::new(tokio::sync::Semaphore::new(barge_promote::DEFAULT_SLOTS)),
        wakeups: Default::default(),
        kube: std::sync::Arc::new(barge_kube::Clusters::new(None)),
        // The CLI and the daemon hand in the definitions they load.
        definitions: barge_promote::definitions(Default::default()),
    })
}

/// The outputs of a stored promotion's steps that use `uses` (e.g. the apps argocd-update
/// synced, the Rollout rollout-wait waited for), in step order.
pub fn step_outputs<'a>(
    stored: &'a barge_store::StoredPromotion,
    uses: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    stored.plan["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |s| s["uses"] == uses)
        .filter_map(|s| s["alias"].as_str())
        .map(|alias| &stored.state["outputs"][alias])
}

/// What `barge promote` reports of the promotion it ran here (`-o json`, `-o yaml`; the text
/// form is the CLI's).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReport {
    pub name: String,
    pub project: String,
    pub stage: String,
    pub freight: String,
    /// The Freight's alias, for people (the text form); scripts have its name.
    #[serde(skip)]
    pub freight_alias: Option<String>,
    pub phase: Phase,
    pub message: String,
    pub steps: Vec<barge_core::promotion::StepRecord>,
    pub outputs: serde_json::Map<String, serde_json::Value>,
    pub effects: Vec<barge_promote::steps::Effect>,
}

impl PromotionReport {
    fn of(p: Promotion, outcome: barge_promote::Outcome) -> PromotionReport {
        PromotionReport {
            name: p.name,
            project: p.project,
            stage: p.stage,
            freight: p.freight.metadata.name,
            freight_alias: p.freight.alias,
            phase: outcome.phase,
            message: outcome.message,
            steps: outcome.state.steps,
            outputs: outcome.state.outputs,
            effects: outcome.effects,
        }
    }
}

/// The definitions `barge promote` without PATHs runs: those `barge serve` last recorded in
/// the store at `db`. A store never written has none: that is said without creating it.
pub async fn stored_catalog(db: &str) -> Result<Catalog, EngineError> {
    let stored = match crate::unwritten_store(db) {
        Some(_) => None,
        None => crate::stored_definitions(&Store::open(db).await?).await?,
    };
    stored.ok_or_else(|| {
        EngineError::NotFound(format!(
            "no definitions: give them as PATH, or run `barge serve PATH --db {}` once",
            barge_store::redact_url(db)
        ))
    })
}

/// Where `barge promote` runs a promotion in its own process: the store, the work directory
/// and the configuration (registries; the file's git and secrets sections).
pub struct Here<'a> {
    pub db: &'a str,
    pub work_dir: PathBuf,
    pub registry: &'a barge_registry::RegistryConfig,
    pub file: &'a crate::config::Config,
}

/// `barge promote` without a server: builds the engine for `here`, runs (or resumes) the
/// promotion and reports it.
pub async fn run_here(catalog: &Catalog, here: Here<'_>, req: &Request<'_>) -> Result<PromotionReport, EngineError> {
    let store = Store::open(here.db).await?;
    let defined = crate::config::DefinedCredentials::of(catalog);
    let mut engine = engine(here.work_dir, here.registry, here.file, false, &defined)?;
    engine.definitions = barge_promote::definitions(catalog.clone());
    let events = EventSink::for_engine(store.clone(), &engine);
    let (p, outcome) = run(catalog, store, &events, engine, req).await?;
    Ok(PromotionReport::of(p, outcome))
}
