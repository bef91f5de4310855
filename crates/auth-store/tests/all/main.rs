//! auth-store's integration tests: real files, real processes, real Redis, real PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "helpers of integration tests: a failed step is a failed test, and a skip says why"
)]

mod crash;
mod file;
mod fleet;
mod multiprocess;
mod netns;
mod outage;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod release;
mod servers;
mod support;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod waiters;
