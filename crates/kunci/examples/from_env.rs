//! Twelve-factor configuration: `kunci::from_env` builds a manager from the provider's
//! variables and `KUNCI_STORE` / `KUNCI_STORE_KEY` / `KUNCI_STORE_CA`.
//!
//! `cargo run -p kunci --example from_env`
//!
//! With `SEHATMU_CLIENT_ID` set it uses the environment as it is. Without, it starts the
//! SehatMu simulator on loopback and runs itself again with the variables a deployment would
//! set pointing at it — so it needs no credentials.
#![allow(clippy::print_stdout, reason = "an example prints what it shows")]

use kunci::ProviderKind;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("SEHATMU_CLIENT_ID").is_none() {
        return run_against_the_simulator().await;
    }

    // The whole configuration, from the environment. Without KUNCI_STORE the token is kept in
    // a file under the user's data directory, shared by every process of that user.
    let manager = kunci::from_env(ProviderKind::SehatMu).await?;
    let token = manager.token().await?;
    println!("token: {:?}", *token); // Debug is redacted
    println!("scheme: {:?}", token.scheme());
    println!("stats: {:?}", manager.stats());
    Ok(())
}

/// Starts the simulator and this example again with the variables pointing at it.
async fn run_against_the_simulator() -> Result<(), Box<dyn std::error::Error>> {
    let sim = auth_testkit::sehatmu::SehatMuSim::start().await?;
    let status = tokio::process::Command::new(std::env::current_exe()?)
        .env("SEHATMU_BASE_URL", sim.base_url())
        .env("SEHATMU_CLIENT_ID", sim.client_id())
        .env("SEHATMU_CLIENT_SECRET", sim.client_secret())
        .env("KUNCI_STORE", "memory:")
        .status()
        .await?;
    println!("requests the simulator answered: {}", sim.request_count());
    if !status.success() {
        return Err(format!("the example failed against the simulator: {status}").into());
    }
    Ok(())
}
