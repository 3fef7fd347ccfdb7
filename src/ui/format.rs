//! Text formats shared by the panels.

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::visible::visible_text;

/// Formats a span in whole seconds: `0s`, `45s`, `2m 13s`, `1h 5m 3s`.
pub fn format_age(span: Duration) -> String {
    humantime::format_duration(Duration::from_secs(span.as_secs())).to_string()
}

/// Formats a span for a countdown, rounding up so it reaches `0s` only when due.
pub fn format_countdown(span: Duration) -> String {
    let seconds = span.as_secs() + u64::from(span.subsec_nanos() > 0);
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

/// Formats a setting for its text field: `5m`, `20s`, `1m 30s`, `250ms`.
pub fn format_duration_setting(span: Duration) -> String {
    humantime::format_duration(span)
        .to_string()
        .replace(' ', "")
}

/// Formats a wall-clock time as `HH:MM:SS` in UTC.
pub fn format_clock_time(time: DateTime<Utc>) -> String {
    time.format("%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_drops_fractions() {
        assert_eq!(format_age(Duration::from_millis(133_900)), "2m 13s");
        assert_eq!(format_age(Duration::from_millis(400)), "0s");
    }

    #[test]
    fn countdown_rounds_up() {
        assert_eq!(format_countdown(Duration::from_millis(4_100)), "5s");
        assert_eq!(format_countdown(Duration::ZERO), "0s");
        assert_eq!(format_countdown(Duration::from_secs(300)), "5m");
    }
}
