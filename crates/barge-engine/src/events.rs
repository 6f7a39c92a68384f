//! Domain events and the one sink they all go through.
//!
//! Every thing that happens to a pipeline (Freight minted, a promotion created, its steps,
//! its end, a verification's measurements and outcome, approvals, holds, aliases, reloads,
//! discovery failures) is an [`Event`] handed to [`EventSink::emit`], which in this order
//! redacts it (known secret values and URL userinfo out of every free-text field), logs it
//! with `tracing` (structured fields), appends its audit row (unless the store already wrote
//! it in the transaction that made the change, [`Event::audited_in_store`]) and hands it to
//! the metrics hooks, writes the notifications its definitions' EventRouters ask for into the
//! store's outbox (`crate::notify`), then wakes the API's watches ([`EventSink::subscribe`]).
//! Callers never log or audit a domain event themselves, so there is one place where redaction
//! happens and one place a metric can count from.
//!
//! [`Event::kargo_reason`] names the event as Kargo does where Kargo has the event
//! (`api/v1alpha1/event.go` in github.com/akuity/kargo: `PromotionCreated`,
//! `PromotionSucceeded`, `FreightVerificationFailed`, ...); [`Event::audit_kind`] is barge's
//! audit kind (`barge history` shows it; it never changes).

use barge_core::analysis::VerificationPhase;
use barge_core::eval::StepStatus;
use barge_core::promotion::Phase;
use barge_store::{NewAudit, Store, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;

/// The promotion an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromotionRef {
    pub project: String,
    pub stage: String,
    /// The Freight's name.
    pub freight: String,
    /// The promotion's name.
    pub name: String,
    /// Who asked for the promotion.
    pub actor: String,
}

impl PromotionRef {
    pub fn of(p: &barge_promote::Promotion) -> PromotionRef {
        PromotionRef {
            project: p.project.clone(),
            stage: p.stage.clone(),
            freight: p.freight.metadata.name.clone(),
            name: p.name.clone(),
            actor: p.actor.clone(),
        }
    }

    pub fn of_stored(p: &barge_store::StoredPromotion) -> PromotionRef {
        PromotionRef {
            project: p.project.clone(),
            stage: p.stage.clone(),
            freight: p.freight.clone(),
            name: p.name.clone(),
            actor: p.actor.clone(),
        }
    }
}

/// The verification an event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerificationRef {
    pub project: String,
    pub stage: String,
    /// The Freight's name.
    pub freight: String,
    /// The verification's id.
    pub id: String,
}

impl VerificationRef {
    pub fn of(v: &barge_store::Verification) -> VerificationRef {
        VerificationRef {
            project: v.project.clone(),
            stage: v.stage.clone(),
            freight: v.freight.clone(),
            id: v.id.clone(),
        }
    }
}

/// One measurement of a verification's metric, as its audit row records it.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub metric: String,
    pub provider: String,
    /// The query or request after argument substitution.
    pub resolved: String,
    pub success_condition: Option<String>,
    pub failure_condition: Option<String>,
    /// The measurement's phase.
    pub phase: String,
    pub value: Option<String>,
    pub message: Option<String>,
    /// The metric's phase after this measurement.
    pub metric_phase: String,
    /// When it was taken (Unix milliseconds): its audit row's time.
    pub at: i64,
}

