//! Engine time: a monotonic [`MonoTime`] for every expiry decision, and a mapping to
//! wall-clock time (`chrono`) used only for display and export.
//!
//! The clock is injected into the engine, so tests and log replay move time themselves
//! instead of sleeping. A clock is shared read-only between the engine worker and the UI,
//! which uses it to age rows between events.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A point on the engine's monotonic time line, as the span since the clock's origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonoTime(Duration);

impl MonoTime {
    /// The clock's origin.
    pub const ZERO: MonoTime = MonoTime(Duration::ZERO);

    /// Creates a time `since_origin` after the clock's origin.
    pub const fn from_duration(since_origin: Duration) -> Self {
        MonoTime(since_origin)
    }

    /// Returns the span since the clock's origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// Returns the span from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: MonoTime) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// Returns `self - span`, or the origin when `span` reaches past it.
    pub fn saturating_sub(self, span: Duration) -> MonoTime {
        MonoTime(self.0.saturating_sub(span))
    }

    /// Returns `self - span`, or `None` when `span` reaches past the origin.
    pub fn checked_sub(self, span: Duration) -> Option<MonoTime> {
        self.0.checked_sub(span).map(MonoTime)
    }
}

impl Add<Duration> for MonoTime {
    type Output = MonoTime;

    fn add(self, span: Duration) -> MonoTime {
        MonoTime(self.0.saturating_add(span))
    }
}

impl Sub<MonoTime> for MonoTime {
    type Output = Duration;

    /// Saturates at zero, so an age is never negative.
    fn sub(self, earlier: MonoTime) -> Duration {
        self.saturating_since(earlier)
    }
}

/// A source of engine time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Returns the current monotonic time.
    fn now(&self) -> MonoTime;

    /// Converts a monotonic time to wall-clock time for display and export.
    fn wall_time(&self, at: MonoTime) -> DateTime<Utc>;

    /// Returns how long to wait in real time for `span` of this clock's time to pass,
    /// or `None` when this clock moves only on request (a manual clock).
    fn real_wait(&self, span: Duration) -> Option<Duration>;

    /// Moves a clock that follows activity time forward to `at`; other clocks ignore it.
    fn observe_activity(&self, _at: MonoTime) {}

    /// Returns whether activity time stamps move this clock (replay at maximum speed).
    fn follows_activity(&self) -> bool {
        false
    }

    /// Maps monotonic times to the wall clock's current reading again, after the wall
    /// clock jumped. Clocks whose wall time is not the machine's ignore it.
    fn realign_wall(&self) {}

    /// Returns how fast this clock runs against real time, or `None` when it does not run
    /// by itself.
    fn speed(&self) -> Option<f64> {
        Some(1.0)
    }
}

/// A clock shared between the engine, its sources and the UI.
pub type SharedClock = Arc<dyn Clock>;

/// Converts a span since `origin` to wall-clock time, saturating instead of panicking
/// on spans beyond chrono's range.
fn wall_after(origin: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|span| origin.checked_add_signed(span))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The real monotonic clock (`Instant`), with wall time anchored when it was created.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
    /// Wall time of the origin, in microseconds since the Unix epoch; moved by
    /// [`Clock::realign_wall`] after the wall clock jumps.
    wall_origin_micros: AtomicI64,
}

impl SystemClock {
    /// Creates a clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
            wall_origin_micros: AtomicI64::new(Utc::now().timestamp_micros()),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> MonoTime {
        MonoTime(self.origin.elapsed())
    }

    fn wall_time(&self, at: MonoTime) -> DateTime<Utc> {
        let micros = self.wall_origin_micros.load(Ordering::Relaxed);
        let origin = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default();
        wall_after(origin, at.0)
    }

    fn realign_wall(&self) {
        let since_origin = chrono::Duration::from_std(self.origin.elapsed()).unwrap_or_default();
        let origin = Utc::now() - since_origin;
        self.wall_origin_micros
            .store(origin.timestamp_micros(), Ordering::Relaxed);
    }

    fn real_wait(&self, span: Duration) -> Option<Duration> {
        Some(span)
    }
}

/// A clock that runs `speed` times faster than real time from a given wall time, used to
/// replay an access log so that engine time follows the log's time. It can wait at its
/// start time until [`ScaledClock::start_running`], so that the time a program takes to
/// start does not pass as log time.
#[derive(Debug)]
pub struct ScaledClock {
    /// Real time at which the clock read `start`. Unset while the clock waits.
    started: OnceLock<Instant>,
    start: MonoTime,
    wall_origin: DateTime<Utc>,
    speed: f64,
}

impl ScaledClock {
    /// Creates a clock that reads `wall_origin` now and runs `speed` times real time.
    ///
    /// # Panics
    /// Panics when `speed` is not a finite number above zero.
    pub fn new(wall_origin: DateTime<Utc>, speed: f64) -> Self {
        let clock = Self::waiting_at(wall_origin, MonoTime::ZERO, speed);
        clock.start_running();
        clock
    }

    /// Creates a clock whose origin reads as `wall_origin` and that reads `start` until
    /// [`ScaledClock::start_running`], then runs `speed` times real time from there.
    ///
    /// # Panics
    /// Panics when `speed` is not a finite number above zero.
    pub fn waiting_at(wall_origin: DateTime<Utc>, start: MonoTime, speed: f64) -> Self {
        assert!(
            speed.is_finite() && speed > 0.0,
            "speed must be above zero, got {speed}"
        );
        ScaledClock {
            started: OnceLock::new(),
            start,
            wall_origin,
            speed,
        }
    }

