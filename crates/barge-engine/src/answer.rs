//! What each [`Call`] answers, typed. Serialised, an answer is the JSON the API sends and
//! `barge … -o json` prints (the shapes are a contract: tests/get.rs, tests/api.rs); the CLI's
//! `--server` client reads it back with [`Call::decode`], so both ends share these types.

use crate::ops::Call;
use crate::pipeline::StageStatus;
use crate::tokens::TokenCall;
use barge_core::authz::Role;
use barge_core::model::kargo::Freight;
use barge_core::promotion::{Phase, StepRecord};
use barge_store::{AuditEvent, StageHold, Verification};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A call's answer: one variant per kind of answer (several calls share one).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// `GetStages`.
    Stages(Vec<StageStatus>),
    /// `GetWarehouses`.
    Warehouses(Vec<WarehouseSummary>),
    /// `GetWebhooks`.
    Webhooks(Vec<WebhookInfo>),
    /// `GetFreight`, newest first.
    Freight(Vec<FreightInfo>),
    /// `GetPromotions`, newest first.
    Promotions(Vec<PromotionInfo>),
    /// `History`, newest first.
    History(Vec<AuditEvent>),
    /// `Stats`, by project and Stage.
    Stats(Vec<crate::stats::StageStats>),
    /// `Promote` and `PromoteDownstream`.
    Queued(Queued),
    /// `PromoteDryRun`.
    PromotionPlan(PromotionPlan),
    Approved(Approved),
    /// `Abort`: the promotion as it is now.
    Aborted(PromotionInfo),
    Held(Held),
    Released(Released),
    Aliased(Aliased),
    /// `Verify`: the queued (or aborted) verification.
    Verification(Verification),
    Refresh(RefreshRequested),
    Version(VersionInfo),
    /// `GetReplicas`, newest heartbeat first.
    Replicas(Vec<ReplicaInfo>),
    /// `GetNotifications`, newest first.
    Notifications(Vec<NotificationInfo>),
    /// `token create`: the token and, this once, its secret.
    TokenCreated(CreatedToken),
    /// `token list`.
    Tokens(Vec<TokenInfo>),
    /// `token revoke`: the token as it is now.
    TokenRevoked(TokenInfo),
}

impl Call {
    /// Reads this call's answer from its JSON (what the API sent).
    pub fn decode(&self, json: serde_json::Value) -> serde_json::Result<Answer> {
        use serde_json::from_value as read;
        Ok(match self {
            Call::GetStages { .. } => Answer::Stages(read(json)?),
            Call::GetWarehouses { .. } => Answer::Warehouses(read(json)?),
            Call::GetWebhooks { .. } => Answer::Webhooks(read(json)?),
            Call::GetFreight { .. } => Answer::Freight(read(json)?),
            Call::GetPromotions { .. } => Answer::Promotions(read(json)?),
            Call::History { .. } => Answer::History(read(json)?),
            Call::Stats { .. } => Answer::Stats(read(json)?),
            Call::Promote { .. } | Call::PromoteDownstream { .. } => Answer::Queued(read(json)?),
            Call::PromoteDryRun { .. } => Answer::PromotionPlan(read(json)?),
            Call::Approve { .. } => Answer::Approved(read(json)?),
            Call::Abort { .. } => Answer::Aborted(read(json)?),
            Call::Hold { .. } => Answer::Held(read(json)?),
            Call::Release { .. } => Answer::Released(read(json)?),
            Call::Alias { .. } => Answer::Aliased(read(json)?),
            Call::Verify { .. } => Answer::Verification(read(json)?),
            Call::Refresh { .. } => Answer::Refresh(read(json)?),
            Call::Version => Answer::Version(read(json)?),
            Call::GetReplicas => Answer::Replicas(read(json)?),
            Call::GetNotifications { .. } => Answer::Notifications(read(json)?),
            Call::Token(TokenCall::Create { .. }) => Answer::TokenCreated(read(json)?),
            Call::Token(TokenCall::List) => Answer::Tokens(read(json)?),
            Call::Token(TokenCall::Revoke { .. }) => Answer::TokenRevoked(read(json)?),
        })
    }
}

/// A webhook receiver as `barge get webhooks` lists it: never its secret.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    /// Empty for a ClusterConfig's receiver.
    pub project: String,
    pub name: String,
    /// `github`, `distribution`, ... (docs/reference/webhooks.md).
    pub provider: String,
    /// The path `barge serve` answers it at (Kargo's scheme, under `/webhook`).
    pub url: String,
}

impl WebhookInfo {
    pub fn of(l: &barge_core::webhook::Listing<'_>) -> WebhookInfo {
        WebhookInfo {
            project: l.project.to_string(),
            name: l.name.to_string(),
            provider: l.provider.to_string(),
            url: l.url.to_string(),
        }
    }
}

