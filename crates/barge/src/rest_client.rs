//! How a verb's [`Call`] reaches `barge serve` with `--server`: through its REST route
//! (docs/reference/api.md), the server's one API. Every call has one, except the reads of
//! Kargo's resources that `barge get` makes ([`crate::get_cli`] reads those routes itself, as
//! resources). Each answer is read back as the engine's typed answer, so that a verb prints
//! the same through the server as in-process; an error answer (`{"code", "message",
//! "details"}`) becomes the engine's message, as in-process.

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
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
}

/// The most a page of history may hold (the REST API's limit).
const MAX_PAGE: i64 = 1000;

/// The route of a call.
fn route(c: &Call) -> Result<Route> {
    // Without --project the server finds the one project that has what is named, or (in a
    // list: history, stats, notifications) reads every project the token may read.
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
        query: Vec::new(),
        body,
    };
    let get = |path: Vec<String>, query: Vec<(&'static str, Option<String>)>| Route {
        method: Method::GET,
        path,
        query: query.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        body: None,
    };
    Ok(match c {
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
            query: match c {
                Call::PromoteDryRun { .. } => vec![("dryRun", "true".into())],
                _ => Vec::new(),
            },
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
        Call::Version => get(vec!["version".into()], Vec::new()),
        Call::GetReplicas => get(vec!["replicas".into()], Vec::new()),
        Call::GetWebhooks { project } => get(vec!["webhooks".into()], vec![("project", project.clone())]),
        Call::GetNotifications {
            project: p,
            state,
            limit,
        } => get(
            under(p, &["notifications"]),
            vec![("state", state.clone()), ("limit", Some(limit.to_string()))],
        ),
        Call::Stats {
            project: p,
            stage,
            since,
        } => get(
            under(p, &["stats"]),
            vec![("stage", stage.clone()), ("since", since.map(|s| s.to_string()))],
        ),
        Call::History {
            project: p,
            stage,
            freight,
            since,
            kind,
            until,
            before,
            limit,
        } => get(
            under(p, &["history"]),
            vec![
                ("stage", stage.clone()),
                ("freight", freight.clone()),
                ("since", since.map(|s| s.to_string())),
                ("until", until.map(|u| u.to_string())),
                ("kind", kind.clone()),
                ("limit", Some(limit.to_string())),
                ("continue", before.map(|(at, id)| format!("{at}.{id}"))),
            ],
        ),
        // One promotion by name (`promote --wait` follows it).
        Call::GetPromotions {
            project: p,
            name: Some(name),
            ..
        } => get(under(p, &["promotions", name]), Vec::new()),
        // `barge get` reads these as Kargo's resources, from their own routes (get_cli.rs).
        Call::GetPromotions { name: None, .. }
        | Call::GetStages { .. }
        | Call::GetWarehouses { .. }
        | Call::GetFreight { .. } => {
            bail!(
                "barge reads Stages, Warehouses, Freight and promotion lists from a server as Kargo's resources (barge get)"
            )
        }
    })
}

/// Runs `c` on `server` through its REST route.
pub async fn call(server: &str, token: &str, c: &Call) -> Result<Answer> {
    if let Call::History { .. } = c {
        return history(server, token, c.clone()).await;
    }
    let body = request(server, token, route(c)?).await?;
    let answer = engine_answer(c, body)?;
    c.decode(answer)
        .with_context(|| format!("{server} answered with something other than barge's answer to the call"))
}

/// `barge history --limit N`: the REST API answers at most [`MAX_PAGE`] events a page, so
/// more are read page after page (the `continue` cursor) until there are N or no more.
async fn history(server: &str, token: &str, mut page: Call) -> Result<Answer> {
    let Call::History { limit: want, .. } = page else {
        bail!("not a history call");
    };
    let mut events: Vec<Value> = Vec::new();
    loop {
        if let Call::History { limit, .. } = &mut page {
            *limit = (want - events.len() as i64).min(MAX_PAGE);
        }
        let mut body = request(server, token, route(&page)?).await?;
        let Value::Array(items) = body["items"].take() else {
            bail!("{server} answered history without items");
        };
        events.extend(items);
        let next = body["continue"].as_str().and_then(|c| {
            let (at, id) = c.split_once('.')?;
            Some((at.parse().ok()?, id.parse().ok()?))
        });
        match (next, &mut page) {
            (Some(cursor), Call::History { before, .. }) if (events.len() as i64) < want => *before = Some(cursor),
            _ => break,
        }
    }
    page.decode(Value::Array(events))
        .with_context(|| format!("{server} answered with something other than barge's history"))
}

/// `GET /api/v1/whoami`: whom `token` stands for on `server` (`{"name", "actor", "role",
/// "project"?, "stages"?}`), or why the server refuses it.
pub async fn whoami(server: &str, token: &str) -> Result<Value> {
    let route = Route {
        method: Method::GET,
        path: vec!["whoami".into()],
        query: Vec::new(),
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
    if !route.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&route.query);
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

/// A route's answer in the engine's shape: a promotion route answers the Promotions it
/// queued (Kargo's resources), the engine their names; a list is `{"items"}`; a promotion
/// (read or aborted) is Kargo's resource, the engine's its summary.
fn engine_answer(c: &Call, mut body: Value) -> Result<Value> {
    let name = |p: &Value| p["metadata"]["name"].clone();
    let info = |body: Value| -> Result<barge_engine::answer::PromotionInfo> {
        let promotion: barge_engine::resource::Promotion =
            serde_json::from_value(body).context("the server answered with something other than a Promotion")?;
        promotion
            .info()
            .with_context(|| format!("promotion {} has a phase barge does not know", promotion.metadata.name))
    };
    Ok(match c {
        Call::Promote { .. } => json!({"promotions": [name(&body)]}),
        Call::PromoteDownstream { .. } => {
            let names: Vec<Value> = body["items"].as_array().into_iter().flatten().map(name).collect();
            json!({ "promotions": names })
        }
        Call::Token(TokenCall::List)
        | Call::GetReplicas
        | Call::GetWebhooks { .. }
        | Call::GetNotifications { .. }
        | Call::Stats { .. }
        | Call::History { .. } => body["items"].take(),
        Call::Abort { .. } => json!(info(body)?),
        Call::GetPromotions { stage, name, .. } => {
            let info = info(body)?;
            // The route finds a promotion by name alone; the call may name its Stage too.
            if stage.as_deref().is_some_and(|s| s != info.stage) {
                bail!("no promotion named {:?}", name.as_deref().unwrap_or_default());
            }
            json!([info])
        }
        _ => body,
    })
}
