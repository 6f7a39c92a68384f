//! Inbound webhooks without the IO: which receivers the definitions configure and at which
//! URL path (Kargo's scheme, so a URL registered with a forge or registry keeps working after
//! a move from Kargo), whether a delivery is authentic, what it says was pushed, and which
//! Warehouses that wakes. The daemon (barge-server's `webhook.rs`) does the HTTP.
//!
//! Sources: Kargo's `pkg/webhook/external/` (receiver.go for the path, one file per provider
//! for the secret keys, headers and payload fields) and the providers' documented payloads.

use crate::Catalog;
use crate::eval::WebhookRequest;
use crate::model::Body;
use crate::model::kargo::{GenericAction, LocalRef, TargetSelection, WebhookReceiver};
use hmac::{KeyInit as _, Mac as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// barge's secret store: values by secret name and key (the configuration's `secrets`).
pub type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// The prefix of every receiver's path.
pub const PATH_PREFIX: &str = "/webhook";

/// A sender barge understands: the key a receiver is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    Artifactory,
    Azure,
    Bitbucket,
    DockerHub,
    Gitea,
    GitHub,
    GitLab,
    Harbor,
    Quay,
    Generic,
    /// The CNCF distribution registry's notifications (barge's own; Kargo has none).
    Distribution,
}

impl Provider {
    pub const ALL: [Provider; 11] = [
        Provider::Artifactory,
        Provider::Azure,
        Provider::Bitbucket,
        Provider::DockerHub,
        Provider::Gitea,
        Provider::GitHub,
        Provider::GitLab,
        Provider::Harbor,
        Provider::Quay,
        Provider::Generic,
        Provider::Distribution,
    ];

    /// The configuration key, which is also the URL's provider segment (Kargo's receiver type).
    pub fn key(self) -> &'static str {
        match self {
            Provider::Artifactory => "artifactory",
            Provider::Azure => "azure",
            Provider::Bitbucket => "bitbucket",
            Provider::DockerHub => "dockerhub",
            Provider::Gitea => "gitea",
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Harbor => "harbor",
            Provider::Quay => "quay",
            Provider::Generic => "generic",
            Provider::Distribution => "distribution",
        }
    }

    pub fn from_key(key: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.key() == key)
    }

    /// The secret's key whose value authenticates deliveries and enters the URL's hash
    /// (Kargo's `*SecretDataKey`).
    pub fn secret_key(self) -> &'static str {
        match self {
            Provider::GitLab | Provider::Artifactory => "secret-token",
            Provider::Harbor => "auth-header",
            _ => "secret",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The provider keys a receiver sets, with each one's secretRef.
pub fn providers(r: &WebhookReceiver) -> Vec<(Provider, Option<&LocalRef>)> {
    fn secret(s: &Option<crate::model::kargo::ReceiverSecret>) -> Option<Option<&LocalRef>> {
        s.as_ref().map(|s| s.secret_ref.as_ref())
    }
    [
        (
            Provider::Artifactory,
            r.artifactory.as_ref().map(|a| a.secret_ref.as_ref()),
        ),
        (Provider::Azure, secret(&r.azure)),
        (Provider::Bitbucket, secret(&r.bitbucket)),
        (Provider::DockerHub, secret(&r.dockerhub)),
        (Provider::Gitea, secret(&r.gitea)),
        (Provider::GitHub, secret(&r.github)),
        (Provider::GitLab, secret(&r.gitlab)),
        (Provider::Harbor, secret(&r.harbor)),
        (Provider::Quay, secret(&r.quay)),
        (Provider::Generic, r.generic.as_ref().map(|g| g.secret_ref.as_ref())),
        (Provider::Distribution, secret(&r.distribution)),
    ]
    .into_iter()
    .filter_map(|(p, set)| set.map(|secret_ref| (p, secret_ref)))
    .collect()
}

/// Kargo's `buildWebhookPath`: `/<provider>/<hex SHA-256 of project + receiver name + the
/// secret's values>`, under barge's [`PATH_PREFIX`]. A ClusterConfig's receivers have an
/// empty project, as in Kargo.
pub fn receiver_path(project: &str, provider: Provider, name: &str, secret_values: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(project.as_bytes());
    h.update(name.as_bytes());
    for v in secret_values {
        h.update(v.as_bytes());
    }
    format!("{PATH_PREFIX}/{}/{}", provider.key(), hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A configured receiver with its secret's value resolved.
#[derive(Clone)]
pub struct Receiver {
    /// The ProjectConfig's project; empty for a ClusterConfig's receiver (all projects).
    pub project: String,
    pub name: String,
    pub provider: Provider,
    /// `/webhook/<provider>/<hash>`.
    pub path: String,
    /// The value of the secret's [`Provider::secret_key`].
    secret: String,
    /// Artifactory: the virtual repository Warehouses subscribe through.
    pub virtual_repo: Option<String>,
    /// Generic: what a delivery does.
    pub actions: Vec<GenericAction>,
}

/// A receiver as `barge get webhooks` lists it (never its secret).
#[derive(Debug, serde::Serialize)]
pub struct Listing<'a> {
    pub project: &'a str,
    pub name: &'a str,
    pub provider: &'static str,
    /// The path barge serves it at.
    pub url: &'a str,
}

impl Receiver {
    pub fn listing(&self) -> Listing<'_> {
        Listing {
            project: &self.project,
            name: &self.name,
            provider: self.provider.key(),
            url: &self.path,
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("project", &self.project)
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("path", &self.path)
            .field("secret", &"***")
            .finish()
    }
}

/// Every receiver the definitions configure, resolved against the secret store; a receiver
/// whose secret is missing is left out and described in the second list (without values).
pub fn receivers(catalog: &Catalog, secrets: &Secrets) -> (Vec<Receiver>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for r in &catalog.resources {
        let (project, list, owner) = match &r.body {
            Some(Body::ProjectConfig(pc)) => (
                if r.project.is_empty() {
                    r.name.clone()
                } else {
                    r.project.clone()
                },
                pc.spec.as_ref().map(|s| &s.webhook_receivers),
                "ProjectConfig",
            ),
            Some(Body::ClusterConfig(cc)) => (
                String::new(),
                cc.spec.as_ref().map(|s| &s.webhook_receivers),
                "ClusterConfig",
            ),
            _ => continue,
        };
        for w in list.into_iter().flatten() {
            // Validation reports a receiver without exactly one provider or a secretRef.
            let [(provider, Some(secret_ref))] = providers(w)[..] else {
                continue;
            };
            let key = provider.secret_key();
            let Some(secret) = secrets.get(&secret_ref.name).and_then(|s| s.get(key)) else {
                problems.push(format!(
                    "{owner} {:?} webhook receiver {:?}: secret {:?} has no key {key:?} in barge's secret store (the configuration's `secrets`)",
                    r.name, w.name, secret_ref.name
                ));
                continue;
            };
            found.push(Receiver {
                path: receiver_path(&project, provider, &w.name, &[secret]),
                project: project.clone(),
                name: w.name.clone(),
                provider,
                secret: secret.clone(),
                virtual_repo: w.artifactory.as_ref().and_then(|a| a.virtual_repo_name.clone()),
                actions: w.generic.as_ref().map(|g| g.actions.clone()).unwrap_or_default(),
            });
        }
    }
    (found, problems)
}

/// Why a delivery was refused; its HTTP status is [`Refusal::status`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// Missing or wrong signature or token: never says which.
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Unauthorized => 401,
            Refusal::BadRequest(_) => 400,
        }
    }
}

