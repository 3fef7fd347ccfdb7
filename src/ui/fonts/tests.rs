//! Font search tests on temporary folders of egui's bundled font files. NotoEmoji-Regular
//! is bundled with egui but not among its default fonts, so it serves as a system font
//! that covers a script the built-in fonts lack.

use std::fs;
use std::path::Path;

use egui::epaint::text::{Fonts, TextOptions};
use egui::{FontDefinitions, FontFamily, FontId};
use epaint_default_fonts::{HACK_REGULAR, NOTO_EMOJI_REGULAR};

use super::*;

static TEST_SCRIPTS: &[Script] = &[
    Script {
        name: "Emoji",
        samples: "😀🚀",
        debian_package: "fonts-noto-color-emoji",
    },
    // Covered by the built-in fonts, so it never needs a fallback.
    Script {
        name: "Latin",
        samples: "ab",
        debian_package: "fonts-dejavu-core",
    },
];

fn search(folder: &Path) -> FallbackFonts {
    FallbackFonts::search_folders(&[folder], TEST_SCRIPTS)
}

fn missing_names(found: &FallbackFonts) -> Vec<&str> {
    found.missing().iter().map(|script| script.name).collect()
}

/// Joins fonts into a TrueType collection: a `ttcf` header with the offset of each font,
/// then the fonts, each with its table offsets moved by where the font starts.
fn collection(fonts: &[&[u8]]) -> Vec<u8> {
    let mut starts = Vec::new();
    let mut next = 12 + 4 * fonts.len();
    for font in fonts {
        starts.push(next);
        next += font.len().next_multiple_of(4);
    }

    let mut file = Vec::new();
    file.extend_from_slice(b"ttcf");
    file.extend_from_slice(&0x0001_0000_u32.to_be_bytes());
    file.extend_from_slice(&u32::try_from(fonts.len()).unwrap().to_be_bytes());
    for start in &starts {
        file.extend_from_slice(&u32::try_from(*start).unwrap().to_be_bytes());
    }
    for (font, start) in fonts.iter().zip(&starts) {
        let mut font = font.to_vec();
        let start = u32::try_from(*start).unwrap();
        for record in table_records(&font) {
            let offset = read_u32(&font, record + 8);
            font[record + 8..record + 12].copy_from_slice(&(offset + start).to_be_bytes());
        }
        file.extend_from_slice(&font);
        file.resize(file.len().next_multiple_of(4), 0);
    }
    file
}

