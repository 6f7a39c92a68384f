//! A real CNCF distribution registry (`docker-registry`) on an ephemeral loopback port, with
//! helpers that push tiny OCI images over the registry API, and a fault-injecting proxy.

use crate::free_port;
use sha2::Digest;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct TestRegistry {
    child: Child,
    _dir: tempfile::TempDir,
    pub host: String,
    /// `http`, or `https` for a registry started with `start_tls`.
    pub scheme: &'static str,
    pub auth: Option<(String, String)>,
    http: reqwest::Client,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestRegistry {
    /// Starts a registry; with `auth`, it requires HTTP basic auth (htpasswd, bcrypt).
    pub async fn start(auth: Option<(&str, &str)>) -> TestRegistry {
        TestRegistry::start_with(auth, false).await
    }

    /// A registry serving HTTPS with a self-signed certificate (made with openssl).
    pub async fn start_tls() -> TestRegistry {
        TestRegistry::start_with(None, true).await
    }

    /// A registry in distribution's read-only maintenance mode: reads are served, every write
    /// is refused (HTTP 405), as a registry under maintenance or a pull-through mirror answers.
    pub async fn start_read_only() -> TestRegistry {
        TestRegistry::start_configured(None, false, "  maintenance: {readonly: {enabled: true}}\n").await
    }

    /// A registry that sends its notifications (distribution's `notifications.endpoints`) of
    /// pushes to `url`, with `Authorization: <authorization>`; a delivery that fails is
    /// retried every 100 ms.
    pub async fn start_notifying(url: &str, authorization: &str) -> TestRegistry {
        // `storage` ends at the top level: the notifications section follows it.
        let notifications = format!(
            "notifications:\n  endpoints:\n    - name: barge\n      url: {url}\n      headers: {{Authorization: [{authorization:?}]}}\n      timeout: 2s\n      threshold: 1\n      backoff: 100ms\n      ignoredmediatypes: [application/octet-stream]\n"
        );
        TestRegistry::start_configured(None, false, &notifications).await
    }

    async fn start_with(auth: Option<(&str, &str)>, tls: bool) -> TestRegistry {
        TestRegistry::start_configured(auth, tls, "").await
    }

    /// `storage` is more of the config's `storage:` section (indented by two spaces), then
    /// any other top-level sections.
    async fn start_configured(auth: Option<(&str, &str)>, tls: bool, storage: &str) -> TestRegistry {
        // reqwest is built without a default TLS provider (as barge is); install ring's, as
        // barge_registry::install_crypto_provider does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n{storage}http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if tls {
            let (cert, key) = crate::self_signed_cert(dir.path());
            config.push_str(&format!(
                "  tls: {{certificate: {}, key: {}}}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some((user, pass)) = auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbc", htpasswd.to_str().unwrap(), user, pass])
                .output()
                .expect("htpasswd (apache2-utils)");
            assert!(out.status.success());
            config.push_str(&format!(
                "auth:\n  htpasswd: {{realm: basic-realm, path: {}}}\n",
                htpasswd.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let reg = TestRegistry {
            child,
            _dir: dir,
            host: format!("127.0.0.1:{port}"),
            scheme: if tls { "https" } else { "http" },
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
            http: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reg.http.get(format!("{}://{}/v2/", reg.scheme, reg.host)).send().await
                && (r.status().is_success() || r.status() == 401)
            {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "registry did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reg
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.auth {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(data));
        let start = self
            .req(
                reqwest::Method::POST,
                &format!("{}://{}/v2/{repo}/blobs/uploads/", self.scheme, self.host),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 202, "start upload");
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{}://{}{location}", self.scheme, self.host)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let put = self
            .req(reqwest::Method::PUT, &format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201, "finish upload");
        digest
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        let r = self
            .req(
                reqwest::Method::PUT,
                &format!("{}://{}/v2/{repo}/manifests/{reference}", self.scheme, self.host),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "put manifest {reference}: {}",
            r.text().await.unwrap_or_default()
        );
        format!("sha256:{:x}", sha2::Sha256::digest(body))
    }

    /// A single-platform image whose config says it was built at `created`.
    pub async fn push_image(&self, repo: &str, tag: &str, created: &str, arch: &str) -> String {
        let (body, _) = self.image_manifest(repo, created, arch).await;
        self.put_manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", &body)
            .await
    }

    async fn image_manifest(&self, repo: &str, created: &str, arch: &str) -> (Vec<u8>, String) {
        let config = serde_json::json!({"created": created, "architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {}});
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = self.push_blob(repo, &config).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": []
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(&body));
        (body, digest)
    }

    /// An OCI artifact (a Helm chart, a bundle of files): a config blob of `config_media_type`
    /// and one blob per layer, tagged `tag`. Returns the manifest's digest.
    pub async fn push_artifact(
        &self,
        repo: &str,
        tag: &str,
        config_media_type: &str,
        layers: &[(&str, &[u8])],
    ) -> String {
        let config = b"{}";
        let config_digest = self.push_blob(repo, config).await;
        let mut descriptors = Vec::new();
        for (media_type, data) in layers {
            let digest = self.push_blob(repo, data).await;
            descriptors.push(serde_json::json!({"mediaType": media_type, "digest": digest, "size": data.len()}));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_media_type, "digest": config_digest, "size": config.len()},
            "layers": descriptors
        });
        self.put_manifest(
            repo,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .await
    }

    /// Whether the registry has a manifest (by tag or digest) or a blob (`blobs/<digest>`):
    /// `kind` is `manifests` or `blobs`.
    pub async fn has(&self, repo: &str, kind: &str, reference: &str) -> bool {
        let r = self
            .req(
                reqwest::Method::HEAD,
                &format!("{}://{}/v2/{repo}/{kind}/{reference}", self.scheme, self.host),
            )
            .header(
                "accept",
                "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            )
            .send()
            .await
            .unwrap();
        r.status().is_success()
    }

    /// A manifest's bytes, by tag or digest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Vec<u8> {
        let r = self
            .req(
                reqwest::Method::GET,
                &format!("{}://{}/v2/{repo}/manifests/{reference}", self.scheme, self.host),
            )
            .header(
                "accept",
                "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "manifest {repo}:{reference}: {}", r.status());
        r.bytes().await.unwrap().to_vec()
    }

    /// A multi-platform image index: one image per (arch, created).
    pub async fn push_index(&self, repo: &str, tag: &str, platforms: &[(&str, &str)]) -> String {
        let mut entries = Vec::new();
        for (arch, created) in platforms {
            let (body, digest) = self.image_manifest(repo, created, arch).await;
            self.put_manifest(repo, &digest, "application/vnd.oci.image.manifest.v1+json", &body)
                .await;
            entries.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": body.len(),
                "platform": {"os": "linux", "architecture": arch}
            }));
        }
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        self.put_manifest(
            repo,
            tag,
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&index).unwrap(),
        )
        .await
    }

    /// Tags one manifest many times (thousands of tags cheaply).
    pub async fn push_tags(&self, repo: &str, tags: &[String]) {
        let body = self.shared_manifest(repo).await;
        for t in tags {
            self.put_manifest(repo, t, "application/vnd.oci.image.manifest.v1+json", &body)
                .await;
        }
    }

    /// An image manifest whose config blob is uploaded (once): tag it with `put_manifest`,
    /// concurrently if wanted.
    pub async fn shared_manifest(&self, repo: &str) -> Vec<u8> {
        self.image_manifest(repo, "2026-01-01T00:00:00Z", "amd64").await.0
    }
}

/// What the proxy does to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    TooMany {
        retry_after_secs: u64,
    },
    Unavailable,
    Reset,
    TruncatedJson,
    /// A lying registry: answers with this `Docker-Content-Digest` instead of the real one.
    Digest(&'static str),
    /// A slow registry: answers (as with `Pass`) after this long.
    Delay(Duration),
}

/// A proxy in front of a registry. `plan` decides a fault for the n-th request (1-based)
/// matching the path filter; with `bearer`, it demands tokens from its own token endpoint
/// (`/token`, which checks basic credentials), the way Docker Hub and GHCR do. Token requests
/// are numbered on their own (`token_requests`) and given to `plan` too, with their path
/// (`/token?…`), so a plan can fail the token exchange (`Pass` for the rest).
pub struct Proxy {
    pub host: String,
    /// Registry requests, token requests not included.
    pub requests: Arc<AtomicU64>,
    /// Requests to the token endpoint.
    pub token_requests: Arc<AtomicU64>,
    /// Tag listings it answered `304 Not Modified` (its listings carry an ETag, and an
    /// `If-None-Match` naming the current one gets a 304, as GHCR and Docker Hub answer).
    pub not_modified: Arc<AtomicU64>,
    /// Requests it answered late (`Fault::Delay`), counted when the delay is over.
    pub delayed: Arc<AtomicU64>,
    /// It serves on a runtime of its own (so a test blocking its own runtime cannot stall
    /// it), stopped when the proxy is dropped.
    _runtime: crate::runtime::ServerRuntime,
}

pub type Plan = Arc<dyn Fn(u64, &str) -> Fault + Send + Sync>;

impl Proxy {
    pub async fn start(upstream: &str, bearer: Option<(&str, &str)>, plan: Plan) -> Proxy {
        Proxy::start_paginating(upstream, bearer, plan, None).await
    }

    /// Like `start`, and serves tag lists in pages the way distribution v3, GHCR and Docker
    /// Hub do (Debian's distribution 2.8 returns every tag at once): sorted, `n` and `last`
    /// honoured, `Link: <…>; rel="next"` to the next page, `page` tags when `n` is absent.
    pub async fn start_paginating(
        upstream: &str,
        bearer: Option<(&str, &str)>,
        plan: Plan,
        page: Option<usize>,
    ) -> Proxy {
        Proxy::start_listing(upstream, bearer, plan, page, Vec::new()).await
    }

    /// A registry whose tag lists also name `extra_tags`, which it does not have (a broken or
    /// hostile registry: tags that cannot be tag names, tags deleted but still listed).
    pub async fn start_listing_extra(upstream: &str, extra_tags: Vec<String>) -> Proxy {
        Proxy::start_listing(upstream, None, Arc::new(|_, _| Fault::Pass), None, extra_tags).await
    }

    async fn start_listing(
        upstream: &str,
        bearer: Option<(&str, &str)>,
        plan: Plan,
        page: Option<usize>,
        extra_tags: Vec<String>,
    ) -> Proxy {
        let (listener, addr) = crate::runtime::loopback_listener();
        listener.set_nonblocking(true).unwrap();
        let host = addr.to_string();
        let requests = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_string();
        let bearer = bearer.map(|(u, p)| (u.to_string(), p.to_string()));
        let counter = requests.clone();
        let not_modified = Arc::new(AtomicU64::new(0));
        let token_requests = Arc::new(AtomicU64::new(0));
        let delayed = Arc::new(AtomicU64::new(0));
        let me = host.clone();
        let state = Arc::new(ProxyState {
            client: reqwest::Client::new(),
            upstream,
            bearer,
            plan,
            counter,
            me,
            page,
            extra_tags,
            not_modified: not_modified.clone(),
            token_requests: token_requests.clone(),
            delayed: delayed.clone(),
        });
        let runtime = crate::runtime::ServerRuntime::start("registry-proxy");
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((sock, _)) = listener.accept().await else { return };
                let state = state.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, &state).await;
                });
            }
        });
        Proxy {
            host,
            requests,
            token_requests,
            not_modified,
            delayed,
            _runtime: runtime,
        }
    }
}

