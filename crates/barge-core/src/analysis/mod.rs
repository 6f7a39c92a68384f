//! Argo Rollouts' analysis semantics (its `analysis/analysis.go`, `utils/evaluate/evaluate.go`
//! and `docs/features/analysis.md`), as pure functions:
//! condition evaluation (`successCondition` / `failureCondition` over `result`), the
//! per-metric counters and assessment, when the next measurement is due, and the run phase.
//! Providers (Prometheus, web, Job) only produce measured values; everything that decides
//! "passed, failed, inconclusive, error" lives here, so it can be checked against Rollouts'
//! tables without a cluster.

pub mod args;
pub mod jsonpath;

use crate::duration::parse_go_duration;
use crate::model::analysis::{IntOrString, Metric};

/// Phases of measurements, metrics and runs, in Rollouts' order from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    Successful,
    Running,
    Pending,
    Inconclusive,
    Error,
    Failed,
}

impl Phase {
    fn rank(self) -> u8 {
        match self {
            Phase::Successful => 0,
            Phase::Running => 1,
            Phase::Pending => 2,
            Phase::Inconclusive => 3,
            Phase::Error => 4,
            Phase::Failed => 5,
        }
    }

    /// Rollouts' spelling (`Successful`, `Failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Successful => "Successful",
            Phase::Running => "Running",
            Phase::Pending => "Pending",
            Phase::Inconclusive => "Inconclusive",
            Phase::Error => "Error",
            Phase::Failed => "Failed",
        }
    }

    pub fn is_completed(self) -> bool {
        matches!(
            self,
            Phase::Successful | Phase::Inconclusive | Phase::Error | Phase::Failed
        )
    }
}

/// A Stage's verification as barge records it (stored and shown with these names): the
/// analysis's outcome in barge's spelling (`Succeeded`, as promotions), plus `Aborted`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum VerificationPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Error,
    Inconclusive,
    Aborted,
}

impl VerificationPhase {
    const ALL: [VerificationPhase; 7] = [
        VerificationPhase::Pending,
        VerificationPhase::Running,
        VerificationPhase::Succeeded,
        VerificationPhase::Failed,
        VerificationPhase::Error,
        VerificationPhase::Inconclusive,
        VerificationPhase::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerificationPhase::Pending => "Pending",
            VerificationPhase::Running => "Running",
            VerificationPhase::Succeeded => "Succeeded",
            VerificationPhase::Failed => "Failed",
            VerificationPhase::Error => "Error",
            VerificationPhase::Inconclusive => "Inconclusive",
            VerificationPhase::Aborted => "Aborted",
        }
    }

    pub fn parse(s: &str) -> Option<VerificationPhase> {
        VerificationPhase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, VerificationPhase::Pending | VerificationPhase::Running)
    }

    /// An outcome that says the Freight is not good here (what `autoRollback` and the Stage's
    /// waiting reasons act on); an abort says nothing about the Freight.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            VerificationPhase::Failed | VerificationPhase::Error | VerificationPhase::Inconclusive
        )
    }

    /// The outcome of a finished analysis run: one that stopped undecided is an error.
    pub fn of_run(phase: Phase) -> VerificationPhase {
        match phase {
            Phase::Successful => VerificationPhase::Succeeded,
            Phase::Failed => VerificationPhase::Failed,
            Phase::Inconclusive => VerificationPhase::Inconclusive,
            Phase::Error | Phase::Running | Phase::Pending => VerificationPhase::Error,
        }
    }
}

impl std::fmt::Display for VerificationPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a provider measured.
#[derive(Clone, Debug, PartialEq)]
pub enum MeasuredValue {
    Nil,
    Float(f64),
    /// A Prometheus vector (labels dropped) or a flattened matrix.
    Vector(Vec<f64>),
    /// A web provider's JSON (or the `jsonPath` selection of it).
    Json(serde_json::Value),
    String(String),
}

