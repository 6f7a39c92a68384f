//! The generic `http` step: one request, outputs and success/failure decided by expressions
//! over `response` ({status, headers, body}), polling while neither decides; and
//! `http-download`, one GET streamed into a file under a size limit.

use super::{StepCtx, StepDone, StepError, StepResult, config, done, partial_beside, remove_any};
use crate::BoxFuture;
use barge_core::eval;
use barge_core::step_config::{Http, HttpDownload, NameValue};
use serde_json::{Map, Value as Json, json};
use std::time::Duration;

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

pub(super) fn http<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Http = config("http", cfg)?;
        let method = reqwest::Method::from_bytes(c.method.as_deref().unwrap_or("GET").to_uppercase().as_bytes())
            .map_err(|_| StepError::Invalid(format!("http: bad method {:?}", c.method)))?;
        let mut req = request(
            ctx,
            "http",
            Request {
                method,
                url: &c.url,
                headers: &c.headers,
                query_params: &c.query_params,
                timeout: c.timeout.as_deref(),
                default_timeout: Duration::from_secs(10),
                insecure_skip_tls_verify: c.insecure_skip_tls_verify,
            },
        )?;
        if let Some(b) = &c.body {
            req = req.body(text(b));
        }
        let shown_url = barge_core::secret::redact_url(&c.url);
        let resp = send(req, "http", &c.url).await?;
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
        let body = serde_json::from_str::<Json>(&raw).unwrap_or(Json::String(raw));
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
            return Err(StepError::Failed(format!(
                "http {shown_url}: failureExpression is true (status {status})"
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
            return Ok(StepDone::Waiting(format!(
                "waiting for {shown_url} to meet successExpression (status {status})"
            )));
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

/// What `http` and `http-download` ask for.
struct Request<'c> {
    method: reqwest::Method,
    url: &'c str,
    headers: &'c [NameValue],
    query_params: &'c [NameValue],
    timeout: Option<&'c str>,
    default_timeout: Duration,
    insecure_skip_tls_verify: bool,
}

fn request(ctx: &StepCtx<'_>, step: &str, r: Request<'_>) -> Result<reqwest::RequestBuilder, StepError> {
    if r.insecure_skip_tls_verify {
        return Err(StepError::Invalid(format!(
            "{step}: insecureSkipTLSVerify is not supported; add the server's CA to the system trust store"
        )));
    }
    let timeout = match r.timeout {
        Some(t) => barge_core::duration::parse_go_duration(t)
            .map_err(|e| StepError::Invalid(format!("{step} timeout: {e}")))?,
        None => r.default_timeout,
    };
    let mut url = reqwest::Url::parse(r.url).map_err(|e| StepError::Invalid(format!("{step}: bad url: {e}")))?;
    if !r.query_params.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for q in r.query_params {
            pairs.append_pair(&q.name, &text(&q.value));
        }
    }
    let mut req = ctx.engine.http.request(r.method, url).timeout(timeout);
    for h in r.headers {
        req = req.header(h.name.as_str(), text(&h.value));
    }
    Ok(req)
}

/// Sends a request; a failure to get a response may pass (the URL's secrets never shown).
async fn send(req: reqwest::RequestBuilder, step: &str, url: &str) -> Result<reqwest::Response, StepError> {
    req.send().await.map_err(|e| {
        StepError::Retryable(format!(
            "{step} {}: {}",
            barge_core::secret::redact_url(url),
            barge_core::secret::redact_text(&e.to_string(), url, None)
        ))
    })
}

/// Kargo's limit for one download.
const MAX_DOWNLOAD: u64 = 100 * 1024 * 1024;

/// Kargo's http-download: GET `url` into `outPath`, at most 100 MB (checked while streaming,
/// whatever Content-Length says), written beside the file and moved in place when complete.
pub(super) fn http_download<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: HttpDownload = config("http-download", cfg)?;
        let out = ctx.path(&c.out_path)?;
        if out.symlink_metadata().is_ok() && !c.allow_overwrite {
            return Err(StepError::Invalid(format!(
                "http-download: {} already exists and allowOverwrite is false",
                c.out_path
            )));
        }
        let req = request(
            ctx,
            "http-download",
            Request {
                method: reqwest::Method::GET,
                url: &c.url,
                headers: &c.headers,
                query_params: &c.query_params,
                timeout: c.timeout.as_deref(),
                default_timeout: Duration::from_secs(5 * 60),
                insecure_skip_tls_verify: c.insecure_skip_tls_verify,
            },
        )?;
        let shown_url = barge_core::secret::redact_url(&c.url);
        let resp = send(req, "http-download", &c.url).await?;
        let status = resp.status();
        if !status.is_success() {
            let message = format!("http-download {shown_url}: status {}", status.as_u16());
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                StepError::Retryable(message)
            } else {
                StepError::Failed(message)
            });
        }
        if resp.content_length().is_some_and(|n| n > MAX_DOWNLOAD) {
            return Err(over_limit(&shown_url));
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StepError::Invalid(format!("http-download: cannot create {}: {e}", c.out_path)))?;
        }
        let partial = partial_beside(&out);
        let written = stream_to(resp, &partial, &shown_url).await;
        let moved = written.and_then(|()| {
            std::fs::rename(&partial, &out)
                .map_err(|e| StepError::Invalid(format!("http-download: cannot write {}: {e}", c.out_path)))
        });
        if moved.is_err() {
            remove_any(&partial);
        }
        moved?;
        done(Map::new())
    })
}

fn over_limit(shown_url: &str) -> StepError {
    StepError::Invalid(format!(
        "http-download {shown_url}: the download exceeds the limit of {MAX_DOWNLOAD} bytes"
    ))
}

async fn stream_to(mut resp: reqwest::Response, path: &std::path::Path, shown_url: &str) -> Result<(), StepError> {
    use tokio::io::AsyncWriteExt;
    let write_error = |e: std::io::Error| StepError::Invalid(format!("http-download: writing {}: {e}", path.display()));
    let mut file = tokio::fs::File::create(path).await.map_err(write_error)?;
    let mut total = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| StepError::Retryable(format!("http-download {shown_url}: reading the body: {e}")))?
    {
        total += chunk.len() as u64;
        if total > MAX_DOWNLOAD {
            return Err(over_limit(shown_url));
        }
        file.write_all(&chunk).await.map_err(write_error)?;
    }
    file.sync_all().await.map_err(write_error)
}
