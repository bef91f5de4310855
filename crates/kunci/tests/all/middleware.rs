//! `AuthMiddleware` against an API that demands a token it knows.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
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

/// Tokens the API accepts; the source adds each token it issues unless told not to.
#[derive(Clone, Default)]
struct Api {
    accepted: Arc<Mutex<HashSet<String>>>,
    accept_new: Arc<std::sync::atomic::AtomicBool>,
}

struct Harness {
    server: SimServer,
    api: Api,
    fetches: Arc<AtomicUsize>,
    manager: TokenManager,
    client: reqwest_middleware::ClientWithMiddleware,
}

async fn harness() -> Harness {
    let api = Api::default();
    api.accept_new.store(true, SeqCst);
    let accepted = api.accepted.clone();
    let server = SimServer::start(
        move |req: &auth_testkit::SimRequest, _ctx: &auth_testkit::SimContext| match req
            .authorization("Bearer")
        {
            Some(token) if accepted.lock().unwrap().contains(token) => {
                SimResponse::text(200, "hello")
            }
            _ => SimResponse::text(401, "unauthorized"),
        },
    )
    .await
    .unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let (counter, issued_to) = (fetches.clone(), api.clone());
    let source = from_fn("api", move |req: FetchRequest| {
        let n = counter.fetch_add(1, SeqCst) + 1;
        let secret = format!("tok-{n}");
        if issued_to.accept_new.load(SeqCst) {
            issued_to.accepted.lock().unwrap().insert(secret.clone());
        }
        async move {
            let token = Token::bearer(
                SecretString::from(secret),
                req.sent_at,
                Some(req.sent_at + Duration::from_secs(3600)),
            )?;
            Ok(Fetched::new(token))
        }
    });
    let manager = TokenManager::builder(source)
        .store(MemoryStore::new())
        .key(StoreKey::new("api:test").unwrap())
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(manager.clone()))
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

#[tokio::test]
async fn a_second_401_is_returned_to_the_caller_without_looping() {
    let h = harness().await;
    h.api.accept_new.store(false, SeqCst); // the API accepts no token at all
    let resp = h.client.get(h.server.url("/hello")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        h.server.request_count(),
        2,
        "one request and one retry, never more"
    );
    assert_eq!(h.fetches.load(SeqCst), 2);
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
