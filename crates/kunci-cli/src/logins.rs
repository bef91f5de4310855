//! Saved logins: the secrets `kunci login` keeps, under the store entry `login:<profile>`.
//! Read by every command through [`crate::context`], written by `kunci login`, removed by
//! `kunci logout`.
//!
//! Where an OS keychain answers (feature `keychain`: Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows), the secrets are kept there and the store entry only
//! names the keychain item (`{"@keychain": "<item>"}`); otherwise the store entry holds them,
//! as a JSON object in its secret field (the file store writes it mode 0600, encrypted at rest
//! with `KUNCI_STORE_KEY`).

use std::{collections::HashMap, fmt};

use auth_core::{StoreKey, StoredEntry};
use kunci::SharedTokenStore;
use secrecy::{ExposeSecret as _, SecretString};

use crate::{
    config::Profile,
    failure::{Failure, code},
};

/// The key, in a store entry's JSON object, that names the keychain item holding the secrets.
const IN_KEYCHAIN: &str = "@keychain";
/// The service the keychain items are filed under.
#[cfg(feature = "keychain")]
const SERVICE: &str = "kunci";

/// A place for secrets outside the store. Its calls block (run them off the async threads).
pub(crate) trait Keychain: fmt::Debug + Send + Sync {
    /// Keeps `secret` as the item `item`; `Err` (why, without the secret) when no keychain
    /// answers.
    fn set(&self, item: &str, secret: &str) -> Result<(), String>;
    /// The item `item`; `Ok(None)` when there is none.
    fn get(&self, item: &str) -> Result<Option<String>, String>;
    /// Removes the item `item` (nothing when there is none).
    fn delete(&self, item: &str) -> Result<(), String>;
}

/// The OS keychain, where this build has one (feature `keychain`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OsKeychain;

#[cfg(feature = "keychain")]
impl Keychain for OsKeychain {
    fn set(&self, item: &str, secret: &str) -> Result<(), String> {
        keyring::Entry::new(SERVICE, item)
            .and_then(|entry| entry.set_password(secret))
            .map_err(|e| keychain_error(&e))
    }

    fn get(&self, item: &str) -> Result<Option<String>, String> {
        match keyring::Entry::new(SERVICE, item).and_then(|entry| entry.get_password()) {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keychain_error(&e)),
        }
    }

    fn delete(&self, item: &str) -> Result<(), String> {
        match keyring::Entry::new(SERVICE, item).and_then(|entry| entry.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(keychain_error(&e)),
        }
    }
}

/// The keychain's error, named by kind: its `Display` of a bad-encoding error could quote the
/// bytes it read.
#[cfg(feature = "keychain")]
fn keychain_error(e: &keyring::Error) -> String {
    match e {
        keyring::Error::PlatformFailure(cause) => format!("the keychain failed: {cause}"),
        keyring::Error::NoStorageAccess(cause) => format!("no keychain answers: {cause}"),
        keyring::Error::BadEncoding(_) => "the keychain item is not text".to_owned(),
        keyring::Error::TooLong(what, limit) => format!("{what} is longer than {limit}"),
        keyring::Error::Invalid(what, why) => format!("{what} is invalid: {why}"),
        other => format!("the keychain refused: {other}"),
    }
}

#[cfg(not(feature = "keychain"))]
impl Keychain for OsKeychain {
    fn set(&self, _item: &str, _secret: &str) -> Result<(), String> {
        Err("this build has no keychain support (feature `keychain`)".to_owned())
    }

    fn get(&self, _item: &str) -> Result<Option<String>, String> {
        Err("this build has no keychain support (feature `keychain`)".to_owned())
    }

    fn delete(&self, _item: &str) -> Result<(), String> {
        Err("this build has no keychain support (feature `keychain`)".to_owned())
    }
}

/// Runs a blocking keychain call off the async threads.
async fn blocking<T: Send + 'static>(
    keychain: &'static dyn Keychain,
    call: impl FnOnce(&dyn Keychain) -> T + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(move || call(keychain))
        .await
        .map_err(|e| Failure::new(code::OTHER, format!("the keychain call failed: {e}")))
}

/// The secrets `kunci login` saved for `profile` (empty when there are none).
pub(crate) async fn load(
    store: &SharedTokenStore,
    profile: &Profile,
) -> Result<HashMap<String, String>, Failure> {
    load_with(store, profile, &OsKeychain).await
}

