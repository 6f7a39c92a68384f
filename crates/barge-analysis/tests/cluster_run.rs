//! The in-cluster mode: barge creates an AnalysisRun on the test API server and follows the
//! analysis controller's verdict; secret arguments stay references; a stop terminates the run.

mod support;

use barge_testkit::kube as kube_support;

use barge_analysis::cluster::{self, ClusterRun};
use barge_core::analysis::Phase;
use kube_support::apiserver::{ApiServer, Options};
use kube_support::controllers;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use support::{args, spec};

const TEMPLATE: &str = "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: success-rate}\nspec:\n  args:\n  - {name: service}\n  - {name: threshold, value: '0.95'}\n  - name: token\n    valueFrom: {secretKeyRef: {name: prom, key: token}}\n  metrics:\n  - name: success-rate\n    successCondition: result[0] >= {{args.threshold}}\n    provider: {prometheus: {address: 'http://prometheus:9090', query: 'up{service=\"{{args.service}}\"}'}}\n";

fn target(server: &ApiServer, dir: &std::path::Path) -> ClusterRun {
    ClusterRun {
        clusters: Arc::new(barge_kube::Clusters::new(Some(server.kubeconfig(dir)))),
        context: None,
        namespace: "shop".into(),
        name_prefix: "dev.75f1aac.".into(),
        labels: BTreeMap::from([("kargo.akuity.io/stage".into(), "dev".into())]),
        annotations: BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analysis_run_is_created_and_its_verdict_followed() {
    let server = ApiServer::start(Some("t")).await;
    let dir = tempfile::tempdir().unwrap();
    let verdict = |run: &serde_json::Value| {
        let bad = run["spec"]["args"][0]["value"] == "checkout";
        (
            if bad { "Failed" } else { "Successful" }.to_string(),
            if bad { "[0.5]" } else { "[0.99]" }.to_string(),
        )
    };
    let _ctl = controllers::analysis_runs(server.clone(), Arc::new(verdict), Duration::from_millis(200));
    let s = spec(TEMPLATE);
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let mut seen = Vec::new();
    let (name, report) = cluster::run(
        &target(&server, dir.path()),
        &s,
        &args(&[("service", "web")]),
        stopped,
        |m, x| {
            seen.push(format!(
                "{} {:?} {}",
                m.name,
                x.phase,
                x.value.clone().unwrap_or_default()
            ))
        },
    )
    .await
    .unwrap();
    assert!(name.starts_with("dev.75f1aac."), "{name}");
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    assert_eq!(seen, ["success-rate Successful [0.99]"]);
    let run = server.get("argoproj.io", "analysisruns", "shop", &name).unwrap();
    assert_eq!(run["metadata"]["labels"]["kargo.akuity.io/stage"], "dev");
    assert_eq!(
        run["spec"]["args"],
        serde_json::json!([{"name": "service", "value": "web"}, {"name": "threshold", "value": "0.95"},
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "prom", "key": "token"}}}]),
        "the secret stays a reference for the cluster to resolve"
    );
    assert_eq!(
        run["spec"]["metrics"][0]["successCondition"], "result[0] >= {{args.threshold}}",
        "the controller substitutes"
    );

    let (stop_tx, stopped) = tokio::sync::watch::channel(false);
    let (_, failed) = cluster::run(
        &target(&server, dir.path()),
        &s,
        &args(&[("service", "checkout")]),
        stopped,
        |_, _| {},
    )
    .await
    .unwrap();
    drop(stop_tx);
    assert_eq!(failed.phase, Phase::Failed);
    assert_eq!(
        failed.message,
        "Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    assert_eq!(failed.metrics[0].counters.failed, 1);
    assert_eq!(failed.metrics[0].measurements[0].value.as_deref(), Some("[0.5]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_terminates_the_run_in_the_cluster() {
    let server = ApiServer::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let _ctl = controllers::analysis_runs(
        server.clone(),
        Arc::new(|_| ("Successful".into(), "[1]".into())),
        Duration::from_secs(3600),
    );
    let s = spec(TEMPLATE);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let target = target(&server, dir.path());
    let given = args(&[("service", "web")]);
    let running = tokio::spawn(async move { cluster::run(&target, &s, &given, stopped, |_, _| {}).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    let (name, report) = running.await.unwrap().unwrap();
    assert!(report.stopped);
    let run = server
        .wait_for(
            "argoproj.io",
            "analysisruns",
            "shop",
            &name,
            // It returns once the controller terminated the run; a loaded machine gets 30 s.
            Duration::from_secs(30),
            |r| r["status"]["phase"] == "Successful",
        )
        .await;
    assert_eq!(run["spec"]["terminate"], true);
    assert_eq!(run["status"]["message"], "Run Terminated");
}

/// While barge follows the run, its watches are cut short (a proxy's timeout) and the server's
/// history is compacted under them: each reconnect is 410 Gone, barge re-lists the run and
/// resumes, and still sees the verdict.
#[tokio::test(flavor = "multi_thread")]
async fn the_verdict_is_seen_through_cut_watches_and_a_compacted_history() {
    let server = ApiServer::start_with(Options {
        cut_watches_after: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let _ctl = controllers::analysis_runs(
        server.clone(),
        Arc::new(|_| ("Successful".into(), "[0.99]".into())),
        Duration::from_millis(1500),
    );
    // Other writes move the version on, and each is compacted away at once.
    server.put(
        "batch",
        "jobs",
        serde_json::json!({"metadata": {"name": "noise", "namespace": "shop"}, "spec": {}}),
    );
    let churn = {
        let server = server.clone();
        tokio::spawn(async move {
            for n in 0.. {
                server.update("batch", "jobs", "shop", "noise", |j| {
                    j["status"] = serde_json::json!({"n": n});
                    true
                });
                server.compact();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let (_, report) = cluster::run(
        &target(&server, dir.path()),
        &spec(TEMPLATE),
        &args(&[("service", "web")]),
        stopped,
        |_, _| {},
    )
    .await
    .unwrap();
    churn.abort();
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    let relists = server
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with("GET /apis/argoproj.io/v1alpha1/namespaces/shop/analysisruns?fieldSelector=")
                && !r.contains("watch=true")
        })
        .count();
    assert!(relists > 0, "the 410s were re-listed: {:?}", server.requests());
}
