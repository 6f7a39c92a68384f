//! How a CLI verb reaches the pipeline: through `barge serve`'s API (`--server`, with the
//! token from BARGE_TOKEN or `--token-file`; or the current context's server, token file and
//! project, [`crate::contexts`]) or straight at the store (`--db`, with the definitions from
//! `-f PATH` or the ones `barge serve` recorded last). Either way the same [`ops::Call`] runs
//! and the same typed [`Answer`] comes back; this module also prints the answers for people.

use crate::render::{rfc3339_time, table, time};
use crate::{Format, GetFormat};
use anyhow::{Context as _, Result, bail};
use barge_engine::Answer;
use barge_engine::answer::{NotificationInfo, ReplicaInfo};
use barge_engine::format::go_duration;
use barge_engine::ops::{self, Call};
use barge_store::AuditEvent;
use serde_json::Value;
use std::io::Write;

/// A running `barge serve` and its token.
#[derive(clap::Args, Debug, Clone)]
pub struct Server {
    /// A running `barge serve` to ask (its --listen address), e.g. http://127.0.0.1:7070.
    /// Without it, barge works on the store directly (--db).
    #[arg(long, value_name = "URL", env = "BARGE_SERVER")]
    pub server: Option<String>,
    /// A file holding the server's bearer token (or set BARGE_TOKEN).
    #[arg(long, value_name = "FILE", env = "BARGE_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// The current context's project, for the calls that name none ([`Server::resolved`]).
    #[arg(skip)]
    pub default_project: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    #[command(flatten)]
    pub remote: Server,
    /// The store (sqlite://PATH or postgres://...), when there is no --server. Default:
    /// sqlite://$XDG_DATA_HOME/barge/barge.db (~/.local/share/barge/barge.db).
    #[arg(long, value_name = "URL", env = "BARGE_DB")]
    pub db: Option<String>,
    /// With --db: the definitions (files, directories, Git sources). Default: the ones
    /// `barge serve` last loaded into this store.
    #[arg(short = 'f', long = "definitions", value_name = "PATH")]
    pub definitions: Vec<String>,
}

impl Target {
    /// The `barge serve` to ask, when one was given (after [`Target::resolved`]).
    pub fn server(&self) -> Option<&str> {
        self.remote.server.as_deref()
    }

    /// The target with the current context filled in: only when neither a server nor a store
    /// is given (flags or BARGE_SERVER, BARGE_DB), which the context never overrides.
    pub fn resolved(&self) -> Result<Target> {
        let mut target = self.clone();
        if self.db.is_none() {
            target.remote = self.remote.resolved()?;
        }
        Ok(target)
    }

    /// The store's URL: --db (BARGE_DB), or the default one.
    pub fn db(&self) -> Result<String> {
        match &self.db {
            Some(url) => Ok(url.clone()),
            None => Ok(barge_engine::default_db()?),
        }
    }
}

impl Server {
    /// The server with the current context filled in when none is given (--server or
    /// BARGE_SERVER): its server, token file (unless --token-file, BARGE_TOKEN_FILE or
    /// BARGE_TOKEN gives the token) and project. A context's token is never sent to another
    /// server than its own.
    pub fn resolved(&self) -> Result<Server> {
        if self.server.is_some() {
            return Ok(self.clone());
        }
        let Some(context) = crate::contexts::current()? else {
            return Ok(self.clone());
        };
        let token_given = self.token_file.is_some() || std::env::var_os("BARGE_TOKEN").is_some();
        Ok(Server {
            token_file: match token_given {
                true => self.token_file.clone(),
                false => context.token_file.filter(|_| context.server.is_some()),
            },
            server: context.server,
            default_project: context.project,
        })
    }

    /// The token from --token-file (or BARGE_TOKEN_FILE), else BARGE_TOKEN.
    fn token(&self) -> Result<String> {
        barge_server::api::read(self.token_file.as_deref(), &["BARGE_TOKEN"])?
            .context("--server needs the server's token: set BARGE_TOKEN or --token-file FILE")
    }
}

/// Runs a call on `barge serve` (`remote.server`, which must be set) through its REST route
/// ([`crate::rest_client`]); the answer is read as the call's typed answer.
pub async fn call_server(remote: &Server, c: Call) -> Result<Answer> {
    let server = remote.server.as_deref().context("no --server given")?;
    crate::rest_client::call(server, &remote.token()?, &c).await
}

