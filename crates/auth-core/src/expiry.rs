//! Checked time arithmetic for values a server supplies: lifetimes in seconds, absolute
//! timestamps, JWT claims read in a skewed server clock, `Retry-After`.
//!
//! `OffsetDateTime ± Duration` panics when the result leaves the years -9999..=9999, and a
//! server can send any number (`"ExpiresIn": 9223372036854775807`, a JWT `exp` in the year
//! 9999 with a `Date` header hours ahead). Every place where a server-supplied number meets
//! time goes through these helpers instead: they clamp into [`EARLIEST`]..=[`LATEST`] or
//! answer `None` for a value that is not a lifetime at all, and never panic.
//!
//! [`EARLIEST`] and [`LATEST`] are chosen so that any time kunci keeps can be written as
//! RFC 3339 (years 0000-9999, what the stores write) and shown in any UTC offset (a time a day
//! from either end stays inside the range when `kunci status` moves it to WIB, +07:00). A
//! token stated to expire after [`LATEST`] is treated as expiring at [`LATEST`]:
//! [`Token::new`](crate::Token::new) clamps its times the same way.
//!
//! ```
//! use auth_core::expiry;
//! use auth_core::time::macros::datetime;
//!
//! let sent = datetime!(2026-11-22 08:00 UTC);
//! // KrmPesan's `ExpiresIn`, however absurd
//! assert_eq!(expiry::after_secs(sent, 86_400), Some(datetime!(2026-11-23 08:00 UTC)));
//! assert_eq!(expiry::after_secs(sent, i64::MAX), Some(expiry::LATEST));
//! assert_eq!(expiry::after_secs(sent, 0), None); // not a lifetime: a protocol error
//! // Kalsel's `expired` (unix seconds), read in a server clock 2 hours ahead of ours
//! let stated = expiry::from_unix_secs(i64::MAX);
//! let ours = expiry::from_server_clock(stated, auth_core::time::Duration::hours(2));
//! assert!(ours <= expiry::LATEST);
//! ```

use std::time::Duration;

use time::{OffsetDateTime, UtcOffset, macros::datetime};

/// The earliest time kunci represents: 0000-01-02 00:00 UTC.
pub const EARLIEST: OffsetDateTime = datetime!(0000-01-02 00:00 UTC);

/// The latest time kunci represents: 9999-12-30 00:00 UTC.
pub const LATEST: OffsetDateTime = datetime!(9999-12-30 00:00 UTC);

/// The longest cool-down a server can impose with `Retry-After` (or a 429, or a source's
/// declared cool-down): one hour. See `docs/refresh-policy.md` for why.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `t` in UTC, clamped into [`EARLIEST`]..=[`LATEST`].
pub fn clamp(t: OffsetDateTime) -> OffsetDateTime {
    match t.checked_to_offset(UtcOffset::UTC) {
        Some(utc) => utc.clamp(EARLIEST, LATEST),
        // Only a time beyond the representable range in UTC fails to convert: its offset
        // pushed it past an end, so the sign of the offset says which.
        None if t.offset().is_negative() => LATEST,
        None => EARLIEST,
    }
}

/// `t + d`, clamped (see [`clamp`]).
pub fn add(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    shift(t, signed(d))
}

/// `t - d`, clamped (see [`clamp`]).
pub fn sub(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    shift(t, neg(signed(d)))
}

/// `t + d` for a signed difference, clamped (see [`clamp`]).
pub fn shift(t: OffsetDateTime, d: time::Duration) -> OffsetDateTime {
    clamp(clamp(t).saturating_add(d))
}

fn neg(d: time::Duration) -> time::Duration {
    d.checked_neg().unwrap_or(time::Duration::MAX)
}

