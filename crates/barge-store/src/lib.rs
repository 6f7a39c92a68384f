//! barge's durable state: Freight, each Warehouse's last discovery, and the append-only audit
//! log, in SQLite (one file, the embedded default) or PostgreSQL (shared by several replicas).
//!
//! One implementation serves both databases through sqlx's `Any` driver: the SQL is portable
//! (`$n` placeholders, TEXT JSON, BIGINT unix-millisecond times) and only the DDL differs
//! (`migrations/sqlite`, `migrations/postgres`). One conformance suite (tests/conformance.rs)
//! runs against both.

#![forbid(unsafe_code)]

use barge_core::freight;
use barge_core::model::kargo::Freight;
use barge_core::promotion::Phase;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or opened.
    #[error("cannot open the store {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the store's schema could not be migrated: {0}")]
    Migrate(String),
    /// A write lost to a concurrent one more times than it retried.
    #[error("conflicting concurrent writes: {0}")]
    Conflict(String),
    #[error("store query failed: {0}")]
    Query(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A user aborted the promotion; its runner must stop.
    #[error("promotion {0} was aborted")]
    Aborted(String),
    /// The writer no longer holds the lease of the promotion or verification (it ran out, or
    /// another runner took it): the write was refused and the writer must stop that work.
    #[error("{0}: this runner no longer holds its lease (another runner took it over)")]
    LeaseLost(String),
}

impl StoreError {
    pub fn class(&self) -> barge_core::ErrorClass {
        match self {
            StoreError::Connect { .. } | StoreError::Query(_) => barge_core::ErrorClass::Transient,
            StoreError::Conflict(_) | StoreError::Aborted(_) | StoreError::LeaseLost(_) => {
                barge_core::ErrorClass::Conflict
            }
            StoreError::NotFound(_) => barge_core::ErrorClass::NotFound,
            StoreError::Migrate(_) | StoreError::Corrupt(_) => barge_core::ErrorClass::Invalid,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(e.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A Freight as stored: its project, origin warehouse and when it was first minted.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFreight {
    pub project: String,
    pub warehouse: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub freight: Freight,
}

/// A Warehouse's Freight counted, and its newest (see [`Store::warehouse_freight`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseFreight {
    pub minted: i64,
    pub newest_name: Option<String>,
    pub newest_alias: Option<String>,
}

/// A Freight without its artifacts: what deciding a project's Stages reads of each.
#[derive(Clone, Debug, PartialEq)]
pub struct FreightHead {
    pub name: String,
    pub alias: String,
    pub warehouse: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// The result of minting: the Freight, and whether this call created it.
#[derive(Clone, Debug, PartialEq)]
pub struct Minted {
    pub created: bool,
    pub freight: StoredFreight,
}

/// One audit event.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct AuditEvent {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub project: String,
    /// `freight.minted`, `promotion.started`, ...
    pub kind: String,
    /// What the event is about (`Freight/<name>`).
    pub subject: String,
    /// Who caused it (`barge`, a user).
    pub actor: String,
    /// The Stage it concerns ('' when none), for `barge history --stage`.
    pub stage: String,
    /// The Freight (name) it concerns ('' when none), for `barge history --freight`.
    pub freight: String,
    pub body: serde_json::Value,
}

/// An audit event to append.
#[derive(Clone, Copy, Debug)]
pub struct NewAudit<'a> {
    /// Unix milliseconds.
    pub at: i64,
    pub project: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub actor: &'a str,
    /// The Stage it concerns ('' when none).
    pub stage: &'a str,
    /// The Freight (name) it concerns ('' when none).
    pub freight: &'a str,
    pub body: &'a serde_json::Value,
}

/// A stored promotion: its plan (JSON, as inflated at creation) and run state (JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPromotion {
    pub project: String,
    pub name: String,
    pub stage: String,
    pub freight: String,
    pub actor: String,
    pub phase: Phase,
    pub message: String,
    pub plan: serde_json::Value,
    pub state: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a runner needs of a promotion to choose whether to claim it: no plan, no run state
/// (a claimed one is loaded by its claim, [`Store::claim_promotion_returning`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PromotionHead {
    pub project: String,
    pub name: String,
    pub stage: String,
    /// The config repository its plan clones first, as the template spells it; empty when it
    /// clones none or was created without it ([`Store::create_promotion_with_repo`]).
    pub config_repo: String,
    pub created_at: i64,
}

/// The promotions table's columns, for queries that must stay literal strings.
macro_rules! promotion_columns {
    () => {
        "project, name, stage, freight, actor, phase, message, plan, state, created_at, updated_at"
    };
}

/// The audit table's columns, for queries that must stay literal strings.
macro_rules! audit_columns {
    () => {
        "id, at, project, kind, subject, actor, stage, freight, body"
    };
}

mod memo;
mod outbox;
mod replicas;
#[macro_use]
mod stages;
mod tokens;
mod verifications;
mod work;
pub use outbox::{Attempt, NewNotification, Notification, ROUTABLE_KINDS};
pub use replicas::{DiscoveryClaim, Replica};
pub use stages::{AuditQuery, Definitions, FreightStage, HoldChange, StageEntry, StageHold, StoredApproval};
pub use tokens::{NewToken, StoredToken};
pub use verifications::Verification;

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// What [`Store::derived`] keeps; none in a store opened for one call.
    memo: Option<std::sync::Arc<memo::Memo>>,
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub use barge_core::secret::redact_url;

impl Store {
    /// Opens (and migrates) a store for a daemon or a promotion run: `sqlite://PATH` (created
    /// if missing, WAL) or `postgres://user:pass@host:port/db`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, Use::Daemon).await
    }

