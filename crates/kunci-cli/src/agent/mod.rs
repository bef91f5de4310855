//! `kunci agent`: one token refresher per host, for every language. It serves the configured
//! profiles over HTTP/1.1 on a Unix domain socket (`api.rs` lists the routes), refreshes every
//! token ahead of expiry in the background, persists to the configured store (so a restarted
//! agent serves at once, and agents on many hosts can share Redis), writes sinks, exposes
//! metrics, reloads its configuration on SIGHUP and stops cleanly on SIGTERM. See
//! `docs/agent.md`.
//!
//! Module map: `tokens` (the seam to the token machinery), `api` (routes and errors), `server`
//! (socket, peer credentials, limits), `settings` (the `[agent]` table), `sinks`, `metrics`
//! (the agent's own series), `notify` (systemd readiness) and `client` (how `kunci token` asks
//! a running agent).

pub(crate) mod api;
pub(crate) mod client;
mod metrics;
mod notify;
mod server;
pub(crate) mod settings;
mod sinks;
pub(crate) mod tokens;

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use kunci::{SharedTokenStore, StoreSpec, metrics::prometheus_client::registry::Registry};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::watch,
    task::JoinSet,
};

use self::{
    metrics::Requests,
    server::{Allowed, SocketFile},
    settings::{Overrides, Settings},
    tokens::Tokens,
};
use crate::{cli::Global, context::Context, failure::Failure};

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) tokens: ArcSwap<Tokens>,
    pub(crate) allowed: ArcSwap<Allowed>,
    pub(crate) registry: Registry,
    pub(crate) requests: Requests,
    pub(crate) max_connections: usize,
}

/// Aborts a task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn allowed(settings: &Settings) -> Allowed {
    Allowed {
        own_uid: rustix::process::geteuid().as_raw(),
        uids: settings.allow_uids.clone(),
        gids: settings.allow_gids.clone(),
    }
}

fn start_sinks(settings: &Settings, tokens: &Arc<Tokens>) -> Vec<AbortOnDrop> {
    settings
        .sinks
        .iter()
        .map(|sink| AbortOnDrop(tokio::spawn(sinks::run(sink.clone(), Arc::clone(tokens)))))
        .collect()
}

