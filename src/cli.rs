//! Command-line options.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::engine::event::format_duration;
use crate::engine::{DEFAULT_IDLE_TIMEOUT, DEFAULT_SWEEP_INTERVAL, check_setting};
use crate::sources::api::DEFAULT_LISTEN;
use crate::sources::replay::MAX_REORDER_WINDOW;

/// Idle timeout of the fast demo.
pub const DEMO_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Sweep interval of the fast demo.
pub const DEMO_SWEEP_INTERVAL: Duration = Duration::from_secs(15);

/// Watch an in-memory session store expire idle sessions.
///
/// Sessions come from a built-in traffic simulator unless --replay names an access log
/// or --listen serves the HTTP API for apps that report activity.
/// Durations take a number and a unit: 30s, 5m, 1h30m, 250ms.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about)]
pub struct Options {
    /// Idle time after which a session is stale, 100ms to 365days [default: 5m; 20s with
    /// --demo]
    #[arg(long, value_name = "DURATION", value_parser = parse_setting)]
    pub idle_timeout: Option<Duration>,

    /// Time between scheduled sweeps of stale sessions, 100ms to 365days [default: 5m;
    /// 15s with --demo]
    #[arg(long, value_name = "DURATION", value_parser = parse_setting)]
    pub sweep_interval: Option<Duration>,

    /// Fast demo: idle timeout 20s and sweep interval 15s, unless set explicitly
    #[arg(long)]
    pub demo: bool,

    /// Replay a web server access log (Common or Combined Log Format) instead of
    /// simulating traffic
    #[arg(long, value_name = "PATH")]
    pub replay: Option<PathBuf>,

    /// Replay speed as a multiple of the log's time (2 = twice as fast), or "max" to
    /// replay as fast as possible with the engine's clock following the log
    #[arg(long, value_name = "FACTOR", default_value = "1", value_parser = parse_speed)]
    pub speed: Speed,

    /// How far back in log time a replayed line may be out of order and still be
    /// applied in time order, 0s to 1day
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_reorder_window)]
    pub reorder_window: Duration,

    /// Number of simulated users
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub users: u32,

    /// Seed for the simulator's random numbers, for a repeatable run
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Serve the HTTP API for apps that report session activity, on ADDR (an IP address
    /// and port, or a port on 127.0.0.1) [default without a value: 127.0.0.1:7878]
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_LISTEN,
        value_parser = parse_listen_addr
    )]
    pub listen: Option<SocketAddr>,

    /// File with the bearer token that API requests must send; required to listen on a
    /// non-loopback address
    #[arg(long, value_name = "PATH", requires = "listen")]
    pub token_file: Option<PathBuf>,

    /// Run the traffic simulator beside the API; with --listen alone only the API runs
    #[arg(long, conflicts_with = "replay")]
    pub simulate: bool,

    /// Run without a window and print log lines to standard output
    #[arg(long, conflicts_with = "window")]
    pub headless: bool,

    /// Require a window: exit with an error, instead of running headless, when no
    /// window can be opened
    #[arg(long)]
    pub window: bool,

    /// Stop after this much real time (in the window too)
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Write the log to PATH on exit; the extension picks the format: .txt, .csv or .jsonl
    #[arg(long, value_name = "PATH", value_parser = parse_export_path)]
    pub export_log: Option<PathBuf>,

    /// Also print each session created and removed (headless only)
    #[arg(long, short)]
    pub verbose: bool,
}

/// Highest replay speed factor: a day of log in under a tenth of a second. Above it,
/// use `max`.
pub const MAX_SPEED: f64 = 1_000_000.0;

/// Slowest replay speed: a day of log time in about three years.
pub const MIN_SPEED: f64 = 0.001;

/// Replay speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// A multiple of the log's own pace.
    Factor(f64),
    /// As fast as the engine applies lines.
    Max,
}

impl Options {
    /// Returns the idle timeout in effect.
    pub fn idle_timeout(&self) -> Duration {
        match (self.idle_timeout, self.demo) {
            (Some(idle_timeout), _) => idle_timeout,
            (None, true) => DEMO_IDLE_TIMEOUT,
            (None, false) => DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// Returns the sweep interval in effect.
    pub fn sweep_interval(&self) -> Duration {
        match (self.sweep_interval, self.demo) {
            (Some(interval), _) => interval,
            (None, true) => DEMO_SWEEP_INTERVAL,
            (None, false) => DEFAULT_SWEEP_INTERVAL,
        }
    }
}

/// Checks an exit export's path at start-up, so a run's log is not lost at exit to a
/// wrong extension or a missing folder.
fn parse_export_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    crate::export::check_path(&path).map_err(|error| error.to_string())?;
    Ok(path)
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(duration)
}

fn parse_setting(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    check_setting("the value", duration)?;
    Ok(duration)
}

fn parse_reorder_window(text: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if window > MAX_REORDER_WINDOW {
        return Err(format!(
            "must be at most {}, the longest reorder window; got {text}",
            format_duration(MAX_REORDER_WINDOW)
        ));
    }
    Ok(window)
}

/// Parses `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT` or a port alone (on 127.0.0.1).
fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("invalid port {port:?}"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("expected an address and port such as 127.0.0.1:7878 or [::1]:7878; got {text:?}")
    })
}

