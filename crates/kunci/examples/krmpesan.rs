//! KrmPesan against its loopback simulator: no credentials, no network beyond 127.0.0.1.
//!
//! `cargo run -p kunci --example krmpesan`
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "an example prints what it shows"
)]

use std::collections::HashMap;

use auth_testkit::krmpesan::KrmPesanSim;
use kunci::{HttpConfig, ProviderKind};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = KrmPesanSim::start().await?;
    // The variables a deployment would set; here they point at the simulator.
    let vars: HashMap<&str, String> = HashMap::from([
        ("KRMPESAN_BASE_URL", sim.base_url()),
        ("KRMPESAN_REFRESH_TOKEN", sim.refresh_token().to_owned()),
        ("KRMPESAN_DEVICE_KEY", sim.device_key().to_owned()),
        ("KUNCI_STORE", "memory:".to_owned()),
    ]);
    let manager = kunci::from_lookup(
        ProviderKind::KrmPesan,
        &|name| vars.get(name).cloned(),
        HttpConfig::default(),
    )
    .await?;

    let first = manager.token().await?;
    let again = manager.token().await?;
    println!("first token: {:?}", *first); // Debug is redacted
    println!(
        "served again from the cache: {}",
        first.generation() == again.generation()
    );
    println!("requests sent to the provider: {}", sim.request_count());
    println!("stats: {:?}", manager.stats());
    Ok(())
}
