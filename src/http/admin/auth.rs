//! Who may use the admin site: one editor password (an Argon2id hash from
//! the environment), sessions in memory, a rate-limited login, logout.
//!
//! Sessions live in the process: a restart logs the editor out, which is
//! the safe direction, and there is nothing in the database to steal. The
//! token is 256 random bits; only its SHA-256 is kept, so a memory dump or
//! a timing difference in the map's lookup gives nothing usable away.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Form, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::csrf::{form_token, is_unsafe, CsrfToken};
use super::{AdminState, MAX_FORM_BYTES, SESSION_COOKIE};
use crate::domain::AdminPasswordHash;
use crate::render::Nav;

/// A session unused this long ends: a working day with breaks.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(12 * 60 * 60);
/// And any session ends this long after login, used or not, so a stolen
/// cookie does not live for ever.
pub const ABSOLUTE_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);
/// Sessions kept at most; past it the oldest goes. One editor needs a
/// handful; the cap keeps logins in a loop from growing memory.
const MAX_SESSIONS: usize = 256;
/// The login form's double-submit cookie, sent back only to /login.
const LOGIN_COOKIE: &str = "herald_login_csrf";

struct Session {
    csrf: CsrfToken,
    created: Instant,
    last_seen: Instant,
}

/// The live sessions, by SHA-256 of their token.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// A new session: its cookie token and its CSRF token.
    pub fn create(&self) -> (String, CsrfToken) {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let csrf = CsrfToken::generate();
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, session| !session.expired(now));
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, session)| session.created)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        let session = Session {
            csrf: csrf.clone(),
            created: now,
            last_seen: now,
        };
        sessions.insert(token_key(&token), session);
        (token, csrf)
    }

    /// The session's CSRF token, if `token` is a live session; using it
    /// keeps it alive (up to the absolute expiry).
    pub fn find(&self, token: &str) -> Option<CsrfToken> {
        let key = token_key(token);
        let now = Instant::now();
        let mut sessions = self.lock();
        let session = sessions.get_mut(&key)?;
        if session.expired(now) {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.csrf.clone())
    }

    /// Ends a session: its cookie no longer works, wherever it was copied.
    pub fn remove(&self, token: &str) {
        self.lock().remove(&token_key(token));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves the map consistent (every
        // change is one insert or remove), so its poison is ignored.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) > IDLE_EXPIRY
            || now.duration_since(self.created) > ABSOLUTE_EXPIRY
    }
}

/// Login attempts allowed, per client address and in all.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_ip_per_minute: NonZeroU32,
    /// From everywhere together: rotating addresses does not buy more
    /// guesses. High enough that one attacker cannot lock the editor out
    /// for long.
    pub global_per_minute: NonZeroU32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_ip_per_minute: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            global_per_minute: NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// The password and the limits on guessing it.
pub(crate) struct Login {
    pub(crate) password: AdminPasswordHash,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    global: DefaultDirectRateLimiter,
}

impl Login {
    pub(crate) fn new(password: AdminPasswordHash, limits: LoginLimits) -> Login {
        Login {
            password,
            per_ip: RateLimiter::keyed(Quota::per_minute(limits.per_ip_per_minute)),
            global: RateLimiter::direct(Quota::per_minute(limits.global_per_minute)),
        }
    }

    /// Takes one attempt from the client's and the global allowance.
    fn allow(&self, client: IpAddr) -> bool {
        self.per_ip.check_key(&client).is_ok() && self.global.check().is_ok()
    }
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly (no script reads it), SameSite=Strict
/// (no other site's link or form sends it), Secure unless on loopback.
fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={}{secure}",
        max_age.as_secs()
    );
    // Made from hex tokens and fixed text only, so always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Serialize)]
struct LoginView<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
}

