//! A test Kubernetes API server: the real REST paths and semantics for the namespaced objects
//! barge touches (argoproj.io Applications, Rollouts, AnalysisRuns; batch Jobs; core Pods), in
//! memory, following "Kubernetes API Concepts"
//! (https://kubernetes.io/docs/reference/using-api/api-concepts/).
//!
//! Faithful:
//! - GET one, LIST (labelSelector, fieldSelector `metadata.name=`), POST (create,
//!   `generateName`), PUT (optimistic concurrency on `metadata.resourceVersion`: 409), PATCH
//!   (merge, strategic-merge treated as merge, JSON patch, server-side apply), DELETE, and the
//!   `/status` subresource for kinds that have one (Rollouts, AnalysisRuns, Jobs: their main
//!   resource ignores status changes, as the real API does).
//! - Every write bumps one global resourceVersion; `generation` grows when `spec` changes.
//! - WATCH (`?watch=1`): from a resourceVersion, newline-delimited events. Each resource type
//!   keeps a bounded history of events (the watch cache's window, [`Options::history`]); a
//!   watch from a version older than the window, or than a [`ApiServer::compact`], gets one
//!   ERROR event with a 410 `Expired` Status and ends, as the real server answers. With
//!   `allowWatchBookmarks=true` it sends BOOKMARK events carrying the latest resourceVersion
//!   every [`Options::bookmark_every`]. A watch ends after its `timeoutSeconds`, or without one
//!   after a randomised server default (`--min-request-timeout` 1800s, times 1 to 2).
//! - Server-side apply (`application/apply-patch+yaml`, `fieldManager`, `force`) and
//!   `metadata.managedFields` for every write, with 409 on a field-manager conflict
//!   ([`super::fields`] says what is simplified).
//! - Authentication: a bearer token when the server is started with one (401). Authorization:
//!   [`ApiServer::deny`] rules answer 403 Forbidden with the real Status message.
//! - Errors are `Status` objects with the real codes and reasons (401, 403, 404, 409, 410,
//!   415, 422).
//!
//! Not implemented (a test that needs one adds it): cluster-scoped objects, LIST
//! pagination (`limit`/`continue`), LIST at an older resourceVersion (`resourceVersionMatch`),
//! `sendInitialEvents`, admission, defaulting and schema validation, finalizers and
//! owner-reference garbage collection, protobuf, and HTTP/2.
//!
//! Test controllers change objects in place with [`ApiServer::update`], which records a
//! MODIFIED event like any write, so watchers see controller progress.

use super::fields;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (group, plural, namespace, name); the core group is "".
type Key = (String, String, String, String);

/// A resource type: (group, plural).
type ResourceType = (String, String);

/// One change, as watches replay it.
struct Event {
    version: u64,
    group: String,
    plural: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

/// The manager the test controllers' writes are recorded under in `managedFields`.
pub const CONTROLLER_MANAGER: &str = "test-controller";

/// What the real server is configured with or decides by itself.
#[derive(Clone, Debug)]
pub struct Options {
    /// The bearer token requests must carry (none: anyone may call).
    pub token: Option<String>,
    /// The authenticated user, as 403 messages name it.
    pub user: String,
    /// Events each resource type keeps for watches to resume from (the watch cache's window).
    pub history: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK (the real server:
    /// about a minute).
    pub bookmark_every: Duration,
    /// A watch without `timeoutSeconds` ends after this, times a random 1 to 2 (the real
    /// server's `--min-request-timeout`, 1800s).
    pub min_request_timeout: Duration,
    /// Ends every watch after this, whatever its `timeoutSeconds`: what a load balancer or
    /// proxy in front of the API server, or an API server restart, does to long requests.
    pub cut_watches_after: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: None,
            user: "system:serviceaccount:barge:barge".into(),
            history: 1000,
            bookmark_every: Duration::from_secs(60),
            min_request_timeout: Duration::from_secs(1800),
            cut_watches_after: None,
        }
    }
}

