//! API tokens: `barge token create|list|revoke`, and turning a presented bearer token into
//! the [`Principal`] it stands for.
//!
//! A token is `barge_` and 64 hex digits: 256 bits from the operating system's random
//! source. It is shown once, when created; the store keeps only its SHA-256. A hash that fast
//! is enough because the token has full entropy (nothing to guess with a dictionary), and it
//! makes the lookup an index search by hash rather than a comparison with the secret.

use crate::answer::{Answer, CreatedToken, TokenInfo};
use crate::error::{EngineError, invalid};
use crate::format::rfc3339;
use crate::promote::now_millis;
use barge_core::authz::{Principal, Role};
use barge_store::{NewToken, Store, StoredToken};

use sha2::Digest as _;

/// What every token starts with, so that secret scanners and people recognise one.
pub const PREFIX: &str = "barge_";

/// How often a token's `lastUsedAt` is written at most: the API's reads stay reads.
const LAST_USED_EVERY_MS: i64 = 60_000;

/// `barge token ...` as a call ([`crate::ops::Call::Token`]).
#[derive(Clone, Debug)]
pub enum TokenCall {
    Create {
        name: String,
        role: Role,
        project: Option<String>,
        stages: Option<Vec<String>>,
        actor: String,
    },
    List,
    Revoke {
        name: String,
        actor: String,
    },
}

impl TokenCall {
    /// The call's name in the audit log ([`crate::ops::Call::name`]).
    pub fn name(&self) -> &'static str {
        match self {
            TokenCall::Create { .. } => "token.create",
            TokenCall::List => "token.list",
            TokenCall::Revoke { .. } => "token.revoke",
        }
    }

    pub fn actor_mut(&mut self) -> Option<&mut String> {
        match self {
            TokenCall::Create { actor, .. } | TokenCall::Revoke { actor, .. } => Some(actor),
            TokenCall::List => None,
        }
    }
}

/// The hex SHA-256 of a token: what the store keeps and looks up.
pub fn hash(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new token: [`PREFIX`] and 256 random bits in hex.
fn generate() -> Result<String, EngineError> {
    let mut bits = [0u8; 32];
    getrandom::fill(&mut bits)
        .map_err(|e| EngineError::Internal(format!("no random numbers from the operating system: {e}")))?;
    Ok(bits.iter().fold(PREFIX.to_string(), |mut s, b| {
        s.push_str(&format!("{b:02x}"));
        s
    }))
}

/// Runs a token call (the caller has authorized it).
pub async fn handle(store: &Store, call: TokenCall) -> Result<Answer, EngineError> {
    let now = now_millis();
    Ok(match call {
        TokenCall::Create {
            name,
            role,
            project,
            stages,
            actor,
        } => {
            if !barge_core::authz::valid_token_name(&name) {
                return invalid!("{name:?} is not a token name: use 1 to 64 letters, digits, '.', '_' or '-'");
            }
            // The same rules as authentication's, checked before anything is stored.
            if let Err(e) = Principal::token(&name, role, project.clone(), stages.clone()) {
                return invalid!("{e}");
            }
            let secret = generate()?;
            let stored = store
                .create_token(
                    NewToken {
                        name: &name,
                        hash: &hash(&secret),
                        role,
                        project: project.as_deref(),
                        stages: stages.as_deref(),
                    },
                    &actor,
                    now,
                )
                .await?;
            Answer::TokenCreated(CreatedToken {
                info: token_info(stored),
                token: secret,
            })
        }
        TokenCall::List => Answer::Tokens(store.list_tokens().await?.into_iter().map(token_info).collect()),
        TokenCall::Revoke { name, actor } => {
            Answer::TokenRevoked(token_info(store.revoke_token(&name, &actor, now).await?))
        }
    })
}

/// A token as the API answers it (never with its hash), times in RFC 3339 like the other
/// answers.
fn token_info(t: StoredToken) -> TokenInfo {
    TokenInfo {
        name: t.name,
        role: t.role,
        project: t.project,
        stages: t.stages,
        created_at: rfc3339(t.created_at),
        revoked_at: t.revoked_at.map(rfc3339),
        last_used_at: t.last_used_at.map(rfc3339),
    }
}

/// Why a presented token stands for nobody.
#[derive(Debug, thiserror::Error)]
pub enum Unauthenticated {
    #[error("the bearer token is not one this server issued")]
    Unknown,
    #[error("the bearer token {0:?} was revoked")]
    Revoked(String),
}

/// The principal a stored token stands for, or why there is none. A token's `lastUsedAt` is
/// refreshed at most once a minute.
pub async fn authenticate(store: &Store, presented: &str) -> Result<Result<Principal, Unauthenticated>, EngineError> {
    let Some(token) = store.token_by_hash(&hash(presented)).await? else {
        return Ok(Err(Unauthenticated::Unknown));
    };
    if token.revoked_at.is_some() {
        return Ok(Err(Unauthenticated::Revoked(token.name)));
    }
    let now = now_millis();
    if token.last_used_at.is_none_or(|at| now - at >= LAST_USED_EVERY_MS)
        && let Err(e) = store.token_used(&token.name, now).await
    {
        tracing::warn!(token = %token.name, "cannot record the token's use: {e}");
    }
    // The store holds only what `create` checked: a token that is no principal is a fault.
    let principal = Principal::token(&token.name, token.role, token.project, token.stages)
        .map_err(|e| EngineError::Internal(format!("stored token {:?}: {e}", token.name)))?;
    Ok(Ok(principal))
}
