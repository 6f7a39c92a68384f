//! The API's status for each engine error: a caller's mistake is 4xx, a store that cannot be
//! reached is 503 (try again), not 400.

use axum::http::StatusCode;
use barge_core::authz::{Principal, Role};
use barge_engine::EngineError;
use barge_engine::ops::{self, Call};
use barge_server::api::status_of;

/// Promotes into a Stage that is not defined, as `principal`: what the API would answer.
async fn promote_as(principal: &Principal) -> StatusCode {
    let dir = tempfile::tempdir().unwrap();
    let store = barge_store::Store::open(&barge_testkit::postgres::sqlite_url(&dir))
        .await
        .unwrap();
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text(
        "dev.yaml",
        &barge_testkit::fixtures::dev_stage("        - uses: fake\n"),
    );
    let events = barge_engine::events::EventSink::new(Some(store.clone()), Vec::new());
    let cx = ops::Context {
        store: &store,
        events: &events,
        catalog: &catalog,
        refresh: None,
        health: None,
        principal,
        engine: None,
    };
    let promote = Call::Promote {
        project: None,
        stage: "nope".into(),
        freight: "anything".into(),
        actor: "alice".into(),
        override_reason: None,
    };
    let e = ops::handle(&cx, promote).await.unwrap_err();
    status_of(e.class())
}

#[tokio::test]
async fn an_unknown_stage_is_404() {
    assert_eq!(promote_as(&Principal::local()).await, StatusCode::NOT_FOUND);
}

/// The engine refuses before it looks for the Stage: an anonymous caller may try with a
/// token (401), a viewer's token will never do (403).
#[tokio::test]
async fn a_refused_caller_is_401_without_a_token_and_403_with_one() {
    let anonymous = Principal::anonymous(Role::Viewer).unwrap();
    assert_eq!(promote_as(&anonymous).await, StatusCode::UNAUTHORIZED);
    let viewer = Principal::token("wall", Role::Viewer, None, None).unwrap();
    assert_eq!(promote_as(&viewer).await, StatusCode::FORBIDDEN);
}

/// A PostgreSQL server that was stopped: nothing listens on its port any more.
#[tokio::test]
async fn a_store_that_cannot_be_reached_is_503() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let e = barge_store::Store::open(&format!("postgres://barge@127.0.0.1:{port}/barge"))
        .await
        .unwrap_err();
    let e = EngineError::from(e);
    assert_eq!(status_of(e.class()), StatusCode::SERVICE_UNAVAILABLE, "{e}");
}

#[test]
fn invalid_calls_are_400_and_faults_500() {
    let invalid = EngineError::Invalid("bad alias".into());
    assert_eq!(status_of(invalid.class()), StatusCode::BAD_REQUEST);
    let conflict = EngineError::Conflict("still promoting".into());
    assert_eq!(status_of(conflict.class()), StatusCode::CONFLICT);
    let fault = EngineError::Internal("unreadable".into());
    assert_eq!(status_of(fault.class()), StatusCode::INTERNAL_SERVER_ERROR);
}
