//! The web UI `barge serve` serves at `/` (issue #17): HTML rendered on the server from the
//! engine's typed answers (the same [`barge_engine::ops`] calls the CLI and the APIs make,
//! authorized the same way for the signed-in token), one small stylesheet and one small
//! script embedded in the binary from `ui-assets/`. Every value is escaped by `maud`.
//!
//! Pages: [`pages`]; the confirmations and POSTs of the actions: [`actions`]; sign-in
//! sessions and CSRF: [`session`]; OIDC sign-in: [`oidc`]; the pipeline graph's layout:
//! [`layout`].

mod actions;
mod layout;
mod oidc;
mod pages;
mod session;

use crate::api::{self, Api};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use barge_core::authz::{self, Action, Principal};
use barge_engine::{Answer, EngineError, ops::Call};
use maud::{DOCTYPE, Markup, html};
pub(crate) use session::Sessions;

/// The largest form the UI takes: a pasted token or a CSRF token and a few names.
const MAX_FORM: usize = 16 * 1024;

const CSS: &str = include_str!("../../ui-assets/app.css");
const JS: &str = include_str!("../../ui-assets/app.js");

/// The UI's routes; `api::router` merges them next to the APIs'.
pub(crate) fn routes() -> axum::Router<Api> {
    axum::Router::new()
        .route("/", get(pages::projects))
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .route("/sign-in/oidc", get(oidc::start))
        .route("/sign-in/oidc/callback", get(oidc::callback))
        .route("/sign-out", post(sign_out))
        .route("/ui/app.css", get(|| asset(CSS, "text/css; charset=utf-8")))
        .route("/ui/app.js", get(|| asset(JS, "text/javascript; charset=utf-8")))
        .route("/projects/{project}", get(pages::pipeline))
        .route("/projects/{project}/freight", get(pages::timeline))
        .route("/projects/{project}/freight/{name}", get(pages::freight_page))
        .route("/projects/{project}/stages/{stage}", get(pages::stage))
        .route("/projects/{project}/promotions/{name}", get(pages::promotion))
        .route(
            "/projects/{project}/stages/{stage}/{action}",
            get(actions::confirm).post(actions::act),
        )
        .route(
            "/projects/{project}/promotions/{name}/abort",
            get(actions::confirm_abort).post(actions::abort),
        )
}

/// The principal of a request's UI session, when it has no bearer token but a live session
/// (`None` then, and without a session); a session whose token no longer authenticates
/// ends, and the request is refused as the token would be.
pub(crate) async fn session_principal(api: &Api, headers: &HeaderMap) -> Result<Option<Principal>, api::Refusal> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Ok(None);
    }
    let Some(id) = session::id_from(headers) else {
        return Ok(None);
    };
    let Some((token, _)) = api.sessions.get(&id) else {
        return Ok(None);
    };
    match authenticate(api, &token).await {
        Ok(principal) => Ok(Some(principal)),
        Err(refusal) => {
            if refusal.status == StatusCode::UNAUTHORIZED {
                api.sessions.end(&id);
            }
            Err(refusal)
        }
    }
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Who is looking: the principal the session's token (or, when the server allows it, no
/// token) stands for, and the session's CSRF token for its forms.
pub(crate) struct Viewer {
    principal: Principal,
    /// `None` without a session (an anonymous viewer has no forms to send).
    csrf: Option<String>,
}

impl Viewer {
    /// `None` when the viewer may do `action` on the Stage, else why not.
    fn denied(&self, action: Action, project: &str, stage: Option<&str>) -> Option<String> {
        if self.csrf.is_none() {
            return Some("sign in with a token to act".into());
        }
        authz::authorize(&self.principal, action, Some(project), stage)
            .err()
            .map(|d| d.reason)
    }

    /// Runs a call as this viewer.
    async fn ask(&self, api: &Api, call: Call) -> Result<Answer, EngineError> {
        crate::serve::call(&api.shared, &self.principal, call).await
    }
}

impl FromRequestParts<Api> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Viewer, Response> {
        let sessions = &api.sessions;
        let session = session::id_from(&parts.headers).and_then(|id| sessions.get(&id).map(|s| (id, s)));
        let Some((id, (token, csrf))) = session else {
            // Without a session only a server that lets requests without a token read shows
            // anything; anyone else signs in first.
            return match api.anonymous() {
                Some(anonymous) => Ok(Viewer {
                    principal: anonymous.clone(),
                    csrf: None,
                }),
                None => Err(to_sign_in(parts.uri.path())),
            };
        };
        match authenticate(api, &token).await {
            Ok(principal) => Ok(Viewer {
                principal,
                csrf: Some(csrf),
            }),
            // The token was revoked since: the session ends with it.
            Err(refusal) if refusal.status == StatusCode::UNAUTHORIZED => {
                sessions.end(&id);
                Err(to_sign_in(parts.uri.path()))
            }
            Err(refusal) => Err(page_error(refusal.status, &refusal.message)),
        }
    }
}

