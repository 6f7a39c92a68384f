//! `barge discover`: one discovery pass over Warehouses, without a daemon: per subscription
//! the candidates considered, and the Freight it would mint.

use crate::error::{EngineError, not_found};
use barge_core::Catalog;
use barge_core::criteria::{self, MintDecision};
use barge_core::model::Body;
use barge_core::model::kargo::{Chart, GitCommit, Image};
use barge_git::discover::{GitConfig, GitDiscovery, discover_git};
use barge_registry::discover::{ChartDiscovery, ImageDiscovery, discover_chart, discover_image};
use barge_registry::{Registry, RegistryConfig};
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseReport {
    pub project: String,
    pub warehouse: String,
    pub subscriptions: Vec<SubscriptionReport>,
    /// The Freight this pass would mint (or did, with `--db`), or why none.
    pub freight: Option<serde_json::Value>,
    /// With `--db`: `created`, or `existing` when the store already had this Freight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_freight_reason: Option<String>,
    /// The creation criteria could not be evaluated (a failure, unlike "false").
    #[serde(skip)]
    pub criteria_failed: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionReport {
    pub kind: &'static str,
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageDiscovery>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitDiscovery>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub chart: Option<ChartDiscovery>,
    /// A failure (with its class: transient, rate-limited, auth, not-found, invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SubscriptionReport {
    fn failed(
        kind: &'static str,
        repo_url: &str,
        class: barge_core::ErrorClass,
        error: &dyn std::fmt::Display,
    ) -> SubscriptionReport {
        SubscriptionReport {
            kind,
            repo_url: repo_url.to_string(),
            image: None,
            git: None,
            chart: None,
            error: Some(format!("{class}: {error}")),
        }
    }
}

/// Which Warehouses a discovery pass covers. A Warehouse is its project and its name: two
/// projects may each have an `app`.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    All,
    /// Every project's Warehouse of this name (`barge discover --warehouse NAME`).
    Named(&'a str),
    /// One Warehouse.
    One {
        project: &'a str,
        name: &'a str,
    },
}

impl Selection<'_> {
    fn matches(&self, r: &barge_core::Resource) -> bool {
        match *self {
            Selection::All => true,
            Selection::Named(name) => r.name == name,
            Selection::One { project, name } => r.project == project && r.name == name,
        }
    }
}

/// The Warehouses of the catalog the selection covers, with their specs.
pub fn warehouses<'a>(
    catalog: &'a Catalog,
    only: Selection<'a>,
) -> impl Iterator<Item = (&'a barge_core::Resource, &'a barge_core::model::kargo::WarehouseSpec)> + 'a {
    // A Warehouse without a spec has no subscriptions (discovery says so).
    static NO_SPEC: std::sync::LazyLock<barge_core::model::kargo::WarehouseSpec> =
        std::sync::LazyLock::new(Default::default);
    catalog.resources.iter().filter_map(move |r| match &r.body {
        Some(Body::Warehouse(w)) if only.matches(r) => Some((r, w.spec.as_ref().unwrap_or(&NO_SPEC))),
        _ => None,
    })
}

/// That the selection names Warehouses the catalog has (`All` always does).
pub fn check_selection(catalog: &Catalog, selection: Selection<'_>) -> Result<(), EngineError> {
    if warehouses(catalog, selection).next().is_some() {
        return Ok(());
    }
    match selection {
        Selection::All => Ok(()),
        Selection::Named(name) => not_found!("no Warehouse named {name:?} in the definitions"),
        Selection::One { project, name } => {
            not_found!("no Warehouse named {name:?} in project {project:?} in the definitions")
        }
    }
}

/// Discovery's clients, built once and reused for every pass (building a TLS client loads the
/// system's root certificates, which is not something to do per Warehouse per minute).
pub struct Discoverer {
    registry: Registry,
    /// For subscriptions with insecureSkipTLSVerify.
    insecure: Registry,
    git_config: GitConfig,
    /// Where minted Freight is announced.
    events: crate::events::EventSink,
}

impl Discoverer {
    /// Git gets `defined`'s credentials, else the `git_rules`; chart repositories written with
    /// a userinfo get theirs (see [`crate::config::DefinedCredentials`]). Minted Freight goes
    /// to `events`.
    pub fn new(
        mut config: RegistryConfig,
        defined: &crate::config::DefinedCredentials,
        git_rules: Vec<barge_registry::CredentialRule>,
        events: crate::events::EventSink,
    ) -> Result<Discoverer, EngineError> {
        config.url_credentials = Some(barge_registry::UrlCredentialLookup(defined.for_requests()));
        let git_config = GitConfig {
            rewrites: config.rewrites.clone(),
            credentials: Some(defined.lookup(git_rules)),
            ..Default::default()
        };
        Ok(Discoverer {
            registry: Registry::new(config.clone())?,
            insecure: Registry::new(RegistryConfig {
                insecure_skip_tls_verify: true,
                ..config
            })?,
            git_config,
            events,
        })
    }