/// A REST API answer: its status and JSON body.
pub struct RestAnswer {
    status: reqwest::StatusCode,
    body: Value,
}

impl RestAnswer {
    /// The body, or the server's refusal as the error (its `message`).
    pub fn ok(self) -> Result<Value> {
        if self.status.is_success() {
            return Ok(self.body);
        }
        Err(refusal(self.status, &self.body))
    }

    pub fn is_not_found(&self) -> bool {
        self.status == reqwest::StatusCode::NOT_FOUND
    }
}

/// A REST error (`{"code", "message", "details"}`) as the CLI reports it: its message. A
/// refusal before any route runs (too many connections, a body too large) says `error`.
fn refusal(status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    match body["message"].as_str().or(body["error"].as_str()) {
        Some(message) => anyhow::anyhow!("{message}"),
        None => anyhow::anyhow!("the server answered {status}"),
    }
}

/// The URL of a REST route: the server's `/api/v1/` and these path segments (escaped).
fn rest_url(server: &str, segments: &[&str]) -> Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server {server:?} cannot be a base URL"))?
        .pop_if_empty()
        .extend(["api", "v1"])
        .extend(segments);
    Ok(url)
}

/// `GET /api/v1/SEGMENTS?QUERY` on `barge serve`, with the token.
pub async fn rest_get(remote: &Server, segments: &[&str], query: &[(&str, &str)]) -> Result<RestAnswer> {
    let server = remote.server.as_deref().context("no --server given")?;
    let mut url = rest_url(server, segments)?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let response = barge_promote::http_client()
        .get(url)
        .bearer_auth(remote.token()?)
        .send()
        .await
        .with_context(|| format!("cannot reach barge serve at {server}"))?;
    let status = response.status();
    let body = response
        .json()
        .await
        .with_context(|| format!("{server} did not answer with JSON"))?;
    Ok(RestAnswer { status, body })
}

/// One Server-Sent Event of a REST watch (docs/reference/api.md, "Watch").
#[derive(Debug, Default)]
pub struct SseEvent {
    /// `ADDED`, `MODIFIED` or `DELETED`; none for a message with only an id.
    pub kind: Option<String>,
    pub id: Option<String>,
    data: String,
}

impl SseEvent {
    /// The object the event carries.
    pub fn object(&self) -> Result<Value> {
        let mut data: Value = serde_json::from_str(&self.data).context("a watch event that is not JSON")?;
        Ok(data["object"].take())
    }
}

/// A REST watch's events, as they arrive.
pub struct SseStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

/// The most a watch event may hold before barge gives up on the stream (a Stage with its
/// verification report is well under it).
const MAX_EVENT: usize = 16 << 20;

impl SseStream {
    /// The next event (comments and heartbeats skipped); `None` when the stream ends.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block);
                let mut event = SseEvent::default();
                for line in block.lines() {
                    match line.split_once(": ").or_else(|| line.split_once(':')) {
                        Some(("event", v)) => event.kind = Some(v.to_string()),
                        Some(("id", v)) => event.id = Some(v.to_string()),
                        Some(("data", v)) => event.data.push_str(v),
                        _ => {}
                    }
                }
                if event.kind.is_some() || event.id.is_some() {
                    return Ok(Some(event));
                }
                continue;
            }
            if self.buffer.len() > MAX_EVENT {
                bail!("a watch event is larger than {MAX_EVENT} bytes");
            }
            match self.response.chunk().await.context("the watch's connection failed")? {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }
}

/// `GET /api/v1/SEGMENTS?watch=true`: a REST watch, resumed after `last_id` when given.
pub async fn rest_watch(remote: &Server, segments: &[&str], last_id: Option<&str>) -> Result<SseStream> {
    let server = remote.server.as_deref().context("no --server given")?;
    // The shared client sets no overall timeout: a watch lasts as long as its stream.
    let mut url = rest_url(server, segments)?;
    url.query_pairs_mut().append_pair("watch", "true");
    let mut request = barge_promote::http_client().get(url).bearer_auth(remote.token()?);
    if let Some(id) = last_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach barge serve at {server}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        return Err(refusal(status, &body));
    }
    Ok(SseStream {
        response,
        buffer: Vec::new(),
    })
}

