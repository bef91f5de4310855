//! Request shapes, expiry from `exp`, the static token, verification.

use std::time::Duration;

use auth_core::{ErrorKind, MemoryStore, TokenStore, http::HttpClient};
use auth_stamps::{StampsConfig, StampsSource, Verification, read_claims};
use auth_testkit::{Fault, SimServer, jwt, stamps::StampsSim};
use http::{Method, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::support::{clock, jwt_source, manager, sim};

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test(flavor = "current_thread")]
async fn token_request_has_the_documented_shape() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    let store = MemoryStore::new();
    let manager = manager(jwt_source(&sim), &store, &clock);
    let token = manager.token().await.unwrap();

    let requests = sim.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.full_path, "/api/auth/get-access-token/");
    assert_eq!(req.raw_query, None);
    assert_eq!(req.mime().as_deref(), Some("application/json"));
    assert_eq!(req.header("authorization"), None);
    let body = req.json().unwrap();
    assert_eq!(
        body,
        json!({"token": sim.auth_token(), "crm_merchant_id": 1})
    );
    assert!(
        body["crm_merchant_id"].is_u64(),
        "the merchant ID is sent as an integer"
    );

    assert_eq!(sim.issued_tokens(), [token.secret().expose_secret()]);
    assert_eq!(
        token.header_value().to_str().unwrap(),
        format!("Bearer {}", sim.issued_tokens()[0])
    );
    let stored = store.load(manager.key()).await.unwrap().unwrap();
    assert!(stored.token.unwrap().same_secret(&token));
    assert_eq!(manager.key().as_str(), "stamps:1");
}

#[tokio::test(flavor = "current_thread")]
async fn a_path_prefix_is_kept_and_the_trailing_slash_matters() {
    let sim = StampsSim::start_with(SimServer::builder().path_prefix("/gw"))
        .await
        .unwrap();
    let source = jwt_source(&sim);
    let fetched =
        auth_core::TokenSource::fetch(&source, auth_core::FetchRequest::new(None, sim.now()))
            .await
            .unwrap();
    assert_eq!(
        sim.last_request().unwrap().full_path,
        "/gw/api/auth/get-access-token/"
    );
    assert!(fetched.token.expires_at().is_some());

    // Without the slash the simulator redirects, as Django does; kunci does not follow it.
    let client = HttpClient::new(auth_core::http::HttpConfig::default()).unwrap();
    let bare = auth_core::http::Url::parse(&sim.url("api/auth/get-access-token")).unwrap();
    let response = client
        .send("stamps", client.request(Method::POST, bare))
        .await
        .unwrap();
    assert_eq!(response.status.as_u16(), 301);
}

#[tokio::test(flavor = "current_thread")]
async fn expiry_comes_from_exp_and_a_short_lived_jwt_is_refreshed_after_it() {
    let clock = clock();
    let sim = sim(&clock, Duration::from_secs(120)).await;
    let store = MemoryStore::new();
    let manager = manager(jwt_source(&sim), &store, &clock);

    let first = manager.token().await.unwrap();
    let claims = read_claims(first.secret().expose_secret()).unwrap();
    assert_eq!(first.expires_at(), Some(claims.exp));
    assert_eq!(first.issued_at(), claims.iat);
    assert_eq!(
        claims.exp - claims.iat,
        auth_core::time::Duration::seconds(120)
    );
    assert_eq!(claims.merchant_id, 1);
    assert_eq!(claims.user_id, 5870);
    assert_eq!(claims.token_type, "access");

    // Well inside its life: served from the cache, no request.
    clock.advance(Duration::from_secs(30));
    let again = manager.token().await.unwrap();
    assert!(again.same_secret(&first));
    assert_eq!(sim.request_count(), 1);

    // Past `exp`: exactly one new request, a new token.
    clock.advance(Duration::from_secs(91));
    let second = manager.token().await.unwrap();
    assert!(!second.same_secret(&first));
    assert_eq!(sim.request_count(), 2);
    assert!(second.expires_at() > first.expires_at());
    let stored = store.load(manager.key()).await.unwrap().unwrap();
    assert!(stored.token.unwrap().same_secret(&second));
}

#[tokio::test(flavor = "current_thread")]
async fn a_jwt_without_exp_is_a_protocol_error() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    let no_exp = sim.sign(
        r#"{"token_type":"access","iat":1772352000,"jti":"x","user_id":5870,"merchant_id":1}"#,
    );
    sim.fail_next(Fault::json(200, &json!({ "access_token": no_exp })));
    let manager = manager(jwt_source(&sim), &MemoryStore::new(), &clock);
    let err = manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("exp"), "{err}");
    assert!(!err.to_string().contains(&no_exp));
}

