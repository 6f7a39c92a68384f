//! A test Kubernetes API server: the real REST paths and semantics for the namespaced objects
//! barge touches (argoproj.io Applications, Rollouts, AnalysisRuns; batch Jobs), in memory.
//!
//! - GET one, LIST (labelSelector, fieldSelector `metadata.name=`), WATCH (`?watch=1` from a
//!   resourceVersion: newline-delimited events, ended by `timeoutSeconds`), POST (create,
//!   `generateName`), PUT (optimistic concurrency on `metadata.resourceVersion`: 409), PATCH
//!   (merge, strategic-merge treated as merge, JSON patch), DELETE, and the `/status`
//!   subresource for kinds that have one (Rollouts, AnalysisRuns, Jobs: their main resource
//!   ignores status changes, as the real API does).
//! - Every write bumps one global resourceVersion; `generation` grows when `spec` changes.
//! - Errors are `Status` objects with the real codes (404, 409, 401, 415, 422).
//! - A bearer token is required when the server is started with one.
//!
//! Test controllers change objects in place with [`ApiServer::update`], which records a
//! MODIFIED event like any write, so watchers see controller progress.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (group, plural, namespace, name); the core group is "".
type Key = (String, String, String, String);

#[derive(Default)]
struct Inner {
    objects: BTreeMap<Key, Value>,
    /// Every change, in order: (resourceVersion, group, plural, namespace, type, object).
    events: Vec<(u64, String, String, String, &'static str, Value)>,
    version: u64,
    requests: Vec<String>,
}

#[derive(Clone)]
pub struct ApiServer {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
    token: Option<String>,
    pub url: String,
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

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, [("content-type", "application/json")], body.to_string()).into_response()
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = ApiServer {
            inner: Arc::default(),
            changed: Arc::new(tokio::sync::Notify::new()),
            token: token.map(str::to_string),
            url: format!("http://{}", listener.local_addr().unwrap()),
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
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    /// A kubeconfig file for this server (context `test`, namespace `default`).
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let user = match &self.token {
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
        create_locked(&mut inner, group, plural, &ns, object).expect("a new object")
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
    /// changed anything. Records a MODIFIED event when it did.
    pub fn update(&self, group: &str, plural: &str, ns: &str, name: &str, f: impl FnOnce(&mut Value) -> bool) -> bool {
        let mut inner = self.inner.lock().unwrap();
        let key = Self::key(group, plural, ns, name);
        let Some(mut obj) = inner.objects.get(&key).cloned() else {
            return false;
        };
        let spec_before = obj["spec"].clone();
        if !f(&mut obj) {
            return false;
        }
        if obj["spec"] != spec_before {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(0);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        store_locked(&mut inner, key, obj, "MODIFIED");
        drop(inner);
        self.changed.notify_waiters();
        true
    }

    /// Every version the named object had, oldest first (from the change log).
    pub fn history(&self, group: &str, plural: &str, ns: &str, name: &str) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .events
            .iter()
            .filter(|(_, g, p, n, _, o)| g == group && p == plural && n == ns && o["metadata"]["name"] == name)
            .map(|e| e.5.clone())
            .collect()
    }

    /// Requests so far, as `METHOD path?query content-type`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
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
    let (g, p, ns, _) = key;
    inner.events.push((inner.version, g, p, ns, kind, obj.clone()));
    obj
}

fn create_locked(
    inner: &mut Inner,
    group: &str,
    plural: &str,
    ns: &str,
    mut obj: Value,
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
    Ok(store_locked(inner, key, obj, "ADDED"))
}

impl ApiServer {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        match &self.token {
            None => true,
            Some(t) => headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == format!("Bearer {t}")),
        }
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
    if !s.authorized(&headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized".into());
    }
    let labels = query.get("labelSelector").cloned().unwrap_or_default();
    let fields = query.get("fieldSelector").cloned().unwrap_or_default();
    match method {
        Method::GET if matches!(query.get("watch").map(String::as_str), Some("1" | "true")) => {
            let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(290u64);
            watch(s, group, plural, ns, labels, fields, from, Duration::from_secs(timeout))
        }
        Method::GET => {
            let inner = s.inner.lock().unwrap();
            let items: Vec<Value> = inner
                .objects
                .iter()
                .filter(|((g, p, n, _), v)| {
                    g == &group && p == &plural && n == &ns && labels_match(v, &labels) && fields_match(v, &fields)
                })
                .map(|(_, v)| v.clone())
                .collect();
            ok(
                StatusCode::OK,
                &json!({"apiVersion": if group.is_empty() { version.clone() } else { format!("{group}/{version}") }, "kind": format!("{}List", kind_of(&plural)),
                    "metadata": {"resourceVersion": inner.version.to_string()}, "items": items}),
            )
        }
        Method::POST => {
            let Ok(obj) = serde_json::from_slice::<Value>(&body) else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into());
            };
            let created = create_locked(&mut s.inner.lock().unwrap(), &group, &plural, &ns, obj);
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

#[allow(clippy::too_many_arguments)]
fn watch(
    s: ApiServer,
    group: String,
    plural: String,
    ns: String,
    labels: String,
    fields: String,
    from: u64,
    limit: Duration,
) -> Response {
    // resourceVersion 0 (or none): the current objects as ADDED, then changes.
    let start = if from == 0 {
        let inner = s.inner.lock().unwrap();
        let initial: Vec<String> = inner
            .objects
            .iter()
            .filter(|((g, p, n, _), v)| {
                g == &group && p == &plural && n == &ns && labels_match(v, &labels) && fields_match(v, &fields)
            })
            .map(|(_, v)| json!({"type": "ADDED", "object": v}).to_string() + "\n")
            .collect();
        (initial, inner.version)
    } else {
        (Vec::new(), from)
    };
    let deadline = tokio::time::Instant::now() + limit;
    let state = (s, start.1, start.0, deadline);
    let stream = futures_util::stream::unfold(state, move |(s, mut seen, mut pending, deadline)| {
        let (group, plural, ns, labels, fields) = (
            group.clone(),
            plural.clone(),
            ns.clone(),
            labels.clone(),
            fields.clone(),
        );
        async move {
            loop {
                if let Some(line) = (!pending.is_empty()).then(|| pending.remove(0)) {
                    return Some((Ok::<_, std::io::Error>(line), (s, seen, pending, deadline)));
                }
                let notified = s.changed.notified();
                {
                    let inner = s.inner.lock().unwrap();
                    let since = seen;
                    for (v, g, p, n, kind, obj) in inner.events.iter().filter(|e| e.0 > since) {
                        seen = *v;
                        if g == &group
                            && p == &plural
                            && n == &ns
                            && labels_match(obj, &labels)
                            && fields_match(obj, &fields)
                        {
                            pending.push(json!({"type": kind, "object": obj}).to_string() + "\n");
                        }
                    }
                }
                if !pending.is_empty() {
                    continue;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return None;
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
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
    write(&s, &group, &plural, &ns, &name, false, &method, &headers, &body)
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
    write(&s, &group, &plural, &ns, &name, true, &method, &headers, &body)
}

#[allow(clippy::too_many_arguments)]
fn write(
    s: &ApiServer,
    group: &str,
    plural: &str,
    ns: &str,
    name: &str,
    status_only: bool,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if !s.authorized(headers) {
        return status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized".into());
    }
    let key: Key = (group.into(), plural.into(), ns.into(), name.into());
    let mut inner = s.inner.lock().unwrap();
    let Some(current) = inner.objects.get(&key).cloned() else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{plural}.{group} \"{name}\" not found"),
        );
    };
    let input = || serde_json::from_slice::<Value>(body).ok();
    let not_json = || status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not JSON".into());
    let mut next = current.clone();
    match *method {
        Method::GET => return ok(StatusCode::OK, &current),
        Method::DELETE => {
            inner.objects.remove(&key);
            inner.version += 1;
            let v = inner.version;
            inner
                .events
                .push((v, group.into(), plural.into(), ns.into(), "DELETED", current.clone()));
            drop(inner);
            s.changed.notify_waiters();
            return ok(StatusCode::OK, &current);
        }
        Method::PUT => match input() {
            Some(v) => {
                let want = v["metadata"]["resourceVersion"].as_str().unwrap_or("");
                if !want.is_empty() && want != current["metadata"]["resourceVersion"].as_str().unwrap_or("") {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                        ),
                    );
                }
                next = v;
            }
            None => return not_json(),
        },
        Method::PATCH => {
            let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
            let Some(patch) = input() else {
                return not_json();
            };
            match ct {
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    let want = patch["metadata"]["resourceVersion"].as_str().unwrap_or("");
                    if !want.is_empty() && want != current["metadata"]["resourceVersion"].as_str().unwrap_or("") {
                        return status(
                            StatusCode::CONFLICT,
                            "Conflict",
                            format!("{plural} \"{name}\": the object has been modified"),
                        );
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
                format!("{method} is not allowed"),
            );
        }
    }
    // The main resource and the status subresource each keep to their part.
    if status_only {
        let new_status = next["status"].clone();
        next = current.clone();
        next["status"] = new_status;
    } else if has_status_subresource(plural) {
        next["status"] = current["status"].clone();
    }
    for field in ["name", "namespace", "uid", "creationTimestamp", "generation"] {
        next["metadata"][field] = current["metadata"][field].clone();
    }
    if next["spec"] != current["spec"] {
        next["metadata"]["generation"] = json!(current["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
    }
    let stored = store_locked(&mut inner, key, next, "MODIFIED");
    drop(inner);
    s.changed.notify_waiters();
    ok(StatusCode::OK, &stored)
}
