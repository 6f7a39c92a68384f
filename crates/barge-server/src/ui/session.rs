//! The UI's sign-in sessions: a person pastes an API token once (or signs in with OIDC,
//! which leaves the ID token in its place); the browser then holds only a random session id
//! in an HttpOnly, SameSite=Strict cookie (Secure behind TLS), never the token. The server
//! keeps the token in memory next to the session's CSRF token and authenticates it again on
//! every request, so that revoking the token ends the session at once (an ID token's session
//! ends when the ID token expires). Sessions live in the daemon's memory: a restart signs everyone out, and a second
//! replica needs sticky sessions (docs/ui.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie that carries the session id.
pub const COOKIE: &str = "barge_session";

/// A session unused this long is gone.
const IDLE: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions at once: signing in beyond it ends the least recently used, so
/// that sign-ins cannot grow the daemon's memory without bound.
const MAX_SESSIONS: usize = 10_000;

pub struct Session {
    /// The API token the person pasted, or the ID token of their OIDC sign-in (server-side
    /// only).
    pub token: String,
    /// Every form of this session carries it; a POST without it is refused.
    pub csrf: String,
}

/// An OIDC sign-in under way, by its `state`: what the issuer's redirect back must match.
#[derive(Clone)]
pub struct PendingSignIn {
    pub nonce: String,
    /// The PKCE verifier (RFC 7636).
    pub verifier: String,
    pub redirect_uri: String,
    /// Where to go once signed in.
    pub next: String,
}

/// A sign-in that has not come back within this long is gone.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Sessions {
    sessions: Expiring<Session>,
    /// OIDC sign-ins under way.
    sign_ins: Expiring<PendingSignIn>,
}

/// Entries by random id, each gone once unused for its lifetime, at most [`MAX_SESSIONS`]:
/// adding beyond it drops the least recently used, so that nobody can grow the daemon's
/// memory without bound.
struct Expiring<T>(Mutex<HashMap<String, (T, Instant)>>);

impl<T> Default for Expiring<T> {
    fn default() -> Self {
        Expiring(Mutex::default())
    }
}

impl<T> Expiring<T> {
    fn insert(&self, id: String, value: T, lifetime: Duration) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, (_, seen)| seen.elapsed() < lifetime);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all.iter().min_by_key(|(_, (_, seen))| *seen).map(|(id, _)| id.clone())
        {
            all.remove(&oldest);
        }
        all.insert(id, (value, Instant::now()));
    }

    /// The entry `id` when it is live, used now (`take`: removed).
    fn use_entry<R>(&self, id: &str, lifetime: Duration, take: bool, f: impl FnOnce(&T) -> R) -> Option<R> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let live = match all.get_mut(id) {
            Some((value, seen)) if seen.elapsed() < lifetime => {
                *seen = Instant::now();
                Some(f(value))
            }
            _ => None,
        };
        if take || live.is_none() {
            all.remove(id);
        }
        live
    }

    fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// 256 random bits in hex.
pub fn random_hex() -> Result<String, getrandom::Error> {
    let mut bits = [0u8; 32];
    getrandom::fill(&mut bits)?;
    Ok(bits.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    /// A new session for `token`: its id (for the cookie).
    pub fn create(&self, token: String) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let session = Session {
            token,
            csrf: random_hex()?,
        };
        self.sessions.insert(id.clone(), session, IDLE);
        Ok(id)
    }

    /// The session's token and CSRF token, when `id` is a live session.
    pub fn get(&self, id: &str) -> Option<(String, String)> {
        self.sessions
            .use_entry(id, IDLE, false, |s| (s.token.clone(), s.csrf.clone()))
    }

    pub fn end(&self, id: &str) {
        self.sessions.remove(id);
    }

    /// Remembers an OIDC sign-in under way by its `state`.
    pub fn start_sign_in(&self, state: String, pending: PendingSignIn) {
        self.sign_ins.insert(state, pending, SIGN_IN_TIMEOUT);
    }

    /// The sign-in of `state`, once: a redirect back is good for one session.
    pub fn finish_sign_in(&self, state: &str) -> Option<PendingSignIn> {
        self.sign_ins
            .use_entry(state, SIGN_IN_TIMEOUT, true, PendingSignIn::clone)
    }
}

/// The session id a request's `Cookie` header carries.
pub fn id_from(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE)
}

/// The value of the cookie `wanted` a request carries.
pub fn cookie_value(headers: &axum::http::HeaderMap, wanted: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == wanted).then(|| value.to_string())
        })
}

/// The cookie that ties an OIDC sign-in's redirect back to the browser that started it
/// (the `state` it was sent with).
pub const SIGN_IN_COOKIE: &str = "barge_oidc_state";

/// The `Set-Cookie` value for a sign-in under way (`None`: the one that ends it). SameSite=Lax,
/// not Strict: the issuer's redirect back is a navigation from another site, which a
/// Strict cookie would not come with; it only ever carries the `state`, which is no
/// credential.
pub fn sign_in_cookie(state: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let (value, age) = state.map_or(("", 0), |s| (s, SIGN_IN_TIMEOUT.as_secs()));
    format!("{SIGN_IN_COOKIE}={value}; Path=/sign-in/oidc; HttpOnly; SameSite=Lax; Max-Age={age}{secure}")
}

/// The `Set-Cookie` value for a session id (`None`: the one that ends it). Secure when the
/// request came over TLS, which barge learns from the proxy that terminated it.
pub fn cookie(id: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_its_token_and_csrf_until_it_ends() {
        let sessions = Sessions::default();
        let id = sessions.create("barge_secret".into()).unwrap();
        let (token, csrf) = sessions.get(&id).unwrap();
        assert_eq!(token, "barge_secret");
        assert_eq!((id.len(), csrf.len()), (64, 64));
        assert_ne!(id, csrf);
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn a_sign_in_under_way_is_finished_once() {
        let sessions = Sessions::default();
        let pending = PendingSignIn {
            nonce: "n".into(),
            verifier: "v".into(),
            redirect_uri: "http://barge/sign-in/oidc/callback".into(),
            next: "/".into(),
        };
        sessions.start_sign_in("state".into(), pending);
        assert_eq!(sessions.finish_sign_in("state").map(|p| p.nonce).as_deref(), Some("n"));
        assert!(sessions.finish_sign_in("state").is_none());
        assert!(sessions.finish_sign_in("other").is_none());
    }

    #[test]
    fn the_cookie_is_http_only_and_strict_and_secure_behind_tls() {
        assert_eq!(
            cookie(Some("abc"), false),
            "barge_session=abc; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(cookie(Some("abc"), true).ends_with("; Secure"));
        assert!(cookie(None, false).contains("Max-Age=0"));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "a=b; barge_session=xyz; c=d".parse().unwrap(),
        );
        assert_eq!(id_from(&headers).as_deref(), Some("xyz"));
    }
}
