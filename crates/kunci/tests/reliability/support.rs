//! Any provider's simulator, started by `ProviderKind::start_simulator` (feature `testing`), and
//! the variables `kunci::from_lookup` reads: no provider is named here, so one added with
//! `cargo xtask new-provider` is in every test of the suite with no hand edit.

use std::{collections::HashMap, ops::Deref, path::Path, time::Duration};

use auth_testkit::{SimBuilder, SimServer, Simulator};
use kunci::{HttpConfig, ProviderKind, TokenManager};

/// A running simulator of any provider.
pub(crate) struct Sim {
    kind: ProviderKind,
    sim: Box<dyn Simulator>,
}

impl Deref for Sim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        self.sim.server()
    }
}

impl Sim {
    pub(crate) async fn start(kind: ProviderKind, builder: SimBuilder) -> Self {
        let sim = kind
            .start_simulator(builder)
            .await
            .unwrap_or_else(|e| panic!("{kind}: its simulator does not start: {e}"));
        Self { kind, sim }
    }

    /// The provider's table of expectations (`Simulated::faults`).
    pub(crate) fn faults(&self) -> Vec<auth_testkit::conformance::FaultCase> {
        self.sim.faults()
    }

    /// The provider's own refusal of a credential, saying `text`.
    pub(crate) fn refusal(&self, text: &str) -> auth_testkit::Fault {
        self.sim.refusal(text)
    }

    /// The provider's documented variables, configured with the credentials the simulator
    /// accepts.
    pub(crate) fn vars(&self) -> HashMap<String, String> {
        self.sim
            .variables()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// The same variables with the credential the provider checks replaced by a wrong one
    /// (returned too, to search for it).
    pub(crate) fn rejected_vars(&self) -> (HashMap<String, String>, String) {
        let wrong = format!("wrong-credential-{:016x}", fastrand::u64(..));
        (self.vars_with_credential(&wrong), wrong)
    }

    /// The variables with the credential the provider checks replaced by `credential`.
    pub(crate) fn vars_with_credential(&self, credential: &str) -> HashMap<String, String> {
        let mut vars = self.vars();
        vars.insert(self.sim.credential().to_owned(), credential.to_owned());
        vars
    }

    /// The values of the secret variables of `vars` (the provider's declaration says which):
    /// what a manager built from them sends.
    fn secrets_of(&self, vars: &HashMap<String, String>) -> Vec<String> {
        let declaration = self.kind.declaration();
        let mut secrets: Vec<String> = vars
            .iter()
            .filter(|(name, _)| declaration.is_secret(name))
            .map(|(_, value)| value.clone())
            .collect();
        secrets.sort();
        secrets
    }

    /// The secrets a manager built from [`vars_with_credential`](Self::vars_with_credential)
    /// sends: `credential`, and the other secret variables beside it.
    pub(crate) fn submitted_with(&self, credential: &str) -> Vec<String> {
        self.secrets_of(&self.vars_with_credential(credential))
    }

    /// The secrets a manager built from [`vars`](Self::vars) sends with its next request, and
    /// every secret the configuration holds (not identifiers such as a client ID).
    pub(crate) fn configured_secrets(&self) -> Vec<String> {
        self.secrets_of(&self.vars())
    }
}

/// A manager built by `kunci::from_lookup` from `vars`, keeping its tokens in `store`
/// (`KUNCI_STORE`), with an HTTP timeout.
pub(crate) async fn manager(
    kind: ProviderKind,
    vars: &HashMap<String, String>,
    store: &Path,
    timeout: Duration,
) -> Result<TokenManager, kunci::Error> {
    let mut vars = vars.clone();
    vars.insert(
        kunci::ENV_STORE.to_owned(),
        store.to_string_lossy().into_owned(),
    );
    kunci::from_lookup(
        kind,
        &|name| vars.get(name).cloned(),
        HttpConfig::default().with_timeout(timeout),
    )
    .await
}
