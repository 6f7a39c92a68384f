//! Moving OCI content: one layer of an artifact into a writer (Kargo's `oci-download`), and a
//! whole artifact — an image, a Helm chart, a multi-platform index — from one repository to
//! another (Kargo's `oci-push`), following the OCI distribution spec's push and pull flows
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>).
//!
//! A child module of `client` so that every request goes through the same rate-limit slots,
//! credentials, token cache and request counter as discovery, without widening their
//! visibility. Nothing is held whole in memory but manifests: a layer streams to its writer,
//! and a blob moves in chunks of at most [`CHUNK`] bytes.

use super::{
    DigestAlgorithm, Failed, Registry, RepoRef, absolute, content_digest, is_retryable_status, parse_digest,
    without_url,
};
use crate::RegistryError;
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// The most a blob upload holds in memory: smaller blobs go in one PUT, bigger ones as PATCH
/// chunks of this size (the spec's chunked upload).
const CHUNK: usize = 8 * 1024 * 1024;

/// Indexes nest at most this deep (an index of indexes is legal; a loop of them is not).
const MAX_NESTING: usize = 4;

/// At most this many manifests in one artifact (a hostile index cannot make a copy endless).
const MAX_MANIFESTS: usize = 1000;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// An artifact reference as Kargo's OCI steps take it: `[oci://]host/repo:tag` or
/// `[oci://]host/repo@sha256:…` (no tag: `latest`, as go-containerregistry defaults).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciReference {
    /// The repository as written, without `oci://` (what credential rules match).
    pub repository: String,
    /// A tag or a digest.
    pub reference: String,
}

impl OciReference {
    pub fn parse(text: &str) -> Result<OciReference, RegistryError> {
        let invalid = |why: &str| RegistryError::Invalid {
            url: text.to_string(),
            message: format!("invalid reference: {why}"),
        };
        let bare = text.trim().strip_prefix("oci://").unwrap_or(text.trim());
        let (repository, reference) = if let Some((repo, digest)) = bare.split_once('@') {
            if parse_digest(digest).is_none() {
                return Err(invalid("the digest is not sha256:<64 hex> or sha512:<128 hex>"));
            }
            (repo, digest)
        } else {
            let last_slash = bare.rfind('/').unwrap_or(0);
            match bare.rfind(':').filter(|i| *i > last_slash) {
                Some(i) => (&bare[..i], &bare[i + 1..]),
                None => (bare, "latest"),
            }
        };
        // The distribution spec's tag grammar: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
        let tag_ok = |t: &str| {
            !t.is_empty()
                && t.len() <= 128
                && !t.starts_with(['.', '-'])
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if !reference.contains(':') && !tag_ok(reference) {
            return Err(invalid("the tag is not a valid OCI tag"));
        }
        if repository.is_empty() || repository.ends_with('/') || repository.contains("//") {
            return Err(invalid("no repository"));
        }
        Ok(OciReference {
            repository: repository.to_string(),
            reference: reference.to_string(),
        })
    }

    /// The tag, if the reference is one (not a digest).
    pub fn tag(&self) -> Option<&str> {
        (!self.reference.contains(':')).then_some(self.reference.as_str())
    }
}

impl std::fmt::Display for OciReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.tag().is_some() { ':' } else { '@' };
        write!(f, "{}{sep}{}", self.repository, self.reference)
    }
}

/// The layer [`Registry::download_layer`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadedLayer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// What [`Registry::copy_artifact`] pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    /// The digest of the manifest (or index) the destination tag now names.
    pub digest: String,
    /// Blob bytes sent to the destination (mounted or already present blobs send none).
    pub bytes_uploaded: u64,
}

/// A manifest as fetched, its children (an index's) or blobs (an image's) resolved.
struct Node {
    media_type: String,
    json: Json,
    body: Vec<u8>,
    digest: String,
    children: Vec<Node>,
    blobs: Vec<Blob>,
}

#[derive(Clone)]
struct Blob {
    digest: String,
    size: u64,
}

/// A request body that can be sent again (a retry, or after answering an auth challenge).
#[derive(Clone, Copy)]
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
}

