//! barge's `Pipeline` shorthand (`barge.dev/v1alpha1`): one short document for the common case
//! "watch these images, and walk each new version through these stages by editing each stage's
//! overlay in this config repo".
//!
//! A Pipeline expands into ordinary Kargo resources (Project, ProjectConfig, Warehouse, a
//! PromotionTask, one Stage per entry) which then go through exactly the validation and
//! execution paths hand-written Kargo YAML does. Expansion builds YAML [`Node`]s that carry the
//! spans of the Pipeline fields they came from, so a problem in an expanded resource (a bad
//! constraint, an unknown analysis template) is reported at its place in the Pipeline file.

use super::ObjectMeta;
use crate::schema::Schema;
use crate::yaml::{Entry, Node, Span, Value as Y};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct Pipeline {
    /// `barge.dev/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// `Pipeline`.
    #[serde(default)]
    pub kind: String,
    /// Name (also the Warehouse's) and namespace (the project; default: the name).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The pipeline.
    #[serde(default)]
    pub spec: PipelineSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// Images to watch; each new combination of versions becomes Freight.
    #[serde(default)]
    pub images: Vec<PipelineImage>,
    /// How often to look for new images (Go duration, default 5m).
    #[serde(default)]
    pub interval: Option<String>,
    /// The config repository the stages' manifests live in.
    #[serde(default)]
    pub git: PipelineGit,
    /// How a promotion edits a stage's files.
    #[serde(default)]
    pub update: PipelineUpdate,
    /// The stages in promotion order: the first takes freight from the warehouse, each later
    /// one from the stage before it.
    #[serde(default)]
    pub stages: Vec<PipelineStage>,
    /// Verification run after every stage's promotion unless the stage sets its own.
    #[serde(default)]
    pub verification: Option<PipelineVerification>,
    /// Sync an Argo CD Application per stage after pushing (and gate health on it).
    #[serde(default)]
    pub argocd: Option<PipelineArgoCd>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineImage {
    /// Image repository, without tag.
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// A Masterminds semver constraint for SemVer (the default strategy), the tag to follow
    /// for Digest.
    #[serde(default)]
    pub constraint: Option<String>,
    /// `SemVer` (default), `Lexical`, `Digest` or `NewestBuild`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Only tags matching one of these RE2 regexes are considered.
    #[serde(default)]
    pub allow_tags_regexes: Vec<String>,
    /// Tags matching any of these RE2 regexes are skipped.
    #[serde(default)]
    pub ignore_tags_regexes: Vec<String>,
    /// For `update.kind: yaml`: the key (dot path) that holds this image's tag.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineGit {
    /// The config repository's URL.
    #[serde(default, rename = "repoURL")]
    pub repo_url: String,
    /// The branch promotions commit to (default `main`).
    #[serde(default)]
    pub branch: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineUpdate {
    /// `kustomize` (default): `kustomize edit set image` in the stage's overlay directory.
    /// `yaml`: set each image's `key` in the stage's YAML file (e.g. Helm values).
    #[serde(default)]
    pub kind: Option<String>,
    /// The overlay directory (kustomize) or file (yaml) of a stage; `{stage}` is replaced by
    /// the stage name. Default `stages/{stage}`.
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStage {
    /// Stage name.
    #[serde(default)]
    pub name: String,
    /// Promote new freight automatically (a ProjectConfig promotion policy is generated).
    #[serde(default)]
    pub auto_promote: Option<bool>,
    /// How long freight must have been in the previous stage first (Go duration).
    #[serde(default)]
    pub required_soak_time: Option<String>,
    /// Overrides `spec.update.path` for this stage.
    #[serde(default)]
    pub path: Option<String>,
    /// Verification for this stage (overrides `spec.verification`).
    #[serde(default)]
    pub verification: Option<PipelineVerification>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineVerification {
    /// AnalysisTemplate names.
    #[serde(default)]
    pub analysis_templates: Vec<String>,
    /// Template arguments.
    #[serde(default)]
    pub args: Vec<super::kargo::AnalysisArgValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineArgoCd {
    /// The Application name; `{stage}` is replaced by the stage name.
    #[serde(default)]
    pub app: String,
    /// Default `argocd`.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Why a Pipeline cannot be expanded, and where.
pub struct ExpandError {
    pub span: Span,
    pub message: String,
    pub hint: String,
}

/// The project a Pipeline's resources belong to.
pub fn project_of(p: &Pipeline) -> String {
    p.metadata
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| p.metadata.name.clone())
}

/// Expands a Pipeline (typed, plus its source node for positions) into Kargo documents.
pub fn expand(p: &Pipeline, root: &Node) -> Result<Vec<Node>, ExpandError> {
    let spec_node = root.get("spec").unwrap_or(root);
    let at = |path: &[&str]| -> Span {
        let mut n = spec_node;
        for k in path {
            match n.get(k) {
                Some(x) => n = x,
                None => break,
            }
        }
        n.span
    };
    let fail = |span: Span, message: &str, hint: &str| ExpandError {
        span,
        message: message.to_string(),
        hint: hint.to_string(),
    };
    if p.spec.images.is_empty() {
        return Err(fail(
            at(&["images"]),
            "a Pipeline needs at least one image in spec.images",
            "add `images: [{repoURL: registry.example.com/org/app, constraint: ^1.0.0}]`",
        ));
    }
    if p.spec.git.repo_url.is_empty() {
        return Err(fail(
            at(&["git"]),
            "spec.git.repoURL is required: the config repository promotions commit to",
            "add `git: {repoURL: https://git.example.com/org/config.git}`",
        ));
    }
    if p.spec.stages.is_empty() {
        return Err(fail(
            at(&["stages"]),
            "a Pipeline needs at least one stage in spec.stages",
            "add `stages: [{name: dev}, {name: staging}, {name: prod}]`",
        ));
    }
    let update_kind = p.spec.update.kind.as_deref().unwrap_or("kustomize");
    if !matches!(update_kind, "kustomize" | "yaml") {
        return Err(fail(
            at(&["update", "kind"]),
            &format!("unknown update kind {update_kind:?}"),
            "use `kustomize` (edit each stage's kustomization images) or `yaml` (set a key in each stage's YAML file)",
        ));
    }
    let images_node = spec_node.get("images");
    if update_kind == "yaml" && p.spec.images.len() > 1 {
        for (i, img) in p.spec.images.iter().enumerate() {
            if img.key.is_none() {
                let span = images_node
                    .and_then(|n| n.as_seq().get(i))
                    .map_or(root.span, |n| n.span);
                return Err(fail(
                    span,
                    "with update kind yaml and several images, each image needs `key`",
                    "set `key: image.tag` (the dot path of the tag in the stage's file) on every image",
                ));
            }
        }
    }

    let project = project_of(p);
    let name = p.metadata.name.clone();
    let root_span = root.span;
    let b = Build { span: root_span };

    let mut docs = Vec::new();
    // Project.
    docs.push(b.map(&[
        ("apiVersion", b.s(super::KARGO_API)),
        ("kind", b.s("Project")),
        ("metadata", b.map(&[("name", b.s(&project))])),
    ]));

    // ProjectConfig: auto-promotion is a project policy, never a Stage field (as in Kargo).
    let policies: Vec<Node> = p
        .spec
        .stages
        .iter()
        .filter(|s| s.auto_promote == Some(true))
        .map(|s| {
            b.map(&[
                ("stageSelector", b.map(&[("name", b.s(&s.name))])),
                ("autoPromotionEnabled", b.node(Y::Bool(true))),
            ])
        })
        .collect();
    if !policies.is_empty() {
        docs.push(b.map(&[
            ("apiVersion", b.s(super::KARGO_API)),
            ("kind", b.s("ProjectConfig")),
            (
                "metadata",
                b.map(&[("name", b.s(&project)), ("namespace", b.s(&project))]),
            ),
            ("spec", b.map(&[("promotionPolicies", b.seq(policies))])),
        ]));
    }

    // Warehouse.
    let subs: Vec<Node> = p
        .spec
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            let src = images_node.and_then(|n| n.as_seq().get(i));
            let copy = |k: &str| src.and_then(|n| n.get(k)).cloned();
            let mut image = vec![("repoURL", copy("repoURL").unwrap_or_else(|| b.s(&img.repo_url)))];
            if let Some(c) = copy("strategy") {
                image.push(("imageSelectionStrategy", c));
            }
            for k in ["constraint", "allowTagsRegexes", "ignoreTagsRegexes"] {
                if let Some(c) = copy(k) {
                    image.push((k, c));
                }
            }
            b.map(&[("image", b.map(&image))])
        })
        .collect();
    let mut wh_spec = vec![("subscriptions", b.seq(subs))];
    if let Some(n) = spec_node.get("interval") {
        wh_spec.push(("interval", n.clone()));
    }
    docs.push(b.map(&[
        ("apiVersion", b.s(super::KARGO_API)),
        ("kind", b.s("Warehouse")),
        ("metadata", b.map(&[("name", b.s(&name)), ("namespace", b.s(&project))])),
        ("spec", b.map(&wh_spec)),
    ]));

    // The promotion task every stage runs, parameterised by the stage's path (and app).
    let branch = p.spec.git.branch.clone().unwrap_or_else(|| "main".to_string());
    let git_url = spec_node
        .get("git")
        .and_then(|g| g.get("repoURL"))
        .cloned()
        .unwrap_or_else(|| b.s(&p.spec.git.repo_url));
    let mut steps = vec![b.map(&[
        ("uses", b.s("git-clone")),
        (
            "config",
            b.map(&[
                ("repoURL", git_url.clone()),
                (
                    "checkout",
                    b.seq(vec![b.map(&[("branch", b.s(&branch)), ("path", b.s("./src"))])]),
                ),
            ]),
        ),
    ])];
    if update_kind == "kustomize" {
        let images: Vec<Node> = p
            .spec
            .images
            .iter()
            .map(|i| b.map(&[("image", b.s(&i.repo_url))]))
            .collect();
        steps.push(b.map(&[
            ("uses", b.s("kustomize-set-image")),
            ("as", b.s("update")),
            (
                "config",
                b.map(&[("path", b.s("./src/${{ vars.path }}")), ("images", b.seq(images))]),
            ),
        ]));
    } else {
        let updates: Vec<Node> = p
            .spec
            .images
            .iter()
            .map(|i| {
                b.map(&[
                    ("key", b.s(i.key.as_deref().unwrap_or("image.tag"))),
                    (
                        "value",
                        b.s(&format!("${{{{ imageFrom({}).Tag }}}}", quote(&i.repo_url))),
                    ),
                ])
            })
            .collect();
        steps.push(b.map(&[
            ("uses", b.s("yaml-update")),
            ("as", b.s("update")),
            (
                "config",
                b.map(&[("path", b.s("./src/${{ vars.path }}")), ("updates", b.seq(updates))]),
            ),
        ]));
    }
    steps.push(b.map(&[
        ("uses", b.s("git-commit")),
        ("as", b.s("commit")),
        (
            "config",
            b.map(&[
                ("path", b.s("./src")),
                ("message", b.s("${{ task.outputs.update.commitMessage }}")),
            ]),
        ),
    ]));
    steps.push(b.map(&[
        ("uses", b.s("git-push")),
        ("as", b.s("push")),
        (
            "config",
            b.map(&[("path", b.s("./src")), ("targetBranch", b.s(&branch))]),
        ),
    ]));
    let mut task_vars = vec![b.map(&[("name", b.s("path"))])];
    if let Some(argo) = &p.spec.argocd {
        task_vars.push(b.map(&[("name", b.s("app"))]));
        steps.push(b.map(&[
            ("uses", b.s("argocd-update")),
            (
                "config",
                b.map(&[(
                    "apps",
                    b.seq(vec![b.map(&[
                        ("name", b.s("${{ vars.app }}")),
                        ("namespace", b.s(argo.namespace.as_deref().unwrap_or("argocd"))),
                        (
                            "sources",
                            b.seq(vec![b.map(&[
                                ("repoURL", git_url.clone()),
                                ("desiredRevision", b.s("${{ task.outputs.commit.commit }}")),
                            ])]),
                        ),
                    ])]),
                )]),
            ),
        ]));
    }
    let task_name = format!("{name}-promote");
    docs.push(b.map(&[
        ("apiVersion", b.s(super::KARGO_API)),
        ("kind", b.s("PromotionTask")),
        (
            "metadata",
            b.map(&[("name", b.s(&task_name)), ("namespace", b.s(&project))]),
        ),
        ("spec", b.map(&[("vars", b.seq(task_vars)), ("steps", b.seq(steps))])),
    ]));

    // One Stage per entry, each fed by the one before it.
    let default_path = p
        .spec
        .update
        .path
        .clone()
        .unwrap_or_else(|| "stages/{stage}".to_string());
    let stages_node = spec_node.get("stages");
    for (i, st) in p.spec.stages.iter().enumerate() {
        let src = stages_node.and_then(|n| n.as_seq().get(i));
        let sb = Build {
            span: src.map_or(root_span, |n| n.span),
        };
        let stage_name = src
            .and_then(|n| n.get("name"))
            .cloned()
            .unwrap_or_else(|| sb.s(&st.name));
        let mut sources = if i == 0 {
            vec![("direct", sb.node(Y::Bool(true)))]
        } else {
            vec![("stages", sb.seq(vec![sb.s(&p.spec.stages[i - 1].name)]))]
        };
        if let Some(n) = src.and_then(|n| n.get("requiredSoakTime")) {
            sources.push(("requiredSoakTime", n.clone()));
        }
        let path = st
            .path
            .clone()
            .unwrap_or_else(|| default_path.clone())
            .replace("{stage}", &st.name);
        let mut task_step_vars = vec![sb.map(&[("name", sb.s("path")), ("value", sb.s(&path))])];
        if let Some(argo) = &p.spec.argocd {
            task_step_vars.push(sb.map(&[
                ("name", sb.s("app")),
                ("value", sb.s(&argo.app.replace("{stage}", &st.name))),
            ]));
        }
        let mut stage_spec = vec![
            (
                "requestedFreight",
                sb.seq(vec![sb.map(&[
                    ("origin", sb.map(&[("kind", sb.s("Warehouse")), ("name", sb.s(&name))])),
                    ("sources", sb.map(&sources)),
                ])]),
            ),
            (
                "promotionTemplate",
                sb.map(&[(
                    "spec",
                    sb.map(&[(
                        "steps",
                        sb.seq(vec![sb.map(&[
                            ("task", sb.map(&[("name", sb.s(&task_name))])),
                            ("vars", sb.seq(task_step_vars)),
                        ])]),
                    )]),
                )]),
            ),
        ];
        let (verification, vnode) = match (&st.verification, src.and_then(|n| n.get("verification"))) {
            (Some(v), n) => (Some(v), n),
            (None, _) => (p.spec.verification.as_ref(), spec_node.get("verification")),
        };
        if let Some(v) = verification {
            let vb = Build {
                span: vnode.map_or(sb.span, |n| n.span),
            };
            let names_node = vnode.and_then(|n| n.get("analysisTemplates"));
            let templates: Vec<Node> = v
                .analysis_templates
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let name_node = names_node
                        .and_then(|n| n.as_seq().get(j))
                        .cloned()
                        .unwrap_or_else(|| vb.s(t));
                    vb.map(&[("name", name_node)])
                })
                .collect();
            let mut ver = vec![("analysisTemplates", vb.seq(templates))];
            if let Some(args) = vnode.and_then(|n| n.get("args")) {
                ver.push(("args", args.clone()));
            }
            stage_spec.push(("verification", vb.map(&ver)));
        }
        docs.push(sb.map(&[
            ("apiVersion", sb.s(super::KARGO_API)),
            ("kind", sb.s("Stage")),
            (
                "metadata",
                sb.map(&[("name", stage_name), ("namespace", sb.s(&project))]),
            ),
            ("spec", sb.map(&stage_spec)),
        ]));
    }
    Ok(docs)
}

/// An expr string literal.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Builds synthetic nodes that all point at one span of the Pipeline.
struct Build {
    span: Span,
}

impl Build {
    fn node(&self, value: Y) -> Node {
        Node {
            span: self.span,
            value,
            plain: None,
        }
    }
    fn s(&self, s: &str) -> Node {
        self.node(Y::Str(s.to_string()))
    }
    fn seq(&self, items: Vec<Node>) -> Node {
        self.node(Y::Seq(items))
    }
    fn map(&self, entries: &[(&str, Node)]) -> Node {
        self.node(Y::Map(
            entries
                .iter()
                .map(|(k, v)| Entry {
                    key: self.s(k),
                    value: v.clone(),
                })
                .collect(),
        ))
    }
}
