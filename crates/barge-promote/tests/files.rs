//! The file steps against real files in a promotion's work directory: yaml-merge, tar and
//! untar, hcl-update, and each refusal of bad input.

mod support;

use barge_core::promotion::Phase;
use support::{error_of, run};

fn yaml(text: &str) -> serde_json::Value {
    yaml_serde::from_str(text).unwrap()
}

const MERGE: &str = r#"
        - uses: yaml-merge
          as: merge
          config:
            inFiles: [base.yaml, missing.yaml, stages/dev/overlay.yaml]
            outFile: out/values.yaml
            ignoreMissingFiles: true
"#;

#[tokio::test]
async fn yaml_merge_layers_the_files_in_order_and_names_them_in_its_commit_message() {
    let dir = tempfile::tempdir().unwrap();
    let (out, work) = run(
        dir.path(),
        MERGE,
        &[
            (
                "base.yaml",
                b"image:\n  repository: ghcr.io/acme/app\n  tag: '1.9'\nreplicas: 2\n",
            ),
            ("stages/dev/overlay.yaml", b"image:\n  tag: '1.10'\nreplicas: null\n"),
        ],
    )
    .await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let merged = std::fs::read_to_string(work.join("0/out/values.yaml")).unwrap();
    assert_eq!(
        yaml(&merged),
        yaml("image: {repository: ghcr.io/acme/app, tag: '1.10'}\n")
    );
    // Kargo's message: the merged files, not the skipped missing one.
    assert_eq!(
        out.state.outputs["merge"]["commitMessage"],
        "Merged 2 YAML files to out/values.yaml\n- base.yaml\n- stages/dev/overlay.yaml"
    );
}

#[tokio::test]
async fn yaml_merge_refuses_a_missing_file_and_a_multi_document_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let strict = MERGE.replace("ignoreMissingFiles: true", "ignoreMissingFiles: false");
    let (out, work) = run(dir.path(), &strict, &[("base.yaml", b"a: 1\n")]).await;
    assert!(
        error_of(&out).contains("input file \"missing.yaml\" not found"),
        "{}",
        error_of(&out)
    );
    assert!(!work.join("0/out/values.yaml").exists());

    let dir = tempfile::tempdir().unwrap();
    let (out, work) = run(
        dir.path(),
        MERGE,
        &[
            ("base.yaml", b"a: 1\n---\nb: 2\n"),
            ("stages/dev/overlay.yaml", b"a: 2\n"),
        ],
    )
    .await;
    assert!(
        error_of(&out).contains("base.yaml holds more than one YAML document"),
        "{}",
        error_of(&out)
    );
    assert!(!work.join("0/out/values.yaml").exists());
}

const ROUND_TRIP: &str = r#"
        - uses: tar
          config:
            inPath: ./src
            outPath: ./out/app.tgz
            gzip: true
            ignore: |
              # scratch files stay out
              *.tmp
        - uses: untar
          config:
            inPath: ./out/app.tgz
            outPath: ./extracted
        - uses: untar
          config:
            inPath: ./out/app.tgz
            outPath: ./stripped
            stripComponents: 1
            ignore: values.yaml
"#;

