//! SATUSEHAT's simulator (feature `testing`), behind `auth_testkit::Simulated`, so the demo,
//! the reliability suite and the conformance kit run SATUSEHAT too.
//!
//! `POST /oauth2/v1/accesstoken?grant_type=client_credentials` with the form fields
//! `client_id` and `client_secret`; the answer is flat JSON whose values are all strings
//! (`expires_in`, `issued_at` in epoch milliseconds, `token_type: "BearerToken"`,
//! `status: "approved"`, …). Errors are FHIR `OperationOutcome`s: a wrong client is 401.

use auth_testkit::{
    Fault, Handler, SimBuilder, SimContext, SimRequest, SimResponse, SimServer, Simulated,
    conformance::{FaultCase, Yields, transport_faults},
};
use serde_json::json;

use crate::{ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET, SatusehatSource};

/// The client ID the simulator accepts.
pub const CLIENT_ID: &str = "sim-client-id";
/// The client secret the simulator accepts.
pub const CLIENT_SECRET: &str = "sim-client-secret";

/// An `OperationOutcome` with one issue.
pub fn operation_outcome(code: &str, text: &str) -> serde_json::Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "details": {"text": text}}]
    })
}

/// The simulated token endpoint.
#[derive(Debug, Clone, Copy)]
pub struct SatusehatHandler;

impl Handler for SatusehatHandler {
    fn handle(&self, req: &SimRequest, ctx: &SimContext) -> SimResponse {
        if req.path != "/oauth2/v1/accesstoken" {
            return SimResponse::json(404, &operation_outcome("not-found", "Resource not found"));
        }
        if req.method != "POST" {
            return SimResponse::method_not_allowed();
        }
        if req.query_value("grant_type") != Some("client_credentials") {
            return SimResponse::json(400, &operation_outcome("invalid", "Invalid grant_type"));
        }
        let form = req.form().unwrap_or_default();
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
            return SimResponse::json(
                401,
                &operation_outcome("invalid", "Invalid client credentials"),
            );
        }
        let token = ctx.unique("sstk");
        ctx.record_issued(&token);
        let issued_ms = ctx.now().unix_timestamp_nanos() / 1_000_000;
        SimResponse::json(
            200,
            &json!({
                "refresh_token_expires_in": "0",
                "api_product_list": "[api-satusehat-dev]",
                "organization_name": "ihs-sim",
                "developer.email": "dev@example.invalid",
                "token_type": "BearerToken",
                "issued_at": issued_ms.to_string(),
                "client_id": CLIENT_ID,
                "access_token": token,
                "application_name": "kunci-sim",
                "scope": "",
                "expires_in": ctx.token_lifetime().as_secs().to_string(),
                "refresh_count": "0",
                "status": "approved"
            }),
        )
    }
}

impl Simulated for SatusehatSource {
    type Sim = SimServer;

    const CREDENTIAL: &'static str = ENV_CLIENT_SECRET;

    async fn start(builder: SimBuilder) -> std::io::Result<SimServer> {
        builder.start(SatusehatHandler).await
    }

    fn variables(sim: &SimServer) -> Vec<(&'static str, String)> {
        vec![
            (ENV_BASE_URL, sim.base_url()),
            (ENV_CLIENT_ID, CLIENT_ID.to_owned()),
            (ENV_CLIENT_SECRET, CLIENT_SECRET.to_owned()),
        ]
    }

    fn other_credential(_: &SimServer) -> String {
        "a-regenerated-secret".to_owned()
    }

    /// Every answer this provider's document (or its server's source) gives, and what it
    /// yields.
    fn faults() -> Vec<FaultCase> {
        let mut faults = transport_faults();
        faults.extend([
            (
                "401 outcome",
                Fault::json(
                    401,
                    &operation_outcome("invalid", "Invalid client credentials"),
                ),
                Yields::Reauthentication,
            ),
            (
                "400 outcome",
                Fault::json(400, &operation_outcome("invalid", "Invalid grant_type")),
                Yields::Reauthentication,
            ),
            (
                "429 outcome",
                Fault::json(429, &operation_outcome("throttled", "Rate limit exceeded")),
                Yields::RateLimited,
            ),
            (
                "not approved",
                Fault::json(
                    200,
                    &json!({"access_token": "a", "expires_in": "60", "status": "revoked"}),
                ),
                Yields::Reauthentication,
            ),
            (
                "expires_in not a number",
                Fault::json(200, &json!({"access_token": "a", "expires_in": "soon"})),
                Yields::Protocol,
            ),
            (
                "expires_in as a number",
                Fault::json(200, &json!({"access_token": "a", "expires_in": 3599})),
                Yields::Token,
            ),
            ("wrong content type", Fault::WrongContentType, Yields::Token),
        ]);
        faults
    }

    fn refusal(text: &str) -> Fault {
        Fault::json(401, &operation_outcome("invalid", text))
    }
}
