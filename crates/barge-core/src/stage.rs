//! What a Stage should do next for one freight request, and why it is waiting when it is not
//! promoting (Kargo's `api/v1alpha1/stage_types.go`): availability (direct, upstream
//! verification and soak time, `OneOf` / `All`, approvals), the auto-promotion candidate (`NewestFreight` /
//! `MatchUpstream`), holds, promotion windows, a running promotion and a failed verification.
//!
//! Pure: the caller hands in the Freight with its history, the Stage's state and the time.
//! Groundwork for the daemon and `barge get stage` (issue #5).

use crate::approval::{Approval, ApprovalPolicy};
use crate::model::kargo::FreightSources;
use std::collections::BTreeMap;
use std::time::Duration;

/// One Freight of the request's origin, as the store knows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FreightView {
    pub name: String,
    pub alias: String,
    /// When it was minted (Unix seconds); newer Freight sorts first.
    pub created_at: i64,
    /// Stage → when the Freight was verified there (Unix seconds).
    pub verified_in: BTreeMap<String, i64>,
    /// Stage → since when the Freight has continuously been there (Unix seconds), for the
    /// stages it is in now, and for how long it stayed in stages it has left.
    pub soaked: BTreeMap<String, Soak>,
    /// Stages that may take it regardless of upstream verification.
    pub approved_for: Vec<String>,
    /// Stage → the approvals recorded for it there (for a Stage's approval policy).
    pub approvals: BTreeMap<String, Vec<Approval>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Soak {
    /// In the stage since this time.
    Since(i64),
    /// Was in the stage for this long.
    Lasted(Duration),
}

/// The Stage's own state for this request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageView {
    pub name: String,
    /// The Freight the Stage has now for this origin.
    pub current: Option<String>,
    /// Whether a ProjectConfig policy enables auto-promotion for this Stage.
    pub auto_promotion: bool,
    /// A hold left by a manual promotion of another Freight.
    pub hold: Option<Hold>,
    /// When the promotion window opens again, if it is closed now (Unix seconds).
    pub window_closed_until: Option<i64>,
    /// A promotion in progress.
    pub running: Option<String>,
    /// The current Freight's verification failed here.
    pub verification_failed: Option<String>,
    /// The current Freight is being verified here (no promotion starts meanwhile, as in Kargo).
    pub verification_running: Option<String>,
    /// For MatchUpstream: the Freight each upstream Stage has now.
    pub upstream_current: BTreeMap<String, String>,
    /// The Stage's latest promotion, when it did not succeed: auto-promotion does not retry
    /// the same Freight (as in Kargo), a person does.
    pub failed_promotion: Option<FailedPromotion>,
    /// The approvals Freight needs before it may enter (`spec.approvalPolicy`).
    pub approval_policy: Option<ApprovalPolicy>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedPromotion {
    pub name: String,
    pub freight: String,
    /// Failed, Errored or Aborted.
    pub phase: crate::promotion::Phase,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub freight: String,
    pub actor: String,
    pub since: i64,
}

/// Why the newest eligible Freight is not (yet) in the Stage. Each reason is one a user asks
/// about (Kargo #2795, #3050, #4383).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// No Freight from this origin exists yet.
    NoFreight,
    /// Freight exists, but none is verified in the upstream stages (named).
    NotVerifiedUpstream { freight: String, stages: Vec<String> },
    /// Verified upstream, but it must soak longer.
    SoakTimeLeft {
        freight: String,
        stage: String,
        left: Duration,
    },
    /// No ProjectConfig policy enables auto-promotion: promote by hand.
    NoAutoPromotionPolicy { freight: String },
    /// A manual promotion of another Freight holds auto-promotion.
    HeldBy { freight: String, hold: Hold },
    /// The promotion window is closed until then.
    WindowClosed { freight: String, until: i64 },
    /// A promotion is already running.
    PromotionRunning { promotion: String },
    /// The current Freight failed verification here.
    VerificationFailed { freight: String },
    /// The current Freight is being verified; nothing is promoted until it ends.
    VerificationRunning { freight: String },
    /// The last promotion of the candidate did not succeed; auto-promotion does not retry it.
    PromotionFailed {
        freight: String,
        promotion: FailedPromotion,
    },
    /// The Stage's approval policy is not met yet: `progress` says how far
    /// (`1 of 2 (needs role admin or subject alice)`).
    WaitingForApprovals { freight: String, progress: String },
}

