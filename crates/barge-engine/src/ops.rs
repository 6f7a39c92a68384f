//! The verbs people and scripts use on a running pipeline (get, history, promote, approve,
//! abort, hold, release, alias, refresh), as one [`Call`] type with one handler that answers
//! each with its typed [`Answer`] or an [`EngineError`]. The CLI runs a call against the store
//! directly (`--db`) or sends it to `barge serve` (`--server`), whose API runs the same
//! handler: one implementation, two transports.

use crate::answer::*;
use crate::error::{EngineError, invalid, not_found};
use crate::events::{Event, EventSink, PromotionRef, VerificationRef};
use crate::format::{go_duration, rfc3339};
use crate::pipeline::{self, Snapshot};
use crate::promote::now_millis;
use barge_core::Catalog;
use barge_core::promotion::Phase;
use barge_store::Store;

/// A call: what a verb asks of the engine. It is no wire format: `barge serve` builds it from
/// its REST routes and the CLI from its flags, each in memory. `actor` is left empty by the
/// API: the engine records the principal's identity instead ([`Call::actor_mut`]); the audit
/// log names a refused call by [`Call::name`].
#[derive(Clone, Debug)]
pub enum Call {
    GetStages {
        project: Option<String>,
        name: Option<String>,
    },
    GetWarehouses {
        project: Option<String>,
    },
    GetFreight {
        project: Option<String>,
        warehouse: Option<String>,
        name: Option<String>,
        /// One page of the project's Freight (the REST API's `?limit=`), read as a page from
        /// the store instead of whole; needs `project`.
        page: Option<FreightPage>,
    },
    /// The webhook receivers the running definitions configure, with the path each is served
    /// at (`barge get webhooks --server`; needs the engine's secret store).
    GetWebhooks {
        project: Option<String>,
    },
    GetPromotions {
        project: Option<String>,
        stage: Option<String>,
        name: Option<String>,
    },
    History {
        project: Option<String>,
        stage: Option<String>,
        /// A Freight's name or alias.
        freight: Option<String>,
        /// Unix milliseconds.
        since: Option<i64>,
        /// Of this audit kind only (`promotion.created`, ...).
        kind: Option<String>,
        /// At or before this time (Unix milliseconds).
        until: Option<i64>,
        /// Only events after this one (its `at` and `id`) in the newest-first order: the
        /// next page.
        before: Option<(i64, i64)>,
        limit: i64,
    },
    /// Each Stage's delivery (DORA) figures since `since` (Unix milliseconds; 30 days back
    /// without it), from the store's history.
    Stats {
        project: Option<String>,
        stage: Option<String>,
        since: Option<i64>,
    },
    /// Queues a promotion (the daemon runs it).
    Promote {
        project: Option<String>,
        stage: String,
        freight: String,
        actor: String,
        override_reason: Option<String>,
    },
    /// What promoting the Freight would push, without pushing ([`crate::dryrun`]); the same
    /// checks and rights as `Promote`.
    PromoteDryRun {
        project: Option<String>,
        stage: String,
        freight: String,
        actor: String,
        override_reason: Option<String>,
    },
    /// Queues a promotion of the Freight into every Stage directly downstream of `from`.
    PromoteDownstream {
        project: Option<String>,
        from: String,
        freight: String,
        actor: String,
    },
    Approve {
        project: Option<String>,
        stage: String,
        freight: String,
        actor: String,
    },
    Abort {
        project: Option<String>,
        name: String,
        actor: String,
    },
    Hold {
        project: Option<String>,
        stage: String,
        actor: String,
    },
    Release {
        project: Option<String>,
        stage: String,
        actor: String,
    },
    Alias {
        project: Option<String>,
        freight: String,
        alias: String,
        actor: String,
    },
    /// Queues a new verification of the Stage's current Freight, or aborts the running one.
    Verify {
        project: Option<String>,
        stage: String,
        abort: bool,
        actor: String,
    },
    /// Discover a Warehouse now (the daemon's next pass takes it first).
    Refresh {
        project: Option<String>,
        warehouse: String,
        actor: String,
    },
    /// The answering barge's version (`barge version --server`).
    Version,
    /// The `barge serve` replicas on the store, with their heartbeats and leases.
    GetReplicas,
    /// The notification outbox: what was queued for the project's channels and how its
    /// delivery went, newest first.
    GetNotifications {
        project: Option<String>,
        /// `pending`, `delivered` or `failed`; every state without it.
        state: Option<String>,
        limit: i64,
    },
    /// `barge token create|list|revoke`.
    Token(crate::tokens::TokenCall),
}

/// A page of Freight, newest first by creation time to the second and then name.
#[derive(Clone, Debug)]
pub struct FreightPage {
    /// At most this many Freight.
    pub limit: i64,
    /// Only Freight before this creation time (Unix seconds) and name in that order: the
    /// previous page's last.
    pub after: Option<(i64, String)>,
}

