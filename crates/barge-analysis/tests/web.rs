//! Web metrics against a local HTTP server: the Kargo demo's canary checks, JSON paths,
//! methods and bodies, bearer tokens from secrets (never shown), and HTTP failures as errors.

mod support;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use barge_analysis::Providers;
use barge_analysis::{Analysis, run as run_analysis};
use barge_core::analysis::{Phase, args};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use support::{fixture, run, spec};

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<String>>>,
}

/// A product-api stand-in: `/health`, `/products` (its count set by `?count=`, default 3),
/// `/verify` (POST, wants a bearer token), `/down` (503).
async fn product_api() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route(
            "/health",
            get(
                |State(s): State<Seen>, Query(q): Query<HashMap<String, String>>| async move {
                    s.requests
                        .lock()
                        .unwrap()
                        .push(format!("health ns={}", q.get("namespace").cloned().unwrap_or_default()));
                    Json(json!({"status": "healthy"}))
                },
            ),
        )
        .route(
            "/products",
            get(|Query(q): Query<HashMap<String, String>>| async move {
                let count: i64 = q.get("count").and_then(|c| c.parse().ok()).unwrap_or(3);
                Json(json!({"count": count, "items": (0..count).map(|i| json!({"id": i})).collect::<Vec<_>>()}))
            }),
        )
        .route(
            "/verify",
            post(
                |State(s): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    s.requests.lock().unwrap().push(format!("verify {auth} {body}"));
                    if auth != "Bearer t0ken-from-store" {
                        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad token"})));
                    }
                    (StatusCode::OK, Json(json!({"approved": body["version"] == "1.4.0"})))
                },
            ),
        )
        .route(
            "/down",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "upstream connect error") }),
        )
        .route("/text", get(|| async { "OK" }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn the_kargo_demo_canary_check_passes_on_a_healthy_api_and_fails_without_products() {
    let (url, seen) = product_api().await;
    let report = run(
        &fixture("canary-check"),
        &[("namespace", "kargo-demo-dev"), ("base-url", &url)],
    )
    .await;
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    assert_eq!(report.metrics[0].measurements[0].value.as_deref(), Some("\"healthy\""));
    assert_eq!(report.metrics[1].measurements[0].value.as_deref(), Some("3"));
    assert_eq!(
        report.metrics[0].resolved,
        format!("GET {url}/health?namespace=kargo-demo-dev")
    );
    assert_eq!(seen.requests.lock().unwrap().as_slice(), ["health ns=kargo-demo-dev"]);

    // An empty catalogue: the template's `base-url` is the only way in, so append a query.
    let empty = run(
        &fixture("canary-check"),
        &[("namespace", "x&count=0"), ("base-url", &url)],
    )
    .await;
    assert_eq!(empty.phase, Phase::Failed, "{empty:#?}");
    assert_eq!(empty.metrics[0].phase, Phase::Successful);
    assert_eq!(empty.metrics[1].phase, Phase::Failed);
    assert_eq!(empty.metrics[1].measurements[0].value.as_deref(), Some("0"));
}

fn web_template(metric: &str) -> String {
    format!("apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {{name: t}}\nspec:\n{metric}")
}

#[tokio::test]
async fn json_types_survive_and_plain_text_is_a_string() {
    let (url, _) = product_api().await;
    let t = web_template(&format!(
        "  metrics:\n  - name: all\n    successCondition: result.count == 3 && len(result.items) == 3 && result.items[2].id == 2\n    provider: {{web: {{url: '{url}/products'}}}}\n  - name: text\n    successCondition: result == 'OK'\n    provider: {{web: {{url: '{url}/text'}}}}\n"
    ));
    let report = run(&spec(&t), &[]).await;
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
}

#[tokio::test]
async fn a_bearer_token_from_the_secret_store_is_sent_and_never_shown() {
    let (url, seen) = product_api().await;
    // The seed's webhook-based verification, with the token taken from a secret.
    let t = web_template(&format!(
        "  args:\n  - name: token\n    valueFrom: {{secretKeyRef: {{name: verifier, key: token}}}}\n  - name: version\n  metrics:\n  - name: approved\n    successCondition: result.approved == true\n    provider:\n      web:\n        method: POST\n        url: '{url}/verify'\n        headers: [{{key: Authorization, value: 'Bearer {{{{args.token}}}}'}}]\n        jsonBody: {{version: '{{{{args.version}}}}'}}\n"
    ));
    let s = spec(&t);
    let given = support::args(&[("version", "1.4.0")]);
    let resolved = args::resolve(&s.args, &given, &mut |name, key| {
        assert_eq!((name, key), ("verifier", "token"));
        Ok("t0ken-from-store".into())
    })
    .unwrap();
    let analysis = Analysis::prepare(&s, &resolved).unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let report = run_analysis(&analysis, &Providers::default(), stopped, |_, _| {}).await;
    assert_eq!(report.phase, Phase::Successful, "{report:#?}");
    assert_eq!(
        seen.requests.lock().unwrap().as_slice(),
        [r#"verify Bearer t0ken-from-store {"version":"1.4.0"}"#]
    );
    let shown = serde_json::to_string(&report).unwrap();
    assert!(!shown.contains("t0ken-from-store"), "{shown}");

    // A refused token: the measurement is an Error that says so, still without the secret.
    let resolved = args::resolve(&s.args, &given, &mut |_, _| Ok("wrong-t0ken".into())).unwrap();
    let analysis = Analysis::prepare(&s, &resolved).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // One refusal is enough to see (the rest would be retries 10 s apart).
    let report = run_analysis(&analysis, &Providers::default(), stopped, |_, _| {
        let _ = stop.send(true);
    })
    .await;
    let m = &report.metrics[0].measurements[0];
    assert_eq!(m.phase, Phase::Error);
    assert!(m.message.as_deref().unwrap().contains("HTTP 401"), "{m:?}");
    assert!(!serde_json::to_string(&report).unwrap().contains("wrong-t0ken"));
}

#[tokio::test]
async fn http_failures_are_errors_and_bad_settings_are_refused() {
    let (url, _) = product_api().await;
    let t = web_template(&format!(
        "  metrics:\n  - name: down\n    consecutiveErrorLimit: 0\n    provider: {{web: {{url: '{url}/down'}}}}\n"
    ));
    let report = run(&spec(&t), &[]).await;
    assert_eq!(report.phase, Phase::Error, "{report:#?}");
    let m = &report.metrics[0].measurements[0];
    assert_eq!(
        m.message.as_deref(),
        Some(format!("GET {url}/down: HTTP 503: upstream connect error").as_str())
    );
    for (metric, expected) in [
        (
            "{url: 'URL/health', jsonPath: '{$.nope}'}",
            "jsonPath {$.nope} matches nothing",
        ),
        ("{url: 'URL/health', body: x}", "a GET request cannot have a body"),
    ] {
        let t = web_template(&format!(
            "  metrics:\n  - name: m\n    consecutiveErrorLimit: 0\n    provider: {{web: {}}}\n",
            metric.replace("URL", &url)
        ));
        let report = run(&spec(&t), &[]).await;
        let message = report.metrics[0].measurements[0].message.clone().unwrap_or_default();
        assert!(message.contains(expected), "{report:#?}");
    }
}

#[test]
fn runs_that_cannot_start_are_refused_before_any_measurement() {
    let refuse = |metric: &str| {
        let s = spec(&web_template(metric));
        Analysis::prepare(&s, &args::Resolved::default()).unwrap_err()
    };
    assert_eq!(
        refuse("  metrics:\n  - name: dd\n    provider: {datadog: {query: x}}\n"),
        "metric \"dd\": provider datadog is not supported"
    );
    assert!(
        refuse("  metrics:\n  - name: c\n    count: 3\n    provider: {web: {url: x}}\n")
            .contains("count above 1 needs an interval")
    );
}