/// What an authentic delivery asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The sender's id for the delivery, when it sends one: a repeat is not acted on twice.
    pub id: Option<String>,
    /// Git repositories pushed to (as sent; normalised when matched).
    pub git: Vec<String>,
    /// Image (or OCI chart) repositories pushed to.
    pub images: Vec<String>,
    /// The tags pushed, when the sender names them: an image subscription whose selection
    /// (strategy, constraint, allow/ignore) takes none of them is not woken (Kargo's
    /// `shouldRefresh`). Empty: every subscribed Warehouse.
    pub tags: Vec<String>,
    /// The git ref pushed (`refs/heads/main`, `refs/tags/v1.0.0`), when the sender names it:
    /// a subscription following another branch, or tags when a branch moved, is not woken.
    pub git_ref: Option<String>,
    /// The paths a git push changed, when the sender lists them all: Warehouses whose
    /// include/exclude paths match none of them are not woken.
    pub changed_paths: Option<Vec<String>>,
    /// A pull (merge) request that was merged or closed, by its web URL as the sender wrote
    /// it: promotions waiting for it may go on (compared by [`pull_request_key`]).
    pub closed_pull_request: Option<String>,
    /// Why nothing is refreshed (a ping, an event or action that changes nothing).
    pub ignored: Option<String>,
}

impl Delivery {
    fn ignored(why: impl Into<String>) -> Delivery {
        Delivery {
            ignored: Some(why.into()),
            ..Delivery::default()
        }
    }
}

/// A request's header by (case-insensitive) name.
pub type Headers<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Authenticates a delivery and reads what it says was pushed.
pub fn receive(receiver: &Receiver, header: Headers<'_>, body: &[u8]) -> Result<Delivery, Refusal> {
    authenticate(receiver, header, body)?;
    let json = |body: &[u8]| -> Result<Value, Refusal> {
        serde_json::from_slice(body).map_err(|e| Refusal::BadRequest(format!("the body is not JSON: {e}")))
    };
    match receiver.provider {
        Provider::GitHub => github(header, &json(body)?),
        Provider::Distribution => distribution(&json(body)?),
        Provider::GitLab => gitlab(header, &json(body)?),
        Provider::Gitea => gitea(header, &json(body)?),
        Provider::Bitbucket => bitbucket(header, &json(body)?),
        Provider::DockerHub => dockerhub(&json(body)?),
        Provider::Quay => quay(&json(body)?),
        Provider::Harbor => harbor(&json(body)?),
        Provider::Azure => azure(&json(body)?),
        Provider::Artifactory => artifactory(receiver, header, &json(body)?),
        // Its actions decide what to do ([`generic_request`], [`generic_actions`]).
        Provider::Generic => Err(Refusal::BadRequest(
            "a generic receiver's delivery is read by generic_request".into(),
        )),
    }
}

/// Each sender's proof: an HMAC of the body, a token header, or (Docker Hub, Quay, Azure,
/// generic) the secret in the URL alone, which the caller matched already.
fn authenticate(receiver: &Receiver, header: Headers<'_>, body: &[u8]) -> Result<(), Refusal> {
    let secret = receiver.secret.as_bytes();
    let given = |name: &str| header(name).ok_or(Refusal::Unauthorized);
    let ok = match receiver.provider {
        // GitHub: `sha256=<hex HMAC-SHA256>`; Bitbucket Cloud sends the same form in
        // `X-Hub-Signature`.
        Provider::GitHub => hmac_matches(secret, body, &given("x-hub-signature-256")?, "sha256="),
        // Gitea signs every delivery three ways with one HMAC-SHA256 (services/webhook/
        // deliver.go): `X-Hub-Signature-256: sha256=<hex>` (Kargo reads this one),
        // `X-Gitea-Signature: <hex>` and `X-Gogs-Signature: <hex>`; Forgejo, Gitea before
        // the GitHub-style header, and Gogs send only the bare ones. The first present is
        // checked.
        Provider::Gitea => match header("x-hub-signature-256") {
            Some(sig) => hmac_matches(secret, body, &sig, "sha256="),
            None => hmac_matches(
                secret,
                body,
                &header("x-gitea-signature")
                    .or_else(|| header("x-gogs-signature"))
                    .ok_or(Refusal::Unauthorized)?,
                "",
            ),
        },
        Provider::Bitbucket => hmac_matches(secret, body, &given("x-hub-signature")?, "sha256="),
        // Artifactory: the bare hex HMAC-SHA256.
        Provider::Artifactory => hmac_matches(secret, body, &given("x-jfrog-event-auth")?, ""),
        Provider::GitLab => same(given("x-gitlab-token")?.as_bytes(), secret),
        Provider::Harbor | Provider::Distribution => same(given("authorization")?.as_bytes(), secret),
        Provider::DockerHub | Provider::Quay | Provider::Azure | Provider::Generic => true,
    };
    if ok { Ok(()) } else { Err(Refusal::Unauthorized) }
}

pub(crate) fn hmac_matches(secret: &[u8], body: &[u8], signature: &str, prefix: &str) -> bool {
    let Some(hex_sig) = signature.trim().strip_prefix(prefix) else {
        return false;
    };
    let Some(sig) = unhex(hex_sig) else { return false };
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&sig).is_ok()
}

/// The HMAC-SHA256 of `body` in hex, as senders sign (for tests and documentation).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

