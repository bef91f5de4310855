//! auth-krmpesan against moto's Cognito behind the `GET /tokens` shim
//! (`conformance/krmpesan/server.py`): `InitiateAuth` `REFRESH_TOKEN_AUTH`, IdTokens checked by
//! a resource against the pool's published keys, and Cognito's `NotAuthorizedException`.

use std::time::Duration;

use auth_core::{ErrorKind, MemoryStore};
use auth_krmpesan::{KrmPesanConfig, KrmPesanSource};
use kunci_conformance::{KRMPESAN_URL, RecordingProxy, Upstream};
use secrecy::SecretString;
use serde_json::json;

use crate::support::{
    assert_carries, assert_shows_none, fetched_once_for_many_callers, jwt_payload, manager,
    manual_clock, refreshed_after_manual_expiry, secret, unix,
};

const TOKENS_PATH: &str = "/tokens";
/// moto's Cognito issues tokens for an hour (the real pool: a day).
const LIFETIME: Duration = Duration::from_secs(60 * 60);

fn upstream(test: &str) -> Option<Upstream> {
    Upstream::from_env(KRMPESAN_URL, test)
}

/// A new user of the pool, logged in: what KrmPesan's dashboard hands out.
struct Login {
    username: String,
    refresh_token: String,
    device_key: String,
}

async fn login(krmpesan: &Upstream) -> Login {
    let login = krmpesan.harness("/harness/logins", json!({})).await;
    let field = |name: &str| login[name].as_str().unwrap().to_owned();
    Login {
        username: field("username"),
        refresh_token: field("refresh_token"),
        device_key: field("device_key"),
    }
}

fn source(proxy: &RecordingProxy, login: &Login) -> KrmPesanSource {
    let config = KrmPesanConfig::new(
        SecretString::from(login.refresh_token.clone()),
        SecretString::from(login.device_key.clone()),
    )
    .unwrap()
    .with_base_url(proxy.base_url())
    .unwrap();
    KrmPesanSource::new(config, auth_core::http::HttpConfig::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_is_fetched_once_for_many_callers_and_accepted_by_the_upstream() {
    let Some(krmpesan) = upstream("krmpesan::an_id_token_is_fetched_once") else {
        return;
    };
    let login = login(&krmpesan).await;
    let proxy = krmpesan.proxy().await;
    let store = MemoryStore::new();
    let process = || {
        let source = source(&proxy, &login);
        manager(source, &store, None)
    };
    let (token, _) = fetched_once_for_many_callers(process, &proxy, ("GET", TOKENS_PATH)).await;
    let answer = proxy.last("GET", TOKENS_PATH).answer().json();
    assert_eq!(answer["IdToken"].as_str(), Some(secret(&token).as_str()));
    assert_eq!(jwt_payload(&secret(&token))["token_use"], json!("id"));

    let pong = krmpesan.get("/api/ping", token.header_value()).await;
    assert_eq!(pong.status, 200, "the IdToken was refused: {}", pong.body);
    assert_eq!(pong.json()["username"], json!(login.username));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_is_what_cognito_issued() {
    let Some(krmpesan) = upstream("krmpesan::the_expiry_is_what_cognito_issued") else {
        return;
    };
    let login = login(&krmpesan).await;
    let proxy = krmpesan.proxy().await;
    let source = source(&proxy, &login);
    let manager = manager(source, &MemoryStore::new(), None);

    let token = manager.token().await.unwrap();
    let answer = proxy.last("GET", TOKENS_PATH).answer().json();
    let expires_in = answer["ExpiresIn"].as_u64().unwrap();
    assert_eq!(Duration::from_secs(expires_in), LIFETIME);
    let exp = unix(&jwt_payload(&secret(&token))["exp"]);
    // `ExpiresIn` counts from when the request was sent; the IdToken's `exp` wins when earlier.
    let by_expires_in = token.issued_at() + Duration::from_secs(expires_in);
    assert_eq!(token.expires_at(), Some(by_expires_in.min(exp)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_expiry_the_id_token_is_refreshed_once_and_the_new_one_is_accepted() {
    let Some(krmpesan) = upstream("krmpesan::after_expiry_the_id_token_is_refreshed_once") else {
        return;
    };
    let login = login(&krmpesan).await;
    let proxy = krmpesan.proxy().await;
    let clock = manual_clock();
    let source = source(&proxy, &login);
    let manager = manager(source, &MemoryStore::new(), Some(&clock));

    let second = refreshed_after_manual_expiry(
        &manager,
        &clock,
        LIFETIME,
        &proxy,
        ("GET", TOKENS_PATH),
        "IdToken",
    )
    .await;
    let refresh = proxy.last("GET", TOKENS_PATH);
    assert_eq!(refresh.status, 200, "{}", refresh.body);

    let pong = krmpesan.get("/api/ping", second.header_value()).await;
    assert_eq!(
        pong.status, 200,
        "the new IdToken was refused: {}",
        pong.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_is_reauthentication_required_with_cognitos_message() {
    let Some(krmpesan) = upstream("krmpesan::a_revoked_refresh_token") else {
        return;
    };
    let login = login(&krmpesan).await;
    krmpesan
        .harness("/harness/sign-out", json!({ "username": login.username }))
        .await;
    let proxy = krmpesan.proxy().await;
    let source = source(&proxy, &login);
    let manager = manager(source, &MemoryStore::new(), None);

    let err = manager.token().await.unwrap_err();
    let answer = proxy.last("GET", TOKENS_PATH).answer();
    assert_eq!(answer.status, 400);
    let body = answer.json();
    assert_eq!(body["__type"], json!("NotAuthorizedException"));
    let message = body["message"].as_str().unwrap();
    assert_eq!(message, "Refresh Token has been revoked");
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
    assert_carries(&err, message);
    assert_shows_none(&err, &[&login.refresh_token, &login.device_key]);
}
