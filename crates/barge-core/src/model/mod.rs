//! The resource model: Kargo's v1alpha1 kinds, Argo Rollouts analysis templates and barge's
//! `Pipeline` shorthand, as serde types.

pub mod analysis;
pub mod kargo;
pub mod notify;
pub mod pipeline;

use crate::schema::Schema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Kubernetes object metadata (the fields people write; server-set ones are accepted too).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The resource's name (RFC 1123).
    #[serde(default)]
    pub name: String,
    /// The project. When omitted: the only Project loaded, if there is exactly one.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Server-side name prefix (accepted, unused).
    #[serde(default)]
    pub generate_name: Option<String>,
    /// Labels (Stage labels are matched by promotion policies).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub finalizers: Vec<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub owner_references: Vec<Value>,
    /// Accepted and ignored.
    #[serde(default)]
    pub uid: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub resource_version: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub generation: Option<i64>,
    /// Accepted and ignored.
    #[serde(default)]
    pub creation_timestamp: Option<Value>,
    /// Accepted and ignored.
    #[serde(default)]
    pub deletion_timestamp: Option<Value>,
    /// Accepted and ignored.
    #[serde(default)]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Accepted and ignored.
    #[serde(default)]
    pub managed_fields: Vec<Value>,
}

/// A named value; Kargo evaluates `${{ }}` in it. A task var without a value is required.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Var {
    /// Var name.
    #[serde(default)]
    pub name: String,
    /// Value; may use `${{ }}`. In a PromotionTask, no value means the caller must set it.
    #[serde(default)]
    pub value: Option<Value>,
}

/// Every kind barge loads, with the API group/version it is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    Project,
    ProjectConfig,
    ClusterConfig,
    Warehouse,
    Stage,
    PromotionTask,
    ClusterPromotionTask,
    Freight,
    CustomPromotionStep,
    MessageChannel,
    ClusterMessageChannel,
    EventRouter,
    AnalysisTemplate,
    ClusterAnalysisTemplate,
    Pipeline,
}

pub const KARGO_API: &str = "kargo.akuity.io/v1alpha1";
pub const KARGO_EE_API: &str = "ee.kargo.akuity.io/v1alpha1";
pub const ROLLOUTS_API: &str = "argoproj.io/v1alpha1";
pub const BARGE_API: &str = "barge.dev/v1alpha1";

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Project,
        Kind::ProjectConfig,
        Kind::ClusterConfig,
        Kind::Warehouse,
        Kind::Stage,
        Kind::PromotionTask,
        Kind::ClusterPromotionTask,
        Kind::Freight,
        Kind::CustomPromotionStep,
        Kind::MessageChannel,
        Kind::ClusterMessageChannel,
        Kind::EventRouter,
        Kind::AnalysisTemplate,
        Kind::ClusterAnalysisTemplate,
        Kind::Pipeline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::ProjectConfig => "ProjectConfig",
            Kind::ClusterConfig => "ClusterConfig",
            Kind::Warehouse => "Warehouse",
            Kind::Stage => "Stage",
            Kind::PromotionTask => "PromotionTask",
            Kind::ClusterPromotionTask => "ClusterPromotionTask",
            Kind::Freight => "Freight",
            Kind::CustomPromotionStep => "CustomPromotionStep",
            Kind::MessageChannel => "MessageChannel",
            Kind::ClusterMessageChannel => "ClusterMessageChannel",
            Kind::EventRouter => "EventRouter",
            Kind::AnalysisTemplate => "AnalysisTemplate",
            Kind::ClusterAnalysisTemplate => "ClusterAnalysisTemplate",
            Kind::Pipeline => "Pipeline",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::AnalysisTemplate | Kind::ClusterAnalysisTemplate => ROLLOUTS_API,
            Kind::CustomPromotionStep | Kind::MessageChannel | Kind::ClusterMessageChannel | Kind::EventRouter => {
                KARGO_EE_API
            }
            Kind::Pipeline => BARGE_API,
            _ => KARGO_API,
        }
    }

    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == kind)
    }

    /// Cluster-scoped kinds have no namespace (project).
    pub fn cluster_scoped(self) -> bool {
        matches!(
            self,
            Kind::Project
                | Kind::ClusterConfig
                | Kind::ClusterPromotionTask
                | Kind::ClusterAnalysisTemplate
                | Kind::ClusterMessageChannel
        )
    }

    /// The schema of this kind's documents.
    pub fn shape(self) -> crate::schema::Shape {
        use crate::schema::Schema;
        match self {
            Kind::Project => kargo::Project::shape(),
            Kind::ProjectConfig => kargo::ProjectConfig::shape(),
            Kind::ClusterConfig => kargo::ClusterConfig::shape(),
            Kind::Warehouse => kargo::Warehouse::shape(),
            Kind::Stage => kargo::Stage::shape(),
            Kind::PromotionTask => kargo::PromotionTask::shape(),
            Kind::ClusterPromotionTask => kargo::ClusterPromotionTask::shape(),
            Kind::Freight => kargo::Freight::shape(),
            Kind::CustomPromotionStep => kargo::CustomPromotionStep::shape(),
            Kind::MessageChannel => notify::MessageChannel::shape(),
            Kind::ClusterMessageChannel => notify::ClusterMessageChannel::shape(),
            Kind::EventRouter => notify::EventRouter::shape(),
            Kind::AnalysisTemplate => analysis::AnalysisTemplate::shape(),
            Kind::ClusterAnalysisTemplate => analysis::ClusterAnalysisTemplate::shape(),
            Kind::Pipeline => pipeline::Pipeline::shape(),
        }
    }

    /// The API group of the version string (`kargo.akuity.io` of `kargo.akuity.io/v1alpha1`).
    pub fn group(self) -> &'static str {
        self.api_version().split('/').next().unwrap_or_default()
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource's typed content.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Project(kargo::Project),
    ProjectConfig(kargo::ProjectConfig),
    ClusterConfig(kargo::ClusterConfig),
    Warehouse(kargo::Warehouse),
    Stage(kargo::Stage),
    PromotionTask(kargo::PromotionTask),
    ClusterPromotionTask(kargo::ClusterPromotionTask),
    Freight(kargo::Freight),
    CustomPromotionStep(kargo::CustomPromotionStep),
    MessageChannel(notify::MessageChannel),
    ClusterMessageChannel(notify::ClusterMessageChannel),
    EventRouter(notify::EventRouter),
    AnalysisTemplate(analysis::AnalysisTemplate),
    ClusterAnalysisTemplate(analysis::ClusterAnalysisTemplate),
    Pipeline(pipeline::Pipeline),
}

