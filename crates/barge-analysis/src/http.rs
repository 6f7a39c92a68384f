//! The HTTP layer both providers share: headers, per-request timeouts, `insecure` (TLS
//! verification off), authentication (`basicAuth`, `oauth2` client credentials, a URL's
//! userinfo) and the classification of failures, so Prometheus and web metrics behave alike.

use crate::MeasureError;
use barge_core::model::analysis::WebHeader;
use barge_core::rewrite::Rewrite;
use barge_core::secret::{Credentials, UrlCredentials, redact_text, redact_url};
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
    /// The credentials the definitions wrote in their URLs (taken out when they were loaded):
    /// a request to a URL that is or extends one of them sends them as basic auth.
    url_credentials: Arc<UrlCredentials>,
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

#[derive(Deserialize, Default)]
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
            rewrites: Arc::new(rewrites),
            ..Http::default()
        }
    }

    /// These clients, sending the credentials the definitions wrote in their URLs
    /// (`barge_core::Catalog::url_credentials`) to the URLs they belong to.
    pub fn with_url_credentials(&self, url_credentials: UrlCredentials) -> Http {
        Http {
            url_credentials: Arc::new(url_credentials),
            ..self.clone()
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
        let (bare, in_url) =
            barge_core::secret::request_credentials(req.url, |u| self.url_credentials.for_request(u).cloned());
        let url = reqwest::Url::parse(&barge_core::rewrite::apply(&self.rewrites, &bare))
            .map_err(|e| MeasureError::Invalid(format!("{}: not a URL ({e})", redact_url(req.url))))?;
        let mut builder = self
            .client(req.insecure)
            .request(req.method.clone(), url)
            .timeout(req.timeout);
        for h in req.headers {
            builder = builder.header(h.key.as_str(), h.value.as_str());
        }
        let auth: Authentication = match req.authentication.filter(|a| !a.is_null()) {
            Some(auth) => serde_json::from_value(auth.clone())
                .map_err(|e| MeasureError::Invalid(format!("authentication: {e}")))?,
            None => Authentication::default(),
        };
        if auth.sigv4.is_some() {
            return Err(MeasureError::Invalid(
                "authentication.sigv4 (AWS managed Prometheus) is not supported by barge".into(),
            ));
        }
        let basic_auth = match auth.basic_auth {
            Some(b) if b.username.is_empty() || b.password.is_empty() => {
                return Err(MeasureError::Invalid(
                    "authentication.basicAuth needs both username and password".into(),
                ));
            }
            Some(b) => Some(Credentials {
                username: b.username,
                password: b.password,
            }),
            None => None,
        };
        // One Authorization header, chosen as Rollouts' Prometheus client chooses it
        // (metricproviders/prometheus/prometheus.go, NewPrometheusAPI): a header the metric
        // sets wins; then an oauth2 token; then the URL's userinfo (Go's http.Client sends it
        // unless a header is set, and the basicAuth round tripper then adds nothing); then
        // basicAuth.
        let header_set = req.headers.iter().any(|h| h.key.eq_ignore_ascii_case("authorization"));
        if !header_set {
            if let Some(o) = auth.oauth2 {
                let token = self.oauth2_token(&o, req.timeout, req.insecure).await?;
                builder = builder.bearer_auth(token);
            } else if let Some(c) = in_url.or(basic_auth) {
                builder = builder.basic_auth(c.username, Some(c.password));
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
