//! `kunci status [PROFILE] [--json]`: what the store holds for each profile — state, expiry,
//! key, store — as a table or as JSON, never a secret. A profile with `accounts = "PREFIX"`
//! (a service's token pool) gets a row for every account stored under that prefix. It only
//! reads: a store that does not exist is not created.

use auth_core::{Clock, StoreKey, StoredEntry};
use time::{OffsetDateTime, UtcOffset};

use crate::{
    config::Profile,
    context::Context,
    failure::{Failure, code},
    output::{State, err_line, local_time, out_json, out_line, relative, rfc3339},
};

/// `kunci status [PROFILE]`.
pub(crate) async fn run(ctx: &Context, profile: Option<&str>, json: bool) -> Result<(), Failure> {
    let (store, described) = ctx.open_store_to_read().await?;
    // In a listing an unconfigured profile is a row; asked for by name, it is an error.
    let listing = profile.is_none();
    let profiles = match profile {
        Some(name) => vec![ctx.config.profile(name)?],
        None => ctx.configured_profiles(&store).await?,
    };
    let mut rows = Vec::new();
    for profile in &profiles {
        if let Some(prefix) = &profile.accounts {
            // A pool-backed profile: a row for every account stored under its prefix.
            for key in store.keys(prefix).await.map_err(kunci::Error::from)? {
                let entry = store.load(&key).await.map_err(kunci::Error::from)?;
                rows.push(Row::from_entry(profile, &key, entry.as_ref(), &ctx.clock));
            }
            continue;
        }
        let row = match ctx.source(profile, &store).await {
            Ok((source, key)) => {
                let entry = store.load(&key).await.map_err(kunci::Error::from)?;
                Row::from_entry(profile, &key, entry.as_ref(), &ctx.clock)
                    .with_credential_expiry(source.credential_expires_at())
            }
            Err(e) if e.code == code::CONFIGURATION && listing => Row::not_configured(profile),
            Err(e) => return Err(e),
        };
        rows.push(row);
    }
    if json {
        return out_json(&StatusJson {
            store: &described,
            profiles: rows.iter().map(RowJson::from).collect(),
        });
    }
    if rows.is_empty() {
        err_line(&format!(
            "no profile is configured: set a provider's variables, run `kunci login PROVIDER`, or add profiles to the config file (store: {described})"
        ));
        return Ok(());
    }
    let table = render(&rows, &described, ctx.offset, &ctx.clock);
    out_line(table.trim_end())
}

/// What the store holds for one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) profile: String,
    pub(crate) provider: &'static str,
    /// The account's store key; `None` when the profile is not configured.
    pub(crate) key: Option<String>,
    pub(crate) state: State,
    /// When the stored token expires (`None`: no token, or one that never expires).
    pub(crate) expires_at: Option<OffsetDateTime>,
    /// Until when nothing is sent after a failed attempt, when that is still ahead.
    pub(crate) cooldown_until: Option<OffsetDateTime>,
    /// When the configured credential stops working (Kalsel.dev's refresh token), if known.
    pub(crate) credential_expires_at: Option<OffsetDateTime>,
}

