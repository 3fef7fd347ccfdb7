//! Writes the log to a file in the format its extension names: `.txt` (or no extension)
//! for plain lines, `.csv`, or `.jsonl` for one JSON object per line.
//!
//! The file is written to a temporary file in the target folder and renamed into place,
//! so a crash or a full disk never leaves a truncated export behind. Runs on whichever
//! thread calls it; the window calls it from a short-lived export thread.

use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::event::{Event, Level, Record};
use crate::log_book::LogSnapshot;

/// File formats for the exported log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One log line per line, as the log pane shows them.
    Text,
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl ExportFormat {
    /// Picks the format from the path's extension, case-insensitively.
    pub fn from_path(path: &Path) -> Result<ExportFormat, ExportError> {
        let extension = path
            .extension()
            .map(|extension| extension.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            None | Some("txt") | Some("log") => Ok(ExportFormat::Text),
            Some("csv") => Ok(ExportFormat::Csv),
            Some("jsonl") | Some("ndjson") => Ok(ExportFormat::JsonLines),
            Some(other) => Err(ExportError::UnsupportedFormat {
                path: path.to_owned(),
                extension: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportFormat::Text => "text",
            ExportFormat::Csv => "CSV",
            ExportFormat::JsonLines => "JSON Lines",
        })
    }
}

/// Error from an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The extension names no supported format.
    #[error(
        "cannot export to {}: unsupported extension .{extension}; use .txt, .csv or .jsonl",
        path.display()
    )]
    UnsupportedFormat {
        /// The requested path.
        path: PathBuf,
        /// Its extension, lower-cased.
        extension: String,
    },
    /// The path is empty.
    #[error("cannot export: the path is empty; give a file name such as log.csv")]
    EmptyPath,
    /// The path names something other than a regular file, such as a device, a folder
    /// or a pipe, which an export must not replace.
    #[error(
        "cannot export to {}: it is not a regular file; choose a file name",
        path.display()
    )]
    NotAFile {
        /// The requested path.
        path: PathBuf,
    },
    /// Creating, writing or renaming the file failed. The message includes the
    /// operating system's error, so it is not also chained as a source.
    #[error("failed to export the log to {}: {io_error}", path.display())]
    Io {
        /// The requested path.
        path: PathBuf,
        /// The operating system's error.
        io_error: io::Error,
    },
}

/// Summary of a written export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The file written.
    pub path: PathBuf,
    /// Its format.
    pub format: ExportFormat,
    /// Log lines written, including a leading line about evicted records.
    pub lines: usize,
}

/// Writes `log` to `path`, replacing any file there only once the new one is complete.
///
/// A symbolic link is followed, so the link stays and its target is replaced. Paths that
/// name a device, a folder or a pipe are rejected. A replaced file keeps its
/// permissions; a new one gets the usual `0o666` less the process umask.
pub fn write_log(path: &Path, log: &LogSnapshot) -> Result<ExportSummary, ExportError> {
    let Target {
        format,
        existing,
        target,
    } = check_target(path)?;
    let io_error = |io_error| ExportError::Io {
        path: path.to_owned(),
        io_error,
    };
    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = target.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    if let Some(permissions) = new_file_permissions() {
        builder.permissions(permissions);
    }
    let temporary = builder.tempfile_in(folder).map_err(io_error)?;
    // A replaced file keeps its mode; a new one got `0o666` less the umask at creation.
    if let Some(existing) = existing {
        fs::set_permissions(temporary.path(), existing.permissions()).map_err(io_error)?;
    }

    let mut writer = BufWriter::new(temporary);
    let lines = write_records(&mut writer, format, log).map_err(io_error)?;
    let temporary = writer
        .into_inner()
        .map_err(|error| io_error(error.into_error()))?;
    temporary.as_file().sync_all().map_err(io_error)?;
    temporary
        .persist(&target)
        .map_err(|error| io_error(error.error))?;

    Ok(ExportSummary {
        path: path.to_owned(),
        format,
        lines,
    })
}

/// The destination of an export, as [`check_target`] found it.
struct Target {
    format: ExportFormat,
    /// The file the export replaces, if one exists.
    existing: Option<fs::Metadata>,
    /// The path to write: the link's target when the path is a symbolic link.
    target: PathBuf,
}

/// Checks that an export to `path` can be attempted, without writing anything: the
/// extension names a format, the path is a file name and not a device, a folder or a
/// pipe, and its folder exists. Returns the format. Writing can still fail, for example
/// on a full disk or a read-only folder.
pub fn check_path(path: &Path) -> Result<ExportFormat, ExportError> {
    check_target(path).map(|target| target.format)
}

fn check_target(path: &Path) -> Result<Target, ExportError> {
    if path.as_os_str().is_empty() {
        return Err(ExportError::EmptyPath);
    }
    let format = ExportFormat::from_path(path)?;
    let io_error = |io_error| ExportError::Io {
        path: path.to_owned(),
        io_error,
    };

    // The file to replace: the link's target when `path` is a symbolic link.
    let existing = match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Some(metadata),
        Ok(_) => {
            return Err(ExportError::NotAFile {
                path: path.to_owned(),
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(io_error(error)),
    };
    let target = match existing {
        Some(_) => fs::canonicalize(path).map_err(io_error)?,
        None => path.to_owned(),
    };
    if target.file_name().is_none() || path.as_os_str().is_empty() {
        return Err(ExportError::NotAFile {
            path: path.to_owned(),
        });
    }

    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        let missing = io::Error::new(io::ErrorKind::NotFound, "the folder does not exist");
        return Err(io_error(missing));
    }
    Ok(Target {
        format,
        existing,
        target,
    })
}

/// Returns the mode a new export is created with: read and write for everyone, less the
/// umask, as `File::create` does.
#[cfg(unix)]
fn new_file_permissions() -> Option<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(fs::Permissions::from_mode(0o666))
}

