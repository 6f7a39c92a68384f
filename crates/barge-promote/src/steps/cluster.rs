//! Steps that talk to clusters: `argocd-update` (point Applications at the promoted revision
//! and images, sync them, wait until they are Synced and Healthy at that revision),
//! `argocd-wait` (wait for Applications' conditions) and barge's `rollout-wait` (wait until an
//! Argo Rollouts Rollout has rolled out its current pod template). What counts as ready is
//! `barge_core::health`; these steps fetch objects and patch them.
//!
//! The steps return "still waiting" until ready, and the engine polls them again (Kargo's
//! default timeout for argocd steps is 5 minutes). `argocd-update` patches and syncs once per
//! promotion: the sync it requested carries the promotion's name in `operation.info`, so a
//! later poll (or a resumed promotion) finds it instead of syncing again.

use super::{StepCtx, StepDone, StepError, StepResult, config, done};
use crate::BoxFuture;
use barge_core::freight::{normalize_chart, normalize_git, normalize_image};
use barge_core::health::{self, AppCondition, Readiness};
use barge_core::model::kargo::Freight;
use barge_core::step_config::{
    AppSelector, ArgoCdAppUpdate, ArgoCdSourceUpdate, ArgoCdUpdate, ArgoCdWait, RolloutWait,
};
use barge_kube::{APPLICATION, KubeError, Objects, ROLLOUT};
use serde_json::{Map, Value as Json, json};

/// The annotation an Application carries to let a Stage change it (Kargo's).
pub const AUTHORIZED_STAGE: &str = "kargo.akuity.io/authorized-stage";

fn kube_error(e: KubeError) -> StepError {
    StepError::of_class(e.class(), e.to_string())
}

async fn objects(
    ctx: &StepCtx<'_>,
    cluster: Option<&str>,
    kind: barge_kube::Kind,
    namespace: &str,
) -> Result<Objects, StepError> {
    let client = ctx.engine.kube.client(cluster).await.map_err(kube_error)?;
    Ok(Objects::new(client, kind, namespace))
}

/// `k=v,k2 in (a,b)` from a Kubernetes label selector.
fn selector_text(s: &AppSelector) -> String {
    let mut terms: Vec<String> = s.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for e in &s.match_expressions {
        terms.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, e.values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, e.values.join(",")),
            "DoesNotExist" => format!("!{}", e.key),
            _ => e.key.clone(),
        });
    }
    terms.join(",")
}

/// The Applications an entry names: one by name, or all matching its selector (at least one).
async fn select_apps(
    apps: &Objects,
    name: Option<&str>,
    selector: Option<&AppSelector>,
    namespace: &str,
) -> Result<Vec<Json>, StepError> {
    match (name.filter(|n| !n.is_empty()), selector) {
        (Some(n), _) => Ok(vec![apps.get(n).await.map_err(kube_error)?]),
        (None, Some(sel)) => {
            let text = selector_text(sel);
            let found = apps.list(&text).await.map_err(kube_error)?;
            if found.is_empty() {
                return Err(StepError::Invalid(format!(
                    "no Application in {namespace} matches {text}"
                )));
            }
            Ok(found)
        }
        (None, None) => Err(StepError::Invalid("each app needs `name` or `selector`".into())),
    }
}

fn app_name(app: &Json) -> &str {
    app["metadata"]["name"].as_str().unwrap_or("")
}

/// Kargo's rule: the Application must name this Stage (`project:stage`, globs allowed).
fn check_authorized(app: &Json, project: &str, stage: &str, namespace: &str) -> Result<(), StepError> {
    let want = format!("{project}:{stage}");
    let given = app["metadata"]["annotations"][AUTHORIZED_STAGE].as_str().unwrap_or("");
    let allowed = !given.is_empty() && barge_core::glob::Glob::new(given).is_ok_and(|g| g.matches(&want));
    if allowed {
        return Ok(());
    }
    Err(StepError::Failed(format!(
        "Application {namespace}/{} does not allow Stage {want} to change it: add the annotation `{AUTHORIZED_STAGE}: \"{want}\"`{}",
        app_name(app),
        if given.is_empty() {
            String::new()
        } else {
            format!(" (it names {given:?})")
        }
    )))
}

