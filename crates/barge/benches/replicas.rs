//! Issue #19's coordination-overhead benchmark (BENCHMARKS.md, "Replicas"):
//! `cargo bench -p barge --bench replicas [STAGES [REPLICAS...]]` (1,000 Stages; 1, 2 and 3
//! replicas, in the order given, so that repeated runs can interleave the cases). `BARGE_BIN`
//! runs another `barge` binary than this build's (a copy that a build in the shared target
//! directory cannot replace mid-run).
//!
//! Real `barge serve` replicas (this build's binary) on one real PostgreSQL, a real registry
//! and real git remotes (`git daemon`): STAGES Stages (1,000) over 10 config repositories, each
//! auto-promoted from its repository's Warehouse. One new tag of every image is a burst of
//! STAGES promotions, run with the same total concurrency (`--workers`, 12 in all) by 1, 2
//! and 3 replicas. Each case starts afresh (database, registry, repositories) and prints:
//!
//! - **promotions/s**: STAGES over the time from the first promotion's creation to the last
//!   one's end (the database's own timestamps), and its ratio to 1 replica (issue #19's goal:
//!   ≥ 0.9);
//! - **statements per promotion**: the SQL statements the replicas sent during the burst
//!   (`pg_stat_statements`' calls, BEGIN and COMMIT included, each a round trip of the
//!   client), over STAGES; "net" takes off what the same replicas send at rest in as long
//!   (their ticks, heartbeats and discovery passes, measured just before);
//! - **push rejections**: "Push rejected: the branch moved" in the replicas' logs (a push
//!   refused because another replica moved the branch first);
//! - the statements sent most often, per promotion (`BARGE_BENCH_TOP` of them, 12 by default).
//!
//! `BARGE_BENCH_TRACE=DIR` keeps a trace of each case in `DIR/<N>-replicas/`: PostgreSQL's log
//! of every statement, each line led by its session id and role (`pg/`), and the replicas'
//! logs. It slows the burst, so its figures are for finding where statements go, not rates.
//!
//! Every case also checks the outcome: each config repository gained exactly one commit per
//! Stage, and every promotion Succeeded.

#[path = "../../../tests/support/mod.rs"]
mod support;

use barge_testkit::git::GitDaemon;
use barge_testkit::postgres::{OwnPostgres, pg_bin};
use barge_testkit::registry::TestRegistry;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::replica_pipeline::Pipeline;

const REPOS: usize = 10;
/// Promotions running at once, in all, whatever the number of replicas.
const TOTAL_WORKERS: usize = 12;
/// How long the replicas' traffic at rest is measured before the burst.
const AT_REST: Duration = Duration::from_secs(5);
/// The role the benchmark's own queries run as, so that `pg_stat_statements` tells them
/// apart from the replicas' (which connect as `barge`).
const OBSERVER: &str = "observer";

fn main() {
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let stages = numbers.first().copied().unwrap_or(1000);
    let cases: Vec<usize> = match numbers.get(1..) {
        Some(r) if !r.is_empty() => r.to_vec(),
        _ => vec![1, 2, 3],
    };
    assert!(
        cases.iter().all(|r| (1..=TOTAL_WORKERS).contains(r)),
        "replicas: 1 to {TOTAL_WORKERS}"
    );
    let pipeline = Pipeline {
        repos: REPOS,
        stages_per_repo: stages.div_ceil(REPOS),
        // Short, so that the burst starts within two seconds of the push.
        interval: Duration::from_secs(2),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{} Stages over {REPOS} config repositories, {TOTAL_WORKERS} workers in all",
        pipeline.stages()
    );
    println!(
        "{:>8} {:>8} {:>13} {:>8} {:>10} {:>14} {:>16}",
        "replicas", "workers", "promotions/s", "ratio", "burst (s)", "stmts/promo", "push rejections"
    );
    let mut rates = Vec::new();
    for &replicas in &cases {
        let case = runtime.block_on(burst(&pipeline, replicas));
        rates.push((replicas, case.rate));
        // The ratio to 1 replica once that case has run (all ratios are printed at the end).
        let baseline = rates.iter().find(|(r, _)| *r == 1).map_or(f64::NAN, |(_, rate)| *rate);
        println!(
            "{replicas:>8} {:>8} {:>13.1} {:>8.3} {:>10.1} {:>6.1} (net {:>4.1}) {:>16}",
            TOTAL_WORKERS / replicas,
            case.rate,
            case.rate / baseline,
            case.seconds,
            case.statements,
            case.net_statements,
            case.rejections
        );
        for (calls, query) in &case.top {
            println!("           {calls:>6.2} × {query}");
        }
    }
    if let Some(&(_, baseline)) = rates.iter().find(|(r, _)| *r == 1) {
        let ratios: Vec<String> = rates
            .iter()
            .map(|(r, rate)| format!("{r}: {rate:.2}/s ({:.3})", rate / baseline))
            .collect();
        println!("ratios to 1 replica: {}", ratios.join(", "));
    }
}