/// An RBAC refusal: this `verb` on this resource (`plural`, or `plural/status` for the
/// subresource) of this API group, in this namespace (`*`: any namespace) is forbidden.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub namespace: String,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<Key, Value>,
    /// Every change, in order (test assertions read the whole log; watches only the window).
    events: Vec<Event>,
    /// Per resource type: the versions of its events still in the window, oldest first.
    window: HashMap<ResourceType, VecDeque<u64>>,
    /// Per resource type: the newest version that fell out of the window.
    expired: HashMap<ResourceType, u64>,
    /// Every watch from before this version is too old (an etcd compaction).
    compacted: u64,
    version: u64,
    requests: Vec<String>,
    denials: Vec<Denial>,
    /// [`Options::history`].
    history_limit: usize,
}

impl Inner {
    /// The oldest version a watch of this type can resume from, when `from` is older.
    fn too_old(&self, rt: &ResourceType, from: u64) -> Option<u64> {
        let oldest = self.expired.get(rt).copied().unwrap_or(0).max(self.compacted);
        (from < oldest).then_some(oldest)
    }

    fn record(&mut self, key: &Key, kind: &'static str, object: Value) {
        let (group, plural, namespace, _) = key.clone();
        let rt = (group.clone(), plural.clone());
        let window = self.window.entry(rt.clone()).or_default();
        window.push_back(self.version);
        let mut dropped = None;
        while window.len() > self.history_limit {
            dropped = window.pop_front();
        }
        if let Some(d) = dropped {
            self.expired.insert(rt, d);
        }
        self.events.push(Event {
            version: self.version,
            group,
            plural,
            namespace,
            kind,
            object,
        });
    }
}

#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
    /// The watches streaming now.
    open_watches: Arc<AtomicUsize>,
    options: Arc<Options>,
    pub url: String,
    /// The runtime it serves on, its own (a test may block the test's runtime), which its
    /// controllers run on too; it stops when the test's runtime shuts down.
    runtime: tokio::runtime::Handle,
}

/// Counts one open watch while it lives.
struct OpenWatch(Arc<AtomicUsize>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn kind_of(plural: &str) -> &'static str {
    match plural {
        "applications" => "Application",
        "rollouts" => "Rollout",
        "analysisruns" => "AnalysisRun",
        "jobs" => "Job",
        "pods" => "Pod",
        _ => "Object",
    }
}

fn has_status_subresource(plural: &str) -> bool {
    matches!(plural, "rollouts" | "analysisruns" | "jobs")
}

/// A failure `Status` object (with `details` when not null).
fn status_object(code: StatusCode, reason: &str, message: String, details: Value) -> Value {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    if !details.is_null() {
        body["details"] = details;
    }
    body
}

fn status_with(code: StatusCode, reason: &str, message: String, details: Value) -> Response {
    ok(code, &status_object(code, reason, message, details))
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    status_with(code, reason, message, Value::Null)
}

fn ok(code: StatusCode, v: &Value) -> Response {
    (code, [("content-type", "application/json")], v.to_string()).into_response()
}

/// RFC 7386.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 (add, replace, remove, test).
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("a JSON patch is a list of operations")? {
        let path = op["path"].as_str().ok_or("an operation needs a path")?;
        let parts: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = parts.split_last().ok_or("empty path")?;
        let mut node = &mut *target;
        for p in parents {
            node = match node {
                Value::Object(m) => m.get_mut(p).ok_or(format!("{path}: no {p}"))?,
                Value::Array(a) => a
                    .get_mut(p.parse::<usize>().map_err(|_| format!("{path}: bad index"))?)
                    .ok_or(format!("{path}: no {p}"))?,
                _ => return Err(format!("{path}: not a container")),
            };
        }
        match (op["op"].as_str().unwrap_or(""), node) {
            ("add" | "replace", Value::Object(m)) => {
                m.insert(last.clone(), op["value"].clone());
            }
            ("add", Value::Array(a)) if last == "-" => a.push(op["value"].clone()),
            ("add", Value::Array(a)) => a.insert(last.parse().map_err(|_| "bad index")?, op["value"].clone()),
            ("replace", Value::Array(a)) => {
                *a.get_mut(last.parse::<usize>().map_err(|_| "bad index")?)
                    .ok_or("no such index")? = op["value"].clone()
            }
            ("remove", Value::Object(m)) => {
                m.remove(last).ok_or(format!("{path}: nothing to remove"))?;
            }
            ("remove", Value::Array(a)) => {
                a.remove(last.parse::<usize>().map_err(|_| "bad index")?);
            }
            ("test", n) => {
                let found = match n {
                    Value::Object(m) => m.get(last).cloned(),
                    _ => None,
                };
                if found.as_ref() != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            (other, _) => return Err(format!("unsupported operation {other:?}")),
        }
    }
    Ok(())
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.trim().is_empty()).all(|term| {
        let labels = &obj["metadata"]["labels"];
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()].as_str() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k.trim().trim_end_matches('=')].as_str() == Some(v.trim().trim_start_matches('='))
        } else {
            !labels[term.trim()].is_null()
        }
    })
}