#[tokio::test(flavor = "current_thread")]
async fn a_wrong_authentication_string_requires_new_credentials() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    sim.set_auth_token("rotated-by-stamps");
    let manager = manager(jwt_source(&sim), &MemoryStore::new(), &clock);
    let err = manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
    assert!(err.to_string().contains("Invalid token."), "{err}");
    assert!(err.to_string().contains("STAMPS_TOKEN"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_static_token_needs_no_request_and_is_accepted() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    let config = StampsConfig::static_token(SecretString::from(sim.static_token()))
        .with_base_url(&sim.base_url())
        .unwrap();
    let source = StampsSource::new(config).unwrap();
    let manager = manager(source, &MemoryStore::new(), &clock);
    let token = manager.token().await.unwrap();
    assert_eq!(
        token.header_value().to_str().unwrap(),
        format!("Token {}", sim.static_token())
    );
    assert_eq!(token.expires_at(), None);
    assert_eq!(sim.request_count(), 0);
    assert_eq!(manager.key().as_str(), "stamps:static");

    // Years later it is still the same token, and still no request.
    clock.advance(Duration::from_secs(5 * 365 * 86_400));
    assert!(manager.token().await.unwrap().same_secret(&token));
    assert_eq!(sim.request_count(), 0);

    // The header is what Stamps expects (`Authorization: Token <x>`).
    let client = HttpClient::new(auth_core::http::HttpConfig::default()).unwrap();
    let url = auth_core::http::Url::parse(&sim.url("api/ping")).unwrap();
    let ping = client
        .request(Method::POST, url)
        .header(header::AUTHORIZATION, token.header_value().clone());
    assert_eq!(
        client.send("stamps", ping).await.unwrap().status.as_u16(),
        200
    );
}

#[tokio::test(flavor = "current_thread")]
async fn verify_returns_the_typed_claims() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    let source = jwt_source(&sim);
    let manager = manager(source.clone(), &MemoryStore::new(), &clock);
    let token = manager.token().await.unwrap();

    let Verification::Valid(claims) = source.verify(token.secret()).await.unwrap() else {
        panic!("the simulator's own token must verify")
    };
    assert_eq!(claims, read_claims(token.secret().expose_secret()).unwrap());
    assert_eq!(Some(claims.exp), token.expires_at());
    assert_eq!((claims.user_id, claims.merchant_id), (5870, 1));
    assert_eq!(claims.jti.len(), 32);

    let req = sim.last_request().unwrap();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.full_path, "/api/auth/verify-token/");
    assert_eq!(
        req.authorization("Bearer"),
        Some(token.secret().expose_secret())
    );
    assert!(req.body.is_empty());

    // Signed with another secret: refused, with Stamps' reason; not an error.
    let forged = jwt::hs256(
        &json!({"token_type": "access", "exp": 4_000_000_000_i64}),
        b"not-TESTJWT",
    );
    match source.verify(&SecretString::from(forged)).await.unwrap() {
        Verification::Rejected(why) => {
            assert_eq!(why.status, 401);
            assert_eq!(why.detail.as_deref(), Some("Token is invalid or expired"));
        }
        other => panic!("{other:?}"),
    }

    // After `exp` Stamps refuses the token too.
    clock.advance(DAY + Duration::from_secs(1));
    assert!(matches!(
        source.verify(token.secret()).await.unwrap(),
        Verification::Rejected(_)
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn the_documents_sample_verifies_with_testjwt() {
    // The simulator signs like Stamps: the sample token is valid for it until its `exp`.
    let clock =
        auth_core::ManualClock::new(auth_core::time::macros::datetime!(2022-07-08 12:00 UTC));
    let sim = sim(&clock, DAY).await;
    let sample = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIiwiZXhwIjoxNjU3MzMyNjE2LCJpYXQiOjE2NTcyNDYyMTYsImp0aSI6IjRlYWRjNDAxNGQwZDRkNzc4NjkxYjg0ZDU3MGE2ZGFmIiwidXNlcl9pZCI6NTg3MCwibWVyY2hhbnRfaWQiOjF9.b_TiGJEO7mKMT0BFTrF9VjPHjoGrt5Be8FPSgvn-4bY";
    let source = jwt_source(&sim);
    let Verification::Valid(claims) = source.verify(&SecretString::from(sample)).await.unwrap()
    else {
        panic!("the sample must verify with TESTJWT")
    };
    assert_eq!(claims.exp.unix_timestamp(), 1_657_332_616);
    assert_eq!(claims.jti, "4eadc4014d0d4d778691b84d570a6daf");
}
