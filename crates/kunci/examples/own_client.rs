//! Sources built on your own reqwest client builder — a corporate proxy, a private CA, a
//! client certificate — with kunci's rules kept on top, and one client (one connection pool,
//! one TLS setup) shared by every account of a pool.
//!
//! `cargo run -p kunci --example own_client`
//!
//! kunci takes a `reqwest::ClientBuilder`, not a finished `reqwest::Client`: it finishes the
//! builder with redirects off, its timeouts and the extra CAs of `HttpConfig`, and reads every
//! body under its cap. A finished client could still follow a `307` and re-send the form body
//! (SehatMu's `client_secret`) to another host before kunci saw the answer.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "an example prints what it shows"
)]

use std::time::Duration;

use auth_testkit::sehatmu::SehatMuSim;
use kunci::{
    AccountSpec, HttpClient, HttpConfig, StoreKey, TokenPool,
    core::secrecy::SecretString,
    providers::sehatmu::{SehatMuConfig, SehatMuSource},
    reqwest,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = SehatMuSim::start().await?;

    // Your builder: whatever your network needs. For example
    //   .proxy(reqwest::Proxy::https("http://proxy.internal:3128")?)
    //   .tls_certs_merge([reqwest::Certificate::from_pem(&std::fs::read("gateway-ca.pem")?)?])
    //   .identity(reqwest::Identity::from_pem(&std::fs::read("client.pem")?)?)   // mTLS
    // A redirect policy set here is replaced: kunci never follows a redirect.
    let builder = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::limited(5));
    let http = HttpClient::from_builder(
        builder,
        HttpConfig::default().with_timeout(Duration::from_secs(10)),
    )?;

    // Every facility's source gets a clone of the one client: one connection pool for all.
    let base_url = sim.base_url();
    let client_id = sim.client_id().to_owned();
    let client_secret = sim.client_secret().to_owned();
    let shared = http.clone();
    let pool = TokenPool::<String>::builder()
        .factory(move |facility: &String| {
            let config =
                SehatMuConfig::new(client_id.clone(), SecretString::from(client_secret.clone()))?
                    .with_base_url(&base_url)?;
            let source = SehatMuSource::new(config, shared.clone())?;
            Ok(AccountSpec::new(
                source,
                StoreKey::for_account("sehatmu", facility)?,
            ))
        })
        .build()?;

    for facility in ["rs-banjarmasin", "puskesmas-martapura"] {
        let token = pool.token(&facility.to_owned()).await?;
        println!("{facility}: {:?}", *token); // Debug is redacted
    }
    println!("requests sent to the provider: {}", sim.request_count());
    Ok(())
}
