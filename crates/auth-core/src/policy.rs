//! When a token counts as fresh, expiring or expired, and how long to wait after a failure.
//!
//! The defaults and the reasoning behind them are in `docs/refresh-policy.md`. In short: the
//! refresh-ahead window and the clock-skew allowance are each the smaller of a fixed cap and a
//! fraction of the token's lifetime, so a 24-hour token refreshes about five minutes early
//! while a 3-second token still lives most of its life instead of being "always expiring".

use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::{MonoTime, WallTime, positive_duration};

/// Where a token stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Valid and outside the refresh-ahead window.
    Fresh,
    /// Still valid, but a refresh should start now.
    Expiring,
    /// No longer to be used.
    Expired,
}

/// The knobs of expiry and retry. Construct with [`RefreshPolicy::default`] and adjust.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RefreshPolicy {
    /// The largest refresh-ahead window (default 5 minutes).
    pub refresh_ahead: Duration,
    /// The refresh-ahead window as a fraction of the token's lifetime, used when smaller than
    /// [`refresh_ahead`](Self::refresh_ahead) (default 0.10).
    pub refresh_ahead_ratio: f64,
    /// The largest clock-skew allowance: a token counts as expired this long before its stated
    /// expiry (default 30 seconds).
    pub clock_skew: Duration,
    /// The skew allowance as a fraction of the lifetime, used when smaller (default 0.05).
    pub clock_skew_ratio: f64,
    /// Each token's refresh starts up to this fraction of the window earlier, at random, so a
    /// fleet does not refresh in lock-step (default 0.5).
    pub jitter: f64,
    /// The first wait after a failed refresh (default 1 second); it doubles with each further
    /// failure.
    pub backoff_initial: Duration,
    /// The longest wait between failed refreshes (default 5 minutes).
    pub backoff_max: Duration,
    /// The deadline of one refresh under the store's lock: the load, the provider request and
    /// the save together (default 60 seconds). The save of what a sent request brought back
    /// is never cut to less than a quarter of it.
    pub refresh_timeout: Duration,
    /// The life the store's refresh lease is taken (and renewed) with; `None` (the default):
    /// twice [`refresh_timeout`](Self::refresh_timeout), so the lease outlives the deadline
    /// even without renewal. While the refresh runs, a watchdog renews it every third of its
    /// life; a holder that dies frees it at most this long after its last renewal.
    pub lease_life: Option<Duration>,
    /// The longest cool-down anyone can impose: a server's `Retry-After` or 429, a source's
    /// declared cool-down, a cool-down found in the store (default 1 hour,
    /// [`crate::expiry::MAX_RETRY_AFTER`]). A longer one is cut to this.
    pub max_cooldown: Duration,
    /// While the cached token is still valid, at most one fetch starts per this interval
    /// (default 10 seconds). It matters for a provider that answers a token already inside
    /// its refresh window (its own cached, nearly expired token): without it every call would
    /// start another fetch.
    pub min_refresh_interval: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            refresh_ahead: Duration::from_secs(5 * 60),
            refresh_ahead_ratio: 0.10,
            clock_skew: Duration::from_secs(30),
            clock_skew_ratio: 0.05,
            jitter: 0.5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
            refresh_timeout: Duration::from_secs(60),
            lease_life: None,
            max_cooldown: crate::expiry::MAX_RETRY_AFTER,
            min_refresh_interval: Duration::from_secs(10),
        }
    }
}

/// The deadlines of a cached token, on the monotonic timeline (laid from the moment its request
/// was sent) and on the wall clock (from the expiry the provider stated). Whichever passes
/// first counts: the monotonic ones hold when the wall clock is set back, the wall-clock ones
/// when the monotonic clock stood still while the machine slept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// From here on the token is [`Freshness::Expiring`].
    pub refresh_at: MonoTime,
    /// From here on the token is [`Freshness::Expired`].
    pub expires_at: MonoTime,
    /// From here on the token is [`Freshness::Expiring`], by the wall clock.
    pub wall_refresh_at: WallTime,
    /// From here on the token is [`Freshness::Expired`], by the wall clock.
    pub wall_expires_at: WallTime,
}

