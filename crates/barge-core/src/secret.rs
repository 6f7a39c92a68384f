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

/// Splits the userinfo off an `http(s)` URL: `https://bot:tok@h/x.git` becomes `https://h/x.git`
/// and the credentials `bot` / `tok`, percent-decoded as git decodes them. A lone userinfo
/// (`https://tok@h/x`) is a username with an empty password, which is what git made of it
/// (it asked for a password and got none). Other schemes keep their userinfo (ssh's user is a
/// login name, never a secret to hide), and a URL without userinfo comes back as it is.
pub fn split_userinfo(url: &str) -> (String, Option<Credentials>) {
    let Some(found) = userinfo_at(url, 0) else {
        return (url.to_string(), None);
    };
    let clean = format!("{}{}", &url[..found.userinfo.start], &url[found.userinfo.end + 1..]);
    (clean, Some(found.credentials(url)))
}

/// Where an `http(s)` URL starting at or after `from` in `text` writes a userinfo.
struct Userinfo {
    /// The URL's first character (its scheme's).
    url_start: usize,
    /// The userinfo, without the `@` that follows it.
    userinfo: std::ops::Range<usize>,
}

impl Userinfo {
    fn credentials(&self, text: &str) -> Credentials {
        let userinfo = &text[self.userinfo.clone()];
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        Credentials {
            username: percent_decode(user),
            password: percent_decode(password),
        }
    }
}

/// The characters that end a URL written in YAML or prose (RFC 3986 never allows them
/// unencoded; `,` and `]` end flow-style YAML items).
fn ends_url(c: char) -> bool {
    c.is_whitespace() || "\"'<>`{}|\\^,]".contains(c)
}

/// The first `http(s)` URL with a userinfo at or after `from` in `text`.
fn userinfo_at(text: &str, mut from: usize) -> Option<Userinfo> {
    while let Some(at) = text[from..].find("://").map(|i| from + i) {
        from = at + 3;
        // After the last character that cannot be in a scheme (which may be several bytes long).
        let scheme_start = text[..at]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let scheme = &text[scheme_start..at];
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            continue;
        }
        let rest = &text[from..];
        let authority = &rest[..rest
            .find(|c: char| "/?#".contains(c) || ends_url(c))
            .unwrap_or(rest.len())];
        if let Some(at_sign) = authority.rfind('@') {
            return Some(Userinfo {
                url_start: scheme_start,
                userinfo: from..from + at_sign,
            });
        }
    }
    None
}

/// `%XX` escapes decoded (invalid UTF-8 is replaced, an incomplete escape kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The credentials definitions wrote in their git URLs (`repoURL: https://bot:TOKEN@host/x.git`),
/// by the URL without them. Loading takes them out of the text ([`Self::strip`]), so nothing
/// stored or shown carries them; the process that loaded the definitions keeps them here, in
/// memory only, and hands them to git as it hands configured credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UrlCredentials(std::collections::BTreeMap<String, Credentials>);

impl std::fmt::Debug for UrlCredentials {
    /// The URLs only: a lone userinfo is a username that may be a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl UrlCredentials {
    /// `text` with the userinfo of every `http(s)` URL removed; each URL's credentials are
    /// remembered under the URL as it now reads (a later one replaces an earlier one).
    pub fn strip(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        while let Some(found) = userinfo_at(text, copied) {
            let url_end = text[found.url_start..]
                .find(ends_url)
                .map_or(text.len(), |i| found.url_start + i);
            let clean = format!(
                "{}{}",
                &text[found.url_start..found.userinfo.start],
                &text[found.userinfo.end + 1..url_end]
            );
            self.0.insert(clean, found.credentials(text));
            out.push_str(&text[copied..found.userinfo.start]);
            copied = found.userinfo.end + 1;
        }
        out.push_str(&text[copied..]);
        out
    }

    /// The credentials written in `url` (without its userinfo, as the definitions now read).
    pub fn get(&self, url: &str) -> Option<&Credentials> {
        self.0.get(url)
    }

