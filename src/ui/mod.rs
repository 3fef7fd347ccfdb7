//! The window: one file per panel, this file for the app that ties them together. Runs on
//! the UI thread, which alone draws.
//!
//! Engine updates are drained in [`eframe::App::logic`] under a time budget per frame.
//! eframe calls it while the window is hidden too, so memory stays bounded. Drawing
//! reads only the UI's own copy of the state. With no traffic the window repaints once a second, for the
//! countdown and the ages.

mod export_flow;
pub mod fonts;
mod format;
mod log_panel;
pub mod pacing;
mod rows;
mod sessions_table;
mod status_panel;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub use self::export_flow::{ExportFlow, PathPicker, system_picker};
pub use self::log_panel::{LogView, log_panel_ui};
pub use self::pacing::DrainPacer;
pub use self::rows::{Column, SessionRows};
use self::status_panel::{SettingsForm, SourceSummary, StatusAction, StatusView};
use crate::engine::Waker;
use crate::engine::clock::SharedClock;
use crate::engine::event::{Command, Event, Level, Status, Update};
use crate::export;
use crate::log_book::{DEFAULT_MAX_RECORDS, LogBook};
use crate::runtime::Runtime;

/// The Session Monitor window.
pub struct MonitorApp {
    runtime: Option<Runtime>,
    clock: SharedClock,
    commands: Sender<Command>,
    updates: Receiver<Update>,
    status: Option<Status>,
    rows: SessionRows,
    pacer: DrainPacer,
    log: LogBook,
    log_view: LogView,
    settings: SettingsForm,
    export: ExportFlow,
    sources: Vec<SourceSummary>,
    last_error: Option<String>,
    export_on_exit: Option<PathBuf>,
    /// Receives the error of the export at exit, if it fails.
    exit_export_error: Arc<OnceLock<String>>,
    close_at: Option<Instant>,
}

impl MonitorApp {
    /// Creates the app over a running engine and its sources. `picker` requests export paths from the user;
    /// `export_on_exit` is written when the app shuts down.
    pub fn new(runtime: Runtime, picker: PathPicker, export_on_exit: Option<PathBuf>) -> Self {
        MonitorApp {
            clock: Arc::clone(runtime.engine.clock()),
            commands: runtime.engine.commands(),
            updates: runtime.updates.clone(),
            sources: runtime.sources.iter().map(SourceSummary::of).collect(),
            runtime: Some(runtime),
            status: None,
            rows: SessionRows::default(),
            pacer: DrainPacer::default(),
            log: LogBook::new(DEFAULT_MAX_RECORDS),
            log_view: LogView::default(),
            settings: SettingsForm::default(),
            export: ExportFlow::new(picker),
            last_error: None,
            export_on_exit,
            exit_export_error: Arc::default(),
            close_at: None,
        }
    }

    /// Closes the window `duration` after now.
    pub fn close_after(mut self, duration: Option<Duration>) -> Self {
        self.close_at = duration.map(|duration| Instant::now() + duration);
        self
    }

    /// Sets where the error of a failed export at exit goes, for the caller to read after
    /// the window closed.
    pub fn exit_export_error(mut self, error: Arc<OnceLock<String>>) -> Self {
        self.exit_export_error = error;
        self
    }

    /// Returns the log as the window keeps it.
    pub fn log(&self) -> &LogBook {
        &self.log
    }

    /// Returns the window's copy of the sessions.
    pub fn rows(&self) -> &SessionRows {
        &self.rows
    }

    /// Returns the latest engine status.
    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    /// Returns the running engine, until shutdown.
    pub fn runtime(&self) -> Option<&Runtime> {
        self.runtime.as_ref()
    }

    /// Applies the engine updates that fit this frame, as [`DrainPacer`] decides.
    /// Returns whether updates are still waiting.
    pub fn drain_updates(&mut self) -> bool {
        let updates = self.updates.clone();
        let mut pacer = std::mem::take(&mut self.pacer);
        pacer.drain(
            self.rows.refresh_cost(),
            || updates.try_recv().ok(),
            |update| self.apply(update),
        );
        self.pacer = pacer;
        !self.updates.is_empty()
    }