/// Runs a call where the target says: the one way every verb reaches the pipeline.
pub async fn call(target: &Target, mut c: Call) -> Result<Answer> {
    let target = &target.resolved()?;
    if let Some(project @ None) = c.project_mut() {
        project.clone_from(&target.remote.default_project);
    }
    if target.remote.server.is_some() {
        return call_server(&target.remote, c).await;
    }
    let db = target.db()?;
    if let Some(file) = barge_engine::unwritten_store(&db).filter(|_| c.reads_only()) {
        eprintln!(
            "barge: note: nothing stored yet ({} does not exist; `barge serve` or `barge discover --db` fill it)",
            file.display()
        );
    }
    Ok(ops::handle_here(&db, &target.definitions, c).await?)
}

/// Prints an answer: JSON or YAML as is, or `text` for people.
pub fn print(output: Format, v: &impl serde::Serialize, text: impl FnOnce() -> String) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, v)?;
            writeln!(out)?;
        }
        Format::Yaml => write!(out, "{}", yaml_serde::to_string(v)?)?,
        Format::Text => write!(out, "{}", text())?,
    }
    // Now, not when the lock drops: `discover --watch` prints a pass at a time.
    out.flush()?;
    Ok(())
}

/// A listing as `kubectl get` and `kargo get` print one with `-o json|yaml`: a
/// `List` of the objects, whatever their number. Kargo's CLI (`PrintObjects`, pkg/cli/cmd/get)
/// builds a `metav1.List` whose empty `ListMeta` prints as `metadata: {}`; kubectl's
/// `{"resourceVersion": ""}` reads the same to scripts (`.items[]`).
pub fn list(items: Vec<Value>) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
}

/// Prints what a `get` verb found: with `-o json|yaml` a [`list`] of the objects. `-o name`
/// prints `kind.barge.dev/NAME` lines; `-o wide` is the table with more columns.
pub fn print_get(output: GetFormat, answer: &Answer) -> Result<()> {
    let items = match serde_json::to_value(answer)? {
        Value::Array(items) => items,
        other => vec![other],
    };
    let mut out = std::io::stdout().lock();
    match output {
        GetFormat::Json => return print(Format::Json, &list(items), String::new),
        GetFormat::Yaml => return print(Format::Yaml, &list(items), String::new),
        GetFormat::Text => write!(out, "{}", text(answer, false))?,
        GetFormat::Wide => write!(out, "{}", text(answer, true))?,
        GetFormat::Name => {
            for name in names(answer) {
                writeln!(out, "{name}")?;
            }
        }
    }
    Ok(())
}

/// kubectl's `-o name` form of a listing: the lower-case kind, the API group (Kargo's, or
/// barge's own for tokens, which Kargo has not) and the name.
fn names(answer: &Answer) -> Vec<String> {
    let named = |resource: &str, names: Vec<&str>| -> Vec<String> {
        names.into_iter().map(|n| format!("{resource}/{n}")).collect()
    };
    match answer {
        Answer::Tokens(l) => named("token.barge.dev", l.iter().map(|t| t.name.as_str()).collect()),
        Answer::Webhooks(l) => named("webhook.barge.dev", l.iter().map(|w| w.name.as_str()).collect()),
        Answer::Replicas(l) => named("replica.barge.dev", l.iter().map(|r| r.id.as_str()).collect()),
        Answer::Notifications(l) => named("notification.barge.dev", l.iter().map(|n| n.id.as_str()).collect()),
        Answer::Stages(_)
        | Answer::Warehouses(_)
        | Answer::Freight(_)
        | Answer::Promotions(_)
        | Answer::History(_)
        | Answer::Stats(_)
        | Answer::Queued(_)
        | Answer::PromotionPlan(_)
        | Answer::Approved(_)
        | Answer::Aborted(_)
        | Answer::Held(_)
        | Answer::Released(_)
        | Answer::Aliased(_)
        | Answer::Verification(_)
        | Answer::Refresh(_)
        | Answer::Version(_)
        | Answer::TokenCreated(_)
        | Answer::TokenRevoked(_) => Vec::new(),
    }
}

