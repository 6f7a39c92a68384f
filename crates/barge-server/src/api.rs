//! The daemon's HTTP API, for the CLI: `POST /api/v1/call` with an [`ops::Call`] as JSON,
//! behind a bearer token; `GET /healthz` without one. Errors are `{"error": "..."}` with the
//! status the call's failure means (400 invalid, 401, 404, 409 conflict, 413 too large, 408
//! too slow, 500, 503 too many connections).
//!
//! The audit log records the token's identity (`token:NAME`) as the actor of every call,
//! whatever `actor` the body names: the token is all the server knows about who calls.
//!
//! The server guards itself against clients that are slow, idle, numerous or greedy: a
//! request's headers (and the next request on a kept-alive connection) must arrive within
//! the client timeout, and its body within the client timeout again; a body is at most
//! [`MAX_BODY`]; at most `max_connections` connections are served at once. One beyond is
//! answered 503 as soon as its request arrives (and closed, silent, at the client timeout);
//! beyond as many again, it is closed at once.

use crate::serve::Shared;
use anyhow::{Context as _, Result, bail};
use axum::Json;
use axum::body::{Body, HttpBody as _};
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use barge_engine::ops;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The largest request body: a call is a few hundred bytes of JSON.
pub const MAX_BODY: usize = 1 << 20;

/// The name the audit log gives the token's holder without `--token-name`.
pub const DEFAULT_TOKEN_NAME: &str = "api-token";

/// What every "no token" error adds.
const HOW_TO_MAKE_A_TOKEN: &str =
    "create one with `openssl rand -hex 32 > barge.token` and pass --token-file barge.token (or set BARGE_TOKEN)";

/// How long a closing connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// The API's bearer token and who its holder is in the audit log.
#[derive(Clone)]
pub struct Token {
    secret: String,
    /// `token:NAME`, recorded as the actor of every call.
    actor: String,
}

impl Token {
    /// The daemon's token, from `file` or BARGE_TOKEN; its holder is `token:NAME`.
    pub fn load(file: Option<&Path>, name: &str) -> Result<Token> {
        let secret = read(file)?.with_context(|| format!("the API needs a token: {HOW_TO_MAKE_A_TOKEN}"))?;
        Ok(Token {
            secret,
            actor: format!("token:{name}"),
        })
    }
}

/// The token from `file` when given, else from BARGE_TOKEN; `None` when neither is set. An
/// empty token is an error: it must never mean "no authentication".
pub fn read(file: Option<&Path>) -> Result<Option<String>> {
    let (token, from) = match file {
        Some(f) => (
            std::fs::read_to_string(f).with_context(|| format!("cannot read the token file {}", f.display()))?,
            format!("the token file {}", f.display()),
        ),
        None => match std::env::var("BARGE_TOKEN") {
            Ok(t) => (t, "BARGE_TOKEN".to_string()),
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim();
    if token.is_empty() {
        bail!("{from} is empty: {HOW_TO_MAKE_A_TOKEN}");
    }
    // It travels in an Authorization header: one word of visible ASCII.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("{from} must hold one word of visible ASCII characters (no spaces or line breaks inside)");
    }
    Ok(Some(token.to_string()))
}

/// `--token-name`: letters, digits, `.`, `_` and `-`, as it appears in the audit log.
pub fn parse_token_name(name: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(name.to_string())
    } else {
        Err("1 to 64 letters, digits, '.', '_' or '-'".into())
    }
}

/// How long the API waits for clients and how many it serves at once.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// For a request's headers (also an idle kept-alive connection's next request), and
    /// again for its body.
    pub client_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// 10 s and 256 connections, or BARGE_API_CLIENT_TIMEOUT (a Go duration) and
    /// BARGE_API_MAX_CONNECTIONS.
    pub fn from_env() -> Result<Limits> {
        let client_timeout = match std::env::var("BARGE_API_CLIENT_TIMEOUT") {
            Ok(d) => barge_core::duration::parse_go_duration(&d)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| format!("BARGE_API_CLIENT_TIMEOUT: {d:?} is not a positive duration (e.g. 10s)"))?,
            Err(_) => Duration::from_secs(10),
        };
        let max_connections = match std::env::var("BARGE_API_MAX_CONNECTIONS") {
            Ok(n) => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("BARGE_API_MAX_CONNECTIONS: {n:?} is not a positive number"))?,
            Err(_) => 256,
        };
        Ok(Limits {
            client_timeout,
            max_connections,
        })
    }
}

