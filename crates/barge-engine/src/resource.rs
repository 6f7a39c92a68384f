//! The engine's answers as Kargo's resources (issue #16): a Stage, Freight, Promotion,
//! Warehouse or Project read from the REST API, or printed by `barge get … -o json|yaml`,
//! carries `apiVersion: kargo.akuity.io/v1alpha1`, `kind`, `metadata` (RFC 3339 times),
//! `spec` and `status` with Kargo's field names (Kargo's `api/v1alpha1/*_types.go`), so that
//! Kargo users' scripts and jq filters carry over.
//!
//! What barge knows beyond Kargo's fields is under one documented name, `status.barge`
//! (docs/reference/api.md, "Resource shapes"): a Stage's per-request state with its
//! why-pending reason codes and its last verification's measurements, a Warehouse's discovery
//! summary, a Project's Stages and Warehouses. Kargo's own fields mean what they mean in
//! Kargo; barge never puts its own meaning under a Kargo name.
//!
//! The conversions are pure (no store, no clock): the server converts the answers it sends,
//! the CLI converts the answers it computes in-process (`--db`), so both print the same.

use crate::answer::{FreightInfo, FreightStatus, PromotionInfo, WarehouseSummary};
use crate::format::rfc3339;
use crate::pipeline::{PromotionRef, RequestStatus, StageStatus as EngineStage, VerificationStatus};
use barge_core::model::kargo::FreightOrigin;
use barge_core::promotion::StepRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Every resource's `apiVersion`: Kargo's group and version.
pub const API_VERSION: &str = "kargo.akuity.io/v1alpha1";

/// The annotation Kargo records a Promotion's creator under (Kargo's `annotations.go`,
/// `AnnotationKeyCreateActor`).
pub const CREATE_ACTOR: &str = "kargo.akuity.io/create-actor";

/// The kinds, as `kind` names them.
const STAGE: &str = "Stage";
const FREIGHT: &str = "Freight";
const PROMOTION: &str = "Promotion";
const WAREHOUSE: &str = "Warehouse";
const PROJECT: &str = "Project";

/// Kubernetes' ObjectMeta, the part barge fills: the namespace is the project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub name: String,
    /// The project (Kargo's namespace); empty for a Project.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// RFC 3339, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Meta {
    fn new(project: &str, name: &str) -> Meta {
        Meta {
            name: name.to_string(),
            namespace: project.to_string(),
            ..Meta::default()
        }
    }
}

/// Kubernetes' metav1.Condition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// RFC 3339, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    fn new(kind: &str, status: bool, reason: &str, message: String, at: Option<String>) -> Condition {
        Condition {
            kind: kind.to_string(),
            status: if status { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message,
            last_transition_time: at,
        }
    }
}

/// `Warehouse/NAME`, as Kargo keys a Stage's holds by origin.
fn origin_key(warehouse: &str) -> String {
    format!("{WAREHOUSE}/{warehouse}")
}

fn origin(warehouse: &str) -> FreightOrigin {
    FreightOrigin {
        kind: WAREHOUSE.to_string(),
        name: warehouse.to_string(),
    }
}

/// A definition's spec as Kargo prints it: without the fields it does not set.
fn spec_value<T: Serialize>(spec: &T) -> Value {
    barge_core::model::prune(serde_json::to_value(spec).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// Stage

/// A Stage (Kargo's `stage_types.go`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    pub api_version: String,
    pub kind: String,
    pub metadata: Meta,
    /// The Stage's definition (`requestedFreight`, `promotionTemplate`, `verification`).
    #[schema(value_type = Object)]
    pub spec: Value,
    pub status: StageStatus,
}

/// Kargo's StageStatus, the fields barge has.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// `Promoting`, `Healthy` (when checked), `Verified` (when verification ran).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The Freight the Stage has now, one collection (barge keeps its history in the audit
    /// log: `barge history`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freight_history: Vec<FreightCollection>,
    /// The Freight's name when the Stage requests one and has it, else `N/M Fulfilled`.
    #[serde(default)]
    pub freight_summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_promotion: Option<PromotionReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promotion: Option<PromotionReference>,
    #[serde(default)]
    pub auto_promotion_enabled: bool,
    /// When a promotion window selects the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_window_status: Option<PromotionWindowStatus>,
    /// By origin (`Warehouse/NAME`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auto_promotion_holds: BTreeMap<String, AutoPromotionHold>,
    pub barge: StageExtras,
}