/// What a pull request's web URL is compared by, between the step waiting on it (the URL the
/// forge's API answered) and a delivery announcing it (the URL the webhook carries): without
/// a user name or password (Azure DevOps' `remoteUrl` names the organisation), query or
/// fragment, or trailing `/`, in lower case (forges' owner and repository names are not
/// case-sensitive). Two spellings of one PR meet; a wrong match only costs a check.
pub fn pull_request_key(url: &str) -> String {
    let url = url.trim();
    let url = url.split(['#', '?']).next().unwrap_or_default().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let key = if scheme.is_empty() {
        format!("{host}/{path}")
    } else {
        format!("{scheme}://{host}/{path}")
    };
    key.trim_end_matches('/').to_lowercase()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Compares in time independent of where the values differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn texts(v: &Value, pointers: &[&str]) -> Vec<String> {
    pointers.iter().filter_map(|p| text(v, p)).collect()
}

/// The paths a list of commits added, modified or removed (GitHub, Gitea, GitLab), or
/// `None` when the list is GitHub's truncated one (2048 commits at most): then every
/// subscribed Warehouse is woken, as Kargo does.
fn changed_paths(payload: &Value) -> Option<Vec<String>> {
    let commits: Vec<&Value> = payload
        .get("commits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(payload.get("head_commit").filter(|c| c.is_object()))
        .collect();
    if commits.len() > 2048 {
        return None;
    }
    let mut paths: Vec<String> = commits
        .iter()
        .flat_map(|c| ["added", "modified", "removed"].map(|k| c.get(k)))
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    paths.sort();
    paths.dedup();
    Some(paths)
}

fn bad(what: &str) -> Refusal {
    Refusal::BadRequest(format!("invalid request body: {what}"))
}

/// GitHub: `push` (the repository's clone and SSH URLs and the changed paths),
/// `package`/`registry_package` (GHCR container images), `pull_request` closed, `ping`
/// (https://docs.github.com/en/webhooks/webhook-events-and-payloads).
fn github(header: Headers<'_>, payload: &Value) -> Result<Delivery, Refusal> {
    let id = header("x-github-delivery");
    let event = header("x-github-event").unwrap_or_default();
    let mut d = match event.as_str() {
        "ping" => Delivery::ignored("ping event received, webhook is configured correctly"),
        "push" => Delivery {
            git: texts(payload, &["/repository/clone_url", "/repository/ssh_url"]),
            git_ref: text(payload, "/ref"),
            changed_paths: changed_paths(payload),
            ..Delivery::default()
        },
        "package" | "registry_package" => {
            let action = text(payload, "/action").unwrap_or_default();
            if action != "published" && action != "updated" {
                return Ok(Delivery::ignored(format!("package action {action:?} changes nothing")));
            }
            let package = payload
                .get(event.as_str())
                .filter(|p| p.is_object())
                .ok_or_else(|| bad(&event))?;
            let version = package
                .get("package_version")
                .filter(|v| v.is_object())
                .ok_or_else(|| bad("package_version"))?;
            match text(package, "/package_type").as_deref() {
                Some("CONTAINER" | "docker") => {}
                other => return Ok(Delivery::ignored(format!("package type {other:?} is not an image"))),
            }
            // GitHub sometimes sends `ghcr.io/owner/image:` with no tag (Kargo trims it too).
            let url = text(version, "/package_url").ok_or_else(|| bad("package_url"))?;
            Delivery {
                images: vec![url.trim_end_matches(':').to_string()],
                tags: text(version, "/container_metadata/tag/name").into_iter().collect(),
                ..Delivery::default()
            }
        }
        "pull_request" => {
            if text(payload, "/action").as_deref() != Some("closed") {
                return Ok(Delivery::ignored("only closed pull requests matter"));
            }
            Delivery {
                closed_pull_request: Some(text(payload, "/pull_request/html_url").ok_or_else(|| bad("html_url"))?),
                ..Delivery::default()
            }
        }
        other => return Err(Refusal::BadRequest(format!("event type {other:?} is not supported"))),
    };
    d.id = id;
    Ok(d)
}

/// The distribution registry's notification envelope
/// (https://distribution.github.io/distribution/about/notifications/): every `push` event's
/// repository, on the host the pusher addressed. Pulls and deletes change nothing.
fn distribution(payload: &Value) -> Result<Delivery, Refusal> {
    let events = payload
        .get("events")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("events"))?;
    let mut d = Delivery::default();
    let mut ids = Vec::new();
    for e in events {
        if let Some(id) = text(e, "/id") {
            ids.push(id);
        }
        if text(e, "/action").as_deref() != Some("push") {
            continue;
        }
        let (Some(host), Some(repo)) = (text(e, "/request/host"), text(e, "/target/repository")) else {
            return Err(bad("a push event without request.host or target.repository"));
        };
        d.images.push(format!("{host}/{repo}"));
        d.tags.extend(text(e, "/target/tag"));
    }
    if d.images.is_empty() {
        d.ignored = Some("no push events".into());
    }
    // The registry retries a whole envelope: its events' ids together identify it.
    d.id = (!ids.is_empty()).then(|| ids.join(","));
    Ok(d)
}

/// GitLab: push and tag push hooks, and merge request hooks
/// (https://docs.gitlab.com/user/project/integrations/webhook_events/): a merge request
/// merged or closed (`object_attributes.action` `merge` or `close`) is announced by its web
/// URL, `object_attributes.url` (the API's `web_url`). An instance's system hook sends the
/// same merge request body with `X-Gitlab-Event: System Hook`; its `object_kind` says so.
fn gitlab(header: Headers<'_>, payload: &Value) -> Result<Delivery, Refusal> {
    let id = header("x-gitlab-event-uuid");
    let event = header("x-gitlab-event");
    let kind = text(payload, "/object_kind");
    match (event.as_deref(), kind.as_deref()) {
        (Some("Push Hook" | "Tag Push Hook"), _) => Ok(Delivery {
            id,
            git: texts(payload, &["/project/git_http_url", "/project/git_ssh_url"]),
            git_ref: text(payload, "/ref"),
            changed_paths: changed_paths(payload),
            ..Delivery::default()
        }),
        (Some("Merge Request Hook" | "System Hook"), Some("merge_request")) => {
            let action = text(payload, "/object_attributes/action").unwrap_or_default();
            if action != "merge" && action != "close" {
                return Ok(Delivery::ignored(format!(
                    "merge request action {action:?}: only merged or closed merge requests matter"
                )));
            }
            Ok(Delivery {
                id,
                closed_pull_request: Some(
                    text(payload, "/object_attributes/url").ok_or_else(|| bad("object_attributes.url"))?,
                ),
                ..Delivery::default()
            })
        }
        (other, _) => Err(Refusal::BadRequest(format!("event type {other:?} is not supported"))),
    }
}

/// Gitea (and Gogs, whose headers Gitea sends too): push and pull_request
/// (https://docs.gitea.com/usage/webhooks), GitHub's payload shapes. A pull request merged or
/// closed is `action: closed` (`pull_request.merged` tells which), announced by its
/// `pull_request.html_url`.
fn gitea(header: Headers<'_>, payload: &Value) -> Result<Delivery, Refusal> {
    let id = header("x-gitea-delivery").or_else(|| header("x-gogs-delivery"));
    match header("x-gitea-event").or_else(|| header("x-gogs-event")).as_deref() {
        Some("push") => Ok(Delivery {
            id,
            git: texts(payload, &["/repository/clone_url", "/repository/ssh_url"]),
            git_ref: text(payload, "/ref"),
            changed_paths: changed_paths(payload),
            ..Delivery::default()
        }),
        Some("pull_request") => {
            if text(payload, "/action").as_deref() != Some("closed") {
                return Ok(Delivery::ignored("only closed pull requests matter"));
            }
            Ok(Delivery {
                id,
                closed_pull_request: Some(text(payload, "/pull_request/html_url").ok_or_else(|| bad("html_url"))?),
                ..Delivery::default()
            })
        }
        other => Err(Refusal::BadRequest(format!("event type {other:?} is not supported"))),
    }
}

/// Bitbucket Cloud: `repo:push`, `pullrequest:fulfilled` (merged) and `pullrequest:rejected`
/// (declined) (https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/); the
/// repository's web URL is its clone URL without `.git`, a pull request's is
/// `pullrequest.links.html.href`.
fn bitbucket(header: Headers<'_>, payload: &Value) -> Result<Delivery, Refusal> {
    match header("x-event-key").as_deref() {
        Some("repo:push") => Ok(Delivery {
            id: header("x-request-uuid"),
            git: texts(payload, &["/repository/links/html/href"]),
            // The first change's new branch or tag.
            git_ref: match (
                text(payload, "/push/changes/0/new/type"),
                text(payload, "/push/changes/0/new/name"),
            ) {
                (Some(kind), Some(name)) if kind == "branch" => Some(format!("refs/heads/{name}")),
                (Some(kind), Some(name)) if kind == "tag" => Some(format!("refs/tags/{name}")),
                _ => None,
            },
            ..Delivery::default()
        }),
        // Merged, or declined.
        Some("pullrequest:fulfilled" | "pullrequest:rejected") => Ok(Delivery {
            id: header("x-request-uuid"),
            closed_pull_request: Some(
                text(payload, "/pullrequest/links/html/href").ok_or_else(|| bad("pullrequest.links.html.href"))?,
            ),
            ..Delivery::default()
        }),
        Some(event) if event.starts_with("pullrequest:") => {
            Ok(Delivery::ignored("only merged or declined pull requests matter"))
        }
        Some("diagnostics:ping") => Ok(Delivery::ignored("ping event received")),
        other => Err(Refusal::BadRequest(format!("event type {other:?} is not supported"))),
    }
}

/// Docker Hub: `repository.repo_name` (https://docs.docker.com/docker-hub/repos/manage/webhooks/).
fn dockerhub(payload: &Value) -> Result<Delivery, Refusal> {
    Ok(Delivery {
        images: vec![text(payload, "/repository/repo_name").ok_or_else(|| bad("repository.repo_name"))?],
        tags: text(payload, "/push_data/tag").into_iter().collect(),
        ..Delivery::default()
    })
}

/// Quay: `docker_url` of a repository push (https://docs.quay.io/guides/notifications.html).
fn quay(payload: &Value) -> Result<Delivery, Refusal> {
    Ok(Delivery {
        images: vec![text(payload, "/docker_url").ok_or_else(|| bad("docker_url"))?],
        tags: payload
            .get("updated_tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        ..Delivery::default()
    })
}

/// Harbor: `PUSH_ARTIFACT` events' resource URLs (https://goharbor.io/docs/main/working-with-projects/project-configuration/configure-webhooks/).
fn harbor(payload: &Value) -> Result<Delivery, Refusal> {
    if text(payload, "/type").as_deref() != Some("PUSH_ARTIFACT") {
        return Ok(Delivery::ignored("only PUSH_ARTIFACT events refresh"));
    }
    let resources = payload
        .pointer("/event_data/resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let images: Vec<String> = resources.clone().filter_map(|r| text(r, "/resource_url")).collect();
    let tags = resources.filter_map(|r| text(r, "/tag")).collect();
    if images.is_empty() {
        return Err(bad("event_data.resources[].resource_url"));
    }
    Ok(Delivery {
        images,
        tags,
        ..Delivery::default()
    })
}

/// Azure Container Registry: `push` events, `request.host` + `target.repository`
/// (https://learn.microsoft.com/azure/container-registry/container-registry-webhook-reference).
/// Azure DevOps (Azure Repos) sends service hooks with an `eventType`
/// (https://learn.microsoft.com/azure/devops/service-hooks/events): `git.push` names the
/// repository's `remoteUrl`; `git.pullrequest.merged` (a merge commit was made), and
/// `git.pullrequest.updated` with `status` `completed` or `abandoned`, name a pull request
/// that the web URL `<remoteUrl>/pullrequest/<pullRequestId>` shows (`remoteUrl` may carry
/// the organisation as a user name, which [`pull_request_key`] drops).
fn azure(payload: &Value) -> Result<Delivery, Refusal> {
    if let Some(event) = text(payload, "/eventType") {
        let remote =
            || text(payload, "/resource/repository/remoteUrl").ok_or_else(|| bad("resource.repository.remoteUrl"));
        return match event.as_str() {
            "git.push" => Ok(Delivery {
                id: text(payload, "/id"),
                git: vec![remote()?],
                git_ref: text(payload, "/resource/refUpdates/0/name"),
                ..Delivery::default()
            }),
            "git.pullrequest.updated"
                if !matches!(
                    text(payload, "/resource/status").as_deref(),
                    Some("completed" | "abandoned")
                ) =>
            {
                Ok(Delivery::ignored("only completed or abandoned pull requests matter"))
            }
            "git.pullrequest.merged" | "git.pullrequest.updated" => {
                let number = payload
                    .pointer("/resource/pullRequestId")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| bad("resource.pullRequestId"))?;
                Ok(Delivery {
                    id: text(payload, "/id"),
                    closed_pull_request: Some(format!("{}/pullrequest/{number}", remote()?.trim_end_matches('/'))),
                    ..Delivery::default()
                })
            }
            _ => Ok(Delivery::ignored(format!("event type {event:?} changes nothing"))),
        };
    }
    match text(payload, "/action").as_deref() {
        Some("push" | "chart_push") => {
            let (Some(host), Some(repo)) = (text(payload, "/request/host"), text(payload, "/target/repository")) else {
                return Err(bad("request.host or target.repository"));
            };
            Ok(Delivery {
                id: text(payload, "/id"),
                images: vec![format!("{host}/{repo}")],
                tags: text(payload, "/target/tag").into_iter().collect(),
                ..Delivery::default()
            })
        }
        Some("ping") => Ok(Delivery::ignored("ping event received")),
        other => Ok(Delivery::ignored(format!("action {other:?} changes nothing"))),
    }
}

/// JFrog Artifactory: docker `pushed` events
/// (https://jfrog.com/help/r/jfrog-platform-administration-documentation/event-payloads):
/// the image on the host the `X-JFrog-Origin` (or `Origin`) header names, through the configured virtual
/// repository when there is one.
fn artifactory(receiver: &Receiver, header: Headers<'_>, payload: &Value) -> Result<Delivery, Refusal> {
    if text(payload, "/domain").as_deref() != Some("docker")
        || text(payload, "/event_type").as_deref() != Some("pushed")
    {
        return Ok(Delivery::ignored("only docker pushed events refresh"));
    }
    let origin = header("x-jfrog-origin").or_else(|| header("origin"));
    let (Some(repo_key), Some(image)) = (text(payload, "/data/repo_key"), text(payload, "/data/image_name")) else {
        return Err(bad("data.repo_key or data.image_name"));
    };
    let Some(origin) = origin else {
        return Err(bad("no origin header naming the Artifactory host"));
    };
    let host = origin
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let repo = receiver.virtual_repo.clone().unwrap_or(repo_key);
    Ok(Delivery {
        images: vec![format!("{host}/{repo}/{image}")],
        tags: text(payload, "/data/tag").into_iter().collect(),
        ..Delivery::default()
    })
}

/// The Warehouses a delivery wakes: those (of the receiver's project; every project for a
/// ClusterConfig's receiver) subscribed to a pushed repository, compared as Freight IDs
/// compare URLs; a git subscription with include/exclude paths only when a changed path
/// passes them.
pub fn warehouses(catalog: &Catalog, project: &str, d: &Delivery) -> Vec<(String, String)> {
    let git: Vec<String> = d.git.iter().map(|u| crate::freight::normalize_git(u)).collect();
    let images: Vec<String> = d.images.iter().map(|u| crate::freight::normalize_image(u)).collect();
    let charts: Vec<String> = d.images.iter().map(|u| crate::freight::normalize_chart(u)).collect();
    let mut out = Vec::new();
    for r in &catalog.resources {
        let Some(Body::Warehouse(w)) = &r.body else { continue };
        if !project.is_empty() && r.project != project {
            continue;
        }
        let subscribed = w.spec.iter().flat_map(|s| &s.subscriptions).any(|s| {
            if let Some(g) = &s.git {
                if !git.contains(&crate::freight::normalize_git(&g.repo_url)) || !follows(g, d.git_ref.as_deref()) {
                    return false;
                }
                return match (
                    &d.changed_paths,
                    crate::select::PathFilter::new(&g.include_paths, &g.exclude_paths),
                ) {
                    (Some(changed), Ok(filter)) if filter.is_set() => filter.allows(changed),
                    _ => true,
                };
            }
            if let Some(i) = &s.image {
                return images.contains(&crate::freight::normalize_image(&i.repo_url))
                    && (d.tags.is_empty()
                        // A subscription discovery cannot compile reports its error there.
                        || crate::select::ImagePolicy::new(i).map_or(true, |p| !p.candidates(&d.tags).is_empty()));
            }
            if let Some(c) = &s.chart {
                return charts.contains(&crate::freight::normalize_chart(&c.repo_url));
            }
            false
        });
        if subscribed {
            out.push((r.project.clone(), r.name.clone()));
        }
    }
    out
}

/// A generic receiver's request as its expressions see it; a body that is not JSON is
/// refused (Kargo's `newBaseEnv`: 400 "invalid request body"). An empty body is null.
pub fn generic_request(
    headers: BTreeMap<String, Vec<String>>,
    query: Vec<(String, String)>,
    body: &[u8],
) -> Result<WebhookRequest, Refusal> {
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| Refusal::BadRequest(format!("invalid request body: {e}")))?
    };
    Ok(WebhookRequest { headers, query, body })
}

