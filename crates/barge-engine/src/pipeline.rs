//! Stage status from the store: for every Stage and freight request, what it has, what
//! auto-promotion would do and why it waits (barge_core::stage::decide over the stored facts).
//! The daemon's reconcile, `barge get stages` and manual promotion checks all read this.

use crate::error::{EngineError, invalid, not_found};
use barge_core::Catalog;
use barge_core::analysis::VerificationPhase;
use barge_core::model::Body;
use barge_core::model::kargo::{FreightSources, StageSpec};
use barge_core::promotion::Phase;
use barge_core::stage::{Decision, FreightView, Hold, Soak, StageView, Waiting};
use barge_store::{FreightHead, FreightStage, StageHold, Store, StoredApproval, StoredFreight, StoredPromotion};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The actor auto-promotions are recorded under.
pub const AUTO_ACTOR: &str = "barge (auto-promotion)";

/// A project's stored state, read once per reconcile.
pub struct Snapshot {
    /// Newest first.
    pub freight: Vec<FreightHead>,
    pub facts: Vec<FreightStage>,
    pub holds: Vec<StageHold>,
    /// Pending and Running promotions.
    pub unfinished: Vec<StoredPromotion>,
    /// The newest promotion of each stage.
    pub last: BTreeMap<String, StoredPromotion>,
    /// The newest verification of each stage.
    pub verifications: BTreeMap<String, barge_store::Verification>,
    /// Who approved which Freight for which Stage.
    pub approvals: Vec<StoredApproval>,
    /// Lookups over `freight` and `facts`, built on first use: a project's Stages each look
    /// up their Freight, and scanning every Freight and fact per Stage made `GetStages` at
    /// 300 Stages cost Stages × (Freight + facts) (BENCHMARKS.md, "REST API").
    index: std::sync::OnceLock<Index>,
}

#[derive(Default)]
struct Index {
    /// Every Freight of each Warehouse as the core decides over it, newest first
    /// ([`barge_core::stage::newest_first`]), sorted once here rather than per Stage decided.
    views: HashMap<String, Vec<FreightView>>,
    /// Each Freight's position in `freight` by name.
    freight_at: HashMap<String, usize>,
    /// The position in `facts` of the Freight each Stage has now from each Warehouse, by
    /// Stage, then Warehouse (looked up by `&str`, without making a key per lookup).
    current_at: HashMap<String, HashMap<String, usize>>,
}

impl Snapshot {
    /// The project's state as stored now. A daemon's store keeps it (and the lookups built
    /// over it) between reads while no write changed the project ([`Store::derived`]): a
    /// Stage list at 10,000 Freight otherwise re-read and re-indexed every Freight head per
    /// request (BENCHMARKS.md, "REST API").
    pub async fn read(store: &Store, project: &str) -> Result<Arc<Snapshot>, EngineError> {
        store.derived(project, || Snapshot::read_now(store, project)).await
    }

