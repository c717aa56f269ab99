//! The subscriber side of the web server: the sign-up form, the double
//! opt-in's confirm page, and unsubscribe (including RFC 8058 one-click).
//!
//! `subscriber_routes` returns a finished router (state applied) to be
//! `.merge()`d into the main one. It must be served with
//! `into_make_service_with_connect_info::<SocketAddr>()`: the per-IP rate
//! limit reads the peer address.
//!
//! Every GET here only shows a page. Corporate mail scanners and link
//! previewers open every link in a message, so a GET that confirmed or
//! unsubscribed would act for people who never clicked; the change happens
//! on the page's POST button.

mod confirm;
mod error;
mod pages;
mod subscribe;
mod unsubscribe;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Settings;
use crate::render::Templates;
use crate::send::outbox::OutboxSignal;
use crate::store::Store;
use crate::subscription::Subscriptions;

pub use error::SubscriberWebError;

/// The largest request body accepted: a sign-up is two short fields.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Everything the subscriber handlers share. Cheap to clone.
#[derive(Clone)]
pub struct SubscriberWeb {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: Arc<Settings>,
    templates: Arc<Templates>,
    subscriptions: Subscriptions,
    /// Wakes the transactional mail worker when a confirmation was queued.
    outbox: OutboxSignal,
    /// Sign-up requests per client network; `None` when the limit is 0.
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Sign-up requests per address, whoever sends them.
    per_address: Option<DefaultKeyedRateLimiter<String>>,
}

impl SubscriberWeb {
    /// `outbox` is the signal of the `run_transactional_worker` that
    /// delivers the confirmation mails. Fails when `[mail] from` or
    /// `reply_to` is not a valid address, or the confirmation mail's
    /// templates do not render.
    pub fn new(
        store: Store,
        settings: Arc<Settings>,
        templates: Arc<Templates>,
        outbox: OutboxSignal,
    ) -> anyhow::Result<SubscriberWeb> {
        let subscriptions = Subscriptions::new(settings.clone(), &templates)?;
        let per_ip = NonZeroU32::new(settings.server.subscribe_per_ip_per_minute)
            .map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        let per_address = NonZeroU32::new(settings.server.subscribe_per_address_per_hour)
            .map(|n| RateLimiter::keyed(Quota::per_hour(n)));
        Ok(SubscriberWeb {
            inner: Arc::new(Inner {
                store,
                settings,
                templates,
                subscriptions,
                outbox,
                per_ip,
                per_address,
            }),
        })
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn subscriptions(&self) -> &Subscriptions {
        &self.inner.subscriptions
    }
}

/// `GET|POST /subscribe`, `GET|POST /confirm/{token}`,
/// `GET|POST /unsubscribe/{token}`, with their state and a body limit.
pub fn subscriber_routes(state: SubscriberWeb) -> Router {
    Router::new()
        .route(
            "/subscribe",
            get(subscribe::show_form).post(subscribe::submit_form),
        )
        .route(
            "/confirm/{token}",
            get(confirm::show_confirm_page).post(confirm::confirm_subscription),
        )
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::show_unsubscribe_page).post(unsubscribe::unsubscribe),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
