//! `GET|HEAD /l/{campaign}/{link}`: a tracked item link. Redirects (302)
//! to the item and counts the click ([`crate::clicks`]); anything Herald did
//! not make is a 404, whatever the path or query holds.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::clicks::{ClickCounter, ClickRequest};

/// The route, with its state, to be merged into the main router.
pub fn click_routes(counter: ClickCounter) -> Router {
    Router::new()
        // axum answers HEAD with the GET route, minus the body.
        .route("/l/{campaign}/{link}", get(follow_link))
        .with_state(counter)
}

/// A database id as the path writes it: 1 to 18 ASCII digits, so that
/// `+1`, ` 1`, `01e3` or an overflow are no ids at all.
fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|id| *id > 0)
}

/// The per-subscriber token (`?s=...`), if the query has one.
fn token_of(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "s")
        .map(|(_, value)| value.into_owned())
}

async fn follow_link(
    State(counter): State<ClickCounter>,
    method: Method,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ids = path
        .ok()
        .and_then(|Path((campaign, link))| Some((parse_id(&campaign)?, parse_id(&link)?)));
    let Some((campaign_id, link_index)) = ids else {
        return not_found();
    };
    let token = token_of(query.as_deref());
    let request = ClickRequest {
        head: method == Method::HEAD,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok()),
        token: token.as_deref(),
    };
    let followed = counter
        .follow(
            campaign_id,
            link_index,
            &request,
            crate::store::now_millis(),
        )
        .await;
    match followed {
        Ok(Some(url)) => match HeaderValue::from_str(url.as_str()) {
            Ok(location) => redirect(location),
            Err(_) => not_found(),
        },
        Ok(None) => not_found(),
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "following campaign {campaign_id} link {link_index}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::RETRY_AFTER, "5"),
                ],
                "The link cannot be followed right now; please try again in a moment.\n",
            )
                .into_response()
        }
    }
}

fn redirect(location: HeaderValue) -> Response {
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            // Every click must reach us to be counted, and nothing in the
            // middle should keep a copy of a per-subscriber link.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // The item's site learns nothing of the link that led there.
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        "No such link.\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_positive_ids_are_ids() {
        assert_eq!(parse_id("1"), Some(1));
        assert_eq!(
            parse_id("999999999999999999"),
            Some(999_999_999_999_999_999)
        );
        for bad in [
            "",
            "0",
            "+1",
            "-1",
            " 1",
            "1 ",
            "01e3",
            "1.0",
            "0x1",
            "9999999999999999999",
            "//evil.com",
            "１",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_token_is_read_from_the_query() {
        assert_eq!(token_of(Some("s=12-ab")).as_deref(), Some("12-ab"));
        assert_eq!(token_of(Some("x=1&s=12%2Dab")).as_deref(), Some("12-ab"));
        assert_eq!(token_of(Some("x=1")), None);
        assert_eq!(token_of(None), None);
    }
}
