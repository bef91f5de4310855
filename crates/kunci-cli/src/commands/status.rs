//! The `kunci status` table: what the store holds for each profile, never a secret.

use std::time::Duration;

use auth_core::{Clock, Freshness, RefreshPolicy, StoreKey, StoredEntry};
use time::{OffsetDateTime, UtcOffset, macros::format_description};

use crate::config::Profile;

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) profile: String,
    pub(crate) provider: &'static str,
    pub(crate) key: String,
    pub(crate) state: String,
    pub(crate) expires: String,
    pub(crate) remaining: String,
    /// When the configured credential stops working (Kalsel.dev's refresh token), if known.
    pub(crate) credential_expires_at: Option<OffsetDateTime>,
}

impl Row {
    /// A row for a profile whose variables are missing or wrong.
    pub(crate) fn not_configured(profile: &Profile) -> Self {
        Self {
            profile: profile.name.clone(),
            provider: profile.kind.name(),
            key: "-".to_owned(),
            state: "not configured".to_owned(),
            expires: "-".to_owned(),
            remaining: "-".to_owned(),
            credential_expires_at: None,
        }
    }

    /// Adds when the configured credential expires (shown under the table).
    #[must_use]
    pub(crate) fn with_credential_expiry(mut self, at: Option<OffsetDateTime>) -> Self {
        self.credential_expires_at = at;
        self
    }

    /// A row from the stored entry (or its absence).
    pub(crate) fn from_entry(
        profile: &Profile,
        key: &StoreKey,
        entry: Option<&StoredEntry>,
        clock: &dyn Clock,
        offset: Option<UtcOffset>,
    ) -> Self {
        let now = clock.now();
        let token = entry.and_then(|e| e.token.as_ref());
        let cooling = entry
            .and_then(|e| e.cooldown_until)
            .filter(|until| *until > now);
        let freshness = token.map(|t| {
            let mono = clock.monotonic();
            RefreshPolicy::default()
                .deadlines(t.issued_at(), t.expires_at(), now, mono, 0.0)
                .freshness(mono)
        });
        let mut state = match freshness {
            None => "none".to_owned(),
            Some(Freshness::Fresh) => "fresh".to_owned(),
            Some(Freshness::Expiring) => "expiring".to_owned(),
            Some(Freshness::Expired) => "expired".to_owned(),
        };
        if let Some(until) = cooling {
            let until = local_time(until, offset);
            state = if token.is_some() {
                format!("{state}, cooling down until {until}")
            } else {
                format!("cooling down until {until}")
            };
        }
        let (expires, remaining) = match token {
            None => ("-".to_owned(), "-".to_owned()),
            Some(t) => match t.expires_at() {
                None => ("never".to_owned(), "-".to_owned()),
                Some(at) => (local_time(at, offset), relative(at - now)),
            },
        };
        Self {
            profile: profile.name.clone(),
            provider: profile.kind.name(),
            key: key.to_string(),
            state,
            expires,
            remaining,
            credential_expires_at: None,
        }
    }

