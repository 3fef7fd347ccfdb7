//! The log pane with a large log: only visible lines are drawn, the newest line is in
//! view, and the on-screen cap is stated.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use session_monitor::engine::clock::MonoTime;
use session_monitor::engine::event::Level;
use session_monitor::log_book::LogBook;
use session_monitor::ui::{LogView, log_panel_ui};

const LINES: usize = 500_000;

struct Pane {
    view: LogView,
    book: LogBook,
}

fn pane_with_lines(count: usize) -> Harness<'static, Pane> {
    let mut book = LogBook::new(count);
    for n in 0..count {
        book.push_message(Level::Info, format!("line {n}"), MonoTime::ZERO);
    }
    let mut view = LogView::default();
    view.refresh(&book);
    Harness::builder().with_size([900.0, 400.0]).build_ui_state(
        |ui, pane: &mut Pane| log_panel_ui(ui, &mut pane.view, &pane.book),
        Pane { view, book },
    )
}

fn shows(harness: &Harness<'_, Pane>, text: &str) -> bool {
    harness.query_by_label_contains(text).is_some()
}

#[test]
fn large_log_shows_newest_line() {
    let mut harness = pane_with_lines(LINES);
    harness.run();
    assert!(shows(&harness, "line 499999"), "the newest line is in view");
    // The pane lists the newest 50,000 lines; older ones are not listed at all.
    assert!(
        !shows(&harness, "line 250000"),
        "lines past the cap are not listed"
    );
    // Listed, but scrolled out of view, so not drawn.
    assert!(
        !shows(&harness, "line 460000"),
        "only visible lines are drawn"
    );
}

#[test]
fn large_log_states_screen_cap() {
    let mut harness = pane_with_lines(LINES);
    harness.run();
    let status = format!(
        "{} lines listed, {LINES} in the log (export for all)",
        LogView::DEFAULT_ON_SCREEN
    );
    assert!(shows(&harness, &status));
}

#[test]
fn new_lines_keep_view_at_bottom() {
    let mut harness = pane_with_lines(1_000);
    harness.run();
    for n in 1_000..1_050 {
        let pane = harness.state_mut();
        pane.book
            .push_message(Level::Info, format!("line {n}"), MonoTime::ZERO);
        pane.view.refresh(&pane.book);
    }
    harness.run();
    assert!(shows(&harness, "line 1049"));
    assert!(!shows(&harness, "line 1000 "));
}
