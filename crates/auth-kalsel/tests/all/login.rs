//! `LoginRequest`: email and password exchanged once for the refresh token, against the
//! simulator's login route (`POST /api/v1/login`).
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use auth_core::{Clock as _, ErrorKind, jwt::decode_claims};
use auth_kalsel::{KalselConfig, LoginRequest};
use auth_testkit::{
    Fault,
    kalsel::{EMAIL, KalselSim, PASSWORD},
    logs::LogCapture,
};
use http::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::support::{client, clock, sim_builder};

fn request(sim: &KalselSim, email: &str) -> LoginRequest {
    LoginRequest::new(email)
        .unwrap()
        .with_base_url(&sim.base_url())
        .unwrap()
}

fn password(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

#[tokio::test]
async fn a_login_posts_email_password_and_limit_once_and_gives_the_refresh_token() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let now = clock.now();
    let login = request(&sim, EMAIL)
        .with_token_lifetime_minutes(60)
        .unwrap()
        .send(&client(Duration::from_secs(10)), &password(PASSWORD), now)
        .await
        .unwrap();
    let requests = sim.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        (r.method.clone(), r.path.as_str()),
        (Method::POST, "/api/v1/login")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json().unwrap(),
        json!({"email": EMAIL, "password": PASSWORD, "limit": 60})
    );
    assert_eq!(login.refresh_token.expose_secret(), sim.refresh_token());
    let claims: serde_json::Value = decode_claims(login.refresh_token.expose_secret()).unwrap();
    assert_eq!(claims["type"], 1);
    assert_eq!(
        login.refresh_token_expires_at,
        Some(now + Duration::from_secs(7 * 86_400))
    );
    assert_eq!(
        login.access_token.expires_at(),
        Some(now + Duration::from_secs(3600))
    );
    // The refresh token is what KALSEL_REFRESH_TOKEN takes.
    let config = KalselConfig::new(login.refresh_token.clone()).unwrap();
    assert_eq!(
        config.refresh_token_expires_at(),
        login.refresh_token_expires_at
    );
    let printed = format!("{login:?}");
    assert!(
        !printed.contains(login.refresh_token.expose_secret()),
        "{printed}"
    );
}

#[tokio::test]
async fn the_lifetime_is_checked_before_any_request() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    for bad in [0, 9, 10_081] {
        let err = request(&sim, EMAIL)
            .with_token_lifetime_minutes(bad)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
    }
    let err = LoginRequest::from_lookup(EMAIL, |name| {
        (name == "KALSEL_TOKEN_LIFETIME_MINUTES").then(|| "10081".to_owned())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(
        err.message().contains("KALSEL_TOKEN_LIFETIME_MINUTES"),
        "{err}"
    );
    for email in ["", "  ", "no-at-sign"] {
        let err = LoginRequest::new(email).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
    }
    let err = request(&sim, EMAIL)
        .send(&client(Duration::from_secs(10)), &password(""), clock.now())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert_eq!(sim.request_count(), 0);
}

#[tokio::test]
async fn a_wrong_password_requires_logging_in_again_with_the_servers_words_never_the_password() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let wrong = "wrong-Pa55-word";
    let err = request(&sim, EMAIL)
        .send(
            &client(Duration::from_secs(10)),
            &password(wrong),
            clock.now(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    assert!(
        err.message()
            .contains("unauthorized: Username atau password tidak valid"),
        "{err}"
    );
    let printed = format!("{err} {err:?} {}", std::error::Error::source(&err).unwrap());
    assert!(!printed.contains(wrong), "{printed}");
}

#[tokio::test]
async fn input_the_server_refuses_is_a_configuration_error_with_its_validation_text() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let long = "a-password-of-25-chars-xx";
    let err = request(&sim, EMAIL)
        .send(
            &client(Duration::from_secs(10)),
            &password(long),
            clock.now(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(
        err.message()
            .contains("bad_request: password: the length must be between 3 and 20."),
        "{err}"
    );
}

/// A gateway that echoes the request into its error page, or a server that echoes the
/// password into its answer: the password is redacted from every message.
#[tokio::test]
async fn a_password_echoed_by_the_server_is_redacted() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let echoed = "echo me/please+";
    let encoded = "echo%20me%2Fplease%2B";
    let cases = [
        (
            Fault::status(
                502,
                Some("text/plain"),
                format!("bad gateway for password={encoded}"),
            ),
            ErrorKind::Transient,
        ),
        (
            Fault::json(
                400,
                &json!({"status": 400, "message": format!("bad password {echoed}"), "error": "bad_request", "causes": [echoed]}),
            ),
            ErrorKind::Configuration,
        ),
        (
            Fault::json(
                401,
                &json!({"status": 401, "message": echoed, "error": "unauthorized", "causes": []}),
            ),
            ErrorKind::ReauthenticationRequired,
        ),
    ];
    for (fault, kind) in cases {
        sim.fail_next(fault);
        let err = request(&sim, EMAIL)
            .send(
                &client(Duration::from_secs(10)),
                &password(echoed),
                clock.now(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind);
        let mut printed = format!("{err} {err:?}");
        if let Some(source) = std::error::Error::source(&err) {
            printed.push_str(&format!(" {source} {source:?}"));
        }
        assert!(
            !printed.contains(echoed) && !printed.contains(encoded),
            "{printed}"
        );
        assert!(printed.contains("[redacted]"), "{printed}");
    }
}

#[tokio::test]
async fn a_rate_limited_login_says_until_when() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    sim.fail_next(Fault::Status {
        status: 429,
        content_type: Some("application/json".to_owned()),
        body: json!({"status": 429, "message": "terlalu banyak request", "error": "rate_limiter", "causes": ["too many requests in a given amount of time"]}).to_string(),
    });
    let now = clock.now();
    let err = request(&sim, EMAIL)
        .send(&client(Duration::from_secs(10)), &password(PASSWORD), now)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited {
            until: now + Duration::from_secs(60)
        }
    );
}

/// The password, and every token of the exchange, in no log line at TRACE (a success and a
/// refusal).
#[tokio::test(flavor = "current_thread")]
async fn the_password_is_in_no_log_line() {
    let captured = LogCapture::default();
    let _guard = captured.install();
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let http = client(Duration::from_secs(10));
    let login = request(&sim, EMAIL)
        .send(&http, &password(PASSWORD), clock.now())
        .await
        .unwrap();
    tracing::info!(login = ?login, "logged like an application would");
    let err = request(&sim, EMAIL)
        .send(&http, &password("Wr0ng-pass"), clock.now())
        .await
        .unwrap_err();
    tracing::error!(error = %err, debug = ?err, "logged like an application would");
    let logs = captured.text();
    assert!(
        logs.contains("kalsel") || logs.contains("LoginRequest") || logs.contains("Login"),
        "{logs}"
    );
    for secret in [
        PASSWORD,
        "Wr0ng-pass",
        login.refresh_token.expose_secret(),
        login.access_token.secret().expose_secret(),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked:\n{logs}");
    }
}
