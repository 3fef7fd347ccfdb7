//! Exporting the log from the window: a save dialog on its own thread, a typed path
//! where no dialog can be shown, and the write on a second thread. Neither the window
//! nor the engine waits on the dialog or the disk.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use crate::engine::event::Level;
use crate::export::{self, ExportError, ExportSummary};
use crate::log_book::LogSnapshot;

/// A dialog that returns faster than this with no path is taken as "no dialog could be
/// shown" (rfd's default backend returns at once without a portal or zenity), not as a
/// cancel by the user.
const NO_DIALOG_THRESHOLD: Duration = Duration::from_secs(1);

/// Narrowest width of the typed-path field, in points.
const PATH_FIELD_WIDTH: f32 = 420.0;

/// Room in the typed-path field after the path, for the cursor and a few more characters.
const PATH_FIELD_SLACK: f32 = 24.0;

/// Width of the window not given to the typed-path field: its label, the form's frame
/// and a gap to the window's edges.
const PATH_FORM_MARGIN: f32 = 120.0;

/// Width of the "Path" label and the gap after it, in points.
const PATH_LABEL_WIDTH: f32 = 40.0;

/// Asks the user for a path to save to, blocking its thread; `None` when cancelled or
/// when no dialog can be shown.
pub type PathPicker = Arc<dyn Fn(PathBuf) -> Option<PathBuf> + Send + Sync>;

/// Returns a picker that shows the system save dialog through rfd.
pub fn system_picker() -> PathPicker {
    Arc::new(|suggested: PathBuf| {
        let mut dialog = rfd::FileDialog::new()
            .set_title("Export log")
            .add_filter("Text", &["txt"])
            .add_filter("CSV", &["csv"])
            .add_filter("JSON Lines", &["jsonl"]);
        if let Some(name) = suggested.file_name() {
            dialog = dialog.set_file_name(name.to_string_lossy());
        }
        if let Some(folder) = suggested.parent().filter(|folder| folder.is_dir()) {
            dialog = dialog.set_directory(folder);
        }
        dialog.save_file()
    })
}

/// Stage of an export.
#[derive(Debug, Default)]
enum Stage {
    #[default]
    Idle,
    /// The save dialog is open on its thread.
    Choosing {
        reply: Receiver<Option<PathBuf>>,
        opened: Instant,
    },
    /// The user types a path into the window.
    TypingPath { path: String, reason: String },
    /// The file is being written on its thread.
    Writing {
        reply: Receiver<Result<ExportSummary, ExportError>>,
    },
}

/// A log line the export wants shown.
pub type ExportMessage = (Level, String);

/// The export state machine, stepped once per frame.
pub struct ExportFlow {
    picker: PathPicker,
    stage: Stage,
}

impl ExportFlow {
    /// Creates a flow that requests paths through `picker`.
    pub fn new(picker: PathPicker) -> Self {
        ExportFlow {
            picker,
            stage: Stage::Idle,
        }
    }

    /// Returns whether an export is under way, so the button can be disabled.
    pub fn is_busy(&self) -> bool {
        !matches!(self.stage, Stage::Idle)
    }

    /// Opens the save dialog on its own thread.
    pub fn start(&mut self) {
        if self.is_busy() {
            return;
        }
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let picker = Arc::clone(&self.picker);
        let suggested = suggested_path();
        let spawned = std::thread::Builder::new()
            .name("save-dialog".into())
            .spawn(move || {
                let _ = reply_tx.send(picker(suggested));
            });
        self.stage = match spawned {
            Ok(_) => Stage::Choosing {
                reply: reply_rx,
                opened: Instant::now(),
            },
            Err(error) => Stage::TypingPath {
                path: suggested_path().display().to_string(),
                reason: format!("The save dialog could not start ({error}). Type a path:"),
            },
        };
    }