/// Something that happened to a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    FreightMinted {
        project: String,
        warehouse: String,
        freight: String,
        alias: Option<String>,
    },
    FreightApproved {
        project: String,
        stage: String,
        freight: String,
        actor: String,
    },
    FreightAliased {
        project: String,
        /// The Freight as the caller named it (name or former alias).
        freight: String,
        alias: String,
        actor: String,
    },
    /// set-metadata recorded values on a Stage or a Freight.
    MetadataUpdated {
        project: String,
        /// `Stage` or `Freight`.
        kind: String,
        name: String,
        actor: String,
    },
    PromotionCreated(PromotionRef),
    StepStarted {
        promotion: PromotionRef,
        step: String,
        uses: String,
    },
    StepFinished {
        promotion: PromotionRef,
        step: String,
        uses: String,
        status: StepStatus,
        message: String,
        outputs: Value,
    },
    /// A promotion ended by itself: Succeeded, Failed or Errored.
    PromotionFinished {
        promotion: PromotionRef,
        phase: Phase,
        message: String,
    },
    PromotionAborted {
        promotion: PromotionRef,
        /// Who aborted it.
        by: String,
    },
    /// A successful promotion moved its Freight into the Stage.
    FreightEntered(PromotionRef),
    /// A person promoted although the Stage's promotion window was closed.
    WindowOverridden {
        project: String,
        stage: String,
        freight: String,
        actor: String,
        reason: String,
    },
    VerificationStarted {
        verification: VerificationRef,
        actor: String,
    },
    VerificationMeasured {
        verification: VerificationRef,
        measured: Measured,
    },
    VerificationFinished {
        verification: VerificationRef,
        phase: VerificationPhase,
        message: String,
        actor: String,
    },
    StageHeld {
        project: String,
        stage: String,
        warehouse: String,
        freight: String,
        actor: String,
    },
    StageReleased {
        project: String,
        stage: String,
        actor: String,
        holds: u64,
    },
    RefreshRequested {
        project: String,
        warehouse: String,
        actor: String,
    },
    DefinitionsReloaded {
        /// Where they were read from (URL userinfo already redacted).
        source: String,
    },
    DefinitionsRejected {
        errors: usize,
        diagnostics: Value,
    },
    DiscoveryFailed {
        project: String,
        warehouse: String,
        /// The subscription's repository, or none when the whole pass failed.
        repo_url: Option<String>,
        error: String,
    },
    /// A call refused: 401 (no valid token) or 403 (a caller who may not).
    AccessDenied {
        project: String,
        stage: String,
        /// What was refused: `Call/promote`, `Call/unauthenticated`.
        subject: String,
        actor: String,
        /// `status`, `reason` and what was asked (never a token).
        body: Value,
    },
    /// A record-audit-event step's event (Kargo Enterprise's step): recorded under the
    /// promotion's actor; whom the step attributes it to is in the body.
    AuditRecorded {
        promotion: PromotionRef,
        step: String,
        /// The step's `type`.
        kind: String,
        message: String,
        attributed_to: Option<String>,
        /// String keys and values.
        data: Value,
    },
    /// A webhook delivery that failed its provider's authentication (what it carried is
    /// never recorded).
    WebhookRefused {
        project: String,
        receiver: String,
        /// `webhook:<provider>`.
        actor: String,
        /// The receiver's URL path (a hash, not the secret).
        path: String,
    },
}

/// The columns of an audit row other than its time, project and kind.
struct AuditRow<'a> {
    subject: String,
    actor: &'a str,
    stage: &'a str,
    freight: &'a str,
    body: Value,
}

