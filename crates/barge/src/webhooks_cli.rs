//! `barge get webhooks`: the webhook receivers the definitions configure and the URL path each
//! is served at by `barge serve --listen` (Kargo's scheme; docs/reference/webhooks.md).

use crate::{Format, client};
use anyhow::Result;
use barge_core::webhook::Listing;
use barge_engine::config;
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
    let list: Vec<Listing> = receivers
        .iter()
        .filter(|r| args.project.as_deref().is_none_or(|p| r.project == p))
        .map(|r| r.listing())
        .collect();
    client::print(args.output, &list, || table(&list))?;
    for p in &problems {
        eprintln!("barge: error: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn table(list: &[Listing]) -> String {
    if list.is_empty() {
        return "no webhook receivers\n".into();
    }
    let header = ["PROJECT", "NAME", "PROVIDER", "URL"].map(String::from).to_vec();
    let rows = list
        .iter()
        .map(|r| [r.project, r.name, r.provider, r.url].map(String::from).to_vec());
    crate::render::table(std::iter::once(header).chain(rows).collect())
}
