//! This provider's simulator as the provider-agnostic suites see it (feature `testing`):
//! the demo, the reliability suite, the benchmarks and the conformance kit start it through
//! [`Simulated`], by the facade's `ProviderKind`. Only what differs between providers is here:
//! how the simulator starts, the variables configured against it, the credential it checks,
//! its fault table (what the conformance kit and the reliability suite inject) and its refusal.

use auth_testkit::{
    Fault, SimBuilder, Simulated,
    conformance::{FaultCase, Yields, transport_faults},
    stamps::StampsSim,
};
use serde_json::json;

use crate::StampsSource;

impl Simulated for StampsSource {
    type Sim = StampsSim;

    const CREDENTIAL: &'static str = crate::ENV_TOKEN;

    async fn start(builder: SimBuilder) -> std::io::Result<StampsSim> {
        StampsSim::start_with(builder).await
    }

    fn variables(sim: &StampsSim) -> Vec<(&'static str, String)> {
        vec![
            (crate::ENV_BASE_URL, sim.base_url()),
            (crate::ENV_TOKEN, sim.auth_token().to_owned()),
            (crate::ENV_MERCHANT_ID, sim.merchant_id().to_string()),
        ]
    }

    fn other_credential(sim: &StampsSim) -> String {
        // Another merchant token.
        format!("{}-reissued", sim.auth_token())
    }

    /// Every answer this provider's document (or its server's source) gives, and what it
    /// yields.
    fn faults() -> Vec<FaultCase> {
        let mut faults = transport_faults();
        faults.extend(vec![
            (
                "504 text",
                Fault::status(504, Some("text/plain"), "Gateway Timeout"),
                Yields::Transient,
            ),
            (
                "wrong shape",
                Fault::json(200, &json!({"token": "x"})),
                Yields::Protocol,
            ),
            (
                "not a jwt",
                Fault::json(200, &json!({"access_token": "opaque-token"})),
                Yields::Protocol,
            ),
            ("302", Fault::status(302, None, ""), Yields::Protocol),
            (
                "401 detail",
                Fault::json(401, &json!({"detail": "Invalid token."})),
                Yields::Reauthentication,
            ),
            ("403 html", Fault::html_error(403), Yields::Reauthentication),
            (
                "400 field error",
                Fault::json(
                    400,
                    &json!({"crm_merchant_id": ["A valid integer is required."]}),
                ),
                Yields::Reauthentication,
            ),
            ("wrong content type", Fault::WrongContentType, Yields::Token),
        ]);
        faults
    }

    fn refusal(text: &str) -> Fault {
        // Django REST framework's `TokenAuthentication` refusal.
        Fault::json(401, &json!({"detail": text, "code": "token_not_valid"}))
    }
}