/// One Warehouse in `barge get warehouses`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseSummary {
    pub project: String,
    pub name: String,
    /// Its discovery interval (Kargo's default 5m when it names none).
    pub interval: String,
    pub subscriptions: usize,
    /// How many Freight it has minted.
    pub freight: usize,
    /// The newest Freight's alias.
    pub newest: Option<String>,
    /// The newest Freight's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_freight: Option<String>,
    /// The Warehouse's definition (its spec, as loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub spec: Option<barge_core::model::kargo::WarehouseSpec>,
    /// Unix milliseconds.
    pub last_discovery: Option<i64>,
    /// The first failed subscription of the last pass.
    pub error: Option<String>,
}

/// Freight as Kargo's API shows it: the resource (empty fields left out), when it was minted
/// (`metadata.creationTimestamp`), its Warehouse and its status.
#[derive(Clone, Debug)]
pub struct FreightInfo {
    pub freight: Freight,
    /// RFC 3339 (metav1.Time).
    pub created: String,
    pub warehouse: String,
    pub status: FreightStatus,
}

/// Kargo's Freight status: where it is, where it was verified, what it was approved for, each
/// by Stage (Go maps, so sorted by Stage name as Kargo prints them).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FreightStatus {
    pub currently_in: BTreeMap<String, CurrentlyIn>,
    pub verified_in: BTreeMap<String, VerifiedIn>,
    pub approved_for: BTreeMap<String, ApprovedFor>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CurrentlyIn {
    /// RFC 3339, when known.
    pub since: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedIn {
    /// RFC 3339.
    pub verified_at: String,
    /// Go's duration form (metav1.Duration).
    pub longest_soak: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedFor {
    /// RFC 3339.
    pub approved_at: String,
    pub approved_by: Option<String>,
    /// barge's: every distinct approver so far, oldest first (what a Stage's approval policy
    /// and the wait-for-approval step count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<ApproverInfo>,
}

impl ApproverInfo {
    pub fn of(a: &barge_store::StoredApproval) -> ApproverInfo {
        ApproverInfo {
            approver: a.approver.clone(),
            role: a.role.clone(),
            approved_at: crate::format::rfc3339(a.approved_at),
        }
    }
}

/// One approver of a Freight for a Stage: the authenticated principal, never a name a client
/// sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApproverInfo {
    /// As the audit log names it (`token:alice`).
    pub approver: String,
    /// Its role when it approved.
    pub role: String,
    /// RFC 3339.
    pub approved_at: String,
}

impl Serialize for FreightInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut v = barge_core::model::prune(serde_json::to_value(&self.freight).map_err(S::Error::custom)?);
        v["metadata"]["creationTimestamp"] = self.created.clone().into();
        v["warehouse"] = self.warehouse.clone().into();
        v["status"] = serde_json::to_value(&self.status).map_err(S::Error::custom)?;
        v.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FreightInfo {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut v = serde_json::Value::deserialize(deserializer)?;
        let take = |v: &mut serde_json::Value, key: &str| v.as_object_mut().and_then(|m| m.remove(key));
        let created = v
            .get_mut("metadata")
            .and_then(|m| take(m, "creationTimestamp"))
            .and_then(|t| t.as_str().map(str::to_string))
            .unwrap_or_default();
        let warehouse = take(&mut v, "warehouse")
            .and_then(|w| w.as_str().map(str::to_string))
            .unwrap_or_default();
        let status = take(&mut v, "status")
            .map(serde_json::from_value)
            .transpose()
            .map_err(D::Error::custom)?
            .unwrap_or_default();
        Ok(FreightInfo {
            freight: serde_json::from_value(v).map_err(D::Error::custom)?,
            created,
            warehouse,
            status,
        })
    }
}

/// A promotion as `barge get promotions` shows it; `outputs` only when asked for by name.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionInfo {
    pub project: String,
    pub name: String,
    pub stage: String,
    pub freight: String,
    pub actor: String,
    #[schema(value_type = String)]
    pub phase: Phase,
    pub message: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What a promotion would do, without doing it (`PromoteDryRun`; docs/reference/api.md): the
/// diff each push would land, and the steps the dry run skipped or simulated. The shape is a
/// contract (the web UI's diff preview reads it).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionPlan {
    pub project: String,
    pub stage: String,
    /// The Freight's name (ID).
    pub freight: String,
    pub alias: Option<String>,
    /// How the dry run ended: `Succeeded`, or `Failed`/`Errored` with `message` (a step that
    /// would fail the promotion).
    #[schema(value_type = String)]
    pub phase: Phase,
    pub message: String,
    /// One per git-push or github-push (of a branch), in step order.
    pub pushes: Vec<PlannedPush>,
    /// The steps that ran without their effect or did not run, in step order.
    pub skipped_steps: Vec<SkippedStep>,
}

