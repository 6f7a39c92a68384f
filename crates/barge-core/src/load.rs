//! From YAML text to typed resources, with a diagnostic for everything that goes wrong.
//!
//! Loading never stops at the first problem and never loses a resource: a document whose
//! content is wrong is still counted and named (its `body` is `None`), so `barge validate` can
//! say "3 resources, 2 errors" and point at each one. Pure: callers (the `barge-source` crate)
//! read files and repositories and hand the text in.

use crate::diag::{Code, Diagnostic, ResourceRef, Severity, did_you_mean};
use crate::model::{self, BARGE_API, Body, KARGO_API, KARGO_EE_API, Kind};
use crate::schema::{self, Schema};
use crate::yaml::{self, Node, PathSeg, path_string};
use serde::de::DeserializeOwned;

/// One loaded resource.
#[derive(Clone, Debug)]
pub struct Resource {
    pub kind: Kind,
    /// The project (Kubernetes namespace); empty for cluster-scoped kinds.
    pub project: String,
    pub name: String,
    pub file: String,
    /// The document as parsed, for positions.
    pub node: Node,
    /// Typed content; `None` when the document could not be read as its kind.
    pub body: Option<Body>,
    /// Set for resources a barge `Pipeline` expanded into: the Pipeline's name.
    pub expanded_from: Option<String>,
    /// True for a resource in Kargo's pre-v0.6 schema.
    pub legacy: bool,
}

impl Resource {
    pub fn reference(&self) -> ResourceRef {
        ResourceRef {
            kind: self.kind.as_str().to_string(),
            namespace: self.project.clone(),
            name: self.name.clone(),
        }
    }

    /// A diagnostic about this resource at `node`.
    pub fn diag(&self, code: Code, node: &Node, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, &self.file, node.span, message).resource(&self.reference())
    }
}

/// Everything loaded from a set of sources, plus what went wrong.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub resources: Vec<Resource>,
    pub diagnostics: Vec<Diagnostic>,
    /// Documents that were barge or Kargo resources (expansions not counted).
    pub documents: usize,
    /// Each loaded file's text, for showing the source line of a diagnostic.
    pub texts: std::collections::BTreeMap<String, String>,
    /// The credentials written in the texts' git URLs, which [`Self::load_text`] took out:
    /// `texts` and the resources never carry them, so neither does anything stored from them.
    pub url_credentials: crate::secret::UrlCredentials,
    /// Values derived from `resources` ([`Self::derived`]), made on first use.
    derived: Derived,
}

/// Values derived from a catalog's resources, one per type, made on first use and kept with
/// the catalog: a daemon keeps one catalog until the definitions are reloaded, and answering a
/// Stage list planned the whole pipeline from the definitions per request (BENCHMARKS.md,
/// "REST API"). A reload makes a new catalog, so they go with the old one. Loading and
/// validating (the only code that changes a catalog's resources) forget them; a clone starts
/// without them.
#[derive(Default)]
struct Derived(std::sync::Mutex<DerivedMap>);

type DerivedMap = std::collections::HashMap<std::any::TypeId, std::sync::Arc<dyn std::any::Any + Send + Sync>>;

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

impl Catalog {
    /// The value `make` derives from this catalog, made once and shared by later calls (one
    /// per type). `make` must depend on nothing but the catalog.
    pub fn derived<T: std::any::Any + Send + Sync>(&self, make: impl FnOnce(&Catalog) -> T) -> std::sync::Arc<T> {
        use std::sync::PoisonError;
        let key = std::any::TypeId::of::<T>();
        let kept = self
            .derived
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(kept) = kept.and_then(|v| v.downcast::<T>().ok()) {
            return kept;
        }
        // Made outside the lock (`make` may derive other values); of two racing, the first
        // kept wins, so every caller shares one value.
        let made = std::sync::Arc::new(make(self));
        let mut map = self.derived.0.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = map
            .entry(key)
            .or_insert_with(|| made.clone() as std::sync::Arc<dyn std::any::Any + Send + Sync>);
        kept.clone().downcast::<T>().unwrap_or(made)
    }