impl Call {
    /// The call's name, as the audit log's `access.denied` events name a refused call
    /// (`Call/promote`): the verb in camelCase, `token.` and the verb for token calls.
    pub fn name(&self) -> &'static str {
        match self {
            Call::GetStages { .. } => "getStages",
            Call::GetWarehouses { .. } => "getWarehouses",
            Call::GetFreight { .. } => "getFreight",
            Call::GetWebhooks { .. } => "getWebhooks",
            Call::GetPromotions { .. } => "getPromotions",
            Call::History { .. } => "history",
            Call::Stats { .. } => "stats",
            Call::Promote { .. } => "promote",
            Call::PromoteDryRun { .. } => "promoteDryRun",
            Call::PromoteDownstream { .. } => "promoteDownstream",
            Call::Approve { .. } => "approve",
            Call::Abort { .. } => "abort",
            Call::Hold { .. } => "hold",
            Call::Release { .. } => "release",
            Call::Alias { .. } => "alias",
            Call::Verify { .. } => "verify",
            Call::Refresh { .. } => "refresh",
            Call::Version => "version",
            Call::GetReplicas => "getReplicas",
            Call::GetNotifications { .. } => "getNotifications",
            Call::Token(t) => t.name(),
        }
    }

    /// The Freight the call names (its name or alias), for the calls that name one: the
    /// audit log records it with a refusal.
    pub fn freight(&self) -> Option<&str> {
        match self {
            Call::GetFreight { name, .. } => name.as_deref(),
            Call::History { freight, .. } => freight.as_deref(),
            Call::Promote { freight, .. }
            | Call::PromoteDryRun { freight, .. }
            | Call::PromoteDownstream { freight, .. }
            | Call::Approve { freight, .. }
            | Call::Alias { freight, .. } => Some(freight),
            _ => None,
        }
    }

    /// Whether the call only reads the store.
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Call::GetStages { .. }
                | Call::GetWarehouses { .. }
                | Call::GetWebhooks { .. }
                | Call::GetFreight { .. }
                | Call::GetPromotions { .. }
                | Call::History { .. }
                | Call::Stats { .. }
                | Call::GetReplicas
                | Call::GetNotifications { .. }
        )
    }
}

impl Call {
    /// The project the call names, for the calls that name one (`None` for those that act
    /// on no project).
    pub fn project_mut(&mut self) -> Option<&mut Option<String>> {
        match self {
            Call::GetStages { project, .. }
            | Call::GetWarehouses { project }
            | Call::GetWebhooks { project }
            | Call::GetFreight { project, .. }
            | Call::GetPromotions { project, .. }
            | Call::History { project, .. }
            | Call::Stats { project, .. }
            | Call::GetNotifications { project, .. }
            | Call::Promote { project, .. }
            | Call::PromoteDryRun { project, .. }
            | Call::PromoteDownstream { project, .. }
            | Call::Approve { project, .. }
            | Call::Abort { project, .. }
            | Call::Hold { project, .. }
            | Call::Release { project, .. }
            | Call::Alias { project, .. }
            | Call::Verify { project, .. }
            | Call::Refresh { project, .. } => Some(project),
            Call::Version | Call::GetReplicas | Call::Token(_) => None,
        }
    }

    /// Whether the call needs the definitions (the others only read or change the store).
    fn needs_definitions(&self) -> bool {
        !matches!(
            self,
            Call::GetFreight { .. }
                | Call::GetPromotions { .. }
                | Call::History { .. }
                | Call::Stats { .. }
                | Call::Abort { .. }
                | Call::Alias { .. }
                | Call::Token(_)
                | Call::GetReplicas
                | Call::GetNotifications { .. }
        )
    }
}

/// Runs a call in this process on the store at `db` (the CLI's `--db`), as the local user
/// (whoever can open the store can change it; the call records its own actor). The definitions
/// come from `paths`, or without them from what `barge serve` last recorded; calls that only
/// touch the store skip them. Reading a store that was never written answers from an empty
/// one and creates no file: a `barge get` with a typo in --db leaves nothing behind.
pub async fn handle_here(db: &str, paths: &[String], c: Call) -> Result<Answer, EngineError> {
    let scratch = match crate::unwritten_store(db).filter(|_| c.reads_only()) {
        Some(_) => Some(tempfile::tempdir().map_err(|e| EngineError::Internal(format!("no scratch store: {e}")))?),
        None => None,
    };
    let store = match &scratch {
        Some(dir) => Store::open_for_one_call(&format!("sqlite://{}", dir.path().join("empty.db").display())).await?,
        None => Store::open_for_one_call(db).await?,
    };
    let catalog = if !c.needs_definitions() {
        Catalog::default()
    } else if paths.is_empty() {
        crate::stored_definitions(&store).await?.unwrap_or_default()
    } else {
        let paths = paths.to_vec();
        let loaded = tokio::task::spawn_blocking(move || crate::load_catalog(&paths))
            .await
            .map_err(|e| EngineError::Internal(format!("loading the definitions stopped: {e}")))?;
        let catalog = loaded.map_err(|e| EngineError::Invalid(e.to_string()))?;
        if catalog.errors() > 0 {
            return Err(EngineError::Invalid(format!(
                "the definitions have errors:\n{}",
                crate::diagnostics::diagnostics_text(&catalog, false)
            )));
        }
        catalog
    };
    if c.needs_definitions() && catalog.resources.is_empty() {
        return Err(EngineError::NotFound(format!(
            "no definitions: pass them with -f PATH, or run `barge serve PATH --db {}` once so the store has them",
            barge_store::redact_url(db)
        )));
    }
    let events = EventSink::new(Some(store.clone()), Vec::new());
    let cx = Context {
        store: &store,
        events: &events,
        catalog: &catalog,
        refresh: None,
        health: None,
        principal: &barge_core::authz::Principal::local(),
        engine: None,
    };
    handle(&cx, c).await
}

