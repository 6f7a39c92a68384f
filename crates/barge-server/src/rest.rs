//! The REST API under `/api/v1` (issue #16): resources and verbs over the engine's calls,
//! the one API of `barge serve` (barge's CLI with `--server` uses it too, as scripts and the
//! web UI do). Each handler builds one [`ops::Call`] and answers its typed answer as JSON;
//! lists are `{"items": [...]}` with a `continue` cursor where they page, as Kubernetes lists
//! are. docs/reference/api.md lists every route.
//!
//! Every route goes through [`crate::api`]'s guards: the bearer token's principal, the body
//! limit and the client timeouts. The engine authorizes each call for that principal and
//! records it as the actor: no body names one. Every error is
//! `{"code", "message", "details"}`, its status by its class ([`api::status_of`]); a body
//! with a field the route does not take is refused (400), not half-understood.

use crate::api::{self, Api, Refusal};
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use barge_core::authz::Principal;
use barge_core::promotion::Phase;
use barge_engine::answer::{
    Aliased, Approved, FreightInfo, Held, NotificationInfo, PromotionPlan, RefreshRequested, Released, ReplicaInfo,
    VersionInfo,
};
use barge_engine::resource;
use barge_engine::{Answer, EngineError, ops::Call, ops::FreightPage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) mod page;
mod tokens;
mod watch;
mod webhooks;
pub use watch::WatchTiming;

/// A list's page size (history, notifications) when the request names none, and the most
/// it may name.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

/// The routes and the OpenAPI document describing them, both from the handlers' `#[utoipa::path]`
/// attributes: a route cannot be served without being documented.
pub(crate) fn routes() -> axum::Router<Api> {
    let (router, document) = api_router().split_for_parts();
    let document = std::sync::Arc::new(document);
    // Unauthenticated, as Kargo serves its API's description: it says what the routes are,
    // which the open source says too, and nothing of what the store holds.
    router
        .method_not_allowed_fallback(method_not_allowed)
        .route(
            "/api/v1/openapi.json",
            get(move || std::future::ready(Json(document.clone()))),
        )
        // Below every other /api/v1 route (a catch-all matches last), so that a route that
        // does not exist is answered in the one error shape too.
        .route("/api/v1/{*rest}", axum::routing::any(no_route))
}

async fn no_route(method: Method, uri: Uri) -> Problem {
    Problem {
        status: StatusCode::NOT_FOUND,
        code: "no-route",
        message: format!("no route {method} {} (GET /api/v1/openapi.json lists them)", uri.path()),
        details: json!({}),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method-not-allowed",
        message: format!(
            "{} does not take {method} (GET /api/v1/openapi.json lists its methods)",
            uri.path()
        ),
        details: json!({}),
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "barge", description = "barge's REST API (docs/reference/api.md)"),
    modifiers(&BearerToken),
    security(("bearer" = []))
)]
struct Document;

/// The bearer token every route takes.
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

fn api_router() -> OpenApiRouter<Api> {
    OpenApiRouter::with_openapi(<Document as utoipa::OpenApi>::openapi())
        .routes(routes!(projects))
        .routes(routes!(project))
        .routes(routes!(warehouses))
        .routes(routes!(warehouse))
        .routes(routes!(refresh))
        .routes(routes!(stages))
        .routes(routes!(stage))
        .routes(routes!(promote))
        .routes(routes!(promote_downstream))
        .routes(routes!(verify))
        .routes(routes!(abort_verification))
        .routes(routes!(hold))
        .routes(routes!(release))
        .routes(routes!(freight_list))
        .routes(routes!(freight_one, alias))
        .routes(routes!(approve))
        .routes(routes!(promotions))
        .routes(routes!(promotion))
        .routes(routes!(abort))
        .routes(routes!(history))
        .routes(routes!(webhooks::webhooks))
        .routes(routes!(stats))
        .routes(routes!(replicas))
        .routes(routes!(notifications))
        .routes(routes!(tokens::tokens, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::whoami))
        .routes(routes!(version))
}

/// In a verb's path, the project `-` stands for the one project that has the named Stage,
/// Warehouse, Freight or promotion: the engine finds it, or refuses a name several projects
/// have (400, "add --project"), as the CLI does without `--project`. Google's API design
/// uses `-` for such a wildcard parent (https://google.aip.dev/159); no project is named
/// `-` (Kubernetes names start with a letter or digit).
pub const ANY_PROJECT: &str = "-";

fn any_project(project: String) -> Option<String> {
    (project != ANY_PROJECT).then_some(project)
}

/// In a list's path (history, stats, notifications), the project `-` stands for every
/// project the token may read, as AIP-159's wildcard parent does for a list (the CLI without
/// `--project`); a token limited to one project reads that one.
fn every_project(project: String) -> Option<String> {
    any_project(project)
}

