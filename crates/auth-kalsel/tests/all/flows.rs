#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use auth_core::{
    Clock as _, ErrorKind, FetchRequest, StoredEntry, Token, TokenSource as _, TokenStore as _,
};
use auth_kalsel::{KalselConfig, KalselSource, Rejection};
use auth_testkit::{Fault, kalsel::KalselSim, logs::LogCapture};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::support::{
    REFRESH_POINT, Setup, clock, config, http_config, manager, setup, sim_builder,
};

fn sent_refresh_tokens(sim: &KalselSim) -> Vec<String> {
    sim.requests()
        .iter()
        .map(|r| {
            r.json().unwrap()["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The defect this replaces: kunci stored each access token as the next refresh token, so
/// the second refresh sent an access token and the server answered 422 "not a refresh
/// token". Every refresh now sends the configured refresh token, and nothing is stored as
/// refresh material.
#[tokio::test]
async fn the_refresh_token_is_never_rotated_and_every_refresh_sends_the_configured_one() {
    let s = setup().await;
    let sent_at = s.clock.now();
    let first = s.manager.token().await.unwrap();
    assert_eq!(
        first.expires_at(),
        Some(sent_at + Duration::from_secs(3600))
    );
    let stored = s.stored().await.unwrap();
    assert!(stored.refresh.is_none(), "no refresh material is stored");
    assert!(
        stored.token.unwrap().same_secret(&first),
        "stored before it was handed out"
    );
    let mut seen = vec![first.secret().expose_secret().to_owned()];
    for _ in 0..3 {
        s.clock.advance(REFRESH_POINT);
        let next = s.manager.token().await.unwrap();
        assert!(!seen.contains(&next.secret().expose_secret().to_owned()));
        seen.push(next.secret().expose_secret().to_owned());
    }
    assert_eq!(s.sim.request_count(), 4);
    let configured = s.sim.initial_refresh_token();
    assert!(sent_refresh_tokens(&s.sim).iter().all(|t| t == configured));
    assert_eq!(s.sim.issued_tokens(), seen);
}

#[tokio::test]
async fn another_process_sharing_the_store_adopts_the_stored_token() {
    let s = setup().await;
    let token = s.manager.token().await.unwrap();
    let other = manager(config(&s.sim), &s.store, &s.clock, Duration::from_secs(30));
    let adopted = other.token().await.unwrap();
    assert!(adopted.same_secret(&token));
    assert_eq!(s.sim.request_count(), 1);
    assert_eq!(other.stats().adopted, 1);
}

/// An earlier kunci stored the last access token as "rotated" refresh material. The server
/// refuses it; the configured refresh token is what is sent.
#[tokio::test]
async fn refresh_material_left_in_the_store_by_an_earlier_kunci_is_ignored() {
    let s = setup().await;
    let mut old = StoredEntry::default();
    old.refresh = Some(SecretString::from(s.sim.access_token()));
    s.store.save(s.manager.key(), &old, 0).await.unwrap();
    s.manager.token().await.unwrap();
    assert_eq!(sent_refresh_tokens(&s.sim), [s.sim.initial_refresh_token()]);
}

#[tokio::test]
async fn expired_is_corrected_for_the_servers_clock() {
    for skew_hours in [2, -3] {
        let clock = clock();
        let sim = KalselSim::start_with(
            sim_builder(&clock).clock_skew(auth_core::time::Duration::hours(skew_hours)),
        )
        .await
        .unwrap();
        // the refresh token was issued in the server's clock: log in there
        let config = KalselConfig::new(SecretString::from(sim.login()))
            .unwrap()
            .with_base_url(&sim.base_url())
            .unwrap();
        let source = KalselSource::new(config, http_config(Duration::from_secs(30))).unwrap();
        let now = clock.now();
        let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
        // The server says "expired = its now + 1 h"; in our clock that is our now + 1 h.
        assert_eq!(
            fetched.token.expires_at(),
            Some(now + Duration::from_secs(3600)),
            "skew {skew_hours} h"
        );
        assert!(fetched.refresh.is_none());
    }
}

/// Seven days after the login the server refuses the refresh token: 422 `jwt_error`
/// "Token is expired" (its page says 421). Log in again, with the server's cause shown.
#[tokio::test]
async fn an_expired_refresh_token_requires_logging_in_again_with_the_servers_cause() {
    let s = setup().await;
    let token = s.manager.token().await.unwrap();
    let before = s.stored().await.unwrap();
    s.clock.advance(Duration::from_secs(7 * 86_400 + 60));
    let err = s.manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err:?}");
    assert!(
        err.message()
            .contains("status 422, jwt_error: Token is expired"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("log in again with email and password"),
        "{err}"
    );
    let rejection = std::error::Error::source(&err)
        .unwrap()
        .downcast_ref::<Rejection>()
        .unwrap();
    assert_eq!(
        (
            rejection.status,
            rejection.error.as_str(),
            rejection.message.as_str()
        ),
        (422, "jwt_error", "Token tidak valid")
    );
    assert_eq!(rejection.causes, ["Token is expired"]);
    let printed = format!("{err} {err:?}");
    assert!(
        !printed.contains(s.sim.initial_refresh_token()),
        "{printed}"
    );
    // the stored token is kept; only the failure's outcome is added, for processes that waited
    let after = s.stored().await.unwrap();
    assert!(after.version > before.version && after.failure.is_some());
    assert!(after.token.unwrap().same_secret(&token));
}

/// The page documents 421 for an expired refresh token; a server answering it, or 401, gets
/// the same treatment as the real server's 422.
#[tokio::test]
async fn the_pages_421_and_a_401_also_require_logging_in_again() {
    for (status, body) in [
        (
            421,
            json!({"status": 421, "message": "Token expired", "error": "jwt_error", "causes": ["token has expired"]}),
        ),
        (
            401,
            json!({"status": 401, "message": "Unauthorized", "error": "unauthorized", "causes": []}),
        ),
    ] {
        let s = setup().await;
        s.sim.fail_next(Fault::json(status, &body));
        let err = s.manager.token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{status}");
        assert!(err.message().contains(&format!("status {status}")), "{err}");
    }
}

/// Configuring the login's access token instead of its refresh token: caught from the token's
/// `type` claim before any request, and from the server's cause if the claim was unreadable.
#[tokio::test]
async fn an_access_token_as_refresh_token_is_a_configuration_error_naming_the_variable() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let err = KalselConfig::from_lookup(|name| match name {
        "KALSEL_REFRESH_TOKEN" => Some(sim.access_token()),
        _ => None,
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(err.message().contains("KALSEL_REFRESH_TOKEN"), "{err}");
    assert_eq!(sim.request_count(), 0);

    let s = crate::support::setup().await;
    s.sim.fail_next(Fault::json(
        422,
        &json!({"status": 422, "message": "Token tidak valid", "error": "jwt_error", "causes": ["not a refresh token"]}),
    ));
    let err = s.manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err:?}");
    assert!(
        err.message()
            .contains("KALSEL_REFRESH_TOKEN holds an access token"),
        "{err}"
    );
}

#[tokio::test]
async fn a_deleted_account_requires_logging_in_again() {
    let s = setup().await;
    s.sim.delete_account();
    let err = s.manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired, "{err:?}");
    assert!(err.message().contains("not_found"), "{err}");
}

/// The server's limiter: 30 requests a minute per client address, then 429 `rate_limiter`
/// with `Retry-After` (the seconds left in its window).
#[tokio::test]
async fn the_thirty_first_request_in_a_minute_is_rate_limited_until_the_window_ends() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let source = KalselSource::new(config(&sim), http_config(Duration::from_secs(30))).unwrap();
    let now = clock.now();
    for _ in 0..30 {
        source.fetch(FetchRequest::new(None, now)).await.unwrap();
    }
    let err = source
        .fetch(FetchRequest::new(None, now))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            until: now + Duration::from_secs(60)
        }
    );
    assert!(
        err.message()
            .contains("rate_limiter: too many requests in a given amount of time"),
        "{err}"
    );
    clock.advance(Duration::from_secs(60));
    source
        .fetch(FetchRequest::new(None, clock.now()))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_refresh_tokens_expiry_is_in_the_managers_stats() {
    let s = setup().await;
    let seven_days = s.clock.now() + Duration::from_secs(7 * 86_400);
    assert_eq!(s.manager.stats().credential_expires_at, Some(seven_days));
    let source = KalselSource::new(config(&s.sim), http_config(Duration::from_secs(1))).unwrap();
    assert_eq!(source.credential_expires_at(), Some(seven_days));
    assert_eq!(source.config().refresh_token_expires_at(), Some(seven_days));
}

#[tokio::test(flavor = "current_thread")]
async fn a_warning_is_logged_on_refreshes_within_a_day_of_the_refresh_tokens_expiry() {
    let captured = LogCapture::default();
    let _guard = captured.install();
    let s = setup().await;
    s.manager.token().await.unwrap();
    s.clock.advance(Duration::from_secs(5 * 86_400));
    s.manager.token().await.unwrap();
    assert!(
        !captured.text().contains("expires within a day"),
        "{}",
        captured.text()
    );
    s.clock.advance(Duration::from_secs(86_400 + 3600));
    s.manager.token().await.unwrap();
    let logs = captured.text();
    assert!(
        logs.contains("WARN") && logs.contains("the refresh token expires within a day"),
        "{logs}"
    );
    assert!(!logs.contains(s.sim.initial_refresh_token()));
}

/// A person logs in again and a new process is configured with the new refresh token: it
/// sends that token, in one request, and stores what it got. Returns that token.
async fn log_in_again_and_fetch(s: &Setup) -> auth_core::OwnedToken {
    let fresh = s.sim.login();
    let relogged = KalselConfig::new(SecretString::from(fresh.clone()))
        .unwrap()
        .with_base_url(&s.sim.base_url())
        .unwrap();
    let second = manager(relogged, &s.store, &s.clock, Duration::from_secs(10));
    let before = s.sim.request_count();
    let token = second.token().await.unwrap().into_owned();
    assert_eq!(s.sim.request_count() - before, 1, "one request");
    assert_eq!(sent_refresh_tokens(&s.sim).last().unwrap(), &fresh);
    let stored = s.store.load(second.key()).await.unwrap().unwrap();
    assert!(
        stored
            .token
            .as_ref()
            .is_some_and(|t: &Token| t.same_secret(&token))
    );
    token
}

/// After a refusal a person logs in again and configures the new refresh token: the next
/// process sends it, one request.
#[tokio::test]
async fn a_new_login_takes_effect_with_one_request() {
    let s = setup().await;
    s.manager.token().await.unwrap();
    s.clock.advance(Duration::from_secs(8 * 86_400));
    assert!(s.manager.token().await.is_err());
    log_in_again_and_fetch(&s).await;
}

/// A stored token is tied to the login that made it: after a new login (say the old refresh
/// token leaked), a process configured with the new one does not serve the old login's access
/// token, still valid in the store, but fetches with the new one — one request.
#[tokio::test]
async fn a_new_login_takes_effect_over_a_valid_stored_token_of_the_old_one() {
    let s = setup().await;
    let old = s.manager.token().await.unwrap().into_owned();
    // a minute later (a login in the same second would make the same JWT)
    s.clock.advance(Duration::from_secs(60));
    let token = log_in_again_and_fetch(&s).await;
    assert!(
        !token.same_secret(&old),
        "the old login's token is not adopted"
    );
}

#[tokio::test]
async fn source_name_key_and_debug() {
    let s = setup().await;
    let source = KalselSource::new(config(&s.sim), http_config(Duration::from_secs(1))).unwrap();
    assert_eq!(source.name(), "kalsel");
    assert_eq!(source.config().store_key().as_str(), "kalsel:default");
    let printed = format!("{source:?}");
    assert!(
        !printed.contains(s.sim.initial_refresh_token()),
        "{printed}"
    );
}
