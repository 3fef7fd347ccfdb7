//! Session Monitor: parses the command line, sets up logging and signals, and runs the
//! window, or the headless mode when asked or when no display is available.

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::Parser;
use session_monitor::cli::Options;
use session_monitor::headless;
use session_monitor::runtime::Runtime;
use session_monitor::ui::{self, WindowError};

fn main() -> ExitCode {
    let options = Options::parse();
    // Without RUST_LOG, rfd is silenced. Where no file dialog exists it logs three error
    // lines on every export, and the window already reports that and offers a typed path.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,rfd=off"))
        .init();

    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let window_context: Arc<OnceLock<egui::Context>> = Arc::new(OnceLock::new());
    let handler_context = Arc::clone(&window_context);
    let installed = ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
        if let Some(context) = handler_context.get() {
            context.send_viewport_cmd(egui::ViewportCommand::Close);
            context.request_repaint();
        }
    });
    if let Err(error) = installed {
        log::warn!("Ctrl-C and SIGTERM will not stop the program cleanly: {error}");
    }

    let result = if options.headless {
        Runtime::start_headless(&options)
            .and_then(|runtime| headless::run(runtime, &options, &stop_rx))
    } else if let Some(reason) = missing_display() {
        if options.window {
            eprintln!("session-monitor: {reason}, and --window requires a window");
            return ExitCode::FAILURE;
        }
        eprintln!("{reason}; running headless (pass --headless to skip this check)");
        Runtime::start_headless(&options)
            .and_then(|runtime| headless::run(runtime, &options, &stop_rx))
    } else {
        run_window(&options, window_context, &stop_rx)
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("session-monitor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_window(
    options: &Options,
    context: Arc<OnceLock<egui::Context>>,
    stop: &crossbeam_channel::Receiver<()>,
) -> anyhow::Result<()> {
    let runtime = Runtime::start(options, ui::context_waker(Arc::clone(&context)))?;
    match ui::run(
        runtime,
        options.export_log.clone(),
        options.duration,
        context,
    ) {
        Ok(()) => Ok(()),
        Err(WindowError::Unavailable { error, .. }) if options.window => {
            Err(anyhow::anyhow!("could not open a window: {error}"))
        }
        Err(WindowError::Unavailable { runtime, error }) => {
            eprintln!("Could not open a window ({error}); running headless");
            headless::run(*runtime, options, stop)
        }
        Err(error) => Err(anyhow::anyhow!("{error}")),
    }
}

/// Returns why no window can be shown, when neither X11 nor Wayland is reachable.
fn missing_display() -> Option<&'static str> {
    if cfg!(target_os = "linux") || cfg!(target_os = "freebsd") {
        let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        if !has_display {
            return Some("No display found (DISPLAY and WAYLAND_DISPLAY are not set)");
        }
    }
    None
}