/// What barge adds to a Stage's status.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageExtras {
    /// One per freight request: what the Stage has (`current`), what happens next (`state`:
    /// `UpToDate`, `Promote` or `Waiting`), and why it waits (`reason`, a stable code, and
    /// `message`).
    #[schema(value_type = Vec<Object>)]
    pub requests: Vec<RequestStatus>,
    /// The newest verification here, with every metric's measurements (`report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub last_verification: Option<VerificationStatus>,
    /// Under `spec.approvalPolicy`: Freight name → who approved it for this Stage so far,
    /// oldest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub approvals: BTreeMap<String, Vec<crate::answer::ApproverInfo>>,
}

/// Kargo's FreightCollection: a Stage's Freight, by origin.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightCollection {
    /// The Freight names, sorted and joined (Kargo derives it from them too).
    pub id: String,
    /// By origin (`Warehouse/NAME`).
    #[serde(default)]
    pub items: BTreeMap<String, FreightReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_history: Vec<VerificationInfo>,
}

/// Kargo's FreightReference: a Freight's name and origin.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FreightReference {
    pub name: String,
    /// Its Warehouse, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub origin: Option<FreightOrigin>,
}

/// Kargo's VerificationInfo.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    pub phase: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<String>,
}

/// Kargo's Health: `Healthy`, `Progressing`, `Unknown` or `Degraded`, and why.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<String>,
    /// `{"applications": [{name, namespace, revision, status, message}], "checkedAt"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
}

/// Kargo's PromotionReference.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<FreightReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PromotionStatusRef>,
}

/// The part of a PromotionStatus a reference carries.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PromotionStatusRef {
    pub phase: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Kargo's PromotionWindowStatus.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionWindowStatus {
    pub closed: bool,
    /// The windows that close it, when closed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// RFC 3339, when known within a year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open: Option<String>,
}

/// Kargo's AutoPromotionHold.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoPromotionHold {
    pub freight_name: String,
    #[schema(value_type = Object)]
    pub origin: FreightOrigin,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub promotion_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl PromotionReference {
    fn of(p: &PromotionRef, warehouse_of: impl Fn(&str) -> Option<String>) -> PromotionReference {
        PromotionReference {
            name: p.name.clone(),
            freight: Some(FreightReference {
                name: p.freight.clone(),
                origin: warehouse_of(&p.freight).map(|w| origin(&w)),
            }),
            status: Some(PromotionStatusRef {
                phase: p.phase.to_string(),
                message: p.message.clone(),
            }),
        }
    }
}

