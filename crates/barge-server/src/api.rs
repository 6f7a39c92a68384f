//! The daemon's HTTP server: the REST API under `/api/v1` ([`crate::rest`], which barge's CLI
//! uses with `--server` as scripts do), the web UI, webhook receivers, `/metrics`, and
//! `GET /healthz` and `/readyz` without a token. This module holds what every API request
//! goes through: the bearer token's authentication, the body limit and the timeouts. Errors
//! are `{"code", "message", "details"}` with the status the failure means (400 invalid, 401 no
//! valid token, 403 forbidden, 404, 409 conflict, 413 too large, 408 too slow, 500, 503 too
//! many connections).
//!
//! A bearer token is the bootstrap admin token (`--token-file`, BARGE_ADMIN_TOKEN or
//! BARGE_TOKEN), one `barge token create` stored, or, with `--oidc-issuer`, a JWT of that
//! issuer (`oidc:SUBJECT` in the audit log; a valid one no rule maps is refused 403); with `--anonymous-role viewer`, a request
//! without one reads. The engine authorizes each call for that principal and records it as
//! the actor (`token:NAME`), whatever `actor` the body names: the token is all the server
//! knows about who calls. A request refused for want of a valid token (401) is audited
//! here, without the token; one refused for its role (403) by the engine.
//!
//! The server guards itself against clients that are slow, idle, numerous or greedy: a
//! request's headers (and the next request on a kept-alive connection) must arrive within
//! the client timeout, and its body within the client timeout again; a response must make
//! progress: a client that reads none of it for the write timeout (a watch it stopped
//! reading, a large answer it does not take) loses its connection; a body is at most
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
use axum::routing::get;
use barge_core::ErrorClass;
use barge_core::authz::{Principal, Role};
use barge_engine::oidc::OidcError;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The largest request body: a REST body is a few hundred bytes of JSON.
pub const MAX_BODY: usize = 1 << 20;

/// The name the audit log gives the bootstrap admin token's holder without `--token-name`.
pub const DEFAULT_TOKEN_NAME: &str = "api-token";

/// What every "no token" error adds.
const HOW_TO_MAKE_A_TOKEN: &str =
    "create one with `openssl rand -hex 32 > barge.token` and pass --token-file barge.token (or set BARGE_TOKEN)";

/// How long a closing connection keeps reading what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// Who may call the API: the bootstrap admin token, the tokens in the store, and, when
/// allowed, requests without a token.
#[derive(Clone)]
pub struct Access {
    /// The bootstrap admin token.
    secret: String,
    admin: Principal,
    anonymous: Option<Principal>,
    /// `--oidc-issuer`: JWTs its keys signed (barge_engine::oidc).
    oidc: Option<Arc<barge_engine::oidc::Oidc>>,
}

impl Access {
    /// The bootstrap admin token, from `file`, else BARGE_ADMIN_TOKEN, else BARGE_TOKEN; its
    /// holder is `token:NAME`. With `anonymous`, requests without a token act with that role
    /// (at most viewer).
    pub fn load(file: Option<&Path>, name: &str, anonymous: Option<Role>) -> Result<Access> {
        let secret = read(file, &["BARGE_ADMIN_TOKEN", "BARGE_TOKEN"])?
            .with_context(|| format!("the API needs a token: {HOW_TO_MAKE_A_TOKEN}"))?;
        Ok(Access {
            secret,
            admin: Principal::token(name, Role::Admin, None, None)?,
            anonymous: anonymous.map(Principal::anonymous).transpose()?,
            oidc: None,
        })
    }

    /// Also accepts the JWTs `oidc` verifies, as the principal its rules give them.
    pub fn with_oidc(self, oidc: barge_engine::oidc::Oidc) -> Access {
        Access {
            oidc: Some(Arc::new(oidc)),
            ..self
        }
    }
}