/// What to do for one freight request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The Stage already has the candidate.
    UpToDate { freight: String },
    /// Promote this Freight now (auto-promotion).
    Promote { freight: String },
    /// Nothing to do yet, and why.
    Wait(Waiting),
}

/// Whether `f` may enter `stage` from these sources at `now`, and, when the Stage has an
/// approval policy, whether enough approvers approved it there; `Err` says what is missing.
pub fn availability(
    f: &FreightView,
    stage: &str,
    sources: &FreightSources,
    policy: Option<&ApprovalPolicy>,
    now: i64,
) -> Result<(), Waiting> {
    from_sources(f, stage, sources, now)?;
    let Some(policy) = policy else { return Ok(()) };
    let tally = policy.tally(f.approvals.get(stage).map_or(&[], Vec::as_slice));
    if tally.met() {
        Ok(())
    } else {
        Err(Waiting::WaitingForApprovals {
            freight: f.name.clone(),
            progress: tally.progress(policy),
        })
    }
}

/// Whether the sources offer `f` to `stage` (direct, approved, or verified and soaked upstream).
fn from_sources(f: &FreightView, stage: &str, sources: &FreightSources, now: i64) -> Result<(), Waiting> {
    if sources.direct == Some(true) || f.approved_for.iter().any(|s| s == stage) {
        return Ok(());
    }
    let soak = sources
        .required_soak_time
        .as_deref()
        .and_then(|d| crate::duration::parse_go_duration(d).ok())
        .unwrap_or_default();
    let all = sources.availability_strategy.as_deref() == Some("All");
    let mut missing = Vec::new();
    let mut soaking: Option<(String, Duration)> = None;
    for upstream in &sources.stages {
        if !f.verified_in.contains_key(upstream) {
            missing.push(upstream.clone());
            continue;
        }
        let soaked = match f.soaked.get(upstream) {
            Some(Soak::Since(t)) => Duration::from_secs((now - t).max(0) as u64),
            Some(Soak::Lasted(d)) => *d,
            None => Duration::ZERO,
        };
        if soaked >= soak {
            if !all {
                return Ok(());
            }
        } else {
            let left = soak - soaked;
            if soaking.as_ref().is_none_or(|(_, l)| left < *l) {
                soaking = Some((upstream.clone(), left));
            }
        }
    }
    if all && missing.is_empty() && soaking.is_none() && !sources.stages.is_empty() {
        return Ok(());
    }
    // Soak time is the nearer wait when the Freight is verified somewhere that counts.
    match soaking {
        Some((stage, left)) if !all || missing.is_empty() => Err(Waiting::SoakTimeLeft {
            freight: f.name.clone(),
            stage,
            left,
        }),
        _ => Err(Waiting::NotVerifiedUpstream {
            freight: f.name.clone(),
            stages: if missing.is_empty() {
                sources.stages.clone()
            } else {
                missing
            },
        }),
    }
}

/// The order auto-promotion looks at Freight in: newest first (by creation time, then name).
pub fn newest_first(a: &FreightView, b: &FreightView) -> std::cmp::Ordering {
    b.created_at.cmp(&a.created_at).then_with(|| b.name.cmp(&a.name))
}

/// The Freight auto-promotion would bring for one freight request, or why there is none: the
/// newest available Freight (`NewestFreight`) or the one the upstream Stage has
/// (`MatchUpstream`). Promoting this Freight by hand lifts a hold; promoting another sets one.
pub fn candidate<'a>(
    stage: &StageView,
    sources: &FreightSources,
    freight: &'a [FreightView],
    now: i64,
) -> Result<&'a FreightView, Waiting> {
    let mut sorted: Vec<&FreightView> = freight.iter().collect();
    sorted.sort_by(|a, b| newest_first(a, b));
    candidate_in(stage, sources, sorted.into_iter(), now)
}