/// Authenticates a token as the API does (the same 401 audit when it is not valid).
async fn authenticate(api: &Api, token: &str) -> Result<Principal, api::Refusal> {
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| api::Refusal {
        status: StatusCode::UNAUTHORIZED,
        code: "auth",
        message: "a token is letters and digits".into(),
    })?;
    headers.insert(header::AUTHORIZATION, bearer);
    api::authenticate(api, &headers).await
}

fn to_sign_in(path: &str) -> Response {
    let next = serde_urlencoded::to_string([("next", path)]).unwrap_or_default();
    redirect(&format!("/sign-in?{next}"))
}

/// A 303 to `to`, a path on this server.
fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Whether the request came over TLS (to a proxy in front of barge, which says so): the
/// session cookie is then Secure.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A POST's form, read within the API's body limit and client timeout, refused (403) unless
/// it comes from a page of this server: its `Origin`, when the browser sends one, is this
/// host, and its `csrf` field is the session's CSRF token.
async fn form<T: serde::de::DeserializeOwned>(
    api: &Api,
    headers: &HeaderMap,
    csrf: Option<&str>,
    body: axum::body::Body,
) -> Result<T, Response> {
    let refused = |why: &str| page_error(StatusCode::FORBIDDEN, why);
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let origin = origin.to_str().unwrap_or_default();
        let host = host.to_str().unwrap_or_default();
        let from_here = origin.split_once("://").is_some_and(|(_, authority)| authority == host);
        if !from_here {
            return Err(refused("the form was sent from another site"));
        }
    }
    let body = api::read_body(body, MAX_FORM, api.client_timeout)
        .await
        .map_err(|r| page_error(r.status, &r.message))?;
    if let Some(expected) = csrf {
        let sent: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        let sent = sent
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if !api::same(sent.as_bytes(), expected.as_bytes()) {
            return Err(refused(
                "the form's CSRF token is missing or stale: reload the page and try again",
            ));
        }
    }
    serde_urlencoded::from_bytes(&body)
        .map_err(|e| page_error(StatusCode::BAD_REQUEST, &format!("not a form of this page: {e}")))
}

/// The page frame: header with who is signed in, the body, the script.
fn page(viewer: Option<&Viewer>, title: &str, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · barge" }
                link rel="stylesheet" href="/ui/app.css";
                script src="/ui/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Site" {
                        a.brand href="/" { "barge" }
                    }
                    @if let Some(v) = viewer {
                        div.who {
                            @match &v.csrf {
                                Some(csrf) => {
                                    span { "Signed in as " strong { (v.principal.actor()) } " (" (v.principal.role) ")" }
                                    form method="post" action="/sign-out" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" { "Sign out" }
                                    }
                                }
                                None => {
                                    span { "Reading without a token (" (v.principal.role) ")" }
                                    a href="/sign-in" { "Sign in" }
                                }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    };
    html_response(StatusCode::OK, html)
}

fn html_response(status: StatusCode, html: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Scripts only from this server (no inline ones); the graph positions its nodes
            // with inline styles. No framing: the actions must not be clickjacked.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        html.into_string(),
    )
        .into_response()
}

/// An error as a page, with its status.
fn page_error(status: StatusCode, message: &str) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Error · barge" } link rel="stylesheet" href="/ui/app.css"; }
            body { main #main {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p.error role="alert" { (message) }
                p { a href="/" { "Back to the projects" } }
            } }
        }
    };
    html_response(status, html)
}

/// An engine error as a page: a token that no longer signs in goes to the sign-in page.
fn engine_error(e: &EngineError) -> Response {
    page_error(api::status_of(e.class()), &e.to_string())
}

#[derive(serde::Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only a path on this server is a place to go back to after signing in.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

async fn sign_in_form(
    axum::extract::State(api): axum::extract::State<Api>,
    axum::extract::Query(next): axum::extract::Query<Next>,
) -> Response {
    sign_in_page(
        local_path(next.next.as_deref()),
        None,
        StatusCode::OK,
        api.oidc().is_some(),
    )
}

