//! The API's tokens: a name, what it may do, and the SHA-256 of the token (never the token:
//! the caller hashes it, and the store neither sees nor keeps it). A revoked token stays, for
//! the record, and keeps its name taken. Creation and revocation are audited in the same
//! transaction. Times are Unix milliseconds.

use crate::{NewAudit, Store, StoreError, insert_audit};
use barge_core::authz::Role;
use serde::Serialize;
use sqlx::Row;

/// A token as stored, without its hash.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredToken {
    pub name: String,
    pub role: Role,
    pub project: Option<String>,
    pub stages: Option<Vec<String>>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A token to store: `hash` is the hex SHA-256 of the token.
#[derive(Clone, Copy, Debug)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub hash: &'a str,
    pub role: Role,
    pub project: Option<&'a str>,
    pub stages: Option<&'a [String]>,
}

macro_rules! columns {
    () => {
        "name, role, project, stages, created_at, revoked_at, last_used_at"
    };
}

fn row(r: &sqlx::any::AnyRow) -> Result<StoredToken, StoreError> {
    let role: String = r.try_get("role")?;
    let project: String = r.try_get("project")?;
    let stages: Option<String> = r.try_get("stages")?;
    Ok(StoredToken {
        name: r.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("token role {role:?}")))?,
        project: Some(project).filter(|p| !p.is_empty()),
        stages: stages
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("token stages: {e}")))?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

impl Store {
    /// Stores a token and audits its creation; a name already taken (also by a revoked
    /// token) is a conflict.
    pub async fn create_token(&self, t: NewToken<'_>, actor: &str, now: i64) -> Result<StoredToken, StoreError> {
        let stages = t
            .stages
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO tokens (name, hash, role, project, stages, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.name)
        .bind(t.hash)
        .bind(t.role.as_str())
        .bind(t.project.unwrap_or(""))
        .bind(stages)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!(
                "a token named {:?} exists already (revoked tokens keep their names)",
                t.name
            )),
            e => e.into(),
        })?;
        let token = StoredToken {
            name: t.name.to_string(),
            role: t.role,
            project: t.project.map(str::to_string),
            stages: t.stages.map(<[String]>::to_vec),
            created_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        audit(&mut tx, &token, "token.created", actor, now).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Every token, revoked ones included, by name.
    pub async fn list_tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", columns!(), " FROM tokens ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row).collect()
    }

    /// The token whose SHA-256 is `hash`, revoked or not.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<StoredToken>, StoreError> {
        let found = sqlx::query(concat!("SELECT ", columns!(), " FROM tokens WHERE hash = $1"))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(row).transpose()
    }

    /// Records when a token was last used.
    pub async fn token_used(&self, name: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE name = $2")
            .bind(now)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes a token from now on and audits it; revoking a revoked token changes nothing.
    pub async fn revoke_token(&self, name: &str, actor: &str, now: i64) -> Result<StoredToken, StoreError> {
        let mut tx = self.write_tx().await?;
        let found = sqlx::query(concat!("SELECT ", columns!(), " FROM tokens WHERE name = $1"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no token named {name:?}")))?;
        let mut token = row(&found)?;
        if token.revoked_at.is_some() {
            tx.rollback().await?;
            return Ok(token);
        }
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE name = $2")
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        token.revoked_at = Some(now);
        audit(&mut tx, &token, "token.revoked", actor, now).await?;
        tx.commit().await?;
        Ok(token)
    }
}

async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    token: &StoredToken,
    kind: &str,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    let subject = format!("Token/{}", token.name);
    let body =
        serde_json::json!({"name": token.name, "role": token.role, "project": token.project, "stages": token.stages});
    insert_audit(
        tx,
        NewAudit {
            at: now,
            project: token.project.as_deref().unwrap_or(""),
            kind,
            subject: &subject,
            actor,
            stage: "",
            freight: "",
            body: &body,
        },
    )
    .await
}
