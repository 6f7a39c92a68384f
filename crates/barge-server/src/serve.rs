//! `barge serve`: the daemon. It loads the definitions (and reloads them when they change,
//! keeping the last good ones when a change is invalid), discovers each Warehouse when it is
//! due, reconciles the Stages (auto-promotion where a ProjectConfig policy allows it), runs
//! queued promotions on a bounded pool with a lease per promotion, and answers the CLI over a
//! small bearer-token HTTP API. `--once` runs the pipeline until it is idle and exits.
//!
//! Each of these is a task of its own, so that none waits behind another (a slow registry
//! delays only its own Warehouses): the reloader publishes the running definitions on a
//! `watch` channel (`Shared::catalog`); the discovery worker (`Discovery`) runs the passes that
//! are due, a few at once; the reconciler (`decide_stages`) decides this replica's share of
//! the Stages (every Stage when it runs alone, `replicas::Deciding`); the runners
//! (`Runners`) claim and run promotions and verifications. They wake one another through
//! `Shared`'s `Notify`s: a refresh wakes discovery, minted Freight or a finished run wakes the
//! reconciler, a created promotion or verification wakes the runners. The heartbeat task
//! (`replicas::keep_alive`) publishes the live replicas and, while the Stages are shared, the
//! change counters to the reconciler on a `watch` channel of its own.

use anyhow::Context as _;
use barge_core::Catalog;
use barge_core::analysis::VerificationPhase;
use barge_core::promotion::Phase;
use barge_engine::EngineError;
use barge_engine::events::{Event, EventSink, PromotionRef, VerificationRef};
use barge_engine::ops;
use barge_engine::pipeline::{self, AUTO_ACTOR, Snapshot};
use barge_engine::promote::{self, now_millis};
use barge_promote::Engine;
use barge_store::{PromotionHead, Store, StoredPromotion, Verification};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinError, JoinSet};

/// Who clears holds when a policy stops enabling auto-promotion.
const DISABLED_ACTOR: &str = "barge (auto-promotion disabled)";

/// The longest a Stage goes undecided while nothing happens.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// The shortest time between two passes of a reconciler that shares the Stages with others.
const SHARED_PASS_GAP: Duration = Duration::from_millis(500);
/// How often a quiet daemon returns freed heap to the operating system (memory.rs).
const TRIM_EVERY: Duration = Duration::from_secs(10);
/// Discovery passes under way at once (one per Warehouse): enough that a slow registry does
/// not hold up the other Warehouses, few enough not to flood registries at start.
const DISCOVERIES_AT_ONCE: usize = 4;

pub struct Options {
    pub paths: Vec<String>,
    pub once: bool,
    pub listen: Option<std::net::SocketAddr>,
    pub access: Option<crate::api::Access>,
    pub reload_interval: Duration,
    pub replica_id: String,
    /// How long a claimed promotion, verification or discovery pass stays this replica's
    /// after its last renewal (`promote::LEASE` by default).
    pub lease: Duration,
    pub registry: barge_registry::RegistryConfig,
    pub git_rules: Vec<barge_registry::CredentialRule>,
    /// The credentials of the running definitions' git URLs, which the engine's lookup shares:
    /// a reload replaces them.
    pub defined: barge_engine::config::DefinedCredentials,
    /// Delete audit events older than this (checked hourly); `None` keeps everything.
    pub audit_retention: Option<Duration>,
    /// Verify by creating AnalysisRuns in the cluster (its Argo Rollouts controller measures)
    /// instead of measuring in barge.
    pub analysis_in_cluster: bool,
    /// How inbound webhook deliveries naming one Warehouse are gathered into one discovery.
    pub webhook_burst: crate::webhook::BurstWindow,
}

/// A Warehouse or a Stage: its project and its name.
type Key = (String, String);

/// Tasks that each work for one Stage (or Warehouse), and what each works on: a Stage is busy
/// until its task ends, in whatever way. A task that panics frees its Stage too, and says what
/// it worked on, so that its runner can record it as failed (else the Stage would get no more
/// runs until the daemon restarts).
struct InFlight<T, W> {
    tasks: JoinSet<T>,
    /// By task: the Stage it works for and what it works on.
    work: HashMap<tokio::task::Id, (Key, W)>,
}

/// What a task of an [`InFlight`] worked for and on, and what it returned (or how it failed).
type Ended<T, W> = (Key, W, Result<T, JoinError>);