impl Event {
    /// barge's name for the event: its audit kind when it is audited (`barge history`),
    /// else a name in the same form.
    pub fn name(&self) -> &'static str {
        match self {
            Event::FreightMinted { .. } => "freight.minted",
            Event::FreightApproved { .. } => "freight.approved",
            Event::FreightAliased { .. } => "freight.aliased",
            Event::MetadataUpdated { .. } => "metadata.updated",
            Event::PromotionCreated(_) => "promotion.created",
            Event::StepStarted { .. } => "promotion.step.started",
            Event::StepFinished { uses, status, .. } => {
                if uses == "git-push" && *status == StepStatus::Succeeded {
                    "promotion.pushed"
                } else {
                    "promotion.step"
                }
            }
            Event::PromotionFinished { .. } => "promotion.finished",
            Event::PromotionAborted { .. } => "promotion.aborted",
            Event::FreightEntered(_) => "stage.entered",
            Event::WindowOverridden { .. } => "window.overridden",
            Event::VerificationStarted { .. } => "verification.started",
            Event::VerificationMeasured { .. } => "verification.measured",
            Event::VerificationFinished { .. } => "verification.finished",
            Event::StageHeld { .. } => "stage.held",
            Event::StageReleased { .. } => "stage.released",
            Event::RefreshRequested { .. } => "refresh.requested",
            Event::DefinitionsReloaded { .. } => "config.reloaded",
            Event::DefinitionsRejected { .. } => "config.rejected",
            Event::DiscoveryFailed { .. } => "discovery.failed",
            Event::AccessDenied { .. } => "access.denied",
            Event::AuditRecorded { .. } => "promotion.audit",
            Event::WebhookRefused { .. } => "webhook.unauthorized",
        }
    }

    /// The event's audit kind, or none for events that are only logged (a step starting, a
    /// refresh request, a failed discovery pass: the next step's row, the discovery it asks
    /// for and the Warehouse's stored status record what matters of them).
    pub fn audit_kind(&self) -> Option<&'static str> {
        match self {
            Event::StepStarted { .. } | Event::RefreshRequested { .. } | Event::DiscoveryFailed { .. } => None,
            _ => Some(self.name()),
        }
    }

    /// Whether the store wrote this event's audit row itself, in the transaction that made
    /// the change: the change and its row commit together or not at all, so a crash can never
    /// leave Freight minted, a promotion created or finished, an approval or a hold without
    /// its audit row (nor a row for a change that was rolled back). [`EventSink::emit`]
    /// must not append a second row for these.
    pub fn audited_in_store(&self) -> bool {
        match self {
            Event::FreightMinted { .. }
            | Event::FreightApproved { .. }
            | Event::FreightAliased { .. }
            | Event::MetadataUpdated { .. }
            | Event::PromotionCreated(_)
            | Event::PromotionFinished { .. }
            | Event::PromotionAborted { .. }
            | Event::FreightEntered(_)
            | Event::VerificationStarted { .. }
            | Event::VerificationFinished { .. }
            | Event::StageHeld { .. }
            | Event::StageReleased { .. }
            | Event::DefinitionsReloaded { .. } => true,
            Event::StepStarted { .. }
            | Event::StepFinished { .. }
            | Event::WindowOverridden { .. }
            | Event::VerificationMeasured { .. }
            | Event::RefreshRequested { .. }
            | Event::DefinitionsRejected { .. }
            | Event::DiscoveryFailed { .. }
            | Event::AccessDenied { .. }
            | Event::AuditRecorded { .. }
            | Event::WebhookRefused { .. } => false,
        }
    }

    /// Kargo's event reason for this event (`api/v1alpha1/event.go`), where Kargo has one.
    pub fn kargo_reason(&self) -> Option<&'static str> {
        Some(match self {
            Event::FreightMinted { .. } => "FreightCreated",
            Event::FreightApproved { .. } => "FreightApproved",
            Event::PromotionCreated(_) => "PromotionCreated",
            Event::PromotionFinished { phase, .. } => return promotion_reason(*phase),
            Event::PromotionAborted { .. } => "PromotionAborted",
            Event::VerificationFinished { phase, .. } => verification_reason(*phase),
            _ => return None,
        })
    }

    /// The project the event belongs to ('' for the definitions as a whole).
    pub fn project(&self) -> &str {
        match self {
            Event::FreightMinted { project, .. }
            | Event::FreightApproved { project, .. }
            | Event::FreightAliased { project, .. }
            | Event::MetadataUpdated { project, .. }
            | Event::WindowOverridden { project, .. }
            | Event::StageHeld { project, .. }
            | Event::StageReleased { project, .. }
            | Event::RefreshRequested { project, .. }
            | Event::DiscoveryFailed { project, .. }
            | Event::AccessDenied { project, .. }
            | Event::WebhookRefused { project, .. } => project,
            Event::PromotionCreated(p)
            | Event::FreightEntered(p)
            | Event::StepStarted { promotion: p, .. }
            | Event::StepFinished { promotion: p, .. }
            | Event::PromotionFinished { promotion: p, .. }
            | Event::PromotionAborted { promotion: p, .. }
            | Event::AuditRecorded { promotion: p, .. } => &p.project,
            Event::VerificationStarted { verification: v, .. }
            | Event::VerificationMeasured { verification: v, .. }
            | Event::VerificationFinished { verification: v, .. } => &v.project,
            Event::DefinitionsReloaded { .. } | Event::DefinitionsRejected { .. } => "",
        }
    }

    /// Problems are warnings; everything else is information.
    fn is_problem(&self) -> bool {
        matches!(
            self,
            Event::DefinitionsRejected { .. }
                | Event::DiscoveryFailed { .. }
                | Event::AccessDenied { .. }
                | Event::WebhookRefused { .. }
        )
    }

    /// The rows the sink appends itself (events not audited in the store), as barge has
    /// always written them.
    fn audit_row(&self) -> Option<AuditRow<'_>> {
        Some(match self {
            Event::StepFinished {
                promotion,
                step,
                uses,
                status,
                message,
                outputs,
            } => AuditRow {
                subject: format!("Promotion/{}", promotion.name),
                actor: &promotion.actor,
                stage: &promotion.stage,
                freight: &promotion.freight,
                body: json!({"step": step, "uses": uses, "status": status.as_str(), "message": message, "outputs": outputs}),
            },
            Event::WindowOverridden {
                stage,
                freight,
                actor,
                reason,
                ..
            } => AuditRow {
                subject: format!("Stage/{stage}"),
                actor,
                stage,
                freight,
                body: json!({"reason": reason}),
            },
            Event::VerificationMeasured {
                verification: v,
                measured: m,
            } => AuditRow {
                subject: format!("Stage/{}", v.stage),
                actor: "barge",
                stage: &v.stage,
                freight: &v.freight,
                body: json!({
                    "verification": v.id,
                    "metric": m.metric,
                    "provider": m.provider,
                    "resolved": m.resolved,
                    "successCondition": m.success_condition,
                    "failureCondition": m.failure_condition,
                    "phase": m.phase,
                    "value": m.value,
                    "message": m.message,
                    "metricPhase": m.metric_phase,
                }),
            },
            Event::AccessDenied {
                stage,
                subject,
                actor,
                body,
                ..
            } => AuditRow {
                subject: subject.clone(),
                actor,
                stage,
                freight: "",
                body: body.clone(),
            },
            Event::AuditRecorded {
                promotion,
                step,
                kind,
                message,
                attributed_to,
                data,
            } => AuditRow {
                subject: format!("Promotion/{}", promotion.name),
                actor: &promotion.actor,
                stage: &promotion.stage,
                freight: &promotion.freight,
                body: json!({"type": kind, "message": message, "attributedTo": attributed_to, "data": data, "step": step}),
            },
            Event::WebhookRefused {
                receiver, actor, path, ..
            } => AuditRow {
                subject: format!("WebhookReceiver/{receiver}"),
                actor,
                stage: "",
                freight: "",
                body: json!({"path": path, "reason": "missing or wrong signature or token"}),
            },
            Event::DefinitionsRejected { errors, diagnostics } => AuditRow {
                subject: "Definitions".into(),
                actor: "barge",
                stage: "",
                freight: "",
                body: json!({"errors": errors, "diagnostics": diagnostics}),
            },
            _ => return None,
        })
    }

    /// What the log line says besides its structured fields.
    fn summary(&self) -> String {
        match self {
            Event::FreightMinted { warehouse, alias, .. } => {
                format!(
                    "Warehouse {warehouse} minted Freight {}",
                    alias.as_deref().unwrap_or("")
                )
            }
            Event::FreightApproved { .. } => "Freight approved".into(),
            Event::FreightAliased { alias, .. } => format!("Freight aliased {alias}"),
            Event::MetadataUpdated { kind, name, .. } => format!("metadata of {kind} {name} updated"),
            Event::PromotionCreated(_) => "promotion created".into(),
            Event::StepStarted { .. } => "step started".into(),
            Event::StepFinished { status, message, .. } if message.is_empty() => {
                format!("step finished: {}", status.as_str())
            }
            Event::StepFinished { status, message, .. } => {
                format!("step finished: {}: {message}", status.as_str())
            }
            Event::PromotionFinished { phase, message, .. } if message.is_empty() => {
                format!("promotion {}", phase.as_str())
            }
            Event::PromotionFinished { phase, message, .. } => format!("promotion {}: {message}", phase.as_str()),
            Event::PromotionAborted { by, .. } => format!("promotion aborted by {by}"),
            Event::FreightEntered(_) => "Freight entered the Stage".into(),
            Event::WindowOverridden { reason, .. } => format!("promotion window overridden: {reason}"),
            Event::VerificationStarted { .. } => "verification started".into(),
            Event::VerificationMeasured { measured: m, .. } => format!(
                "measured {}: {} {}{}",
                m.metric,
                m.phase,
                m.value.as_deref().unwrap_or(""),
                m.message.as_deref().map(|x| format!(" ({x})")).unwrap_or_default()
            ),
            Event::VerificationFinished { phase, message, .. } if message.is_empty() => {
                format!("verification {phase}")
            }
            Event::VerificationFinished { phase, message, .. } => format!("verification {phase}: {message}"),
            Event::StageHeld { warehouse, .. } => format!("Stage held (Warehouse {warehouse})"),
            Event::StageReleased { holds, .. } => format!("Stage released: {holds} hold(s) cleared"),
            Event::RefreshRequested { .. } => "refresh requested".into(),
            Event::DefinitionsReloaded { source } => format!("definitions reloaded from {source}"),
            Event::DefinitionsRejected { errors, .. } => {
                format!("the changed definitions have {errors} error(s); keeping the last good ones")
            }
            Event::DiscoveryFailed {
                repo_url: Some(url),
                error,
                ..
            } => format!("discovery of {url} failed: {error}"),
            Event::DiscoveryFailed { error, .. } => format!("discovery failed: {error}"),
            Event::WebhookRefused { receiver, .. } => {
                format!("webhook delivery to {receiver} refused: missing or wrong signature or token")
            }
            Event::AuditRecorded { kind, message, .. } => format!("audit event {kind}: {message}"),
            Event::AccessDenied { subject, body, .. } => format!(
                "{subject} refused ({}): {}",
                body["status"],
                body["reason"].as_str().unwrap_or_default()
            ),
        }
    }

    /// The identifying fields of the log line (none is free text).
    fn fields(&self) -> LogFields<'_> {
        let mut f = LogFields::default();
        match self {
            Event::FreightMinted { warehouse, freight, .. } => {
                f.warehouse = Some(warehouse);
                f.freight = Some(freight);
            }
            Event::FreightApproved {
                stage, freight, actor, ..
            }
            | Event::WindowOverridden {
                stage, freight, actor, ..
            } => {
                f.stage = Some(stage);
                f.freight = Some(freight);
                f.actor = Some(actor);
            }
            Event::FreightAliased { freight, actor, .. } => {
                f.freight = Some(freight);
                f.actor = Some(actor);
            }
            Event::MetadataUpdated { actor, .. } => f.actor = Some(actor),
            Event::PromotionCreated(p) | Event::FreightEntered(p) | Event::PromotionFinished { promotion: p, .. } => {
                f.promotion(p);
            }
            Event::PromotionAborted { promotion, by } => {
                f.promotion(promotion);
                f.actor = Some(by);
            }
            Event::StepStarted { promotion, step, uses }
            | Event::StepFinished {
                promotion, step, uses, ..
            } => {
                f.promotion(promotion);
                f.step = Some(step);
                f.uses = Some(uses);
            }
            Event::AuditRecorded { promotion, step, .. } => {
                f.promotion(promotion);
                f.step = Some(step);
            }
            Event::VerificationStarted { verification, actor }
            | Event::VerificationFinished {
                verification, actor, ..
            } => {
                f.verification(verification);
                f.actor = Some(actor);
            }
            Event::VerificationMeasured { verification, .. } => f.verification(verification),
            Event::StageHeld {
                stage,
                warehouse,
                freight,
                actor,
                ..
            } => {
                f.stage = Some(stage);
                f.warehouse = Some(warehouse);
                f.freight = Some(freight);
                f.actor = Some(actor);
            }
            Event::StageReleased { stage, actor, .. } => {
                f.stage = Some(stage);
                f.actor = Some(actor);
            }
            Event::RefreshRequested { warehouse, actor, .. } => {
                f.warehouse = Some(warehouse);
                f.actor = Some(actor);
            }
            Event::DiscoveryFailed { warehouse, .. } => f.warehouse = Some(warehouse),
            Event::WebhookRefused { .. } => {}
            Event::AccessDenied { stage, actor, .. } => {
                f.stage = Some(stage);
                f.actor = Some(actor);
            }
            Event::DefinitionsReloaded { .. } | Event::DefinitionsRejected { .. } => {}
        }
        f
    }

    /// The event with known secret values and URL userinfo taken out of every free-text
    /// field (messages, outputs, reasons, errors, queries, values). Names (project, Stage,
    /// Freight, promotion, step) are identifiers validation keeps to a small alphabet; they
    /// are kept as they are.
    fn redacted(mut self, r: &Redactor) -> Event {
        match &mut self {
            Event::StepFinished { message, outputs, .. } => {
                *message = r.text(message);
                *outputs = r.json(outputs);
            }
            Event::PromotionFinished { message, .. } | Event::VerificationFinished { message, .. } => {
                *message = r.text(message);
            }
            Event::WindowOverridden { reason, .. } => *reason = r.text(reason),
            Event::VerificationMeasured { measured: m, .. } => {
                m.resolved = r.text(&m.resolved);
                for text in [
                    &mut m.success_condition,
                    &mut m.failure_condition,
                    &mut m.value,
                    &mut m.message,
                ]
                .into_iter()
                .flatten()
                {
                    *text = r.text(text);
                }
            }
            Event::DefinitionsReloaded { source } => *source = r.text(source),
            Event::DefinitionsRejected { diagnostics, .. } => *diagnostics = r.json(diagnostics),
            Event::AccessDenied { body, .. } => *body = r.json(body),
            Event::AuditRecorded {
                message,
                attributed_to,
                data,
                ..
            } => {
                *message = r.text(message);
                *data = r.json(data);
                if let Some(who) = attributed_to {
                    *who = r.text(who);
                }
            }
            Event::WebhookRefused { .. } => {}
            Event::DiscoveryFailed { repo_url, error, .. } => {
                *error = r.text(error);
                if let Some(url) = repo_url {
                    *url = r.text(url);
                }
            }
            Event::FreightMinted { .. }
            | Event::FreightApproved { .. }
            | Event::FreightAliased { .. }
            | Event::MetadataUpdated { .. }
            | Event::PromotionCreated(_)
            | Event::StepStarted { .. }
            | Event::PromotionAborted { .. }
            | Event::FreightEntered(_)
            | Event::VerificationStarted { .. }
            | Event::StageHeld { .. }
            | Event::StageReleased { .. }
            | Event::RefreshRequested { .. } => {}
        }
        self
    }
}