/// The token from `file` when given, else from the first of the environment variables
/// `vars` that is set; `None` when none is. An empty token is an error: it must never mean
/// "no authentication".
pub fn read(file: Option<&Path>, vars: &[&str]) -> Result<Option<String>> {
    let (token, from) = match file {
        Some(f) => (
            std::fs::read_to_string(f).with_context(|| format!("cannot read the token file {}", f.display()))?,
            format!("the token file {}", f.display()),
        ),
        None => match vars.iter().find_map(|v| Some((std::env::var(v).ok()?, v.to_string()))) {
            Some(found) => found,
            None => return Ok(None),
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
    if barge_core::authz::valid_token_name(name) {
        Ok(name.to_string())
    } else {
        Err("1 to 64 letters, digits, '.', '_' or '-'".into())
    }
}

/// `--anonymous-role`: viewer, and nothing more.
pub fn parse_anonymous_role(role: &str) -> Result<Role, String> {
    let role = Role::parse(role).ok_or_else(|| format!("{role:?} is not a role (viewer)"))?;
    Principal::anonymous(role).map_err(|e| e.to_string())?;
    Ok(role)
}

/// How long the API waits for clients and how many it serves at once.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// For a request's headers (also an idle kept-alive connection's next request), and
    /// again for its body.
    pub client_timeout: Duration,
    /// How long a response may wait for the client to read any of it: a write that stays
    /// blocked this long (the socket full of what the client does not read) closes the
    /// connection.
    pub write_timeout: Duration,
    pub max_connections: usize,
    /// The watches' heartbeat and store poll (`?watch=true`).
    pub watch: crate::rest::WatchTiming,
}

impl Limits {
    /// 10 s, 30 s to write and 256 connections, or BARGE_API_CLIENT_TIMEOUT,
    /// BARGE_API_WRITE_TIMEOUT (Go durations) and BARGE_API_MAX_CONNECTIONS; watches heartbeat every 15 s and poll the store every 5 s,
    /// or BARGE_WATCH_HEARTBEAT and BARGE_WATCH_POLL.
    pub fn from_env() -> Result<Limits> {
        let client_timeout = duration_var("BARGE_API_CLIENT_TIMEOUT", Duration::from_secs(10))?;
        let write_timeout = duration_var("BARGE_API_WRITE_TIMEOUT", Duration::from_secs(30))?;
        let watch = crate::rest::WatchTiming {
            heartbeat: duration_var("BARGE_WATCH_HEARTBEAT", Duration::from_secs(15))?,
            poll: duration_var("BARGE_WATCH_POLL", Duration::from_secs(5))?,
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
            write_timeout,
            max_connections,
            watch,
        })
    }
}

/// A positive Go duration from the variable `name`, or `default` when it is not set.
fn duration_var(name: &str, default: Duration) -> Result<Duration> {
    match std::env::var(name) {
        Ok(d) => barge_core::duration::parse_go_duration(&d)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| format!("{name}: {d:?} is not a positive duration (e.g. 10s)")),
        Err(_) => Ok(default),
    }
}

#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) shared: Arc<Shared>,
    access: Arc<Access>,
    pub(crate) client_timeout: Duration,
    pub(crate) watch: crate::rest::WatchTiming,
    /// The web UI's sign-in sessions (a GET of the REST API may present one instead of a
    /// bearer token: the UI's live updates watch through it).
    pub(crate) sessions: Arc<crate::ui::Sessions>,
    /// The Stage list's JSON as last served (`GET …/stages`).
    pub(crate) stage_lists: Arc<crate::rest::KeptStageLists>,
}

impl Api {
    /// Who a request without a token is, when the server lets such requests read.
    pub(crate) fn anonymous(&self) -> Option<&Principal> {
        self.access.anonymous.as_ref()
    }

    /// The OIDC issuer's verifier, with `--oidc-issuer`.
    pub(crate) fn oidc(&self) -> Option<&barge_engine::oidc::Oidc> {
        self.access.oidc.as_deref()
    }
}

fn router(shared: Arc<Shared>, access: Access, limits: Limits) -> axum::Router {
    let shared_for_hooks = shared.clone();
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::scrape))
        .merge(crate::rest::routes())
        .merge(crate::ui::routes())
        .with_state(Api {
            shared,
            access: Arc::new(access),
            client_timeout: limits.client_timeout,
            watch: limits.watch,
            sessions: Arc::default(),
            stage_lists: Arc::default(),
        })
        .merge(crate::metrics::count_deliveries(
            crate::webhook::routes(shared_for_hooks.clone(), limits.client_timeout),
            shared_for_hooks.metrics.clone(),
        ))
}

/// Serves the API on `listener` until the process ends.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, access: Access, limits: Limits) {
    let app = router(shared, access, limits);
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
                let open = http1(stream, TowerToHyperService::new(app), limits, true).await;
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
                let mut busy = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorClass::Transient.as_str(),
                    "too many connections to barge serve's API; try again shortly".into(),
                );
                busy.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
                std::future::ready(Ok::<_, Infallible>(busy))
            });
            tokio::spawn(async move {
                if let Some(stream) = http1(stream, busy, limits, false).await {
                    linger(stream).await;
                }
                drop(closing);
            });
        }
    }
}

