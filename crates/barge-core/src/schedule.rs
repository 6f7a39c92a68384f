//! When a Warehouse is next due for discovery: every `interval` (Kargo's field, default 5m)
//! after its last pass, or at the next match of barge's `schedule` (a cron expression, POSIX
//! semantics via croner), plus a jitter fixed per Warehouse so a hundred Warehouses with the
//! same interval do not hit a registry in the same second.

use crate::duration::parse_go_duration;
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// Parses a cron expression (5 or 6 fields; `@daily` style nicknames).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    expr.parse::<croner::Cron>().map_err(|e| e.to_string())
}

/// A Warehouse's polling rule.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub interval: Duration,
    pub cron: Option<croner::Cron>,
    /// Up to a tenth of the interval (at most 30 s), the same for a Warehouse every time.
    pub jitter: Duration,
}

impl Schedule {
    /// From the Warehouse's `interval` and `schedule`; `key` (project/name) seeds the jitter.
    pub fn new(interval: Option<&str>, cron: Option<&str>, key: &str) -> Result<Schedule, String> {
        let interval = match interval.filter(|i| !i.is_empty()) {
            Some(i) => parse_go_duration(i).map_err(|e| e.to_string())?,
            None => DEFAULT_INTERVAL,
        };
        let cron = cron.filter(|c| !c.trim().is_empty()).map(parse_cron).transpose()?;
        let span = (interval / 10).min(Duration::from_secs(30)).as_millis() as u64;
        let seed = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        let jitter = Duration::from_millis(if span == 0 { 0 } else { seed % span });
        Ok(Schedule { interval, cron, jitter })
    }

    /// The next due time (unix milliseconds) after a pass at `last` (`None`: never ran: due now).
    pub fn next_due(&self, last: Option<i64>, now: i64) -> i64 {
        let Some(last) = last else { return now };
        let jitter = self.jitter.as_millis() as i64;
        match &self.cron {
            Some(cron) => {
                let after = Utc
                    .timestamp_millis_opt(last)
                    .single()
                    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
                match cron.find_next_occurrence::<DateTime<Utc>>(&after, false) {
                    Ok(next) => next.timestamp_millis() + jitter,
                    // An expression that never matches again: fall back to the interval.
                    Err(_) => last + self.interval.as_millis() as i64 + jitter,
                }
            }
            None => last + self.interval.as_millis() as i64 + jitter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn intervals_with_a_stable_jitter() {
        let s = Schedule::new(Some("5m"), None, "demo/guestbook").unwrap();
        assert!(s.jitter < Duration::from_secs(30));
        let last = at("2026-01-01T00:00:00Z");
        let due = s.next_due(Some(last), last);
        assert_eq!(due - last, 300_000 + s.jitter.as_millis() as i64);
        assert_eq!(
            Schedule::new(Some("5m"), None, "demo/guestbook").unwrap().jitter,
            s.jitter,
            "same key, same jitter"
        );
        assert_eq!(s.next_due(None, 42), 42, "never ran: due now");
        assert_eq!(Schedule::new(None, None, "k").unwrap().interval, DEFAULT_INTERVAL);
        assert!(Schedule::new(Some("5 minutes"), None, "k").is_err());
    }

    #[test]
    fn cron_schedules() {
        let s = Schedule::new(None, Some("0 9 * * 1"), "demo/w").unwrap();
        // 2026-01-01 is a Thursday: the next Monday 09:00 is 2026-01-05.
        let due = s.next_due(Some(at("2026-01-01T12:00:00Z")), 0);
        assert_eq!(due - s.jitter.as_millis() as i64, at("2026-01-05T09:00:00Z"));
        let every5 = Schedule::new(None, Some("*/5 * * * *"), "k").unwrap();
        assert_eq!(
            every5.next_due(Some(at("2026-01-01T00:02:00Z")), 0) - every5.jitter.as_millis() as i64,
            at("2026-01-01T00:05:00Z")
        );
        assert!(parse_cron("not a cron").is_err());
        assert!(parse_cron("61 * * * *").is_err());
    }
}
