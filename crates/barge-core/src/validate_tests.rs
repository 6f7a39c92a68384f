//! Checks across resources, at their file:line:col.

use crate::diag::{Code, Severity};
use crate::load::Catalog;

/// Every diagnostic of loading and validating `text`: code, severity, line, column, message.
fn diagnostics(text: &str) -> Vec<(Code, Severity, u32, u32, String)> {
    let mut c = Catalog::default();
    c.load_text("f.yaml", text);
    super::validate(&mut c);
    c.diagnostics
        .iter()
        .map(|d| (d.code, d.severity, d.line, d.column, d.message.clone()))
        .collect()
}

const TEMPLATES: &str = "\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: a, namespace: shop}
spec:
  args: [{name: service}]
  metrics:
    - name: up
      provider: {web: {url: 'http://{{args.service}}/health'}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: b, namespace: shop}
spec:
  metrics:
    - name: errors
      provider: {web: {url: 'http://{{args.service}}/errors'}}
";

fn stage(name: &str, templates: &str) -> String {
    format!(
        "---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: app-{name}, namespace: shop}}
spec:
  subscriptions: [{{image: {{repoURL: ghcr.io/acme/app}}}}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: {name}, namespace: shop}}
spec:
  requestedFreight: [{{origin: {{kind: Warehouse, name: app-{name}}}, sources: {{direct: true}}}}]
  verification:
    analysisTemplates: [{templates}]
"
    )
}

fn args_diagnostics(text: &str) -> Vec<(Code, Severity, u32, u32, String)> {
    diagnostics(text)
        .into_iter()
        .filter(|d| d.4.contains("args."))
        .collect()
}

#[test]
fn an_argument_declared_by_another_template_of_the_verification_is_fine() {
    let text = format!("{TEMPLATES}{}", stage("dev", "{name: a}, {name: b}"));
    assert_eq!(args_diagnostics(&text), vec![]);
}

#[test]
fn a_stage_verifying_with_a_template_alone_lacks_the_argument_there() {
    // dev merges a and b (fine); prod runs b alone: the reference in b is an error for prod.
    let text = format!(
        "{TEMPLATES}{}{}",
        stage("dev", "{name: a}, {name: b}"),
        stage("prod", "{name: b}")
    );
    let found = args_diagnostics(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    let (code, severity, line, column, message) = &found[0];
    assert_eq!(
        (*code, *severity, *line, *column),
        (Code::InvalidValue, Severity::Error, 16, 29)
    );
    assert!(message.contains("Stage \"prod\""), "{message}");
    assert!(!message.contains("\"dev\""), "{message}");
}

#[test]
fn a_template_no_stage_verifies_with_is_checked_alone_and_only_warned_about() {
    let found = args_diagnostics(TEMPLATES);
    assert_eq!(found.len(), 1, "{found:?}");
    let (code, severity, line, column, message) = &found[0];
    assert_eq!(
        (*code, *severity, *line, *column),
        (Code::InvalidValue, Severity::Warning, 16, 29)
    );
    assert!(message.contains("no Stage verifies with it"), "{message}");
}

const STAGE_HEAD: &str = "\
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: dev, namespace: shop}
spec:
";

/// Kargo's Stage CRD keeps no unknown fields: Kubernetes drops an unknown field wherever it is.
/// So an old-schema field beside the field that replaced it is a leftover, an unknown field
/// like any other (a warning, saying to remove it); one without its replacement would silently
/// lose what it asks for, and is the error.
#[test]
fn old_schema_fields_beside_a_current_spec_are_unknown_fields_like_any_other() {
    let text = format!(
        "{STAGE_HEAD}  requestedFreight: [{{origin: {{kind: Warehouse, name: app}}, sources: {{direct: true}}}}]
  subscriptions: {{warehouse: app}}
  colour: blue
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{name: app, namespace: shop}}
spec:
  subscriptions: [{{image: {{repoURL: ghcr.io/acme/app}}}}]
"
    );
    let found: Vec<_> = diagnostics(&text)
        .into_iter()
        .map(|(code, severity, line, column, _)| (code, severity, line, column))
        .collect();
    assert_eq!(
        found,
        vec![
            (Code::UnknownField, Severity::Warning, 6, 3),
            (Code::UnknownField, Severity::Warning, 7, 3),
        ]
    );
    let mut c = Catalog::default();
    c.load_text("f.yaml", &text);
    let hint = c.diagnostics[0].hint.clone();
    assert!(
        hint.contains("replaced by the `spec.requestedFreight`") && hint.contains("remove it"),
        "{hint}"
    );
}

#[test]
fn a_stage_in_the_old_schema_is_one_error_that_says_how_to_rewrite_it() {
    let text = format!("{STAGE_HEAD}  subscriptions: {{warehouse: app}}\n  colour: blue\n");
    let found = diagnostics(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    let (code, severity, line, column, message) = &found[0];
    assert_eq!(
        (*code, *severity, *line, *column),
        (Code::OldKargoSchema, Severity::Error, 5, 3)
    );
    assert!(message.contains("without the field that replaced it"), "{message}");
}

/// Kargo v0.6 to v0.9 Stages: `requestedFreight` with `promotionMechanisms` and no
/// `promotionTemplate`: what they promote would be lost.
#[test]
fn promotion_mechanisms_without_a_promotion_template_are_the_old_schema() {
    let text = format!(
        "{STAGE_HEAD}  requestedFreight: [{{origin: {{kind: Warehouse, name: app}}, sources: {{direct: true}}}}]\n  promotionMechanisms: {{gitRepoUpdates: []}}\n"
    );
    let found: Vec<_> = diagnostics(&text)
        .into_iter()
        .filter(|d| d.0 != Code::UnresolvedWarehouse)
        .map(|(code, severity, line, column, _)| (code, severity, line, column))
        .collect();
    assert_eq!(found, vec![(Code::OldKargoSchema, Severity::Error, 6, 3)]);
}