/// [`load`], with the secrets of a login kept in a keychain read from `keychain`.
pub(crate) async fn load_with(
    store: &SharedTokenStore,
    profile: &Profile,
    keychain: &'static dyn Keychain,
) -> Result<HashMap<String, String>, Failure> {
    let key = profile.login_key()?;
    let unreadable = |what: &str| {
        Failure::new(
            code::UNAVAILABLE,
            format!("the saved login `{key}` is unreadable{what}"),
        )
        .hint(format!(
            "run `kunci logout {0}` and `kunci login {0}` again",
            profile.name
        ))
    };
    let Some(entry) = store.load(&key).await.map_err(kunci::Error::from)? else {
        return Ok(HashMap::new());
    };
    let Some(secret) = entry.refresh else {
        return Ok(HashMap::new());
    };
    let saved: HashMap<String, String> =
        serde_json::from_str(secret.expose_secret()).map_err(|_| unreadable(""))?;
    let Some(item) = saved.get(IN_KEYCHAIN).cloned() else {
        return Ok(saved);
    };
    let kept = blocking(keychain, move |k| k.get(&item)).await?;
    match kept {
        Ok(Some(json)) => {
            serde_json::from_str(&json).map_err(|_| unreadable(" (its keychain item)"))
        }
        Ok(None) => Err(Failure::configuration(format!(
            "the saved login `{key}` is kept in the OS keychain, and its item is gone"
        ))
        .hint(format!("run `kunci login {}` again", profile.name))),
        Err(why) => Err(Failure::new(
            code::UNAVAILABLE,
            format!(
                "the saved login `{key}` is kept in the OS keychain, which does not answer: {why}"
            ),
        )
        .hint(
            "unlock the keychain, or retry where it answers (the desktop session that logged in)",
        )),
    }
}

/// Removes the saved login of `profile`, and its keychain item if it has one. Answers whether
/// there was one.
pub(crate) async fn delete(store: &SharedTokenStore, profile: &Profile) -> Result<bool, Failure> {
    delete_with(store, profile, &OsKeychain).await
}

/// [`delete`], with the keychain item removed from `keychain`.
pub(crate) async fn delete_with(
    store: &SharedTokenStore,
    profile: &Profile,
    keychain: &'static dyn Keychain,
) -> Result<bool, Failure> {
    let key = profile.login_key()?;
    let Some(entry) = store.load(&key).await.map_err(kunci::Error::from)? else {
        return Ok(false);
    };
    let item = entry
        .refresh
        .as_ref()
        .and_then(|s| serde_json::from_str::<HashMap<String, String>>(s.expose_secret()).ok())
        .and_then(|mut saved| saved.remove(IN_KEYCHAIN));
    if let Some(item) = item
        && let Err(why) = blocking(keychain, move |k| k.delete(&item)).await?
    {
        return Err(Failure::new(
            code::UNAVAILABLE,
            format!(
                "the saved login `{key}` is kept in the OS keychain, which does not answer: {why}; nothing was removed"
            ),
        ));
    }
    store.delete(&key).await.map_err(kunci::Error::from)?;
    Ok(true)
}

/// Whether `profile` has a saved login.
pub(crate) async fn exists(store: &SharedTokenStore, profile: &Profile) -> Result<bool, Failure> {
    Ok(store
        .load(&profile.login_key()?)
        .await
        .map_err(kunci::Error::from)?
        .is_some())
}

/// Where a login was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// In the OS keychain; the store entry names its item.
    Keychain,
    /// In the store entry itself (no keychain answered).
    Store,
}

/// Saves `secrets` as the login of `profile` (in the OS keychain where one answers, else in
/// the store), then drops the token entry `token_key` (a token or rotated refresh token of the
/// old login must not outlive it).
pub(crate) async fn save(
    store: &SharedTokenStore,
    profile: &Profile,
    secrets: &HashMap<String, String>,
    token_key: &StoreKey,
) -> Result<Kept, Failure> {
    save_with(store, profile, secrets, token_key, &OsKeychain).await
}