/// Gets every profile's first token — from the store when it holds a valid one, else with one
/// request — so the agent is ready when it says so. Bounded: a provider that does not answer
/// delays readiness by at most `bound`, and its profile keeps being retried in the background.
async fn warm_up(tokens: &Arc<Tokens>, bound: Duration) {
    let mut set = JoinSet::new();
    for name in tokens.names() {
        let tokens = Arc::clone(tokens);
        let name = name.to_owned();
        set.spawn(async move {
            match tokio::time::timeout(bound, tokens.token(&name)).await {
                Ok(Ok(_)) => tracing::info!(profile = %name, "token ready"),
                Ok(Err(tokens::Lookup::Failed(e))) => {
                    tracing::warn!(profile = %name, error = %e, "no token yet");
                }
                Ok(Err(_)) => {}
                Err(_) => tracing::warn!(profile = %name, "no token yet: the provider is slow"),
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Runs the agent until SIGTERM or SIGINT.
pub(crate) async fn run(global: &Global, overrides: Overrides) -> Result<(), Failure> {
    let ctx = Context::new(global)?;
    let settings = Settings::new(ctx.config.agent.as_ref(), &overrides)?;
    let store = ctx.open_store().await?;
    let facade_metrics = kunci::metrics::Metrics::new();
    let tokens = Arc::new(
        Tokens::build(
            &ctx,
            &store,
            settings.profiles.as_deref(),
            None,
            &facade_metrics,
        )
        .await?,
    );
    let (registry, requests) = metrics::registry(&facade_metrics);
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            Failure::configuration(format!("cannot listen on {addr} for metrics: {e}"))
        })?),
        None => None,
    };
    let listener = server::bind(&settings.socket, settings.socket_mode).await?;
    let _socket = SocketFile(settings.socket.clone());
    let state = Arc::new(State {
        tokens: ArcSwap::new(Arc::clone(&tokens)),
        allowed: ArcSwap::from_pointee(allowed(&settings)),
        registry,
        requests,
        max_connections: settings.max_connections,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let unix = tokio::spawn(server::serve_unix(
        listener,
        Arc::clone(&state),
        stop_rx.clone(),
    ));
    let tcp = metrics_listener.map(|l| {
        AbortOnDrop(tokio::spawn(server::serve_metrics(
            l,
            Arc::clone(&state),
            stop_rx,
        )))
    });
    tracing::info!(socket = %settings.socket.display(), profiles = tokens.names().count(), store = %store.describe(), "agent listening");

    let signal_failure = |e: std::io::Error| {
        Failure::new(
            crate::failure::code::OTHER,
            format!("cannot listen for signals: {e}"),
        )
    };
    let mut term = signal(SignalKind::terminate()).map_err(signal_failure)?;
    let mut int = signal(SignalKind::interrupt()).map_err(signal_failure)?;
    let mut hup = signal(SignalKind::hangup()).map_err(signal_failure)?;

    let mut sinks = start_sinks(&settings, &tokens);
    let stopped_early = tokio::select! {
        () = warm_up(&tokens, ctx.timeout + Duration::from_secs(5)) => false,
        _ = term.recv() => true,
        _ = int.recv() => true,
    };
    if !stopped_early {
        let status = format!(
            "STATUS=serving {} profile(s) on {}",
            tokens.names().count(),
            settings.socket.display()
        );
        if let Err(e) = notify::notify(&format!("READY=1\n{status}")) {
            tracing::warn!(error = %e, "cannot notify systemd of readiness");
        }
    }
    let mut current = settings;
    let mut store = (ctx.spec.clone(), store);
    // Serve until SIGTERM or SIGINT (unless one came during the warm-up).
    if !stopped_early {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    match reload(global, &overrides, &current, &store, &state, &facade_metrics).await {
                        Ok((settings, new_store, tokens)) => {
                            sinks = start_sinks(&settings, &tokens);
                            current = settings;
                            store = new_store;
                            tracing::info!(profiles = tokens.names().count(), "configuration reloaded");
                        }
                        Err(e) => tracing::error!(error = e.message(), "reload failed; the previous configuration stays"),
                    }
                }
            }
        }
    }
    tracing::info!("stopping");
    let _ = notify::notify("STOPPING=1");
    let _ = stop_tx.send(true);
    let _ = unix.await;
    drop(tcp);
    drop(sinks);
    Ok(())
}

/// Re-reads the config file: profiles whose configuration did not change keep their manager
/// (and cache); the allow-list and sinks are replaced. The socket, its mode, the connection
/// limit and the metrics port stay until a restart.
async fn reload(
    global: &Global,
    overrides: &Overrides,
    current: &Settings,
    (spec, store): &(StoreSpec, SharedTokenStore),
    state: &State,
    facade_metrics: &kunci::metrics::Metrics,
) -> Result<(Settings, (StoreSpec, SharedTokenStore), Arc<Tokens>), Failure> {
    let ctx = Context::new(global)?;
    let settings = Settings::new(ctx.config.agent.as_ref(), overrides)?;
    if settings.socket != current.socket
        || settings.socket_mode != current.socket_mode
        || settings.max_connections != current.max_connections
        || settings.metrics_listen != current.metrics_listen
    {
        tracing::warn!(
            "the socket, its mode, max_connections and metrics_listen change only at a restart"
        );
    }
    let same_store = ctx.spec == *spec;
    let store = if same_store {
        store.clone()
    } else {
        ctx.open_store().await?
    };
    let previous = state.tokens.load_full();
    let tokens = Arc::new(
        Tokens::build(
            &ctx,
            &store,
            settings.profiles.as_deref(),
            same_store.then_some(&*previous),
            facade_metrics,
        )
        .await?,
    );
    state.tokens.store(Arc::clone(&tokens));
    state.allowed.store(Arc::new(allowed(&settings)));
    Ok((settings, (ctx.spec.clone(), store), tokens))
}