/// A list, as Kubernetes answers one: `continue` only when there may be a next page.
#[derive(Serialize, utoipa::ToSchema)]
struct Items<T> {
    items: Vec<T>,
    /// Pass it back as `?continue=` for the next page.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A REST error, every error's shape: `{"code", "message", "details"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Problem {
    /// The response's status (by the class), not part of the body.
    #[serde(skip)]
    status: StatusCode,
    /// The error's class (`invalid`, `auth`, `forbidden`, `not-found`, `conflict`, ...).
    code: &'static str,
    message: String,
    details: Value,
}

impl Problem {
    /// What is wrong, as the body's `message` says it.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    fn invalid(message: String, details: Value) -> Problem {
        Problem {
            status: StatusCode::BAD_REQUEST,
            code: barge_core::ErrorClass::Invalid.as_str(),
            message,
            details,
        }
    }

    fn not_found(message: String) -> Problem {
        Problem {
            status: StatusCode::NOT_FOUND,
            code: barge_core::ErrorClass::NotFound.as_str(),
            message,
            details: json!({}),
        }
    }
}

impl From<Refusal> for Problem {
    fn from(r: Refusal) -> Problem {
        Problem {
            status: r.status,
            code: r.code,
            message: r.message,
            details: json!({}),
        }
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Problem {
        let class = e.class();
        Problem {
            status: api::status_of(class),
            code: class.map_or("internal", barge_core::ErrorClass::as_str),
            message: e.to_string(),
            details: json!({}),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

type Answered = Result<Response, Problem>;

/// Who calls: the principal of the request's bearer token (or the anonymous viewer). A GET
/// without one may present the web UI's session cookie instead (its live updates watch
/// through it); a change always needs the bearer token, so the cookie is no CSRF risk here.
struct Caller(Principal);

impl FromRequestParts<Api> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Caller, Problem> {
        if parts.method == Method::GET
            && let Some(principal) = crate::ui::session_principal(api, &parts.headers).await?
        {
            return Ok(Caller(principal));
        }
        Ok(Caller(api::authenticate(api, &parts.headers).await?))
    }
}

/// A JSON body of `T` (which denies unknown fields), at most [`api::MAX_BODY`] and within the
/// client timeout.
struct Body<T>(T);

impl<T: DeserializeOwned> FromRequest<Api> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, api: &Api) -> Result<Body<T>, Problem> {
        let bytes = api::read_body(req.into_body(), api::MAX_BODY, api.client_timeout).await?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            Problem::invalid(
                format!("the request body is not what this route takes: {e}"),
                json!({"line": e.line(), "column": e.column()}),
            )
        })
    }
}

/// The path's parameters, refused as a [`Problem`] when they are not UTF-8.
struct Params<T>(T);

impl<T: DeserializeOwned + Send> FromRequestParts<Api> for Params<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Params<T>, Problem> {
        match axum::extract::Path::<T>::from_request_parts(parts, api).await {
            Ok(axum::extract::Path(t)) => Ok(Params(t)),
            Err(e) => Err(Problem::invalid(e.body_text(), json!({}))),
        }
    }
}

/// The query string's filters, `T` denying those it does not know.
struct Filters<T>(T);

impl<T: DeserializeOwned + Send> FromRequestParts<Api> for Filters<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Filters<T>, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, api).await {
            Ok(axum::extract::Query(t)) => Ok(Filters(t)),
            Err(e) => Err(Problem::invalid(e.body_text(), json!({}))),
        }
    }
}

async fn run(api: &Api, caller: &Principal, call: Call) -> Result<Answer, Problem> {
    Ok(crate::serve::call(&api.shared, caller, call).await?)
}

fn ok<T: Serialize>(status: StatusCode, body: T) -> Answered {
    Ok((status, Json(body)).into_response())
}

fn list<T: Serialize>(items: Vec<T>, next: Option<String>) -> Answered {
    ok(StatusCode::OK, Items { items, next })
}

/// An answer the call cannot give: the engine's contract broken, not the caller's fault.
fn unexpected(answer: &Answer) -> Problem {
    let answer = serde_json::to_string(answer).unwrap_or_default();
    Problem {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message: "the engine answered what this route does not expect".into(),
        details: json!({"answer": answer}),
    }
}

/// The projects the caller may read (those with Stages or Warehouses), as Kargo's Projects.
async fn projects_of(
    api: &Api,
    caller: &Principal,
    project: Option<String>,
) -> Result<Vec<resource::Project>, Problem> {
    let stages = match run(
        api,
        caller,
        Call::GetStages {
            project: project.clone(),
            name: None,
        },
    )
    .await?
    {
        Answer::Stages(s) => s,
        other => return Err(unexpected(&other)),
    };
    let warehouses = match run(api, caller, Call::GetWarehouses { project }).await? {
        Answer::Warehouses(w) => w,
        other => return Err(unexpected(&other)),
    };
    Ok(resource::Project::all(&stages, &warehouses))
}

#[utoipa::path(get, path = "/api/v1/projects", tag = "barge", responses((status = 200, description = "The projects the token may read", body = Items<resource::Project>), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn projects(api: axum::extract::State<Api>, Caller(caller): Caller) -> Answered {
    list(projects_of(&api, &caller, None).await?, None)
}

