//! What every command prints with: the writes to stdout and stderr that never panic, times
//! and durations as people read them, a token's state, and JSON.
//!
//! stdout gets only a command's result; everything said to the user (progress, `error:`
//! lines, hints) goes to stderr.

use std::{
    io::{self, Write as _},
    time::Duration,
};

use auth_core::{Clock, Freshness, RefreshPolicy, Token};
use time::{
    OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339, macros::format_description,
};

use crate::failure::{Failure, code};

/// Writes one line to stdout. A closed pipe is not an error worth a panic (`kunci token | head`).
pub(crate) fn out_line(line: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    written(writeln!(out, "{line}").and_then(|()| out.flush()))
}

/// Writes `bytes` to stdout, as [`out_line`] does (a completion script, say).
pub(crate) fn out_bytes(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    written(out.write_all(bytes).and_then(|()| out.flush()))
}

/// A write to stdout's outcome: a closed pipe is fine, anything else a failure.
fn written(result: io::Result<()>) -> Result<(), Failure> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(
            code::OTHER,
            format!("cannot write to stdout: {e}"),
        )),
    }
}

/// Writes one line to stderr, ignoring failures (there is nowhere left to report them).
pub(crate) fn err_line(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Writes `value` to stdout as one line of JSON.
pub(crate) fn out_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string(value)
        .map_err(|e| Failure::new(code::OTHER, format!("cannot render JSON: {e}")))?;
    out_line(&text)
}

/// `2026-11-22 14:03:12 +07:00` in the local offset (UTC when it is unknown, and when the
/// moment cannot be shown in the local offset: 9999-12-31 23:59:59 UTC is in the year 10000
/// at +07:00).
pub(crate) fn local_time(at: OffsetDateTime, offset: Option<UtcOffset>) -> String {
    let format = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
    );
    at.checked_to_offset(offset.unwrap_or(UtcOffset::UTC))
        .unwrap_or_else(|| at.to_offset(UtcOffset::UTC))
        .format(format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// RFC 3339 in UTC (`2026-11-22T07:03:12Z`), for JSON; `None` for a moment RFC 3339 cannot
/// write (before year 0 or after 9999).
pub(crate) fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.to_offset(UtcOffset::UTC).format(&Rfc3339).ok()
}

/// `in 3h 12m`, `in 42s`, `5m 3s ago`.
pub(crate) fn relative(d: time::Duration) -> String {
    let text = human(Duration::from_secs(d.whole_seconds().unsigned_abs()));
    if d.is_negative() {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

/// `3d 4h`, `3h 12m`, `5m 3s`, `42s`: the two largest units.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// A token's state as `kunci status` and `kunci token --json` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// Outside its refresh window.
    Fresh,
    /// Inside its refresh window: the next command that needs it replaces it.
    Expiring,
    /// Past its expiry.
    Expired,
    /// Nothing is stored.
    None,
}

impl State {
    /// The state of `token` now, by the default refresh policy.
    pub(crate) fn of(token: Option<&Token>, clock: &dyn Clock) -> Self {
        let Some(t) = token else {
            return Self::None;
        };
        let mono = clock.monotonic();
        match RefreshPolicy::default()
            .deadlines(t.issued_at(), t.expires_at(), clock.now(), mono, 0.0)
            .freshness(mono)
        {
            Freshness::Fresh => Self::Fresh,
            Freshness::Expiring => Self::Expiring,
            Freshness::Expired => Self::Expired,
        }
    }

    /// Its name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::None => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use auth_core::ManualClock;
    use secrecy::SecretString;
    use time::macros::{datetime, offset};

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human(Duration::from_secs(3 * 3600 + 12 * 60 + 5)), "3h 12m");
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 3600)), "2d 1h");
        assert_eq!(relative(time::Duration::seconds(-303)), "5m 3s ago");
        assert_eq!(relative(time::Duration::seconds(65)), "in 1m 5s");
    }

    #[test]
    fn local_times() {
        let at = datetime!(2026-11-22 07:00:00 UTC);
        assert_eq!(
            local_time(at, Some(offset!(+7))),
            "2026-11-22 14:00:00 +07:00"
        );
        assert_eq!(local_time(at, None), "2026-11-22 07:00:00 +00:00");
        // +07:00 would be the year 10000: shown in UTC instead
        let end = datetime!(9999-12-31 23:59:59 UTC);
        assert_eq!(
            local_time(end, Some(offset!(+7))),
            "9999-12-31 23:59:59 +00:00"
        );
        let start = datetime!(-9999-01-01 00:00:00 UTC);
        assert!(!local_time(start, Some(offset!(-7))).is_empty());
    }

    #[test]
    fn json_times_are_rfc3339_in_utc_and_absent_where_rfc3339_cannot_write_them() {
        let at = datetime!(2026-11-22 14:00:00 +7);
        assert_eq!(rfc3339(at).as_deref(), Some("2026-11-22T07:00:00Z"));
        assert_eq!(rfc3339(datetime!(-0001-01-01 00:00:00 UTC)), None);
    }

    #[test]
    fn states_follow_the_refresh_window() {
        let now = datetime!(2026-11-22 07:00:00 UTC);
        let clock: Arc<ManualClock> = ManualClock::new(now);
        let token = |issued: time::Duration, expires: time::Duration| {
            Token::bearer(SecretString::from("t"), now + issued, Some(now + expires)).unwrap()
        };
        assert_eq!(State::of(None, &*clock), State::None);
        let fresh = token(time::Duration::ZERO, time::Duration::hours(1));
        assert_eq!(State::of(Some(&fresh), &*clock), State::Fresh);
        let expiring = token(-time::Duration::hours(1), time::Duration::minutes(3));
        assert_eq!(State::of(Some(&expiring), &*clock), State::Expiring);
        let expired = token(-time::Duration::hours(1), -time::Duration::seconds(1));
        assert_eq!(State::of(Some(&expired), &*clock), State::Expired);
        assert_eq!(State::Expiring.as_str(), "expiring");
    }
}
