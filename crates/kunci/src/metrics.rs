//! Prometheus / OpenMetrics series for token managers (feature `metrics`), built on the
//! Prometheus project's own Rust client, `prometheus-client`.
//!
//! ```
//! use kunci::{ManagerBuilder, metrics::Metrics};
//! # use kunci::{AuthScheme, StoreKey, Token, core::{StaticSource, time::OffsetDateTime}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kunci::Error> {
//! # let token = Token::new("t0k3n".into(), AuthScheme::Token, OffsetDateTime::UNIX_EPOCH, None)?;
//! # let source = StaticSource::new("static", token);
//! # let key = StoreKey::new("stamps:static")?;
//! let metrics = Metrics::new();
//! let manager = ManagerBuilder::from_source(source, key)
//!     .memory_store()
//!     .metrics(&metrics, "stamps")      // the profile label of this manager's series
//!     .build()
//!     .await?;
//! manager.token().await?;
//! let text = metrics.encode();           // OpenMetrics text, for a /metrics route
//! assert!(text.contains("kunci_cache_hits_total{profile=\"stamps\",provider=\"static\"}"));
//! # Ok(()) }
//! ```
//!
//! The series (every one labelled with `provider`; all but the fetch latency also with
//! `profile`, the name a manager was registered under):
//!
//! | series | type | from |
//! |---|---|---|
//! | `kunci_upstream_fetches_total{outcome}` | counter | each request to the provider, by outcome: `ok`, `configuration`, `reauthenticate`, `rate_limited`, `transient`, `protocol`, `store`, `other` |
//! | `kunci_refresh_duration_seconds` | histogram | the time each request to the provider took |
//! | `kunci_cache_hits_total` | counter | calls answered from the cache ([`Stats::cache_hits`]) |
//! | `kunci_tokens_adopted_total` | counter | tokens taken from the store after another process refreshed |
//! | `kunci_token_invalidations_total` | counter | tokens dropped after an API answered 401 |
//! | `kunci_token_expiry_seconds` | gauge | seconds until the cached token expires (absent: none cached, or permanent) |
//! | `kunci_cooldown_until_timestamp_seconds` | gauge | while a cool-down is in force: when the next request may be sent (unix seconds) |
//! | `kunci_refresh_credential_expiry_timestamp_seconds` | gauge | when the long-lived refresh credential expires, where known (unix seconds) |
//!
//! Counters and gauges from a manager are read from [`TokenManager::stats`] at scrape time, so
//! the warm path does no metrics work at all; fetches are counted by a wrapper around the
//! source ([`Metrics::instrument`]), which only sees requests to the provider. No label ever
//! holds a secret: a profile is a name the application chose, a provider is a source's name.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use auth_core::{
    Error, ErrorKind, FetchRequest, Fetched, SharedClock, SharedTokenSource, Stats, TokenManager,
    TokenSource,
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::Histogram,
    },
    registry::{Registry, Unit},
};
use time::OffsetDateTime;

pub use prometheus_client;

/// The upper bounds of the refresh latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    profile: String,
    provider: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

/// The labels of a watched manager's series.
fn profile_labels<'a>(profile: &'a str, provider: &'a str) -> [(&'static str, &'a str); 2] {
    [("profile", profile), ("provider", provider)]
}

/// The `outcome` label of a request: `ok` (no error), else the error's class.
pub fn outcome_label(error: Option<ErrorKind>) -> &'static str {
    match error {
        None => "ok",
        Some(ErrorKind::Configuration) => "configuration",
        Some(ErrorKind::ReauthenticationRequired) => "reauthenticate",
        Some(ErrorKind::RateLimited { .. }) => "rate_limited",
        Some(ErrorKind::Transient) => "transient",
        Some(ErrorKind::Protocol) => "protocol",
        Some(ErrorKind::Store) => "store",
        Some(_) => "other",
    }
}

/// One watched manager.
#[derive(Debug)]
struct Watched {
    manager: TokenManager,
}

#[derive(Debug)]
struct Inner {
    fetches: Family<FetchLabels, Counter>,
    latency: Family<ProviderLabels, Histogram>,
    watched: RwLock<BTreeMap<String, Watched>>,
    clock: SharedClock,
}