fn fields_match(obj: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .all(|term| match term.split_once('=') {
            Some(("metadata.name", v)) => obj["metadata"]["name"].as_str() == Some(v.trim_start_matches('=')),
            Some(("metadata.namespace", v)) => obj["metadata"]["namespace"].as_str() == Some(v.trim_start_matches('=')),
            _ => true,
        })
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    rfc3339(secs)
}

/// Seconds since the epoch as Kubernetes writes times (`2026-11-22T10:00:05Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl ApiServer {
    /// Starts the server on a loopback port. With `token`, requests must carry it.
    pub async fn start(token: Option<&str>) -> ApiServer {
        Self::start_with(Options {
            token: token.map(str::to_string),
            ..Options::default()
        })
        .await
    }

    /// Starts the server on a loopback port, configured.
    pub async fn start_with(options: Options) -> ApiServer {
        let (listener, addr) = crate::runtime::loopback_listener();
        let runtime = crate::runtime::ServerRuntime::start("kube-apiserver");
        let inner = Inner {
            history_limit: options.history.max(1),
            ..Inner::default()
        };
        let server = ApiServer {
            inner: Arc::new(Mutex::new(inner)),
            changed: Arc::new(tokio::sync::Notify::new()),
            open_watches: Arc::default(),
            options: Arc::new(options),
            url: format!("http://{addr}"),
            runtime: runtime.handle(),
        };
        let app = Router::new()
            .route("/api/{version}/namespaces/{ns}/{plural}", any(core_collection))
            .route("/apis/{group}/{version}/namespaces/{ns}/{plural}", any(collection))
            .route("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", any(object))
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/{sub}",
                any(subresource),
            )
            .with_state(server.clone());
        runtime.serve(listener, app);
        runtime.stop_with_caller();
        server
    }

    /// Spawns `task` (a controller) on the server's runtime, so it runs whatever the test does.
    pub(crate) fn spawn(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        self.runtime.spawn(task)
    }

    /// A kubeconfig file for this server (context `test`, namespace `default`).
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let user = match &self.options.token {
            Some(t) => format!("{{token: {t}}}"),
            None => "{}".into(),
        };
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: '{}'}}\nusers:\n- name: test\n  user: {user}\ncontexts:\n- name: test\n  context: {{cluster: test, user: test, namespace: default}}\ncurrent-context: test\n",
                self.url
            ),
        )
        .unwrap();
        path
    }

    fn key(kind_group: &str, plural: &str, ns: &str, name: &str) -> Key {
        (kind_group.into(), plural.into(), ns.into(), name.into())
    }

    /// Stores an object as if created through the API; returns it with its metadata.
    pub fn put(&self, group: &str, plural: &str, object: Value) -> Value {
        let mut inner = self.inner.lock().unwrap();
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let created =
            create_locked(&mut inner, group, plural, &ns, object, Some(CONTROLLER_MANAGER)).expect("a new object");
        drop(inner);
        self.changed.notify_waiters();
        created
    }

    pub fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .get(&Self::key(group, plural, ns, name))
            .cloned()
    }

    pub fn list(&self, group: &str, plural: &str) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((g, p, _, _), _)| g == group && p == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Changes an object in place (a controller writing status); `f` returns whether it
    /// changed anything. Records a MODIFIED event when it did, and the changed fields under
    /// [`CONTROLLER_MANAGER`].
    pub fn update(&self, group: &str, plural: &str, ns: &str, name: &str, f: impl FnOnce(&mut Value) -> bool) -> bool {
        let mut inner = self.inner.lock().unwrap();
        let key = Self::key(group, plural, ns, name);
        let Some(before) = inner.objects.get(&key).cloned() else {
            return false;
        };
        let mut obj = before.clone();
        if !f(&mut obj) {
            return false;
        }
        if obj["spec"] != before["spec"] {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(0);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        fields::record_update(Some(&before), &mut obj, CONTROLLER_MANAGER, &now_rfc3339());
        store_locked(&mut inner, key, obj, "MODIFIED");
        drop(inner);
        self.changed.notify_waiters();
        true
    }

    /// Deletes an object as a DELETE through the API would (a DELETED event for watchers),
    /// e.g. a controller tearing down what it created; the object as it was, if it existed.
    pub fn delete(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let mut inner = self.inner.lock().unwrap();
        let key = Self::key(group, plural, ns, name);
        let mut last = inner.objects.remove(&key)?;
        inner.version += 1;
        last["metadata"]["resourceVersion"] = json!(inner.version.to_string());
        inner.record(&key, "DELETED", last.clone());
        drop(inner);
        self.changed.notify_waiters();
        Some(last)
    }

    /// Every version the named object had, oldest first (from the change log, which keeps
    /// what watches can no longer resume from).
    pub fn history(&self, group: &str, plural: &str, ns: &str, name: &str) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .events
            .iter()
            .filter(|e| {
                e.group == group && e.plural == plural && e.namespace == ns && e.object["metadata"]["name"] == name
            })
            .map(|e| e.object.clone())
            .collect()
    }

    /// Requests so far, as `METHOD path?query content-type`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// How many watches are streaming now (a test waits for its client to be watching).
    pub fn open_watches(&self) -> usize {
        self.open_watches.load(Ordering::SeqCst)
    }

    /// Compacts every resource type's history at the current version, as etcd's compaction
    /// does: a watch from an older version gets 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.compacted = inner.version;
    }

    /// Forbids `verb` on `resource` (a plural, or `plural/status`) of `group` in `namespace`
    /// (`*`: every namespace) from now on: such requests get RBAC's 403.
    pub fn deny(&self, verb: &str, group: &str, resource: &str, namespace: &str) {
        self.inner.lock().unwrap().denials.push(Denial {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
        });
    }

    /// Waits until `f` holds for the named object (polling the store), or panics after `limit`.
    pub async fn wait_for(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        limit: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = self.get(group, plural, ns, name)
                && f(&v)
            {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{plural} {ns}/{name} never reached the state"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn store_locked(inner: &mut Inner, key: Key, mut obj: Value, kind: &'static str) -> Value {
    inner.version += 1;
    obj["metadata"]["resourceVersion"] = json!(inner.version.to_string());
    inner.objects.insert(key.clone(), obj.clone());
    inner.record(&key, kind, obj.clone());
    obj
}

/// Creates an object; `manager` owns its fields (None: `managedFields` are already set, by
/// an apply).
fn create_locked(
    inner: &mut Inner,
    group: &str,
    plural: &str,
    ns: &str,
    mut obj: Value,
    manager: Option<&str>,
) -> Result<Value, Box<Response>> {
    let mut name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        let Some(prefix) = obj["metadata"]["generateName"].as_str() else {
            return Err(Box::new(status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "metadata.name: Required value".into(),
            )));
        };
        name = format!("{prefix}{:05x}", (inner.version * 7919 + 12345) % 0xfffff);
    }
    let key: Key = (group.into(), plural.into(), ns.into(), name.clone());
    if inner.objects.contains_key(&key) {
        return Err(Box::new(status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{plural} \"{name}\" already exists"),
        )));
    }
    let meta = &mut obj["metadata"];
    meta["name"] = json!(name);
    meta["namespace"] = json!(ns);
    meta["uid"] = json!(format!("uid-{}-{name}", inner.version + 1));
    meta["generation"] = json!(1);
    meta["creationTimestamp"] = json!(now_rfc3339());
    if obj["kind"].is_null() {
        obj["kind"] = json!(kind_of(plural));
    }
    if let Some(manager) = manager {
        fields::record_update(None, &mut obj, manager, &now_rfc3339());
    }
    Ok(store_locked(inner, key, obj, "ADDED"))
}

