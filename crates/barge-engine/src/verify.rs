//! Stage verification (Kargo's `verification`): after a successful promotion the Stage's
//! (Cluster)AnalysisTemplates run as one analysis against the Freight it received. Success
//! marks the Freight verified in the Stage (so it becomes available downstream); any other
//! outcome leaves it unverified, which blocks downstream Stages. With `autoRollback` on, a
//! failed verification re-promotes the Stage's previous verified Freight.
//!
//! Every measurement is audited (`verification.measured`: the resolved query, the
//! conditions, the value and the phase) and the run's report is saved as it grows, so
//! `barge get stage S` shows the numbers while the run is going.

use crate::error::{EngineError, not_found};
use crate::events::{Event, EventSink, Measured, VerificationRef};
use crate::pipeline::{self, StageDef};
use crate::promote::now_millis;
use barge_analysis::{Analysis, Measurement, MetricReport};
use barge_core::Catalog;
use barge_core::analysis::{VerificationPhase, args};
use barge_core::model::Body;
use barge_core::model::analysis::AnalysisTemplateSpec;
use barge_store::{Store, StoreError, Verification};
use std::collections::BTreeMap;

/// Who re-promotes the previous Freight after a failed verification.
pub const ROLLBACK_ACTOR: &str = "barge (rollback)";

/// Secret values by secret name and key (barge's secret store, from its configuration).
pub type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// The analysis a Stage's verification runs, from its merged templates and rendered `args`
/// ([`verification_spec`]): arguments resolved, `secretKeyRef` from barge's secret store and
/// `valueFrom.fieldRef` from `rollout`, the Rollout the Stage's last promotion waited for (its
/// `rollout-wait` step), as Rollouts reads the Rollout that owns a run.
fn prepare(
    spec: &AnalysisTemplateSpec,
    given: &BTreeMap<String, String>,
    secrets: &Secrets,
    rollout: Option<&serde_json::Value>,
) -> Result<Analysis, String> {
    let resolved = args::resolve_with_fields(
        &spec.args,
        given,
        &mut |name, key| lookup_secret(secrets, name, key),
        &mut |path| rollout_field(rollout, path),
    )?;
    Analysis::prepare(spec, &resolved)
}

/// A field of the Rollout by its `fieldPath` (`status.currentPodHash`,
/// `metadata.labels['app']`).
fn rollout_field(rollout: Option<&serde_json::Value>, path: &str) -> Result<String, String> {
    let rollout = rollout.ok_or_else(|| {
        format!(
            "it reads the Rollout's field {path:?}, and the Stage's last promotion waited for no Rollout (rollout-wait)"
        )
    })?;
    let found = barge_core::analysis::jsonpath::JsonPath::parse(&format!("{{.{path}}}"))?
        .find(rollout)
        .first()
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    found.ok_or_else(|| format!("the Rollout has no field {path:?}"))
}

/// The Rollout the Stage's last successful promotion waited for, read now.
async fn last_rollout(store: &Store, clusters: &barge_kube::Clusters, def: &StageDef<'_>) -> Option<serde_json::Value> {
    let last = store
        .stage_promotions(def.project)
        .await
        .ok()?
        .into_iter()
        .find(|p| p.stage == def.name && p.phase == barge_core::promotion::Phase::Succeeded)?;
    let stored = store.get_promotion(def.project, &last.name).await.ok()??;
    let waited = crate::promote::step_outputs(&stored, "rollout-wait")
        .find(|o| o["name"].is_string())?
        .clone();
    let client = clusters.client(waited["cluster"].as_str()).await.ok()?;
    barge_kube::Objects::new(
        client,
        barge_kube::ROLLOUT,
        waited["namespace"].as_str().unwrap_or("default"),
    )
    .get(waited["name"].as_str()?)
    .await
    .ok()
}

/// A `secretKeyRef` from barge's secret store (the configuration file's `secrets`).
pub fn lookup_secret(secrets: &Secrets, name: &str, key: &str) -> Result<String, String> {
    secrets
        .get(name)
        .and_then(|s| s.get(key))
        .cloned()
        .ok_or_else(|| "not in barge's secret store (the configuration file's `secrets`, --config)".to_string())
}