    /// Advances the flow: collects the dialog's result or the write's result. Returns a
    /// log line to show, if any.
    pub fn poll(&mut self, log: impl FnOnce() -> LogSnapshot) -> Option<ExportMessage> {
        match &self.stage {
            Stage::Choosing { reply, opened } => match reply.try_recv() {
                Ok(Some(path)) => {
                    self.write(path, log());
                    None
                }
                Ok(None) if opened.elapsed() < NO_DIALOG_THRESHOLD => {
                    self.ask_for_path(
                        "No file dialog is available (it needs xdg-desktop-portal or zenity). \
                         Type a path; the extension picks the format (.txt, .csv, .jsonl):",
                    );
                    None
                }
                Ok(None) | Err(TryRecvError::Disconnected) => {
                    self.stage = Stage::Idle;
                    None
                }
                Err(TryRecvError::Empty) => None,
            },
            Stage::Writing { reply } => match reply.try_recv() {
                Ok(Ok(summary)) => {
                    self.stage = Stage::Idle;
                    let message = format!(
                        "Exported {} log lines to {} ({})",
                        summary.lines,
                        summary.path.display(),
                        summary.format
                    );
                    Some((Level::Info, message))
                }
                Ok(Err(error)) => {
                    self.stage = Stage::Idle;
                    Some((Level::Error, error.to_string()))
                }
                Err(TryRecvError::Disconnected) => {
                    self.stage = Stage::Idle;
                    Some((
                        Level::Error,
                        "the export thread stopped without a result".into(),
                    ))
                }
                Err(TryRecvError::Empty) => None,
            },
            Stage::Idle | Stage::TypingPath { .. } => None,
        }
    }

    /// Switches to the typed-path form with `reason` shown above it.
    pub fn ask_for_path(&mut self, reason: &str) {
        self.stage = Stage::TypingPath {
            path: suggested_path().display().to_string(),
            reason: reason.to_owned(),
        };
    }

    /// Draws the typed-path form when it is open; writes the log when confirmed.
    pub fn path_form_ui(&mut self, ctx: &egui::Context, log: impl FnOnce() -> LogSnapshot) {
        let Stage::TypingPath { path, reason } = &mut self.stage else {
            return;
        };
        let mut confirmed = false;
        let mut cancelled = false;
        // Wide enough for the whole path, file name included, up to most of the
        // window's width.
        let widest = (ctx.content_rect().width() - PATH_FORM_MARGIN).max(PATH_FIELD_WIDTH);
        let font = egui::TextStyle::Body.resolve(&ctx.global_style());
        let text_width = ctx
            .fonts_mut(|fonts| fonts.layout_no_wrap(path.clone(), font, egui::Color32::WHITE))
            .size()
            .x;
        let width = (text_width + PATH_FIELD_SLACK).clamp(PATH_FIELD_WIDTH, widest);
        egui::Window::new("Export log")
            .collapsible(false)
            .resizable(false)
            .min_width(width + PATH_LABEL_WIDTH)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                ui.label(reason.as_str());
                let field = ui
                    .horizontal(|ui| {
                        let label = ui.label("Path");
                        ui.add(
                            egui::TextEdit::singleline(path)
                                .desired_width(width)
                                .hint_text("/path/to/log.csv"),
                        )
                        .labelled_by(label.id)
                    })
                    .inner;
                if field.lost_focus() && ui.input(|input| input.key_pressed(egui::Key::Enter)) {
                    confirmed = true;
                }
                ui.horizontal(|ui| {
                    confirmed |= ui.button("Export").clicked();
                    cancelled = ui.button("Cancel").clicked();
                });
            });
        if cancelled {
            self.stage = Stage::Idle;
        } else if confirmed {
            let path = PathBuf::from(path.trim());
            self.write(path, log());
        }
    }

    /// Returns whether the flow waits on another thread and needs polling.
    pub fn is_waiting(&self) -> bool {
        matches!(self.stage, Stage::Choosing { .. } | Stage::Writing { .. })
    }

    fn write(&mut self, path: PathBuf, log: LogSnapshot) {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let spawned = std::thread::Builder::new()
            .name("export".into())
            .spawn(move || {
                let _ = reply_tx.send(export::write_log(&path, &log));
            });
        self.stage = match spawned {
            Ok(_) => Stage::Writing { reply: reply_rx },
            Err(error) => Stage::TypingPath {
                path: String::new(),
                reason: format!("The export could not start ({error}). Try again:"),
            },
        };
    }
}

/// Returns a file name with the current time in the working folder.
fn suggested_path() -> PathBuf {
    let name = chrono::Utc::now()
        .format("session-monitor-log-%Y%m%dT%H%M%SZ.txt")
        .to_string();
    std::env::current_dir().unwrap_or_default().join(name)
}
