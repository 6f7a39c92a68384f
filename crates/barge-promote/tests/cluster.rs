//! argocd-update, argocd-wait and rollout-wait against the test Kubernetes API server, with
//! test controllers moving Applications and Rollouts through their real status fields.

use barge_testkit::kube as kube_support;
mod support;

use barge_core::promotion::{Phase, State};
use kube_support::apiserver::ApiServer;
use kube_support::controllers::{self, ArgoCdOptions};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Quiet, dev_stage, image_freight, plan};

struct Cluster {
    server: ApiServer,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let server = ApiServer::start(Some("t0ken")).await;
        Cluster {
            server,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn engine(&self) -> barge_promote::Engine {
        let mut e = support::engine(self.dir.path(), Vec::new());
        e.kube = Arc::new(barge_kube::Clusters::new(Some(self.server.kubeconfig(self.dir.path()))));
        e
    }

    /// Runs Stage dev's `steps` (YAML list items) with Freight `ghcr.io/acme/app:1.2.0`.
    async fn promote(&self, steps: &str) -> barge_promote::Outcome {
        let yaml = format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {{name: shop}}\n---\n{}",
            dev_stage(steps)
        );
        let p = plan(&yaml, "dev", image_freight("ghcr.io/acme/app", "1.2.0"));
        self.engine().run(&p, State::new(&p.steps), &Quiet, &Quiet).await
    }
}

/// Application web-dev, healthy and synced at `old` since long ago (its health is stale for
/// any new sync), authorizing `authorized`.
fn app(authorized: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web-dev", "namespace": "argocd", "labels": {"team": "shop"},
            "annotations": {"kargo.akuity.io/authorized-stage": authorized}},
        "spec": {"source": {"repoURL": "https://git.example.com/acme/config.git", "targetRevision": "main", "path": "env/dev",
            "kustomize": {"images": ["ghcr.io/acme/app:1.0.0"]}}},
        "status": {"sync": {"status": "Synced", "revision": "old"}, "health": {"status": "Healthy"},
            "operationState": {"phase": "Succeeded", "finishedAt": "2026-01-01T00:00:00Z"},
            "reconciledAt": "2026-01-01T00:00:01Z"}})
}

const UPDATE: &str = "
        - uses: argocd-update
          config:
            apps:
              - name: web-dev
                sources:
                  - repoURL: https://git.example.com/acme/config.git
                    desiredRevision: c0ffee
                    updateTargetRevision: true
                    kustomize: {images: [{repoURL: ghcr.io/acme/app}]}
";

#[tokio::test(flavor = "multi_thread")]
async fn argocd_update_syncs_and_waits_past_the_stale_health_until_healthy_at_the_revision() {
    let c = Cluster::start().await;
    c.server.put("argoproj.io", "applications", app("shop:dev"));
    let opts = ArgoCdOptions {
        stale_for: Duration::from_millis(1500),
        ..ArgoCdOptions::default()
    };
    let _argocd = controllers::argocd(c.server.clone(), opts);
    let started = Instant::now();
    let out = c.promote(UPDATE).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    // Synced at c0ffee and "Healthy" right after the sync is the stale health: barge waits for
    // the reconcile that comes 1.5 s later.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "trusted stale health after {:?}",
        started.elapsed()
    );
    let a = c
        .server
        .get("argoproj.io", "applications", "argocd", "web-dev")
        .unwrap();
    assert_eq!(a["spec"]["source"]["targetRevision"], "c0ffee");
    assert_eq!(
        a["spec"]["source"]["kustomize"]["images"],
        json!(["ghcr.io/acme/app:1.2.0"])
    );
    assert_eq!(a["spec"]["source"]["path"], "env/dev");
    assert_eq!(a["status"]["sync"]["revision"], "c0ffee");
    // The app went OutOfSync → Synced at c0ffee, and only then Healthy (reconciled after the sync).
    let mut seen: Vec<String> = Vec::new();
    for v in c.server.history("argoproj.io", "applications", "argocd", "web-dev") {
        let s = &v["status"];
        let state = format!(
            "{} {} {} fresh={}",
            s["sync"]["status"].as_str().unwrap_or(""),
            s["sync"]["revision"].as_str().unwrap_or(""),
            s["health"]["status"].as_str().unwrap_or(""),
            s["reconciledAt"].as_str() >= s["operationState"]["finishedAt"].as_str()
        );
        if seen.last() != Some(&state) {
            seen.push(state);
        }
    }
    assert_eq!(
        seen,
        [
            "Synced old Healthy fresh=true",
            "OutOfSync old Healthy fresh=true",
            "Synced c0ffee Healthy fresh=false",
            "Synced c0ffee Healthy fresh=true"
        ],
        "the stale-health trap: Healthy right after the sync is from before it"
    );
    let patches: Vec<String> = c
        .server
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PATCH"))
        .collect();
    assert_eq!(
        patches.len(),
        1,
        "one patch and one sync per promotion, however often it polls: {patches:?}"
    );
    let synced_op = &a["status"]["operationState"]["operation"];
    assert_eq!(synced_op["sync"]["revision"], "c0ffee");
    assert_eq!(synced_op["initiatedBy"]["username"], "barge");
    // The step's output names the app and revision.
    let outputs = &out.state.outputs[&out.state.steps[0].alias];
    assert_eq!(outputs["apps"][0]["revision"], "c0ffee", "{outputs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_update_refuses_an_app_that_does_not_authorize_the_stage_and_fails_on_degraded() {
    let c = Cluster::start().await;
    c.server.put("argoproj.io", "applications", app("shop:prod"));
    let out = c.promote(UPDATE).await;
    assert_eq!(out.phase, Phase::Failed);
    assert!(
        out.message.contains("does not allow Stage shop:dev to change it"),
        "{}",
        out.message
    );
    assert!(
        c.server.requests().iter().all(|r| !r.starts_with("PATCH")),
        "nothing was changed"
    );

    let c = Cluster::start().await;
    c.server.put("argoproj.io", "applications", app("shop:dev"));
    let opts = ArgoCdOptions {
        stale_for: Duration::from_millis(100),
        health: Arc::new(|_, _| {
            (
                "Degraded".into(),
                "Deployment web exceeded its progress deadline".into(),
            )
        }),
        ..ArgoCdOptions::default()
    };
    let _argocd = controllers::argocd(c.server.clone(), opts);
    let out = c.promote(UPDATE).await;
    assert_eq!(out.phase, Phase::Failed);
    assert_eq!(
        out.message,
        "step step-1 (argocd-update): Application web-dev is Degraded: Deployment web exceeded its progress deadline"
    );
}

