//! The REST routes (docs/reference/api.md) of the verbs that change something: with
//! `--server`, promote, approve, abort, hold, release, verify, refresh, `update freight` and
//! `token` reach `barge serve` through them. Each answer is read back as the engine's typed
//! answer, so that a verb prints the same through the server as in-process; an error answer
//! (`{"code", "message", "details"}`) becomes the engine's message, as in-process.

use anyhow::{Context as _, Result, bail};
use barge_engine::Answer;
use barge_engine::ops::Call;
use barge_engine::tokens::TokenCall;
use reqwest::Method;
use serde_json::{Value, json};

/// Where a call goes: its method, path segments under `/api/v1`, query and body.
struct Route {
    method: Method,
    path: Vec<String>,
    query: Option<(&'static str, &'static str)>,
    body: Option<Value>,
}

/// The route of a call that changes something; `None` for the others.
fn route(c: &Call) -> Option<Route> {
    // Without --project the server finds the one project that has what is named.
    let project = |p: &Option<String>| p.clone().unwrap_or_else(|| barge_server::rest::ANY_PROJECT.into());
    let under = |p: &Option<String>, rest: &[&str]| -> Vec<String> {
        ["projects".to_string(), project(p)]
            .into_iter()
            .chain(rest.iter().map(|s| s.to_string()))
            .collect()
    };
    let post = |path: Vec<String>, body: Option<Value>| Route {
        method: Method::POST,
        path,
        query: None,
        body,
    };
    Some(match c {
        Call::Promote {
            project,
            stage,
            freight,
            override_reason,
            ..
        }
        | Call::PromoteDryRun {
            project,
            stage,
            freight,
            override_reason,
            ..
        } => Route {
            query: matches!(c, Call::PromoteDryRun { .. }).then_some(("dryRun", "true")),
            ..post(
                under(project, &["stages", stage, "promotions"]),
                Some(json!({"freight": freight, "overrideReason": override_reason})),
            )
        },
        Call::PromoteDownstream {
            project, from, freight, ..
        } => post(
            under(project, &["stages", from, "promotions", "downstream"]),
            Some(json!({ "freight": freight })),
        ),
        Call::Approve {
            project,
            stage,
            freight,
            ..
        } => post(
            under(project, &["freight", freight, "approve"]),
            Some(json!({ "stage": stage })),
        ),
        Call::Abort { project, name, .. } => post(under(project, &["promotions", name, "abort"]), None),
        Call::Hold { project, stage, .. } => post(under(project, &["stages", stage, "hold"]), None),
        Call::Release { project, stage, .. } => post(under(project, &["stages", stage, "release"]), None),
        Call::Verify {
            project, stage, abort, ..
        } => {
            let mut path = under(project, &["stages", stage, "verification"]);
            if *abort {
                path.push("abort".into());
            }
            post(path, None)
        }
        Call::Refresh { project, warehouse, .. } => post(under(project, &["warehouses", warehouse, "refresh"]), None),
        Call::Alias {
            project,
            freight,
            alias,
            ..
        } => Route {
            method: Method::PATCH,
            ..post(under(project, &["freight", freight]), Some(json!({ "alias": alias })))
        },
        Call::Token(TokenCall::Create {
            name,
            role,
            project,
            stages,
            ..
        }) => post(
            vec!["tokens".into()],
            Some(json!({"name": name, "role": role, "project": project, "stages": stages})),
        ),
        Call::Token(TokenCall::List) => Route {
            method: Method::GET,
            ..post(vec!["tokens".into()], None)
        },
        Call::Token(TokenCall::Revoke { name, .. }) => post(vec!["tokens".into(), name.clone(), "revoke".into()], None),
        _ => return None,
    })
}

/// Runs `c` on `server` through its REST route, when it has one (`None`: it has not).
pub async fn call(server: &str, token: &str, c: &Call) -> Option<Result<Answer>> {
    let route = route(c)?;
    Some(send(server, token, route, c).await)
}

async fn send(server: &str, token: &str, route: Route, c: &Call) -> Result<Answer> {
    let body = request(server, token, route).await?;
    c.decode(engine_answer(c, body))
        .with_context(|| format!("{server} answered with something other than barge's answer to the call"))
}

/// `GET /api/v1/whoami`: whom `token` stands for on `server` (`{"name", "actor", "role",
/// "project"?, "stages"?}`), or why the server refuses it.
pub async fn whoami(server: &str, token: &str) -> Result<Value> {
    let route = Route {
        method: Method::GET,
        path: vec!["whoami".into()],
        query: None,
        body: None,
    };
    request(server, token, route).await
}

/// Sends the request; the JSON answer, or the error's message.
async fn request(server: &str, token: &str, route: Route) -> Result<Value> {
    let mut url = reqwest::Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {server:?} is not an http(s) URL"))?
        .pop_if_empty()
        .extend(["api", "v1"])
        .extend(&route.path);
    if let Some((key, value)) = route.query {
        url.query_pairs_mut().append_pair(key, value);
    }
    // BARGE_LOG=barge=debug shows which route a verb takes.
    tracing::debug!(method = %route.method, %url, "asking barge serve");
    let mut request = barge_promote::http_client()
        .request(route.method, url)
        .bearer_auth(token);
    if let Some(body) = &route.body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach barge serve at {server}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{server} did not answer with JSON (HTTP {status})"))?;
    if !status.is_success() {
        bail!(
            "{}",
            body["message"]
                .as_str()
                .unwrap_or("the server refused the call without saying why")
        );
    }
    Ok(body)
}

/// A route's answer in the engine's shape: a promotion route answers the promotions it
/// queued, the engine their names; a list is `{"items"}`.
fn engine_answer(c: &Call, body: Value) -> Value {
    let name = |p: &Value| p["name"].clone();
    match c {
        Call::Promote { .. } => json!({"promotions": [name(&body)]}),
        Call::PromoteDownstream { .. } => {
            let names: Vec<Value> = body["items"].as_array().into_iter().flatten().map(name).collect();
            json!({ "promotions": names })
        }
        Call::Token(TokenCall::List) => body["items"].clone(),
        _ => body,
    }
}