    /// Forgets the derived values; whatever changes `resources` calls it.
    pub fn forget_derived(&mut self) {
        self.derived = Derived::default();
    }

    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// Drops what only validation needs, the YAML trees kept for positions, once the
    /// definitions are validated: a daemon keeps its catalog for days, and the trees are most
    /// of its size. Diagnostics already made keep their positions.
    pub fn compact(&mut self) {
        for r in &mut self.resources {
            r.node = crate::yaml::Node {
                span: r.node.span,
                value: crate::yaml::Value::Null,
                plain: None,
            };
        }
    }

    /// Loads one file's text. `file` is the name diagnostics use. The userinfo of its
    /// `http(s)` URLs is taken out first (kept in [`Self::url_credentials`]).
    pub fn load_text(&mut self, file: &str, text: &str) {
        let text = self.url_credentials.strip(text);
        let (docs, err) = yaml::parse_stream(&text);
        for doc in docs {
            self.load_document(file, doc);
        }
        if let Some(err) = err {
            self.diagnostics.push(syntax_diagnostic(file, &text, &err));
        }
        self.texts.insert(file.to_string(), text);
    }

    /// Loads one file's bytes: UTF-8 text (a byte order mark is dropped) is loaded; anything
    /// else is reported at its first byte that is not UTF-8 text.
    pub fn load_bytes(&mut self, file: &str, bytes: &[u8]) {
        let first_nul = bytes.iter().position(|&b| b == 0);
        let (at, why) = match (std::str::from_utf8(bytes), first_nul) {
            (Ok(text), None) => {
                self.load_text(file, text.strip_prefix('\u{feff}').unwrap_or(text));
                return;
            }
            _ if is_utf16(bytes) => (0, "it is UTF-16 text; barge reads UTF-8".to_string()),
            (Err(e), nul) if nul.is_none_or(|n| e.valid_up_to() < n) => (
                e.valid_up_to(),
                format!(
                    "it is not UTF-8 text (byte 0x{:02X} at offset {})",
                    bytes[e.valid_up_to()],
                    e.valid_up_to()
                ),
            ),
            (_, nul) => {
                let at = nul.unwrap_or_default();
                (at, format!("it is a binary file (a NUL byte at offset {at})"))
            }
        };
        // Everything before `at` is UTF-8 (the first bad byte is at `at`).
        let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let pos = yaml::Pos {
            line: before.matches('\n').count() as u32 + 1,
            column: before[line_start..].chars().count() as u32 + 1,
        };
        self.unreadable(file, yaml::Span { start: pos, end: pos }, Severity::Error, &why);
    }

    /// Records that a file could not be read as text at all (e.g. it is too large).
    pub fn not_text(&mut self, file: &str, why: &str) {
        self.unreadable(file, Default::default(), Severity::Error, why);
    }

    /// Records that a file was skipped without reading it (a FIFO, a socket, a device).
    pub fn skipped(&mut self, file: &str, why: &str) {
        self.unreadable(file, Default::default(), Severity::Warning, why);
    }

    fn unreadable(&mut self, file: &str, at: yaml::Span, severity: Severity, why: &str) {
        let verb = match severity {
            Severity::Error => "cannot read this file as YAML",
            Severity::Warning => "skipped this file",
        };
        self.diagnostics.push(
            Diagnostic::new(Code::NotYaml, file, at, format!("{verb}: {why}"))
                .severity(severity)
                .hint("keep only UTF-8 YAML manifests under the paths you load, or name the YAML files directly"),
        );
    }

