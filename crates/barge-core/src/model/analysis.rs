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
    /// Arguments, referenced in metrics as `{{args.<name>}}`.
    #[serde(default)]
    pub args: Vec<AnalysisArg>,
    /// The measurements; the run's phase is the worst metric's.
    #[serde(default)]
    pub metrics: Vec<Metric>,
    /// Metrics whose failures do not fail the run (`*` for all).
    #[serde(default)]
    pub dry_run: Vec<MetricSelector>,
    /// How many measurements to keep per metric.
    #[serde(default)]
    pub measurement_retention: Vec<MeasurementRetention>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisArg {
    /// Argument name.
    #[serde(default)]
    pub name: String,
    /// Default value; no value and no valueFrom means the caller must set it.
    #[serde(default)]
    pub value: Option<String>,
    /// Take the value from a secret or a field of the rollout.
    #[serde(default)]
    pub value_from: Option<ArgValueFrom>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ArgValueFrom {
    /// A key of a secret (barge's secret store).
    #[serde(default)]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A field path of the Rollout (e.g. the canary pod template hash).
    #[serde(default)]
    pub field_ref: Option<FieldRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Key in the secret.
    #[serde(default)]
    pub key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// JSON path of the field.
    #[serde(default)]
    pub field_path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSelector {
    /// A metric of this template, or `*`.
    #[serde(default)]
    pub metric_name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// A metric of this template, or `*`.
    #[serde(default)]
    pub metric_name: String,
    /// Measurements to keep.
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
        Shape::Scalar("integer or string")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Metric name (unique in the template).
    #[serde(default)]
    pub name: String,
    /// Time between measurements, from the end of the previous one (Go duration).
    #[serde(default)]
    pub interval: Option<String>,
    /// Wait before the first measurement (Go duration).
    #[serde(default)]
    pub initial_delay: Option<String>,
    /// Number of measurements (default 1; 0 with an interval means until stopped).
    #[serde(default)]
    pub count: Option<IntOrString>,
    /// expr-lang condition over `result` that marks a measurement Successful.
    #[serde(default)]
    pub success_condition: Option<String>,
    /// expr-lang condition over `result` that marks a measurement Failed.
    #[serde(default)]
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated before the metric fails (default 0).
    #[serde(default)]
    pub failure_limit: Option<IntOrString>,
    /// Inconclusive measurements tolerated (default 0).
    #[serde(default)]
    pub inconclusive_limit: Option<IntOrString>,
    /// Consecutive measurement errors tolerated (default 4).
    #[serde(default)]
    pub consecutive_error_limit: Option<IntOrString>,
    /// Consecutive successes that end the metric early.
    #[serde(default)]
    pub consecutive_success_limit: Option<IntOrString>,
    /// Where measurements come from: prometheus, web or job (others are kept, not run).
    #[serde(default)]
    pub provider: MetricProvider,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// A PromQL query.
    #[serde(default)]
    pub prometheus: Option<PrometheusMetric>,
    /// An HTTP request; the JSON response (or a JSONPath of it) is the result.
    #[serde(default)]
    pub web: Option<WebMetric>,
    /// A Kubernetes Job; success or failure of the Job is the result.
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
    /// Prometheus base URL.
    #[serde(default)]
    pub address: Option<String>,
    /// PromQL query (`{{args.x}}` is substituted).
    #[serde(default)]
    pub query: Option<String>,
    /// Query timeout in seconds.
    #[serde(default)]
    pub timeout: Option<i64>,
    /// Skip TLS verification.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: Vec<WebHeader>,
    /// sigv4 or oauth2 settings.
    #[serde(default)]
    pub authentication: Option<Value>,
    /// Range query start, end and step.
    #[serde(default)]
    pub range_query: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    /// URL to call.
    #[serde(default)]
    pub url: Option<String>,
    /// GET (default), POST or PUT.
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: Vec<WebHeader>,
    /// Request body.
    #[serde(default)]
    pub body: Option<String>,
    /// Request body as JSON.
    #[serde(default)]
    pub json_body: Option<Value>,
    /// Request timeout (default 10).
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    /// Kubernetes JSONPath selecting the result from the response.
    #[serde(default)]
    pub json_path: Option<String>,
    /// Skip TLS verification.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// oauth2 settings.
    #[serde(default)]
    pub authentication: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WebHeader {
    /// Header name.
    #[serde(default)]
    pub key: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetric {
    /// Labels and annotations for the Job.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// A batch/v1 JobSpec.
    #[serde(default)]
    pub spec: Option<Value>,
}
