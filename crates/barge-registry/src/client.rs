//! The registry HTTP client: one place where every request is rate limited, authenticated,
//! retried and counted.

use crate::RegistryError;
use crate::auth::{self, CredentialRule, Credentials};
use barge_core::retry::RetryPolicy;
use base64::Engine;
use reqwest::{Method, StatusCode, header};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub use barge_core::rewrite::Rewrite;

/// Pushes and streamed blobs (the `oci-download` and `oci-push` steps), through this module's
/// request path.
pub(crate) mod transfer;

#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Requests per second per registry host (Kargo's default is 20), with bursts of twice as many.
    pub rate_limit: f64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts per request for transient faults (429, 5xx, resets, truncated bodies), token
    /// requests included.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles (with jitter) for each next one.
    pub base_backoff: Duration,
    /// The longest wait between attempts, a registry's `Retry-After` included.
    pub max_backoff: Duration,
    /// `n` for tag listing; `None` lets the registry choose (and follow its `Link` pages).
    pub page_size: Option<u32>,
    /// At most this many tag pages per listing (a registry looping its `Link` is cut off).
    pub max_pages: u32,
    pub rewrites: Vec<Rewrite>,
    pub credentials: Vec<CredentialRule>,
    /// docker `config.json` to read (default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// `PATH` for `docker-credential-*` helpers (default: the process's).
    pub helper_path: Option<std::ffi::OsString>,
    /// Hosts spoken to over plain HTTP besides loopback addresses.
    pub plain_http_hosts: Vec<String>,
    /// Skip TLS certificate verification (per subscription: `insecureSkipTLSVerify`).
    pub insecure_skip_tls_verify: bool,
    /// The credentials definitions wrote in a repository's URL (`https://u:p@charts.example.com/`),
    /// which loading took out of the text; they win over the rules above.
    pub url_credentials: Option<UrlCredentialLookup>,
    /// Told of every request's end and every wait, for the daemon's metrics.
    pub observer: Option<RequestObserver>,
}

/// What a [`RequestObserver`] is told.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RequestEvent<'a> {
    /// A logical request (its retries included) to `host` ended: `None` when it succeeded,
    /// else its error's class.
    Finished {
        host: &'a str,
        error: Option<barge_core::ErrorClass>,
    },
    /// A request to `host` waited `waited` before an attempt: for the per-host rate limit
    /// (`retry: false`) or before a retry (backoff or the registry's `Retry-After`).
    Waited {
        host: &'a str,
        retry: bool,
        waited: Duration,
    },
}

/// Told of requests as they end and wait (the daemon counts them; nothing else needs to).
#[derive(Clone)]
pub struct RequestObserver(pub Arc<dyn Fn(RequestEvent<'_>) + Send + Sync>);

impl std::fmt::Debug for RequestObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestObserver")
    }
}

/// Finds the credentials a definitions URL was written with (see
/// `barge_core::secret::UrlCredentials::for_request`). Asked on every use, never cached: a
/// daemon's reload replaces what it answers.
#[derive(Clone)]
pub struct UrlCredentialLookup(pub Arc<FindCredentials>);

/// What a [`UrlCredentialLookup`] asks: the credentials a URL was written with, if any.
pub type FindCredentials = dyn Fn(&str) -> Option<Credentials> + Send + Sync;

impl std::fmt::Debug for UrlCredentialLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlCredentialLookup")
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            rate_limit: 20.0,
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            page_size: None,
            max_pages: 1000,
            rewrites: Vec::new(),
            credentials: Vec::new(),
            docker_config: None,
            helper_path: None,
            plain_http_hosts: Vec::new(),
            insecure_skip_tls_verify: false,
            url_credentials: None,
            observer: None,
        }
    }
}

impl RegistryConfig {
    /// The retry policy of every request (`barge_core::retry`) with these numbers.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            base_delay: self.base_backoff,
            max_delay: self.max_backoff,
            ..RetryPolicy::default()
        }
    }
}

/// A registry's own rate limit, from its `ratelimit-limit` / `ratelimit-remaining` headers
/// (`100;w=21600`: 100 requests per 6 hours).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitStatus {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub window_seconds: Option<u64>,
}

