//! Image discovery: a subscription's candidates, best first, with the fewest requests.
//!
//! One tag listing (all its pages), then for SemVer and Lexical one HEAD per candidate (at most
//! `discoveryLimit`); Digest one HEAD; NewestBuild one HEAD per allowed tag plus the manifest
//! and config of digests not seen before (build times are cached by digest). A `platform`
//! needs the manifest (to pick the entry of an index), so it costs a GET instead of a HEAD.

use crate::client::{Fetched, parse_json};
use crate::{Registry, RegistryError, RepoRef};
use barge_core::model::kargo::ImageSubscription;
use barge_core::select::{ImagePolicy, ImageStrategy, rank_by_created};
use serde::Serialize;
use std::collections::BTreeMap;

/// One candidate image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiscoveredImage {
    pub tag: String,
    /// The digest the tag points at (an index's digest for multi-platform images).
    pub digest: String,
    /// Build time (RFC 3339, UTC), where it was read (NewestBuild, or with a platform).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
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
    /// Requests this discovery sent.
    pub requests: u64,
    /// The registry's own rate limit, when it reports one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::RateLimitStatus>,
}

/// Discovers one image subscription.
pub async fn discover_image(reg: &Registry, sub: &ImageSubscription) -> Result<ImageDiscovery, RegistryError> {
    let before = reg.requests();
    let policy = ImagePolicy::new(sub).map_err(|message| RegistryError::Invalid {
        url: sub.repo_url.clone(),
        message,
    })?;
    let repo = reg.resolve(&sub.repo_url);
    let tags = reg.list_tags(&repo).await?;
    let eligible = policy.candidates(&tags);
    let need_created = policy.strategy == ImageStrategy::NewestBuild;
    let resolved = resolve_all(reg, &repo, &policy, &eligible, need_created).await?;
    let candidates = if need_created {
        let ranked = rank_by_created(
            resolved.iter().map(|i| (i.tag.clone(), i.created.clone())).collect(),
            policy.limit,
        );
        ranked
            .into_iter()
            .filter_map(|(tag, _)| resolved.iter().find(|i| i.tag == tag).cloned())
            .collect()
    } else {
        resolved
    };
    Ok(ImageDiscovery {
        repo_url: sub.repo_url.clone(),
        strategy: format!("{:?}", policy.strategy),
        tags_listed: tags.len(),
        tags_eligible: eligible.len(),
        candidates,
        requests: reg.requests() - before,
        rate_limit: reg.rate_limit_status(&repo.host).await,
    })
}

/// How many tags are resolved at once (the rate limit still applies).
const CONCURRENCY: usize = 8;

/// Resolves tags concurrently, keeping their order; tags without the platform drop out.
async fn resolve_all(
    reg: &Registry,
    repo: &RepoRef,
    policy: &ImagePolicy,
    tags: &[String],
    need_created: bool,
) -> Result<Vec<DiscoveredImage>, RegistryError> {
    let mut results: Vec<Option<DiscoveredImage>> = vec![None; tags.len()];
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < tags.len() || !set.is_empty() {
        while next < tags.len() && set.len() < CONCURRENCY {
            let (reg, repo, policy, tag, i) = (reg.clone(), repo.clone(), policy.clone(), tags[next].clone(), next);
            set.spawn(async move { (i, resolve_tag(&reg, &repo, &policy, &tag, need_created).await) });
            next += 1;
        }
        if let Some(joined) = set.join_next().await {
            let (i, result) = joined.map_err(|e| RegistryError::Invalid {
                url: repo.original.clone(),
                message: format!("discovery task failed: {e}"),
            })?;
            results[i] = result?;
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// A tag's digest (and build time when needed); `None` when a platform was asked for and the
/// image has none for it.
async fn resolve_tag(
    reg: &Registry,
    repo: &RepoRef,
    policy: &ImagePolicy,
    tag: &str,
    need_created: bool,
) -> Result<Option<DiscoveredImage>, RegistryError> {
    let tag_key = (repo.original.clone(), tag.to_string());
    if policy.cache_by_tag
        && let Some((digest, created)) = reg.tag_cache().lock().await.get(&tag_key).cloned()
    {
        // cacheByTag: the user vouches that tags are immutable; no request at all.
        return Ok(Some(DiscoveredImage {
            tag: tag.to_string(),
            digest,
            created,
            annotations: BTreeMap::new(),
        }));
    }
    if policy.platform.is_none() && !need_created {
        let digest = reg.head_digest(repo, tag).await?;
        if policy.cache_by_tag {
            reg.tag_cache().lock().await.insert(tag_key, (digest.clone(), None));
        }
        return Ok(Some(DiscoveredImage {
            tag: tag.to_string(),
            digest,
            created: None,
            annotations: BTreeMap::new(),
        }));
    }
    if policy.platform.is_none() {
        // NewestBuild: the digest first; a digest seen before needs nothing more.
        let digest = reg.head_digest(repo, tag).await?;
        if let Some(created) = reg.inner_created(&digest).await {
            return Ok(Some(DiscoveredImage {
                tag: tag.to_string(),
                digest,
                created,
                annotations: BTreeMap::new(),
            }));
        }
    }
    let top = reg.manifest(repo, tag).await?;
    let digest = top.digest.clone().unwrap_or_default();
    let annotations = manifest_annotations(&top);
    let image_manifest = match pick_platform(&top, policy.platform.as_deref()) {
        Pick::Image => top,
        Pick::Child(child) => reg.manifest(repo, &child).await?,
        Pick::Missing => return Ok(None),
    };
    let created = if need_created || policy.platform.is_some() {
        config_created(reg, repo, &image_manifest).await?
    } else {
        None
    };
    reg.remember_created(&digest, created.clone()).await;
    if policy.cache_by_tag {
        reg.tag_cache()
            .lock()
            .await
            .insert(tag_key, (digest.clone(), created.clone()));
    }
    Ok(Some(DiscoveredImage {
        tag: tag.to_string(),
        digest,
        created,
        annotations,
    }))
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
    use barge_core::semver::{Constraint, Version};
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
    let mut versions: Vec<(Version, String)> = raw_versions
        .into_iter()
        .filter_map(|v| Version::parse(&v, false).ok().map(|p| (p, v)))
        .filter(|(v, _)| constraint.as_ref().map_or(v.pre.is_empty(), |c| c.matches(v)))
        .collect();
    versions.sort_by(|(a, ta), (b, tb)| b.cmp(a).then_with(|| tb.cmp(ta)));
    versions.dedup_by(|a, b| a.1 == b.1);
    Ok(ChartDiscovery {
        repo_url: sub.repo_url.clone(),
        name,
        versions_listed: listed,
        versions: versions.into_iter().take(limit).map(|(_, v)| v).collect(),
        requests: reg.requests() - before,
    })
}
