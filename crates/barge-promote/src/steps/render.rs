//! kustomize-build and helm-template, by running the `kustomize` and `helm` programs.
//!
//! Kargo embeds both; barge calls the installed tools (the versions users already pin), and
//! says how to install them when they are missing.

use super::{StepCtx, StepError, StepResult, config, done};
use crate::BoxFuture;
use barge_core::step_config::{HelmTemplate, KustomizeBuild};
use serde_json::{Map, Value as Json};
use std::path::Path;

async fn run_tool(tool: &str, args: &[String], cwd: &Path) -> Result<String, StepError> {
    let out = tokio::process::Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StepError::Invalid(format!(
                    "`{tool}` is not installed or not on PATH; install it (https://{}) to use this step",
                    if tool == "helm" {
                        "helm.sh/docs/intro/install"
                    } else {
                        "kubectl.docs.kubernetes.io/installation/kustomize"
                    }
                ))
            } else {
                StepError::Invalid(format!("cannot run {tool}: {e}"))
            }
        })?;
    if !out.status.success() {
        return Err(StepError::Invalid(format!(
            "{tool} {} failed: {}",
            args.first().map_or("", String::as_str),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|e| StepError::Invalid(format!("{tool} printed non-UTF-8 output: {e}")))
}

/// Writes rendered manifests to `out_path`: one file, or (for a directory) one file per
/// resource named `<kind>-<name>.yaml`, as Kargo's `kargo` output format does.
fn write_rendered(ctx: &StepCtx<'_>, out_path: &str, rendered: &str) -> Result<(), StepError> {
    let target = ctx.path(out_path)?;
    if out_path.ends_with(".yaml") || out_path.ends_with(".yml") {
        return ctx.write(out_path, rendered);
    }
    std::fs::create_dir_all(&target).map_err(|e| StepError::Invalid(format!("cannot create {out_path}: {e}")))?;
    let pieces = rendered
        .split("\n---")
        .map(|p| p.trim_start_matches("---").trim_start_matches('\n'));
    for text in pieces.filter(|t| !t.trim().is_empty()) {
        let (docs, _) = barge_core::yaml::parse_stream(text);
        let doc = docs.first().map(|d| d.root.to_json()).unwrap_or(Json::Null);
        if doc.is_null() {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap_or("resource").to_lowercase();
        let name = doc["metadata"]["name"].as_str().unwrap_or("unnamed").to_string();
        let mut body = text.to_string();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        ctx.write(&format!("{out_path}/{kind}-{name}.yaml"), &body)?;
    }
    Ok(())
}

pub(super) fn kustomize_build<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: KustomizeBuild = config("kustomize-build", cfg)?;
        let _ = (&c.output_format, &c.plugin);
        let dir = ctx.path(&c.path)?;
        let mut args = vec!["build".to_string(), dir.display().to_string()];
        if c.plugin.is_some() {
            args.push("--enable-helm".into());
        }
        let rendered = run_tool("kustomize", &args, ctx.work).await?;
        write_rendered(ctx, &c.out_path, &rendered)?;
        done(Map::new())
    })
}

pub(super) fn helm_template<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: HelmTemplate = config("helm-template", cfg)?;
        let _ = &c.out_layout;
        let chart = ctx.path(&c.path)?;
        if c.build_dependencies {
            run_tool(
                "helm",
                &["dependency".into(), "build".into(), chart.display().to_string()],
                ctx.work,
            )
            .await?;
        }
        let mut args = vec![
            "template".to_string(),
            c.release_name.clone().unwrap_or_else(|| "release-name".into()),
            chart.display().to_string(),
        ];
        if let Some(ns) = &c.namespace {
            args.extend(["--namespace".into(), ns.clone()]);
        }
        for f in &c.values_files {
            let p = ctx.path(f)?;
            if !p.exists() && c.ignore_missing_value_files {
                continue;
            }
            args.extend(["--values".into(), p.display().to_string()]);
        }
        for s in &c.set_values {
            let v = match &s.value {
                Json::String(x) => x.clone(),
                other => other.to_string(),
            };
            let flag = if s.literal { "--set-literal" } else { "--set" };
            args.extend([flag.into(), format!("{}={v}", s.key)]);
        }
        for (on, flag) in [
            (c.include_crds, "--include-crds"),
            (c.disable_hooks, "--no-hooks"),
            (c.skip_tests, "--skip-tests"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        if let Some(v) = &c.kube_version {
            args.extend(["--kube-version".into(), v.clone()]);
        }
        for a in &c.api_versions {
            args.extend(["--api-versions".into(), a.clone()]);
        }
        let _ = c.use_release_name;
        let rendered = run_tool("helm", &args, ctx.work).await?;
        write_rendered(ctx, &c.out_path, &rendered)?;
        done(Map::new())
    })
}