#[utoipa::path(get, path = "/api/v1/projects/{project}", tag = "barge", params(("project" = String, Path, description = "The project")), responses((status = 200, description = "The Project", body = resource::Project), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn project(api: axum::extract::State<Api>, Caller(caller): Caller, Params(project): Params<String>) -> Answered {
    // The engine refuses a project it does not know (404), so there is one.
    let found = projects_of(&api, &caller, Some(project.clone())).await?.pop();
    ok(
        StatusCode::OK,
        found.unwrap_or_else(|| resource::Project::of(&project, Vec::new(), Vec::new())),
    )
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/warehouses", tag = "barge", params(("project" = String, Path, description = "The project"), WatchFilter, ("Last-Event-ID" = Option<String>, Header, description = "With `watch=true`: the last `id` a watch sent, to resume after it")), responses((status = 200, description = "The answer; with `watch=true`, a stream of its changes", content((Items<resource::Warehouse> = "application/json"), (String = "text/event-stream"))), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn warehouses(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<WatchFilter>,
    headers: HeaderMap,
) -> Answered {
    if filters.watch {
        return watch::respond(&api, caller, project, watch::Resource::Warehouses, &headers).await;
    }
    match run(
        &api,
        &caller,
        Call::GetWarehouses {
            project: Some(project.clone()),
        },
    )
    .await?
    {
        Answer::Warehouses(w) => list(w.iter().map(resource::Warehouse::of).collect(), None),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/warehouses/{name}", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Warehouse")), responses((status = 200, description = "The Warehouse", body = resource::Warehouse), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn warehouse(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    match run(
        &api,
        &caller,
        Call::GetWarehouses {
            project: Some(project.clone()),
        },
    )
    .await?
    {
        Answer::Warehouses(w) => match w.into_iter().find(|w| w.name == name) {
            Some(w) => ok(StatusCode::OK, resource::Warehouse::of(&w)),
            None => Err(Problem::not_found(format!(
                "no Warehouse named {name:?} in project {project:?}"
            ))),
        },
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/warehouses/{name}/refresh", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Warehouse")), responses((status = 202, description = "Discovery requested", body = RefreshRequested), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn refresh(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, warehouse)): Params<(String, String)>,
) -> Answered {
    let call = Call::Refresh {
        project: any_project(project),
        warehouse,
        actor: String::new(),
    };
    ok(StatusCode::ACCEPTED, run(&api, &caller, call).await?)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct WatchFilter {
    /// Stream the list's objects and then their changes as Server-Sent Events
    /// (docs/reference/api.md, "Watch").
    #[serde(default)]
    watch: bool,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/stages", tag = "barge", params(("project" = String, Path, description = "The project"), WatchFilter, ("Last-Event-ID" = Option<String>, Header, description = "With `watch=true`: the last `id` a watch sent, to resume after it")), responses((status = 200, description = "The Stages, as `barge get stages -o json`; with `watch=true`, a stream of their changes", content((Items<resource::Stage> = "application/json"), (String = "text/event-stream"))), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn stages(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<WatchFilter>,
    headers: HeaderMap,
) -> Answered {
    if filters.watch {
        return watch::respond(&api, caller, project, watch::Resource::Stages, &headers).await;
    }
    let call = Call::GetStages {
        project: Some(project.clone()),
        name: None,
    };
    match run(&api, &caller, call).await? {
        Answer::Stages(s) => {
            let list = api.stage_lists.list(&project, s).map_err(|e| Problem {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                message: format!("cannot write the Stages as JSON: {e}"),
                details: Value::Null,
            })?;
            use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE, VARY};
            let json = (CONTENT_TYPE, "application/json");
            Ok(if accepts_gzip(&headers) {
                let gzip = [json, (CONTENT_ENCODING, "gzip"), (VARY, "accept-encoding")];
                (StatusCode::OK, gzip, list.gzip()).into_response()
            } else {
                (StatusCode::OK, [json, (VARY, "accept-encoding")], list.body.clone()).into_response()
            })
        }
        other => Err(unexpected(&other)),
    }
}

/// The Stage list's JSON as last served, per project: each Stage's Kargo-shaped JSON with the
/// status it was made of, and the whole body.
///
/// A Stage's resource (its spec as Kargo's pruned JSON, its conditions, its freight history)
/// and its JSON are a function of the status the engine decides for it and of nothing else,
/// so a Stage whose status equals the one kept reuses its kept JSON, and a list whose
/// statuses all equal the kept ones is answered with the kept body (a reference count, no
/// copy). The statuses are still decided per request: they depend on the time (soak,
/// windows) and on the state, which the engine reads under the project's change counter.
/// Comparing 300 statuses costs far less than building and writing 300 resources (324 KB;
/// BENCHMARKS.md, "REST API"). Since the kept JSON is keyed by the status itself, nothing
/// has to invalidate it: a write, a definitions reload or a health check that changes a
/// Stage changes its status, and so its JSON.
#[derive(Default)]
pub(crate) struct KeptStageLists {
    kept: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<KeptStageList>>>,
}

