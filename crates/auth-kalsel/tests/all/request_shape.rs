use std::time::Duration;

use auth_core::{Clock as _, FetchRequest, TokenSource as _};
use auth_kalsel::KalselSource;
use auth_testkit::kalsel::KalselSim;
use http::Method;

use crate::support::{clock, config, http_config, setup, sim_builder};

#[tokio::test]
async fn posts_json_with_the_refresh_token_and_no_limit_by_default() {
    let s = setup().await;
    s.manager.token().await.unwrap();
    let requests = s.sim.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/api/v1/refresh");
    assert!(r.query.is_empty() && r.raw_query.is_none());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert!(r.header("authorization").is_none());
    let body = r.json().unwrap();
    let body = body.as_object().unwrap();
    assert_eq!(
        body.len(),
        1,
        "`limit` is omitted when not configured: {body:?}"
    );
    assert_eq!(body["refresh_token"], s.sim.initial_refresh_token());
}

#[tokio::test]
async fn sends_the_configured_limit_and_keeps_the_path_prefix() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock).path_prefix("/proxy/kalsel/"))
        .await
        .unwrap();
    let config = config(&sim).with_token_lifetime_minutes(10).unwrap();
    let source = KalselSource::new(config, http_config(Duration::from_secs(30))).unwrap();
    let now = clock.now();
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    // limit 10 → the token lives 600 s
    assert_eq!(
        fetched.token.expires_at(),
        Some(now + Duration::from_secs(600))
    );
    let r = sim.last_request().unwrap();
    assert_eq!(r.full_path, "/proxy/kalsel/api/v1/refresh");
    assert_eq!(
        r.json().unwrap(),
        serde_json::json!({"refresh_token": sim.initial_refresh_token(), "limit": 10})
    );
}
