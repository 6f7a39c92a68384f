//! `?watch=true` on the list routes: Server-Sent Events of the list's objects, as Kargo's API
//! streams them (a Kubernetes watch without a resourceVersion): first every object as
//! `ADDED`, then each change as `ADDED`, `MODIFIED` or `DELETED`, each object the JSON that
//! route's GET of that one resource answers.
//!
//! The audit log is the change feed: every change a watch shows writes an audit row (most in
//! the transaction that makes the change), and a row's id is the cursor. An event's SSE `id`
//! is the id of the row it follows from, so a client that reconnects with `Last-Event-ID`
//! gets every row after it from the store: nothing missed, nothing twice, whichever replica
//! it reaches. An id is sent only on the last event of a row (and, after the first objects,
//! alone), so a connection cut in the middle of a row's events resumes at that row.
//!
//! The event sink wakes watches in-process ([`EventSink::subscribe`]); a periodic poll
//! finds what other replicas wrote. Each watch's task writes into a bounded queue: a
//! client that leaves it full for the client timeout is dropped, and nothing the engine
//! does ever waits for a watcher (the wake-up is a broadcast that never blocks its sender).
//!
//! [`EventSink::subscribe`]: barge_engine::events::EventSink::subscribe

use super::{Problem, unexpected};
use crate::api::Api;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use barge_core::ErrorClass;
use barge_core::authz::Principal;
use barge_engine::{Answer, EngineError, ops::Call};
use barge_store::AuditEvent;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a watch sends a heartbeat and reads the store without being woken.
#[derive(Clone, Copy, Debug)]
pub struct WatchTiming {
    /// An SSE comment line, so that proxies and clients see the stream is alive.
    pub heartbeat: Duration,
    /// The store poll that finds other replicas' changes.
    pub poll: Duration,
}

/// Messages a watch holds for a client that has not read them: beyond that, it is dropped.
const QUEUE: usize = 64;

/// Audit rows read at once.
const BATCH: i64 = 256;

/// How long an id the store has not shown yet may be a transaction still committing
/// (PostgreSQL hands out identities before commit, so rows can become visible out of id
/// order): a watch waits that long at such a gap before reading past it.
const SETTLE_MILLIS: i64 = 2_000;

/// The lists a watch follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resource {
    Stages,
    Freight,
    Promotions,
    Warehouses,
}

/// What an audit row changed of a list.
#[derive(Debug, PartialEq)]
enum Touched {
    Nothing,
    /// One object; `created` when the row records its creation.
    One {
        name: String,
        created: bool,
    },
    /// Possibly every object, some added or removed (the definitions were reloaded).
    All,
}

impl Resource {
    /// The call that reads the list (`name: None`) or one object.
    fn call(self, project: &str, name: Option<&str>) -> Call {
        let project = Some(project.to_string());
        let name = name.map(str::to_string);
        match self {
            Resource::Stages => Call::GetStages { project, name },
            Resource::Freight => Call::GetFreight {
                project,
                warehouse: None,
                name,
                page: None,
            },
            Resource::Promotions => Call::GetPromotions {
                project,
                stage: None,
                name,
            },
            // The engine reads Warehouses only as a list.
            Resource::Warehouses => Call::GetWarehouses { project },
        }
    }

    /// The answer's objects as Kargo's resources, as the GET routes answer each one.
    fn objects(self, answer: Answer) -> Result<Vec<Value>, Problem> {
        let matches = matches!(
            (self, &answer),
            (Resource::Stages, Answer::Stages(_))
                | (Resource::Freight, Answer::Freight(_))
                | (Resource::Promotions, Answer::Promotions(_))
                | (Resource::Warehouses, Answer::Warehouses(_))
        );
        match barge_engine::resource::objects(&answer) {
            Some(items) if matches => Ok(items),
            _ => Err(unexpected(&answer)),
        }
    }

