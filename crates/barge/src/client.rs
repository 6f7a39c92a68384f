//! How a CLI verb reaches the pipeline: through `barge serve`'s API (`--server`, with the
//! token from BARGE_TOKEN or `--token-file`) or straight at the store (`--db`, with the
//! definitions from `-f PATH` or the ones `barge serve` recorded last). Either way the same
//! [`ops::Call`] runs; this module also prints the answers for people.

use crate::render::{rfc3339_time, table, time};
use crate::{Format, GetFormat};
use anyhow::{Context as _, Result, bail};
use barge_engine::ops::{self, Call};
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
    /// The `barge serve` to ask, when one was given.
    pub fn server(&self) -> Option<&str> {
        self.remote.server.as_deref()
    }

    /// The store's URL: --db (BARGE_DB), or the default one.
    pub fn db(&self) -> Result<String> {
        match &self.db {
            Some(url) => Ok(url.clone()),
            None => barge_engine::default_db(),
        }
    }
}

impl Server {
    /// The token from --token-file (or BARGE_TOKEN_FILE), else BARGE_TOKEN.
    fn token(&self) -> Result<String> {
        barge_server::api::read(self.token_file.as_deref(), &["BARGE_TOKEN"])?
            .context("--server needs the server's token: set BARGE_TOKEN or --token-file FILE")
    }
}

/// The definitions for a call against the store.
async fn definitions(target: &Target, store: &barge_store::Store) -> Result<barge_core::Catalog> {
    if !target.definitions.is_empty() {
        let paths = target.definitions.clone();
        let catalog = tokio::task::spawn_blocking(move || barge_engine::load_catalog(&paths)).await??;
        if catalog.errors() > 0 {
            bail!(
                "the definitions have errors:\n{}",
                barge_engine::diagnostics::diagnostics_text(&catalog, false)
            );
        }
        return Ok(catalog);
    }
    Ok(barge_engine::stored_definitions(store).await?.unwrap_or_default())
}

/// Runs a call on `barge serve` (`remote.server`, which must be set).
pub async fn call_server(remote: &Server, c: Call) -> Result<Value> {
    let server = remote.server.as_deref().context("no --server given")?;
    let token = remote.token()?;
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
    Ok(body)
}

/// Runs a call where the target says.
pub async fn call(target: &Target, c: Call) -> Result<Value> {
    if target.remote.server.is_some() {
        return call_server(&target.remote, c).await;
    }
    let db = target.db()?;
    // Reading a store that was never written shows an empty one and creates no file: a
    // `barge get` in the wrong directory or with a typo in --db leaves nothing behind.
    let _scratch;
    let store = match barge_engine::unwritten_store(&db).filter(|_| c.reads_only()) {
        Some(file) => {
            eprintln!(
                "barge: note: nothing stored yet ({} does not exist; `barge serve` or `barge discover --db` fill it)",
                file.display()
            );
            _scratch = tempfile::tempdir()?;
            let empty = format!("sqlite://{}", _scratch.path().join("empty.db").display());
            barge_store::Store::open_for_one_call(&empty).await?
        }
        None => barge_store::Store::open_for_one_call(&db).await?,
    };
    let needs_definitions = !matches!(
        c,
        Call::GetFreight { .. }
            | Call::GetPromotions { .. }
            | Call::History { .. }
            | Call::Abort { .. }
            | Call::Alias { .. }
            | Call::Token(_)
    );
    // Verbs that only read the store skip parsing the definitions.
    let catalog = if needs_definitions {
        definitions(target, &store).await?
    } else {
        barge_core::Catalog::default()
    };
    if needs_definitions && catalog.resources.is_empty() {
        bail!(
            "no definitions: pass them with -f PATH, or run `barge serve PATH --db {}` once so the store has them",
            barge_store::redact_url(&db)
        );
    }
    let cx = ops::Context {
        store: &store,
        catalog: &catalog,
        refresh: None,
        health: None,
        // Whoever can open the store can change it; the call records its --actor.
        principal: &barge_core::authz::Principal::local(),
    };
    ops::handle(&cx, c).await
}

/// Prints an answer: JSON or YAML as is, or `text` for people.
pub fn print(output: Format, v: &Value, text: impl FnOnce(&Value) -> String) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match output {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, v)?;
            writeln!(out)?;
        }
        Format::Yaml => write!(out, "{}", yaml_serde::to_string(v)?)?,
        Format::Text => write!(out, "{}", text(v))?,
    }
    Ok(())
}