/// What one generic action did, in Kargo's shape (`actionResult`, generic_actions.go): the
/// action as configured, whether its `whenExpression` held, the Warehouses it selected, and
/// `result`: `Success`, `NotApplicable` (the expression did not hold) or `Error`.
#[derive(Debug, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActionResult {
    #[serde(flatten)]
    pub action: GenericAction,
    pub matched_when_expression: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub selected_targets: Vec<SelectedTarget>,
    pub result: &'static str,
    pub summary: String,
    /// barge's addition: why an expression failed (Kargo only logs it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ActionResult {
    /// Kargo answers 500 when an action errs (`shouldReportAsError`).
    pub fn is_error(&self) -> bool {
        self.result == "Error"
    }
}

/// A Warehouse an action selected (Kargo's `selectedTarget`; its namespace is the project).
#[derive(Debug, serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct SelectedTarget {
    pub namespace: String,
    pub name: String,
    /// Always true: barge queues a refresh, which cannot fail here.
    pub success: bool,
}

/// Runs a generic receiver's actions on a request (Kargo's `handleAction`): each action whose
/// `whenExpression` holds (an empty one always does) selects the Warehouses its
/// `targetSelectionCriteria` name, in the receiver's project (every project's for a
/// ClusterConfig's), each criterion's parts ANDed and the criteria ORed, without duplicates.
pub fn generic_actions(receiver: &Receiver, catalog: &Catalog, request: &WebhookRequest) -> Vec<ActionResult> {
    receiver
        .actions
        .iter()
        .map(|action| {
            let mut result = ActionResult {
                action: action.clone(),
                matched_when_expression: false,
                selected_targets: Vec::new(),
                result: "Error",
                summary: String::new(),
                error: None,
            };
            let when = action.when_expression.as_deref().unwrap_or_default();
            let matched = if when.trim().is_empty() {
                Ok(true)
            } else {
                request.condition(when, &action.parameters)
            };
            match matched {
                Err(e) => {
                    result.summary = "Error evaluating whenExpression".into();
                    result.error = Some(e.to_string());
                }
                Ok(false) => {
                    result.result = "NotApplicable";
                    result.summary = "Request did not match whenExpression".into();
                }
                Ok(true) => {
                    result.matched_when_expression = true;
                    match select_targets(&receiver.project, catalog, action, request) {
                        Err(e) => {
                            result.summary = "Error evaluating targetSelectionCriteria".into();
                            result.error = Some(e);
                        }
                        Ok(targets) => {
                            result.result = "Success";
                            result.summary = format!("Refreshed {0} of {0} selected resources", targets.len());
                            result.selected_targets = targets;
                        }
                    }
                }
            }
            result
        })
        .collect()
}

