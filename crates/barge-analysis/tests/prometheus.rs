//! Analyses against a real Prometheus serving backfilled data: the Rollouts semantics that
//! decide canaries (thresholds, failureLimit, the empty-vector pitfall and its guards, NaN,
//! initialDelay and interval timing) and the seeds' templates as their authors wrote them.

mod support;

use barge_core::analysis::Phase;
use barge_testkit::prometheus::{Counter, Prometheus, requests};
use support::{at_prometheus, fixture, run, run_stopping_after, spec, with_timing};

const RATIO: &str =
    r#"sum(rate(http_requests_total{app="demo",code!~"5.."}[2m])) / sum(rate(http_requests_total{app="demo"}[2m]))"#;

fn ratio_template(condition: &str, extra: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {{name: t}}\nspec:\n  metrics:\n  - name: success-rate\n{extra}    successCondition: '{condition}'\n    provider:\n      prometheus:\n        query: '{RATIO}'\n"
    )
}

#[tokio::test]
async fn a_success_rate_at_or_above_the_threshold_passes_and_shows_its_numbers() {
    let prom = Prometheus::start(&requests("demo", 9.7, 0.3));
    let s = at_prometheus(spec(&ratio_template("result[0] >= 0.95", "")), &prom.url);
    let report = run(&s, &[]).await;
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    let m = &report.metrics[0];
    assert_eq!(m.resolved, RATIO, "the resolved query is kept");
    assert_eq!(m.measurements.len(), 1);
    assert_eq!(m.measurements[0].value.as_deref(), Some("[0.97]"));
    assert_eq!(m.measurements[0].phase, Phase::Successful);
}

#[tokio::test]
async fn three_sub_threshold_reads_with_failure_limit_2_fail_the_run() {
    let prom = Prometheus::start(&requests("demo", 9.0, 1.0));
    let s = at_prometheus(
        spec(&ratio_template(
            "result[0] >= 0.95",
            "    interval: 200ms\n    count: 5\n    failureLimit: 2\n",
        )),
        &prom.url,
    );
    let report = run(&s, &[]).await;
    assert_eq!(report.phase, Phase::Failed, "{report:#?}");
    let m = &report.metrics[0];
    assert_eq!(m.measurements.len(), 3, "the third failure ends it, before count 5");
    assert!(m.measurements.iter().all(|x| x.value.as_deref() == Some("[0.9]")));
    assert_eq!(m.counters.failed, 3);
    assert_eq!(
        report.message,
        "Metric \"success-rate\" assessed Failed due to failed (3) > failureLimit (2)"
    );
}

