//! How a CLI verb reaches the pipeline: through `barge serve`'s API (`--server`, with the
//! token from BARGE_TOKEN or `--token-file`; or the current context's server, token file and
//! project, [`crate::contexts`]) or straight at the store (`--db`, with the definitions from
//! `-f PATH` or the ones `barge serve` recorded last). Either way the same [`ops::Call`] runs
//! and the same typed [`Answer`] comes back; this module also prints the answers for people.

use crate::render::{rfc3339_time, table, time};
use crate::{Format, GetFormat};
use anyhow::{Context as _, Result, bail};
use barge_engine::Answer;
use barge_engine::answer::{FreightInfo, NotificationInfo, PromotionInfo, ReplicaInfo, WarehouseSummary};
use barge_engine::format::go_duration;
use barge_engine::ops::{self, Call};
use barge_engine::pipeline::StageStatus;
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

/// The definitions for a call against the store.
/// Runs a call on `barge serve` (`remote.server`, which must be set); the answer is read as
/// the call's typed answer.
pub async fn call_server(remote: &Server, c: Call) -> Result<Answer> {
    let server = remote.server.as_deref().context("no --server given")?;
    let token = remote.token()?;
    if let Some(answer) = crate::rest_client::call(server, &token, &c).await {
        return answer;
    }
    let url = format!("{}/api/v1/call", server.trim_end_matches('/'));
    let response = barge_promote::http_client()
        .post(&url)
        .bearer_auth(token)
        .json(&c)
        .send()
        .await
        .with_context(|| format!("cannot reach barge serve at {server}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{server} did not answer with JSON"))?;
    if !status.is_success() {
        bail!("{}", body["error"].as_str().unwrap_or("the server refused the call"));
    }
    c.decode(body)
        .with_context(|| format!("{server} answered with something other than barge's answer to the call"))
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

/// Prints what a `get` verb found. With `one` (a name was asked for) JSON and YAML print the
/// one object, as `kubectl get KIND NAME` does. `-o name` prints `kind.kargo.akuity.io/NAME`
/// lines; `-o wide` is the table with more columns.
pub fn print_get(output: GetFormat, answer: &Answer, one: bool) -> Result<()> {
    let list = serde_json::to_value(answer)?;
    let shown = if one { &list[0] } else { &list };
    let mut out = std::io::stdout().lock();
    match output {
        GetFormat::Json => return print(Format::Json, shown, String::new),
        GetFormat::Yaml => return print(Format::Yaml, shown, String::new),
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
        Answer::Stages(l) => named("stage.kargo.akuity.io", l.iter().map(|s| s.name.as_str()).collect()),
        Answer::Warehouses(l) => named("warehouse.kargo.akuity.io", l.iter().map(|w| w.name.as_str()).collect()),
        Answer::Freight(l) => named(
            "freight.kargo.akuity.io",
            l.iter().map(|f| f.freight.metadata.name.as_str()).collect(),
        ),
        Answer::Promotions(l) => named("promotion.kargo.akuity.io", l.iter().map(|p| p.name.as_str()).collect()),
        Answer::Tokens(l) => named("token.barge.dev", l.iter().map(|t| t.name.as_str()).collect()),
        Answer::Webhooks(l) => named("webhook.barge.dev", l.iter().map(|w| w.name.as_str()).collect()),
        Answer::Replicas(l) => named("replica.barge.dev", l.iter().map(|r| r.id.as_str()).collect()),
        Answer::Notifications(l) => named("notification.barge.dev", l.iter().map(|n| n.id.as_str()).collect()),
        Answer::History(_)
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
        Answer::Stages(l) => stages_text(l, wide),
        Answer::Warehouses(l) => warehouses_text(l, wide),
        Answer::Webhooks(l) => crate::webhooks_cli::table(l),
        Answer::Freight(l) => freight_text(l, wide),
        Answer::Promotions(l) => promotions_text(l, wide),
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
fn reason(message: &str) -> String {
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
fn short(id: &str) -> String {
    id.chars().take(7).collect()
}

/// `-` for nothing, else the items joined with `,`.
fn list_or_dash<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items.into_iter().map(String::as_str).collect();
    if items.is_empty() { "-".into() } else { items.join(",") }
}

/// `barge get stages`: one line per freight request; with a single Stage, the details.
/// Wide adds the current Freight's ID and the Stage's verification templates.
pub fn stages_text(list: &[StageStatus], wide: bool) -> String {
    if list.is_empty() {
        return "no stages\n".into();
    }
    let mut header = vec![
        "PROJECT".to_string(),
        "STAGE".into(),
        "WAREHOUSE".into(),
        "CURRENT".into(),
        "VERIFIED".into(),
        "AUTO".into(),
        "STATE".into(),
    ];
    if wide {
        header.extend(["FREIGHT ID".into(), "VERIFICATION".into()]);
    }
    header.push("WHY".into());
    let mut rows = vec![header];
    for st in list {
        for r in &st.requests {
            let held = st.holds.iter().any(|h| h.warehouse == r.warehouse);
            let current = r.current.as_ref();
            let mut row = vec![
                st.project.clone(),
                st.name.clone(),
                r.warehouse.clone(),
                current.map_or("-".into(), |c| c.alias.clone()),
                match current.map(|c| c.verification.as_str()) {
                    None => "-".into(),
                    Some("Succeeded") => "yes".into(),
                    Some("") if !st.verification.is_empty() => "not run".into(),
                    Some("") => "no".into(),
                    Some(other) => other.to_string(),
                },
                match (st.auto_promotion, held) {
                    (true, true) => "held".into(),
                    (true, false) => "yes".into(),
                    (false, _) => "no".into(),
                },
                r.state.clone(),
            ];
            if wide {
                row.push(current.map_or("-".into(), |c| c.name.clone()));
                row.push(list_or_dash(&st.verification));
            }
            row.push(r.message.clone());
            rows.push(row);
        }
    }
    let mut out = table(rows);
    if let [st] = list {
        out += &stage_details(st);
    }
    out
}

/// What `barge get stage NAME` adds under the table.
fn stage_details(st: &StageStatus) -> String {
    let mut out = String::new();
    if let Some(p) = &st.current_promotion {
        out += &format!("promotion running: {} ({}, by {})\n", p.name, p.phase, p.actor);
    }
    if let Some(p) = &st.last_promotion {
        let msg = reason(&p.message);
        out += &format!("last promotion: {} {} (by {}){msg}\n", p.name, p.phase, p.actor);
    }
    if let Some(h) = &st.health {
        out += &format!("health: {}{}\n", h.status, reason(&h.message));
    }
    if let Some(v) = &st.last_verification {
        let msg = reason(&v.run.message);
        out += &format!(
            "last verification: {} {} (of {}, by {}){msg}\n",
            v.run.id,
            v.run.phase.as_str(),
            v.alias,
            v.run.actor
        );
        if let Ok(report) = serde_json::from_value::<barge_analysis::Report>(v.run.report.clone()) {
            for line in crate::analysis_cli::report_text(&report)
                .lines()
                .filter(|l| !l.starts_with("Phase: "))
            {
                out += &format!("  {line}\n");
            }
        }
    }
    if let Some(w) = &st.window {
        if w.open {
            out += "promotion window: open\n";
        } else {
            out += &format!(
                "promotion window: closed by {} until {}\n",
                w.closed_by.join(", "),
                w.next_open.map_or("(no opening within a year)".into(), time)
            );
        }
    }
    for h in &st.holds {
        out += &format!(
            "held by {} since {} (warehouse {})\n",
            h.actor,
            time(h.created_at),
            h.warehouse
        );
    }
    out
}

/// `barge get warehouses`; wide adds the number of subscriptions.
pub fn warehouses_text(list: &[WarehouseSummary], wide: bool) -> String {
    let mut header = vec!["PROJECT".to_string(), "WAREHOUSE".into(), "INTERVAL".into()];
    if wide {
        header.push("SUBSCRIPTIONS".into());
    }
    header.extend([
        "FREIGHT".into(),
        "NEWEST".into(),
        "LAST DISCOVERY".into(),
        "ERROR".into(),
    ]);
    let mut rows = vec![header];
    for w in list {
        let mut row = vec![w.project.clone(), w.name.clone(), w.interval.clone()];
        if wide {
            row.push(w.subscriptions.to_string());
        }
        row.extend([
            w.freight.to_string(),
            w.newest.clone().unwrap_or_default(),
            w.last_discovery.map_or("never".into(), time),
            w.error.clone().unwrap_or_default(),
        ]);
        rows.push(row);
    }
    table(rows)
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

/// `barge get freight`; wide shows the whole ID and the Stages it is approved for.
pub fn freight_text(list: &[FreightInfo], wide: bool) -> String {
    if list.is_empty() {
        return "no freight stored\n".into();
    }
    let mut header = vec![
        "NAME".to_string(),
        "ALIAS".into(),
        "WAREHOUSE".into(),
        "CREATED".into(),
        "IN".into(),
        "VERIFIED IN".into(),
    ];
    if wide {
        header.push("APPROVED FOR".into());
    }
    header.push("ARTIFACTS".into());
    let mut rows = vec![header];
    for f in list {
        let k = &f.freight;
        let mut artifacts: Vec<String> = k.images.iter().map(|i| format!("{}:{}", i.repo_url, i.tag)).collect();
        artifacts.extend(k.commits.iter().map(|c| {
            let at = c.tag.clone().unwrap_or_else(|| short(&c.id));
            format!("{}@{at}", c.repo_url)
        }));
        artifacts.extend(k.charts.iter().map(|c| format!("{}:{}", c.repo_url, c.version)));
        let name = &k.metadata.name;
        let mut row = vec![
            if wide {
                name.clone()
            } else {
                name.chars().take(12).collect()
            },
            k.alias.clone().unwrap_or_default(),
            f.warehouse.clone(),
            rfc3339_time(&f.created),
            list_or_dash(f.status.currently_in.keys()),
            list_or_dash(f.status.verified_in.keys()),
        ];
        if wide {
            row.push(list_or_dash(f.status.approved_for.keys()));
        }
        row.push(artifacts.join(", "));
        rows.push(row);
    }
    table(rows)
}

/// `barge get promotions`; with one promotion, its steps and what each step produced (the
/// commit a git-commit made, the branch a git-push updated). Wide shows the whole Freight ID
/// and when the promotion last changed.
pub fn promotions_text(list: &[PromotionInfo], wide: bool) -> String {
    if list.is_empty() {
        return "no promotions\n".into();
    }
    let mut header = vec![
        "NAME".to_string(),
        "STAGE".into(),
        "FREIGHT".into(),
        "PHASE".into(),
        "ACTOR".into(),
        "CREATED".into(),
    ];
    if wide {
        header.push("UPDATED".into());
    }
    header.push("MESSAGE".into());
    let mut rows = vec![header];
    for p in list {
        let mut row = vec![
            p.name.clone(),
            p.stage.clone(),
            if wide { p.freight.clone() } else { short(&p.freight) },
            p.phase.to_string(),
            p.actor.clone(),
            rfc3339_time(&p.created_at),
        ];
        if wide {
            row.push(rfc3339_time(&p.updated_at));
        }
        row.push(p.message.clone());
        rows.push(row);
    }
    let mut out = table(rows);
    if let [p] = list {
        let steps: Vec<Vec<String>> = p
            .steps
            .iter()
            .map(|step| {
                let outputs = p.outputs.as_ref().and_then(|o| o.get(&step.alias));
                let mut produced = outputs.map(step_outputs).unwrap_or_default();
                if !step.message.is_empty() {
                    produced.push(step.message.clone());
                }
                vec![
                    format!("  {}", step.alias),
                    step.status.as_str().to_string(),
                    produced.join(" "),
                ]
            })
            .collect();
        out += &table(steps);
    }
    out
}

/// A step's outputs that fit on a line (`commit=3f2a9c1…`, `branch=main`); multi-line ones
/// (a dry run's diff, a response body) stay in `-o json`.
fn step_outputs(outputs: &Value) -> Vec<String> {
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