/// The Warehouses an action's criteria select (Kargo's `listUniqueObjects`), sorted.
fn select_targets(
    project: &str,
    catalog: &Catalog,
    action: &GenericAction,
    request: &WebhookRequest,
) -> Result<Vec<SelectedTarget>, String> {
    let mut targets = Vec::new();
    for (i, criteria) in action.target_selection_criteria.iter().enumerate() {
        let selects = selector(criteria, &action.parameters, request)
            .map_err(|e| format!("targetSelectionCriteria[{i}]: {e}"))?;
        for r in &catalog.resources {
            let Some(Body::Warehouse(w)) = &r.body else { continue };
            if (project.is_empty() || r.project == project) && selects(&r.name, w) {
                targets.push(SelectedTarget {
                    namespace: r.project.clone(),
                    name: r.name.clone(),
                    success: true,
                });
            }
        }
    }
    targets.sort();
    targets.dedup();
    Ok(targets)
}

/// A criterion with its expressions evaluated, as a test of a Warehouse. Validation rejects
/// what barge cannot select (another kind, another index, another operator); they select
/// nothing here.
fn selector(
    criteria: &TargetSelection,
    params: &BTreeMap<String, String>,
    request: &WebhookRequest,
) -> Result<impl Fn(&str, &crate::model::kargo::Warehouse) -> bool, String> {
    let text = |t: &str| request.text(t, params).map_err(|e| e.to_string());
    let kind_ok = criteria.kind == "Warehouse";
    let name = criteria
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(text)
        .transpose()?;
    let mut labels = criteria.label_selector.clone().unwrap_or_default();
    for v in labels.match_labels.values_mut() {
        *v = text(v)?;
    }
    for e in &mut labels.match_expressions {
        for v in &mut e.values {
            *v = text(v)?;
        }
    }
    let indices = criteria
        .index_selector
        .iter()
        .flat_map(|s| &s.match_indices)
        .map(|m| Ok((m.key.clone(), m.operator.clone(), text(&m.value)?)))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(move |warehouse: &str, w: &crate::model::kargo::Warehouse| {
        kind_ok
            && name.as_deref().is_none_or(|n| n == warehouse)
            && crate::plan::labels_match(&labels.match_labels, &labels.match_expressions, &w.metadata.labels)
            && indices.iter().all(|(key, operator, value)| {
                let subscribed = key == "subscribedURLs" && subscribed_urls(w).any(|u| u == *value);
                match operator.as_str() {
                    "Equals" => subscribed,
                    "NotEquals" => key == "subscribedURLs" && !subscribed,
                    _ => false,
                }
            })
    })
}

