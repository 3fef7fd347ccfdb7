//! Text for display on a screen or a terminal, where invisible characters would hide
//! what an id contains. Used by the window's panels and by headless output.

use std::borrow::Cow;
use std::fmt::Write as _;

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
}