/// kunci's metrics: fetch counters and latencies from instrumented sources, and each watched
/// manager's statistics read at scrape time. Cloning is cheap; clones share everything.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics, timed by the system clock.
    pub fn new() -> Self {
        Self::with_clock(SharedClock::default())
    }

    /// Empty metrics, timed by `clock` (tests).
    pub fn with_clock(clock: impl Into<SharedClock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                fetches: Family::default(),
                latency: Family::new_with_constructor(|| {
                    Histogram::new(LATENCY_BUCKETS.iter().copied())
                }),
                watched: RwLock::new(BTreeMap::new()),
                clock: clock.into(),
            }),
        }
    }

    /// Wraps `source` so that each request it sends is counted (by outcome) and timed, under
    /// the label `profile`.
    pub fn instrument(&self, profile: &str, source: SharedTokenSource) -> SharedTokenSource {
        SharedTokenSource::new(Instrumented {
            provider: source.name().to_owned(),
            profile: profile.to_owned(),
            source,
            metrics: self.clone(),
        })
    }

    /// Reports `manager`'s statistics under the label `profile` (replacing a manager watched
    /// under that name before).
    pub fn watch(&self, profile: &str, manager: &TokenManager) {
        self.watched_mut().insert(
            profile.to_owned(),
            Watched {
                manager: manager.clone(),
            },
        );
    }

    /// Stops reporting the manager watched under `profile`. Its fetch counters stay: a
    /// counter never goes back.
    pub fn unwatch(&self, profile: &str) {
        self.watched_mut().remove(profile);
    }

    /// The profiles watched now.
    pub fn watched(&self) -> Vec<String> {
        self.inner
            .watched
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    fn watched_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Watched>> {
        self.inner
            .watched
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds kunci's series to `registry` (an application's own registry; no prefix is added).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kunci_upstream_fetches",
            "Requests sent to the provider's token endpoint, by outcome",
            self.inner.fetches.clone(),
        );
        registry.register_with_unit(
            "kunci_refresh_duration",
            "How long each request to the provider's token endpoint took",
            Unit::Seconds,
            self.inner.latency.clone(),
        );
        registry.register_collector(Box::new(ManagerCollector {
            metrics: self.clone(),
        }));
    }

    /// A registry holding kunci's series alone.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        self.register(&mut registry);
        registry
    }

    /// kunci's series in the OpenMetrics text format (`application/openmetrics-text;
    /// version=1.0.0`), ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and every series is encodable.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }

    fn record_fetch(&self, profile: &str, provider: &str, outcome: &'static str, took: Duration) {
        self.inner
            .fetches
            .get_or_create(&FetchLabels {
                profile: profile.to_owned(),
                provider: provider.to_owned(),
                outcome,
            })
            .inc();
        self.inner
            .latency
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}

/// A source whose requests are counted and timed.
struct Instrumented {
    source: SharedTokenSource,
    provider: String,
    profile: String,
    metrics: Metrics,
}

