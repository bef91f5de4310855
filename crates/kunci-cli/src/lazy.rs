//! The warm path's shortcut: the store key of an account is known from its configuration
//! alone (`ProviderKind::store_key_from_lookup`), and the provider's source — whose HTTP
//! client reads the system's root certificates,
//! most of a warm `kunci token`'s time — is built only when a request is to be sent.

use std::{collections::HashMap, fmt, sync::OnceLock, time::Duration};

use async_trait::async_trait;
use kunci::{
    Error, HttpConfig, ProviderKind, SharedTokenSource, TokenSource,
    core::{FetchRequest, Fetched},
};

/// A provider's source, built on its first fetch.
pub(crate) struct LazySource {
    kind: ProviderKind,
    vars: HashMap<String, String>,
    http: HttpConfig,
    built: OnceLock<Result<SharedTokenSource, Error>>,
}

impl LazySource {
    pub(crate) fn new(kind: ProviderKind, vars: HashMap<String, String>, http: HttpConfig) -> Self {
        Self {
            kind,
            vars,
            http,
            built: OnceLock::new(),
        }
    }

    fn source(&self) -> Result<&SharedTokenSource, Error> {
        self.built
            .get_or_init(|| {
                self.kind
                    .source_from_lookup(&|name| self.vars.get(name).cloned(), self.http.clone())
                    .map(|(source, _)| source)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl fmt::Debug for LazySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("LazySource")
            .field("provider", &self.kind.name())
            .field("variables", &names)
            .field("built", &self.built.get().is_some())
            .finish()
    }
}

#[async_trait]
impl TokenSource for LazySource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        self.source()?.fetch(request).await
    }

    fn cooldown_after_failure(&self, error: &Error) -> Option<Duration> {
        self.built
            .get()?
            .as_ref()
            .ok()?
            .cooldown_after_failure(error)
    }

    fn name(&self) -> &str {
        self.kind.name()
    }

    /// Builds the source if it is not built yet (its HTTP client included): only `kunci
    /// status` and the manager's stats ask, never the warm path.
    fn credential_expires_at(&self) -> Option<time::OffsetDateTime> {
        self.source().ok()?.credential_expires_at()
    }

    /// The provider's credential, so a stored entry made with another one (a replaced
    /// `STAMPS_STATIC_TOKEN`, another KrmPesan device) is not served. The manager asks for it
    /// before it serves a stored token, so this builds the source.
    fn credential(&self) -> Option<kunci::core::Credential> {
        self.source().ok()?.credential()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_built_sources() {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("KRMPESAN_REFRESH_TOKEN", "rt"),
            ("KRMPESAN_DEVICE_KEY", "ap-southeast-1_dk"),
            ("KRMPESAN_ACCOUNT", "shop"),
            ("KALSEL_REFRESH_TOKEN", "rt"),
            ("SEHATMU_CLIENT_ID", "3310fd56.sehatmu.client"),
            ("SEHATMU_CLIENT_SECRET", "s"),
            ("STAMPS_TOKEN", "t"),
            ("STAMPS_MERCHANT_ID", "42"),
        ]);
        let lookup = |name: &str| vars.get(name).map(|v| (*v).to_owned());
        for kind in ProviderKind::all() {
            let cheap = kind.store_key_from_lookup(&lookup).unwrap();
            let (_, built) = kind
                .source_from_lookup(&lookup, HttpConfig::default())
                .unwrap();
            assert_eq!(cheap, built, "{kind}");
        }
        let lookup = |name: &str| (name == "STAMPS_STATIC_TOKEN").then(|| "perm".to_owned());
        assert_eq!(
            ProviderKind::Stamps
                .store_key_from_lookup(&lookup)
                .unwrap()
                .as_str(),
            "stamps:static"
        );
    }

    #[test]
    fn debug_names_variables_not_values() {
        let source = LazySource::new(
            ProviderKind::SehatMu,
            HashMap::from([("SEHATMU_CLIENT_SECRET".to_owned(), "hunter2".to_owned())]),
            HttpConfig::default(),
        );
        let debug = format!("{source:?}");
        assert!(
            debug.contains("SEHATMU_CLIENT_SECRET") && !debug.contains("hunter2"),
            "{debug}"
        );
    }
}
