//! Image discovery: a subscription's candidates, best first, with the fewest requests.
//!
//! One tag listing (all its pages), then for SemVer and Lexical one request per candidate (at
//! most `discoveryLimit`); Digest one; NewestBuild one per allowed tag plus the manifest and
//! config of digests not seen before (build times are cached by digest). A `platform` needs the
//! manifest (to pick the entry of an index), so it costs a GET instead of a HEAD.
//!
//! Tags a registry lists that cannot be OCI tags are skipped, and listed tags it then does not
//! have are treated as absent (the next ones are tried, up to discoveryLimit of them); both are
//! reported. The selected candidate's digest is always checked against manifest bytes (the
//! first candidate is fetched with a GET instead of a HEAD, once per new digest): a registry's
//! `Docker-Content-Digest` alone never reaches Freight.
//!
//! What a pass learned is remembered ([`ImageMemory`], per subscription, in the [`Registry`]
//! and, through the caller, in the store). The next pass sends the list's ETag back
//! (`If-None-Match`) or compares the list's hash. When the list is unchanged: with `cacheByTag`
//! (tags are immutable) the previous candidates are reused with no other request; without it,
//! SemVer, Lexical and Digest HEAD only the selected tag, and reuse the rest when it still
//! points at the same digest (a re-pushed selected tag is a full pass). NewestBuild without
//! `cacheByTag` resolves every tag each pass, as a re-push of any tag can change the order.
//! When the list changed, `cacheByTag` still spares a request for every tag already known.
//! A pass that found listed tags missing is never reused: a registry lists a tag while its
//! manifest is being pushed (or, eventually consistent, before the manifest can be read), and
//! the list stays the same once the manifest lands, so reusing that pass would pass over the
//! tag until some other tag is pushed.

use crate::client::{Fetched, TagListing, parse_json};
use crate::{Registry, RegistryError, RepoRef};
use barge_core::model::kargo::ImageSubscription;
use barge_core::select::{ImagePolicy, ImageStrategy, is_valid_tag, rank_by_created};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One candidate image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredImage {
    pub tag: String,
    /// The digest the tag points at (an index's digest for multi-platform images).
    pub digest: String,
    /// Build time (RFC 3339, UTC), where it was read (NewestBuild, or with a platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A listed tag discovery passed over, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedTag {
    /// The tag (its first 64 characters when longer).
    pub tag: String,
    pub reason: String,
}

/// At most this many skipped tags are reported (a hostile listing may hold thousands).
const SKIPPED_REPORTED: usize = 20;

impl SkippedTag {
    fn new(tag: &str, reason: String) -> SkippedTag {
        let shown: String = tag.chars().take(64).collect();
        SkippedTag {
            tag: if shown.len() < tag.len() {
                format!("{shown}…")
            } else {
                shown
            },
            reason,
        }
    }
}

/// What discovery found for one image subscription.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDiscovery {
    /// Not serialized: reports carry the subscription's `repoURL` beside this.
    #[serde(skip)]
    pub repo_url: String,
    pub strategy: String,
    /// Tags the registry listed.
    pub tags_listed: usize,
    /// Tags the selection rules let through before the discovery limit.
    pub tags_eligible: usize,
    /// Best first.
    pub candidates: Vec<DiscoveredImage>,
    /// Listed tags passed over: not valid tag names, or missing when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedTag>,
    /// True when the tag list had not changed and the previous candidates were reused.
    pub reused: bool,
    /// Requests this discovery sent.
    pub requests: u64,
    /// The registry's own rate limit, when it reports one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::RateLimitStatus>,
    /// What this pass learned, when it differs from what the previous pass had: for the
    /// caller to keep (the store), and to hand back with [`Registry::recall_image`].
    #[serde(skip)]
    pub learned: Option<ImageMemory>,
}

/// What a pass of one subscription learned, for the next pass to spend fewer requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageMemory {
    /// [`fingerprint`] of the subscription: memory only serves the same subscription.
    pub fingerprint: String,
    /// The tag list's ETag, sent back as `If-None-Match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_etag: Option<String>,
    /// SHA-256 of the tag list's pages.
    pub list_sha256: String,
    pub tags_listed: usize,
    pub tags_eligible: usize,
    pub skipped: Vec<SkippedTag>,
    /// Best first; the first one's digest was checked against its manifest's bytes.
    pub candidates: Vec<DiscoveredImage>,
    /// Every tag resolved (NewestBuild resolves every allowed tag), for `cacheByTag`.
    pub tags: BTreeMap<String, KnownTag>,
    /// Listed tags the registry had no manifest for when this pass asked: a pass with any is
    /// not reused (see the module's doc).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnownTag {
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The digest was checked against the manifest's bytes.
    #[serde(default)]
    pub verified: bool,
}

