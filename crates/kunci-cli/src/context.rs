//! What every command that works on a profile needs, decided once from the global options,
//! the environment and the config file: the profile (and with it the provider's declaration),
//! the store, the HTTP settings, the refresh policy and the clock.
//!
//! Building a [`Context`] reads the config file and parses the store's description; it opens
//! nothing. A command opens the store with [`Context::open_store`] when it may write, or with
//! [`Context::open_store_to_read`] when it only reads (which creates no directory).

use std::{collections::HashMap, path::PathBuf, time::Duration};

use auth_core::{MemoryStore, RefreshPolicy, StoreKey, SystemClock, http::HttpClient};
use kunci::{
    Cipher, HttpConfig, ManagerBuilder, ProviderKind, SharedTokenSource, SharedTokenStore,
    StoreSpec, TokenManager,
};
use time::UtcOffset;

use crate::{
    cli::Global,
    config::{Config, Profile},
    failure::{Failure, code},
    logins,
};

/// The variable that names the profile a command uses when none is given.
pub(crate) const ENV_PROFILE: &str = "KUNCI_PROFILE";

/// What every profile command needs: the config, the store and the HTTP settings.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) spec: StoreSpec,
    cipher: Option<Cipher>,
    store_ca: Option<PathBuf>,
    pub(crate) http: HttpConfig,
    pub(crate) timeout: Duration,
    /// The wall clock expiry dates are read from.
    pub(crate) clock: SystemClock,
    /// The local UTC offset, when it is known and the command shows local times.
    pub(crate) offset: Option<UtcOffset>,
}

impl Context {
    /// Reads the config file and decides the store, without opening anything.
    pub(crate) fn new(global: &Global) -> Result<Self, Failure> {
        let config = Config::load(global.config.as_deref())?;
        let spec_text = global
            .store
            .clone()
            .or_else(|| config.store.clone())
            .unwrap_or_default();
        let spec = StoreSpec::parse(&spec_text)?;
        // Set but unusable — not text, or not a key — is a configuration error: never a
        // silent fall-back to entries stored unencrypted.
        let cipher = match std::env::var(kunci::ENV_STORE_KEY) {
            Ok(encoded) => {
                Some(Cipher::from_encoded(&encoded).map_err(|e| {
                    Failure::configuration(format!("{}: {e}", kunci::ENV_STORE_KEY))
                })?)
            }
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Failure::configuration(format!(
                    "{} is set but is not valid text; set it to a 32-byte key in base64 or hex, or unset it to store entries unencrypted",
                    kunci::ENV_STORE_KEY
                )));
            }
        };
        let mut http = HttpConfig::default().with_timeout(global.timeout);
        if let Some(path) = &global.ca_file {
            http = http.with_ca_file(path)?;
        }
        Ok(Self {
            config,
            spec,
            cipher,
            store_ca: global.store_ca.clone(),
            http,
            timeout: global.timeout,
            clock: SystemClock::new(),
            offset: None,
        })
    }

    /// Shows times in `offset` (read by `main` while it was the only thread).
    #[must_use]
    pub(crate) fn with_local_offset(mut self, offset: Option<UtcOffset>) -> Self {
        self.offset = offset;
        self
    }

    /// The profile a command names, else the default one: the command line, then
    /// `KUNCI_PROFILE`, then the config file's `default_profile`.
    pub(crate) fn profile(&self, named: Option<&str>) -> Result<Profile, Failure> {
        let from_env = std::env::var(ENV_PROFILE).ok();
        let name = default_profile(named, from_env.as_deref(), self.config.default_profile.as_deref())
            .ok_or_else(|| {
                Failure::configuration("no PROFILE was given").hint(format!(
                    "name one (`kunci token sehatmu`), set {ENV_PROFILE}, or set `default_profile` in the config file"
                ))
            })?;
        self.config.profile(name)
    }

    /// Every config profile, and every provider with a variable set or a saved login in
    /// `store`: what `kunci status` lists (and `kunci agent` serves).
    pub(crate) async fn configured_profiles(
        &self,
        store: &SharedTokenStore,
    ) -> Result<Vec<Profile>, Failure> {
        let mut profiles: Vec<Profile> = self.config.profiles.values().cloned().collect();
        for kind in ProviderKind::all() {
            if self.config.profiles.contains_key(kind.name()) {
                continue;
            }
            let profile = self.config.profile(kind.name())?;
            let any_env = kind
                .variables()
                .iter()
                .any(|v| std::env::var_os(v.name).is_some());
            if any_env || logins::exists(store, &profile).await? {
                profiles.push(profile);
            }
        }
        Ok(profiles)
    }

    /// Opens the store (connects, for Redis and PostgreSQL; creates a file store's directory).
    pub(crate) async fn open_store(&self) -> Result<SharedTokenStore, Failure> {
        self.spec
            .open_with(self.cipher.clone(), self.store_ca.as_deref())
            .await
            .map_err(|e| {
                Failure::from(e).or_hint(format!(
                    "the store is {}; choose another with --store or KUNCI_STORE",
                    self.spec.describe()
                ))
            })
    }

    /// Opens the store to read it, and answers it with its description. A file store whose
    /// directory does not exist holds nothing: it is not created, and an empty store stands
    /// in for it (commands that only read create no directory).
    pub(crate) async fn open_store_to_read(&self) -> Result<(SharedTokenStore, String), Failure> {
        let dir = match &self.spec {
            StoreSpec::File(dir) => Some(dir.clone()),
            StoreSpec::DefaultFile => kunci::FileStore::default_location().ok(),
            _ => None,
        };
        if let Some(dir) = dir
            && self.store_ca.is_none()
            && !dir.exists()
        {
            tracing::debug!(dir = %dir.display(), "the store directory does not exist: nothing is stored");
            return Ok((
                SharedTokenStore::new(MemoryStore::new()),
                self.spec.describe(),
            ));
        }
        let store = self.open_store().await?;
        let described = store.describe();
        Ok((store, described))
    }

    /// The refresh policy: the default, with room for one request of `--timeout`.
    pub(crate) fn policy(&self) -> RefreshPolicy {
        let mut policy = RefreshPolicy::default();
        policy.refresh_timeout = policy
            .refresh_timeout
            .max(self.timeout + Duration::from_secs(30));
        policy
    }

    /// The variables of `profile`, with its saved login.
    pub(crate) async fn variables(
        &self,
        profile: &Profile,
        store: &SharedTokenStore,
    ) -> Result<HashMap<String, String>, Failure> {
        let login = logins::load(store, profile).await?;
        profile.variables(&login, &|name| std::env::var(name).ok())
    }

    /// The profile's source and its store key.
    pub(crate) async fn source(
        &self,
        profile: &Profile,
        store: &SharedTokenStore,
    ) -> Result<(SharedTokenSource, StoreKey), Failure> {
        let vars = self.variables(profile, store).await?;
        self.source_from(profile, &vars)
            .map_err(|e| configuration_hint(e, profile))
    }

    /// The source `vars` configure for `profile`, and its store key. Building a source is
    /// cheap: its HTTP client is built only if a request is sent.
    pub(crate) fn source_from(
        &self,
        profile: &Profile,
        vars: &HashMap<String, String>,
    ) -> Result<(SharedTokenSource, StoreKey), Failure> {
        source_with(profile, vars, self.http.clone())
    }

    /// A manager of `source`'s token under `key` in `store`, with this context's policy.
    pub(crate) async fn manager(
        &self,
        source: SharedTokenSource,
        key: StoreKey,
        store: SharedTokenStore,
    ) -> Result<TokenManager, Failure> {
        Ok(ManagerBuilder::from_source(source, key)
            .store(store)
            .policy(self.policy())
            .build()
            .await?)
    }
}

