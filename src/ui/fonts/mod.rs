//! Fallback fonts for the scripts that egui's built-in fonts lack.
//!
//! egui draws Latin, Greek and Cyrillic with its own fonts and a box for anything else.
//! At window start a named thread scans the system's font folders with fontdb, checks
//! each face's character map for the scripts in [`SCRIPTS`], and picks at most one face
//! per script. The UI thread then appends the chosen faces to both the proportional and
//! the monospace family, after the built-in fonts, so Latin text looks the same as
//! before. Font files are memory-mapped, not copied.
//!
//! Font folders: `/usr/share/fonts`, `/usr/local/share/fonts`, `~/.fonts` and
//! `~/.local/share/fonts` on Linux; `/Library/Fonts`, `/System/Library/Fonts` and
//! `~/Library/Fonts` on macOS; `%SYSTEMROOT%\Fonts` and the user's font folder on
//! Windows.
//!
//! A file that fails to read or parse is skipped with one warning naming the path and
//! the error. Files that fontdb cannot parse at all are reported by fontdb in the same
//! way.

mod choose;
mod scan;
mod scripts;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use egui::{FontData, FontDefinitions, FontFamily};

pub use self::scan::SkippedFont;
pub use self::scripts::{SCRIPTS, Script, missing_scripts_message};

/// A system font face chosen as a fallback.
#[derive(Clone)]
pub struct FallbackFont {
    /// The key in egui's font definitions: family, path and face index.
    pub name: String,
    /// The font file.
    pub path: PathBuf,
    /// The face's index in a font collection (`.ttc`), 0 in a single-font file.
    pub index: u32,
    /// The scripts the face was chosen for.
    pub scripts: Vec<&'static str>,
    data: FontData,
}

/// The outcome of a font search: the chosen fallbacks, the scripts still without a
/// font, and the files that were skipped.
pub struct FallbackFonts {
    fonts: Vec<FallbackFont>,
    missing: Vec<&'static Script>,
    skipped: Vec<SkippedFont>,
    faces_scanned: usize,
    took: Duration,
}

impl FallbackFonts {
    /// Searches the operating system's font folders for the scripts in [`SCRIPTS`].
    // TODO: folders named only in fontconfig's configuration (`<dir>` entries in
    // /etc/fonts, as on NixOS) are not searched.
    pub fn search_system() -> Self {
        let started = Instant::now();
        let mut database = fontdb::Database::new();
        database.load_system_fonts();
        Self::search(&database, SCRIPTS, started)
    }

    /// Searches `folders` and their subfolders for fonts that cover `scripts`.
    pub fn search_folders(folders: &[&Path], scripts: &'static [Script]) -> Self {
        let started = Instant::now();
        let mut database = fontdb::Database::new();
        for folder in folders {
            database.load_fonts_dir(folder);
        }
        Self::search(&database, scripts, started)
    }

    fn search(database: &fontdb::Database, scripts: &'static [Script], started: Instant) -> Self {
        let builtin = FontDefinitions::default();
        let builtin_fonts: Vec<(&[u8], u32)> = builtin
            .font_data
            .values()
            .map(|data| (data.bytes(), data.index))
            .collect();
        let needed: Vec<usize> = scan::covered_by(&builtin_fonts, scripts)
            .iter()
            .enumerate()
            .filter(|(_, covered)| !**covered)
            .map(|(script, _)| script)
            .collect();

        let scan = scan::scan(database, scripts, &needed);
        let chosen = choose::choose(&scan.faces, &needed, choose::cjk_region(&locale()));

        let fonts: Vec<FallbackFont> = chosen
            .iter()
            .map(|&index| fallback_font(&scan.faces[index], scripts))
            .collect();
        let missing = needed
            .iter()
            .filter(|&&script| {
                !chosen
                    .iter()
                    .any(|&i| scan.faces[i].scripts.contains(&script))
            })
            .map(|&script| &scripts[script])
            .collect();
        FallbackFonts {
            fonts,
            missing,
            skipped: scan.skipped,
            faces_scanned: database.len(),
            took: started.elapsed(),
        }
    }

    /// Returns a search result with no fallback fonts, for when the search failed.
    pub fn none() -> Self {
        FallbackFonts {
            fonts: Vec::new(),
            missing: SCRIPTS.iter().collect(),
            skipped: Vec::new(),
            faces_scanned: 0,
            took: Duration::ZERO,
        }
    }

