//! The rules of the list, shared by the web form and the CLI: who may be
//! added, when a confirmation mail goes out, what confirming and leaving
//! do. Each function takes the caller's transaction and runs the store's
//! one-statement functions inside it; the caller commits, so a subscriber
//! and their confirmation mail are written together or not at all.

mod confirmation;
mod import;

use std::sync::Arc;

use lettre::message::Mailbox;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::Settings;
use crate::domain::{SubscriberEmail, SubscriberName, Token};
use crate::render::{self, ConfirmationContext, ConfirmationEmail, Templates};
use crate::store::confirmation_tokens::{self, TokenStatus};
use crate::store::subscribers::{self, Consent, NewSubscriber, Source, SubscriberState};
use crate::store::{clicks, deliveries, suppressions, Millis, Tx};

pub use confirmation::SubscriberMail;
pub use import::{ImportReport, ImportRow};

/// What a delivery's `recipient` becomes when its subscriber is erased.
pub const ERASED_RECIPIENT: &str = "erased";

/// The SHA-256 (hex) of a normalised address: all a suppression keeps.
pub fn suppression_hash(email: &SubscriberEmail) -> String {
    hex::encode(Sha256::digest(email.as_str().as_bytes()))
}

/// `<base_url>unsubscribe/<token>`: the link in every issue's footer and
/// List-Unsubscribe header, served by `POST /unsubscribe/{token}`.
pub fn unsubscribe_url(base_url: &Url, token: &str) -> Url {
    base_url
        .join(&format!("unsubscribe/{token}"))
        .expect("a token is URL-safe by construction")
}

/// `<base_url>confirm/<token>`, the link in a confirmation mail.
pub fn confirm_url(base_url: &Url, token: &Token) -> Url {
    base_url
        .join(&format!("confirm/{}", token.as_str()))
        .expect("a token is URL-safe by construction")
}

/// Who asks to be on the list, and how.
#[derive(Debug, Clone)]
pub struct SubscribeRequest<'a> {
    pub email: &'a SubscriberEmail,
    pub name: Option<&'a SubscriberName>,
    pub source: Source,
    /// The form's consent record (time, IP, user agent).
    pub consent: Option<&'a Consent>,
    /// Skip the double opt-in (an editor migrating a confirmed list). Never
    /// set for the form.
    pub confirmed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// New on the list; a pending one has its confirmation queued.
    Added(SubscriberState),
    /// Already pending: a fresh confirmation is queued.
    ConfirmationResent,
    /// Already pending, and the address had its share of confirmation
    /// mails this hour: nothing sent.
    ConfirmationLimitReached,
    /// Had left (or bounced) and signed up again on the form: pending, with
    /// a confirmation queued.
    Resubscribed,
    /// Was pending, and an editor confirmed it (`--confirmed`).
    Activated,
    /// On the list already; nothing changed.
    Unchanged(SubscriberState),
    /// Erased on request earlier: never added again.
    Suppressed,
}

impl SubscribeOutcome {
    /// Whether a confirmation mail was put into the queue.
    pub fn queued_mail(self) -> bool {
        matches!(
            self,
            SubscribeOutcome::Added(SubscriberState::Pending)
                | SubscribeOutcome::ConfirmationResent
                | SubscribeOutcome::Resubscribed
        )
    }
}

/// What a confirmation link leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmOutcome {
    /// The link works; nothing has changed yet (a GET only looks).
    Ready,
    /// This request confirmed the subscription.
    Confirmed,
    AlreadyConfirmed,
    Expired,
    /// Used before, or its subscriber has since left the pending state.
    Used,
    /// Never issued (forged, mistyped, or its subscriber was erased).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsubscribeOutcome {
    Unsubscribed,
    /// Nothing to do: already unsubscribed, bounced or complained.
    AlreadyOff(SubscriberState),
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseOutcome {
    Erased,
    /// Not on the list; the address is suppressed all the same.
    NotOnList,
}

/// The list's rules with what they need: the settings and the confirmation
/// mail, rendered once.
pub struct Subscriptions {
    settings: Arc<Settings>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    confirmation: ConfirmationEmail,
    welcome: render::WelcomeEmail,
    /// Confirmations and welcomes are signed like issues: with a strict
    /// DMARC policy, an unsigned double opt-in mail may never arrive.
    dkim: Option<lettre::message::dkim::DkimConfig>,
}

