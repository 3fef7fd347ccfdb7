//! The built-in traffic simulator, the default session source.
//!
//! Each simulated user alternates between an active spell and a quiet spell. While
//! active, it acts at random intervals of about a fifteenth of the idle timeout. A quiet
//! spell lasts longer than the idle timeout, so the session goes stale: a sweep removes
//! it, or it expires on access when the user returns. All timings are multiples of the
//! idle timeout, so a 5-minute timeout and a 20-second one both show sessions aging out
//! within a few timeouts.
//!
//! [`Simulator`] is a pure state machine driven by the times it is given. [`spawn`] runs
//! it on the "simulator" thread against the engine's clock.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::ops::Range;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::{RunningSource, SourceContext, SourceStats};
use crate::engine::DEFAULT_IDLE_TIMEOUT;
use crate::engine::clock::{MonoTime, SharedClock};
use crate::engine::event::{Activity, Command};
use crate::engine::session::{SessionId, Source};

/// Divisor of the time scale that gives the mean think time between two actions of an
/// active user. A 5-minute idle timeout gives 20 seconds.
const THINK_TIME_DIVISOR: f64 = 15.0;

/// Range of the factor applied to the mean think time. The longest think time is
/// 1.75 / 15 (about 0.12) of the time scale, so an active user never goes stale between
/// actions unless the idle timeout is below [`MIN_TIME_SCALE`].
const THINK_JITTER: Range<f64> = 0.25..1.75;

/// Range of an active spell's length, in multiples of the time scale.
const ACTIVE_SPELL: Range<f64> = 0.2..2.0;

/// Range of a quiet spell's length, in multiples of the time scale. The time scale is
/// at least the idle timeout, so every quiet spell leaves the session stale.
const QUIET_SPELL: Range<f64> = 1.0..3.0;

/// Span after the start within which each user first acts, at a random time, so the
/// table fills in the first seconds instead of all at once.
const STARTUP_SPREAD: Duration = Duration::from_secs(3);

/// Minimum time scale, so that a tiny idle timeout does not shrink think times to a
/// busy loop. With an idle timeout below it, quiet spells still leave sessions stale,
/// but sessions may also expire between two actions of an active user.
const MIN_TIME_SCALE: Duration = Duration::from_secs(1);

/// Maximum activity reports in one `TouchBatch` command.
const MAX_BATCH: usize = 1024;

/// Maximum single sleep, so the thread re-reads the clock at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Poll interval for a clock that does not run by itself, such as a manual clock.
const MANUAL_CLOCK_POLL: Duration = Duration::from_millis(20);

/// Settings of the traffic simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatorOptions {
    /// Number of simulated users, each with one session key.
    pub users: usize,
    /// Seed for the random numbers, or `None` to pick one at random.
    pub seed: Option<u64>,
    /// The engine's idle timeout, which sets the simulator's time scale.
    pub idle_timeout: Duration,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        SimulatorOptions {
            users: 40,
            seed: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Random spell lengths and think times, as multiples of one time scale.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// The idle timeout, raised to at least [`MIN_TIME_SCALE`].
    scale: Duration,
}

impl Timing {
    fn think_time(self, rng: &mut fastrand::Rng) -> Duration {
        let jitter = random_in(rng, THINK_JITTER);
        scale_by(self.scale, jitter / THINK_TIME_DIVISOR)
    }

    fn active_spell(self, rng: &mut fastrand::Rng) -> Duration {
        scale_by(self.scale, random_in(rng, ACTIVE_SPELL))
    }

    fn quiet_spell(self, rng: &mut fastrand::Rng) -> Duration {
        scale_by(self.scale, random_in(rng, QUIET_SPELL))
    }
}

fn random_in(rng: &mut fastrand::Rng, range: Range<f64>) -> f64 {
    range.start + rng.f64() * (range.end - range.start)
}