impl Registry {
    /// Kargo's oci-download: one layer of `artifact` (the first whose media type is
    /// `media_type`, or the first layer) streamed into `out`, at most `limit` bytes. An index
    /// resolves to its linux/amd64 image, as go-containerregistry's `remote.Image` does. A layer
    /// declared or found bigger than `limit`, or whose bytes do not hash to its digest, is an
    /// error; what was written to `out` by then is for the caller to discard.
    pub async fn download_layer<W: AsyncWrite + Unpin>(
        &self,
        artifact: &OciReference,
        media_type: Option<&str>,
        limit: u64,
        out: &mut W,
    ) -> Result<DownloadedLayer, RegistryError> {
        let repo = self.resolve(&artifact.repository);
        let mut node = self.fetch_node(&repo, &artifact.reference, false).await?;
        if is_index(&node.media_type) {
            let child = default_platform(&node).ok_or_else(|| RegistryError::NotFound {
                url: format!("{}/manifests/{}", repo.base(), artifact.reference),
            })?;
            node = self.fetch_node(&repo, &child, false).await?;
        }
        let invalid = |message: String| RegistryError::Invalid {
            url: artifact.to_string(),
            message,
        };
        let layers = node.json["layers"].as_array().cloned().unwrap_or_default();
        if layers.is_empty() {
            return Err(invalid("image has no layers".into()));
        }
        let layer = match media_type {
            Some(wanted) => layers
                .iter()
                .find(|l| l["mediaType"].as_str() == Some(wanted))
                .ok_or_else(|| invalid(format!("no layer found with media type {wanted:?}")))?,
            None => &layers[0],
        };
        let blob = descriptor(&artifact.to_string(), layer)?;
        if blob.size > limit {
            return Err(invalid(format!(
                "layer size {} exceeds maximum allowed size of {limit} bytes",
                blob.size
            )));
        }
        let url = format!("{}/blobs/{}", repo.base(), blob.digest);
        let mut resp = self
            .transfer_request(&repo, Method::GET, &url, &[(header::ACCEPT, "*/*")], Payload::Empty)
            .await?;
        let (algorithm, _) = parse_digest(&blob.digest).ok_or_else(|| invalid("bad layer digest".into()))?;
        let mut hasher = Hasher::new(algorithm);
        let mut total = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| RegistryError::Transient {
            url: url.clone(),
            message: format!("reading the layer: {}", without_url(&e)),
            attempts: 1,
        })? {
            total += chunk.len() as u64;
            if total > limit || total > blob.size {
                return Err(invalid(format!(
                    "the layer's bytes exceed {} (its declared size {}, the limit {limit})",
                    total.min(limit.min(blob.size)),
                    blob.size
                )));
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(|e| RegistryError::Invalid {
                url: url.clone(),
                message: format!("writing the layer: {e}"),
            })?;
        }
        let actual = hasher.finish();
        if actual != blob.digest || total != blob.size {
            return Err(RegistryError::Invalid {
                url,
                message: format!(
                    "the layer's bytes ({total} bytes, {actual}) are not what the manifest names ({} bytes, {})",
                    blob.size, blob.digest
                ),
            });
        }
        out.flush().await.map_err(|e| RegistryError::Invalid {
            url,
            message: format!("writing the layer: {e}"),
        })?;
        Ok(DownloadedLayer {
            digest: blob.digest,
            media_type: layer["mediaType"].as_str().unwrap_or_default().to_string(),
            size: total,
        })
    }

