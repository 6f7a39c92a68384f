//! `barge token create|list|revoke`: the API's tokens, in-process (`--db`) or through
//! `barge serve` (`--server`, with an admin token).

use crate::client;
use crate::render::{rfc3339_time, table};
use crate::{Format, GetFormat};
use anyhow::Result;
use barge_core::authz::Role;
use barge_engine::Answer;
use barge_engine::answer::TokenInfo;
use barge_engine::ops::Call;
use barge_engine::tokens::TokenCall;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum TokenWhat {
    /// Create a token and print it, once: only its SHA-256 is stored.
    ///
    /// Roles: `viewer` reads; `promoter` also promotes, approves, aborts, holds, releases
    /// and verifies (with --stages, only those Stages); `admin` does everything, tokens
    /// included. --project limits any role to one project.
    ///
    /// Examples:
    ///   barge token create --name wall --role viewer > wall.token
    ///   barge token create --name ci --role promoter --project shop --stages dev,staging
    ///   barge token create --name ops --role admin --server http://127.0.0.1:7070 -o json
    #[command(verbatim_doc_comment)]
    Create(CreateArgs),
    /// List tokens with their role, project, Stages and times (never the tokens).
    List(ListArgs),
    /// Revoke a token: from now on it is refused (401). Its name stays taken.
    Revoke(RevokeArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The token's name; the audit log records its calls as `token:NAME`.
    #[arg(long, value_parser = barge_server::api::parse_token_name)]
    name: String,
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// Only this project.
    #[arg(long)]
    project: Option<String>,
    /// A promoter's Stages (comma-separated); without it, every Stage.
    #[arg(long, value_delimiter = ',', value_name = "STAGE,...")]
    stages: Option<Vec<String>>,
    /// With --db only (in-process): who creates it, for the audit log. Through --server the
    /// audit log records the calling token.
    #[arg(long, env = "USER", default_value = "barge")]
    actor: String,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[arg(short, long, value_enum, default_value_t = GetFormat::Text)]
    output: GetFormat,
    #[command(flatten)]
    target: client::Target,
}

#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    name: String,
    /// With --db only (in-process): who revokes it, for the audit log.
    #[arg(long, env = "USER", default_value = "barge")]
    actor: String,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(flatten)]
    target: client::Target,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: viewer, promoter or admin"))
}

pub fn run(what: TokenWhat) -> Result<ExitCode> {
    match what {
        TokenWhat::Create(a) => {
            let c = Call::Token(TokenCall::Create {
                name: a.name,
                role: a.role,
                project: a.project,
                stages: a.stages,
                actor: a.actor,
            });
            let answer = crate::block_on(client::call(&a.target, c))?;
            client::print(a.output, &answer, || client::text(&answer, false))?;
            // The token alone is on stdout; what it is goes to stderr.
            if let (Format::Text, Answer::TokenCreated(created)) = (a.output, &answer) {
                eprintln!(
                    "barge: token {} created ({}); it is shown this once, keep it now",
                    created.info.name,
                    scope(&created.info)
                );
            }
        }
        TokenWhat::List(a) => {
            let list = crate::block_on(client::call(&a.target, Call::Token(TokenCall::List)))?;
            client::print_get(a.output, &list)?;
        }
        TokenWhat::Revoke(a) => {
            let c = Call::Token(TokenCall::Revoke {
                name: a.name,
                actor: a.actor,
            });
            let answer = crate::block_on(client::call(&a.target, c))?;
            client::print(a.output, &answer, || client::text(&answer, false))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `promoter, project shop, Stages dev, staging`.
fn scope(t: &TokenInfo) -> String {
    let mut out = t.role.to_string();
    if let Some(p) = &t.project {
        out += &format!(", project {p}");
    }
    if let Some(stages) = &t.stages {
        out += &format!(", Stages {}", stages.join(", "));
    }
    out
}

/// The table of `barge token list` (`-o wide` is the same: every column fits already).
pub fn list_text(list: &[TokenInfo]) -> String {
    if list.is_empty() {
        return "no tokens\n".into();
    }
    let mut rows = vec![
        ["NAME", "ROLE", "PROJECT", "STAGES", "CREATED", "LAST USED", "REVOKED"]
            .map(String::from)
            .to_vec(),
    ];
    let time = |t: &Option<String>| rfc3339_time(t.as_deref().unwrap_or_default());
    for t in list {
        rows.push(vec![
            t.name.clone(),
            t.role.to_string(),
            t.project.clone().unwrap_or_else(|| "*".into()),
            t.stages.as_ref().map(|s| s.join(",")).unwrap_or_else(|| "*".into()),
            rfc3339_time(&t.created_at),
            time(&t.last_used_at),
            time(&t.revoked_at),
        ]);
    }
    table(rows)
}
