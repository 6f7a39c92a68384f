//! How the replicas of `barge serve` on one database share the work, without a leader: each
//! writes a heartbeat and renews the leases it holds (promotions, verifications, discovery
//! passes) every third of a lease; a Warehouse is discovered under a lease, by whichever
//! replica takes it once it is due. Every lease is measured by the database's clock
//! (`Store::now`), so replicas whose clocks disagree still agree on who holds what.
//! ARCHITECTURE.md ("Replicas") says why row leases, not advisory locks.

use barge_store::{DiscoveryClaim, Store};
use std::time::Duration;

/// How soon a replica tries again after the database did not answer.
const AFTER_DB_ERROR: Duration = Duration::from_secs(2);

/// A lease's length in milliseconds, as the store takes it.
fn ms(lease: Duration) -> i64 {
    lease.as_millis() as i64
}

/// Writes this replica's heartbeat and renews the leases it holds, at once and then every
/// third of a lease, until the process ends (also while running work finishes after a
/// signal). A database that does not answer for less than two thirds of a lease costs no
/// lease.
pub(crate) async fn keep_alive(store: Store, owner: String, lease: Duration) {
    let host = barge_engine::promote::host_name();
    let version = env!("CARGO_PKG_VERSION");
    let mut starting = true;
    loop {
        match store.heartbeat(&owner, &host, version, starting).await {
            Ok(now) => {
                starting = false;
                if let Err(e) = store.renew_leases(&owner, now + ms(lease)).await {
                    tracing::warn!("cannot renew leases: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot write this replica's heartbeat: {e}"),
        }
        tokio::time::sleep(lease / 3).await;
    }
}

/// Whether this replica discovers a Warehouse now.
pub(crate) enum Turn {
    /// It holds the Warehouse's discovery lease; the pass started at this database time.
    Ours { started_at: i64 },
    /// Not due yet, another replica's pass runs, or the database did not answer: try again
    /// after this long.
    Later { retry_in: Duration },
}

/// Takes the discovery lease of the Warehouse `(project, name)` when it is due; a refresh
/// asked of this replica (`requested`) is recorded first, so that whichever replica takes the
/// lease next runs it.
pub(crate) async fn take_discovery(
    store: &Store,
    owner: &str,
    lease: Duration,
    (project, name): &(String, String),
    requested: bool,
) -> Turn {
    let claimed = async {
        if requested {
            store.request_discovery(project, name).await?;
        }
        store.claim_discovery(project, name, owner, ms(lease)).await
    };
    match claimed.await {
        Ok(DiscoveryClaim::Taken { started_at }) => Turn::Ours { started_at },
        Ok(DiscoveryClaim::NotNow { retry_in_ms }) => Turn::Later {
            retry_in: Duration::from_millis(retry_in_ms.max(1) as u64),
        },
        Err(e) => {
            tracing::warn!(warehouse = %name, "cannot take the discovery lease: {e}");
            Turn::Later {
                retry_in: AFTER_DB_ERROR,
            }
        }
    }
}

/// Ends this replica's pass: frees the lease and sets when the Warehouse is next due (from
/// the pass's start, by the database's clock). A database that does not answer is tried
/// again for up to a lease: giving up would let the lease run out and another replica repeat
/// the pass.
pub(crate) async fn end_discovery(
    store: &Store,
    owner: &str,
    lease: Duration,
    (project, name): &(String, String),
    schedule: Option<&barge_core::schedule::Schedule>,
    started_at: i64,
) {
    let next_due = schedule.map_or(i64::MAX, |s| s.next_due(Some(started_at), started_at));
    let deadline = tokio::time::Instant::now() + lease;
    loop {
        match store.finish_discovery(project, name, owner, next_due).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(warehouse = %name, "the discovery lease ran out during the pass; another replica may repeat it");
                return;
            }
            Err(e) if tokio::time::Instant::now() + AFTER_DB_ERROR < deadline => {
                tracing::warn!(warehouse = %name, "cannot end the discovery pass (trying again): {e}");
                tokio::time::sleep(AFTER_DB_ERROR).await;
            }
            Err(e) => {
                tracing::warn!(warehouse = %name, "cannot end the discovery pass: {e}");
                return;
            }
        }
    }
}
