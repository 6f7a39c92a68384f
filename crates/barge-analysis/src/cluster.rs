//! The in-cluster mode: instead of measuring itself, barge creates an Argo Rollouts
//! `AnalysisRun` (what Kargo does) and follows its phase; the cluster's Rollouts controller
//! measures. The run's status (`metricResults` with their counters and measurements) becomes
//! the same [`Report`] the native engine produces, so audit, `barge get stage` and rollback
//! do not care which mode ran. Secret arguments stay `valueFrom.secretKeyRef`: the cluster
//! resolves them, and their values never leave it.

use crate::{Measurement, MetricReport, Report};
use barge_core::analysis::{MetricState, Phase, args};
use barge_core::model::analysis::AnalysisTemplateSpec;
use barge_kube::{ANALYSIS_RUN, Clusters, KubeError, Objects, resource_version};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where and how runs are created.
#[derive(Clone)]
pub struct ClusterRun {
    pub clusters: Arc<Clusters>,
    pub context: Option<String>,
    pub namespace: String,
    /// `metadata.generateName`.
    pub name_prefix: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The AnalysisRun for a (merged) template with the given argument values: given values and
/// template defaults as `value`, the rest (secrets) as the template's `valueFrom`.
pub fn analysis_run(spec: &AnalysisTemplateSpec, given: &BTreeMap<String, String>, target: &ClusterRun) -> Value {
    let run_args: Vec<Value> = spec
        .args
        .iter()
        .map(|a| match given.get(&a.name).or(a.value.as_ref()) {
            Some(v) => json!({"name": a.name, "value": v}),
            None => json!({"name": a.name, "valueFrom": a.value_from}),
        })
        .collect();
    let mut run = json!({
        "metadata": {
            "generateName": target.name_prefix,
            "namespace": target.namespace,
            "labels": target.labels,
            "annotations": target.annotations,
        },
        "spec": {
            "args": run_args,
            "metrics": spec.metrics,
            "dryRun": spec.dry_run,
            "measurementRetention": spec.measurement_retention,
        },
    });
    strip_nulls(&mut run);
    run
}

/// Drops null fields (unset optional fields of the template types), as `kubectl` would send it.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn phase(text: &str) -> Phase {
    match text {
        "Successful" => Phase::Successful,
        "Failed" => Phase::Failed,
        "Error" => Phase::Error,
        "Inconclusive" => Phase::Inconclusive,
        "Running" => Phase::Running,
        _ => Phase::Pending,
    }
}

fn millis(rfc3339: &Value) -> i64 {
    rfc3339
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp_millis())
}

/// The report a run's status says.
pub fn report_of(run: &Value, spec: &AnalysisTemplateSpec) -> Report {
    let status = &run["status"];
    let metrics = spec
        .metrics
        .iter()
        .map(|m| {
            let result = status["metricResults"]
                .as_array()
                .and_then(|r| r.iter().find(|x| x["name"] == m.name.as_str()))
                .cloned()
                .unwrap_or(Value::Null);
            let n = |k: &str| result[k].as_u64().unwrap_or(0);
            let measurements: Vec<Measurement> = result["measurements"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| Measurement {
                    phase: phase(x["phase"].as_str().unwrap_or("")),
                    started_at: millis(&x["startedAt"]),
                    finished_at: millis(&x["finishedAt"]),
                    value: x["value"].as_str().map(str::to_string),
                    message: x["message"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
                })
                .collect();
            MetricReport {
                name: m.name.clone(),
                provider: m.provider.names().first().map_or("", |v| v).to_string(),
                resolved: String::new(),
                success_condition: m.success_condition.clone(),
                failure_condition: m.failure_condition.clone(),
                dry_run: args::is_dry_run(spec, &m.name),
                phase: phase(result["phase"].as_str().unwrap_or("Pending")),
                message: result["message"].as_str().unwrap_or("").to_string(),
                counters: MetricState {
                    count: n("count"),
                    successful: n("successful"),
                    failed: n("failed"),
                    inconclusive: n("inconclusive"),
                    error: n("error"),
                    consecutive_error: n("consecutiveError"),
                    consecutive_success: n("consecutiveSuccess"),
                    ..MetricState::default()
                },
                measurements,
            }
        })
        .collect();
    Report {
        phase: phase(status["phase"].as_str().unwrap_or("Pending")),
        message: status["message"].as_str().unwrap_or("").to_string(),
        started_at: millis(&status["startedAt"]),
        finished_at: None,
        stopped: false,
        metrics,
    }
}

/// Creates the AnalysisRun and follows it (WATCH) to a completed phase. Each new measurement
/// goes to `observe`. Setting `stop` sets the run's `spec.terminate` (Rollouts' abort) and
/// returns a stopped report.
pub async fn run(
    target: &ClusterRun,
    spec: &AnalysisTemplateSpec,
    given: &BTreeMap<String, String>,
    mut stop: watch::Receiver<bool>,
    mut observe: impl FnMut(&MetricReport, &Measurement),
) -> Result<(String, Report), KubeError> {
    let client = target.clusters.client(target.context.as_deref()).await?;
    let runs = Objects::new(client, ANALYSIS_RUN, &target.namespace);
    let created = runs.create(&analysis_run(spec, given, target)).await?;
    let name = created["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut current = created;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let mut report = report_of(&current, spec);
        for m in &report.metrics {
            let before = seen.insert(m.name.clone(), m.measurements.len()).unwrap_or(0);
            for x in m.measurements.iter().skip(before) {
                observe(m, x);
            }
        }
        if report.phase.is_completed() {
            report.finished_at = Some(chrono::Utc::now().timestamp_millis());
            return Ok((name, report));
        }
        let rv = resource_version(&current).to_string();
        let next = tokio::select! {
            next = runs.next_change(&name, &rv, Duration::from_secs(60)) => next?,
            _ = crate::run::until_stopped(&mut stop) => {
                runs.merge_patch(&name, &json!({"spec": {"terminate": true}})).await?;
                report.stopped = true;
                report.message = "Run Terminated".into();
                report.finished_at = Some(chrono::Utc::now().timestamp_millis());
                return Ok((name, report));
            }
        };
        current = match next {
            Some(changed) => changed,
            None => runs.get(&name).await?,
        };
    }
}
