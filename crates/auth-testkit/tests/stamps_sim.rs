//! The Stamps simulator refuses every request that departs from document 003.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use std::time::Duration;

use auth_testkit::{jwt, stamps::StampsSim};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_json(sim: &StampsSim, path: &str, body: &str) -> (u16, Value) {
    let res = client()
        .post(sim.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn issues_hs256_jwts_in_the_documents_form() {
    let sim = StampsSim::start().await.unwrap();
    let body = json!({"token": sim.auth_token(), "crm_merchant_id": sim.merchant_id()}).to_string();
    let (status, answer) = post_json(&sim, "api/auth/get-access-token/", &body).await;
    assert_eq!(status, 200);
    let token = answer["access_token"].as_str().unwrap();
    assert_eq!(answer.as_object().unwrap().len(), 1);
    let claims = jwt::verify_hs256(token, b"TESTJWT").unwrap();
    assert_eq!(claims["token_type"], "access");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        86_400
    );
    assert_eq!(claims["user_id"], 5870);
    assert_eq!(claims["merchant_id"], 1);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    assert!(
        token.starts_with("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9."),
        "the sample's header"
    );
    assert_eq!(sim.issued_tokens(), [token]);

    // verify-token answers the payload
    let res = client()
        .post(sim.url("api/auth/verify-token/"))
        .header("content-type", "application/json")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), claims);
}

#[tokio::test]
async fn refuses_requests_that_depart_from_the_document() {
    let sim = StampsSim::start().await.unwrap();
    let good = json!({"token": sim.auth_token(), "crm_merchant_id": 1});
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "api/auth/get-access-token/",
            json!({"token": sim.auth_token(), "crm_merchant_id": "1"}).to_string(),
            400,
        ),
        (
            "api/auth/get-access-token/",
            json!({"token": sim.auth_token()}).to_string(),
            400,
        ),
        (
            "api/auth/get-access-token/",
            json!({"crm_merchant_id": 1}).to_string(),
            400,
        ),
        (
            "api/auth/get-access-token/",
            json!({"token": "wrong", "crm_merchant_id": 1}).to_string(),
            401,
        ),
        (
            "api/auth/get-access-token/",
            json!({"token": sim.auth_token(), "crm_merchant_id": 2}).to_string(),
            401,
        ),
        ("api/auth/get-access-token/", "[1]".to_owned(), 400),
        ("api/auth/get-access-token/", "{".to_owned(), 400),
        ("api/auth/get-access-token", good.to_string(), 301),
        ("api/auth/get-token/", good.to_string(), 404),
    ];
    for (path, body, want) in cases {
        let (status, _) = post_json(&sim, path, &body).await;
        assert_eq!(status, want, "{path} {body}");
    }
    let res = client()
        .post(sim.url("api/auth/get-access-token/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}&crm_merchant_id=1", sim.auth_token()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = client()
        .get(sim.url("api/auth/get-access-token/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert!(sim.issued_tokens().is_empty());
}

#[tokio::test]
async fn verify_and_ping_check_the_tokens() {
    let sim = StampsSim::start().await.unwrap();
    let verify = |auth: Option<String>| {
        let mut req = client().post(sim.url("api/auth/verify-token/"));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(verify(None).await, 401);
    let forged = jwt::hs256(&json!({"exp": 4_000_000_000_i64}), b"other");
    assert_eq!(verify(Some(format!("Bearer {forged}"))).await, 401);
    let expired = sim.sign(r#"{"token_type":"access","exp":1000}"#);
    assert_eq!(verify(Some(format!("Bearer {expired}"))).await, 401);
    let valid = sim.sign(r#"{"token_type":"access","exp":4000000000}"#);
    assert_eq!(verify(Some(format!("Bearer {valid}"))).await, 200);

    let ping = |auth: String| {
        let req = client()
            .post(sim.url("api/ping"))
            .header("authorization", auth);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ping(format!("Token {}", sim.static_token())).await, 200);
    assert_eq!(ping("Token nope".to_owned()).await, 401);
    assert_eq!(ping(format!("Bearer {valid}")).await, 200);
}