    /// The discoverer of `barge discover` and `barge refresh` without a server: git and chart
    /// credentials the `catalog` wrote in its URLs, minted Freight announced to the `store`'s
    /// audit trail (when there is one) and to no webhooks.
    pub fn for_catalog(
        catalog: &Catalog,
        config: RegistryConfig,
        git_rules: Vec<barge_registry::CredentialRule>,
        store: Option<&barge_store::Store>,
    ) -> Result<Discoverer, EngineError> {
        let defined = crate::config::DefinedCredentials::of(catalog);
        let events = crate::events::EventSink::new(store.cloned(), Vec::new());
        Discoverer::new(config, &defined, git_rules, events)
    }

    /// Runs discovery for the Warehouses of the catalog the selection covers.
    pub async fn run(
        &self,
        catalog: &Catalog,
        only: Selection<'_>,
        store: Option<&barge_store::Store>,
    ) -> Result<Vec<WarehouseReport>, EngineError> {
        let (registry, insecure, git_config) = (&self.registry, &self.insecure, &self.git_config);
        let mut reports = Vec::new();
        for (r, spec) in warehouses(catalog, only) {
            let mut subs = Vec::new();
            let previous_status = match store {
                Some(store) => store.get_discovery_status(&r.project, &r.name).await?.map(|(v, _)| v),
                None => None,
            };
            let mut images = Vec::new();
            let mut commits = Vec::new();
            let mut charts = Vec::new();
            let mut missing = Vec::new();
            for s in &spec.subscriptions {
                if let Some(img) = &s.image {
                    let client = if img.insecure_skip_tls_verify == Some(true) {
                        insecure
                    } else {
                        registry
                    };
                    match discover_image_remembering(client, img, store).await? {
                        Ok(d) => {
                            match d.candidates.first() {
                                Some(best) => images.push(Image {
                                    repo_url: img.repo_url.clone(),
                                    tag: best.tag.clone(),
                                    digest: best.digest.clone(),
                                    annotations: best.annotations.clone(),
                                    subscription_name: s.name.clone(),
                                }),
                                None => missing.push(format!("no tag of {} matches the subscription", img.repo_url)),
                            }
                            subs.push(SubscriptionReport {
                                kind: "image",
                                repo_url: img.repo_url.clone(),
                                image: Some(d),
                                git: None,
                                chart: None,
                                error: None,
                            });
                        }
                        Err(e) => {
                            missing.push(format!("discovery of {} failed", img.repo_url));
                            subs.push(SubscriptionReport::failed("image", &img.repo_url, e.class(), &e));
                        }
                    }
                } else if let Some(g) = &s.git {
                    let previous = previous_git(previous_status.as_ref(), &g.repo_url);
                    match discover_git(g, git_config, previous.as_ref()).await {
                        Ok(d) => {
                            match d.candidates.first() {
                                Some(best) => commits.push(GitCommit {
                                    repo_url: g.repo_url.clone(),
                                    id: best.id.clone(),
                                    branch: best.branch.clone(),
                                    tag: best.tag.clone(),
                                    message: Some(best.message.clone()),
                                    author: Some(best.author.clone()),
                                    committer: Some(best.committer.clone()),
                                    subscription_name: s.name.clone(),
                                }),
                                None => missing.push(format!("no commit of {} matches the subscription", g.repo_url)),
                            }
                            subs.push(SubscriptionReport {
                                kind: "git",
                                repo_url: g.repo_url.clone(),
                                image: None,
                                git: Some(d),
                                chart: None,
                                error: None,
                            });
                        }
                        Err(e) => {
                            missing.push(format!("discovery of {} failed", g.repo_url));
                            subs.push(SubscriptionReport::failed("git", &g.repo_url, e.class(), &e));
                        }
                    }
                } else if let Some(c) = &s.chart {
                    match discover_chart(registry, c).await {
                        Ok(d) => {
                            match d.versions.first() {
                                Some(v) => charts.push(Chart {
                                    repo_url: c.repo_url.clone(),
                                    name: c.name.clone().filter(|_| !c.repo_url.starts_with("oci://")),
                                    version: v.clone(),
                                    subscription_name: s.name.clone(),
                                }),
                                None => {
                                    missing.push(format!("no version of chart {} matches the subscription", d.name))
                                }
                            }
                            subs.push(SubscriptionReport {
                                kind: "chart",
                                repo_url: c.repo_url.clone(),
                                image: None,
                                git: None,
                                chart: Some(d),
                                error: None,
                            });
                        }
                        Err(e) => {
                            missing.push(format!("discovery of {} failed", c.repo_url));
                            subs.push(SubscriptionReport::failed("chart", &c.repo_url, e.class(), &e));
                        }
                    }
                }
            }
            let found = criteria::Found {
                commits,
                images,
                charts,
                missing,
            };
            let mut criteria_failed = false;
            let (to_create, reason) = match criteria::decide(&r.project, &r.name, spec, found) {
                MintDecision::Create(f) => (Some(*f), None),
                MintDecision::Skip(reason) => (None, Some(reason)),
                MintDecision::CriteriaFailed(reason) => {
                    criteria_failed = true;
                    (None, Some(reason))
                }
            };
            let mut freight = match &to_create {
                Some(f) => Some(barge_core::model::prune(serde_json::to_value(f)?)),
                None => None,
            };
            let mut stored = None;
            if let Some(store) = store {
                let now = now_millis();
                store
                    .put_discovery_status(&r.project, &r.name, &serde_json::to_value(&subs)?, now)
                    .await?;
                if let Some(f) = to_create {
                    let minted = store.mint_freight(&r.project, &r.name, f, now).await?;
                    stored = Some(if minted.created { "created" } else { "existing" });
                    if minted.created {
                        let f = &minted.freight;
                        let _ = self
                            .events
                            .emit(crate::events::Event::FreightMinted {
                                project: f.project.clone(),
                                warehouse: f.warehouse.clone(),
                                freight: f.freight.metadata.name.clone(),
                                alias: f.freight.alias.clone(),
                            })
                            .await;
                    }
                    freight = Some(barge_core::model::prune(serde_json::to_value(&minted.freight.freight)?));
                }
            }
            reports.push(WarehouseReport {
                project: r.project.clone(),
                warehouse: r.name.clone(),
                subscriptions: subs,
                freight,
                stored,
                no_freight_reason: reason,
                criteria_failed,
            });
        }
        Ok(reports)
    }
}