    fn load_document(&mut self, file: &str, doc: yaml::Document) {
        let root = doc.root;
        // Empty documents are nothing; a list or a scalar is likely a mistake (indentation, a
        // `- ` too many) that would otherwise pass silently as zero resources.
        if !matches!(root.value, yaml::Value::Map(_) | yaml::Value::Null) {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::NotAResource,
                    file,
                    root.span,
                    format!("this document is {}, not a resource; it is ignored", root.describe()),
                )
                .hint("a resource is a mapping with apiVersion, kind and metadata: check the indentation (a list item `- ` before `apiVersion`?)"),
            );
            return;
        }
        let Some(kind) = self.classify(file, &root) else {
            return;
        };
        self.documents += 1;
        let resource = self.build(file, kind, root, None);
        for d in &doc.duplicates {
            let mut diag = Diagnostic::new(
                Code::DuplicateKey,
                file,
                d.second,
                format!(
                    "key {:?} is set twice in one mapping (first on line {}); the last value is used",
                    d.key, d.first.start.line
                ),
            )
            .resource(&resource.reference());
            if d.same_value {
                diag = diag
                    .severity(Severity::Warning)
                    .hint("both values are the same, so nothing is lost, but `kubectl apply` rejects duplicate keys: delete one");
            } else {
                diag = diag.hint(format!(
                    "the values differ and the one on line {} is silently dropped: merge them or delete the one you do not mean",
                    d.first.start.line
                ));
            }
            self.diagnostics.push(diag);
        }
        self.push(resource);
    }

    /// Which barge kind a document is, reporting documents that are almost one. `None` for
    /// documents barge does not read (Deployments, Argo CD Applications, kustomizations...).
    fn classify(&mut self, file: &str, root: &Node) -> Option<Kind> {
        let kind_node = root.get("kind")?;
        let kind_name = kind_node.as_str()?;
        let api = root.get("apiVersion").and_then(Node::as_str);
        let known = Kind::from_name(kind_name);
        let reference = ResourceRef {
            kind: kind_name.to_string(),
            namespace: meta_str(root, "namespace"),
            name: meta_str(root, "name"),
        };
        let Some(api) = api else {
            // Only kinds no other project uses are reported; a bare `kind: Project` could be
            // OpenShift's and `kind: Pipeline` Tekton's.
            if matches!(
                known,
                Some(
                    Kind::Warehouse
                        | Kind::Stage
                        | Kind::PromotionTask
                        | Kind::ClusterPromotionTask
                        | Kind::ProjectConfig
                        | Kind::Freight
                )
            ) {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::MissingApiVersion,
                        file,
                        kind_node.span,
                        format!("{kind_name} has no apiVersion"),
                    )
                    .resource(&reference)
                    .hint(format!("add `apiVersion: {KARGO_API}`")),
                );
            }
            return None;
        };
        let group = api.split('/').next().unwrap_or_default();
        match known {
            Some(k) if k.api_version() == api => Some(k),
            Some(k) if k.group() == group => {
                let node = root.get("apiVersion").unwrap_or(root);
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::UnsupportedVersion,
                        file,
                        node.span,
                        format!("{kind_name} in API version {api:?} is not one barge reads"),
                    )
                    .resource(&reference)
                    .hint(format!("barge reads {kind_name} as `apiVersion: {}`", k.api_version())),
                );
                None
            }
            _ if [KARGO_API, KARGO_EE_API, BARGE_API]
                .iter()
                .any(|a| a.split('/').next() == Some(group)) =>
            {
                let candidates = Kind::ALL.iter().filter(|k| k.group() == group).map(|k| k.as_str());
                let mut d = Diagnostic::new(
                    Code::UnknownKind,
                    file,
                    kind_node.span,
                    format!("barge does not load kind {kind_name:?} of {api}"),
                )
                .resource(&reference);
                d = match did_you_mean(kind_name, candidates) {
                    Some(m) => d.hint(format!("did you mean {m}?")),
                    None => d.hint(
                        "runtime objects (Promotion) and other kinds are not definitions; the document is ignored",
                    ),
                };
                self.diagnostics.push(d);
                None
            }
            // Rollouts, Argo CD Applications, Deployments, kustomizations: not barge's to read.
            _ => None,
        }
    }

    fn push(&mut self, resource: Resource) {
        let expand = match (&resource.body, resource.expanded_from.is_none()) {
            (Some(Body::Pipeline(p)), true) => Some(p.clone()),
            _ => None,
        };
        let file = resource.file.clone();
        let node = resource.node.clone();
        let reference = resource.reference();
        let pipeline_name = resource.name.clone();
        self.forget_derived();
        self.resources.push(resource);
        if let Some(p) = expand {
            match model::pipeline::expand(&p, &node) {
                Ok(docs) => {
                    for doc in docs {
                        let Some(kind) = doc.get("kind").and_then(Node::as_str).and_then(Kind::from_name) else {
                            continue;
                        };
                        let r = self.build(&file, kind, doc, Some(pipeline_name.clone()));
                        self.resources.push(r);
                    }
                }
                Err(e) => self.diagnostics.push(
                    Diagnostic::new(Code::InvalidPipeline, &file, e.span, e.message)
                        .resource(&reference)
                        .hint(e.hint),
                ),
            }
        }
    }

    /// Reads a document as its kind: unknown fields, the old schema, then typed content.
    fn build(&mut self, file: &str, kind: Kind, root: Node, expanded_from: Option<String>) -> Resource {
        let mut resource = Resource {
            kind,
            project: if kind.cluster_scoped() {
                String::new()
            } else {
                meta_str(&root, "namespace")
            },
            name: meta_str(&root, "name"),
            file: file.to_string(),
            node: root,
            body: None,
            expanded_from,
            legacy: false,
        };
        if let Some(key) = old_schema_key(kind, &resource.node) {
            resource.legacy = true;
            let node = resource
                .node
                .get("spec")
                .and_then(|s| s.key_node(key))
                .cloned()
                .unwrap_or_else(|| resource.node.clone());
            self.diagnostics.push(
                resource
                    .diag(
                        Code::OldKargoSchema,
                        &node,
                        format!("this {kind} uses the old Kargo schema (`spec.{key}`, removed before Kargo v1.0) without the field that replaced it; barge reads the current v1alpha1 schema only, and Kubernetes would drop the field"),
                    )
                    .hint(old_schema_hint(kind)),
            );
            return resource;
        }
        if let Some((node, directive)) = go_template_directive(&resource.node) {
            // A Helm chart's template can be valid YAML; its contents are not definitions yet.
            let d = resource
                .diag(
                    Code::NotYaml,
                    node,
                    format!("this {kind} is a Helm/Go template (it contains `{directive}`), not a definition"),
                )
                .hint("render it first (`helm template`), or keep chart templates out of the paths barge loads");
            self.diagnostics.push(d);
            resource.legacy = true;
            return resource;
        }
        // Kubernetes reads an explicit null as an absent field (`vars:` with nothing after it).
        let json = strip_nulls(resource.node.to_json());
        let parsed = match kind {
            Kind::Project => typed(&resource, json, &mut self.diagnostics).map(Body::Project),
            Kind::ProjectConfig => typed(&resource, json, &mut self.diagnostics).map(Body::ProjectConfig),
            Kind::ClusterConfig => typed(&resource, json, &mut self.diagnostics).map(Body::ClusterConfig),
            Kind::Warehouse => typed(&resource, json, &mut self.diagnostics).map(Body::Warehouse),
            Kind::Stage => typed(&resource, json, &mut self.diagnostics).map(Body::Stage),
            Kind::PromotionTask => typed(&resource, json, &mut self.diagnostics).map(Body::PromotionTask),
            Kind::ClusterPromotionTask => typed(&resource, json, &mut self.diagnostics).map(Body::ClusterPromotionTask),
            Kind::Freight => typed(&resource, json, &mut self.diagnostics).map(Body::Freight),
            Kind::CustomPromotionStep => typed(&resource, json, &mut self.diagnostics).map(Body::CustomPromotionStep),
            Kind::MessageChannel => typed(&resource, json, &mut self.diagnostics).map(Body::MessageChannel),
            Kind::ClusterMessageChannel => {
                typed(&resource, json, &mut self.diagnostics).map(Body::ClusterMessageChannel)
            }
            Kind::EventRouter => typed(&resource, json, &mut self.diagnostics).map(Body::EventRouter),
            Kind::AnalysisTemplate => typed(&resource, json, &mut self.diagnostics).map(Body::AnalysisTemplate),
            Kind::ClusterAnalysisTemplate => {
                typed(&resource, json, &mut self.diagnostics).map(Body::ClusterAnalysisTemplate)
            }
            Kind::Pipeline => typed(&resource, json, &mut self.diagnostics).map(Body::Pipeline),
        };
        resource.body = parsed;
        resource
    }
}

