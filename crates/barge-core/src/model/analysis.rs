//! Argo Rollouts' `argoproj.io/v1alpha1` AnalysisTemplate and ClusterAnalysisTemplate, with the
//! full metric schema. Providers barge cannot run are kept as opaque data (`other`).

use super::ObjectMeta;
use super::kargo::resource;
use crate::schema::{Schema, Shape};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

resource!(AnalysisTemplate, AnalysisTemplateSpec);
resource!(ClusterAnalysisTemplate, AnalysisTemplateSpec);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    #[serde(default)]
    pub args: Vec<AnalysisArg>,
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub dry_run: Vec<MetricSelector>,
    #[serde(default)]
    pub measurement_retention: Vec<MeasurementRetention>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisArg {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_from: Option<ArgValueFrom>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ArgValueFrom {
    #[serde(default)]
    pub secret_key_ref: Option<SecretKeyRef>,
    #[serde(default)]
    pub field_ref: Option<FieldRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    #[serde(default)]
    pub field_path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSelector {
    #[serde(default)]
    pub metric_name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    #[serde(default)]
    pub metric_name: String,
    #[serde(default)]
    pub limit: Option<i64>,
}

/// An int-or-string (Kubernetes `intstr`): Rollouts lets counts be `{{args.count}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl Schema for IntOrString {
    fn shape() -> Shape {
        Shape::Scalar
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub initial_delay: Option<String>,
    #[serde(default)]
    pub count: Option<IntOrString>,
    #[serde(default)]
    pub success_condition: Option<String>,
    #[serde(default)]
    pub failure_condition: Option<String>,
    #[serde(default)]
    pub failure_limit: Option<IntOrString>,
    #[serde(default)]
    pub inconclusive_limit: Option<IntOrString>,
    #[serde(default)]
    pub consecutive_error_limit: Option<IntOrString>,
    #[serde(default)]
    pub consecutive_success_limit: Option<IntOrString>,
    #[serde(default)]
    pub provider: MetricProvider,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    #[serde(default)]
    pub prometheus: Option<PrometheusMetric>,
    #[serde(default)]
    pub web: Option<WebMetric>,
    #[serde(default)]
    pub job: Option<JobMetric>,
    /// Providers barge does not run (datadog, newRelic, wavefront, kayenta, cloudWatch,
    /// graphite, influxdb, skywalking, plugin, ...), kept verbatim.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl MetricProvider {
    /// The provider's name as written in the template.
    pub fn names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        if self.prometheus.is_some() {
            names.push("prometheus");
        }
        if self.web.is_some() {
            names.push("web");
        }
        if self.job.is_some() {
            names.push("job");
        }
        names.extend(self.other.keys().map(String::as_str));
        names
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub insecure: Option<bool>,
    #[serde(default)]
    pub headers: Vec<WebHeader>,
    #[serde(default)]
    pub authentication: Option<Value>,
    #[serde(default)]
    pub range_query: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: Vec<WebHeader>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub json_body: Option<Value>,
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    #[serde(default)]
    pub json_path: Option<String>,
    #[serde(default)]
    pub insecure: Option<bool>,
    #[serde(default)]
    pub authentication: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WebHeader {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetric {
    #[serde(default)]
    pub metadata: Option<Value>,
    /// A batch/v1 JobSpec.
    #[serde(default)]
    pub spec: Option<Value>,
}