impl<T: Send + 'static, W> InFlight<T, W> {
    fn new() -> Self {
        InFlight {
            tasks: JoinSet::new(),
            work: HashMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Whether a task works for `stage` now.
    fn runs_for(&self, stage: &Key) -> bool {
        self.work.values().any(|(k, _)| k == stage)
    }

    fn spawn(&mut self, stage: Key, work: W, task: impl Future<Output = T> + Send + 'static) {
        let id = self.tasks.spawn(task).id();
        self.work.insert(id, (stage, work));
    }

    /// Waits for a task to end; `None` when none runs.
    async fn join_next(&mut self) -> Option<Ended<T, W>> {
        loop {
            let joined = self.tasks.join_next_with_id().await?;
            if let Some(ended) = self.ended(joined) {
                return Some(ended);
            }
        }
    }

    /// A task that has ended, without waiting; `None` when none has.
    fn try_join_next(&mut self) -> Option<Ended<T, W>> {
        loop {
            let joined = self.tasks.try_join_next_with_id()?;
            if let Some(ended) = self.ended(joined) {
                return Some(ended);
            }
        }
    }

    /// Frees the Stage of a task that ended (every task was spawned with its work, so this
    /// always finds it).
    fn ended(&mut self, joined: Result<(tokio::task::Id, T), JoinError>) -> Option<Ended<T, W>> {
        let (id, result) = match joined {
            Ok((id, out)) => (id, Ok(out)),
            Err(e) => (e.id(), Err(e)),
        };
        let (stage, work) = self.work.remove(&id)?;
        Some((stage, work, result))
    }
}

/// What the daemon's tasks and the API share.
pub struct Shared {
    pub store: Store,
    /// The one sink of this daemon's domain events.
    pub events: EventSink,
    /// The running definitions; a reload sends the new ones to every task.
    catalog: watch::Sender<Arc<Catalog>>,
    /// Warehouses someone asked to discover now.
    refresh: Mutex<HashSet<Key>>,
    /// Each Stage's health, checked on every reconcile.
    health: Mutex<Arc<pipeline::HealthMap>>,
    /// Per Stage, its last successful promotion and the apps it synced (argocd-update's
    /// output): a finished promotion never changes, so its stored state is read once.
    synced_apps: Mutex<HashMap<Key, SyncedApps>>,
    /// Wakes the discovery worker: a refresh was asked for.
    discover: Notify,
    /// Wakes the reconciler: something happened that may change what a Stage does next.
    decide: Notify,
    /// Wakes the runners: a promotion or verification may be waiting to be claimed.
    claim: Notify,
    /// Inbound webhooks' secrets, replay list and rate limits.
    pub(crate) webhooks: crate::webhook::Receiving,
    /// The promotion engine: the API's dry runs; webhooks wake its waiting steps.
    pub(crate) engine: Arc<Engine>,
    /// What `GET /metrics` serves; the event sink feeds it.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

impl Shared {
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    pub(crate) fn request_refresh(&self, project: &str, warehouse: &str) {
        if let Ok(mut r) = self.refresh.lock() {
            r.insert((project.to_string(), warehouse.to_string()));
        }
        self.discover.notify_one();
    }
}

/// A Stage's last successful promotion and the apps it synced.
type SyncedApps = (String, Vec<serde_json::Value>);

/// What a finished run of the pipeline reports (`--once`).
#[derive(Default)]
struct Tally {
    /// Promotions that ran to an end.
    promotions: usize,
    failures: Vec<String>,
}

/// `barge serve`: opens the store at `db` (the default store without one), makes the
/// promotion engine with `workers` promotions at once, and serves until stopped (false when a
/// `--once` run had failures).
pub async fn start(
    mut opts: Options,
    catalog: Catalog,
    db: Option<String>,
    work_dir: std::path::PathBuf,
    file: &barge_engine::config::Config,
    workers: usize,
) -> anyhow::Result<bool> {
    let db = match db {
        Some(url) => url,
        None => barge_engine::default_db()?,
    };
    // Held while the daemon runs: a second one on the same SQLite file is refused.
    let _single = barge_store::lock_single_replica(&db)?;
    let store = Store::open(&db).await?;
    // Discovery's and the steps' registry requests are counted too.
    let metrics = Arc::new(crate::metrics::Metrics::new(store.clone()));
    opts.registry.observer = Some(metrics.registry_observer());
    barge_git::observe_requests(metrics.git_observer());
    let mut engine = promote::engine(work_dir, &opts.registry, file, false, &opts.defined)?;
    engine.slots = Arc::new(tokio::sync::Semaphore::new(workers.max(1)));
    serve(opts, catalog, store, engine, metrics).await
}

pub async fn serve(
    opts: Options,
    mut catalog: Catalog,
    store: Store,
    mut engine: Engine,
    metrics: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<bool> {
    // Nothing holds a slot yet: all of them are the promotions this replica runs at once.
    let workers = engine.slots.available_permits();
    // A Git source's URL may carry a token (`https://bot:TOKEN@host/defs.git`): it is recorded
    // redacted.
    let source = opts
        .paths
        .iter()
        .map(|p| barge_core::secret::redact_url(p))
        .collect::<Vec<_>>()
        .join(" ");
    catalog.compact();
    let recorded = store.save_definitions(&source, &catalog.texts, now_millis()).await?;
    // send-message and the events sink's EventRouters read the running definitions.
    let catalog = watch::Sender::new(Arc::new(catalog));
    engine.definitions = catalog.subscribe();
    let events = EventSink::for_engine(store.clone(), &engine).with_metrics(metrics.clone());
    let engine = Arc::new(engine);
    if recorded {
        let _ = events.emit(Event::DefinitionsReloaded { source: source.clone() }).await;
    }
    let shared = Arc::new(Shared {
        store: store.clone(),
        events,
        catalog,
        refresh: Mutex::new(HashSet::new()),
        health: Mutex::default(),
        synced_apps: Mutex::new(HashMap::new()),
        discover: Notify::new(),
        decide: Notify::new(),
        claim: Notify::new(),
        webhooks: crate::webhook::Receiving::new(engine.data.secrets.clone(), opts.webhook_burst),
        engine: engine.clone(),
        metrics,
    });
    let opts = Arc::new(opts);
    let stop = stop_on_signal();
    if let Some(addr) = opts.listen {
        let access = opts.access.clone().context("the API needs a token")?;
        let limits = crate::api::Limits::from_env()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("barge: API listening on http://{}", listener.local_addr()?);
        // It answers until the process ends, also while running promotions finish.
        tokio::spawn(crate::api::serve(listener, shared.clone(), access, limits));
    }
    let discovery = Discovery::new(shared.clone(), &opts)?;
    let runners = Runners {
        shared: shared.clone(),
        engine: engine.clone(),
        owner: opts.replica_id.clone(),
        lease: opts.lease,
        workers,
        in_cluster: opts.analysis_in_cluster,
        promotions: InFlight::new(),
        verifications: InFlight::new(),
    };
    // The tasks that end with the process: none holds work that a shutdown waits for (a
    // discovery pass cut short leaves nothing half-done: Freight is minted in one transaction).
    let mut background = JoinSet::new();
    // The heartbeat task also publishes the live replicas (and, while the Stages are shared,
    // the change counters) to the reconciler, subscribed before the task starts so that its
    // first beat publishes; a `--once` run has no reconciler, and the task reads neither.
    let membership = watch::Sender::new(None);
    let reconciler = (!opts.once).then(|| {
        tokio::spawn(decide_stages(
            shared.clone(),
            engine.clone(),
            membership.subscribe(),
            stop.clone(),
        ))
    });
    background.spawn(crate::replicas::keep_alive(
        store.clone(),
        opts.replica_id.clone(),
        opts.lease,
        membership,
    ));
    if let Some(keep) = opts.audit_retention {
        background.spawn(prune_audit(store.clone(), keep));
    }
    background.spawn(crate::notify::deliver_notifications(
        shared.clone(),
        engine.clone(),
        opts.replica_id.clone(),
        stop.clone(),
    ));
    let mut tally = Tally::default();
    if opts.once {
        tally.failures = discovery.every_warehouse_once().await;
        runners.run(&mut tally, true, stop).await;
    } else {
        let reloader = Reloader {
            last: LastLoad {
                files: fingerprint(&opts.paths),
                texts: shared.catalog().texts.clone(),
            },
            shared: shared.clone(),
            source,
            opts: opts.clone(),
        };
        background.spawn(reloader.run(stop.clone()));
        background.spawn(discovery.run(stop.clone()));
        runners.run(&mut tally, false, stop).await;
    }
    // A pass under way ends first: it may be creating a promotion.
    if let Some(reconciler) = reconciler {
        let _ = reconciler.await;
    }
    if opts.once {
        eprintln!(
            "barge: pipeline idle: {} promotion(s) ran, {} problem(s)",
            tally.promotions,
            tally.failures.len()
        );
        for f in &tally.failures {
            eprintln!("  - {f}");
        }
    }
    Ok(tally.failures.is_empty())
}

/// A signal (Ctrl-C or SIGTERM) asks the daemon to stop taking work: the receivers see `true`.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (send, stop) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                send.send_replace(true);
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        send.send_replace(true);
    });
    stop
}

