//! Injected time: a wall clock for expiry dates, a monotonic clock for deadlines.
//!
//! This is the only module allowed to read the system clocks (`clippy.toml` bans
//! `SystemTime::now`, `Instant::now` and `OffsetDateTime::now_utc` everywhere else), so every
//! time-dependent behaviour can be tested with `ManualClock` (feature `test-util`) or tokio's
//! paused time.
//!
//! A cached token is checked against both clocks: the monotonic one is immune to the wall
//! clock being set back, the wall clock keeps counting while the machine sleeps (the monotonic
//! one stops during suspend on Linux and macOS). See `docs/refresh-policy.md`.

use std::{fmt, sync::Arc, time::Duration};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A point on a monotonic timeline, in nanoseconds since the clock's own origin.
///
/// Comparisons are a plain integer compare, which keeps the token manager's warm path cheap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoTime(u64);

impl MonoTime {
    /// The origin.
    pub const ZERO: Self = Self(0);
    /// A point that is never reached (permanent tokens).
    pub const NEVER: Self = Self(u64::MAX);

    /// From nanoseconds since the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`MonoTime::NEVER`].
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_nanos(d)))
    }

    /// `self - d`, saturating at [`MonoTime::ZERO`].
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_nanos(d)))
    }

    /// The time from `earlier` to `self`, zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A wall-clock reading as nanoseconds since the Unix epoch, for the cheap comparisons of the
/// token manager's warm path. Saturates outside the years 1677-2262: a time after that is
/// [`WallTime::NEVER`], one before it [`WallTime::MIN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(i64);

impl WallTime {
    /// A moment never reached (permanent tokens, times after 2262).
    pub const NEVER: Self = Self(i64::MAX);
    /// The earliest moment (times before 1677).
    pub const MIN: Self = Self(i64::MIN);

    /// From nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_unix_nanos(self) -> i64 {
        self.0
    }

    /// `t`, saturating at [`WallTime::MIN`] and [`WallTime::NEVER`].
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        let nanos = t.unix_timestamp_nanos();
        Self(i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX }))
    }

    /// `self - d`, saturating; [`WallTime::NEVER`] stays never.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        if self == Self::NEVER {
            return self;
        }
        Self(
            self.0
                .saturating_sub(i64::try_from(duration_nanos(d)).unwrap_or(i64::MAX)),
        )
    }

    /// The time from `earlier` to `self`, zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// A source of time. Implementations must be cheap: [`Clock::monotonic`] is read on every
/// `token()` call.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync + fmt::Debug {
    /// The wall-clock time, in UTC.
    fn now(&self) -> OffsetDateTime;
    /// The monotonic time; never goes backwards.
    fn monotonic(&self) -> MonoTime;
    /// The wall-clock time as a [`WallTime`], for deadline checks. The default converts
    /// [`Clock::now`]; the system clock reads a coarse clock instead (a few nanoseconds).
    fn wall(&self) -> WallTime {
        WallTime::from_datetime(self.now())
    }
    /// A monotonic reading at the clock's finest resolution, for measuring how long something
    /// took (a request's latency in its span). The default is [`Clock::monotonic`]; the system
    /// clock on Linux reads `CLOCK_MONOTONIC` (nanoseconds) here, where
    /// [`Clock::monotonic`] reads the coarse clock (one scheduler tick, 1–4 ms). Compare its
    /// readings only with each other.
    fn precise_monotonic(&self) -> MonoTime {
        self.monotonic()
    }
}

/// A cheaply cloneable, shared [`Clock`].
#[derive(Clone, Debug)]
pub struct SharedClock {
    clock: Arc<dyn Clock>,
    /// Set for the system clock, whose monotonic reading is then made without a virtual call.
    system: bool,
}

impl SharedClock {
    /// Wraps a clock.
    pub fn new(clock: impl Clock + 'static) -> Self {
        Self {
            clock: Arc::new(clock),
            system: false,
        }
    }

    /// The system clock.
    pub fn system() -> Self {
        Self {
            clock: Arc::new(SystemClock::new()),
            system: true,
        }
    }

    /// [`Clock::monotonic`], read directly (inlined, no virtual call) for the system clock.
    #[inline]
    pub fn monotonic_fast(&self) -> MonoTime {
        #[cfg(target_os = "linux")]
        if self.system {
            return coarse_monotonic();
        }
        self.clock.monotonic()
    }

