//! Model-based test: several managers (processes on one host) share one store and one provider
//! and are driven through random operations — calls, 401s, monotonic, wall and suspend time
//! steps, store faults, source failures and panics. After every step the invariants of
//! `docs/architecture.md` are checked against a model of true time and of the provider:
//!
//! - no call hands out a token that is expired in true time;
//! - the refresh material the provider accepts now is never lost: it is in the store, or a
//!   manager holds it pending a save;
//! - a valid token in the store is always served (when the store itself works);
//! - at most one request is in flight per key (unless a lock was made to be lost);
//! - once the faults stop, every manager recovers.
//!
//! `cargo test` runs a fixed budget of cases (24); `KUNCI_MODEL_CASES=5000 cargo test -p
//! auth-core --test model --release` runs as many as asked. A failure prints the shrunk list of
//! operations that breaks an invariant.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::{collections::HashMap, sync::Arc, time::Duration};

use auth_core::{
    Credential, Error, ManualClock, MemoryStore, RefreshPolicy, SharedClock, StoreKey, TokenId,
    TokenManager,
    testing::{Fault, FaultyStore, ScriptedSource, Step, StoreOp},
    time::{OffsetDateTime, macros::datetime},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use secrecy::{ExposeSecret as _, SecretString};

const T0: OffsetDateTime = datetime!(2026-11-22 08:00 UTC);
const MANAGERS: usize = 3;
/// Every token lives 10 minutes: skew allowance 30 s, window 60-90 s.
const LIFETIME: Duration = Duration::from_secs(600);
/// How far the wall clock may fall back behind the furthest it has been ahead (see `WallStep`).
const MAX_FALL_BACK: i64 = 10;

#[derive(Clone, Debug)]
enum Op {
    /// Manager `m` asks for a token.
    Call(usize),
    /// Every manager asks at once.
    CallAll,
    /// The API rejects the token manager `m` handed out last (a 401).
    Invalidate(usize),
    /// Both clocks move forward.
    Advance(u64),
    /// The machine sleeps: the wall clock moves, the monotonic clock stands still.
    Suspend(u64),
    /// The wall clock is stepped (NTP), at most `MAX_FALL_BACK` s behind its furthest.
    WallStep(i64),
    /// The monotonic clock moves alone (a wall clock that lags), bounded like `WallStep`.
    MonotonicOnly(u64),
    /// The next call of a store operation meets a fault.
    StoreFault(StoreOp, Fault),
    /// The next request to the provider does this.
    SourceStep(SourceStep),
}

#[derive(Clone, Copy, Debug)]
enum SourceStep {
    Panic,
    Transient,
    RateLimited,
    Reauthenticate,
    Slow,
}

fn op() -> impl Strategy<Value = Op> {
    let manager = 0..MANAGERS;
    let store_op = prop_oneof![
        Just(StoreOp::Load),
        Just(StoreOp::Save),
        Just(StoreOp::Lock)
    ];
    let fault = prop_oneof![
        Just(Fault::Fail),
        Just(Fault::FailAfterWrite),
        Just(Fault::Delay(Duration::from_secs(3))),
        Just(Fault::LoseLock),
    ];
    prop_oneof![
        6 => manager.clone().prop_map(Op::Call),
        2 => Just(Op::CallAll),
        2 => manager.prop_map(Op::Invalidate),
        4 => prop_oneof![Just(1u64), Just(10), Just(45), Just(300), Just(700)].prop_map(Op::Advance),
        1 => prop_oneof![Just(30u64), Just(500), Just(4000)].prop_map(Op::Suspend),
        1 => prop_oneof![Just(-10i64), Just(-3), Just(5), Just(120), Just(900)].prop_map(Op::WallStep),
        1 => prop_oneof![Just(5u64), Just(40)].prop_map(Op::MonotonicOnly),
        3 => (store_op, fault).prop_map(|(op, fault)| Op::StoreFault(op, fault)),
        2 => prop_oneof![
            Just(SourceStep::Panic),
            Just(SourceStep::Transient),
            Just(SourceStep::RateLimited),
            Just(SourceStep::Reauthenticate),
            Just(SourceStep::Slow),
        ]
        .prop_map(Op::SourceStep),
    ]
}

/// True time and the provider, as the model sees them.
struct Model {
    clock: Arc<ManualClock>,
    /// Seconds of true time since `T0` (advances with `Advance`, `Suspend`, `MonotonicOnly`).
    truth: i64,
    /// Wall clock minus true time, in seconds, and the most it has been.
    skew: i64,
    max_skew: i64,
    /// The true time and the wall clock's skew when each `tok-<n>` was issued (by call number).
    issued: HashMap<usize, (i64, i64)>,
    /// The last token each manager handed out: its id and secret.
    last: [Option<(TokenId, String)>; MANAGERS],
    /// The last token each manager was told the API rejected.
    rejected: [Option<String>; MANAGERS],
    lock_lost: bool,
}

impl Model {
    fn issue(&self, secret: &str) -> Option<(i64, i64)> {
        let n: usize = secret.strip_prefix("tok-")?.parse().ok()?;
        self.issued.get(&n).copied()
    }

    /// When the token expires in true time (seconds since `T0`).
    fn true_expiry(&self, secret: &str) -> Option<i64> {
        Some(self.issue(secret)?.0 + LIFETIME.as_secs() as i64)
    }

    /// When the token expires on the wall clock, as the provider stated it (seconds of wall time
    /// since `T0`).
    fn stated_expiry(&self, secret: &str) -> Option<i64> {
        let (truth, skew) = self.issue(secret)?;
        Some(truth + skew + LIFETIME.as_secs() as i64)
    }
}

struct World {
    model: Model,
    store: FaultyStore,
    source: ScriptedSource,
    managers: Vec<TokenManager>,
    key: StoreKey,
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

impl World {
    fn new() -> Self {
        let clock = ManualClock::new(T0);
        let store = FaultyStore::new(MemoryStore::new());
        let source = ScriptedSource::new("model")
            .otherwise(Step::rotate(LIFETIME))
            .checking_rotation()
            .with_cooldown(Duration::from_secs(20))
            .with_credential(
                Credential::new("model").secret("refresh_token", &SecretString::from("refresh-0")),
            );
        let key = StoreKey::new("model:default").unwrap();
        let managers = (0..MANAGERS)
            .map(|_| {
                TokenManager::builder(source.clone())
                    .store(store.clone())
                    .clock(SharedClock::from(clock.clone()))
                    .key(key.clone())
                    .policy(RefreshPolicy::default())
                    .build()
                    .unwrap()
            })
            .collect();
        Self {
            model: Model {
                clock,
                truth: 0,
                skew: 0,
                max_skew: 0,
                issued: HashMap::new(),
                last: Default::default(),
                rejected: Default::default(),
                lock_lost: false,
            },
            store,
            source,
            managers,
            key,
        }
    }

    /// Lets every background refresh finish: tokio's time is paused and jumps ahead whenever
    /// the runtime idles, while the `ManualClock` (true time) stands still.
    async fn settle(&self) {
        for _ in 0..3 {
            for _ in 0..50 {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_secs(200)).await;
        }
    }

    /// Whether the store holds a token that manager `m` must serve: valid beyond the skew
    /// allowance both in true time (with the wall clock's tolerated fall-back) and by the wall
    /// clock against the expiry the provider stated (the earlier deadline wins), and not one
    /// the API rejected through `m`.
    async fn servable_stored_token(&self, m: usize) -> Option<String> {
        if self.store.has_faults() {
            return None;
        }
        let entry = self.store.inner().load(&self.key).await.ok()??;
        let secret = entry.token?.secret().expose_secret().to_owned();
        let true_left = self.model.true_expiry(&secret)? - self.model.truth;
        let wall_left = self.model.stated_expiry(&secret)? - (self.model.truth + self.model.skew);
        let valid = true_left > 30 + MAX_FALL_BACK + 1 && wall_left > 30 + 1;
        (valid && self.model.rejected[m].as_deref() != Some(&secret)).then_some(secret)
    }

    /// One call of manager `m`, checked: never an expired token; never an error while a valid
    /// token is stored; always an answer.
    async fn call(&mut self, m: usize, must_serve: Option<String>) -> Result<(), TestCaseError> {
        let outcome =
            tokio::time::timeout(Duration::from_secs(3600), self.managers[m].token()).await;
        let Ok(outcome) = outcome else {
            return Err(fail(format!("manager {m}: token() did not answer")));
        };
        match outcome {
            Ok(token) => {
                let secret = token.secret().expose_secret().to_owned();
                self.record_issued();
                let expiry = self
                    .model
                    .true_expiry(&secret)
                    .ok_or_else(|| fail(format!("manager {m}: unknown token {secret}")))?;
                if expiry <= self.model.truth {
                    return Err(fail(format!(
                        "manager {m} handed out {secret}, expired {} s ago in true time",
                        self.model.truth - expiry
                    )));
                }
                self.model.last[m] = Some((token.id(), secret));
                Ok(())
            }
            Err(error) => match must_serve {
                Some(stored) => Err(fail(format!(
                    "manager {m} answered {error} while the store held the valid {stored}"
                ))),
                None => Ok(()),
            },
        }
    }

    /// Notes the true time of every token issued since the last look.
    fn record_issued(&mut self) {
        for n in 1..=self.source.calls() {
            self.model
                .issued
                .entry(n)
                .or_insert((self.model.truth, self.model.skew));
        }
    }

    async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Call(m) => {
                let must_serve = self.servable_stored_token(m).await;
                self.call(m, must_serve).await?;
            }
            Op::CallAll => {
                let calls: Vec<_> = self
                    .managers
                    .iter()
                    .map(|m| {
                        let m = m.clone();
                        tokio::spawn(async move {
                            tokio::time::timeout(Duration::from_secs(3600), m.token())
                                .await
                                .map(|r| r.map(|t| (t.id(), t.secret().expose_secret().to_owned())))
                        })
                    })
                    .collect();
                for (m, call) in calls.into_iter().enumerate() {
                    let outcome = call.await.map_err(|e| fail(format!("join: {e}")))?;
                    let Ok(outcome) = outcome else {
                        return Err(fail(format!("manager {m}: token() did not answer")));
                    };
                    self.record_issued();
                    if let Ok((id, secret)) = outcome {
                        let expiry = self.model.true_expiry(&secret).unwrap_or(i64::MIN);
                        if expiry <= self.model.truth {
                            return Err(fail(format!("manager {m} handed out expired {secret}")));
                        }
                        self.model.last[m] = Some((id, secret));
                    }
                }
            }
            Op::Invalidate(m) => {
                if let Some((id, secret)) = self.model.last[m].clone()
                    && self.managers[m].invalidate(id)
                {
                    self.model.rejected[m] = Some(secret);
                }
            }
            Op::Advance(secs) => {
                self.model.clock.advance(Duration::from_secs(secs));
                self.model.truth += secs as i64;
            }
            Op::Suspend(secs) => {
                self.model.clock.suspend(Duration::from_secs(secs));
                self.model.truth += secs as i64;
            }
            Op::WallStep(delta) => {
                let floor = self.model.max_skew - MAX_FALL_BACK;
                let delta = delta.max(floor - self.model.skew);
                self.model
                    .clock
                    .step_wall(auth_core::time::Duration::seconds(delta));
                self.model.skew += delta;
                self.model.max_skew = self.model.max_skew.max(self.model.skew);
            }
            Op::MonotonicOnly(secs) => {
                let floor = self.model.max_skew - MAX_FALL_BACK;
                let secs = (secs as i64).min(self.model.skew - floor).max(0);
                self.model
                    .clock
                    .advance_monotonic(Duration::from_secs(secs as u64));
                self.model.truth += secs;
                self.model.skew -= secs;
            }
            Op::StoreFault(op, fault) => {
                self.model.lock_lost |= fault == Fault::LoseLock;
                self.store.fail_next(op, fault);
            }
            Op::SourceStep(step) => self.source.push(match step {
                SourceStep::Panic => Step::Panic,
                SourceStep::Transient => Step::Fail(Error::transient("model: 503")),
                SourceStep::RateLimited => Step::Fail(Error::rate_limited(
                    T0 + Duration::from_secs(self.model.truth as u64 + 30),
                    "model: 429",
                )),
                SourceStep::Reauthenticate => {
                    Step::Fail(Error::reauthentication_required("model: 401"))
                }
                SourceStep::Slow => Step::after(Duration::from_secs(5), Step::rotate(LIFETIME)),
            }),
        }
        self.settle().await;
        self.record_issued();
        self.check_after_step().await
    }

    /// The invariants that hold between steps.
    async fn check_after_step(&self) -> Result<(), TestCaseError> {
        if let Some(valid) = self.source.valid_refresh() {
            let stored = self
                .store
                .inner()
                .load(&self.key)
                .await
                .ok()
                .flatten()
                .and_then(|e| e.refresh)
                .map(|r| r.expose_secret().to_owned());
            let pending = self.managers.iter().any(|m| m.stats().pending_save);
            if stored.as_deref() != Some(valid.as_str()) && !pending {
                return Err(fail(format!(
                    "the provider accepts only {valid}; the store holds {stored:?} and no manager holds it pending"
                )));
            }
        }
        if !self.model.lock_lost && self.source.max_in_flight() > 1 {
            return Err(fail(format!(
                "{} requests were in flight at once for one key",
                self.source.max_in_flight()
            )));
        }
        Ok(())
    }

    /// Faults stop; within a few rounds (each past the longest back-off) every manager serves a
    /// token again.
    async fn recover(&mut self) -> Result<(), TestCaseError> {
        self.store.clear();
        self.source.clear();
        self.model.clock.advance(Duration::from_secs(3600 + 600));
        self.model.truth += 3600 + 600;
        self.settle().await;
        let mut last_errors = Vec::new();
        for _ in 0..4 {
            last_errors.clear();
            for m in 0..MANAGERS {
                let outcome = self.managers[m].token().await;
                self.record_issued();
                if let Err(e) = outcome {
                    last_errors.push(format!("manager {m}: {e}"));
                }
            }
            if last_errors.is_empty() {
                return Ok(());
            }
            self.model.clock.advance(Duration::from_secs(6 * 60));
            self.model.truth += 6 * 60;
            self.settle().await;
        }
        Err(fail(format!(
            "no recovery after the faults stopped: {last_errors:?}"
        )))
    }
}

fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut world = World::new();
        for (i, op) in ops.iter().enumerate() {
            world
                .apply(op)
                .await
                .map_err(|e| fail(format!("after step {i} ({op:?}): {e}")))?;
        }
        world.recover().await
    })
}

fn cases() -> u32 {
    std::env::var("KUNCI_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

#[test]
fn managers_sharing_a_store_keep_every_invariant_through_random_operations() {
    auth_core::testing::silence_scripted_panics();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        run_case(&ops)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
