//! Headless mode: no window; log lines go to standard output. Runs on the main thread,
//! which drains the engine's updates until the duration ends, the replay is done, or a
//! stop signal arrives.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use crate::cli::Options;
use crate::engine::event::{Level, Record, Update};
use crate::export;
use crate::log_book::{DEFAULT_MAX_RECORDS, LogBook};
use crate::runtime::Runtime;
use crate::visible::visible_text;

/// How often the loop checks whether a replay has finished.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Prints records at or above a level and keeps the whole log for export.
struct Printer {
    book: LogBook,
    min_level: Level,
    stdout_open: bool,
}

impl Printer {
    fn apply(&mut self, update: Update) {
        let at = update
            .records
            .first()
            .map(|record| record.at)
            .unwrap_or_default();
        if update.records_dropped > 0 {
            self.book.note_dropped(update.records_dropped, at);
            let gap = self.book.get(self.book.end_index() - 1).cloned();
            if let Some(gap) = gap {
                self.print(&gap);
            }
        }
        for record in update.records {
            self.print(&record);
            self.book.push(record);
        }
    }

    fn print(&mut self, record: &Record) {
        if !self.stdout_open || record.level() < self.min_level {
            return;
        }
        // Invisible and direction-changing characters in ids are written as code
        // points, or a terminal would show the line reordered or hide them.
        let line = record.to_string();
        // A closed pipe (for example `| head`) ends printing, not the run.
        if writeln!(io::stdout().lock(), "{}", visible_text(&line)).is_err() {
            self.stdout_open = false;
        }
    }

    fn message(&mut self, level: Level, message: String) {
        self.book.push_message(level, message, Default::default());
        let record = self.book.get(self.book.end_index() - 1).cloned();
        if let Some(record) = record {
            self.print(&record);
        }
    }
}

/// Runs headless over `runtime` until `options.duration` passes, every source runs out
/// of input (the end of a replayed log, when no API runs beside it), or `stop` fires,
/// whichever comes first.
pub fn run(runtime: Runtime, options: &Options, stop: &Receiver<()>) -> anyhow::Result<()> {
    let mut printer = Printer {
        book: LogBook::new(DEFAULT_MAX_RECORDS),
        min_level: if options.verbose {
            Level::Debug
        } else {
            Level::Info
        },
        stdout_open: true,
    };
    let deadline = options.duration.map(|duration| Instant::now() + duration);

    loop {
        let wait = match deadline {
            Some(deadline) => deadline
                .saturating_duration_since(Instant::now())
                .min(POLL_INTERVAL),
            None => POLL_INTERVAL,
        };
        select! {
            recv(runtime.updates) -> update => match update {
                Ok(update) => printer.apply(update),
                Err(_) => break,
            },
            recv(stop) -> _ => break,
            default(wait) => {}
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        if runtime.sources_finished() {
            runtime.sync()?;
            break;
        }
    }

    for update in runtime.shutdown() {
        printer.apply(update);
    }
    if let Some(path) = &options.export_log {
        export_log(&mut printer, path)?;
    }
    Ok(())
}

fn export_log(printer: &mut Printer, path: &Path) -> anyhow::Result<()> {
    let snapshot = printer.book.snapshot();
    match export::write_log(path, &snapshot) {
        Ok(summary) => {
            printer.message(
                Level::Info,
                format!(
                    "Exported {} log lines to {} ({})",
                    summary.lines,
                    summary.path.display(),
                    summary.format
                ),
            );
            Ok(())
        }
        Err(error) => {
            printer.message(Level::Error, error.to_string());
            Err(error.into())
        }
    }
}
