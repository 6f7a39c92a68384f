//! Inbound webhooks: `POST /webhook/<provider>/<hash>` on the API's listener, without the
//! bearer token (the provider's signature or secret is the authentication, as in Kargo).
//!
//! A delivery is matched to a receiver by its whole path (404 otherwise, never saying which
//! part was wrong), rate-limited per receiver (429), read within the client timeout and
//! [`MAX_BODY`] (413), authenticated and parsed by `barge_core::webhook` (401 with an audit
//! event; 400), and answered 202 once the Warehouses subscribed to what was pushed are in a
//! burst window: each is put on the daemon's refresh queue when no delivery has named it for
//! the window's quiet period, or its longest wait after it opened ([`BurstWindow`]), so a lone
//! push is discovered at once and a burst of pushes costs one discovery per Warehouse. A
//! delivery id seen before (kept in a bounded in-memory list, lost on restart) is answered 200
//! and refreshes nothing.

use crate::serve::Shared;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use barge_core::webhook::{self, Refusal, Secrets};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest delivery, Kargo's limit (`getMaxRequestBodyBytes`).
pub const MAX_BODY: usize = 2 << 20;

/// Delivery ids remembered for replay protection.
const REMEMBERED_DELIVERIES: usize = 4096;

/// Per receiver: deliveries at once (a registry reporting a burst of pushed tags) and per
/// second after that.
const BURST: f64 = 100.0;
const PER_SECOND: f64 = 10.0;

/// How deliveries naming one Warehouse are gathered into one discovery (`barge serve
/// --webhook-quiet-period`, `--webhook-max-wait`).
#[derive(Clone, Copy, Debug)]
pub struct BurstWindow {
    /// A Warehouse's burst window closes when no delivery has named it for this long: a
    /// registry reports tags pushed at once as deliveries milliseconds apart, which should
    /// cost one discovery, while a lone push should not wait much longer than a round trip.
    pub quiet: Duration,
    /// ... or this long after it opened, whichever comes first: deliveries that keep coming
    /// less than `quiet` apart still get a discovery this often.
    pub max_wait: Duration,
}

impl Default for BurstWindow {
    fn default() -> Self {
        BurstWindow {
            quiet: Duration::from_millis(300),
            max_wait: Duration::from_secs(2),
        }
    }
}

/// A Warehouse's open burst window.
struct Window {
    opened: Instant,
    /// When it closes unless another delivery names the Warehouse before then.
    closes: Instant,
}

impl Window {
    fn open(now: Instant, burst: BurstWindow) -> Window {
        Window {
            opened: now,
            closes: now + burst.quiet.min(burst.max_wait),
        }
    }

    /// A further delivery: the window stays open for the quiet period more, up to the
    /// longest wait.
    fn extend(&mut self, now: Instant, burst: BurstWindow) {
        self.closes = (now + burst.quiet).min(self.opened + burst.max_wait).max(self.closes);
    }
}