    /// Kargo's oci-push: copies `source` (an image, a chart or an index with its children) to
    /// the tag `dest` names, blobs first (already present: skipped; same host: mounted), an
    /// index's children before the index. `annotations` are Kargo's (`index:` / `manifest:`
    /// scopes; unscoped keys go on image manifests); with none, the manifests are copied byte
    /// for byte and the digest is unchanged. Between different repositories, the blobs'
    /// declared sizes may total at most `limit` bytes (checked before anything is sent).
    pub async fn copy_artifact(
        &self,
        source: &OciReference,
        dest: &OciReference,
        annotations: &BTreeMap<String, String>,
        limit: u64,
    ) -> Result<Copied, RegistryError> {
        let tag = dest.tag().ok_or_else(|| RegistryError::Invalid {
            url: dest.to_string(),
            message: "the destination must name a tag".into(),
        })?;
        let src = self.resolve(&source.repository);
        let dst = self.resolve(&dest.repository);
        let mut root = self.fetch_node(&src, &source.reference, true).await?;
        let same_repo = src.host == dst.host && src.path == dst.path;
        if !same_repo {
            let mut seen = HashSet::new();
            let total: u64 = blobs_of(&root)
                .filter(|b| seen.insert(b.digest.clone()))
                .map(|b| b.size)
                .fold(0, u64::saturating_add);
            if total > limit {
                return Err(RegistryError::Invalid {
                    url: source.to_string(),
                    message: format!(
                        "compressed artifact size {total} bytes exceeds maximum allowed size of {limit} bytes"
                    ),
                });
            }
        }
        annotate(&mut root, annotations)?;
        let mut copied = Copied {
            digest: root.digest.clone(),
            bytes_uploaded: 0,
        };
        let mut done = HashSet::new();
        self.push_node(&src, &dst, &root, tag, same_repo, &mut done, &mut copied)
            .await?;
        Ok(copied)
    }

    /// A manifest and, for an index, its children (with `recurse`; otherwise only its own JSON).
    async fn fetch_node(&self, repo: &RepoRef, reference: &str, recurse: bool) -> Result<Node, RegistryError> {
        let mut budget = MAX_MANIFESTS;
        self.fetch_tree(repo, reference, recurse, 0, &mut budget).await
    }

