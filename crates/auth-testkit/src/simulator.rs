//! The one trait every provider's simulator is seen through by the provider-agnostic code:
//! the demo, the reliability suite, the benchmarks, the examples, the CLI's tests and the
//! conformance kit ([`crate::conformance`]). A provider implements [`Simulated`] for its source
//! type in its own crate, behind its `testing` feature; the facade's `ProviderKind` (feature
//! `testing`) starts any provider's simulator by name, so a new provider is in all of them
//! with no hand edit.

use std::{fmt, future::Future, io, pin::Pin};

use crate::{SimBuilder, SimServer};

/// A running simulator of one provider.
pub trait Simulator: Send + Sync + fmt::Debug {
    /// The server: its base URL, injected faults, recorded requests, issued tokens.
    fn server(&self) -> &SimServer;

    /// The provider's variables configured against this simulator: credentials it accepts
    /// and its base URL. Building the provider's source from them and fetching succeeds.
    fn variables(&self) -> Vec<(&'static str, String)>;

    /// The variables of `variables` with the credential replaced by another one the
    /// provider's source accepts as configuration (a new login, another secret) — whether the
    /// simulator accepts it or not. Used to check that a stored token made with one credential
    /// is not served to a source configured with another.
    fn other_credential(&self) -> Vec<(&'static str, String)>;
}

/// A started simulator, boxed: what [`Simulated::start_simulator`] answers.
pub type Started = Pin<Box<dyn Future<Output = io::Result<Box<dyn Simulator>>> + Send>>;

/// A provider whose simulator can be started: implemented on the provider's source type in
/// the provider's crate (feature `testing`).
pub trait Simulated {
    /// Starts the simulator on 127.0.0.1 with `builder`'s settings (clock, latency, token
    /// lifetime).
    fn start_simulator(builder: SimBuilder) -> Started;
}

/// `variables` with the value of `name` replaced by `value` (added when absent).
pub fn replace_variable(
    mut variables: Vec<(&'static str, String)>,
    name: &'static str,
    value: impl Into<String>,
) -> Vec<(&'static str, String)> {
    let value = value.into();
    match variables.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => *v = value,
        None => variables.push((name, value)),
    }
    variables
}