impl Call {
    /// Who the call says acts, for the verbs that record one. The API replaces it with its
    /// token's identity.
    pub fn actor_mut(&mut self) -> Option<&mut String> {
        match self {
            Call::Promote { actor, .. }
            | Call::PromoteDryRun { actor, .. }
            | Call::PromoteDownstream { actor, .. }
            | Call::Approve { actor, .. }
            | Call::Abort { actor, .. }
            | Call::Hold { actor, .. }
            | Call::Release { actor, .. }
            | Call::Alias { actor, .. }
            | Call::Verify { actor, .. }
            | Call::Refresh { actor, .. } => Some(actor),
            Call::Token(t) => t.actor_mut(),
            Call::GetStages { .. }
            | Call::GetWarehouses { .. }
            | Call::GetWebhooks { .. }
            | Call::GetFreight { .. }
            | Call::GetPromotions { .. }
            | Call::History { .. }
            | Call::Stats { .. }
            | Call::GetReplicas
            | Call::GetNotifications { .. }
            | Call::Version => None,
        }
    }
}

/// Asks the daemon to discover a Warehouse (project, warehouse) on its next pass.
pub type Refresh<'a> = dyn Fn(&str, &str) + Send + Sync + 'a;

/// Where a call runs: the store, the definitions, (in the daemon) a way to ask for an
/// immediate discovery, and the promotion engine a dry run runs on.
pub struct Context<'a> {
    pub store: &'a Store,
    /// Where the changes a call makes are announced.
    pub events: &'a EventSink,
    pub catalog: &'a Catalog,
    pub refresh: Option<&'a Refresh<'a>>,
    /// Stage health as the daemon last checked it (none without a daemon).
    pub health: Option<&'a pipeline::HealthMap>,
    /// Who calls; every call is authorized against it first ([`crate::access`]).
    pub principal: &'a barge_core::authz::Principal,
    /// The promotion engine (its cache, credentials, secrets); `None` where promotions do
    /// not run, which refuses a dry run.
    pub engine: Option<&'a barge_promote::Engine>,
}

type Result<T, E = EngineError> = std::result::Result<T, E>;

fn projects_of(catalog: &Catalog) -> Vec<String> {
    pipeline::stages(catalog).into_iter().map(|(p, _)| p).collect()
}

