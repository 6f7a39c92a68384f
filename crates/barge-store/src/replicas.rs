//! Coordination of several `barge serve` replicas on one database: the database's clock,
//! replica heartbeats, and the discovery lease of each Warehouse.
//!
//! Every lease is a row whose `lease_until` is compared with the DATABASE's clock, never a
//! replica's: replicas whose clocks disagree still agree on who holds what. A claim is one
//! atomic `UPDATE … WHERE <free> RETURNING`, so of replicas claiming at once exactly one wins
//! and the others move on without waiting (the `SKIP LOCKED` queue semantics, without
//! holding a row lock across the work).

use crate::{Backend, Store, StoreError};
use serde::Serialize;
use sqlx::Row;

/// A replica as `barge get replicas` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    pub id: String,
    pub host: String,
    pub version: String,
    /// Unix milliseconds, database time.
    pub started_at: i64,
    /// Unix milliseconds, database time.
    pub heartbeat_at: i64,
    /// How long ago its last heartbeat was, by the database's clock (milliseconds).
    pub heartbeat_age_ms: i64,
    /// The promotions, verifications and Warehouse discoveries whose leases it holds now.
    pub promotions: Vec<String>,
    pub verifications: Vec<String>,
    pub warehouses: Vec<String>,
}

/// Whether a Warehouse's discovery lease was taken, and if not, when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscoveryClaim {
    /// This replica runs the pass; it started at this database time.
    Taken { started_at: i64 },
    /// Not due, or another replica's pass runs: try again in this many milliseconds.
    NotNow { retry_in_ms: i64 },
}

