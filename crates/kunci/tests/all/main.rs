//! Integration tests of the facade: the reqwest middleware and the tower layer against a
//! simulated API, and building managers from variables.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

#[cfg(any(feature = "reqwest-middleware", feature = "tower"))]
mod api;
mod docs;
mod from_lookup;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
#[cfg(feature = "tower")]
mod tower;
