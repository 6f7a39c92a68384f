//! `barge promote`: one promotion run in-process, recorded in the store, resumable.
//!
//! The promotion (its inflated steps, vars and Freight) is stored when it is created and its
//! progress after every step; running the same command again after a crash resumes it. The
//! events sink here is the one place step events are shown, logged and audited.

use anyhow::{Context, Result, bail};
use barge_core::Catalog;
use barge_core::model::Body;
use barge_core::promotion::{Phase, State};
use barge_promote::{BoxFuture, Engine, Event, Events, Journal, Promotion};
use barge_store::{NewAudit, Store, StoredPromotion};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Request<'a> {
    pub stage: &'a str,
    pub project: Option<&'a str>,
    pub freight: &'a str,
    pub actor: &'a str,
    pub dry_run: bool,
}

/// Finds the Stage's project: the one given, or the only project with a Stage of that name.
fn project_of(catalog: &Catalog, stage: &str, project: Option<&str>) -> Result<String> {
    let found: Vec<&str> = catalog
        .resources
        .iter()
        .filter(|r| matches!(r.body, Some(Body::Stage(_))) && r.name == stage)
        .filter(|r| project.is_none_or(|p| p == r.project))
        .map(|r| r.project.as_str())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!(
            "no Stage named {stage:?}{} in these definitions",
            project.map(|p| format!(" in project {p:?}")).unwrap_or_default()
        ),
        many => bail!(
            "Stage {stage:?} exists in several projects ({}); add --project",
            many.join(", ")
        ),
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Saves progress to the store (or nowhere, for a dry run).
struct StoreJournal {
    store: Option<Store>,
    project: String,
    name: String,
}

impl Journal for StoreJournal {
    fn save<'a>(&'a self, state: &'a State, phase: Phase, message: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(store) = &self.store else { return Ok(()) };
            let state = serde_json::to_value(state).map_err(|e| e.to_string())?;
            store
                .save_promotion_state(&self.project, &self.name, &state, phase.as_str(), message, now_secs())
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Shows progress on stderr, logs, and audits every finished step.
struct Progress {
    store: Option<Store>,
    project: String,
    promotion: String,
    actor: String,
    total: usize,
}

impl Events for Progress {
    fn event<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match event {
                Event::StepStarted { index, alias, uses } => {
                    tracing::info!(promotion = %self.promotion, step = %alias, uses = %uses, "step started");
                    eprintln!("[{}/{}] {uses} ({alias}) …", index + 1, self.total);
                }
                Event::StepFinished {
                    index,
                    alias,
                    uses,
                    status,
                    message,
                    outputs,
                    elapsed,
                } => {
                    tracing::info!(promotion = %self.promotion, step = %alias, uses = %uses, status = status.as_str(), "step finished");
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
                    let Some(store) = &self.store else { return };
                    let subject = format!("Promotion/{}", self.promotion);
                    let body = serde_json::json!({"step": alias, "uses": uses, "status": status.as_str(), "message": message, "outputs": outputs});
                    let kind = if uses == "git-push" && status.as_str() == "Succeeded" {
                        "promotion.pushed"
                    } else {
                        "promotion.step"
                    };
                    let audit = NewAudit {
                        at: now_secs(),
                        project: &self.project,
                        kind,
                        subject: &subject,
                        actor: &self.actor,
                        body: &body,
                    };
                    if let Err(e) = store.append_audit(audit).await {
                        tracing::error!("cannot audit step {alias}: {e}");
                    }
                }
            }
        })
    }
}

