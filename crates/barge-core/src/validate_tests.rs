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

/// Issues #16, #20: a Stage's approval policy and the wait-for-approval and
/// record-audit-event steps are checked where they are written: more approvers required than
/// the subjects named, a count below 1, a bad poll interval, a rule with both `role` and
/// `subject`, a role nobody approving has, Kargo's OIDC claim rules, a wrongly typed field, an
/// unknown option, no message, a bad type, data that is not a string. Expressions are left to
/// the run.
#[test]
fn approval_policies_and_the_approval_steps_report_bad_options_at_their_position() {
    let text = "\
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  subscriptions: [{image: {repoURL: ghcr.io/acme/app}}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: prod, namespace: shop}
spec:
  approvalPolicy:
    minApprovals: 3
    approvers: [{subject: alice}, {subject: bob}]
  requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {direct: true}}]
  promotionTemplate:
    spec:
      steps:
        - uses: wait-for-approval
          config:
            minApprovals: 0
            pollInterval: soon
            approvers: [{role: admin, subject: bob}, {role: viewer}, {claim: groups, value: leads}]
        - uses: wait-for-approval
          config: {minApprovals: two, aprovers: []}
        - uses: record-audit-event
          config: {type: 'has space', data: {n: 1}}
        - uses: wait-for-approval
          config: {minApprovals: '${{ vars.n }}'}
";
    let found: Vec<_> = diagnostics(text)
        .into_iter()
        .map(|(code, _, line, column, message)| (code, line, column, message))
        .collect();
    let want = [
        (
            Code::InvalidValue,
            12,
            19,
            "minApprovals is 3 but only 2 subject(s) may approve; the Freight could never be approved",
        ),
        (Code::InvalidValue, 20, 27, "minApprovals is 0; it must be at least 1"),
        (Code::InvalidDuration, 21, 27, "\"soon\" is not a valid duration"),
        (
            Code::InvalidValue,
            22,
            48,
            "an approver rule sets `role` or `subject`, not both",
        ),
        (
            Code::InvalidValue,
            22,
            61,
            "a viewer cannot approve; use `promoter` or `admin`",
        ),
        (
            Code::InvalidValue,
            22,
            78,
            "barge matches approvers by `role` or `subject`, not by OIDC claims; name the subjects or a role instead",
        ),
        (
            Code::InvalidType,
            24,
            19,
            "wait-for-approval: invalid type: string \"two\", expected i64",
        ),
        (
            Code::UnknownStepField,
            24,
            39,
            "wait-for-approval has no config field \"aprovers\"; the promotion would fail at this step",
        ),
        (Code::MissingField, 26, 19, "record-audit-event has no `message`"),
        (Code::InvalidValue, 26, 26, "\"has space\" is not an audit event type"),
        (
            Code::InvalidType,
            26,
            49,
            "record-audit-event data \"n\" is not a string",
        ),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(c, l, col, m)| (*c, *l, *col, m.to_string()))
        .collect();
    assert_eq!(found, want);
}

/// Issue #20: hcl-update (Kargo Enterprise's) validates: a config with its path and scalar
/// updates is clean, a missing path, no updates, an update without key or value, a value HCL
/// cannot hold as written and an unknown field are reported where they are written.
#[test]
fn hcl_update_is_a_step_barge_runs_and_its_config_is_checked() {
    let text = "\
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  subscriptions: [{image: {repoURL: ghcr.io/acme/app}}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: prod, namespace: shop}
spec:
  requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {direct: true}}]
  promotionTemplate:
    spec:
      steps:
        - uses: hcl-update
          config:
            path: ./src/opentofu/prod/env.auto.tfvars
            updates:
              - {key: image_uri, value: '${{ imageFrom(\"ghcr.io/acme/app\").Tag }}'}
              - {key: replica_count, value: 3}
              - {key: resource.aws_instance.web.tags.enabled, value: true}
        - uses: hcl-update
          config: {updates: [], paht: main.tf}
        - uses: hcl-update
          config:
            path: main.tf
            updates: [{value: 1}, {key: a}, {key: b, value: [1]}]
";
    let found: Vec<_> = diagnostics(text)
        .into_iter()
        .map(|(code, _, line, column, message)| (code, line, column, message))
        .collect();
    let want = [
        (Code::MissingField, 23, 19, "hcl-update has no `path`"),
        (Code::MissingField, 23, 19, "hcl-update has no `updates`"),
        (
            Code::UnknownStepField,
            23,
            33,
            "hcl-update has no config field \"paht\"; the promotion would fail at this step",
        ),
        (Code::MissingField, 27, 23, "hcl-update update has no `key`"),
        (Code::MissingField, 27, 35, "hcl-update update has no `value`"),
        (
            Code::InvalidType,
            27,
            61,
            "hcl-update value [1] is not a string, number or boolean",
        ),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(c, l, col, m)| (*c, *l, *col, m.to_string()))
        .collect();
    assert_eq!(found, want);
}

/// Issue #20: labels on a Bitbucket Cloud pull request (which has none) are reported where
/// they are written, the provider named or told by the URL; elsewhere they are fine.
#[test]
fn labels_on_a_bitbucket_pull_request_are_reported() {
    let text = "\
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {name: app, namespace: shop}
spec:
  subscriptions: [{image: {repoURL: ghcr.io/acme/app}}]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {name: prod, namespace: shop}
spec:
  requestedFreight: [{origin: {kind: Warehouse, name: app}, sources: {direct: true}}]
  promotionTemplate:
    spec:
      steps:
        - uses: git-open-pr
          config: {repoURL: 'https://bitbucket.org/acme/config.git', sourceBranch: a, labels: [x]}
        - uses: git-open-pr
          config: {repoURL: 'https://git.corp/acme/config.git', provider: bitbucket, sourceBranch: a, labels: [x]}
        - uses: git-open-pr
          config: {repoURL: 'https://dev.azure.com/acme/shop/_git/config', sourceBranch: a, labels: [x]}
";
    let found: Vec<_> = diagnostics(text)
        .into_iter()
        .map(|(code, _, line, column, message)| (code, line, column, message))
        .collect();
    let message = "git-open-pr: Bitbucket Cloud pull requests have no labels".to_string();
    assert_eq!(
        found,
        vec![
            (Code::UnsupportedStepOption, 16, 95, message.clone()),
            (Code::UnsupportedStepOption, 18, 111, message),
        ]
    );
}
