//! Approval policies (issues #16, #20): how many distinct approvers, and who, must approve a
//! Freight for a Stage before it may enter (a Stage's `spec.approvalPolicy`, barge's own) or
//! before a promotion carries on (the `wait-for-approval` step of Kargo Enterprise, whose
//! config this shares: `minApprovals` and `approvers`, docs.kargo.io, "wait-for-approval").
//!
//! Pure counting and matching: the store hands in the approvals recorded so far, each with
//! the principal that made it and the role it had then.

use crate::authz::Role;
use crate::schema::Schema;
use serde::{Deserialize, Serialize};

/// Who may approve and how many must. The rules are ORed: an approval counts when its
/// approver matches any of them; without rules, anyone who may approve counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicy {
    /// How many distinct approvers must approve (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_approvals: Option<i64>,
    /// Who may approve; empty: anyone who may approve (a promoter or an admin).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<ApproverRule>,
}

/// One rule of [`ApprovalPolicy::approvers`]: a `role` or a `subject`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Schema)]
#[serde(rename_all = "camelCase")]
pub struct ApproverRule {
    /// A barge role (`promoter` or `admin`); a principal with at least this role matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// One principal: as the audit log names it (`token:alice`), or a token's name (`alice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Kargo's OIDC claim rules; barge matches roles and subjects only (validation says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// The value of Kargo's `claim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// At least one counted approval must come from a principal matching this rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// One approval recorded for a Freight and a Stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The principal as the audit log names it (`token:alice`).
    pub approver: String,
    /// Its role when it approved.
    pub role: Role,
    /// When (Unix milliseconds).
    pub at: i64,
}

/// What is wrong with a policy, for validation (the field, and why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The rule's index in `approvers`, or `None` for `minApprovals`.
    pub rule: Option<usize>,
    /// The offending field of the rule or policy.
    pub field: &'static str,
    pub message: String,
}

/// The approvals counted towards a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// The distinct approvers that count, in the order they approved.
    pub counted: Vec<String>,
    pub required: u32,
    /// The `required` rules no counted approver matches yet, described.
    pub missing_required: Vec<String>,
}

impl Tally {
    /// Whether the policy is satisfied.
    pub fn met(&self) -> bool {
        self.counted.len() as u32 >= self.required && self.missing_required.is_empty()
    }

    /// `1 of 2 (needs role admin or subject alice)`.
    pub fn progress(&self, policy: &ApprovalPolicy) -> String {
        let mut s = format!(
            "{} of {} (needs {})",
            self.counted.len(),
            self.required,
            policy.describe()
        );
        if !self.missing_required.is_empty() {
            s.push_str(&format!("; still required: {}", self.missing_required.join(", ")));
        }
        s
    }
}

impl ApproverRule {
    fn role(&self) -> Option<Role> {
        self.role.as_deref().and_then(Role::parse)
    }

    /// Whether `a`'s approver matches this rule.
    pub fn matches(&self, a: &Approval) -> bool {
        if let Some(want) = self.role() {
            return a.role >= want;
        }
        match &self.subject {
            Some(s) => a.approver == *s || a.approver.strip_prefix("token:") == Some(s.as_str()),
            None => false,
        }
    }

    /// `role admin`, `subject alice`.
    pub fn describe(&self) -> String {
        match (&self.role, &self.subject, &self.claim) {
            (Some(r), _, _) => format!("role {r}"),
            (None, Some(s), _) => format!("subject {s}"),
            (None, None, Some(c)) => format!("claim {c}={}", self.value.as_deref().unwrap_or_default()),
            (None, None, None) => "nobody".into(),
        }
    }
}

impl ApprovalPolicy {
    /// How many distinct approvers must approve (at least 1).
    pub fn required(&self) -> u32 {
        self.min_approvals.unwrap_or(1).clamp(1, u32::MAX as i64) as u32
    }

    /// Whether `a` counts: it matches a rule, or there are none.
    pub fn admits(&self, a: &Approval) -> bool {
        self.approvers.is_empty() || self.approvers.iter().any(|r| r.matches(a))
    }

