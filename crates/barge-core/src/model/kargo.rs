//! Kargo's `kargo.akuity.io/v1alpha1` resources, field for field (shared/reference/kargo.md §1).
//!
//! Enumerations (strategies, policies) and durations are kept as strings: a bad value must
//! become a diagnostic at its position, not a deserialization failure that loses the resource.

use super::{ObjectMeta, Var};
use crate::schema::Schema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

macro_rules! resource {
    ($(#[$doc:meta])* $name:ident, $spec:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[serde(default)]
            pub api_version: String,
            #[serde(default)]
            pub kind: String,
            #[serde(default)]
            pub metadata: ObjectMeta,
            #[serde(default)]
            pub spec: Option<$spec>,
            /// Status exported from a cluster is accepted and ignored.
            #[serde(default)]
            pub status: Option<Value>,
        }
    };
}
pub(crate) use resource;

resource!(
    /// A project (a namespace in Kargo). Its `spec.promotionPolicies` is the pre-v1.7 spelling
    /// of ProjectConfig's.
    Project,
    ProjectSpec
);
resource!(ProjectConfig, ProjectConfigSpec);
resource!(ClusterConfig, ClusterConfigSpec);
resource!(Warehouse, WarehouseSpec);
resource!(Stage, StageSpec);
resource!(PromotionTask, PromotionTaskSpec);
resource!(ClusterPromotionTask, PromotionTaskSpec);
resource!(
    /// Kargo Enterprise's container-based custom step (`ee.kargo.akuity.io`). barge loads it
    /// so steps that use it are recognised, and reports that it cannot run them.
    CustomPromotionStep,
    Value
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSpec {
    #[serde(default)]
    pub promotion_policies: Vec<PromotionPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectConfigSpec {
    #[serde(default)]
    pub promotion_policies: Vec<PromotionPolicy>,
    #[serde(default)]
    pub webhook_receivers: Vec<WebhookReceiver>,
    #[serde(default)]
    pub freight_links: Vec<Link>,
    #[serde(default)]
    pub stage_links: Vec<Link>,
    /// Kargo Enterprise's promotion windows; barge's own windows land with the engine.
    #[serde(default)]
    pub promotion_windows: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfigSpec {
    #[serde(default)]
    pub webhook_receivers: Vec<WebhookReceiver>,
    #[serde(default)]
    pub git_client: Option<GitClient>,
    #[serde(default)]
    pub freight_links: Vec<Link>,
    #[serde(default)]
    pub stage_links: Vec<Link>,
    #[serde(default)]
    pub promotion_windows: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct GitClient {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub signing_key_secret: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionPolicy {
    #[serde(default)]
    pub stage_selector: Option<StageSelector>,
    /// Deprecated: an exact Stage name.
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub auto_promotion_enabled: Option<bool>,
    #[serde(default)]
    pub auto_rollback: Option<AutoRollback>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct StageSelector {
    /// An exact name, or a pattern prefixed `regex:`, `regexp:` or `glob:`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AutoRollback {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub on_promotion: Vec<String>,
    #[serde(default)]
    pub on_verification: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceiver {
    #[serde(default)]
    pub name: String,
    /// One provider key (github, gitlab, quay, dockerhub, artifactory, bitbucket, azure,
    /// gitea, generic) with its secretRef; kept as data until barge serves webhooks.
    #[serde(flatten)]
    pub provider: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "if")]
    pub if_: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseSpec {
    #[serde(default)]
    pub shard: Option<String>,
    /// Go duration, default `5m0s`.
    #[serde(default)]
    pub interval: Option<String>,
    /// `Automatic` (default) or `Manual`.
    #[serde(default)]
    pub freight_creation_policy: Option<String>,
    #[serde(default)]
    pub freight_creation_criteria: Option<FreightCreationCriteria>,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FreightCreationCriteria {
    #[serde(default)]
    pub expression: Option<String>,
}

/// One subscription: exactly one of `image`, `git`, `chart`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image: Option<ImageSubscription>,
    #[serde(default)]
    pub git: Option<GitSubscription>,
    #[serde(default)]
    pub chart: Option<ChartSubscription>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSubscription {
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// Deprecated link to the image's source repository.
    #[serde(default, rename = "gitRepoURL")]
    pub git_repo_url: Option<String>,
    /// `SemVer` (default), `Lexical`, `Digest` or `NewestBuild`.
    #[serde(default)]
    pub image_selection_strategy: Option<String>,
    #[serde(default)]
    pub constraint: Option<String>,
    /// The pre-v1.9 spelling of `constraint` (SemVer strategy).
    #[serde(default)]
    pub semver_constraint: Option<String>,
    /// Deprecated single regex; Kargo ≥1.11 fails discovery with it, barge still reads it.
    #[serde(default)]
    pub allow_tags: Option<String>,
    #[serde(default)]
    pub ignore_tags: Vec<String>,
    #[serde(default)]
    pub allow_tags_regexes: Vec<String>,
    #[serde(default)]
    pub ignore_tags_regexes: Vec<String>,
    /// Default true: only full major.minor.patch versions count.
    #[serde(default)]
    pub strict_semvers: Option<bool>,
    /// `os/arch[/variant]`.
    #[serde(default)]
    pub platform: Option<String>,
    /// Default 20, at most 100.
    #[serde(default)]
    pub discovery_limit: Option<i64>,
    #[serde(default)]
    pub cache_by_tag: Option<bool>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct GitSubscription {
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// `NewestFromBranch` (default), `SemVer`, `Lexical` or `NewestTag`.
    #[serde(default)]
    pub commit_selection_strategy: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub semver_constraint: Option<String>,
    #[serde(default)]
    pub allow_tags: Option<String>,
    #[serde(default)]
    pub ignore_tags: Vec<String>,
    #[serde(default)]
    pub allow_tags_regexes: Vec<String>,
    #[serde(default)]
    pub ignore_tags_regexes: Vec<String>,
    #[serde(default)]
    pub expression_filter: Option<String>,
    #[serde(default)]
    pub include_paths: Vec<String>,
    #[serde(default)]
    pub exclude_paths: Vec<String>,
    #[serde(default)]
    pub discovery_limit: Option<i64>,
    /// RFC 3339 cutoff for the branch strategy.
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub strict_semvers: Option<bool>,
    #[serde(default)]
    pub blobless: Option<bool>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ChartSubscription {
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// Required for classic HTTP repositories, forbidden for `oci://`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub semver_constraint: Option<String>,
    #[serde(default)]
    pub discovery_limit: Option<i64>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct StageSpec {
    #[serde(default)]
    pub shard: Option<String>,
    #[serde(default)]
    pub vars: Vec<Var>,
    #[serde(default)]
    pub requested_freight: Vec<FreightRequest>,
    #[serde(default)]
    pub promotion_template: Option<PromotionTemplate>,
    #[serde(default)]
    pub verification: Option<Verification>,
    /// Kargo's in-development Target selectors, kept as data.
    #[serde(default)]
    pub targets: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FreightRequest {
    #[serde(default)]
    pub origin: FreightOrigin,
    #[serde(default)]
    pub sources: FreightSources,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FreightOrigin {
    /// Only `Warehouse` exists today.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FreightSources {
    #[serde(default)]
    pub direct: Option<bool>,
    #[serde(default)]
    pub stages: Vec<String>,
    #[serde(default)]
    pub required_soak_time: Option<String>,
    /// `OneOf` (default) or `All`.
    #[serde(default)]
    pub availability_strategy: Option<String>,
    #[serde(default)]
    pub auto_promotion_options: Option<AutoPromotionOptions>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AutoPromotionOptions {
    /// `NewestFreight` (default) or `MatchUpstream`.
    #[serde(default)]
    pub selection_policy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionTemplate {
    #[serde(default)]
    pub spec: PromotionTemplateSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionTemplateSpec {
    #[serde(default)]
    pub vars: Vec<Var>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionTaskSpec {
    /// A var without a value is required from the calling step.
    #[serde(default)]
    pub vars: Vec<Var>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// The step envelope: `{uses | task, as, if, continueOnError, retry, vars, config}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    #[serde(default)]
    pub uses: Option<String>,
    #[serde(default)]
    pub task: Option<TaskRef>,
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
    #[serde(default, rename = "if")]
    pub if_: Option<String>,
    #[serde(default)]
    pub continue_on_error: Option<bool>,
    #[serde(default)]
    pub retry: Option<StepRetry>,
    #[serde(default)]
    pub vars: Vec<Var>,
    /// Step-specific configuration; its fields may hold `${{ }}` expressions.
    #[serde(default)]
    pub config: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    #[serde(default)]
    pub name: String,
    /// `PromotionTask` (default) or `ClusterPromotionTask`.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct StepRetry {
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub error_threshold: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    #[serde(default)]
    pub analysis_templates: Vec<AnalysisTemplateRef>,
    #[serde(default)]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    #[serde(default)]
    pub args: Vec<AnalysisArgValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    #[serde(default)]
    pub name: String,
    /// `AnalysisTemplate` (default) or `ClusterAnalysisTemplate`.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunMetadata {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisArgValue {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: Option<Value>,
}

/// Freight as Kargo stores it: an immutable set of artifact versions from one origin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Freight {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub discovered_at: Option<String>,
    #[serde(default)]
    pub origin: Option<FreightOrigin>,
    #[serde(default)]
    pub commits: Vec<GitCommit>,
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub charts: Vec<Chart>,
    #[serde(default)]
    pub artifacts: Vec<Value>,
    #[serde(default)]
    pub status: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct GitCommit {
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub committer: Option<String>,
    #[serde(default)]
    pub subscription_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub subscription_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub subscription_name: Option<String>,
}