/// Returns once the daemon is asked to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the signal task is gone, which happens only as the runtime shuts down.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Deletes audit events older than `keep`, at start and hourly.
async fn prune_audit(store: Store, keep: Duration) {
    loop {
        match store.prune_audit(now_millis() - keep.as_millis() as i64).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("audit retention removed {n} event(s)"),
            Err(e) => tracing::warn!("audit retention failed: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// What the last reload saw: the local files' fingerprint and the texts it loaded (the
/// running definitions', or a rejected change's).
struct LastLoad {
    files: Option<Vec<(std::path::PathBuf, u64, std::time::SystemTime)>>,
    texts: std::collections::BTreeMap<String, String>,
}

/// What the local definition files look like (path, size, modification time), to skip a
/// reload when nothing changed; `None` when a source is a Git repository (always reloaded).
fn fingerprint(paths: &[String]) -> Option<Vec<(std::path::PathBuf, u64, std::time::SystemTime)>> {
    let mut out = Vec::new();
    for p in paths {
        let barge_source::Source::Path(path) = barge_source::parse_source(p) else {
            return None;
        };
        let files = if path.is_dir() {
            barge_source::yaml_files(&path).ok()?
        } else {
            vec![path]
        };
        for f in files {
            let m = std::fs::metadata(&f).ok()?;
            out.push((f, m.len(), m.modified().ok()?));
        }
    }
    Some(out)
}

/// How long a reload may take before the daemon says that it waits for it.
const SLOW_RELOAD: Duration = Duration::from_secs(60);

/// The reloader: every `--reload-interval`, loads the definitions again when they changed and
/// publishes a valid change to the other tasks.
struct Reloader {
    shared: Arc<Shared>,
    opts: Arc<Options>,
    /// The definitions' sources as recorded (redacted).
    source: String,
    last: LastLoad,
}

impl Reloader {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => return,
                _ = tokio::time::sleep(self.opts.reload_interval) => {}
            }
            let Some(mut loading) = self.start() else {
                continue;
            };
            let loaded = tokio::select! {
                _ = stopped(&mut stop) => return,
                loaded = async {
                    match tokio::time::timeout(SLOW_RELOAD, &mut loading).await {
                        Ok(loaded) => loaded,
                        Err(_) => {
                            tracing::warn!(
                                "reloading the definitions has taken more than {}s (a read that does not return?); the running definitions stay, and the next reload starts when this one ends",
                                SLOW_RELOAD.as_secs()
                            );
                            loading.await
                        }
                    }
                } => loaded,
            };
            match loaded {
                Ok(loaded) => apply_reload(&self.shared, &self.opts, &self.source, &mut self.last, loaded).await,
                Err(_) => tracing::warn!("reload failed: loading the definitions ended without a result"),
            }
        }
    }

    /// Starts loading the definitions again when the local files changed (or a source is
    /// Git). The load runs on a thread of its own, not a `spawn_blocking` task: a read that
    /// never returns (a hung network file system, a Git server that stops answering) then holds
    /// up neither the daemon nor its shutdown (a tokio runtime waits for its blocking tasks
    /// when it stops; a process does not wait for threads).
    fn start(&mut self) -> Option<tokio::sync::oneshot::Receiver<Result<Catalog, barge_source::SourceError>>> {
        let now_seen = fingerprint(&self.opts.paths);
        if now_seen.is_some() && now_seen == self.last.files {
            return None;
        }
        self.last.files = now_seen;
        let (send, loaded) = tokio::sync::oneshot::channel();
        let paths = self.opts.paths.clone();
        let started = std::thread::Builder::new().name("barge-reload".into()).spawn(move || {
            let _ = send.send(barge_engine::load_catalog(&paths));
        });
        match started {
            Ok(_) => Some(loaded),
            Err(e) => {
                tracing::warn!("cannot start a reload: {e}");
                None
            }
        }
    }
}

/// Applies loaded definitions: a valid change replaces the running ones (and is recorded), an
/// invalid one is reported and ignored. A change reaches the other tasks through
/// [`Shared::catalog`].
async fn apply_reload(
    shared: &Shared,
    opts: &Options,
    source: &str,
    last: &mut LastLoad,
    loaded: Result<Catalog, barge_source::SourceError>,
) {
    let catalog = match loaded {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot reload the definitions (keeping the last good ones): {e}");
            return;
        }
    };
    // Unchanged texts (a Git source fetched again, a file touched) are not news, and a
    // rejected change is reported once.
    if catalog.texts == last.texts {
        return;
    }
    last.texts = catalog.texts.clone();
    if catalog.errors() > 0 {
        let text = barge_engine::diagnostics::diagnostics_text(&catalog, false);
        eprintln!(
            "barge: the changed definitions have {} error(s); keeping the last good ones:\n{text}",
            catalog.errors()
        );
        let rejected = Event::DefinitionsRejected {
            errors: catalog.errors(),
            diagnostics: barge_engine::diagnostics::validate_json(&catalog)["diagnostics"].take(),
        };
        let _ = shared.events.emit(rejected).await;
        return;
    }
    match shared
        .store
        .save_definitions(source, &catalog.texts, now_millis())
        .await
    {
        Ok(recorded) => {
            eprintln!("barge: definitions reloaded");
            if recorded {
                let reloaded = Event::DefinitionsReloaded {
                    source: source.to_string(),
                };
                let _ = shared.events.emit(reloaded).await;
            }
            opts.defined.adopt(&catalog);
            shared.catalog.send_replace(Arc::new(catalog));
        }
        Err(e) => tracing::warn!("cannot record the reloaded definitions: {e}"),
    }
}

/// The discovery worker: runs a Warehouse's pass when it is due (its interval or schedule,
/// every Warehouse at start) or someone asked, at most DISCOVERIES_AT_ONCE at once and one per
/// Warehouse, so a slow registry holds up only its own Warehouses.
struct Discovery {
    shared: Arc<Shared>,
    discoverer: Arc<barge_engine::discover::Discoverer>,
    /// Whether Warehouses are discovered on their schedule (not in `--once`).
    scheduled: bool,
    /// When each Warehouse is next due, worked out as its pass starts.
    next_pass: HashMap<Key, i64>,
    /// Refreshes asked for, kept while the Warehouse's pass runs: the pass under way may
    /// have listed its sources before what the caller wants discovered appeared.
    requested: HashSet<Key>,
    /// The passes under way, by Warehouse.
    passes: InFlight<Pass, ()>,
    /// This replica's id, which holds the discovery leases of its passes.
    owner: String,
    lease: Duration,
}

/// What one Warehouse's pass did.
struct Pass {
    failed: Vec<String>,
    minted: bool,
}

impl Discovery {
    fn new(shared: Arc<Shared>, opts: &Options) -> Result<Discovery, EngineError> {
        let discoverer = barge_engine::discover::Discoverer::new(
            opts.registry.clone(),
            &opts.defined,
            opts.git_rules.clone(),
            shared.events.clone(),
        )?;
        Ok(Discovery {
            shared,
            discoverer: Arc::new(discoverer),
            scheduled: !opts.once,
            next_pass: HashMap::new(),
            requested: HashSet::new(),
            passes: InFlight::new(),
            owner: opts.replica_id.clone(),
            lease: opts.lease,
        })
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut catalogs = self.shared.catalog.subscribe();
        let shared = self.shared.clone();
        loop {
            let catalog = catalogs.borrow_and_update().clone();
            self.start_due(&catalog).await;
            let until_due = self.next_due(&catalog).map_or(Duration::MAX, |at| {
                Duration::from_millis((at - now_millis()).max(0) as u64)
            });
            tokio::select! {
                biased;
                // The passes under way are dropped (see `serve`).
                _ = stopped(&mut stop) => return,
                _ = self.finished(), if !self.passes.is_empty() => {}
                _ = shared.discover.notified() => {}
                Ok(()) = catalogs.changed() => {}
                _ = tokio::time::sleep(until_due) => {}
            }
        }
    }