/// A subscription's identity for [`ImageMemory`]: SHA-256 of its configuration.
pub fn fingerprint(sub: &ImageSubscription) -> String {
    crate::client::content_digest(
        crate::client::DigestAlgorithm::Sha256,
        serde_json::to_string(sub).unwrap_or_default().as_bytes(),
    )
}

impl Registry {
    /// Hands discovery what an earlier pass learned (kept by the caller, e.g. in the store).
    pub async fn recall_image(&self, memory: ImageMemory) {
        self.image_memory()
            .lock()
            .await
            .insert(memory.fingerprint.clone(), memory);
    }
}

/// Discovers one image subscription.
pub async fn discover_image(reg: &Registry, sub: &ImageSubscription) -> Result<ImageDiscovery, RegistryError> {
    let before = reg.requests();
    let policy = ImagePolicy::new(sub).map_err(|message| RegistryError::Invalid {
        url: sub.repo_url.clone(),
        message,
    })?;
    let repo = reg.resolve(&sub.repo_url);
    let key = fingerprint(sub);
    let previous = reg.image_memory().lock().await.get(&key).cloned();
    let etag = previous.as_ref().and_then(|m| m.list_etag.as_deref());
    let listing = reg.list_tags_since(&repo, etag).await?;
    let unchanged = match (&listing, &previous) {
        (None, Some(_)) => true,
        (Some(l), Some(m)) => l.sha256 == m.list_sha256,
        (_, None) => false,
    };
    let reused = match previous.as_ref().filter(|m| unchanged && m.missing == 0) {
        Some(m) => reuse(reg, &repo, &policy, m).await?,
        None => None,
    };
    let memory = match reused.clone() {
        Some(m) => m,
        None => {
            let listing = match listing {
                Some(l) => l,
                // The list is unchanged but its tags are not what they were: list again.
                None => reg.list_tags_since(&repo, None).await?.unwrap_or_else(|| TagListing {
                    tags: Vec::new(),
                    etag: None,
                    sha256: String::new(),
                }),
            };
            let known = previous.as_ref().filter(|_| policy.cache_by_tag).map(|m| &m.tags);
            ImageMemory {
                fingerprint: key.clone(),
                ..full_pass(reg, &repo, &policy, listing, known).await?
            }
        }
    };
    let learned = (previous.as_ref() != Some(&memory)).then(|| memory.clone());
    if learned.is_some() {
        reg.image_memory().lock().await.insert(key, memory.clone());
    }
    Ok(ImageDiscovery {
        repo_url: sub.repo_url.clone(),
        strategy: format!("{:?}", policy.strategy),
        tags_listed: memory.tags_listed,
        tags_eligible: memory.tags_eligible,
        candidates: memory.candidates,
        skipped: memory.skipped,
        reused: reused.is_some(),
        requests: reg.requests() - before,
        rate_limit: reg.rate_limit_status(&repo.host).await,
        learned,
    })
}

