//! The conformance scenarios: each provider crate, through a real `TokenManager`, against the
//! real upstream libraries its server is built on (started by `cargo xtask conformance`; see
//! `conformance/README.md`). Without the upstreams' URLs each scenario prints why it skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed step is a failed scenario"
)]

mod krmpesan;
mod sehatmu;
mod stamps;
mod support;
