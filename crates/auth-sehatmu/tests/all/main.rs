//! Integration tests of auth-sehatmu against the SehatMu simulator, through a real
//! `TokenManager` (one binary, several modules).

#[cfg(feature = "testing")]
mod conformance;
mod faults;
mod flows;
mod logs;
mod props;
mod rate_limit;
mod support;