    /// `--once`: every Warehouse's pass, and the refreshes asked for meanwhile; what failed.
    async fn every_warehouse_once(mut self) -> Vec<String> {
        let catalog = self.shared.catalog();
        let mut failed = Vec::new();
        loop {
            self.start_due(&catalog).await;
            match self.finished().await {
                Some(pass) => failed.extend(pass.failed),
                None => return failed,
            }
        }
    }

    /// Starts the passes that are due, as far as the bound allows. A scheduled pass runs
    /// only under the Warehouse's discovery lease (`replicas.rs`): of several replicas one
    /// discovers it per due time.
    async fn start_due(&mut self, catalog: &Arc<Catalog>) {
        if let Ok(mut asked) = self.shared.refresh.lock() {
            self.requested.extend(asked.drain());
        }
        for (r, spec) in barge_engine::discover::warehouses(catalog, barge_engine::discover::Selection::All) {
            if self.passes.len() >= DISCOVERIES_AT_ONCE {
                return;
            }
            let key = (r.project.clone(), r.name.clone());
            if self.passes.runs_for(&key) {
                continue;
            }
            let requested = self.requested.remove(&key);
            let due = requested
                || self
                    .next_pass
                    .get(&key)
                    .is_none_or(|at| self.scheduled && *at <= now_millis());
            if !due {
                continue;
            }
            // Validation rejects a bad interval or schedule; should one get through, the
            // Warehouse is not polled again rather than polled every second.
            let schedule = barge_core::schedule::Schedule::new(
                spec.interval.as_deref(),
                spec.schedule.as_deref(),
                &format!("{}/{}", r.project, r.name),
            )
            .ok();
            let lease = if self.scheduled {
                match crate::replicas::take_discovery(&self.shared.store, &self.owner, self.lease, &key, requested)
                    .await
                {
                    crate::replicas::Turn::Ours { started_at } => Some(started_at),
                    crate::replicas::Turn::Later { retry_in } => {
                        self.next_pass.insert(key, now_millis() + retry_in.as_millis() as i64);
                        continue;
                    }
                }
            } else {
                None
            };
            let pass = now_millis();
            let next = schedule.as_ref().map_or(i64::MAX, |s| s.next_due(Some(pass), pass));
            self.next_pass.insert(key.clone(), next);
            let (shared, discoverer, catalog) = (self.shared.clone(), self.discoverer.clone(), catalog.clone());
            let (warehouse, owner, lease_for) = (key.clone(), self.owner.clone(), self.lease);
            self.passes.spawn(key, (), async move {
                let pass = discover(&shared, &discoverer, &catalog, &warehouse).await;
                if let Some(started_at) = lease {
                    crate::replicas::end_discovery(
                        &shared.store,
                        &owner,
                        lease_for,
                        &warehouse,
                        schedule.as_ref(),
                        started_at,
                    )
                    .await;
                }
                if pass.minted {
                    shared.decide.notify_one();
                }
                pass
            });
        }
    }

    /// When the next scheduled pass is due; `None` when none is, or no pass could start.
    fn next_due(&self, catalog: &Catalog) -> Option<i64> {
        if !self.scheduled || self.passes.len() >= DISCOVERIES_AT_ONCE {
            return None;
        }
        barge_engine::discover::warehouses(catalog, barge_engine::discover::Selection::All)
            .map(|(r, _)| (r.project.clone(), r.name.clone()))
            .filter(|key| !self.passes.runs_for(key))
            .filter_map(|key| self.next_pass.get(&key).copied())
            .min()
    }

    /// Waits for a pass to end; `None` when none is under way.
    async fn finished(&mut self) -> Option<Pass> {
        let ((_, warehouse), (), pass) = self.passes.join_next().await?;
        Some(pass.unwrap_or_else(|e| {
            tracing::error!(%warehouse, "discovery failed: {e}");
            Pass {
                failed: vec![format!("warehouse {warehouse}: {e}")],
                minted: false,
            }
        }))
    }
}

