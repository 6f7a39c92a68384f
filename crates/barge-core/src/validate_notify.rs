//! Checks of the notification kinds (MessageChannel, ClusterMessageChannel, EventRouter):
//! exactly one provider per channel with what it needs, known event types, channels that
//! exist. Whether barge's secret store has a channel's secret is checked where it is read
//! (`barge_core::notify::resolve`), as for webhook receivers.

use super::Cx;
use crate::diag::Code;
use crate::model::Kind;
use crate::model::notify::{EventRouterSpec, MessageChannelSpec};
use crate::notify::{EVENT_TYPES, SmtpTls, channel_kind};
use crate::yaml::PathSeg;

impl Cx<'_, '_> {
    pub(super) fn message_channel(&mut self, spec: Option<&MessageChannelSpec>) {
        let Some(spec) = spec else {
            let d = self
                .diag(Code::MissingField, &[], "a message channel needs a spec")
                .hint("set one of `slack`, `webhook`, `smtp` under `spec`");
            self.push(d);
            return;
        };
        let set: Vec<&str> = [
            ("slack", spec.slack.is_some()),
            ("webhook", spec.webhook.is_some()),
            ("smtp", spec.smtp.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        match set[..] {
            [] => {
                let d = self
                    .diag(Code::MissingField, &path!["spec"], "the channel sets no provider")
                    .hint("set one of `slack`, `webhook`, `smtp`");
                self.push(d);
            }
            [_] => {}
            [_, second, ..] => {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &path!["spec", second],
                        "the channel sets more than one provider",
                    )
                    .hint("a channel has exactly one of `slack`, `webhook`, `smtp`; make one channel per provider");
                self.push(d);
            }
        }
        if let Some(s) = &spec.slack
            && s.secret_ref.as_ref().is_none_or(|r| r.name.is_empty())
        {
            let d = self
                .diag(Code::MissingField, &path!["spec", "slack"], "slack has no secretRef")
                .hint("write `slack: {secretRef: {name: <secret>}}`, the secret in barge's configuration `secrets` with key `webhookURL`");
            self.push(d);
        }
        if let Some(w) = &spec.webhook {
            let url_ok = w.url.starts_with("http://") || w.url.starts_with("https://");
            if !url_ok {
                let (code, msg) = if w.url.is_empty() {
                    (Code::MissingField, "webhook has no url".to_string())
                } else {
                    (
                        Code::InvalidValue,
                        format!("webhook url {:?} is not an http(s) URL", w.url),
                    )
                };
                let at = if w.url.is_empty() {
                    path!["spec", "webhook"].to_vec()
                } else {
                    path!["spec", "webhook", "url"].to_vec()
                };
                let d = self
                    .diag(code, &at, msg)
                    .hint("write `url: https://receiver.example/hook`");
                self.push(d);
            }
        }
        if let Some(m) = &spec.smtp {
            for (field, value) in [("host", &m.host), ("from", &m.from)] {
                if value.is_empty() {
                    let d = self
                        .diag(
                            Code::MissingField,
                            &path!["spec", "smtp"],
                            format!("smtp has no {field}"),
                        )
                        .hint("an smtp channel needs `host` and `from`");
                    self.push(d);
                }
            }
            if let Some(port) = m.port
                && !(1..=65535).contains(&port)
            {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &path!["spec", "smtp", "port"],
                        format!("smtp port {port} is not a TCP port"),
                    )
                    .hint("1 to 65535; 587 (STARTTLS) or 465 (tls) usually");
                self.push(d);
            }
            if SmtpTls::parse(m.tls.as_deref()).is_none() {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &path!["spec", "smtp", "tls"],
                        format!(
                            "smtp tls {:?} is not starttls, tls or none",
                            m.tls.as_deref().unwrap_or("")
                        ),
                    )
                    .hint("starttls (the default), tls (SMTPS, port 465) or none (a relay on loopback)");
                self.push(d);
            }
        }
    }

    pub(super) fn event_router(&mut self, spec: Option<&EventRouterSpec>) {
        let Some(spec) = spec else {
            let d = self
                .diag(Code::MissingField, &[], "an EventRouter needs a spec")
                .hint("set `spec.types` and `spec.channels`");
            self.push(d);
            return;
        };
        if spec.types.is_empty() {
            let d = self
                .diag(Code::MissingField, &path!["spec"], "the router routes no event types")
                .hint(format!("list some in `types`: {}", EVENT_TYPES.join(", ")));
            self.push(d);
        }
        for (i, t) in spec.types.iter().enumerate() {
            if !EVENT_TYPES.contains(&t.as_str()) {
                let mut d = self.diag(
                    Code::InvalidValue,
                    &path!["spec", "types", i],
                    format!("unknown event type {t:?}"),
                );
                d = match crate::diag::did_you_mean(t, EVENT_TYPES.iter().copied()) {
                    Some(m) => d.hint(format!("did you mean {m}? event types: {}", EVENT_TYPES.join(", "))),
                    None => d.hint(format!("event types: {}", EVENT_TYPES.join(", "))),
                };
                self.push(d);
            }
        }
        if spec.channels.is_empty() {
            let d = self
                .diag(Code::MissingField, &path!["spec"], "the router names no channels")
                .hint("write `channels: [{kind: MessageChannel, name: <channel>}]`");
            self.push(d);
        }
        let project = self.r.project.as_str();
        for (i, c) in spec.channels.iter().enumerate() {
            let key = match channel_kind(c) {
                "MessageChannel" => (Kind::MessageChannel, project),
                "ClusterMessageChannel" => (Kind::ClusterMessageChannel, ""),
                other => {
                    let d = self
                        .diag(
                            Code::InvalidValue,
                            &path!["spec", "channels", i, "kind"],
                            format!("channel kind {other:?} is not MessageChannel or ClusterMessageChannel"),
                        )
                        .hint("MessageChannel (in the project, the default) or ClusterMessageChannel");
                    self.push(d);
                    continue;
                }
            };
            if !self.index.by_key.contains_key(&(key.0, key.1, c.name.as_str())) {
                let at: Vec<PathSeg> = path!["spec", "channels", i, "name"].to_vec();
                let d = self
                    .diag(Code::InvalidValue, &at, format!("no {} named {:?}", key.0, c.name))
                    .hint("define the channel, or correct the name");
                self.push(d);
            }
        }
    }
}
