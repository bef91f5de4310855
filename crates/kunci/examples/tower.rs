//! `tower::AuthLayer`: the token on the `http::Request`s of a tower client — here hyper's
//! `client-legacy` `Client`; tonic channels and axum / tower-http stacks take the same layer.
//!
//! `cargo run -p kunci --example tower --features tower`
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
    future::poll_fn,
    sync::{Arc, Mutex},
};

use auth_testkit::{SimContext, SimRequest, SimResponse, SimServer, sehatmu::SehatMuSim};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use kunci::{
    HttpConfig, ProviderKind,
    tower::{AuthLayer, Layer, Service},
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
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

    // The retry sends the request again, so the body must be `Clone`: `Full<Bytes>` is.
    // (`AuthLayer::without_retry()` takes any body; `AuthLayer::every_request(manager)` is for
    // a client whose requests carry no host, like a tonic `Channel`.)
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut client = AuthLayer::new(manager.clone(), [api.base_url()])?.layer(hyper);

    for round in 1..=3 {
        let request = http::Request::get(api.url("/orders")).body(Full::default())?;
        // What `tower::ServiceExt::oneshot` does.
        poll_fn(|cx| client.poll_ready(cx)).await?;
        let response = client.call(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "request {round}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        assert!(status.is_success());
    }
    println!("tokens fetched: {}", provider.request_count());
    println!("requests the API saw: {}", api.request_count());
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
