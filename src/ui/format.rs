//! Text formats shared by the panels.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

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

/// Returns whether a character is invisible or changes the direction of the text
/// around it, so that two different ids could look the same on screen.
fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Returns text for display with each invisible or direction-changing character
/// written as its code point, `\u{202E}`, so that ids which differ only in such
/// characters look different. Exports keep the text as it is.
pub fn visible_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            let _ = write!(escaped, "\\u{{{:04X}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_characters_are_shown_as_code_points() {
        assert_eq!(visible_text("user-42"), "user-42");
        assert!(matches!(visible_text("user-42"), Cow::Borrowed(_)));
        assert_eq!(visible_text("abc\u{202E}fed"), "abc\\u{202E}fed");
        assert_eq!(visible_text("a\u{200B}b\u{FEFF}"), "a\\u{200B}b\\u{FEFF}");
        assert_ne!(visible_text("admin"), visible_text("adm\u{2060}in"));
        // Visible non-Latin text and combining marks are kept.
        assert_eq!(visible_text("كريم-é"), "كريم-é");
    }

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
