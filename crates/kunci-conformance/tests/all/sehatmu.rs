//! auth-sehatmu against express + oauth2-server 3.x (`conformance/sehatmu/server.js`): the
//! client-credentials grant, the token object as the answer, OperationOutcome errors and the
//! one-request-per-minute rule after a failed authentication.

use std::time::Duration;

use auth_core::{
    ErrorKind, MemoryStore, SharedClock, Token, time::format_description::well_known::Rfc3339,
};
use auth_sehatmu::{SehatMuConfig, SehatMuSource};
use http::Method;
use kunci_conformance::{Answer, RecordingProxy, SEHATMU_URL, Upstream};
use secrecy::SecretString;
use serde_json::json;

use crate::support::{
    assert_carries, assert_shows_none, fetched_once_for_many_callers, manager, manual_clock, now,
    one_new_token, refreshed_after_manual_expiry, secret,
};

const TOKEN_PATH: &str = "/oauth/token";
/// oauth2-server's access-token lifetime as the glue configures it.
const LIFETIME: Duration = Duration::from_secs(60 * 60);

fn upstream(test: &str) -> Option<Upstream> {
    Upstream::from_env(SEHATMU_URL, test)
}

/// A new client of the upstream: `(client_id, client_secret)`.
async fn client(sehatmu: &Upstream, options: serde_json::Value) -> (String, String) {
    let client = sehatmu.harness("/harness/clients", options).await;
    (
        client["clientId"].as_str().unwrap().to_owned(),
        client["clientSecret"].as_str().unwrap().to_owned(),
    )
}

fn source(proxy: &RecordingProxy, client_id: &str, secret: &str) -> SehatMuSource {
    let config = SehatMuConfig::new(client_id, SecretString::from(secret.to_owned()))
        .unwrap()
        .with_base_url(proxy.base_url())
        .unwrap();
    SehatMuSource::new(config, auth_core::http::HttpConfig::default()).unwrap()
}

