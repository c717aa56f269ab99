//! `GET /subscribe` shows the form; `POST /subscribe` (form-encoded or
//! JSON) signs an address up. The answer to a valid request is the same
//! whatever the address's standing (new, pending, active, unsubscribed,
//! suppressed), so the form tells nobody who is on the list.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;

use crate::domain::{SubscriberEmail, SubscriberName};
use crate::render::{SubscriberPage, SubscriptionTexts};
use crate::store::now_millis;
use crate::store::subscribers::{Consent, Source};
use crate::subscription::SubscribeRequest;

use super::pages::page;
use super::{SubscriberWeb, SubscriberWebError};

/// The longest user agent kept with the consent record.
const MAX_USER_AGENT_CHARS: usize = 300;

pub(super) async fn show_form(
    State(web): State<SubscriberWeb>,
) -> Result<Response, SubscriberWebError> {
    page(
        &web,
        StatusCode::OK,
        SubscriberPage::SubscribeForm {
            error: None,
            email: "",
            name: "",
        },
    )
}

/// The fields of the form. All optional here, so that a missing field is
/// our validation message rather than a bare 422 from the extractor.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SubscribeFields {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// The honeypot: invisible to people, filled in by bots.
    #[serde(default)]
    website: Option<String>,
}

/// The request body, and whether the caller speaks JSON (and so wants JSON
/// back) or is a browser posting the form.
pub(super) struct SubscribeInput {
    fields: SubscribeFields,
    json: bool,
}

impl FromRequest<SubscriberWeb> for SubscribeInput {
    type Rejection = Response;

    async fn from_request(request: Request, state: &SubscriberWeb) -> Result<Self, Response> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if is_json {
            let Json(fields) = Json::<SubscribeFields>::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(SubscribeInput { fields, json: true })
        } else {
            let Form(fields) = Form::<SubscribeFields>::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(SubscribeInput {
                fields,
                json: false,
            })
        }
    }
}

pub(super) async fn submit_form(
    State(web): State<SubscriberWeb>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    input: SubscribeInput,
) -> Result<Response, SubscriberWebError> {
    let texts = SubscriptionTexts::for_language(&web.settings().site.language);
    if over_limit(web.inner.per_ip.as_ref(), &rate_limit_key(peer.ip())) {
        return reply(
            &web,
            input.json,
            StatusCode::TOO_MANY_REQUESTS,
            SubscriberPage::RateLimited,
            texts.rate_limited_body,
        );
    }
    let fields = &input.fields;
    if fields
        .website
        .as_deref()
        .is_some_and(|w| !w.trim().is_empty())
    {
        // A bot: it sees success, nothing is stored or sent.
        tracing::debug!(peer = %peer.ip(), "honeypot filled in; dropped");
        return reply(
            &web,
            input.json,
            StatusCode::OK,
            SubscriberPage::CheckInbox,
            texts.check_inbox_body,
        );
    }
    let raw_email = fields.email.as_deref().unwrap_or("");
    let raw_name = fields.name.as_deref().unwrap_or("");
    let refuse = |message: &'static str| {
        if input.json {
            Ok(json_reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                "error",
                message,
            ))
        } else {
            page(
                &web,
                StatusCode::UNPROCESSABLE_ENTITY,
                SubscriberPage::SubscribeForm {
                    error: Some(message),
                    email: raw_email,
                    name: raw_name,
                },
            )
        }
    };
    let Ok(email) = SubscriberEmail::parse(raw_email) else {
        return refuse(texts.invalid_email);
    };
    // Checked before the address's state is looked at, so a 429 says
    // nothing about whether it is on the list.
    if over_limit(web.inner.per_address.as_ref(), &email.as_str().to_string()) {
        return reply(
            &web,
            input.json,
            StatusCode::TOO_MANY_REQUESTS,
            SubscriberPage::RateLimited,
            texts.rate_limited_body,
        );
    }
    let Ok(name) = SubscriberName::parse_optional(Some(raw_name)) else {
        return refuse(texts.invalid_name);
    };
    let consent = Consent {
        ip: Some(peer.ip().to_string()),
        user_agent: user_agent(&headers),
    };
    let request = SubscribeRequest {
        email: &email,
        name: name.as_ref(),
        source: Source::Form,
        consent: Some(&consent),
        confirmed: false,
    };
    let mut tx = web.store().begin().await?;
    let outcome = web
        .subscriptions()
        .subscribe(&mut tx, &request, now_millis())
        .await?;
    tx.commit().await?;
    if outcome.queued_mail() {
        web.inner.outbox.queued();
    }
    // The outcome goes to the log, never into the answer.
    tracing::info!(?outcome, "sign-up on the form");
    reply(
        &web,
        input.json,
        StatusCode::OK,
        SubscriberPage::CheckInbox,
        texts.check_inbox_body,
    )
}

fn reply(
    web: &SubscriberWeb,
    json: bool,
    status: StatusCode,
    html: SubscriberPage,
    message: &'static str,
) -> Result<Response, SubscriberWebError> {
    if json {
        let key = if status.is_success() {
            "message"
        } else {
            "error"
        };
        Ok(json_reply(status, key, message))
    } else {
        page(web, status, html)
    }
}

fn json_reply(status: StatusCode, key: &str, message: &str) -> Response {
    (status, Json(serde_json::json!({ key: message }))).into_response()
}

/// One key per client: the address itself for IPv4, the /64 network for
/// IPv6, where a single host commonly holds a whole /64 and could otherwise
/// rotate through fresh addresses.
fn rate_limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// The user agent for the consent record: printable characters only, cut
/// to a sane length.
fn user_agent(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::USER_AGENT)?.to_str().ok()?;
    let cleaned: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT_CHARS)
        .collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

/// Whether `key` has used up its quota (never, when the limit is off).
fn over_limit<K>(limiter: Option<&governor::DefaultKeyedRateLimiter<K>>, key: &K) -> bool
where
    K: Clone + std::hash::Hash + Eq,
{
    let Some(limiter) = limiter else {
        return false;
    };
    // Rarely, forget keys quiet long enough to be back at a full quota, so
    // the map does not grow without end.
    if limiter.len() > 10_000 {
        limiter.retain_recent();
    }
    limiter.check_key(key).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(rate_limit_key(a), rate_limit_key(b));
        assert_ne!(rate_limit_key(a), rate_limit_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            rate_limit_key(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