    /// [`Clock::monotonic`] and [`Clock::wall`], read directly (inlined, no virtual call) for
    /// the system clock: these are the reads on the token manager's warm path. On Linux they
    /// are `CLOCK_MONOTONIC_COARSE` and `CLOCK_REALTIME_COARSE`, both answered from the vDSO.
    #[inline]
    pub fn read_fast(&self) -> (MonoTime, WallTime) {
        #[cfg(target_os = "linux")]
        if self.system {
            return (coarse_monotonic(), coarse_realtime());
        }
        (self.clock.monotonic(), self.clock.wall())
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::ops::Deref for SharedClock {
    type Target = dyn Clock;
    fn deref(&self) -> &Self::Target {
        &*self.clock
    }
}

impl<C: Clock + 'static> From<Arc<C>> for SharedClock {
    fn from(clock: Arc<C>) -> Self {
        Self {
            clock,
            system: false,
        }
    }
}

/// The system's clocks.
///
/// On Linux the monotonic reading is `CLOCK_MONOTONIC_COARSE` and [`Clock::wall`] is
/// `CLOCK_REALTIME_COARSE`: both are answered from the vDSO without reading the hardware
/// counter (a few nanoseconds instead of tens on virtual machines), at a resolution of one
/// scheduler tick (1–4 ms). Token deadlines are seconds apart and carry a skew allowance, so a
/// tick of resolution costs nothing. Elsewhere [`std::time::Instant`] and
/// [`std::time::SystemTime`] are used.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    #[cfg(not(target_os = "linux"))]
    origin: std::time::Instant,
}

impl SystemClock {
    /// The system clock.
    #[allow(
        clippy::disallowed_methods,
        reason = "the clock module is where time is read"
    )]
    pub fn new() -> Self {
        Self {
            #[cfg(not(target_os = "linux"))]
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the clock module is where time is read"
    )]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[cfg(target_os = "linux")]
    fn monotonic(&self) -> MonoTime {
        coarse_monotonic()
    }

    #[cfg(not(target_os = "linux"))]
    fn monotonic(&self) -> MonoTime {
        MonoTime(duration_nanos(self.origin.elapsed()))
    }

    #[cfg(target_os = "linux")]
    fn wall(&self) -> WallTime {
        coarse_realtime()
    }

    #[cfg(target_os = "linux")]
    fn precise_monotonic(&self) -> MonoTime {
        precise_monotonic()
    }
}

#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "one libc call with a valid out-pointer; see SAFETY"
)]
#[inline]
fn clock_gettime(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the coarse clocks are supported by every
    // Linux kernel since 2.6.32; the call writes only into `ts`.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts
}

// The conversions below are on the warm path, so they avoid checked arithmetic where the kernel
// bounds the values: `tv_nsec` is in 0..1_000_000_000, and the monotonic clock's `tv_sec` counts
// from boot (non-negative, and 584 years of uptime fit a u64 of nanoseconds).