    /// The project's state, read from the store whatever is kept.
    async fn read_now(store: &Store, project: &str) -> Result<Snapshot, EngineError> {
        let promotions = store.stage_promotions(project).await?;
        let mut last = BTreeMap::new();
        for p in &promotions {
            last.entry(p.stage.clone()).or_insert_with(|| p.clone());
        }
        Ok(Snapshot {
            freight: store.freight_heads(project).await?,
            facts: store.freight_stages(project).await?,
            holds: store.holds(project).await?,
            unfinished: promotions.into_iter().filter(|p| !p.phase.is_terminal()).collect(),
            last,
            verifications: store
                .latest_verifications(project)
                .await?
                .into_iter()
                .map(|v| (v.stage.clone(), v))
                .collect(),
            approvals: store.list_approvals(project).await?,
            index: std::sync::OnceLock::new(),
        })
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut index = Index::default();
            // The first of several matches, as a scan in order finds.
            for (i, f) in self.freight.iter().enumerate() {
                index.freight_at.entry(f.name.clone()).or_insert(i);
            }
            for (i, fact) in self.facts.iter().enumerate().filter(|(_, f)| f.current()) {
                let of_stage = index.current_at.entry(fact.stage.clone()).or_default();
                of_stage.entry(fact.warehouse.clone()).or_insert(i);
            }
            index.views = self.all_views();
            for views in index.views.values_mut() {
                // Stable, as the core's own sort: Freight that compare equal keep `freight`'s order.
                views.sort_by(barge_core::stage::newest_first);
            }
            index
        })
    }

    /// What people call a Freight: its alias, else its short name.
    pub fn display(&self, name: &str) -> String {
        self.index()
            .freight_at
            .get(name)
            .map(|&i| self.freight[i].alias.clone())
            .unwrap_or_else(|| name.chars().take(7).collect())
    }

    fn current_in(&self, stage: &str, warehouse: &str) -> Option<&FreightStage> {
        let at = self.index().current_at.get(stage)?.get(warehouse)?;
        Some(&self.facts[*at])
    }

    /// The Freight each upstream Stage of these sources has now (for `MatchUpstream`).
    fn upstream_current(&self, sources: &FreightSources, warehouse: &str) -> BTreeMap<String, String> {
        sources
            .stages
            .iter()
            .filter_map(|s| self.current_in(s, warehouse).map(|f| (s.clone(), f.freight.clone())))
            .collect()
    }

    /// Every Freight of a Warehouse with its history, as the core decides over it: newest
    /// first (by creation time, then name; [`barge_core::stage::newest_first`]).
    fn views(&self, warehouse: &str) -> &[FreightView] {
        self.index().views.get(warehouse).map_or(&[], Vec::as_slice)
    }

    /// Every Freight with its history, by Warehouse.
    fn all_views(&self) -> HashMap<String, Vec<FreightView>> {
        // The facts by Freight, once: looking each Freight's up in all of them made a Stage's
        // status cost Freight × facts (seconds for the UI's pipeline page at 300 Stages and
        // 1,000 Freight, BENCHMARKS.md).
        let mut facts_of: HashMap<&str, Vec<&FreightStage>> = HashMap::new();
        for fact in &self.facts {
            facts_of.entry(fact.freight.as_str()).or_default().push(fact);
        }
        let mut approvals_of: HashMap<&str, Vec<&StoredApproval>> = HashMap::new();
        for a in &self.approvals {
            approvals_of.entry(a.freight.as_str()).or_default().push(a);
        }
        let mut views: HashMap<String, Vec<FreightView>> = HashMap::new();
        for f in &self.freight {
            let name = &f.name;
            let mut v = FreightView {
                name: name.clone(),
                alias: f.alias.clone(),
                created_at: f.created_at,
                ..FreightView::default()
            };
            for fact in facts_of.get(name.as_str()).into_iter().flatten() {
                if let Some(at) = fact.verified_at {
                    v.verified_in.insert(fact.stage.clone(), at / 1000);
                }
                if let Some(entered) = fact.entered_at {
                    let soak = if fact.current() {
                        Soak::Since(entered / 1000)
                    } else {
                        Soak::Lasted(std::time::Duration::from_millis(fact.longest_soak.max(0) as u64))
                    };
                    v.soaked.insert(fact.stage.clone(), soak);
                }
                if fact.approved_at.is_some() {
                    v.approved_for.push(fact.stage.clone());
                }
            }
            for a in approvals_of.get(name.as_str()).into_iter().flatten() {
                v.approvals.entry(a.stage.clone()).or_default().push(approval_of(a));
            }
            views.entry(f.warehouse.clone()).or_default().push(v);
        }
        views
    }
}

/// A stored approval as the core counts it; a role the store does not know (none today)
/// counts as a viewer's, which no policy admits.
pub fn approval_of(a: &StoredApproval) -> barge_core::approval::Approval {
    barge_core::approval::Approval {
        approver: a.approver.clone(),
        role: barge_core::authz::Role::parse(&a.role).unwrap_or(barge_core::authz::Role::Viewer),
        at: a.approved_at,
    }
}

/// One freight request of a Stage: what the Stage has and what happens next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStatus {
    pub warehouse: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<CurrentFreight>,
    /// `UpToDate`, `Promote` (auto-promotion is about to) or `Waiting`.
    pub state: String,
    /// The Freight auto-promotion would bring, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    /// Why it waits (a stable code), and in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentFreight {
    pub name: String,
    pub alias: String,
    /// Unix milliseconds.
    pub since: i64,
    /// `Succeeded` when verified here; `''` when not (yet).
    pub verification: String,
}

