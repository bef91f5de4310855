//! This provider's simulator as the provider-agnostic suites see it (feature `testing`):
//! the demo, the reliability suite, the benchmarks and the conformance kit start it through
//! [`Simulated`], by the facade's `ProviderKind`. Only what differs between providers is here:
//! how the simulator starts, the variables configured against it, the credential it checks,
//! its fault table (what the conformance kit and the reliability suite inject) and its refusal.

use auth_testkit::{
    Fault, SimBuilder, Simulated,
    conformance::{FaultCase, Yields, transport_faults},
    sehatmu::{SehatMuSim, gateway_timeout, operation_outcome},
};
use serde_json::json;

use crate::{CREDENTIALS_REJECTED_TEXT, RATE_LIMIT_TEXT, SehatMuSource};

impl Simulated for SehatMuSource {
    type Sim = SehatMuSim;

    const CREDENTIAL: &'static str = crate::ENV_CLIENT_SECRET;

    async fn start(builder: SimBuilder) -> std::io::Result<SehatMuSim> {
        SehatMuSim::start_with(builder).await
    }

    fn variables(sim: &SehatMuSim) -> Vec<(&'static str, String)> {
        vec![
            (crate::ENV_BASE_URL, sim.base_url()),
            (crate::ENV_CLIENT_ID, sim.client_id().to_owned()),
            (crate::ENV_CLIENT_SECRET, sim.client_secret().to_owned()),
        ]
    }

    fn other_credential(sim: &SehatMuSim) -> String {
        // A regenerated client secret.
        format!("{}-regenerated", sim.client_secret())
    }

    /// Every answer this provider's document (or its server's source) gives, and what it
    /// yields.
    fn faults() -> Vec<FaultCase> {
        let mut faults = transport_faults();
        faults.extend(vec![
            ("504 text", gateway_timeout(), Yields::Transient),
            (
                "wrong shape",
                Fault::json(200, &json!({"token": "x"})),
                Yields::Protocol,
            ),
            (
                "no expiry",
                Fault::json(200, &json!({"accessToken": "abc"})),
                Yields::Protocol,
            ),
            ("400 html", Fault::html_error(400), Yields::Protocol),
            ("302", Fault::status(302, None, ""), Yields::Protocol),
            (
                "400 outcome (oauth2-server's invalid_client)",
                Fault::json(400, &operation_outcome(CREDENTIALS_REJECTED_TEXT)),
                Yields::Reauthentication,
            ),
            (
                "401 outcome",
                Fault::json(401, &operation_outcome(CREDENTIALS_REJECTED_TEXT)),
                Yields::Reauthentication,
            ),
            (
                "429 outcome",
                Fault::json(429, &operation_outcome(RATE_LIMIT_TEXT)),
                Yields::RateLimited,
            ),
            (
                "429 empty",
                Fault::status(429, None, ""),
                Yields::RateLimited,
            ),
            ("wrong content type", Fault::WrongContentType, Yields::Token),
        ]);
        faults
    }

    fn refusal(text: &str) -> Fault {
        Fault::json(401, &operation_outcome(text))
    }
}