/// The identifying fields a log line carries (tracing records only those present).
#[derive(Default)]
struct LogFields<'a> {
    stage: Option<&'a str>,
    freight: Option<&'a str>,
    warehouse: Option<&'a str>,
    promotion: Option<&'a str>,
    verification: Option<&'a str>,
    step: Option<&'a str>,
    uses: Option<&'a str>,
    actor: Option<&'a str>,
}

impl<'a> LogFields<'a> {
    fn promotion(&mut self, p: &'a PromotionRef) {
        self.stage = Some(&p.stage);
        self.freight = Some(&p.freight);
        self.promotion = Some(&p.name);
        self.actor = Some(&p.actor);
    }

    fn verification(&mut self, v: &'a VerificationRef) {
        self.stage = Some(&v.stage);
        self.freight = Some(&v.freight);
        self.verification = Some(&v.id);
    }
}

/// What hides secrets in events: barge_core's redaction helpers with the secret values
/// steps and analyses can read.
#[derive(Clone, Default)]
struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    fn text(&self, s: &str) -> String {
        // `UrlCredentials::strip` takes the userinfo off every http(s) URL of a text; what it
        // took is dropped with it.
        let without_userinfo = barge_core::secret::UrlCredentials::default().strip(s);
        barge_core::secret::redact_values(&without_userinfo, &self.secrets)
    }

    fn json(&self, v: &Value) -> Value {
        barge_core::secret::map_json_strings(v, &|s| self.text(s))
    }
}