/// What the webhook handler keeps between deliveries.
pub struct Receiving {
    secrets: Secrets,
    burst: BurstWindow,
    /// Warehouses (project, name) in a burst window.
    gathering: Mutex<HashMap<(String, String), Window>>,
    seen: Mutex<Seen>,
    /// Per receiver path: tokens left and when they were counted.
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// The delivery ids of the last [`REMEMBERED_DELIVERIES`] deliveries, oldest first.
#[derive(Default)]
struct Seen {
    order: VecDeque<(String, String)>,
    ids: HashSet<(String, String)>,
}

impl Seen {
    /// Records a receiver's delivery id; false when it was seen already.
    fn first_time(&mut self, path: &str, id: &str) -> bool {
        let key = (path.to_string(), id.to_string());
        if !self.ids.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED_DELIVERIES
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

impl Receiving {
    /// The secrets are barge's secret store, read when the daemon started.
    pub fn new(secrets: Secrets, burst: BurstWindow) -> Receiving {
        Receiving {
            secrets,
            burst,
            gathering: Mutex::new(HashMap::new()),
            seen: Mutex::new(Seen::default()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Gives back the token of an authenticated delivery that refreshes nothing: a registry
    /// reports every pull and blob of its own traffic, and that chatter must not use up the
    /// budget of the deliveries that name a pushed tag (they would be answered 429 and arrive
    /// late, after the sender's backoff). Unauthenticated and refreshing deliveries keep
    /// theirs.
    fn refund(&self, path: &str) {
        if let Ok(mut buckets) = self.buckets.lock()
            && let Some((tokens, _)) = buckets.get_mut(path)
        {
            *tokens = (*tokens + 1.0).min(BURST);
        }
    }

    /// Takes a token from the receiver's bucket; false when it is empty.
    fn admit(&self, path: &str) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        let (tokens, at) = buckets.entry(path.to_string()).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * PER_SECOND).min(BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
struct Hooks {
    shared: Arc<Shared>,
    client_timeout: Duration,
}

/// The webhook route, for the API's router.
pub fn routes(shared: Arc<Shared>, client_timeout: Duration) -> axum::Router {
    axum::Router::new()
        .route("/webhook/{provider}/{hash}", axum::routing::post(deliver))
        .with_state(Hooks { shared, client_timeout })
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

async fn deliver(
    State(hooks): State<Hooks>,
    Path((provider, hash)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let shared = &hooks.shared;
    let catalog = shared.catalog();
    let path = format!("{}/{provider}/{hash}", webhook::PATH_PREFIX);
    let (receivers, _) = webhook::receivers(&catalog, &shared.webhooks.secrets);
    let Some(receiver) = receivers.into_iter().find(|r| r.path == path) else {
        return answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no such webhook receiver"}),
        );
    };
    if !shared.webhooks.admit(&receiver.path) {
        let mut r = answer(
            StatusCode::TOO_MANY_REQUESTS,
            serde_json::json!({"error": "too many deliveries to this receiver; try again shortly"}),
        );
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return r;
    }
    let body = match crate::api::read_body(body, MAX_BODY, hooks.client_timeout).await {
        Ok(b) => b,
        Err(refused) => return crate::api::error(refused.status, refused.message),
    };
    if receiver.provider == webhook::Provider::Generic {
        return generic(shared, &catalog, &receiver, &headers, query.as_deref(), &body);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let delivery = match webhook::receive(&receiver, &header, &body) {
        Ok(d) => d,
        Err(Refusal::Unauthorized) => {
            refused(shared, &receiver).await;
            return answer(StatusCode::UNAUTHORIZED, serde_json::json!({"error": "unauthorized"}));
        }
        Err(e @ Refusal::BadRequest(_)) => {
            return answer(StatusCode::BAD_REQUEST, serde_json::json!({"error": e.to_string()}));
        }
    };
    if let Some(id) = &delivery.id {
        let first = shared
            .webhooks
            .seen
            .lock()
            .map(|mut s| s.first_time(&receiver.path, id))
            .unwrap_or(true);
        if !first {
            shared.webhooks.refund(&receiver.path);
            return answer(StatusCode::OK, serde_json::json!({"msg": "delivery already received"}));
        }
    }
    if let Some(why) = &delivery.ignored {
        shared.webhooks.refund(&receiver.path);
        return answer(StatusCode::OK, serde_json::json!({"msg": why}));
    }
    if let Some(pr) = &delivery.closed_pull_request {
        // A git-wait-for-pr step of this process waiting on the PR checks it again now.
        let woken = shared.engine.wakeups.wake(&webhook::pull_request_key(pr));
        return answer(
            StatusCode::OK,
            serde_json::json!({
                "msg": "pull request closed: promotions waiting for it check it again now",
                "woken": woken,
            }),
        );
    }
    let warehouses = webhook::warehouses(&catalog, &receiver.project, &delivery);
    for key in &warehouses {
        gather(shared, key.clone());
    }
    answer(
        StatusCode::ACCEPTED,
        serde_json::json!({
            "msg": format!("refreshing {} warehouse(s)", warehouses.len()),
            "warehouses": warehouses
                .iter()
                .map(|(project, name)| serde_json::json!({"project": project, "name": name}))
                .collect::<Vec<_>>(),
        }),
    )
}

/// A generic receiver's delivery (Kargo's generic.go): its URL alone authenticated it; each
/// action whose `whenExpression` holds queues the Warehouses it selects. The answer lists
/// each action's result in Kargo's shape: 500 when an expression failed (as Kargo answers),
/// else 202 when a Warehouse was queued, else 200.
fn generic(
    shared: &Arc<Shared>,
    catalog: &barge_core::Catalog,
    receiver: &webhook::Receiver,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Response {
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in headers {
        // A value that is not text cannot be compared by an expression; it is left out.
        if let Ok(v) = value.to_str() {
            by_name
                .entry(name.as_str().to_string())
                .or_default()
                .push(v.to_string());
        }
    }
    let query = match serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or_default()) {
        Ok(q) => q,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("invalid query: {e}")}),
            );
        }
    };
    let request = match webhook::generic_request(by_name, query, body) {
        Ok(r) => r,
        Err(e) => return answer(StatusCode::BAD_REQUEST, serde_json::json!({"error": e.to_string()})),
    };
    let results = webhook::generic_actions(receiver, catalog, &request);
    let mut queued = std::collections::BTreeSet::new();
    for target in results.iter().flat_map(|r| &r.selected_targets) {
        if queued.insert((target.namespace.clone(), target.name.clone())) {
            gather(shared, (target.namespace.clone(), target.name.clone()));
        }
    }
    let status = if results.iter().any(webhook::ActionResult::is_error) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if queued.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    answer(status, serde_json::json!({"results": results}))
}

/// Opens a Warehouse's burst window, or extends the open one: the deliveries of a burst join
/// the first one's, and one refresh is queued as the window closes.
fn gather(shared: &Arc<Shared>, key: (String, String)) {
    let now = Instant::now();
    let Ok(mut gathering) = shared.webhooks.gathering.lock() else {
        shared.request_refresh(&key.0, &key.1);
        return;
    };
    let burst = shared.webhooks.burst;
    if let Some(window) = gathering.get_mut(&key) {
        window.extend(now, burst);
        return;
    }
    gathering.insert(key.clone(), Window::open(now, burst));
    drop(gathering);
    let shared = shared.clone();
    tokio::spawn(async move {
        // Sleeps until the window's latest closing time; a delivery meanwhile moved it later.
        loop {
            let closes = match shared.webhooks.gathering.lock() {
                Ok(mut gathering) => match gathering.get(&key).map(|w| w.closes) {
                    Some(at) if at > Instant::now() => at,
                    _ => {
                        gathering.remove(&key);
                        break;
                    }
                },
                Err(_) => break,
            };
            tokio::time::sleep_until(closes.into()).await;
        }
        shared.request_refresh(&key.0, &key.1);
    });
}

/// Records a delivery that failed authentication (never what it carried).
async fn refused(shared: &Shared, receiver: &webhook::Receiver) {
    let refused = barge_engine::events::Event::WebhookRefused {
        project: receiver.project.clone(),
        receiver: receiver.name.clone(),
        actor: format!("webhook:{}", receiver.provider),
        path: receiver.path.clone(),
    };
    // The sink logs a failure to audit; the delivery is refused all the same.
    let _ = shared.events.emit(refused).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_id_is_acted_on_once_and_the_list_is_bounded() {
        let mut seen = Seen::default();
        assert!(seen.first_time("/webhook/github/a", "1"));
        assert!(!seen.first_time("/webhook/github/a", "1"));
        // Ids are per receiver.
        assert!(seen.first_time("/webhook/github/b", "1"));
        for i in 0..REMEMBERED_DELIVERIES {
            seen.first_time("/webhook/github/a", &format!("n{i}"));
        }
        assert_eq!(seen.ids.len(), REMEMBERED_DELIVERIES);
        // The oldest was forgotten.
        assert!(seen.first_time("/webhook/github/a", "1"));
    }

    #[test]
    fn a_burst_window_closes_after_a_quiet_period_or_at_its_cap() {
        let burst = BurstWindow::default();
        let (quiet, max_wait) = (burst.quiet, burst.max_wait);
        let opened = Instant::now();
        let mut window = Window::open(opened, burst);
        assert_eq!(
            window.closes,
            opened + quiet,
            "a lone delivery waits only the quiet period"
        );
        window.extend(opened + quiet / 2, burst);
        assert_eq!(
            window.closes,
            opened + quiet / 2 + quiet,
            "a delivery restarts the quiet period"
        );
        // Deliveries that keep coming never hold it open past the cap.
        let mut at = opened;
        while at < opened + max_wait * 2 {
            at += quiet / 2;
            window.extend(at, burst);
        }
        assert_eq!(window.closes, opened + max_wait);
        // A quiet period longer than the cap is cut to it, from the first delivery on.
        let capped = BurstWindow {
            quiet: max_wait * 2,
            max_wait,
        };
        assert_eq!(Window::open(opened, capped).closes, opened + max_wait);
    }

    #[test]
    fn a_receiver_gets_a_burst_then_is_limited() {
        let r = Receiving::new(Secrets::new(), BurstWindow::default());
        let admitted = (0..(BURST as usize + 10))
            .filter(|_| r.admit("/webhook/quay/x"))
            .count();
        assert!((BURST as usize..BURST as usize + 2).contains(&admitted), "{admitted}");
        assert!(r.admit("/webhook/quay/y"), "another receiver has its own bucket");
    }
}