    /// The line under the table about the credential's own expiry: `log in again before …`,
    /// a warning within a day of it, or that it has expired.
    pub(crate) fn credential_note(
        &self,
        now: OffsetDateTime,
        offset: Option<UtcOffset>,
    ) -> Option<String> {
        let at = self.credential_expires_at?;
        let (when, left) = (local_time(at, offset), relative(at - now));
        let login = format!("kunci login {}", self.profile);
        Some(if at <= now {
            format!(
                "{}: the refresh token expired {when} ({left}): log in again (`{login}`)",
                self.profile
            )
        } else if at - now <= time::Duration::DAY {
            format!(
                "warning: {}: log in again before {when} ({left}): the refresh token expires then (`{login}`)",
                self.profile
            )
        } else {
            format!(
                "{}: log in again before {when} ({left}): the refresh token expires then",
                self.profile
            )
        })
    }
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

/// The table, columns padded to their widest cell, then a line per credential that expires
/// (`log in again before …`).
pub(crate) fn render(
    rows: &[Row],
    store: &str,
    offset: Option<UtcOffset>,
    clock: &dyn Clock,
) -> String {
    let header = ["PROFILE", "PROVIDER", "STATE", "EXPIRES", "KEY", "STORE"];
    let expiries: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.remaining == "-" {
                r.expires.clone()
            } else {
                format!("{} ({})", r.expires, r.remaining)
            }
        })
        .collect();
    let cells: Vec<[&str; 6]> = rows
        .iter()
        .zip(&expiries)
        .map(|(r, expires)| {
            [
                r.profile.as_str(),
                r.provider,
                r.state.as_str(),
                expires.as_str(),
                r.key.as_str(),
                store,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str; 6]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header);
    for row in &cells {
        out.push_str(&line(row));
    }
    let now = clock.now();
    for note in rows.iter().filter_map(|r| r.credential_note(now, offset)) {
        out.push_str(&note);
        out.push('\n');
    }
    if offset.is_none() {
        out.push_str("(times in UTC: the local time zone is unknown)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use auth_core::{ManualClock, Token};
    use secrecy::SecretString;
    use time::macros::{datetime, offset};

    use super::*;
    use crate::config::Config;

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
    }

    #[test]
    fn far_future_and_far_past_times_never_panic_in_a_non_utc_offset() {
        let end = datetime!(9999-12-31 23:59:59 UTC);
        // +07:00 would be the year 10000: shown in UTC instead
        assert_eq!(
            local_time(end, Some(offset!(+7))),
            "9999-12-31 23:59:59 +00:00"
        );
        let start = datetime!(-9999-01-01 00:00:00 UTC);
        assert!(!local_time(start, Some(offset!(-7))).is_empty());
        let now = datetime!(2026-11-22 07:00:00 UTC);
        let clock: Arc<ManualClock> = ManualClock::new(now);
        let profile = Config::default().profile("kalsel").unwrap();
        let key = StoreKey::new("kalsel:default").unwrap();
        for at in [end, start] {
            let token = Token::bearer(SecretString::from("t0k3n"), now, Some(at)).unwrap();
            let row = Row::from_entry(
                &profile,
                &key,
                Some(&StoredEntry::with_token(token)),
                &*clock,
                Some(offset!(+7)),
            )
            .with_credential_expiry(Some(at));
            let table = render(&[row], "memory:", Some(offset!(+7)), &*clock);
            assert!(table.contains("log in again"), "{table}");
        }
    }

    #[test]
    fn the_credentials_expiry_is_shown_under_the_table() {
        let now = datetime!(2026-11-22 07:00:00 UTC);
        let clock: Arc<ManualClock> = ManualClock::new(now);
        let profile = Config::default().profile("kalsel").unwrap();
        let key = StoreKey::new("kalsel:default").unwrap();
        let row = |at| {
            Row::from_entry(&profile, &key, None, &*clock, Some(offset!(+7)))
                .with_credential_expiry(Some(at))
        };
        let week = row(now + time::Duration::days(7));
        assert_eq!(
            week.credential_note(now, Some(offset!(+7))).unwrap(),
            "kalsel: log in again before 2026-11-29 14:00:00 +07:00 (in 7d 0h): the refresh token expires then"
        );
        let soon = row(now + time::Duration::hours(5));
        assert!(
            soon.credential_note(now, Some(offset!(+7)))
                .unwrap()
                .starts_with(
                    "warning: kalsel: log in again before 2026-11-22 19:00:00 +07:00 (in 5h 0m)"
                )
        );
        let gone = row(now - time::Duration::hours(2));
        assert_eq!(
            gone.credential_note(now, None).unwrap(),
            "kalsel: the refresh token expired 2026-11-22 05:00:00 +00:00 (2h 0m ago): log in again (`kunci login kalsel`)"
        );
        let table = render(&[week], "memory:", Some(offset!(+7)), &*clock);
        assert!(
            table.ends_with("the refresh token expires then\n"),
            "{table}"
        );
        assert!(
            Row::not_configured(&profile)
                .credential_note(now, None)
                .is_none()
        );
    }

    #[test]
    fn rows_show_state_and_cool_down() {
        let now = datetime!(2026-11-22 07:00:00 UTC);
        let clock: Arc<ManualClock> = ManualClock::new(now);
        let profile = Config::default().profile("sehatmu").unwrap();
        let key = StoreKey::new("sehatmu:abc").unwrap();
        let row = Row::from_entry(&profile, &key, None, &*clock, None);
        assert_eq!((row.state.as_str(), row.expires.as_str()), ("none", "-"));

        let token = Token::bearer(
            SecretString::from("t0k3n"),
            now - time::Duration::hours(1),
            Some(now + time::Duration::hours(3)),
        )
        .unwrap();
        let mut entry = StoredEntry::with_token(token);
        entry.cooldown_until = Some(now + time::Duration::minutes(1));
        let row = Row::from_entry(&profile, &key, Some(&entry), &*clock, Some(offset!(+7)));
        assert_eq!(
            row.state,
            "fresh, cooling down until 2026-11-22 07:01:00 +07:00".replace("07:01", "14:01")
        );
        assert_eq!(row.remaining, "in 3h 0m");
        let table = render(&[row], "memory:", Some(offset!(+7)), &*clock);
        assert!(table.starts_with("PROFILE"), "{table}");
        assert!(!table.contains("t0k3n"));
    }
}