/// The sign-in page; with `oidc`, it also offers signing in with the OIDC issuer.
fn sign_in_page(next: &str, error: Option<&str>, status: StatusCode, oidc: bool) -> Response {
    let with_oidc = format!(
        "/sign-in/oidc?{}",
        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
    );
    let body = html! {
        h1 { "Sign in" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        @if oidc {
            p { a.button #oidc href=(with_oidc) { "Sign in with OIDC" } }
            p { "Or:" }
        }
        p { "Paste an API token of this server (" code { "barge token create" } " makes one). The browser keeps only a session cookie; the token stays on the server." }
        form.signin method="post" action="/sign-in" {
            input type="hidden" name="next" value=(next);
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="off" required autofocus;
            button type="submit" { "Sign in" }
        }
    };
    let mut r = page(None, "Sign in", body);
    *r.status_mut() = status;
    r
}

#[derive(serde::Deserialize)]
struct SignIn {
    token: String,
    next: Option<String>,
}

async fn sign_in(
    axum::extract::State(api): axum::extract::State<Api>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let sessions = &api.sessions;
    // No session yet, so no CSRF token: the Origin check guards against a forged sign-in.
    let form: SignIn = match form(&api, &headers, None, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = local_path(form.next.as_deref()).to_string();
    let token = form.token.trim().to_string();
    if let Err(refusal) = authenticate(&api, &token).await {
        return sign_in_page(&next, Some(&refusal.message), refusal.status, api.oidc().is_some());
    }
    let id = match sessions.create(token) {
        Ok(id) => id,
        Err(e) => return page_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("no random numbers: {e}")),
    };
    let mut r = redirect(&next);
    if let Ok(v) = HeaderValue::from_str(&session::cookie(Some(&id), over_tls(&headers))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(serde::Deserialize)]
struct CsrfOnly {
    #[serde(rename = "csrf")]
    _csrf: String,
}

async fn sign_out(
    axum::extract::State(api): axum::extract::State<Api>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let sessions = &api.sessions;
    let Some(id) = session::id_from(&headers) else {
        return redirect("/sign-in");
    };
    let Some((_, csrf)) = sessions.get(&id) else {
        return redirect("/sign-in");
    };
    if let Err(r) = form::<CsrfOnly>(&api, &headers, Some(&csrf), body).await {
        return r;
    }
    sessions.end(&id);
    let mut r = redirect("/sign-in");
    if let Ok(v) = HeaderValue::from_str(&session::cookie(None, over_tls(&headers))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A button the viewer may press, or the same button disabled with the reason next to it
/// (`aria-describedby`, and `title` for a pointer).
/// With `formaction`, the button sends its form there rather than to the form's action.
fn button(label: &str, denied: Option<&str>, id: &str, formaction: Option<&str>) -> Markup {
    match denied {
        None => html! { button type="submit" formaction=[formaction] { (label) } },
        Some(why) => {
            let why_id = format!("why-{id}");
            html! {
                button type="submit" disabled aria-describedby=(why_id) title=(why) { (label) }
                span.why id=(why_id) { (why) }
            }
        }
    }
}

/// A status word with a symbol, so it never depends on colour alone.
fn status(word: &str) -> Markup {
    let (symbol, class) = match word {
        "Succeeded" | "Healthy" | "UpToDate" | "Successful" | "Verified" => ("✔", "ok"),
        "Failed" | "Errored" | "Error" | "Degraded" | "Aborted" | "Inconclusive" => ("✖", "bad"),
        "Running" | "Pending" | "Progressing" | "Promote" => ("◔", "busy"),
        "Waiting" | "Held" => ("⏸", "wait"),
        _ => ("•", "none"),
    };
    html! { span class={ "status " (class) } { span aria-hidden="true" { (symbol) } " " (word) } }
}

/// An inline sparkline of measured values: one point per measurement, the last labelled.
fn sparkline(values: &[f64], label: &str) -> Markup {
    const W: f64 = 160.0;
    const H: f64 = 40.0;
    if values.is_empty() {
        return html! { span.muted { "no numeric measurements" } };
    }
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(*v), hi.max(*v))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let step = if values.len() > 1 {
        W / (values.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, H - 4.0 - (v - lo) / span * (H - 8.0)))
        .collect();
    let points = points.join(" ");
    html! {
        svg.spark role="img" aria-label=(label) viewBox={ "0 0 " (W) " " (H) } width=(W) height=(H) {
            polyline points=(points) fill="none" stroke="currentColor" stroke-width="2" {}
        }
    }
}

/// Unix milliseconds as RFC 3339, as the APIs show times.
fn when(ms: i64) -> String {
    barge_engine::format::rfc3339(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        let hostile = "<script>alert(1)</script>\"'&";
        let out = html! { p title=(hostile) { (hostile) } }.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        let r = status(hostile).into_string();
        assert!(!r.contains("<script>"), "{r}");
        let b = button(hostile, Some(hostile), "x", None).into_string();
        assert!(!b.contains("<script>"), "{b}");
    }

    #[test]
    fn only_local_paths_are_places_to_go_back_to() {
        assert_eq!(local_path(Some("/projects/shop")), "/projects/shop");
        for outside in ["//evil.example/", "https://evil.example/", "/\\evil.example", ""] {
            assert_eq!(local_path(Some(outside)), "/");
        }
        assert_eq!(local_path(None), "/");
    }
}
