//! Discovery over 10,000 tags on a local registry (Debian's docker-registry), against
//! `skopeo list-tags` on the same repository in the same run: the physical floor (listing the
//! tags is the least any discovery must do). Goal: barge ≤ 1.1× skopeo, with requests = list
//! pages + at most discoveryLimit manifest requests.
//!
//! Run: `cargo bench -p barge-registry --bench discovery` (needs docker-registry and skopeo).

use barge_core::model::kargo::ImageSubscription;
use barge_registry::discover::discover_image;
use barge_registry::{Registry, RegistryConfig};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let tags: usize = std::env::var("BENCH_TAGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runs = 7;
    let reg = barge_testkit::registry::TestRegistry::start(None).await;
    let started = Instant::now();
    let names: Vec<String> = (0..tags)
        .map(|i| format!("{}.{}.{}", i / 1000, (i / 10) % 100, i % 10))
        .collect();
    // Push concurrently: 16 writers.
    let chunks: Vec<Vec<String>> = names.chunks(tags.div_ceil(16)).map(|c| c.to_vec()).collect();
    let reg = std::sync::Arc::new(reg);
    let body = std::sync::Arc::new(reg.shared_manifest("bench/app").await);
    let mut set = tokio::task::JoinSet::new();
    for chunk in chunks {
        let (reg, body) = (reg.clone(), body.clone());
        set.spawn(async move {
            for tag in chunk {
                reg.put_manifest("bench/app", &tag, "application/vnd.oci.image.manifest.v1+json", &body)
                    .await;
            }
        });
    }
    while set.join_next().await.is_some() {}
    assert!(set.is_empty());
    eprintln!("pushed {tags} tags in {:.1}s", started.elapsed().as_secs_f64());

    let target = format!("docker://{}/bench/app", reg.host);
    let skopeo = median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                let out = std::process::Command::new("skopeo")
                    .args(["list-tags", "--tls-verify=false", &target])
                    .output()
                    .expect("skopeo (Debian package skopeo)");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                t.elapsed()
            })
            .collect(),
    );

    let sub = ImageSubscription {
        repo_url: format!("{}/bench/app", reg.host),
        constraint: Some(">=5.0.0".into()),
        ..Default::default()
    };
    let mut barge = Vec::new();
    let mut requests = 0;
    let mut listed = 0;
    for _ in 0..runs {
        // A fresh client each run: no token, digest or connection reuse across runs.
        let client = Registry::new(RegistryConfig::default()).unwrap();
        let t = Instant::now();
        let d = discover_image(&client, &sub).await.unwrap();
        barge.push(t.elapsed());
        requests = d.requests;
        listed = d.tags_listed;
        assert_eq!(listed, tags, "every tag pushed is listed");
        assert_eq!(d.candidates.len(), 20);
    }
    let barge = median(barge);
    println!("discovery: {listed} tags, SemVer, discoveryLimit 20, median of {runs} runs");
    println!(
        "  skopeo list-tags (floor):      {:>8.1} ms",
        skopeo.as_secs_f64() * 1e3
    );
    println!(
        "  barge discover (list + 20 manifest requests): {:>8.1} ms",
        barge.as_secs_f64() * 1e3
    );
    println!(
        "  ratio to floor:                {:>8.2}x",
        barge.as_secs_f64() / skopeo.as_secs_f64()
    );
    println!("  requests:                      {requests} (1 list page + 1 GET + 19 HEADs = 21)");
}
