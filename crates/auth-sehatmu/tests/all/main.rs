//! Integration tests of auth-sehatmu against the SehatMu simulator, through a real
//! `TokenManager` (one binary, several modules).

#[cfg(feature = "testing")]
mod conformance;
mod flows;
mod props;
mod rate_limit;
mod support;
