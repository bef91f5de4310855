//! Integration tests of the facade: the middleware against a simulated API, and building
//! managers from variables.

mod from_lookup;
#[cfg(feature = "middleware")]
mod middleware;