impl Stage {
    /// The Stage as Kargo shows it.
    pub fn of(s: &EngineStage) -> Stage {
        let current: Vec<(&str, &crate::pipeline::CurrentFreight)> = s
            .requests
            .iter()
            .filter_map(|r| r.current.as_ref().map(|c| (r.warehouse.as_str(), c)))
            .collect();
        let warehouse_of = |freight: &str| {
            current
                .iter()
                .find(|(_, c)| c.name == freight)
                .map(|(w, _)| w.to_string())
        };
        let freight_history = if current.is_empty() {
            Vec::new()
        } else {
            let mut names: Vec<&str> = current.iter().map(|(_, c)| c.name.as_str()).collect();
            names.sort();
            let verification_history = s
                .last_verification
                .iter()
                .filter(|v| current.iter().any(|(_, c)| c.name == v.run.freight))
                .map(|v| VerificationInfo {
                    id: v.run.id.clone(),
                    actor: v.run.actor.clone(),
                    start_time: Some(rfc3339(v.run.created_at)),
                    phase: v.run.phase.as_str().to_string(),
                    message: v.run.message.clone(),
                    finish_time: v.run.finished_at.map(rfc3339),
                })
                .collect();
            vec![FreightCollection {
                id: names.join(","),
                items: current
                    .iter()
                    .map(|(w, c)| {
                        (
                            origin_key(w),
                            FreightReference {
                                name: c.name.clone(),
                                origin: Some(origin(w)),
                            },
                        )
                    })
                    .collect(),
                verification_history,
            }]
        };
        let freight_summary = match (s.requests.len(), current.as_slice()) {
            (1, [(_, c)]) => c.name.clone(),
            (requested, _) => format!("{}/{requested} Fulfilled", current.len()),
        };
        let mut conditions = vec![match &s.current_promotion {
            Some(p) => Condition::new(
                "Promoting",
                true,
                "ActivePromotion",
                format!("Stage has a {} promotion: {}", p.phase, p.name),
                None,
            ),
            None => Condition::new("Promoting", false, "NoActivePromotion", String::new(), None),
        }];
        if let Some(h) = &s.health {
            conditions.push(Condition::new(
                "Healthy",
                h.status == "Healthy",
                &h.status,
                h.message.clone(),
                Some(rfc3339(h.checked_at)),
            ));
        }
        if let Some(v) = &s.last_verification {
            let phase = v.run.phase.as_str();
            conditions.push(Condition::new(
                "Verified",
                phase == "Succeeded",
                phase,
                v.run.message.clone(),
                v.run.finished_at.map(rfc3339),
            ));
        }
        Stage {
            api_version: API_VERSION.into(),
            kind: STAGE.into(),
            metadata: Meta::new(&s.project, &s.name),
            spec: s
                .spec
                .as_ref()
                .map(spec_value)
                .unwrap_or_else(|| Value::Object(Default::default())),
            status: StageStatus {
                conditions,
                freight_history,
                freight_summary,
                health: s.health.as_ref().map(|h| Health {
                    status: h.status.clone(),
                    issues: if h.message.is_empty() {
                        Vec::new()
                    } else {
                        vec![h.message.clone()]
                    },
                    output: Some(serde_json::json!({"applications": h.apps, "checkedAt": rfc3339(h.checked_at)})),
                }),
                current_promotion: s
                    .current_promotion
                    .as_ref()
                    .map(|p| PromotionReference::of(p, warehouse_of)),
                last_promotion: s
                    .last_promotion
                    .as_ref()
                    .map(|p| PromotionReference::of(p, warehouse_of)),
                auto_promotion_enabled: s.auto_promotion,
                promotion_window_status: s.window.as_ref().map(|w| PromotionWindowStatus {
                    closed: !w.open,
                    reason: w.closed_by.join(", "),
                    next_open: w.next_open.map(rfc3339),
                }),
                auto_promotion_holds: s
                    .holds
                    .iter()
                    .map(|h| {
                        (
                            origin_key(&h.warehouse),
                            AutoPromotionHold {
                                freight_name: h.freight.clone(),
                                origin: origin(&h.warehouse),
                                promotion_name: h.promotion.clone(),
                                actor: h.actor.clone(),
                                created_at: Some(rfc3339(h.created_at)),
                            },
                        )
                    })
                    .collect(),
                barge: StageExtras {
                    requests: s.requests.clone(),
                    last_verification: s.last_verification.clone(),
                    approvals: s.approvals.clone(),
                },
            },
        }
    }