    /// `role admin or subject alice`; `a promoter or an admin` without rules.
    pub fn describe(&self) -> String {
        if self.approvers.is_empty() {
            return "a promoter or an admin".into();
        }
        self.approvers
            .iter()
            .map(ApproverRule::describe)
            .collect::<Vec<_>>()
            .join(" or ")
    }

    /// Counts `approvals`: each approver once (its first approval), only those the rules admit.
    pub fn tally(&self, approvals: &[Approval]) -> Tally {
        let mut counted: Vec<&Approval> = Vec::new();
        let mut in_order: Vec<&Approval> = approvals.iter().collect();
        in_order.sort_by_key(|a| a.at);
        for a in in_order {
            if self.admits(a) && !counted.iter().any(|c| c.approver == a.approver) {
                counted.push(a);
            }
        }
        let missing_required = self
            .approvers
            .iter()
            .filter(|r| r.required && !counted.iter().any(|a| r.matches(a)))
            .map(ApproverRule::describe)
            .collect();
        Tally {
            counted: counted.into_iter().map(|a| a.approver.clone()).collect(),
            required: self.required(),
            missing_required,
        }
    }

    /// What makes the policy unusable: a count below 1, a rule with neither or both of `role`
    /// and `subject`, a role nobody approving has, Kargo's OIDC claim rules (barge's principals
    /// carry no claims), or more approvers required than the subjects named (without a role
    /// rule, no more can ever approve).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let Some(n) = self.min_approvals.filter(|n| *n < 1) {
            out.push(Problem {
                rule: None,
                field: "minApprovals",
                message: format!("minApprovals is {n}; it must be at least 1"),
            });
        }
        for (i, r) in self.approvers.iter().enumerate() {
            let problem = |field, message: String| Problem {
                rule: Some(i),
                field,
                message,
            };
            if r.claim.is_some() || r.value.is_some() {
                let field = if r.claim.is_some() { "claim" } else { "value" };
                out.push(problem(
                    field,
                    "barge matches approvers by `role` or `subject`, not by OIDC claims; name the subjects or a role instead"
                        .into(),
                ));
                continue;
            }
            match (&r.role, &r.subject) {
                (Some(_), Some(_)) => out.push(problem(
                    "subject",
                    "an approver rule sets `role` or `subject`, not both".into(),
                )),
                (None, None) => out.push(problem("role", "an approver rule needs `role` or `subject`".into())),
                (Some(role), None) => match Role::parse(role) {
                    Some(Role::Promoter | Role::Admin) => {}
                    Some(Role::Viewer) => out.push(problem(
                        "role",
                        "a viewer cannot approve; use `promoter` or `admin`".into(),
                    )),
                    None => out.push(problem(
                        "role",
                        format!("{role:?} is not a barge role; use `promoter` or `admin`"),
                    )),
                },
                (None, Some(s)) if s.is_empty() => out.push(problem("subject", "the subject is empty".into())),
                (None, Some(_)) => {}
            }
        }
        let only_subjects = !self.approvers.is_empty() && self.approvers.iter().all(|r| r.subject.is_some());
        if only_subjects {
            let mut subjects: Vec<&str> = self.approvers.iter().filter_map(|r| r.subject.as_deref()).collect();
            subjects.sort_unstable();
            subjects.dedup();
            if (self.required() as usize) > subjects.len() {
                out.push(Problem {
                    rule: None,
                    field: "minApprovals",
                    message: format!(
                        "minApprovals is {} but only {} subject(s) may approve; the Freight could never be approved",
                        self.required(),
                        subjects.len()
                    ),
                });
            }
        }
        out
    }
}