/// A Stage's verification templates merged into one spec, and its `args` rendered.
fn verification_spec(
    catalog: &Catalog,
    def: &StageDef<'_>,
) -> Result<(AnalysisTemplateSpec, BTreeMap<String, String>), String> {
    let Some(v) = &def.spec.verification else {
        return Err(format!("Stage {} has no verification", def.name));
    };
    let mut templates: Vec<(String, AnalysisTemplateSpec)> = Vec::new();
    for t in &v.analysis_templates {
        let cluster = t.kind.as_deref() == Some("ClusterAnalysisTemplate");
        let found = catalog.resources.iter().find_map(|r| match &r.body {
            Some(Body::ClusterAnalysisTemplate(x)) if cluster && r.name == t.name => x.spec.clone(),
            Some(Body::AnalysisTemplate(x)) if !cluster && r.name == t.name && r.project == def.project => {
                x.spec.clone()
            }
            _ => None,
        });
        let kind = if cluster {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        let spec = found.ok_or_else(|| format!("{kind} {} is not in the definitions", t.name))?;
        templates.push((format!("{kind} {}", t.name), spec));
    }
    let named: Vec<(&str, &AnalysisTemplateSpec)> = templates.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let merged = args::merge(&named)?;
    let data = barge_core::eval::Data {
        ctx: serde_json::json!({"project": def.project, "stage": def.name}),
        ..Default::default()
    };
    let mut scope = barge_core::eval::Scope::default();
    for var in &def.spec.vars {
        let value = var.value.clone().unwrap_or(serde_json::Value::Null);
        let value = barge_core::eval::render_value(&value, &data, &scope)
            .map_err(|e| format!("Stage var {}: {e}", var.name))?;
        scope.vars.insert(var.name.clone(), value);
    }
    let mut given = BTreeMap::new();
    for a in &v.args {
        let value = a.value.clone().unwrap_or(serde_json::Value::Null);
        let value = barge_core::eval::render_value(&value, &data, &scope)
            .map_err(|e| format!("verification arg {}: {e}", a.name))?;
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        given.insert(a.name.clone(), text);
    }
    Ok((merged, given))
}

/// Who measures: barge itself, or the cluster's Argo Rollouts controller (an AnalysisRun per
/// verification, as Kargo does).
pub enum Mode {
    Native(barge_analysis::Providers),
    InCluster {
        clusters: std::sync::Arc<barge_kube::Clusters>,
    },
}

/// Runs a verification `owner` claimed to its end and records it; returns its final phase
/// (`Aborted` when someone aborted it meanwhile). Each measurement and the outcome go to
/// `events`. Every save is fenced by `owner`'s lease: a runner whose lease another took
/// stops measuring and records nothing (`Running`: the new holder finishes it).
pub async fn run(
    store: &Store,
    events: &EventSink,
    catalog: &Catalog,
    secrets: &Secrets,
    mode: &Mode,
    owner: &str,
    v: &Verification,
) -> Result<VerificationPhase, EngineError> {
    let all = pipeline::stages(catalog);
    let def = pipeline::find_stage(&all, &v.stage, Some(&v.project))?;
    let prepared = match (verification_spec(catalog, def), mode) {
        (Ok((spec, given)), Mode::Native(providers)) => {
            let reads_rollout = spec
                .args
                .iter()
                .any(|a| a.value_from.as_ref().is_some_and(|v| v.field_ref.is_some()));
            let rollout = match &providers.jobs {
                Some(t) if reads_rollout => last_rollout(store, &t.clusters, def).await,
                _ => None,
            };
            // The definitions' URLs lost their userinfo when loaded; requests to them send it.
            let providers = barge_analysis::Providers {
                http: providers.http.with_url_credentials(catalog.url_credentials.clone()),
                ..providers.clone()
            };
            prepare(&spec, &given, secrets, rollout.as_ref()).map(|a| Prepared::Native(a, providers))
        }
        (Ok((spec, given)), Mode::InCluster { clusters }) => Ok(Prepared::InCluster(spec, given, clusters)),
        (Err(e), _) => Err(e),
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            return record_error(store, events, owner, v, &format!("the verification cannot run: {e}")).await;
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // An abort is noticed within a second, even between measurements far apart.
    let watcher = {
        let (store, v, stop) = (store.clone(), v.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let latest = store.verifications(&v.project, &v.stage, 1).await;
                if latest.is_ok_and(|l| l.first().is_none_or(|x| x.id != v.id || x.is_finished())) {
                    let _ = stop.send(true);
                    return;
                }
            }
        })
    };
    // Measurements go to the store in order, off the measuring path.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(MetricReport, Measurement)>();
    let writer = {
        let (store, events, v, stop) = (store.clone(), events.clone(), v.clone(), stop.clone());
        let owner = owner.to_string();
        // Returns whether a save found the lease taken over.
        tokio::spawn(async move {
            let mut metrics: BTreeMap<String, MetricReport> = BTreeMap::new();
            while let Some((metric, m)) = rx.recv().await {
                let measured = Measured {
                    metric: metric.name.clone(),
                    provider: metric.provider.clone(),
                    resolved: metric.resolved.clone(),
                    success_condition: metric.success_condition.clone(),
                    failure_condition: metric.failure_condition.clone(),
                    phase: m.phase.as_str().into(),
                    value: m.value,
                    message: m.message,
                    metric_phase: metric.phase.as_str().into(),
                    at: m.finished_at,
                };
                let verification = VerificationRef::of(&v);
                // A failed audit is logged by the sink; the run goes on.
                let _ = events
                    .emit(Event::VerificationMeasured { verification, measured })
                    .await;
                metrics.insert(metric.name.clone(), metric);
                let so_far = serde_json::json!({
                    "phase": "Running",
                    "startedAt": v.created_at,
                    "metrics": metrics.values().collect::<Vec<_>>(),
                });
                match store.save_verification_report(&v.project, &v.id, &owner, &so_far).await {
                    Err(StoreError::Aborted(_)) => {
                        let _ = stop.send(true);
                    }
                    Err(StoreError::LeaseLost(_)) => {
                        let _ = stop.send(true);
                        return true;
                    }
                    _ => {}
                }
            }
            false
        })
    };
    let observe = |metric: &MetricReport, m: &Measurement| {
        let _ = tx.send((metric.clone(), m.clone()));
    };
    let report = match &prepared {
        Prepared::Native(analysis, providers) => barge_analysis::run(analysis, providers, stopped, observe).await,
        Prepared::InCluster(spec, given, clusters) => {
            let target = cluster_run(clusters, def, v);
            match barge_analysis::cluster::run(&target, spec, given, stopped, observe).await {
                Ok((name, report)) => {
                    tracing::info!(verification = %v.id, analysis_run = %name, "followed the AnalysisRun");
                    report
                }
                Err(e) => {
                    drop(tx);
                    let _ = writer.await;
                    watcher.abort();
                    let message = format!("the AnalysisRun cannot be created or followed: {e}");
                    return record_error(store, events, owner, v, &message).await;
                }
            }
        }
    };
    drop(tx);
    let lease_lost = writer.await.unwrap_or(false);
    watcher.abort();
    if lease_lost {
        return Ok(lost_lease(owner, v));
    }
    let json = serde_json::to_value(&report)?;
    if report.stopped {
        // Only an abort (or a newer verification) stops a run; it recorded itself.
        return Ok(VerificationPhase::Aborted);
    }
    let phase = finish(
        store,
        events,
        owner,
        v,
        VerificationPhase::of_run(report.phase),
        &report.message,
        &json,
    )
    .await?;
    if matches!(phase, VerificationPhase::Failed | VerificationPhase::Error) {
        rollback(store, events, catalog, def, v, phase).await;
    }
    Ok(phase)
}

