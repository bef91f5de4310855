//! This provider's simulator as the provider-agnostic suites see it (feature `testing`):
//! the demo, the reliability suite, the benchmarks and the conformance kit start it through
//! [`Simulated`], by the facade's `ProviderKind`.

use auth_testkit::{
    SimBuilder, SimServer, Simulated, Simulator, Started, kalsel::KalselSim,
    simulator::replace_variable,
};

use crate::KalselSource;

/// The running simulator.
#[derive(Debug)]
struct Sim(KalselSim);

impl Simulator for Sim {
    fn server(&self) -> &SimServer {
        &self.0
    }

    fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            (crate::ENV_BASE_URL, self.0.base_url()),
            (
                crate::ENV_REFRESH_TOKEN,
                self.0.initial_refresh_token().to_owned(),
            ),
        ]
    }

    fn other_credential(&self) -> Vec<(&'static str, String)> {
        // A new login: another refresh token the simulator accepts.
        replace_variable(self.variables(), crate::ENV_REFRESH_TOKEN, self.0.login())
    }
}

impl Simulated for KalselSource {
    fn start_simulator(builder: SimBuilder) -> Started {
        Box::pin(async move {
            let sim = KalselSim::start_with(builder).await?;
            Ok(Box::new(Sim(sim)) as Box<dyn Simulator>)
        })
    }
}
