//! The one place secrets are hidden: credentials whose `Debug` never prints the password, and
//! redaction of URLs (and of text that may echo them) before they reach a message, a log line,
//! the database or the audit trail. Every edge crate (registry, git, sources, store) uses these,
//! so a fix here covers them all.

/// A username and password (or token) for HTTP basic authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Replaces the secret in a URL's userinfo with `***`: `https://bob:pw@h/x` becomes
/// `https://bob:***@h/x`, and a lone token (`https://ghp_x@h/x`) becomes `https://***@h/x`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_string(),
            };
            format!("{}{shown}@{host}{}", &url[..scheme_end], &rest[authority.len()..])
        }
        None => url.to_string(),
    }
}

/// Hides `url`'s credentials in text a tool printed (git echoes URLs), and any `extra` secret
/// (a password handed over out of band, e.g. through an askpass helper).
pub fn redact_text(text: &str, url: &str, extra: Option<&str>) -> String {
    let mut out = text.replace(url, &redact_url(url));
    let in_url = url
        .find("://")
        .map(|i| &url[i + 3..])
        .map(|rest| &rest[..rest.find('/').unwrap_or(rest.len())])
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo.split_once(':').map_or(userinfo, |(_, secret)| secret));
    for secret in [in_url, extra].into_iter().flatten().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "***");
    }
    out
}

/// Hides every known secret value in `text` (step messages and outputs, before they are
/// stored or shown). Longer values first, so a secret containing another is hidden whole.
pub fn redact_values(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    sorted
        .iter()
        .fold(text.to_string(), |out, s| out.replace(s.as_str(), "***"))
}

/// [`redact_values`] over every string in a JSON value (step outputs).
pub fn redact_json(v: &serde_json::Value, secrets: &[String]) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(redact_values(s, secrets)),
        Value::Array(a) => Value::Array(a.iter().map(|x| redact_json(x, secrets)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), redact_json(x, secrets))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values_are_hidden_longest_first() {
        let secrets = vec!["abc".to_string(), "abcdef".to_string(), String::new()];
        assert_eq!(super::redact_values("x abcdef y abc", &secrets), "x *** y ***");
    }

    use super::*;

    #[test]
    fn credentials_never_print_the_password() {
        let c = Credentials {
            username: "bob".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("bob"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn urls_lose_their_secret_but_keep_everything_else() {
        assert_eq!(
            redact_url("https://bob:s3cret@git.example.com/x.git"),
            "https://bob:***@git.example.com/x.git"
        );
        assert_eq!(
            redact_url("https://ghp_token@git.example.com/x.git"),
            "https://***@git.example.com/x.git"
        );
        assert_eq!(
            redact_url("postgres://barge:pw@db:5432/barge?sslmode=require"),
            "postgres://barge:***@db:5432/barge?sslmode=require"
        );
        // An '@' in the path is not userinfo.
        assert_eq!(
            redact_url("https://git.example.com/x.git@v1"),
            "https://git.example.com/x.git@v1"
        );
        assert_eq!(redact_url("sqlite:///var/lib/barge.db"), "sqlite:///var/lib/barge.db");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn text_loses_the_url_secret_and_extra_secrets() {
        assert_eq!(
            redact_text(
                "fatal: could not read from https://bob:s3cret@h/x.git (s3cret)",
                "https://bob:s3cret@h/x.git",
                None
            ),
            "fatal: could not read from https://bob:***@h/x.git (***)"
        );
        assert_eq!(
            redact_text(
                "auth failed for tok-123 at https://h/x.git",
                "https://h/x.git",
                Some("tok-123")
            ),
            "auth failed for *** at https://h/x.git"
        );
        assert_eq!(
            redact_text("token: abc", "https://abc@h/x", None),
            "token: ***",
            "a lone token in the userinfo is a secret too"
        );
    }
}
