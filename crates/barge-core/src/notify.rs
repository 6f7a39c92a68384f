//! Outbound notifications without IO: which EventRouters an event matches, the message each
//! renders (with the `${{ }}` engine of [`crate::eval`]), the channels resolved against
//! barge's secret store, and each channel's request body and signature.
//!
//! The shapes follow Kargo Enterprise's MessageChannel / ClusterMessageChannel / EventRouter
//! and its `send-message` step where its documentation gives them (docs.kargo.io, "Events" →
//! "Notifications"; "send-message"); docs/reference/notifications.md lists what is barge's.
//!
//! Secrets (a Slack webhook URL, a signing key, an SMTP password) live only in a resolved
//! [`Destination`], whose `Debug` hides them; a notification as stored names its channel,
//! never the values.

use crate::eval::{Data, Scope};
use crate::load::Catalog;
use crate::model::Body;
use crate::model::kargo::PromotionPolicy;
use crate::model::notify::{ChannelRef, EventRouter, MessageChannelSpec};
use crate::webhook::Secrets;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The event types an EventRouter may name: Kargo's event reasons
/// (`api/v1alpha1/event.go` in github.com/akuity/kargo) and barge's own for holds and
/// promotion-window overrides.
pub const EVENT_TYPES: &[&str] = &[
    "PromotionCreated",
    "PromotionSucceeded",
    "PromotionFailed",
    "PromotionErrored",
    "PromotionAborted",
    "FreightCreated",
    "FreightApproved",
    "FreightVerificationSucceeded",
    "FreightVerificationFailed",
    "FreightVerificationErrored",
    "FreightVerificationAborted",
    "FreightVerificationInconclusive",
    "FreightVerificationUnknown",
    // barge's.
    "StageHeld",
    "StageReleased",
    "PromotionWindowOverridden",
];

/// The header a signed generic webhook carries: `sha256=<hex HMAC-SHA256 of the body>`, keyed
/// with the channel secret's `signingKey` (GitHub's `X-Hub-Signature-256` form).
pub const SIGNATURE_HEADER: &str = "X-Barge-Signature-256";
/// The header naming a notification's id: the same on every attempt, so a receiver can drop
/// a repeated delivery (delivery is at least once).
pub const DELIVERY_HEADER: &str = "X-Barge-Delivery";

/// The secret keys each channel reads.
pub const SLACK_URL_KEY: &str = "webhookURL";
pub const SIGNING_KEY: &str = "signingKey";
pub const SMTP_USERNAME_KEY: &str = "username";
pub const SMTP_PASSWORD_KEY: &str = "password";

/// A channel's kind: `MessageChannel` (in the project) or `ClusterMessageChannel`.
pub fn channel_kind(r: &ChannelRef) -> &str {
    if r.kind.is_empty() { "MessageChannel" } else { &r.kind }
}

/// What the events of a pipeline look like to routers and templates (`ctx` in expressions):
/// Kargo's common event fields (`type`, `project`, `actor`, `message`, `id`) and the names of
/// what the event is about.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    /// The event type (Kargo's reason, e.g. `PromotionSucceeded`).
    #[serde(rename = "type")]
    pub kind: String,
    pub project: String,
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub freight: String,
    #[serde(default)]
    pub promotion: String,
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub message: String,
}

/// A message for one channel: what the router or the step rendered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Plain text, or with `encoding` a document (a Slack body with `blocks`, for example).
    pub text: String,
    /// `json` or `yaml` when `text` is a document (Kargo's `encodingType`); none for text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// An email's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A Slack channel other than the webhook's own (the step's `slack.channelID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
    /// The Slack thread to reply in (the step's `slack.threadTS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_thread: Option<String>,
    /// Recipients other than the channel's (the step's `smtp.to`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// The event it reports, when a router sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventData>,
}

/// A notification an EventRouter asks for: the channel and the rendered message.
#[derive(Clone, Debug, PartialEq)]
pub struct Routed {
    pub router: String,
    /// The channel's kind, as [`channel_kind`] names it.
    pub channel_kind: String,
    pub channel: String,
    pub message: Message,
}