/// Everything `barge get stage` shows about one Stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    pub project: String,
    pub name: String,
    pub auto_promotion: bool,
    /// Control-flow stages have no steps.
    pub steps: usize,
    pub verification: Vec<String>,
    pub requests: Vec<RequestStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<barge_core::window::WindowStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<StageHold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_promotion: Option<PromotionRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promotion: Option<PromotionRef>,
    /// The newest verification run here, with every metric's measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verification: Option<VerificationStatus>,
    /// The health of the Argo CD Applications the last promotion updated (`barge serve`
    /// checks them on every reconcile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<StageHealth>,
    /// The Stage's definition (its spec, as loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<StageSpec>,
    /// `spec.approvalPolicy`: the approvals Freight needs before it may enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<barge_core::approval::ApprovalPolicy>,
    /// Freight name → its approvers for this Stage so far, oldest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub approvals: BTreeMap<String, Vec<crate::answer::ApproverInfo>>,
}

/// A Stage's health: the worst of its apps' (Healthy < Progressing < Unknown < Degraded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageHealth {
    pub status: String,
    /// Why, when not Healthy: the first app that is not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Each app: `{name, namespace, revision, status, message}`.
    pub apps: Vec<serde_json::Value>,
    /// Unix milliseconds.
    pub checked_at: i64,
}

/// Stage health by (project, stage), as the daemon last checked it.
pub type HealthMap = std::collections::HashMap<(String, String), StageHealth>;

/// A verification run and what people call its Freight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationStatus {
    #[serde(flatten)]
    pub run: barge_store::Verification,
    pub alias: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRef {
    pub name: String,
    pub freight: String,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub actor: String,
}

impl From<&StoredPromotion> for PromotionRef {
    fn from(p: &StoredPromotion) -> Self {
        PromotionRef {
            name: p.name.clone(),
            freight: p.freight.clone(),
            phase: p.phase,
            message: p.message.clone(),
            actor: p.actor.clone(),
        }
    }
}

/// A Stage's definition, as the reconcile needs it.
pub struct StageDef<'a> {
    pub project: &'a str,
    pub name: &'a str,
    /// As loaded (an empty spec for a Stage without one).
    pub spec: &'a StageSpec,
    pub labels: &'a BTreeMap<String, String>,
    pub auto_promotion: bool,
}

impl StageDef<'_> {
    pub fn has_verification(&self) -> bool {
        self.spec
            .verification
            .as_ref()
            .is_some_and(|v| !v.analysis_templates.is_empty())
    }

    pub fn sources(&self, warehouse: &str) -> Option<&FreightSources> {
        self.spec
            .requested_freight
            .iter()
            .find(|r| r.origin.name == warehouse)
            .map(|r| &r.sources)
    }
}

/// The Freight a Stage's verification is about: of what the Stage has now, the latest to
/// arrive (a Stage taking several origins verifies its collection once).
pub fn verification_subject<'a>(facts: &'a [FreightStage], stage: &str) -> Option<&'a FreightStage> {
    facts
        .iter()
        .filter(|f| f.stage == stage && f.current())
        .max_by_key(|f| f.entered_at)
}

/// The projects of a catalog that have Stages, and their Stages in promotion order.
pub fn stages(catalog: &Catalog) -> Vec<(String, Vec<StageDef<'_>>)> {
    let planned = catalog.derived(Planned::of);
    planned
        .projects
        .iter()
        .map(|(project, stages)| {
            let defs = stages
                .iter()
                .filter_map(|&(at, auto_promotion)| match &catalog.resources[at].body {
                    Some(Body::Stage(s)) => Some(StageDef {
                        project: &catalog.resources[at].project,
                        name: &catalog.resources[at].name,
                        spec: s.spec.as_ref().unwrap_or(&NO_SPEC),
                        labels: &s.metadata.labels,
                        auto_promotion,
                    }),
                    _ => None,
                })
                .collect();
            (project.clone(), defs)
        })
        .collect()
}

static NO_SPEC: std::sync::LazyLock<StageSpec> = std::sync::LazyLock::new(StageSpec::default);

/// What [`stages`] and [`windows_for`] derive from a catalog, kept with it
/// ([`Catalog::derived`]) until the definitions are reloaded: planning the pipeline and
/// finding each planned Stage among the resources per Stage list was a sixth of its time at
/// 300 Stages (BENCHMARKS.md, "REST API").
struct Planned {
    /// The projects with Stages, each with its Stages in promotion order: the position of
    /// the Stage's resource in `catalog.resources` and whether it auto-promotes.
    projects: Vec<(String, Vec<(usize, bool)>)>,
    /// Each project's promotion windows, parsed (or why they cannot be).
    windows: HashMap<String, Result<Vec<barge_core::window::Window>, String>>,
}

