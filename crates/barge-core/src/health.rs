//! Reading health from the status fields Argo CD and Argo Rollouts write, purely: is an
//! Application synced and healthy at the promoted revision, is a Rollout's promoted pod
//! template stable, and if not, why (still waiting, or failed for good).
//!
//! The stale-health trap (Kargo #1411): right after a sync, Argo CD may still show the
//! health it computed *before* the sync. Health counts only when `status.reconciledAt` is
//! not before the sync operation's `finishedAt`.

use serde_json::Value;

/// What a health check says now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Done; the text says what was seen.
    Ready(String),
    /// Not yet; the text says what is awaited.
    Waiting(String),
    /// Will not get there by waiting (a failed sync, Degraded, an aborted Rollout).
    Failed(String),
}

/// What `argocd-wait` can wait for (Kargo's `waitFor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppCondition {
    /// Health is Healthy (and observed after the last sync).
    Health,
    /// Sync status is Synced (at the wanted revision, if one is given).
    Sync,
    /// No sync operation is pending or running, and the last one succeeded.
    Operation,
    /// Health is Suspended.
    Suspended,
    /// Health is Degraded.
    Degraded,
}

impl AppCondition {
    pub fn parse(s: &str) -> Option<AppCondition> {
        Some(match s {
            "health" => AppCondition::Health,
            "sync" => AppCondition::Sync,
            "operation" => AppCondition::Operation,
            "suspended" => AppCondition::Suspended,
            "degraded" => AppCondition::Degraded,
            _ => return None,
        })
    }

