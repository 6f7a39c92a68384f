//! The UI's sign-in sessions: a person pastes an API token once; the browser then holds only
//! a random session id in an HttpOnly, SameSite=Strict cookie (Secure behind TLS), never the
//! token. The server keeps the token in memory next to the session's CSRF token and
//! authenticates it again on every request, so that revoking the token ends the session at
//! once. Sessions live in the daemon's memory: a restart signs everyone out, and a second
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
    /// The API token the person pasted (server-side only).
    pub token: String,
    /// Every form of this session carries it; a POST without it is refused.
    pub csrf: String,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

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
            last_seen: Instant::now(),
        };
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| s.last_seen.elapsed() < IDLE);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all.iter().min_by_key(|(_, s)| s.last_seen).map(|(id, _)| id.clone())
        {
            all.remove(&oldest);
        }
        all.insert(id.clone(), session);
        Ok(id)
    }

    /// The session's token and CSRF token, when `id` is a live session.
    pub fn get(&self, id: &str) -> Option<(String, String)> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match all.get_mut(id) {
            Some(s) if s.last_seen.elapsed() < IDLE => {
                s.last_seen = Instant::now();
                Some((s.token.clone(), s.csrf.clone()))
            }
            Some(_) => {
                all.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// The session id a request's `Cookie` header carries.
pub fn id_from(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_string())
        })
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
