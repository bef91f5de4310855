//! The simulator against the server's code, one rule per test (see the module docs for the
//! files of `muchlist/KalselDevApi` each rule comes from).
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use serde_json::{Value, json};

use super::*;
use crate::jwt::claims;

struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    remaining: Option<String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }
}

/// The simulator and one client for a test (building a client reads the root certificates).
struct Api {
    sim: KalselSim,
    client: reqwest::Client,
}

impl Deref for Api {
    type Target = KalselSim;
    fn deref(&self) -> &KalselSim {
        &self.sim
    }
}

async fn start() -> Api {
    auth_core::http::ensure_crypto_provider().unwrap();
    Api {
        sim: KalselSim::start().await.unwrap(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

async fn send(sim: &Api, method: Method, path: &str, content_type: &str, body: &str) -> Answer {
    let response = sim
        .client
        .request(method, sim.url(path))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: response.status().as_u16(),
        content_type: header("content-type").unwrap_or_default(),
        retry_after: header("retry-after"),
        remaining: header("x-ratelimit-remaining"),
        text: response.text().await.unwrap(),
    }
}

async fn post(sim: &Api, path: &str, body: &Value) -> Answer {
    send(
        sim,
        Method::POST,
        path,
        "application/json",
        &body.to_string(),
    )
    .await
}

async fn refresh(sim: &Api, body: &Value) -> Answer {
    post(sim, "/api/v1/refresh", body).await
}

fn now(sim: &KalselSim) -> i64 {
    sim.now().unix_timestamp()
}

fn assert_jwt_error(answer: &Answer, cause: &str) {
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(
        answer.text,
        format!(
            r#"{{"status":422,"message":"Token tidak valid","error":"jwt_error","causes":[{}]}}"#,
            Value::from(cause)
        )
    );
}

#[tokio::test]
async fn login_answers_the_dto_fields_with_a_seven_day_refresh_token_and_a_fresh_access_token() {
    let sim = start().await;
    let answer = post(
        &sim,
        "/api/v1/login",
        &json!({"email": "WHOIS.Muchlis@gmail.com", "password": PASSWORD, "limit": 60}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.content_type, "application/json");
    let body = answer.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "email",
        "name",
        "is_admin",
        "avatar",
        "access_token",
        "refresh_token",
        "expired",
    ];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(body["email"], EMAIL, "the email is lower-cased");
    let now = now(&sim);
    assert!((body["expired"].as_i64().unwrap() - (now + 3600)).abs() <= 1);

    let refresh = body["refresh_token"].as_str().unwrap();
    let header = URL_SAFE_NO_PAD_DECODE(refresh.split('.').next().unwrap());
    assert_eq!(header, r#"{"alg":"HS256","typ":"JWT"}"#);
    let r = claims(refresh).unwrap();
    assert_eq!(r["type"], 1);
    assert_eq!(r["fresh"], false);
    assert_eq!(r["identity"], EMAIL);
    assert_eq!(r["name"], NAME);
    assert_eq!(r["is_admin"], true);
    let seven_days = i64::try_from(REFRESH_LIFETIME.as_secs()).unwrap();
    assert!(
        (r["exp"].as_i64().unwrap() - (now + seven_days)).abs() <= 1,
        "7 days whatever the limit"
    );
    let payload = URL_SAFE_NO_PAD_DECODE(refresh.split('.').nth(1).unwrap());
    assert!(
        payload.starts_with(r#"{"exp":"#) && payload.contains(r#""fresh":false,"identity":"#),
        "{payload}"
    );

    let a = claims(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(
        (a["type"].as_i64(), a["fresh"].as_bool()),
        (Some(0), Some(true))
    );
    assert_eq!(a["exp"], body["expired"]);
}

#[allow(non_snake_case, reason = "reads like the constant it uses")]
fn URL_SAFE_NO_PAD_DECODE(segment: &str) -> String {
    String::from_utf8(GO_URL.decode(segment).unwrap()).unwrap()
}

#[tokio::test]
async fn login_refuses_wrong_credentials_with_401_and_invalid_input_with_400() {
    let sim = start().await;
    for body in [
        json!({"email": EMAIL, "password": "wrong-password"}),
        json!({"email": "nobody@example.com", "password": PASSWORD}),
    ] {
        let answer = post(&sim, "/api/v1/login", &body).await;
        assert_eq!(answer.status, 401);
        assert_eq!(
            answer.text,
            r#"{"status":401,"message":"Username atau password tidak valid","error":"unauthorized","causes":[]}"#
        );
    }
    let cases = [
        (
            json!({}),
            "email: cannot be blank; password: cannot be blank.",
        ),
        (
            json!({"email": "not-an-email", "password": "ab"}),
            "email: must be a valid email address; password: the length must be between 3 and 20.",
        ),
        (
            json!({"email": EMAIL, "password": "x".repeat(21)}),
            "password: the length must be between 3 and 20.",
        ),
    ];
    for (body, message) in cases {
        let answer = post(&sim, "/api/v1/login", &body).await;
        assert_eq!(answer.status, 400);
        assert_eq!(answer.json()["message"], message);
        assert_eq!(answer.json()["error"], "bad_request");
    }
}

#[tokio::test]
async fn refresh_answers_only_an_access_token_and_never_rotates() {
    let sim = start().await;
    let refresh_token = sim.refresh_token();
    let exp_before = claims(&refresh_token).unwrap()["exp"].clone();
    let mut issued = Vec::new();
    for _ in 0..3 {
        let answer = refresh(&sim, &json!({"refresh_token": refresh_token, "limit": 10})).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let body = answer.json();
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "no refresh token: {body}"
        );
        let access = body["access_token"].as_str().unwrap().to_owned();
        let c = claims(&access).unwrap();
        assert_eq!(
            (c["type"].as_i64(), c["fresh"].as_bool()),
            (Some(0), Some(false))
        );
        assert_eq!(c["exp"], body["expired"]);
        issued.push(access);
        sim.set_clock_skew(time::Duration::seconds(
            i64::try_from(issued.len()).unwrap(),
        ));
    }
    assert_eq!(
        sim.refresh_token(),
        refresh_token,
        "the same refresh token keeps working"
    );
    assert_eq!(claims(&sim.refresh_token()).unwrap()["exp"], exp_before);
    assert_eq!(sim.issued_tokens().len(), 3);
}

#[tokio::test]
async fn an_access_token_sent_as_refresh_token_is_not_a_refresh_token() {
    let sim = start().await;
    let answer = refresh(&sim, &json!({"refresh_token": sim.access_token()})).await;
    assert_jwt_error(&answer, "not a refresh token");
    // and so is the access token a refresh answered
    let access = refresh(&sim, &json!({"refresh_token": sim.refresh_token()}))
        .await
        .json()["access_token"]
        .clone();
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": access})).await,
        "not a refresh token",
    );
}

#[tokio::test]
async fn invalid_tokens_get_422_with_jwt_gos_text() {
    let sim = start().await;
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": sim.expired_refresh_token()})).await,
        "Token is expired",
    );
    // the refresh token itself expires after 7 days
    let token = sim.refresh_token();
    sim.set_clock_skew(time::Duration::seconds(
        i64::try_from(REFRESH_LIFETIME.as_secs()).unwrap() + 1,
    ));
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": token})).await,
        "Token is expired",
    );
    sim.set_clock_skew(time::Duration::ZERO);

    let (head, rest) = token.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    let forged = format!("{head}.{payload}.{}", "A".repeat(43));
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": forged})).await,
        "signature is invalid",
    );
    let other_key = jwt::hs256_raw(HEADER, &URL_SAFE_NO_PAD_DECODE(payload), b"rahasia");
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": other_key})).await,
        "signature is invalid",
    );
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": "not-a-jwt"})).await,
        "token contains an invalid number of segments",
    );
    let rs256 = jwt::rs256_looking(&claims(&token).unwrap(), "kid");
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": rs256})).await,
        "message: Token signing method salah - status: 422 - error: jwt_error - causes: [ [] ]",
    );
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": "e30.e30.x"})).await,
        "signing method (alg) is unspecified.",
    );
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": "!!!!.e30.x"})).await,
        "illegal base64 data at input byte 0",
    );
}

