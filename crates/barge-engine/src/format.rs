//! Times and durations in the forms Kargo's resources use (metav1.Time, metav1.Duration).

/// A Unix-millisecond time as Kubernetes writes `metav1.Time` in Kargo's resources: RFC 3339
/// in UTC, to the second (`2024-05-01T12:00:00Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A span of Unix milliseconds as Kubernetes writes `metav1.Duration`: Go's duration form
/// (`1h0m0s`).
pub fn go_duration(ms: i64) -> String {
    barge_core::duration::format_go_duration(std::time::Duration::from_millis(ms.max(0) as u64))
}
