//! The seam between the agent and the token machinery: "the token of a profile",
//! "invalidate a rejected token", "where each profile stands", "tell me when a token changes",
//! and keeping every token fresh in the background.
//!
//! Each profile is one [`TokenManager`] with its own `keep_fresh()` task, not an account of a
//! `TokenPool`: the agent serves a small, fixed set of configured profiles of different
//! providers, reports per-profile cache hits (a pooled account counts none), and must never
//! evict one — `docs/agent.md` ("Why not the token pool") has the reasons. The profiles of one
//! provider share one HTTP client (one connection pool, one TLS setup). The HTTP routes, the
//! sinks, `kunci exec` and the metrics only use [`Tokens`].

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use auth_core::{Clock as _, Freshness, SystemClock, TokenGuard};
use kunci::{
    Error, HttpClient, ManagerBuilder, ProviderKind, SharedTokenSource, SharedTokenStore, StoreKey,
    TokenManager, TokenSource,
    core::{FetchRequest, Fetched, KeepFresh},
    metrics::Metrics,
};
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};

use super::AbortOnDrop;
use crate::{
    config::Profile,
    context::Context,
    failure::{Failure, code},
};

/// The lowercase hex SHA-256 of a token: what a client may send instead of the token when it
/// reports a rejection, and what the token route shows. Not a secret (the token has far more
/// entropy than anyone could search), and never the token.
pub(crate) fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    out
}

/// A profile the agent serves.
pub(crate) struct Served {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
    pub(crate) key: StoreKey,
    manager: TokenManager,
    /// The variables the profile was built from, to tell on reload whether it changed.
    vars: BTreeMap<String, String>,
    fingerprint: ArcSwapOption<(u64, Arc<str>)>,
    changes: watch::Receiver<u64>,
    _keep_fresh: KeepFresh,
    _watcher: AbortOnDrop,
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("name", &self.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Served {
    /// The fingerprint of `token`, computed once per token.
    pub(crate) fn fingerprint_of(&self, token: &TokenGuard) -> Arc<str> {
        if let Some(cached) = &*self.fingerprint.load()
            && cached.0 == token.generation()
        {
            return Arc::clone(&cached.1);
        }
        let fp: Arc<str> = fingerprint(token.secret().expose_secret()).into();
        self.fingerprint
            .store(Some(Arc::new((token.generation(), Arc::clone(&fp)))));
        fp
    }
}

/// Why a profile cannot be served.
#[derive(Debug, Clone)]
pub(crate) struct Unserved {
    pub(crate) kind: ProviderKind,
    pub(crate) code: u8,
    pub(crate) message: String,
}

#[derive(Debug)]
enum Slot {
    Ready(Arc<Served>),
    Unconfigured(Unserved),
}

/// Where one profile stands, for `/v1/status` (never a secret).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ProfileStatus {
    pub(crate) profile: String,
    pub(crate) provider: &'static str,
    pub(crate) key: Option<String>,
    /// `fresh`, `expiring`, `expired`, `none` or `not configured`.
    pub(crate) state: &'static str,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) expires_in_seconds: Option<u64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) cooldown_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub(crate) refresh_credential_expires_at: Option<OffsetDateTime>,
    pub(crate) cache_hits: u64,
    pub(crate) fetches: u64,
    pub(crate) error: Option<String>,
}

/// What a token lookup can fail with before the manager is asked.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// No such profile is served.
    Unknown,
    /// The profile is configured wrongly.
    Unconfigured(Unserved),
    /// The manager's error.
    Failed(Error),
}

/// Every profile the agent (or `kunci exec`) serves.
#[derive(Debug)]
pub(crate) struct Tokens {
    slots: BTreeMap<String, Slot>,
}

/// Tells the watcher of a profile that its source answered.
#[derive(Debug)]
struct Notifying {
    source: SharedTokenSource,
    answered: Arc<Notify>,
}

#[async_trait]
impl TokenSource for Notifying {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let result = self.source.fetch(request).await;
        self.answered.notify_one();
        result
    }

    fn cooldown_after_failure(&self, error: &Error) -> Option<Duration> {
        self.source.cooldown_after_failure(error)
    }

    fn name(&self) -> &str {
        self.source.name()
    }

    fn credential_expires_at(&self) -> Option<OffsetDateTime> {
        self.source.credential_expires_at()
    }

    fn credential(&self) -> Option<auth_core::Credential> {
        self.source.credential()
    }

    fn store_key(&self) -> Option<auth_core::StoreKey> {
        self.source.store_key()
    }
}

