//! Kargo's OCI steps (its `oci_downloader.go` and `oci_pusher.go`): `oci-download` writes one
//! layer of an artifact to a file, `oci-push` copies or retags an image, chart or index. Both
//! go through the engine's registry client, so they use barge's registry credentials, rewrites
//! and rate limits, as image discovery does.

use super::{StepCtx, StepError, StepResult, config, done, partial_beside, remove_any};
use crate::BoxFuture;
use barge_core::step_config::{OciDownload, OciPush};
use barge_registry::{OciReference, RegistryError};
use serde_json::{Map, Value as Json};

/// Kargo's limit for one downloaded layer (`maxOCIArtifactSize`).
const MAX_DOWNLOAD: u64 = 100 << 20;

/// Kargo's default limit for the blobs one push copies between repositories
/// (`MAX_OCI_PUSH_ARTIFACT_SIZE`, 1 GiB).
const MAX_PUSH: u64 = 1 << 30;

fn failed(step: &str, e: RegistryError) -> StepError {
    StepError::of_class(e.class(), format!("{step}: {e}"))
}

fn reference(step: &str, field: &str, text: &str) -> Result<OciReference, StepError> {
    OciReference::parse(text).map_err(|e| StepError::Invalid(format!("{step}: {field}: {e}")))
}

/// Kargo's oci-download: the layer of `imageRef` with `mediaType` (default: the first layer)
/// into `outPath`, at most 100 MB; written beside the file and moved in place when complete,
/// so a refused or failed download leaves nothing at `outPath`.
pub(super) fn oci_download<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        const STEP: &str = "oci-download";
        let c: OciDownload = config(STEP, cfg)?;
        let artifact = reference(STEP, "imageRef", &c.image_ref)?;
        let out = ctx.path(&c.out_path)?;
        if out.symlink_metadata().is_ok() && !c.allow_overwrite {
            return Err(StepError::Invalid(format!(
                "{STEP}: file already exists at {} and overwrite is not allowed",
                c.out_path
            )));
        }
        let io_error = |e: std::io::Error| StepError::Invalid(format!("{STEP}: cannot write {}: {e}", c.out_path));
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        let partial = partial_beside(&out);
        let written = async {
            let mut file = tokio::fs::File::create(&partial).await.map_err(io_error)?;
            ctx.engine
                .registry
                .download_layer(&artifact, c.media_type.as_deref(), MAX_DOWNLOAD, &mut file)
                .await
                .map_err(|e| failed(STEP, e))?;
            file.sync_all().await.map_err(io_error)?;
            std::fs::rename(&partial, &out).map_err(io_error)
        }
        .await;
        if written.is_err() {
            remove_any(&partial);
        }
        written?;
        done(Map::new())
    })
}

/// Kargo's oci-push: `srcRef` copied to `destRef` (a tag), with `annotations`; outputs `image`
/// (destRef as written, without `oci://`), `digest` and `tag`.
pub(super) fn oci_push<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        const STEP: &str = "oci-push";
        let c: OciPush = config(STEP, cfg)?;
        let source = reference(STEP, "srcRef", &c.src_ref)?;
        let dest = reference(STEP, "destRef", &c.dest_ref)?;
        let tag = dest
            .tag()
            .ok_or_else(|| StepError::Invalid(format!("{STEP}: destRef must name a tag, not a digest")))?
            .to_string();
        if ctx.engine.dry_run {
            // Nothing is pushed; the digest is the source's (annotations would change it).
            let registry = &ctx.engine.registry;
            let digest = registry
                .head_digest(&registry.resolve(&source.repository), &source.reference)
                .await
                .map_err(|e| failed(STEP, e))?;
            return done(outputs(&dest, digest, tag));
        }
        let copied = ctx
            .engine
            .registry
            .copy_artifact(&source, &dest, &c.annotations, MAX_PUSH)
            .await
            .map_err(|e| failed(STEP, e))?;
        done(outputs(&dest, copied.digest, tag))
    })
}

/// oci-push's outputs, named as Kargo names them.
fn outputs(dest: &OciReference, digest: String, tag: String) -> Map<String, Json> {
    let mut outputs = Map::new();
    outputs.insert("image".into(), Json::String(dest.to_string()));
    outputs.insert("digest".into(), Json::String(digest));
    outputs.insert("tag".into(), Json::String(tag));
    outputs
}
