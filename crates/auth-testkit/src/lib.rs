//! Loopback HTTP simulators of the kunci providers' token APIs, for tests, the CLI's `demo`
//! and benchmarks. Nothing here ever talks to a real provider: every simulator listens on
//! `127.0.0.1` on a free port.
//!
//! # The framework
//!
//! [`SimServer`] is a small HTTP/1.1 server (hyper) that records every request and hands it,
//! parsed into a [`SimRequest`], to a provider's [`Handler`], which answers a
//! [`SimResponse`]. Before the handler runs, the server applies the next injected [`Fault`]:
//! a status with a body, a delay, a 10 MB body, an HTML page, malformed JSON, a wrong content
//! type, or a connection closed without an answer. A [`SimContext`] gives handlers the
//! simulator's clock, the configured token lifetime and unique values.
//!
//! # How a provider simulator plugs in
//!
//! A provider module (`krmpesan.rs`, `kalsel.rs`, `stamps.rs`, `sehatmu.rs`, one
//! `pub mod` line each here) provides:
//!
//! 1. a handler type implementing [`Handler`] that checks method, path, query, headers and
//!    body exactly as the provider's document describes, and answers like the real service
//!    (its success shape and its error shapes), issuing distinct tokens via
//!    [`SimContext::unique`] and recording them with [`SimContext::record_issued`];
//! 2. a `…Sim` type that owns a [`SimServer`] and dereferences to it (so `sim.base_url()`,
//!    `sim.fail_next(..)`, `sim.requests()` work on every simulator alike), with `start()` and
//!    `start_with(SimServer::builder()…)` constructors and accessors for the credentials it
//!    accepts.
//!
//! ```
//! use auth_testkit::{Fault, SimServer, krmpesan::KrmPesanSim};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let sim = KrmPesanSim::start_with(SimServer::builder().path_prefix("/v1")).await?;
//! let url = format!("{}/tokens", sim.base_url());
//! sim.fail_next(Fault::CloseConnection); // the next request gets no answer at all
//! assert!(url.starts_with("http://127.0.0.1:"));
//! # Ok(()) }
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod answers;
pub mod conformance;
pub mod jwt;
pub mod kalsel;
pub mod krmpesan;
pub mod logs;
pub mod sehatmu;
mod server;
pub mod setup;
pub mod simulator;
pub mod stamps;

pub use server::{Fault, Handler, SimBuilder, SimContext, SimRequest, SimResponse, SimServer};
pub use simulator::{Simulated, Simulator, Started};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
