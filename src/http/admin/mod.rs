//! The admin site (the editor's dashboard), on a listener of its own
//! (`[admin] listen`, loopback by default) beside the public site. Nothing
//! here is reachable without a session except the login page, the static
//! assets and `/metrics` (which asks for its own bearer token).
//!
//! Security, in one place each:
//! - `auth.rs`: sessions in memory (a random 256-bit token in an HttpOnly,
//!   SameSite=Strict cookie, kept only as its SHA-256; idle and absolute
//!   expiry), the login with its rate limits, logout, and the middleware
//!   every protected route sits behind.
//! - `csrf.rs`: the per-session token every POST form carries, the login
//!   form's double-submit cookie, and the refusal of cross-site POSTs by
//!   `Origin` and `Sec-Fetch-Site`.
//! - [`security_headers`]: CSP without inline script, no caching, no
//!   framing, no referrer, on every response.

mod auth;
mod campaigns;
mod csrf;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::config::Settings;
use crate::domain::AdminPasswordHash;
use crate::render::admin::{ADMIN_CSS, ADMIN_JS};
use crate::render::{AdminPages, Nav, PageView};
use crate::send::daemon::AdoptedCampaigns;
use crate::store::Store;

pub use auth::{LoginLimits, Sessions};
pub use csrf::CsrfToken;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "herald_admin";

/// The largest request body a protected POST may have: forms of a few
/// short fields. Read whole by the CSRF check before the handler runs.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// What every admin handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub pages: Arc<AdminPages>,
    pub sessions: Arc<Sessions>,
    pub(crate) login: Arc<auth::Login>,
    /// Turns true when the server is stopping: event streams end then,
    /// so they do not hold the graceful shutdown up.
    pub stopping: watch::Receiver<bool>,
    /// Whether cookies carry `Secure`: always, unless the listener is on
    /// loopback (plain http://127.0.0.1 would drop a Secure cookie).
    pub secure_cookies: bool,
    /// The campaign loop of the `herald serve` this site runs in: a
    /// campaign resumed here is sent by it. `None`: a `herald worker` sends.
    pub adopted: Option<AdoptedCampaigns>,
}

impl AdminState {
    pub fn new(
        store: Store,
        settings: Arc<Settings>,
        password: AdminPasswordHash,
        secure_cookies: bool,
        stopping: watch::Receiver<bool>,
    ) -> anyhow::Result<AdminState> {
        Ok(AdminState {
            store,
            settings,
            pages: Arc::new(AdminPages::new()?),
            sessions: Arc::new(Sessions::default()),
            login: Arc::new(auth::Login::new(password, LoginLimits::default())),
            stopping,
            secure_cookies,
            adopted: None,
        })
    }

    /// Resumed campaigns go to this campaign loop.
    pub fn with_adopter(mut self, adopted: Option<AdoptedCampaigns>) -> AdminState {
        self.adopted = adopted;
        self
    }

    /// The same with other login rate limits (tests).
    pub fn with_login_limits(mut self, limits: LoginLimits) -> AdminState {
        let password = self.login.password.clone();
        self.login = Arc::new(auth::Login::new(password, limits));
        self
    }

    /// Renders a page in the layout, or a plain 500 when a template fails
    /// (a bug: the templates are built in and tested).
    pub fn render(
        &self,
        title: &str,
        active: Nav,
        csrf: &str,
        template: &str,
        context: &impl serde::Serialize,
    ) -> Response {
        let page = self.pages.body(template, context).and_then(|body_html| {
            self.pages.page(&PageView {
                title: title.to_string(),
                active,
                csrf: csrf.to_string(),
                body_html,
            })
        });
        match page {
            Ok(html) => Html(html).into_response(),
            Err(error) => internal_error(&error),
        }
    }
}

/// Logs a fault and answers 500 without its details.
pub fn internal_error(error: &anyhow::Error) -> Response {
    tracing::error!("admin site: {error:#}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server's log",
    )
        .into_response()
}

/// Every admin route. Those behind the session check are listed in
/// [`protected_routes`]; the rest are open by design.
pub fn admin_router(state: AdminState) -> Router {
    let open = Router::new()
        .route("/login", get(auth::login_page).post(auth::log_in))
        .route("/static/admin.css", get(stylesheet))
        .route("/static/admin.js", get(script));
    open.merge(protected_routes(&state))
        .layer(middleware::from_fn(csrf::refuse_cross_site))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The pages and actions that need a session. The middleware runs on the
/// fallback too, so an unknown path without a session goes to the login
/// page rather than telling what exists.
fn protected_routes(state: &AdminState) -> Router<AdminState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/campaigns") }))
        .route("/logout", post(auth::log_out))
        .merge(campaigns::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_session,
        ))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such page").into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        ADMIN_CSS,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        ADMIN_JS,
    )
        .into_response()
}

/// The Content-Security-Policy of every admin page: only this origin's
/// script and style, no inline script (so an injected `<script>` does not
/// run), images inline for the charts, no framing, forms only to here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; form-action 'self'";

/// Adds the security headers to every response that does not set its own
/// (the issue preview, framed by the issues page, sets a CSP and
/// X-Frame-Options of its own that allow its own origin).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults: [(HeaderName, &str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        // Pages show the list and its people: never kept by a browser or
        // a proxy, never shown from the back-button cache after logout.
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
