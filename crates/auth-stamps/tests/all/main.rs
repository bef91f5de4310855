//! Integration tests of auth-stamps against the Stamps simulator, through a real
//! `TokenManager` (one binary, several modules).

#[cfg(feature = "testing")]
mod conformance;
mod faults;
mod flows;
mod logs;
mod props;
mod support;