/// Serves HTTP/1.1 on a connection with the header and write timeouts until the client or
/// the server is done with it; returns it for closing unless it failed (a timeout, a
/// protocol error).
async fn http1<S>(stream: TcpStream, service: S, limits: Limits, keep_alive: bool) -> Option<TcpStream>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible> + Unpin,
    S::Future: Unpin,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.client_timeout)
        .keep_alive(keep_alive);
    // Without shutdown, so that the caller closes it, lingering.
    match http
        .serve_connection(
            hyper_util::rt::TokioIo::new(WriteProgress::new(stream, limits.write_timeout)),
            service,
        )
        .without_shutdown()
        .await
    {
        Ok(parts) => Some(parts.io.into_inner().io),
        Err(e) => {
            tracing::debug!("API connection closed: {e}");
            None
        }
    }
}

/// A connection whose writes must make progress. hyper has no write timeout (only
/// `header_read_timeout`), and a response it cannot write waits for the socket forever: a
/// client that stops reading (a watch's stream, a large answer) would hold its connection,
/// and a slot of `max_connections`, for good. So a write or flush that stays blocked for
/// `timeout` fails with `TimedOut`, which ends the connection; any write that goes through
/// (a watch's heartbeat included) starts the wait anew.
struct WriteProgress<T> {
    io: T,
    timeout: Duration,
    /// Since when the socket has refused every write: set at the first blocked one.
    blocked: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteProgress<T> {
    fn new(io: T, timeout: Duration) -> WriteProgress<T> {
        WriteProgress {
            io,
            timeout,
            blocked: None,
        }
    }

    /// `polled` unless the socket has refused writes for the timeout.
    fn progress<R>(&mut self, cx: &mut Context<'_>, polled: Poll<std::io::Result<R>>) -> Poll<std::io::Result<R>> {
        if polled.is_ready() {
            self.blocked = None;
            return polled;
        }
        let timeout = self.timeout;
        let blocked = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match blocked.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing of the response for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteProgress<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteProgress<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.progress(cx, polled)
    }
}

/// Closes a connection without destroying the response just written: a client still
/// sending (a body too large, a request the server refused unread) would otherwise get a
/// reset, which can discard the response before the client reads it. So stop writing, read
/// and drop what still comes for a moment, then close (RFC 9112, section 9.6).
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    // On the heap, allocated only now: an array here would be part of every connection's
    // task from its start (the task awaits this future), 16 KiB per open connection.
    let mut sink = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(LINGER, async { while let Ok(1..) = stream.read(&mut sink).await {} }).await;
}

/// Compares in time independent of where the strings differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error of the routes outside the REST API (`/metrics`, webhook receivers):
/// `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({"error": message}))).into_response()
}

/// An error in the REST API's one shape, `{"code", "message", "details"}`, for an answer
/// given before any route runs (too many connections).
fn problem(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({"code": code, "message": message, "details": {}})),
    )
        .into_response()
}

/// Why a request is refused before any call runs (its token, its body); the REST API answers
/// it as `{"code", "message", "details"}`.
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// The engine's error class when it has one (`auth`), else what went wrong with the
    /// request itself (`too-large`, `timeout`).
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Refusal {
    fn of_class(class: ErrorClass, message: String) -> Refusal {
        Refusal {
            status: status_of(Some(class)),
            code: class.as_str(),
            message,
        }
    }
}

/// The request's body, at most `limit` bytes and within the client timeout.
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    client_timeout: Duration,
) -> Result<axum::body::Bytes, Refusal> {
    let too_large = || Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "too-large",
        message: format!("the request body is larger than {limit} bytes"),
    };
    // A declared length is refused before any of it is read.
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    match tokio::time::timeout(client_timeout, http_body_util::Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Refusal::of_class(
            ErrorClass::Invalid,
            format!("cannot read the request body: {e}"),
        )),
        Err(_) => Err(Refusal {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "timeout",
            message: format!("the request body did not arrive within {client_timeout:?}"),
        }),
    }
}

