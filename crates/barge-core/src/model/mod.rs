//! The resource model: Kargo's v1alpha1 kinds, Argo Rollouts analysis templates and barge's
//! `Pipeline` shorthand, as serde types.

pub mod analysis;
pub mod kargo;
pub mod pipeline;

use crate::schema::Schema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Kubernetes object metadata (the fields people write; server-set ones are accepted too).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub generate_name: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub finalizers: Vec<String>,
    #[serde(default)]
    pub owner_references: Vec<Value>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub resource_version: Option<String>,
    #[serde(default)]
    pub generation: Option<i64>,
    #[serde(default)]
    pub creation_timestamp: Option<Value>,
    #[serde(default)]
    pub deletion_timestamp: Option<Value>,
    #[serde(default)]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub managed_fields: Vec<Value>,
}

/// A named value; Kargo evaluates `${{ }}` in it. A task var without a value is required.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Var {
    #[serde(default)]
    pub name: String,
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
            Kind::AnalysisTemplate => "AnalysisTemplate",
            Kind::ClusterAnalysisTemplate => "ClusterAnalysisTemplate",
            Kind::Pipeline => "Pipeline",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::AnalysisTemplate | Kind::ClusterAnalysisTemplate => ROLLOUTS_API,
            Kind::CustomPromotionStep => KARGO_EE_API,
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
            Kind::Project | Kind::ClusterConfig | Kind::ClusterPromotionTask | Kind::ClusterAnalysisTemplate
        )
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
