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

/// One uncontended taking and release of `key`'s refresh lock (a 10 s lease).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) async fn lock_and_release(store: &dyn auth_core::TokenStore, key: &auth_core::StoreKey) {
    store
        .lock(key, Duration::from_secs(10))
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}
