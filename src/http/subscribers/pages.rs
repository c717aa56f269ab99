//! Rendering a subscriber page into a response.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::render::{render_subscriber_page, PageContext, SubscriberPage};

use super::{SubscriberWeb, SubscriberWebError};

pub(super) fn page(
    web: &SubscriberWeb,
    status: StatusCode,
    page: SubscriberPage,
) -> Result<Response, SubscriberWebError> {
    let settings = web.settings();
    let subscribe_url = settings
        .site
        .base_url
        .join("subscribe")
        .expect("static path");
    let context = PageContext {
        site_title: &settings.site.title,
        language: &settings.site.language,
        home_url: settings.site.base_url.as_str(),
        subscribe_url: subscribe_url.as_str(),
    };
    let html = render_subscriber_page(&page, &context, &web.inner.templates)?;
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Personal pages: never cached by a proxy, and the token in the URL
    // never leaks to another site through a Referer header.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    Ok(response)
}
