use std::time::Duration;

use auth_testkit::krmpesan::KrmPesanSim;
use http::Method;

use crate::support::{clock, config, setup, sim_builder};

#[tokio::test]
async fn sends_get_tokens_with_refresh_token_and_device_key() {
    let s = setup().await;
    s.manager.token().await.unwrap();
    let requests = s.sim.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, Method::GET);
    assert_eq!(r.path, "/tokens");
    assert_eq!(r.query_names(), ["refresh_token", "device_key"]);
    assert_eq!(r.query_value("refresh_token"), Some(s.sim.refresh_token()));
    assert_eq!(r.query_value("device_key"), Some(s.sim.device_key()));
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("accept"), Some("application/json"));
    assert!(r.header("authorization").is_none());
    assert!(r.header("user-agent").unwrap().starts_with("kunci/"));
}

#[tokio::test]
async fn keeps_the_base_url_path_prefix() {
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock).path_prefix("/gateway/krm"))
        .await
        .unwrap();
    let source = auth_krmpesan::KrmPesanSource::new(
        config(&sim),
        crate::support::http_config(Duration::from_secs(30)),
    )
    .unwrap();
    let token = auth_core::TokenSource::fetch(
        &source,
        auth_core::FetchRequest::new(None, clock_now(&clock)),
    )
    .await
    .unwrap();
    assert!(token.token.expires_at().is_some());
    assert_eq!(sim.last_request().unwrap().full_path, "/gateway/krm/tokens");
}

fn clock_now(clock: &std::sync::Arc<auth_core::ManualClock>) -> auth_core::time::OffsetDateTime {
    auth_core::Clock::now(&**clock)
}

#[tokio::test]
async fn query_values_are_percent_encoded() {
    // Cognito refresh tokens are base64url with dots; anything else must survive the query too.
    let clock = clock();
    let sim = KrmPesanSim::start_with(sim_builder(&clock)).await.unwrap();
    let source = auth_krmpesan::KrmPesanSource::new(
        config(&sim),
        crate::support::http_config(Duration::from_secs(30)),
    )
    .unwrap();
    let odd = secrecy::SecretString::from("a+b/c=d&e".to_owned());
    let err = auth_core::TokenSource::fetch(
        &source,
        auth_core::FetchRequest::new(Some(odd), clock_now(&clock)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), auth_core::ErrorKind::ReauthenticationRequired);
    let r = sim.last_request().unwrap();
    assert_eq!(r.query_value("refresh_token"), Some("a+b/c=d&e"));
    assert!(r.raw_query.unwrap().contains("a%2Bb%2Fc%3Dd%26e"));
}
