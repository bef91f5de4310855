//! A request through `AuthMiddleware` beside plain reqwest with a fixed `Authorization` header,
//! both against the same loopback server (target: within 5 % per request).
#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark code")]

use std::time::Duration;

use auth_core::{FetchRequest, Fetched, Token, TokenManager, source::from_fn};
use auth_testkit::{SimResponse, SimServer};
use criterion::{Criterion, criterion_group, criterion_main};
use kunci::AuthMiddleware;
use secrecy::SecretString;

fn middleware(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(SimServer::start(
            |req: &auth_testkit::SimRequest, _: &auth_testkit::SimContext| {
                if req.authorization("Bearer") == Some("bench-token") {
                    SimResponse::text(200, "ok")
                } else {
                    SimResponse::text(401, "no")
                }
            },
        ))
        .unwrap();
    let url = server.url("/resource");

    // kunci's reqwest has no default crypto provider: install the build's before any client.
    kunci::ensure_crypto_provider().unwrap();
    let plain = reqwest::Client::new();
    let source = from_fn("bench", |req: FetchRequest| async move {
        let token = Token::bearer(
            SecretString::from("bench-token"),
            req.sent_at,
            Some(req.sent_at + Duration::from_secs(86_400)),
        )?;
        Ok(Fetched::new(token))
    });
    let manager = TokenManager::builder(source).build().unwrap();
    let with_auth = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(manager, [server.base_url()]).unwrap())
        .build();
    // reqwest-middleware's own chain with no middleware in it: what any middleware starts from
    let empty_chain = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
    // warm both: connections pooled, token cached
    rt.block_on(async {
        assert_eq!(
            plain
                .get(&url)
                .bearer_auth("bench-token")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(with_auth.get(&url).send().await.unwrap().status(), 200);
    });

    let mut g = c.benchmark_group("middleware");
    g.bench_function("plain_reqwest_fixed_header", |b| {
        b.to_async(&rt).iter(|| async {
            plain
                .get(&url)
                .bearer_auth("bench-token")
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
    });
    g.bench_function("empty_middleware_chain_fixed_header", |b| {
        b.to_async(&rt).iter(|| async {
            empty_chain
                .get(&url)
                .bearer_auth("bench-token")
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
    });
    g.bench_function("auth_middleware", |b| {
        b.to_async(&rt).iter(|| async {
            with_auth
                .get(&url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, middleware);
criterion_main!(benches);
