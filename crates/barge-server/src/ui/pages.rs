//! The UI's views, each at a deep link, each from the engine's typed answers for the viewer.

use super::{Viewer, engine_error, layout, page, sparkline, status, when};
use crate::api::Api;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use barge_core::authz::Action;
use barge_engine::answer::{FreightInfo, PromotionInfo, WarehouseSummary};
use barge_engine::pipeline::{self, StageStatus};
use barge_engine::{Answer, EngineError, ops::Call, ops::FreightPage};
use barge_store::AuditEvent;
use maud::{Markup, html};

/// Freight rows per page of the timeline: a page renders in milliseconds whatever the
/// Warehouse has minted (Kargo's UI lags at a few hundred, akuity/kargo#1891).
pub(super) const FREIGHT_PAGE: usize = 50;

/// How many of a Stage's promotions, and of its audit events, its page shows.
const STAGE_PROMOTIONS: usize = 10;
const STAGE_HISTORY: i64 = 50;

fn unexpected() -> EngineError {
    EngineError::Internal("the engine answered a different kind of call".into())
}

pub(super) async fn stages(
    api: &Api,
    v: &Viewer,
    project: &str,
    name: Option<&str>,
) -> Result<Vec<StageStatus>, EngineError> {
    let call = Call::GetStages {
        project: Some(project.into()),
        name: name.map(str::to_string),
    };
    match v.ask(api, call).await? {
        Answer::Stages(s) => Ok(s),
        _ => Err(unexpected()),
    }
}

