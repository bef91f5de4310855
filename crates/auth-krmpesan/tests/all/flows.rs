use std::time::Duration;

use auth_core::{Clock as _, ErrorKind, FetchRequest, TokenSource as _};
use auth_krmpesan::KrmPesanSource;
use auth_testkit::{jwt, krmpesan::KrmPesanSim};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::support::{clock, config, http_config, setup, sim_builder};

#[tokio::test]
async fn hands_out_the_id_token_and_caches_it() {
    let s = setup().await;
    let sent_at = s.clock.now();
    let token = s.manager.token().await.unwrap();
    let issued = s.sim.issued_tokens();
    // The simulator records the AccessToken, then the IdToken.
    assert_eq!(issued.len(), 2);
    assert_eq!(token.secret().expose_secret(), issued[1]);
    assert_eq!(jwt::claims(&issued[1]).unwrap()["token_use"], "id");
    assert_eq!(
        token.header_value().to_str().unwrap(),
        format!("Bearer {}", issued[1])
    );
    assert_eq!(
        token.expires_at(),
        Some(sent_at + Duration::from_secs(86_400))
    );
    drop(token);
    for _ in 0..10 {
        s.manager.token().await.unwrap();
    }
    assert_eq!(s.sim.request_count(), 1);
    let stored = s.stored().await.unwrap();
    assert!(stored.token.unwrap().secret().expose_secret() == issued[1]);
    assert!(
        stored.refresh.is_none(),
        "KrmPesan does not rotate its refresh token"
    );
}

#[tokio::test]
async fn an_earlier_exp_claim_wins_over_expires_in() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock).token_lifetime(Duration::from_secs(600)))
        .await
        .unwrap();
    let source = KrmPesanSource::new(config(&sim), http_config(Duration::from_secs(30))).unwrap();
    let now = clock.now();

    sim.set_reported_expires_in(Some(86_400));
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_eq!(
        fetched.token.expires_at(),
        Some(now + Duration::from_secs(600))
    );

    sim.set_reported_expires_in(Some(300));
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_eq!(
        fetched.token.expires_at(),
        Some(now + Duration::from_secs(300))
    );
    assert!(fetched.refresh.is_none());
}

#[tokio::test]
async fn exp_is_read_in_the_servers_clock() {
    // The server's clock runs two hours ahead: its `exp` claims are two hours "later" than
    // ours, and the Date header shows it; the token still lives 600 s from our point of view.
    let clock = clock();
    let sim = KrmPesanSim::start_with(
        sim_builder(&clock)
            .token_lifetime(Duration::from_secs(600))
            .clock_skew(auth_core::time::Duration::hours(2)),
    )
    .await
    .unwrap();
    sim.set_reported_expires_in(Some(86_400));
    let source = KrmPesanSource::new(config(&sim), http_config(Duration::from_secs(30))).unwrap();
    let now = clock.now();
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_eq!(
        fetched.token.expires_at(),
        Some(now + Duration::from_secs(600))
    );
}

#[tokio::test]
async fn a_held_id_token_is_used_first_while_valid() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    let now = clock.now();
    let held = jwt::rs256_looking(
        &json!({"exp": now.unix_timestamp() + 3600, "token_use": "id"}),
        "k",
    );
    let config = config(&sim)
        .with_id_token(SecretString::from(held.clone()))
        .unwrap();
    let source = KrmPesanSource::new(config, http_config(Duration::from_secs(30))).unwrap();
    let first = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_eq!(first.token.secret().expose_secret(), held);
    assert_eq!(
        first.token.expires_at().unwrap().unix_timestamp(),
        now.unix_timestamp() + 3600
    );
    assert_eq!(sim.request_count(), 0);
    // used once only
    let second = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_ne!(second.token.secret().expose_secret(), held);
    assert_eq!(sim.request_count(), 1);
}

#[tokio::test]
async fn an_expired_held_id_token_is_skipped() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    let now = clock.now();
    let held = jwt::rs256_looking(&json!({"exp": now.unix_timestamp() - 10}), "k");
    let config = config(&sim)
        .with_id_token(SecretString::from(held.clone()))
        .unwrap();
    let source = KrmPesanSource::new(config, http_config(Duration::from_secs(30))).unwrap();
    let first = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_ne!(first.token.secret().expose_secret(), held);
    assert_eq!(sim.request_count(), 1);
}

#[tokio::test]
async fn revoked_credentials_require_new_ones_and_cognitos_reason_is_shown() {
    let s = setup().await;
    s.sim.revoke();
    let err = s.manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    let text = err.to_string();
    assert!(text.contains("dashboard"), "{text}");
    assert!(
        text.contains("status 400, NotAuthorizedException: Refresh Token has been revoked"),
        "the upstream's reason is shown: {text}"
    );
    let rejection = std::error::Error::source(&err)
        .unwrap()
        .downcast_ref::<auth_krmpesan::Rejection>()
        .unwrap();
    assert_eq!(rejection.status, 400);
    assert_eq!(
        rejection.error_type.as_deref(),
        Some("NotAuthorizedException")
    );
    assert_eq!(
        rejection.message.as_deref(),
        Some("Refresh Token has been revoked")
    );
    let printed = format!("{err} {err:?} {rejection}");
    assert!(!printed.contains(s.sim.refresh_token()) && !printed.contains(s.sim.device_key()));
}