impl ApiServer {
    fn authenticated(&self, headers: &HeaderMap) -> bool {
        match &self.options.token {
            None => true,
            Some(t) => headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == format!("Bearer {t}")),
        }
    }

    /// 401 without the token; 403 when a [`Denial`] forbids the request, worded as the real
    /// RBAC authorizer words it; None when the request may go on.
    fn refuse(
        &self,
        headers: &HeaderMap,
        verb: &str,
        group: &str,
        resource: &str,
        ns: &str,
        name: Option<&str>,
    ) -> Option<Response> {
        if !self.authenticated(headers) {
            return Some(status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized".into()));
        }
        let denied = self.inner.lock().unwrap().denials.iter().any(|d| {
            d.verb == verb && d.group == group && d.resource == resource && (d.namespace == ns || d.namespace == "*")
        });
        if !denied {
            return None;
        }
        let base = resource.split('/').next().unwrap_or(resource);
        let qualified = if group.is_empty() {
            base.to_string()
        } else {
            format!("{base}.{group}")
        };
        let subject = match name {
            Some(n) => format!("{qualified} \"{n}\""),
            None => qualified,
        };
        let message = format!(
            "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{ns}\"",
            self.options.user
        );
        let mut details = json!({"group": group, "kind": base});
        if let Some(n) = name {
            details["name"] = json!(n);
        }
        Some(status_with(StatusCode::FORBIDDEN, "Forbidden", message, details))
    }

    fn log(&self, method: &Method, path: &str, query: &HashMap<String, String>, headers: &HeaderMap) {
        let mut q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        q.sort();
        let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        self.inner
            .lock()
            .unwrap()
            .requests
            .push(format!("{method} {path}?{} {ct}", q.join("&")).trim_end().to_string());
    }
}