/// Returns the positions of the table records in a single font's table directory.
fn table_records(font: &[u8]) -> Vec<usize> {
    let tables = usize::from(u16::from_be_bytes([font[4], font[5]]));
    (0..tables).map(|table| 12 + 16 * table).collect()
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Returns the font with its character map's offset pointing past the end of the file.
/// fontdb, which reads the names and style only, still accepts it.
fn with_broken_cmap(font: &[u8]) -> Vec<u8> {
    let mut font = font.to_vec();
    let cmap = table_records(&font)
        .into_iter()
        .find(|&record| &font[record..record + 4] == b"cmap")
        .expect("the font has a cmap table");
    font[cmap + 8..cmap + 12].copy_from_slice(&0x8000_0000_u32.to_be_bytes());
    font
}

fn has_glyph(definitions: FontDefinitions, family: FontFamily, c: char) -> bool {
    let mut fonts = Fonts::new(TextOptions::default(), definitions);
    fonts.has_glyph(&FontId::new(14.0, family), c)
}

#[test]
fn font_for_missing_script_is_chosen() {
    let folder = tempfile::tempdir().unwrap();
    fs::write(folder.path().join("Hack-Regular.ttf"), HACK_REGULAR).unwrap();
    fs::write(
        folder.path().join("NotoEmoji-Regular.ttf"),
        NOTO_EMOJI_REGULAR,
    )
    .unwrap();

    let found = search(folder.path());

    assert_eq!(found.fonts().len(), 1);
    let font = &found.fonts()[0];
    assert_eq!(font.path, folder.path().join("NotoEmoji-Regular.ttf"));
    assert_eq!(font.index, 0);
    assert_eq!(font.scripts, ["Emoji"]);
    assert!(font.name.starts_with("Noto Emoji ("), "{}", font.name);
    assert!(found.missing().is_empty());
    assert!(found.skipped().is_empty());
}

#[test]
fn builtin_script_needs_no_font() {
    let folder = tempfile::tempdir().unwrap();
    fs::write(folder.path().join("Hack-Regular.ttf"), HACK_REGULAR).unwrap();

    let found = search(folder.path());

    assert!(found.fonts().is_empty());
    assert_eq!(missing_names(&found), ["Emoji"]);
}

#[test]
fn empty_folder_leaves_scripts_missing() {
    let folder = tempfile::tempdir().unwrap();

    let found = search(folder.path());

    assert!(found.fonts().is_empty());
    assert_eq!(missing_names(&found), ["Emoji"]);
    assert_eq!(found.font_definitions(), FontDefinitions::default());
    let message = missing_scripts_message(found.missing());
    assert!(message.contains("Emoji"), "{message}");
    assert!(message.contains("fonts-noto-color-emoji"), "{message}");
    assert!(!message.contains("Latin"), "{message}");
}

#[test]
fn corrupt_fonts_are_skipped() {
    let folder = tempfile::tempdir().unwrap();
    let garbage = folder.path().join("garbage.ttf");
    let broken = folder.path().join("broken-cmap.ttf");
    let truncated = folder.path().join("truncated.ttf");
    fs::write(&garbage, b"not a font at all, just some bytes").unwrap();
    fs::write(&broken, with_broken_cmap(NOTO_EMOJI_REGULAR)).unwrap();
    fs::write(&truncated, &NOTO_EMOJI_REGULAR[..64]).unwrap();
    fs::create_dir(folder.path().join("good")).unwrap();
    let good = folder.path().join("good/NotoEmoji-Regular.ttf");
    fs::write(&good, NOTO_EMOJI_REGULAR).unwrap();

    let found = search(folder.path());

    assert_eq!(found.fonts().len(), 1);
    assert_eq!(found.fonts()[0].path, good);
    assert_eq!(
        found.skipped().len(),
        1,
        "fontdb reports the garbage files itself"
    );
    let skipped = &found.skipped()[0];
    assert_eq!(skipped.path, broken);
    let line = skipped.to_string();
    assert!(line.starts_with(&broken.display().to_string()), "{line}");
    assert!(
        line.len() > broken.display().to_string().len() + 2,
        "no error in {line}"
    );
}

#[test]
fn only_corrupt_font_gives_no_fallback() {
    let folder = tempfile::tempdir().unwrap();
    fs::write(
        folder.path().join("broken-cmap.ttf"),
        with_broken_cmap(NOTO_EMOJI_REGULAR),
    )
    .unwrap();

    let found = search(folder.path());

    assert!(found.fonts().is_empty());
    assert_eq!(found.skipped().len(), 1);
    assert_eq!(missing_names(&found), ["Emoji"]);
}

#[test]
fn broken_collection_is_reported_once() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("broken.ttc");
    let faces = [
        with_broken_cmap(NOTO_EMOJI_REGULAR),
        with_broken_cmap(NOTO_EMOJI_REGULAR),
    ];
    fs::write(&path, collection(&[&faces[0], &faces[1]])).unwrap();

    let found = search(folder.path());

    assert!(found.fonts().is_empty());
    assert_eq!(found.skipped().len(), 1);
    assert_eq!(found.skipped()[0].path, path);
}

#[test]
fn collection_uses_face_index() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("pair.ttc");
    fs::write(&path, collection(&[HACK_REGULAR, NOTO_EMOJI_REGULAR])).unwrap();

    let found = search(folder.path());

    assert_eq!(found.fonts().len(), 1);
    let font = &found.fonts()[0];
    assert_eq!(font.path, path);
    assert_eq!(font.index, 1);
    assert!(font.name.ends_with(", face 1)"), "{}", font.name);
    let definitions = found.font_definitions();
    assert_eq!(definitions.font_data[&font.name].index, 1);
    assert!(has_glyph(definitions, FontFamily::Proportional, '😀'));
}

#[test]
fn fallbacks_follow_builtin_fonts() {
    let folder = tempfile::tempdir().unwrap();
    fs::write(
        folder.path().join("NotoEmoji-Regular.ttf"),
        NOTO_EMOJI_REGULAR,
    )
    .unwrap();
    let found = search(folder.path());
    let name = found.fonts()[0].name.clone();

    let definitions = found.font_definitions();

    let builtin = FontDefinitions::default();
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        let mut expected = builtin.families[&family].clone();
        expected.push(name.clone());
        assert_eq!(definitions.families[&family], expected, "{family:?}");
        assert!(
            !has_glyph(builtin.clone(), family.clone(), '😀'),
            "{family:?} has emoji without the fallback"
        );
        assert!(
            has_glyph(definitions.clone(), family.clone(), '😀'),
            "{family:?} has no emoji with the fallback"
        );
    }
}
