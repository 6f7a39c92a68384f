//! Delivery (DORA) figures of one Stage, from its history: lead time (Freight minted →
//! entered the Stage), deployment frequency (promotions that succeeded), change failure rate
//! (failed verifications / successful promotions) and time to restore (a failed
//! verification → the next successful one). Pure arithmetic over events the caller read from
//! the store; the same definitions name the Prometheus series (docs/reference/metrics.md).

use serde::{Deserialize, Serialize};

/// What happened to a Stage, as the figures need it. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub enum StageEvent {
    /// A Freight minted at `minted_at` entered the Stage at `at`.
    Entered { at: i64, minted_at: i64 },
    /// A promotion into the Stage ended (Succeeded, Failed or Errored).
    PromotionFinished { at: i64, succeeded: bool },
    /// A verification of the Stage's Freight ended: `succeeded`, or failed (Failed or Error;
    /// an aborted or inconclusive one is neither and is left out by the caller).
    Verified { at: i64, succeeded: bool },
}

impl StageEvent {
    fn at(&self) -> i64 {
        match self {
            StageEvent::Entered { at, .. }
            | StageEvent::PromotionFinished { at, .. }
            | StageEvent::Verified { at, .. } => *at,
        }
    }
}

/// Summary of durations, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    pub count: u64,
    /// None without any.
    pub mean_seconds: Option<f64>,
    pub median_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
}

impl Durations {
    fn of(mut seconds: Vec<f64>) -> Durations {
        if seconds.is_empty() {
            return Durations::default();
        }
        seconds.sort_by(f64::total_cmp);
        let n = seconds.len();
        let median = if n % 2 == 1 {
            seconds[n / 2]
        } else {
            (seconds[n / 2 - 1] + seconds[n / 2]) / 2.0
        };
        Durations {
            count: n as u64,
            mean_seconds: Some(seconds.iter().sum::<f64>() / n as f64),
            median_seconds: Some(median),
            max_seconds: seconds.last().copied(),
        }
    }
}

/// One Stage's delivery figures over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFigures {
    /// Promotions that ended in the window.
    pub promotions: u64,
    /// Of them, those that succeeded: the deployments.
    pub deployments: u64,
    /// Deployments per day over the window.
    pub deployments_per_day: f64,
    /// Freight minted → entered the Stage.
    pub lead_time: Durations,
    pub verifications_failed: u64,
    /// Failed verifications / deployments; none without a deployment.
    pub change_failure_rate: Option<f64>,
    /// From a failed verification (the first of a run of them) to the next successful one.
    pub time_to_restore: Durations,
    /// Whether the last failure is still not followed by a successful verification.
    pub unrestored: bool,
}

/// The figures of one Stage from its `events` in a window of `window_ms` milliseconds (any
/// order; events at the same time keep their order).
pub fn figures(events: &[StageEvent], window_ms: i64) -> DeliveryFigures {
    let mut ordered: Vec<&StageEvent> = events.iter().collect();
    ordered.sort_by_key(|e| e.at());
    let mut f = DeliveryFigures::default();
    let mut lead = Vec::new();
    let mut restore = Vec::new();
    // When the current run of failed verifications began.
    let mut failing_since: Option<i64> = None;
    for e in ordered {
        match *e {
            StageEvent::Entered { at, minted_at } => lead.push(seconds(at - minted_at)),
            StageEvent::PromotionFinished { succeeded, .. } => {
                f.promotions += 1;
                f.deployments += u64::from(succeeded);
            }
            StageEvent::Verified { at, succeeded: false } => {
                f.verifications_failed += 1;
                failing_since.get_or_insert(at);
            }
            StageEvent::Verified { at, succeeded: true } => {
                if let Some(since) = failing_since.take() {
                    restore.push(seconds(at - since));
                }
            }
        }
    }
    let days = window_ms as f64 / 86_400_000.0;
    f.deployments_per_day = if days > 0.0 { f.deployments as f64 / days } else { 0.0 };
    f.change_failure_rate = (f.deployments > 0).then(|| f.verifications_failed as f64 / f.deployments as f64);
    f.lead_time = Durations::of(lead);
    f.time_to_restore = Durations::of(restore);
    f.unrestored = failing_since.is_some();
    f
}

/// Milliseconds as seconds; a negative span (clock skew between replicas) counts as zero.
fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn promoted(at: i64, succeeded: bool) -> StageEvent {
        StageEvent::PromotionFinished { at, succeeded }
    }

    fn verified(at: i64, succeeded: bool) -> StageEvent {
        StageEvent::Verified { at, succeeded }
    }

    #[test]
    fn an_empty_history_has_no_rates_and_no_durations() {
        let f = figures(&[], 30 * DAY);
        assert_eq!(f, DeliveryFigures::default());
        assert_eq!(f.change_failure_rate, None);
        assert_eq!(f.lead_time.mean_seconds, None);
    }

    #[test]
    fn lead_time_and_frequency_without_any_verification() {
        let events = [
            StageEvent::Entered {
                at: 10_000,
                minted_at: 4_000,
            },
            promoted(10_000, true),
            StageEvent::Entered {
                at: 50_000,
                minted_at: 40_000,
            },
            promoted(50_000, true),
            promoted(60_000, false),
        ];
        let f = figures(&events, 2 * DAY);
        assert_eq!((f.promotions, f.deployments), (3, 2));
        assert_eq!(f.deployments_per_day, 1.0);
        assert_eq!(f.lead_time.count, 2);
        assert_eq!(f.lead_time.mean_seconds, Some(8.0));
        assert_eq!(f.lead_time.median_seconds, Some(8.0));
        assert_eq!(f.lead_time.max_seconds, Some(10.0));
        // No verification: nothing failed, so the rate is 0 and nothing needs restoring.
        assert_eq!(f.change_failure_rate, Some(0.0));
        assert_eq!(f.time_to_restore.count, 0);
        assert!(!f.unrestored);
    }

    #[test]
    fn time_to_restore_runs_from_the_first_failure_to_the_next_success() {
        let events = [
            promoted(0, true),
            verified(1_000, true),
            promoted(2_000, true),
            verified(3_000, false),
            promoted(4_000, true),
            verified(5_000, false),
            promoted(6_000, true),
            verified(9_000, true),
        ];
        let f = figures(&events, DAY);
        assert_eq!(f.verifications_failed, 2);
        assert_eq!(f.change_failure_rate, Some(0.5));
        assert_eq!(f.time_to_restore.count, 1);
        assert_eq!(f.time_to_restore.mean_seconds, Some(6.0));
        assert!(!f.unrestored);
    }

    #[test]
    fn a_failure_never_restored_is_reported_open_not_measured() {
        let f = figures(&[promoted(0, true), verified(1_000, false)], DAY);
        assert_eq!(f.time_to_restore, Durations::default());
        assert!(f.unrestored);
        assert_eq!(f.change_failure_rate, Some(1.0));
    }

    #[test]
    fn failures_without_a_deployment_have_no_rate_and_order_does_not_matter() {
        let f = figures(&[verified(5_000, true), verified(1_000, false)], 0);
        assert_eq!(f.change_failure_rate, None);
        assert_eq!(f.deployments_per_day, 0.0);
        assert_eq!(f.time_to_restore.mean_seconds, Some(4.0));
    }

    #[test]
    fn a_negative_lead_time_from_clock_skew_counts_as_zero() {
        let f = figures(
            &[StageEvent::Entered {
                at: 1_000,
                minted_at: 3_000,
            }],
            DAY,
        );
        assert_eq!(f.lead_time.max_seconds, Some(0.0));
    }
}
