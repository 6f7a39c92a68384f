//! `next_change` through what ends a real watch early, against the test API server doing what
//! kube-apiserver does: a version that fell out of its history is 410 Gone (barge re-lists and
//! resumes), watches end at their timeout (barge reconnects from the last version seen), and
//! BOOKMARKs move that version on so a reconnect does not fall out of the history.

use barge_kube::{APPLICATION, Clusters, Objects, resource_version};
use barge_testkit::kube::apiserver::{ApiServer, Options};
use serde_json::{Value, json};
use std::time::Duration;

fn app(name: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"source": {"repoURL": "https://git.example.com/acme/config.git", "targetRevision": "main"}}})
}

async fn apps(server: &ApiServer, dir: &tempfile::TempDir) -> Objects {
    let clusters = Clusters::new(Some(server.kubeconfig(dir.path())));
    Objects::new(clusters.client(None).await.unwrap(), APPLICATION, "argocd")
}

fn sync(server: &ApiServer, name: &str) {
    assert!(server.update("argoproj.io", "applications", "argocd", name, |a| {
        a["status"] = json!({"sync": {"status": "Synced"}});
        true
    }));
}

/// How long a `next_change` that expects a change (or an error) may wait: it returns when the
/// change comes, so this bounds only a failing or a very loaded run. (5 s, beside an `until`
/// of 10 s, let a slow precondition turn into "nothing changed".)
const LIMIT: Duration = Duration::from_secs(60);

/// The requests of one kind so far: `watch` (WATCH) or `list` (LIST) of Applications.
fn count(server: &ApiServer, what: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /apis/argoproj.io/v1alpha1/namespaces/argocd/applications?"))
        .filter(|r| r.contains("watch=true") == (what == "watch"))
        .count()
}

/// Waits until `f` holds; the test's precondition, not its assertion. It returns as soon as
/// `f` holds; the deadline is for a loaded machine, and stays under [`LIMIT`], which the
/// watch it runs beside must outlast.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_compacted_version_is_relisted_and_the_change_is_not_lost() {
    let server = ApiServer::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let before = server.put("argoproj.io", "applications", app("web-dev"));
    let apps = apps(&server, &dir).await;

    // Changed, and the history compacted, while barge held the old version.
    sync(&server, "web-dev");
    server.compact();
    let seen = apps
        .next_change("web-dev", resource_version(&before), LIMIT)
        .await
        .unwrap();
    assert_eq!(
        seen.expect("the change, not `nothing changed`")["status"]["sync"]["status"],
        "Synced"
    );
    assert_eq!(count(&server, "list"), 1, "a 410 re-lists: {:?}", server.requests());

    // Unchanged when the history went: barge resumes from the list's version and still sees
    // the next change.
    let current = server.get("argoproj.io", "applications", "argocd", "web-dev").unwrap();
    server.put("argoproj.io", "applications", app("api-dev"));
    server.compact();
    let (seen, ()) = tokio::join!(apps.next_change("web-dev", resource_version(&current), LIMIT), async {
        until("a re-list and a watch after it", || {
            count(&server, "list") == 2 && server.open_watches() == 1
        })
        .await;
        assert!(server.update("argoproj.io", "applications", "argocd", "web-dev", |a| {
            a["status"]["health"] = json!({"status": "Healthy"});
            true
        }));
    });
    assert_eq!(
        seen.unwrap().expect("the change")["status"]["health"]["status"],
        "Healthy"
    );

    // Deleted while the history went: NotFound, as a DELETED event would say.
    let current = server.get("argoproj.io", "applications", "argocd", "api-dev").unwrap();
    apps.delete("api-dev").await.unwrap();
    server.compact();
    let gone = apps
        .next_change("api-dev", resource_version(&current), LIMIT)
        .await
        .unwrap_err();
    assert_eq!(gone.class(), barge_core::ErrorClass::NotFound, "{gone}");
}

#[tokio::test]
async fn a_watch_the_server_ends_is_resumed_until_the_change_comes() {
    let server = ApiServer::start_with(Options {
        cut_watches_after: Some(Duration::from_millis(150)),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let before = server.put("argoproj.io", "applications", app("web-dev"));
    let apps = apps(&server, &dir).await;
    let (seen, ()) = tokio::join!(apps.next_change("web-dev", resource_version(&before), LIMIT), async {
        until("three watches", || count(&server, "watch") >= 3).await;
        sync(&server, "web-dev");
    });
    assert_eq!(
        seen.unwrap().expect("the change after the reconnects")["status"]["sync"]["status"],
        "Synced"
    );
    assert_eq!(count(&server, "list"), 0, "nothing expired: no re-list");
}

#[tokio::test]
async fn bookmarks_keep_the_resume_version_inside_the_history() {
    // A short history that other Applications' changes push web-dev's version out of.
    let server = ApiServer::start_with(Options {
        history: 5,
        bookmark_every: Duration::from_millis(100),
        cut_watches_after: Some(Duration::from_millis(400)),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let before = server.put("argoproj.io", "applications", app("web-dev"));
    server.put("argoproj.io", "applications", app("api-dev"));
    let apps = apps(&server, &dir).await;
    let (seen, ()) = tokio::join!(apps.next_change("web-dev", resource_version(&before), LIMIT), async {
        until("barge watching", || server.open_watches() == 1).await;
        for i in 0..20 {
            server.update("argoproj.io", "applications", "argocd", "api-dev", |a| {
                a["status"] = json!({"n": i});
                true
            });
        }
        // The watch was cut and resumed: from a bookmark's version, which is recent.
        until("a second watch", || {
            count(&server, "watch") >= 2 && server.open_watches() == 1
        })
        .await;
        sync(&server, "web-dev");
    });
    assert_eq!(seen.unwrap().expect("the change")["status"]["sync"]["status"], "Synced");
    let watches: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.contains("watch=true"))
        .collect();
    assert!(
        watches.iter().all(|w| w.contains("allowWatchBookmarks=true")),
        "{watches:?}"
    );
    assert!(
        !watches[1].contains(&format!("resourceVersion={}&", resource_version(&before))),
        "resumed from the bookmark, not the first version: {watches:?}"
    );
    assert_eq!(
        count(&server, "list"),
        0,
        "the bookmark kept the version inside the history: no 410, no re-list"
    );
}