/// What one push would land on a branch.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPush {
    /// The repository as the step names it, without credentials.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    pub branch: String,
    /// The paths the push would change (added, modified or deleted), as git names them.
    pub files: Vec<String>,
    /// `git diff` from the branch's current head (the empty tree for a new branch) to what
    /// the promotion would commit, secret values redacted.
    pub diff: String,
}

/// A step a dry run skipped or simulated, and why.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkippedStep {
    /// The step's alias.
    pub step: String,
    pub uses: String,
    pub reason: String,
}

/// The promotions a `Promote` or `PromoteDownstream` queued.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Queued {
    pub promotions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approved {
    pub freight: String,
    pub alias: Option<String>,
    pub stage: String,
    pub approved_by: String,
    /// Every distinct approver of the Freight for the Stage so far, this one included.
    pub approvers: Vec<ApproverInfo>,
    /// With a Stage approval policy: how far it is (`1 of 2 (needs role admin)`, `2 of 2 …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Held {
    pub stage: String,
    /// One per freight request of the Stage.
    #[schema(value_type = Vec<Object>)]
    pub holds: Vec<StageHold>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Released {
    pub stage: String,
    /// How many holds were lifted.
    pub released: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Aliased {
    /// The Freight's name (ID).
    pub freight: String,
    pub alias: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequested {
    pub warehouse: String,
    /// `requested`.
    pub refresh: String,
}

/// The answering barge's version (`barge version --server`, `GET /api/v1/version`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionInfo {
    /// barge's release (Cargo's package version), e.g. `0.1.0`.
    pub version: String,
}

/// The states of a notification in the outbox, as `GetNotifications` filters them.
pub const NOTIFICATION_STATES: [&str; 3] = ["pending", "delivered", "failed"];

/// A notification in the outbox (`barge get notifications`): where it goes and how its
/// delivery went. Not its message, which the channel's receiver has; nothing of the
/// channel's secret (its address or token), which the outbox does not hold either: the
/// delivery task resolves the channel when it sends, and its errors leave the URL out.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationInfo {
    /// Its delivery id (the receiver sees it).
    pub id: String,
    pub project: String,
    /// The Stage the event is about; empty when none.
    pub stage: String,
    /// The event type (`PromotionSucceeded`, ...) or `send-message`.
    pub event: String,
    /// The EventRouter that sent it there; empty for `send-message`.
    pub router: String,
    /// The channel's kind (`MessageChannel`, ...) and name.
    pub channel_kind: String,
    pub channel: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// Why the last attempt failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due (RFC 3339), while it is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

impl NotificationInfo {
    pub fn of(n: barge_store::Notification) -> NotificationInfo {
        NotificationInfo {
            next_attempt_at: (n.state == "pending").then(|| crate::format::rfc3339(n.next_attempt_at)),
            last_error: Some(n.last_error).filter(|e| !e.is_empty()),
            created_at: crate::format::rfc3339(n.created_at),
            delivered_at: n.delivered_at.map(crate::format::rfc3339),
            id: n.id,
            project: n.project,
            stage: n.stage,
            event: n.event,
            router: n.router,
            channel_kind: n.channel_kind,
            channel: n.channel,
            state: n.state,
            attempts: n.attempts,
        }
    }
}

/// A `barge serve` replica on this database (`barge get replicas`): its heartbeat and the
/// leases it holds; times by the database's clock.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaInfo {
    /// Its `--replica-id` (by default `HOST:WORK_DIR`).
    pub id: String,
    pub host: String,
    /// Its barge version.
    pub version: String,
    /// RFC 3339.
    pub started_at: String,
    /// Its last heartbeat, RFC 3339.
    pub heartbeat_at: String,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: i64,
    /// Whether it wrote a heartbeat within a lease (30s); leases of a replica that did not
    /// run out and another replica takes its work over.
    pub alive: bool,
    /// The promotions whose leases it holds.
    pub promotions: Vec<String>,
    /// The verifications whose leases it holds.
    pub verifications: Vec<String>,
    /// The Warehouses (`project/name`) it is discovering.
    pub warehouses: Vec<String>,
}

/// An API token as `barge token` shows it: never its secret or hash; times in RFC 3339.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub name: String,
    /// viewer, promoter or admin.
    #[schema(value_type = String)]
    pub role: Role,
    /// The one project it may act in; `None`: every project.
    pub project: Option<String>,
    /// The Stages a promoter may act on; `None`: every Stage.
    pub stages: Option<Vec<String>>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// A token just created: its description and the secret, shown this once (the store keeps
/// only its SHA-256).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}