/// How often the watcher looks for a token adopted from the store (another agent refreshed).
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Publishes a count of distinct tokens each time the token changes: at once after its own
/// source answered (the token is published right after it is saved), and within
/// [`WATCH_INTERVAL`] for one another process stored. A token handed out again under a new
/// generation (re-read from the store) is not a change: the secret is compared.
async fn watch_changes(manager: TokenManager, answered: Arc<Notify>, tx: watch::Sender<u64>) {
    let mut last = 0;
    let mut last_fingerprint = String::new();
    let mut changes = 0;
    loop {
        let woken = tokio::select! {
            () = answered.notified() => true,
            () = tokio::time::sleep(WATCH_INTERVAL) => false,
        };
        // After an answer the new token appears once it is saved: look a few times.
        let tries = if woken { 100 } else { 1 };
        for _ in 0..tries {
            if manager.freshness().is_some()
                && let Ok(token) = manager.token().await
                && token.generation() != last
            {
                last = token.generation();
                let fingerprint = fingerprint(token.secret().expose_secret());
                if fingerprint != last_fingerprint {
                    last_fingerprint = fingerprint;
                    changes += 1;
                    tx.send_replace(changes);
                    break;
                }
            }
            if woken {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

impl Tokens {
    /// Builds the profiles `names` (every config profile and configured provider when `None`),
    /// reusing from `previous` each profile whose configuration did not change (so a reload
    /// sends no request and keeps its cache).
    pub(crate) async fn build(
        ctx: &Context,
        store: &SharedTokenStore,
        names: Option<&[String]>,
        previous: Option<&Tokens>,
        metrics: &Metrics,
    ) -> Result<Self, Failure> {
        let profiles = match names {
            Some(names) => names
                .iter()
                .map(|n| ctx.config.profile(n))
                .collect::<Result<Vec<_>, _>>()?,
            None => ctx.configured_profiles(store).await?,
        };
        let mut slots = BTreeMap::new();
        // One HTTP client per provider, cloned into every source of that provider built by
        // this (re)load, so profiles of one provider share a connection pool. A profile kept
        // from before a reload keeps the client it was built with.
        let mut clients: HashMap<ProviderKind, HttpClient> = HashMap::new();
        for profile in profiles {
            let http = clients
                .entry(profile.kind)
                .or_insert_with(|| HttpClient::new(ctx.http.clone()))
                .clone();
            let slot = match Self::serve(ctx, store, &profile, http, previous, metrics).await {
                Ok(served) => Slot::Ready(served),
                Err(failure) if failure.code == code::CONFIGURATION => {
                    tracing::warn!(profile = %profile.name, error = failure.message(), "profile not served");
                    metrics.unwatch(&profile.name);
                    Slot::Unconfigured(Unserved {
                        kind: profile.kind,
                        code: failure.code,
                        message: failure.message().to_owned(),
                    })
                }
                Err(failure) => return Err(failure),
            };
            slots.insert(profile.name.clone(), slot);
        }
        if let Some(previous) = previous {
            for name in previous.slots.keys() {
                if !slots.contains_key(name) {
                    metrics.unwatch(name);
                }
            }
        }
        Ok(Self { slots })
    }

    async fn serve(
        ctx: &Context,
        store: &SharedTokenStore,
        profile: &Profile,
        http: HttpClient,
        previous: Option<&Tokens>,
        metrics: &Metrics,
    ) -> Result<Arc<Served>, Failure> {
        let vars: HashMap<String, String> = ctx.variables(profile, store).await?;
        // Building a source is cheap: the provider's HTTP client is built on its first request.
        let (built, key) = crate::context::source_with(profile, &vars, http)
            .map_err(|e| crate::context::configuration_hint(e, profile))?;
        let sorted: BTreeMap<String, String> =
            vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(Slot::Ready(old)) = previous.and_then(|p| p.slots.get(&profile.name))
            && old.kind == profile.kind
            && old.key == key
            && old.vars == sorted
        {
            return Ok(Arc::clone(old));
        }
        let answered = Arc::new(Notify::new());
        let source = SharedTokenSource::new(Notifying {
            source: built,
            answered: Arc::clone(&answered),
        });
        let manager = ManagerBuilder::from_source(source, key.clone())
            .store(store.clone())
            .policy(ctx.policy())
            .metrics(metrics, &profile.name)
            .build()
            .await?;
        let (tx, rx) = watch::channel(0);
        let watcher = tokio::spawn(watch_changes(manager.clone(), answered, tx));
        Ok(Arc::new(Served {
            name: profile.name.clone(),
            kind: profile.kind,
            key,
            _keep_fresh: manager.keep_fresh(),
            manager,
            vars: sorted,
            fingerprint: ArcSwapOption::empty(),
            changes: rx,
            _watcher: AbortOnDrop(watcher),
        }))
    }

    /// The profile `name`, when it is served.
    pub(crate) fn served(&self, name: &str) -> Result<&Arc<Served>, Lookup> {
        match self.slots.get(name) {
            Some(Slot::Ready(served)) => Ok(served),
            Some(Slot::Unconfigured(unserved)) => Err(Lookup::Unconfigured(unserved.clone())),
            None => Err(Lookup::Unknown),
        }
    }

    /// The token of `name`: from the cache while fresh, else from the one refresh in flight.
    pub(crate) async fn token(&self, name: &str) -> Result<(&Arc<Served>, TokenGuard), Lookup> {
        let served = self.served(name)?;
        let token = served.manager.token().await.map_err(Lookup::Failed)?;
        Ok((served, token))
    }

    /// A client reports that its API rejected `presented` (the token, or its fingerprint).
    /// When that is the current token, it is dropped and one refresh starts; otherwise (an
    /// older token, reported late) nothing happens. Returns whether a refresh was started.
    pub(crate) async fn invalidate(&self, name: &str, presented: &str) -> Result<bool, Lookup> {
        let served = self.served(name)?;
        if served.manager.freshness().is_none() {
            return Ok(false);
        }
        let current = served.manager.token().await.map_err(Lookup::Failed)?;
        let presented = presented.trim();
        let secret = current.secret().expose_secret();
        let matches = constant_time_eq(presented.as_bytes(), secret.as_bytes())
            || constant_time_eq(
                presented.to_ascii_lowercase().as_bytes(),
                served.fingerprint_of(&current).as_bytes(),
            );
        Ok(matches && served.manager.invalidate(&current))
    }

    /// Where every profile stands.
    pub(crate) fn status(&self) -> Vec<ProfileStatus> {
        let now = SystemClock::new().now();
        self.slots
            .iter()
            .map(|(name, slot)| match slot {
                Slot::Ready(served) => {
                    let stats = served.manager.stats();
                    let state = match stats.freshness {
                        None => "none",
                        Some(Freshness::Fresh) => "fresh",
                        Some(Freshness::Expiring) => "expiring",
                        Some(Freshness::Expired) => "expired",
                    };
                    ProfileStatus {
                        profile: name.clone(),
                        provider: served.kind.name(),
                        key: Some(served.key.to_string()),
                        state,
                        expires_at: stats
                            .time_to_expiry
                            .and_then(|d| now.checked_add(time::Duration::try_from(d).ok()?)),
                        expires_in_seconds: stats.time_to_expiry.map(|d| d.as_secs()),
                        cooldown_until: stats.cooldown_until,
                        refresh_credential_expires_at: stats.credential_expires_at,
                        cache_hits: stats.cache_hits,
                        fetches: stats.fetches,
                        error: None,
                    }
                }
                Slot::Unconfigured(unserved) => ProfileStatus {
                    profile: name.clone(),
                    provider: unserved.kind.name(),
                    key: None,
                    state: "not configured",
                    expires_at: None,
                    expires_in_seconds: None,
                    cooldown_until: None,
                    refresh_credential_expires_at: None,
                    cache_hits: 0,
                    fetches: 0,
                    error: Some(unserved.message.clone()),
                },
            })
            .collect()
    }

    /// Notified (with a count of distinct tokens; 0 before the first) each time the token of
    /// `name` changes.
    pub(crate) fn changes(&self, name: &str) -> Result<watch::Receiver<u64>, Lookup> {
        Ok(self.served(name)?.changes.clone())
    }

    /// The names of the served profiles.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(String::as_str)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notifying_wrapper_forwards_every_method() {
        let wrapped = Notifying {
            source: SharedTokenSource::new(auth_core::testing::ProbeSource),
            answered: Arc::new(Notify::new()),
        };
        assert_eq!(
            auth_core::testing::check_forwarding(&wrapped),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn fingerprints_are_hex_sha256() {
        // printf abc | sha256sum
        assert_eq!(
            fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