/// Refuses a `--project` the definitions do not have (an empty list would read as "nothing
/// there yet").
fn known_project(catalog: &Catalog, project: Option<&str>) -> Result<()> {
    let Some(want) = project else { return Ok(()) };
    let mut all: Vec<&str> = catalog
        .resources
        .iter()
        .map(|r| r.project.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    all.sort_unstable();
    all.dedup();
    if all.contains(&want) {
        return Ok(());
    }
    not_found!(
        "no project named {want:?} in the definitions (projects: {})",
        if all.is_empty() { "none".into() } else { all.join(", ") }
    )
}

/// The project a call means: the one given, or the only one there is.
fn one_project(catalog: &Catalog, project: Option<&str>) -> Result<String> {
    if let Some(p) = project {
        return Ok(p.to_string());
    }
    let all = projects_of(catalog);
    match all.as_slice() {
        [one] => Ok(one.clone()),
        [] => invalid!("the definitions have no Stages"),
        many => invalid!("several projects ({}); add --project", many.join(", ")),
    }
}

/// The pages of one project's Freight as answered (`GetFreight` with a page and no name), by
/// Warehouse, cursor and size, kept under the project's change counter ([`Store::derived`]):
/// every write a page shows raises the counter (minting, aliases, Freight/Stage facts,
/// approvals), so a page kept under the counter a request reads is as new as the request.
/// Reading a page's 100 bodies and parsing them was most of a page's time (BENCHMARKS.md,
/// "REST API"); a kept one costs the counter's row.
#[derive(Default)]
struct FreightPages(std::sync::Mutex<std::collections::HashMap<PageKey, std::sync::Arc<Vec<FreightInfo>>>>);

/// Warehouse, cursor, size.
type PageKey = (Option<String>, Option<(i64, String)>, i64);

impl FreightPages {
    /// Pages kept per project and counter; a client paging through 10,000 Freight by 100
    /// needs 100, and more are forgotten at once.
    const MAX: usize = 256;

    fn get(&self, key: &PageKey) -> Option<std::sync::Arc<Vec<FreightInfo>>> {
        let pages = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pages.get(key).cloned()
    }

    fn put(&self, key: PageKey, page: Vec<FreightInfo>) {
        let mut pages = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pages.len() >= Self::MAX {
            pages.clear();
        }
        pages.insert(key, std::sync::Arc::new(page));
    }
}

/// Runs a call. Errors name what is wrong and what to do; their class says which kind of
/// wrong it is.
pub async fn handle(cx: &Context<'_>, mut call: Call) -> Result<Answer> {
    crate::access::authorize(cx, &mut call).await?;
    let now = now_millis();
    let store = cx.store;
    let catalog = cx.catalog;
    Ok(match call {
        Call::GetStages { project, name } => {
            known_project(catalog, project.as_deref())?;
            let all = pipeline::stages(catalog);
            let mut out = Vec::new();
            for (p, defs) in &all {
                if project.as_deref().is_some_and(|want| want != p) {
                    continue;
                }
                let snap = Snapshot::read(store, p).await?;
                for def in defs.iter().filter(|d| name.as_deref().is_none_or(|n| n == d.name)) {
                    let mut status = pipeline::stage_status(catalog, &snap, def, now)?;
                    status.health = cx
                        .health
                        .and_then(|h| h.get(&(def.project.to_string(), def.name.to_string())))
                        .cloned();
                    out.push(status);
                }
            }
            if let Some(n) = &name
                && out.is_empty()
            {
                return not_found!("no Stage named {n:?} in the definitions");
            }
            Answer::Stages(out)
        }
        Call::GetWarehouses { project } => {
            known_project(catalog, project.as_deref())?;
            let mut out = Vec::new();
            for (r, spec) in crate::discover::warehouses(catalog, crate::discover::Selection::All) {
                if project.as_deref().is_some_and(|p| p != r.project) {
                    continue;
                }
                let status = store.get_discovery_status(&r.project, &r.name).await?;
                let minted = store.warehouse_freight(&r.project, &r.name).await?;
                out.push(WarehouseSummary {
                    project: r.project.clone(),
                    name: r.name.clone(),
                    interval: spec.interval.clone().unwrap_or_else(|| "5m".into()),
                    subscriptions: spec.subscriptions.len(),
                    freight: usize::try_from(minted.minted).unwrap_or_default(),
                    newest: minted
                        .newest_name
                        .as_ref()
                        .map(|_| minted.newest_alias.clone().unwrap_or_default()),
                    last_freight: minted.newest_name,
                    spec: Some(spec.clone()),
                    last_discovery: status.as_ref().map(|(_, at)| *at),
                    error: status.as_ref().and_then(|(s, _)| discovery_error(s)),
                });
            }
            Answer::Warehouses(out)
        }
        Call::GetWebhooks { project } => {
            let Some(engine) = cx.engine else {
                return invalid!(
                    "webhook receivers are served by `barge serve`: add --server, or give the definitions"
                );
            };
            known_project(catalog, project.as_deref())?;
            // A receiver whose secret is missing is not served; the daemon logs why.
            let (receivers, _) = barge_core::webhook::receivers(catalog, &engine.data.secrets);
            let list = receivers
                .iter()
                .filter(|r| project.as_deref().is_none_or(|p| p == r.project))
                .map(|r| WebhookInfo::of(&r.listing()))
                .collect();
            Answer::Webhooks(list)
        }
        Call::GetFreight {
            project,
            warehouse,
            name,
            page,
        } => {
            // A page of a project's Freight is kept until the project changes (`FreightPages`).
            let pages = match (&page, &project, &name) {
                (Some(page), Some(project), None) => {
                    let pages = store
                        .derived(project, || async { Ok::<_, EngineError>(FreightPages::default()) })
                        .await?;
                    let key = (warehouse.clone(), page.after.clone(), page.limit);
                    if let Some(kept) = pages.get(&key) {
                        return Ok(Answer::Freight(kept.as_ref().clone()));
                    }
                    Some((pages, key))
                }
                _ => None,
            };
            let (mut list, mut facts, kept) = match &page {
                Some(page) => {
                    let Some(project) = &project else {
                        return invalid!("a page of Freight is of one project: add it");
                    };
                    // The project's facts and approvals as the Stages are decided from them,
                    // kept between changes (`Snapshot::read`): reading the page's facts took a
                    // row per Freight and Stage, most of a page's time (BENCHMARKS.md, "REST
                    // API"). Read first, so that they are at least as new as the request.
                    let snap = Snapshot::read(store, project).await?;
                    let after = page.after.as_ref().map(|(at, name)| (*at, name.as_str()));
                    let list = store
                        .freight_page_only(project, warehouse.as_deref(), after, page.limit)
                        .await?;
                    let on_page: std::collections::HashSet<&str> =
                        list.iter().map(|f| f.freight.metadata.name.as_str()).collect();
                    let facts = snap
                        .facts
                        .iter()
                        .filter(|x| on_page.contains(x.freight.as_str()))
                        .cloned()
                        .collect();
                    (list, facts, Some(snap))
                }
                None => (
                    store.list_freight(project.as_deref(), warehouse.as_deref()).await?,
                    Vec::new(),
                    None,
                ),
            };
            if let Some(n) = &name {
                list.retain(|f| &f.freight.metadata.name == n || f.freight.alias.as_deref() == Some(n));
                if list.is_empty() {
                    return not_found!("no Freight named or aliased {n:?}");
                }
                if list.len() > 1 {
                    return invalid!("{n:?} matches Freight in several projects; add --project");
                }
            }
            let mut projects: Vec<&str> = list.iter().map(|f| f.project.as_str()).collect();
            projects.sort_unstable();
            projects.dedup();
            let mut approvals = std::collections::HashMap::new();
            for p in projects {
                if page.is_none() {
                    facts.extend(store.freight_stages(p).await?);
                }
                let of_project = match &kept {
                    Some(snap) => snap.approvals.clone(),
                    None => store.list_approvals(p).await?,
                };
                approvals.insert(p.to_owned(), of_project);
            }
            // Each Freight's facts, found once: filtering all of them per Freight cost
            // Freight × facts (BENCHMARKS.md, "REST API").
            type ByFreight<'a> = std::collections::HashMap<&'a str, Vec<&'a barge_store::FreightStage>>;
            let mut facts_of: std::collections::HashMap<&str, ByFreight> = std::collections::HashMap::new();
            for x in &facts {
                let of_project = facts_of.entry(&x.project).or_default();
                of_project.entry(&x.freight).or_default().push(x);
            }
            let out = list
                .into_iter()
                .map(|f| {
                    let mine = facts_of
                        .get(f.project.as_str())
                        .and_then(|p| p.get(f.freight.metadata.name.as_str()))
                        .map_or(&[][..], Vec::as_slice);
                    let approvals = approvals.get(&f.project).map_or(&[][..], Vec::as_slice);
                    freight_info(f, mine, approvals)
                })
                .collect::<Vec<_>>();
            if let Some((pages, key)) = pages {
                pages.put(key, out.clone());
            }
            Answer::Freight(out)
        }
        Call::GetPromotions { project, stage, name } => {
            let mut list = match &name {
                // One by name is an index lookup (`promote --wait` polls it).
                Some(n) => store.promotions_named(n).await?,
                None => store.list_promotions(project.as_deref(), stage.as_deref()).await?,
            };
            if let Some(n) = &name {
                list.retain(|p| {
                    project.as_deref().is_none_or(|want| want == p.project)
                        && stage.as_deref().is_none_or(|want| want == p.stage)
                });
                if list.is_empty() {
                    return not_found!("no promotion named {n:?}");
                }
            }
            Answer::Promotions(list.iter().map(|p| promotion_info(p, name.is_some())).collect())
        }
        Call::History {
            project,
            stage,
            freight,
            since,
            kind,
            until,
            before,
            limit,
        } => {
            // An alias names the Freight as it is now; history is recorded by name.
            let freight_name = match &freight {
                Some(f) => Some(resolve_freight_name(store, project.as_deref(), f).await?),
                None => None,
            };
            let events = store
                .history(&barge_store::AuditQuery {
                    project: project.as_deref(),
                    stage: stage.as_deref(),
                    freight: freight_name.as_deref(),
                    kind: kind.as_deref(),
                    since,
                    until,
                    before,
                    limit,
                })
                .await?;
            Answer::History(events)
        }
        Call::Stats { project, stage, since } => {
            let now = now_millis();
            let since = since.unwrap_or(now - crate::stats::DEFAULT_WINDOW_MS);
            Answer::Stats(crate::stats::stage_stats(store, project.as_deref(), stage.as_deref(), since, now).await?)
        }
        Call::Promote {
            project,
            stage,
            freight,
            actor,
            override_reason,
        } => {
            let all = pipeline::stages(catalog);
            let def = pipeline::find_stage(&all, &stage, project.as_deref())?;
            let name = queue_promotion(cx, def, &freight, &actor, override_reason.as_deref()).await?;
            Answer::Queued(Queued { promotions: vec![name] })
        }
        Call::PromoteDryRun {
            project,
            stage,
            freight,
            actor,
            override_reason,
        } => {
            let Some(engine) = cx.engine else {
                return invalid!("a dry run runs where promotions run: `barge promote --dry-run` or `barge serve`");
            };
            let all = pipeline::stages(catalog);
            let def = pipeline::find_stage(&all, &stage, project.as_deref())?;
            let plan = crate::dryrun::plan(cx, engine, def, &freight, &actor, override_reason.as_deref()).await?;
            Answer::PromotionPlan(plan)
        }
        Call::PromoteDownstream {
            project,
            from,
            freight,
            actor,
        } => {
            let all = pipeline::stages(catalog);
            let upstream = pipeline::find_stage(&all, &from, project.as_deref())?;
            let downstream = pipeline::downstream(&all, upstream);
            if downstream.is_empty() {
                return invalid!("no Stage takes Freight from {from}");
            }
            let mut names = Vec::new();
            for def in downstream {
                names.push(queue_promotion(cx, def, &freight, &actor, None).await?);
            }
            Answer::Queued(Queued { promotions: names })
        }
        Call::Approve {
            project,
            stage,
            freight,
            actor,
        } => {
            let all = pipeline::stages(catalog);
            let def = pipeline::find_stage(&all, &stage, project.as_deref())?;
            let f = stored_freight(store, def.project, &freight).await?;
            if def.sources(&f.warehouse).is_none() {
                return invalid!(
                    "Stage {stage} does not request Freight from Warehouse {}, so {freight} cannot be approved for it",
                    f.warehouse
                );
            }
            let name = &f.freight.metadata.name;
            // The principal's own role (the in-process CLI is an admin); access already
            // refused viewers.
            let role = cx.principal.role;
            let policy = def.spec.approval_policy.as_ref();
            let mine = barge_core::approval::Approval {
                approver: actor.clone(),
                role,
                at: now,
            };
            if let Some(policy) = policy.filter(|p| !p.admits(&mine)) {
                let reason = format!(
                    "{actor} may not approve for Stage {stage}: its approvalPolicy takes {}",
                    policy.describe()
                );
                // Refused like any other call the principal may not make: audited.
                let _ = cx
                    .events
                    .emit(Event::AccessDenied {
                        project: def.project.into(),
                        stage: stage.clone(),
                        subject: "Call/approve".into(),
                        actor: actor.clone(),
                        body: serde_json::json!({"status": 403, "reason": reason, "freight": name}),
                    })
                    .await;
                return Err(EngineError::Forbidden(reason));
            }
            store
                .approve(def.project, name, &stage, &f.warehouse, &actor, role.as_str(), now)
                .await?;
            // A wait-for-approval step of this process re-counts at once.
            if let Some(engine) = cx.engine {
                engine
                    .wakeups
                    .wake(&barge_promote::wakeups::approval_key(def.project, &stage, name));
            }
            let approvers = store.approvals_of(def.project, name, &stage).await?;
            let _ = cx
                .events
                .emit(Event::FreightApproved {
                    project: def.project.into(),
                    stage: stage.clone(),
                    freight: f.freight.metadata.name.clone(),
                    actor: actor.clone(),
                })
                .await;
            let policy = policy.map(|p| {
                let counted: Vec<_> = approvers.iter().map(crate::pipeline::approval_of).collect();
                p.tally(&counted).progress(p)
            });
            Answer::Approved(Approved {
                freight: f.freight.metadata.name,
                alias: f.freight.alias,
                stage,
                approved_by: actor,
                approvers: approvers.iter().map(ApproverInfo::of).collect(),
                policy,
            })
        }
        Call::Abort { project, name, actor } => {
            let project = match project {
                Some(p) => p,
                None => match store.promotions_named(&name).await?.into_iter().next() {
                    Some(p) => p.project,
                    None => return not_found!("no promotion named {name:?}"),
                },
            };
            let p = store.abort_promotion(&project, &name, &actor, now).await?;
            let promotion = PromotionRef::of_stored(&p);
            let _ = cx.events.emit(Event::PromotionAborted { promotion, by: actor }).await;
            Answer::Aborted(promotion_info(&p, false))
        }
        Call::Hold { project, stage, actor } => {
            let all = pipeline::stages(catalog);
            let def = pipeline::find_stage(&all, &stage, project.as_deref())?;
            if !def.auto_promotion {
                return invalid!(
                    "Stage {stage} has no auto-promotion to hold: no ProjectConfig promotion policy enables it"
                );
            }
            let snap = Snapshot::read(store, def.project).await?;
            let status = pipeline::stage_status(catalog, &snap, def, now)?;
            let mut held = Vec::new();
            for req in &status.requests {
                let hold = barge_store::StageHold {
                    project: def.project.to_string(),
                    stage: stage.clone(),
                    warehouse: req.warehouse.clone(),
                    freight: req.current.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
                    promotion: String::new(),
                    actor: actor.clone(),
                    created_at: now,
                };
                store.hold_stage(&hold).await?;
                let _ = cx
                    .events
                    .emit(Event::StageHeld {
                        project: hold.project.clone(),
                        stage: hold.stage.clone(),
                        warehouse: hold.warehouse.clone(),
                        freight: hold.freight.clone(),
                        actor: hold.actor.clone(),
                    })
                    .await;
                held.push(hold);
            }
            Answer::Held(Held { stage, holds: held })
        }
        Call::Release { project, stage, actor } => {
            let all = pipeline::stages(catalog);
            let def = pipeline::find_stage(&all, &stage, project.as_deref())?;
            let released = store.release_stage(def.project, &stage, &actor, now).await?;
            if released > 0 {
                let _ = cx
                    .events
                    .emit(Event::StageReleased {
                        project: def.project.into(),
                        stage: stage.clone(),
                        actor,
                        holds: released,
                    })
                    .await;
            }
            Answer::Released(Released { stage, released })
        }
        Call::Alias {
            project,
            freight,
            alias,
            actor,
        } => {
            let project = match project {
                Some(p) => p,
                None => stored_freight_any(store, &freight).await?.project,
            };
            if !barge_core::freight::valid_alias(&alias) {
                return invalid!(
                    "{alias:?} is not a valid alias: use lowercase letters, digits and '-', up to 63 characters, starting with a letter"
                );
            }
            store.set_freight_alias(&project, &freight, &alias, &actor, now).await?;
            let aliased = Event::FreightAliased {
                project: project.clone(),
                freight,
                alias: alias.clone(),
                actor,
            };
            let _ = cx.events.emit(aliased).await;
            let freight = stored_freight(store, &project, &alias).await?.freight.metadata.name;
            Answer::Aliased(Aliased { freight, alias })
        }
        Call::Verify {
            project,
            stage,
            abort,
            actor,
        } => {
            let all = pipeline::stages(catalog);
            let def = pipeline::find_stage(&all, &stage, project.as_deref())?;
            let v = if abort {
                let v = store.abort_verification(def.project, def.name, &actor, now).await?;
                let finished = Event::VerificationFinished {
                    verification: VerificationRef::of(&v),
                    phase: v.phase,
                    message: v.message.clone(),
                    actor,
                };
                let _ = cx.events.emit(finished).await;
                v
            } else {
                if !def.has_verification() {
                    return invalid!("Stage {stage} has no verification (spec.verification.analysisTemplates)");
                }
                let facts = store.freight_stages(def.project).await?;
                let Some(current) = pipeline::verification_subject(&facts, def.name) else {
                    return invalid!("Stage {stage} has no Freight to verify yet");
                };
                let v = store
                    .create_verification(def.project, def.name, &current.freight, &actor, now)
                    .await?;
                let verification = VerificationRef::of(&v);
                let _ = cx.events.emit(Event::VerificationStarted { verification, actor }).await;
                v
            };
            Answer::Verification(v)
        }
        Call::Version => Answer::Version(VersionInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
        }),
        Call::GetReplicas => Answer::Replicas(
            store
                .list_replicas()
                .await?
                .into_iter()
                .map(|r| ReplicaInfo {
                    alive: r.heartbeat_age_ms <= crate::promote::LEASE.as_millis() as i64,
                    started_at: rfc3339(r.started_at),
                    heartbeat_at: rfc3339(r.heartbeat_at),
                    heartbeat_age_ms: r.heartbeat_age_ms,
                    id: r.id,
                    host: r.host,
                    version: r.version,
                    promotions: r.promotions,
                    verifications: r.verifications,
                    warehouses: r.warehouses,
                })
                .collect(),
        ),
        Call::GetNotifications { project, state, limit } => {
            if let Some(s) = state.as_deref().filter(|s| !NOTIFICATION_STATES.contains(s)) {
                return invalid!("{s:?} is not a notification state ({})", NOTIFICATION_STATES.join(", "));
            }
            if limit < 1 {
                return invalid!("the limit must be at least 1, not {limit}");
            }
            let listed = store
                .list_notifications(project.as_deref(), state.as_deref(), limit)
                .await?;
            Answer::Notifications(listed.into_iter().map(NotificationInfo::of).collect())
        }
        Call::Token(t) => crate::tokens::handle(store, t).await?,
        Call::Refresh {
            project,
            warehouse,
            actor,
        } => {
            let Some(refresh) = cx.refresh else {
                return invalid!(
                    "refreshing needs `barge serve`; without a server, run `barge refresh warehouse {warehouse} PATH --db URL`"
                );
            };
            let project = one_project(catalog, project.as_deref())?;
            let this = crate::discover::Selection::One {
                project: &project,
                name: &warehouse,
            };
            if crate::discover::warehouses(catalog, this).next().is_none() {
                return not_found!("no Warehouse named {warehouse:?} in project {project:?}");
            }
            refresh(&project, &warehouse);
            let answer = Answer::Refresh(RefreshRequested {
                warehouse: warehouse.clone(),
                refresh: "requested".into(),
            });
            let _ = cx
                .events
                .emit(Event::RefreshRequested {
                    project,
                    warehouse,
                    actor,
                })
                .await;
            answer
        }
    })
}