impl Deadlines {
    /// A permanent token's deadlines: never.
    pub const NEVER: Self = Self {
        refresh_at: MonoTime::NEVER,
        expires_at: MonoTime::NEVER,
        wall_refresh_at: WallTime::NEVER,
        wall_expires_at: WallTime::NEVER,
    };
    /// Deadlines that have passed: the entry is expired from the start.
    pub const EXPIRED: Self = Self {
        refresh_at: MonoTime::ZERO,
        expires_at: MonoTime::ZERO,
        wall_refresh_at: WallTime::MIN,
        wall_expires_at: WallTime::MIN,
    };

    /// Classifies a moment read on both clocks: the token is as far along as the later of the
    /// two says. This is the check of the token manager's warm path: four integer comparisons.
    #[inline]
    pub fn freshness_at(&self, mono: MonoTime, wall: WallTime) -> Freshness {
        if mono < self.refresh_at && wall < self.wall_refresh_at {
            Freshness::Fresh
        } else if mono < self.expires_at && wall < self.wall_expires_at {
            Freshness::Expiring
        } else {
            Freshness::Expired
        }
    }

    /// Classifies a moment on the monotonic timeline alone (for a token just placed, when both
    /// clocks were read together: see [`Deadlines::freshness_at`] for later checks).
    #[inline]
    pub fn freshness(&self, now: MonoTime) -> Freshness {
        if now < self.refresh_at {
            Freshness::Fresh
        } else if now < self.expires_at {
            Freshness::Expiring
        } else {
            Freshness::Expired
        }
    }

    /// How long the token stays usable from `(mono, wall)`: the nearer of its two expiries;
    /// `None` for a permanent token.
    pub fn time_to_expiry(&self, mono: MonoTime, wall: WallTime) -> Option<Duration> {
        if self.expires_at == MonoTime::NEVER && self.wall_expires_at == WallTime::NEVER {
            return None;
        }
        Some(
            self.expires_at
                .saturating_duration_since(mono)
                .min(self.wall_expires_at.saturating_duration_since(wall)),
        )
    }

    /// How long until the token enters its refresh window from `(mono, wall)` (zero once it
    /// has); `None` for a permanent token.
    pub fn time_to_refresh(&self, mono: MonoTime, wall: WallTime) -> Option<Duration> {
        if self.refresh_at == MonoTime::NEVER && self.wall_refresh_at == WallTime::NEVER {
            return None;
        }
        Some(
            self.refresh_at
                .saturating_duration_since(mono)
                .min(self.wall_refresh_at.saturating_duration_since(wall)),
        )
    }
}

/// `d × factor` for a factor in `0..=1`, never panicking (`Duration::mul_f64` panics when
/// rounding takes the product past `Duration::MAX`).
pub(crate) fn scale(d: Duration, factor: f64) -> Duration {
    let factor = if factor.is_nan() {
        0.0
    } else {
        factor.clamp(0.0, 1.0)
    };
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).map_or(d, |scaled| scaled.min(d))
}