/// [`candidate`] over Freight already in [`newest_first`] order: a caller deciding many
/// Stages over one Warehouse's Freight sorts it once (sorting 1,000 Freight per Stage was a
/// sixth of a Stage list at 300 Stages, BENCHMARKS.md, "REST API").
pub fn candidate_newest_first<'a>(
    stage: &StageView,
    sources: &FreightSources,
    newest: &'a [FreightView],
    now: i64,
) -> Result<&'a FreightView, Waiting> {
    debug_assert!(newest.is_sorted_by(|a, b| newest_first(a, b).is_le()));
    candidate_in(stage, sources, newest.iter(), now)
}

fn candidate_in<'a>(
    stage: &StageView,
    sources: &FreightSources,
    mut newest_first: impl Iterator<Item = &'a FreightView>,
    now: i64,
) -> Result<&'a FreightView, Waiting> {
    let match_upstream = sources
        .auto_promotion_options
        .as_ref()
        .and_then(|o| o.selection_policy.as_deref())
        == Some("MatchUpstream");
    if match_upstream {
        let upstream = sources
            .stages
            .first()
            .and_then(|s| stage.upstream_current.get(s))
            .and_then(|name| newest_first.find(|f| &f.name == name))
            .ok_or(Waiting::NoFreight)?;
        return availability(upstream, &stage.name, sources, stage.approval_policy.as_ref(), now).map(|()| upstream);
    }
    // The newest available Freight; when none is, why the newest one is not.
    let mut first_reason = None;
    for f in newest_first {
        match availability(f, &stage.name, sources, stage.approval_policy.as_ref(), now) {
            Ok(()) => return Ok(f),
            Err(w) => {
                first_reason.get_or_insert(w);
            }
        }
    }
    Err(first_reason.unwrap_or(Waiting::NoFreight))
}

/// The decision for one freight request. `freight` is every Freight of the origin.
pub fn decide(stage: &StageView, sources: &FreightSources, freight: &[FreightView], now: i64) -> Decision {
    decide_with(stage, now, || candidate(stage, sources, freight, now))
}

/// [`decide`] over Freight already in [`newest_first`] order.
pub fn decide_newest_first(stage: &StageView, sources: &FreightSources, newest: &[FreightView], now: i64) -> Decision {
    decide_with(stage, now, || candidate_newest_first(stage, sources, newest, now))
}

fn decide_with<'a>(
    stage: &StageView,
    now: i64,
    candidate: impl FnOnce() -> Result<&'a FreightView, Waiting>,
) -> Decision {
    if let Some(p) = &stage.running {
        return Decision::Wait(Waiting::PromotionRunning { promotion: p.clone() });
    }
    if let Some(f) = &stage.verification_running {
        return Decision::Wait(Waiting::VerificationRunning { freight: f.clone() });
    }
    let candidate = match candidate() {
        Ok(f) => f,
        Err(w) => return Decision::Wait(w),
    };
    if stage.current.as_deref() == Some(candidate.name.as_str()) {
        if let Some(failed) = &stage.verification_failed {
            return Decision::Wait(Waiting::VerificationFailed {
                freight: failed.clone(),
            });
        }
        return Decision::UpToDate {
            freight: candidate.name.clone(),
        };
    }
    if !stage.auto_promotion {
        return Decision::Wait(Waiting::NoAutoPromotionPolicy {
            freight: candidate.name.clone(),
        });
    }
    if let Some(failed) = stage.failed_promotion.as_ref().filter(|f| f.freight == candidate.name) {
        return Decision::Wait(Waiting::PromotionFailed {
            freight: candidate.name.clone(),
            promotion: failed.clone(),
        });
    }
    if let Some(hold) = &stage.hold {
        return Decision::Wait(Waiting::HeldBy {
            freight: candidate.name.clone(),
            hold: hold.clone(),
        });
    }
    if let Some(until) = stage.window_closed_until.filter(|u| *u > now) {
        return Decision::Wait(Waiting::WindowClosed {
            freight: candidate.name.clone(),
            until,
        });
    }
    Decision::Promote {
        freight: candidate.name.clone(),
    }
}