/// A Warehouse's subscribed repository URLs, normalised (Kargo's `WarehousesBySubscribedURLs`
/// index, pkg/indexer/indexer.go).
fn subscribed_urls(w: &crate::model::kargo::Warehouse) -> impl Iterator<Item = String> + '_ {
    w.spec.iter().flat_map(|s| &s.subscriptions).flat_map(|s| {
        let git = s.git.as_ref().map(|g| crate::freight::normalize_git(&g.repo_url));
        let chart = s.chart.as_ref().map(|c| crate::freight::normalize_chart(&c.repo_url));
        let image = s.image.as_ref().map(|i| crate::freight::normalize_image(&i.repo_url));
        [git, chart, image].into_iter().flatten()
    })
}

/// Whether a push of `git_ref` can change what a git subscription discovers: a branch
/// strategy follows its branch (any, when it names none: the remote's default is not known
/// here), the tag strategies follow tags.
fn follows(g: &crate::model::kargo::GitSubscription, git_ref: Option<&str>) -> bool {
    let Some(git_ref) = git_ref else { return true };
    match g.commit_selection_strategy.as_deref().unwrap_or("NewestFromBranch") {
        "NewestFromBranch" | "" => match g.branch.as_deref().filter(|b| !b.is_empty()) {
            Some(branch) => git_ref == format!("refs/heads/{branch}"),
            None => git_ref.starts_with("refs/heads/"),
        },
        _ => git_ref.starts_with("refs/tags/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A catalog of `demo`'s generic receiver `hook` with `actions` and two Warehouses:
    /// `a` (label team=ui, subscribed to acme/a) and `b` (team=api, acme/b).
    fn generic_fixture(actions: &str) -> (Catalog, Receiver) {
        let yaml = format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {{name: demo, namespace: demo}}\nspec:\n  webhookReceivers:\n    - name: hook\n      generic:\n        secretRef: {{name: hook}}\n        actions: {actions}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: a, namespace: demo, labels: {{team: ui}}}}\nspec: {{subscriptions: [{{git: {{repoURL: https://github.com/acme/a}}}}]}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: b, namespace: demo, labels: {{team: api}}}}\nspec: {{subscriptions: [{{image: {{repoURL: ghcr.io/acme/b}}}}]}}\n"
        );
        let mut catalog = Catalog::default();
        catalog.load_text("defs.yaml", &yaml);
        let secrets = Secrets::from([(
            "hook".to_string(),
            BTreeMap::from([("secret".to_string(), "s".to_string())]),
        )]);
        let (mut found, problems) = receivers(&catalog, &secrets);
        assert!(problems.is_empty(), "{problems:?}");
        (catalog, found.remove(0))
    }

    fn selected(results: &[ActionResult]) -> Vec<&str> {
        results
            .iter()
            .flat_map(|r| &r.selected_targets)
            .map(|t| t.name.as_str())
            .collect()
    }

    #[test]
    fn a_generic_action_selects_by_name_labels_and_index_anded_and_its_criteria_ored() {
        let (catalog, receiver) = generic_fixture(
            r#"[{action: Refresh, whenExpression: "request.params('go') == 'yes'", targetSelectionCriteria: [{kind: Warehouse, labelSelector: {matchExpressions: [{key: team, operator: In, values: ["${{ request.body.team }}"]}]}, indexSelector: {matchIndices: [{key: subscribedURLs, operator: NotEquals, value: "${{ normalizeImage(request.body.image) }}"}]}}, {kind: Warehouse, name: "${{ request.header('X-Name') }}"}]}]"#,
        );
        let request = |headers: &[(&str, &str)], query: &[(&str, &str)], body: &str| {
            generic_request(
                headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                    .collect(),
                query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                body.as_bytes(),
            )
            .unwrap()
        };
        // team=ui and a is not subscribed to the image: a; the header names b.
        let r = request(
            &[("x-name", "b")],
            &[("go", "yes")],
            r#"{"team": "ui", "image": "ghcr.io/acme/b"}"#,
        );
        let results = generic_actions(&receiver, &catalog, &r);
        assert_eq!(selected(&results), ["a", "b"]);
        assert_eq!(results[0].result, "Success");
        assert_eq!(results[0].summary, "Refreshed 2 of 2 selected resources");
        // team=api, but b is subscribed to the image (NotEquals fails); no header: nothing.
        let r = request(&[], &[("go", "yes")], r#"{"team": "api", "image": "ghcr.io/acme/b"}"#);
        let results = generic_actions(&receiver, &catalog, &r);
        assert_eq!(selected(&results), Vec::<&str>::new());
        assert_eq!(
            (results[0].result, results[0].matched_when_expression),
            ("Success", true)
        );
        // The query does not say go: not applicable.
        let results = generic_actions(&receiver, &catalog, &request(&[], &[], "{}"));
        assert_eq!((results[0].result, results[0].is_error()), ("NotApplicable", false));
    }

    #[test]
    fn a_generic_action_whose_expression_fails_is_an_error_and_a_body_that_is_not_json_refused() {
        let (catalog, receiver) = generic_fixture(
            r#"[{action: Refresh, whenExpression: "request.body.count > 1", targetSelectionCriteria: [{kind: Warehouse, name: a}]}, {action: Refresh, targetSelectionCriteria: [{kind: Warehouse, name: "${{ request.body.count }}"}]}]"#,
        );
        let request = generic_request(BTreeMap::new(), Vec::new(), br#"{"count": "many"}"#).unwrap();
        let results = generic_actions(&receiver, &catalog, &request);
        assert_eq!(results[0].summary, "Error evaluating whenExpression");
        assert!(results[0].is_error() && !results[0].matched_when_expression);
        // "many" is a string, and names no Warehouse.
        assert_eq!((results[1].result, selected(&results[1..]).len()), ("Success", 0));
        let request = generic_request(BTreeMap::new(), Vec::new(), br#"{"count": 3}"#).unwrap();
        let results = generic_actions(&receiver, &catalog, &request);
        assert_eq!(selected(&results[..1]), ["a"]);
        // A name that evaluates to a number is an error, as Kargo's evalAsString says.
        assert_eq!(results[1].summary, "Error evaluating targetSelectionCriteria");
        assert!(
            results[1].error.as_deref().unwrap().contains("must be a string"),
            "{:?}",
            results[1].error
        );
        assert!(matches!(
            generic_request(BTreeMap::new(), Vec::new(), b"{"),
            Err(Refusal::BadRequest(m)) if m.starts_with("invalid request body")
        ));
        // An empty body is null, as in Kargo.
        assert_eq!(
            generic_request(BTreeMap::new(), Vec::new(), b"").unwrap().body,
            Value::Null
        );
    }

    /// `demo`'s receiver `hook` of `provider`, its secret `s3cret`.
    fn receiver_of(provider: Provider) -> Receiver {
        let yaml = format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {{name: demo, namespace: demo}}\nspec:\n  webhookReceivers:\n    - {{name: hook, {provider}: {{secretRef: {{name: hook}}}}}}\n"
        );
        let mut catalog = Catalog::default();
        catalog.load_text("defs.yaml", &yaml);
        let secrets = Secrets::from([(
            "hook".to_string(),
            BTreeMap::from([(provider.secret_key().to_string(), "s3cret".to_string())]),
        )]);
        let (mut found, problems) = receivers(&catalog, &secrets);
        assert!(problems.is_empty(), "{problems:?}");
        found.remove(0)
    }

    /// Receives `body` with these headers (names in lower case, as the lookup asks).
    fn deliver(r: &Receiver, headers: &[(&str, String)], body: &Value) -> Result<Delivery, Refusal> {
        let body = serde_json::to_vec(body).unwrap();
        let headers: BTreeMap<String, String> = headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        receive(r, &|name| headers.get(name).cloned(), &body)
    }

    fn closed(d: Result<Delivery, Refusal>) -> Option<String> {
        d.unwrap().closed_pull_request
    }

    #[test]
    fn a_pull_request_is_one_key_however_the_forge_and_its_webhook_spell_its_url() {
        // Azure DevOps: the API's web URL, and the service hook's remoteUrl naming the
        // organisation as its user plus the pull request's number.
        assert_eq!(
            pull_request_key("https://dev.azure.com/fabrikam/shop/_git/config/pullrequest/1"),
            pull_request_key("https://fabrikam@dev.azure.com/fabrikam/shop/_git/config/pullrequest/1")
        );
        assert_eq!(
            pull_request_key("https://GitLab.example.com/Acme/Config/-/merge_requests/4/"),
            "https://gitlab.example.com/acme/config/-/merge_requests/4"
        );
        assert_eq!(
            pull_request_key("https://dev.azure.com/f/p/_git/r/pullrequest/1#view=discussion"),
            "https://dev.azure.com/f/p/_git/r/pullrequest/1"
        );
        assert_ne!(
            pull_request_key("https://github.com/acme/config/pull/1"),
            pull_request_key("https://github.com/acme/config/pull/12")
        );
    }

    #[test]
    fn gitlab_merge_request_hooks_merged_or_closed_announce_the_mrs_web_url() {
        let r = receiver_of(Provider::GitLab);
        // The documented merge request event, cut to what barge reads.
        let event = |action: &str| {
            json!({
                "object_kind": "merge_request",
                "event_type": "merge_request",
                "project": {"path_with_namespace": "acme/config"},
                "object_attributes": {
                    "iid": 4,
                    "url": "https://gitlab.example.com/acme/config/-/merge_requests/4",
                    "state": if action == "merge" { "merged" } else { "closed" },
                    "action": action,
                },
            })
        };
        let headers = |kind: &str| {
            vec![
                ("x-gitlab-event", kind.to_string()),
                ("x-gitlab-token", "s3cret".to_string()),
                ("x-gitlab-event-uuid", "u-1".to_string()),
            ]
        };
        let url = "https://gitlab.example.com/acme/config/-/merge_requests/4";
        for action in ["merge", "close"] {
            let d = deliver(&r, &headers("Merge Request Hook"), &event(action)).unwrap();
            assert_eq!(d.closed_pull_request.as_deref(), Some(url), "{action}");
            assert_eq!(d.id.as_deref(), Some("u-1"));
        }
        // An instance's system hook sends the same body.
        assert_eq!(
            closed(deliver(&r, &headers("System Hook"), &event("merge"))).as_deref(),
            Some(url)
        );
        // Opened, updated, approved: nothing to wake.
        for action in ["open", "update", "approved", "reopen"] {
            let d = deliver(&r, &headers("Merge Request Hook"), &event(action)).unwrap();
            assert!(d.ignored.is_some() && d.closed_pull_request.is_none(), "{action}");
        }
        // A wrong token is refused whatever the event.
        let mut wrong = headers("Merge Request Hook");
        wrong[1].1 = "guess".into();
        assert_eq!(deliver(&r, &wrong, &event("merge")), Err(Refusal::Unauthorized));
    }

    #[test]
    fn gitea_pull_requests_closed_announce_their_web_url_signed_in_any_of_giteas_headers() {
        let r = receiver_of(Provider::Gitea);
        let event = |action: &str| {
            json!({
                "action": action,
                "number": 3,
                "pull_request": {"number": 3, "html_url": "https://gitea.example.com/acme/config/pulls/3", "merged": true},
                "repository": {"full_name": "acme/config"},
            })
        };
        let body = serde_json::to_vec(&event("closed")).unwrap();
        let sig = sign("s3cret", &body);
        let base = vec![
            ("x-gitea-event", "pull_request".to_string()),
            ("x-gitea-delivery", "g-1".to_string()),
        ];
        let with = |extra: &[(&'static str, String)]| {
            let mut h = base.clone();
            h.extend_from_slice(extra);
            h
        };
        // Each of the three headers Gitea signs with, alone (Gogs and Forgejo send the bare
        // ones only), and all three as Gitea sends them.
        for headers in [
            with(&[("x-gitea-signature", sig.clone())]),
            with(&[("x-gogs-signature", sig.clone())]),
            with(&[("x-hub-signature-256", format!("sha256={sig}"))]),
            with(&[
                ("x-gitea-signature", sig.clone()),
                ("x-gogs-signature", sig.clone()),
                ("x-hub-signature-256", format!("sha256={sig}")),
            ]),
        ] {
            let d = deliver(&r, &headers, &event("closed")).unwrap();
            assert_eq!(
                d.closed_pull_request.as_deref(),
                Some("https://gitea.example.com/acme/config/pulls/3"),
                "{headers:?}"
            );
            assert_eq!(d.id.as_deref(), Some("g-1"));
        }
        // Gogs' own event and delivery headers.
        let gogs = vec![
            ("x-gogs-event", "pull_request".to_string()),
            ("x-gogs-delivery", "g-2".to_string()),
            ("x-gogs-signature", sig.clone()),
        ];
        assert_eq!(deliver(&r, &gogs, &event("closed")).unwrap().id.as_deref(), Some("g-2"));
        // Unsigned, signed with another secret, or the sha256= form in a bare header: refused.
        let forged = sign("guess", &body);
        for headers in [
            base.clone(),
            with(&[("x-gitea-signature", forged.clone())]),
            with(&[("x-hub-signature-256", format!("sha256={forged}"))]),
            with(&[("x-gitea-signature", format!("sha256={sig}"))]),
        ] {
            assert_eq!(
                deliver(&r, &headers, &event("closed")),
                Err(Refusal::Unauthorized),
                "{headers:?}"
            );
        }
        // Another action wakes nothing.
        let opened = event("opened");
        let sig = sign("s3cret", &serde_json::to_vec(&opened).unwrap());
        let d = deliver(&r, &with(&[("x-gitea-signature", sig)]), &opened).unwrap();
        assert!(d.ignored.is_some() && d.closed_pull_request.is_none());
    }

    #[test]
    fn bitbucket_pull_requests_fulfilled_or_rejected_announce_their_web_url() {
        let r = receiver_of(Provider::Bitbucket);
        let event = json!({
            "pullrequest": {
                "id": 7,
                "state": "MERGED",
                "links": {"html": {"href": "https://bitbucket.org/acme/config/pull-requests/7"}},
            },
            "repository": {"full_name": "acme/config"},
        });
        let body = serde_json::to_vec(&event).unwrap();
        let headers = |key: &str| {
            vec![
                ("x-event-key", key.to_string()),
                ("x-request-uuid", "b-1".to_string()),
                ("x-hub-signature", format!("sha256={}", sign("s3cret", &body))),
            ]
        };
        for key in ["pullrequest:fulfilled", "pullrequest:rejected"] {
            assert_eq!(
                closed(deliver(&r, &headers(key), &event)).as_deref(),
                Some("https://bitbucket.org/acme/config/pull-requests/7"),
                "{key}"
            );
        }
        let d = deliver(&r, &headers("pullrequest:updated"), &event).unwrap();
        assert!(d.ignored.is_some() && d.closed_pull_request.is_none());
    }

    #[test]
    fn azure_devops_pull_requests_merged_or_completed_announce_their_web_url() {
        let r = receiver_of(Provider::Azure);
        // The documented git.pullrequest.merged / updated samples, cut.
        let event = |kind: &str, status: &str| {
            json!({
                "id": "a0a0",
                "eventType": kind,
                "publisherId": "tfs",
                "resource": {
                    "repository": {"name": "config", "remoteUrl": "https://fabrikam@dev.azure.com/fabrikam/shop/_git/config"},
                    "pullRequestId": 1,
                    "status": status,
                    "mergeStatus": "succeeded",
                },
            })
        };
        let url = "https://fabrikam@dev.azure.com/fabrikam/shop/_git/config/pullrequest/1";
        for (kind, status) in [
            ("git.pullrequest.merged", "completed"),
            ("git.pullrequest.updated", "completed"),
            ("git.pullrequest.updated", "abandoned"),
        ] {
            let d = deliver(&r, &[], &event(kind, status)).unwrap();
            assert_eq!(d.closed_pull_request.as_deref(), Some(url), "{kind} {status}");
            assert_eq!(d.id.as_deref(), Some("a0a0"));
        }
        // The step waits on the API's web URL, without the organisation as user.
        assert_eq!(
            pull_request_key(url),
            pull_request_key("https://dev.azure.com/fabrikam/shop/_git/config/pullrequest/1")
        );
        // A vote or a push to the source branch: still active, nothing to wake.
        let d = deliver(&r, &[], &event("git.pullrequest.updated", "active")).unwrap();
        assert!(d.ignored.is_some() && d.closed_pull_request.is_none());
        let mut no_id = event("git.pullrequest.merged", "completed");
        no_id["resource"]["pullRequestId"] = Value::Null;
        assert!(matches!(deliver(&r, &[], &no_id), Err(Refusal::BadRequest(_))));
    }

    #[test]
    fn the_path_is_kargos_hash_of_project_name_and_secret() {
        // Computed by hand with Kargo's recipe (receiver.go, buildWebhookPath): `printf %s
        // demogithub-hookss3cret | sha256sum` (project "demo" + receiver name "github-hooks" +
        // the secret's value).
        assert_eq!(
            receiver_path("demo", Provider::GitHub, "github-hooks", &["s3cret"]),
            "/webhook/github/80e0cac2fa7d346f2c01281e6acf2e22628968e8f11d2716e1a98644af87bb8d"
        );
    }

    #[test]
    fn signatures_are_githubs_documented_example() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
        let sig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign("It's a Secret to Everybody", b"Hello, World!"), sig);
        assert!(hmac_matches(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            &format!("sha256={sig}"),
            "sha256="
        ));
        assert!(!hmac_matches(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            &format!("sha256={sig}"),
            "sha256="
        ));
        assert!(!hmac_matches(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            sig,
            "sha256="
        ));
    }

    #[test]
    fn a_cluster_receiver_hashes_no_project_and_wakes_every_projects_warehouses() {
        let mut catalog = Catalog::default();
        catalog.load_text(
            "defs.yaml",
            r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: ClusterConfig
metadata: {name: cluster}
spec:
  webhookReceivers:
    - {name: hub, dockerhub: {secretRef: {name: hub}}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: a, namespace: one}
spec: {subscriptions: [{image: {repoURL: docker.io/library/nginx}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: b, namespace: two}
spec: {subscriptions: [{image: {repoURL: nginx}}]}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: c, namespace: two}
spec: {subscriptions: [{image: {repoURL: nginx-other}}]}
"#,
        );
        let secrets = Secrets::from([(
            "hub".to_string(),
            BTreeMap::from([("secret".to_string(), "x".to_string())]),
        )]);
        let (found, problems) = receivers(&catalog, &secrets);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].project, "");
        assert_eq!(found[0].path, receiver_path("", Provider::DockerHub, "hub", &["x"]));
        let d = receive(
            &found[0],
            &|_| None,
            br#"{"repository": {"repo_name": "library/nginx"}}"#,
        )
        .unwrap();
        assert_eq!(
            warehouses(&catalog, &found[0].project, &d),
            [
                ("one".to_string(), "a".to_string()),
                ("two".to_string(), "b".to_string())
            ]
        );
    }
}
