//! barge's Kubernetes access: clusters by kubeconfig context (or in-cluster), and the few
//! objects barge reads and writes, as JSON: Argo CD Applications, Argo Rollouts Rollouts and
//! AnalysisRuns (dynamic `argoproj.io/v1alpha1` objects, no CRD types compiled in) and
//! `batch/v1` Jobs. Reading their health is `barge_core::health`'s job; this crate only moves
//! objects, and sorts every failure into a class callers branch on.

#![forbid(unsafe_code)]

use barge_core::ErrorClass;
use futures_util::StreamExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// A Kubernetes failure, classified.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No usable kubeconfig or in-cluster configuration, or an unknown context.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    NotFound(String),
    /// A write lost to a concurrent one (409: a stale resourceVersion, or the object already
    /// exists): re-read and try again.
    #[error("{0}")]
    Conflict(String),
    /// Credentials refused (401) or not allowed (403).
    #[error("{0}")]
    Auth(String),
    /// The network, a timeout, 429 or a 5xx: may pass.
    #[error("{0}")]
    Transient(String),
    /// The API refused the request (other 4xx) or answered something unreadable.
    #[error("{0}")]
    Invalid(String),
}

impl KubeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            KubeError::Config(_) | KubeError::Invalid(_) => ErrorClass::Invalid,
            KubeError::NotFound(_) => ErrorClass::NotFound,
            KubeError::Conflict(_) => ErrorClass::Conflict,
            KubeError::Auth(_) => ErrorClass::Auth,
            KubeError::Transient(_) => ErrorClass::Transient,
        }
    }

    fn from_kube(what: &str, e: kube::Error) -> KubeError {
        match e {
            kube::Error::Api(status) => {
                let msg = format!("{what}: {} ({})", status.message, status.code);
                match status.code {
                    404 => KubeError::NotFound(msg),
                    409 => KubeError::Conflict(msg),
                    401 | 403 => KubeError::Auth(msg),
                    429 | 500..=599 => KubeError::Transient(msg),
                    _ => KubeError::Invalid(msg),
                }
            }
            kube::Error::SerdeError(e) => KubeError::Invalid(format!("{what}: unreadable answer: {e}")),
            other => KubeError::Transient(format!("{what}: {other}")),
        }
    }
}

/// A kind of object barge handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

pub const APPLICATION: Kind = Kind {
    group: "argoproj.io",
    version: "v1alpha1",
    kind: "Application",
    plural: "applications",
};
pub const ROLLOUT: Kind = Kind {
    group: "argoproj.io",
    version: "v1alpha1",
    kind: "Rollout",
    plural: "rollouts",
};
pub const ANALYSIS_RUN: Kind = Kind {
    group: "argoproj.io",
    version: "v1alpha1",
    kind: "AnalysisRun",
    plural: "analysisruns",
};
pub const POD: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Pod",
    plural: "pods",
};
pub const JOB: Kind = Kind {
    group: "batch",
    version: "v1",
    kind: "Job",
    plural: "jobs",
};