/// Discovers one Warehouse.
async fn discover(
    shared: &Shared,
    discoverer: &barge_engine::discover::Discoverer,
    catalog: &Catalog,
    (project, name): &Key,
) -> Pass {
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let mut minted = false;
    let this = barge_engine::discover::Selection::One { project, name };
    match discoverer.run(catalog, this, Some(&shared.store)).await {
        Ok(reports) => {
            for report in &reports {
                for s in &report.subscriptions {
                    if let Some(e) = &s.error {
                        let _ = shared
                            .events
                            .emit(Event::DiscoveryFailed {
                                project: report.project.clone(),
                                warehouse: report.warehouse.clone(),
                                repo_url: Some(s.repo_url.clone()),
                                error: e.clone(),
                            })
                            .await;
                        failed.push(format!("warehouse {}: {} {e}", report.warehouse, s.repo_url));
                    }
                }
                if report.stored == Some("created")
                    && let Some(f) = &report.freight
                {
                    minted = true;
                    eprintln!(
                        "barge: warehouse {} minted freight {}",
                        report.warehouse,
                        f["alias"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        Err(e) => {
            let _ = shared
                .events
                .emit(Event::DiscoveryFailed {
                    project: project.clone(),
                    warehouse: name.clone(),
                    repo_url: None,
                    error: e.to_string(),
                })
                .await;
            failed.push(format!("warehouse {name}: {e}"));
        }
    }
    let outcome = match (failed.is_empty(), minted) {
        (false, _) => "failed",
        (true, true) => "minted",
        (true, false) => "unchanged",
    };
    shared.metrics.discovered(project, name, outcome, started.elapsed());
    Pass { failed, minted }
}

/// The reconciler: decides this replica's Stages (all of them when it is the only replica,
/// `replicas::Deciding`) when something happened (Freight minted, a promotion or verification
/// ended, a call through the API, a reload), and every RECONCILE_EVERY for what time alone
/// changes (soak time running out, a window opening). Its share of the Stages, and while other
/// replicas decide Stages too the projects' change counters, come from the heartbeat task
/// (`replicas::keep_alive`) on `membership`: a change another replica made (Freight it
/// minted, a promotion it ended) may concern this replica's Stages, and a replica joining or
/// dying moves Stages; either wakes a pass. A pass under way when the daemon is asked to stop
/// ends first.
async fn decide_stages(
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    mut membership: watch::Receiver<Option<crate::replicas::Membership>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut catalogs = shared.catalog.subscribe();
    // The first heartbeat publishes this replica's share: deciding every Stage before it would
    // race the other replicas for theirs.
    tokio::select! {
        biased;
        _ = stopped(&mut stop) => return,
        known = membership.wait_for(Option::is_some) => if known.is_err() {
            // Only a panic ends the heartbeat task; without it this replica has no share.
            tracing::error!("the heartbeat task ended before its first beat: this replica decides no Stage");
            return;
        },
    }
    loop {
        let catalog = catalogs.borrow_and_update().clone();
        // Marked seen before the pass, so that a change published during it wakes the next.
        let deciding = match membership.borrow_and_update().as_ref() {
            Some(m) => m.deciding.clone(),
            None => crate::replicas::Deciding::All,
        };
        let started = tokio::time::Instant::now();
        if reconcile(&shared, &catalog, &engine.kube, &deciding).await > 0 {
            shared.claim.notify_one();
        }
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return,
            _ = shared.decide.notified() => {}
            Ok(()) = catalogs.changed() => {}
            // The heartbeat task ends only with the process.
            Ok(()) = membership.changed() => {}
            _ = tokio::time::sleep_until(started + RECONCILE_EVERY) => {}
        }
        // While the Stages are shared, passes are at least SHARED_PASS_GAP apart: every
        // replica's reconciler reads the projects' state per pass, and a burst of promotions
        // ending (here or, through the counters, anywhere) would otherwise start one pass
        // after another on every replica. What arrives meanwhile is decided in the next pass.
        if deciding.shared() {
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => return,
                _ = tokio::time::sleep_until(started + SHARED_PASS_GAP) => {}
            }
        }
    }
}

/// Checks every Stage's health, and for the Stages this replica decides (`deciding`)
/// creates the auto-promotions policy allows now; returns how many.
async fn reconcile(
    shared: &Shared,
    catalog: &Catalog,
    kube: &barge_kube::Clusters,
    deciding: &crate::replicas::Deciding,
) -> usize {
    let mut created = 0;
    let now = now_millis();
    for (project, defs) in pipeline::stages(catalog) {
        let snap = match Snapshot::read(&shared.store, &project).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%project, "cannot read the project's state: {e}");
                continue;
            }
        };
        for def in &defs {
            let health = stage_health(shared, kube, &snap, def, now).await;
            if let Ok(mut map) = shared.health.lock() {
                // Copied on write only while a call still reads the map it took.
                let map = Arc::make_mut(&mut map);
                let key = (def.project.to_string(), def.name.to_string());
                match health {
                    Some(h) => map.insert(key, h),
                    None => map.remove(&key),
                };
            }
            // Another live replica decides this Stage (its health above is this replica's
            // to serve).
            if !deciding.decides(def.project, def.name) {
                continue;
            }
            let status = match pipeline::stage_status(catalog, &snap, def, now) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(stage = %def.name, "cannot decide: {e}");
                    continue;
                }
            };
            // Disabling auto-promotion clears the Stage's holds, as in Kargo: there is nothing
            // left for them to hold back, and re-enabling must not find stale ones.
            if !def.auto_promotion && !status.holds.is_empty() {
                match shared
                    .store
                    .release_stage(def.project, def.name, DISABLED_ACTOR, now)
                    .await
                {
                    Ok(n) => {
                        let released = Event::StageReleased {
                            project: def.project.into(),
                            stage: def.name.into(),
                            actor: DISABLED_ACTOR.into(),
                            holds: n,
                        };
                        let _ = shared.events.emit(released).await;
                    }
                    Err(e) => tracing::warn!(stage = %def.name, "cannot clear holds: {e}"),
                }
            }
            if def.has_verification() && !snap.unfinished.iter().any(|p| p.stage == def.name) {
                created += start_verification(shared, &snap, def, now).await;
            }
            // One promotion per Stage at a time: the first request that is ready goes.
            let Some(freight) = status
                .requests
                .iter()
                .find(|r| r.state == "Promote")
                .and_then(|r| r.candidate.clone())
            else {
                continue;
            };
            let stored = match shared.store.get_freight(&project, &freight).await {
                Ok(Some(stored)) => stored,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(stage = %def.name, "cannot read Freight {freight}: {e}");
                    continue;
                }
            };
            let auto = promote::create(
                catalog,
                &shared.store,
                &shared.events,
                def,
                &stored,
                AUTO_ACTOR,
                Phase::Pending,
                false,
            );
            match auto.await {
                Ok(p) => {
                    created += 1;
                    eprintln!(
                        "barge: auto-promoting {} into {} ({})",
                        snap.display(&freight),
                        def.name,
                        p.name
                    );
                    // The pass goes on with the snapshot it read: a Stage's decision reads
                    // only its own promotions (`stage_status`), and each Stage is decided
                    // once per pass. (Re-reading the project here cost a read of its whole
                    // state per promotion created.)
                }
                // Another replica (or a person) got there first.
                Err(e) => tracing::info!(stage = %def.name, "no auto-promotion: {e}"),
            }
        }
    }
    created
}

/// The runners: claim the promotions and verifications this replica may run and run them, one
/// of each per Stage at a time (promotions also wait for one of the engine's `--workers`
/// slots).
struct Runners {
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    /// This replica, in leases.
    owner: String,
    lease: Duration,
    /// Promotions run at once (`--workers`): no more are claimed, so that promotions this
    /// replica could not start yet stay free for other replicas.
    workers: usize,
    in_cluster: bool,
    /// The promotions running, by Stage.
    promotions: InFlight<Result<Phase, EngineError>, StoredPromotion>,
    /// The verifications running, by Stage.
    verifications: InFlight<Result<VerificationPhase, EngineError>, Verification>,
}