impl RefreshPolicy {
    /// Checks that the ratios are within `0..=1` and the durations make sense.
    pub fn validate(&self) -> Result<(), crate::Error> {
        for (name, v) in [
            ("refresh_ahead_ratio", self.refresh_ahead_ratio),
            ("clock_skew_ratio", self.clock_skew_ratio),
            ("jitter", self.jitter),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(crate::Error::configuration(format!(
                    "refresh policy: {name} must be between 0 and 1, not {v}"
                )));
            }
        }
        if self.refresh_ahead_ratio * (1.0 + self.jitter) + self.clock_skew_ratio >= 1.0 {
            return Err(crate::Error::configuration(
                "refresh policy: the refresh-ahead and skew ratios leave no fresh part of a token's life",
            ));
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return Err(crate::Error::configuration(
                "refresh policy: backoff_initial must be positive and at most backoff_max",
            ));
        }
        if self
            .lease_life
            .is_some_and(|life| life < Duration::from_millis(30))
        {
            return Err(crate::Error::configuration(
                "refresh policy: lease_life must be at least 30 ms",
            ));
        }
        if self.refresh_timeout.is_zero() {
            return Err(crate::Error::configuration(
                "refresh policy: refresh_timeout must be positive",
            ));
        }
        if self.max_cooldown.is_zero() {
            return Err(crate::Error::configuration(
                "refresh policy: max_cooldown must be positive",
            ));
        }
        Ok(())
    }

    /// The skew allowance for a token of this lifetime.
    pub fn skew_for(&self, lifetime: Duration) -> Duration {
        self.clock_skew.min(scale(lifetime, self.clock_skew_ratio))
    }

    /// The refresh-ahead window (before jitter) for a token of this lifetime.
    pub fn window_for(&self, lifetime: Duration) -> Duration {
        self.refresh_ahead
            .min(scale(lifetime, self.refresh_ahead_ratio))
    }

    /// Places a token on the monotonic timeline and on the wall clock.
    ///
    /// `observed_wall` / `observed_mono` are one reading of both clocks: for a token just
    /// fetched, the moment its request was sent (so time spent on the network counts against
    /// the token); for a token loaded from a store, the moment it was loaded. The token's
    /// remaining life is its stated wall-clock expiry minus `observed_wall`, laid onto the
    /// monotonic clock from `observed_mono`; the wall-clock deadlines are the stated expiry
    /// minus the same allowances. `jitter` in `0..1` picks how much earlier than the window
    /// the refresh starts. Any times are accepted (years -9999 to 9999, in any order): nothing
    /// here can overflow.
    pub fn deadlines(
        &self,
        issued_at: OffsetDateTime,
        expires_at: Option<OffsetDateTime>,
        observed_wall: OffsetDateTime,
        observed_mono: MonoTime,
        jitter: f64,
    ) -> Deadlines {
        let Some(expires_at) = expires_at else {
            return Deadlines::NEVER;
        };
        // The difference of two representable times fits a `time::Duration` (±20,000 years).
        let lifetime = positive_duration(expires_at - issued_at);
        let remaining = positive_duration(expires_at - observed_wall);
        let skew = self.skew_for(lifetime);
        let window = self.window_for(lifetime);
        let early = scale(window, self.jitter * jitter.clamp(0.0, 1.0));
        let ahead = window.saturating_add(early);
        let hard = observed_mono.saturating_add(remaining).saturating_sub(skew);
        let wall_hard = WallTime::from_datetime(expires_at).saturating_sub(skew);
        Deadlines {
            refresh_at: hard.saturating_sub(ahead),
            expires_at: hard,
            wall_refresh_at: wall_hard.saturating_sub(ahead),
            wall_expires_at: wall_hard,
        }
    }

    /// How long to wait after the `failures`-th failure in a row (1-based), before jitter:
    /// The life of the store's refresh lease: [`lease_life`](Self::lease_life), or twice the
    /// refresh timeout.
    pub fn lease_life(&self) -> Duration {
        self.lease_life
            .unwrap_or_else(|| self.refresh_timeout.saturating_mul(2))
    }

    /// `backoff_initial * 2^(failures-1)`, at most `backoff_max`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);
    const M0: MonoTime = MonoTime::from_nanos(1_000_000_000);

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn day_long_token_refreshes_minutes_early() {
        let p = RefreshPolicy::default();
        let d = p.deadlines(T0, Some(T0 + time::Duration::hours(24)), T0, M0, 0.0);
        let life = 24.0 * 3600.0;
        assert_eq!(
            secs(d.expires_at.saturating_duration_since(M0)),
            life - 30.0
        );
        assert_eq!(
            secs(d.refresh_at.saturating_duration_since(M0)),
            life - 30.0 - 300.0
        );
        let jittered = p.deadlines(T0, Some(T0 + time::Duration::hours(24)), T0, M0, 1.0);
        assert_eq!(
            secs(jittered.refresh_at.saturating_duration_since(M0)),
            life - 30.0 - 450.0
        );
    }

    #[test]
    fn three_second_token_lives_most_of_its_life() {
        let p = RefreshPolicy::default();
        let d = p.deadlines(T0, Some(T0 + time::Duration::seconds(3)), T0, M0, 1.0);
        let refresh = secs(d.refresh_at.saturating_duration_since(M0));
        let expire = secs(d.expires_at.saturating_duration_since(M0));
        assert!((expire - 2.85).abs() < 1e-6, "{expire}");
        assert!((refresh - 2.4).abs() < 1e-6, "{refresh}");
        assert_eq!(d.freshness(M0), Freshness::Fresh);
        assert_eq!(
            d.freshness(M0.saturating_add(Duration::from_millis(2500))),
            Freshness::Expiring
        );
        assert_eq!(
            d.freshness(M0.saturating_add(Duration::from_millis(2900))),
            Freshness::Expired
        );
    }

    #[test]
    fn time_already_spent_counts() {
        let p = RefreshPolicy::default();
        // loaded from a store an hour after it was issued: one hour less to live
        let d = p.deadlines(
            T0,
            Some(T0 + time::Duration::hours(2)),
            T0 + time::Duration::hours(1),
            M0,
            0.0,
        );
        assert_eq!(
            secs(d.expires_at.saturating_duration_since(M0)),
            3600.0 - 30.0
        );
        // already past its expiry
        let past = p.deadlines(
            T0,
            Some(T0 + time::Duration::hours(1)),
            T0 + time::Duration::hours(2),
            M0,
            0.0,
        );
        assert_eq!(past.freshness(M0), Freshness::Expired);
    }

    #[test]
    fn the_wall_clock_deadlines_follow_the_stated_expiry() {
        let p = RefreshPolicy::default();
        let expires = T0 + time::Duration::hours(24);
        let d = p.deadlines(T0, Some(expires), T0, M0, 0.0);
        let wall = |t: OffsetDateTime| WallTime::from_datetime(t);
        assert_eq!(
            d.wall_expires_at,
            wall(expires - time::Duration::seconds(30))
        );
        assert_eq!(
            d.wall_refresh_at,
            wall(expires - time::Duration::seconds(330))
        );
        // the monotonic clock says fresh, the wall clock is past the expiry: expired
        assert_eq!(d.freshness_at(M0, wall(expires)), Freshness::Expired);
        // the wall clock says fresh, the monotonic one has run out: expired
        let late = M0.saturating_add(Duration::from_secs(24 * 3600));
        assert_eq!(d.freshness_at(late, wall(T0)), Freshness::Expired);
        // either inside the window: expiring
        let window = wall(expires - time::Duration::seconds(100));
        assert_eq!(d.freshness_at(M0, window), Freshness::Expiring);
        assert_eq!(d.freshness_at(M0, wall(T0)), Freshness::Fresh);
        assert_eq!(
            d.time_to_expiry(M0, wall(expires - time::Duration::hours(1))),
            Some(Duration::from_secs(3600 - 30))
        );
    }

    #[test]
    fn permanent_token_never_expires() {
        let p = RefreshPolicy::default();
        let d = p.deadlines(T0, None, T0, M0, 0.5);
        assert_eq!(
            d.freshness(MonoTime::from_nanos(u64::MAX - 1)),
            Freshness::Fresh
        );
        assert_eq!(
            d.freshness_at(
                MonoTime::from_nanos(u64::MAX - 1),
                WallTime::from_unix_nanos(i64::MAX - 1)
            ),
            Freshness::Fresh
        );
        assert_eq!(d.time_to_expiry(M0, WallTime::MIN), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RefreshPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(5), Duration::from_secs(16));
        assert_eq!(p.backoff(40), Duration::from_secs(300));
    }

    proptest::proptest! {
        #[test]
        fn any_times_are_placed_without_panic(
            issued in -377_705_116_800i64..=253_402_300_799,
            expires in -377_705_116_800i64..=253_402_300_799,
            observed in -377_705_116_800i64..=253_402_300_799,
            mono in proptest::prelude::any::<u64>(),
            jitter in proptest::prelude::any::<f64>(),
        ) {
            let at = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
            let p = RefreshPolicy::default();
            let d = p.deadlines(at(issued), Some(at(expires)), at(observed), MonoTime::from_nanos(mono), jitter);
            proptest::prop_assert!(d.refresh_at <= d.expires_at);
            proptest::prop_assert!(d.wall_refresh_at <= d.wall_expires_at);
        }
    }

    #[test]
    fn scaling_a_duration_never_panics() {
        assert_eq!(scale(Duration::MAX, 1.0), Duration::MAX);
        assert_eq!(scale(Duration::from_secs(10), 0.5), Duration::from_secs(5));
        assert_eq!(scale(Duration::from_secs(10), f64::NAN), Duration::ZERO);
        assert_eq!(scale(Duration::from_secs(10), 7.0), Duration::from_secs(10));
    }

    #[test]
    fn validation_rejects_nonsense() {
        assert!(RefreshPolicy::default().validate().is_ok());
        let p = RefreshPolicy {
            jitter: 1.5,
            ..RefreshPolicy::default()
        };
        assert!(p.validate().is_err());
        let p = RefreshPolicy {
            refresh_ahead_ratio: 0.9,
            clock_skew_ratio: 0.2,
            ..RefreshPolicy::default()
        };
        assert!(p.validate().is_err());
        let p = RefreshPolicy {
            backoff_initial: Duration::ZERO,
            ..RefreshPolicy::default()
        };
        assert!(p.validate().is_err());
    }
}
