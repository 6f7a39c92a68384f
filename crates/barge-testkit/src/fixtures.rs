//! Fixtures shared by the crates' tests: the workspace's own files, the real-world corpus the
//! conformance tests read, Freight made up from a Warehouse, and the Stage the step tests run.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The real-world corpus the conformance tests read (`scripts/conformance CORPUS_DIR` sets
/// `$BARGE_CORPUS`; a directory with a `SOURCES.tsv`). Those tests are built only with the
/// `conformance` feature; there a missing corpus is a failure, never a skip.
pub fn corpus() -> PathBuf {
    let dir = std::env::var_os("BARGE_CORPUS").map(PathBuf::from).unwrap_or_else(|| {
        panic!("the conformance tests read the corpus from $BARGE_CORPUS: run scripts/conformance CORPUS_DIR")
    });
    assert!(
        dir.join("SOURCES.tsv").is_file(),
        "conformance corpus not found at {} (no SOURCES.tsv there)",
        dir.display()
    );
    dir
}

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

/// Stage `dev` of project `shop`, taking Freight from Warehouse `app` directly, running
/// `steps` (YAML list items indented by 8 spaces).
pub fn dev_stage(steps: &str) -> String {
    format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: dev, namespace: shop}}\nspec:\n  requestedFreight:\n    - origin: {{kind: Warehouse, name: app}}\n      sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n{}",
        steps.trim_start_matches('\n')
    )
}