/// The revision a source update wants: the given one, or the `commit` output of the step
/// `desiredCommitFromStep` names (Kargo's older spelling), else the Freight's commit (git
/// source) or chart version (Helm repository source) from that repository.
fn desired_revision(u: &ArgoCdSourceUpdate, freight: &[Freight], outputs: &Map<String, Json>) -> Option<String> {
    if let Some(r) = u.desired_revision.as_ref().filter(|r| !r.is_empty()) {
        return Some(r.clone());
    }
    if let Some(alias) = &u.desired_commit_from_step {
        return outputs[alias.as_str()]["commit"].as_str().map(str::to_string);
    }
    match &u.chart {
        Some(chart) => freight
            .iter()
            .flat_map(|f| &f.charts)
            .find(|c| {
                normalize_chart(&c.repo_url) == normalize_chart(&u.repo_url)
                    && c.name.as_deref() == Some(chart.as_str())
            })
            .map(|c| c.version.clone()),
        None => freight
            .iter()
            .flat_map(|f| &f.commits)
            .find(|c| normalize_git(&c.repo_url) == normalize_git(&u.repo_url))
            .map(|c| c.id.clone()),
    }
}

/// Applies one source update to an Application source (JSON); returns what it set.
fn update_source(
    source: &mut Json,
    u: &ArgoCdSourceUpdate,
    revision: Option<&str>,
    freight: &[Freight],
) -> Result<(), StepError> {
    if u.update_target_revision {
        let r = revision.ok_or_else(|| {
            StepError::Invalid(format!(
                "argocd-update: no desiredRevision for {} and the Freight has nothing from it",
                u.repo_url
            ))
        })?;
        source["targetRevision"] = json!(r);
    }
    if let Some(k) = &u.kustomize {
        let mut images: Vec<Json> = source["kustomize"]["images"].as_array().cloned().unwrap_or_default();
        for img in &k.images {
            let from_freight = freight
                .iter()
                .flat_map(|f| &f.images)
                .find(|i| normalize_image(&i.repo_url) == normalize_image(&img.repo_url));
            let reference = match (&img.digest, &img.tag) {
                (Some(d), _) => format!("@{d}"),
                (None, Some(t)) => format!(":{t}"),
                (None, None) => match from_freight {
                    Some(i) if img.use_digest => format!("@{}", i.digest),
                    Some(i) => format!(":{}", i.tag),
                    None => {
                        return Err(StepError::Invalid(format!(
                            "argocd-update: no tag or digest for image {} and the Freight has no such image",
                            img.repo_url
                        )));
                    }
                },
            };
            let entry = match &img.new_name {
                Some(n) => format!("{}={n}{reference}", img.repo_url),
                None => format!("{}{reference}", img.repo_url),
            };
            // One entry per image: an older override of the same image is replaced.
            images.retain(|e| {
                let e = e.as_str().unwrap_or("");
                let name = e.split(['=', '@']).next().unwrap_or("");
                let name = name
                    .rsplit_once(':')
                    .filter(|(_, t)| !t.contains('/'))
                    .map_or(name, |(n, _)| n);
                name != img.repo_url
            });
            images.push(json!(entry));
        }
        source["kustomize"]["images"] = Json::Array(images);
    }
    if let Some(h) = &u.helm {
        let mut params: Vec<Json> = source["helm"]["parameters"].as_array().cloned().unwrap_or_default();
        for p in &h.images {
            let value = match &p.value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            params.retain(|x| x["name"].as_str() != Some(p.key.as_str()));
            params.push(json!({"name": p.key, "value": value}));
        }
        source["helm"]["parameters"] = Json::Array(params);
    }
    Ok(())
}

/// Whether an Application source is the one an update names.
fn source_matches(source: &Json, u: &ArgoCdSourceUpdate) -> bool {
    let repo = source["repoURL"].as_str().unwrap_or("");
    match &u.chart {
        Some(chart) => normalize_chart(repo) == normalize_chart(&u.repo_url) && source["chart"].as_str() == Some(chart),
        None => normalize_git(repo) == normalize_git(&u.repo_url) && source["chart"].is_null(),
    }
}