#[tokio::test]
async fn tar_and_untar_round_trip_with_gzip_ignore_and_strip_components() {
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(
        dir.path(),
        ROUND_TRIP,
        &[
            ("src/chart/values.yaml", b"tag: '1.10'\n"),
            ("src/chart/templates/deploy.yaml", b"kind: Deployment\n"),
            ("src/scratch.tmp", b"junk"),
            ("src/.git/config", b"[core]\n"),
        ],
    )
    .await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let archive = std::fs::read(after.join("0/out/app.tgz")).unwrap();
    assert_eq!(&archive[..2], &[0x1f, 0x8b], "gzip: true compresses");
    let extracted = after.join("1/extracted");
    assert_eq!(
        std::fs::read_to_string(extracted.join("chart/values.yaml")).unwrap(),
        "tag: '1.10'\n"
    );
    assert!(extracted.join("chart/templates/deploy.yaml").is_file());
    assert!(!extracted.join("scratch.tmp").exists(), "ignored by the pattern");
    assert!(
        !extracted.join(".git").exists(),
        "with patterns given, .git is only left out by untar's default"
    );
    let stripped = after.join("2/stripped");
    assert!(stripped.join("templates/deploy.yaml").is_file(), "chart/ stripped");
    assert!(!stripped.join("values.yaml").exists(), "ignored on extraction");
    // No partial file or directory is left beside the outputs.
    let names: Vec<String> = std::fs::read_dir(after.join("2"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
}

/// A tar whose entries are written as given, names and link targets unchecked (as an
/// attacker would write them).
fn hostile_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

const UNTAR: &str = r#"
        - uses: untar
          config:
            inPath: ./in.tar
            outPath: ./out
"#;

#[tokio::test]
async fn untar_refuses_entries_that_would_land_outside_and_extracts_nothing() {
    use tar::EntryType::{Regular, Symlink};
    let cases: &[(&str, Vec<u8>, &str)] = &[
        (
            "dot-dot",
            hostile_tar(&[("ok.txt", Regular, "", b"fine"), ("../evil.txt", Regular, "", b"x")]),
            "entry ../evil.txt contains `..`",
        ),
        (
            "absolute",
            hostile_tar(&[("/tmp/evil.txt", Regular, "", b"x")]),
            "entry /tmp/evil.txt has an absolute path",
        ),
        (
            "symlink out",
            hostile_tar(&[("sub/link", Symlink, "../../outside", b"")]),
            "symlink sub/link points to ../../outside, outside the output directory",
        ),
        (
            "absolute symlink",
            hostile_tar(&[("link", Symlink, "/etc", b"")]),
            "symlink link points to /etc",
        ),
        (
            // Each link alone stays inside; through the first, the second would not.
            "through a symlink",
            hostile_tar(&[("a", Symlink, ".", b""), ("a/b", Symlink, "..", b"")]),
            "entry a/b lies under the symlink a",
        ),
    ];
    for (what, archive, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (out, after) = run(dir.path(), UNTAR, &[("in.tar", archive)]).await;
        let message = error_of(&out);
        assert!(message.contains(want), "{what}: {message}");
        assert!(!after.join("0/out").exists(), "{what}: nothing extracted");
        assert!(!dir.path().join("evil.txt").exists() && !dir.path().join("work/evil.txt").exists());
        let leftovers: Vec<_> = std::fs::read_dir(after.join("0")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "{what}: only in.tar remains");
    }
}

#[tokio::test]
async fn untar_refuses_a_file_over_the_size_limit_before_reading_it() {
    // The header claims 60 MB (over the 50 MB limit for one file); the data never comes.
    let mut h = tar::Header::new_gnu();
    h.set_path("huge.bin").unwrap();
    h.set_size(60 * 1024 * 1024);
    h.set_mode(0o644);
    h.set_cksum();
    let mut archive = h.as_bytes().to_vec();
    archive.extend_from_slice(&[0u8; 1024]);
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), UNTAR, &[("in.tar", &archive)]).await;
    assert!(
        error_of(&out).contains("huge.bin is 62914560 bytes, over the limit of 52428800 bytes for one file"),
        "{}",
        error_of(&out)
    );
    assert!(!after.join("0/out").exists());
}

