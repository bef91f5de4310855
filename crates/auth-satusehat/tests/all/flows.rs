//! The request SATUSEHAT's document describes, as the simulator records it.

use auth_core::{FetchRequest, TokenSource, http::HttpConfig, provider::EnvProvider as _};
use auth_satusehat::{SatusehatSource, testing::CLIENT_SECRET};
use auth_testkit::{SimServer, Simulated};

#[tokio::test(flavor = "current_thread")]
async fn the_request_is_a_form_post_with_the_grant_in_the_query() {
    let sim = <SatusehatSource as Simulated>::start_simulator(SimServer::builder())
        .await
        .unwrap();
    let vars = sim.variables();
    let lookup = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
    let source = SatusehatSource::from_lookup(&lookup, HttpConfig::default()).unwrap();
    let now = auth_core::clock::Clock::now(&auth_core::SystemClock::new());
    let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
    assert!(fetched.token.expires_at().is_some());
    let request = sim.server().last_request().unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/oauth2/v1/accesstoken");
    assert_eq!(
        request.query_value("grant_type"),
        Some("client_credentials")
    );
    assert_eq!(
        request.mime().as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let form = request.form().unwrap();
    assert!(
        form.iter()
            .any(|(k, v)| k == "client_secret" && v == CLIENT_SECRET)
    );
}
