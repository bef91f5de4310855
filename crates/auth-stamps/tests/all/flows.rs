//! Request shapes, expiry from `exp`, the static token, verification.

use std::time::Duration;

use auth_core::{
    ErrorKind, MemoryStore, TokenStore,
    http::{HttpClient, HttpConfig},
};
use auth_stamps::{ClaimId, StampsConfig, StampsSource, Verification, read_claims};
use auth_testkit::{
    Fault, SimServer, jwt,
    stamps::{SimpleJwt, StampsSim},
};
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
    let client = HttpClient::new(HttpConfig::default());
    let bare = auth_core::http::Url::parse(&sim.url("api/auth/get-access-token")).unwrap();
    let response = client
        .send("stamps", client.request(Method::POST, bare).unwrap())
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
    assert_eq!(claims.merchant_id, ClaimId::Integer(1));
    assert_eq!(claims.user_id, ClaimId::from("5870"));
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
    let source = StampsSource::new(config, HttpConfig::default()).unwrap();
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
    let client = HttpClient::new(HttpConfig::default());
    let url = auth_core::http::Url::parse(&sim.url("api/ping")).unwrap();
    let ping = client
        .request(Method::POST, url)
        .unwrap()
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
    assert_eq!(claims.user_id, ClaimId::from("5870"));
    assert_eq!(claims.merchant_id, ClaimId::Integer(1));
    assert_eq!(claims.jti.len(), 32);

    let req = sim.last_request().unwrap();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.full_path, "/api/auth/verify-token/");
    assert_eq!(
        req.authorization("Bearer"),
        Some(token.secret().expose_secret())
    );
    assert!(req.body.is_empty());

    // Signed with another secret: refused, with simplejwt's reason; not an error.
    let forged = jwt::hs256(
        &json!({"token_type": "access", "exp": 4_000_000_000_i64, "jti": "a", "user_id": "5870"}),
        b"not-TESTJWT",
    );
    match source.verify(&SecretString::from(forged)).await.unwrap() {
        Verification::Rejected(why) => {
            assert_eq!(why.status, 401);
            assert!(why.is_token_not_valid(), "{why}");
            assert_eq!(
                why.detail.as_deref(),
                Some("Given token not valid for any token type")
            );
            assert_eq!(why.messages, ["Token is invalid"]);
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

#[tokio::test(flavor = "current_thread")]
async fn verify_reads_user_id_as_each_simplejwt_release_writes_it() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    let source = jwt_source(&sim);
    for (release, want) in [
        (SimpleJwt::V5_4, ClaimId::Integer(5870)),
        (SimpleJwt::V5_5_0, ClaimId::Integer(5870)),
        (SimpleJwt::V5_5_1, ClaimId::from("5870")),
    ] {
        sim.set_simplejwt(release);
        let fetched =
            auth_core::TokenSource::fetch(&source, auth_core::FetchRequest::new(None, sim.now()))
                .await
                .unwrap();
        let Verification::Valid(claims) = source.verify(fetched.token.secret()).await.unwrap()
        else {
            panic!("{release:?}: the simulator's own token must verify")
        };
        assert_eq!(claims.user_id, want, "{release:?}");
        assert_eq!(claims.user_id.as_i64(), Some(5870));
        // Printed as the server wrote it.
        assert_eq!(
            serde_json::to_value(&claims).unwrap()["user_id"],
            sim.user_id_claim()
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_claim_that_does_not_fit_is_a_protocol_error_naming_it() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    let source = jwt_source(&sim);
    // A token whose `user_id` is `true`: it is still a token (only `exp` matters for that)…
    sim.set_user_id_claim(Some(json!(true)));
    let fetched =
        auth_core::TokenSource::fetch(&source, auth_core::FetchRequest::new(None, sim.now()))
            .await
            .unwrap();
    // …but its claims do not fit, and the error says which one.
    let err = read_claims(fetched.token.secret().expose_secret()).unwrap_err();
    assert!(
        err.to_string()
            .contains("the claim `user_id` is neither a string nor an integer"),
        "{err}"
    );
    sim.fail_next(Fault::json(
        200,
        &json!({"token_type": "access", "exp": "tomorrow", "iat": 1, "jti": "a", "user_id": "5870", "merchant_id": 1}),
    ));
    let err = source.verify(fetched.token.secret()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("the claim `exp`"), "{err}");
    assert!(!err.to_string().contains("tomorrow"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn refusals_of_drf_and_simplejwt_require_new_credentials_whether_401_or_403() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    for forbidden in [false, true] {
        sim.set_refusals_forbidden(forbidden);
        let status = if forbidden { "403" } else { "401" };

        sim.set_user_active(false);
        let inactive = manager(jwt_source(&sim), &MemoryStore::new(), &clock);
        let err = inactive.token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
        let text = err.to_string();
        assert!(text.contains("User inactive or deleted."), "{text}");
        assert!(text.contains(status), "{text}");
        sim.set_user_active(true);

        let wrong = StampsConfig::jwt(SecretString::from("not-the-key"), 1)
            .with_base_url(&sim.base_url())
            .unwrap();
        let refused = manager(
            StampsSource::new(wrong, HttpConfig::default()).unwrap(),
            &MemoryStore::new(),
            &clock,
        );
        let err = refused.token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
        assert!(err.to_string().contains("Invalid token."), "{err}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn verify_tells_a_refused_token_from_a_refused_user() {
    let clock = clock();
    let sim = sim(&clock, DAY).await;
    let source = jwt_source(&sim);
    let manager = manager(source.clone(), &MemoryStore::new(), &clock);
    let token = manager.token().await.unwrap();

    // The signing key was rotated: the token is refused as a token (`token_not_valid`)…
    sim.set_signing_key(b"rotated-django-secret-key");
    let Verification::Rejected(why) = source.verify(token.secret()).await.unwrap() else {
        panic!("refused")
    };
    assert!(why.is_token_not_valid(), "{why}");
    assert_eq!(why.messages, ["Token is invalid"]);
    // …and a new one, fetched after invalidating it, verifies.
    assert!(manager.invalidate(&token));
    let fresh = manager.token().await.unwrap();
    assert!(matches!(
        source.verify(fresh.secret()).await.unwrap(),
        Verification::Valid(_)
    ));

    // The user was deactivated: refused, but not as a token; a new token will not help.
    sim.set_user_active(false);
    let Verification::Rejected(why) = source.verify(fresh.secret()).await.unwrap() else {
        panic!("refused")
    };
    assert!(!why.is_token_not_valid(), "{why}");
    assert_eq!(why.code.as_deref(), Some("user_inactive"));

    // Expired: `token_not_valid` in every simplejwt release, whatever its text says.
    sim.set_user_active(true);
    clock.advance(DAY + Duration::from_secs(1));
    for release in [SimpleJwt::V5_4, SimpleJwt::V5_5_1] {
        sim.set_simplejwt(release);
        let Verification::Rejected(why) = source.verify(fresh.secret()).await.unwrap() else {
            panic!("refused")
        };
        assert!(why.is_token_not_valid(), "{release:?}: {why}");
    }
}
