//! The UI's OIDC sign-in (`barge serve --oidc-issuer`): the authorization-code flow with PKCE
//! (OpenID Connect Core 1.0 §3.1, RFC 7636). `/sign-in/oidc` remembers a fresh `state`,
//! `nonce` and PKCE verifier server-side, ties the `state` to the browser with a cookie and
//! sends the browser to the issuer; the issuer sends it back to `/sign-in/oidc/callback`
//! with a code, which is good only with the same browser's `state`, once. barge exchanges
//! the code at the token endpoint, verifies the ID token as it does bearer JWTs (and its
//! `nonce`), maps it to a role by the rules, and opens the same session a pasted token gets,
//! holding the ID token: the session ends when the ID token expires.

use super::session::{self, PendingSignIn};
use super::{authenticate, over_tls, page_error, sign_in_page};
use crate::api::{Api, same};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use barge_engine::oidc::OidcError;
use maud::{DOCTYPE, html};

/// Where the issuer sends the browser back.
const CALLBACK: &str = "/sign-in/oidc/callback";

/// `GET /sign-in/oidc?next=PATH`: off to the issuer.
pub(super) async fn start(State(api): State<Api>, headers: HeaderMap, Query(next): Query<super::Next>) -> Response {
    let Some(oidc) = api.oidc() else {
        return page_error(StatusCode::NOT_FOUND, "this server has no OIDC sign-in (--oidc-issuer)");
    };
    let Some(redirect_uri) = redirect_uri(&headers) else {
        return page_error(StatusCode::BAD_REQUEST, "the request names no Host");
    };
    let (Ok(state), Ok(nonce), Ok(verifier)) = (session::random_hex(), session::random_hex(), session::random_hex())
    else {
        return page_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no random numbers from the operating system",
        );
    };
    let to = match oidc.authorization_url(&redirect_uri, &state, &nonce, &verifier).await {
        Ok(url) => url,
        Err(e) => return failed(e),
    };
    let pending = PendingSignIn {
        nonce,
        verifier,
        redirect_uri,
        next: super::local_path(next.next.as_deref()).to_string(),
    };
    api.sessions.start_sign_in(state.clone(), pending);
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    set_cookie(&mut r, &session::sign_in_cookie(Some(&state), over_tls(&headers)));
    r
}

#[derive(serde::Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /sign-in/oidc/callback?code&state`: back from the issuer; signed in, or why not.
pub(super) async fn callback(State(api): State<Api>, headers: HeaderMap, Query(back): Query<Callback>) -> Response {
    let mut r = finish(&api, &headers, back).await;
    set_cookie(&mut r, &session::sign_in_cookie(None, over_tls(&headers)));
    r
}

async fn finish(api: &Api, headers: &HeaderMap, back: Callback) -> Response {
    let Some(oidc) = api.oidc() else {
        return page_error(StatusCode::NOT_FOUND, "this server has no OIDC sign-in (--oidc-issuer)");
    };
    let refused = |status, why: &str| sign_in_page("/", Some(why), status, true);
    if let Some(error) = back.error {
        let description = back.error_description.unwrap_or_default();
        return refused(
            StatusCode::UNAUTHORIZED,
            &format!("the issuer refused the sign-in: {error} {description}"),
        );
    }
    let (Some(code), Some(state)) = (back.code, back.state) else {
        return refused(StatusCode::BAD_REQUEST, "the issuer sent no code and state back");
    };
    // The state must be the one this browser was sent off with (a login CSRF otherwise:
    // someone else's code signing this browser in as them).
    let from_here = session::cookie_value(headers, session::SIGN_IN_COOKIE)
        .is_some_and(|mine| same(mine.as_bytes(), state.as_bytes()));
    if !from_here {
        return refused(
            StatusCode::FORBIDDEN,
            "this sign-in was not started in this browser; sign in again",
        );
    }
    let Some(pending) = api.sessions.finish_sign_in(&state) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "this sign-in expired or was used already; sign in again",
        );
    };
    let id_token = match oidc
        .exchange(&code, &pending.redirect_uri, &pending.verifier, &pending.nonce)
        .await
    {
        Ok(t) => t,
        Err(e) => return failed(e),
    };
    // The same authentication as every request's: the rules' role, or a 403 (audited).
    if let Err(refusal) = authenticate(api, &id_token).await {
        return refused(refusal.status, &refusal.message);
    }
    let id = match api.sessions.create(id_token) {
        Ok(id) => id,
        Err(e) => return page_error(StatusCode::INTERNAL_SERVER_ERROR, &format!("no random numbers: {e}")),
    };
    // A page that goes on, rather than a redirect: the navigation here came from the
    // issuer's site, and a browser sends no SameSite=Strict cookie along a redirect chain
    // that started on another site; the page's own navigation is same-site.
    let next = pending.next;
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0;url={next}"));
                title { "Signed in · barge" }
                link rel="stylesheet" href="/ui/app.css";
            }
            body { main #main { h1 { "Signed in" } p { a href=(next) { "Continue" } } } }
        }
    };
    let mut r = super::html_response(StatusCode::OK, html);
    set_cookie(&mut r, &session::cookie(Some(&id), over_tls(headers)));
    r
}

/// `http(s)://HOST/sign-in/oidc/callback` for this request (https behind a TLS proxy).
fn redirect_uri(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if over_tls(headers) { "https" } else { "http" };
    Some(format!("{scheme}://{host}{CALLBACK}"))
}

/// A failed sign-in as a page: 401 for a token that is not valid, 503 when the issuer
/// cannot be asked.
fn failed(e: OidcError) -> Response {
    let status = crate::api::status_of(Some(e.class()));
    sign_in_page("/", Some(&e.to_string()), status, true)
}

fn set_cookie(r: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}