/// The `barge` the replicas run: `BARGE_BIN`, or this build's.
fn barge() -> Command {
    match std::env::var_os("BARGE_BIN") {
        Some(bin) => {
            let mut c = Command::new(bin);
            c.env("NO_COLOR", "1");
            c
        }
        None => support::barge(),
    }
}

/// What one case measured.
struct Case {
    rate: f64,
    seconds: f64,
    statements: f64,
    net_statements: f64,
    rejections: usize,
    /// The most frequent statements: calls per promotion, the statement's start.
    top: Vec<(f64, String)>,
}

/// A `barge serve` replica, killed when dropped.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sql` run by the observer role; its unaligned output, or psql's error.
fn try_psql(pg: &OwnPostgres, sql: &str) -> Result<String, String> {
    let out = Command::new(format!("{}/psql", pg_bin()))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            OBSERVER,
            "-d",
            "barge",
        ])
        .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn psql(pg: &OwnPostgres, sql: &str) -> String {
    try_psql(pg, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Statements the replicas (role `barge`) sent so far.
fn statements(pg: &OwnPostgres) -> f64 {
    psql(
        pg,
        "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements WHERE userid = 'barge'::regrole",
    )
    .parse()
    .unwrap()
}

async fn burst(pipeline: &Pipeline, replicas: usize) -> Case {
    // BARGE_BENCH_TRACE=DIR: PostgreSQL logs every statement with its session
    // (`<session>:<role>:` before each line) into DIR/<replicas>-replicas/pg, and the replicas'
    // logs are copied beside it: which statements came before each ROLLBACK, and why. The
    // logging slows the burst: its figures are not the benchmark's.
    let trace =
        std::env::var_os("BARGE_BENCH_TRACE").map(|d| std::path::PathBuf::from(d).join(format!("{replicas}-replicas")));
    let mut options = "-c shared_preload_libraries=pg_stat_statements".to_string();
    if let Some(trace) = &trace {
        let pg_logs = trace.join("pg");
        std::fs::create_dir_all(&pg_logs).unwrap();
        // PostgreSQL runs as its own user when the bench runs as root.
        let _ = Command::new("chmod")
            .args(["-R", "777", trace.to_str().unwrap()])
            .status();
        options += &format!(
            " -c logging_collector=on -c log_directory={} -c log_statement=all -c log_line_prefix=%c:%u:",
            pg_logs.display()
        );
    }
    let pg = OwnPostgres::start_with(&options);
    let create = Command::new(format!("{}/psql", pg_bin()))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "barge",
            "-d",
            "barge",
            "-c",
        ])
        .arg(format!(
            "CREATE EXTENSION pg_stat_statements; CREATE ROLE {OBSERVER} LOGIN SUPERUSER"
        ))
        .output()
        .unwrap();
    assert!(create.status.success(), "{}", String::from_utf8_lossy(&create.stderr));

    let dir = tempfile::tempdir().unwrap();
    let git_root = dir.path().join("git");
    std::fs::create_dir_all(&git_root).unwrap();
    pipeline.seed_repos(&git_root);
    let git_daemon = GitDaemon::start(&git_root);
    let defs = dir.path().join("defs.yaml");
    std::fs::write(&defs, pipeline.definitions()).unwrap();
    let registry = TestRegistry::start(None).await;
    let push = |tag: &'static str| {
        let registry = &registry;
        async move {
            for r in 0..pipeline.repos {
                registry
                    .push_image(&format!("acme/app{r}"), tag, "2026-01-01T00:00:00Z", "amd64")
                    .await;
            }
        }
    };
    // The images exist, without a tag the Warehouses take (their constraint is ^1.0.0).
    push("0.1.0").await;

    let workers = (TOTAL_WORKERS / replicas).to_string();
    let running: Vec<Replica> = (0..replicas)
        .map(|i| {
            let id = format!("r{i}");
            let log = std::fs::File::create(dir.path().join(format!("{id}.log"))).unwrap();
            let child = barge()
                .args([
                    "serve",
                    defs.to_str().unwrap(),
                    "--replica-id",
                    &id,
                    "--workers",
                    &workers,
                ])
                .args(Pipeline::rewrites(&registry.host, git_daemon.port))
                .env("BARGE_DB", pg.url())
                .env("BARGE_WORK_DIR", dir.path().join(format!("work-{id}")))
                .env("BARGE_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            Replica(child)
        })
        .collect();
    let logs = || -> String {
        (0..replicas)
            .map(|i| std::fs::read_to_string(dir.path().join(format!("r{i}.log"))).unwrap_or_default())
            .collect()
    };
    // Every replica is up and every Warehouse has been looked at once.
    let deadline = Instant::now() + Duration::from_secs(120);
    // (Until the first replica has created the tables, the query fails.)
    while try_psql(
        &pg,
        "SELECT (SELECT COUNT(*) FROM replicas) || ' ' || (SELECT COUNT(*) FROM discovery_leases WHERE due_at > 0)",
    ) != Ok(format!("{replicas} {}", pipeline.repos))
    {
        assert!(Instant::now() < deadline, "the replicas did not start:\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }

    let rest_started = statements(&pg);
    std::thread::sleep(AT_REST);
    let at_rest_per_second = (statements(&pg) - rest_started) / AT_REST.as_secs_f64();

    // From here on, the statements are the burst's.
    psql(&pg, "SELECT pg_stat_statements_reset()");
    let burst_started = Instant::now();
    push("1.0.0").await;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let phases = psql(
            &pg,
            "SELECT COUNT(CASE WHEN phase = 'Succeeded' THEN 1 END) || ' ' || COUNT(CASE WHEN phase IN ('Failed', 'Errored', 'Aborted') THEN 1 END) FROM promotions",
        );
        let (succeeded, failed) = phases.split_once(' ').unwrap();
        assert_eq!(failed, "0", "promotions failed:\n{}", logs());
        if succeeded.parse::<usize>().unwrap() == pipeline.stages() {
            break;
        }
        assert!(Instant::now() < deadline, "the burst did not end: {phases}\n{}", logs());
        std::thread::sleep(Duration::from_millis(250));
    }
    let burst_wall = burst_started.elapsed().as_secs_f64();
    let sent = statements(&pg);
    let span_ms: f64 = psql(&pg, "SELECT MAX(updated_at) - MIN(created_at) FROM promotions")
        .parse()
        .unwrap();
    let top: usize = std::env::var("BARGE_BENCH_TOP")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(12);
    let top = psql(
        &pg,
        &format!(
            "SELECT calls || ' ' || regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_statements \
         WHERE userid = 'barge'::regrole ORDER BY calls DESC LIMIT {top}",
        ),
    );
    drop(running);
    if let Some(trace) = &trace {
        for i in 0..replicas {
            let _ = std::fs::copy(dir.path().join(format!("r{i}.log")), trace.join(format!("r{i}.log")));
        }
    }

    let n = pipeline.stages() as f64;
    for r in 0..pipeline.repos {
        let landed = support::git(
            &git_root.join(format!("config{r}.git")),
            &["rev-list", "--count", "main"],
        );
        assert_eq!(
            landed.trim().parse::<usize>().unwrap(),
            pipeline.stages_per_repo + 1,
            "config{r}: one commit per Stage on the seed"
        );
    }
    Case {
        rate: n / (span_ms / 1000.0),
        seconds: span_ms / 1000.0,
        statements: sent / n,
        net_statements: (sent - at_rest_per_second * burst_wall) / n,
        rejections: logs().matches("Push rejected: the branch moved").count(),
        top: top
            .lines()
            .map(|l| {
                let (calls, query) = l.split_once(' ').unwrap();
                (calls.parse::<f64>().unwrap() / n, query.to_string())
            })
            .collect(),
    }
}