/// An answer for people; `wide` adds columns to the listings.
pub fn text(answer: &Answer, wide: bool) -> String {
    match answer {
        Answer::Stages(_) | Answer::Warehouses(_) | Answer::Freight(_) | Answer::Promotions(_) => {
            crate::get_cli::Resources::of(answer).map_or_else(String::new, |r| r.text(wide))
        }
        Answer::Webhooks(l) => crate::webhooks_cli::table(l),
        Answer::History(l) => history_text(l),
        Answer::Stats(l) => stats_text(l),
        Answer::Queued(q) => q.promotions.iter().map(|n| format!("promotion {n} queued\n")).collect(),
        Answer::PromotionPlan(p) => crate::render::plan_text(p),
        Answer::Approved(a) => format!("{} approved for {}\n", a.alias.as_deref().unwrap_or_default(), a.stage),
        Answer::Aborted(p) => format!("promotion {} aborted\n", p.name),
        Answer::Held(h) => format!("auto-promotion into {} is held\n", h.stage),
        Answer::Released(r) => format!(
            "auto-promotion into {} released ({} hold(s) lifted)\n",
            r.stage, r.released
        ),
        Answer::Aliased(a) => format!("freight {} is now {}\n", a.freight, a.alias),
        Answer::Verification(v) if v.phase == barge_core::analysis::VerificationPhase::Aborted => {
            format!("verification {} aborted\n", v.id)
        }
        Answer::Verification(v) => format!("verification {} queued (barge serve runs it)\n", v.id),
        Answer::Refresh(r) => format!("refresh of {} requested\n", r.warehouse),
        Answer::Version(v) => format!("Server Version: {}\n", v.version),
        // The token alone (`> file` keeps just it); token_cli.rs says what it is on stderr.
        Answer::TokenCreated(t) => format!("{}\n", t.token),
        Answer::Tokens(l) => crate::token_cli::list_text(l),
        Answer::Replicas(l) => replicas_text(l, wide),
        Answer::Notifications(l) => notifications_text(l, wide),
        Answer::TokenRevoked(t) => format!(
            "token {} revoked at {}\n",
            t.name,
            rfc3339_time(t.revoked_at.as_deref().unwrap_or_default())
        ),
    }
}

/// `: message`, or nothing when there is none.
pub(crate) fn reason(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// A free-form JSON value (an audit event's body, a step's output) as text.
fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A commit or Freight ID's first seven characters.
pub(crate) fn short(id: &str) -> String {
    id.chars().take(7).collect()
}

/// `-` for nothing, else the items joined with `,`.
pub(crate) fn list_or_dash<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items.into_iter().map(String::as_str).collect();
    if items.is_empty() { "-".into() } else { items.join(",") }
}

/// `barge get replicas`; wide names what each holds instead of counting it.
pub fn replicas_text(list: &[ReplicaInfo], wide: bool) -> String {
    if list.is_empty() {
        return "no replica has run on this store (barge serve writes a heartbeat)\n".into();
    }
    let mut header = vec!["REPLICA".to_string(), "STATUS".into(), "HEARTBEAT".into()];
    if wide {
        header.extend(["HOST".into(), "VERSION".into(), "STARTED".into()]);
    }
    header.extend(["PROMOTIONS".into(), "VERIFICATIONS".into(), "WAREHOUSES".into()]);
    let held = |names: &[String]| {
        if wide { names.join(",") } else { names.len().to_string() }
    };
    let mut rows = vec![header];
    for r in list {
        let mut row = vec![
            r.id.clone(),
            if r.alive { "Alive" } else { "Gone" }.to_string(),
            format!("{}s ago", r.heartbeat_age_ms.max(0) / 1000),
        ];
        if wide {
            row.extend([r.host.clone(), r.version.clone(), rfc3339_time(&r.started_at)]);
        }
        row.extend([held(&r.promotions), held(&r.verifications), held(&r.warehouses)]);
        rows.push(row);
    }
    table(rows)
}

/// `barge get notifications`; wide adds the delivery id, the router, the Stage and when it
/// was queued and delivered.
pub fn notifications_text(list: &[NotificationInfo], wide: bool) -> String {
    if list.is_empty() {
        return "no notifications queued\n".into();
    }
    let time = |t: &Option<String>| t.as_deref().map(rfc3339_time).unwrap_or_default();
    let mut header = Vec::new();
    if wide {
        header.push("ID".to_string());
    }
    header.extend(["CHANNEL".into(), "EVENT".into(), "STATE".into(), "ATTEMPTS".into()]);
    header.extend(["NEXT ATTEMPT".into(), "LAST ERROR".into()]);
    if wide {
        header.extend(["ROUTER".into(), "STAGE".into(), "CREATED".into(), "DELIVERED".into()]);
    }
    let mut rows = vec![header];
    for n in list {
        let mut row = Vec::new();
        if wide {
            row.push(n.id.clone());
        }
        row.extend([
            format!("{}/{}", n.channel_kind, n.channel),
            n.event.clone(),
            n.state.clone(),
            n.attempts.to_string(),
            time(&n.next_attempt_at),
            n.last_error.clone().unwrap_or_default(),
        ]);
        if wide {
            row.extend([
                n.router.clone(),
                n.stage.clone(),
                rfc3339_time(&n.created_at),
                time(&n.delivered_at),
            ]);
        }
        rows.push(row);
    }
    table(rows)
}