impl Row {
    /// A row for a profile whose variables are missing or wrong.
    pub(crate) fn not_configured(profile: &Profile) -> Self {
        Self {
            profile: profile.name.clone(),
            provider: profile.kind.name(),
            key: None,
            state: State::None,
            expires_at: None,
            cooldown_until: None,
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
    ) -> Self {
        let now = clock.now();
        let token = entry.and_then(|e| e.token.as_ref());
        Self {
            profile: profile.name.clone(),
            provider: profile.kind.name(),
            key: Some(key.to_string()),
            state: State::of(token, clock),
            expires_at: token.and_then(|t| t.expires_at()),
            cooldown_until: entry
                .and_then(|e| e.cooldown_until)
                .filter(|until| *until > now),
            credential_expires_at: None,
        }
    }

    /// The STATE cell: `fresh`, `expiring`, `expired`, `none`, `not configured`, with a
    /// cool-down after it.
    fn state_text(&self, offset: Option<UtcOffset>) -> String {
        if self.key.is_none() {
            return "not configured".to_owned();
        }
        match (self.cooldown_until, self.state) {
            (None, state) => state.as_str().to_owned(),
            (Some(until), State::None) => {
                format!("cooling down until {}", local_time(until, offset))
            }
            (Some(until), state) => format!(
                "{}, cooling down until {}",
                state.as_str(),
                local_time(until, offset)
            ),
        }
    }

    /// The EXPIRES cell: `-` (nothing stored), `never` (a stored token without expiry), or the
    /// local time and how far it is from `now`.
    fn expires_text(&self, now: OffsetDateTime, offset: Option<UtcOffset>) -> String {
        match self.expires_at {
            None if self.state != State::None => "never".to_owned(),
            None => "-".to_owned(),
            Some(at) => format!("{} ({})", local_time(at, offset), relative(at - now)),
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

/// `kunci status --json` (documented in docs/cli.md): no secret can be in it, as [`Row`]
/// holds none.
#[derive(serde::Serialize)]
struct StatusJson<'a> {
    store: &'a str,
    profiles: Vec<RowJson<'a>>,
}

#[derive(serde::Serialize)]
struct RowJson<'a> {
    profile: &'a str,
    provider: &'static str,
    /// `false`: the profile's variables are missing or wrong (`key` and the rest are null).
    configured: bool,
    key: Option<&'a str>,
    /// `fresh`, `expiring`, `expired`, `none` (nothing stored); null when not configured.
    state: Option<State>,
    expires_at: Option<String>,
    cooldown_until: Option<String>,
    credential_expires_at: Option<String>,
}

impl<'a> From<&'a Row> for RowJson<'a> {
    fn from(row: &'a Row) -> Self {
        let configured = row.key.is_some();
        Self {
            profile: &row.profile,
            provider: row.provider,
            configured,
            key: row.key.as_deref(),
            state: configured.then_some(row.state),
            expires_at: row.expires_at.and_then(rfc3339),
            cooldown_until: row.cooldown_until.and_then(rfc3339),
            credential_expires_at: row.credential_expires_at.and_then(rfc3339),
        }
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
    let now = clock.now();
    let texts: Vec<[String; 3]> = rows
        .iter()
        .map(|r| {
            [
                r.state_text(offset),
                r.expires_text(now, offset),
                r.key.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let cells: Vec<[&str; 6]> = rows
        .iter()
        .zip(&texts)
        .map(|(r, [state, expires, key])| {
            [
                r.profile.as_str(),
                r.provider,
                state.as_str(),
                expires.as_str(),
                key.as_str(),
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
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header);
    for row in &cells {
        out.push_str(&line(row));
    }
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
    fn far_future_and_far_past_expiries_never_panic_in_a_non_utc_offset() {
        let end = datetime!(9999-12-31 23:59:59 UTC);
        let start = datetime!(-9999-01-01 00:00:00 UTC);
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
        let row =
            |at| Row::from_entry(&profile, &key, None, &*clock).with_credential_expiry(Some(at));
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
        let row = Row::from_entry(&profile, &key, None, &*clock);
        assert_eq!(
            (
                row.state_text(None).as_str(),
                row.expires_text(now, None).as_str()
            ),
            ("none", "-")
        );

        let token = Token::bearer(
            SecretString::from("t0k3n"),
            now - time::Duration::hours(1),
            Some(now + time::Duration::hours(3)),
        )
        .unwrap();
        let mut entry = StoredEntry::with_token(token);
        entry.cooldown_until = Some(now + time::Duration::minutes(1));
        let row = Row::from_entry(&profile, &key, Some(&entry), &*clock);
        assert_eq!(
            row.state_text(Some(offset!(+7))),
            "fresh, cooling down until 2026-11-22 14:01:00 +07:00"
        );
        assert!(
            row.expires_text(now, Some(offset!(+7)))
                .ends_with("(in 3h 0m)")
        );
        let table = render(
            std::slice::from_ref(&row),
            "memory:",
            Some(offset!(+7)),
            &*clock,
        );
        assert!(table.starts_with("PROFILE"), "{table}");
        assert!(!table.contains("t0k3n"));
        let json = serde_json::to_string(&RowJson::from(&row)).unwrap();
        assert!(!json.contains("t0k3n"), "{json}");
        assert!(
            json.contains(r#""state":"fresh""#)
                && json.contains(r#""expires_at":"2026-11-22T10:00:00Z""#),
            "{json}"
        );
        let unconfigured =
            serde_json::to_string(&RowJson::from(&Row::not_configured(&profile))).unwrap();
        assert!(
            unconfigured.contains(r#""configured":false"#)
                && unconfigured.contains(r#""state":null"#),
            "{unconfigured}"
        );
    }
}
