//! One analysis run, driven to its final phase: Rollouts' reconcile loop without a cluster.
//!
//! Each pass assesses every metric (`MetricState::assess`), stops when the run is terminating
//! (a non-dry-run metric Failed, Error or Inconclusive, or the caller asked to stop) or every
//! metric is complete, otherwise measures the metrics that are due — concurrently — and
//! sleeps until the next one is. Measurements are reported to the caller as they land, so a
//! daemon can audit them and a terminal can show them.

use crate::http::Http;
use crate::job::JobTarget;
use crate::{MeasureError, job, prometheus, web};
use barge_core::analysis::{self, Limits, MeasuredValue, MetricState, Phase, args};
use barge_core::model::analysis::{AnalysisTemplateSpec, Metric};
use barge_core::secret::redact_values;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A run ready to start: metrics with arguments substituted and limits checked.
#[derive(Clone, Debug)]
pub struct Analysis {
    metrics: Vec<Prepared>,
    secrets: Vec<String>,
}

#[derive(Clone, Debug)]
struct Prepared {
    metric: Metric,
    limits: Limits,
    dry_run: bool,
    retention: usize,
}

impl Analysis {
    /// Prepares a run of `spec` (one template, or several merged with [`args::merge`]) with
    /// resolved arguments. Everything Rollouts would refuse when creating the AnalysisRun is
    /// refused here, before any measurement.
    pub fn prepare(spec: &AnalysisTemplateSpec, resolved: &args::Resolved) -> Result<Analysis, String> {
        if spec.metrics.is_empty() {
            return Err("the analysis has no metrics".into());
        }
        let mut metrics = Vec::new();
        for m in &spec.metrics {
            let metric = args::substitute(m, resolved)?;
            let limits = Limits::from_metric(&metric).map_err(|e| format!("metric {:?}: {e}", m.name))?;
            match metric.provider.names().as_slice() {
                ["prometheus"] | ["web"] | ["job"] => {}
                [other] => return Err(format!("metric {:?}: provider {other} is not supported", m.name)),
                [] => return Err(format!("metric {:?} has no provider", m.name)),
                many => {
                    return Err(format!(
                        "metric {:?} has several providers ({}); it needs exactly one",
                        m.name,
                        many.join(", ")
                    ));
                }
            }
            metrics.push(Prepared {
                dry_run: args::is_dry_run(spec, &m.name),
                retention: args::retention(spec, &m.name),
                metric,
                limits,
            });
        }
        Ok(Analysis {
            metrics,
            secrets: resolved.secrets.clone(),
        })
    }
}

/// What measurements can reach: HTTP (Prometheus, web metrics) and, for Job metrics, a
/// cluster.
#[derive(Clone, Default)]
pub struct Providers {
    pub http: Http,
    /// Where Job metrics run; without it, a run with one fails at once.
    pub jobs: Option<JobTarget>,
}

impl Providers {
    pub fn new(http: Http) -> Providers {
        Providers { http, jobs: None }
    }
}

impl Analysis {
    /// Whether a metric runs as a Kubernetes Job.
    pub fn needs_cluster(&self) -> bool {
        self.metrics.iter().any(|p| p.metric.provider.job.is_some())
    }
}

/// One measurement, as stored and shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub phase: Phase,
    /// Unix milliseconds.
    pub started_at: i64,
    pub finished_at: i64,
    /// The measured value as Rollouts formats it (`[0.97]`); none when the provider failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why it is Error, or the provider's warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One metric of a run: what it asked, how it is judged, its counters and measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricReport {
    pub name: String,
    pub provider: String,
    /// The query or request after argument substitution (secrets redacted).
    pub resolved: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    pub phase: Phase,
    #[serde(default)]
    pub message: String,
    pub counters: MetricState,
    /// The latest measurements (`measurementRetention`, default 10), oldest first.
    pub measurements: Vec<Measurement>,
}