/// A step's outputs that fit on a line (`commit=3f2a9c1…`, `branch=main`); multi-line ones
/// (a dry run's diff, a response body) stay in `-o json`.
pub(crate) fn step_outputs(outputs: &Value) -> Vec<String> {
    outputs
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_object() && !v.is_array() && !v.is_null())
        .map(|(k, v)| (k, s(v)))
        .filter(|(_, v)| !v.contains('\n') && v.chars().count() <= 100)
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// One line per event, oldest at the bottom like `git log`.
pub fn history_text(list: &[AuditEvent]) -> String {
    if list.is_empty() {
        return "no events\n".into();
    }
    let mut rows = vec![vec![
        "TIME".to_string(),
        "EVENT".into(),
        "STAGE".into(),
        "FREIGHT".into(),
        "ACTOR".into(),
        "DETAIL".into(),
    ]];
    for e in list {
        rows.push(vec![
            time(e.at),
            e.kind.clone(),
            e.stage.clone(),
            short(&e.freight),
            e.actor.clone(),
            detail(e),
        ]);
    }
    table(rows)
}

/// `barge stats`: one row per Stage.
fn stats_text(list: &[barge_engine::stats::StageStats]) -> String {
    if list.is_empty() {
        return "no promotions or verifications in the window\n".into();
    }
    let secs = |s: Option<f64>| s.map_or_else(|| "-".to_string(), |s| go_duration((s * 1000.0) as i64));
    let mut rows = vec![vec![
        "PROJECT".to_string(),
        "STAGE".into(),
        "DEPLOYS".into(),
        "PER DAY".into(),
        "LEAD TIME (MEDIAN)".into(),
        "CHANGE FAILURE".into(),
        "TIME TO RESTORE (MEDIAN)".into(),
    ]];
    for s in list {
        let f = &s.figures;
        let restore = match (secs(f.time_to_restore.median_seconds), f.unrestored) {
            (r, true) => format!("{r} (failing)"),
            (r, false) => r,
        };
        rows.push(vec![
            s.project.clone(),
            s.stage.clone(),
            format!("{}/{}", f.deployments, f.promotions),
            format!("{:.2}", f.deployments_per_day),
            secs(f.lead_time.median_seconds),
            f.change_failure_rate
                .map_or_else(|| "-".to_string(), |r| format!("{:.0}%", r * 100.0)),
            restore,
        ]);
    }
    table(rows)
}

/// The one fact of an event people look for (its body is free-form JSON, one shape per kind).
fn detail(e: &AuditEvent) -> String {
    let b = &e.body;
    match e.kind.as_str() {
        "freight.minted" => format!("alias {}", s(&b["alias"])),
        "promotion.created" | "promotion.finished" | "promotion.aborted" => {
            let name = e.subject.trim_start_matches("Promotion/");
            let phase = b["phase"].as_str().map(|p| format!(" {p}")).unwrap_or_default();
            let msg = reason(b["message"].as_str().unwrap_or_default());
            format!("{name}{phase}{msg}")
        }
        "promotion.step" => format!("{} {} {}", s(&b["uses"]), s(&b["step"]), s(&b["status"])),
        "promotion.pushed" => {
            let o = &b["outputs"];
            format!("pushed {} to {}", short(&s(&o["commit"])), s(&o["branch"]))
        }
        "stage.entered" => format!("via {}", s(&b["promotion"])),
        "window.overridden" => format!("reason: {}", s(&b["reason"])),
        "freight.approved" => format!("for {}", s(&b["stage"])),
        "stage.held" | "stage.released" => s(&b["warehouse"]),
        "config.reloaded" => format!("changed {}", b["changed"]),
        "verification.started" => s(&b["verification"]),
        "verification.measured" => format!(
            "{} {} {}{}",
            s(&b["metric"]),
            s(&b["phase"]),
            s(&b["value"]),
            b["message"].as_str().map(|m| format!(" ({m})")).unwrap_or_default()
        ),
        "verification.finished" => {
            let msg = reason(b["message"].as_str().unwrap_or_default());
            format!("{} {}{msg}", s(&b["verification"]), s(&b["outcome"]))
        }
        _ => String::new(),
    }
}
