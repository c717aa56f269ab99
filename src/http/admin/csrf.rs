//! Cross-site request forgery, refused twice over: every POST form carries
//! a token a cross-site page cannot read (the session's, or on the login
//! form a double-submit cookie's), and a POST that the browser says comes
//! from another site (`Sec-Fetch-Site`, `Origin`) is refused before it is
//! read. SameSite=Strict cookies are a third layer on browsers that have them.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// A session's (or the login form's) anti-forgery token: 256 random bits,
/// hex. Handlers get the session's as `Extension<CsrfToken>` and put it in
/// every form as the hidden field `csrf`.
#[derive(Clone)]
pub struct CsrfToken(String);

impl CsrfToken {
    pub fn generate() -> CsrfToken {
        CsrfToken(hex::encode(rand::random::<[u8; 32]>()))
    }

    /// The login form's token, as its double-submit cookie sent it back.
    pub(super) fn from_cookie(value: &str) -> CsrfToken {
        CsrfToken(value.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, given: &str) -> bool {
        !given.is_empty() && bool::from(self.0.as_bytes().ct_eq(given.as_bytes()))
    }
}

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(***)")
    }
}

/// The `csrf` field of a URL-encoded form body, if there is one.
pub fn form_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
}

/// Whether a request may change anything: GET and HEAD never do here.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses (403) an unsafe request that the browser marks as cross-site.
/// Requests without either header (curl, old browsers) pass on to the
/// token check, which they cannot pass without the token.
pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    if is_unsafe(request.method()) {
        if let Some(reason) = cross_site(request.headers()) {
            tracing::warn!(
                "admin site: refused a cross-site {}: {reason}",
                request.method()
            );
            return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
        }
    }
    next.run(request).await
}

/// Why the request comes from another site, if it does.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none`: the user typed the address or used a bookmark.
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Some(format!(
                "Sec-Fetch-Site: {}",
                String::from_utf8_lossy(site.as_bytes())
            ));
        }
        // The browser's own word (no page can set this header) settles it:
        // under this site's `Referrer-Policy: no-referrer`, Chromium sends
        // a same-origin form's POST with `Origin: null`, which the check
        // below would refuse (found by tests/browser.rs).
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    let host = headers
        .get(header::HOST)
        .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned());
    match (url::Url::parse(&origin), host) {
        (Ok(origin_url), Some(host)) if same_authority(&origin_url, &host) => None,
        _ => Some(format!("Origin: {origin}")),
    }
}

/// Whether `origin` names the host (and port, the scheme's default when
/// either leaves it out) that the request was sent to. `null` and other
/// opaque origins name none.
fn same_authority(origin: &url::Url, host: &str) -> bool {
    let Ok(requested) = url::Url::parse(&format!("{}://{host}/", origin.scheme())) else {
        return false;
    };
    origin.host().is_some()
        && origin.host() == requested.host()
        && origin.port_or_known_default() == requested.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn same_origin_and_unmarked_requests_pass_cross_site_ones_do_not() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("host", "127.0.0.1:8081")], false),
            (
                &[
                    ("host", "127.0.0.1:8081"),
                    ("origin", "http://127.0.0.1:8081"),
                ],
                false,
            ),
            (
                &[
                    ("host", "Admin.Example:443"),
                    ("origin", "https://admin.example:443"),
                ],
                false,
            ),
            (
                &[
                    ("host", "admin.example"),
                    ("origin", "https://admin.example"),
                ],
                false,
            ),
            (&[("sec-fetch-site", "same-origin")], false),
            (&[("sec-fetch-site", "none")], false),
            (
                &[("sec-fetch-site", "same-origin"), ("origin", "null")],
                false,
            ),
            (
                &[
                    ("host", "127.0.0.1:8081"),
                    ("origin", "http://evil.example"),
                ],
                true,
            ),
            (
                &[
                    ("host", "127.0.0.1:8081"),
                    ("origin", "http://127.0.0.1:9999"),
                ],
                true,
            ),
            (&[("host", "127.0.0.1:8081"), ("origin", "null")], true),
            (&[("sec-fetch-site", "cross-site")], true),
            (&[("sec-fetch-site", "same-site")], true),
        ];
        for (pairs, refused) in cases {
            assert_eq!(cross_site(&headers(pairs)).is_some(), *refused, "{pairs:?}");
        }
    }

    #[test]
    fn tokens_match_only_themselves() {
        let token = CsrfToken::generate();
        assert_eq!(token.as_str().len(), 64);
        assert!(token.matches(token.as_str()));
        assert!(!token.matches(""));
        assert!(!token.matches(CsrfToken::generate().as_str()));
        assert_eq!(form_token(b"a=1&csrf=abc%20d"), Some("abc d".into()));
        assert_eq!(form_token(b"a=1"), None);
    }
}
