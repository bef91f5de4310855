//! The agent's own series beside the facade's (`kunci::metrics`): requests served, by route and
//! status, and peers refused. Each (route, status) counter is looked up in its family once, on
//! first use, and kept in a slot picked by index: counting a request is one atomic add, with no
//! label lookup on the hot path, and only the series that happened are exposed.

use std::sync::OnceLock;

use http::StatusCode;
use kunci::metrics::{
    Metrics,
    prometheus_client::{
        metrics::{counter::Counter, family::Family},
        registry::Registry,
    },
};

/// A route, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Token,
    Header,
    Invalidate,
    Status,
    Health,
    Metrics,
    Other,
}

const ROUTES: [(Route, &str); 7] = [
    (Route::Token, "token"),
    (Route::Header, "header"),
    (Route::Invalidate, "invalidate"),
    (Route::Status, "status"),
    (Route::Health, "healthz"),
    (Route::Metrics, "metrics"),
    (Route::Other, "other"),
];

/// The statuses the agent answers; anything else is counted as `other` (the last slot).
const CODES: [u16; 12] = [200, 400, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504];
const SLOTS_PER_ROUTE: usize = CODES.len() + 1;

/// `route`, `code`.
type RequestLabels = [(&'static str, String); 2];
/// `reason`.
type RefusalLabels = [(&'static str, &'static str); 1];

/// Requests served, by route and status.
#[derive(Debug)]
pub(crate) struct Requests {
    family: Family<RequestLabels, Counter>,
    slots: Vec<OnceLock<Counter>>,
    refused_peers: Counter,
}

impl Requests {
    /// Counts one answered request.
    pub(crate) fn count(&self, route: Route, status: StatusCode) {
        let r = ROUTES.iter().position(|(x, _)| *x == route).unwrap_or(0);
        let c = CODES
            .iter()
            .position(|c| *c == status.as_u16())
            .unwrap_or(CODES.len());
        let Some(slot) = self.slots.get(r * SLOTS_PER_ROUTE + c) else {
            return;
        };
        slot.get_or_init(|| {
            let code = CODES
                .get(c)
                .map_or_else(|| "other".to_owned(), u16::to_string);
            self.family
                .get_or_create(&[("route", ROUTES[r].1.to_owned()), ("code", code)])
                .clone()
        })
        .inc();
    }

    /// Counts one connection refused because of who the peer is.
    pub(crate) fn refused_peer(&self) {
        self.refused_peers.inc();
    }
}

/// The registry `/metrics` encodes: the facade's series and the agent's.
pub(crate) fn registry(metrics: &Metrics) -> (Registry, Requests) {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let family = Family::<RequestLabels, Counter>::default();
    registry.register(
        "kunci_agent_requests",
        "Requests the agent answered, by route and status",
        family.clone(),
    );
    let refusals = Family::<RefusalLabels, Counter>::default();
    let refused_peers = refusals.get_or_create(&[("reason", "peer")]).clone();
    registry.register(
        "kunci_agent_refused_connections",
        "Connections refused because the peer's user is not allowed",
        refusals,
    );
    (
        registry,
        Requests {
            family,
            slots: (0..ROUTES.len() * SLOTS_PER_ROUTE)
                .map(|_| OnceLock::new())
                .collect(),
            refused_peers,
        },
    )
}
