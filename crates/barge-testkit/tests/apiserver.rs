//! The test API server's protocol, byte for byte where the real server's is documented
//! ("Kubernetes API Concepts", "Server-Side Apply"): the 410 ERROR event, BOOKMARK events,
//! watch timeouts, server-side apply with managedFields and conflicts, and RBAC's 403.

use barge_testkit::kube::apiserver::{ApiServer, Options};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const APPS: &str = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications";

fn app(name: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"source": {"repoURL": "https://git.example.com/acme/config.git", "targetRevision": "main", "path": "dev"}}})
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A whole watch response, as its events.
async fn watch(server: &ApiServer, query: &str) -> Vec<Value> {
    let text = http()
        .get(format!("{}{APPS}?watch=1&{query}", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_watch_from_before_the_history_is_an_expired_error_event() {
    let server = ApiServer::start_with(Options {
        history: 3,
        ..Options::default()
    })
    .await;
    let first = server.put("argoproj.io", "applications", app("web-dev"));
    for i in 0..3 {
        server.update("argoproj.io", "applications", "argocd", "web-dev", |a| {
            a["status"] = json!({"n": i});
            true
        });
    }
    // Three events kept: a watch from the first version still gets all that followed it.
    let events = watch(&server, &format!("resourceVersion={}&timeoutSeconds=1", rv(&first))).await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["type"] == "MODIFIED"));

    server.update("argoproj.io", "applications", "argocd", "web-dev", |a| {
        a["status"] = json!({"n": 3});
        true
    });
    let events = watch(&server, &format!("resourceVersion={}&timeoutSeconds=1", rv(&first))).await;
    assert_eq!(
        events,
        [
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("too old resource version: {} ({})", rv(&first), rv(&first) + 1),
            "reason": "Expired", "code": 410}})
        ]
    );

    // A compaction expires every older version.
    let now = server.get("argoproj.io", "applications", "argocd", "web-dev").unwrap();
    server.put("argoproj.io", "applications", app("api-dev"));
    server.compact();
    let events = watch(&server, &format!("resourceVersion={}&timeoutSeconds=1", rv(&now))).await;
    assert_eq!(events[0]["object"]["code"], 410);
    let latest = server.get("argoproj.io", "applications", "argocd", "api-dev").unwrap();
    let events = watch(&server, &format!("resourceVersion={}&timeoutSeconds=1", rv(&latest))).await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn bookmarks_carry_the_latest_version_and_watches_end_at_their_timeout() {
    let server = ApiServer::start_with(Options {
        bookmark_every: Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    let first = server.put("argoproj.io", "applications", app("web-dev"));
    let other = server.put("argoproj.io", "applications", app("api-dev"));
    let started = Instant::now();
    let events = watch(
        &server,
        &format!(
            "resourceVersion={}&fieldSelector=metadata.name%3Dweb-dev&allowWatchBookmarks=true&timeoutSeconds=2",
            rv(&first)
        ),
    )
    .await;
    // It ends at its timeout, not at the server's default (30 minutes). The upper bound and
    // the count of bookmarks (10 nominally, at least 3) leave a loaded machine room: with 1 s
    // and a bound of 3 s, a stalled server task could miss either.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "{took:?}"
    );
    assert!(events.len() >= 3, "about one bookmark per 200ms: {events:?}");
    for e in &events {
        assert_eq!(
            e,
            &json!({"type": "BOOKMARK", "object": {"kind": "Application", "apiVersion": "argoproj.io/v1alpha1",
                "metadata": {"resourceVersion": rv(&other).to_string()}}}),
            "the other app's change moved the version on, not shown otherwise"
        );
    }
    let none = watch(&server, &format!("resourceVersion={}&timeoutSeconds=1", rv(&other))).await;
    assert!(none.is_empty(), "no bookmarks unless asked: {none:?}");

    let cut = ApiServer::start_with(Options {
        cut_watches_after: Some(Duration::from_millis(300)),
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    watch(&cut, "resourceVersion=1&timeoutSeconds=60").await;
    // Cut after 300 ms, not at the 60 s timeout; 30 s is room for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(30), "cut short");
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_refuses_conflicts_without_force() {
    let server = ApiServer::start(None).await;
    server.put("argoproj.io", "applications", app("web-dev"));
    let url = format!("{}{APPS}/web-dev", server.url);
    let apply = |manager: &str, force: bool, body: String| {
        http()
            .patch(format!("{url}?fieldManager={manager}&force={force}"))
            .header("content-type", "application/apply-patch+yaml")
            .body(body)
            .send()
    };
    let revision = |r: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: web-dev, namespace: argocd}}\nspec:\n  source:\n    targetRevision: {r}\n"
        )
    };

    // The creator (an Update) owns every field it set: changing one is a conflict...
    let r = apply("barge", false, revision("v2")).await.unwrap();
    assert_eq!(r.status(), 409);
    let refused: Value = r.json().await.unwrap();
    assert_eq!(
        refused["message"],
        "Apply failed with 1 conflict: conflict with \"test-controller\" using argoproj.io/v1alpha1: .spec.source.targetRevision"
    );
    // ...that force settles.
    let r = apply("barge", true, revision("v2")).await.unwrap();
    assert_eq!(r.status(), 200);
    let applied: Value = r.json().await.unwrap();
    assert_eq!(applied["spec"]["source"]["targetRevision"], "v2");
    assert_eq!(applied["spec"]["source"]["path"], "dev", "apply merges");
    let barge = applied["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == "barge")
        .unwrap()
        .clone();
    assert_eq!(barge["operation"], "Apply");
    assert_eq!(barge["fieldsType"], "FieldsV1");
    assert_eq!(
        barge["fieldsV1"],
        json!({"f:spec": {"f:source": {"f:targetRevision": {}}}})
    );

    // Another manager setting it to something else: 409, with the real message.
    let r = apply("kubectl", false, revision("v3")).await.unwrap();
    assert_eq!(r.status(), 409);
    let refused: Value = r.json().await.unwrap();
    assert_eq!(refused["reason"], "Conflict");
    assert_eq!(
        refused["message"],
        "Apply failed with 1 conflict: conflict with \"barge\" using argoproj.io/v1alpha1: .spec.source.targetRevision"
    );
    assert_eq!(refused["details"]["causes"][0]["field"], ".spec.source.targetRevision");
    assert_eq!(
        server.get("argoproj.io", "applications", "argocd", "web-dev").unwrap()["spec"]["source"]["targetRevision"],
        "v2",
        "nothing changed"
    );
    // The same value is shared ownership, not a conflict.
    assert_eq!(apply("kubectl", false, revision("v2")).await.unwrap().status(), 200);
    // Forced: kubectl takes the field; barge no longer owns it.
    let r = apply("argocd", true, revision("v4")).await.unwrap();
    assert_eq!(r.status(), 200);
    let forced: Value = r.json().await.unwrap();
    assert_eq!(forced["spec"]["source"]["targetRevision"], "v4");
    let owners: Vec<&str> = forced["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["fieldsV1"]["f:spec"]["f:source"]["f:targetRevision"].is_object())
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["argocd"]);

    // A field its applier leaves out is removed, unless someone else owns it.
    let labelled = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web-dev, namespace: argocd, labels: {team: shop}}\n";
    assert_eq!(apply("labeller", false, labelled.into()).await.unwrap().status(), 200);
    let bare = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: web-dev, namespace: argocd}\n";
    let r: Value = apply("labeller", false, bare.into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r["metadata"]["labels"]["team"].is_null(), "{r}");

    // An update (merge patch) takes the fields it changes from their owner.
    let r = http()
        .patch(format!("{url}?fieldManager=kubectl-edit"))
        .header("content-type", "application/merge-patch+json")
        .body(json!({"spec": {"source": {"targetRevision": "v5"}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = apply("argocd", false, revision("v6")).await.unwrap();
    assert_eq!(r.status(), 409);
    let refused: Value = r.json().await.unwrap();
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("conflict with \"kubectl-edit\""),
        "{refused}"
    );

    // Apply needs a field manager; it creates what does not exist.
    let r = http()
        .patch(format!("{}{APPS}/new-app", server.url))
        .header("content-type", "application/apply-patch+yaml")
        .body(revision("v1").replace("web-dev", "new-app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = apply("barge", false, String::new()).await.unwrap();
    assert_eq!(r.status(), 400, "an empty body is not an object");
    let r = http()
        .patch(format!("{}{APPS}/new-app?fieldManager=barge", server.url))
        .header("content-type", "application/apply-patch+yaml")
        .body(revision("v1").replace("web-dev", "new-app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(server.get("argoproj.io", "applications", "argocd", "new-app").is_some());
}

#[tokio::test]
async fn rbac_denials_answer_403_with_the_authorizers_message() {
    let server = ApiServer::start(None).await;
    server.put("argoproj.io", "applications", app("web-dev"));
    server.deny("list", "argoproj.io", "applications", "argocd");
    server.deny("patch", "argoproj.io", "rollouts/status", "*");
    let r = http().get(format!("{}{APPS}", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "applications.argoproj.io is forbidden: User \"system:serviceaccount:barge:barge\" cannot list resource \"applications\" in API group \"argoproj.io\" in the namespace \"argocd\"",
            "reason": "Forbidden", "details": {"group": "argoproj.io", "kind": "applications"}, "code": 403})
    );
    let r = http()
        .get(format!("{}{APPS}/web-dev", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "get is not list");
    server.put(
        "argoproj.io",
        "rollouts",
        json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {}}),
    );
    let r = http()
        .patch(format!(
            "{}/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/web/status",
            server.url
        ))
        .header("content-type", "application/merge-patch+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let refused: Value = r.json().await.unwrap();
    assert_eq!(
        refused["message"],
        "rollouts.argoproj.io \"web\" is forbidden: User \"system:serviceaccount:barge:barge\" cannot patch resource \"rollouts/status\" in API group \"argoproj.io\" in the namespace \"shop\""
    );
}
