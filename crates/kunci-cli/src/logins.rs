//! Saved logins: the secrets `kunci login` keeps in the store under `login:<profile>`, as a
//! JSON object in the entry's secret field (the file store writes it mode 0600, encrypted at
//! rest with `KUNCI_STORE_KEY`). Read by every command through [`crate::context`], written by
//! `kunci login`, removed by `kunci logout`.

use std::collections::HashMap;

use auth_core::{StoreKey, StoredEntry};
use kunci::SharedTokenStore;
use secrecy::{ExposeSecret as _, SecretString};

use crate::{
    config::Profile,
    failure::{Failure, code},
};

/// The secrets `kunci login` saved for `profile` (empty when there are none).
pub(crate) async fn load(
    store: &SharedTokenStore,
    profile: &Profile,
) -> Result<HashMap<String, String>, Failure> {
    let key = profile.login_key()?;
    let Some(entry) = store.load(&key).await.map_err(kunci::Error::from)? else {
        return Ok(HashMap::new());
    };
    let Some(secret) = entry.refresh else {
        return Ok(HashMap::new());
    };
    serde_json::from_str(secret.expose_secret()).map_err(|_| {
        Failure::new(
            code::UNAVAILABLE,
            format!("the saved login `{key}` is unreadable"),
        )
        .hint(format!(
            "run `kunci logout {0}` and `kunci login {0}` again",
            profile.name
        ))
    })
}

/// Whether `profile` has a saved login.
pub(crate) async fn exists(store: &SharedTokenStore, profile: &Profile) -> Result<bool, Failure> {
    Ok(store
        .load(&profile.login_key()?)
        .await
        .map_err(kunci::Error::from)?
        .is_some())
}

/// Saves `secrets` as the login of `profile`, then drops the token entry `token_key` (a token
/// or rotated refresh token of the old login must not outlive it).
pub(crate) async fn save(
    store: &SharedTokenStore,
    profile: &Profile,
    secrets: &HashMap<String, String>,
    token_key: &StoreKey,
) -> Result<(), Failure> {
    let login_key = profile.login_key()?;
    let json = serde_json::to_string(secrets)
        .map_err(|e| Failure::new(code::OTHER, format!("cannot encode the login: {e}")))?;
    let mut entry = StoredEntry::default();
    entry.refresh = Some(SecretString::from(json));
    for _ in 0..3 {
        let version = store
            .load(&login_key)
            .await
            .map_err(kunci::Error::from)?
            .map_or(0, |e| e.version);
        match store.save(&login_key, &entry, version).await {
            Ok(_) => {
                store.delete(token_key).await.map_err(kunci::Error::from)?;
                return Ok(());
            }
            Err(auth_core::StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(kunci::Error::from(e).into()),
        }
    }
    Err(Failure::new(
        code::UNAVAILABLE,
        "the saved login kept being changed by another process; try again",
    ))
}