    fn fetch_tree<'a>(
        &'a self,
        repo: &'a RepoRef,
        reference: &'a str,
        recurse: bool,
        depth: usize,
        budget: &'a mut usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Node, RegistryError>> + Send + 'a>> {
        Box::pin(async move {
            let url = format!("{}/manifests/{reference}", repo.base());
            let invalid = |message: String| RegistryError::Invalid {
                url: url.clone(),
                message,
            };
            *budget = budget
                .checked_sub(1)
                .ok_or_else(|| invalid(format!("the artifact has more than {MAX_MANIFESTS} manifests")))?;
            let fetched = self.manifest(repo, reference).await?;
            let json: Json = super::parse_json(&url, &fetched.body)?;
            let media_type = media_type_of(&json).ok_or_else(|| {
                invalid(format!(
                    "unsupported media type {:?}: only OCI and Docker v2 images and indexes can be copied",
                    json["mediaType"].as_str().unwrap_or("")
                ))
            })?;
            let mut node = Node {
                media_type,
                digest: fetched.digest.unwrap_or_default(),
                body: fetched.body,
                json,
                children: Vec::new(),
                blobs: Vec::new(),
            };
            if is_index(&node.media_type) {
                if recurse {
                    if depth >= MAX_NESTING {
                        return Err(invalid(format!("indexes nest deeper than {MAX_NESTING} levels")));
                    }
                    let entries = node.json["manifests"].as_array().cloned().unwrap_or_default();
                    for entry in &entries {
                        let child = descriptor(&url, entry)?;
                        node.children
                            .push(self.fetch_tree(repo, &child.digest, true, depth + 1, budget).await?);
                    }
                }
            } else {
                let config = std::iter::once(&node.json["config"]);
                let layers = node.json["layers"].as_array().into_iter().flatten();
                node.blobs = config
                    .chain(layers)
                    .map(|d| descriptor(&url, d))
                    .collect::<Result<_, _>>()?;
            }
            Ok(node)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn push_node<'a>(
        &'a self,
        src: &'a RepoRef,
        dst: &'a RepoRef,
        node: &'a Node,
        reference: &'a str,
        same_repo: bool,
        done: &'a mut HashSet<String>,
        copied: &'a mut Copied,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RegistryError>> + Send + 'a>> {
        Box::pin(async move {
            for child in &node.children {
                if !done.contains(&child.digest) {
                    self.push_node(src, dst, child, &child.digest, same_repo, done, copied)
                        .await?;
                }
            }
            if !same_repo {
                for blob in &node.blobs {
                    if done.insert(blob.digest.clone()) {
                        copied.bytes_uploaded += self.copy_blob(src, dst, blob).await?;
                    }
                }
            }
            let url = format!("{}/manifests/{reference}", dst.base());
            self.transfer_request(
                dst,
                Method::PUT,
                &url,
                &[(header::CONTENT_TYPE, node.media_type.as_str())],
                Payload::Bytes(&node.body),
            )
            .await?;
            done.insert(node.digest.clone());
            Ok(())
        })
    }

    /// One blob into `dst`: nothing if it is there, a cross-repository mount on the same host,
    /// else streamed from `src` in chunks. Returns the bytes uploaded.
    async fn copy_blob(&self, src: &RepoRef, dst: &RepoRef, blob: &Blob) -> Result<u64, RegistryError> {
        let head = format!("{}/blobs/{}", dst.base(), blob.digest);
        match self
            .transfer_request(dst, Method::HEAD, &head, &[], Payload::Empty)
            .await
        {
            Ok(_) => return Ok(0),
            Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut start = format!("{}/blobs/uploads/", dst.base());
        if src.host == dst.host {
            start.push_str(&format!("?mount={}&from={}", blob.digest, src.path));
        }
        let started = self
            .transfer_request(dst, Method::POST, &start, &[], Payload::Empty)
            .await?;
        if started.status() == StatusCode::CREATED {
            return Ok(0);
        }
        let mut location = upload_location(dst, &started, &start)?;
        let get = format!("{}/blobs/{}", src.base(), blob.digest);
        let mut resp = self
            .transfer_request(src, Method::GET, &get, &[(header::ACCEPT, "*/*")], Payload::Empty)
            .await?;
        let mut buffer: Vec<u8> = Vec::with_capacity(CHUNK.min(usize::try_from(blob.size).unwrap_or(CHUNK)));
        let mut sent = 0u64;
        loop {
            let chunk = resp.chunk().await.map_err(|e| RegistryError::Transient {
                url: get.clone(),
                message: format!("reading the blob: {}", without_url(&e)),
                attempts: 1,
            })?;
            let end = chunk.is_none();
            if let Some(chunk) = chunk {
                if sent + (buffer.len() + chunk.len()) as u64 > blob.size {
                    return Err(RegistryError::Invalid {
                        url: get,
                        message: format!("the blob is bigger than its declared {} bytes", blob.size),
                    });
                }
                buffer.extend_from_slice(&chunk);
            }
            if buffer.len() >= CHUNK && !end {
                let range = format!("{sent}-{}", sent + buffer.len() as u64 - 1);
                let patched = self
                    .transfer_request(
                        dst,
                        Method::PATCH,
                        &location,
                        &[
                            (header::CONTENT_TYPE, "application/octet-stream"),
                            (header::CONTENT_RANGE, range.as_str()),
                        ],
                        Payload::Bytes(&buffer),
                    )
                    .await?;
                location = upload_location(dst, &patched, &location)?;
                sent += buffer.len() as u64;
                buffer.clear();
            }
            if end {
                break;
            }
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let finish = format!("{location}{sep}digest={}", blob.digest);
        self.transfer_request(
            dst,
            Method::PUT,
            &finish,
            &[(header::CONTENT_TYPE, "application/octet-stream")],
            Payload::Bytes(&buffer),
        )
        .await?;
        Ok(sent + buffer.len() as u64)
    }

    /// One request through the shared path (rate limit, credentials, bearer tokens for the
    /// scope the registry asks — push scope for writes —, counting), under the retry policy
    /// (`barge_core::retry`) like discovery's. Success answers are returned unread, for streaming.
    async fn transfer_request(
        &self,
        repo: &RepoRef,
        method: Method,
        url: &str,
        headers: &[(header::HeaderName, &str)],
        payload: Payload<'_>,
    ) -> Result<Response, RegistryError> {
        barge_core::retry::retry(
            &self.inner.config.retry_policy(),
            tokio::time::sleep,
            fastrand::u64(..),
            |attempt| self.transfer_attempt(repo, &method, url, headers, payload, attempt),
            |_| true,
            |failed: &Failed, attempt, wait| {
                tracing::warn!(%url, attempt, ?wait, error = %failed.error, "Registry request failed; retrying.");
            },
        )
        .await
        .map_err(|failed| failed.error)
    }

    /// One attempt at a transfer request; a `401` challenge is answered within it.
    async fn transfer_attempt(
        &self,
        repo: &RepoRef,
        method: &Method,
        url: &str,
        headers: &[(header::HeaderName, &str)],
        payload: Payload<'_>,
        attempt: u32,
    ) -> Result<Response, Failed> {
        let mut challenge_answered = false;
        loop {
            self.wait_for_slot(&repo.host).await;
            let mut req = self.inner.http.request(method.clone(), url);
            for (name, value) in headers {
                req = req.header(name, *value);
            }
            if let Payload::Bytes(bytes) = payload {
                req = req.body(bytes.to_vec());
            } else if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
                req = req.header(header::CONTENT_LENGTH, "0");
            }
            if let Some(value) = self.authorization(repo).await {
                req = req.header(header::AUTHORIZATION, value);
            }
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            let resp = req.send().await.map_err(|e| RegistryError::Transient {
                url: url.to_string(),
                message: without_url(&e),
                attempts: attempt,
            })?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            let write = !matches!(*method, Method::GET | Method::HEAD);
            match status {
                StatusCode::UNAUTHORIZED if !challenge_answered => {
                    challenge_answered = true;
                    let challenge = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    self.answer_challenge(repo, url, &challenge, attempt).await?;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let has_creds = self.credentials(repo).await.is_some();
                    let message = match (has_creds, write) {
                        (false, _) => "the registry requires credentials and none are configured (docker config.json, a credential helper, or a barge credential rule)".to_string(),
                        (true, true) => format!("the registry refused the push (HTTP {}): check that the credentials are right and may push to this repository", status.as_u16()),
                        (true, false) => "the registry rejected the credentials (check the username and password or token)".to_string(),
                    };
                    return Err(RegistryError::Auth {
                        url: url.to_string(),
                        message,
                    }
                    .into());
                }
                StatusCode::NOT_FOUND => return Err(RegistryError::NotFound { url: url.to_string() }.into()),
                s if is_retryable_status(s) => return Err(Failed::status(url, s, resp.headers(), attempt)),
                s => {
                    let what = if write { "refused the write" } else { "answered" };
                    return Err(RegistryError::Invalid {
                        url: url.to_string(),
                        message: format!("the registry {what} with HTTP {s}: {}", error_text(resp).await),
                    }
                    .into());
                }
            }
        }
    }
}

/// The start of an error body, read no further than needed.
async fn error_text(mut resp: Response) -> String {
    let mut body = Vec::new();
    while body.len() < 512 {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).chars().take(200).collect()
}

/// Where an upload continues (`Location`, relative or absolute).
fn upload_location(repo: &RepoRef, resp: &Response, url: &str) -> Result<String, RegistryError> {
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Invalid {
            url: url.to_string(),
            message: "the registry started an upload without a Location".into(),
        })?;
    Ok(absolute(repo.scheme, &repo.host, location))
}

/// A descriptor's digest and size, refused when malformed.
fn descriptor(url: &str, d: &Json) -> Result<Blob, RegistryError> {
    let digest = d["digest"].as_str().filter(|d| parse_digest(d).is_some());
    match (digest, d["size"].as_u64()) {
        (Some(digest), Some(size)) => Ok(Blob {
            digest: digest.to_string(),
            size,
        }),
        _ => Err(RegistryError::Invalid {
            url: url.to_string(),
            message: "a descriptor without a valid digest and size".into(),
        }),
    }
}

/// The manifest's media type: its `mediaType`, or (the field is optional in OCI) its shape.
fn media_type_of(json: &Json) -> Option<String> {
    match json["mediaType"].as_str() {
        Some(t @ (OCI_INDEX | OCI_MANIFEST | DOCKER_LIST | DOCKER_MANIFEST)) => Some(t.to_string()),
        Some(_) => None,
        None if json["manifests"].is_array() => Some(OCI_INDEX.into()),
        None if json["config"].is_object() => Some(OCI_MANIFEST.into()),
        None => None,
    }
}

fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_LIST)
}

/// The linux/amd64 entry of an index (go-containerregistry's default platform).
fn default_platform(index: &Node) -> Option<String> {
    index.json["manifests"].as_array()?.iter().find_map(|m| {
        let p = &m["platform"];
        (p["os"] == "linux" && p["architecture"] == "amd64")
            .then(|| m["digest"].as_str().map(str::to_string))
            .flatten()
    })
}

fn blobs_of(node: &Node) -> Box<dyn Iterator<Item = &Blob> + '_> {
    Box::new(node.blobs.iter().chain(node.children.iter().flat_map(blobs_of)))
}