/// RBAC that does not let barge patch Applications fails the step at once (retrying cannot
/// help), saying what to grant.
#[tokio::test(flavor = "multi_thread")]
async fn argocd_update_without_rbac_to_patch_says_what_to_grant() {
    let c = Cluster::start().await;
    c.server.put("argoproj.io", "applications", app("shop:dev"));
    c.server.deny("patch", "argoproj.io", "applications", "argocd");
    let out = c.promote(UPDATE).await;
    assert_eq!(out.phase, Phase::Errored, "{}", out.message);
    assert!(
        out.message.starts_with(
            "step step-1 (argocd-update): Application argocd/web-dev: applications.argoproj.io \"web-dev\" is forbidden: User \"system:serviceaccount:barge:barge\" cannot patch resource \"applications\" in API group \"argoproj.io\" in the namespace \"argocd\" (403)"
        ),
        "{}",
        out.message
    );
    assert!(
        out.message.contains(
            r#"barge needs RBAC verb "patch" on "applications" in API group "argoproj.io" in namespace "argocd": grant it with a Role rule {apiGroups: ["argoproj.io"], resources: ["applications"], verbs: ["patch"]}"#
        ),
        "{}",
        out.message
    );
    let patches = c.server.requests().iter().filter(|r| r.starts_with("PATCH")).count();
    assert_eq!(patches, 1, "tried once, not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_wait_selects_apps_by_label_and_waits_for_their_conditions() {
    let c = Cluster::start().await;
    let mut progressing = app("shop:dev");
    progressing["status"]["health"]["status"] = json!("Progressing");
    c.server.put("argoproj.io", "applications", progressing);
    let server = c.server.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.update("argoproj.io", "applications", "argocd", "web-dev", |a| {
            a["status"]["health"]["status"] = json!("Healthy");
            true
        });
    });
    let started = Instant::now();
    let out = c
        .promote(
            "
        - uses: argocd-wait
          config:
            apps:
              - selector: {matchLabels: {team: shop}}
                waitFor: [health, sync]
",
        )
        .await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(
        c.server
            .requests()
            .iter()
            .any(|r| r.contains("labelSelector=team=shop")),
        "{:?}",
        c.server.requests()
    );
    let out = c
        .promote(
            "
        - uses: argocd-wait
          config: {apps: [{name: web-dev, waitFor: [healthy]}]}
",
        )
        .await;
    assert_eq!(out.phase, Phase::Errored);
    assert!(out.message.contains("cannot wait for \"healthy\""), "{}", out.message);
}

fn rollout(image: &str, steps: Value) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 3, "strategy": {"canary": {"steps": steps}},
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
}

