//! `barge serve`: the daemon. It loads the definitions (and reloads them when they change,
//! keeping the last good ones when a change is invalid), discovers each Warehouse when it is
//! due, reconciles every Stage (auto-promotion where a ProjectConfig policy allows it), runs
//! queued promotions on a bounded pool with a lease per promotion, and answers the CLI over a
//! small bearer-token HTTP API. `--once` runs the pipeline until it is idle and exits.

use anyhow::{Context as _, Result};
use barge_core::Catalog;
use barge_core::analysis::VerificationPhase;
use barge_core::promotion::{Phase, State};
use barge_engine::ops;
use barge_engine::pipeline::{self, AUTO_ACTOR, Snapshot};
use barge_engine::promote::{self, LEASE, now_millis};
use barge_promote::{Engine, Promotion};
use barge_store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Who clears holds when a policy stops enabling auto-promotion.
const DISABLED_ACTOR: &str = "barge (auto-promotion disabled)";

/// The longest a Stage goes undecided while nothing happens.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// How often a quiet daemon returns freed heap to the operating system (memory.rs).
const TRIM_EVERY: Duration = Duration::from_secs(10);

pub struct Options {
    pub paths: Vec<String>,
    pub once: bool,
    pub listen: Option<std::net::SocketAddr>,
    pub access: Option<crate::api::Access>,
    pub reload_interval: Duration,
    pub replica_id: String,
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
}

/// What the loop, the promotion tasks and the API share.
pub struct Shared {
    pub store: Store,
    catalog: RwLock<Arc<Catalog>>,
    /// Warehouses someone asked to discover now.
    refresh: Mutex<HashSet<(String, String)>>,
    /// Each Stage's health, checked on every reconcile.
    health: Mutex<pipeline::HealthMap>,
    /// Per Stage, its last successful promotion and the apps it synced (argocd-update's
    /// output): a finished promotion never changes, so its stored state is read once.
    synced_apps: Mutex<HashMap<(String, String), SyncedApps>>,
    wake: tokio::sync::Notify,
}