impl fmt::Debug for Instrumented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumented")
            .field("source", &self.source)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenSource for Instrumented {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let clock = &self.metrics.inner.clock;
        let start = clock.monotonic();
        let result = self.source.fetch(request).await;
        let took = clock.monotonic().saturating_duration_since(start);
        let outcome = outcome_label(result.as_ref().err().map(Error::kind));
        self.metrics
            .record_fetch(&self.profile, &self.provider, outcome, took);
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

/// Reads every watched manager's statistics at scrape time.
#[derive(Debug)]
struct ManagerCollector {
    metrics: Metrics,
}

fn unix_seconds(t: OffsetDateTime) -> f64 {
    // i128 nanoseconds → f64 seconds: precise to well under a microsecond for any real date.
    t.unix_timestamp_nanos() as f64 / 1e9
}

impl Collector for ManagerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let watched = self
            .metrics
            .inner
            .watched
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let rows: Vec<(&str, &str, Stats)> = watched
            .iter()
            .map(|(profile, w)| {
                (
                    profile.as_str(),
                    w.manager.source().name(),
                    w.manager.stats(),
                )
            })
            .collect();

        type Counted = fn(&Stats) -> u64;
        let counters: [(&str, &str, Counted); 3] = [
            ("kunci_cache_hits", "Calls answered from the cache", |s| {
                s.cache_hits
            }),
            (
                "kunci_tokens_adopted",
                "Tokens taken from the store after another process refreshed",
                |s| s.adopted,
            ),
            (
                "kunci_token_invalidations",
                "Tokens dropped after an API answered 401",
                |s| s.invalidations,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(0u64);
            let mut metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            for (profile, provider, stats) in &rows {
                let labels = profile_labels(profile, provider);
                ConstCounter::new(value(stats)).encode(metric.encode_family(&labels)?)?;
            }
        }

        type Gauged = fn(&Stats) -> Option<f64>;
        let gauges: [(&str, &str, Option<Unit>, Gauged); 3] = [
            (
                "kunci_token_expiry",
                "Seconds until the cached token expires (absent: none cached, or permanent)",
                Some(Unit::Seconds),
                |s| s.time_to_expiry.map(|d| d.as_secs_f64()),
            ),
            (
                "kunci_cooldown_until_timestamp",
                "While a cool-down is in force: when the next request may be sent, in unix seconds",
                Some(Unit::Seconds),
                |s| s.cooldown_until.map(unix_seconds),
            ),
            (
                "kunci_refresh_credential_expiry_timestamp",
                "When the long-lived refresh credential expires, in unix seconds, where known",
                Some(Unit::Seconds),
                |s| s.credential_expires_at.map(unix_seconds),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(0.0f64);
            let mut metric =
                encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
            for (profile, provider, stats) in &rows {
                if let Some(v) = value(stats) {
                    let labels = profile_labels(profile, provider);
                    ConstGauge::new(v).encode(metric.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use auth_core::{StoreKey, Token, TokioClock, source};
    use secrecy::SecretString;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn an_instrumented_source_forwards_every_method() {
        let wrapped =
            Metrics::new().instrument("p", SharedTokenSource::new(auth_core::testing::ProbeSource));
        assert_eq!(
            auth_core::testing::check_forwarding(&*wrapped),
            Vec::<&str>::new()
        );
    }

    fn counting_source(fail: bool) -> (SharedTokenSource, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let source = source::from_fn("demo", move |req: FetchRequest| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                if fail {
                    return Err(Error::reauthentication_required("refused"));
                }
                Ok(Fetched::new(Token::bearer(
                    SecretString::from(format!("secret-{n}")),
                    req.sent_at,
                    Some(req.sent_at + Duration::from_secs(600)),
                )?))
            }
        });
        (SharedTokenSource::new(source), calls)
    }

    /// A source whose configured credential expires on 2026-01-08, as Kalsel.dev's refresh
    /// token states in its `exp`.
    #[derive(Debug)]
    struct ExpiringCredential(SharedTokenSource);

    #[async_trait]
    impl TokenSource for ExpiringCredential {
        async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
            self.0.fetch(request).await
        }

        fn name(&self) -> &str {
            self.0.name()
        }

        fn credential_expires_at(&self) -> Option<OffsetDateTime> {
            Some(datetime!(2026-01-08 00:00 UTC))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fetches_hits_and_expiry_are_reported_without_a_secret() {
        let clock = TokioClock::new(datetime!(2026-01-01 00:00 UTC));
        let metrics = Metrics::with_clock(SharedClock::from(clock.clone()));
        let (source, calls) = counting_source(false);
        let source = SharedTokenSource::new(ExpiringCredential(source));
        let manager = TokenManager::builder(metrics.instrument("shop", source))
            .clock(SharedClock::from(clock))
            .key(StoreKey::new("demo:shop").unwrap())
            .build()
            .unwrap();
        metrics.watch("shop", &manager);
        for _ in 0..5 {
            manager.token().await.unwrap();
        }
        let text = metrics.encode();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            text.contains(
                "kunci_upstream_fetches_total{profile=\"shop\",provider=\"demo\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("kunci_cache_hits_total{profile=\"shop\",provider=\"demo\"} 4"),
            "{text}"
        );
        // the deadline sits a skew allowance before the stated expiry (600 s after the send)
        let expiry: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("kunci_token_expiry_seconds{profile=\"shop\",provider=\"demo\"} ")
            })
            .expect("an expiry line")
            .parse()
            .unwrap();
        assert!(expiry > 500.0 && expiry <= 600.0, "{text}");
        assert!(
            text.contains("kunci_refresh_duration_seconds_bucket{le=\"0.05\",provider=\"demo\"} 1")
                || text.contains(
                    "kunci_refresh_duration_seconds_bucket{provider=\"demo\",le=\"0.05\"} 1"
                ),
            "the 30 ms request falls in the 50 ms bucket: {text}"
        );
        assert!(
            text.contains("kunci_refresh_credential_expiry_timestamp_seconds{profile=\"shop\",provider=\"demo\"} 1767830400"),
            "{text}"
        );
        assert!(!text.contains("secret-"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_by_outcome_and_unwatched_managers_disappear() {
        let metrics = Metrics::new();
        let (source, _) = counting_source(true);
        let manager = TokenManager::builder(metrics.instrument("bad", source))
            .key(StoreKey::new("demo:bad").unwrap())
            .build()
            .unwrap();
        metrics.watch("bad", &manager);
        assert!(manager.token().await.is_err());
        let text = metrics.encode();
        assert!(
            text.contains(
                "kunci_upstream_fetches_total{profile=\"bad\",provider=\"demo\",outcome=\"reauthenticate\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("kunci_token_expiry_seconds{"), "{text}");
        metrics.unwatch("bad");
        assert!(metrics.watched().is_empty());
        let text = metrics.encode();
        assert!(!text.contains("kunci_cache_hits_total{"), "{text}");
        assert!(text.contains("outcome=\"reauthenticate\"} 1"), "{text}");
    }
}
