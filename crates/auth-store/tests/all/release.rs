//! A release the store did not answer (the connection cut while the holder released) is
//! retried in the background: once the store answers again the lease is free, long before its
//! life would have run out — the fleet, this process included, is not kept waiting for it.

use std::time::Duration;

use auth_core::{SharedTokenStore, StoreKey};

use crate::servers::Proxy;

/// The lease's life: far longer than the wait the test allows after the store returns.
const LIFE: Duration = Duration::from_secs(120);
/// How long the next holder may wait once the store answers again.
const WAIT: Duration = Duration::from_secs(15);

/// A key of the test's own, `name:<random>`.
fn random_key(name: &str) -> StoreKey {
    StoreKey::new(format!("{name}:{:08x}", fastrand::u32(..))).unwrap()
}

/// `direct` takes the lease under `key` within [`WAIT`] (it was freed, `why`), and releases it.
async fn taken_in_time(direct: &SharedTokenStore, key: &StoreKey, why: &str) {
    let next = tokio::time::timeout(WAIT, direct.lock(key, LIFE))
        .await
        .expect(why)
        .unwrap();
    next.release().await.unwrap();
}

/// Takes the lease through `proxy`, cuts the proxy, releases (which fails), restores it, then
/// takes the lease from `direct` (not through the proxy).
async fn release_lost_in_an_outage(
    via_proxy: impl Into<SharedTokenStore>,
    direct: impl Into<SharedTokenStore>,
    proxy: &Proxy,
) {
    let (via_proxy, direct) = (via_proxy.into(), direct.into());
    let key = random_key("release");
    let held = via_proxy.lock(&key, LIFE).await.unwrap();
    proxy.cut();
    assert!(
        held.release().await.is_err(),
        "the release went through a cut connection"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    taken_in_time(
        &direct,
        &key,
        "the lease was freed once the store answered, not left to its whole life",
    )
    .await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_release_lost_in_an_outage_frees_the_lease_once_the_store_answers() {
    use auth_store::{RedisOptions, RedisStore};
    let Some(server) = crate::servers::RedisServer::start("127.0.0.1", None) else {
        return;
    };
    let proxy = Proxy::start(&server.addr());
    let options = RedisOptions::default().timeout(Duration::from_millis(500));
    let via_proxy = RedisStore::connect(&format!("redis://{}", proxy.addr()), options.clone())
        .await
        .unwrap();
    let direct = RedisStore::connect(&server.url(), options).await.unwrap();
    release_lost_in_an_outage(via_proxy, direct, &proxy).await;
}

/// The test's own PostgreSQL cluster, a proxy in front of it, a store through the proxy (with
/// `pool_size` connections) and one straight to the cluster.
#[cfg(feature = "postgres")]
async fn postgres_behind_a_proxy(
    pool_size: usize,
) -> Option<(
    crate::servers::PgCluster,
    Proxy,
    auth_store::PostgresStore,
    auth_store::PostgresStore,
)> {
    use auth_store::{PostgresOptions, PostgresStore};
    let cluster = crate::servers::PgCluster::start("127.0.0.1", None)?;
    let proxy = Proxy::start(&cluster.addr());
    let options = PostgresOptions::default().timeout(Duration::from_millis(500));
    let via_proxy = PostgresStore::connect(
        &format!("postgres://postgres@{}/postgres", proxy.addr()),
        options.clone().pool_size(pool_size),
    )
    .await
    .unwrap();
    let direct = PostgresStore::connect(&cluster.url(), options)
        .await
        .unwrap();
    Some((cluster, proxy, via_proxy, direct))
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_release_lost_in_an_outage_frees_the_lease_once_the_store_answers() {
    let Some((_cluster, proxy, via_proxy, direct)) =
        postgres_behind_a_proxy(auth_store::PostgresOptions::default().pool_size).await
    else {
        return;
    };
    release_lost_in_an_outage(via_proxy, direct, &proxy).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_lease_taken_with_its_reply_lost_is_freed_once_the_store_answers() {
    use auth_core::TokenStore as _;
    // One connection, so the statements prepared by the warm-up below are the ones used next
    // (the taking is then one message, which reaches the server).
    let Some((cluster, proxy, via_proxy, direct)) = postgres_behind_a_proxy(1).await else {
        return;
    };
    let warm = random_key("release-warm");
    via_proxy
        .lock(&warm, LIFE)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let key = random_key("release");
    // The statement that takes the lease reaches the server; its answer never comes back.
    proxy.swallow_replies();
    assert!(
        via_proxy.lock(&key, LIFE).await.is_err(),
        "the lease was taken without an answer"
    );
    let (raw, connection) = tokio_postgres::connect(&cluster.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows: i64 = raw
        .query_one(
            "SELECT count(*) FROM kunci_tokens_lease WHERE key = $1",
            &[&key.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rows, 1,
        "the statement taking the lease ran (a freed lease keeps its row)"
    );
    proxy.restore();
    taken_in_time(
        &direct.into(),
        &key,
        "the lease taken without an answer was freed once the store answered",
    )
    .await;
}
