//! The API's tokens (`barge token create|list|revoke --server`; admins only, as the engine
//! authorizes every token call) and `GET /api/v1/whoami`, which `barge login` asks to check a
//! token before it saves a context.

use super::{Answered, Body, Caller, Items, Params, Problem, list, ok, run, unexpected};
use crate::api::Api;
use axum::http::StatusCode;
use barge_core::authz::Role;
use barge_engine::Answer;
use barge_engine::answer::{CreatedToken, TokenInfo};
use barge_engine::ops::Call;
use barge_engine::tokens::TokenCall;
use serde::Serialize;

/// Who the request's token stands for.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WhoAmI {
    /// The token's name (`anonymous` without a token, when the server lets anonymous read).
    name: String,
    /// Who the audit log says acts: `token:NAME` or `anonymous`.
    actor: String,
    /// viewer, promoter or admin.
    role: String,
    /// The one project it may act in; absent: every project.
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    /// The Stages a promoter may act on; absent: every Stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    stages: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/api/v1/whoami", tag = "barge", responses((status = 200, description = "The principal the bearer token stands for and its role", body = WhoAmI), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
pub(super) async fn whoami(Caller(caller): Caller) -> Answered {
    let me = WhoAmI {
        actor: caller.actor(),
        role: caller.role.to_string(),
        name: caller.name,
        project: caller.project,
        stages: caller.stages,
    };
    ok(StatusCode::OK, me)
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    /// 1 to 64 letters, digits, `.`, `_` or `-`; the audit log records its calls as `token:NAME`.
    name: String,
    /// viewer, promoter or admin.
    #[schema(value_type = String)]
    role: Role,
    /// Only this project.
    project: Option<String>,
    /// A promoter's Stages; without them, every Stage.
    stages: Option<Vec<String>>,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "barge", responses((status = 200, description = "Every token with its role, scope and times; never a token itself (admins only)", body = Items<TokenInfo>), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
pub(super) async fn tokens(api: axum::extract::State<Api>, Caller(caller): Caller) -> Answered {
    match run(&api, &caller, Call::Token(TokenCall::List)).await? {
        Answer::Tokens(t) => list(t, None),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "barge", request_body = CreateBody, responses((status = 201, description = "The token, shown this once: the store keeps only its SHA-256 (admins only)", body = CreatedToken), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
pub(super) async fn create(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Body(body): Body<CreateBody>,
) -> Answered {
    let call = Call::Token(TokenCall::Create {
        name: body.name,
        role: body.role,
        project: body.project,
        stages: body.stages,
        actor: String::new(),
    });
    match run(&api, &caller, call).await? {
        Answer::TokenCreated(created) => ok(StatusCode::CREATED, created),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(post, path = "/api/v1/tokens/{name}/revoke", tag = "barge", params(("name" = String, Path, description = "The token's name")), responses((status = 200, description = "The token as it is now: refused from now on, its name still taken (admins only)", body = TokenInfo), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
pub(super) async fn revoke(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Params(name): Params<String>,
) -> Answered {
    let call = Call::Token(TokenCall::Revoke {
        name,
        actor: String::new(),
    });
    match run(&api, &caller, call).await? {
        Answer::TokenRevoked(t) => ok(StatusCode::OK, t),
        other => Err(unexpected(&other)),
    }
}