/// Deserializes `json` as `T`, reporting unknown fields (warnings) and a type error (error).
fn typed<T: DeserializeOwned + Schema>(
    r: &Resource,
    json: serde_json::Value,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    for unknown in schema::unknown_fields(&r.node, T::shape()) {
        let key = unknown.key.key_text();
        let names = unknown.known.fields.iter().map(|f| f.name);
        let at = if unknown.path.is_empty() {
            String::new()
        } else {
            format!(" in {}", path_string(&unknown.path))
        };
        let mut d = r.diag(
            Code::UnknownField,
            unknown.key,
            format!("unknown field {key:?}{at}; it is ignored"),
        );
        // A field one level too high (`availabilityStrategy` next to `sources`) is common.
        let belongs_under = unknown.known.fields.iter().find(|f| match (f.shape)() {
            schema::Shape::Struct(child) => child.field(&key).is_some(),
            _ => false,
        });
        let replaced_by = old_schema_fields(r.kind)
            .iter()
            .find(|(old, _)| unknown.path == [PathSeg::Key("spec".into())] && *old == key)
            .map(|(_, new)| *new);
        d = match (belongs_under, did_you_mean(&key, names.clone())) {
            _ if let Some(new) = replaced_by => d.hint(format!(
                "`spec.{key}` is Kargo's old schema, replaced by the `spec.{new}` this {} has: remove it; see docs/migrating-from-kargo.md",
                r.kind
            )),
            (Some(parent), _) => d.hint(format!("`{key}` belongs under `{}`: indent it there", parent.name)),
            (None, Some(m)) => d.hint(format!("did you mean `{m}`?")),
            (None, None) => d.hint(format!("fields here: {}", names.collect::<Vec<_>>().join(", "))),
        };
        diags.push(d);
    }
    match serde_path_to_error::deserialize::<_, T>(json) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = to_path(e.path());
            let node = r.node.nearest(&path);
            let inner = e.into_inner().to_string();
            let mut d = r.diag(Code::InvalidType, node, format!("{}: {inner}", path_string(&path)));
            d = match &node.plain {
                Some(plain) if inner.contains("expected a string") => d.hint(format!(
                    "YAML reads `{plain}` as {}; quote it: \"{plain}\"",
                    node.describe()
                )),
                _ => d.hint("fix the value's type; see docs/reference/resources.md for every field"),
            };
            diags.push(d);
            None
        }
    }
}

