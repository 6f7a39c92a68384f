//! The web provider: one HTTP request; a 2xx JSON answer is narrowed by `jsonPath`
//! (Kubernetes syntax, default `{$}`, first match) and keeps its types, any other 2xx body is
//! the raw string, and a non-2xx status is an error — as in Rollouts.

use crate::MeasureError;
use crate::http::{Body, Http, Request};
use barge_core::analysis::MeasuredValue;
use barge_core::analysis::jsonpath::JsonPath;
use barge_core::model::analysis::WebMetric;
use std::time::Duration;

/// Rollouts' default request timeout.
const DEFAULT_TIMEOUT_SECS: i64 = 10;

/// `METHOD url`, for showing what a metric asked.
pub fn describe(w: &WebMetric) -> String {
    format!(
        "{} {}",
        w.method.as_deref().unwrap_or("GET").to_uppercase(),
        w.url.as_deref().unwrap_or("")
    )
}

pub async fn measure(http: &Http, w: &WebMetric) -> Result<MeasuredValue, MeasureError> {
    let url = w
        .url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| MeasureError::Invalid("web: no url".into()))?;
    let method = match w.method.as_deref().unwrap_or("GET").to_uppercase().as_str() {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        other => {
            return Err(MeasureError::Invalid(format!(
                "web: method {other:?} is not supported (GET, POST or PUT)"
            )));
        }
    };
    let body = match (&w.body, &w.json_body) {
        (Some(_), Some(_)) => {
            return Err(MeasureError::Invalid("web: set body or jsonBody, not both".into()));
        }
        (Some(b), None) => Some(Body::Text(b.clone())),
        (None, Some(j)) => Some(Body::Json(j.clone())),
        (None, None) => None,
    };
    if body.is_some() && method == reqwest::Method::GET {
        return Err(MeasureError::Invalid(
            "web: a GET request cannot have a body; use POST or PUT".into(),
        ));
    }
    let path = JsonPath::parse(w.json_path.as_deref().unwrap_or("{$}")).map_err(MeasureError::Invalid)?;
    let timeout = match w.timeout_seconds {
        Some(t) if t < 0 => return Err(MeasureError::Invalid("web: timeoutSeconds cannot be negative".into())),
        Some(t) if t > 0 => t,
        _ => DEFAULT_TIMEOUT_SECS,
    };
    let text = http
        .send(Request {
            method,
            url,
            headers: &w.headers,
            body,
            timeout: Duration::from_secs(timeout as u64),
            insecure: w.insecure == Some(true),
            authentication: w.authentication.as_ref(),
        })
        .await?;
    select(&text, &path, w.json_path.as_deref().unwrap_or("{$}"))
}

/// The measured value of a 2xx body.
fn select(text: &str, path: &JsonPath, shown_path: &str) -> Result<MeasuredValue, MeasureError> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return Ok(MeasuredValue::String(text.to_string()));
    };
    path.find(&json)
        .first()
        .map(|v| MeasuredValue::Json((*v).clone()))
        .ok_or_else(|| MeasureError::Unreadable(format!("web: jsonPath {shown_path} matches nothing in the answer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_values() {
        let root = JsonPath::parse("{$}").unwrap();
        assert_eq!(
            select(r#"{"ok":true}"#, &root, "{$}").unwrap(),
            MeasuredValue::Json(serde_json::json!({"ok": true}))
        );
        assert_eq!(
            select("healthy", &root, "{$}").unwrap(),
            MeasuredValue::String("healthy".into())
        );
        assert_eq!(select("", &root, "{$}").unwrap(), MeasuredValue::String(String::new()));
        let count = JsonPath::parse("{$.count}").unwrap();
        assert_eq!(
            select(r#"{"count":3}"#, &count, "{$.count}").unwrap(),
            MeasuredValue::Json(serde_json::json!(3))
        );
        let err = select(r#"{"other":3}"#, &count, "{$.count}").unwrap_err();
        assert!(err.to_string().contains("matches nothing"), "{err}");
    }
}