impl Planned {
    fn of(catalog: &Catalog) -> Planned {
        let plan = barge_core::plan::plan(catalog);
        let mut at: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, r) in catalog.resources.iter().enumerate() {
            if matches!(r.body, Some(Body::Stage(_))) {
                // The first of several matches, as a scan in order finds.
                at.entry((r.project.as_str(), r.name.as_str())).or_insert(i);
            }
        }
        let projects = plan
            .projects
            .iter()
            .map(|p| {
                let stages = p
                    .stages
                    .iter()
                    .filter_map(|sp| {
                        at.get(&(p.name.as_str(), sp.name.as_str()))
                            .map(|&i| (i, sp.auto_promotion))
                    })
                    .collect::<Vec<_>>();
                (p.name.clone(), stages)
            })
            .filter(|(_, stages)| !stages.is_empty())
            .collect();
        let mut windows: HashMap<String, Result<Vec<barge_core::window::Window>, String>> = HashMap::new();
        for r in &catalog.resources {
            let Some(Body::ProjectConfig(pc)) = &r.body else {
                continue;
            };
            // A ProjectConfig in its project's namespace, or one outside any namespace named
            // after the project.
            let projects = if r.project.is_empty() && !r.name.is_empty() {
                vec![&r.project, &r.name]
            } else {
                vec![&r.project]
            };
            let values = pc
                .spec
                .as_ref()
                .map(|s| s.promotion_windows.clone())
                .unwrap_or_default();
            let parsed = barge_core::window::parse(&values);
            for project in projects {
                let entry = windows.entry(project.clone()).or_insert_with(|| Ok(Vec::new()));
                match (entry, &parsed) {
                    (Ok(all), Ok(more)) => all.extend(more.iter().cloned()),
                    (entry @ Ok(_), Err(e)) => *entry = Err(e.clone()),
                    (Err(_), _) => {}
                }
            }
        }
        Planned { projects, windows }
    }
}