/// Returns `None`, so a new export keeps the temporary file's default permissions.
#[cfg(not(unix))]
fn new_file_permissions() -> Option<fs::Permissions> {
    None
}

fn write_records(
    out: &mut impl Write,
    format: ExportFormat,
    log: &LogSnapshot,
) -> io::Result<usize> {
    let gap = eviction_record(log);
    let records = gap.iter().chain(log.records.iter());
    let mut lines = 0;
    if format == ExportFormat::Csv {
        writeln!(out, "seq,time,level,kind,session,message")?;
    }
    for record in records {
        match format {
            ExportFormat::Text => writeln!(out, "{}", printable(&record.to_string()))?,
            ExportFormat::Csv => write_csv_row(out, record)?,
            ExportFormat::JsonLines => {
                serde_json::to_writer(&mut *out, &JsonRecord::from(record))?;
                writeln!(out)?;
            }
        }
        lines += 1;
    }
    out.flush()?;
    Ok(lines)
}

/// Returns a record stating how many older records are missing, if any.
fn eviction_record(log: &LogSnapshot) -> Option<Record> {
    if log.evicted == 0 {
        return None;
    }
    let first = log.records.first()?;
    Some(Record {
        seq: 0,
        at: first.at,
        wall: first.wall,
        event: Event::Message {
            level: Level::Error,
            message: format!(
                "{} older log records are not in this export: the log keeps the newest {}",
                log.evicted,
                log.records.len()
            ),
        },
    })
}

/// Replaces control characters, so one record is one line whatever its text.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn write_csv_row(out: &mut impl Write, record: &Record) -> io::Result<()> {
    let session = record
        .event
        .session_id()
        .map(|id| id.as_str())
        .unwrap_or("");
    let cells = [
        record.seq.to_string(),
        format_time(record),
        record.level().name().to_owned(),
        record.event.kind().to_owned(),
        session.to_owned(),
        record.event.to_string(),
    ];
    let row: Vec<String> = cells.iter().map(|cell| csv_cell(cell)).collect();
    writeln!(out, "{}", row.join(","))
}

/// Quotes a CSV cell when needed, and prefixes cells that a spreadsheet would run as a
/// formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) with `'`.
fn csv_cell(cell: &str) -> String {
    let formula_like = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let cell = if formula_like {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if cell.contains([',', '"', '\n', '\r']) || formula_like {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

fn format_time(record: &Record) -> String {
    record.wall.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    seq: u64,
    time: String,
    level: Level,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    message: String,
}

impl<'a> From<&'a Record> for JsonRecord<'a> {
    fn from(record: &'a Record) -> Self {
        JsonRecord {
            seq: record.seq,
            time: format_time(record),
            level: record.level(),
            kind: record.event.kind(),
            session: record.event.session_id().map(|id| id.as_str()),
            message: record.event.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_extension() {
        let format = |name: &str| ExportFormat::from_path(Path::new(name)).ok();
        assert_eq!(format("log.txt"), Some(ExportFormat::Text));
        assert_eq!(format("log"), Some(ExportFormat::Text));
        assert_eq!(format("LOG.CSV"), Some(ExportFormat::Csv));
        assert_eq!(format("a/b.jsonl"), Some(ExportFormat::JsonLines));
        assert_eq!(format("log.xlsx"), None);
    }

    #[test]
    fn unsupported_extension_message() {
        let error = ExportFormat::from_path(Path::new("/tmp/log.xlsx")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot export to /tmp/log.xlsx: unsupported extension .xlsx; use .txt, .csv or .jsonl"
        );
    }

    #[test]
    fn csv_cell_neutralises_formulas() {
        assert_eq!(csv_cell("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(csv_cell("+1"), "\"'+1\"");
        assert_eq!(csv_cell("-1"), "\"'-1\"");
        assert_eq!(csv_cell("@x"), "\"'@x\"");
        assert_eq!(csv_cell("\tx"), "\"'\tx\"");
    }

    #[test]
    fn csv_cell_quotes_separators() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn printable_replaces_control_characters() {
        assert_eq!(printable("a\nb\u{1b}c"), "a\u{FFFD}b\u{FFFD}c");
    }
}

#[cfg(all(test, unix))]
mod file_tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    use super::*;

    fn empty_log() -> LogSnapshot {
        LogSnapshot {
            records: Vec::new(),
            evicted: 0,
        }
    }

    #[test]
    fn device_is_not_replaced() {
        let error = write_log(Path::new("/dev/null"), &empty_log()).unwrap_err();
        assert!(matches!(error, ExportError::NotAFile { .. }), "{error}");
        let metadata = fs::metadata("/dev/null").unwrap();
        assert!(metadata.file_type().is_char_device());
    }

    #[test]
    fn folder_is_not_replaced() {
        let folder = tempfile::tempdir().unwrap();
        let error = write_log(folder.path(), &empty_log()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot export to {}: it is not a regular file; choose a file name",
                folder.path().display()
            )
        );
    }

    #[test]
    fn symlink_target_is_replaced() {
        let folder = tempfile::tempdir().unwrap();
        let target = folder.path().join("real.txt");
        let link = folder.path().join("link.txt");
        fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();

        write_log(&link, &empty_log()).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn replaced_file_keeps_mode() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("log.txt");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

        write_log(&path, &empty_log()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn new_file_is_not_private() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("log.txt");
        write_log(&path, &empty_log()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // 0o666 less a umask that keeps the owner's read and write.
        assert_eq!(mode & 0o600, 0o600);
        assert_ne!(mode, 0o600, "a new export is created as File::create would");
    }
}