/// The notifications every EventRouter of the event's project asks for. A template that
/// fails to render does not lose the notification: the message says what failed.
pub fn route(catalog: &Catalog, event: &EventData, now: &str) -> Vec<Routed> {
    let labels = stage_labels(catalog, &event.project, &event.stage);
    let mut out = Vec::new();
    for r in &catalog.resources {
        let (Some(Body::EventRouter(router)), true) = (&r.body, r.project == event.project) else {
            continue;
        };
        let Some(spec) = &router.spec else { continue };
        if !spec.types.contains(&event.kind) || !selects(router, &event.stage, &labels) {
            continue;
        }
        let message = render_message(spec.message.as_deref(), spec.subject.as_deref(), event, now);
        for c in &spec.channels {
            out.push(Routed {
                router: r.name.clone(),
                channel_kind: channel_kind(c).to_string(),
                channel: c.name.clone(),
                message: message.clone(),
            });
        }
    }
    out
}

fn stage_labels(catalog: &Catalog, project: &str, stage: &str) -> BTreeMap<String, String> {
    catalog
        .resources
        .iter()
        .find_map(|r| match &r.body {
            Some(Body::Stage(s)) if r.project == project && r.name == stage => Some(s.metadata.labels.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn selects(router: &EventRouter, stage: &str, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = router.spec.as_ref().and_then(|s| s.stage_selector.as_ref()) else {
        return true;
    };
    if *selector == Default::default() {
        return true;
    }
    let policy = PromotionPolicy {
        stage_selector: Some(selector.clone()),
        ..Default::default()
    };
    !stage.is_empty() && crate::plan::policy_matches(&policy, stage, labels)
}

/// The default text of an event: its type and what it is about.
fn default_text(e: &EventData) -> String {
    let mut text = format!("{}: project {}", e.kind, e.project);
    for (what, name) in [
        ("stage", &e.stage),
        ("freight", &e.freight),
        ("promotion", &e.promotion),
    ] {
        if !name.is_empty() {
            text.push_str(&format!(", {what} {name}"));
        }
    }
    if !e.message.is_empty() {
        text.push_str(&format!(": {}", e.message));
    }
    text
}

/// Renders a router's templates over the event (`${{ ctx.stage }}`, ...).
pub fn render_message(message: Option<&str>, subject: Option<&str>, event: &EventData, now: &str) -> Message {
    let data = Data {
        ctx: serde_json::to_value(event).unwrap_or(Value::Null),
        now: now.to_string(),
        ..Default::default()
    };
    let render = |template: &str| match crate::eval::render_string(template, &data, &Scope::default()) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(e) => format!("{} (the message template failed: {e})", default_text(event)),
    };
    let subject = match subject {
        Some(s) => render(s),
        None if event.stage.is_empty() => format!("[barge] {} in {}", event.kind, event.project),
        None => format!("[barge] {} in {}/{}", event.kind, event.project, event.stage),
    };
    Message {
        text: message.map_or_else(|| default_text(event), render),
        subject: Some(subject),
        event: Some(event.clone()),
        ..Default::default()
    }
}

/// Why a channel cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    #[error("no {kind} named {name:?}{}", if *.kind == "MessageChannel" { format!(" in project {:?}", .project) } else { String::new() })]
    NotFound {
        kind: String,
        name: String,
        project: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// SMTP's transport security.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required (the default).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Plain text, for a relay on loopback.
    None,
}

impl SmtpTls {
    pub fn parse(s: Option<&str>) -> Option<SmtpTls> {
        match s.unwrap_or("starttls") {
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            "none" => Some(SmtpTls::None),
            _ => None,
        }
    }
}

/// A channel with its secrets: where and how to send.
#[derive(Clone, PartialEq)]
pub enum Destination {
    Slack {
        url: String,
        channel: Option<String>,
    },
    Webhook {
        url: String,
        signing_key: Option<String>,
    },
    Smtp {
        host: String,
        port: u16,
        tls: SmtpTls,
        from: String,
        to: Vec<String>,
        login: Option<(String, String)>,
    },
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Slack { channel, .. } => f
                .debug_struct("Slack")
                .field("url", &"***")
                .field("channel", channel)
                .finish(),
            Destination::Webhook { url, signing_key } => f
                .debug_struct("Webhook")
                .field("url", &crate::secret::redact_url(url))
                .field("signed", &signing_key.is_some())
                .finish(),
            Destination::Smtp {
                host,
                port,
                from,
                to,
                login,
                ..
            } => f
                .debug_struct("Smtp")
                .field("host", host)
                .field("port", port)
                .field("from", from)
                .field("to", to)
                .field("login", &login.as_ref().map(|(u, _)| (u, "***")))
                .finish(),
        }
    }
}

/// A channel by kind and name, for `project`, with its secrets from barge's secret store.
pub fn resolve(
    catalog: &Catalog,
    project: &str,
    r: &ChannelRef,
    secrets: &Secrets,
) -> Result<Destination, ChannelError> {
    let kind = channel_kind(r);
    let spec = catalog.resources.iter().find_map(|res| match (&res.body, kind) {
        (Some(Body::MessageChannel(c)), "MessageChannel") if res.project == project && res.name == r.name => {
            c.spec.as_ref()
        }
        (Some(Body::ClusterMessageChannel(c)), "ClusterMessageChannel") if res.name == r.name => c.spec.as_ref(),
        _ => None,
    });
    let Some(spec) = spec else {
        return Err(ChannelError::NotFound {
            kind: kind.to_string(),
            name: r.name.clone(),
            project: project.to_string(),
        });
    };
    destination(&r.name, spec, secrets)
}

fn destination(name: &str, spec: &MessageChannelSpec, secrets: &Secrets) -> Result<Destination, ChannelError> {
    let secret = |secret_ref: &Option<crate::model::kargo::LocalRef>,
                  key: &str|
     -> Result<Option<String>, ChannelError> {
        let Some(r) = secret_ref.as_ref().filter(|r| !r.name.is_empty()) else {
            return Ok(None);
        };
        secrets
            .get(&r.name)
            .and_then(|s| s.get(key))
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                ChannelError::Invalid(format!(
                    "channel {name:?}: secret {:?} has no key {key:?} in barge's secret store (the configuration's `secrets`)",
                    r.name
                ))
            })
    };
    match (&spec.slack, &spec.webhook, &spec.smtp) {
        (Some(s), None, None) => Ok(Destination::Slack {
            url: secret(&s.secret_ref, SLACK_URL_KEY)?
                .ok_or_else(|| ChannelError::Invalid(format!("channel {name:?}: slack needs a secretRef")))?,
            channel: s.channel_id.clone(),
        }),
        (None, Some(w), None) => Ok(Destination::Webhook {
            url: w.url.clone(),
            signing_key: secret(&w.secret_ref, SIGNING_KEY)?,
        }),
        (None, None, Some(m)) => {
            let tls = SmtpTls::parse(m.tls.as_deref()).ok_or_else(|| {
                ChannelError::Invalid(format!("channel {name:?}: smtp.tls must be starttls, tls or none"))
            })?;
            let login = match (
                secret(&m.secret_ref, SMTP_USERNAME_KEY)?,
                secret(&m.secret_ref, SMTP_PASSWORD_KEY)?,
            ) {
                (Some(u), Some(p)) => Some((u, p)),
                _ => None,
            };
            let port = match m.port {
                None => Ok(if tls == SmtpTls::Tls { 465 } else { 587 }),
                Some(p) => u16::try_from(p)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| ChannelError::Invalid(format!("channel {name:?}: smtp.port {p} is not a port"))),
            }?;
            Ok(Destination::Smtp {
                host: m.host.clone(),
                port,
                tls,
                from: m.from.clone(),
                to: m.to.clone(),
                login,
            })
        }
        _ => Err(ChannelError::Invalid(format!(
            "channel {name:?} must set exactly one of slack, webhook, smtp"
        ))),
    }
}