/// A download server on a loopback port: `/chart.tgz` (needs a bearer token, echoes the query
/// `v`), `/endless` (101 MiB, chunked, no Content-Length) and anything else 404.
async fn download_server() -> u16 {
    use axum::extract::Query;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    use std::collections::HashMap;
    async fn chart(h: HeaderMap, q: Query<HashMap<String, String>>) -> (StatusCode, String) {
        if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer t0ken") {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        (
            StatusCode::OK,
            format!("chart v{}", q.get("v").map_or("?", String::as_str)),
        )
    }
    async fn endless() -> axum::body::Body {
        let chunks = (0..101).map(|_| Ok::<_, std::io::Error>(vec![0u8; 1024 * 1024]));
        axum::body::Body::from_stream(futures_util::stream::iter(chunks))
    }
    let app = axum::Router::new()
        .route("/chart.tgz", get(chart))
        .route("/endless", get(endless));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn download_step(port: u16, path: &str, overwrite: bool) -> String {
    format!(
        r#"
        - uses: http-download
          config:
            url: http://127.0.0.1:{port}{path}
            outPath: ./charts/chart.tgz
            allowOverwrite: {overwrite}
            headers: [{{name: Authorization, value: Bearer t0ken}}]
            queryParams: [{{name: v, value: "1.2.0"}}]
            timeout: 30s
"#
    )
}

#[tokio::test]
async fn http_download_writes_the_file_and_refuses_to_overwrite_unless_allowed() {
    let port = download_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), &download_step(port, "/chart.tgz", false), &[]).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        std::fs::read_to_string(after.join("0/charts/chart.tgz")).unwrap(),
        "chart v1.2.0"
    );

    let existing: &[(&str, &[u8])] = &[("charts/chart.tgz", b"old")];
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), &download_step(port, "/chart.tgz", false), existing).await;
    assert!(
        error_of(&out).contains("./charts/chart.tgz already exists and allowOverwrite is false"),
        "{}",
        error_of(&out)
    );
    assert_eq!(
        std::fs::read_to_string(after.join("0/charts/chart.tgz")).unwrap(),
        "old"
    );

    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), &download_step(port, "/chart.tgz", true), existing).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        std::fs::read_to_string(after.join("0/charts/chart.tgz")).unwrap(),
        "chart v1.2.0"
    );
}

#[tokio::test]
async fn http_download_stops_at_the_size_limit_and_leaves_no_partial_file() {
    let port = download_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), &download_step(port, "/endless", false), &[]).await;
    assert!(
        error_of(&out).contains("the download exceeds the limit of 104857600 bytes"),
        "{}",
        error_of(&out)
    );
    let left: Vec<_> = std::fs::read_dir(after.join("0/charts")).unwrap().collect();
    assert!(left.is_empty(), "no file and no partial file: {left:?}");

    // A status that is not success fails the step (a 404 is not retried).
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(dir.path(), &download_step(port, "/nothing", false), &[]).await;
    assert_eq!(out.phase, Phase::Failed, "{}", out.message);
    assert!(
        out.state.steps[0].message.contains("status 404"),
        "{}",
        out.state.steps[0].message
    );
}

/// A chart before and after a Kargo helm-update-chart promotion (kdwils/homelab,
/// charts/argocd, commit e422d614 "Update ArgoCD chart dependencies", written by Kargo).
const ARGOCD_CHART_BEFORE: &str = "apiVersion: v2
name: argocd
description: ArgoCD GitOps controller
version: 0.1.0
dependencies:
  - name: argo-cd
    version: 10.2.1
    repository: https://argoproj.github.io/argo-helm
    alias: argocd
  - name: homelab-chart
    version: 0.1.31
    repository: oci://ghcr.io/kdwils/charts
    alias: homelab
";
const ARGOCD_LOCK_BEFORE: &str = "dependencies:
- name: argo-cd
  repository: https://argoproj.github.io/argo-helm
  version: 10.2.1
- name: homelab-chart
  repository: oci://ghcr.io/kdwils/charts
  version: 0.1.31
digest: sha256:0affd20cc6d54f7fa7c0b32e344574812544d19fb886a885c630df3824e9db6c
generated: \"2026-07-24T02:19:36.315209031Z\"
";
const ARGOCD_LOCK_AFTER_BUT_GENERATED: &str = "dependencies:
- name: argo-cd
  repository: https://argoproj.github.io/argo-helm
  version: 10.2.2
