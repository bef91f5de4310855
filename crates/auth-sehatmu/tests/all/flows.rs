//! Request shape and both success shapes.

use std::time::Duration;

use auth_core::{MemoryStore, TokenStore, time::OffsetDateTime};
use auth_testkit::{
    SimServer,
    sehatmu::{ResponseShape, SehatMuSim},
};
use http::Method;
use secrecy::ExposeSecret;

use crate::support::{clock, manager, sim, source};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "current_thread")]
async fn token_request_has_the_documented_shape() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    let store = MemoryStore::new();
    let source = source(&sim, &clock);
    let manager = manager(&source, &store, &clock);
    let token = manager.token().await.unwrap();

    let requests = sim.requests();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.full_path, "/oauth/token");
    assert_eq!(
        req.raw_query.as_deref(),
        Some("grant_type=client_credentials")
    );
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.header("authorization"), None);
    let form = req.form().unwrap();
    assert_eq!(
        form,
        [
            ("client_id".to_owned(), sim.client_id().to_owned()),
            ("client_secret".to_owned(), sim.client_secret().to_owned()),
        ]
    );

    assert_eq!(
        token.header_value().to_str().unwrap(),
        format!("Bearer {}", sim.issued_tokens()[0])
    );
    assert_eq!(
        manager.key().as_str(),
        format!("sehatmu:{}", sim.client_id())
    );
    let stored = store.load(manager.key()).await.unwrap().unwrap();
    assert!(stored.token.unwrap().same_secret(&token));
}

#[tokio::test(flavor = "current_thread")]
async fn odd_characters_are_form_encoded_and_a_prefix_is_kept() {
    let clock = clock();
    let sim = SehatMuSim::start_with(
        SimServer::builder()
            .path_prefix("/gw")
            .clock(auth_core::SharedClock::from(clock.clone())),
    )
    .await
    .unwrap();
    // A secret with characters that need encoding is refused by the simulator (not its
    // secret), but it must arrive intact.
    let secret = "a+b&c=d %e/é";
    let source = crate::support::source_with_secret(&sim, secret, &clock);
    let _ = auth_core::TokenSource::fetch(
        &*source,
        auth_core::FetchRequest::new(None, clock_now(&clock)),
    )
    .await;
    let req = sim.last_request().unwrap();
    assert_eq!(req.full_path, "/gw/oauth/token");
    assert_eq!(
        req.form().unwrap()[1],
        ("client_secret".to_owned(), secret.to_owned())
    );
}

fn clock_now(clock: &std::sync::Arc<auth_core::ManualClock>) -> OffsetDateTime {
    auth_core::Clock::now(&**clock)
}

#[tokio::test(flavor = "current_thread")]
async fn camel_case_answer_with_metadata() {
    let clock = clock();
    let sim = sim(&clock, HOUR).await;
    let source = source(&sim, &clock);
    let manager = manager(&source, &MemoryStore::new(), &clock);
    let sent_at = clock_now(&clock);
    let token = manager.token().await.unwrap();
    assert_eq!(token.expires_at(), Some(sent_at + HOUR));
    assert_eq!(token.secret().expose_secret().len(), 40);

    let metadata = source.last_metadata().unwrap();
    assert_eq!(metadata.client_id.as_deref(), Some(sim.client_id()));
    assert_eq!(
        metadata.client.as_ref().unwrap().name.as_deref(),
        Some("John Doe System")
    );
    assert_eq!(
        metadata.user_id.as_deref(),
        Some("64eb3286e34e01fa5887d9b6")
    );
    assert_eq!(
        metadata.user.as_ref().unwrap().email.as_deref(),
        Some("john.doe@example.com")
    );

    // Refreshed after it expires, once.
    clock.advance(HOUR + Duration::from_secs(1));
    let second = manager.token().await.unwrap();
    assert!(!second.same_secret(&token));
    assert_eq!(sim.request_count(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn snake_case_answer_counts_expires_in_from_sending() {
    let clock = clock();
    let sim = sim(&clock, Duration::from_secs(900)).await;
    sim.set_shape(ResponseShape::SnakeCase);
    let source = source(&sim, &clock);
    let manager = manager(&source, &MemoryStore::new(), &clock);
    let sent_at = clock_now(&clock);
    let token = manager.token().await.unwrap();
    assert_eq!(token.expires_at(), Some(sent_at + Duration::from_secs(900)));
    assert_eq!(
        token.header_value().to_str().unwrap(),
        format!("Bearer {}", sim.issued_tokens()[0])
    );
    assert_eq!(
        source.last_metadata().unwrap().client_id,
        None,
        "the snake_case shape names it client_id"
    );
}