#[tokio::test]
async fn limit_is_clamped_as_the_server_does_and_has_no_minimum() {
    let sim = start().await;
    let token = sim.refresh_token();
    let week = i64::try_from(DEFAULT_LIFETIME.as_secs()).unwrap();
    for (limit, life) in [
        (json!(null), week),
        (json!(0), week),
        (json!(10_081), week),
        (json!(i64::MAX), week),
        (json!(10_080), week),
        (json!(10), 600),
        (json!(1), 60),
        (json!(-5), -300),
    ] {
        let answer = refresh(&sim, &json!({"refresh_token": token, "limit": limit})).await;
        assert_eq!(answer.status, 200, "{limit}: {}", answer.text);
        let expired = answer.json()["expired"].as_i64().unwrap();
        assert!(
            (expired - (now(&sim) + life)).abs() <= 1,
            "limit {limit}: {expired}"
        );
    }
    for bad in [json!("10"), json!(10.5), json!(1e3), json!(true)] {
        let answer = refresh(&sim, &json!({"refresh_token": token, "limit": bad})).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains("limit of type int"),
            "{}",
            answer.text
        );
    }
    let ignored = refresh(
        &sim,
        &json!({"refresh_token": token, "unknown": 1, "Limit": 10}),
    )
    .await;
    assert_eq!(
        ignored.status, 200,
        "unknown fields are ignored, names match case-insensitively"
    );
    let expired = ignored.json()["expired"].as_i64().unwrap();
    assert!((expired - (now(&sim) + 600)).abs() <= 1);
}

