//! The top panel: actions, the countdown to the next sweep, counts, the engine's
//! settings (editable) and the source. Drawn on the UI thread from the latest engine
//! status and the clock.

use std::time::Duration;

use super::format::{format_countdown, format_duration_setting};
use crate::count::counted;
use crate::engine::check_setting;
use crate::engine::clock::SharedClock;
use crate::engine::event::{Event, Status, format_duration};
use std::sync::Arc;

use crate::engine::session::Source;
use crate::sources::{RunningSource, SourceStats};

/// Request the user made in the panel this frame.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusAction {
    /// Run a sweep now.
    SweepNow,
    /// Open the export dialog.
    Export,
    /// Apply new settings.
    ApplySettings {
        /// New idle timeout.
        idle_timeout: Duration,
        /// New sweep interval.
        sweep_interval: Duration,
    },
}

/// The settings fields as typed, before they are applied.
#[derive(Debug, Default)]
pub struct SettingsForm {
    idle_timeout: String,
    sweep_interval: String,
    error: Option<String>,
    /// The status values the fields were last filled from.
    filled_from: Option<(Duration, Duration)>,
}

impl SettingsForm {
    /// Refills the fields when the engine's settings changed.
    fn sync_with(&mut self, status: &Status) {
        let current = (status.idle_timeout, status.sweep_interval);
        if self.filled_from != Some(current) {
            self.idle_timeout = format_duration_setting(status.idle_timeout);
            self.sweep_interval = format_duration_setting(status.sweep_interval);
            self.filled_from = Some(current);
        }
    }

    fn parse(&self) -> Result<(Duration, Duration), String> {
        let parse = |name: &str, text: &str| -> Result<Duration, String> {
            let duration = humantime::parse_duration(text.trim())
                .map_err(|error| format!("invalid {name} {text:?}: {error}"))?;
            check_setting(name, duration)?;
            Ok(duration)
        };
        Ok((
            parse("idle timeout", &self.idle_timeout)?,
            parse("sweep interval", &self.sweep_interval)?,
        ))
    }
}

/// A source as the panel shows it.
#[derive(Debug, Clone)]
pub struct SourceSummary {
    /// Kind of source.
    pub kind: Source,
    /// One-line description, such as the replayed file.
    pub description: String,
    /// Its counters.
    pub stats: Arc<SourceStats>,
}

impl SourceSummary {
    /// Describes a running source.
    pub fn of(source: &RunningSource) -> Self {
        SourceSummary {
            kind: source.kind(),
            description: source.description().to_owned(),
            stats: Arc::clone(source.stats()),
        }
    }
}

/// Everything the panel shows.
pub struct StatusView<'a> {
    /// Latest engine status; `None` before the first update.
    pub status: Option<&'a Status>,
    /// The engine's clock.
    pub clock: &'a SharedClock,
    /// Sessions idle past the timeout but not yet swept.
    pub stale: usize,
    /// Sessions shown in the table.
    pub sessions: usize,
    /// The sources and their counters, one line each.
    pub sources: &'a [SourceSummary],
    /// Latest engine error, if any.
    pub last_error: Option<&'a str>,
    /// Whether an export is under way.
    pub export_busy: bool,
}

/// Draws the panel and returns what the user asked for.
pub fn status_panel_ui(
    ui: &mut egui::Ui,
    view: &StatusView<'_>,
    form: &mut SettingsForm,
) -> Vec<StatusAction> {
    let mut actions = Vec::new();
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        if ui.button("Sweep now").clicked() {
            actions.push(StatusAction::SweepNow);
        }
        let export = ui.add_enabled(!view.export_busy, egui::Button::new("Export log…"));
        if export.clicked() {
            actions.push(StatusAction::Export);
        }
        ui.separator();
        if let Some(status) = view.status {
            countdown_ui(ui, status, view.clock);
        }
    });

    if let Some(status) = view.status {
        counts_ui(ui, view, status);
        form.sync_with(status);
        settings_ui(ui, form, &mut actions);
    }
    for source in view.sources {
        source_ui(ui, source, view.clock);
    }
    if let Some(error) = view.last_error {
        // A long path in the middle must not push the reason at the end out of sight.
        let shortened = shorten_middle(error, LAST_ERROR_CHARS);
        ui.colored_label(
            ui.visuals().error_fg_color,
            format!("Last error: {shortened}"),
        )
        .on_hover_text(error);
    }
    ui.add_space(4.0);
    actions
}

/// Characters of the last error shown in the panel. The whole text shows on hover.
const LAST_ERROR_CHARS: usize = 200;

/// Returns `text` with its middle replaced by an ellipsis when it has more than `limit`
/// characters, keeping more of the end, where error messages give their reason.
fn shorten_middle(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    let count = text.chars().count();
    if count <= limit {
        return std::borrow::Cow::Borrowed(text);
    }
    let head = limit * 2 / 5;
    let tail = limit - head - 1;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    std::borrow::Cow::Owned(format!("{start}…{end}"))
}