#[tokio::test]
async fn a_message_that_echoes_a_secret_is_shown_with_the_secret_scrubbed() {
    let s = setup().await;
    s.sim.set_echo_in_errors(true);
    s.sim.revoke();
    let err = s.manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    let printed = format!("{err} {err:?} {}", std::error::Error::source(&err).unwrap());
    assert!(
        printed.contains("NotAuthorizedException: [redacted]"),
        "{printed}"
    );
    assert!(!printed.contains(s.sim.refresh_token()), "{printed}");

    // Form-encoded as kunci sent it, percent-encoded, and behind a bidirectional override.
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    let refresh = "rt/with+odd=chars~and*more";
    let config = auth_krmpesan::KrmPesanConfig::new(
        SecretString::from(refresh),
        SecretString::from(sim.device_key().to_owned()),
    )
    .unwrap()
    .with_base_url(&sim.base_url())
    .unwrap();
    let source = KrmPesanSource::new(config, http_config(Duration::from_secs(30))).unwrap();
    sim.fail_next(auth_testkit::Fault::json(
        400,
        &json!({
            "__type": "NotAuthorizedException",
            "message": format!(
                "Invalid device \u{202E}{} for {} / {} / {}",
                sim.device_key(),
                "rt%2Fwith%2Bodd%3Dchars%7Eand*more",
                "rt%2Fwith%2Bodd%3Dchars~and%2Amore",
                refresh,
            ),
        }),
    ));
    let err = source
        .fetch(FetchRequest::new(None, clock.now()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "NotAuthorizedException: Invalid device [redacted] for [redacted] / [redacted] / [redacted]"
        ),
        "{text}"
    );
    assert!(!text.contains('\u{202E}'), "{text}");
    // What was sent, to be sure the first form is kunci's own encoding.
    assert_eq!(
        sim.last_request()
            .unwrap()
            .raw_query
            .unwrap()
            .split('&')
            .next(),
        Some("refresh_token=rt%2Fwith%2Bodd%3Dchars%7Eand*more")
    );
}

#[tokio::test]
async fn cognitos_throttling_is_rate_limited() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    let source = KrmPesanSource::new(config(&sim), http_config(Duration::from_secs(30))).unwrap();
    // Cognito answers throttling with 400, like its other refusals.
    sim.fail_next(auth_testkit::Fault::json(
        400,
        &json!({"__type": "TooManyRequestsException", "message": "Rate exceeded"}),
    ));
    let now = clock.now();
    let err = source
        .fetch(FetchRequest::new(None, now))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            until: now + Duration::from_secs(60)
        },
        "{err}"
    );
    assert!(err.to_string().contains("Rate exceeded"), "{err}");

    // The same refusals as boto3 renders them, should the wrapper pass that form on.
    sim.fail_next(auth_testkit::Fault::json(
        400,
        &json!({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}),
    ));
    let err = source
        .fetch(FetchRequest::new(None, now))
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::RateLimited { .. }), "{err}");
    sim.fail_next(auth_testkit::Fault::json(
        400,
        &json!({"Error": {"Code": "NotAuthorizedException", "Message": "Refresh Token has been revoked"}}),
    ));
    let err = source
        .fetch(FetchRequest::new(None, now))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    assert!(
        err.to_string()
            .contains("NotAuthorizedException: Refresh Token has been revoked"),
        "{err}"
    );
}

#[tokio::test]
async fn the_whole_initiate_auth_answer_is_read_too() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    sim.set_nested(true);
    let source = KrmPesanSource::new(config(&sim), http_config(Duration::from_secs(30))).unwrap();
    let now = clock.now();
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_eq!(
        fetched.token.secret().expose_secret(),
        sim.issued_tokens()[1]
    );
    assert_eq!(
        fetched.token.expires_at(),
        Some(now + Duration::from_secs(86_400))
    );
    // A challenge instead of tokens is named, not guessed at.
    sim.fail_next(auth_testkit::Fault::json(
        200,
        &json!({"ChallengeName": "NEW_PASSWORD_REQUIRED", "ChallengeParameters": {}, "Session": "s"}),
    ));
    let err = source
        .fetch(FetchRequest::new(None, now))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("NEW_PASSWORD_REQUIRED"), "{err}");
    // Cognito's own content type is JSON too.
    let body =
        json!({"IdToken": "abc", "ExpiresIn": 3600, "TokenType": "Bearer", "AccessToken": "x"});
    sim.fail_next(auth_testkit::Fault::status(
        200,
        Some("application/x-amz-json-1.1"),
        body.to_string(),
    ));
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_eq!(fetched.token.secret().expose_secret(), "abc");
}

#[tokio::test]
async fn an_absurd_expires_in_stops_at_the_year_9999_and_the_exp_claim_still_wins() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    let source = KrmPesanSource::new(config(&sim), http_config(Duration::from_secs(30))).unwrap();
    let now = clock.now();
    // An opaque IdToken: only ExpiresIn says anything.
    sim.fail_next(auth_testkit::Fault::json(
        200,
        &json!({"IdToken": "abc", "ExpiresIn": i64::MAX, "TokenType": "Bearer", "AccessToken": "x"}),
    ));
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_eq!(fetched.token.expires_at(), Some(auth_core::expiry::LATEST));
    // A Cognito IdToken: its `exp` bounds the absurd ExpiresIn.
    sim.set_reported_expires_in(Some(u64::try_from(i64::MAX).unwrap()));
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert_eq!(
        fetched.token.expires_at(),
        Some(now + Duration::from_secs(86_400))
    );
}

#[tokio::test]
async fn source_name_and_debug() {
    let s = setup().await;
    let source = KrmPesanSource::new(config(&s.sim), http_config(Duration::from_secs(1))).unwrap();
    assert_eq!(auth_core::TokenSource::name(&source), "krmpesan");
    assert_eq!(source.config().store_key().as_str(), "krmpesan:default");
    let printed = format!("{source:?}");
    assert!(
        !printed.contains(s.sim.refresh_token()) && !printed.contains(s.sim.device_key()),
        "{printed}"
    );
}
