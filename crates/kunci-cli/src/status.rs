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
        }
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
        }
    }
}

/// `2026-11-22 14:03:12 +07:00` in the local offset (UTC when it is unknown).
pub(crate) fn local_time(at: OffsetDateTime, offset: Option<UtcOffset>) -> String {
    let format = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory]:[offset_minute]"
    );
    at.to_offset(offset.unwrap_or(UtcOffset::UTC))
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

/// The table, columns padded to their widest cell.
pub(crate) fn render(rows: &[Row], store: &str, utc_note: bool) -> String {
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
    if utc_note {
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
        let table = render(&[row], "memory:", false);
        assert!(table.starts_with("PROFILE"), "{table}");
        assert!(!table.contains("t0k3n"));
    }
}