async fn stored_freight(store: &Store, project: &str, name_or_alias: &str) -> Result<barge_store::StoredFreight> {
    match store.get_freight(project, name_or_alias).await? {
        Some(f) => Ok(f),
        None => not_found!(
            "no Freight named or aliased {name_or_alias:?} in project {project:?}; `barge get freight` lists them"
        ),
    }
}

/// A Freight by name or alias in whichever project has it (exactly one).
async fn stored_freight_any(store: &Store, name_or_alias: &str) -> Result<barge_store::StoredFreight> {
    let mut all = store.list_freight(None, None).await?;
    all.retain(|f| f.freight.metadata.name == name_or_alias || f.freight.alias.as_deref() == Some(name_or_alias));
    match all.len() {
        1 => Ok(all.remove(0)),
        0 => not_found!("no Freight named or aliased {name_or_alias:?}"),
        _ => invalid!("{name_or_alias:?} matches Freight in several projects; add --project"),
    }
}

async fn resolve_freight_name(store: &Store, project: Option<&str>, f: &str) -> Result<String> {
    Ok(match project {
        Some(p) => stored_freight(store, p, f).await?.freight.metadata.name,
        None => stored_freight_any(store, f).await?.freight.metadata.name,
    })
}

/// Checks a manual promotion and queues it Pending for the daemon.
async fn queue_promotion(
    cx: &Context<'_>,
    def: &pipeline::StageDef<'_>,
    freight: &str,
    actor: &str,
    override_reason: Option<&str>,
) -> Result<String> {
    let snap = Snapshot::read(cx.store, def.project).await?;
    if let Some(running) = snap.unfinished.iter().find(|p| p.stage == def.name) {
        return Err(EngineError::Conflict(format!(
            "Stage {} is still promoting ({}); wait for it or abort it with `barge abort promotion {}`",
            def.name, running.name, running.name
        )));
    }
    let f = check_promotable(cx, def, freight, override_reason).await?;
    if let Some(reason) = override_reason {
        crate::promote::audit_override(
            cx.events,
            def.project,
            def.name,
            &f.freight.metadata.name,
            actor,
            reason,
        )
        .await?;
    }
    let p = crate::promote::create(cx.catalog, cx.store, cx.events, def, &f, actor, Phase::Pending, false).await?;
    Ok(p.name)
}

