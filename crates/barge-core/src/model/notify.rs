//! Kargo Enterprise's notification kinds (`ee.kargo.akuity.io/v1alpha1`): `MessageChannel`
//! (in a project), `ClusterMessageChannel` (every project) and `EventRouter`
//! (docs/reference/notifications.md says which fields follow Kargo Enterprise's documentation
//! and which are barge's own).

use super::ObjectMeta;
use super::kargo::{LocalRef, StageSelector, resource};
use crate::schema::Schema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

resource!(
    /// Where messages go in one project: exactly one of `slack`, `webhook`, `smtp`.
    MessageChannel,
    MessageChannelSpec
);
resource!(
    /// A MessageChannel every project may use (cluster-scoped).
    ClusterMessageChannel,
    MessageChannelSpec
);
resource!(
    /// Which events of its project go to which channels, with which message.
    EventRouter,
    EventRouterSpec
);

/// A channel's connection: exactly one provider key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct MessageChannelSpec {
    /// A Slack-compatible incoming webhook; the secret's `webhookURL` is its URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackChannel>,
    /// A generic HTTP receiver: a JSON body, optionally signed with the secret's `signingKey`
    /// (barge's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookChannel>,
    /// Email over SMTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpChannel>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct SlackChannel {
    /// `{name: <secret>}`: barge's secret whose `webhookURL` is the incoming webhook's URL.
    #[serde(default)]
    pub secret_ref: Option<LocalRef>,
    /// The channel to post in, when the webhook may post in several.
    #[serde(default, rename = "channelID")]
    pub channel_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookChannel {
    /// Where the JSON body is POSTed (http or https).
    #[serde(default)]
    pub url: String,
    /// `{name: <secret>}`: the secret whose `signingKey` signs each body (HMAC-SHA256 in
    /// `X-Barge-Signature-256`). Without it, bodies are not signed.
    #[serde(default)]
    pub secret_ref: Option<LocalRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpChannel {
    /// The mail server's host name.
    #[serde(default)]
    pub host: String,
    /// Its port (default 587; 465 with `tls: tls`).
    #[serde(default)]
    pub port: Option<i64>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (plain text: loopback only).
    #[serde(default)]
    pub tls: Option<String>,
    /// The sender address.
    #[serde(default)]
    pub from: String,
    /// The default recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// `{name: <secret>}`: the secret whose `username` and `password` log in. Without it,
    /// no login.
    #[serde(default)]
    pub secret_ref: Option<LocalRef>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct EventRouterSpec {
    /// The event types routed (Kargo's names: `PromotionSucceeded`, `FreightCreated`, ...).
    #[serde(default)]
    pub types: Vec<String>,
    /// The channels each routed event goes to.
    #[serde(default)]
    pub channels: Vec<ChannelRef>,
    /// Only events about these Stages (barge's; an event without a Stage, such as
    /// FreightCreated, passes only an empty selector).
    #[serde(default)]
    pub stage_selector: Option<StageSelector>,
    /// The message, with `${{ ctx.* }}` expressions over the event (barge's; default: one
    /// line naming the event).
    #[serde(default)]
    pub message: Option<String>,
    /// The subject of an email (barge's; default: the event type and the Stage).
    #[serde(default)]
    pub subject: Option<String>,
}

/// A channel by kind and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelRef {
    /// `MessageChannel` (default) or `ClusterMessageChannel`.
    #[serde(default)]
    pub kind: String,
    /// The channel's name.
    #[serde(default)]
    pub name: String,
}
