//! auth-stamps against Django REST framework + djangorestframework-simplejwt
//! (`conformance/stamps/server.py`): JWTs from `get-access-token`, `verify-token`, the static
//! token on `/api/ping`, and a token signed before a key rotation.

use std::time::Duration;

use auth_core::{ErrorKind, MemoryStore, StoredEntry, Token, TokenStore};
use auth_stamps::{StampsConfig, StampsSource, Verification};
use http::HeaderValue;
use kunci_conformance::{RecordingProxy, STAMPS_URL, Upstream};
use secrecy::SecretString;
use serde_json::json;

use crate::support::{
    assert_carries, assert_shows_none, fetched_once_for_many_callers, manager, manual_clock,
    many_callers, refreshed_after_manual_expiry, secret, unix,
};

const TOKEN_PATH: &str = "/api/auth/get-access-token/";
const MERCHANT: u64 = 7;
/// The lifetime the glue gives simplejwt's access tokens (the page's 24 hours).
const LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

fn upstream(test: &str) -> Option<Upstream> {
    Upstream::from_env(STAMPS_URL, test)
}

/// A new Stamps user: its DRF token key (the "authentication string") and its id.
async fn account(stamps: &Upstream, active: bool) -> (String, u64) {
    let account = stamps
        .harness("/harness/accounts", json!({ "active": active }))
        .await;
    (
        account["token"].as_str().unwrap().to_owned(),
        account["user_id"].as_u64().unwrap(),
    )
}

fn jwt_source(proxy: &RecordingProxy, key: &str) -> StampsSource {
    let config = StampsConfig::jwt(SecretString::from(key.to_owned()), MERCHANT)
        .with_base_url(proxy.base_url())
        .unwrap();
    StampsSource::new(config, auth_core::http::HttpConfig::default()).unwrap()
}

