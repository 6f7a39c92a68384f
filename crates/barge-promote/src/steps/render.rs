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

/// One rendered resource: its text and what its file name is made of.
struct Piece<'t> {
    text: &'t str,
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

/// How a directory `outPath` names the file of each resource.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Naming {
    /// `<kind>-<name>.yaml` (helm-template).
    KindName,
    /// kustomize-build's `kargo` format: `[namespace-]kind-name.yaml`, lower case (Kargo's
    /// `fileNameKargo`).
    Kargo,
    /// kustomize-build's `kustomize` format, as `kustomize build -o dir/` names files:
    /// `[namespace_]group_version_kind_name.yaml`, lower case, the namespace only when the
    /// resources are in more than one (Kargo's `fileNameKustomize`).
    Kustomize,
}

/// Kubernetes' built-in cluster-scoped kinds, by API group: kustomize does not count them as
/// in a namespace (`resid.Gvk.IsClusterScoped`, from its built-in OpenAPI data); any other kind
/// (custom resources too) is namespaced.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("policy", "PodSecurityPolicy"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("networking.k8s.io", "IngressClass"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("authentication.k8s.io", "TokenReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
];

impl Piece<'_> {
    fn group_version(&self) -> (&str, &str) {
        self.api_version.split_once('/').unwrap_or(("", &self.api_version))
    }

    /// The namespace kustomize groups the resource under: none for a cluster-scoped kind,
    /// `default` for a namespaced one without any.
    fn effective_namespace(&self) -> Option<&str> {
        let group = self.group_version().0;
        if CLUSTER_SCOPED.contains(&(group, self.kind.as_str())) {
            None
        } else if self.namespace.is_empty() {
            Some("default")
        } else {
            Some(&self.namespace)
        }
    }

    fn file_name(&self, naming: Naming, several_namespaces: bool) -> String {
        let name = match naming {
            Naming::KindName => return format!("{}-{}.yaml", self.kind.to_lowercase(), self.name),
            Naming::Kargo if self.namespace.is_empty() => format!("{}-{}.yaml", self.kind, self.name),
            Naming::Kargo => format!("{}-{}-{}.yaml", self.namespace, self.kind, self.name),
            Naming::Kustomize => {
                // kustomize's `Gvk.StringWoEmptyField`: the non-empty ones of group, version, kind.
                let (group, version) = self.group_version();
                let gvk: Vec<&str> = [group, version, self.kind.as_str()]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .collect();
                let base = format!("{}_{}.yaml", gvk.join("_"), self.name);
                if several_namespaces && !self.namespace.is_empty() {
                    format!("{}_{base}", self.namespace)
                } else {
                    base
                }
            }
        };
        name.to_lowercase()
    }
}

/// Writes rendered manifests to `out_path`: one file (a `.yaml`/`.yml` path), or a directory
/// with one file per resource named as `naming` says.
fn write_rendered(ctx: &StepCtx<'_>, out_path: &str, rendered: &str, naming: Naming) -> Result<(), StepError> {
    let target = ctx.path(out_path)?;
    if out_path.ends_with(".yaml") || out_path.ends_with(".yml") {
        return ctx.write(out_path, rendered);
    }
    std::fs::create_dir_all(&target).map_err(|e| StepError::Invalid(format!("cannot create {out_path}: {e}")))?;
    let mut pieces = Vec::new();
    for text in rendered
        .split("\n---")
        .map(|p| p.trim_start_matches("---").trim_start_matches('\n'))
        .filter(|t| !t.trim().is_empty())
    {
        let (docs, _) = barge_core::yaml::parse_stream(text);
        let doc = docs.first().map(|d| d.root.to_json()).unwrap_or(Json::Null);
        if doc.is_null() {
            continue;
        }
        let field = |v: &Json| v.as_str().unwrap_or_default().to_string();
        pieces.push(Piece {
            text,
            api_version: field(&doc["apiVersion"]),
            kind: doc["kind"].as_str().unwrap_or("resource").to_string(),
            namespace: field(&doc["metadata"]["namespace"]),
            name: doc["metadata"]["name"].as_str().unwrap_or("unnamed").to_string(),
        });
    }
    let namespaces: std::collections::BTreeSet<&str> = pieces.iter().filter_map(Piece::effective_namespace).collect();
    for piece in &pieces {
        let file = piece.file_name(naming, namespaces.len() > 1);
        // Names come from rendered metadata: anything but a plain file name could write
        // outside the directory (Kargo's validateGeneratedResourceFilename refuses the same).
        if file.contains(['/', '\\']) || file == "." || file == ".." {
            return Err(StepError::Invalid(format!(
                "unsafe file name {file:?} from the {} {:?}",
                piece.kind, piece.name
            )));
        }
        let mut body = piece.text.to_string();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        ctx.write(&format!("{out_path}/{file}"), &body)?;
    }
    Ok(())
}

pub(super) fn kustomize_build<'a>(ctx: &'a StepCtx<'a>, cfg: Json) -> BoxFuture<'a, StepResult> {
    Box::pin(async move {
        let c: KustomizeBuild = config("kustomize-build", cfg)?;
        let naming = match c.output_format.as_deref() {
            None | Some("kargo") => Naming::Kargo,
            Some("kustomize") => Naming::Kustomize,
            Some(other) => {
                return Err(StepError::Invalid(format!(
                    "kustomize-build: outputFormat {other:?} is neither `kargo` nor `kustomize`"
                )));
            }
        };
        let dir = ctx.path(&c.path)?;
        // Kargo always enables kustomize's Helm chart inflator (helmCharts), with `helm` from
        // PATH; `plugin.helm` only sets what the charts see.
        let mut args = vec!["build".to_string(), dir.display().to_string(), "--enable-helm".into()];
        if let Some(helm) = c.plugin.as_ref().and_then(|p| p.helm.as_ref()) {
            for v in &helm.api_versions {
                args.push(format!("--helm-api-versions={v}"));
            }
            if let Some(v) = &helm.kube_version {
                args.push(format!("--helm-kube-version={v}"));
            }
        }
        let rendered = run_tool("kustomize", &args, ctx.work).await?;
        write_rendered(ctx, &c.out_path, &rendered, naming)?;
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
        write_rendered(ctx, &c.out_path, &rendered, Naming::KindName)?;
        done(Map::new())
    })
}
