//! Validation of a loaded [`Catalog`]: values (constraints, regexes, durations, expressions,
//! strategies), steps, and references between resources (warehouses, upstream stages, tasks,
//! analysis templates, step outputs), each problem a positioned [`Diagnostic`] with a hint.
//!
//! Checks read the typed bodies and find positions by walking the same path in the YAML tree,
//! so a check can never point at the wrong place even when the typed value has defaults.

use crate::diag::{Code, Diagnostic, Severity, did_you_mean};
use crate::duration::parse_go_duration;
use crate::expr;
use crate::load::{Catalog, Resource};
use crate::model::analysis::{AnalysisTemplateSpec, IntOrString};
use crate::model::kargo::{
    ChartSubscription, GitSubscription, ImageSubscription, ProjectConfigSpec, PromotionPolicy, StageSpec, Step,
    WarehouseSpec,
};
use crate::model::{Body, Kind, Var};
use crate::semver::Constraint;
use crate::steps::{self, StepKind};
use crate::yaml::{Node, PathSeg};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

/// Builds a path from keys and indexes: `path!["spec", "steps", 3, "uses"]`.
macro_rules! path {
    ($($seg:expr),* $(,)?) => { [$(PathSeg::from($seg)),*] };
}

/// `base` followed by `tail`.
fn join(base: &[PathSeg], tail: &[PathSeg]) -> Vec<PathSeg> {
    base.iter().chain(tail).cloned().collect()
}

impl From<&str> for PathSeg {
    fn from(k: &str) -> Self {
        PathSeg::Key(k.to_string())
    }
}
impl From<usize> for PathSeg {
    fn from(i: usize) -> Self {
        PathSeg::Index(i)
    }
}

/// Validates everything loaded; diagnostics are appended to the catalog, sorted and deduplicated.
pub fn validate(catalog: &mut Catalog) {
    assign_default_project(catalog);
    // Projects may have changed under values derived before.
    catalog.forget_derived();
    let mut out = Vec::new();
    let index = Index::new(&catalog.resources);
    duplicate_resources(&catalog.resources, &mut out);
    for r in &catalog.resources {
        let mut cx = Cx {
            r,
            index: &index,
            out: &mut out,
        };
        cx.names();
        match &r.body {
            Some(Body::Project(p)) => {
                if let Some(spec) = &p.spec
                    && !spec.promotion_policies.is_empty()
                {
                    let node = cx.at(&path!["spec", "promotionPolicies"]);
                    cx.push(
                        r.diag(
                            Code::DeprecatedField,
                            cx.key_at(&path!["spec", "promotionPolicies"]).unwrap_or(node),
                            "Project.spec.promotionPolicies moved to ProjectConfig in Kargo v1.7",
                        )
                        .hint("barge still reads it; move it to a ProjectConfig named like the project"),
                    );
                    for (i, p) in spec.promotion_policies.iter().enumerate() {
                        cx.promotion_policy(p, &path!["spec", "promotionPolicies", i]);
                    }
                }
            }
            Some(Body::ProjectConfig(pc)) => cx.project_config(pc.spec.as_ref()),
            Some(Body::Warehouse(w)) => cx.warehouse(w.spec.as_ref()),
            Some(Body::Stage(s)) => cx.stage(s.spec.as_ref()),
            Some(Body::PromotionTask(t)) => cx.task(t.spec.as_ref()),
            Some(Body::ClusterPromotionTask(t)) => cx.task(t.spec.as_ref()),
            Some(Body::AnalysisTemplate(t)) => cx.analysis_template(t.spec.as_ref()),
            Some(Body::ClusterAnalysisTemplate(t)) => cx.analysis_template(t.spec.as_ref()),
            Some(Body::ClusterConfig(cc)) => {
                if let Some(spec) = &cc.spec {
                    cx.webhook_receivers(&spec.webhook_receivers);
                }
            }
            Some(Body::MessageChannel(c)) => cx.message_channel(c.spec.as_ref()),
            Some(Body::ClusterMessageChannel(c)) => cx.message_channel(c.spec.as_ref()),
            Some(Body::EventRouter(e)) => cx.event_router(e.spec.as_ref()),
            Some(Body::Freight(_) | Body::CustomPromotionStep(_) | Body::Pipeline(_)) | None => {}
        }
        if !r.legacy
            && r.body.is_some()
            && !matches!(
                r.kind,
                Kind::AnalysisTemplate | Kind::ClusterAnalysisTemplate | Kind::CustomPromotionStep
            )
        {
            cx.placeholders_and_expressions();
        }
    }
    stage_cycles(&catalog.resources, &mut out);
    catalog.diagnostics.extend(out);
    let mut seen = HashSet::new();
    catalog
        .diagnostics
        .retain(|d| seen.insert((d.file.clone(), d.line, d.column, d.code, d.message.clone())));
    crate::diag::sort(&mut catalog.diagnostics);
}

/// A resource without a namespace belongs to the only Project loaded, as `kubectl apply -n`
/// would have put it; with several (or no) Projects it stays in the unnamed project.
fn assign_default_project(catalog: &mut Catalog) {
    let projects: BTreeSet<&str> = catalog
        .resources
        .iter()
        .filter(|r| r.kind == Kind::Project && !r.name.is_empty())
        .map(|r| r.name.as_str())
        .collect();
    if projects.len() != 1 {
        return;
    }
    let only = projects.into_iter().next().unwrap_or_default().to_string();
    for r in &mut catalog.resources {
        if !r.kind.cluster_scoped() && r.project.is_empty() {
            r.project.clone_from(&only);
        }
    }
}

/// Lookups across resources.
struct Index<'a> {
    by_key: HashMap<(Kind, &'a str, &'a str), &'a Resource>,
    custom_steps: HashSet<&'a str>,
    /// Per analysis template (kind, project, name): the Stages whose verification runs it.
    verified_by: HashMap<(Kind, &'a str, &'a str), Vec<&'a Resource>>,
}

/// The kind an analysis template reference names, if it is one.
fn template_kind(kind: Option<&str>) -> Option<Kind> {
    match kind {
        None | Some("") | Some("AnalysisTemplate") => Some(Kind::AnalysisTemplate),
        Some("ClusterAnalysisTemplate") => Some(Kind::ClusterAnalysisTemplate),
        Some(_) => None,
    }
}

/// The template references of a Stage's verification, with their kinds.
fn verification_templates(stage: &Resource) -> Vec<(Kind, &str)> {
    let Some(Body::Stage(s)) = &stage.body else {
        return Vec::new();
    };
    let Some(v) = s.spec.as_ref().and_then(|spec| spec.verification.as_ref()) else {
        return Vec::new();
    };
    v.analysis_templates
        .iter()
        .filter_map(|t| Some((template_kind(t.kind.as_deref())?, t.name.as_str())))
        .collect()
}

impl<'a> Index<'a> {
    fn new(resources: &'a [Resource]) -> Self {
        let mut by_key = HashMap::new();
        let mut custom_steps = HashSet::new();
        for r in resources {
            by_key.entry((r.kind, r.project.as_str(), r.name.as_str())).or_insert(r);
            if r.kind == Kind::CustomPromotionStep {
                custom_steps.insert(r.name.as_str());
            }
        }
        let mut verified_by: HashMap<_, Vec<&Resource>> = HashMap::new();
        for stage in resources.iter().filter(|r| r.kind == Kind::Stage) {
            for (kind, name) in verification_templates(stage) {
                let project = if kind.cluster_scoped() {
                    ""
                } else {
                    stage.project.as_str()
                };
                let stages = verified_by.entry((kind, project, name)).or_default();
                if !stages.iter().any(|s| std::ptr::eq(*s, stage)) {
                    stages.push(stage);
                }
            }
        }
        Index {
            by_key,
            custom_steps,
            verified_by,
        }
    }

    /// The Stages whose verification runs the template `r`.
    fn verifying(&self, r: &'a Resource) -> &[&'a Resource] {
        let project = if r.kind.cluster_scoped() {
            ""
        } else {
            r.project.as_str()
        };
        match self.verified_by.get(&(r.kind, project, r.name.as_str())) {
            Some(stages) => stages,
            None => &[],
        }
    }

    /// The arguments the templates of `stage`'s verification declare together: Kargo (and
    /// barge's runner) merge them into one analysis, so `{{args.x}}` in one may be declared by
    /// another.
    fn merged_args(&self, stage: &Resource) -> HashSet<&'a str> {
        verification_templates(stage)
            .into_iter()
            .filter_map(|(kind, name)| self.get(kind, &stage.project, name))
            .filter_map(|t| match &t.body {
                Some(Body::AnalysisTemplate(t)) => t.spec.as_ref(),
                Some(Body::ClusterAnalysisTemplate(t)) => t.spec.as_ref(),
                _ => None,
            })
            .flat_map(|spec| spec.args.iter().map(|a| a.name.as_str()))
            .collect()
    }

    fn get(&self, kind: Kind, project: &str, name: &str) -> Option<&'a Resource> {
        let project = if kind.cluster_scoped() { "" } else { project };
        self.by_key.get(&(kind, project, name)).copied()
    }

    fn names(&self, kind: Kind, project: &str) -> Vec<&'a str> {
        let mut v: Vec<&str> = self
            .by_key
            .keys()
            .filter(|(k, p, _)| *k == kind && (kind.cluster_scoped() || *p == project))
            .map(|(_, _, n)| *n)
            .collect();
        v.sort_unstable();
        v
    }
}

/// The context of checks on one resource.
struct Cx<'a, 'o> {
    r: &'a Resource,
    index: &'a Index<'a>,
    out: &'o mut Vec<Diagnostic>,
}

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}").expect("valid regex"));
static RFC1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("valid regex")
});
static KARGO_DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]+(\.[0-9]+)?(s|m|h))+$").expect("valid regex"));
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
        .expect("valid regex")
});
static ARGO_ARG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}").expect("valid regex"));