impl Shared {
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .map_or_else(|p| p.into_inner().clone(), |c| c.clone())
    }

    fn request_refresh(&self, project: &str, warehouse: &str) {
        if let Ok(mut r) = self.refresh.lock() {
            r.insert((project.to_string(), warehouse.to_string()));
        }
        self.wake.notify_one();
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

pub async fn serve(opts: Options, mut catalog: Catalog, store: Store, engine: Engine) -> Result<bool> {
    // A Git source's URL may carry a token (`https://bot:TOKEN@host/defs.git`): it is recorded
    // redacted.
    let source = opts
        .paths
        .iter()
        .map(|p| barge_core::secret::redact_url(p))
        .collect::<Vec<_>>()
        .join(" ");
    catalog.compact();
    store.save_definitions(&source, &catalog.texts, now_millis()).await?;
    let shared = Arc::new(Shared {
        store: store.clone(),
        catalog: RwLock::new(Arc::new(catalog)),
        refresh: Mutex::new(HashSet::new()),
        health: Mutex::new(pipeline::HealthMap::new()),
        synced_apps: Mutex::new(HashMap::new()),
        wake: tokio::sync::Notify::new(),
    });
    let engine = Arc::new(engine);
    let shutdown = shutdown_on_signal();
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
    // Renew the leases of the promotions this replica runs.
    {
        let store = store.clone();
        let owner = opts.replica_id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if let Err(e) = store
                    .renew_leases(&owner, now_millis() + LEASE.as_millis() as i64)
                    .await
                {
                    tracing::warn!("cannot renew promotion leases: {e}");
                }
            }
        });
    }
    // When each Warehouse is next due, worked out once after each of its passes.
    let mut next_pass: HashMap<(String, String), i64> = HashMap::new();
    let mut discovered_once = false;
    let mut last_reload = now_millis();
    let mut running: tokio::task::JoinSet<(String, String, String, Result<Phase>)> = tokio::task::JoinSet::new();
    let mut running_stages: HashSet<(String, String)> = HashSet::new();
    let mut verifying: tokio::task::JoinSet<(String, String, String, Result<VerificationPhase>)> =
        tokio::task::JoinSet::new();
    let mut verifying_stages: HashSet<(String, String)> = HashSet::new();
    let mut tally = Tally::default();
    let mut stopping = false;
    let mut last_prune = 0;
    let discoverer =
        barge_engine::discover::Discoverer::new(opts.registry.clone(), &opts.defined, opts.git_rules.clone())?;
    // Stages are decided again when something happened (Freight minted, a promotion
    // finished, a call or a reload), and every RECONCILE_EVERY for what time alone changes
    // (soak time running out, a window opening).
    let mut dirty = true;
    let mut last_reconcile = 0;
    let mut last_trim = std::time::Instant::now();
    let mut worked_since_trim = false;
    let mut reloading: Option<Reloading> = None;
    let mut last_load = LastLoad {
        files: fingerprint(&opts.paths),
        texts: shared.catalog().texts.clone(),
    };
    loop {
        if let Some(keep) = opts.audit_retention
            && now_millis() - last_prune >= 3_600_000
        {
            last_prune = now_millis();
            match store.prune_audit(now_millis() - keep.as_millis() as i64).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("audit retention removed {n} event(s)"),
                Err(e) => tracing::warn!("audit retention failed: {e}"),
            }
        }
        if !opts.once {
            match reloading.as_mut().map(|r| r.loaded.try_recv()) {
                Some(Ok(loaded)) => {
                    reloading = None;
                    dirty |= apply_reload(&shared, &opts, &source, &mut last_load, loaded).await;
                }
                Some(Err(tokio::sync::oneshot::error::TryRecvError::Empty)) => {
                    if let Some(r) = reloading.as_mut() {
                        r.warn_when_stuck();
                    }
                }
                Some(Err(tokio::sync::oneshot::error::TryRecvError::Closed)) => {
                    reloading = None;
                    tracing::warn!("reload failed: loading the definitions ended without a result");
                }
                None if now_millis() - last_reload >= opts.reload_interval.as_millis() as i64 => {
                    last_reload = now_millis();
                    reloading = start_reload(&shared, &opts.paths, &mut last_load);
                }
                None => {}
            }
        }
        let catalog = shared.catalog();
        if !stopping {
            let (failed, minted) =
                discover_due(&shared, &discoverer, &catalog, &opts, &mut next_pass, !discovered_once).await;
            discovered_once = true;
            dirty |= minted;
            tally.failures.extend(failed);
        }
        let due = opts.once || dirty || now_millis() - last_reconcile >= RECONCILE_EVERY.as_millis() as i64;
        let created = if stopping || !due {
            0
        } else {
            dirty = false;
            last_reconcile = now_millis();
            reconcile(&shared, &catalog, &engine.kube).await
        };
        let mut launched = 0;
        if !stopping {
            match store.runnable_promotions(&opts.replica_id, now_millis()).await {
                Ok(runnable) => {
                    for p in runnable {
                        let key = (p.project.clone(), p.stage.clone());
                        if running_stages.contains(&key) {
                            continue;
                        }
                        let lease = now_millis() + LEASE.as_millis() as i64;
                        match store
                            .claim_promotion(&p.project, &p.name, &opts.replica_id, lease, now_millis())
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => continue,
                            Err(e) => {
                                tracing::warn!("cannot claim promotion {}: {e}", p.name);
                                continue;
                            }
                        }
                        running_stages.insert(key);
                        launched += 1;
                        let (shared, engine) = (shared.clone(), engine.clone());
                        running.spawn(async move {
                            let phase = run_promotion(&shared, &engine, &p).await;
                            (p.project, p.stage, p.name, phase)
                        });
                    }
                }
                Err(e) => tracing::warn!("cannot list runnable promotions: {e}"),
            }
        }
        if !stopping {
            launched += launch_verifications(
                &shared,
                &engine,
                &opts.replica_id,
                &mut verifying,
                &mut verifying_stages,
                opts.analysis_in_cluster,
            )
            .await;
        }
        if running.is_empty() && verifying.is_empty() && (stopping || (opts.once && created == 0 && launched == 0)) {
            break;
        }
        // Quiet now: what the work freed goes back to the operating system, as soon as the
        // last promotion or verification ends and then every TRIM_EVERY (discovery passes
        // allocate too). A trim of a quiet heap takes about a millisecond.
        let quiet = running.is_empty() && verifying.is_empty() && launched == 0;
        if !quiet {
            worked_since_trim = true;
        } else if worked_since_trim || last_trim.elapsed() >= TRIM_EVERY {
            crate::memory::return_free_heap();
            last_trim = std::time::Instant::now();
            worked_since_trim = false;
        }
        let tick = if opts.once {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            // Everything that finished meanwhile is taken at once, so that the Stages are
            // decided once for all of them (a burst of promotions ending one after another
            // would otherwise decide every Stage again for each).
            done = running.join_next(), if !running.is_empty() => {
                dirty = true;
                let mut done = done;
                while let Some(finished) = done {
                    if let Ok((project, stage, name, phase)) = finished {
                        running_stages.remove(&(project, stage));
                        let phase = phase.unwrap_or_else(|e| {
                            tracing::error!(promotion = %name, "promotion could not run: {e:#}");
                            Phase::Errored
                        });
                        eprintln!("barge: promotion {name}: {}", phase.as_str());
                        if phase != Phase::Succeeded {
                            tally.failures.push(format!("promotion {name} {}", phase.as_str()));
                        }
                        tally.promotions += 1;
                    }
                    done = running.try_join_next();
                }
            }
            done = verifying.join_next(), if !verifying.is_empty() => {
                dirty = true;
                let mut done = done;
                while let Some(finished) = done {
                    if let Ok((project, stage, id, phase)) = finished {
                        verifying_stages.remove(&(project, stage.clone()));
                        let phase = phase.unwrap_or_else(|e| {
                            tracing::error!(verification = %id, "verification could not run: {e:#}");
                            VerificationPhase::Error
                        });
                        eprintln!("barge: verification {id} of {stage}: {phase}");
                        if phase != VerificationPhase::Succeeded {
                            tally.failures.push(format!("verification {id} of {stage} {phase}"));
                        }
                    }
                    done = verifying.try_join_next();
                }
            }
            _ = tokio::time::sleep(tick) => {}
            _ = shared.wake.notified() => dirty = true,
            _ = shutdown.notified(), if !stopping => {
                eprintln!(
                    "barge: stopping: no new work; waiting for {} running promotion(s) and {} verification(s)",
                    running.len(),
                    verifying.len()
                );
                stopping = true;
            }
        }
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

