//! A source of your own: implement `kunci::TokenSource` (with the re-exported
//! `#[kunci::async_trait]`, no dependency to add) and the facade gives it the same manager,
//! stores, background refresh and HTTP front-ends as the built-in providers.
//!
//! `cargo run -p kunci --example custom_source`
//!
//! The source here asks a token endpoint of its own (a loopback simulator) with a plain HTTP
//! client; yours can do anything that ends in a `Token`.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "an example prints what it shows"
)]

use std::time::Duration;

use auth_testkit::{SimContext, SimRequest, SimResponse, SimServer};
use kunci::{
    Error, ManagerBuilder, StoreKey, Token, TokenSource,
    core::{FetchRequest, Fetched, secrecy::SecretString},
};

/// A token endpoint that answers `POST /token` with `{"token": "...", "expires_in": 3600}`.
#[derive(Debug)]
struct AcmeSource {
    token_url: String,
}

#[kunci::async_trait]
impl TokenSource for AcmeSource {
    async fn fetch(&self, request: FetchRequest) -> Result<Fetched, Error> {
        let body = post(&self.token_url).await?;
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|_| {
            Error::protocol("the token endpoint answered something that is not JSON")
        })?;
        let (Some(secret), Some(expires_in)) =
            (json["token"].as_str(), json["expires_in"].as_u64())
        else {
            return Err(Error::protocol(
                "the token endpoint's answer has no token or expires_in",
            ));
        };
        // Lifetimes count from the moment the request was sent (`request.sent_at`).
        let expires_at = request.sent_at + Duration::from_secs(expires_in.min(86_400));
        let token = Token::bearer(
            SecretString::from(secret.to_owned()),
            request.sent_at,
            Some(expires_at),
        )?;
        Ok(Fetched::new(token))
    }

    fn name(&self) -> &str {
        "acme"
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = SimServer::start(|request: &SimRequest, ctx: &SimContext| {
        if request.path != "/token" {
            return SimResponse::not_found();
        }
        let token = ctx.unique("acme-token");
        SimResponse::json(
            200,
            &serde_json::json!({ "token": token, "expires_in": 3600 }),
        )
    })
    .await?;

    let source = AcmeSource {
        token_url: endpoint.url("/token"),
    };
    // `from_source` takes any source; the key names the account in the store (never a secret).
    let manager = ManagerBuilder::from_source(source, StoreKey::new("acme:default")?)
        .memory_store() // or .store_spec(kunci::StoreSpec::parse("redis://…")?) for a fleet
        .build()
        .await?;
    let token = manager.token().await?;
    let again = manager.token().await?;
    println!("token: {:?}", *token); // Debug is redacted
    println!(
        "from the cache the second time: {}",
        token.id() == again.id()
    );
    println!(
        "requests to the token endpoint: {}",
        endpoint.request_count()
    );
    assert_eq!(endpoint.request_count(), 1);
    Ok(())
}

/// A bare HTTP/1.1 POST over loopback with hyper (any client does; kunci's providers share a
/// hardened reqwest one).
async fn post(url: &str) -> Result<String, Error> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let request = http::Request::post(url)
        .body(Empty::new())
        .map_err(|_| Error::configuration("the token URL is not valid"))?;
    let response = client
        .request(request)
        .await
        .map_err(|_| Error::transient("the token endpoint is unreachable"))?;
    if !response.status().is_success() {
        return Err(Error::transient(format!(
            "the token endpoint answered {}",
            response.status()
        )));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|_| Error::transient("the token endpoint's answer broke off"))?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}
