//! Chart subscriptions: a classic repository's index.yaml served over HTTP in the test, and an
//! OCI chart in a real registry.

use barge_core::model::kargo::ChartSubscription;
use barge_registry::discover::discover_chart;
use barge_registry::{Registry, RegistryConfig};
use barge_testkit::registry::TestRegistry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INDEX: &str = r#"apiVersion: v1
entries:
  podinfo:
    - name: podinfo
      version: 6.5.4
      urls: [podinfo-6.5.4.tgz]
    - name: podinfo
      version: 6.6.0
      urls: [podinfo-6.6.0.tgz]
    - name: podinfo
      version: 6.7.0-rc.1
      urls: [podinfo-6.7.0-rc.1.tgz]
    - name: podinfo
      version: 5.2.1
      urls: [podinfo-5.2.1.tgz]
  other:
    - name: other
      version: 9.9.9
generated: "2026-01-01T00:00:00Z"
"#;

/// Serves `INDEX` at /charts/index.yaml.
async fn index_server() -> (String, tokio::task::JoinHandle<()>) {
    index_server_with(None).await
}

/// Serves `INDEX` at /charts/index.yaml, behind basic auth when `authorization` is given (the
/// header's expected value): a request without it is answered 401 with a Basic challenge.
async fn index_server_with(authorization: Option<&'static str>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let authorized = authorization.is_none_or(|a| {
                    req.lines()
                        .any(|l| l.to_ascii_lowercase() == format!("authorization: {}", a.to_ascii_lowercase()))
                });
                let (status, body) = if !authorized {
                    ("401 Unauthorized\r\nwww-authenticate: Basic realm=\"charts\"", "")
                } else if req.starts_with("GET /charts/index.yaml ") {
                    ("200 OK", INDEX)
                } else {
                    ("404 Not Found", "")
                };
                let _ = sock.write_all(format!("HTTP/1.1 {status}\r\ncontent-type: application/x-yaml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes()).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_http_repository() {
    let (addr, server) = index_server().await;
    let client = Registry::new(RegistryConfig::default()).unwrap();
    let sub = |c: Option<&str>| ChartSubscription {
        repo_url: format!("http://{addr}/charts/"),
        name: Some("podinfo".into()),
        semver_constraint: c.map(str::to_string),
        ..Default::default()
    };
    let d = discover_chart(&client, &sub(Some("^6.0.0"))).await.unwrap();
    assert_eq!(
        d.versions,
        ["6.6.0", "6.5.4"],
        "prereleases need a prerelease constraint"
    );
    assert_eq!((d.versions_listed, d.requests), (4, 1));
    let latest = discover_chart(&client, &sub(None)).await.unwrap();
    assert_eq!(
        latest.versions,
        ["6.7.0-rc.1", "6.6.0", "6.5.4", "5.2.1"],
        "without a constraint: every version, prereleases too (as Kargo, and as image and git tags)"
    );
    let pre = discover_chart(&client, &sub(Some(">=6.7.0-0"))).await.unwrap();
    assert_eq!(pre.versions, ["6.7.0-rc.1"]);
    let missing = discover_chart(
        &client,
        &ChartSubscription {
            name: Some("absent".into()),
            ..sub(None)
        },
    )
    .await
    .unwrap_err();
    assert_eq!(missing.class(), barge_core::ErrorClass::NotFound, "{missing}");
    server.abort();
}

/// A chart repository written with a userinfo (`http://u:p@host/charts/`): loading takes it out
/// of the definitions, and discovery gets it back from the catalog's memory of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_repository_written_with_credentials_authenticates_after_loading_took_them_out() {
    // base64("bot:s3cret")
    let (addr, server) = index_server_with(Some("Basic Ym90OnMzY3JldA==")).await;
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text(
        "w.yaml",
        &format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: w, namespace: p}}\nspec:\n  subscriptions:\n    - chart: {{repoURL: \"http://bot:s3cret@{addr}/charts/\", name: podinfo}}\n"
        ),
    );
    assert!(!catalog.texts["w.yaml"].contains("s3cret"));
    let Some(barge_core::model::Body::Warehouse(w)) = &catalog.resources[0].body else {
        panic!("a Warehouse: {:?}", catalog.diagnostics);
    };
    let sub = w.spec.as_ref().unwrap().subscriptions[0].chart.clone().unwrap();
    assert_eq!(sub.repo_url, format!("http://{addr}/charts/"));
    let without = Registry::new(RegistryConfig::default()).unwrap();
    let refused = discover_chart(&without, &sub).await.unwrap_err();
    assert_eq!(refused.class(), barge_core::ErrorClass::Auth, "{refused}");
    let written = catalog.url_credentials.clone();
    let with = Registry::new(RegistryConfig {
        url_credentials: Some(barge_registry::UrlCredentialLookup(std::sync::Arc::new(
            move |url: &str| written.for_request(url).cloned(),
        ))),
        ..Default::default()
    })
    .unwrap();
    let d = discover_chart(&with, &sub).await.unwrap();
    assert_eq!(d.versions[0], "6.7.0-rc.1");
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_chart_in_a_registry() {
    let reg = TestRegistry::start(None).await;
    reg.push_tags(
        "charts/mychart",
        &[
            "0.1.0".into(),
            "0.2.0".into(),
            "1.0.0_build.5".into(),
            "1.1.0-rc.1".into(),
        ],
    )
    .await;
    let client = Registry::new(RegistryConfig::default()).unwrap();
    let sub = ChartSubscription {
        repo_url: format!("oci://{}/charts/mychart", reg.host),
        semver_constraint: Some(">=0.2.0".into()),
        ..Default::default()
    };
    let d = discover_chart(&client, &sub).await.unwrap();
    assert_eq!(d.name, "mychart");
    assert_eq!(
        d.versions,
        ["1.0.0+build.5", "0.2.0"],
        "Helm's `_` in tags is `+` in versions"
    );
}