#[derive(Clone)]
struct Api {
    shared: Arc<Shared>,
    token: Arc<Token>,
    client_timeout: Duration,
}

fn router(shared: Arc<Shared>, token: Token, limits: Limits) -> axum::Router {
    let shared_for_hooks = shared.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/call", post(call))
        .with_state(Api {
            shared,
            token: Arc::new(token),
            client_timeout: limits.client_timeout,
        })
        .merge(crate::webhook::routes(shared_for_hooks, limits.client_timeout))
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, token: Token, limits: Limits) {
    let app = router(shared, token, limits);
    let serving = Arc::new(Semaphore::new(limits.max_connections));
    // Closing politely (lingering, or answering 503 first) takes a moment too: as many
    // connections as are served may be closing at once; beyond that they are closed at once.
    let closing = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // That client gave up already.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close rather than
                // spin (as hyper 0.14's server did).
                tracing::error!("the API cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Ok(slot) = serving.clone().try_acquire_owned() {
            let (app, closing) = (app.clone(), closing.clone());
            tokio::spawn(async move {
                let open = http1(stream, TowerToHyperService::new(app), limits.client_timeout, true).await;
                // Served: the slot is free before the client sees the connection close.
                drop(slot);
                if let (Some(stream), Ok(_closing)) = (open, closing.try_acquire_owned()) {
                    linger(stream).await;
                }
            });
        } else if let Ok(closing) = closing.clone().try_acquire_owned() {
            // The request is read before the answer: an HTTP client takes an answer that
            // comes before its request for a broken connection.
            let busy = hyper::service::service_fn(|_| {
                let mut busy = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many connections to barge serve's API; try again shortly".into(),
                );
                busy.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
                std::future::ready(Ok::<_, Infallible>(busy))
            });
            tokio::spawn(async move {
                if let Some(stream) = http1(stream, busy, limits.client_timeout, false).await {
                    linger(stream).await;
                }
                drop(closing);
            });
        }
    }
}

/// Serves HTTP/1.1 on a connection with the header timeout until the client or the server
/// is done with it; returns it for closing unless it failed (a timeout, a protocol error).
async fn http1<S>(stream: TcpStream, service: S, client_timeout: Duration, keep_alive: bool) -> Option<TcpStream>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible> + Unpin,
    S::Future: Unpin,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(client_timeout)
        .keep_alive(keep_alive);
    // Without shutdown, so that the caller closes it, lingering.
    match http
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .without_shutdown()
        .await
    {
        Ok(parts) => Some(parts.io.into_inner()),
        Err(e) => {
            tracing::debug!("API connection closed: {e}");
            None
        }
    }
}

/// Closes a connection without destroying the response just written: a client still
/// sending (a body too large, a request the server refused unread) would otherwise get a
/// reset, which can discard the response before the client reads it. So stop writing, read
/// and drop what still comes for a moment, then close (RFC 9112, section 9.6).
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER, async { while let Ok(1..) = stream.read(&mut sink).await {} }).await;
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({"error": message}))).into_response()
}

/// The request's body, at most `limit` bytes and within the client timeout.
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    client_timeout: Duration,
) -> Result<axum::body::Bytes, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    // A declared length is refused before any of it is read.
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    match tokio::time::timeout(client_timeout, http_body_util::Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        )),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {client_timeout:?}"),
        )),
    }
}

async fn call(State(api): State<Api>, headers: HeaderMap, body: Body) -> Response {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(presented.as_bytes(), api.token.secret.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (set BARGE_TOKEN or --token-file to the server's token)".into(),
        );
    }
    let body = match read_body(body, MAX_BODY, api.client_timeout).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let mut c: ops::Call = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a barge call: {e}")),
    };
    if let Some(actor) = c.actor_mut() {
        actor.clone_from(&api.token.actor);
    }
    match crate::serve::call(&api.shared, c).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let status = e
                .downcast_ref::<ops::CallError>()
                .and_then(|c| StatusCode::from_u16(c.status).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            error(status, format!("{e:#}"))
        }
    }
}
