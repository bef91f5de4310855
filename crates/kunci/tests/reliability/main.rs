//! The reliability suite: kunci attacked through its facade, the way a user runs it.
//!
//! * `faults` — every provider compiled in × every row of its fault table
//!   (`Simulated::faults`) → the expected error kind, no panic, the stored entry unchanged;
//! * `leaks` — full flows of every provider with TRACE logs captured; no secret and no issued
//!   token in the logs, in any error's `Display`/`Debug`, or in the encrypted store files;
//! * `crash` — a process refreshing Kalsel.dev tokens through a file store as fast as it can,
//!   SIGKILLed 50 times (one provider stands for all here: the property is the manager's): every token it handed out had been stored first (it is the stored one
//!   or older), a token fetched but not yet stored was never handed out, and the entry is
//!   never torn.
//!
//! * `every_provider` — every provider compiled in (`ProviderKind::ALL`, so a new provider
//!   is here with no hand edit) through the provider contract kit, its simulator started by
//!   `ProviderKind::start_simulator` (feature `testing`).
//!
//! What each attack tried and found is written up in `docs/reliability.md`.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]
#![allow(clippy::expect_used, reason = "test helpers fail loudly")]
#![allow(clippy::panic, reason = "test helpers fail loudly")]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the crash test's child prints the tokens it hands out; counts are reported"
)]

#[cfg(feature = "kalsel")]
mod crash;
mod every_provider;
mod faults;
mod leaks;
mod support;