/// A record-audit-event `type`: 1 to 63 letters, digits, `-`, `_` or `.` (it becomes part of
/// the audit kind `promotion.custom.<type>`, which people filter on).
pub fn valid_event_type(kind: &str) -> bool {
    (1..=63).contains(&kind.len())
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(approver: &str, role: Role, at: i64) -> Approval {
        Approval {
            approver: approver.into(),
            role,
            at,
        }
    }

    fn policy(json: &str) -> ApprovalPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_same_approver_counts_once_and_only_matching_approvers_count() {
        let p = policy(r#"{"minApprovals": 2, "approvers": [{"role": "admin"}, {"subject": "alice"}]}"#);
        let approvals = [
            approval("token:alice", Role::Promoter, 1),
            approval("token:alice", Role::Promoter, 2),
            approval("token:bob", Role::Promoter, 3),
        ];
        let t = p.tally(&approvals);
        assert_eq!(t.counted, ["token:alice"]);
        assert!(!t.met());
        assert_eq!(t.progress(&p), "1 of 2 (needs role admin or subject alice)");
        let more = [approvals.as_slice(), &[approval("token:root", Role::Admin, 4)]].concat();
        let t = p.tally(&more);
        assert_eq!(t.counted, ["token:alice", "token:root"]);
        assert!(t.met());
    }

    #[test]
    fn a_role_rule_admits_that_role_and_above_and_no_rules_admit_anyone() {
        let promoters = policy(r#"{"approvers": [{"role": "promoter"}]}"#);
        assert!(promoters.admits(&approval("token:root", Role::Admin, 0)));
        assert!(promoters.admits(&approval("token:p", Role::Promoter, 0)));
        let admins = policy(r#"{"approvers": [{"role": "admin"}]}"#);
        assert!(!admins.admits(&approval("token:p", Role::Promoter, 0)));
        let anyone = ApprovalPolicy::default();
        assert!(anyone.admits(&approval("alice", Role::Admin, 0)));
        assert_eq!(anyone.required(), 1);
        assert_eq!(anyone.describe(), "a promoter or an admin");
    }

    #[test]
    fn a_subject_matches_the_audited_name_or_the_token_name() {
        let r = ApproverRule {
            subject: Some("alice".into()),
            ..Default::default()
        };
        assert!(r.matches(&approval("token:alice", Role::Promoter, 0)));
        assert!(r.matches(&approval("alice", Role::Admin, 0)));
        assert!(!r.matches(&approval("token:alicia", Role::Promoter, 0)));
        let full = ApproverRule {
            subject: Some("token:alice".into()),
            ..Default::default()
        };
        assert!(full.matches(&approval("token:alice", Role::Promoter, 0)));
    }

    #[test]
    fn a_required_rule_must_be_matched_by_a_counted_approver() {
        let p = policy(
            r#"{"minApprovals": 2, "approvers": [{"subject": "lead", "required": true}, {"role": "promoter"}]}"#,
        );
        let two_promoters = [
            approval("token:a", Role::Promoter, 1),
            approval("token:b", Role::Promoter, 2),
        ];
        let t = p.tally(&two_promoters);
        assert_eq!(t.counted.len(), 2);
        assert!(!t.met());
        assert_eq!(t.missing_required, ["subject lead"]);
        let with_lead = [two_promoters.as_slice(), &[approval("token:lead", Role::Promoter, 3)]].concat();
        assert!(p.tally(&with_lead).met());
    }

    #[test]
    fn unusable_policies_are_reported_by_field() {
        let fields = |json: &str| -> Vec<(Option<usize>, &'static str)> {
            policy(json).problems().iter().map(|p| (p.rule, p.field)).collect()
        };
        assert_eq!(fields(r#"{"minApprovals": 0}"#), [(None, "minApprovals")]);
        assert_eq!(fields(r#"{"approvers": [{"role": "viewer"}]}"#), [(Some(0), "role")]);
        assert_eq!(fields(r#"{"approvers": [{"role": "boss"}]}"#), [(Some(0), "role")]);
        assert_eq!(fields(r#"{"approvers": [{}]}"#), [(Some(0), "role")]);
        assert_eq!(
            fields(r#"{"approvers": [{"role": "admin", "subject": "a"}]}"#),
            [(Some(0), "subject")]
        );
        assert_eq!(
            fields(r#"{"approvers": [{"claim": "groups", "value": "leads"}]}"#),
            [(Some(0), "claim")]
        );
        assert_eq!(
            fields(r#"{"minApprovals": 3, "approvers": [{"subject": "a"}, {"subject": "b"}]}"#),
            [(None, "minApprovals")]
        );
        assert!(fields(r#"{"minApprovals": 2, "approvers": [{"role": "admin"}, {"subject": "alice"}]}"#).is_empty());
    }
}