/// The Freight (name or alias) if a person may promote it into the Stage now: it exists and
/// is available there (verified upstream, approved, soaked; the window open or overridden).
/// A real promotion and its dry run refuse alike.
pub(crate) async fn check_promotable(
    cx: &Context<'_>,
    def: &pipeline::StageDef<'_>,
    freight: &str,
    override_reason: Option<&str>,
) -> Result<barge_store::StoredFreight> {
    let f = stored_freight(cx.store, def.project, freight).await?;
    let snap = Snapshot::read(cx.store, def.project).await?;
    pipeline::check_manual(cx.catalog, &snap, def, &f, override_reason, now_millis())?;
    Ok(f)
}

/// The first failed subscription of a stored discovery pass (the store keeps the pass as the
/// array of subscription reports `barge discover -o json` prints per Warehouse).
fn discovery_error(status: &serde_json::Value) -> Option<String> {
    status
        .as_array()?
        .iter()
        .find_map(|s| s["error"].as_str().map(str::to_string))
}

/// A Freight with Kargo's status fields (currentlyIn, verifiedIn, approvedFor), its times and
/// durations in Kargo's forms (metav1.Time, metav1.Duration), as the
/// `apiVersion: kargo.akuity.io/v1alpha1` the Freight carries promises.
fn freight_info(
    f: barge_store::StoredFreight,
    facts: &[&barge_store::FreightStage],
    approvals: &[barge_store::StoredApproval],
) -> FreightInfo {
    FreightInfo {
        created: rfc3339(f.created_at),
        warehouse: f.warehouse,
        freight: f.freight,
        status: freight_status(facts, approvals),
    }
}

