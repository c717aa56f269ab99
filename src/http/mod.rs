//! The HTTP side: one axum router that serves the built site and that other
//! parts (subscribe, confirm, unsubscribe) merge their routes into.

pub mod admin;
pub mod clicks;
pub mod preview;
pub mod server;
pub mod site;
pub mod subscribers;
pub mod webhooks;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::config::Settings;

/// What every handler can reach. Cheap to clone: everything is behind `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub site: Arc<site::Site>,
}

impl AppState {
    pub fn new(settings: Settings) -> Self {
        let site = site::Site::new(&settings);
        AppState {
            settings: Arc::new(settings),
            site: Arc::new(site),
        }
    }
}

/// Every route Herald serves. The built site is the fallback, so routes
/// merged in later (`router(state).merge(other)`) take precedence over any
/// file of the same name; a merged router must not set a fallback of its own.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(site::serve_site)
        .with_state(state)
}

/// For load balancers and `herald serve` smoke checks: the process is up.
async fn healthz() -> &'static str {
    "ok"
}