/// Prints what a `get` verb found: `list` is always the array the call answers; with `one`
/// (a name was asked for) JSON and YAML print the one object, as `kubectl get KIND NAME` does.
/// `-o name` prints `kind.kargo.akuity.io/NAME` lines; `-o wide` is the table with more columns.
pub fn print_get(
    output: GetFormat,
    list: &Value,
    one: bool,
    kind: Kind,
    table: impl FnOnce(&Value, bool) -> String,
) -> Result<()> {
    let shown = if one { list[0].clone() } else { list.clone() };
    let mut out = std::io::stdout().lock();
    match output {
        GetFormat::Json => return print(Format::Json, &shown, |_| String::new()),
        GetFormat::Yaml => return print(Format::Yaml, &shown, |_| String::new()),
        GetFormat::Text => write!(out, "{}", table(list, false))?,
        GetFormat::Wide => write!(out, "{}", table(list, true))?,
        GetFormat::Name => {
            for item in list.as_array().into_iter().flatten() {
                writeln!(out, "{}/{}", kind.resource(), kind.name_of(item))?;
            }
        }
    }
    Ok(())
}

/// What a `get` verb lists, for `-o name`.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Stage,
    Warehouse,
    Freight,
    Promotion,
    Token,
}

impl Kind {
    /// kubectl's `-o name` form: the lower-case kind and Kargo's API group.
    fn resource(self) -> &'static str {
        match self {
            Kind::Stage => "stage.kargo.akuity.io",
            Kind::Warehouse => "warehouse.kargo.akuity.io",
            Kind::Freight => "freight.kargo.akuity.io",
            Kind::Promotion => "promotion.kargo.akuity.io",
            Kind::Token => "token.barge.dev",
        }
    }

    fn name_of(self, item: &Value) -> String {
        match self {
            Kind::Freight => s(&item["metadata"]["name"]),
            _ => s(&item["name"]),
        }
    }
}

/// `: message`, or nothing when there is none.
fn reason(message: &Value) -> String {
    message
        .as_str()
        .filter(|m| !m.is_empty())
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn short(v: &Value) -> String {
    s(v).chars().take(7).collect()
}

/// `barge get stages`: one line per freight request; with a single Stage, the details.
/// Wide adds the current Freight's ID and the Stage's verification templates.
pub fn stages_text(v: &Value, wide: bool) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
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
    for st in &list {
        for r in st["requests"].as_array().into_iter().flatten() {
            let current = &r["current"];
            let held = st["holds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| h["warehouse"] == r["warehouse"]);
            let mut row = vec![
                s(&st["project"]),
                s(&st["name"]),
                s(&r["warehouse"]),
                if current.is_null() {
                    "-".into()
                } else {
                    s(&current["alias"])
                },
                match current["verification"].as_str() {
                    _ if current.is_null() => "-".into(),
                    Some("Succeeded") => "yes".into(),
                    Some("") | None => {
                        if st["verification"].as_array().is_some_and(|a| !a.is_empty()) {
                            "not run".into()
                        } else {
                            "no".into()
                        }
                    }
                    Some(other) => other.to_string(),
                },
                match (st["autoPromotion"] == true, held) {
                    (true, true) => "held".into(),
                    (true, false) => "yes".into(),
                    (false, _) => "no".into(),
                },
                s(&r["state"]),
            ];
            if wide {
                row.push(if current.is_null() {
                    "-".into()
                } else {
                    s(&current["name"])
                });
                let templates: Vec<String> = st["verification"].as_array().into_iter().flatten().map(s).collect();
                row.push(if templates.is_empty() {
                    "-".into()
                } else {
                    templates.join(",")
                });
            }
            row.push(s(&r["message"]));
            rows.push(row);
        }
    }
    let mut out = table(rows);
    if list.len() == 1 {
        let st = &list[0];
        if let Some(p) = st.get("currentPromotion") {
            out += &format!(
                "promotion running: {} ({}, by {})\n",
                s(&p["name"]),
                s(&p["phase"]),
                s(&p["actor"])
            );
        }
        if let Some(p) = st.get("lastPromotion") {
            let msg = reason(&p["message"]);
            out += &format!(
                "last promotion: {} {} (by {}){msg}\n",
                s(&p["name"]),
                s(&p["phase"]),
                s(&p["actor"])
            );
        }
        if let Some(h) = st.get("health") {
            let msg = reason(&h["message"]);
            out += &format!("health: {}{msg}\n", s(&h["status"]));
        }
        if let Some(v) = st.get("lastVerification") {
            let msg = reason(&v["message"]);
            out += &format!(
                "last verification: {} {} (of {}, by {}){msg}\n",
                s(&v["id"]),
                s(&v["phase"]),
                s(&v["alias"]),
                s(&v["actor"])
            );
            if let Ok(report) = serde_json::from_value::<barge_analysis::Report>(v["report"].clone()) {
                for line in crate::analysis_cli::report_text(&report)
                    .lines()
                    .filter(|l| !l.starts_with("Phase: "))
                {
                    out += &format!("  {line}\n");
                }
            }
        }
        if let Some(w) = st.get("window") {
            if w["open"] == true {
                out += "promotion window: open\n";
            } else {
                out += &format!(
                    "promotion window: closed by {} until {}\n",
                    w["closedBy"]
                        .as_array()
                        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                        .unwrap_or_default(),
                    w["nextOpen"].as_i64().map_or("(no opening within a year)".into(), time)
                );
            }
        }
        for h in st["holds"].as_array().into_iter().flatten() {
            out += &format!(
                "held by {} since {} (warehouse {})\n",
                s(&h["actor"]),
                time(h["createdAt"].as_i64().unwrap_or(0)),
                s(&h["warehouse"])
            );
        }
    }
    out
}

/// `barge get warehouses`; wide adds the number of subscriptions.
pub fn warehouses_text(v: &Value, wide: bool) -> String {
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
    for w in v.as_array().into_iter().flatten() {
        let mut row = vec![s(&w["project"]), s(&w["name"]), s(&w["interval"])];
        if wide {
            row.push(s(&w["subscriptions"]));
        }
        row.extend([
            s(&w["freight"]),
            s(&w["newest"]),
            w["lastDiscovery"].as_i64().map_or("never".into(), time),
            s(&w["error"]),
        ]);
        rows.push(row);
    }
    table(rows)
}

/// `barge get freight`; wide shows the whole ID and the Stages it is approved for.
pub fn freight_text(v: &Value, wide: bool) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
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
    for f in &list {
        let keys = |k: &str| -> String {
            let names: Vec<String> = f["status"][k]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            if names.is_empty() { "-".into() } else { names.join(",") }
        };
        let mut artifacts: Vec<String> = f["images"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| format!("{}:{}", s(&i["repoURL"]), s(&i["tag"])))
            .collect();
        artifacts.extend(f["commits"].as_array().into_iter().flatten().map(|c| {
            format!(
                "{}@{}",
                s(&c["repoURL"]),
                if c["tag"].is_string() {
                    s(&c["tag"])
                } else {
                    short(&c["id"])
                }
            )
        }));
        artifacts.extend(
            f["charts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{}:{}", s(&c["repoURL"]), s(&c["version"]))),
        );
        let name = s(&f["metadata"]["name"]);
        let mut row = vec![
            if wide { name } else { name.chars().take(12).collect() },
            s(&f["alias"]),
            s(&f["warehouse"]),
            rfc3339_time(&f["metadata"]["creationTimestamp"]),
            keys("currentlyIn"),
            keys("verifiedIn"),
        ];
        if wide {
            row.push(keys("approvedFor"));
        }
        row.push(artifacts.join(", "));
        rows.push(row);
    }
    table(rows)
}

