//! What the store benches share.

use std::time::Duration;

use auth_core::{StoredEntry, Token};
use secrecy::SecretString;

/// An entry the size KrmPesan produces: a Cognito-sized JWT (about 1 KiB) and 1.7 KiB of
/// refresh material.
pub(crate) fn entry() -> StoredEntry {
    let issued = time::OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let token = Token::bearer(
        SecretString::from(format!("eyJ{}", "a".repeat(1000))),
        issued,
        Some(issued + Duration::from_secs(86_400)),
    )
    .unwrap();
    let mut entry = StoredEntry::with_token(token);
    entry.refresh = Some(SecretString::from("r".repeat(1700)));
    entry
}