/// A signal (Ctrl-C or SIGTERM) asks the loop to stop taking work.
fn shutdown_on_signal() -> Arc<tokio::sync::Notify> {
    let notify = Arc::new(tokio::sync::Notify::new());
    let n = notify.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                n.notify_one();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        n.notify_one();
    });
    notify
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

/// A reload of the definitions in progress. The load runs on a thread of its own, not a
/// `spawn_blocking` task: a read that never returns (a hung network file system, a Git server
/// that stops answering) then holds up neither the daemon's loop nor its shutdown (a tokio
/// runtime waits for its blocking tasks when it stops; a process does not wait for threads).
struct Reloading {
    loaded: tokio::sync::oneshot::Receiver<Result<Catalog, barge_source::SourceError>>,
    since: std::time::Instant,
    warned: bool,
}

/// How long a reload may take before the daemon says that it waits for it.
const SLOW_RELOAD: Duration = Duration::from_secs(60);

impl Reloading {
    fn warn_when_stuck(&mut self) {
        if !self.warned && self.since.elapsed() >= SLOW_RELOAD {
            self.warned = true;
            tracing::warn!(
                "reloading the definitions has taken more than {}s (a read that does not return?); the running definitions stay, and the next reload starts when this one ends",
                SLOW_RELOAD.as_secs()
            );
        }
    }
}

/// Starts loading the definitions again when the local files changed (or a source is Git);
/// the loop applies the result with [`apply_reload`] when it arrives.
fn start_reload(shared: &Arc<Shared>, paths: &[String], last: &mut LastLoad) -> Option<Reloading> {
    let now_seen = fingerprint(paths);
    if now_seen.is_some() && now_seen == last.files {
        return None;
    }
    last.files = now_seen;
    let (send, loaded) = tokio::sync::oneshot::channel();
    let (paths, shared) = (paths.to_vec(), shared.clone());
    let started = std::thread::Builder::new().name("barge-reload".into()).spawn(move || {
        let _ = send.send(barge_engine::load_catalog(&paths));
        shared.wake.notify_one();
    });
    match started {
        Ok(_) => Some(Reloading {
            loaded,
            since: std::time::Instant::now(),
            warned: false,
        }),
        Err(e) => {
            tracing::warn!("cannot start a reload: {e}");
            None
        }
    }
}

