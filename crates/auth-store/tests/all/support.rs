//! Helpers shared by the test modules.

use std::time::Duration;

use auth_core::{StoredEntry, Token};
use secrecy::{ExposeSecret as _, SecretString};
use time::{OffsetDateTime, macros::datetime};

pub(crate) const T0: OffsetDateTime = datetime!(2026-03-01 08:00 UTC);

/// An entry with a token `secret` expiring an hour after `T0`, refresh material `refresh`.
pub(crate) fn entry(secret: &str, refresh: Option<&str>) -> StoredEntry {
    let token = Token::bearer(
        SecretString::from(secret),
        T0,
        Some(T0 + Duration::from_secs(3600)),
    )
    .unwrap();
    let mut entry = StoredEntry::with_token(token);
    entry.refresh = refresh.map(SecretString::from);
    entry
}

pub(crate) fn secret_of(entry: &StoredEntry) -> String {
    entry
        .token
        .as_ref()
        .unwrap()
        .secret()
        .expose_secret()
        .to_owned()
}

/// A source that counts its calls (the store contract kit's).
pub(crate) use auth_core::store::conformance::counting_source;

/// Connecting through `url` (a password `hunter2` in it, nothing listening at `127.0.0.1`)
/// failed as unavailable, and the error shows the host but never the password.
#[track_caller]
pub(crate) fn assert_unreachable_hides_the_password(err: &auth_core::StoreError) {
    assert!(
        matches!(err, auth_core::StoreError::Unavailable { .. }),
        "{err}"
    );
    let printed = format!("{err} {err:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("[redacted]@127.0.0.1"), "{printed}");
}