    /// Starts the clock running from its start time now. Calls after the first do nothing.
    pub fn start_running(&self) {
        self.start_running_at(Instant::now());
    }

    /// Starts the clock running from its start time at the real time `started`. Calls
    /// after the first do nothing.
    pub fn start_running_at(&self, started: Instant) {
        // An error means the clock runs already, from the first call's time.
        let _ = self.started.set(started);
    }

    /// Returns the clock's reading at the real time `real`.
    pub fn reading_at(&self, real: Instant) -> MonoTime {
        let Some(started) = self.started.get() else {
            return self.start;
        };
        let scaled = real.saturating_duration_since(*started).as_secs_f64() * self.speed;
        self.start + Duration::try_from_secs_f64(scaled).unwrap_or(Duration::MAX)
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> MonoTime {
        self.reading_at(Instant::now())
    }

    fn wall_time(&self, at: MonoTime) -> DateTime<Utc> {
        wall_after(self.wall_origin, at.0)
    }

    fn real_wait(&self, span: Duration) -> Option<Duration> {
        Some(Duration::try_from_secs_f64(span.as_secs_f64() / self.speed).unwrap_or(Duration::MAX))
    }

    fn speed(&self) -> Option<f64> {
        Some(self.speed)
    }
}

/// A clock that moves only on request: by [`ManualClock::advance`] and
/// [`ManualClock::set`], and, when created with [`ManualClock::following_activity`], by
/// the time stamps of the activity the engine applies.
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
    wall_origin: DateTime<Utc>,
    follows_activity: bool,
}

impl ManualClock {
    /// Creates a clock at its origin, which reads as `wall_origin`.
    pub fn new(wall_origin: DateTime<Utc>) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(0)),
            wall_origin,
            follows_activity: false,
        }
    }

    /// Creates a clock that the engine moves forward to each activity time stamp it
    /// applies, so replay at maximum speed keeps the log's time line.
    pub fn following_activity(wall_origin: DateTime<Utc>) -> Self {
        ManualClock {
            follows_activity: true,
            ..ManualClock::new(wall_origin)
        }
    }

    /// Moves the clock forward by `span`.
    pub fn advance(&self, span: Duration) {
        let span = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(span, Ordering::SeqCst);
    }

    /// Moves the clock to `at` if that is later than its current time.
    pub fn set(&self, at: MonoTime) {
        let at = u64::try_from(at.0.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(at, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> MonoTime {
        MonoTime(Duration::from_nanos(self.nanos.load(Ordering::SeqCst)))
    }

    fn wall_time(&self, at: MonoTime) -> DateTime<Utc> {
        wall_after(self.wall_origin, at.0)
    }

    fn real_wait(&self, _span: Duration) -> Option<Duration> {
        None
    }

    fn observe_activity(&self, at: MonoTime) {
        if self.follows_activity {
            self.set(at);
        }
    }

    fn follows_activity(&self) -> bool {
        self.follows_activity
    }

    fn speed(&self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_never_moves_backwards() {
        let clock = ManualClock::new(DateTime::<Utc>::UNIX_EPOCH);
        clock.advance(Duration::from_secs(10));
        clock.set(MonoTime::from_duration(Duration::from_secs(3)));
        assert_eq!(
            clock.now(),
            MonoTime::from_duration(Duration::from_secs(10))
        );
    }

    #[test]
    fn following_clock_moves_on_activity() {
        let plain = ManualClock::new(DateTime::<Utc>::UNIX_EPOCH);
        let following = ManualClock::following_activity(DateTime::<Utc>::UNIX_EPOCH);
        let at = MonoTime::from_duration(Duration::from_secs(42));
        plain.observe_activity(at);
        following.observe_activity(at);
        assert_eq!(plain.now(), MonoTime::ZERO);
        assert_eq!(following.now(), at);
    }

    #[test]
    fn wall_time_saturates_far_future() {
        let clock = ManualClock::new(Utc::now());
        let far = MonoTime::from_duration(Duration::from_secs(u64::MAX / 2));
        assert_eq!(clock.wall_time(far), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn scaled_clock_waits_until_started() {
        let start = MonoTime::from_duration(Duration::from_secs(120));
        let clock = ScaledClock::waiting_at(DateTime::<Utc>::UNIX_EPOCH, start, 30.0);
        let real = Instant::now();
        assert_eq!(clock.reading_at(real + Duration::from_secs(10)), start);

        clock.start_running_at(real + Duration::from_secs(10));
        assert_eq!(clock.reading_at(real + Duration::from_secs(10)), start);
        assert_eq!(
            clock.reading_at(real + Duration::from_secs(12)),
            start + Duration::from_secs(60)
        );
        // A second start changes nothing.
        clock.start_running_at(real + Duration::from_secs(11));
        assert_eq!(
            clock.reading_at(real + Duration::from_secs(12)),
            start + Duration::from_secs(60)
        );
    }

    #[test]
    fn new_scaled_clock_runs_at_once() {
        let clock = ScaledClock::new(DateTime::<Utc>::UNIX_EPOCH, 1.0);
        let real = Instant::now() + Duration::from_secs(3);
        assert!(clock.reading_at(real) >= MonoTime::from_duration(Duration::from_secs(3)));
    }

    #[test]
    fn age_is_never_negative() {
        let early = MonoTime::from_duration(Duration::from_secs(1));
        let late = MonoTime::from_duration(Duration::from_secs(5));
        assert_eq!(early - late, Duration::ZERO);
        assert_eq!(late - early, Duration::from_secs(4));
    }
}
