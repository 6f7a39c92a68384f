//! `barge analysis run` end to end against a real Prometheus (backfilled with promtool): the
//! bundled example's success-rate template passes healthy traffic and fails degraded traffic,
//! with every measurement shown, and refuses to start without its arguments.

mod support;

use barge_testkit::prometheus::{Counter, Prometheus};
use support::{barge, root, stderr, stdout};

fn guestbook(ok: f64, failing: f64) -> Vec<Counter> {
    vec![
        Counter {
            family: "http_requests_total",
            labels: r#"service="guestbook",code="200""#,
            per_second: ok,
        },
        Counter {
            family: "http_requests_total",
            labels: r#"service="guestbook",code="503""#,
            per_second: failing,
        },
    ]
}

fn run_template(prometheus: &str, extra: &[&str]) -> std::process::Output {
    let template = root().join("pipelines/analysis.yaml");
    barge()
        .args([
            "analysis",
            "run",
            template.to_str().unwrap(),
            "--prometheus",
            prometheus,
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_bundled_success_rate_passes_healthy_traffic_and_fails_degraded_traffic() {
    let healthy = Prometheus::start(&guestbook(99.0, 1.0));
    let degraded = Prometheus::start(&guestbook(90.0, 10.0));
    let url = degraded.url.clone();
    let failing = std::thread::spawn(move || run_template(&url, &["--arg", "service=guestbook", "-o", "json"]));
    let ok = run_template(&healthy.url, &["--arg", "service=guestbook"]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    let text = stdout(&ok);
    assert!(
        text.contains("success-rate: Successful  (3 measured: 3 successful"),
        "{text}"
    );
    assert!(
        text.contains(r#"sum(rate(http_requests_total{service="guestbook",code!~"5.."}[2m]))"#),
        "{text}"
    );
    assert_eq!(text.matches("Successful   [0.99]").count(), 3, "{text}");
    assert!(text.ends_with("Phase: Successful\n"), "{text}");
    assert!(
        stderr(&ok).contains("success-rate #1 Successful [0.99]"),
        "progress: {}",
        stderr(&ok)
    );

    let bad = failing.join().unwrap();
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    let report: serde_json::Value = serde_json::from_str(&stdout(&bad)).unwrap();
    assert_eq!(report["phase"], "Failed");
    assert_eq!(
        report["message"],
        "Metric \"success-rate\" assessed Failed due to failed (2) > failureLimit (1)"
    );
    let values: Vec<&str> = report["metrics"][0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["[0.9]", "[0.9]"]);
}

#[test]
fn a_run_that_cannot_start_says_why_and_exits_2() {
    let out = run_template("http://127.0.0.1:9", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "success-rate: argument \"service\" has no value; give it one (--arg service=... or the Stage's verification.args)"
        ),
        "{}",
        stderr(&out)
    );
    let out = run_template("http://127.0.0.1:9", &["--arg", "servce=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("argument \"servce\" is not declared by the template (it declares: service, prometheus)"),
        "{}",
        stderr(&out)
    );
    let out = barge()
        .args([
            "analysis",
            "run",
            root().join("pipelines").to_str().unwrap(),
            "--template",
            "nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no AnalysisTemplate named \"nope\""),
        "{}",
        stderr(&out)
    );
}
