//! `GET /metrics`: the daemon's Prometheus metrics, in the OpenMetrics text format, from a
//! registry this daemon owns (no process-global one: two daemons in one test process count
//! apart).
//!
//! The domain figures are counted from the engine's one event sink ([`Metrics`] is its
//! [`MetricsHook`]): what happened is counted where it is announced, never at call sites.
//! The few figures that are no domain event are fed by the one place that knows them:
//! discovery passes by the discovery worker ([`Metrics::discovered`]), webhook deliveries by
//! a layer around the webhook route ([`count_deliveries`]), and the work waiting or running
//! in the store is read when Prometheus scrapes ([`scrape`]).
//!
//! Labels are bounded by the definitions (project, Stage, Warehouse, step kind, analysis
//! metric names) or by fixed sets (phases, outcomes, providers): never a Freight, promotion
//! or verification name, a URL or free text. docs/reference/metrics.md lists every series.

use crate::api::Api;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use barge_core::analysis::VerificationPhase;
use barge_engine::events::{Event, MetricsHook};
use barge_store::Store;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Labels<const N: usize> = [(&'static str, String); N];
type Histograms<const N: usize> = Family<Labels<N>, Histogram, fn() -> Histogram>;

/// Histograms of things that take seconds to an hour: promotions, discoveries.
fn seconds_to_hours() -> Histogram {
    // 0.1 s to about 4 h.
    Histogram::new(exponential_buckets(0.1, 2.5, 14))
}

/// Histograms of steps: tens of milliseconds (a file edit) to hours (a PR wait).
fn steps() -> Histogram {
    // 0.05 s to about 2.5 h.
    Histogram::new(exponential_buckets(0.05, 3.0, 12))
}

/// Histograms of delivery spans: minutes to months.
fn minutes_to_months() -> Histogram {
    // 1 min to about 4 months.
    Histogram::new(exponential_buckets(60.0, 3.0, 12))
}

/// Starts remembered (to measure a duration when its end is announced) are dropped after
/// this: a promotion aborted elsewhere never announces its end here.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The daemon's metrics: its registry and the series the event hook and the workers feed.
pub struct Metrics {
    registry: Registry,
    store: Store,
    promotions: Family<Labels<3>, Counter>,
    promotion_duration: Histograms<2>,
    step_duration: Histograms<2>,
    freight_minted: Family<Labels<2>, Counter>,
    verifications: Family<Labels<3>, Counter>,
    measurements: Family<Labels<4>, Counter>,
    discoveries: Family<Labels<3>, Counter>,
    discovery_duration: Histograms<2>,
    webhook_deliveries: Family<Labels<2>, Counter>,
    config_reloads: Family<Labels<1>, Counter>,
    access_denied: Family<Labels<1>, Counter>,
    lead_time: Histograms<2>,
    time_to_restore: Histograms<2>,
    work: Family<Labels<2>, Gauge>,
    registry_requests: Family<Labels<2>, Counter>,
    registry_waits: Histograms<2>,
    git_requests: Family<Labels<3>, Counter>,
    git_request_duration: Histograms<2>,
    /// When this process saw each running promotion start (by project and name).
    promotion_started: Mutex<HashMap<(String, String), Instant>>,
    /// When each running step started (by project, promotion and step).
    step_started: Mutex<HashMap<(String, String, String), Instant>>,
    /// Per Stage, when its current run of failed verifications began.
    failing_since: Mutex<HashMap<(String, String), Instant>>,
}

impl Metrics {
    /// The metrics of a daemon on `store` (read for lead times and the work gauges).
    pub fn new(store: Store) -> Metrics {
        let mut registry = Registry::with_prefix("barge");
        let promotions = Family::default();
        registry.register(
            "promotions",
            "Promotions that ended, by project, Stage and phase (Succeeded, Failed, Errored, Aborted)",
            promotions.clone(),
        );
        let promotion_duration: Histograms<2> = Family::new_with_constructor(seconds_to_hours);
        registry.register(
            "promotion_duration_seconds",
            "How long promotions ran, from their start in this daemon to their end, by project and Stage",
            promotion_duration.clone(),
        );
        let step_duration: Histograms<2> = Family::new_with_constructor(steps);
        registry.register(
            "step_duration_seconds",
            "How long promotion steps ran, by step kind (uses) and status",
            step_duration.clone(),
        );
        let freight_minted = Family::default();
        registry.register(
            "freight_minted",
            "Freight minted, by project and Warehouse",
            freight_minted.clone(),
        );
        let verifications = Family::default();
        registry.register(
            "verifications",
            "Verifications that ended, by project, Stage and phase",
            verifications.clone(),
        );
        let measurements = Family::default();
        registry.register(
            "measurements",
            "Verification measurements, by project, Stage, analysis metric and outcome (the measurement's phase)",
            measurements.clone(),
        );
        let discoveries = Family::default();
        registry.register(
            "discoveries",
            "Discovery passes, by project, Warehouse and outcome (minted, unchanged, failed)",
            discoveries.clone(),
        );
        let discovery_duration: Histograms<2> = Family::new_with_constructor(seconds_to_hours);
        registry.register(
            "discovery_duration_seconds",
            "How long discovery passes took, by project and Warehouse",
            discovery_duration.clone(),
        );
        let webhook_deliveries = Family::default();
        registry.register(
            "webhook_deliveries",
            "Inbound webhook deliveries, by provider and outcome",
            webhook_deliveries.clone(),
        );
        let config_reloads = Family::default();
        registry.register(
            "config_reloads",
            "Definition reloads, by outcome (applied, rejected)",
            config_reloads.clone(),
        );
        let access_denied = Family::default();
        registry.register(
            "access_denied",
            "Calls refused, by status (401 no valid token, 403 role)",
            access_denied.clone(),
        );
        let lead_time: Histograms<2> = Family::new_with_constructor(minutes_to_months);
        registry.register(
            "lead_time_seconds",
            "Delivery lead time: Freight minted to entered the Stage, by project and Stage",
            lead_time.clone(),
        );
        let time_to_restore: Histograms<2> = Family::new_with_constructor(minutes_to_months);
        registry.register(
            "time_to_restore_seconds",
            "A Stage's first failed verification to its next successful one, by project and Stage",
            time_to_restore.clone(),
        );
        let work = Family::default();
        registry.register(
            "work",
            "Promotions and verifications in the store by kind and state: queued (Pending) or running (holding a lease)",
            work.clone(),
        );
        let registry_requests = Family::default();
        registry.register(
            "registry_requests",
            "OCI registry requests (retries included) by registry host and outcome: ok, or the error's class",
            registry_requests.clone(),
        );
        let registry_waits: Histograms<2> = Family::new_with_constructor(steps);
        registry.register(
            "registry_wait_seconds",
            "Waits before registry requests, by host and reason: rate_limit (barge's per-host limit) or retry (backoff, Retry-After)",
            registry_waits.clone(),
        );
        let git_requests = Family::default();
        registry.register(
            "git_requests",
            "git commands that talked to a remote (clone, fetch, push, ls-remote) by operation, host and outcome: ok, or the error's class",
            git_requests.clone(),
        );
        let git_request_duration: Histograms<2> = Family::new_with_constructor(steps);
        registry.register(
            "git_request_duration_seconds",
            "How long git commands that talked to a remote took, by operation and host",
            git_request_duration.clone(),
        );
        Metrics {
            registry,
            registry_requests,
            registry_waits,
            git_requests,
            git_request_duration,
            store,
            promotions,
            promotion_duration,
            step_duration,
            freight_minted,
            verifications,
            measurements,
            discoveries,
            discovery_duration,
            webhook_deliveries,
            config_reloads,
            access_denied,
            lead_time,
            time_to_restore,
            work,
            promotion_started: Mutex::default(),
            step_started: Mutex::default(),
            failing_since: Mutex::default(),
        }
    }

    /// A discovery pass of a Warehouse ended (the discovery worker's report).
    pub fn discovered(&self, project: &str, warehouse: &str, outcome: &'static str, took: Duration) {
        let at = [("project", project.to_string()), ("warehouse", warehouse.to_string())];
        self.discovery_duration.get_or_create(&at).observe(took.as_secs_f64());
        let [p, w] = at;
        self.discoveries
            .get_or_create(&[p, w, ("outcome", outcome.to_string())])
            .inc();
    }

    /// What counts the registry client's requests and waits ([`barge_registry::RegistryConfig::observer`]).
    pub fn registry_observer(&self) -> barge_registry::RequestObserver {
        let (requests, waits) = (self.registry_requests.clone(), self.registry_waits.clone());
        barge_registry::RequestObserver(std::sync::Arc::new(move |event| match event {
            barge_registry::RequestEvent::Finished { host, error } => {
                let outcome = error.map_or("ok", barge_core::ErrorClass::as_str);
                requests
                    .get_or_create(&[("host", host.to_string()), ("outcome", outcome.to_string())])
                    .inc();
            }
            barge_registry::RequestEvent::Waited { host, retry, waited } => {
                let reason = if retry { "retry" } else { "rate_limit" };
                waits
                    .get_or_create(&[("host", host.to_string()), ("reason", reason.to_string())])
                    .observe(waited.as_secs_f64());
            }
        }))
    }

    /// What counts git's requests ([`barge_git::observe_requests`]).
    pub fn git_observer(&self) -> barge_git::RequestObserver {
        let (requests, durations) = (self.git_requests.clone(), self.git_request_duration.clone());
        std::sync::Arc::new(move |event: &barge_git::RequestEvent<'_>| {
            let (operation, host) = (event.operation.to_string(), event.host.to_string());
            let outcome = event.error.map_or("ok", barge_core::ErrorClass::as_str);
            requests
                .get_or_create(&[
                    ("operation", operation.clone()),
                    ("host", host.clone()),
                    ("outcome", outcome.to_string()),
                ])
                .inc();
            durations
                .get_or_create(&[("operation", operation), ("host", host)])
                .observe(event.took.as_secs_f64());
        })
    }

    /// The exposition: the series counted so far and the work in the store now.
    async fn render(&self) -> Result<String, String> {
        let counts = self
            .store
            .work_counts(barge_engine::promote::now_millis())
            .await
            .map_err(|e| e.to_string())?;
        self.work.clear();
        for (kind, state, n) in counts {
            self.work
                .get_or_create(&[("kind", kind.to_string()), ("state", state.to_string())])
                .set(n);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).map_err(|e| e.to_string())?;
        Ok(text)
    }

    fn stage_labels(project: &str, stage: &str) -> Labels<2> {
        [("project", project.to_string()), ("stage", stage.to_string())]
    }

    /// Freight entered a Stage: its lead time, from when it was minted (read from the store,
    /// off the emitting task).
    fn entered(&self, project: &str, stage: &str, freight: &str) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, histogram) = (self.store.clone(), self.lead_time.clone());
        let (project, stage, freight) = (project.to_string(), stage.to_string(), freight.to_string());
        runtime.spawn(async move {
            match store.get_freight(&project, &freight).await {
                Ok(Some(f)) => {
                    let lead = (barge_engine::promote::now_millis() - f.created_at).max(0) as f64 / 1000.0;
                    histogram
                        .get_or_create(&Metrics::stage_labels(&project, &stage))
                        .observe(lead);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    project,
                    stage,
                    "cannot read a Freight's mint time for its lead time: {e}"
                ),
            }
        });
    }

    fn verified(&self, project: &str, stage: &str, phase: VerificationPhase) {
        let key = (project.to_string(), stage.to_string());
        let Ok(mut failing) = self.failing_since.lock() else {
            return;
        };
        match phase {
            VerificationPhase::Failed | VerificationPhase::Error => {
                failing.entry(key).or_insert_with(Instant::now);
            }
            VerificationPhase::Succeeded => {
                if let Some(since) = failing.remove(&key) {
                    self.time_to_restore
                        .get_or_create(&Metrics::stage_labels(project, stage))
                        .observe(since.elapsed().as_secs_f64());
                }
            }
            _ => {}
        }
    }
}

