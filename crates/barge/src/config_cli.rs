//! `barge config get-contexts|current-context|use-context|set-context|delete-context` and
//! `barge login`: the CLI's contexts ([`crate::contexts`]), with kubectl's verbs.

use crate::contexts::{self, Context, Contexts};
use crate::render::table;
use crate::{Format, client};
use anyhow::{Context as _, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum ConfigWhat {
    /// List the contexts; `*` marks the current one.
    ///
    /// Examples:
    ///   barge config get-contexts
    ///   barge config get-contexts -o yaml
    #[command(verbatim_doc_comment)]
    GetContexts {
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Print the current context's name.
    CurrentContext,
    /// Make a context the current one: verbs told no --server and no --db ask its server.
    ///
    /// Example:
    ///   barge config use-context prod
    #[command(verbatim_doc_comment)]
    UseContext {
        /// The context's name (`barge config get-contexts` lists them).
        name: String,
    },
    /// Add a context, or change the fields given of an existing one (the others stay).
    ///
    /// The token file's path is stored, never the token: barge reads the file at each call.
    /// `barge login` does the same after checking the token against the server.
    ///
    /// Examples:
    ///   barge config set-context prod --server https://barge.example.com --token-file ~/.config/barge/prod.token --project shop
    ///   barge config set-context prod --project payments
    #[command(verbatim_doc_comment)]
    SetContext(SetContextArgs),
    /// Remove a context (the current context is unset when it is the one removed).
    DeleteContext { name: String },
}

#[derive(clap::Args, Debug)]
pub struct SetContextArgs {
    name: String,
    /// The `barge serve` to ask (its --listen address as a URL).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The file holding the server's bearer token (stored as an absolute path).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The project verbs act in when they are given no --project.
    #[arg(long)]
    project: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The `barge serve` to log in to, e.g. https://barge.example.com.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The file holding your token (`barge token create ... > FILE` makes one).
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// The context to save (default: the server's host and port).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// The context's default project.
    #[arg(long)]
    project: Option<String>,
}

pub fn run(what: ConfigWhat) -> Result<ExitCode> {
    let file = contexts::path()?;
    let mut all = Contexts::load(&file)?;
    match what {
        ConfigWhat::GetContexts { output } => {
            client::print(output, &all, || contexts_text(&all))?;
        }
        ConfigWhat::CurrentContext => {
            let current = all.current(&file)?.with_context(|| {
                format!(
                    "no current context in {}; `barge config use-context NAME` sets one",
                    file.display()
                )
            })?;
            println!("{}", current.name);
        }
        ConfigWhat::UseContext { name } => {
            all.named(&name, &file)?;
            all.current_context = Some(name.clone());
            all.save(&file)?;
            println!("Switched to context {name:?}.");
        }
        ConfigWhat::SetContext(a) => {
            let token_file = a.token_file.map(std::path::absolute).transpose()?;
            let known = all.contexts.iter().any(|c| c.name == a.name);
            all.set(Context {
                name: a.name.clone(),
                server: a.server,
                token_file,
                project: a.project,
            });
            all.save(&file)?;
            let done = if known { "modified" } else { "created" };
            println!("Context {:?} {done}.", a.name);
        }
        ConfigWhat::DeleteContext { name } => {
            all.named(&name, &file)?;
            all.contexts.retain(|c| c.name != name);
            if all.current_context.as_deref() == Some(name.as_str()) {
                all.current_context = None;
            }
            all.save(&file)?;
            println!("Deleted context {name:?} from {}.", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// kubectl's `config get-contexts` table.
fn contexts_text(all: &Contexts) -> String {
    if all.contexts.is_empty() {
        return "no contexts (`barge login` or `barge config set-context` adds one)\n".into();
    }
    let mut rows = vec![
        ["CURRENT", "NAME", "SERVER", "TOKEN FILE", "PROJECT"]
            .map(String::from)
            .to_vec(),
    ];
    for c in &all.contexts {
        let current = all.current_context.as_deref() == Some(c.name.as_str());
        rows.push(vec![
            if current { "*" } else { "" }.to_string(),
            c.name.clone(),
            c.server.clone().unwrap_or_default(),
            c.token_file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            c.project.clone().unwrap_or_default(),
        ]);
    }
    table(rows)
}

/// `barge login`: checks the token against the server (`GET /api/v1/whoami`), then saves the
/// context (server, the token file's path, project) and makes it current. A refused token
/// changes nothing.
pub fn login(a: LoginArgs) -> Result<ExitCode> {
    let token = barge_server::api::read(Some(&a.token_file), &[])?.context("no token")?;
    let me = crate::block_on(crate::rest_client::whoami(&a.server, &token))
        .with_context(|| format!("{} refused the token in {}", a.server, a.token_file.display()))?;
    let name = match a.context {
        Some(name) => name,
        None => default_name(&a.server)?,
    };
    let file = contexts::path()?;
    let mut all = Contexts::load(&file)?;
    all.set(Context {
        name: name.clone(),
        server: Some(a.server.clone()),
        token_file: Some(std::path::absolute(&a.token_file)?),
        project: a.project,
    });
    all.current_context = Some(name.clone());
    all.save(&file)?;
    println!(
        "Logged in to {} as {} ({}); context {name:?} is now current.",
        a.server,
        me["actor"].as_str().unwrap_or_default(),
        me["role"].as_str().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// A context's name from its server: the host and port (`barge.example.com`,
/// `127.0.0.1:7070`).
fn default_name(server: &str) -> Result<String> {
    let url = reqwest::Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
    let host = url
        .host_str()
        .with_context(|| format!("--server {server:?} names no host"))?;
    Ok(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}