impl RateLimitStatus {
    fn parse(limit: Option<&str>, remaining: Option<&str>) -> RateLimitStatus {
        let split = |v: Option<&str>| -> (Option<u64>, Option<u64>) {
            let Some(v) = v else { return (None, None) };
            let mut parts = v.split(';');
            let n = parts.next().and_then(|n| n.trim().parse().ok());
            let w = parts.find_map(|p| p.trim().strip_prefix("w=").and_then(|w| w.parse().ok()));
            (n, w)
        };
        let (limit, w1) = split(limit);
        let (remaining, w2) = split(remaining);
        RateLimitStatus {
            limit,
            remaining,
            window_seconds: w1.or(w2),
        }
    }
}

/// A repository as contacted: scheme, API host and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoRef {
    /// The URL as written in the subscription (what Freight records).
    pub original: String,
    pub scheme: &'static str,
    pub host: String,
    pub path: String,
}

impl RepoRef {
    pub fn base(&self) -> String {
        format!("{}://{}/v2/{}", self.scheme, self.host, self.path)
    }
}

/// The registry client. Cheap to clone; clones share caches, limits and counters.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    config: RegistryConfig,
    http: reqwest::Client,
    /// Bearer tokens per (host, scope).
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Hosts that answered a Basic challenge.
    basic_hosts: Mutex<HashMap<String, ()>>,
    /// The next free request slot per host.
    slots: Mutex<HashMap<String, Instant>>,
    credentials: Mutex<HashMap<String, Option<Credentials>>>,
    requests: AtomicU64,
    /// Image metadata by digest (NewestBuild's build times never change for a digest).
    created_by_digest: Mutex<HashMap<String, Option<String>>>,
    /// What earlier passes learned, by subscription fingerprint (`discover::ImageMemory`).
    image_memory: Mutex<HashMap<String, crate::discover::ImageMemory>>,
    /// The last `ratelimit-*` headers each host sent.
    rate_status: Mutex<HashMap<String, RateLimitStatus>>,
}

pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// One response body with the headers discovery needs.
pub(crate) struct Fetched {
    pub body: Vec<u8>,
    pub digest: Option<String>,
    pub link_next: Option<String>,
    pub etag: Option<String>,
    /// A conditional request's `304 Not Modified`.
    pub not_modified: bool,
}

/// A repository's tag list.
pub(crate) struct TagListing {
    pub tags: Vec<String>,
    /// The list's ETag when it came in one page, to send back as `If-None-Match` next time.
    pub etag: Option<String>,
    /// SHA-256 of every page's body: tells an unchanged list from a registry without ETags.
    pub sha256: String,
}

impl Registry {
    pub fn new(config: RegistryConfig) -> Result<Registry, RegistryError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .danger_accept_invalid_certs(config.insecure_skip_tls_verify)
            .user_agent(concat!("barge/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| RegistryError::Invalid {
                url: String::new(),
                message: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(Registry {
            inner: Arc::new(Inner {
                config,
                http,
                tokens: Mutex::default(),
                basic_hosts: Mutex::default(),
                slots: Mutex::default(),
                credentials: Mutex::default(),
                requests: AtomicU64::new(0),
                created_by_digest: Mutex::default(),
                image_memory: Mutex::default(),
                rate_status: Mutex::default(),
            }),
        })
    }

    /// Requests sent so far (every attempt counts, token requests included).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn created_cache(&self) -> &Mutex<HashMap<String, Option<String>>> {
        &self.inner.created_by_digest
    }

    pub(crate) fn image_memory(&self) -> &Mutex<HashMap<String, crate::discover::ImageMemory>> {
        &self.inner.image_memory
    }

