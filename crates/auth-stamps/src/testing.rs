//! This provider's simulator as the provider-agnostic suites see it (feature `testing`):
//! the demo, the reliability suite, the benchmarks and the conformance kit start it through
//! [`Simulated`], by the facade's `ProviderKind`.

use auth_testkit::{
    SimBuilder, SimServer, Simulated, Simulator, Started, simulator::replace_variable,
    stamps::StampsSim,
};

use crate::StampsSource;

/// The running simulator.
#[derive(Debug)]
struct Sim(StampsSim);

impl Simulator for Sim {
    fn server(&self) -> &SimServer {
        &self.0
    }

    fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            (crate::ENV_BASE_URL, self.0.base_url()),
            (crate::ENV_TOKEN, self.0.auth_token().to_owned()),
            (crate::ENV_MERCHANT_ID, self.0.merchant_id().to_string()),
        ]
    }

    fn other_credential(&self) -> Vec<(&'static str, String)> {
        // Another merchant token.
        replace_variable(
            self.variables(),
            crate::ENV_TOKEN,
            format!("{}-reissued", self.0.auth_token()),
        )
    }
}

impl Simulated for StampsSource {
    fn start_simulator(builder: SimBuilder) -> Started {
        Box::pin(async move {
            let sim = StampsSim::start_with(builder).await?;
            Ok(Box::new(Sim(sim)) as Box<dyn Simulator>)
        })
    }
}
