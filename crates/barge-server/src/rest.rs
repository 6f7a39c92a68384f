//! The REST API under `/api/v1/projects` (issue #16): resources and verbs over the engine's
//! calls, for scripts and tools other than barge's CLI. Each handler builds one
//! [`ops::Call`] and answers its typed answer as JSON; lists are `{"items": [...]}` with a
//! `continue` cursor where they page, as Kubernetes lists are. docs/reference/api.md lists
//! every route.
//!
//! Every route goes through what `/api/v1/call` does ([`crate::api`]): the bearer token's
//! principal, the body limit and the client timeouts. The engine authorizes each call for
//! that principal and records it as the actor: no body names one. Every error is
//! `{"code", "message", "details"}`, its status by its class ([`api::status_of`]); a body
//! with a field the route does not take is refused (400), not half-understood.

use crate::api::{self, Api, Refusal};
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use barge_core::authz::Principal;
use barge_core::promotion::Phase;
use barge_engine::answer::{FreightInfo, PromotionInfo};
use barge_engine::{Answer, EngineError, ops::Call};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// History's page size when the request names none, and the most it may name.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

pub(crate) fn routes() -> axum::Router<Api> {
    const P: &str = "/api/v1/projects/{project}";
    axum::Router::new()
        .route("/api/v1/projects", get(projects))
        .route(P, get(project))
        .route(&format!("{P}/warehouses"), get(warehouses))
        .route(&format!("{P}/warehouses/{{name}}"), get(warehouse))
        .route(&format!("{P}/warehouses/{{name}}/refresh"), post(refresh))
        .route(&format!("{P}/stages"), get(stages))
        .route(&format!("{P}/stages/{{name}}"), get(stage))
        .route(&format!("{P}/stages/{{name}}/promotions"), post(promote))
        .route(
            &format!("{P}/stages/{{name}}/promotions/downstream"),
            post(promote_downstream),
        )
        .route(&format!("{P}/stages/{{name}}/verification"), post(verify))
        .route(
            &format!("{P}/stages/{{name}}/verification/abort"),
            post(abort_verification),
        )
        .route(&format!("{P}/stages/{{name}}/hold"), post(hold))
        .route(&format!("{P}/stages/{{name}}/release"), post(release))
        .route(&format!("{P}/freight"), get(freight_list))
        .route(&format!("{P}/freight/{{name}}"), get(freight_one).patch(alias))
        .route(&format!("{P}/freight/{{name}}/approve"), post(approve))
        .route(&format!("{P}/promotions"), get(promotions))
        .route(&format!("{P}/promotions/{{name}}"), get(promotion))
        .route(&format!("{P}/promotions/{{name}}/abort"), post(abort))
        .route(&format!("{P}/history"), get(history))
}

/// A REST error: `{"code", "message", "details"}`.
struct Problem {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
}

impl Problem {
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
        let body = json!({"code": self.code, "message": self.message, "details": self.details});
        (self.status, Json(body)).into_response()
    }
}

type Answered = Result<Response, Problem>;

/// Who calls: the principal of the request's bearer token (or the anonymous viewer).
struct Caller(Principal);

impl FromRequestParts<Api> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Caller, Problem> {
        Ok(Caller(api::authenticate(api, &parts.headers).await?))
    }
}

/// A JSON body of `T` (which denies unknown fields), at most [`api::MAX_BODY`] and within the
/// client timeout.
struct Body<T>(T);

