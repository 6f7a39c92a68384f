//! The actions: each GET shows a confirmation that says what will happen (with a form whose
//! POST carries the session's CSRF token); the POST makes the engine's call as the signed-in
//! token and goes to what it changed. A Freight the Stage may not take yet (not verified
//! upstream, not soaked, not approved) is offered for approval instead of failing
//! (Kargo #5345 promotes it into a failure).

use super::pages::{self, seg};
use super::{Viewer, button, engine_error, form, page, page_error, redirect};
use crate::api::Api;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use barge_core::authz::Action;
use barge_engine::pipeline::{self, Snapshot};
use barge_engine::{Answer, EngineError, ops::Call};
use maud::{Markup, html};

/// What a Stage's action path names.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verb {
    Promote,
    PromoteDownstream,
    Approve,
    Hold,
    Release,
    Verify,
}

impl Verb {
    fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "promote" => Verb::Promote,
            "promote-downstream" => Verb::PromoteDownstream,
            "approve" => Verb::Approve,
            "hold" => Verb::Hold,
            "release" => Verb::Release,
            "verify" => Verb::Verify,
            _ => return None,
        })
    }

    fn action(self) -> Action {
        match self {
            Verb::Promote | Verb::PromoteDownstream => Action::Promote,
            Verb::Approve => Action::Approve,
            Verb::Hold => Action::Hold,
            Verb::Release => Action::Release,
            Verb::Verify => Action::Verify,
        }
    }

    fn needs_freight(self) -> bool {
        matches!(self, Verb::Promote | Verb::PromoteDownstream | Verb::Approve)
    }
}

#[derive(serde::Deserialize)]
pub(super) struct FreightQuery {
    freight: Option<String>,
}

#[derive(serde::Deserialize)]
struct ActionForm {
    #[serde(rename = "csrf")]
    _csrf: String,
    freight: Option<String>,
}

/// The Freight an action names, with what people call it.
async fn named_freight(
    api: &Api,
    v: &Viewer,
    project: &str,
    name: Option<&str>,
) -> Result<Option<(String, String)>, EngineError> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let f = pages::freight(api, v, project, None, Some(name)).await?;
    Ok(f.into_iter().next().map(|f| {
        let alias = f
            .freight
            .alias
            .clone()
            .unwrap_or_else(|| f.freight.metadata.name.clone());
        (f.freight.metadata.name, alias)
    }))
}

/// Why the Stage cannot take the Freight by hand now (the check a promotion makes), if so.
async fn not_ready(api: &Api, project: &str, stage: &str, freight: &str) -> Result<Option<String>, EngineError> {
    let catalog = api.shared.catalog();
    let all = pipeline::stages(&catalog);
    let def = pipeline::find_stage(&all, stage, Some(project))?;
    let Some(f) = api.shared.store.get_freight(project, freight).await? else {
        return Ok(None);
    };
    let snap = Snapshot::read(&api.shared.store, project).await?;
    let now = barge_engine::promote::now_millis();
    Ok(pipeline::check_manual(&catalog, &snap, def, &f, None, now)
        .err()
        .map(|e| e.to_string()))
}

/// The Stages of `project` that take Freight from `stage`, in promotion order.
fn downstream(api: &Api, project: &str, stage: &str) -> Vec<String> {
    let catalog = api.shared.catalog();
    pipeline::stages(&catalog)
        .into_iter()
        .filter(|(p, _)| *p == project)
        .flat_map(|(_, defs)| defs)
        .filter(|d| {
            d.spec
                .requested_freight
                .iter()
                .any(|r| r.sources.stages.iter().any(|s| s == stage))
        })
        .map(|d| d.name.to_string())
        .collect()
}

