//! Every provider compiled in, each through its simulator (`ProviderKind::start_simulator`,
//! seen as an `auth_testkit::Simulator`): the commands a user runs first, with no provider
//! named here, so a provider added by `cargo xtask new-provider` is tested by the CLI with no
//! edit. What is particular to one provider is tested beside the others' in the other files.

use auth_testkit::SimServer;
use kunci::ProviderKind;

use crate::support::Kunci;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_gets_a_token_keeps_it_shows_it_and_exits_3_when_its_credential_is_refused()
{
    for &kind in ProviderKind::ALL {
        let name = kind.name();
        let sim = kind.start_simulator(SimServer::builder()).await.unwrap();
        let server = sim.server();
        let mut k = Kunci::new();
        let variables = sim.variables();
        for (variable, value) in &variables {
            k.env(variable, value.as_str());
        }
        let mut secrets: Vec<String> = variables
            .iter()
            .filter(|(variable, _)| kind.declaration().is_secret(variable))
            .map(|(_, value)| value.clone())
            .collect();
        assert!(!secrets.is_empty(), "{name} declares no secret");

        // The token alone on stdout: one the simulator issued, after one request.
        let run = k.run(&["token", name]).await;
        let token = run.expect(0).line().to_owned();
        assert!(server.issued_tokens().contains(&token), "{name}: {token}");
        assert_eq!(server.request_count(), 1, "{name}");
        run.expect_no_secret(&secrets.iter().map(String::as_str).collect::<Vec<_>>());

        // Again, and as a header: from the store, no request.
        let again = k.run(&["token", name]).await;
        assert_eq!(again.expect(0).line(), token, "{name}");
        let header = k.run(&["header", name]).await;
        let header = header.expect(0).line().to_owned();
        assert!(
            kind.declaration()
                .schemes
                .iter()
                .any(|scheme| header == format!("Authorization: {scheme} {token}")),
            "{name}: {header}"
        );
        assert_eq!(server.request_count(), 1, "{name}: served from the store");

        // Its status: fresh, and neither the token nor a secret.
        secrets.push(token.clone());
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let status = k.run(&["status", name, "--json"]).await;
        status.expect(0).expect_no_secret(&secrets);
        let json: serde_json::Value = serde_json::from_str(status.line()).unwrap();
        assert_eq!(json["profiles"][0]["profile"], name, "{json}");
        assert_eq!(json["profiles"][0]["state"], "fresh", "{json}");

        // Logged out, the next token needs a request, which the provider refuses in its own
        // words: "log in again" (exit 3), one error line, no secret.
        k.run(&["logout", name]).await.expect(0);
        server.fail_next(sim.refusal("refused by the test"));
        let refused = k.run(&["token", name]).await;
        refused.expect_error(3, name).expect_no_secret(&secrets);
        assert_eq!(server.request_count(), 2, "{name}");
        assert!(refused.stdout.is_empty(), "{name}: {}", refused.stdout);
    }
}