/// Kargo's annotations (its `pkg/image/mutate`): `index:` keys on the index, `manifest:` and
/// unscoped keys on each image manifest; an index's entries then name the changed children.
fn annotate(node: &mut Node, annotations: &BTreeMap<String, String>) -> Result<(), RegistryError> {
    let mut index = Map::new();
    let mut manifest = Map::new();
    for (k, v) in annotations {
        if let Some(k) = k.strip_prefix("index:") {
            index.insert(k.to_string(), Json::String(v.clone()));
        } else {
            let k = k.strip_prefix("manifest:").unwrap_or(k);
            manifest.insert(k.to_string(), Json::String(v.clone()));
        }
    }
    annotate_node(node, &index, &manifest)
}

fn annotate_node(
    node: &mut Node,
    index: &Map<String, Json>,
    manifest: &Map<String, Json>,
) -> Result<(), RegistryError> {
    if is_index(&node.media_type) {
        let mut changed = false;
        if !manifest.is_empty() {
            for child in &mut node.children {
                let before = child.digest.clone();
                // Nested indexes get only the manifest scope; the index scope is the top's.
                annotate_node(child, &Map::new(), manifest)?;
                if let Some(entry) = node.json["manifests"]
                    .as_array_mut()
                    .and_then(|es| es.iter_mut().find(|e| e["digest"] == before.as_str()))
                {
                    entry["digest"] = Json::String(child.digest.clone());
                    entry["size"] = Json::from(child.body.len());
                    changed = true;
                }
            }
        }
        if !index.is_empty() {
            merge_annotations(&mut node.json, index);
            changed = true;
        }
        if changed {
            reserialize(node)?;
        }
    } else if !manifest.is_empty() {
        merge_annotations(&mut node.json, manifest);
        reserialize(node)?;
    }
    Ok(())
}