/// The first `issue[].details.text` of an OperationOutcome answer.
fn outcome_text(answer: &Answer) -> String {
    let body = answer.json();
    assert_eq!(
        body["resourceType"],
        json!("OperationOutcome"),
        "{}",
        answer.body
    );
    body["issue"][0]["details"]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A token request sent straight to the upstream, as the page describes it.
async fn raw_token_request(sehatmu: &Upstream, client_id: &str, secret: &str) -> Answer {
    let form = format!("client_id={client_id}&client_secret={secret}");
    sehatmu
        .send(
            Method::POST,
            "/oauth/token?grant_type=client_credentials",
            None,
            Some(("application/x-www-form-urlencoded", form)),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_fetched_once_for_many_callers_and_accepted_by_the_upstream() {
    let Some(sehatmu) = upstream("sehatmu::a_token_is_fetched_once") else {
        return;
    };
    let (id, secret_value) = client(&sehatmu, json!({})).await;
    let proxy = sehatmu.proxy().await;
    let store = MemoryStore::new();
    let process = || {
        let source = source(&proxy, &id, &secret_value);
        manager(source, &store, None)
    };
    let (token, _) = fetched_once_for_many_callers(process, &proxy, ("POST", TOKEN_PATH)).await;
    let issued = proxy.last("POST", TOKEN_PATH);
    assert_eq!(
        issued.query.as_deref(),
        Some("grant_type=client_credentials")
    );
    let issued = issued.answer().json();
    assert_eq!(
        issued["accessToken"].as_str(),
        Some(secret(&token).as_str())
    );
    assert_eq!(secret(&token).len(), 40);
    assert!(secret(&token).bytes().all(|b| b.is_ascii_hexdigit()));

    let pong = sehatmu.get("/api/ping", token.header_value()).await;
    assert_eq!(
        pong.status, 200,
        "oauth2-server refused the token: {}",
        pong.body
    );
    assert_eq!(pong.json()["clientId"], json!(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_is_the_access_token_expires_at_oauth2_server_answered() {
    let Some(sehatmu) = upstream("sehatmu::the_expiry_is_the_access_token_expires_at") else {
        return;
    };
    let (id, secret_value) = client(&sehatmu, json!({})).await;
    let proxy = sehatmu.proxy().await;
    let source = source(&proxy, &id, &secret_value);
    let manager = manager(source, &MemoryStore::new(), None);

    let token = manager.token().await.unwrap();
    let answer = proxy.last("POST", TOKEN_PATH).answer().json();
    let expires_at = auth_core::time::OffsetDateTime::parse(
        answer["accessTokenExpiresAt"].as_str().unwrap(),
        &Rfc3339,
    )
    .unwrap();
    assert_eq!(token.expires_at(), Some(expires_at));
    // Counted from when kunci sent the request, the token lives the server's lifetime plus the
    // time the request took to reach it.
    let lifetime = expires_at - token.issued_at();
    assert!(
        lifetime >= LIFETIME && lifetime < LIFETIME + Duration::from_secs(60),
        "oauth2-server's lifetime is {LIFETIME:?}, kunci counted {lifetime}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_real_expiry_the_token_is_fetched_once_more_and_the_new_one_is_accepted() {
    let Some(sehatmu) = upstream("sehatmu::after_a_real_expiry_the_token_is_fetched_once_more")
    else {
        return;
    };
    // oauth2-server's own per-client lifetime: two seconds, waited out for real.
    let (id, secret_value) = client(&sehatmu, json!({ "accessTokenLifetime": 2 })).await;
    let proxy = sehatmu.proxy().await;
    let source = source(&proxy, &id, &secret_value);
    let manager = manager(source, &MemoryStore::new(), None);

    let first = Token::clone(&manager.token().await.unwrap());
    let left = first.expires_at().unwrap() - now();
    tokio::time::sleep(Duration::try_from(left).unwrap_or_default() + Duration::from_millis(500))
        .await;
    let refused = sehatmu.get("/api/ping", first.header_value()).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(
        outcome_text(&refused),
        "Invalid token: access token has expired"
    );

    let second = one_new_token(&manager, &proxy, ("POST", TOKEN_PATH), &first, "token").await;
    let pong = sehatmu.get("/api/ping", second.header_value()).await;
    assert_eq!(
        pong.status, 200,
        "oauth2-server refused the new token: {}",
        pong.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_manual_expiry_the_token_is_fetched_once_more_and_the_new_one_is_accepted() {
    let Some(sehatmu) = upstream("sehatmu::after_a_manual_expiry_the_token_is_fetched_once_more")
    else {
        return;
    };
    let (id, secret_value) = client(&sehatmu, json!({})).await;
    let proxy = sehatmu.proxy().await;
    let clock = manual_clock();
    let source = source(&proxy, &id, &secret_value).with_clock(SharedClock::from(clock.clone()));
    let manager = manager(source, &MemoryStore::new(), Some(&clock));

    let second = refreshed_after_manual_expiry(
        &manager,
        &clock,
        LIFETIME,
        &proxy,
        ("POST", TOKEN_PATH),
        "token",
    )
    .await;
    let pong = sehatmu.get("/api/ping", second.header_value()).await;
    assert_eq!(
        pong.status, 200,
        "oauth2-server refused the new token: {}",
        pong.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_reauthentication_required_with_the_pages_text_and_then_nothing_is_sent()
{
    let Some(sehatmu) = upstream("sehatmu::a_wrong_secret_is_reauthentication_required") else {
        return;
    };
    let (id, secret_value) = client(&sehatmu, json!({})).await;
    let wrong = "f".repeat(64);
    let proxy = sehatmu.proxy().await;
    let source = source(&proxy, &id, &wrong);
    let manager = manager(source, &MemoryStore::new(), None);

    let err = manager.token().await.unwrap_err();
    let text = outcome_text(&proxy.last("POST", TOKEN_PATH).answer());
    assert!(text.contains("not able to be authenticated"), "{text}");
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err}");
    assert_carries(&err, &text);
    assert_shows_none(&err, &[&wrong]);

    // The upstream now refuses this client for a minute, even with the right secret...
    let refused = raw_token_request(&sehatmu, &id, &secret_value).await;
    assert_eq!(refused.status, 429);
    assert!(outcome_text(&refused).contains("Rate limit: 1 request per minute"));
    // ...and kunci sends nothing in that minute.
    let again = manager.token().await.unwrap_err();
    let ErrorKind::RateLimited { until } = again.kind() else {
        panic!("expected a cool-down, got {again}");
    };
    assert!(until > now());
    assert_eq!(proxy.count("POST", TOKEN_PATH), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_answer_is_rate_limited_with_the_pages_text() {
    let Some(sehatmu) = upstream("sehatmu::a_rate_limit_answer_is_rate_limited") else {
        return;
    };
    let (id, secret_value) = client(&sehatmu, json!({})).await;
    // Someone else (another process) failed to authenticate as this client a moment ago.
    let failed = raw_token_request(&sehatmu, &id, "wrong").await;
    assert_eq!(failed.status, 400, "{}", failed.body);
    let proxy = sehatmu.proxy().await;
    let source = source(&proxy, &id, &secret_value);
    let manager = manager(source, &MemoryStore::new(), None);

    let err = manager.token().await.unwrap_err();
    let answer = proxy.last("POST", TOKEN_PATH).answer();
    assert_eq!(answer.status, 429);
    let text = outcome_text(&answer);
    let ErrorKind::RateLimited { until } = err.kind() else {
        panic!("expected rate limited, got {err}");
    };
    assert!(until > now());
    assert_carries(&err, &text);
    assert!(manager.token().await.is_err());
    assert_eq!(
        proxy.count("POST", TOKEN_PATH),
        1,
        "sent during the cool-down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_starts_no_cool_down_and_the_next_attempt_reaches_the_upstream() {
    let Some(sehatmu) = upstream("sehatmu::a_server_error_starts_no_cool_down") else {
        return;
    };
    // A client whose user lookup fails: oauth2-server answers its ServerError (503).
    let (id, secret_value) = client(&sehatmu, json!({ "failing": true })).await;
    let proxy = sehatmu.proxy().await;
    let clock = manual_clock();
    let store = MemoryStore::new();
    let process = |clock: &std::sync::Arc<auth_core::ManualClock>| {
        let source =
            source(&proxy, &id, &secret_value).with_clock(SharedClock::from(clock.clone()));
        manager(source, &store, Some(clock))
    };
    let manager = process(&clock);

    let err = manager.token().await.unwrap_err();
    assert_eq!(proxy.last("POST", TOKEN_PATH).status, 503);
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");

    // Past the manager's first back-off (about a second), far inside SehatMu's minute.
    clock.advance(Duration::from_secs(10));
    let err = manager.token().await.unwrap_err();
    assert!(
        !matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "a 503 started a cool-down: {err}"
    );
    assert_eq!(proxy.count("POST", TOKEN_PATH), 2, "the retry was not sent");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");

    // Another process sharing the store is not held back either.
    let other = process(&clock);
    let err = other.token().await.unwrap_err();
    assert!(
        !matches!(err.kind(), ErrorKind::RateLimited { .. }),
        "a 503 left a cool-down in the store: {err}"
    );
    assert_eq!(proxy.count("POST", TOKEN_PATH), 3);
}