fn to_path(p: &serde_path_to_error::Path) -> Vec<PathSeg> {
    use serde_path_to_error::Segment;
    p.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(PathSeg::Index(*index)),
            Segment::Map { key } => Some(PathSeg::Key(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// The first Go template directive (`{{ .Values.x }}`, `{{- if }}`, `{{ include }}`) in a
/// document's strings. Argo Rollouts' `{{args.x}}` and Kargo's `${{ }}` are not directives.
fn go_template_directive(root: &Node) -> Option<(&Node, String)> {
    use regex::Regex;
    use std::sync::LazyLock;
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(^|[^$])(\{\{-?\s*(\.[A-Za-z$]|\$|include\b|template\b|if\b|range\b|with\b|end\b|else\b|toYaml\b|tpl\b|required\b|printf\b)[^}]*\}\})")
            .expect("valid regex")
    });
    let mut found = None;
    root.walk_strings(&mut Vec::new(), &mut |_, n, s| {
        if found.is_none()
            && let Some(c) = RE.captures(s)
        {
            found = Some((n, c.get(2).map_or("", |m| m.as_str()).to_string()));
        }
    });
    found
}

fn meta_str(root: &Node, key: &str) -> String {
    root.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Node::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The spec fields of Kargo's old schema of `kind` (`subscriptions`, removed in v0.6, and
/// `promotionMechanisms`, removed in v1.0, on a Stage), each with the field that replaced it.
fn old_schema_fields(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::Stage => &[
            ("subscriptions", "requestedFreight"),
            ("promotionMechanisms", "promotionTemplate"),
        ],
        _ => &[],
    }
}

