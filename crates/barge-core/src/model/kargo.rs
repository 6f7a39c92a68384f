//! Kargo's `kargo.akuity.io/v1alpha1` resources, field for field (Kargo's
//! `api/v1alpha1/*_types.go`).
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
            /// `kargo.akuity.io/v1alpha1` (Argo Rollouts kinds: `argoproj.io/v1alpha1`).
            #[serde(default)]
            pub api_version: String,
            /// The kind's name.
            #[serde(default)]
            pub kind: String,
            /// Name, namespace (the project), labels and annotations.
            #[serde(default)]
            pub metadata: ObjectMeta,
            /// The resource's specification.
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
    /// Deprecated (moved to ProjectConfig in Kargo v1.7); still read.
    #[serde(default)]
    pub promotion_policies: Vec<PromotionPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectConfigSpec {
    /// Which Stages may auto-promote. Auto-promotion is enabled only here, never on a Stage.
    #[serde(default)]
    pub promotion_policies: Vec<PromotionPolicy>,
    /// Inbound webhooks that refresh Warehouses (docs/reference/webhooks.md).
    #[serde(default)]
    pub webhook_receivers: Vec<WebhookReceiver>,
    /// UI deep links for Freight.
    #[serde(default)]
    pub freight_links: Vec<Link>,
    /// UI deep links for Stages.
    #[serde(default)]
    pub stage_links: Vec<Link>,
    /// Kargo Enterprise's promotion windows; barge's own windows land with the engine.
    #[serde(default)]
    pub promotion_windows: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfigSpec {
    /// Cluster-wide webhook receivers.
    #[serde(default)]
    pub webhook_receivers: Vec<WebhookReceiver>,
    /// Committer identity and signing key for promotions.
    #[serde(default)]
    pub git_client: Option<GitClient>,
    /// UI deep links for Freight.
    #[serde(default)]
    pub freight_links: Vec<Link>,
    /// UI deep links for Stages.
    #[serde(default)]
    pub stage_links: Vec<Link>,
    /// Kargo Enterprise promotion windows (read, not enforced yet).
    #[serde(default)]
    pub promotion_windows: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct GitClient {
    /// Committer name.
    #[serde(default)]
    pub name: Option<String>,
    /// Committer email.
    #[serde(default)]
    pub email: Option<String>,
    /// Reference to the GPG signing key.
    #[serde(default)]
    pub signing_key_secret: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionPolicy {
    /// The Stages the policy applies to.
    #[serde(default)]
    pub stage_selector: Option<StageSelector>,
    /// Deprecated: an exact Stage name.
    #[serde(default)]
    pub stage: Option<String>,
    /// Promote new freight automatically (default false).
    #[serde(default)]
    pub auto_promotion_enabled: Option<bool>,
    /// Re-promote the last verified freight on failure (Kargo Enterprise; barge's own rollback lands with verification).
    #[serde(default)]
    pub auto_rollback: Option<AutoRollback>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct StageSelector {
    /// An exact name, or a pattern prefixed `regex:`, `regexp:` or `glob:`.
    #[serde(default)]
    pub name: Option<String>,
    /// Stage labels that must all match.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Label selector requirements (In, NotIn, Exists, DoesNotExist).
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// Label key.
    #[serde(default)]
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    #[serde(default)]
    pub operator: String,
    /// Values for In / NotIn.
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AutoRollback {
    /// Turns rollback on.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Promotion phases that trigger a rollback: Failed, Errored.
    #[serde(default)]
    pub on_promotion: Vec<String>,
    /// Verification phases that trigger a rollback: Failed, Error (default [Failed]).
    #[serde(default)]
    pub on_verification: Vec<String>,
}

/// An inbound webhook receiver (Kargo's `WebhookReceiverConfig`): a name and exactly one
/// provider key. barge serves it at `/webhook/<provider>/<hash>` (docs/reference/webhooks.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceiver {
    /// Receiver name (unique in the project).
    #[serde(default)]
    pub name: String,
    /// Bitbucket (`X-Hub-Signature` HMAC with the secret's `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitbucket: Option<ReceiverSecret>,
    /// Docker Hub (the secret's `secret` is in the URL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerhub: Option<ReceiverSecret>,
    /// GitHub (`X-Hub-Signature-256` HMAC with the secret's `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<ReceiverSecret>,
    /// GitLab (`X-Gitlab-Token` equal to the secret's `secret-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<ReceiverSecret>,
    /// Harbor (`Authorization` equal to the secret's `auth-header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harbor: Option<ReceiverSecret>,
    /// Quay (the secret's `secret` is in the URL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quay: Option<ReceiverSecret>,
    /// JFrog Artifactory (`X-JFrog-Event-Auth` HMAC with the secret's `secret-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifactory: Option<ArtifactoryReceiver>,
    /// Azure Container Registry (the secret's `secret` is in the URL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<ReceiverSecret>,
    /// Gitea (`X-Hub-Signature-256` HMAC with the secret's `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitea: Option<ReceiverSecret>,
    /// Any sender: `actions` say what a delivery refreshes (the secret's `secret` is in the
    /// URL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic: Option<GenericReceiver>,
    /// barge extension: the CNCF distribution registry's notifications (`Authorization`
    /// equal to the secret's `secret`). Kargo does not know this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<ReceiverSecret>,
}

/// A provider's secret: its name in barge's secret store (the configuration's `secrets`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSecret {
    /// `{name: <secret>}`: the secret whose values authenticate deliveries.
    #[serde(default)]
    pub secret_ref: Option<LocalRef>,
}

/// A reference by name (Kubernetes' `LocalObjectReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// The referenced object's name.
    #[serde(default)]
    pub name: String,
}

/// Artifactory's receiver: the secret and the virtual repository its images are pulled from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactoryReceiver {
    /// `{name: <secret>}`: the secret whose values authenticate deliveries.
    #[serde(default)]
    pub secret_ref: Option<LocalRef>,
    /// The virtual repository Warehouses subscribe through, in place of the local one the
    /// event names.
    #[serde(default)]
    pub virtual_repo_name: Option<String>,
}

/// The generic receiver: the secret and what a delivery does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct GenericReceiver {
    /// `{name: <secret>}`: the secret whose values are part of the URL.
    #[serde(default)]
    pub secret_ref: Option<LocalRef>,
    /// What each delivery does, when its `whenExpression` holds.
    #[serde(default)]
    pub actions: Vec<GenericAction>,
}