    /// Opens (and migrates) a store for one CLI call: a single connection. The calls are
    /// sequential, and a pool of several would open a second PostgreSQL connection (a
    /// server process forked) while the first is still being returned after the schema check.
    pub async fn open_for_one_call(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, Use::OneCall).await
    }

    async fn open_with(url: &str, usage: Use) -> Result<Store, StoreError> {
        install_default_drivers();
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: redact_url(url),
            message: e.to_string(),
        };
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let (file, query) = path.split_once('?').unwrap_or((path, ""));
            if let Some(parent) = std::path::Path::new(file)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Connect {
                    url: url.to_string(),
                    message: format!("cannot create {}: {e}", parent.display()),
                })?;
            }
            let query = if query.contains("mode=") {
                query.to_string()
            } else if query.is_empty() {
                "mode=rwc".into()
            } else {
                format!("{query}&mode=rwc")
            };
            (Backend::Sqlite, format!("sqlite://{file}?{query}"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Connect {
                url: redact_url(url),
                message: "use sqlite://PATH or postgres://USER@HOST:PORT/DB".into(),
            });
        };
        let mut options = AnyPoolOptions::new().max_connections(match (usage, backend) {
            (Use::OneCall, _) => 1,
            (Use::Daemon, Backend::Sqlite) => 4,
            (Use::Daemon, Backend::Postgres) => 10,
        });
        if backend == Backend::Sqlite {
            // A daemon at rest keeps one connection: the others (and their page caches) close
            // after a minute unused.
            options = options
                .min_connections(1)
                .idle_timeout(std::time::Duration::from_secs(60))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Readers never block the writer; a writer waits for another instead of failing.
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        // 512 KiB of page cache per connection (SQLite's default is 2 MiB); the
                        // operating system caches the file as well.
                        sqlx::query("PRAGMA cache_size = -512").execute(&mut *conn).await?;
                        Ok(())
                    })
                });
        }
        let pool = options.connect(&url).await.map_err(connect_err)?;
        let memo = match usage {
            Use::Daemon => Some(std::sync::Arc::default()),
            Use::OneCall => None,
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
        };
        // The common case, a schema already current, costs one query instead of the migrator's
        // lock, table check and listing (a dozen round trips on PostgreSQL).
        if schema_is_current(&pool, migrator).await {
            return Ok(Store { pool, backend, memo });
        }
        // PostgreSQL migrations take an advisory lock; SQLite's take none, so two barge
        // processes opening a new file at once (a daemon starting, a CLI verb) would both
        // create the tables. A lock file beside the database serialises them.
        let _migrating = match backend {
            Backend::Sqlite => Some(sqlite_migration_lock(&url)?),
            Backend::Postgres => None,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Store { pool, backend, memo })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers a trivial query (`SELECT 1`), on a pooled connection the
    /// pool checks first (a new one when none is idle), for the daemon's readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that read first cannot upgrade once another
    /// writer committed (SQLITE_BUSY_SNAPSHOT), whereas an immediate one waits its turn.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// The project's change counter: raised by every committed write that changes what its
    /// Stages' status is decided from (Freight, Freight/Stage facts, approvals, holds,
    /// promotions, verifications), by any process or replica. 0 before the first. State read
    /// after reading counter N is at least as new as every write that raised it to N, so a
    /// copy read then stays current while the counter still says N.
    pub async fn project_version(&self, project: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM project_changes WHERE project = $1")
            .bind(project)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("version")?,
            None => 0,
        })
    }

    /// Stores Freight unless it exists (minting is idempotent: the same discovery twice mints
    /// nothing new), choosing an alias unique in the project, and audits the mint. The
    /// Freight's `alias` is ignored on input.
    pub async fn mint_freight(
        &self,
        project: &str,
        warehouse: &str,
        mut f: Freight,
        now: i64,
    ) -> Result<Minted, StoreError> {
        let found = |row: sqlx::any::AnyRow| -> Result<Minted, StoreError> {
            let body: String = row.try_get("body")?;
            let created_at: i64 = row.try_get("created_at")?;
            let freight = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(Minted {
                created: false,
                freight: StoredFreight {
                    project: project.into(),
                    warehouse: warehouse.into(),
                    created_at,
                    freight,
                },
            })
        };
        const EXISTING: &str = "SELECT body, created_at FROM freight WHERE project = $1 AND name = $2";
        // Most discovery passes find the Freight they mint already there: one read, without
        // opening (and rolling back) a write transaction. Freight is immutable, so what is
        // found stays true; one not found is looked for again inside the transaction.
        let existing = sqlx::query(EXISTING)
            .bind(project)
            .bind(&f.metadata.name)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = existing {
            return found(row);
        }
        for _ in 0..5 {
            let mut tx = self.write_tx().await?;
            let existing = sqlx::query(EXISTING)
                .bind(project)
                .bind(&f.metadata.name)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                tx.rollback().await?;
                return found(row);
            }
            let taken: std::collections::HashSet<String> = sqlx::query("SELECT alias FROM freight WHERE project = $1")
                .bind(project)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("alias"))
                .collect::<Result<_, _>>()?;
            let alias = freight::alias(&f.metadata.name, &|a| taken.contains(a));
            f.alias = Some(alias.clone());
            f.metadata.namespace = Some(project.to_string()).filter(|p| !p.is_empty());
            let body = serde_json::to_string(&f).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let inserted = sqlx::query("INSERT INTO freight (project, name, alias, warehouse, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(project)
                .bind(&f.metadata.name)
                .bind(&alias)
                .bind(warehouse)
                .bind(&body)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                // Another writer minted the same Freight or took the alias: look again.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    tx.rollback().await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let event = serde_json::json!({"warehouse": warehouse, "alias": alias, "freight": f});
            let subject = format!("Freight/{}", f.metadata.name);
            insert_audit(
                &mut tx,
                NewAudit {
                    at: now,
                    project,
                    kind: "freight.minted",
                    subject: &subject,
                    actor: "barge",
                    stage: "",
                    freight: &f.metadata.name,
                    body: &event,
                },
            )
            .await?;
            crate::changed(&mut tx, project).await?;
            tx.commit().await?;
            return Ok(Minted {
                created: true,
                freight: StoredFreight {
                    project: project.into(),
                    warehouse: warehouse.into(),
                    created_at: now,
                    freight: f,
                },
            });
        }
        Err(StoreError::Conflict(format!(
            "minting Freight {} kept conflicting with concurrent writers",
            f.metadata.name
        )))
    }

    /// Freight, newest first, optionally of one project and warehouse.
    pub async fn list_freight(
        &self,
        project: Option<&str>,
        warehouse: Option<&str>,
    ) -> Result<Vec<StoredFreight>, StoreError> {
        let rows = sqlx::query(
            "SELECT project, warehouse, body, created_at FROM freight \
             WHERE ($1 = '' OR project = $1) AND ($2 = '' OR warehouse = $2) \
             ORDER BY created_at DESC, name DESC",
        )
        .bind(project.unwrap_or(""))
        .bind(warehouse.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored).collect()
    }

    /// One page of a project's Freight and the page's Freight/Stage facts, for the REST API's
    /// `?limit=` pages without reading the whole project: newest first by the creation time to
    /// the second and then the name (the order the API's cursors name: Kargo's `metav1.Time` is
    /// to the second), after `after` (the previous page's last second and name), at most
    /// `limit`, optionally of one Warehouse. One read transaction, so the facts are those of
    /// the Freight answered.
    pub async fn freight_page(
        &self,
        project: &str,
        warehouse: Option<&str>,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<(Vec<StoredFreight>, Vec<stages::FreightStage>), StoreError> {
        // The page's rows, shared by both queries; `$3 = 0` is the first page. Integer
        // division truncates the same in SQLite and PostgreSQL.
        macro_rules! page_rows {
            ($columns:literal) => {
                concat!(
                    "SELECT ",
                    $columns,
                    " FROM freight WHERE project = $1 AND ($2 = '' OR warehouse = $2) \
                     AND ($3 = 0 OR created_at / 1000 < $4 OR (created_at / 1000 = $4 AND name < $5)) \
                     ORDER BY created_at / 1000 DESC, name DESC LIMIT $6"
                )
            };
        }
        let (has_after, second, name) = match after {
            Some((second, name)) => (1_i64, second, name),
            None => (0, 0, ""),
        };
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(page_rows!("project, warehouse, body, created_at"))
            .bind(project)
            .bind(warehouse.unwrap_or(""))
            .bind(has_after)
            .bind(second)
            .bind(name)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let facts = sqlx::query(concat!(
            "SELECT ",
            freight_stage_columns!(),
            " FROM freight_stages WHERE project = $1 AND freight IN (",
            page_rows!("name"),
            ") ORDER BY stage, freight"
        ))
        .bind(project)
        .bind(warehouse.unwrap_or(""))
        .bind(has_after)
        .bind(second)
        .bind(name)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let freight = rows.iter().map(stored).collect::<Result<_, _>>()?;
        let facts = facts.iter().map(stages::freight_stage_row).collect::<Result<_, _>>()?;
        Ok((freight, facts))
    }

    /// One page of a project's Freight as [`Store::freight_page`] reads it, without the facts:
    /// for a reader that has the project's facts already (the daemon keeps them,
    /// `Store::derived`), which spares reading a row per Freight and Stage for every page.
    pub async fn freight_page_only(
        &self,
        project: &str,
        warehouse: Option<&str>,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<StoredFreight>, StoreError> {
        let (has_after, second, name) = match after {
            Some((second, name)) => (1_i64, second, name),
            None => (0, 0, ""),
        };
        let rows = sqlx::query(
            "SELECT project, warehouse, body, created_at FROM freight WHERE project = $1 AND ($2 = '' OR warehouse = $2) \
             AND ($3 = 0 OR created_at / 1000 < $4 OR (created_at / 1000 = $4 AND name < $5)) \
             ORDER BY created_at / 1000 DESC, name DESC LIMIT $6",
        )
        .bind(project)
        .bind(warehouse.unwrap_or(""))
        .bind(has_after)
        .bind(second)
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored).collect()
    }

    /// How many Freight a Warehouse has minted, and the newest one's name and alias (`get
    /// warehouses`), without reading every Freight.
    pub async fn warehouse_freight(&self, project: &str, warehouse: &str) -> Result<WarehouseFreight, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS minted, \
               (SELECT name FROM freight WHERE project = $1 AND warehouse = $2 \
                ORDER BY created_at DESC, name DESC LIMIT 1) AS newest_name, \
               (SELECT alias FROM freight WHERE project = $1 AND warehouse = $2 \
                ORDER BY created_at DESC, name DESC LIMIT 1) AS newest_alias \
             FROM freight WHERE project = $1 AND warehouse = $2",
        )
        .bind(project)
        .bind(warehouse)
        .fetch_one(&self.pool)
        .await?;
        Ok(WarehouseFreight {
            minted: row.try_get("minted")?,
            newest_name: row.try_get("newest_name")?,
            newest_alias: row.try_get("newest_alias")?,
        })
    }

    /// Every Freight of a project without its body, newest first as [`Store::list_freight`]
    /// orders them: a project's Stage decisions read these, and parsing every body there
    /// cost more than the decisions (BENCHMARKS.md, "REST API").
    pub async fn freight_heads(&self, project: &str) -> Result<Vec<FreightHead>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, alias, warehouse, created_at FROM freight WHERE project = $1 \
             ORDER BY created_at DESC, name DESC",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FreightHead {
                    name: r.try_get("name")?,
                    alias: r.try_get("alias")?,
                    warehouse: r.try_get("warehouse")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// One Freight by name (ID) or alias.
    pub async fn get_freight(&self, project: &str, name_or_alias: &str) -> Result<Option<StoredFreight>, StoreError> {
        let row = sqlx::query(
            "SELECT project, warehouse, body, created_at FROM freight WHERE project = $1 AND (name = $2 OR alias = $2)",
        )
        .bind(project)
        .bind(name_or_alias)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stored).transpose()
    }

    /// Records a Warehouse's latest discovery pass.
    pub async fn put_discovery_status(
        &self,
        project: &str,
        warehouse: &str,
        status: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        let body = status.to_string();
        sqlx::query(
            "INSERT INTO discovery_status (project, warehouse, body, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project, warehouse) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(project)
        .bind(warehouse)
        .bind(&body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A Warehouse's latest discovery pass and when it was recorded.
    pub async fn get_discovery_status(
        &self,
        project: &str,
        warehouse: &str,
    ) -> Result<Option<(serde_json::Value, i64)>, StoreError> {
        let row = sqlx::query("SELECT body, updated_at FROM discovery_status WHERE project = $1 AND warehouse = $2")
            .bind(project)
            .bind(warehouse)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let body: String = r.try_get("body")?;
                Ok(Some((
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    r.try_get("updated_at")?,
                )))
            }
        }
    }

    /// Records what image discovery learned of a subscription (see `barge_registry::discover::
    /// ImageMemory`), keyed by the subscription's fingerprint.
    pub async fn put_image_memory(
        &self,
        fingerprint: &str,
        memory: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO image_memory (fingerprint, body, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (fingerprint) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(fingerprint)
        .bind(memory.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What image discovery last learned of the subscription with this fingerprint.
    pub async fn get_image_memory(&self, fingerprint: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM image_memory WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?;
        body.map(|b| serde_json::from_str(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Appends an audit event.
    pub async fn append_audit(&self, event: NewAudit<'_>) -> Result<(), StoreError> {
        // One statement, atomic on its own: no transaction around it (a BEGIN and a COMMIT
        // are two more round trips, for every step of every promotion).
        audit_insert(event).execute(&self.pool).await?;
        Ok(())
    }

    /// Audit events of a project (all projects when empty) at or after `since`, oldest first.
    pub async fn list_audit(&self, project: Option<&str>, since: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit WHERE ($1 = '' OR project = $1) AND at >= $2 ORDER BY at, id"
        ))
        .bind(project.unwrap_or(""))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// At most `limit` audit events with ids above `after`, in id order, of every project:
    /// what a watch (`?watch=true`) reads next. Every project's, so that a watcher sees the
    /// ids in between its project's and can tell a gap (an id not yet committed) from
    /// another project's event.
    pub async fn audit_after(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// The id of the newest audit event (0 when there is none): where a new watch starts.
    pub async fn last_audit_id(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS last FROM audit")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("last")?)
    }
}

impl Store {
    /// Records a new promotion and audits its creation. A second promotion for a stage that
    /// still has one Pending or Running is refused (one promotion per stage at a time).
    /// Its config repository is not known: a runner orders its claim like any other's.
    pub async fn create_promotion(&self, p: &StoredPromotion) -> Result<(), StoreError> {
        self.create_promotion_with_repo(p, None).await
    }

    /// [`Store::create_promotion`], recording the config repository its plan clones first
    /// (`barge_promote::Promotion::config_repo_of`): what replicas' runners order their
    /// claims by ([`PromotionHead::config_repo`]) without reading plans.
    pub async fn create_promotion_with_repo(
        &self,
        p: &StoredPromotion,
        config_repo: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let running = sqlx::query(
            "SELECT name FROM promotions WHERE project = $1 AND stage = $2 AND phase IN ('Pending', 'Running')",
        )
        .bind(&p.project)
        .bind(&p.stage)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = running {
            let name: String = row.try_get("name")?;
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "stage {} already has promotion {name} in progress; wait for it or abort it",
                p.stage
            )));
        }
        sqlx::query(concat!(
            "INSERT INTO promotions (",
            promotion_columns!(),
            ", config_repo) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&p.project)
        .bind(&p.name)
        .bind(&p.stage)
        .bind(&p.freight)
        .bind(&p.actor)
        .bind(p.phase.as_str())
        .bind(&p.message)
        .bind(p.plan.to_string())
        .bind(p.state.to_string())
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(config_repo.unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            // Another writer queued one for this Stage in the meantime.
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!(
                "stage {} already has a promotion in progress; wait for it or abort it",
                p.stage
            )),
            e => e.into(),
        })?;
        let subject = format!("Promotion/{}", p.name);
        let body = serde_json::json!({"stage": p.stage, "freight": p.freight});
        insert_audit(
            &mut tx,
            NewAudit {
                at: p.created_at,
                project: &p.project,
                kind: "promotion.created",
                subject: &subject,
                actor: &p.actor,
                stage: &p.stage,
                freight: &p.freight,
                body: &body,
            },
        )
        .await?;
        crate::changed(&mut tx, &p.project).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A stage's promotion that has not finished (Pending or Running), if any: what a
    /// restarted barge resumes.
    pub async fn unfinished_promotion(
        &self,
        project: &str,
        stage: &str,
    ) -> Result<Option<StoredPromotion>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", promotion_columns!(), " FROM promotions WHERE project = $1 AND stage = $2 AND phase IN ('Pending', 'Running') ORDER BY created_at LIMIT 1"))
        .bind(project)
        .bind(stage)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(promotion_row).transpose()
    }

    /// Promotions, newest first, optionally of one project and stage.
    pub async fn list_promotions(
        &self,
        project: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Vec<StoredPromotion>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", promotion_columns!(), " FROM promotions WHERE ($1 = '' OR project = $1) AND ($2 = '' OR stage = $2) ORDER BY created_at DESC, name DESC"))
        .bind(project.unwrap_or(""))
        .bind(stage.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(promotion_row).collect()
    }
}

impl Store {
    /// Merges `values` into the metadata of a Stage or Freight (keys set to null are removed)
    /// and audits the change.
    pub async fn merge_metadata(
        &self,
        project: &str,
        kind: &str,
        name: &str,
        values: &serde_json::Map<String, serde_json::Value>,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT body FROM metadata WHERE project = $1 AND kind = $2 AND name = $3")
            .bind(project)
            .bind(kind)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let mut body: serde_json::Map<String, serde_json::Value> = match row {
            Some(r) => {
                let text: String = r.try_get("body")?;
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?
            }
            None => serde_json::Map::new(),
        };
        for (k, v) in values {
            if v.is_null() {
                body.remove(k);
            } else {
                body.insert(k.clone(), v.clone());
            }
        }
        let text = serde_json::Value::Object(body).to_string();
        sqlx::query(
            "INSERT INTO metadata (project, kind, name, body, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (project, kind, name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(project)
        .bind(kind)
        .bind(name)
        .bind(&text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let subject = format!("{kind}/{name}");
        let event = serde_json::json!({"values": values});
        insert_audit(
            &mut tx,
            NewAudit {
                at: now,
                project,
                kind: "metadata.updated",
                subject: &subject,
                actor,
                stage: if kind == "Stage" { name } else { "" },
                freight: if kind == "Freight" { name } else { "" },
                body: &event,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// All metadata of one kind (`Stage` or `Freight`) in a project, by name.
    pub async fn list_metadata(
        &self,
        project: &str,
        kind: &str,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>, StoreError> {
        let rows = sqlx::query("SELECT name, body FROM metadata WHERE project = $1 AND kind = $2")
            .bind(project)
            .bind(kind)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("body")?;
                Ok((
                    r.try_get("name")?,
                    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ))
            })
            .collect()
    }

    /// Renames a Freight's alias (set-freight-alias, `barge update freight --alias`); the
    /// alias must be free in the project.
    pub async fn set_freight_alias(
        &self,
        project: &str,
        name_or_alias: &str,
        alias: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT name, alias, body FROM freight WHERE project = $1 AND (name = $2 OR alias = $2)")
            .bind(project)
            .bind(name_or_alias)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Freight {name_or_alias} in project {project}")))?;
        let name: String = row.try_get("name")?;
        let old: String = row.try_get("alias")?;
        if let Some(other) = sqlx::query("SELECT name FROM freight WHERE project = $1 AND alias = $2 AND name <> $3")
            .bind(project)
            .bind(alias)
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?
        {
            let other: String = other.try_get("name")?;
            return Err(StoreError::Conflict(format!(
                "alias {alias:?} already names Freight {other}"
            )));
        }
        let body: String = row.try_get("body")?;
        let mut freight: barge_core::model::kargo::Freight =
            serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        freight.alias = Some(alias.to_string());
        let body = serde_json::to_string(&freight).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE freight SET alias = $1, body = $2 WHERE project = $3 AND name = $4")
            .bind(alias)
            .bind(&body)
            .bind(project)
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        let subject = format!("Freight/{name}");
        let event = serde_json::json!({"from": old, "to": alias});
        insert_audit(
            &mut tx,
            NewAudit {
                at: now,
                project,
                kind: "freight.aliased",
                subject: &subject,
                actor,
                stage: "",
                freight: &name,
                body: &event,
            },
        )
        .await?;
        crate::changed(&mut tx, project).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// An exclusive lock on `<database>.lock`, held while migrating (released when dropped).
/// Who opens a store, which decides its number of connections.
#[derive(Clone, Copy, PartialEq)]
enum Use {
    Daemon,
    OneCall,
}

/// Whether every migration this build knows is applied, successfully and unchanged, and no
/// other. Anything else (no table yet, a failed or edited migration, a newer schema) answers
/// no, and the migrator then applies or reports it.
async fn schema_is_current(pool: &AnyPool, migrator: &sqlx::migrate::Migrator) -> bool {
    // Failed migrations are left out, so they count as not applied.
    let Ok(rows) = sqlx::raw_sql("SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
    else {
        return false;
    };
    let mut applied = rows
        .iter()
        .map(|r| Ok::<_, sqlx::Error>((r.try_get::<i64, _>("version")?, r.try_get::<Vec<u8>, _>("checksum")?)));
    let known = migrator.iter().filter(|m| m.migration_type.is_up_migration());
    for m in known {
        match applied.next() {
            Some(Ok((version, checksum))) if version == m.version && checksum == *m.checksum => {}
            _ => return false,
        }
    }
    applied.next().is_none()
}

/// The file of a `sqlite://PATH?…` (or `sqlite:PATH`) URL; `None` for another database.
fn sqlite_file(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    path.split('?').next()
}

/// A SQLite store serves one `barge serve`: two daemons on one file would each discover,
/// claim and push as if alone (SQLite has no row leases across hosts, and a file on a network
/// share is not safely shared at all). The daemon holds an exclusive lock on
/// `<database>.serve.lock` while it runs (released when the returned file is dropped, or the
/// process dies), and a second daemon is refused with the first one's process id. `None` for
/// PostgreSQL, which coordinates several replicas.
pub fn lock_single_replica(url: &str) -> Result<Option<std::fs::File>, StoreError> {
    use std::io::{Read as _, Seek as _, Write as _};
    let Some(file) = sqlite_file(url) else {
        return Ok(None);
    };
    let path = format!("{file}.serve.lock");
    let cannot = |e: std::io::Error| StoreError::Connect {
        url: url.to_string(),
        message: format!("cannot lock {path}: {e}"),
    };
    if let Some(parent) = std::path::Path::new(&path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(cannot)?;
    }
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(cannot)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(StoreError::Conflict(format!(
                "another `barge serve`{holder} is running on the SQLite database {file}: SQLite serves one replica; stop that one first, or run several replicas on PostgreSQL (--db postgres://…)"
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
    }
    // Who holds it, for the message above.
    lock.set_len(0).map_err(cannot)?;
    lock.rewind().map_err(cannot)?;
    write!(lock, "{}", std::process::id()).map_err(cannot)?;
    Ok(Some(lock))
}

fn sqlite_migration_lock(url: &str) -> Result<std::fs::File, StoreError> {
    let file = sqlite_file(url).unwrap_or(url);
    let path = format!("{file}.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Migrate(format!("cannot open {path}: {e}")))?;
    lock.lock()
        .map_err(|e| StoreError::Migrate(format!("cannot lock {path}: {e}")))?;
    Ok(lock)
}

pub(crate) fn audit_row(r: &sqlx::any::AnyRow) -> Result<AuditEvent, StoreError> {
    let body: String = r.try_get("body")?;
    Ok(AuditEvent {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        project: r.try_get("project")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        actor: r.try_get("actor")?,
        stage: r.try_get("stage")?,
        freight: r.try_get("freight")?,
        body: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

fn promotion_row(r: &sqlx::any::AnyRow) -> Result<StoredPromotion, StoreError> {
    let json = |col: &str| -> Result<serde_json::Value, StoreError> {
        let text: String = r.try_get(col)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
    };
    Ok(StoredPromotion {
        project: r.try_get("project")?,
        name: r.try_get("name")?,
        stage: r.try_get("stage")?,
        freight: r.try_get("freight")?,
        actor: r.try_get("actor")?,
        phase: {
            let text: String = r.try_get("phase")?;
            Phase::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("promotion phase {text:?}")))?
        },
        message: r.try_get("message")?,
        plan: json("plan")?,
        state: json("state")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Raises the project's change counter ([`Store::project_version`]) in the writing
/// transaction, so the counter and the change commit together. Call it last, just before the
/// commit: on PostgreSQL the counter's row stays locked until then, and a transaction that
/// takes that lock last waits on nothing while it holds it (so it cannot deadlock another
/// writer of the project); writers of one project serialise only for their commits.
async fn changed(tx: &mut sqlx::Transaction<'_, sqlx::Any>, project: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO project_changes (project, version) VALUES ($1, 1) \
         ON CONFLICT (project) DO UPDATE SET version = project_changes.version + 1",
    )
    .bind(project)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_audit(tx: &mut sqlx::Transaction<'_, sqlx::Any>, e: NewAudit<'_>) -> Result<(), StoreError> {
    audit_insert(e).execute(&mut **tx).await?;
    Ok(())
}

/// The statement that appends one audit row.
fn audit_insert(e: NewAudit<'_>) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    // A kind routing can notify of is written unrouted: the notification outbox's routing
    // takes it (outbox.rs, `route_audit`). Any other is routed already.
    let routed = i32::from(!outbox::ROUTABLE_KINDS.contains(&e.kind));
    sqlx::query(
        "INSERT INTO audit (at, project, kind, subject, actor, stage, freight, body, routed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.at)
    .bind(e.project)
    .bind(e.kind)
    .bind(e.subject)
    .bind(e.actor)
    .bind(e.stage)
    .bind(e.freight)
    .bind(e.body.to_string())
    .bind(routed)
}

fn stored(r: &sqlx::any::AnyRow) -> Result<StoredFreight, StoreError> {
    let body: String = r.try_get("body")?;
    Ok(StoredFreight {
        project: r.try_get("project")?,
        warehouse: r.try_get("warehouse")?,
        created_at: r.try_get("created_at")?,
        freight: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}
