//! Session Monitor: an in-memory session engine with a stale-session scheduler, the
//! sources that feed it, and a window that shows it work.

pub mod cli;
pub mod count;
pub mod engine;
pub mod export;
pub mod headless;
pub mod log_book;
pub mod runtime;
pub mod sources;
#[cfg(feature = "gui")]
pub mod ui;
pub mod visible;