    /// The rate limit a host last reported (`ratelimit-limit` / `ratelimit-remaining`, as
    /// Docker Hub sends them).
    pub async fn rate_limit_status(&self, host: &str) -> Option<RateLimitStatus> {
        self.inner.rate_status.lock().await.get(host).cloned()
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Where requests for a repository URL go, after rewrites. Docker Hub names
    /// (`nginx`, `docker.io/x/y`) resolve to `registry-1.docker.io` with `library/`.
    pub fn resolve(&self, repo_url: &str) -> RepoRef {
        let mut target = repo_url.trim().to_string();
        if let Some(rw) = self
            .inner
            .config
            .rewrites
            .iter()
            .filter(|r| target.starts_with(&r.from))
            .max_by_key(|r| r.from.len())
        {
            target = format!("{}{}", rw.to, &target[rw.from.len()..]);
        }
        let mut scheme_forced = None;
        for (prefix, scheme) in [("http://", "http"), ("https://", "https")] {
            if let Some(rest) = target.strip_prefix(prefix) {
                target = rest.to_string();
                scheme_forced = Some(scheme);
            }
        }
        let (host, path) = match target.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), target.clone()),
        };
        let (host, path) = if matches!(host.as_str(), "docker.io" | "index.docker.io") {
            let path = if path.contains('/') {
                path
            } else {
                format!("library/{path}")
            };
            ("registry-1.docker.io".to_string(), path)
        } else {
            (host, path)
        };
        let plain = is_loopback(&host) || self.inner.config.plain_http_hosts.iter().any(|h| h == &host);
        RepoRef {
            original: repo_url.to_string(),
            scheme: scheme_forced.unwrap_or(if plain { "http" } else { "https" }),
            host,
            path,
        }
    }

    /// Every tag of a repository, following `Link: <…>; rel="next"` pages (relative or
    /// absolute), with a page cap and cycle detection.
    pub async fn list_tags(&self, repo: &RepoRef) -> Result<Vec<String>, RegistryError> {
        // Only a conditional request is answered "not modified" (`None`).
        Ok(self
            .list_tags_since(repo, None)
            .await?
            .map(|l| l.tags)
            .unwrap_or_default())
    }

    /// Like [`Registry::list_tags`], asking the registry first whether the list changed since
    /// `etag` (`If-None-Match`; registries that do not support it just answer the list):
    /// `None` when it has not.
    pub(crate) async fn list_tags_since(
        &self,
        repo: &RepoRef,
        etag: Option<&str>,
    ) -> Result<Option<TagListing>, RegistryError> {
        use sha2::Digest;
        let mut url = format!("{}/tags/list", repo.base());
        if let Some(n) = self.inner.config.page_size {
            url.push_str(&format!("?n={n}"));
        }
        let mut tags = Vec::new();
        let mut hash = sha2::Sha256::new();
        let mut first_etag = None;
        let mut seen = std::collections::HashSet::new();
        for page_number in 0..self.inner.config.max_pages {
            if !seen.insert(url.clone()) {
                break;
            }
            let conditional = etag.filter(|_| page_number == 0);
            let page = self
                .fetch_json(repo, Method::GET, &url, "application/json", conditional)
                .await?;
            if page.not_modified {
                return Ok(None);
            }
            if page_number == 0 {
                first_etag = page.etag.clone();
            }
            hash.update(&page.body);
            #[derive(serde::Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let list: TagList = parse_json(&url, &page.body)?;
            tags.extend(list.tags.unwrap_or_default());
            match page.link_next {
                Some(next) => url = absolute(repo.scheme, &repo.host, &next),
                None => {
                    return Ok(Some(TagListing {
                        tags,
                        // A registry's ETag covers the page it came with. Over several pages
                        // (sorted by name) a new tag lands on whichever page its name falls
                        // in, and the first page's ETag may not change: revalidating with it
                        // would miss the tag. Only a one-page list is revalidated.
                        etag: first_etag.filter(|_| page_number == 0),
                        sha256: hex(&hash.finalize()),
                    }));
                }
            }
        }
        tracing::warn!(repo = %repo.original, pages = self.inner.config.max_pages, "Tag listing stopped at the page cap.");
        Ok(Some(TagListing {
            tags,
            etag: None,
            sha256: hex(&hash.finalize()),
        }))
    }

    /// The digest a tag points at, by HEAD (which does not count as a Docker Hub pull). A
    /// malformed `Docker-Content-Digest` is refused: it would be recorded in Freight.
    pub async fn head_digest(&self, repo: &RepoRef, reference: &str) -> Result<String, RegistryError> {
        let url = format!("{}/manifests/{reference}", repo.base());
        let r = self.fetch(repo, Method::HEAD, &url, MANIFEST_ACCEPT, None).await?;
        match r.digest {
            Some(d) if parse_digest(&d).is_some() => Ok(d),
            Some(d) => Err(malformed_digest(&url, &d)),
            // Some registries omit the header on HEAD: fall back to GET and hash the body.
            None => Ok(self.manifest(repo, reference).await?.digest.unwrap_or_default()),
        }
    }

    /// A manifest (image, index or list) by tag or digest. `digest` is the digest of the bytes
    /// received, never just the registry's word: a `Docker-Content-Digest` that differs (or is
    /// malformed), or a manifest fetched by digest whose bytes hash to another, is refused.
    pub(crate) async fn manifest(&self, repo: &RepoRef, reference: &str) -> Result<Fetched, RegistryError> {
        let url = format!("{}/manifests/{reference}", repo.base());
        let mut r = self.fetch_json(repo, Method::GET, &url, MANIFEST_ACCEPT, None).await?;
        let claimed = r
            .digest
            .take()
            .or_else(|| reference.contains(':').then(|| reference.to_string()));
        let actual = match &claimed {
            Some(c) => {
                let (algorithm, _) = parse_digest(c).ok_or_else(|| malformed_digest(&url, c))?;
                content_digest(algorithm, &r.body)
            }
            None => content_digest(DigestAlgorithm::Sha256, &r.body),
        };
        if let Some(c) = claimed.filter(|c| *c != actual) {
            return Err(RegistryError::Invalid {
                url,
                message: format!(
                    "the registry says the manifest is {c}, but the bytes it sent are {actual}: refusing a digest it cannot back"
                ),
            });
        }
        r.digest = Some(actual);
        Ok(r)
    }

    /// A document at an arbitrary URL of a repository's host (a chart repository's
    /// `index.yaml`), with the same auth, limits and retries as registry calls.
    pub(crate) async fn get_document(&self, repo_url: &str, url: &str) -> Result<Vec<u8>, RegistryError> {
        let target = barge_core::rewrite::apply(&self.inner.config.rewrites, url);
        let parsed = reqwest::Url::parse(&target).map_err(|e| RegistryError::Invalid {
            url: url.to_string(),
            message: format!("not a URL: {e}"),
        })?;
        let host = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_string(),
        };
        let repo = RepoRef {
            original: repo_url.to_string(),
            scheme: if parsed.scheme() == "http" { "http" } else { "https" },
            host,
            path: String::new(),
        };
        Ok(self
            .fetch(&repo, Method::GET, &target, "application/x-yaml, text/yaml, */*", None)
            .await?
            .body)
    }

    pub(crate) async fn blob(&self, repo: &RepoRef, digest: &str) -> Result<Fetched, RegistryError> {
        let url = format!("{}/blobs/{digest}", repo.base());
        self.fetch_json(repo, Method::GET, &url, "application/json, */*", None)
            .await
    }

    /// A GET whose body must be complete JSON: an unparseable body counts as a transient
    /// fault (a truncated response) and is retried like a 503. With `if_none_match`, a
    /// `304 Not Modified` is an answer too.
    async fn fetch_json(
        &self,
        repo: &RepoRef,
        method: Method,
        url: &str,
        accept: &str,
        if_none_match: Option<&str>,
    ) -> Result<Fetched, RegistryError> {
        let request = Request {
            repo,
            method: &method,
            url,
            accept,
            if_none_match,
            json: true,
        };
        self.send(&request).await
    }

    /// Sends one logical request: rate limit, auth, retries with backoff and `Retry-After`.
    async fn fetch(
        &self,
        repo: &RepoRef,
        method: Method,
        url: &str,
        accept: &str,
        if_none_match: Option<&str>,
    ) -> Result<Fetched, RegistryError> {
        let request = Request {
            repo,
            method: &method,
            url,
            accept,
            if_none_match,
            json: false,
        };
        self.send(&request).await
    }

    /// Attempts a request under the retry policy (`barge_core::retry`).
    async fn send(&self, request: &Request<'_>) -> Result<Fetched, RegistryError> {
        let host = request.repo.host.as_str();
        let result = barge_core::retry::retry(
            &self.inner.config.retry_policy(),
            tokio::time::sleep,
            fastrand::u64(..),
            |attempt| self.attempt(request, attempt),
            |_| true,
            |failed: &Failed, attempt, wait| {
                tracing::warn!(url = %request.url, attempt, ?wait, error = %failed.error, "Registry request failed; retrying.");
                self.observe(RequestEvent::Waited {
                    host,
                    retry: true,
                    waited: wait,
                });
            },
        )
        .await
        .map_err(|failed| failed.error);
        self.observe(RequestEvent::Finished {
            host,
            error: result.as_ref().err().map(RegistryError::class),
        });
        result
    }

    fn observe(&self, event: RequestEvent<'_>) {
        if let Some(observer) = &self.inner.config.observer {
            (observer.0)(event);
        }
    }

    /// One attempt at a request. A `401` challenge is answered within the attempt (fetching a
    /// bearer token is part of it, so a token server's fault is retried like the registry's).
    async fn attempt(&self, request: &Request<'_>, attempt: u32) -> Result<Fetched, Failed> {
        let Request {
            repo,
            method,
            url,
            accept,
            if_none_match,
            json,
        } = *request;
        let transient = |message: String| RegistryError::Transient {
            url: url.to_string(),
            message,
            attempts: attempt,
        };
        let mut challenge_answered = false;
        loop {
            self.wait_for_slot(&repo.host).await;
            let mut req = self
                .inner
                .http
                .request(method.clone(), url)
                .header(header::ACCEPT, accept);
            if let Some(etag) = if_none_match {
                req = req.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(value) = self.authorization(repo).await {
                req = req.header(header::AUTHORIZATION, value);
            }
            let (status, headers, body) = self.exchange(req).await.map_err(|message| {
                // An untrusted certificate will not become trusted by retrying.
                if message.contains("certificate") {
                    RegistryError::Invalid {
                        url: url.to_string(),
                        message: format!(
                            "{message} (trust the registry's CA, or set insecureSkipTLSVerify: true on the subscription)"
                        ),
                    }
                } else {
                    transient(message)
                }
            })?;
            match status {
                s if s.is_success() => {
                    if json && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
                        return Err(transient(format!("incomplete or invalid JSON ({} bytes)", body.len())).into());
                    }
                    let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let limit = get(header::HeaderName::from_static("ratelimit-limit"));
                    let remaining = get(header::HeaderName::from_static("ratelimit-remaining"));
                    if limit.is_some() || remaining.is_some() {
                        let status = RateLimitStatus::parse(limit.as_deref(), remaining.as_deref());
                        self.inner.rate_status.lock().await.insert(repo.host.clone(), status);
                    }
                    return Ok(Fetched {
                        body,
                        digest: get(header::HeaderName::from_static("docker-content-digest")),
                        link_next: headers
                            .get_all(header::LINK)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .find_map(next_link),
                        etag: get(header::ETAG),
                        not_modified: false,
                    });
                }
                StatusCode::NOT_MODIFIED if if_none_match.is_some() => {
                    return Ok(Fetched {
                        body: Vec::new(),
                        digest: None,
                        link_next: None,
                        etag: if_none_match.map(str::to_string),
                        not_modified: true,
                    });
                }
                StatusCode::UNAUTHORIZED if !challenge_answered => {
                    challenge_answered = true;
                    let challenge = headers
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    self.answer_challenge(repo, url, &challenge, attempt).await?;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let has_creds = self.credentials(repo).await.is_some();
                    return Err(RegistryError::Auth {
                        url: url.to_string(),
                        message: if has_creds {
                            "the registry rejected the credentials (check the username and password or token)"
                                .to_string()
                        } else {
                            "the registry requires credentials and none are configured (docker config.json, a credential helper, or a barge credential rule)".to_string()
                        },
                    }
                    .into());
                }
                StatusCode::NOT_FOUND => return Err(RegistryError::NotFound { url: url.to_string() }.into()),
                s if is_retryable_status(s) => return Err(Failed::status(url, s, &headers, attempt)),
                s => {
                    return Err(RegistryError::Invalid {
                        url: url.to_string(),
                        message: format!(
                            "HTTP {s}: {}",
                            String::from_utf8_lossy(&body).chars().take(200).collect::<String>()
                        ),
                    }
                    .into());
                }
            }
        }
    }

    /// Sends a request (counted) and reads the whole answer; a transport fault is its message.
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<(StatusCode, header::HeaderMap, Vec<u8>), String> {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.map_err(|e| without_url(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        match resp.bytes().await {
            Ok(body) => Ok((status, headers, body.to_vec())),
            Err(e) => Err(format!("reading the response failed: {}", without_url(&e))),
        }
    }

    /// A token bucket per host (GCRA): bursts of up to two seconds' worth of requests (so one
    /// subscription's listing and its discoveryLimit HEADs go unthrottled), then one every
    /// `1 / rate_limit` seconds.
    async fn wait_for_slot(&self, host: &str) {
        let rate = self.inner.config.rate_limit.max(0.001);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let burst = interval.mul_f64((2.0 * rate).floor().max(1.0) - 1.0);
        let start = {
            let mut slots = self.inner.slots.lock().await;
            let now = Instant::now();
            // `tat`: the theoretical arrival time of the next request.
            let tat = slots.get(host).copied().filter(|t| *t > now).unwrap_or(now);
            let start = tat.checked_sub(burst).filter(|s| *s > now).unwrap_or(now);
            slots.insert(host.to_string(), tat + interval);
            start
        };
        let waited = start.saturating_duration_since(Instant::now());
        if !waited.is_zero() {
            self.observe(RequestEvent::Waited {
                host,
                retry: false,
                waited,
            });
        }
        tokio::time::sleep_until(start.into()).await;
    }

    async fn credentials(&self, repo: &RepoRef) -> Option<Credentials> {
        if let Some(written) = self
            .inner
            .config
            .url_credentials
            .as_ref()
            .and_then(|l| (l.0)(&repo.original))
        {
            return Some(written);
        }
        let mut cache = self.inner.credentials.lock().await;
        if let Some(c) = cache.get(&repo.original) {
            return c.clone();
        }
        let cfg = &self.inner.config;
        let found = auth::lookup(
            &cfg.credentials,
            cfg.docker_config.as_ref(),
            cfg.helper_path.as_deref(),
            &repo.original,
            &repo.host,
        )
        .await;
        cache.insert(repo.original.clone(), found.clone());
        found
    }

    async fn authorization(&self, repo: &RepoRef) -> Option<String> {
        let scope = pull_scope(&repo.path);
        if let Some((token, expiry)) = self.inner.tokens.lock().await.get(&(repo.host.clone(), scope)).cloned()
            && expiry > Instant::now()
        {
            return Some(format!("Bearer {token}"));
        }
        if self.inner.basic_hosts.lock().await.contains_key(&repo.host) {
            return self.credentials(repo).await.map(|c| basic(&c));
        }
        None
    }

    /// Responds to a `WWW-Authenticate` challenge: fetch a bearer token from the realm, or
    /// remember that the host wants Basic.
    async fn answer_challenge(&self, repo: &RepoRef, url: &str, challenge: &str, attempt: u32) -> Result<(), Failed> {
        let creds = self.credentials(repo).await;
        let (kind, params) = parse_challenge(challenge);
        match kind.as_str() {
            "bearer" => {
                let realm = params.get("realm").ok_or_else(|| RegistryError::Auth {
                    url: url.to_string(),
                    message: "bearer challenge without a realm".into(),
                })?;
                let scope = params.get("scope").cloned().unwrap_or_else(|| pull_scope(&repo.path));
                let mut token_url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Auth {
                    url: url.to_string(),
                    message: format!("bad token realm: {e}"),
                })?;
                {
                    let mut q = token_url.query_pairs_mut();
                    if let Some(service) = params.get("service") {
                        q.append_pair("service", service);
                    }
                    q.append_pair("scope", &scope);
                }
                self.wait_for_slot(&repo.host).await;
                let mut req = self.inner.http.get(token_url.clone());
                if let Some(c) = &creds {
                    req = req.header(header::AUTHORIZATION, basic(c));
                }
                let (status, headers, body) = self.exchange(req).await.map_err(|message| RegistryError::Transient {
                    url: realm.clone(),
                    message,
                    attempts: attempt,
                })?;
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    return Err(RegistryError::Auth {
                        url: realm.clone(),
                        message: "the token server rejected the credentials".into(),
                    }
                    .into());
                }
                if is_retryable_status(status) {
                    return Err(Failed::status(realm, status, &headers, attempt));
                }
                if !status.is_success() {
                    return Err(RegistryError::Invalid {
                        url: realm.clone(),
                        message: format!("token server answered HTTP {status}"),
                    }
                    .into());
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                    expires_in: Option<u64>,
                }
                let t: Token = parse_json(realm, &body)?;
                let token = t.token.or(t.access_token).ok_or_else(|| RegistryError::Auth {
                    url: realm.clone(),
                    message: "the token server returned no token".into(),
                })?;
                // Renew a little early; 60 s is the spec's default lifetime.
                let life = Duration::from_secs(t.expires_in.unwrap_or(60).saturating_sub(5).max(1));
                self.inner.tokens.lock().await.insert(
                    (repo.host.clone(), pull_scope(&repo.path)),
                    (token, Instant::now() + life),
                );
                Ok(())
            }
            "basic" => {
                if creds.is_none() {
                    return Err(RegistryError::Auth {
                        url: url.to_string(),
                        message: "the registry requires credentials and none are configured (docker config.json, a credential helper, or a barge credential rule)".into(),
                    }
                    .into());
                }
                self.inner.basic_hosts.lock().await.insert(repo.host.clone(), ());
                Ok(())
            }
            _ => Err(RegistryError::Auth {
                url: url.to_string(),
                message: format!(
                    "unsupported authentication challenge {:?}",
                    challenge.split_whitespace().next().unwrap_or("")
                ),
            }
            .into()),
        }
    }
}