/// [`save`], trying `keychain` first.
pub(crate) async fn save_with(
    store: &SharedTokenStore,
    profile: &Profile,
    secrets: &HashMap<String, String>,
    token_key: &StoreKey,
    keychain: &'static dyn Keychain,
) -> Result<Kept, Failure> {
    let login_key = profile.login_key()?;
    let encode = |map: &HashMap<String, String>| {
        serde_json::to_string(map)
            .map_err(|e| Failure::new(code::OTHER, format!("cannot encode the login: {e}")))
    };
    let secrets_json = encode(secrets)?;
    // One item per profile and store: two stores' logins of one profile name stay apart.
    let item = format!("{login_key} in {}", store.describe());
    let (json, kept) = {
        let (named, secret) = (item.clone(), secrets_json.clone());
        match blocking(keychain, move |k| k.set(&named, &secret)).await? {
            Ok(()) => (
                encode(&HashMap::from([(IN_KEYCHAIN.to_owned(), item)]))?,
                Kept::Keychain,
            ),
            Err(why) => {
                tracing::info!(reason = %why, "no OS keychain answered: the login is kept in the store");
                (secrets_json, Kept::Store)
            }
        }
    };
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
                return Ok(kept);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use auth_core::MemoryStore;

    use super::*;
    use crate::config::Config;

    /// A keychain in memory; `answers: false` is a machine without one.
    #[derive(Debug, Default)]
    struct FakeKeychain {
        answers: bool,
        items: Mutex<HashMap<String, String>>,
    }

    impl Keychain for FakeKeychain {
        fn set(&self, item: &str, secret: &str) -> Result<(), String> {
            if !self.answers {
                return Err("no keychain here".to_owned());
            }
            self.items
                .lock()
                .unwrap()
                .insert(item.to_owned(), secret.to_owned());
            Ok(())
        }
        fn get(&self, item: &str) -> Result<Option<String>, String> {
            Ok(self.items.lock().unwrap().get(item).cloned())
        }
        fn delete(&self, item: &str) -> Result<(), String> {
            self.items.lock().unwrap().remove(item);
            Ok(())
        }
    }

    fn keychain(answers: bool) -> &'static FakeKeychain {
        Box::leak(Box::new(FakeKeychain {
            answers,
            ..FakeKeychain::default()
        }))
    }

    fn stored_text(entry: Option<StoredEntry>) -> String {
        entry
            .and_then(|e| e.refresh)
            .map(|s| s.expose_secret().to_owned())
            .unwrap()
    }

    #[tokio::test]
    async fn a_login_goes_to_the_keychain_where_one_answers_and_the_store_only_names_it() {
        let store = SharedTokenStore::new(MemoryStore::new());
        let profile = Config::default().profile("sehatmu").unwrap();
        let token_key = StoreKey::new("sehatmu:abc").unwrap();
        let secrets = HashMap::from([
            ("SEHATMU_CLIENT_ID".to_owned(), "abc".to_owned()),
            ("SEHATMU_CLIENT_SECRET".to_owned(), "s3cr3t-k".to_owned()),
        ]);
        let keychain = keychain(true);
        let kept = save_with(&store, &profile, &secrets, &token_key, keychain)
            .await
            .unwrap();
        assert_eq!(kept, Kept::Keychain);
        let text = stored_text(store.load(&profile.login_key().unwrap()).await.unwrap());
        assert!(
            !text.contains("s3cr3t-k") && text.contains(IN_KEYCHAIN),
            "{text}"
        );
        assert_eq!(keychain.items.lock().unwrap().len(), 1);
        assert_eq!(
            load_with(&store, &profile, keychain).await.unwrap(),
            secrets
        );
        assert!(delete_with(&store, &profile, keychain).await.unwrap());
        assert!(keychain.items.lock().unwrap().is_empty());
        assert!(!exists(&store, &profile).await.unwrap());
        // an item removed behind kunci's back: a configuration error saying to log in again
        save_with(&store, &profile, &secrets, &token_key, keychain)
            .await
            .unwrap();
        keychain.items.lock().unwrap().clear();
        let err = load_with(&store, &profile, keychain).await.unwrap_err();
        assert_eq!(err.code, code::CONFIGURATION, "{}", err.message());
    }

    #[tokio::test]
    async fn without_a_keychain_that_answers_the_login_is_kept_in_the_store() {
        let store = SharedTokenStore::new(MemoryStore::new());
        let profile = Config::default().profile("stamps").unwrap();
        let token_key = StoreKey::new("stamps:static").unwrap();
        let secrets = HashMap::from([("STAMPS_STATIC_TOKEN".to_owned(), "perm-3".to_owned())]);
        let keychain = keychain(false);
        let kept = save_with(&store, &profile, &secrets, &token_key, keychain)
            .await
            .unwrap();
        assert_eq!(kept, Kept::Store);
        let text = stored_text(store.load(&profile.login_key().unwrap()).await.unwrap());
        assert!(
            text.contains("perm-3") && !text.contains(IN_KEYCHAIN),
            "{text}"
        );
        assert_eq!(
            load_with(&store, &profile, keychain).await.unwrap(),
            secrets
        );
        assert!(delete_with(&store, &profile, keychain).await.unwrap());
        assert!(!delete_with(&store, &profile, keychain).await.unwrap());
    }

    /// The OS keychain through the keyring crate's mock store, whose items answer but do not
    /// outlive their `Entry` (so a later read finds none).
    #[cfg(feature = "keychain")]
    #[tokio::test]
    async fn the_os_keychain_through_the_keyring_mock_keeps_the_login_out_of_the_store() {
        keyring::set_default_credential_builder(keyring::mock::default_credential_builder());
        assert_eq!(OsKeychain.set("item", "s3cr3t-m"), Ok(()));
        assert_eq!(OsKeychain.get("item"), Ok(None));
        assert_eq!(OsKeychain.delete("item"), Ok(()));
        let store = SharedTokenStore::new(MemoryStore::new());
        let profile = Config::default().profile("kalsel").unwrap();
        let token_key = StoreKey::new("kalsel:default").unwrap();
        let secrets = HashMap::from([("KALSEL_REFRESH_TOKEN".to_owned(), "s3cr3t-m".to_owned())]);
        let kept = save(&store, &profile, &secrets, &token_key).await.unwrap();
        assert_eq!(kept, Kept::Keychain);
        let text = stored_text(store.load(&profile.login_key().unwrap()).await.unwrap());
        assert!(!text.contains("s3cr3t-m"), "{text}");
        // the mock forgot it: the error says so and shows no secret
        let err = load(&store, &profile).await.unwrap_err();
        assert!(!err.message().contains("s3cr3t-m"));
        assert!(err.message().contains("keychain"), "{}", err.message());
    }
}
