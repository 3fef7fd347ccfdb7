//! The sessions table: one virtualised row per session, sortable by any column. Drawn
//! on the UI thread from [`SessionRows`]; ages are computed from the clock each frame,
//! so they advance without engine events.

use std::borrow::Cow;
use std::time::Duration;

use egui_extras::{Column as TableColumn, TableBuilder};

use super::format::{format_age, format_clock_time, format_countdown, visible_text};
use super::rows::{Column, SessionRows};
use crate::engine::clock::{MonoTime, SharedClock};

const ROW_HEIGHT: f32 = 18.0;

/// Draws the table and applies clicks on column headings to the sort order. With no
/// sessions, shows whether there never were any or all were removed.
pub fn sessions_table_ui(
    ui: &mut egui::Ui,
    rows: &mut SessionRows,
    clock: &SharedClock,
    idle_timeout: Duration,
    removed_total: u64,
) {
    if rows.is_empty() {
        let text = match removed_total {
            0 => "No sessions yet".to_owned(),
            removed => format!("No sessions now; {removed} removed so far"),
        };
        ui.centered_and_justified(|ui| ui.weak(text));
        return;
    }

    let now = clock.now();
    let (sort_column, ascending) = rows.sort();
    let mut clicked = None;

    TableBuilder::new(ui)
        .id_salt("sessions")
        .striped(true)
        .resizable(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(TableColumn::initial(260.0).at_least(80.0).clip(true))
        .column(TableColumn::initial(80.0).at_least(60.0))
        .columns(TableColumn::initial(90.0).at_least(70.0), 2)
        .column(TableColumn::initial(80.0).at_least(60.0))
        .column(TableColumn::initial(200.0).at_least(120.0))
        .column(TableColumn::remainder().at_least(70.0))
        .header(ROW_HEIGHT + 4.0, |mut header| {
            for column in Column::ALL {
                header.col(|ui| {
                    let sorted = column == sort_column;
                    if ui.selectable_label(sorted, column.title()).clicked() {
                        clicked = Some(column);
                    }
                    if sorted {
                        sort_arrow_ui(ui, ascending);
                    }
                });
            }
        })
        .body(|body| {
            let sorted = rows.sorted();
            body.rows(ROW_HEIGHT, sorted.len(), |mut row| {
                let Some(session) = sorted.get(row.index()) else {
                    return;
                };
                row.col(|ui| {
                    let display_id = visible_text(session.id.as_str());
                    let label = ui.label(display_id.as_ref());
                    if matches!(display_id, Cow::Owned(_)) {
                        label.on_hover_text(
                            "This id contains invisible or direction-changing characters, \
                             shown as their code points.",
                        );
                    }
                });
                row.col(|ui| {
                    ui.label(session.source.name());
                });
                row.col(|ui| {
                    ui.label(format_clock_time(clock.wall_time(session.created)));
                });
                row.col(|ui| {
                    ui.label(format_clock_time(clock.wall_time(session.last_active)));
                });
                row.col(|ui| {
                    ui.label(format_age(session.idle_at(now)));
                });
                row.col(|ui| {
                    time_left_ui(ui, session.last_active, now, idle_timeout);
                });
                row.col(|ui| {
                    ui.label(session.activity_count.to_string());
                });
            });
        });

    if let Some(column) = clicked {
        rows.sort_by(column);
    }
}

/// Paints a small triangle pointing up for ascending order, down for descending. The
/// default fonts have no arrow glyphs, so it is drawn rather than typed.
fn sort_arrow_ui(ui: &mut egui::Ui, ascending: bool) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(8.0, 8.0), egui::Sense::hover());
    let (tip, base) = if ascending {
        (rect.center_top(), rect.bottom())
    } else {
        (rect.center_bottom(), rect.top())
    };
    let points = vec![
        tip,
        egui::pos2(rect.left(), base),
        egui::pos2(rect.right(), base),
    ];
    let color = ui.visuals().strong_text_color();
    ui.painter().add(egui::Shape::convex_polygon(
        points,
        color,
        egui::Stroke::NONE,
    ));
}

fn time_left_ui(ui: &mut egui::Ui, last_active: MonoTime, now: MonoTime, idle_timeout: Duration) {
    let stale_at = last_active + idle_timeout;
    if now >= stale_at {
        ui.colored_label(ui.visuals().warn_fg_color, "stale, removed at next sweep");
    } else {
        ui.label(format_countdown(stale_at - now));
    }
}