    /// Kargo's default: `[health, sync, operation]`.
    pub const DEFAULT: [AppCondition; 3] = [AppCondition::Health, AppCondition::Sync, AppCondition::Operation];
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

/// The revisions an Application is synced to (`status.sync.revision`, or `revisions` for
/// multi-source apps).
fn synced_revisions(app: &Value) -> Vec<&str> {
    let sync = &app["status"]["sync"];
    match sync["revisions"].as_array() {
        Some(list) if !list.is_empty() => list.iter().filter_map(Value::as_str).collect(),
        _ => sync["revision"].as_str().into_iter().collect(),
    }
}

/// Whether an Application meets `conditions`. `revision` is the revision the promotion wants
/// it synced to (a commit, a tag or chart version), when known. `sync_marker` identifies the
/// sync barge requested (a value in `operation.info`): until that sync has run, nothing about
/// the app's status is trusted.
pub fn argocd_app(
    app: &Value,
    conditions: &[AppCondition],
    revision: Option<&str>,
    sync_marker: Option<&str>,
) -> Readiness {
    let name = text(app, &["metadata", "name"]);
    let status = &app["status"];
    let op = &status["operationState"];
    let op_phase = text(op, &["phase"]);
    let has_marker = |operation: &Value| {
        sync_marker.is_none_or(|m| {
            operation["info"]
                .as_array()
                .is_some_and(|info| info.iter().any(|i| i["value"].as_str() == Some(m)))
        })
    };
    let needs_operation = conditions
        .iter()
        .any(|c| matches!(c, AppCondition::Operation | AppCondition::Health | AppCondition::Sync));
    if needs_operation {
        if !app["operation"].is_null() {
            return Readiness::Waiting(format!(
                "Application {name}: the sync is requested; Argo CD has not started it"
            ));
        }
        if sync_marker.is_some() && !has_marker(&op["operation"]) {
            return Readiness::Waiting(format!(
                "Application {name}: waiting for Argo CD to run the requested sync"
            ));
        }
        match op_phase {
            "Running" | "Terminating" => {
                return Readiness::Waiting(format!("Application {name}: sync {}", op_phase.to_lowercase()));
            }
            "Failed" | "Error" if conditions.contains(&AppCondition::Operation) || sync_marker.is_some() => {
                return Readiness::Failed(format!(
                    "Application {name}: sync {op_phase}: {}",
                    text(op, &["message"])
                ));
            }
            _ => {}
        }
    }
    let finished = text(op, &["finishedAt"]);
    let reconciled = text(status, &["reconciledAt"]);
    // RFC 3339 UTC timestamps as Argo CD writes them compare correctly as text.
    let health_is_fresh = finished.is_empty() || (!reconciled.is_empty() && reconciled >= finished);
    let health = text(status, &["health", "status"]);
    let health_message = text(status, &["health", "message"]);
    let mut seen = Vec::new();
    for c in conditions {
        match c {
            AppCondition::Operation => seen.push(format!(
                "last sync {}",
                if op_phase.is_empty() { "none" } else { op_phase }
            )),
            AppCondition::Sync => {
                let sync = text(status, &["sync", "status"]);
                if sync != "Synced" {
                    return Readiness::Waiting(format!(
                        "Application {name}: {} (waiting for Synced)",
                        if sync.is_empty() { "no sync status yet" } else { sync }
                    ));
                }
                let revisions = synced_revisions(app);
                if let Some(want) = revision.filter(|w| !w.is_empty())
                    && !revisions.contains(&want)
                {
                    return Readiness::Waiting(format!(
                        "Application {name}: synced at {}, waiting for {want}",
                        revisions.join(", ")
                    ));
                }
                seen.push(format!("Synced at {}", revisions.join(", ")));
            }
            AppCondition::Health | AppCondition::Suspended | AppCondition::Degraded => {
                if !health_is_fresh {
                    return Readiness::Waiting(format!(
                        "Application {name}: health {health} was computed before the sync finished; waiting for Argo CD to reconcile"
                    ));
                }
                let want = match c {
                    AppCondition::Health => "Healthy",
                    AppCondition::Suspended => "Suspended",
                    _ => "Degraded",
                };
                if health == "Degraded" && *c != AppCondition::Degraded {
                    return Readiness::Failed(format!("Application {name} is Degraded: {health_message}"));
                }
                if health != want {
                    return Readiness::Waiting(format!(
                        "Application {name}: {} (waiting for {want})",
                        if health.is_empty() { "no health yet" } else { health }
                    ));
                }
                seen.push(health.to_string());
            }
        }
    }
    Readiness::Ready(format!("Application {name}: {}", seen.join(", ")))
}

/// Whether a Rollout's current pod template is fully rolled out: the controller has seen the
/// latest spec, the phase is Healthy and the stable ReplicaSet is the current one. An aborted
/// or Degraded Rollout fails with the controller's message; a pause says who must act.
pub fn rollout(ro: &Value) -> Readiness {
    let name = text(ro, &["metadata", "name"]);
    let status = &ro["status"];
    let generation = ro["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = match &status["observedGeneration"] {
        Value::String(s) => s.parse().unwrap_or(-1),
        v => v.as_i64().unwrap_or(-1),
    };
    if observed < generation {
        return Readiness::Waiting(format!(
            "Rollout {name}: the controller has not seen generation {generation} yet"
        ));
    }
    let message = text(status, &["message"]);
    let phase = text(status, &["phase"]);
    if status["abort"] == true || phase == "Degraded" {
        let why = if message.is_empty() { "aborted" } else { message };
        return Readiness::Failed(format!(
            "Rollout {name} is {}: {why}",
            if phase.is_empty() { "Degraded" } else { phase }
        ));
    }
    let steps = ro["spec"]["strategy"]["canary"]["steps"].as_array().map_or(0, Vec::len);
    let step = status["currentStepIndex"].as_i64();
    let at_step = match step {
        Some(i) if steps > 0 => format!(" at step {}/{steps}", (i as usize + 1).min(steps)),
        _ => String::new(),
    };
    let weight = status["canary"]["weights"]["canary"]["weight"].as_i64();
    let weight = weight.map(|w| format!(", canary weight {w}%")).unwrap_or_default();
    let hash = text(status, &["currentPodHash"]);
    if phase == "Paused" || !status["pauseConditions"].as_array().is_none_or(Vec::is_empty) {
        let reasons: Vec<&str> = status["pauseConditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["reason"].as_str())
            .collect();
        let manual = reasons.contains(&"CanaryPauseStep") && !paused_with_duration(ro);
        let who = if manual {
            format!("; a person must promote it (kubectl argo rollouts promote {name})")
        } else if reasons.contains(&"InconclusiveAnalysis") {
            format!("; the analysis was inconclusive: promote or abort it (kubectl argo rollouts promote|abort {name})")
        } else {
            String::new()
        };
        return Readiness::Waiting(format!(
            "Rollout {name} is paused{at_step}{weight} ({}){who}",
            if reasons.is_empty() {
                "paused".to_string()
            } else {
                reasons.join(", ")
            }
        ));
    }
    let stable = text(status, &["stableRS"]);
    if phase == "Healthy" && !hash.is_empty() && stable == hash {
        return Readiness::Ready(format!("Rollout {name} is Healthy at pod template {hash}"));
    }
    Readiness::Waiting(format!(
        "Rollout {name} is {}{at_step}{weight}{}",
        if phase.is_empty() { "starting" } else { phase },
        if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        }
    ))
}

/// Whether the pause step the Rollout is at has a duration (it resumes by itself).
fn paused_with_duration(ro: &Value) -> bool {
    let Some(i) = ro["status"]["currentStepIndex"].as_u64() else {
        return false;
    };
    !ro["spec"]["strategy"]["canary"]["steps"][i as usize]["pause"]["duration"].is_null()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(status: Value) -> Value {
        json!({"metadata": {"name": "guestbook-dev"}, "status": status})
    }

    fn synced(revision: &str, health: &str, finished: &str, reconciled: &str) -> Value {
        app(json!({
            "sync": {"status": "Synced", "revision": revision},
            "health": {"status": health, "message": "Deployment guestbook exceeded its progress deadline"},
            "operationState": {"phase": "Succeeded", "finishedAt": finished, "operation": {"info": [{"name": "Reason", "value": "promotion p1"}]}},
            "reconciledAt": reconciled,
        }))
    }

    const ALL: &[AppCondition] = &AppCondition::DEFAULT;

    #[test]
    fn an_app_is_ready_when_synced_and_healthy_at_the_revision_after_the_sync() {
        let ok = synced("abc", "Healthy", "2026-11-22T10:00:05Z", "2026-11-22T10:00:09Z");
        assert!(matches!(
            argocd_app(&ok, ALL, Some("abc"), Some("promotion p1")),
            Readiness::Ready(_)
        ));
        match argocd_app(&ok, ALL, Some("def"), None) {
            Readiness::Waiting(w) => assert!(w.contains("synced at abc, waiting for def"), "{w}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stale_health_from_before_the_sync_is_not_trusted() {
        let stale = synced("abc", "Healthy", "2026-11-22T10:00:05Z", "2026-11-22T10:00:01Z");
        match argocd_app(&stale, ALL, Some("abc"), Some("promotion p1")) {
            Readiness::Waiting(w) => assert!(w.contains("computed before the sync finished"), "{w}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pending_or_foreign_sync_is_awaited_and_a_failed_one_fails() {
        let mut pending = synced("old", "Healthy", "2026-11-22T09:00:00Z", "2026-11-22T09:00:01Z");
        pending["operation"] = json!({"sync": {"revision": "abc"}});
        assert!(
            matches!(argocd_app(&pending, ALL, Some("abc"), None), Readiness::Waiting(w) if w.contains("has not started"))
        );
        let earlier = synced("old", "Healthy", "2026-11-22T09:00:00Z", "2026-11-22T09:00:01Z");
        assert!(
            matches!(argocd_app(&earlier, ALL, None, Some("promotion p2")), Readiness::Waiting(w) if w.contains("run the requested sync")),
            "an older sync's success says nothing about ours"
        );
        let mut failed = synced("abc", "Healthy", "2026-11-22T10:00:05Z", "2026-11-22T10:00:09Z");
        failed["status"]["operationState"]["phase"] = json!("Failed");
        failed["status"]["operationState"]["message"] = json!("one or more objects failed to apply");
        assert_eq!(
            argocd_app(&failed, ALL, None, Some("promotion p1")),
            Readiness::Failed("Application guestbook-dev: sync Failed: one or more objects failed to apply".into())
        );
    }

    #[test]
    fn degraded_fails_fast_unless_it_is_what_is_awaited() {
        let degraded = synced("abc", "Degraded", "2026-11-22T10:00:05Z", "2026-11-22T10:00:09Z");
        assert!(
            matches!(argocd_app(&degraded, ALL, Some("abc"), None), Readiness::Failed(f) if f.contains("exceeded its progress deadline"))
        );
        assert!(matches!(
            argocd_app(&degraded, &[AppCondition::Degraded], None, None),
            Readiness::Ready(_)
        ));
        let progressing = synced("abc", "Progressing", "2026-11-22T10:00:05Z", "2026-11-22T10:00:09Z");
        assert!(
            matches!(argocd_app(&progressing, ALL, Some("abc"), None), Readiness::Waiting(w) if w.contains("Progressing (waiting for Healthy)"))
        );
        assert!(matches!(
            argocd_app(&progressing, &[AppCondition::Sync], Some("abc"), None),
            Readiness::Ready(_)
        ));
    }

    fn ro(status: Value) -> Value {
        json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 80}, {"pause": {"duration": "30s"}}]}}},
            "status": status,
        })
    }

    #[test]
    fn a_rollout_is_ready_when_healthy_with_the_current_template_stable() {
        let healthy =
            ro(json!({"observedGeneration": "2", "phase": "Healthy", "currentPodHash": "h2", "stableRS": "h2"}));
        assert_eq!(
            rollout(&healthy),
            Readiness::Ready("Rollout web is Healthy at pod template h2".into())
        );
        let old = ro(json!({"observedGeneration": "1", "phase": "Healthy", "currentPodHash": "h1", "stableRS": "h1"}));
        assert!(matches!(rollout(&old), Readiness::Waiting(w) if w.contains("has not seen generation 2")));
        let progressing = ro(
            json!({"observedGeneration": 2, "phase": "Progressing", "currentPodHash": "h2", "stableRS": "h1", "currentStepIndex": 2, "canary": {"weights": {"canary": {"weight": 80}}}}),
        );
        assert_eq!(
            rollout(&progressing),
            Readiness::Waiting("Rollout web is Progressing at step 3/4, canary weight 80%".into())
        );
    }

    #[test]
    fn pauses_say_who_must_act_and_aborts_fail_with_the_controllers_message() {
        let manual = ro(
            json!({"observedGeneration": 2, "phase": "Paused", "currentPodHash": "h2", "stableRS": "h1", "currentStepIndex": 1, "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
        );
        assert!(
            matches!(rollout(&manual), Readiness::Waiting(w) if w.contains("paused at step 2/4") && w.contains("kubectl argo rollouts promote web"))
        );
        let timed = ro(
            json!({"observedGeneration": 2, "phase": "Paused", "currentStepIndex": 3, "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
        );
        assert!(matches!(rollout(&timed), Readiness::Waiting(w) if !w.contains("a person")));
        let aborted = ro(
            json!({"observedGeneration": 2, "phase": "Degraded", "abort": true, "message": "RolloutAborted: Rollout aborted update to revision 2: Metric \"success-rate\" assessed Failed due to failed (3) > failureLimit (2)"}),
        );
        assert_eq!(
            rollout(&aborted),
            Readiness::Failed("Rollout web is Degraded: RolloutAborted: Rollout aborted update to revision 2: Metric \"success-rate\" assessed Failed due to failed (3) > failureLimit (2)".into())
        );
    }
}