#[tokio::test]
async fn result_0_on_an_empty_vector_errors_after_the_consecutive_error_limit_as_launchpad_first_did() {
    // No series matches: Prometheus answers an empty vector, and `result[0]` cannot be read.
    let prom = Prometheus::start(&fresh_canary());
    let s = at_prometheus(
        spec(&ratio_template(
            "result[0] >= 0.95",
            "    interval: 200ms\n    count: 3\n",
        )),
        &prom.url,
    );
    // launchpad's first production template, against a canary without samples yet (its
    // interval-without-count metric would run until the rollout ends it: stop after 6).
    let first = with_timing(at_prometheus(fixture("launchpad-first"), &prom.url), "300ms", None);
    let started = std::time::Instant::now();
    let (report, first) = tokio::join!(
        run(&s, &[]),
        run_stopping_after(&first, &[("canary-hash", "canary456")], 6)
    );
    assert_eq!(first.phase, Phase::Error, "{first:#?}");
    assert!(!first.stopped, "it ended by itself");
    assert_eq!(
        first.message,
        "Metric \"success-rate\" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4)"
    );
    assert!(
        first.metrics[0]
            .resolved
            .contains(r#"rollouts_pod_template_hash="canary456""#)
    );

    assert_eq!(report.phase, Phase::Error, "{report:#?}");
    let m = &report.metrics[0];
    assert_eq!(m.counters.error, 5, "the fifth consecutive error ends it (limit 4)");
    assert_eq!(m.counters.count, 0, "errors never consume count");
    assert!(
        m.measurements.iter().all(|x| x.value.as_deref() == Some("[]")
            && x.message
                .as_deref()
                .is_some_and(|t| t.contains("no data returned from the metric provider"))),
        "{m:#?}"
    );
    assert!(
        report
            .message
            .contains("consecutiveErrors (5) > consecutiveErrorLimit (4)"),
        "{}",
        report.message
    );
    // Rollouts retries an erroring measurement every 10 s, whatever the interval.
    let gaps: Vec<i64> = m
        .measurements
        .windows(2)
        .map(|w| w[1].started_at - w[0].finished_at)
        .collect();
    assert!(
        gaps.iter().all(|g| (9_900..12_000).contains(g)),
        "retries 10 s apart: {gaps:?}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(40));
}

#[tokio::test]
async fn the_empty_result_guards_pass() {
    let prom = Prometheus::start(&requests("other", 1.0, 0.0));
    let guarded = at_prometheus(
        spec(&ratio_template("len(result) == 0 || result[0] >= 0.95", "")),
        &prom.url,
    );
    let report = run(&guarded, &[]).await;
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    assert_eq!(report.metrics[0].measurements[0].value.as_deref(), Some("[]"));

    let fallback = ratio_template("result[0] >= 0.95", "").replace(RATIO, &format!("{RATIO} or vector(1)"));
    let report = run(&at_prometheus(spec(&fallback), &prom.url), &[]).await;
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    assert_eq!(report.metrics[0].measurements[0].value.as_deref(), Some("[1]"));
}

#[tokio::test]
async fn nan_with_both_conditions_is_inconclusive() {
    // Counters that do not move: 0 / 0 is NaN.
    let prom = Prometheus::start(&requests("demo", 0.0, 0.0));
    let s = ratio_template("result[0] >= 0.95", "    failureCondition: 'result[0] < 0.95'\n");
    let report = run(&at_prometheus(spec(&s), &prom.url), &[]).await;
    assert_eq!(report.phase, Phase::Inconclusive, "{report:#?}");
    assert_eq!(report.metrics[0].measurements[0].value.as_deref(), Some("[NaN]"));
}

#[tokio::test]
async fn initial_delay_and_interval_timing_hold() {
    let prom = Prometheus::start(&requests("demo", 9.7, 0.3));
    let s = at_prometheus(
        spec(&ratio_template(
            "result[0] >= 0.95",
            "    initialDelay: 1500ms\n    interval: 700ms\n    count: 3\n",
        )),
        &prom.url,
    );
    let report = run(&s, &[]).await;
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    let ms = &report.metrics[0].measurements;
    assert_eq!(ms.len(), 3);
    let first = ms[0].started_at - report.started_at;
    assert!(
        (1_500..2_500).contains(&first),
        "the first measurement waits initialDelay: {first} ms"
    );
    for w in ms.windows(2) {
        let gap = w[1].started_at - w[0].finished_at;
        assert!(
            (700..1_500).contains(&gap),
            "interval counts from the previous finish: {gap} ms"
        );
    }
}

#[tokio::test]
async fn basic_auth_and_headers_reach_prometheus_and_wrong_credentials_are_an_error() {
    let prom = Prometheus::start_with(&requests("demo", 9.7, 0.3), Some(("reader", "s3cret-pw")));
    let with = |user: &str, pass: &str| {
        ratio_template("result[0] >= 0.95", "").replace(
            "      prometheus:\n",
            &format!(
                "      prometheus:\n        headers: [{{key: X-Scope-OrgID, value: team-a}}]\n        authentication: {{basicAuth: {{username: {user}, password: {pass}}}}}\n"
            ),
        )
    };
    let ok = run(&at_prometheus(spec(&with("reader", "s3cret-pw")), &prom.url), &[]).await;
    assert_eq!(ok.phase, Phase::Successful, "{ok:#?}");
    let denied = run(&at_prometheus(spec(&with("reader", "wrong")), &prom.url), &[]).await;
    let m = &denied.metrics[0].measurements[0];
    assert_eq!(m.phase, Phase::Error);
    assert!(m.message.as_deref().unwrap().contains("HTTP 401"), "{m:?}");
}

#[tokio::test]
async fn launchpad_fixed_template_passes_a_canary_without_traffic_yet() {
    let prom = Prometheus::start(&fresh_canary());
    let fixed = with_timing(at_prometheus(fixture("launchpad"), &prom.url), "300ms", Some("1s"));
    // The metric has an interval and no count: it runs until the rollout ends it, which is
    // what stopping after three measurements stands for.
    let fixed = run_stopping_after(&fixed, &[("canary-hash", "canary456")], 3).await;
    assert_eq!(fixed.phase, Phase::Successful, "{fixed:#?}");
    assert!(fixed.stopped);
    let values: Vec<_> = fixed.metrics[0]
        .measurements
        .iter()
        .map(|m| m.value.as_deref())
        .collect();
    assert_eq!(
        values,
        vec![Some("[1]"); 3],
        "no canary traffic yet: `or vector(1)` answers 1"
    );
    assert!(
        fixed.metrics[0].measurements[0].started_at - fixed.started_at >= 1_000,
        "initialDelay"
    );
}

/// The stable pods serve traffic; the canary's (hash canary456) have no samples yet.
fn fresh_canary() -> Vec<Counter> {
    vec![Counter {
        family: "http_requests_total",
        labels: r#"namespace="production",rollouts_pod_template_hash="stable123",status="200""#,
        per_second: 20.0,
    }]
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// `http_requests_total` for one label set, `ok` and `failing` requests per second, with the
/// status in label `status_label`.
fn traffic(selector: &str, status_label: &str, ok: f64, failing: f64) -> Vec<Counter> {
    [("200", ok), ("503", failing)]
        .into_iter()
        .map(|(code, per_second)| Counter {
            family: "http_requests_total",
            labels: leak(format!("{selector},{status_label}=\"{code}\"")),
            per_second,
        })
        .collect()
}

#[tokio::test]
async fn lumen_template_passes_healthy_traffic_and_fails_on_the_fourth_bad_read() {
    let healthy = Prometheus::start(&traffic(r#"app="lumen-api""#, "status", 98.0, 2.0));
    let broken = Prometheus::start(&traffic(r#"app="lumen-api""#, "status", 35.0, 65.0));
    let lumen = |url: &str| with_timing(at_prometheus(fixture("lumen"), url), "200ms", None);
    let (healthy, broken) = (lumen(&healthy.url), lumen(&broken.url));
    let (ok, bad) = tokio::join!(run(&healthy, &[]), run(&broken, &[]));
    assert_eq!(ok.phase, Phase::Successful, "{ok:#?}");
    assert_eq!(ok.metrics[0].counters.count, 5, "count: 5 checks");
    assert_eq!(ok.metrics[0].measurements[0].value.as_deref(), Some("[0.98]"));
    assert_eq!(bad.phase, Phase::Failed, "{bad:#?}");
    assert_eq!(
        bad.metrics[0].counters.failed, 4,
        "failureLimit 3: the fourth failure ends it"
    );
    assert_eq!(bad.metrics[0].measurements[0].value.as_deref(), Some("[0.35]"));
}

#[tokio::test]
async fn penvoice_template_fails_after_three_sub_threshold_reads() {
    let healthy = Prometheus::start(&traffic(r#"namespace="penvoice""#, "code", 99.0, 1.0));
    let degraded = Prometheus::start(&traffic(r#"namespace="penvoice""#, "code", 90.0, 10.0));
    let penvoice = |url: &str| with_timing(at_prometheus(fixture("penvoice"), url), "200ms", None);
    let (healthy, degraded) = (penvoice(&healthy.url), penvoice(&degraded.url));
    let (ok, bad) = tokio::join!(run(&healthy, &[]), run(&degraded, &[]));
    assert_eq!(ok.phase, Phase::Successful, "{ok:#?}");
    assert_eq!(bad.phase, Phase::Failed, "{bad:#?}");
    assert_eq!(bad.metrics[0].measurements.len(), 3);
    assert!(
        bad.message.ends_with("failed (3) > failureLimit (2)"),
        "{}",
        bad.message
    );
}

/// The one AnalysisTemplate of `text`, loaded as barge loads definitions (the userinfo of
/// its URLs taken out and kept in the catalog).
fn loaded_template(text: &str) -> (barge_core::Catalog, barge_core::model::analysis::AnalysisTemplateSpec) {
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text("t.yaml", text);
    assert_eq!(catalog.errors(), 0, "{:?}", catalog.diagnostics);
    let spec = match &catalog.resources[0].body {
        Some(barge_core::model::Body::AnalysisTemplate(t)) => t.spec.clone().unwrap(),
        other => panic!("not an AnalysisTemplate: {other:?}"),
    };
    (catalog, spec)
}

#[tokio::test]
async fn an_address_written_with_credentials_sends_them_after_loading_took_them_out() {
    let prom = Prometheus::start_with(&requests("demo", 9.7, 0.3), Some(("reader", "s3cret-pw")));
    let address = prom.url.replace("http://", "http://reader:s3cret-pw@");
    // A wrong basicAuth too: the address's userinfo wins, as in Rollouts (Go's client sends it,
    // and the basicAuth round tripper adds nothing to a request that has an Authorization).
    let text = ratio_template("result[0] >= 0.95", "").replace(
        "      prometheus:\n",
        &format!(
            "      prometheus:\n        address: {address}\n        authentication: {{basicAuth: {{username: reader, password: wrong}}}}\n"
        ),
    );
    let (catalog, spec) = loaded_template(&text);
    assert!(!catalog.texts["t.yaml"].contains("s3cret-pw"));
    let written = spec.metrics[0].provider.prometheus.as_ref().unwrap().address.clone();
    assert_eq!(written.as_deref(), Some(prom.url.as_str()), "the address as stored");
    let analysis = barge_analysis::Analysis::prepare(&spec, &Default::default()).unwrap();
    let measure = |http: barge_analysis::http::Http| {
        let analysis = analysis.clone();
        async move {
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            barge_analysis::run(&analysis, &barge_analysis::Providers::new(http), stopped, |_, _| {}).await
        }
    };

    let report =
        measure(barge_analysis::http::Http::default().with_url_credentials(catalog.url_credentials.clone())).await;
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    let shown = serde_json::to_string(&report).unwrap();
    assert!(!shown.contains("s3cret-pw"), "{shown}");

    // Without the loaded credentials (a replica resuming from stored definitions) only the
    // wrong basicAuth is left, and Prometheus refuses it.
    let denied = measure(barge_analysis::http::Http::default()).await;
    let m = &denied.metrics[0].measurements[0];
    assert_eq!(m.phase, Phase::Error);
    assert!(m.message.as_deref().unwrap().contains("HTTP 401"), "{m:?}");
}
