//! `barge token create|list|revoke`: the API's tokens, in-process (`--db`) or through
//! `barge serve` (`--server`, with an admin token).

use crate::client::{self, Kind, s};
use crate::render::{rfc3339_time, table};
use crate::{Format, GetFormat};
use anyhow::Result;
use barge_core::authz::Role;
use barge_engine::ops::Call;
use barge_engine::tokens::TokenCall;
use serde_json::Value;
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
            let v = crate::block_on(client::call(&a.target, c))?;
            // The token alone on stdout (`> file` keeps just it); what it is on stderr.
            client::print(a.output, &v, |v| format!("{}\n", s(&v["token"])))?;
            if a.output == Format::Text {
                eprintln!(
                    "barge: token {} created ({}); it is shown this once, keep it now",
                    s(&v["name"]),
                    scope(&v)
                );
            }
        }
        TokenWhat::List(a) => {
            let list = crate::block_on(client::call(&a.target, Call::Token(TokenCall::List)))?;
            client::print_get(a.output, &list, false, Kind::Token, list_text)?;
        }
        TokenWhat::Revoke(a) => {
            let c = Call::Token(TokenCall::Revoke {
                name: a.name,
                actor: a.actor,
            });
            let v = crate::block_on(client::call(&a.target, c))?;
            client::print(a.output, &v, |v| {
                format!("token {} revoked at {}\n", s(&v["name"]), rfc3339_time(&v["revokedAt"]))
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `promoter, project shop, Stages dev, staging`.
fn scope(v: &Value) -> String {
    let mut out = s(&v["role"]);
    if let Some(p) = v["project"].as_str() {
        out += &format!(", project {p}");
    }
    if let Some(stages) = v["stages"].as_array() {
        out += &format!(", Stages {}", stages.iter().map(s).collect::<Vec<_>>().join(", "));
    }
    out
}

/// The table (`-o wide` is the same: every column fits already).
fn list_text(v: &Value, _wide: bool) -> String {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no tokens\n".into();
    }
    let mut rows = vec![
        ["NAME", "ROLE", "PROJECT", "STAGES", "CREATED", "LAST USED", "REVOKED"]
            .map(String::from)
            .to_vec(),
    ];
    for t in &list {
        let stages = t["stages"]
            .as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","));
        rows.push(vec![
            s(&t["name"]),
            s(&t["role"]),
            t["project"].as_str().unwrap_or("*").to_string(),
            stages.unwrap_or_else(|| "*".into()),
            rfc3339_time(&t["createdAt"]),
            rfc3339_time(&t["lastUsedAt"]),
            rfc3339_time(&t["revokedAt"]),
        ]);
    }
    table(rows)
}