    fn apply(&mut self, update: Update) {
        self.rows.apply(&update);
        let at = update
            .records
            .first()
            .map(|record| record.at)
            .unwrap_or_default();
        self.log.note_dropped(update.records_dropped, at);
        for record in update.records {
            match &record.event {
                Event::Error { message } => self.last_error = Some(message.clone()),
                Event::SweepFailed { .. } => self.last_error = Some(record.event.to_string()),
                _ => {}
            }
            self.log.push(record);
        }
        self.status = Some(update.status);
    }

    /// Draws the whole window into `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        if self.drain_updates() {
            ui.ctx().request_repaint();
        }
        self.poll_export();
        self.log_view.refresh(&self.log);

        let actions = egui::Panel::top("status")
            .show(ui, |ui| {
                let idle_timeout = self.status.as_ref().map(|status| status.idle_timeout);
                let stale = idle_timeout
                    .map(|idle_timeout| self.rows.count_stale(self.clock.now(), idle_timeout))
                    .unwrap_or(0);
                let view = StatusView {
                    status: self.status.as_ref(),
                    clock: &self.clock,
                    stale,
                    sessions: self.rows.len(),
                    sources: &self.sources,
                    last_error: self.last_error.as_deref(),
                    export_busy: self.export.is_busy(),
                };
                status_panel::status_panel_ui(ui, &view, &mut self.settings)
            })
            .inner;

        egui::Panel::bottom("log")
            .resizable(true)
            .default_size(220.0)
            .min_size(80.0)
            .show(ui, |ui| {
                log_panel::log_panel_ui(ui, &mut self.log_view, &self.log)
            });

        egui::CentralPanel::default().show(ui, |ui| {
            let (idle_timeout, removed_total) = self
                .status
                .as_ref()
                .map_or((crate::engine::DEFAULT_IDLE_TIMEOUT, 0), |status| {
                    (status.idle_timeout, status.removed_total)
                });
            sessions_table::sessions_table_ui(
                ui,
                &mut self.rows,
                &self.clock,
                idle_timeout,
                removed_total,
            );
        });

        let log = &self.log;
        self.export.path_form_ui(ui.ctx(), || log.snapshot());

        for action in actions {
            self.handle(action);
        }
        if self
            .close_at
            .is_some_and(|close_at| Instant::now() >= close_at)
        {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
        self.schedule_repaint(ui.ctx());
    }

    fn handle(&mut self, action: StatusAction) {
        match action {
            StatusAction::SweepNow => self.send(Command::SweepNow),
            StatusAction::Export => self.export.start(),
            StatusAction::ApplySettings {
                idle_timeout,
                sweep_interval,
            } => {
                let Some(status) = &self.status else { return };
                let current = (status.idle_timeout, status.sweep_interval);
                if current.0 != idle_timeout {
                    self.send(Command::SetIdleTimeout(idle_timeout));
                }
                if current.1 != sweep_interval {
                    self.send(Command::SetSweepInterval(sweep_interval));
                }
            }
        }
    }

    /// Sends a command without blocking the UI thread.
    fn send(&mut self, command: Command) {
        let problem = match self.commands.try_send(command) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "the engine is busy (command queue full); try again",
            Err(TrySendError::Disconnected(_)) => "the engine has stopped",
        };
        self.last_error = Some(problem.to_owned());
        self.log
            .push_message(Level::Error, problem.to_owned(), self.clock.now());
    }

    fn poll_export(&mut self) {
        let log = &self.log;
        if let Some((level, message)) = self.export.poll(|| log.snapshot()) {
            if level == Level::Error {
                self.last_error = Some(message.clone());
            }
            self.log.push_message(level, message, self.clock.now());
        }
    }

    /// Repaints when the countdown's next second starts, or soon while an export runs.
    fn schedule_repaint(&self, ctx: &egui::Context) {
        if self.export.is_waiting() {
            ctx.request_repaint_after(Duration::from_millis(100));
            return;
        }
        let until_tick = match &self.status {
            Some(status) => {
                let left = status.next_sweep_due - self.clock.now();
                let fraction = Duration::from_nanos(u64::from(left.subsec_nanos()));
                let fraction = self
                    .clock
                    .real_wait(fraction)
                    .unwrap_or(Duration::from_secs(1));
                fraction
                    .max(Duration::from_millis(50))
                    .min(Duration::from_secs(1))
            }
            None => Duration::from_secs(1),
        };
        let until_close = self
            .close_at
            .map(|close_at| close_at.saturating_duration_since(Instant::now()));
        ctx.request_repaint_after(until_close.map_or(until_tick, |close| close.min(until_tick)));
    }

    /// Stops the sources and the engine, applies their last updates, and writes the log
    /// to the exit export path if one was given. Safe to call more than once.
    pub fn shutdown(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        for update in runtime.shutdown() {
            self.apply(update);
        }
        let Some(path) = self.export_on_exit.take() else {
            return;
        };
        match export::write_log(&path, &self.log.snapshot()) {
            Ok(summary) => log::info!(
                "exported {} log lines to {} ({})",
                summary.lines,
                summary.path.display(),
                summary.format
            ),
            // The caller of the window reports it, and exits with a failure code.
            Err(error) => {
                self.exit_export_error.set(error.to_string()).ok();
            }
        }
    }
}

