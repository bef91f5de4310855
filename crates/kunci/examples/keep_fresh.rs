//! `keep_fresh`: a background task refreshes the token at each refresh point, so it is fresh
//! when a caller comes back after a long idle time (and a provider whose refresh material
//! expires with the token — Kalsel.dev's — never needs a new login).
//!
//! `cargo run -p kunci --example keep_fresh`
//!
//! Runs against the SehatMu simulator, with tokens living two seconds so the refresh shows
//! within the run.
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use std::{collections::HashMap, time::Duration};

use auth_testkit::{SimServer, sehatmu::SehatMuSim};
use kunci::{
    EnvProvider, HttpConfig, ManagerBuilder, RefreshPolicy, providers::sehatmu::SehatMuSource,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider =
        SehatMuSim::start_with(SimServer::builder().token_lifetime(Duration::from_secs(2))).await?;
    let vars = HashMap::from([
        ("SEHATMU_BASE_URL", provider.base_url()),
        ("SEHATMU_CLIENT_ID", provider.client_id().to_owned()),
        ("SEHATMU_CLIENT_SECRET", provider.client_secret().to_owned()),
    ]);
    // In a deployment: SehatMuSource::from_env()?
    let source =
        SehatMuSource::from_lookup(&|name| vars.get(name).cloned(), HttpConfig::default())?;
    // Tokens this short are refreshed more often than the default policy allows while the
    // cached one is valid (at most once per 10 s); real lifetimes need no change.
    let mut policy = RefreshPolicy::default();
    policy.min_refresh_interval = Duration::from_millis(200);
    let manager = ManagerBuilder::new(source)
        .memory_store()
        .policy(policy)
        .build()
        .await?;

    let first = manager.token().await?.generation();
    // Refreshes in the background until `_fresh` (or the manager) is dropped.
    let _fresh = manager.keep_fresh();
    for _ in 0..100 {
        if manager.stats().fetches >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = manager.stats();
    println!("fetches without any caller asking: {}", stats.fetches - 1);
    println!("freshness now: {:?}", manager.freshness());
    let now = manager.token().await?;
    println!(
        "the caller gets generation {} (was {first}), from the cache",
        now.generation()
    );
    if stats.fetches < 3 {
        return Err("the background refresh did not happen".into());
    }
    Ok(())
}