/// Applies loaded definitions: a valid change replaces the running ones (and is recorded), an
/// invalid one is reported and ignored. Returns whether the definitions changed.
async fn apply_reload(
    shared: &Shared,
    opts: &Options,
    source: &str,
    last: &mut LastLoad,
    loaded: Result<Catalog, barge_source::SourceError>,
) -> bool {
    let catalog = match loaded {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("cannot reload the definitions (keeping the last good ones): {e}");
            return false;
        }
    };
    // Unchanged texts (a Git source fetched again, a file touched) are not news, and a
    // rejected change is reported once.
    if catalog.texts == last.texts {
        return false;
    }
    last.texts = catalog.texts.clone();
    if catalog.errors() > 0 {
        let text = barge_engine::diagnostics::diagnostics_text(&catalog, false);
        tracing::warn!("the changed definitions have errors; keeping the last good ones:\n{text}");
        eprintln!(
            "barge: the changed definitions have {} error(s); keeping the last good ones:\n{text}",
            catalog.errors()
        );
        let body = serde_json::json!({"errors": catalog.errors(), "diagnostics": barge_engine::diagnostics::validate_json(&catalog)["diagnostics"]});
        let _ = shared
            .store
            .append_audit(barge_store::NewAudit {
                at: now_millis(),
                project: "",
                kind: "config.rejected",
                subject: "Definitions",
                actor: "barge",
                stage: "",
                freight: "",
                body: &body,
            })
            .await;
        return false;
    }
    match shared
        .store
        .save_definitions(source, &catalog.texts, now_millis())
        .await
    {
        Ok(_) => {
            eprintln!("barge: definitions reloaded");
            opts.defined.adopt(&catalog);
            if let Ok(mut c) = shared.catalog.write() {
                *c = Arc::new(catalog);
            }
            true
        }
        Err(e) => {
            tracing::warn!("cannot record the reloaded definitions: {e}");
            false
        }
    }
}

/// Discovers the Warehouses that are due (all of them on the first pass, or when someone
/// asked); returns what failed.
async fn discover_due(
    shared: &Shared,
    discoverer: &barge_engine::discover::Discoverer,
    catalog: &Catalog,
    opts: &Options,
    next_pass: &mut HashMap<(String, String), i64>,
    first: bool,
) -> (Vec<String>, bool) {
    let requested: HashSet<(String, String)> = shared
        .refresh
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    let mut failed = Vec::new();
    let mut minted = false;
    for (r, spec) in barge_engine::discover::warehouses(catalog, barge_engine::discover::Selection::All) {
        let key = (r.project.clone(), r.name.clone());
        let due = first
            || requested.contains(&key)
            || (!opts.once && next_pass.get(&key).is_none_or(|at| *at <= now_millis()));
        if !due {
            continue;
        }
        let pass = now_millis();
        match barge_core::schedule::Schedule::new(
            spec.interval.as_deref(),
            spec.schedule.as_deref(),
            &format!("{}/{}", r.project, r.name),
        ) {
            Ok(schedule) => next_pass.insert(key, schedule.next_due(Some(pass), pass)),
            // Validation rejects a bad interval or schedule; should one get through, the
            // Warehouse is not polled again rather than polled every second.
            Err(_) => next_pass.insert(key, i64::MAX),
        };
        let this = barge_engine::discover::Selection::One {
            project: &r.project,
            name: &r.name,
        };
        match discoverer.run(catalog, this, Some(&shared.store)).await {
            Ok(reports) => {
                for report in &reports {
                    for s in &report.subscriptions {
                        if let Some(e) = &s.error {
                            tracing::warn!(warehouse = %report.warehouse, "discovery of {} failed: {e}", s.repo_url);
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
                tracing::warn!(warehouse = %r.name, "discovery failed: {e:#}");
                failed.push(format!("warehouse {}: {e:#}", r.name));
            }
        }
    }
    (failed, minted)
}

/// Creates the auto-promotions policy allows now; returns how many.
async fn reconcile(shared: &Shared, catalog: &Catalog, kube: &barge_kube::Clusters) -> usize {
    let mut created = 0;
    let now = now_millis();
    for (project, defs) in pipeline::stages(catalog) {
        let mut snap = match Snapshot::read(&shared.store, &project).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%project, "cannot read the project's state: {e:#}");
                continue;
            }
        };
        for def in &defs {
            let health = stage_health(shared, kube, &snap, def, now).await;
            if let Ok(mut map) = shared.health.lock() {
                let key = (def.project.to_string(), def.name.to_string());
                match health {
                    Some(h) => map.insert(key, h),
                    None => map.remove(&key),
                };
            }
            let status = match pipeline::stage_status(catalog, &snap, def, now) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(stage = %def.name, "cannot decide: {e:#}");
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
                    Ok(n) => tracing::info!(stage = %def.name, "auto-promotion is off: {n} hold(s) cleared"),
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
            let Some(stored) = snap
                .freight
                .iter()
                .find(|f| f.freight.metadata.name == freight)
                .cloned()
            else {
                continue;
            };
            match promote::create(catalog, &shared.store, def, &stored, AUTO_ACTOR, Phase::Pending, false).await {
                Ok(p) => {
                    created += 1;
                    eprintln!(
                        "barge: auto-promoting {} into {} ({})",
                        snap.display(&freight),
                        def.name,
                        p.name
                    );
                    // Later Stages of this pass see the promotion as running.
                    if let Ok(fresh) = Snapshot::read(&shared.store, &project).await {
                        snap = fresh;
                    }
                }
                // Another replica (or a person) got there first.
                Err(e) => tracing::info!(stage = %def.name, "no auto-promotion: {e:#}"),
            }
        }
    }
    created
}