    /// What `row` changed of this list.
    fn touched(self, row: &AuditEvent) -> Touched {
        let one = |name: &str, created: bool| {
            if name.is_empty() {
                Touched::Nothing
            } else {
                Touched::One {
                    name: name.to_string(),
                    created,
                }
            }
        };
        match self {
            Resource::Stages | Resource::Warehouses if row.kind == "config.reloaded" => Touched::All,
            Resource::Stages => one(&row.stage, false),
            Resource::Freight => one(&row.freight, row.kind == "freight.minted"),
            Resource::Promotions => match row.subject.strip_prefix("Promotion/") {
                Some(name) => one(name, row.kind == "promotion.created"),
                None => Touched::Nothing,
            },
            // A Warehouse's summary counts its Freight.
            Resource::Warehouses if row.kind == "freight.minted" => {
                one(row.body["warehouse"].as_str().unwrap_or_default(), false)
            }
            Resource::Warehouses => Touched::Nothing,
        }
    }

    /// Whether [`Touched::All`] can add or remove objects of this list, so that the watch
    /// keeps the names it showed to tell which.
    fn defined(self) -> bool {
        matches!(self, Resource::Stages | Resource::Warehouses)
    }
}

/// An object's name (`metadata.name`: every object is Kargo-shaped).
fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// One SSE message: an event of `kind` with `object`, and the `id` to resume after it.
fn message(kind: &str, object: &Value, id: Option<i64>) -> String {
    let data = json!({"type": kind, "object": object});
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    format!("event: {kind}\n{id}data: {data}\n\n")
}

/// The watch's response: a `text/event-stream` its task writes into. The caller is
/// authenticated already; every read is authorized for it as a GET would be.
pub(super) async fn respond(
    api: &Api,
    caller: Principal,
    project: String,
    resource: Resource,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()) {
            Some(id) if id >= 0 => Some(id),
            _ => {
                return Err(Problem::invalid(
                    "Last-Event-ID is not an id this watch sent: pass the last `id:` as it is".into(),
                    json!({}),
                ));
            }
        },
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut watch = Watch {
        api: api.clone(),
        caller,
        project,
        resource,
        tx,
        known: BTreeSet::new(),
    };
    // Read before the first answer, so that a project the caller may not read, or that does
    // not exist, is refused with its status rather than in the stream. A new watch's cursor
    // is read before its objects: a change after it is shown (again) after them.
    let cursor = match resume {
        Some(id) => id,
        None => api.shared.store.last_audit_id().await.map_err(EngineError::from)?,
    };
    let objects = watch
        .resource
        .objects(watch.read(resource.call(&watch.project, None)).await?)?;
    if resource.defined() {
        watch.known = objects.iter().map(|o| name_of(o).to_string()).collect();
    }
    // A resumed watch shows only what changed after its id.
    let first = if resume.is_none() { objects } else { Vec::new() };
    tokio::spawn(watch.run(cursor, first, resume.is_none()));
    let stream = tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), |m: String| {
        Ok::<_, std::convert::Infallible>(m)
    });
    let mut response = axum::body::Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Nginx buffers responses unless told not to; a watch must arrive as it happens.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// A watch shows a project's whole list: refused with the list's filters rather than
/// half-applied.
pub(super) fn unfiltered(filtered: bool) -> Result<(), Problem> {
    if filtered {
        return Err(Problem::invalid(
            "watch=true takes no other filter: it follows the project's whole list".into(),
            json!({}),
        ));
    }
    Ok(())
}

/// Why a watch ended.
enum Ended {
    /// The client went away or did not read its queue.
    Client,
    /// The store or the engine failed; the client reconnects with its last id.
    Failed(String),
}

struct Watch {
    api: Api,
    caller: Principal,
    project: String,
    resource: Resource,
    tx: mpsc::Sender<String>,
    /// The names shown, for a list the definitions make ([`Resource::defined`]).
    known: BTreeSet<String>,
}

