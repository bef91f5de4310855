//! Assembling a source, a store and a policy into a [`TokenManager`].

use std::path::PathBuf;

use auth_core::{
    Error, RefreshPolicy, SharedClock, SharedTokenSource, SharedTokenStore, StoreKey, TokenManager,
    http::{HttpClient, HttpConfig},
    provider::Vars,
};
use auth_store::Cipher;

use crate::{providers::ProviderKind, store::StoreSpec};

/// The variable naming the store (`KUNCI_STORE`): a directory, `file://DIR`, `redis://…`,
/// `rediss://…`, `postgres://…`, `postgresql://…` or `memory:`; unset means the file store in
/// the platform data directory.
pub const ENV_STORE: &str = "KUNCI_STORE";
/// The variable holding the store's encryption key, 32 bytes in base64 or hex (`KUNCI_STORE_KEY`).
/// Set but unusable (not text, not 32 bytes) is a configuration error: kunci never falls back
/// to storing entries unencrypted.
pub const ENV_STORE_KEY: &str = "KUNCI_STORE_KEY";
/// The variable naming a PEM file of the certificate authorities trusted for a `rediss://`
/// store with a private CA (`KUNCI_STORE_CA`).
pub const ENV_STORE_CA: &str = "KUNCI_STORE_CA";

/// Builds a [`TokenManager`]: a source, a store (default: the file store in the platform data
/// directory) and a refresh policy.
///
/// # Defaults, beside [`TokenManager::builder`]
///
/// Both key a manager alike — the source's own key
/// ([`TokenSource::store_key`](auth_core::TokenSource::store_key)), else `<name>:default` —
/// and both default to the system clock and [`RefreshPolicy::default`]. They differ in the
/// store only, on purpose: this builder opens the **file store** in the platform data
/// directory (or what [`store_spec`](Self::store_spec) says), so tokens outlive the process
/// and are shared by every process of the user, which is what an application configured by
/// its environment wants; auth-core's builder takes a fresh **memory store**, because
/// auth-core opens no file and depends on no store backend.
#[derive(Debug)]
pub struct ManagerBuilder {
    source: SharedTokenSource,
    /// `None`: the source's own key, else `<name>:default`.
    key: Option<StoreKey>,
    store: Option<SharedTokenStore>,
    spec: StoreSpec,
    cipher: Option<Cipher>,
    store_ca: Option<PathBuf>,
    policy: RefreshPolicy,
    clock: Option<SharedClock>,
    #[cfg(feature = "metrics")]
    metrics: Option<(crate::metrics::Metrics, String)>,
}

impl ManagerBuilder {
    /// A manager for a source, keyed by the account it serves
    /// ([`TokenSource::store_key`](auth_core::TokenSource::store_key)) — every provider's source
    /// knows it — or, for a source that does not say, `<name>:default`: the same default as
    /// [`TokenManager::builder`].
    pub fn new(source: impl Into<SharedTokenSource>) -> Self {
        Self::with_key(source.into(), None)
    }

    /// A manager for any source, under `key` (instead of the source's own).
    pub fn from_source(source: impl Into<SharedTokenSource>, key: StoreKey) -> Self {
        Self::with_key(source.into(), Some(key))
    }