impl Runners {
    /// Runs until asked to stop, then until what runs has ended. With `once`, it also decides
    /// the Stages before each claim (there is no reconciler then), and returns when nothing
    /// is left to decide or run.
    async fn run(mut self, tally: &mut Tally, once: bool, mut stop: watch::Receiver<bool>) {
        let mut stopping = false;
        let mut last_trim = std::time::Instant::now();
        let mut worked_since_trim = false;
        // Besides being woken, the runners look for work every tick: promotions queued by
        // other processes, leases of a replica that died.
        let tick = if once {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        loop {
            let created = if once && !stopping {
                let catalog = self.shared.catalog();
                let all = crate::replicas::Deciding::All;
                reconcile(&self.shared, &catalog, &self.engine.kube, &all).await
            } else {
                0
            };
            let launched = if stopping { 0 } else { self.claim().await };
            let idle = self.promotions.is_empty() && self.verifications.is_empty();
            if idle && (stopping || (once && created == 0 && launched == 0)) {
                break;
            }
            // Quiet now: what the work freed goes back to the operating system, as soon as the
            // last promotion or verification ends and then every TRIM_EVERY (discovery passes
            // allocate too). A trim of a quiet heap takes about a millisecond.
            let quiet = idle && launched == 0;
            if !quiet {
                worked_since_trim = true;
            } else if worked_since_trim || last_trim.elapsed() >= TRIM_EVERY {
                crate::memory::return_free_heap();
                last_trim = std::time::Instant::now();
                worked_since_trim = false;
            }
            tokio::select! {
                // Everything that finished meanwhile is taken at once, so that the Stages are
                // decided once for all of them (a burst of promotions ending one after another
                // would otherwise decide every Stage again for each).
                done = self.promotions.join_next(), if !self.promotions.is_empty() => {
                    let mut done = done;
                    while let Some((_, stored, ended)) = done {
                        let name = &stored.name;
                        let phase = match ended {
                            Ok(Ok(phase)) => phase,
                            Ok(Err(e)) => {
                                tracing::error!(promotion = %name, "promotion could not run: {e}");
                                Phase::Errored
                            }
                            Err(e) => {
                                tracing::error!(promotion = %name, "the promotion's task failed: {e}");
                                record_errored(&self.shared, &self.owner, &stored, &internal_error(&e)).await;
                                Phase::Errored
                            }
                        };
                        eprintln!("barge: promotion {name}: {}", phase.as_str());
                        if phase != Phase::Succeeded {
                            tally.failures.push(format!("promotion {name} {}", phase.as_str()));
                        }
                        tally.promotions += 1;
                        done = self.promotions.try_join_next();
                    }
                    self.shared.decide.notify_one();
                }
                done = self.verifications.join_next(), if !self.verifications.is_empty() => {
                    let mut done = done;
                    while let Some((_, v, ended)) = done {
                        let (id, stage) = (&v.id, &v.stage);
                        let phase = match ended {
                            Ok(Ok(phase)) => phase,
                            Ok(Err(e)) => {
                                tracing::error!(verification = %id, "verification could not run: {e}");
                                VerificationPhase::Error
                            }
                            Err(e) => {
                                tracing::error!(verification = %id, "the verification's task failed: {e}");
                                let (store, events) = (&self.shared.store, &self.shared.events);
                                match barge_engine::verify::record_error(store, events, &self.owner, &v, &internal_error(&e)).await {
                                    Ok(phase) => phase,
                                    Err(save) => {
                                        tracing::error!(verification = %id, "cannot record the error: {save}");
                                        VerificationPhase::Error
                                    }
                                }
                            }
                        };
                        eprintln!("barge: verification {id} of {stage}: {phase}");
                        if phase != VerificationPhase::Succeeded {
                            tally.failures.push(format!("verification {id} of {stage} {phase}"));
                        }
                        done = self.verifications.try_join_next();
                    }
                    self.shared.decide.notify_one();
                }
                _ = tokio::time::sleep(tick) => {}
                _ = self.shared.claim.notified() => {}
                _ = stopped(&mut stop), if !stopping => {
                    eprintln!(
                        "barge: stopping: no new work; waiting for {} running promotion(s) and {} verification(s)",
                        self.promotions.len(),
                        self.verifications.len()
                    );
                    stopping = true;
                }
            }
        }
    }

    /// Claims the promotions and verifications this replica may run and starts them;
    /// returns how many.
    async fn claim(&mut self) -> usize {
        launch_promotions(
            &self.shared,
            &self.engine,
            &self.owner,
            self.lease,
            self.workers,
            &mut self.promotions,
        )
        .await
            + launch_verifications(
                &self.shared,
                &self.engine,
                &self.owner,
                self.lease,
                &mut self.verifications,
                self.in_cluster,
            )
            .await
    }
}

/// Claims the promotions this replica may run, up to `workers` running at once, and starts
/// them; returns how many. Claiming more than it can run would hold them from other replicas
/// (a burst of queued promotions went to whichever replica looked first, the others idle).
async fn launch_promotions(
    shared: &Arc<Shared>,
    engine: &Arc<Engine>,
    owner: &str,
    lease: Duration,
    workers: usize,
    running: &mut InFlight<Result<Phase, EngineError>, StoredPromotion>,
) -> usize {
    if running.len() >= workers {
        return 0;
    }
    // Leases are measured by the database's clock, not this replica's.
    let now = match shared.store.now().await {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!("cannot read the database's clock: {e}");
            return 0;
        }
    };
    // Names and config repositories only: the plans read are those of the promotions claimed.
    let runnable = match shared.store.runnable_promotions(owner, now).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot list runnable promotions: {e}");
            return 0;
        }
    };
    if runnable.is_empty() {
        return 0;
    }
    let elsewhere = match shared.store.promotions_running_elsewhere(owner, now).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("cannot list the promotions other replicas run: {e}");
            return 0;
        }
    };
    let mine: Vec<(&str, &str)> = running.work.values().filter_map(|(_, p)| push_target(p)).collect();
    let runnable = claim_order(owner, runnable, &mine, running.is_empty(), &elsewhere);
    let mut launched = 0;
    for head in runnable {
        if running.len() >= workers {
            break;
        }
        let key = (head.project.clone(), head.stage.clone());
        if running.runs_for(&key) {
            continue;
        }
        let lease = now + lease.as_millis() as i64;
        let p = match shared
            .store
            .claim_promotion_returning(&head.project, &head.name, owner, lease, now)
            .await
        {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("cannot claim promotion {}: {e}", head.name);
                continue;
            }
        };
        launched += 1;
        let (shared, engine, claimed, owner) = (shared.clone(), engine.clone(), p.clone(), owner.to_string());
        running.spawn(key, p, async move {
            run_promotion(&shared, &engine, &owner, &claimed).await
        });
    }
    launched
}

/// A running promotion's push target as far as it is known before it runs: its project and
/// the config repository its plan clones ([`barge_promote::Promotion::config_repo_of`]).
fn push_target(p: &StoredPromotion) -> Option<(&str, &str)> {
    barge_promote::Promotion::config_repo_of(&p.plan).map(|repo| (p.project.as_str(), repo))
}

/// The same of a promotion not claimed yet, from its stored config repository (the plan's,
/// recorded at creation).
fn head_target(p: &PromotionHead) -> Option<(&str, &str)> {
    (!p.config_repo.is_empty()).then_some((p.project.as_str(), p.config_repo.as_str()))
}

/// Which of the `runnable` promotions replica `owner` should claim, in order (issue #19).
///
/// One process batches the pushes of its promotions to a branch into one push (the git
/// cache's push turn), but replicas race each other's pushes: each rejection costs a fetch,
/// a replay, another push and, from the second, a growing backoff. So a replica keeps off
/// the config repositories other replicas are running promotions for (`elsewhere`, under
/// live leases), and pushes to one repository stay in one process. When two replicas both
/// run one repository (they claimed at the same moment; `mine` are the push targets of what
/// this replica runs), it stays with the one whose name sorts first, so they part at once
/// instead of both giving it up.
///
/// Nothing waits forever: a repository is always open to the first-named replica running
/// it, a dead replica's lease runs out and frees its repositories, and an `idle` replica (one
/// running nothing, with nothing else to claim) still takes the oldest promotion kept off,
/// one at a time, so a burst on few repositories is not left to one replica's workers alone.
fn claim_order(
    owner: &str,
    runnable: Vec<PromotionHead>,
    mine: &[(&str, &str)],
    idle: bool,
    elsewhere: &[(String, PromotionHead)],
) -> Vec<PromotionHead> {
    let kept_off = |target: (&str, &str)| {
        let mut others = elsewhere
            .iter()
            .filter(|(_, p)| head_target(p) == Some(target))
            .map(|(other, _)| other.as_str())
            .peekable();
        if others.peek().is_none() {
            return false;
        }
        let runs_it = mine.contains(&target);
        !runs_it || others.any(|other| other < owner)
    };
    let (mut order, kept): (Vec<_>, Vec<_>) = runnable
        .into_iter()
        .partition(|p| !head_target(p).is_some_and(kept_off));
    if idle && order.is_empty() {
        order.extend(kept.into_iter().take(1));
    }
    order
}