struct KeptStageList {
    stages: Vec<barge_engine::pipeline::StageStatus>,
    /// Each Stage's JSON, in the order of `stages`.
    parts: Vec<axum::body::Bytes>,
    /// `{"items": [...]}`.
    body: axum::body::Bytes,
    /// `body` gzipped, made by the first request that accepts gzip.
    gzip: std::sync::OnceLock<axum::body::Bytes>,
}

impl KeptStageList {
    /// The body gzipped, at the fastest level (made once per body).
    fn gzip(&self) -> axum::body::Bytes {
        self.gzip
            .get_or_init(|| {
                use std::io::Write as _;
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::with_capacity(self.body.len() / 8), flate2::Compression::fast());
                // Writing to a Vec does not fail.
                let _ = gz.write_all(&self.body);
                axum::body::Bytes::from(gz.finish().unwrap_or_default())
            })
            .clone()
    }
}

/// Whether the request's `Accept-Encoding` names gzip (and not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                && parts.all(|p| {
                    p.strip_prefix("q=")
                        .is_none_or(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0))
                })
        })
}

impl KeptStageLists {
    /// `{"items": [...]}` of `stages` (the project's, as the engine answered them).
    #[cfg(test)]
    fn body(
        &self,
        project: &str,
        stages: Vec<barge_engine::pipeline::StageStatus>,
    ) -> Result<axum::body::Bytes, serde_json::Error> {
        Ok(self.list(project, stages)?.body.clone())
    }

