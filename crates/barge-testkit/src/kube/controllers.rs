//! Test controllers that move objects through the status fields the real controllers write,
//! on the test API server:
//! - [`argocd`]: runs a requested sync (`operation` → `status.operationState` Running →
//!   Succeeded with `syncResult.revision`, `status.sync` Synced at that revision), "applies" the
//!   revision through a callback, and only later reconciles health (`status.health`,
//!   `status.reconciledAt`), so the health right after a sync is the stale one from before it;
//! - [`rollouts`]: walks a Rollout's canary steps when its pod template changes (setWeight,
//!   pause with or without duration, analysis decided by a callback) to Healthy with the new
//!   ReplicaSet stable, or aborts to Degraded with Rollouts' message when the analysis fails.

use super::apiserver::{ApiServer, rfc3339};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(25);

fn now_rfc3339() -> String {
    rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

pub type Resolve = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;
pub type Apply = Arc<dyn Fn(&ApiServer, &Value, &str) + Send + Sync>;
pub type Health = Arc<dyn Fn(&ApiServer, &Value) -> (String, String) + Send + Sync>;

pub struct ArgoCdOptions {
    /// A source's repoURL and target revision → the revision synced (e.g. `git rev-parse`).
    pub resolve: Resolve,
    /// What syncing a revision does (e.g. update the Rollout its manifests describe).
    pub apply: Apply,
    /// The app's health when Argo CD reconciles it: (status, message).
    pub health: Health,
    /// How long the stale health stays after a sync finished, before the reconcile.
    pub stale_for: Duration,
    /// How long a sync runs.
    pub sync_takes: Duration,
}

impl Default for ArgoCdOptions {
    fn default() -> Self {
        ArgoCdOptions {
            resolve: Arc::new(|_, target| target.to_string()),
            apply: Arc::new(|_, _, _| {}),
            health: Arc::new(|_, _| ("Healthy".into(), String::new())),
            stale_for: Duration::from_millis(1500),
            sync_takes: Duration::from_millis(100),
        }
    }
}

/// Runs the Argo CD stand-in until the returned handle is aborted (or the test ends).
pub fn argocd(server: ApiServer, opts: ArgoCdOptions) -> tokio::task::JoinHandle<()> {
    server.clone().spawn(async move {
        // Per app: when the running sync started, and when the last sync finished.
        let mut started: HashMap<(String, String), Instant> = HashMap::new();
        let mut finished: HashMap<(String, String), Instant> = HashMap::new();
        loop {
            for app in server.list("argoproj.io", "applications") {
                let ns = app["metadata"]["namespace"].as_str().unwrap_or("").to_string();
                let name = app["metadata"]["name"].as_str().unwrap_or("").to_string();
                let key = (ns.clone(), name.clone());
                if !app["operation"].is_null() {
                    server.update("argoproj.io", "applications", &ns, &name, |a| {
                        let op = a["operation"].take();
                        a.as_object_mut().unwrap().remove("operation");
                        // The new target is not what is deployed: OutOfSync until the sync ends.
                        if op["sync"]["revision"] != a["status"]["sync"]["revision"] {
                            a["status"]["sync"]["status"] = json!("OutOfSync");
                        }
                        a["status"]["operationState"] =
                            json!({"operation": op, "phase": "Running", "startedAt": now_rfc3339()});
                        true
                    });
                    started.insert(key.clone(), Instant::now());
                    finished.remove(&key);
                    continue;
                }
                if app["status"]["operationState"]["phase"] == "Running"
                    && started.get(&key).is_some_and(|t| t.elapsed() >= opts.sync_takes)
                {
                    let source = &app["spec"]["source"];
                    let op_revision = app["status"]["operationState"]["operation"]["sync"]["revision"].as_str();
                    let target = op_revision.or(source["targetRevision"].as_str()).unwrap_or("HEAD");
                    let revision = (opts.resolve)(source["repoURL"].as_str().unwrap_or(""), target);
                    (opts.apply)(&server, &app, &revision);
                    server.update("argoproj.io", "applications", &ns, &name, |a| {
                        a["status"]["sync"] = json!({"status": "Synced", "revision": revision});
                        let op = &mut a["status"]["operationState"];
                        op["phase"] = json!("Succeeded");
                        op["message"] = json!("successfully synced (all tasks run)");
                        op["finishedAt"] = json!(now_rfc3339());
                        op["syncResult"] = json!({"revision": revision});
                        true
                    });
                    started.remove(&key);
                    finished.insert(key.clone(), Instant::now());
                    continue;
                }
                // The reconcile that refreshes health comes a while after the sync.
                if finished.get(&key).is_some_and(|t| t.elapsed() >= opts.stale_for) {
                    let (status, message) = (opts.health)(&server, &app);
                    let health = json!({"status": status, "message": message});
                    if app["status"]["health"] != health
                        || app["status"]["reconciledAt"].as_str()
                            < app["status"]["operationState"]["finishedAt"].as_str()
                    {
                        server.update("argoproj.io", "applications", &ns, &name, |a| {
                            a["status"]["health"] = health.clone();
                            a["status"]["reconciledAt"] = json!(now_rfc3339());
                            true
                        });
                    }
                }
            }
            tokio::time::sleep(TICK).await;
        }
    })
}

/// A short, stable hash of a pod template (the `rollouts-pod-template-hash`).
pub fn pod_hash(template: &Value) -> String {
    let text = template.to_string();
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

/// Decides an analysis step: (passed, message when it failed).
pub type Analysis = Arc<dyn Fn(&Value, &str) -> (bool, String) + Send + Sync>;

fn duration(s: &str) -> Duration {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().unwrap_or(0);
    match unit {
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        _ => Duration::from_secs(n),
    }
}

/// Runs the Argo Rollouts stand-in: each canary step takes `step_takes`.
pub fn rollouts(server: ApiServer, analysis: Analysis, step_takes: Duration) -> tokio::task::JoinHandle<()> {
    server.clone().spawn(async move {
        let mut next_step: HashMap<(String, String), Instant> = HashMap::new();
        let mut timed: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
        loop {
            for ro in server.list("argoproj.io", "rollouts") {
                let ns = ro["metadata"]["namespace"].as_str().unwrap_or("").to_string();
                let name = ro["metadata"]["name"].as_str().unwrap_or("").to_string();
                let key = (ns.clone(), name.clone());
                let generation = ro["metadata"]["generation"].as_i64().unwrap_or(1);
                let observed: i64 = ro["status"]["observedGeneration"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let status = &ro["status"];
                if generation > observed {
                    let hash = pod_hash(&ro["spec"]["template"]);
                    let stable = status["stableRS"].as_str().unwrap_or("").to_string();
                    server.update("argoproj.io", "rollouts", &ns, &name, |r| {
                        let s = &mut r["status"];
                        s["observedGeneration"] = json!(generation.to_string());
                        if stable.is_empty() || stable == hash {
                            // The first version (or no change to the pods): nothing to roll out.
                            *s = json!({"observedGeneration": generation.to_string(), "phase": "Healthy",
                                "currentPodHash": hash, "stableRS": hash, "currentStepIndex": 0});
                        } else {
                            s["phase"] = json!("Progressing");
                            s["message"] = json!("more replicas need to be updated");
                            s["currentPodHash"] = json!(hash);
                            s["currentStepIndex"] = json!(0);
                            s["abort"] = json!(false);
                            s["canary"] = json!({"weights": {"canary": {"weight": 0}}});
                            s.as_object_mut().unwrap().remove("pauseConditions");
                        }
                        true
                    });
                    next_step.insert(key, Instant::now() + step_takes);
                    continue;
                }
                let phase = status["phase"].as_str().unwrap_or("");
                if !matches!(phase, "Progressing" | "Paused") || status["abort"] == true {
                    continue;
                }
                if next_step.get(&key).is_some_and(|t| Instant::now() < *t) {
                    continue;
                }
                let steps = ro["spec"]["strategy"]["canary"]["steps"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let idx = status["currentStepIndex"].as_u64().unwrap_or(0) as usize;
                let hash = status["currentPodHash"].as_str().unwrap_or("").to_string();
                let mut wait = step_takes;
                // Decided before taking the server's lock: the callback may read objects.
                let verdict = steps
                    .get(idx)
                    .filter(|s| !s["analysis"].is_null())
                    .map(|_| analysis(&ro, &hash));
                server.update("argoproj.io", "rollouts", &ns, &name, |r| {
                    let s = &mut r["status"];
                    if idx >= steps.len() {
                        s["phase"] = json!("Healthy");
                        s["message"] = json!("");
                        s["stableRS"] = json!(hash);
                        s["canary"] = json!({"weights": {"canary": {"weight": 100}}});
                        return true;
                    }
                    let step = &steps[idx];
                    if let Some(w) = step["setWeight"].as_i64() {
                        s["canary"]["weights"]["canary"]["weight"] = json!(w);
                        s["currentStepIndex"] = json!(idx + 1);
                    } else if !step["pause"].is_null() {
                        if phase == "Paused" {
                            // A timed pause ends by itself; a manual one when a person removed
                            // its condition (`kubectl argo rollouts promote`).
                            if timed.remove(&key) {
                                s.as_object_mut().unwrap().remove("pauseConditions");
                            }
                            if s["pauseConditions"].as_array().is_none_or(Vec::is_empty) {
                                s["phase"] = json!("Progressing");
                                s["currentStepIndex"] = json!(idx + 1);
                            } else {
                                return false;
                            }
                        } else {
                            s["phase"] = json!("Paused");
                            s["message"] = json!("CanaryPauseStep");
                            s["pauseConditions"] = json!([{"reason": "CanaryPauseStep", "startTime": now_rfc3339()}]);
                            if let Some(d) = step["pause"]["duration"].as_str() {
                                wait = duration(d);
                                timed.insert(key.clone());
                            }
                        }
                    } else if let Some((passed, why)) = verdict {
                        if passed {
                            s["currentStepIndex"] = json!(idx + 1);
                        } else {
                            s["abort"] = json!(true);
                            s["phase"] = json!("Degraded");
                            s["message"] = json!(format!(
                                "RolloutAborted: Rollout aborted update to revision {generation}: {why}"
                            ));
                            s["canary"]["weights"]["canary"]["weight"] = json!(0);
                        }
                    } else {
                        s["currentStepIndex"] = json!(idx + 1);
                    }
                    true
                });
                next_step.insert(key, Instant::now() + wait);
            }
            tokio::time::sleep(TICK).await;
        }
    })
}

/// Runs the Job controller stand-in: a Job completes `takes` after it is created, Failed when
/// one of its containers' command or args says `exit 1` (what the test templates use to fail),
/// Complete otherwise; a Job whose image is `does-not-exist` gets a pod stuck in
/// ImagePullBackOff and never finishes.
pub fn jobs(server: ApiServer, takes: Duration) -> tokio::task::JoinHandle<()> {
    server.clone().spawn(async move {
        let mut seen: HashMap<(String, String), Instant> = HashMap::new();
        loop {
            for job in server.list("batch", "jobs") {
                let ns = job["metadata"]["namespace"].as_str().unwrap_or("").to_string();
                let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
                if !job["status"]["conditions"].is_null() {
                    continue;
                }
                let since = *seen.entry((ns.clone(), name.clone())).or_insert_with(Instant::now);
                if since.elapsed() < takes {
                    continue;
                }
                let text = job["spec"]["template"]["spec"]["containers"].to_string();
                if text.contains("does-not-exist") {
                    // Its pod cannot pull the image: the Job never finishes.
                    if server.get("", "pods", &ns, &format!("{name}-pod")).is_none() {
                        server.put(
                            "",
                            "pods",
                            json!({"metadata": {"name": format!("{name}-pod"), "namespace": ns, "labels": {"job-name": name}},
                                "status": {"phase": "Pending", "containerStatuses": [{"name": "check", "state": {"waiting":
                                    {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"does-not-exist:1\""}}}]}}),
                        );
                    }
                    continue;
                }
                let failed = text.contains("exit 1");
                server.update("batch", "jobs", &ns, &name, |j| {
                    j["status"] = if failed {
                        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})
                    } else {
                        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
                    };
                    true
                });
            }
            tokio::time::sleep(TICK).await;
        }
    })
}

/// Decides an AnalysisRun: (phase, the value its one measurement per metric shows).
pub type RunVerdict = Arc<dyn Fn(&Value) -> (String, String) + Send + Sync>;

/// Runs the Argo Rollouts analysis controller stand-in: a new AnalysisRun is Running at once
/// and, `takes` later, gets the verdict's phase with one measurement per metric; a run whose
/// `spec.terminate` is set ends Successful with "Run Terminated", as in Rollouts.
pub fn analysis_runs(server: ApiServer, verdict: RunVerdict, takes: Duration) -> tokio::task::JoinHandle<()> {
    server.clone().spawn(async move {
        let mut started: HashMap<(String, String), Instant> = HashMap::new();
        loop {
            for run in server.list("argoproj.io", "analysisruns") {
                let ns = run["metadata"]["namespace"].as_str().unwrap_or("").to_string();
                let name = run["metadata"]["name"].as_str().unwrap_or("").to_string();
                let key = (ns.clone(), name.clone());
                let phase = run["status"]["phase"].as_str().unwrap_or("");
                if phase.is_empty() {
                    server.update("argoproj.io", "analysisruns", &ns, &name, |r| {
                        r["status"] = json!({"phase": "Running", "startedAt": now_rfc3339()});
                        true
                    });
                    started.insert(key, Instant::now());
                    continue;
                }
                if phase != "Running" {
                    continue;
                }
                if run["spec"]["terminate"] == true {
                    server.update("argoproj.io", "analysisruns", &ns, &name, |r| {
                        r["status"]["phase"] = json!("Successful");
                        r["status"]["message"] = json!("Run Terminated");
                        true
                    });
                    continue;
                }
                if started.get(&key).is_none_or(|t| t.elapsed() < takes) {
                    continue;
                }
                let (outcome, value) = verdict(&run);
                let results: Vec<Value> = run["spec"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let ok = outcome == "Successful";
                        json!({"name": m["name"], "phase": outcome, "count": 1,
                            "successful": u8::from(ok), "failed": u8::from(!ok),
                            "measurements": [{"phase": outcome, "value": value, "startedAt": now_rfc3339(), "finishedAt": now_rfc3339()}]})
                    })
                    .collect();
                server.update("argoproj.io", "analysisruns", &ns, &name, |r| {
                    r["status"]["phase"] = json!(outcome);
                    if outcome != "Successful" {
                        r["status"]["message"] = json!(format!(
                            "Metric \"{}\" assessed {outcome} due to failed (1) > failureLimit (0)",
                            results
                                .first()
                                .map_or(Value::Null, |m| m["name"].clone())
                                .as_str()
                                .unwrap_or("")
                        ));
                    }
                    r["status"]["metricResults"] = json!(results);
                    true
                });
            }
            tokio::time::sleep(TICK).await;
        }
    })
}