/// Claims the verifications this replica may run and starts them; returns how many.
async fn launch_verifications(
    shared: &Arc<Shared>,
    engine: &Arc<Engine>,
    owner: &str,
    lease: Duration,
    verifying: &mut InFlight<Result<VerificationPhase, EngineError>, Verification>,
    in_cluster: bool,
) -> usize {
    // Leases are measured by the database's clock, not this replica's.
    let now = match shared.store.now().await {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!("cannot read the database's clock: {e}");
            return 0;
        }
    };
    let runnable = match shared.store.runnable_verifications(owner, now).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot list runnable verifications: {e}");
            return 0;
        }
    };
    let mut launched = 0;
    for v in runnable {
        let key = (v.project.clone(), v.stage.clone());
        if verifying.runs_for(&key) {
            continue;
        }
        let lease = now + lease.as_millis() as i64;
        match shared
            .store
            .claim_verification(&v.project, &v.id, owner, lease, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("cannot claim verification {}: {e}", v.id);
                continue;
            }
        }
        launched += 1;
        let (shared, engine, claimed, owner) = (shared.clone(), engine.clone(), v.clone(), owner.to_string());
        verifying.spawn(key, claimed, async move {
            let catalog = shared.catalog();
            let mode = if in_cluster {
                barge_engine::verify::Mode::InCluster {
                    clusters: engine.kube.clone(),
                }
            } else {
                // Job metrics run in the project's namespace (Rollouts: the run's namespace).
                barge_engine::verify::Mode::Native(barge_analysis::Providers {
                    http: barge_analysis::http::Http::with_rewrites(engine.rewrites.clone()),
                    jobs: Some(barge_analysis::job::JobTarget {
                        clusters: engine.kube.clone(),
                        context: None,
                        namespace: v.project.clone(),
                        run: v.id.clone(),
                    }),
                })
            };
            barge_engine::verify::run(
                &shared.store,
                &shared.events,
                &catalog,
                &engine.data.secrets,
                &mode,
                &owner,
                &v,
            )
            .await
        });
    }
    launched
}

/// The health of the Argo CD Applications the Stage's last successful promotion updated
/// (argocd-update's `apps` output), read now; `None` when it updated none.
async fn stage_health(
    shared: &Shared,
    kube: &barge_kube::Clusters,
    snap: &Snapshot,
    def: &pipeline::StageDef<'_>,
    now: i64,
) -> Option<pipeline::StageHealth> {
    let last = snap.last.get(def.name).filter(|p| p.phase == Phase::Succeeded)?;
    let key = (def.project.to_string(), def.name.to_string());
    let known = shared.synced_apps.lock().ok().and_then(|m| {
        m.get(&key)
            .filter(|(name, _)| name == &last.name)
            .map(|(_, apps)| apps.clone())
    });
    let apps = match known {
        Some(apps) => apps,
        None => {
            let stored = shared.store.get_promotion(def.project, &last.name).await.ok()??;
            let apps: Vec<serde_json::Value> = promote::step_outputs(&stored, "argocd-update")
                .flat_map(|o| o["apps"].as_array().cloned().unwrap_or_default())
                .collect();
            if let Ok(mut m) = shared.synced_apps.lock() {
                m.insert(key, (last.name.clone(), apps.clone()));
            }
            apps
        }
    };
    if apps.is_empty() {
        return None;
    }
    let rank = |s: &str| match s {
        "Healthy" => 0,
        "Progressing" => 1,
        "Unknown" => 2,
        _ => 3,
    };
    let mut out = pipeline::StageHealth {
        status: "Healthy".into(),
        message: String::new(),
        apps: Vec::new(),
        checked_at: now,
    };
    for app in apps {
        let (name, namespace) = (
            app["name"].as_str().unwrap_or(""),
            app["namespace"].as_str().unwrap_or("argocd"),
        );
        let revision = app["revision"].as_str();
        let (status, message) = match kube.client(app["cluster"].as_str()).await {
            Err(e) => ("Unknown", e.to_string()),
            Ok(client) => match barge_kube::Objects::new(client, barge_kube::APPLICATION, namespace)
                .get(name)
                .await
            {
                Err(e) => ("Unknown", e.to_string()),
                Ok(obj) => {
                    use barge_core::health::{AppCondition, Readiness, argocd_app};
                    match argocd_app(&obj, &[AppCondition::Health, AppCondition::Sync], revision, None) {
                        Readiness::Ready(_) => ("Healthy", String::new()),
                        Readiness::Waiting(w) => ("Progressing", w),
                        Readiness::Failed(f) => ("Degraded", f),
                    }
                }
            },
        };
        if rank(status) > rank(&out.status) {
            out.status = status.to_string();
            out.message.clone_from(&message);
        }
        out.apps.push(serde_json::json!({"name": name, "namespace": namespace, "revision": revision, "status": status, "message": message}));
    }
    Some(out)
}

/// Queues the verification of Freight that entered a verified Stage and was not verified
/// in this stay yet (the newest arrival when the Stage takes several origins). Returns 1 when
/// it queued one.
async fn start_verification(shared: &Shared, snap: &Snapshot, def: &pipeline::StageDef<'_>, now: i64) -> usize {
    let Some(arrived) = pipeline::verification_subject(&snap.facts, def.name).filter(|f| f.verification.is_empty())
    else {
        return 0;
    };
    match shared
        .store
        .create_verification(def.project, def.name, &arrived.freight, "barge", now)
        .await
    {
        Ok(v) => {
            let verification = VerificationRef::of(&v);
            let actor = v.actor.clone();
            let _ = shared
                .events
                .emit(Event::VerificationStarted { verification, actor })
                .await;
            eprintln!(
                "barge: verifying {} in {} ({})",
                snap.display(&arrived.freight),
                def.name,
                v.id
            );
            1
        }
        Err(e) => {
            tracing::info!(stage = %def.name, "no verification started: {e}");
            0
        }
    }
}

/// Runs one claimed promotion to its end; a promotion that cannot run at all (its Stage is
/// gone from the definitions, its plan unreadable) is recorded as Errored, never left Running.
async fn run_promotion(
    shared: &Shared,
    engine: &Engine,
    owner: &str,
    stored: &StoredPromotion,
) -> Result<Phase, EngineError> {
    let result = async {
        let (p, state) = promote::stored_run(stored)?;
        let catalog = shared.catalog();
        let outcome = promote::execute(
            &catalog,
            &shared.store,
            &shared.events,
            engine,
            owner,
            &p,
            state,
            false,
            false,
        )
        .await?;
        Ok::<_, EngineError>(outcome.phase)
    }
    .await;
    if let Err(e) = &result {
        record_errored(shared, owner, stored, &e.to_string()).await;
    }
    result
}

/// What a promotion or verification whose task failed (a panic: a bug in barge) records.
fn internal_error(e: &JoinError) -> String {
    format!("barge hit an internal error and stopped it ({e}); see barge's log")
}

/// Records a promotion that cannot go on as Errored, and why. Its progress stays as last
/// saved (the state claimed when it cannot be read), so that what its steps did is not lost.
/// Fenced by `owner`'s lease like every save: a runner that lost it records nothing.
async fn record_errored(shared: &Shared, owner: &str, stored: &StoredPromotion, message: &str) {
    let latest = match shared.store.get_promotion(&stored.project, &stored.name).await {
        Ok(Some(latest)) => Some(latest.state),
        _ => None,
    };
    let state = latest.as_ref().unwrap_or(&stored.state);
    let saved = shared
        .store
        .save_promotion_state(
            &stored.project,
            &stored.name,
            owner,
            state,
            Phase::Errored,
            message,
            now_millis(),
            None,
        )
        .await;
    match saved {
        Ok(()) => {
            let finished = Event::PromotionFinished {
                promotion: PromotionRef::of_stored(stored),
                phase: Phase::Errored,
                message: message.to_string(),
            };
            let _ = shared.events.emit(finished).await;
        }
        Err(save) => tracing::error!(promotion = %stored.name, "cannot record the error: {save}"),
    }
}