- name: homelab-chart
  repository: oci://ghcr.io/kdwils/charts
  version: 0.1.31
digest: sha256:63895cc4ee75a80b0bcf82af8bf4defdc972eba66bae754d8dc77eecb820e501
";

fn update_chart_step(path: &str, charts: &str) -> String {
    format!(
        r#"
        - uses: helm-update-chart
          as: chart
          config:
            path: {path}
            charts: {charts}
"#
    )
}

const ARGO_CD_10_2_2: &str =
    "[{repository: 'https://argoproj.github.io/argo-helm', name: argo-cd, version: \"${{ '10.2.' + string(2) }}\"}]";

#[tokio::test]
async fn helm_update_chart_writes_what_kargo_wrote_and_removes_the_stale_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(
        dir.path(),
        &update_chart_step("./charts/argocd", ARGO_CD_10_2_2),
        &[
            ("charts/argocd/Chart.yaml", ARGOCD_CHART_BEFORE.as_bytes()),
            ("charts/argocd/Chart.lock", ARGOCD_LOCK_BEFORE.as_bytes()),
            ("charts/argocd/charts/argo-cd-10.2.1.tgz", b"old archive"),
            ("charts/argocd/charts/homelab-chart-0.1.31.tgz", b"kept archive"),
        ],
    )
    .await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let chart = after.join("0/charts/argocd");
    assert_eq!(
        std::fs::read_to_string(chart.join("Chart.yaml")).unwrap(),
        ARGOCD_CHART_BEFORE.replace("10.2.1", "10.2.2"),
        "Kargo's Chart.yaml, byte for byte"
    );
    let lock = std::fs::read_to_string(chart.join("Chart.lock")).unwrap();
    let (lock_but_generated, generated) = lock.split_once("generated: ").unwrap();
    assert_eq!(lock_but_generated, ARGOCD_LOCK_AFTER_BUT_GENERATED, "Helm's digest");
    assert!(
        generated.starts_with('"') && generated.ends_with("Z\"\n"),
        "{generated}"
    );
    assert_ne!(generated, "\"2026-07-24T02:19:36.315209031Z\"\n");
    assert!(!chart.join("charts/argo-cd-10.2.1.tgz").exists(), "no longer locked");
    assert!(chart.join("charts/homelab-chart-0.1.31.tgz").is_file());
    assert_eq!(
        out.state.outputs["chart"]["commitMessage"],
        "Updated chart dependencies for ./charts/argocd\n\n- argo-cd: 10.2.1 -> 10.2.2"
    );

    // The same version again changes nothing and has no commit message.
    let dir = tempfile::tempdir().unwrap();
    let lock_after = format!("{ARGOCD_LOCK_AFTER_BUT_GENERATED}generated: \"2026-07-31T14:54:34.26798158Z\"\n");
    let chart_after = ARGOCD_CHART_BEFORE.replace("10.2.1", "10.2.2");
    let (out, after) = run(
        dir.path(),
        &update_chart_step("charts/argocd", ARGO_CD_10_2_2),
        &[
            ("charts/argocd/Chart.yaml", chart_after.as_bytes()),
            ("charts/argocd/Chart.lock", lock_after.as_bytes()),
        ],
    )
    .await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        std::fs::read_to_string(after.join("0/charts/argocd/Chart.lock")).unwrap(),
        lock_after
    );
    assert!(
        !out.state.outputs["chart"]
            .as_object()
            .is_some_and(|o| o.contains_key("commitMessage"))
    );
}

