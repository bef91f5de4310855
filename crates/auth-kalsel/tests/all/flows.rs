use std::time::Duration;

use auth_core::{Clock as _, ErrorKind, FetchRequest, TokenSource as _};
use auth_kalsel::{JwtRejection, KalselSource};
use auth_testkit::kalsel::KalselSim;
use secrecy::{ExposeSecret as _, SecretString};

use crate::support::{REFRESH_POINT, client, clock, config, manager, setup, sim_builder};

#[tokio::test]
async fn rotation_is_persisted_before_the_token_is_handed_out() {
    let s = setup().await;
    let sent_at = s.clock.now();
    let token = s.manager.token().await.unwrap();
    let issued = s.sim.issued_tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(token.secret().expose_secret(), issued[0]);
    assert_eq!(
        token.expires_at(),
        Some(sent_at + Duration::from_secs(3600))
    );
    // By the time the caller holds the token, the store already holds it as the refresh token.
    let stored = s.stored().await.unwrap();
    assert_eq!(stored.refresh.as_ref().unwrap().expose_secret(), issued[0]);
    assert!(stored.token.unwrap().same_secret(&token));
    assert_eq!(s.sim.refresh_token(), issued[0]);
}

#[tokio::test]
async fn expiry_causes_exactly_one_request_with_the_rotated_token() {
    let s = setup().await;
    let first = s
        .manager
        .token()
        .await
        .unwrap()
        .secret()
        .expose_secret()
        .to_owned();
    for _ in 0..5 {
        s.manager.token().await.unwrap();
    }
    assert_eq!(s.sim.request_count(), 1);
    s.clock.advance(REFRESH_POINT);
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let m = s.manager.clone();
            tokio::spawn(async move {
                m.token()
                    .await
                    .map(|t| t.secret().expose_secret().to_owned())
            })
        })
        .collect();
    let mut secrets = Vec::new();
    for w in waiters {
        secrets.push(w.await.unwrap().unwrap());
    }
    assert_eq!(s.sim.request_count(), 2);
    assert!(secrets.iter().all(|t| t == &secrets[0]));
    assert_ne!(secrets[0], first);
    // The second refresh sent the first token, not the configured one.
    assert_eq!(
        s.sim.requests()[1].json().unwrap()["refresh_token"],
        first.as_str()
    );
    let stored = s.stored().await.unwrap();
    assert_eq!(stored.refresh.unwrap().expose_secret(), secrets[0]);
}

#[tokio::test]
async fn another_process_uses_the_stored_rotated_token_not_its_stale_configuration() {
    let s = setup().await;
    s.manager.token().await.unwrap();
    s.clock.advance(REFRESH_POINT);
    // A second "process" configured with the original (now superseded) refresh token, sharing
    // the store. The simulator accepts only the latest token, so success proves it used it.
    let other = manager(config(&s.sim), &s.store, &s.clock, Duration::from_secs(30));
    let token = other.token().await.unwrap();
    assert_eq!(s.sim.request_count(), 2);
    assert_eq!(s.sim.refresh_token(), token.secret().expose_secret());
    // The first manager adopts it from the store instead of refreshing again.
    s.manager.token().await.unwrap();
    assert_eq!(s.sim.request_count(), 2);
}

#[tokio::test]
async fn expired_is_corrected_for_the_servers_clock() {
    for skew_hours in [2, -3] {
        let clock = clock();
        let sim = KalselSim::start_with(
            sim_builder(&clock).clock_skew(auth_core::time::Duration::hours(skew_hours)),
        )
        .await
        .unwrap();
        let source = KalselSource::new(config(&sim), client(Duration::from_secs(30)));
        let now = clock.now();
        let fetched = source.fetch(FetchRequest::new(None, now)).await.unwrap();
        // The server says "expired = its now + 1 h"; in our clock that is our now + 1 h.
        assert_eq!(
            fetched.token.expires_at(),
            Some(now + Duration::from_secs(3600)),
            "skew {skew_hours} h"
        );
        assert_eq!(
            fetched.refresh.unwrap().expose_secret(),
            fetched.token.secret().expose_secret()
        );
    }
}

