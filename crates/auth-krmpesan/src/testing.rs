//! This provider's simulator as the provider-agnostic suites see it (feature `testing`):
//! the demo, the reliability suite, the benchmarks and the conformance kit start it through
//! [`Simulated`], by the facade's `ProviderKind`. Only what differs between providers is here:
//! how the simulator starts, the variables configured against it, the credential it checks,
//! its fault table (what the conformance kit and the reliability suite inject) and its refusal.

use auth_testkit::{
    Fault, SimBuilder, Simulated,
    conformance::{FaultCase, Yields, transport_faults},
    krmpesan::KrmPesanSim,
};
use serde_json::json;

use crate::KrmPesanSource;

impl Simulated for KrmPesanSource {
    type Sim = KrmPesanSim;

    const CREDENTIAL: &'static str = crate::ENV_REFRESH_TOKEN;

    async fn start(builder: SimBuilder) -> std::io::Result<KrmPesanSim> {
        KrmPesanSim::start_with(builder).await
    }

    fn variables(sim: &KrmPesanSim) -> Vec<(&'static str, String)> {
        vec![
            (crate::ENV_BASE_URL, sim.base_url()),
            (crate::ENV_REFRESH_TOKEN, sim.refresh_token().to_owned()),
            (crate::ENV_DEVICE_KEY, sim.device_key().to_owned()),
        ]
    }

    fn other_credential(sim: &KrmPesanSim) -> String {
        // A refresh token of another login.
        format!("{}9", sim.refresh_token())
    }

    /// Every answer this provider's document (or its server's source) gives, and what it
    /// yields.
    fn faults() -> Vec<FaultCase> {
        let mut faults = transport_faults();
        faults.extend(vec![
            (
                "400 NotAuthorizedException",
                Fault::json(
                    400,
                    &json!({"__type": "NotAuthorizedException", "message": "Refresh Token has been revoked"}),
                ),
                Yields::Reauthentication,
            ),
            (
                "400 TooManyRequestsException",
                Fault::json(
                    400,
                    &json!({"__type": "TooManyRequestsException", "message": "Rate exceeded"}),
                ),
                Yields::RateLimited,
            ),
            (
                "401 message only",
                Fault::json(401, &json!({"message": "Invalid Refresh Token"})),
                Yields::Reauthentication,
            ),
            (
                "403 html",
                Fault::html_error(403),
                Yields::Reauthentication,
            ),
            (
                "404",
                Fault::json(404, &json!({"message": "Not Found"})),
                Yields::Protocol,
            ),
            ("429", Fault::status(429, None, ""), Yields::RateLimited),
            (
                "503",
                Fault::status(
                    503,
                    Some("application/json"),
                    r#"{"message":"Service Unavailable"}"#,
                ),
                Yields::Transient,
            ),
            (
                "504",
                Fault::status(504, Some("text/plain"), "Gateway Timeout"),
                Yields::Transient,
            ),
            (
                "wrong content type",
                Fault::WrongContentType,
                Yields::Protocol,
            ),
            (
                "missing IdToken",
                Fault::json(200, &json!({"AccessToken": "x", "ExpiresIn": 86400})),
                Yields::Protocol,
            ),
            (
                "zero ExpiresIn",
                Fault::json(200, &json!({"IdToken": "x", "ExpiresIn": 0})),
                Yields::Protocol,
            ),
            (
                "token not sendable",
                Fault::json(200, &json!({"IdToken": "a b", "ExpiresIn": 60})),
                Yields::Protocol,
            ),
            ("204", Fault::status(204, None, ""), Yields::Protocol),
            (
                "ExpiresIn beyond 64 bits",
                Fault::status(
                    200,
                    Some("application/json"),
                    r#"{"IdToken": "x", "ExpiresIn": 99999999999999999999}"#,
                ),
                Yields::Protocol,
            ),
            (
                "RefreshToken not a string",
                Fault::json(
                    200,
                    &json!({"IdToken": "x", "ExpiresIn": 60, "RefreshToken": 5}),
                ),
                Yields::Protocol,
            ),
            (
                "a challenge instead of tokens",
                Fault::json(
                    200,
                    &json!({"ChallengeName": "SMS_MFA", "ChallengeParameters": {}}),
                ),
                Yields::Protocol,
            ),
        ]);
        faults
    }

    fn refusal(text: &str) -> Fault {
        // Cognito's refusal, as the `GET /tokens` wrapper passes it on.
        Fault::json(
            400,
            &json!({"__type": "NotAuthorizedException", "message": text}),
        )
    }
}
