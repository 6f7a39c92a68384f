//! `barge get webhooks`: the webhook receivers the definitions configure and the URL path each
//! is served at by `barge serve --listen` (Kargo's scheme; docs/reference/webhooks.md), read
//! here from the definitions and secrets, or asked of a running `barge serve` (`--server`).

use crate::{Format, client};
use anyhow::Result;
use barge_engine::answer::WebhookInfo;
use barge_engine::{Answer, config, ops};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct GetWebhooksArgs {
    /// The definitions (files, directories, Git sources); not with --server, which lists the
    /// receivers it serves.
    #[arg(required_unless_present = "server", conflicts_with = "server")]
    paths: Vec<String>,
    #[command(flatten)]
    remote: client::Server,
    /// Only this project's receivers (ClusterConfig's are listed with an empty project).
    #[arg(long)]
    project: Option<String>,
    /// barge's configuration file: its `secrets` hold the receivers' secrets.
    #[arg(long, value_name = "FILE", env = "BARGE_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// The receivers: a table, or with `-o json|yaml` a `List` as every `barge get` listing
/// prints ([`client::list`]).
fn print(output: Format, list: &[WebhookInfo]) -> Result<()> {
    match output {
        Format::Text => client::print(output, &list, || table(list)),
        Format::Json | Format::Yaml => client::print(
            output,
            &client::list(serde_json::to_value(list)?.as_array().cloned().unwrap_or_default()),
            String::new,
        ),
    }
}

pub fn get_webhooks(args: GetWebhooksArgs) -> Result<ExitCode> {
    if args.remote.server.is_some() {
        let call = ops::Call::GetWebhooks { project: args.project };
        let Answer::Webhooks(list) = crate::block_on(client::call_server(&args.remote, call))? else {
            anyhow::bail!("barge serve answered with something else than its webhook receivers");
        };
        print(args.output, &list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let catalog = match crate::load(&args.paths) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let secrets = match &args.config {
        Some(path) => config::Config::load(path)?.read_secrets()?,
        None => Default::default(),
    };
    let (receivers, problems) = barge_core::webhook::receivers(&catalog, &secrets);
    let list: Vec<WebhookInfo> = receivers
        .iter()
        .filter(|r| args.project.as_deref().is_none_or(|p| r.project == p))
        .map(|r| WebhookInfo::of(&r.listing()))
        .collect();
    print(args.output, &list)?;
    for p in &problems {
        eprintln!("barge: error: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn table(list: &[WebhookInfo]) -> String {
    if list.is_empty() {
        return "no webhook receivers\n".into();
    }
    let header = ["PROJECT", "NAME", "PROVIDER", "URL"].map(String::from).to_vec();
    let rows = list
        .iter()
        .map(|r| vec![r.project.clone(), r.name.clone(), r.provider.clone(), r.url.clone()]);
    crate::render::table(std::iter::once(header).chain(rows).collect())
}
