//! send-message (Kargo Enterprise's): a message through a configured MessageChannel or
//! ClusterMessageChannel, sent by the same sender as the notification outbox
//! ([`crate::notify::send`]), with the one retry policy for its attempts.

use super::{StepCtx, StepDone, StepError, StepResult, config};
use crate::BoxFuture;
use barge_core::notify::Message;
use barge_core::step_config::SendMessage;
use serde_json::{Map, Value as Json, json};

pub(super) fn send_message<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: SendMessage = config("send-message", cfg)?;
        let project = &ctx.promotion.project;
        if c.channel.name.is_empty() {
            return Err(StepError::Invalid("send-message: `channel.name` is required".into()));
        }
        let destination = {
            let catalog = ctx.engine.definitions.borrow().clone();
            barge_core::notify::resolve(&catalog, project, &c.channel, &ctx.engine.data.secrets)
                .map_err(|e| StepError::Invalid(format!("send-message: {e}")))?
        };
        // An expression may have read a secret into the text: known secret values never
        // leave in a message.
        let secrets = ctx.engine.secret_values();
        let redact = |s: &str| barge_core::secret::redact_values(s, &secrets);
        let subject = Some(c.smtp.subject).filter(|s| !s.is_empty()).unwrap_or_else(|| {
            format!(
                "[barge] {}/{}: Freight {}",
                project, ctx.promotion.stage, ctx.promotion.freight.metadata.name
            )
        });
        let message = Message {
            text: redact(&c.message),
            encoding: Some(c.encoding_type).filter(|e| !e.is_empty()),
            subject: Some(redact(&subject)),
            slack_channel: Some(c.slack.channel_id).filter(|s| !s.is_empty()),
            slack_thread: Some(c.slack.thread_ts).filter(|s| !s.is_empty()),
            to: c.smtp.to.to_vec(),
            event: None,
        };
        // The same id on a replay of this step: a receiver can drop the repeat.
        let id = format!("{}.{}", ctx.promotion.name, ctx.step.alias);
        if ctx.engine.dry_run {
            return Ok(StepDone::Done {
                outputs: Map::from_iter([("sent".to_string(), json!(false))]),
                effects: Vec::new(),
            });
        }
        barge_core::retry::retry(
            &barge_core::retry::RetryPolicy::default(),
            tokio::time::sleep,
            ulid::Ulid::generate().random() as u64,
            |_| crate::notify::send(&ctx.engine.http, &destination, &id, &message),
            |_| true,
            |e, attempt, wait| tracing::info!(attempt, ?wait, "send-message: {e}; retrying"),
        )
        .await
        .map_err(|e| StepError::of_class(e.class, format!("send-message: {e}")))?;
        Ok(StepDone::Done {
            outputs: Map::from_iter([("sent".to_string(), json!(true)), ("id".to_string(), json!(id))]),
            effects: Vec::new(),
        })
    })
}
