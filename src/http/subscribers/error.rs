use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// What goes wrong inside a subscriber handler that is not the visitor's
/// doing. Expected outcomes (a bad link, a bad address) are pages, not
/// errors; these become a 500 with no detail shown.
#[derive(Debug, thiserror::Error)]
pub enum SubscriberWebError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for SubscriberWebError {
    fn into_response(self) -> Response {
        tracing::error!(error = %format!("{self:#}"), "subscriber request failed");
        // No templates here (the failure may be in them): a fixed page in
        // both languages.
        let body = "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
            <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
            <title>Error</title></head><body><p>Something went wrong. Please try again \
            in a few minutes.</p><p>出错了，请过几分钟再试。</p></body></html>";
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    }
}