/// The promotion windows that select a Stage, from its project's ProjectConfig.
pub fn windows_for(
    catalog: &Catalog,
    project: &str,
    stage: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<barge_core::window::Window>, EngineError> {
    let planned = catalog.derived(Planned::of);
    match planned.windows.get(project) {
        None => Ok(Vec::new()),
        Some(Err(e)) => Err(EngineError::Invalid(e.clone())),
        Some(Ok(all)) => Ok(all.iter().filter(|w| w.selects(stage, labels)).cloned().collect()),
    }
}

/// The status of one Stage at `now_ms`.
pub fn stage_status(
    catalog: &Catalog,
    snap: &Snapshot,
    def: &StageDef<'_>,
    now_ms: i64,
) -> Result<StageStatus, EngineError> {
    let now = now_ms / 1000;
    let windows = windows_for(catalog, def.project, def.name, def.labels)?;
    let window = (!windows.is_empty()).then(|| {
        let refs: Vec<&barge_core::window::Window> = windows.iter().collect();
        barge_core::window::status(&refs, now_ms)
    });
    let running = snap.unfinished.iter().find(|p| p.stage == def.name);
    let mut requests = Vec::new();
    for req in &def.spec.requested_freight {
        let warehouse = &req.origin.name;
        let current = snap.current_in(def.name, warehouse);
        let hold = snap
            .holds
            .iter()
            .find(|h| h.stage == def.name && &h.warehouse == warehouse)
            .map(|h| Hold {
                freight: h.freight.clone(),
                actor: h.actor.clone(),
                since: h.created_at / 1000,
            });
        let upstream_current = snap.upstream_current(&req.sources, warehouse);
        let view = StageView {
            name: def.name.to_string(),
            current: current.map(|c| c.freight.clone()),
            auto_promotion: def.auto_promotion,
            hold,
            window_closed_until: window
                .as_ref()
                .filter(|w| !w.open)
                .map(|w| w.next_open.map_or(i64::MAX, |t| t / 1000)),
            running: running.map(|p| p.name.clone()),
            verification_failed: current
                .filter(|c| VerificationPhase::parse(&c.verification).is_some_and(VerificationPhase::is_failure))
                .map(|c| c.freight.clone()),
            verification_running: current
                .filter(|c| VerificationPhase::parse(&c.verification) == Some(VerificationPhase::Running))
                .map(|c| c.freight.clone()),
            upstream_current,
            failed_promotion: snap
                .last
                .get(def.name)
                .filter(|p| matches!(p.phase, Phase::Failed | Phase::Errored | Phase::Aborted))
                .map(|p| barge_core::stage::FailedPromotion {
                    name: p.name.clone(),
                    freight: p.freight.clone(),
                    phase: p.phase,
                }),
            approval_policy: def.spec.approval_policy.clone(),
        };
        let freight = snap.views(warehouse);
        let decision = barge_core::stage::decide_newest_first(&view, &req.sources, freight, now);
        let display = |n: &str| snap.display(n);
        let (state, candidate, reason, message) = match &decision {
            Decision::UpToDate { freight: has } => {
                // Up to date with what is available; say why newer Freight is not (yet). The
                // views are newest first (created, then name), as `freight` is.
                let newest = freight.first();
                let message = newest
                    .filter(|n| &n.name != has)
                    .and_then(|n| {
                        barge_core::stage::availability(n, def.name, &req.sources, view.approval_policy.as_ref(), now)
                            .err()
                    })
                    .map(|w| format!("newer: {}", w.message(now, &display)))
                    .unwrap_or_default();
                ("UpToDate", Some(has.clone()), None, message)
            }
            Decision::Promote { freight } => (
                "Promote",
                Some(freight.clone()),
                None,
                format!("auto-promotion brings {}", display(freight)),
            ),
            Decision::Wait(w) => ("Waiting", waiting_freight(w), Some(w.code()), w.message(now, &display)),
        };
        requests.push(RequestStatus {
            warehouse: warehouse.clone(),
            current: current.map(|c| CurrentFreight {
                name: c.freight.clone(),
                alias: snap.display(&c.freight),
                since: c.entered_at.unwrap_or_default(),
                verification: c.verification.clone(),
            }),
            state: state.to_string(),
            candidate,
            reason: reason.map(str::to_string),
            message,
        });
    }
    Ok(StageStatus {
        project: def.project.to_string(),
        name: def.name.to_string(),
        auto_promotion: def.auto_promotion,
        steps: def.spec.promotion_template.as_ref().map_or(0, |t| t.spec.steps.len()),
        verification: def
            .spec
            .verification
            .iter()
            .flat_map(|v| v.analysis_templates.iter().map(|t| t.name.clone()))
            .collect(),
        requests,
        window,
        holds: snap.holds.iter().filter(|h| h.stage == def.name).cloned().collect(),
        current_promotion: running.map(PromotionRef::from),
        last_promotion: snap
            .last
            .get(def.name)
            .filter(|p| p.phase.is_terminal())
            .map(PromotionRef::from),
        last_verification: snap.verifications.get(def.name).map(|v| VerificationStatus {
            alias: snap.display(&v.freight),
            run: v.clone(),
        }),
        health: None,
        spec: Some(def.spec.clone()),
        approval_policy: def.spec.approval_policy.clone(),
        approvals: snap
            .approvals
            .iter()
            .filter(|a| a.stage == def.name)
            .fold(BTreeMap::new(), |mut by_freight, a| {
                by_freight
                    .entry(a.freight.clone())
                    .or_insert_with(Vec::new)
                    .push(crate::answer::ApproverInfo::of(a));
                by_freight
            }),
    })
}

/// The Freight a waiting reason is about (the candidate that is held back), if any.
fn waiting_freight(w: &Waiting) -> Option<String> {
    match w {
        Waiting::NoAutoPromotionPolicy { freight }
        | Waiting::HeldBy { freight, .. }
        | Waiting::WindowClosed { freight, .. } => Some(freight.clone()),
        _ => None,
    }
}

/// Whether a person may promote this Freight into the Stage now: it must be requested from
/// its Warehouse and available (direct, approved, or verified and soaked upstream), and the
/// promotion window must be open unless overridden with a reason.
pub fn check_manual(
    catalog: &Catalog,
    snap: &Snapshot,
    def: &StageDef<'_>,
    freight: &StoredFreight,
    override_reason: Option<&str>,
    now_ms: i64,
) -> Result<(), EngineError> {
    let name = snap.display(&freight.freight.metadata.name);
    let Some(sources) = def.sources(&freight.warehouse) else {
        return invalid!(
            "Stage {} does not request Freight from Warehouse {} (the origin of {name})",
            def.name,
            freight.warehouse
        );
    };
    let view = snap
        .views(&freight.warehouse)
        .iter()
        .find(|v| v.name == freight.freight.metadata.name)
        .cloned()
        .unwrap_or_default();
    let policy = def.spec.approval_policy.as_ref();
    if let Err(w @ Waiting::WaitingForApprovals { .. }) =
        barge_core::stage::availability(&view, def.name, sources, policy, now_ms / 1000)
    {
        return invalid!(
            "{name} cannot enter Stage {}: {}; `barge approve --freight {name} --stage {}` records an approval",
            def.name,
            w.message(now_ms / 1000, &|n| snap.display(n)),
            def.name
        );
    }
    if let Err(w) = barge_core::stage::availability(&view, def.name, sources, None, now_ms / 1000) {
        return invalid!(
            "{name} is not available to Stage {}: {}; `barge approve --freight {name} --stage {}` makes it available",
            def.name,
            w.message(now_ms / 1000, &|n| snap.display(n)),
            def.name
        );
    }
    let windows = windows_for(catalog, def.project, def.name, def.labels)?;
    let refs: Vec<&barge_core::window::Window> = windows.iter().collect();
    let status = barge_core::window::status(&refs, now_ms);
    if !status.open && override_reason.is_none_or(|r| r.trim().is_empty()) {
        let until = status
            .next_open
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or("(no opening within a year)".to_string(), |d| d.to_rfc3339());
        return invalid!(
            "the promotion window of Stage {} is closed ({}) until {until}; promote anyway with --override-window --reason \"…\"",
            def.name,
            status.closed_by.join(", ")
        );
    }
    Ok(())
}

/// What a successful promotion of `freight` by `actor` does to the Stage's hold: people who
/// promote the auto-promotion candidate lift it, people who promote anything else set it;
/// auto-promotions leave it alone.
pub fn hold_change(
    snap: &Snapshot,
    def: &StageDef<'_>,
    warehouse: &str,
    freight: &str,
    actor: &str,
    now_ms: i64,
) -> barge_store::HoldChange {
    if actor == AUTO_ACTOR || !def.auto_promotion {
        return barge_store::HoldChange::Keep;
    }
    let Some(sources) = def.sources(warehouse) else {
        return barge_store::HoldChange::Keep;
    };
    let view = StageView {
        name: def.name.to_string(),
        upstream_current: snap.upstream_current(sources, warehouse),
        ..StageView::default()
    };
    let views = snap.views(warehouse);
    match barge_core::stage::candidate_newest_first(&view, sources, views, now_ms / 1000) {
        Ok(c) if c.name == freight => barge_store::HoldChange::Clear,
        _ => barge_store::HoldChange::Set,
    }
}

/// The Stages of `upstream`'s project that take Freight straight from it.
pub fn downstream<'a>(all: &'a [(String, Vec<StageDef<'a>>)], upstream: &StageDef<'_>) -> Vec<&'a StageDef<'a>> {
    all.iter()
        .filter(|(p, _)| p == upstream.project)
        .flat_map(|(_, defs)| defs.iter())
        .filter(|d| {
            d.spec
                .requested_freight
                .iter()
                .any(|r| r.sources.stages.iter().any(|s| s == upstream.name))
        })
        .collect()
}

/// Finds a Stage's definition: in the project given, or the only project with a Stage of
/// that name.
pub fn find_stage<'a>(
    all: &'a [(String, Vec<StageDef<'a>>)],
    stage: &str,
    project: Option<&str>,
) -> Result<&'a StageDef<'a>, EngineError> {
    let found: Vec<&StageDef> = all
        .iter()
        .filter(|(p, _)| project.is_none_or(|want| want == p))
        .flat_map(|(_, defs)| defs.iter().filter(|d| d.name == stage))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => not_found!(
            "no Stage named {stage:?}{} in the definitions",
            project.map(|p| format!(" in project {p:?}")).unwrap_or_default()
        ),
        many => invalid!(
            "Stage {stage:?} exists in several projects ({}); add --project",
            many.iter().map(|d| d.project).collect::<Vec<_>>().join(", ")
        ),
    }
}
