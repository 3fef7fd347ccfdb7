//! The log pane: the newest log lines, drawn with `show_rows` so only visible lines cost
//! anything. The pane lists at most [`LogView::DEFAULT_ON_SCREEN`] lines; the full log
//! stays in the [`LogBook`] for export. Owned by the UI thread.

use std::collections::VecDeque;

use egui::Color32;
use egui::text::{LayoutJob, TextFormat};

use super::format::visible_text;
use crate::engine::event::{Level, Record};
use crate::log_book::LogBook;

/// Selection of log lines for the pane.
#[derive(Debug)]
pub struct LogView {
    show_session_events: bool,
    on_screen: usize,
    /// Log book positions of the listed lines, oldest first.
    listed: VecDeque<u64>,
    /// Log book position of the next record not yet considered.
    scanned_to: u64,
}

impl Default for LogView {
    fn default() -> Self {
        LogView::new(LogView::DEFAULT_ON_SCREEN)
    }
}

impl LogView {
    /// Lines listed on screen by default.
    pub const DEFAULT_ON_SCREEN: usize = 50_000;

    /// Creates a view that lists at most `on_screen` lines.
    pub fn new(on_screen: usize) -> Self {
        LogView {
            show_session_events: true,
            on_screen: on_screen.max(1),
            listed: VecDeque::new(),
            scanned_to: 0,
        }
    }

    /// Returns how many lines are listed.
    pub fn listed(&self) -> usize {
        self.listed.len()
    }

    /// Lists records added to `book` since the last call.
    pub fn refresh(&mut self, book: &LogBook) {
        let start = self.scanned_to.max(book.first_index());
        for index in start..book.end_index() {
            if book.get(index).is_some_and(|record| self.shows(record)) {
                if self.listed.len() == self.on_screen {
                    self.listed.pop_front();
                }
                self.listed.push_back(index);
            }
        }
        self.scanned_to = book.end_index();
        while self
            .listed
            .front()
            .is_some_and(|&index| index < book.first_index())
        {
            self.listed.pop_front();
        }
    }

    fn shows(&self, record: &Record) -> bool {
        self.show_session_events || record.level() > Level::Debug
    }

    /// Lists the newest matching records again after the filter changed, walking back
    /// from the newest record only until the pane is full.
    fn rebuild(&mut self, book: &LogBook) {
        self.listed.clear();
        let mut index = book.end_index();
        while index > book.first_index() && self.listed.len() < self.on_screen {
            index -= 1;
            if book.get(index).is_some_and(|record| self.shows(record)) {
                self.listed.push_front(index);
            }
        }
        self.scanned_to = book.end_index();
    }
}

/// Draws the log pane.
pub fn log_panel_ui(ui: &mut egui::Ui, view: &mut LogView, book: &LogBook) {
    ui.horizontal(|ui| {
        ui.strong("Log");
        if ui
            .checkbox(&mut view.show_session_events, "Session events")
            .on_hover_text("List each session created and removed (debug level)")
            .changed()
        {
            view.rebuild(book);
        }
        ui.weak(format!(
            "{} lines listed, {} in the log (export for all)",
            view.listed.len(),
            book.len()
        ));
    });
    ui.separator();

    let row_height = ui.text_style_height(&egui::TextStyle::Monospace);
    egui::ScrollArea::both()
        .id_salt("log")
        .auto_shrink([false, false])
        .stick_to_bottom(true)
        .show_rows(ui, row_height, view.listed.len(), |ui, range| {
            for position in range {
                let Some(record) = view.listed.get(position).and_then(|&i| book.get(i)) else {
                    continue;
                };
                log_line_ui(ui, record);
            }
        });
}

fn log_line_ui(ui: &mut egui::Ui, record: &Record) {
    let visuals = ui.visuals();
    let level_color = match record.level() {
        Level::Debug => visuals.weak_text_color(),
        Level::Info => visuals.text_color(),
        Level::Warn => visuals.warn_fg_color,
        Level::Error => visuals.error_fg_color,
    };
    let font = egui::TextStyle::Monospace.resolve(ui.style());
    let format = |color: Color32| TextFormat::simple(font.clone(), color);

    let mut line = LayoutJob::default();
    let time = record.wall.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string();
    line.append(&format!("{time}  "), 0.0, format(visuals.weak_text_color()));
    line.append(
        &format!("{:<5}  ", record.level().name()),
        0.0,
        format(level_color),
    );
    let text = record.event.to_string();
    line.append(&visible_text(&text), 0.0, format(visuals.text_color()));
    ui.add(egui::Label::new(line).extend());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clock::MonoTime;

    #[test]
    fn view_caps_listed_lines() {
        let mut book = LogBook::new(1000);
        for n in 0..100 {
            book.push_message(Level::Info, format!("line {n}"), MonoTime::ZERO);
        }
        let mut view = LogView::new(10);
        view.refresh(&book);
        assert_eq!(view.listed(), 10);
        assert_eq!(view.listed.front(), Some(&90));
    }

    #[test]
    fn filter_hides_debug_lines() {
        let mut book = LogBook::new(1000);
        book.push_message(Level::Debug, "detail".into(), MonoTime::ZERO);
        book.push_message(Level::Info, "start".into(), MonoTime::ZERO);
        let mut view = LogView::new(10);
        view.show_session_events = false;
        view.rebuild(&book);
        assert_eq!(view.listed(), 1);
        view.show_session_events = true;
        view.rebuild(&book);
        assert_eq!(view.listed(), 2);
    }
}