/// The core group (`/api/v1/...`, e.g. pods): the same collection semantics, group "".
async fn core_collection(
    state: State<ApiServer>,
    Path((version, ns, plural)): Path<(String, String, String)>,
    query: Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    collection(
        state,
        Path((String::new(), version, ns, plural)),
        query,
        method,
        headers,
        body,
    )
    .await
}

/// What a LIST or WATCH selects.
struct Selection {
    group: String,
    plural: String,
    namespace: String,
    labels: String,
    fields: String,
}

impl Selection {
    fn matches(&self, group: &str, plural: &str, namespace: &str, object: &Value) -> bool {
        group == self.group
            && plural == self.plural
            && namespace == self.namespace
            && labels_match(object, &self.labels)
            && fields_match(object, &self.fields)
    }
}

fn is_true(query: &HashMap<String, String>, name: &str) -> bool {
    matches!(query.get(name).map(String::as_str), Some("1" | "true"))
}

/// A number in [0, 1) that differs from call to call (the real server randomises its default
/// watch timeout so that watches do not all end together).
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    f64::from(nanos % 1000) / 1000.0
}

async fn collection(
    State(s): State<ApiServer>,
    Path((group, version, ns, plural)): Path<(String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    s.log(&method, &format!("{prefix}/namespaces/{ns}/{plural}"), &query, &headers);
    let watching = method == Method::GET && is_true(&query, "watch");
    let verb = match method {
        Method::GET if watching => "watch",
        Method::GET => "list",
        Method::POST => "create",
        _ => "",
    };
    if let Some(refused) = s.refuse(&headers, verb, &group, &plural, &ns, None) {
        return refused;
    }
    let api_version = if group.is_empty() {
        version.clone()
    } else {
        format!("{group}/{version}")
    };
    let selection = Selection {
        group: group.clone(),
        plural: plural.clone(),
        namespace: ns.clone(),
        labels: query.get("labelSelector").cloned().unwrap_or_default(),
        fields: query.get("fieldSelector").cloned().unwrap_or_default(),
    };
    match method {
        Method::GET if watching => {
            let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
            let asked = query
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|t| *t > 0)
                .map(Duration::from_secs);
            let timeout = asked.unwrap_or_else(|| s.options.min_request_timeout.mul_f64(1.0 + jitter()));
            let timeout = s.options.cut_watches_after.map_or(timeout, |cut| cut.min(timeout));
            let bookmarks = is_true(&query, "allowWatchBookmarks");
            watch(s, selection, api_version, from, timeout, bookmarks)
        }
        Method::GET => {
            let inner = s.inner.lock().unwrap();
            let items: Vec<Value> = inner
                .objects
                .iter()
                .filter(|((g, p, n, _), v)| selection.matches(g, p, n, v))
                .map(|(_, v)| v.clone())
                .collect();
            ok(
                StatusCode::OK,
                &json!({"apiVersion": api_version, "kind": format!("{}List", kind_of(&plural)),
                    "metadata": {"resourceVersion": inner.version.to_string()}, "items": items}),
            )
        }
        Method::POST => {
            let Ok(obj) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into());
            };
            let manager = manager(&query, &headers);
            let created = create_locked(&mut s.inner.lock().unwrap(), &group, &plural, &ns, obj, Some(&manager));
            s.changed.notify_waiters();
            match created {
                Ok(v) => ok(StatusCode::CREATED, &v),
                Err(r) => *r,
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not allowed here"),
        ),
    }
}