/// The marker of the sync this promotion requests (in `operation.info`).
fn marker(ctx: &StepCtx<'_>) -> String {
    format!("barge promotion {}", ctx.promotion.name)
}

/// The spec patch and the revision to wait for, for one Application.
fn plan_update(
    app: &Json,
    entry: &ArgoCdAppUpdate,
    freight: &[Freight],
    outputs: &Map<String, Json>,
) -> Result<(Json, Option<String>), StepError> {
    let spec = &app["spec"];
    let multi = spec["sources"].is_array();
    let mut sources: Vec<Json> = if multi {
        spec["sources"].as_array().cloned().unwrap_or_default()
    } else {
        vec![spec["source"].clone()]
    };
    let mut wait_revision = None;
    for u in &entry.sources {
        let revision = desired_revision(u, freight, outputs);
        let Some(i) = sources.iter().position(|s| source_matches(s, u)) else {
            return Err(StepError::Invalid(format!(
                "Application {} has no source from {}{}",
                app_name(app),
                u.repo_url,
                u.chart.as_ref().map(|c| format!(" (chart {c})")).unwrap_or_default()
            )));
        };
        update_source(&mut sources[i], u, revision.as_deref(), freight)?;
        if wait_revision.is_none() {
            wait_revision = revision;
        }
    }
    let patch = if entry.sources.is_empty() {
        json!({})
    } else if multi {
        json!({"spec": {"sources": sources}})
    } else {
        json!({"spec": {"source": sources[0]}})
    };
    Ok((patch, wait_revision))
}

/// The apps a step looked at: the ready ones (its output) and why the others are not yet.
#[derive(Default)]
struct Tally {
    ready: Vec<Json>,
    waiting: Vec<String>,
}

impl Tally {
    /// Counts one app's readiness; a failed app fails the step.
    fn add(&mut self, readiness: Readiness, ready: impl FnOnce(String) -> Json) -> Result<(), StepError> {
        match readiness {
            Readiness::Ready(r) => self.ready.push(ready(r)),
            Readiness::Waiting(w) => self.waiting.push(w),
            Readiness::Failed(f) => return Err(StepError::Failed(f)),
        }
        Ok(())
    }

    /// Waiting while any app is; done with `apps` otherwise.
    fn finish(self) -> StepResult {
        if !self.waiting.is_empty() {
            return Ok(StepDone::Waiting(self.waiting.join("; ")));
        }
        let mut out = Map::new();
        out.insert("apps".into(), Json::Array(self.ready));
        done(out)
    }
}

pub(super) fn argocd_update<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: ArgoCdUpdate = config("argocd-update", cfg)?;
        if c.apps.is_empty() {
            return Err(StepError::Invalid("argocd-update: no apps".into()));
        }
        let marker = marker(ctx);
        let mut tally = Tally::default();
        for entry in &c.apps {
            let namespace = entry.namespace.as_deref().unwrap_or("argocd");
            let apps = objects(ctx, entry.cluster.as_deref(), APPLICATION, namespace).await?;
            for app in select_apps(&apps, entry.name.as_deref(), entry.selector.as_ref(), namespace).await? {
                check_authorized(&app, &ctx.promotion.project, &ctx.promotion.stage, namespace)?;
                let (mut patch, revision) = plan_update(&app, entry, &ctx.data.freight, &ctx.scope.outputs)?;
                let requested = |op: &Json| {
                    op["info"]
                        .as_array()
                        .is_some_and(|i| i.iter().any(|x| x["value"].as_str() == Some(marker.as_str())))
                };
                let ours = requested(&app["operation"]) || requested(&app["status"]["operationState"]["operation"]);
                let app = if ours || ctx.engine.dry_run {
                    app
                } else {
                    let mut sync = json!({"syncStrategy": {"hook": {}}});
                    if let Some(r) = &revision {
                        sync["revision"] = json!(r);
                    }
                    patch["operation"] = json!({
                        "initiatedBy": {"username": "barge", "automated": false},
                        "info": [{"name": "Reason", "value": marker}],
                        "sync": sync,
                    });
                    apps.merge_patch(app_name(&app), &patch).await.map_err(kube_error)?
                };
                if ctx.engine.dry_run {
                    tally
                        .ready
                        .push(json!({"name": app_name(&app), "namespace": namespace, "patch": patch}));
                    continue;
                }
                let readiness = health::argocd_app(&app, &AppCondition::DEFAULT, revision.as_deref(), Some(&marker));
                tally.add(
                    readiness,
                    |_| json!({"name": app_name(&app), "namespace": namespace, "cluster": entry.cluster, "revision": revision}),
                )?;
            }
        }
        tally.finish()
    })
}