fn signed(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// The expiry of a lifetime stated in whole seconds, counted from `sent_at` (the moment the
/// request was sent): `ExpiresIn`, `expires_in`. `None` when `secs` is not positive — not a
/// lifetime, which the provider crate reports as a protocol error. Clamped at [`LATEST`].
pub fn after_secs(sent_at: OffsetDateTime, secs: i64) -> Option<OffsetDateTime> {
    (secs > 0).then(|| add(sent_at, Duration::from_secs(secs.unsigned_abs())))
}

/// [`after_secs`] for a lifetime that may be fractional (`"expires_in": "3599.5"`). `None` when
/// it is not a positive finite number; clamped at [`LATEST`].
pub fn after_secs_f64(sent_at: OffsetDateTime, secs: f64) -> Option<OffsetDateTime> {
    if secs.is_nan() || secs <= 0.0 {
        return None;
    }
    Some(add(
        sent_at,
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
    ))
}

/// An absolute time in unix seconds (Kalsel's `expired`, a JWT's `exp` or `iat`), clamped
/// into [`EARLIEST`]..=[`LATEST`].
pub fn from_unix_secs(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_or_else(|_| if secs < 0 { EARLIEST } else { LATEST }, clamp)
}

/// A time stated in the server's clock (an absolute expiry, a JWT claim), moved to ours:
/// `server_time - offset`, where `offset` is how far the server's clock is ahead of ours (its
/// `Date` header minus our clock when the answer arrived). Clamped (see [`clamp`]).
pub fn from_server_clock(server_time: OffsetDateTime, offset: time::Duration) -> OffsetDateTime {
    shift(server_time, neg(offset))
}

/// A `Retry-After` (or any "not before" a server names) capped at [`MAX_RETRY_AFTER`] from
/// `now`: a server cannot stop a fleet until the year 9999 with one header.
pub fn cap_retry_after(now: OffsetDateTime, at: OffsetDateTime) -> OffsetDateTime {
    clamp(at).min(add(now, MAX_RETRY_AFTER))
}

/// Formats `t` as RFC 3339 in the UTC offset `offset` (`2026-11-22T15:00:00+07:00`), for
/// messages and status lines. Never panics: a time that cannot be shown in `offset` is shown
/// clamped; `offset` `None` means UTC.
pub fn format_in_offset(t: OffsetDateTime, offset: Option<UtcOffset>) -> String {
    let t = clamp(t);
    let shown = t
        .checked_to_offset(offset.unwrap_or(UtcOffset::UTC))
        .unwrap_or(t);
    crate::clock::format_rfc3339(shown)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-22 08:00 UTC);

    #[test]
    fn lifetimes_in_seconds() {
        assert_eq!(after_secs(T0, 60), Some(datetime!(2026-11-22 08:01 UTC)));
        assert_eq!(after_secs(T0, 0), None);
        assert_eq!(after_secs(T0, -5), None);
        assert_eq!(after_secs(T0, i64::MAX), Some(LATEST));
        assert_eq!(after_secs(LATEST, 1), Some(LATEST));
        assert_eq!(
            after_secs_f64(T0, 1.5),
            Some(datetime!(2026-11-22 08:00:01.5 UTC))
        );
        for bad in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
            assert_eq!(after_secs_f64(T0, bad), None, "{bad}");
        }
        assert_eq!(after_secs_f64(T0, f64::INFINITY), Some(LATEST));
        assert_eq!(after_secs_f64(T0, 1e300), Some(LATEST));
    }

    #[test]
    fn absolute_times_clamp() {
        assert_eq!(from_unix_secs(0), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(from_unix_secs(i64::MAX), LATEST);
        assert_eq!(from_unix_secs(i64::MIN), EARLIEST);
        assert_eq!(clamp(datetime!(9999-12-31 23:59:59 UTC)), LATEST);
        assert_eq!(clamp(datetime!(9999-12-31 23:59:59 -23:59)), LATEST);
        assert_eq!(clamp(datetime!(-9999-01-01 00:00 +23:59)), EARLIEST);
        assert_eq!(
            clamp(datetime!(2026-11-22 15:00 +07:00)),
            datetime!(2026-11-22 08:00 UTC)
        );
        assert_eq!(clamp(T0).offset(), UtcOffset::UTC);
    }

    #[test]
    fn server_clock_offsets_clamp() {
        let ahead = time::Duration::hours(2);
        assert_eq!(
            from_server_clock(datetime!(2026-11-22 10:00 UTC), ahead),
            T0
        );
        assert_eq!(from_server_clock(LATEST, -ahead), LATEST);
        assert_eq!(from_server_clock(EARLIEST, ahead), EARLIEST);
        assert_eq!(from_server_clock(T0, time::Duration::MIN), LATEST);
        assert_eq!(from_server_clock(T0, time::Duration::MAX), EARLIEST);
    }

    #[test]
    fn retry_after_is_capped_at_an_hour() {
        assert_eq!(
            cap_retry_after(T0, datetime!(9999-12-31 23:59:59 UTC)),
            datetime!(2026-11-22 09:00 UTC)
        );
        let soon = datetime!(2026-11-22 08:00:30 UTC);
        assert_eq!(cap_retry_after(T0, soon), soon);
    }

    #[test]
    fn far_times_format_in_wib() {
        let wib = UtcOffset::from_hms(7, 0, 0).ok();
        assert_eq!(
            format_in_offset(datetime!(9999-12-31 23:59:59 UTC), wib),
            "9999-12-30T07:00:00+07:00"
        );
        assert_eq!(format_in_offset(T0, wib), "2026-11-22T15:00:00+07:00");
        assert_eq!(format_in_offset(T0, None), "2026-11-22T08:00:00Z");
    }

    fn any_time() -> impl Strategy<Value = OffsetDateTime> {
        (
            -377_705_116_800i64..=253_402_300_799,
            0u32..1_000_000_000,
            -86_399i32..=86_399,
        )
            .prop_map(|(secs, nanos, offset)| {
                let utc = OffsetDateTime::from_unix_timestamp(secs)
                    .unwrap()
                    .replace_nanosecond(nanos)
                    .unwrap();
                let offset = UtcOffset::from_whole_seconds(offset).unwrap();
                utc.checked_to_offset(offset).unwrap_or(utc)
            })
    }

    proptest! {
        #[test]
        fn no_helper_panics_and_every_result_is_in_range(
            t in any_time(),
            secs in any::<i64>(),
            f in any::<f64>(),
            offset_secs in any::<i64>(),
            nanos in any::<u64>(),
            hours in -25i8..=25,
        ) {
            let offset = time::Duration::seconds(offset_secs);
            let results = [
                clamp(t),
                add(t, Duration::from_nanos(nanos)),
                sub(t, Duration::from_nanos(nanos)),
                add(t, Duration::MAX),
                sub(t, Duration::MAX),
                shift(t, offset),
                from_unix_secs(secs),
                from_server_clock(t, offset),
                cap_retry_after(t, t),
            ]
            .into_iter()
            .chain(after_secs(t, secs))
            .chain(after_secs_f64(t, f));
            for r in results {
                prop_assert!((EARLIEST..=LATEST).contains(&r), "{r}");
                prop_assert_eq!(r.offset(), UtcOffset::UTC);
                let shown = UtcOffset::from_hms(hours.clamp(-23, 23), 0, 0).unwrap();
                prop_assert!(r.checked_to_offset(shown).is_some(), "{r} in {shown}");
            }
            let _ = format_in_offset(t, UtcOffset::from_hms(hours.clamp(-23, 23), 0, 0).ok());
        }
    }
}