impl MeasuredValue {
    /// The value as Rollouts stores it in a measurement (Go's `%v`): `0.97`, `[0.97 0.5]`,
    /// `NaN`, `+Inf`, JSON as JSON, strings as they are.
    pub fn shown(&self) -> String {
        fn float(f: f64) -> String {
            if f.is_infinite() {
                if f > 0.0 { "+Inf" } else { "-Inf" }.to_string()
            } else {
                f.to_string()
            }
        }
        match self {
            MeasuredValue::Nil => "<nil>".into(),
            MeasuredValue::Float(f) => float(*f),
            MeasuredValue::Vector(xs) => format!("[{}]", xs.iter().map(|x| float(*x)).collect::<Vec<_>>().join(" ")),
            MeasuredValue::Json(j) => j.to_string(),
            MeasuredValue::String(s) => s.clone(),
        }
    }
}

fn to_expr(v: &MeasuredValue) -> expr::Value {
    fn json(v: &serde_json::Value) -> expr::Value {
        use serde_json::Value as J;
        match v {
            J::Null => expr::Value::Nil,
            J::Bool(b) => expr::Value::Bool(*b),
            J::Number(n) => n.as_i64().map_or_else(
                || expr::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                expr::Value::Integer,
            ),
            J::String(s) => expr::Value::String(s.clone()),
            J::Array(a) => expr::Value::Array(a.iter().map(json).collect()),
            J::Object(o) => expr::Value::from(
                o.iter()
                    .map(|(k, v)| (k.clone(), json(v)))
                    .collect::<indexmap::IndexMap<String, expr::Value>>(),
            ),
        }
    }
    match v {
        MeasuredValue::Nil => expr::Value::Nil,
        MeasuredValue::Float(f) => expr::Value::Float(*f),
        MeasuredValue::Vector(xs) => expr::Value::Array(xs.iter().map(|x| expr::Value::Float(*x)).collect()),
        MeasuredValue::Json(j) => json(j),
        MeasuredValue::String(s) => expr::Value::String(s.clone()),
    }
}

