//! Reading font files: the faces that fontdb found, checked with skrifa (the parser
//! egui uses) for the scripts each covers.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui::epaint::text::Blob;
use skrifa::raw::TableProvider as _;
use skrifa::{FontRef, GlyphId, MetadataProvider as _};

use super::scripts::Script;

/// A font face that covers at least one of the scripts looked for.
pub(super) struct Face {
    pub path: PathBuf,
    /// The face's index in a font collection (`.ttc`), 0 in a single-font file.
    pub index: u32,
    pub family: String,
    /// OpenType weight class: 400 is regular.
    pub weight: u16,
    pub upright: bool,
    pub normal_width: bool,
    pub monospaced: bool,
    /// Indices into the script table.
    pub scripts: Vec<usize>,
    /// The mapped file.
    pub data: Blob,
}

/// A font file that could not be read or parsed.
#[derive(Debug, Clone)]
pub struct SkippedFont {
    /// The font file.
    pub path: PathBuf,
    /// What failed.
    pub error: String,
}

impl fmt::Display for SkippedFont {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

/// The faces that cover any of `needed`, and the files that failed to parse.
pub(super) struct Scan {
    pub faces: Vec<Face>,
    pub skipped: Vec<SkippedFont>,
}

/// Checks every face in `database` for the scripts in `needed` (indices into `scripts`).
/// A file that fails is skipped and reported once, however many faces it has.
pub(super) fn scan(database: &fontdb::Database, scripts: &[Script], needed: &[usize]) -> Scan {
    let mut by_path: BTreeMap<&Path, Vec<&fontdb::FaceInfo>> = BTreeMap::new();
    for info in database.faces() {
        // Folder scans only produce file sources.
        if let fontdb::Source::File(path) = &info.source {
            by_path.entry(path.as_path()).or_default().push(info);
        }
    }

    let mut scan = Scan {
        faces: Vec::new(),
        skipped: Vec::new(),
    };
    for (path, infos) in by_path {
        let skip = |error: String| SkippedFont {
            path: path.to_owned(),
            error,
        };
        let data = match map_file(path) {
            Ok(data) => data,
            Err(error) => {
                scan.skipped.push(skip(error.to_string()));
                continue;
            }
        };
        for info in infos {
            match covered_scripts((*data).as_ref(), info.index, scripts, needed) {
                Ok(covered) if covered.is_empty() => {}
                Ok(covered) => scan
                    .faces
                    .push(face(info, path, covered, Arc::clone(&data))),
                Err(error) => {
                    scan.skipped.push(skip(error.to_string()));
                    break;
                }
            }
        }
    }
    scan
}

fn face(info: &fontdb::FaceInfo, path: &Path, scripts: Vec<usize>, data: Blob) -> Face {
    // fontdb lists the English family name first when the font has one.
    let family = info
        .families
        .first()
        .map_or_else(|| info.post_script_name.clone(), |(name, _)| name.clone());
    Face {
        path: path.to_owned(),
        index: info.index,
        family,
        weight: info.weight.0,
        upright: info.style == fontdb::Style::Normal,
        normal_width: info.stretch == fontdb::Stretch::Normal,
        monospaced: info.monospaced,
        scripts,
        data,
    }
}

/// Maps a font file read-only, so that only the pages egui reads take memory.
fn map_file(path: &Path) -> io::Result<Blob> {
    let file = File::open(path)?;
    // SAFETY: the map is read-only and lives as long as egui uses the font. Another
    // program that truncates the file while it is mapped makes later reads fault.
    // Package managers replace font files by renaming a new file into place, which
    // leaves this map valid.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Arc::new(map))
}

/// Returns the scripts of `needed` whose samples all have a glyph in the face.
fn covered_scripts(
    data: &[u8],
    index: u32,
    scripts: &[Script],
    needed: &[usize],
) -> Result<Vec<usize>, skrifa::raw::ReadError> {
    let font = FontRef::from_index(data, index)?;
    // skrifa reads a missing or broken character map as an empty one. Checking it here
    // reports a broken font instead of counting it as covering nothing.
    font.cmap()?;
    let charmap = font.charmap();
    let covered = needed
        .iter()
        .copied()
        .filter(|&script| {
            scripts[script]
                .samples
                .chars()
                .all(|c| charmap.map(c).is_some_and(|glyph| glyph != GlyphId::NOTDEF))
        })
        .collect();
    Ok(covered)
}

/// Returns, for each script, whether every sample has a glyph in one of `fonts`, given
/// as file contents and face index.
pub(super) fn covered_by(fonts: &[(&[u8], u32)], scripts: &[Script]) -> Vec<bool> {
    let charmaps: Vec<_> = fonts
        .iter()
        .filter_map(|&(data, index)| FontRef::from_index(data, index).ok())
        .map(|font| font.charmap())
        .collect();
    scripts
        .iter()
        .map(|script| {
            script.samples.chars().all(|c| {
                charmaps
                    .iter()
                    .any(|charmap| charmap.map(c).is_some_and(|glyph| glyph != GlyphId::NOTDEF))
            })
        })
        .collect()
}
