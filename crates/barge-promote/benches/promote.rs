//! Promotion throughput against the physical limit measured in the same run.
//!
//! 1. One cached promotion (git-clone from the warm cache, kustomize-set-image, git-commit,
//!    git-push) against a bare `git` loop making the same edit, commit and push in a clone it
//!    keeps.
//! 2. 200 promotions of different stages racing into one branch, against the same bare loop
//!    making 200 commits one after another (a single writer never loses a race: the fastest
//!    any tool can land 200 commits on one branch).
//!
//! Run: `cargo bench -p barge-promote --bench promote` (BARGE_BENCH_N=200 by default).

#[path = "../tests/support/mod.rs"]
mod support;

use barge_core::promotion::{Phase, State};
use barge_promote::{Engine, Promotion};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Quiet, image_freight as freight_of};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../base]\nimages:\n  - name: ghcr.io/acme/app\n    newTag: 1.0.0\n";

fn seed(root: &Path, stages: usize) -> (std::path::PathBuf, String) {
    let work = root.join("seed");
    let mut yaml = String::from("apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata: {name: shop}\n");
    for i in 0..stages {
        std::fs::create_dir_all(work.join(format!("stages/s{i}"))).unwrap();
        std::fs::write(work.join(format!("stages/s{i}/kustomization.yaml")), KUSTOMIZATION).unwrap();
        yaml.push_str(&format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: s{i}, namespace: shop}}\nspec:\n  requestedFreight:\n    - origin: {{kind: Warehouse, name: app}}\n      sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n        - uses: git-clone\n          config: {{repoURL: https://git.example.com/config.git, checkout: [{{branch: main, path: ./r}}]}}\n        - uses: kustomize-set-image\n          config: {{path: \"./r/stages/${{{{ ctx.stage }}}}\", images: [{{image: ghcr.io/acme/app}}]}}\n        - uses: git-commit\n          config: {{path: ./r, message: \"promote ${{{{ ctx.stage }}}}\"}}\n        - uses: git-push\n          config: {{path: ./r}}\n"
        ));
    }
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "seed"]);
    let bare = root.join("config.git");
    git(
        root,
        &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()],
    );
    (bare, yaml)
}

fn freight(tag: &str) -> barge_core::model::kargo::Freight {
    freight_of("ghcr.io/acme/app", tag)
}

fn engine(root: &Path) -> Engine {
    let mut e = support::engine(root, vec![support::rewrite_to_dir("https://git.example.com/", root)]);
    e.author = barge_git::repo::Author::default();
    e.push_policy.max_attempts = 1000;
    e.push_policy.base_backoff = Duration::from_millis(5);
    e.push_policy.max_backoff = Duration::from_millis(100);
    e
}

/// The bare loop: in a clone it keeps, edit one overlay, commit, push; `n` times.
/// With `synced`, each round first brings the clone up to date (`fetch` + `reset --hard`),
/// which any writer sharing the branch must do; without, it is the bare minimum.
fn bare_loop(root: &Path, bare: &Path, n: usize, tag_base: usize, synced: bool) -> Duration {
    let clone = root.join(format!("bare-loop-{tag_base}-{synced}"));
    git(root, &["clone", "-q", bare.to_str().unwrap(), clone.to_str().unwrap()]);
    let start = Instant::now();
    for i in 0..n {
        if synced {
            git(&clone, &["fetch", "-q", "origin", "main"]);
            git(&clone, &["reset", "-q", "--hard", "FETCH_HEAD"]);
        }
        let f = clone.join(format!("stages/s{i}/kustomization.yaml"));
        let text = std::fs::read_to_string(&f).unwrap();
        let new = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("newTag:") {
                    format!("    newTag: 9.{tag_base}.{i}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        std::fs::write(&f, new).unwrap();
        git(&clone, &["commit", "-q", "-am", &format!("promote s{i}")]);
        git(&clone, &["push", "-q", "origin", "main"]);
    }
    start.elapsed()
}

fn main() {
    let n: usize = std::env::var("BARGE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let single = 30.min(n);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (bare, yaml) = seed(root, n);
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text("stages.yaml", &yaml);
    assert_eq!(catalog.errors(), 0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = Arc::new(engine(root));

    // Warm the cache with one promotion (not timed).
    let warm = Promotion::plan(&catalog, "shop", "s0", freight("0.0.1"), Vec::new(), "bench").unwrap();
    let out = runtime.block_on(engine.run(&warm, State::new(&warm.steps), &Quiet, &Quiet));
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);

    // 1. One cached promotion against the bare loops, in alternating rounds of 5 (this
    //    machine's disk and CPU drift; the median of per-round means resists that).
    let rounds = (single / 5).max(1);
    let (mut bare_rounds, mut synced_rounds, mut barge_rounds) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        bare_rounds.push(bare_loop(root, &bare, 5, 10 + r, false));
        synced_rounds.push(bare_loop(root, &bare, 5, 100 + r, true));
        let start = Instant::now();
        for i in 0..5 {
            let p = Promotion::plan(
                &catalog,
                "shop",
                &format!("s{i}"),
                freight(&format!("2.{r}.{i}")),
                Vec::new(),
                "bench",
            )
            .unwrap();
            let out = runtime.block_on(engine.run(&p, State::new(&p.steps), &Quiet, &Quiet));
            assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
        }
        barge_rounds.push(start.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (bare_single, synced_single, barge_single) = (
        median(&mut bare_rounds),
        median(&mut synced_rounds),
        median(&mut barge_rounds),
    );
    let single = 5;
    let per = |d: Duration, k: usize| d.as_secs_f64() * 1000.0 / k as f64;
    println!(
        "one cached promotion (edit, commit, push): barge {:.1} ms, bare git loop {:.1} ms, ratio {:.2}x; bare loop that fetches and resets first {:.1} ms, ratio {:.2}x",
        per(barge_single, single),
        per(bare_single, single),
        barge_single.as_secs_f64() / bare_single.as_secs_f64(),
        per(synced_single, single),
        barge_single.as_secs_f64() / synced_single.as_secs_f64()
    );

    // 2. n promotions racing into one branch, against n sequential bare commits.
    let bare_n = bare_loop(root, &bare, n, 2, false);
    let before: usize = git(&bare, &["rev-list", "--count", "main"]).parse().unwrap();
    let start = Instant::now();
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let p = Promotion::plan(
                &catalog,
                "shop",
                &format!("s{i}"),
                freight(&format!("3.0.{i}")),
                Vec::new(),
                "bench",
            )
            .unwrap();
            let e = engine.clone();
            tasks.spawn(async move { e.run(&p, State::new(&p.steps), &Quiet, &Quiet).await });
        }
        while let Some(out) = tasks.join_next().await {
            let out = out.unwrap();
            assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
        }
    });
    let barge_n = start.elapsed();
    let after: usize = git(&bare, &["rev-list", "--count", "main"]).parse().unwrap();
    assert_eq!(after - before, n, "every racing promotion landed one commit");
    println!(
        "{n} promotions racing into one branch: barge {:.2} s, bare git loop ({n} sequential commits) {:.2} s, ratio {:.2}x; {} commits landed",
        barge_n.as_secs_f64(),
        bare_n.as_secs_f64(),
        barge_n.as_secs_f64() / bare_n.as_secs_f64(),
        after - before
    );
}