struct ProxyState {
    client: reqwest::Client,
    upstream: String,
    bearer: Option<(String, String)>,
    plan: Plan,
    counter: Arc<AtomicU64>,
    /// The proxy's own address (the token realm).
    me: String,
    page: Option<usize>,
    extra_tags: Vec<String>,
    not_modified: Arc<AtomicU64>,
    token_requests: Arc<AtomicU64>,
    delayed: Arc<AtomicU64>,
}

/// What a fault did to a request.
enum Faulted {
    /// Nothing yet: the request is answered (`Pass`, or a fault that alters the real answer).
    Proceed,
    /// The fault was the answer (429, 503).
    Answered,
    /// The connection is dropped without an answer.
    Close,
}

async fn answer_fault(
    fault: Fault,
    delayed: &AtomicU64,
    write: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> std::io::Result<Faulted> {
    use tokio::io::AsyncWriteExt;
    match fault {
        Fault::Reset => return Ok(Faulted::Close),
        Fault::TooMany { retry_after_secs } => {
            write
                .write_all(
                    format!(
                        "HTTP/1.1 429 Too Many Requests\r\nretry-after: {retry_after_secs}\r\ncontent-length: 0\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await?;
        }
        Fault::Unavailable => {
            write
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await?;
        }
        Fault::Delay(late) => {
            tokio::time::sleep(late).await;
            delayed.fetch_add(1, Ordering::SeqCst);
            return Ok(Faulted::Proceed);
        }
        Fault::Pass | Fault::TruncatedJson | Fault::Digest(_) => return Ok(Faulted::Proceed),
    }
    Ok(Faulted::Answered)
}

async fn serve(mut sock: tokio::net::TcpStream, st: &ProxyState) -> std::io::Result<()> {
    let (client, upstream, bearer, plan, counter, me, page) = (
        &st.client,
        st.upstream.as_str(),
        st.bearer.as_ref(),
        &st.plan,
        st.counter.as_ref(),
        st.me.as_str(),
        st.page,
    );
    use base64::Engine;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = sock.split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("GET").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        // The token endpoint.
        if path.starts_with("/token") {
            let n = st.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
            match answer_fault(plan(n, &path), &st.delayed, &mut write).await? {
                Faulted::Proceed => {}
                Faulted::Answered => continue,
                Faulted::Close => return Ok(()),
            }
            let want = bearer.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            });
            let (status, body) = if header("authorization") == want {
                ("200 OK", r#"{"token":"test-token-1","expires_in":300}"#.to_string())
            } else {
                (
                    "401 Unauthorized",
                    r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_string(),
                )
            };
            write
                .write_all(
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            continue;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if bearer.is_some() && header("authorization").as_deref() != Some("Bearer test-token-1") {
            let body = r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#;
            let repo = path
                .trim_start_matches("/v2/")
                .split("/tags/")
                .next()
                .unwrap_or("")
                .split("/manifests/")
                .next()
                .unwrap_or("")
                .to_string();
            write
                .write_all(
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"http://{me}/token\",service=\"test-registry\",scope=\"repository:{repo}:pull\"\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            continue;
        }
        match answer_fault(plan(n, &path), &st.delayed, &mut write).await? {
            Faulted::Proceed => {}
            Faulted::Answered => continue,
            Faulted::Close => return Ok(()),
        }
        if path.contains("/tags/list") && (page.is_some() || path.contains("n=") || !st.extra_tags.is_empty()) {
            let (base, query) = path.split_once('?').unwrap_or((&path, ""));
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
            };
            let n: usize = param("n").and_then(|v| v.parse().ok()).or(page).unwrap_or(usize::MAX);
            let last = param("last");
            let full: serde_json::Value = client
                .get(format!("http://{upstream}{base}"))
                .send()
                .await
                .map_err(std::io::Error::other)?
                .json()
                .await
                .map_err(std::io::Error::other)?;
            let mut all: Vec<String> = full["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .chain(st.extra_tags.iter().cloned())
                .collect();
            // A tag both listed by the registry and added by the proxy is listed once.
            all.sort();
            all.dedup();
            let start = last.map_or(0, |l| all.partition_point(|t| t.as_str() <= l.as_str()));
            let chunk: Vec<String> = all[start..].iter().take(n).cloned().collect();
            let mut extra = String::new();
            if start + chunk.len() < all.len() {
                extra = format!("link: <{base}?last={}&n={n}>; rel=\"next\"\r\n", chunk.last().unwrap());
            }
            let mut body = serde_json::to_vec(&serde_json::json!({"name": full["name"], "tags": chunk})).unwrap();
            let etag = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                body.hash(&mut h);
                format!("\"{:016x}\"", h.finish())
            };
            if header("if-none-match").as_deref() == Some(etag.as_str()) {
                st.not_modified.fetch_add(1, Ordering::SeqCst);
                write
                    .write_all(
                        format!("HTTP/1.1 304 Not Modified\r\netag: {etag}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                    )
                    .await?;
                continue;
            }
            if plan(n_req(counter), &path) == Fault::TruncatedJson {
                body.truncate(body.len() / 2);
            }
            write
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\netag: {etag}\r\n{extra}content-length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            write.write_all(&body).await?;
            continue;
        }
        let mut req = client.request(method.parse().unwrap(), format!("http://{upstream}{path}"));
        for (k, v) in &headers {
            if matches!(k.as_str(), "accept") {
                req = req.header(k, v);
            }
        }
        let resp = client
            .execute(req.build().unwrap())
            .await
            .map_err(std::io::Error::other)?;
        let status = resp.status();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        for (k, v) in resp.headers() {
            let k = k.as_str();
            if let ("docker-content-digest", Fault::Digest(lie)) = (k, plan(n, &path)) {
                out.push_str(&format!("{k}: {lie}\r\n"));
            } else if matches!(
                k,
                "content-type" | "docker-content-digest" | "link" | "www-authenticate"
            ) {
                // Pagination links point at the upstream; keep them relative, as registries do.
                out.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
            }
        }
        let mut body = resp.bytes().await.map_err(std::io::Error::other)?.to_vec();
        if plan(n, &path) == Fault::TruncatedJson && method == "GET" {
            body.truncate(body.len() / 2);
        }
        // Docker Hub reports its own limit on every response; the client surfaces it.
        out.push_str("ratelimit-limit: 100;w=21600\r\nratelimit-remaining: 42;w=21600\r\n");
        let len = if method == "HEAD" { 0 } else { body.len() };
        out.push_str(&format!("content-length: {len}\r\n\r\n"));
        write.write_all(out.as_bytes()).await?;
        if method != "HEAD" {
            write.write_all(&body).await?;
        }
    }
}

/// The number of the request being served (the counter was bumped on arrival).
fn n_req(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

pub fn tags(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

pub fn write_docker_config(dir: &Path, host: &str, user: &str, pass: &str) -> std::path::PathBuf {
    use base64::Engine;
    let path = dir.join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::write(&path, format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#)).unwrap();
    path
}