impl Waiting {
    /// A stable name for scripts (`-o json`).
    pub fn code(&self) -> &'static str {
        match self {
            Waiting::NoFreight => "NoFreight",
            Waiting::NotVerifiedUpstream { .. } => "NotVerifiedUpstream",
            Waiting::SoakTimeLeft { .. } => "SoakTimeLeft",
            Waiting::NoAutoPromotionPolicy { .. } => "NoAutoPromotionPolicy",
            Waiting::HeldBy { .. } => "Held",
            Waiting::WindowClosed { .. } => "WindowClosed",
            Waiting::PromotionRunning { .. } => "PromotionRunning",
            Waiting::VerificationFailed { .. } => "VerificationFailed",
            Waiting::VerificationRunning { .. } => "VerificationRunning",
            Waiting::PromotionFailed { .. } => "PromotionFailed",
            Waiting::WaitingForApprovals { .. } => "WaitingForApprovals",
        }
    }

    /// The sentence `barge get stage` prints; `name` turns a Freight name into what people
    /// call it (its alias).
    pub fn message(&self, now: i64, name: &dyn Fn(&str) -> String) -> String {
        match self {
            Waiting::NoFreight => "no Freight from this Warehouse yet".into(),
            Waiting::NotVerifiedUpstream { freight, stages } => {
                format!("{} is not verified in {} yet", name(freight), stages.join(" or "))
            }
            Waiting::SoakTimeLeft { freight, stage, left } => format!(
                "{} must soak in {stage} for {} more",
                name(freight),
                crate::duration::format_duration(*left)
            ),
            Waiting::NoAutoPromotionPolicy { freight } => format!(
                "{} is ready; no ProjectConfig promotion policy enables auto-promotion here, so promote it by hand",
                name(freight)
            ),
            Waiting::HeldBy { freight, hold } => format!(
                "{} is ready, but auto-promotion is held since {} promoted {} by hand; `barge release stage` lifts the hold",
                name(freight),
                hold.actor,
                name(&hold.freight)
            ),
            Waiting::WindowClosed { freight, until } => {
                let when = if *until == i64::MAX {
                    "no opening within a year".to_string()
                } else {
                    format!(
                        "until {} (in {})",
                        chrono::DateTime::from_timestamp(*until, 0)
                            .map_or_else(|| until.to_string(), |d| d.to_rfc3339()),
                        crate::duration::format_duration(std::time::Duration::from_secs((until - now).max(0) as u64))
                    )
                };
                format!("{} is ready; the promotion window is closed {when}", name(freight))
            }
            Waiting::PromotionRunning { promotion } => format!("promotion {promotion} is running"),
            Waiting::VerificationFailed { freight } => format!(
                "{} failed verification here; promote other Freight or re-run the verification (`barge verify stage`)",
                name(freight)
            ),
            Waiting::VerificationRunning { freight } => format!(
                "{} is being verified here; promotions wait until the verification ends",
                name(freight)
            ),
            Waiting::PromotionFailed { freight, promotion } => format!(
                "promotion {} of {} {}; auto-promotion does not retry it: fix the cause and promote it by hand",
                promotion.name,
                name(freight),
                promotion.phase
            ),
            Waiting::WaitingForApprovals { freight, progress } => {
                format!("{} is waiting for approvals: {progress}", name(freight))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kargo::AutoPromotionOptions;

    const NOW: i64 = 1_000_000;

    fn freight(name: &str, created_at: i64) -> FreightView {
        FreightView {
            name: name.into(),
            alias: format!("{name}-alias"),
            created_at,
            ..FreightView::default()
        }
    }

    fn direct() -> FreightSources {
        FreightSources {
            direct: Some(true),
            ..FreightSources::default()
        }
    }

    fn from(stages: &[&str], soak: Option<&str>, strategy: Option<&str>) -> FreightSources {
        FreightSources {
            stages: stages.iter().map(|s| s.to_string()).collect(),
            required_soak_time: soak.map(str::to_string),
            availability_strategy: strategy.map(str::to_string),
            ..FreightSources::default()
        }
    }

    fn auto(name: &str) -> StageView {
        StageView {
            name: name.into(),
            auto_promotion: true,
            ..StageView::default()
        }
    }

    fn verified(mut f: FreightView, stage: &str, at: i64, soak: Soak) -> FreightView {
        f.verified_in.insert(stage.into(), at);
        f.soaked.insert(stage.into(), soak);
        f
    }

    proptest::proptest! {
        /// Deciding over Freight sorted once ([`decide_newest_first`], as the engine does per
        /// Snapshot) decides as sorting per call does, for any Freight (ties in time and name
        /// included), sources (direct, soak, MatchUpstream) and current Freight.
        #[test]
        fn deciding_over_freight_sorted_once_decides_as_sorting_per_call(
            freight in proptest::collection::vec((0i64..4, 0usize..5, proptest::option::of((0i64..3_600, proptest::bool::ANY))), 0..12),
            direct_source in proptest::bool::ANY,
            match_upstream in proptest::bool::ANY,
            current in proptest::option::of(0usize..5),
            upstream in proptest::option::of(0usize..5),
        ) {
            let names = ["a", "b", "c", "d", "e"];
            let fs: Vec<FreightView> = freight
                .iter()
                .map(|(created, name, qa)| {
                    let f = self::freight(names[*name], *created);
                    match qa {
                        Some((ago, true)) => verified(f, "qa", NOW - ago, Soak::Since(NOW - ago)),
                        Some((lasted, false)) => {
                            verified(f, "qa", 1, Soak::Lasted(Duration::from_secs(*lasted as u64)))
                        }
                        None => f,
                    }
                })
                .collect();
            let mut sources = if direct_source { direct() } else { from(&["qa"], Some("30m"), None) };
            if match_upstream {
                sources.auto_promotion_options = Some(AutoPromotionOptions {
                    selection_policy: Some("MatchUpstream".into()),
                });
            }
            let mut stage = auto("prod");
            stage.current = current.map(|i| names[i].to_string());
            if let Some(i) = upstream {
                stage.upstream_current.insert("qa".into(), names[i].to_string());
            }
            let mut sorted = fs.clone();
            sorted.sort_by(newest_first);
            proptest::prop_assert_eq!(
                decide_newest_first(&stage, &sources, &sorted, NOW),
                decide(&stage, &sources, &fs, NOW)
            );
            proptest::prop_assert_eq!(
                candidate_newest_first(&stage, &sources, &sorted, NOW).cloned(),
                candidate(&stage, &sources, &fs, NOW).cloned()
            );
        }
    }

    #[test]
    fn newest_direct_freight_is_promoted_and_then_up_to_date() {
        let fs = [freight("old", 1), freight("new", 2)];
        let mut dev = auto("dev");
        assert_eq!(
            decide(&dev, &direct(), &fs, NOW),
            Decision::Promote { freight: "new".into() }
        );
        dev.current = Some("new".into());
        assert_eq!(
            decide(&dev, &direct(), &fs, NOW),
            Decision::UpToDate { freight: "new".into() }
        );
    }

    #[test]
    fn no_freight_yet() {
        assert_eq!(
            decide(&auto("dev"), &direct(), &[], NOW),
            Decision::Wait(Waiting::NoFreight)
        );
    }

    #[test]
    fn not_verified_upstream_names_the_stages() {
        let fs = [freight("a", 1)];
        let d = decide(&auto("staging"), &from(&["dev"], None, None), &fs, NOW);
        assert_eq!(
            d,
            Decision::Wait(Waiting::NotVerifiedUpstream {
                freight: "a".into(),
                stages: vec!["dev".into()]
            })
        );
    }

    #[test]
    fn soak_time_left_is_the_remaining_time() {
        let fs = [verified(freight("a", 1), "dev", NOW - 60, Soak::Since(NOW - 60))];
        let d = decide(&auto("staging"), &from(&["dev"], Some("2m"), None), &fs, NOW);
        assert_eq!(
            d,
            Decision::Wait(Waiting::SoakTimeLeft {
                freight: "a".into(),
                stage: "dev".into(),
                left: Duration::from_secs(60)
            })
        );
        // Soaked long enough (also counting a stay that ended): promote.
        let fs = [verified(
            freight("a", 1),
            "dev",
            0,
            Soak::Lasted(Duration::from_secs(120)),
        )];
        let d = decide(&auto("staging"), &from(&["dev"], Some("2m"), None), &fs, NOW);
        assert_eq!(d, Decision::Promote { freight: "a".into() });
    }

    #[test]
    fn the_newest_available_freight_wins_over_a_newer_unverified_one() {
        let fs = [
            verified(freight("verified", 1), "dev", 10, Soak::Since(10)),
            freight("fresh", 2),
        ];
        let d = decide(&auto("staging"), &from(&["dev"], None, None), &fs, NOW);
        assert_eq!(
            d,
            Decision::Promote {
                freight: "verified".into()
            }
        );
    }

    #[test]
    fn all_needs_every_upstream_and_one_of_needs_one() {
        let f = verified(freight("a", 1), "qa", 10, Soak::Since(10));
        let one_of = decide(
            &auto("prod"),
            &from(&["qa", "uat"], None, None),
            std::slice::from_ref(&f),
            NOW,
        );
        assert_eq!(one_of, Decision::Promote { freight: "a".into() });
        let all = decide(
            &auto("prod"),
            &from(&["qa", "uat"], None, Some("All")),
            std::slice::from_ref(&f),
            NOW,
        );
        assert_eq!(
            all,
            Decision::Wait(Waiting::NotVerifiedUpstream {
                freight: "a".into(),
                stages: vec!["uat".into()]
            })
        );
        let both = verified(f, "uat", 20, Soak::Since(20));
        let all = decide(&auto("prod"), &from(&["qa", "uat"], None, Some("All")), &[both], NOW);
        assert_eq!(all, Decision::Promote { freight: "a".into() });
    }

    #[test]
    fn an_approval_skips_upstream_verification() {
        let mut f = freight("hotfix", 1);
        f.approved_for.push("prod".into());
        let d = decide(&auto("prod"), &from(&["staging"], Some("1h"), None), &[f], NOW);
        assert_eq!(
            d,
            Decision::Promote {
                freight: "hotfix".into()
            }
        );
    }

    #[test]
    fn an_approval_policy_holds_freight_back_until_enough_distinct_approvers_approved() {
        use crate::approval::Approval;
        use crate::authz::Role;
        let mut prod = auto("prod");
        prod.approval_policy = Some(
            serde_json::from_str(r#"{"minApprovals": 2, "approvers": [{"role": "admin"}, {"subject": "alice"}]}"#)
                .unwrap(),
        );
        let approval = |approver: &str, role, at| Approval {
            approver: approver.into(),
            role,
            at,
        };
        let mut f = freight("a", 1);
        f.approvals.insert(
            "prod".into(),
            vec![
                approval("token:alice", Role::Promoter, 1),
                approval("token:alice", Role::Promoter, 2),
            ],
        );
        let waiting = decide(&prod, &direct(), std::slice::from_ref(&f), NOW);
        let Decision::Wait(w) = &waiting else {
            panic!("{waiting:?}")
        };
        assert_eq!(w.code(), "WaitingForApprovals");
        assert_eq!(
            w.message(NOW, &|n| n.to_string()),
            "a is waiting for approvals: 1 of 2 (needs role admin or subject alice)"
        );
        // Approvals for another Stage do not count here.
        f.approvals
            .insert("staging".into(), vec![approval("token:root", Role::Admin, 3)]);
        assert_eq!(decide(&prod, &direct(), std::slice::from_ref(&f), NOW), waiting);
        f.approvals
            .get_mut("prod")
            .unwrap()
            .push(approval("token:root", Role::Admin, 3));
        assert_eq!(
            decide(&prod, &direct(), &[f], NOW),
            Decision::Promote { freight: "a".into() }
        );
    }

    #[test]
    fn without_a_policy_the_stage_waits_for_a_person() {
        let mut prod = auto("prod");
        prod.auto_promotion = false;
        let d = decide(&prod, &direct(), &[freight("a", 1)], NOW);
        assert_eq!(
            d,
            Decision::Wait(Waiting::NoAutoPromotionPolicy { freight: "a".into() })
        );
    }

    #[test]
    fn a_hold_stops_auto_promotion_until_released() {
        let hold = Hold {
            freight: "old".into(),
            actor: "alice".into(),
            since: 5,
        };
        let mut dev = auto("dev");
        dev.current = Some("old".into());
        dev.hold = Some(hold.clone());
        let fs = [freight("old", 1), freight("new", 2)];
        assert_eq!(
            decide(&dev, &direct(), &fs, NOW),
            Decision::Wait(Waiting::HeldBy {
                freight: "new".into(),
                hold
            })
        );
        dev.hold = None;
        assert_eq!(
            decide(&dev, &direct(), &fs, NOW),
            Decision::Promote { freight: "new".into() }
        );
    }

    #[test]
    fn a_closed_window_defers_until_it_opens() {
        let mut dev = auto("dev");
        dev.window_closed_until = Some(NOW + 3600);
        let fs = [freight("a", 1)];
        assert_eq!(
            decide(&dev, &direct(), &fs, NOW),
            Decision::Wait(Waiting::WindowClosed {
                freight: "a".into(),
                until: NOW + 3600
            })
        );
        assert_eq!(
            decide(&dev, &direct(), &fs, NOW + 3600),
            Decision::Promote { freight: "a".into() }
        );
    }

    #[test]
    fn a_failed_promotion_of_the_candidate_is_not_retried_but_newer_freight_is() {
        let mut dev = auto("dev");
        dev.failed_promotion = Some(FailedPromotion {
            name: "dev.01j.a".into(),
            freight: "a".into(),
            phase: crate::promotion::Phase::Errored,
        });
        let waiting = decide(&dev, &direct(), &[freight("a", 1)], NOW);
        let Decision::Wait(w) = &waiting else {
            panic!("{waiting:?}")
        };
        assert_eq!(w.code(), "PromotionFailed");
        assert!(
            w.message(NOW, &|n| n.to_string()).contains("dev.01j.a of a Errored"),
            "{}",
            w.message(NOW, &|n| n.to_string())
        );
        assert_eq!(
            decide(&dev, &direct(), &[freight("a", 1), freight("b", 2)], NOW),
            Decision::Promote { freight: "b".into() }
        );
    }

    #[test]
    fn a_running_promotion_comes_first() {
        let mut dev = auto("dev");
        dev.running = Some("dev.01j.abc".into());
        assert_eq!(
            decide(&dev, &direct(), &[freight("a", 1)], NOW),
            Decision::Wait(Waiting::PromotionRunning {
                promotion: "dev.01j.abc".into()
            })
        );
    }

    #[test]
    fn no_promotion_starts_while_the_current_freight_is_verified() {
        let mut dev = auto("dev");
        dev.current = Some("a".into());
        dev.verification_running = Some("a".into());
        let freight = [freight("a", 1), freight("b", 2)];
        assert_eq!(
            decide(&dev, &direct(), &freight, NOW),
            Decision::Wait(Waiting::VerificationRunning { freight: "a".into() })
        );
        dev.verification_running = None;
        assert_eq!(
            decide(&dev, &direct(), &freight, NOW),
            Decision::Promote { freight: "b".into() }
        );
    }

    #[test]
    fn a_failed_verification_is_reported_for_the_current_freight() {
        let mut dev = auto("dev");
        dev.current = Some("a".into());
        dev.verification_failed = Some("a".into());
        assert_eq!(
            decide(&dev, &direct(), &[freight("a", 1)], NOW),
            Decision::Wait(Waiting::VerificationFailed { freight: "a".into() })
        );
    }

    #[test]
    fn match_upstream_follows_the_upstream_stage() {
        let fs = [
            verified(freight("older", 1), "dev", 10, Soak::Since(10)),
            verified(freight("newer", 2), "dev", 20, Soak::Since(20)),
        ];
        let mut sources = from(&["dev"], None, None);
        sources.auto_promotion_options = Some(AutoPromotionOptions {
            selection_policy: Some("MatchUpstream".into()),
        });
        let mut staging = auto("staging");
        staging.upstream_current.insert("dev".into(), "older".into());
        assert_eq!(
            decide(&staging, &sources, &fs, NOW),
            Decision::Promote {
                freight: "older".into()
            }
        );
    }
}