/// The document a message's text holds (`encoding` json or yaml), or none for plain text.
pub fn document(message: &Message) -> Result<Option<Value>, String> {
    match message.encoding.as_deref().unwrap_or("") {
        "" => Ok(None),
        "json" => serde_json::from_str(&message.text)
            .map(Some)
            .map_err(|e| format!("the message is not JSON: {e}")),
        "yaml" => match crate::yaml::parse_stream(&message.text) {
            (_, Some(e)) => Err(format!("the message is not YAML: {}:{}: {e}", e.pos.line, e.pos.column)),
            (docs, None) => Ok(Some(docs.first().map_or(Value::Null, |d| d.root.to_json()))),
        },
        other => Err(format!(
            "encodingType {other:?} is not supported (json, yaml, or none for text)"
        )),
    }
}

/// The body of a Slack incoming webhook: the message's document (`blocks`, ...) as written,
/// or `{"text": ...}`; the channel override as `channel`.
pub fn slack_body(message: &Message, channel: Option<&str>) -> Result<Value, String> {
    let mut body = match document(message)? {
        Some(Value::Object(doc)) => Value::Object(doc),
        Some(_) => return Err("a Slack message document must be an object (with `text` or `blocks`)".into()),
        None => json!({ "text": message.text }),
    };
    if let Some(c) = message.slack_channel.as_deref().or(channel) {
        body["channel"] = json!(c);
    }
    if let Some(ts) = &message.slack_thread {
        body["thread_ts"] = json!(ts);
    }
    Ok(body)
}