/// Where the metrics issue counts events: called once per emitted event, after redaction.
pub trait MetricsHook: Send + Sync {
    fn record(&self, event: &Event);
}

/// The one sink of domain events (one per engine or daemon; cloning it is cheap).
#[derive(Clone, Default)]
pub struct EventSink {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    /// Where audit rows go; none for a dry run or a command without a store.
    store: Option<Store>,
    redactor: Redactor,
    metrics: Vec<Arc<dyn MetricsHook>>,
    /// The definitions whose EventRouters route events into the outbox; none routes nothing.
    definitions: Option<tokio::sync::watch::Receiver<Arc<barge_core::load::Catalog>>>,
    changed: Changed,
    /// Wakes the notification delivery task: routing queued notifications.
    queued: Arc<tokio::sync::Notify>,
}

/// Wakes the API's watches (`?watch=true`) after an event is recorded: they then read the
/// audit log from their cursor. It carries no event, only "look again", so a watcher that
/// lags behind loses nothing (it reads the store), and sending never waits for a watcher:
/// a broadcast channel overwrites what a slow receiver has not taken.
#[derive(Clone)]
struct Changed(tokio::sync::broadcast::Sender<()>);

impl Default for Changed {
    fn default() -> Changed {
        // One pending wake-up is as good as many; a little room spares receivers the
        // `Lagged` error they would handle the same way.
        Changed(tokio::sync::broadcast::channel(4).0)
    }
}