/// The previous pass again, when the tag list has not changed (see the module's doc): `None`
/// when the selected tag moved or vanished, and a full pass is needed.
async fn reuse(
    reg: &Registry,
    repo: &RepoRef,
    policy: &ImagePolicy,
    previous: &ImageMemory,
) -> Result<Option<ImageMemory>, RegistryError> {
    let Some(selected) = previous.candidates.first() else {
        return Ok(Some(previous.clone()));
    };
    if policy.cache_by_tag {
        return Ok(Some(previous.clone()));
    }
    if policy.strategy == ImageStrategy::NewestBuild || policy.platform.is_some() {
        return Ok(None);
    }
    match reg.head_digest(repo, &selected.tag).await {
        Ok(digest) if digest == selected.digest => Ok(Some(previous.clone())),
        Ok(_) | Err(RegistryError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How a tag resolved.
enum Resolution {
    Found {
        image: DiscoveredImage,
        verified: bool,
    },
    /// A platform was asked for and the image has none for it.
    NoPlatform,
    /// Listed, but the registry has no manifest for it.
    Missing,
}

/// Lists, selects and resolves: the candidates from scratch (with `known` tags trusted).
async fn full_pass(
    reg: &Registry,
    repo: &RepoRef,
    policy: &ImagePolicy,
    listing: TagListing,
    known: Option<&BTreeMap<String, KnownTag>>,
) -> Result<ImageMemory, RegistryError> {
    let TagListing { mut tags, etag, sha256 } = listing;
    let tags_listed = tags.len();
    let mut skipped = Vec::new();
    let mut invalid = 0;
    tags.retain(|t| {
        let valid = is_valid_tag(t);
        if !valid {
            invalid += 1;
            if skipped.len() < SKIPPED_REPORTED {
                skipped.push(SkippedTag::new(
                    t,
                    format!("not a valid OCI tag name ({} characters)", t.chars().count()),
                ));
            }
        }
        valid
    });
    if invalid > 0 {
        tracing::warn!(repo = %repo.original, invalid, "The registry listed tags that cannot be tag names; skipped.");
    }
    let need_created = policy.strategy == ImageStrategy::NewestBuild;
    // Listed tags found missing are replaced by the next ones while no more than discoveryLimit
    // were: a listing of phantom tags cannot turn one pass into thousands of requests.
    let mut missing = 0;
    let mut wanted = policy.limit;
    let mut tried = 0;
    let mut resolved: Vec<(DiscoveredImage, bool)> = Vec::new();
    let mut eligible;
    loop {
        let order = policy.candidates_upto(&tags, wanted);
        eligible = order.len();
        let batch = &order[tried.min(order.len())..];
        // The first candidate is fetched whole when its digest is not known to be right.
        let verify_first = resolved.is_empty();
        let results = resolve_all(reg, repo, policy, batch, need_created, known, verify_first).await?;
        let mut missing_now = 0;
        for (tag, result) in batch.iter().zip(results) {
            match result {
                Resolution::Found { image, verified } => resolved.push((image, verified)),
                Resolution::NoPlatform => {}
                Resolution::Missing => {
                    missing_now += 1;
                    if skipped.len() < SKIPPED_REPORTED {
                        skipped.push(SkippedTag::new(
                            tag,
                            "listed, but the registry has no manifest for it".into(),
                        ));
                    }
                }
            }
        }
        tried = order.len();
        missing += missing_now;
        if need_created || missing_now == 0 || order.len() < wanted || missing > policy.limit {
            break;
        }
        wanted = tried + missing_now;
    }
    if need_created {
        let ranked = rank_by_created(
            resolved
                .iter()
                .map(|(i, _)| (i.tag.clone(), i.created.clone()))
                .collect(),
            policy.limit,
        );
        let mut by_tag: BTreeMap<String, (DiscoveredImage, bool)> =
            resolved.into_iter().map(|r| (r.0.tag.clone(), r)).collect();
        resolved = ranked.into_iter().filter_map(|(tag, _)| by_tag.remove(&tag)).collect();
    }
    let tags_known: BTreeMap<String, KnownTag> = resolved
        .iter()
        .map(|(i, verified)| {
            (
                i.tag.clone(),
                KnownTag {
                    digest: i.digest.clone(),
                    created: i.created.clone(),
                    verified: *verified,
                },
            )
        })
        .collect();
    let mut memory = ImageMemory {
        fingerprint: String::new(),
        list_etag: etag,
        list_sha256: sha256,
        tags_listed,
        tags_eligible: eligible,
        skipped,
        candidates: resolved.into_iter().map(|(i, _)| i).collect(),
        tags: tags_known,
        missing,
    };
    verify_selected(reg, repo, &mut memory).await?;
    Ok(memory)
}

/// Checks the selected candidate's digest against its manifest's bytes, unless it was.
async fn verify_selected(reg: &Registry, repo: &RepoRef, memory: &mut ImageMemory) -> Result<(), RegistryError> {
    let Some(selected) = memory.candidates.first() else {
        return Ok(());
    };
    let Some(known) = memory.tags.get_mut(&selected.tag) else {
        return Ok(());
    };
    if known.verified {
        return Ok(());
    }
    let fetched = reg.manifest(repo, &selected.tag).await?;
    let actual = fetched.digest.unwrap_or_default();
    if actual != selected.digest {
        return Err(RegistryError::Invalid {
            url: format!("{}/manifests/{}", repo.base(), selected.tag),
            message: format!(
                "the registry says tag {} is {}, but its manifest's bytes are {actual}: refusing a digest it cannot back",
                selected.tag, selected.digest
            ),
        });
    }
    known.verified = true;
    Ok(())
}

/// How many tags are resolved at once (the rate limit still applies).
const CONCURRENCY: usize = 8;

/// Resolves tags concurrently, keeping their order.
async fn resolve_all(
    reg: &Registry,
    repo: &RepoRef,
    policy: &ImagePolicy,
    tags: &[String],
    need_created: bool,
    known: Option<&BTreeMap<String, KnownTag>>,
    verify_first: bool,
) -> Result<Vec<Resolution>, RegistryError> {
    let mut results: Vec<Option<Resolution>> = (0..tags.len()).map(|_| None).collect();
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < tags.len() || !set.is_empty() {
        while next < tags.len() && set.len() < CONCURRENCY {
            let i = next;
            let tag = tags[i].clone();
            let known = known.and_then(|k| k.get(&tag)).cloned();
            let (reg, repo, policy) = (reg.clone(), repo.clone(), policy.clone());
            let fetch = verify_first && i == 0;
            set.spawn(async move {
                let resolution = match known {
                    // cacheByTag: the user vouches that tags are immutable; no request at all.
                    Some(k) => Ok(Resolution::Found {
                        image: DiscoveredImage {
                            tag,
                            digest: k.digest,
                            created: k.created,
                            annotations: BTreeMap::new(),
                        },
                        verified: k.verified,
                    }),
                    None => resolve_tag(&reg, &repo, &policy, &tag, need_created, fetch).await,
                };
                (i, resolution)
            });
            next += 1;
        }
        if let Some(joined) = set.join_next().await {
            let (i, result) = joined.map_err(|e| RegistryError::Invalid {
                url: repo.original.clone(),
                message: format!("discovery task failed: {e}"),
            })?;
            results[i] = Some(match result {
                Err(RegistryError::NotFound { .. }) => Resolution::Missing,
                other => other?,
            });
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// A tag's digest (and build time when needed). With `fetch`, the manifest is fetched (and
/// its bytes hashed) rather than HEADed.
async fn resolve_tag(
    reg: &Registry,
    repo: &RepoRef,
    policy: &ImagePolicy,
    tag: &str,
    need_created: bool,
    fetch: bool,
) -> Result<Resolution, RegistryError> {
    let found = |digest: String, created: Option<String>, annotations, verified| {
        Ok(Resolution::Found {
            image: DiscoveredImage {
                tag: tag.to_string(),
                digest,
                created,
                annotations,
            },
            verified,
        })
    };
    if policy.platform.is_none() && !need_created {
        if fetch {
            let m = reg.manifest(repo, tag).await?;
            return found(m.digest.unwrap_or_default(), None, BTreeMap::new(), true);
        }
        return found(reg.head_digest(repo, tag).await?, None, BTreeMap::new(), false);
    }
    if policy.platform.is_none() {
        // NewestBuild: the digest first; a digest seen before needs nothing more.
        let digest = reg.head_digest(repo, tag).await?;
        // Build times are remembered only for digests read from their manifest's bytes.
        if let Some(created) = reg.inner_created(&digest).await {
            return found(digest, created, BTreeMap::new(), true);
        }
    }
    let top = reg.manifest(repo, tag).await?;
    let digest = top.digest.clone().unwrap_or_default();
    let annotations = manifest_annotations(&top);
    let image_manifest = match pick_platform(&top, policy.platform.as_deref()) {
        Pick::Image => top,
        Pick::Child(child) => reg.manifest(repo, &child).await?,
        Pick::Missing => return Ok(Resolution::NoPlatform),
    };
    let created = if need_created || policy.platform.is_some() {
        config_created(reg, repo, &image_manifest).await?
    } else {
        None
    };
    reg.remember_created(&digest, created.clone()).await;
    found(digest, created, annotations, true)
}

enum Pick {
    /// The manifest is a single image.
    Image,
    /// The digest of the index entry for the platform.
    Child(String),
    /// An index without the platform.
    Missing,
}

fn pick_platform(m: &Fetched, platform: Option<&str>) -> Pick {
    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap_or_default();
    let Some(entries) = v["manifests"].as_array() else {
        return Pick::Image;
    };
    // Without a platform, Kargo uses the controller's own; barge's default is linux/amd64.
    let want = platform.unwrap_or("linux/amd64");
    let mut parts = want.split('/');
    let (os, arch, variant) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
    entries
        .iter()
        .find(|e| {
            let p = &e["platform"];
            p["os"] == os && p["architecture"] == arch && variant.is_none_or(|v| p["variant"] == v)
        })
        .and_then(|e| e["digest"].as_str())
        .map_or(Pick::Missing, |d| Pick::Child(d.to_string()))
}

fn manifest_annotations(m: &Fetched) -> BTreeMap<String, String> {
    let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap_or_default();
    v["annotations"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The build time of an image: the OCI `org.opencontainers.image.created` annotation, the
/// label-schema build date, or the config's `created`, normalised to UTC.
async fn config_created(reg: &Registry, repo: &RepoRef, manifest: &Fetched) -> Result<Option<String>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        config: Option<Descriptor>,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
    }
    let m: Manifest = parse_json(&repo.original, &manifest.body)?;
    if let Some(c) = m
        .annotations
        .get("org.opencontainers.image.created")
        .and_then(|c| normalise_time(c))
    {
        return Ok(Some(c));
    }
    let Some(config) = m.config else { return Ok(None) };
    let blob = reg.blob(repo, &config.digest).await?;
    let v: serde_json::Value = serde_json::from_slice(&blob.body).unwrap_or_default();
    let label = v["config"]["Labels"]["org.label-schema.build-date"]
        .as_str()
        .or(v["config"]["Labels"]["org.opencontainers.image.created"].as_str());
    Ok(label
        .and_then(normalise_time)
        .or_else(|| v["created"].as_str().and_then(normalise_time)))
}

fn normalise_time(s: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.9fZ")
            .to_string(),
    )
}

impl Registry {
    pub(crate) async fn inner_created(&self, digest: &str) -> Option<Option<String>> {
        self.created_cache().lock().await.get(digest).cloned()
    }

    pub(crate) async fn remember_created(&self, digest: &str, created: Option<String>) {
        self.created_cache().lock().await.insert(digest.to_string(), created);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_normalise_to_comparable_utc() {
        assert_eq!(
            normalise_time("2026-01-01T01:00:00+01:00").unwrap(),
            "2026-01-01T00:00:00.000000000Z"
        );
        assert!(normalise_time("2026-01-01T00:00:00.5Z").unwrap() > normalise_time("2026-01-01T00:00:00Z").unwrap());
        assert_eq!(normalise_time("yesterday"), None);
    }
}

/// What discovery found for one chart subscription.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartDiscovery {
    /// Not serialized: reports carry the subscription's `repoURL` beside this.
    #[serde(skip)]
    pub repo_url: String,
    pub name: String,
    /// Versions the repository lists.
    pub versions_listed: usize,
    /// Matching versions, newest first, at most discoveryLimit.
    pub versions: Vec<String>,
    pub requests: u64,
}

/// Discovers a chart subscription: a classic HTTP(S) repository (its `index.yaml`) or an
/// `oci://` repository (its tags; Helm writes a version's `+` as `_` in tags).
pub async fn discover_chart(
    reg: &Registry,
    sub: &barge_core::model::kargo::ChartSubscription,
) -> Result<ChartDiscovery, RegistryError> {
    use barge_core::semver::Constraint;
    let before = reg.requests();
    let invalid = |message: String| RegistryError::Invalid {
        url: sub.repo_url.clone(),
        message,
    };
    let constraint = sub
        .semver_constraint
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .map(Constraint::parse)
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    let limit = barge_core::select::discovery_limit(sub.discovery_limit);
    let (name, raw_versions) = if let Some(reference) = sub.repo_url.strip_prefix("oci://") {
        let repo = reg.resolve(reference);
        let name = reference.rsplit('/').next().unwrap_or(reference).to_string();
        let tags = reg.list_tags(&repo).await?;
        (name, tags.into_iter().map(|t| t.replace('_', "+")).collect::<Vec<_>>())
    } else {
        let name = sub
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("a chart from an HTTP(S) repository needs `name`".into()))?;
        let index_url = format!("{}/index.yaml", sub.repo_url.trim_end_matches('/'));
        let body = reg.get_document(&sub.repo_url, &index_url).await?;
        let index: serde_json::Value = yaml_serde::from_slice(&body).map_err(|e| RegistryError::Invalid {
            url: index_url.clone(),
            message: format!("index.yaml does not parse: {e}"),
        })?;
        let entries = index["entries"][&name]
            .as_array()
            .ok_or_else(|| RegistryError::NotFound {
                url: format!("{index_url} (chart {name:?})"),
            })?;
        (
            name,
            entries
                .iter()
                .filter_map(|e| e["version"].as_str().map(str::to_string))
                .collect(),
        )
    };
    let listed = raw_versions.len();
    // An index may list a version twice; it is one candidate.
    let mut distinct = raw_versions;
    distinct.sort_unstable();
    distinct.dedup();
    let versions = barge_core::select::newest_versions(distinct, |v| v.as_str(), false, constraint.as_ref(), limit);
    Ok(ChartDiscovery {
        repo_url: sub.repo_url.clone(),
        name,
        versions_listed: listed,
        versions,
        requests: reg.requests() - before,
    })
}