/// Multiplies `span` by `factor`, saturating instead of panicking on overflow.
fn scale_by(span: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(span.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// One simulated user. The quiet spell is not stored: it is the gap between the end of
/// one active spell and the first action of the next.
#[derive(Debug)]
struct User {
    id: SessionId,
    /// Each user has its own generator, so its timeline does not depend on the others.
    rng: fastrand::Rng,
    next_action: MonoTime,
    spell_end: MonoTime,
}

impl User {
    /// Schedules the action after one taken at `now`: after a think time while the
    /// active spell lasts, otherwise after a quiet spell, which starts a new active spell.
    fn act(&mut self, now: MonoTime, timing: Timing) {
        let next = now + timing.think_time(&mut self.rng);
        if next <= self.spell_end {
            self.next_action = next;
            return;
        }
        self.next_action = now + timing.quiet_spell(&mut self.rng);
        self.spell_end = self.next_action + timing.active_spell(&mut self.rng);
    }
}

/// Schedule of every simulated user's next action. It reads no clock: the caller passes
/// the time, so tests drive it with made-up times.
///
/// The timings are fixed by the idle timeout given at creation. When the engine's idle
/// timeout changes later, the simulator keeps its original timings. With a longer new
/// timeout, some returning users then find their session still active. With one below
/// about 0.12 of the original, some sessions expire between two actions.
#[derive(Debug)]
pub struct Simulator {
    users: Vec<User>,
    /// Users by their next action time, earliest first, with ties going to the lower
    /// index.
    queue: BinaryHeap<Reverse<(MonoTime, usize)>>,
    timing: Timing,
    seed: u64,
}

impl Simulator {
    /// Creates the users, each starting an active spell at a random time within the
    /// first 3 seconds after `now`.
    pub fn new(options: &SimulatorOptions, now: MonoTime) -> Self {
        let seed = options.seed.unwrap_or_else(|| fastrand::u64(..));
        let timing = Timing {
            scale: options.idle_timeout.max(MIN_TIME_SCALE),
        };
        let mut seeds = fastrand::Rng::with_seed(seed);

        let users: Vec<User> = (1..=options.users)
            .map(|number| {
                let mut rng = fastrand::Rng::with_seed(seeds.u64(..));
                let next_action = now + scale_by(STARTUP_SPREAD, rng.f64());
                let spell_end = next_action + timing.active_spell(&mut rng);
                User {
                    id: user_id(number, options.users),
                    rng,
                    next_action,
                    spell_end,
                }
            })
            .collect();
        let queue = users
            .iter()
            .enumerate()
            .map(|(index, user)| Reverse((user.next_action, index)))
            .collect();

        Simulator {
            users,
            queue,
            timing,
            seed,
        }
    }

    /// Returns the seed in use, so a run can be repeated.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Returns the number of simulated users.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Returns one activity report, stamped `now`, for each user whose action is due at
    /// `now`, and schedules each such user's next action after `now`. A user whose
    /// action fell due long before `now` still reports once.
    pub fn due_reports(&mut self, now: MonoTime) -> Vec<Activity> {
        let mut reports = Vec::new();
        while let Some(&Reverse((due, index))) = self.queue.peek() {
            if due > now {
                break;
            }
            self.queue.pop();
            let user = &mut self.users[index];
            user.act(now, self.timing);
            self.queue.push(Reverse((user.next_action, index)));
            reports.push(Activity {
                id: user.id.clone(),
                source: Source::Simulator,
                at: Some(now),
                meta: None,
            });
        }
        reports
    }

    /// Returns when the next user acts, or `None` when there are no users.
    pub fn next_wake(&self) -> Option<MonoTime> {
        self.queue.peek().map(|Reverse((due, _))| *due)
    }
}

/// Returns the session id of user `number` out of `users`, zero-padded to at least two
/// digits and to the width of `users`, so ids sort in user order: `user-07`.
fn user_id(number: usize, users: usize) -> SessionId {
    let width = digits(users).max(2);
    SessionId::new(&format!("user-{number:0width$}")).expect("a simulated user id is valid")
}

fn digits(number: usize) -> usize {
    number.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Starts the simulator on a thread named "simulator" that sends its reports to
/// `commands` as `TouchBatch` commands. The thread stops when the returned source is
/// stopped or dropped, or when the engine is gone.
pub fn spawn(
    options: SimulatorOptions,
    commands: Sender<Command>,
    clock: SharedClock,
) -> io::Result<RunningSource> {
    let simulator = Simulator::new(&options, clock.now());
    let description = format!(
        "{} simulated users, seed {}",
        simulator.users(),
        simulator.seed()
    );
    RunningSource::spawn(
        "simulator",
        Source::Simulator,
        description,
        commands,
        clock,
        move |context| run(simulator, &context),
    )
}

fn run(mut simulator: Simulator, context: &SourceContext) {
    log::info!(
        "simulator started: {} users, seed {}",
        simulator.users(),
        simulator.seed()
    );
    loop {
        let reports = simulator.due_reports(context.clock.now());
        if !send_reports(context, reports) {
            break;
        }
        if !context.sleep(wait_time(&simulator, context)) {
            break;
        }
    }
    log::info!(
        "simulator stopped after {} activity reports",
        SourceStats::get(&context.stats.reports_sent)
    );
}

/// Sends `reports` in batches. Returns `false` when the source must stop.
fn send_reports(context: &SourceContext, mut reports: Vec<Activity>) -> bool {
    while !reports.is_empty() {
        let rest = reports.split_off(reports.len().min(MAX_BATCH));
        let count = reports.len() as u64;
        if !context.send(Command::TouchBatch(reports)) {
            return false;
        }
        SourceStats::add(&context.stats.reports_sent, count);
        reports = rest;
    }
    true
}

/// Returns the real time to sleep before the next user acts.
fn wait_time(simulator: &Simulator, context: &SourceContext) -> Duration {
    let Some(wake) = simulator.next_wake() else {
        return MAX_SLEEP;
    };
    let span = wake.saturating_since(context.clock.now());
    if span.is_zero() {
        return Duration::ZERO;
    }
    context
        .clock
        .real_wait(span)
        .unwrap_or(MANUAL_CLOCK_POLL)
        .min(MAX_SLEEP)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Instant;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::engine::clock::{Clock, ManualClock, SystemClock};
    use crate::engine::event::{Event, RemovalCause};
    use crate::engine::{DEFAULT_SWEEP_INTERVAL, Engine, EngineConfig, no_waker};

    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn options(users: usize, idle_timeout: Duration) -> SimulatorOptions {
        SimulatorOptions {
            users,
            seed: Some(7),
            idle_timeout,
        }
    }

    fn at(span: Duration) -> MonoTime {
        MonoTime::from_duration(span)
    }

    /// Runs the simulator from the origin to `end`, calling it at each time that
    /// `next_wake` returns. Returns each user's report times, by id.
    fn simulate(options: &SimulatorOptions, end: MonoTime) -> BTreeMap<String, Vec<MonoTime>> {
        let mut simulator = Simulator::new(options, MonoTime::ZERO);
        let mut reports: BTreeMap<String, Vec<MonoTime>> = BTreeMap::new();
        while let Some(wake) = simulator.next_wake().filter(|wake| *wake <= end) {
            for activity in simulator.due_reports(wake) {
                let time = activity.at.expect("simulated reports carry a time");
                reports
                    .entry(activity.id.to_string())
                    .or_default()
                    .push(time);
            }
        }
        reports
    }

    fn gaps(times: &[MonoTime]) -> impl Iterator<Item = Duration> + '_ {
        times.windows(2).map(|pair| pair[1] - pair[0])
    }

    #[test]
    fn every_user_acts_within_an_hour() {
        let reports = simulate(&options(40, 5 * MINUTE), at(HOUR));
        assert_eq!(reports.len(), 40);
    }

    #[test]
    fn users_start_within_startup_spread() {
        let reports = simulate(&options(40, 5 * MINUTE), at(STARTUP_SPREAD));
        let first_times: Vec<MonoTime> = reports.values().map(|times| times[0]).collect();
        let distinct: std::collections::BTreeSet<_> = first_times.iter().collect();
        assert_eq!(reports.len(), 40);
        assert!(
            distinct.len() > 20,
            "{} distinct start times",
            distinct.len()
        );
    }

    #[test]
    fn every_user_goes_stale_in_an_hour() {
        let idle_timeout = 5 * MINUTE;
        let reports = simulate(&options(40, idle_timeout), at(HOUR));
        for (id, times) in &reports {
            assert!(
                gaps(times).any(|gap| gap >= idle_timeout),
                "{id} never paused for the idle timeout"
            );
        }
    }

    #[test]
    fn gaps_are_think_times_or_quiet_spells() {
        for idle_timeout in [20 * Duration::from_secs(1), 5 * MINUTE] {
            let reports = simulate(&options(40, idle_timeout), at(12 * idle_timeout));
            let longest_think = scale_by(idle_timeout, THINK_JITTER.end / THINK_TIME_DIVISOR);
            for (id, times) in &reports {
                for gap in gaps(times) {
                    assert!(
                        gap <= longest_think || gap >= idle_timeout,
                        "{id} paused {gap:?} with idle timeout {idle_timeout:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn next_action_is_after_now() {
        let mut simulator = Simulator::new(&options(40, 5 * MINUTE), MonoTime::ZERO);
        let mut now = MonoTime::ZERO;
        while now < at(HOUR) {
            simulator.due_reports(now);
            let wake = simulator.next_wake().unwrap();
            assert!(wake > now, "next wake {wake:?} is not after {now:?}");
            now = now + Duration::from_millis(700);
        }
    }

    #[test]
    fn reports_carry_the_given_time() {
        let mut simulator = Simulator::new(&options(40, 5 * MINUTE), MonoTime::ZERO);
        let now = at(10 * MINUTE);
        let reports = simulator.due_reports(now);
        assert!(!reports.is_empty());
        assert!(reports.iter().all(|activity| activity.at == Some(now)));
        assert!(
            reports
                .iter()
                .all(|activity| activity.source == Source::Simulator)
        );
    }

    #[test]
    fn late_call_reports_each_user_once() {
        let mut simulator = Simulator::new(&options(40, 5 * MINUTE), MonoTime::ZERO);
        let reports = simulator.due_reports(at(10 * HOUR));
        let ids: std::collections::BTreeSet<_> = reports.iter().map(|a| a.id.clone()).collect();
        assert_eq!(reports.len(), 40);
        assert_eq!(ids.len(), 40);
        assert!(simulator.next_wake().unwrap() > at(10 * HOUR));
    }

    #[test]
    fn report_count_is_plausible() {
        // An active user acts every 20 s on average with a 5-minute timeout, and is
        // active for about 1.1 of every 3.1 timeouts: about 64 reports an hour.
        let reports = simulate(&options(40, 5 * MINUTE), at(HOUR));
        let total: usize = reports.values().map(Vec::len).sum();
        assert!(total > 40 * 30, "only {total} reports");
        assert!(total < 40 * 130, "{total} reports");
    }

    #[test]
    fn timings_scale_with_idle_timeout() {
        let slow = simulate(&options(40, 5 * MINUTE), at(HOUR));
        let fast = simulate(&options(40, 20 * Duration::from_secs(1)), at(4 * MINUTE));
        let slow_total: usize = slow.values().map(Vec::len).sum();
        let fast_total: usize = fast.values().map(Vec::len).sum();
        // Four minutes are 12 timeouts of 20 s, as an hour is 12 timeouts of 5 minutes.
        let ratio = fast_total as f64 / slow_total as f64;
        assert!((0.7..1.4).contains(&ratio), "{fast_total} vs {slow_total}");
    }

    #[test]
    fn same_seed_repeats_run() {
        let first = simulate(&options(40, 5 * MINUTE), at(HOUR));
        let second = simulate(&options(40, 5 * MINUTE), at(HOUR));
        assert_eq!(first, second);
    }

    #[test]
    fn other_seed_changes_run() {
        let first = simulate(&options(40, 5 * MINUTE), at(HOUR));
        let other = SimulatorOptions {
            seed: Some(8),
            ..options(40, 5 * MINUTE)
        };
        assert_ne!(first, simulate(&other, at(HOUR)));
    }

    #[test]
    fn random_seed_is_reported() {
        let options = SimulatorOptions {
            seed: None,
            ..options(3, 5 * MINUTE)
        };
        let first = Simulator::new(&options, MonoTime::ZERO);
        let repeat = SimulatorOptions {
            seed: Some(first.seed()),
            ..options
        };
        assert_eq!(Simulator::new(&repeat, MonoTime::ZERO).seed(), first.seed());
    }

    #[test]
    fn ids_are_zero_padded() {
        let reports = simulate(&options(40, 5 * MINUTE), at(HOUR));
        let ids: Vec<&str> = reports.keys().map(String::as_str).collect();
        assert_eq!(ids.first(), Some(&"user-01"));
        assert_eq!(ids.last(), Some(&"user-40"));
    }

    #[test]
    fn ids_widen_for_many_users() {
        assert_eq!(user_id(7, 1500).as_str(), "user-0007");
        assert_eq!(user_id(7, 9).as_str(), "user-07");
    }

    #[test]
    fn no_users_never_wake() {
        let mut simulator = Simulator::new(&options(0, 5 * MINUTE), MonoTime::ZERO);
        assert_eq!(simulator.next_wake(), None);
        assert!(simulator.due_reports(at(HOUR)).is_empty());
    }

    #[test]
    fn huge_idle_timeout_does_not_panic() {
        let mut simulator = Simulator::new(&options(5, Duration::MAX), MonoTime::ZERO);
        assert_eq!(simulator.due_reports(at(STARTUP_SPREAD)).len(), 5);
    }

    /// Feeds the simulator into an engine with a manual clock until `end`, and returns
    /// the sessions removed by sweeps.
    fn swept_by_engine(
        name: &str,
        idle_timeout: Duration,
        sweep_interval: Duration,
        end: MonoTime,
    ) -> u64 {
        let clock = manual_clock();
        let config = EngineConfig {
            name: name.into(),
            idle_timeout,
            sweep_interval,
            ..EngineConfig::default()
        };
        let (engine, updates) = Engine::start(config, clock.clone(), no_waker()).unwrap();
        let mut simulator = Simulator::new(&options(40, idle_timeout), MonoTime::ZERO);
        let mut swept = 0;
        while let Some(wake) = simulator.next_wake().filter(|wake| *wake <= end) {
            clock.set(wake);
            let batch = Command::TouchBatch(simulator.due_reports(wake));
            engine.send(batch, Duration::from_secs(5)).unwrap();
            engine.sync(Duration::from_secs(5)).unwrap();
            swept += updates
                .try_iter()
                .flat_map(|update| update.records)
                .filter(|record| {
                    matches!(
                        record.event,
                        Event::SessionRemoved {
                            cause: RemovalCause::Sweep,
                            ..
                        }
                    )
                })
                .count() as u64;
        }
        swept
    }

    #[test]
    fn default_settings_sweep_within_minutes() {
        let swept = swept_by_engine(
            "simulator-default-settings",
            DEFAULT_IDLE_TIMEOUT,
            DEFAULT_SWEEP_INTERVAL,
            at(11 * MINUTE),
        );
        assert!(swept > 0);
    }

    #[test]
    fn demo_settings_sweep_within_a_minute() {
        let swept = swept_by_engine(
            "simulator-demo-settings",
            Duration::from_secs(20),
            Duration::from_secs(15),
            at(MINUTE),
        );
        assert!(swept > 0);
    }

    fn manual_clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH))
    }

    #[test]
    fn thread_sends_touch_batches() {
        let clock = manual_clock();
        let (commands, received) = crossbeam_channel::bounded(16);
        let source = spawn(options(4, 5 * MINUTE), commands, clock.clone()).unwrap();
        clock.advance(STARTUP_SPREAD);

        let mut ids = std::collections::BTreeSet::new();
        while ids.len() < 4 {
            let command = received.recv_timeout(Duration::from_secs(5)).unwrap();
            let Command::TouchBatch(batch) = command else {
                panic!("expected a TouchBatch, got {command:?}");
            };
            for activity in batch {
                assert_eq!(activity.source, Source::Simulator);
                assert_eq!(activity.at, Some(clock.now()));
                ids.insert(activity.id.to_string());
            }
        }
        assert_eq!(source.kind(), Source::Simulator);
        assert_eq!(source.description(), "4 simulated users, seed 7");
        let stats = Arc::clone(source.stats());
        source.stop();
        assert_eq!(SourceStats::get(&stats.reports_sent), 4);
    }

    #[test]
    fn thread_stops_promptly() {
        let clock: SharedClock = Arc::new(SystemClock::new());
        let (commands, _received) = crossbeam_channel::bounded(16);
        let source = spawn(options(40, 5 * MINUTE), commands, clock).unwrap();
        let started = Instant::now();
        source.stop();
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn thread_stops_when_engine_is_gone() {
        let clock = manual_clock();
        let (commands, received) = crossbeam_channel::bounded(16);
        let source = spawn(options(4, 5 * MINUTE), commands, clock.clone()).unwrap();
        drop(received);
        clock.advance(STARTUP_SPREAD);
        // The thread holds the only other reference to the counters until it exits.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(source.stats()) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(Arc::strong_count(source.stats()), 1);
    }
}
