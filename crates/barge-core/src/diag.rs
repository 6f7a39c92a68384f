//! Diagnostics: what is wrong, where, and how to fix it.
//!
//! Every diagnostic has a stable [`Code`] (scripts and docs key on it, so codes are never
//! renamed), a severity, a position and a hint. `docs/reference/diagnostics.md` lists them all.

use crate::yaml::Span;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

macro_rules! codes {
    ($($variant:ident = $text:literal, $sev:ident, $doc:literal;)*) => {
        /// Stable diagnostic codes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $(#[doc = $doc] $variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// The severity a diagnostic with this code has unless a check says otherwise.
            pub fn default_severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }

            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $doc,)* }
            }
        }
    };
}

codes! {
    YamlSyntax = "yaml-syntax", Error, "The file is not valid YAML.";
    NotYaml = "not-yaml", Error, "The file is a template (Helm/Go `{{ }}`), not UTF-8 text (reported at the first bad byte), over 16 MiB, or not a regular file (skipped with a warning in a directory).";
    NotAResource = "not-a-resource", Warning, "A document that is a list or a single value, not a mapping: it cannot be a resource and is ignored.";
    DuplicateKey = "duplicate-key", Error, "A mapping sets the same key twice; the last value wins.";
    MissingApiVersion = "missing-api-version", Error, "A document names a Kargo kind but has no apiVersion.";
    UnsupportedVersion = "unsupported-version", Error, "A known kind in an API version barge does not read.";
    UnknownKind = "unknown-kind", Warning, "A kind in a Kargo/barge API group that barge does not know.";
    OldKargoSchema = "old-kargo-schema", Error, "A resource in Kargo's old schema (subscriptions / promotionMechanisms on a Stage without requestedFreight / promotionTemplate, which replaced them).";
    InvalidType = "invalid-type", Error, "A field holds the wrong type of value.";
    MissingField = "missing-field", Error, "A required field is absent or empty.";
    UnknownField = "unknown-field", Warning, "A field no version of the schema defines (an old Stage field beside its replacement too); it is ignored, as Kubernetes drops it.";
    DeprecatedField = "deprecated-field", Warning, "A field Kargo deprecated or removed; barge still reads it.";
    InvalidName = "invalid-name", Error, "A name that is not a valid Kubernetes (RFC 1123) name.";
    DuplicateResource = "duplicate-resource", Error, "Two resources with the same kind, namespace and name.";
    InvalidValue = "invalid-value", Error, "A value outside the allowed set, or fields that contradict each other.";
    InvalidStrategy = "invalid-strategy", Error, "A selection strategy that does not exist (e.g. NewestCommit).";
    InvalidSemverConstraint = "invalid-semver-constraint", Error, "A semver constraint Masterminds/semver (Kargo) would reject.";
    InvalidRegex = "invalid-regex", Error, "A regular expression that does not compile (RE2 syntax).";
    InvalidDuration = "invalid-duration", Error, "A duration that is not Go syntax (e.g. 1h30m, 10m, 90s).";
    InvalidPromotionWindow = "invalid-promotion-window", Error, "A ProjectConfig promotion window barge cannot read (kind, cron `schedule`, `duration`; Enterprise `rrule` windows).";
    InvalidExpression = "invalid-expression", Error, "A ${{ }} / ${% %} expression that does not parse.";
    UnfilledPlaceholder = "unfilled-placeholder", Error, "A shell-style ${VAR} placeholder was left in (the file was meant to go through envsubst).";
    UnknownStep = "unknown-step", Error, "A promotion step name barge does not know.";
    UnknownStepField = "unknown-step-field", Error, "A step's config has a field the step does not accept; the promotion would fail there.";
    UnsupportedStep = "unsupported-step", Error, "A Kargo Enterprise, removed or custom step, or a Kargo step barge cannot run yet.";
    UnsupportedStepOption = "unsupported-step-option", Error, "A step option of Kargo's that barge accepts but cannot honour (e.g. insecureSkipTLSVerify); the step would fail or differ when it runs.";
    InvalidStep = "invalid-step", Error, "A step with neither or both of `uses` and `task`, or task-only fields misused.";
    DuplicateStepAlias = "duplicate-step-alias", Error, "Two steps share one `as` alias.";
    UnresolvedStepOutput = "unresolved-step-output", Error, "An expression reads outputs of a step that does not run before it.";
    UnresolvedWarehouse = "unresolved-warehouse", Error, "requestedFreight names a Warehouse that is not in the project.";
    UnresolvedStage = "unresolved-stage", Error, "An upstream Stage that is not in the project.";
    UnresolvedTask = "unresolved-task", Error, "A PromotionTask / ClusterPromotionTask that is not defined.";
    UnresolvedAnalysisTemplate = "unresolved-analysis-template", Error, "A verification AnalysisTemplate that is not defined.";
    StageCycle = "stage-cycle", Error, "Stages feed freight to each other in a cycle.";
    NoFreightSources = "no-freight-sources", Error, "A requested freight origin has neither `direct: true` nor upstream `stages`.";
    MissingTaskVar = "missing-task-var", Error, "A task step does not set a var the task requires (a var without a default).";
    UnsupportedProvider = "unsupported-provider", Warning, "An analysis metric provider barge cannot run (it runs prometheus, web and job).";
    InvalidPipeline = "invalid-pipeline", Error, "A barge Pipeline that cannot be expanded.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The resource a diagnostic is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResourceRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    pub hint: String,
    /// Caret width on the source line (not part of the JSON contract).
    #[serde(skip)]
    pub width: u32,
}