/// GET `/projects/{project}/stages/{stage}/{verb}`: what the action will do, and its form.
pub(super) async fn confirm(
    State(api): State<Api>,
    v: Viewer,
    Path((project, stage, verb)): Path<(String, String, String)>,
    Query(q): Query<FreightQuery>,
) -> Response {
    let Some(verb) = Verb::parse(&verb) else {
        return page_error(StatusCode::NOT_FOUND, &format!("no action {verb:?} on a Stage"));
    };
    // Reading the Stage first: a viewer who may not read it learns nothing more here.
    if let Err(e) = pages::stages(&api, &v, &project, Some(&stage)).await {
        return engine_error(&e);
    }
    let freight = match named_freight(&api, &v, &project, q.freight.as_deref()).await {
        Ok(f) => f,
        Err(e) => return engine_error(&e),
    };
    if verb.needs_freight() && freight.is_none() {
        return page_error(StatusCode::BAD_REQUEST, "choose a Freight first");
    }
    let alias = freight.as_ref().map_or("", |(_, a)| a.as_str());
    let name = freight.as_ref().map(|(n, _)| n.as_str());
    let here = format!("/projects/{}/stages/{}", seg(&project), seg(&stage));
    let (title, says): (String, Markup) = match verb {
        Verb::Promote => (
            format!("Promote {alias} to {stage}?"),
            html! {
                p { "This queues a promotion of Freight " strong { (alias) } " into Stage " strong { (stage) } ". The daemon then runs the Stage's steps (clone, update, commit, push) and records you as the actor. A Stage with auto-promotion is held on this Freight until released." }
            },
        ),
        Verb::PromoteDownstream => {
            let into = downstream(&api, &project, &stage);
            (
                format!("Promote {alias} downstream of {stage}?"),
                html! {
                    p { "This queues a promotion of Freight " strong { (alias) } " into every Stage that takes Freight from " strong { (stage) } ": "
                        @if into.is_empty() { "none does, so nothing happens." }
                        @else { @for (i, s) in into.iter().enumerate() { @if i > 0 { ", " } strong.into { (s) } } "." }
                    }
                },
            )
        }
        Verb::Approve => (
            format!("Approve {alias} for {stage}?"),
            html! {
                p { "This makes Freight " strong { (alias) } " available to Stage " strong { (stage) } " whatever its upstream verification and soak time say, and records you as the approver." }
            },
        ),
        Verb::Hold => (
            format!("Hold {stage}?"),
            html! {
                p { "Auto-promotion stops bringing new Freight into " strong { (stage) } " until someone releases it. Manual promotions still work." }
            },
        ),
        Verb::Release => (
            format!("Release {stage}?"),
            html! {
                p { "Auto-promotion into " strong { (stage) } " resumes with the newest Freight it may take." }
            },
        ),
        Verb::Verify => (
            format!("Verify {stage} again?"),
            html! {
                p { "This runs the Stage's verification again on the Freight it has now." }
            },
        ),
    };
    // Promoting what the Stage may not take yet would only fail: ask for approval instead.
    let blocked = match (verb, name) {
        (Verb::Promote, Some(n)) => match not_ready(&api, &project, &stage, n).await {
            Ok(why) => why,
            Err(e) => return engine_error(&e),
        },
        _ => None,
    };
    // The diff each push would land, from the engine's dry run (as the viewer: one who may
    // not promote sees why there is no preview instead).
    let preview = match (verb, name, &blocked) {
        (Verb::Promote, Some(n), None) => Some(dry_run(&api, &v, &project, &stage, n).await),
        _ => None,
    };
    let csrf = v.csrf.clone().unwrap_or_default();
    let denied = v.denied(verb.action(), &project, Some(&stage));
    let approve_denied = v.denied(Action::Approve, &project, Some(&stage));
    let body = html! {
        h1 { (title) }
        (says)
        @if let Some(why) = &blocked {
            div.notice role="status" {
                h2 { "This Freight needs approval first" }
                p { (why) }
                form method="post" action={ (here) "/approve" } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="freight" value=[name];
                    (button(&format!("Approve {alias} for {stage}"), approve_denied.as_deref(), "approve", None))
                }
                p.muted { "Then come back to promote it." }
            }
        } @else {
            @if let Some(preview) = &preview { (preview) }
            form method="post" action={ (here) "/" (verb_path(verb)) } {
                input type="hidden" name="csrf" value=(csrf);
                @if let Some(n) = name { input type="hidden" name="freight" value=(n); }
                (button("Confirm", denied.as_deref(), "confirm", None))
                " "
                a href=(here) { "Cancel" }
            }
        }
    };
    page(Some(&v), &title, body)
}

/// The promotion's dry run as the confirmation shows it: each push's files and diff, the steps
/// that ran without their effect, or why there is no preview.
async fn dry_run(api: &Api, v: &Viewer, project: &str, stage: &str, freight: &str) -> Markup {
    let call = Call::PromoteDryRun {
        project: Some(project.into()),
        stage: stage.into(),
        freight: freight.into(),
        actor: String::new(),
        override_reason: None,
    };
    let plan = match v.ask(api, call).await {
        Ok(Answer::PromotionPlan(plan)) => plan,
        Ok(_) => return html! { p.muted { "No preview: the engine answered something else." } },
        Err(e) => return html! { section.preview { h2 { "What would change" } p.muted { "No preview: " (e) } } },
    };
    html! {
        section.preview aria-labelledby="preview" {
            h2 #preview { "What would change" }
            p { "A dry run of this promotion: " (super::status(&plan.phase.to_string())) @if !plan.message.is_empty() { " " (plan.message) } }
            @if plan.pushes.is_empty() { p { "It pushes nothing." } }
            @for push in &plan.pushes {
                h3 { "Push to " (push.repo_url) " branch " (push.branch) }
                p.muted { (push.files.join(", ")) }
                pre.diff { (push.diff) }
            }
            @if !plan.skipped_steps.is_empty() {
                p.muted { "Not run in the preview: " @for s in &plan.skipped_steps { (s.step) " (" (s.uses) "): " (s.reason) "; " } }
            }
        }
    }
}

fn verb_path(verb: Verb) -> &'static str {
    match verb {
        Verb::Promote => "promote",
        Verb::PromoteDownstream => "promote-downstream",
        Verb::Approve => "approve",
        Verb::Hold => "hold",
        Verb::Release => "release",
        Verb::Verify => "verify",
    }
}