/// The field manager of a write: `fieldManager`, else the User-Agent's first word, as the real
/// server names it.
fn manager(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

/// A watch in progress.
struct Watch {
    s: ApiServer,
    selection: Selection,
    api_version: String,
    /// Every event up to this version has been looked at.
    seen: u64,
    pending: VecDeque<String>,
    /// Nothing follows the pending lines (a 410).
    ended: bool,
    deadline: tokio::time::Instant,
    next_bookmark: Option<tokio::time::Instant>,
    _open: Option<OpenWatch>,
}

fn event_line(kind: &str, object: &Value) -> String {
    json!({"type": kind, "object": object}).to_string() + "\n"
}

impl Watch {
    /// Queues the selected events newer than `seen`.
    fn catch_up(&mut self) {
        let inner = self.s.inner.lock().unwrap();
        let start = inner.events.partition_point(|e| e.version <= self.seen);
        for e in &inner.events[start..] {
            if self.selection.matches(&e.group, &e.plural, &e.namespace, &e.object) {
                self.pending.push_back(event_line(e.kind, &e.object));
            }
        }
        self.seen = self.seen.max(inner.version);
    }

    /// The next line to send, or None when the watch ends.
    async fn next_line(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            if self.ended {
                return None;
            }
            // Made before looking, so a change while looking is not missed.
            let changed = self.s.changed.clone();
            let notified = changed.notified();
            self.catch_up();
            if !self.pending.is_empty() {
                continue;
            }
            let wake = self.next_bookmark.map_or(self.deadline, |b| b.min(self.deadline));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= self.deadline {
                        return None;
                    }
                    if let Some(at) = self.next_bookmark.as_mut() {
                        *at += self.s.options.bookmark_every;
                        // A BOOKMARK is the kind with only a resourceVersion: every change up to
                        // it has been sent.
                        let object = json!({"kind": kind_of(&self.selection.plural), "apiVersion": self.api_version,
                            "metadata": {"resourceVersion": self.seen.to_string()}});
                        self.pending.push_back(event_line("BOOKMARK", &object));
                    }
                }
            }
        }
    }
}