/// What `freightStatus(name)` answers for each Freight of the project (by name): Kargo's
/// FreightStatus as JSON (`currentlyIn`, `verifiedIn`, `approvedFor`, `metadata`), its empty
/// fields left out as Kargo's `omitempty` leaves them.
pub fn freight_statuses(
    heads: &[barge_store::FreightHead],
    facts: &[barge_store::FreightStage],
    approvals: &[barge_store::StoredApproval],
    metadata: &std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
) -> std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>> {
    let mut by_freight: std::collections::BTreeMap<&str, Vec<&barge_store::FreightStage>> = Default::default();
    for x in facts {
        by_freight.entry(x.freight.as_str()).or_default().push(x);
    }
    heads
        .iter()
        .map(|h| {
            let facts = by_freight.get(h.name.as_str()).map_or(&[][..], Vec::as_slice);
            let mut status = match serde_json::to_value(freight_status(facts, approvals)) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            if let Some(m) = metadata.get(&h.name).filter(|m| !m.is_empty()) {
                status.insert("metadata".into(), serde_json::Value::Object(m.clone()));
            }
            (h.name.clone(), omit_empty(status))
        })
        .collect()
}

/// `m` without null values and empty maps, at every depth (Go's `omitempty`).
fn omit_empty(m: serde_json::Map<String, serde_json::Value>) -> serde_json::Map<String, serde_json::Value> {
    m.into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::Object(inner) => {
                let inner = omit_empty(inner);
                (!inner.is_empty()).then(|| (k, serde_json::Value::Object(inner)))
            }
            other => Some((k, other)),
        })
        .collect()
}

