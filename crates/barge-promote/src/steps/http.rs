//! The generic `http` step: one request, outputs and success/failure decided by expressions
//! over `response` ({status, headers, body}), polling while neither decides; and
//! `http-download`, one GET streamed into a file under a size limit.

use super::{StepCtx, StepError, StepResult, config, done, partial_beside, remove_any, waiting};
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
        let proxy = c.proxy.as_deref().filter(|p| !p.is_empty());
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
                proxy,
            },
        )?;
        match (&c.body, &c.body_from_file) {
            (Some(_), Some(_)) => {
                return Err(StepError::Invalid("http: set body or bodyFromFile, not both".into()));
            }
            (Some(b), None) => req = req.body(text(b)),
            (None, Some(file)) => req = req.body(body_from_file(ctx, file)?),
            (None, None) => {}
        }
        let shown_url = barge_core::secret::redact_url(&c.url);
        let resp = send(req, "http", &c.url).await.map_err(|e| match (e, proxy) {
            // Name the proxy (without its password): the fault may be the proxy's.
            (StepError::Retryable(m), Some(proxy)) => StepError::Retryable(format!(
                "{} (through the proxy {})",
                barge_core::secret::redact_text(&m, proxy, None),
                barge_core::secret::redact_url(proxy)
            )),
            (e, _) => e,
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
            .map_err(|e| StepError::Retryable(format!("http {shown_url}: reading the body: {}", with_causes(&e))))?;
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
            return waiting("http", why, c.poll_interval.as_deref());
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
    /// An HTTP proxy URL: the request goes through a client of its own.
    proxy: Option<&'c str>,
}

/// A client sending everything through `proxy`. Its userinfo, or else the credentials the
/// definitions wrote in it (loading takes them out of the text), is the proxy's basic auth. A
/// URL reqwest cannot use is a config error naming the proxy, never its password.
fn client_via(ctx: &StepCtx<'_>, step: &str, proxy: &str) -> Result<reqwest::Client, StepError> {
    let shown = barge_core::secret::redact_url(proxy);
    let bad = |why: String| StepError::Invalid(format!("{step}: proxy {shown:?} {why}"));
    let (bare, credentials) = barge_core::secret::request_credentials(proxy, |u| (ctx.engine.request_credentials)(u));
    let url =
        reqwest::Url::parse(&bare).map_err(|e| bad(format!("is not a URL ({e}); write it as http://host:port")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad(
            "is not an http:// or https:// proxy URL with a host (e.g. http://proxy.corp:3128)".into(),
        ));
    }
    let mut via = reqwest::Proxy::all(url).map_err(|e| bad(format!("cannot be used: {e}")))?;
    if let Some(c) = credentials {
        via = via.basic_auth(&c.username, &c.password);
    }
    crate::http_client_builder()
        .proxy(via)
        .build()
        .map_err(|e| bad(format!("cannot be used: {e}")))
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
    let (bare, credentials) = barge_core::secret::request_credentials(r.url, |u| (ctx.engine.request_credentials)(u));
    let mut url = reqwest::Url::parse(&bare).map_err(|e| StepError::Invalid(format!("{step}: bad url: {e}")))?;
    if !r.query_params.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for q in r.query_params {
            pairs.append_pair(&q.name, &text(&q.value));
        }
    }
    let client = match r.proxy {
        Some(proxy) => client_via(ctx, step, proxy)?,
        None => ctx.engine.http.clone(),
    };
    let mut req = client.request(r.method, url).timeout(timeout);
    for h in r.headers {
        req = req.header(h.name.as_str(), text(&h.value));
    }
    // Kargo's client is Go's: a URL's userinfo is basic auth unless the request sets its own
    // Authorization header (net/http's Client.send).
    if let Some(c) = credentials.filter(|_| !r.headers.iter().any(|h| h.name.eq_ignore_ascii_case("authorization"))) {
        req = req.basic_auth(c.username, Some(c.password));
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

/// An error and its causes (`a: b: c`): reqwest's own message omits what went wrong below it.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(&format!(": {c}"));
        cause = c.source();
    }
    out
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
                proxy: None,
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