/// Runs (or resumes) one promotion; returns the outcome for printing.
pub async fn run(
    catalog: &Catalog,
    store: Store,
    engine: Engine,
    req: &Request<'_>,
) -> Result<(Promotion, barge_promote::Outcome)> {
    let project = project_of(catalog, req.stage, req.project)?;
    let freight = store
        .get_freight(&project, req.freight)
        .await?
        .with_context(|| {
            format!(
                "no Freight {:?} in project {project:?}; list it with `barge get freight --project {project}` (discover it with `barge discover --db`)",
                req.freight
            )
        })?
        .freight;
    let stage_requests = catalog.resources.iter().find_map(|r| match &r.body {
        Some(Body::Stage(s)) if r.project == project && r.name == req.stage => {
            Some(s.spec.clone().unwrap_or_default().requested_freight)
        }
        _ => None,
    });
    let origin = freight.origin.clone().unwrap_or_default();
    if !stage_requests
        .unwrap_or_default()
        .iter()
        .any(|r| r.origin.name == origin.name)
    {
        bail!(
            "Stage {:?} does not request Freight from Warehouse {:?} (the origin of {})",
            req.stage,
            origin.name,
            req.freight
        );
    }
    // A promotion of this stage that did not finish (a crash) resumes; a dry run never does.
    let unfinished = if req.dry_run {
        None
    } else {
        store.unfinished_promotion(&project, req.stage).await?
    };
    let (promotion, state) = match unfinished {
        Some(existing) if existing.freight == freight.metadata.name => {
            let p: Promotion = serde_json::from_value(existing.plan).context("the stored promotion is unreadable")?;
            let state: State =
                serde_json::from_value(existing.state).context("the stored promotion state is unreadable")?;
            eprintln!(
                "Resuming promotion {} at step {}/{}",
                p.name,
                state.next_step().unwrap_or(0) + 1,
                p.steps.len()
            );
            (p, state)
        }
        Some(existing) => bail!(
            "stage {} is still promoting {} ({}); wait for it to finish",
            req.stage,
            existing.freight,
            existing.name
        ),
        None => {
            let p = Promotion::plan(catalog, &project, req.stage, freight.clone(), Vec::new(), req.actor)
                .map_err(anyhow::Error::msg)?;
            let state = State::new(&p.steps);
            if !req.dry_run {
                store
                    .create_promotion(&StoredPromotion {
                        project: project.clone(),
                        name: p.name.clone(),
                        stage: req.stage.to_string(),
                        freight: freight.metadata.name.clone(),
                        actor: req.actor.to_string(),
                        phase: Phase::Running.as_str().into(),
                        message: String::new(),
                        plan: serde_json::to_value(&p)?,
                        state: serde_json::to_value(&state)?,
                        created_at: now_secs(),
                        updated_at: now_secs(),
                    })
                    .await?;
            }
            (p, state)
        }
    };
    // What stageMetadata() / freightMetadata() read: what earlier promotions recorded.
    let mut engine = engine;
    engine.data.stage_metadata = store.list_metadata(&project, "Stage").await?;
    engine.data.freight_metadata = store.list_metadata(&project, "Freight").await?;
    let recording = if req.dry_run { None } else { Some(store.clone()) };
    let journal = StoreJournal {
        store: recording.clone(),
        project: project.clone(),
        name: promotion.name.clone(),
    };
    let progress = Progress {
        store: recording,
        project,
        promotion: promotion.name.clone(),
        actor: req.actor.to_string(),
        total: promotion.steps.len(),
    };
    let outcome = engine.run(&promotion, state, &journal, &progress).await;
    if !req.dry_run {
        apply_effects(&store, &promotion, &outcome.effects).await?;
    }
    Ok((promotion, outcome))
}

/// Applies what set-metadata and set-freight-alias asked for (each change is audited).
async fn apply_effects(store: &Store, p: &Promotion, effects: &[barge_promote::steps::Effect]) -> Result<()> {
    use barge_promote::steps::Effect;
    for e in effects {
        match e {
            Effect::StageMetadata { stage, values } => {
                store
                    .merge_metadata(&p.project, "Stage", stage, values, &p.actor, now_secs())
                    .await?;
            }
            Effect::FreightMetadata { freight, values } => {
                // A Freight named by alias is recorded under its name.
                let name = match store.get_freight(&p.project, freight).await? {
                    Some(f) => f.freight.metadata.name,
                    None => freight.clone(),
                };
                store
                    .merge_metadata(&p.project, "Freight", &name, values, &p.actor, now_secs())
                    .await?;
            }
            Effect::FreightAlias { freight, alias } => {
                store
                    .set_freight_alias(&p.project, freight, alias, &p.actor, now_secs())
                    .await
                    .with_context(|| format!("set-freight-alias of {freight}"))?;
            }
        }
    }
    Ok(())
}

/// The engine for the CLI: caches and work directories under `work_dir`; commit author, git
/// credentials and PR API addresses from the configuration file's `git` section.
pub fn engine(
    work_dir: PathBuf,
    config: &barge_registry::RegistryConfig,
    file: &crate::config::Config,
    dry_run: bool,
) -> Result<Engine> {
    let rules = file.git_credential_rules();
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
        credentials: Arc::new(move |url| barge_registry::rule_credentials(&rules, url)),
        author,
        rewrites: config.rewrites.clone(),
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
        poll_interval: std::time::Duration::from_secs(10),
        retry_backoff: std::time::Duration::from_secs(1),
        slots: std::sync::Arc::new(tokio::sync::Semaphore::new(barge_promote::DEFAULT_SLOTS)),
    })
}