const IMAGE_STRATEGIES: &[&str] = &["SemVer", "Lexical", "Digest", "NewestBuild"];
const GIT_STRATEGIES: &[&str] = &["NewestFromBranch", "SemVer", "Lexical", "NewestTag"];

impl<'a> Cx<'a, '_> {
    fn push(&mut self, d: Diagnostic) {
        self.out.push(d);
    }

    fn at(&self, path: &[PathSeg]) -> &'a Node {
        self.r.node.nearest(path)
    }

    /// The key node of the last path segment, to underline a field name.
    fn key_at(&self, path: &[PathSeg]) -> Option<&'a Node> {
        let (last, parent) = path.split_last()?;
        match last {
            PathSeg::Key(k) => self.r.node.at(parent)?.key_node(k),
            PathSeg::Index(_) => None,
        }
    }

    /// Fields of a step's config that the step does not accept (Kargo's step schemas reject
    /// them too, but only when the promotion runs).
    fn step_config(&mut self, uses: &str, path: &[PathSeg]) {
        let Some(shape) = crate::step_config::shape_of(uses) else {
            return;
        };
        let Some(node) = self.r.node.at(path) else { return };
        // Options barge reads but cannot honour: the promotion would fail (or differ) there.
        for option in crate::step_config::unsupported_options(uses) {
            let Some(value) = node.get(option.field) else { continue };
            if !crate::step_config::asks_nothing(Some(&value.to_json())) {
                let d = self
                    .r
                    .diag(
                        Code::UnsupportedStepOption,
                        node.key_node(option.field).unwrap_or(value),
                        format!("{uses}: barge cannot honour `{}`", option.field),
                    )
                    .hint(option.why);
                self.push(d);
            }
        }
        for unknown in crate::schema::unknown_fields(node, shape) {
            let key = unknown.key.key_text();
            let names: Vec<&str> = unknown.known.fields.iter().map(|f| f.name).collect();
            let at = if unknown.path.is_empty() {
                String::new()
            } else {
                format!(" in {}", crate::yaml::path_string(&unknown.path))
            };
            let d = self.r.diag(
                Code::UnknownStepField,
                unknown.key,
                format!("{uses} has no config field {key:?}{at}; the promotion would fail at this step"),
            );
            let d = match crate::diag::did_you_mean(&key, names.iter().copied()) {
                Some(m) => d.hint(format!("did you mean `{m}`?")),
                None => d.hint(format!("{uses} accepts: {}", names.join(", "))),
            };
            self.push(d);
        }
    }

    fn diag(&self, code: Code, path: &[PathSeg], message: impl Into<String>) -> Diagnostic {
        self.r.diag(code, self.at(path), message)
    }

    fn names(&mut self) {
        let r = self.r;
        if r.legacy {
            return;
        }
        if r.name.is_empty() {
            let d = self
                .diag(
                    Code::MissingField,
                    &path!["metadata"],
                    format!("{} has no metadata.name", r.kind),
                )
                .hint("every resource needs a name: add `metadata: {name: ...}`");
            self.push(d);
        } else if !RFC1123_SUBDOMAIN.is_match(&r.name) || r.name.len() > 253 {
            let d = self
                .diag(
                    Code::InvalidName,
                    &path!["metadata", "name"],
                    format!("{:?} is not a valid resource name", r.name),
                )
                .hint("use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
            self.push(d);
        }
    }

    fn enum_value(&mut self, code: Code, path: &[PathSeg], value: Option<&str>, allowed: &[&str], what: &str) {
        let Some(v) = value else { return };
        if v.is_empty() || allowed.contains(&v) {
            return;
        }
        let mut hint = format!("use one of: {}", allowed.join(", "));
        if v == "NewestCommit" {
            hint =
                "NewestCommit is not a Kargo strategy; the newest commit of a branch is `NewestFromBranch`".to_string();
        } else if let Some(m) = did_you_mean(v, allowed.iter().copied()) {
            hint = format!("did you mean {m}? ({hint})");
        }
        let d = self.diag(code, path, format!("{v:?} is not a valid {what}")).hint(hint);
        self.push(d);
    }

    fn duration(&mut self, path: &[PathSeg], value: Option<&str>, kargo_pattern: bool) {
        let Some(v) = value else { return };
        if v.contains("{{") || v.contains("${") {
            return;
        }
        let ok = parse_go_duration(v).is_ok() && (!kargo_pattern || KARGO_DURATION.is_match(v));
        if !ok {
            let hint = if kargo_pattern {
                "write a Go duration with units s, m or h: 90s, 10m, 1h30m"
            } else {
                "write a Go duration: 300ms, 90s, 10m, 1h30m"
            };
            let d = self
                .diag(Code::InvalidDuration, path, format!("{v:?} is not a valid duration"))
                .hint(hint);
            self.push(d);
        }
    }

    fn regex(&mut self, path: &[PathSeg], pattern: &str) {
        if let Err(e) = Regex::new(pattern) {
            let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
            let d = self
                .diag(
                    Code::InvalidRegex,
                    path,
                    format!("{pattern:?} is not a valid regular expression: {first}"),
                )
                .hint("barge, like Kargo, uses RE2 syntax (no lookahead or backreferences)");
            self.push(d);
        }
    }

    fn constraint(&mut self, path: &[PathSeg], value: Option<&str>) {
        let Some(v) = value else { return };
        // Empty means "no constraint" to Kargo, which never parses it.
        if v.trim().is_empty() || v.contains("${") {
            return;
        }
        if let Err(e) = Constraint::parse(v) {
            let d = self
                .diag(
                    Code::InvalidSemverConstraint,
                    path,
                    format!("{v:?} is not a valid semver constraint ({e})"),
                )
                .hint("use Masterminds/semver syntax: ^1.2.0, ~1.2, >=1.0.0 <2.0.0, 1.x, >=1.0.0 || 2.x");
            self.push(d);
        }
    }

    fn raw_expression(&mut self, path: &[PathSeg], value: Option<&str>) {
        let Some(v) = value else { return };
        if let Err(e) = expr::parse(v) {
            let d = self
                .diag(Code::InvalidExpression, path, format!("expression does not parse: {e}"))
                .hint("this field is an expr-lang expression (https://expr-lang.org), without ${{ }}");
            self.push(d);
        }
    }

    fn discovery_limit(&mut self, path: &[PathSeg], value: Option<i64>) {
        if let Some(n) = value
            && !(1..=100).contains(&n)
        {
            let d = self
                .diag(Code::InvalidValue, path, format!("discoveryLimit {n} is out of range"))
                .hint("use a number from 1 to 100 (default 20)");
            self.push(d);
        }
    }

    fn deprecated(&mut self, path: &[PathSeg], message: &str, hint: &str) {
        let node = self.key_at(path).unwrap_or_else(|| self.at(path));
        let d = self.r.diag(Code::DeprecatedField, node, message).hint(hint);
        self.push(d);
    }

    // ---------------------------------------------------------------- ProjectConfig

    fn project_config(&mut self, spec: Option<&ProjectConfigSpec>) {
        let r = self.r;
        if !r.project.is_empty() && r.name != r.project && !r.name.is_empty() {
            let d = self
                .diag(
                    Code::InvalidValue,
                    &path!["metadata", "name"],
                    format!("ProjectConfig {:?} does not name its project {:?}", r.name, r.project),
                )
                .hint("a project has at most one ProjectConfig and it must have the project's name");
            self.push(d);
        }
        let Some(spec) = spec else { return };
        for (i, p) in spec.promotion_policies.iter().enumerate() {
            self.promotion_policy(p, &path!["spec", "promotionPolicies", i]);
        }
        self.webhook_receivers(&spec.webhook_receivers);
        for (i, w) in spec.promotion_windows.iter().enumerate() {
            if let Err(e) = crate::window::parse(std::slice::from_ref(w)) {
                let d = self
                    .diag(Code::InvalidPromotionWindow, &path!["spec", "promotionWindows", i], e)
                    .hint("write `{name, kind: Allow|Deny, schedule: <cron>, duration: <Go duration>, stageSelector}`; see docs/reference/serve.md");
                self.push(d);
            }
        }
    }

    /// Each receiver: a unique name, exactly one provider key, a secretRef naming a secret
    /// (whether barge's secret store has it is checked where the store is read).
    fn webhook_receivers(&mut self, receivers: &[crate::model::kargo::WebhookReceiver]) {
        let keys = crate::webhook::Provider::ALL.map(|p| p.key()).join(", ");
        for (i, w) in receivers.iter().enumerate() {
            let base = path!["spec", "webhookReceivers", i];
            if w.name.is_empty() {
                let d = self
                    .diag(Code::MissingField, &base, "webhook receiver has no name")
                    .hint("name it: the name is part of its URL");
                self.push(d);
            } else if receivers[..i].iter().any(|o| o.name == w.name) {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &path!["spec", "webhookReceivers", i, "name"],
                        format!("a second webhook receiver named {:?}", w.name),
                    )
                    .hint("receiver names are unique in a project");
                self.push(d);
            }
            match &crate::webhook::providers(w)[..] {
                [] => {
                    let d = self
                        .diag(
                            Code::MissingField,
                            &base,
                            format!("webhook receiver {:?} has no provider", w.name),
                        )
                        .hint(format!(
                            "set one of {keys}, e.g. `github: {{secretRef: {{name: hook}}}}`"
                        ));
                    self.push(d);
                }
                [(provider, secret_ref)] => {
                    if let Some(g) = &w.generic {
                        self.generic_actions(&path!["spec", "webhookReceivers", i, "generic"], &w.name, g);
                    }
                    if secret_ref.is_none_or(|s| s.name.is_empty()) {
                        let d = self
                            .diag(
                                Code::MissingField,
                                &path!["spec", "webhookReceivers", i, provider.key()],
                                format!("webhook receiver {:?} has no secretRef", w.name),
                            )
                            .hint(format!(
                                "write `{}: {{secretRef: {{name: <secret>}}}}`, the secret in barge's configuration `secrets` with key `{}`",
                                provider.key(),
                                provider.secret_key()
                            ));
                        self.push(d);
                    }
                }
                [_, (second, _), ..] => {
                    let d = self
                        .diag(
                            Code::InvalidValue,
                            &path!["spec", "webhookReceivers", i, second.key()],
                            format!("webhook receiver {:?} sets more than one provider", w.name),
                        )
                        .hint("a receiver has exactly one provider key; make one receiver per provider");
                    self.push(d);
                }
            }
        }
    }

    /// A generic receiver's actions, against Kargo's `GenericWebhookAction` type
    /// (api/v1alpha1/project_config_types.go): at least one action, each a `Refresh` with a
    /// parsing `whenExpression` and at least one criterion; each criterion of kind `Warehouse`
    /// selecting by at least one of name, labels and index. What Kargo has and barge cannot do
    /// (refreshing Promotions, the `receiverPaths` index) is an error naming it.
    fn generic_actions(&mut self, base: &[PathSeg], receiver: &str, g: &crate::model::kargo::GenericReceiver) {
        if g.actions.is_empty() {
            let d = self
                .diag(Code::MissingField, base, format!("generic webhook receiver {receiver:?} has no actions"))
                .hint("add `actions: [{action: Refresh, targetSelectionCriteria: [{kind: Warehouse, name: <warehouse>}]}]`");
            self.push(d);
        }
        for (a, action) in g.actions.iter().enumerate() {
            let action_at = join(base, &path!["actions", a]);
            let sub = |tail: &[PathSeg]| join(&action_at, tail);
            if action.action != "Refresh" {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &sub(&path!["action"]),
                        format!("generic webhook action {:?} is not one Kargo has", action.action),
                    )
                    .hint("the one action is `Refresh`");
                self.push(d);
            }
            if let Some(when) = action.when_expression.as_deref().filter(|w| !w.trim().is_empty()) {
                self.raw_expression(&sub(&path!["whenExpression"]), Some(when));
            }
            if action.target_selection_criteria.is_empty() {
                let d = self
                    .diag(
                        Code::MissingField,
                        &action_at,
                        "generic webhook action has no targetSelectionCriteria",
                    )
                    .hint("add `targetSelectionCriteria: [{kind: Warehouse, name: <warehouse>}]`");
                self.push(d);
            }
            for (t, criteria) in action.target_selection_criteria.iter().enumerate() {
                let criteria_at = sub(&path!["targetSelectionCriteria", t]);
                let crit = |tail: &[PathSeg]| join(&criteria_at, tail);
                match criteria.kind.as_str() {
                    "Warehouse" => {}
                    "Promotion" => {
                        let d = self
                            .diag(
                                Code::InvalidValue,
                                &crit(&path!["kind"]),
                                "barge cannot refresh Promotions from a generic webhook (Kargo can)",
                            )
                            .hint("select Warehouses; a git-wait-for-pr step is woken by a github receiver's closed pull_request");
                        self.push(d);
                    }
                    other => {
                        let d = self
                            .diag(
                                Code::InvalidValue,
                                &crit(&path!["kind"]),
                                format!("target kind {other:?} is not one Kargo has"),
                            )
                            .hint("use `kind: Warehouse`");
                        self.push(d);
                    }
                }
                let labels = criteria.label_selector.as_ref();
                let indices = criteria
                    .index_selector
                    .as_ref()
                    .map_or(&[][..], |s| &s.match_indices[..]);
                if criteria.name.as_deref().is_none_or(str::is_empty)
                    && labels.is_none_or(|l| l.match_labels.is_empty() && l.match_expressions.is_empty())
                    && indices.is_empty()
                {
                    let d = self
                        .diag(
                            Code::MissingField,
                            &crit(&[]),
                            "target selection criteria select by neither name, labelSelector nor indexSelector",
                        )
                        .hint("set at least one of them; several are ANDed");
                    self.push(d);
                }
                for (e, req) in labels.iter().flat_map(|l| l.match_expressions.iter()).enumerate() {
                    if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&req.operator.as_str()) {
                        let d = self
                            .diag(
                                Code::InvalidValue,
                                &crit(&path!["labelSelector", "matchExpressions", e, "operator"]),
                                format!("label selector operator {:?} does not exist", req.operator),
                            )
                            .hint("use In, NotIn, Exists or DoesNotExist");
                        self.push(d);
                    }
                }
                for (m, req) in indices.iter().enumerate() {
                    let index_at = |k: &str| crit(&path!["indexSelector", "matchIndices", m, k]);
                    match req.key.as_str() {
                        "subscribedURLs" => {}
                        "receiverPaths" => {
                            let d = self
                                .diag(Code::InvalidValue, &index_at("key"), "barge cannot select Warehouses by the receiverPaths index (Kargo indexes ProjectConfigs by it, not Warehouses)")
                                .hint("use `key: subscribedURLs`");
                            self.push(d);
                        }
                        other => {
                            let d = self
                                .diag(
                                    Code::InvalidValue,
                                    &index_at("key"),
                                    format!("index {other:?} is not one Kargo has"),
                                )
                                .hint(
                                    "use `key: subscribedURLs` (a Warehouse's subscribed repository URLs, normalised)",
                                );
                            self.push(d);
                        }
                    }
                    if !["Equals", "NotEquals"].contains(&req.operator.as_str()) {
                        let d = self
                            .diag(
                                Code::InvalidValue,
                                &index_at("operator"),
                                format!("index selector operator {:?} does not exist", req.operator),
                            )
                            .hint("use Equals or NotEquals (Kargo's constants)");
                        self.push(d);
                    }
                }
            }
        }
    }

    fn promotion_policy(&mut self, p: &PromotionPolicy, base: &[PathSeg]) {
        let sub = |k: &str| -> Vec<PathSeg> { base.iter().cloned().chain([PathSeg::from(k)]).collect() };
        match (&p.stage_selector, &p.stage) {
            (Some(_), Some(_)) => {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &sub("stage"),
                        "set either stageSelector or the deprecated stage, not both",
                    )
                    .hint("keep `stageSelector: {name: ...}`");
                self.push(d);
            }
            (None, None) => {
                let d = self
                    .diag(Code::MissingField, base, "promotion policy selects no stage")
                    .hint("add `stageSelector: {name: <stage>}` (a name, `regex:`, `glob:` or labels)");
                self.push(d);
            }
            (None, Some(stage)) => {
                self.deprecated(
                    &sub("stage"),
                    "`stage` in a promotion policy is deprecated",
                    "use `stageSelector: {name: ...}`",
                );
                self.policy_stage_exists(stage, &sub("stage"));
            }
            (Some(sel), None) => {
                let name_path: Vec<PathSeg> = sub("stageSelector")
                    .into_iter()
                    .chain([PathSeg::from("name")])
                    .collect();
                if let Some(name) = &sel.name {
                    if let Some(re) = name.strip_prefix("regex:").or_else(|| name.strip_prefix("regexp:")) {
                        self.regex(&name_path, re);
                    } else if let Some(glob) = name.strip_prefix("glob:") {
                        if crate::glob::Glob::new(glob).is_err() {
                            let d = self
                                .diag(Code::InvalidValue, &name_path, format!("{glob:?} is not a valid glob"))
                                .hint("use *, ? and [abc] classes");
                            self.push(d);
                        }
                    } else {
                        self.policy_stage_exists(name, &name_path);
                    }
                }
            }
        }
        if let Some(rb) = &p.auto_rollback {
            for (field, allowed) in [
                ("onPromotion", &["Failed", "Errored"][..]),
                ("onVerification", &["Failed", "Error"][..]),
            ] {
                let values = if field == "onPromotion" {
                    &rb.on_promotion
                } else {
                    &rb.on_verification
                };
                for (i, v) in values.iter().enumerate() {
                    let path: Vec<PathSeg> = sub("autoRollback")
                        .into_iter()
                        .chain([PathSeg::from(field), PathSeg::from(i)])
                        .collect();
                    self.enum_value(
                        Code::InvalidValue,
                        &path,
                        Some(v),
                        allowed,
                        &format!("autoRollback.{field} phase"),
                    );
                }
            }
        }
    }

    fn policy_stage_exists(&mut self, stage: &str, path: &[PathSeg]) {
        let project = if self.r.kind == Kind::Project {
            self.r.name.as_str()
        } else {
            self.r.project.as_str()
        };
        let stages = self.index.names(Kind::Stage, project);
        if stages.is_empty() || stages.contains(&stage) {
            return;
        }
        let mut d = self
            .diag(
                Code::UnresolvedStage,
                path,
                format!("promotion policy names Stage {stage:?}, which is not in project {project:?}"),
            )
            .severity(Severity::Warning);
        d = match did_you_mean(stage, stages.iter().copied()) {
            Some(m) => d.hint(format!("did you mean {m:?}?")),
            None => d.hint(format!("stages in this project: {}", stages.join(", "))),
        };
        self.push(d);
    }

    // ---------------------------------------------------------------- Warehouse

    fn warehouse(&mut self, spec: Option<&WarehouseSpec>) {
        let Some(spec) = spec else {
            let d = self
                .diag(Code::MissingField, &[], "Warehouse has no spec")
                .hint("add `spec: {subscriptions: [...]}`");
            self.push(d);
            return;
        };
        self.duration(&path!["spec", "interval"], spec.interval.as_deref(), true);
        if let Some(cron) = spec.schedule.as_deref()
            && let Err(e) = crate::schedule::parse_cron(cron)
        {
            let d = self
                .diag(
                    Code::InvalidValue,
                    &path!["spec", "schedule"],
                    format!("{cron:?} is not a cron expression: {e}"),
                )
                .hint("write five fields (minute hour day-of-month month day-of-week), e.g. \"*/10 * * * *\"");
            self.push(d);
        }
        self.enum_value(
            Code::InvalidValue,
            &path!["spec", "freightCreationPolicy"],
            spec.freight_creation_policy.as_deref(),
            &["Automatic", "Manual"],
            "freightCreationPolicy",
        );
        if let Some(c) = &spec.freight_creation_criteria {
            self.raw_expression(
                &path!["spec", "freightCreationCriteria", "expression"],
                c.expression.as_deref(),
            );
        }
        if spec.subscriptions.is_empty() {
            let d = self
                .diag(
                    Code::MissingField,
                    &path!["spec", "subscriptions"],
                    "Warehouse has no subscriptions",
                )
                .hint(
                    "add at least one `- image: {repoURL: ...}`, `- git: {repoURL: ...}` or `- chart: {repoURL: ...}`",
                );
            self.push(d);
        }
        let mut names = HashSet::new();
        for (i, sub) in spec.subscriptions.iter().enumerate() {
            let base = path!["spec", "subscriptions", i];
            let count = [sub.image.is_some(), sub.git.is_some(), sub.chart.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if count == 0 {
                let d = self
                    .diag(
                        Code::MissingField,
                        &base,
                        "subscription has none of image, git or chart",
                    )
                    .hint("each subscription is exactly one of `image:`, `git:` or `chart:`");
                self.push(d);
            } else if count > 1 {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &base,
                        "subscription sets more than one of image, git and chart",
                    )
                    .hint("split it into one list entry per artifact");
                self.push(d);
            }
            if let Some(name) = &sub.name
                && !names.insert(name.clone())
            {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &join(&base.clone(), &path!["name"]),
                        format!("subscription name {name:?} is used twice"),
                    )
                    .hint("subscription names must be unique in a Warehouse");
                self.push(d);
            }
            if let Some(img) = &sub.image {
                self.image_subscription(img, &join(&base.clone(), &path!["image"]));
            }
            if let Some(git) = &sub.git {
                self.git_subscription(git, &join(&base.clone(), &path!["git"]));
            }
            if let Some(chart) = &sub.chart {
                self.chart_subscription(chart, &join(&base.clone(), &path!["chart"]));
            }
        }
    }

    fn image_subscription(&mut self, s: &ImageSubscription, base: &[PathSeg]) {
        let p = |k: &str| -> Vec<PathSeg> { [base, &path![k]].concat() };
        if s.repo_url.is_empty() {
            let d = self
                .diag(Code::MissingField, base, "image subscription has no repoURL")
                .hint("add `repoURL: registry.example.com/org/app` (no tag)");
            self.push(d);
        } else if has_tag_or_digest(&s.repo_url) {
            let d = self
                .diag(
                    Code::InvalidValue,
                    &p("repoURL"),
                    format!("repoURL {:?} includes a tag or digest", s.repo_url),
                )
                .hint("name the repository only; select tags with `constraint` / `allowTagsRegexes`");
            self.push(d);
        }
        self.enum_value(
            Code::InvalidStrategy,
            &p("imageSelectionStrategy"),
            s.image_selection_strategy.as_deref(),
            IMAGE_STRATEGIES,
            "imageSelectionStrategy",
        );
        let strategy = s
            .image_selection_strategy
            .as_deref()
            .filter(|x| !x.is_empty())
            .unwrap_or("SemVer");
        if let Some(sc) = &s.semver_constraint {
            self.deprecated(
                &p("semverConstraint"),
                "`semverConstraint` on an image subscription was removed in Kargo v1.9",
                "rename it to `constraint`; barge reads both",
            );
            if let Some(c) = &s.constraint
                && c != sc
            {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &p("constraint"),
                        "both `constraint` and `semverConstraint` are set, to different values",
                    )
                    .hint("keep only `constraint`");
                self.push(d);
            }
        }
        let constraint = s.constraint.as_deref().or(s.semver_constraint.as_deref());
        let cpath = if s.constraint.is_some() {
            p("constraint")
        } else {
            p("semverConstraint")
        };
        match strategy {
            "SemVer" => self.constraint(&cpath, constraint),
            "Digest" if constraint.is_none_or(str::is_empty) => {
                let d = self
                    .diag(
                        Code::MissingField,
                        base,
                        "the Digest strategy needs `constraint`: the mutable tag to follow",
                    )
                    .hint("add `constraint: latest` (or the tag whose digest you follow)");
                self.push(d);
            }
            _ => {}
        }
        self.tag_filters(
            base,
            s.allow_tags.as_deref(),
            &s.allow_tags_regexes,
            &s.ignore_tags,
            &s.ignore_tags_regexes,
        );
        if let Some(platform) = &s.platform {
            let parts: Vec<&str> = platform.split('/').collect();
            if !(2..=3).contains(&parts.len()) || parts.iter().any(|x| x.is_empty()) {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &p("platform"),
                        format!("{platform:?} is not a platform"),
                    )
                    .hint("write os/arch or os/arch/variant, e.g. linux/amd64, linux/arm64/v8");
                self.push(d);
            }
        }
        self.discovery_limit(&p("discoveryLimit"), s.discovery_limit);
    }

    /// The tag filters image and git subscriptions share: the deprecated `allowTags` /
    /// `ignoreTags` (warned about) and the regex lists (compiled).
    fn tag_filters(
        &mut self,
        base: &[PathSeg],
        allow_tags: Option<&str>,
        allow_tags_regexes: &[String],
        ignore_tags: &[String],
        ignore_tags_regexes: &[String],
    ) {
        let p = |k: &str| -> Vec<PathSeg> { [base, &path![k]].concat() };
        if let Some(t) = allow_tags {
            self.deprecated(
                &p("allowTags"),
                "`allowTags` is deprecated (Kargo ≥ v1.11 fails discovery with it)",
                "use `allowTagsRegexes: [...]`; barge still reads it",
            );
            self.regex(&p("allowTags"), t);
        }
        if !ignore_tags.is_empty() {
            self.deprecated(
                &p("ignoreTags"),
                "`ignoreTags` is deprecated (Kargo ≥ v1.11 fails discovery with it)",
                "use `ignoreTagsRegexes: [...]`; barge still reads it",
            );
        }
        for (field, list) in [
            ("allowTagsRegexes", allow_tags_regexes),
            ("ignoreTagsRegexes", ignore_tags_regexes),
        ] {
            for (i, re) in list.iter().enumerate() {
                self.regex(&join(&p(field), &path![i]), re);
            }
        }
    }

    fn git_subscription(&mut self, s: &GitSubscription, base: &[PathSeg]) {
        let p = |k: &str| -> Vec<PathSeg> { [base, &path![k]].concat() };
        if s.repo_url.is_empty() {
            let d = self
                .diag(Code::MissingField, base, "git subscription has no repoURL")
                .hint("add `repoURL: https://git.example.com/org/repo.git`");
            self.push(d);
        }
        self.enum_value(
            Code::InvalidStrategy,
            &p("commitSelectionStrategy"),
            s.commit_selection_strategy.as_deref(),
            GIT_STRATEGIES,
            "commitSelectionStrategy",
        );
        if s.commit_selection_strategy.as_deref() == Some("SemVer") {
            self.constraint(&p("semverConstraint"), s.semver_constraint.as_deref());
        }
        self.tag_filters(
            base,
            s.allow_tags.as_deref(),
            &s.allow_tags_regexes,
            &s.ignore_tags,
            &s.ignore_tags_regexes,
        );
        self.raw_expression(&p("expressionFilter"), s.expression_filter.as_deref());
        for (field, list) in [("includePaths", &s.include_paths), ("excludePaths", &s.exclude_paths)] {
            for (i, sel) in list.iter().enumerate() {
                let path = join(&p(field), &path![i]);
                if let Some(re) = sel.strip_prefix("regex:").or_else(|| sel.strip_prefix("regexp:")) {
                    self.regex(&path, re);
                } else if let Some(g) = sel.strip_prefix("glob:")
                    && crate::glob::Glob::new(g).is_err()
                {
                    let d = self
                        .diag(Code::InvalidValue, &path, format!("{g:?} is not a valid glob"))
                        .hint("use *, **, ? and [abc] classes");
                    self.push(d);
                }
            }
        }
        if let Some(since) = &s.since
            && !is_rfc3339(since)
        {
            let d = self
                .diag(
                    Code::InvalidValue,
                    &p("since"),
                    format!("{since:?} is not an RFC 3339 time"),
                )
                .hint("write e.g. 2025-01-31T00:00:00Z");
            self.push(d);
        }
        self.discovery_limit(&p("discoveryLimit"), s.discovery_limit);
    }

    fn chart_subscription(&mut self, s: &ChartSubscription, base: &[PathSeg]) {
        let p = |k: &str| -> Vec<PathSeg> { [base, &path![k]].concat() };
        if s.repo_url.is_empty() {
            let d = self.diag(Code::MissingField, base, "chart subscription has no repoURL").hint("add `repoURL: https://charts.example.com` (with `name`) or `oci://registry.example.com/charts/app`");
            self.push(d);
        } else if s.repo_url.starts_with("oci://") {
            if s.name.is_some() {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &p("name"),
                        "an oci:// chart subscription must not set `name`",
                    )
                    .hint("the chart name is the last path segment of the oci:// repoURL");
                self.push(d);
            }
        } else if s.name.as_deref().is_none_or(str::is_empty) {
            let d = self
                .diag(
                    Code::MissingField,
                    base,
                    "a chart from an HTTP(S) repository needs `name`",
                )
                .hint("add `name: <chart>`");
            self.push(d);
        }
        self.constraint(&p("semverConstraint"), s.semver_constraint.as_deref());
        self.discovery_limit(&p("discoveryLimit"), s.discovery_limit);
    }

    // ---------------------------------------------------------------- Stage

    fn stage(&mut self, spec: Option<&StageSpec>) {
        let r = self.r;
        let Some(spec) = spec else {
            let d = self
                .diag(Code::MissingField, &[], "Stage has no spec")
                .hint("add `spec: {requestedFreight: [...], promotionTemplate: {...}}`");
            self.push(d);
            return;
        };
        if let Some(policy) = &spec.approval_policy {
            self.approval_policy(policy, &path!["spec", "approvalPolicy"]);
        }
        if spec.requested_freight.is_empty() {
            let d = self
                .diag(Code::MissingField, &path!["spec"], "Stage requests no freight")
                .hint(
                    "add `requestedFreight: [{origin: {kind: Warehouse, name: <warehouse>}, sources: {direct: true}}]`",
                );
            self.push(d);
        }
        for (i, req) in spec.requested_freight.iter().enumerate() {
            let base = path!["spec", "requestedFreight", i];
            let p = |k: &[&str]| -> Vec<PathSeg> {
                base.iter()
                    .cloned()
                    .chain(k.iter().map(|x| PathSeg::from(*x)))
                    .collect()
            };
            if !req.origin.kind.is_empty() && req.origin.kind != "Warehouse" {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &p(&["origin", "kind"]),
                        format!("freight origin kind {:?} is not supported", req.origin.kind),
                    )
                    .hint("the only origin kind is Warehouse");
                self.push(d);
            }
            if req.origin.name.is_empty() {
                let d = self
                    .diag(
                        Code::MissingField,
                        &p(&["origin"]),
                        "requested freight has no origin warehouse name",
                    )
                    .hint("add `origin: {kind: Warehouse, name: <warehouse>}`");
                self.push(d);
            } else if self.index.get(Kind::Warehouse, &r.project, &req.origin.name).is_none() {
                let warehouses = self.index.names(Kind::Warehouse, &r.project);
                let mut d = self.diag(
                    Code::UnresolvedWarehouse,
                    &p(&["origin", "name"]),
                    format!(
                        "Warehouse {:?} is not defined in project {:?}",
                        req.origin.name, r.project
                    ),
                );
                d = match did_you_mean(&req.origin.name, warehouses.iter().copied()) {
                    Some(m) => d.hint(format!("did you mean {m:?}?")),
                    None if warehouses.is_empty() => {
                        d.hint("load the Warehouse's file too (pass its directory to barge)")
                    }
                    None => d.hint(format!("warehouses in this project: {}", warehouses.join(", "))),
                };
                self.push(d);
            }
            let src = &req.sources;
            if src.direct != Some(true) && src.stages.is_empty() {
                let d = self
                    .diag(Code::NoFreightSources, &p(&["sources"]), format!("freight from {:?} has no source: neither `direct: true` nor upstream `stages`", req.origin.name))
                    .hint("add `sources: {direct: true}` to take freight from the warehouse, or `sources: {stages: [<upstream>]}`");
                self.push(d);
            }
            for (j, up) in src.stages.iter().enumerate() {
                let path = p(&["sources", "stages"])
                    .into_iter()
                    .chain([PathSeg::Index(j)])
                    .collect::<Vec<_>>();
                match self.index.get(Kind::Stage, &r.project, up) {
                    None => {
                        let stages = self.index.names(Kind::Stage, &r.project);
                        let mut d = self.diag(
                            Code::UnresolvedStage,
                            &path,
                            format!("upstream Stage {up:?} is not defined in project {:?}", r.project),
                        );
                        d = match did_you_mean(up, stages.iter().copied()) {
                            Some(m) => d.hint(format!("did you mean {m:?}?")),
                            None => d.hint(format!("stages in this project: {}", stages.join(", "))),
                        };
                        self.push(d);
                    }
                    Some(upstream) => {
                        if let Some(Body::Stage(us)) = &upstream.body
                            && let Some(uspec) = &us.spec
                            && !req.origin.name.is_empty()
                            && !uspec.requested_freight.iter().any(|f| f.origin.name == req.origin.name)
                        {
                            let d = self
                                .diag(Code::UnresolvedStage, &path, format!("upstream Stage {up:?} does not request freight from Warehouse {:?}, so none can arrive from it", req.origin.name))
                                .hint(format!("add the Warehouse to {up:?}'s requestedFreight, or take this freight from another source"));
                            self.push(d);
                        }
                    }
                }
            }
            self.duration(
                &p(&["sources", "requiredSoakTime"]),
                src.required_soak_time.as_deref(),
                true,
            );
            self.enum_value(
                Code::InvalidValue,
                &p(&["sources", "availabilityStrategy"]),
                src.availability_strategy.as_deref(),
                &["OneOf", "All"],
                "availabilityStrategy",
            );
            if let Some(opts) = &src.auto_promotion_options {
                let pp = p(&["sources", "autoPromotionOptions", "selectionPolicy"]);
                self.enum_value(
                    Code::InvalidValue,
                    &pp,
                    opts.selection_policy.as_deref(),
                    &["NewestFreight", "MatchUpstream"],
                    "selectionPolicy",
                );
                if opts.selection_policy.as_deref() == Some("MatchUpstream") && src.stages.len() != 1 {
                    let d = self
                        .diag(
                            Code::InvalidValue,
                            &pp,
                            "MatchUpstream needs exactly one upstream stage",
                        )
                        .hint("list one stage in `sources.stages`, or use NewestFreight");
                    self.push(d);
                }
            }
        }
        if let Some(t) = &spec.promotion_template {
            let scope_vars: Vec<&Var> = spec.vars.iter().chain(t.spec.vars.iter()).collect();
            self.steps(
                &t.spec.steps,
                &path!["spec", "promotionTemplate", "spec", "steps"],
                false,
                &scope_vars,
            );
        }
        if let Some(v) = &spec.verification {
            for (i, t) in v.analysis_templates.iter().enumerate() {
                let path = path!["spec", "verification", "analysisTemplates", i];
                let kind = match template_kind(t.kind.as_deref()) {
                    Some(kind) => kind,
                    None => {
                        let other = t.kind.as_deref().unwrap_or_default();
                        let d = self
                            .diag(
                                Code::InvalidValue,
                                &join(&path.clone(), &path!["kind"]),
                                format!("{other:?} is not an analysis template kind"),
                            )
                            .hint("use AnalysisTemplate or ClusterAnalysisTemplate");
                        self.push(d);
                        continue;
                    }
                };
                if t.name.is_empty() {
                    let d = self
                        .diag(Code::MissingField, &path, "analysis template reference has no name")
                        .hint("add `name: <template>`");
                    self.push(d);
                } else if self.index.get(kind, &r.project, &t.name).is_none() {
                    let known = self.index.names(kind, &r.project);
                    let mut d = self.diag(
                        Code::UnresolvedAnalysisTemplate,
                        &join(&path, &path!["name"]),
                        format!(
                            "{kind} {:?} is not defined{}",
                            t.name,
                            if kind.cluster_scoped() {
                                String::new()
                            } else {
                                format!(" in project {:?}", r.project)
                            }
                        ),
                    );
                    d = match did_you_mean(&t.name, known.iter().copied()) {
                        Some(m) => d.hint(format!("did you mean {m:?}?")),
                        None => d.hint(format!("load the {kind}'s file too (pass its directory to barge)")),
                    };
                    self.push(d);
                }
            }
        }
    }

    // ---------------------------------------------------------------- steps

    fn task(&mut self, spec: Option<&crate::model::kargo::PromotionTaskSpec>) {
        let Some(spec) = spec else { return };
        if spec.steps.is_empty() {
            let d = self
                .diag(
                    Code::MissingField,
                    &path!["spec"],
                    format!("{} has no steps", self.r.kind),
                )
                .hint("add `steps: [{uses: ...}]`");
            self.push(d);
        }
        let vars: Vec<&Var> = spec.vars.iter().collect();
        self.steps(&spec.steps, &path!["spec", "steps"], true, &vars);
    }

    /// Checks a step list: envelopes, step names, aliases, tasks and output references.
    fn steps(&mut self, steps: &[Step], base: &[PathSeg], in_task: bool, scope_vars: &[&Var]) {
        let mut aliases: HashMap<String, usize> = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            let sp = [base, &path![i]].concat();
            let p = |k: &str| -> Vec<PathSeg> { [sp.as_slice(), &path![k]].concat() };
            let alias = step
                .alias
                .clone()
                .unwrap_or_else(|| format!("{}-{}", if step.task.is_some() { "task" } else { "step" }, i + 1));
            if let Some(first) = aliases.get(&alias) {
                let d = self
                    .diag(
                        Code::DuplicateStepAlias,
                        &p("as"),
                        format!("step alias {alias:?} is already used by step {}", first + 1),
                    )
                    .hint("give every step a unique `as`");
                self.push(d);
            }
            // Output references are checked against the steps before this one.
            self.output_references(step, &sp, &aliases, in_task);
            aliases.entry(alias).or_insert(i);
            match (&step.uses, &step.task) {
                (Some(_), Some(_)) => {
                    let d = self
                        .diag(Code::InvalidStep, &sp, "a step sets both `uses` and `task`")
                        .hint("a step either runs a built-in step (`uses`) or a PromotionTask (`task`)");
                    self.push(d);
                }
                (None, None) => {
                    let d = self
                        .diag(Code::InvalidStep, &sp, "a step has neither `uses` nor `task`")
                        .hint("add `uses: <step>` (e.g. git-clone) or `task: {name: <PromotionTask>}`");
                    self.push(d);
                }
                (Some(uses), None) => {
                    self.step_name(uses, &p("uses"));
                    self.step_config(uses, &p("config"));
                    match uses.as_str() {
                        "wait-for-approval" => self.wait_for_approval(&p("config")),
                        "record-audit-event" => self.record_audit_event(&p("config")),
                        "hcl-update" => self.hcl_update(&p("config")),
                        "git-open-pr" => self.git_open_pr(&p("config")),
                        _ => {}
                    }
                }
                (None, Some(task)) => {
                    if in_task {
                        let d = self
                            .diag(
                                Code::InvalidStep,
                                &p("task"),
                                "a PromotionTask cannot call another task",
                            )
                            .hint("inline the inner task's steps");
                        self.push(d);
                    }
                    for field in ["continueOnError", "retry"] {
                        if self.r.node.at(&p(field)).is_some() {
                            let d = self
                                .diag(
                                    Code::InvalidStep,
                                    &p(field),
                                    format!("`{field}` cannot be set on a task step"),
                                )
                                .hint("set it on the steps inside the PromotionTask");
                            self.push(d);
                        }
                    }
                    self.task_reference(task, step, &p("task"), scope_vars);
                }
            }
            if let Some(retry) = &step.retry {
                self.duration(&join(&p("retry"), &path!["timeout"]), retry.timeout.as_deref(), false);
                if let Some(n) = retry.error_threshold
                    && n < 0
                {
                    let d = self
                        .diag(
                            Code::InvalidValue,
                            &join(&p("retry"), &path!["errorThreshold"]),
                            "errorThreshold cannot be negative",
                        )
                        .hint("use 1 (no retries, the default) or more");
                    self.push(d);
                }
            }
        }
    }

    /// A Stage's `approvalPolicy` or a wait-for-approval step's config: what would make it
    /// unusable (a count below 1, a rule barge cannot match, more approvers than may approve).
    fn approval_policy(&mut self, policy: &crate::approval::ApprovalPolicy, base: &[PathSeg]) {
        for problem in policy.problems() {
            let path = match problem.rule {
                Some(i) => join(base, &path!["approvers", i, problem.field]),
                None => join(base, &path![problem.field]),
            };
            let d = self
                .diag(Code::InvalidValue, &path, problem.message)
                .hint("approvers: [{role: promoter|admin} or {subject: NAME}], minApprovals ≥ 1 (docs/reference/access.md, \"Approvals\")");
            self.push(d);
        }
    }

    /// wait-for-approval's policy and poll interval, when they are not expressions (those
    /// are checked when the step runs).
    fn wait_for_approval(&mut self, path: &[PathSeg]) {
        let Some(node) = self.r.node.at(path) else { return };
        let config = node.to_json();
        if config.to_string().contains("${") {
            return;
        }
        let policy = serde_json::json!({
            "minApprovals": config.get("minApprovals"),
            "approvers": config.get("approvers").cloned().unwrap_or_else(|| serde_json::json!([])),
        });
        match serde_json::from_value::<crate::approval::ApprovalPolicy>(policy) {
            Ok(policy) => self.approval_policy(&policy, path),
            Err(e) => {
                let d = self
                    .diag(Code::InvalidType, path, format!("wait-for-approval: {e}"))
                    .hint("minApprovals is an integer; approvers a list of {role: …} or {subject: …}");
                self.push(d);
            }
        }
        let poll = join(path, &path!["pollInterval"]);
        let interval = self.r.node.at(&poll).map(|n| n.to_json());
        self.duration(&poll, interval.as_ref().and_then(|v| v.as_str()), false);
    }

    /// record-audit-event needs a message; its type names an audit kind; its data is strings.
    fn record_audit_event(&mut self, path: &[PathSeg]) {
        let config = self.r.node.at(path).map(|n| n.to_json()).unwrap_or_default();
        if config.get("message").and_then(|m| m.as_str()).is_none_or(str::is_empty) {
            let d = self
                .diag(Code::MissingField, path, "record-audit-event has no `message`")
                .hint("add `message: <what happened>`; it is recorded verbatim in the audit log");
            self.push(d);
        }
        if let Some(kind) = config.get("type").and_then(|t| t.as_str())
            && !kind.contains("${")
            && !crate::approval::valid_event_type(kind)
        {
            let d = self
                .diag(
                    Code::InvalidValue,
                    &join(path, &path!["type"]),
                    format!("{kind:?} is not an audit event type"),
                )
                .hint("1 to 63 letters, digits, '-', '_' or '.', e.g. `approved` or `deployed`");
            self.push(d);
        }
        if let Some(data) = config.get("data").and_then(|d| d.as_object()) {
            for (key, value) in data {
                if !value.is_string() {
                    let d = self
                        .diag(
                            Code::InvalidType,
                            &join(path, &path!["data", key.as_str()]),
                            format!("record-audit-event data {key:?} is not a string"),
                        )
                        .hint("quote the value: data holds string keys and values");
                    self.push(d);
                }
            }
        }
    }

    /// git-open-pr's labels on Bitbucket Cloud, whose pull requests have none (the step would
    /// fail there), when the provider is written or the URL names bitbucket.
    fn git_open_pr(&mut self, path: &[PathSeg]) {
        let config = self.r.node.at(path).map(|n| n.to_json()).unwrap_or_default();
        let labels = config
            .get("labels")
            .and_then(|l| l.as_array())
            .is_some_and(|l| !l.is_empty());
        let bitbucket = match config.get("provider").and_then(|p| p.as_str()) {
            Some(provider) => provider.eq_ignore_ascii_case("bitbucket"),
            None => config
                .get("repoURL")
                .and_then(|r| r.as_str())
                .is_some_and(|r| r.contains("bitbucket")),
        };
        if labels && bitbucket {
            let d = self
                .diag(
                    Code::UnsupportedStepOption,
                    &join(path, &path!["labels"]),
                    "git-open-pr: Bitbucket Cloud pull requests have no labels",
                )
                .hint("remove `labels`; the promotion would fail at this step");
            self.push(d);
        }
    }

    /// hcl-update needs a path and at least one update, each with a key and a value HCL can
    /// hold as written (a string, number or boolean; Kargo's documented types).
    fn hcl_update(&mut self, path: &[PathSeg]) {
        let config = self.r.node.at(path).map(|n| n.to_json()).unwrap_or_default();
        if config.get("path").and_then(|m| m.as_str()).is_none_or(str::is_empty) {
            let d = self
                .diag(Code::MissingField, path, "hcl-update has no `path`")
                .hint("add `path: <the .tf or .tfvars file>` (relative to the promotion's work directory)");
            self.push(d);
        }
        let updates = config.get("updates").and_then(|u| u.as_array());
        if updates.is_none_or(|u| u.is_empty()) {
            let d = self
                .diag(Code::MissingField, path, "hcl-update has no `updates`")
                .hint("add `updates: [{key: image_uri, value: ...}]`; a key names an existing attribute");
            self.push(d);
        }
        for (i, update) in updates.into_iter().flatten().enumerate() {
            let at = join(path, &path!["updates", i]);
            if update.get("key").and_then(|k| k.as_str()).is_none_or(str::is_empty) {
                let d = self
                    .diag(Code::MissingField, &at, "hcl-update update has no `key`")
                    .hint("e.g. `image_uri`, or `resource.TYPE.NAME.attribute` inside a block");
                self.push(d);
            }
            match update.get("value") {
                Some(serde_json::Value::String(_) | serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {}
                None => {
                    let d = self
                        .diag(Code::MissingField, &at, "hcl-update update has no `value`")
                        .hint("add `value:` (a string, number or boolean)");
                    self.push(d);
                }
                Some(other) => {
                    let d = self
                        .diag(
                            Code::InvalidType,
                            &join(&at, &path!["value"]),
                            format!("hcl-update value {other} is not a string, number or boolean"),
                        )
                        .hint("hcl-update sets scalar values; quote the value to write it as a string");
                    self.push(d);
                }
            }
        }
    }

    fn step_name(&mut self, uses: &str, path: &[PathSeg]) {
        match steps::classify(uses) {
            StepKind::Builtin => {
                if let Some((_, why)) = steps::NOT_RUNNABLE.iter().find(|(n, _)| *n == uses) {
                    let d = self
                        .diag(
                            Code::UnsupportedStep,
                            path,
                            format!("barge cannot run {uses:?} (a Kargo step): {why}"),
                        )
                        .hint("a promotion reaching this step would fail; replace it before promoting");
                    self.push(d);
                }
            }
            StepKind::Enterprise => {
                let d = self
                    .diag(
                        Code::UnsupportedStep,
                        path,
                        format!("{uses:?} is a Kargo Enterprise step; barge does not ship it"),
                    )
                    .hint("remove the step or replace it (e.g. `http` for API calls)");
                self.push(d);
            }
            StepKind::Removed(why) => {
                let d = self
                    .diag(Code::UnsupportedStep, path, format!("{uses:?} is not a step any more"))
                    .hint(why.to_string());
                self.push(d);
            }
            StepKind::Unknown if self.index.custom_steps.contains(uses) => {
                let d = self
                    .diag(Code::UnsupportedStep, path, format!("{uses:?} is a custom step (CustomPromotionStep) that runs a container image; barge cannot run container steps"))
                    .hint("replace it with built-in steps (e.g. `http` to call a service that does the work)");
                self.push(d);
            }
            StepKind::Unknown => {
                let mut d = self.diag(Code::UnknownStep, path, format!("unknown step {uses:?}"));
                d = match did_you_mean(uses, steps::BUILTIN.iter().copied()) {
                    Some(m) => d.hint(format!("did you mean {m}? known steps: {}", steps::BUILTIN.join(", "))),
                    None => d.hint(format!("known steps: {}", steps::BUILTIN.join(", "))),
                };
                self.push(d);
            }
        }
    }

    fn task_reference(
        &mut self,
        task: &crate::model::kargo::TaskRef,
        step: &Step,
        path: &[PathSeg],
        scope_vars: &[&Var],
    ) {
        let kind = match task.kind.as_deref() {
            None | Some("") | Some("PromotionTask") => Kind::PromotionTask,
            Some("ClusterPromotionTask") => Kind::ClusterPromotionTask,
            Some(other) => {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &[path, &path!["kind"]].concat(),
                        format!("{other:?} is not a task kind"),
                    )
                    .hint("use PromotionTask or ClusterPromotionTask");
                self.push(d);
                return;
            }
        };
        let name_path = [path, &path!["name"]].concat();
        let Some(resolved) = self.index.get(kind, &self.r.project, &task.name) else {
            let known = self.index.names(kind, &self.r.project);
            let mut d = self.diag(
                Code::UnresolvedTask,
                &name_path,
                format!(
                    "{kind} {:?} is not defined{}",
                    task.name,
                    if kind.cluster_scoped() {
                        String::new()
                    } else {
                        format!(" in project {:?}", self.r.project)
                    }
                ),
            );
            d = match did_you_mean(&task.name, known.iter().copied()) {
                Some(m) => d.hint(format!("did you mean {m:?}?")),
                None if kind == Kind::PromotionTask
                    && self.index.get(Kind::ClusterPromotionTask, "", &task.name).is_some() =>
                {
                    d.hint("a ClusterPromotionTask has this name: add `kind: ClusterPromotionTask`")
                }
                None => d.hint(format!("load the {kind}'s file too (pass its directory to barge)")),
            };
            self.push(d);
            return;
        };
        let task_spec = match &resolved.body {
            Some(Body::PromotionTask(t)) => t.spec.as_ref(),
            Some(Body::ClusterPromotionTask(t)) => t.spec.as_ref(),
            _ => None,
        };
        let Some(task_spec) = task_spec else { return };
        let provided: HashSet<&str> = step
            .vars
            .iter()
            .map(|v| v.name.as_str())
            .chain(scope_vars.iter().map(|v| v.name.as_str()))
            .collect();
        let missing: Vec<&str> = task_spec
            .vars
            .iter()
            .filter(|v| v.value.is_none() && !provided.contains(v.name.as_str()))
            .map(|v| v.name.as_str())
            .collect();
        if !missing.is_empty() {
            let node = self.key_at(path).unwrap_or_else(|| self.at(path));
            let d = self
                .r
                .diag(
                    Code::MissingTaskVar,
                    node,
                    format!(
                        "{kind} {:?} requires var{} {} and this step does not set {}",
                        task.name,
                        if missing.len() > 1 { "s" } else { "" },
                        missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", "),
                        if missing.len() > 1 { "them" } else { "it" }
                    ),
                )
                .hint(format!(
                    "add `vars: [{}]` to the step",
                    missing
                        .iter()
                        .map(|m| format!("{{name: {m}, value: ...}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            self.push(d);
        }
    }

    fn output_references(&mut self, step: &Step, sp: &[PathSeg], earlier: &HashMap<String, usize>, in_task: bool) {
        let Some(node) = self.r.node.at(sp) else { return };
        let mut refs = Vec::new();
        let mut path = sp.to_vec();
        node.walk_strings(&mut path, &mut |p, n, s| {
            let bodies: Vec<&str> = match expr::find(s) {
                Ok(found) if !found.is_empty() => found.into_iter().map(|f| f.body).collect(),
                // `if:` may be written without delimiters.
                _ if p.last() == Some(&PathSeg::Key("if".into())) && p.len() == sp.len() + 1 => vec![s],
                _ => Vec::new(),
            };
            for body in bodies {
                for (alias, task_scope) in expr::output_references(body) {
                    refs.push((alias, task_scope, n));
                }
            }
        });
        let _ = step;
        for (alias, task_scope, n) in refs {
            // In a task, `outputs.x` may name steps of the calling template: unknowable here.
            let checkable = if in_task { task_scope } else { !task_scope };
            if !checkable || earlier.contains_key(&alias) {
                continue;
            }
            let mut names: Vec<&str> = earlier.keys().map(String::as_str).collect();
            names.sort_unstable();
            let scope = if task_scope { "task.outputs" } else { "outputs" };
            let mut d = self.r.diag(
                Code::UnresolvedStepOutput,
                n,
                format!("{scope} of step {alias:?} are read here, but no earlier step has that alias"),
            );
            d = match did_you_mean(&alias, names.iter().copied()) {
                Some(m) => d.hint(format!("did you mean {m:?}?")),
                None if names.is_empty() => {
                    d.hint("outputs come from steps that run before this one; give that step `as: <alias>`")
                }
                None => d.hint(format!("earlier steps: {}", names.join(", "))),
            };
            self.push(d);
        }
    }

    // ---------------------------------------------------------------- strings everywhere

    /// `${VAR}` left over from envsubst, and `${{ }}` expressions that do not parse.
    fn placeholders_and_expressions(&mut self) {
        let r = self.r;
        let mut found = Vec::new();
        let mut path = Vec::new();
        r.node.walk_strings(&mut path, &mut |p, n, s| {
            if p.first() == Some(&PathSeg::Key("status".into())) {
                return;
            }
            // Multi-line strings are scripts and documents, where `${VAR}` is shell syntax.
            if !s.contains('\n')
                && let Some(m) = PLACEHOLDER.find(s)
            {
                found.push(r.diag(Code::UnfilledPlaceholder, n, format!("unfilled placeholder {} in {:?}", m.as_str(), s)).hint(
                    "this file was meant to go through envsubst or a template first: substitute the value, or render the file before loading it",
                ));
            }
            match expr::find(s) {
                Err(unclosed) => found.push(
                    r.diag(Code::InvalidExpression, n, format!("expression is not closed: missing {:?}", unclosed.close))
                        .hint("close every `${{` with `}}` (and `${%` with `%}`)"),
                ),
                Ok(list) => {
                    for f in list {
                        if let Err(e) = expr::parse(f.body) {
                            found.push(
                                r.diag(Code::InvalidExpression, n, format!("expression `{}` does not parse: {e}", expr::excerpt(f.body)))
                                    .hint("expressions use expr-lang syntax (https://expr-lang.org); see docs/reference/expressions.md"),
                            );
                        }
                    }
                }
            }
        });
        self.out.extend(found);
    }

    // ---------------------------------------------------------------- analysis templates

    fn analysis_template(&mut self, spec: Option<&AnalysisTemplateSpec>) {
        let Some(spec) = spec else {
            let d = self
                .diag(Code::MissingField, &[], format!("{} has no spec", self.r.kind))
                .hint("add `spec: {metrics: [...]}`");
            self.push(d);
            return;
        };
        if spec.metrics.is_empty() {
            let d = self
                .diag(Code::MissingField, &path!["spec"], "analysis template has no metrics")
                .hint("add `metrics: [{name: ..., provider: {prometheus: ...}}]`");
            self.push(d);
        }
        let declared: HashSet<&str> = spec.args.iter().map(|a| a.name.as_str()).collect();
        // `{{args.x}}` is checked against the arguments of each Stage's verification that runs
        // this template (all its templates merged); a template no Stage runs is checked alone,
        // and an argument it lacks is only a warning (another template may declare it).
        let verifying: Vec<(&Resource, HashSet<&str>)> = self
            .index
            .verifying(self.r)
            .iter()
            .map(|stage| (*stage, self.index.merged_args(stage)))
            .collect();
        let mut names = HashSet::new();
        for (i, m) in spec.metrics.iter().enumerate() {
            let base = path!["spec", "metrics", i];
            let p = |k: &str| -> Vec<PathSeg> { [base.as_slice(), &path![k]].concat() };
            if m.name.is_empty() {
                let d = self
                    .diag(Code::MissingField, &base, "metric has no name")
                    .hint("add `name: <metric>`");
                self.push(d);
            } else if !names.insert(m.name.as_str()) {
                let d = self
                    .diag(
                        Code::InvalidValue,
                        &p("name"),
                        format!("metric name {:?} is used twice", m.name),
                    )
                    .hint("metric names must be unique in a template");
                self.push(d);
            }
            self.duration(&p("interval"), m.interval.as_deref(), false);
            self.duration(&p("initialDelay"), m.initial_delay.as_deref(), false);
            for (field, v) in [
                ("count", &m.count),
                ("failureLimit", &m.failure_limit),
                ("inconclusiveLimit", &m.inconclusive_limit),
                ("consecutiveErrorLimit", &m.consecutive_error_limit),
                ("consecutiveSuccessLimit", &m.consecutive_success_limit),
            ] {
                match v {
                    Some(IntOrString::Int(n)) if *n < 0 => {
                        let d = self
                            .diag(Code::InvalidValue, &p(field), format!("{field} cannot be negative"))
                            .hint("use 0 or more");
                        self.push(d);
                    }
                    Some(IntOrString::String(s)) if !s.contains("{{") && s.parse::<i64>().is_err() => {
                        let d = self
                            .diag(Code::InvalidValue, &p(field), format!("{field} {s:?} is not a number"))
                            .hint("use a number, or `{{args.name}}`");
                        self.push(d);
                    }
                    _ => {}
                }
            }
            if matches!(m.count, Some(IntOrString::Int(n)) if n > 1) && m.interval.is_none() {
                let d = self
                    .diag(
                        Code::MissingField,
                        &p("count"),
                        "a metric measured more than once needs `interval`",
                    )
                    .hint("add `interval: 1m` (the time between measurements)");
                self.push(d);
            }
            for field in ["successCondition", "failureCondition"] {
                let v = if field == "successCondition" {
                    &m.success_condition
                } else {
                    &m.failure_condition
                };
                if let Some(c) = v {
                    let substituted = ARGO_ARG.replace_all(c, "0");
                    if let Err(e) = expr::parse(&substituted) {
                        let d = self
                            .diag(
                                Code::InvalidExpression,
                                &p(field),
                                format!("{field} does not parse: {e}"),
                            )
                            .hint("conditions are expr-lang over `result` (e.g. `result[0] >= 0.95`)");
                        self.push(d);
                    }
                }
            }
            let providers = m.provider.names();
            match providers.as_slice() {
                [] => {
                    let d = self
                        .diag(Code::MissingField, &p("provider"), "metric has no provider")
                        .hint("add `provider: {prometheus: {address: ..., query: ...}}` (or web, job)");
                    self.push(d);
                }
                [_] => {}
                many => {
                    let d = self
                        .diag(
                            Code::InvalidValue,
                            &p("provider"),
                            format!("metric has several providers: {}", many.join(", ")),
                        )
                        .hint("a metric has exactly one provider");
                    self.push(d);
                }
            }
            for name in providers
                .iter()
                .filter(|n| !matches!(**n, "prometheus" | "web" | "job"))
            {
                let node = self
                    .r
                    .node
                    .at(&p("provider"))
                    .and_then(|n| n.key_node(name))
                    .unwrap_or_else(|| self.at(&p("provider")));
                let d = self
                    .r
                    .diag(
                        Code::UnsupportedProvider,
                        node,
                        format!(
                            "provider {name:?} is not supported by barge; a verification using this metric cannot run"
                        ),
                    )
                    .hint("barge runs prometheus, web and job metrics; the template still loads");
                self.push(d);
            }
            if let Some(job) = &m.provider.job {
                self.job_spec(job.spec.as_ref(), &join(&p("provider"), &path!["job", "spec"]));
            }
            // `{{args.x}}` must name a declared argument.
            if let Some(node) = self.r.node.at(&base) {
                let mut refs = Vec::new();
                node.walk_strings(&mut Vec::new(), &mut |_, n, s| {
                    for c in ARGO_ARG.captures_iter(s) {
                        let name = c.get(1).map_or("", |m| m.as_str());
                        // `args.metadata.labels.x` style references resolve against run metadata.
                        if !declared.contains(name) && !name.contains('.') {
                            refs.push((name.to_string(), n));
                        }
                    }
                });
                for (name, n) in refs {
                    let d = if verifying.is_empty() {
                        self.r
                            .diag(
                                Code::InvalidValue,
                                n,
                                format!(
                                    "`{{{{args.{name}}}}}` names an argument the template does not declare, and no Stage verifies with it"
                                ),
                            )
                            .severity(Severity::Warning)
                            .hint(format!(
                                "add `args: [{{name: {name}}}]` to this template, or to another one each Stage verifying with it also lists"
                            ))
                    } else {
                        let lacking: Vec<String> = verifying
                            .iter()
                            .filter(|(_, args)| !args.contains(name.as_str()))
                            .map(|(stage, _)| format!("{:?}", stage.name))
                            .collect();
                        if lacking.is_empty() {
                            continue;
                        }
                        self.r
                            .diag(
                                Code::InvalidValue,
                                n,
                                format!(
                                    "`{{{{args.{name}}}}}` names an argument no template of the verification of Stage {} declares",
                                    lacking.join(", ")
                                ),
                            )
                            .hint(format!(
                                "add `args: [{{name: {name}}}]` to this template or to another one in that verification"
                            ))
                    };
                    self.push(d);
                }
            }
        }
        for (field, list) in [
            (
                "dryRun",
                spec.dry_run.iter().map(|d| d.metric_name.as_str()).collect::<Vec<_>>(),
            ),
            (
                "measurementRetention",
                spec.measurement_retention
                    .iter()
                    .map(|d| d.metric_name.as_str())
                    .collect(),
            ),
        ] {
            for (i, name) in list.iter().enumerate() {
                if *name != "*" && !names.contains(name) {
                    let d = self
                        .diag(
                            Code::InvalidValue,
                            &path!["spec", field, i, "metricName"],
                            format!("{field} names metric {name:?}, which the template does not have"),
                        )
                        .hint("name a metric of this template, or `*` for all");
                    self.push(d);
                }
            }
        }
    }

    /// The parts of a batch/v1 JobSpec Kubernetes would reject at creation.
    fn job_spec(&mut self, spec: Option<&serde_json::Value>, base: &[PathSeg]) {
        let Some(spec) = spec else {
            let d = self
                .diag(Code::MissingField, base, "job metric has no Job spec")
                .hint("add `spec: {template: {spec: {containers: [...], restartPolicy: Never}}}`");
            self.push(d);
            return;
        };
        let containers = spec.pointer("/template/spec/containers").and_then(|c| c.as_array());
        let cbase = [base, &path!["template", "spec", "containers"]].concat();
        let Some(containers) = containers.filter(|c| !c.is_empty()) else {
            let d = self
                .diag(
                    Code::MissingField,
                    &cbase,
                    "job metric's pod template has no containers",
                )
                .hint("add `template: {spec: {containers: [{name: ..., image: ...}]}}`");
            self.push(d);
            return;
        };
        for (i, c) in containers.iter().enumerate() {
            let p = [cbase.as_slice(), &path![i]].concat();
            for field in ["name", "image"] {
                if c.get(field).and_then(|v| v.as_str()).is_none_or(str::is_empty) {
                    let d = self
                        .diag(Code::MissingField, &p, format!("job container has no {field}"))
                        .hint(format!("add `{field}: ...`"));
                    self.push(d);
                }
            }
            for section in ["requests", "limits"] {
                let Some(map) = c.pointer(&format!("/resources/{section}")).and_then(|v| v.as_object()) else {
                    continue;
                };
                for (res, q) in map {
                    let text = match q {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        _ => String::new(),
                    };
                    if text.contains("{{") || QUANTITY.is_match(&text) {
                        continue;
                    }
                    let path = [p.as_slice(), &path!["resources", section, res.as_str()]].concat();
                    let d = self
                        .diag(
                            Code::InvalidValue,
                            &path,
                            format!("{res} {section} {text:?} is not a Kubernetes quantity"),
                        )
                        .hint("write a quantity such as 100m, 0.5, 128Mi or 1Gi");
                    self.push(d);
                }
            }
        }
    }
}

/// The same kind, project and name defined twice.
fn duplicate_resources(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<(Kind, &str, &str), &Resource> = HashMap::new();
    for r in resources {
        if r.name.is_empty() {
            continue;
        }
        match first.get(&(r.kind, r.project.as_str(), r.name.as_str())) {
            Some(prev) => {
                let node = r.node.nearest(&path!["metadata", "name"]);
                let place = format!(
                    "{}:{}",
                    prev.file,
                    prev.node.nearest(&path!["metadata", "name"]).span.start.line
                );
                let d = r.diag(
                    Code::DuplicateResource,
                    node,
                    format!("{} {:?} is defined twice", r.kind, r.name),
                );
                out.push(if prev.node.to_json() == r.node.to_json() {
                    d.severity(Severity::Warning).hint(format!(
                        "the definition in {place} is identical, so nothing conflicts; keep one"
                    ))
                } else {
                    d.hint(format!(
                        "the definition in {place} differs and only one can apply; keep one"
                    ))
                });
            }
            None => {
                first.insert((r.kind, r.project.as_str(), r.name.as_str()), r);
            }
        }
    }
}

/// An upstream link: (upstream stage, requestedFreight index, index in `sources.stages`).
type UpstreamEdge<'a> = (&'a str, usize, usize);

/// Cycles among upstream stages, reported once per cycle at the edge that closes it.
fn stage_cycles(resources: &[Resource], out: &mut Vec<Diagnostic>) {
    // project -> stage -> [(upstream, request index, stage index)]
    let mut graph: BTreeMap<&str, BTreeMap<&str, Vec<UpstreamEdge>>> = BTreeMap::new();
    let mut by_name: HashMap<(&str, &str), &Resource> = HashMap::new();
    for r in resources {
        if let Some(Body::Stage(s)) = &r.body {
            by_name.insert((r.project.as_str(), r.name.as_str()), r);
            let edges = graph
                .entry(r.project.as_str())
                .or_default()
                .entry(r.name.as_str())
                .or_default();
            for (i, req) in s.spec.iter().flat_map(|s| s.requested_freight.iter()).enumerate() {
                for (j, up) in req.sources.stages.iter().enumerate() {
                    edges.push((up.as_str(), i, j));
                }
            }
        }
    }
    for (project, stages) in &graph {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        let mut marks: HashMap<&str, Mark> = HashMap::new();
        for start in stages.keys() {
            if marks.contains_key(start) {
                continue;
            }
            // Iterative DFS: (stage, next edge index); the stack is the current path.
            let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
            marks.insert(start, Mark::Visiting);
            while let Some((stage, edge)) = stack.last().copied() {
                let edges = stages.get(stage).map(Vec::as_slice).unwrap_or_default();
                if edge >= edges.len() {
                    marks.insert(stage, Mark::Done);
                    stack.pop();
                    continue;
                }
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let (up, i, j) = edges[edge];
                match marks.get(up) {
                    Some(Mark::Visiting) => {
                        let pos = stack.iter().position(|(s, _)| *s == up).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[pos..].iter().map(|(s, _)| *s).collect();
                        cycle.reverse();
                        cycle.push(cycle[0]);
                        if let Some(r) = by_name.get(&(*project, stage)) {
                            let node = r
                                .node
                                .nearest(&path!["spec", "requestedFreight", i, "sources", "stages", j]);
                            out.push(
                                r.diag(
                                    Code::StageCycle,
                                    node,
                                    format!("stages form a cycle: {}", cycle.join(" → ")),
                                )
                                .hint("freight flows one way; remove one of these upstream links"),
                            );
                        }
                    }
                    Some(Mark::Done) => {}
                    None if stages.contains_key(up) => {
                        marks.insert(up, Mark::Visiting);
                        stack.push((up, 0));
                    }
                    None => {}
                }
            }
        }
    }
}

fn has_tag_or_digest(repo: &str) -> bool {
    if repo.contains('@') {
        return true;
    }
    // A colon after the last slash is a tag (one before it may be a registry port).
    let last = repo.rsplit('/').next().unwrap_or(repo);
    repo.contains('/') && last.contains(':')
}

fn is_rfc3339(s: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$").expect("valid regex")
    });
    RE.is_match(s)
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

#[path = "validate_notify.rs"]
mod notify;
