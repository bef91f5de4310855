//! This provider's simulator as the provider-agnostic suites see it (feature `testing`):
//! the demo, the reliability suite, the benchmarks and the conformance kit start it through
//! [`Simulated`], by the facade's `ProviderKind`. Only what differs between providers is here:
//! how the simulator starts, the variables configured against it, the credential it checks,
//! its fault table (what the conformance kit and the reliability suite inject) and its refusal.

use auth_testkit::{
    Fault, SimBuilder, Simulated,
    conformance::{FaultCase, Yields, transport_faults},
    kalsel::KalselSim,
};
use serde_json::json;

use crate::KalselSource;

impl Simulated for KalselSource {
    type Sim = KalselSim;

    const CREDENTIAL: &'static str = crate::ENV_REFRESH_TOKEN;

    async fn start(builder: SimBuilder) -> std::io::Result<KalselSim> {
        KalselSim::start_with(builder).await
    }

    fn variables(sim: &KalselSim) -> Vec<(&'static str, String)> {
        vec![
            (crate::ENV_BASE_URL, sim.base_url()),
            (
                crate::ENV_REFRESH_TOKEN,
                sim.initial_refresh_token().to_owned(),
            ),
        ]
    }

    fn other_credential(sim: &KalselSim) -> String {
        // A new login: another refresh token the simulator accepts.
        sim.login()
    }

    /// Every answer this provider's document (or its server's source) gives, and what it
    /// yields.
    fn faults() -> Vec<FaultCase> {
        let jwt_error = |cause: &str| json!({"status": 422, "message": "Token tidak valid", "error": "jwt_error", "causes": [cause]});
        let expired_421 = json!({"status": 421, "message": "Token expired", "error": "jwt_error", "causes": ["token has expired"]});
        let mut faults = transport_faults();
        faults.extend(vec![
            (
                "400",
                Fault::json(
                    400,
                    &json!({"status": 400, "message": "refresh_token: cannot be blank.", "error": "bad_request", "causes": []}),
                ),
                Yields::Protocol,
            ),
            (
                "401",
                Fault::json(401, &json!({"message": "unauthorized"})),
                Yields::Reauthentication,
            ),
            (
                "403 html",
                Fault::html_error(403),
                Yields::Reauthentication,
            ),
            (
                "404 json without an error field",
                Fault::json(404, &json!({"message": "Not Found"})),
                Yields::Protocol,
            ),
            (
                "404 fiber route",
                Fault::status(
                    404,
                    Some("text/plain; charset=utf-8"),
                    "Cannot POST /api/v1/refresh",
                ),
                Yields::Protocol,
            ),
            (
                "404 account not found",
                Fault::json(
                    404,
                    &json!({"status": 404, "message": "User dengan Email a@b.co tidak ditemukan", "error": "not_found", "causes": []}),
                ),
                Yields::Reauthentication,
            ),
            (
                "421",
                Fault::json(421, &expired_421),
                Yields::Reauthentication,
            ),
            (
                "421 unparseable",
                Fault::status(421, Some("text/plain"), "Misdirected Request"),
                Yields::Reauthentication,
            ),
            (
                "422 expired",
                Fault::json(422, &jwt_error("Token is expired")),
                Yields::Reauthentication,
            ),
            (
                "422 signature",
                Fault::json(422, &jwt_error("signature is invalid")),
                Yields::Reauthentication,
            ),
            (
                "422 not a refresh token",
                Fault::json(422, &jwt_error("not a refresh token")),
                Yields::Configuration,
            ),
            (
                "422 without jwt_error",
                Fault::json(422, &json!({"message": "Unprocessable Entity"})),
                Yields::Protocol,
            ),
            ("429 bare", Fault::status(429, None, ""), Yields::RateLimited),
            (
                "429 rate_limiter",
                Fault::json(
                    429,
                    &json!({"status": 429, "message": "terlalu banyak request", "error": "rate_limiter", "causes": ["too many requests in a given amount of time"]}),
                ),
                Yields::RateLimited,
            ),
            (
                "503",
                Fault::status(503, Some("application/json"), r#"{"message":"down"}"#),
                Yields::Transient,
            ),
            (
                "missing expired",
                Fault::json(200, &json!({"access_token": "x"})),
                Yields::Protocol,
            ),
            (
                "expired in the past",
                Fault::json(200, &json!({"access_token": "x", "expired": 1_608_781_116})),
                Yields::Protocol,
            ),
            (
                "expired out of range",
                Fault::json(200, &json!({"access_token": "x", "expired": i64::MAX})),
                Yields::Protocol,
            ),
            (
                "token not sendable",
                Fault::json(
                    200,
                    &json!({"access_token": "a\nb", "expired": 4_000_000_000_i64}),
                ),
                Yields::Protocol,
            ),
            ("204", Fault::status(204, None, ""), Yields::Protocol),
            ("wrong content type", Fault::WrongContentType, Yields::Token),
        ]);
        faults
    }

    fn refusal(text: &str) -> Fault {
        // Its refusal of a refresh token (`jwt_error`, the page's 421).
        Fault::json(
            421,
            &json!({"status": 421, "message": text, "error": "jwt_error", "causes": [text]}),
        )
    }
}