/// Creates the Rollout (rolled out at 1.0.0), then changes its image to 1.2.0, as a sync would.
async fn roll(c: &Cluster, steps: Value) {
    c.server
        .put("argoproj.io", "rollouts", rollout("ghcr.io/acme/app:1.0.0", steps));
    c.server
        .wait_for("argoproj.io", "rollouts", "shop", "web", Duration::from_secs(30), |r| {
            r["status"]["phase"] == "Healthy"
        })
        .await;
    c.server.update("argoproj.io", "rollouts", "shop", "web", |r| {
        r["spec"]["template"]["spec"]["containers"][0]["image"] = json!("ghcr.io/acme/app:1.2.0");
        true
    });
}

const WAIT: &str = "
        - uses: rollout-wait
          config: {name: web, namespace: shop}
";

#[tokio::test(flavor = "multi_thread")]
async fn rollout_wait_follows_a_canary_to_healthy() {
    let c = Cluster::start().await;
    let _ro = controllers::rollouts(
        c.server.clone(),
        Arc::new(|_, _| (true, String::new())),
        Duration::from_millis(150),
    );
    roll(&c, json!([{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "success-rate"}]}}, {"setWeight": 80}, {"pause": {"duration": "200ms"}}])).await;
    let out = c.promote(WAIT).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let template = c.server.get("argoproj.io", "rollouts", "shop", "web").unwrap()["spec"]["template"].clone();
    let outputs = &out.state.outputs[&out.state.steps[0].alias];
    assert_eq!(outputs["podTemplateHash"], json!(controllers::pod_hash(&template)));
    let weights: Vec<i64> = c
        .server
        .history("argoproj.io", "rollouts", "shop", "web")
        .iter()
        .filter_map(|r| r["status"]["canary"]["weights"]["canary"]["weight"].as_i64())
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| w[1])
        .collect();
    assert_eq!(weights, [20, 80, 100], "setWeight 20 → analysis → 80 → 100");
}

/// A new environment's Rollout appears a while after the push (an ApplicationSet creates it):
/// rollout-wait waits for it, saying so, instead of failing on the 404; a name that never
/// appears ends at the step's timeout with that message.
#[tokio::test(flavor = "multi_thread")]
async fn rollout_wait_waits_for_a_rollout_that_does_not_exist_yet() {
    let c = Cluster::start().await;
    let _ro = controllers::rollouts(
        c.server.clone(),
        Arc::new(|_, _| (true, String::new())),
        Duration::from_millis(50),
    );
    let server = c.server.clone();
    let created = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        server.put(
            "argoproj.io",
            "rollouts",
            rollout("ghcr.io/acme/app:1.2.0", json!([{"setWeight": 50}])),
        );
        Instant::now()
    });
    let out = c.promote(WAIT).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert!(created.await.unwrap().elapsed() < Duration::from_secs(10));
    let out = c
        .promote(
            "
        - uses: rollout-wait
          retry: {timeout: 1s}
          config: {name: typo, namespace: shop}
",
        )
        .await;
    assert_eq!(out.phase, Phase::Errored);
    assert!(
        out.message.starts_with(
            "step step-1 (rollout-wait): timed out while Rollout typo does not exist in namespace shop yet"
        ),
        "{}",
        out.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollout_wait_fails_with_the_rollouts_message_when_the_canary_aborts() {
    let c = Cluster::start().await;
    let why = "Metric \"success-rate\" assessed Failed due to failed (3) > failureLimit (2)";
    let _ro = controllers::rollouts(
        c.server.clone(),
        Arc::new(move |_, _| (false, why.to_string())),
        Duration::from_millis(100),
    );
    roll(
        &c,
        json!([{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "success-rate"}]}}, {"setWeight": 80}]),
    )
    .await;
    let out = c.promote(WAIT).await;
    assert_eq!(out.phase, Phase::Failed);
    assert_eq!(
        out.message,
        format!(
            "step step-1 (rollout-wait): Rollout web is Degraded: RolloutAborted: Rollout aborted update to revision 2: {why}"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_pause_shows_as_waiting_until_the_step_times_out() {
    let c = Cluster::start().await;
    let _ro = controllers::rollouts(
        c.server.clone(),
        Arc::new(|_, _| (true, String::new())),
        Duration::from_millis(100),
    );
    roll(&c, json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}])).await;
    let out = c
        .promote(
            "
        - uses: rollout-wait
          retry: {timeout: 1500ms}
          config: {name: web, namespace: shop}
",
        )
        .await;
    assert_eq!(out.phase, Phase::Errored);
    assert!(
        out.message.starts_with("step step-1 (rollout-wait): timed out while Rollout web is paused at step 2/3, canary weight 20% (CanaryPauseStep); a person must promote it (kubectl argo rollouts promote web)"),
        "{}",
        out.message
    );
}