/// One generic action (Kargo's `GenericWebhookAction`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct GenericAction {
    /// `Refresh` (the one action Kargo has).
    #[serde(default)]
    pub action: String,
    /// expr-lang over `request.body` / `request.header(name)`; empty means always.
    #[serde(default)]
    pub when_expression: Option<String>,
    /// Values (expressions) the action's selection criteria may use.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Which resources the action applies to.
    #[serde(default)]
    pub target_selection_criteria: Vec<TargetSelection>,
}

/// Which resources a generic action applies to (Kargo's
/// `GenericWebhookTargetSelectionCriteria`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSelection {
    /// `Warehouse` (barge refreshes Warehouses only).
    #[serde(default)]
    pub kind: String,
    /// An exact name (an expression).
    #[serde(default)]
    pub name: Option<String>,
    /// A Kubernetes label selector; its values may be expressions.
    #[serde(default)]
    pub label_selector: Option<LabelSelector>,
    /// Kargo's index selector (by subscribed repository URL).
    #[serde(default)]
    pub index_selector: Option<IndexSelector>,
}

/// A Kubernetes label selector (`metav1.LabelSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must all be set to these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Label selector requirements (In, NotIn, Exists, DoesNotExist).
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// Kargo's `IndexSelector`: resources by a value in one of its pre-built indices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct IndexSelector {
    /// Requirements that must all hold.
    #[serde(default)]
    pub match_indices: Vec<IndexSelectorRequirement>,
}

