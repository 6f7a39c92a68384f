//! Go `time.ParseDuration` syntax (`1h30m`, `90s`, `1.5h`, `300ms`), which Kargo and Argo
//! Rollouts use for intervals, soak times and timeouts.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Go duration (use a number with a unit: 90s, 10m, 1h30m)")]
pub struct DurationError(pub String);

/// Parses a Go duration. A bare `0` is allowed, as in Go; negative durations are refused
/// (nothing in barge can wait a negative time).
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(s.to_string());
    let body = s.strip_prefix('+').unwrap_or(s);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() || body.starts_with('-') {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(err)?;
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(err());
        }
        let value: f64 = num.parse().map_err(|_| err())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("5m0s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "1d", "m", "-5m", "1h 30m", "1..5s", "five minutes"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }
}

/// A duration the way people read it: `1h2m`, `4m30s`, `12s` (rounded down to seconds).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m, sec) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// A duration as Go's `time.Duration.String` writes it (`1h0m0s`, `2m30s`, `1.5s`, `300ms`,
/// `0s`): the form Kargo's `metav1.Duration` fields (e.g. Freight's `longestSoak`) carry in
/// JSON and YAML. See <https://pkg.go.dev/time#Duration.String>.
pub fn format_go_duration(d: Duration) -> String {
    const SECOND: u128 = 1_000_000_000;
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < SECOND {
        let (unit, scale) = match ns {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("\u{b5}s", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(ns, scale));
    }
    let secs = ns / SECOND;
    let (h, m) = (secs / 3600, (secs / 60) % 60);
    let s = decimal((secs % 60) * SECOND + ns % SECOND, SECOND);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `n / scale` (scale a power of ten) with the fraction's trailing zeros dropped, as Go's
/// `fmtFrac` does: `1500, 1000` is `1.5`, `2000, 1000` is `2`.
fn decimal(n: u128, scale: u128) -> String {
    let (whole, frac) = (n / scale, n % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(format_duration(Duration::from_secs(12)), "12s");
        assert_eq!(format_duration(Duration::from_secs(240)), "4m");
        assert_eq!(format_duration(Duration::from_secs(270)), "4m30s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h2m");
    }

    #[test]
    fn go_durations_read_like_go_writes_them() {
        // The expected strings are Go's `time.Duration(n).String()` for the same values.
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(format_go_duration(Duration::from_secs(59)), "59s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(format_go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_go_duration(Duration::from_nanos(1500)), "1.5\u{b5}s");
        assert_eq!(format_go_duration(Duration::from_nanos(7)), "7ns");
        assert_eq!(format_go_duration(Duration::from_millis(259_200_500)), "72h0m0.5s");
        for s in ["1h0m0s", "2m30s", "1.5s", "300ms", "72h0m0.5s"] {
            assert_eq!(format_go_duration(parse_go_duration(s).unwrap()), s, "round trip");
        }
    }
}
