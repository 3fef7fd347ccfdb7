//! Choosing few fallback faces: at most one per script, preferring faces that look like
//! egui's built-in sans-serif font and cover several missing scripts at once.

use std::cmp::Reverse;
use std::path::Path;

use super::scan::Face;

/// Families whose glyphs are placeholder boxes for whole Unicode blocks, not letters
/// (macOS ships one).
const PLACEHOLDER_FAMILIES: &[&str] = &["LastResort", ".LastResort"];

/// Families that cover most of Unicode with low-resolution glyphs: chosen only when no
/// other face covers a script.
const LAST_CHOICE_FAMILIES: &[&str] = &["Unifont", "Unifont Upper", "Unifont CSUR"];

/// Returns indices into `faces` of the chosen fallbacks. Scripts are taken in the order
/// of `needed`, and a script that an earlier choice covers gets no face of its own.
/// `cjk_region` is the suffix of the preferred CJK family, such as `SC` in
/// `Noto Sans CJK SC`.
pub(super) fn choose(faces: &[Face], needed: &[usize], cjk_region: &str) -> Vec<usize> {
    let mut chosen = Vec::new();
    let mut uncovered = needed.to_vec();
    for script in needed {
        if !uncovered.contains(script) {
            continue;
        }
        let best = faces
            .iter()
            .enumerate()
            .filter(|(_, face)| face.scripts.contains(script))
            .filter(|(_, face)| !PLACEHOLDER_FAMILIES.contains(&face.family.as_str()))
            .min_by_key(|(_, face)| rank(face, &uncovered, cjk_region));
        if let Some((index, face)) = best {
            uncovered.retain(|script| !face.scripts.contains(script));
            chosen.push(index);
        }
    }
    chosen
}

/// A face's place in the order of preference, best first: derived `Ord` compares the
/// fields in turn, and the last three keep the choice independent of folder order.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Rank<'a> {
    last_choice: bool,
    slanted: bool,
    narrow_or_wide: bool,
    /// Distance from the regular weight, 400.
    weight_distance: u16,
    style: u8,
    monospaced: bool,
    outside_cjk_region: bool,
    /// Scripts the face covers that no chosen face covers yet.
    newly_covered: Reverse<usize>,
    family: &'a str,
    path: &'a Path,
    index: u32,
}

fn rank<'a>(face: &'a Face, uncovered: &[usize], cjk_region: &str) -> Rank<'a> {
    let newly_covered = face
        .scripts
        .iter()
        .filter(|script| uncovered.contains(script))
        .count();
    let in_cjk_region = face
        .family
        .strip_suffix(cjk_region)
        .is_some_and(|rest| rest.ends_with(' '));
    Rank {
        last_choice: LAST_CHOICE_FAMILIES.contains(&face.family.as_str()),
        slanted: !face.upright,
        narrow_or_wide: !face.normal_width,
        weight_distance: face.weight.abs_diff(400),
        style: style_rank(&face.family),
        monospaced: face.monospaced,
        outside_cjk_region: !in_cjk_region,
        newly_covered: Reverse(newly_covered),
        family: &face.family,
        path: &face.path,
        index: face.index,
    }
}

/// Returns 0 for a sans-serif family name, 2 for a serif one and 1 for a name that says
/// neither.
fn style_rank(family: &str) -> u8 {
    if family.contains("Sans") {
        0
    } else if family.contains("Serif") {
        2
    } else {
        1
    }
}

