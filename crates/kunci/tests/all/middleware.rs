//! `AuthMiddleware` against an API that demands a token it knows.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use auth_core::{
    FetchRequest, Fetched, MemoryStore, StoreKey, Token, TokenManager, source::from_fn,
};
use auth_testkit::{SimResponse, SimServer};
use kunci::AuthMiddleware;
use secrecy::SecretString;

use crate::api::{self, Api};

struct Harness {
    server: SimServer,
    api: Api,
    fetches: Arc<AtomicUsize>,
    manager: TokenManager,
    client: reqwest_middleware::ClientWithMiddleware,
}

async fn harness() -> Harness {
    let api::Harness {
        server,
        api,
        fetches,
        manager,
    } = api::start().await;
    // The middleware first: it installs the TLS crypto provider reqwest needs.
    let auth = AuthMiddleware::new(manager.clone(), [server.base_url()]).unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    Harness {
        server,
        api,
        fetches,
        manager,
        client,
    }
}

#[tokio::test]
async fn sets_the_authorization_header() {
    let h = harness().await;
    let resp = h.client.get(h.server.url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        h.server.last_request().unwrap().header("authorization"),
        Some("Bearer tok-1")
    );
    // a second request reuses the cached token
    h.client.get(h.server.url("/hello")).send().await.unwrap();
    assert_eq!(h.fetches.load(SeqCst), 1);
}

#[tokio::test]
async fn a_401_invalidates_refreshes_and_retries_once() {
    let h = harness().await;
    h.client.get(h.server.url("/hello")).send().await.unwrap();
    // the server revokes tok-1
    h.api.accepted.lock().unwrap().remove("tok-1");
    h.server.clear_requests();
    let resp = h
        .client
        .post(h.server.url("/hello"))
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Vec<_> = h
        .server
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        seen,
        vec![
            Some("Bearer tok-1".to_owned()),
            Some("Bearer tok-2".to_owned())
        ]
    );
    assert_eq!(
        h.server.requests()[1].body,
        "payload".as_bytes(),
        "the retried request carries the same body"
    );
    assert_eq!(h.fetches.load(SeqCst), 2);
    assert_eq!(h.manager.stats().invalidations, 1);
}

/// The typed error inside a middleware error.
fn kunci_error(err: &reqwest_middleware::Error) -> &kunci::Error {
    match err {
        reqwest_middleware::Error::Middleware(e) => e.downcast_ref::<kunci::Error>().unwrap(),
        other => panic!("not a middleware error: {other:?}"),
    }
}

