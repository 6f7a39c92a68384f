//! How the replicas of `barge serve` on one database share the work, without a leader: each
//! writes a heartbeat and renews the leases it holds (promotions, verifications, discovery
//! passes) every third of a lease; a Warehouse is discovered under a lease, by whichever
//! replica takes it once it is due. Every lease is measured by the database's clock
//! (`Store::now`), so replicas whose clocks disagree still agree on who holds what.
//! ARCHITECTURE.md ("Replicas") says why row leases, not advisory locks.

use barge_store::{DiscoveryClaim, Store};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How soon a replica tries again after the database did not answer.
const AFTER_DB_ERROR: Duration = Duration::from_secs(2);

/// A lease's length in milliseconds, as the store takes it.
fn ms(lease: Duration) -> i64 {
    lease.as_millis() as i64
}

/// How often a replica that shares the Stages with others reads the projects' change
/// counters (one small read), so that a change another replica made reaches the Stage's
/// decider within about this long.
const CHANGES_EVERY: Duration = Duration::from_secs(1);

/// What the heartbeat task last read of the other replicas, for the reconciler: which Stages
/// this replica decides, and while it shares them, every project's change counter. Published
/// on a `watch` channel, so the reconciler reads no membership per pass and wakes once when
/// either changes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Membership {
    pub(crate) deciding: Deciding,
    /// `(project, counter)` by project while the Stages are shared; empty otherwise.
    pub(crate) changes: Vec<(String, i64)>,
}

