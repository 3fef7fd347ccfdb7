//! Writes the log to a file in the format its extension names: `.txt` (or no extension)
//! for plain lines, `.csv`, or `.jsonl` for one JSON object per line.
//!
//! The file is written to a temporary file in the target folder and renamed into place,
//! so a crash or a full disk never leaves a truncated export behind. Runs on whichever
//! thread calls it; the window calls it from a short-lived export thread.

use std::fmt;
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

/// Why an export failed.
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
    /// Creating, writing or renaming the file failed.
    #[error("failed to export the log to {}: {source}", path.display())]
    Io {
        /// The requested path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// What an export wrote.
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
pub fn write_log(path: &Path, log: &LogSnapshot) -> Result<ExportSummary, ExportError> {
    let format = ExportFormat::from_path(path)?;
    let io_error = |source| ExportError::Io {
        path: path.to_owned(),
        source,
    };

    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        let source = io::Error::new(io::ErrorKind::NotFound, "the folder does not exist");
        return Err(io_error(source));
    }
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(folder)
        .map_err(io_error)?;

    let mut writer = BufWriter::new(temporary);
    let lines = write_records(&mut writer, format, log).map_err(io_error)?;
    let temporary = writer
        .into_inner()
        .map_err(|error| io_error(error.into_error()))?;
    temporary.as_file().sync_all().map_err(io_error)?;
    temporary
        .persist(path)
        .map_err(|error| io_error(error.error))?;

    Ok(ExportSummary {
        path: path.to_owned(),
        format,
        lines,
    })
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