impl Body {
    /// Serializes back to the JSON a Kubernetes API server would hold (nulls and empty
    /// collections dropped), for `plan --expand` and `-o json|yaml`.
    pub fn to_json(&self) -> Value {
        let v = match self {
            Body::Project(x) => serde_json::to_value(x),
            Body::ProjectConfig(x) => serde_json::to_value(x),
            Body::ClusterConfig(x) => serde_json::to_value(x),
            Body::Warehouse(x) => serde_json::to_value(x),
            Body::Stage(x) => serde_json::to_value(x),
            Body::PromotionTask(x) => serde_json::to_value(x),
            Body::ClusterPromotionTask(x) => serde_json::to_value(x),
            Body::Freight(x) => serde_json::to_value(x),
            Body::CustomPromotionStep(x) => serde_json::to_value(x),
            Body::MessageChannel(x) => serde_json::to_value(x),
            Body::ClusterMessageChannel(x) => serde_json::to_value(x),
            Body::EventRouter(x) => serde_json::to_value(x),
            Body::AnalysisTemplate(x) => serde_json::to_value(x),
            Body::ClusterAnalysisTemplate(x) => serde_json::to_value(x),
            Body::Pipeline(x) => serde_json::to_value(x),
        };
        prune(v.unwrap_or(Value::Null))
    }
}

/// Drops nulls and empty lists/maps, recursively.
pub fn prune(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, prune(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(prune).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// docs/reference/resources.md: every kind barge reads and every field of it, generated from
/// the model so the reference cannot drift from what barge accepts.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Resource reference\n\n<!-- Generated from crates/barge-core/src/model by the `reference_docs_are_current` test; \
         run `BARGE_BLESS=1 cargo test --test docs` after changing the model. -->\n\n\
         Every kind barge loads and every field it accepts. Fields not listed here are reported as \
         `unknown-field` warnings and ignored. `status` is accepted everywhere and ignored.\n\n\
         | kind | apiVersion | scope |\n|---|---|---|\n",
    );
    for k in Kind::ALL {
        out.push_str(&format!(
            "| [{k}](#{}) | `{}` | {} |\n",
            k.as_str().to_lowercase(),
            k.api_version(),
            if k.cluster_scoped() {
                "cluster"
            } else {
                "project (namespace)"
            }
        ));
    }
    out.push('\n');
    let roots: Vec<(&str, crate::schema::Shape)> = Kind::ALL.iter().map(|k| (k.as_str(), k.shape())).collect();
    out.push_str(&crate::schema::render_reference(&roots));
    out
}