/// What a verification runs, prepared for its mode, with what runs it.
enum Prepared<'a> {
    Native(Analysis, barge_analysis::Providers),
    InCluster(
        AnalysisTemplateSpec,
        BTreeMap<String, String>,
        &'a std::sync::Arc<barge_kube::Clusters>,
    ),
}

/// The AnalysisRun Kargo would create for this verification: in the project's namespace,
/// labelled with the Stage and the Freight, plus the Stage's `analysisRunMetadata`.
fn cluster_run(
    clusters: &std::sync::Arc<barge_kube::Clusters>,
    def: &StageDef<'_>,
    v: &Verification,
) -> barge_analysis::cluster::ClusterRun {
    let meta = def
        .spec
        .verification
        .as_ref()
        .and_then(|x| x.analysis_run_metadata.clone())
        .unwrap_or_default();
    let mut labels = meta.labels.clone();
    labels.insert("kargo.akuity.io/stage".into(), v.stage.clone());
    labels.insert("kargo.akuity.io/freight-collection".into(), v.freight.clone());
    labels.insert("barge.dev/verification".into(), v.id.clone());
    barge_analysis::cluster::ClusterRun {
        clusters: clusters.clone(),
        context: None,
        namespace: v.project.clone(),
        name_prefix: format!("{}.{}.", v.stage, &v.freight[..v.freight.len().min(7)]),
        labels,
        annotations: meta.annotations,
    }
}