/// What one request is: where it goes, what it accepts, and whether its body must be JSON.
#[derive(Clone, Copy)]
struct Request<'a> {
    repo: &'a RepoRef,
    method: &'a Method,
    url: &'a str,
    accept: &'a str,
    if_none_match: Option<&'a str>,
    /// A body that is not complete JSON is a transient fault (a truncated response).
    json: bool,
}

/// A failed attempt: the error, and the wait the server asked for (`Retry-After` comes with
/// 503s too, not only with 429s).
struct Failed {
    error: RegistryError,
    retry_after: Option<Duration>,
}

impl Failed {
    /// A status the policy retries (see [`is_retryable_status`]), after `attempt` attempts.
    fn status(url: &str, status: StatusCode, headers: &header::HeaderMap, attempt: u32) -> Failed {
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let url = url.to_string();
        Failed {
            error: if status == StatusCode::TOO_MANY_REQUESTS {
                RegistryError::RateLimited {
                    url,
                    attempts: attempt,
                    retry_after,
                }
            } else {
                RegistryError::Transient {
                    url,
                    message: format!("HTTP {status}"),
                    attempts: attempt,
                }
            },
            retry_after,
        }
    }
}

impl From<RegistryError> for Failed {
    fn from(error: RegistryError) -> Failed {
        Failed {
            error,
            retry_after: None,
        }
    }
}