impl Kind {
    fn resource(&self) -> ApiResource {
        let mut r =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(self.group, self.version, self.kind), self.plural);
        // The core group's objects live under /api/v1, named by their bare version.
        r.api_version = self.api_version();
        r
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Where clusters come from: a kubeconfig file (`--kubeconfig`, `KUBECONFIG`,
/// `~/.kube/config`) whose contexts name the clusters, or the in-cluster service account.
pub struct Clusters {
    kubeconfig: Option<PathBuf>,
    clients: Mutex<HashMap<String, kube::Client>>,
}

impl Clusters {
    /// Clusters from this kubeconfig file, or (None) the usual places: `KUBECONFIG`,
    /// `~/.kube/config`, then in-cluster. Nothing is read until a client is needed.
    pub fn new(kubeconfig: Option<PathBuf>) -> Clusters {
        Clusters {
            kubeconfig,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// A client for a kubeconfig context (`None`: the current context, or in-cluster).
    pub async fn client(&self, context: Option<&str>) -> Result<kube::Client, KubeError> {
        let key = context.unwrap_or("").to_string();
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config: Result<kube::Config, String> = match (&self.kubeconfig, context) {
            (Some(path), _) => match kube::config::Kubeconfig::read_from(path) {
                Ok(file) => kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("kubeconfig {}: {e}", path.display())),
            },
            (None, Some(_)) => kube::Config::from_kubeconfig(&options).await.map_err(|e| e.to_string()),
            (None, None) => kube::Config::infer().await.map_err(|e| e.to_string()),
        };
        let config = config.map_err(|e| {
            KubeError::Config(format!(
                "no Kubernetes access{}: {e}; set --kubeconfig or KUBECONFIG",
                context.map(|c| format!(" for context {c:?}")).unwrap_or_default()
            ))
        })?;
        let client =
            kube::Client::try_from(config).map_err(|e| KubeError::Config(format!("Kubernetes client: {e}")))?;
        if let Ok(mut m) = self.clients.lock() {
            m.insert(key, client.clone());
        }
        Ok(client)
    }
}

/// Objects of one kind in one namespace, as JSON.
pub struct Objects {
    api: Api<DynamicObject>,
    kind: Kind,
    namespace: String,
}

fn to_json(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

impl Objects {
    pub fn new(client: kube::Client, kind: Kind, namespace: &str) -> Objects {
        Objects {
            api: Api::namespaced_with(client, namespace, &kind.resource()),
            kind,
            namespace: namespace.to_string(),
        }
    }

    fn what(&self, name: &str) -> String {
        format!("{} {}/{name}", self.kind.kind, self.namespace)
    }

    /// A failure of `verb` on `what`. A 403 says which RBAC rule barge lacks: the API server's
    /// message names the user and what it cannot do, and the grant that fixes it is spelled
    /// out.
    fn error(&self, verb: &str, what: &str, e: kube::Error) -> KubeError {
        match e {
            kube::Error::Api(status) if status.code == 403 => {
                let (group, plural, ns) = (self.kind.group, self.kind.plural, &self.namespace);
                KubeError::Auth(format!(
                    "{what}: {} (403); barge needs RBAC verb {verb:?} on {plural:?} in API group {group:?} in namespace {ns:?}: grant it with a Role rule {{apiGroups: [{group:?}], resources: [{plural:?}], verbs: [{verb:?}]}} bound to barge's service account (or user)",
                    status.message
                ))
            }
            other => KubeError::from_kube(what, other),
        }
    }

    pub async fn get(&self, name: &str) -> Result<Value, KubeError> {
        self.api
            .get(name)
            .await
            .map(to_json)
            .map_err(|e| self.error("get", &self.what(name), e))
    }

    /// The objects matching a label selector (`app=web,tier in (a,b)`).
    pub async fn list(&self, selector: &str) -> Result<Vec<Value>, KubeError> {
        let lp = ListParams::default().labels(selector);
        self.api
            .list(&lp)
            .await
            .map(|l| l.items.into_iter().map(to_json).collect())
            .map_err(|e| {
                let what = format!("{}s in {} ({selector})", self.kind.kind, self.namespace);
                self.error("list", &what, e)
            })
    }

    /// A JSON merge patch (RFC 7386) of the object.
    ///
    /// Not server-side apply, deliberately: barge patches what Argo CD's own users and
    /// controllers also write (an Application's sources, its `operation`; an AnalysisRun's
    /// `spec.terminate`). Under server-side apply barge would own those fields, so the next
    /// `kubectl apply` or app-of-apps sync of the Application would conflict (409) or, forced,
    /// take them back and drop barge's change. Kargo's argocd-update and Rollouts' abort are
    /// merge patches of the same fields.
    pub async fn merge_patch(&self, name: &str, patch: &Value) -> Result<Value, KubeError> {
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(to_json)
            .map_err(|e| self.error("patch", &self.what(name), e))
    }

    /// Creates the object (its `apiVersion` and `kind` are filled in).
    pub async fn create(&self, object: &Value) -> Result<Value, KubeError> {
        let mut object = object.clone();
        object["apiVersion"] = Value::String(self.kind.api_version());
        object["kind"] = Value::String(self.kind.kind.to_string());
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_string();
        let typed: DynamicObject = serde_json::from_value(object)
            .map_err(|e| KubeError::Invalid(format!("{}: not an object: {e}", self.what(&name))))?;
        self.api
            .create(&PostParams::default(), &typed)
            .await
            .map(to_json)
            .map_err(|e| self.error("create", &self.what(&name), e))
    }

    pub async fn delete(&self, name: &str) -> Result<(), KubeError> {
        match self.api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(e) => match self.error("delete", &self.what(name), e) {
                KubeError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Waits (at most `limit`) for the named object to change after `resource_version`, with
    /// a WATCH from that version; returns the new object, or `None` when nothing changed in
    /// time. A deletion is NotFound.
    ///
    /// Like client-go's reflector, it keeps watching through what ends a watch early: a watch
    /// the server (or a proxy) ends is resumed from the last resourceVersion seen, BOOKMARK
    /// events included; a 410 Gone (the version fell out of the server's history) re-lists
    /// the object and, when it has not changed, resumes from the list's resourceVersion. No
    /// change in between is lost: the list shows the object's latest state.
    pub async fn next_change(
        &self,
        name: &str,
        resource_version: &str,
        limit: Duration,
    ) -> Result<Option<Value>, KubeError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut resume = resource_version.to_string();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // kube-rs allows at most 290s (its read timeout is 295s); bookmarks are on.
            let wp = WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(left.as_secs().clamp(1, 290) as u32);
            // 410 Gone comes as the answer, or as an ERROR event in the stream.
            let mut gone = false;
            match self.api.watch(&wp, &resume).await {
                Ok(stream) => {
                    let mut stream = std::pin::pin!(stream);
                    loop {
                        let event = match tokio::time::timeout_at(deadline, stream.next()).await {
                            Err(_) => return Ok(None),
                            // The server ended the watch (its timeout): watch again from `resume`.
                            Ok(None) => break,
                            Ok(Some(event)) => event.map_err(|e| self.error("watch", &self.what(name), e))?,
                        };
                        match event {
                            WatchEvent::Added(o) | WatchEvent::Modified(o) => return Ok(Some(to_json(o))),
                            WatchEvent::Deleted(_) => {
                                return Err(KubeError::NotFound(format!("{} was deleted", self.what(name))));
                            }
                            // Nothing for this watch up to there: a later watch need not start
                            // earlier.
                            WatchEvent::Bookmark(b) => resume = b.metadata.resource_version,
                            WatchEvent::Error(status) if status.code == 410 => {
                                gone = true;
                                break;
                            }
                            WatchEvent::Error(status) => {
                                return Err(self.error("watch", &self.what(name), kube::Error::Api(status)));
                            }
                        }
                    }
                }
                Err(kube::Error::Api(status)) if status.code == 410 => gone = true,
                Err(e) => return Err(self.error("watch", &self.what(name), e)),
            }
            if gone {
                match self.relist(name, resource_version).await? {
                    Relisted::Changed(object) => return Ok(Some(object)),
                    Relisted::Unchanged(at) => resume = at,
                }
            }
        }
    }

    /// The named object by LIST (whose resourceVersion a watch can resume from): changed
    /// since `since`, or unchanged as of the list's version. Gone is NotFound.
    async fn relist(&self, name: &str, since: &str) -> Result<Relisted, KubeError> {
        let lp = ListParams::default().fields(&format!("metadata.name={name}"));
        let list = self
            .api
            .list(&lp)
            .await
            .map_err(|e| self.error("list", &self.what(name), e))?;
        let at = list.metadata.resource_version.clone().unwrap_or_default();
        match list.items.into_iter().next().map(to_json) {
            None => Err(KubeError::NotFound(format!("{} was deleted", self.what(name)))),
            Some(object) if resource_version(&object) != since => Ok(Relisted::Changed(object)),
            Some(_) => Ok(Relisted::Unchanged(at)),
        }
    }
}

/// What a re-list after 410 Gone found.
enum Relisted {
    Changed(Value),
    /// Unchanged; watch again from this (the list's) resourceVersion.
    Unchanged(String),
}

/// The resourceVersion of an object as JSON.
pub fn resource_version(object: &Value) -> &str {
    object["metadata"]["resourceVersion"].as_str().unwrap_or("0")
}