/// Returns the CJK region suffix of Noto CJK family names for a POSIX locale such as
/// `ja_JP.UTF-8`: `JP`, `KR`, `TC` (Taiwan), `HK` (Hong Kong, Macau) or `SC`
/// (Simplified Chinese, also for every other locale).
pub(super) fn cjk_region(locale: &str) -> &'static str {
    let locale = locale.to_ascii_lowercase();
    if locale.starts_with("ja") {
        "JP"
    } else if locale.starts_with("ko") {
        "KR"
    } else if locale.starts_with("zh") && (locale.contains("_tw") || locale.contains("hant")) {
        "TC"
    } else if locale.starts_with("zh") && (locale.contains("_hk") || locale.contains("_mo")) {
        "HK"
    } else {
        "SC"
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;

    const ARABIC: usize = 0;
    const HEBREW: usize = 1;
    const HAN: usize = 2;

    fn face(family: &str, scripts: &[usize]) -> Face {
        Face {
            path: PathBuf::from(format!("/fonts/{family}.ttf")),
            index: 0,
            family: family.to_owned(),
            weight: 400,
            upright: true,
            normal_width: true,
            monospaced: false,
            scripts: scripts.to_vec(),
            data: Arc::new(Vec::<u8>::new()),
        }
    }

    fn chosen_families(faces: &[Face], needed: &[usize]) -> Vec<String> {
        choose(faces, needed, "SC")
            .into_iter()
            .map(|index| faces[index].family.clone())
            .collect()
    }

    #[test]
    fn one_face_for_scripts_it_shares() {
        let faces = [
            face("Noto Sans Arabic", &[ARABIC]),
            face("Noto Sans Hebrew", &[HEBREW]),
            // Last by name, so only its coverage puts it first.
            face("Wide Sans", &[ARABIC, HEBREW]),
        ];
        assert_eq!(chosen_families(&faces, &[ARABIC, HEBREW]), ["Wide Sans"]);
    }

    #[test]
    fn regular_upright_sans_wins() {
        let bold = Face {
            weight: 700,
            ..face("Bold Sans", &[ARABIC, HEBREW])
        };
        let italic = Face {
            upright: false,
            ..face("Italic Sans", &[ARABIC, HEBREW])
        };
        let condensed = Face {
            normal_width: false,
            ..face("Condensed Sans", &[ARABIC, HEBREW])
        };
        let faces = [
            bold,
            italic,
            condensed,
            face("Noto Serif Arabic", &[ARABIC]),
            face("Noto Naskh Arabic", &[ARABIC]),
            face("Noto Sans Arabic", &[ARABIC]),
        ];
        assert_eq!(chosen_families(&faces, &[ARABIC]), ["Noto Sans Arabic"]);
    }

    #[test]
    fn placeholder_fonts_are_never_chosen() {
        let faces = [
            face("LastResort", &[ARABIC, HEBREW, HAN]),
            face("Unifont", &[ARABIC, HEBREW, HAN]),
            face("Noto Sans Hebrew", &[HEBREW]),
        ];
        assert_eq!(
            chosen_families(&faces, &[ARABIC, HEBREW, HAN]),
            ["Unifont"],
            "Unifont covers all three and LastResort is excluded"
        );
        assert_eq!(
            chosen_families(&faces[..1], &[ARABIC]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn low_resolution_font_comes_last() {
        let faces = [
            face("Unifont", &[ARABIC, HEBREW, HAN]),
            face("Noto Sans Hebrew", &[HEBREW]),
        ];
        assert_eq!(
            chosen_families(&faces, &[HEBREW, HAN]),
            ["Noto Sans Hebrew", "Unifont"]
        );
    }

    #[test]
    fn cjk_face_follows_region() {
        let faces = [
            face("Noto Sans CJK JP", &[HAN]),
            face("Noto Sans CJK KR", &[HAN]),
            face("Noto Sans CJK SC", &[HAN]),
            face("Noto Sans CJK TC", &[HAN]),
        ];
        for (locale, family) in [
            ("ja_JP.UTF-8", "Noto Sans CJK JP"),
            ("ko_KR.UTF-8", "Noto Sans CJK KR"),
            ("zh_TW.UTF-8", "Noto Sans CJK TC"),
            ("zh_CN.UTF-8", "Noto Sans CJK SC"),
            ("de_DE.UTF-8", "Noto Sans CJK SC"),
        ] {
            let chosen = choose(&faces, &[HAN], cjk_region(locale));
            assert_eq!(chosen.len(), 1, "{locale}");
            assert_eq!(faces[chosen[0]].family, family, "{locale}");
        }
    }

    #[test]
    fn script_without_face_is_left_out() {
        let faces = [face("Noto Sans Hebrew", &[HEBREW])];
        assert_eq!(
            chosen_families(&faces, &[ARABIC, HEBREW, HAN]),
            ["Noto Sans Hebrew"]
        );
    }
}