#[tokio::test]
async fn thirty_requests_a_minute_then_429_until_the_window_ends() {
    let sim = start().await;
    let token = sim.refresh_token();
    for i in 0..RATE_LIMIT {
        let answer = refresh(&sim, &json!({"refresh_token": token})).await;
        assert_eq!(answer.status, 200, "request {i}");
        assert_eq!(answer.remaining, Some((RATE_LIMIT - i - 1).to_string()));
    }
    // every path counts, refused requests too
    for _ in 0..2 {
        let answer = send(&sim, Method::GET, "/nowhere", "text/plain", "").await;
        assert_eq!(answer.status, 429);
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(
            answer.text,
            r#"{"status":429,"message":"terlalu banyak request","error":"rate_limiter","causes":["too many requests in a given amount of time"]}"#
        );
        let retry: i64 = answer.retry_after.unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    sim.set_clock_skew(time::Duration::seconds(61));
    assert_eq!(
        refresh(&sim, &json!({"refresh_token": token})).await.status,
        200,
        "a new window"
    );
    sim.set_rate_limit(None);
    for _ in 0..40 {
        assert_eq!(
            refresh(&sim, &json!({"refresh_token": token})).await.status,
            200
        );
    }
}

#[tokio::test]
async fn a_deleted_account_gets_404_not_found_on_refresh() {
    let sim = start().await;
    sim.delete_account();
    let answer = refresh(&sim, &json!({"refresh_token": sim.refresh_token()})).await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.text,
        format!(
            r#"{{"status":404,"message":"User dengan Email {EMAIL} tidak ditemukan","error":"not_found","causes":[]}}"#
        )
    );
}

#[tokio::test]
async fn routes_methods_and_bodies_as_fiber_answers_them() {
    let sim = start().await;
    let token = sim.refresh_token();
    let body = json!({"refresh_token": token}).to_string();
    let wrong_path = send(
        &sim,
        Method::POST,
        "/api/v1/token",
        "application/json",
        &body,
    )
    .await;
    assert_eq!(
        (wrong_path.status, wrong_path.text.as_str()),
        (404, "Cannot POST /api/v1/token")
    );
    let wrong_method = send(&sim, Method::GET, "/api/v1/refresh", "application/json", "").await;
    assert_eq!(
        (wrong_method.status, wrong_method.text.as_str()),
        (405, "Method Not Allowed")
    );
    let trailing = send(
        &sim,
        Method::POST,
        "/API/v1/Refresh/",
        "application/json; charset=utf-8",
        &body,
    )
    .await;
    assert_eq!(
        trailing.status, 200,
        "case-insensitive, trailing slash allowed"
    );
    let plain_text = send(&sim, Method::POST, "/api/v1/refresh", "text/plain", &body).await;
    assert_eq!(plain_text.status, 400);
    assert_eq!(plain_text.json()["message"], "Unprocessable Entity");
    let form = send(
        &sim,
        Method::POST,
        "/api/v1/refresh",
        "application/x-www-form-urlencoded",
        "refresh_token=x",
    )
    .await;
    assert_eq!(form.json()["message"], "refresh_token: cannot be blank.");
    for blank in [
        json!({}),
        json!({"refresh_token": ""}),
        json!({"refresh_token": null}),
    ] {
        let answer = refresh(&sim, &blank).await;
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.text,
            r#"{"status":400,"message":"refresh_token: cannot be blank.","error":"bad_request","causes":[]}"#
        );
    }
    let array = send(
        &sim,
        Method::POST,
        "/api/v1/refresh",
        "application/json",
        "[]",
    )
    .await;
    assert_eq!(array.status, 400);
    let truncated = send(
        &sim,
        Method::POST,
        "/api/v1/refresh",
        "application/json",
        r#"{"refresh_token": "#,
    )
    .await;
    assert_eq!(truncated.json()["message"], "unexpected end of JSON input");
    let ping = send(&sim, Method::GET, "/api/v1/ping", "text/plain", "").await;
    assert_eq!(ping.json()["msg"], "PONG!");
}

#[tokio::test]
async fn a_signed_token_with_a_past_exp_is_expired_even_with_type_1() {
    let sim = start().await;
    let past = sim.sign(&json!({"exp": now(&sim) - 1, "fresh": false, "identity": EMAIL, "is_admin": true, "name": NAME, "type": 1}));
    assert_jwt_error(
        &refresh(&sim, &json!({"refresh_token": past})).await,
        "Token is expired",
    );
    let in_two_seconds = sim.sign(&json!({"exp": now(&sim) + 2, "fresh": false, "identity": EMAIL, "is_admin": true, "name": NAME, "type": 1}));
    assert_eq!(
        refresh(&sim, &json!({"refresh_token": in_two_seconds}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_server_built_without_rate_limits_answers_every_request_as_for_its_own_host() {
    auth_core::http::ensure_crypto_provider().unwrap();
    let sim = Api {
        sim: KalselSim::start_with(SimServer::builder().without_rate_limits())
            .await
            .unwrap(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    let token = sim.refresh_token();
    for i in 0..RATE_LIMIT * 2 {
        let answer = refresh(&sim, &json!({"refresh_token": token})).await;
        assert_eq!(answer.status, 200, "request {i}");
        assert_eq!(answer.remaining, None, "no limit, no X-RateLimit headers");
    }
}
