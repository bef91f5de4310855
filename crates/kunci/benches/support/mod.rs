//! What the facade's benches share: the providers they measure, each through its simulator
//! seen as an `auth_testkit::Simulator`, and the variables configured against it. A provider
//! added by `cargo xtask new-provider` is measured by every bench with no edit.
#![allow(dead_code, reason = "each bench uses part of it")]
#![allow(
    clippy::panic,
    reason = "benchmark code: a bench that cannot start stops"
)]

use std::collections::HashMap;

use auth_testkit::{SimBuilder, Simulator};
use kunci::{HttpConfig, ProviderKind, TokenManager};

/// The providers a bench measures: every one compiled in (`ProviderKind::ALL`), or the ones
/// named in `KUNCI_BENCH_PROVIDERS` (comma-separated, `KUNCI_BENCH_PROVIDERS=sehatmu`) to
/// measure fewer.
pub(crate) fn providers() -> Vec<ProviderKind> {
    match std::env::var("KUNCI_BENCH_PROVIDERS") {
        Ok(names) => names
            .split(',')
            .map(|name| {
                ProviderKind::from_name(name.trim()).unwrap_or_else(|| {
                    panic!("KUNCI_BENCH_PROVIDERS: no provider `{name}` in this build")
                })
            })
            .collect(),
        Err(_) => ProviderKind::ALL.to_vec(),
    }
}

/// Starts `kind`'s simulator with `builder`'s settings, on `rt`, without the provider's own
/// rate limit (`SimBuilder::without_rate_limits`, as Kalsel.dev's server exempts its own
/// host): the benches measure kunci, not the provider's limit.
pub(crate) fn start(
    rt: &tokio::runtime::Runtime,
    kind: ProviderKind,
    builder: SimBuilder,
) -> Box<dyn Simulator> {
    rt.block_on(kind.start_simulator(builder.without_rate_limits()))
        .unwrap_or_else(|e| panic!("{}'s simulator did not start: {e}", kind.name()))
}

/// The variables configured against `sim`, and `KUNCI_STORE` set to `store`: what
/// `kunci::from_lookup` reads.
pub(crate) fn variables(sim: &dyn Simulator, store: &str) -> HashMap<String, String> {
    sim.variables()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .chain([(kunci::ENV_STORE.to_owned(), store.to_owned())])
        .collect()
}

/// A manager for `kind` from `vars` (see [`variables`]), as `kunci::from_lookup` builds it, on
/// `rt`.
pub(crate) fn manager(
    rt: &tokio::runtime::Runtime,
    kind: ProviderKind,
    vars: &HashMap<String, String>,
) -> TokenManager {
    rt.block_on(kunci::from_lookup(
        kind,
        &|name| vars.get(name).cloned(),
        HttpConfig::default(),
    ))
    .unwrap_or_else(|e| panic!("{}'s manager: {e}", kind.name()))
}
