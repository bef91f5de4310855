//! The SehatMu simulator refuses every request that departs from document 004, and applies the
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]
//! one-request-per-minute-after-failure rule.

use std::time::Duration;

use auth_testkit::sehatmu::{
    CREDENTIALS_REJECTED_TEXT, RATE_LIMIT_TEXT, ResponseShape, SehatMuSim,
};
use serde_json::Value;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
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
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn form(id: &str, secret: &str) -> String {
    serde_urlencoded::to_string([("client_id", id), ("client_secret", secret)]).unwrap()
}

const FORM: &str = "application/x-www-form-urlencoded";
const QUERY: &str = "?grant_type=client_credentials";

fn text(answer: &Value) -> &str {
    assert_eq!(answer["resourceType"], "OperationOutcome", "{answer}");
    answer["issue"][0]["details"]["text"].as_str().unwrap()
}

#[tokio::test]
async fn answers_both_documented_shapes() {
    let sim = SehatMuSim::start().await.unwrap();
    let (status, answer) = token(
        &sim,
        QUERY,
        FORM,
        form(sim.client_id(), sim.client_secret()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["accessToken"].as_str().unwrap().len(), 40);
    let expires = answer["accessTokenExpiresAt"].as_str().unwrap();
    assert!(
        expires.ends_with('Z') && expires.len() == "2023-12-17T05:31:48.002Z".len(),
        "{expires}"
    );
    assert_eq!(answer["clientId"], sim.client_id());
    assert!(answer["client"]["name"].is_string() && answer["user"]["email"].is_string());

    sim.set_shape(ResponseShape::SnakeCase);
    let (status, answer) = token(
        &sim,
        QUERY,
        FORM,
        form(sim.client_id(), sim.client_secret()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["expires_in"], 3600);
    assert!(answer["access_token"].is_string());
    assert_eq!(sim.issued_tokens().len(), 2);
}

#[tokio::test]
async fn refuses_requests_that_depart_from_the_document() {
    let sim = SehatMuSim::start().await.unwrap();
    let good = form(sim.client_id(), sim.client_secret());
    let cases = [
        ("", FORM, good.clone(), 400),
        ("?grant_type=password", FORM, good.clone(), 400),
        (
            "?grant_type=client_credentials&x=1",
            FORM,
            good.clone(),
            400,
        ),
        (QUERY, "application/json", good.clone(), 415),
        (
            QUERY,
            FORM,
            format!("{good}&grant_type=client_credentials"),
            400,
        ),
        (QUERY, FORM, format!("client_id={}", sim.client_id()), 400),
    ];
    for (query, content_type, body, want) in cases {
        let (status, answer) = token(&sim, query, content_type, body.clone()).await;
        assert_eq!(status, want, "{query} {content_type} {body}");
        text(&answer);
    }
    let res = client()
        .get(format!("{}{QUERY}", sim.url("oauth/token")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    // None of these counted as a failed attempt: the right credentials still work.
    let (status, _) = token(&sim, QUERY, FORM, good).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn one_request_per_window_after_a_failure() {
    let sim = SehatMuSim::start().await.unwrap();
    sim.set_rate_limit_window(Duration::from_millis(300));
    let (status, answer) = token(&sim, QUERY, FORM, form(sim.client_id(), "wrong")).await;
    assert_eq!(status, 401);
    assert_eq!(text(&answer), CREDENTIALS_REJECTED_TEXT);
    // Even the right secret is refused within the window.
    let (status, answer) = token(
        &sim,
        QUERY,
        FORM,
        form(sim.client_id(), sim.client_secret()),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(text(&answer), RATE_LIMIT_TEXT);
    // Another client ID is not affected.
    let (status, answer) = token(&sim, QUERY, FORM, form("someone-else", "x")).await;
    assert_eq!((status, text(&answer)), (401, CREDENTIALS_REJECTED_TEXT));
    // After the window, it works again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (status, _) = token(
        &sim,
        QUERY,
        FORM,
        form(sim.client_id(), sim.client_secret()),
    )
    .await;
    assert_eq!(status, 200);
}