    /// Returns the chosen fallback fonts, in the order egui tries them.
    pub fn fonts(&self) -> &[FallbackFont] {
        &self.fonts
    }

    /// Returns the scripts that neither the built-in fonts nor a fallback cover.
    pub fn missing(&self) -> &[&'static Script] {
        &self.missing
    }

    /// Returns the font files that could not be read or parsed.
    pub fn skipped(&self) -> &[SkippedFont] {
        &self.skipped
    }

    /// Returns egui's built-in font definitions with the fallbacks appended to the
    /// proportional and the monospace family.
    pub fn font_definitions(&self) -> FontDefinitions {
        let mut definitions = FontDefinitions::default();
        for font in &self.fonts {
            definitions
                .font_data
                .insert(font.name.clone(), Arc::new(font.data.clone()));
            for family in [FontFamily::Proportional, FontFamily::Monospace] {
                definitions
                    .families
                    .entry(family)
                    .or_default()
                    .push(font.name.clone());
            }
        }
        definitions
    }

    /// Logs the skipped files, the chosen fonts and the scripts that stay as boxes.
    pub fn log(&self) {
        for skipped in &self.skipped {
            log::warn!(
                "could not read the font {}, so it is skipped: {}",
                skipped.path.display(),
                skipped.error
            );
        }
        log::debug!(
            "checked {} font faces in {} ms",
            self.faces_scanned,
            self.took.as_millis()
        );
        if !self.fonts.is_empty() {
            let chosen: Vec<String> = self
                .fonts
                .iter()
                .map(|font| format!("{} ({})", font.name, font.scripts.join(", ")))
                .collect();
            log::info!("fallback fonts: {}", chosen.join("; "));
        }
        if self.missing.is_empty() {
            return;
        }
        let message = missing_scripts_message(&self.missing);
        if self.fonts.is_empty() {
            log::warn!("{message}");
        } else {
            log::info!("{message}");
        }
    }
}

fn fallback_font(face: &scan::Face, scripts: &'static [Script]) -> FallbackFont {
    let name = if face.index == 0 {
        format!("{} ({})", face.family, face.path.display())
    } else {
        format!(
            "{} ({}, face {})",
            face.family,
            face.path.display(),
            face.index
        )
    };
    FallbackFont {
        name,
        path: face.path.clone(),
        index: face.index,
        scripts: face
            .scripts
            .iter()
            .map(|&script| scripts[script].name)
            .collect(),
        data: FontData::from_blob(Arc::clone(&face.data), face.index),
    }
}

/// Returns the POSIX locale that applies to character handling, or an empty string.
fn locale() -> String {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
        .unwrap_or_default()
}

/// Logs the search result and installs the fallback fonts into `ctx`.
pub fn install(ctx: &egui::Context, fonts: &FallbackFonts) {
    fonts.log();
    if !fonts.fonts.is_empty() {
        ctx.set_fonts(fonts.font_definitions());
    }
}

/// A search of the system's fonts on a thread of its own, started before the window
/// opens so that it overlaps with creating the window.
pub struct FontSearch {
    thread: Option<JoinHandle<FallbackFonts>>,
}

impl FontSearch {
    /// Starts searching the system's fonts on a thread named `font-search`.
    pub fn start() -> Self {
        let thread = thread::Builder::new()
            .name("font-search".to_owned())
            .spawn(FallbackFonts::search_system);
        match thread {
            Ok(thread) => FontSearch {
                thread: Some(thread),
            },
            Err(error) => {
                log::warn!(
                    "could not start the font search thread ({error}), so the window \
                     searches when it opens"
                );
                FontSearch { thread: None }
            }
        }
    }

    /// Waits for the search to end and returns its result.
    pub fn finish(self) -> FallbackFonts {
        let Some(thread) = self.thread else {
            return FallbackFonts::search_system();
        };
        let started = Instant::now();
        let found = thread.join().unwrap_or_else(|_| {
            log::error!("the font search thread panicked, so only the built-in fonts are used");
            FallbackFonts::none()
        });
        log::debug!(
            "the window waited {} ms for the font search",
            started.elapsed().as_millis()
        );
        found
    }
}

#[cfg(test)]
mod tests;
