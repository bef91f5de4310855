//! This provider's simulator as the provider-agnostic suites see it (feature `testing`):
//! the demo, the reliability suite, the benchmarks and the conformance kit start it through
//! [`Simulated`], by the facade's `ProviderKind`.

use auth_testkit::{
    SimBuilder, SimServer, Simulated, Simulator, Started, krmpesan::KrmPesanSim,
    simulator::replace_variable,
};

use crate::KrmPesanSource;

/// The running simulator.
#[derive(Debug)]
struct Sim(KrmPesanSim);

impl Simulator for Sim {
    fn server(&self) -> &SimServer {
        &self.0
    }

    fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            (crate::ENV_BASE_URL, self.0.base_url()),
            (crate::ENV_REFRESH_TOKEN, self.0.refresh_token().to_owned()),
            (crate::ENV_DEVICE_KEY, self.0.device_key().to_owned()),
        ]
    }

    fn other_credential(&self) -> Vec<(&'static str, String)> {
        // Another device key (of another device).
        replace_variable(
            self.variables(),
            crate::ENV_DEVICE_KEY,
            format!("{}9", self.0.device_key()),
        )
    }
}

impl Simulated for KrmPesanSource {
    fn start_simulator(builder: SimBuilder) -> Started {
        Box::pin(async move {
            let sim = KrmPesanSim::start_with(builder).await?;
            Ok(Box::new(Sim(sim)) as Box<dyn Simulator>)
        })
    }
}
