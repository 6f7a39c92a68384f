//! barge-kube's client against the test API server: the REST semantics barge relies on
//! (GET, LIST with selectors, merge PATCH, create with generateName, WATCH from a
//! resourceVersion, DELETE) and each failure's class (404, 409, 401, 403, no configuration).

use barge_core::ErrorClass;
use barge_kube::{APPLICATION, Clusters, Objects, ROLLOUT, resource_version};
use barge_testkit::kube::apiserver::ApiServer;
use serde_json::json;
use std::time::Duration;

fn app(name: &str, team: &str) -> serde_json::Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd", "labels": {"team": team}},
        "spec": {"source": {"repoURL": "https://git.example.com/acme/config.git", "targetRevision": "main"}}})
}

#[tokio::test]
async fn objects_are_read_patched_created_watched_and_deleted() {
    let server = ApiServer::start(Some("s3cret")).await;
    let dir = tempfile::tempdir().unwrap();
    server.put("argoproj.io", "applications", app("web-dev", "shop"));
    server.put("argoproj.io", "applications", app("api-dev", "other"));
    let clusters = Clusters::new(Some(server.kubeconfig(dir.path())));
    let client = clusters.client(None).await.unwrap();
    let apps = Objects::new(client.clone(), APPLICATION, "argocd");

    let got = apps.get("web-dev").await.unwrap();
    assert_eq!(got["spec"]["source"]["targetRevision"], "main");
    assert_eq!(got["metadata"]["generation"], 1);
    let listed = apps.list("team=shop").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["metadata"]["name"], "web-dev");

    let patched = apps
        .merge_patch(
            "web-dev",
            &json!({"spec": {"source": {"targetRevision": "abc123"}}, "operation": {"sync": {"revision": "abc123"}}}),
        )
        .await
        .unwrap();
    assert_eq!(patched["spec"]["source"]["targetRevision"], "abc123");
    assert_eq!(
        patched["spec"]["source"]["repoURL"], "https://git.example.com/acme/config.git",
        "a merge patch keeps the rest"
    );
    assert_eq!(patched["metadata"]["generation"], 2);
    assert!(server.requests().iter().any(|r| {
        r.starts_with("PATCH /apis/argoproj.io/v1alpha1/namespaces/argocd/applications/web-dev")
            && r.ends_with("application/merge-patch+json")
    }));

    // A WATCH from the patched version sees the next change (a controller writing status). It
    // returns with the change; the minute is for a loaded machine.
    let rv = resource_version(&patched).to_string();
    let (watcher, controller) = tokio::join!(apps.next_change("web-dev", &rv, Duration::from_secs(60)), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.update("argoproj.io", "applications", "argocd", "web-dev", |a| {
            a["status"] = json!({"sync": {"status": "Synced"}});
            true
        })
    });
    assert!(controller);
    assert_eq!(watcher.unwrap().unwrap()["status"]["sync"]["status"], "Synced");
    let quiet = apps
        .next_change(
            "web-dev",
            resource_version(&apps.get("web-dev").await.unwrap()),
            Duration::from_secs(1),
        )
        .await
        .unwrap();
    assert!(quiet.is_none(), "nothing changed within the limit");

    let rollouts = Objects::new(client.clone(), ROLLOUT, "shop");
    let created = rollouts
        .create(&json!({"metadata": {"generateName": "web-"}, "spec": {"replicas": 1}}))
        .await
        .unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("web-") && name.len() > 4, "{name}");
    assert_eq!(created["apiVersion"], "argoproj.io/v1alpha1");
    let again = rollouts
        .create(&json!({"metadata": {"name": name.clone()}, "spec": {}}))
        .await
        .unwrap_err();
    assert_eq!(again.class(), ErrorClass::Conflict, "{again}");
    rollouts.delete(&name).await.unwrap();
    let gone = rollouts.get(&name).await.unwrap_err();
    assert_eq!(gone.class(), ErrorClass::NotFound, "{gone}");
    assert!(gone.to_string().contains(&format!("Rollout shop/{name}")), "{gone}");
    rollouts.delete(&name).await.expect("deleting what is gone is done");
}

#[tokio::test]
async fn refusals_and_missing_configuration_are_classified() {
    let server = ApiServer::start(Some("right")).await;
    let dir = tempfile::tempdir().unwrap();
    let path = server.kubeconfig(dir.path());
    let wrong = std::fs::read_to_string(&path)
        .unwrap()
        .replace("token: right", "token: wrong");
    std::fs::write(&path, wrong).unwrap();
    let clusters = Clusters::new(Some(path));
    let apps = Objects::new(clusters.client(None).await.unwrap(), APPLICATION, "argocd");
    let e = apps.get("web-dev").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");

    // RBAC: a 403 names what is missing and how to grant it.
    let allowed = ApiServer::start(None).await;
    allowed.put("argoproj.io", "applications", app("web-dev", "shop"));
    allowed.deny("patch", "argoproj.io", "applications", "argocd");
    let apps = Objects::new(
        Clusters::new(Some(allowed.kubeconfig(dir.path())))
            .client(None)
            .await
            .unwrap(),
        APPLICATION,
        "argocd",
    );
    assert!(apps.get("web-dev").await.is_ok(), "only patch is denied");
    let e = apps.merge_patch("web-dev", &json!({"spec": {}})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("Application argocd/web-dev: applications.argoproj.io \"web-dev\" is forbidden: User \"system:serviceaccount:barge:barge\" cannot patch resource \"applications\" in API group \"argoproj.io\" in the namespace \"argocd\" (403)"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"grant it with a Role rule {apiGroups: ["argoproj.io"], resources: ["applications"], verbs: ["patch"]}"#
        ),
        "{text}"
    );

    let missing = Clusters::new(Some(dir.path().join("nope")));
    let Err(e) = missing.client(None).await else {
        panic!("a client without configuration")
    };
    assert_eq!(e.class(), ErrorClass::Invalid);
    assert!(
        e.to_string().contains("no Kubernetes access") && e.to_string().contains("nope"),
        "{e}"
    );
    let ctx = Clusters::new(Some(server.kubeconfig(dir.path())));
    let Err(e) = ctx.client(Some("prod-eu")).await else {
        panic!("a client for an unknown context")
    };
    assert!(e.to_string().contains("for context \"prod-eu\""), "{e}");
}

#[tokio::test]
async fn contexts_name_clusters() {
    let (a, b) = (ApiServer::start(None).await, ApiServer::start(None).await);
    a.put("argoproj.io", "applications", app("on-a", "shop"));
    b.put("argoproj.io", "applications", app("on-b", "shop"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- {{name: a, cluster: {{server: '{}'}}}}\n- {{name: b, cluster: {{server: '{}'}}}}\nusers:\n- {{name: u, user: {{}}}}\ncontexts:\n- {{name: east, context: {{cluster: a, user: u}}}}\n- {{name: west, context: {{cluster: b, user: u}}}}\ncurrent-context: east\n",
            a.url, b.url
        ),
    )
    .unwrap();
    let clusters = Clusters::new(Some(path));
    let names = |apps: Vec<serde_json::Value>| {
        apps.iter()
            .map(|x| x["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let current = Objects::new(clusters.client(None).await.unwrap(), APPLICATION, "argocd");
    assert_eq!(names(current.list("").await.unwrap()), ["on-a"], "the current context");
    let west = Objects::new(clusters.client(Some("west")).await.unwrap(), APPLICATION, "argocd");
    assert_eq!(names(west.list("").await.unwrap()), ["on-b"]);
}
