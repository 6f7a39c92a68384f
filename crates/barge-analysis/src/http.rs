//! The HTTP layer both providers share: headers, per-request timeouts, `insecure` (TLS
//! verification off), authentication (`basicAuth`, `oauth2` client credentials) and the
//! classification of failures, so Prometheus and web metrics behave alike.

use crate::MeasureError;
use barge_core::model::analysis::WebHeader;
use barge_core::rewrite::Rewrite;
use barge_core::secret::{redact_text, redact_url};
use serde::Deserialize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Clients for measurements (cheap to clone), with barge's URL rewrites: a request for a URL
/// under a rewrite's `from` goes to its `to` (a port-forward, a local substitute), while every
/// message and report keeps the URL the template wrote.
#[derive(Clone, Default)]
pub struct Http {
    inner: Arc<Clients>,
    rewrites: Arc<Vec<Rewrite>>,
}

#[derive(Default)]
struct Clients {
    verified: OnceLock<reqwest::Client>,
    insecure: OnceLock<reqwest::Client>,
}

/// A request body.
pub enum Body {
    Text(String),
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// One request a provider makes.
pub struct Request<'a> {
    pub method: reqwest::Method,
    pub url: &'a str,
    pub headers: &'a [WebHeader],
    pub body: Option<Body>,
    pub timeout: Duration,
    pub insecure: bool,
    /// The metric's `authentication` block, as written.
    pub authentication: Option<&'a serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Authentication {
    #[serde(default)]
    basic_auth: Option<BasicAuth>,
    #[serde(default)]
    oauth2: Option<OAuth2>,
    #[serde(default)]
    sigv4: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct BasicAuth {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OAuth2 {
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    scopes: Vec<String>,
}

impl Http {
    pub fn with_rewrites(rewrites: Vec<Rewrite>) -> Http {
        Http {
            inner: Arc::default(),
            rewrites: Arc::new(rewrites),
        }
    }

    fn client(&self, insecure: bool) -> &reqwest::Client {
        let (cell, skip_verify) = if insecure {
            (&self.inner.insecure, true)
        } else {
            (&self.inner.verified, false)
        };
        cell.get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .user_agent(concat!("barge/", env!("CARGO_PKG_VERSION")))
                .danger_accept_invalid_certs(skip_verify)
                .build()
                .unwrap_or_default()
        })
    }

    /// Sends the request and returns the body of a 2xx answer; anything else is an error
    /// naming the method, the (redacted) URL and what came back.
    pub async fn send(&self, req: Request<'_>) -> Result<String, MeasureError> {
        let shown = format!("{} {}", req.method, redact_url(req.url));
        let url = reqwest::Url::parse(&barge_core::rewrite::apply(&self.rewrites, req.url))
            .map_err(|e| MeasureError::Invalid(format!("{}: not a URL ({e})", redact_url(req.url))))?;
        let mut builder = self
            .client(req.insecure)
            .request(req.method.clone(), url)
            .timeout(req.timeout);
        for h in req.headers {
            builder = builder.header(h.key.as_str(), h.value.as_str());
        }
        if let Some(auth) = req.authentication.filter(|a| !a.is_null()) {
            let auth: Authentication = serde_json::from_value(auth.clone())
                .map_err(|e| MeasureError::Invalid(format!("authentication: {e}")))?;
            if auth.sigv4.is_some() {
                return Err(MeasureError::Invalid(
                    "authentication.sigv4 (AWS managed Prometheus) is not supported by barge".into(),
                ));
            }
            if let Some(b) = auth.basic_auth {
                if b.username.is_empty() || b.password.is_empty() {
                    return Err(MeasureError::Invalid(
                        "authentication.basicAuth needs both username and password".into(),
                    ));
                }
                builder = builder.basic_auth(b.username, Some(b.password));
            }
            if let Some(o) = auth.oauth2 {
                let token = self.oauth2_token(&o, req.timeout, req.insecure).await?;
                builder = builder.bearer_auth(token);
            }
        }
        builder = match req.body {
            None => builder,
            Some(Body::Text(t)) => builder.body(t),
            Some(Body::Json(j)) => builder.json(&j),
            Some(Body::Form(f)) => builder.form(&f),
        };
        let answer = builder
            .send()
            .await
            .map_err(|e| transport_error(&shown, req.url, &e, req.timeout))?;
        let status = answer.status();
        let body = answer
            .text()
            .await
            .map_err(|e| transport_error(&shown, req.url, &e, req.timeout))?;
        if status.is_success() {
            return Ok(body);
        }
        let snippet: String = body.trim().chars().take(300).collect();
        let msg = format!("{shown}: HTTP {}: {snippet}", status.as_u16());
        Err(match status.as_u16() {
            401 | 403 => MeasureError::Auth(msg),
            408 | 429 | 500..=599 => MeasureError::Transient(msg),
            _ => MeasureError::Invalid(msg),
        })
    }

    /// OAuth2 client credentials (RFC 6749 §4.4), as Rollouts' providers use them.
    async fn oauth2_token(&self, o: &OAuth2, timeout: Duration, insecure: bool) -> Result<String, MeasureError> {
        if o.token_url.is_empty() || o.client_id.is_empty() || o.client_secret.is_empty() {
            return Err(MeasureError::Invalid(
                "authentication.oauth2 needs tokenUrl, clientId and clientSecret".into(),
            ));
        }
        let mut form = vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), o.client_id.clone()),
            ("client_secret".to_string(), o.client_secret.clone()),
        ];
        if !o.scopes.is_empty() {
            form.push(("scope".into(), o.scopes.join(" ")));
        }
        let body = Box::pin(self.send(Request {
            method: reqwest::Method::POST,
            url: &o.token_url,
            headers: &[],
            body: Some(Body::Form(form)),
            timeout,
            insecure,
            authentication: None,
        }))
        .await
        .map_err(|e| MeasureError::Auth(format!("oauth2 token: {e}")))?;
        let token: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| MeasureError::Auth(format!("oauth2 token: the answer is not JSON ({e})")))?;
        token["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| MeasureError::Auth("oauth2 token: the answer has no access_token".into()))
    }
}

fn transport_error(shown: &str, url: &str, e: &reqwest::Error, timeout: Duration) -> MeasureError {
    if e.is_timeout() {
        return MeasureError::Transient(format!("{shown}: no answer within {}s", timeout.as_secs_f64()));
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    // reqwest's text may repeat the URL; keep credentials out of it.
    MeasureError::Transient(format!("{shown}: {}", redact_text(&msg, url, None)))
}