impl Watch {
    async fn run(mut self, cursor: i64, first: Vec<Value>, announce: bool) {
        match self.follow(cursor, first, announce).await {
            Ok(never) => match never {},
            Err(Ended::Client) => {}
            Err(Ended::Failed(e)) => {
                tracing::warn!(project = self.project, "a watch ended: {e}");
                // An SSE comment: the client reconnects from its last id.
                let _ = self.tx.try_send(format!(": error: {}\n\n", e.replace('\n', " ")));
            }
        }
    }

    /// Sends the `first` objects and, when `announce`, the cursor after them alone; then
    /// every change after `cursor`, until the client goes.
    async fn follow(
        &mut self,
        mut cursor: i64,
        first: Vec<Value>,
        announce: bool,
    ) -> Result<std::convert::Infallible, Ended> {
        let mut woken = self.api.shared.events.subscribe();
        let store = self.api.shared.store.clone();
        let failed = |e: barge_store::StoreError| Ended::Failed(e.to_string());
        // By value: the first objects are freed once sent, not kept for the watch's life.
        for object in first {
            self.send(message("ADDED", &object, None)).await?;
        }
        if announce {
            self.send(format!("id: {cursor}\n\n")).await?;
        }
        let mut heartbeat = tokio::time::interval(self.api.watch.heartbeat);
        let mut poll = tokio::time::interval(self.api.watch.poll);
        heartbeat.tick().await;
        poll.tick().await;
        loop {
            let settled = loop {
                // Boxed, here and below: an idle watch then holds only the small state of
                // its wait, not the largest future it ever awaits (a store read, an engine
                // call), which is what 200 idle watches would cost otherwise.
                let rows = Box::pin(store.audit_after(cursor, BATCH)).await.map_err(failed)?;
                let ready = settled(cursor, &rows, barge_engine::discover::now_millis());
                for row in &rows[..ready] {
                    Box::pin(self.show(row)).await?;
                    cursor = row.id;
                }
                if ready < rows.len() {
                    break false;
                }
                if rows.len() < BATCH as usize {
                    break true;
                }
            };
            // At a gap, look again soon: it commits, or it is a rollback's and is passed.
            let retry = async {
                if settled {
                    std::future::pending().await
                } else {
                    tokio::time::sleep(Duration::from_millis(SETTLE_MILLIS as u64 / 4)).await;
                }
            };
            tokio::select! {
                woke = woken.recv() => {
                    if let Err(tokio::sync::broadcast::error::RecvError::Closed) = woke {
                        return Err(Ended::Failed("the daemon is stopping".into()));
                    }
                }
                _ = poll.tick() => {}
                () = retry => {}
                _ = heartbeat.tick() => self.send(": heartbeat\n\n".into()).await?,
                () = self.tx.closed() => return Err(Ended::Client),
            }
        }
    }

    /// The events of one audit row, the last carrying its id.
    async fn show(&mut self, row: &AuditEvent) -> Result<(), Ended> {
        if !row.project.is_empty() && row.project != self.project {
            return Ok(());
        }
        let mut events: Vec<(&str, Value)> = Vec::new();
        match self.resource.touched(row) {
            Touched::Nothing => {}
            Touched::One { name, created } => match self.one(&name).await? {
                Some(object) => {
                    let added = created || (self.resource.defined() && self.known.insert(name));
                    events.push((if added { "ADDED" } else { "MODIFIED" }, object));
                }
                None => {
                    self.known.remove(&name);
                    events.push(("DELETED", self.gone(&name)));
                }
            },
            Touched::All => {
                let objects = self.list().await?;
                let now: BTreeSet<String> = objects.iter().map(|o| name_of(o).to_string()).collect();
                for name in self.known.difference(&now) {
                    events.push(("DELETED", self.gone(name)));
                }
                for object in objects {
                    let kind = if self.known.contains(name_of(&object)) {
                        "MODIFIED"
                    } else {
                        "ADDED"
                    };
                    events.push((kind, object));
                }
                self.known = now;
            }
        }
        let last = events.len().saturating_sub(1);
        for (i, (kind, object)) in events.iter().enumerate() {
            self.send(message(kind, object, (i == last).then_some(row.id))).await?;
        }
        Ok(())
    }

