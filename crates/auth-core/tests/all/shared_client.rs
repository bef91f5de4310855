//! One HTTP client for every account of a pool: many accounts against one server share a
//! connection pool, instead of opening a connection (and a TLS configuration) each.

use std::time::Duration;

use auth_core::{
    AccountSpec, Error, Fetched, MemoryStore, StoreKey, Token, TokenPool,
    http::{HttpClient, HttpConfig, Method, Url},
    secrecy::SecretString,
    source::from_fn,
};

use crate::servers::Responder;

const ACCOUNTS: usize = 64;
const CONCURRENCY: usize = 8;

/// The account `key`, whose source asks `url` through `http` (as a provider source built with
/// `XSource::new(config, http)` does).
fn account(key: usize, http: HttpClient, url: Url) -> AccountSpec {
    let secret = SecretString::from(format!("secret-of-{key}"));
    let http = http.with_secrets([&secret]);
    let source = from_fn(
        "shared-client-test",
        move |request: auth_core::FetchRequest| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let sent = http.request(Method::POST, url)?;
                let response = http.send("acme", sent).await?;
                assert_eq!(response.status.as_u16(), 200);
                let token = Token::bearer(
                    SecretString::from(format!("tok-{key}")),
                    request.sent_at,
                    Some(request.sent_at + Duration::from_secs(3600)),
                )?;
                Ok::<_, Error>(Fetched::new(token))
            }
        },
    );
    AccountSpec::new(
        source,
        StoreKey::new(format!("shared-client:{key}")).unwrap(),
    )
}

/// Warms `ACCOUNTS` accounts at once, each built by `client_for`, and returns how many
/// connections the server accepted.
async fn connections_for(client_for: impl Fn() -> HttpClient + Send + Sync + 'static) -> usize {
    let server = Responder::keep_alive("{}").await;
    let url = Url::parse(&format!("http://127.0.0.1:{}/token", server.addr.port())).unwrap();
    let pool = TokenPool::builder()
        .store(MemoryStore::new())
        .concurrency(CONCURRENCY)
        .factory(move |key: &usize| Ok(account(*key, client_for(), url.clone())))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for key in 0..ACCOUNTS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(
            async move { pool.token(&key).await.map(|_| ()) },
        ));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(pool.pool_stats().totals.fetches, ACCOUNTS as u64);
    server.connections()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_of_a_pool_sharing_one_client_share_its_connections() {
    let shared = HttpClient::new(HttpConfig::default());
    let handle = shared.clone();
    let shared_connections = connections_for(move || handle.clone()).await;
    assert!(
        shared.is_built(),
        "the one client was built by the accounts' requests"
    );
    // Never one per account: about what the concurrency bound keeps in flight at once (8 to
    // 11 seen: hyper may start a connection just as another returns to its idle pool). The
    // bound is loose so a loaded machine cannot fail it; the control below is exact.
    assert!(
        shared_connections <= ACCOUNTS / 2,
        "{shared_connections} connections for {ACCOUNTS} accounts"
    );

    // The control: a client per account opens a connection per account.
    let own_connections = connections_for(|| HttpClient::new(HttpConfig::default())).await;
    assert_eq!(own_connections, ACCOUNTS);
}