/// Writes this replica's heartbeat and renews the leases it holds, at once and then every
/// third of a lease, until the process ends (also while running work finishes after a
/// signal). A database that does not answer for less than two thirds of a lease costs no
/// lease.
///
/// While someone subscribes to `membership` (the reconciler; none in a `--once` run), each
/// heartbeat also reads the live replicas and publishes this replica's share of the Stages,
/// and while that share is shared, the change counters are read every CHANGES_EVERY and
/// published when they moved. The membership is therefore at most a third of a lease old: a
/// replica that joins is seen (and a dead one's heartbeat seen aged out) one heartbeat later
/// at most. The first value is published after the first heartbeat, so the reconciler's
/// first pass already knows its share.
pub(crate) async fn keep_alive(
    store: Store,
    owner: String,
    lease: Duration,
    membership: watch::Sender<Option<Membership>>,
) {
    let host = barge_engine::promote::host_name();
    let version = env!("CARGO_PKG_VERSION");
    let mut starting = true;
    let mut next_beat = Instant::now();
    let mut deciding = Deciding::All;
    loop {
        let watched = membership.receiver_count() > 0;
        if Instant::now() >= next_beat {
            next_beat = Instant::now() + lease / 3;
            match store.heartbeat(&owner, &host, version, starting).await {
                Ok(now) => {
                    starting = false;
                    if let Err(e) = store.renew_leases(&owner, now + ms(lease)).await {
                        tracing::warn!("cannot renew leases: {e}");
                    }
                }
                Err(e) => tracing::warn!("cannot write this replica's heartbeat: {e}"),
            }
            // The reads for the reconciler are bounded, so that a slow database delays the next
            // heartbeat and lease renewal by at most a sixth of a lease; a read cut short keeps
            // what was read before.
            if watched && let Ok(now) = tokio::time::timeout(lease / 6, read_deciding(&store, &owner, lease)).await {
                deciding = now;
            }
        }
        if watched {
            let changes = if deciding.shared() {
                match tokio::time::timeout(lease / 6, store.project_versions()).await {
                    Ok(Ok(changes)) => changes,
                    // Kept as they were: a read that fails is no change.
                    failed => {
                        if let Ok(Err(e)) = failed {
                            tracing::debug!("cannot read the change counters: {e}");
                        }
                        membership
                            .borrow()
                            .as_ref()
                            .map(|m| m.changes.clone())
                            .unwrap_or_default()
                    }
                }
            } else {
                Vec::new()
            };
            let now = Membership {
                deciding: deciding.clone(),
                changes,
            };
            // Receivers wake only when something they decide by moved.
            membership.send_if_modified(|last| {
                let moved = last.as_ref() != Some(&now);
                if moved {
                    *last = Some(now);
                }
                moved
            });
        }
        let wake = if watched && deciding.shared() {
            next_beat.min(Instant::now() + CHANGES_EVERY)
        } else {
            next_beat
        };
        tokio::time::sleep_until(wake).await;
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

/// Which Stages this replica's reconciler decides (auto-promotions, verifications to start,
/// holds to clear). Every replica decided every Stage, so with three replicas each
/// auto-promotion was tried by all three and refused by the database for all but one.
///
/// Each Stage falls to one of the live replicas (heartbeats within a lease, by the database's
/// clock) by rendezvous hashing: the replica whose hash with the Stage is highest decides it.
/// A replica that joins takes only the Stages it now wins; one that dies hands over only its
/// own once its heartbeat ages out, and until then its Stages wait (at most a lease, as its
/// promotions do). Nothing rests on the replicas agreeing: during a change of membership two
/// replicas may both decide a Stage, and the database still creates at most one promotion
/// (`create_promotion`'s check and its `one_unfinished_promotion_per_stage` index).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Deciding {
    /// Every Stage: the only replica (SQLite, a `--once` run, or no other live heartbeat),
    /// or the live replicas could not be read (the database's constraints keep it safe).
    All,
    /// The Stages whose rendezvous hash `me` wins among `live` (which includes `me`).
    Share { me: String, live: Vec<String> },
}

impl Deciding {
    /// The share of replica `me` among the live replicas `live` (`me` counts as live even
    /// when its own heartbeat was not written yet).
    pub(crate) fn among(me: &str, mut live: Vec<String>) -> Deciding {
        if !live.iter().any(|id| id == me) {
            live.push(me.to_string());
        }
        if live.len() == 1 {
            return Deciding::All;
        }
        live.sort();
        Deciding::Share {
            me: me.to_string(),
            live,
        }
    }

    /// Whether this replica decides Stage `stage` of `project`.
    pub(crate) fn decides(&self, project: &str, stage: &str) -> bool {
        match self {
            Deciding::All => true,
            Deciding::Share { me, live } => {
                // The highest hash wins; ties (never in practice) go to the first id.
                let winner = live
                    .iter()
                    .map(|id| (stage_hash(id, project, stage), std::cmp::Reverse(id)))
                    .max()
                    .map(|(_, std::cmp::Reverse(id))| id);
                winner == Some(me)
            }
        }
    }

    /// Whether other replicas decide some Stages (so changes they make must be watched for).
    pub(crate) fn shared(&self) -> bool {
        matches!(self, Deciding::Share { .. })
    }
}

/// The Stages this replica decides now: its share among the replicas whose heartbeat is
/// within a lease, read from the database. Every Stage when the database cannot say.
async fn read_deciding(store: &Store, owner: &str, lease: Duration) -> Deciding {
    if store.backend() == barge_store::Backend::Sqlite {
        // One replica per SQLite file (the serve lock): nobody to share with.
        return Deciding::All;
    }
    match store.live_replicas(ms(lease)).await {
        Ok(live) => Deciding::among(owner, live),
        Err(e) => {
            tracing::warn!("cannot read the live replicas (deciding every Stage): {e}");
            Deciding::All
        }
    }
}

/// A hash of (replica, project, Stage) that every replica and every build computes alike
/// (FNV-1a over the three, NUL-separated, then a 64-bit finaliser for an even spread):
/// replicas of different versions during a rolling upgrade still agree on who decides what.
fn stage_hash(replica: &str, project: &str, stage: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [replica, project, stage] {
        for &b in part.as_bytes().iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // splitmix64's finaliser.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}")).collect()
    }

    fn stages() -> Vec<String> {
        (0..300).map(|i| format!("stage-{i}")).collect()
    }

    /// The replicas deciding each Stage, among `live`.
    fn deciders(live: &[String], stage: &str) -> Vec<String> {
        live.iter()
            .filter(|me| Deciding::among(me, live.to_vec()).decides("demo", stage))
            .cloned()
            .collect()
    }

    #[test]
    fn each_stage_falls_to_exactly_one_live_replica_and_the_share_is_even() {
        let live = ids(3);
        let mut counts = [0usize; 3];
        for stage in stages() {
            let who = deciders(&live, &stage);
            assert_eq!(who.len(), 1, "{stage}: {who:?}");
            counts[live.iter().position(|id| *id == who[0]).unwrap()] += 1;
        }
        // 100 each on average; a fair hash stays well within this.
        assert!(counts.iter().all(|&c| (70..=130).contains(&c)), "{counts:?}");
    }

    #[test]
    fn a_replica_that_leaves_hands_over_only_its_own_stages() {
        let three = ids(3);
        let two: Vec<String> = three[..2].to_vec();
        for stage in stages() {
            let before = deciders(&three, &stage);
            let after = deciders(&two, &stage);
            assert_eq!(after.len(), 1);
            if before[0] != "r2" {
                assert_eq!(before, after, "{stage} moved though its replica stayed");
            }
        }
    }

    #[test]
    fn alone_or_unlisted_a_replica_decides_what_its_share_says() {
        assert_eq!(Deciding::among("r0", vec![]), Deciding::All);
        assert_eq!(Deciding::among("r0", vec!["r0".into()]), Deciding::All);
        // Its own heartbeat not written yet: it still counts itself.
        let share = Deciding::among("r1", vec!["r0".into()]);
        assert_eq!(
            share,
            Deciding::Share {
                me: "r1".into(),
                live: vec!["r0".into(), "r1".into()]
            }
        );
        // The hash is fixed (not std's, which may change between Rust releases): replicas
        // built apart agree on who decides what.
        assert_eq!(stage_hash("r0", "demo", "stage-0"), 0x12b5_3c22_57a3_c35d);
        assert_ne!(stage_hash("r0", "demo", "stage-0"), stage_hash("r1", "demo", "stage-0"));
    }

    /// The heartbeat task publishes this replica's share with its first beat, the change
    /// counters when another replica moves them, and a dead replica's departure once its
    /// heartbeat aged out (PostgreSQL: replicas share only there). The lease is long and the
    /// waits generous, so that a loaded machine cannot age r0 out early or miss a deadline;
    /// the only time bound asserted is the one that cannot depend on load (r0 is not dropped
    /// before its heartbeat is a lease old).
    #[tokio::test]
    async fn the_heartbeat_publishes_the_share_the_counters_and_a_departure() {
        use tokio::time::{Instant, timeout};
        let store = Store::open(&barge_testkit::postgres::postgres_url()).await.unwrap();
        let lease = Duration::from_secs(10);
        store.heartbeat("r0", "host-0", "1.0", true).await.unwrap();
        let membership = watch::Sender::new(None);
        let mut seen = membership.subscribe();
        let task = tokio::spawn(keep_alive(store.clone(), "r1".into(), lease, membership));
        let first = timeout(Duration::from_secs(5), seen.wait_for(Option::is_some))
            .await
            .expect("no share published after the first heartbeat")
            .unwrap()
            .clone()
            .unwrap();
        assert_eq!(
            first.deciding,
            Deciding::Share {
                me: "r1".into(),
                live: vec!["r0".into(), "r1".into()]
            }
        );
        assert_eq!(first.changes, vec![], "no project has changed yet");
        // Another replica's change (r0 releasing a Stage) moves demo's counter; it is read
        // every CHANGES_EVERY while the Stages are shared, well before r0 ages out.
        // r0 beats again first, so that its lease covers this part however long the first
        // took on a loaded machine; its departure is timed from this beat.
        let before_r0_beat = Instant::now();
        store.heartbeat("r0", "host-0", "1.0", false).await.unwrap();
        store.release_stage("demo", "dev", "r0", 1).await.unwrap();
        let counters = timeout(
            lease / 2,
            seen.wait_for(|m| m.as_ref().is_some_and(|m| !m.changes.is_empty())),
        )
        .await
        .expect("the moved counter was not published")
        .unwrap()
        .clone()
        .unwrap();
        assert_eq!(counters.changes, vec![("demo".to_string(), 1)]);
        assert!(counters.deciding.shared(), "r0 is still live");
        // r0 beats no more: its share falls to r1 once its last heartbeat is a lease old (at
        // most a beat, a third of a lease, later).
        let alone = timeout(
            lease * 3,
            seen.wait_for(|m| m.as_ref().is_some_and(|m| m.deciding == Deciding::All)),
        )
        .await;
        assert!(alone.is_ok(), "r0's Stages did not move to r1");
        let after = before_r0_beat.elapsed();
        // (Less 100 ms for the database's millisecond timestamps against this clock.)
        assert!(
            after >= lease - Duration::from_millis(100),
            "r0 was dropped {after:?} after its heartbeat, before a lease"
        );
        task.abort();
    }
}