fn watch(
    s: ApiServer,
    selection: Selection,
    api_version: String,
    from: u64,
    limit: Duration,
    bookmarks: bool,
) -> Response {
    let now = tokio::time::Instant::now();
    let mut pending = VecDeque::new();
    let (seen, ended) = {
        let inner = s.inner.lock().unwrap();
        let rt = (selection.group.clone(), selection.plural.clone());
        if from == 0 {
            // resourceVersion unset or 0: the current objects as ADDED, then changes.
            for ((g, p, n, _), v) in &inner.objects {
                if selection.matches(g, p, n, v) {
                    pending.push_back(event_line("ADDED", v));
                }
            }
            (inner.version, false)
        } else if let Some(oldest) = inner.too_old(&rt, from) {
            // The real server answers 200 and one ERROR event holding the 410 Status.
            let gone = status_object(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {from} ({oldest})"),
                Value::Null,
            );
            pending.push_back(event_line("ERROR", &gone));
            (from, true)
        } else {
            (from, false)
        }
    };
    let open = (!ended).then(|| {
        s.open_watches.fetch_add(1, Ordering::SeqCst);
        OpenWatch(s.open_watches.clone())
    });
    let state = Watch {
        _open: open,
        next_bookmark: bookmarks.then(|| now + s.options.bookmark_every),
        s,
        selection,
        api_version,
        seen,
        pending,
        ended,
        deadline: now + limit,
    };
    let stream = futures_util::stream::unfold(state, |mut w| async move {
        let line = w.next_line().await?;
        Some((Ok::<_, std::io::Error>(line), w))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// A request for one object (`sub`: its subresource).
struct Call<'a> {
    group: &'a str,
    plural: &'a str,
    ns: &'a str,
    name: &'a str,
    sub: Option<&'a str>,
    method: &'a Method,
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
    body: &'a Bytes,
}

async fn object(
    State(s): State<ApiServer>,
    Path((group, version, ns, plural, name)): Path<(String, String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.log(
        &method,
        &format!("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}"),
        &query,
        &headers,
    );
    let call = Call {
        group: &group,
        plural: &plural,
        ns: &ns,
        name: &name,
        sub: None,
        method: &method,
        headers: &headers,
        query: &query,
        body: &body,
    };
    write(&s, &call)
}

async fn subresource(
    State(s): State<ApiServer>,
    Path((group, version, ns, plural, name, sub)): Path<(String, String, String, String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.log(
        &method,
        &format!("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}/{sub}"),
        &query,
        &headers,
    );
    if sub != "status" || !has_status_subresource(&plural) {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({sub})"),
        );
    }
    let call = Call {
        group: &group,
        plural: &plural,
        ns: &ns,
        name: &name,
        sub: Some(&sub),
        method: &method,
        headers: &headers,
        query: &query,
        body: &body,
    };
    write(&s, &call)
}

/// The part of an applied configuration the endpoint takes: the status subresource only the
/// status, a main resource with a status subresource everything but the status.
fn endpoint_part(mut applied: Value, status_only: bool, plural: &str) -> Value {
    if status_only {
        json!({"apiVersion": applied["apiVersion"], "kind": applied["kind"], "metadata": applied["metadata"],
            "status": applied["status"]})
    } else {
        if has_status_subresource(plural)
            && let Some(m) = applied.as_object_mut()
        {
            m.remove("status");
        }
        applied
    }
}

fn write(s: &ApiServer, c: &Call<'_>) -> Response {
    let status_only = c.sub.is_some();
    let verb = match *c.method {
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    };
    let resource = match c.sub {
        Some(sub) => format!("{}/{sub}", c.plural),
        None => c.plural.to_string(),
    };
    if let Some(refused) = s.refuse(c.headers, verb, c.group, &resource, c.ns, Some(c.name)) {
        return refused;
    }
    let (group, plural, ns, name) = (c.group, c.plural, c.ns, c.name);
    let key: Key = (group.into(), plural.into(), ns.into(), name.into());
    let ct = c
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let applying = *c.method == Method::PATCH && ct.starts_with("application/apply-patch");
    let mut inner = s.inner.lock().unwrap();
    let current = inner.objects.get(&key).cloned();
    if applying {
        let Some(manager) = c.query.get("fieldManager").filter(|m| !m.is_empty()) else {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                    .into(),
            );
        };
        // YAML is a superset of JSON: an apply body may be either.
        let applied = match yaml_serde::from_slice::<Value>(c.body) {
            Ok(v) if v.is_object() => v,
            _ => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the body is not an object".into(),
                );
            }
        };
        if !applied["metadata"]["managedFields"].is_null() {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "metadata.managedFields must be nil".into(),
            );
        }
        let applied = endpoint_part(applied, status_only, plural);
        let force = is_true(c.query, "force");
        let next = match fields::apply(current.as_ref(), &applied, manager, force, &now_rfc3339()) {
            Ok(next) => next,
            Err(conflicts) => {
                return status_with(
                    StatusCode::CONFLICT,
                    "Conflict",
                    conflicts.message(),
                    json!({"name": name, "group": group, "kind": plural, "causes": conflicts.causes()}),
                );
            }
        };
        let Some(current) = current else {
            // Apply creates what does not exist, named by its path.
            let mut next = next;
            next["metadata"]["name"] = json!(name);
            let created = create_locked(&mut inner, group, plural, ns, next, None);
            drop(inner);
            s.changed.notify_waiters();
            return match created {
                Ok(v) => ok(StatusCode::CREATED, &v),
                Err(r) => *r,
            };
        };
        return store_change(s, inner, key, &current, next, status_only, None);
    }
    let Some(current) = current else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{plural}.{group} \"{name}\" not found"),
        );
    };
    let input = || serde_json::from_slice::<Value>(c.body).ok();
    let not_json = || status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into());
    let stale = || {
        status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        )
    };
    let is_stale = |v: &Value| {
        let want = v["metadata"]["resourceVersion"].as_str().unwrap_or("");
        !want.is_empty() && want != current["metadata"]["resourceVersion"].as_str().unwrap_or("")
    };
    let mut next = current.clone();
    match *c.method {
        Method::GET => return ok(StatusCode::OK, &current),
        Method::DELETE => {
            inner.objects.remove(&key);
            inner.version += 1;
            // The DELETED event carries the object at the deletion's resourceVersion.
            let mut last = current.clone();
            last["metadata"]["resourceVersion"] = json!(inner.version.to_string());
            inner.record(&key, "DELETED", last.clone());
            drop(inner);
            s.changed.notify_waiters();
            return ok(StatusCode::OK, &last);
        }
        Method::PUT => match input() {
            Some(v) if is_stale(&v) => return stale(),
            Some(v) => next = v,
            None => return not_json(),
        },
        Method::PATCH => {
            let Some(patch) = input() else {
                return not_json();
            };
            match ct {
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    if is_stale(&patch) {
                        return stale();
                    }
                    merge_patch(&mut next, &patch);
                }
                "application/json-patch+json" => {
                    if let Err(e) = json_patch(&mut next, &patch) {
                        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e);
                    }
                }
                other => {
                    return status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format: {other}"),
                    );
                }
            }
        }
        _ => {
            return status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{} is not allowed", c.method),
            );
        }
    }
    let manager = manager(c.query, c.headers);
    store_change(s, inner, key, &current, next, status_only, Some(&manager))
}

