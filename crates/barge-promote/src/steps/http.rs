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

pub(super) fn http<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: Http = config("http", cfg)?;
        if c.insecure_skip_tls_verify {
            return Err(StepError::Invalid(
                "http: insecureSkipTLSVerify is not supported; add the server's CA to the system trust store".into(),
            ));
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
        if let Some(b) = &c.body {
            req = req.body(text(b));
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