impl<T: DeserializeOwned> FromRequest<Api> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, api: &Api) -> Result<Body<T>, Problem> {
        let bytes = api::read_body(req.into_body(), api.client_timeout).await?;
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

/// A Kubernetes-style list; `continue` only when there is a next page.
fn list<T: Serialize>(items: Vec<T>, next: Option<String>) -> Answered {
    let mut body = json!({"items": items});
    if let Some(next) = next {
        body["continue"] = next.into();
    }
    ok(StatusCode::OK, body)
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

fn project_of(project: &str) -> Option<String> {
    Some(project.to_string())
}

/// The names of the projects the caller may read: those with Stages or Warehouses.
async fn project_names(
    api: &Api,
    caller: &Principal,
    project: Option<String>,
) -> Result<(Vec<String>, Vec<String>, Vec<(String, String)>), Problem> {
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
    let mut projects: Vec<String> = stages
        .iter()
        .map(|s| s.project.clone())
        .chain(warehouses.iter().map(|w| w.project.clone()))
        .collect();
    projects.sort();
    projects.dedup();
    Ok((
        projects,
        stages.into_iter().map(|s| s.name).collect(),
        warehouses.into_iter().map(|w| (w.project, w.name)).collect(),
    ))
}

async fn projects(api: axum::extract::State<Api>, Caller(caller): Caller) -> Answered {
    let (projects, _, _) = project_names(&api, &caller, None).await?;
    list(projects.into_iter().map(|name| json!({"name": name})).collect(), None)
}

async fn project(api: axum::extract::State<Api>, Caller(caller): Caller, Params(project): Params<String>) -> Answered {
    let (_, stages, warehouses) = project_names(&api, &caller, project_of(&project)).await?;
    let warehouses: Vec<String> = warehouses.into_iter().map(|(_, w)| w).collect();
    ok(
        StatusCode::OK,
        json!({"name": project, "stages": stages, "warehouses": warehouses}),
    )
}

async fn warehouses(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
) -> Answered {
    match run(
        &api,
        &caller,
        Call::GetWarehouses {
            project: project_of(&project),
        },
    )
    .await?
    {
        Answer::Warehouses(w) => list(w, None),
        other => Err(unexpected(&other)),
    }
}

async fn warehouse(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    match run(
        &api,
        &caller,
        Call::GetWarehouses {
            project: project_of(&project),
        },
    )
    .await?
    {
        Answer::Warehouses(w) => match w.into_iter().find(|w| w.name == name) {
            Some(w) => ok(StatusCode::OK, w),
            None => Err(Problem::not_found(format!(
                "no Warehouse named {name:?} in project {project:?}"
            ))),
        },
        other => Err(unexpected(&other)),
    }
}

async fn refresh(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, warehouse)): Params<(String, String)>,
) -> Answered {
    let call = Call::Refresh {
        project: project_of(&project),
        warehouse,
        actor: String::new(),
    };
    ok(StatusCode::ACCEPTED, run(&api, &caller, call).await?)
}

async fn stages(api: axum::extract::State<Api>, Caller(caller): Caller, Params(project): Params<String>) -> Answered {
    let call = Call::GetStages {
        project: project_of(&project),
        name: None,
    };
    match run(&api, &caller, call).await? {
        Answer::Stages(s) => list(s, None),
        other => Err(unexpected(&other)),
    }
}

async fn stage(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    let call = Call::GetStages {
        project: project_of(&project),
        name: Some(name),
    };
    match run(&api, &caller, call).await? {
        // The engine answers 404 for a Stage it does not have.
        Answer::Stages(s) if s.len() == 1 => ok(StatusCode::OK, &s[0]),
        other => Err(unexpected(&other)),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PromoteBody {
    /// The Freight's name or alias.
    freight: String,
    /// Promote although the Stage's promotion window or freight-creation criteria refuse.
    override_reason: Option<String>,
}

/// The promotions a call queued, as they are now.
async fn queued(api: &Api, caller: &Principal, project: &str, answer: Answer) -> Result<Vec<PromotionInfo>, Problem> {
    let Answer::Queued(queued) = answer else {
        return Err(unexpected(&answer));
    };
    let mut out = Vec::new();
    for name in queued.promotions {
        let call = Call::GetPromotions {
            project: project_of(project),
            stage: None,
            name: Some(name),
        };
        match run(api, caller, call).await? {
            Answer::Promotions(p) => out.extend(p),
            other => return Err(unexpected(&other)),
        }
    }
    Ok(out)
}

async fn promote(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
    Body(body): Body<PromoteBody>,
) -> Answered {
    let call = Call::Promote {
        project: project_of(&project),
        stage,
        freight: body.freight,
        actor: String::new(),
        override_reason: body.override_reason,
    };
    let answer = run(&api, &caller, call).await?;
    let mut queued = queued(&api, &caller, &project, answer).await?;
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FreightBody {
    /// The Freight's name or alias.
    freight: String,
}

async fn promote_downstream(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, from)): Params<(String, String)>,
    Body(body): Body<FreightBody>,
) -> Answered {
    let call = Call::PromoteDownstream {
        project: project_of(&project),
        from,
        freight: body.freight,
        actor: String::new(),
    };
    let answer = run(&api, &caller, call).await?;
    let queued = queued(&api, &caller, &project, answer).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"items": queued}))).into_response())
}

