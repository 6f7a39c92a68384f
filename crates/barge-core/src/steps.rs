//! The catalogue of promotion step names: what barge runs, and what it knows it cannot.
//!
//! The promotion engine registers one runner per name in [`BUILTIN`]; validation uses this list
//! so that an unknown `uses:` is caught before a promotion starts, with the known names listed.

/// Kargo's open-source steps (its `pkg/promotion/runner/builtin/`). The promotion engine runs
/// most of them; docs/reference/steps.md lists the ones it cannot run yet.
pub const BUILTIN: &[&str] = &[
    "argocd-update",
    "argocd-wait",
    "compose-output",
    "copy",
    "delete",
    "fail",
    "file-write",
    "git-clear",
    "git-clone",
    "git-commit",
    "git-merge-pr",
    "git-open-pr",
    "git-push",
    "git-tag",
    "git-wait-for-pr",
    "github-push",
    // Kargo Enterprise's; barge edits the file in place (no pod), keeping its layout.
    "hcl-update",
    "helm-template",
    "helm-update-chart",
    "http",
    "http-download",
    "json-parse",
    "json-update",
    "kustomize-build",
    "kustomize-set-image",
    "oci-download",
    "oci-push",
    // Kargo Enterprise's; barge records it in its own audit log (docs/reference/steps.md).
    "record-audit-event",
    // barge's own: waits for an Argo Rollouts Rollout (docs/reference/steps.md).
    "rollout-wait",
    // Kargo Enterprise's; barge runs it with its notification channels.
    "send-message",
    "set-freight-alias",
    "set-metadata",
    "tar",
    "toml-parse",
    "toml-update",
    "untar",
    // Kargo Enterprise's; barge counts the approvals `barge approve` records.
    "wait-for-approval",
    "yaml-merge",
    "yaml-parse",
    "yaml-update",
];

/// Kargo steps barge knows but cannot run yet, with why: validation reports them, so a
/// pipeline that validates never meets "no runner" at run time. barge-promote's tests keep
/// this list equal to the steps it has no runner for.
pub const NOT_RUNNABLE: &[(&str, &str)] = &[];

/// Steps that exist only in Kargo Enterprise (Kargo's `docs/enterprise-features.json`).
pub const ENTERPRISE: &[&str] = &[
    "get-user-input",
    "jira",
    "jfrog-evidence",
    "gh-create-issue",
    "gh-update-issue",
    "gh-search-issues",
    "gh-issue-add-comment",
    "gh-issue-update-comment",
    "gh-issue-delete-comment",
    "gh-wait-for-issue-state",
    "gha-dispatch-workflow",
    "gha-wait-for-workflow",
    "snow-create",
    "snow-update",
    "snow-delete",
    "snow-query-for-records",
    "snow-wait-for-condition",
    "tf-plan",
    "tf-apply",
    "tf-output",
];

/// Steps Kargo removed, with what replaced them.
pub const REMOVED: &[(&str, &str)] = &[
    (
        "helm-update-image",
        "removed in Kargo v1.3; use yaml-update on the values file",
    ),
    (
        "git-overwrite",
        "removed in Kargo v1.0; use git-clear followed by copy or kustomize-build",
    ),
    ("helm-update-chart-dependency", "renamed helm-update-chart"),
];

/// What kind of step a `uses:` name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    Builtin,
    Enterprise,
    Removed(&'static str),
    Unknown,
}

pub fn classify(name: &str) -> StepKind {
    if BUILTIN.contains(&name) {
        StepKind::Builtin
    } else if ENTERPRISE.contains(&name) {
        StepKind::Enterprise
    } else if let Some((_, why)) = REMOVED.iter().find(|(n, _)| *n == name) {
        StepKind::Removed(why)
    } else {
        StepKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_disjoint_and_classified() {
        let mut sorted = BUILTIN.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, BUILTIN, "keep BUILTIN sorted: it is printed to users");
        for e in ENTERPRISE {
            assert!(!BUILTIN.contains(e));
            assert_eq!(classify(e), StepKind::Enterprise);
        }
        assert_eq!(classify("git-clone"), StepKind::Builtin);
        assert!(matches!(classify("helm-update-image"), StepKind::Removed(_)));
        assert_eq!(classify("trivy-image"), StepKind::Unknown);
        for (n, _) in NOT_RUNNABLE {
            assert_eq!(classify(n), StepKind::Builtin);
        }
    }
}