    /// The names of the AnalysisTemplates its verification runs.
    pub fn verification_templates(&self) -> Vec<String> {
        self.spec["verification"]["analysisTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Freight

/// Freight (Kargo's `freight_types.go`): its artifacts at the top level, as Kargo has them.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Freight {
    pub api_version: String,
    pub kind: String,
    pub metadata: Meta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_at: Option<String>,
    /// Its Warehouse.
    #[schema(value_type = Object)]
    pub origin: FreightOrigin,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub commits: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub images: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub charts: Vec<Value>,
    /// `currentlyIn`, `verifiedIn` (with `longestSoak`), `approvedFor`, by Stage.
    #[schema(value_type = Object)]
    pub status: FreightStatus,
}

impl Freight {
    pub fn of(f: &FreightInfo) -> Freight {
        let k = &f.freight;
        Freight {
            api_version: API_VERSION.into(),
            kind: FREIGHT.into(),
            metadata: Meta {
                creation_timestamp: Some(f.created.clone()),
                ..Meta::new(k.metadata.namespace.as_deref().unwrap_or_default(), &k.metadata.name)
            },
            alias: k.alias.clone(),
            discovered_at: k.discovered_at.clone().or_else(|| Some(f.created.clone())),
            origin: k.origin.clone().unwrap_or_else(|| origin(&f.warehouse)),
            commits: artifacts(&k.commits),
            images: artifacts(&k.images),
            charts: artifacts(&k.charts),
            status: f.status.clone(),
        }
    }

    /// Its Warehouse.
    pub fn warehouse(&self) -> &str {
        &self.origin.name
    }
}

/// Artifacts as Kargo prints them: without the fields they do not set.
fn artifacts<T: Serialize>(items: &[T]) -> Vec<Value> {
    items.iter().map(spec_value).collect()
}

// ---------------------------------------------------------------------------------------
// Promotion

/// A Promotion (Kargo's `promotion_types.go`); its creator is the `kargo.akuity.io/create-actor`
/// annotation, as Kargo records it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub api_version: String,
    pub kind: String,
    pub metadata: Meta,
    pub spec: PromotionSpec,
    pub status: PromotionStatus,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PromotionSpec {
    pub stage: String,
    /// The Freight's name.
    pub freight: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Errored` or `Aborted`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<FreightReference>,
    /// RFC 3339, once it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The index of the step running (or that ended it).
    #[serde(default)]
    pub current_step: usize,
    /// Each step's alias, status, errorCount, message, startedAt, finishedAt.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub step_execution_metadata: Vec<StepRecord>,
    /// The steps' outputs by alias; only when the promotion is asked for by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub state: Option<serde_json::Map<String, Value>>,
    pub barge: PromotionExtras,
}

/// What barge adds to a Promotion's status.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionExtras {
    /// RFC 3339: when it last changed.
    pub updated_at: String,
}

impl Promotion {
    pub fn of(p: &PromotionInfo) -> Promotion {
        let current_step = p
            .steps
            .iter()
            .position(|s| !matches!(s.status.as_str(), "Succeeded" | "Skipped"))
            .unwrap_or(p.steps.len().saturating_sub(1));
        Promotion {
            api_version: API_VERSION.into(),
            kind: PROMOTION.into(),
            metadata: Meta {
                creation_timestamp: Some(p.created_at.clone()),
                annotations: BTreeMap::from([(CREATE_ACTOR.to_string(), p.actor.clone())]),
                ..Meta::new(&p.project, &p.name)
            },
            spec: PromotionSpec {
                stage: p.stage.clone(),
                freight: p.freight.clone(),
            },
            status: PromotionStatus {
                phase: p.phase.to_string(),
                message: p.message.clone(),
                freight: Some(FreightReference {
                    name: p.freight.clone(),
                    origin: None,
                }),
                finished_at: p.phase.is_terminal().then(|| p.updated_at.clone()),
                current_step,
                step_execution_metadata: p.steps.clone(),
                state: p.outputs.clone(),
                barge: PromotionExtras {
                    updated_at: p.updated_at.clone(),
                },
            },
        }
    }

    /// Who created it (the annotation).
    pub fn actor(&self) -> &str {
        self.metadata.annotations.get(CREATE_ACTOR).map_or("", String::as_str)
    }

    /// The engine's answer this Promotion was made of ([`Promotion::of`] read back): the CLI
    /// reads a promotion from the REST API and prints it as in-process. `None` for a phase
    /// barge does not have.
    pub fn info(&self) -> Option<PromotionInfo> {
        Some(PromotionInfo {
            project: self.metadata.namespace.clone(),
            name: self.metadata.name.clone(),
            stage: self.spec.stage.clone(),
            freight: self.spec.freight.clone(),
            actor: self.actor().to_string(),
            phase: barge_core::promotion::Phase::parse(&self.status.phase)?,
            message: self.status.message.clone(),
            created_at: self.metadata.creation_timestamp.clone().unwrap_or_default(),
            updated_at: self.status.barge.updated_at.clone(),
            steps: self.status.step_execution_metadata.clone(),
            outputs: self.status.state.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Warehouse

/// A Warehouse (Kargo's `warehouse_types.go`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Warehouse {
    pub api_version: String,
    pub kind: String,
    pub metadata: Meta,
    /// The definition, with `interval` as barge runs it (Kargo's default 5m when it names none).
    #[schema(value_type = Object)]
    pub spec: Value,
    pub status: WarehouseStatus,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseStatus {
    /// `Healthy`, once a discovery pass ran: False with the first failed subscription.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The newest Freight's name.
    #[serde(default, rename = "lastFreightID", skip_serializing_if = "Option::is_none")]
    pub last_freight_id: Option<String>,
    /// `{"discoveredAt"}`: when the last discovery pass ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub discovered_artifacts: Option<Value>,
    pub barge: WarehouseExtras,
}

/// What barge adds to a Warehouse's status.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseExtras {
    /// How many Freight it has minted.
    pub freight: usize,
    /// The newest Freight's alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
}

impl Warehouse {
    pub fn of(w: &WarehouseSummary) -> Warehouse {
        let mut spec = w.spec.as_ref().map(spec_value).unwrap_or_else(|| serde_json::json!({}));
        spec["interval"] = w.interval.clone().into();
        let at = w.last_discovery.map(rfc3339);
        let healthy = w.last_discovery.map(|_| match &w.error {
            Some(e) => Condition::new("Healthy", false, "DiscoveryFailed", e.clone(), at.clone()),
            None => Condition::new("Healthy", true, "DiscoverySucceeded", String::new(), at.clone()),
        });
        Warehouse {
            api_version: API_VERSION.into(),
            kind: WAREHOUSE.into(),
            metadata: Meta::new(&w.project, &w.name),
            spec,
            status: WarehouseStatus {
                conditions: healthy.into_iter().collect(),
                last_freight_id: w.last_freight.clone(),
                discovered_artifacts: at.map(|at| serde_json::json!({"discoveredAt": at})),
                barge: WarehouseExtras {
                    freight: w.freight,
                    newest: w.newest.clone(),
                },
            },
        }
    }

    /// Its subscriptions.
    pub fn subscriptions(&self) -> usize {
        self.spec["subscriptions"].as_array().map_or(0, Vec::len)
    }

    /// Why its last discovery pass failed, if it did.
    pub fn error(&self) -> Option<&str> {
        self.status
            .conditions
            .iter()
            .find(|c| c.kind == "Healthy" && c.status == "False")
            .map(|c| c.message.as_str())
    }

    /// When its last discovery pass ran (RFC 3339).
    pub fn discovered_at(&self) -> Option<&str> {
        self.status.discovered_artifacts.as_ref()?["discoveredAt"].as_str()
    }
}

// ---------------------------------------------------------------------------------------
// Project

/// A Project (Kargo's `project_types.go`): a namespace with Stages and Warehouses.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub api_version: String,
    pub kind: String,
    pub metadata: Meta,
    pub status: ProjectStatus,
}

/// Kargo's ProjectStatus: `stats` counts the Warehouses and Stages.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectStatus {
    /// `{"warehouses": {"count"}, "stages": {"count"}}`.
    #[schema(value_type = Object)]
    pub stats: Value,
    pub barge: ProjectExtras,
}

/// What barge adds to a Project's status: its resources' names.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectExtras {
    pub stages: Vec<String>,
    pub warehouses: Vec<String>,
}

impl Project {
    pub fn of(name: &str, stages: Vec<String>, warehouses: Vec<String>) -> Project {
        Project {
            api_version: API_VERSION.into(),
            kind: PROJECT.into(),
            metadata: Meta::new("", name),
            status: ProjectStatus {
                stats: serde_json::json!({
                    "warehouses": {"count": warehouses.len()},
                    "stages": {"count": stages.len()},
                }),
                barge: ProjectExtras { stages, warehouses },
            },
        }
    }

    /// Every project of these Stages and Warehouses, sorted by name.
    pub fn all(stages: &[EngineStage], warehouses: &[WarehouseSummary]) -> Vec<Project> {
        let mut by: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for s in stages {
            by.entry(&s.project).or_default().0.push(s.name.clone());
        }
        for w in warehouses {
            by.entry(&w.project).or_default().1.push(w.name.clone());
        }
        by.into_iter().map(|(p, (s, w))| Project::of(p, s, w)).collect()
    }
}

/// An engine answer's objects as Kargo's resources, when it has that kind.
pub fn objects(answer: &crate::Answer) -> Option<Vec<Value>> {
    use crate::Answer;
    let to = |v: Result<Value, serde_json::Error>| v.ok();
    let values = match answer {
        Answer::Stages(l) => to(serde_json::to_value(l.iter().map(Stage::of).collect::<Vec<_>>())),
        Answer::Freight(l) => to(serde_json::to_value(l.iter().map(Freight::of).collect::<Vec<_>>())),
        Answer::Promotions(l) => to(serde_json::to_value(l.iter().map(Promotion::of).collect::<Vec<_>>())),
        Answer::Warehouses(l) => to(serde_json::to_value(l.iter().map(Warehouse::of).collect::<Vec<_>>())),
        _ => None,
    }?;
    match values {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::CurrentFreight;
    use barge_core::promotion::Phase;
    use serde_json::json;

    fn engine_stage() -> EngineStage {
        EngineStage {
            project: "shop".into(),
            name: "dev".into(),
            auto_promotion: true,
            steps: 0,
            verification: Vec::new(),
            requests: vec![RequestStatus {
                warehouse: "images".into(),
                current: Some(CurrentFreight {
                    name: "abc123".into(),
                    alias: "wise-fox".into(),
                    since: 1_700_000_000_000,
                    verification: "Succeeded".into(),
                }),
                state: "Waiting".into(),
                candidate: Some("def456".into()),
                reason: Some("HeldBy".into()),
                message: "held by alice".into(),
            }],
            window: None,
            holds: vec![barge_store::StageHold {
                project: "shop".into(),
                stage: "dev".into(),
                warehouse: "images".into(),
                freight: "abc123".into(),
                promotion: "dev.1".into(),
                actor: "alice".into(),
                created_at: 1_700_000_000_000,
            }],
            current_promotion: None,
            last_promotion: Some(PromotionRef {
                name: "dev.1".into(),
                freight: "abc123".into(),
                phase: Phase::Succeeded,
                message: String::new(),
                actor: "alice".into(),
            }),
            last_verification: None,
            health: None,
            spec: None,
            approval_policy: None,
            approvals: BTreeMap::from([(
                "abc123".into(),
                vec![crate::answer::ApproverInfo {
                    approver: "token:bob".into(),
                    role: "promoter".into(),
                    approved_at: "2023-11-14T22:13:20Z".into(),
                }],
            )]),
        }
    }

    #[test]
    fn a_stage_carries_kargos_fields_and_barges_under_status_barge() {
        let v = serde_json::to_value(Stage::of(&engine_stage())).unwrap();
        assert_eq!(v["apiVersion"], "kargo.akuity.io/v1alpha1");
        assert_eq!(v["kind"], "Stage");
        assert_eq!(v["metadata"], json!({"name": "dev", "namespace": "shop"}));
        let status = &v["status"];
        assert_eq!(status["freightSummary"], "abc123");
        assert_eq!(
            status["freightHistory"][0]["items"]["Warehouse/images"],
            json!({"name": "abc123", "origin": {"kind": "Warehouse", "name": "images"}})
        );
        assert_eq!(status["lastPromotion"]["name"], "dev.1");
        assert_eq!(status["lastPromotion"]["status"]["phase"], "Succeeded");
        assert_eq!(status["lastPromotion"]["freight"]["origin"]["name"], "images");
        assert_eq!(status["autoPromotionEnabled"], true);
        let hold = &status["autoPromotionHolds"]["Warehouse/images"];
        assert_eq!(hold["freightName"], "abc123");
        assert_eq!(hold["actor"], "alice");
        assert_eq!(hold["createdAt"], "2023-11-14T22:13:20Z");
        assert_eq!(status["conditions"][0]["type"], "Promoting");
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["barge"]["requests"][0]["reason"], "HeldBy");
        assert_eq!(status["barge"]["approvals"]["abc123"][0]["approver"], "token:bob");
        // It reads back as it was written (the CLI reads the server's answer).
        let back: Stage = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), v);
    }

    #[test]
    fn a_promotion_names_its_creator_as_kargo_does() {
        let p = PromotionInfo {
            project: "shop".into(),
            name: "dev.1".into(),
            stage: "dev".into(),
            freight: "abc123".into(),
            actor: "alice".into(),
            phase: Phase::Succeeded,
            message: String::new(),
            created_at: "2023-11-14T22:13:20Z".into(),
            updated_at: "2023-11-14T22:14:00Z".into(),
            steps: Vec::new(),
            outputs: None,
        };
        let v = serde_json::to_value(Promotion::of(&p)).unwrap();
        assert_eq!(v["kind"], "Promotion");
        assert_eq!(v["metadata"]["annotations"]["kargo.akuity.io/create-actor"], "alice");
        assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["spec"], json!({"stage": "dev", "freight": "abc123"}));
        assert_eq!(v["status"]["phase"], "Succeeded");
        assert_eq!(v["status"]["finishedAt"], "2023-11-14T22:14:00Z");
        // It reads back as the engine's answer it was made of (`promote --wait --server`).
        let back: Promotion = serde_json::from_value(v).unwrap();
        let info = back.info().unwrap();
        assert_eq!(serde_json::to_value(info).unwrap(), serde_json::to_value(&p).unwrap());
    }
}
