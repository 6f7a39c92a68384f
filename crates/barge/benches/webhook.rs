//! Issue #18's webhook benchmark (BENCHMARKS.md, "Webhooks"): `cargo bench -p barge --bench
//! webhook [TAGS]`.
//!
//! 1. New tag → dev commit pushed: a CNCF distribution registry notifies `barge serve`
//!    (its `distribution` receiver); the Warehouse (interval 24 h, so only the notification
//!    makes it look) mints Freight, dev auto-promotes it and pushes the overlay's commit to a
//!    `git daemon`. The time from the start of the image push to the commit on the remote,
//!    over TAGS tags (20), against two floors of the same run: the registry push alone, and a
//!    bare `git commit && git push` of the same overlay. Polling at Kargo's default interval
//!    (5 min) waits 150 s on average for the next pass.
//! 2. Burst: 50 notifications (5 per repository) to 10 Warehouses, each subscribed through a
//!    counting proxy, spread over 5 s and then all at once: discoveries per Warehouse (tag
//!    listings over the listings of one pass) and registry requests.

use barge_core::webhook::{Provider, receiver_path};
use barge_testkit::git::{GitDaemon, bare_repo, free_port, git};
use barge_testkit::registry::{Fault, Plan, Proxy, TestRegistry};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-hook-s3cret";
const TOKEN: &str = "bench-token";
/// Kargo's default Warehouse interval: polling finds a tag half of it later on average.
const KARGO_POLL: Duration = Duration::from_secs(300);

fn main() {
    let tags: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        barge_registry::install_crypto_provider();
        latency(tags).await;
        // Each Warehouse hears a tag every second: further apart than the burst window's
        // quiet period, so each delivery is a window of its own.
        burst(Duration::from_secs(5)).await;
        // The registry reports 50 tags pushed at once: one window per Warehouse.
        burst(Duration::ZERO).await;
    });
}