/// The field that marks a resource as written in Kargo's old schema, if any: an old field
/// without the field that replaced it. Kubernetes drops unknown fields (Kargo's CRDs keep
/// none), so such a resource would silently lose what the field asks for (a Stage without
/// `requestedFreight` is even rejected: the CRD requires it). An old field beside its
/// replacement is a leftover: an unknown field like any other.
fn old_schema_key(kind: Kind, root: &Node) -> Option<&'static str> {
    let spec = root.get("spec")?;
    old_schema_fields(kind)
        .iter()
        .find(|(old, new)| spec.get(old).is_some() && spec.get(new).is_none())
        .map(|(old, _)| *old)
}

fn old_schema_hint(kind: Kind) -> String {
    match kind {
        Kind::Stage => "rewrite it for Kargo ≥ v1.0: `spec.subscriptions` becomes `spec.requestedFreight[]` (origin + sources), and `spec.promotionMechanisms` becomes `spec.promotionTemplate.spec.steps` (git-clone, kustomize-set-image / yaml-update, git-commit, git-push, argocd-update); see docs/migrating-from-kargo.md".to_string(),
        _ => "rewrite it in the current Kargo schema".to_string(),
    }
}

/// A diagnostic for a stream that does not parse, recognising templates.
fn syntax_diagnostic(file: &str, text: &str, err: &yaml::SyntaxError) -> Diagnostic {
    let span = yaml::Span {
        start: err.pos,
        end: err.pos,
    };
    let templated = text.contains("{{") && (text.contains("{{-") || text.contains(".Values") || text.contains("{{ ."));
    if templated {
        Diagnostic::new(
            Code::NotYaml,
            file,
            span,
            "this file is a Helm/Go template, not YAML (it contains `{{ ... }}` directives)",
        )
        .hint("render it first (`helm template`), or keep templates out of the paths barge loads")
    } else {
        Diagnostic::new(Code::YamlSyntax, file, span, format!("invalid YAML: {}", err.message))
            .hint("check the indentation and quoting around this position; documents before it were loaded")
    }
}