/// Kargo's "successful run with HTTP repository" case (helm_chart_updater_test.go), without a
/// Chart.lock: barge sets the version and creates no lock (Kargo's Helm would create one).
#[tokio::test]
async fn helm_update_chart_without_a_lock_sets_the_version_only() {
    let dir = tempfile::tempdir().unwrap();
    let chart_yaml = "apiVersion: v2\nname: test-chart\nversion: 0.1.0\ndependencies:\n- name: examplechart\n  version: '>=0.0.1'\n  repository: https://charts.example.com\n";
    let (out, after) = run(
        dir.path(),
        &update_chart_step(
            "testchart",
            "[{repository: 'https://charts.example.com', name: examplechart, version: 0.1.0}]",
        ),
        &[("testchart/Chart.yaml", chart_yaml.as_bytes())],
    )
    .await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        std::fs::read_to_string(after.join("0/testchart/Chart.yaml")).unwrap(),
        chart_yaml.replace("'>=0.0.1'", "'0.1.0'"),
        "the quote style is kept"
    );
    assert!(!after.join("0/testchart/Chart.lock").exists());
    assert_eq!(
        out.state.outputs["chart"]["commitMessage"],
        "Updated chart dependencies for testchart\n\n- examplechart: >=0.0.1 -> 0.1.0"
    );
}

/// Two dependencies on one chart under different aliases: the archive the other still uses
/// stays.
#[tokio::test]
async fn helm_update_chart_keeps_an_archive_another_alias_is_locked_to() {
    let dir = tempfile::tempdir().unwrap();
    let chart_yaml = "apiVersion: v2\nname: homelab\nversion: 0.1.0\ndependencies:\n  - name: app\n    version: 0.1.30\n    repository: oci://ghcr.io/acme/charts\n    alias: blog\n  - name: app\n    version: 0.1.30\n    repository: oci://ghcr.io/acme/charts\n    alias: rss\n";
    let lock = "dependencies:\n- name: app\n  repository: oci://ghcr.io/acme/charts\n  version: 0.1.30\n- name: app\n  repository: oci://ghcr.io/acme/charts\n  version: 0.1.30\ndigest: sha256:0\ngenerated: \"2026-07-07T03:23:43.932274652Z\"\n";
    let (out, after) = run(
        dir.path(),
        &update_chart_step(
            "homelab",
            "[{repository: 'oci://ghcr.io/acme/charts', name: app, version: 0.1.31}]",
        ),
        &[
            ("homelab/Chart.yaml", chart_yaml.as_bytes()),
            ("homelab/Chart.lock", lock.as_bytes()),
            ("homelab/charts/app-0.1.30.tgz", b"still used by rss"),
        ],
    )
    .await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let locked = yaml(&std::fs::read_to_string(after.join("0/homelab/Chart.lock")).unwrap());
    assert_eq!(
        locked["dependencies"][0]["version"], "0.1.31",
        "the first match, as Kargo"
    );
    assert_eq!(locked["dependencies"][1]["version"], "0.1.30");
    assert!(after.join("0/homelab/charts/app-0.1.30.tgz").is_file());
}