impl EventSink {
    /// A sink auditing into `store` (if any) and redacting `secrets` (the secret values steps
    /// and analyses can read, [`barge_promote::Engine::secret_values`]).
    pub fn new(store: Option<Store>, secrets: Vec<String>) -> EventSink {
        EventSink {
            inner: Arc::new(Inner {
                store,
                redactor: Redactor { secrets },
                metrics: Vec::new(),
                changed: Changed::default(),
                definitions: None,
                queued: Arc::default(),
            }),
        }
    }

    /// The sink of a process that runs promotions with `engine`.
    pub fn for_engine(store: Store, engine: &barge_promote::Engine) -> EventSink {
        let mut sink = EventSink::new(Some(store), engine.secret_values());
        Arc::make_mut(&mut sink.inner).definitions = Some(engine.definitions.clone());
        sink
    }

    /// Adds a metrics hook.
    #[must_use]
    pub fn with_metrics(mut self, hook: Arc<dyn MetricsHook>) -> EventSink {
        Arc::make_mut(&mut self.inner).metrics.push(hook);
        self
    }

    /// The same sink for a dry run: a dry run changes nothing, so its events are logged
    /// (redacted) but neither audited nor counted.
    pub fn logging_only(&self) -> EventSink {
        EventSink::new(None, self.inner.redactor.secrets.clone())
    }

