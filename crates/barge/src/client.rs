//! How a CLI verb reaches the pipeline: through `barge serve`'s API (`--server`, with the
//! token from BARGE_TOKEN or `--token-file`) or straight at the store (`--db`, with the
//! definitions from `-f PATH` or the ones `barge serve` recorded last). Either way the same
//! [`ops::Call`] runs; this module also prints the answers for people.

use crate::ops::{self, Call};
use crate::render::{table, time};
use crate::{Format, render};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use std::io::Write;

#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// A running `barge serve` to ask (its --listen address), e.g. http://127.0.0.1:7070.
    /// Without it, barge works on the store directly (--db).
    #[arg(long, value_name = "URL", env = "BARGE_SERVER")]
    pub server: Option<String>,
    /// A file holding the server's bearer token (or set BARGE_TOKEN).
    #[arg(long, value_name = "FILE", env = "BARGE_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// The store (sqlite://PATH or postgres://...), when there is no --server.
    #[arg(long, value_name = "URL", env = "BARGE_DB", default_value = "sqlite://barge.db")]
    pub db: String,
    /// With --db: the definitions (files, directories, Git sources). Default: the ones
    /// `barge serve` last loaded into this store.
    #[arg(short = 'f', long = "definitions", value_name = "PATH")]
    pub definitions: Vec<String>,
}

impl Target {
    /// The token from --token-file (or BARGE_TOKEN_FILE), else BARGE_TOKEN.
    fn token(&self) -> Result<String> {
        crate::api::read(self.token_file.as_deref())?
            .context("--server needs the server's token: set BARGE_TOKEN or --token-file FILE")
    }
}

/// The definitions for a call against the store.
async fn definitions(target: &Target, store: &barge_store::Store) -> Result<barge_core::Catalog> {
    if !target.definitions.is_empty() {
        let paths = target.definitions.clone();
        let catalog = tokio::task::spawn_blocking(move || crate::load_catalog(&paths)).await??;
        if catalog.errors() > 0 {
            bail!(
                "the definitions have errors:\n{}",
                render::diagnostics_text(&catalog, false)
            );
        }
        return Ok(catalog);
    }
    Ok(stored_definitions(store).await?.unwrap_or_default())
}

/// The definitions `barge serve` last recorded in the store, loaded and validated.
pub async fn stored_definitions(store: &barge_store::Store) -> Result<Option<barge_core::Catalog>> {
    Ok(store.latest_definitions().await?.map(|d| {
        let mut catalog = barge_core::Catalog::default();
        for (file, text) in &d.texts {
            catalog.load_text(file, text);
        }
        barge_core::validate::validate(&mut catalog);
        catalog
    }))
}

/// Runs a call where the target says.
pub async fn call(target: &Target, c: Call) -> Result<Value> {
    if let Some(server) = &target.server {
        let token = target.token()?;
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
        return Ok(body);
    }
    let store = barge_store::Store::open_for_one_call(&target.db).await?;
    let needs_definitions = !matches!(
        c,
        Call::GetFreight { .. }
            | Call::GetPromotions { .. }
            | Call::History { .. }
            | Call::Abort { .. }
            | Call::Alias { .. }
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
            target.db
        );
    }
    let cx = ops::Context {
        store: &store,
        catalog: &catalog,
        refresh: None,
        health: None,
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

/// `: message`, or nothing when there is none.
fn reason(message: &Value) -> String {
    message
        .as_str()
        .filter(|m| !m.is_empty())
        .map(|m| format!(": {m}"))
        .unwrap_or_default()
}

fn s(v: &Value) -> String {
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
pub fn stages_text(v: &Value) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no stages\n".into();
    }
    let mut rows = vec![vec![
        "PROJECT".to_string(),
        "STAGE".into(),
        "WAREHOUSE".into(),
        "CURRENT".into(),
        "VERIFIED".into(),
        "AUTO".into(),
        "STATE".into(),
        "WHY".into(),
    ]];
    for st in &list {
        for r in st["requests"].as_array().into_iter().flatten() {
            let current = &r["current"];
            rows.push(vec![
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
                if st["autoPromotion"] == true {
                    "yes".into()
                } else {
                    "no".into()
                },
                s(&r["state"]),
                s(&r["message"]),
            ]);
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

pub fn warehouses_text(v: &Value) -> String {
    let mut rows = vec![vec![
        "PROJECT".to_string(),
        "WAREHOUSE".into(),
        "INTERVAL".into(),
        "FREIGHT".into(),
        "NEWEST".into(),
        "LAST DISCOVERY".into(),
        "ERROR".into(),
    ]];
    for w in v.as_array().into_iter().flatten() {
        rows.push(vec![
            s(&w["project"]),
            s(&w["name"]),
            s(&w["interval"]),
            s(&w["freight"]),
            s(&w["newest"]),
            w["lastDiscovery"].as_i64().map_or("never".into(), time),
            s(&w["error"]),
        ]);
    }
    table(rows)
}

pub fn freight_text(v: &Value) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no freight stored\n".into();
    }
    let mut rows = vec![vec![
        "NAME".to_string(),
        "ALIAS".into(),
        "WAREHOUSE".into(),
        "CREATED".into(),
        "IN".into(),
        "VERIFIED IN".into(),
        "ARTIFACTS".into(),
    ]];
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
        rows.push(vec![
            s(&f["metadata"]["name"]).chars().take(12).collect(),
            s(&f["alias"]),
            s(&f["warehouse"]),
            time(f["createdAt"].as_i64().unwrap_or(0)),
            keys("currentlyIn"),
            keys("verifiedIn"),
            artifacts.join(", "),
        ]);
    }
    table(rows)
}

pub fn promotions_text(v: &Value) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no promotions\n".into();
    }
    let mut rows = vec![vec![
        "NAME".to_string(),
        "STAGE".into(),
        "FREIGHT".into(),
        "PHASE".into(),
        "ACTOR".into(),
        "CREATED".into(),
        "MESSAGE".into(),
    ]];
    for p in &list {
        rows.push(vec![
            s(&p["name"]),
            s(&p["stage"]),
            short(&p["freight"]),
            s(&p["phase"]),
            s(&p["actor"]),
            time(p["createdAt"].as_i64().unwrap_or(0)),
            s(&p["message"]),
        ]);
    }
    let mut out = table(rows);
    if list.len() == 1 {
        for step in list[0]["steps"].as_array().into_iter().flatten() {
            out += &format!("  {:<24} {}\n", s(&step["alias"]), s(&step["status"]));
        }
    }
    out
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