/// The body of a generic webhook (docs/reference/notifications.md).
pub fn webhook_body(id: &str, message: &Message) -> Result<Value, String> {
    let mut body = json!({ "id": id, "text": message.text });
    if let Some(doc) = document(message)? {
        body["document"] = doc;
    }
    if let Some(s) = &message.subject {
        body["subject"] = json!(s);
    }
    if let Some(e) = &message.event {
        body["event"] = serde_json::to_value(e).unwrap_or(Value::Null);
    }
    Ok(body)
}

/// The [`SIGNATURE_HEADER`] value for `body`.
pub fn signature(key: &str, body: &[u8]) -> String {
    format!("sha256={}", crate::webhook::sign(key, body))
}

/// Whether `header` is `body`'s signature with `key` (constant-time): what a receiver checks.
pub fn verify_signature(key: &str, body: &[u8], header: &str) -> bool {
    crate::webhook::hmac_matches(key.as_bytes(), body, header, "sha256=")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFS: &str = r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata: {name: shop}
---
apiVersion: ee.kargo.akuity.io/v1alpha1
kind: MessageChannel
metadata: {name: team, namespace: shop}
spec:
  slack: {secretRef: {name: slack}}
---
apiVersion: ee.kargo.akuity.io/v1alpha1
kind: EventRouter
metadata: {name: prod, namespace: shop}
spec:
  types: [PromotionSucceeded]
  stageSelector: {name: prod}
  channels: [{kind: MessageChannel, name: team}]
  message: "${{ ctx.stage }} got ${{ ctx.freight }}"
"#;

    fn load() -> Catalog {
        let mut c = Catalog::default();
        c.load_text("n.yaml", DEFS);
        c
    }

    fn event(kind: &str, stage: &str) -> EventData {
        EventData {
            kind: kind.into(),
            project: "shop".into(),
            stage: stage.into(),
            freight: "abc".into(),
            ..Default::default()
        }
    }

    #[test]
    fn routes_only_the_named_types_and_stages_with_the_rendered_template() {
        let catalog = load();
        let routed = route(&catalog, &event("PromotionSucceeded", "prod"), "2026-01-01T00:00:00Z");
        assert_eq!(routed.len(), 1);
        assert_eq!(routed[0].channel, "team");
        assert_eq!(routed[0].message.text, "prod got abc");
        assert!(route(&catalog, &event("PromotionSucceeded", "dev"), "").is_empty());
        assert!(route(&catalog, &event("PromotionFailed", "prod"), "").is_empty());
    }

    #[test]
    fn a_channel_resolves_with_its_secret_and_hides_it() {
        let catalog = load();
        let r = ChannelRef {
            kind: String::new(),
            name: "team".into(),
        };
        let secrets: Secrets = [(
            "slack".to_string(),
            [(SLACK_URL_KEY.to_string(), "http://h/SECRETPATH".to_string())].into(),
        )]
        .into();
        let d = resolve(&catalog, "shop", &r, &secrets).unwrap();
        assert!(!format!("{d:?}").contains("SECRETPATH"));
        let missing = resolve(&catalog, "shop", &r, &Secrets::new()).unwrap_err();
        assert!(missing.to_string().contains("has no key \"webhookURL\""), "{missing}");
        assert!(matches!(
            resolve(&catalog, "other", &r, &secrets),
            Err(ChannelError::NotFound { .. })
        ));
    }

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let sig = signature("k3y", b"{\"a\":1}");
        assert!(verify_signature("k3y", b"{\"a\":1}", &sig));
        assert!(!verify_signature("k3y", b"{\"a\":2}", &sig));
        assert!(!verify_signature("other", b"{\"a\":1}", &sig));
    }

    #[test]
    fn slack_bodies_are_text_or_the_written_blocks() {
        let text = Message {
            text: "hi".into(),
            ..Default::default()
        };
        assert_eq!(
            slack_body(&text, Some("C1")).unwrap(),
            json!({"text": "hi", "channel": "C1"})
        );
        let blocks = Message {
            text: r#"{"blocks": [{"type": "section"}]}"#.into(),
            encoding: Some("json".into()),
            ..Default::default()
        };
        assert_eq!(
            slack_body(&blocks, None).unwrap(),
            json!({"blocks": [{"type": "section"}]})
        );
    }
}