#[tokio::test]
async fn a_rejected_replacement_token_is_a_typed_error_without_looping() {
    let h = harness().await;
    h.api.accept_new.store(false, SeqCst); // the API accepts no token at all
    let err = h
        .client
        .get(h.server.url("/hello"))
        .send()
        .await
        .unwrap_err();
    let err = kunci_error(&err);
    assert_eq!(err.kind(), kunci::ErrorKind::Configuration, "{err}");
    assert!(
        err.message().contains("token endpoint but not by this API"),
        "{err}"
    );
    assert_eq!(
        h.server.request_count(),
        2,
        "one request and one retry, never more"
    );
    assert_eq!(h.fetches.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_rejects_every_token_costs_two_fetches_not_one_per_request() {
    let h = harness().await;
    h.api.accept_new.store(false, SeqCst);
    // Sequential requests, then a hundred at once: every one fails with the typed error.
    for _ in 0..20 {
        let err = h.client.get(h.server.url("/a")).send().await.unwrap_err();
        assert_eq!(kunci_error(&err).kind(), kunci::ErrorKind::Configuration);
    }
    let calls = (0..100).map(|_| {
        let client = h.client.clone();
        let url = h.server.url("/b");
        tokio::spawn(async move { client.get(url).send().await })
    });
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert_eq!(kunci_error(&err).kind(), kunci::ErrorKind::Configuration);
    }
    assert_eq!(
        h.fetches.load(SeqCst),
        2,
        "the first token and one replacement"
    );
    assert_eq!(h.manager.stats().invalidations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_for_one_token_invalidate_it_once() {
    let h = harness().await;
    h.client.get(h.server.url("/hello")).send().await.unwrap();
    h.api.accepted.lock().unwrap().remove("tok-1"); // revoked; new tokens are accepted
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = h.client.clone();
            let url = h.server.url("/hello");
            tokio::spawn(async move { client.get(url).send().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(h.fetches.load(SeqCst), 2);
    assert_eq!(h.manager.stats().invalidations, 1);
}

#[tokio::test]
async fn the_token_goes_only_to_the_configured_origin() {
    let h = harness().await;
    let other = SimServer::start(
        |_: &auth_testkit::SimRequest, _: &auth_testkit::SimContext| {
            SimResponse::text(200, "elsewhere")
        },
    )
    .await
    .unwrap();
    // Another host (another port on loopback is another origin): no header, no token read.
    let resp = h.client.get(other.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(other.last_request().unwrap().header("authorization"), None);
    assert_eq!(h.fetches.load(SeqCst), 0);
    // The API's origin, by the name `localhost` instead of the address: another origin too.
    let by_name = h.server.url("/hello").replace("127.0.0.1", "localhost");
    let resp = h.client.get(by_name).send().await.unwrap();
    assert_eq!(resp.status(), 401, "sent without a token");
    assert_eq!(
        h.server.last_request().unwrap().header("authorization"),
        None
    );
    // The API itself gets it.
    let resp = h.client.get(h.server.url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h.fetches.load(SeqCst), 1);
    assert_eq!(h.manager.stats().invalidations, 0);
}

#[tokio::test]
async fn a_redirect_to_another_origin_never_carries_the_token() {
    let target = SimServer::start(
        |_: &auth_testkit::SimRequest, _: &auth_testkit::SimContext| {
            SimResponse::text(401, "who are you")
        },
    )
    .await
    .unwrap();
    let location = target.url("/landing");
    let api = SimServer::start(
        move |_: &auth_testkit::SimRequest, _: &auth_testkit::SimContext| {
            SimResponse::empty(302).with_header("location", &location)
        },
    )
    .await
    .unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let source = from_fn("api", move |req: FetchRequest| {
        counter.fetch_add(1, SeqCst);
        async move {
            let token = Token::bearer(
                SecretString::from("tok-redirect"),
                req.sent_at,
                Some(req.sent_at + Duration::from_secs(3600)),
            )?;
            Ok(Fetched::new(token))
        }
    });
    let manager = TokenManager::builder(source)
        .store(MemoryStore::new())
        .key(StoreKey::new("api:redirect").unwrap())
        .build()
        .unwrap();
    let auth = AuthMiddleware::new(manager.clone(), [api.base_url()]).unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let resp = client.get(api.url("/start")).send().await.unwrap();
    // The API got the token; the redirect target did not, and its 401 is not taken as a
    // rejection of the token (no invalidation, no new fetch).
    assert_eq!(
        api.last_request().unwrap().header("authorization"),
        Some("Bearer tok-redirect")
    );
    assert_eq!(resp.status(), 401);
    assert_eq!(target.request_count(), 1);
    assert_eq!(target.last_request().unwrap().header("authorization"), None);
    assert_eq!(fetches.load(SeqCst), 1);
    assert_eq!(manager.stats().invalidations, 0);
}

#[tokio::test]
async fn origins_must_be_https_or_loopback_and_at_least_one() {
    let h = harness().await;
    for bad in [
        &["http://api.example"][..],
        &["ftp://api.example"],
        &["https://user:pw@api.example"],
        &[],
    ] {
        let err = AuthMiddleware::new(h.manager.clone(), bad.iter().copied()).unwrap_err();
        assert_eq!(err.kind(), kunci::ErrorKind::Configuration, "{bad:?}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    for good in [
        "https://api.example/v1",
        "http://127.0.0.1:8080",
        "http://[::1]:1",
    ] {
        AuthMiddleware::new(h.manager.clone(), [good]).unwrap();
    }
}

#[tokio::test]
async fn a_streaming_body_is_not_retried() {
    let h = harness().await;
    h.client.get(h.server.url("/hello")).send().await.unwrap();
    h.api.accepted.lock().unwrap().clear();
    h.server.clear_requests();
    let stream = futures_stream();
    let resp = h
        .client
        .post(h.server.url("/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(h.server.request_count(), 1);
    // the rejected token was invalidated: the next call fetches a new one
    h.client.get(h.server.url("/hello")).send().await.unwrap();
    assert_eq!(h.fetches.load(SeqCst), 2);
}

fn futures_stream()
-> impl futures_core::Stream<Item = Result<&'static [u8], std::io::Error>> + Send + 'static {
    struct Once(bool);
    impl futures_core::Stream for Once {
        type Item = Result<&'static [u8], std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                std::task::Poll::Ready(None)
            } else {
                self.0 = true;
                std::task::Poll::Ready(Some(Ok(b"streamed")))
            }
        }
    }
    Once(false)
}

/// kunci's reqwest is built without a default rustls provider, and reqwest panics when a
/// client is built with none installed: the middleware installs the build's own.
#[tokio::test]
async fn a_reqwest_client_built_after_the_middleware_has_a_crypto_provider() {
    let h = api::start().await;
    let auth = AuthMiddleware::new(h.manager.clone(), [h.server.base_url()]).unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let resp = client.get(h.server.url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    kunci::ensure_crypto_provider().unwrap();
}