/// Discovers an image subscription with what earlier passes learned, kept in the store when
/// there is one (so a CLI pass with `--db` whose tag list is unchanged sends no HEADs). The
/// outer error is the store's, the inner the subscription's.
async fn discover_image_remembering(
    client: &Registry,
    sub: &barge_core::model::kargo::ImageSubscription,
    store: Option<&barge_store::Store>,
) -> Result<Result<ImageDiscovery, barge_registry::RegistryError>, EngineError> {
    let Some(store) = store else {
        return Ok(discover_image(client, sub).await);
    };
    let fingerprint = barge_registry::discover::fingerprint(sub);
    // Unreadable memory (from another barge version) is a cache miss.
    if let Some(memory) = store
        .get_image_memory(&fingerprint)
        .await?
        .and_then(|m| serde_json::from_value(m).ok())
    {
        client.recall_image(memory).await;
    }
    let discovery = discover_image(client, sub).await;
    if let Ok(ImageDiscovery { learned: Some(m), .. }) = &discovery {
        store
            .put_image_memory(&fingerprint, &serde_json::to_value(m)?, now_millis())
            .await?;
    }
    Ok(discovery)
}

/// Discovers Warehouses as they come due, handing each pass's reports to `report`, until
/// Ctrl-C (or `passes` Warehouse passes). With a store, each Warehouse's last pass survives
/// restarts. An error of `report` (in the caller's error type) ends the watch.
pub async fn watch<E: From<EngineError>>(
    catalog: &Catalog,
    selection: Selection<'_>,
    discoverer: &Discoverer,
    store: Option<&barge_store::Store>,
    passes: Option<u32>,
    mut report: impl FnMut(&[WarehouseReport]) -> Result<(), E>,
) -> Result<(), E> {
    use barge_core::schedule::Schedule;
    let mut watched = Vec::new();
    for (r, spec) in warehouses(catalog, selection) {
        let key = format!("{}/{}", r.project, r.name);
        let schedule =
            Schedule::new(spec.interval.as_deref(), spec.schedule.as_deref(), &key).map_err(EngineError::Invalid)?;
        let last = match store {
            Some(s) => s
                .get_discovery_status(&r.project, &r.name)
                .await
                .map_err(EngineError::from)?
                .map(|(_, at)| at),
            None => None,
        };
        watched.push((r, schedule, last));
    }
    if watched.is_empty() {
        return Err(EngineError::Invalid("no Warehouse to watch".into()).into());
    }
    let mut done = 0u32;
    loop {
        let now = now_millis();
        for (r, schedule, last) in &mut watched {
            if schedule.next_due(*last, now) <= now {
                let this = Selection::One {
                    project: &r.project,
                    name: &r.name,
                };
                report(&discoverer.run(catalog, this, store).await?)?;
                *last = Some(now_millis());
                done += 1;
                if passes.is_some_and(|p| done >= p) {
                    return Ok(());
                }
            }
        }
        let next = watched
            .iter()
            .map(|(_, s, last)| s.next_due(*last, now))
            .min()
            .unwrap_or(now + 60_000);
        let wait = std::time::Duration::from_millis((next - now_millis()).clamp(50, 60_000) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The stored last pass of a git subscription, to skip fetching when nothing moved.
fn previous_git(status: Option<&serde_json::Value>, repo_url: &str) -> Option<GitDiscovery> {
    let subs = status?.as_array()?;
    let entry = subs
        .iter()
        .find(|s| s["kind"] == "git" && s["repoURL"] == repo_url && s.get("error").is_none())?;
    serde_json::from_value(entry.clone()).ok()
}
