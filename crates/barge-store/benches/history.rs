//! `barge history` against a large audit log: 1,000,000 events (300 stages, 5,000 Freight),
//! on SQLite and on a real PostgreSQL server. Each query `barge history` makes (newest events,
//! by stage, by freight, by stage since a time) is timed through `Store::history`, next to the
//! floor measured in the same run: fetching one audit row by primary key, the cheapest query
//! the database can answer. Then the `barge history` binary itself, process start included.
//!
//! Run: cargo bench -p barge-store --bench history [-- ROWS]

#[path = "../tests/support/mod.rs"]
mod support;

use barge_store::{AuditQuery, Backend, Store};
use sqlx::any::AnyPoolOptions;
use std::time::{Duration, Instant};

const STAGES: i64 = 300;
const FREIGHT: i64 = 5_000;
const RUNS: usize = 300;

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A plain connection to the store's database, beside `Store`.
async fn pool(url: &str) -> sqlx::AnyPool {
    AnyPoolOptions::new().max_connections(1).connect(url).await.unwrap()
}

async fn fill(url: &str, backend: Backend, rows: i64) {
    let pool = pool(url).await;
    let body = "'{\"step\":\"task-1::step-' || (x % 7) || '\",\"uses\":\"git-push\",\"status\":\"Succeeded\",\"outputs\":{\"commit\":\"' || x || '\"}}'";
    let select = format!(
        "SELECT x * 10, 'demo', 'promotion.step', 'Promotion/p' || x, 'alice', 'stage-' || (x % {STAGES}), 'freight-' || (x % {FREIGHT}), {body}"
    );
    let sql = match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) \
             INSERT INTO audit (at, project, kind, subject, actor, stage, freight, body) {select} FROM c"
        ),
        Backend::Postgres => format!(
            "INSERT INTO audit (at, project, kind, subject, actor, stage, freight, body) {select} FROM generate_series(1, {rows}) AS g(x)"
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
}

async fn time(store: &Store, q: &AuditQuery<'_>) -> Vec<Duration> {
    let mut out = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let events = store.history(q).await.unwrap();
        out.push(t.elapsed());
        assert!(!events.is_empty());
    }
    out
}

async fn floor(url: &str, rows: i64) -> Vec<Duration> {
    let pool = pool(url).await;
    let mut out = Vec::with_capacity(RUNS);
    for i in 0..RUNS as i64 {
        let t = Instant::now();
        sqlx::query("SELECT id, at, body FROM audit WHERE id = $1")
            .bind(1 + (i * 7919) % rows)
            .fetch_one(&pool)
            .await
            .unwrap();
        out.push(t.elapsed());
    }
    out
}

fn cli(url: &str, args: &[&str]) -> Vec<Duration> {
    let exe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/barge");
    if !exe.exists() {
        return Vec::new();
    }
    (0..30)
        .map(|_| {
            let t = Instant::now();
            let out = std::process::Command::new(&exe)
                .args(["history", "--db", url, "-o", "json"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            t.elapsed()
        })
        .collect()
}

/// `psql` connecting and running `barge history --stage`'s query, 30 times.
fn psql(url: &str) -> Vec<Duration> {
    let query = "SELECT id, at, project, kind, subject, actor, stage, freight, body FROM audit WHERE stage = 'stage-7' ORDER BY at DESC, id DESC LIMIT 100";
    (0..30)
        .map(|_| {
            let t = Instant::now();
            let out = std::process::Command::new(format!("{}/psql", barge_testkit::postgres::pg_bin()))
                .args([url, "-qAt", "-c", query])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            t.elapsed()
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let dir = tempfile::tempdir().unwrap();
        let url = support::url(backend, &dir);
        let store = Store::open(&url).await.unwrap();
        let t = Instant::now();
        fill(&url, backend, rows).await;
        println!(
            "\n{backend:?}: {rows} audit events written in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let floor = percentile(floor(&url, rows).await, 0.99);
        println!("  floor (one row by primary key)    p99 {}", ms(floor));
        let since = rows * 10 - 3_600_000;
        let queries: [(&str, AuditQuery); 4] = [
            (
                "newest 100",
                AuditQuery {
                    limit: 100,
                    ..Default::default()
                },
            ),
            (
                "--stage stage-7",
                AuditQuery {
                    stage: Some("stage-7"),
                    limit: 100,
                    ..Default::default()
                },
            ),
            (
                "--freight freight-42",
                AuditQuery {
                    freight: Some("freight-42"),
                    limit: 100,
                    ..Default::default()
                },
            ),
            (
                "--stage stage-7 --since 1h",
                AuditQuery {
                    stage: Some("stage-7"),
                    since: Some(since),
                    limit: 100,
                    ..Default::default()
                },
            ),
        ];
        for (name, q) in &queries {
            let d = time(&store, q).await;
            let (p50, p99) = (percentile(d.clone(), 0.5), percentile(d, 0.99));
            println!(
                "  history {name:<28} p50 {:>9}  p99 {:>9}  ({:.1}x the floor; goal p99 <= 20 ms)",
                ms(p50),
                ms(p99),
                p99.as_secs_f64() / floor.as_secs_f64()
            );
        }
        let runs = cli(&url, &["--stage", "stage-7"]);
        // A new PostgreSQL connection forks a server process: `psql` running the same query is
        // the floor for any short-lived client.
        let psql = (backend == Backend::Postgres).then(|| psql(&url));
        if runs.is_empty() {
            println!("  (build target/release/barge to time the CLI end to end)");
        } else {
            println!(
                "  `barge history --stage stage-7` process, end to end: p50 {}  p99 {}",
                ms(percentile(runs.clone(), 0.5)),
                ms(percentile(runs, 0.99))
            );
        }
        if let Some(runs) = psql {
            println!(
                "  floor: psql running the same query, end to end:     p50 {}  p99 {}",
                ms(percentile(runs.clone(), 0.5)),
                ms(percentile(runs, 0.99))
            );
        }
    }
}