    fn with_key(source: SharedTokenSource, key: Option<StoreKey>) -> Self {
        Self {
            source,
            key,
            store: None,
            spec: StoreSpec::DefaultFile,
            cipher: None,
            store_ca: None,
            policy: RefreshPolicy::default(),
            clock: None,
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// Keeps tokens where `spec` says (see [`StoreSpec::parse`]).
    #[must_use]
    pub fn store_spec(mut self, spec: StoreSpec) -> Self {
        self.spec = spec;
        self.store = None;
        self
    }

    /// Keeps tokens in this process's memory only.
    #[must_use]
    pub fn memory_store(self) -> Self {
        self.store_spec(StoreSpec::Memory)
    }

    /// Keeps tokens in an already opened store.
    #[must_use]
    pub fn store(mut self, store: impl Into<SharedTokenStore>) -> Self {
        self.store = Some(store.into());
        self
    }

    /// Encrypts entries at rest (file, Redis and PostgreSQL stores).
    #[must_use]
    pub fn cipher(mut self, cipher: Cipher) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Trusts the certificate authorities in the PEM file `path` for a `rediss://` store with a
    /// private CA (see [`StoreSpec::open_with`]).
    #[must_use]
    pub fn store_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.store_ca = Some(path.into());
        self
    }

    /// The refresh policy.
    #[must_use]
    pub fn policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The clock (tests).
    #[must_use]
    pub fn clock(mut self, clock: impl Into<SharedClock>) -> Self {
        self.clock = Some(clock.into());
        self
    }

    /// Reports the manager's series in `metrics` under the label `profile` (feature
    /// `metrics`): its requests are counted and timed, its statistics read at each scrape.
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metrics(mut self, metrics: &crate::metrics::Metrics, profile: &str) -> Self {
        self.metrics = Some((metrics.clone(), profile.to_owned()));
        self
    }

    /// Opens the store and builds the manager. Spawns nothing.
    pub async fn build(self) -> Result<TokenManager, Error> {
        let store = match self.store {
            Some(store) => store,
            None => {
                self.spec
                    .open_with(self.cipher, self.store_ca.as_deref())
                    .await?
            }
        };
        #[cfg(feature = "metrics")]
        let source = match &self.metrics {
            Some((metrics, profile)) => metrics.instrument(profile, self.source),
            None => self.source,
        };
        #[cfg(not(feature = "metrics"))]
        let source = self.source;
        let mut builder = TokenManager::builder(source)
            .store(store)
            .policy(self.policy);
        if let Some(key) = self.key {
            builder = builder.key(key);
        }
        if let Some(clock) = self.clock {
            builder = builder.clock(clock);
        }
        let manager = builder.build()?;
        #[cfg(feature = "metrics")]
        if let Some((metrics, profile)) = &self.metrics {
            metrics.watch(profile, &manager);
        }
        Ok(manager)
    }
}

/// A manager for `kind`, configured entirely from the environment: the provider's documented
/// variables, `KUNCI_STORE`, `KUNCI_STORE_KEY` and `KUNCI_STORE_CA`. A variable that is set
/// but not valid UTF-8 is a configuration error naming it — never read as unset (an unreadable
/// `KUNCI_STORE_KEY` must not turn encryption off).
pub async fn from_env(kind: ProviderKind) -> Result<TokenManager, Error> {
    let mut names = kind.env_vars();
    names.extend([ENV_STORE, ENV_STORE_KEY, ENV_STORE_CA]);
    let env = Vars::read_env(&names)?;
    from_lookup(kind, &|name| env.get(name).cloned(), HttpConfig::default()).await
}

/// [`from_env`] over any variable lookup (a CLI profile, a secrets manager, a test map).
pub async fn from_lookup(
    kind: ProviderKind,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    http: impl Into<HttpClient>,
) -> Result<TokenManager, Error> {
    let source = kind.source_from_lookup(lookup, http)?;
    let spec = StoreSpec::parse(&lookup(ENV_STORE).unwrap_or_default())?;
    let mut builder = ManagerBuilder::new(source).store_spec(spec);
    if let Some(encoded) = lookup(ENV_STORE_KEY) {
        let cipher = Cipher::from_encoded(&encoded)
            .map_err(|e| Error::configuration(format!("{ENV_STORE_KEY}: {e}")))?;
        builder = builder.cipher(cipher);
    }
    if let Some(path) = lookup(ENV_STORE_CA).filter(|p| !p.trim().is_empty()) {
        builder = builder.store_ca_file(path.trim());
    }
    builder.build().await
}
