//! One simulator per provider behind one type, and the variables `kunci::from_lookup` reads.

use std::{collections::HashMap, ops::Deref, path::Path, time::Duration};

use auth_testkit::{
    SimBuilder, SimServer, kalsel::KalselSim, krmpesan::KrmPesanSim, sehatmu::SehatMuSim,
    stamps::StampsSim,
};
use kunci::{HttpConfig, ProviderKind, TokenManager};

/// Every provider kunci ships.
pub(crate) const PROVIDERS: [ProviderKind; 4] = [
    ProviderKind::KrmPesan,
    ProviderKind::Kalsel,
    ProviderKind::Stamps,
    ProviderKind::SehatMu,
];

/// A running simulator of any provider.
pub(crate) enum Sim {
    KrmPesan(KrmPesanSim),
    Kalsel(KalselSim),
    Stamps(StampsSim),
    SehatMu(SehatMuSim),
}

impl Deref for Sim {
    type Target = SimServer;
    fn deref(&self) -> &SimServer {
        match self {
            Self::KrmPesan(s) => s,
            Self::Kalsel(s) => s,
            Self::Stamps(s) => s,
            Self::SehatMu(s) => s,
        }
    }
}

impl Sim {
    pub(crate) async fn start(kind: ProviderKind, builder: SimBuilder) -> Self {
        match kind {
            ProviderKind::KrmPesan => {
                Self::KrmPesan(KrmPesanSim::start_with(builder).await.unwrap())
            }
            ProviderKind::Kalsel => Self::Kalsel(KalselSim::start_with(builder).await.unwrap()),
            ProviderKind::Stamps => Self::Stamps(StampsSim::start_with(builder).await.unwrap()),
            ProviderKind::SehatMu => Self::SehatMu(SehatMuSim::start_with(builder).await.unwrap()),
            other => panic!("no simulator for {other:?}"),
        }
    }

    /// The provider's documented variables, configured with the credentials the simulator
    /// accepts.
    pub(crate) fn vars(&self) -> HashMap<String, String> {
        let base = self.base_url();
        let pairs: Vec<(&str, String)> = match self {
            Self::KrmPesan(s) => vec![
                ("KRMPESAN_REFRESH_TOKEN", s.refresh_token().to_owned()),
                ("KRMPESAN_DEVICE_KEY", s.device_key().to_owned()),
                ("KRMPESAN_BASE_URL", base),
            ],
            Self::Kalsel(s) => vec![
                ("KALSEL_REFRESH_TOKEN", s.initial_refresh_token().to_owned()),
                ("KALSEL_BASE_URL", base),
            ],
            Self::Stamps(s) => vec![
                ("STAMPS_TOKEN", s.auth_token().to_owned()),
                ("STAMPS_MERCHANT_ID", s.merchant_id().to_string()),
                ("STAMPS_BASE_URL", base),
            ],
            Self::SehatMu(s) => vec![
                ("SEHATMU_CLIENT_ID", s.client_id().to_owned()),
                ("SEHATMU_CLIENT_SECRET", s.client_secret().to_owned()),
                ("SEHATMU_BASE_URL", base),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
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
        let name = match self {
            Self::KrmPesan(_) => "KRMPESAN_REFRESH_TOKEN",
            Self::Kalsel(_) => "KALSEL_REFRESH_TOKEN",
            Self::Stamps(_) => "STAMPS_TOKEN",
            Self::SehatMu(_) => "SEHATMU_CLIENT_SECRET",
        };
        vars.insert(name.to_owned(), credential.to_owned());
        vars
    }

    /// The secrets a manager built from [`vars_with_credential`](Self::vars_with_credential)
    /// sends: `credential`, and KrmPesan's device key beside it.
    pub(crate) fn submitted_with(&self, credential: &str) -> Vec<String> {
        let mut sent = vec![credential.to_owned()];
        if let Self::KrmPesan(s) = self {
            sent.push(s.device_key().to_owned());
        }
        sent
    }

    /// The secrets a manager built from [`vars`](Self::vars) sends with its next request: the
    /// configured credentials, and for Kalsel.dev the rotated refresh token (the last token
    /// issued) too.
    pub(crate) fn submitted(&self) -> Vec<String> {
        match self {
            Self::KrmPesan(s) => vec![s.refresh_token().to_owned(), s.device_key().to_owned()],
            Self::Kalsel(s) => {
                let mut sent = vec![s.initial_refresh_token().to_owned()];
                sent.extend(s.issued_tokens().last().cloned());
                sent
            }
            Self::Stamps(s) => vec![s.auth_token().to_owned()],
            Self::SehatMu(s) => vec![s.client_secret().to_owned()],
        }
    }

    /// Every secret the configuration holds (not identifiers such as a client ID).
    pub(crate) fn configured_secrets(&self) -> Vec<String> {
        match self {
            Self::KrmPesan(s) => vec![s.refresh_token().to_owned(), s.device_key().to_owned()],
            Self::Kalsel(s) => vec![s.initial_refresh_token().to_owned()],
            Self::Stamps(s) => vec![s.auth_token().to_owned(), s.static_token().to_owned()],
            Self::SehatMu(s) => vec![s.client_secret().to_owned()],
        }
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
