//! The oci-download and oci-push steps in promotions, against real registries (Debian's
//! `docker-registry`): options in, the file or the pushed tag out, outputs as Kargo names them.

mod support;

use barge_core::promotion::Phase;
use barge_testkit::registry::TestRegistry;
use support::{error_of, run};

const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

#[tokio::test(flavor = "multi_thread")]
async fn a_promotion_pushes_a_chart_to_another_registry_and_downloads_its_chart_layer() {
    let (from, to) = (TestRegistry::start(None).await, TestRegistry::start(None).await);
    let digest = from
        .push_artifact("charts/app", "1.2.3", HELM_CONFIG, &[(HELM_CHART, b"chart tarball")])
        .await;
    let steps = format!(
        r#"
        - uses: oci-push
          as: push
          config:
            srcRef: oci://{from}/charts/app:1.2.3
            destRef: oci://{to}/released/app:1.2.3
        - uses: oci-download
          as: download
          config:
            imageRef: ${{{{ "oci://" + outputs.push.image }}}}
            outPath: ./charts/app.tgz
            mediaType: {HELM_CHART}
"#,
        from = from.host,
        to = to.host
    );
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), &steps, &[]).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(
        out.state.outputs["push"],
        serde_json::json!({"image": format!("{}/released/app:1.2.3", to.host), "digest": digest, "tag": "1.2.3"})
    );
    assert_eq!(std::fs::read(after.join("1/charts/app.tgz")).unwrap(), b"chart tarball");
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_download_refuses_an_existing_file_and_a_layer_over_100_mb_leaving_nothing() {
    let reg = TestRegistry::start(None).await;
    reg.push_artifact("files/site", "v1", HELM_CONFIG, &[(HELM_CHART, b"new")])
        .await;
    let step = |allow: bool| {
        format!(
            "\n        - uses: oci-download\n          config: {{imageRef: '{}/files/site:v1', outPath: ./site.tgz, allowOverwrite: {allow}}}\n",
            reg.host
        )
    };
    let existing: &[(&str, &[u8])] = &[("site.tgz", b"old")];
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), &step(false), existing).await;
    assert!(
        error_of(&out).contains("file already exists at ./site.tgz and overwrite is not allowed"),
        "{}",
        error_of(&out)
    );
    assert_eq!(std::fs::read(after.join("0/site.tgz")).unwrap(), b"old");
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), &step(true), existing).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(std::fs::read(after.join("0/site.tgz")).unwrap(), b"new");

    // A manifest declaring a 200 MB layer: refused before a byte is written.
    let blob = reg.push_blob("files/huge", b"small really").await;
    let config = reg.push_blob("files/huge", b"{}").await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": HELM_CONFIG, "digest": config, "size": 2},
        "layers": [{"mediaType": HELM_CHART, "digest": blob, "size": 200 << 20}]
    });
    reg.put_manifest(
        "files/huge",
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    let steps = format!(
        "\n        - uses: oci-download\n          config: {{imageRef: '{}/files/huge:v1', outPath: ./out/huge.tgz}}\n",
        reg.host
    );
    let dir = tempfile::tempdir().unwrap();
    let (out, after) = run(dir.path(), &steps, &[]).await;
    assert!(
        error_of(&out).contains("layer size 209715200 exceeds maximum allowed size of 104857600 bytes"),
        "{}",
        error_of(&out)
    );
    let left: Vec<_> = std::fs::read_dir(after.join("0/out")).unwrap().collect();
    assert!(left.is_empty(), "no file and no partial file: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_push_retags_in_place_and_its_unsupported_option_is_refused() {
    let reg = TestRegistry::start(None).await;
    let digest = reg
        .push_image("acme/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let steps = format!(
        "\n        - uses: oci-push\n          as: retag\n          config: {{srcRef: '{0}/acme/app:1.0.0', destRef: '{0}/acme/app:prod', annotations: {{}}}}\n",
        reg.host
    );
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(dir.path(), &steps, &[]).await;
    assert_eq!(out.phase, Phase::Succeeded, "{}", out.message);
    assert_eq!(out.state.outputs["retag"]["digest"], digest.as_str());
    assert!(reg.has("acme/app", "manifests", "prod").await);

    let steps = format!(
        "\n        - uses: oci-push\n          config: {{srcRef: '{0}/acme/app:1.0.0', destRef: '{0}/acme/app:x', insecureSkipTLSVerify: true}}\n",
        reg.host
    );
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(dir.path(), &steps, &[]).await;
    assert!(
        error_of(&out).contains("oci-push: barge cannot honour `insecureSkipTLSVerify`"),
        "{}",
        error_of(&out)
    );
    assert!(!reg.has("acme/app", "manifests", "x").await);
}
