//! Promotion-engine test kit shared by barge-promote's tests and benchmark: a quiet journal, an
//! engine with fast retry timings, Freight, and promotions planned from YAML text.
#![allow(dead_code)]

use barge_core::eval::Data;
use barge_core::eval::StepStatus;
use barge_core::model::kargo::{Freight, FreightOrigin, Image};
use barge_core::promotion::{Phase, State};
use barge_core::rewrite::Rewrite;
use barge_git::cache::RepoCache;
use barge_git::repo::{Author, PushPolicy};
use barge_promote::{BoxFuture, Engine, Event, Events, Journal, Outcome, Promotion};
#[allow(unused_imports)] // each test crate uses some of the kit
pub use barge_testkit::fixtures::dev_stage;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A journal and events sink that keeps nothing.
pub struct Quiet;

impl Journal for Quiet {
    fn save<'a>(&'a self, _s: &'a State, _p: Phase, _m: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

impl Events for Quiet {
    fn event<'a>(&'a self, _e: &'a Event) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// An engine under `root` (cache, work directories) with the given URL rewrites, no
/// credentials, and retry/poll timings in milliseconds.
pub fn engine(root: &Path, rewrites: Vec<Rewrite>) -> Engine {
    Engine {
        cache: Arc::new(RepoCache::new(&root.join("cache"))),
        work_root: root.join("work"),
        credentials: Arc::new(|_| None),
        request_credentials: Arc::new(|_| None),
        author: Author {
            name: "barge".into(),
            email: "barge@example.com".into(),
        },
        rewrites,
        push_policy: PushPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        },
        http: barge_promote::http_client(),
        registry: barge_registry::Registry::new(barge_registry::RegistryConfig::default()).unwrap(),
        pr_apis: Vec::new(),
        data: Data {
            now: "2026-11-22T10:00:00Z".into(),
            ..Data::default()
        },
        dry_run: false,
        poll_interval: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(10),
        slots: Arc::new(tokio::sync::Semaphore::new(barge_promote::DEFAULT_SLOTS)),
        wakeups: Default::default(),
        kube: std::sync::Arc::new(barge_kube::Clusters::new(None)),
        definitions: barge_promote::definitions(Default::default()),
    }
}

/// `from` → `file://<dir>/`.
pub fn rewrite_to_dir(from: &str, dir: &Path) -> Rewrite {
    Rewrite {
        from: from.into(),
        to: format!("file://{}/", dir.display()),
    }
}

/// Freight of Warehouse `app` with one image at `tag`, named after the tag.
pub fn image_freight(repo: &str, tag: &str) -> Freight {
    let mut f = Freight {
        origin: Some(FreightOrigin {
            kind: "Warehouse".into(),
            name: "app".into(),
        }),
        alias: Some("wise-otter".into()),
        images: vec![Image {
            repo_url: repo.into(),
            tag: tag.into(),
            digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            ..Image::default()
        }],
        ..Freight::default()
    };
    f.metadata.name = format!("{:a>40}", tag.replace('.', ""));
    f
}

/// Loads `yaml` (which must have no errors) and plans promoting `freight` into `stage` of
/// project `shop`.
pub fn plan(yaml: &str, stage: &str, freight: Freight) -> Promotion {
    let mut catalog = barge_core::Catalog::default();
    catalog.load_text("test.yaml", yaml);
    assert_eq!(catalog.errors(), 0, "{:?}", catalog.diagnostics);
    Promotion::plan(&catalog, "shop", stage, freight, Vec::new(), "alice").unwrap()
}

/// Keeps a copy of the work directory as it is after each step (the engine deletes the work
/// directory when the promotion ends): `<to>/<step index>`.
struct Snapshots {
    work: PathBuf,
    to: PathBuf,
}

fn copy_tree(from: &Path, to: &Path) {
    let meta = std::fs::symlink_metadata(from).unwrap();
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from).unwrap(), to).unwrap();
    } else if meta.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else {
        copy_sparse(from, to);
    }
}

/// Copies a file, leaving its runs of zeros as holes: a large sparse file (the size-limit
/// cases) stays sparse in the snapshots.
fn copy_sparse(from: &Path, to: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut src = std::fs::File::open(from).unwrap();
    let mut dst = std::fs::File::create(to).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|b| *b == 0) {
            dst.seek(SeekFrom::Current(n as i64)).unwrap();
        } else {
            dst.write_all(&buf[..n]).unwrap();
        }
        len += n as u64;
    }
    dst.set_len(len).unwrap();
    dst.set_permissions(src.metadata().unwrap().permissions()).unwrap();
}

impl Events for Snapshots {
    fn event<'a>(&'a self, e: &'a Event) -> BoxFuture<'a, ()> {
        if let Event::StepFinished { index, .. } = e {
            copy_tree(&self.work, &self.to.join(index.to_string()));
        }
        Box::pin(async {})
    }
}

/// Runs `steps` (YAML list items indented by 8 spaces) in Stage dev, with `files` written to
/// the promotion's work directory first; returns the outcome and the directory holding the
/// work directory after each step (`<dir>/<step index>`).
pub async fn run(root: &Path, steps: &str, files: &[(&str, &[u8])]) -> (Outcome, PathBuf) {
    let p = plan(&dev_stage(steps), "dev", image_freight("ghcr.io/acme/app", "1.10"));
    run_planned(root, &p, |work| {
        for (rel, bytes) in files {
            let path = work.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    })
    .await
}

/// Runs the planned promotion `p` after `setup` prepared its work directory; returns the
/// outcome and the directory holding the work directory after each step (`<dir>/<index>`).
pub async fn run_planned(root: &Path, p: &Promotion, setup: impl FnOnce(&Path)) -> (Outcome, PathBuf) {
    run_planned_with(root, Vec::new(), p, setup).await
}

/// [`run_planned`] with an engine that applies `rewrites` to repository URLs.
pub async fn run_planned_with(
    root: &Path,
    rewrites: Vec<Rewrite>,
    p: &Promotion,
    setup: impl FnOnce(&Path),
) -> (Outcome, PathBuf) {
    let engine = engine(root, rewrites);
    let work = engine.work_dir(&p.name);
    std::fs::create_dir_all(&work).unwrap();
    setup(&work);
    let snapshots = Snapshots {
        work,
        to: root.join("after"),
    };
    let out = engine.run(p, State::new(&p.steps), &Quiet, &snapshots).await;
    (out, snapshots.to)
}

/// The one step's error message, asserting that the step errored.
pub fn error_of(out: &Outcome) -> &str {
    assert_eq!(out.phase, Phase::Errored, "{}", out.message);
    assert_eq!(out.state.steps[0].status, StepStatus::Errored);
    &out.state.steps[0].message
}