    /// The kept list of `stages` (the project's, as the engine answered them), its JSON
    /// written again only where a status changed.
    fn list(
        &self,
        project: &str,
        stages: Vec<barge_engine::pipeline::StageStatus>,
    ) -> Result<std::sync::Arc<KeptStageList>, serde_json::Error> {
        use std::sync::PoisonError;
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(project)
            .cloned();
        if let Some(kept) = &kept
            && kept.stages == stages
        {
            return Ok(kept.clone());
        }
        let before: std::collections::HashMap<&str, (&barge_engine::pipeline::StageStatus, &axum::body::Bytes)> = kept
            .iter()
            .flat_map(|k| k.stages.iter().zip(&k.parts))
            .map(|(s, part)| (s.name.as_str(), (s, part)))
            .collect();
        let mut parts = Vec::with_capacity(stages.len());
        for s in &stages {
            parts.push(match before.get(s.name.as_str()) {
                Some((was, part)) if *was == s => (*part).clone(),
                _ => axum::body::Bytes::from(serde_json::to_vec(&resource::Stage::of(s))?),
            });
        }
        drop(before);
        // As `Items` writes it: no `continue`, the list is whole.
        let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 16);
        body.extend_from_slice(br#"{"items":["#);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(part);
        }
        body.extend_from_slice(b"]}");
        let body = axum::body::Bytes::from(body);
        let list = std::sync::Arc::new(KeptStageList {
            stages,
            parts,
            body,
            gzip: std::sync::OnceLock::new(),
        });
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(project.to_string(), list.clone());
        Ok(list)
    }
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/stages/{name}", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Stage")), responses((status = 200, description = "The Stage", body = resource::Stage), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn stage(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    let call = Call::GetStages {
        project: Some(project.clone()),
        name: Some(name),
    };
    match run(&api, &caller, call).await? {
        // The engine answers 404 for a Stage it does not have.
        Answer::Stages(s) if s.len() == 1 => ok(StatusCode::OK, resource::Stage::of(&s[0])),
        other => Err(unexpected(&other)),
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PromoteBody {
    /// The Freight's name or alias.
    freight: String,
    /// Promote although the Stage's promotion window or freight-creation criteria refuse.
    override_reason: Option<String>,
}

/// The promotions a call queued, as they are now: Kargo's Promotion resources, as
/// `GET …/promotions/{name}` serves them.
async fn queued(
    api: &Api,
    caller: &Principal,
    project: Option<&str>,
    answer: Answer,
) -> Result<Vec<resource::Promotion>, Problem> {
    let Answer::Queued(queued) = answer else {
        return Err(unexpected(&answer));
    };
    let mut out = Vec::new();
    for name in queued.promotions {
        let call = Call::GetPromotions {
            project: project.map(str::to_string),
            stage: None,
            name: Some(name),
        };
        match run(api, caller, call).await? {
            Answer::Promotions(p) => out.extend(p.iter().map(resource::Promotion::of)),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(out)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct PromoteOptions {
    /// Push nothing: answer 200 with the diff each push would land (docs/reference/api.md).
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/stages/{name}/promotions", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Stage"), PromoteOptions), request_body = PromoteBody, responses((status = 202, description = "The queued Promotion, as `GET …/promotions/{name}` serves it", body = resource::Promotion), (status = 200, description = "With `dryRun=true`: what the promotion would push", body = PromotionPlan), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn promote(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
    Filters(options): Filters<PromoteOptions>,
    Body(body): Body<PromoteBody>,
) -> Answered {
    let project = any_project(project);
    if options.dry_run {
        let call = Call::PromoteDryRun {
            project,
            stage,
            freight: body.freight,
            actor: String::new(),
            override_reason: body.override_reason,
        };
        return match run(&api, &caller, call).await? {
            Answer::PromotionPlan(plan) => ok(StatusCode::OK, plan),
            other => Err(unexpected(&other)),
        };
    }
    let call = Call::Promote {
        project: project.clone(),
        stage,
        freight: body.freight,
        actor: String::new(),
        override_reason: body.override_reason,
    };
    let answer = run(&api, &caller, call).await?;
    let mut queued = queued(&api, &caller, project.as_deref(), answer).await?;
    match queued.pop() {
        Some(promotion) if queued.is_empty() => ok(StatusCode::ACCEPTED, promotion),
        _ => Err(Problem {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "the engine did not queue exactly one promotion".into(),
            details: json!({}),
        }),
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FreightBody {
    /// The Freight's name or alias.
    freight: String,
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/stages/{name}/promotions/downstream", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Stage whose downstream Stages to promote into")), request_body = FreightBody, responses((status = 202, description = "The queued Promotions, each as `GET …/promotions/{name}` serves it", body = Items<resource::Promotion>), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn promote_downstream(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, from)): Params<(String, String)>,
    Body(body): Body<FreightBody>,
) -> Answered {
    let project = any_project(project);
    let call = Call::PromoteDownstream {
        project: project.clone(),
        from,
        freight: body.freight,
        actor: String::new(),
    };
    let answer = run(&api, &caller, call).await?;
    let queued = queued(&api, &caller, project.as_deref(), answer).await?;
    let queued = Items {
        items: queued,
        next: None,
    };
    ok(StatusCode::ACCEPTED, queued)
}

async fn verification(api: &Api, caller: &Principal, project: String, stage: String, abort: bool) -> Answered {
    let call = Call::Verify {
        project: any_project(project),
        stage,
        abort,
        actor: String::new(),
    };
    let status = if abort { StatusCode::OK } else { StatusCode::ACCEPTED };
    ok(status, run(api, caller, call).await?)
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/stages/{name}/verification", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Stage")), responses((status = 202, description = "The queued verification", body = serde_json::Value), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn verify(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
) -> Answered {
    verification(&api, &caller, project, stage, false).await
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/stages/{name}/verification/abort", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Stage")), responses((status = 200, description = "The aborted verification", body = serde_json::Value), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn abort_verification(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
) -> Answered {
    verification(&api, &caller, project, stage, true).await
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/stages/{name}/hold", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Stage")), responses((status = 200, description = "The answer", body = Held), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn hold(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
) -> Answered {
    let call = Call::Hold {
        project: any_project(project),
        stage,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/stages/{name}/release", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Stage")), responses((status = 200, description = "The answer", body = Released), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn release(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
) -> Answered {
    let call = Call::Release {
        project: any_project(project),
        stage,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FreightFilters {
    warehouse: Option<String>,
    /// Freight currently in this Stage.
    stage: Option<String>,
    alias: Option<String>,
    /// Freight verified in this Stage.
    #[serde(rename = "verifiedIn")]
    verified_in: Option<String>,
    /// At most this many (1 to 1000); all when not given.
    limit: Option<i64>,
    /// The `continue` of the previous page.
    #[serde(rename = "continue")]
    after: Option<String>,
    /// Stream the project's Freight and then its changes as Server-Sent Events (without
    /// the other filters; docs/reference/api.md, "Watch").
    #[serde(default)]
    watch: bool,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/freight", tag = "barge", params(("project" = String, Path, description = "The project"), FreightFilters, ("Last-Event-ID" = Option<String>, Header, description = "With `watch=true`: the last `id` a watch sent, to resume after it")), responses((status = 200, description = "Freight as `barge get freight -o json`, newest first; with `watch=true`, a stream of its changes", content((Items<resource::Freight> = "application/json"), (String = "text/event-stream"))), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn freight_list(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<FreightFilters>,
    headers: HeaderMap,
) -> Answered {
    if filters.watch {
        let filtered = filters.warehouse.is_some()
            || filters.stage.is_some()
            || filters.alias.is_some()
            || filters.verified_in.is_some()
            || filters.limit.is_some()
            || filters.after.is_some();
        watch::unfiltered(filtered)?;
        return watch::respond(&api, caller, project, watch::Resource::Freight, &headers).await;
    }
    let request = page::PageRequest {
        limit: filters.limit,
        after: filters.after,
    };
    // Without filters on the Freight's status the store reads only the page (and one more
    // Freight, which tells whether there is a next page); with them, every Freight is read
    // and filtered here.
    let by_status = filters.stage.is_some() || filters.alias.is_some() || filters.verified_in.is_some();
    let keyset = if by_status { None } else { request.keyset()? };
    let call = Call::GetFreight {
        project: Some(project.clone()),
        warehouse: filters.warehouse,
        name: None,
        page: keyset.map(|(limit, after)| FreightPage {
            limit: limit + 1,
            after,
        }),
    };
    let mut freight = match run(&api, &caller, call).await? {
        Answer::Freight(f) => f,
        other => return Err(unexpected(&other)),
    };
    freight.retain(|f: &FreightInfo| {
        filters
            .stage
            .as_ref()
            .is_none_or(|s| f.status.currently_in.contains_key(s))
            && filters
                .alias
                .as_ref()
                .is_none_or(|a| f.freight.alias.as_ref() == Some(a))
            && filters
                .verified_in
                .as_ref()
                .is_none_or(|s| f.status.verified_in.contains_key(s))
    });
    let (freight, next) = page::page(
        freight,
        |f| (f.created.as_str(), f.freight.metadata.name.as_str()),
        request,
    )?;
    list(freight.iter().map(resource::Freight::of).collect(), next)
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/freight/{name}", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Freight's name or alias")), responses((status = 200, description = "The Freight", body = resource::Freight), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn freight_one(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    let call = Call::GetFreight {
        project: Some(project.clone()),
        warehouse: None,
        name: Some(name),
        page: None,
    };
    match run(&api, &caller, call).await? {
        // The engine answers 404 for Freight it does not have, 400 for a name it cannot
        // tell apart.
        Answer::Freight(f) if f.len() == 1 => ok(StatusCode::OK, resource::Freight::of(&f[0])),
        other => Err(unexpected(&other)),
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    alias: String,
}

#[utoipa::path(patch, path = "/api/v1/projects/{project}/freight/{name}", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Freight's name or alias")), request_body = AliasBody, responses((status = 200, description = "The answer", body = Aliased), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn alias(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, freight)): Params<(String, String)>,
    Body(body): Body<AliasBody>,
) -> Answered {
    let call = Call::Alias {
        project: any_project(project),
        freight,
        alias: body.alias,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    stage: String,
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/freight/{name}/approve", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The Freight's name or alias")), request_body = ApproveBody, responses((status = 200, description = "The answer", body = Approved), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn approve(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, freight)): Params<(String, String)>,
    Body(body): Body<ApproveBody>,
) -> Answered {
    let call = Call::Approve {
        project: any_project(project),
        stage: body.stage,
        freight,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PromotionFilters {
    stage: Option<String>,
    /// Pending, Running, Succeeded, Failed, Errored or Aborted.
    #[param(value_type = Option<String>)]
    phase: Option<Phase>,
    /// At most this many (1 to 1000); all when not given.
    limit: Option<i64>,
    /// The `continue` of the previous page.
    #[serde(rename = "continue")]
    after: Option<String>,
    /// Stream the project's promotions and then their changes as Server-Sent Events
    /// (without the other filters; docs/reference/api.md, "Watch").
    #[serde(default)]
    watch: bool,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/promotions", tag = "barge", params(("project" = String, Path, description = "The project"), PromotionFilters, ("Last-Event-ID" = Option<String>, Header, description = "With `watch=true`: the last `id` a watch sent, to resume after it")), responses((status = 200, description = "Newest first; with `watch=true`, a stream of their changes", content((Items<resource::Promotion> = "application/json"), (String = "text/event-stream"))), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn promotions(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<PromotionFilters>,
    headers: HeaderMap,
) -> Answered {
    if filters.watch {
        watch::unfiltered(
            filters.stage.is_some() || filters.phase.is_some() || filters.limit.is_some() || filters.after.is_some(),
        )?;
        return watch::respond(&api, caller, project, watch::Resource::Promotions, &headers).await;
    }
    let call = Call::GetPromotions {
        project: Some(project),
        stage: filters.stage,
        name: None,
    };
    match run(&api, &caller, call).await? {
        Answer::Promotions(mut p) => {
            p.retain(|p| filters.phase.is_none_or(|phase| p.phase == phase));
            let request = page::PageRequest {
                limit: filters.limit,
                after: filters.after,
            };
            let (p, next) = page::page(p, |p| (p.created_at.as_str(), p.name.as_str()), request)?;
            list(p.iter().map(resource::Promotion::of).collect(), next)
        }
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/promotions/{name}", tag = "barge", params(("project" = String, Path, description = "The project, or `-` for the one that has the promotion"), ("name" = String, Path, description = "The promotion")), responses((status = 200, description = "The Promotion (with `status.state`, its steps' outputs)", body = resource::Promotion), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn promotion(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    let call = Call::GetPromotions {
        project: any_project(project),
        stage: None,
        name: Some(name.clone()),
    };
    match run(&api, &caller, call).await? {
        // The engine answers 404 for a promotion it does not have; a name is unique in a
        // project.
        Answer::Promotions(p) if p.len() == 1 => ok(StatusCode::OK, resource::Promotion::of(&p[0])),
        // Under `-`, several projects may have one of that name.
        Answer::Promotions(p) if p.len() > 1 => {
            let mut projects: Vec<&str> = p.iter().map(|p| p.project.as_str()).collect();
            projects.sort_unstable();
            Err(Problem::invalid(
                format!(
                    "promotion {name:?} exists in several projects ({}); add --project",
                    projects.join(", ")
                ),
                json!({"projects": projects}),
            ))
        }
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(post, path = "/api/v1/projects/{project}/promotions/{name}/abort", tag = "barge", params(("project" = String, Path, description = "The project"), ("name" = String, Path, description = "The promotion")), responses((status = 200, description = "The aborted Promotion, as `GET …/promotions/{name}` serves it", body = resource::Promotion), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn abort(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    let call = Call::Abort {
        project: any_project(project),
        name,
        actor: String::new(),
    };
    match run(&api, &caller, call).await? {
        Answer::Aborted(p) => ok(StatusCode::OK, resource::Promotion::of(&p)),
        other => Err(unexpected(&other)),
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryFilters {
    stage: Option<String>,
    /// A Freight's name or alias.
    freight: Option<String>,
    /// Unix milliseconds: events at or after it.
    since: Option<i64>,
    /// Unix milliseconds: events at or before it.
    until: Option<i64>,
    /// One audit kind (`promotion.created`, `stage.entered`, ...).
    kind: Option<String>,
    /// At most this many events (100 by default, at most 1000).
    limit: Option<i64>,
    /// The `continue` of the previous page.
    #[serde(rename = "continue")]
    after: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/history", tag = "barge", params(("project" = String, Path, description = "The project, or `-` for every project the token may read"), HistoryFilters), responses((status = 200, description = "Audit events, newest first", body = Items<serde_json::Value>), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn history(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<HistoryFilters>,
) -> Answered {
    let limit = filters.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid(
            format!("limit must be between 1 and {MAX_PAGE}, not {limit}"),
            json!({"limit": limit}),
        ));
    }
    // The cursor is the last event's time and id (`AT.ID`): the next page is what follows it.
    let cursor = |c: &str| -> Option<(i64, i64)> {
        let (at, id) = c.split_once('.')?;
        Some((at.parse().ok()?, id.parse().ok()?))
    };
    let before = match filters.after.as_deref().map(|c| cursor(c).ok_or(())).transpose() {
        Ok(before) => before,
        Err(()) => {
            return Err(Problem::invalid(
                "continue is not a cursor this server gave: pass the previous page's `continue` as it is".into(),
                json!({}),
            ));
        }
    };
    let call = Call::History {
        project: every_project(project),
        stage: filters.stage,
        freight: filters.freight,
        since: filters.since,
        kind: filters.kind,
        until: filters.until,
        before,
        limit,
    };
    match run(&api, &caller, call).await? {
        Answer::History(events) => {
            let next = match events.last() {
                Some(last) if events.len() as i64 == limit => Some(format!("{}.{}", last.at, last.id)),
                _ => None,
            };
            list(events, next)
        }
        other => Err(unexpected(&other)),
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatsFilters {
    /// Only this Stage.
    stage: Option<String>,
    /// The window's start, Unix milliseconds (30 days back by default).
    since: Option<i64>,
}

/// Each Stage's delivery (DORA) figures (`barge stats`; docs/reference/metrics.md defines them).
#[utoipa::path(get, path = "/api/v1/projects/{project}/stats", tag = "barge", params(("project" = String, Path, description = "The project, or `-` for every project the token may read"), StatsFilters), responses((status = 200, description = "Per Stage: promotions, deployments, deploymentsPerDay, leadTime, verificationsFailed, changeFailureRate, timeToRestore, unrestored", body = Items<serde_json::Value>), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn stats(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<StatsFilters>,
) -> Answered {
    let call = Call::Stats {
        project: every_project(project),
        stage: filters.stage,
        since: filters.since,
    };
    match run(&api, &caller, call).await? {
        Answer::Stats(figures) => list(figures, None),
        other => Err(unexpected(&other)),
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct NotificationFilters {
    /// Only those in this state: `pending`, `delivered` or `failed`.
    state: Option<String>,
    /// At most this many, newest first (100 by default, at most 1000).
    limit: Option<i64>,
}

/// The project's notification outbox (`barge get notifications -o json`): each queued
/// message's channel, event, state, attempts, last error and next attempt; never the
/// channel's secret.
#[utoipa::path(get, path = "/api/v1/projects/{project}/notifications", tag = "barge", params(("project" = String, Path, description = "The project, or `-` for every project the token may read"), NotificationFilters), responses((status = 200, description = "Notifications, newest first", body = Items<NotificationInfo>), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn notifications(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<NotificationFilters>,
) -> Answered {
    let limit = filters.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid(
            format!("limit must be between 1 and {MAX_PAGE}, not {limit}"),
            json!({"limit": limit}),
        ));
    }
    let call = Call::GetNotifications {
        project: every_project(project),
        state: filters.state,
        limit,
    };
    match run(&api, &caller, call).await? {
        Answer::Notifications(n) => list(n, None),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(get, path = "/api/v1/replicas", tag = "barge", responses((status = 200, description = "The `barge serve` replicas on this database, newest heartbeat first, with what each holds (as `barge get replicas -o json`)", body = Items<ReplicaInfo>), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn replicas(api: axum::extract::State<Api>, Caller(caller): Caller) -> Answered {
    match run(&api, &caller, Call::GetReplicas).await? {
        Answer::Replicas(r) => list(r, None),
        other => Err(unexpected(&other)),
    }
}

/// The answering barge's version, for any valid token (`barge version --server`).
#[utoipa::path(get, path = "/api/v1/version", tag = "barge", responses((status = 200, description = "The version of the barge that answers", body = VersionInfo), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
async fn version(api: axum::extract::State<Api>, Caller(caller): Caller) -> Answered {
    match run(&api, &caller, Call::Version).await? {
        Answer::Version(v) => ok(StatusCode::OK, v),
        other => Err(unexpected(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use barge_engine::pipeline::StageStatus;

    fn status(name: &str, message: &str, sources: Value) -> StageStatus {
        serde_json::from_value(json!({
            "project": "shop", "name": name, "autoPromotion": true, "steps": 0, "verification": [],
            "requests": [{"warehouse": "app", "state": "Waiting", "reason": "NoFreight", "message": message}],
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "app"}, "sources": sources}]},
        }))
        .unwrap()
    }

    /// The body as the route wrote it before it kept anything: `Json(Items)`.
    fn fresh(stages: &[StageStatus]) -> Vec<u8> {
        serde_json::to_vec(&Items {
            items: stages.iter().map(resource::Stage::of).collect(),
            next: None,
        })
        .unwrap()
    }

    fn parts(lists: &KeptStageLists) -> Vec<*const u8> {
        let kept = lists.kept.lock().unwrap();
        kept["shop"].parts.iter().map(|p| p.as_ptr()).collect()
    }

    #[test]
    fn the_kept_stage_list_is_reused_while_the_statuses_hold_and_rewritten_when_one_changes() {
        let lists = KeptStageLists::default();
        let direct = json!({"direct": true});
        let mut stages = vec![
            status("dev", "", direct.clone()),
            status("prod", "waits", direct.clone()),
        ];
        let first = lists.body("shop", stages.clone()).unwrap();
        assert_eq!(first.as_ref(), fresh(&stages).as_slice());
        let before = parts(&lists);

        // Nothing changed: the same bytes, not a copy.
        let again = lists.body("shop", stages.clone()).unwrap();
        assert_eq!(again.as_ptr(), first.as_ptr());

        // prod's status changed (a write): prod is written again, dev's JSON is reused.
        stages[1].requests[0].message = "waits for something else".into();
        let written = lists.body("shop", stages.clone()).unwrap();
        assert_ne!(written, first);
        assert_eq!(written.as_ref(), fresh(&stages).as_slice());
        let after = parts(&lists);
        assert_eq!(after[0], before[0], "dev's JSON is reused");
        assert_ne!(after[1], before[1], "prod's is written again");

        // dev's definition changed (a reload): its spec is in the next body.
        stages[0] = status("dev", "", json!({"stages": ["qa"]}));
        let reloaded = lists.body("shop", stages.clone()).unwrap();
        assert_eq!(reloaded.as_ref(), fresh(&stages).as_slice());
        assert!(String::from_utf8_lossy(&reloaded).contains(r#""sources":{"stages":["qa"]}"#));

        // A Stage gone and another project's list: each answers its own.
        stages.pop();
        assert_eq!(
            lists.body("shop", stages.clone()).unwrap().as_ref(),
            fresh(&stages).as_slice()
        );
        let other = vec![status("dev", "elsewhere", direct)];
        assert_eq!(
            lists.body("bank", other.clone()).unwrap().as_ref(),
            fresh(&other).as_slice()
        );
        assert_eq!(
            lists.body("shop", stages.clone()).unwrap().as_ref(),
            fresh(&stages).as_slice()
        );

        // Gzipped: the same body, made once.
        let list = lists.list("shop", stages.clone()).unwrap();
        let gzip = list.gzip();
        assert_eq!(list.gzip().as_ptr(), gzip.as_ptr());
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gzip.as_ref()), &mut unzipped).unwrap();
        assert_eq!(unzipped, fresh(&stages));
    }

    #[test]
    fn gzip_is_sent_when_accept_encoding_names_it() {
        let accepts = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append(axum::http::header::ACCEPT_ENCODING, v.parse().unwrap());
            }
            accepts_gzip(&headers)
        };
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["br, GZIP;q=0.5"]));
        assert!(accepts(&["deflate", "gzip, br"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["x-gzip"]));
    }
}