/// The profile to use: the one `named` on the command line, else `from_env`
/// (`KUNCI_PROFILE`), else the config file's `default_profile`; empty values count as unset.
pub(crate) fn default_profile<'a>(
    named: Option<&'a str>,
    from_env: Option<&'a str>,
    from_file: Option<&'a str>,
) -> Option<&'a str> {
    [named, from_env, from_file]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|name| !name.is_empty())
}

/// The store key of the account `source` serves: its own, else `<name>:default` (the
/// manager's default).
pub(crate) fn store_key(source: &SharedTokenSource) -> Result<StoreKey, Failure> {
    match source.store_key() {
        Some(key) => Ok(key),
        None => Ok(StoreKey::for_account(source.name(), "default")?),
    }
}

/// The source `vars` configure for `profile` on `http` (the agent's profiles of one provider
/// share one client), and its store key.
pub(crate) fn source_with(
    profile: &Profile,
    vars: &HashMap<String, String>,
    http: impl Into<HttpClient>,
) -> Result<(SharedTokenSource, StoreKey), Failure> {
    let source = profile
        .kind
        .source_from_lookup(&|name| vars.get(name).cloned(), http)?;
    let key = store_key(&source)?;
    Ok((source, key))
}

/// Adds the usual way out to a configuration failure.
pub(crate) fn configuration_hint(failure: Failure, profile: &Profile) -> Failure {
    if failure.code != code::CONFIGURATION {
        return failure;
    }
    let vars = profile
        .kind
        .variables()
        .iter()
        .filter(|v| v.credential)
        .map(|v| v.name)
        .collect::<Vec<_>>()
        .join(", ");
    failure.or_hint(format!(
        "set {vars} in the environment, or run `kunci login {}`",
        profile.name
    ))
}

/// Adds what to do after a rejection.
pub(crate) fn outcome_hint(failure: Failure, profile: &Profile) -> Failure {
    match failure.code {
        code::REAUTHENTICATE => failure.or_hint(format!(
            "run `kunci login {0}` with new credentials (or `kunci logout {0}` before setting new environment variables)",
            profile.name
        )),
        _ => failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_named_on_the_command_line_wins_over_kunci_profile_which_wins_over_the_file() {
        assert_eq!(
            default_profile(Some("flag"), Some("env"), Some("file")),
            Some("flag")
        );
        assert_eq!(
            default_profile(None, Some("env"), Some("file")),
            Some("env")
        );
        assert_eq!(default_profile(None, None, Some("file")), Some("file"));
        assert_eq!(default_profile(None, Some(""), Some("file")), Some("file"));
        assert_eq!(default_profile(None, None, None), None);
    }
}
