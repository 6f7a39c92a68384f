//! What one PostgreSQL carries of the replicas' coordination (issue #19): barge's own store
//! calls, from many simulated replicas (each a `Store` with its own connection pool, as each
//! `barge serve` has), at one total concurrency split over 1, 2 and 3 replicas.
//!
//! - **floor**: `SELECT 1` round trips (`Store::ping`) at the same concurrency: what the
//!   server and the driver can do at all; every other figure is printed as a ratio of it.
//! - **promotion lifecycle**: what the daemon sends the database for one promotion of four
//!   steps: the reconciler creates it; a runner reads the database's clock, lists the runnable
//!   promotions and claims it; each step saves the run state; the end saves Succeeded.
//! - **claims**, **lease renewals** (heartbeat + renewal, as `keep_alive` does every third of
//!   a lease) and **completions**, each alone.
//! - **discovery leases**: claim + end of a Warehouse's pass.
//!
//! Transactions per promotion come from the server's own count (`pg_stat_database`).
//!
//! Run: cargo bench -p barge-store --bench replicas [-- PROMOTIONS]

#[path = "../tests/support/mod.rs"]
mod support;

use barge_core::promotion::Phase;
use barge_store::{Backend, Store, StoredPromotion};
use sqlx::any::install_default_drivers;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clients at once, whatever the number of replicas they are split over.
const CONCURRENCY: usize = 16;
const STEPS: usize = 4;
const LEASE_MS: i64 = 30_000;

/// A promotion as the reconciler stores it: a plan of four steps (about 1.5 KB, as a
/// Kargo-style template inflates).
fn promotion(name: &str, stage: &str) -> StoredPromotion {
    let step = |uses: &str| serde_json::json!({"uses": uses, "as": uses, "config": {"path": "./src/env/stage", "repoURL": "https://git.example.com/acme/config.git", "images": [{"image": "ghcr.io/acme/app"}], "message": "promote ${{ ctx.stage }}"}});
    StoredPromotion {
        project: "demo".into(),
        name: name.into(),
        stage: stage.into(),
        freight: "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00".into(),
        actor: "barge (auto-promotion)".into(),
        phase: Phase::Pending,
        message: String::new(),
        plan: serde_json::json!({"steps": [step("git-clone"), step("kustomize-set-image"), step("git-commit"), step("git-push")]}),
        state: serde_json::json!({}),
        created_at: 1,
        updated_at: 1,
    }
}

fn state(done: usize) -> serde_json::Value {
    let steps: Vec<_> = (0..done)
        .map(|i| serde_json::json!({"step": format!("step-{i}"), "status": "Succeeded", "outputs": {"commit": "0123456789abcdef0123456789abcdef01234567"}}))
        .collect();
    serde_json::json!({"steps": steps})
}

/// The server's committed and rolled-back transactions in this database so far. A backend
/// reports its statistics when it exits (a busy one also about every second, an idle one
/// only after ten), so callers close their pools first; this waits for the exits to land.
async fn transactions(url: &str) -> i64 {
    use sqlx::Row;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT CAST(xact_commit + xact_rollback AS BIGINT) AS n FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let n = row.get::<i64, _>("n");
    pool.close().await;
    n
}

/// A store per simulated replica, each with its own pool, as each `barge serve` has.
async fn open(url: &str, replicas: usize) -> Vec<Store> {
    let mut stores = Vec::new();
    for _ in 0..replicas {
        stores.push(Store::open(url).await.unwrap());
    }
    stores
}

/// Runs `job(replica, client, i)` for i in 0..n, split over CONCURRENCY clients spread over
/// the replicas; operations per second.
async fn rate<F, Fut>(replicas: &[Store], n: usize, job: F) -> f64
where
    F: Fn(Store, usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    rate_over(replicas, CONCURRENCY, n, job).await
}