async fn verification(api: &Api, caller: &Principal, project: String, stage: String, abort: bool) -> Answered {
    let call = Call::Verify {
        project: Some(project),
        stage,
        abort,
        actor: String::new(),
    };
    let status = if abort { StatusCode::OK } else { StatusCode::ACCEPTED };
    ok(status, run(api, caller, call).await?)
}

async fn verify(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
) -> Answered {
    verification(&api, &caller, project, stage, false).await
}

async fn abort_verification(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
) -> Answered {
    verification(&api, &caller, project, stage, true).await
}

async fn hold(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
) -> Answered {
    let call = Call::Hold {
        project: Some(project),
        stage,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

async fn release(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, stage)): Params<(String, String)>,
) -> Answered {
    let call = Call::Release {
        project: Some(project),
        stage,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FreightFilters {
    warehouse: Option<String>,
    /// Freight currently in this Stage.
    stage: Option<String>,
    alias: Option<String>,
}

async fn freight_list(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<FreightFilters>,
) -> Answered {
    let call = Call::GetFreight {
        project: project_of(&project),
        warehouse: filters.warehouse,
        name: None,
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
    });
    list(freight, None)
}

async fn freight_one(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    let call = Call::GetFreight {
        project: project_of(&project),
        warehouse: None,
        name: Some(name),
    };
    match run(&api, &caller, call).await? {
        // The engine answers 404 for Freight it does not have, 400 for a name it cannot
        // tell apart.
        Answer::Freight(f) if f.len() == 1 => ok(StatusCode::OK, &f[0]),
        other => Err(unexpected(&other)),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    alias: String,
}

async fn alias(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, freight)): Params<(String, String)>,
    Body(body): Body<AliasBody>,
) -> Answered {
    let call = Call::Alias {
        project: Some(project),
        freight,
        alias: body.alias,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    stage: String,
}

async fn approve(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, freight)): Params<(String, String)>,
    Body(body): Body<ApproveBody>,
) -> Answered {
    let call = Call::Approve {
        project: Some(project),
        stage: body.stage,
        freight,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PromotionFilters {
    stage: Option<String>,
    phase: Option<Phase>,
}

async fn promotions(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(project): Params<String>,
    Filters(filters): Filters<PromotionFilters>,
) -> Answered {
    let call = Call::GetPromotions {
        project: Some(project),
        stage: filters.stage,
        name: None,
    };
    match run(&api, &caller, call).await? {
        Answer::Promotions(mut p) => {
            p.retain(|p| filters.phase.is_none_or(|phase| p.phase == phase));
            list(p, None)
        }
        other => Err(unexpected(&other)),
    }
}

async fn promotion(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    let call = Call::GetPromotions {
        project: Some(project),
        stage: None,
        name: Some(name),
    };
    match run(&api, &caller, call).await? {
        // The engine answers 404 for a promotion it does not have; a name is unique in a
        // project.
        Answer::Promotions(p) if p.len() == 1 => ok(StatusCode::OK, &p[0]),
        other => Err(unexpected(&other)),
    }
}

async fn abort(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params((project, name)): Params<(String, String)>,
) -> Answered {
    let call = Call::Abort {
        project: Some(project),
        name,
        actor: String::new(),
    };
    ok(StatusCode::OK, run(&api, &caller, call).await?)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryFilters {
    stage: Option<String>,
    /// A Freight's name or alias.
    freight: Option<String>,
    /// Unix milliseconds.
    since: Option<i64>,
    /// At most this many events (100 by default, at most 1000).
    limit: Option<i64>,
    /// The `continue` of the previous page.
    #[serde(rename = "continue")]
    after: Option<String>,
}

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
    // The cursor is the last event's id: the next page is the events older than it.
    let before_id = match filters.after.as_deref().map(str::parse::<i64>).transpose() {
        Ok(id) => id,
        Err(_) => {
            return Err(Problem::invalid(
                "continue is not a cursor this server gave: pass the previous page's `continue` as it is".into(),
                json!({}),
            ));
        }
    };
    let call = Call::History {
        project: Some(project),
        stage: filters.stage,
        freight: filters.freight,
        since: filters.since,
        before_id,
        limit,
    };
    match run(&api, &caller, call).await? {
        Answer::History(events) => {
            let next = match events.last() {
                Some(last) if events.len() as i64 == limit => Some(last.id.to_string()),
                _ => None,
            };
            list(events, next)
        }
        other => Err(unexpected(&other)),
    }
}