#[cfg(target_os = "linux")]
#[inline]
#[allow(
    clippy::cast_sign_loss,
    reason = "the monotonic clock's fields are never negative"
)]
fn coarse_monotonic() -> MonoTime {
    let ts = clock_gettime(libc::CLOCK_MONOTONIC_COARSE);
    MonoTime((ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC`: the hardware counter, nanosecond resolution; for measured intervals,
/// not the warm path.
#[cfg(target_os = "linux")]
#[inline]
#[allow(
    clippy::cast_sign_loss,
    reason = "the monotonic clock's fields are never negative"
)]
fn precise_monotonic() -> MonoTime {
    let ts = clock_gettime(libc::CLOCK_MONOTONIC);
    MonoTime((ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(target_os = "linux")]
#[inline]
fn coarse_realtime() -> WallTime {
    /// The last second whose nanoseconds fit an i64 (the year 2262); later ones read as it.
    const LAST_SECOND: i64 = i64::MAX / 1_000_000_000 - 1;
    let ts = clock_gettime(libc::CLOCK_REALTIME_COARSE);
    #[allow(
        clippy::useless_conversion,
        reason = "time_t and c_long are i64 on 64-bit targets, i32 on some 32-bit ones"
    )]
    let (secs, nanos) = (i64::from(ts.tv_sec), i64::from(ts.tv_nsec));
    WallTime(secs.min(LAST_SECOND) * 1_000_000_000 + nanos)
}

/// A clock that moves only when told to: for tests (feature `test-util`).
///
/// Both timelines advance together with [`ManualClock::advance`]; [`ManualClock::set_wall`]
/// and [`ManualClock::step_wall`] move the wall clock alone, as an NTP correction would;
/// [`ManualClock::suspend`] moves the wall clock while the monotonic one stands still, as a
/// machine that sleeps does; [`ManualClock::advance_monotonic`] moves the monotonic clock alone
/// (a wall clock that lags).
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct ManualClock {
    wall_nanos: std::sync::atomic::AtomicI64,
    mono_nanos: std::sync::atomic::AtomicU64,
}

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock showing `wall`, at monotonic time one second.
    pub fn new(wall: OffsetDateTime) -> Arc<Self> {
        Arc::new(Self {
            wall_nanos: std::sync::atomic::AtomicI64::new(wall_to_nanos(wall)),
            mono_nanos: std::sync::atomic::AtomicU64::new(1_000_000_000),
        })
    }

    /// Moves both clocks forward.
    pub fn advance(&self, d: Duration) {
        use std::sync::atomic::Ordering::SeqCst;
        let n = duration_nanos(d);
        self.mono_nanos.fetch_add(n, SeqCst);
        self.wall_nanos
            .fetch_add(i64::try_from(n).unwrap_or(i64::MAX), SeqCst);
    }

    /// Sets the wall clock alone.
    pub fn set_wall(&self, wall: OffsetDateTime) {
        self.wall_nanos
            .store(wall_to_nanos(wall), std::sync::atomic::Ordering::SeqCst);
    }

    /// The machine sleeps for `d` (suspend, a paused VM, checkpoint and restore): the wall
    /// clock (and the boot-time clock) move on, the monotonic clock stands still.
    pub fn suspend(&self, d: Duration) {
        self.wall_nanos.fetch_add(
            i64::try_from(duration_nanos(d)).unwrap_or(i64::MAX),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// Moves both clocks forward until the wall clock shows `wall` (nothing when it already
    /// does or is later).
    pub fn set_wall_and_advance_to(&self, wall: OffsetDateTime) {
        self.advance(positive_duration(wall - self.now()));
    }

    /// Moves the monotonic clock alone.
    pub fn advance_monotonic(&self, d: Duration) {
        self.mono_nanos
            .fetch_add(duration_nanos(d), std::sync::atomic::Ordering::SeqCst);
    }

    /// Steps the wall clock alone by `d`, forwards or back (an NTP step).
    pub fn step_wall(&self, d: time::Duration) {
        let nanos = i64::try_from(d.whole_nanoseconds()).unwrap_or(if d.is_negative() {
            i64::MIN
        } else {
            i64::MAX
        });
        self.wall_nanos
            .fetch_add(nanos, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-util"))]
fn wall_to_nanos(wall: OffsetDateTime) -> i64 {
    i64::try_from(wall.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let nanos = self.wall_nanos.load(std::sync::atomic::Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn monotonic(&self) -> MonoTime {
        MonoTime(self.mono_nanos.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn wall(&self) -> WallTime {
        WallTime(self.wall_nanos.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// A clock that follows tokio's time, so tests with `start_paused = true` move it with
/// `tokio::time::advance` (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    wall_origin: OffsetDateTime,
}

#[cfg(any(test, feature = "test-util"))]
impl TokioClock {
    /// A clock that shows `wall` now and moves with tokio's clock.
    pub fn new(wall: OffsetDateTime) -> Arc<Self> {
        Arc::new(Self {
            origin: tokio::time::Instant::now(),
            wall_origin: wall,
        })
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        crate::expiry::add(self.wall_origin, self.origin.elapsed())
    }

    fn monotonic(&self) -> MonoTime {
        MonoTime(duration_nanos(self.origin.elapsed()).saturating_add(1_000_000_000))
    }
}

/// Formats a time as RFC 3339 (`2026-11-22T10:00:00Z`), for messages.
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Converts a wall-clock difference to a [`Duration`], zero when negative.
pub fn positive_duration(d: time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn system_clock_monotonic_never_goes_back() {
        let clock = SystemClock::new();
        let mut last = clock.monotonic();
        for _ in 0..10_000 {
            let now = clock.monotonic();
            assert!(now >= last);
            last = now;
        }
        assert!(last > MonoTime::ZERO);
    }

    #[test]
    fn the_system_clocks_precise_reading_resolves_below_a_millisecond() {
        // Consecutive distinct readings of the coarse clock are a scheduler tick (1–4 ms)
        // apart; the precise clock's are nanoseconds apart, except when this thread is
        // preempted between two reads. One sub-millisecond step among the first thousand
        // proves the resolution.
        let clock = SystemClock::new();
        let mut last = clock.precise_monotonic();
        let mut finest = Duration::MAX;
        let mut steps = 0;
        while steps < 1_000 {
            let now = clock.precise_monotonic();
            assert!(now >= last);
            if now > last {
                finest = finest.min(now.saturating_duration_since(last));
                steps += 1;
            }
            last = now;
        }
        assert!(finest < Duration::from_millis(1), "{finest:?}");
    }

    #[test]
    fn manual_clock_moves_on_request() {
        let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        let m0 = clock.monotonic();
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), datetime!(2026-01-01 00:01:30 UTC));
        assert_eq!(
            clock.monotonic().saturating_duration_since(m0),
            Duration::from_secs(90)
        );
        clock.set_wall(datetime!(2030-01-01 00:00 UTC));
        assert_eq!(
            clock.monotonic().saturating_duration_since(m0),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn mono_arithmetic_saturates() {
        assert_eq!(
            MonoTime::NEVER.saturating_add(Duration::from_secs(1)),
            MonoTime::NEVER
        );
        assert_eq!(
            MonoTime::ZERO.saturating_sub(Duration::from_secs(1)),
            MonoTime::ZERO
        );
        assert_eq!(
            MonoTime::ZERO.saturating_duration_since(MonoTime::from_nanos(5)),
            Duration::ZERO
        );
    }

    #[test]
    fn system_clock_wall_reading_agrees_with_now() {
        let clock = SystemClock::new();
        let before = WallTime::from_datetime(clock.now());
        let coarse = clock.wall();
        let after = WallTime::from_datetime(clock.now());
        // the coarse clock lags by at most a scheduler tick (a few milliseconds)
        assert!(coarse <= after, "{coarse:?} {after:?}");
        assert!(
            before.saturating_duration_since(coarse) < Duration::from_millis(50),
            "{coarse:?} {before:?}"
        );
        let shared = SharedClock::system();
        let (mono, wall) = shared.read_fast();
        assert!(mono > MonoTime::ZERO && wall > WallTime::from_unix_nanos(0));
    }

    #[test]
    fn wall_time_saturates_outside_what_i64_nanoseconds_hold() {
        assert_eq!(
            WallTime::from_datetime(datetime!(9999-12-31 00:00 UTC)),
            WallTime::NEVER
        );
        assert_eq!(
            WallTime::from_datetime(datetime!(-9999-01-01 00:00 UTC)),
            WallTime::MIN
        );
        let t = WallTime::from_datetime(datetime!(2026-01-01 00:00 UTC));
        assert_eq!(
            t.saturating_sub(Duration::from_secs(1)),
            WallTime::from_datetime(datetime!(2025-12-31 23:59:59 UTC))
        );
        assert_eq!(
            WallTime::NEVER.saturating_sub(Duration::from_secs(1)),
            WallTime::NEVER
        );
        assert_eq!(WallTime::MIN.saturating_sub(Duration::MAX), WallTime::MIN);
    }

    #[test]
    fn manual_clock_moves_each_timeline_alone_when_told() {
        let clock = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        let (m0, w0) = (clock.monotonic(), clock.wall());
        clock.suspend(Duration::from_secs(3600));
        assert_eq!(
            clock.monotonic(),
            m0,
            "a suspend leaves the monotonic clock"
        );
        assert_eq!(clock.now(), datetime!(2026-01-01 01:00 UTC));
        clock.step_wall(-time::Duration::minutes(30));
        assert_eq!(clock.now(), datetime!(2026-01-01 00:30 UTC));
        clock.advance_monotonic(Duration::from_secs(5));
        assert_eq!(
            clock.monotonic().saturating_duration_since(m0),
            Duration::from_secs(5)
        );
        assert_eq!(
            clock.wall().saturating_duration_since(w0),
            Duration::from_secs(1800)
        );
        clock.set_wall_and_advance_to(datetime!(2026-01-01 00:31 UTC));
        assert_eq!(
            clock.monotonic().saturating_duration_since(m0),
            Duration::from_secs(65)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::new(datetime!(2026-01-01 00:00 UTC));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(clock.now(), datetime!(2026-01-01 00:00:10 UTC));
    }
}