#[tokio::test]
async fn an_expired_refresh_token_requires_logging_in_again() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let expired = sim.expire_refresh_token();
    let config = auth_kalsel::KalselConfig::new(SecretString::from(expired.clone()))
        .unwrap()
        .with_base_url(&sim.base_url())
        .unwrap();
    let store = auth_core::MemoryStore::new();
    let m = manager(config, &store, &clock, Duration::from_secs(30));
    let err = m.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    assert!(
        err.to_string()
            .contains("log in again with username and password"),
        "{err}"
    );
    let source = std::error::Error::source(&err).unwrap();
    let rejection = source.downcast_ref::<JwtRejection>().unwrap();
    assert_eq!(rejection.status, 421);
    assert_eq!(rejection.error, "jwt_error");
    assert_eq!(rejection.message, "Token expired");
    assert_eq!(rejection.causes, ["token has expired"]);
    assert!(!format!("{err} {err:?}").contains(&expired));
}

#[tokio::test]
async fn a_421_after_rotation_keeps_the_stored_entry() {
    let s = setup().await;
    let token = s.manager.token().await.unwrap();
    let before = s.stored().await.unwrap();
    s.sim.expire_refresh_token();
    s.clock.advance(REFRESH_POINT);
    let err = s.manager.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);
    let after = s.stored().await.unwrap();
    assert_eq!(after.version, before.version);
    assert!(after.token.unwrap().same_secret(&token));
    assert_eq!(
        after.refresh.unwrap().expose_secret(),
        token.secret().expose_secret()
    );
}

#[tokio::test]
async fn source_name_key_and_debug() {
    let s = setup().await;
    let source = KalselSource::new(config(&s.sim), client(Duration::from_secs(1)));
    assert_eq!(source.name(), "kalsel");
    assert_eq!(source.store_key().as_str(), "kalsel:default");
    let printed = format!("{source:?}");
    assert!(
        !printed.contains(s.sim.initial_refresh_token()),
        "{printed}"
    );
}

/// After a 421, a person logs in again and configures the new refresh token. The stored
/// (rotated, now dead) one is tried first and rejected; the configured one is then used, so
/// the new login takes effect without deleting the stored entry by hand.
#[tokio::test]
async fn a_new_login_takes_effect_over_a_dead_stored_refresh_token() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let store = auth_core::MemoryStore::new();
    let first = manager(config(&sim), &store, &clock, Duration::from_secs(10));
    first.token().await.unwrap();
    // idle past the token's life: the stored refresh material has expired server-side
    clock.advance(Duration::from_secs(2 * 3600));
    let err = first.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReauthenticationRequired);

    let fresh = sim.login();
    let relogged = auth_kalsel::KalselConfig::new(SecretString::from(fresh.clone()))
        .unwrap()
        .with_base_url(&sim.base_url())
        .unwrap();
    let second = manager(relogged, &store, &clock, Duration::from_secs(10));
    let before = sim.request_count();
    let token = second.token().await.unwrap();
    assert_eq!(
        sim.request_count() - before,
        2,
        "the dead stored token, then the configured one"
    );
    let sent: Vec<String> = sim.requests()[before..]
        .iter()
        .map(|r| {
            r.json().unwrap()["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(sent[1], fresh);
    // and the rotation is stored, as always
    let stored = auth_core::TokenStore::load(&store, second.key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.refresh.unwrap().expose_secret(),
        token.secret().expose_secret()
    );
}

/// While the stored refresh token is accepted it wins over the configured one (in a fleet it is
/// the newest), so a process configured with an old token keeps working.
#[tokio::test]
async fn a_valid_stored_refresh_token_wins_over_the_configured_one() {
    let clock = clock();
    let sim = KalselSim::start_with(sim_builder(&clock)).await.unwrap();
    let store = auth_core::MemoryStore::new();
    let first = manager(config(&sim), &store, &clock, Duration::from_secs(10));
    let issued = first.token().await.unwrap();
    clock.advance(REFRESH_POINT);
    let before = sim.request_count();
    let second = manager(config(&sim), &store, &clock, Duration::from_secs(10));
    second.token().await.unwrap();
    assert_eq!(sim.request_count() - before, 1);
    let sent = sim.last_request().unwrap().json().unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sent,
        issued.secret().expose_secret(),
        "the stored, rotated token was used"
    );
}
