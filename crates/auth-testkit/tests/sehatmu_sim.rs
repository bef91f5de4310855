//! The SehatMu simulator: `oauth2-server`'s token object and errors behind the glue, every
//! request that departs from document 004 refused, and the one-request-per-minute rule after
//! a failed authentication only.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use std::{sync::Arc, time::Duration};

use auth_core::{ManualClock, SharedClock, time::macros::datetime};
use auth_testkit::{
    SimServer,
    sehatmu::{
        CREDENTIALS_REJECTED_TEXT, RATE_LIMIT_TEXT, ResponseShape, SehatMuSim, gateway_timeout,
    },
    setup::{client, sorted_keys, status_and_json},
};
use serde_json::Value;

async fn sim_on(clock: &Arc<ManualClock>) -> SehatMuSim {
    SehatMuSim::start_with(SimServer::builder().clock(SharedClock::from(clock.clone())))
        .await
        .unwrap()
}

async fn token(sim: &SehatMuSim, query: &str, content_type: &str, body: String) -> (u16, Value) {
    let res = client()
        .post(format!("{}{query}", sim.url("oauth/token")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    status_and_json(res).await
}

fn form(id: &str, secret: &str) -> String {
    serde_urlencoded::to_string([("client_id", id), ("client_secret", secret)]).unwrap()
}

const FORM: &str = "application/x-www-form-urlencoded";
const QUERY: &str = "?grant_type=client_credentials";

/// The documented request, with the simulator's own client id and secret.
async fn documented_request(sim: &SehatMuSim) -> (u16, Value) {
    token(sim, QUERY, FORM, form(sim.client_id(), sim.client_secret())).await
}

fn text(answer: &Value) -> &str {
    assert_eq!(answer["resourceType"], "OperationOutcome", "{answer}");
    answer["issue"][0]["details"]["text"].as_str().unwrap()
}

#[tokio::test]
async fn answers_both_documented_shapes() {
    let sim = SehatMuSim::start().await.unwrap();
    let (status, answer) = documented_request(&sim).await;
    assert_eq!(status, 200);
    let access = answer["accessToken"].as_str().unwrap();
    assert_eq!(access.len(), 40);
    assert!(
        access
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "a SHA-1 hex digest, as oauth2-server's generateRandomToken: {access}"
    );
    let expires = answer["accessTokenExpiresAt"].as_str().unwrap();
    assert!(
        expires.ends_with('Z') && expires.len() == "2023-12-17T05:31:48.002Z".len(),
        "a JavaScript Date in JSON: {expires}"
    );
    assert_eq!(answer["clientId"], sim.client_id());
    assert!(answer["client"]["name"].is_string() && answer["user"]["email"].is_string());
    assert_eq!(answer["userId"], answer["user"]["id"]);
    assert_eq!(
        sorted_keys(&answer),
        [
            "accessToken",
            "accessTokenExpiresAt",
            "client",
            "clientId",
            "user",
            "userId"
        ]
    );

    sim.set_shape(ResponseShape::SnakeCase);
    let (status, answer) = documented_request(&sim).await;
    assert_eq!(status, 200);
    assert_eq!(answer["expires_in"], 3600);
    assert!(answer["access_token"].is_string());
    assert_eq!(sim.issued_tokens().len(), 2);
}

#[tokio::test]
async fn the_expiry_is_the_lifetime_from_now_in_milliseconds() {
    let clock = ManualClock::new(datetime!(2023-12-16 05:31:48.002 UTC));
    let sim = sim_on(&clock).await;
    let (_, answer) = documented_request(&sim).await;
    assert_eq!(answer["accessTokenExpiresAt"], "2023-12-16T06:31:48.002Z");
}

#[tokio::test]
async fn refuses_requests_that_depart_from_the_document() {
    let sim = SehatMuSim::start().await.unwrap();
    let good = form(sim.client_id(), sim.client_secret());
    let cases = [
        ("", FORM, good.clone(), "Missing parameter: `grant_type`"),
        (
            "?grant_type=password",
            FORM,
            good.clone(),
            "Unsupported grant type: `grant_type` is invalid",
        ),
        (
            "?grant_type=client_credentials&x=1",
            FORM,
            good.clone(),
            "The query string must carry exactly grant_type=client_credentials",
        ),
        (
            QUERY,
            "application/json",
            good.clone(),
            "Invalid request: content must be application/x-www-form-urlencoded",
        ),
        (
            QUERY,
            FORM,
            format!("{good}&grant_type=client_credentials"),
            "The body must carry exactly client_id and client_secret",
        ),
        (
            QUERY,
            FORM,
            format!("client_id={}", sim.client_id()),
            "The body must carry exactly client_id and client_secret",
        ),
        (
            QUERY,
            FORM,
            "client_secret=x".to_owned(),
            "Missing parameter: `client_id`",
        ),
    ];
    for (query, content_type, body, want) in cases {
        let (status, answer) = token(&sim, query, content_type, body.clone()).await;
        assert_eq!(
            (status, text(&answer)),
            (400, want),
            "{query} {content_type} {body}"
        );
    }
    let res = client()
        .get(format!("{}{QUERY}", sim.url("oauth/token")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    // None of these counted as a failed authentication: the right credentials still work.
    let (status, _) = token(&sim, QUERY, FORM, good).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_wrong_secret_is_oauth2_servers_400_with_the_pages_text() {
    let sim = SehatMuSim::start().await.unwrap();
    let (status, answer) = token(&sim, QUERY, FORM, form(sim.client_id(), "wrong")).await;
    assert_eq!((status, text(&answer)), (400, CREDENTIALS_REJECTED_TEXT));
    assert_eq!(answer["issue"][0]["severity"], "invalid");
    assert_eq!(answer["issue"][0]["code"], "value");
}

#[tokio::test]
async fn one_request_per_window_after_a_failed_authentication() {
    let clock = ManualClock::new(datetime!(2026-03-01 08:00 UTC));
    let sim = sim_on(&clock).await;
    let right = || form(sim.client_id(), sim.client_secret());
    let (status, answer) = token(&sim, QUERY, FORM, form(sim.client_id(), "wrong")).await;
    assert_eq!((status, text(&answer)), (400, CREDENTIALS_REJECTED_TEXT));
    // Even the right secret is refused within the minute, and a refusal does not restart it.
    clock.advance(Duration::from_secs(30));
    let (status, answer) = token(&sim, QUERY, FORM, right()).await;
    assert_eq!((status, text(&answer)), (429, RATE_LIMIT_TEXT));
    clock.advance(Duration::from_secs(29));
    let (status, answer) = token(&sim, QUERY, FORM, right()).await;
    assert_eq!((status, text(&answer)), (429, RATE_LIMIT_TEXT));
    // Another client ID is not affected.
    let (status, answer) = token(&sim, QUERY, FORM, form("someone-else", "x")).await;
    assert_eq!((status, text(&answer)), (400, CREDENTIALS_REJECTED_TEXT));
    // A minute after the failure, it works again.
    clock.advance(Duration::from_secs(1));
    let (status, _) = token(&sim, QUERY, FORM, right()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn server_errors_and_malformed_requests_start_no_window() {
    let clock = ManualClock::new(datetime!(2026-03-01 08:00 UTC));
    let sim = sim_on(&clock).await;
    let right = form(sim.client_id(), sim.client_secret());
    sim.fail_next(gateway_timeout());
    let res = client()
        .post(format!("{}{QUERY}", sim.url("oauth/token")))
        .header("content-type", FORM)
        .body(right.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(res.text().await.unwrap(), "Gateway Timeout");
    let (status, _) = token(&sim, "", FORM, right.clone()).await;
    assert_eq!(status, 400);
    // No failed authentication so far: the next request, at once, gets a token.
    let (status, _) = token(&sim, QUERY, FORM, right).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn too_many_tokens_within_a_window_are_refused_with_the_rate_limit_text() {
    let clock = ManualClock::new(datetime!(2026-03-01 08:00 UTC));
    let sim = sim_on(&clock).await;
    sim.set_max_tokens_per_window(Some(2));
    let right = || form(sim.client_id(), sim.client_secret());
    for _ in 0..2 {
        assert_eq!(token(&sim, QUERY, FORM, right()).await.0, 200);
    }
    let (status, answer) = token(&sim, QUERY, FORM, right()).await;
    assert_eq!((status, text(&answer)), (429, RATE_LIMIT_TEXT));
    clock.advance(Duration::from_secs(60));
    assert_eq!(token(&sim, QUERY, FORM, right()).await.0, 200);
}

#[tokio::test]
async fn a_server_built_without_rate_limits_issues_past_the_tokens_per_window_limit() {
    let sim = SehatMuSim::start_with(SimServer::builder().without_rate_limits())
        .await
        .unwrap();
    sim.set_max_tokens_per_window(Some(2));
    let right = || form(sim.client_id(), sim.client_secret());
    for i in 0..4 {
        assert_eq!(token(&sim, QUERY, FORM, right()).await.0, 200, "token {i}");
    }
}