impl Store {
    /// The database's clock as Unix milliseconds, in SQL.
    fn db_now(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        }
    }

    /// `sql` with `{now}` replaced by the database's clock. Only this crate's literal
    /// statements and the two clock expressions above go in: nothing from outside.
    pub(crate) fn at_db_time(&self, sql: &'static str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(sql.replace("{now}", self.db_now()))
    }

    /// The database's clock (Unix milliseconds): what every lease is measured by.
    pub async fn now(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(self.at_db_time("SELECT {now} AS now"))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("now")?)
    }

    /// Records that replica `id` is alive (and, when `starting`, that it started now);
    /// returns the database time of the heartbeat.
    pub async fn heartbeat(&self, id: &str, host: &str, version: &str, starting: bool) -> Result<i64, StoreError> {
        // The clock is read once per statement: PostgreSQL's clock_timestamp() moves
        // between two reads in one row, and a started replica's start must equal its
        // first heartbeat.
        let sql = if starting {
            "INSERT INTO replicas (id, host, version, started_at, heartbeat_at) \
             SELECT $1, $2, $3, t.now, t.now FROM (SELECT {now} AS now) AS t WHERE true \
             ON CONFLICT (id) DO UPDATE SET host = $2, version = $3, \
               started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at \
             RETURNING heartbeat_at"
        } else {
            "INSERT INTO replicas (id, host, version, started_at, heartbeat_at) \
             SELECT $1, $2, $3, t.now, t.now FROM (SELECT {now} AS now) AS t WHERE true \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at RETURNING heartbeat_at"
        };
        let row = sqlx::query(self.at_db_time(sql))
            .bind(id)
            .bind(host)
            .bind(version)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("heartbeat_at")?)
    }

    /// Every replica that ever wrote a heartbeat, with what it holds now, newest heartbeat
    /// first.
    pub async fn list_replicas(&self) -> Result<Vec<Replica>, StoreError> {
        let rows = sqlx::query(self.at_db_time(
            "SELECT id, host, version, started_at, heartbeat_at, {now} - heartbeat_at AS age FROM replicas ORDER BY heartbeat_at DESC, id",
        ))
        .fetch_all(&self.pool)
        .await?;
        let promotions = self
            .holders("SELECT owner, name AS what FROM promotions WHERE phase = 'Running' AND lease_until >= {now} ORDER BY name")
            .await?;
        let verifications = self
            .holders("SELECT owner, id AS what FROM verifications WHERE phase = 'Running' AND lease_until >= {now} ORDER BY id")
            .await?;
        let warehouses = self
            .holders(
                "SELECT owner, project || '/' || warehouse AS what FROM discovery_leases WHERE lease_until >= {now} ORDER BY project, warehouse",
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let of =
                    |all: &[(String, String)]| all.iter().filter(|(o, _)| *o == id).map(|(_, w)| w.clone()).collect();
                Ok(Replica {
                    host: r.try_get("host")?,
                    version: r.try_get("version")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    heartbeat_age_ms: r.try_get("age")?,
                    promotions: of(&promotions),
                    verifications: of(&verifications),
                    warehouses: of(&warehouses),
                    id,
                })
            })
            .collect()
    }

    /// The replicas whose last heartbeat is at most `within_ms` old by the database's clock,
    /// by id: the live ones, among which the reconcilers share the Stages to decide.
    pub async fn live_replicas(&self, within_ms: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(self.at_db_time("SELECT id FROM replicas WHERE heartbeat_at >= {now} - $1 ORDER BY id"))
            .bind(within_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Every project's change counter ([`Store::project_version`]), by project: one small
    /// read that tells a replica whether anything a Stage is decided from changed, whichever
    /// replica or process wrote it.
    pub async fn project_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT project, version FROM project_changes ORDER BY project")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("project")?, r.try_get("version")?)))
            .collect()
    }

    /// (owner, what) pairs of a query over leases.
    async fn holders(&self, sql: &'static str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(self.at_db_time(sql)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("owner")?, r.try_get("what")?)))
            .collect()
    }

    /// Takes the discovery lease of a Warehouse for `owner` for `lease_ms` when it is due (its
    /// next pass is due, a refresh was asked for since its last pass started, or that pass
    /// never ended: its replica died and its lease ran out) and no other
    /// replica's lease runs (`owner`'s own is one it held before it restarted).
    pub async fn claim_discovery(
        &self,
        project: &str,
        warehouse: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<DiscoveryClaim, StoreError> {
        sqlx::query("INSERT INTO discovery_leases (project, warehouse) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(project)
            .bind(warehouse)
            .execute(&self.pool)
            .await?;
        let taken = sqlx::query(self.at_db_time(
            "UPDATE discovery_leases SET owner = $3, lease_until = {now} + $4, started_at = {now} \
             WHERE project = $1 AND warehouse = $2 AND (lease_until < {now} OR owner = $3) \
               AND (due_at <= {now} OR requested_at >= started_at OR owner <> '') \
             RETURNING started_at",
        ))
        .bind(project)
        .bind(warehouse)
        .bind(owner)
        .bind(lease_ms)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = taken {
            return Ok(DiscoveryClaim::Taken {
                started_at: row.try_get("started_at")?,
            });
        }
        let row = sqlx::query(self.at_db_time(
            "SELECT due_at, lease_until, CAST(CASE WHEN requested_at >= started_at THEN 1 ELSE 0 END AS BIGINT) AS requested, {now} AS now \
             FROM discovery_leases WHERE project = $1 AND warehouse = $2",
        ))
        .bind(project)
        .bind(warehouse)
        .fetch_one(&self.pool)
        .await?;
        let (due_at, lease_until, now): (i64, i64, i64) =
            (row.try_get("due_at")?, row.try_get("lease_until")?, row.try_get("now")?);
        let requested = row.try_get::<i64, _>("requested")? == 1;
        // While another replica's pass runs it may end at any moment: a refresh waiting for it
        // is tried again soon rather than when the lease would run out.
        let retry_at = if lease_until >= now && requested {
            lease_until.min(now + DISCOVERY_RECHECK_MS)
        } else {
            due_at.max(lease_until + 1)
        };
        Ok(DiscoveryClaim::NotNow {
            retry_in_ms: (retry_at - now).max(1),
        })
    }

    /// Ends `owner`'s pass of a Warehouse: the lease is freed and the next pass is due at
    /// `next_due` (database time). False when `owner` no longer held the lease (it ran out
    /// and another replica took it).
    pub async fn finish_discovery(
        &self,
        project: &str,
        warehouse: &str,
        owner: &str,
        next_due: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE discovery_leases SET owner = '', lease_until = 0, due_at = $4 \
             WHERE project = $1 AND warehouse = $2 AND owner = $3",
        )
        .bind(project)
        .bind(warehouse)
        .bind(owner)
        .bind(next_due)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Asks for a pass of a Warehouse now, whichever replica takes it.
    pub async fn request_discovery(&self, project: &str, warehouse: &str) -> Result<(), StoreError> {
        sqlx::query(self.at_db_time(
            "INSERT INTO discovery_leases (project, warehouse, requested_at) VALUES ($1, $2, {now}) \
             ON CONFLICT (project, warehouse) DO UPDATE SET requested_at = {now}",
        ))
        .bind(project)
        .bind(warehouse)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// How often a replica looks again at a Warehouse whose refresh waits for another replica's
/// pass to end.
const DISCOVERY_RECHECK_MS: i64 = 1_000;
