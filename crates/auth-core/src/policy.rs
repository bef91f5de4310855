//! When a token counts as fresh, expiring or expired, and how long to wait after a failure.
//!
//! The defaults and the reasoning behind them are in `docs/refresh-policy.md`. In short: the
//! refresh-ahead window and the clock-skew allowance are each the smaller of a fixed cap and a
//! fraction of the token's lifetime, so a 24-hour token refreshes about five minutes early
//! while a 3-second token still lives most of its life instead of being "always expiring".

use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::{MonoTime, positive_duration};

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
    /// The bound on each step of a refresh — a store read, the provider request, a store write
    /// (default 60 seconds). A store lock lives 15 s longer than this, so a holder that dies
    /// frees it; waiting for the lock outlasts that.
    pub refresh_timeout: Duration,
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
        }
    }
}

/// The two deadlines of a cached token on the monotonic timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// From here on the token is [`Freshness::Expiring`].
    pub refresh_at: MonoTime,
    /// From here on the token is [`Freshness::Expired`].
    pub expires_at: MonoTime,
}

impl Deadlines {
    /// A permanent token's deadlines: never.
    pub const NEVER: Self = Self {
        refresh_at: MonoTime::NEVER,
        expires_at: MonoTime::NEVER,
    };
    /// Deadlines that have passed: the entry is expired from the start.
    pub const EXPIRED: Self = Self {
        refresh_at: MonoTime::ZERO,
        expires_at: MonoTime::ZERO,
    };

    /// Classifies `now`.
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
        if self.refresh_timeout.is_zero() {
            return Err(crate::Error::configuration(
                "refresh policy: refresh_timeout must be positive",
            ));
        }
        Ok(())
    }

    /// The skew allowance for a token of this lifetime.
    pub fn skew_for(&self, lifetime: Duration) -> Duration {
        self.clock_skew.min(lifetime.mul_f64(self.clock_skew_ratio))
    }

    /// The refresh-ahead window (before jitter) for a token of this lifetime.
    pub fn window_for(&self, lifetime: Duration) -> Duration {
        self.refresh_ahead
            .min(lifetime.mul_f64(self.refresh_ahead_ratio))
    }

    /// Places a token on the monotonic timeline.
    ///
    /// `observed_wall` / `observed_mono` are one reading of both clocks: for a token just
    /// fetched, the moment its request was sent (so time spent on the network counts against
    /// the token); for a token loaded from a store, the moment it was loaded. The token's
    /// remaining life is its stated wall-clock expiry minus `observed_wall`, laid onto the
    /// monotonic clock from `observed_mono`; `jitter` in `0..1` picks how much earlier than
    /// the window the refresh starts.
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
        let lifetime = positive_duration(expires_at - issued_at);
        let remaining = positive_duration(expires_at - observed_wall);
        let skew = self.skew_for(lifetime);
        let window = self.window_for(lifetime);
        let early = window.mul_f64(self.jitter * jitter.clamp(0.0, 1.0));
        let hard = observed_mono.saturating_add(remaining).saturating_sub(skew);
        Deadlines {
            refresh_at: hard.saturating_sub(window + early),
            expires_at: hard,
        }
    }

    /// How long to wait after the `failures`-th failure in a row (1-based), before jitter:
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
    fn permanent_token_never_expires() {
        let p = RefreshPolicy::default();
        let d = p.deadlines(T0, None, T0, M0, 0.5);
        assert_eq!(
            d.freshness(MonoTime::from_nanos(u64::MAX - 1)),
            Freshness::Fresh
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RefreshPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(5), Duration::from_secs(16));
        assert_eq!(p.backoff(40), Duration::from_secs(300));
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