    /// Redacts, logs, audits (unless the store did, [`Event::audited_in_store`]) and counts
    /// one event. A failed audit is logged here too; it is returned for the callers whose
    /// action must not go on unaudited (a window override).
    pub async fn emit(&self, event: Event) -> Result<(), StoreError> {
        let event = event.redacted(&self.inner.redactor);
        log(&event);
        let audited = self.audit(&event).await;
        if let Err(e) = &audited {
            tracing::error!(event = event.name(), project = event.project(), "cannot audit: {e}");
        }
        for hook in &self.inner.metrics {
            hook.record(&event);
        }
        // The event's audit row is in the store now (the store's own, or the one just
        // appended): route it, and any row a process killed before routing left behind.
        if crate::notify::event_type(&event).is_some()
            && let Err(e) = self.route_pending().await
        {
            tracing::error!(
                event = event.name(),
                project = event.project(),
                "cannot queue notifications (the next routing pass takes them): {e}"
            );
        }
        // No receiver (no watch open) is not an error.
        let _ = self.inner.changed.0.send(());
        audited
    }

    /// Routes every audit row not routed yet into the notification outbox with the running
    /// definitions' EventRouters (nothing without definitions: a process that has none leaves
    /// the rows to one that has). A batch's notifications and its rows' marks commit together
    /// (`Store::route_audit`), so a process killed after the row and before routing loses
    /// none: the next pass, here or in `barge serve`'s delivery task, routes it. Definitions
    /// without an EventRouter only mark the rows (`Store::mark_audit_routed`). Wakes the
    /// delivery task when it queued any; returns how many.
    pub async fn route_pending(&self) -> Result<usize, StoreError> {
        /// Audit rows per routing transaction.
        const BATCH: i64 = 256;
        let (Some(store), Some(definitions)) = (&self.inner.store, &self.inner.definitions) else {
            return Ok(0);
        };
        let catalog = definitions.borrow().clone();
        if !crate::notify::routes_anything(&catalog) {
            // No EventRouter: the rows are marked, one statement per batch, so that a router
            // added later is not handed a backlog of old events.
            while store.mark_audit_routed(BATCH).await? == BATCH as usize {}
            return Ok(0);
        }
        let mut queued = 0;
        loop {
            let now = crate::discover::now_millis();
            let (routed, notifications) = store
                .route_audit(BATCH, now, |row| {
                    // The store's rows hold what the change held; channels get it redacted.
                    let redacted = barge_store::AuditEvent {
                        body: self.inner.redactor.json(&row.body),
                        ..row.clone()
                    };
                    crate::notify::notifications_for(&catalog, &redacted)
                })
                .await?;
            queued += notifications;
            if routed < BATCH as usize {
                break;
            }
        }
        if queued > 0 {
            self.inner.queued.notify_one();
        }
        Ok(queued)
    }

