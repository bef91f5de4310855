//! Integration tests of the Kalsel.dev source against the loopback simulator, through a real
//! `TokenManager` where manager behaviour matters.

#[cfg(feature = "testing")]
mod conformance;
mod faults;
mod flows;
mod login;
mod logs;
mod props;
mod request_shape;
mod support;