/// A finished (or running) analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub phase: Phase,
    #[serde(default)]
    pub message: String,
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// The caller stopped the run (an abort), rather than it ending by itself.
    #[serde(default)]
    pub stopped: bool,
    pub metrics: Vec<MetricReport>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Resolves once `stop` becomes true; never, if its sender is gone.
pub(crate) async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the analysis to its final phase. `observe` sees every measurement as it lands (with the
/// metric's state after it). Setting `stop` to true terminates the run the way Rollouts'
/// `spec.terminate` does: in-flight measurements are dropped, metrics without a measurement
/// count as Successful, and the report says `stopped`.
pub async fn run(
    analysis: &Analysis,
    providers: &Providers,
    mut stop: watch::Receiver<bool>,
    mut observe: impl FnMut(&MetricReport, &Measurement),
) -> Report {
    let redact = |s: &str| redact_values(s, &analysis.secrets);
    let started = now_ms();
    let mut report = Report {
        phase: Phase::Pending,
        message: String::new(),
        started_at: started,
        finished_at: None,
        stopped: false,
        metrics: analysis
            .metrics
            .iter()
            .map(|p| {
                let m = &p.metric;
                let (provider, resolved) = if let Some(q) = &m.provider.prometheus {
                    ("prometheus", q.query.clone().unwrap_or_default())
                } else if let Some(w) = &m.provider.web {
                    ("web", web::describe(w))
                } else if let Some(j) = &m.provider.job {
                    ("job", job_summary(j))
                } else {
                    ("", String::new())
                };
                MetricReport {
                    name: m.name.clone(),
                    provider: provider.to_string(),
                    resolved: redact(resolved.trim()),
                    success_condition: m.success_condition.clone(),
                    failure_condition: m.failure_condition.clone(),
                    dry_run: p.dry_run,
                    phase: Phase::Pending,
                    message: String::new(),
                    counters: MetricState::default(),
                    measurements: Vec::new(),
                }
            })
            .collect(),
    };
    if analysis.needs_cluster() {
        // Without a cluster every Job measurement would error: say so once, at once.
        let unreachable = match &providers.jobs {
            None => {
                Some("job metrics need a Kubernetes cluster: set KUBECONFIG (or run barge in the cluster)".to_string())
            }
            Some(t) => t
                .clusters
                .client(t.context.as_deref())
                .await
                .err()
                .map(|e| format!("job metrics: {e}")),
        };
        if let Some(message) = unreachable {
            report.phase = Phase::Error;
            report.message = message;
            report.finished_at = Some(now_ms());
            return report;
        }
    }
    loop {
        let flags: Vec<(Phase, bool)> = report.metrics.iter().map(|m| (m.phase, m.dry_run)).collect();
        if report.stopped || analysis::terminating(&flags) {
            for (m, p) in report.metrics.iter_mut().zip(&analysis.metrics) {
                m.phase = m.counters.assess(&p.limits, true);
                m.message.clone_from(&m.counters.message);
            }
            break;
        }
        if report.metrics.iter().all(|m| m.phase.is_completed()) {
            break;
        }
        let now = now_ms();
        let next: Vec<Option<i64>> = report
            .metrics
            .iter()
            .zip(&analysis.metrics)
            .map(|(m, p)| m.counters.next_due(&p.limits, started))
            .collect();
        let due: Vec<usize> = (0..next.len()).filter(|&i| next[i].is_some_and(|t| t <= now)).collect();
        if due.is_empty() {
            let Some(wake) = next.iter().flatten().min() else {
                break;
            };
            let wait = std::time::Duration::from_millis((wake - now).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = until_stopped(&mut stop) => report.stopped = true,
            }
            continue;
        }
        let mut running = JoinSet::new();
        for i in due {
            let metric = analysis.metrics[i].metric.clone();
            let providers = providers.clone();
            let counters = &report.metrics[i].counters;
            let n = counters.count + counters.error + 1;
            running.spawn(async move {
                let started_at = now_ms();
                let outcome = measure(&providers, &metric, n).await;
                (i, started_at, now_ms(), outcome)
            });
        }
        loop {
            let joined = tokio::select! {
                joined = running.join_next() => joined,
                _ = until_stopped(&mut stop) => {
                    report.stopped = true;
                    running.abort_all();
                    None
                }
            };
            let Some(joined) = joined else { break };
            let Ok((i, started_at, finished_at, outcome)) = joined else {
                continue;
            };
            let prepared = &analysis.metrics[i];
            let m = &mut report.metrics[i];
            let measurement = match outcome {
                Ok(Measured { value, warnings, phase }) => {
                    let (phase, error) = match phase {
                        // A Job decides its own outcome; conditions do not apply.
                        Some(p) => (p, None),
                        None => analysis::evaluate(
                            prepared.metric.success_condition.as_deref(),
                            prepared.metric.failure_condition.as_deref(),
                            &value,
                        ),
                    };
                    let message = error.or_else(|| (!warnings.is_empty()).then(|| warnings.join("; ")));
                    Measurement {
                        phase,
                        started_at,
                        finished_at,
                        value: Some(redact(&value.shown())),
                        message: message.map(|s| redact(&s)),
                    }
                }
                Err(e) => {
                    tracing::debug!(metric = %m.name, class = %e.class(), "measurement failed");
                    Measurement {
                        phase: Phase::Error,
                        started_at,
                        finished_at,
                        value: None,
                        message: Some(redact(&e.to_string())),
                    }
                }
            };
            m.counters.record(measurement.phase, finished_at);
            m.phase = m.counters.assess(&prepared.limits, false);
            m.message.clone_from(&m.counters.message);
            m.measurements.push(measurement);
            let excess = m.measurements.len().saturating_sub(prepared.retention);
            m.measurements.drain(..excess);
            if let Some(last) = m.measurements.last() {
                observe(m, last);
            }
        }
    }
    let flags: Vec<(Phase, bool)> = report.metrics.iter().map(|m| (m.phase, m.dry_run)).collect();
    report.phase = analysis::run_phase(&flags);
    report.message = if report.stopped {
        "Run Terminated".to_string()
    } else {
        report
            .metrics
            .iter()
            .filter(|m| !m.dry_run && m.phase == report.phase && report.phase != Phase::Successful)
            .map(|m| format!("Metric {:?} {}", m.name, m.message.trim_start_matches("Metric ")))
            .next()
            .unwrap_or_default()
    };
    report.finished_at = Some(now_ms());
    report
}

/// What one measurement produced: a value, the provider's warnings, and the phase when the
/// provider decides it itself (a Job).
struct Measured {
    value: MeasuredValue,
    warnings: Vec<String>,
    phase: Option<Phase>,
}

async fn measure(providers: &Providers, metric: &Metric, n: u64) -> Result<Measured, MeasureError> {
    let http: &Http = &providers.http;
    if let Some(p) = &metric.provider.prometheus {
        let m = prometheus::measure(http, p).await?;
        Ok(Measured {
            value: m.value,
            warnings: m.warnings,
            phase: None,
        })
    } else if let Some(w) = &metric.provider.web {
        Ok(Measured {
            value: web::measure(http, w).await?,
            warnings: Vec::new(),
            phase: None,
        })
    } else if let (Some(j), Some(target)) = (&metric.provider.job, &providers.jobs) {
        let (phase, value) = job::measure(target, &metric.name, n, j).await?;
        Ok(Measured {
            value,
            warnings: Vec::new(),
            phase: Some(phase),
        })
    } else {
        Err(MeasureError::Invalid(format!(
            "metric {:?} has no provider barge can measure",
            metric.name
        )))
    }
}

/// `Job: <image> <command…>` for the report.
fn job_summary(j: &barge_core::model::analysis::JobMetric) -> String {
    let spec = j.spec.clone().unwrap_or_default();
    let containers = spec["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<String> = containers
        .iter()
        .map(|c| {
            let words: Vec<String> = c["command"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(c["args"].as_array().into_iter().flatten())
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect();
            format!("{} {}", c["image"].as_str().unwrap_or("?"), words.join(" "))
                .trim()
                .to_string()
        })
        .collect();
    format!("Job: {}", shown.join("; "))
}
