//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The conformance corpus: `$BARGE_CORPUS`, or `shared/corpus` beside the checkout (where CI
/// and every development machine have it). Missing is a failure, never a skip.
pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("BARGE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/corpus"));
    assert!(
        dir.join("SOURCES.tsv").is_file(),
        "conformance corpus not found at {} (set BARGE_CORPUS to shared/corpus)",
        dir.display()
    );
    dir
}

pub fn barge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_barge"));
    c.env("NO_COLOR", "1");
    c
}

/// Runs barge with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    barge().args(args).output().expect("barge runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `barge validate -o json PATH...` parsed.
pub fn validate_json(paths: &[&Path]) -> serde_json::Value {
    let mut args = vec!["validate".to_string(), "-o".into(), "json".into()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let out = barge().args(&args).output().expect("barge runs");
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "barge validate exited {:?}: {}",
        out.status,
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&out)))
}

#[allow(unused_imports)] // each test crate uses some of the kit
pub use barge_testkit::git::{
    GitDaemon, SmartHttp, bare_repo, empty_commits, files_containing, free_port, git, smart_http,
};

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Freight as discovery would mint it from Warehouse `warehouse` of `project`: each image
/// subscription at tag 1.4.2, each chart at 1.4.2, each git subscription at one made-up
/// commit of its branch.
pub fn freight_from_warehouse(
    catalog: &barge_core::Catalog,
    project: &str,
    warehouse: &str,
) -> barge_core::model::kargo::Freight {
    use barge_core::model::Body;
    use barge_core::model::kargo::{Chart, Freight, FreightOrigin, GitCommit, Image};
    let mut f = Freight {
        origin: Some(FreightOrigin {
            kind: "Warehouse".into(),
            name: warehouse.into(),
        }),
        alias: Some(format!("{warehouse}-alias")),
        ..Freight::default()
    };
    f.metadata.name = format!("{:040x}", warehouse.len() * 7919);
    let subscriptions = catalog.resources.iter().filter_map(|r| match &r.body {
        Some(Body::Warehouse(w)) if r.project == project && r.name == warehouse => w.spec.as_ref(),
        _ => None,
    });
    for s in subscriptions.flat_map(|spec| &spec.subscriptions) {
        if let Some(i) = &s.image {
            f.images.push(Image {
                repo_url: i.repo_url.clone(),
                tag: "1.4.2".into(),
                digest: "sha256:2b8e7a5bd0f1a3c1e1cbd6fa0f1ad6c4c4ec6a3e3b2a1f0e9d8c7b6a5f4e3d2c".into(),
                ..Image::default()
            });
        }
        if let Some(g) = &s.git {
            f.commits.push(GitCommit {
                repo_url: g.repo_url.clone(),
                id: "8e4f9bc1d2a3b4c5d6e7f8091a2b3c4d5e6f7081".into(),
                branch: Some(g.branch.clone().unwrap_or_else(|| "main".into())),
                message: Some("Update app".into()),
                author: Some("Ada <ada@example.com>".into()),
                ..GitCommit::default()
            });
        }
        if let Some(c) = &s.chart {
            f.charts.push(Chart {
                repo_url: c.repo_url.clone(),
                name: c.name.clone(),
                version: "1.4.2".into(),
                ..Chart::default()
            });
        }
    }
    f
}

/// python3's http.server, stopped when dropped.
pub struct HealthServer(std::process::Child);

impl Drop for HealthServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `dir` over HTTP on `port` (python3's http.server): 404 until a file exists.
pub fn health_server(dir: &Path, port: u16) -> HealthServer {
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
            dir.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    HealthServer(child)
}

/// Mints Freight of the Warehouse `app` in project `shop` (image ghcr.io/acme/app at `tag`)
/// into the store `db`, as discovery would have stored it; its alias.
pub fn mint_freight(db: &str, tag: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = barge_store::Store::open(db).await.unwrap();
        let mut f = barge_core::model::kargo::Freight {
            origin: Some(barge_core::model::kargo::FreightOrigin {
                kind: "Warehouse".into(),
                name: "app".into(),
            }),
            images: vec![barge_core::model::kargo::Image {
                repo_url: "ghcr.io/acme/app".into(),
                tag: tag.into(),
                digest: "sha256:aaaa".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        f.metadata.name = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00".into();
        let minted = store.mint_freight("shop", "app", f, 1).await.unwrap();
        minted.freight.freight.alias.unwrap()
    })
}