pub(super) fn argocd_wait<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: ArgoCdWait = config("argocd-wait", cfg)?;
        if c.apps.is_empty() {
            return Err(StepError::Invalid("argocd-wait: no apps".into()));
        }
        let mut tally = Tally::default();
        for entry in &c.apps {
            let conditions: Vec<AppCondition> = if entry.wait_for.is_empty() {
                AppCondition::DEFAULT.to_vec()
            } else {
                entry
                    .wait_for
                    .iter()
                    .map(|w| {
                        AppCondition::parse(w).ok_or_else(|| {
                            StepError::Invalid(format!(
                                "argocd-wait: cannot wait for {w:?} (health, sync, operation, suspended or degraded)"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            let namespace = entry.namespace.as_deref().unwrap_or("argocd");
            let apps = objects(ctx, entry.cluster.as_deref(), APPLICATION, namespace).await?;
            for app in select_apps(&apps, entry.name.as_deref(), entry.selector.as_ref(), namespace).await? {
                tally.add(
                    health::argocd_app(&app, &conditions, None, None),
                    |r| json!({"name": app_name(&app), "namespace": namespace, "status": r}),
                )?;
            }
        }
        tally.finish()
    })
}

pub(super) fn rollout_wait<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: RolloutWait = config("rollout-wait", cfg)?;
        if c.name.is_empty() {
            return Err(StepError::Invalid("rollout-wait: no name".into()));
        }
        let namespace = c.namespace.as_deref().unwrap_or("default");
        let rollouts = objects(ctx, c.cluster.as_deref(), ROLLOUT, namespace).await?;
        // A Rollout that does not exist yet is waited for: an ApplicationSet creates the
        // Rollout of a new environment a while after the push that asked for it.
        let ro = match rollouts.get(&c.name).await {
            Ok(ro) => ro,
            Err(KubeError::NotFound(_)) => {
                return Ok(StepDone::Waiting(format!(
                    "Rollout {} does not exist in namespace {namespace} yet",
                    c.name
                )));
            }
            Err(e) => return Err(kube_error(e)),
        };
        match health::rollout(&ro) {
            Readiness::Ready(_) => {
                let mut out = Map::new();
                out.insert("name".into(), json!(c.name));
                out.insert("namespace".into(), json!(namespace));
                out.insert("cluster".into(), json!(c.cluster));
                out.insert("podTemplateHash".into(), ro["status"]["currentPodHash"].clone());
                out.insert("stableRS".into(), ro["status"]["stableRS"].clone());
                done(out)
            }
            Readiness::Waiting(w) => Ok(StepDone::Waiting(w)),
            Readiness::Failed(f) => Err(StepError::Failed(f)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_core::model::kargo::{GitCommit, Image};

    fn freight() -> Vec<Freight> {
        vec![Freight {
            images: vec![Image {
                repo_url: "ghcr.io/acme/app".into(),
                tag: "1.2.0".into(),
                digest: "sha256:abc".into(),
                ..Default::default()
            }],
            commits: vec![GitCommit {
                repo_url: "https://git.example.com/acme/config.git".into(),
                id: "c0ffee".into(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn entry(yaml: &str) -> ArgoCdAppUpdate {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn sources_get_the_revision_images_and_parameters() {
        let app = json!({"metadata": {"name": "web-dev"}, "spec": {"source": {
            "repoURL": "https://git.example.com/acme/config", "targetRevision": "main", "path": "env/dev",
            "kustomize": {"images": ["ghcr.io/acme/app:1.0.0", "redis:7"]},
            "helm": {"parameters": [{"name": "image.tag", "value": "1.0.0"}, {"name": "replicas", "value": "2"}]}}}});
        let e = entry(
            "name: web-dev\nsources:\n- repoURL: https://git.example.com/acme/config.git\n  updateTargetRevision: true\n  kustomize: {images: [{repoURL: ghcr.io/acme/app}]}\n  helm: {images: [{key: image.tag, value: '1.2.0'}]}\n",
        );
        let (patch, revision) = plan_update(&app, &e, &freight(), &Map::new()).unwrap();
        assert_eq!(
            revision.as_deref(),
            Some("c0ffee"),
            "the Freight's commit from that repository"
        );
        let s = &patch["spec"]["source"];
        assert_eq!(s["targetRevision"], "c0ffee");
        assert_eq!(s["path"], "env/dev", "the rest of the source is kept");
        assert_eq!(s["kustomize"]["images"], json!(["redis:7", "ghcr.io/acme/app:1.2.0"]));
        assert_eq!(
            s["helm"]["parameters"],
            json!([{"name": "replicas", "value": "2"}, {"name": "image.tag", "value": "1.2.0"}])
        );
        let digest = entry(
            "name: x\nsources:\n- repoURL: https://git.example.com/acme/config.git\n  kustomize: {images: [{repoURL: ghcr.io/acme/app, useDigest: true, newName: mirror.io/app}]}\n",
        );
        let (patch, _) = plan_update(&app, &digest, &freight(), &Map::new()).unwrap();
        assert_eq!(
            patch["spec"]["source"]["kustomize"]["images"][1],
            "ghcr.io/acme/app=mirror.io/app@sha256:abc"
        );
        let from_step = entry(
            "name: x\nsources:\n- {repoURL: 'https://git.example.com/acme/config.git', desiredCommitFromStep: push, updateTargetRevision: true}\n",
        );
        let outputs: Map<String, Json> = serde_json::from_value(json!({"push": {"commit": "feed"}})).unwrap();
        let (patch, revision) = plan_update(&app, &from_step, &freight(), &outputs).unwrap();
        assert_eq!(
            (revision.as_deref(), &patch["spec"]["source"]["targetRevision"]),
            (Some("feed"), &json!("feed"))
        );
    }

    #[test]
    fn multi_source_apps_and_missing_sources() {
        let app = json!({"metadata": {"name": "web"}, "spec": {"sources": [
            {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.0.0"},
            {"repoURL": "https://git.example.com/acme/config.git", "targetRevision": "main", "ref": "values"}]}});
        let e = entry(
            "name: web\nsources:\n- {repoURL: 'https://charts.example.com', chart: web, desiredRevision: 1.1.0, updateTargetRevision: true}\n",
        );
        let (patch, revision) = plan_update(&app, &e, &[], &Map::new()).unwrap();
        assert_eq!(revision.as_deref(), Some("1.1.0"));
        assert_eq!(patch["spec"]["sources"][0]["targetRevision"], "1.1.0");
        assert_eq!(patch["spec"]["sources"][1]["targetRevision"], "main");
        let other = entry(
            "name: web\nsources:\n- {repoURL: 'https://git.example.com/other.git', updateTargetRevision: true, desiredRevision: x}\n",
        );
        let err = plan_update(&app, &other, &[], &Map::new()).unwrap_err();
        assert_eq!(
            err,
            StepError::Invalid("Application web has no source from https://git.example.com/other.git".into())
        );
    }

    #[test]
    fn the_authorized_stage_annotation_is_required() {
        let app = |a: &str| json!({"metadata": {"name": "web-dev", "annotations": {AUTHORIZED_STAGE: a}}});
        assert!(check_authorized(&app("shop:dev"), "shop", "dev", "argocd").is_ok());
        assert!(check_authorized(&app("shop:*"), "shop", "dev", "argocd").is_ok());
        let e = check_authorized(&app("shop:prod"), "shop", "dev", "argocd").unwrap_err();
        assert!(
            e.to_string().contains("does not allow Stage shop:dev")
                && e.to_string().contains("(it names \"shop:prod\")"),
            "{e}"
        );
        let none = json!({"metadata": {"name": "web-dev"}});
        assert!(
            check_authorized(&none, "shop", "dev", "argocd")
                .unwrap_err()
                .to_string()
                .contains("add the annotation `kargo.akuity.io/authorized-stage: \"shop:dev\"`")
        );
    }
}