impl Diagnostic {
    pub fn new(code: Code, file: &str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: span.start.line,
            column: span.start.column,
            kind: String::new(),
            namespace: String::new(),
            name: String::new(),
            severity: code.default_severity(),
            code,
            message: message.into(),
            hint: String::new(),
            width: span.width_on_first_line(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }

    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn resource(mut self, r: &ResourceRef) -> Self {
        self.kind.clone_from(&r.kind);
        self.namespace.clone_from(&r.namespace);
        self.name.clone_from(&r.name);
        self
    }
}

/// Sorts diagnostics by file and position, so output is stable whatever order checks ran in.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.code, &a.message).cmp(&(&b.file, b.line, b.column, b.code, &b.message))
    });
}

/// docs/reference/diagnostics.md, generated from [`Code::ALL`].
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Diagnostic codes\n\n<!-- Generated from crates/barge-core/src/diag.rs by the `reference_docs_are_current` test; \
         run `BARGE_BLESS=1 cargo test --test docs` after adding a code. -->\n\n\
         Every problem `barge validate` reports has one of these stable codes (they are never renamed, \
         so scripts may key on them). Each has a fixture pair in `tests/fixtures/diagnostics/<code>/`: \
         `bad.yaml` shows the mistake, `good.yaml` the fix.\n\n\
         | code | severity | meaning |\n|---|---|---|\n",
    );
    for c in Code::ALL {
        out.push_str(&format!(
            "| `{c}` | {} | {} |\n",
            c.default_severity(),
            c.summary().replace('|', "\\|")
        ));
    }
    out.push_str(
        "\nSeverity can differ from the default where the check knows more: a duplicate key or resource \
         whose two values are identical is a warning, not an error; a promotion policy naming a stage \
         that does not exist is a warning.\n",
    );
    out
}

/// "did you mean" by edit distance: the closest candidate within a third of the word's length.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= (word.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
            assert!(c.as_str().chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'));
        }
    }

    #[test]
    fn did_you_mean_finds_close_names_only() {
        let fields = ["imageSelectionStrategy", "constraint", "repoURL"];
        assert_eq!(did_you_mean("contraint", fields), Some("constraint"));
        assert_eq!(did_you_mean("repoUrl", fields), Some("repoURL"));
        assert_eq!(did_you_mean("platform", fields), None);
    }
}
