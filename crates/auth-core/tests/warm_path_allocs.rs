//! The warm path allocates nothing: a counting global allocator around 10,000 warm calls, of
//! a manager and of a token pool; and what an idle pool account holds, in bytes.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    time::Duration,
};

use auth_core::{FetchRequest, Fetched, Token, TokenManager, source::from_fn};
use futures_util::FutureExt;
use secrecy::SecretString;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed on this thread.
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn add_bytes(delta: i64) {
    // `try_with`: the allocator also runs while thread-locals are torn down
    let _ = LIVE_BYTES.try_with(|b| b.set(b.get() + delta));
}

fn size(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only counts and forwards to System"
)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        add_bytes(size(layout.size()));
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_bytes(-size(layout.size()));
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        add_bytes(size(new_size) - size(layout.size()));
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[tokio::test(flavor = "current_thread")]
async fn warm_token_calls_allocate_nothing() {
    let source = from_fn("alloc-test", |req: FetchRequest| async move {
        let token = Token::bearer(
            SecretString::from("warm"),
            req.sent_at,
            Some(req.sent_at + Duration::from_secs(3600)),
        )?;
        Ok(Fetched::new(token))
    });
    let manager = TokenManager::builder(source).build().unwrap();
    // cold: this one allocates (fetch, cache entry, task), which shows the counter counts
    let cold_before = allocations();
    let first = manager.token().await.unwrap();
    assert!(
        allocations() > cold_before,
        "the counting allocator sees allocations"
    );
    let generation = first.generation();
    drop(first);
    // warm up thread-locals (arc-swap's debt list, the counter stripe)
    drop(manager.token().await.unwrap());

    let before = allocations();
    for _ in 0..10_000 {
        let token = manager.token().await.unwrap();
        assert_eq!(token.generation(), generation);
    }
    // the same through a single poll, as a synchronous caller would
    for _ in 0..10_000 {
        let token = manager
            .token()
            .now_or_never()
            .expect("warm path completes on first poll")
            .unwrap();
        assert_eq!(token.generation(), generation);
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "the warm path allocated {} times",
        after - before
    );
}

#[tokio::test(flavor = "current_thread")]
async fn warm_pool_token_calls_allocate_nothing() {
    let pool = auth_core::TokenPool::<u64>::builder()
        .factory(|key: &u64| {
            let source = from_fn("alloc-test", |req: FetchRequest| async move {
                let token = Token::bearer(
                    SecretString::from("warm"),
                    req.sent_at,
                    Some(req.sent_at + Duration::from_secs(3600)),
                )?;
                Ok(Fetched::new(token))
            });
            Ok(auth_core::AccountSpec::new(
                source,
                auth_core::StoreKey::new(format!("alloc-test:{key}"))?,
            ))
        })
        .build()
        .unwrap();
    let cold_before = allocations();
    for key in 0..100 {
        drop(pool.token(&key).await.unwrap());
    }
    assert!(allocations() > cold_before, "the cold calls allocate");
    // warm up thread-locals (arc-swap's debt list, papaya's thread slot)
    drop(pool.token(&0).await.unwrap());

    let before = allocations();
    for i in 0..10_000u64 {
        let token = pool.token(&(i % 100)).await.unwrap();
        assert_eq!(token.header_value().len(), "Bearer warm".len());
    }
    for i in 0..10_000u64 {
        let token = pool
            .token(&(i % 100))
            .now_or_never()
            .expect("the warm path completes on first poll")
            .unwrap();
        drop(token);
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "the pool's warm path allocated {} times",
        after - before
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_pool_account_holds_at_most_a_kibibyte_beside_its_token() {
    use auth_core::{Clock as _, MemoryStore, StoreKey, StoredEntry, TokenStore as _};
    const KEYS: u64 = 2_000;
    let now = auth_core::SystemClock::new().now();
    let token = |key: u64| {
        Token::bearer(
            SecretString::from(format!("stored-token-{key}")),
            now,
            Some(now + Duration::from_secs(3600)),
        )
        .unwrap()
    };
    let store_key = |key: u64| StoreKey::new(format!("alloc-test:{key}"));
    let store = MemoryStore::new();
    for key in 0..KEYS {
        store
            .save(
                &store_key(key).unwrap(),
                &StoredEntry::with_token(token(key)),
                0,
            )
            .await
            .unwrap();
    }
    // the token's own share: its size, and what a copy of it allocates
    let sample = token(1234);
    let before = LIVE_BYTES.with(Cell::get);
    let copy = sample.clone();
    let token_bytes = LIVE_BYTES.with(Cell::get) - before + size(std::mem::size_of::<Token>());
    drop(copy);

    let pool = auth_core::TokenPool::<u64>::builder()
        .store(store)
        .factory(move |key: &u64| {
            let source = from_fn("alloc-test", |_: FetchRequest| async {
                Err(auth_core::Error::transient(
                    "not called: the store holds the token",
                ))
            });
            Ok(auth_core::AccountSpec::new(source, store_key(*key)?))
        })
        .build()
        .unwrap();
    let before = LIVE_BYTES.with(Cell::get);
    for key in 0..KEYS {
        drop(pool.token(&key).await.unwrap());
    }
    let per_account = (LIVE_BYTES.with(Cell::get) - before) / size(KEYS as usize);
    assert_eq!(pool.pool_stats().totals.fetches, 0);
    assert!(
        per_account - token_bytes <= 1024,
        "an idle account holds {per_account} bytes, {token_bytes} of them its token"
    );
}
