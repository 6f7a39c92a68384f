//! The daemon's HTTP API, for the CLI: `POST /api/v1/call` with an [`ops::Call`] as JSON,
//! behind a bearer token; `GET /healthz` without one. Errors are `{"error": "..."}` with the
//! status the call's failure means (400 invalid, 401, 404, 409 conflict, 500).

use crate::ops;
use crate::serve::Shared;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    shared: Arc<Shared>,
    token: Arc<String>,
}

pub fn router(shared: Arc<Shared>, token: String) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/call", post(call))
        .with_state(Api {
            shared,
            token: Arc::new(token),
        })
}

/// Compares in time independent of where the strings differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({"error": message}))).into_response()
}

async fn call(State(api): State<Api>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(presented.as_bytes(), api.token.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (set BARGE_TOKEN or --token-file to the server's token)".into(),
        );
    }
    let c: ops::Call = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a barge call: {e}")),
    };
    match crate::serve::call(&api.shared, c).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let status = e
                .downcast_ref::<ops::CallError>()
                .and_then(|c| StatusCode::from_u16(c.status).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            error(status, format!("{e:#}"))
        }
    }
}