#[tokio::test]
async fn helm_update_chart_refuses_what_it_cannot_do_and_changes_no_file() {
    let chart_yaml = ARGOCD_CHART_BEFORE.replace("10.2.1", "^10.2.0");
    let files: &[(&str, &[u8])] = &[
        ("charts/argocd/Chart.yaml", chart_yaml.as_bytes()),
        ("charts/argocd/Chart.lock", ARGOCD_LOCK_BEFORE.as_bytes()),
    ];
    let argo = "[{repository: 'https://argoproj.github.io/argo-helm', name: argo-cd, version: VERSION}]";
    let cases = [
        (
            update_chart_step(
                "charts/argocd",
                &argo.replace("argo-cd", "argo-cd-x").replace("VERSION", "1.0.0"),
            ),
            "no dependency in charts/argocd/Chart.yaml matches update with repository \"https://argoproj.github.io/argo-helm\" and name \"argo-cd-x\"",
        ),
        (
            update_chart_step("charts/argocd", &argo.replace("VERSION", "'^10.3.0'")),
            "version \"^10.3.0\" of dependency \"argo-cd\" is not an exact version",
        ),
        (
            update_chart_step("../outside", &argo.replace("VERSION", "1.0.0")),
            "path `../outside` leaves the promotion's work directory",
        ),
        (
            update_chart_step("charts", &argo.replace("VERSION", "1.0.0")),
            "charts is not a chart directory: it has no Chart.yaml",
        ),
        (
            update_chart_step("charts/argocd", "[]"),
            "charts, when given, needs at least one item",
        ),
        (
            update_chart_step("charts/argocd", "[{name: argo-cd, version: 1.0.0}]"),
            "charts[0] needs repository, name and version",
        ),
        (
            update_chart_step("charts/argocd", "[{repository: r, name: n, version: v, digest: d}]"),
            "unknown field `digest`",
        ),
    ];
    for (step, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (out, after) = run(dir.path(), &step, files).await;
        assert!(error_of(&out).contains(expected), "{}", error_of(&out));
        for (rel, bytes) in files {
            assert_eq!(std::fs::read(after.join("0").join(rel)).unwrap(), *bytes, "{rel}");
        }
    }

    // A repository named by alias cannot be hashed as Helm does without Helm's repository config.
    let aliased = ARGOCD_CHART_BEFORE.replace("oci://ghcr.io/kdwils/charts", "'@kdwils'");
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(
        dir.path(),
        &update_chart_step("charts/argocd", ARGO_CD_10_2_2),
        &[
            ("charts/argocd/Chart.yaml", aliased.as_bytes()),
            ("charts/argocd/Chart.lock", ARGOCD_LOCK_BEFORE.as_bytes()),
        ],
    )
    .await;
    assert!(
        error_of(&out).contains("dependency \"homelab-chart\" names its repository by the alias \"@kdwils\""),
        "{}",
        error_of(&out)
    );

    // A lock that does not follow Chart.yaml cannot be carried forward without Helm.
    let stale_lock = ARGOCD_LOCK_BEFORE.replace("homelab-chart", "other-chart");
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(
        dir.path(),
        &update_chart_step("charts/argocd", ARGO_CD_10_2_2),
        &[
            ("charts/argocd/Chart.yaml", ARGOCD_CHART_BEFORE.as_bytes()),
            ("charts/argocd/Chart.lock", stale_lock.as_bytes()),
        ],
    )
    .await;
    assert!(
        error_of(&out)
            .contains("charts/argocd/Chart.lock does not lock the dependencies of charts/argocd/Chart.yaml in order"),
        "{}",
        error_of(&out)
    );
}

/// An OpenTofu file as people write them: comments of each kind, aligned `=`, a heredoc, a
/// labelled block with an object value, a list.
const MAIN_TF: &str = r#"# The application's infrastructure.
terraform {
  required_version = ">= 1.6" // OpenTofu
}

resource "aws_lambda_function" "app" {
  function_name = "app"   # keep in sync with the DNS name
  image_uri     = "123456789.dkr.ecr.us-west-2.amazonaws.com/app:1.9" /* set by barge */
  memory_size   = 512
  tags = {
    version = "1.9"
    "team"  = "payments"
  }
  policy = <<-EOT
    {"Statement": []}
  EOT
}

resource "aws_lambda_function" "worker" {
  image_uri = "123456789.dkr.ecr.us-west-2.amazonaws.com/worker:1.9"
}

replicas = 2
zones    = ["a", "b"]
enabled  = false
"#;

fn hcl_update_step(path: &str, updates: &str) -> String {
    format!(
        r#"
        - uses: hcl-update
          as: hcl
          config:
            path: {path}
            updates: {updates}
"#
    )
}

