//! Injected time: a wall clock for expiry dates, a monotonic clock for deadlines.
//!
//! This is the only module allowed to read the system clocks (`clippy.toml` bans
//! `SystemTime::now`, `Instant::now` and `OffsetDateTime::now_utc` everywhere else), so every
//! time-dependent behaviour can be tested with [`ManualClock`] or tokio's paused time.

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

/// A source of time. Implementations must be cheap: [`Clock::monotonic`] is read on every
/// `token()` call.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync + fmt::Debug {
    /// The wall-clock time, in UTC.
    fn now(&self) -> OffsetDateTime;
    /// The monotonic time; never goes backwards.
    fn monotonic(&self) -> MonoTime;
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

    /// [`Clock::monotonic`], read directly (inlined, no virtual call) for the system clock: this
    /// is the read on the token manager's warm path.
    #[inline]
    pub fn monotonic_fast(&self) -> MonoTime {
        #[cfg(target_os = "linux")]
        if self.system {
            return coarse_monotonic();
        }
        self.clock.monotonic()
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
/// On Linux the monotonic reading is `CLOCK_MONOTONIC_COARSE`: it is answered from the vDSO
/// without reading the hardware counter (a few nanoseconds instead of tens on virtual
/// machines), at a resolution of one scheduler tick (1–4 ms). Token deadlines are seconds
/// apart and carry a skew allowance, so a tick of resolution costs nothing; elsewhere
/// [`std::time::Instant`] is used.
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
}

#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "one libc call with a valid out-pointer; see SAFETY"
)]
fn coarse_monotonic() -> MonoTime {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC_COARSE is supported by
    // every Linux kernel since 2.6.32; the call writes only into `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    debug_assert_eq!(rc, 0);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    MonoTime(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// A clock that moves only when told to: for tests (feature `test-util`).
///
/// Both timelines advance together with [`ManualClock::advance`]; [`ManualClock::set_wall`]
/// moves the wall clock alone, as an NTP correction would.
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
        self.wall_origin + self.origin.elapsed()
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

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::new(datetime!(2026-01-01 00:00 UTC));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(clock.now(), datetime!(2026-01-01 00:00:10 UTC));
    }
}