fn merge_annotations(json: &mut Json, values: &Map<String, Json>) {
    let Some(object) = json.as_object_mut() else { return };
    let annotations = object.entry("annotations").or_insert_with(|| Json::Object(Map::new()));
    if let Some(a) = annotations.as_object_mut() {
        a.extend(values.clone());
    } else {
        *annotations = Json::Object(values.clone());
    }
}

fn reserialize(node: &mut Node) -> Result<(), RegistryError> {
    node.body = serde_json::to_vec(&node.json).map_err(|e| RegistryError::Invalid {
        url: node.digest.clone(),
        message: format!("cannot write the annotated manifest: {e}"),
    })?;
    node.digest = content_digest(DigestAlgorithm::Sha256, &node.body);
    Ok(())
}

/// An incremental digest for the algorithms `parse_digest` accepts.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: DigestAlgorithm) -> Hasher {
        use sha2::Digest;
        match algorithm {
            DigestAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            DigestAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        use sha2::Digest;
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", super::hex(&h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", super::hex(&h.finalize())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_as_kargo_writes_them() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = OciReference::parse("oci://127.0.0.1:5000/charts/app:1.2.3").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag()),
            ("127.0.0.1:5000/charts/app", Some("1.2.3"))
        );
        let r = OciReference::parse(&format!("ghcr.io/acme/app@{digest}")).unwrap();
        assert_eq!((r.repository.as_str(), r.tag()), ("ghcr.io/acme/app", None));
        assert_eq!(r.to_string(), format!("ghcr.io/acme/app@{digest}"));
        let r = OciReference::parse("localhost:5000/app").unwrap();
        assert_eq!((r.repository.as_str(), r.tag()), ("localhost:5000/app", Some("latest")));
        for bad in [
            "ghcr.io/acme/app@sha256:abc",
            "ghcr.io/acme/app:-x",
            "oci://",
            "ghcr.io/acme/:v1",
        ] {
            assert!(OciReference::parse(bad).is_err(), "{bad}");
        }
    }
}
