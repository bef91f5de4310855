//! This provider's simulator as the provider-agnostic suites see it (feature `testing`):
//! the demo, the reliability suite, the benchmarks and the conformance kit start it through
//! [`Simulated`], by the facade's `ProviderKind`.

use auth_testkit::{
    SimBuilder, SimServer, Simulated, Simulator, Started, sehatmu::SehatMuSim,
    simulator::replace_variable,
};

use crate::SehatMuSource;

/// The running simulator.
#[derive(Debug)]
struct Sim(SehatMuSim);

impl Simulator for Sim {
    fn server(&self) -> &SimServer {
        &self.0
    }

    fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            (crate::ENV_BASE_URL, self.0.base_url()),
            (crate::ENV_CLIENT_ID, self.0.client_id().to_owned()),
            (crate::ENV_CLIENT_SECRET, self.0.client_secret().to_owned()),
        ]
    }

    fn other_credential(&self) -> Vec<(&'static str, String)> {
        // A regenerated client secret.
        replace_variable(
            self.variables(),
            crate::ENV_CLIENT_SECRET,
            format!("{}-regenerated", self.0.client_secret()),
        )
    }
}

impl Simulated for SehatMuSource {
    fn start_simulator(builder: SimBuilder) -> Started {
        Box::pin(async move {
            let sim = SehatMuSim::start_with(builder).await?;
            Ok(Box::new(Sim(sim)) as Box<dyn Simulator>)
        })
    }
}
