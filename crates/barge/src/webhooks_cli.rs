//! `barge get webhooks`: the webhook receivers the definitions configure and the URL path each
//! is served at by `barge serve --listen` (Kargo's scheme; docs/reference/webhooks.md).

use crate::{Format, client};
use anyhow::Result;
use barge_engine::config;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct GetWebhooksArgs {
    /// The definitions (files, directories, Git sources).
    #[arg(required = true)]
    paths: Vec<String>,
    /// Only this project's receivers (ClusterConfig's are listed with an empty project).
    #[arg(long)]
    project: Option<String>,
    /// barge's configuration file: its `secrets` hold the receivers' secrets.
    #[arg(long, value_name = "FILE", env = "BARGE_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

pub fn get_webhooks(args: GetWebhooksArgs) -> Result<ExitCode> {
    let catalog = match crate::load(&args.paths) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let secrets = match &args.config {
        Some(path) => config::Config::load(path)?.read_secrets()?,
        None => Default::default(),
    };
    let (receivers, problems) = barge_core::webhook::receivers(&catalog, &secrets);
    let list: Vec<Value> = receivers
        .iter()
        .filter(|r| args.project.as_deref().is_none_or(|p| r.project == p))
        .map(|r| json!({"project": r.project, "name": r.name, "provider": r.provider.key(), "url": r.path}))
        .collect();
    client::print(args.output, &Value::Array(list), table)?;
    for p in &problems {
        eprintln!("barge: error: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn table(list: &Value) -> String {
    let rows: Vec<[String; 4]> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| ["project", "name", "provider", "url"].map(|k| r[k].as_str().unwrap_or_default().to_string()))
        .collect();
    if rows.is_empty() {
        return "no webhook receivers\n".into();
    }
    let header = ["PROJECT", "NAME", "PROVIDER", "URL"].map(str::to_string);
    let width = |i: usize| rows.iter().chain([&header]).map(|r| r[i].len()).max().unwrap_or(0);
    let widths = [width(0), width(1), width(2)];
    [&header]
        .into_iter()
        .chain(&rows)
        .map(|r| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        })
        .collect()
}