/// Records that a verification ended in `Error` without a report (it could not run, or its
/// run broke off), and why; `Aborted` when someone aborted it meanwhile.
pub async fn record_error(
    store: &Store,
    events: &EventSink,
    owner: &str,
    v: &Verification,
    message: &str,
) -> Result<VerificationPhase, EngineError> {
    finish(
        store,
        events,
        owner,
        v,
        VerificationPhase::Error,
        message,
        &serde_json::json!({}),
    )
    .await
}

async fn finish(
    store: &Store,
    events: &EventSink,
    owner: &str,
    v: &Verification,
    phase: VerificationPhase,
    message: &str,
    report: &serde_json::Value,
) -> Result<VerificationPhase, EngineError> {
    match store
        .finish_verification(v, owner, phase, message, report, now_millis())
        .await
    {
        Ok(()) => {
            let _ = events
                .emit(Event::VerificationFinished {
                    verification: VerificationRef::of(v),
                    phase,
                    message: message.into(),
                    actor: "barge".into(),
                })
                .await;
            Ok(phase)
        }
        Err(StoreError::Aborted(_)) => Ok(VerificationPhase::Aborted),
        Err(StoreError::LeaseLost(_)) => Ok(lost_lease(owner, v)),
        Err(e) => Err(EngineError::from(e).within("cannot record the verification's outcome")),
    }
}

/// A runner that stalled past its lease and was taken over: it says so and leaves the
/// verification Running to the runner that holds it now.
fn lost_lease(owner: &str, v: &Verification) -> VerificationPhase {
    tracing::warn!(
        verification = %v.id,
        owner,
        "lost the verification's lease to another runner (this one stalled past it); stopped without recording"
    );
    VerificationPhase::Running
}

/// The verification phases that roll a Stage back, when a ProjectConfig policy selecting it
/// enables `autoRollback` (`onVerification`, default `[Failed]`; validation refuses other
/// names than Failed and Error).
fn rollback_on(catalog: &Catalog, def: &StageDef<'_>) -> Vec<VerificationPhase> {
    catalog
        .resources
        .iter()
        .filter_map(|r| match &r.body {
            Some(Body::ProjectConfig(pc)) if r.project == def.project || r.name == def.project => pc.spec.as_ref(),
            _ => None,
        })
        .flat_map(|spec| &spec.promotion_policies)
        .filter(|p| barge_core::plan::policy_matches(p, def.name, def.labels))
        .filter_map(|p| p.auto_rollback.as_ref())
        .filter(|r| r.enabled == Some(true))
        .flat_map(|r| {
            if r.on_verification.is_empty() {
                vec![VerificationPhase::Failed]
            } else {
                r.on_verification
                    .iter()
                    .filter_map(|p| VerificationPhase::parse(p))
                    .collect()
            }
        })
        .collect()
}

