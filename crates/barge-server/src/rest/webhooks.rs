//! `GET /api/v1/webhooks`: the webhook receivers `barge serve` answers (issue #18), for
//! `barge get webhooks --server` and the UI.

use super::{Answered, Caller, Filters, Items, Problem, list, run, unexpected};
use crate::api::Api;
use barge_engine::Answer;
use barge_engine::answer::WebhookInfo;
use barge_engine::ops::Call;

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct WebhookFilters {
    /// Only this project's receivers (a token limited to a project sees only its own).
    project: Option<String>,
}

/// Readers may list them: a receiver's path is derived from its secret without revealing it,
/// and Kargo shows it to the project's readers in ProjectConfig's status.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "barge", params(WebhookFilters), responses((status = 200, description = "Each receiver's project (empty for ClusterConfig's), name, provider and the path it is served at", body = Items<WebhookInfo>), (status = "4XX", description = "Refused: `code` is the error's class", body = Problem), (status = "5XX", description = "The server's trouble (503: try again)", body = Problem)))]
pub(super) async fn webhooks(
    api: axum::extract::State<Api>,
    Caller(caller): Caller,
    Filters(filters): Filters<WebhookFilters>,
) -> Answered {
    match run(
        &api,
        &caller,
        Call::GetWebhooks {
            project: filters.project,
        },
    )
    .await?
    {
        Answer::Webhooks(w) => list(w, None),
        other => Err(unexpected(&other)),
    }
}