#[tokio::test]
async fn hcl_update_changes_only_the_values_and_keeps_comments_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let step = hcl_update_step(
        "infra/main.tf",
        r#"[
              {key: resource.aws_lambda_function.app.image_uri, value: "123456789.dkr.ecr.us-west-2.amazonaws.com/app:1.10"},
              {key: resource.aws_lambda_function.app.tags.version, value: "1.10"},
              {key: resource.aws_lambda_function.app.memory_size, value: 1024},
              {key: replicas, value: 3},
              {key: zones.1, value: c},
              {key: enabled, value: true}]"#,
    );
    let (out, work) = run(dir.path(), &step, &[("infra/main.tf", MAIN_TF.as_bytes())]).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    let want = MAIN_TF
        .replace(
            r#"image_uri     = "123456789.dkr.ecr.us-west-2.amazonaws.com/app:1.9" /*"#,
            r#"image_uri     = "123456789.dkr.ecr.us-west-2.amazonaws.com/app:1.10" /*"#,
        )
        .replace(r#"version = "1.9""#, r#"version = "1.10""#)
        .replace("memory_size   = 512", "memory_size   = 1024")
        .replace("replicas = 2", "replicas = 3")
        .replace(r#"["a", "b"]"#, r#"["a", "c"]"#)
        .replace("enabled  = false", "enabled  = true");
    assert_eq!(std::fs::read_to_string(work.join("0/infra/main.tf")).unwrap(), want);
    assert_eq!(
        out.state.outputs["hcl"]["commitMessage"],
        "Updated infra/main.tf\n\n\
         - resource.aws_lambda_function.app.image_uri: 123456789.dkr.ecr.us-west-2.amazonaws.com/app:1.10\n\
         - resource.aws_lambda_function.app.tags.version: \"1.10\"\n\
         - resource.aws_lambda_function.app.memory_size: 1024\n\
         - replicas: 3\n\
         - zones.1: c\n\
         - enabled: true"
    );
}

#[tokio::test]
async fn hcl_update_refuses_a_missing_key_and_a_file_that_is_not_hcl_and_changes_nothing() {
    for (key, why) in [
        (
            "resource.aws_lambda_function.app.image",
            "key \"resource.aws_lambda_function.app.image\" does not exist: there is no attribute or block `image`",
        ),
        (
            "resource.aws_lambda_function.api.image_uri",
            "key \"resource.aws_lambda_function.api.image_uri\" does not exist: no `resource` block has the labels",
        ),
        (
            "image_uri",
            "key \"image_uri\" does not exist: there is no attribute or block `image_uri`",
        ),
        ("replicas.count", "the value before `count` is not an object or a list"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let step = hcl_update_step(
            "main.tf",
            &format!("[{{key: replicas, value: 5}}, {{key: '{key}', value: x}}]"),
        );
        let (out, work) = run(dir.path(), &step, &[("main.tf", MAIN_TF.as_bytes())]).await;
        let error = error_of(&out);
        assert!(error.starts_with("hcl-update main.tf: "), "{error}");
        assert!(error.contains(why), "{error}");
        // The first update is not written either: the file changes whole or not at all.
        assert_eq!(std::fs::read_to_string(work.join("0/main.tf")).unwrap(), MAIN_TF);
    }

    let dir = tempfile::tempdir().unwrap();
    let step = hcl_update_step("stages/dev/values.yaml", "[{key: image.tag, value: '1.10'}]");
    let yaml = b"image:\n  tag: '1.9'\n  - not: hcl\n";
    let (out, work) = run(dir.path(), &step, &[("stages/dev/values.yaml", yaml)]).await;
    let error = error_of(&out);
    assert!(
        error.starts_with("hcl-update stages/dev/values.yaml: not HCL: "),
        "{error}"
    );
    assert_eq!(std::fs::read(work.join("0/stages/dev/values.yaml")).unwrap(), yaml);

    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(dir.path(), &hcl_update_step("nowhere.tf", "[{key: a, value: 1}]"), &[]).await;
    assert!(
        error_of(&out).starts_with("cannot read nowhere.tf: "),
        "{}",
        error_of(&out)
    );
}