/// Re-promotes the Stage's previous verified Freight of the same origin, if rollback is on
/// for this outcome and there is one. The promotion holds the Stage (it is not the newest
/// Freight), so auto-promotion does not bring the failed Freight straight back.
async fn rollback(
    store: &Store,
    events: &EventSink,
    catalog: &Catalog,
    def: &StageDef<'_>,
    v: &Verification,
    phase: VerificationPhase,
) {
    if !rollback_on(catalog, def).contains(&phase) {
        return;
    }
    let result = async {
        let facts = store.freight_stages(def.project).await?;
        let Some(failed) = facts.iter().find(|f| f.stage == def.name && f.freight == v.freight) else {
            return not_found!("the failed Freight is not in the Stage");
        };
        let Some(previous) = facts
            .iter()
            .filter(|f| f.stage == def.name && f.warehouse == failed.warehouse && f.freight != v.freight)
            .filter(|f| f.verified_at.is_some() && f.entered_at.is_some())
            .max_by_key(|f| f.entered_at)
        else {
            return not_found!("no earlier verified Freight to roll back to");
        };
        let Some(stored) = store.get_freight(def.project, &previous.freight).await? else {
            return not_found!("the earlier Freight is no longer stored");
        };
        let p = crate::promote::create(
            catalog,
            store,
            events,
            def,
            &stored,
            ROLLBACK_ACTOR,
            barge_core::promotion::Phase::Pending,
            false,
        )
        .await?;
        Ok::<_, EngineError>((p.name, stored.freight.alias.unwrap_or(previous.freight.clone())))
    }
    .await;
    match result {
        Ok((promotion, alias)) => {
            eprintln!(
                "barge: verification of {} in {} {phase}: rolling back to {alias} ({promotion})",
                v.freight, def.name
            );
        }
        Err(e) => tracing::warn!(stage = %def.name, "no rollback after the {phase} verification: {e}"),
    }
}

/// The template `barge analysis run` runs: the catalog's one (Cluster)AnalysisTemplate, or the
/// one named `template`. `sources` (the definitions' paths) say where none was found.
pub fn find_template<'a>(
    catalog: &'a Catalog,
    template: Option<&str>,
    sources: &[String],
) -> Result<(&'a str, &'a AnalysisTemplateSpec), EngineError> {
    let found: Vec<(&str, &AnalysisTemplateSpec)> = catalog
        .resources
        .iter()
        .filter_map(|r| match &r.body {
            Some(Body::AnalysisTemplate(t)) => t.spec.as_ref().map(|s| (r.name.as_str(), s)),
            Some(Body::ClusterAnalysisTemplate(t)) => t.spec.as_ref().map(|s| (r.name.as_str(), s)),
            _ => None,
        })
        .filter(|(name, _)| template.is_none_or(|t| t == *name))
        .collect();
    match (found.as_slice(), template) {
        ([one], _) => Ok(*one),
        ([], Some(t)) => not_found!("no AnalysisTemplate named {t:?} in {}", sources.join(" ")),
        ([], None) => not_found!("no AnalysisTemplate in {}", sources.join(" ")),
        (many, _) => {
            let names: Vec<&str> = many.iter().map(|(n, _)| *n).collect();
            Err(EngineError::Invalid(format!(
                "several templates ({}); choose one with --template",
                names.join(", ")
            )))
        }
    }
}

/// The analysis `barge analysis run` runs from template `name`: its Prometheus metrics asking
/// `prometheus` when given, its arguments from `given` and `secretKeyRef`s from `secrets`.
pub fn prepare_adhoc(
    name: &str,
    spec: &AnalysisTemplateSpec,
    prometheus: Option<&str>,
    given: &BTreeMap<String, String>,
    secrets: &Secrets,
) -> Result<Analysis, EngineError> {
    let mut spec = spec.clone();
    if let Some(url) = prometheus {
        for p in spec.metrics.iter_mut().filter_map(|m| m.provider.prometheus.as_mut()) {
            p.address = Some(url.to_string());
        }
    }
    args::resolve(&spec.args, given, &mut |n, k| lookup_secret(secrets, n, k))
        .and_then(|resolved| Analysis::prepare(&spec, &resolved))
        .map_err(|e| EngineError::Invalid(format!("{name}: {e}")))
}