    /// The credentials an HTTP request to `url` sends: those of the longest URL the
    /// definitions wrote that `url` is or extends at a path boundary (the same scheme, host and
    /// port, then the written path followed by `/`, `?`, `#` or nothing), since the request
    /// URL is often an address plus a path (`http://prom:9090` + `/api/v1/query`). A URL
    /// written without a whole host (`http://u:p@{{args.host}}/x`) matches nothing.
    pub fn for_request(&self, url: &str) -> Option<&Credentials> {
        self.0
            .iter()
            .filter(|(written, _)| extends(url, written))
            .max_by_key(|(written, _)| written.len())
            .map(|(_, credentials)| credentials)
    }
}

/// Whether `url` is `written` or continues it at a path boundary, `written`'s host complete.
fn extends(url: &str, written: &str) -> bool {
    let Some(rest) = url.strip_prefix(written) else {
        return false;
    };
    let Some(host_start) = written.find("://").map(|i| i + 3) else {
        return false;
    };
    let host_end = written[host_start..]
        .find(['/', '?', '#'])
        .map_or(written.len(), |i| host_start + i);
    host_end > host_start
        && (rest.is_empty()
            || rest.starts_with(['/', '?', '#'])
            || (host_end < written.len() && written.ends_with('/')))
}

/// The URL an HTTP request goes to and the basic-auth credentials it sends, as Go's net/http
/// (Argo Rollouts' and Kargo's client) turns a URL's userinfo into basic auth: the URL's own
/// userinfo (taken off the URL), else `defined`'s for the bare URL (those the definitions
/// wrote, [`UrlCredentials::for_request`]).
pub fn request_credentials(
    url: &str,
    defined: impl FnOnce(&str) -> Option<Credentials>,
) -> (String, Option<Credentials>) {
    let (bare, own) = split_userinfo(url);
    let credentials = own.or_else(|| defined(&bare));
    (bare, credentials)
}