/// Remembers a start, forgetting starts whose end this process will never see.
fn remember<K: std::hash::Hash + Eq>(starts: &Mutex<HashMap<K, Instant>>, key: K) {
    if let Ok(mut starts) = starts.lock() {
        starts.retain(|_, at| at.elapsed() < FORGET_AFTER);
        starts.entry(key).or_insert_with(Instant::now);
    }
}

/// How long ago a remembered start was, forgetting it.
fn took<K: std::hash::Hash + Eq>(starts: &Mutex<HashMap<K, Instant>>, key: &K) -> Option<f64> {
    starts.lock().ok()?.remove(key).map(|at| at.elapsed().as_secs_f64())
}

impl MetricsHook for Metrics {
    fn record(&self, event: &Event) {
        match event {
            Event::FreightMinted { project, warehouse, .. } => {
                self.freight_minted
                    .get_or_create(&[("project", project.clone()), ("warehouse", warehouse.clone())])
                    .inc();
            }
            Event::PromotionCreated(p) => remember(&self.promotion_started, (p.project.clone(), p.name.clone())),
            Event::StepStarted { promotion: p, step, .. } => {
                // A promotion created by another replica (or before a restart) starts here.
                remember(&self.promotion_started, (p.project.clone(), p.name.clone()));
                remember(&self.step_started, (p.project.clone(), p.name.clone(), step.clone()));
            }
            Event::StepFinished {
                promotion: p,
                step,
                uses,
                status,
                ..
            } => {
                if let Some(seconds) = took(&self.step_started, &(p.project.clone(), p.name.clone(), step.clone())) {
                    self.step_duration
                        .get_or_create(&[("kind", uses.clone()), ("status", status.as_str().to_string())])
                        .observe(seconds);
                }
            }
            Event::PromotionFinished {
                promotion: p, phase, ..
            } => {
                let stage = Metrics::stage_labels(&p.project, &p.stage);
                if let Some(seconds) = took(&self.promotion_started, &(p.project.clone(), p.name.clone())) {
                    self.promotion_duration.get_or_create(&stage).observe(seconds);
                }
                let [project, stage] = stage;
                self.promotions
                    .get_or_create(&[project, stage, ("phase", phase.as_str().to_string())])
                    .inc();
            }
            Event::PromotionAborted { promotion: p, .. } => {
                took(&self.promotion_started, &(p.project.clone(), p.name.clone()));
                let [project, stage] = Metrics::stage_labels(&p.project, &p.stage);
                self.promotions
                    .get_or_create(&[project, stage, ("phase", "Aborted".to_string())])
                    .inc();
            }
            Event::FreightEntered(p) => self.entered(&p.project, &p.stage, &p.freight),
            Event::VerificationMeasured {
                verification: v,
                measured,
            } => {
                self.measurements
                    .get_or_create(&[
                        ("project", v.project.clone()),
                        ("stage", v.stage.clone()),
                        ("metric", measured.metric.clone()),
                        ("outcome", measured.phase.clone()),
                    ])
                    .inc();
            }
            Event::VerificationFinished {
                verification: v, phase, ..
            } => {
                let [project, stage] = Metrics::stage_labels(&v.project, &v.stage);
                self.verifications
                    .get_or_create(&[project, stage, ("phase", phase.as_str().to_string())])
                    .inc();
                self.verified(&v.project, &v.stage, *phase);
            }
            Event::DefinitionsReloaded { .. } => {
                self.config_reloads
                    .get_or_create(&[("outcome", "applied".into())])
                    .inc();
            }
            Event::DefinitionsRejected { .. } => {
                self.config_reloads
                    .get_or_create(&[("outcome", "rejected".into())])
                    .inc();
            }
            Event::AccessDenied { body, .. } => {
                let status = body["status"]
                    .as_u64()
                    .map_or_else(|| "unknown".into(), |s| s.to_string());
                self.access_denied.get_or_create(&[("status", status)]).inc();
            }
            // Counted by the layer around the webhook route, which sees every outcome.
            Event::WebhookRefused { .. }
            | Event::FreightApproved { .. }
            | Event::AuditRecorded { .. }
            | Event::FreightAliased { .. }
            | Event::MetadataUpdated { .. }
            | Event::WindowOverridden { .. }
            | Event::VerificationStarted { .. }
            | Event::StageHeld { .. }
            | Event::StageReleased { .. }
            | Event::RefreshRequested { .. }
            | Event::DiscoveryFailed { .. } => {}
        }
    }
}