    /// What a `DELETED` event carries: the object's name (its last state is not kept).
    fn gone(&self, name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": self.project}})
    }

    async fn list(&self) -> Result<Vec<Value>, Ended> {
        let answer = self
            .read(self.resource.call(&self.project, None))
            .await
            .map_err(|e| Ended::Failed(e.to_string()))?;
        self.resource.objects(answer).map_err(|p| Ended::Failed(p.message))
    }

    /// One object, or none when it is gone.
    async fn one(&self, name: &str) -> Result<Option<Value>, Ended> {
        let answer = match self.read(self.resource.call(&self.project, Some(name))).await {
            Ok(answer) => answer,
            Err(e) if e.class() == Some(ErrorClass::NotFound) => return Ok(None),
            Err(e) => return Err(Ended::Failed(e.to_string())),
        };
        let objects = self.resource.objects(answer).map_err(|p| Ended::Failed(p.message))?;
        Ok(objects.into_iter().find(|o| name_of(o) == name))
    }

    async fn read(&self, call: Call) -> Result<Answer, EngineError> {
        crate::serve::call(&self.api.shared, &self.caller, call).await
    }

    /// Queues a message, or ends the watch when the client has not made room in its queue
    /// within the client timeout.
    async fn send(&self, message: String) -> Result<(), Ended> {
        self.tx
            .send_timeout(message, self.api.client_timeout)
            .await
            .map_err(|e| {
                if let mpsc::error::SendTimeoutError::Timeout(_) = e {
                    tracing::info!(project = self.project, "a watch client is not reading: dropped");
                }
                Ended::Client
            })
    }
}

/// How many of `rows` (ids above `cursor`, in id order) a watch may show now: up to the
/// first gap in the ids that may still be a transaction committing (one whose next row is
/// younger than [`SETTLE_MILLIS`]).
fn settled(cursor: i64, rows: &[AuditEvent], now: i64) -> usize {
    let mut next = cursor + 1;
    for (i, row) in rows.iter().enumerate() {
        if row.id != next && now - row.at < SETTLE_MILLIS {
            return i;
        }
        next = row.id + 1;
    }
    rows.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, at: i64) -> AuditEvent {
        AuditEvent {
            id,
            at,
            project: "shop".into(),
            kind: "promotion.step".into(),
            subject: "Promotion/p".into(),
            actor: "barge".into(),
            stage: "dev".into(),
            freight: "f".into(),
            body: json!({}),
        }
    }

    #[test]
    fn a_watch_waits_at_a_fresh_gap_and_passes_an_old_one() {
        let now = 100_000;
        // 3 and 4 are contiguous with the cursor; 6 follows a gap at 5.
        let rows = [row(3, now), row(4, now), row(6, now)];
        assert_eq!(settled(2, &rows, now), 2);
        // Once the row after the gap is older than the settle time, 5 was rolled back.
        let rows = [row(3, now), row(4, now), row(6, now - SETTLE_MILLIS)];
        assert_eq!(settled(2, &rows, now), 3);
        // A gap right at the cursor counts too.
        assert_eq!(settled(1, &[row(3, now)], now), 0);
    }

    #[test]
    fn a_row_touches_the_objects_it_names() {
        let mut created = row(7, 0);
        created.kind = "promotion.created".into();
        assert_eq!(
            Resource::Promotions.touched(&created),
            Touched::One {
                name: "p".into(),
                created: true
            }
        );
        assert_eq!(
            Resource::Stages.touched(&created),
            Touched::One {
                name: "dev".into(),
                created: false
            }
        );
        let mut reload = row(8, 0);
        reload.kind = "config.reloaded".into();
        reload.subject = "Definitions".into();
        reload.stage = String::new();
        reload.freight = String::new();
        assert_eq!(Resource::Stages.touched(&reload), Touched::All);
        assert_eq!(Resource::Promotions.touched(&reload), Touched::Nothing);
        assert_eq!(Resource::Freight.touched(&reload), Touched::Nothing);
    }
}