    /// Completes when routing queued notifications since the last call (one wake-up for any
    /// number): the delivery task's signal to look at the outbox.
    pub async fn notifications_queued(&self) {
        self.inner.queued.notified().await;
    }

    /// A receiver woken after each event this sink emits (its audit row, if any, is in
    /// the store by then): the in-process wake-up of the API's watches.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.inner.changed.0.subscribe()
    }

    async fn audit(&self, event: &Event) -> Result<(), StoreError> {
        // Its row was written with the change it records, in one transaction.
        if event.audited_in_store() {
            return Ok(());
        }
        let (Some(store), Some(kind), Some(row)) = (&self.inner.store, event.audit_kind(), event.audit_row()) else {
            return Ok(());
        };
        let at = match event {
            Event::VerificationMeasured { measured, .. } => measured.at,
            _ => crate::discover::now_millis(),
        };
        store
            .append_audit(NewAudit {
                at,
                project: event.project(),
                kind,
                subject: &row.subject,
                actor: row.actor,
                stage: row.stage,
                freight: row.freight,
                body: &row.body,
            })
            .await
    }
}

/// Kargo's reason for a promotion that ended in `phase` (none while it runs).
pub fn promotion_reason(phase: Phase) -> Option<&'static str> {
    Some(match phase {
        Phase::Succeeded => "PromotionSucceeded",
        Phase::Failed => "PromotionFailed",
        Phase::Errored => "PromotionErrored",
        Phase::Aborted => "PromotionAborted",
        Phase::Pending | Phase::Running => return None,
    })
}

/// Kargo's reason for a verification that ended in `phase`.
pub fn verification_reason(phase: VerificationPhase) -> &'static str {
    match phase {
        VerificationPhase::Succeeded => "FreightVerificationSucceeded",
        VerificationPhase::Failed => "FreightVerificationFailed",
        VerificationPhase::Error => "FreightVerificationErrored",
        VerificationPhase::Aborted => "FreightVerificationAborted",
        VerificationPhase::Inconclusive => "FreightVerificationInconclusive",
        VerificationPhase::Pending | VerificationPhase::Running => "FreightVerificationUnknown",
    }
}

/// One log line per event, at its level, with its names as fields and, where it has one,
/// its audit body (`detail`: step outputs, a measurement, diagnostics).
fn log(event: &Event) {
    let f = event.fields();
    let name = event.name();
    let reason = event.kargo_reason();
    let project = Some(event.project()).filter(|p| !p.is_empty());
    let detail = event.audit_row().map(|r| r.body.to_string());
    let summary = event.summary();
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(
                $level,
                event = name,
                reason,
                project,
                stage = f.stage,
                warehouse = f.warehouse,
                freight = f.freight,
                promotion = f.promotion,
                verification = f.verification,
                step = f.step,
                uses = f.uses,
                actor = f.actor,
                detail,
                "{summary}"
            )
        };
    }
    if event.is_problem() {
        at!(tracing::Level::WARN);
    } else {
        at!(tracing::Level::INFO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(phase: VerificationPhase) -> Event {
        Event::VerificationFinished {
            verification: VerificationRef {
                project: "shop".into(),
                stage: "dev".into(),
                freight: "f".into(),
                id: "v".into(),
            },
            phase,
            message: String::new(),
            actor: "barge".into(),
        }
    }

    #[test]
    fn verification_outcomes_have_kargos_reasons() {
        let reasons: Vec<_> = [
            VerificationPhase::Succeeded,
            VerificationPhase::Failed,
            VerificationPhase::Error,
            VerificationPhase::Aborted,
            VerificationPhase::Inconclusive,
            VerificationPhase::Running,
        ]
        .into_iter()
        .map(|p| finished(p).kargo_reason())
        .collect();
        assert_eq!(
            reasons,
            [
                Some("FreightVerificationSucceeded"),
                Some("FreightVerificationFailed"),
                Some("FreightVerificationErrored"),
                Some("FreightVerificationAborted"),
                Some("FreightVerificationInconclusive"),
                Some("FreightVerificationUnknown"),
            ]
        );
        assert_eq!(
            finished(VerificationPhase::Failed).audit_kind(),
            Some("verification.finished")
        );
        assert!(finished(VerificationPhase::Failed).audited_in_store());
    }
}