/// `GET /metrics`: for a caller with a token (any role reads; `--anonymous-role viewer` lets
/// Prometheus scrape without one).
pub(crate) async fn scrape(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(refused) = crate::api::authenticate(&api, &headers).await {
        return crate::api::error(refused.status, refused.message);
    }
    match api.shared.metrics.render().await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!("cannot render the metrics: {e}");
            crate::api::error(StatusCode::SERVICE_UNAVAILABLE, "cannot read the store".into())
        }
    }
}

/// Counts every delivery to the webhook route by provider and outcome (its answer's status).
/// A path that names no receiver counts as provider `unknown`: the provider in such a path is
/// whatever the sender wrote, not a bounded label.
pub(crate) fn count_deliveries(router: axum::Router, metrics: std::sync::Arc<Metrics>) -> axum::Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let metrics = metrics.clone();
            async move {
                let provider = request
                    .uri()
                    .path()
                    .strip_prefix("/webhook/")
                    .and_then(|rest| rest.split('/').next())
                    .unwrap_or_default()
                    .to_string();
                let response = next.run(request).await;
                let outcome = match response.status().as_u16() {
                    202 => "accepted",
                    200 => "ignored",
                    400 => "bad_request",
                    401 => "unauthorized",
                    404 => "unknown_receiver",
                    408 => "timeout",
                    413 => "too_large",
                    429 => "rate_limited",
                    _ => "error",
                };
                let provider = if outcome == "unknown_receiver" {
                    "unknown".to_string()
                } else {
                    provider
                };
                metrics
                    .webhook_deliveries
                    .get_or_create(&[("provider", provider), ("outcome", outcome.to_string())])
                    .inc();
                response
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_core::promotion::Phase;
    use barge_engine::events::{Measured, PromotionRef, VerificationRef};

    fn promotion(name: &str) -> PromotionRef {
        PromotionRef {
            project: "shop".into(),
            stage: "prod".into(),
            freight: "f0a1b2c3".into(),
            name: name.into(),
            actor: "alice".into(),
        }
    }

    fn verification() -> VerificationRef {
        VerificationRef {
            project: "shop".into(),
            stage: "prod".into(),
            freight: "f0a1b2c3".into(),
            id: "v-01jabc".into(),
        }
    }

    fn verified(phase: VerificationPhase) -> Event {
        Event::VerificationFinished {
            verification: verification(),
            phase,
            message: String::new(),
            actor: "barge".into(),
        }
    }

    #[tokio::test]
    async fn events_are_counted_by_bounded_labels_and_a_restore_spans_a_run_of_failures() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&barge_testkit::postgres::sqlite_url(&dir)).await.unwrap();
        let metrics = Metrics::new(store);
        let succeeded = promotion("prod.01jaaa");
        metrics.record(&Event::PromotionCreated(succeeded.clone()));
        metrics.record(&Event::PromotionFinished {
            promotion: succeeded,
            phase: Phase::Succeeded,
            message: String::new(),
        });
        metrics.record(&Event::PromotionAborted {
            promotion: promotion("prod.01jbbb"),
            by: "bob".into(),
        });
        metrics.record(&Event::VerificationMeasured {
            verification: verification(),
            measured: Measured {
                metric: "error-rate".into(),
                provider: "prometheus".into(),
                resolved: "sum(rate(x[2m]))".into(),
                success_condition: None,
                failure_condition: None,
                phase: "Failed".into(),
                value: Some("0.5".into()),
                message: None,
                metric_phase: "Failed".into(),
                at: 0,
            },
        });
        // Two failures in a row, then a success: one restore, from the first failure.
        metrics.record(&verified(VerificationPhase::Failed));
        metrics.record(&verified(VerificationPhase::Error));
        metrics.record(&verified(VerificationPhase::Succeeded));
        metrics.record(&verified(VerificationPhase::Succeeded));
        metrics.record(&Event::DefinitionsRejected {
            errors: 2,
            diagnostics: serde_json::json!([]),
        });
        let text = metrics.render().await.unwrap();
        for line in [
            r#"barge_promotions_total{project="shop",stage="prod",phase="Succeeded"} 1"#,
            r#"barge_promotions_total{project="shop",stage="prod",phase="Aborted"} 1"#,
            r#"barge_promotion_duration_seconds_count{project="shop",stage="prod"} 1"#,
            r#"barge_verifications_total{project="shop",stage="prod",phase="Failed"} 1"#,
            r#"barge_verifications_total{project="shop",stage="prod",phase="Error"} 1"#,
            r#"barge_verifications_total{project="shop",stage="prod",phase="Succeeded"} 2"#,
            r#"barge_time_to_restore_seconds_count{project="shop",stage="prod"} 1"#,
            r#"barge_measurements_total{project="shop",stage="prod",metric="error-rate",outcome="Failed"} 1"#,
            r#"barge_config_reloads_total{outcome="rejected"} 1"#,
            r#"barge_work{kind="promotion",state="queued"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
        // No Freight, promotion or verification names, no queries or values.
        for name in ["f0a1b2c3", "01jaaa", "01jbbb", "v-01jabc", "rate(x", "alice", "bob"] {
            assert!(!text.contains(name), "{name} in:\n{text}");
        }
        // The registry client's requests and waits, by host.
        let observe = metrics.registry_observer();
        (observe.0)(barge_registry::RequestEvent::Finished {
            host: "ghcr.io",
            error: Some(barge_core::ErrorClass::RateLimited),
        });
        (observe.0)(barge_registry::RequestEvent::Finished {
            host: "ghcr.io",
            error: None,
        });
        (observe.0)(barge_registry::RequestEvent::Waited {
            host: "ghcr.io",
            retry: false,
            waited: Duration::from_millis(40),
        });
        let text = metrics.render().await.unwrap();
        for line in [
            r#"barge_registry_requests_total{host="ghcr.io",outcome="rate-limited"} 1"#,
            r#"barge_registry_requests_total{host="ghcr.io",outcome="ok"} 1"#,
            r#"barge_registry_wait_seconds_count{host="ghcr.io",reason="rate_limit"} 1"#,
            r#"barge_registry_wait_seconds_sum{host="ghcr.io",reason="rate_limit"} 0.04"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
        // git's requests, by operation and host.
        let observe = metrics.git_observer();
        observe(&barge_git::RequestEvent {
            operation: "push",
            host: "github.com",
            error: Some(barge_core::ErrorClass::Auth),
            took: Duration::from_millis(250),
        });
        observe(&barge_git::RequestEvent {
            operation: "fetch",
            host: "github.com",
            error: None,
            took: Duration::from_millis(500),
        });
        let text = metrics.render().await.unwrap();
        for line in [
            r#"barge_git_requests_total{operation="push",host="github.com",outcome="auth"} 1"#,
            r#"barge_git_requests_total{operation="fetch",host="github.com",outcome="ok"} 1"#,
            r#"barge_git_request_duration_seconds_sum{operation="fetch",host="github.com"} 0.5"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
        // The aborted promotion's start (if any) and the finished one's are forgotten.
        assert!(metrics.promotion_started.lock().unwrap().is_empty());
    }
}
