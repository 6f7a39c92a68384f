//! Sending one message to one channel: a Slack-compatible incoming webhook, a generic HTTP
//! receiver (JSON, optionally HMAC-signed) or SMTP. The one sender both the notification
//! outbox's delivery (barge-engine) and the `send-message` step use. Every failure has a
//! class (what the retry policy decides on) and a message that never carries a channel's URL,
//! key or password.

use barge_core::ErrorClass;
use barge_core::notify::{DELIVERY_HEADER, Destination, Message, SIGNATURE_HEADER, SmtpTls};
use std::time::Duration;

/// No send waits longer: a dead channel costs its delivery task this much, never a promotion.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct SendError {
    pub class: ErrorClass,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl SendError {
    fn new(class: ErrorClass, message: impl Into<String>) -> SendError {
        SendError {
            class,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl barge_core::retry::Failure for SendError {
    fn class(&self) -> ErrorClass {
        self.class
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// Sends `message` (notification `id`, the same on every attempt) to `to`.
pub async fn send(http: &reqwest::Client, to: &Destination, id: &str, message: &Message) -> Result<(), SendError> {
    match to {
        Destination::Slack { url, channel } => {
            let body = barge_core::notify::slack_body(message, channel.as_deref())
                .map_err(|e| SendError::new(ErrorClass::Invalid, e))?;
            post(
                http,
                url,
                "slack",
                serde_json::to_vec(&body).unwrap_or_default(),
                id,
                None,
            )
            .await
        }
        Destination::Webhook { url, signing_key } => {
            let body =
                barge_core::notify::webhook_body(id, message).map_err(|e| SendError::new(ErrorClass::Invalid, e))?;
            post(
                http,
                url,
                "webhook",
                serde_json::to_vec(&body).unwrap_or_default(),
                id,
                signing_key.as_deref(),
            )
            .await
        }
        Destination::Smtp {
            host,
            port,
            tls,
            from,
            to,
            login,
        } => {
            let to = if message.to.is_empty() { to } else { &message.to };
            smtp(host, *port, *tls, from, to, login.as_ref(), id, message).await
        }
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    body: Vec<u8>,
    id: &str,
    signing_key: Option<&str>,
) -> Result<(), SendError> {
    let mut request = http
        .post(url)
        .timeout(SEND_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, id);
    if let Some(key) = signing_key {
        request = request.header(SIGNATURE_HEADER, barge_core::notify::signature(key, &body));
    }
    // A Slack webhook's URL is its secret: no error names it.
    let response = request.body(body).send().await.map_err(|e| {
        SendError::new(
            ErrorClass::Transient,
            format!("{what} channel: the request failed: {}", e.without_url()),
        )
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let class = match status.as_u16() {
        429 => ErrorClass::RateLimited,
        408 | 500..=599 => ErrorClass::Transient,
        401 => ErrorClass::Auth,
        403 => ErrorClass::Forbidden,
        404 | 410 => ErrorClass::NotFound,
        _ => ErrorClass::Invalid,
    };
    Err(SendError {
        class,
        message: format!("{what} channel answered {status}"),
        retry_after,
    })
}

#[allow(clippy::too_many_arguments)]
async fn smtp(
    host: &str,
    port: u16,
    tls: SmtpTls,
    from: &str,
    to: &[String],
    login: Option<&(String, String)>,
    id: &str,
    message: &Message,
) -> Result<(), SendError> {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let invalid = |m: String| SendError::new(ErrorClass::Invalid, m);
    if to.is_empty() {
        return Err(invalid(
            "smtp channel: no recipients (the channel's `to` or the step's `smtp.to`)".into(),
        ));
    }
    let mut mail = lettre::Message::builder()
        .from(
            from.parse()
                .map_err(|e| invalid(format!("smtp channel: from {from:?}: {e}")))?,
        )
        .subject(message.subject.clone().unwrap_or_default())
        // The notification's id: a receiver (or a person) can tell a repeated delivery.
        .message_id(Some(format!("<{id}@barge>")))
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for address in to {
        mail = mail.to(address
            .parse()
            .map_err(|e| invalid(format!("smtp channel: recipient {address:?}: {e}")))?);
    }
    let mail = mail
        .body(message.text.clone())
        .map_err(|e| invalid(format!("smtp channel: {e}")))?;
    // The process's rustls provider (ring) is the one lettre uses (`rustls-no-provider`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = match tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| invalid(format!("smtp channel: {e}")))?,
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| invalid(format!("smtp channel: {e}")))?
        }
    };
    let mut builder = builder.port(port).timeout(Some(SEND_TIMEOUT));
    if let Some((user, password)) = login {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            password.clone(),
        ));
    }
    let transport = builder.build();
    transport.send(mail).await.map(|_| ()).map_err(|e| {
        // A 5xx reply is the server refusing for good; anything else (connection, timeout,
        // 4xx) may pass.
        let class = if e.is_permanent() {
            ErrorClass::Invalid
        } else {
            ErrorClass::Transient
        };
        SendError::new(class, format!("smtp channel {host}:{port}: {e}"))
    })
}
