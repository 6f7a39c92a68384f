//! Promotion windows (a barge extension; Kargo has them only in its Enterprise edition, with
//! RFC 5545 rules). A window opens at each match of a cron `schedule` and stays open for
//! `duration`. As in Kargo Enterprise, the schedule of a Stage is open when no `Deny` window
//! is active and, if any `Allow` windows select the Stage, at least one of them is active.
//! Windows live in `ProjectConfig.spec.promotionWindows`, each with a `stageSelector`.
//!
//! ```yaml
//! promotionWindows:
//!   - name: weekend-freeze
//!     kind: Deny
//!     schedule: "0 18 * * 5"    # Fridays 18:00 UTC
//!     duration: 62h             # until Monday 08:00
//!     stageSelector: {name: prod}
//! ```

use crate::duration::parse_go_duration;
use crate::model::kargo::{PromotionPolicy, StageSelector};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    Allow,
    Deny,
}

/// One parsed window.
#[derive(Clone, Debug)]
pub struct Window {
    pub name: String,
    pub kind: WindowKind,
    pub cron: croner::Cron,
    pub duration: Duration,
    pub selector: StageSelector,
}

/// Whether a Stage may be promoted into now, and if not, until when.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowStatus {
    pub open: bool,
    /// The windows that close it (Deny windows active, or the Allow windows not active).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed_by: Vec<String>,
    /// When it opens again (Unix milliseconds), when that is known within a year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_open: Option<i64>,
}

/// Parses `ProjectConfig.spec.promotionWindows`; an entry barge cannot read is an error naming
/// it (Kargo Enterprise's `rrule` windows included, with what to write instead).
pub fn parse(values: &[serde_json::Value]) -> Result<Vec<Window>, String> {
    values.iter().enumerate().map(|(i, v)| parse_one(i, v)).collect()
}

fn parse_one(i: usize, v: &serde_json::Value) -> Result<Window, String> {
    let name = v["name"].as_str().map_or_else(|| format!("#{}", i + 1), str::to_string);
    let field = |k: &str| v.get(k).and_then(|x| x.as_str());
    if v.get("rrule").is_some() && v.get("schedule").is_none() {
        return Err(format!(
            "promotion window {name}: `rrule` windows are Kargo Enterprise's; barge reads `schedule` (cron, when the window opens) and `duration` (how long it stays open)"
        ));
    }
    let kind = match field("kind") {
        Some("Allow") => WindowKind::Allow,
        Some("Deny") => WindowKind::Deny,
        other => {
            return Err(format!(
                "promotion window {name}: kind must be Allow or Deny, not {}",
                other.map_or("missing".to_string(), |o| format!("{o:?}"))
            ));
        }
    };
    let schedule = field("schedule")
        .ok_or_else(|| format!("promotion window {name}: `schedule` (a cron expression) is required"))?;
    let cron = crate::schedule::parse_cron(schedule)
        .map_err(|e| format!("promotion window {name}: schedule {schedule:?} is not a cron expression: {e}"))?;
    let duration = field("duration")
        .ok_or_else(|| format!("promotion window {name}: `duration` (a Go duration such as 2h) is required"))
        .and_then(|d| parse_go_duration(d).map_err(|e| format!("promotion window {name}: duration {d:?}: {e}")))?;
    let selector = match v.get("stageSelector") {
        Some(s) => {
            serde_json::from_value(s.clone()).map_err(|e| format!("promotion window {name}: stageSelector: {e}"))?
        }
        None => StageSelector::default(),
    };
    Ok(Window {
        name,
        kind,
        cron,
        duration,
        selector,
    })
}

impl Window {
    /// Whether the window selects this Stage (an empty selector selects every Stage).
    pub fn selects(&self, stage: &str, labels: &BTreeMap<String, String>) -> bool {
        let policy = PromotionPolicy {
            stage_selector: Some(self.selector.clone()),
            ..Default::default()
        };
        crate::plan::policy_matches(&policy, stage, labels)
    }

    /// The occurrence whose span covers `t`, as (start, end), if any.
    fn active_span(&self, t: i64) -> Option<(i64, i64)> {
        let span = self.duration.as_millis() as i64;
        let from = utc(t - span);
        let start = self.cron.find_next_occurrence::<DateTime<Utc>>(&from, false).ok()?;
        let start = start.timestamp_millis();
        (start <= t && t < start + span).then_some((start, start + span))
    }

