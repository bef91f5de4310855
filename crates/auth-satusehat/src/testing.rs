//! Satusehat's simulator (feature `testing`): a stub of its token endpoint on the testkit
//! framework, behind `auth_testkit::Simulated`, so the demo, the reliability suite and the
//! conformance kit run Satusehat too. Make it faithful to the provider's document.

use auth_testkit::{
    Handler, SimBuilder, SimContext, SimRequest, SimResponse, SimServer, Simulated, Simulator,
    Started, simulator::replace_variable,
};

use crate::{ENV_API_KEY, ENV_BASE_URL, SatusehatSource};

/// The API key the simulator accepts.
pub const API_KEY: &str = "test-api-key";

/// The simulated token endpoint.
#[derive(Debug, Clone, Copy)]
pub struct SatusehatHandler;

impl Handler for SatusehatHandler {
    fn handle(&self, req: &SimRequest, ctx: &SimContext) -> SimResponse {
        if req.method != "POST" || req.path != "/oauth/token" {
            return SimResponse::not_found();
        }
        match req
            .json()
            .and_then(|v| v["api_key"].as_str().map(str::to_owned))
        {
            Some(key) if key == API_KEY => {
                let token = ctx.unique("tok");
                ctx.record_issued(&token);
                SimResponse::json(
                    200,
                    &serde_json::json!({ "access_token": token, "expires_in": ctx.token_lifetime().as_secs() }),
                )
            }
            _ => SimResponse::json(401, &serde_json::json!({ "error": "invalid api key" })),
        }
    }
}

/// The running simulator.
#[derive(Debug)]
pub struct SatusehatSim(SimServer);

impl Simulator for SatusehatSim {
    fn server(&self) -> &SimServer {
        &self.0
    }

    fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_BASE_URL, self.0.base_url()),
            (ENV_API_KEY, API_KEY.to_owned()),
        ]
    }

    fn other_credential(&self) -> Vec<(&'static str, String)> {
        replace_variable(self.variables(), ENV_API_KEY, "another-api-key")
    }
}

impl Simulated for SatusehatSource {
    fn start_simulator(builder: SimBuilder) -> Started {
        Box::pin(async move {
            let server = builder.start(SatusehatHandler).await?;
            Ok(Box::new(SatusehatSim(server)) as Box<dyn Simulator>)
        })
    }
}