fn countdown_ui(ui: &mut egui::Ui, status: &Status, clock: &SharedClock) {
    if status.sweep_running {
        ui.spinner();
        ui.label("Sweeping…");
        return;
    }
    let left = status.next_sweep_due - clock.now();
    let left = left.min(status.sweep_interval);
    let elapsed = status.sweep_interval.saturating_sub(left);
    let fraction = elapsed.as_secs_f32() / status.sweep_interval.as_secs_f32();
    ui.label(format!("Next sweep in {}", format_countdown(left)));
    ui.add(
        egui::ProgressBar::new(fraction)
            .desired_width(160.0)
            .desired_height(10.0),
    );
}

fn counts_ui(ui: &mut egui::Ui, view: &StatusView<'_>, status: &Status) {
    ui.horizontal_wrapped(|ui| {
        let active = view.sessions.saturating_sub(view.stale);
        ui.label(format!("{active} active"));
        ui.separator();
        ui.label(format!("{} stale awaiting sweep", view.stale));
        ui.separator();
        ui.label(format!("{} removed so far", status.removed_total));
        ui.separator();
        ui.label(counted(status.sweeps_finished, "sweep").to_string());
        if let Some(Event::SweepFinished { removed, took, .. }) = &status.last_sweep {
            ui.separator();
            ui.label(format!(
                "last sweep removed {removed} in {}",
                format_duration(*took)
            ));
        }
        if status.sweeps_failed > 0 {
            ui.separator();
            ui.colored_label(
                ui.visuals().error_fg_color,
                format!("{} failed", counted(status.sweeps_failed, "sweep")),
            );
        }
        if status.records_dropped_total > 0 {
            ui.separator();
            ui.colored_label(
                ui.visuals().warn_fg_color,
                format!(
                    "{} log records dropped (window too slow)",
                    status.records_dropped_total
                ),
            );
        }
    });
}

fn settings_ui(ui: &mut egui::Ui, form: &mut SettingsForm, actions: &mut Vec<StatusAction>) {
    ui.horizontal(|ui| {
        let idle_label = ui.label("Idle timeout");
        let idle = ui
            .add(egui::TextEdit::singleline(&mut form.idle_timeout).desired_width(60.0))
            .labelled_by(idle_label.id);
        let interval_label = ui.label("Sweep interval");
        let interval = ui
            .add(egui::TextEdit::singleline(&mut form.sweep_interval).desired_width(60.0))
            .labelled_by(interval_label.id);
        let entered = (idle.lost_focus() || interval.lost_focus())
            && ui.input(|input| input.key_pressed(egui::Key::Enter));
        if ui.button("Apply").clicked() || entered {
            match form.parse() {
                Ok((idle_timeout, sweep_interval)) => {
                    form.error = None;
                    actions.push(StatusAction::ApplySettings {
                        idle_timeout,
                        sweep_interval,
                    });
                }
                Err(error) => form.error = Some(error),
            }
        }
        match &form.error {
            Some(error) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
            None => {
                ui.weak("e.g. 30s, 5m, 1h");
            }
        }
    });
}

fn source_ui(ui: &mut egui::Ui, source: &SourceSummary, clock: &SharedClock) {
    let stats = &source.stats;
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("Source: {}", source.description));
        if source.kind == Source::Replay {
            ui.separator();
            let log_time = clock.wall_time(clock.now());
            ui.label(format!(
                "log time {}",
                log_time.format("%Y-%m-%d %H:%M:%S UTC")
            ));
            ui.separator();
            match clock.speed() {
                Some(speed) => ui.label(format!("speed {speed}×")),
                None => ui.label("maximum speed"),
            };
        }
        if source.kind == Source::Api {
            ui.separator();
            let per_sec = SourceStats::get(&stats.requests_per_sec);
            ui.label(format!("{per_sec} requests/s"));
            ui.separator();
            ui.label(counted(SourceStats::get(&stats.requests), "request").to_string());
        }
        ui.separator();
        ui.label(counted(SourceStats::get(&stats.reports_sent), "report").to_string());
        let lines = SourceStats::get(&stats.lines_read);
        if lines > 0 {
            ui.separator();
            ui.label(format!("{} read", counted(lines, "line")));
        }
        let rejected = SourceStats::get(&stats.rejected);
        if source.kind == Source::Api {
            ui.separator();
            ui.label(format!("{rejected} rejected"));
        } else if rejected > 0 {
            ui.separator();
            ui.colored_label(ui.visuals().warn_fg_color, format!("{rejected} skipped"));
        }
        if stats.is_finished() {
            ui.separator();
            ui.label("input finished");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_keeps_its_end() {
        assert_eq!(shorten_middle("short", 10), "short");
        let long = format!("cannot export to /{}: File name too long", "a".repeat(500));
        let shown = shorten_middle(&long, 60);
        assert_eq!(shown.chars().count(), 60);
        assert!(shown.starts_with("cannot export to /aaa"));
        assert!(shown.ends_with("a: File name too long"));
        assert!(shown.contains('…'));
    }
}