impl barge_core::retry::Failure for Failed {
    fn class(&self) -> barge_core::ErrorClass {
        self.error.class()
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// Statuses that may be answered differently later: 408, 429 and 5xx.
fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error()
}

fn basic(c: &Credentials) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

fn pull_scope(path: &str) -> String {
    format!("repository:{path}:pull")
}

fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

/// reqwest errors print the URL; ours already carry it (and a URL may hold credentials).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the response body was cut off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(body).map_err(|e| RegistryError::Invalid {
        url: url.to_string(),
        message: format!("unexpected response: {e}"),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigestAlgorithm {
    Sha256,
    Sha512,
}

/// `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase (the OCI image spec's registered
/// algorithms): the algorithm and the hex, or `None` for anything else.
pub(crate) fn parse_digest(d: &str) -> Option<(DigestAlgorithm, &str)> {
    let (algorithm, hex) = d.split_once(':')?;
    let (algorithm, len) = match algorithm {
        "sha256" => (DigestAlgorithm::Sha256, 64),
        "sha512" => (DigestAlgorithm::Sha512, 128),
        _ => return None,
    };
    (hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some((algorithm, hex))
}

/// The digest of bytes with the algorithm given.
pub(crate) fn content_digest(algorithm: DigestAlgorithm, body: &[u8]) -> String {
    use sha2::Digest;
    match algorithm {
        DigestAlgorithm::Sha256 => format!("sha256:{}", hex(&sha2::Sha256::digest(body))),
        DigestAlgorithm::Sha512 => format!("sha512:{}", hex(&sha2::Sha512::digest(body))),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn malformed_digest(url: &str, digest: &str) -> RegistryError {
    RegistryError::Invalid {
        url: url.to_string(),
        message: format!(
            "the registry sent a malformed Docker-Content-Digest {:?}: refusing to record it",
            digest.chars().take(100).collect::<String>()
        ),
    }
}

/// `Retry-After`: seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v.trim()).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// The `rel="next"` target of a `Link` header value.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| matches!(p.trim().replace(' ', "").as_str(), "rel=\"next\"" | "rel=next"))
            .then(|| target.to_string())
    })
}

fn absolute(scheme: &str, host: &str, link: &str) -> String {
    if link.starts_with("http://") || link.starts_with("https://") {
        link.to_string()
    } else if link.starts_with('/') {
        format!("{scheme}://{host}{link}")
    } else {
        format!("{scheme}://{host}/{link}")
    }
}

/// `Bearer realm="…",service="…",scope="…"` → ("bearer", params).
fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let (kind, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = next.trim_start_matches([',', ' ']);
    }
    (kind.to_ascii_lowercase(), params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Header values as registries and hostile servers send them: the syntax's own
    /// characters, quotes, unicode and noise.
    fn header_value() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    "Bearer ",
                    "Basic ",
                    "realm=",
                    "service=",
                    "scope=",
                    "\"",
                    ",",
                    ";",
                    "<",
                    ">",
                    " ",
                    "=",
                    "rel=next",
                    "rel=\"next\"",
                    "https://r.io/v2/x/tags/list?n=1",
                    "/v2/",
                    "w=",
                    "100",
                    "é",
                    "\u{0}",
                    "Wed, 21 Oct 2015 07:28:00 GMT",
                ])
                .prop_map(str::to_string),
                "\\PC{0,12}",
            ],
            0..24,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        // Bounded (each case is microseconds); on failure proptest prints the minimal input
        // and the seed to replay it.
        #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn response_headers_never_panic(value in header_value(), other in header_value()) {
            let (kind, params) = parse_challenge(&value);
            prop_assert_eq!(kind.to_ascii_lowercase(), kind);
            prop_assert!(params.keys().all(|k| k.to_ascii_lowercase() == *k));
            if let Some(next) = next_link(&value) {
                prop_assert!(value.contains(&next));
                let _ = absolute("https", "r.io", &next);
            }
            let _ = parse_retry_after(&value);
            let _ = RateLimitStatus::parse(Some(&value), Some(&other));
        }

        #[test]
        fn response_bodies_are_parsed_or_refused_never_panic(body in prop::collection::vec(any::<u8>(), 0..300), json in "[\\[\\]{}\",:0-9a-z ]{0,120}") {
            #[derive(serde::Deserialize)]
            struct TagList {
                #[allow(dead_code)]
                tags: Option<Vec<String>>,
            }
            for bytes in [&body[..], json.as_bytes()] {
                if let Err(e) = parse_json::<TagList>("https://r.io/v2/x/tags/list", bytes) {
                    prop_assert!(e.to_string().contains("unexpected response"));
                }
            }
        }
    }

    #[test]
    fn rate_limit_headers() {
        let s = RateLimitStatus::parse(Some("100;w=21600"), Some("76;w=21600"));
        assert_eq!(
            s,
            RateLimitStatus {
                limit: Some(100),
                remaining: Some(76),
                window_seconds: Some(21600)
            }
        );
        assert_eq!(RateLimitStatus::parse(None, Some("5")).remaining, Some(5));
    }

    #[test]
    fn digests_are_parsed_strictly() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_digest(&good), Some((DigestAlgorithm::Sha256, &good[7..])));
        assert!(parse_digest(&format!("sha512:{}", "0".repeat(128))).is_some());
        for bad in [
            "sha256:000",
            "sha256:",
            "",
            "sha256",
            &format!("sha256:{}", "AB".repeat(32)),
            &format!("sha256:{}", "g".repeat(64)),
            &format!("md5:{}", "0".repeat(32)),
            &format!("sha256:{} ", "0".repeat(64)),
        ] {
            assert_eq!(parse_digest(bad), None, "{bad:?}");
        }
        assert_eq!(
            content_digest(DigestAlgorithm::Sha256, b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://r.io/v2/x/tags/list?next_page=abc>; rel=next"#).as_deref(),
            Some("https://r.io/v2/x/tags/list?next_page=abc")
        );
        assert_eq!(next_link(r#"</prev>; rel="prev""#), None);
        assert_eq!(
            absolute("http", "127.0.0.1:5000", "/v2/x/tags/list?last=b"),
            "http://127.0.0.1:5000/v2/x/tags/list?last=b"
        );
    }

    #[test]
    fn challenges() {
        let (k, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(k, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull");
        let (k, p) = parse_challenge(r#"Basic realm="basic-realm""#);
        assert_eq!((k.as_str(), p["realm"].as_str()), ("basic", "basic-realm"));
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let d = parse_retry_after(&future).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn resolves_rewrites_docker_hub_and_loopback() {
        let reg = Registry::new(RegistryConfig {
            rewrites: vec![Rewrite::parse("ghcr.io/acme/=127.0.0.1:5000/mirror/").unwrap()],
            ..Default::default()
        })
        .unwrap();
        let r = reg.resolve("ghcr.io/acme/app");
        assert_eq!(
            (r.scheme, r.host.as_str(), r.path.as_str(), r.original.as_str()),
            ("http", "127.0.0.1:5000", "mirror/app", "ghcr.io/acme/app")
        );
        let r = reg.resolve("nginx");
        assert_eq!(
            (r.scheme, r.host.as_str(), r.path.as_str()),
            ("https", "registry-1.docker.io", "library/nginx")
        );
        let r = reg.resolve("docker.io/bitnami/redis");
        assert_eq!(
            (r.host.as_str(), r.path.as_str()),
            ("registry-1.docker.io", "bitnami/redis")
        );
        let r = reg.resolve("quay.io/org/app");
        assert_eq!((r.scheme, r.host.as_str()), ("https", "quay.io"));
        assert!(Rewrite::parse("nothing").is_none());
    }
}