/// Kargo's `IndexSelectorRequirement`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct IndexSelectorRequirement {
    /// The index: `subscribedURLs` (a Warehouse's subscribed repository URLs, normalised).
    #[serde(default)]
    pub key: String,
    /// `Equals` or `NotEquals`.
    #[serde(default)]
    pub operator: String,
    /// The value (an expression).
    #[serde(default)]
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// Link text.
    #[serde(default)]
    pub title: Option<String>,
    /// Target URL (an expression).
    #[serde(default)]
    pub url: Option<String>,
    /// Tooltip.
    #[serde(default)]
    pub description: Option<String>,
    /// Show only when this expression is true.
    #[serde(default, rename = "if")]
    pub if_: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseSpec {
    /// Controller shard (synced with a label).
    #[serde(default)]
    pub shard: Option<String>,
    /// Go duration, default `5m0s`.
    #[serde(default)]
    pub interval: Option<String>,
    /// `Automatic` (default) or `Manual`.
    #[serde(default)]
    pub freight_creation_policy: Option<String>,
    /// A condition new Freight must meet to be created automatically.
    #[serde(default)]
    pub freight_creation_criteria: Option<FreightCreationCriteria>,
    /// What to watch: at least one image, git or chart subscription.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// barge extension: discover on this cron schedule (`*/10 * * * *`, POSIX fields) instead
    /// of every `interval`. Kargo does not know this field.
    #[serde(default)]
    pub schedule: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FreightCreationCriteria {
    /// expr-lang condition over imageFrom()/commitFrom()/chartFrom() that new Freight must satisfy.
    #[serde(default)]
    pub expression: Option<String>,
}

/// One subscription: exactly one of `image`, `git`, `chart`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Optional subscription name (RFC 1123 label, unique in the Warehouse).
    #[serde(default)]
    pub name: Option<String>,
    /// Watch a container image repository.
    #[serde(default)]
    pub image: Option<ImageSubscription>,
    /// Watch a git repository.
    #[serde(default)]
    pub git: Option<GitSubscription>,
    /// Watch a Helm chart repository.
    #[serde(default)]
    pub chart: Option<ChartSubscription>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSubscription {
    /// Image repository, without tag (e.g. `ghcr.io/org/app`).
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// Deprecated link to the image's source repository.
    #[serde(default, rename = "gitRepoURL")]
    pub git_repo_url: Option<String>,
    /// `SemVer` (default), `Lexical`, `Digest` or `NewestBuild`.
    #[serde(default)]
    pub image_selection_strategy: Option<String>,
    /// SemVer: a Masterminds semver constraint (`^1.2.0`, `>=1.0.0 <2.0.0`). Digest: the mutable tag to follow.
    #[serde(default)]
    pub constraint: Option<String>,
    /// The pre-v1.9 spelling of `constraint` (SemVer strategy).
    #[serde(default)]
    pub semver_constraint: Option<String>,
    /// Deprecated single regex; Kargo ≥1.11 fails discovery with it, barge still reads it.
    #[serde(default)]
    pub allow_tags: Option<String>,
    /// Deprecated list of tags to skip; use ignoreTagsRegexes.
    #[serde(default)]
    pub ignore_tags: Vec<String>,
    /// Only tags matching one of these RE2 regexes are considered.
    #[serde(default)]
    pub allow_tags_regexes: Vec<String>,
    /// Tags matching any of these RE2 regexes are skipped.
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
    /// Cache image metadata by tag (only safe for immutable tags).
    #[serde(default)]
    pub cache_by_tag: Option<bool>,
    /// Skip TLS verification for this registry.
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct GitSubscription {
    /// Repository URL (https preferred; ssh and scp-style still read).
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// `NewestFromBranch` (default), `SemVer`, `Lexical` or `NewestTag`.
    #[serde(default)]
    pub commit_selection_strategy: Option<String>,
    /// Branch for NewestFromBranch (default: the remote's default branch).
    #[serde(default)]
    pub branch: Option<String>,
    /// Masterminds semver constraint for the SemVer strategy.
    #[serde(default)]
    pub semver_constraint: Option<String>,
    /// Deprecated single regex; use allowTagsRegexes.
    #[serde(default)]
    pub allow_tags: Option<String>,
    /// Deprecated list; use ignoreTagsRegexes.
    #[serde(default)]
    pub ignore_tags: Vec<String>,
    /// Tag strategies: only tags matching one of these RE2 regexes.
    #[serde(default)]
    pub allow_tags_regexes: Vec<String>,
    /// Tag strategies: skip tags matching these RE2 regexes.
    #[serde(default)]
    pub ignore_tags_regexes: Vec<String>,
    /// expr-lang condition over commit/tag fields (id, commitDate, author, committer, subject, tag, tagger, annotation).
    #[serde(default)]
    pub expression_filter: Option<String>,
    /// Only commits touching these paths count (exact, `glob:` or `regex:`).
    #[serde(default)]
    pub include_paths: Vec<String>,
    /// Commits touching only these paths are ignored (exact, `glob:` or `regex:`).
    #[serde(default)]
    pub exclude_paths: Vec<String>,
    /// How many candidates to keep (1-100, default 20).
    #[serde(default)]
    pub discovery_limit: Option<i64>,
    /// RFC 3339 cutoff for the branch strategy.
    #[serde(default)]
    pub since: Option<String>,
    /// Require full major.minor.patch tags (default true).
    #[serde(default)]
    pub strict_semvers: Option<bool>,
    /// Fetch without blobs (`--filter=blob:none`); falls back when the server refuses.
    #[serde(default)]
    pub blobless: Option<bool>,
    /// Skip TLS verification.
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ChartSubscription {
    /// Classic HTTP(S) chart repository, or `oci://` repository.
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// Required for classic HTTP repositories, forbidden for `oci://`.
    #[serde(default)]
    pub name: Option<String>,
    /// Masterminds semver constraint; the newest version when omitted.
    #[serde(default)]
    pub semver_constraint: Option<String>,
    /// How many versions to keep (1-100, default 20).
    #[serde(default)]
    pub discovery_limit: Option<i64>,
    /// Skip TLS verification.
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct StageSpec {
    /// Controller shard (synced with a label).
    #[serde(default)]
    pub shard: Option<String>,
    /// Stage-wide vars, usable in steps as `vars.<name>`; template vars override them.
    #[serde(default)]
    pub vars: Vec<Var>,
    /// One entry per Warehouse this Stage takes freight from.
    #[serde(default)]
    pub requested_freight: Vec<FreightRequest>,
    /// The steps a promotion runs. No steps: a control-flow Stage.
    #[serde(default)]
    pub promotion_template: Option<PromotionTemplate>,
    /// Analysis run after a successful promotion; success lets freight advance.
    #[serde(default)]
    pub verification: Option<Verification>,
    /// Kargo's in-development Target selectors, kept as data.
    #[serde(default)]
    pub targets: Option<Value>,
    /// barge's own (Kargo's issue #3440): how many distinct approvers, and who, must approve
    /// Freight for this Stage before it may enter, automatically or by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_policy: Option<crate::approval::ApprovalPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FreightRequest {
    /// The Warehouse the freight comes from.
    #[serde(default)]
    pub origin: FreightOrigin,
    /// Where this Stage may take that freight from.
    #[serde(default)]
    pub sources: FreightSources,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FreightOrigin {
    /// Only `Warehouse` exists today.
    #[serde(default)]
    pub kind: String,
    /// The Warehouse's name.
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct FreightSources {
    /// Accept freight straight from the Warehouse.
    #[serde(default)]
    pub direct: Option<bool>,
    /// Accept freight verified in these upstream Stages.
    #[serde(default)]
    pub stages: Vec<String>,
    /// How long freight must have been in an upstream Stage (Go duration).
    #[serde(default)]
    pub required_soak_time: Option<String>,
    /// `OneOf` (default) or `All`.
    #[serde(default)]
    pub availability_strategy: Option<String>,
    /// How auto-promotion picks freight from this source.
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
    /// Vars and steps.
    #[serde(default)]
    pub spec: PromotionTemplateSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionTemplateSpec {
    /// Template vars (override Stage vars).
    #[serde(default)]
    pub vars: Vec<Var>,
    /// The steps, run in order.
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionTaskSpec {
    /// A var without a value is required from the calling step.
    #[serde(default)]
    pub vars: Vec<Var>,
    /// The task's steps (no nested tasks).
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// The step envelope: `{uses | task, as, if, continueOnError, retry, vars, config}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The built-in step to run (e.g. git-clone). Exactly one of uses / task.
    #[serde(default)]
    pub uses: Option<String>,
    /// A PromotionTask or ClusterPromotionTask to inline.
    #[serde(default)]
    pub task: Option<TaskRef>,
    /// Alias for reading this step's outputs (`outputs.<alias>`); default `step-<n>` / `task-<n>`.
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
    /// Run only when this expression is true (`success()`, `failure()`, `always()`, `status('alias')`).
    #[serde(default, rename = "if")]
    pub if_: Option<String>,
    /// A failure of this step does not fail the promotion.
    #[serde(default)]
    pub continue_on_error: Option<bool>,
    /// Retry policy (not allowed on task steps).
    #[serde(default)]
    pub retry: Option<StepRetry>,
    /// Step vars (for a task step: the task's inputs).
    #[serde(default)]
    pub vars: Vec<Var>,
    /// Step-specific configuration; its fields may hold `${{ }}` expressions.
    #[serde(default)]
    pub config: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    /// The task's name.
    #[serde(default)]
    pub name: String,
    /// `PromotionTask` (default) or `ClusterPromotionTask`.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct StepRetry {
    /// Give up after this long (Go duration; default 0 = wait forever).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Consecutive failures before the step is abandoned (default 1).
    #[serde(default)]
    pub error_threshold: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The templates to run (merged into one analysis).
    #[serde(default)]
    pub analysis_templates: Vec<AnalysisTemplateRef>,
    /// Labels and annotations for the analysis run.
    #[serde(default)]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    /// Template arguments; values may use `${{ }}` with ctx and vars.
    #[serde(default)]
    pub args: Vec<AnalysisArgValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// The template's name.
    #[serde(default)]
    pub name: String,
    /// `AnalysisTemplate` (default) or `ClusterAnalysisTemplate`.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunMetadata {
    /// Labels for the run.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations for the run.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisArgValue {
    /// Argument name.
    #[serde(default)]
    pub name: String,
    /// Argument value.
    #[serde(default)]
    pub value: Option<Value>,
}

/// Freight as Kargo stores it: an immutable set of artifact versions from one origin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Freight {
    /// `kargo.akuity.io/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// `Freight`.
    #[serde(default)]
    pub kind: String,
    /// The name is the content-derived ID.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Human-friendly mutable name (`<adjective>-<animal>`).
    #[serde(default)]
    pub alias: Option<String>,
    /// When discovery first saw it.
    #[serde(default)]
    pub discovered_at: Option<String>,
    /// The Warehouse it came from.
    #[serde(default)]
    pub origin: Option<FreightOrigin>,
    /// Git commits in this freight.
    #[serde(default)]
    pub commits: Vec<GitCommit>,
    /// Images in this freight.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Helm charts in this freight.
    #[serde(default)]
    pub charts: Vec<Chart>,
    /// Generic artifacts.
    #[serde(default)]
    pub artifacts: Vec<Value>,
    /// Where it is, where it was verified and approved.
    #[serde(default)]
    pub status: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct GitCommit {
    /// Repository URL.
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// Commit SHA.
    #[serde(default)]
    pub id: String,
    /// Branch it was found on.
    #[serde(default)]
    pub branch: Option<String>,
    /// Tag, for tag strategies.
    #[serde(default)]
    pub tag: Option<String>,
    /// Subject line.
    #[serde(default)]
    pub message: Option<String>,
    /// Author.
    #[serde(default)]
    pub author: Option<String>,
    /// Committer.
    #[serde(default)]
    pub committer: Option<String>,
    /// The subscription's name, when named.
    #[serde(default)]
    pub subscription_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Image repository.
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// Tag.
    #[serde(default)]
    pub tag: String,
    /// Manifest digest.
    #[serde(default)]
    pub digest: String,
    /// OCI annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The subscription's name, when named.
    #[serde(default)]
    pub subscription_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    /// Chart repository.
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// Chart name (classic repositories).
    #[serde(default)]
    pub name: Option<String>,
    /// Chart version.
    #[serde(default)]
    pub version: String,
    /// The subscription's name, when named.
    #[serde(default)]
    pub subscription_name: Option<String>,
}
