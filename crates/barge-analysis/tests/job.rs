//! Job metrics against the test Kubernetes API server and its Job controller: each measurement
//! is a Job made from the template, named after the run and metric, and its conditions decide.

mod support;

use barge_testkit::kube as kube_support;

use barge_analysis::job::JobTarget;
use barge_analysis::{Analysis, Providers};
use barge_core::analysis::{Phase, args};
use kube_support::apiserver::ApiServer;
use kube_support::controllers;
use std::sync::Arc;
use std::time::Duration;
use support::spec;

fn job_template(command: &str, extra: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {{name: smoke}}\nspec:\n  metrics:\n  - name: smoke-test\n{extra}    provider:\n      job:\n        metadata: {{labels: {{team: shop}}}}\n        spec:\n          backoffLimit: 0\n          template:\n            spec:\n              restartPolicy: Never\n              containers:\n              - {{name: check, image: curlimages/curl:8.9.1, command: [sh, -c, '{command}']}}\n"
    )
}

async fn run_jobs(server: &ApiServer, dir: &std::path::Path, run: &str, yaml: &str) -> barge_analysis::Report {
    let s = spec(yaml);
    let analysis = Analysis::prepare(&s, &args::Resolved::default()).unwrap();
    let providers = Providers {
        jobs: Some(JobTarget {
            clusters: Arc::new(barge_kube::Clusters::new(Some(server.kubeconfig(dir)))),
            context: None,
            namespace: "shop".into(),
            run: run.into(),
        }),
        ..Providers::default()
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    barge_analysis::run(&analysis, &providers, stopped, |_, _| {}).await
}

#[tokio::test(flavor = "multi_thread")]
async fn each_measurement_is_a_job_and_its_conditions_decide() {
    let server = ApiServer::start(Some("t")).await;
    let dir = tempfile::tempdir().unwrap();
    let _jobs = controllers::jobs(server.clone(), Duration::from_millis(150));
    let ok = run_jobs(
        &server,
        dir.path(),
        "dev.75f1aac.1a2b",
        &job_template("curl -sf http://web/healthz", "    interval: 100ms\n    count: 2\n"),
    )
    .await;
    assert_eq!(ok.phase, Phase::Successful, "{ok:#?}");
    let m = &ok.metrics[0];
    assert_eq!(
        m.resolved,
        "Job: curlimages/curl:8.9.1 sh -c curl -sf http://web/healthz"
    );
    let values: Vec<_> = m.measurements.iter().map(|x| x.value.as_deref()).collect();
    assert_eq!(values, [Some("Complete"), Some("Complete")]);
    let jobs = server.list("batch", "jobs");
    let names: Vec<&str> = jobs.iter().map(|j| j["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["dev-75f1aac-1a2b-smoke-test-1", "dev-75f1aac-1a2b-smoke-test-2"]
    );
    let labels = &jobs[0]["metadata"]["labels"];
    assert_eq!(
        (labels["team"].as_str(), labels["analysis.barge.dev/metric"].as_str()),
        (Some("shop"), Some("smoke-test"))
    );
    assert_eq!(jobs[0]["metadata"]["namespace"], "shop");
    assert_eq!(jobs[0]["spec"]["backoffLimit"], 0, "the template's spec, as written");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /apis/batch/v1/namespaces/shop/jobs?") && r.contains("watch=true")),
        "the Job is followed with a WATCH: {:?}",
        server.requests()
    );

    let failed = run_jobs(
        &server,
        dir.path(),
        "dev.9d0e1f2.1a2c",
        &job_template("curl -sf http://web/healthz || exit 1", ""),
    )
    .await;
    // A run resumed under the same name follows the Jobs it already made instead of making more.
    let again = run_jobs(
        &server,
        dir.path(),
        "dev.9d0e1f2.1a2c",
        &job_template("curl -sf http://web/healthz || exit 1", ""),
    )
    .await;
    assert_eq!(again.phase, Phase::Failed);
    assert_eq!(server.list("batch", "jobs").len(), 3);
    assert_eq!(failed.phase, Phase::Failed, "{failed:#?}");
    assert_eq!(
        failed.metrics[0].measurements[0].value.as_deref(),
        Some("Failed (BackoffLimitExceeded: Job has reached the specified backoff limit)")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_that_cannot_pull_its_image_is_inconclusive_at_once() {
    let server = ApiServer::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let _jobs = controllers::jobs(server.clone(), Duration::from_millis(50));
    let template = job_template("true", "").replace("curlimages/curl:8.9.1", "does-not-exist:1");
    let report = run_jobs(&server, dir.path(), "dev.pull.1", &template).await;
    assert_eq!(report.phase, Phase::Inconclusive, "{report:#?}");
    assert_eq!(
        report.metrics[0].measurements[0].value.as_deref(),
        Some("ImagePullBackOff: Back-off pulling image \"does-not-exist:1\"")
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/shop/pods?labelSelector=job-name=dev-pull-1-smoke-test-1")),
        "{:?}",
        server.requests()
    );
}

#[tokio::test]
async fn job_metrics_without_a_cluster_end_at_once_saying_why() {
    let s = spec(&job_template("true", ""));
    let analysis = Analysis::prepare(&s, &args::Resolved::default()).unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let report = barge_analysis::run(&analysis, &Providers::default(), stopped, |_, _| {}).await;
    assert_eq!(report.phase, Phase::Error);
    assert!(
        report.message.contains("job metrics need a Kubernetes cluster"),
        "{}",
        report.message
    );
    assert!(report.metrics[0].measurements.is_empty());
}