/// What the upstream itself says about a JWT: the claims `verify-token` answers.
async fn upstream_claims(stamps: &Upstream, jwt: &str) -> serde_json::Value {
    let bearer = HeaderValue::try_from(format!("Bearer {jwt}")).unwrap();
    let answer = stamps
        .send(
            http::Method::POST,
            "/api/auth/verify-token/",
            Some(&bearer),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "verify-token refused: {}", answer.body);
    answer.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_is_fetched_once_for_many_callers_and_accepted_by_the_upstream() {
    let Some(stamps) = upstream("stamps::a_jwt_is_fetched_once") else {
        return;
    };
    let (key, _) = account(&stamps, true).await;
    let proxy = stamps.proxy().await;
    let source = jwt_source(&proxy, &key);
    let store = MemoryStore::new();
    let process = || manager(source.clone(), &store, None);
    let (token, manager) =
        fetched_once_for_many_callers(process, &proxy, ("POST", TOKEN_PATH)).await;
    assert_eq!(manager.stats().fetches, 1);
    let issued = proxy.last("POST", TOKEN_PATH).answer().json();
    assert_eq!(
        issued["access_token"].as_str(),
        Some(secret(&token).as_str())
    );

    let pong = stamps.get("/api/ping", token.header_value()).await;
    assert_eq!(pong.status, 200, "ping refused the JWT: {}", pong.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_is_the_exp_that_simplejwt_signed() {
    let Some(stamps) = upstream("stamps::the_expiry_is_the_exp_that_simplejwt_signed") else {
        return;
    };
    let (key, _) = account(&stamps, true).await;
    let proxy = stamps.proxy().await;
    let source = jwt_source(&proxy, &key);
    let manager = manager(source.clone(), &MemoryStore::new(), None);

    let token = manager.token().await.unwrap();
    let claims = upstream_claims(&stamps, &secret(&token)).await;
    assert_eq!(token.expires_at(), Some(unix(&claims["exp"])));
    assert_eq!(token.issued_at(), unix(&claims["iat"]));
    assert_eq!(
        unix(&claims["exp"]) - unix(&claims["iat"]),
        auth_core::time::Duration::try_from(LIFETIME).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_expiry_the_jwt_is_fetched_once_more_and_the_new_one_is_accepted() {
    let Some(stamps) = upstream("stamps::after_expiry_the_jwt_is_fetched_once_more") else {
        return;
    };
    let (key, _) = account(&stamps, true).await;
    let proxy = stamps.proxy().await;
    let clock = manual_clock();
    let source = jwt_source(&proxy, &key);
    let manager = manager(source.clone(), &MemoryStore::new(), Some(&clock));

    let second = refreshed_after_manual_expiry(
        &manager,
        &clock,
        LIFETIME,
        &proxy,
        ("POST", TOKEN_PATH),
        "JWT",
    )
    .await;

    let pong = stamps.get("/api/ping", second.header_value()).await;
    assert_eq!(pong.status, 200, "ping refused the new JWT: {}", pong.body);
    let claims = upstream_claims(&stamps, &secret(&second)).await;
    assert_eq!(claims["merchant_id"], json!(MERCHANT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_key_is_reauthentication_required_with_drfs_text() {
    let Some(stamps) = upstream("stamps::an_unknown_token_key_is_reauthentication_required") else {
        return;
    };
    let proxy = stamps.proxy().await;
    let key = "0123456789abcdef0123456789abcdef01234567";
    let source = jwt_source(&proxy, key);
    let manager = manager(source.clone(), &MemoryStore::new(), None);

    let err = manager.token().await.unwrap_err();
    let answer = proxy.last("POST", TOKEN_PATH).answer();
    assert!(
        matches!(answer.status, 401 | 403),
        "DRF answered {}",
        answer.status
    );
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert_eq!(detail, "Invalid token.");
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
    assert_carries(&err, &detail);
    assert_shows_none(&err, &[key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_users_key_is_reauthentication_required_with_drfs_text() {
    let Some(stamps) = upstream("stamps::a_deactivated_users_key_is_reauthentication_required")
    else {
        return;
    };
    let (key, _) = account(&stamps, false).await;
    let proxy = stamps.proxy().await;
    let source = jwt_source(&proxy, &key);
    let manager = manager(source.clone(), &MemoryStore::new(), None);

    let err = manager.token().await.unwrap_err();
    let detail = proxy.last("POST", TOKEN_PATH).answer().json()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(detail, "User inactive or deleted.");
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
    assert_carries(&err, &detail);
    assert_shows_none(&err, &[&key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_returns_the_claims_simplejwt_signed() {
    let Some(stamps) = upstream("stamps::verify_returns_the_claims_simplejwt_signed") else {
        return;
    };
    let (key, user_id) = account(&stamps, true).await;
    let proxy = stamps.proxy().await;
    let source = jwt_source(&proxy, &key);
    let manager = manager(source.clone(), &MemoryStore::new(), None);
    let token = manager.token().await.unwrap();

    let verification = source.verify(token.secret()).await;
    let answered = proxy.last("POST", "/api/auth/verify-token/").answer();
    assert_eq!(answered.status, 200, "{}", answered.body);
    let upstream = answered.json();
    // simplejwt 5.5 writes `user_id` as a string.
    assert_eq!(upstream["user_id"], json!(user_id.to_string()));
    let claims = match verification {
        Ok(Verification::Valid(claims)) => claims,
        other => panic!(
            "verify did not accept the claims simplejwt answered ({}): {other:?}",
            answered.body
        ),
    };
    assert_eq!(claims.token_type, upstream["token_type"].as_str().unwrap());
    assert_eq!(claims.jti, upstream["jti"].as_str().unwrap());
    assert_eq!(claims.exp, unix(&upstream["exp"]));
    assert_eq!(claims.iat, unix(&upstream["iat"]));
    assert_eq!(claims.user_id.to_string(), user_id.to_string());
    assert_eq!(claims.merchant_id.to_string(), MERCHANT.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_token_is_sent_as_drfs_token_scheme_and_accepted() {
    let Some(stamps) = upstream("stamps::a_static_token_is_sent_as_drfs_token_scheme") else {
        return;
    };
    let (key, user_id) = account(&stamps, true).await;
    let proxy = stamps.proxy().await;
    let config = StampsConfig::static_token(SecretString::from(key.clone()))
        .with_base_url(proxy.base_url())
        .unwrap();
    let source = StampsSource::new(config, auth_core::http::HttpConfig::default()).unwrap();
    let manager = manager(source.clone(), &MemoryStore::new(), None);

    let token = manager.token().await.unwrap();
    assert_eq!(
        token.header_value().to_str().unwrap(),
        format!("Token {key}")
    );
    assert_eq!(token.expires_at(), None);
    let pong = stamps.get("/api/ping", token.header_value()).await;
    assert_eq!(
        pong.status, 200,
        "ping refused the static token: {}",
        pong.body
    );
    assert_eq!(pong.json()["user_id"], json!(user_id.to_string()));
    assert!(
        proxy.exchanges().is_empty(),
        "a static token needs no request"
    );
}

/// A JWT for `user_id`, signed with the key the upstream used before it rotated its key.
async fn old_key_token(stamps: &Upstream, user_id: u64) -> String {
    stamps
        .harness(
            "/harness/old-key-token",
            json!({ "user_id": user_id, "merchant_id": MERCHANT }),
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_signed_before_the_key_rotation_is_refused_by_verify() {
    let Some(stamps) = upstream("stamps::a_jwt_signed_before_the_key_rotation_is_refused") else {
        return;
    };
    let (key, user_id) = account(&stamps, true).await;
    let old = old_key_token(&stamps, user_id).await;
    let proxy = stamps.proxy().await;
    let source = jwt_source(&proxy, &key);

    let verification = source.verify(&SecretString::from(old)).await.unwrap();
    let answer = proxy.last("POST", "/api/auth/verify-token/").answer();
    assert_eq!(answer.status, 401);
    let body = answer.json();
    assert_eq!(body["code"], json!("token_not_valid"));
    let Verification::Rejected(rejection) = verification else {
        panic!("a JWT under the old key was accepted: {verification:?}");
    };
    assert_eq!(rejection.status, 401);
    assert_eq!(rejection.detail.as_deref(), body["detail"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_jwt_from_before_the_key_rotation_is_replaced_after_the_upstream_refuses_it() {
    let Some(stamps) = upstream("stamps::a_stored_jwt_from_before_the_key_rotation") else {
        return;
    };
    let (key, user_id) = account(&stamps, true).await;
    let old = old_key_token(&stamps, user_id).await;
    let claims = crate::support::jwt_payload(&old);
    let proxy = stamps.proxy().await;
    let source = jwt_source(&proxy, &key);
    // Another process saved this token before the upstream rotated its signing key.
    let store = MemoryStore::new();
    let stored = Token::bearer(
        SecretString::from(old.clone()),
        unix(&claims["iat"]),
        Some(unix(&claims["exp"])),
    )
    .unwrap();
    // Saved as a manager saves: tied to the credential that made it, or it is not adopted.
    let store_key = source.config().store_key();
    let mut entry = StoredEntry::with_token(stored);
    entry.credential =
        auth_core::TokenSource::credential(&source).map(|c| c.fingerprint(&store_key));
    store.save(&store_key, &entry, 0).await.unwrap();
    let manager = manager(source.clone(), &store, None);

    let held = manager.token().await.unwrap();
    assert_eq!(secret(&held), old);
    assert_eq!(proxy.count("POST", TOKEN_PATH), 0);
    let refused = stamps.get("/api/ping", held.header_value()).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["code"], json!("token_not_valid"));

    assert!(manager.invalidate(&held));
    let fresh = many_callers(&manager, 10).await;
    assert_ne!(secret(&fresh), old);
    assert_eq!(proxy.count("POST", TOKEN_PATH), 1);
    let pong = stamps.get("/api/ping", fresh.header_value()).await;
    assert_eq!(pong.status, 200, "ping refused the new JWT: {}", pong.body);
}
