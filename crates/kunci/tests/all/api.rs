//! A simulated API that demands a token it knows, and a manager whose source issues tokens
//! to it: the setup the HTTP front-ends (reqwest middleware, tower layer) are tested against.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use auth_core::{
    FetchRequest, Fetched, MemoryStore, StoreKey, Token, TokenManager, source::from_fn,
};
use auth_testkit::{SimResponse, SimServer};
use secrecy::SecretString;

/// Tokens the API accepts; the source adds each token it issues unless told not to.
#[derive(Clone, Default)]
pub(crate) struct Api {
    pub(crate) accepted: Arc<Mutex<HashSet<String>>>,
    pub(crate) accept_new: Arc<AtomicBool>,
}

pub(crate) struct Harness {
    pub(crate) server: SimServer,
    pub(crate) api: Api,
    /// Tokens fetched so far; the n-th is `tok-n`.
    pub(crate) fetches: Arc<AtomicUsize>,
    pub(crate) manager: TokenManager,
}

/// The API on loopback (200 "hello" for a token it accepts, 401 otherwise) and a manager
/// over a source that issues `tok-1`, `tok-2`, … valid for an hour.
pub(crate) async fn start() -> Harness {
    let api = Api::default();
    api.accept_new.store(true, SeqCst);
    let accepted = api.accepted.clone();
    let server = SimServer::start(
        move |req: &auth_testkit::SimRequest, _ctx: &auth_testkit::SimContext| match req
            .authorization("Bearer")
        {
            Some(token) if accepted.lock().unwrap().contains(token) => {
                SimResponse::text(200, "hello")
            }
            _ => SimResponse::text(401, "unauthorized"),
        },
    )
    .await
    .unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let (counter, issued_to) = (fetches.clone(), api.clone());
    let source = from_fn("api", move |req: FetchRequest| {
        let n = counter.fetch_add(1, SeqCst) + 1;
        let secret = format!("tok-{n}");
        if issued_to.accept_new.load(SeqCst) {
            issued_to.accepted.lock().unwrap().insert(secret.clone());
        }
        async move {
            let token = Token::bearer(
                SecretString::from(secret),
                req.sent_at,
                Some(req.sent_at + Duration::from_secs(3600)),
            )?;
            Ok(Fetched::new(token))
        }
    });
    let manager = TokenManager::builder(source)
        .store(MemoryStore::new())
        .key(StoreKey::new("api:test").unwrap())
        .build()
        .unwrap();
    Harness {
        server,
        api,
        fetches,
        manager,
    }
}