/// The credentials for a URL that wrote `embedded` ones, where `configured` finds those a
/// configuration gives it. The URL's own win, as git let them; only a URL without a password
/// (`https://bot@h/x`) takes the configured password, as git asked for one.
pub fn with_configured(
    embedded: Option<Credentials>,
    configured: impl FnOnce() -> Option<Credentials>,
) -> Option<Credentials> {
    match embedded {
        Some(own) if own.password.is_empty() => Some(Credentials {
            password: configured().map(|c| c.password).unwrap_or_default(),
            ..own
        }),
        Some(own) => Some(own),
        None => configured(),
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
    map_json_strings(v, &|s| redact_values(s, secrets))
}

/// `v` with `redact` applied to every string value in it (keys are kept).
pub fn map_json_strings(v: &serde_json::Value, redact: &dyn Fn(&str) -> String) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(redact(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| map_json_strings(x, redact)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), map_json_strings(x, redact)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scheme_after_a_multibyte_character_is_found() {
        // The character before the scheme is three bytes long (found by tests/robustness.rs).
        let (clean, found) = super::split_userinfo("ൈhttps://bot:tok@h/x.git");
        assert_eq!(clean, "ൈhttps://h/x.git");
        assert_eq!(found.map(|c| c.password), Some("tok".to_string()));
        assert_eq!(super::split_userinfo("ൈ://x@h").0, "ൈ://x@h");
    }

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

    fn creds(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    #[test]
    fn userinfo_is_split_off_http_urls_only() {
        assert_eq!(
            split_userinfo("https://bot:s3cret@git.example.com:8443/x.git"),
            (
                "https://git.example.com:8443/x.git".into(),
                Some(creds("bot", "s3cret"))
            )
        );
        // Percent-encoded as git decodes it; the last '@' ends the userinfo.
        assert_eq!(
            split_userinfo("http://bot:p%40ss%3Aw@127.0.0.1/x.git"),
            ("http://127.0.0.1/x.git".into(), Some(creds("bot", "p@ss:w")))
        );
        assert_eq!(
            split_userinfo("https://ghp_token@github.com/a/b"),
            ("https://github.com/a/b".into(), Some(creds("ghp_token", "")))
        );
        for kept in [
            "https://git.example.com/x.git@v1",
            "ssh://git@github.com/a/b.git",
            "git@github.com:a/b.git",
            "file:///tmp/x.git",
        ] {
            assert_eq!(split_userinfo(kept), (kept.to_string(), None), "{kept}");
        }
    }

    #[test]
    fn definitions_text_loses_every_userinfo_and_keeps_it_by_url() {
        let text = "spec:\n  repoURL: https://bot:TOKEN@h:8443/x.git # bot's\n  other: \"http://ro%40x:PW@h/y.git\"\n  list: [https://T2@h/z.git, ssh://git@h/w.git]\n  plain: https://h/x.git\n";
        let mut found = UrlCredentials::default();
        let clean = found.strip(text);
        assert_eq!(
            clean,
            "spec:\n  repoURL: https://h:8443/x.git # bot's\n  other: \"http://h/y.git\"\n  list: [https://h/z.git, ssh://git@h/w.git]\n  plain: https://h/x.git\n"
        );
        assert_eq!(found.get("https://h:8443/x.git"), Some(&creds("bot", "TOKEN")));
        assert_eq!(found.get("http://h/y.git"), Some(&creds("ro@x", "PW")));
        assert_eq!(found.get("https://h/z.git"), Some(&creds("T2", "")));
        assert_eq!(found.get("https://h/x.git"), None);
        let shown = format!("{found:?}");
        assert!(
            !shown.contains("TOKEN") && !shown.contains("T2") && !shown.contains("PW"),
            "{shown}"
        );
        // Stripping clean text changes nothing.
        assert_eq!(UrlCredentials::default().strip(&clean), clean);
    }

    #[test]
    fn a_request_takes_the_longest_written_url_it_extends_at_a_path_boundary() {
        let mut defined = UrlCredentials::default();
        defined.strip("a: http://p:P1@prom:9090\nb: http://q:P2@prom:9090/tenant/\nc: http://r:P3@{{args.host}}/x\nd: https://s:P4@h/x?a=1\n");
        let found = |url: &str| defined.for_request(url).map(|c| c.password.clone());
        assert_eq!(found("http://prom:9090"), Some("P1".into()));
        assert_eq!(found("http://prom:9090/api/v1/query"), Some("P1".into()));
        assert_eq!(found("http://prom:9090?x=1"), Some("P1".into()));
        assert_eq!(found("http://prom:9090/tenant/api/v1/query"), Some("P2".into()));
        assert_eq!(found("http://prom:9090/tenantx"), Some("P1".into()));
        assert_eq!(found("https://h/x?a=1"), Some("P4".into()));
        // Another port, host or scheme, or a longer host, is another server.
        for other in [
            "http://prom:90901/x",
            "http://prom/x",
            "https://prom:9090/x",
            "http://prom:9090.evil.example/x",
            "http://prom:9090@evil.example/x",
            "https://h/x?a=12",
            "http://other/x",
        ] {
            assert_eq!(found(other), None, "{other}");
        }
        // The URL's own userinfo wins; the rest comes from the definitions.
        let lookup = |u: &str| defined.for_request(u).cloned();
        assert_eq!(
            request_credentials("http://own:OWN@prom:9090/api", lookup),
            ("http://prom:9090/api".into(), Some(creds("own", "OWN")))
        );
        assert_eq!(
            request_credentials("http://prom:9090/api", lookup),
            ("http://prom:9090/api".into(), Some(creds("p", "P1")))
        );
        assert_eq!(
            request_credentials("http://x/api", lookup),
            ("http://x/api".into(), None)
        );
    }

    #[test]
    fn a_url_without_a_password_takes_the_configured_one() {
        let configured = || Some(creds("cfg", "cfg-pw"));
        assert_eq!(
            with_configured(Some(creds("bot", "pw")), configured),
            Some(creds("bot", "pw"))
        );
        assert_eq!(
            with_configured(Some(creds("bot", "")), configured),
            Some(creds("bot", "cfg-pw"))
        );
        assert_eq!(with_configured(Some(creds("tok", "")), || None), Some(creds("tok", "")));
        assert_eq!(with_configured(None, configured), configured());
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
