//! Every provider compiled in, each against its loopback simulator: no credentials, no network
//! beyond 127.0.0.1. The simulators are started by `ProviderKind::start_simulator` (feature
//! `testing`), so a provider added with `cargo xtask new-provider` is here too.
//!
//! `cargo run -p kunci --features testing --example providers`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "an example prints what it shows"
)]

use std::collections::HashMap;

use auth_testkit::SimServer;
use kunci::{HttpConfig, ProviderKind};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for &kind in ProviderKind::ALL {
        let sim = kind.start_simulator(SimServer::builder()).await?;
        // The variables a deployment would set (`kind.env_vars()`); here they point at the
        // simulator.
        let mut vars: HashMap<&str, String> = sim.variables().into_iter().collect();
        vars.insert("KUNCI_STORE", "memory:".to_owned());
        let manager =
            kunci::from_lookup(kind, &|name| vars.get(name).cloned(), HttpConfig::default())
                .await?;

        let first = manager.token().await?;
        let again = manager.token().await?;
        println!("{} ({kind}):", kind.display_name());
        println!("  first token: {:?}", *first); // Debug is redacted
        println!(
            "  served again from the cache: {}",
            first.generation() == again.generation()
        );
        println!(
            "  requests sent to the provider: {}",
            sim.server().request_count()
        );
    }
    Ok(())
}
