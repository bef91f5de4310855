//! A fleet sharing one token through Redis: every instance builds its manager with the same
//! `KUNCI_STORE=redis://…`; the first one fetches, the others adopt the stored token, and
//! refreshes are coordinated by a lock in Redis, so the provider sees one request.
//!
//! `KUNCI_STORE=redis://127.0.0.1:6379 cargo run -p kunci --example redis_fleet --features redis`
//!
//! Needs a Redis server (`KUNCI_STORE`, else `redis://127.0.0.1:6379`); the provider is the
//! SehatMu simulator on loopback, with a fresh random account each run.
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use std::collections::HashMap;

use auth_testkit::sehatmu::SehatMuSim;
use http::HeaderValue;
use kunci::{HttpConfig, ProviderKind, TokenManager};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = std::env::var("KUNCI_STORE").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let provider = SehatMuSim::start().await?;
    let vars = HashMap::from([
        ("SEHATMU_BASE_URL", provider.base_url()),
        ("SEHATMU_CLIENT_ID", provider.client_id().to_owned()),
        ("SEHATMU_CLIENT_SECRET", provider.client_secret().to_owned()),
        ("KUNCI_STORE", redis),
    ]);

    // Three instances of a service (three processes in production; three managers here),
    // each configured as a deployment would: kunci::from_env(ProviderKind::SehatMu).
    let mut fleet: Vec<TokenManager> = Vec::new();
    for _ in 0..3 {
        let lookup = |name: &str| vars.get(name).cloned();
        fleet
            .push(kunci::from_lookup(ProviderKind::SehatMu, &lookup, HttpConfig::default()).await?);
    }
    // All at once, as a fleet starting together would.
    let tokens = tokens_at_once(&fleet).await?;
    let same = tokens.windows(2).all(|w| w[0] == w[1]);
    println!("instances: {}, same token everywhere: {same}", fleet.len());
    println!(
        "requests the provider answered: {}",
        provider.request_count()
    );
    for (i, manager) in fleet.iter().enumerate() {
        let stats = manager.stats();
        println!(
            "instance {i}: fetched {}, adopted from Redis {}",
            stats.fetches, stats.adopted
        );
    }
    // Leave nothing behind in the shared Redis.
    fleet[0].store().delete(fleet[0].key()).await?;
    if !same || provider.request_count() != 1 {
        return Err("the fleet did not share one token".into());
    }
    Ok(())
}

/// Each manager's `Authorization` value, all asked at once (compared, never printed).
async fn tokens_at_once(fleet: &[TokenManager]) -> Result<Vec<HeaderValue>, kunci::Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, manager) in fleet.iter().cloned().enumerate() {
        tasks.spawn(async move {
            let token = manager.token().await?;
            Ok::<_, kunci::Error>((i, token.header_value().clone()))
        });
    }
    let mut out = vec![HeaderValue::from_static(""); fleet.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, header) = joined.map_err(|_| kunci::Error::transient("a task panicked"))??;
        out[i] = header;
    }
    Ok(out)
}