/// UTF-16 by its byte order mark, or by the NULs that ASCII text in UTF-16 without one has
/// at every other byte.
fn is_utf16(bytes: &[u8]) -> bool {
    match bytes {
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] => true,
        [a, 0, b, 0, ..] | [0, a, 0, b, ..] => *a != 0 && *b != 0 && a.is_ascii() && b.is_ascii(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(bytes: &[u8]) -> Catalog {
        let mut c = Catalog::default();
        c.load_bytes("f.yaml", bytes);
        c
    }

    /// The one diagnostic of loading `bytes`: code, severity, line, column, message.
    fn only(bytes: &[u8]) -> (Code, Severity, u32, u32, String) {
        let c = loaded(bytes);
        assert_eq!(c.diagnostics.len(), 1, "{:?}", c.diagnostics);
        let d = &c.diagnostics[0];
        (d.code, d.severity, d.line, d.column, d.message.clone())
    }

    /// A value derived from a catalog is made once and shared, and forgotten by whatever
    /// changes the resources (loading more, validating), so it never describes resources
    /// the catalog no longer has; a clone starts without it.
    #[test]
    fn derived_values_are_kept_until_the_resources_change() {
        struct Names(Vec<String>);
        let names = |c: &Catalog| Names(c.resources.iter().map(|r| r.name.clone()).collect());
        let mut c =
            loaded(b"apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: a, namespace: p}\n");
        let first = c.derived(names);
        assert_eq!(first.0, ["a"]);
        assert!(std::sync::Arc::ptr_eq(
            &first,
            &c.derived(|_| Names(vec!["made again".into()]))
        ));
        c.load_text(
            "g.yaml",
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: b, namespace: p}\n",
        );
        assert_eq!(c.derived(names).0, ["a", "b"], "loading more forgets it");
        let clone = c.clone();
        assert_eq!(clone.derived(|_| Names(vec!["clone".into()])).0, ["clone"]);
        // Validating may move resources into the only Project: it forgets them too.
        let _ = c.derived(names);
        crate::validate::validate(&mut c);
        assert_eq!(c.derived(|_| Names(vec!["validated".into()])).0, ["validated"]);
    }

    #[test]
    fn bytes_that_are_not_utf8_text_are_reported_at_the_first_bad_one() {
        // Columns count characters: `é` before the bad byte is one.
        let (code, _, line, column, message) = only(b"a: 1\nb: \xc3\xa9\xff\n");
        assert_eq!((code, line, column), (Code::NotYaml, 2, 5));
        assert!(message.contains("not UTF-8 text (byte 0xFF at offset 10)"), "{message}");
        let (_, _, line, column, message) = only(b"kind: Stage\nspec: {}\n\x00\x01\x02");
        assert_eq!((line, column), (3, 1));
        assert!(message.contains("binary"), "{message}");
        // A NUL before an invalid byte is the first bad byte, and the other way round.
        let (_, _, line, column, message) = only(b"ab\x00\xff");
        assert_eq!((line, column), (1, 3));
        assert!(message.contains("binary"), "{message}");
        let (_, _, line, column, message) = only(b"ab\xff\x00");
        assert_eq!((line, column), (1, 3));
        assert!(message.contains("not UTF-8"), "{message}");
        for utf16 in [
            &b"\xff\xfek\x00i\x00"[..],
            b"\xfe\xff\x00k\x00i",
            b"k\x00i\x00n\x00",
            b"\x00k\x00i",
        ] {
            let (code, severity, line, column, message) = only(utf16);
            assert_eq!((code, severity, line, column), (Code::NotYaml, Severity::Error, 1, 1));
            assert!(message.contains("UTF-16"), "{message}");
        }
        // A UTF-8 byte order mark is dropped.
        assert!(loaded(b"\xef\xbb\xbfa: 1\n").diagnostics.is_empty());
    }

    #[test]
    fn a_list_or_a_scalar_document_is_a_warning_not_zero_resources() {
        for (text, what, line) in [
            ("- apiVersion: kargo.akuity.io/v1alpha1\n  kind: Project\n", "a list", 1),
            ("a: 1\n---\njust some text\n", "a string", 3),
            ("42\n", "the number 42", 1),
        ] {
            let mut c = Catalog::default();
            c.load_text("f.yaml", text);
            let d: Vec<_> = c.diagnostics.iter().filter(|d| d.code == Code::NotAResource).collect();
            assert_eq!(d.len(), 1, "{text}: {:?}", c.diagnostics);
            assert_eq!((d[0].severity, d[0].line), (Severity::Warning, line), "{text}");
            assert!(d[0].message.contains(what), "{text}: {}", d[0].message);
        }
        // Empty documents and mappings that are not barge's are nothing to report.
        let mut c = Catalog::default();
        c.load_text("f.yaml", "---\n# nothing\n---\napiVersion: apps/v1\nkind: Deployment\n");
        assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    }

    #[test]
    fn a_token_in_a_git_url_is_kept_out_of_the_texts_and_resources() {
        let mut catalog = super::Catalog::default();
        catalog.load_text(
            "w.yaml",
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w, namespace: p}\nspec:\n  subscriptions:\n    - git: {repoURL: \"https://bot:TOKEN@git.example.com/x.git\"}\n",
        );
        assert!(!catalog.texts["w.yaml"].contains("TOKEN"));
        assert!(!format!("{:?}", catalog.resources).contains("TOKEN"));
        let Some(crate::model::Body::Warehouse(w)) = &catalog.resources[0].body else {
            panic!("a Warehouse: {:?}", catalog.diagnostics);
        };
        let url = w
            .spec
            .as_ref()
            .and_then(|s| s.subscriptions[0].git.as_ref())
            .map(|g| g.repo_url.as_str());
        assert_eq!(url, Some("https://git.example.com/x.git"));
        let found = catalog.url_credentials.get("https://git.example.com/x.git").unwrap();
        assert_eq!((found.username.as_str(), found.password.as_str()), ("bot", "TOKEN"));
    }
}
