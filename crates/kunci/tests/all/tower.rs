//! `tower::AuthLayer` over a real hyper client (hyper-util's `client-legacy`) against the same
//! simulated API as the reqwest middleware's tests: the same policy through the other
//! front-end.

use std::{
    convert::Infallible,
    future::poll_fn,
    sync::atomic::Ordering::SeqCst,
    task::{Context, Poll},
};

use auth_testkit::{SimResponse, SimServer};
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use kunci::tower::{AuthLayer, BoxError};
use tower_layer::Layer;
use tower_service::Service;

use crate::api;

type Hyper<B> = Client<HttpConnector, B>;

fn hyper_client<B>() -> Hyper<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

/// Makes `service` ready and sends `request` through it, as tower callers do.
async fn send<S, B>(service: &mut S, request: Request<B>) -> Result<S::Response, S::Error>
where
    S: Service<Request<B>>,
{
    poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}

/// The status and body of a successful exchange.
async fn status(response: Result<Response<Incoming>, BoxError>) -> u16 {
    let response = response.unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

/// The typed error inside a layer error.
fn kunci_error(err: &BoxError) -> &kunci::Error {
    err.downcast_ref::<kunci::Error>()
        .unwrap_or_else(|| panic!("not a kunci error: {err:?}"))
}

#[tokio::test]
async fn the_layer_sets_the_authorization_header_and_reuses_the_token() {
    let h = api::start().await;
    let mut client = AuthLayer::new(h.manager.clone(), [h.server.base_url()])
        .unwrap()
        .layer(hyper_client());
    assert_eq!(
        status(send(&mut client, get(&h.server.url("/hello"))).await).await,
        200
    );
    assert_eq!(
        h.server.last_request().unwrap().header("authorization"),
        Some("Bearer tok-1")
    );
    assert_eq!(
        status(send(&mut client, get(&h.server.url("/hello"))).await).await,
        200
    );
    assert_eq!(h.fetches.load(SeqCst), 1);
}

#[tokio::test]
async fn a_401_through_the_layer_invalidates_refreshes_and_retries_once_with_the_body() {
    let h = api::start().await;
    let mut client = AuthLayer::new(h.manager.clone(), [h.server.base_url()])
        .unwrap()
        .layer(hyper_client());
    status(send(&mut client, get(&h.server.url("/hello"))).await).await;
    h.api.accepted.lock().unwrap().remove("tok-1"); // revoked
    h.server.clear_requests();
    let post = Request::post(h.server.url("/hello"))
        .header("x-trace", "kept")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    assert_eq!(status(send(&mut client, post).await).await, 200);
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
    let retried = &h.server.requests()[1];
    assert_eq!(retried.body, "payload".as_bytes(), "the same body");
    assert_eq!(retried.header("x-trace"), Some("kept"), "the same headers");
    assert_eq!(h.fetches.load(SeqCst), 2);
    assert_eq!(h.manager.stats().invalidations, 1);
}

#[tokio::test]
async fn a_rejected_replacement_token_through_the_layer_is_a_typed_error_without_looping() {
    let h = api::start().await;
    h.api.accept_new.store(false, SeqCst); // the API accepts no token at all
    let mut client = AuthLayer::new(h.manager.clone(), [h.server.base_url()])
        .unwrap()
        .layer(hyper_client());
    let err = send(&mut client, get(&h.server.url("/hello")))
        .await
        .unwrap_err();
    let err = kunci_error(&err);
    assert_eq!(err.kind(), kunci::ErrorKind::Configuration, "{err}");
    assert!(
        err.message().contains("token endpoint but not by this API"),
        "{err}"
    );
    assert_eq!(h.server.request_count(), 2, "one request and one retry");
    assert_eq!(h.fetches.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_layer_an_api_that_rejects_every_token_costs_two_fetches() {
    let h = api::start().await;
    h.api.accept_new.store(false, SeqCst);
    let client = AuthLayer::new(h.manager.clone(), [h.server.base_url()])
        .unwrap()
        .layer(hyper_client());
    for _ in 0..10 {
        let err = send(&mut client.clone(), get(&h.server.url("/a")))
            .await
            .unwrap_err();
        assert_eq!(kunci_error(&err).kind(), kunci::ErrorKind::Configuration);
    }
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let mut client = client.clone();
            let request = get(&h.server.url("/b"));
            tokio::spawn(async move { send(&mut client, request).await })
        })
        .collect();
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
async fn concurrent_401s_through_the_layer_invalidate_the_token_once() {
    let h = api::start().await;
    let client = AuthLayer::new(h.manager.clone(), [h.server.base_url()])
        .unwrap()
        .layer(hyper_client());
    status(send(&mut client.clone(), get(&h.server.url("/hello"))).await).await;
    h.api.accepted.lock().unwrap().remove("tok-1");
    let calls: Vec<_> = (0..30)
        .map(|_| {
            let mut client = client.clone();
            let request = get(&h.server.url("/hello"));
            tokio::spawn(async move { status(send(&mut client, request).await).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(h.fetches.load(SeqCst), 2);
    assert_eq!(h.manager.stats().invalidations, 1);
}

#[tokio::test]
async fn the_layer_sends_the_token_only_to_the_configured_origin() {
    let h = api::start().await;
    let other = SimServer::start(
        |_: &auth_testkit::SimRequest, _: &auth_testkit::SimContext| {
            SimResponse::text(200, "elsewhere")
        },
    )
    .await
    .unwrap();
    let mut client = AuthLayer::new(h.manager.clone(), [h.server.base_url()])
        .unwrap()
        .layer(hyper_client());
    assert_eq!(
        status(send(&mut client, get(&other.url("/x"))).await).await,
        200
    );
    assert_eq!(other.last_request().unwrap().header("authorization"), None);
    assert_eq!(
        h.fetches.load(SeqCst),
        0,
        "no token read for another origin"
    );
    // The API's origin by the name `localhost`: another origin, no token.
    let by_name = h.server.url("/hello").replace("127.0.0.1", "localhost");
    assert_eq!(status(send(&mut client, get(&by_name)).await).await, 401);
    assert_eq!(
        h.server.last_request().unwrap().header("authorization"),
        None
    );
    assert_eq!(
        status(send(&mut client, get(&h.server.url("/hello"))).await).await,
        200
    );
    assert_eq!(h.fetches.load(SeqCst), 1);
    assert_eq!(h.manager.stats().invalidations, 0);
}

/// What a tonic `Channel` does below the layer: requests carry only a path, and the channel
/// sends them to its one endpoint.
#[derive(Clone)]
struct Channel<B> {
    origin: String,
    client: Hyper<B>,
}

impl<B> Service<Request<B>> for Channel<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = <Hyper<B> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.client.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let path = request.uri().path_and_query().unwrap().as_str();
        *request.uri_mut() = format!("{}{path}", self.origin).parse::<Uri>().unwrap();
        self.client.call(request)
    }
}

#[tokio::test]
async fn relative_uris_get_the_token_only_from_a_layer_made_for_every_request() {
    let h = api::start().await;
    let channel = Channel {
        origin: h.server.base_url(),
        client: hyper_client(),
    };
    // Scoped by origin: a relative URI could go anywhere, so it gets no token.
    let mut scoped = AuthLayer::new(h.manager.clone(), [h.server.base_url()])
        .unwrap()
        .layer(channel.clone());
    assert_eq!(status(send(&mut scoped, get("/hello")).await).await, 401);
    assert_eq!(
        h.server.last_request().unwrap().header("authorization"),
        None
    );
    assert_eq!(h.fetches.load(SeqCst), 0);
    // Declared as a client of one API: every request gets it.
    let mut dedicated = AuthLayer::every_request(h.manager.clone()).layer(channel);
    assert_eq!(status(send(&mut dedicated, get("/hello")).await).await, 200);
    assert_eq!(
        h.server.last_request().unwrap().header("authorization"),
        Some("Bearer tok-1")
    );
}

#[tokio::test]
async fn without_retry_any_body_goes_through_and_a_401_invalidates_once_and_is_returned() {
    let h = api::start().await;
    // A boxed body is not `Clone`: only the layer without retry accepts it.
    let mut client = AuthLayer::new(h.manager.clone(), [h.server.base_url()])
        .unwrap()
        .without_retry()
        .layer(hyper_client::<BoxBody<Bytes, Infallible>>());
    let boxed = |url: &str| {
        Request::post(url)
            .body(Full::new(Bytes::from_static(b"streamed")).boxed())
            .unwrap()
    };
    assert_eq!(
        status(send(&mut client, boxed(&h.server.url("/up"))).await).await,
        200
    );
    h.api.accepted.lock().unwrap().clear();
    h.server.clear_requests();
    assert_eq!(
        status(send(&mut client, boxed(&h.server.url("/up"))).await).await,
        401
    );
    assert_eq!(h.server.request_count(), 1, "not retried");
    assert_eq!(h.manager.stats().invalidations, 1);
    // The next request carries a new token.
    assert_eq!(
        status(send(&mut client, boxed(&h.server.url("/up"))).await).await,
        200
    );
    assert_eq!(
        h.server.last_request().unwrap().header("authorization"),
        Some("Bearer tok-2")
    );
}

#[tokio::test]
async fn layer_origins_must_be_https_or_loopback_and_at_least_one() {
    let h = api::start().await;
    for bad in [
        &["http://api.example"][..],
        &["https://user:pw@api.example"],
        &[],
    ] {
        let err = AuthLayer::new(h.manager.clone(), bad.iter().copied()).unwrap_err();
        assert_eq!(err.kind(), kunci::ErrorKind::Configuration, "{bad:?}");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
    AuthLayer::new(h.manager.clone(), ["https://api.example/v1"]).unwrap();
}