    fn next_start(&self, t: i64) -> Option<i64> {
        self.cron
            .find_next_occurrence::<DateTime<Utc>>(&utc(t), false)
            .ok()
            .map(|d| d.timestamp_millis())
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn closed_by(windows: &[&Window], t: i64) -> Vec<String> {
    let denied: Vec<String> = windows
        .iter()
        .filter(|w| w.kind == WindowKind::Deny && w.active_span(t).is_some())
        .map(|w| w.name.clone())
        .collect();
    if !denied.is_empty() {
        return denied;
    }
    let allows: Vec<&&Window> = windows.iter().filter(|w| w.kind == WindowKind::Allow).collect();
    if !allows.is_empty() && !allows.iter().any(|w| w.active_span(t).is_some()) {
        return allows.iter().map(|w| w.name.clone()).collect();
    }
    Vec::new()
}

/// The status of the windows that select a Stage, at `now` (Unix milliseconds).
pub fn status(windows: &[&Window], now: i64) -> WindowStatus {
    let closed = closed_by(windows, now);
    if closed.is_empty() {
        return WindowStatus {
            open: true,
            closed_by: closed,
            next_open: None,
        };
    }
    // The schedule can only open when a Deny window ends or an Allow window starts: try those
    // moments in order, for up to a year.
    let horizon = now + 366 * 24 * 3_600_000;
    let mut t = now;
    let mut next_open = None;
    for _ in 0..1_000 {
        let next = windows
            .iter()
            .filter_map(|w| match w.kind {
                WindowKind::Deny => w.active_span(t).map(|(_, end)| end),
                WindowKind::Allow => w.next_start(t),
            })
            .filter(|c| *c > t)
            .min();
        let Some(c) = next.filter(|c| *c <= horizon) else { break };
        if closed_by(windows, c).is_empty() {
            next_open = Some(c);
            break;
        }
        t = c;
    }
    WindowStatus {
        open: false,
        closed_by: closed,
        next_open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    fn windows(yaml: serde_json::Value) -> Vec<Window> {
        parse(yaml.as_array().unwrap()).unwrap()
    }

    #[test]
    fn a_deny_window_closes_for_its_duration_and_says_when_it_opens() {
        let ws = windows(serde_json::json!([
            {"name": "weekend-freeze", "kind": "Deny", "schedule": "0 18 * * 5", "duration": "62h"}
        ]));
        let refs: Vec<&Window> = ws.iter().collect();
        // 2026-11-20 is a Friday.
        assert!(status(&refs, at("2026-11-20T17:59:00Z")).open);
        let s = status(&refs, at("2026-11-21T12:00:00Z"));
        assert_eq!(
            s,
            WindowStatus {
                open: false,
                closed_by: vec!["weekend-freeze".into()],
                next_open: Some(at("2026-11-23T08:00:00Z")),
            }
        );
        assert!(status(&refs, at("2026-11-23T08:00:00Z")).open, "the end is exclusive");
    }

    #[test]
    fn allow_windows_open_only_while_one_is_active() {
        let ws = windows(serde_json::json!([
            {"name": "mornings", "kind": "Allow", "schedule": "0 9 * * 1-5", "duration": "3h"},
            {"name": "hotfix-hour", "kind": "Allow", "schedule": "0 15 * * 1-5", "duration": "1h"}
        ]));
        let refs: Vec<&Window> = ws.iter().collect();
        assert!(status(&refs, at("2026-11-23T10:00:00Z")).open);
        assert!(status(&refs, at("2026-11-23T15:30:00Z")).open);
        let s = status(&refs, at("2026-11-23T13:00:00Z"));
        assert!(!s.open);
        assert_eq!(s.closed_by, ["mornings", "hotfix-hour"]);
        assert_eq!(s.next_open, Some(at("2026-11-23T15:00:00Z")));
        // Saturday: the next opening is Monday morning.
        assert_eq!(
            status(&refs, at("2026-11-28T10:00:00Z")).next_open,
            Some(at("2026-11-30T09:00:00Z"))
        );
    }

    #[test]
    fn deny_wins_over_allow_and_the_next_opening_skips_the_freeze() {
        let ws = windows(serde_json::json!([
            {"name": "daytime", "kind": "Allow", "schedule": "0 8 * * *", "duration": "10h"},
            {"name": "release-freeze", "kind": "Deny", "schedule": "0 0 24 11 *", "duration": "48h"}
        ]));
        let refs: Vec<&Window> = ws.iter().collect();
        let s = status(&refs, at("2026-11-24T09:00:00Z"));
        assert_eq!(s.closed_by, ["release-freeze"]);
        assert_eq!(s.next_open, Some(at("2026-11-26T08:00:00Z")));
    }

    #[test]
    fn selectors_pick_stages() {
        let ws = windows(serde_json::json!([
            {"name": "prod-only", "kind": "Deny", "schedule": "* * * * *", "duration": "1m", "stageSelector": {"name": "glob:prod-*"}},
            {"name": "everywhere", "kind": "Deny", "schedule": "* * * * *", "duration": "1m"}
        ]));
        let none = BTreeMap::new();
        assert!(ws[0].selects("prod-eu", &none));
        assert!(!ws[0].selects("staging", &none));
        assert!(ws[1].selects("staging", &none));
    }

    #[test]
    fn unreadable_windows_say_what_to_write() {
        let rrule = parse(&[serde_json::json!({"name": "w", "kind": "Deny", "rrule": "FREQ=WEEKLY"})]).unwrap_err();
        assert!(
            rrule.contains("Kargo Enterprise") && rrule.contains("schedule"),
            "{rrule}"
        );
        let kind =
            parse(&[serde_json::json!({"name": "w", "kind": "Block", "schedule": "* * * * *", "duration": "1h"})])
                .unwrap_err();
        assert!(kind.contains("Allow or Deny"), "{kind}");
        let cron =
            parse(&[serde_json::json!({"name": "w", "kind": "Deny", "schedule": "every day", "duration": "1h"})])
                .unwrap_err();
        assert!(cron.contains("not a cron expression"), "{cron}");
        let dur = parse(&[serde_json::json!({"name": "w", "kind": "Deny", "schedule": "* * * * *"})]).unwrap_err();
        assert!(dur.contains("duration"), "{dur}");
    }
}