/// `barge serve` on `port` with these definitions, configuration and extra flags; killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(dir: &Path, defs: &str, plain_http: &str, port: u16, extra: &[&str]) -> Serve {
    std::fs::write(dir.join("defs.yaml"), defs).unwrap();
    std::fs::write(
        dir.join("barge.yaml"),
        format!("registries: {{plainHTTP: [{plain_http}]}}\nsecrets:\n  hook:\n    secret: {{env: HOOK}}\n"),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_barge"))
        .args(["serve", dir.join("defs.yaml").to_str().unwrap(), "--listen", &listen])
        .args(extra)
        .env("BARGE_DB", format!("sqlite://{}/barge.db", dir.display()))
        .env("BARGE_WORK_DIR", dir.join("work"))
        .env("BARGE_CONFIG", dir.join("barge.yaml"))
        .env("BARGE_TOKEN", TOKEN)
        .env("HOOK", SECRET)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("http://{listen}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "barge serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Serve(child)
}

/// The project's receiver (`distribution`, secret `hook`) and, optionally, dev's auto-promotion.
fn project(auto_promote: bool) -> String {
    let policy = if auto_promote {
        "  promotionPolicies: [{stage: dev, autoPromotionEnabled: true}]\n"
    } else {
        ""
    };
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {{name: bench}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: ProjectConfig\nmetadata: {{name: bench, namespace: bench}}\nspec:\n{policy}  webhookReceivers: [{{name: registry, distribution: {{secretRef: {{name: hook}}}}}}]\n"
    )
}

fn overlay(tag: &str) -> String {
    format!("resources: [../../base]\nimages:\n  - name: app\n    newTag: {tag}\n")
}

/// What `barge serve` wrote, for a failed run.
fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

async fn latency(tags: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = receiver_path("bench", Provider::Distribution, "registry", &[SECRET]);
    let reg = TestRegistry::start_notifying(&format!("http://127.0.0.1:{port}{path}"), SECRET).await;
    let root = dir.path().join("git");
    let bare = bare_repo(
        &root,
        "config.git",
        &[("env/dev/kustomization.yaml", &overlay("0.0.0"))],
    );
    let daemon = GitDaemon::start(&root);
    let defs = format!(
        "{}---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app, namespace: bench}}\nspec:\n  interval: 24h\n  subscriptions: [{{image: {{repoURL: {host}/bench/app, constraint: ^1.0.0}}}}]\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: dev, namespace: bench}}\nspec:\n  requestedFreight: [{{origin: {{kind: Warehouse, name: app}}, sources: {{direct: true}}}}]\n  promotionTemplate:\n    spec:\n      steps:\n        - uses: git-clone\n          config: {{repoURL: https://git.example.com/config.git, checkout: [{{branch: main, path: ./src}}]}}\n        - uses: kustomize-set-image\n          config: {{path: ./src/env/dev, images: [{{image: {host}/bench/app, name: app}}]}}\n        - uses: git-commit\n          config: {{path: ./src, message: dev}}\n        - uses: git-push\n          config: {{path: ./src}}\n",
        project(true),
        host = reg.host
    );
    let rewrite = format!("https://git.example.com/=git://127.0.0.1:{}/", daemon.port);
    reg.push_image("bench/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let _serve = serve(dir.path(), &defs, &reg.host, port, &["--rewrite", &rewrite]).await;
    let landed = |tag: &str| {
        let want = format!("newTag: {tag}");
        git(&bare, &["show", "main:env/dev/kustomization.yaml"])
            .lines()
            .any(|l| l.trim() == want)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !landed("1.0.0") {
        assert!(
            Instant::now() < deadline,
            "dev never got 1.0.0:\n{}\n{}",
            git(&bare, &["show", "main:env/dev/kustomization.yaml"]),
            log(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (mut end_to_end, mut pushes) = (Vec::new(), Vec::new());
    for i in 1..=tags {
        let tag = format!("1.0.{i}");
        let started = Instant::now();
        reg.push_image("bench/app", &tag, "2026-01-02T00:00:00Z", "amd64").await;
        pushes.push(started.elapsed());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !landed(&tag) {
            assert!(Instant::now() < deadline, "dev never got {tag}:\n{}", log(dir.path()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        end_to_end.push(started.elapsed());
    }

    // How the deliveries were answered: a rate-limited (429) one is retried by the registry
    // after its backoff, which shows as a slow tag.
    let metrics = barge_testkit::metrics::scrape(&format!("http://127.0.0.1:{port}"), TOKEN).await;
    let deliveries: Vec<&str> = metrics
        .samples("barge_webhook_deliveries_total")
        .iter()
        .map(|s| s.line)
        .collect();

    // The floor of the commit: a clone editing the overlay, committing and pushing.
    let clone = dir.path().join("clone");
    let remote = format!("git://127.0.0.1:{}/config.git", daemon.port);
    git(dir.path(), &["clone", "-q", &remote, clone.to_str().unwrap()]);
    git(&clone, &["config", "user.email", "bench@example.com"]);
    git(&clone, &["config", "user.name", "bench"]);
    let mut commits = Vec::new();
    for i in 0..tags {
        let started = Instant::now();
        std::fs::write(clone.join("env/dev/kustomization.yaml"), overlay(&format!("9.9.{i}"))).unwrap();
        git(&clone, &["commit", "-qam", "bare"]);
        git(&clone, &["push", "-q", "origin", "HEAD:main"]);
        commits.push(started.elapsed());
    }
    // In push order, before sorting: an outlier's place in the run says whether it is the
    // first tag's warm-up or a race between back-to-back tags.
    let in_order = end_to_end.iter().map(|d| d.as_millis().to_string()).collect::<Vec<_>>();
    for list in [&mut end_to_end, &mut pushes, &mut commits] {
        list.sort();
    }
    let (p50, p99) = (percentile(&end_to_end, 0.5), percentile(&end_to_end, 0.99));
    let floor = percentile(&pushes, 0.5) + percentile(&commits, 0.5);
    println!("new tag -> dev commit pushed, {tags} tags (notified by the registry):");
    println!("  end to end: p50 {}, p99 {}", ms(p50), ms(p99));
    println!("  each, in push order (ms): {}", in_order.join(" "));
    println!("  deliveries: {}", deliveries.join(", "));
    println!(
        "  floors: registry push p50 {}, bare git commit+push p50 {} (sum {})",
        ms(percentile(&pushes, 0.5)),
        ms(percentile(&commits, 0.5)),
        ms(floor)
    );
    println!(
        "  ratio p50 / floors: {:.1}x; polling at Kargo's 5 min waits {} on average: {:.0}x the webhook's p50",
        p50.as_secs_f64() / floor.as_secs_f64(),
        ms(KARGO_POLL / 2),
        (KARGO_POLL / 2).as_secs_f64() / p50.as_secs_f64()
    );
    // BARGE_BENCH_KEEP=1 keeps the daemon's directory (its serve.log) to look into a slow tag.
    if std::env::var_os("BARGE_BENCH_KEEP").is_some() {
        println!("  kept: {}", dir.keep().display());
    }
}

async fn burst(spread: Duration) {
    const WAREHOUSES: usize = 10;
    const TAGS_EACH: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let reg = TestRegistry::start(None).await;
    let listings = Arc::new(AtomicU64::new(0));
    let counted = listings.clone();
    let plan: Plan = Arc::new(move |_, path: &str| {
        if path.contains("/tags/list") {
            counted.fetch_add(1, Ordering::SeqCst);
        }
        Fault::Pass
    });
    let proxy = Proxy::start(&reg.host, None, plan).await;
    let mut defs = project(false);
    for w in 0..WAREHOUSES {
        reg.push_image(&format!("bench/app{w}"), "1.0.0", "2026-01-01T00:00:00Z", "amd64")
            .await;
        defs += &format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{name: app{w}, namespace: bench}}\nspec:\n  interval: 24h\n  subscriptions: [{{image: {{repoURL: {}/bench/app{w}, constraint: ^1.0.0}}}}]\n",
            proxy.host
        );
    }
    let port = free_port();
    let _serve = serve(dir.path(), &defs, &format!("{}, {}", proxy.host, reg.host), port, &[]).await;
    // Each Warehouse's first pass, at start: the unit of one discovery.
    let deadline = Instant::now() + Duration::from_secs(60);
    while listings.load(Ordering::SeqCst) < WAREHOUSES as u64 {
        assert!(Instant::now() < deadline, "the first passes did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_pass = listings.load(Ordering::SeqCst) as f64 / WAREHOUSES as f64;
    let (listed_before, requests_before) = (listings.load(Ordering::SeqCst), proxy.requests.load(Ordering::SeqCst));

    let url = format!(
        "http://127.0.0.1:{port}{}",
        receiver_path("bench", Provider::Distribution, "registry", &[SECRET])
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let total = WAREHOUSES * TAGS_EACH;
    let mut sent = Vec::new();
    for n in 0..total {
        let (w, t) = (n % WAREHOUSES, n / WAREHOUSES);
        let body = serde_json::json!({"events": [{
            "id": format!("burst-{n}"), "action": "push",
            "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": format!("bench/app{w}"), "tag": format!("1.1.{t}")},
            "request": {"host": proxy.host, "method": "PUT"}
        }]});
        // The deliveries spread evenly over `spread`, each sent at its time whatever the others
        // take.
        tokio::time::sleep((spread * n as u32 / total as u32).saturating_sub(started.elapsed())).await;
        let post = client.post(&url).header("Authorization", SECRET).json(&body).send();
        sent.push(tokio::spawn(post));
    }
    for answer in sent {
        assert_eq!(answer.await.unwrap().unwrap().status().as_u16(), 202);
    }
    let burst_took = started.elapsed();
    // Every burst window has closed (at most 2 s after it opened) and its pass has run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let listed = listings.load(Ordering::SeqCst) - listed_before;
    let requests = proxy.requests.load(Ordering::SeqCst) - requests_before;
    let discoveries = listed as f64 / per_pass;
    println!(
        "burst: {total} notifications in {:.1} s to {WAREHOUSES} Warehouses:",
        burst_took.as_secs_f64()
    );
    println!(
        "  discoveries: {discoveries:.0} ({:.1} per Warehouse; one per Warehouse would be {WAREHOUSES}); registry requests {requests} ({:.1} per notification)",
        discoveries / WAREHOUSES as f64,
        requests as f64 / total as f64
    );
}