/// POST `/projects/{project}/stages/{stage}/{verb}`: makes the call.
pub(super) async fn act(
    State(api): State<Api>,
    v: Viewer,
    Path((project, stage, verb)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(verb) = Verb::parse(&verb) else {
        return page_error(StatusCode::NOT_FOUND, &format!("no action {verb:?} on a Stage"));
    };
    let Some(csrf) = v.csrf.clone() else {
        return page_error(StatusCode::UNAUTHORIZED, "sign in with a token to act");
    };
    let f: ActionForm = match form(&api, &headers, Some(&csrf), body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let freight = f.freight.unwrap_or_default();
    if verb.needs_freight() && freight.is_empty() {
        return page_error(StatusCode::BAD_REQUEST, "choose a Freight first");
    }
    let p = Some(project.clone());
    let (s, actor) = (stage.clone(), String::new());
    let call = match verb {
        Verb::Promote => Call::Promote {
            project: p,
            stage: s,
            freight,
            actor,
            override_reason: None,
        },
        Verb::PromoteDownstream => Call::PromoteDownstream {
            project: p,
            from: s,
            freight,
            actor,
        },
        Verb::Approve => Call::Approve {
            project: p,
            stage: s,
            freight,
            actor,
        },
        Verb::Hold => Call::Hold {
            project: p,
            stage: s,
            actor,
        },
        Verb::Release => Call::Release {
            project: p,
            stage: s,
            actor,
        },
        Verb::Verify => Call::Verify {
            project: p,
            stage: s,
            abort: false,
            actor,
        },
    };
    match v.ask(&api, call).await {
        Ok(Answer::Queued(q)) if q.promotions.len() == 1 => redirect(&format!(
            "/projects/{}/promotions/{}",
            seg(&project),
            seg(&q.promotions[0])
        )),
        Ok(_) => redirect(&format!("/projects/{}/stages/{}", seg(&project), seg(&stage))),
        Err(e) => engine_error(&e),
    }
}

/// GET `/projects/{project}/promotions/{name}/abort`.
pub(super) async fn confirm_abort(
    State(api): State<Api>,
    v: Viewer,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let p = match pages::promotions(&api, &v, &project, None, Some(&name)).await {
        Ok(list) => list.into_iter().next(),
        Err(e) => return engine_error(&e),
    };
    let Some(p) = p else {
        return engine_error(&EngineError::NotFound(format!("no promotion {name:?}")));
    };
    // The Freight by what people call it (its alias), as the other confirmations name it.
    let freight = match named_freight(&api, &v, &project, Some(&p.freight)).await {
        Ok(f) => f.map_or_else(|| p.freight.clone(), |(_, alias)| alias),
        Err(e) => return engine_error(&e),
    };
    let csrf = v.csrf.clone().unwrap_or_default();
    let denied = v.denied(Action::Abort, &project, Some(&p.stage));
    let href = format!("/projects/{}/promotions/{}", seg(&project), seg(&name));
    let title = format!("Abort promotion {name}?");
    let phase = p.phase.to_string();
    let ended = matches!(phase.as_str(), "Succeeded" | "Failed" | "Errored" | "Aborted");
    let body = html! {
        h1 { (title) }
        @if ended {
            p { "This promotion has ended (" (super::status(&phase)) "): there is nothing to abort." }
            p { a href=(href) { "Back to the promotion" } }
        } @else {
            p { "The promotion of Freight " strong { (freight) } " into Stage " strong { (p.stage) } " stops within a second, even in the middle of a long step; the steps not run yet are skipped. A push already made stays, and the Stage keeps the Freight it had." }
            form method="post" action={ (href) "/abort" } {
                input type="hidden" name="csrf" value=(csrf);
                (button("Abort the promotion", denied.as_deref(), "abort", None))
                " " a href=(href) { "Cancel" }
            }
        }
    };
    page(Some(&v), &title, body)
}

/// POST `/projects/{project}/promotions/{name}/abort`.
pub(super) async fn abort(
    State(api): State<Api>,
    v: Viewer,
    Path((project, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(csrf) = v.csrf.clone() else {
        return page_error(StatusCode::UNAUTHORIZED, "sign in with a token to act");
    };
    if let Err(r) = form::<ActionForm>(&api, &headers, Some(&csrf), body).await {
        return r;
    }
    let call = Call::Abort {
        project: Some(project.clone()),
        name: name.clone(),
        actor: String::new(),
    };
    match v.ask(&api, call).await {
        Ok(_) => redirect(&format!("/projects/{}/promotions/{}", seg(&project), seg(&name))),
        Err(e) => engine_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_path_parses_back() {
        for verb in [
            Verb::Promote,
            Verb::PromoteDownstream,
            Verb::Approve,
            Verb::Hold,
            Verb::Release,
            Verb::Verify,
        ] {
            assert_eq!(Verb::parse(verb_path(verb)), Some(verb));
        }
        assert_eq!(Verb::parse("delete"), None);
    }
}