impl eframe::App for MonitorApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        if self.drain_updates() {
            ctx.request_repaint();
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}

/// Delay before a repaint that an engine update requests, so a burst of updates is
/// drawn in one frame.
const UPDATE_REPAINT_DELAY: Duration = Duration::from_millis(50);

/// Returns a waker that requests a repaint of the window once its context is set.
pub fn context_waker(context: Arc<OnceLock<egui::Context>>) -> Waker {
    Arc::new(move || {
        if let Some(context) = context.get() {
            context.request_repaint_after(UPDATE_REPAINT_DELAY);
        }
    })
}

/// Failure to run the window.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// No window could be opened; the runtime was never handed to the window.
    #[error("could not open a window: {error}")]
    Unavailable {
        /// The runtime, to run headless instead.
        runtime: Box<Runtime>,
        /// eframe's error.
        error: eframe::Error,
    },
    /// The window ran and then failed.
    #[error("the window failed: {0}")]
    Failed(eframe::Error),
    /// The window ran, and the export at exit failed.
    #[error("{0}")]
    ExitExport(String),
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// Opens the window over `runtime` and runs until it closes. `context` receives the
/// window's egui context, so a signal handler can close it.
pub fn run(
    runtime: Runtime,
    export_on_exit: Option<PathBuf>,
    close_after: Option<Duration>,
    context: Arc<OnceLock<egui::Context>>,
) -> Result<(), WindowError> {
    let viewport = egui::ViewportBuilder::default()
        .with_title("Session Monitor")
        .with_app_id("session-monitor")
        .with_inner_size([1100.0, 720.0])
        .with_min_inner_size([640.0, 400.0]);
    let viewport = match eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icon.png"))
    {
        Ok(icon) => viewport.with_icon(icon),
        Err(error) => {
            log::warn!("the window icon could not be loaded: {error}");
            viewport
        }
    };
    // egui's built-in fonts cover Latin, Greek and Cyrillic. System fonts for other
    // scripts are searched for while the window is created, and added as fallbacks.
    let font_search = fonts::FontSearch::start();
    let options = eframe::NativeOptions {
        viewport,
        renderer: eframe::Renderer::Glow,
        // The fallbacks are installed below. eframe's own fallback, without its
        // `system_fonts` feature, only logs a hint to enable that feature.
        system_font_fallback: false,
        ..eframe::NativeOptions::default()
    };

    let exit_export_error = Arc::new(OnceLock::new());
    let reported_export_error = Arc::clone(&exit_export_error);
    // The creator takes the runtime; if eframe fails before calling it, it is still here.
    let pending = Arc::new(Mutex::new(Some(runtime)));
    let handed_over = Arc::clone(&pending);
    let result = eframe::run_native(
        "Session Monitor",
        options,
        Box::new(move |creation| {
            context.set(creation.egui_ctx.clone()).ok();
            fonts::install(&creation.egui_ctx, &font_search.finish());
            let runtime = handed_over
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .ok_or("the engine was already handed to a window")?;
            let app = MonitorApp::new(runtime, system_picker(), export_on_exit)
                .close_after(close_after)
                .exit_export_error(Arc::clone(&reported_export_error));
            Ok(Box::new(app))
        }),
    );

    let unused = pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    match (result, unused) {
        (Ok(()), _) => match exit_export_error.get() {
            Some(error) => Err(WindowError::ExitExport(error.clone())),
            None => Ok(()),
        },
        (Err(error), Some(runtime)) => Err(WindowError::Unavailable {
            runtime: Box::new(runtime),
            error,
        }),
        (Err(error), None) => Err(WindowError::Failed(error)),
    }
}