/// Claims the verifications this replica may run and starts them; returns how many.
async fn launch_verifications(
    shared: &Arc<Shared>,
    engine: &Arc<Engine>,
    owner: &str,
    verifying: &mut tokio::task::JoinSet<(String, String, String, Result<VerificationPhase>)>,
    verifying_stages: &mut HashSet<(String, String)>,
    in_cluster: bool,
) -> usize {
    let runnable = match shared.store.runnable_verifications(owner, now_millis()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot list runnable verifications: {e}");
            return 0;
        }
    };
    let mut launched = 0;
    for v in runnable {
        let key = (v.project.clone(), v.stage.clone());
        if verifying_stages.contains(&key) {
            continue;
        }
        let lease = now_millis() + LEASE.as_millis() as i64;
        match shared
            .store
            .claim_verification(&v.project, &v.id, owner, lease, now_millis())
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("cannot claim verification {}: {e}", v.id);
                continue;
            }
        }
        verifying_stages.insert(key);
        launched += 1;
        let (shared, engine) = (shared.clone(), engine.clone());
        verifying.spawn(async move {
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
            let phase = barge_engine::verify::run(
                &shared.store,
                &catalog,
                &engine.data.secrets,
                &mode,
                &v,
                &|metric, m| {
                    tracing::info!(
                        verification = %v.id,
                        metric = %metric.name,
                        phase = m.phase.as_str(),
                        value = m.value.as_deref().unwrap_or(""),
                        "measured"
                    );
                },
            )
            .await;
            (v.project, v.stage, v.id, phase)
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
async fn run_promotion(shared: &Shared, engine: &Engine, stored: &barge_store::StoredPromotion) -> Result<Phase> {
    let result = async {
        let p: Promotion = serde_json::from_value(stored.plan.clone()).context("the stored promotion is unreadable")?;
        let state: State =
            serde_json::from_value(stored.state.clone()).context("the stored promotion state is unreadable")?;
        let catalog = shared.catalog();
        let outcome = promote::execute(&catalog, &shared.store, engine, &p, state, false, false).await?;
        if !outcome.message.is_empty() {
            tracing::info!(promotion = %p.name, phase = outcome.phase.as_str(), "{}", outcome.message);
        }
        Ok(outcome.phase)
    }
    .await;
    if let Err(e) = &result {
        let message = format!("{e:#}");
        if let Err(save) = shared
            .store
            .save_promotion_state(
                &stored.project,
                &stored.name,
                &stored.state,
                Phase::Errored,
                &message,
                now_millis(),
                None,
            )
            .await
        {
            tracing::error!(promotion = %stored.name, "cannot record the error: {save}");
        }
    }
    result
}

/// The handler the API runs calls with, for `principal` (the engine authorizes the call
/// first).
pub async fn call(
    shared: &Shared,
    principal: &barge_core::authz::Principal,
    c: ops::Call,
) -> Result<serde_json::Value> {
    let catalog = shared.catalog();
    let refresh = |p: &str, w: &str| shared.request_refresh(p, w);
    let health = shared.health.lock().map(|h| h.clone()).unwrap_or_default();
    let cx = ops::Context {
        store: &shared.store,
        catalog: &catalog,
        refresh: Some(&refresh),
        health: Some(&health),
        principal,
    };
    let out = ops::handle(&cx, c).await;
    // A queued promotion starts now rather than at the next tick.
    shared.wake.notify_one();
    out
}