impl Subscriptions {
    pub fn new(settings: Arc<Settings>, templates: &Templates) -> anyhow::Result<Subscriptions> {
        let from = settings.from_mailbox()?;
        let reply_to = settings.reply_to_mailbox()?;
        let confirmation = render::render_confirmation(
            &ConfirmationContext {
                site_title: &settings.site.title,
                language: &settings.site.language,
                ttl_hours: settings.server.confirm_token_ttl_hours,
            },
            templates,
        )?;
        let welcome = render::render_welcome(
            &render::WelcomeContext {
                site_title: &settings.site.title,
                language: &settings.site.language,
                archive_url: settings.site.base_url.as_str(),
            },
            templates,
        )?;
        Ok(Subscriptions {
            dkim: settings.dkim()?,
            settings,
            from,
            reply_to,
            confirmation,
            welcome,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Adds an address, or does what the request means for one already on
    /// the list. The form may resend a confirmation or take back someone who
    /// left; the CLI and import never touch an existing row except to
    /// confirm a pending one on `--confirmed`, so re-running them is safe.
    pub async fn subscribe(
        &self,
        tx: &mut Tx<'_>,
        request: &SubscribeRequest<'_>,
        now: Millis,
    ) -> anyhow::Result<SubscribeOutcome> {
        if suppressions::is_suppressed(tx, &suppression_hash(request.email)).await? {
            return Ok(SubscribeOutcome::Suppressed);
        }
        let state = if request.confirmed {
            SubscriberState::Active
        } else {
            SubscriberState::Pending
        };
        let unsubscribe_token = Token::generate();
        let new = NewSubscriber {
            email: request.email,
            name: request.name.map(SubscriberName::as_str),
            state,
            source: request.source,
            consent: request.consent,
            unsubscribe_token: unsubscribe_token.as_str(),
        };
        if let Some(id) = subscribers::insert_subscriber(tx, &new, now).await? {
            subscribers::record_event(tx, id, state, &event_reason(request), now).await?;
            if state == SubscriberState::Pending {
                self.queue_confirmation(tx, id, request.email, now).await?;
            }
            return Ok(SubscribeOutcome::Added(state));
        }
        let existing = subscribers::find_subscriber_by_email(tx, request.email)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{} vanished during its insert", request.email))?;
        let from_form = request.source == Source::Form;
        match existing.state {
            SubscriberState::Pending if request.confirmed => {
                subscribers::activate_pending_subscriber(tx, existing.id, now).await?;
                subscribers::record_event(tx, existing.id, state, &event_reason(request), now)
                    .await?;
                Ok(SubscribeOutcome::Activated)
            }
            SubscriberState::Pending if request.source != Source::Import => {
                let hour_ago = now - 3_600_000;
                let sent = deliveries::count_transactional_since(
                    tx,
                    existing.id,
                    confirmation::CONFIRMATION,
                    hour_ago,
                )
                .await?;
                if sent >= i64::from(self.settings.server.confirmations_per_address_per_hour) {
                    return Ok(SubscribeOutcome::ConfirmationLimitReached);
                }
                self.queue_confirmation(tx, existing.id, request.email, now)
                    .await?;
                Ok(SubscribeOutcome::ConfirmationResent)
            }
            SubscriberState::Unsubscribed | SubscriberState::Bounced if from_form => {
                subscribers::resubscribe(tx, existing.id, request.consent, now).await?;
                // A link mailed for an earlier sign-up confirms only that one.
                confirmation_tokens::use_all_confirmation_tokens(tx, existing.id, now).await?;
                subscribers::record_event(
                    tx,
                    existing.id,
                    SubscriberState::Pending,
                    "subscribed again on the form",
                    now,
                )
                .await?;
                self.queue_confirmation(tx, existing.id, request.email, now)
                    .await?;
                Ok(SubscribeOutcome::Resubscribed)
            }
            other => Ok(SubscribeOutcome::Unchanged(other)),
        }
    }

    /// What a confirmation link would do, changing nothing: for the page a
    /// GET shows (mail scanners open every link; a GET must never confirm).
    pub async fn check_confirmation(
        &self,
        tx: &mut Tx<'_>,
        token: &Token,
        now: Millis,
    ) -> sqlx::Result<ConfirmOutcome> {
        let status = confirmation_tokens::find_confirmation_token(tx, &token.hash()).await?;
        Ok(explain_token(status.as_ref(), now))
    }

    /// Pending to active. The token is spent in the same statement that
    /// checks it, and with it every other token of that subscriber.
    pub async fn confirm(
        &self,
        tx: &mut Tx<'_>,
        token: &Token,
        now: Millis,
    ) -> sqlx::Result<ConfirmOutcome> {
        let hash = token.hash();
        let Some(id) = confirmation_tokens::use_confirmation_token(tx, &hash, now).await? else {
            let status = confirmation_tokens::find_confirmation_token(tx, &hash).await?;
            return Ok(explain_token(status.as_ref(), now));
        };
        if subscribers::activate_pending_subscriber(tx, id, now).await? {
            subscribers::record_event(tx, id, SubscriberState::Active, "confirmed by link", now)
                .await?;
            confirmation_tokens::use_all_confirmation_tokens(tx, id, now).await?;
            self.queue_welcome(tx, id, now).await?;
            return Ok(ConfirmOutcome::Confirmed);
        }
        let status = confirmation_tokens::find_confirmation_token(tx, &hash).await?;
        Ok(match status.map(|s| s.subscriber_state) {
            Some(SubscriberState::Active) => ConfirmOutcome::AlreadyConfirmed,
            _ => ConfirmOutcome::Used,
        })
    }

    /// The unsubscribe link (the page's button or a mail client's one-click
    /// POST). Repeating it is harmless.
    pub async fn unsubscribe(
        &self,
        tx: &mut Tx<'_>,
        token: &str,
        reason: &str,
        now: Millis,
    ) -> sqlx::Result<UnsubscribeOutcome> {
        if let Some(id) = subscribers::unsubscribe_by_token(tx, token, now).await? {
            subscribers::record_event(tx, id, SubscriberState::Unsubscribed, reason, now).await?;
            return Ok(UnsubscribeOutcome::Unsubscribed);
        }
        Ok(
            match subscribers::find_subscriber_by_unsubscribe_token(tx, token).await? {
                Some(subscriber) => UnsubscribeOutcome::AlreadyOff(subscriber.state),
                None => UnsubscribeOutcome::Unknown,
            },
        )
    }

    /// `herald subscribers remove`: unsubscribes by address.
    pub async fn remove(
        &self,
        tx: &mut Tx<'_>,
        email: &SubscriberEmail,
        now: Millis,
    ) -> sqlx::Result<UnsubscribeOutcome> {
        if let Some(id) = subscribers::unsubscribe_by_email(tx, email, now).await? {
            subscribers::record_event(
                tx,
                id,
                SubscriberState::Unsubscribed,
                "removed by an editor",
                now,
            )
            .await?;
            return Ok(UnsubscribeOutcome::Unsubscribed);
        }
        Ok(
            match subscribers::find_subscriber_by_email(tx, email).await? {
                Some(subscriber) => UnsubscribeOutcome::AlreadyOff(subscriber.state),
                None => UnsubscribeOutcome::Unknown,
            },
        )
    }

    /// Deletes everything personal about an address (the subscriber, their
    /// events, tokens and recorded clicks, the address in their delivery
    /// history) and keeps
    /// only its hash, so it is never added again.
    pub async fn erase(
        &self,
        tx: &mut Tx<'_>,
        email: &SubscriberEmail,
        now: Millis,
    ) -> sqlx::Result<EraseOutcome> {
        suppressions::insert_suppression(tx, &suppression_hash(email), "erased on request", now)
            .await?;
        let Some(subscriber) = subscribers::find_subscriber_by_email(tx, email).await? else {
            return Ok(EraseOutcome::NotOnList);
        };
        // Per-subscriber clicks ([tracking] per_subscriber) name them.
        clicks::delete_click_events_of(tx, subscriber.id).await?;
        deliveries::scrub_deliveries_of(tx, subscriber.id, ERASED_RECIPIENT).await?;
        subscribers::delete_subscriber(tx, subscriber.id).await?;
        Ok(EraseOutcome::Erased)
    }
}

fn event_reason(request: &SubscribeRequest) -> String {
    let source = request.source.as_str();
    if request.confirmed {
        format!("{source} --confirmed")
    } else {
        source.to_string()
    }
}

/// Why a token does (not) work. An active subscriber always gets the
/// friendly "already confirmed", whichever of their links they use.
fn explain_token(status: Option<&TokenStatus>, now: Millis) -> ConfirmOutcome {
    let Some(status) = status else {
        return ConfirmOutcome::Unknown;
    };
    if status.subscriber_state == SubscriberState::Active {
        ConfirmOutcome::AlreadyConfirmed
    } else if status.used_at.is_some() {
        ConfirmOutcome::Used
    } else if status.expires_at <= now {
        ConfirmOutcome::Expired
    } else if status.subscriber_state == SubscriberState::Pending {
        ConfirmOutcome::Ready
    } else {
        ConfirmOutcome::Used
    }
}
