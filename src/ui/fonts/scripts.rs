//! The scripts that the window looks for system fonts for, and the Debian packages
//! that provide fonts for them.

use std::collections::BTreeMap;

/// A writing system that session ids may use.
#[derive(Debug)]
pub struct Script {
    /// The Unicode script name.
    pub name: &'static str,
    /// Common letters of the script. A font counts as covering the script only if its
    /// character map has all of them.
    pub samples: &'static str,
    /// The Debian package with a font for the script.
    pub debian_package: &'static str,
}

const NOTO_CORE: &str = "fonts-noto-core";
const NOTO_CJK: &str = "fonts-noto-cjk";

const fn script(name: &'static str, samples: &'static str, debian_package: &'static str) -> Script {
    Script {
        name,
        samples,
        debian_package,
    }
}

/// Scripts in current use that egui's built-in fonts (Latin, Greek and Cyrillic) lack.
/// At most one fallback font is chosen per script, so this table bounds how many
/// system fonts the window loads.
pub const SCRIPTS: &[Script] = &[
    script("Arabic", "ابعم", NOTO_CORE),
    script("Hebrew", "אבש", NOTO_CORE),
    script("Syriac", "ܐܒ", NOTO_CORE),
    script("Thaana", "ހށ", NOTO_CORE),
    script("Nko", "ߊߋ", NOTO_CORE),
    script("Devanagari", "कखअ", NOTO_CORE),
    script("Bengali", "কখঅ", NOTO_CORE),
    script("Gurmukhi", "ਕਖ", NOTO_CORE),
    script("Gujarati", "કખ", NOTO_CORE),
    script("Oriya", "କଖ", NOTO_CORE),
    script("Tamil", "கங", NOTO_CORE),
    script("Telugu", "కఖ", NOTO_CORE),
    script("Kannada", "ಕಖ", NOTO_CORE),
    script("Malayalam", "കഖ", NOTO_CORE),
    script("Sinhala", "කඛ", NOTO_CORE),
    script("Thai", "กข", NOTO_CORE),
    script("Lao", "ກຂ", NOTO_CORE),
    script("Tibetan", "ཀཁ", NOTO_CORE),
    script("Myanmar", "ကခ", NOTO_CORE),
    script("Khmer", "កខ", NOTO_CORE),
    script("Georgian", "აბ", NOTO_CORE),
    script("Armenian", "Աա", NOTO_CORE),
    script("Ethiopic", "አበ", NOTO_CORE),
    script("Cherokee", "ᎠᎡ", NOTO_CORE),
    script("Canadian Aboriginal", "ᐁᐃ", NOTO_CORE),
    script("Mongolian", "ᠠᠡ", NOTO_CORE),
    script("Tifinagh", "ⴰⴱ", NOTO_CORE),
    script("Yi", "ꀀꀁ", NOTO_CORE),
    script("Han", "中文字", NOTO_CJK),
    script("Hiragana", "あい", NOTO_CJK),
    script("Katakana", "アイ", NOTO_CJK),
    script("Hangul", "한글", NOTO_CJK),
];

/// Formats the log line for scripts that no font covers: which scripts show as boxes,
/// and which Debian packages add fonts for them.
pub fn missing_scripts_message(missing: &[&Script]) -> String {
    let names: Vec<&str> = missing.iter().map(|script| script.name).collect();
    let mut by_package: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for script in missing {
        by_package
            .entry(script.debian_package)
            .or_default()
            .push(script.name);
    }
    let packages: Vec<String> = by_package
        .iter()
        .map(|(package, names)| format!("{package} for {}", names.join(", ")))
        .collect();
    format!(
        "no font covers {}, so text in these scripts shows as boxes; on Debian, \
         install {}",
        names.join(", "),
        packages.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_message_names_scripts_and_packages() {
        let missing = [&SCRIPTS[0], &SCRIPTS[5], &SCRIPTS[28]];
        let message = missing_scripts_message(&missing);
        assert!(message.contains("Arabic, Devanagari, Han"), "{message}");
        assert!(
            message.contains("fonts-noto-cjk for Han; fonts-noto-core for Arabic, Devanagari"),
            "{message}"
        );
    }

    #[test]
    fn script_names_are_unique() {
        for (i, script) in SCRIPTS.iter().enumerate() {
            assert!(!script.samples.is_empty(), "{} has no samples", script.name);
            let repeated = SCRIPTS[i + 1..]
                .iter()
                .any(|other| other.name == script.name);
            assert!(!repeated, "{} is listed twice", script.name);
        }
    }
}