/// `rate` with `clients` clients.
async fn rate_over<F, Fut>(replicas: &[Store], clients: usize, n: usize, job: F) -> f64
where
    F: Fn(Store, usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let job = Arc::new(job);
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for c in 0..clients {
        let store = replicas[c % replicas.len()].clone();
        let job = job.clone();
        running.spawn(async move {
            let mut i = c;
            while i < n {
                job(store.clone(), c, i).await;
                i += clients;
            }
        });
    }
    while let Some(r) = running.join_next().await {
        r.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2_000);
    let dir = tempfile::tempdir().unwrap();
    install_default_drivers();
    println!(
        "{n} promotions per case, {CONCURRENCY} clients at once, PostgreSQL at {}",
        barge_testkit::postgres::pg_bin()
    );
    println!(
        "| replicas | floor SELECT 1/s | lifecycle promotions/s (ratio to floor) | transactions per promotion | claims/s | renewals/s (one client per replica) | completions/s | discovery claim+end/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for replicas in [1usize, 2, 3] {
        let url = support::url(Backend::Postgres, &dir);
        let stores = open(&url, replicas).await;
        let floor = rate(&stores, n * 4, |s, _, _| async move { s.ping().await.unwrap() }).await;

        // The lifecycle, each promotion in a Stage of its own (one unfinished per Stage).
        let life = open(&url, replicas).await;
        let before = transactions(&url).await;
        let lifecycle = rate(&life, n, move |s, c, i| async move {
            let name = format!("life-{i}");
            let owner = format!("replica-{}", c % replicas);
            s.create_promotion(&promotion(&name, &format!("life-stage-{i}")))
                .await
                .unwrap();
            let now = s.now().await.unwrap();
            // As the runner: the heads listed, the claimed promotion (plan included) returned.
            let _ = s.runnable_promotions(&owner, now).await.unwrap();
            assert!(
                s.claim_promotion_returning("demo", &name, &owner, now + LEASE_MS, now)
                    .await
                    .unwrap()
                    .is_some()
            );
            for step in 1..=STEPS {
                s.save_promotion_state("demo", &name, &owner, &state(step), Phase::Running, "", now, None)
                    .await
                    .unwrap();
            }
            s.save_promotion_state("demo", &name, &owner, &state(STEPS), Phase::Succeeded, "", now, None)
                .await
                .unwrap();
        })
        .await;
        // Their connections end, and their backends report.
        drop(life);
        // Less the one the count itself took.
        let per_promotion = (transactions(&url).await - before - 1) as f64 / n as f64;

        // Claims alone, of promotions queued beforehand.
        for i in 0..n {
            stores[0]
                .create_promotion(&promotion(&format!("q-{i}"), &format!("q-stage-{i}")))
                .await
                .unwrap();
        }
        let claims = rate(&stores, n, move |s, c, i| async move {
            let now = s.now().await.unwrap();
            let owner = format!("replica-{}", c % replicas);
            assert!(
                s.claim_promotion("demo", &format!("q-{i}"), &owner, now + LEASE_MS, now)
                    .await
                    .unwrap()
            );
        })
        .await;
        // Renewals: each replica's heartbeat and lease renewal (its share of the n Running
        // promotions above), one at a time per replica as keep_alive sends them.
        let renewals = rate_over(&stores, replicas, n, move |s, c, _| async move {
            let owner = format!("replica-{}", c % replicas);
            let now = s.heartbeat(&owner, "bench", "0", false).await.unwrap();
            s.renew_leases(&owner, now + LEASE_MS).await.unwrap();
        })
        .await;
        // Item i runs on client i % CONCURRENCY in every `rate`: the replica that claimed it.
        let completions = rate(&stores, n, move |s, c, i| async move {
            let owner = format!("replica-{}", c % replicas);
            s.save_promotion_state(
                "demo",
                &format!("q-{i}"),
                &owner,
                &state(STEPS),
                Phase::Succeeded,
                "",
                2,
                None,
            )
            .await
            .unwrap();
        })
        .await;
        let discovery = rate(&stores, n, move |s, c, i| async move {
            let owner = format!("replica-{}", c % replicas);
            let warehouse = format!("w-{i}");
            let claimed = s.claim_discovery("demo", &warehouse, &owner, LEASE_MS).await.unwrap();
            assert!(matches!(claimed, barge_store::DiscoveryClaim::Taken { .. }));
            assert!(s.finish_discovery("demo", &warehouse, &owner, i64::MAX).await.unwrap());
        })
        .await;
        println!(
            "| {replicas} | {floor:.0} | {lifecycle:.0} ({:.3}) | {per_promotion:.1} | {claims:.0} | {renewals:.0} | {completions:.0} | {discovery:.0} |",
            lifecycle / floor
        );
    }
}
