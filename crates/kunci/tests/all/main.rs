//! Integration tests of the facade: the middleware against a simulated API, and building
//! managers from variables.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod docs;
mod from_lookup;
#[cfg(feature = "middleware")]
mod middleware;