fn parse_speed(text: &str) -> Result<Speed, String> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    let factor: f64 = text
        .parse()
        .map_err(|_| format!("expected a number such as 0.5, 1 or 60, or \"max\"; got {text:?}"))?;
    if !(factor.is_finite() && (MIN_SPEED..=MAX_SPEED).contains(&factor)) {
        return Err(format!(
            "must be a number from {MIN_SPEED} to {MAX_SPEED}, or \"max\"; got {text}"
        ));
    }
    Ok(Speed::Factor(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("session-monitor").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_five_minutes() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.idle_timeout(), Duration::from_secs(300));
        assert_eq!(options.sweep_interval(), Duration::from_secs(300));
        assert_eq!(options.speed, Speed::Factor(1.0));
    }

    #[test]
    fn demo_shortens_unless_explicit() {
        let options = parse(&["--demo", "--idle-timeout", "1m"]).unwrap();
        assert_eq!(options.idle_timeout(), Duration::from_secs(60));
        assert_eq!(options.sweep_interval(), Duration::from_secs(15));
    }

    #[test]
    fn durations_take_units() {
        let options = parse(&["--idle-timeout", "1h30m", "--sweep-interval", "250ms"]).unwrap();
        assert_eq!(options.idle_timeout(), Duration::from_secs(5400));
        assert_eq!(options.sweep_interval(), Duration::from_millis(250));
    }

    #[test]
    fn zero_and_unitless_durations_rejected() {
        assert!(parse(&["--idle-timeout", "0s"]).is_err());
        assert!(parse(&["--sweep-interval", "1ns"]).is_err());
        assert!(parse(&["--idle-timeout", "400days"]).is_err());
        assert!(parse(&["--sweep-interval", "5"]).is_err());
    }

    #[test]
    fn listen_takes_optional_address() {
        assert_eq!(parse(&[]).unwrap().listen, None);
        let default: SocketAddr = DEFAULT_LISTEN.parse().unwrap();
        assert_eq!(parse(&["--listen"]).unwrap().listen, Some(default));
        assert_eq!(
            parse(&["--listen", "--headless"]).unwrap().listen,
            Some(default)
        );
        let cases = [
            ("0.0.0.0:8080", "0.0.0.0:8080"),
            ("[::1]:9000", "[::1]:9000"),
            ("9000", "127.0.0.1:9000"),
            ("localhost:9001", "127.0.0.1:9001"),
        ];
        for (given, expected) in cases {
            let listen = parse(&["--listen", given]).unwrap().listen;
            assert_eq!(listen, Some(expected.parse().unwrap()), "{given}");
        }
        assert!(parse(&["--listen", "example.com:80"]).is_err());
        assert!(parse(&["--listen", "127.0.0.1"]).is_err());
    }

    #[test]
    fn token_file_needs_listen_and_simulate_excludes_replay() {
        assert!(parse(&["--token-file", "t"]).is_err());
        assert!(parse(&["--listen", "--token-file", "t"]).is_ok());
        assert!(parse(&["--simulate", "--replay", "x.log"]).is_err());
    }

    #[test]
    fn reorder_window_at_most_a_day() {
        let window = |text| parse(&["--reorder-window", text]).map(|o| o.reorder_window);
        assert_eq!(window("0s").unwrap(), Duration::ZERO);
        assert_eq!(window("1day").unwrap(), MAX_REORDER_WINDOW);
        let error = window("1day 1s").unwrap_err().to_string();
        assert!(
            error.contains("must be at most 1day, the longest reorder window; got 1day 1s"),
            "{error}"
        );
        assert!(window("5").is_err());
    }

    #[test]
    fn speed_accepts_factor_and_max() {
        assert_eq!(
            parse(&["--speed", "60"]).unwrap().speed,
            Speed::Factor(60.0)
        );
        assert_eq!(parse(&["--speed", "MAX"]).unwrap().speed, Speed::Max);
        assert!(parse(&["--speed", "0"]).is_err());
        assert!(parse(&["--speed", "1e-300"]).is_err());
        assert!(parse(&["--speed", "0.001"]).is_ok());
        assert!(parse(&["--speed", "-2"]).is_err());
        assert!(parse(&["--speed", "inf"]).is_err());
        assert!(parse(&["--speed", "1e20"]).is_err());
        assert!(parse(&["--speed", "1000000"]).is_ok());
        assert!(parse(&["--speed", "fast"]).is_err());
    }
}