/// Stores a change to an existing object: the main resource and the status subresource each
/// keep to their part, identity fields stay, `generation` follows `spec`, and `manager` (None:
/// an apply, which recorded its fields) owns what it changed.
fn store_change(
    s: &ApiServer,
    mut inner: std::sync::MutexGuard<'_, Inner>,
    key: Key,
    current: &Value,
    mut next: Value,
    status_only: bool,
    manager: Option<&str>,
) -> Response {
    if status_only {
        let new_status = next["status"].clone();
        let managed = next["metadata"]["managedFields"].clone();
        next = current.clone();
        next["status"] = new_status;
        next["metadata"]["managedFields"] = managed;
    } else if has_status_subresource(&key.1) {
        next["status"] = current["status"].clone();
    }
    for field in ["name", "namespace", "uid", "creationTimestamp", "generation"] {
        next["metadata"][field] = current["metadata"][field].clone();
    }
    if next["spec"] != current["spec"] {
        next["metadata"]["generation"] = json!(current["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
    }
    if let Some(manager) = manager {
        fields::record_update(Some(current), &mut next, manager, &now_rfc3339());
    }
    if next["metadata"]["managedFields"].is_null()
        && let Some(meta) = next["metadata"].as_object_mut()
    {
        meta.remove("managedFields");
    }
    let stored = store_locked(&mut inner, key, next, "MODIFIED");
    drop(inner);
    s.changed.notify_waiters();
    ok(StatusCode::OK, &stored)
}
