//! `AuthMiddleware`: the token on the requests a reqwest-middleware client sends to the API —
//! and a 401 answered by invalidating the token and retrying once with a new one.
//!
//! `cargo run -p kunci --example middleware --features reqwest-middleware`
//!
//! Runs against loopback simulators: SehatMu issues the tokens, and a small API accepts them
//! but revokes the first one after its first use, to show the retry.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "an example prints what it shows"
)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use auth_testkit::{SimContext, SimRequest, SimResponse, SimServer, sehatmu::SehatMuSim};
// The exact reqwest and reqwest-middleware versions the middleware is built for.
use kunci::{AuthMiddleware, HttpConfig, ProviderKind, reqwest, reqwest_middleware};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = SehatMuSim::start().await?;
    let api = start_api().await?;
    let vars = HashMap::from([
        ("SEHATMU_BASE_URL", provider.base_url()),
        ("SEHATMU_CLIENT_ID", provider.client_id().to_owned()),
        ("SEHATMU_CLIENT_SECRET", provider.client_secret().to_owned()),
        ("KUNCI_STORE", "memory:".to_owned()),
    ]);
    // In a deployment: kunci::from_env(ProviderKind::SehatMu).await?
    let lookup = |name: &str| vars.get(name).cloned();
    let manager = kunci::from_lookup(ProviderKind::SehatMu, &lookup, HttpConfig::default()).await?;

    // The middleware first: it installs the TLS crypto provider reqwest needs.
    let auth = AuthMiddleware::new(manager.clone(), [api.base_url()])?;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();

    for round in 1..=3 {
        let response = client.get(api.url("/orders")).send().await?;
        println!("request {round}: {}", response.status());
        assert!(response.status().is_success());
    }
    // The second request met a 401 (the first token was revoked): one invalidation, one new
    // token, one retry — the caller only saw the 200.
    println!("tokens fetched: {}", provider.request_count());
    println!("requests the API saw: {}", api.request_count());
    println!("stats: {:?}", manager.stats());
    assert_eq!(provider.request_count(), 2);
    assert_eq!(manager.stats().invalidations, 1);
    Ok(())
}

/// An API that wants a Bearer token, and revokes the first token it sees after one use.
async fn start_api() -> std::io::Result<SimServer> {
    let first: Arc<Mutex<Option<(String, u32)>>> = Arc::default();
    SimServer::start(move |request: &SimRequest, _: &SimContext| {
        let Some(token) = request.authorization("Bearer") else {
            return SimResponse::text(401, "no token");
        };
        let mut first = first.lock().unwrap();
        let (revoked, uses) = first.get_or_insert_with(|| (token.to_owned(), 0));
        if revoked == token {
            *uses += 1;
            if *uses > 1 {
                return SimResponse::text(401, "token revoked");
            }
        }
        SimResponse::text(200, "[]")
    })
    .await
}