/// A measurement's phase from the conditions (Rollouts' `EvaluateResult`), with the error
/// message when evaluation failed. Evaluation errors (an index into an empty vector, a
/// comparison with nil) make the measurement **Error**, not Failed, exactly as in Rollouts.
pub fn evaluate(success: Option<&str>, failure: Option<&str>, result: &MeasuredValue) -> (Phase, Option<String>) {
    let raw = to_expr(result);
    let mut env = expr::Environment::new();
    let is_nil = matches!(raw, expr::Value::Nil);
    env.add_function("isNil", move |_| Ok(expr::Value::Bool(is_nil)));
    let raw_for_default = raw.clone();
    env.add_function("default", move |c| {
        Ok(if matches!(raw_for_default, expr::Value::Nil) {
            c.args.get(1).cloned().unwrap_or(expr::Value::Nil)
        } else {
            raw_for_default.clone()
        })
    });
    env.add_function("isNaN", |c| {
        Ok(expr::Value::Bool(
            matches!(c.args.first(), Some(expr::Value::Float(f)) if f.is_nan()),
        ))
    });
    env.add_function("isInf", |c| {
        Ok(expr::Value::Bool(
            matches!(c.args.first(), Some(expr::Value::Float(f)) if f.is_infinite()),
        ))
    });
    env.add_function("asInt", |c| match c.args.first() {
        Some(expr::Value::Integer(i)) => Ok(expr::Value::Integer(*i)),
        Some(expr::Value::Float(f)) => Ok(expr::Value::Integer(*f as i64)),
        Some(expr::Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(expr::Value::Integer)
            .map_err(|e| expr::Error::ExprError(format!("asInt({s:?}): {e}"))),
        other => Err(expr::Error::ExprError(format!("asInt: cannot convert {other:?}"))),
    });
    env.add_function("asFloat", |c| match c.args.first() {
        Some(expr::Value::Integer(i)) => Ok(expr::Value::Float(*i as f64)),
        Some(expr::Value::Float(f)) => Ok(expr::Value::Float(*f)),
        Some(expr::Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(expr::Value::Float)
            .map_err(|e| expr::Error::ExprError(format!("asFloat({s:?}): {e}"))),
        other => Err(expr::Error::ExprError(format!("asFloat: cannot convert {other:?}"))),
    });
    let mut ctx = expr::Context::default();
    ctx.insert("result", raw.clone());
    let check = |code: &str| -> Result<bool, String> {
        // Compiled by barge (its depth checked: `{{args.x}}` may have put anything here).
        let evaluated = crate::expr::compile(code)
            .and_then(|program| env.run(&program, &ctx).map_err(|e| crate::expr::one_line(&e)));
        match evaluated {
            Ok(expr::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition {code:?} returned {other:?}, not true or false")),
            Err(e) => {
                let empty = matches!(&raw, expr::Value::Nil) || matches!(&raw, expr::Value::Array(a) if a.is_empty());
                Err(if empty {
                    format!("metric result is nil or empty: no data returned from the metric provider ({e})")
                } else {
                    e
                })
            }
        }
    };
    let outcome = match (
        failure.filter(|c| !c.trim().is_empty()),
        success.filter(|c| !c.trim().is_empty()),
    ) {
        (None, None) => Ok(Phase::Successful),
        (None, Some(s)) => check(s).map(|ok| if ok { Phase::Successful } else { Phase::Failed }),
        (Some(f), None) => check(f).map(|bad| if bad { Phase::Failed } else { Phase::Successful }),
        (Some(f), Some(s)) => check(f).and_then(|bad| {
            if bad {
                Ok(Phase::Failed)
            } else {
                check(s).map(|ok| if ok { Phase::Successful } else { Phase::Inconclusive })
            }
        }),
    };
    match outcome {
        Ok(p) => (p, None),
        Err(e) => (Phase::Error, Some(e)),
    }
}

/// A metric's limits with Rollouts' defaults (`{{args}}` already substituted).
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// `None`: unbounded (runs until the run is terminated).
    pub count: Option<u64>,
    pub interval: Option<std::time::Duration>,
    pub initial_delay: Option<std::time::Duration>,
    /// `-1` disables it.
    pub failure_limit: i64,
    pub inconclusive_limit: i64,
    pub consecutive_error_limit: i64,
    /// `0` disables it.
    pub consecutive_success_limit: i64,
}

impl Limits {
    pub fn from_metric(m: &Metric) -> Result<Limits, String> {
        let int = |v: &Option<IntOrString>, default: i64, name: &str| -> Result<i64, String> {
            match v {
                None => Ok(default),
                Some(IntOrString::Int(i)) => Ok(*i),
                Some(IntOrString::String(s)) => s.trim().parse().map_err(|_| format!("{name} {s:?} is not a number")),
            }
        };
        let dur = |v: &Option<String>, name: &str| -> Result<Option<std::time::Duration>, String> {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| parse_go_duration(s).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let interval = dur(&m.interval, "interval")?;
        let raw_count = int(&m.count, 0, "count")?;
        // EffectiveCount: unset or 0 means once without an interval, unbounded with one.
        let count = match (raw_count, interval) {
            (c, _) if c > 0 => Some(c as u64),
            (_, None) => Some(1),
            (_, Some(_)) => None,
        };
        let limits = Limits {
            count,
            interval,
            initial_delay: dur(&m.initial_delay, "initialDelay")?,
            failure_limit: int(&m.failure_limit, 0, "failureLimit")?,
            inconclusive_limit: int(&m.inconclusive_limit, 0, "inconclusiveLimit")?,
            consecutive_error_limit: int(&m.consecutive_error_limit, 4, "consecutiveErrorLimit")?,
            consecutive_success_limit: int(&m.consecutive_success_limit, 0, "consecutiveSuccessLimit")?,
        };
        if limits.failure_limit < -1 {
            return Err("failureLimit must be -1 or more".into());
        }
        if limits.failure_limit == -1 && limits.consecutive_success_limit == 0 {
            return Err("failureLimit -1 needs consecutiveSuccessLimit > 0".into());
        }
        if raw_count > 1 && interval.is_none() {
            return Err("a count above 1 needs an interval".into());
        }
        Ok(limits)
    }
}

/// Counters of one metric (Rollouts' `MetricResult`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricState {
    pub count: u64,
    pub successful: u64,
    pub failed: u64,
    pub inconclusive: u64,
    pub error: u64,
    pub consecutive_error: u64,
    pub consecutive_success: u64,
    /// A completed phase is sticky.
    pub phase: Option<Phase>,
    /// Unix milliseconds the last measurement finished (for `interval`).
    pub last_finished_at: Option<i64>,
    pub last_phase: Option<Phase>,
    pub message: String,
}

/// Rollouts retries an erroring measurement after this long.
pub const ERROR_RETRY_MS: i64 = 10_000;

impl MetricState {
    /// Counts a completed measurement. Errors do not consume `count`.
    pub fn record(&mut self, phase: Phase, finished_at: i64) {
        match phase {
            Phase::Successful => {
                self.count += 1;
                self.successful += 1;
                self.consecutive_error = 0;
                self.consecutive_success += 1;
            }
            Phase::Failed | Phase::Inconclusive => {
                self.count += 1;
                if phase == Phase::Failed {
                    self.failed += 1;
                } else {
                    self.inconclusive += 1;
                }
                self.consecutive_error = 0;
                self.consecutive_success = 0;
            }
            Phase::Error => {
                self.error += 1;
                self.consecutive_error += 1;
                self.consecutive_success = 0;
            }
            Phase::Running | Phase::Pending => return,
        }
        self.last_finished_at = Some(finished_at);
        self.last_phase = Some(phase);
    }

    /// The metric's phase (`assessMetricStatus`).
    pub fn assess(&mut self, limits: &Limits, terminating: bool) -> Phase {
        if let Some(p) = self.phase.filter(|p| p.is_completed()) {
            return p;
        }
        if self.last_finished_at.is_none() {
            return if terminating {
                self.complete(Phase::Successful, "Run terminated before a measurement")
            } else {
                Phase::Pending
            };
        }
        // Later checks win: Error > Inconclusive > Failed.
        let mut verdict = None;
        if limits.failure_limit >= 0 && self.failed as i64 > limits.failure_limit {
            verdict = Some((
                Phase::Failed,
                format!("failed ({}) > failureLimit ({})", self.failed, limits.failure_limit),
            ));
        }
        if self.inconclusive as i64 > limits.inconclusive_limit {
            verdict = Some((
                Phase::Inconclusive,
                format!(
                    "inconclusive ({}) > inconclusiveLimit ({})",
                    self.inconclusive, limits.inconclusive_limit
                ),
            ));
        }
        if self.consecutive_error as i64 > limits.consecutive_error_limit {
            verdict = Some((
                Phase::Error,
                format!(
                    "consecutiveErrors ({}) > consecutiveErrorLimit ({})",
                    self.consecutive_error, limits.consecutive_error_limit
                ),
            ));
        }
        if let Some((p, why)) = verdict {
            return self.complete(p, &why);
        }
        let success_limit = limits.consecutive_success_limit > 0;
        if success_limit && self.consecutive_success as i64 >= limits.consecutive_success_limit {
            return self.complete(Phase::Successful, "consecutiveSuccessLimit reached");
        }
        if limits.count.is_some_and(|c| self.count >= c) {
            return match (limits.failure_limit >= 0, success_limit) {
                (true, true) => self.complete(
                    Phase::Inconclusive,
                    "count reached without meeting consecutiveSuccessLimit",
                ),
                (false, true) => self.complete(Phase::Failed, "count reached without meeting consecutiveSuccessLimit"),
                _ => self.complete(Phase::Successful, "count reached"),
            };
        }
        if terminating {
            return self.complete(Phase::Successful, "Run terminated");
        }
        Phase::Running
    }

    fn complete(&mut self, phase: Phase, why: &str) -> Phase {
        self.phase = Some(phase);
        self.message = format!("Metric assessed {phase:?} due to {why}");
        phase
    }

    /// When the next measurement is due (unix ms): the first after `initialDelay` from the run's
    /// start, a retry 10 s after an error, otherwise `interval` after the previous one finished.
    pub fn next_due(&self, limits: &Limits, run_started_at: i64) -> Option<i64> {
        if self.phase.is_some_and(|p| p.is_completed()) {
            return None;
        }
        let ms = |d: std::time::Duration| d.as_millis() as i64;
        match (self.last_finished_at, self.last_phase) {
            (None, _) => Some(run_started_at + limits.initial_delay.map_or(0, ms)),
            (Some(t), Some(Phase::Error)) => Some(t + ERROR_RETRY_MS),
            (Some(t), _) => limits.interval.map(|i| t + ms(i)),
        }
    }
}

/// The run's phase: the worst phase of its non-dry-run metrics (all dry-run: Successful).
pub fn run_phase(metrics: &[(Phase, bool)]) -> Phase {
    metrics
        .iter()
        .filter(|(_, dry)| !dry)
        .map(|(p, _)| *p)
        .max_by_key(|p| p.rank())
        .unwrap_or(Phase::Successful)
}

/// Whether a run stops taking measurements: any non-dry-run metric Failed, Error or
/// Inconclusive.
pub fn terminating(metrics: &[(Phase, bool)]) -> bool {
    metrics
        .iter()
        .any(|(p, dry)| !dry && matches!(p, Phase::Failed | Phase::Error | Phase::Inconclusive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use MeasuredValue::*;

    /// The names are the stored and wire text: as_str, parse and serde agree on each.
    #[test]
    fn verification_phases_keep_their_names() {
        for phase in VerificationPhase::ALL {
            assert_eq!(serde_json::to_value(phase).unwrap(), phase.as_str());
            assert_eq!(VerificationPhase::parse(phase.as_str()), Some(phase));
            assert_eq!(phase.to_string(), phase.as_str());
        }
        assert_eq!(
            VerificationPhase::parse("Successful"),
            None,
            "Rollouts' spelling is not barge's"
        );
        assert_eq!(
            VerificationPhase::of_run(Phase::Successful),
            VerificationPhase::Succeeded
        );
        assert_eq!(VerificationPhase::of_run(Phase::Running), VerificationPhase::Error);
    }

    fn limits(yaml: &str) -> Limits {
        let m: Metric = yaml_serde::from_str(yaml).unwrap();
        Limits::from_metric(&m).unwrap()
    }

    #[test]
    fn a_deep_condition_is_an_error_not_a_stack_overflow() {
        // `{{args.threshold}}` is substituted before evaluation, so an argument can make a
        // condition of any depth.
        let threshold = format!("{}0.5{}", "(".repeat(5_000), ")".repeat(5_000));
        let (phase, message) = evaluate(Some(&format!("result > {threshold}")), None, &Float(0.9));
        assert_eq!(phase, Phase::Error);
        assert!(message.unwrap_or_default().contains("nests more than"));
    }

    #[test]
    fn condition_truth_table() {
        let v = Float(0.99);
        assert_eq!(evaluate(None, None, &v).0, Phase::Successful);
        assert_eq!(evaluate(Some("result >= 0.95"), None, &v).0, Phase::Successful);
        assert_eq!(evaluate(Some("result >= 0.995"), None, &v).0, Phase::Failed);
        assert_eq!(evaluate(None, Some("result < 0.95"), &v).0, Phase::Successful);
        assert_eq!(evaluate(None, Some("result > 0.9"), &v).0, Phase::Failed);
        // Both: the failure condition wins; neither true is Inconclusive.
        assert_eq!(
            evaluate(Some("result > 0.5"), Some("result > 0.9"), &v).0,
            Phase::Failed
        );
        assert_eq!(
            evaluate(Some("result > 0.995"), Some("result < 0.5"), &v).0,
            Phase::Inconclusive
        );
        assert_eq!(
            evaluate(Some("result"), None, &v).0,
            Phase::Error,
            "a non-boolean is an error"
        );
    }

    #[test]
    fn the_empty_vector_pitfall_and_its_guards() {
        let empty = Vector(vec![]);
        let (p, msg) = evaluate(Some("result[0] >= 0.95"), None, &empty);
        assert_eq!(p, Phase::Error);
        assert!(msg.unwrap().contains("no data returned from the metric provider"));
        assert_eq!(
            evaluate(Some("len(result) == 0 || result[0] >= 0.95"), None, &empty).0,
            Phase::Successful
        );
        assert_eq!(
            evaluate(Some("len(result) > 0 && result[0] >= 0.95"), None, &empty).0,
            Phase::Failed
        );
        assert_eq!(
            evaluate(Some("result[0] >= 0.95"), None, &Vector(vec![0.99])).0,
            Phase::Successful
        );
        assert_eq!(
            evaluate(Some("default(result, 0) < 0.05"), None, &Nil).0,
            Phase::Successful
        );
        assert_eq!(evaluate(Some("isNil(result)"), None, &Nil).0, Phase::Successful);
    }

    #[test]
    fn nan_and_infinity() {
        let nan = Float(f64::NAN);
        assert_eq!(evaluate(Some("result >= 0.95"), None, &nan).0, Phase::Failed);
        assert_eq!(
            evaluate(Some("result >= 0.95"), Some("result < 0.95"), &nan).0,
            Phase::Inconclusive
        );
        assert_eq!(
            evaluate(Some("isNaN(result) || result >= 0.95"), None, &nan).0,
            Phase::Successful
        );
        assert_eq!(
            evaluate(Some("result >= 0.95"), None, &Float(f64::INFINITY)).0,
            Phase::Successful
        );
        assert_eq!(
            evaluate(Some("!isInf(result)"), None, &Float(f64::INFINITY)).0,
            Phase::Failed
        );
    }

    #[test]
    fn json_results_and_conversions() {
        let body = Json(serde_json::json!({"ok": true, "successPercent": 0.97, "count": "12"}));
        assert_eq!(
            evaluate(Some("result.ok && result.successPercent >= 0.9"), None, &body).0,
            Phase::Successful
        );
        assert_eq!(
            evaluate(Some("asInt(result.count) > 10"), None, &body).0,
            Phase::Successful
        );
        assert_eq!(evaluate(Some("asFloat('0.5') < 1"), None, &body).0, Phase::Successful);
        assert_eq!(evaluate(Some("asInt('x') > 1"), None, &body).0, Phase::Error);
    }

    #[test]
    fn three_sub_threshold_reads_with_failure_limit_2_fail() {
        let l = limits("name: m\ninterval: 1m\ncount: 5\nfailureLimit: 2\nprovider: {prometheus: {}}\n");
        let mut s = MetricState::default();
        for (i, phase) in [Phase::Failed, Phase::Successful, Phase::Failed]
            .into_iter()
            .enumerate()
        {
            s.record(phase, i as i64);
            assert_eq!(s.assess(&l, false), Phase::Running);
        }
        s.record(Phase::Failed, 3);
        assert_eq!(s.assess(&l, false), Phase::Failed, "failed (3) > failureLimit (2)");
        assert!(s.message.contains("failed (3) > failureLimit (2)"), "{}", s.message);
        s.record(Phase::Successful, 4);
        assert_eq!(s.assess(&l, false), Phase::Failed, "completed phases are sticky");
    }

    #[test]
    fn errors_do_not_count_and_the_fifth_consecutive_one_ends_the_metric() {
        let l = limits("name: m\ninterval: 10s\ncount: 3\nprovider: {prometheus: {}}\n");
        assert_eq!(l.consecutive_error_limit, 4);
        let mut s = MetricState::default();
        for i in 0..4 {
            s.record(Phase::Error, i);
            assert_eq!(s.assess(&l, false), Phase::Running);
            assert_eq!(s.count, 0, "errors never consume count");
            assert_eq!(
                s.next_due(&l, 0),
                Some(i + ERROR_RETRY_MS),
                "an error is retried after 10 s"
            );
        }
        s.record(Phase::Error, 5);
        assert_eq!(s.assess(&l, false), Phase::Error);
        // A success in between resets the streak.
        let mut s = MetricState::default();
        for p in [
            Phase::Error,
            Phase::Error,
            Phase::Error,
            Phase::Error,
            Phase::Successful,
            Phase::Error,
        ] {
            s.record(p, 0);
        }
        assert_eq!(s.assess(&l, false), Phase::Running);
    }

    #[test]
    fn count_interval_initial_delay_and_limits() {
        let once = limits("name: m\nprovider: {web: {}}\n");
        assert_eq!(once.count, Some(1));
        let mut s = MetricState::default();
        assert_eq!(s.assess(&once, false), Phase::Pending);
        s.record(Phase::Successful, 7);
        assert_eq!(s.assess(&once, false), Phase::Successful);

        let delayed = limits("name: m\ninitialDelay: 1m\ninterval: 30s\ncount: 3\nprovider: {web: {}}\n");
        let mut s = MetricState::default();
        assert_eq!(
            s.next_due(&delayed, 1_000),
            Some(61_000),
            "the first measurement waits initialDelay"
        );
        s.record(Phase::Successful, 62_500);
        assert_eq!(
            s.next_due(&delayed, 1_000),
            Some(92_500),
            "interval counts from the previous finish"
        );

        let unbounded = limits("name: m\ninterval: 30s\nprovider: {web: {}}\n");
        assert_eq!(unbounded.count, None);
        let mut s = MetricState::default();
        s.record(Phase::Successful, 0);
        assert_eq!(s.assess(&unbounded, false), Phase::Running);
        assert_eq!(
            s.assess(&unbounded, true),
            Phase::Successful,
            "terminated runs count as successful"
        );

        // Precedence when several limits trip: Error > Inconclusive > Failed.
        let l = limits("name: m\ninterval: 1s\ncount: 9\nprovider: {web: {}}\n");
        let mut s = MetricState {
            failed: 1,
            inconclusive: 1,
            consecutive_error: 5,
            last_finished_at: Some(0),
            ..Default::default()
        };
        assert_eq!(s.assess(&l, false), Phase::Error);

        let streak = limits(
            "name: m\ninterval: 1s\ncount: 4\nfailureLimit: -1\nconsecutiveSuccessLimit: 2\nprovider: {web: {}}\n",
        );
        let mut s = MetricState::default();
        for p in [Phase::Failed, Phase::Successful, Phase::Successful] {
            s.record(p, 0);
        }
        assert_eq!(s.assess(&streak, false), Phase::Successful, "two successes in a row");
        let mut s = MetricState::default();
        for p in [Phase::Successful, Phase::Failed, Phase::Successful, Phase::Failed] {
            s.record(p, 0);
        }
        assert_eq!(
            s.assess(&streak, false),
            Phase::Failed,
            "count reached without the streak (failureLimit disabled)"
        );

        assert!(
            Limits::from_metric(&yaml_serde::from_str("name: m\ncount: 3\nprovider: {web: {}}\n").unwrap()).is_err(),
            "count > 1 needs an interval"
        );
        assert!(
            Limits::from_metric(&yaml_serde::from_str("name: m\nfailureLimit: -1\nprovider: {web: {}}\n").unwrap())
                .is_err()
        );
    }

    #[test]
    fn run_phase_is_the_worst_non_dry_run_metric() {
        use Phase::*;
        assert_eq!(run_phase(&[(Successful, false), (Running, false)]), Running);
        assert_eq!(
            run_phase(&[(Inconclusive, false), (Error, false), (Pending, false)]),
            Error
        );
        assert_eq!(run_phase(&[(Failed, false), (Error, false)]), Failed);
        assert_eq!(
            run_phase(&[(Successful, false), (Failed, true)]),
            Successful,
            "dry-run metrics do not count"
        );
        assert_eq!(run_phase(&[(Failed, true)]), Successful, "all dry-run: Successful");
        assert!(terminating(&[(Running, false), (Inconclusive, false)]));
        assert!(!terminating(&[(Failed, true), (Running, false)]));
    }
}
