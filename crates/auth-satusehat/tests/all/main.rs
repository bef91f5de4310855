//! auth-satusehat's tests: the provider contract kit against its simulator (feature
//! `testing`: `cargo test -p auth-satusehat --all-features`), and what only SATUSEHAT does.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

#[cfg(feature = "testing")]
mod conformance;
#[cfg(feature = "testing")]
mod flows;

use auth_core::{ErrorKind, http::HttpConfig, provider::EnvProvider};
use auth_satusehat::SatusehatSource;

#[test]
fn missing_variables_name_the_variable() {
    let err = SatusehatSource::from_lookup(&|_| None, HttpConfig::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(err.message().contains("SATUSEHAT_CLIENT_ID"));
}
