//! Layer downloads and artifact copies (the oci-download and oci-push steps' client) against
//! real distribution registries (Debian's `docker-registry`).

use barge_registry::{OciReference, Registry, RegistryConfig, RegistryError};
use barge_testkit::registry::{TestRegistry, write_docker_config};
use std::collections::BTreeMap;

const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const GIB: u64 = 1 << 30;

fn client() -> Registry {
    Registry::new(RegistryConfig {
        rate_limit: 10_000.0,
        ..RegistryConfig::default()
    })
    .unwrap()
}

fn reference(text: &str) -> OciReference {
    OciReference::parse(text).unwrap()
}

/// Bytes that do not compress to nothing and differ per `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_is_downloaded_by_media_type_or_the_first_by_default() {
    let reg = TestRegistry::start(None).await;
    reg.push_artifact(
        "bundles/site",
        "v1",
        "application/vnd.example.config.v1+json",
        &[
            ("application/vnd.example.readme.v1", b"read me"),
            ("application/vnd.example.site.v1.tar", b"the site's files"),
        ],
    )
    .await;
    let registry = client();
    let artifact = reference(&format!("oci://{}/bundles/site:v1", reg.host));

    let mut out = Vec::new();
    let layer = registry
        .download_layer(&artifact, Some("application/vnd.example.site.v1.tar"), 1024, &mut out)
        .await
        .unwrap();
    assert_eq!(out, b"the site's files");
    assert_eq!(layer.media_type, "application/vnd.example.site.v1.tar");
    assert_eq!(layer.size, 16);

    let mut out = Vec::new();
    registry.download_layer(&artifact, None, 1024, &mut out).await.unwrap();
    assert_eq!(
        out, b"read me",
        "without a media type: the first layer (Kargo's default)"
    );

    let e = registry
        .download_layer(&artifact, Some("application/x-none"), 1024, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no layer found with media type \"application/x-none\""),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_over_the_limit_is_refused_before_or_while_it_streams() {
    let reg = TestRegistry::start(None).await;
    let big = noise(4096, 1);
    reg.push_artifact(
        "files/big",
        "v1",
        "application/vnd.example.config.v1+json",
        &[("application/octet-stream", &big)],
    )
    .await;
    let registry = client();
    let mut out = Vec::new();
    let e = registry
        .download_layer(&reference(&format!("{}/files/big:v1", reg.host)), None, 4000, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Invalid { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("layer size 4096 exceeds maximum allowed size of 4000 bytes"),
        "{e}"
    );
    assert!(out.is_empty(), "refused by its declared size: nothing read");

    // A manifest that understates the layer's size: the download stops at the declared size.
    let digest = reg.push_blob("files/liar", &big).await;
    let config = reg.push_blob("files/liar", b"{}").await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.example.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": 100}]
    });
    reg.put_manifest(
        "files/liar",
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    let mut out = Vec::new();
    let e = registry
        .download_layer(&reference(&format!("{}/files/liar:v1", reg.host)), None, 4000, &mut out)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("exceed"), "{e}");
    assert!(
        out.len() <= 100,
        "never more than the declared size written: {}",
        out.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_is_retagged_in_place_and_copied_to_another_repository_of_the_registry() {
    let reg = TestRegistry::start(None).await;
    let digest = reg
        .push_image("acme/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let registry = client();
    let none = BTreeMap::new();

    let retagged = registry
        .copy_artifact(
            &reference(&format!("{}/acme/app:1.0.0", reg.host)),
            &reference(&format!("{}/acme/app:stable", reg.host)),
            &none,
            GIB,
        )
        .await
        .unwrap();
    assert_eq!(retagged.digest, digest);
    assert_eq!(retagged.bytes_uploaded, 0, "a retag moves no blobs");
    assert_eq!(
        reg.manifest("acme/app", "stable").await,
        reg.manifest("acme/app", "1.0.0").await
    );

    // Another repository of the same registry: the config blob is mounted, not uploaded.
    let copied = registry
        .copy_artifact(
            &reference(&format!("{}/acme/app@{digest}", reg.host)),
            &reference(&format!("{}/promoted/app:1.0.0", reg.host)),
            &none,
            GIB,
        )
        .await
        .unwrap();
    assert_eq!(copied.digest, digest);
    assert_eq!(copied.bytes_uploaded, 0, "mounted across repositories");
    let manifest: serde_json::Value = serde_json::from_slice(&reg.manifest("promoted/app", "1.0.0").await).unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap();
    assert!(reg.has("promoted/app", "blobs", config).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_platform_index_is_copied_to_another_registry_children_first_digest_unchanged() {
    let (from, to) = (TestRegistry::start(None).await, TestRegistry::start(None).await);
    let digest = from
        .push_index(
            "acme/app",
            "2.0.0",
            &[("amd64", "2026-01-01T00:00:00Z"), ("arm64", "2026-01-02T00:00:00Z")],
        )
        .await;
    // A layer bigger than one upload chunk (8 MiB) on one child: it goes up in PATCH chunks.
    let big = noise(9 * 1024 * 1024 + 17, 2);
    from.push_artifact(
        "acme/app",
        "with-layer",
        "application/vnd.oci.image.config.v1+json",
        &[("application/vnd.oci.image.layer.v1.tar+gzip", &big)],
    )
    .await;
    let registry = client();
    let copied = registry
        .copy_artifact(
            &reference(&format!("{}/acme/app:2.0.0", from.host)),
            &reference(&format!("{}/mirror/app:2.0.0", to.host)),
            &BTreeMap::new(),
            GIB,
        )
        .await
        .unwrap();
    assert_eq!(copied.digest, digest);
    assert_eq!(
        to.manifest("mirror/app", "2.0.0").await,
        from.manifest("acme/app", "2.0.0").await
    );
    let index: serde_json::Value = serde_json::from_slice(&to.manifest("mirror/app", &digest).await).unwrap();
    for child in index["manifests"].as_array().unwrap() {
        let child_digest = child["digest"].as_str().unwrap();
        assert!(to.has("mirror/app", "manifests", child_digest).await, "{child_digest}");
        let image: serde_json::Value = serde_json::from_slice(&to.manifest("mirror/app", child_digest).await).unwrap();
        assert!(
            to.has("mirror/app", "blobs", image["config"]["digest"].as_str().unwrap())
                .await
        );
    }

    let copied = registry
        .copy_artifact(
            &reference(&format!("{}/acme/app:with-layer", from.host)),
            &reference(&format!("{}/mirror/app:with-layer", to.host)),
            &BTreeMap::new(),
            GIB,
        )
        .await
        .unwrap();
    assert_eq!(copied.bytes_uploaded, big.len() as u64 + 2, "the layer and the config");
    let mut out = Vec::new();
    registry
        .download_layer(
            &reference(&format!("{}/mirror/app:with-layer", to.host)),
            None,
            GIB,
            &mut out,
        )
        .await
        .unwrap();
    assert!(out == big, "the chunked upload reassembled the layer");
}

#[tokio::test(flavor = "multi_thread")]
async fn annotations_go_on_the_index_and_its_images_as_kargo_scopes_them() {
    let reg = TestRegistry::start(None).await;
    let digest = reg
        .push_index(
            "acme/app",
            "3.0.0",
            &[("amd64", "2026-01-01T00:00:00Z"), ("arm64", "2026-01-01T00:00:00Z")],
        )
        .await;
    let annotations = BTreeMap::from([
        (
            "index:org.opencontainers.image.revision".to_string(),
            "abc123".to_string(),
        ),
        ("manifest:org.example.stage".to_string(), "prod".to_string()),
        ("org.example.unscoped".to_string(), "yes".to_string()),
    ]);
    let copied = client()
        .copy_artifact(
            &reference(&format!("{}/acme/app:3.0.0", reg.host)),
            &reference(&format!("{}/acme/app:3.0.0-prod", reg.host)),
            &annotations,
            GIB,
        )
        .await
        .unwrap();
    assert_ne!(copied.digest, digest, "annotated manifests are new manifests");
    let index: serde_json::Value = serde_json::from_slice(&reg.manifest("acme/app", "3.0.0-prod").await).unwrap();
    assert_eq!(
        index["annotations"],
        serde_json::json!({"org.opencontainers.image.revision": "abc123"})
    );
    for child in index["manifests"].as_array().unwrap() {
        let image: serde_json::Value =
            serde_json::from_slice(&reg.manifest("acme/app", child["digest"].as_str().unwrap()).await).unwrap();
        assert_eq!(
            image["annotations"],
            serde_json::json!({"org.example.stage": "prod", "org.example.unscoped": "yes"})
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_helm_chart_is_copied_between_registries_and_its_chart_layer_downloaded() {
    let (from, to) = (TestRegistry::start(None).await, TestRegistry::start(None).await);
    let chart = noise(3000, 3);
    let digest = from
        .push_artifact("charts/app", "1.2.3", HELM_CONFIG, &[(HELM_CHART, &chart)])
        .await;
    let registry = client();
    let copied = registry
        .copy_artifact(
            &reference(&format!("oci://{}/charts/app:1.2.3", from.host)),
            &reference(&format!("oci://{}/released/app:1.2.3", to.host)),
            &BTreeMap::new(),
            GIB,
        )
        .await
        .unwrap();
    assert_eq!(copied.digest, digest);
    let manifest: serde_json::Value = serde_json::from_slice(&to.manifest("released/app", "1.2.3").await).unwrap();
    assert_eq!(manifest["config"]["mediaType"], HELM_CONFIG);
    let mut out = Vec::new();
    registry
        .download_layer(
            &reference(&format!("oci://{}/released/app:1.2.3", to.host)),
            Some(HELM_CHART),
            1 << 20,
            &mut out,
        )
        .await
        .unwrap();
    assert!(out == chart);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_over_the_push_limit_is_refused_before_anything_is_sent() {
    let (from, to) = (TestRegistry::start(None).await, TestRegistry::start(None).await);
    from.push_artifact("files/big", "v1", HELM_CONFIG, &[(HELM_CHART, &noise(5000, 4))])
        .await;
    let e = client()
        .copy_artifact(
            &reference(&format!("{}/files/big:v1", from.host)),
            &reference(&format!("{}/files/big:v1", to.host)),
            &BTreeMap::new(),
            4096,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("compressed artifact size 5002 bytes exceeds maximum allowed size of 4096 bytes"),
        "{e}"
    );
    assert!(!to.has("files/big", "manifests", "v1").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_refuses_the_push_is_named_and_no_secret_is_shown() {
    let from = TestRegistry::start(None).await;
    from.push_image("acme/app", "1.0.0", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let source = reference(&format!("{}/acme/app:1.0.0", from.host));

    // Wrong credentials for the destination.
    let guarded = TestRegistry::start(Some(("ci", "right-password"))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_docker_config(dir.path(), &guarded.host, "ci", "wrong-s3cret");
    let registry = Registry::new(RegistryConfig {
        docker_config: Some(config),
        ..RegistryConfig::default()
    })
    .unwrap();
    let e = registry
        .copy_artifact(
            &source,
            &reference(&format!("{}/acme/app:1.0.0", guarded.host)),
            &BTreeMap::new(),
            GIB,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::Auth { .. }), "{e:?}");
    let message = e.to_string();
    assert!(message.contains(&guarded.host), "{message}");
    assert!(message.contains("rejected the credentials"), "{message}");
    assert!(!message.contains("wrong-s3cret"), "{message}");

    // A registry that serves reads but refuses every write.
    let read_only = TestRegistry::start_read_only().await;
    let e = client()
        .copy_artifact(
            &source,
            &reference(&format!("{}/acme/app:1.0.0", read_only.host)),
            &BTreeMap::new(),
            GIB,
        )
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(message.contains(&read_only.host), "{message}");
    assert!(message.contains("refused the write with HTTP 405"), "{message}");
}