/// A Freight's Kargo status fields from its facts per Stage and the approvals.
fn freight_status(facts: &[&barge_store::FreightStage], approvals: &[barge_store::StoredApproval]) -> FreightStatus {
    let mut status = FreightStatus::default();
    for x in facts {
        if x.current() {
            let since = x.entered_at.map(rfc3339);
            status.currently_in.insert(x.stage.clone(), CurrentlyIn { since });
        }
        if let Some(at) = x.verified_at {
            let verified = VerifiedIn {
                verified_at: rfc3339(at),
                longest_soak: go_duration(x.longest_soak),
            };
            status.verified_in.insert(x.stage.clone(), verified);
        }
        if let Some(at) = x.approved_at {
            let approved = ApprovedFor {
                approved_at: rfc3339(at),
                approved_by: x.approved_by.clone(),
                approvers: approvals
                    .iter()
                    .filter(|a| a.freight == x.freight && a.stage == x.stage)
                    .map(ApproverInfo::of)
                    .collect(),
            };
            status.approved_for.insert(x.stage.clone(), approved);
        }
    }
    status
}

/// A stored promotion as the API shows it; `full` adds its steps' outputs.
fn promotion_info(p: &barge_store::StoredPromotion, full: bool) -> PromotionInfo {
    // The state is what the runner stored (barge_core::promotion::State); a promotion queued
    // before it ran has its steps Pending.
    let state: barge_core::promotion::State = serde_json::from_value(p.state.clone()).unwrap_or_default();
    PromotionInfo {
        project: p.project.clone(),
        name: p.name.clone(),
        stage: p.stage.clone(),
        freight: p.freight.clone(),
        actor: p.actor.clone(),
        phase: p.phase,
        message: p.message.clone(),
        created_at: rfc3339(p.created_at),
        updated_at: rfc3339(p.updated_at),
        steps: state.steps,
        outputs: full.then_some(state.outputs),
    }
}