/// The handler the API runs calls with, for `principal` (the engine authorizes the call
/// first).
pub async fn call(
    shared: &Shared,
    principal: &barge_core::authz::Principal,
    c: ops::Call,
) -> Result<barge_engine::Answer, barge_engine::EngineError> {
    let catalog = shared.catalog();
    let refresh = |p: &str, w: &str| shared.request_refresh(p, w);
    // Shared, not copied: a call used to clone every Stage's health (with its apps) per read.
    let health = shared.health.lock().map(|h| Arc::clone(&h)).unwrap_or_default();
    let cx = ops::Context {
        store: &shared.store,
        events: &shared.events,
        catalog: &catalog,
        refresh: Some(&refresh),
        health: Some(health.as_ref()),
        principal,
        engine: Some(&shared.engine),
    };
    let changes = !c.reads_only();
    let out = ops::handle(&cx, c).await;
    // A queued promotion starts now, and a hold, release or approval is decided now, rather
    // than at the next tick. A read changes nothing to decide: waking the reconciler after
    // each one made every API read cost a decision over every Stage (BENCHMARKS.md, "REST
    // API").
    if changes {
        shared.claim.notify_one();
        shared.decide.notify_one();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str) -> Key {
        ("demo".to_string(), name.to_string())
    }

    /// A Pending promotion into `stage` whose plan clones `repo` (none: no git-clone step),
    /// as the runner lists it.
    fn pending(stage: &str, repo: Option<&str>) -> PromotionHead {
        PromotionHead {
            project: "demo".to_string(),
            name: format!("{stage}.p"),
            stage: stage.to_string(),
            config_repo: repo.unwrap_or_default().to_string(),
            created_at: 0,
        }
    }

    fn stages(order: &[PromotionHead]) -> Vec<&str> {
        order.iter().map(|p| p.stage.as_str()).collect()
    }

    /// Issue #19: replicas raced each other's pushes to one branch (2 replicas at 0.52× one
    /// replica's promotions/s); a replica now keeps off the repositories others run.
    #[test]
    fn a_replica_keeps_its_claims_off_repositories_other_replicas_push_to() {
        let (a, b) = (
            Some("https://git.example.com/a.git"),
            Some("https://git.example.com/b.git"),
        );
        let runnable = || {
            vec![
                pending("a1", a),
                pending("b1", b),
                pending("n1", None),
                pending("a2", a),
            ]
        };
        let on_a = vec![("replica-2".to_string(), pending("a0", a))];
        let (mine_b, mine_a) = (("demo", b.unwrap()), ("demo", a.unwrap()));

        // Another replica runs a: a busy replica claims only the others (no repository: free).
        let order = claim_order("replica-1", runnable(), &[mine_b], false, &on_a);
        assert_eq!(stages(&order), ["b1", "n1"]);
        // Nobody else runs anything: everything, oldest first.
        let order = claim_order("replica-1", runnable(), &[mine_b], false, &[]);
        assert_eq!(stages(&order), ["a1", "b1", "n1", "a2"]);
        // Both run a (they claimed at once): the first-named keeps it, the other lets it go.
        let order = claim_order("replica-1", runnable(), &[mine_a], false, &on_a);
        assert_eq!(stages(&order), ["a1", "b1", "n1", "a2"]);
        let on_a_too = vec![("replica-1".to_string(), pending("a0", a))];
        let order = claim_order("replica-2", runnable(), &[mine_a], false, &on_a_too);
        assert_eq!(stages(&order), ["b1", "n1"]);
        // An idle replica with nothing else to claim still takes the oldest kept off, one
        // at a time: no Stage waits on one replica's workers alone.
        let only_a = vec![pending("a1", a), pending("a2", a)];
        let order = claim_order("replica-1", only_a.clone(), &[], true, &on_a);
        assert_eq!(stages(&order), ["a1"]);
        let order = claim_order("replica-1", only_a, &[mine_b], false, &on_a);
        assert!(order.is_empty(), "a busy replica waits: {:?}", stages(&order));
    }

    /// The runner's push target of a claimed promotion (from its plan) and of one not yet
    /// claimed (from the stored column) agree.
    #[test]
    fn a_claimed_plan_and_its_listed_head_name_the_same_repository() {
        let plan = serde_json::json!({"steps": [
            {"uses": "git-clone", "config": {"repoURL": "https://git.example.com/a.git"}},
            {"uses": "git-push", "config": {"path": "./src"}},
        ]});
        let claimed = StoredPromotion {
            project: "demo".to_string(),
            name: "a1.p".to_string(),
            stage: "a1".to_string(),
            freight: "f1".to_string(),
            actor: "alice".to_string(),
            phase: Phase::Running,
            message: String::new(),
            plan,
            state: serde_json::Value::Null,
            created_at: 0,
            updated_at: 0,
        };
        let head = pending("a1", Some("https://git.example.com/a.git"));
        assert_eq!(push_target(&claimed), head_target(&head));
        assert_eq!(head_target(&pending("n1", None)), None);
    }

    /// Issue #15: a promotion whose task panicked kept its Stage busy, so the Stage got no
    /// more promotions until the daemon restarted.
    #[tokio::test]
    async fn a_task_that_panics_frees_its_stage_and_names_its_work() {
        let mut in_flight: InFlight<(), &str> = InFlight::new();
        let (_release, held) = tokio::sync::oneshot::channel::<()>();
        in_flight.spawn(stage("test"), "promotion-of-test", async move {
            let _ = held.await;
        });
        in_flight.spawn(stage("prod"), "promotion-of-prod", async { panic!("a bug in barge") });
        assert!(in_flight.runs_for(&stage("prod")));

        let (freed, work, ended) = in_flight.join_next().await.expect("a task ended");
        assert_eq!(freed, stage("prod"));
        assert_eq!(work, "promotion-of-prod");
        assert!(ended.is_err_and(|e| e.is_panic()));
        assert!(
            !in_flight.runs_for(&stage("prod")),
            "the Stage of the panicked task is free"
        );
        assert!(in_flight.runs_for(&stage("test")), "the other Stage is still busy");
        assert_eq!(in_flight.len(), 1);
    }

    #[tokio::test]
    async fn a_task_that_ends_frees_its_stage() {
        let mut in_flight: InFlight<u8, ()> = InFlight::new();
        in_flight.spawn(stage("prod"), (), async { 7 });
        let (freed, (), ended) = in_flight.join_next().await.expect("a task ended");
        assert_eq!((freed, ended.ok()), (stage("prod"), Some(7)));
        assert!(!in_flight.runs_for(&stage("prod")));
        assert!(in_flight.is_empty());
        assert!(in_flight.join_next().await.is_none());
    }
}
