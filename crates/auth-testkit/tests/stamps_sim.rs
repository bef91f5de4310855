//! The Stamps simulator: the document's request shapes, and the answers of Django REST
//! framework and djangorestframework-simplejwt (their own bodies, statuses and claim types).
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure is a test failure"
)]

use auth_testkit::{
    jwt,
    setup::{client, status_and_json},
    stamps::{SimpleJwt, StampsSim, TOKEN_NOT_VALID_DETAIL},
};
use serde_json::{Value, json};

async fn post_json(sim: &StampsSim, path: &str, body: &str) -> (u16, Value) {
    let res = client()
        .post(sim.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    status_and_json(res).await
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
    // simplejwt 5.5.1 and later write `user_id` as a string.
    assert_eq!(claims["user_id"], "5870");
    assert_eq!(claims["merchant_id"], 1);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    let keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
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

async fn verify(sim: &StampsSim, authorization: Option<&str>) -> (u16, Value) {
    let mut req = client().post(sim.url("api/auth/verify-token/"));
    if let Some(auth) = authorization {
        req = req.header("authorization", auth);
    }
    let res = req.send().await.unwrap();
    status_and_json(res).await
}

async fn ping(sim: &StampsSim, authorization: &str) -> (u16, Value) {
    let res = client()
        .post(sim.url("api/ping"))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    status_and_json(res).await
}

async fn issue(sim: &StampsSim) -> String {
    let body = json!({"token": sim.auth_token(), "crm_merchant_id": sim.merchant_id()}).to_string();
    let (status, answer) = post_json(sim, "api/auth/get-access-token/", &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["access_token"].as_str().unwrap().to_owned()
}

fn not_valid(message: &str) -> Value {
    json!({
        "detail": TOKEN_NOT_VALID_DETAIL,
        "code": "token_not_valid",
        "messages": [{"token_class": "AccessToken", "token_type": "access", "message": message}],
    })
}

#[tokio::test]
async fn user_id_is_a_string_from_simplejwt_5_5_1_and_a_number_before() {
    let sim = StampsSim::start().await.unwrap();
    for (release, want) in [
        (SimpleJwt::V5_4, json!(5870)),
        (SimpleJwt::V5_5_0, json!(5870)),
        (SimpleJwt::V5_5_1, json!("5870")),
    ] {
        sim.set_simplejwt(release);
        let token = issue(&sim).await;
        assert_eq!(jwt::claims(&token).unwrap()["user_id"], want, "{release:?}");
        assert_eq!(sim.user_id_claim(), want);
        // Both forms name the same user, as Django's `User.objects.get(id=…)` takes either.
        let (status, claims) = verify(&sim, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 200, "{release:?}: {claims}");
        assert_eq!(claims["user_id"], want);
    }
    sim.set_user_id_claim(Some(json!(true)));
    let token = issue(&sim).await;
    assert_eq!(jwt::claims(&token).unwrap()["user_id"], true);
}

#[tokio::test]
async fn verify_refuses_with_simplejwts_own_bodies() {
    let sim = StampsSim::start().await.unwrap();
    let good = issue(&sim).await;
    let forged = jwt::hs256(
        &json!({"token_type": "access", "exp": 4_000_000_000_i64, "jti": "a", "user_id": "5870"}),
        b"other",
    );
    let expired =
        sim.sign(r#"{"token_type":"access","exp":1000,"iat":0,"jti":"a","user_id":"5870"}"#);
    let refresh =
        sim.sign(r#"{"token_type":"refresh","exp":4000000000,"jti":"a","user_id":"5870"}"#);
    let no_jti = sim.sign(r#"{"token_type":"access","exp":4000000000,"user_id":"5870"}"#);
    let stranger = sim.sign(r#"{"token_type":"access","exp":4000000000,"jti":"a","user_id":"1"}"#);
    let bad_header = format!("Bearer {good} extra");
    let cases: Vec<(Option<String>, Value)> = vec![
        (
            None,
            json!({"detail": "Authentication credentials were not provided."}),
        ),
        (
            Some(format!("Token {good}")),
            json!({"detail": "Authentication credentials were not provided."}),
        ),
        (
            Some(bad_header),
            json!({"detail": "Authorization header must contain two space-delimited values", "code": "bad_authorization_header"}),
        ),
        (
            Some(format!("Bearer {forged}")),
            not_valid("Token is invalid"),
        ),
        (
            Some(format!("Bearer {expired}")),
            not_valid("Token is expired"),
        ),
        (
            Some(format!("Bearer {refresh}")),
            not_valid("Token has wrong type"),
        ),
        (
            Some(format!("Bearer {no_jti}")),
            not_valid("Token has no id"),
        ),
        (
            Some(format!("Bearer {stranger}")),
            json!({"detail": "User not found", "code": "user_not_found"}),
        ),
    ];
    for (auth, want) in cases {
        let (status, body) = verify(&sim, auth.as_deref()).await;
        assert_eq!((status, &body), (401, &want), "{auth:?}");
    }

    // simplejwt 5.4 and earlier did not tell an expired token from an invalid one.
    sim.set_simplejwt(SimpleJwt::V5_4);
    let (_, body) = verify(&sim, Some(&format!("Bearer {expired}"))).await;
    assert_eq!(body, not_valid("Token is invalid or expired"));
    sim.set_simplejwt(SimpleJwt::V5_5_1);

    // An inactive user: its valid JWT is refused by `get_user`, its key at get-access-token.
    sim.set_user_active(false);
    let (status, body) = verify(&sim, Some(&format!("Bearer {good}"))).await;
    assert_eq!(
        (status, body),
        (
            401,
            json!({"detail": "User is inactive", "code": "user_inactive"})
        )
    );
    let request = json!({"token": sim.auth_token(), "crm_merchant_id": 1}).to_string();
    let (status, body) = post_json(&sim, "api/auth/get-access-token/", &request).await;
    assert_eq!(
        (status, body),
        (401, json!({"detail": "User inactive or deleted."}))
    );
    sim.set_user_active(true);

    // DRF answers 403 when the view's first authenticator sends no WWW-Authenticate.
    sim.set_refusals_forbidden(true);
    let (status, body) = verify(&sim, Some(&format!("Bearer {forged}"))).await;
    assert_eq!((status, body), (403, not_valid("Token is invalid")));
    let wrong = json!({"token": "wrong", "crm_merchant_id": 1}).to_string();
    let (status, body) = post_json(&sim, "api/auth/get-access-token/", &wrong).await;
    assert_eq!((status, body), (403, json!({"detail": "Invalid token."})));
}

#[tokio::test]
async fn a_token_made_under_an_old_signing_key_is_refused() {
    let sim = StampsSim::start().await.unwrap();
    let old = issue(&sim).await;
    assert_eq!(verify(&sim, Some(&format!("Bearer {old}"))).await.0, 200);
    sim.set_signing_key(b"a-new-django-secret-key");
    let (status, body) = verify(&sim, Some(&format!("Bearer {old}"))).await;
    assert_eq!((status, body), (401, not_valid("Token is invalid")));
    let new = issue(&sim).await;
    assert_eq!(verify(&sim, Some(&format!("Bearer {new}"))).await.0, 200);
    assert!(jwt::verify_hs256(&new, b"a-new-django-secret-key").is_some());
}

#[tokio::test]
async fn ping_takes_drfs_token_and_simplejwts_bearer() {
    let sim = StampsSim::start().await.unwrap();
    let valid = issue(&sim).await;
    let pong = json!({"detail": "pong"});
    assert_eq!(
        ping(&sim, &format!("Token {}", sim.static_token())).await,
        (200, pong.clone())
    );
    assert_eq!(ping(&sim, &format!("Bearer {valid}")).await, (200, pong));
    assert_eq!(
        ping(&sim, "Token nope").await,
        (401, json!({"detail": "Invalid token."}))
    );
    assert_eq!(
        ping(&sim, "Token").await,
        (
            401,
            json!({"detail": "Invalid token header. No credentials provided."})
        )
    );
    assert_eq!(
        ping(&sim, "Basic dXNlcjpwYXNz").await,
        (
            401,
            json!({"detail": "Authentication credentials were not provided."})
        )
    );
    sim.set_user_active(false);
    assert_eq!(
        ping(&sim, &format!("Token {}", sim.static_token())).await,
        (401, json!({"detail": "User inactive or deleted."}))
    );
}