pub(super) async fn freight(
    api: &Api,
    v: &Viewer,
    project: &str,
    warehouse: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<FreightInfo>, EngineError> {
    let call = Call::GetFreight {
        project: Some(project.into()),
        warehouse: warehouse.map(str::to_string),
        name: name.map(str::to_string),
        page: None,
    };
    match v.ask(api, call).await? {
        Answer::Freight(f) => Ok(f),
        _ => Err(unexpected()),
    }
}

async fn warehouses(api: &Api, v: &Viewer, project: &str) -> Result<Vec<WarehouseSummary>, EngineError> {
    match v
        .ask(
            api,
            Call::GetWarehouses {
                project: Some(project.into()),
            },
        )
        .await?
    {
        Answer::Warehouses(w) => Ok(w),
        _ => Err(unexpected()),
    }
}

pub(super) async fn promotions(
    api: &Api,
    v: &Viewer,
    project: &str,
    stage: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<PromotionInfo>, EngineError> {
    let call = Call::GetPromotions {
        project: Some(project.into()),
        stage: stage.map(str::to_string),
        name: name.map(str::to_string),
    };
    match v.ask(api, call).await? {
        Answer::Promotions(p) => Ok(p),
        _ => Err(unexpected()),
    }
}

async fn history(
    api: &Api,
    v: &Viewer,
    project: &str,
    stage: Option<&str>,
    freight: Option<&str>,
) -> Result<Vec<AuditEvent>, EngineError> {
    let call = Call::History {
        project: Some(project.into()),
        stage: stage.map(str::to_string),
        freight: freight.map(str::to_string),
        since: None,
        kind: None,
        until: None,
        before: None,
        limit: STAGE_HISTORY,
    };
    match v.ask(api, call).await? {
        Answer::History(h) => Ok(h),
        _ => Err(unexpected()),
    }
}

/// Unwraps a page's data or answers the engine's error as a page.
macro_rules! or_error_page {
    ($e:expr) => {
        match $e {
            Ok(x) => x,
            Err(e) => return engine_error(&e),
        }
    };
}

fn stage_href(project: &str, stage: &str) -> String {
    format!("/projects/{}/stages/{}", seg(project), seg(stage))
}

fn freight_href(project: &str, name: &str) -> String {
    format!("/projects/{}/freight/{}", seg(project), seg(name))
}

fn promotion_href(project: &str, name: &str) -> String {
    format!("/projects/{}/promotions/{}", seg(project), seg(name))
}

/// A path segment: Kubernetes names are DNS labels, but a link must not break on anything.
pub(super) fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The current Freight of a Stage (of its first freight request that has one).
fn current(s: &StageStatus) -> Option<&pipeline::CurrentFreight> {
    s.requests.iter().find_map(|r| r.current.as_ref())
}

/// The sentence that says why a Stage waits, when it does (Kargo never says, #3970).
fn why_pending(s: &StageStatus) -> Vec<String> {
    s.requests
        .iter()
        .filter(|r| r.state != "UpToDate")
        .map(|r| {
            let what = if r.message.is_empty() {
                r.reason.clone().unwrap_or_else(|| r.state.clone())
            } else {
                r.message.clone()
            };
            format!("{}: {what}", r.warehouse)
        })
        .collect()
}

fn verification_word(s: &StageStatus) -> String {
    match (&s.last_verification, current(s)) {
        (Some(v), _) => v.run.phase.to_string(),
        (None, Some(c)) if !c.verification.is_empty() => c.verification.clone(),
        _ if s.verification.is_empty() => "no verification".into(),
        _ => "not verified yet".into(),
    }
}

/// `/`: the projects the viewer can read, each with a health summary.
pub(super) async fn projects(State(api): State<Api>, v: Viewer) -> Response {
    let all = match v
        .ask(
            &api,
            Call::GetStages {
                project: None,
                name: None,
            },
        )
        .await
    {
        Ok(Answer::Stages(s)) => s,
        Ok(_) => return engine_error(&unexpected()),
        Err(e) => return engine_error(&e),
    };
    let mut by_project: Vec<(String, Vec<&StageStatus>)> = Vec::new();
    for s in &all {
        match by_project.iter_mut().find(|(p, _)| *p == s.project) {
            Some((_, list)) => list.push(s),
            None => by_project.push((s.project.clone(), vec![s])),
        }
    }
    let body = html! {
        h1 { "Projects" }
        @if by_project.is_empty() { p { "No project has Stages yet." } }
        @else {
            table.list {
                caption { "Each project's Stages by health, promotion and what they wait for" }
                thead { tr { th scope="col" { "Project" } th scope="col" { "Stages" } th scope="col" { "Healthy" } th scope="col" { "Unhealthy" } th scope="col" { "Promoting" } th scope="col" { "Last promotion failed" } th scope="col" { "Waiting" } } }
                tbody {
                    @for (project, stages) in &by_project {
                        @let healthy = stages.iter().filter(|s| s.health.as_ref().is_some_and(|h| h.status == "Healthy")).count();
                        @let unhealthy = stages.iter().filter(|s| s.health.as_ref().is_some_and(|h| h.status == "Degraded")).count();
                        @let promoting = stages.iter().filter(|s| s.current_promotion.is_some()).count();
                        @let failed = stages.iter().filter(|s| s.last_promotion.as_ref().is_some_and(|p| p.phase.to_string() != "Succeeded")).count();
                        @let waiting = stages.iter().filter(|s| !why_pending(s).is_empty()).count();
                        tr {
                            th scope="row" { a href={ "/projects/" (seg(project)) } { (project) } }
                            td { (stages.len()) }
                            td { (healthy) }
                            td { @if unhealthy > 0 { (status("Degraded")) " " } (unhealthy) }
                            td { (promoting) }
                            td { @if failed > 0 { (status("Failed")) " " } (failed) }
                            td { (waiting) }
                        }
                    }
                }
            }
        }
    };
    page(Some(&v), "Projects", body)
}

/// One node of the pipeline graph.
enum Node<'a> {
    Warehouse(&'a WarehouseSummary),
    Stage(&'a StageStatus),
}

/// The graph's geometry, in CSS pixels.
const NODE_W: usize = 250;
const NODE_H: usize = 210;
const GAP_X: usize = 60;
const GAP_Y: usize = 20;

/// `/projects/{project}`: the pipeline graph.
pub(super) async fn pipeline(State(api): State<Api>, v: Viewer, Path(project): Path<String>) -> Response {
    let stage_list = or_error_page!(stages(&api, &v, &project, None).await);
    let warehouse_list = or_error_page!(warehouses(&api, &v, &project).await);
    let catalog = api.shared.catalog();
    let defs = pipeline::stages(&catalog);
    let mut nodes: Vec<Node> = warehouse_list.iter().map(Node::Warehouse).collect();
    nodes.extend(stage_list.iter().map(Node::Stage));
    let index_of = |warehouse: bool, name: &str| {
        nodes.iter().position(|n| match n {
            Node::Warehouse(w) => warehouse && w.name == name,
            Node::Stage(s) => !warehouse && s.name == name,
        })
    };
    let mut edges = Vec::new();
    for def in defs.iter().filter(|(p, _)| *p == project).flat_map(|(_, d)| d) {
        let Some(to) = index_of(false, def.name) else { continue };
        for request in &def.spec.requested_freight {
            if request.sources.direct == Some(true)
                && let Some(from) = index_of(true, &request.origin.name)
            {
                edges.push((from, to));
            }
            for upstream in &request.sources.stages {
                if let Some(from) = index_of(false, upstream) {
                    edges.push((from, to));
                }
            }
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let layers = layout::layers(nodes.len(), &edges);
    let mut at = vec![(0usize, 0usize); nodes.len()];
    for (l, layer) in layers.iter().enumerate() {
        for (i, n) in layer.iter().enumerate() {
            at[*n] = (l * (NODE_W + GAP_X), i * (NODE_H + GAP_Y));
        }
    }
    let width = layers.len().max(1) * (NODE_W + GAP_X) - GAP_X;
    let height = layers.iter().map(Vec::len).max().unwrap_or(1).max(1) * (NODE_H + GAP_Y) - GAP_Y;
    // Each arrow names its ends (the nodes' labels), so that what it joins can be read
    // without its geometry.
    let label = |n: usize| match &nodes[n] {
        Node::Warehouse(w) => format!("Warehouse {}", w.name),
        Node::Stage(s) => format!("Stage {}", s.name),
    };
    let paths: Vec<(String, String, String)> = edges
        .iter()
        .map(|&(a, b)| {
            let (x1, y1) = (at[a].0 + NODE_W, at[a].1 + NODE_H / 2);
            let (x2, y2) = (at[b].0, at[b].1 + NODE_H / 2);
            let mid = (x1 + x2) / 2;
            (
                format!("M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"),
                label(a),
                label(b),
            )
        })
        .collect();
    let body = html! {
        h1 { "Project " (project) }
        nav.tabs aria-label="Project views" {
            a href={ "/projects/" (seg(&project)) } aria-current="page" { "Pipeline" }
            a href={ "/projects/" (seg(&project)) "/freight" } { "Freight timeline" }
        }
        div #live data-watch={ "/api/v1/projects/" (seg(&project)) "/stages?watch=true" } {
            h2 { "Pipeline" }
            p.muted { "Warehouses and Stages in promotion order; arrows show where Freight may flow." }
            div.graph-scroll {
                div.graph style={ "width:" (width) "px;height:" (height) "px" } {
                    svg.edges width=(width) height=(height) aria-hidden="true" {
                        defs { marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse" { path d="M0,0 L10,5 L0,10 z" {} } }
                        @for (d, from, to) in &paths { path d=(d) data-from=(from) data-to=(to) marker-end="url(#arrow)" {} }
                    }
                    @for layer in &layers {
                        @for n in layer {
                            @let (x, y) = at[*n];
                            @let style = format!("left:{x}px;top:{y}px;width:{NODE_W}px;height:{NODE_H}px");
                            @match &nodes[*n] {
                                Node::Warehouse(w) => { (warehouse_node(&project, w, &style)) }
                                Node::Stage(s) => { (stage_node(&project, s, &style)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(Some(&v), &format!("Project {project}"), body)
}

fn warehouse_node(project: &str, w: &WarehouseSummary, style: &str) -> Markup {
    html! {
        article.node.warehouse style=(style) aria-label={ "Warehouse " (w.name) } {
            h3 { span.kind { "Warehouse" } " " (w.name) }
            p { (w.freight) " Freight" @if let Some(n) = &w.newest { ", newest " a href=(freight_href(project, n)) { (n) } } }
            p.muted { "every " (w.interval) @if let Some(at) = w.last_discovery { ", checked " (when(at)) } }
            @if let Some(e) = &w.error { p { (status("Error")) " " (e) } }
        }
    }
}

fn stage_node(project: &str, s: &StageStatus, style: &str) -> Markup {
    let current = current(s);
    html! {
        article.node.stage style=(style) aria-label={ "Stage " (s.name) } {
            h3 { a href=(stage_href(project, &s.name)) { (s.name) } }
            p {
                "Freight: "
                @match current {
                    Some(c) => a href=(freight_href(project, &c.name)) { (c.alias) },
                    None => span.muted { "none yet" },
                }
            }
            p {
                "Health: " @match &s.health { Some(h) => (status(&h.status)), None => span.muted { "not checked" } }
                " · Verification: " (status(&verification_word(s)))
            }
            p.badges {
                @if s.auto_promotion { span.badge { "auto-promotion" } } @else { span.badge { "manual" } }
                @if !s.holds.is_empty() { span.badge.held { "⏸ held" } }
                @if let Some(w) = &s.window { @if w.open { span.badge { "window open" } } @else { span.badge.held { "window closed" @if !w.closed_by.is_empty() { ": " (w.closed_by.join(", ")) } } } }
                @if let Some(p) = &s.current_promotion { a.badge href=(promotion_href(project, &p.name)) { "promoting " (p.phase) } }
            }
            @for why in why_pending(s) { p.why-pending { (why) } }
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct PageQuery {
    /// The previous page's last Freight, as the REST API's `continue` cursor names it.
    #[serde(rename = "continue")]
    after: Option<String>,
}

/// `/projects/{project}/freight`: every Freight by discovery time, newest first, a page at a
/// time, each marked with the Stages it is in, verified in and approved for. A page reads only
/// its Freight from the store (the REST API's keyset pages, one more to tell whether there is
/// a next page), and its "Older" link is the last one's cursor, so that Freight minted between
/// two pages neither shift nor repeat the next.
pub(super) async fn timeline(
    State(api): State<Api>,
    v: Viewer,
    Path(project): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let newest = q.after.is_none();
    let request = || crate::rest::page::PageRequest {
        limit: Some(FREIGHT_PAGE as i64),
        after: q.after.clone(),
    };
    let keyset = match request().keyset() {
        Ok(k) => k,
        Err(problem) => return super::page_error(axum::http::StatusCode::BAD_REQUEST, problem.message()),
    };
    let call = Call::GetFreight {
        project: Some(project.clone()),
        warehouse: None,
        name: None,
        page: keyset.map(|(limit, after)| FreightPage {
            limit: limit + 1,
            after,
        }),
    };
    let list = match or_error_page!(v.ask(&api, call).await) {
        Answer::Freight(f) => f,
        _ => return engine_error(&unexpected()),
    };
    let (rows, next) = match crate::rest::page::page(
        list,
        |f| (f.created.as_str(), f.freight.metadata.name.as_str()),
        request(),
    ) {
        Ok(page) => page,
        Err(problem) => return super::page_error(axum::http::StatusCode::BAD_REQUEST, problem.message()),
    };
    // How many there are, from the Warehouses' counts, without reading every Freight.
    let total: usize = or_error_page!(warehouses(&api, &v, &project).await)
        .iter()
        .map(|w| w.freight)
        .sum();
    let stage_order: Vec<String> = pipeline::stages(&api.shared.catalog())
        .into_iter()
        .filter(|(p, _)| *p == project)
        .flat_map(|(_, d)| d.into_iter().map(|d| d.name.to_string()))
        .collect();
    let colour = |stage: &str| stage_order.iter().position(|s| s == stage).unwrap_or(0) % 8;
    let base = format!("/projects/{}/freight", seg(&project));
    let body = html! {
        h1 { "Project " (project) }
        nav.tabs aria-label="Project views" {
            a href={ "/projects/" (seg(&project)) } { "Pipeline" }
            a href=(base) aria-current="page" { "Freight timeline" }
        }
        div #live data-watch={ "/api/v1/projects/" (seg(&project)) "/freight?watch=true" } {
            h2 { "Freight timeline" }
            p.muted { (total) " Freight, newest first" @if !newest { "; older ones" } ", " (FREIGHT_PAGE) " a page." }
            ol.timeline {
                @for f in &rows {
                    @let name = &f.freight.metadata.name;
                    li {
                        a.alias href=(freight_href(&project, name)) { (f.freight.alias.as_deref().unwrap_or(name)) }
                        " " span.muted { (f.created) " · " (f.warehouse) " · " (artifact_summary(f)) }
                        div.marks {
                            @for stage in f.status.currently_in.keys() { span class={ "chip c" (colour(stage)) } { "in " (stage) } }
                            @for stage in f.status.verified_in.keys() { span.mark { "✔ verified in " (stage) } }
                            @for stage in f.status.approved_for.keys() { span.mark { "✋ approved for " (stage) } }
                        }
                    }
                }
            }
            nav.pager aria-label="Freight pages" {
                @if !newest { a href=(base) rel="first" { "← Newest" } }
                @if let Some(next) = &next { a href={ (base) "?continue=" (next) } rel="next" { "Older →" } }
            }
        }
    };
    page(Some(&v), &format!("Freight of {project}"), body)
}

fn artifact_summary(f: &FreightInfo) -> String {
    let mut parts: Vec<String> = f
        .freight
        .images
        .iter()
        .map(|i| format!("{}:{}", i.repo_url, i.tag))
        .collect();
    parts.extend(
        f.freight
            .commits
            .iter()
            .map(|c| format!("{}@{}", c.repo_url, c.id.chars().take(7).collect::<String>())),
    );
    parts.extend(
        f.freight
            .charts
            .iter()
            .map(|c| format!("{} {}", c.name.as_deref().unwrap_or(&c.repo_url), c.version)),
    );
    parts.join(", ")
}

/// A link to where an artifact lives, for the hosts whose web pages barge knows.
fn commit_link(repo_url: &str, id: &str) -> Option<String> {
    let repo = repo_url.trim_end_matches(".git").trim_end_matches('/');
    let repo = repo
        .strip_prefix("https://github.com/")
        .or_else(|| repo.strip_prefix("https://gitlab.com/"))?;
    let host = if repo_url.contains("gitlab.com") {
        "gitlab.com"
    } else {
        "github.com"
    };
    let path = if host == "gitlab.com" { "-/commit" } else { "commit" };
    Some(format!("https://{host}/{repo}/{path}/{id}"))
}

/// A link to an image repository's page, for the public registries whose web pages barge
/// knows (Docker Hub, including names without a registry; GitHub's and Quay's).
fn image_link(repo_url: &str) -> Option<String> {
    let repo = repo_url.trim_end_matches('/');
    let (host, path) = match repo.split_once('/') {
        // A first segment with a dot or a port, or `localhost`, is a registry's host.
        Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => (h, rest),
        _ => ("docker.io", repo),
    };
    if path.is_empty() {
        return None;
    }
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => Some(match path.strip_prefix("library/") {
            Some(official) => format!("https://hub.docker.com/_/{official}"),
            None if !path.contains('/') => format!("https://hub.docker.com/_/{path}"),
            None => format!("https://hub.docker.com/r/{path}"),
        }),
        "ghcr.io" => Some(format!("https://ghcr.io/{path}")),
        "quay.io" => Some(format!("https://quay.io/repository/{path}")),
        _ => None,
    }
}

/// `/projects/{project}/freight/{name}`: a Freight's artifacts and where it has been.
pub(super) async fn freight_page(
    State(api): State<Api>,
    v: Viewer,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let list = or_error_page!(freight(&api, &v, &project, None, Some(&name)).await);
    let Some(f) = list.into_iter().next() else {
        return engine_error(&EngineError::NotFound(format!("no Freight {name:?}")));
    };
    let events = or_error_page!(history(&api, &v, &project, None, Some(&f.freight.metadata.name)).await);
    let stage_list = or_error_page!(stages(&api, &v, &project, None).await);
    let takers: Vec<&StageStatus> = stage_list
        .iter()
        .filter(|s| s.requests.iter().any(|r| r.warehouse == f.warehouse))
        .collect();
    let alias = f
        .freight
        .alias
        .clone()
        .unwrap_or_else(|| f.freight.metadata.name.clone());
    let body = html! {
        h1 { "Freight " (alias) }
        p.muted { "ID " code { (f.freight.metadata.name) } " · from Warehouse " (f.warehouse) " · discovered " (f.created) }
        h2 { "Artifacts" }
        @if !f.freight.images.is_empty() {
            table.list { caption { "Images" } thead { tr { th scope="col" { "Repository" } th scope="col" { "Tag" } th scope="col" { "Digest" } } }
                tbody { @for i in &f.freight.images { tr {
                    td { @match image_link(&i.repo_url) { Some(href) => a href=(href) rel="noreferrer" { (i.repo_url) }, None => (i.repo_url) } }
                    td { (i.tag) } td { code { (i.digest) } }
                } } } }
        }
        @if !f.freight.commits.is_empty() {
            table.list { caption { "Git commits" } thead { tr { th scope="col" { "Repository" } th scope="col" { "Commit" } th scope="col" { "Branch or tag" } } }
                tbody { @for c in &f.freight.commits { tr {
                    td { (c.repo_url) }
                    td { @match commit_link(&c.repo_url, &c.id) { Some(href) => a href=(href) rel="noreferrer" { code { (c.id) } }, None => code { (c.id) } } }
                    td { (c.branch.as_deref().or(c.tag.as_deref()).unwrap_or("")) }
                } } } }
        }
        @if !f.freight.charts.is_empty() {
            table.list { caption { "Helm charts" } thead { tr { th scope="col" { "Repository" } th scope="col" { "Chart" } th scope="col" { "Version" } } }
                tbody { @for c in &f.freight.charts { tr { td { (c.repo_url) } td { (c.name.as_deref().unwrap_or("")) } td { (c.version) } } } } }
        }
        h2 { "Where it is and has been" }
        ul {
            @for (stage, since) in &f.status.currently_in { li { "In " a href=(stage_href(&project, stage)) { (stage) } @if let Some(s) = &since.since { " since " (s) } } }
            @for (stage, at) in &f.status.verified_in { li { "✔ Verified in " (stage) " at " (at.verified_at) } }
            @for (stage, at) in &f.status.approved_for { li { "✋ Approved for " (stage) " at " (at.approved_at) @if let Some(by) = &at.approved_by { " by " (by) } } }
            @if f.status.currently_in.is_empty() && f.status.verified_in.is_empty() && f.status.approved_for.is_empty() { li { "Nowhere yet." } }
        }
        h2 { "Promote" }
        @if takers.is_empty() { p { "No Stage takes Freight from " (f.warehouse) "." } }
        @else {
            div.buttons {
                @for s in &takers {
                    form method="get" action={ (stage_href(&project, &s.name)) "/promote" } {
                        input type="hidden" name="freight" value=(f.freight.metadata.name);
                        (super::button(&format!("Promote to {}…", s.name), v.denied(Action::Promote, &project, Some(&s.name)).as_deref(), &format!("promote-{}", s.name), None))
                    }
                }
            }
        }
        h2 { "History" }
        (history_table(&project, &events))
    };
    page(Some(&v), &format!("Freight {alias}"), body)
}

fn history_table(project: &str, events: &[AuditEvent]) -> Markup {
    html! {
        @if events.is_empty() { p { "Nothing recorded yet." } }
        @else {
            table.list.history {
                caption { "Newest first" }
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Who" } th scope="col" { "Stage" } th scope="col" { "About" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (when(e.at)) }
                            td { (e.kind) }
                            td.actor { (e.actor) }
                            td { @if !e.stage.is_empty() { a href=(stage_href(project, &e.stage)) { (e.stage) } } }
                            td { (e.subject) }
                        }
                    }
                }
            }
        }
    }
}

/// How long a step took, from its RFC 3339 start and end.
fn duration(start: Option<&str>, end: Option<&str>) -> String {
    let parse = |s: Option<&str>| s.and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    match (parse(start), parse(end)) {
        (Some(a), Some(b)) => {
            let ms = (b - a).num_milliseconds().max(0);
            if ms < 1000 {
                format!("{ms} ms")
            } else {
                format!("{:.1} s", ms as f64 / 1000.0)
            }
        }
        (Some(_), None) => "running".into(),
        _ => String::new(),
    }
}

/// The commits a promotion's git-push steps pushed (their `commit` output).
fn pushed_commits(p: &PromotionInfo) -> Vec<String> {
    p.outputs
        .iter()
        .flat_map(|o| o.values())
        .filter_map(|v| v.get("commit").and_then(|c| c.as_str()).map(str::to_string))
        .fold(Vec::new(), |mut all, c| {
            // git-commit and git-push both name the commit.
            if !all.contains(&c) {
                all.push(c);
            }
            all
        })
}

/// What one step of a promotion put out, by name (strings as they are, anything else as
/// JSON): the commit `git-commit` made, the PR `git-open-pr` opened, and so on.
fn step_outputs(p: &PromotionInfo, alias: &str) -> Vec<(String, String)> {
    let Some(serde_json::Value::Object(o)) = p.outputs.as_ref().and_then(|o| o.get(alias)) else {
        return Vec::new();
    };
    o.iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn steps_table(p: &PromotionInfo) -> Markup {
    html! {
        @if p.steps.is_empty() { p.muted { "No steps (a control-flow Stage)." } }
        @else {
            table.list.steps {
                thead { tr { th scope="col" { "Step" } th scope="col" { "Status" } th scope="col" { "Took" } th scope="col" { "Outputs" } th scope="col" { "Message" } } }
                tbody {
                    @for s in &p.steps {
                        @let word = word(&s.status);
                        @let failed = matches!(word.as_str(), "Failed" | "Errored");
                        tr {
                            td { (s.alias) }
                            td { (status(&word)) }
                            td { (duration(s.started_at.as_deref(), s.finished_at.as_deref())) }
                            td.outputs { @for (k, v) in step_outputs(p, &s.alias) { span.output { (k) "=" code { (v) } } " " } }
                            td { @if !s.message.is_empty() { span class=@if failed { "error" } @else { "muted" } { (s.message) } } }
                        }
                    }
                }
            }
        }
    }
}

/// `/projects/{project}/stages/{stage}`: what a Stage has, its promotions, verification and
/// history, and the actions on it.
pub(super) async fn stage(
    State(api): State<Api>,
    v: Viewer,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let s = match or_error_page!(stages(&api, &v, &project, Some(&name)).await)
        .into_iter()
        .next()
    {
        Some(s) => s,
        None => return engine_error(&EngineError::NotFound(format!("no Stage {name:?}"))),
    };
    let mut candidates = Vec::new();
    for r in &s.requests {
        candidates.extend(
            or_error_page!(freight(&api, &v, &project, Some(&r.warehouse), None).await)
                .into_iter()
                .take(20),
        );
    }
    let mut recent = or_error_page!(promotions(&api, &v, &project, Some(&name), None).await);
    recent.truncate(STAGE_PROMOTIONS);
    // By name, a promotion comes with its outputs: the commits it pushed.
    let mut full = Vec::new();
    for p in &recent {
        full.push(
            or_error_page!(promotions(&api, &v, &project, None, Some(&p.name)).await)
                .into_iter()
                .next()
                .unwrap_or_else(|| p.clone()),
        );
    }
    let events = or_error_page!(history(&api, &v, &project, Some(&name), None).await);
    let here = stage_href(&project, &name);
    let current = current(&s);
    let deny = |a: Action| v.denied(a, &project, Some(&name));
    let body = html! {
        h1 { "Stage " (s.name) }
        p { a href={ "/projects/" (seg(&project)) } { "← Pipeline of " (project) } }
        // The Stages' watch: every change to a Stage (its promotions, verifications, holds,
        // approvals) is an event of it, where the promotions' watch would miss all but the first.
        div #live data-watch={ "/api/v1/projects/" (seg(&project)) "/stages?watch=true" } {
        section aria-labelledby="now" {
            h2 #now { "Now" }
            dl.facts {
                dt { "Freight" } dd { @match current { Some(c) => { a href=(freight_href(&project, &c.name)) { (c.alias) } " since " (when(c.since)) }, None => "none yet" } }
                dt { "Health" } dd { @match &s.health { Some(h) => { (status(&h.status)) @if !h.message.is_empty() { " " (h.message) } }, None => span.muted { "not checked" } } }
                dt { "Verification" } dd { (status(&verification_word(&s))) }
                dt { "Auto-promotion" } dd { @if s.auto_promotion { "on" } @else { "off (promote by hand)" } }
                @if !s.holds.is_empty() { dt { "Held" } dd { "⏸ by " @for h in &s.holds { (h.actor) " " } } }
                @if let Some(w) = &s.window { dt { "Promotion window" } dd { @if w.open { "open" } @else { "closed by " (w.closed_by.join(", ")) } } }
                @for why in why_pending(&s) { dt { "Waiting" } dd.why-pending { (why) } }
            }
        }
        section aria-labelledby="actions" {
            h2 #actions { "Actions" }
            @if candidates.is_empty() { p { "No Freight to promote yet." } }
            @else {
                form.inline method="get" action={ (here) "/promote" } {
                    label for="freight" { "Freight" }
                    select #freight name="freight" {
                        @for f in &candidates { option value=(f.freight.metadata.name) { (f.freight.alias.as_deref().unwrap_or(&f.freight.metadata.name)) " (" (f.created) ")" } }
                    }
                    (super::button("Promote…", deny(Action::Promote).as_deref(), "promote", None))
                    (super::button("Approve…", deny(Action::Approve).as_deref(), "approve", Some(&format!("{here}/approve"))))
                }
            }
            div.buttons {
                @if let Some(c) = current {
                    form method="get" action={ (here) "/promote-downstream" } {
                        input type="hidden" name="freight" value=(c.name);
                        (super::button("Promote downstream…", deny(Action::Promote).as_deref(), "downstream", None))
                    }
                }
                @if s.holds.is_empty() {
                    form method="get" action={ (here) "/hold" } { (super::button("Hold…", deny(Action::Hold).as_deref(), "hold", None)) }
                } @else {
                    form method="get" action={ (here) "/release" } { (super::button("Release…", deny(Action::Release).as_deref(), "release", None)) }
                }
                @if !s.verification.is_empty() {
                    form method="get" action={ (here) "/verify" } { (super::button("Re-verify…", deny(Action::Verify).as_deref(), "verify", None)) }
                }
            }
        }
        section aria-labelledby="promotions" {
            h2 #promotions { "Promotions" }
            @if full.is_empty() { p { "None yet." } }
            @for p in &full {
                article.promotion {
                    h3 { a href=(promotion_href(&project, &p.name)) { (p.name) } }
                    p { (status(&p.phase.to_string())) " · Freight " a href=(freight_href(&project, &p.freight)) { (p.freight.chars().take(12).collect::<String>()) } " · by " span.actor { (p.actor) } " · " (p.created_at) }
                    @if !p.message.is_empty() { p class=@if p.phase.to_string() == "Succeeded" { "muted" } @else { "error" } { (p.message) } }
                    @for c in pushed_commits(p) { p { "Pushed commit " code { (c) } } }
                    (steps_table(p))
                }
            }
        }
        section aria-labelledby="verification" {
            h2 #verification { "Verification" }
            (verification(&s))
        }
        section aria-labelledby="history" {
            h2 #history { "History" }
            (history_table(&project, &events))
        }
        }
    };
    page(Some(&v), &format!("Stage {name}"), body)
}

/// A status enum as its serialized word (`Succeeded`).
fn word<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The first number in a measured value as Argo Rollouts formats it (`[0.97]`, `12`).
fn number(value: &str) -> Option<f64> {
    let start = value.find(|c: char| c.is_ascii_digit() || c == '-' || c == '.')?;
    let rest = &value[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn verification(s: &StageStatus) -> Markup {
    let Some(run) = &s.last_verification else {
        return html! { p { @if s.verification.is_empty() { "This Stage has no verification." } @else { "Not run yet." } } };
    };
    let report: Option<barge_analysis::Report> = serde_json::from_value(run.run.report.clone()).ok();
    html! {
        p { (status(&run.run.phase.to_string())) " for Freight " (run.alias) " · started " (when(run.run.created_at)) @if let Some(f) = run.run.finished_at { " · finished " (when(f)) } }
        @if !run.run.message.is_empty() { p.muted { (run.run.message) } }
        @if let Some(report) = report {
            @for m in &report.metrics {
                @let values: Vec<f64> = m.measurements.iter().filter_map(|x| x.value.as_deref().and_then(number)).collect();
                article.metric {
                    h3 { (m.name) " " span.muted { "(" (m.provider) ")" } }
                    p { (status(&word(&m.phase))) }
                    (sparkline(&values, &format!("{} measurements: {}", m.name, values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))))
                    dl.facts {
                        @if let Some(c) = &m.success_condition { dt { "Succeeds when" } dd { code { (c) } } }
                        @if let Some(c) = &m.failure_condition { dt { "Fails when" } dd { code { (c) } } }
                        dt { "Measurements" } dd { @for x in &m.measurements { span.measure { (x.value.as_deref().unwrap_or("—")) } " " } }
                    }
                    @if !m.message.is_empty() { p.muted { (m.message) } }
                }
            }
        }
    }
}

/// `/projects/{project}/promotions/{name}`: one promotion with its steps and outputs.
pub(super) async fn promotion(
    State(api): State<Api>,
    v: Viewer,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let Some(p) = or_error_page!(promotions(&api, &v, &project, None, Some(&name)).await)
        .into_iter()
        .next()
    else {
        return engine_error(&EngineError::NotFound(format!("no promotion {name:?}")));
    };
    let running = !matches!(
        p.phase.to_string().as_str(),
        "Succeeded" | "Failed" | "Errored" | "Aborted"
    );
    let outputs = p
        .outputs
        .as_ref()
        .filter(|o| !o.is_empty())
        .and_then(|o| serde_json::to_string_pretty(o).ok());
    let body = html! {
        h1 { "Promotion " (p.name) }
        div #live data-watch={ "/api/v1/projects/" (seg(&project)) "/promotions?watch=true" } {
        dl.facts {
            dt { "Phase" } dd { (status(&p.phase.to_string())) }
            dt { "Stage" } dd { a href=(stage_href(&project, &p.stage)) { (p.stage) } }
            dt { "Freight" } dd { a href=(freight_href(&project, &p.freight)) { (p.freight) } }
            dt { "By" } dd.actor { (p.actor) }
            dt { "Created" } dd { (p.created_at) }
            dt { "Updated" } dd { (p.updated_at) }
            @if !p.message.is_empty() { dt { "Message" } dd { (p.message) } }
            @for c in pushed_commits(&p) { dt { "Pushed commit" } dd { code { (c) } } }
        }
        h2 { "Steps" }
        (steps_table(&p))
        @if let Some(o) = outputs { h2 { "Outputs" } pre.outputs { (o) } }
        @if running {
            form method="get" action={ (promotion_href(&project, &p.name)) "/abort" } {
                (super::button("Abort…", v.denied(Action::Abort, &project, Some(&p.stage)).as_deref(), "abort", None))
            }
        }
        }
    };
    page(Some(&v), &format!("Promotion {name}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_values_read_as_numbers() {
        assert_eq!(number("[0.97]"), Some(0.97));
        assert_eq!(number("12"), Some(12.0));
        assert_eq!(number("[]"), None);
    }

    #[test]
    fn images_of_known_registries_link_to_their_pages() {
        assert_eq!(image_link("nginx").as_deref(), Some("https://hub.docker.com/_/nginx"));
        assert_eq!(
            image_link("docker.io/library/nginx").as_deref(),
            Some("https://hub.docker.com/_/nginx")
        );
        assert_eq!(
            image_link("docker.io/bitnami/redis").as_deref(),
            Some("https://hub.docker.com/r/bitnami/redis")
        );
        assert_eq!(
            image_link("acme/app").as_deref(),
            Some("https://hub.docker.com/r/acme/app")
        );
        assert_eq!(
            image_link("ghcr.io/acme/app").as_deref(),
            Some("https://ghcr.io/acme/app")
        );
        assert_eq!(
            image_link("quay.io/prometheus/node-exporter").as_deref(),
            Some("https://quay.io/repository/prometheus/node-exporter")
        );
        // A private registry has no page barge knows.
        assert_eq!(image_link("registry.internal:5000/acme/app"), None);
        assert_eq!(image_link("localhost/app"), None);
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(seg("dev-1.eu"), "dev-1.eu");
        assert_eq!(seg("a/b <c>"), "a%2Fb%20%3Cc%3E");
    }
}