/// `barge get promotions`; with one promotion, its steps and what each step produced (the
/// commit a git-commit made, the branch a git-push updated). Wide shows the whole Freight ID
/// and when the promotion last changed.
pub fn promotions_text(v: &Value, wide: bool) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
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
    for p in &list {
        let mut row = vec![
            s(&p["name"]),
            s(&p["stage"]),
            if wide { s(&p["freight"]) } else { short(&p["freight"]) },
            s(&p["phase"]),
            s(&p["actor"]),
            rfc3339_time(&p["createdAt"]),
        ];
        if wide {
            row.push(rfc3339_time(&p["updatedAt"]));
        }
        row.push(s(&p["message"]));
        rows.push(row);
    }
    let mut out = table(rows);
    if list.len() == 1 {
        let outputs = &list[0]["outputs"];
        let steps: Vec<Vec<String>> = list[0]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|step| {
                let alias = s(&step["alias"]);
                let mut produced = step_outputs(&outputs[&alias]);
                if let Some(m) = step["message"].as_str().filter(|m| !m.is_empty()) {
                    produced.push(m.to_string());
                }
                vec![format!("  {alias}"), s(&step["status"]), produced.join(" ")]
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
pub fn history_text(v: &Value) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
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
    for e in &list {
        rows.push(vec![
            time(e["at"].as_i64().unwrap_or(0)),
            s(&e["kind"]),
            s(&e["stage"]),
            short(&e["freight"]),
            s(&e["actor"]),
            detail(e),
        ]);
    }
    table(rows)
}

/// The one fact of an event people look for.
fn detail(e: &Value) -> String {
    let b = &e["body"];
    match e["kind"].as_str().unwrap_or_default() {
        "freight.minted" => format!("alias {}", s(&b["alias"])),
        "promotion.created" | "promotion.finished" | "promotion.aborted" => {
            let subject = s(&e["subject"]);
            let name = subject.trim_start_matches("Promotion/");
            let phase = b["phase"].as_str().map(|p| format!(" {p}")).unwrap_or_default();
            let msg = reason(&b["message"]);
            format!("{name}{phase}{msg}")
        }
        "promotion.step" => format!("{} {} {}", s(&b["uses"]), s(&b["step"]), s(&b["status"])),
        "promotion.pushed" => {
            let o = &b["outputs"];
            format!("pushed {} to {}", short(&o["commit"]), s(&o["branch"]))
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
            let msg = reason(&b["message"]);
            format!("{} {}{msg}", s(&b["verification"]), s(&b["outcome"]))
        }
        _ => String::new(),
    }
}