/// The login page with a fresh double-submit token, and its cookie.
///
/// A token the browser already holds is kept rather than replaced: every
/// page the browser asks for without a session (its own `/favicon.ico`, a
/// second tab) lands here, and a new token each time would make the form
/// already on screen fail as expired.
fn login_form(
    state: &AdminState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let token = cookie(headers, LOGIN_COOKIE)
        .filter(|held| held.len() == 64 && held.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(CsrfToken::from_cookie)
        .unwrap_or_else(CsrfToken::generate);
    let view = LoginView {
        csrf: token.as_str(),
        error,
    };
    let mut response = state.render("Log in", Nav::None, "", "login", &view);
    *response.status_mut() = status;
    let cookie = set_cookie(
        LOGIN_COOKIE,
        token.as_str(),
        "/login",
        Duration::from_secs(60 * 60),
        state.secure_cookies,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// `GET /login`: the form; straight on to the campaigns with a session.
pub async fn login_page(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if cookie(&headers, SESSION_COOKIE)
        .and_then(|token| state.sessions.find(token))
        .is_some()
    {
        return Redirect::to("/campaigns").into_response();
    }
    login_form(&state, &headers, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /login`: rate-limited, CSRF-checked, then the password verified
/// off the async threads (Argon2id takes tens of milliseconds by design).
pub async fn log_in(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !state.login.allow(peer.ip()) {
        tracing::warn!(
            "admin site: login attempts from {} over the limit",
            peer.ip()
        );
        let message = "Too many login attempts; wait a minute and try again.";
        return login_form(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some(message),
        );
    }
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !CsrfToken::from_cookie(expected).matches(&form.csrf) {
        let message = "The login form had expired; please try again.";
        return login_form(&state, &headers, StatusCode::FORBIDDEN, Some(message));
    }
    let login = state.login.clone();
    let password = form.password;
    let verified = tokio::task::spawn_blocking(move || login.password.verify(&password))
        .await
        .unwrap_or(false);
    if !verified {
        tracing::warn!("admin site: wrong password from {}", peer.ip());
        return login_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Wrong password."),
        );
    }
    let (token, _) = state.sessions.create();
    tracing::info!("admin site: logged in from {}", peer.ip());
    let mut response = Redirect::to("/campaigns").into_response();
    let session = set_cookie(
        SESSION_COOKIE,
        &token,
        "/",
        ABSOLUTE_EXPIRY,
        state.secure_cookies,
    );
    let spent = set_cookie(
        LOGIN_COOKIE,
        "",
        "/login",
        Duration::ZERO,
        state.secure_cookies,
    );
    response.headers_mut().append(header::SET_COOKIE, session);
    response.headers_mut().append(header::SET_COOKIE, spent);
    response
}

/// `POST /logout`: ends the session on the server, so the cookie is dead
/// even where it was copied, and clears it in the browser.
pub async fn log_out(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.remove(token);
    }
    let mut response = Redirect::to("/login").into_response();
    let cleared = set_cookie(
        SESSION_COOKIE,
        "",
        "/",
        Duration::ZERO,
        state.secure_cookies,
    );
    response.headers_mut().append(header::SET_COOKIE, cleared);
    response
}

/// In front of every protected route: a live session, and for anything
/// but GET and HEAD its CSRF token in the form's `csrf` field. The handler
/// then gets the token as `Extension<CsrfToken>` for its own forms.
pub async fn require_session(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let csrf = cookie(request.headers(), SESSION_COOKIE).and_then(|t| state.sessions.find(t));
    let Some(csrf) = csrf else {
        return without_session(request.method(), request.uri().path());
    };
    let mut request = if is_unsafe(request.method()) {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
        };
        if !form_token(&bytes).is_some_and(|given| csrf.matches(&given)) {
            tracing::warn!(
                "admin site: {} {} without its CSRF token",
                parts.method,
                parts.uri.path()
            );
            return (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token; reload the page",
            )
                .into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    request.extensions_mut().insert(csrf);
    next.run(request).await
}

/// No session: pages send the browser to log in; an event stream (read by
/// script, which cannot follow a login) gets 401; a change is refused.
fn without_session(method: &Method, path: &str) -> Response {
    if is_unsafe(method) {
        (StatusCode::FORBIDDEN, "log in first").into_response()
    } else if path.ends_with("/events") {
        (StatusCode::UNAUTHORIZED, "log in first").into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_token_until_removed() {
        let sessions = Sessions::default();
        let (token, csrf) = sessions.create();
        assert_eq!(token.len(), 64);
        let found = sessions.find(&token).unwrap();
        assert_eq!(found.as_str(), csrf.as_str());
        assert!(sessions.find(&token[1..]).is_none());
        assert!(sessions.find("").is_none());
        sessions.remove(&token);
        assert!(sessions.find(&token).is_none());
        assert!(sessions.is_empty());
    }

    #[test]
    fn expired_sessions_are_gone_and_the_count_is_capped() {
        let now = Instant::now();
        let Some(long_ago) = now.checked_sub(ABSOLUTE_EXPIRY + Duration::from_secs(1)) else {
            return; // A machine up for less than a day cannot say.
        };
        let fresh = Session {
            csrf: CsrfToken::generate(),
            created: long_ago,
            last_seen: now,
        };
        assert!(fresh.expired(now), "absolute expiry, however recently used");
        let idle = Session {
            csrf: CsrfToken::generate(),
            created: now,
            last_seen: now,
        };
        assert!(!idle.expired(now));
        assert!(idle.expired(now + IDLE_EXPIRY + Duration::from_secs(1)));

        let sessions = Sessions::default();
        let first = sessions.create().0;
        std::thread::sleep(Duration::from_millis(2));
        for _ in 0..MAX_SESSIONS {
            sessions.create();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.find(&first).is_none(), "the oldest made room");
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; herald_admin=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "herald"), None);
        let set = set_cookie(SESSION_COOKIE, "abc", "/", ABSOLUTE_EXPIRY, true);
        assert_eq!(
            set.to_str().unwrap(),
            "herald_admin=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=86400; Secure"
        );
    }
}
