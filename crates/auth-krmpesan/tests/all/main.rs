//! Integration tests of the KrmPesan source against the loopback simulator, through a real
//! `TokenManager` where manager behaviour matters.

#[cfg(feature = "testing")]
mod conformance;
mod flows;
mod logs;
mod props;
mod request_shape;
mod rotation;
mod support;