/// The principal a request's bearer token stands for, or the 401 (audited) that says why
/// there is none.
pub(crate) async fn authenticate(api: &Api, headers: &HeaderMap) -> Result<Principal, Refusal> {
    let presented = match headers.get(axum::http::header::AUTHORIZATION) {
        None => match &api.access.anonymous {
            Some(anonymous) => return Ok(anonymous.clone()),
            None => None,
        },
        Some(v) => v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim),
    };
    let refused = match presented {
        None | Some("") => ("no bearer token".to_string(), None),
        Some(token) if same(token.as_bytes(), api.access.secret.as_bytes()) => return Ok(api.access.admin.clone()),
        // Every token barge issues starts with its prefix: any other is the issuer's JWT.
        Some(token)
            if let Some(oidc) = &api.access.oidc
                && !token.starts_with(barge_engine::tokens::PREFIX) =>
        {
            match oidc.authenticate(token).await {
                Ok(principal) => return Ok(principal),
                Err(OidcError::Invalid(why)) => (format!("the OIDC token is not valid: {why}"), None),
                Err(OidcError::NoRule(subject)) => return Err(refuse_unmapped(api, subject).await),
                Err(e @ OidcError::Unavailable(_)) => {
                    tracing::warn!("cannot check an OIDC token: {e}");
                    return Err(Refusal::of_class(e.class(), e.to_string()));
                }
            }
        }
        Some(token) => match barge_engine::tokens::authenticate(&api.shared.store, token).await {
            Ok(Ok(principal)) => return Ok(principal),
            Ok(Err(why)) => {
                let name = match &why {
                    barge_engine::tokens::Unauthenticated::Revoked(name) => Some(name.clone()),
                    barge_engine::tokens::Unauthenticated::Unknown => None,
                };
                (why.to_string(), name)
            }
            Err(e) => {
                return Err(Refusal {
                    status: status_of(e.class()),
                    code: e.class().map_or("internal", ErrorClass::as_str),
                    message: format!("cannot check the bearer token: {e}"),
                });
            }
        },
    };
    let (reason, token) = refused;
    let body = serde_json::json!({"status": 401, "reason": reason, "token": token});
    let denied = barge_engine::events::Event::AccessDenied {
        project: String::new(),
        stage: String::new(),
        subject: "Call/unauthenticated".into(),
        actor: "anonymous".into(),
        body,
    };
    // The sink logs a failure to audit; the call is refused all the same.
    let _ = api.shared.events.emit(denied).await;
    Err(Refusal::of_class(
        ErrorClass::Auth,
        format!("{reason} (set BARGE_TOKEN or --token-file to a token of this server)"),
    ))
}

/// The 403 (audited, as the subject) for a valid OIDC token that no rule gives a role.
async fn refuse_unmapped(api: &Api, subject: String) -> Refusal {
    let actor = format!("oidc:{subject}");
    let e = OidcError::NoRule(subject);
    let denied = barge_engine::events::Event::AccessDenied {
        project: String::new(),
        stage: String::new(),
        subject: "Call/unauthorized".into(),
        actor,
        body: serde_json::json!({"status": 403, "reason": e.to_string()}),
    };
    // The sink logs a failure to audit; the call is refused all the same.
    let _ = api.shared.events.emit(denied).await;
    Refusal::of_class(e.class(), e.to_string())
}

/// How long `GET /readyz` waits for the store: well within a probe's timeout (the chart's is
/// 5 s), so a store that hangs is reported as not ready rather than as a probe timing out.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`, without a token like /healthz: 200 while the store answers a trivial query
/// within [`READY_TIMEOUT`], else 503, so that a replica which lost its database leaves a
/// Service's endpoints instead of being restarted. The reason names neither the database nor
/// the error (which may carry its address); the log has the error.
async fn readyz(State(api): State<Api>) -> Response {
    let reason = match tokio::time::timeout(READY_TIMEOUT, api.shared.store.ping()).await {
        Ok(Ok(())) => return "ok".into_response(),
        Ok(Err(e)) => {
            tracing::warn!("not ready: the store does not answer: {e}");
            "not ready: the store does not answer"
        }
        Err(_) => "not ready: the store did not answer within 2 s",
    };
    (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
}

/// The HTTP status of an engine error's class: the one place the classes meet HTTP. A
/// database that cannot be reached is the server's trouble (503, try again), not the caller's.
/// No valid token is 401 (a token might be allowed); a known caller without the right is 403.
pub fn status_of(class: Option<ErrorClass>) -> StatusCode {
    match class {
        Some(ErrorClass::Invalid) => StatusCode::BAD_REQUEST,
        Some(ErrorClass::Auth) => StatusCode::UNAUTHORIZED,
        Some(ErrorClass::Forbidden) => StatusCode::FORBIDDEN,
        Some(ErrorClass::NotFound) => StatusCode::NOT_FOUND,
        Some(ErrorClass::Conflict | ErrorClass::MergeConflict) => StatusCode::CONFLICT,
        Some(ErrorClass::Transient | ErrorClass::RateLimited) => StatusCode::SERVICE_UNAVAILABLE,
        None => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
