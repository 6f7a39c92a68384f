//! The generic `http` step: one request, outputs and success/failure decided by expressions
//! over `response` ({status, headers, body}), polling while neither decides.

use super::{StepCtx, StepDone, StepError, StepResult, config, done};
use crate::BoxFuture;
use barge_core::eval;
use barge_core::step_config::Http;
use serde_json::{Map, Value as Json, json};

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn strip(e: &str) -> &str {
    let t = e.trim();
    t.strip_prefix("${{").and_then(|x| x.strip_suffix("}}")).unwrap_or(t)
}

/// The most of a file `bodyFromFile` sends, and of a response read (Kargo's limit, 2 MiB).
const MAX_BODY: u64 = 2 << 20;

/// The request body from a file in the work directory (bodyFromFile), at most [`MAX_BODY`].
fn body_from_file(ctx: &StepCtx<'_>, rel: &str) -> Result<Vec<u8>, StepError> {
    use std::io::Read;
    let file =
        std::fs::File::open(ctx.path(rel)?).map_err(|e| StepError::Invalid(format!("http bodyFromFile {rel}: {e}")))?;
    let mut body = Vec::new();
    file.take(MAX_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| StepError::Invalid(format!("http bodyFromFile {rel}: {e}")))?;
    if body.len() as u64 > MAX_BODY {
        return Err(StepError::Invalid(format!(
            "http bodyFromFile {rel}: larger than {MAX_BODY} bytes"
        )));
    }
    Ok(body)
}

/// `response.body` as Kargo reads it by media type (responseContentType, else the response's
/// Content-Type): YAML types as YAML, text/plain as text, application/json as JSON (an error
/// when it is not); anything else as JSON when it parses, else (a barge leniency; Kargo drops
/// it) as text.
fn parse_body(raw: String, content_type: &str) -> Result<Json, StepError> {
    if raw.is_empty() {
        return Ok(Json::Null);
    }
    match content_type {
        "text/plain" => Ok(Json::String(raw)),
        "application/yaml" | "text/yaml" | "application/x-yaml" => {
            let (docs, err) = barge_core::yaml::parse_stream(&raw);
            if let Some(e) = err {
                return Err(StepError::Invalid(format!(
                    "http: the response is not YAML ({}:{}: {e})",
                    e.pos.line, e.pos.column
                )));
            }
            Ok(docs.first().map_or(Json::Null, |d| d.root.to_json()))
        }
        "application/json" => {
            serde_json::from_str(&raw).map_err(|e| StepError::Invalid(format!("http: the response is not JSON: {e}")))
        }
        _ => Ok(serde_json::from_str::<Json>(&raw).unwrap_or(Json::String(raw))),
    }
}

pub(super) fn http<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Http = config("http", cfg)?;
        if let Some(t) = &c.response_content_type
            && !matches!(t.as_str(), "application/json" | "application/yaml" | "text/plain")
        {
            return Err(StepError::Invalid(format!(
                "http: responseContentType {t:?} is not application/json, application/yaml or text/plain"
            )));
        }
        let method = reqwest::Method::from_bytes(c.method.as_deref().unwrap_or("GET").to_uppercase().as_bytes())
            .map_err(|_| StepError::Invalid(format!("http: bad method {:?}", c.method)))?;
        let timeout = match c.timeout.as_deref() {
            Some(t) => barge_core::duration::parse_go_duration(t)
                .map_err(|e| StepError::Invalid(format!("http timeout: {e}")))?,
            None => std::time::Duration::from_secs(10),
        };
        let mut url = reqwest::Url::parse(&c.url).map_err(|e| StepError::Invalid(format!("http: bad url: {e}")))?;
        if !c.query_params.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for q in &c.query_params {
                pairs.append_pair(&q.name, &text(&q.value));
            }
        }
        let mut req = ctx.engine.http.request(method, url).timeout(timeout);
        for h in &c.headers {
            req = req.header(h.name.as_str(), text(&h.value));
        }
        match (&c.body, &c.body_from_file) {
            (Some(_), Some(_)) => {
                return Err(StepError::Invalid("http: set body or bodyFromFile, not both".into()));
            }
            (Some(b), None) => req = req.body(text(b)),
            (None, Some(file)) => req = req.body(body_from_file(ctx, file)?),
            (None, None) => {}
        }
        let shown_url = barge_core::secret::redact_url(&c.url);
        let resp = req.send().await.map_err(|e| {
            StepError::Retryable(format!(
                "http {shown_url}: {}",
                barge_core::secret::redact_text(&e.to_string(), &c.url, None)
            ))
        })?;
        let status = resp.status().as_u16();
        let headers: Map<String, Json> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
            .collect();
        let raw = resp
            .text()
            .await
            .map_err(|e| StepError::Retryable(format!("http {shown_url}: reading the body: {e}")))?;
        let content_type = match &c.response_content_type {
            Some(given) => given.clone(),
            None => headers
                .get("content-type")
                .and_then(Json::as_str)
                .map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
                .unwrap_or_default(),
        };
        let body = parse_body(raw, &content_type)?;
        let response = json!({"status": status, "headers": headers, "body": body});
        let extra = [("response", response)];
        let decide = |e: &str| -> Result<bool, StepError> {
            match eval::expression(strip(e), ctx.data, ctx.scope, &extra) {
                Ok(Json::Bool(b)) => Ok(b),
                Ok(other) => Err(StepError::Invalid(format!(
                    "http: expression {e:?} must be true or false, got {other}"
                ))),
                Err(err) => Err(StepError::Invalid(format!("http: {err}"))),
            }
        };
        if let Some(f) = &c.failure_expression
            && decide(f)?
        {
            // errorExpression: the reason, read from the response (Kargo: a string, or none).
            let reason = match &c.error_expression {
                Some(e) => match eval::expression(strip(e), ctx.data, ctx.scope, &extra) {
                    Ok(Json::String(m)) if !m.is_empty() => format!(": {m}"),
                    Ok(_) | Err(_) => String::new(),
                },
                None => String::new(),
            };
            return Err(StepError::Failed(format!(
                "http {shown_url}: failureExpression is true (status {status}){reason}"
            )));
        }
        let succeeded = match &c.success_expression {
            Some(s) => decide(s)?,
            // Without expressions, any 2xx is success (Kargo's default).
            None if c.failure_expression.is_none() => (200..300).contains(&status),
            None => true,
        };
        if !succeeded {
            if c.failure_expression.is_none() && c.success_expression.is_none() {
                return Err(StepError::Retryable(format!("http {shown_url}: status {status}")));
            }
            let why = format!("waiting for {shown_url} to meet successExpression (status {status})");
            return Ok(match c.poll_interval.as_deref() {
                Some(every) => StepDone::WaitingFor {
                    why,
                    at_least: barge_core::duration::parse_go_duration(every)
                        .map_err(|e| StepError::Invalid(format!("http pollInterval: {e}")))?,
                },
                None => StepDone::Waiting(why),
            });
        }
        let mut out = Map::new();
        for o in &c.outputs {
            let v = eval::expression(strip(&o.from_expression), ctx.data, ctx.scope, &extra)
                .map_err(|e| StepError::Invalid(format!("http output {}: {e}", o.name)))?;
            out.insert(o.name.clone(), v);
        }
        done(out)
    })
}
