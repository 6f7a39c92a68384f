//! Every AnalysisTemplate of the real-world corpus (its `analysis/` directory) whose metrics
//! barge can measure is run against local servers: Prometheus accepts every query after
//! argument substitution, every web metric reaches the server, every Job metric becomes a Job
//! on the test API server that its controller completes, and every run ends in a phase.

mod support;

use barge_testkit::kube as kube_support;

use barge_analysis::Analysis;
use barge_analysis::Providers;
use barge_core::Catalog;
use barge_core::analysis::{Phase, args};
use barge_core::model::Body;
use barge_core::model::analysis::{AnalysisTemplateSpec, IntOrString};
use barge_testkit::fixtures::corpus;
use barge_testkit::prometheus::{Prometheus, requests};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A server answering every path with a small JSON document, recording what was asked.
async fn any_web() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(uri.to_string());
            axum::Json(serde_json::json!({"ok": true, "status": "healthy", "count": 1, "data": {"ok": true}}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// Points the template at the local servers and shortens its clock: intervals of 50 ms, no
/// initial delay, at most 2 measurements, and the first error ends a metric (the retry cadence
/// is tested elsewhere).
fn localise(mut s: AnalysisTemplateSpec, prometheus: &str, web: &str) -> AnalysisTemplateSpec {
    for m in &mut s.metrics {
        if let Some(p) = &mut m.provider.prometheus {
            p.address = Some(prometheus.to_string());
        }
        if let Some(w) = &mut m.provider.web {
            let url = w.url.clone().unwrap_or_default();
            let path = url
                .split_once("://")
                .map_or("", |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
            w.url = Some(format!("{web}{path}"));
            w.insecure = None;
        }
        m.interval = m.interval.as_ref().map(|_| "50ms".to_string());
        m.initial_delay = None;
        m.count = Some(IntOrString::Int(if m.interval.is_some() { 2 } else { 1 }));
        m.failure_limit = None;
        m.inconclusive_limit = None;
        m.consecutive_success_limit = None;
        m.consecutive_error_limit = Some(IntOrString::Int(0));
    }
    s
}

#[tokio::test]
async fn corpus_templates_with_supported_providers_run_against_local_servers() {
    let prom = Prometheus::start(&requests("demo", 9.0, 1.0));
    let (web, seen) = any_web().await;
    let cluster = kube_support::apiserver::ApiServer::start(None).await;
    let kubeconfig_dir = tempfile::tempdir().unwrap();
    let clusters = std::sync::Arc::new(barge_kube::Clusters::new(Some(
        cluster.kubeconfig(kubeconfig_dir.path()),
    )));
    let _jobs = kube_support::controllers::jobs(cluster.clone(), std::time::Duration::from_millis(50));
    let mut ran = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join("analysis"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().contains("malformed"))
        .collect();
    files.sort();
    for file in files {
        let mut catalog = Catalog::default();
        catalog.load_text(&file.display().to_string(), &std::fs::read_to_string(&file).unwrap());
        for r in &catalog.resources {
            let spec = match &r.body {
                Some(Body::AnalysisTemplate(t)) => t.spec.clone(),
                Some(Body::ClusterAnalysisTemplate(t)) => t.spec.clone(),
                _ => None,
            };
            let Some(spec) = spec else { continue };
            let measurable = !spec.metrics.is_empty()
                && spec
                    .metrics
                    .iter()
                    .all(|m| matches!(m.provider.names().as_slice(), ["prometheus"] | ["web"] | ["job"]));
            if !measurable {
                continue;
            }
            let label = format!("{} {}", file.file_name().unwrap().to_string_lossy(), r.name);
            // Arguments the caller must give get "1" (it fits labels, paths and thresholds).
            let given = spec
                .args
                .iter()
                .filter(|a| a.value.is_none() && a.value_from.is_none())
                .map(|a| (a.name.clone(), "1".to_string()))
                .collect();
            let resolved = args::resolve(&spec.args, &given, &mut |_, _| Ok("corpus-secret".into()))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let s = localise(spec, &prom.url, &web);
            let analysis = Analysis::prepare(&s, &resolved).unwrap_or_else(|e| panic!("{label}: {e}"));
            let before = seen.lock().unwrap().len();
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            let providers = Providers {
                jobs: Some(barge_analysis::job::JobTarget {
                    clusters: clusters.clone(),
                    context: None,
                    namespace: "corpus".into(),
                    run: format!("run-{}", ran.len()),
                }),
                ..Providers::default()
            };
            let report = barge_analysis::run(&analysis, &providers, stopped, |_, _| {}).await;
            assert!(report.phase.is_completed(), "{label}: {report:#?}");
            for m in &report.metrics {
                assert!(!m.measurements.is_empty(), "{label}: {} was never measured", m.name);
                for x in &m.measurements {
                    let msg = x.message.as_deref().unwrap_or("");
                    assert!(
                        !msg.contains("bad_data") && !msg.contains("HTTP "),
                        "{label}: {} was not measured: {msg}",
                        m.name
                    );
                    if x.phase == Phase::Error {
                        // The provider answered; the template's condition could not judge the
                        // answer (`result[0]` on an empty vector, a field the stand-in lacks).
                        assert!(x.value.is_some() || msg.contains("matches nothing"), "{label}: {msg}");
                    }
                }
            }
            let web_measurements: usize = report
                .metrics
                .iter()
                .filter(|m| m.provider == "web")
                .map(|m| m.measurements.len())
                .sum();
            assert_eq!(seen.lock().unwrap().len() - before, web_measurements, "{label}");
            for m in report.metrics.iter().filter(|m| m.provider == "job") {
                for x in &m.measurements {
                    let v = x.value.as_deref().unwrap_or("");
                    assert!(
                        v == "Complete" || v.starts_with("Failed ("),
                        "{label}: {} measured {x:?}",
                        m.name
                    );
                }
            }
            ran.push((label, report.phase));
        }
    }
    let names: Vec<&str> = ran.iter().map(|(l, _)| l.as_str()).collect();
    assert!(ran.len() >= 30, "only {} corpus templates ran: {names:?}", ran.len());
    assert!(!cluster.list("batch", "jobs").is_empty(), "no Job metric ran");
    assert!(ran.iter().any(|(_, p)| *p == Phase::Successful), "{ran:?}");
}
