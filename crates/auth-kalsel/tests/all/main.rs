//! Integration tests of the Kalsel.dev source against the loopback simulator, through a real
//! `TokenManager` where manager behaviour matters.

#[cfg(feature = "testing")]
mod conformance;
mod flows;
mod login;
mod props;
mod request_shape;
mod support;
