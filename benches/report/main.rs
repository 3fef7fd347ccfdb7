//! Side-by-side comparisons of the session engine with common alternatives, run in one
//! process: `cargo bench --bench report`. Prints one line per comparison:
//!
//! ```text
//! name: ours X, baseline Y, ratio Z, target T: met
//! ```
//!
//! The ratio is always "how many times better ours is" for speed and memory lines, and
//! "ours over baseline" for the scaling line, as each line's target states. Timings are
//! medians of several runs where a run can be repeated cheaply. BENCHMARKS.md explains
//! the method and records the figures of one run.

mod alloc;
mod channel;
mod memory;
mod python;
mod replay;
mod sweep;
mod touch;
mod window;
mod workload;

use std::fmt;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// A measured quantity with its unit, printed with three significant digits.
#[derive(Debug, Clone, Copy)]
enum Figure {
    Time(Duration),
    PerSecond(f64, &'static str),
    Bytes(f64, &'static str),
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Figure::Time(span) => {
                let secs = span.as_secs_f64();
                if secs >= 1.0 {
                    write!(f, "{secs:.2} s")
                } else if secs >= 1e-3 {
                    write!(f, "{:.2} ms", secs * 1e3)
                } else {
                    write!(f, "{:.1} us", secs * 1e6)
                }
            }
            Figure::PerSecond(rate, what) => {
                if rate >= 1e6 {
                    write!(f, "{:.2}M {what}/s", rate / 1e6)
                } else {
                    write!(f, "{:.0}k {what}/s", rate / 1e3)
                }
            }
            Figure::Bytes(bytes, what) => write!(f, "{bytes:.0} B{what}"),
        }
    }
}

/// Whether a ratio must reach a bound or stay under it.
#[derive(Debug, Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
    /// The target is on ours alone, as stated; the ratio is for information.
    Absolute(&'static str, bool),
}

/// One line of the report.
struct Comparison {
    name: String,
    ours: String,
    baseline: String,
    ratio: f64,
    target: Target,
}

impl Comparison {
    fn new(name: impl Into<String>, ours: Figure, baseline: Figure, ratio: f64) -> Self {
        Comparison {
            name: name.into(),
            ours: ours.to_string(),
            baseline: baseline.to_string(),
            ratio,
            target: Target::AtLeast(1.0),
        }
    }

    fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    fn baseline_text(mut self, text: impl Into<String>) -> Self {
        self.baseline = text.into();
        self
    }

    fn met(&self) -> bool {
        match self.target {
            Target::AtLeast(bound) => self.ratio >= bound,
            Target::AtMost(bound) => self.ratio <= bound,
            Target::Absolute(_, met) => met,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match self.target {
            Target::AtLeast(bound) => format!(">= {bound}x"),
            Target::AtMost(bound) => format!("<= {bound}x"),
            Target::Absolute(text, _) => text.to_owned(),
        };
        let verdict = if self.met() { "met" } else { "NOT MET" };
        write!(
            f,
            "{}: ours {}, baseline {}, ratio {:.2}x, target {target}: {verdict}",
            self.name, self.ours, self.baseline, self.ratio
        )
    }
}

/// A named group of comparisons that the command line can select.
type Section = (&'static str, fn() -> Vec<Comparison>);

/// Returns the median of `runs` timings of `run`, each preceded by an untimed `setup`.
/// Drops the value `run` returns only after the timing stops.
fn median_time<S, R>(
    runs: usize,
    mut setup: impl FnMut() -> S,
    mut run: impl FnMut(S) -> R,
) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let state = setup();
            let started = Instant::now();
            let kept = run(state);
            let elapsed = started.elapsed();
            // What the run keeps is freed outside the timing, as the Python baseline
            // times its comprehension but not freeing the dict it keeps.
            drop(kept);
            elapsed
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter runs only the matching sections.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let wanted = |section: &str| filters.is_empty() || filters.iter().any(|f| section.contains(f));
    let started = Instant::now();

    let sections: [Section; 7] = [
        ("sweep", sweep::compare),
        ("touch", touch::compare),
        ("channel", channel::compare),
        ("memory", memory::compare),
        ("mass-sweep", memory::compare_mass_sweep),
        ("window", window::compare),
        ("replay", replay::compare),
    ];
    let mut missed = 0;
    for (section, compare) in sections {
        if !wanted(section) {
            continue;
        }
        for comparison in compare() {
            if !comparison.met() {
                missed += 1;
            }
            println!("{comparison}");
        }
    }
    println!(
        "report finished in {:.0} s; {missed} targets not met",
        started.elapsed().as_secs_f64()
    );
}
