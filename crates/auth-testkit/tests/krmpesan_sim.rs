//! The KrmPesan simulator: the `GET /tokens` wrapper's request shape, and Cognito's
//! `InitiateAuth` `REFRESH_TOKEN_AUTH` behind it — its `AuthenticationResult`, refresh-token
//! rotation, and its `NotAuthorizedException`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use auth_testkit::{
    jwt,
    krmpesan::{INVALID_TEXT, KrmPesanSim, REVOKED_TEXT},
    setup::{client, sorted_keys, status_and_json},
};
use serde_json::{Value, json};

async fn refresh(sim: &KrmPesanSim, refresh_token: &str, device_key: &str) -> (u16, Value) {
    let res = client()
        .get(with_query(
            &sim.url("tokens"),
            &[("refresh_token", refresh_token), ("device_key", device_key)],
        ))
        .send()
        .await
        .unwrap();
    status_and_json(res).await
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    format!("{url}?{}", serde_urlencoded::to_string(pairs).unwrap())
}

fn not_authorized(message: &str) -> Value {
    json!({"__type": "NotAuthorizedException", "message": message})
}

#[tokio::test]
async fn answers_cognitos_authentication_result() {
    let sim = KrmPesanSim::start().await.unwrap();
    let (status, answer) = refresh(&sim, sim.refresh_token(), sim.device_key()).await;
    assert_eq!(status, 200);
    assert_eq!(
        sorted_keys(&answer),
        ["AccessToken", "ExpiresIn", "IdToken", "TokenType"]
    );
    assert_eq!(answer["ExpiresIn"], 86_400);
    assert_eq!(answer["TokenType"], "Bearer");
    let id = jwt::claims(answer["IdToken"].as_str().unwrap()).unwrap();
    let access = jwt::claims(answer["AccessToken"].as_str().unwrap()).unwrap();
    assert_eq!(id["token_use"], "id");
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["device_key"], sim.device_key());
    assert_eq!(id["origin_jti"], access["origin_jti"]);
    assert_eq!(
        id["exp"].as_i64().unwrap() - id["iat"].as_i64().unwrap(),
        86_400
    );
    // RS256, as Cognito signs (nobody here can verify it, like a client cannot).
    let header = answer["IdToken"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string());

    // Or the whole InitiateAuth answer.
    sim.set_nested(true);
    let (status, answer) = refresh(&sim, sim.refresh_token(), sim.device_key()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["ChallengeParameters"], json!({}));
    assert!(answer["AuthenticationResult"]["IdToken"].is_string());
}

#[tokio::test]
async fn rotation_answers_a_new_refresh_token_and_refuses_the_old_one() {
    let sim = KrmPesanSim::start().await.unwrap();
    sim.set_rotation(true);
    let first = sim.refresh_token().to_owned();
    let (status, answer) = refresh(&sim, &first, sim.device_key()).await;
    assert_eq!(status, 200);
    let second = answer["RefreshToken"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(sim.current_refresh_token(), second);
    assert_eq!(second.split('.').count(), 5, "a JWE, as Cognito's");
    // The old one is refused; the new one works and rotates again.
    assert_eq!(
        refresh(&sim, &first, sim.device_key()).await,
        (400, not_authorized(REVOKED_TEXT))
    );
    let (status, answer) = refresh(&sim, &second, sim.device_key()).await;
    assert_eq!(status, 200);
    assert_ne!(answer["RefreshToken"].as_str().unwrap(), second);
    // Without rotation, no RefreshToken in the answer.
    sim.set_rotation(false);
    let (_, answer) = refresh(&sim, &sim.current_refresh_token(), sim.device_key()).await;
    assert!(answer.get("RefreshToken").is_none());
}

#[tokio::test]
async fn refusals_are_cognitos_not_authorized_exception() {
    let sim = KrmPesanSim::start().await.unwrap();
    assert_eq!(
        refresh(&sim, "never-issued", sim.device_key()).await,
        (400, not_authorized(INVALID_TEXT))
    );
    assert_eq!(
        refresh(&sim, sim.refresh_token(), "ap-southeast-1_other-device").await,
        (400, not_authorized(INVALID_TEXT))
    );
    sim.set_echo_in_errors(true);
    assert_eq!(
        refresh(&sim, "never-issued", sim.device_key()).await,
        (400, not_authorized("never-issued"))
    );
    sim.set_echo_in_errors(false);
    sim.revoke();
    assert_eq!(
        refresh(&sim, sim.refresh_token(), sim.device_key()).await,
        (400, not_authorized(REVOKED_TEXT))
    );
}

#[tokio::test]
async fn the_wrapper_checks_the_request_shape() {
    let sim = KrmPesanSim::start().await.unwrap();
    let status = |res: reqwest::Response| res.status().as_u16();
    let pairs = [
        ("refresh_token", sim.refresh_token()),
        ("device_key", sim.device_key()),
    ];
    let res = client()
        .get(with_query(&sim.url("token"), &pairs))
        .send()
        .await
        .unwrap();
    assert_eq!(status(res), 404);
    let res = client()
        .post(with_query(&sim.url("tokens"), &pairs))
        .send()
        .await
        .unwrap();
    assert_eq!(status(res), 405);
    let res = client()
        .get(with_query(
            &sim.url("tokens"),
            &[
                ("refresh_token", sim.refresh_token()),
                ("device_id", sim.device_key()),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(status(res), 400);
}
