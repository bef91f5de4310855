//! The one trait every provider's simulator is seen through by the provider-agnostic code:
//! the demo, the reliability suite, the benchmarks, the examples, the CLI's tests and the
//! conformance kit ([`crate::conformance`]). A provider implements [`Simulated`] for its source
//! type in its own crate, behind its `testing` feature — a table of what differs between
//! providers: how its simulator starts, the variables configured against it, the credential
//! it checks, its fault table and its refusal — and this module adapts it to [`Simulator`]; the facade's `ProviderKind`
//! (feature `testing`) starts any provider's simulator by name, so a new provider is in all of
//! them with no hand edit.
//!
//! A provider's crate implements it in `src/testing.rs`; the scaffold's template
//! (`cargo xtask new-provider`) and the five providers' are complete examples.

use std::{fmt, future::Future, io, marker::PhantomData, pin::Pin};

use auth_core::provider::EnvProvider;

use crate::{Fault, SimBuilder, SimServer, conformance::FaultCase};

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

    /// The variable holding the credential the provider checks ([`Simulated::CREDENTIAL`]).
    fn credential(&self) -> &'static str;

    /// The provider's table of expectations ([`Simulated::faults`]).
    fn faults(&self) -> Vec<FaultCase>;

    /// The provider's own refusal of a credential, saying `text` ([`Simulated::refusal`]).
    fn refusal(&self, text: &str) -> Fault;
}

/// A started simulator, boxed: what [`Simulated::start_simulator`] answers.
pub type Started = Pin<Box<dyn Future<Output = io::Result<Box<dyn Simulator>>> + Send>>;

/// A provider whose simulator can be started: implemented on the provider's source type in
/// the provider's crate (feature `testing`). It says only what differs between providers;
/// [`start_simulator`](Self::start_simulator) makes a [`Simulator`] of it.
pub trait Simulated: EnvProvider {
    /// The provider's simulator: a [`SimServer`] running its handler, or a type owning one
    /// (with accessors for the credentials it accepts).
    type Sim: AsRef<SimServer> + fmt::Debug + Send + Sync + 'static;

    /// The variable holding the credential the provider checks (a refresh token, a client
    /// secret): the simulator refuses a wrong value with [`refusal`](Self::refusal)'s kind of
    /// answer, which the source reads as "log in again".
    const CREDENTIAL: &'static str;

    /// Starts the simulator on 127.0.0.1 with `builder`'s settings (clock, latency, token
    /// lifetime).
    fn start(builder: SimBuilder) -> impl Future<Output = io::Result<Self::Sim>> + Send;

    /// The provider's variables configured against `sim` ([`Simulator::variables`]).
    fn variables(sim: &Self::Sim) -> Vec<(&'static str, String)>;

    /// Another value of [`CREDENTIAL`](Self::CREDENTIAL) that the provider's source accepts
    /// as configuration, whether the simulator accepts it or not (a new login, another
    /// secret): [`Simulator::other_credential`].
    fn other_credential(sim: &Self::Sim) -> String;

    /// The provider's table of expectations: every answer its document (or its server's
    /// source) gives, injected before one fetch, and what that fetch must yield. Start from
    /// [`transport_faults`](crate::conformance::transport_faults), which every provider
    /// shares. The conformance kit and the facade's reliability suite run it.
    fn faults() -> Vec<FaultCase>;

    /// The provider's own refusal of a credential, in its own shape (status and body), with
    /// `text` where the provider puts its detail (a message, a cause, an outcome's text): the
    /// reliability suite makes it quote the submitted secrets, which must not reach an error.
    fn refusal(text: &str) -> Fault;

    /// Starts the simulator, seen as a [`Simulator`].
    fn start_simulator(builder: SimBuilder) -> Started {
        Box::pin(async move {
            let sim = Self::start(builder).await?;
            Ok(Box::new(Adapted::<Self> {
                sim,
                provider: PhantomData,
            }) as Box<dyn Simulator>)
        })
    }
}

/// A provider's simulator seen as a [`Simulator`], through its [`Simulated`] table.
struct Adapted<P: Simulated> {
    sim: P::Sim,
    provider: PhantomData<fn() -> P>,
}

impl<P: Simulated> fmt::Debug for Adapted<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.sim.fmt(f)
    }
}

impl<P: Simulated> Simulator for Adapted<P> {
    fn server(&self) -> &SimServer {
        self.sim.as_ref()
    }

    fn variables(&self) -> Vec<(&'static str, String)> {
        P::variables(&self.sim)
    }

    fn other_credential(&self) -> Vec<(&'static str, String)> {
        replace_variable(
            self.variables(),
            P::CREDENTIAL,
            P::other_credential(&self.sim),
        )
    }

    fn credential(&self) -> &'static str {
        P::CREDENTIAL
    }

    fn faults(&self) -> Vec<FaultCase> {
        P::faults()
    }

    fn refusal(&self, text: &str) -> Fault {
        P::refusal(text)
    }
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
